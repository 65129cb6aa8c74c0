//! The sharded binary fuse filter: construction per shard, and queries in place over the
//! index bytes. Layout in [`crate::format`].

use crate::format::{
    filter_key, legacy_filter_key, read_u32, read_u64, shard_of, FilterKind, MAX_SHARD_BITS,
    SHARD_ENTRY_LEN,
};
use crate::hash::HashBytes;
use std::ops::Range;
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
