//! Full checks of an index ([`Index::verify`]) and its description ([`Index::info`]).

use crate::error::Result;
use crate::format::*;
use crate::hash::HashBytes;
use crate::index::{CountCursor, Index};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// Sizes and figures of an index, as `leakdex info` prints them.
#[derive(Clone, Debug)]
pub struct IndexInfo {
    /// Format version.
    pub version: u32,
    /// Hash kind name.
    pub kind: &'static str,
    /// Key type name: what the hashes are hashes of (`password`, `login`, `pair`).
    pub key: &'static str,
    /// The login normalisation rule version (0 for passwords).
    pub normalisation: u8,
    /// Store form name: `full`, `compact` or `none`.
    pub store: &'static str,
    /// The prefixes the index holds (all of them unless it is a partition).
    pub partition: crate::partition::PrefixRange,
    /// The chance that a check of a hash absent from the dump does not answer "absent"
    /// ([`Index::false_match_rate`]).
    pub false_match_rate: f64,
    /// Filter kind name.
    pub filter: &'static str,
    /// Distinct hashes.
    pub hashes: u64,
    /// Sum of all counts.
    pub count_sum: u128,
    /// Whole file size.
    pub file_bytes: u64,
    /// Bytes of each section, by name.
    pub sections: Vec<(&'static str, u64)>,
    /// Bytes of the store (directories, records, overflow and huge counts).
    pub store_bytes: u64,
    /// Bytes of the filter (table and fingerprints).
    pub filter_bytes: u64,
    /// Store bytes per hash.
    pub store_bytes_per_hash: f64,
    /// Filter bits per hash.
    pub filter_bits_per_key: f64,
    /// The filter's design false-positive rate.
    pub filter_fpr_design: f64,
    /// False-positive rate measured on random hashes that are not in the index.
    pub filter_fpr_measured: Option<f64>,
    /// Records whose count is in the overflow section.
    pub overflow_entries: u64,
    /// The inputs the index was built from.
    pub sources: Vec<SourceInfo>,
}

/// Random probes used to measure the filter's false-positive rate.
const FPR_PROBES: usize = 200_000;

impl Index {
    /// Describes the index. Measures the filter's false-positive rate on random hashes.
    pub fn info(&self) -> IndexInfo {
        let size = |id: SectionId| self.sections()[id as usize - 1].len;
        let store_bytes = size(SectionId::Buckets)
            + size(SectionId::OverflowDir)
            + size(SectionId::Records)
            + size(SectionId::Overflow)
            + size(SectionId::HugeCounts);
        let filter_bytes = size(SectionId::FilterTable) + size(SectionId::FilterData);
        let n = self.hash_count();
        let per = |b: u64, scale: f64| {
            if n == 0 {
                0.0
            } else {
                b as f64 * scale / n as f64
            }
        };
        let filter = self.filter().kind();
        let measured = (filter != FilterKind::None && n > 0).then(|| self.measure_fpr());
        IndexInfo {
            version: self.header().version,
            kind: self.kind().name(),
            key: self.key().name(),
            normalisation: self.header().normalisation,
            store: self.store_form().name(),
            partition: self.partition(),
            false_match_rate: self.false_match_rate(),
            filter: filter.name(),
            hashes: n,
            count_sum: self.header().count_sum,
            file_bytes: self.header().file_len,
            sections: self
                .sections()
                .iter()
                .map(|s| (s.id.name(), s.len))
                .collect(),
            store_bytes,
            filter_bytes,
            store_bytes_per_hash: per(store_bytes, 1.0),
            filter_bits_per_key: per(filter_bytes, 8.0),
            filter_fpr_design: filter.false_positive_rate(),
            filter_fpr_measured: measured,
            overflow_entries: self.overflow_count(),
            sources: self.sources().to_vec(),
        }
    }

    fn measure_fpr(&self) -> f64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x1eaf_dec5);
        let mut hits = 0usize;
        let mut probes = 0usize;
        while probes < FPR_PROBES {
            let mut h: HashBytes = [0; 20];
            rng.fill(&mut h[..self.kind().byte_len()]);
            if matches!(self.lookup(&h), Ok(Some(_))) {
                continue;
            }
            probes += 1;
            hits += self.filter_contains(&h) as usize;
        }
        hits as f64 / probes as f64
    }

    /// Checks everything: every checksum, the order of every bucket, every overflow count,
    /// and that the filter holds every hash. Names the first problem found. A filter-only
    /// index has its checksums and its filter table checked (its keys are not in the file).
    pub fn verify(&self) -> Result<VerifyReport> {
        for s in self.sections() {
            if crc32fast::hash(self.section(s.id)) != s.crc {
                return Err(self.corrupt(format!(
                    "the {} section's checksum does not match",
                    s.id.name()
                )));
            }
        }
        if self.store_form() == StoreForm::None {
            // Open checked the table against the fingerprints and the key count against the
            // header; the checksums above cover the bytes.
            return Ok(VerifyReport {
                hashes: self.hash_count(),
                count_sum: self.header().count_sum,
                bytes: self.header().file_len,
            });
        }
        let len = self.record_len();
        let per_shard: Vec<std::result::Result<(u128, u64), String>> = (0..GROUPS)
            .into_par_iter()
            .map(|group| {
                let mut sum = 0u128;
                let mut filter_misses = 0u64;
                let first = (group * GROUP_BUCKETS) as u32;
                for bucket in first..first + GROUP_BUCKETS as u32 {
                    if !self.partition().contains(bucket) {
                        let records = self.directory_range_anywhere(0, bucket);
                        let overflow = self.directory_range_anywhere(1, bucket);
                        match (records, overflow) {
                            (Ok(r), Ok(o)) if r.is_empty() && o.is_empty() => continue,
                            (Err(e), _) | (_, Err(e)) => return Err(e.to_string()),
                            _ => {
                                return Err(format!(
                                    "range {bucket:05X} holds hashes outside the index's \
                                     partition {}",
                                    self.partition()
                                ))
                            }
                        }
                    }
                    let records = self.bucket_bytes(bucket).map_err(|e| e.to_string())?;
                    let overflow = self.bucket_overflow(bucket).map_err(|e| e.to_string())?;
                    let mut counts = CountCursor::new(self, overflow);
                    let mut prev: Option<HashBytes> = None;
                    for (i, rec) in records.chunks_exact(len).enumerate() {
                        let hash = record_hash(bucket, rec);
                        if prev.is_some_and(|p| p >= hash) {
                            return Err(format!("range {bucket:05X}: records out of order at {i}"));
                        }
                        prev = Some(hash);
                        // An overflow count must be one the record's own code could not hold.
                        let overflowed = rec[0] >> 4 == OVERFLOW_CODE;
                        let count = counts
                            .count(i, rec)
                            .filter(|&c| !overflowed || c >= OVERFLOW_CODE as u64)
                            .ok_or_else(|| {
                                format!("range {bucket:05X}: overflow count of record {i} is wrong")
                            })?;
                        sum += count as u128;
                        if !self.filter_contains(&hash) {
                            filter_misses += 1;
                        }
                    }
                    if !counts.exhausted() {
                        return Err(format!("range {bucket:05X}: unused overflow counts"));
                    }
                }
                Ok((sum, filter_misses))
            })
            .collect();
        let mut sum = 0u128;
        for r in per_shard {
            let (s, misses) = r.map_err(|m| self.corrupt(m))?;
            if misses > 0 {
                return Err(self.corrupt("the filter misses hashes that the store holds"));
            }
            sum += s;
        }
        if sum != self.header().count_sum {
            return Err(self.corrupt("the counts do not add up to the header's sum"));
        }
        if self.filter().kind() != FilterKind::None && self.filter().keys() > self.hash_count() {
            return Err(self.corrupt("the filter claims more keys than the store holds"));
        }
        Ok(VerifyReport {
            hashes: self.hash_count(),
            count_sum: sum,
            bytes: self.header().file_len,
        })
    }
}

/// What [`Index::verify`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Hashes checked.
    pub hashes: u64,
    /// Their counts added up.
    pub count_sum: u128,
    /// Bytes checksummed.
    pub bytes: u64,
}
