//! What an index's hashes are hashes of: passwords, logins, or login-and-password pairs.
//!
//! - [`KeyType::Password`]: SHA-1 or NTLM of the password, as the Pwned Passwords corpus.
//! - [`KeyType::Login`]: SHA-1 of the *normalised login* (see [`normalise_login_into`]).
//! - [`KeyType::Pair`]: SHA-1 of the normalised login, a `:`, and the password unchanged.
//!
//! Logins are normalised so that `Alice@Example.com ` and `alice@example.com` are one account:
//! rule version [`NORMALISATION_VERSION`] trims ASCII whitespace at both ends, then lowercases
//! with Unicode's rules (Rust's `str::to_lowercase`); a login that is not valid UTF-8 is
//! lowercased in its ASCII letters only. The index records the rule's version, so that a
//! future rule cannot silently meet an index built with another.

use crate::hash::{HashBytes, HashKind};
use sha1::{Digest, Sha1};

/// The version of the login normalisation rule that this build applies and records.
pub const NORMALISATION_VERSION: u8 = 1;

/// What the hashes of an index are hashes of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// Passwords: SHA-1 or NTLM.
    #[default]
    Password,
    /// Normalised logins (email addresses, user names, phone numbers): SHA-1 only.
    Login,
    /// `normalised login:password`: SHA-1 only.
    Pair,
}

impl KeyType {
    /// All key types, in code order.
    pub const ALL: [KeyType; 3] = [KeyType::Password, KeyType::Login, KeyType::Pair];

    /// The code stored in the header.
    pub fn code(self) -> u8 {
        match self {
            KeyType::Password => 0,
            KeyType::Login => 1,
            KeyType::Pair => 2,
        }
    }

    /// The key type of a header code.
    pub fn from_code(code: u8) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The name on the command line, in `info` and in the server's `mode=`.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Password => "password",
            KeyType::Login => "login",
            KeyType::Pair => "pair",
        }
    }

    /// The normalisation rule version an index of this key records (0: none applies).
    pub fn normalisation(self) -> u8 {
        match self {
            KeyType::Password => 0,
            KeyType::Login | KeyType::Pair => NORMALISATION_VERSION,
        }
    }

    /// Whether hashes of `kind` can hold this key: logins and pairs are SHA-1 only.
    pub fn allows(self, kind: HashKind) -> bool {
        self == KeyType::Password || kind == HashKind::Sha1
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown key `{s}` (expected password, login or pair)"))
    }
}

/// Appends the normalised form of `login` to `out` (rule [`NORMALISATION_VERSION`]): ASCII
/// whitespace trimmed at both ends, then lowercased. ASCII logins take a path without
/// allocation.
pub fn normalise_login_into(login: &[u8], out: &mut Vec<u8>) {
    let login = login.trim_ascii();
    if login.is_ascii() {
        out.extend(login.iter().map(u8::to_ascii_lowercase));
    } else {
        match std::str::from_utf8(login) {
            Ok(text) => out.extend_from_slice(text.to_lowercase().as_bytes()),
            Err(_) => out.extend(login.iter().map(u8::to_ascii_lowercase)),
        }
    }
}

/// The normalised form of `login`.
pub fn normalise_login(login: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(login.len());
    normalise_login_into(login, &mut out);
    out
}

/// SHA-1 of the normalised login. `scratch` is reused between calls.
pub fn login_hash(login: &[u8], scratch: &mut Vec<u8>) -> HashBytes {
    scratch.clear();
    normalise_login_into(login, scratch);
    crate::hash::sha1_password(scratch)
}

/// SHA-1 of `normalised login:password`. `scratch` is reused between calls.
pub fn pair_hash(login: &[u8], password: &[u8], scratch: &mut Vec<u8>) -> HashBytes {
    scratch.clear();
    normalise_login_into(login, scratch);
    let mut hasher = Sha1::new();
    hasher.update(&scratch[..]);
    hasher.update(b":");
    hasher.update(password);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hasher.finalize());
    out
}

/// The hash of a credential for an index of `key` and `kind`: of its password, its normalised
/// login, or both. The error says what is missing without repeating either.
pub fn hash_credential(
    key: KeyType,
    kind: HashKind,
    login: &[u8],
    password: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<HashBytes, &'static str> {
    if key != KeyType::Password && login.trim_ascii().is_empty() {
        return Err("an empty login");
    }
    match key {
        KeyType::Password => kind
            .hash_password(password)
            .ok_or("not UTF-8, which NTLM needs"),
        KeyType::Login => Ok(login_hash(login, scratch)),
        KeyType::Pair if password.is_empty() => Err("an empty password"),
        KeyType::Pair => Ok(pair_hash(login, password, scratch)),
    }
}

/// The hash of one item to check against an index of `key` and `kind`, as `check` reads them:
/// a password; a login (normalised); or `LOGIN:PASSWORD`, split at the first `:`. The error
/// says what is wrong without repeating the item, which holds secrets.
pub fn hash_item(
    key: KeyType,
    kind: HashKind,
    item: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<HashBytes, &'static str> {
    match key {
        KeyType::Password => hash_credential(key, kind, b"", item, scratch),
        KeyType::Login => hash_credential(key, kind, item, b"", scratch),
        KeyType::Pair => match memchr::memchr(b':', item) {
            Some(colon) => hash_credential(key, kind, &item[..colon], &item[colon + 1..], scratch)
                .map_err(|why| match why {
                    "an empty login" => "expected LOGIN:PASSWORD, found an empty login",
                    "an empty password" => "expected LOGIN:PASSWORD, found an empty password",
                    other => other,
                }),
            None => Err("expected LOGIN:PASSWORD, found no `:`"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha1_password;

    #[test]
    fn logins_are_trimmed_and_lowercased() {
        assert_eq!(
            normalise_login(b"  Alice@Example.COM\t"),
            b"alice@example.com"
        );
        assert_eq!(
            normalise_login("ÉLODIE@Exemple.fr".as_bytes()),
            "élodie@exemple.fr".as_bytes()
        );
        // Unicode lowercase may change the length: İ is two code points in lowercase.
        assert_eq!(normalise_login("İ".as_bytes()), "i\u{307}".as_bytes());
        // Not UTF-8: ASCII letters only.
        assert_eq!(normalise_login(b"AB\xffC"), b"ab\xffc");
        // Inner spaces stay.
        assert_eq!(normalise_login(b" John Smith "), b"john smith");
        assert_eq!(normalise_login(b"   "), b"");
    }

    #[test]
    fn login_and_pair_hashes_hash_the_normalised_text() {
        let mut scratch = Vec::new();
        assert_eq!(
            login_hash(b" Bob@Example.com", &mut scratch),
            sha1_password(b"bob@example.com")
        );
        assert_eq!(
            pair_hash(b"Bob@Example.com ", b"Pass: word ", &mut scratch),
            sha1_password(b"bob@example.com:Pass: word ")
        );
        // Known values, from Python's hashlib.
        let hex = |h| crate::hash::hash_to_hex(&h, HashKind::Sha1);
        assert_eq!(
            hex(pair_hash(b"Alice@Example.com", b"hunter2", &mut scratch)),
            "A565E8C744390F385E17EF2227C624C63F903524"
        );
        assert_eq!(
            hex(login_hash(" ÉLODIE@exemple.fr".as_bytes(), &mut scratch)),
            "99957B75DA1EEF95728857F6E6DDF93012E43C47"
        );
    }

    #[test]
    fn items_hash_by_key() {
        let mut scratch = Vec::new();
        let sha1 = HashKind::Sha1;
        assert_eq!(
            hash_item(KeyType::Password, sha1, b"Pa:ss", &mut scratch),
            Ok(sha1_password(b"Pa:ss"))
        );
        assert_eq!(
            hash_item(KeyType::Login, sha1, b" Bob@X.org\t", &mut scratch),
            Ok(sha1_password(b"bob@x.org"))
        );
        assert_eq!(
            hash_item(KeyType::Pair, sha1, b"Bob@X.org:p:w d", &mut scratch),
            Ok(sha1_password(b"bob@x.org:p:w d"))
        );
        assert!(hash_item(KeyType::Login, sha1, b"  ", &mut scratch).is_err());
        for bad in [&b"nocolon"[..], b":pw", b" :pw", b"bob:"] {
            assert!(hash_item(KeyType::Pair, sha1, bad, &mut scratch).is_err());
        }
        assert!(hash_item(KeyType::Password, HashKind::Ntlm, b"\xff", &mut scratch).is_err());
    }

    #[test]
    fn key_names_and_codes_round_trip() {
        for k in KeyType::ALL {
            assert_eq!(KeyType::from_code(k.code()), Some(k));
            assert_eq!(k.name().parse::<KeyType>(), Ok(k));
        }
        assert_eq!(KeyType::from_code(3), None);
        assert!("email".parse::<KeyType>().is_err());
        assert!(KeyType::Password.allows(HashKind::Ntlm));
        assert!(!KeyType::Login.allows(HashKind::Ntlm));
        assert!(!KeyType::Pair.allows(HashKind::Ntlm));
    }
}
