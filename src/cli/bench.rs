//! `leakdex bench`: measure an index's speed.

use clap::Args;
use leakdex::bench::{run, BenchOptions};
use leakdex::IndexSet;
use serde_json::json;
use std::path::PathBuf;

/// Measure how fast an index answers: filter lookups, exact lookups, password checks (hashing
/// included) and range bodies per second, on one thread and on all, with latency percentiles.
///
/// Every store form is measured for what it has: a compact store (`compact lookup` rows) has
/// no range bodies, and a filter-only index has filter lookups and password checks only.
///
/// Queries mix random hits (hashes drawn from the index) and misses, never one hot key; on a
/// filter-only index, which cannot give its hashes back, they are all random hashes.
/// Password checks use random passwords, so nearly all of them miss. Like `serve`, the bench
/// asks for the index to be read from disk in 2 MiB pages, and it reports how much of the
/// index ended up mapped that way: lookups are much faster over 2 MiB pages than over 4 KiB
/// ones, and an index already in the page cache keeps the pages it came in with (those
/// written by `build` are small; a first read with huge pages preferred makes them large).
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The index to measure. Repeat it for the partitions of one index (`build --prefixes`),
    /// measured together: each query goes to the partition that holds its prefix.
    #[arg(short, long, value_name = "INDEX", required = true)]
    index: Vec<PathBuf>,
    /// Queries per measurement (at least 1).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    queries: u64,
    /// Threads for the all-threads runs [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run_cmd(args: BenchArgs) -> anyhow::Result<u8> {
    let index = IndexSet::open(&args.index)?;
    index.prefer_huge_pages();
    let options = BenchOptions {
        queries: args.queries as usize,
        threads: args.threads.unwrap_or(0),
        ..BenchOptions::default()
    };
    let results = run(&index, &options);
    let file_len = index
        .parts()
        .iter()
        .map(|p| p.header().file_len)
        .sum::<u64>()
        .max(1);
    let huge_share =
        leakdex::sys::file_bytes_in_huge_pages().map(|b| (b as f64 / file_len as f64).min(1.0));
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|r| {
                json!({
                    "operation": r.operation, "threads": r.threads, "operations": r.operations,
                    "seconds": r.seconds, "per_second": r.per_second,
                    "p50_ns": r.p50_ns, "p90_ns": r.p90_ns, "p99_ns": r.p99_ns,
                })
            })
            .collect();
        let value = json!({
            "index": index.name(),
            "kind": index.kind().name(),
            "hashes": index.hash_count(),
            "huge_page_share": huge_share,
            "results": rows,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    println!(
        "{}: {} {} hashes, {} queries per row",
        index.name(),
        super::grouped(index.hash_count()),
        index.kind().display_name(),
        super::grouped(options.queries as u64)
    );
    println!(
        "{:<21} {:>7} {:>14} {:>10} {:>10} {:>10}",
        "operation", "threads", "per second", "p50", "p90", "p99"
    );
    for r in &results {
        println!(
            "{:<21} {:>7} {:>14} {:>10} {:>10} {:>10}",
            r.operation,
            r.threads,
            super::grouped(r.per_second as u64),
            duration(r.p50_ns),
            duration(r.p90_ns),
            duration(r.p99_ns)
        );
    }
    if let Some(share) = huge_share {
        println!(
            "{:.0}% of the index was mapped in 2 MiB pages",
            share * 100.0
        );
    }
    Ok(0)
}

fn duration(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}
