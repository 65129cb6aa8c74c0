//! `leakdex info`: describe an index.

use clap::Args;
use leakdex::Index;
use serde_json::json;

/// Describe an index: what it holds, its sizes, its filter and its sources.
///
/// Prints the hash kind, hashes, sum of counts, the bytes of each part, the store form (full,
/// compact or none) and bytes per hash of the store, the rate of false matches a check of an
/// absent hash can give (0 for a full store, about n/2^64 for a compact one, the filter's for
/// a filter-only one), bits per hash and false-positive rate of the filter (measured on
/// 200,000 random hashes), the format version and the inputs it was built from. JSON fields
/// `store` and `false_match_rate` hold the store form and that rate. `prefixes` is the range of
/// 5-hex prefixes the index holds (`00000-FFFFF` unless it is a partition made with `build
/// --prefixes`), and `partition` says whether it is a partition.
///
/// With --json, every figure is a JSON number except `count_sum`, a string of decimal digits:
/// the sum of counts may pass 2^64 (it is kept as a 128-bit number), and many JSON readers
/// (JavaScript's among them) hold integers exactly only up to 2^53.
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    index: super::IndexArg,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InfoArgs) -> anyhow::Result<u8> {
    let index = Index::open(args.index.path())?;
    let info = index.info();
    if args.json {
        let value = json!({
            "path": args.index.path().display().to_string(),
            "format_version": info.version,
            "kind": info.kind,
            "key": info.key,
            "normalisation": info.normalisation,
            "store": info.store,
            "prefixes": info.partition.to_string(),
            "partition": !info.partition.is_whole(),
            "false_match_rate": info.false_match_rate,
            "hashes": info.hashes,
            "count_sum": info.count_sum.to_string(),
            "file_bytes": info.file_bytes,
            "sections": info.sections.iter().map(|(n, b)| json!({"name": n, "bytes": b})).collect::<Vec<_>>(),
            "store_bytes": info.store_bytes,
            "store_bytes_per_hash": info.store_bytes_per_hash,
            "overflow_entries": info.overflow_entries,
            "filter": info.filter,
            "filter_bytes": info.filter_bytes,
            "filter_bits_per_key": info.filter_bits_per_key,
            "filter_fpr_design": info.filter_fpr_design,
            "filter_fpr_measured": info.filter_fpr_measured,
            "sources": info.sources.iter().map(|s| json!({
                "name": s.name, "size": s.size, "lines": s.lines, "modified": s.modified,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    let g = super::grouped;
    println!("index            {}", args.index.path().display());
    println!("format version   {}", info.version);
    println!("kind             {}", info.kind);
    if info.normalisation > 0 {
        println!(
            "key              {} (logins normalised by rule {})",
            info.key, info.normalisation
        );
    } else {
        println!("key              {}", info.key);
    }
    if info.partition.is_whole() {
        println!("prefixes         {} (all)", info.partition);
    } else {
        println!(
            "prefixes         {} (a partition: {} of the 1,048,576 prefixes)",
            info.partition,
            g(info.partition.len() as u64)
        );
    }
    println!("hashes           {}", g(info.hashes));
    println!("sum of counts    {}", super::grouped(info.count_sum));
    println!("file             {} bytes", g(info.file_bytes));
    match info.store {
        "none" => println!("store            none (filter only: no counts, no ranges)"),
        form => println!(
            "store            {form}{}, {} bytes, {:.2} bytes per hash ({} counts in overflow)",
            if form == "compact" {
                " (first 64 bits of each hash)"
            } else {
                ""
            },
            g(info.store_bytes),
            info.store_bytes_per_hash,
            g(info.overflow_entries)
        ),
    }
    let fpr = |f: f64| format!("{:.4}%", f * 100.0);
    if info.false_match_rate == 0.0 {
        println!("false matches    none: the store is exact");
    } else {
        println!(
            "false matches    about 1 in {:.3e} checks of absent hashes ({:.3e}){}",
            1.0 / info.false_match_rate,
            info.false_match_rate,
            if info.store == "none" {
                ", the filter's rate"
            } else {
                ", from keeping 64 bits"
            }
        );
    }
    match info.filter_fpr_measured {
        Some(measured) => println!(
            "filter           {}, {} bytes, {:.2} bits per hash, false positives {} \
             (design {})",
            info.filter,
            g(info.filter_bytes),
            info.filter_bits_per_key,
            fpr(measured),
            fpr(info.filter_fpr_design)
        ),
        None => println!("filter           {}", info.filter),
    }
    println!("sections");
    for (name, bytes) in &info.sections {
        println!("  {name:<20} {:>18} bytes", g(*bytes));
    }
    println!("sources");
    for s in &info.sources {
        println!(
            "  {}  {} bytes, {} lines, modified {}",
            s.name,
            g(s.size),
            g(s.lines),
            format_time(s.modified)
        );
    }
    Ok(0)
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
fn format_time(secs: u64) -> String {
    if secs == 0 {
        return "unknown".into();
    }
    let [year, month, day, hour, minute, second] = leakdex::web::utc_fields(secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}
