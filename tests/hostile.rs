//! Hostile and heavy clients against a real `leakdex serve`: heads trickled a byte at a time,
//! idle and non-reading connections, a connection flood over `--max-connections`, malformed
//! and smuggling-shaped requests, pipelining, and what the server's logs and metrics may say.
//!
//! Every case ends in a clean 4xx or a closed connection, and the server serves on. No test
//! asserts a duration: timeouts are short (2 s) and the waits for them long (a minute), so a
//! loaded machine slows the tests down without failing them.

mod common;

use common::*;
use leakdex::hash::sha1_password;
use leakdex::HashKind;
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for anything the server is expected to do, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A SHA-1 index holding "password" and crowded prefixes: 1,001 rows under 5BAA6, 1,000
/// under ABCDE, 50 under 12345.
fn index(dir: &Path) -> (PathBuf, Model) {
    let mut model = Model::new();
    let mut text = String::new();
    let known = sha1_password(b"password");
    model_add(&mut model, known, 1234);
    text.push_str(&format!("{}:1234\n", hex(&known, HashKind::Sha1)));
    for i in 0..2050u64 {
        let prefix = if i >= 2000 {
            0x12345
        } else {
            [0x5BAA6, 0xABCDE][(i % 2) as usize]
        };
        let h = hash_from(i, prefix, HashKind::Sha1);
        model_add(&mut model, h, i + 1);
        text.push_str(&format!("{}:{}\n", hex(&h, HashKind::Sha1), i + 1));
    }
    let input = write_file(dir, "dump.txt", text.as_bytes());
    let index = dir.join("sha1.ldx");
    leakdex::build_index(&[input], &index, &Default::default(), &leakdex::NoProgress).unwrap();
    (index, model)
}

fn get(s: &Served, path: &str) -> Reply {
    send(&mut connect(s), "GET", path, &[])
}

fn metrics(s: &Served) -> String {
    String::from_utf8(get(s, "/metrics").body).unwrap()
}

/// The value of a metric line that starts with `name` (labels included), 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `ok` holds for the server's metrics, failing after [`PATIENCE`].
fn wait_for_metrics(s: &Served, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let m = metrics(s);
        if ok(&m) {
            return m;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "waited in vain for {what}:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `leakdex serve` with its standard output and error written to files in `dir`, and the
/// default action for SIGHUP and SIGTERM.
fn serve_logged(dir: &Path, index: &Path, extra: &[&str]) -> (Served, PathBuf, PathBuf) {
    let out = dir.join("serve.out");
    let err = dir.join("serve.err");
    let mut cmd = leakdex();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "-i"])
        .arg(index)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    #[cfg(unix)]
    default_signals(&mut cmd);
    let child = cmd.spawn().unwrap();
    let start = Instant::now();
    let addr = loop {
        let printed = std::fs::read_to_string(&out).unwrap();
        if let Some(line) = printed.lines().next().filter(|_| printed.contains('\n')) {
            let addr = line
                .strip_prefix("listening on http://")
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
            break addr.to_string();
        }
        assert!(start.elapsed() < PATIENCE, "serve did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    };
    (Served { child, addr }, out, err)
}

/// Sends `bytes` on a new connection, closes the sending side, and returns everything the
/// server sent before it closed.
fn exchange(s: &Served, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(&s.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    // The server may close before it has read everything: a failed write is an answer too.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no close from the server: {e}"),
    }
    got
}

/// The status codes of the responses in `bytes` (a response head starts each).
fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text[i + 9..].get(..3)?.parse().ok())
        .collect()
}

/// Asserts that `bytes` is a single clean 4xx response or nothing (the server closed), that
/// the server is still running and still answers.
fn assert_refused(s: &mut Served, what: &str, bytes: &[u8], allowed: &[u16]) {
    let got = exchange(s, bytes);
    let codes = statuses(&got);
    assert!(
        codes.len() <= 1 && codes.iter().all(|c| allowed.contains(c)),
        "{what}: expected one of {allowed:?} or a close, got {:?}",
        String::from_utf8_lossy(&got[..got.len().min(300)])
    );
    if !got.is_empty() {
        assert!(got.starts_with(b"HTTP/1.1 4"), "{what}");
    }
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "{what}: the server died"
    );
    assert_eq!(
        get(s, "/health").status,
        200,
        "{what}: not serving after it"
    );
}

/// Whether the server has closed `stream`, without waiting; bytes it sent are appended to
/// `got`.
fn closed(stream: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let result = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).unwrap();
    result
}

/// A head sent one byte at a time, every 100 ms, would take 20 s; the deadline for the whole
/// head is 2 s, so the server closes the connection long before the head is complete, and
/// never answers it. A timer restarted by each byte would let the head through.
#[test]
fn a_head_trickled_a_byte_at_a_time_is_closed_at_the_head_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = index(dir.path());
    let s = serve(&[&index], &["--header-timeout", "2"]);
    let head = format!(
        "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nUser-Agent: {}\r\n\r\n",
        "a".repeat(150)
    );
    let mut stream = TcpStream::connect(&s.addr).unwrap();
    let mut got = Vec::new();
    let mut sent = 0;
    for &byte in head.as_bytes() {
        if stream.write_all(&[byte]).is_err() || closed(&mut stream, &mut got) {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        sent < head.len(),
        "the whole head went through a byte at a time: the deadline restarts per byte"
    );
    // The close may come while the last byte is on its way: read what is left.
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = stream.read_to_end(&mut got);
    assert!(
        statuses(&got).iter().all(|&c| c != 200),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let m = metrics(&s);
    assert!(
        metric(&m, "leakdex_http_connection_timeouts_total{phase=\"head\"}") >= 1.0,
        "{m}"
    );
    assert_eq!(get(&s, "/range/5BAA6").status, 200);
}

/// A connection that sends nothing, and a kept-alive one that goes quiet after a request, are
/// both closed by the server after --header-timeout.
#[test]
fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = index(dir.path());
    let s = serve(&[&index], &["--header-timeout", "2"]);
    let mut silent = TcpStream::connect(&s.addr).unwrap();
    let mut kept = connect(&s);
    assert_eq!(send(&mut kept, "GET", "/range/12345", &[]).status, 200);
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    let silent_end = silent.read_to_end(&mut got);
    assert!(
        silent_end.is_ok(),
        "a silent connection was not closed: {silent_end:?}"
    );
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "{got:?}"
    );
    kept.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = Vec::new();
    let kept_end = kept.read_to_end(&mut rest);
    assert!(
        kept_end.is_ok() && rest.is_empty(),
        "an idle kept-alive connection was not closed: {kept_end:?}"
    );
    assert_eq!(get(&s, "/range/12345").status, 200);
}

/// A client that sends many requests and reads none of the answers: hyper stops reading
/// requests while a response waits, so without a send timeout the connection would stay open
/// for ever. The server gives up on it after --header-timeout without progress.
#[test]
fn a_client_that_never_reads_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = index(dir.path());
    let s = serve(&[&index], &["--header-timeout", "2"]);
    // 1,000 answers of about 46 kB: far more than the socket buffers hold.
    let requests = "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let mut stream = TcpStream::connect(&s.addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(requests.as_bytes());
    });
    wait_for_metrics(&s, "a send timeout", |m| {
        metric(m, "leakdex_http_connection_timeouts_total{phase=\"send\"}") >= 1.0
    });
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let answered = statuses(&got).len();
    assert!(
        answered < 1000,
        "all {answered} answers arrived: never dropped"
    );
    sender.join().unwrap();
    assert_eq!(get(&s, "/range/5BAA6").status, 200);
}

/// The number of descriptors the process holds.
#[cfg(target_os = "linux")]
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Beyond --max-connections, new connections are not accepted: they wait in the listen queue
/// (their requests unanswered, the server holding no descriptor for them) until a served one
/// closes, and are then served in turn.
#[cfg(target_os = "linux")]
#[test]
fn connections_beyond_the_cap_wait_until_others_close() {
    let dir = tempfile::tempdir().unwrap();
    let (index, model) = index(dir.path());
    let (s, _, err) = serve_logged(
        dir.path(),
        &index,
        &["--max-connections", "4", "--header-timeout", "120"],
    );
    let m = metrics(&s);
    assert_eq!(metric(&m, "leakdex_http_connections_max"), 4.0, "{m}");
    let idle_descriptors = descriptors(s.child.id());

    // Four kept-alive connections, each served once: every slot taken.
    let mut held: Vec<BufReader<TcpStream>> = (0..4).map(|_| connect(&s)).collect();
    for conn in &mut held {
        assert_eq!(send(conn, "GET", "/range/12345", &[]).status, 200);
    }
    // More connections: the kernel completes them, the server does not take them.
    let mut waiting: Vec<BufReader<TcpStream>> = (0..100).map(|_| connect(&s)).collect();
    for conn in &mut waiting {
        conn.get_mut()
            .write_all(b"GET /range/ABCDE HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let mut first = waiting.remove(0);
    first
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        first.get_mut().read(&mut byte).is_err(),
        "a connection beyond the cap was answered"
    );
    let held_descriptors = descriptors(s.child.id());
    assert!(
        held_descriptors <= idle_descriptors + 4 + 2,
        "{held_descriptors} descriptors with 4 served and 100 waiting (idle: {idle_descriptors})"
    );

    // One served connection closes: the first waiting one is served.
    drop(held.pop());
    first.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
    let r = read_reply(&mut first, false);
    assert_eq!(r.status, 200);
    assert!(r.body == model_range(&model, HashKind::Sha1, 0xABCDE));

    // The rest close: every waiting connection is served in its turn.
    drop(first);
    held.clear();
    for mut conn in waiting {
        conn.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
        let r = read_reply(&mut conn, false);
        assert_eq!(r.status, 200);
        assert!(r.body == model_range(&model, HashKind::Sha1, 0xABCDE));
    }
    let m = wait_for_metrics(&s, "the connections to close", |m| {
        metric(m, "leakdex_http_connections_open") == 1.0
    });
    assert!(
        metric(&m, "leakdex_http_connections_accepted_total") >= 105.0,
        "{m}"
    );
    assert!(
        metric(&m, "leakdex_http_connection_limit_waits_total") >= 1.0,
        "{m}"
    );
    let log = std::fs::read_to_string(err).unwrap();
    assert!(
        log.contains("4 connections open, as many as --max-connections allows"),
        "{log}"
    );
}

/// Oversized heads, bad bytes, absurd lengths and bodies: each gets a clean 4xx or a close,
/// and the server goes on serving; afterwards no connection is left open.
#[test]
fn malformed_requests_get_a_clean_4xx_or_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let (index, model) = index(dir.path());
    let mut s = serve(&[&index], &[]);
    let long_header = format!(
        "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let many_headers = format!(
        "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..100)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect::<String>()
    );
    let long_target = format!(
        "GET /range/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "A".repeat(20_000)
    );
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("a head over 16 KiB", long_header.into_bytes(), &[431]),
        ("over 64 headers", many_headers.into_bytes(), &[431]),
        ("a request target over 16 KiB", long_target.into_bytes(), &[414, 431]),
        (
            "bad UTF-8 in the request target",
            b"GET /range/\xff\xfe\xfd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "a NUL in the request target",
            b"GET /range/5BA\x00A6 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "a NUL in the method",
            b"G\x00T /range/5BAA6 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "a NUL in a header value",
            b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "bad UTF-8 in a header name",
            b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nX-\xff\xfe: b\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "a version that is not HTTP/1",
            b"GET /range/5BAA6 HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            &[400, 505],
        ),
        (
            "binary garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "a Content-Length beyond 64 bits",
            b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"
                .to_vec(),
            &[400],
        ),
        (
            "a Content-Length of 2^64 - 1",
            b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n"
                .to_vec(),
            &[400, 431],
        ),
        (
            "a Content-Length of a terabyte",
            b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\nabc"
                .to_vec(),
            &[400],
        ),
        (
            "a negative Content-Length",
            b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "two different Content-Lengths",
            b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_vec(),
            &[400],
        ),
        (
            "a body on a POST",
            b"POST /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            &[400],
        ),
        (
            "a chunked body",
            b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            &[400],
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            b"GET /range/5BAA6 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            &[400],
        ),
        (
            "a Transfer-Encoding other than chunked",
            b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            &[400],
        ),
    ];
    for (what, bytes, allowed) in &cases {
        assert_refused(&mut s, what, bytes, allowed);
    }
    // Bytes that are not UTF-8 in a header value are allowed by HTTP (obs-text): answered.
    let mut conn = connect(&s);
    conn.get_mut()
        .write_all(b"GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\xfe\x80\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut conn, false);
    assert_eq!(r.status, 200);
    assert!(r.body == model_range(&model, HashKind::Sha1, 0x5BAA6));
    drop(conn);
    // Every connection is closed in the end: none leaks.
    wait_for_metrics(&s, "every connection to close", |m| {
        metric(m, "leakdex_http_connections_open") == 1.0
    });
    assert!(s.child.try_wait().unwrap().is_none());
}

/// Request smuggling shapes: `Transfer-Encoding` with `Content-Length`, in either order and
/// with the body framed to hide a second request either way. The server answers the first
/// request with 400 (or closes) and never answers a request hidden in a body.
#[test]
fn smuggling_shapes_never_reach_a_second_request() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = index(dir.path());
    let mut s = serve(&[&index], &[]);
    let hidden = "GET /range/ABCDE HTTP/1.1\r\nHost: x\r\n\r\n";
    let shapes = [
        // CL.TE: a proxy that reads Content-Length sends it all as one request.
        format!(
            "POST /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
            5 + hidden.len()
        ),
        // The same with the headers the other way round.
        format!(
            "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
             Content-Length: {}\r\n\r\n0\r\n\r\n{hidden}",
            5 + hidden.len()
        ),
        // TE.CL: a proxy that reads the chunks sends a chunk that holds a request.
        format!(
            "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\n",
            hidden.len()
        ),
        // Obfuscated encodings and repeated headers.
        format!(
            "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
             Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{hidden}"
        ),
        format!(
            "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\
             Content-Length: 5\r\n\r\n0\r\n\r\n{hidden}"
        ),
        format!(
            "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\
             Content-Length: 5\r\n\r\n0\r\n\r\n{hidden}"
        ),
        format!(
            "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
        ),
        format!(
            "GET /range/5BAA6 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
             Content-Length: {}\r\n\r\n0\r\n\r\n{hidden}",
            5 + hidden.len()
        ),
    ];
    for (i, shape) in shapes.iter().enumerate() {
        let got = exchange(&s, shape.as_bytes());
        let codes = statuses(&got);
        assert!(
            codes.len() <= 1 && codes.iter().all(|&c| c == 400),
            "shape {i}: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(s.child.try_wait().unwrap().is_none(), "shape {i}");
    }
    // Nothing hidden was answered: no range request at all reached the handler as valid.
    let m = metrics(&s);
    assert_eq!(
        metric(
            &m,
            "leakdex_http_requests_total{route=\"range\",status=\"200\"}"
        ),
        0.0,
        "{m}"
    );
    assert_refused(&mut s, "a final check", b"\r\n\r\n", &[400]);
}

/// Requests sent in one write, kept-alive: each is answered, in order, byte for byte as alone.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (index, model) = index(dir.path());
    let s = serve(&[&index], &[]);
    let range = |p| model_range(&model, HashKind::Sha1, p);
    let asks: Vec<(&str, &str, u16, Option<Vec<u8>>)> = vec![
        ("GET", "/range/5BAA6", 200, Some(range(0x5BAA6))),
        ("GET", "/range/abcde", 200, Some(range(0xABCDE))),
        ("HEAD", "/range/12345", 200, None),
        ("GET", "/range/XYZ", 400, None),
        ("GET", "/health", 200, Some(b"ok\n".to_vec())),
        ("DELETE", "/range/12345", 405, None),
        ("GET", "/range/12345", 200, Some(range(0x12345))),
        ("GET", "/nothing", 404, Some(b"Invalid API query".to_vec())),
        ("GET", "/range/00000", 200, Some(Vec::new())),
    ];
    let mut batch = String::new();
    for (method, path, _, _) in &asks {
        batch.push_str(&format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    // Nine requests in one write, then 300 more in another (more than a read buffer holds).
    let mut conn = connect(&s);
    conn.get_mut().write_all(batch.as_bytes()).unwrap();
    for (method, path, status, body) in &asks {
        let r = read_reply(&mut conn, *method == "HEAD");
        assert_eq!(r.status, *status, "{method} {path}");
        if let Some(body) = body {
            assert!(&r.body == body, "{method} {path}");
        }
        if *method == "HEAD" {
            assert_eq!(
                r.header("content-length"),
                Some(range(0x12345).len().to_string().as_str())
            );
        }
    }
    let prefixes: Vec<u32> = (0..300)
        .map(|i| [0x5BAA6, 0xABCDE, 0x12345][i % 3])
        .collect();
    let many: String = prefixes
        .iter()
        .map(|p| format!("GET /range/{p:05X} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    conn.get_mut().write_all(many.as_bytes()).unwrap();
    for p in &prefixes {
        let r = read_reply(&mut conn, false);
        assert_eq!(r.status, 200);
        assert!(r.body == range(*p), "{p:05X}");
        assert!(r.header("etag").unwrap().contains(&format!("-{p:05X}")));
    }
    // Nothing more was sent.
    conn.get_mut()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut extra = [0u8; 1];
    assert!(conn.get_mut().read(&mut extra).is_err());
}

/// Distinctive strings in the path, query, headers, body and malformed requests never appear
/// in what the server prints or in /metrics; nor do the prefixes and hashes asked for. The
/// server prints only lines of known shapes, none of which holds anything a client sent.
#[cfg(unix)]
#[test]
fn logs_and_metrics_hold_nothing_a_client_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = index(dir.path());
    let (mut s, out, err) = serve_logged(dir.path(), &index, &["--max-connections", "3"]);
    let secrets = [
        "FACED",
        "DECAF",
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8",
        "QUERYSECRET",
        "PATHSECRET",
        "AGENTSECRET",
        "HEADERSECRET",
        "COOKIESECRET",
        "BODYSECRET",
        "METHODSECRET",
        "LINESECRET",
        "CHUNKSECRET",
        "HUNTER2",
    ];
    let asks: Vec<Vec<u8>> = vec![
        b"GET /range/FACED?mode=ntlm&key=QUERYSECRET HTTP/1.1\r\nHost: x\r\nUser-Agent: AGENTSECRET\r\nX-Api-Key: HEADERSECRET\r\nCookie: s=COOKIESECRET\r\n\r\n".to_vec(),
        b"GET /range/decaf HTTP/1.1\r\nHost: x\r\nAdd-Padding: true\r\nAccept-Encoding: gzip\r\n\r\n".to_vec(),
        b"GET /range/5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /PATHSECRET/%00%ff/../x?QUERYSECRET HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"METHODSECRET /range/FACED HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /range/FACED HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\npassword=BODYSECRET".to_vec(),
        b"GET /range/FACED HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nA\r\nCHUNKSECRET\r\n0\r\n\r\n".to_vec(),
        b"GET /LINESECRET\x00\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /range/FACED HTTP/1.1\r\nHost: x\r\nX-HEADERSECRET: \x00HUNTER2\r\n\r\n".to_vec(),
        format!(
            "GET /range/DECAF HTTP/1.1\r\nHost: x\r\nX-Long: HEADERSECRET{}\r\n\r\n",
            "x".repeat(20_000)
        )
        .into_bytes(),
        b"LINESECRET HUNTER2\r\n\r\n".to_vec(),
    ];
    for ask in &asks {
        exchange(&s, ask);
    }
    // A head cut short, and the connection limit reached (which is logged).
    let mut partial = TcpStream::connect(&s.addr).unwrap();
    partial
        .write_all(b"GET /range/FACED HTTP/1.1\r\nUser-Agent: AGENTSECRET")
        .unwrap();
    drop(partial);
    let held: Vec<BufReader<TcpStream>> = (0..3).map(|_| connect(&s)).collect();
    let mut late = TcpStream::connect(&s.addr).unwrap();
    late.write_all(b"GET /range/DECAF HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(&err)
        .unwrap()
        .contains("as many as --max-connections allows")
    {
        assert!(start.elapsed() < PATIENCE, "the limit was never logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(held);
    late.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = Vec::new();
    late.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));

    let m = metrics(&s);
    // A reload and a stop are logged too.
    // SAFETY: kill(2) on our own child's pid with a valid signal number.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGHUP) };
    wait_for_metrics(&s, "the reload", |m| {
        metric(m, "leakdex_index_reloads_total{outcome=\"ok\"}") == 1.0
    });
    // SAFETY: as above.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    assert!(s.child.wait().unwrap().success());
    let printed = std::fs::read_to_string(&out).unwrap() + &std::fs::read_to_string(&err).unwrap();
    for secret in secrets {
        for (what, text) in [("the logs", &printed), ("/metrics", &m)] {
            assert!(
                !text.to_ascii_uppercase().contains(secret),
                "{what} hold {secret}:\n{text}"
            );
        }
    }
    let known = [
        "listening on http://",
        "leakdex: indexes reopened",
        "leakdex: shutting down",
        "leakdex: 3 connections open, as many as --max-connections allows",
    ];
    for line in printed.lines() {
        assert!(
            known.iter().any(|k| line.starts_with(k)),
            "a line of unknown shape: {line:?}"
        );
    }
    assert!(printed.contains("leakdex: indexes reopened"), "{printed}");
}

/// `serve --help` documents the cap, and a cap of 0 is refused.
#[test]
fn max_connections_is_documented_and_checked() {
    let out = Command::new(env!("CARGO_BIN_EXE_leakdex"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = text(&out.stdout);
    assert!(help.contains("--max-connections <N>"), "{help}");
    assert!(help.contains("listen queue"), "{help}");
    let out = run(&["serve", "-i", "x.ldx", "--max-connections", "0"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--max-connections"));
}
