//! Golden indexes of every format version, committed under `tests/data/`: every later version
//! of leakdex must open them and answer from them, or refuse them with a clear version error.
//! Version 2 (key types) is built from the same dumps as version 1; a version-1 file is a
//! password index. Version 3 (store forms) is built from the same dumps again, in each form;
//! its files were made with `leakdex build SOURCE -o NAME.ldx --store FORM --filter F` (and
//! `--input ulp --key login|pair` for the credential ones) from a copy of the dump named as
//! the index's source and dated 2026-11-30 00:00:00 UTC, then `gzip -9 -n`. Version 4
//! (partitions) is made the same way, each from a copy named as the index (`golden-v4-sha1.txt`
//! for `golden-v4-sha1.ldx`), and adds `golden-v4-sha1-part`, built with `--prefixes
//! 00000-7FFFF`.

mod common;

use common::*;
use leakdex::{BuildOptions, FilterKind, HashKind, Index, KeyType, Presence, StoreForm};
use std::io::Read;
use std::path::{Path, PathBuf};

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn gunzip(name: &str) -> Vec<u8> {
    let file = std::fs::File::open(data(name)).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn model_of(name: &str, kind: HashKind) -> Model {
    let text = std::fs::read(data(name)).unwrap();
    let mut model = Model::new();
    for line in text.split(|&b| b == b'\n') {
        if let Some(e) = leakdex::dump::parse_line(line, kind).unwrap() {
            model_add(&mut model, e.hash, e.count);
        }
    }
    model
}

/// Copies the committed dump `dump_name` into `dir` as `source_name`, with the modification
/// time `golden` records for its source: name and time are part of the index bytes.
fn source_as_in(golden: &Index, dump_name: &str, dir: &Path, source_name: &str) -> PathBuf {
    let input = dir.join(source_name);
    std::fs::copy(data(dump_name), &input).unwrap();
    let mtime = golden.sources()[0].modified;
    let f = std::fs::File::options().write(true).open(&input).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
        .unwrap();
    input
}

fn check_golden(
    index_name: &str,
    dump_name: &str,
    kind: HashKind,
    filter: FilterKind,
    version: u32,
) {
    check_golden_form(
        index_name,
        dump_name,
        kind,
        filter,
        version,
        StoreForm::Full,
    );
}

/// Opens a golden password index and asks it everything its store form answers: counts and
/// ranges from a full store; counts and no ranges from a compact one (the dumps have no two
/// hashes that share 64 bits); "possibly present", no counts and no ranges from the filter
/// alone.
fn check_golden_form(
    index_name: &str,
    dump_name: &str,
    kind: HashKind,
    filter: FilterKind,
    version: u32,
    store: StoreForm,
) {
    let bytes = gunzip(index_name);
    let index = Index::from_bytes(&bytes, index_name).unwrap();
    assert_eq!(index.header().version, version);
    assert_eq!(index.store_form(), store, "{index_name}");
    assert_eq!(index.key(), KeyType::Password);
    assert_eq!(index.header().normalisation, 0);
    assert_eq!(index.kind(), kind);
    assert_eq!(index.filter().kind(), filter);
    index.verify().unwrap();
    let model = model_of(dump_name, kind);
    assert_eq!(index.hash_count(), model.len() as u64);
    let answer = |c: u64| match store {
        StoreForm::None => Presence::Possible,
        _ => Presence::Found(c),
    };
    for (h, &c) in &model {
        assert_eq!(index.probe(h).unwrap(), answer(c), "{index_name}");
    }
    let password = kind.hash_password(b"correct horse battery staple").unwrap();
    assert_eq!(index.probe(&password).unwrap(), answer(5_000_000_000));
    for p in [0x5BAA6, 0x8846F, 0x00000, 0xFFFFF] {
        match store {
            StoreForm::Full => {
                assert!(index.range_body(p).unwrap() == model_range(&model, kind, p))
            }
            _ => assert!(index.range_body(p).is_err(), "{index_name}"),
        }
    }
}

#[test]
fn golden_v1_sha1_opens_and_answers() {
    check_golden(
        "golden-v1-sha1.ldx.gz",
        "golden-v1-sha1.txt",
        HashKind::Sha1,
        FilterKind::Fuse8,
        1,
    );
}

#[test]
fn golden_v1_ntlm_opens_and_answers() {
    check_golden(
        "golden-v1-ntlm.ldx.gz",
        "golden-v1-ntlm.txt",
        HashKind::Ntlm,
        FilterKind::Fuse16,
        1,
    );
}

#[test]
fn golden_v2_password_indexes_open_and_answer() {
    check_golden(
        "golden-v2-sha1.ldx.gz",
        "golden-v1-sha1.txt",
        HashKind::Sha1,
        FilterKind::Fuse8,
        2,
    );
    check_golden(
        "golden-v2-ntlm.ldx.gz",
        "golden-v1-ntlm.txt",
        HashKind::Ntlm,
        FilterKind::Fuse16,
        2,
    );
}

/// The version-3 golden files: name, dump, source name, kind, filter, store form.
const V3: [(&str, &str, &str, HashKind, FilterKind, StoreForm); 5] = [
    (
        "golden-v3-sha1.ldx.gz",
        "golden-v1-sha1.txt",
        "golden-v3-sha1.txt",
        HashKind::Sha1,
        FilterKind::Fuse8,
        StoreForm::Full,
    ),
    (
        "golden-v3-ntlm.ldx.gz",
        "golden-v1-ntlm.txt",
        "golden-v3-ntlm.txt",
        HashKind::Ntlm,
        FilterKind::Fuse16,
        StoreForm::Full,
    ),
    (
        "golden-v3-sha1-compact.ldx.gz",
        "golden-v1-sha1.txt",
        "golden-v3-sha1.txt",
        HashKind::Sha1,
        FilterKind::Fuse8,
        StoreForm::Compact,
    ),
    (
        "golden-v3-ntlm-compact.ldx.gz",
        "golden-v1-ntlm.txt",
        "golden-v3-ntlm.txt",
        HashKind::Ntlm,
        FilterKind::Fuse16,
        StoreForm::Compact,
    ),
    (
        "golden-v3-sha1-none.ldx.gz",
        "golden-v1-sha1.txt",
        "golden-v3-sha1.txt",
        HashKind::Sha1,
        FilterKind::Fuse8,
        StoreForm::None,
    ),
];

/// The version-4 golden files of whole indexes: name, dump, kind, filter, store form.
const V4: [(&str, &str, HashKind, FilterKind, StoreForm); 5] = [
    (
        "golden-v4-sha1.ldx.gz",
        "golden-v1-sha1.txt",
        HashKind::Sha1,
        FilterKind::Fuse8,
        StoreForm::Full,
    ),
    (
        "golden-v4-ntlm.ldx.gz",
        "golden-v1-ntlm.txt",
        HashKind::Ntlm,
        FilterKind::Fuse16,
        StoreForm::Full,
    ),
    (
        "golden-v4-sha1-compact.ldx.gz",
        "golden-v1-sha1.txt",
        HashKind::Sha1,
        FilterKind::Fuse8,
        StoreForm::Compact,
    ),
    (
        "golden-v4-ntlm-compact.ldx.gz",
        "golden-v1-ntlm.txt",
        HashKind::Ntlm,
        FilterKind::Fuse16,
        StoreForm::Compact,
    ),
    (
        "golden-v4-sha1-none.ldx.gz",
        "golden-v1-sha1.txt",
        HashKind::Sha1,
        FilterKind::Fuse8,
        StoreForm::None,
    ),
];

/// Version-3 and version-4 files of every store form open, verify and answer as their form
/// does; they hold every prefix.
#[test]
fn golden_v3_and_v4_indexes_of_every_store_form_open_and_answer() {
    for (index_name, dump_name, _, kind, filter, store) in V3 {
        check_golden_form(index_name, dump_name, kind, filter, 3, store);
    }
    for (index_name, dump_name, kind, filter, store) in V4 {
        check_golden_form(index_name, dump_name, kind, filter, 4, store);
    }
}

/// The version-4 partition (prefixes 00000-7FFFF) holds exactly the dump's hashes of those
/// prefixes, answers for them and their ranges, and refuses every hash and range outside.
#[test]
fn golden_v4_partition_answers_inside_and_refuses_outside() {
    let name = "golden-v4-sha1-part.ldx.gz";
    let index = Index::from_bytes(&gunzip(name), name).unwrap();
    assert_eq!(index.header().version, 4);
    assert_eq!(
        index.partition(),
        leakdex::PrefixRange::new(0, 0x7_FFFF).unwrap()
    );
    index.verify().unwrap();
    let model = model_of("golden-v1-sha1.txt", HashKind::Sha1);
    let inside = |h: &leakdex::HashBytes| leakdex::hash::prefix_of(h) <= 0x7_FFFF;
    assert_eq!(
        index.hash_count(),
        model.keys().filter(|h| inside(h)).count() as u64
    );
    assert!(model.keys().any(|h| !inside(h)));
    for (h, &c) in &model {
        if inside(h) {
            assert_eq!(index.check(h).unwrap(), Some(c));
        } else {
            let err = index.check(h).unwrap_err().to_string();
            assert!(err.contains("00000-7FFFF"), "{err}");
            assert!(index.probe(h).is_err());
        }
    }
    assert!(index.range_body(0x5BAA6).unwrap() == model_range(&model, HashKind::Sha1, 0x5BAA6));
    assert!(index.range_body(0x8846F).is_err());
    assert!(index.range_len(0xFFFFF).is_err());
}

/// Pins the writer: while the format version is 4, a build from the golden dump gives the
/// golden bytes, in every store form and as a partition. A deliberate format change bumps the
/// version and adds new golden files.
#[test]
fn the_writer_still_writes_golden_v4() {
    let whole = leakdex::PrefixRange::WHOLE;
    let half = leakdex::PrefixRange::new(0, 0x7_FFFF).unwrap();
    let cases = V4
        .iter()
        .map(|&(name, dump, _, filter, store)| (name, dump, filter, store, whole))
        .chain([(
            "golden-v4-sha1-part.ldx.gz",
            "golden-v1-sha1.txt",
            FilterKind::Fuse8,
            StoreForm::Full,
            half,
        )]);
    for (index_name, dump_name, filter, store, prefixes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let golden = gunzip(index_name);
        let golden_index = Index::from_bytes(&golden, index_name).unwrap();
        let source_name = golden_index.sources()[0].name.clone();
        let input = source_as_in(&golden_index, dump_name, dir.path(), &source_name);
        let out = dir.path().join("rebuilt.ldx");
        let options = BuildOptions {
            filter,
            store,
            prefixes,
            ..BuildOptions::default()
        };
        leakdex::build_index(&[input], &out, &options, &leakdex::NoProgress).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == golden,
            "{index_name} changed"
        );
    }
}

/// Indexes of logins and of credential pairs, from a committed stealer log, in versions 2, 3
/// and 4: they open with their key and normalisation rule, verify, answer for a login written
/// in another case, and the writer (parser, normalisation, format) rebuilds the version-4 ones
/// byte for byte.
#[test]
fn golden_v2_login_and_pair_indexes_open_answer_and_rebuild() {
    use leakdex::{InputFormat, NoProgress};
    for (index_name, key, version) in [
        ("golden-v2-login.ldx.gz", KeyType::Login, 2),
        ("golden-v2-pair.ldx.gz", KeyType::Pair, 2),
        ("golden-v3-login.ldx.gz", KeyType::Login, 3),
        ("golden-v3-pair.ldx.gz", KeyType::Pair, 3),
        ("golden-v4-login.ldx.gz", KeyType::Login, 4),
        ("golden-v4-pair.ldx.gz", KeyType::Pair, 4),
    ] {
        let golden = gunzip(index_name);
        let index = Index::from_bytes(&golden, index_name).unwrap();
        assert_eq!(index.header().version, version);
        assert_eq!(index.key(), key);
        assert_eq!(index.header().normalisation, 1);
        index.verify().unwrap();
        // The last lines of the log: `Alice@Example.com` with `hunter2`, once.
        let mut scratch = Vec::new();
        let hash = match key {
            KeyType::Login => leakdex::key::login_hash(b"alice@example.com", &mut scratch),
            _ => leakdex::key::pair_hash(b"ALICE@example.com", b"hunter2", &mut scratch),
        };
        assert_eq!(index.check(&hash).unwrap(), Some(1), "{index_name}");
        if version < 4 {
            continue;
        }

        let dir = tempfile::tempdir().unwrap();
        let source_name = index.sources()[0].name.clone();
        let input = source_as_in(&index, "golden-v2-ulp.txt", dir.path(), &source_name);
        let out = dir.path().join("rebuilt.ldx");
        let options = BuildOptions {
            input: InputFormat::Ulp,
            key: Some(key),
            ..BuildOptions::default()
        };
        let summary = leakdex::build_index(&[input], &out, &options, &NoProgress).unwrap();
        assert_eq!(summary.skipped_lines, 1);
        assert!(
            std::fs::read(&out).unwrap() == golden,
            "{index_name} changed"
        );
    }
}
