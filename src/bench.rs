//! `leakdex bench`: how fast an index answers, measured in one run.
//!
//! Every measurement runs over a prepared set of queries, random hits and misses mixed (never
//! one hot key), first on one thread and then on all. Throughput comes from an untimed pass
//! over the whole set; latency percentiles from a second pass that times a sample of single
//! operations (each time includes the clock's own cost, which the README's design notes give
//! for one machine).

use crate::format::record_hash;
use crate::hash::{HashBytes, HashKind};
use crate::index::Index;
use crate::partition::IndexSet;
use crate::rng::SplitMix64;
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Queries per measurement.
    pub queries: usize,
    /// Threads for the "all threads" runs (0: one per core).
    pub threads: usize,
    /// Seed for the query sets.
    pub seed: u64,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            queries: 2_000_000,
            threads: 0,
            seed: 1,
        }
    }
}

/// One measured operation at one thread count.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// What was measured.
    pub operation: &'static str,
    /// Threads used.
    pub threads: usize,
    /// Operations done.
    pub operations: u64,
    /// Wall time of the throughput pass, seconds.
    pub seconds: f64,
    /// Operations per second.
    pub per_second: f64,
    /// Median latency of a single operation, nanoseconds.
    pub p50_ns: f64,
    /// 90th percentile, nanoseconds.
    pub p90_ns: f64,
    /// 99th percentile, nanoseconds.
    pub p99_ns: f64,
}

/// Hashes half of which are in the index (drawn from random records) and half random.
pub fn query_hashes(index: &Index, n: usize, seed: u64) -> Vec<HashBytes> {
    query_hashes_of(std::slice::from_ref(index), n, seed)
}

/// As [`query_hashes`] over the partitions of one index: the random half is placed in the
/// prefixes they hold, so that every query has an index to answer it.
pub fn query_hashes_of(parts: &[Index], n: usize, seed: u64) -> Vec<HashBytes> {
    let mut rng = SplitMix64::new(seed);
    let Some(kind) = parts.first().map(Index::kind) else {
        return Vec::new();
    };
    // A filter-only index cannot give its hashes back: its queries are all random.
    let totals: Vec<u64> = parts
        .iter()
        .map(|p| {
            if p.store_form() == crate::format::StoreForm::None {
                0
            } else {
                p.hash_count()
            }
        })
        .collect();
    let total: u64 = totals.iter().sum();
    let held: u64 = parts.iter().map(|p| u64::from(p.partition().len())).sum();
    (0..n)
        .map(|i| {
            if i % 2 == 0 && total > 0 {
                let mut r = rng.next_bits() % total;
                for (part, &t) in parts.iter().zip(&totals) {
                    if r < t {
                        return part.record_hash_at(r).unwrap_or([0; 20]);
                    }
                    r -= t;
                }
                [0; 20]
            } else {
                let mut h = [0u8; 20];
                for chunk in h[..kind.byte_len()].chunks_mut(8) {
                    let v = rng.next_bits().to_le_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
                if held < 1 << 20 || parts.iter().any(|p| !p.partition().is_whole()) {
                    // Move the hash into a held prefix (the same for a whole index).
                    let mut at = crate::hash::prefix_of(&h) as u64 % held;
                    for p in parts.iter().map(Index::partition) {
                        if at < u64::from(p.len()) {
                            let prefix = p.first() + at as u32;
                            h[0] = (prefix >> 12) as u8;
                            h[1] = (prefix >> 4) as u8;
                            h[2] = (h[2] & 0x0F) | ((prefix & 0x0F) << 4) as u8;
                            break;
                        }
                        at -= u64::from(p.len());
                    }
                }
                h
            }
        })
        .collect()
}

fn percentiles(mut samples: Vec<u64>) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64;
    (at(0.50), at(0.90), at(0.99))
}

/// Runs `op` over every query on `threads` threads, then times a sample one by one.
fn measure<Q: Sync>(
    operation: &'static str,
    threads: usize,
    queries: &[Q],
    op: &(dyn Fn(&Q) -> u64 + Sync),
) -> BenchResult {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    let chunk = queries.len().div_ceil(threads).max(1);
    // Warm up: fault the mapped pages in and fill the caches as a running service would.
    let warm: u64 = pool.install(|| {
        queries
            .par_chunks(chunk)
            .map(|part| part.iter().map(op).fold(0u64, u64::wrapping_add))
            .reduce(|| 0, u64::wrapping_add)
    });
    black_box(warm);
    let started = Instant::now();
    let sink: u64 = pool.install(|| {
        queries
            .par_chunks(chunk)
            .map(|part| part.iter().map(op).fold(0u64, u64::wrapping_add))
            .reduce(|| 0, u64::wrapping_add)
    });
    let seconds = started.elapsed().as_secs_f64();
    black_box(sink);
    let sample = queries.len().min(200_000);
    let step = (queries.len() / sample.max(1)).max(1);
    let times: Vec<u64> = pool.install(|| {
        queries
            .par_iter()
            .step_by(step)
            .take(sample)
            .map(|q| {
                let t = Instant::now();
                black_box(op(q));
                t.elapsed().as_nanos() as u64
            })
            .collect()
    });
    let (p50_ns, p90_ns, p99_ns) = percentiles(times);
    BenchResult {
        operation,
        threads,
        operations: queries.len() as u64,
        seconds,
        per_second: queries.len() as f64 / seconds.max(1e-9),
        p50_ns,
        p90_ns,
        p99_ns,
    }
}

/// Measures filter lookups, password checks, store lookups (single and batched) and range
/// bodies, each on one thread and on all; what an index's store form has (a compact store
/// has no ranges, a filter-only index only its filter).
pub fn run(index: &IndexSet, options: &BenchOptions) -> Vec<BenchResult> {
    let all = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    };
    let mut thread_counts = vec![1];
    if all > 1 {
        thread_counts.push(all);
    }
    let hashes = query_hashes_of(index.parts(), options.queries, options.seed);
    let mut rng = SplitMix64::new(options.seed ^ 0xABCD);
    let passwords: Vec<[u8; 16]> = (0..options.queries)
        .map(|_| {
            let mut p = [0u8; 16];
            for (i, b) in p.iter_mut().enumerate() {
                *b = b"abcdefghijklmnopqrstuvwxyz0123456789"[(rng.next_bits() % 36) as usize];
                if i > 12 && rng.next_bits().is_multiple_of(3) {
                    *b = b' ';
                }
            }
            p
        })
        .collect();
    let held: Vec<crate::partition::PrefixRange> =
        index.parts().iter().map(Index::partition).collect();
    let held_count: u64 = held.iter().map(|p| u64::from(p.len())).sum();
    let prefixes: Vec<u32> = (0..(options.queries / 10).max(1000))
        .map(|_| {
            // A random prefix among those held (any prefix of a whole index).
            let mut at = (rng.next_bits() & 0xF_FFFF) % held_count;
            for p in &held {
                if at < u64::from(p.len()) {
                    return p.first() + at as u32;
                }
                at -= u64::from(p.len());
            }
            0
        })
        .collect();
    let kind = index.kind();
    let store = index.store_form();
    let (single, batch_name) = match store {
        crate::format::StoreForm::Compact => ("compact lookup", "compact lookup (batch)"),
        _ => ("exact lookup", "exact lookup (batch)"),
    };
    let mut results = Vec::new();
    for &threads in &thread_counts {
        if index
            .parts()
            .iter()
            .all(|p| p.filter().kind() != crate::format::FilterKind::None)
        {
            results.push(measure("filter lookup", threads, &hashes, &|h| {
                index.filter_contains(h) as u64
            }));
        }
        results.push(measure("password check", threads, &passwords, &|p| {
            let hash = match kind {
                HashKind::Sha1 => crate::hash::sha1_password(p),
                HashKind::Ntlm => crate::hash::ntlm_password(std::str::from_utf8(p).unwrap_or("")),
            };
            match index.probe(&hash) {
                Ok(crate::index::Presence::Found(c)) => c,
                Ok(crate::index::Presence::Possible) => 1,
                _ => 0,
            }
        }));
        if store == crate::format::StoreForm::None {
            continue;
        }
        results.push(measure(single, threads, &hashes, &|h| {
            index.lookup(h).ok().flatten().unwrap_or(0)
        }));
        let batches: Vec<&[HashBytes]> = hashes.chunks(64).collect();
        let mut batched = measure(batch_name, threads, &batches, &|batch| {
            thread_local! {
                static OUT: std::cell::RefCell<Vec<Option<u64>>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            OUT.with(|o| {
                let mut out = o.borrow_mut();
                out.clear();
                let _ = index.lookup_many(batch, &mut out);
                out.iter().flatten().sum::<u64>()
            })
        });
        // Rates and latencies per lookup, not per batch of 64.
        batched.operations = hashes.len() as u64;
        batched.per_second *= 64.0;
        batched.p50_ns /= 64.0;
        batched.p90_ns /= 64.0;
        batched.p99_ns /= 64.0;
        results.push(batched);
        if store != crate::format::StoreForm::Full {
            continue;
        }
        results.push(measure("range body", threads, &prefixes, &|&p| {
            thread_local! {
                static BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            BODY.with(|b| {
                let mut body = b.borrow_mut();
                body.clear();
                let _ = index.write_range(p, &mut body);
                body.len() as u64
            })
        }));
    }
    results
}

impl Index {
    /// The hash of record `i` (in hash order), for building query sets.
    pub fn record_hash_at(&self, i: u64) -> Option<HashBytes> {
        if i >= self.hash_count() {
            return None;
        }
        // Find the bucket holding record i by binary search over the directory.
        let (mut lo, mut hi) = (0u32, (crate::format::BUCKETS - 1) as u32);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.bucket_records(mid).ok()?.start <= i {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let range = self.bucket_records(lo).ok()?;
        let len = self.record_len();
        let records = self.bucket_bytes(lo).ok()?;
        let at = ((i - range.start) as usize) * len;
        Some(record_hash(lo, records.get(at..at + len)?))
    }
}
