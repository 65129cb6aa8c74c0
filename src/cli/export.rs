//! `leakdex export`: every range of indexes as static files, with an nginx configuration.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use leakdex::export::{export, ExportOptions};
use leakdex::sys::StopSignals;
use leakdex::{BuildProgress, Index, NoProgress};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// Write every range of one or more indexes as static files that any web server, object store
/// or CDN can serve, byte for byte as `leakdex range` prints them.
///
/// DIR gets `range/<PREFIX>` for a SHA-1 password index (`range-ntlm/`, `range-login/`,
/// `range-pair/` for the others), 1,048,576 files per index, with --gzip a `<PREFIX>.gz`
/// beside each; `manifest.json` (the indexes' checksums, kinds and counts, and the SHA-256 of
/// every file, to check a copy such as an `aws s3 sync` against); and `nginx.conf`, a server
/// block that serves the tree as the range API does (either case, `mode=`, CORS,
/// Cache-Control, ETag and 304, gzip by Accept-Encoding, the API's 400 texts). Padding cannot
/// be served from static files. DIR must not exist (or be empty): the tree is written beside
/// it and renamed into place when complete. Indexes need a full store.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Index to export; give it once per index (one per kind and key).
    #[arg(short, long = "index", value_name = "INDEX", required = true)]
    indexes: Vec<PathBuf>,
    /// The folder to create.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Also write a gzip copy of every body (`<PREFIX>.gz`), for nginx's gzip_static.
    #[arg(long)]
    gzip: bool,
    /// Seconds in the configuration's `Cache-Control: public, max-age=`.
    #[arg(long, default_value_t = 2_678_400)]
    max_age: u64,
    /// Only these prefixes: ranges FIRST-LAST or single prefixes (5 hex digits, either case),
    /// separated by commas, such as 00000-7FFFF or 5BAA0-5BAAF,8846F: a part of the tree, for
    /// a mirror split over several servers [default: all].
    #[arg(long, value_name = "FIRST-LAST,...", value_parser = parse_prefixes)]
    prefixes: Option<Prefixes>,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: ExportArgs) -> anyhow::Result<u8> {
    super::set_threads(args.threads)?;
    let signals = StopSignals::install().context("cannot install signal handlers")?;
    let started = Instant::now();
    let indexes = leakdex::export::group(
        args.indexes
            .iter()
            .map(Index::open)
            .collect::<leakdex::Result<Vec<_>>>()?,
    )?;
    let options = ExportOptions {
        gzip: args.gzip,
        max_age: args.max_age,
        prefixes: args.prefixes.map_or_else(|| vec![0..=0xF_FFFF], |p| p.0),
    };
    let flag = signals.flag();
    let summary = if !args.quiet && std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} files {per_sec} eta {eta}")?
                .progress_chars("=> "),
        );
        let progress = FileBar(bar);
        let result = export(&indexes, &args.dir, &options, &progress, Some(&flag));
        progress.0.finish_and_clear();
        result?
    } else {
        export(&indexes, &args.dir, &options, &NoProgress, Some(&flag))?
    };
    if !args.quiet {
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "wrote {}: {} files ({}), {} bytes, in {:.1} s ({:.0} files/s)",
            args.dir.display(),
            super::grouped(summary.files),
            summary.folders.join(", "),
            super::grouped(summary.bytes),
            seconds,
            summary.files as f64 / seconds.max(1e-9)
        );
    }
    Ok(0)
}

/// A progress bar counting files.
struct FileBar(ProgressBar);

impl BuildProgress for FileBar {
    fn phase(&self, name: &str, total: u64) {
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.set_message(name.to_string());
    }

    fn advance(&self, files: u64, _lines: u64) {
        self.0.inc(files);
    }
}

/// The ranges of `--prefixes`.
#[derive(Clone, Debug)]
struct Prefixes(Vec<std::ops::RangeInclusive<u32>>);

/// `FIRST-LAST` or `PREFIX`, comma-separated: 5-hex prefixes in either case, FIRST not after
/// LAST.
fn parse_prefixes(text: &str) -> Result<Prefixes, String> {
    let parse = |p: &str| {
        leakdex::hash::parse_prefix(p.trim().as_bytes())
            .map_err(|e| format!("`{p}`: {}", e.message()))
    };
    let mut out = Vec::new();
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let p = parse(part)?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!("`{part}`: the first prefix comes after the last"));
        }
        out.push(first..=last);
    }
    Ok(Prefixes(out))
}
