//! A k-anonymity client of the range API: checks hashes against a range server (`leakdex
//! serve`, nginx serving a `leakdex export` tree, or the official Pwned Passwords API) without
//! holding the corpus, and without sending more than 5-hex prefixes.
//!
//! [`RemoteChecker::counts`] takes hashes and answers each one's count (0 when absent):
//!
//! 1. It groups the hashes by their 20-bit prefix and sends **one request per distinct prefix**:
//!    `GET {URL}/range/{PREFIX}`, with `?mode=ntlm`, `?mode=login` or `?mode=pair` for those
//!    [`RangeMode`]s (none for SHA-1 passwords, as the official API expects). The request
//!    carries `Add-Padding: true` (unless [`RemoteOptions::padding`] is off), `Accept-Encoding:
//!    gzip`, a `User-Agent` and nothing else: no body, no cookie. The prefix is all the server
//!    learns; passwords, full hashes and suffixes never leave the process, and no message of
//!    this module names a prefix either (they write `*****` in its place).
//! 2. Each body is read (gunzipped when the server says `Content-Encoding: gzip`) and its
//!    `SUFFIX:COUNT` rows compared with the hashes' suffixes in the process. Rows may be
//!    joined by CRLF or LF, in either case of hex, in any order; rows with count 0 are padding
//!    and are ignored. A body that is not a range body (an HTML page, a row that is not
//!    `SUFFIX:COUNT`, a suffix of the other kind's length) is an error, as is any final status
//!    but 200 (a 404 from a mirror that lacks the prefix, say).
//! 3. At most [`RemoteOptions::connections`] requests are in flight at once (one thread each,
//!    sharing a pool of kept-alive connections). A request that fails with 429, a 5xx status,
//!    a timeout or a connection error is tried again, up to [`RemoteOptions::attempts`] times
//!    in all, after an exponential backoff with jitter (0.25 s, 0.5 s, 1 s, ... at most 8 s)
//!    or after the server's `Retry-After` when that is at most
//!    [`RemoteOptions::max_retry_after`] (a longer one ends the check at once, rather than
//!    hammer a server that asked for a pause).
//!
//! A call holds the hashes it is given and one body per connection at a time: a caller with a
//! huge input calls it chunk by chunk (`leakdex check --remote` does, 65,536 lines at a time).
//! Nothing is cached across calls: a prefix asked in two chunks is asked twice. A cache of
//! whole bodies would take memory that grows with the input for little gain on random input
//! (a chunk of 65,536 random hashes meets about 63,500 of the 1,048,576 prefixes, and the next
//! chunk shares about 6% of them).
//!
//! HTTPS goes through rustls with the Mozilla root certificates (webpki-roots) or, with
//! [`RemoteOptions::ca_certs_pem`], only the certificates given (a private mirror's CA).
//! Proxies are taken from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`), as curl does.

use crate::error::{Error, Result};
use crate::hash::{encode_hex_into, prefix_of, HashBytes, HashKind};
use crate::index::{Count, Presence};
use crate::key::KeyType;
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a range server is asked for: the `mode=` of the request, and so the hash kind and key
/// of the hashes it answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RangeMode {
    /// SHA-1 of passwords: no `mode=` (the official API's default).
    #[default]
    Sha1,
    /// NTLM of passwords: `mode=ntlm`.
    Ntlm,
    /// SHA-1 of normalised logins: `mode=login` (leakdex's own).
    Login,
    /// SHA-1 of `normalised login:password`: `mode=pair` (leakdex's own).
    Pair,
}

impl RangeMode {
    /// Every mode.
    pub const ALL: [RangeMode; 4] = [
        RangeMode::Sha1,
        RangeMode::Ntlm,
        RangeMode::Login,
        RangeMode::Pair,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RangeMode::Sha1 => "sha1",
            RangeMode::Ntlm => "ntlm",
            RangeMode::Login => "login",
            RangeMode::Pair => "pair",
        }
    }

    /// The kind of the hashes this mode answers.
    pub fn kind(self) -> HashKind {
        match self {
            RangeMode::Ntlm => HashKind::Ntlm,
            _ => HashKind::Sha1,
        }
    }

    /// What those hashes are hashes of.
    pub fn key(self) -> KeyType {
        match self {
            RangeMode::Sha1 | RangeMode::Ntlm => KeyType::Password,
            RangeMode::Login => KeyType::Login,
            RangeMode::Pair => KeyType::Pair,
        }
    }

    /// The mode that answers hashes of `kind` and `key`, if one does.
    pub fn of(kind: HashKind, key: KeyType) -> Option<RangeMode> {
        RangeMode::ALL
            .into_iter()
            .find(|m| m.kind() == kind && m.key() == key)
    }

    /// The query string of a range request, with its `?` (empty for SHA-1).
    pub fn query(self) -> &'static str {
        match self {
            RangeMode::Sha1 => "",
            RangeMode::Ntlm => "?mode=ntlm",
            RangeMode::Login => "?mode=login",
            RangeMode::Pair => "?mode=pair",
        }
    }
}

impl std::fmt::Display for RangeMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RangeMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        RangeMode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown kind `{s}` (expected sha1, ntlm, login or pair)"))
    }
}

/// How to ask a range server.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// What to ask for (and so how items are hashed).
    pub mode: RangeMode,
    /// Send `Add-Padding: true`, so that the body's size tells an observer of the (encrypted)
    /// traffic less about the prefix. On by default.
    pub padding: bool,
    /// Requests in flight at once (at least 1).
    pub connections: usize,
    /// Tries of one request in all, the first included (at least 1).
    pub attempts: u32,
    /// Longest time for one try: connecting, sending and reading the whole answer.
    pub timeout: Duration,
    /// The wait before the first retry; it doubles with each retry, up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between two tries of one request by backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a server asking for a longer pause ends the check.
    pub max_retry_after: Duration,
    /// PEM certificates to trust instead of the built-in roots (a private mirror's CA).
    pub ca_certs_pem: Option<Vec<u8>>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            mode: RangeMode::Sha1,
            padding: true,
            connections: 8,
            attempts: 5,
            timeout: Duration::from_secs(30),
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
            ca_certs_pem: None,
        }
    }
}

/// The largest body read, compressed or not: a range holds about 1,000 rows of 40 bytes today
/// (16 billion hashes would make it 15,000); anything near this is not a range body.
pub const MAX_BODY_BYTES: u64 = 16 << 20;

/// A client of one range server. Cheap to share between threads; its connections are kept
/// alive between calls.
pub struct RemoteChecker {
    agent: ureq::Agent,
    /// The base URL, without a trailing `/` or `/range`.
    base: String,
    /// The base URL as messages show it: without user name or password.
    shown: String,
    options: RemoteOptions,
    /// Requests numbered so far (messages name a request by its number).
    requests: AtomicU64,
    /// Tries made so far, retries included.
    attempts: AtomicU64,
}

impl std::fmt::Debug for RemoteChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteChecker")
            .field("url", &self.shown)
            .field("options", &self.options)
            .finish()
    }
}

/// Why one try of a request did not give a body.
enum Failure {
    /// Worth another try (after `after` when the server said so).
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Not worth another: the server answered, and wrongly.
    Final(String),
}

impl RemoteChecker {
    /// A client of the range server at `url` (`https://host[:port][/path]`; leakdex appends
    /// `/range/PREFIX`, and a `/range` at the end of `url` is taken as already there).
    pub fn new(url: &str, options: RemoteOptions) -> Result<RemoteChecker> {
        let base = base_url(url)?;
        let shown = without_user_info(&base);
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = &options.ca_certs_pem {
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Error::Invalid(format!(
                            "--ca-cert: not a readable PEM file: {e}"
                        )))
                    }
                }
            }
            if certs.is_empty() {
                return Err(Error::Invalid(
                    "--ca-cert: the file holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)"
                        .into(),
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let connections = options.connections.max(1);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .user_agent(concat!("leakdex/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(connections)
            .max_idle_connections_per_host(connections)
            .max_redirects(5)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(RemoteChecker {
            agent,
            base,
            shown,
            options,
            requests: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
        })
    }

    /// The options it was made with.
    pub fn options(&self) -> &RemoteOptions {
        &self.options
    }

    /// The mode it asks for.
    pub fn mode(&self) -> RangeMode {
        self.options.mode
    }

    /// The URL of a range request as messages show it: `*****` for the prefix, no user name
    /// or password.
    pub fn shown_url(&self) -> String {
        format!("{}/range/*****{}", self.shown, self.options.mode.query())
    }

    /// Requests made so far (one per distinct prefix of each call).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Tries made so far, retries included.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Answers each hash (of the mode's kind) as [`RemoteChecker::counts`] does, as
    /// [`Presence::Found`] with its count or [`Presence::Absent`], appended to `out` in order.
    pub fn probe_many(&self, hashes: &[HashBytes], out: &mut Vec<Presence>) -> Result<()> {
        let counts = self.counts(hashes)?;
        out.extend(counts.into_iter().map(|c| match c {
            0 => Presence::Absent,
            c => Presence::Found(c),
        }));
        Ok(())
    }

    /// The count of each hash (of the mode's kind) at the server, 0 when absent, in order:
    /// one request per distinct prefix, several at once (see the module's documentation).
    /// On an error nothing is answered; the error names the request by its number, never its
    /// prefix.
    pub fn counts(&self, hashes: &[HashBytes]) -> Result<Vec<Count>> {
        let kind = self.options.mode.kind();
        // The hashes' positions in prefix order, and the run of each prefix in it.
        let mut order: Vec<u32> = (0..hashes.len() as u32).collect();
        order.sort_unstable_by_key(|&i| (prefix_of(&hashes[i as usize]), i));
        let mut groups: Vec<(u32, Range<usize>)> = Vec::new();
        for (at, &i) in order.iter().enumerate() {
            let prefix = prefix_of(&hashes[i as usize]);
            match groups.last_mut() {
                Some((p, run)) if *p == prefix => run.end = at + 1,
                _ => groups.push((prefix, at..at + 1)),
            }
        }
        let first = self
            .requests
            .fetch_add(groups.len() as u64, Ordering::Relaxed)
            + 1;
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        // Each worker takes the next prefix until none is left or one has failed, and keeps
        // the counts it found; the first failure (by request number) is the one reported.
        let work = || -> std::result::Result<Vec<(u32, Count)>, (usize, Error)> {
            let mut found = Vec::new();
            let mut wanted: Vec<([u8; 40], u32)> = Vec::new();
            loop {
                let g = next.fetch_add(1, Ordering::Relaxed);
                if g >= groups.len() || stop.load(Ordering::Relaxed) {
                    return Ok(found);
                }
                let (prefix, run) = &groups[g];
                wanted.clear();
                wanted.extend(order[run.clone()].iter().map(|&i| {
                    let mut hex = Vec::with_capacity(40);
                    encode_hex_into(&hashes[i as usize][..kind.byte_len()], &mut hex);
                    let mut suffix = [0u8; 40];
                    suffix[..kind.suffix_hex_len()].copy_from_slice(&hex[5..]);
                    (suffix, i)
                }));
                wanted.sort_unstable();
                let request = first + g as u64;
                let answered = match self.fetch(*prefix, request, &stop) {
                    // Another request failed while this one waited to try again: that failure
                    // is the one to report.
                    Ok(None) => return Ok(found),
                    Ok(Some(body)) => match_body(kind, &body, &wanted, &mut found)
                        .map_err(|why| self.error(request, &format!("is not a range body: {why}"))),
                    Err(e) => Err(e),
                };
                if let Err(e) = answered {
                    stop.store(true, Ordering::Relaxed);
                    return Err((g, e));
                }
            }
        };
        let threads = self.options.connections.max(1).min(groups.len());
        let results: Vec<_> = if threads <= 1 {
            vec![work()]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a range worker panicked"))
                    .collect()
            })
        };
        let mut counts = vec![0; hashes.len()];
        let mut failure: Option<(usize, Error)> = None;
        for result in results {
            match result {
                Ok(found) => {
                    for (i, c) in found {
                        counts[i as usize] = c;
                    }
                }
                Err((g, e)) => {
                    if failure.as_ref().is_none_or(|(f, _)| g < *f) {
                        failure = Some((g, e));
                    }
                }
            }
        }
        match failure {
            Some((_, e)) => Err(e),
            None => Ok(counts),
        }
    }

    /// An error about request `request`.
    fn error(&self, request: u64, what: &str) -> Error {
        Error::Remote(format!(
            "the answer to range request {request} (GET {}) {what}",
            self.shown_url()
        ))
    }

    /// The body of the range of `prefix`, with retries; `None` when `stop` was set while it
    /// waited to try again.
    fn fetch(&self, prefix: u32, request: u64, stop: &AtomicBool) -> Result<Option<Vec<u8>>> {
        let url = format!(
            "{}/range/{prefix:05X}{}",
            self.base,
            self.options.mode.query()
        );
        let attempts = self.options.attempts.max(1);
        let mut attempt = 1u32;
        loop {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let failure = match self.try_once(&url) {
                Ok(body) => return Ok(Some(body)),
                Err(f) => f,
            };
            let (why, after) = match failure {
                Failure::Final(why) => return Err(self.error(request, &redact(&why, prefix))),
                Failure::Retry { why, after } => (redact(&why, prefix), after),
            };
            let tries = if attempt == 1 {
                "1 try".to_string()
            } else {
                format!("{attempt} tries")
            };
            if attempt >= attempts {
                return Err(self.error(request, &format!("did not come after {tries}: {why}")));
            }
            let wait = match after {
                Some(after) if after > self.options.max_retry_after => {
                    return Err(self.error(
                        request,
                        &format!(
                            "did not come: {why}, and the server asks to wait {} s before \
                             trying again, longer than leakdex waits ({} s)",
                            after.as_secs(),
                            self.options.max_retry_after.as_secs()
                        ),
                    ))
                }
                Some(after) => after,
                None => self.backoff(attempt),
            };
            // Wait in short steps, so that a failure elsewhere ends the wait.
            let until = std::time::Instant::now() + wait;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
            attempt += 1;
        }
    }

    /// The wait after try `attempt` failed: `first_backoff` doubled for each earlier retry, at
    /// most `max_backoff`, times a random factor from 0.5 to 1 (so that many clients turned
    /// away at once do not come back at once).
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .options
            .first_backoff
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.options.max_backoff);
        base.mul_f64(rand::Rng::random_range(&mut rand::rng(), 0.5..=1.0))
    }

    /// One try of one request.
    fn try_once(&self, url: &str) -> std::result::Result<Vec<u8>, Failure> {
        let mut request = self.agent.get(url).header("Accept-Encoding", "gzip");
        if self.options.padding {
            request = request.header("Add-Padding", "true");
        }
        let mut response = request.call().map_err(classify)?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
        };
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        let encoding = header("content-encoding");
        let raw = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => Failure::Final(format!(
                    "is larger than {} MiB, which no range body is",
                    MAX_BODY_BYTES >> 20
                )),
                e => classify(e),
            })?;
        let code = status.as_u16();
        let reason = status.canonical_reason().unwrap_or("");
        if code == 429 || (500..600).contains(&code) {
            return Err(Failure::Retry {
                why: format!("HTTP {code} {reason}"),
                after: retry_after,
            });
        }
        if code != 200 {
            let said = snippet(&raw, encoding.as_deref());
            return Err(Failure::Final(format!("is HTTP {code} {reason}{said}")));
        }
        decode(raw, encoding.as_deref()).map_err(Failure::Final)
    }
}

/// The base URL of `url`: checked, without a trailing `/` or `/range`.
fn base_url(url: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "--remote `{}`: {why} (give the server's base URL, such as \
             https://api.pwnedpasswords.com or http://127.0.0.1:8080)",
            without_user_info(url)
        ))
    };
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(bad("not an http:// or https:// URL"));
    }
    if url.contains(['?', '#']) {
        return Err(bad("a base URL holds no `?` or `#`"));
    }
    let mut base = url.trim_end_matches('/');
    if let Some(stripped) = base.strip_suffix("/range") {
        base = stripped.trim_end_matches('/');
    }
    let probe = format!("{base}/range/00000");
    match probe.parse::<ureq::http::Uri>() {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(base.to_string()),
        Ok(_) => Err(bad("no host")),
        Err(_) => Err(bad("not a valid URL")),
    }
}

/// `url` without a `user:password@` before its host.
fn without_user_info(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// How a ureq error is met: a timeout or a failed connection is tried again.
fn classify(e: ureq::Error) -> Failure {
    match e {
        ureq::Error::Timeout(t) => Failure::Retry {
            why: format!("no answer in time ({t})"),
            after: None,
        },
        // A TLS failure (a certificate not trusted, say) comes as invalid data: not worth
        // another try.
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            let hint = if e.to_string().contains("UnknownIssuer") {
                " (no trusted root signed the server's certificate: give a private CA with \
                 --ca-cert)"
            } else {
                ""
            };
            Failure::Final(format!("failed: TLS: {e}{hint}"))
        }
        ureq::Error::Io(e) => Failure::Retry {
            why: format!("connection: {e}"),
            after: None,
        },
        ureq::Error::ConnectionFailed => Failure::Retry {
            why: "the connection failed".into(),
            after: None,
        },
        ureq::Error::HostNotFound => Failure::Retry {
            why: "the host name was not found".into(),
            after: None,
        },
        ureq::Error::Protocol(e) => Failure::Final(format!("is not HTTP: {e}")),
        ureq::Error::TooManyRedirects => Failure::Final("is too many redirects".into()),
        e => Failure::Final(format!("failed: {e}")),
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The body as sent, unpacked when the server says it is gzip.
fn decode(raw: Vec<u8>, encoding: Option<&str>) -> std::result::Result<Vec<u8>, String> {
    match encoding.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("gzip") | Some("x-gzip") => {
            let mut out = Vec::with_capacity(raw.len() * 3);
            flate2::read::MultiGzDecoder::new(&raw[..])
                .take(MAX_BODY_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("says gzip, but its body is not gzip ({e})"))?;
            if out.len() as u64 > MAX_BODY_BYTES {
                return Err(format!(
                    "unpacks to more than {} MiB, which no range body is",
                    MAX_BODY_BYTES >> 20
                ));
            }
            Ok(out)
        }
        Some(other) => Err(format!(
            "is in an encoding that was not asked for (Content-Encoding: {})",
            printable(other.as_bytes(), 40)
        )),
    }
}

/// The start of an error body, for a message: printable ASCII of its first line.
fn snippet(raw: &[u8], encoding: Option<&str>) -> String {
    let body = match decode(raw.to_vec(), encoding) {
        Ok(b) => b,
        Err(_) => return String::new(),
    };
    let first = body
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        .find(|l| !l.is_empty());
    match first {
        Some(line) => format!(": `{}`", printable(line, 120)),
        None => String::new(),
    }
}

/// Printable ASCII of `bytes`, at most `max` characters (a server's text may hold anything).
fn printable(bytes: &[u8], max: usize) -> String {
    let mut out: String = bytes
        .iter()
        .take(max)
        .map(|&b| {
            if (0x20..0x7F).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect();
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}

/// `text` with the 5-hex `prefix` (in either case) replaced by `*****`: a server's message or
/// an error of the HTTP client may repeat the URL.
fn redact(text: &str, prefix: u32) -> String {
    let upper = format!("{prefix:05X}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        match rest.char_indices().find(|&(i, _)| {
            rest[i..]
                .get(..5)
                .is_some_and(|w| w.eq_ignore_ascii_case(&upper))
        }) {
            Some((i, _)) => {
                out.push_str(&rest[..i]);
                out.push_str("*****");
                rest = &rest[i + 5..];
            }
            None => {
                out.push_str(rest);
                break;
            }
        }
    }
    out
}

/// Reads a range body and records, in `found`, the count of each wanted suffix it lists with a
/// count above 0. `wanted` holds (suffix hex in upper case, zero-padded to 40 bytes; the
/// hash's position), sorted. The error says what is wrong with which line, never repeating it.
pub(crate) fn match_body(
    kind: HashKind,
    body: &[u8],
    wanted: &[([u8; 40], u32)],
    found: &mut Vec<(u32, Count)>,
) -> std::result::Result<(), String> {
    let body = body.strip_prefix(crate::dump::BOM).unwrap_or(body);
    if body.trim_ascii_start().first() == Some(&b'<') {
        return Err("it is a markup (HTML or XML) page".into());
    }
    let len = kind.suffix_hex_len();
    let mut suffix = [0u8; 40];
    let mut n = 0usize;
    let mut rest = body;
    while !rest.is_empty() {
        n += 1;
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.len() <= len || line[len] != b':' {
            return Err(diagnose(kind, line, n));
        }
        // The suffix in upper case, checked in the same pass (a loop without branches or
        // tables, which the compiler turns into vector instructions): a byte from `a` up is
        // taken 32 down, and is then a hex digit only if it was one of `a` to `f`.
        let mut ok = true;
        for (s, &h) in suffix.iter_mut().zip(&line[..len]) {
            let up = if h >= b'a' { h - 32 } else { h };
            ok &= up.is_ascii_digit() | (b'A'..=b'F').contains(&up);
            *s = up;
        }
        if !ok {
            return Err(format!(
                "line {n} has a suffix with a character that is not a hex digit"
            ));
        }
        let digits = &line[len + 1..];
        if digits.is_empty() || digits.len() > 20 {
            return Err(format!("line {n} has a count that is not a whole number"));
        }
        let mut count: Count = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return Err(format!("line {n} has a count that is not a whole number"));
            }
            count = count
                .checked_mul(10)
                .and_then(|c| c.checked_add((d - b'0') as Count))
                .ok_or_else(|| format!("line {n} has a count too large for 64 bits"))?;
        }
        if count == 0 {
            // Padding.
            continue;
        }
        let from = wanted.partition_point(|(w, _)| w < &suffix);
        for (_, i) in wanted[from..].iter().take_while(|(w, _)| *w == suffix) {
            found.push((*i, count));
        }
    }
    Ok(())
}

/// What is wrong with a line whose suffix is not followed by a `:`.
fn diagnose(kind: HashKind, line: &[u8], n: usize) -> String {
    let len = kind.suffix_hex_len();
    let Some(colon) = memchr::memchr(b':', line) else {
        return format!("line {n} is not SUFFIX:COUNT (it has no `:`)");
    };
    let hint = match HashKind::from_hex_len(colon + 5) {
        Some(other) if other != kind => format!(
            " (the length of {} suffix: does the server know this mode?)",
            with_article(other)
        ),
        _ => String::new(),
    };
    format!(
        "line {n} has a suffix of {colon} characters where {} range has {len}{hint}",
        with_article(kind)
    )
}

/// "a SHA-1", "an NTLM".
fn with_article(kind: HashKind) -> &'static str {
    match kind {
        HashKind::Sha1 => "a SHA-1",
        HashKind::Ntlm => "an NTLM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(kind: HashKind, hashes: &[&str]) -> Vec<([u8; 40], u32)> {
        let mut w: Vec<([u8; 40], u32)> = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let mut s = [0u8; 40];
                s[..kind.suffix_hex_len()].copy_from_slice(&h.as_bytes()[5..]);
                (s, i as u32)
            })
            .collect();
        w.sort_unstable();
        w
    }

    #[test]
    fn bodies_in_the_official_form_match_and_padding_is_ignored() {
        let kind = HashKind::Sha1;
        let w = wanted(
            kind,
            &[
                "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8",
                "5BAA6000000000000000000000000000000000FF",
                "5BAA6111111111111111111111111111111111AA",
                "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8",
            ],
        );
        // CRLF, no trailing newline, a padding row equal to a wanted suffix (count 0), a
        // lower-case row, padding appended out of order.
        let body = b"\xEF\xBB\xBF000000000000000000000000000000000FF:0\r\n\
            1e4c9b93f3f0682250b6cf8331b7ee68fd8:9545824\r\n\
            479DCEE3B4102B7DA38F570282E7A36A023:1\r\n\
            0123456789ABCDEF0123456789ABCDEF012:0";
        let mut found = Vec::new();
        match_body(kind, body, &w, &mut found).unwrap();
        found.sort();
        assert_eq!(found, [(0, 9_545_824), (3, 9_545_824)]);
        // LF and a trailing newline are read too; an empty body lists nothing.
        let mut found = Vec::new();
        match_body(
            kind,
            b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:2\n",
            &w,
            &mut found,
        )
        .unwrap();
        assert_eq!(found.len(), 2);
        let mut found = Vec::new();
        match_body(kind, b"", &w, &mut found).unwrap();
        assert!(found.is_empty());
    }

    #[test]
    fn garbage_is_refused_without_repeating_it() {
        let w = wanted(
            HashKind::Sha1,
            &["5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"],
        );
        let mut found = Vec::new();
        for (body, expect) in [
            (&b"<!DOCTYPE html><html>Not found</html>"[..], "markup"),
            (
                b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:1\r\nhello",
                "line 2 is not SUFFIX:COUNT",
            ),
            (
                b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:x",
                "line 1 has a count",
            ),
            (
                b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:",
                "line 1 has a count",
            ),
            (
                b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:99999999999999999999",
                "too large",
            ),
            (b"1E4C9B93F3F0682250B6CF8331B7EE68FDZ:1", "not a hex digit"),
            (
                b"7EAEE8FB117AD06BDD830B7586C:3",
                "27 characters where a SHA-1 range has 35 (the length of an NTLM suffix",
            ),
        ] {
            let err = match_body(HashKind::Sha1, body, &w, &mut found).unwrap_err();
            assert!(err.contains(expect), "{err}");
            assert!(!err.contains("1E4C9B"), "{err}");
        }
    }

    #[test]
    fn urls_modes_and_redaction() {
        assert_eq!(
            base_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("https://api.pwnedpasswords.com/range/").unwrap(),
            "https://api.pwnedpasswords.com"
        );
        assert_eq!(
            base_url("https://m.example/pw").unwrap(),
            "https://m.example/pw"
        );
        for bad in [
            "ftp://x",
            "api.pwnedpasswords.com",
            "http://x/?a=b",
            "http://",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            without_user_info("https://me:secret@m.example/x"),
            "https://m.example/x"
        );
        assert!(!base_url("ftp://me:secret@x")
            .unwrap_err()
            .to_string()
            .contains("secret"));
        assert_eq!(
            redact("GET /range/5baa6 and 5BAA6x, 5BAA", 0x5BAA6),
            "GET /range/***** and *****x, 5BAA"
        );
        assert_eq!(redact("é5BAA6é", 0x5BAA6), "é*****é");
        for m in RangeMode::ALL {
            assert_eq!(m.name().parse::<RangeMode>(), Ok(m));
            assert_eq!(RangeMode::of(m.kind(), m.key()), Some(m));
        }
        assert_eq!(RangeMode::Ntlm.query(), "?mode=ntlm");
        assert_eq!(RangeMode::Sha1.query(), "");
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn gzip_bodies_unpack_and_others_are_refused() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"ABC:1").unwrap();
        let packed = e.finish().unwrap();
        assert_eq!(decode(packed, Some("gzip")).unwrap(), b"ABC:1");
        assert_eq!(decode(b"ABC:1".to_vec(), None).unwrap(), b"ABC:1");
        assert!(decode(b"ABC:1".to_vec(), Some("gzip"))
            .unwrap_err()
            .contains("not gzip"));
        assert!(decode(b"x".to_vec(), Some("br"))
            .unwrap_err()
            .contains("br"));
    }
}
