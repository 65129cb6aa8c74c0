//! `leakdex check`: check passwords or hashes, one per line.

use anyhow::{bail, Context};
use clap::Args;
use leakdex::hash::{encode_hex_into, parse_hash_item};
use leakdex::range::write_decimal;
use leakdex::remote::{RangeMode, RemoteChecker, RemoteOptions};
use leakdex::{HashBytes, HashKind, IndexSet, KeyType, Presence, StoreForm};
use rayon::prelude::*;
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

/// Items checked per parallel batch.
const BATCH: usize = 1 << 16;
/// Batches smaller than this run on the calling thread: starting the thread pool (and
/// tearing down a mapping that several threads have used) costs more than they take.
const PARALLEL_MIN: usize = 1 << 12;

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

    fn kind(&self) -> HashKind {
        match self {
            Source::Local(index) => index.kind(),
            Source::Remote(remote) => remote.mode().kind(),
        }
    }

    fn key(&self) -> KeyType {
        match self {
            Source::Local(index) => index.key(),
            Source::Remote(remote) => remote.mode().key(),
        }
    }

    /// Why `hash` cannot be answered: partitions that do not hold its prefix. A server
    /// answers every prefix.
    fn not_held(&self, hash: &HashBytes) -> Option<leakdex::Error> {
        match self {
            Source::Local(index) => index
                .part_for(leakdex::hash::prefix_of(hash))
                .is_none()
                .then(|| index.not_held()),
            Source::Remote(_) => None,
        }
    }

    /// A server's counts are exact, as a full store's.
    fn store_form(&self) -> StoreForm {
        match self {
            Source::Local(index) => index.store_form(),
            Source::Remote(_) => StoreForm::Full,
        }
    }

    /// The answer for each hash, in order; on the thread pool when `parallel` (an index), or
    /// one request per distinct prefix (a server).
    fn probe_many(&self, hashes: &[HashBytes], parallel: bool) -> leakdex::Result<Vec<Presence>> {
        match self {
            Source::Local(index) => {
                let chunks: Vec<&[HashBytes]> = hashes.chunks(1024).collect();
                let answers: Vec<Vec<Presence>> = map_items(parallel, &chunks, |chunk| {
                    let mut answers = Vec::with_capacity(chunk.len());
                    index.probe_many(chunk, &mut answers).map(|()| answers)
                })
                .into_iter()
                .collect::<leakdex::Result<_>>()?;
                Ok(answers.into_iter().flatten().collect())
            }
            Source::Remote(remote) => {
                let mut answers = Vec::with_capacity(hashes.len());
                remote.probe_many(hashes, &mut answers)?;
                Ok(answers)
            }
        }
    }
}

pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    leakdex::sys::forbid_core_dumps();
    super::set_threads(args.threads)?;
    let index = Source::open(&args)?;
    let from_stdin = args.input.as_ref().is_none_or(|p| p.as_os_str() == "-");
    let name = match &args.input {
        Some(p) if !from_stdin => p.display().to_string(),
        _ => "<stdin>".to_string(),
    };
    if args.input.is_none() && !args.hashes && std::io::stdin().is_terminal() {
        // A login is echoed as it is typed; a password never is.
        let mut item = match index.key() {
            KeyType::Password => rpassword::prompt_password("password: ")?.into_bytes(),
            KeyType::Login => prompt_echoed("login: ")?,
            KeyType::Pair => prompt_echoed("login: ")?,
        };
        let result = if index.key() == KeyType::Pair {
            // Login and password as typed, not joined and split again: a login may hold `:`.
            let mut password = rpassword::prompt_password("password: ")?.into_bytes();
            let mut scratch = Vec::new();
            let hashed = leakdex::key::hash_credential(
                KeyType::Pair,
                index.kind(),
                &item,
                &password,
                &mut scratch,
            )
            .map_err(|why| anyhow::anyhow!("<terminal>: {why}"));
            password.fill(0);
            scratch.fill(0);
            hashed
        } else {
            hash_item(&index, &item, false, "<terminal>", 1)
        };
        item.fill(0);
        let hash = result?;
        let presence = index.probe_many(&[hash], false)?[0];
        let mut out = Vec::new();
        let mut noted = false;
        format_item(&index, 1, &hash, presence, args.json, &mut out, &mut noted);
        std::io::stdout().write_all(&out)?;
        return Ok(u8::from(is_found(presence)));
    }
    let reader: Box<dyn Read> = if from_stdin {
        Box::new(std::io::stdin().lock())
    } else {
        let path = args.input.as_ref().expect("not stdin");
        Box::new(File::open(path).with_context(|| format!("{name}: cannot open"))?)
    };
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let mut stdout = std::io::stdout().lock();
    let mut items: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut out = Vec::new();
    let mut line_no = 0u64;
    let mut found_any = false;
    let mut batches = 0u64;
    let mut answered = 0u64;
    let mut noted = false;
    loop {
        let mut buf = spare.pop().unwrap_or_default();
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("{name}: cannot read"))?;
        let at_end = n == 0;
        if !at_end {
            line_no += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            }
            if args.hashes && buf.iter().all(|b| b.is_ascii_whitespace()) {
                spare.push(buf);
            } else {
                items.push((line_no, buf));
            }
        }
        if items.len() == BATCH || (at_end && !items.is_empty()) {
            batches += 1;
            if let (2, Source::Local(index)) = (batches, &index) {
                // An audit of many items, for which the index is worth reading from disk in
                // 2 MiB pages.
                index.prefer_huge_pages();
            }
            // Hash every item on all cores, then check them in batches (the filter first,
            // then batched store lookups), and print in input order.
            let parallel = items.len() >= PARALLEL_MIN;
            let mut hashed: Vec<anyhow::Result<HashBytes>> =
                map_items(parallel, &items, |(line, item)| {
                    hash_item(&index, item, args.hashes, &name, *line)
                });
            for (_, item) in items.iter_mut() {
                item.fill(0);
            }
            let good = hashed
                .iter()
                .position(|r| r.is_err())
                .unwrap_or(hashed.len());
            let failure = (good < hashed.len()).then(|| hashed.swap_remove(good));
            let hashes: Vec<HashBytes> = hashed
                .into_iter()
                .take(good)
                .map(|r| r.expect("only items before the first error"))
                .collect();
            let answers = match index.probe_many(&hashes, parallel) {
                Ok(answers) => answers,
                Err(e) if matches!(index, Source::Local(_)) => return Err(e.into()),
                Err(e) => {
                    // A server's failure ends the check after the batches before it.
                    stdout.flush()?;
                    let answered = match answered {
                        0 => "no item was answered".to_string(),
                        1 => "the 1 item of earlier batches was answered above".to_string(),
                        n => format!(
                            "the {} items of earlier batches were answered above",
                            super::grouped(n)
                        ),
                    };
                    return Err(anyhow::anyhow!("{e}; {answered}"));
                }
            };
            out.clear();
            for ((hash, presence), (line, _)) in hashes.iter().zip(answers).zip(&items) {
                found_any |= is_found(presence);
                answered += 1;
                format_item(
                    &index, *line, hash, presence, args.json, &mut out, &mut noted,
                );
            }
            let failure = failure.and_then(|r| r.err());
            stdout.write_all(&out)?;
            if let Some(e) = failure {
                stdout.flush()?;
                let answered = match answered {
                    0 => "no item was answered".to_string(),
                    1 => "the 1 item before it was answered above".to_string(),
                    n => format!(
                        "the {} items before it were answered above",
                        super::grouped(n)
                    ),
                };
                return Err(anyhow::anyhow!("{e:#}; {answered}"));
            }
            spare.extend(items.drain(..).map(|(_, b)| b));
        }
        if at_end {
            break;
        }
    }
    stdout.flush()?;
    Ok(u8::from(found_any))
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

/// `f` of every item in order, on the thread pool when `parallel`.
fn map_items<T: Sync, R: Send>(
    parallel: bool,
    items: &[T],
    f: impl Fn(&T) -> R + Sync + Send,
) -> Vec<R> {
    if parallel {
        items.par_iter().map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
}

fn hash_item(
    index: &Source,
    item: &[u8],
    hashes: bool,
    name: &str,
    line: u64,
) -> anyhow::Result<HashBytes> {
    let kind = index.kind();
    let hash = if hashes {
        match parse_hash_item(item, kind) {
            Ok(h) => h,
            Err(why) => bail!("{name}:{line}: {why}"),
        }
    } else {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let hashed = SCRATCH.with_borrow_mut(|scratch| {
            let hashed = leakdex::key::hash_item(index.key(), kind, item, scratch);
            // The normalised login stays in no buffer once hashed.
            scratch.fill(0);
            hashed
        });
        match hashed {
            Ok(h) => h,
            Err(why) => bail!("{name}:{line}: {why}"),
        }
    };
    if let Some(why) = index.not_held(&hash) {
        bail!("{name}:{line}: {why}");
    }
    Ok(hash)
}

/// Whether an answer counts as found for the exit code: a count above 0, or a possible hit.
fn is_found(presence: Presence) -> bool {
    match presence {
        Presence::Found(c) => c > 0,
        Presence::Possible => true,
        Presence::Absent => false,
    }
}

/// Appends one answer's line. On the first possible hit of a filter-only index, says on
/// standard error what such a hit means (once: `noted`).
fn format_item(
    index: &Source,
    line: u64,
    hash: &HashBytes,
    presence: Presence,
    json: bool,
    out: &mut Vec<u8>,
    noted: &mut bool,
) {
    if let (Presence::Possible, false, Source::Local(index)) = (presence, *noted, index) {
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
    let hex = &hash[..index.kind().byte_len()];
    let count = presence.count().unwrap_or(0);
    if json {
        out.extend_from_slice(b"{\"line\": ");
        write_decimal(line, out);
        out.extend_from_slice(b", \"hash\": \"");
        encode_hex_into(hex, out);
        match (index.store_form(), presence) {
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
