//! `leakdex check --remote`: the k-anonymity client against the real `leakdex serve`, against
//! the real nginx serving a `leakdex export` tree (skipped, with a message, where nginx is not
//! installed), and against a small recording server in this file that answers from an index,
//! or with handmade bodies in the official API's form, or with failures and garbage.

mod common;

use common::*;
use leakdex::hash::{ntlm_password, prefix_of, sha1_password};
use leakdex::{HashBytes, HashKind, Index};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// --- fixtures -------------------------------------------------------------------------------

/// Prefixes the generated hashes crowd into, besides the known passwords' own.
const PREFIXES: [u32; 6] = [0x5BAA6, 0x5BAA7, 0x00000, 0xFFFFF, 0x12345, 0x8846F];

/// Passwords in the SHA-1 and NTLM dumps, with their counts.
const LEAKED: [(&str, u64); 4] = [
    ("password", 12_345),
    ("hunter2", 3),
    ("pässwörd", 1),
    ("correct horse battery staple", 5_000_000_000),
];

/// Password items to check: leaked ones, absent ones, repeats, spaces and an empty line.
const PASSWORDS: &str = "password\nhunter2\nnot-leaked-4711\npassword\n pässwörd\npässwörd\n\n\
                         correct horse battery staple\nanother absent one\r\nhunter2\n";

/// Logins (the login index) and login:password pairs (the pair index) in the combo dump.
const COMBO: &str =
    "alice@example.com:hunter2\nBob@Example.com:password\nalice@example.com:hunter2\n\
                     carol:pa:ss\n";

/// Login items: as typed, in other cases, with spaces, absent.
const LOGINS: &str =
    "alice@example.com\n Alice@Example.COM \nbob@example.com\nnobody@example.com\n\
                      carol\n";

/// Pair items.
const PAIRS: &str =
    "alice@example.com:hunter2\nALICE@example.com:hunter2\nalice@example.com:Hunter2\n\
                     bob@example.com:password\ncarol:pa:ss\ncarol:pa\n";

/// The four indexes of the tests and the hashes in the two dumps of hashes.
struct Fixtures {
    _dir: tempfile::TempDir,
    sha1: PathBuf,
    ntlm: PathBuf,
    login: PathBuf,
    pair: PathBuf,
    /// Hashes in each dump of hashes (SHA-1, NTLM), generated ones first.
    dumped: [Vec<HashBytes>; 2],
}

fn fixtures() -> Fixtures {
    let dir = tempfile::tempdir().unwrap();
    let mut dumped = [Vec::new(), Vec::new()];
    let mut paths = Vec::new();
    for (k, kind) in [HashKind::Sha1, HashKind::Ntlm].into_iter().enumerate() {
        let mut text = String::new();
        for i in 0..1200u64 {
            let h = hash_from(i, PREFIXES[i as usize % PREFIXES.len()], kind);
            dumped[k].push(h);
            // Counts from 1 to past 2^32, as the corpus holds them.
            text.push_str(&format!(
                "{}:{}\n",
                hex(&h, kind),
                1 + i * i * 7919 % 9_000_000_000
            ));
        }
        for (password, count) in LEAKED {
            let h = kind.hash_password(password.as_bytes()).unwrap();
            dumped[k].push(h);
            text.push_str(&format!("{}:{count}\n", hex(&h, kind)));
        }
        let input = write_file(dir.path(), &format!("{}.txt", kind.name()), text.as_bytes());
        let index = dir.path().join(format!("{}.ldx", kind.name()));
        let o = run(&["build", s(&input), "-o", s(&index), "-q"], b"");
        assert!(o.status.success(), "{}", text_of(&o));
        paths.push(index);
    }
    let combo = write_file(dir.path(), "combo.txt", COMBO.as_bytes());
    for key in ["login", "pair"] {
        let index = dir.path().join(format!("{key}.ldx"));
        let o = run(
            &[
                "build",
                "--input",
                "combo",
                "--key",
                key,
                s(&combo),
                "-o",
                s(&index),
                "-q",
            ],
            b"",
        );
        assert!(o.status.success(), "{}", text_of(&o));
        paths.push(index);
    }
    let mut paths = paths.into_iter();
    Fixtures {
        _dir: dir,
        sha1: paths.next().unwrap(),
        ntlm: paths.next().unwrap(),
        login: paths.next().unwrap(),
        pair: paths.next().unwrap(),
        dumped,
    }
}

fn text_of(o: &Output) -> String {
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

/// `--hashes` input for `kind`: hashes of the dump (every 7th), absent hashes in the same
/// prefixes, lower case, `HASH:COUNT` lines, spaces and blank lines.
fn hash_items(f: &Fixtures, kind: HashKind) -> String {
    let dumped = &f.dumped[(kind == HashKind::Ntlm) as usize];
    let mut out = String::new();
    for (i, h) in dumped.iter().enumerate().step_by(7) {
        let absent = hash_from(1_000_000 + i as u64, prefix_of(h), kind);
        match i % 4 {
            0 => out.push_str(&format!("{}\n{}\n", hex(h, kind), hex(&absent, kind))),
            1 => out.push_str(&format!("{}\n", hex(h, kind).to_lowercase())),
            2 => out.push_str(&format!("  {}:17\n\n", hex(h, kind))),
            _ => out.push_str(&format!("{}\r\n", hex(&absent, kind))),
        }
    }
    for (password, _) in LEAKED {
        let h = kind.hash_password(password.as_bytes()).unwrap();
        out.push_str(&format!("{}\n", hex(&h, kind)));
    }
    out
}

/// Runs leakdex with no proxy from the environment (a test's requests go to loopback).
fn run_direct(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = leakdex()
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written on a thread of its own: a large input's answers fill the output pipe before the
    // input is all read.
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    output
}

/// Checks `items` against the index and against the server at `url` with the same flags, and
/// asserts that both print the same and exit alike; returns the remote output.
fn same_as_local(index: &Path, url: &str, kind: &str, flags: &[&str], items: &str) -> Output {
    let mut local = vec!["check", "-i", s(index)];
    local.extend_from_slice(flags);
    let mut remote = vec!["check", "--remote", url, "--kind", kind];
    remote.extend_from_slice(flags);
    let l = run(&local, items.as_bytes());
    let r = run_direct(&remote, items.as_bytes());
    assert_eq!(
        l.status.code(),
        r.status.code(),
        "{kind} {flags:?}: local {} / remote {}",
        text_of(&l),
        text_of(&r)
    );
    assert!(
        l.stdout == r.stdout,
        "{kind} {flags:?}: local printed\n{}\nremote printed\n{}",
        text(&l.stdout),
        text(&r.stdout)
    );
    assert_eq!(text(&l.stderr), text(&r.stderr), "{kind} {flags:?}");
    r
}

/// Every way of checking, against a server at `url` that holds the four indexes.
fn check_everything_against(f: &Fixtures, url: &str, kinds: &[&str]) {
    for &kind in kinds {
        let (index, items) = match kind {
            "sha1" => (&f.sha1, PASSWORDS.to_string()),
            "ntlm" => (&f.ntlm, PASSWORDS.to_string()),
            "login" => (&f.login, LOGINS.to_string()),
            _ => (&f.pair, PAIRS.to_string()),
        };
        let r = same_as_local(index, url, kind, &[], &items);
        assert_eq!(r.status.code(), Some(1), "{kind}: {}", text_of(&r));
        assert!(text(&r.stdout).contains(":0\n"), "{kind}: a miss, too");
        same_as_local(index, url, kind, &["--json"], &items);
        // A line that cannot be hashed (a pair without `:`) ends both checks alike, after the
        // answers before it.
        if kind == "pair" {
            let r = same_as_local(
                index,
                url,
                kind,
                &[],
                &format!(
                    "{items}nocolon
more
"
                ),
            );
            assert_eq!(r.status.code(), Some(2));
            assert!(text(&r.stderr).contains("no `:`"), "{}", text(&r.stderr));
        }
        if kind == "sha1" || kind == "ntlm" {
            let k: HashKind = kind.parse().unwrap();
            let items = hash_items(f, k);
            let r = same_as_local(index, url, kind, &["--hashes"], &items);
            assert_eq!(r.status.code(), Some(1));
            same_as_local(index, url, kind, &["--hashes", "--json"], &items);
            // A hash of the other kind stops both after the lines before it.
            let other = if k == HashKind::Sha1 {
                "8846F7EAEE8FB117AD06BDD830B7586C"
            } else {
                "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
            };
            let r = same_as_local(
                index,
                url,
                kind,
                &["--hashes"],
                &format!("{items}{other}\n"),
            );
            assert_eq!(r.status.code(), Some(2));
            assert!(
                text(&r.stderr).contains("items before it were answered"),
                "{}",
                text(&r.stderr)
            );
            // Nothing found: exit code 0.
            let absent = format!("{}\n", hex(&hash_from(99, 0x5BAA6, k), k));
            let r = same_as_local(index, url, kind, &["--hashes"], &absent);
            assert_eq!(r.status.code(), Some(0));
        }
    }
}

// --- leakdex serve ----------------------------------------------------------------------------

/// `leakdex serve` of the indexes, and its URL.
fn serve_at(indexes: &[&Path]) -> (Served, String) {
    let served = serve(indexes, &[]);
    let url = format!("http://{}", served.addr);
    (served, url)
}

/// Against the real `leakdex serve` (padding and gzip on, as by default): the same output and
/// exit codes as a local check, for passwords, hashes, logins and pairs, text and JSON.
#[test]
fn answers_as_a_local_check_against_leakdex_serve() {
    let f = fixtures();
    let (_server, url) = serve_at(&[&f.sha1, &f.ntlm, &f.login, &f.pair]);
    check_everything_against(&f, &url, &["sha1", "ntlm", "login", "pair"]);
    // A base URL with a trailing `/range/` is the same server; one connection works too.
    let url = format!("{url}/range/");
    let r = run_direct(
        &["check", "--remote", &url, "--connections", "1"],
        PASSWORDS.as_bytes(),
    );
    let l = run(&["check", "-i", s(&f.sha1)], PASSWORDS.as_bytes());
    assert!(r.stdout == l.stdout, "{}", text_of(&r));
    // A mode the server has no index for: its 404 ends the check, named.
    let (_only_sha1, only_sha1) = serve_at(&[&f.sha1]);
    let r = run_direct(
        &["check", "--remote", &only_sha1, "--kind", "ntlm"],
        b"password\n",
    );
    assert_eq!(r.status.code(), Some(2));
    let err = text(&r.stderr);
    assert!(
        err.contains("is HTTP 404 Not Found: `This server has no NTLM index loaded"),
        "{err}"
    );
    assert!(err.contains("/range/*****?mode=ntlm"), "{err}");
}

// --- nginx serving an export ------------------------------------------------------------------

/// Against the real nginx serving `leakdex export --gzip` trees of the four indexes (gzip_static
/// answers gzip; nginx ignores Add-Padding): the same output as a local check.
#[test]
fn answers_as_a_local_check_against_nginx_serving_an_export() {
    let Some(nginx) = nginx_binary() else {
        eprintln!(
            "SKIPPED answers_as_a_local_check_against_nginx_serving_an_export: nginx is not \
             installed (apt-get install nginx-light; scripts/test installs it)"
        );
        return;
    };
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    // Every prefix the items fall in, and no other: a whole tree is a million files per index.
    let mut prefixes = BTreeSet::new();
    for kind in [HashKind::Sha1, HashKind::Ntlm] {
        for line in hash_items(&f, kind).lines() {
            let hex = line.trim().split(':').next().unwrap();
            if !hex.is_empty() {
                prefixes.insert(u32::from_str_radix(&hex[..5], 16).unwrap());
            }
        }
        for line in PASSWORDS.lines() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            prefixes.insert(prefix_of(&kind.hash_password(line.as_bytes()).unwrap()));
        }
        prefixes.insert(prefix_of(&hash_from(99, 0x5BAA6, kind)));
    }
    let mut scratch = Vec::new();
    for line in LOGINS.lines() {
        prefixes.insert(prefix_of(&leakdex::key::login_hash(
            line.as_bytes(),
            &mut scratch,
        )));
    }
    for line in PAIRS.lines() {
        let (login, password) = line.split_once(':').unwrap();
        let h = leakdex::key::pair_hash(login.as_bytes(), password.as_bytes(), &mut scratch);
        prefixes.insert(prefix_of(&h));
    }
    let list: Vec<String> = prefixes.iter().map(|p| format!("{p:05X}")).collect();
    let tree = dir.path().join("tree");
    let o = run(
        &[
            "export",
            "-i",
            s(&f.sha1),
            "-i",
            s(&f.ntlm),
            "-i",
            s(&f.login),
            "-i",
            s(&f.pair),
            s(&tree),
            "--gzip",
            "--prefixes",
            &list.join(","),
        ],
        b"",
    );
    assert!(o.status.success(), "{}", text_of(&o));
    let work = dir.path().join("nginx");
    std::fs::create_dir(&work).unwrap();
    let server = start_nginx(&nginx, &tree, &work);
    let url = format!("http://127.0.0.1:{}", server.port);
    check_everything_against(&f, &url, &["sha1", "ntlm", "login", "pair"]);
    // A prefix the partial tree lacks: nginx's 404 ends the check with its text.
    let missing = (0..)
        .map(|i| format!("absent-{i}"))
        .find(|p| !prefixes.contains(&prefix_of(&sha1_password(p.as_bytes()))));
    let r = run_direct(&["check", "--remote", &url], missing.unwrap().as_bytes());
    assert_eq!(r.status.code(), Some(2));
    assert!(
        text(&r.stderr).contains("is HTTP 404 Not Found: `This mirror holds no range"),
        "{}",
        text(&r.stderr)
    );
}

// --- a recording server -----------------------------------------------------------------------

/// One request as the recording server read it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    /// Path and query.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The prefix asked, from `/range/PREFIX`.
    fn prefix(&self) -> u32 {
        let path = self.target.split('?').next().unwrap();
        u32::from_str_radix(path.strip_prefix("/range/").unwrap(), 16).unwrap()
    }
}

/// What the recording server answers.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Wait this long before answering.
    delay: Duration,
}

impl Answer {
    fn ok(body: Vec<u8>) -> Answer {
        Answer::status(200, body)
    }

    fn status(status: u16, body: Vec<u8>) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type", "text/plain".into())],
            body,
            delay: Duration::ZERO,
        }
    }
}

/// Answers a request; `asked` is how many times its target was asked before.
type Handler = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

/// A small HTTP/1.1 server on loopback that keeps every byte it reads and every request,
/// answers through a handler, and counts the requests in progress at once.
struct Recorder {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Every byte every connection sent, in arrival order per read.
    raw: Arc<Mutex<Vec<u8>>>,
    busiest: Arc<AtomicUsize>,
}

impl Recorder {
    fn start(handler: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let busy = Arc::new(AtomicUsize::new(0));
        let busiest = Arc::new(AtomicUsize::new(0));
        let asked = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, r, b, m) = (seen.clone(), raw.clone(), busy, busiest.clone());
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (s, r, b, m, a, h) = (
                    s.clone(),
                    r.clone(),
                    b.clone(),
                    m.clone(),
                    asked.clone(),
                    handler.clone(),
                );
                std::thread::spawn(move || serve_connection(stream, &s, &r, &b, &m, &a, &*h));
            }
        });
        Recorder {
            url,
            seen,
            raw,
            busiest,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }
}

/// A reader that keeps a copy of every byte it reads.
struct Tee<'a> {
    inner: TcpStream,
    copy: &'a Mutex<Vec<u8>>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn serve_connection(
    stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    raw: &Mutex<Vec<u8>>,
    busy: &AtomicUsize,
    busiest: &AtomicUsize,
    asked: &Mutex<HashMap<String, usize>>,
    handler: &Handler,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(Tee {
        inner: stream,
        copy: raw,
    });
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap_or(0));
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Seen {
            method,
            target,
            headers,
            body,
        };
        let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
        busiest.fetch_max(now, Ordering::SeqCst);
        let before = {
            let mut asked = asked.lock().unwrap();
            let n = asked.entry(request.target.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        seen.lock().unwrap().push(request.clone());
        let answer = handler(&request, before);
        std::thread::sleep(answer.delay);
        let mut out = format!("HTTP/1.1 {} Whatever\r\n", answer.status).into_bytes();
        for (k, v) in &answer.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", answer.body.len()).as_bytes());
        out.extend_from_slice(&answer.body);
        busy.fetch_sub(1, Ordering::SeqCst);
        if writer.write_all(&out).is_err() {
            return;
        }
    }
}

/// A handler answering from the indexes, by the request's mode, as the API does: padded with
/// `Add-Padding: true`, gzip with `Accept-Encoding: gzip`.
fn from_indexes(paths: &[&Path]) -> impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static {
    let indexes: Vec<(String, Index)> = paths
        .iter()
        .map(|p| {
            let index = Index::open(p).unwrap();
            let mode = match (index.key(), index.kind()) {
                (leakdex::KeyType::Password, HashKind::Sha1) => "",
                (leakdex::KeyType::Password, HashKind::Ntlm) => "ntlm",
                (k, _) => k.name(),
            };
            (mode.to_string(), index)
        })
        .collect();
    move |req, _| {
        let mode = req
            .target
            .split_once("?mode=")
            .map_or("", |(_, m)| m)
            .to_string();
        let Some((_, index)) = indexes.iter().find(|(m, _)| *m == mode) else {
            return Answer::status(404, b"no such mode".to_vec());
        };
        let mut body = Vec::new();
        if req.header("add-padding") == Some("true") {
            index
                .write_padded_range(req.prefix(), &mut rand::rng(), &mut body)
                .unwrap();
        } else {
            index.write_range(req.prefix(), &mut body).unwrap();
        }
        let mut answer = Answer::ok(body);
        if req
            .header("accept-encoding")
            .is_some_and(|v| v.contains("gzip"))
        {
            answer.body = gzip(&answer.body);
            answer.headers.push(("Content-Encoding", "gzip".into()));
        }
        answer
    }
}

// --- privacy ------------------------------------------------------------------------------------

/// The secrets of an item that no byte sent may hold: the item itself (password, login), its
/// hash in hex of either case, in raw bytes, and its suffix in hex of either case (and any
/// 6 hex digits that would say more than the prefix).
fn secrets_of(item: &str, hash: &HashBytes, kind: HashKind) -> Vec<Vec<u8>> {
    let upper = hex(hash, kind);
    let mut out = vec![
        upper.clone().into_bytes(),
        upper.to_lowercase().into_bytes(),
        upper.as_bytes()[5..].to_vec(),
        upper[5..].to_lowercase().into_bytes(),
        upper.as_bytes()[..6].to_vec(),
        upper[..6].to_lowercase().into_bytes(),
        hash[..kind.byte_len()].to_vec(),
    ];
    if item.len() >= 4 {
        out.push(item.as_bytes().to_vec());
    }
    out
}

/// The secrets of `secrets` found in `bytes`, for the message.
fn leaked(bytes: &[u8], secrets: &[Vec<u8>]) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| bytes.windows(s.len()).any(|w| w == &s[..]))
        .map(|s| text(s))
        .collect()
}

/// Everything the server receives, across sha1, ntlm, login and pair checks of passwords,
/// logins, pairs and hashes, holds the 5-hex prefixes and nothing else of an item: the
/// requests are `GET /range/PREFIX[?mode=...]` with no body and only the expected headers.
#[test]
fn the_server_sees_prefixes_and_nothing_else() {
    let f = fixtures();
    let rec = Recorder::start(from_indexes(&[&f.sha1, &f.ntlm, &f.login, &f.pair]));
    let mut secrets = Vec::new();
    let mut prefixes: BTreeSet<String> = BTreeSet::new();
    let mut scratch = Vec::new();
    let runs: [(&str, &[&str], String); 6] = [
        ("sha1", &[], PASSWORDS.to_string()),
        ("ntlm", &[], PASSWORDS.to_string()),
        ("login", &[], LOGINS.to_string()),
        ("pair", &[], PAIRS.to_string()),
        ("sha1", &["--hashes"], hash_items(&f, HashKind::Sha1)),
        (
            "ntlm",
            &["--hashes", "--json"],
            hash_items(&f, HashKind::Ntlm),
        ),
    ];
    for (kind, flags, items) in &runs {
        let mode: leakdex::remote::RangeMode = kind.parse().unwrap();
        for line in items.lines() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let hash = if flags.contains(&"--hashes") {
                if line.trim().is_empty() {
                    continue;
                }
                leakdex::hash::parse_hash_item(line.as_bytes(), mode.kind()).unwrap()
            } else {
                leakdex::key::hash_item(mode.key(), mode.kind(), line.as_bytes(), &mut scratch)
                    .unwrap()
            };
            secrets.extend(secrets_of(line, &hash, mode.kind()));
            if let Some((login, password)) = line.split_once(':').filter(|_| *kind == "pair") {
                secrets.push(login.as_bytes().to_vec());
                secrets.push(password.as_bytes().to_vec());
            }
            prefixes.insert(format!("{:05X}{}", prefix_of(&hash), mode.query()));
        }
        let mut args = vec!["check", "--remote", &rec.url, "--kind", kind];
        args.extend_from_slice(flags);
        let r = run_direct(&args, items.as_bytes());
        assert_eq!(r.status.code(), Some(1), "{kind}: {}", text_of(&r));
        // What it prints is the same as a local check's (so the answers did come back).
        let index = match *kind {
            "sha1" => &f.sha1,
            "ntlm" => &f.ntlm,
            "login" => &f.login,
            _ => &f.pair,
        };
        let mut local = vec!["check", "-i", s(index)];
        local.extend_from_slice(flags);
        assert!(
            run(&local, items.as_bytes()).stdout == r.stdout,
            "{kind} {flags:?}"
        );
    }
    secrets.retain(|s| s.len() >= 4);
    let raw = rec.raw();
    let seen = rec.seen();
    // The detector finds a secret where there is one, and the recording holds every prefix:
    // an empty or broken recording cannot pass.
    let planted = [&raw[..], secrets[0].as_slice()].concat();
    assert!(!leaked(&planted, &secrets).is_empty());
    let asked: BTreeSet<String> = seen
        .iter()
        .map(|r| r.target.strip_prefix("/range/").unwrap().to_string())
        .collect();
    assert_eq!(asked, prefixes);
    for p in &prefixes {
        assert!(leaked(&raw, &[p.as_bytes()[..5].to_vec()]).len() == 1);
    }
    assert!(raw.len() > seen.len() * 40, "{} bytes", raw.len());
    // The assertion itself.
    let found = leaked(&raw, &secrets);
    assert!(
        found.is_empty(),
        "sent to the server: {} secrets, such as {:?}",
        found.len(),
        &found[..found.len().min(5)]
    );
    let allowed = [
        "host",
        "user-agent",
        "accept",
        "accept-encoding",
        "add-padding",
    ];
    for r in &seen {
        assert_eq!(r.method, "GET");
        assert!(r.body.is_empty());
        let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
        assert!(
            path.len() == 12 && path[7..].bytes().all(|b| b.is_ascii_hexdigit()),
            "{path}"
        );
        assert!(
            ["", "mode=ntlm", "mode=login", "mode=pair"].contains(&query),
            "{query}"
        );
        for (k, v) in &r.headers {
            assert!(
                allowed.contains(&k.to_ascii_lowercase().as_str()),
                "header {k}: {v}"
            );
        }
        assert_eq!(r.header("add-padding"), Some("true"));
        assert_eq!(r.header("accept-encoding"), Some("gzip"));
    }
}

// --- batches ------------------------------------------------------------------------------------

/// 70,000 hashes over 300 prefixes, checked in batches of 65,536 lines: one request per
/// distinct prefix of each batch, the first batch's all before the second's, never more than
/// --connections at once, and the answers in input order as a local check prints them. A
/// failure in the second batch comes after the first batch's answers.
#[test]
fn one_request_per_distinct_prefix_of_each_batch() {
    let f = fixtures();
    let prefixes: Vec<u32> = (0..300u32).map(|i| (i * 3491 + 17) & 0xF_FFFF).collect();
    let mut items = String::new();
    let mut batches = [BTreeSet::new(), BTreeSet::new()];
    for i in 0..70_000usize {
        let prefix = prefixes[(i * 7 + i / 1000) % prefixes.len()];
        // Repeats of a hash, and hashes of the dump, among them.
        let h = match i % 5 {
            0 => f.dumped[0][i % f.dumped[0].len()],
            _ => hash_from((i % 9000) as u64, prefix, HashKind::Sha1),
        };
        batches[(i >= 65_536) as usize].insert(prefix_of(&h));
        items.push_str(&hex(&h, HashKind::Sha1));
        items.push('\n');
    }
    let rec = Recorder::start(from_indexes(&[&f.sha1]));
    let r = run_direct(
        &[
            "check",
            "--remote",
            &rec.url,
            "--hashes",
            "--connections",
            "3",
        ],
        items.as_bytes(),
    );
    assert_eq!(r.status.code(), Some(1), "{}", text(&r.stderr));
    let local = run_direct(&["check", "-i", s(&f.sha1), "--hashes"], items.as_bytes());
    assert!(local.stdout == r.stdout);
    let seen: Vec<u32> = rec.seen().iter().map(Seen::prefix).collect();
    assert_eq!(seen.len(), batches[0].len() + batches[1].len());
    let first: BTreeSet<u32> = seen[..batches[0].len()].iter().copied().collect();
    let second: BTreeSet<u32> = seen[batches[0].len()..].iter().copied().collect();
    assert_eq!(
        first.len(),
        batches[0].len(),
        "a prefix asked twice in a batch"
    );
    assert_eq!(first, batches[0]);
    assert_eq!(second, batches[1]);
    let busiest = rec.busiest.load(Ordering::SeqCst);
    assert!((1..=3).contains(&busiest), "{busiest} requests at once");

    // The second batch's requests fail: the first batch's answers are printed, then the error.
    let first_batch = batches[0].len();
    let counter = AtomicUsize::new(0);
    let answer = from_indexes(&[&f.sha1]);
    let rec = Recorder::start(move |req, asked| {
        if counter.fetch_add(1, Ordering::SeqCst) < first_batch {
            answer(req, asked)
        } else {
            Answer::status(404, b"gone".to_vec())
        }
    });
    let r = run_direct(
        &["check", "--remote", &rec.url, "--hashes"],
        items.as_bytes(),
    );
    assert_eq!(r.status.code(), Some(2));
    let lines: Vec<&[u8]> = local.stdout.split(|&b| b == b'\n').collect();
    assert!(r.stdout == [lines[..65_536].join(&b'\n'), b"\n".to_vec()].concat());
    let err = text(&r.stderr);
    assert!(err.contains("is HTTP 404 Not Found: `gone`"), "{err}");
    assert!(
        err.contains("the 65,536 items of earlier batches were answered above"),
        "{err}"
    );
}

// --- the official API's form --------------------------------------------------------------------

/// Handmade bodies in the form the official API documents: CRLF between rows, no newline at
/// the end, upper-case suffixes sorted, padding rows with count 0 among them and appended at
/// the end unsorted (as the Cloudflare Worker does), one of them equal to a checked hash's
/// suffix. Counts 0 are padding: that hash is absent.
#[test]
fn reads_bodies_in_the_official_form() {
    let password = sha1_password(b"password");
    let padded_only = sha1_password(b"padded-only");
    let ntlm = ntlm_password("password");
    let suffix = |h: &HashBytes, kind: HashKind| hex(h, kind)[5..].to_string();
    let sha1_body = move |prefix: u32| -> Vec<u8> {
        let mut rows = vec![
            "003D68EB55068C33ACE09247EE4C639306B:3".to_string(),
            "0000000000000000000000000000000000A:0".to_string(),
            "1E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004".to_string(),
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0".to_string(),
        ];
        if prefix == prefix_of(&padded_only) {
            rows.push(format!("{}:0", suffix(&padded_only, HashKind::Sha1)));
        }
        rows.push("ABCDEF0123456789ABCDEF0123456789ABC:0".into());
        rows.join("\r\n").into_bytes()
    };
    let ntlm_body = format!(
        "0001256EBBC1E7C2FF7F3F4C96B:1\r\n{}:8846\r\n{}:0",
        suffix(&ntlm, HashKind::Ntlm),
        "F".repeat(27)
    );
    let rec = Recorder::start(move |req, _| {
        if req.target.ends_with("?mode=ntlm") {
            Answer::ok(ntlm_body.clone().into_bytes())
        } else {
            Answer::ok(sha1_body(req.prefix()))
        }
    });
    let r = run_direct(
        &["check", "--remote", &rec.url],
        b"password\npadded-only\npassword\n",
    );
    assert_eq!(r.status.code(), Some(1), "{}", text(&r.stderr));
    assert_eq!(
        text(&r.stdout),
        format!(
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004\n{}:0\n\
             5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004\n",
            hex(&padded_only, HashKind::Sha1)
        )
    );
    let r = run_direct(&["check", "--remote", &rec.url, "--json"], b"padded-only\n");
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    assert_eq!(
        text(&r.stdout),
        format!(
            "{{\"line\": 1, \"hash\": \"{}\", \"count\": 0}}\n",
            hex(&padded_only, HashKind::Sha1)
        )
    );
    let r = run_direct(
        &["check", "--remote", &rec.url, "--kind", "ntlm"],
        b"password\n",
    );
    assert_eq!(text(&r.stdout), "8846F7EAEE8FB117AD06BDD830B7586C:8846\n");
    assert_eq!(r.status.code(), Some(1));
    // Requests as the API expects them: upper-case prefix, no mode for SHA-1, mode=ntlm.
    let targets: BTreeSet<String> = rec.seen().into_iter().map(|r| r.target).collect();
    let expected: BTreeSet<String> = [
        format!("/range/{:05X}", prefix_of(&password)),
        format!("/range/{:05X}", prefix_of(&padded_only)),
        "/range/8846F?mode=ntlm".to_string(),
    ]
    .into();
    assert_eq!(targets, expected);
}

// --- headers: padding and gzip ------------------------------------------------------------

#[test]
fn padding_is_asked_by_default_and_not_with_no_padding() {
    let f = fixtures();
    let rec = Recorder::start(from_indexes(&[&f.sha1]));
    let r = run_direct(&["check", "--remote", &rec.url], b"password\n");
    assert_eq!(
        text(&r.stdout),
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:12345\n"
    );
    let r = run_direct(
        &["check", "--remote", &rec.url, "--no-padding"],
        b"hunter2\n",
    );
    assert_eq!(r.status.code(), Some(1));
    let seen = rec.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("add-padding"), Some("true"));
    assert_eq!(seen[1].header("add-padding"), None);
}

/// A gzip answer is unpacked (the recorder gzips when asked, and was asked); one that says
/// gzip but is not ends the check with exit code 2.
#[test]
fn gzip_answers_are_unpacked() {
    let f = fixtures();
    let gzipped = Arc::new(AtomicUsize::new(0));
    let count = gzipped.clone();
    let answer = from_indexes(&[&f.sha1]);
    let rec = Recorder::start(move |req, asked| {
        let a = answer(req, asked);
        if a.headers
            .iter()
            .any(|(k, v)| *k == "Content-Encoding" && v == "gzip")
        {
            count.fetch_add(1, Ordering::SeqCst);
        }
        a
    });
    same_as_local(&f.sha1, &rec.url, "sha1", &[], PASSWORDS);
    assert_eq!(gzipped.load(Ordering::SeqCst), rec.seen().len());
    assert!(rec.seen().len() >= 4);

    let rec = Recorder::start(|_, _| {
        let mut a = Answer::ok(b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:1".to_vec());
        a.headers.push(("Content-Encoding", "gzip".into()));
        a
    });
    let r = run_direct(&["check", "--remote", &rec.url], b"password\n");
    assert_eq!(r.status.code(), Some(2));
    assert!(
        text(&r.stderr).contains("says gzip, but its body is not gzip"),
        "{}",
        text(&r.stderr)
    );
}

// --- retries ------------------------------------------------------------------------------------

/// 503, then 429 with `Retry-After: 1`, then the body: each prefix is asked three times, the
/// check waits the second asked, and answers as a local check.
#[test]
fn retries_after_503_and_429_then_answers() {
    let f = fixtures();
    let answer = from_indexes(&[&f.sha1]);
    let rec = Recorder::start(move |req, asked| match asked {
        0 => Answer::status(503, b"busy".to_vec()),
        1 => {
            let mut a = Answer::status(429, b"slow down".to_vec());
            a.headers.push(("Retry-After", "1".into()));
            a
        }
        _ => answer(req, asked),
    });
    let started = Instant::now();
    let r = same_as_local(
        &f.sha1,
        &rec.url,
        "sha1",
        &[],
        "password\nhunter2\nabsent-9\n",
    );
    assert_eq!(r.status.code(), Some(1));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After not awaited"
    );
    let seen = rec.seen();
    let mut per_target: HashMap<String, usize> = HashMap::new();
    for s in &seen {
        *per_target.entry(s.target.clone()).or_default() += 1;
    }
    assert_eq!(per_target.len(), 3);
    assert!(per_target.values().all(|&n| n == 3), "{per_target:?}");
}

/// A try that takes longer than --timeout is abandoned and tried again.
#[test]
fn a_timeout_is_tried_again() {
    let f = fixtures();
    let answer = from_indexes(&[&f.sha1]);
    let rec = Recorder::start(move |req, asked| {
        let mut a = answer(req, asked);
        if asked == 0 {
            a.delay = Duration::from_secs(4);
        }
        a
    });
    let r = run_direct(
        &["check", "--remote", &rec.url, "--timeout", "1"],
        b"password\n",
    );
    assert_eq!(
        text(&r.stdout),
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:12345\n",
        "{}",
        text(&r.stderr)
    );
    assert_eq!(rec.seen().len(), 2);
}

/// A Retry-After longer than leakdex waits ends the check at once, and says so.
#[test]
fn a_long_retry_after_ends_the_check() {
    let rec = Recorder::start(|_, _| {
        let mut a = Answer::status(429, b"Rate limit exceeded".to_vec());
        a.headers.push(("Retry-After", "3600".into()));
        a
    });
    let started = Instant::now();
    let r = run_direct(&["check", "--remote", &rec.url], b"password\n");
    assert_eq!(r.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = text(&r.stderr);
    assert!(err.contains("HTTP 429 Too Many Requests"), "{err}");
    assert!(err.contains("asks to wait 3600 s"), "{err}");
    assert_eq!(rec.seen().len(), 1);
}

/// Nothing listens: every try fails to connect, and after --retries more the check ends with
/// exit code 2, having waited its backoff (at least 0.125 + 0.25 s for two retries).
#[test]
fn a_server_that_is_down_ends_the_check_after_the_retries() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let r = run_direct(
        &["check", "--remote", &url, "--retries", "2"],
        b"password\n",
    );
    assert_eq!(r.status.code(), Some(2));
    assert!(started.elapsed() >= Duration::from_millis(375));
    assert!(r.stdout.is_empty());
    let err = text(&r.stderr);
    assert!(err.contains("did not come after 3 tries"), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(
        err.contains(&format!("GET http://127.0.0.1:{port}/range/*****)")),
        "{err}"
    );
    assert!(!err.contains("5BAA6") && !err.contains("5baa6"), "{err}");
}

// --- garbage ------------------------------------------------------------------------------------

/// Answers that are not range bodies end the check with exit code 2 and a message that names
/// the request and what was wrong, but no prefix, hash or password.
#[test]
fn garbage_answers_end_the_check_with_a_clear_message() {
    const ROW: &str = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";
    let cases: [(u16, String, Option<&str>, &str); 7] = [
        (
            200,
            "<!DOCTYPE html>\n<html><body>Welcome to nginx!</body></html>".into(),
            None,
            "is not a range body: it is a markup (HTML or XML) page",
        ),
        (
            200,
            format!("{ROW}:3\r\nhello world"),
            None,
            "is not a range body: line 2 is not SUFFIX:COUNT",
        ),
        (
            200,
            format!("{ROW}:many"),
            None,
            "line 1 has a count that is not a whole number",
        ),
        (
            200,
            "7EAEE8FB117AD06BDD830B7586C:3".into(),
            None,
            "line 1 has a suffix of 27 characters where a SHA-1 range has 35 (the length of an \
             NTLM suffix",
        ),
        (
            404,
            "Cannot GET /range/5BAA6\n".into(),
            None,
            "is HTTP 404 Not Found: `Cannot GET /range/*****`",
        ),
        (
            301,
            String::new(),
            Some("Location: ftp://elsewhere/"),
            "failed: bad uri: unknown scheme: ftp",
        ),
        (
            200,
            format!("{ROW}:3"),
            Some("Content-Encoding: br"),
            "an encoding that was not asked for (Content-Encoding: br)",
        ),
    ];
    for (status, body, header, expect) in cases {
        let body = body.into_bytes();
        let header = header.map(|h| h.split_once(": ").unwrap());
        let rec = Recorder::start(move |_, _| {
            let mut a = Answer::status(status, body.clone());
            if let Some((k, v)) = header {
                let k: &'static str = if k == "Location" {
                    "Location"
                } else {
                    "Content-Encoding"
                };
                a.headers.push((k, v.to_string()));
            }
            a
        });
        let r = run_direct(&["check", "--remote", &rec.url], b"password\n");
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{expect}: {err}");
        assert!(r.stdout.is_empty());
        assert!(err.contains(expect), "expected {expect:?} in {err}");
        assert!(
            err.starts_with(&format!(
                "leakdex: the answer to range request 1 (GET {}/range/*****)",
                rec.url
            )),
            "{err}"
        );
        assert!(!err.to_ascii_uppercase().contains("5BAA6"), "{err}");
        assert!(!err.contains("password"), "{err}");
        // Garbage is not tried again.
        assert_eq!(rec.seen().len(), 1, "{expect}");
    }
}

/// When one request fails for good while another waits to try again, the failure is what is
/// reported, and the waiting one is not tried again.
#[test]
fn a_failure_ends_the_retries_of_other_requests() {
    let rec = Recorder::start(|req, _| {
        if req.prefix() == 0x5BAA6 {
            Answer::status(503, b"busy".to_vec())
        } else {
            Answer::status(404, b"gone".to_vec())
        }
    });
    // password is 5BAA6 (request 1), hunter2 is F3BBB (request 2).
    let r = run_direct(
        &["check", "--remote", &rec.url, "--connections", "2"],
        b"password\nhunter2\n",
    );
    assert_eq!(r.status.code(), Some(2));
    let err = text(&r.stderr);
    assert!(
        err.contains("range request 2 (GET") && err.contains("is HTTP 404 Not Found: `gone`"),
        "{err}"
    );
    let busy = rec.seen().iter().filter(|s| s.prefix() == 0x5BAA6).count();
    assert!(busy < 5, "{busy} tries of the waiting request");
}

// --- arguments and TLS --------------------------------------------------------------------

#[test]
fn arguments_that_do_not_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expect) in [
        (
            &["check", "-i", "x.ldx", "--remote", "http://127.0.0.1:1"][..],
            "cannot be used with",
        ),
        (
            &["check", "-i", "x.ldx", "--kind", "ntlm"],
            "cannot be used with",
        ),
        (&["check", "--kind", "ntlm"], "--remote"),
        (
            &["check", "--remote", "ftp://mirror.example"],
            "not an http:// or https:// URL",
        ),
        (
            &["check", "--remote", "http://127.0.0.1:1", "--kind", "md5"],
            "expected sha1, ntlm, login or pair",
        ),
        (
            &[
                "check",
                "--remote",
                "http://127.0.0.1:1",
                "--connections",
                "0",
            ],
            "0",
        ),
    ] {
        let r = run_direct(args, b"password\n");
        assert_eq!(r.status.code(), Some(2), "{args:?}");
        assert!(
            text(&r.stderr).contains(expect),
            "{args:?}: {}",
            text(&r.stderr)
        );
    }
    let pem = write_file(dir.path(), "ca.pem", b"not a certificate\n");
    let r = run_direct(
        &[
            "check",
            "--remote",
            "https://127.0.0.1:1",
            "--ca-cert",
            s(&pem),
        ],
        b"password\n",
    );
    assert_eq!(r.status.code(), Some(2));
    assert!(text(&r.stderr).contains("--ca-cert"), "{}", text(&r.stderr));
}

/// HTTPS with rustls: a mirror whose certificate a private CA signed answers with --ca-cert
/// naming that CA, and is refused (exit 2, a certificate error, no retries) without it.
#[test]
fn https_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "leakdex test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca_pem = write_file(dir.path(), "ca.pem", ca_cert.pem().as_bytes());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = handshakes.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            let counter = counter.clone();
            std::thread::spawn(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = text(&head);
                let body = if head.starts_with("GET /range/5BAA6 ") {
                    "1E4C9B93F3F0682250B6CF8331B7EE68FD8:77\r\n\
                     479DCEE3B4102B7DA38F570282E7A36A023:1"
                } else {
                    "1E4C9B93F3F0682250B6CF8331B7EE68FD7:1"
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    let url = format!("https://127.0.0.1:{port}");
    let r = run_direct(
        &["check", "--remote", &url, "--ca-cert", s(&ca_pem)],
        b"password\nhunter2\n",
    );
    assert_eq!(r.status.code(), Some(1), "{}", text(&r.stderr));
    assert_eq!(
        text(&r.stdout),
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:77\nF3BBBD66A63D4BF1747940578EC3D0103530E21D:0\n"
    );
    // The built-in roots do not know the private CA: refused at once, not tried again.
    let before = handshakes.load(Ordering::SeqCst);
    let r = run_direct(&["check", "--remote", &url], b"password\n");
    assert_eq!(r.status.code(), Some(2));
    let err = text(&r.stderr);
    assert!(
        err.contains("certificate") && err.contains("--ca-cert"),
        "{err}"
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), before + 1, "{err}");
}
