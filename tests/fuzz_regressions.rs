//! The fuzz targets (`fuzz/`, run by `scripts/fuzz` on nightly) replayed on stable: every input
//! that once made a target fail, committed under `tests/data/fuzz/TARGET/`, and the targets'
//! seed corpora (`fuzz/seeds/TARGET/`), each through the target's own code, which this file
//! includes. A failing input found by fuzzing goes into `tests/data/fuzz/TARGET/` with its fix.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz;

use std::path::Path;

/// Runs every file of `dir/TARGET/` through its target; returns the files run.
fn replay(dir: &Path) -> usize {
    let mut failed = Vec::new();
    let mut ran = 0;
    for (target, run) in fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let input = std::fs::read(&file).unwrap();
            ran += 1;
            if std::panic::catch_unwind(|| run(&input)).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
    ran
}

#[test]
fn fuzz_inputs_that_once_failed_and_the_seeds_pass() {
    let goldens = tempfile::tempdir().unwrap();
    fuzz::set_golden_dir(goldens.path());
    fuzz::always_run_slow_queries();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let failed_once = replay(&root.join("tests/data/fuzz"));
    assert!(failed_once > 0);
    let seeds = replay(&root.join("fuzz/seeds"));
    assert!(seeds > 100, "{seeds} seeds");
}

fn golden(name: &str) -> leakdex::Index {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut bytes,
    )
    .unwrap();
    leakdex::Index::from_bytes(&bytes, name).unwrap()
}

/// `Index::check` on a filter-only index is an error, as documented and as `check_many` is,
/// for a hash the filter does not hold as well as for one it holds: it answered `Ok(None)`
/// for the first (index_bytes/check-on-filter-only-index).
#[test]
fn check_on_a_filter_only_index_is_always_an_error() {
    for name in ["golden-v3-sha1-none.ldx.gz", "golden-v4-sha1-none.ldx.gz"] {
        let index = golden(name);
        let (mut misses, mut hits) = (0, 0);
        for i in 0..2000u32 {
            let hash = leakdex::hash::sha1_password(&i.to_le_bytes());
            match index.probe(&hash).unwrap() {
                leakdex::Presence::Absent => misses += 1,
                _ => hits += 1,
            }
            assert!(index.check(&hash).is_err(), "{name}: check of hash {i}");
            assert!(index.check_password(&i.to_le_bytes()).is_err());
        }
        assert!(misses > 1000, "{name}: {misses} misses, {hits} hits");
        let mut out = Vec::new();
        assert!(index.check_many(&[[0; 20]], &mut out).is_err());
    }
}
