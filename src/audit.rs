//! Auditing an account database against a password index, as Active Directory password audits
//! do: which accounts use a leaked password, which share one, which have an empty password or
//! still store an LM hash.
//!
//! # Input lines
//! Detected line by line; blank lines are skipped, and a CR before the line end and byte-order
//! marks where a line starts are dropped.
//! - **pwdump and secretsdump**: `[DOMAIN\]user:RID:LMHASH:NTHASH:::`, where RID is decimal,
//!   the two hashes are 32 hex digits each (the LM one may also be pwdump's
//!   `NO PASSWORD*********************`), and at most the three empty fields follow the NT
//!   hash. secretsdump's ` (status=Enabled)` or ` (status=Disabled)` may end the line. History
//!   entries (`user_history0`, ...) are accounts of their own, named as they appear. The NT
//!   hash needs an NTLM index.
//! - **`user:HASH`**: one hash of the index's kind (the hashcat NT form `user:NTHASH`, or a
//!   legacy user table of unsalted SHA-1 hashes), split at the last `:`.
//!
//! Anything else is an error naming the line, as is a hash of the wrong kind (with a hint).
//! Errors never repeat a line: it holds hashes.

use crate::hash::{decode_hex, HashBytes, HashKind};
use crate::index::Index;

/// The NT hash of the empty password.
pub const EMPTY_NT: &str = "31D6CFE0D16AE931B73C59D7E0C089C0";
/// The LM hash stored when there is none (the LM hash of the empty password).
pub const EMPTY_LM: &str = "AAD3B435B51404EEAAD3B435B51404EE";
/// SHA-1 of the empty password.
pub const EMPTY_SHA1: &str = "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709";

/// One account read from a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountLine<'a> {
    /// The user name as it appears, domain included (`CORP\alice`, `alice_history0`).
    pub user: &'a [u8],
    /// The relative identifier, where the line has one.
    pub rid: Option<u32>,
    /// The password hash (NT for pwdump lines).
    pub hash: HashBytes,
    /// An LM hash other than the empty one is stored.
    pub lm: bool,
    /// secretsdump says the account is disabled.
    pub disabled: bool,
}

/// Reads one line (line end already removed) against an index of `kind`: `Ok(None)` for a
/// blank line.
pub fn parse_account_line(line: &[u8], kind: HashKind) -> Result<Option<AccountLine<'_>>, String> {
    let mut line = line.strip_suffix(b"\r").unwrap_or(line);
    while let Some(rest) = line.strip_prefix(crate::dump::BOM) {
        line = rest;
    }
    if line.trim_ascii().is_empty() {
        return Ok(None);
    }
    let mut disabled = false;
    if let Some(rest) = line.strip_suffix(b" (status=Disabled)") {
        line = rest;
        disabled = true;
    } else if let Some(rest) = line.strip_suffix(b" (status=Enabled)") {
        line = rest;
    }
    // Up to 8 fields are looked at; a ninth means the line is no pwdump line.
    let mut field_array: [&[u8]; 8] = [&[]; 8];
    let mut count = 0;
    for f in line.split(|&b| b == b':') {
        if count == field_array.len() {
            count += 1;
            break;
        }
        field_array[count] = f;
        count += 1;
    }
    let fields = &field_array[..count.min(field_array.len())];
    let is_hex = |f: &[u8], n: usize| f.len() == n && f.iter().all(u8::is_ascii_hexdigit);
    // pwdump: user:RID:LM:NT, then up to three empty fields.
    if (4..=7).contains(&count)
        && !fields[1].is_empty()
        && fields[1].iter().all(u8::is_ascii_digit)
        && fields[4..].iter().all(|f| f.is_empty())
        && (is_hex(fields[3], 32) || is_hex(fields[3], 40))
    {
        let user = fields[0];
        if user.is_empty() {
            return Err("an empty user name".into());
        }
        let rid = std::str::from_utf8(fields[1])
            .ok()
            .and_then(|r| r.parse().ok())
            .ok_or("a RID that does not fit 32 bits")?;
        let lm = if is_hex(fields[2], 32) {
            !fields[2].eq_ignore_ascii_case(EMPTY_LM.as_bytes())
        } else if fields[2].starts_with(b"NO PASSWORD") {
            false
        } else {
            return Err("the LM hash of a pwdump line is not 32 hex digits".into());
        };
        if kind != HashKind::Ntlm || fields[3].len() != 32 {
            return Err(format!(
                "a pwdump or secretsdump line holds an NT hash (32 hex digits), which needs an \
                 NTLM index, not {} {}",
                if kind == HashKind::Ntlm { "an" } else { "a" },
                kind.display_name()
            ));
        }
        let hash = decode_hex(fields[3]).expect("checked: hex");
        return Ok(Some(AccountLine {
            user,
            rid: Some(rid),
            hash,
            lm,
            disabled,
        }));
    }
    // user:HASH, split at the last `:`.
    if let Some(colon) = memchr::memrchr(b':', line) {
        let (user, hex) = (&line[..colon], line[colon + 1..].trim_ascii());
        if !user.is_empty() && hex.iter().all(u8::is_ascii_hexdigit) && !hex.is_empty() {
            if hex.len() == kind.hex_len() {
                let hash = decode_hex(hex).expect("checked: hex");
                return Ok(Some(AccountLine {
                    user,
                    rid: None,
                    hash,
                    lm: false,
                    disabled,
                }));
            }
            if let Some(other) = HashKind::from_hex_len(hex.len()) {
                return Err(format!(
                    "{} {} hash ({} hex digits) against {} {} index; audit it against an index \
                     of its kind",
                    if other == HashKind::Ntlm { "an" } else { "a" },
                    other.display_name(),
                    hex.len(),
                    if kind == HashKind::Ntlm { "an" } else { "a" },
                    kind.display_name()
                ));
            }
        }
    }
    Err(format!(
        "expected `[DOMAIN\\]user:RID:LMHASH:NTHASH:::` (pwdump, secretsdump) or `user:HASH` \
         with {} hex digits ({})",
        kind.hex_len(),
        kind.display_name()
    ))
}

/// The accounts read, kept compactly: millions of them fit in little memory.
#[derive(Default)]
pub struct Accounts {
    names: Vec<u8>,
    name_ends: Vec<usize>,
    /// RIDs, `u32::MAX` where absent (`rid` gives an `Option`).
    rids: Vec<u32>,
    hashes: Vec<HashBytes>,
    flags: Vec<u8>,
}

const LM: u8 = 1;
const DISABLED: u8 = 2;

impl Accounts {
    /// Adds an account.
    pub fn push(&mut self, account: &AccountLine<'_>) {
        self.names.extend_from_slice(account.user);
        self.name_ends.push(self.names.len());
        self.rids.push(account.rid.unwrap_or(u32::MAX));
        self.hashes.push(account.hash);
        self.flags
            .push((u8::from(account.lm) * LM) | (u8::from(account.disabled) * DISABLED));
    }

    /// Accounts held.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The user name of account `i`, as it appeared (lossy UTF-8).
    pub fn user(&self, i: usize) -> std::borrow::Cow<'_, str> {
        let start = if i == 0 { 0 } else { self.name_ends[i - 1] };
        String::from_utf8_lossy(&self.names[start..self.name_ends[i]])
    }

    /// The RID of account `i`, where it had one.
    pub fn rid(&self, i: usize) -> Option<u32> {
        (self.rids[i] != u32::MAX).then_some(self.rids[i])
    }

    /// The hash of account `i`.
    pub fn hash(&self, i: usize) -> &HashBytes {
        &self.hashes[i]
    }

    /// Whether account `i` stores an LM hash other than the empty one.
    pub fn lm(&self, i: usize) -> bool {
        self.flags[i] & LM != 0
    }

    /// Whether account `i` is disabled.
    pub fn disabled(&self, i: usize) -> bool {
        self.flags[i] & DISABLED != 0
    }
}

/// What the audit found, per account in input order.
pub struct AuditReport {
    /// The accounts.
    pub accounts: Accounts,
    /// Per account, the count of its hash in the index (0: not leaked).
    pub counts: Vec<u64>,
    /// Per account, the number of its shared-password group (1-based, numbered in the order
    /// of their first account), or 0.
    pub groups: Vec<u32>,
    /// Per group (index `g - 1`), its accounts in input order.
    pub group_members: Vec<Vec<u32>>,
    /// Per account, whether its password is empty.
    pub empty: Vec<bool>,
}

/// Counts over all accounts, disabled ones included.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditSummary {
    /// Accounts read.
    pub accounts: u64,
    /// Accounts whose hash is in the index.
    pub leaked: u64,
    /// Groups of accounts sharing one hash.
    pub shared_groups: u64,
    /// Accounts in those groups.
    pub shared_accounts: u64,
    /// Accounts with the empty password.
    pub empty: u64,
    /// Accounts that store an LM hash.
    pub lm: u64,
    /// Disabled accounts.
    pub disabled: u64,
}

impl AuditReport {
    /// Looks every account up in `index` (batched, on all cores) and finds shared, empty and
    /// LM-holding accounts.
    pub fn new(index: &Index, accounts: Accounts) -> crate::Result<AuditReport> {
        use rayon::prelude::*;
        let n = accounts.len();
        let chunks: Vec<crate::Result<Vec<u64>>> = accounts
            .hashes
            .par_chunks(1 << 14)
            .map(|chunk| {
                let mut counts = Vec::with_capacity(chunk.len());
                index.check_many(chunk, &mut counts)?;
                Ok(counts.into_iter().map(|c| c.unwrap_or(0)).collect())
            })
            .collect();
        let mut counts = Vec::with_capacity(n);
        for c in chunks {
            counts.extend(c?);
        }
        // Groups: accounts sorted by the first 64 bits of their hash, kept beside their
        // numbers in one array (sorting numbers through an index into the hashes would miss
        // the cache at every comparison); then each run of equal keys (nearly always one
        // account, or one shared password) is split by the whole hash.
        let mut keys: Vec<(u64, u32)> = accounts
            .hashes
            .par_iter()
            .enumerate()
            .map(|(i, h)| {
                (
                    u64::from_be_bytes(h[..8].try_into().expect("8 bytes")),
                    i as u32,
                )
            })
            .collect();
        keys.par_sort_unstable();
        let mut runs: Vec<Vec<u32>> = Vec::new();
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            while end < n && keys[end].0 == keys[start].0 {
                end += 1;
            }
            if end - start > 1 {
                let mut run: Vec<u32> = keys[start..end].iter().map(|k| k.1).collect();
                let hash = |i: &u32| &accounts.hashes[*i as usize];
                run.sort_by(|a, b| crate::hash::compare_hashes(hash(a), hash(b)).then(a.cmp(b)));
                for same in run.chunk_by(|a, b| hash(a) == hash(b)) {
                    if same.len() > 1 {
                        runs.push(same.to_vec());
                    }
                }
            }
            start = end;
        }
        drop(keys);
        // Numbered in the order of their first account.
        runs.sort_unstable_by_key(|r| r[0]);
        let mut groups = vec![0u32; n];
        for (g, members) in runs.iter().enumerate() {
            for &m in members {
                groups[m as usize] = g as u32 + 1;
            }
        }
        let empty_hash = decode_hex(match index.kind() {
            HashKind::Ntlm => EMPTY_NT.as_bytes(),
            HashKind::Sha1 => EMPTY_SHA1.as_bytes(),
        })
        .expect("a constant");
        let empty = accounts.hashes.iter().map(|h| *h == empty_hash).collect();
        Ok(AuditReport {
            accounts,
            counts,
            groups,
            group_members: runs,
            empty,
        })
    }

    /// Whether account `i` has any finding (leaked, shared, empty, LM).
    pub fn has_finding(&self, i: usize) -> bool {
        self.counts[i] > 0 || self.groups[i] > 0 || self.empty[i] || self.accounts.lm(i)
    }

    /// The counts of accounts with each finding.
    pub fn summary(&self) -> AuditSummary {
        let n = self.accounts.len();
        AuditSummary {
            accounts: n as u64,
            leaked: self.counts.iter().filter(|&&c| c > 0).count() as u64,
            shared_groups: self.group_members.len() as u64,
            shared_accounts: self.group_members.iter().map(|g| g.len() as u64).sum(),
            empty: self.empty.iter().filter(|&&e| e).count() as u64,
            lm: (0..n).filter(|&i| self.accounts.lm(i)).count() as u64,
            disabled: (0..n).filter(|&i| self.accounts.disabled(i)).count() as u64,
        }
    }

    /// The leaked passwords used by the most accounts: (accounts using it, its count in the
    /// index, an account using it), most used first, at most `top`.
    pub fn most_common_leaked(&self, top: usize) -> Vec<(u64, u64, u32)> {
        let mut common: Vec<(u64, u64, u32)> = Vec::new();
        let mut seen_groups = std::collections::HashSet::new();
        for i in 0..self.accounts.len() {
            if self.counts[i] == 0 {
                continue;
            }
            let users = match self.groups[i] {
                0 => 1,
                g if seen_groups.insert(g) => self.group_members[g as usize - 1].len() as u64,
                _ => continue,
            };
            common.push((users, self.counts[i], i as u32));
        }
        common.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        common.truncate(top);
        common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nt(text: &str) -> HashBytes {
        crate::hash::parse_hash(text.as_bytes(), HashKind::Ntlm).unwrap()
    }

    #[test]
    fn account_lines_of_every_form() {
        let ntlm = HashKind::Ntlm;
        let a = parse_account_line(
            b"CORP\\alice:1104:AAD3B435B51404EEAAD3B435B51404EE:8846F7EAEE8FB117AD06BDD830B7586C:::",
            ntlm,
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.user, b"CORP\\alice");
        assert_eq!(a.rid, Some(1104));
        assert_eq!(a.hash, nt("8846F7EAEE8FB117AD06BDD830B7586C"));
        assert!(!a.lm && !a.disabled);
        let b = parse_account_line(
            b"bob_history0:1105:e52cac67419a9a224a3b108f3fa6cb6d:31d6cfe0d16ae931b73c59d7e0c089c0::: (status=Disabled)\r",
            ntlm,
        )
        .unwrap()
        .unwrap();
        assert_eq!(b.user, b"bob_history0");
        assert!(b.lm && b.disabled);
        let c = parse_account_line(
            b"\xEF\xBB\xBFcarol:500:NO PASSWORD*********************:31D6CFE0D16AE931B73C59D7E0C089C0::: (status=Enabled)",
            ntlm,
        )
        .unwrap()
        .unwrap();
        assert!(!c.lm && !c.disabled);
        let d = parse_account_line(b"dave:8846f7eaee8fb117ad06bdd830b7586c", ntlm)
            .unwrap()
            .unwrap();
        assert_eq!(d.rid, None);
        assert_eq!(d.hash, nt("8846F7EAEE8FB117AD06BDD830B7586C"));
        let s = parse_account_line(
            b"web:user:5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8",
            HashKind::Sha1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.user, b"web:user");
        assert_eq!(parse_account_line(b"  \r", ntlm), Ok(None));
    }

    #[test]
    fn bad_lines_and_wrong_kinds_are_explained_without_their_content() {
        let ntlm = HashKind::Ntlm;
        let cases: [(&[u8], HashKind, &str); 6] = [
            (b"alice", ntlm, "expected `[DOMAIN\\]user:RID"),
            (b"alice:hunter2", ntlm, "expected"),
            (
                b"alice:5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8",
                ntlm,
                "a SHA-1 hash (40",
            ),
            (
                b"alice:8846F7EAEE8FB117AD06BDD830B7586C",
                HashKind::Sha1,
                "an NTLM hash (32",
            ),
            (
                b"alice:500:AAD3B435B51404EEAAD3B435B51404EE:8846F7EAEE8FB117AD06BDD830B7586C:::",
                HashKind::Sha1,
                "needs an NTLM index",
            ),
            (
                b":500:AAD3B435B51404EEAAD3B435B51404EE:8846F7EAEE8FB117AD06BDD830B7586C:::",
                ntlm,
                "empty user",
            ),
        ];
        for (line, kind, needle) in cases {
            let err = parse_account_line(line, kind).unwrap_err();
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains("8846") && !err.contains("hunter2"), "{err}");
        }
    }
}
