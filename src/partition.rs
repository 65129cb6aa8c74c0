//! Partitions: an index that holds only the hashes of one range of 5-hex prefixes.
//!
//! A corpus too large for one machine is built as several partitions (`build --prefixes
//! 00000-3FFFF`, `40000-7FFFF`, …), on several machines if need be, from the same input.
//! Each partition index records its range (format version 4, see [`mod@crate::format`]), and
//! refuses to answer for a hash outside it rather than call it absent.

use crate::error::{Error, Result};
use crate::format::StoreForm;
use crate::hash::{prefix_of, HashBytes, HashKind};
use crate::index::{Count, Index, Presence};
use crate::key::KeyType;
use std::fmt;
use std::path::Path;

/// The last 5-hex prefix.
pub const LAST_PREFIX: u32 = 0xF_FFFF;

/// An inclusive range of 5-hex (20-bit) prefixes, `first..=last`, never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrefixRange {
    first: u32,
    last: u32,
}

impl PrefixRange {
    /// All 1,048,576 prefixes: an index that is not a partition.
    pub const WHOLE: PrefixRange = PrefixRange {
        first: 0,
        last: LAST_PREFIX,
    };

    /// The range `first..=last`, or `None` when it is empty or goes past `FFFFF`.
    pub fn new(first: u32, last: u32) -> Option<PrefixRange> {
        (first <= last && last <= LAST_PREFIX).then_some(PrefixRange { first, last })
    }

    /// The first prefix.
    pub fn first(self) -> u32 {
        self.first
    }

    /// The last prefix.
    pub fn last(self) -> u32 {
        self.last
    }

    /// Number of prefixes in the range.
    pub fn len(self) -> u32 {
        self.last - self.first + 1
    }

    /// Never true: a range holds at least one prefix. (For `clippy::len_without_is_empty`.)
    pub fn is_empty(self) -> bool {
        false
    }

    /// Whether this is every prefix.
    pub fn is_whole(self) -> bool {
        self == PrefixRange::WHOLE
    }

    /// Whether `prefix` (20 bits) is in the range.
    #[inline]
    pub fn contains(self, prefix: u32) -> bool {
        prefix >= self.first && prefix <= self.last
    }

    /// Whether the two ranges share a prefix.
    pub fn overlaps(self, other: PrefixRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// The prefixes, in order.
    pub fn prefixes(self) -> std::ops::RangeInclusive<u32> {
        self.first..=self.last
    }

    /// Parses `FIRST-LAST` or a single `PREFIX`: 5 hex digits each, either case.
    pub fn parse(text: &str) -> Result<PrefixRange, String> {
        let parse = |p: &str| {
            crate::hash::parse_prefix(p.trim().as_bytes())
                .map_err(|e| format!("`{}`: {}", p.trim(), e.message()))
        };
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let p = parse(text)?;
                (p, p)
            }
        };
        PrefixRange::new(first, last)
            .ok_or_else(|| format!("`{}`: the first prefix comes after the last", text.trim()))
    }

    /// The 8 bytes of the `PARTITION` section: `first: u32, last: u32`, little-endian.
    pub fn encode(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&self.first.to_le_bytes());
        out[4..].copy_from_slice(&self.last.to_le_bytes());
        out
    }

    /// Reads the `PARTITION` section; `None` unless it is 8 bytes of a valid range.
    pub fn decode(bytes: &[u8]) -> Option<PrefixRange> {
        let bytes: &[u8; 8] = bytes.try_into().ok()?;
        let first = u32::from_le_bytes(bytes[..4].try_into().ok()?);
        let last = u32::from_le_bytes(bytes[4..].try_into().ok()?);
        PrefixRange::new(first, last)
    }
}

impl Default for PrefixRange {
    fn default() -> Self {
        PrefixRange::WHOLE
    }
}

impl fmt::Display for PrefixRange {
    /// `FIRST-LAST` in upper-case hex (`00000-FFFFF` for a whole index).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:05X}-{:05X}", self.first, self.last)
    }
}

impl std::str::FromStr for PrefixRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PrefixRange::parse(s)
    }
}

/// One index, or several partition indexes of one kind, key and store form, answering as one:
/// each query goes to the partition that holds its prefix. A query whose prefix no partition
/// holds is an error, never "absent".
pub struct IndexSet {
    /// The indexes, by their first prefix; their ranges do not overlap.
    parts: Vec<Index>,
}

impl std::fmt::Debug for IndexSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.parts.iter().map(|p| (p.path(), p.partition())))
            .finish()
    }
}

impl IndexSet {
    /// Opens one index, or the partitions of one (see [`IndexSet::new`]).
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<IndexSet> {
        let parts = paths
            .iter()
            .map(|p| Index::open(p.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        IndexSet::new(parts)
    }

    /// The set of `parts`: at least one index; several must be partitions of one hash kind,
    /// key and store form whose prefixes do not overlap. They need not cover every prefix.
    pub fn new(mut parts: Vec<Index>) -> Result<IndexSet> {
        parts.sort_by_key(|p| p.partition());
        check_parts(&parts.iter().collect::<Vec<_>>())?;
        Ok(IndexSet { parts })
    }

    /// The indexes, in prefix order.
    pub fn parts(&self) -> &[Index] {
        &self.parts
    }

    /// The index when there is only one.
    pub fn single(&self) -> Option<&Index> {
        match self.parts.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The hash kind.
    pub fn kind(&self) -> HashKind {
        self.parts[0].kind()
    }

    /// What the hashes are hashes of.
    pub fn key(&self) -> KeyType {
        self.parts[0].key()
    }

    /// What the indexes keep of each hash.
    pub fn store_form(&self) -> StoreForm {
        self.parts[0].store_form()
    }

    /// The largest [`Index::false_match_rate`] of the parts.
    pub fn false_match_rate(&self) -> f64 {
        self.parts
            .iter()
            .map(Index::false_match_rate)
            .fold(0.0, f64::max)
    }

    /// Distinct hashes in all parts.
    pub fn hash_count(&self) -> u64 {
        self.parts.iter().map(Index::hash_count).sum()
    }

    /// Sum of the counts of all parts.
    pub fn count_sum(&self) -> u128 {
        self.parts.iter().map(|p| p.header().count_sum).sum()
    }

    /// The ranges of prefixes held, in order (joined where partitions meet).
    pub fn coverage(&self) -> Vec<PrefixRange> {
        let mut out: Vec<PrefixRange> = Vec::new();
        for p in self.parts.iter().map(Index::partition) {
            match out.last_mut() {
                Some(last) if last.last() + 1 == p.first() => {
                    *last = PrefixRange::new(last.first(), p.last()).unwrap_or(*last)
                }
                _ => out.push(p),
            }
        }
        out
    }

    /// Whether every prefix is held.
    pub fn is_whole(&self) -> bool {
        self.coverage() == [PrefixRange::WHOLE]
    }

    /// The files, for messages: one path, or the paths joined with commas.
    pub fn name(&self) -> String {
        let names: Vec<String> = self
            .parts
            .iter()
            .map(|p| p.path().display().to_string())
            .collect();
        names.join(", ")
    }

    /// The part that holds `prefix` (20 bits), if one does.
    #[inline]
    pub fn part_for(&self, prefix: u32) -> Option<&Index> {
        if let [one] = self.parts.as_slice() {
            return one.partition().contains(prefix).then_some(one);
        }
        let i = self
            .parts
            .partition_point(|p| p.partition().last() < prefix);
        self.parts.get(i).filter(|p| p.partition().contains(prefix))
    }

    /// The part that holds `prefix`, or the error that names what is held (never the prefix).
    pub fn require_part(&self, prefix: u32) -> Result<&Index> {
        self.part_for(prefix).ok_or_else(|| self.not_held())
    }

    /// The error for a hash or prefix that no part holds.
    pub fn not_held(&self) -> Error {
        if let Some(one) = self.single() {
            return one.outside_partition();
        }
        let held: Vec<String> = self.coverage().iter().map(|r| r.to_string()).collect();
        Error::Invalid(format!(
            "the partitions given ({}) hold only the prefixes {}; they cannot answer for a hash \
             outside them (give every partition, each with -i)",
            self.name(),
            held.join(", ")
        ))
    }

    /// Checks `hash` in the part that holds it (see [`Index::probe`]).
    pub fn probe(&self, hash: &HashBytes) -> Result<Presence> {
        self.require_part(prefix_of(hash))?.probe(hash)
    }

    /// Checks many hashes, appending each one's answer to `out` in order, batched per part
    /// (see [`Index::probe_many`]).
    pub fn probe_many(&self, hashes: &[HashBytes], out: &mut Vec<Presence>) -> Result<()> {
        self.route_many(hashes, out, Presence::Absent, Index::probe_many)
    }

    /// Looks many hashes up in the stores, without the filters, appending each one's count
    /// (or `None`) to `out` in order (see [`Index::lookup_many`]).
    pub fn lookup_many(&self, hashes: &[HashBytes], out: &mut Vec<Option<Count>>) -> Result<()> {
        self.route_many(hashes, out, None, Index::lookup_many)
    }

    /// Checks many hashes, appending each one's count (or `None`) to `out` in order (see
    /// [`Index::check_many`]).
    pub fn check_many(&self, hashes: &[HashBytes], out: &mut Vec<Option<Count>>) -> Result<()> {
        self.route_many(hashes, out, None, Index::check_many)
    }

    /// Answers `hashes` with `many` on the part of each, in order.
    fn route_many<T: Copy>(
        &self,
        hashes: &[HashBytes],
        out: &mut Vec<T>,
        blank: T,
        many: impl Fn(&Index, &[HashBytes], &mut Vec<T>) -> Result<()>,
    ) -> Result<()> {
        if let Some(one) = self.single() {
            return many(one, hashes, out);
        }
        let start = out.len();
        out.resize(start + hashes.len(), blank);
        let mut which: Vec<usize> = Vec::with_capacity(hashes.len());
        for h in hashes {
            let prefix = prefix_of(h);
            let i = self
                .parts
                .partition_point(|p| p.partition().last() < prefix);
            match self.parts.get(i) {
                Some(p) if p.partition().contains(prefix) => which.push(i),
                _ => return Err(self.not_held()),
            }
        }
        let mut batch = Vec::new();
        let mut answers = Vec::new();
        for (i, part) in self.parts.iter().enumerate() {
            batch.clear();
            batch.extend(
                hashes
                    .iter()
                    .zip(&which)
                    .filter(|(_, &w)| w == i)
                    .map(|(h, _)| *h),
            );
            if batch.is_empty() {
                continue;
            }
            answers.clear();
            many(part, &batch, &mut answers)?;
            let slots = which.iter().enumerate().filter(|(_, &w)| w == i);
            for ((at, _), answer) in slots.zip(&answers) {
                out[start + at] = *answer;
            }
        }
        Ok(())
    }

    /// Looks `hash` up in the store of its part, without the filter (see [`Index::lookup`]).
    pub fn lookup(&self, hash: &HashBytes) -> Result<Option<Count>> {
        self.require_part(prefix_of(hash))?.lookup(hash)
    }

    /// Whether the filter of its part may hold `hash` (false when no part holds it).
    pub fn filter_contains(&self, hash: &HashBytes) -> bool {
        self.part_for(prefix_of(hash))
            .is_some_and(|p| p.filter_contains(hash))
    }

    /// Number of hashes under `prefix` (see [`Index::range_len`]).
    pub fn range_len(&self, prefix: u32) -> Result<u64> {
        self.require_part(prefix & LAST_PREFIX)?.range_len(prefix)
    }

    /// Appends the range body of `prefix` (see [`Index::write_range`]).
    pub fn write_range(&self, prefix: u32, out: &mut Vec<u8>) -> Result<()> {
        self.require_part(prefix & LAST_PREFIX)?
            .write_range(prefix, out)
    }

    /// Appends the padded range body of `prefix` (see [`Index::write_padded_range`]).
    pub fn write_padded_range<R: rand::Rng + ?Sized>(
        &self,
        prefix: u32,
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.require_part(prefix & LAST_PREFIX)?
            .write_padded_range(prefix, rng, out)
    }

    /// The error for a use that needs full hashes (see [`Index::require_full_store`]).
    pub fn require_full_store(&self, what: &str) -> Result<()> {
        self.parts
            .iter()
            .try_for_each(|p| p.require_full_store(what))
    }

    /// Lets what the indexes read from disk come in 2 MiB pages.
    pub fn prefer_huge_pages(&self) {
        self.parts.iter().for_each(Index::prefer_huge_pages);
    }
}

/// Checks that `parts` (sorted by partition, at least one) can answer as one: one hash kind,
/// key and store form, and partitions that do not overlap.
pub fn check_parts(parts: &[&Index]) -> Result<()> {
    let Some(first) = parts.first() else {
        return Err(Error::Invalid("no index given".into()));
    };
    let (kind, key, store) = (first.kind(), first.key(), first.store_form());
    for p in &parts[1..] {
        if (p.kind(), p.key(), p.store_form()) != (kind, key, store) {
            return Err(Error::Invalid(format!(
                "{}: a {} index of {} hashes with a {} store cannot answer beside {}, a {} \
                     index of {} hashes with a {} store: partitions must be of one kind, key \
                     and store form",
                p.path().display(),
                p.key(),
                p.kind().display_name(),
                p.store_form(),
                first.path().display(),
                key,
                kind.display_name(),
                store
            )));
        }
    }
    for pair in parts.windows(2) {
        if pair[0].partition().overlaps(pair[1].partition()) {
            return Err(Error::Invalid(format!(
                "{} (prefixes {}) and {} (prefixes {}) overlap: give partitions that hold \
                     separate prefixes (to add their counts, merge them into one index)",
                pair[0].path().display(),
                pair[0].partition(),
                pair[1].path().display(),
                pair[1].partition()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_single_prefixes() {
        assert_eq!(
            PrefixRange::parse("00000-7ffff"),
            Ok(PrefixRange::new(0, 0x7_FFFF).unwrap())
        );
        assert_eq!(
            PrefixRange::parse(" 5BAA6 "),
            Ok(PrefixRange::new(0x5BAA6, 0x5BAA6).unwrap())
        );
        assert!(PrefixRange::parse("80000-7FFFF").is_err());
        assert!(PrefixRange::parse("0000-7FFFF").is_err());
        assert!(PrefixRange::parse("00000-7FFFG").is_err());
        assert!(PrefixRange::parse("").is_err());
        assert_eq!(PrefixRange::WHOLE.to_string(), "00000-FFFFF");
        assert_eq!(PrefixRange::WHOLE.len(), 1 << 20);
    }

    #[test]
    fn encodes_and_decodes() {
        let r = PrefixRange::new(0x40000, 0x7_FFFF).unwrap();
        assert_eq!(PrefixRange::decode(&r.encode()), Some(r));
        assert_eq!(PrefixRange::decode(&[0; 7]), None);
        let mut backwards = [0u8; 8];
        backwards[..4].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(PrefixRange::decode(&backwards), None);
        let mut past = [0u8; 8];
        past[4..].copy_from_slice(&0x10_0000u32.to_le_bytes());
        assert_eq!(PrefixRange::decode(&past), None);
    }

    #[test]
    fn overlap_and_contains() {
        let a = PrefixRange::new(0, 10).unwrap();
        let b = PrefixRange::new(10, 20).unwrap();
        let c = PrefixRange::new(11, 20).unwrap();
        assert!(a.overlaps(b) && b.overlaps(a));
        assert!(!a.overlaps(c) && !c.overlaps(a));
        assert!(a.contains(0) && a.contains(10) && !a.contains(11));
    }
}
