//! `leakdex shrink`: a compact or filter-only index made from a larger one.

use anyhow::Context;
use clap::Args;
use leakdex::sys::StopSignals;
use leakdex::{FilterKind, Index, NoProgress, ShrinkOptions, StoreForm};
use std::path::PathBuf;
use std::time::Instant;

/// Make a smaller index from a larger one, without the dump: a compact store (the first 64
/// bits of each hash and its count, about 6.4 bytes per hash) from a full one, or the filter
/// alone (about 1.13 bytes per hash with fuse8, 2.26 with fuse16) from a full or compact one.
///
/// The filter is copied as it is when --filter names the source's kind (the default) and the
/// source is of format version 3; otherwise it is built again from the source's hashes. The
/// source is left as it is. Exit code 0 on success, 2 on error.
#[derive(Args, Debug)]
pub struct ShrinkArgs {
    /// The index to shrink.
    #[arg(value_name = "INDEX")]
    index: PathBuf,
    /// The index file to write.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// The new store form: compact or none (filter only).
    #[arg(long)]
    store: StoreForm,
    /// The new filter: fuse8, fuse16 or none [default: the source's].
    #[arg(long)]
    filter: Option<FilterKind>,
    /// Memory a filter-only index may hold its keys in before it builds its filter as they go
    /// by, such as 4G [default: 1G].
    #[arg(long, value_parser = super::build::parse_memory)]
    memory: Option<u64>,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: ShrinkArgs) -> anyhow::Result<u8> {
    let signals = StopSignals::install().context("cannot install signal handlers")?;
    let started = Instant::now();
    let source = Index::open(&args.index)?;
    let options = ShrinkOptions {
        store: args.store,
        filter: args.filter,
        memory: args.memory.unwrap_or(1 << 30),
    };
    let flag = signals.flag();
    let summary = leakdex::shrink(&source, &args.output, &options, &NoProgress, Some(&flag))?;
    if !args.quiet {
        let index = &summary.index;
        eprintln!(
            "wrote {}: {} {} hashes, {} store, {} bytes ({:.2} bytes per hash), filter {}, in \
             {:.2} s",
            args.output.display(),
            super::grouped(index.hashes),
            index.kind.display_name(),
            index.store,
            super::grouped(index.file_len),
            index.file_len as f64 / index.hashes.max(1) as f64,
            if summary.filter_reused {
                "copied from the source"
            } else {
                "built again"
            },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}
