//! `leakdex check`: check passwords or hashes, one per line.

use anyhow::Context;
use clap::Args;
use leakdex::check::{Answer, Answerer, CheckError, Checker};
use leakdex::hash::encode_hex_into;
use leakdex::hash::write_decimal;
use leakdex::remote::{RangeMode, RemoteChecker, RemoteOptions};
use leakdex::{IndexSet, KeyType, Presence, StoreForm};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Check passwords, logins or credential pairs (or, with --hashes, hex hashes) against an
/// index, or a range server with --remote, one per line.
///
/// The index decides what a line holds: a password for a password index (only the line end,
/// LF or CRLF, is removed: spaces belong to the password); a login (email, user name, phone
/// number) for a `login` index, normalised as the build normalises it (trimmed, lowercased);
/// `LOGIN:PASSWORD`, split at the first `:`, for a `pair` index. Reads INPUT, or standard
/// input when INPUT is `-` or absent. With no INPUT and a terminal on standard input, asks for
/// one item: a password without echo; a login, echoed; for a pair, the login (echoed) and then
/// the password (not). Prints `HASH:COUNT` per item in input order (count 0 when absent) or,
/// with --json, `{"line": N, "hash": "...", "count": C}`; never the password, nor the login.
///
/// A compact index (`build --store compact`) prints counts the same way, and adds
/// `"exact": false` in JSON: a count is that of the hashes sharing the item's first 64 bits.
/// A filter-only index (`--store none`) has no counts: it prints `HASH:?` for a possible hit
/// and `HASH:0` for a miss (JSON: `"count": null, "found": true` or `"count": 0, "found":
/// false`), and on the first possible hit writes the filter's false-positive rate to standard
/// error.
///
/// With --hashes, each line holds a hex hash of the index's kind, either case, with spaces
/// around it allowed; a `HASH:COUNT` line (from a dump) is read as its hash. Blank lines are
/// skipped. A line that cannot be read stops the check with an error naming the line, after
/// the answers for the lines before it.
///
/// With --remote URL instead of -i, there is no index: a range server answers (`leakdex
/// serve`, nginx serving a `leakdex export` tree, the Pwned Passwords API). Items are read,
/// hashed and printed as above, with --kind saying what they are (sha1 passwords by default;
/// ntlm passwords; login; pair). For each distinct 5-hex prefix among the hashes, leakdex asks
/// `GET URL/range/PREFIX` (with `?mode=ntlm`, `?mode=login` or `?mode=pair`), with the headers
/// `Add-Padding: true` (unless --no-padding), `Accept-Encoding: gzip` and `User-Agent`, and
/// nothing else; it compares the suffixes in the answer with the hashes itself. Passwords,
/// logins, full hashes and suffixes never leave the process; messages name no prefix either.
/// Rows with count 0 are padding and are ignored. Input is read 65,536 lines at a time, each
/// batch's prefixes asked once, --connections at a time; nothing is cached between batches.
/// A request that meets 429, a 5xx status, a timeout or a connection error is tried again,
/// up to --retries more times, after 0.25 s, 0.5 s, 1 s, ... (at most 8 s) or the server's
/// Retry-After when that is 30 s or less. A final status other than 200, or an answer that is
/// not a range body, stops the check with exit code 2 and a message naming the request by its
/// number; the answers of earlier batches have been printed by then. HTTPS uses the Mozilla
/// root certificates, or only those of --ca-cert; proxies come from HTTPS_PROXY, HTTP_PROXY,
/// ALL_PROXY and NO_PROXY.
///
/// Exit code: 0 when no item was found (a count of 0 is not found), 1 when at least one was
/// (a possible hit of a filter-only index counts as found), 2 on error.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The index to check against. Repeat it for the partitions of one index (`build
    /// --prefixes`): each item goes to the partition that holds its prefix, and an item that
    /// none holds is an error.
    #[arg(
        short,
        long,
        value_name = "INDEX",
        required_unless_present = "remote",
        conflicts_with = "remote"
    )]
    index: Vec<PathBuf>,
    /// Ask the range server at URL (its base: leakdex appends /range/PREFIX) instead of an
    /// index; only 5-hex prefixes are sent.
    #[arg(long, value_name = "URL")]
    remote: Option<String>,
    /// With --remote: what the items are and the server is asked for: sha1 (passwords),
    /// ntlm (passwords, mode=ntlm), login (mode=login), pair (LOGIN:PASSWORD, mode=pair)
    /// [default: sha1].
    #[arg(
        long,
        value_name = "KIND",
        requires = "remote",
        conflicts_with = "index"
    )]
    kind: Option<RangeMode>,
    /// With --remote: requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8, requires = "remote",
          conflicts_with = "index", value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// With --remote: do not send `Add-Padding: true`.
    #[arg(long, requires = "remote", conflicts_with = "index")]
    no_padding: bool,
    /// With --remote: tries of a failed request after the first.
    #[arg(long, value_name = "N", default_value_t = 4, requires = "remote",
          conflicts_with = "index", value_parser = clap::value_parser!(u32).range(0..=20))]
    retries: u32,
    /// With --remote: seconds one try may take, answer included.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, requires = "remote",
          conflicts_with = "index", value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// With --remote: trust only the certificates in this PEM file (a private mirror's CA)
    /// rather than the built-in roots.
    #[arg(
        long,
        value_name = "FILE",
        requires = "remote",
        conflicts_with = "index"
    )]
    ca_cert: Option<PathBuf>,
    /// Items are hex hashes (either case) rather than passwords; blank lines are skipped.
    #[arg(long)]
    hashes: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
    /// File of items, one per line; `-` or nothing for standard input.
    input: Option<PathBuf>,
    /// Worker threads for large inputs [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

/// Bytes of answers gathered before they are written out.
const OUT_BUFFER: usize = 256 << 10;

/// What answers: an index, or a range server.
enum Source {
    Local(IndexSet),
    Remote(RemoteChecker),
}

impl Source {
    fn open(args: &CheckArgs) -> anyhow::Result<Source> {
        let Some(url) = &args.remote else {
            return Ok(Source::Local(IndexSet::open(&args.index)?));
        };
        let ca_certs_pem = match &args.ca_cert {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("--ca-cert {}: cannot read", path.display()))?,
            ),
            None => None,
        };
        let options = RemoteOptions {
            mode: args.kind.unwrap_or_default(),
            padding: !args.no_padding,
            connections: args.connections.into(),
            attempts: args.retries + 1,
            timeout: Duration::from_secs(args.timeout),
            ca_certs_pem,
            ..RemoteOptions::default()
        };
        Ok(Source::Remote(RemoteChecker::new(url, options)?))
    }

    fn checker(&self) -> Checker<'_> {
        match self {
            Source::Local(index) => Checker::new(index),
            Source::Remote(remote) => Checker::new(remote),
        }
    }
}

pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    leakdex::sys::forbid_core_dumps();
    super::set_threads(args.threads)?;
    let source = Source::open(&args)?;
    let checker = source.checker().hashes(args.hashes);
    let answerer = checker.answerer();
    let from_stdin = args.input.as_ref().is_none_or(|p| p.as_os_str() == "-");
    let name = match &args.input {
        Some(p) if !from_stdin => p.display().to_string(),
        _ => "<stdin>".to_string(),
    };
    let mut noted = false;
    if args.input.is_none() && !args.hashes && std::io::stdin().is_terminal() {
        // A login is echoed as it is typed; a password never is.
        let mut item = match answerer.key() {
            KeyType::Password => rpassword::prompt_password("password: ")?.into_bytes(),
            KeyType::Login => prompt_echoed("login: ")?,
            KeyType::Pair => prompt_echoed("login: ")?,
        };
        let result = if answerer.key() == KeyType::Pair {
            // Login and password as typed, not joined and split again: a login may hold `:`.
            let mut password = rpassword::prompt_password("password: ")?.into_bytes();
            let mut scratch = Vec::new();
            let hashed = leakdex::key::hash_credential(
                KeyType::Pair,
                answerer.kind(),
                &item,
                &password,
                &mut scratch,
            )
            .map_err(|why| anyhow::anyhow!("<terminal>: {why}"));
            password.fill(0);
            scratch.fill(0);
            hashed
        } else {
            checker
                .hash_item(&item, "<terminal>", 1)
                .map_err(anyhow::Error::from)
        };
        item.fill(0);
        let hash = result?;
        let answer = Answer {
            line: 1,
            hash,
            presence: checker.probe(&hash)?,
        };
        let mut out = Vec::new();
        format_item(answerer, answer, args.json, &mut out, &mut noted);
        std::io::stdout().write_all(&out)?;
        return Ok(u8::from(answer.is_found()));
    }
    let reader: Box<dyn Read> = if from_stdin {
        Box::new(std::io::stdin().lock())
    } else {
        let path = args.input.as_ref().expect("not stdin");
        Box::new(File::open(path).with_context(|| format!("{name}: cannot open"))?)
    };
    let reader = BufReader::with_capacity(256 << 10, reader);
    let mut stdout = std::io::stdout().lock();
    // Answers are formatted into one buffer, written out whenever it holds 256 KiB, and at
    // the end, before any error is told.
    let mut out = Vec::with_capacity(OUT_BUFFER + 1024);
    let checked = checker.check_lines(reader, &name, |answer| {
        format_item(answerer, answer, args.json, &mut out, &mut noted);
        if out.len() >= OUT_BUFFER {
            stdout.write_all(&out)?;
            out.clear();
        }
        Ok(())
    });
    stdout.write_all(&out)?;
    stdout.flush()?;
    let answered = |n: u64, before: &str| match n {
        0 => "no item was answered".to_string(),
        1 => format!("the 1 item {before} was answered above"),
        n => format!(
            "the {} items {before} were answered above",
            super::grouped(n)
        ),
    };
    match checked {
        Ok(summary) => Ok(u8::from(summary.found > 0)),
        Err(CheckError::Item { error, answered: n }) => {
            Err(anyhow::anyhow!("{error}; {}", answered(n, "before it")))
        }
        Err(CheckError::Remote { error, answered: n }) => Err(anyhow::anyhow!(
            "{error}; {}",
            answered(n, "of earlier batches")
        )),
        Err(CheckError::Output(e)) => Err(e.into()),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// Asks for a line on the terminal, echoed; the line end is removed.
fn prompt_echoed(prompt: &str) -> anyhow::Result<Vec<u8>> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = Vec::new();
    std::io::stdin().lock().read_until(b'\n', &mut line)?;
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}

/// Appends one answer's line. On the first possible hit of a filter-only index, says on
/// standard error what such a hit means (once: `noted`).
fn format_item(
    answerer: Answerer<'_>,
    answer: Answer,
    json: bool,
    out: &mut Vec<u8>,
    noted: &mut bool,
) {
    let Answer {
        line,
        hash,
        presence,
    } = answer;
    if let (Presence::Possible, false, Answerer::Index(index)) = (presence, *noted, answerer) {
        *noted = true;
        let rate = index.false_match_rate();
        eprintln!(
            "leakdex: {} is filter-only: a hit (count `?`) means possibly present; about 1 in \
             {:.0} hashes that are not in it is a false positive ({:.4}%)",
            index.name(),
            1.0 / rate,
            rate * 100.0
        );
    }
    let hex = &hash[..answerer.kind().byte_len()];
    let count = presence.count().unwrap_or(0);
    if json {
        out.extend_from_slice(b"{\"line\": ");
        write_decimal(line, out);
        out.extend_from_slice(b", \"hash\": \"");
        encode_hex_into(hex, out);
        match (answerer.store_form(), presence) {
            (StoreForm::None, Presence::Possible) => {
                out.extend_from_slice(b"\", \"count\": null, \"found\": true}\n")
            }
            (StoreForm::None, _) => out.extend_from_slice(b"\", \"count\": 0, \"found\": false}\n"),
            (form, _) => {
                out.extend_from_slice(b"\", \"count\": ");
                write_decimal(count, out);
                if form == StoreForm::Compact {
                    out.extend_from_slice(b", \"exact\": false");
                }
                out.extend_from_slice(b"}\n");
            }
        }
    } else {
        encode_hex_into(hex, out);
        out.push(b':');
        if presence == Presence::Possible {
            out.push(b'?');
        } else {
            write_decimal(count, out);
        }
        out.push(b'\n');
    }
}
