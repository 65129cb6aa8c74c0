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
use crate::key::KeyType;
use crate::partition::PrefixRange;
use crate::progress::BuildProgress;
use crate::sys::MappedFile;
use rayon::prelude::*;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use crate::format::{decode_sources, record_hash, SourceInfo};

/// Pushing an entry that sorts before the previous one.
#[derive(Debug)]
pub struct OutOfOrder;

/// A file being written with a running CRC and length. Bytes gather in a buffer and go to
/// the file and the CRC in runs that end on 1 MiB boundaries of the file: CRC-32 with
/// carry-less multiplication is many times faster on long runs than on one 18-byte record at
/// a time, and aligned runs let the page cache hold the file in large pages. (2 MiB runs would
/// get 2 MiB pages, which readers map with one TLB entry each, but were slower to write: see
/// the README's design notes.)
struct CrcWriter {
    file: File,
    /// The file offset of the first byte written through this writer.
    base: u64,
    /// For the index itself: the offset up to which writing back to disk has been started, so
    /// that the final sync has little left to do.
    writeback: Option<u64>,
    buf: Vec<u8>,
    /// How many bytes `buf` may hold before it reaches the file's next `WRITE_CHUNK` boundary.
    limit: usize,
    /// CRC of the bytes already in the file (not those in `buf`).
    crc: crc32fast::Hasher,
    /// Bytes written, counting those still in `buf`.
    len: u64,
}

const WRITE_CHUNK: usize = 1 << 20;

impl CrcWriter {
    /// A writer for a scratch file, from its start.
    fn new(file: File) -> CrcWriter {
        CrcWriter::at(file, 0, false)
    }

    /// A writer whose first byte goes at file offset `offset`. With `writeback` (for the index
    /// itself) it starts writing the data out to disk every 32 MB instead of leaving it all to
    /// the sync at the end.
    fn at(file: File, offset: u64, writeback: bool) -> CrcWriter {
        CrcWriter {
            file,
            base: offset,
            writeback: writeback.then_some(offset),
            buf: Vec::with_capacity(WRITE_CHUNK),
            limit: WRITE_CHUNK - (offset % WRITE_CHUNK as u64) as usize,
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while self.buf.len() + bytes.len() >= self.limit {
            let (now, rest) = bytes.split_at(self.limit - self.buf.len());
            self.buf.extend_from_slice(now);
            self.len += now.len() as u64;
            self.flush()?;
            bytes = rest;
        }
        self.buf.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Appends a record of `N` bytes (a constant, so that it compiles to a few moves).
    #[inline(always)]
    fn write_record<const N: usize>(&mut self, hash: &HashBytes, code: u8) -> std::io::Result<()> {
        let mut record = [0u8; N];
        encode_record(hash, code, &mut record);
        if self.buf.len() + N < self.limit {
            self.buf.extend_from_slice(&record);
            self.len += N as u64;
            Ok(())
        } else {
            self.write(&record)
        }
    }

    /// Writes out the buffer.
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.crc.update(&self.buf);
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        let end = self.base + self.len;
        self.limit = WRITE_CHUNK - (end % WRITE_CHUNK as u64) as usize;
        if let Some(started) = &mut self.writeback {
            const STEP: u64 = 32 << 20;
            if end - *started >= STEP {
                crate::sys::start_writeback(&self.file, *started..end);
                *started = end;
            }
        }
        Ok(())
    }

    /// The CRC of everything written so far.
    fn crc(&mut self) -> std::io::Result<u32> {
        self.flush()?;
        Ok(self.crc.clone().finalize())
    }

    fn pad_to_8(&mut self) -> std::io::Result<()> {
        let pad = (align8(self.len) - self.len) as usize;
        self.write(&[0u8; 8][..pad])
    }
}

/// The folder of `target` (`.` for a bare file name).
fn folder_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates the temporary file in which `target` is written: `.NAME.RANDOM.leakdex-tmp` in the
/// same folder (so that the final rename is atomic), readable by all like any file the user
/// creates, and locked for as long as it is open so that a later
/// [`crate::sys::sweep_temporaries`] knows it is in use. Dropping it unfinished removes it;
/// [`persist_beside`] puts it in place.
pub fn temp_file_beside(target: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = folder_of(target);
    let file_name = target
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", target.display())))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(file_name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(crate::sys::TEMP_FILE_SUFFIX);
    // An index holds no secrets (it is built from a published dump): readable by all, like
    // any file the user creates, rather than tempfile's private 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let temp = builder
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, "cannot create a temporary file in", e))?;
    crate::sys::lock_own(temp.as_file()).map_err(|e| Error::io(temp.path(), "cannot lock", e))?;
    Ok(temp)
}

/// Renames a finished temporary file from [`temp_file_beside`] to `target` and syncs the
/// folder, so that the new name survives a crash. The caller has synced the file.
pub fn persist_beside(temp: tempfile::NamedTempFile, target: &Path) -> Result<()> {
    temp.persist(target)
        .map_err(|e| Error::io(target, "cannot rename the finished file to", e.error))?;
    if let Ok(d) = File::open(folder_of(target)) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes an index from entries pushed in hash order.
pub struct IndexWriter {
    kind: HashKind,
    key: KeyType,
    filter: FilterKind,
    store: StoreForm,
    /// Bytes per record of the store form.
    record_len: usize,
    /// For a filter-only index: the filter being built as the keys stream by.
    streamed: Option<StreamedFilter>,
    target: PathBuf,
    temp: Option<tempfile::NamedTempFile>,
    temp_path: PathBuf,
    records: CrcWriter,
    overflow: CrcWriter,
    huge: Vec<u8>,
    bucket_starts: Vec<u64>,
    overflow_starts: Vec<u64>,
    next_bucket: usize,
    records_written: u64,
    overflow_written: u64,
    position_in_bucket: u64,
    pending_entry: Option<Entry>,
    count_sum: u128,
    sources: Vec<SourceInfo>,
    partition: PrefixRange,
}

impl IndexWriter {
    /// Starts an index at `target`, writing under a temporary name in the same folder.
    pub fn create(target: &Path, kind: HashKind, filter: FilterKind) -> Result<IndexWriter> {
        let dir = folder_of(target);
        let temp = temp_file_beside(target)?;
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
        Ok(IndexWriter {
            kind,
            key: KeyType::Password,
            filter,
            store: StoreForm::Full,
            record_len: StoreForm::Full.record_len(kind),
            streamed: None,
            target: target.to_path_buf(),
            temp: Some(temp),
            temp_path,
            records: CrcWriter::at(file, records_offset(), true),
            overflow: scratch("cannot create a temporary overflow file in")?,
            huge: Vec::new(),
            bucket_starts: vec![0; BUCKETS + 1],
            overflow_starts: vec![0; BUCKETS + 1],
            next_bucket: 0,
            records_written: 0,
            overflow_written: 0,
            position_in_bucket: 0,
            pending_entry: None,
            count_sum: 0,
            sources: Vec::new(),
            partition: PrefixRange::WHOLE,
        })
    }

    /// The hash kind being written.
    pub fn kind(&self) -> HashKind {
        self.kind
    }

    /// Records what the hashes are hashes of (passwords unless set). Logins and pairs are
    /// SHA-1 only.
    pub fn set_key(&mut self, key: KeyType) -> Result<()> {
        if !key.allows(self.kind) {
            return Err(Error::Invalid(format!(
                "a {key} index holds SHA-1 hashes only, not {}",
                self.kind.display_name()
            )));
        }
        self.key = key;
        Ok(())
    }

    /// What the hashes are hashes of.
    pub fn key(&self) -> KeyType {
        self.key
    }

    /// Sets what the index keeps of each hash (full unless set), before the first entry.
    /// `memory`: for a filter-only index, the bytes of keys it may hold before it commits to
    /// 4,096 filter shards and builds them as the keys stream by (past that point the entries
    /// can no longer be given back by [`IndexWriter::into_entries`]).
    pub fn set_store(&mut self, store: StoreForm, memory: u64) -> Result<()> {
        if self.records_written > 0 || self.pending_entry.is_some() {
            return Err(Error::Invalid(
                "internal error: the store form is set after entries".into(),
            ));
        }
        if store == StoreForm::None && self.filter == FilterKind::None {
            return Err(Error::Invalid(
                "an index without a store needs a filter: --store none cannot go with \
                 --filter none"
                    .into(),
            ));
        }
        self.store = store;
        self.record_len = store.record_len(self.kind);
        if store == StoreForm::None {
            let io = |e| Error::io(&self.temp_path, "cannot write", e);
            let mut file = self.records.file.try_clone().map_err(io)?;
            file.seek(SeekFrom::Start(SECTIONS_START as u64))
                .map_err(io)?;
            self.records = CrcWriter::at(file, SECTIONS_START as u64, true);
            let limit = (memory / 16).clamp(1 << 16, usize::MAX as u64 / 2) as usize;
            self.streamed = Some(StreamedFilter::new(
                self.filter,
                limit,
                self.temp_path.clone(),
            ));
        } else {
            self.streamed = None;
        }
        Ok(())
    }

    /// What the index keeps of each hash.
    pub fn store(&self) -> StoreForm {
        self.store
    }

    /// Makes the index a partition that holds only the prefixes of `partition` (every prefix
    /// unless set). Entries outside it are refused by [`IndexWriter::push`].
    pub fn set_partition(&mut self, partition: PrefixRange) {
        self.partition = partition;
    }

    /// The range of prefixes the index holds.
    pub fn partition(&self) -> PrefixRange {
        self.partition
    }

    /// Records an input in the index's list of sources.
    pub fn add_source(&mut self, source: SourceInfo) {
        self.sources.push(source);
    }

    /// Adds an entry. Entries must come in non-decreasing hash order; equal hashes are
    /// merged by summing their counts. An entry out of order is refused with `Ok(Err(_))`.
    /// For compact and filter-only indexes, hashes that agree in their first 64 bits count as
    /// equal.
    pub fn push(&mut self, mut entry: Entry) -> Result<std::result::Result<(), OutOfOrder>> {
        if !self.partition.contains(prefix_of(&entry.hash)) {
            return Err(Error::Invalid(format!(
                "internal error: a hash outside the partition {} reached its index",
                self.partition
            )));
        }
        if self.store != StoreForm::Full {
            entry.hash = truncate_hash(&entry.hash);
        }
        if let Some(pending) = &mut self.pending_entry {
            let order = crate::hash::compare_hashes(&entry.hash, &pending.hash);
            if order.is_eq() {
                pending.count = pending.count.checked_add(entry.count).ok_or_else(|| {
                    Error::Invalid(format!(
                        "the counts of hash {} add up to more than 2^64 - 1",
                        hash_to_hex(&entry.hash, self.kind)
                    ))
                })?;
                return Ok(Ok(()));
            }
            if order.is_lt() {
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
        if let Some(streamed) = &mut self.streamed {
            streamed.push(filter_key(&entry.hash), entry.count, &mut self.records)?;
            self.records_written += 1;
            self.count_sum += entry.count as u128;
            return Ok(());
        }
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
        const SHA1_RECORD: usize = record_len(HashKind::Sha1);
        const NTLM_RECORD: usize = record_len(HashKind::Ntlm);
        match (self.store, self.kind) {
            (StoreForm::Compact, _) => self
                .records
                .write_record::<COMPACT_RECORD_LEN>(&entry.hash, code),
            (_, HashKind::Sha1) => self.records.write_record::<SHA1_RECORD>(&entry.hash, code),
            (_, HashKind::Ntlm) => self.records.write_record::<NTLM_RECORD>(&entry.hash, code),
        }
        .map_err(|e| Error::io(&self.temp_path, "cannot write", e))?;
        self.records_written += 1;
        self.position_in_bucket += 1;
        self.count_sum += entry.count as u128;

        Ok(())
    }

    fn write_overflow(&mut self, bucket: usize, count: u64) -> Result<()> {
        let mut e = [0u8; OVERFLOW_ENTRY_LEN];
        let e = &mut e[..self.store.overflow_entry_len()];
        let huge = encode_overflow_entry(self.store, self.position_in_bucket, count, e)
            .ok_or_else(|| {
                Error::Invalid(if self.store == StoreForm::Compact {
                    format!(
                        "range {bucket:05X} holds more than 65,536 hashes, more than a compact \
                         store allows (about 6e10 hashes in all); build --store full or --store \
                         none"
                    )
                } else {
                    format!(
                        "range {bucket:05X} holds more than 2^32 hashes, more than the format \
                         allows"
                    )
                })
            })?;
        if huge {
            self.huge
                .extend_from_slice(&self.overflow_written.to_le_bytes());
            self.huge.extend_from_slice(&count.to_le_bytes());
        }
        self.overflow
            .write(e)
            .map_err(|err| Error::io(&self.temp_path, "cannot write", err))?;
        self.overflow_written += 1;
        Ok(())
    }

    /// Gives back every entry written so far, in order, and removes the unfinished file: for a
    /// build that finds its input out of order after streaming part of it. The entries of a
    /// compact or filter-only index come back cut to their first 64 bits; a filter-only index
    /// that has started building its filter cannot give them back and says so.
    pub fn into_entries(mut self, sink: &mut dyn FnMut(Entry) -> Result<()>) -> Result<()> {
        if let Some(streamed) = self.streamed.take() {
            let held = streamed.into_held().ok_or_else(|| {
                Error::Invalid(format!(
                    "the input is out of order after {} hashes. A filter-only index (--store \
                     none) of more hashes than its memory holds is built as they stream by, \
                     which needs input sorted by hash: sort it, give the build more --memory, \
                     or build --store compact and `leakdex shrink` it",
                    self.records_written
                ))
            })?;
            for (key, count) in held {
                let mut hash = [0u8; 20];
                hash[..8].copy_from_slice(&key.to_be_bytes());
                sink(Entry { hash, count })?;
            }
            if let Some(last) = self.pending_entry.take() {
                sink(last)?;
            }
            return Ok(());
        }
        let temp_path = self.temp_path.clone();
        let io = |e| Error::io(&temp_path, "cannot read back", e);
        self.records.flush().map_err(io)?;
        self.overflow.flush().map_err(io)?;
        let map = MappedFile::from_file(&self.records.file, &temp_path)?;
        let overflow = MappedFile::from_file(&self.overflow.file, &temp_path)?;
        let len = self.record_len;
        let start = records_offset() as usize;
        let records = if self.records_written == 0 {
            &[][..]
        } else {
            map.bytes()
                .get(start..start + self.records_written as usize * len)
                .ok_or_else(|| io(std::io::Error::other("short file")))?
        };
        let huge: Vec<(u64, u64)> = self
            .huge
            .chunks_exact(16)
            .map(|c| (read_u64(c, 0).unwrap_or(0), read_u64(c, 8).unwrap_or(0)))
            .collect();
        let mut next_overflow = 0u64;
        for bucket in 0..self.next_bucket {
            let first = self.bucket_starts[bucket] as usize;
            let last = if bucket + 1 < self.next_bucket {
                self.bucket_starts[bucket + 1] as usize
            } else {
                self.records_written as usize
            };
            for rec in records[first * len..last * len].chunks_exact(len) {
                let hash = record_hash(bucket as u32, rec);
                let code = rec[0] >> 4;
                let count = if code < OVERFLOW_CODE {
                    code as u64
                } else {
                    let (_, small) =
                        decode_overflow_entry(self.store, overflow.bytes(), next_overflow)
                            .ok_or_else(|| io(std::io::Error::other("short overflow file")))?;
                    let count = match small {
                        Some(c) => c,
                        None => huge
                            .iter()
                            .find(|(i, _)| *i == next_overflow)
                            .map(|(_, c)| *c)
                            .ok_or_else(|| io(std::io::Error::other("lost a huge count")))?,
                    };
                    next_overflow += 1;
                    count
                };
                sink(Entry { hash, count })?;
            }
        }
        if let Some(last) = self.pending_entry.take() {
            sink(last)?;
        }
        Ok(())
    }

    /// Builds the filter, writes the remaining parts, syncs the file and renames it into
    /// place.
    pub fn finish(self, progress: &dyn BuildProgress) -> Result<IndexSummary> {
        self.finish_with_filter(progress, None)
    }

    /// As [`IndexWriter::finish`], but with `reuse` takes the filter as it is from another
    /// index of the same filter kind whose filter keys are exactly this index's (format
    /// version 3), rather than building it. A filter-only index then needs no entries at all.
    pub fn finish_with_filter(
        mut self,
        progress: &dyn BuildProgress,
        reuse: Option<ReusedFilter<'_>>,
    ) -> Result<IndexSummary> {
        if let Some(last) = self.pending_entry.take() {
            self.emit(last)?;
        }
        for b in self.next_bucket..=BUCKETS {
            self.bucket_starts[b] = self.records_written;
            self.overflow_starts[b] = self.overflow_written;
        }
        let temp_path = self.temp_path.clone();
        let io = |e| Error::io(&temp_path, "cannot write", e);
        if let Some(r) = &reuse {
            if r.kind != self.filter {
                return Err(Error::Invalid(
                    "internal error: a reused filter of another kind".into(),
                ));
            }
        }
        let build_error = |e| match e {
            FilterBuildError::Io(e) => io(e),
            FilterBuildError::Build(m) => Error::Invalid(m),
        };

        let mut sections = Vec::with_capacity(SectionId::ALL.len());
        let mut offset = SECTIONS_START as u64;
        let (front_dirs, shard_bits, table, data_crc, data_start, hashes) = if self.store
            == StoreForm::None
        {
            // No store: five empty sections, then the filter from the start of the data.
            for id in &SectionId::ALL[..5] {
                sections.push(Section {
                    id: *id,
                    offset,
                    len: 0,
                    crc: 0,
                });
            }
            let streamed = self.streamed.take().expect("a filter-only writer streams");
            let (shard_bits, table, data_crc, hashes) = match reuse {
                Some(r) => {
                    let crc = copy_filter(r.data, &mut self.records).map_err(io)?;
                    (r.shard_bits, r.table.to_vec(), crc, r.keys)
                }
                None => {
                    let hashes = self.records_written;
                    let (bits, table, crc) = streamed
                        .finish(&mut self.records, progress)
                        .map_err(build_error)?;
                    (bits, table, crc, hashes)
                }
            };
            (Vec::new(), shard_bits, table, data_crc, 0u64, hashes)
        } else {
            let too_big = |group: usize| {
                Error::Invalid(format!(
                    "more than 2^32 hashes share the prefixes {:03X}xx, more than the format \
                     allows",
                    group
                ))
            };
            let buckets_bytes = encode_directory(&self.bucket_starts).map_err(too_big)?;
            let overflow_dir_bytes = encode_directory(&self.overflow_starts).map_err(too_big)?;
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
                crc: out.crc().map_err(io)?,
            });
            out.pad_to_8().map_err(io)?;
            offset += out.len;

            let overflow_crc = self.overflow.crc().map_err(io)?;
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

            let data_start = out.len;
            let (shard_bits, table, data_crc) = match reuse {
                Some(r) => {
                    let crc = copy_filter(r.data, out).map_err(io)?;
                    (r.shard_bits, r.table.to_vec(), crc)
                }
                None => {
                    // The filter, built from the records just written, now that their number
                    // is known.
                    let shard_bits = if self.filter == FilterKind::None {
                        0
                    } else {
                        // A partition's keys fall in the shards of its prefixes only: as
                        // many shards per key as the whole would have, so that they are as
                        // full (and as many build in parallel) as in a whole index.
                        let scale = (BUCKETS as u64) / u64::from(self.partition.len());
                        shard_bits_for(self.records_written.saturating_mul(scale))
                    };
                    out.flush().map_err(io)?;
                    let map = MappedFile::from_file(&out.file, &temp_path)?;
                    let start = records_offset() as usize;
                    let end = start + self.records_written as usize * self.record_len;
                    let records = if start == end {
                        Some(&[][..])
                    } else {
                        map.bytes().get(start..end)
                    };
                    let records = records.ok_or_else(|| {
                        Error::io(
                            &temp_path,
                            "cannot read back",
                            std::io::Error::other("short file"),
                        )
                    })?;
                    let record_len = self.record_len;
                    let starts = &self.bucket_starts;
                    let buckets_per_shard = BUCKETS >> shard_bits;
                    let keys_of = |shard: usize| {
                        let first = shard * buckets_per_shard;
                        let last = first + buckets_per_shard;
                        let mut keys = Vec::with_capacity((starts[last] - starts[first]) as usize);
                        for bucket in first..last {
                            let (a, b) = (starts[bucket] as usize, starts[bucket + 1] as usize);
                            for rec in
                                records[a * record_len..b * record_len].chunks_exact(record_len)
                            {
                                keys.push(filter_key(&record_hash(bucket as u32, rec)));
                            }
                        }
                        keys
                    };
                    let release = |first: usize, end: usize| {
                        let lo = starts[first * buckets_per_shard] as usize * record_len;
                        let hi = starts[end * buckets_per_shard] as usize * record_len;
                        map.release(lo + start..hi + start)
                    };
                    progress.phase("building filter", records.len() as u64);
                    let (table, crc) = build_filter(
                        self.filter,
                        shard_bits,
                        &keys_of,
                        &|shard: usize| {
                            let (a, b) = (
                                starts[shard * buckets_per_shard],
                                starts[(shard + 1) * buckets_per_shard],
                            );
                            (b - a) * record_len as u64
                        },
                        out,
                        progress,
                        &release,
                    )
                    .map_err(build_error)?;
                    (shard_bits, table, crc)
                }
            };
            let mut front_dirs = Vec::new();
            front_dirs.extend_from_slice(&buckets_bytes);
            front_dirs.resize(align8(front_dirs.len() as u64) as usize, 0);
            front_dirs.extend_from_slice(&overflow_dir_bytes);
            front_dirs.resize(align8(front_dirs.len() as u64) as usize, 0);
            (
                front_dirs,
                shard_bits,
                table,
                data_crc,
                data_start,
                self.records_written,
            )
        };
        let out = &mut self.records;
        let data_len = out.len - data_start;
        append_scratch_section(
            &mut sections,
            SectionId::FilterData,
            data_crc,
            data_len,
            &mut offset,
        );
        out.pad_to_8().map_err(io)?;
        append_memory_section(
            &mut sections,
            SectionId::FilterTable,
            &table,
            out,
            &mut offset,
        )
        .map_err(io)?;
        let sources = encode_sources(&self.sources);
        sections.push(Section {
            id: SectionId::Sources,
            offset,
            len: sources.len() as u64,
            crc: crc32fast::hash(&sources),
        });
        out.write(&sources).map_err(io)?;
        out.pad_to_8().map_err(io)?;
        offset = align8(offset + sources.len() as u64);
        let partition = self.partition.encode();
        sections.push(Section {
            id: SectionId::Partition,
            offset,
            len: partition.len() as u64,
            crc: crc32fast::hash(&partition),
        });
        out.write(&partition).map_err(io)?;
        let file_len = offset + partition.len() as u64;
        let count_sum = match reuse {
            Some(r) if self.store == StoreForm::None => r.count_sum,
            _ => self.count_sum,
        };

        let table = encode_sections(&sections);
        let header = Header {
            version: FORMAT_VERSION,
            kind: self.kind,
            key: self.key,
            normalisation: self.key.normalisation(),
            store: self.store,
            filter: self.filter,
            shard_bits,
            hash_count: hashes,
            count_sum,
            file_len,
            table_crc: crc32fast::hash(&table),
        };
        out.flush().map_err(io)?;
        let file = &mut out.file;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut front = Vec::with_capacity(SECTIONS_START + front_dirs.len());
        front.extend_from_slice(&header.encode());
        front.extend_from_slice(&table);
        front.extend_from_slice(&front_dirs);
        file.write_all(&front).map_err(io)?;
        file.set_len(file_len).map_err(io)?;
        file.sync_all().map_err(io)?;

        let temp = self.temp.take().expect("finish runs once");
        persist_beside(temp, &self.target)?;
        Ok(IndexSummary {
            kind: self.kind,
            store: self.store,
            hashes,
            count_sum,
            file_len,
            partition: self.partition,
        })
    }
}

/// A filter taken whole from another index by [`IndexWriter::finish_with_filter`].
#[derive(Clone, Copy, Debug)]
pub struct ReusedFilter<'a> {
    /// Its kind.
    pub kind: FilterKind,
    /// Its shard bits.
    pub shard_bits: u8,
    /// Its `FILTER_TABLE` section.
    pub table: &'a [u8],
    /// Its `FILTER_DATA` section.
    pub data: &'a [u8],
    /// Its keys (the hashes of a filter-only index made with it).
    pub keys: u64,
    /// The count sum of the index it comes from (that of a filter-only index made with it).
    pub count_sum: u128,
}

/// Appends a reused filter's fingerprints; returns their CRC.
fn copy_filter(data: &[u8], out: &mut CrcWriter) -> std::io::Result<u32> {
    for chunk in data.chunks(WRITE_CHUNK) {
        out.write(chunk)?;
    }
    Ok(crc32fast::hash(data))
}

enum FilterBuildError {
    Io(std::io::Error),
    Build(String),
}

/// Builds each shard's filter from its keys (`keys_of(shard)`, in order), a batch of shards in
/// parallel, and appends the fingerprints to `out`. `weight(shard)` is the progress it makes;
/// `release(first, end)` is told when shards `first..end` are done. Returns the filter table
/// and the CRC of the fingerprints.
fn build_filter(
    kind: FilterKind,
    shard_bits: u8,
    keys_of: &(dyn Fn(usize) -> Vec<u64> + Sync),
    weight: &(dyn Fn(usize) -> u64 + Sync),
    out: &mut CrcWriter,
    progress: &dyn BuildProgress,
    release: &dyn Fn(usize, usize),
) -> std::result::Result<(Vec<u8>, u32), FilterBuildError> {
    let mut table = Vec::new();
    let mut crc = crc32fast::Hasher::new();
    if kind == FilterKind::None {
        return Ok((table, crc.finalize()));
    }
    let shards = 1usize << shard_bits;
    let shard_ids: Vec<usize> = (0..shards).collect();
    let data_start = out.len;
    for batch in shard_ids.chunks(rayon::current_num_threads().max(1)) {
        let built: Vec<std::result::Result<BuiltShard, String>> = batch
            .par_iter()
            .map(|&shard| {
                let mut keys = keys_of(shard);
                let result = build_shard(kind, &mut keys);
                progress.advance(weight(shard), 0);
                result
            })
            .collect();
        if let (Some(&first), Some(&last)) = (batch.first(), batch.last()) {
            release(first, last + 1);
        }
        for (&shard, result) in batch.iter().zip(built) {
            let shard_filter = result.map_err(|e| {
                FilterBuildError::Build(format!("building the filter of shard {shard} failed: {e}"))
            })?;
            append_shard(&shard_filter, out, data_start, &mut table, &mut crc)
                .map_err(FilterBuildError::Io)?;
        }
    }
    Ok((table, crc.finalize()))
}

/// Appends one built shard's fingerprints (padded to 8 bytes) and its table entry.
fn append_shard(
    shard: &BuiltShard,
    out: &mut CrcWriter,
    data_start: u64,
    table: &mut Vec<u8>,
    crc: &mut crc32fast::Hasher,
) -> std::io::Result<()> {
    encode_shard_entry(shard, out.len - data_start, table);
    crc.update(&shard.bytes);
    out.write(&shard.bytes)?;
    let pad = (align8(out.len - data_start) - (out.len - data_start)) as usize;
    crc.update(&[0u8; 8][..pad]);
    out.write(&[0u8; 8][..pad])
}

/// The filter of a filter-only index. Keys (with their counts, so that they can be given
/// back) are held until the stream ends, which then picks the shard bits as a store's build
/// would; a stream longer than the limit commits to 4,096 shards and from then on hands each
/// shard, as soon as the sorted keys have passed it, to a thread that builds it and appends
/// its fingerprints to the index.
struct StreamedFilter {
    kind: FilterKind,
    /// The index file being written, for errors.
    path: PathBuf,
    held: Vec<(u64, u64)>,
    limit: usize,
    committed: Option<Committed>,
}

type ShardJob = (usize, Vec<u64>);
type BuiltFilter = (CrcWriter, Vec<u8>, u32);

struct Committed {
    /// The index file being written, for errors.
    path: PathBuf,
    /// The shard whose keys are arriving.
    shard: usize,
    keys: Vec<u64>,
    jobs: Option<std::sync::mpsc::SyncSender<ShardJob>>,
    worker: Option<std::thread::JoinHandle<std::result::Result<BuiltFilter, FilterBuildError>>>,
}

impl StreamedFilter {
    fn new(kind: FilterKind, limit: usize, path: PathBuf) -> StreamedFilter {
        StreamedFilter {
            kind,
            path,
            held: Vec::new(),
            limit,
            committed: None,
        }
    }

    /// The held keys and counts, unless the filter has begun to be built.
    fn into_held(self) -> Option<Vec<(u64, u64)>> {
        self.committed.is_none().then_some(self.held)
    }

    fn push(&mut self, key: u64, count: u64, out: &mut CrcWriter) -> Result<()> {
        match &mut self.committed {
            Some(c) => c.push(key),
            None => {
                self.held.push((key, count));
                if self.held.len() >= self.limit {
                    self.commit(out)?;
                }
                Ok(())
            }
        }
    }

    /// Starts the building thread, which takes over `out`, and hands it the held keys.
    fn commit(&mut self, out: &mut CrcWriter) -> Result<()> {
        let file = out
            .file
            .try_clone()
            .map_err(|e| Error::io(&self.path, "cannot write", e))?;
        let taken = std::mem::replace(out, CrcWriter::new(file));
        let (jobs, receive) = std::sync::mpsc::sync_channel::<ShardJob>(1);
        let kind = self.kind;
        let worker = std::thread::Builder::new()
            .name("leakdex-filter".into())
            .spawn(move || {
                let mut out = taken;
                let mut table = Vec::with_capacity((1 << MAX_SHARD_BITS) * SHARD_ENTRY_LEN);
                let mut crc = crc32fast::Hasher::new();
                let mut next = 0usize;
                let empty = BuiltShard::default();
                for (shard, mut keys) in receive {
                    while next < shard {
                        append_shard(&empty, &mut out, 0, &mut table, &mut crc)
                            .map_err(FilterBuildError::Io)?;
                        next += 1;
                    }
                    let built = build_shard(kind, &mut keys).map_err(|e| {
                        FilterBuildError::Build(format!(
                            "building the filter of shard {shard} failed: {e}"
                        ))
                    })?;
                    drop(keys);
                    append_shard(&built, &mut out, 0, &mut table, &mut crc)
                        .map_err(FilterBuildError::Io)?;
                    next = shard + 1;
                }
                while next < 1 << MAX_SHARD_BITS {
                    append_shard(&empty, &mut out, 0, &mut table, &mut crc)
                        .map_err(FilterBuildError::Io)?;
                    next += 1;
                }
                Ok((out, table, crc.finalize()))
            })
            .map_err(|e| Error::Invalid(format!("cannot start the filter thread: {e}")))?;
        let mut committed = Committed {
            path: self.path.clone(),
            shard: 0,
            keys: Vec::new(),
            jobs: Some(jobs),
            worker: Some(worker),
        };
        for (key, _) in std::mem::take(&mut self.held) {
            committed.push(key)?;
        }
        self.committed = Some(committed);
        Ok(())
    }

    /// Builds what is left; returns the shard bits, the table and the CRC of the fingerprints.
    fn finish(
        self,
        out: &mut CrcWriter,
        progress: &dyn BuildProgress,
    ) -> std::result::Result<(u8, Vec<u8>, u32), FilterBuildError> {
        match self.committed {
            Some(mut c) => {
                let (written, table, crc) = c.join()?;
                *out = written;
                Ok((MAX_SHARD_BITS, table, crc))
            }
            None => {
                let held = self.held;
                let shard_bits = shard_bits_for(held.len() as u64);
                let shards = 1usize << shard_bits;
                let shard_of_key = |k: u64| {
                    if shard_bits == 0 {
                        0
                    } else {
                        (k >> (64 - shard_bits)) as usize
                    }
                };
                let mut bounds: Vec<usize> = (0..shards)
                    .map(|shard| held.partition_point(|&(k, _)| shard_of_key(k) < shard))
                    .collect();
                bounds.push(held.len());
                progress.phase("building filter", held.len() as u64 * 8);
                let keys_of = |shard: usize| -> Vec<u64> {
                    held[bounds[shard]..bounds[shard + 1]]
                        .iter()
                        .map(|&(k, _)| k)
                        .collect()
                };
                let weight = |shard: usize| ((bounds[shard + 1] - bounds[shard]) * 8) as u64;
                let (table, crc) = build_filter(
                    self.kind,
                    shard_bits,
                    &keys_of,
                    &weight,
                    out,
                    progress,
                    &|_, _| {},
                )?;
                Ok((shard_bits, table, crc))
            }
        }
    }
}

impl Committed {
    #[inline]
    fn push(&mut self, key: u64) -> Result<()> {
        let shard = (key >> (64 - MAX_SHARD_BITS)) as usize;
        if shard != self.shard {
            self.send()?;
            self.shard = shard;
        }
        self.keys.push(key);
        Ok(())
    }

    /// Hands the current shard's keys to the building thread.
    fn send(&mut self) -> Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let capacity = self.keys.len() + self.keys.len() / 8;
        let keys = std::mem::replace(&mut self.keys, Vec::with_capacity(capacity));
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send((self.shard, keys)).is_ok());
        if !sent {
            // The thread stopped: its error says why.
            return match self.join() {
                Err(FilterBuildError::Io(e)) => Err(Error::io(&self.path, "cannot write", e)),
                Err(FilterBuildError::Build(m)) => Err(Error::Invalid(m)),
                Ok(_) => Err(Error::Invalid(
                    "internal error: the filter thread stopped early".into(),
                )),
            };
        }
        Ok(())
    }

    /// Sends the last shard, waits for the thread and takes back the index file.
    fn join(&mut self) -> std::result::Result<BuiltFilter, FilterBuildError> {
        if self.jobs.is_some() && !self.keys.is_empty() {
            let keys = std::mem::take(&mut self.keys);
            if let Some(jobs) = &self.jobs {
                let _ = jobs.send((self.shard, keys));
            }
        }
        self.jobs = None;
        match self.worker.take().map(|w| w.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(FilterBuildError::Build("the filter thread panicked".into())),
            None => Err(FilterBuildError::Build(
                "internal error: the filter thread is gone".into(),
            )),
        }
    }
}

/// Copies a scratch file's contents to `out` (the caller takes the scratch file's CRC).
fn copy_scratch(scratch: &mut CrcWriter, out: &mut CrcWriter) -> std::io::Result<u64> {
    scratch.flush()?;
    let file = &mut scratch.file;
    file.seek(SeekFrom::Start(0))?;
    let mut chunk = vec![0u8; WRITE_CHUNK];
    let mut left = scratch.len;
    while left > 0 {
        let n = left.min(WRITE_CHUNK as u64) as usize;
        std::io::Read::read_exact(file, &mut chunk[..n]).map_err(|e| {
            std::io::Error::new(e.kind(), format!("a temporary file came back short: {e}"))
        })?;
        out.write(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(scratch.len)
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
    /// What the index keeps of each hash.
    pub store: StoreForm,
    /// Distinct hashes.
    pub hashes: u64,
    /// Sum of counts.
    pub count_sum: u128,
    /// Size of the index file.
    pub file_len: u64,
    /// The prefixes the index holds (all of them unless it is a partition).
    pub partition: PrefixRange,
}

fn records_offset() -> u64 {
    let dir = DIRECTORY_LEN as u64;
    align8(align8(SECTIONS_START as u64 + dir) + dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Pieces of every size, records among them, crossing chunk boundaries from an unaligned
    /// start: the file must hold exactly the bytes written, and the CRC and length match.
    #[test]
    fn crc_writer_keeps_every_byte_across_chunk_boundaries() {
        let base = 12_345u64;
        let mut file = tempfile::tempfile().unwrap();
        file.seek(SeekFrom::Start(base)).unwrap();
        let mut w = CrcWriter::at(file.try_clone().unwrap(), base, true);
        let mut expected = Vec::new();
        let mut x = 7u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        while expected.len() < 3 * WRITE_CHUNK + 1000 {
            match next() % 4 {
                0 => {
                    let mut hash = [0u8; 20];
                    hash.iter_mut().for_each(|b| *b = next() as u8);
                    let code = (next() % 16) as u8;
                    w.write_record::<18>(&hash, code).unwrap();
                    let mut record = [0u8; 18];
                    encode_record(&hash, code, &mut record);
                    expected.extend_from_slice(&record);
                }
                1 => {
                    // Larger than a chunk.
                    let piece: Vec<u8> = (0..WRITE_CHUNK + 3).map(|_| next() as u8).collect();
                    w.write(&piece).unwrap();
                    expected.extend_from_slice(&piece);
                }
                2 => w.flush().unwrap(),
                _ => {
                    let piece: Vec<u8> = (0..next() % 5000).map(|_| next() as u8).collect();
                    w.write(&piece).unwrap();
                    expected.extend_from_slice(&piece);
                }
            }
            assert_eq!(w.len, expected.len() as u64);
        }
        assert_eq!(w.crc().unwrap(), crc32fast::hash(&expected));
        let mut written = Vec::new();
        file.seek(SeekFrom::Start(base)).unwrap();
        file.read_to_end(&mut written).unwrap();
        assert!(
            written == expected,
            "the file differs from what was written"
        );

        // And a scratch copy of it lands whole behind other bytes.
        let mut scratch = CrcWriter::new(tempfile::tempfile().unwrap());
        scratch.write(&expected).unwrap();
        let out_file = tempfile::tempfile().unwrap();
        let mut out = CrcWriter::new(out_file.try_clone().unwrap());
        out.write(b"front").unwrap();
        assert_eq!(
            copy_scratch(&mut scratch, &mut out).unwrap(),
            expected.len() as u64
        );
        out.flush().unwrap();
        let mut copied = Vec::new();
        (&out_file).seek(SeekFrom::Start(0)).unwrap();
        (&out_file).read_to_end(&mut copied).unwrap();
        assert!(copied[..5] == *b"front" && copied[5..] == expected[..]);
    }
}
