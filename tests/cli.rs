//! The command line end to end: real processes in temporary folders, exit codes included.

mod common;

use common::*;
use leakdex::hash::sha1_password;
use leakdex::HashKind;
use std::path::{Path, PathBuf};

const PASSWORD_SHA1: &str = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8";

/// A small dump: "password" 3 times split over two lines, a count above 2^32, a bare hash.
fn small_dump(dir: &Path) -> PathBuf {
    let other = hex(&sha1_password(b"letmein"), HashKind::Sha1);
    let huge = hex(&sha1_password(b"hunter2"), HashKind::Sha1);
    let bare = hex(&sha1_password(b" spaced "), HashKind::Sha1).to_lowercase();
    let dump = format!(
        "\u{feff}{PASSWORD_SHA1}:2\r\n{other}:7\r\n\r\n{}:1\r\n{huge}:8589934592\n{bare}\n",
        PASSWORD_SHA1.to_lowercase()
    );
    write_file(dir, "dump.txt", dump.as_bytes())
}

fn build_small(dir: &Path) -> PathBuf {
    let input = small_dump(dir);
    let index = dir.join("small.ldx");
    let out = run_build(&input, &index, &["--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    index
}

fn leftovers(dir: &Path) -> Vec<String> {
    files_named_with(dir, "leakdex-tmp")
}

#[test]
fn check_passwords_prints_hash_and_count_and_exits_1_when_found() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_small(dir.path());
    let out = run(
        &["check", "-i", index.to_str().unwrap()],
        b"password\r\nnot-in-the-leak\n spaced \nhunter2",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let expected = format!(
        "{PASSWORD_SHA1}:3\n{}:0\n{}:1\n{}:8589934592\n",
        hex(&sha1_password(b"not-in-the-leak"), HashKind::Sha1),
        hex(&sha1_password(b" spaced "), HashKind::Sha1),
        hex(&sha1_password(b"hunter2"), HashKind::Sha1),
    );
    assert_eq!(text(&out.stdout), expected);
    // The password itself never appears.
    assert!(!text(&out.stdout).contains("password"));
    assert!(!text(&out.stderr).contains("password"));
}

#[test]
fn check_exits_0_when_nothing_is_found_and_reads_files() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_small(dir.path());
    let items = write_file(dir.path(), "items.txt", b"nope\nstill nope\n");
    let out = run(
        &[
            "check",
            "-i",
            index.to_str().unwrap(),
            items.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 2);
    assert!(text(&out.stdout).lines().all(|l| l.ends_with(":0")));
}

/// More items than one batch: a full batch on the thread pool, then a short one on the
/// calling thread, printed in input order with the right counts.
#[test]
fn check_many_items_keeps_order_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_small(dir.path());
    let items: Vec<String> = (0..66_000)
        .map(|i| match i % 9_999 {
            0 => "password".to_string(),
            5 => "letmein".to_string(),
            _ => format!("nope {i}"),
        })
        .collect();
    let input = items.join("\n") + "\n";
    let out = run(&["check", "-i", index.to_str().unwrap()], input.as_bytes());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), items.len());
    for (item, line) in items.iter().zip(&lines) {
        let count = match item.as_str() {
            "password" => 3,
            "letmein" => 7,
            _ => 0,
        };
        let hash = hex(&sha1_password(item.as_bytes()), HashKind::Sha1);
        assert_eq!(*line, format!("{hash}:{count}"), "item {item:?}");
    }
}

#[test]
fn bench_measures_every_operation_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_small(dir.path());
    let out = run(
        &[
            "bench",
            "-i",
            index.to_str().unwrap(),
            "--queries",
            "3000",
            "--threads",
            "2",
            "--json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hashes"], 4);
    let rows = v["results"].as_array().unwrap();
    for operation in [
        "filter lookup",
        "exact lookup",
        "exact lookup (batch)",
        "password check",
        "range body",
    ] {
        for threads in [1, 2] {
            let row = rows
                .iter()
                .find(|r| r["operation"] == operation && r["threads"] == threads)
                .unwrap_or_else(|| panic!("no row for {operation} on {threads} threads"));
            assert!(row["operations"].as_u64().unwrap() >= 1000, "{row}");
            assert!(row["per_second"].as_f64().unwrap() > 0.0, "{row}");
            let (p50, p99) = (
                row["p50_ns"].as_f64().unwrap(),
                row["p99_ns"].as_f64().unwrap(),
            );
            assert!(p50 > 0.0 && p50 <= p99, "{row}");
        }
    }
    // The table form names the operations too.
    let out = run(
        &["bench", "-i", index.to_str().unwrap(), "--queries", "1000"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("exact lookup (batch)"));
}

#[test]
fn check_hashes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_small(dir.path());
    let input = format!("{}\n\n{}\r\n", PASSWORD_SHA1.to_lowercase(), "0".repeat(40));
    let out = run(
        &[
            "check",
            "-i",
            index.to_str().unwrap(),
            "--hashes",
            "--json",
            "-",
        ],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{{\"line\": 1, \"hash\": \"{PASSWORD_SHA1}\", \"count\": 3}}\n\
             {{\"line\": 3, \"hash\": \"{}\", \"count\": 0}}\n",
            "0".repeat(40)
        )
    );
    for line in text(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["count"].is_u64());
    }
}

#[test]
fn check_refuses_a_malformed_hash_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_small(dir.path());
    let out = run(
        &["check", "-i", index.to_str().unwrap(), "--hashes"],
        format!("{PASSWORD_SHA1}\n8846F7EAEE8FB117AD06BDD830B7586C\n").as_bytes(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("<stdin>:2: expected 40 hex digits of a SHA-1 hash"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_malformed_dump_line_fails_with_file_and_line_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = hex(&sha1_password(b"a"), HashKind::Sha1);
    let dump = format!("{good}:1\n{good}:2\n\n8846F7EAEE8FB117AD06BDD830B7586C:4\n");
    let input = write_file(dir.path(), "dump.txt", dump.as_bytes());
    let index = dir.path().join("out.ldx");
    let out = run_build(&input, &index, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("dump.txt:4: expected 40 hex digits of a SHA-1 hash"),
        "{}",
        text(&out.stderr)
    );
    assert!(!index.exists());
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );

    for (bad, why) in [
        (format!("{good}:x1\n"), "is not a whole decimal number"),
        (format!("{good}:\n"), "expected a count"),
        (
            format!("{good}:99999999999999999999\n"),
            "does not fit in 64 bits",
        ),
        (format!("{}:1\n", &good[..38]), "found 38 characters"),
        (format!("{}Z:1\n", &good[..39]), "not a hex digit"),
    ] {
        let input = write_file(dir.path(), "bad.txt", bad.as_bytes());
        let out = run_build(&input, &index, &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            text(&out.stderr).contains("bad.txt:1:"),
            "{}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
        assert!(!index.exists());
    }
}

#[test]
fn a_line_of_the_wrong_kind_is_named_even_when_unsorted() {
    let dir = tempfile::tempdir().unwrap();
    let mut dump = String::new();
    for i in (0..200u32).rev() {
        dump.push_str(&format!(
            "{}:{}\n",
            hex(&sha1_password(&i.to_le_bytes()), HashKind::Sha1),
            i + 1
        ));
    }
    dump.push_str("8846F7EAEE8FB117AD06BDD830B7586C:4\n");
    let input = write_file(dir.path(), "mixed.txt", dump.as_bytes());
    let index = dir.path().join("out.ldx");
    let out = run_build(&input, &index, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("mixed.txt:201:"),
        "{}",
        text(&out.stderr)
    );
    assert!(!index.exists());
}

#[test]
fn ntlm_is_detected_from_the_first_hash() {
    let dir = tempfile::tempdir().unwrap();
    let dump = "8846F7EAEE8FB117AD06BDD830B7586C:52\r\n";
    let input = write_file(dir.path(), "ntlm.txt", dump.as_bytes());
    let index = dir.path().join("ntlm.ldx");
    let out = run_build(&input, &index, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&["check", "-i", index.to_str().unwrap()], b"password\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "8846F7EAEE8FB117AD06BDD830B7586C:52\n");
    let out = run(&["range", "-i", index.to_str().unwrap(), "8846f"], b"");
    assert_eq!(text(&out.stdout), "7EAEE8FB117AD06BDD830B7586C:52");
    // A password that is not UTF-8 cannot be hashed for NTLM: an error naming the line.
    let out = run(&["check", "-i", index.to_str().unwrap()], b"ok\n\xff\xfe\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("<stdin>:2:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn range_bodies_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_small(dir.path());
    let out = run(&["range", "-i", index.to_str().unwrap(), "5baa6"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:3");
    // No entries: an empty body, still a success.
    let out = run(&["range", "-i", index.to_str().unwrap(), "00000"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    for (bad, message) in [
        ("5BAA", "The hash prefix was not in a valid format"),
        ("5BAA61", "The hash prefix was not in a valid format"),
        ("5BAAG", "The hash prefix was not valid hexadecimal"),
    ] {
        let out = run(&["range", "-i", index.to_str().unwrap(), bad], b"");
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains(message), "{}", text(&out.stderr));
    }
}

#[test]
fn range_bodies_join_rows_with_crlf_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut dump = String::new();
    let mut expected = Vec::new();
    for i in 0..50u64 {
        let h = hash_from(i, 0xABCDE, HashKind::Sha1);
        dump.push_str(&format!("{}:{}\n", hex(&h, HashKind::Sha1), i * 1000));
        expected.push(format!("{}:{}", &hex(&h, HashKind::Sha1)[5..], i * 1000));
    }
    expected.sort();
    let input = write_file(dir.path(), "d.txt", dump.as_bytes());
    let index = dir.path().join("d.ldx");
    run_build(&input, &index, &[]);
    let out = run(&["range", "-i", index.to_str().unwrap(), "abcde"], b"");
    assert_eq!(text(&out.stdout), expected.join("\r\n"));
}

#[test]
fn padded_ranges_hold_800_to_1000_rows_sorted_with_the_real_ones() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_small(dir.path());
    for _ in 0..5 {
        let out = run(
            &["range", "-i", index.to_str().unwrap(), "5BAA6", "--pad"],
            b"",
        );
        assert_eq!(out.status.code(), Some(0));
        let body = text(&out.stdout);
        assert!(!body.ends_with("\r\n"));
        let rows: Vec<&str> = body.split("\r\n").collect();
        assert!((800..=1000).contains(&rows.len()), "{} rows", rows.len());
        assert!(rows.contains(&"1E4C9B93F3F0682250B6CF8331B7EE68FD8:3"));
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "rows out of order");
        assert_eq!(rows.iter().filter(|r| !r.ends_with(":0")).count(), 1);
        assert!(rows
            .iter()
            .all(|r| r.len() == 37 && r.as_bytes()[35] == b':'));
    }
}

#[test]
fn info_verify_and_deterministic_builds() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_small(dir.path());
    let out = run(&["info", index.to_str().unwrap(), "--json"], b"");
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "sha1");
    assert_eq!(v["hashes"], 4);
    assert_eq!(v["count_sum"], "8589934603");
    assert_eq!(v["format_version"], 4);
    assert_eq!(v["prefixes"], "00000-FFFFF");
    assert_eq!(v["partition"], false);
    assert_eq!(v["store"], "full");
    assert_eq!(v["false_match_rate"], 0.0);
    assert_eq!(v["sources"][0]["name"], "dump.txt");
    assert_eq!(v["sources"][0]["lines"], 6);
    let out = run(&["info", index.to_str().unwrap()], b"");
    assert!(text(&out.stdout).contains("bytes per hash"));
    let out = run(&["verify", index.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let again = dir.path().join("again.ldx");
    let input = dir.path().join("dump.txt");
    run_build(&input, &again, &["-q"]);
    assert!(std::fs::read(&index).unwrap() == std::fs::read(&again).unwrap());

    let mut bytes = std::fs::read(&index).unwrap();
    let at = bytes.len() - 60;
    bytes[at] ^= 1;
    std::fs::write(&index, &bytes).unwrap();
    let out = run(&["verify", index.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a valid leakdex index"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn errors_for_missing_files_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.ldx");
    let out = run(&["check", "-i", missing.to_str().unwrap()], b"x\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("missing.ldx"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["build", missing.to_str().unwrap(), "-o", "x.ldx"], b"");
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["build"], b"");
    assert_eq!(out.status.code(), Some(2));
    // An output path that is a folder is refused before any work, and an OS error is told
    // once, not twice.
    let input = write_file(
        dir.path(),
        "one.txt",
        b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:1\n",
    );
    let out = run_build(&input, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is a folder"),
        "{}",
        text(&out.stderr)
    );
    let nowhere = dir.path().join("no/such/folder/x.ldx");
    let out = run_build(&input, &nowhere, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr)
            .matches("No such file or directory")
            .count(),
        1,
        "{}",
        text(&out.stderr)
    );
    let out = run(&["build", "a", "-o", "b", "--filter", "bloom"], b"");
    assert_eq!(out.status.code(), Some(2));
    let not_index = write_file(
        dir.path(),
        "plain.txt",
        b"hello, world, this is no index at all, not at all....................",
    );
    let out = run(&["info", not_index.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("wrong magic"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn empty_dumps_build_empty_indexes_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_file(dir.path(), "empty.txt", b"");
    let index = dir.path().join("empty.ldx");
    let out = run_build(&input, &index, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!index.exists());
    let out = run_build(&input, &index, &["--allow-empty"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&["check", "-i", index.to_str().unwrap()], b"password\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("{PASSWORD_SHA1}:0\n"));
    let out = run(&["verify", index.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn several_inputs_and_generated_samples() {
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample.txt");
    let out = run(
        &[
            "generate",
            "-n",
            "20000",
            "--with-passwords",
            "-o",
            sample.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let extra = small_dump(dir.path());
    let index = dir.path().join("both.ldx");
    let out = run(
        &[
            "build",
            sample.to_str().unwrap(),
            extra.to_str().unwrap(),
            "-o",
            index.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // "password" is in both: 9,545,824 from the sample plus 3.
    let out = run(&["check", "-i", index.to_str().unwrap()], b"password\n");
    assert_eq!(text(&out.stdout), format!("{PASSWORD_SHA1}:9545827\n"));
    let out = run(&["info", index.to_str().unwrap(), "--json"], b"");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 20,000 random, 5 known, 4 from the small dump of which 2 ("password", "letmein") overlap.
    assert_eq!(v["hashes"], 20_000 + 5 + 4 - 2);
    assert_eq!(v["sources"].as_array().unwrap().len(), 2);
}

/// Counts of one hash that add up past 2^64 - 1 stop the build with an error that names the
/// range, never the hash.
#[test]
fn counts_past_u64_are_refused_without_naming_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let hash = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8";
    let input = write_file(
        dir.path(),
        "dump.txt",
        format!("{hash}:18446744073709551615\n{hash}:1\n").as_bytes(),
    );
    let index = dir.path().join("index.ldx");
    let out = run_build(&input, &index, &["-q"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("add up to more than 2^64 - 1"), "{err}");
    assert!(err.contains("range 5BAA6"), "{err}");
    for shown in [hash.to_string(), hash.to_lowercase(), hash[5..].to_string()] {
        assert!(!err.contains(&shown), "the hash is in the message: {err}");
    }
    assert!(!index.exists());
}
