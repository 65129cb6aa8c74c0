//! The on-disk index format, version 4. This doc comment is the specification.
//!
//! All integers are little-endian. Every section starts at a multiple of 8 bytes from the
//! start of the file. CRC-32 is the IEEE polynomial (as in zlib, `crc32fast`).
//!
//! # Header (64 bytes at offset 0)
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `LEAKDEX\0` |
//! | 8 | 4 | format version (4; 1, 2 and 3 are still read, see below) |
//! | 12 | 4 | header length (64) |
//! | 16 | 1 | hash kind: 1 = SHA-1, 2 = NTLM |
//! | 17 | 1 | filter kind: 0 = none, 1 = BinaryFuse8, 2 = BinaryFuse16 |
//! | 18 | 1 | filter shard bits `s`, 0 to 12 |
//! | 19 | 1 | key type: 0 = password, 1 = login, 2 = pair (see [`crate::key`]) |
//! | 20 | 2 | number of sections (9; 8 before version 4) |
//! | 22 | 1 | login normalisation rule version: 0 for password keys, 1 for login and pair |
//! | 23 | 1 | store form: 0 = full, 1 = compact, 2 = none (filter only); see below |
//! | 24 | 8 | number of distinct hashes `n` (distinct 64-bit prefixes for `compact` and `none`) |
//! | 32 | 16 | sum of all counts (u128) |
//! | 48 | 8 | length of the whole file in bytes |
//! | 56 | 4 | CRC-32 of the section table |
//! | 60 | 4 | CRC-32 of header bytes 0..60 |
//!
//! # Section table (32 bytes per section, right after the header)
//! `id: u32, zero: u32, offset: u64, length: u64, crc32 of the section bytes: u32, zero: u32`.
//! The sections come in this order, each once, without overlapping: 1 `BUCKETS`,
//! 2 `OVERFLOW_DIR`, 3 `RECORDS`, 4 `OVERFLOW`, 5 `HUGE_COUNTS`, 6 `FILTER_DATA`,
//! 7 `FILTER_TABLE`, 8 `SOURCES`, 9 `PARTITION` (from version 4).
//!
//! # The exact store
//! Hashes are bucketed by their 20-bit range prefix (the first five hex digits), so a range is
//! one contiguous read and a lookup binary-searches one bucket.
//! - A *directory* maps each bucket `b` in 0..=2^20 to a start index `start(b)`. It is stored
//!   in two levels to stay small: 4,097 u64 *group bases* (a group is 256 buckets), then
//!   2^20 + 1 u32 *offsets*, `start(b) = base[b >> 8] + offset[b]`, then 4,096 u32 *group
//!   checksums*: the CRC-32 of `base[g]`, `base[g + 1]` and `offset[256 g ..= 256 g + 256]`
//!   (as stored, 1,044 bytes), so that a reader can check the part of the directory a query
//!   touches without reading the whole. `start(0) = 0`, `start(2^20)` is the total, `start`
//!   never decreases, and `offset[256 g] = 0`.
//! - `BUCKETS`: the directory of record indexes; bucket `b` holds records
//!   `start(b)..start(b + 1)`.
//! - `RECORDS`: `n` records of `hash bytes − 2` bytes (18 for SHA-1, 14 for NTLM), sorted by
//!   hash. Byte 0 holds the low nibble of hash byte 2 (the 6th hex digit) in its low 4 bits and
//!   a count code in its high 4 bits; bytes 1.. are hash bytes 3.. . Within a bucket the
//!   records are strictly increasing (no duplicate hashes). Count codes 0 to 14 are the
//!   count itself; code 15 means the count is in `OVERFLOW`.
//! - `OVERFLOW_DIR`: the directory of overflow entries per bucket.
//! - `OVERFLOW`: entries of 8 bytes, `position of the record within its bucket: u32,
//!   count: u32`, one per record with code 15, in record order. Count `u32::MAX` means the
//!   count is in `HUGE_COUNTS`.
//! - `HUGE_COUNTS`: entries of 16 bytes, `index of the overflow entry: u64, count: u64`,
//!   sorted by index, for counts of 2^32 − 1 and above.
//!
//! # Store forms
//! - **full** (0): as above.
//! - **compact** (1): the store keeps only the first 64 bits of each hash. Records are 6 bytes
//!   for both hash kinds, laid out as the full ones (byte 0: count code and the 6th hex digit;
//!   bytes 1..6: hash bytes 3..8). Hashes whose first 64 bits agree are one record whose count
//!   is the sum of theirs. Overflow entries are 4 bytes, `position of the record within its
//!   bucket: u16, count: u16`, with count `u16::MAX` meaning the count is in `HUGE_COUNTS`
//!   (whose entries are as above); so a bucket of a compact store holds at most 65,536
//!   records (about 6e10 hashes in all). A hash absent from the dump matches a record with a
//!   probability of about `n / 2^64` per query.
//! - **none** (2): no store. `BUCKETS`, `OVERFLOW_DIR`, `RECORDS`, `OVERFLOW` and
//!   `HUGE_COUNTS` are empty, the filter kind is not 0, and `n` is the number of filter keys.
//!   Queries can only answer "possibly present" (at the filter's false-positive rate) or
//!   "absent"; there are no counts and no ranges. `count sum` is still the sum of the input's
//!   counts.
//!
//! # The filter
//! A binary fuse filter (xorf) sharded by the top `s` bits of the hash (2^s shards; the
//! builder picks `s` from the number of hashes so that shards hold a million keys or more, up
//! to 4,096 shards, since small shards cost bits per key; a filter-only build from a stream
//! longer than its memory budget uses 4,096). The key of a hash is its first 64 bits (bits
//! 0..64, big-endian order), whatever `s` is, so that a compact store holds every key of its
//! filter. (In versions 1 and 2 it was bits 12..76.)
//! - `FILTER_TABLE`: 2^s entries of 48 bytes: `offset of the fingerprints within
//!   FILTER_DATA: u64, fingerprint count: u64, key count: u64, seed: u64, segment length: u32,
//!   segment length mask: u32, segment count length: u32, zero: u32`. A shard with no keys has
//!   zero fingerprints and contains nothing. Offsets are multiples of 8.
//! - `FILTER_DATA`: the fingerprints (u8 or little-endian u16), shard after shard.
//! - With filter kind 0 both sections are empty.
//!
//! # Sources
//! `SOURCES`: `count: u32`, then per source `name length: u32, name (UTF-8), size in bytes:
//! u64, lines: u64, modification time (Unix seconds, 0 when unknown): u64`.
//!
//! # Partition
//! `PARTITION` (8 bytes): `first prefix: u32, last prefix: u32`, the inclusive range of 5-hex
//! prefixes (0 to 0xFFFFF) whose hashes the index holds; `0, 0xFFFFF` for an index of a whole
//! dump. Every bucket outside the range is empty, the filter holds no key outside it, and a
//! reader refuses to answer for a hash outside it (see [`crate::IndexSet`]). Indexes before
//! version 4 have no such section and hold every prefix.
//!
//! # Compatibility
//! A reader refuses a file whose version is newer than it knows with
//! [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion), and a normalisation rule
//! newer than it applies likewise (its logins would be hashed differently).
//!
//! - Version 1 is the first. Its bytes 19 and 22..24 are zero and bytes 20..24 hold the number
//!   of sections as a u32, which reads the same as version 2's u16 with the bytes after it
//!   zero: a version-1 file is a `password` index. Everything else is as in version 2.
//! - Version 2 adds the key type (byte 19) and the normalisation rule version (byte 22).
//!   Its byte 23 is zero: a version-2 file is a `full` store.
//! - Version 3 adds the store form (byte 23), compact and filter-only stores, and takes the
//!   filter key from bits 0..64 instead of 12..76.
//! - Version 4 adds the `PARTITION` section (so 9 sections, and the first section starts 32
//!   bytes later).

use crate::hash::{HashBytes, HashKind};

/// Magic bytes at offset 0.
pub const MAGIC: [u8; 8] = *b"LEAKDEX\0";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 4;
/// Bytes in the header.
pub const HEADER_LEN: usize = 64;
/// Bytes per section-table entry.
pub const SECTION_ENTRY_LEN: usize = 32;
/// Number of range buckets (20-bit prefixes).
pub const BUCKETS: usize = 1 << 20;
/// Buckets per directory group.
pub const GROUP_BUCKETS: usize = 256;
/// Number of directory groups.
pub const GROUPS: usize = BUCKETS / GROUP_BUCKETS;
/// Where a directory's offsets start.
const OFFSETS_AT: usize = (GROUPS + 1) * 8;
/// Where a directory's group checksums start.
const GROUP_CRCS_AT: usize = OFFSETS_AT + (BUCKETS + 1) * 4;
/// Bytes of a directory (`BUCKETS` or `OVERFLOW_DIR`).
pub const DIRECTORY_LEN: usize = GROUP_CRCS_AT + GROUPS * 4;
/// Bytes per overflow entry of a full store.
pub const OVERFLOW_ENTRY_LEN: usize = 8;
/// Bytes per overflow entry of a compact store.
pub const COMPACT_OVERFLOW_ENTRY_LEN: usize = 4;
/// Overflow count of a compact store meaning "see `HUGE_COUNTS`".
pub const COMPACT_HUGE_MARK: u16 = u16::MAX;
/// Bytes per record of a compact store.
pub const COMPACT_RECORD_LEN: usize = 6;
/// Overflow count meaning "see `HUGE_COUNTS`".
pub const HUGE_MARK: u32 = u32::MAX;
/// Bytes per huge-count entry.
pub const HUGE_ENTRY_LEN: usize = 16;
/// Count codes below this are the count itself.
pub const OVERFLOW_CODE: u8 = 15;
/// Most filter shard bits (4,096 shards).
pub const MAX_SHARD_BITS: u8 = 12;
/// Keys per filter shard the builder aims for at least.
pub const SHARD_TARGET_KEYS: u64 = 1 << 20;
/// Bytes per filter-table entry.
pub const SHARD_ENTRY_LEN: usize = 48;

/// Identifiers of the sections, in the order they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionId {
    /// Record index of each bucket's start.
    Buckets = 1,
    /// Overflow index of each bucket's start.
    OverflowDir = 2,
    /// The fixed-width records.
    Records = 3,
    /// Counts that do not fit a record's count code.
    Overflow = 4,
    /// Counts that do not fit 32 bits.
    HugeCounts = 5,
    /// Filter fingerprints.
    FilterData = 6,
    /// Per-shard filter descriptors.
    FilterTable = 7,
    /// What the index was built from.
    Sources = 8,
    /// The range of prefixes the index holds (from version 4).
    Partition = 9,
}

impl SectionId {
    /// All sections, in file order.
    pub const ALL: [SectionId; 9] = [
        SectionId::Buckets,
        SectionId::OverflowDir,
        SectionId::Records,
        SectionId::Overflow,
        SectionId::HugeCounts,
        SectionId::FilterData,
        SectionId::FilterTable,
        SectionId::Sources,
        SectionId::Partition,
    ];

    /// The sections of a file of format `version`: `PARTITION` came in version 4.
    pub fn of_version(version: u32) -> &'static [SectionId] {
        if version >= 4 {
            &SectionId::ALL
        } else {
            &SectionId::ALL[..8]
        }
    }

    /// Name shown by `info` and in errors.
    pub fn name(self) -> &'static str {
        match self {
            SectionId::Buckets => "buckets",
            SectionId::OverflowDir => "overflow directory",
            SectionId::Records => "records",
            SectionId::Overflow => "overflow counts",
            SectionId::HugeCounts => "huge counts",
            SectionId::FilterTable => "filter table",
            SectionId::FilterData => "filter fingerprints",
            SectionId::Sources => "sources",
            SectionId::Partition => "partition",
        }
    }
}

/// Bytes before the first section (header and table) in the files this build writes.
pub const SECTIONS_START: usize = sections_start(FORMAT_VERSION);

/// Bytes before the first section (header and table) in a file of format `version`.
pub const fn sections_start(version: u32) -> usize {
    HEADER_LEN + if version >= 4 { 9 } else { 8 } * SECTION_ENTRY_LEN
}

/// The filter kinds an index can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterKind {
    /// No filter: every check reads the store.
    None,
    /// BinaryFuse8: about 9 bits per hash, false-positive rate 2^-8.
    Fuse8,
    /// BinaryFuse16: about 18 bits per hash, false-positive rate 2^-16.
    Fuse16,
}

impl FilterKind {
    /// Code stored in the header.
    pub fn code(self) -> u8 {
        match self {
            FilterKind::None => 0,
            FilterKind::Fuse8 => 1,
            FilterKind::Fuse16 => 2,
        }
    }

    /// The kind for a header code.
    pub fn from_code(code: u8) -> Option<FilterKind> {
        match code {
            0 => Some(FilterKind::None),
            1 => Some(FilterKind::Fuse8),
            2 => Some(FilterKind::Fuse16),
            _ => None,
        }
    }

    /// Bytes per fingerprint (0 for none).
    pub fn fingerprint_bytes(self) -> usize {
        match self {
            FilterKind::None => 0,
            FilterKind::Fuse8 => 1,
            FilterKind::Fuse16 => 2,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FilterKind::None => "none",
            FilterKind::Fuse8 => "fuse8",
            FilterKind::Fuse16 => "fuse16",
        }
    }

    /// The filter's design false-positive rate.
    pub fn false_positive_rate(self) -> f64 {
        match self {
            FilterKind::None => 0.0,
            FilterKind::Fuse8 => 1.0 / 256.0,
            FilterKind::Fuse16 => 1.0 / 65536.0,
        }
    }
}

impl std::str::FromStr for FilterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(FilterKind::None),
            "fuse8" => Ok(FilterKind::Fuse8),
            "fuse16" => Ok(FilterKind::Fuse16),
            _ => Err(format!(
                "unknown filter `{s}` (expected fuse8, fuse16 or none)"
            )),
        }
    }
}

/// What an index keeps of each hash besides its filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreForm {
    /// Every hash whole, with its count: exact answers and ranges (about 18.7 bytes per
    /// SHA-1 hash).
    Full,
    /// The first 64 bits of every hash, with its count (about 6.4 bytes per hash): counts,
    /// and a false match about once in `2^64 / n` queries; no ranges.
    Compact,
    /// No store, the filter alone: "possibly present" or "absent", no counts, no ranges.
    None,
}

impl StoreForm {
    /// Code stored in the header.
    pub fn code(self) -> u8 {
        match self {
            StoreForm::Full => 0,
            StoreForm::Compact => 1,
            StoreForm::None => 2,
        }
    }

    /// The form for a header code.
    pub fn from_code(code: u8) -> Option<StoreForm> {
        match code {
            0 => Some(StoreForm::Full),
            1 => Some(StoreForm::Compact),
            2 => Some(StoreForm::None),
            _ => None,
        }
    }

    /// The name used on the command line and by `info`.
    pub fn name(self) -> &'static str {
        match self {
            StoreForm::Full => "full",
            StoreForm::Compact => "compact",
            StoreForm::None => "none",
        }
    }

    /// Bytes per record for a hash kind (0 without a store).
    pub const fn record_len(self, kind: HashKind) -> usize {
        match self {
            StoreForm::Full => record_len(kind),
            StoreForm::Compact => COMPACT_RECORD_LEN,
            StoreForm::None => 0,
        }
    }

    /// Bytes per overflow entry (0 without a store).
    pub const fn overflow_entry_len(self) -> usize {
        match self {
            StoreForm::Full => OVERFLOW_ENTRY_LEN,
            StoreForm::Compact => COMPACT_OVERFLOW_ENTRY_LEN,
            StoreForm::None => 0,
        }
    }

    /// Whether this form's hashes can be made from `from`'s: a store keeps what a smaller
    /// one needs, and nothing can be made from a filter alone.
    pub fn can_be_made_from(self, from: StoreForm) -> bool {
        match from {
            StoreForm::Full => true,
            StoreForm::Compact => self != StoreForm::Full,
            StoreForm::None => false,
        }
    }
}

impl std::fmt::Display for StoreForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for StoreForm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(StoreForm::Full),
            "compact" => Ok(StoreForm::Compact),
            "none" => Ok(StoreForm::None),
            _ => Err(format!(
                "unknown store form `{s}` (expected full, compact or none)"
            )),
        }
    }
}

/// Encodes overflow entry `out` (`store.overflow_entry_len()` bytes) of the record at
/// `position` in its bucket with `count`. Returns whether the count is too large for the entry
/// and goes in `HUGE_COUNTS` instead (the entry then holds the huge mark), or `None` when the
/// position does not fit the form's entry.
pub fn encode_overflow_entry(
    store: StoreForm,
    position: u64,
    count: u64,
    out: &mut [u8],
) -> Option<bool> {
    if store == StoreForm::Compact {
        let position = u16::try_from(position).ok()?;
        let small = u16::try_from(count)
            .ok()
            .filter(|&c| c != COMPACT_HUGE_MARK);
        out[..2].copy_from_slice(&position.to_le_bytes());
        out[2..4].copy_from_slice(&small.unwrap_or(COMPACT_HUGE_MARK).to_le_bytes());
        return Some(small.is_none());
    }
    let position = u32::try_from(position).ok()?;
    let small = u32::try_from(count).ok().filter(|&c| c != HUGE_MARK);
    out[..4].copy_from_slice(&position.to_le_bytes());
    out[4..8].copy_from_slice(&small.unwrap_or(HUGE_MARK).to_le_bytes());
    Some(small.is_none())
}

/// Decodes overflow entry `i` of an `OVERFLOW` section: the record's position in its bucket,
/// and its count, or `None` for a count marked huge (in `HUGE_COUNTS`). `None` past the end.
#[inline]
pub fn decode_overflow_entry(store: StoreForm, bytes: &[u8], i: u64) -> Option<(u32, Option<u64>)> {
    let at = usize::try_from(i)
        .ok()?
        .checked_mul(store.overflow_entry_len())?;
    if store == StoreForm::Compact {
        let b = bytes.get(at..at.checked_add(COMPACT_OVERFLOW_ENTRY_LEN)?)?;
        let count = u16::from_le_bytes([b[2], b[3]]);
        let count = (count != COMPACT_HUGE_MARK).then_some(count as u64);
        return Some((u16::from_le_bytes([b[0], b[1]]) as u32, count));
    }
    let count = read_u32(bytes, at.checked_add(4)?)?;
    Some((
        read_u32(bytes, at)?,
        (count != HUGE_MARK).then_some(count as u64),
    ))
}

/// Hash-kind code stored in the header.
pub fn kind_code(kind: HashKind) -> u8 {
    match kind {
        HashKind::Sha1 => 1,
        HashKind::Ntlm => 2,
    }
}

/// The hash kind for a header code.
pub fn kind_from_code(code: u8) -> Option<HashKind> {
    match code {
        1 => Some(HashKind::Sha1),
        2 => Some(HashKind::Ntlm),
        _ => None,
    }
}

/// Bytes per record for a hash kind.
pub const fn record_len(kind: HashKind) -> usize {
    kind.byte_len() - 2
}

/// Shard of a hash: its top `bits` bits.
#[inline]
pub fn shard_of(hash: &HashBytes, bits: u8) -> usize {
    (((hash[0] as usize) << 4) | ((hash[1] as usize) >> 4)) >> (MAX_SHARD_BITS - bits)
}

/// Shard bits for about `keys` keys: shards of at least [`SHARD_TARGET_KEYS`], at most 4,096.
pub fn shard_bits_for(keys: u64) -> u8 {
    let shards = (keys / SHARD_TARGET_KEYS).max(1);
    (63 - shards.leading_zeros() as u8).min(MAX_SHARD_BITS)
}

/// Encodes a directory from its `BUCKETS + 1` starts; `Err(group)` when a group spans more
/// than `u32::MAX` entries.
pub fn encode_directory(starts: &[u64]) -> Result<Vec<u8>, usize> {
    debug_assert_eq!(starts.len(), BUCKETS + 1);
    let mut out = Vec::with_capacity(DIRECTORY_LEN);
    for g in 0..=GROUPS {
        out.extend_from_slice(&starts[g * GROUP_BUCKETS].to_le_bytes());
    }
    for (b, &s) in starts.iter().enumerate() {
        let base = starts[(b / GROUP_BUCKETS) * GROUP_BUCKETS];
        let rel = u32::try_from(s - base).map_err(|_| b / GROUP_BUCKETS)?;
        out.extend_from_slice(&rel.to_le_bytes());
    }
    for g in 0..GROUPS {
        let crc = group_crc(&out, g);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    Ok(out)
}

/// CRC-32 of what group `g` of a directory depends on: its base, the next base, and its
/// offsets up to and including the next group's first.
fn group_crc(dir: &[u8], g: usize) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&dir[g * 8..g * 8 + 16]);
    let at = OFFSETS_AT + g * GROUP_BUCKETS * 4;
    crc.update(&dir[at..at + (GROUP_BUCKETS + 1) * 4]);
    crc.finalize()
}

/// Checks group `g` of a directory of `dir.len() == DIRECTORY_LEN` bytes whose entries end
/// at `total`: its checksum, offsets that start at 0 and never decrease, and bases in order.
/// After this, `directory_start` of the group's buckets (and the next group's first) is
/// exact and at most `total`.
pub fn check_directory_group(dir: &[u8], g: usize, total: u64) -> Result<(), String> {
    if dir.len() != DIRECTORY_LEN || g >= GROUPS {
        return Err("directory of the wrong size".into());
    }
    let stored = read_u32(dir, GROUP_CRCS_AT + g * 4).unwrap_or(0);
    if group_crc(dir, g) != stored {
        return Err(format!("checksum of group {g:03X} does not match"));
    }
    let base = read_u64(dir, g * 8).unwrap_or(u64::MAX);
    let next = read_u64(dir, g * 8 + 8).unwrap_or(0);
    if base > next || next > total || (g == 0 && base != 0) || (g + 1 == GROUPS && next != total) {
        return Err(format!("bases of group {g:03X} are out of order"));
    }
    let at = OFFSETS_AT + g * GROUP_BUCKETS * 4;
    let mut prev = 0u64;
    for (i, c) in dir[at..at + GROUP_BUCKETS * 4].chunks_exact(4).enumerate() {
        let rel = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64;
        if (i == 0 && rel != 0) || rel < prev || base + rel > next {
            return Err(format!("offsets of group {g:03X} are out of order"));
        }
        prev = rel;
    }
    if read_u32(dir, at + GROUP_BUCKETS * 4) != Some(0) {
        return Err(format!("group {:03X} does not start at its base", g + 1));
    }
    Ok(())
}

/// `start(b)` of a directory; `None` past its end or on overflow.
#[inline]
pub fn directory_start(dir: &[u8], bucket: usize) -> Option<u64> {
    let base = read_u64(dir, (bucket / GROUP_BUCKETS) * 8)?;
    let rel = read_u32(dir, OFFSETS_AT + bucket * 4)?;
    base.checked_add(rel as u64)
}

/// Filter key of a hash (format version 3): its first 64 bits.
#[inline]
pub fn filter_key(hash: &HashBytes) -> u64 {
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&hash[0..8]);
    u64::from_be_bytes(eight)
}

/// Filter key of a hash in format versions 1 and 2: the 64 bits after the top 12.
#[inline]
pub fn legacy_filter_key(hash: &HashBytes) -> u64 {
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&hash[1..9]);
    (u64::from_be_bytes(eight) << 4) | (hash[9] >> 4) as u64
}

/// The hash with every byte past its first 64 bits zero: what a compact store keeps.
#[inline]
pub fn truncate_hash(hash: &HashBytes) -> HashBytes {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(&hash[..8]);
    h
}

/// Writes the record of `hash` with count `code` into `out` (of `record_len(kind)` bytes).
#[inline]
pub fn encode_record(hash: &HashBytes, code: u8, out: &mut [u8]) {
    out[0] = (code << 4) | (hash[2] & 0x0F);
    let len = out.len();
    out[1..].copy_from_slice(&hash[3..3 + len - 1]);
}

/// The hash bytes a record stands for, given its bucket; the bytes past the hash are zero.
#[inline]
pub fn record_hash(bucket: u32, record: &[u8]) -> HashBytes {
    let mut h = [0u8; 20];
    h[0] = (bucket >> 12) as u8;
    h[1] = (bucket >> 4) as u8;
    h[2] = ((bucket as u8 & 0x0F) << 4) | (record[0] & 0x0F);
    h[3..3 + record.len() - 1].copy_from_slice(&record[1..]);
    h
}

/// The header's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Hash kind.
    pub kind: HashKind,
    /// What the hashes are hashes of (always `Password` in version 1).
    pub key: crate::key::KeyType,
    /// The login normalisation rule the hashes were made with (0 for passwords).
    pub normalisation: u8,
    /// What the index keeps of each hash (always `Full` before version 3).
    pub store: StoreForm,
    /// Filter kind.
    pub filter: FilterKind,
    /// Filter shard bits.
    pub shard_bits: u8,
    /// Distinct hashes.
    pub hash_count: u64,
    /// Sum of counts.
    pub count_sum: u128,
    /// Whole file length.
    pub file_len: u64,
    /// CRC-32 of the section table.
    pub table_crc: u32,
}

/// One section-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// Which section.
    pub id: SectionId,
    /// Offset from the start of the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32 of the section's bytes.
    pub crc: u32,
}

impl Header {
    /// Serialises the header, checksum included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[16] = kind_code(self.kind);
        b[17] = self.filter.code();
        b[18] = self.shard_bits;
        b[19] = self.key.code();
        b[20..22].copy_from_slice(&(SectionId::ALL.len() as u16).to_le_bytes());
        b[22] = self.normalisation;
        b[23] = self.store.code();
        b[24..32].copy_from_slice(&self.hash_count.to_le_bytes());
        b[32..48].copy_from_slice(&self.count_sum.to_le_bytes());
        b[48..56].copy_from_slice(&self.file_len.to_le_bytes());
        b[56..60].copy_from_slice(&self.table_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the header at the start of `bytes` (the file, or at least its
    /// first [`HEADER_LEN`] bytes, whose length is only compared with the header's by the
    /// caller): magic bytes, version, checksum, and fields that are known and agree with each
    /// other. The checks run in a fixed order, so that a damaged file gets the same message.
    pub fn decode(bytes: &[u8]) -> Result<Header, HeaderError> {
        let bad = |m: String| HeaderError::Corrupt(m);
        if bytes.is_empty() {
            return Err(bad("the file is empty".into()));
        }
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            return Err(bad("wrong magic bytes: this is not a leakdex index".into()));
        }
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!(
                "truncated: {} bytes, shorter than the header",
                bytes.len()
            )));
        }
        let version = read_u32(bytes, 8).unwrap_or(0);
        if version > FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        let header_crc = read_u32(bytes, 60).unwrap_or(0);
        if crc32fast::hash(&bytes[..60]) != header_crc {
            return Err(bad("the header's checksum does not match".into()));
        }
        if version == 0 {
            return Err(bad("format version 0 does not exist".into()));
        }
        let kind = kind_from_code(bytes[16]).ok_or_else(|| bad("unknown hash kind".into()))?;
        let filter =
            FilterKind::from_code(bytes[17]).ok_or_else(|| bad("unknown filter kind".into()))?;
        // Version 1 wrote zeros where version 2 keeps the key type and normalisation rule.
        let key = crate::key::KeyType::from_code(bytes[19])
            .ok_or_else(|| bad(format!("unknown key type {}", bytes[19])))?;
        let normalisation = bytes[22];
        if normalisation > crate::key::NORMALISATION_VERSION {
            return Err(bad(format!(
                "its logins were normalised by rule version {normalisation}, newer than this \
                 leakdex applies (up to {}); upgrade leakdex",
                crate::key::NORMALISATION_VERSION
            )));
        }
        // Before version 3, byte 23 was zero and every store full.
        let store = StoreForm::from_code(bytes[23])
            .filter(|s| version >= 3 || *s == StoreForm::Full)
            .ok_or_else(|| {
                bad(format!(
                    "unknown store form {} for format version {version}",
                    bytes[23]
                ))
            })?;
        if store == StoreForm::None && filter == FilterKind::None {
            return Err(bad(
                "its header describes an index with neither a store nor a filter".into(),
            ));
        }
        if (version == 1 && (key != crate::key::KeyType::Password || normalisation != 0))
            || normalisation != key.normalisation()
            || !key.allows(kind)
        {
            return Err(bad(format!(
                "its header describes a {key} index of {} hashes with normalisation rule \
                 {normalisation} in format version {version}, which does not exist",
                kind.display_name()
            )));
        }
        let header = Header {
            version,
            kind,
            key,
            normalisation,
            store,
            filter,
            shard_bits: bytes[18],
            hash_count: read_u64(bytes, 24).unwrap_or(0),
            count_sum: u128::from_le_bytes(bytes[32..48].try_into().expect("16 bytes")),
            file_len: read_u64(bytes, 48).unwrap_or(0),
            table_crc: read_u32(bytes, 56).unwrap_or(0),
        };
        if read_u32(bytes, 12) != Some(HEADER_LEN as u32)
            || bytes[20..22] != (SectionId::of_version(version).len() as u16).to_le_bytes()
        {
            return Err(bad("unexpected header or section-table size".into()));
        }
        Ok(header)
    }
}

/// Why [`Header::decode`] refused a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Damaged, or not an index: the message says what is wrong.
    Corrupt(String),
    /// A format version newer than [`FORMAT_VERSION`], this one.
    UnsupportedVersion(u32),
}

/// Serialises the section table.
pub fn encode_sections(sections: &[Section]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sections.len() * SECTION_ENTRY_LEN);
    for s in sections {
        out.extend_from_slice(&(s.id as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&s.offset.to_le_bytes());
        out.extend_from_slice(&s.len.to_le_bytes());
        out.extend_from_slice(&s.crc.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out
}

/// Decodes and checks the section table of `file` (the whole file, whose header is `header`):
/// its checksum, then each section's identifier, 8-byte alignment, order, and end within the
/// file. `Err` says what is wrong.
pub fn decode_sections(file: &[u8], header: &Header) -> Result<Vec<Section>, String> {
    let version = header.version;
    let table = file
        .get(HEADER_LEN..sections_start(version))
        .ok_or_else(|| "truncated section table".to_string())?;
    if crc32fast::hash(table) != header.table_crc {
        return Err("the section table's checksum does not match".into());
    }
    let mut sections = Vec::with_capacity(SectionId::ALL.len());
    let mut prev_end = sections_start(version) as u64;
    for (i, id) in SectionId::of_version(version).iter().enumerate() {
        let at = i * SECTION_ENTRY_LEN;
        let offset = read_u64(table, at + 8).unwrap_or(u64::MAX);
        let len = read_u64(table, at + 16).unwrap_or(u64::MAX);
        let section = Section {
            id: *id,
            offset,
            len,
            crc: read_u32(table, at + 24).unwrap_or(0),
        };
        let end = offset.checked_add(len);
        if read_u32(table, at) != Some(*id as u32)
            || !offset.is_multiple_of(8)
            || offset < prev_end
            || end.is_none_or(|e| e > file.len() as u64)
        {
            return Err(format!("the {} section is out of place", id.name()));
        }
        prev_end = end.unwrap_or(0);
        sections.push(section);
    }
    Ok(sections)
}

// --- Sources ---------------------------------------------------------------------

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

/// Encodes the sources section.
pub fn encode_sources(sources: &[SourceInfo]) -> Vec<u8> {
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

/// Reads a little-endian u32 at `at`, or `None` past the end.
#[inline]
pub fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// Reads a little-endian u64 at `at`, or `None` past the end.
#[inline]
pub fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// Rounds `n` up to a multiple of 8.
pub const fn align8(n: u64) -> u64 {
    (n + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyType;

    fn header(kind: HashKind, key: KeyType, store: StoreForm, filter: FilterKind) -> Header {
        Header {
            version: FORMAT_VERSION,
            kind,
            key,
            normalisation: key.normalisation(),
            store,
            filter,
            shard_bits: 7,
            hash_count: 123_456_789,
            count_sum: u128::from(u64::MAX) * 3 + 5,
            file_len: 9_876_543_210,
            table_crc: 0xDEAD_BEEF,
        }
    }

    #[test]
    fn headers_decode_as_they_were_encoded() {
        for (kind, key, store, filter) in [
            (
                HashKind::Sha1,
                KeyType::Password,
                StoreForm::Full,
                FilterKind::Fuse8,
            ),
            (
                HashKind::Ntlm,
                KeyType::Password,
                StoreForm::Compact,
                FilterKind::None,
            ),
            (
                HashKind::Sha1,
                KeyType::Login,
                StoreForm::None,
                FilterKind::Fuse16,
            ),
            (
                HashKind::Sha1,
                KeyType::Pair,
                StoreForm::Full,
                FilterKind::Fuse8,
            ),
        ] {
            let h = header(kind, key, store, filter);
            assert_eq!(Header::decode(&h.encode()), Ok(h.clone()));
        }
    }

    #[test]
    fn damaged_headers_are_refused_with_the_reason() {
        let h = header(
            HashKind::Sha1,
            KeyType::Password,
            StoreForm::Full,
            FilterKind::Fuse8,
        );
        let bytes = h.encode();
        let corrupt = |m: &str| Err(HeaderError::Corrupt(m.to_string()));
        assert_eq!(Header::decode(&[]), corrupt("the file is empty"));
        assert_eq!(
            Header::decode(b"LEAKDEY\0"),
            corrupt("wrong magic bytes: this is not a leakdex index")
        );
        assert_eq!(
            Header::decode(&bytes[..40]),
            corrupt("truncated: 40 bytes, shorter than the header")
        );
        let mut flipped = bytes;
        flipped[30] ^= 1;
        assert_eq!(
            Header::decode(&flipped),
            corrupt("the header's checksum does not match")
        );
        let newer = Header {
            version: FORMAT_VERSION + 1,
            ..h.clone()
        };
        assert_eq!(
            Header::decode(&newer.encode()),
            Err(HeaderError::UnsupportedVersion(FORMAT_VERSION + 1))
        );
        // A field out of range, with a valid checksum.
        let mut bad_kind = bytes;
        bad_kind[16] = 9;
        let crc = crc32fast::hash(&bad_kind[..60]);
        bad_kind[60..64].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Header::decode(&bad_kind), corrupt("unknown hash kind"));
    }

    #[test]
    fn section_tables_decode_as_they_were_encoded() {
        let mut sections = Vec::new();
        let mut offset = SECTIONS_START as u64;
        for (i, id) in SectionId::ALL.iter().enumerate() {
            let len = (i as u64 * 37) % 50;
            sections.push(Section {
                id: *id,
                offset,
                len,
                crc: 0x0101_0101 * i as u32,
            });
            offset = align8(offset + len);
        }
        let table = encode_sections(&sections);
        assert_eq!(table.len(), SECTIONS_START - HEADER_LEN);
        let h = Header {
            file_len: offset,
            table_crc: crc32fast::hash(&table),
            ..header(
                HashKind::Sha1,
                KeyType::Password,
                StoreForm::Full,
                FilterKind::Fuse8,
            )
        };
        let mut file = h.encode().to_vec();
        file.extend_from_slice(&table);
        file.resize(offset as usize, 0);
        assert_eq!(decode_sections(&file, &h), Ok(sections.clone()));

        // A section that ends past the file, and a table whose checksum fails.
        let last = sections[sections.len() - 1];
        assert_eq!(
            decode_sections(&file[..(last.offset + last.len) as usize - 1], &h),
            Err("the partition section is out of place".into())
        );
        let mut flipped = file.clone();
        flipped[HEADER_LEN + 9] ^= 1;
        assert_eq!(
            decode_sections(&flipped, &h),
            Err("the section table's checksum does not match".into())
        );
        assert_eq!(
            decode_sections(&file[..HEADER_LEN + 10], &h),
            Err("truncated section table".into())
        );
    }
}
