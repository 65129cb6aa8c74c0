//! Building an index from dumps: read (memory-mapped files; gzip and zstd files, standard
//! input and pipes as streams; downloader trees, folders of range files, through
//! [`crate::tree`]), parse in parallel, and write through an [`IndexWriter`] in bounded memory.
//!
//! Input is read in blocks of about `chunk_size` bytes ending at a line end. A stream is read
//! (and decompressed) on a thread of its own, a few blocks ahead, into blocks that the parser
//! hands back once done. A thread parses the next batch of blocks on the pool while the
//! current one is written. Sorted input (the
//! official dumps are sorted) streams straight into the writer. When an entry turns up out of
//! order, what was written so far is read back into a [`Spill`], which holds entries in memory
//! up to a quarter of the memory budget, partitioned by the top 12 bits of the hash, and appends them
//! to temporary partition files when that fills; at the end each partition is sorted on all
//! cores and written in order. Temporary files live in a folder that is removed on success, on
//! error and on interruption.

use crate::dump::{
    first_hash_field, parse_chunk, split_chunks, ChunkError, ChunkStats, Entry, BOM,
};
use crate::error::{Error, Result};
use crate::format::SourceInfo;
use crate::format::{FilterKind, StoreForm};
use crate::hash::{HashBytes, HashKind};
use crate::key::KeyType;
use crate::partition::PrefixRange;
use crate::sys::MappedFile;
use crate::tree::Tree;
use crate::writer::{IndexSummary, IndexWriter};

pub use crate::progress::{BuildProgress, NoProgress};
use rayon::prelude::*;
use std::borrow::Cow;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the input lines hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// `HASH:COUNT` or bare `HASH` lines.
    Hashes,
    /// One plaintext password per line; each is hashed and counts 1.
    Passwords,
    /// `user:password` lines; the password is what follows the first `:`. Lines that start
    /// with a URL are left out (see [`crate::credential::parse_combo`]).
    Combo,
    /// Stealer-log lines: `URL:LOGIN:PASSWORD` (or `|`, space, tab), `host:login:password` and
    /// `login:password` (see [`crate::credential::parse_ulp`]).
    Ulp,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "hashes" => Ok(InputFormat::Hashes),
            "passwords" => Ok(InputFormat::Passwords),
            "combo" => Ok(InputFormat::Combo),
            "ulp" => Ok(InputFormat::Ulp),
            _ => Err(format!(
                "unknown input `{s}` (expected hashes, passwords, combo or ulp)"
            )),
        }
    }
}

/// How to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Hash kind; `None` takes it from the length of the first hash (SHA-1 for plaintext).
    pub kind: Option<HashKind>,
    /// Which filter to build.
    pub filter: FilterKind,
    /// What to keep of each hash besides the filter: full hashes, their first 64 bits, or
    /// nothing. `None` needs a filter.
    pub store: StoreForm,
    /// What the input lines hold.
    pub input: InputFormat,
    /// What to index of each credential: its password, its login or the pair; `None`: the key
    /// of the indexes being merged in, or passwords. Logins and pairs need credential lines
    /// (`Combo` input) and SHA-1.
    pub key: Option<KeyType>,
    /// Bytes of input per parallel parsing task.
    pub chunk_size: usize,
    /// Memory the build may use; `None`: half of the machine's memory, at most 60% of what is
    /// available now.
    pub memory_limit: Option<u64>,
    /// Folder for temporary partition files; `None`: the output's folder.
    pub tmp_dir: Option<PathBuf>,
    /// Set to stop the build; it then returns [`Error::Interrupted`] and removes its files.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Build even when an input holds no hashes (it is empty, or every line of it was left
    /// out). Off by default: an empty input is most often a failed download, and an empty
    /// index would answer "not found" to everything.
    pub allow_empty: bool,
    /// Add an input's counts even when the index already holds a source with the same name,
    /// size, modification time and line count (the same dump merged twice, which would double
    /// its counts). Off by default.
    pub allow_duplicate_sources: bool,
    /// Index only the hashes whose 5-hex prefix is in this range (a partition; every prefix by
    /// default). Hashes outside it are counted in [`BuildSummary::outside_partition`].
    pub prefixes: crate::partition::PrefixRange,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            kind: None,
            filter: FilterKind::Fuse8,
            store: StoreForm::Full,
            input: InputFormat::Hashes,
            key: None,
            chunk_size: 4 << 20,
            memory_limit: None,
            tmp_dir: None,
            cancel: None,
            allow_empty: false,
            allow_duplicate_sources: false,
            prefixes: crate::partition::PrefixRange::WHOLE,
        }
    }
}

/// What a build did.
#[derive(Clone, Debug)]
pub struct BuildSummary {
    /// The index written.
    pub index: IndexSummary,
    /// Plaintext lines that could not be hashed for the index's kind.
    pub skipped_lines: u64,
    /// The first few of them, as `file:line: why`.
    pub skipped_examples: Vec<String>,
    /// Bytes written to temporary partition files (0 when the input was sorted or fit).
    pub temp_bytes: u64,
    /// Whether the input had to be sorted.
    pub sorted_input: bool,
    /// Warnings given while building (each also went to [`BuildProgress::warning`]).
    pub warnings: Vec<String>,
    /// Where the time went, stage by stage, to name a build's bottleneck.
    pub timings: BuildTimings,
    /// Hashes of the inputs left out because their prefix is outside
    /// [`BuildOptions::prefixes`] (always 0 for a whole build).
    pub outside_partition: u64,
    /// Rows with count 0 in the range bodies of downloader trees: the API's padding (random
    /// suffixes, which clients drop), left out of the index.
    pub padding_rows: u64,
    /// Files of downloader trees whose prefix is outside [`BuildOptions::prefixes`]: not read.
    pub outside_files: u64,
}

/// Where a build's time went.
#[derive(Clone, Debug, Default)]
pub struct BuildTimings {
    /// Reading and parsing every input (for unsorted input, partitioning too).
    pub read_and_parse: std::time::Duration,
    /// Sorting the partitions of unsorted input (zero for sorted input).
    pub sort: std::time::Duration,
    /// Building the filter and finishing the file (directories, sync, rename).
    pub filter_and_write: std::time::Duration,
    /// Of `read_and_parse`, the time the reading thread of streams (standard input, pipes,
    /// gzip and zstd) spent getting bytes: waiting on the producer, or decompressing.
    pub stream_reading: std::time::Duration,
    /// The time that thread waited for the parser to take its blocks: the parser was slower
    /// than the stream.
    pub stream_waiting: std::time::Duration,
}

/// Skipped lines listed by example.
const SKIP_EXAMPLES: usize = 5;

// --- Inputs ----------------------------------------------------------------------------

enum Source {
    Mapped(MappedFile),
    Reader(Box<dyn Read + Send>),
    /// An existing index, merged in with its entries and its sources.
    Index(Box<crate::index::Index>),
    /// A downloader tree: a folder of range bodies, one file per prefix (see [`crate::tree`]).
    Tree(Box<Tree>),
}

struct Input {
    path: PathBuf,
    source: Source,
    modified: u64,
    /// Device and inode, where known: an output path that is an input is refused.
    identity: Option<(u64, u64)>,
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
/// its own while this one looks at the flag every tenth of a second, so that a stop request
/// is not held up by a silent producer (the reading thread, blocked in `read`, is left to the
/// end of the process).
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
    loop {
        match receive.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(head) => return head,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Invalid(format!(
                    "{}: internal error: the thread reading the first bytes ended without \
                     an answer",
                    path.display()
                )))
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

fn open_input(path: &Path, options: &BuildOptions) -> Result<Input> {
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

fn display_name(path: &Path) -> String {
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
struct StreamTimes {
    reading: Arc<std::sync::atomic::AtomicU64>,
    waiting: Arc<std::sync::atomic::AtomicU64>,
}

/// Reads `reader` in blocks that end at a line end on a thread of its own, up to
/// [`READ_AHEAD`] blocks ahead of the consumer, so that a pipe's producer, a decompressor and
/// the parser on the pool all run at once. The thread ends at the end of the stream, at an
/// error (passed on), or when the consumer drops the iterator.
fn read_ahead(
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
    // A stalled stream must not hold a stop request up: the wait for the next block looks at
    // the cancel flag every tenth of a second (the reading thread, blocked in `read`, is left
    // to the end of the process).
    Ok(std::iter::from_fn(move || loop {
        match receive.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(block) => return Some(block),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Some(Err(Error::Interrupted));
                }
            }
        }
    }))
}

// --- Parsing -----------------------------------------------------------------------------

/// A block parsed: its length, outcome, entries and skipped plaintext lines.
struct Parsed {
    bytes: usize,
    result: std::result::Result<ChunkStats, ChunkError>,
    entries: Vec<Entry>,
    skipped: u64,
    /// (0-based line in block, why) of the first skipped lines.
    skipped_examples: Vec<(u64, &'static str)>,
    /// Entries left out for a prefix outside the build's partition.
    outside: u64,
}

fn parse_block(
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
fn sort_by_hash(entries: &mut [Entry]) {
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
fn detect_kind(path: &Path, block: &[u8], lines_before: u64) -> Result<Option<HashKind>> {
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

// --- Spilling unsorted entries -------------------------------------------------------------

/// Partitions by the top 12 bits of the hash.
const PARTITIONS: usize = 4096;
/// Bytes of an entry in a partition file: the hash and the count.
const SPILL_ENTRY: usize = 28;

/// Unsorted entries, held in memory by partition up to a limit, then appended to files.
pub struct Spill {
    parts: Vec<Vec<Entry>>,
    buffered: usize,
    limit: usize,
    tmp_root: PathBuf,
    dir: Option<tempfile::TempDir>,
    /// The folder opened and locked while the build lives (see [`crate::sys::lock_own`]).
    dir_lock: Option<std::fs::File>,
    written: Vec<u64>,
    spilled_bytes: u64,
    expected_entries: u64,
}

impl Spill {
    fn new(memory: u64, tmp_root: PathBuf, expected_entries: u64) -> Spill {
        // Partition vectors may hold up to twice what they use (they grow by doubling), and
        // parsing, writing and the filter need room too: buffer a quarter of the budget.
        let limit = (memory / 4 / std::mem::size_of::<Entry>() as u64).max(1024) as usize;
        Spill {
            parts: (0..PARTITIONS).map(|_| Vec::new()).collect(),
            buffered: 0,
            limit,
            tmp_root,
            dir: None,
            dir_lock: None,
            written: vec![0; PARTITIONS],
            spilled_bytes: 0,
            expected_entries,
        }
    }

    #[inline]
    fn push(&mut self, entry: Entry) -> Result<()> {
        let p = ((entry.hash[0] as usize) << 4) | (entry.hash[1] as usize >> 4);
        self.parts[p].push(entry);
        self.buffered += 1;
        if self.buffered >= self.limit {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.dir.is_none() {
            let (dir, lock) = locked_temp_dir(&self.tmp_root, "")?;
            self.dir_lock = Some(lock);
            let need = self.expected_entries.saturating_mul(SPILL_ENTRY as u64);
            check_free_space(dir.path(), need, "temporary partition files need")?;
            self.dir = Some(dir);
        }
        let dir = self
            .dir
            .as_ref()
            .expect("created above")
            .path()
            .to_path_buf();
        let written: Vec<std::result::Result<u64, std::io::Error>> = self
            .parts
            .par_iter_mut()
            .enumerate()
            .map(|(p, entries)| {
                if entries.is_empty() {
                    return Ok(0);
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{p:03x}")))?;
                let mut out = BufWriter::with_capacity(256 << 10, file);
                for e in entries.iter() {
                    out.write_all(&e.hash)?;
                    out.write_all(&e.count.to_le_bytes()[..])?;
                }
                out.flush()?;
                let n = entries.len() as u64;
                entries.clear();
                Ok(n)
            })
            .collect();
        for (p, w) in written.into_iter().enumerate() {
            let n = w.map_err(|e| Error::io(&dir, "cannot write a temporary partition in", e))?;
            self.written[p] += n;
            self.spilled_bytes += n * SPILL_ENTRY as u64;
        }
        self.buffered = 0;
        Ok(())
    }

    /// Sorts each partition (read back from its file, if any) and writes it in order: a few
    /// partitions at a time, loaded and sorted in parallel, then written one after another.
    fn finish(
        mut self,
        writer: &mut IndexWriter,
        cancel: &dyn Fn() -> Result<()>,
        progress: &dyn BuildProgress,
    ) -> Result<u64> {
        let total = self.written.iter().sum::<u64>() + self.buffered as u64;
        progress.phase("sorting", total * SPILL_ENTRY as u64);
        let dir = self.dir.as_ref().map(|d| d.path().to_path_buf());
        let batch = rayon::current_num_threads() * 4;
        let ids: Vec<usize> = (0..PARTITIONS).collect();
        for group in ids.chunks(batch) {
            cancel()?;
            let mut taken: Vec<(usize, Vec<Entry>)> = group
                .iter()
                .map(|&p| (p, std::mem::take(&mut self.parts[p])))
                .collect();
            let written = &self.written;
            let loaded: Vec<Result<Vec<Entry>>> = taken
                .par_iter_mut()
                .map(|(p, entries)| {
                    let mut entries = std::mem::take(entries);
                    if written[*p] > 0 {
                        let dir = dir.as_ref().expect("written partitions have a folder");
                        let path = dir.join(format!("{p:03x}"));
                        let bytes = std::fs::read(&path)
                            .map_err(|e| Error::io(&path, "cannot read back", e))?;
                        entries.reserve(bytes.len() / SPILL_ENTRY);
                        for c in bytes.chunks_exact(SPILL_ENTRY) {
                            let mut hash: HashBytes = [0; 20];
                            hash.copy_from_slice(&c[..20]);
                            let count = u64::from_le_bytes(c[20..28].try_into().expect("8 bytes"));
                            entries.push(Entry { hash, count });
                        }
                        let _ = std::fs::remove_file(&path);
                    }
                    sort_by_hash(&mut entries);
                    Ok(entries)
                })
                .collect();
            for entries in loaded {
                let entries = entries?;
                progress.advance((entries.len() * SPILL_ENTRY) as u64, 0);
                for e in entries {
                    if writer.push(e)?.is_err() {
                        return Err(Error::Invalid(
                            "internal error: a sorted partition came out of order".into(),
                        ));
                    }
                }
            }
        }
        Ok(self.spilled_bytes)
    }
}

/// A temporary folder in `root`, named `TEMP_DIR_PREFIX` + `name` + random, and a handle that
/// keeps it locked: a later build's sweep removes it if this process dies, and leaves it alone
/// while the handle is open.
pub(crate) fn locked_temp_dir(
    root: &Path,
    name: &str,
) -> Result<(tempfile::TempDir, std::fs::File)> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}{name}", crate::sys::TEMP_DIR_PREFIX))
        .tempdir_in(root)
        .map_err(|e| Error::io(root, "cannot create a temporary folder in", e))?;
    let lock =
        std::fs::File::open(dir.path()).map_err(|e| Error::io(dir.path(), "cannot open", e))?;
    crate::sys::lock_own(&lock).map_err(|e| Error::io(dir.path(), "cannot lock", e))?;
    Ok((dir, lock))
}

// --- Free space and memory ---------------------------------------------------------------

/// Free bytes on the file system holding `path`.
pub fn free_space(path: &Path) -> Option<u64> {
    crate::sys::free_space(path)
}

fn check_free_space(path: &Path, need: u64, what: &str) -> Result<()> {
    if let Some(free) = free_space(path) {
        if need > free {
            return Err(Error::Invalid(format!(
                "{}: not enough space: {what} about {}, and only {} are free there{}",
                path.display(),
                size_text(need),
                size_text(free),
                if what.starts_with("temporary") {
                    "; point --tmp at a bigger disk"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

/// Bytes for people: `5.2 GiB`, `310.4 MiB`, `12.0 KiB`, `512 bytes`.
pub fn size_text(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}

/// Memory this machine has in all, from `/proc/meminfo` where there is one.
pub fn total_memory() -> Option<u64> {
    meminfo("MemTotal:")
}

/// Memory this machine has available, from `/proc/meminfo` where there is one.
pub fn available_memory() -> Option<u64> {
    meminfo("MemAvailable:")
}

fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Parses a size such as `512M`, `4G`, `1.5GiB` or a plain number of bytes.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
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

// --- The build ---------------------------------------------------------------------------

enum Sink {
    Sorted(Box<IndexWriter>),
    Unsorted(Spill),
}

/// Builds the index at `output` from `inputs` (paths; `-` is standard input; gzip and zstd are
/// recognised by their first bytes; a folder is a downloader tree, see [`crate::tree`]).
pub fn build_index(
    inputs: &[PathBuf],
    output: &Path,
    options: &BuildOptions,
    progress: &dyn BuildProgress,
) -> Result<BuildSummary> {
    let cancel = || -> Result<()> {
        match &options.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Interrupted),
            _ => Ok(()),
        }
    };
    if options.store == StoreForm::None && options.filter == FilterKind::None {
        return Err(Error::Invalid(
            "--store none keeps only the filter, so it cannot go with --filter none".into(),
        ));
    }
    if output.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: is a folder; give the path of the index file to write",
            output.display()
        )));
    }
    let mut opened = inputs
        .iter()
        .map(|p| open_input(p, options))
        .collect::<Result<Vec<_>>>()?;
    // One file given twice, under any names (links), would count twice.
    if !options.allow_duplicate_sources {
        for (i, a) in opened.iter().enumerate() {
            if let Some(b) = opened[..i]
                .iter()
                .find(|b| a.identity.is_some() && b.identity == a.identity)
            {
                return Err(Error::Invalid(format!(
                    "{}: the same file as {}: its counts would be added twice. Pass \
                     --allow-duplicate-sources to add them anyway",
                    a.path.display(),
                    b.path.display()
                )));
            }
        }
    }
    // Writing the index over one of its inputs would lose that input: the same file by device
    // and inode, whatever name it goes by.
    if let Some(out_id) = std::fs::metadata(output).ok().and_then(|m| identity_of(&m)) {
        if let Some(input) = opened.iter().find(|i| i.identity == Some(out_id)) {
            return Err(Error::Invalid(format!(
                "{}: is also an input ({}); the index would replace it. Choose another output path",
                output.display(),
                input.path.display()
            )));
        }
    }
    let known_bytes: u64 = opened
        .iter()
        .map(|i| match &i.source {
            Source::Mapped(m) => m.bytes().len() as u64,
            Source::Reader(_) => 0,
            Source::Index(index) => index.hash_count() * 40,
            Source::Tree(tree) => tree.estimated_bytes(),
        })
        .sum();
    let out_dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // A line is at least a hash and a line end: an upper bound on hashes, for space checks.
    // (A range body's line is a suffix, a count and a line end, and gzip halves it.)
    let expected = opened
        .iter()
        .map(|i| match &i.source {
            Source::Tree(tree) => tree.estimated_text_bytes() / 30,
            Source::Mapped(m) => m.bytes().len() as u64 / 34,
            Source::Reader(_) => 0,
            Source::Index(index) => index.hash_count() * 40 / 34,
        })
        .sum::<u64>();
    let per_hash = match options.store {
        StoreForm::Full => 20,
        StoreForm::Compact => 8,
        StoreForm::None => 3,
    };
    check_free_space(
        &out_dir,
        expected * per_hash + (32 << 20),
        "the index needs",
    )?;
    let memory = options
        .memory_limit
        .or_else(|| {
            let half = total_memory()? / 2;
            Some(available_memory().map_or(half, |a| half.min(a / 10 * 6)))
        })
        .unwrap_or(4 << 30);
    let tmp_root = options.tmp_dir.clone().unwrap_or_else(|| out_dir.clone());
    let mut warnings = Vec::new();
    let mut warn = |message: String| {
        progress.warning(&message);
        warnings.push(message);
    };
    // Temporary files that killed builds left behind (SIGKILL, a power cut) are removed.
    let mut swept = crate::sys::sweep_temporaries(&out_dir);
    if tmp_root != out_dir {
        let more = crate::sys::sweep_temporaries(&tmp_root);
        swept.removed.extend(more.removed);
        swept.left.extend(more.left);
    }
    if !swept.removed.is_empty() {
        let bytes: u64 = swept.removed.iter().map(|(_, b)| b).sum();
        let names: Vec<String> = swept
            .removed
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        warn(format!(
            "removed {} left by an earlier build that was killed ({} bytes): {}",
            plural(
                swept.removed.len() as u64,
                "temporary file",
                "temporary files"
            ),
            bytes,
            names.join(", ")
        ));
    }
    for (path, why) in &swept.left {
        warn(format!(
            "{}: a temporary file of leakdex that no running build holds; {why}",
            path.display()
        ));
    }

    let prefixes = partition_of_build(&opened, options.prefixes)?;
    // The key: as asked, or that of the indexes merged in (all alike), or passwords.
    let mut key = options.key;
    for input in &opened {
        if let Source::Index(index) = &input.source {
            match key {
                None => key = Some(index.key()),
                Some(k) if k != index.key() => {
                    return Err(Error::Invalid(format!(
                        "{}: a {} index cannot be merged into a {k} index",
                        input.path.display(),
                        index.key()
                    )))
                }
                Some(_) => {}
            }
        }
    }
    let key = key.unwrap_or_default();
    let mut kind = options.kind;
    if key != KeyType::Password {
        if kind.is_some_and(|k| !key.allows(k)) {
            return Err(Error::Invalid(format!(
                "--key {key} indexes SHA-1 hashes only; leave out --kind ntlm"
            )));
        }
        let reads_text = opened.iter().any(|i| !matches!(i.source, Source::Index(_)));
        if reads_text && !matches!(options.input, InputFormat::Combo | InputFormat::Ulp) {
            return Err(Error::Invalid(format!(
                "--key {key} takes logins from credential lines: use --input ulp (stealer logs) \
                 or --input combo (LOGIN:PASSWORD)"
            )));
        }
        kind = Some(HashKind::Sha1);
    }
    if kind.is_none() && options.input != InputFormat::Hashes {
        kind = Some(HashKind::Sha1);
    }
    let create = |k: HashKind| -> Result<IndexWriter> {
        let mut writer = IndexWriter::create(output, k, options.filter)?;
        writer.set_key(key)?;
        writer.set_store(options.store, memory / 4)?;
        writer.set_partition(prefixes);
        Ok(writer)
    };
    let mut sink: Option<Sink> = None;
    let mut skipped = 0u64;
    let mut outside_partition = 0u64;
    let mut padding_rows = 0u64;
    let mut outside_files = 0u64;
    let mut skipped_examples = Vec::new();
    // Every source so far, with the input it came in.
    let mut sources: Vec<Counted> = Vec::new();
    let mut sorted_input = true;
    progress.phase("reading", known_bytes);
    let started = std::time::Instant::now();
    let stream_times = StreamTimes::default();
    for input in opened.iter_mut() {
        let mut lines = 0u64;
        let mut size = 0u64;
        let path = input.path.clone();
        if let Source::Tree(tree) = &input.source {
            // The kind: the tree's folder, the build's, or the first suffix's length.
            let tree_kind = match (tree.kind(), kind) {
                (Some(t), Some(k)) if t != k => {
                    return Err(Error::Invalid(format!(
                        "{}: a tree of {} hashes cannot be merged into a build of {} hashes",
                        path.display(),
                        t.display_name(),
                        k.display_name()
                    )))
                }
                (Some(t), _) => Some(t),
                (None, Some(k)) => Some(k),
                (None, None) => tree.detect_kind()?,
            };
            // No kind: every file is blank.
            let read = match tree_kind {
                Some(k) => {
                    kind = Some(k);
                    let current = match sink.take() {
                        Some(s) => s,
                        None => Sink::Sorted(Box::new(create(k)?)),
                    };
                    let fed = Feeding {
                        memory,
                        tmp_root: &tmp_root,
                        expected,
                    };
                    let (s, read) =
                        read_tree(tree, k, current, &fed, options, &mut sorted_input, progress)?;
                    sink = Some(s);
                    read
                }
                None => TreeRead::default(),
            };
            padding_rows += read.padding;
            outside_files += tree.outside();
            if read.entries == 0 && !options.allow_empty {
                return Err(empty_tree(&path, tree, read.padding));
            }
            let source = SourceInfo {
                name: tree.name().to_string(),
                size: read.bytes,
                lines: read.lines,
                modified: read.modified,
            };
            count_sources(
                &mut sources,
                std::slice::from_ref(&source),
                prefixes,
                &path,
                options,
            )?;
            continue;
        }
        if let Source::Index(index) = &input.source {
            if index.hash_count() == 0 && !options.allow_empty {
                return Err(empty_input(&path, 0, None));
            }
            // Before the sources: a form that cannot be merged is the clearer error.
            if !options.store.can_be_made_from(index.store_form()) {
                return Err(Error::Invalid(format!(
                    "{}: an index with a {} store cannot be merged into one with a {} store: {}",
                    path.display(),
                    index.store_form(),
                    options.store,
                    if index.store_form() == StoreForm::None {
                        "a filter-only index holds no hashes to merge"
                    } else {
                        "a compact store holds only the first 64 bits of each hash; use \
                         --store compact or --store none"
                    }
                )));
            }
            check_new_sources(&sources, index.sources(), index.partition(), &path, options)?;
            let k = *kind.get_or_insert(index.kind());
            if k != index.kind() {
                return Err(Error::Invalid(format!(
                    "{}: a {} index cannot be merged into a {} build",
                    path.display(),
                    index.kind().display_name(),
                    k.display_name()
                )));
            }
            let current = match sink.take() {
                Some(s) => s,
                None => Sink::Sorted(Box::new(create(k)?)),
            };
            let mut state = Some(current);
            let mut chunk = Vec::with_capacity(1 << 16);
            let flush = |chunk: &mut Vec<Entry>,
                         state: &mut Option<Sink>,
                         sorted: &mut bool|
             -> Result<()> {
                cancel()?;
                let s = state.take().expect("a sink");
                *state = Some(feed(s, chunk, true, memory, &tmp_root, expected, sorted)?);
                chunk.clear();
                Ok(())
            };
            index.for_each_entry(&mut |e| {
                if !prefixes.contains(crate::hash::prefix_of(&e.hash)) {
                    outside_partition += 1;
                    return Ok(());
                }
                chunk.push(e);
                if chunk.len() == chunk.capacity() {
                    flush(&mut chunk, &mut state, &mut sorted_input)?;
                }
                Ok(())
            })?;
            flush(&mut chunk, &mut state, &mut sorted_input)?;
            sink = state;
            add_sources(&mut sources, index.sources(), index.partition(), &path);
            progress.advance(index.hash_count() * 40, 0);
            continue;
        }
        let mut mapped: Option<&MappedFile> = None;
        let mut released = 0usize;
        // Blocks of a stream go back to its reader once parsed, to be filled again.
        let (give_back, spares) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut blocks: Box<dyn Iterator<Item = Result<Cow<'_, [u8]>>> + Send> =
            match &mut input.source {
                Source::Mapped(map) => {
                    let map: &MappedFile = map;
                    mapped = Some(map);
                    let data = map.bytes();
                    // Cut lazily, just ahead of the parser: cutting the whole file up front
                    // would touch (and map) a page every chunk before any is parsed.
                    Box::new(
                        split_chunks(data, options.chunk_size)
                            .map(move |r| Ok(Cow::Borrowed(&data[r]))),
                    )
                }
                // Indexes and trees were read above.
                Source::Index(_) | Source::Tree(_) => Box::new(std::iter::empty()),
                Source::Reader(reader) => {
                    let reader = std::mem::replace(reader, Box::new(std::io::empty()));
                    Box::new(
                        read_ahead(
                            reader,
                            options.chunk_size,
                            spares,
                            stream_times.clone(),
                            options.cancel.clone(),
                            &path,
                        )?
                        .map(|b| b.map(Cow::Owned)),
                    )
                }
            };
        let mut first_blocks = Vec::new();
        if options.input != InputFormat::Hashes {
            // Plaintext that looks like hashes or stealer-log lines is most likely the wrong
            // --input: say so before hours of building.
            if let Some(block) = blocks.next() {
                let block = block?;
                if let Some(hint) = plaintext_hint(&block, options.input) {
                    warn(format!("{}: {hint}", path.display()));
                }
                first_blocks.push(block);
            }
        }
        // The kind comes from the first block that holds a hash.
        let mut lines_before = 0u64;
        while kind.is_none() {
            match blocks.next() {
                Some(block) => {
                    let block = block?;
                    kind = detect_kind(&path, &block, lines_before)?;
                    lines_before += memchr::memchr_iter(b'\n', &block).count() as u64;
                    first_blocks.push(block);
                }
                None => break,
            }
        }
        let Some(k) = kind else {
            // Nothing but blank lines so far.
            for b in &first_blocks {
                size += b.len() as u64;
                lines += memchr::memchr_iter(b'\n', b).count() as u64;
            }
            if !options.allow_empty {
                return Err(empty_input(&path, 0, None));
            }
            let source = SourceInfo {
                name: display_name(&path),
                size,
                lines,
                modified: input.modified,
            };
            count_sources(
                &mut sources,
                std::slice::from_ref(&source),
                prefixes,
                &path,
                options,
            )?;
            continue;
        };
        if sink.is_none() {
            sink = Some(if options.input == InputFormat::Hashes {
                Sink::Sorted(Box::new(create(k)?))
            } else {
                sorted_input = false;
                Sink::Unsorted(Spill::new(memory, tmp_root.clone(), expected))
            });
        }
        let all_blocks = first_blocks.into_iter().map(Ok).chain(blocks);
        let batch_len = rayon::current_num_threads() * 2;
        let format = options.input;
        let (batches, parsed) = std::sync::mpsc::sync_channel::<Result<Vec<Parsed>>>(1);
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<Entry>>();
        let mut input_entries = 0u64;
        let mut input_skipped = 0u64;
        let mut first_skip: Option<String> = None;
        let outcome: Result<()> = std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut all_blocks = all_blocks;
                loop {
                    let mut batch = Vec::with_capacity(batch_len);
                    for b in all_blocks.by_ref().take(batch_len) {
                        match b {
                            Ok(b) => batch.push(b),
                            Err(e) => {
                                let _ = batches.send(Err(e));
                                return;
                            }
                        }
                    }
                    if batch.is_empty() {
                        return;
                    }
                    let buffers: Vec<Vec<Entry>> = batch
                        .iter()
                        .map(|_| recycled.try_recv().unwrap_or_default())
                        .collect();
                    let parsed: Vec<Parsed> = batch
                        .par_iter()
                        .zip(buffers)
                        .map(|(block, buf)| parse_block(block, k, key, format, prefixes, buf))
                        .collect();
                    for block in batch {
                        if let Cow::Owned(block) = block {
                            let _ = give_back.send(block);
                        }
                    }
                    if batches.send(Ok(parsed)).is_err() {
                        return;
                    }
                }
            });
            for batch in parsed {
                cancel()?;
                for p in batch? {
                    let stats = p.result.map_err(|e| Error::Parse {
                        path: path.clone(),
                        line: lines + e.line_in_chunk + 1,
                        message: e.message,
                    })?;
                    skipped += p.skipped;
                    outside_partition += p.outside;
                    input_skipped += p.skipped;
                    input_entries += p.entries.len() as u64 + p.outside;
                    if let (None, Some((line, why))) = (&first_skip, p.skipped_examples.first()) {
                        first_skip = Some(format!("line {}: {why}", lines + line + 1));
                    }
                    for (line, why) in &p.skipped_examples {
                        if skipped_examples.len() < SKIP_EXAMPLES {
                            skipped_examples.push(format!(
                                "{}:{}: {why}",
                                path.display(),
                                lines + line + 1
                            ));
                        }
                    }
                    let current = sink.take().expect("a sink");
                    sink = Some(feed(
                        current,
                        &p.entries,
                        stats.sorted,
                        memory,
                        &tmp_root,
                        expected,
                        &mut sorted_input,
                    )?);
                    lines += stats.lines;
                    size += p.bytes as u64;
                    progress.advance(p.bytes as u64, stats.lines);
                    let _ = recycle.send(p.entries);
                }
                if let Some(map) = mapped {
                    map.release(released..size as usize);
                    released = size as usize;
                }
            }
            Ok(())
        });
        outcome?;
        if input_entries == 0 && !options.allow_empty {
            return Err(empty_input(&path, input_skipped, first_skip));
        }
        let source = SourceInfo {
            name: display_name(&path),
            size,
            lines,
            modified: input.modified,
        };
        count_sources(
            &mut sources,
            std::slice::from_ref(&source),
            prefixes,
            &path,
            options,
        )?;
    }
    cancel()?;
    let mut timings = BuildTimings {
        read_and_parse: started.elapsed(),
        stream_reading: std::time::Duration::from_nanos(
            stream_times.reading.load(Ordering::Relaxed),
        ),
        stream_waiting: std::time::Duration::from_nanos(
            stream_times.waiting.load(Ordering::Relaxed),
        ),
        ..BuildTimings::default()
    };
    let mut temp_bytes = 0;
    let writer = match sink {
        Some(Sink::Sorted(w)) => *w,
        Some(Sink::Unsorted(spill)) => {
            let sorting = std::time::Instant::now();
            let mut w = create(kind.unwrap_or(HashKind::Sha1))?;
            temp_bytes = spill.finish(&mut w, &cancel, progress)?;
            timings.sort = sorting.elapsed();
            w
        }
        None => create(kind.unwrap_or(HashKind::Sha1))?,
    };
    let mut writer = writer;
    // Partitions of one dump list the same source; their merge lists it once.
    let mut listed: Vec<&SourceInfo> = Vec::new();
    for Counted { source: s, .. } in &sources {
        if listed.contains(&s) {
            continue;
        }
        listed.push(s);
        writer.add_source(s.clone());
    }
    cancel()?;
    let finishing = std::time::Instant::now();
    let index = writer.finish(progress)?;
    timings.filter_and_write = finishing.elapsed();
    Ok(BuildSummary {
        index,
        skipped_lines: skipped,
        skipped_examples,
        temp_bytes,
        sorted_input,
        warnings,
        timings,
        outside_partition,
        padding_rows,
        outside_files,
    })
}

/// The partition a build writes, from the one asked (`asked`, every prefix by default) and
/// the partitions of the indexes merged in. Text inputs hold every prefix. An index merged
/// with text must hold the whole partition being built, or its hashes would be missing from
/// part of it. Indexes merged alone must together cover the partition without a gap; asked
/// for every prefix, they make the partition they cover (four partitions merge into a whole
/// index).
fn partition_of_build(inputs: &[Input], asked: PrefixRange) -> Result<PrefixRange> {
    let mut parts: Vec<(PrefixRange, &Path)> = inputs
        .iter()
        .filter_map(|i| match &i.source {
            Source::Index(index) => Some((index.partition(), i.path.as_path())),
            _ => None,
        })
        .collect();
    if parts.len() < inputs.len() {
        // Some text: every index must hold the partition asked.
        if let Some((p, path)) = parts
            .iter()
            .find(|(p, _)| p.first() > asked.first() || p.last() < asked.last())
        {
            return Err(Error::Invalid(format!(
                "{}: a partition index (prefixes {p}) cannot be merged with dumps into an index \
                 of prefixes {asked}: its hashes of the other prefixes are not in it; build with \
                 --prefixes {p}",
                path.display()
            )));
        }
        return Ok(asked);
    }
    parts.sort();
    let Some(&(first, _)) = parts.first() else {
        return Ok(asked);
    };
    let mut covered = first;
    for &(p, path) in &parts[1..] {
        if p.first() > covered.last() + 1 {
            return Err(Error::Invalid(format!(
                "{}: the partitions merged leave a gap: they hold {covered} and {p}, but not \
                 the prefixes between",
                path.display()
            )));
        }
        covered =
            PrefixRange::new(covered.first(), covered.last().max(p.last())).unwrap_or(covered);
    }
    if asked.is_whole() {
        return Ok(covered);
    }
    if asked.first() < covered.first() || asked.last() > covered.last() {
        return Err(Error::Invalid(format!(
            "the indexes merged hold the prefixes {covered} only, not all of {asked}"
        )));
    }
    Ok(asked)
}

/// `n` with the singular or plural noun.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Where [`feed`] puts what it cannot write at once.
struct Feeding<'a> {
    memory: u64,
    tmp_root: &'a Path,
    expected: u64,
}

/// What reading a downloader tree found.
#[derive(Default)]
struct TreeRead {
    /// Bytes of its files as stored.
    bytes: u64,
    lines: u64,
    /// Entries (padding rows not included).
    entries: u64,
    /// Rows with count 0, left out.
    padding: u64,
    /// The newest file's modification time.
    modified: u64,
}

/// Files of a tree read in one parallel batch: about [`BuildOptions::chunk_size`] bytes per
/// thread twice over (as for dumps), within these bounds.
const TREE_BATCH_FILES: std::ops::RangeInclusive<usize> = 64..=4096;

/// Reads a downloader tree into `sink`, in prefix order: batches of files are read,
/// decompressed and parsed on the pool, in order, while the previous batch is written.
fn read_tree(
    tree: &Tree,
    kind: HashKind,
    sink: Sink,
    fed: &Feeding<'_>,
    options: &BuildOptions,
    sorted_input: &mut bool,
    progress: &dyn BuildProgress,
) -> Result<(Sink, TreeRead)> {
    let cancelled = || {
        options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    };
    let batch_bytes = (rayon::current_num_threads() * 2 * options.chunk_size) as u64;
    let per_file = (tree.estimated_bytes() / tree.len().max(1) as u64).max(1);
    let batch_files = ((batch_bytes / per_file) as usize)
        .clamp(*TREE_BATCH_FILES.start(), *TREE_BATCH_FILES.end());
    let mut sink = Some(sink);
    let mut read = TreeRead::default();
    std::thread::scope(|scope| -> Result<()> {
        let (send, receive) = std::sync::mpsc::sync_channel::<Vec<Result<crate::tree::Body>>>(1);
        scope.spawn(move || {
            let mut start = 0;
            while start < tree.len() {
                let end = (start + batch_files).min(tree.len());
                if cancelled() {
                    return;
                }
                let bodies: Vec<Result<crate::tree::Body>> = (start..end)
                    .into_par_iter()
                    .map(|i| tree.read(i, kind))
                    .collect();
                let failed = bodies.iter().any(Result::is_err);
                if send.send(bodies).is_err() || failed {
                    return;
                }
                start = end;
            }
        });
        for batch in receive {
            if cancelled() {
                return Err(Error::Interrupted);
            }
            for body in batch {
                let body = body?;
                let current = sink.take().expect("a sink");
                sink = Some(feed(
                    current,
                    &body.entries,
                    true,
                    fed.memory,
                    fed.tmp_root,
                    fed.expected,
                    sorted_input,
                )?);
                read.bytes += body.bytes;
                read.lines += body.lines;
                read.entries += body.entries.len() as u64;
                read.padding += body.padding;
                read.modified = read.modified.max(body.modified);
                progress.advance(body.bytes, body.lines);
            }
        }
        Ok(())
    })?;
    if cancelled() {
        return Err(Error::Interrupted);
    }
    Ok((sink.expect("a sink"), read))
}

/// The error for a tree that gave no hashes.
fn empty_tree(path: &Path, tree: &Tree, padding: u64) -> Error {
    Error::Invalid(format!(
        "{}: no hashes: its {} {}. A download cut short? An index without them would answer \
         \"not found\" to everything; pass --allow-empty to build it anyway",
        path.display(),
        plural(tree.len() as u64, "file", "files"),
        if padding > 0 {
            format!(
                "hold only padding rows (count 0: {})",
                plural(padding, "row", "rows")
            )
        } else if tree.len() == 1 {
            "is empty".to_string()
        } else {
            "are empty".to_string()
        }
    ))
}

/// The error for an input that gave no hashes.
fn empty_input(path: &Path, skipped: u64, first_skip: Option<String>) -> Error {
    let what = if skipped > 0 {
        format!(
            "every line of it that is not blank was left out ({}{})",
            plural(skipped, "line", "lines"),
            first_skip.map_or(String::new(), |s| format!(", for example {s}"))
        )
    } else {
        "it is empty or holds only blank lines".to_string()
    };
    Error::Invalid(format!(
        "{}: no hashes: {what}. A download cut short? An index without them would answer \
         \"not found\" to everything; pass --allow-empty to build it anyway",
        path.display()
    ))
}

/// Refuses sources already in the index being built: the same dump (by name, size, line
/// count and modification time) added twice would double its counts.
/// A source of the index being built: where it came in, and the prefixes of it counted.
struct Counted {
    source: SourceInfo,
    from: PathBuf,
    prefixes: PrefixRange,
}

/// Checks new sources ([`check_new_sources`]) and adds them to the list.
fn count_sources(
    list: &mut Vec<Counted>,
    new: &[SourceInfo],
    prefixes: PrefixRange,
    from: &Path,
    options: &BuildOptions,
) -> Result<()> {
    check_new_sources(list, new, prefixes, from, options)?;
    add_sources(list, new, prefixes, from);
    Ok(())
}

/// Adds sources to the list (the index lists each once: see [`build_index`]'s end).
fn add_sources(list: &mut Vec<Counted>, new: &[SourceInfo], prefixes: PrefixRange, from: &Path) {
    list.extend(new.iter().map(|source| Counted {
        source: source.clone(),
        from: from.to_path_buf(),
        prefixes,
    }));
}

/// Refuses a source already counted for some of the same prefixes: its counts would be added
/// twice. (Partitions of one dump hold the same source for other prefixes, and merge.)
fn check_new_sources(
    existing: &[Counted],
    new: &[SourceInfo],
    prefixes: PrefixRange,
    path: &Path,
    options: &BuildOptions,
) -> Result<()> {
    if options.allow_duplicate_sources {
        return Ok(());
    }
    for source in new {
        // Standard input has no name or time: two streams of one size and line count are
        // not known to be one.
        if source.name == "-" && source.modified == 0 {
            continue;
        }
        if let Some(Counted { from, .. }) = existing
            .iter()
            .find(|c| c.source == *source && c.prefixes.overlaps(prefixes))
        {
            return Err(Error::Invalid(format!(
                "{}: the source `{}` ({} bytes, {}) is already counted, from {}, with the same \
                 size, line count and modification time: its counts would be added twice. Pass \
                 --allow-duplicate-sources to add them anyway",
                path.display(),
                source.name,
                source.size,
                plural(source.lines, "line", "lines"),
                from.display()
            )));
        }
    }
    Ok(())
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

/// Hands a block's entries to the sink; a sorted sink that meets disorder becomes a spill.
fn feed(
    sink: Sink,
    entries: &[Entry],
    block_sorted: bool,
    memory: u64,
    tmp_root: &Path,
    expected: u64,
    sorted_input: &mut bool,
) -> Result<Sink> {
    let mut sink = sink;
    let mut start = 0;
    if let Sink::Sorted(writer) = &mut sink {
        if block_sorted {
            for (i, e) in entries.iter().enumerate() {
                if writer.push(*e)?.is_err() {
                    start = i;
                    break;
                }
                start = i + 1;
            }
        }
        if start < entries.len() || !block_sorted {
            *sorted_input = false;
            let Sink::Sorted(writer) = sink else {
                unreachable!("matched above")
            };
            let mut spill = Spill::new(memory, tmp_root.to_path_buf(), expected);
            writer.into_entries(&mut |e| spill.push(e))?;
            sink = Sink::Unsorted(spill);
        }
    }
    if let Sink::Unsorted(spill) = &mut sink {
        for e in &entries[start..] {
            spill.push(*e)?;
        }
    }
    Ok(sink)
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
