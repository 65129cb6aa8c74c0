//! A build's inputs: opening files, folders, indexes and streams, recognising them by their
//! first bytes (gzip, zstd, an index), reading streams in blocks ahead of the parser, and
//! parsing blocks of hashes or plaintext (passwords, combo and stealer-log lines).

use super::{BuildOptions, InputFormat, SKIP_EXAMPLES};
use crate::dump::{first_hash_field, parse_chunk, ChunkError, ChunkStats, Entry, BOM};
use crate::error::{Error, Result};
use crate::hash::HashKind;
use crate::key::KeyType;
use crate::partition::PrefixRange;
use crate::sys::MappedFile;
use crate::tree::Tree;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(super) enum Source {
    Mapped(MappedFile),
    Reader(Box<dyn Read + Send>),
    /// An existing index, merged in with its entries and its sources.
    Index(Box<crate::index::Index>),
    /// A downloader tree: a folder of range bodies, one file per prefix (see [`crate::tree`]).
    Tree(Box<Tree>),
}

pub(super) struct Input {
    pub(super) path: PathBuf,
    pub(super) source: Source,
    pub(super) modified: u64,
    /// Device and inode, where known: an output path that is an input is refused.
    pub(super) identity: Option<(u64, u64)>,
}

/// Device and inode of a file's metadata.
pub(crate) fn identity_of(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Bytes looked at to recognise an input: the index magic is the longest.
const SNIFF: usize = 8;

/// Reads up to [`SNIFF`] bytes, fewer only at the end of the input.
fn read_head(reader: &mut dyn Read, path: &Path) -> Result<([u8; SNIFF], usize)> {
    let mut head = [0u8; SNIFF];
    let mut n = 0;
    while n < SNIFF {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, "cannot read", e)),
        }
    }
    Ok((head, n))
}

/// [`read_head`] of a stream, which may stall before its first bytes (a producer that has not
/// started, or sent less than the head). With a cancel flag, the head is read on a thread of
/// its own, waited for by [`receive_or_stop`].
fn read_stream_head(
    mut reader: Box<dyn Read + Send>,
    path: &Path,
    cancel: Option<&Arc<AtomicBool>>,
) -> Result<(Box<dyn Read + Send>, [u8; SNIFF], usize)> {
    let Some(cancel) = cancel else {
        let (head, n) = read_head(reader.as_mut(), path)?;
        return Ok((reader, head, n));
    };
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let owned_path = path.to_path_buf();
    std::thread::Builder::new()
        .name("leakdex-read".into())
        .spawn(move || {
            let head = read_head(reader.as_mut(), &owned_path);
            // The receiver is gone only when the build stopped meanwhile.
            let _ = send.send(head.map(|(head, n)| (reader, head, n)));
        })
        .map_err(|e| Error::io(path, "cannot start a thread to read", e))?;
    match receive_or_stop(&receive, Some(cancel))? {
        Some(head) => head,
        None => Err(Error::Internal(format!(
            "{}: the thread reading the first bytes ended without an answer",
            path.display()
        ))),
    }
}

/// The next message from a reading thread (`None` once it has ended), waited for in steps of a
/// tenth of a second in which `cancel` is looked at: a stalled stream, on which that thread
/// blocks in `read`, must not hold a stop request up ([`Error::Interrupted`]). The blocked
/// thread is left to the end of the process.
fn receive_or_stop<T>(
    receive: &std::sync::mpsc::Receiver<T>,
    cancel: Option<&Arc<AtomicBool>>,
) -> Result<Option<T>> {
    loop {
        match receive.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(message) => return Ok(Some(message)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(None),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Err(Error::Interrupted);
                }
            }
        }
    }
}

/// The compressed formats read, recognised by their magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// `1F 8B`; every member of a multi-member file is read in turn.
    Gzip,
    /// `28 B5 2F FD`; every frame is read in turn.
    Zstd,
}

pub(crate) fn compression(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else {
        None
    }
}

/// `reader` decompressed.
fn decompress(
    format: Compression,
    reader: Box<dyn Read + Send>,
    path: &Path,
) -> Result<Box<dyn Read + Send>> {
    let buffered = std::io::BufReader::with_capacity(1 << 20, reader);
    Ok(match format {
        // BGZF members are inflated in parallel; other gzip files member after member.
        Compression::Gzip => Box::new(crate::gzip::GzipReader::new(Box::new(buffered))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|e| Error::io(path, "cannot start decompressing (zstd)", e))?,
        ),
    })
}

/// A stream (standard input, a pipe, a device) recognised by its first bytes, which are read
/// once and handed on in front of the rest: a pipe cannot be read twice.
fn sniff_stream(
    reader: Box<dyn Read + Send>,
    path: &Path,
    cancel: Option<&Arc<AtomicBool>>,
) -> Result<Box<dyn Read + Send>> {
    let (reader, head, n) = read_stream_head(reader, path, cancel)?;
    if n == SNIFF && head == crate::format::MAGIC {
        return Err(Error::Invalid(format!(
            "{}: a leakdex index cannot be read from a pipe; give its file path",
            path.display()
        )));
    }
    let whole = Box::new(std::io::Cursor::new(head[..n].to_vec()).chain(reader));
    match compression(&head[..n]) {
        Some(format) => decompress(format, whole, path),
        None => Ok(whole),
    }
}

/// Opens a text input for reading as a stream: a file, `-` (standard input) or a pipe, gzip and
/// zstd decompressed (recognised by their first bytes, which are read once).
pub fn open_text(path: &Path) -> Result<Box<dyn Read + Send>> {
    let reader: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(Error::Invalid(format!("{}: is a folder", path.display())));
        }
        Box::new(file)
    };
    sniff_stream(reader, path, None)
}

pub(super) fn open_input(path: &Path, options: &BuildOptions) -> Result<Input> {
    if path.as_os_str() == "-" {
        return Ok(Input {
            path: path.to_path_buf(),
            source: Source::Reader(sniff_stream(
                Box::new(std::io::stdin()),
                path,
                options.cancel.as_ref(),
            )?),
            modified: 0,
            // Standard input redirected from a file is that file.
            identity: std::fs::metadata("/dev/stdin")
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| identity_of(&m)),
        });
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot read metadata of", e))?;
    if meta.is_dir() {
        // A folder is a downloader tree: range bodies of hashes, one file per prefix.
        if options.input != InputFormat::Hashes {
            return Err(Error::Invalid(format!(
                "{}: is a folder, which is read as a downloader tree of range bodies (hashes, \
                 --input hashes); for --input {}, give the files in it",
                path.display(),
                input_name(options.input)
            )));
        }
        return Ok(Input {
            path: path.to_path_buf(),
            source: Source::Tree(Box::new(Tree::open(path, options.kind, options.prefixes)?)),
            modified: 0,
            identity: identity_of(&meta),
        });
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let source = if meta.is_file() {
        // A regular file is sniffed by position, leaving the handle at its start.
        let (head, n) = read_head(&mut &file, path)?;
        let mut file = file;
        file.rewind()
            .map_err(|e| Error::io(path, "cannot read", e))?;
        if n == SNIFF && head == crate::format::MAGIC {
            Source::Index(Box::new(crate::index::Index::open(path)?))
        } else if let Some(format) = compression(&head[..n]) {
            Source::Reader(decompress(format, Box::new(file), path)?)
        } else {
            let map = MappedFile::from_file(&file, path)?;
            map.advise_sequential();
            Source::Mapped(map)
        }
    } else {
        // A pipe, FIFO or device: read once, as a stream.
        Source::Reader(sniff_stream(Box::new(file), path, options.cancel.as_ref())?)
    };
    Ok(Input {
        path: path.to_path_buf(),
        source,
        modified,
        identity: identity_of(&meta),
    })
}

/// The `--input` value of a format.
fn input_name(format: InputFormat) -> &'static str {
    match format {
        InputFormat::Hashes => "hashes",
        InputFormat::Passwords => "passwords",
        InputFormat::Combo => "combo",
        InputFormat::Ulp => "ulp",
    }
}

pub(super) fn display_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        return "-".into();
    }
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reads a stream in blocks that end at a line end.
struct BlockReader<'a> {
    reader: &'a mut (dyn Read + Send),
    carry: Vec<u8>,
    done: bool,
}

impl BlockReader<'_> {
    /// The next block of about `size` bytes, ending at a line end (or the end of the stream),
    /// read into `spare`, a block the parser is done with. A spare's bytes are overwritten
    /// rather than zeroed again, and it is memory already mapped: a stream costs no page
    /// faults or zeroing per block.
    fn next_block(&mut self, size: usize, spare: Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let mut block = spare;
        let mut filled = self.carry.len();
        if block.len() < filled {
            block.resize(filled, 0);
        }
        block[..filled].copy_from_slice(&self.carry);
        self.carry.clear();
        while filled < size {
            let want = filled + (size - filled).max(64 << 10);
            if block.len() < want {
                block.resize(want, 0);
            }
            let n = loop {
                match self.reader.read(&mut block[filled..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.done = true;
                break;
            }
            filled += n;
        }
        block.truncate(filled);
        if !self.done {
            match memchr::memrchr(b'\n', &block) {
                Some(i) => {
                    self.carry.extend_from_slice(&block[i + 1..]);
                    block.truncate(i + 1);
                }
                None => {
                    // A line longer than a block: keep reading into it.
                    self.carry = block;
                    return self.next_block(size.saturating_mul(2), Vec::new());
                }
            }
        }
        Ok((!block.is_empty()).then_some(block))
    }
}

/// Blocks read ahead of the parser from a stream.
const READ_AHEAD: usize = 4;

/// Nanoseconds the reading thread of streams spent reading, and waiting for the parser.
#[derive(Clone, Default)]
pub(super) struct StreamTimes {
    pub(super) reading: Arc<std::sync::atomic::AtomicU64>,
    pub(super) waiting: Arc<std::sync::atomic::AtomicU64>,
}

/// Reads `reader` in blocks that end at a line end on a thread of its own, up to
/// [`READ_AHEAD`] blocks ahead of the consumer, so that a pipe's producer, a decompressor and
/// the parser on the pool all run at once. The thread ends at the end of the stream, at an
/// error (passed on), or when the consumer drops the iterator.
pub(super) fn read_ahead(
    mut reader: Box<dyn Read + Send>,
    chunk: usize,
    spares: std::sync::mpsc::Receiver<Vec<u8>>,
    times: StreamTimes,
    cancel: Option<Arc<AtomicBool>>,
    path: &Path,
) -> Result<impl Iterator<Item = Result<Vec<u8>>>> {
    let (send, receive) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(READ_AHEAD);
    let read_path = path.to_path_buf();
    std::thread::Builder::new()
        .name("leakdex-read".into())
        .spawn(move || {
            let mut blocks = BlockReader {
                reader: reader.as_mut(),
                carry: Vec::new(),
                done: false,
            };
            loop {
                let spare = spares.try_recv().unwrap_or_default();
                let reading = std::time::Instant::now();
                let next = match blocks.next_block(chunk, spare) {
                    Ok(Some(block)) => Ok(block),
                    Ok(None) => return,
                    Err(e) => Err(Error::io(&read_path, "cannot read", e)),
                };
                let waiting = std::time::Instant::now();
                let add = |total: &std::sync::atomic::AtomicU64, d: std::time::Duration| {
                    total.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
                };
                add(&times.reading, waiting - reading);
                let failed = next.is_err();
                let sent = send.send(next);
                add(&times.waiting, waiting.elapsed());
                if sent.is_err() || failed {
                    return;
                }
            }
        })
        .map_err(|e| Error::io(path, "cannot start a thread to read", e))?;
    Ok(std::iter::from_fn(move || {
        receive_or_stop(&receive, cancel.as_ref()).unwrap_or_else(|stop| Some(Err(stop)))
    }))
}

// --- Parsing -----------------------------------------------------------------------------

/// A block parsed: its length, outcome, entries and skipped plaintext lines.
pub(super) struct Parsed {
    pub(super) bytes: usize,
    pub(super) result: std::result::Result<ChunkStats, ChunkError>,
    pub(super) entries: Vec<Entry>,
    pub(super) skipped: u64,
    /// (0-based line in block, why) of the first skipped lines.
    pub(super) skipped_examples: Vec<(u64, &'static str)>,
    /// Entries left out for a prefix outside the build's partition.
    pub(super) outside: u64,
}

pub(super) fn parse_block(
    block: &[u8],
    kind: HashKind,
    key: KeyType,
    format: InputFormat,
    prefixes: PrefixRange,
    entries: Vec<Entry>,
) -> Parsed {
    let mut parsed = parse_block_whole(block, kind, key, format, entries);
    if !prefixes.is_whole() {
        let before = parsed.entries.len();
        parsed
            .entries
            .retain(|e| prefixes.contains(crate::hash::prefix_of(&e.hash)));
        parsed.outside = (before - parsed.entries.len()) as u64;
    }
    parsed
}

/// [`parse_block`] for the fuzz targets ([`crate::fuzzing::parse_block`]).
pub(crate) fn parse_block_for_fuzzing(
    block: &[u8],
    kind: HashKind,
    key: KeyType,
    format: InputFormat,
    prefixes: PrefixRange,
) -> crate::fuzzing::ParsedBlock {
    let parsed = parse_block(block, kind, key, format, prefixes, Vec::new());
    crate::fuzzing::ParsedBlock {
        entries: parsed.entries,
        result: parsed.result,
        skipped: parsed.skipped,
        skipped_examples: parsed.skipped_examples,
    }
}

fn parse_block_whole(
    block: &[u8],
    kind: HashKind,
    key: KeyType,
    format: InputFormat,
    entries: Vec<Entry>,
) -> Parsed {
    let mut parsed = Parsed {
        bytes: block.len(),
        result: Ok(ChunkStats::default()),
        entries,
        skipped: 0,
        skipped_examples: Vec::new(),
        outside: 0,
    };
    parsed.entries.clear();
    // A line of hashes is more than 32 bytes (32 hex digits and a line end at the least): one
    // allocation holds the block's entries, instead of doubling steps that copy.
    parsed.entries.reserve(block.len() / 32 + 1);
    match format {
        InputFormat::Hashes => parsed.result = parse_chunk(block, kind, &mut parsed.entries),
        InputFormat::Passwords | InputFormat::Combo | InputFormat::Ulp => {
            let mut lines = 0u64;
            // Normalised logins, one buffer for the block.
            let mut scratch = Vec::new();
            // Lines found with memchr: a byte-at-a-time split costs as much as parsing a
            // stealer line.
            let mut start = 0;
            while start < block.len() {
                let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
                let line = &block[start..end];
                start = end + 1;
                let at = lines;
                lines += 1;
                let mut line = line.strip_suffix(b"\r").unwrap_or(line);
                // A byte-order mark starts with 0xEF: one compare for the lines without.
                if format != InputFormat::Passwords && line.first() == Some(&BOM[0]) {
                    while let Some(rest) = line.strip_prefix(BOM) {
                        line = rest;
                    }
                }
                if line.is_empty() {
                    continue;
                }
                // The key decides what is hashed: the password, the login or both.
                let credential = match format {
                    InputFormat::Ulp => crate::credential::parse_ulp(line),
                    InputFormat::Combo => crate::credential::parse_combo(line),
                    _ => Ok(crate::credential::Credential {
                        url: None,
                        login: b"",
                        password: line,
                    }),
                };
                match credential {
                    Ok(c) => {
                        match crate::key::hash_credential(
                            key,
                            kind,
                            c.login,
                            c.password,
                            &mut scratch,
                        ) {
                            Ok(hash) => parsed.entries.push(Entry { hash, count: 1 }),
                            Err(why) => skip(&mut parsed, at, why),
                        }
                    }
                    Err(why) => skip(&mut parsed, at, why),
                }
            }
            // Plaintext repeats itself (common passwords, accounts seen on many sites): the
            // block's entries are sorted and summed here, on the pool, so that fewer of them
            // reach the spill, which takes them one by one on a single thread.
            sum_repeats(&mut parsed.entries);
            parsed.result = Ok(ChunkStats {
                lines,
                sorted: false,
            });
        }
    }
    parsed
}

/// Sorts entries by hash, with word compares rather than `memcmp` (see
/// [`crate::hash::compare_hashes`]).
pub(super) fn sort_by_hash(entries: &mut [Entry]) {
    entries.sort_unstable_by(|a, b| crate::hash::compare_hashes(&a.hash, &b.hash));
}

/// Sorts `entries` by hash and merges the repeats of a hash into one entry, counts summed
/// (each line of a block counts 1, so its sums cannot overflow).
fn sum_repeats(entries: &mut Vec<Entry>) {
    sort_by_hash(entries);
    entries.dedup_by(|next, kept| {
        let same = next.hash == kept.hash;
        if same {
            kept.count = kept.count.saturating_add(next.count);
        }
        same
    });
}

fn skip(parsed: &mut Parsed, line: u64, why: &'static str) {
    parsed.skipped += 1;
    if parsed.skipped_examples.len() < SKIP_EXAMPLES {
        parsed.skipped_examples.push((line, why));
    }
}

/// The kind named by the first hash of a block (`None` when it has no hash yet).
pub(super) fn detect_kind(
    path: &Path,
    block: &[u8],
    lines_before: u64,
) -> Result<Option<HashKind>> {
    match first_hash_field(block) {
        None => Ok(None),
        Some((line, hex)) => {
            HashKind::from_hex_len(hex.len())
                .map(Some)
                .ok_or_else(|| Error::Parse {
                    path: path.to_path_buf(),
                    line: lines_before + line,
                    message: format!(
                        "expected 40 hex digits (SHA-1) or 32 (NTLM), found {} characters",
                        hex.len()
                    ),
                })
        }
    }
}

/// Lines sampled from the start of a plaintext input to guess whether it is one.
const HINT_SAMPLE: usize = 1000;

/// A warning when most of the first lines of a plaintext input look like hashes (a dump for
/// `--input hashes`) or, for `--input combo`, like stealer-log lines (`URL:LOGIN:PASSWORD`,
/// for `--input ulp`).
pub fn plaintext_hint(block: &[u8], format: InputFormat) -> Option<String> {
    let (mut sampled, mut hashes, mut urls) = (0usize, 0usize, 0usize);
    for line in block.split(|&b| b == b'\n') {
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        while let Some(rest) = line.strip_prefix(BOM) {
            line = rest;
        }
        if line.is_empty() {
            continue;
        }
        sampled += 1;
        if looks_like_hash_line(line) {
            hashes += 1;
        } else if crate::credential::scheme_len(line).is_some() {
            urls += 1;
        }
        if sampled == HINT_SAMPLE {
            break;
        }
    }
    let (input, misread) = match format {
        InputFormat::Passwords => ("passwords", "would hash again as if they were passwords"),
        InputFormat::Combo => ("combo", "would hash again as if they were passwords"),
        InputFormat::Ulp => (
            "ulp",
            "would read as `LOGIN:PASSWORD` lines, hashing each count as a password (and leave \
             bare hashes out)",
        ),
        InputFormat::Hashes => return None,
    };
    if hashes * 2 > sampled {
        Some(format!(
            "{hashes} of its first {sampled} lines look like hashes (`HASH` or `HASH:COUNT`), \
             which --input {input} {misread}; for a dump of hashes, use --input hashes"
        ))
    } else if format == InputFormat::Combo && urls * 2 > sampled {
        Some(format!(
            "{urls} of its first {sampled} lines start with a URL, as stealer-log lines \
             (`URL:LOGIN:PASSWORD`) do; --input combo leaves such lines out: use --input ulp"
        ))
    } else {
        None
    }
}

/// `HEX` of 32 or 40 digits, alone or followed by `:DIGITS`.
fn looks_like_hash_line(line: &[u8]) -> bool {
    let (hash, count) = match memchr::memchr(b':', line) {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    (hash.len() == 32 || hash.len() == 40)
        && hash.iter().all(u8::is_ascii_hexdigit)
        && count.is_none_or(|c| !c.is_empty() && c.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::HashBytes;

    #[test]
    fn block_reader_ends_blocks_at_line_ends() {
        let text = b"aaaa\nbbbbbbbbbbbbbbbbbbbbbbbb\ncc\nlast-without-newline".to_vec();
        let mut reader: &[u8] = &text;
        let mut br = BlockReader {
            reader: &mut reader,
            carry: Vec::new(),
            done: false,
        };
        let mut all = Vec::new();
        // Each block is handed back as the next one's spare, the first spare a large block
        // of stale bytes: none of them may show through.
        let mut spare = vec![b'#'; 100];
        while let Some(b) = br.next_block(7, std::mem::take(&mut spare)).unwrap() {
            if !br.done {
                assert_eq!(b.last(), Some(&b'\n'));
            }
            all.extend_from_slice(&b);
            spare = b;
        }
        assert_eq!(all, text);
    }

    #[test]
    fn a_blocks_repeats_are_summed_in_hash_order() {
        let p = parse_block_whole(
            b"b\na\nb\nc\nb\na\n",
            HashKind::Sha1,
            KeyType::Password,
            InputFormat::Passwords,
            Vec::new(),
        );
        let mut expected: Vec<(HashBytes, u64)> = [("a", 2), ("b", 3), ("c", 1)]
            .iter()
            .map(|(pw, n)| (crate::hash::sha1_password(pw.as_bytes()), *n))
            .collect();
        expected.sort();
        let got: Vec<(HashBytes, u64)> = p.entries.iter().map(|e| (e.hash, e.count)).collect();
        assert_eq!(got, expected);
        assert_eq!(p.result.as_ref().unwrap().lines, 6);
    }

    #[test]
    fn plaintext_lines_hash_and_skip_what_cannot_be() {
        let p = parse_block_whole(
            b"password\r\n\nbad\xff\n",
            HashKind::Ntlm,
            KeyType::Password,
            InputFormat::Passwords,
            Vec::new(),
        );
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.skipped, 1);
        assert_eq!(p.skipped_examples, vec![(2, "not UTF-8, which NTLM needs")]);
        let c = parse_block_whole(
            b"alice:password\nbob\ncarol:pa:ss\n",
            HashKind::Sha1,
            KeyType::Password,
            InputFormat::Combo,
            Vec::new(),
        );
        let mut expected = [
            crate::hash::sha1_password(b"password"),
            crate::hash::sha1_password(b"pa:ss"),
        ];
        expected.sort();
        let got: Vec<HashBytes> = c.entries.iter().map(|e| e.hash).collect();
        assert_eq!(got, expected);
        assert_eq!(
            c.skipped_examples,
            vec![(1, "no `:` between user and password")]
        );
        // Combo: a URL first is refused, a byte-order mark does not hide it, an empty
        // password is the empty password as before.
        let c = parse_block_whole(
            b"https://h.com:u:p\n\xEF\xBB\xBFandroid://x@a.b/:u:p\r\nalice:\n\xEF\xBB\xBF\n",
            HashKind::Sha1,
            KeyType::Password,
            InputFormat::Combo,
            Vec::new(),
        );
        assert_eq!(c.entries.len(), 1);
        assert_eq!(c.entries[0].hash, crate::hash::sha1_password(b""));
        assert_eq!(c.skipped, 2);
        assert_eq!(c.skipped_examples[0].0, 0);
        assert_eq!(c.skipped_examples[1].0, 1);
        assert!(c.skipped_examples[1].1.contains("use --input ulp"));
        assert_eq!(c.result.as_ref().unwrap().lines, 4);
    }

    #[test]
    fn stealer_lines_hash_their_password_and_skip_what_fits_no_rule() {
        let block = b"\xEF\xBB\xBFhttps://accounts.google.com:alice@example.com:hunter2\r\n\
            bob@example.com:password\r\n\
            \r\n\
            android://xyz@com.app/:carol:letmein\n\
            site.com|dave|qwerty\n\
            https://site.com/login\n\
            nocolon\n\
            https://h.com:eve:pa:ss";
        let p = parse_block_whole(
            block,
            HashKind::Sha1,
            KeyType::Password,
            InputFormat::Ulp,
            Vec::new(),
        );
        let mut expected: Vec<HashBytes> = ["hunter2", "password", "letmein", "qwerty", "pa:ss"]
            .iter()
            .map(|pw| crate::hash::sha1_password(pw.as_bytes()))
            .collect();
        // A block's entries come out sorted by hash.
        expected.sort();
        let got: Vec<HashBytes> = p.entries.iter().map(|e| e.hash).collect();
        assert_eq!(got, expected);
        assert!(p.entries.iter().all(|e| e.count == 1));
        assert_eq!(p.skipped, 2);
        assert_eq!(
            p.skipped_examples,
            vec![
                (5, "a URL with no `:`, `|`, space or tab after it"),
                (6, "no `:` between user and password")
            ]
        );
        assert_eq!(p.result.as_ref().unwrap().lines, 8);
        // NTLM needs UTF-8 passwords; the login may be anything.
        let n = parse_block_whole(
            b"https://h.com:\xff:pw\nhttps://h.com:u:\xff\n",
            HashKind::Ntlm,
            KeyType::Password,
            InputFormat::Ulp,
            Vec::new(),
        );
        assert_eq!(n.entries.len(), 1);
        assert_eq!(n.entries[0].hash, crate::hash::ntlm_password("pw"));
        assert_eq!(n.skipped_examples, vec![(1, "not UTF-8, which NTLM needs")]);
    }

    #[test]
    fn hints_name_the_right_input() {
        let hashes = b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3\n\
            7C4A8D09CA3762AF61E59520943DC26494F8941B:5\n";
        for format in [InputFormat::Passwords, InputFormat::Combo, InputFormat::Ulp] {
            let hint = plaintext_hint(hashes, format).unwrap();
            assert!(hint.contains("use --input hashes"), "{hint}");
        }
        assert!(plaintext_hint(hashes, InputFormat::Ulp)
            .unwrap()
            .contains("--input ulp would read"));
        let stealer = b"\xEF\xBB\xBFhttps://a.com:u:p\nandroid://x@b.c/:u:p\nu@d.com:p\n";
        let hint = plaintext_hint(stealer, InputFormat::Combo).unwrap();
        assert!(
            hint.contains("2 of its first 3 lines start with a URL"),
            "{hint}"
        );
        assert!(hint.contains("use --input ulp"), "{hint}");
        assert_eq!(plaintext_hint(stealer, InputFormat::Ulp), None);
        assert_eq!(
            plaintext_hint(b"u@d.com:p\nv@d.com:q\n", InputFormat::Ulp),
            None
        );
    }
}
