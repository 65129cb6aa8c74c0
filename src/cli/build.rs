//! `leakdex build`: turn dumps into an index.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use leakdex::sys::StopSignals;
use leakdex::{
    build_index, BuildOptions, BuildProgress, FilterKind, HashKind, InputFormat, KeyType, StoreForm,
};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Build an index from dumps of SHA-1 or NTLM hashes (or plaintext leaks).
///
/// Each INPUT holds one `HASH:COUNT` or bare `HASH` (count 1) per line: LF or CRLF, hex in
/// either case, a UTF-8 byte-order mark or blank lines tolerated, sorted or not. A hash that
/// appears more than once has its counts summed. INPUT may be a file, `-` (standard input) or
/// a pipe; gzip and zstd are recognised by their first bytes on any of them. Streams are read
/// on a thread of their own, ahead of the parser. A malformed line stops the build
/// with an error naming the file and line (exit code 2), and nothing is left at the output
/// path: the index is written under a temporary name beside it and renamed into place when
/// complete.
///
/// INPUT may also be a folder: a downloader tree of range bodies, one file per 5-hex prefix
/// named by it (either case), holding that prefix's `SUFFIX:COUNT` lines (CRLF or LF, gzip or
/// not). The layouts: PwnedPasswordsDownloader's `-s false` (`DIR/<PREFIX>.txt`);
/// hibp-downloader's (`DATA/sha1/<aa>/<bb>/<prefix>.gz`, `DATA/ntlm/...`, `.meta` files left
/// alone): give DATA (with --kind when it holds both kinds) or DATA/sha1; and `leakdex
/// export`'s (`DIR/range/<PREFIX>`, `range-ntlm/`; a `<PREFIX>.gz` copy beside is not read).
/// Any other file, or two files for one prefix, is an error. The tree must hold every prefix,
/// or with --prefixes every prefix of that range (files of other prefixes are not read): the
/// folder is listed and checked before any file is read. The kind comes from the folder
/// (`sha1`, `ntlm`), --kind or the suffix length (35 hex digits for SHA-1, 27 for NTLM). Rows
/// with count 0 (the API's padding) are left out and counted. The files are read in prefix
/// order on all cores, so the tree streams into the index sorted; it is one source of the
/// index (the folder's name, its files' bytes and lines, the newest file's time).
///
/// Sorted input streams straight through. Unsorted input is partitioned by hash prefix, in
/// memory up to a quarter of --memory and in temporary files under --tmp beyond that, then
/// each partition is sorted on all cores. Temporary files are removed on success, on error and
/// when a signal stops the build: SIGINT (Ctrl-C, exit code 130), SIGTERM (`kill`, `timeout`,
/// systemd; 143) or SIGHUP (a closed terminal or ssh session; 129). A second signal ends the
/// process at once. A build that was killed outright (SIGKILL, a power cut) leaves its
/// temporary files behind; the next build in the same folder removes them.
///
/// Plaintext leaks are hashed into the index's kind (--kind defaults to sha1), each line
/// counting 1: --input passwords (one password per line), combo or ulp. Blank lines, CRLF, a
/// byte-order mark, gzip and `-` work as for hashes. A line that fits no rule is left out,
/// counted, and reported with the first 5 `file:line: why` (never the line itself).
///
/// --input combo: `LOGIN:PASSWORD`, split at the first `:` (the password may hold `:`). A line
/// that starts with a scheme (`https://`) is left out: use --input ulp for stealer logs.
///
/// --input ulp (stealer logs). A separator is `:`, `|`, a space or a tab. A line that starts
/// with a scheme (`[A-Za-z][A-Za-z0-9+.-]*://`): the URL runs past the host (which may hold
/// `@` and `=`, as in `android://<base64>==@com.app/`; `[...]` for IPv6) and a port (`:` and
/// 1 to 5 digits), then through the path to the first separator. The login runs to the next
/// occurrence of that same separator, and the password is the rest of the line, whatever it
/// holds. Digits after the host are the login, not a port, when no login and password would
/// follow them.
///
/// A line without a scheme is `host:login:password` or `host|login|password` when the text
/// before its first `:` or `|` holds a `.` and no `@`, space or tab, and the line has three
/// fields; otherwise it is `login:password`, split at the first `:`. Login and password must
/// not be empty. For example:
///
///   `https://accounts.google.com:alice@example.com:hunter2`: login `alice@example.com`,
///   password `hunter2`
///
///   `https://host:8443/login:user:pa:ss`: login `user`, password `pa:ss`
///
///   `https://site.com/ bob my pass`: login `bob`, password `my pass`
///
///   `android://xyz==@com.app/|carol|letmein`: login `carol`, password `letmein`
///
///   `site.com|dave|qwerty`: login `dave`, password `qwerty`
///
///   `bob@example.com:password`: login `bob@example.com`, password `password`
///
///   `https://site.com/login`, `site.com:bob:`, `nocolon`: left out
///
/// Refused, with exit code 2: an output path that is one of the inputs (the same file, by
/// device and inode); an input that yields no hashes (empty, blank, or every line left out),
/// unless --allow-empty; an input whose source (name, size, modification time and line
/// count) the index already holds, unless --allow-duplicate-sources. A plaintext input
/// (--input passwords, combo or ulp) whose first lines mostly look like hashes, or a combo
/// input whose first lines mostly start with a URL, gets a warning that names the right
/// --input.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Dump files to read (`-` for standard input), or downloader trees (folders of range
    /// files, one per prefix).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    common: CommonBuildArgs,
}

/// Options shared by `build` and `merge`.
#[derive(Args, Debug)]
pub struct CommonBuildArgs {
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
    /// What to keep of each hash besides the filter: full (whole hashes and counts, about
    /// 18.7 bytes per SHA-1 hash; exact, and needed for `range` and `serve`), compact (the
    /// first 64 bits and the count, about 6.4 bytes per hash; counts, and a false match about
    /// once in 2^64/n queries) or none (the filter alone: "possibly present" at the filter's
    /// false-positive rate, or "absent"; no counts; needs --filter fuse8 or fuse16).
    #[arg(long, default_value = "full")]
    store: StoreForm,
    /// What the lines hold: hashes; passwords (one plaintext password per line, each hashed
    /// into the index's kind, --kind defaulting to sha1); combo (`LOGIN:PASSWORD` lines, split
    /// at the first `:`, lines that start with a URL left out); or ulp (stealer logs:
    /// `URL:LOGIN:PASSWORD` with `:`, `|`, space or tab, `host:login:password`,
    /// `login:password`; the rules are in `leakdex build --help`). For combo and ulp, the
    /// password is what is hashed.
    #[arg(long, default_value = "hashes")]
    input: InputFormat,
    /// What to index of each credential (--input ulp or combo): password (SHA-1 or NTLM of
    /// the password), login (SHA-1 of the normalised login: trimmed, lowercased) or pair
    /// (SHA-1 of `normalised login:password`). Logins and pairs are SHA-1 only [default: the
    /// key of the indexes merged in, else password].
    #[arg(long)]
    key: Option<KeyType>,
    /// Memory the build may use, such as 4G or 512M, at least 8M [default: half of the
    /// machine's, at most 60% of what is free].
    #[arg(long, value_parser = parse_memory)]
    memory: Option<u64>,
    /// Build a partition: index only the hashes whose 5-hex prefix is in FIRST-LAST (such as
    /// 00000-3FFFF; either case), and leave the others out. Partitions of one dump can be
    /// built on several machines from the same input; `check`, `range`, `serve`, `export` and
    /// `bench` take them together (one -i each) and route each query by its prefix. A
    /// partition index refuses to answer for a hash outside its prefixes. When merging
    /// partition indexes alone, the output holds the prefixes they cover together (four
    /// partitions make a whole index) [default: every prefix].
    #[arg(long, value_name = "FIRST-LAST")]
    prefixes: Option<leakdex::PrefixRange>,
    /// Folder for temporary partition files [default: the output's folder].
    #[arg(long, value_name = "DIR")]
    tmp: Option<PathBuf>,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Build even when an input yields no hashes (an empty file, only blank lines, or every
    /// line left out). Without it that is an error: most often a download cut short.
    #[arg(long)]
    allow_empty: bool,
    /// Add an input even when the index already holds a source with the same name, size,
    /// modification time and line count. Without it that is an error: merging the same dump
    /// twice would double its counts.
    #[arg(long)]
    allow_duplicate_sources: bool,
    /// Hide the progress bar and summary (warnings and errors are still shown).
    #[arg(short, long)]
    quiet: bool,
}

/// Parses a size such as `512M`, `4G`, `1.5GiB` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 4G or 512M"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("`{text}` has an unknown unit (use K, M, G or T)")),
    };
    Ok((value * scale as f64) as u64)
}

/// The smallest --memory a build accepts.
const MIN_MEMORY: u64 = 8 << 20;

pub fn parse_memory(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "`{text}` is below the minimum of 8M (sizes are in bytes unless a unit such as M or \
             G follows)"
        ));
    }
    Ok(bytes)
}

/// Prints warnings on standard error at once, above the progress bar where there is one.
fn print_warning(bar: Option<&ProgressBar>, message: &str) {
    let print = || {
        let _ = writeln!(std::io::stderr(), "leakdex: warning: {message}");
    };
    match bar {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// Progress that only shows warnings (no terminal, or --quiet).
struct WarningsOnly;

impl BuildProgress for WarningsOnly {
    fn warning(&self, message: &str) {
        print_warning(None, message);
    }
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

    fn warning(&self, message: &str) {
        print_warning(Some(&self.bar), message);
    }
}

pub fn run(args: BuildArgs) -> anyhow::Result<u8> {
    run_build(args.inputs, args.common)
}

/// Builds from `inputs` (dumps, indexes, gzip or zstd files, `-`) with the shared options.
pub fn run_build(inputs: Vec<PathBuf>, args: CommonBuildArgs) -> anyhow::Result<u8> {
    super::set_threads(args.threads)?;
    // The first SIGINT, SIGTERM or SIGHUP asks the build to stop and clean up; a second one
    // stops at once.
    let signals = StopSignals::install().context("cannot install signal handlers")?;
    let options = BuildOptions {
        kind: args.kind,
        filter: args.filter,
        store: args.store,
        input: args.input,
        key: args.key,
        memory_limit: args.memory,
        tmp_dir: args.tmp,
        cancel: Some(signals.flag()),
        allow_empty: args.allow_empty,
        allow_duplicate_sources: args.allow_duplicate_sources,
        prefixes: args.prefixes.unwrap_or_default(),
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
        let result = build_index(&inputs, &args.output, &options, &progress);
        progress.bar.finish_and_clear();
        result
    } else {
        build_index(&inputs, &args.output, &options, &WarningsOnly)
    };
    let summary = match summary {
        Err(leakdex::Error::Interrupted) => {
            // The terminal may be gone (SIGHUP): a failed message must not change the outcome.
            let _ = writeln!(
                std::io::stderr(),
                "leakdex: build stopped by {}; nothing was written and temporary files are removed",
                signals.signal_name()
            );
            return Ok(signals.exit_code());
        }
        other => other.context("build failed")?,
    };
    if summary.skipped_lines > 0 {
        eprintln!(
            "leakdex: {} {} could not be hashed and {} left out, for example:",
            super::grouped(summary.skipped_lines),
            if summary.skipped_lines == 1 {
                "line"
            } else {
                "lines"
            },
            if summary.skipped_lines == 1 {
                "was"
            } else {
                "were"
            },
        );
        for example in &summary.skipped_examples {
            eprintln!("  {example}");
        }
    }
    if !args.quiet {
        let index = &summary.index;
        eprintln!(
            "wrote {}: {} {} {}{}, counts summing to {}, {} bytes, in {:.2} s{}",
            args.output.display(),
            super::grouped(index.hashes),
            index.kind.display_name(),
            if index.hashes == 1 { "hash" } else { "hashes" },
            match index.store {
                StoreForm::Full => "",
                StoreForm::Compact => " (compact store: first 64 bits)",
                StoreForm::None => " (filter only)",
            },
            super::grouped(index.count_sum),
            super::grouped(index.file_len),
            started.elapsed().as_secs_f64(),
            if summary.temp_bytes > 0 {
                format!(
                    " ({} bytes of temporary partitions)",
                    super::grouped(summary.temp_bytes)
                )
            } else {
                String::new()
            }
        );
        if !index.partition.is_whole() {
            eprintln!(
                "  partition: prefixes {}; {} {} outside it left out{}",
                index.partition,
                super::grouped(summary.outside_partition),
                if summary.outside_partition == 1 {
                    "hash"
                } else {
                    "hashes"
                },
                if summary.outside_files > 0 {
                    format!(
                        "; {} {} of the tree outside it not read",
                        super::grouped(summary.outside_files),
                        if summary.outside_files == 1 {
                            "file"
                        } else {
                            "files"
                        }
                    )
                } else {
                    String::new()
                }
            );
        }
        if summary.padding_rows > 0 {
            eprintln!(
                "  {} {} with count 0 (padding) in the range files left out",
                super::grouped(summary.padding_rows),
                if summary.padding_rows == 1 {
                    "row"
                } else {
                    "rows"
                }
            );
        }
        // Where the time went, so that a slow build names its bottleneck.
        let t = &summary.timings;
        let streams = if t.stream_reading + t.stream_waiting > std::time::Duration::ZERO {
            format!(
                " (streams: {:.2} s getting bytes from the producer or decompressor, {:.2} s \
                 waiting for the parser)",
                t.stream_reading.as_secs_f64(),
                t.stream_waiting.as_secs_f64()
            )
        } else {
            String::new()
        };
        eprintln!(
            "  stages: read and parse {:.2} s{streams}, sort {:.2} s, filter and write {:.2} s",
            t.read_and_parse.as_secs_f64(),
            t.sort.as_secs_f64(),
            t.filter_and_write.as_secs_f64()
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4X").is_err());
    }
}
