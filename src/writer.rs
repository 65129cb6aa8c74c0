//! [`IndexWriter`]: turns a stream of entries sorted by hash into an index file.
//!
//! Records go straight to the output as they arrive; overflow counts and filter fingerprints
//! go to unnamed temporary files beside it and are appended at the end, so memory does not
//! grow with the input. The file is written under a temporary name in the output's folder,
//! synced, and renamed into place by [`IndexWriter::finish`]; dropping an unfinished writer
//! removes it.

use crate::crc::CrcWriter;
use crate::dump::Entry;
use crate::error::{Error, Result};
use crate::filter::{build_filter, copy_filter, FilterBuildError, StreamedFilter};
use crate::format::*;
use crate::hash::{prefix_of, HashBytes, HashKind};
use crate::key::KeyType;
use crate::partition::PrefixRange;
use crate::progress::BuildProgress;
use crate::sys::MappedFile;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub use crate::format::{decode_sources, record_hash, SourceInfo};

/// Pushing an entry that sorts before the previous one.
#[derive(Debug)]
pub struct OutOfOrder;

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
/// [`publish`] puts it in place.
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

/// Publishes a finished temporary file from [`temp_file_beside`]: renames it to `target` and
/// syncs the folder, so that the new name survives a crash. The caller has synced the file.
pub fn publish(temp: tempfile::NamedTempFile, target: &Path) -> Result<()> {
    temp.persist(target)
        .map_err(|e| Error::io(target, "cannot rename the finished file to", e.error))?;
    if let Ok(d) = File::open(folder_of(target)) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The error for counts of one hash that add up past what a count holds. It names the range,
/// not the hash: error messages never name a hash.
fn count_overflow(hash: &HashBytes) -> Error {
    Error::Limit(format!(
        "the counts of one hash of the range {:05X} add up to more than 2^64 - 1, more than an \
         index can hold",
        prefix_of(hash)
    ))
}

/// The order of a hash among those of a store form: by all its bytes, or by its first 64 bits
/// if `TRUNCATE`.
#[inline(always)]
fn order_of<const TRUNCATE: bool>(hash: &HashBytes) -> (u64, u64, u32) {
    let order = crate::hash::hash_order(hash);
    if TRUNCATE {
        (order.0, 0, 0)
    } else {
        order
    }
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
            return Err(Error::Internal(
                "the store form is set after entries".into(),
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
            let mut file = self.records.file().try_clone().map_err(io)?;
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
    pub fn push(&mut self, entry: Entry) -> Result<std::result::Result<(), OutOfOrder>> {
        Ok(match self.push_sorted(std::slice::from_ref(&entry))? {
            1 => Ok(()),
            _ => Err(OutOfOrder),
        })
    }

    /// Adds entries as [`IndexWriter::push`] does, a block at a time: returns how many were
    /// taken. Fewer than `entries.len()` means that `entries[n]` came before the last entry
    /// taken, and that it and those after it were not taken.
    pub fn push_sorted(&mut self, entries: &[Entry]) -> Result<usize> {
        self.run_block(entries, false)
    }

    /// [`IndexWriter::push_sorted`]; with `last` (the end of the input), the hash held back in
    /// case more of it came is written too.
    fn run_block(&mut self, entries: &[Entry], last: bool) -> Result<usize> {
        const SHA1_RECORD: usize = record_len(HashKind::Sha1);
        const NTLM_RECORD: usize = record_len(HashKind::Ntlm);
        // One loop per record form, decided once per block, with the record's length a
        // constant: encoding a record is then a few moves.
        match (self.store, self.kind) {
            (StoreForm::None, _) => self.push_run::<0, true>(entries, last),
            (StoreForm::Compact, _) => self.push_run::<COMPACT_RECORD_LEN, true>(entries, last),
            (_, HashKind::Sha1) => self.push_run::<SHA1_RECORD, false>(entries, last),
            (_, HashKind::Ntlm) => self.push_run::<NTLM_RECORD, false>(entries, last),
        }
    }

    /// [`IndexWriter::run_block`] for records of `N` bytes (0: into the streamed filter), of
    /// hashes cut to 64 bits if `TRUNCATE`. The hash being summed is borrowed from the
    /// block (or from the entry held over from the last block), not copied: copying each
    /// entry twice took 37 of this loop's 113 instructions per entry.
    #[inline(always)]
    fn push_run<const N: usize, const TRUNCATE: bool>(
        &mut self,
        entries: &[Entry],
        last: bool,
    ) -> Result<usize> {
        let held = self.pending_entry.take();
        let mut rest = entries.iter();
        let (mut hash, mut count) = match &held {
            Some(h) => (&h.hash, h.count),
            None => match rest.next() {
                Some(first) => {
                    self.check_partition(&first.hash)?;
                    (&first.hash, first.count)
                }
                None => return Ok(0),
            },
        };
        let mut order = order_of::<TRUNCATE>(hash);
        let mut taken = entries.len() - rest.len();
        let mut outcome = Ok(());
        for e in rest {
            if let Err(err) = self.check_partition(&e.hash) {
                outcome = Err(err);
                break;
            }
            let next = order_of::<TRUNCATE>(&e.hash);
            if next == order {
                match count.checked_add(e.count) {
                    Some(sum) => count = sum,
                    None => {
                        outcome = Err(count_overflow(&e.hash));
                        break;
                    }
                }
            } else if next < order {
                break;
            } else {
                if let Err(err) = self.emit::<N>(hash, count) {
                    outcome = Err(err);
                    break;
                }
                (hash, count, order) = (&e.hash, e.count, next);
            }
            taken += 1;
        }
        if last && outcome.is_ok() {
            self.emit::<N>(hash, count)?;
            return Ok(taken);
        }
        self.pending_entry = Some(Entry {
            hash: if TRUNCATE { truncate_hash(hash) } else { *hash },
            count,
        });
        outcome.map(|()| taken)
    }

    /// An error if `hash` is outside the index's partition.
    #[inline(always)]
    fn check_partition(&self, hash: &HashBytes) -> Result<()> {
        if self.partition.contains(prefix_of(hash)) {
            return Ok(());
        }
        Err(Error::Internal(format!(
            "a hash outside the partition {} reached its index",
            self.partition
        )))
    }

    /// Writes a finished hash and its count: a record of `N` bytes, or into the streamed
    /// filter if `N` is 0. The record reads only the bytes its form keeps (the first 8 for the
    /// compact form and the filter), so a hash not yet cut to 64 bits gives the same record.
    #[inline(always)]
    fn emit<const N: usize>(&mut self, hash: &HashBytes, count: u64) -> Result<()> {
        if N == 0 {
            let streamed = self
                .streamed
                .as_mut()
                .ok_or_else(|| Error::Internal("a filter-only index without its filter".into()))?;
            streamed.push(filter_key(hash), count, &mut self.records)?;
            self.records_written += 1;
            self.count_sum += count as u128;
            return Ok(());
        }
        let bucket = prefix_of(hash) as usize;
        if bucket >= self.next_bucket {
            for b in self.next_bucket..=bucket {
                self.bucket_starts[b] = self.records_written;
                self.overflow_starts[b] = self.overflow_written;
            }
            self.next_bucket = bucket + 1;
            self.position_in_bucket = 0;
        }
        let code = if count < OVERFLOW_CODE as u64 {
            count as u8
        } else {
            self.write_overflow(bucket, count)?;
            OVERFLOW_CODE
        };
        self.records
            .write_record::<N>(hash, code)
            .map_err(|e| Error::io(&self.temp_path, "cannot write", e))?;
        self.records_written += 1;
        self.position_in_bucket += 1;
        self.count_sum += count as u128;
        Ok(())
    }

    fn write_overflow(&mut self, bucket: usize, count: u64) -> Result<()> {
        let mut e = [0u8; OVERFLOW_ENTRY_LEN];
        let e = &mut e[..self.store.overflow_entry_len()];
        let huge = encode_overflow_entry(self.store, self.position_in_bucket, count, e)
            .ok_or_else(|| {
                Error::Limit(if self.store == StoreForm::Compact {
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
            .write_all(e)
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
        let map = MappedFile::from_file(self.records.file(), &temp_path)?;
        let overflow = MappedFile::from_file(self.overflow.file(), &temp_path)?;
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
        self.run_block(&[], true)?;
        for b in self.next_bucket..=BUCKETS {
            self.bucket_starts[b] = self.records_written;
            self.overflow_starts[b] = self.overflow_written;
        }
        if let Some(r) = &reuse {
            if r.kind != self.filter {
                return Err(Error::Internal("a reused filter of another kind".into()));
            }
        }
        let mut layout = Layout::new();
        let (front_dirs, filter) = if self.store == StoreForm::None {
            let filter = self.write_filter_only(&mut layout, progress, reuse)?;
            (Vec::new(), filter)
        } else {
            self.write_store(&mut layout, progress, reuse)?
        };
        let file_len = self.write_tail(&mut layout, &filter)?;
        let count_sum = match reuse {
            Some(r) if self.store == StoreForm::None => r.count_sum,
            _ => self.count_sum,
        };
        let table = encode_sections(&layout.sections);
        let header = Header {
            version: FORMAT_VERSION,
            kind: self.kind,
            key: self.key,
            normalisation: self.key.normalisation(),
            store: self.store,
            filter: self.filter,
            shard_bits: filter.shard_bits,
            hash_count: filter.hashes,
            count_sum,
            file_len,
            table_crc: crc32fast::hash(&table),
        };
        self.write_front(&header, &table, &front_dirs, file_len)?;
        let temp = self.temp.take().expect("finish runs once");
        publish(temp, &self.target)?;
        Ok(IndexSummary {
            kind: self.kind,
            store: self.store,
            hashes: filter.hashes,
            count_sum,
            file_len,
            partition: self.partition,
        })
    }

    /// The sections of a filter-only index: five empty ones where a store's would be, then
    /// the filter (taken from `reuse`, or built as the keys streamed by) from the start of the
    /// data.
    fn write_filter_only(
        &mut self,
        layout: &mut Layout,
        progress: &dyn BuildProgress,
        reuse: Option<ReusedFilter<'_>>,
    ) -> Result<WrittenFilter> {
        for id in &SectionId::ALL[..5] {
            layout.place(*id, 0, 0);
        }
        let temp_path = self.temp_path.clone();
        let streamed = self.streamed.take().expect("a filter-only writer streams");
        let (shard_bits, table, data_crc, hashes) = match reuse {
            Some(r) => {
                let crc =
                    copy_filter(r.data, &mut self.records).map_err(write_error(&temp_path))?;
                (r.shard_bits, r.table.to_vec(), crc, r.keys)
            }
            None => {
                let hashes = self.records_written;
                let (bits, table, crc) = streamed
                    .finish(&mut self.records, progress)
                    .map_err(|e| filter_error(&temp_path, e))?;
                (bits, table, crc, hashes)
            }
        };
        Ok(WrittenFilter {
            shard_bits,
            table,
            data_crc,
            data_start: 0,
            hashes,
        })
    }

    /// The sections of a store (directories, records, overflow and huge counts), then the
    /// filter, taken from `reuse` or built from the records just written. Returns the
    /// directories, which go at the front of the file with the header, and the filter.
    fn write_store(
        &mut self,
        layout: &mut Layout,
        progress: &dyn BuildProgress,
        reuse: Option<ReusedFilter<'_>>,
    ) -> Result<(Vec<u8>, WrittenFilter)> {
        let temp_path = self.temp_path.clone();
        let io = write_error(&temp_path);
        let too_big = |group: usize| {
            Error::Limit(format!(
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
            layout.place(id, bytes.len() as u64, crc32fast::hash(bytes));
        }
        debug_assert_eq!(layout.offset, records_offset());
        let out = &mut self.records;
        let records_crc = out.crc().map_err(io)?;
        layout.place(SectionId::Records, out.len(), records_crc);
        out.pad_to_8().map_err(io)?;

        let overflow_crc = self.overflow.crc().map_err(io)?;
        let overflow_len = self.overflow.copy_to(out).map_err(io)?;
        layout.place(SectionId::Overflow, overflow_len, overflow_crc);
        out.pad_to_8().map_err(io)?;
        layout
            .append(SectionId::HugeCounts, &self.huge, out)
            .map_err(io)?;

        let data_start = out.len();
        let (shard_bits, table, data_crc) = match reuse {
            Some(r) => {
                let crc = copy_filter(r.data, out).map_err(io)?;
                (r.shard_bits, r.table.to_vec(), crc)
            }
            None => self.build_filter_from_records(progress)?,
        };
        let mut front_dirs = Vec::new();
        front_dirs.extend_from_slice(&buckets_bytes);
        front_dirs.resize(align8(front_dirs.len() as u64) as usize, 0);
        front_dirs.extend_from_slice(&overflow_dir_bytes);
        front_dirs.resize(align8(front_dirs.len() as u64) as usize, 0);
        let filter = WrittenFilter {
            shard_bits,
            table,
            data_crc,
            data_start,
            hashes: self.records_written,
        };
        Ok((front_dirs, filter))
    }

    /// Builds the filter from the records just written, now that their number is known, and
    /// appends it; returns its shard bits, table and the CRC of its fingerprints.
    fn build_filter_from_records(
        &mut self,
        progress: &dyn BuildProgress,
    ) -> Result<(u8, Vec<u8>, u32)> {
        let temp_path = self.temp_path.clone();
        let shard_bits = if self.filter == FilterKind::None {
            0
        } else {
            // A partition's keys fall in the shards of its prefixes only: as many shards per
            // key as the whole would have, so that they are as full (and as many build in
            // parallel) as in a whole index.
            let scale = (BUCKETS as u64) / u64::from(self.partition.len());
            shard_bits_for(self.records_written.saturating_mul(scale))
        };
        let out = &mut self.records;
        out.flush().map_err(write_error(&temp_path))?;
        let map = MappedFile::from_file(out.file(), &temp_path)?;
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
                for rec in records[a * record_len..b * record_len].chunks_exact(record_len) {
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
        .map_err(|e| filter_error(&temp_path, e))?;
        Ok((shard_bits, table, crc))
    }

    /// The sections after the store: the filter's fingerprints (already written) and table,
    /// the sources and the partition. Returns the file's length.
    fn write_tail(&mut self, layout: &mut Layout, filter: &WrittenFilter) -> Result<u64> {
        let io = write_error(&self.temp_path);
        let out = &mut self.records;
        layout.place(
            SectionId::FilterData,
            out.len() - filter.data_start,
            filter.data_crc,
        );
        out.pad_to_8().map_err(io)?;
        layout
            .append(SectionId::FilterTable, &filter.table, out)
            .map_err(io)?;
        layout
            .append(SectionId::Sources, &encode_sources(&self.sources), out)
            .map_err(io)?;
        let partition = self.partition.encode();
        let file_len = layout.offset + partition.len() as u64;
        layout.place(
            SectionId::Partition,
            partition.len() as u64,
            crc32fast::hash(&partition),
        );
        out.write_all(&partition).map_err(io)?;
        Ok(file_len)
    }

    /// Writes the header, section table and directories at the front of the file, sets its
    /// length and syncs it.
    fn write_front(
        &mut self,
        header: &Header,
        table: &[u8],
        front_dirs: &[u8],
        file_len: u64,
    ) -> Result<()> {
        let io = write_error(&self.temp_path);
        self.records.flush().map_err(io)?;
        let mut file = self.records.file();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut front = Vec::with_capacity(SECTIONS_START + front_dirs.len());
        front.extend_from_slice(&header.encode());
        front.extend_from_slice(table);
        front.extend_from_slice(front_dirs);
        file.write_all(&front).map_err(io)?;
        file.set_len(file_len).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }
}

/// The filter as written: its shard bits, table, the CRC of its fingerprints, where they
/// start in the output, and the keys (the index's hashes).
struct WrittenFilter {
    shard_bits: u8,
    table: Vec<u8>,
    data_crc: u32,
    data_start: u64,
    hashes: u64,
}

/// Where the sections go: the table so far, and the offset of the next section (each starts
/// on a multiple of 8).
struct Layout {
    sections: Vec<Section>,
    offset: u64,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            sections: Vec::with_capacity(SectionId::ALL.len()),
            offset: SECTIONS_START as u64,
        }
    }

    /// Places section `id` of `len` bytes and checksum `crc` at the next offset.
    fn place(&mut self, id: SectionId, len: u64, crc: u32) {
        self.sections.push(Section {
            id,
            offset: self.offset,
            len,
            crc,
        });
        self.offset = align8(self.offset + len);
    }

    /// Places section `id` holding `bytes` and appends them to `out`, padded to 8 bytes.
    fn append(&mut self, id: SectionId, bytes: &[u8], out: &mut CrcWriter) -> std::io::Result<()> {
        self.place(id, bytes.len() as u64, crc32fast::hash(bytes));
        out.write_all(bytes)?;
        out.pad_to_8()
    }
}

/// The error for a failed write of the index at `path`.
fn write_error(path: &Path) -> impl Fn(std::io::Error) -> Error + Copy + '_ {
    move |e| Error::io(path, "cannot write", e)
}

/// The error for a filter that could not be built into the index at `path`.
fn filter_error(path: &Path, e: FilterBuildError) -> Error {
    match e {
        FilterBuildError::Io(e) => Error::io(path, "cannot write", e),
        FilterBuildError::Build(m) => Error::Internal(m),
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
    use crate::rng::SplitMix64;
    use std::collections::BTreeMap;

    /// Sorted entries with runs of equal hashes (and, cut to 64 bits, more of them), counts
    /// from 1 to past the inline codes, over a few buckets.
    fn sorted_entries(rng: &mut SplitMix64, n: usize) -> Vec<Entry> {
        let mut hashes: Vec<HashBytes> = (0..n)
            .map(|_| {
                let mut h = [0u8; 20];
                for b in h.iter_mut() {
                    *b = rng.next_bits() as u8;
                }
                // Few first bytes, so that buckets hold several hashes; a few share their
                // first 64 bits with another and differ after.
                h[0] = (rng.next_bits() % 3) as u8;
                h
            })
            .collect();
        for i in 1..hashes.len() {
            match rng.next_bits() % 8 {
                0 => hashes[i] = hashes[i - 1],
                1 => {
                    let before = hashes[i - 1];
                    hashes[i][..8].copy_from_slice(&before[..8]);
                }
                _ => {}
            }
        }
        hashes.sort();
        hashes
            .into_iter()
            .map(|hash| Entry {
                hash,
                count: 1 + rng.next_bits() % 40,
            })
            .collect()
    }

    fn given_back(writer: IndexWriter) -> Vec<(HashBytes, u64)> {
        let mut out = Vec::new();
        writer
            .into_entries(&mut |e| {
                out.push((e.hash, e.count));
                Ok(())
            })
            .unwrap();
        out
    }

    /// Blocks of every size through `push_sorted`, and one entry at a time through `push`,
    /// give the entries of a model that merges equal hashes (equal first 64 bits for the
    /// compact and filter-only forms), and an entry out of order stops a block exactly there.
    #[test]
    fn pushing_blocks_matches_a_model_and_stops_at_disorder() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = SplitMix64::new(17);
        for round in 0..24 {
            let store = [StoreForm::Full, StoreForm::Compact, StoreForm::None][round % 3];
            let kind = if round % 4 == 3 && store == StoreForm::Full {
                HashKind::Ntlm
            } else {
                HashKind::Sha1
            };
            let n = 1 + (rng.next_bits() % 3000) as usize;
            let mut entries = sorted_entries(&mut rng, n);
            if kind == HashKind::Ntlm {
                for e in entries.iter_mut() {
                    e.hash[16..].fill(0);
                }
            }
            let mut model: BTreeMap<HashBytes, u64> = BTreeMap::new();
            for e in &entries {
                let key = if store == StoreForm::Full {
                    e.hash
                } else {
                    truncate_hash(&e.hash)
                };
                *model.entry(key).or_default() += e.count;
            }
            let model: Vec<(HashBytes, u64)> = model.into_iter().collect();
            let open = |name: &str| {
                let mut w =
                    IndexWriter::create(&dir.path().join(name), kind, FilterKind::Fuse8).unwrap();
                w.set_store(store, 1 << 30).unwrap();
                w
            };

            let mut blocks = open("blocks.ldx");
            let mut at = 0;
            while at < entries.len() {
                let len = 1 + (rng.next_bits() % 200) as usize;
                let block = &entries[at..(at + len).min(entries.len())];
                assert_eq!(blocks.push_sorted(block).unwrap(), block.len());
                at += block.len();
            }
            assert_eq!(blocks.push_sorted(&[]).unwrap(), 0);
            assert_eq!(given_back(blocks), model, "round {round}, blocks");

            let mut single = open("single.ldx");
            for e in &entries {
                assert!(single.push(*e).unwrap().is_ok());
            }
            assert_eq!(given_back(single), model, "round {round}, one at a time");

            // An entry that orders before the one taken before it, in the middle of a block.
            if let Some(cut) = (1..entries.len()).find(|_| rng.next_bits().is_multiple_of(5)) {
                let mut w = open("disorder.ldx");
                let mut block = entries[..cut].to_vec();
                block.push(Entry {
                    hash: [0; 20],
                    count: 1,
                });
                block.extend_from_slice(&entries[cut..]);
                assert_eq!(w.push_sorted(&block).unwrap(), cut, "round {round}");
                // The rest goes on where the block stopped.
                assert_eq!(w.push_sorted(&entries[cut..]).unwrap(), entries.len() - cut);
                assert_eq!(given_back(w), model, "round {round}, after disorder");
            }
        }
    }
}
