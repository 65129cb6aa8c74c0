//! Damaged, truncated, foreign and future index files: a clear error, never a panic, never a
//! wrong answer from an index that `verify` accepts.

mod common;

use common::*;
use leakdex::format::{HEADER_LEN, SECTIONS_START, SECTION_ENTRY_LEN};
use leakdex::{BuildOptions, Error, FilterKind, HashKind, Index, Presence, StoreForm};

/// A small index with every kind of section filled, its bytes and its model.
fn sample(filter: FilterKind) -> (Vec<u8>, Model, Vec<u32>) {
    sample_of(filter, StoreForm::Full)
}

/// The sample in a store form.
fn sample_of(filter: FilterKind, store: StoreForm) -> (Vec<u8>, Model, Vec<u32>) {
    let mut model = Model::new();
    let mut text = String::new();
    let prefixes = [0x00000u32, 0x5BAA6, 0x5BAA7, 0xFFFFF];
    for i in 0..400u64 {
        let h = hash_from(i, prefixes[(i % 4) as usize], HashKind::Sha1);
        let count = match i % 5 {
            0 => 1 + i,
            1 => 100_000 + i,
            2 => (1 << 33) + i,
            _ => i % 14,
        };
        model_add(&mut model, h, count);
        text.push_str(&format!("{}:{count}\n", hex(&h, HashKind::Sha1)));
    }
    let dir = tempfile::tempdir().unwrap();
    let options = BuildOptions {
        filter,
        store,
        ..BuildOptions::default()
    };
    let index = build_from_text(dir.path(), text.as_bytes(), &options).unwrap();
    let bytes = std::fs::read(index.path()).unwrap();
    let mut touched = prefixes.to_vec();
    touched.push(0x12345);
    (bytes, model, touched)
}

/// Asks every question of an index; must not panic. Returns whether all answers were right.
fn answers_match(index: &Index, model: &Model, prefixes: &[u32]) -> bool {
    answers_match_of(index, model, prefixes, StoreForm::Full)
}

/// As [`answers_match`], for an index that should have the store form `store`: a compact one
/// gives the counts and no ranges, a filter-only one "possibly present" and no counts.
fn answers_match_of(index: &Index, model: &Model, prefixes: &[u32], store: StoreForm) -> bool {
    if store != StoreForm::Full {
        let mut right = index.store_form() == store;
        for (h, &c) in model {
            let expected = match store {
                StoreForm::None => Presence::Possible,
                _ => Presence::Found(c),
            };
            right &= matches!(index.probe(h), Ok(p) if p == expected);
            let _ = index.check(h);
            let _ = index.lookup(h);
        }
        for i in 5000..5100u64 {
            let h = hash_from(i, prefixes[(i % 4) as usize], HashKind::Sha1);
            let p = index.probe(&h);
            if store == StoreForm::Compact {
                right &= matches!(p, Ok(Presence::Absent));
            } else {
                right &= p.is_ok();
            }
        }
        for &p in prefixes {
            right &= index.range_body(p).is_err();
            let _ = index.write_padded_range(p, &mut rand::rng(), &mut Vec::new());
        }
        let _ = index.info();
        return right;
    }
    let mut right = true;
    for (h, &c) in model {
        right &= matches!(index.check(h), Ok(Some(x)) if x == c);
        right &= matches!(index.lookup(h), Ok(Some(x)) if x == c);
    }
    for i in 5000..5100u64 {
        let h = hash_from(i, prefixes[(i % 4) as usize], HashKind::Sha1);
        right &= matches!(index.check(&h), Ok(None));
    }
    for &p in prefixes {
        match index.range_body(p) {
            Ok(body) => right &= body == model_range(model, HashKind::Sha1, p),
            Err(_) => right = false,
        }
        let _ = index.write_padded_range(p, &mut rand::rng(), &mut Vec::new());
    }
    let _ = index.info();
    right
}

fn section_table(bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    (0..leakdex::format::SectionId::ALL.len())
        .map(|i| {
            let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
            let off = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
            let len = u64::from_le_bytes(bytes[at + 16..at + 24].try_into().unwrap()) as usize;
            (at, off, len)
        })
        .collect()
}

/// Recomputes every checksum, as a crafted (not merely damaged) file would have.
fn fix_checksums(bytes: &mut [u8]) {
    for (at, off, len) in section_table(bytes) {
        if off.checked_add(len).is_some_and(|e| e <= bytes.len()) {
            let crc = crc32fast::hash(&bytes[off..off + len]);
            bytes[at + 24..at + 28].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&bytes[HEADER_LEN..SECTIONS_START]);
    bytes[56..60].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
}

/// Positions worth damaging: all of the header and table, and a spread over each section.
fn positions(bytes: &[u8]) -> Vec<usize> {
    let mut out: Vec<usize> = (0..SECTIONS_START).collect();
    for (_, off, len) in section_table(bytes) {
        if len == 0 {
            continue;
        }
        let step = (len / 24).max(1);
        out.extend((off..off + len).step_by(step));
        out.push(off + len - 1);
    }
    out
}

#[test]
fn the_sample_is_sound() {
    for filter in [FilterKind::Fuse8, FilterKind::Fuse16, FilterKind::None] {
        let (bytes, model, prefixes) = sample(filter);
        let index = Index::from_bytes(&bytes, "sample").unwrap();
        assert!(answers_match(&index, &model, &prefixes));
        index.verify().unwrap();
        assert!(index.overflow_count() > 0);
    }
}

#[test]
fn empty_foreign_truncated_and_future_files_are_refused() {
    let (bytes, _, _) = sample(FilterKind::Fuse8);
    let err = Index::from_bytes(&[], "empty.ldx").unwrap_err();
    assert!(err
        .to_string()
        .contains("empty.ldx: not a valid leakdex index: the file is empty"));
    let err = Index::from_bytes(b"HASH:COUNT\r\n", "dump.txt").unwrap_err();
    assert!(err.to_string().contains("wrong magic"), "{err}");

    let mut lengths: Vec<usize> = (0..SECTIONS_START + 16).collect();
    lengths.extend((0..bytes.len()).step_by(4099));
    lengths.extend([bytes.len() - 1, bytes.len() - 8]);
    for len in lengths {
        let err = Index::from_bytes(&bytes[..len], "cut.ldx").unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "length {len}: {err}");
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 8]);
    assert!(Index::from_bytes(&longer, "long.ldx").is_err());

    let mut future = bytes.clone();
    future[8..12].copy_from_slice(&5u32.to_le_bytes());
    fix_checksums(&mut future);
    let err = Index::from_bytes(&future, "future.ldx").unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedVersion {
                found: 5,
                supported: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this leakdex reads"));

    // The key type and normalisation rule (header bytes 19 and 22): an unknown key, a rule
    // newer than this build applies, a rule that does not fit the key, a login index of NTLM
    // hashes, a version-1 file with a key: each refused with a clear error.
    let header_case = |changes: &[(usize, u8)], hash_kind: Option<u8>| {
        let mut b = bytes.clone();
        for &(at, v) in changes {
            b[at] = v;
        }
        if let Some(k) = hash_kind {
            b[16] = k;
        }
        fix_checksums(&mut b);
        Index::from_bytes(&b, "keyed.ldx").map(|i| i.key())
    };
    let err = header_case(&[(19, 7)], None).unwrap_err();
    assert!(err.to_string().contains("unknown key type 7"), "{err}");
    let err = header_case(&[(19, 1), (22, 9)], None).unwrap_err();
    assert!(err.to_string().contains("rule version 9, newer"), "{err}");
    for changes in [
        &[(19u8 as usize, 1u8)][..],
        &[(19, 0), (22, 1)],
        &[(19, 1), (22, 1), (23, 1)],
    ] {
        let err = header_case(changes, None).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{changes:?}: {err}");
    }
    let err = header_case(&[(19, 1), (22, 1)], Some(2)).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let mut v1 = bytes.clone();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    v1[19] = 2;
    v1[22] = 1;
    fix_checksums(&mut v1);
    assert!(Index::from_bytes(&v1, "v1.ldx").is_err());
    // And the well-formed ones open with their key.
    assert_eq!(
        header_case(&[(19, 1), (22, 1)], None).unwrap(),
        leakdex::KeyType::Login
    );
    assert_eq!(
        header_case(&[(19, 2), (22, 1)], None).unwrap(),
        leakdex::KeyType::Pair
    );
}

/// Compact and filter-only samples answer as their form should; a store form byte that is
/// unknown, or that a version-2 file cannot hold, is refused.
#[test]
fn compact_and_filter_only_samples_are_sound_and_their_form_byte_is_checked() {
    for (filter, store) in [
        (FilterKind::Fuse8, StoreForm::Compact),
        (FilterKind::None, StoreForm::Compact),
        (FilterKind::Fuse16, StoreForm::None),
    ] {
        let (bytes, model, prefixes) = sample_of(filter, store);
        let index = Index::from_bytes(&bytes, "sample").unwrap();
        assert!(
            answers_match_of(&index, &model, &prefixes, store),
            "{store}"
        );
        index.verify().unwrap();
        for (byte23, version) in [(3u8, 3u32), (9, 3), (store.code(), 2)] {
            let mut b = bytes.clone();
            b[23] = byte23;
            b[8..12].copy_from_slice(&version.to_le_bytes());
            fix_checksums(&mut b);
            let err = Index::from_bytes(&b, "form.ldx").unwrap_err();
            assert!(
                matches!(err, Error::Corrupt { .. }),
                "{byte23} v{version}: {err}"
            );
        }
    }
    // A filter-only header on a file that has no filter.
    let (bytes, _, _) = sample_of(FilterKind::Fuse8, StoreForm::None);
    let mut b = bytes.clone();
    b[17] = 0;
    fix_checksums(&mut b);
    let err = Index::from_bytes(&b, "nofilter.ldx").unwrap_err();
    assert!(
        err.to_string().contains("neither a store nor a filter"),
        "{err}"
    );
}

/// A partition section that is malformed, or that claims fewer prefixes than the store
/// holds, is refused (by open, or by verify, which reads every bucket); a version-4 file
/// relabelled as version 3 (8 sections) is refused too.
#[test]
fn a_crafted_partition_section_is_refused() {
    let (bytes, _, _) = sample_of(FilterKind::Fuse8, StoreForm::Full);
    let (_, off, len) = section_table(&bytes)[8];
    assert_eq!(len, 8);
    assert_eq!(
        bytes[off..off + 8],
        leakdex::PrefixRange::WHOLE.encode()[..]
    );
    for (first, last) in [(5u32, 4u32), (0, 0x10_0000)] {
        let mut b = bytes.clone();
        b[off..off + 4].copy_from_slice(&first.to_le_bytes());
        b[off + 4..off + 8].copy_from_slice(&last.to_le_bytes());
        fix_checksums(&mut b);
        let err = Index::from_bytes(&b, "part.ldx").unwrap_err();
        assert!(err.to_string().contains("partition section"), "{err}");
    }
    // Narrower than what the store holds: open cannot tell without reading every bucket;
    // verify can, and queries outside the claimed range are refused, never answered.
    let mut b = bytes.clone();
    let narrow = leakdex::PrefixRange::new(0, 0x0_FFFF).unwrap();
    b[off..off + 8].copy_from_slice(&narrow.encode());
    fix_checksums(&mut b);
    let index = Index::from_bytes(&b, "narrow.ldx").unwrap();
    let err = index.verify().unwrap_err();
    assert!(
        err.to_string().contains("outside the index's partition"),
        "{err}"
    );
    let hash = leakdex::hash::sha1_password(b"password");
    assert!(index.check(&hash).is_err());

    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&3u32.to_le_bytes());
    fix_checksums(&mut b);
    let err = Index::from_bytes(&b, "v3.ldx").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

/// Damage in every store form: caught by open or verify, never a panic, and never a wrong
/// answer from a file that verify accepts.
#[test]
fn flipped_bytes_are_caught_by_open_or_verify() {
    for (filter, store) in [
        (FilterKind::Fuse8, StoreForm::Full),
        (FilterKind::Fuse16, StoreForm::Full),
        (FilterKind::Fuse8, StoreForm::Compact),
        (FilterKind::Fuse16, StoreForm::None),
    ] {
        let (bytes, model, prefixes) = sample_of(filter, store);
        for pos in positions(&bytes) {
            let mut damaged = bytes.clone();
            damaged[pos] ^= 0x10;
            let Ok(index) = Index::from_bytes(&damaged, "damaged.ldx") else {
                continue;
            };
            let right = answers_match_of(&index, &model, &prefixes, store);
            if index.verify().is_ok() {
                // Only padding between sections is outside every checksum.
                assert!(
                    right,
                    "{store} byte {pos}: verify passed but answers are wrong"
                );
            }
        }
    }
}

#[test]
fn crafted_files_with_valid_checksums_never_panic() {
    for (filter, store, tries) in [
        (FilterKind::Fuse16, StoreForm::Full, 2),
        (FilterKind::Fuse8, StoreForm::Compact, 1),
        (FilterKind::Fuse16, StoreForm::None, 1),
    ] {
        crafted_files_never_panic(filter, store, tries);
    }
}

fn crafted_files_never_panic(filter: FilterKind, store: StoreForm, tries: usize) {
    let (bytes, model, prefixes) = sample_of(filter, store);
    let mut seed = 0x5eed_u64;
    for pos in positions(&bytes) {
        for _ in 0..tries {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut crafted = bytes.clone();
            crafted[pos] = (seed >> 56) as u8;
            fix_checksums(&mut crafted);
            if let Ok(index) = Index::from_bytes(&crafted, "crafted.ldx") {
                let right = answers_match_of(&index, &model, &prefixes, store);
                if index.verify().is_ok() && !right && store == StoreForm::Full {
                    // Verify re-derives everything but the hashes themselves: a crafted
                    // file may rename a hash consistently. It must still be well-formed.
                    for &p in &prefixes {
                        index.range_body(p).unwrap();
                    }
                }
            }
        }
    }
}
