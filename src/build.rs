//! Building an index from dump files: map, parse in parallel, stream into an [`IndexWriter`].
//!
//! Sorted input (the official dumps are sorted) streams through in bounded memory: chunks are
//! parsed in parallel a batch at a time and fed to the writer in order. When an entry turns up
//! out of order the build starts over in memory: it parses everything, sorts it on all cores
//! and writes it, after checking that this fits in the memory available.

use crate::dump::{self, first_hash_field, parse_chunk, split_chunks, ChunkError, Entry};
use crate::error::{Error, Result};
use crate::format::FilterKind;
use crate::hash::HashKind;
use crate::sys::MappedFile;
use crate::writer::{IndexSummary, IndexWriter, SourceInfo};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Hash kind; `None` takes it from the length of the first hash.
    pub kind: Option<HashKind>,
    /// Which filter to build.
    pub filter: FilterKind,
    /// Bytes of input per parallel parsing task.
    pub chunk_size: usize,
    /// Memory the build may use to sort unsorted input; `None` reads what the machine has.
    pub memory_limit: Option<u64>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            kind: None,
            filter: FilterKind::Fuse8,
            chunk_size: 4 << 20,
            memory_limit: None,
        }
    }
}

/// Receives progress while a build runs. All methods have empty defaults.
pub trait BuildProgress: Sync {
    /// A phase starts; `total_bytes` is what it will go through.
    fn phase(&self, _name: &str, _total_bytes: u64) {}
    /// Bytes and lines done since the last call.
    fn advance(&self, _bytes: u64, _lines: u64) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl BuildProgress for NoProgress {}

/// Builds the index at `output` from the dumps at `inputs`.
pub fn build_index(
    inputs: &[PathBuf],
    output: &Path,
    options: &BuildOptions,
    progress: &dyn BuildProgress,
) -> Result<IndexSummary> {
    let maps = inputs
        .iter()
        .map(|p| MappedFile::open(p))
        .collect::<Result<Vec<_>>>()?;
    for m in &maps {
        m.advise_sequential();
    }
    let kind = match options.kind {
        Some(k) => k,
        None => detect_kind(inputs, &maps)?,
    };
    let total: u64 = maps.iter().map(|m| m.bytes().len() as u64).sum();
    progress.phase("reading", total);
    match build_streaming(inputs, &maps, output, kind, options, progress)? {
        Some(summary) => Ok(summary),
        None => build_in_memory(inputs, &maps, output, kind, options, progress),
    }
}

/// The kind named by the first hash of the first input that has one (SHA-1 when none has).
fn detect_kind(inputs: &[PathBuf], maps: &[MappedFile]) -> Result<HashKind> {
    for (path, map) in inputs.iter().zip(maps) {
        if let Some((line, hex)) = first_hash_field(map.bytes()) {
            return HashKind::from_hex_len(hex.len()).ok_or_else(|| Error::Parse {
                path: path.clone(),
                line,
                message: format!(
                    "expected 40 hex digits (SHA-1) or 32 (NTLM), found {} characters",
                    hex.len()
                ),
            });
        }
    }
    Ok(HashKind::Sha1)
}

fn parse_error(path: &Path, data: &[u8], chunk_start: usize, e: ChunkError) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line: dump::line_index_at(data, chunk_start) + e.line_in_chunk + 1,
        message: e.message,
    }
}

fn source_info(path: &Path, data: &[u8], lines: u64) -> SourceInfo {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    SourceInfo {
        name: path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        size: data.len() as u64,
        lines,
        modified,
    }
}

/// Streams sorted input into the writer. `Ok(None)` when the input turns out not sorted.
fn build_streaming(
    inputs: &[PathBuf],
    maps: &[MappedFile],
    output: &Path,
    kind: HashKind,
    options: &BuildOptions,
    progress: &dyn BuildProgress,
) -> Result<Option<IndexSummary>> {
    let mut writer = IndexWriter::create(output, kind, options.filter)?;
    for (path, map) in inputs.iter().zip(maps) {
        match stream_input(path, map, kind, options, &mut writer, progress)? {
            Some(lines) => writer.add_source(source_info(path, map.bytes(), lines)),
            None => return Ok(None),
        }
    }
    writer.finish(progress).map(Some)
}

/// A chunk parsed on its own: its start, and its entries or the error in it.
type ParsedChunk = (
    usize,
    std::result::Result<(Vec<Entry>, dump::ChunkStats), ChunkError>,
);

/// A batch of parsed chunks: each chunk's byte range, outcome and entries.
type ParsedBatch = Vec<(
    std::ops::Range<usize>,
    std::result::Result<dump::ChunkStats, ChunkError>,
    Vec<Entry>,
)>;

/// Streams one input into the writer: a thread parses the next batch of chunks on the pool
/// while this one pushes the current batch. Returns the lines read, or `None` when the input
/// is out of order.
fn stream_input(
    path: &Path,
    map: &MappedFile,
    kind: HashKind,
    options: &BuildOptions,
    writer: &mut IndexWriter,
    progress: &dyn BuildProgress,
) -> Result<Option<u64>> {
    let data = map.bytes();
    let chunks = split_chunks(data, options.chunk_size);
    let batch_len = rayon::current_num_threads() * 2;
    let (batches, parsed) = std::sync::mpsc::sync_channel::<ParsedBatch>(1);
    let (recycle, recycled) = std::sync::mpsc::channel::<Vec<Entry>>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for batch in chunks.chunks(batch_len) {
                let mut parsed: ParsedBatch = batch
                    .iter()
                    .map(|r| {
                        (
                            r.clone(),
                            Ok(Default::default()),
                            recycled.try_recv().unwrap_or_default(),
                        )
                    })
                    .collect();
                parsed.par_iter_mut().for_each(|(range, result, buf)| {
                    buf.clear();
                    *result = parse_chunk(&data[range.clone()], kind, buf);
                });
                if batches.send(parsed).is_err() {
                    return;
                }
            }
        });
        let mut lines = 0u64;
        for batch in parsed {
            let (mut lo, mut hi) = (usize::MAX, 0);
            for (range, result, buf) in batch {
                let stats = result.map_err(|e| parse_error(path, data, range.start, e))?;
                if !stats.sorted {
                    return Ok(None);
                }
                for entry in &buf {
                    if writer.push(*entry)?.is_err() {
                        return Ok(None);
                    }
                }
                lines += stats.lines;
                progress.advance(range.len() as u64, stats.lines);
                lo = lo.min(range.start);
                hi = hi.max(range.end);
                let _ = recycle.send(buf);
            }
            map.release(lo..hi);
        }
        Ok(Some(lines))
    })
}

/// Memory this machine has available, from `/proc/meminfo` where there is one.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn build_in_memory(
    inputs: &[PathBuf],
    maps: &[MappedFile],
    output: &Path,
    kind: HashKind,
    options: &BuildOptions,
    progress: &dyn BuildProgress,
) -> Result<IndexSummary> {
    let total: u64 = maps.iter().map(|m| m.bytes().len() as u64).sum();
    // The shortest line is a bare hash and a newline.
    let max_entries = total / (kind.hex_len() as u64 + 1) + 1;
    let needed = max_entries * std::mem::size_of::<Entry>() as u64;
    let limit = options
        .memory_limit
        .or_else(|| available_memory().map(|m| m / 10 * 8));
    if let Some(limit) = limit {
        if needed > limit {
            return Err(Error::Invalid(format!(
                "the input is not sorted by hash, and sorting {:.1} GiB of it in memory needs \
                 up to {:.1} GiB, more than the {:.1} GiB available; sort it first \
                 (for example `LC_ALL=C sort -S 50% -o sorted.txt input.txt`) and build from \
                 the sorted file, which needs little memory",
                gib(total),
                gib(needed),
                gib(limit)
            )));
        }
    }
    progress.phase("reading unsorted input", total);
    let mut all: Vec<Entry> = Vec::new();
    let mut sources = Vec::new();
    for (path, map) in inputs.iter().zip(maps) {
        let data = map.bytes();
        let chunks = split_chunks(data, options.chunk_size);
        let parsed: Vec<ParsedChunk> = chunks
            .par_iter()
            .map(|range| {
                let mut buf = Vec::new();
                let r = parse_chunk(&data[range.clone()], kind, &mut buf).map(|s| (buf, s));
                if let Ok((_, s)) = &r {
                    progress.advance(range.len() as u64, s.lines);
                }
                (range.start, r)
            })
            .collect();
        let mut lines = 0;
        for (start, result) in parsed {
            let (mut entries, stats) = result.map_err(|e| parse_error(path, data, start, e))?;
            lines += stats.lines;
            all.append(&mut entries);
        }
        sources.push(source_info(path, data, lines));
    }
    progress.phase("sorting", 0);
    all.par_sort_unstable_by(|a, b| a.hash.cmp(&b.hash));
    progress.phase("writing", all.len() as u64);
    let mut writer = IndexWriter::create(output, kind, options.filter)?;
    for s in sources {
        writer.add_source(s);
    }
    for (i, entry) in all.iter().enumerate() {
        if writer.push(*entry)?.is_err() {
            unreachable!("sorted entries arrive in order");
        }
        if i % 65536 == 65535 {
            progress.advance(65536, 0);
        }
    }
    drop(all);
    writer.finish(progress)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}
