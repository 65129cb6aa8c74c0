//! `leakdex generate`: write a synthetic sorted dump.

use anyhow::Context;
use clap::Args;
use leakdex::generate::{generate, sample_passwords, GenerateOptions};
use leakdex::HashKind;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Write a deterministic synthetic dump, for samples and benchmarks.
///
/// N random hashes, sorted, in the official dump's form (upper-case `HASH:COUNT`, CRLF), with
/// heavy-tailed counts (some above 2^32 in large dumps). The same seed gives the same bytes.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Random hashes to generate.
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    hashes: u64,
    /// Output file; `-` or nothing for standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Hash kind: sha1 or ntlm.
    #[arg(long, default_value = "sha1")]
    kind: HashKind,
    /// Seed; the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// LF line ends instead of CRLF.
    #[arg(long)]
    lf: bool,
    /// Mix in a few well-known passwords ("password", "123456", "qwerty", "letmein",
    /// "correct horse battery staple") with made-up counts.
    #[arg(long)]
    with_passwords: bool,
    /// Worker threads [default: one per core].
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<u8> {
    super::set_threads(args.threads)?;
    let options = GenerateOptions {
        hashes: args.hashes,
        kind: args.kind,
        seed: args.seed,
        crlf: !args.lf,
        known: if args.with_passwords {
            sample_passwords()
        } else {
            Vec::new()
        },
    };
    match args.output.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            let file = std::fs::File::create(&path)
                .with_context(|| format!("{}: cannot create", path.display()))?;
            let mut out = BufWriter::with_capacity(1 << 22, file);
            generate(&options, &mut out)
                .and_then(|_| out.flush())
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
        None => {
            let mut out = BufWriter::with_capacity(1 << 22, std::io::stdout().lock());
            generate(&options, &mut out).and_then(|_| out.flush())?;
        }
    }
    Ok(0)
}
