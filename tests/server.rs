//! `leakdex serve` end to end over real HTTP on loopback.

mod common;

use common::*;
use leakdex::hash::{ntlm_password, sha1_password};
use leakdex::{HashKind, Index};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn get(s: &Served, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(&mut connect(s), "GET", path, headers)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A SHA-1 and an NTLM index with known passwords and crowded prefixes.
fn indexes(dir: &Path) -> (PathBuf, PathBuf, Model, Model) {
    let mut out = Vec::new();
    for kind in [HashKind::Sha1, HashKind::Ntlm] {
        let mut model = Model::new();
        let mut text = String::new();
        let known = match kind {
            HashKind::Sha1 => sha1_password(b"password"),
            HashKind::Ntlm => ntlm_password("password"),
        };
        model_add(&mut model, known, 1234);
        text.push_str(&format!("{}:1234\r\n", hex(&known, kind)));
        // 1,001 rows under 5BAA6 (with "password"), 1,000 under 8846F and ABCDE, 50 under 12345.
        for i in 0..3050u64 {
            let prefix = if i >= 3000 {
                0x12345
            } else {
                [0x5BAA6, 0x8846F, 0xABCDE][(i % 3) as usize]
            };
            let h = hash_from(i, prefix, kind);
            let count = if i % 10 == 0 { (1 << 33) + i } else { i % 20 };
            model_add(&mut model, h, count);
            text.push_str(&format!("{}:{count}\r\n", hex(&h, kind)));
        }
        let input = write_file(dir, &format!("{kind}.txt"), text.as_bytes());
        let index = dir.join(format!("{kind}.ldx"));
        leakdex::build_index(&[input], &index, &Default::default(), &leakdex::NoProgress).unwrap();
        out.push((index, model));
    }
    let (ntlm, ntlm_model) = out.pop().unwrap();
    let (sha1, sha1_model) = out.pop().unwrap();
    (sha1, ntlm, sha1_model, ntlm_model)
}

#[test]
fn bodies_for_both_modes_are_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (sha1, ntlm, sha1_model, ntlm_model) = indexes(dir.path());
    let s = serve(&[&sha1, &ntlm], &[]);
    for (prefix, value) in [
        ("5BAA6", 0x5BAA6),
        ("5baa6", 0x5BAA6),
        ("abcde", 0xABCDE),
        ("00000", 0),
    ] {
        for (query, kind, model) in [
            ("", HashKind::Sha1, &sha1_model),
            ("?mode=sha1", HashKind::Sha1, &sha1_model),
            ("?mode=whatever", HashKind::Sha1, &sha1_model),
            ("?mode=ntlm", HashKind::Ntlm, &ntlm_model),
        ] {
            let r = get(&s, &format!("/range/{prefix}{query}"), &[]);
            assert_eq!(r.status, 200);
            assert!(r.body == model_range(model, kind, value), "{prefix}{query}");
        }
    }
    let r = get(&s, "/range/8846F?mode=ntlm", &[]);
    let body = String::from_utf8(r.body).unwrap();
    assert!(body.contains("7EAEE8FB117AD06BDD830B7586C:1234"));
    assert!(!body.ends_with("\r\n") && !body.contains("\n\n"));
}

#[test]
fn errors_have_the_apis_texts() {
    let dir = tempfile::tempdir().unwrap();
    let (sha1, _, _, _) = indexes(dir.path());
    let s = serve(&[&sha1], &[]);
    for (path, status, body) in [
        (
            "/range/5BAA",
            400,
            "The hash prefix was not in a valid format",
        ),
        (
            "/range/5BAA61",
            400,
            "The hash prefix was not in a valid format",
        ),
        ("/range/", 400, "The hash prefix was not in a valid format"),
        (
            "/range/5BAAG",
            400,
            "The hash prefix was not valid hexadecimal",
        ),
        (
            "/range/%35BAA6",
            400,
            "The hash prefix was not in a valid format",
        ),
        ("/nothing", 404, "Invalid API query"),
        ("/", 404, "Invalid API query"),
    ] {
        let r = get(&s, path, &[]);
        assert_eq!(
            (r.status, String::from_utf8(r.body).unwrap().as_str()),
            (status, body),
            "{path}"
        );
    }
    let r = get(&s, "/range/5BAA6?mode=ntlm", &[]);
    assert_eq!(r.status, 404);
    assert!(String::from_utf8(r.body).unwrap().contains("no NTLM index"));
    let r = send(&mut connect(&s), "DELETE", "/range/5BAA6", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert!(String::from_utf8(r.body).unwrap().contains("DELETE"));
}

#[test]
fn headers_head_gzip_and_conditional_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (sha1, _, model, _) = indexes(dir.path());
    let s = serve(&[&sha1], &["--max-age", "60"]);
    let plain = get(&s, "/range/5BAA6", &[]);
    assert_eq!(plain.header("content-type"), Some("text/plain"));
    assert_eq!(plain.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(plain.header("access-control-allow-origin"), Some("*"));
    assert!(plain.header("last-modified").unwrap().ends_with("GMT"));
    assert!(plain.header("vary").unwrap().contains("Add-Padding"));
    let etag = plain.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));

    let head = send(&mut connect(&s), "HEAD", "/range/5BAA6", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        plain.header("content-length")
    );
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let gz = get(
        &s,
        "/range/5BAA6",
        &[("Accept-Encoding", "gzip, deflate, br")],
    );
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(gunzip(&gz.body) == model_range(&model, HashKind::Sha1, 0x5BAA6));
    let gz_etag = gz.header("etag").unwrap().to_string();
    assert_ne!(gz_etag, etag, "a strong ETag names one representation");
    let refused = get(
        &s,
        "/range/5BAA6",
        &[("Accept-Encoding", "gzip;q=0, identity")],
    );
    assert_eq!(refused.header("content-encoding"), None);

    let cached = get(&s, "/range/5BAA6", &[("If-None-Match", &etag)]);
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("etag"), Some(etag.as_str()));
    let cached_gz = get(
        &s,
        "/range/5BAA6",
        &[("If-None-Match", &gz_etag), ("Accept-Encoding", "gzip")],
    );
    assert_eq!(cached_gz.status, 304);
    let stale = get(
        &s,
        "/range/5BAA6",
        &[("If-None-Match", "\"something-else\"")],
    );
    assert_eq!(stale.status, 200);
    let other_prefix = get(&s, "/range/ABCDE", &[("If-None-Match", &etag)]);
    assert_eq!(other_prefix.status, 200);
    let since = plain.header("last-modified").unwrap().to_string();
    assert_eq!(
        get(&s, "/range/5BAA6", &[("If-Modified-Since", &since)]).status,
        304
    );

    let preflight = send(&mut connect(&s), "OPTIONS", "/range/5BAA6", &[]);
    assert!(preflight.status == 204 || preflight.status == 200);
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("Add-Padding")
    );
}

#[test]
fn padding_adds_count_zero_rows_and_is_never_served_from_the_plain_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (sha1, _, model, _) = indexes(dir.path());
    let s = serve(&[&sha1], &[]);
    let plain = get(&s, "/range/12345", &[]);
    let etag = plain.header("etag").unwrap().to_string();
    let real = String::from_utf8(model_range(&model, HashKind::Sha1, 0x12345)).unwrap();
    let real_rows: Vec<&str> = real.split("\r\n").collect();
    assert_eq!(real_rows.len(), 50);
    for value in ["true", "TRUE", "True"] {
        let r = get(
            &s,
            "/range/12345",
            &[("Add-Padding", value), ("If-None-Match", &etag)],
        );
        assert_eq!(
            r.status, 200,
            "a padded request never gets a 304 from a plain ETag"
        );
        assert_eq!(r.header("etag"), None);
        let body = String::from_utf8(r.body).unwrap();
        let rows: Vec<&str> = body.split("\r\n").collect();
        assert!((800..=1000).contains(&rows.len()), "{}", rows.len());
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        let real_in_padded: Vec<&str> = rows
            .iter()
            .copied()
            .filter(|r| real_rows.contains(r))
            .collect();
        assert_eq!(real_in_padded, real_rows);
        assert!(rows
            .iter()
            .all(|r| real_rows.contains(r) || r.ends_with(":0")));
    }
    // An empty range is padded with count-0 rows only.
    let empty = get(
        &s,
        "/range/00000",
        &[("Add-Padding", "true"), ("Accept-Encoding", "gzip")],
    );
    let rows = String::from_utf8(gunzip(&empty.body)).unwrap();
    assert!((800..=1000).contains(&rows.split("\r\n").count()));
    assert!(rows
        .split("\r\n")
        .all(|r| r.ends_with(":0") && r.len() == 37));
    // More than 1,000 real rows: nothing is added.
    let big = get(&s, "/range/5BAA6", &[("Add-Padding", "true")]);
    assert!(big.body == model_range(&model, HashKind::Sha1, 0x5BAA6));
    let unpadded = get(&s, "/range/12345", &[("Add-Padding", "false")]);
    assert!(unpadded.body == real.as_bytes());
}

#[test]
fn a_bad_request_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (sha1, _, model, _) = indexes(dir.path());
    let s = serve(&[&sha1], &[]);
    // On one kept-alive connection: a bad prefix, then a good one.
    let mut conn = connect(&s);
    assert_eq!(send(&mut conn, "GET", "/range/XYZ", &[]).status, 400);
    let good = send(&mut conn, "GET", "/range/abcde", &[]);
    assert!(good.body == model_range(&model, HashKind::Sha1, 0xABCDE));
    // Garbage, an oversized head and a half-sent request each on their own connection.
    for junk in [
        b"\x00\x01\x02 garbage\r\n\r\n".to_vec(),
        format!(
            "GET /range/5BAA6 HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(40_000)
        )
        .into_bytes(),
        b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\n".to_vec(),
    ] {
        let mut stream = TcpStream::connect(&s.addr).unwrap();
        let _ = stream.write_all(&junk);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.read_to_end(&mut sink);
        if !sink.is_empty() {
            assert!(
                sink.starts_with(b"HTTP/1.1 4"),
                "{}",
                String::from_utf8_lossy(&sink[..40.min(sink.len())])
            );
        }
    }
    let after = get(&s, "/range/abcde", &[]);
    assert_eq!(after.status, 200);
    assert_eq!(get(&s, "/health", &[]).status, 200);
    let metrics = String::from_utf8(get(&s, "/metrics", &[]).body).unwrap();
    assert!(metrics.contains("leakdex_http_requests_total{route=\"range\",status=\"200\"}"));
    assert!(metrics.contains("leakdex_http_requests_total{route=\"range\",status=\"400\"} 1"));
    assert!(metrics.contains("leakdex_http_request_duration_seconds_bucket{le=\"+Inf\"}"));
    assert!(metrics.contains("leakdex_http_response_body_bytes_total"));
}

#[cfg(unix)]
#[test]
fn sighup_picks_up_a_replaced_index_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (sha1, ntlm, _, _) = indexes(dir.path());
    let live = dir.path().join("live.ldx");
    std::fs::copy(&sha1, &live).unwrap();
    let mut s = serve(&[&live, &ntlm], &[]);
    let before = get(&s, "/range/5BAA6", &[]);
    assert!(
        String::from_utf8_lossy(&before.body).contains("1E4C9B93F3F0682250B6CF8331B7EE68FD8:1234")
    );

    let input = write_file(
        dir.path(),
        "new.txt",
        b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:99\n",
    );
    let staged = dir.path().join("staged.ldx");
    leakdex::build_index(&[input], &staged, &Default::default(), &leakdex::NoProgress).unwrap();
    // A request in flight on a kept-alive connection across the swap.
    let mut conn = connect(&s);
    assert_eq!(send(&mut conn, "GET", "/range/5BAA6", &[]).status, 200);
    std::fs::rename(&staged, &live).unwrap();
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGHUP) };
    let mut body = Vec::new();
    for _ in 0..100 {
        body = get(&s, "/range/5BAA6", &[]).body;
        if body == b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:99" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "1E4C9B93F3F0682250B6CF8331B7EE68FD8:99"
    );
    assert_eq!(send(&mut conn, "GET", "/range/5BAA6", &[]).status, 200);
    // The NTLM index is still served.
    assert_eq!(get(&s, "/range/8846F?mode=ntlm", &[]).status, 200);
    let etag_after = get(&s, "/range/5BAA6", &[])
        .header("etag")
        .map(str::to_string);
    assert_ne!(etag_after.as_deref(), before.header("etag"));

    // SAFETY: as above.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn two_indexes_of_one_kind_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (sha1, _, _, _) = indexes(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_leakdex"))
        .args(["serve", "--listen", "127.0.0.1:0", "-i"])
        .arg(&sha1)
        .arg("-i")
        .arg(&sha1)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a second SHA-1 index"));
    let _ = Index::open(&sha1).unwrap();
}

/// Indexes of logins and of credential pairs answer `mode=login` and `mode=pair` byte for byte
/// as `range` prints them, with the same headers, padding and ETags (named by mode); a mode
/// without its index is a 404 that says so; two indexes of one mode are refused.
#[test]
fn login_and_pair_modes_answer_from_their_indexes() {
    use leakdex::{build_index, BuildOptions, InputFormat, KeyType, NoProgress};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (sha1, _, sha1_model, _) = indexes(d);
    let combo = write_file(
        d,
        "combo.txt",
        b"Alice@Example.com:hunter2\nalice@example.com :hunter2\nbob:letmein\n",
    );
    let mut keyed = Vec::new();
    for key in [KeyType::Login, KeyType::Pair] {
        let out = d.join(format!("{key}.ldx"));
        let options = BuildOptions {
            input: InputFormat::Combo,
            key: Some(key),
            ..BuildOptions::default()
        };
        build_index(std::slice::from_ref(&combo), &out, &options, &NoProgress).unwrap();
        keyed.push(out);
    }
    let (login, pair) = (&keyed[0], &keyed[1]);
    let s = serve(&[&sha1, login, pair], &[]);
    let mut scratch = Vec::new();
    let alice = leakdex::key::login_hash(b"alice@example.com", &mut scratch);
    let alice_pair = leakdex::key::pair_hash(b"alice@example.com", b"hunter2", &mut scratch);
    for (mode, index, hash) in [("login", login, alice), ("pair", pair, alice_pair)] {
        let prefix = hex(&hash, HashKind::Sha1)[..5].to_string();
        let r = get(&s, &format!("/range/{prefix}?mode={mode}"), &[]);
        assert_eq!(r.status, 200, "{mode}");
        let expected = Index::open(index)
            .unwrap()
            .range_body(leakdex::hash::prefix_of(&hash))
            .unwrap();
        assert_eq!(r.body, expected, "{mode}");
        let row = format!("{}:2", &hex(&hash, HashKind::Sha1)[5..]);
        assert!(String::from_utf8_lossy(&r.body).contains(&row), "{mode}");
        assert!(
            r.header("etag").unwrap().contains(&format!("-{mode}-")),
            "{mode}"
        );
        // Upper case mode, padding and gzip, as for passwords.
        let r = get(
            &s,
            &format!("/range/{prefix}?mode={}", mode.to_uppercase()),
            &[("Add-Padding", "true"), ("Accept-Encoding", "gzip")],
        );
        assert_eq!(r.status, 200);
        let rows = String::from_utf8(gunzip(&r.body)).unwrap();
        assert!(rows.split("\r\n").count() >= 800, "{mode}");
        assert!(rows.contains(&row), "{mode}");
    }
    // Passwords are answered as before.
    let r = get(&s, "/range/5BAA6", &[]);
    assert_eq!(r.body, model_range(&sha1_model, HashKind::Sha1, 0x5BAA6));
    let r = get(&s, "/range/5BAA6?mode=ntlm", &[]);
    assert_eq!(r.status, 404);
    assert!(String::from_utf8(r.body).unwrap().contains("no NTLM index"));
    drop(s);
    let s = serve(&[login], &[]);
    let r = get(&s, "/range/5BAA6?mode=pair", &[]);
    assert_eq!(r.status, 404);
    assert!(String::from_utf8(r.body.clone())
        .unwrap()
        .contains("mode=pair cannot be answered"));
    let r = get(&s, "/range/5BAA6", &[]);
    assert_eq!(r.status, 404);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("ask with mode=login"));
    drop(s);
    let out = Command::new(env!("CARGO_BIN_EXE_leakdex"))
        .args(["serve", "--listen", "127.0.0.1:0", "-i"])
        .arg(login)
        .arg("-i")
        .arg(login)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a second login index"));
}

/// An index file truncated or rewritten in place under a running server: read into memory
/// (the default for small files), the server goes on answering from what it read, and a
/// SIGHUP that finds the damaged file keeps the old index in service. Mapped (`--copy-limit
/// 0`), the server dies by SIGBUS at the next read of a lost page, as `serve --help` says;
/// it never answers from the damaged file.
#[cfg(unix)]
#[test]
fn an_index_truncated_or_rewritten_in_place_under_serve() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let (sha1, _, _, _) = indexes(dir.path());
    let want = get(&serve(&[&sha1], &[]), "/range/5BAA6", &[]).body;
    assert!(String::from_utf8_lossy(&want).contains("1E4C9B93F3F0682250B6CF8331B7EE68FD8:1234"));

    let live = dir.path().join("live.ldx");
    std::fs::copy(&sha1, &live).unwrap();
    let s = serve(&[&live], &[]);
    assert!(get(&s, "/range/5BAA6", &[]).body == want);
    // Truncated in place, then rewritten in place with other bytes.
    std::fs::File::options()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(4096)
        .unwrap();
    assert!(get(&s, "/range/5BAA6", &[]).body == want);
    std::fs::write(&live, vec![0x55u8; 9 << 20]).unwrap();
    assert!(get(&s, "/range/5BAA6", &[]).body == want);
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGHUP) };
    let mut failed = false;
    for _ in 0..100 {
        let metrics = String::from_utf8(get(&s, "/metrics", &[]).body).unwrap();
        if metrics.contains("leakdex_index_reloads_total{outcome=\"failed\"} 1") {
            failed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(failed, "the reload of a damaged file must fail");
    assert!(get(&s, "/range/5BAA6", &[]).body == want);
    drop(s);

    // Mapped: the same truncation ends the process with SIGBUS, not a wrong answer.
    std::fs::copy(&sha1, &live).unwrap();
    let mut s = serve(&[&live], &["--copy-limit", "0"]);
    assert!(get(&s, "/range/5BAA6", &[]).body == want);
    std::fs::File::options()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let mut conn = connect(&s);
    conn.get_mut()
        .write_all(b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = conn.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let status = s.child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
}
