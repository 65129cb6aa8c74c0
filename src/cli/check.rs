//! `leakdex check`: check passwords or hashes, one per line.

use anyhow::{bail, Context};
use clap::Args;
use leakdex::hash::{encode_hex_into, parse_hash_item};
use leakdex::range::write_decimal;
use leakdex::{HashBytes, IndexSet, KeyType, Presence, StoreForm};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;

/// Check passwords, logins or credential pairs (or, with --hashes, hex hashes) against an
/// index, one per line.
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
/// Exit code: 0 when no item was found (a count of 0 is not found), 1 when at least one was
/// (a possible hit of a filter-only index counts as found), 2 on error.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The index to check against. Repeat it for the partitions of one index (`build
    /// --prefixes`): each item goes to the partition that holds its prefix, and an item that
    /// none holds is an error.
    #[arg(short, long, value_name = "INDEX", required = true)]
    index: Vec<PathBuf>,
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

pub fn run(args: CheckArgs) -> anyhow::Result<u8> {
    leakdex::sys::forbid_core_dumps();
    super::set_threads(args.threads)?;
    let index = IndexSet::open(&args.index)?;
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
        let presence = index.probe(&hash)?;
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
            if batches == 2 {
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
            let chunks: Vec<&[HashBytes]> = hashes.chunks(1024).collect();
            let answers: Vec<Vec<Presence>> = map_items(parallel, &chunks, |chunk| {
                let mut answers = Vec::with_capacity(chunk.len());
                index.probe_many(chunk, &mut answers).map(|()| answers)
            })
            .into_iter()
            .collect::<leakdex::Result<_>>()?;
            out.clear();
            for ((hash, presence), (line, _)) in
                hashes.iter().zip(answers.into_iter().flatten()).zip(&items)
            {
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
    index: &IndexSet,
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
    if index.part_for(leakdex::hash::prefix_of(&hash)).is_none() {
        bail!("{name}:{line}: {}", index.not_held());
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
    index: &IndexSet,
    line: u64,
    hash: &HashBytes,
    presence: Presence,
    json: bool,
    out: &mut Vec<u8>,
    noted: &mut bool,
) {
    if presence == Presence::Possible && !*noted {
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
