//! Leak-scale builds: unsorted, gzip, standard-input and multi-file inputs, bounded memory,
//! interruption, and plaintext leaks.

mod common;

use common::*;
use leakdex::{build_index, BuildOptions, HashKind, Index, InputFormat, NoProgress};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A generated sorted dump, its shuffled lines, and its model.
fn dumps(n: u64) -> (Vec<u8>, Vec<u8>, Model) {
    let options = leakdex::generate::GenerateOptions {
        hashes: n,
        kind: HashKind::Sha1,
        seed: 5,
        crlf: true,
        known: leakdex::generate::sample_passwords(),
    };
    let mut sorted = Vec::new();
    leakdex::generate::generate(&options, &mut sorted).unwrap();
    let mut lines: Vec<&[u8]> = sorted.split_inclusive(|&b| b == b'\n').collect();
    let mut model = Model::new();
    for l in &lines {
        let e = leakdex::dump::parse_line(l, HashKind::Sha1)
            .unwrap()
            .unwrap();
        model_add(&mut model, e.hash, e.count);
    }
    // A deterministic shuffle, with some lines repeated (their counts add up).
    let mut x = 12345u64;
    for i in (1..lines.len()).rev() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lines.swap(i, (x >> 33) as usize % (i + 1));
    }
    let mut shuffled: Vec<u8> = lines.concat();
    for l in lines.iter().take(50) {
        shuffled.extend_from_slice(l);
        let e = leakdex::dump::parse_line(l, HashKind::Sha1)
            .unwrap()
            .unwrap();
        model_add(&mut model, e.hash, e.count);
    }
    let mut resorted: Vec<&[u8]> = shuffled.split_inclusive(|&b| b == b'\n').collect();
    resorted.sort();
    (resorted.concat(), shuffled, model)
}

fn build(
    inputs: &[PathBuf],
    out: &Path,
    options: &BuildOptions,
) -> (Vec<u8>, leakdex::BuildSummary) {
    let summary = build_index(inputs, out, options, &NoProgress).unwrap();
    (std::fs::read(out).unwrap(), summary)
}

fn leftovers(dir: &Path) -> Vec<String> {
    files_named_with(dir, "leakdex")
}

#[test]
fn unsorted_gzip_stdin_and_split_inputs_give_the_sorted_builds_content() {
    let (sorted, shuffled, model) = dumps(60_000);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (reference, summary) = build(
        &[write_file(d, "sorted.txt", &sorted)],
        &d.join("a.ldx"),
        &Default::default(),
    );
    assert!(summary.sorted_input);
    let index = Index::open(d.join("a.ldx")).unwrap();
    assert_eq!(index.hash_count(), model.len() as u64);
    for (h, &c) in model.iter().step_by(7) {
        assert_eq!(index.check(h).unwrap(), Some(c));
    }
    let reference = content_bytes(&reference);

    let unsorted = write_file(d, "shuffled.txt", &shuffled);
    let (bytes, summary) = build(
        std::slice::from_ref(&unsorted),
        &d.join("b.ldx"),
        &Default::default(),
    );
    assert!(!summary.sorted_input);
    assert!(content_bytes(&bytes) == reference, "unsorted build differs");

    let gz = write_file(d, "shuffled.txt.gz", &gzip(&shuffled));
    let (bytes, _) = build(&[gz], &d.join("c.ldx"), &Default::default());
    assert!(content_bytes(&bytes) == reference, "gzip build differs");

    let sorted_gz = write_file(d, "sorted.txt.gz", &gzip(&sorted));
    let (bytes, summary) = build(&[sorted_gz], &d.join("c2.ldx"), &Default::default());
    assert!(
        summary.sorted_input,
        "a sorted gzip stream goes straight through"
    );
    assert!(
        content_bytes(&bytes) == reference,
        "sorted gzip build differs"
    );

    // Split in three files, the middle one gzipped: several inputs, one index.
    let third = shuffled.len() / 3;
    let cut1 = shuffled[..third].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let cut2 = shuffled[..2 * third]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let parts = vec![
        write_file(d, "p1.txt", &shuffled[..cut1]),
        write_file(d, "p2.txt.gz", &gzip(&shuffled[cut1..cut2])),
        write_file(d, "p3.txt", &shuffled[cut2..]),
    ];
    let (bytes, _) = build(&parts, &d.join("e.ldx"), &Default::default());
    assert!(
        content_bytes(&bytes) == reference,
        "multi-file build differs"
    );
    let info = Index::open(d.join("e.ldx")).unwrap().info();
    assert_eq!(info.sources.len(), 3);
    assert_eq!(info.sources[1].name, "p2.txt.gz");
    assert_eq!(
        info.sources[1].size,
        (cut2 - cut1) as u64,
        "sizes are of the text read"
    );

    // Standard input, through the binary.
    let mut child = leakdex()
        .args(["build", "-", "-q", "-o"])
        .arg(d.join("f.ldx"))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&shuffled).unwrap();
    assert!(child.wait().unwrap().success());
    let bytes = std::fs::read(d.join("f.ldx")).unwrap();
    assert!(content_bytes(&bytes) == reference, "stdin build differs");
    assert_eq!(Index::open(d.join("f.ldx")).unwrap().sources()[0].name, "-");
    assert!(
        leftovers(d).iter().all(|n| !n.starts_with('.')),
        "{:?}",
        leftovers(d)
    );
}

/// Compresses `bytes` in two pieces cut at a line end, each its own gzip member or zstd
/// frame, one after the other: what parallel compressors (pigz, zstd -T) and `cat a.gz
/// b.gz` write.
fn in_two(bytes: &[u8], compress: fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let half = bytes[..bytes.len() / 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let mut out = compress(&bytes[..half]);
    out.extend(compress(&bytes[half..]));
    out
}

/// The first half of `bytes` (cut at a line end) as BGZF, the rest as an ordinary gzip member
/// after it, as `cat a.bgz b.gz` writes.
fn bgzf_then_gzip(bytes: &[u8]) -> Vec<u8> {
    let half = bytes[..bytes.len() / 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let mut out = leakdex::gzip::encode_bgzf(&bytes[..half], 3_000);
    out.extend(gzip(&bytes[half..]));
    out
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

/// Streams (standard input, gzip and zstd files and pipes, several members or frames) build
/// the same content as the mapped file, sorted and unsorted alike, with small blocks so that
/// many are read ahead of the parser.
#[test]
fn streamed_gzip_and_zstd_inputs_build_the_mapped_builds_content() {
    let (sorted, shuffled, _) = dumps(60_000);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let small_blocks = BuildOptions {
        chunk_size: 64 << 10,
        ..BuildOptions::default()
    };
    let (reference, _) = build(
        &[write_file(d, "sorted.txt", &sorted)],
        &d.join("ref.ldx"),
        &small_blocks,
    );
    let reference = content_bytes(&reference);
    for (text, name) in [(&sorted, "sorted"), (&shuffled, "shuffled")] {
        let forms: Vec<(String, Vec<u8>)> = vec![
            (format!("{name}.txt"), text.to_vec()),
            (format!("{name}.txt.gz"), gzip(text)),
            (format!("{name}.2.gz"), in_two(text, gzip)),
            (format!("{name}.txt.zst"), zstd(text)),
            (format!("{name}.2.zst"), in_two(text, zstd)),
            // BGZF, inflated in parallel: small members, so that batches of them go by.
            (
                format!("{name}.bgz"),
                leakdex::gzip::encode_bgzf(text, 3_000),
            ),
            // BGZF then an ordinary gzip member, as `cat a.bgz b.gz` writes.
            (format!("{name}.bgz.gz"), bgzf_then_gzip(text)),
        ];
        for (file, bytes) in &forms {
            let path = write_file(d, file, bytes);
            let out = d.join(format!("{file}.ldx"));
            let (built, summary) = build(&[path], &out, &small_blocks);
            assert!(content_bytes(&built) == reference, "{file} differs");
            assert_eq!(summary.sorted_input, name == "sorted", "{file}");
            assert_eq!(
                summary.index.hashes,
                Index::open(&out).unwrap().hash_count()
            );
            // The same bytes on standard input, through the binary.
            let out = d.join(format!("{file}.stdin.ldx"));
            let mut child = leakdex()
                .args(["build", "-", "-q", "-o"])
                .arg(&out)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(bytes).unwrap();
            assert!(child.wait().unwrap().success(), "{file} on stdin");
            let built = std::fs::read(&out).unwrap();
            assert!(
                content_bytes(&built) == reference,
                "{file} on stdin differs"
            );
        }
    }
    // A damaged zstd stream is an error naming the input, not a short index.
    let mut damaged = zstd(&sorted);
    let at = damaged.len() / 2;
    damaged.truncate(at);
    let path = write_file(d, "cut.zst", &damaged);
    let err = build_index(&[path], &d.join("cut.ldx"), &small_blocks, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("cut.zst"), "{err}");
    assert!(!d.join("cut.ldx").exists());
    // So is a damaged BGZF member: the error names the input and the member's offset.
    let mut damaged = leakdex::gzip::encode_bgzf(&sorted, 3_000);
    let at = damaged.len() / 2;
    damaged[at] ^= 0x55;
    let path = write_file(d, "bad.bgz", &damaged);
    let err = build_index(&[path], &d.join("bad.ldx"), &small_blocks, &NoProgress).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("bad.bgz")
            && message.contains("corrupt gzip (BGZF) member at compressed byte"),
        "{message}"
    );
    assert!(!d.join("bad.ldx").exists());
}

#[test]
fn a_tiny_memory_budget_spills_to_many_partitions_and_stays_right() {
    let (sorted, shuffled, _) = dumps(40_000);
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (reference, _) = build(
        &[write_file(d, "sorted.txt", &sorted)],
        &d.join("a.ldx"),
        &Default::default(),
    );
    let options = BuildOptions {
        memory_limit: Some(64 << 10),
        tmp_dir: Some(tmp.path().to_path_buf()),
        ..BuildOptions::default()
    };
    let (bytes, summary) = build(
        &[write_file(d, "shuffled.txt", &shuffled)],
        &d.join("b.ldx"),
        &options,
    );
    // Partitions spill every 1,024 entries: nearly everything went through the disk.
    assert!(summary.temp_bytes >= 38_000 * 28, "{}", summary.temp_bytes);
    assert!(content_bytes(&bytes) == content_bytes(&reference));
    assert!(
        leftovers(tmp.path()).is_empty(),
        "{:?}",
        leftovers(tmp.path())
    );
    Index::open(d.join("b.ldx")).unwrap().verify().unwrap();
}

/// Sets a file's or folder's modification time an hour back, as if a build had been killed
/// long ago.
#[cfg(unix)]
fn backdate(path: &Path) {
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::open(path)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(old))
        .unwrap();
}

#[cfg(unix)]
#[test]
fn stopped_builds_leave_nothing_and_killed_builds_are_swept_up_by_the_next() {
    let (_, shuffled, _) = dumps(600_000);
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write_file(d, "big.txt", &shuffled.repeat(4));
    let out = d.join("out.ldx");
    let start = || {
        default_signals(&mut leakdex())
            .args(["build", "-q", "--memory", "8M", "--tmp"])
            .arg(tmp.path())
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Ctrl-C, kill/timeout/systemd, a closed terminal: each stops the build, which removes
    // its files and exits with 128 plus the signal's number.
    for (signal, name) in [
        (libc::SIGINT, "SIGINT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let child = start();
        std::thread::sleep(Duration::from_millis(400));
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        unsafe { libc::kill(child.id() as i32, signal) };
        let result = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(128 + signal), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("build stopped by {name}")),
            "{stderr}"
        );
        assert!(!out.exists(), "an index after {name}");
        assert!(
            leftovers(tmp.path()).is_empty(),
            "{name}: {:?}",
            leftovers(tmp.path())
        );
        assert!(leftovers(d).is_empty(), "{name}: {:?}", leftovers(d));
    }
    // SIGKILL cannot be caught: the build leaves its partition folder (or its partial
    // index), and the next build in the same places removes what no running build holds.
    let child = start();
    std::thread::sleep(Duration::from_millis(600));
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait_with_output().unwrap();
    assert!(!out.exists(), "an index after SIGKILL");
    let left: Vec<PathBuf> = leftovers(tmp.path())
        .iter()
        .map(|n| tmp.path().join(n))
        .chain(leftovers(d).iter().map(|n| d.join(n)))
        .collect();
    assert!(!left.is_empty(), "a killed build left nothing to sweep up");
    for path in &left {
        backdate(path);
    }
    let small = write_file(
        d,
        "small.txt",
        b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:1\n",
    );
    let result = leakdex()
        .args(["build", "-q", "--tmp"])
        .arg(tmp.path())
        .arg(&small)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("left by an earlier build"), "{stderr}");
    for path in &left {
        assert!(!path.exists(), "{} was not removed", path.display());
    }
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn plaintext_and_combo_leaks_hash_like_reference_implementations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Reference values from Python's hashlib (SHA-1) and passlib's nthash (NTLM).
    let passwords = "password\npässwörd\r\npassword\n密码\n\n";
    let file = write_file(d, "passwords.txt", passwords.as_bytes());
    for (kind, expect) in [
        (
            HashKind::Sha1,
            [
                ("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8", 2),
                ("F517DDF1D32A112FF1AD55C66D1B12CB38E7E8F7", 1),
                ("C839A8FF17885AF0B098662CCC3AC5E3111B3B3B", 1),
            ],
        ),
        (
            HashKind::Ntlm,
            [
                ("8846F7EAEE8FB117AD06BDD830B7586C", 2),
                ("0553152250AC01ADB4213CB9938663E4", 1),
                ("F900556F89880C4084E3C644C6C20B9C", 1),
            ],
        ),
    ] {
        let options = BuildOptions {
            kind: Some(kind),
            input: InputFormat::Passwords,
            ..BuildOptions::default()
        };
        let out = d.join(format!("{kind}.ldx"));
        let (_, summary) = build(std::slice::from_ref(&file), &out, &options);
        assert_eq!(summary.skipped_lines, 0);
        let index = Index::open(&out).unwrap();
        assert_eq!(index.hash_count(), 3);
        for (hex, count) in expect {
            let h = leakdex::hash::parse_hash(hex.as_bytes(), kind).unwrap();
            assert_eq!(index.check(&h).unwrap(), Some(count), "{kind} {hex}");
        }
    }

    let mut combo_text = "alice:password\nbob:pässwörd\nnot-a-combo-line\ncarol:pass:word\n"
        .as_bytes()
        .to_vec();
    combo_text.extend_from_slice(b"dave:\xff\xfe\n");
    let combo = write_file(d, "combo.txt", &combo_text);
    let out = d.join("combo.ldx");
    let options = BuildOptions {
        kind: Some(HashKind::Ntlm),
        input: InputFormat::Combo,
        ..BuildOptions::default()
    };
    let (_, summary) = build(std::slice::from_ref(&combo), &out, &options);
    assert_eq!(summary.skipped_lines, 2, "{:?}", summary.skipped_examples);
    assert!(
        summary.skipped_examples[0].ends_with("combo.txt:3: no `:` between user and password"),
        "{:?}",
        summary.skipped_examples
    );
    assert!(
        summary.skipped_examples[1].contains("combo.txt:5: not UTF-8"),
        "{:?}",
        summary.skipped_examples
    );
    let index = Index::open(&out).unwrap();
    let h = leakdex::hash::parse_hash(b"0553152250AC01ADB4213CB9938663E4", HashKind::Ntlm).unwrap();
    assert_eq!(index.check(&h).unwrap(), Some(1));
    let (_, count) = index.check_password(b"pass:word").unwrap();
    assert_eq!(count, Some(1));

    // The CLI reports what it left out.
    let cli = leakdex()
        .args(["build", "--input", "combo", "--kind", "ntlm", "-o"])
        .arg(d.join("combo2.ldx"))
        .arg(&combo)
        .output()
        .unwrap();
    assert!(cli.status.success());
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(stderr.contains("2 lines could not be hashed"), "{stderr}");
    assert!(stderr.contains("combo.txt:3"), "{stderr}");
}

#[test]
fn merge_combines_indexes_and_dumps_with_counts_summed() {
    let (sorted, shuffled, model) = dumps(30_000);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let half = shuffled.len() / 2;
    let cut = shuffled[..half].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    // The halves share nothing but their repeated lines; give them an overlap too.
    let overlap: Vec<u8> = shuffled[..cut]
        .split_inclusive(|&b| b == b'\n')
        .take(500)
        .collect::<Vec<_>>()
        .concat();
    let mut second = shuffled[cut..].to_vec();
    second.extend_from_slice(&overlap);
    let mut model = model;
    for l in overlap.split_inclusive(|&b| b == b'\n') {
        if let Ok(Some(e)) = leakdex::dump::parse_line(l, HashKind::Sha1) {
            model_add(&mut model, e.hash, e.count);
        }
    }
    let first = write_file(d, "first.txt", &shuffled[..cut]);
    let second = write_file(d, "second.txt.gz", &gzip(&second));
    build(
        std::slice::from_ref(&first),
        &d.join("old.ldx"),
        &Default::default(),
    );
    build(
        std::slice::from_ref(&second),
        &d.join("new.ldx"),
        &Default::default(),
    );

    let out = leakdex()
        .args(["merge", "-q", "-o"])
        .arg(d.join("merged.ldx"))
        .arg(d.join("old.ldx"))
        .arg(d.join("new.ldx"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = Index::open(d.join("merged.ldx")).unwrap();
    assert_eq!(merged.hash_count(), model.len() as u64);
    for (h, &c) in model.iter().step_by(3) {
        assert_eq!(merged.check(h).unwrap(), Some(c));
    }
    let names: Vec<&str> = merged.sources().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first.txt", "second.txt.gz"]);
    merged.verify().unwrap();

    // An index and a dump give the same content as two indexes.
    let (bytes, _) = build(
        &[d.join("old.ldx"), second],
        &d.join("mixed.ldx"),
        &Default::default(),
    );
    assert!(content_bytes(&bytes) == content_bytes(&std::fs::read(d.join("merged.ldx")).unwrap()));
    let _ = sorted;

    // Kinds must agree.
    let ntlm = write_file(d, "ntlm.txt", b"8846F7EAEE8FB117AD06BDD830B7586C:1\n");
    build(
        std::slice::from_ref(&ntlm),
        &d.join("ntlm.ldx"),
        &Default::default(),
    );
    let out = leakdex()
        .args(["merge", "-o"])
        .arg(d.join("bad.ldx"))
        .arg(d.join("old.ldx"))
        .arg(d.join("ntlm.ldx"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be merged"));
    assert!(!d.join("bad.ldx").exists());
}
