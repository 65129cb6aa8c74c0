//! A golden index (any of the 21 in `tests/data`: versions 1 to 4, every store form, key and a
//! partition) with the fuzz input applied as byte patches, checksums fixed up on request, then
//! `Index::from_bytes` and every query (`exercise`).
//!
//! Why patches: an index with a store holds two directories of 4 MiB, so no small input is a
//! valid one, and mutating 8.5 MB inputs is slow and blind. Here the input is small and aims
//! at the file's structure: a patch names a region (the whole file, the header, the section
//! table or one section) and an offset in it, so most patches land somewhere meaningful. Most
//! of the file is behind checksums (the header's, the table's, each section's and each
//! directory group's), which would stop almost every patch at the first check; the input
//! chooses which checksums to fix up afterwards, so that both the checks and the code behind
//! them are reached.
//!
//! Input: `golden, fixups, asks`, then patches of 5 bytes `op|region, offset (24 bits LE),
//! value` up to a `0xFF` (regions: 0 file, 1 header, 2 section table, 3 to 11 sections 1 to 9,
//! 12 to 15 a resize), then query hashes of 20 bytes. Fix-ups: 1 directory group checksums, 2
//! section checksums, 4 file length, 8 section table checksum, 16 header checksum. Asks: 1
//! verify, 2 info, 4 for_each_entry.

use super::{exercise, golden, take, Asks, Loaded};
use leakdex::format::{
    directory_start, read_u64, sections_start, SectionId, GROUPS, GROUP_BUCKETS, HEADER_LEN,
    HUGE_ENTRY_LEN, SECTION_ENTRY_LEN,
};
use leakdex::hash::prefix_of;
use leakdex::{HashBytes, Index};

const BUCKETS: usize = leakdex::format::BUCKETS;
const OFFSETS_AT: usize = (GROUPS + 1) * 8;
const GROUP_CRCS_AT: usize = OFFSETS_AT + (BUCKETS + 1) * 4;

/// The `index_patch` target: one input.
pub fn index_patch(data: &[u8]) {
    let mut data = data;
    let [g, fix, ask] = take::<3>(&mut data);
    let golden = golden(g as usize);
    let version = u32::from_le_bytes(golden.bytes[8..12].try_into().unwrap());
    // One buffer for every execution: a fresh 8.5 MB one each time costs its page faults.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        buf.extend_from_slice(&golden.bytes);
        run(buf, golden, version, fix, ask, data);
    });
}

fn run(buf: &mut Vec<u8>, golden: &Loaded, version: u32, fix: u8, ask: u8, data: &[u8]) {
    let mut data = data;
    let mut touched = Vec::new();
    let mut moved = false;
    // Whether a patch changed a byte (a resize always does).
    let mut changed = false;
    while data.len() >= 5 {
        let [r, o0, o1, o2, value] = take::<5>(&mut data);
        if r == 0xFF {
            break;
        }
        let offset = u32::from_le_bytes([o0, o1, o2, 0]) as usize;
        let (region, op) = (r & 0x0F, r >> 4);
        let (start, len) = match region {
            0 => (0, buf.len()),
            1 => (0, HEADER_LEN),
            2 => (HEADER_LEN, sections_start(version) - HEADER_LEN),
            3..=11 => match golden.sections.get(region as usize - 3) {
                Some(s) => (s.offset as usize, s.len as usize),
                None => continue,
            },
            _ => {
                let by = offset % 4096 + 1;
                if op < 8 {
                    buf.truncate(buf.len().saturating_sub(by));
                } else {
                    buf.resize(buf.len() + by, value);
                }
                moved = true;
                changed = true;
                continue;
            }
        };
        if len == 0 {
            continue;
        }
        let at = start + offset % len;
        if at >= buf.len() {
            continue;
        }
        let before = buf[at..(at + 8).min(buf.len())].to_vec();
        match op {
            0..=7 => buf[at] = value,
            8..=11 => buf[at] ^= value,
            12..=13 => buf[at] = buf[at].wrapping_add(value),
            14 => {
                let end = (at + 4).min(buf.len());
                buf[at..end].copy_from_slice(&(value as u32).to_le_bytes()[..end - at]);
            }
            _ => {
                if let Some(old) = read_u64(buf, at) {
                    let new = old.wrapping_add(value as i8 as i64 as u64);
                    buf[at..at + 8].copy_from_slice(&new.to_le_bytes());
                }
            }
        }
        changed |= buf[at..at + before.len()] != before[..];
        touched.push(at);
        moved |= at < sections_start(version);
    }

    let (prefixes, groups) = aim(golden, &touched);
    fix_up(buf, golden, fix, &groups, &touched, moved);

    let Ok(index) = Index::from_bytes(buf, "fuzz.ldx") else {
        assert!(
            changed,
            "a golden whose patches changed nothing does not open"
        );
        return;
    };
    if !changed {
        // Fix-ups of unchanged bytes rewrite what was there: the golden answers as itself.
        assert!(
            buf[..] == golden.bytes[..],
            "fix-ups changed an unpatched golden"
        );
        for e in golden.entries.iter().step_by(97) {
            let expected = match golden.store {
                leakdex::format::StoreForm::None => leakdex::Presence::Possible,
                _ => leakdex::Presence::Found(e.count),
            };
            assert_eq!(index.probe(&e.hash).ok(), Some(expected), "a golden entry");
        }
    }
    // Queries: the entries of the ranges patched, a few others, and the input's own hashes.
    let mut hashes: Vec<HashBytes> = golden
        .entries
        .iter()
        .filter(|e| prefixes.contains(&prefix_of(&e.hash)))
        .chain(golden.entries.iter().step_by(41))
        .map(|e| e.hash)
        .take(64)
        .collect();
    let mut prefixes = prefixes;
    while data.len() >= 20 && hashes.len() < 80 {
        let h = take::<20>(&mut data);
        prefixes.push(prefix_of(&h));
        hashes.push(h);
    }
    prefixes.truncate(32);
    let partition = index.partition();
    prefixes.extend([0, 0xF_FFFF, partition.first(), partition.last() + 1]);
    let asks = Asks {
        verify: ask & 1 != 0,
        info: ask & 2 != 0,
        entries: ask & 4 != 0,
        seed: u64::from(ask),
    };
    exercise(&index, &hashes, &prefixes, asks);
}

/// The ranges whose answers the patches at `touched` can change, and the directory groups
/// (section 0 or 1, group) whose checksums they touch, by the golden's layout.
fn aim(golden: &Loaded, touched: &[usize]) -> (Vec<u32>, Vec<(usize, usize)>) {
    let mut prefixes = Vec::new();
    let mut groups = Vec::new();
    let section = |id: SectionId| golden.sections.get(id as usize - 1);
    let bytes_of = |id: SectionId| {
        section(id).map_or(&[][..], |s| {
            &golden.bytes[s.offset as usize..(s.offset + s.len) as usize]
        })
    };
    // The bucket whose entries `start..end` of a directory hold entry `i`.
    let bucket_of = |dir: &[u8], i: u64| -> Option<u32> {
        let (mut lo, mut hi) = (0usize, BUCKETS);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if directory_start(dir, mid + 1)? <= i {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo < BUCKETS).then_some(lo as u32)
    };
    for &at in touched {
        for (d, id) in [SectionId::Buckets, SectionId::OverflowDir]
            .into_iter()
            .enumerate()
        {
            let Some(s) = section(id).filter(|s| s.len > 0) else {
                continue;
            };
            let Some(rel) = at
                .checked_sub(s.offset as usize)
                .filter(|&r| r < s.len as usize)
            else {
                continue;
            };
            let (bucket, group) = if rel < OFFSETS_AT {
                let g = rel / 8;
                groups.push((d, g.saturating_sub(1)));
                (g * GROUP_BUCKETS, g)
            } else if rel < GROUP_CRCS_AT {
                let b = (rel - OFFSETS_AT) / 4;
                if b.is_multiple_of(GROUP_BUCKETS) {
                    groups.push((d, (b / GROUP_BUCKETS).saturating_sub(1)));
                }
                (b, b / GROUP_BUCKETS)
            } else {
                let g = (rel - GROUP_CRCS_AT) / 4;
                (g * GROUP_BUCKETS, g)
            };
            groups.push((d, group.min(GROUPS - 1)));
            prefixes.push(bucket.min(BUCKETS - 1) as u32);
            prefixes.push(bucket.saturating_sub(1) as u32);
        }
        let record_len = golden.store.record_len(golden.kind);
        let entry_len = golden.store.overflow_entry_len();
        let overflow_dir = bytes_of(SectionId::OverflowDir);
        let within = |id: SectionId| {
            section(id).and_then(|s| {
                at.checked_sub(s.offset as usize)
                    .filter(|&r| r < s.len as usize)
            })
        };
        if let Some(rel) = within(SectionId::Records) {
            if let Some(e) = golden.entries.get(rel / record_len.max(1)) {
                prefixes.push(prefix_of(&e.hash));
            }
        }
        if let Some(rel) = within(SectionId::Overflow) {
            prefixes.extend(bucket_of(overflow_dir, (rel / entry_len.max(1)) as u64));
        }
        if let Some(rel) = within(SectionId::HugeCounts) {
            let huge = bytes_of(SectionId::HugeCounts);
            if let Some(i) = read_u64(huge, rel / HUGE_ENTRY_LEN * HUGE_ENTRY_LEN) {
                prefixes.extend(bucket_of(overflow_dir, i));
            }
        }
    }
    prefixes.sort_unstable();
    prefixes.dedup();
    groups.sort_unstable();
    groups.dedup();
    (prefixes, groups)
}

/// Fixes up the checksums and length that `fix` asks for, in the order a writer makes them:
/// directory groups, sections (as the patched table places them), the file length, the
/// table, the header.
fn fix_up(
    buf: &mut [u8],
    golden: &Loaded,
    fix: u8,
    groups: &[(usize, usize)],
    touched: &[usize],
    moved: bool,
) {
    let version = u32::from_le_bytes(golden.bytes[8..12].try_into().unwrap());
    let table_end = sections_start(version);
    if buf.len() < table_end {
        return;
    }
    if fix & 1 != 0 {
        for &(d, g) in groups {
            let Some(s) = golden.sections.get(d) else {
                continue;
            };
            let dir = s.offset as usize;
            let Some(dir) = buf.get_mut(dir..dir + s.len as usize) else {
                continue;
            };
            let mut crc = crc32fast::Hasher::new();
            crc.update(&dir[g * 8..g * 8 + 16]);
            let at = OFFSETS_AT + g * GROUP_BUCKETS * 4;
            crc.update(&dir[at..at + (GROUP_BUCKETS + 1) * 4]);
            let at = GROUP_CRCS_AT + g * 4;
            dir[at..at + 4].copy_from_slice(&crc.finalize().to_le_bytes());
        }
    }
    if fix & 2 != 0 {
        let count = (table_end - HEADER_LEN) / SECTION_ENTRY_LEN;
        for i in 0..count {
            let entry = HEADER_LEN + i * SECTION_ENTRY_LEN;
            let offset = read_u64(buf, entry + 8).unwrap_or(u64::MAX) as usize;
            let len = read_u64(buf, entry + 16).unwrap_or(u64::MAX) as usize;
            let Some(end) = offset.checked_add(len).filter(|&e| e <= buf.len()) else {
                continue;
            };
            // Only sections patched, unless the table or the length changed.
            if !moved && !touched.iter().any(|&t| t >= offset && t < end) {
                continue;
            }
            let crc = crc32fast::hash(&buf[offset..end]);
            buf[entry + 24..entry + 28].copy_from_slice(&crc.to_le_bytes());
        }
    }
    if fix & 4 != 0 {
        let len = buf.len() as u64;
        buf[48..56].copy_from_slice(&len.to_le_bytes());
    }
    if fix & 8 != 0 {
        let crc = crc32fast::hash(&buf[HEADER_LEN..table_end]);
        buf[56..60].copy_from_slice(&crc.to_le_bytes());
    }
    if fix & 16 != 0 {
        let crc = crc32fast::hash(&buf[..60]);
        buf[60..64].copy_from_slice(&crc.to_le_bytes());
    }
}
