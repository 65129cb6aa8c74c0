//! Store forms (`build --store full|compact|none`) and `shrink`: compact stores against the
//! HashMap model, filter-only indexes against their filter's bound, shrunk indexes against
//! direct builds, and the commands that need full hashes refusing the small forms.

mod common;

use common::*;
use leakdex::format::filter_key;
use leakdex::{
    build_index, BuildOptions, FilterKind, HashBytes, HashKind, Index, NoProgress, Presence,
    ShrinkOptions, StoreForm,
};
use std::path::Path;

/// A dump of `n` random hashes with counts that reach every count encoding (small codes,
/// 16-bit and 32-bit overflow, huge), plus pairs of hashes that share their first 64 bits,
/// unsorted when `shuffle`. Returns the text and the exact model.
fn dump(n: u64, seed: u64, kind: HashKind, shuffle: bool) -> (Vec<u8>, Model) {
    let mut model = Model::new();
    let mut lines = Vec::new();
    for i in 0..n {
        let h = hash_from(seed * 1_000_003 + i, (i * 7919 % (1 << 20)) as u32, kind);
        let count = match i % 9 {
            0 => 15 + i % 1000,
            1 => 65_534 + i % 3,
            2 => 70_000 + i,
            3 => (1 << 32) + i,
            4 => 0,
            _ => 1 + i % 14,
        };
        model_add(&mut model, h, count);
        lines.push(format!("{}:{count}\n", hex(&h, kind)));
        if i % 97 == 0 {
            // A twin: the same first 64 bits, a different rest.
            let mut twin = h;
            twin[10] ^= 0x5A;
            twin[kind.byte_len() - 1] ^= 0x01;
            model_add(&mut model, twin, 3);
            lines.push(format!("{}:3\n", hex(&twin, kind)));
        }
    }
    if shuffle {
        let mut x = seed | 1;
        for i in (1..lines.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lines.swap(i, (x % (i as u64 + 1)) as usize);
        }
    } else {
        lines.sort();
    }
    (lines.concat().into_bytes(), model)
}

/// The model as a compact store sees it: counts summed over hashes that share 64 bits.
fn truncated(model: &Model) -> std::collections::HashMap<u64, u64> {
    let mut out = std::collections::HashMap::new();
    for (h, &c) in model {
        *out.entry(filter_key(h)).or_insert(0) += c;
    }
    out
}

fn build(dir: &Path, name: &str, text: &[u8], options: &BuildOptions) -> Index {
    let input = write_file(dir, &format!("{name}.txt"), text);
    let out = dir.join(format!("{name}.ldx"));
    build_index(&[input], &out, options, &NoProgress).unwrap();
    Index::open(&out).unwrap()
}

fn absent(kind: HashKind, n: u64) -> Vec<HashBytes> {
    (0..n)
        .map(|i| hash_from(0xABCD_0000_0000 + i, (i * 31 % (1 << 20)) as u32, kind))
        .collect()
}

/// Every present hash is found with its count (summed with its 64-bit twin), no absent one is
/// found, batched and single lookups agree, and the file is much smaller than the full one.
#[test]
fn compact_store_matches_the_model() {
    for (kind, filter, shuffle) in [
        (HashKind::Sha1, FilterKind::Fuse8, false),
        (HashKind::Ntlm, FilterKind::Fuse16, true),
        (HashKind::Sha1, FilterKind::None, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (text, model) = dump(20_000, 3, kind, shuffle);
        let options = BuildOptions {
            filter,
            store: StoreForm::Compact,
            memory_limit: Some(8 << 20),
            ..BuildOptions::default()
        };
        let index = build(dir.path(), "compact", &text, &options);
        let full = build(
            dir.path(),
            "full",
            &text,
            &BuildOptions {
                filter,
                ..BuildOptions::default()
            },
        );
        assert_eq!(index.store_form(), StoreForm::Compact);
        index.verify().unwrap();
        let truncated = truncated(&model);
        assert_eq!(index.hash_count(), truncated.len() as u64);
        assert!(index.hash_count() < model.len() as u64, "the twins merged");
        let hashes: Vec<HashBytes> = model.keys().copied().collect();
        let mut batched = Vec::new();
        index.check_many(&hashes, &mut batched).unwrap();
        let mut probed = Vec::new();
        index.probe_many(&hashes, &mut probed).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            let expected = truncated[&filter_key(h)];
            assert_eq!(index.check(h).unwrap(), Some(expected), "{kind:?}");
            assert_eq!(index.lookup(h).unwrap(), Some(expected));
            assert_eq!(batched[i], Some(expected));
            assert_eq!(probed[i], Presence::Found(expected));
            // The full store keeps the twins apart.
            assert_eq!(full.check(h).unwrap(), Some(model[h]));
        }
        let misses = absent(kind, 20_000);
        let mut got = Vec::new();
        index.check_many(&misses, &mut got).unwrap();
        assert!(got.iter().all(Option::is_none));
        assert!(misses
            .iter()
            .all(|h| index.probe(h).unwrap() == Presence::Absent));
        let rate = index.false_match_rate();
        assert!(rate > 0.0 && rate < 1e-12, "{rate}");
        assert_eq!(index.header().count_sum, full.header().count_sum);
        let (c, f) = (
            std::fs::metadata(index.path()).unwrap().len(),
            std::fs::metadata(full.path()).unwrap().len(),
        );
        assert!(c < f, "compact {c} bytes, full {f}");
    }
}

/// Every present hash is possibly present, the false-positive rate on absent hashes is within
/// the filter's design bound, and there are no counts. Also when the build commits to
/// streaming its filter (a small memory budget) and with the input unsorted (held in memory).
#[test]
fn filter_only_index_finds_everything_at_its_false_positive_rate() {
    for (filter, memory, shuffle) in [
        (FilterKind::Fuse8, None, false),
        (FilterKind::Fuse8, Some(8 << 20), false),
        (FilterKind::Fuse16, Some(8 << 20), false),
        (FilterKind::Fuse8, None, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (text, model) = dump(200_000, 5, HashKind::Sha1, shuffle);
        let options = BuildOptions {
            filter,
            store: StoreForm::None,
            memory_limit: memory,
            ..BuildOptions::default()
        };
        let index = build(dir.path(), "none", &text, &options);
        assert_eq!(index.store_form(), StoreForm::None);
        index.verify().unwrap();
        assert_eq!(index.hash_count(), truncated(&model).len() as u64);
        let total: u64 = model.values().sum();
        assert_eq!(index.header().count_sum, total as u128);
        if memory.is_some() {
            // A stream longer than the budget commits to 4,096 shards.
            assert_eq!(index.filter().shard_bits(), 12);
        }
        let hashes: Vec<HashBytes> = model.keys().copied().collect();
        let mut probed = Vec::new();
        index.probe_many(&hashes, &mut probed).unwrap();
        assert!(probed.iter().all(|p| *p == Presence::Possible));
        assert!(index.check(&hashes[0]).is_err(), "no counts to give");
        assert!(index.lookup(&hashes[0]).is_err());
        let misses = absent(HashKind::Sha1, 400_000);
        let hits = misses
            .iter()
            .filter(|h| index.probe(h).unwrap() == Presence::Possible)
            .count();
        let measured = hits as f64 / misses.len() as f64;
        let design = filter.false_positive_rate();
        // Within 30% of the design rate (fuse8: expected 1,563 hits, sd 40; fuse16: 6, so
        // only the upper bound means anything).
        assert!(measured <= design * 1.3 + 1e-5, "{filter:?}: {measured}");
        if filter == FilterKind::Fuse8 {
            assert!(measured >= design * 0.7, "{measured}");
        }
        assert!(index.false_match_rate() > design);
    }
}

/// A filter-only build that has begun streaming its filter cannot take unsorted input back:
/// it stops with an error that says what to do, and leaves nothing behind.
#[test]
fn filter_only_build_of_unsorted_input_past_its_budget_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (sorted, _) = dump(300_000, 9, HashKind::Sha1, false);
    let (tail, _) = dump(1_000, 10, HashKind::Sha1, false);
    let mut text = sorted;
    text.extend_from_slice(&tail);
    let input = write_file(dir.path(), "late.txt", &text);
    let out = dir.path().join("none.ldx");
    let options = BuildOptions {
        store: StoreForm::None,
        memory_limit: Some(8 << 20),
        ..BuildOptions::default()
    };
    let err = build_index(&[input], &out, &options, &NoProgress).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("out of order"), "{message}");
    assert!(message.contains("--store compact"), "{message}");
    assert!(!out.exists());
    assert!(files_named_with(dir.path(), "leakdex-tmp").is_empty());
    // --store none --filter none is refused up front.
    let err = build_index(
        &[dir.path().join("late.txt")],
        &out,
        &BuildOptions {
            store: StoreForm::None,
            filter: FilterKind::None,
            ..BuildOptions::default()
        },
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--filter none"), "{err}");
}

/// `shrink` of a full index answers every check exactly as a direct build of that form does;
/// with the filter kind kept, its bytes are the direct build's byte for byte. (More hashes
/// than one of the blocks shrink hands the writer.)
#[test]
fn shrink_answers_as_a_direct_build_does() {
    let dir = tempfile::tempdir().unwrap();
    let (text, model) = dump(70_000, 11, HashKind::Sha1, false);
    let full = build(dir.path(), "dump", &text, &BuildOptions::default());
    let mut queries: Vec<HashBytes> = model.keys().copied().collect();
    queries.extend(absent(HashKind::Sha1, 30_000));
    for (store, filter) in [
        (StoreForm::Compact, None),
        (StoreForm::None, None),
        (StoreForm::Compact, Some(FilterKind::Fuse16)),
        (StoreForm::None, Some(FilterKind::Fuse16)),
        (StoreForm::Compact, Some(FilterKind::None)),
    ] {
        let shrunk_path = dir.path().join(format!("shrunk-{store}-{filter:?}.ldx"));
        let options = ShrinkOptions {
            store,
            filter,
            memory: 1 << 30,
        };
        let summary = leakdex::shrink(&full, &shrunk_path, &options, &NoProgress, None).unwrap();
        assert_eq!(
            summary.filter_reused,
            filter.is_none(),
            "{store} {filter:?}"
        );
        let shrunk = Index::open(&shrunk_path).unwrap();
        shrunk.verify().unwrap();
        // The direct build, from the same dump file (same source name, size and time).
        let direct_path = dir.path().join("direct.ldx");
        let direct_options = BuildOptions {
            store,
            filter: filter.unwrap_or(FilterKind::Fuse8),
            ..BuildOptions::default()
        };
        build_index(
            &[dir.path().join("dump.txt")],
            &direct_path,
            &direct_options,
            &NoProgress,
        )
        .unwrap();
        let direct = Index::open(&direct_path).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        shrunk.probe_many(&queries, &mut a).unwrap();
        direct.probe_many(&queries, &mut b).unwrap();
        assert!(a == b, "{store} {filter:?}: answers differ");
        assert!(
            std::fs::read(&shrunk_path).unwrap() == std::fs::read(&direct_path).unwrap(),
            "{store} {filter:?}: bytes differ"
        );
    }
    // A compact index shrinks to a filter-only one; nothing is made from a filter alone.
    let compact_path = dir.path().join("shrunk-compact-None.ldx");
    let compact = Index::open(&compact_path).unwrap();
    let none_path = dir.path().join("from-compact.ldx");
    let options = |store| ShrinkOptions {
        store,
        filter: None,
        memory: 1 << 30,
    };
    leakdex::shrink(
        &compact,
        &none_path,
        &options(StoreForm::None),
        &NoProgress,
        None,
    )
    .unwrap();
    let none = Index::open(&none_path).unwrap();
    assert!(model
        .keys()
        .all(|h| none.probe(h).unwrap() == Presence::Possible));
    for (source, store) in [(&none, StoreForm::Compact), (&compact, StoreForm::Full)] {
        let err = leakdex::shrink(
            source,
            &dir.path().join("x.ldx"),
            &options(store),
            &NoProgress,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, leakdex::Error::Invalid(_)), "{err}");
    }
    assert!(!dir.path().join("x.ldx").exists());
}

/// A version-2 index (legacy filter keys) shrinks with its filter built again.
#[test]
fn shrink_of_a_version_2_index_builds_the_filter_again() {
    let golden = {
        use std::io::Read;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-v2-sha1.ldx.gz");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    let dir = tempfile::tempdir().unwrap();
    let v2_path = write_file(dir.path(), "v2.ldx", &golden);
    let v2 = Index::open(&v2_path).unwrap();
    for store in [StoreForm::Compact, StoreForm::None] {
        let out = dir.path().join(format!("{store}.ldx"));
        let options = ShrinkOptions {
            store,
            filter: None,
            memory: 1 << 30,
        };
        let summary = leakdex::shrink(&v2, &out, &options, &NoProgress, None).unwrap();
        assert!(!summary.filter_reused);
        let shrunk = Index::open(&out).unwrap();
        assert_eq!(shrunk.header().version, 4);
        v2.for_each_entry(&mut |e| {
            let p = shrunk.probe(&e.hash).unwrap();
            assert!(
                p == Presence::Possible || p == Presence::Found(e.count),
                "{p:?}"
            );
            Ok(())
        })
        .unwrap();
    }
}

/// The command line: check prints `HASH:?` and says once what a possible hit means; JSON has
/// `found` and `exact`; info names the form; range, serve and audit refuse what they cannot
/// answer; merge takes only inputs its output form can be made from; shrink works.
#[test]
fn the_command_line_handles_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let (dump_text, model) = dump(5_000, 13, HashKind::Sha1, false);
    let input = write_file(dir.path(), "dump.txt", &dump_text);
    for store in ["full", "compact", "none"] {
        let out = dir.path().join(format!("{store}.ldx"));
        let o = run(&["build", s(&input), "-o", s(&out), "--store", store], b"");
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let (present, _) = model.iter().find(|(_, &c)| c > 0 && c < 15).unwrap();
    let missing = absent(HashKind::Sha1, 1)[0];
    let items = format!(
        "{}\n{}\n{}\n",
        hex(present, HashKind::Sha1),
        hex(&missing, HashKind::Sha1),
        hex(present, HashKind::Sha1)
    );
    let none = dir.path().join("none.ldx");
    let o = run(&["check", "-i", s(&none), "--hashes"], items.as_bytes());
    assert_eq!(o.status.code(), Some(1), "a possible hit counts as found");
    let lines: Vec<String> = text(&o.stdout).lines().map(String::from).collect();
    assert_eq!(lines[0], format!("{}:?", hex(present, HashKind::Sha1)));
    assert_eq!(lines[1], format!("{}:0", hex(&missing, HashKind::Sha1)));
    let err = text(&o.stderr);
    assert_eq!(err.matches("filter-only").count(), 1, "{err}");
    assert!(err.contains("0.3906%"), "{err}");
    let o = run(
        &["check", "-i", s(&none), "--hashes", "--json"],
        items.as_bytes(),
    );
    let out = text(&o.stdout);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .ends_with("\"count\": null, \"found\": true}"),
        "{out}"
    );
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .ends_with("\"count\": 0, \"found\": false}"),
        "{out}"
    );
    let o = run(
        &["check", "-i", s(&none), "--hashes"],
        format!("{}\n", hex(&missing, HashKind::Sha1)).as_bytes(),
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stderr.is_empty(), "no note without a hit");

    let compact = dir.path().join("compact.ldx");
    let o = run(
        &["check", "-i", s(&compact), "--hashes", "--json"],
        items.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(
        out.lines().next().unwrap().ends_with(&format!(
            "\"count\": {}, \"exact\": false}}",
            truncated(&model)[&filter_key(present)]
        )),
        "{out}"
    );
    let full = dir.path().join("full.ldx");
    let o = run(
        &["check", "-i", s(&full), "--hashes", "--json"],
        items.as_bytes(),
    );
    assert!(!text(&o.stdout).contains("exact"));

    for (store, expected) in [("full", "full"), ("compact", "compact"), ("none", "none")] {
        let path = dir.path().join(format!("{store}.ldx"));
        let o = run(&["info", "--json", s(&path)], b"");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["store"], expected);
        assert!(v["false_match_rate"].as_f64().is_some());
        let o = run(&["info", s(&path)], b"");
        assert!(text(&o.stdout).contains(&format!("store            {expected}")));
        let o = run(&["verify", s(&path)], b"");
        assert!(o.status.success(), "{}", text(&o.stderr));
        let o = run(&["bench", "-i", s(&path), "--queries", "2000"], b"");
        assert!(o.status.success(), "{}", text(&o.stderr));
    }

    for store in ["compact", "none"] {
        let path = dir.path().join(format!("{store}.ldx"));
        let o = run(&["range", "-i", s(&path), "5BAA6"], b"");
        assert_eq!(o.status.code(), Some(2));
        let err = text(&o.stderr);
        assert!(err.contains(&format!("--store {store}")), "{err}");
        assert!(err.contains("--store full"), "{err}");
        assert!(o.stdout.is_empty());
        let config = leakdex::server::ServerConfig {
            indexes: vec![path.clone()],
            ..Default::default()
        };
        let err = leakdex::server::Server::new(config).err().expect("refused");
        assert!(err.to_string().contains("--store full"), "{err}");
    }
    let o = run(&["audit", "-i", s(&none)], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("filter-only"));

    // merge: compact into full is refused, into compact it works; a filter-only input never.
    let merged = dir.path().join("merged.ldx");
    let o = run(&["merge", s(&compact), s(&full), "-o", s(&merged)], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("compact store cannot be merged"));
    let o = run(
        &[
            "merge",
            s(&compact),
            s(&full),
            "-o",
            s(&merged),
            "--store",
            "compact",
            "--allow-duplicate-sources",
        ],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m = Index::open(&merged).unwrap();
    let expected = truncated(&model)[&filter_key(present)];
    assert_eq!(m.check(present).unwrap(), Some(2 * expected));
    let o = run(
        &[
            "merge",
            s(&none),
            s(&full),
            "-o",
            s(&merged),
            "--store",
            "none",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("holds no hashes to merge"));

    // shrink on the command line.
    let small = dir.path().join("small.ldx");
    let o = run(
        &["shrink", s(&full), "-o", s(&small), "--store", "none"],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("filter copied from the source"));
    assert!(std::fs::read(&small).unwrap() == std::fs::read(&none).unwrap());
    let o = run(
        &["shrink", s(&full), "-o", s(&full), "--store", "compact"],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(Index::open(&full).is_ok(), "the source is left as it was");
}
