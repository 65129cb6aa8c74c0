//! Property tests: random dumps, sorted and not, against a HashMap model.

mod common;

use common::*;
use leakdex::hash::prefix_of;
use leakdex::{BuildOptions, FilterKind, HashKind};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Line {
    seed: u64,
    prefix_pick: usize,
    count: u64,
    bare: bool,
    lower: bool,
    crlf: bool,
    bom: bool,
    blank_after: bool,
}

fn count_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..20,
        2 => 15u64..100_000,
        1 => (1u64 << 32) - 3..(1u64 << 32) + 3,
        1 => (1u64 << 40)..(1u64 << 44),
    ]
}

fn line_strategy() -> impl Strategy<Value = Line> {
    (
        0u64..400,
        0usize..6,
        count_strategy(),
        any::<(bool, bool, bool, bool, bool)>(),
    )
        .prop_map(
            |(seed, prefix_pick, count, (bare, lower, crlf, bom, blank))| Line {
                seed,
                prefix_pick,
                count,
                bare,
                lower,
                crlf,
                bom: bom && seed % 5 == 0,
                blank_after: blank && seed % 7 == 0,
            },
        )
}

/// Prefixes that crowd some buckets and leave neighbours empty.
const PREFIXES: [u32; 6] = [0x00000, 0x00001, 0x5BAA6, 0x5BAA8, 0xFFFFE, 0xFFFFF];

fn render(lines: &[Line], kind: HashKind, sort: bool) -> (Vec<u8>, Model) {
    let mut entries: Vec<(leakdex::HashBytes, &Line)> = lines
        .iter()
        .map(|l| (hash_from(l.seed, PREFIXES[l.prefix_pick], kind), l))
        .collect();
    if sort {
        entries.sort_by_key(|a| a.0);
    }
    let mut model = Model::new();
    let mut text = Vec::new();
    for (h, l) in entries {
        let count = if l.bare { 1 } else { l.count };
        model_add(&mut model, h, count);
        if l.bom {
            text.extend_from_slice("\u{feff}".as_bytes());
        }
        let mut hx = hex(&h, kind);
        if l.lower {
            hx = hx.to_lowercase();
        }
        text.extend_from_slice(hx.as_bytes());
        if !l.bare {
            text.extend_from_slice(format!(":{}", l.count).as_bytes());
        }
        text.extend_from_slice(if l.crlf { b"\r\n" } else { b"\n" });
        if l.blank_after {
            text.extend_from_slice(b"\r\n");
        }
    }
    (text, model)
}

fn check_against_model(
    lines: &[Line],
    kind: HashKind,
    sort: bool,
    filter: FilterKind,
) -> Result<(), TestCaseError> {
    let (text, model) = render(lines, kind, sort);
    let dir = tempfile::tempdir().unwrap();
    let options = BuildOptions {
        filter,
        // Small chunks so that a few lines still spread over several parallel chunks.
        chunk_size: 97,
        // Detected from the first hash, except for an empty dump (which has none).
        kind: text.is_empty().then_some(kind),
        // Empty dumps are among the cases: the empty index must still answer right.
        allow_empty: true,
        ..BuildOptions::default()
    };
    let index = build_from_text(dir.path(), &text, &options).unwrap();
    prop_assert_eq!(index.kind(), kind);
    prop_assert_eq!(index.hash_count(), model.len() as u64);
    prop_assert_eq!(
        index.header().count_sum,
        model.values().map(|&c| c as u128).sum::<u128>()
    );
    for (h, &c) in &model {
        prop_assert_eq!(index.check(h).unwrap(), Some(c));
        prop_assert_eq!(index.lookup(h).unwrap(), Some(c));
    }
    let mut queries: Vec<leakdex::HashBytes> = model.keys().copied().collect();
    for seed in 1000..1200u64 {
        let h = hash_from(seed, PREFIXES[(seed % 6) as usize], kind);
        if !model.contains_key(&h) {
            prop_assert_eq!(index.check(&h).unwrap(), None);
            queries.push(h);
        }
    }
    // The batched paths agree with the model too, in order, hits and misses mixed.
    queries.sort_by_key(|h| h[7]);
    let expected: Vec<Option<u64>> = queries.iter().map(|h| model.get(h).copied()).collect();
    let mut got = Vec::new();
    index.lookup_many(&queries, &mut got).unwrap();
    prop_assert_eq!(&got, &expected);
    got.clear();
    index.check_many(&queries, &mut got).unwrap();
    prop_assert_eq!(&got, &expected);
    let mut prefixes: Vec<u32> = PREFIXES.to_vec();
    prefixes.extend([0x00002, 0x5BAA7, 0x12345]);
    for p in prefixes {
        let body = index.range_body(p).unwrap();
        prop_assert_eq!(
            String::from_utf8(body).unwrap(),
            String::from_utf8(model_range(&model, kind, p)).unwrap(),
            "prefix {:05X}",
            p
        );
        prop_assert_eq!(
            index.range_len(p).unwrap(),
            model.keys().filter(|h| prefix_of(h) == p).count() as u64
        );
    }
    index.verify().unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sorted_sha1_dumps_match_the_model(lines in prop::collection::vec(line_strategy(), 0..120)) {
        check_against_model(&lines, HashKind::Sha1, true, FilterKind::Fuse8)?;
    }

    #[test]
    fn unsorted_sha1_dumps_match_the_model(lines in prop::collection::vec(line_strategy(), 0..120)) {
        check_against_model(&lines, HashKind::Sha1, false, FilterKind::Fuse8)?;
    }

    #[test]
    fn ntlm_dumps_match_the_model(lines in prop::collection::vec(line_strategy(), 0..120), sort: bool) {
        check_against_model(&lines, HashKind::Ntlm, sort, FilterKind::Fuse16)?;
    }

    #[test]
    fn indexes_without_filter_match_the_model(lines in prop::collection::vec(line_strategy(), 0..60)) {
        check_against_model(&lines, HashKind::Sha1, false, FilterKind::None)?;
    }
}

#[test]
fn sorted_and_unsorted_builds_give_the_same_bytes() {
    let lines: Vec<Line> = (0..300u64)
        .map(|seed| Line {
            seed,
            prefix_pick: (seed % 6) as usize,
            count: seed * 1_000_003,
            bare: seed % 11 == 0,
            lower: seed % 2 == 0,
            crlf: seed % 3 == 0,
            bom: false,
            blank_after: false,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for sort in [true, false, true] {
        let (text, _) = render(&lines, HashKind::Sha1, sort);
        let input = write_file(dir.path(), "in.txt", &text);
        // The source's name, size and modification time are recorded: keep them equal.
        std::fs::File::options()
            .write(true)
            .open(&input)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
            .unwrap();
        let out = dir.path().join(format!("out-{}.ldx", outputs.len()));
        leakdex::build_index(
            &[input],
            &out,
            &BuildOptions::default(),
            &leakdex::NoProgress,
        )
        .unwrap();
        outputs.push(std::fs::read(&out).unwrap());
    }
    // Same content, same options: same bytes, whether the input was sorted or not.
    assert!(outputs[0] == outputs[2], "rebuilding changed the bytes");
    assert!(
        outputs[0] == outputs[1],
        "sorted and unsorted input gave different bytes"
    );
}

#[test]
fn a_large_build_matches_the_model_and_shards_its_filter() {
    // Enough hashes for several filter shards and chunks, built from generated text.
    let options = leakdex::generate::GenerateOptions {
        hashes: 2_500_000,
        kind: HashKind::Sha1,
        seed: 3,
        crlf: false,
        known: leakdex::generate::sample_passwords(),
    };
    let mut text = Vec::new();
    leakdex::generate::generate(&options, &mut text).unwrap();
    let mut model = Model::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let e = leakdex::dump::parse_line(line, HashKind::Sha1)
            .unwrap()
            .unwrap();
        model_add(&mut model, e.hash, e.count);
    }
    let dir = tempfile::tempdir().unwrap();
    let index = build_from_text(dir.path(), &text, &BuildOptions::default()).unwrap();
    assert_eq!(index.hash_count(), model.len() as u64);
    assert_eq!(index.filter().shard_count(), 2);
    for (h, &c) in model.iter().step_by(97) {
        assert_eq!(index.check(h).unwrap(), Some(c));
    }
    // Batched lookups of hits and misses, after asking for huge pages (which may change how
    // the file is mapped, never what it answers).
    index.prefer_huge_pages();
    let mut queries: Vec<leakdex::HashBytes> = model.keys().step_by(101).copied().collect();
    let misses: Vec<leakdex::HashBytes> = queries
        .iter()
        .map(|h| {
            let mut m = *h;
            m[19] ^= 0x5A;
            m
        })
        .collect();
    queries.extend(misses);
    let mut counts = Vec::new();
    index.lookup_many(&queries, &mut counts).unwrap();
    assert_eq!(counts.len(), queries.len());
    for (h, c) in queries.iter().zip(&counts) {
        assert_eq!(*c, model.get(h).copied(), "{h:02x?}");
    }
    let (hash, count) = index
        .check_password(b"correct horse battery staple")
        .unwrap();
    assert_eq!(count, Some(5_000_000_000));
    assert_eq!(model.get(&hash), Some(&5_000_000_000));
    index.verify().unwrap();
}

#[test]
fn a_bad_first_hash_after_blocks_of_blank_lines_is_named_by_its_own_line() {
    // Tiny blocks, so that the first hash is found several blocks in.
    let dir = tempfile::tempdir().unwrap();
    let options = BuildOptions {
        chunk_size: 4,
        ..BuildOptions::default()
    };
    let err = build_from_text(dir.path(), b"\n\n\n\n\n\n\n\n\nABCDEF:1\n", &options).unwrap_err();
    assert!(
        err.to_string()
            .contains("dump.txt:10: expected 40 hex digits (SHA-1) or 32"),
        "{err}"
    );
}
