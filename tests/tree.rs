//! Downloader trees as build input: the official per-prefix layout, hibp-downloader's gzip
//! tree and a `leakdex export` tree give the same index as one dump of the same hashes, and
//! every malformed tree is refused with a message naming the file (and the line).

mod common;

use common::*;
use leakdex::export::{export, ExportOptions};
use leakdex::BuildProgress;
use leakdex::{build_index, BuildOptions, BuildSummary, HashKind, Index, NoProgress, PrefixRange};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The prefixes of these tests: a whole tree is 1,048,576 files, too many for a test (the
/// README gives the measurement of one).
const SHA1_FIRST: u32 = 0x5BA00;
const SHA1_LAST: u32 = 0x5BAFF;
const NTLM_FIRST: u32 = 0x88400;
const NTLM_LAST: u32 = 0x884FF;

fn range_of(kind: HashKind) -> PrefixRange {
    match kind {
        HashKind::Sha1 => PrefixRange::new(SHA1_FIRST, SHA1_LAST).unwrap(),
        HashKind::Ntlm => PrefixRange::new(NTLM_FIRST, NTLM_LAST).unwrap(),
    }
}

/// Hashes of every prefix of `range`, 0 to 6 a prefix (some prefixes empty), with counts up
/// to the tens of millions; "password" among them.
fn corpus(kind: HashKind, range: PrefixRange, seed: u64) -> Model {
    let mut model = Model::new();
    let mut n = seed;
    for prefix in range.prefixes() {
        let rows = (prefix as u64 ^ seed) % 7;
        for _ in 0..rows {
            n += 1;
            model_add(
                &mut model,
                hash_from(n, prefix, kind),
                1 + n * 7919 % 40_000_000,
            );
        }
    }
    let password = match kind {
        HashKind::Sha1 => leakdex::hash::sha1_password(b"password"),
        HashKind::Ntlm => leakdex::hash::ntlm_password("password"),
    };
    if range.contains(leakdex::hash::prefix_of(&password)) {
        model_add(&mut model, password, 10_434_004);
    }
    model
}

/// The model as one dump of `HASH:COUNT` lines, in no particular order.
fn write_dump(dir: &Path, model: &Model, kind: HashKind) -> PathBuf {
    let mut text = String::new();
    for (h, c) in model {
        text.push_str(&format!("{}:{c}\n", hex(h, kind)));
    }
    write_file(dir, "dump.txt", text.as_bytes())
}

/// How a generated tree writes its files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// The API's body, in `<PREFIX>.txt`: CRLF, no trailing line end.
    Api,
    /// Every prefix differently: LF, a trailing line end, a byte-order mark, lower-case names
    /// and suffixes, padding rows, rows out of order.
    Mixed,
}

/// A body as the range API sends it, then changed as `variant` says (see [`Style::Mixed`]).
/// Returns the body and its padding rows.
fn body(model: &Model, kind: HashKind, prefix: u32, variant: u32) -> (Vec<u8>, u64) {
    let api = text(&model_range(model, kind, prefix));
    let mut rows: Vec<String> = if api.is_empty() {
        Vec::new()
    } else {
        api.split("\r\n").map(str::to_string).collect()
    };
    let mut padding = 0;
    let mut end = "\r\n";
    let mut trailing = false;
    let mut bom = false;
    match variant % 7 {
        0 => end = "\n",
        1 => trailing = true,
        2 => bom = true,
        3 => rows = rows.iter().map(|r| r.to_lowercase()).collect(),
        4 => {
            // Padding as the Worker adds it: random suffixes with count 0 at the end.
            for i in 0..3u64 {
                let h = hash_from(prefix as u64 * 31 + i + 1_000_000, prefix, kind);
                rows.push(format!("{}:0", &hex(&h, kind)[5..]));
                padding += 1;
            }
        }
        5 => rows.reverse(),
        _ => {}
    }
    let mut out = String::new();
    if bom {
        out.push('\u{feff}');
    }
    out.push_str(&rows.join(end));
    if trailing && !rows.is_empty() {
        out.push_str(end);
    }
    (out.into_bytes(), padding)
}

/// The official downloader's `-s false` layout: `dir/<PREFIX>.txt` for every prefix of
/// `range`. Returns the padding rows written.
fn write_official(
    dir: &Path,
    model: &Model,
    kind: HashKind,
    range: PrefixRange,
    style: Style,
) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut padding = 0;
    for (i, prefix) in range.prefixes().enumerate() {
        let (bytes, pad) = match style {
            Style::Api => (model_range(model, kind, prefix), 0),
            Style::Mixed => body(model, kind, prefix, i as u32),
        };
        padding += pad;
        let name = if style == Style::Mixed && i % 7 == 3 {
            format!("{prefix:05x}.txt")
        } else {
            format!("{prefix:05X}.txt")
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    padding
}

/// hibp-downloader's layout: `data/<sha1|ntlm>/<aa>/<bb>/<prefix>.gz`, lower case, with a
/// `.meta` JSON file beside each.
fn write_hibp(data: &Path, model: &Model, kind: HashKind, range: PrefixRange) {
    for prefix in range.prefixes() {
        let name = format!("{prefix:05x}");
        let dir = data.join(kind.name()).join(&name[..2]).join(&name[2..4]);
        std::fs::create_dir_all(&dir).unwrap();
        let body = model_range(model, kind, prefix);
        std::fs::write(dir.join(format!("{name}.gz")), gzip(&body)).unwrap();
        let meta = format!(
            "{{\"prefix\":\"{name}\",\"etag\":\"W/\\\"0x8DC\\\"\",\"bytes\":{}}}",
            body.len()
        );
        std::fs::write(dir.join(format!("{name}.meta")), meta).unwrap();
    }
}

fn options(range: PrefixRange, kind: Option<HashKind>) -> BuildOptions {
    BuildOptions {
        prefixes: range,
        kind,
        ..BuildOptions::default()
    }
}

/// Progress of the reading phase, added up.
#[derive(Default)]
struct Recorder {
    reading: AtomicBool,
    bytes: AtomicU64,
    lines: AtomicU64,
    reading_total: AtomicU64,
}

impl BuildProgress for Recorder {
    fn phase(&self, name: &str, total_bytes: u64) {
        self.reading.store(name == "reading", Ordering::Relaxed);
        if name == "reading" {
            self.reading_total.store(total_bytes, Ordering::Relaxed);
        }
    }
    fn advance(&self, bytes: u64, lines: u64) {
        if self.reading.load(Ordering::Relaxed) {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
            self.lines.fetch_add(lines, Ordering::Relaxed);
        }
    }
}

fn build(input: &Path, output: &Path, options: &BuildOptions) -> leakdex::Result<BuildSummary> {
    build_index(&[input.to_path_buf()], output, options, &NoProgress)
}

/// The two indexes answer alike, and as the model says: the same content bytes (all but the
/// sources), the same range body for every prefix of `range`, and every hash found with its
/// count.
fn assert_same(
    tree_index: &Path,
    dump_index: &Path,
    model: &Model,
    kind: HashKind,
    range: PrefixRange,
) {
    let a = std::fs::read(tree_index).unwrap();
    let b = std::fs::read(dump_index).unwrap();
    assert!(content_bytes(&a) == content_bytes(&b), "the indexes differ");
    let (a, b) = (
        Index::open(tree_index).unwrap(),
        Index::open(dump_index).unwrap(),
    );
    assert_eq!(a.kind(), kind);
    assert_eq!(a.partition(), range);
    let (mut body_a, mut body_b) = (Vec::new(), Vec::new());
    for prefix in range.prefixes() {
        body_a.clear();
        body_b.clear();
        a.write_range(prefix, &mut body_a).unwrap();
        b.write_range(prefix, &mut body_b).unwrap();
        assert_eq!(body_a, body_b, "{prefix:05X}");
        assert_eq!(body_a, model_range(model, kind, prefix), "{prefix:05X}");
    }
    for (hash, count) in model {
        assert_eq!(a.check(hash).unwrap(), Some(*count), "{}", hex(hash, kind));
    }
    assert_eq!(a.hash_count(), model.len() as u64);
}

#[test]
fn an_official_tree_indexes_as_its_single_dump_does() {
    for kind in [HashKind::Sha1, HashKind::Ntlm] {
        let dir = tempfile::tempdir().unwrap();
        let range = range_of(kind);
        let model = corpus(kind, range, 11);
        let dump = write_dump(dir.path(), &model, kind);
        let from_dump = dir.path().join("dump.ldx");
        build(&dump, &from_dump, &options(range, None)).unwrap();
        for style in [Style::Api, Style::Mixed] {
            let tree = dir.path().join(format!("tree-{}", style as u8));
            let padding = write_official(&tree, &model, kind, range, style);
            // The kind comes from the suffixes' length.
            let from_tree = dir.path().join("tree.ldx");
            let progress = Recorder::default();
            let summary = build_index(
                std::slice::from_ref(&tree),
                &from_tree,
                &options(range, None),
                &progress,
            )
            .unwrap();
            assert_same(&from_tree, &from_dump, &model, kind, range);
            assert_eq!(summary.padding_rows, padding);
            assert!(style == Style::Api || padding > 0);
            assert!(
                summary.sorted_input,
                "a tree streams into the writer sorted"
            );
            assert_eq!(summary.temp_bytes, 0);
            // One source: the folder, its files' bytes and lines, the newest time.
            let index = Index::open(&from_tree).unwrap();
            let sources = index.sources();
            assert_eq!(sources.len(), 1);
            let files: Vec<PathBuf> = std::fs::read_dir(&tree)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(files.len(), range.len() as usize);
            let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
            let lines: u64 = files
                .iter()
                .map(|f| {
                    let t = std::fs::read(f).unwrap();
                    let breaks = t.iter().filter(|&&b| b == b'\n').count() as u64;
                    breaks + u64::from(!t.is_empty() && !t.ends_with(b"\n"))
                })
                .sum();
            let newest = files
                .iter()
                .map(|f| {
                    f.metadata()
                        .unwrap()
                        .modified()
                        .unwrap()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                })
                .max()
                .unwrap();
            assert_eq!(sources[0].name, format!("tree-{}", style as u8));
            assert_eq!(
                (sources[0].size, sources[0].lines, sources[0].modified),
                (bytes, lines, newest)
            );
            // Progress went through the files' bytes and lines, against an estimate of the
            // total that is exact for so few files.
            let seen = |a: &AtomicU64| a.load(Ordering::Relaxed);
            assert_eq!(
                (seen(&progress.bytes), seen(&progress.lines)),
                (bytes, lines)
            );
            assert_eq!(seen(&progress.reading_total), bytes);
            // --kind agrees.
            build(&tree, &from_tree, &options(range, Some(kind))).unwrap();
            assert_same(&from_tree, &from_dump, &model, kind, range);
        }
    }
}

#[test]
fn a_hibp_downloader_tree_indexes_as_its_single_dump_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut models = Vec::new();
    for kind in [HashKind::Sha1, HashKind::Ntlm] {
        let range = range_of(kind);
        let model = corpus(kind, range, 5);
        write_hibp(&data, &model, kind, range);
        let dump = write_dump(dir.path(), &model, kind);
        let from_dump = dir.path().join(format!("{}-dump.ldx", kind.name()));
        build(&dump, &from_dump, &options(range, None)).unwrap();
        models.push((kind, range, model, from_dump));
    }
    let out = dir.path().join("tree.ldx");
    for (kind, range, model, from_dump) in &models {
        // The data folder with --kind, and the kind's own folder with or without it.
        build(&data, &out, &options(*range, Some(*kind))).unwrap();
        assert_same(&out, from_dump, model, *kind, *range);
        assert_eq!(
            Index::open(&out).unwrap().sources()[0].name,
            format!("data/{}", kind.name())
        );
        let own = data.join(kind.name());
        build(&own, &out, &options(*range, None)).unwrap();
        assert_same(&out, from_dump, model, *kind, *range);
        assert_eq!(Index::open(&out).unwrap().sources()[0].name, kind.name());
        build(&own, &out, &options(*range, Some(*kind))).unwrap();
        assert_same(&out, from_dump, model, *kind, *range);
    }
    // A data folder that holds one kind needs no --kind.
    let sha1_only = dir.path().join("sha1-only");
    std::fs::create_dir(&sha1_only).unwrap();
    std::fs::rename(data.join("sha1"), sha1_only.join("sha1")).unwrap();
    let (kind, range, model, from_dump) = &models[0];
    build(&sha1_only, &out, &options(*range, None)).unwrap();
    assert_same(&out, from_dump, model, *kind, *range);
}

#[test]
fn a_leakdex_export_tree_indexes_back_to_the_same_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut indexes = Vec::new();
    let mut ranges = Vec::new();
    for kind in [HashKind::Sha1, HashKind::Ntlm] {
        let range = range_of(kind);
        let model = corpus(kind, range, 23);
        let dump = write_dump(dir.path(), &model, kind);
        // Whole indexes to export, partitions to compare with.
        let whole = dir.path().join(format!("{}-whole.ldx", kind.name()));
        build(&dump, &whole, &options(PrefixRange::WHOLE, None)).unwrap();
        let path = dir.path().join(format!("{}.ldx", kind.name()));
        build(&dump, &path, &options(range, None)).unwrap();
        indexes.push((kind, range, model, path, whole));
        ranges.push(range.first()..=range.last());
    }
    let opened: Vec<leakdex::IndexSet> = indexes
        .iter()
        .map(|i| leakdex::IndexSet::open(&[&i.4]).unwrap())
        .collect();
    // With gzip: a `<PREFIX>.gz` beside every `<PREFIX>`, which is a copy and not read.
    let mirror = dir.path().join("mirror");
    let export_options = ExportOptions {
        gzip: true,
        prefixes: ranges,
        ..ExportOptions::default()
    };
    export(&opened, &mirror, &export_options, &NoProgress, None).unwrap();
    let out = dir.path().join("again.ldx");
    for (kind, range, model, path, _) in &indexes {
        build(&mirror, &out, &options(*range, Some(*kind))).unwrap();
        assert_same(&out, path, model, *kind, *range);
        let folder = match kind {
            HashKind::Sha1 => "range",
            HashKind::Ntlm => "range-ntlm",
        };
        build(&mirror.join(folder), &out, &options(*range, None)).unwrap();
        assert_same(&out, path, model, *kind, *range);
    }
    // An export of a login index is not read as passwords.
    std::fs::create_dir(mirror.join("range-login")).unwrap();
    let err = build(
        &mirror.join("range-login"),
        &out,
        &options(range_of(HashKind::Sha1), None),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("range-login: a leakdex export of a login index"),
        "{err}"
    );
}

/// A tree of the prefixes 5BAA0-5BAAF, "password" in 5BAA6.
fn small_tree(dir: &Path) -> (PathBuf, Model) {
    let range = PrefixRange::new(0x5BAA0, 0x5BAAF).unwrap();
    let model = corpus(HashKind::Sha1, range, 3);
    let tree = dir.join("tree");
    write_official(&tree, &model, HashKind::Sha1, range, Style::Api);
    (tree, model)
}

/// Runs `leakdex build` and returns its standard error, after checking it failed with exit
/// code 2.
fn fails(args: &[&str]) -> String {
    let out = run(args, b"");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stderr)
}

#[test]
fn a_partial_tree_needs_prefixes_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, model) = small_tree(dir.path());
    let out = dir.path().join("x.ldx");
    let (tree_s, out_s) = (s(&tree), s(&out));
    let err = fails(&["build", tree_s, "-o", out_s]);
    assert!(
        err.contains(
            "tree: the tree holds 16 of 1,048,576 prefixes (5BAA0-5BAAF); missing 00000 and \
             1,048,559 more; to index only part, add --prefixes 5BAA0-5BAAF"
        ),
        "{err}"
    );
    assert!(!out.exists());
    // As suggested.
    let done = run(
        &["build", tree_s, "-o", out_s, "--prefixes", "5BAA0-5BAAF"],
        b"",
    );
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let checked = run(&["check", "-i", out_s], b"password\n");
    assert_eq!(checked.status.code(), Some(1), "{}", text(&checked.stderr));
    assert_eq!(
        text(&checked.stdout),
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004\n"
    );
    // A part of the tree: the other files are not read, even when they would not parse.
    std::fs::write(tree.join("5BAA0.txt"), b"not a range body\r\n").unwrap();
    let done = run(
        &["build", tree_s, "-o", out_s, "--prefixes", "5baa6-5BAA7"],
        b"",
    );
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(
        text(&done.stderr).contains(
            "partition: prefixes 5BAA6-5BAA7; 0 hashes outside it left out; 14 files of the \
             tree outside it not read"
        ),
        "{}",
        text(&done.stderr)
    );
    let index = Index::open(&out).unwrap();
    for prefix in 0x5BAA6..=0x5BAA7 {
        let mut body = Vec::new();
        index.write_range(prefix, &mut body).unwrap();
        assert_eq!(body, model_range(&model, HashKind::Sha1, prefix));
    }
    assert_eq!(
        index.partition(),
        PrefixRange::new(0x5BAA6, 0x5BAA7).unwrap()
    );
    // Prefixes past the tree's end, and a tree with a hole.
    let err = fails(&["build", tree_s, "-o", out_s, "--prefixes", "5BAA8-5BAB1"]);
    assert!(
        err.contains(
            "tree: the tree lacks 2 of the 10 prefixes of --prefixes 5BAA8-5BAB1: missing \
             5BAB0, 5BAB1"
        ),
        "{err}"
    );
    let err = fails(&["build", tree_s, "-o", out_s, "--prefixes", "00000-00010"]);
    assert!(
        err.contains("its files run from 5BAA0 to 5BAAF, outside that range"),
        "{err}"
    );
    std::fs::remove_file(tree.join("5BAA3.txt")).unwrap();
    let err = fails(&["build", tree_s, "-o", out_s, "--prefixes", "5BAA1-5BAAF"]);
    assert!(
        err.contains("missing 5BAA3 (a download cut short?)"),
        "{err}"
    );
    let err = fails(&["build", tree_s, "-o", out_s]);
    assert!(
        err.contains(
            "the tree holds 15 of 1,048,576 prefixes (5BAA0-5BAAF, with gaps); missing 00000 \
             and 1,048,560 more; to index only part, add --prefixes 5BAA0-5BAA2 (the first \
             range it holds whole)"
        ),
        "{err}"
    );
}

#[test]
fn malformed_trees_are_refused_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, _) = small_tree(dir.path());
    let out = dir.path().join("x.ldx");
    let (tree_s, out_s) = (s(&tree), s(&out));
    let args = ["build", tree_s, "-o", out_s, "--prefixes", "5BAA0-5BAAF"];
    let original = std::fs::read(tree.join("5BAA6.txt")).unwrap();
    let suffix = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";
    // Body lines that are not `SUFFIX:COUNT`: the file and the line (of 1-based lines).
    for (bad, line, why) in [
        (
            format!("{suffix}\r\n"),
            2,
            "expected `SUFFIX:COUNT`, found no `:`",
        ),
        (
            format!("5BAA6{suffix}:3\r\n"),
            2,
            "found 40 characters (a whole hash",
        ),
        (
            "7EAEE8FB117AD06BDD830B7586C:3\r\n".to_string(),
            2,
            "found 27 characters (the length of an NTLM suffix)",
        ),
        (format!("{}G:1\r\n", &suffix[..34]), 2, "not a hex digit"),
        (
            format!("{suffix}:-1\r\n"),
            2,
            "count `-1` is not a whole decimal number",
        ),
        (
            format!("{suffix}:18446744073709551616\r\n"),
            2,
            "count does not fit in 64 bits",
        ),
    ] {
        let mut body = format!("{suffix}:1\r\n").into_bytes();
        body.extend_from_slice(bad.as_bytes());
        body.extend_from_slice(&original);
        std::fs::write(tree.join("5BAA6.txt"), &body).unwrap();
        let err = fails(&args);
        let at = format!("{}:{line}: ", tree.join("5BAA6.txt").display());
        assert!(err.contains(&at) && err.contains(why), "{bad:?}: {err}");
        assert!(!out.exists());
    }
    // The same in a gzip body: the line of the decompressed text.
    std::fs::remove_file(tree.join("5BAA6.txt")).unwrap();
    std::fs::write(
        tree.join("5baa6.gz"),
        gzip(format!("\r\n{suffix}:x\r\n").as_bytes()),
    )
    .unwrap();
    let err = fails(&args);
    assert!(err.contains("5baa6.gz:2: count `x`"), "{err}");
    // A truncated gzip file.
    let whole = gzip(&original);
    std::fs::write(tree.join("5baa6.gz"), &whole[..whole.len() / 2]).unwrap();
    let err = fails(&args);
    assert!(err.contains("5baa6.gz: cannot decompress"), "{err}");
    std::fs::remove_file(tree.join("5baa6.gz")).unwrap();
    std::fs::write(tree.join("5BAA6.txt"), &original).unwrap();
    assert_eq!(run(&args, b"").status.code(), Some(0));
    std::fs::remove_file(&out).unwrap();

    // Two files for one prefix.
    for twin in ["5baa6.txt", "5BAA6.gz", "5BAA6"] {
        std::fs::write(tree.join(twin), &original).unwrap();
        let err = fails(&args);
        assert!(
            err.contains("two files for the prefix 5BAA6")
                && err.contains(&*tree.join(twin).to_string_lossy())
                && err.contains(&*tree.join("5BAA6.txt").to_string_lossy()),
            "{twin}: {err}"
        );
        std::fs::remove_file(tree.join(twin)).unwrap();
    }
    // A file whose name is not a prefix, at any depth, and a brotli body.
    for stray in [
        "notes.txt",
        "5BAA.txt",
        "5BAA6.txt.gz",
        "sub/README",
        "5baa6.br",
    ] {
        let path = tree.join(stray);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"").unwrap();
        let err = fails(&args);
        assert!(err.contains(&*path.to_string_lossy()), "{stray}: {err}");
        if stray.ends_with(".br") {
            assert!(err.contains("brotli"), "{err}");
        } else {
            assert!(err.contains("its name is not a 5-hex prefix"), "{err}");
        }
        std::fs::remove_file(&path).unwrap();
    }
    // `.meta` files are left alone.
    std::fs::write(tree.join("5baa6.meta"), b"{}").unwrap();
    assert_eq!(run(&args, b"").status.code(), Some(0));
    // A tree without a single range file, and one with no hashes.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = fails(&["build", s(&empty), "-o", out_s]);
    assert!(err.contains("holds no range files"), "{err}");
    for p in 0x5BAA0..=0x5BAAFu32 {
        std::fs::write(empty.join(format!("{p:05X}.txt")), b"").unwrap();
    }
    let empty_args = ["build", s(&empty), "-o", out_s, "--prefixes", "5BAA0-5BAAF"];
    let err = fails(&empty_args);
    assert!(err.contains("no hashes: its 16 files are empty"), "{err}");
    let mut allowed = empty_args.to_vec();
    allowed.push("--allow-empty");
    assert_eq!(run(&allowed, b"").status.code(), Some(0));
    // A folder is a tree of hashes, not plaintext.
    let err = fails(&["build", "--input", "passwords", tree_s, "-o", out_s]);
    assert!(
        err.contains("is a folder, which is read as a downloader tree"),
        "{err}"
    );
}

#[test]
fn the_kind_comes_from_the_tree_and_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let range = PrefixRange::new(0x5BAA0, 0x5BAAF).unwrap();
    let sha1 = corpus(HashKind::Sha1, range, 1);
    write_hibp(&data, &sha1, HashKind::Sha1, range);
    let ntlm = corpus(HashKind::Ntlm, range, 2);
    write_hibp(&data, &ntlm, HashKind::Ntlm, range);
    let out = dir.path().join("x.ldx");
    let (data_s, out_s) = (s(&data), s(&out));
    let part = ["--prefixes", "5BAA0-5BAAF"];
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["build", "-o", out_s]
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.extend(part.iter().chain(extra).map(|x| x.to_string()));
        v
    };
    let fails_with = |extra: &[&str]| {
        let v = with(extra);
        fails(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let err = fails_with(&[data_s]);
    assert!(
        err.contains("data: holds a tree of each hash kind (sha1/ and ntlm/); choose one with --kind sha1 or --kind ntlm"),
        "{err}"
    );
    let ntlm_dir = data.join("ntlm");
    let err = fails_with(&[s(&ntlm_dir), "--kind", "sha1"]);
    assert!(
        err.contains(
            "ntlm: a tree of NTLM hashes (its folder is named ntlm), but --kind sha1 was given"
        ),
        "{err}"
    );
    // A sha1 folder of NTLM bodies: the first line says so.
    let wrong = dir.path().join("sha1");
    std::fs::rename(&ntlm_dir, &wrong).unwrap();
    let err = fails_with(&[s(&wrong)]);
    assert!(
        err.contains("expected 35 hex digits of a SHA-1 suffix before the `:`, found 27 characters (the length of an NTLM suffix)"),
        "{err}"
    );
    // A data folder without the kind asked.
    let err = fails_with(&[data_s, "--kind", "ntlm"]);
    assert!(
        err.contains("data: holds no NTLM tree (ntlm/ or range-ntlm/)"),
        "{err}"
    );
    // A tree merged into a build of the other kind, through `merge`.
    let ntlm_dump = write_dump(dir.path(), &ntlm, HashKind::Ntlm);
    let mut args = vec!["merge", s(&ntlm_dump), data_s, "-o", out_s];
    args.extend(part);
    let err = fails(&args);
    assert!(
        err.contains("data: a tree of SHA-1 hashes cannot be merged into a build of NTLM hashes"),
        "{err}"
    );
}

#[test]
fn a_tree_merges_with_dumps_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, model) = small_tree(dir.path());
    let range = PrefixRange::new(0x5BAA0, 0x5BAAF).unwrap();
    // The same hashes again in a dump: every count doubles.
    let dump = write_dump(dir.path(), &model, HashKind::Sha1);
    let out = dir.path().join("merged.ldx");
    let run_ok = |args: &[&str]| {
        let o = run(args, b"");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
    };
    run_ok(&[
        "merge",
        s(&tree),
        s(&dump),
        "-o",
        s(&out),
        "--prefixes",
        "5BAA0-5BAAF",
        "-q",
    ]);
    let mut doubled = Model::new();
    for (h, c) in &model {
        model_add(&mut doubled, *h, c * 2);
    }
    let index = Index::open(&out).unwrap();
    for (h, c) in &doubled {
        assert_eq!(index.check(h).unwrap(), Some(*c));
    }
    assert_eq!(index.sources().len(), 2);
    // A tree after an index of it: the tree's source is already counted.
    let first = dir.path().join("first.ldx");
    build(&tree, &first, &options(range, None)).unwrap();
    let err = fails(&[
        "merge",
        s(&first),
        s(&tree),
        "-o",
        s(&out),
        "--prefixes",
        "5BAA0-5BAAF",
    ]);
    assert!(err.contains("is already counted"), "{err}");
}

#[test]
fn padding_rows_are_counted_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, _) = small_tree(dir.path());
    let pad = "00000000000000000000000000000000000:0\r\nFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0";
    let mut body = std::fs::read(tree.join("5BAA6.txt")).unwrap();
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(pad.as_bytes());
    std::fs::write(tree.join("5BAA6.txt"), &body).unwrap();
    let out = dir.path().join("x.ldx");
    let o = run_build(&tree, &out, &["--prefixes", "5BAA0-5BAAF"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("2 rows with count 0 (padding) in the range files left out"),
        "{}",
        text(&o.stderr)
    );
}
