//! The fuzz targets of leakdex, one function each (`fuzz_targets/` holds libFuzzer's entry
//! points; `tests/fuzz_regressions.rs` in the main crate includes this file to replay, on
//! stable, the inputs that once failed), and what they share: the golden indexes of
//! `tests/data` (embedded gzipped, unpacked on first use), and [`exercise`], which runs every
//! query on an open index and checks what must hold whatever the file's bytes are.
//!
//! Paths here are relative to this file, so that the file compiles as a module of the main
//! crate's tests too.

#[path = "dump_lines.rs"]
mod dump_lines;
#[path = "index_bytes.rs"]
mod index_bytes;
#[path = "index_patch.rs"]
mod index_patch;
#[path = "serve_http1.rs"]
mod serve_http1;
#[path = "serve_request.rs"]
mod serve_request;

pub use dump_lines::dump_lines;
pub use index_bytes::index_bytes;
pub use index_patch::index_patch;
pub use serve_http1::serve_http1;
pub use serve_request::serve_request;

/// A fuzz target: runs one input, panicking on a failure.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/` and `scripts/fuzz` name them.
pub const TARGETS: [(&str, Target); 5] = [
    ("dump_lines", dump_lines),
    ("index_bytes", index_bytes),
    ("index_patch", index_patch),
    ("serve_request", serve_request),
    ("serve_http1", serve_http1),
];

use leakdex::dump::Entry;
use leakdex::format::{Section, StoreForm};
use leakdex::{HashBytes, HashKind, Index, Presence};
use rand::SeedableRng;
use std::sync::OnceLock;

/// One golden index file of `tests/data`.
pub struct Golden {
    /// Its name without `.ldx.gz`.
    pub name: &'static str,
    gz: &'static [u8],
}

macro_rules! golden {
    ($name:literal) => {
        Golden {
            name: $name,
            gz: include_bytes!(concat!("../../tests/data/", $name, ".ldx.gz")),
        }
    };
}

/// Every golden index: format versions 1 to 4, every store form, key and a partition.
pub const GOLDENS: [Golden; 21] = [
    golden!("golden-v1-ntlm"),
    golden!("golden-v1-sha1"),
    golden!("golden-v2-login"),
    golden!("golden-v2-ntlm"),
    golden!("golden-v2-pair"),
    golden!("golden-v2-sha1"),
    golden!("golden-v3-login"),
    golden!("golden-v3-ntlm-compact"),
    golden!("golden-v3-ntlm"),
    golden!("golden-v3-pair"),
    golden!("golden-v3-sha1-compact"),
    golden!("golden-v3-sha1-none"),
    golden!("golden-v3-sha1"),
    golden!("golden-v4-login"),
    golden!("golden-v4-ntlm-compact"),
    golden!("golden-v4-ntlm"),
    golden!("golden-v4-pair"),
    golden!("golden-v4-sha1-compact"),
    golden!("golden-v4-sha1-none"),
    golden!("golden-v4-sha1-part"),
    golden!("golden-v4-sha1"),
];

/// The SHA-1 dump the SHA-1 goldens were built from: the keys of the filter-only ones.
const SHA1_DUMP: &[u8] = include_bytes!("../../tests/data/golden-v1-sha1.txt");

/// A golden index unpacked, with what a target needs to aim its patches and queries.
pub struct Loaded {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Its section table.
    pub sections: Vec<Section>,
    /// Its hash kind.
    pub kind: HashKind,
    /// Its store form.
    pub store: StoreForm,
    /// Its entries in record order (for a filter-only index: the hashes of its dump, count 1).
    pub entries: Vec<Entry>,
}

/// Golden `i` (modulo their number), unpacked on first use.
pub fn golden(i: usize) -> &'static Loaded {
    static CACHE: [OnceLock<Loaded>; GOLDENS.len()] = [const { OnceLock::new() }; GOLDENS.len()];
    let i = i % GOLDENS.len();
    CACHE[i].get_or_init(|| load(&GOLDENS[i]))
}

fn load(g: &Golden) -> Loaded {
    let bytes = gunzip(g.gz);
    let index = Index::from_bytes(&bytes, g.name).expect("a golden index opens");
    let mut entries = Vec::new();
    if index.store_form() == StoreForm::None {
        for line in SHA1_DUMP.split(|&b| b == b'\n') {
            if let Ok(Some(e)) = leakdex::dump::parse_line(line, HashKind::Sha1) {
                entries.push(Entry {
                    hash: e.hash,
                    count: 1,
                });
            }
        }
    } else {
        // The entries of the buckets that hold any: for_each_entry would visit a million
        // buckets, which takes seconds under the fuzzers' instrumentation.
        use leakdex::format::{directory_start, SectionId, GROUPS, GROUP_BUCKETS};
        let section = |id: SectionId| {
            let s = index.sections()[id as usize - 1];
            &bytes[s.offset as usize..(s.offset + s.len) as usize]
        };
        let (dir, records) = (section(SectionId::Buckets), section(SectionId::Records));
        let len = index.store_form().record_len(index.kind());
        for g in 0..GROUPS {
            let first = g * GROUP_BUCKETS;
            if directory_start(dir, first) == directory_start(dir, first + GROUP_BUCKETS) {
                continue;
            }
            for b in first..first + GROUP_BUCKETS {
                let start = directory_start(dir, b).unwrap() as usize;
                let end = directory_start(dir, b + 1).unwrap() as usize;
                for rec in records[start * len..end * len].chunks_exact(len) {
                    let hash = leakdex::format::record_hash(b as u32, rec);
                    let count = index.lookup(&hash).expect("a golden reads").expect("found");
                    entries.push(Entry { hash, count });
                }
            }
        }
        assert_eq!(entries.len() as u64, index.hash_count());
    }
    Loaded {
        sections: index.sections().to_vec(),
        kind: index.kind(),
        store: index.store_form(),
        entries,
        bytes,
    }
}

/// Unpacks gzip bytes.
pub fn gunzip(gz: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// The hash with the bytes past its kind's length zero, as every reader of hex makes them.
pub fn clean(mut hash: HashBytes, kind: HashKind) -> HashBytes {
    hash[kind.byte_len()..].fill(0);
    hash
}

/// What [`exercise`] asks besides the cheap queries.
#[derive(Clone, Copy, Debug, Default)]
pub struct Asks {
    /// Run `verify`, and when it accepts the index, check every entry against the queries.
    pub verify: bool,
    /// Run `info` (200,000 filter probes: slow).
    pub info: bool,
    /// Walk every entry with `for_each_entry`.
    pub entries: bool,
    /// Seed of the padding's random rows.
    pub seed: u64,
}

/// Runs every query of `index` on `hashes` and `prefixes` and checks what must hold for any
/// file that opened: single and batched lookups agree, range bodies are well formed and as
/// long as `range_len` says, a failed write leaves its buffer as it was; and for an index that
/// `verify` accepts, every entry is found with its count and every range lists its entries.
pub fn exercise(index: &Index, hashes: &[HashBytes], prefixes: &[u32], asks: Asks) {
    let kind = index.kind();
    let store = index.store_form();
    let _ = (
        index.header(),
        index.checksum(),
        index.false_match_rate(),
        index.partition(),
        index.key(),
        index.hash_count(),
        index.sections(),
        index.sources(),
        index.filter().keys(),
        index.overflow_count(),
    );
    assert_eq!(
        index.require_full_store("a range").is_ok(),
        store == StoreForm::Full
    );
    let hashes: Vec<HashBytes> = hashes.iter().map(|h| clean(*h, kind)).collect();

    // One by one.
    let mut probes = Vec::with_capacity(hashes.len());
    let mut checks = Vec::with_capacity(hashes.len());
    let mut lookups = Vec::with_capacity(hashes.len());
    for h in &hashes {
        let probe = index.probe(h);
        let check = index.check(h);
        let lookup = index.lookup(h);
        let in_filter = index.filter_contains(h);
        if store == StoreForm::None {
            assert!(check.is_err() && lookup.is_err(), "no store, no counts");
            if let Ok(p) = &probe {
                assert_eq!(*p == Presence::Possible, in_filter);
                assert!(!matches!(p, Presence::Found(_)), "a count without a store");
            }
        } else {
            match (&probe, &check) {
                (Ok(Presence::Found(c)), Ok(Some(d))) => assert_eq!(c, d),
                (Ok(Presence::Absent), Ok(None)) | (Err(_), Err(_)) => {}
                other => panic!("probe and check disagree: {other:?}"),
            }
            if !in_filter {
                assert!(
                    matches!(check, Ok(None) | Err(_)),
                    "a filter miss is absent"
                );
            } else if let Ok(c) = &check {
                // A filter hit looks the store up: check is lookup there.
                assert_eq!(lookup.as_ref().ok(), Some(c), "check and lookup disagree");
            }
        }
        probes.push(probe.ok());
        checks.push(check.ok());
        lookups.push(lookup.ok());
    }

    // Batched: the same answers, and an error exactly when one of the singles fails.
    let mut out = Vec::new();
    match index.probe_many(&hashes, &mut out) {
        Ok(()) => {
            assert_eq!(out.len(), hashes.len());
            for (one, many) in probes.iter().zip(&out) {
                assert_eq!(one.as_ref(), Some(many), "probe and probe_many disagree");
            }
        }
        Err(_) => assert!(
            probes.iter().any(Option::is_none),
            "probe_many failed alone"
        ),
    }
    for (batch, singles) in [(0, &checks), (1, &lookups)] {
        let mut out = Vec::new();
        let result = if batch == 0 {
            index.check_many(&hashes, &mut out)
        } else {
            index.lookup_many(&hashes, &mut out)
        };
        match result {
            Ok(()) => {
                assert_eq!(out.len(), hashes.len());
                for (one, many) in singles.iter().zip(&out) {
                    assert_eq!(one.as_ref(), Some(many), "batch {batch} disagrees");
                }
            }
            Err(_) => assert!(
                singles.iter().any(Option::is_none),
                "batch {batch} failed alone"
            ),
        }
    }

    // Ranges.
    let mut rng = rand::rngs::StdRng::seed_from_u64(asks.seed);
    for (i, &prefix) in prefixes.iter().enumerate() {
        let len = index.range_len(prefix);
        let mut body = b"kept".to_vec();
        let plain = index.write_range(prefix, &mut body);
        match &plain {
            Ok(()) => {
                let rows = rows_of(&body[4..], kind, prefix);
                assert_eq!(Some(rows.len() as u64), len.as_ref().ok().copied());
            }
            Err(_) => assert_eq!(body, b"kept", "a failed range changed its buffer"),
        }
        // Padding sorts a thousand random rows: a few prefixes are enough.
        if i >= 4 {
            continue;
        }
        let mut padded = b"kept".to_vec();
        match index.write_padded_range(prefix, &mut rng, &mut padded) {
            Ok(()) => {
                let padded = &padded[4..];
                let rows = padded.iter().filter(|&&b| b == b'\n').count() + 1;
                assert!(!padded.is_empty() && !padded.ends_with(b"\r\n"));
                let real = *len.as_ref().expect("a padded range has a length") as usize;
                assert!(plain.is_ok(), "padded range without a plain one");
                assert_padded(
                    &rows_of(padded, kind, prefix),
                    &rows_of(&body[4..], kind, prefix),
                );
                if real >= leakdex::fuzzing::PAD_MAX_ROWS {
                    assert_eq!(rows, real);
                } else {
                    assert!(
                        rows >= real.max(leakdex::fuzzing::PAD_MIN_ROWS)
                            && rows <= leakdex::fuzzing::PAD_MAX_ROWS,
                        "{rows} padded rows for {real} real ones"
                    );
                }
            }
            Err(_) => assert_eq!(padded, b"kept", "a failed padded range changed its buffer"),
        }
    }

    if asks.entries {
        budgeted(|| {
            let mut n = 0u64;
            let _ = index.for_each_entry(&mut |_| {
                n += 1;
                Ok(())
            });
        });
    }
    if asks.info {
        budgeted(|| {
            let info = index.info();
            assert_eq!(info.hashes, index.hash_count());
            assert_eq!(info.file_bytes, index.header().file_len);
        });
    }
    if asks.verify {
        budgeted(|| {
            if let Ok(report) = index.verify() {
                verified(index, &report);
            }
        });
    }
}

/// Runs a slow query (`verify`, `info`, `for_each_entry`: seconds on an index with a store,
/// which holds a million buckets, under the fuzzers' instrumentation) if the budget allows:
/// they take at most about a tenth of a process's time, so that most executions stay fast.
/// The first execution of a process may always run them, so an input that fails in one fails
/// again when replayed alone.
fn budgeted(query: impl FnOnce()) {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    static START: OnceLock<Instant> = OnceLock::new();
    static NEXT_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let start = *START.get_or_init(Instant::now);
    let now = start.elapsed();
    if !ALWAYS_SLOW.load(Ordering::Relaxed)
        && now < Duration::from_nanos(NEXT_NS.load(Ordering::Relaxed))
    {
        return;
    }
    query();
    let took = start.elapsed() - now;
    NEXT_NS.store(
        (start.elapsed() + 9 * took).as_nanos() as u64,
        Ordering::Relaxed,
    );
}

static ALWAYS_SLOW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For replaying inputs one by one: every input that asks for the slow queries gets them.
pub fn always_run_slow_queries() {
    ALWAYS_SLOW.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// What holds for an index that `verify` accepts: every entry is found with its count, the
/// entries add up, and each range lists the entries of its prefix.
fn verified(index: &Index, report: &leakdex::VerifyReport) {
    assert_eq!(report.hashes, index.hash_count());
    assert_eq!(report.count_sum, index.header().count_sum);
    let store = index.store_form();
    if store == StoreForm::None {
        return;
    }
    let kind = index.kind();
    let mut entries = Vec::new();
    index
        .for_each_entry(&mut |e| {
            entries.push(e);
            Ok(())
        })
        .expect("a verified index reads whole");
    assert_eq!(entries.len() as u64, index.hash_count());
    assert_eq!(
        entries.iter().map(|e| e.count as u128).sum::<u128>(),
        index.header().count_sum
    );
    for pair in entries.windows(2) {
        assert!(pair[0].hash < pair[1].hash, "entries out of order");
    }
    for e in &entries {
        assert_eq!(index.check(&e.hash).ok(), Some(Some(e.count)));
        assert_eq!(index.probe(&e.hash).ok(), Some(Presence::Found(e.count)));
    }
    if store != StoreForm::Full {
        return;
    }
    let mut at = 0;
    while at < entries.len() {
        let prefix = leakdex::hash::prefix_of(&entries[at].hash);
        let end = at
            + entries[at..]
                .iter()
                .take_while(|e| leakdex::hash::prefix_of(&e.hash) == prefix)
                .count();
        let body = index
            .range_body(prefix)
            .expect("a verified index has ranges");
        let rows = rows_of(&body, kind, prefix);
        assert_eq!(rows.len(), end - at);
        for ((hash, count), e) in rows.iter().zip(&entries[at..end]) {
            assert_eq!(clean(*hash, kind), e.hash);
            assert_eq!(*count, e.count);
        }
        at = end;
    }
}

/// The rows of a range body, checked for form: upper-case hex suffixes of the kind's length,
/// a colon and a decimal count, joined by CRLF with none at the end; each row's hash is
/// `prefix` (20 bits) and its suffix.
pub fn rows_of(body: &[u8], kind: HashKind, prefix: u32) -> Vec<(HashBytes, u64)> {
    if body.is_empty() {
        return Vec::new();
    }
    let suffix = kind.suffix_hex_len();
    let mut rows = Vec::new();
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let row = if last {
            line
        } else {
            line.strip_suffix(b"\r").expect("rows end in CRLF")
        };
        assert!(!last || !line.is_empty(), "a body ending in CRLF");
        assert!(
            row.len() > suffix + 1 && row[suffix] == b':',
            "malformed row"
        );
        let hex = &row[..suffix];
        assert!(
            hex.iter()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)),
            "a suffix that is not upper-case hex"
        );
        let digits = &row[suffix + 1..];
        assert!(digits.iter().all(u8::is_ascii_digit), "a count not decimal");
        assert!(
            digits == b"0" || digits[0] != b'0',
            "a count with a leading zero"
        );
        let count: u64 = std::str::from_utf8(digits)
            .unwrap()
            .parse()
            .expect("a count that fits 64 bits");
        let mut full = format!("{:05X}", prefix & 0xF_FFFF).into_bytes();
        full.extend_from_slice(hex);
        let hash = leakdex::hash::decode_hex(&full).expect("hex");
        rows.push((hash, count));
    }
    rows
}

/// A padded range's rows hold the real ones, in their order, and the others have count 0.
pub fn assert_padded(padded: &[(HashBytes, u64)], real: &[(HashBytes, u64)]) {
    let mut next = real.iter().peekable();
    for row in padded {
        if next.peek() == Some(&row) {
            next.next();
        } else {
            assert_eq!(
                row.1, 0,
                "a padding row with a count, or a real row changed"
            );
        }
    }
    assert!(
        next.peek().is_none(),
        "a real row missing from the padded range"
    );
}

/// Reads `n` bytes from the front of `data`, padding with zeros past its end.
pub fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = data.len().min(N);
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

/// The hashes of the SHA-1 golden dump: queries that hit the goldens' filters and stores.
pub fn dump_hashes() -> &'static [HashBytes] {
    static HASHES: OnceLock<Vec<HashBytes>> = OnceLock::new();
    HASHES.get_or_init(|| {
        SHA1_DUMP
            .split(|&b| b == b'\n')
            .filter_map(|line| {
                leakdex::dump::parse_line(line, HashKind::Sha1)
                    .ok()
                    .flatten()
            })
            .map(|e| e.hash)
            .collect()
    })
}

/// A server over some of the goldens, and the same indexes opened apart, by mode (SHA-1,
/// NTLM, login, pair), to say what its answers should be.
pub struct Served {
    /// The server (never started: requests go to its handler or to `fuzzing::serve_io`).
    pub server: std::sync::Arc<leakdex::server::Server>,
    /// The index of each mode, if the server has one.
    pub by_mode: [Option<Index>; 4],
}

/// Three servers: every v4 golden of a whole dump (SHA-1, NTLM, login and pair); a SHA-1
/// partition (`00000-7FFFF`) with a version-1 NTLM index; and logins and pairs without SHA-1.
pub fn servers() -> &'static [Served; 3] {
    static SERVERS: OnceLock<[Served; 3]> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let sets: [&[&str]; 3] = [
            &[
                "golden-v4-sha1",
                "golden-v4-ntlm",
                "golden-v4-login",
                "golden-v4-pair",
            ],
            &["golden-v4-sha1-part", "golden-v1-ntlm"],
            &["golden-v2-login", "golden-v3-pair"],
        ];
        sets.map(|names| {
            let paths: Vec<std::path::PathBuf> = names.iter().map(|n| golden_file(n)).collect();
            let config = leakdex::server::ServerConfig {
                indexes: paths.clone(),
                ..Default::default()
            };
            let server = leakdex::server::Server::new(config).expect("the goldens serve");
            let mut by_mode = [None, None, None, None];
            for path in &paths {
                let index = Index::open(path).expect("a golden opens");
                let mode = match (index.key(), index.kind()) {
                    (leakdex::KeyType::Password, HashKind::Sha1) => 0,
                    (leakdex::KeyType::Password, HashKind::Ntlm) => 1,
                    (leakdex::KeyType::Login, _) => 2,
                    (leakdex::KeyType::Pair, _) => 3,
                };
                by_mode[mode] = Some(index);
            }
            Served {
                server: std::sync::Arc::new(server),
                by_mode,
            }
        })
    })
}

static GOLDEN_DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

/// Where the servers' goldens go (before the first server starts): the tests use a folder of
/// their own, which they remove.
pub fn set_golden_dir(dir: &std::path::Path) {
    let _ = GOLDEN_DIR.set(dir.to_path_buf());
}

/// The golden `name` unpacked into a file of the temporary folder (kept between runs, and
/// shared by the targets: replaced only when its length is wrong).
fn golden_file(name: &str) -> std::path::PathBuf {
    let g = GOLDENS
        .iter()
        .position(|g| g.name == name)
        .expect("a golden of that name");
    let dir = GOLDEN_DIR
        .get_or_init(|| std::env::temp_dir().join("leakdex-fuzz-goldens"))
        .clone();
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let path = dir.join(format!("{name}.ldx"));
    let bytes = &golden(g).bytes;
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(bytes.len() as u64) {
        let part = dir.join(format!("{name}.ldx.{}", std::process::id()));
        std::fs::write(&part, bytes).expect("room for a golden");
        std::fs::rename(&part, &path).expect("rename");
    }
    path
}

/// The mode of a query string as the server documents it: the first `mode=` that names a
/// mode (any case), else SHA-1. 0 SHA-1, 1 NTLM, 2 login, 3 pair.
pub fn mode_of(query: Option<&str>) -> usize {
    for kv in query.unwrap_or("").split('&') {
        if let Some(("mode", v)) = kv.split_once('=') {
            for (i, name) in ["ntlm", "login", "pair"].iter().enumerate() {
                if v.eq_ignore_ascii_case(name) {
                    return i + 1;
                }
            }
        }
    }
    0
}

/// A current-thread runtime for the server targets.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}
