//! Partitioned builds: four partitions of one dump (`build --prefixes`) answer exactly as one
//! whole index through every command that takes them (check, range, serve, export, bench,
//! merge), and what cannot answer is refused.

mod common;

use common::*;
use leakdex::{HashKind, Index, IndexSet, PrefixRange};
use std::path::{Path, PathBuf};

const QUARTERS: [&str; 4] = ["00000-3FFFF", "40000-7FFFF", "80000-BFFFF", "C0000-FFFFF"];

/// A dump of hashes spread over every prefix, with crowded prefixes at the partitions' edges
/// and the hash of "password", its whole index and its four partitions.
struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    dump: PathBuf,
    model: Model,
    whole: PathBuf,
    parts: Vec<PathBuf>,
}

fn fixture(kind: HashKind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let mut model = Model::new();
    let mut text = String::new();
    let mut add = |h: leakdex::HashBytes, c: u64, text: &mut String| {
        model_add(&mut model, h, c);
        text.push_str(&format!("{}:{c}\n", hex(&h, kind)));
    };
    for i in 0..6000u64 {
        let prefix = (i.wrapping_mul(0x9E37_79B9) >> 7) as u32 & 0xF_FFFF;
        add(
            hash_from(i, prefix, kind),
            1 + i * 7919 % 100_000,
            &mut text,
        );
    }
    for (j, prefix) in [
        0x00000, 0x3FFFF, 0x40000, 0x7FFFF, 0x80000, 0xBFFFF, 0xC0000, 0xFFFFF,
    ]
    .into_iter()
    .enumerate()
    {
        for i in 0..40u64 {
            add(
                hash_from(100_000 + j as u64 * 100 + i, prefix, kind),
                3 + i,
                &mut text,
            );
        }
    }
    let password = kind.hash_password(b"password").unwrap();
    add(password, 9_545_824, &mut text);
    let dump = write_file(&path, "dump.txt", text.as_bytes());
    let whole = path.join("whole.ldx");
    let o = run(&["build", s(&dump), "-o", s(&whole), "-q"], b"");
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    let mut parts = Vec::new();
    for q in QUARTERS {
        let out = path.join(format!("part-{q}.ldx"));
        let o = run(&["build", s(&dump), "-o", s(&out), "--prefixes", q], b"");
        assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
        assert!(common::text(&o.stderr).contains(&format!("partition: prefixes {q}")));
        parts.push(out);
    }
    Fixture {
        _dir: dir,
        dir: path,
        dump,
        model,
        whole,
        parts,
    }
}

fn text_of(o: &std::process::Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

/// `-i P` for every path.
fn with_indexes<'a>(args: &[&'a str], paths: &'a [PathBuf]) -> Vec<&'a str> {
    let mut out = args.to_vec();
    for p in paths {
        out.push("-i");
        out.push(s(p));
    }
    out
}

/// Each partition holds exactly the model's hashes of its prefixes, with their counts.
#[test]
fn each_partition_holds_its_prefixes_only() {
    let f = fixture(HashKind::Sha1);
    let mut total = 0;
    for (q, path) in QUARTERS.iter().zip(&f.parts) {
        let range = PrefixRange::parse(q).unwrap();
        let index = Index::open(path).unwrap();
        assert_eq!(index.partition(), range);
        index.verify().unwrap();
        let mine: Vec<_> = f
            .model
            .iter()
            .filter(|(h, _)| range.contains(leakdex::hash::prefix_of(h)))
            .collect();
        assert_eq!(index.hash_count(), mine.len() as u64);
        for (h, &c) in mine {
            assert_eq!(index.check(h).unwrap(), Some(c));
        }
        total += index.hash_count();
        let info = run(&["info", "--json", s(path)], b"");
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(info["prefixes"], *q);
        assert_eq!(info["partition"], true);
        assert_eq!(info["format_version"], 4);
    }
    assert_eq!(total, f.model.len() as u64);
    let info = run(&["info", s(&f.whole)], b"");
    assert!(text(&info.stdout).contains("prefixes         00000-FFFFF (all)"));
}

/// check (hashes, passwords, JSON), range (every edge prefix and a sample) and bench answer
/// through four partitions as through the whole index, for SHA-1 and NTLM.
#[test]
fn four_partitions_answer_as_the_whole_index() {
    for kind in [HashKind::Sha1, HashKind::Ntlm] {
        let f = fixture(kind);
        // Every hash of the dump, and as many random ones.
        let mut items = String::new();
        for (i, h) in f.model.keys().enumerate() {
            items.push_str(&hex(h, kind));
            items.push('\n');
            let miss = hash_from(900_000 + i as u64, (i as u32 * 7919) & 0xF_FFFF, kind);
            items.push_str(&hex(&miss, kind));
            items.push('\n');
        }
        let items_path = write_file(&f.dir, "items.txt", items.as_bytes());
        for extra in [&["--hashes"][..], &["--hashes", "--json"][..]] {
            let mut args = vec!["check"];
            args.extend_from_slice(extra);
            args.push(s(&items_path));
            let whole = run(&with_indexes(&args, std::slice::from_ref(&f.whole)), b"");
            let parts = run(&with_indexes(&args, &f.parts), b"");
            assert_eq!(whole.status.code(), Some(1), "{}", text_of(&whole));
            assert_eq!(parts.status.code(), whole.status.code());
            assert!(parts.stdout == whole.stdout, "{kind:?} {extra:?}");
            assert_eq!(
                text(&whole.stdout).lines().count(),
                2 * f.model.len(),
                "{kind:?}"
            );
        }
        let passwords = b"password\nnot a leaked one\n";
        let whole = run(&["check", "-i", s(&f.whole)], passwords);
        let parts = run(&with_indexes(&["check"], &f.parts), passwords);
        assert_eq!(parts.status.code(), Some(1));
        assert!(parts.stdout == whole.stdout);
        assert!(text(&parts.stdout).contains(":9545824\n"));

        let mut prefixes = vec![
            "00000", "3FFFF", "40000", "7FFFF", "80000", "BFFFF", "C0000", "FFFFF", "5BAA6",
            "8846F", "12345",
        ];
        let sample: Vec<String> = f
            .model
            .keys()
            .take(40)
            .map(|h| format!("{:05x}", leakdex::hash::prefix_of(h)))
            .collect();
        prefixes.extend(sample.iter().map(String::as_str));
        for p in prefixes {
            let whole = run(&["range", "-i", s(&f.whole), p], b"");
            let parts = run(&with_indexes(&["range", p], &f.parts), b"");
            assert_eq!(parts.status.code(), Some(0), "{}", text_of(&parts));
            assert!(parts.stdout == whole.stdout, "{kind:?} {p}");
            let model = model_range(
                &f.model,
                kind,
                leakdex::hash::parse_prefix(p.as_bytes()).unwrap(),
            );
            assert!(parts.stdout == model, "{kind:?} {p}");
        }
        let padded = run(&with_indexes(&["range", "--pad", "5BAA6"], &f.parts), b"");
        let rows = text(&padded.stdout).split("\r\n").count();
        assert!((800..=1000).contains(&rows), "{rows} rows");

        let bench = run(
            &with_indexes(&["bench", "--queries", "2000", "--json"], &f.parts),
            b"",
        );
        assert_eq!(bench.status.code(), Some(0), "{}", text_of(&bench));
        let bench: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
        assert_eq!(bench["hashes"], f.model.len() as u64);
        let ops: Vec<&str> = bench["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["operation"].as_str().unwrap())
            .collect();
        assert!(ops.contains(&"range body") && ops.contains(&"exact lookup (batch)"));
    }
}

/// The library's set answers batched lookups in input order across partitions.
#[test]
fn the_index_set_answers_batches_in_order() {
    let f = fixture(HashKind::Sha1);
    let set = IndexSet::open(&f.parts).unwrap();
    let whole = Index::open(&f.whole).unwrap();
    assert!(set.is_whole());
    assert_eq!(set.hash_count(), whole.hash_count());
    assert_eq!(set.count_sum(), whole.header().count_sum);
    let mut hashes: Vec<leakdex::HashBytes> = f.model.keys().copied().collect();
    for i in 0..2000u64 {
        hashes.push(hash_from(
            500_000 + i,
            (i as u32).wrapping_mul(524_287) & 0xF_FFFF,
            HashKind::Sha1,
        ));
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    set.probe_many(&hashes, &mut a).unwrap();
    whole.probe_many(&hashes, &mut b).unwrap();
    assert_eq!(a, b);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    set.lookup_many(&hashes, &mut a).unwrap();
    whole.lookup_many(&hashes, &mut b).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.iter().flatten().count(), f.model.len());
}

/// `serve` of the four partitions answers every range as `serve` of the whole index (bodies,
/// padding, gzip, ETag and 304); served two partitions only, it answers 404 for the others.
#[test]
fn serve_routes_each_prefix_to_its_partition() {
    let f = fixture(HashKind::Sha1);
    let parts: Vec<&Path> = f.parts.iter().map(PathBuf::as_path).collect();
    let whole = serve(&[&f.whole], &[]);
    let split = serve(&parts, &[]);
    for p in [
        "00000", "3FFFF", "40000", "5BAA6", "7ffff", "80000", "C0000", "FFFFF",
    ] {
        let path = format!("/range/{p}");
        let a = send(&mut connect(&whole), "GET", &path, &[]);
        let b = send(&mut connect(&split), "GET", &path, &[]);
        assert_eq!(b.status, 200, "{p}");
        assert!(a.body == b.body, "{p}");
        let padded = send(
            &mut connect(&split),
            "GET",
            &path,
            &[("Add-Padding", "true")],
        );
        assert_eq!(padded.status, 200);
        let etag = b.header("etag").unwrap().to_string();
        let again = send(
            &mut connect(&split),
            "GET",
            &path,
            &[("If-None-Match", etag.as_str())],
        );
        assert_eq!(again.status, 304, "{p}");
    }
    let half = serve(&parts[..2], &[]);
    let inside = send(&mut connect(&half), "GET", "/range/5BAA6", &[]);
    assert_eq!(inside.status, 200);
    let outside = send(&mut connect(&half), "GET", "/range/8846F", &[]);
    assert_eq!(outside.status, 404);
    assert!(text(&outside.body).contains("partitions"));
}

/// `export` of the four partitions writes the same tree as of the whole index; of two, only
/// their prefixes, and prefixes asked for that they do not hold are an error.
#[test]
fn export_of_partitions_writes_the_whole_tree() {
    let f = fixture(HashKind::Sha1);
    let a = f.dir.join("tree-whole");
    let b = f.dir.join("tree-parts");
    let o = run(
        &[
            "export",
            "-q",
            "-i",
            s(&f.whole),
            s(&a),
            "--prefixes",
            "3FF00-400FF,FFF00-FFFFF",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    let mut args = with_indexes(&["export", "-q"], &f.parts);
    args.extend([s(&b), "--prefixes", "3FF00-400FF,FFF00-FFFFF"]);
    let o = run(&args, b"");
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    let files = |tree: &Path| -> serde_json::Value {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tree.join("manifest.json")).unwrap()).unwrap();
        m["files"].clone()
    };
    assert_eq!(files(&a), files(&b));
    assert_eq!(files(&b).as_object().unwrap().len(), 512 + 256);

    // Two narrow partitions without --prefixes: the prefixes they hold, and no others.
    let narrow: Vec<PathBuf> = ["5BA00-5BAFF", "5BB00-5BBFF"]
        .iter()
        .map(|q| {
            let out = f.dir.join(format!("narrow-{q}.ldx"));
            let o = run(
                &["build", "-q", s(&f.dump), "-o", s(&out), "--prefixes", q],
                b"",
            );
            assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
            out
        })
        .collect();
    let c = f.dir.join("tree-narrow");
    let mut args = with_indexes(&["export", "-q"], &narrow);
    args.push(s(&c));
    let o = run(&args, b"");
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    assert!(c.join("range/5BBFF").exists() && c.join("range/5BA00").exists());
    assert!(!c.join("range/5BC00").exists() && !c.join("range/5B9FF").exists());
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["indexes"][0]["prefixes"], "5BA00-5BBFF");
    assert_eq!(m["file_count"], 512);
    assert!(
        std::fs::read(c.join("range/5BAA6")).unwrap()
            == model_range(&f.model, HashKind::Sha1, 0x5BAA6)
    );
    std::fs::remove_dir_all(&c).unwrap();
    args.extend(["--prefixes", "5BBF0-5BC0F"]);
    let o = run(&args, b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("not all held"), "{}", text_of(&o));
    assert!(!c.exists());
}

/// Merging the four partitions gives the whole index byte for byte; a gap, or a partition
/// merged with a dump, is refused.
#[test]
fn merging_partitions_makes_the_whole_index() {
    let f = fixture(HashKind::Sha1);
    let merged = f.dir.join("merged.ldx");
    let mut args = vec!["merge", "-q", "-o", s(&merged)];
    args.extend(f.parts.iter().rev().map(|p| s(p)));
    let o = run(&args, b"");
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    assert!(std::fs::read(&merged).unwrap() == std::fs::read(&f.whole).unwrap());

    let gap = f.dir.join("gap.ldx");
    let o = run(
        &["merge", "-o", s(&gap), s(&f.parts[0]), s(&f.parts[2])],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("leave a gap"), "{}", text_of(&o));
    let o = run(&["merge", "-o", s(&gap), s(&f.parts[0]), s(&f.dump)], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--prefixes 00000-3FFFF"),
        "{}",
        text_of(&o)
    );
    // Two partitions of one dump merge into their half.
    let o = run(
        &["merge", "-q", "-o", s(&gap), s(&f.parts[0]), s(&f.parts[1])],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    assert_eq!(
        Index::open(&gap).unwrap().partition(),
        PrefixRange::new(0, 0x7_FFFF).unwrap()
    );
    assert!(!gap.with_extension("").exists());
}

/// Overlapping partitions, partitions of different kinds, a whole index beside a partition,
/// a missing partition and a bad --prefixes: each a clear error with exit code 2, from every
/// command.
#[test]
fn what_cannot_answer_as_one_is_refused() {
    let f = fixture(HashKind::Sha1);
    let overlap = f.dir.join("overlap.ldx");
    let o = run(
        &[
            "build",
            "-q",
            s(&f.dump),
            "-o",
            s(&overlap),
            "--prefixes",
            "30000-4FFFF",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0));
    let ntlm_dump = write_file(
        &f.dir,
        "ntlm.txt",
        format!(
            "{}:1\n",
            hex(&hash_from(1, 0xC1234, HashKind::Ntlm), HashKind::Ntlm)
        )
        .as_bytes(),
    );
    let ntlm = f.dir.join("ntlm.ldx");
    let o = run(
        &[
            "build",
            "-q",
            s(&ntlm_dump),
            "-o",
            s(&ntlm),
            "--prefixes",
            "C0000-FFFFF",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0));
    let items = write_file(
        &f.dir,
        "items.txt",
        b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8\n",
    );
    let tree = f.dir.join("tree");
    let cases: [(Vec<PathBuf>, &str); 3] = [
        (vec![f.parts[0].clone(), overlap.clone()], "overlap"),
        (vec![f.parts[0].clone(), ntlm.clone()], "one kind"),
        (vec![f.whole.clone(), f.parts[1].clone()], "overlap"),
    ];
    for (paths, needle) in &cases {
        for cmd in [
            with_indexes(&["check", "--hashes", s(&items)], paths),
            with_indexes(&["range", "5BAA6"], paths),
            with_indexes(&["bench", "--queries", "10"], paths),
            {
                let mut a = with_indexes(&["export", "--prefixes", "00000"], paths);
                a.push(s(&tree));
                a
            },
        ] {
            if cmd[0] == "export" && *needle == "one kind" {
                // SHA-1 and NTLM go to folders of their own: not an error for export.
                continue;
            }
            let o = run(&cmd, b"");
            assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", text_of(&o));
            let err = text(&o.stderr);
            assert!(
                err.contains(needle) || (cmd[0] == "export" && err.contains("a second")),
                "{cmd:?}: {}",
                text_of(&o)
            );
        }
        if *needle == "one kind" {
            // SHA-1 and NTLM are served side by side: not an error for serve.
            continue;
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_leakdex"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        for p in paths {
            cmd.arg("-i").arg(p);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // It must refuse at once; a server that started is killed and fails the test.
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(30) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(2), "serve: {}", text_of(&o));
        assert!(
            text(&o.stderr).contains(needle) || text(&o.stderr).contains("a second"),
            "serve: {}",
            text_of(&o)
        );
    }
    assert!(!tree.exists());

    // A hash of a prefix no partition holds: the answers before it, then an error naming the
    // line and what is held (never the hash).
    let lines = format!(
        "{}\n{}\n",
        hex(&hash_from(1, 0x12345, HashKind::Sha1), HashKind::Sha1),
        hex(&hash_from(2, 0x9ABCD, HashKind::Sha1), HashKind::Sha1)
    );
    let o = run(
        &with_indexes(&["check", "--hashes"], &f.parts[..2]),
        lines.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("<stdin>:2:") && err.contains("00000-7FFFF"),
        "{err}"
    );
    assert!(!err.contains("9ABCD"), "{err}");
    assert_eq!(text(&o.stdout).lines().count(), 1);
    let o = run(&with_indexes(&["range", "9ABCD"], &f.parts[..2]), b"");
    assert_eq!(o.status.code(), Some(2));

    for bad in ["40000-3FFFF", "4000-7FFFF", "00000-FFFFG", "00000-100000"] {
        let out = f.dir.join("bad.ldx");
        let o = run(
            &["build", s(&f.dump), "-o", s(&out), "--prefixes", bad],
            b"",
        );
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(!out.exists());
    }
}
