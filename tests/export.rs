//! `leakdex export`: the static range tree against `range`, its manifest against the files,
//! and the generated nginx configuration served by a real nginx (skipped, with a message,
//! where nginx is not installed; `scripts/test` installs it).

mod common;

use common::*;
use leakdex::export::{export, ExportOptions};
use leakdex::{BuildOptions, HashKind, Index, IndexSet, NoProgress, StoreForm};
use sha2::{Digest, Sha256};
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// The prefixes exported by these tests: enough to hold the known passwords' ranges, few
/// enough to be quick (a whole tree is 1,048,576 files per index).
const FIRST: u32 = 0x5BA00;
const LAST: u32 = 0x5BAFF;
const NTLM_FIRST: u32 = 0x88400;
const NTLM_LAST: u32 = 0x884FF;

/// A SHA-1 and an NTLM index with "password" in them and crowded prefixes around it.
fn indexes(dir: &Path) -> Vec<Index> {
    let mut out = Vec::new();
    for (kind, name, lo) in [
        (HashKind::Sha1, "sha1", FIRST),
        (HashKind::Ntlm, "ntlm", NTLM_FIRST),
    ] {
        let mut text = String::new();
        for i in 0..3000u64 {
            let h = hash_from(i, lo + (i % 256) as u32, kind);
            text.push_str(&format!("{}:{}\n", hex(&h, kind), 1 + i * 7919 % 100_000));
        }
        let password = match kind {
            HashKind::Sha1 => leakdex::hash::sha1_password(b"password"),
            HashKind::Ntlm => leakdex::hash::ntlm_password("password"),
        };
        text.push_str(&format!("{}:12345\n", hex(&password, kind)));
        let input = write_file(dir, &format!("{name}.txt"), text.as_bytes());
        let path = dir.join(format!("{name}.ldx"));
        leakdex::build_index(&[input], &path, &BuildOptions::default(), &NoProgress).unwrap();
        out.push(Index::open(&path).unwrap());
    }
    out
}

/// Each index alone, as `export` takes them.
fn sets(indexes: &[Index]) -> Vec<IndexSet> {
    indexes
        .iter()
        .map(|i| IndexSet::open(&[i.path()]).unwrap())
        .collect()
}

fn options(first: u32, last: u32) -> ExportOptions {
    ExportOptions {
        gzip: true,
        prefixes: vec![first..=last],
        ..ExportOptions::default()
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every body equals `range`'s, every gzip sibling unpacks to it, the manifest lists every
/// file with its SHA-256, and nothing else is in the tree.
#[test]
fn the_tree_holds_every_range_body_and_the_manifest_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let indexes = indexes(dir.path());
    let tree = dir.path().join("tree");
    let summary = export(
        &sets(&indexes),
        &tree,
        &options(FIRST, LAST),
        &NoProgress,
        None,
    )
    .unwrap();
    assert_eq!(summary.folders, ["range", "range-ntlm"]);
    assert_eq!(summary.files, 2 * 2 * 256);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_object().unwrap();
    assert_eq!(files.len() as u64, summary.files);
    assert_eq!(manifest["file_count"], summary.files);
    assert_eq!(manifest["indexes"][0]["kind"], "sha1");
    assert_eq!(manifest["indexes"][1]["folder"], "range-ntlm");
    assert_eq!(manifest["indexes"][0]["hashes"], indexes[0].hash_count());
    for (index, folder) in indexes.iter().zip(["range", "range-ntlm"]) {
        for prefix in FIRST..=LAST {
            let name = format!("{folder}/{prefix:05X}");
            let body = std::fs::read(tree.join(&name)).unwrap();
            assert!(body == index.range_body(prefix).unwrap(), "{name}");
            let packed = std::fs::read(tree.join(format!("{name}.gz"))).unwrap();
            assert!(gunzip(&packed) == body, "{name}.gz");
            for (file, bytes) in [(name.clone(), &body), (format!("{name}.gz"), &packed)] {
                let digest: String = Sha256::digest(bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(files[&file], digest.as_str(), "{file}");
            }
        }
    }
    let mut top: Vec<String> = std::fs::read_dir(&tree)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["manifest.json", "nginx.conf", "range", "range-ntlm"]);
    assert!(files_named_with(dir.path(), ".leakdex-build-").is_empty());
    // The command line writes the same bodies.
    let again = dir.path().join("again");
    let o = run(
        &[
            "export",
            "-i",
            s(indexes[0].path()),
            s(&again),
            "--prefixes",
            "5baa0-5BAAF,8846f,5BAA3",
        ],
        b"",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("17 files"), "{}", text(&o.stderr));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(again.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["prefixes"], "5BAA0-5BAAF,8846F");
    assert!(again.join("range/8846F").exists() && !again.join("range/8846E").exists());
    assert!(
        std::fs::read(again.join("range/5BAA6")).unwrap()
            == std::fs::read(tree.join("range/5BAA6")).unwrap()
    );
}

/// A folder in the way, a compact index, two indexes for one folder, a backwards prefix
/// range: each a clear error, and nothing left behind.
#[test]
fn export_refuses_what_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let indexes = indexes(dir.path());
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("keep.txt"), b"mine").unwrap();
    let err = export(
        &sets(&indexes[..1]),
        &tree,
        &options(FIRST, FIRST),
        &NoProgress,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(std::fs::read(tree.join("keep.txt")).unwrap(), b"mine");

    let compact_path = dir.path().join("compact.ldx");
    let o = BuildOptions {
        store: StoreForm::Compact,
        ..BuildOptions::default()
    };
    leakdex::build_index(
        &[dir.path().join("sha1.txt")],
        &compact_path,
        &o,
        &NoProgress,
    )
    .unwrap();
    let compact = Index::open(&compact_path).unwrap();
    let other = dir.path().join("other");
    let err = export(
        &sets(&[compact]),
        &other,
        &options(FIRST, FIRST),
        &NoProgress,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--store full"), "{err}");
    let twice = vec![
        Index::open(indexes[0].path()).unwrap(),
        Index::open(indexes[0].path()).unwrap(),
    ];
    let err = export(
        &sets(&twice),
        &other,
        &options(FIRST, FIRST),
        &NoProgress,
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("a second index for range/"),
        "{err}"
    );
    let err = export(
        &sets(&indexes),
        &other,
        &options(LAST, FIRST),
        &NoProgress,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a range"), "{err}");
    assert!(!other.exists());
    assert!(files_named_with(dir.path(), ".leakdex-build-").is_empty());
    let o = run(
        &[
            "export",
            "-i",
            s(indexes[0].path()),
            s(&other),
            "--prefixes",
            "5BAA6-5BAA0",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("comes after the last"),
        "{}",
        text(&o.stderr)
    );
    assert!(!other.exists());
}

// --- nginx ----------------------------------------------------------------------------------

/// One request on its own connection; the reply is read to its Content-Length.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    read_reply(&mut BufReader::new(stream), method == "HEAD")
}

/// The range checks made of `serve`, against nginx serving an export: bodies byte for byte
/// in either case of prefix, `mode=ntlm`, gzip by Accept-Encoding, ETag and 304, CORS and
/// Cache-Control, the API's 400 texts, 404 elsewhere, preflight and other methods.
#[test]
fn nginx_serves_the_export_as_the_range_api() {
    let Some(nginx) = nginx_binary() else {
        eprintln!(
            "SKIPPED nginx_serves_the_export_as_the_range_api: nginx is not installed \
             (apt-get install nginx-light; scripts/test installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let indexes = indexes(dir.path());
    let tree = dir.path().join("tree");
    export(
        &sets(&indexes),
        &tree,
        &options(FIRST, LAST),
        &NoProgress,
        None,
    )
    .unwrap();
    // The NTLM index's prefixes too (a second export, merged into the tree by hand, since one
    // export takes one prefix range).
    let ntlm_tree = dir.path().join("ntlm-tree");
    export(
        &sets(&indexes[1..]),
        &ntlm_tree,
        &options(NTLM_FIRST, NTLM_LAST),
        &NoProgress,
        None,
    )
    .unwrap();
    for e in std::fs::read_dir(ntlm_tree.join("range-ntlm")).unwrap() {
        let e = e.unwrap();
        std::fs::rename(e.path(), tree.join("range-ntlm").join(e.file_name())).unwrap();
    }
    let work = dir.path().join("nginx");
    std::fs::create_dir(&work).unwrap();
    let server = start_nginx(&nginx, &tree, &work);
    let port = server.port;

    for (index, prefixes, query) in [
        (&indexes[0], [0x5BAA6u32, FIRST, LAST], ""),
        (&indexes[1], [0x8846F, NTLM_FIRST, NTLM_LAST], "?mode=ntlm"),
    ] {
        for prefix in prefixes {
            let expected = index.range_body(prefix).unwrap();
            for shown in [format!("{prefix:05X}"), format!("{prefix:05x}")] {
                let r = request(port, "GET", &format!("/range/{shown}{query}"), &[]);
                assert_eq!(r.status, 200, "{shown}{query}");
                assert!(r.body == expected, "{shown}{query}: body differs");
                assert_eq!(r.header("content-type"), Some("text/plain"));
                assert_eq!(r.header("access-control-allow-origin"), Some("*"));
                assert_eq!(r.header("cache-control"), Some("public, max-age=2678400"));
            }
            let path = format!("/range/{prefix:05X}{query}");
            let r = request(port, "GET", &path, &[("Accept-Encoding", "gzip, br")]);
            assert_eq!(r.header("content-encoding"), Some("gzip"), "{path}");
            assert!(gunzip(&r.body) == expected);
            let etag = r.header("etag").unwrap().to_string();
            let r = request(
                port,
                "GET",
                &path,
                &[("If-None-Match", &etag), ("Accept-Encoding", "gzip")],
            );
            assert_eq!(r.status, 304, "{path}");
            let r = request(port, "HEAD", &path, &[]);
            assert_eq!(r.status, 200);
        }
    }
    // mode=ntlm in another case reaches NTLM too; any other mode means SHA-1.
    let r = request(port, "GET", "/range/8846f?mode=NTLM", &[]);
    assert!(r.body == indexes[1].range_body(0x8846F).unwrap());
    let r = request(port, "GET", "/range/5BAA6?mode=sha1", &[]);
    assert!(r.body == indexes[0].range_body(0x5BAA6).unwrap());
    // Padding cannot be static: the body comes unpadded.
    let r = request(port, "GET", "/range/5BAA6", &[("Add-Padding", "true")]);
    assert!(r.body == indexes[0].range_body(0x5BAA6).unwrap());

    for (path, status, body) in [
        (
            "/range/5BAA",
            400,
            "The hash prefix was not in a valid format",
        ),
        (
            "/range/5BAA6F",
            400,
            "The hash prefix was not in a valid format",
        ),
        (
            "/range/5BAAG",
            400,
            "The hash prefix was not valid hexadecimal",
        ),
        ("/range/", 400, "The hash prefix was not in a valid format"),
        ("/", 404, "Invalid API query"),
        ("/manifest.json", 404, "Invalid API query"),
        ("/nginx.conf", 404, "Invalid API query"),
        (
            "/range/5BAA6?mode=login",
            404,
            "This mirror holds no range for this prefix and mode.",
        ),
        (
            "/range/00000",
            404,
            "This mirror holds no range for this prefix and mode.",
        ),
    ] {
        let r = request(port, "GET", path, &[]);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(text(&r.body), body, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    let r = request(port, "OPTIONS", "/range/5BAA6", &[]);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-methods"), Some("GET"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Add-Padding")
    );
    let r = request(port, "POST", "/range/5BAA6", &[]);
    assert_eq!(r.status, 405);
    assert!(text(&r.body).contains("not allowed"));
}
