//! criterion benches of the engine's hot paths: parsing dump lines and stealer-log lines,
//! filter queries, store lookups and range bodies. Queries are batches of random hits and
//! misses, never one hot key.
//!
//! Run with `cargo bench --bench engine`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use leakdex::bench::query_hashes;
use leakdex::credential::parse_ulp;
use leakdex::dump::parse_chunk;
use leakdex::generate::{generate, sample_passwords, GenerateOptions};
use leakdex::hash::sha1_password;
use leakdex::writer::IndexWriter;
use leakdex::{build_index, BuildOptions, FilterKind, HashKind, Index, NoProgress};
use std::hint::black_box;

/// Queries per measured batch.
const BATCH: usize = 4096;

struct Fixture {
    _dir: tempfile::TempDir,
    index: Index,
    dump: Vec<u8>,
}

/// An index of 2,000,000 generated hashes plus 1,000 more under 5BAA6 (a full-size range, as
/// at a billion hashes).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut dump = Vec::new();
    let options = GenerateOptions {
        hashes: 2_000_000,
        kind: HashKind::Sha1,
        seed: 11,
        crlf: true,
        known: sample_passwords(),
    };
    generate(&options, &mut dump).unwrap();
    let mut crowded = Vec::new();
    for i in 0..1000u32 {
        let mut h = leakdex::hash::sha1_password(&i.to_le_bytes());
        h[0] = 0x5B;
        h[1] = 0xAA;
        h[2] = 0x60 | (h[2] & 0x0F);
        crowded.extend_from_slice(leakdex::hash::hash_to_hex(&h, HashKind::Sha1).as_bytes());
        // Counts shaped like the corpus: mostly small, about one in ten above 14.
        let count = if h[6] < 230 {
            1 + h[5] as u32 % 14
        } else {
            15 + h[7] as u32 * 1000
        };
        crowded.extend_from_slice(format!(":{count}\r\n").as_bytes());
    }
    let main = dir.path().join("main.txt");
    let extra = dir.path().join("crowded.txt");
    std::fs::write(&main, &dump).unwrap();
    std::fs::write(&extra, &crowded).unwrap();
    let path = dir.path().join("bench.ldx");
    build_index(&[main, extra], &path, &BuildOptions::default(), &NoProgress).unwrap();
    let index = Index::open(&path).unwrap();
    Fixture {
        _dir: dir,
        index,
        dump,
    }
}

/// `count` stealer-log lines of the shapes seen in the wild, in the proportions of a
/// stealer dump (mostly `https://host/path:login:password`), from a fixed seed.
fn stealer_lines(count: usize) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let hosts = [
        "accounts.google.com",
        "www.facebook.com",
        "login.live.com",
        "signin.example-shop.co.uk",
        "192.168.1.1",
        "portal.corp.example",
    ];
    let paths = [
        "/",
        "/login",
        "/auth/signin",
        "/account/login?next=%2Fhome",
        "",
    ];
    let word = |rng: &mut rand::rngs::StdRng, len: usize| -> String {
        (0..len)
            .map(|_| rng.random_range(b'a'..=b'z') as char)
            .collect()
    };
    let mut out = Vec::new();
    for _ in 0..count {
        let host = hosts[rng.random_range(0..hosts.len())];
        let login = format!("{}@{}.com", word(&mut rng, 8), word(&mut rng, 5));
        let password = format!("{}{}", word(&mut rng, 7), rng.random_range(0..1000));
        let line = match rng.random_range(0..20) {
            0..=12 => {
                let path = paths[rng.random_range(0..paths.len())];
                format!("https://{host}{path}:{login}:{password}")
            }
            13 => format!("https://{host}:8443/login|{login}|{password}"),
            14 => format!(
                "android://{}==@com.{}.app/:{login}:{password}",
                word(&mut rng, 40),
                word(&mut rng, 6)
            ),
            15 | 16 => format!("{host}:{login}:{password}"),
            _ => format!("{login}:{password}"),
        };
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

fn benches(c: &mut Criterion) {
    let f = fixture();

    let mut g = c.benchmark_group("parse");
    let cut = f.dump.len().min(8 << 20);
    let end = f.dump[..cut]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let text = &f.dump[..end];
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    g.throughput(Throughput::Elements(lines as u64));
    g.bench_function("dump lines (SHA-1, CRLF)", |b| {
        let mut out = Vec::with_capacity(lines);
        b.iter(|| {
            out.clear();
            parse_chunk(black_box(text), HashKind::Sha1, &mut out).unwrap();
            out.len()
        })
    });
    g.finish();

    // The serial half of a sorted build: records encoded into the store (page cache only; the
    // writer is dropped unfinished, outside the measured time).
    let mut entries = Vec::new();
    parse_chunk(&f.dump, HashKind::Sha1, &mut entries).unwrap();
    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("push sorted entries (SHA-1, full store)", |b| {
        b.iter_batched(
            || {
                IndexWriter::create(
                    &f._dir.path().join("w.ldx"),
                    HashKind::Sha1,
                    FilterKind::Fuse8,
                )
                .unwrap()
            },
            |mut w| {
                // In blocks of about what the build's 4 MiB blocks hold.
                for block in entries.chunks(100_000) {
                    assert_eq!(w.push_sorted(block).unwrap(), block.len());
                }
                w
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let stealer = stealer_lines(200_000);
    // Cut into lines outside the measured loops: they measure the parser (and the hash).
    let lines: Vec<&[u8]> = stealer
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("stealer lines (parse_ulp)", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for &line in black_box(&lines[..]) {
                if let Ok(c) = parse_ulp(line) {
                    bytes += c.login.len() + c.password.len();
                }
            }
            bytes
        })
    });
    g.bench_function("stealer lines (parse_ulp and SHA-1 of the password)", |b| {
        b.iter(|| {
            let mut x = 0u8;
            for &line in black_box(&lines[..]) {
                if let Ok(c) = parse_ulp(line) {
                    x ^= sha1_password(c.password)[0];
                }
            }
            x
        })
    });
    g.finish();

    let queries = query_hashes(&f.index, 1 << 20, 5);
    let mut g = c.benchmark_group("query");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut at = 0usize;
    let mut next_batch = move || {
        at = (at + BATCH) % (queries.len() - BATCH);
        queries[at..at + BATCH].to_vec()
    };
    g.bench_function("filter lookups (half hits)", |b| {
        b.iter_batched(
            &mut next_batch,
            |batch| batch.iter().filter(|h| f.index.filter_contains(h)).count(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("store lookups (half hits)", |b| {
        b.iter_batched(
            &mut next_batch,
            |batch| {
                batch
                    .iter()
                    .filter_map(|h| f.index.lookup(h).unwrap())
                    .count()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("range");
    g.throughput(Throughput::Elements(1));
    let mut body = Vec::with_capacity(64 * 1024);
    let rows = f.index.range_len(0x5BAA6).unwrap();
    g.bench_function(format!("body of {rows} rows"), |b| {
        b.iter(|| {
            body.clear();
            f.index.write_range(black_box(0x5BAA6), &mut body).unwrap();
            body.len()
        })
    });
    let mut prefix = 0u32;
    g.bench_function("body of a random prefix (about 2 rows)", |b| {
        b.iter(|| {
            prefix = prefix.wrapping_mul(1_103_515_245).wrapping_add(12345) & 0xF_FFFF;
            body.clear();
            f.index.write_range(prefix, &mut body).unwrap();
            body.len()
        })
    });
    let mut rng = rand::rng();
    g.bench_function("padded body of a random prefix", |b| {
        b.iter(|| {
            prefix = prefix.wrapping_mul(1_103_515_245).wrapping_add(12345) & 0xF_FFFF;
            body.clear();
            f.index
                .write_padded_range(prefix, &mut rng, &mut body)
                .unwrap();
            body.len()
        })
    });
    g.finish();
}

criterion_group! {
    name = engine;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(engine);
