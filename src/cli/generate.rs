//! `leakdex generate`: write a synthetic sorted dump.

use anyhow::Context;
use clap::Args;
use leakdex::generate::{
    generate, generate_pwdump, generate_ulp, sample_passwords, GenerateOptions,
};
use leakdex::HashKind;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use leakdex::sys::StopSignals;
use leakdex::writer::{publish, temp_file_beside};

/// A file that refuses further writes once a stop signal has come.
struct StopOnSignal<'a> {
    file: &'a std::fs::File,
    signals: &'a StopSignals,
}

impl Write for StopOnSignal<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.signals.stopped() {
            // Not ErrorKind::Interrupted, which write_all would retry.
            return Err(std::io::Error::other("stopped by a signal"));
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Write a deterministic synthetic dump, for samples and benchmarks.
///
/// N random hashes, sorted, in the official dump's form (upper-case `HASH:COUNT`, CRLF), with
/// heavy-tailed counts (some above 2^32 in large dumps). The same seed gives the same bytes.
///
/// A file is written under a temporary name beside it and renamed into place when complete,
/// so an interrupted run (SIGINT, SIGTERM, SIGHUP: exit code 128 plus the signal's number)
/// leaves nothing at the output path, never a partial dump that would build without complaint.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Random hashes to generate (with --ulp: lines).
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
    /// Write N synthetic stealer-log lines for `build --input ulp` instead (URL:LOGIN:PASSWORD
    /// in the shapes it reads, with logins and passwords that repeat as in real leaks).
    #[arg(long, conflicts_with_all = ["with_passwords", "kind", "lf"])]
    ulp: bool,
    /// Write a synthetic secretsdump of N accounts for `audit` instead (`CORP\userN:RID:LM:NT:::
    /// (status=...)`): well-known, shared and empty passwords, some LM hashes, some disabled
    /// accounts and history entries.
    #[arg(long, conflicts_with_all = ["with_passwords", "kind", "lf", "ulp"])]
    pwdump: bool,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

/// What to write instead of a dump of hashes.
#[derive(Clone, Copy)]
enum Form {
    Hashes,
    Ulp,
    Pwdump,
}

/// The dump, the stealer log or the account dump.
fn write<W: Write>(form: Form, options: &GenerateOptions, out: &mut W) -> std::io::Result<u64> {
    match form {
        Form::Hashes => generate(options, out),
        Form::Ulp => generate_ulp(options.hashes, options.seed, out),
        Form::Pwdump => generate_pwdump(options.hashes, options.seed, out),
    }
}

pub fn run(args: GenerateArgs) -> anyhow::Result<u8> {
    let args_ulp = match (args.ulp, args.pwdump) {
        (true, _) => Form::Ulp,
        (_, true) => Form::Pwdump,
        _ => Form::Hashes,
    };
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
            if path.is_dir() {
                anyhow::bail!(
                    "{}: is a folder; give the path of the file to write",
                    path.display()
                );
            }
            let signals = StopSignals::install().context("cannot install signal handlers")?;
            let temp = temp_file_beside(&path)?;
            let mut out = BufWriter::with_capacity(
                1 << 22,
                StopOnSignal {
                    file: temp.as_file(),
                    signals: &signals,
                },
            );
            let written = write(args_ulp, &options, &mut out)
                .and_then(|_| out.flush())
                .and_then(|_| temp.as_file().sync_all());
            drop(out);
            if signals.stopped() {
                drop(temp);
                let _ = writeln!(
                    std::io::stderr(),
                    "leakdex: generate stopped by {}; nothing was written",
                    signals.signal_name()
                );
                return Ok(signals.exit_code());
            }
            written.with_context(|| format!("{}: cannot write", path.display()))?;
            publish(temp, &path)?;
        }
        None => {
            let mut out = BufWriter::with_capacity(1 << 22, std::io::stdout().lock());
            write(args_ulp, &options, &mut out).and_then(|_| out.flush())?;
        }
    }
    Ok(0)
}
