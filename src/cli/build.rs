//! `leakdex build`: turn dumps into an index.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use leakdex::{build_index, BuildOptions, BuildProgress, FilterKind, HashKind, NoProgress};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Build an index from dumps of SHA-1 or NTLM hashes.
///
/// Each INPUT holds one `HASH:COUNT` or bare `HASH` (count 1) per line: LF or CRLF, hex in
/// either case, a UTF-8 byte-order mark or blank lines tolerated, sorted or not. A hash that
/// appears more than once has its counts summed. A malformed line stops the build with an
/// error naming the file and line (exit code 2), and nothing is left at the output path: the
/// index is written under a temporary name beside it and renamed into place when complete.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Dump files to read.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// The index file to write.
    #[arg(short, long, value_name = "INDEX")]
    output: PathBuf,
    /// Hash kind: sha1 or ntlm [default: from the length of the first hash].
    #[arg(long)]
    kind: Option<HashKind>,
    /// Filter in front of the store: fuse8 (9 bits/hash, 0.4% false positives), fuse16 (18
    /// bits/hash, 0.0015%) or none.
    #[arg(long, default_value = "fuse8")]
    filter: FilterKind,
    /// Worker threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Hide the progress bar and summary.
    #[arg(short, long)]
    quiet: bool,
}

struct Bar {
    bar: ProgressBar,
    lines: AtomicU64,
    phase: Mutex<String>,
}

impl BuildProgress for Bar {
    fn phase(&self, name: &str, total_bytes: u64) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = name.to_string();
        self.bar.set_position(0);
        self.bar.set_length(total_bytes);
        self.bar.set_message(name.to_string());
    }

    fn advance(&self, bytes: u64, lines: u64) {
        let total = self.lines.fetch_add(lines, Ordering::Relaxed) + lines;
        self.bar.inc(bytes);
        if lines > 0 {
            let phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
            self.bar
                .set_message(format!("{phase}: {} lines", super::grouped(total)));
        }
    }
}

pub fn run(args: BuildArgs) -> anyhow::Result<u8> {
    super::set_threads(args.threads)?;
    let options = BuildOptions {
        kind: args.kind,
        filter: args.filter,
        ..BuildOptions::default()
    };
    let started = Instant::now();
    let show = !args.quiet && std::io::stderr().is_terminal();
    let summary = if show {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )?
            .progress_chars("=> "),
        );
        let progress = Bar {
            bar,
            lines: AtomicU64::new(0),
            phase: Mutex::new(String::new()),
        };
        let result = build_index(&args.inputs, &args.output, &options, &progress);
        progress.bar.finish_and_clear();
        result
    } else {
        build_index(&args.inputs, &args.output, &options, &NoProgress)
    }
    .context("build failed")?;
    if !args.quiet {
        eprintln!(
            "wrote {}: {} {} hashes, counts summing to {}, {} bytes, in {:.2} s",
            args.output.display(),
            super::grouped(summary.hashes),
            summary.kind.display_name(),
            super::grouped(summary.count_sum),
            super::grouped(summary.file_len),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}
