//! A fast, deterministic generator of synthetic dumps for samples, tests and benchmarks.
//!
//! The output looks like the official sorted dump: upper-case `HASH:COUNT` lines sorted by
//! hash, CRLF (or LF) line ends. Hashes are uniformly random; counts are heavy-tailed
//! (Pareto, shape 0.9, so about 9% exceed 14 and a few of a billion exceed 2^32). Known
//! passwords can be mixed in with chosen counts. The same seed gives the same bytes on every
//! machine: the random numbers come from [`SplitMix64`], defined in this crate, not from a library whose
//! stream might change.

use crate::format::BUCKETS;
use crate::hash::write_decimal;
use crate::hash::{HashBytes, HashKind, HEX_PAIRS};
use rand_distr::{Binomial, Distribution};
use rayon::prelude::*;
use std::io::Write;

pub use crate::rng::SplitMix64;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Random hashes to generate.
    pub hashes: u64,
    /// Hash kind.
    pub kind: HashKind,
    /// Seed; the same seed gives the same dump.
    pub seed: u64,
    /// CRLF line ends (as the official dump) or LF.
    pub crlf: bool,
    /// Passwords to mix in, with their counts.
    pub known: Vec<(String, u64)>,
}

/// A few well-known passwords with made-up counts (one above 2^32) for samples and demos.
pub fn sample_passwords() -> Vec<(String, u64)> {
    vec![
        ("password".into(), 9_545_824),
        ("123456".into(), 37_359_195),
        ("qwerty".into(), 10_556_095),
        ("letmein".into(), 1_142_435),
        ("correct horse battery staple".into(), 5_000_000_000),
    ]
}

/// Counts below this are drawn from a table; larger ones with `powf`.
const COUNT_TABLE: usize = 64;

/// `P(count >= k) = k^-0.9` for k below [`COUNT_TABLE`], as fractions of 2^53.
static COUNT_THRESHOLDS: std::sync::LazyLock<[u64; COUNT_TABLE]> = std::sync::LazyLock::new(|| {
    let mut t = [0u64; COUNT_TABLE];
    for (k, slot) in t.iter_mut().enumerate().skip(1) {
        *slot = ((k as f64).powf(-0.9) * (1u64 << 53) as f64) as u64;
    }
    t
});

/// Heavy-tailed count: Pareto with shape 0.9 (the largest `k` with `u <= k^-0.9`), at least 1.
#[inline]
fn draw_count(rng: &mut SplitMix64) -> u64 {
    let u = (rng.next_bits() >> 11) + 1; // uniform in (0, 2^53]
    let t = &*COUNT_THRESHOLDS;
    let mut k = 1;
    while k + 1 < COUNT_TABLE && u <= t[k + 1] {
        k += 1;
    }
    if k + 1 < COUNT_TABLE {
        return k as u64;
    }
    let c = (u as f64 / (1u64 << 53) as f64).powf(-1.0 / 0.9);
    if c >= u64::MAX as f64 {
        u64::MAX
    } else {
        (c as u64).max(COUNT_TABLE as u64 - 1)
    }
}

/// Splits `n` hashes over `counts` (buckets) as a uniform multinomial would, by halving.
fn split(n: u64, counts: &mut [u64], seed: u64, node: u64) {
    if counts.len() == 1 {
        counts[0] = n;
        return;
    }
    let mut rng = SplitMix64::new(seed ^ node.wrapping_mul(0xA24B_AED4_963E_E407));
    let left = if n == 0 {
        0
    } else {
        Binomial::new(n, 0.5).map_or(n / 2, |b| b.sample(&mut rng))
    };
    let (l, r) = counts.split_at_mut(counts.len() / 2);
    if l.len() >= 4096 {
        rayon::join(
            || split(left, l, seed, node * 2),
            || split(n - left, r, seed, node * 2 + 1),
        );
    } else {
        split(left, l, seed, node * 2);
        split(n - left, r, seed, node * 2 + 1);
    }
}

/// The sorted entries of one 20-bit bucket.
fn bucket_entries(
    bucket: u32,
    n: u64,
    options: &GenerateOptions,
    known: &[(HashBytes, u64)],
    out: &mut Vec<(HashBytes, u64)>,
) {
    out.clear();
    let mut rng =
        SplitMix64::new(options.seed ^ (bucket as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let bytes = options.kind.byte_len();
    // The 64 bits after the prefix decide the order: draw and sort just those (redrawing the
    // rare duplicate), then give each its independent random remaining bits and count.
    let mut keys: Vec<u64> = Vec::with_capacity(n as usize);
    while (keys.len() as u64) < n {
        for _ in keys.len() as u64..n {
            keys.push(rng.next_bits());
        }
        keys.sort_unstable();
        keys.dedup();
    }
    for &key in &keys {
        let tail = rng.next_bits();
        let extra = rng.next_bits();
        // Hash bits 20..148 are `key` then `tail`; bits 148..160 come from `extra`.
        let v = ((key as u128) << 64) | tail as u128;
        let mut h: HashBytes = [0; 20];
        h[0] = (bucket >> 12) as u8;
        h[1] = (bucket >> 4) as u8;
        h[2] = ((bucket as u8 & 0x0F) << 4) | (v >> 124) as u8;
        let w = (v << 4) | (extra >> 60) as u128;
        h[3..19].copy_from_slice(&w.to_be_bytes());
        h[19] = extra as u8;
        h[bytes..].fill(0);
        out.push((h, draw_count(&mut rng)));
    }
    for (h, c) in known {
        if crate::hash::prefix_of(h) == bucket {
            match out.binary_search_by(|e| e.0.cmp(h)) {
                Ok(i) => out[i].1 = *c,
                Err(i) => out.insert(i, (*h, *c)),
            }
        }
    }
}

/// Writes the dump to `out`, generating in parallel; returns the number of lines.
pub fn generate<W: Write>(options: &GenerateOptions, out: &mut W) -> std::io::Result<u64> {
    let mut counts = vec![0u64; BUCKETS];
    split(options.hashes, &mut counts, options.seed, 1);
    let known: Vec<(HashBytes, u64)> = options
        .known
        .iter()
        .filter_map(|(p, c)| options.kind.hash_password(p.as_bytes()).map(|h| (h, *c)))
        .collect();
    let hex_bytes = options.kind.byte_len();
    let eol: &[u8] = if options.crlf { b"\r\n" } else { b"\n" };
    let group = 256usize;
    let mut lines = 0u64;
    let groups: Vec<usize> = (0..BUCKETS / group).collect();
    let per_batch = rayon::current_num_threads() * 4;
    for batch in groups.chunks(per_batch) {
        let texts: Vec<(Vec<u8>, u64)> = batch
            .par_iter()
            .map(|&g| {
                let rows: u64 = counts[g * group..(g + 1) * group].iter().sum();
                let mut text = Vec::with_capacity(rows as usize * (hex_bytes * 2 + 8));
                let mut entries = Vec::new();
                let mut n_lines = 0;
                for (bucket, &n) in counts.iter().enumerate().skip(g * group).take(group) {
                    bucket_entries(bucket as u32, n, options, &known, &mut entries);
                    for (h, c) in &entries {
                        let mut line = [0u8; 40];
                        for (pair, &b) in line.chunks_exact_mut(2).zip(&h[..hex_bytes]) {
                            pair.copy_from_slice(&HEX_PAIRS[b as usize]);
                        }
                        text.extend_from_slice(&line[..hex_bytes * 2]);
                        text.push(b':');
                        write_decimal(*c, &mut text);
                        text.extend_from_slice(eol);
                    }
                    n_lines += entries.len() as u64;
                }
                (text, n_lines)
            })
            .collect();
        for (text, n) in texts {
            out.write_all(&text)?;
            lines += n;
        }
    }
    Ok(lines)
}

// --- Stealer logs ------------------------------------------------------------------------

const FIRST_NAMES: [&str; 24] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yusuf", "zoe",
    "maria", "jose", "wei",
];
const LAST_NAMES: [&str; 16] = [
    "smith", "jones", "garcia", "miller", "davis", "lopez", "wilson", "anderson", "thomas",
    "moore", "martin", "lee", "perez", "white", "harris", "clark",
];
const MAIL_DOMAINS: [&str; 8] = [
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "mail.ru",
    "gmx.de",
    "icloud.com",
    "example.org",
];
const SITES: [&str; 16] = [
    "accounts.google.com",
    "www.facebook.com",
    "login.live.com",
    "www.netflix.com",
    "discord.com",
    "steamcommunity.com",
    "www.instagram.com",
    "github.com",
    "www.paypal.com",
    "www.amazon.com",
    "twitter.com",
    "www.roblox.com",
    "signin.ebay.com",
    "vk.com",
    "www.linkedin.com",
    "mail.yahoo.com",
];
const PATHS: [&str; 6] = [
    "",
    "login",
    "signin",
    "account/login",
    "wp-login.php",
    "auth/",
];
const APPS: [&str; 6] = [
    "facebook.katana",
    "instagram.android",
    "zhiliaoapp.musically",
    "twitter.android",
    "discord",
    "spotify.music",
];
const WORDS: [&str; 20] = [
    "password", "123456", "qwerty", "letmein", "dragon", "monkey", "sunshine", "iloveyou",
    "football", "princess", "admin", "welcome", "shadow", "master", "hunter2", "abc123",
    "trustno1", "superman", "baseball", "starwars",
];

/// A heavy-tailed rank in 0..n: rank r comes up about as often as 1/(r+1).
#[inline]
fn draw_rank(rng: &mut SplitMix64, n: u64) -> u64 {
    let r = (draw_count(rng) - 1).min(n.saturating_sub(1));
    if rng.next_bits().is_multiple_of(4) {
        // A quarter uniform, so that the long tail is long.
        rng.next_bits() % n.max(1)
    } else {
        r
    }
}

fn pick<'a>(rng: &mut SplitMix64, from: &[&'a str]) -> &'a str {
    from[(rng.next_bits() % from.len() as u64) as usize]
}

/// Appends the login of account `id`: an email address or a user name, derived from the id
/// alone, so a repeated account has the same login; some in capitals (as logs hold them).
fn push_login(id: u64, text: &mut Vec<u8>) {
    let mut r = SplitMix64::new(id ^ 0x10C1_7E57);
    let first = pick(&mut r, &FIRST_NAMES);
    let capital = r.next_bits().is_multiple_of(10);
    let start = text.len();
    text.extend_from_slice(first.as_bytes());
    if r.next_bits() % 10 < 7 {
        text.push(if r.next_bits().is_multiple_of(2) {
            b'.'
        } else {
            b'_'
        });
        text.extend_from_slice(pick(&mut r, &LAST_NAMES).as_bytes());
        write_decimal(id % 100_000, text);
        text.push(b'@');
        text.extend_from_slice(pick(&mut r, &MAIL_DOMAINS).as_bytes());
    } else {
        write_decimal(id % 1_000_000, text);
    }
    if capital {
        text[start] = text[start].to_ascii_uppercase();
    }
}

/// Appends a password for account `id`: half the time one of a heavy-tailed list of common
/// ones shared by many accounts, else the account's own (the same each time it comes up).
fn push_password(rng: &mut SplitMix64, id: u64, text: &mut Vec<u8>) {
    if rng.next_bits().is_multiple_of(2) {
        let rank = draw_rank(rng, 1 << 20);
        text.extend_from_slice(WORDS[(rank % WORDS.len() as u64) as usize].as_bytes());
        if rank >= WORDS.len() as u64 {
            write_decimal(rank / WORDS.len() as u64, text);
        }
    } else {
        let mut r = SplitMix64::new(id ^ 0x9A55_30D5);
        text.extend_from_slice(pick(&mut r, &WORDS).as_bytes());
        text.push([b'!', b'#', b' ', b':', b'.'][(r.next_bits() % 5) as usize]);
        write_decimal(r.next_bits() % 10_000, text);
    }
}

/// Appends one stealer-log line in one of the shapes of [`crate::credential`]: URL lines with
/// `:`, `|` or space separators, ports, paths and Android apps, host-first lines, and plain
/// `login:password`.
fn push_ulp_line(rng: &mut SplitMix64, accounts: u64, text: &mut Vec<u8>) {
    let id = draw_rank(rng, accounts);
    let shape = rng.next_bits() % 100;
    let sep = match shape {
        60..=66 => b'|',
        67..=71 => b' ',
        _ => b':',
    };
    match shape {
        0..=71 => {
            text.extend_from_slice(b"https://");
            text.extend_from_slice(pick(rng, &SITES).as_bytes());
            text.push(b'/');
            text.extend_from_slice(pick(rng, &PATHS).as_bytes());
        }
        72..=79 => {
            text.extend_from_slice(b"http://");
            text.extend_from_slice(pick(rng, &SITES).as_bytes());
            text.extend_from_slice(if shape.is_multiple_of(2) {
                b":8080/"
            } else {
                b":8443/login"
            });
        }
        80..=87 => {
            text.extend_from_slice(b"android://");
            let mut b64 = [0u8; 20];
            for c in b64.iter_mut() {
                *c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    [(rng.next_bits() % 64) as usize];
            }
            text.extend_from_slice(&b64);
            text.extend_from_slice(b"==@com.");
            text.extend_from_slice(pick(rng, &APPS).as_bytes());
            text.push(b'/');
        }
        88..=91 => text.extend_from_slice(pick(rng, &SITES).as_bytes()),
        _ => {}
    }
    if shape <= 91 {
        text.push(sep);
    }
    push_login(id, text);
    text.push(sep);
    push_password(rng, id, text);
    text.push(b'\n');
}

/// Writes `lines` synthetic stealer-log lines (`--input ulp`) to `out`, generating in
/// parallel: logins of about `lines / 4` accounts and passwords, both with heavy-tailed
/// repeats. The same seed gives the same bytes. Returns the number of lines.
pub fn generate_ulp<W: Write>(lines: u64, seed: u64, out: &mut W) -> std::io::Result<u64> {
    const BLOCK: u64 = 1 << 15;
    let accounts = (lines / 4).max(1);
    write_blocks(lines.div_ceil(BLOCK), out, |b| {
        let mut rng = SplitMix64::new(seed ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        let n = BLOCK.min(lines - b * BLOCK);
        let mut text = Vec::with_capacity(n as usize * 64);
        for _ in 0..n {
            push_ulp_line(&mut rng, accounts, &mut text);
        }
        (text, n)
    })
}

/// Writes blocks `0..blocks`, each made on the pool by `make` (its text and line count), in
/// order, a few per thread at a time; returns the lines written.
fn write_blocks<W: Write>(
    blocks: u64,
    out: &mut W,
    make: impl Fn(u64) -> (Vec<u8>, u64) + Sync,
) -> std::io::Result<u64> {
    let blocks: Vec<u64> = (0..blocks).collect();
    let per_batch = rayon::current_num_threads() * 4;
    let mut lines = 0u64;
    for batch in blocks.chunks(per_batch) {
        let texts: Vec<(Vec<u8>, u64)> = batch.par_iter().map(|&b| make(b)).collect();
        for (text, n) in texts {
            out.write_all(&text)?;
            lines += n;
        }
    }
    Ok(lines)
}

// --- Account dumps ------------------------------------------------------------------------

/// The password of generated account `i`, `None` for the empty one: a few well-known ones
/// (leaked in the sample dumps), a few shared by many accounts, the rest the account's own.
pub fn pwdump_password(rng: &mut SplitMix64, i: u64) -> Option<String> {
    let known = ["password", "123456", "qwerty", "letmein"];
    match rng.next_bits() % 100 {
        0..=1 => None,
        2..=9 => Some(known[(rng.next_bits() % 4) as usize].to_string()),
        10..=14 => Some(format!("Winter{}!", 2020 + rng.next_bits() % 6)),
        _ => Some(format!("own-{i}-{:x}", rng.next_bits() % 1_000_000)),
    }
}

/// Writes a synthetic secretsdump of `accounts` accounts (`CORP\userN:RID:LM:NT:::` with
/// ` (status=Enabled)` or ` (status=Disabled)`, some with history entries) for `audit`:
/// well-known, shared and empty passwords, LM hashes on some, disabled accounts. The same
/// seed gives the same bytes. Returns the number of lines.
pub fn generate_pwdump<W: Write>(accounts: u64, seed: u64, out: &mut W) -> std::io::Result<u64> {
    const BLOCK: u64 = 1 << 15;
    write_blocks(accounts.div_ceil(BLOCK), out, |b| {
        let mut rng = SplitMix64::new(seed ^ b.wrapping_mul(0xA24B_AED4_963E_E407));
        let mut text = Vec::with_capacity(BLOCK as usize * 120);
        let mut n = 0;
        for i in b * BLOCK..accounts.min((b + 1) * BLOCK) {
            let disabled = rng.next_bits().is_multiple_of(20);
            let history = if rng.next_bits().is_multiple_of(10) {
                2
            } else {
                0
            };
            for h in 0..=history {
                let password = pwdump_password(&mut rng, i * 4 + h);
                let nt = crate::hash::ntlm_password(password.as_deref().unwrap_or(""));
                text.extend_from_slice(b"CORP\\user");
                write_decimal(i, &mut text);
                if h > 0 {
                    text.extend_from_slice(b"_history");
                    write_decimal(h - 1, &mut text);
                }
                text.push(b':');
                write_decimal(1000 + i, &mut text);
                text.push(b':');
                if rng.next_bits().is_multiple_of(25) {
                    // An LM hash (made up: what matters is that it is not the empty one).
                    let lm = rng.next_bits().to_be_bytes();
                    crate::hash::encode_hex_into(&lm, &mut text);
                    crate::hash::encode_hex_into(&lm, &mut text);
                } else {
                    text.extend_from_slice(crate::audit::EMPTY_LM.as_bytes());
                }
                text.push(b':');
                crate::hash::encode_hex_into(&nt[..16], &mut text);
                text.extend_from_slice(if disabled {
                    b"::: (status=Disabled)\n"
                } else {
                    b"::: (status=Enabled)\n"
                });
                n += 1;
            }
        }
        (text, n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stealer_lines_are_deterministic_varied_and_repeat() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        assert_eq!(generate_ulp(100_000, 3, &mut a).unwrap(), 100_000);
        generate_ulp(100_000, 3, &mut b).unwrap();
        assert_eq!(a, b);
        let lines: Vec<&[u8]> = a.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 100_000);
        let has = |p: &[u8]| lines.iter().filter(|l| l.starts_with(p)).count();
        assert!(has(b"https://") > 50_000);
        assert!(has(b"android://") > 5_000);
        assert!(has(b"http://") > 5_000);
        assert!(lines.iter().filter(|l| l.contains(&b'|')).count() > 3_000);
        let distinct: std::collections::HashSet<&[u8]> = lines.iter().copied().collect();
        assert!(distinct.len() < lines.len(), "no line repeats");
    }

    #[test]
    fn same_seed_same_bytes_and_sorted() {
        let options = GenerateOptions {
            hashes: 5000,
            kind: HashKind::Ntlm,
            seed: 7,
            crlf: true,
            known: sample_passwords(),
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        let n = generate(&options, &mut a).unwrap();
        generate(&options, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(n, 5000 + 5);
        let lines: Vec<&[u8]> = a.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len() as u64, n);
        assert!(lines.windows(2).all(|w| w[0] < w[1]));
        assert!(lines.iter().all(|l| l.len() > 34 && l.ends_with(b"\r")));
    }
}
