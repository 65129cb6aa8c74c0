//! The sharded binary fuse filter: construction per shard, the building of an index's whole
//! filter as it is written (from its records, or as the keys of a filter-only index stream
//! by), and queries in place over the index bytes. Layout in [`crate::format`].

use crate::crc::{CrcWriter, WRITE_CHUNK};
use crate::error::Error;
use crate::format::{
    align8, filter_key, legacy_filter_key, read_u32, read_u64, shard_bits_for, shard_of,
    FilterKind, MAX_SHARD_BITS, SHARD_ENTRY_LEN,
};
use crate::hash::HashBytes;
use crate::progress::BuildProgress;
use rayon::prelude::*;
use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use xorf::{BinaryFuse16, BinaryFuse16Ref, BinaryFuse8, BinaryFuse8Ref, DmaSerializable};
use xorf::{Filter, FilterRef};

/// Length of a serialised xorf descriptor.
const DESCRIPTOR_LEN: usize = 20;

/// One shard's filter as built: its table fields and fingerprint bytes (little-endian).
#[derive(Clone, Debug, Default)]
pub struct BuiltShard {
    /// Keys the shard was built from (after removing duplicates).
    pub keys: u64,
    /// Serialised xorf descriptor (seed, segment length, mask, segment count length).
    pub descriptor: [u8; DESCRIPTOR_LEN],
    /// Number of fingerprints.
    pub fingerprints: u64,
    /// The fingerprints as stored.
    pub bytes: Vec<u8>,
}

/// Builds one shard's filter from its keys, which arrive in non-decreasing order.
pub fn build_shard(kind: FilterKind, keys: &mut Vec<u64>) -> Result<BuiltShard, String> {
    keys.dedup();
    if keys.is_empty() || kind == FilterKind::None {
        return Ok(BuiltShard::default());
    }
    let mut shard = BuiltShard {
        keys: keys.len() as u64,
        ..BuiltShard::default()
    };
    match kind {
        FilterKind::None => unreachable!("handled above"),
        FilterKind::Fuse8 => {
            let f = BinaryFuse8::try_from(&keys[..]).map_err(|e| e.to_string())?;
            f.dma_copy_descriptor_to(&mut shard.descriptor);
            shard.fingerprints = f.fingerprints.len() as u64;
            shard.bytes = f.fingerprints.into_vec();
        }
        FilterKind::Fuse16 => {
            let f = BinaryFuse16::try_from(&keys[..]).map_err(|e| e.to_string())?;
            f.dma_copy_descriptor_to(&mut shard.descriptor);
            shard.fingerprints = f.fingerprints.len() as u64;
            shard.bytes = f
                .fingerprints
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
        }
    }
    Ok(shard)
}

/// Encodes one filter-table entry.
pub fn encode_shard_entry(shard: &BuiltShard, offset: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&shard.fingerprints.to_le_bytes());
    out.extend_from_slice(&shard.keys.to_le_bytes());
    out.extend_from_slice(&shard.descriptor);
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// A shard validated for querying.
#[derive(Clone, Debug)]
struct ShardView {
    descriptor: [u8; DESCRIPTOR_LEN],
    /// Byte range of the fingerprints within the filter data.
    bytes: Range<usize>,
    keys: u64,
}

/// The filter of an open index: validated shard descriptors over borrowed fingerprint bytes.
#[derive(Clone, Debug)]
pub struct ShardedFilter {
    kind: FilterKind,
    bits: u8,
    /// Keys are bits 12..76 of the hash (format versions 1 and 2) rather than 0..64.
    legacy_key: bool,
    shards: Vec<ShardView>,
}

impl ShardedFilter {
    /// Validates the filter table against the fingerprint bytes, so that no later query can
    /// index out of bounds or trip an assertion in xorf. `legacy_key`: the index is of format
    /// version 1 or 2, whose keys were bits 12..76 of the hash.
    pub fn parse(
        kind: FilterKind,
        bits: u8,
        table: &[u8],
        data: &[u8],
        legacy_key: bool,
    ) -> Result<ShardedFilter, String> {
        if bits > MAX_SHARD_BITS {
            return Err(format!(
                "{bits} filter shard bits, at most {MAX_SHARD_BITS} allowed"
            ));
        }
        if kind == FilterKind::None {
            if !table.is_empty() || !data.is_empty() {
                return Err("index without a filter has filter bytes".into());
            }
            return Ok(ShardedFilter {
                kind,
                bits,
                legacy_key,
                shards: Vec::new(),
            });
        }
        let shard_count = 1usize << bits;
        if table.len() != shard_count * SHARD_ENTRY_LEN {
            return Err(format!(
                "filter table holds {} bytes, expected {}",
                table.len(),
                shard_count * SHARD_ENTRY_LEN
            ));
        }
        if kind == FilterKind::Fuse16 {
            if cfg!(target_endian = "big") {
                return Err("fuse16 filters can only be read on little-endian machines".into());
            }
            if data.as_ptr().align_offset(8) != 0 {
                return Err("filter data is not aligned in memory".into());
            }
        }
        let fp_bytes = kind.fingerprint_bytes() as u64;
        let mut shards = Vec::with_capacity(shard_count);
        for i in 0..shard_count {
            let at = i * SHARD_ENTRY_LEN;
            let bad = |what: &str| format!("filter shard {i}: {what}");
            let field = |o: usize| read_u64(table, at + o).ok_or_else(|| bad("truncated"));
            let offset = field(0)?;
            let count = field(8)?;
            let keys = field(16)?;
            let mut descriptor = [0u8; DESCRIPTOR_LEN];
            descriptor.copy_from_slice(&table[at + 24..at + 24 + DESCRIPTOR_LEN]);
            let seg_len = read_u32(&descriptor, 8).unwrap_or(0) as u64;
            let mask = read_u32(&descriptor, 12).unwrap_or(0) as u64;
            let seg_count_len = read_u32(&descriptor, 16).unwrap_or(0) as u64;
            if (count == 0) != (keys == 0) {
                return Err(bad("fingerprint and key counts disagree"));
            }
            if offset % 8 != 0 {
                return Err(bad("fingerprints are not 8-byte aligned"));
            }
            let len = count
                .checked_mul(fp_bytes)
                .ok_or_else(|| bad("size overflows"))?;
            let end = offset
                .checked_add(len)
                .filter(|&e| e <= data.len() as u64)
                .ok_or_else(|| bad("fingerprints lie outside the filter data"))?;
            if count > 0 {
                let valid = seg_len.is_power_of_two()
                    && mask == seg_len - 1
                    && seg_count_len.is_multiple_of(seg_len)
                    && seg_count_len + 2 * seg_len <= count
                    && count <= u32::MAX as u64;
                if !valid {
                    return Err(bad("invalid filter descriptor"));
                }
            }
            shards.push(ShardView {
                descriptor,
                bytes: offset as usize..end as usize,
                keys,
            });
        }
        Ok(ShardedFilter {
            kind,
            bits,
            legacy_key,
            shards,
        })
    }

    /// The filter kind.
    pub fn kind(&self) -> FilterKind {
        self.kind
    }

    /// Keys over all shards.
    pub fn keys(&self) -> u64 {
        self.shards.iter().map(|s| s.keys).sum()
    }

    /// Shard bits.
    pub fn shard_bits(&self) -> u8 {
        self.bits
    }

    /// Whether the filter may contain `hash` (`true` without a filter). `data` is the
    /// fingerprint section the filter was parsed with.
    #[inline]
    pub fn contains(&self, data: &[u8], hash: &HashBytes) -> bool {
        let key = if self.legacy_key {
            legacy_filter_key(hash)
        } else {
            filter_key(hash)
        };
        self.contains_key(data, shard_of(hash, self.bits), key)
    }

    /// Whether shard `shard` may contain `key`.
    #[inline]
    pub fn contains_key(&self, data: &[u8], shard: usize, key: u64) -> bool {
        let Some(view) = self.shards.get(shard) else {
            return true;
        };
        if view.bytes.is_empty() {
            return false;
        }
        let fingerprints = &data[view.bytes.clone()];
        match self.kind {
            FilterKind::None => true,
            FilterKind::Fuse8 => {
                BinaryFuse8Ref::from_dma(&view.descriptor, fingerprints).contains(&key)
            }
            FilterKind::Fuse16 => {
                BinaryFuse16Ref::from_dma(&view.descriptor, fingerprints).contains(&key)
            }
        }
    }

    /// Whether the keys are those of format versions 1 and 2 (bits 12..76 of the hash).
    pub fn legacy_key(&self) -> bool {
        self.legacy_key
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

// --- Building the filter of an index being written -----------------------------------------

/// Appends a reused filter's fingerprints; returns their CRC.
pub(crate) fn copy_filter(data: &[u8], out: &mut CrcWriter) -> std::io::Result<u32> {
    for chunk in data.chunks(WRITE_CHUNK) {
        out.write_all(chunk)?;
    }
    Ok(crc32fast::hash(data))
}

/// Why building an index's filter failed.
pub(crate) enum FilterBuildError {
    /// Writing the fingerprints failed.
    Io(std::io::Error),
    /// A shard could not be built, or the building thread failed: the message says which.
    /// Neither should happen (the keys are distinct), so it is an internal error.
    Build(String),
}

/// Builds each shard's filter from its keys (`keys_of(shard)`, in order), a batch of shards in
/// parallel, and appends the fingerprints to `out`. `weight(shard)` is the progress it makes;
/// `release(first, end)` is told when shards `first..end` are done. Returns the filter table
/// and the CRC of the fingerprints.
pub(crate) fn build_filter(
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
    let data_start = out.len();
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
    encode_shard_entry(shard, out.len() - data_start, table);
    crc.update(&shard.bytes);
    out.write_all(&shard.bytes)?;
    let pad = (align8(out.len() - data_start) - (out.len() - data_start)) as usize;
    crc.update(&[0u8; 8][..pad]);
    out.write_all(&[0u8; 8][..pad])
}

/// The filter of a filter-only index. Keys (with their counts, so that they can be given
/// back) are held until the stream ends, which then picks the shard bits as a store's build
/// would; a stream longer than the limit commits to 4,096 shards and from then on hands each
/// shard, as soon as the sorted keys have passed it, to a thread that builds it and appends
/// its fingerprints to the index.
pub(crate) struct StreamedFilter {
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
    pub(crate) fn new(kind: FilterKind, limit: usize, path: PathBuf) -> StreamedFilter {
        StreamedFilter {
            kind,
            path,
            held: Vec::new(),
            limit,
            committed: None,
        }
    }

    /// The held keys and counts, unless the filter has begun to be built.
    pub(crate) fn into_held(self) -> Option<Vec<(u64, u64)>> {
        self.committed.is_none().then_some(self.held)
    }

    pub(crate) fn push(&mut self, key: u64, count: u64, out: &mut CrcWriter) -> crate::Result<()> {
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
    fn commit(&mut self, out: &mut CrcWriter) -> crate::Result<()> {
        let file = out
            .file()
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
    pub(crate) fn finish(
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
    fn push(&mut self, key: u64) -> crate::Result<()> {
        let shard = (key >> (64 - MAX_SHARD_BITS)) as usize;
        if shard != self.shard {
            self.send()?;
            self.shard = shard;
        }
        self.keys.push(key);
        Ok(())
    }

    /// Hands the current shard's keys to the building thread.
    fn send(&mut self) -> crate::Result<()> {
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
                Err(FilterBuildError::Build(m)) => Err(Error::Internal(m)),
                Ok(_) => Err(Error::Internal("the filter thread stopped early".into())),
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
            None => Err(FilterBuildError::Build("the filter thread is gone".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::AlignedBytes;

    fn table_of(shards: &[BuiltShard]) -> (Vec<u8>, AlignedBytes) {
        let mut table = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for s in shards {
            encode_shard_entry(s, data.len() as u64, &mut table);
            data.extend_from_slice(&s.bytes);
            data.resize(data.len().div_ceil(8) * 8, 0);
        }
        (table, AlignedBytes::copy_from(&data))
    }

    #[test]
    fn tiny_shards_build_and_answer() {
        for kind in [FilterKind::Fuse8, FilterKind::Fuse16] {
            let mut shards = vec![BuiltShard::default(); 1 << MAX_SHARD_BITS];
            let key_sets: Vec<Vec<u64>> = (0..4)
                .map(|n| (0..n).map(|k| k * 7919 + 1).collect())
                .collect();
            for (i, keys) in key_sets.iter().enumerate() {
                shards[i] = build_shard(kind, &mut keys.clone()).unwrap();
            }
            let (table, data) = table_of(&shards);
            let data = data.bytes();
            let f = ShardedFilter::parse(kind, MAX_SHARD_BITS, &table, data, false).unwrap();
            for (i, keys) in key_sets.iter().enumerate() {
                for k in keys {
                    assert!(f.contains_key(data, i, *k));
                }
            }
            assert!(!f.contains_key(data, 100, 5));
        }
    }

    #[test]
    fn descriptor_validation_refuses_bad_tables() {
        let mut shards = vec![BuiltShard::default(); 1 << MAX_SHARD_BITS];
        shards[0] = build_shard(FilterKind::Fuse8, &mut (0..1000u64).collect()).unwrap();
        let (table, data) = table_of(&shards);
        let data = data.bytes();
        assert!(
            ShardedFilter::parse(FilterKind::Fuse8, MAX_SHARD_BITS, &table, data, false).is_ok()
        );
        for at in [8usize, 24 + 8, 24 + 12, 24 + 16] {
            let mut bad = table.clone();
            bad[at] ^= 0x40;
            assert!(
                ShardedFilter::parse(FilterKind::Fuse8, MAX_SHARD_BITS, &bad, data, false).is_err(),
                "byte {at}"
            );
        }
        assert!(ShardedFilter::parse(
            FilterKind::Fuse8,
            MAX_SHARD_BITS,
            &table,
            &data[..100],
            false
        )
        .is_err());
        assert!(ShardedFilter::parse(
            FilterKind::Fuse8,
            MAX_SHARD_BITS,
            &table[..100],
            data,
            false
        )
        .is_err());
    }
}
