//! [`IndexWriter`]: turns a stream of entries sorted by hash into an index file.
//!
//! Records go straight to the output as they arrive; overflow counts and filter fingerprints
//! go to unnamed temporary files beside it and are appended at the end, so memory does not
//! grow with the input. The file is written under a temporary name in the output's folder,
//! synced, and renamed into place by [`IndexWriter::finish`]; dropping an unfinished writer
//! removes it.

use crate::dump::Entry;
use crate::error::{Error, Result};
use crate::filter::{build_shard, encode_shard_entry, BuiltShard};
use crate::format::*;
use crate::hash::{hash_to_hex, prefix_of, HashBytes, HashKind};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One input an index was built from, as listed by `info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// File name (without its folder), or `-` for standard input.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Modification time in Unix seconds, 0 when unknown.
    pub modified: u64,
}

/// Pushing an entry that sorts before the previous one.
#[derive(Debug)]
pub struct OutOfOrder;

/// Filter keys that may wait for their shard's filter before `push` blocks.
const OUTSTANDING_KEYS_LIMIT: usize = 16 << 20;

/// A file being written with a running CRC and length.
struct CrcWriter {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl CrcWriter {
    fn new(file: File) -> CrcWriter {
        CrcWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.len += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn pad_to_8(&mut self) -> std::io::Result<()> {
        let pad = (align8(self.len) - self.len) as usize;
        self.write(&[0u8; 8][..pad])
    }
}

type ShardResult = (usize, std::result::Result<BuiltShard, String>, usize);

/// Shard filters being built on the thread pool while records stream on.
struct ShardBuilds {
    kind: FilterKind,
    bits: u8,
    sender: std::sync::mpsc::Sender<ShardResult>,
    receiver: std::sync::mpsc::Receiver<ShardResult>,
    /// Shards handed out, in order, not yet written.
    queue: std::collections::VecDeque<usize>,
    done: std::collections::HashMap<usize, BuiltShard>,
    outstanding_keys: usize,
    table: Vec<u8>,
    data: CrcWriter,
    next_to_write: usize,
}

impl ShardBuilds {
    fn start(&mut self, shard: usize, mut keys: Vec<u64>) {
        let n = keys.len();
        self.outstanding_keys += n;
        self.queue.push_back(shard);
        let kind = self.kind;
        if rayon::current_thread_index().is_some() {
            // Already on the pool: build here rather than risk waiting on ourselves.
            let result = build_shard(kind, &mut keys);
            let _ = self.sender.send((shard, result, n));
        } else {
            let sender = self.sender.clone();
            rayon::spawn(move || {
                let result = build_shard(kind, &mut keys);
                let _ = sender.send((shard, result, n));
            });
        }
    }

    /// Takes finished builds, blocking while more than `limit` keys are outstanding, and
    /// writes what is ready in order.
    fn collect(&mut self, limit: usize, path: &Path) -> Result<()> {
        loop {
            let next = if self.outstanding_keys > limit && !self.queue.is_empty() {
                self.receiver.recv().ok()
            } else {
                self.receiver.try_recv().ok()
            };
            let Some((shard, result, n)) = next else {
                break;
            };
            self.outstanding_keys -= n;
            let built = result.map_err(|e| {
                Error::Invalid(format!("building the filter of shard {shard} failed: {e}"))
            })?;
            self.done.insert(shard, built);
            while let Some(front) = self.queue.front().copied() {
                let Some(built) = self.done.remove(&front) else {
                    break;
                };
                self.queue.pop_front();
                self.write(front, &built, path)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, shard: usize, built: &BuiltShard, path: &Path) -> Result<()> {
        while self.next_to_write < shard {
            encode_shard_entry(&BuiltShard::default(), self.data.len, &mut self.table);
            self.next_to_write += 1;
        }
        encode_shard_entry(built, self.data.len, &mut self.table);
        let err = |e| Error::io(path, "cannot write a temporary filter file for", e);
        self.data.write(&built.bytes).map_err(err)?;
        self.data.pad_to_8().map_err(err)?;
        self.next_to_write = shard + 1;
        Ok(())
    }

    fn finish(&mut self, path: &Path) -> Result<()> {
        self.collect(0, path)?;
        while self.next_to_write < 1 << self.bits {
            encode_shard_entry(&BuiltShard::default(), self.data.len, &mut self.table);
            self.next_to_write += 1;
        }
        Ok(())
    }
}

/// Writes an index from entries pushed in hash order.
pub struct IndexWriter {
    kind: HashKind,
    filter: FilterKind,
    shard_bits: u8,
    target: PathBuf,
    temp: Option<tempfile::NamedTempFile>,
    temp_path: PathBuf,
    records: CrcWriter,
    overflow: CrcWriter,
    huge: Vec<u8>,
    shards: ShardBuilds,
    bucket_starts: Vec<u64>,
    overflow_starts: Vec<u64>,
    next_bucket: usize,
    records_written: u64,
    overflow_written: u64,
    position_in_bucket: u64,
    pending_entry: Option<Entry>,
    count_sum: u128,
    shard_keys: Vec<u64>,
    current_shard: usize,
    sources: Vec<SourceInfo>,
    record_buf: [u8; 20],
}

impl IndexWriter {
    /// Starts an index at `target`, writing under a temporary name in the same folder.
    /// `expected_hashes` (an estimate) sizes the filter's shards.
    pub fn create(
        target: &Path,
        kind: HashKind,
        filter: FilterKind,
        expected_hashes: u64,
    ) -> Result<IndexWriter> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = target
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{}: not a file path", target.display())))?;
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(file_name);
        prefix.push(".");
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".leakdex-tmp")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, "cannot create a temporary index file in", e))?;
        let temp_path = temp.path().to_path_buf();
        let mut file = temp
            .as_file()
            .try_clone()
            .map_err(|e| Error::io(&temp_path, "cannot write", e))?;
        file.seek(SeekFrom::Start(records_offset()))
            .map_err(|e| Error::io(&temp_path, "cannot write", e))?;
        let scratch = |what| {
            tempfile::tempfile_in(&dir)
                .map_err(|e| Error::io(&dir, what, e))
                .map(CrcWriter::new)
        };
        let shard_bits = shard_bits_for(expected_hashes);
        let (sender, receiver) = std::sync::mpsc::channel();
        Ok(IndexWriter {
            kind,
            filter,
            shard_bits,
            target: target.to_path_buf(),
            temp: Some(temp),
            temp_path,
            records: CrcWriter::new(file),
            overflow: scratch("cannot create a temporary overflow file in")?,
            huge: Vec::new(),
            shards: ShardBuilds {
                kind: filter,
                bits: shard_bits,
                sender,
                receiver,
                queue: Default::default(),
                done: Default::default(),
                outstanding_keys: 0,
                table: Vec::new(),
                data: scratch("cannot create a temporary filter file in")?,
                next_to_write: 0,
            },
            bucket_starts: vec![0; BUCKETS + 1],
            overflow_starts: vec![0; BUCKETS + 1],
            next_bucket: 0,
            records_written: 0,
            overflow_written: 0,
            position_in_bucket: 0,
            pending_entry: None,
            count_sum: 0,
            shard_keys: Vec::new(),
            current_shard: 0,
            sources: Vec::new(),
            record_buf: [0; 20],
        })
    }

    /// The hash kind being written.
    pub fn kind(&self) -> HashKind {
        self.kind
    }

    /// Records an input in the index's list of sources.
    pub fn add_source(&mut self, source: SourceInfo) {
        self.sources.push(source);
    }

    /// Adds an entry. Entries must come in non-decreasing hash order; equal hashes are
    /// merged by summing their counts. An entry out of order is refused with `Ok(Err(_))`.
    pub fn push(&mut self, entry: Entry) -> Result<std::result::Result<(), OutOfOrder>> {
        if let Some(pending) = &mut self.pending_entry {
            if pending.hash == entry.hash {
                pending.count = pending.count.checked_add(entry.count).ok_or_else(|| {
                    Error::Invalid(format!(
                        "the counts of hash {} add up to more than 2^64 - 1",
                        hash_to_hex(&entry.hash, self.kind)
                    ))
                })?;
                return Ok(Ok(()));
            }
            if entry.hash < pending.hash {
                return Ok(Err(OutOfOrder));
            }
            let done = std::mem::replace(pending, entry);
            self.emit(done)?;
        } else {
            self.pending_entry = Some(entry);
        }
        Ok(Ok(()))
    }

    fn emit(&mut self, entry: Entry) -> Result<()> {
        let bucket = prefix_of(&entry.hash) as usize;
        if bucket >= self.next_bucket {
            for b in self.next_bucket..=bucket {
                self.bucket_starts[b] = self.records_written;
                self.overflow_starts[b] = self.overflow_written;
            }
            self.next_bucket = bucket + 1;
            self.position_in_bucket = 0;
        }
        let code = if entry.count < OVERFLOW_CODE as u64 {
            entry.count as u8
        } else {
            self.write_overflow(bucket, entry.count)?;
            OVERFLOW_CODE
        };
        let len = record_len(self.kind);
        encode_record(&entry.hash, code, &mut self.record_buf[..len]);
        self.records
            .write(&self.record_buf[..len])
            .map_err(|e| Error::io(&self.temp_path, "cannot write", e))?;
        self.records_written += 1;
        self.position_in_bucket += 1;
        self.count_sum += entry.count as u128;

        if self.filter != FilterKind::None {
            let shard = shard_of(&entry.hash, self.shard_bits);
            if shard != self.current_shard {
                self.close_shard()?;
                self.current_shard = shard;
            }
            self.shard_keys.push(filter_key(&entry.hash));
        }
        Ok(())
    }

    fn write_overflow(&mut self, bucket: usize, count: u64) -> Result<()> {
        let position = u32::try_from(self.position_in_bucket).map_err(|_| {
            Error::Invalid(format!(
                "range {bucket:05X} holds more than 2^32 hashes, more than the format allows"
            ))
        })?;
        let small = match u32::try_from(count) {
            Ok(c) if c != HUGE_MARK => c,
            _ => {
                self.huge
                    .extend_from_slice(&self.overflow_written.to_le_bytes());
                self.huge.extend_from_slice(&count.to_le_bytes());
                HUGE_MARK
            }
        };
        let mut e = [0u8; OVERFLOW_ENTRY_LEN];
        e[..4].copy_from_slice(&position.to_le_bytes());
        e[4..].copy_from_slice(&small.to_le_bytes());
        self.overflow
            .write(&e)
            .map_err(|err| Error::io(&self.temp_path, "cannot write", err))?;
        self.overflow_written += 1;
        Ok(())
    }

    fn close_shard(&mut self) -> Result<()> {
        if !self.shard_keys.is_empty() {
            let keys = std::mem::take(&mut self.shard_keys);
            self.shards.start(self.current_shard, keys);
        }
        self.shards.collect(OUTSTANDING_KEYS_LIMIT, &self.temp_path)
    }

    /// Writes the remaining parts, syncs the file and renames it into place.
    pub fn finish(mut self) -> Result<IndexSummary> {
        if let Some(last) = self.pending_entry.take() {
            self.emit(last)?;
        }
        for b in self.next_bucket..=BUCKETS {
            self.bucket_starts[b] = self.records_written;
            self.overflow_starts[b] = self.overflow_written;
        }
        if self.filter != FilterKind::None {
            self.close_shard()?;
            self.shards.finish(&self.temp_path)?;
        }
        let temp_path = self.temp_path.clone();
        let io = |e| Error::io(&temp_path, "cannot write", e);
        let too_big = |group: usize| {
            Error::Invalid(format!(
                "more than 2^32 hashes share the prefixes {:03X}xx, more than the format allows",
                group
            ))
        };
        let buckets_bytes = encode_directory(&self.bucket_starts).map_err(too_big)?;
        let overflow_dir_bytes = encode_directory(&self.overflow_starts).map_err(too_big)?;

        let mut sections = Vec::with_capacity(SectionId::ALL.len());
        let mut offset = SECTIONS_START as u64;
        for (id, bytes) in [
            (SectionId::Buckets, &buckets_bytes),
            (SectionId::OverflowDir, &overflow_dir_bytes),
        ] {
            sections.push(Section {
                id,
                offset,
                len: bytes.len() as u64,
                crc: crc32fast::hash(bytes),
            });
            offset = align8(offset + bytes.len() as u64);
        }
        debug_assert_eq!(offset, records_offset());
        let out = &mut self.records;
        sections.push(Section {
            id: SectionId::Records,
            offset,
            len: out.len,
            crc: out.crc.clone().finalize(),
        });
        out.pad_to_8().map_err(io)?;
        offset += out.len;

        let overflow_crc = self.overflow.crc.clone().finalize();
        let overflow_len = copy_scratch(&mut self.overflow, out).map_err(io)?;
        append_scratch_section(
            &mut sections,
            SectionId::Overflow,
            overflow_crc,
            overflow_len,
            &mut offset,
        );
        out.pad_to_8().map_err(io)?;
        append_memory_section(
            &mut sections,
            SectionId::HugeCounts,
            &self.huge,
            out,
            &mut offset,
        )
        .map_err(io)?;
        let table = std::mem::take(&mut self.shards.table);
        append_memory_section(
            &mut sections,
            SectionId::FilterTable,
            &table,
            out,
            &mut offset,
        )
        .map_err(io)?;
        let data_crc = self.shards.data.crc.clone().finalize();
        let data_len = copy_scratch(&mut self.shards.data, out).map_err(io)?;
        append_scratch_section(
            &mut sections,
            SectionId::FilterData,
            data_crc,
            data_len,
            &mut offset,
        );
        out.pad_to_8().map_err(io)?;
        let sources = encode_sources(&self.sources);
        sections.push(Section {
            id: SectionId::Sources,
            offset,
            len: sources.len() as u64,
            crc: crc32fast::hash(&sources),
        });
        out.write(&sources).map_err(io)?;
        let file_len = offset + sources.len() as u64;

        let table = encode_sections(&sections);
        let header = Header {
            version: FORMAT_VERSION,
            kind: self.kind,
            filter: self.filter,
            shard_bits: if self.filter == FilterKind::None {
                0
            } else {
                self.shard_bits
            },
            hash_count: self.records_written,
            count_sum: self.count_sum,
            file_len,
            table_crc: crc32fast::hash(&table),
        };
        out.out.flush().map_err(io)?;
        let file = out.out.get_mut();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut front = Vec::with_capacity(records_offset() as usize);
        front.extend_from_slice(&header.encode());
        front.extend_from_slice(&table);
        front.extend_from_slice(&buckets_bytes);
        front.resize(align8(front.len() as u64) as usize, 0);
        front.extend_from_slice(&overflow_dir_bytes);
        front.resize(align8(front.len() as u64) as usize, 0);
        file.write_all(&front).map_err(io)?;
        file.set_len(file_len).map_err(io)?;
        file.sync_all().map_err(io)?;

        let temp = self.temp.take().expect("finish runs once");
        temp.persist(&self.target)
            .map_err(|e| Error::io(&self.target, "cannot rename the finished index to", e.error))?;
        if let Some(dir) = self.target.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(IndexSummary {
            kind: self.kind,
            hashes: self.records_written,
            count_sum: self.count_sum,
            file_len,
        })
    }
}

/// Copies a scratch file's contents to `out` (not through its CRC, which the caller takes).
fn copy_scratch(scratch: &mut CrcWriter, out: &mut CrcWriter) -> std::io::Result<u64> {
    scratch.out.flush()?;
    let file = scratch.out.get_mut();
    file.seek(SeekFrom::Start(0))?;
    let mut reader = std::io::Read::take(&mut *file, scratch.len);
    let copied = std::io::copy(&mut reader, &mut out.out)?;
    if copied != scratch.len {
        return Err(std::io::Error::other("a temporary file came back short"));
    }
    out.len += copied;
    Ok(copied)
}

fn append_memory_section(
    sections: &mut Vec<Section>,
    id: SectionId,
    bytes: &[u8],
    out: &mut CrcWriter,
    offset: &mut u64,
) -> std::io::Result<()> {
    sections.push(Section {
        id,
        offset: *offset,
        len: bytes.len() as u64,
        crc: crc32fast::hash(bytes),
    });
    out.write(bytes)?;
    out.pad_to_8()?;
    *offset = align8(*offset + bytes.len() as u64);
    Ok(())
}

fn append_scratch_section(
    sections: &mut Vec<Section>,
    id: SectionId,
    crc: u32,
    len: u64,
    offset: &mut u64,
) {
    sections.push(Section {
        id,
        offset: *offset,
        len,
        crc,
    });
    *offset = align8(*offset + len);
}

/// What a finished build wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSummary {
    /// Hash kind.
    pub kind: HashKind,
    /// Distinct hashes.
    pub hashes: u64,
    /// Sum of counts.
    pub count_sum: u128,
    /// Size of the index file.
    pub file_len: u64,
}

fn records_offset() -> u64 {
    let dir = DIRECTORY_LEN as u64;
    align8(align8(SECTIONS_START as u64 + dir) + dir)
}

fn encode_sources(sources: &[SourceInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(sources.len() as u32).to_le_bytes());
    for s in sources {
        out.extend_from_slice(&(s.name.len() as u32).to_le_bytes());
        out.extend_from_slice(s.name.as_bytes());
        out.extend_from_slice(&s.size.to_le_bytes());
        out.extend_from_slice(&s.lines.to_le_bytes());
        out.extend_from_slice(&s.modified.to_le_bytes());
    }
    out
}

/// Decodes the sources section.
pub fn decode_sources(bytes: &[u8]) -> Option<Vec<SourceInfo>> {
    let count = read_u32(bytes, 0)? as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = read_u32(bytes, at)? as usize;
        at += 4;
        let name = std::str::from_utf8(bytes.get(at..at.checked_add(len)?)?).ok()?;
        at += len;
        out.push(SourceInfo {
            name: name.to_string(),
            size: read_u64(bytes, at)?,
            lines: read_u64(bytes, at + 8)?,
            modified: read_u64(bytes, at + 16)?,
        });
        at += 24;
    }
    (at == bytes.len()).then_some(out)
}

/// The hash bytes a record stands for, given its bucket.
#[inline]
pub fn record_hash(bucket: u32, record: &[u8]) -> HashBytes {
    let mut h = [0u8; 20];
    h[0] = (bucket >> 12) as u8;
    h[1] = (bucket >> 4) as u8;
    h[2] = ((bucket as u8 & 0x0F) << 4) | (record[0] & 0x0F);
    h[3..3 + record.len() - 1].copy_from_slice(&record[1..]);
    h
}
