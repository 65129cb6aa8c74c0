//! Partitions: an index that holds only the hashes of one range of 5-hex prefixes.
//!
//! A corpus too large for one machine is built as several partitions (`build --prefixes
//! 00000-3FFFF`, `40000-7FFFF`, …), on several machines if need be, from the same input.
//! Each partition index records its range (format version 4, see [`mod@crate::format`]), and
//! refuses to answer for a hash outside it rather than call it absent.

use std::fmt;

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
