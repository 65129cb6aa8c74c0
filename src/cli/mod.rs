//! Command-line arguments and dispatch, one file per subcommand.

mod audit;
mod bench;
mod build;
mod check;
mod export;
mod generate;
mod info;
mod merge;
mod range;
mod serve;
mod shrink;
mod verify;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Exit code for errors (clap uses it for bad arguments too).
pub const EXIT_ERROR: u8 = 2;

/// Check passwords and password hashes against leaked-credential dumps, offline.
///
/// Build an index once from a dump of SHA-1 or NTLM hashes (such as the Pwned Passwords
/// corpus), then check passwords or hashes against it and answer k-anonymity range queries,
/// without sending anything anywhere.
#[derive(Parser, Debug)]
#[command(name = "leakdex", version, about, long_about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Build(build::BuildArgs),
    Check(check::CheckArgs),
    Range(range::RangeArgs),
    Info(info::InfoArgs),
    Verify(verify::VerifyArgs),
    Generate(generate::GenerateArgs),
    Serve(serve::ServeArgs),
    Bench(bench::BenchArgs),
    Merge(merge::MergeArgs),
    Audit(audit::AuditArgs),
    Shrink(shrink::ShrinkArgs),
    Export(export::ExportArgs),
}

/// Runs a subcommand and returns its exit code.
pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.command {
        Command::Build(a) => build::run(a),
        Command::Check(a) => check::run(a),
        Command::Range(a) => range::run(a),
        Command::Info(a) => info::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Bench(a) => bench::run_cmd(a),
        Command::Merge(a) => merge::run(a),
        Command::Audit(a) => audit::run(a),
        Command::Shrink(a) => shrink::run(a),
        Command::Export(a) => export::run(a),
    }
}

/// Sets the number of worker threads (none or 0 keeps one per core).
pub fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(threads) = threads.filter(|&t| t > 0) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()?;
    }
    Ok(())
}

/// The index a command reads, as `-i/--index INDEX` (as `check`, `range`, `serve` and
/// `bench` take it) or as the first positional argument.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct IndexArg {
    /// The index file.
    #[arg(value_name = "INDEX")]
    positional: Option<PathBuf>,
    /// The index file (the same as the positional INDEX).
    #[arg(short = 'i', long = "index", value_name = "INDEX")]
    flag: Option<PathBuf>,
}

impl IndexArg {
    /// The path given, in either form.
    pub fn path(&self) -> &Path {
        self.flag
            .as_deref()
            .or(self.positional.as_deref())
            .expect("clap requires one of the two")
    }
}

/// Formats an integer with thousands separators.
pub fn grouped(n: impl Into<u128>) -> String {
    let digits = n.into().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
