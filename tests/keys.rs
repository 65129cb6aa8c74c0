//! Indexes of passwords, logins and credential pairs (`build --key`), end to end: built from
//! stealer logs and combolists, checked by the key the index records, described by `info`,
//! merged only with their own kind, and compared with a HashMap model of the same rules.

mod common;

use common::*;
use leakdex::hash::sha1_password;
use leakdex::HashKind;
use std::path::Path;

/// The stealer sample of issue 10, plus repeats that differ only in the login's case and
/// surrounding spaces.
const STEALER: &[u8] = b"https://accounts.google.com:alice@example.com:hunter2\n\
bob@example.com:password\n\
android://xyz@com.app/:carol:letmein\n\
site.com|dave|qwerty\n\
https://www.netflix.com/login: Alice@Example.COM :hunter2\n";

fn build(dir: &Path, input: &str, key: &str, text: &[u8]) -> std::path::PathBuf {
    let file = write_file(dir, &format!("{input}-{key}.txt"), text);
    let out = dir.join(format!("{input}-{key}.ldx"));
    let result = run(
        &[
            "build",
            "--input",
            input,
            "--key",
            key,
            s(&file),
            "-q",
            "-o",
            s(&out),
        ],
        b"",
    );
    assert_eq!(result.status.code(), Some(0), "{}", text_of(&result.stderr));
    out
}

fn text_of(bytes: &[u8]) -> String {
    text(bytes)
}

/// `check` of `items` (one per line): the printed lines and the exit code.
fn check(index: &Path, items: &str) -> (Vec<String>, Option<i32>) {
    let out = run(&["check", "-i", s(index)], items.as_bytes());
    let stdout = text(&out.stdout);
    assert!(out.status.code() != Some(2), "{}", text(&out.stderr));
    (
        stdout.lines().map(str::to_string).collect(),
        out.status.code(),
    )
}

fn row(hash: &leakdex::HashBytes, count: u64) -> String {
    format!("{}:{count}", hex(hash, HashKind::Sha1))
}

#[test]
fn stealer_logs_index_passwords_logins_and_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut scratch = Vec::new();
    let login = |l: &[u8], sc: &mut Vec<u8>| leakdex::key::login_hash(l, sc);

    let passwords = build(d, "ulp", "password", STEALER);
    let (lines, code) = check(&passwords, "hunter2\npassword\nletmein\nqwerty\nnope\n");
    assert_eq!(code, Some(1));
    assert_eq!(
        lines,
        vec![
            row(&sha1_password(b"hunter2"), 2),
            row(&sha1_password(b"password"), 1),
            row(&sha1_password(b"letmein"), 1),
            row(&sha1_password(b"qwerty"), 1),
            row(&sha1_password(b"nope"), 0),
        ]
    );

    let logins = build(d, "ulp", "login", STEALER);
    let (lines, code) = check(
        &logins,
        "alice@example.com\n  ALICE@example.com\t\nBob@Example.com\ncarol\ndave\nerin\n",
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        lines,
        vec![
            row(&login(b"alice@example.com", &mut scratch), 2),
            row(&login(b"alice@example.com", &mut scratch), 2),
            row(&login(b"bob@example.com", &mut scratch), 1),
            row(&login(b"carol", &mut scratch), 1),
            row(&login(b"dave", &mut scratch), 1),
            row(&login(b"erin", &mut scratch), 0),
        ]
    );

    let pairs = build(d, "ulp", "pair", STEALER);
    let (lines, code) = check(
        &pairs,
        "ALICE@example.com:hunter2\nalice@example.com:Hunter2\ndave:qwerty\n",
    );
    assert_eq!(code, Some(1));
    let pair = |l: &[u8], p: &[u8], sc: &mut Vec<u8>| leakdex::key::pair_hash(l, p, sc);
    assert_eq!(
        lines,
        vec![
            row(&pair(b"alice@example.com", b"hunter2", &mut scratch), 2),
            // The password is not normalised.
            row(&pair(b"alice@example.com", b"Hunter2", &mut scratch), 0),
            row(&pair(b"dave", b"qwerty", &mut scratch), 1),
        ]
    );
    // A pair line without its `:` is an error naming the line, after the answers before it.
    let out = run(&["check", "-i", s(&pairs)], b"dave:qwerty\nno colon\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("<stdin>:2: expected LOGIN:PASSWORD"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("no colon"));

    // Neither logins nor passwords are printed, whatever the key.
    for (index, items) in [
        (&logins, "alice@example.com\n"),
        (&pairs, "alice@example.com:hunter2\n"),
    ] {
        let out = run(&["check", "-i", s(index), "--json"], items.as_bytes());
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(!all.contains("alice") && !all.contains("hunter2"), "{all}");
    }

    // info tells the key; range works on every key; --hashes takes hex for any key.
    for (index, key, normalisation) in [
        (&passwords, "password", 0),
        (&logins, "login", 1),
        (&pairs, "pair", 1),
    ] {
        let out = run(&["info", "--json", s(index)], b"");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["key"], key);
        assert_eq!(v["normalisation"], normalisation);
        assert_eq!(v["format_version"], 4);
        assert!(text(&run(&["info", s(index)], b"").stdout)
            .contains(&format!("key              {key}")));
        assert_eq!(run(&["verify", s(index)], b"").status.code(), Some(0));
    }
    let alice = login(b"alice@example.com", &mut scratch);
    let hex_alice = hex(&alice, HashKind::Sha1);
    let out = run(&["range", "-i", s(&logins), &hex_alice[..5]], b"");
    assert!(text(&out.stdout).contains(&format!("{}:2", &hex_alice[5..])));
    let out = run(
        &["check", "-i", s(&logins), "--hashes"],
        hex_alice.as_bytes(),
    );
    assert_eq!(text(&out.stdout), format!("{hex_alice}:2\n"));

    // combo: LOGIN:PASSWORD lines, for every key.
    let combo = b"Alice@example.com:hunter2\nbob:pa:ss\n";
    let logins = build(d, "combo", "login", combo);
    let (lines, _) = check(&logins, "alice@example.com\nbob\n");
    assert_eq!(
        lines,
        vec![
            row(&login(b"alice@example.com", &mut scratch), 1),
            row(&login(b"bob", &mut scratch), 1)
        ]
    );
    let pairs = build(d, "combo", "pair", combo);
    let (lines, _) = check(&pairs, "bob:pa:ss\n");
    assert_eq!(lines, vec![row(&pair(b"bob", b"pa:ss", &mut scratch), 1)]);
}

#[test]
fn keys_are_refused_where_they_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stealer = write_file(d, "stealer.txt", STEALER);
    let out_path = d.join("x.ldx");
    let refused = |args: &[&str], needle: &str| {
        let mut all = vec!["build"];
        all.extend(args);
        all.extend([s(&stealer), "-o", s(&out_path)]);
        let out = run(&all, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!out_path.exists());
    };
    refused(
        &["--input", "ulp", "--key", "login", "--kind", "ntlm"],
        "SHA-1 hashes only",
    );
    refused(
        &["--input", "ulp", "--key", "pair", "--kind", "ntlm"],
        "SHA-1 hashes only",
    );
    refused(&["--key", "login"], "use --input ulp");
    refused(
        &["--input", "passwords", "--key", "pair"],
        "use --input ulp",
    );
    refused(&["--key", "email"], "unknown key");
    // NTLM passwords are still fine.
    let out = run(
        &[
            "build",
            "--input",
            "ulp",
            "--kind",
            "ntlm",
            s(&stealer),
            "-q",
            "-o",
            s(&out_path),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Indexes of different keys do not merge; the key of merged indexes carries over.
    let logins = build(d, "ulp", "login", STEALER);
    let passwords = build(d, "ulp", "password", STEALER);
    let merged = d.join("merged.ldx");
    let out = run(&["merge", s(&logins), s(&passwords), "-o", s(&merged)], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be merged into a login index"),
        "{}",
        text(&out.stderr)
    );
    let more = write_file(d, "more.txt", b"https://x.org/:Erin@x.org:pw\n");
    let out = run(
        &[
            "merge",
            s(&logins),
            s(&more),
            "--input",
            "ulp",
            "-q",
            "-o",
            s(&merged),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut scratch = Vec::new();
    let (lines, _) = check(&merged, "erin@x.org\nalice@example.com\n");
    assert_eq!(
        lines,
        vec![
            row(&leakdex::key::login_hash(b"erin@x.org", &mut scratch), 1),
            row(
                &leakdex::key::login_hash(b"alice@example.com", &mut scratch),
                2
            ),
        ]
    );
}
