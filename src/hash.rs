//! Hash kinds, hex conversion and password hashing.
//!
//! A hash is kept as `[u8; 20]` whatever its kind: an NTLM hash uses the first 16 bytes and
//! leaves the rest zero, so one type sorts and compares both kinds.

use sha1::{Digest, Sha1};

/// The raw bytes of a hash; NTLM hashes use the first 16 bytes and leave the rest zero.
pub type HashBytes = [u8; 20];

/// The kind of hash a dump or an index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// SHA-1 of the UTF-8 password: 20 bytes, 40 hex digits.
    Sha1,
    /// NTLM, MD4 of the UTF-16LE password: 16 bytes, 32 hex digits.
    Ntlm,
}

impl HashKind {
    /// Bytes in a hash of this kind.
    pub const fn byte_len(self) -> usize {
        match self {
            HashKind::Sha1 => 20,
            HashKind::Ntlm => 16,
        }
    }

    /// Hex digits in a hash of this kind.
    pub const fn hex_len(self) -> usize {
        self.byte_len() * 2
    }

    /// Hex digits of a range suffix (the hash less its 5-digit prefix).
    pub const fn suffix_hex_len(self) -> usize {
        self.hex_len() - 5
    }

    /// The kind whose hex length is `len`, if any.
    pub fn from_hex_len(len: usize) -> Option<HashKind> {
        match len {
            40 => Some(HashKind::Sha1),
            32 => Some(HashKind::Ntlm),
            _ => None,
        }
    }

    /// Lower-case name, as used on the command line and in `info`.
    pub const fn name(self) -> &'static str {
        match self {
            HashKind::Sha1 => "sha1",
            HashKind::Ntlm => "ntlm",
        }
    }

    /// Human name used in error messages.
    pub const fn display_name(self) -> &'static str {
        match self {
            HashKind::Sha1 => "SHA-1",
            HashKind::Ntlm => "NTLM",
        }
    }

    /// Hashes a password given as bytes. NTLM needs UTF-16, so it returns `None` for bytes
    /// that are not UTF-8; SHA-1 hashes the bytes as they are.
    pub fn hash_password(self, password: &[u8]) -> Option<HashBytes> {
        match self {
            HashKind::Sha1 => Some(sha1_password(password)),
            HashKind::Ntlm => std::str::from_utf8(password).ok().map(ntlm_password),
        }
    }
}

impl std::fmt::Display for HashKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HashKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sha1" | "sha-1" => Ok(HashKind::Sha1),
            "ntlm" => Ok(HashKind::Ntlm),
            _ => Err(format!("unknown hash kind `{s}` (expected sha1 or ntlm)")),
        }
    }
}

/// SHA-1 of the password bytes.
pub fn sha1_password(password: &[u8]) -> HashBytes {
    let digest = Sha1::digest(password);
    let mut out = [0u8; 20];
    out.copy_from_slice(&digest);
    out
}

/// NTLM hash: MD4 of the UTF-16LE encoding of the password.
pub fn ntlm_password(password: &str) -> HashBytes {
    use md4::Md4;
    let mut hasher = Md4::new();
    let mut buf = [0u8; 128];
    let mut used = 0;
    for unit in password.encode_utf16() {
        if used == buf.len() {
            hasher.update(&buf[..used]);
            used = 0;
        }
        buf[used..used + 2].copy_from_slice(&unit.to_le_bytes());
        used += 2;
    }
    hasher.update(&buf[..used]);
    buf.fill(0);
    let digest = hasher.finalize();
    let mut out = [0u8; 20];
    out[..16].copy_from_slice(&digest);
    out
}

/// Value of each byte as a hex digit, or `0xFF` when it is not one.
static HEX_VALUE: [u8; 256] = {
    let mut table = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Upper-case hex digits.
pub(crate) static HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Both upper-case hex digits of every byte value.
pub(crate) static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX_UPPER[i >> 4], HEX_UPPER[i & 15]];
        i += 1;
    }
    table
};

/// Compares two hashes as `[u8; 20]` does, with three word loads instead of a call to
/// `memcmp` (it runs for every entry of a build).
#[inline(always)]
pub fn compare_hashes(a: &HashBytes, b: &HashBytes) -> std::cmp::Ordering {
    hash_order(a).cmp(&hash_order(b))
}

/// Upper-case hex of four bytes at once, in a 64-bit register (each nibble spread into its
/// own byte, then turned into an ASCII digit or letter without a table).
#[inline]
pub(crate) fn hex_upper_4(bytes: [u8; 4]) -> [u8; 8] {
    let mut x = u32::from_be_bytes(bytes) as u64;
    x = ((x & 0xFFFF_0000) << 16) | (x & 0xFFFF);
    x = ((x & 0x0000_FF00_0000_FF00) << 8) | (x & 0x0000_00FF_0000_00FF);
    x = ((x & 0x00F0_00F0_00F0_00F0) << 4) | (x & 0x000F_000F_000F_000F);
    // Nibbles of 10 and more get bit 4 set by adding 6; they need 7 more to reach 'A'.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (x + 0x3030_3030_3030_3030 + letters * 7).to_be_bytes()
}

/// Upper-case hex of sixteen bytes, written as a plain loop over fixed-size arrays that the
/// compiler turns into a few SSE2 vector instructions (faster than four [`hex_upper_4`]; see
/// the README's design notes).
#[inline]
pub(crate) fn hex_upper_16(bytes: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        let (hi, lo) = (b >> 4, b & 0x0F);
        pair[0] = hi + b'0' + if hi > 9 { 7 } else { 0 };
        pair[1] = lo + b'0' + if lo > 9 { 7 } else { 0 };
    }
    out
}

/// Value of one hex digit, either case.
#[inline]
pub fn hex_digit(b: u8) -> Option<u8> {
    let v = HEX_VALUE[b as usize];
    (v != 0xFF).then_some(v)
}

/// Decodes `hex` (either case, even length up to 40 digits) into the front of a hash.
/// Returns `None` when a character is not a hex digit or the length is odd or too long.
#[inline]
pub fn decode_hex(hex: &[u8]) -> Option<HashBytes> {
    if !hex.len().is_multiple_of(2) || hex.len() > 40 {
        return None;
    }
    let mut out = [0u8; 20];
    // A whole hash, the common case, by words (see `decode_hash_words`); other lengths by
    // table.
    if let Some(kind) = HashKind::from_hex_len(hex.len()) {
        store_hash_words(decode_hash_words(hex, kind)?, &mut out);
        return Some(out);
    }
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let hi = HEX_VALUE[pair[0] as usize];
        let lo = HEX_VALUE[pair[1] as usize];
        bad |= hi | lo;
        *o = (hi << 4) | lo;
    }
    // Valid digits are below 16; 0xFF marks a bad one, so any high bit means bad input.
    (bad & 0xF0 == 0).then_some(out)
}

/// Decodes the 40 (SHA-1) or 32 (NTLM) hex digits at the start of `hex` into the hash's bytes
/// as three little-endian words: bytes 0..8, 8..16 and 16..20 (0 for NTLM). `None` if a digit
/// is not hex or `hex` is too short. The dump parser keeps the words in registers to compare
/// them and stores them straight into its entries: a hash built on the stack in smaller
/// stores and copied out in wider loads stalls the processor (store forwarding fails).
#[inline(always)]
pub(crate) fn decode_hash_words(hex: &[u8], kind: HashKind) -> Option<[u64; 3]> {
    let hex = hex.get(..kind.hex_len())?;
    let sixteen = |at: usize| decode_hex_16(hex[at..at + 16].try_into().expect("16 digits"));
    let w0 = sixteen(0)?;
    let w1 = sixteen(16)?;
    let w2 = match kind {
        // Digits 24..40 give bytes 12..20; the high half is bytes 16..20.
        HashKind::Sha1 => sixteen(24)? >> 32,
        HashKind::Ntlm => 0,
    };
    Some([w0, w1, w2])
}

/// Decodes sixteen hex digits, either case, into eight bytes (the first in the low byte of
/// the word); `None` if any is not a hex digit. On x86-64 all sixteen at once in one SSE2
/// register (37 instructions instead of 93 for two [`decode_hex_8`], compiled on their own).
#[inline(always)]
pub(crate) fn decode_hex_16(digits: &[u8; 16]) -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        crate::sys::decode_hex_16_sse2(digits)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        decode_hex_16_words(digits)
    }
}

/// [`decode_hex_16`] as two [`decode_hex_8`]: the portable form, and the model the SSE2 one is
/// tested against.
#[inline(always)]
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) fn decode_hex_16_words(digits: &[u8; 16]) -> Option<u64> {
    let word = |at: usize| u64::from_le_bytes(digits[at..at + 8].try_into().expect("8 digits"));
    Some(decode_hex_8(word(0))? as u64 | (decode_hex_8(word(8))? as u64) << 32)
}

/// Writes the words of [`decode_hash_words`] into a hash.
#[inline(always)]
pub(crate) fn store_hash_words(words: [u64; 3], hash: &mut HashBytes) {
    hash[..8].copy_from_slice(&words[0].to_le_bytes());
    hash[8..16].copy_from_slice(&words[1].to_le_bytes());
    hash[16..].copy_from_slice(&(words[2] as u32).to_le_bytes());
}

/// The words of [`decode_hash_words`] as a key that orders as the hashes do.
#[inline(always)]
pub(crate) fn hash_words_order(words: [u64; 3]) -> (u64, u64, u32) {
    (
        words[0].swap_bytes(),
        words[1].swap_bytes(),
        (words[2] as u32).swap_bytes(),
    )
}

/// [`hash_words_order`] of a hash.
#[inline(always)]
pub(crate) fn hash_order(hash: &HashBytes) -> (u64, u64, u32) {
    let word = |i: usize| u64::from_be_bytes(hash[i..i + 8].try_into().expect("8 bytes"));
    (
        word(0),
        word(8),
        u32::from_be_bytes(hash[16..].try_into().expect("4 bytes")),
    )
}

/// Decodes eight hex digits, either case, read as a little-endian word (the first digit in
/// the low byte), into four bytes (the first in the low byte); `None` if any byte is not a
/// hex digit. Every byte is tested at once with word arithmetic, with no table lookup per
/// digit.
#[inline(always)]
pub(crate) fn decode_hex_8(x: u64) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes from 0x80 up are never digits, and the sums below need them out of the way.
    if x & HIGH != 0 {
        return None;
    }
    // With every byte below 0x80, adding (0x80 - c) to each byte sets its high bit exactly
    // when the byte is at least c, and never carries into the next byte.
    let at_least = |v: u64, c: u8| v.wrapping_add(ONES * (0x80 - c as u64)) & HIGH;
    let digit = at_least(x, b'0') & !at_least(x, b'9' + 1);
    // Setting bit 5 maps 'A'..'F' onto 'a'..'f' (and nothing else onto them).
    let folded = x | (ONES * 0x20);
    let letter = at_least(folded, b'a') & !at_least(folded, b'f' + 1);
    if digit | letter != HIGH {
        return None;
    }
    // A digit's value is its low nibble; a letter's is its low nibble plus 9.
    let nibbles = (x & (ONES * 0x0F)) + (letter >> 7) * 9;
    // Pairs of nibbles (first digit high) into bytes at every other byte, then packed.
    let pairs = ((nibbles & 0x000F_000F_000F_000F) << 4) | ((nibbles >> 8) & 0x000F_000F_000F_000F);
    let pairs = (pairs | (pairs >> 8)) & 0x0000_FFFF_0000_FFFF;
    Some((pairs | (pairs >> 16)) as u32)
}

/// Decodes a hash of `kind` from hex, either case.
pub fn parse_hash(hex: &[u8], kind: HashKind) -> Option<HashBytes> {
    if hex.len() != kind.hex_len() {
        return None;
    }
    decode_hex(hex)
}

/// Reads a hash of `kind` that a person or a script gives one per line: hex in either case,
/// with spaces or tabs around it allowed, and a `:COUNT` after it (a line of a dump) ignored.
/// The error says what was found without repeating the text, which may be a password given by
/// mistake.
pub fn parse_hash_item(item: &[u8], kind: HashKind) -> Result<HashBytes, String> {
    let item = item.trim_ascii();
    let hex = match memchr::memchr(b':', item) {
        Some(i) => {
            let count = &item[i + 1..];
            if count.is_empty() || !count.iter().all(u8::is_ascii_digit) {
                return Err(format!(
                    "expected a {} hash, alone or as `HASH:COUNT`, found something other than \
                     digits after the `:`",
                    kind.display_name()
                ));
            }
            item[..i].trim_ascii_end()
        }
        None => item,
    };
    let expected = || {
        format!(
            "expected {} hex digits of {} {} hash",
            kind.hex_len(),
            if kind == HashKind::Ntlm { "an" } else { "a" },
            kind.display_name()
        )
    };
    if hex.len() != kind.hex_len() {
        let hint = match HashKind::from_hex_len(hex.len()) {
            Some(other) if other != kind => format!(
                " (the length of {} {} hash: is this the right index?)",
                if other == HashKind::Ntlm { "an" } else { "a" },
                other.display_name()
            ),
            _ => String::new(),
        };
        return Err(format!(
            "{}, found {} characters{hint}",
            expected(),
            hex.len()
        ));
    }
    match hex.iter().position(|b| !b.is_ascii_hexdigit()) {
        Some(col) => Err(format!(
            "{}, found a character that is not a hex digit at position {}",
            expected(),
            col + 1
        )),
        None => Ok(decode_hex(hex).expect("checked: hex digits of the right length")),
    }
}

/// Appends the upper-case hex of `bytes` to `out`.
pub fn encode_hex_into(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.extend_from_slice(&HEX_PAIRS[b as usize]);
    }
}

/// Upper-case hex of the hash's bytes for its kind.
pub fn hash_to_hex(hash: &HashBytes, kind: HashKind) -> String {
    let mut out = Vec::with_capacity(40);
    encode_hex_into(&hash[..kind.byte_len()], &mut out);
    String::from_utf8(out).expect("hex is ASCII")
}

/// Writes the decimal digits of `n` at the start of `buf` (20 bytes or more); returns how many.
#[inline]
pub(crate) fn decimal_into(mut n: u64, buf: &mut [u8]) -> usize {
    if n < 10 {
        buf[0] = b'0' + n as u8;
        return 1;
    }
    if n < 100 {
        buf[0] = b'0' + (n / 10) as u8;
        buf[1] = b'0' + (n % 10) as u8;
        return 2;
    }
    let mut len = 1;
    let mut rest = n / 10;
    while rest > 0 {
        len += 1;
        rest /= 10;
    }
    for slot in buf[..len].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    len
}

/// Appends the decimal digits of `n`.
#[inline]
pub fn write_decimal(n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let len = decimal_into(n, &mut buf);
    out.extend_from_slice(&buf[..len]);
}

/// The 20-bit range prefix of a hash (its first five hex digits).
#[inline]
pub fn prefix_of(hash: &HashBytes) -> u32 {
    ((hash[0] as u32) << 12) | ((hash[1] as u32) << 4) | ((hash[2] as u32) >> 4)
}

/// Parses a 5-hex-digit range prefix, either case.
pub fn parse_prefix(text: &[u8]) -> Result<u32, PrefixError> {
    if text.len() != 5 {
        return Err(PrefixError::Length);
    }
    let mut value = 0u32;
    for &b in text {
        let d = hex_digit(b).ok_or(PrefixError::NotHex)?;
        value = (value << 4) | d as u32;
    }
    Ok(value)
}

/// Why a range prefix was refused; the messages are the range API's own texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixError {
    /// Not five characters long.
    Length,
    /// Five characters, not all hex digits.
    NotHex,
}

impl PrefixError {
    /// The range API's own text for this error.
    pub fn message(self) -> &'static str {
        match self {
            PrefixError::Length => "The hash prefix was not in a valid format",
            PrefixError::NotHex => "The hash prefix was not valid hexadecimal",
        }
    }
}

impl std::fmt::Display for PrefixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PrefixError {}

#[cfg(test)]
mod tests {
    /// The table's answer for one digit.
    fn table_decode(hex: &[u8]) -> Option<Vec<u8>> {
        hex.chunks_exact(2)
            .map(|p| Some((hex_digit(p[0])? << 4) | hex_digit(p[1])?))
            .collect()
    }

    #[test]
    fn word_decoding_agrees_with_the_table_for_every_byte_at_every_place() {
        let base = *b"0123456789abcdefABCDEF0123456789aBcDeF09";
        for len in (0..=40).step_by(2) {
            for place in 0..len {
                for b in 0..=255u8 {
                    let mut hex = base;
                    hex[place] = b;
                    let want = table_decode(&hex[..len]);
                    let got = decode_hex(&hex[..len]).map(|h| h[..len / 2].to_vec());
                    assert_eq!(got, want, "len {len}, byte {b:#04x} at {place}");
                }
            }
        }
        // Bytes whose sums would carry into a neighbour if the high bit were not refused.
        for b in [
            0x80u8, 0xB0, 0xC1, 0xE1, 0xFF, 0x7F, 0x2F, 0x3A, 0x40, 0x47, 0x60, 0x67,
        ] {
            for place in 0..8 {
                let mut hex = *b"00000000";
                hex[place] = b;
                assert!(decode_hex(&hex).is_none(), "{b:#04x} at {place}");
                assert!(table_decode(&hex).is_none());
            }
        }
    }

    /// The SSE2 decoder of sixteen digits (on x86-64) against two word decoders: every byte
    /// at every place, and every pair of bytes at two places, in digit strings of both cases.
    #[test]
    fn sixteen_digits_at_once_agree_with_two_words() {
        let bases = [
            *b"0123456789abcdef",
            *b"FEDCBA9876543210",
            *b"aBcDeF0918273645",
        ];
        for base in bases {
            assert_eq!(decode_hex_16(&base), decode_hex_16_words(&base));
            assert!(decode_hex_16(&base).is_some());
            for place in 0..16 {
                for b in 0..=255u8 {
                    let mut d = base;
                    d[place] = b;
                    assert_eq!(
                        decode_hex_16(&d),
                        decode_hex_16_words(&d),
                        "byte {b:#04x} at {place}"
                    );
                }
            }
        }
        for (first, second) in [(0, 1), (7, 8), (14, 15), (3, 12)] {
            for a in 0..=255u8 {
                for b in 0..=255u8 {
                    let mut d = bases[0];
                    d[first] = a;
                    d[second] = b;
                    assert_eq!(decode_hex_16(&d), decode_hex_16_words(&d));
                }
            }
        }
    }

    #[test]
    fn hash_words_round_trip_and_order_as_the_hashes() {
        let mut rng = crate::rng::SplitMix64::new(11);
        let mut hashes = Vec::new();
        for kind in [HashKind::Sha1, HashKind::Ntlm] {
            for _ in 0..2_000 {
                let mut hash = [0u8; 20];
                for b in &mut hash[..kind.hex_len() / 2] {
                    // Few values, so that equal words and equal hashes occur.
                    *b = (rng.next_bits() % 3) as u8 * 0x7F;
                }
                let hex = hash_to_hex(&hash, kind);
                let words = decode_hash_words(hex.as_bytes(), kind).unwrap();
                let mut back = [0xAAu8; 20];
                store_hash_words(words, &mut back);
                assert_eq!(back, hash);
                assert_eq!(hash_words_order(words), hash_order(&hash));
                hashes.push(hash);
            }
            assert!(
                decode_hash_words(&hash_to_hex(&[1; 20], kind).as_bytes()[1..], kind).is_none()
            );
        }
        for pair in hashes.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert_eq!(hash_order(&a).cmp(&hash_order(&b)), compare_hashes(&a, &b));
            assert_eq!(hash_order(&a).cmp(&hash_order(&b)), a.cmp(&b));
        }
    }

    #[test]
    fn word_decoding_of_random_digits() {
        let mut rng = crate::rng::SplitMix64::new(7);
        let digits = b"0123456789abcdefABCDEF";
        for _ in 0..20_000 {
            let hex: Vec<u8> = (0..40)
                .map(|_| digits[(rng.next_bits() % digits.len() as u64) as usize])
                .collect();
            let want = table_decode(&hex).unwrap();
            assert_eq!(decode_hex(&hex).unwrap().to_vec(), want);
        }
    }

    use super::*;

    #[test]
    fn known_password_hashes() {
        assert_eq!(
            hash_to_hex(&sha1_password(b"password"), HashKind::Sha1),
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
        assert_eq!(
            hash_to_hex(&ntlm_password("password"), HashKind::Ntlm),
            "8846F7EAEE8FB117AD06BDD830B7586C"
        );
        // Non-ASCII: the UTF-16LE encoding matters for NTLM.
        assert_eq!(
            hash_to_hex(&ntlm_password("pässwörd"), HashKind::Ntlm).len(),
            32
        );
        assert_eq!(HashKind::Ntlm.hash_password(b"\xff\xfe"), None);
    }

    #[test]
    fn ntlm_long_password_crosses_buffer() {
        let long: String = "ab€".repeat(100);
        let mut utf16 = Vec::new();
        for u in long.encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        use md4::{Digest, Md4};
        let expect = Md4::digest(&utf16);
        assert_eq!(&ntlm_password(&long)[..16], &expect[..]);
    }

    #[test]
    fn hash_comparison_matches_byte_order() {
        let mut x = 7u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut h = [0u8; 20];
            for (i, b) in h.iter_mut().enumerate() {
                *b = ((x >> (i % 8 * 8)) as u8) & if i % 3 == 0 { 0x01 } else { 0xFF };
            }
            h
        };
        for _ in 0..20_000 {
            let (a, b) = (next(), next());
            assert_eq!(compare_hashes(&a, &b), a.cmp(&b));
            assert_eq!(compare_hashes(&a, &a), std::cmp::Ordering::Equal);
        }
    }

    #[test]
    fn hex_of_four_bytes_matches_the_table() {
        for seed in 0..5000u32 {
            let b = seed.wrapping_mul(2_654_435_761).to_le_bytes();
            let mut expect = Vec::new();
            encode_hex_into(&b, &mut expect);
            assert_eq!(&hex_upper_4(b)[..], &expect[..], "{b:?}");
        }
        assert_eq!(&hex_upper_4([0x00, 0x9F, 0xA0, 0xFF]), b"009FA0FF");
    }

    #[test]
    fn hex_of_sixteen_bytes_matches_the_table() {
        for seed in 0..5000u64 {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            b[8..].copy_from_slice(&seed.wrapping_mul(0xC2B2_AE3D_27D4_EB4F).to_be_bytes());
            let mut expect = Vec::new();
            encode_hex_into(&b, &mut expect);
            assert_eq!(&hex_upper_16(&b)[..], &expect[..], "{b:?}");
        }
        let all: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        assert_eq!(&hex_upper_16(&all), b"00112233445566778899AABBCCDDEEFF");
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let h = decode_hex(b"5baa61E4c9b93f3f0682250b6cf8331b7ee68fd8").unwrap();
        assert_eq!(
            hash_to_hex(&h, HashKind::Sha1),
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
        assert!(decode_hex(b"5g").is_none());
        assert!(decode_hex(b"5").is_none());
        assert!(parse_hash(b"5BAA", HashKind::Sha1).is_none());
        assert_eq!(prefix_of(&h), 0x5BAA6);
        assert_eq!(parse_prefix(b"5baa6"), Ok(0x5BAA6));
        assert_eq!(parse_prefix(b"5baa"), Err(PrefixError::Length));
        assert_eq!(parse_prefix(b"5baaz"), Err(PrefixError::NotHex));
    }
}
