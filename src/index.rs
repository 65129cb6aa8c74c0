//! [`Index`]: an open index file, validated on open, queried in place.

use crate::error::{Error, Result};
use crate::filter::ShardedFilter;
use crate::format::*;
use crate::hash::{prefix_of, HashBytes, HashKind};
use crate::partition::PrefixRange;
use crate::sys::{AlignedBytes, MappedFile};
use std::cmp::Ordering;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

enum Backing {
    Mapped(MappedFile),
    Owned(AlignedBytes),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m.bytes(),
            Backing::Owned(b) => b.bytes(),
        }
    }
}

/// An open index.
pub struct Index {
    path: PathBuf,
    backing: Backing,
    header: Header,
    sections: Vec<Section>,
    filter: ShardedFilter,
    sources: Vec<SourceInfo>,
    partition: PrefixRange,
    record_len: usize,
    overflow_count: u64,
    /// Directory groups already checked, one bit each: record directory, overflow directory.
    checked_groups: [Vec<AtomicU64>; 2],
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish()
    }
}

/// The count stored for a record, as found by a lookup.
pub type Count = u64;

/// What a check of one hash found, in an index of any store form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Not in the index. Certain: filters have no false negatives.
    Absent,
    /// In the index, with this count. Exact in a full store; in a compact store, the count of
    /// the hashes that share the first 64 bits of this one, which for a hash absent from the
    /// dump happens about once in `2^64 / n` queries.
    Found(Count),
    /// A filter-only index's filter holds it: present in the dump, or a false positive at the
    /// filter's rate ([`Index::false_match_rate`]). There is no count.
    Possible,
}

impl Presence {
    /// Whether the hash is (or may be) in the index: `Found` or `Possible`.
    pub fn is_hit(self) -> bool {
        !matches!(self, Presence::Absent)
    }

    /// The count, for `Found`.
    pub fn count(self) -> Option<Count> {
        match self {
            Presence::Found(c) => Some(c),
            _ => None,
        }
    }
}

impl Index {
    /// Opens and validates the index at `path` (structure and small sections; [`Index::verify`]
    /// checks everything).
    pub fn open(path: impl AsRef<Path>) -> Result<Index> {
        let path = path.as_ref();
        let map = MappedFile::open(path)?;
        map.advise_random();
        Index::from_backing(path.to_path_buf(), Backing::Mapped(map))
    }

    /// Opens the index at `path` as [`Index::open`] does, but reads the whole file into
    /// memory instead of mapping it: the index then no longer depends on the file, which may
    /// be truncated, rewritten or removed without effect (a mapped file that shrinks makes
    /// the next read of its lost pages raise SIGBUS). Costs the file's size in memory.
    pub fn open_in_memory(path: impl AsRef<Path>) -> Result<Index> {
        let path = path.as_ref();
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(path, "cannot read metadata of", e))?
            .len();
        let len = usize::try_from(len)
            .map_err(|_| Error::Invalid(format!("{}: too large to read", path.display())))?;
        let bytes = AlignedBytes::read_from(&mut file, len).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corrupt(path, "the file shrank while it was read")
            } else {
                Error::io(path, "cannot read", e)
            }
        })?;
        Index::from_backing(path.to_path_buf(), Backing::Owned(bytes))
    }

    /// Whether the index was read into memory ([`Index::open_in_memory`], [`Index::from_bytes`])
    /// rather than mapped.
    pub fn is_in_memory(&self) -> bool {
        matches!(self.backing, Backing::Owned(_))
    }

    /// For long-running use (a server, an audit of many hashes): asks that the parts of the
    /// file read from disk from now on come into the page cache in 2 MiB pages, which lookups
    /// reach with far fewer TLB misses (the README's design notes give a measurement). Each
    /// read from disk fetches 2 MiB, so a one-off check of a few hashes is better off without
    /// it.
    pub fn prefer_huge_pages(&self) {
        if let Backing::Mapped(map) = &self.backing {
            map.advise_huge_pages();
        }
    }

    /// Opens an index held in memory; `name` is used in errors.
    pub fn from_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<Index> {
        let owned = AlignedBytes::copy_from(bytes);
        Index::from_backing(name.as_ref().to_path_buf(), Backing::Owned(owned))
    }

    fn from_backing(path: PathBuf, backing: Backing) -> Result<Index> {
        let bytes = backing.bytes();
        let bad = |m: String| Error::corrupt(&path, m);
        let header = match Header::decode(bytes) {
            Ok(header) => header,
            Err(HeaderError::Corrupt(m)) => return Err(bad(m)),
            Err(HeaderError::UnsupportedVersion(found)) => {
                return Err(Error::UnsupportedVersion {
                    path,
                    found,
                    supported: FORMAT_VERSION,
                })
            }
        };
        if header.file_len != bytes.len() as u64 {
            return Err(bad(format!(
                "truncated or extended: the header says {} bytes, the file has {}",
                header.file_len,
                bytes.len()
            )));
        }
        let sections = decode_sections(bytes, &header).map_err(bad)?;
        let (version, kind, store, filter) =
            (header.version, header.kind, header.store, header.filter);
        let record_len = store.record_len(kind);
        let overflow_entry_len = store.overflow_entry_len();
        let section_bytes = |id: SectionId| -> &[u8] {
            let s = &sections[id as usize - 1];
            &bytes[s.offset as usize..(s.offset + s.len) as usize]
        };
        let dir_len = DIRECTORY_LEN as u64;
        let sizes_ok = if store == StoreForm::None {
            sections[..5].iter().all(|s| s.len == 0)
        } else {
            sections[0].len == dir_len
                && sections[1].len == dir_len
                && header.hash_count.checked_mul(record_len as u64) == Some(sections[2].len)
                && sections[3].len % overflow_entry_len as u64 == 0
                && sections[4].len % HUGE_ENTRY_LEN as u64 == 0
        };
        if !sizes_ok {
            return Err(bad("section sizes disagree with the header".into()));
        }
        for id in [
            SectionId::HugeCounts,
            SectionId::FilterTable,
            SectionId::Sources,
            SectionId::Partition,
        ] {
            if id as usize > sections.len() {
                continue;
            }
            if crc32fast::hash(section_bytes(id)) != sections[id as usize - 1].crc {
                return Err(bad(format!(
                    "the {} section's checksum does not match",
                    id.name()
                )));
            }
        }
        let overflow_count = sections[3].len / overflow_entry_len.max(1) as u64;
        // The directories are checked a group at a time as queries first reach them (see
        // `bucket_records`); `verify` checks them whole.
        let filter = ShardedFilter::parse(
            filter,
            header.shard_bits,
            section_bytes(SectionId::FilterTable),
            section_bytes(SectionId::FilterData),
            version < 3,
        )
        .map_err(bad)?;
        if store == StoreForm::None && filter.keys() != header.hash_count {
            return Err(bad(format!(
                "the header says {} hashes, the filter holds {} keys",
                header.hash_count,
                filter.keys()
            )));
        }
        let sources = decode_sources(section_bytes(SectionId::Sources))
            .ok_or_else(|| bad("the sources section is malformed".into()))?;
        let partition = if sections.len() > SectionId::Partition as usize - 1 {
            PrefixRange::decode(section_bytes(SectionId::Partition))
                .ok_or_else(|| bad("the partition section is malformed".into()))?
        } else {
            PrefixRange::WHOLE
        };
        Ok(Index {
            path,
            header,
            sections,
            filter,
            sources,
            partition,
            record_len,
            overflow_count,
            checked_groups: [0, 1].map(|_| (0..GROUPS / 64).map(|_| AtomicU64::new(0)).collect()),
            backing,
        })
    }

    /// The path the index was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The hash kind.
    pub fn kind(&self) -> HashKind {
        self.header.kind
    }

    /// A name for the index's content: its header's and section table's CRC-32s in hex (the
    /// server's ETags and the export manifest use it).
    pub fn checksum(&self) -> String {
        let header = self.header.encode();
        format!(
            "{:08x}{:08x}",
            u32::from_le_bytes([header[60], header[61], header[62], header[63]]),
            self.header.table_crc
        )
    }

    /// What the index keeps of each hash: full hashes, their first 64 bits, or nothing (the
    /// filter alone).
    pub fn store_form(&self) -> StoreForm {
        self.header.store
    }

    /// The chance that [`Index::probe`] of a hash absent from the dump answers other than
    /// `Absent`: 0 for a full store (exact), about `n / 2^64` for a compact one, the filter's
    /// false-positive rate for a filter-only one.
    pub fn false_match_rate(&self) -> f64 {
        let truncation = self.header.hash_count as f64 / 2f64.powi(64);
        match self.header.store {
            StoreForm::Full => 0.0,
            StoreForm::Compact => truncation,
            StoreForm::None => self.filter.kind().false_positive_rate() + truncation,
        }
    }

    /// The error for a use that needs full hashes (ranges, and merging into a full store), on
    /// a compact or filter-only index.
    pub fn require_full_store(&self, what: &str) -> Result<()> {
        let has = match self.header.store {
            StoreForm::Full => return Ok(()),
            StoreForm::Compact => {
                "has a compact store (built with --store compact), which keeps only the first \
                 64 bits of each hash"
            }
            StoreForm::None => "is filter-only (built with --store none): it holds no hashes",
        };
        Err(Error::Invalid(format!(
            "{}: {what} needs the full hashes, and this index {has}; {what} needs an index \
             built with --store full",
            self.path.display()
        )))
    }

    /// The error for a lookup with a count on a filter-only index.
    fn no_store(&self) -> Error {
        Error::Invalid(format!(
            "{}: a filter-only index (store none) holds no hashes or counts, only a filter; \
             use Index::probe, which answers \"possibly present\" or \"absent\"",
            self.path.display()
        ))
    }

    /// The range of prefixes whose hashes the index holds: every prefix unless it was built
    /// as a partition (`build --prefixes`).
    pub fn partition(&self) -> PrefixRange {
        self.partition
    }

    /// The error for a hash or prefix outside the index's partition, which it cannot answer:
    /// "absent" would be a wrong answer. Names the partition, never the hash.
    pub fn outside_partition(&self) -> Error {
        Error::Invalid(format!(
            "{}: this index is a partition that holds only the prefixes {}; it cannot answer \
             for a hash outside them (give every partition, each with -i)",
            self.path.display(),
            self.partition
        ))
    }

    /// Checks that every hash of `hashes` lies in the index's partition.
    #[inline]
    fn require_in_partition(&self, hashes: &[HashBytes]) -> Result<()> {
        if self.partition.is_whole() || hashes.iter().all(|h| self.partition.contains(prefix_of(h)))
        {
            Ok(())
        } else {
            Err(self.outside_partition())
        }
    }

    /// What the hashes are hashes of: passwords, logins or pairs.
    pub fn key(&self) -> crate::key::KeyType {
        self.header.key
    }

    /// Distinct hashes in the index.
    pub fn hash_count(&self) -> u64 {
        self.header.hash_count
    }

    /// The section table.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The inputs the index was built from.
    pub fn sources(&self) -> &[SourceInfo] {
        &self.sources
    }

    /// The filter.
    pub fn filter(&self) -> &ShardedFilter {
        &self.filter
    }

    /// Number of overflow entries.
    pub fn overflow_count(&self) -> u64 {
        self.overflow_count
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    pub(crate) fn section(&self, id: SectionId) -> &[u8] {
        let s = &self.sections[id as usize - 1];
        // In bounds: checked on open.
        &self.bytes()[s.offset as usize..(s.offset + s.len) as usize]
    }

    pub(crate) fn record_len(&self) -> usize {
        self.record_len
    }

    pub(crate) fn corrupt(&self, message: impl Into<String>) -> Error {
        Error::corrupt(&self.path, message)
    }

    /// The error for a bucket whose overflow counts do not match its records.
    pub(crate) fn out_of_step(&self, bucket: u32) -> Error {
        self.corrupt(format!(
            "range {bucket:05X}: overflow counts out of step with records"
        ))
    }

    /// A range of a directory, after checking the directory group it lies in (once).
    #[inline]
    fn directory_range(&self, which: usize, bucket: u32) -> Result<Range<u64>> {
        if !self.partition.contains(bucket & 0xF_FFFF) {
            return Err(self.outside_partition());
        }
        self.directory_range_anywhere(which, bucket)
    }

    /// A range of a directory, inside the partition or not (for `verify`, which checks that
    /// the buckets outside it are empty).
    #[inline]
    pub(crate) fn directory_range_anywhere(&self, which: usize, bucket: u32) -> Result<Range<u64>> {
        if self.header.store == StoreForm::None {
            return Err(self.no_store());
        }
        let (id, total) = if which == 0 {
            (SectionId::Buckets, self.header.hash_count)
        } else {
            (SectionId::OverflowDir, self.overflow_count)
        };
        let dir = self.section(id);
        let b = (bucket & 0xF_FFFF) as usize;
        let g = b / GROUP_BUCKETS;
        let word = &self.checked_groups[which][g / 64];
        let bit = 1u64 << (g % 64);
        if word.load(AtomicOrdering::Acquire) & bit == 0 {
            check_directory_group(dir, g, total)
                .map_err(|m| self.corrupt(format!("{}: {m}", id.name())))?;
            word.fetch_or(bit, AtomicOrdering::Release);
        }
        let start = directory_start(dir, b).unwrap_or(0);
        Ok(start..directory_start(dir, b + 1).unwrap_or(start))
    }

    /// Record indexes of bucket `bucket`.
    #[inline]
    pub(crate) fn bucket_records(&self, bucket: u32) -> Result<Range<u64>> {
        self.directory_range(0, bucket)
    }

    /// Overflow entry indexes of bucket `bucket`.
    #[inline]
    pub(crate) fn bucket_overflow(&self, bucket: u32) -> Result<Range<u64>> {
        self.directory_range(1, bucket)
    }

    /// The bytes of the records of a bucket.
    #[inline]
    pub(crate) fn bucket_bytes(&self, bucket: u32) -> Result<&[u8]> {
        let r = self.bucket_records(bucket)?;
        let len = self.record_len as u64;
        let records = self.section(SectionId::Records);
        records
            .get((r.start * len) as usize..(r.end * len) as usize)
            .ok_or_else(|| self.corrupt("a bucket lies outside the records"))
    }

    /// Overflow entry `i` as (position in bucket, count); the count is `Err(())` when it is
    /// marked huge but missing from the huge counts.
    #[inline]
    pub(crate) fn overflow_entry(&self, i: u64) -> Option<(u32, std::result::Result<u64, ()>)> {
        let bytes = self.section(SectionId::Overflow);
        let (position, count) = decode_overflow_entry(self.header.store, bytes, i)?;
        Some((position, count.or_else(|| self.huge_count(i)).ok_or(())))
    }

    /// The count of overflow entry `i` from the huge counts.
    fn huge_count(&self, i: u64) -> Option<u64> {
        let bytes = self.section(SectionId::HugeCounts);
        let n = bytes.len() / HUGE_ENTRY_LEN;
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = mid * HUGE_ENTRY_LEN;
            match read_u64(bytes, at)?.cmp(&i) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return read_u64(bytes, at + 8),
            }
        }
        None
    }

    /// Whether the filter may hold `hash` (always true without a filter). The filter of a
    /// partition holds no hash outside it: [`Index::probe`] and [`Index::check`] refuse those.
    #[inline]
    pub fn filter_contains(&self, hash: &HashBytes) -> bool {
        if self.filter.kind() == FilterKind::None {
            return true;
        }
        self.filter
            .contains(self.section(SectionId::FilterData), hash)
    }

    /// Looks `hash` up in the exact store, without the filter: its count, or `None`.
    #[inline]
    pub fn lookup(&self, hash: &HashBytes) -> Result<Option<Count>> {
        let bucket = prefix_of(hash);
        let records = self.bucket_bytes(bucket)?;
        self.search_bucket(bucket, records, hash)
    }

    /// Looks up many hashes at once, appending each one's count (or `None`) to `out` in order.
    /// Faster than one by one on indexes larger than the caches: the directory entries and
    /// then the records of a group of hashes are requested from memory before any is read.
    pub fn lookup_many(&self, hashes: &[HashBytes], out: &mut Vec<Option<Count>>) -> Result<()> {
        if self.header.store == StoreForm::None {
            return Err(self.no_store());
        }
        const GROUP: usize = 16;
        let dir = self.section(SectionId::Buckets);
        let len = self.record_len;
        let records_section = self.section(SectionId::Records);
        for group in hashes.chunks(GROUP) {
            for h in group {
                let b = prefix_of(h) as usize;
                crate::sys::prefetch(dir, (GROUPS + 1) * 8 + b * 4);
            }
            let mut found: [(u32, &[u8]); GROUP] = [(0, &[]); GROUP];
            for (slot, h) in found.iter_mut().zip(group) {
                let bucket = prefix_of(h);
                let records = self.bucket_bytes(bucket)?;
                let n = records.len() / len;
                if n > 0 {
                    let guess = guess_position(h, n);
                    let start = records.as_ptr() as usize - records_section.as_ptr() as usize;
                    crate::sys::prefetch(records_section, start + guess * len);
                    crate::sys::prefetch(records_section, start + guess * len + len);
                }
                *slot = (bucket, records);
            }
            for ((bucket, records), h) in found.iter().zip(group) {
                out.push(self.search_bucket(*bucket, records, h)?);
            }
        }
        Ok(())
    }

    /// Finds `hash` among the records of its bucket.
    #[inline]
    fn search_bucket(
        &self,
        bucket: u32,
        records: &[u8],
        hash: &HashBytes,
    ) -> Result<Option<Count>> {
        let len = self.record_len;
        let nibble = hash[2] & 0x0F;
        let rest = &hash[3..3 + len - 1];
        let n = records.len() / len;
        if n == 0 {
            return Ok(None);
        }
        let at = |i: usize| &records[i * len..i * len + len];
        let probe = |i: usize| compare_record(at(i), nibble, rest);
        // Hashes are uniform, so the next 28 bits place the record near `n * bits / 2^28`:
        // look there first and widen by doubling steps, which keeps the first probes within a
        // cache line or two instead of a binary search's scattered ones.
        let guess = guess_position(hash, n);
        let (mut lo, mut hi) = match probe(guess) {
            Ordering::Equal => {
                return self
                    .record_count(bucket, guess as u64, at(guess)[0] >> 4)
                    .map(Some)
            }
            Ordering::Less => {
                let (mut lo, mut step) = (guess + 1, 1usize);
                loop {
                    let i = guess + step;
                    if i >= n {
                        break (lo, n);
                    }
                    match probe(i) {
                        Ordering::Less => {
                            lo = i + 1;
                            step *= 2;
                        }
                        Ordering::Greater => break (lo, i),
                        Ordering::Equal => {
                            return self.record_count(bucket, i as u64, at(i)[0] >> 4).map(Some)
                        }
                    }
                }
            }
            Ordering::Greater => {
                let (mut hi, mut step) = (guess, 1usize);
                loop {
                    if step > guess {
                        break (0, hi);
                    }
                    let i = guess - step;
                    match probe(i) {
                        Ordering::Greater => {
                            hi = i;
                            step *= 2;
                        }
                        Ordering::Less => break (i + 1, hi),
                        Ordering::Equal => {
                            return self.record_count(bucket, i as u64, at(i)[0] >> 4).map(Some)
                        }
                    }
                }
            }
        };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match probe(mid) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => {
                    return self
                        .record_count(bucket, mid as u64, at(mid)[0] >> 4)
                        .map(Some)
                }
            }
        }
        Ok(None)
    }

    /// Checks many hashes, appending each one's count (or `None`) to `out` in order: the
    /// filter first, then one batched store lookup for the filter's hits.
    pub fn check_many(&self, hashes: &[HashBytes], out: &mut Vec<Option<Count>>) -> Result<()> {
        if self.header.store == StoreForm::None {
            return Err(self.no_store());
        }
        self.require_in_partition(hashes)?;
        let start = out.len();
        out.resize(start + hashes.len(), None);
        let hits: Vec<usize> = (0..hashes.len())
            .filter(|&i| self.filter_contains(&hashes[i]))
            .collect();
        let candidates: Vec<HashBytes> = hits.iter().map(|&i| hashes[i]).collect();
        let mut counts = Vec::with_capacity(candidates.len());
        self.lookup_many(&candidates, &mut counts)?;
        for (i, count) in hits.into_iter().zip(counts) {
            out[start + i] = count;
        }
        Ok(())
    }

    /// Checks `hash`: the filter first, the store only on a filter hit. An error on a
    /// filter-only index, which has no counts: [`Index::probe`] answers for every form.
    #[inline]
    pub fn check(&self, hash: &HashBytes) -> Result<Option<Count>> {
        self.require_in_partition(std::slice::from_ref(hash))?;
        // Before the filter: a miss must not read as "absent, count known" when a hit is an
        // error (found by fuzzing: tests/data/fuzz/index_bytes/check-on-filter-only-index).
        if self.header.store == StoreForm::None {
            return Err(self.no_store());
        }
        if !self.filter_contains(hash) {
            return Ok(None);
        }
        self.lookup(hash)
    }

    /// Checks `hash` in an index of any store form.
    #[inline]
    pub fn probe(&self, hash: &HashBytes) -> Result<Presence> {
        self.require_in_partition(std::slice::from_ref(hash))?;
        if self.header.store == StoreForm::None {
            return Ok(if self.filter_contains(hash) {
                Presence::Possible
            } else {
                Presence::Absent
            });
        }
        Ok(match self.check(hash)? {
            Some(c) => Presence::Found(c),
            None => Presence::Absent,
        })
    }

    /// Checks many hashes in an index of any store form, appending each one's answer to `out`
    /// in order (batched as [`Index::check_many`] is).
    pub fn probe_many(&self, hashes: &[HashBytes], out: &mut Vec<Presence>) -> Result<()> {
        self.require_in_partition(hashes)?;
        if self.header.store == StoreForm::None {
            out.extend(hashes.iter().map(|h| {
                if self.filter_contains(h) {
                    Presence::Possible
                } else {
                    Presence::Absent
                }
            }));
            return Ok(());
        }
        let mut counts = Vec::with_capacity(hashes.len());
        self.check_many(hashes, &mut counts)?;
        out.extend(counts.into_iter().map(|c| match c {
            Some(c) => Presence::Found(c),
            None => Presence::Absent,
        }));
        Ok(())
    }

    /// Hashes `password` for the index's kind and checks it. An error for bytes that are not
    /// UTF-8 in an NTLM index (NTLM hashes UTF-16).
    pub fn check_password(&self, password: &[u8]) -> Result<(HashBytes, Option<Count>)> {
        let hash = self.kind().hash_password(password).ok_or_else(|| {
            Error::Invalid("the password is not valid UTF-8, which NTLM needs".into())
        })?;
        Ok((hash, self.check(&hash)?))
    }

    fn record_count(&self, bucket: u32, position: u64, code: u8) -> Result<Count> {
        if code < OVERFLOW_CODE {
            return Ok(code as u64);
        }
        let range = self.bucket_overflow(bucket)?;
        let (mut lo, mut hi) = (range.start, range.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (pos, count) = self
                .overflow_entry(mid)
                .ok_or_else(|| self.corrupt("overflow entry out of bounds"))?;
            match (pos as u64).cmp(&position) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => {
                    return count.map_err(|()| self.corrupt("a huge count is missing"))
                }
            }
        }
        Err(self.corrupt(format!(
            "range {bucket:05X}: a record's count is missing from the overflow section"
        )))
    }
}

impl Index {
    /// Calls `f` with the entries of the index in hash order, `block_len` at a time (fewer in
    /// the last block): for handing them on to a writer a block at a time. `f` may change the
    /// block (drop entries from it, say); it is emptied after each call.
    pub fn for_each_block(
        &self,
        block_len: usize,
        f: &mut dyn FnMut(&mut Vec<crate::dump::Entry>) -> Result<()>,
    ) -> Result<()> {
        let block_len = block_len.max(1);
        let mut block = Vec::with_capacity(block_len);
        self.for_each_entry(&mut |e| {
            block.push(e);
            if block.len() == block_len {
                f(&mut block)?;
                block.clear();
            }
            Ok(())
        })?;
        if !block.is_empty() {
            f(&mut block)?;
        }
        Ok(())
    }

    /// Calls `f` with every entry of the index in hash order (for merging indexes).
    pub fn for_each_entry(
        &self,
        f: &mut dyn FnMut(crate::dump::Entry) -> Result<()>,
    ) -> Result<()> {
        let len = self.record_len;
        for bucket in self.partition.prefixes() {
            let records = self.bucket_bytes(bucket)?;
            let mut counts = CountCursor::new(self, self.bucket_overflow(bucket)?);
            for (i, rec) in records.chunks_exact(len).enumerate() {
                let hash = record_hash(bucket, rec);
                let count = counts
                    .count(i, rec)
                    .ok_or_else(|| self.out_of_step(bucket))?;
                f(crate::dump::Entry { hash, count })?;
            }
        }
        Ok(())
    }
}

/// The counts of one bucket's records, read in record order: a count code below 15 is the
/// count, and code 15 takes the bucket's next overflow entry, which must name the record.
pub(crate) struct CountCursor<'a> {
    index: &'a Index,
    next: u64,
    end: u64,
}

impl<'a> CountCursor<'a> {
    /// A cursor over the overflow entries `overflow` of a bucket.
    pub(crate) fn new(index: &'a Index, overflow: Range<u64>) -> CountCursor<'a> {
        CountCursor {
            index,
            next: overflow.start,
            end: overflow.end,
        }
    }

    /// The count of the record at `position` in its bucket; `None` when the overflow entries
    /// are out of step with the records (a damaged index).
    #[inline(always)]
    pub(crate) fn count(&mut self, position: usize, record: &[u8]) -> Option<u64> {
        let code = record[0] >> 4;
        if code < OVERFLOW_CODE {
            return Some(code as u64);
        }
        self.overflow(position)
    }

    /// The count in the next overflow entry, which must be the record's at `position`. Kept
    /// out of line: range bodies format faster with the common path small (measured).
    #[inline(never)]
    fn overflow(&mut self, position: usize) -> Option<u64> {
        if self.next >= self.end {
            return None;
        }
        match self.index.overflow_entry(self.next)? {
            (pos, Ok(count)) if pos as usize == position => {
                self.next += 1;
                Some(count)
            }
            _ => None,
        }
    }

    /// Whether every overflow entry of the bucket was used.
    pub(crate) fn exhausted(&self) -> bool {
        self.next == self.end
    }
}

/// Where `hash` probably stands among the `n` (at least 1) records of its bucket: hashes are
/// uniform, so the 28 bits after the prefix place it near `n * bits / 2^28`.
#[inline]
fn guess_position(hash: &HashBytes, n: usize) -> usize {
    let bits = (((hash[2] & 0x0F) as u64) << 24)
        | ((hash[3] as u64) << 16)
        | ((hash[4] as u64) << 8)
        | hash[5] as u64;
    ((bits * n as u64) >> 28).min(n as u64 - 1) as usize
}

/// Orders a record against a hash given as its 6th hex digit and following bytes.
#[inline]
pub(crate) fn compare_record(rec: &[u8], nibble: u8, rest: &[u8]) -> Ordering {
    (rec[0] & 0x0F)
        .cmp(&nibble)
        .then_with(|| rec[1..].cmp(rest))
}
