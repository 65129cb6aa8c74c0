//! `leakdex serve`: a range server compatible with the Pwned Passwords API.
//!
//! Existing clients point their base URL at it and check passwords without a hash prefix
//! leaving the organisation's network. Responses follow `protocol.md` byte for byte:
//! `GET`/`HEAD /range/{prefix}` with `?mode=ntlm` for NTLM (and `?mode=login`, `?mode=pair`
//! for indexes of logins and credential pairs, answered alike), upper-case sorted `SUFFIX:COUNT`
//! rows joined by CRLF without a trailing newline, the API's 400 texts, CORS, `ETag`/`304`,
//! `Last-Modified`, gzip by `Accept-Encoding`, and `Add-Padding: true`.
//!
//! The indexes are shared through an [`ArcSwap`]: SIGHUP (see [`Server::reload`]) opens the
//! files again and swaps them in while requests in flight finish on the old mapping, so an
//! index replaced by an atomic rename is picked up without dropping a request.

use crate::error::{Error, Result};
use crate::hash::{parse_prefix, HashKind};
use crate::index::Index;
use crate::key::KeyType;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rand::Rng as _;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Index files: at most one SHA-1 and one NTLM.
    pub indexes: Vec<PathBuf>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `Cache-Control: public, max-age=` seconds.
    pub max_age: u64,
    /// Longest time a client may take to send a request's head, and to stay idle between
    /// requests on a kept-alive connection. A deadline for the whole head, not per byte: a
    /// client that trickles its head a byte at a time is closed when it runs out.
    pub header_timeout: Duration,
    /// Longest time a response may wait for the client to read any of it. A client that asks
    /// and never reads would otherwise hold its connection open for ever (hyper reads no
    /// further request while a response waits to be written).
    pub send_timeout: Duration,
    /// Most connections served at once. At the cap the server stops accepting: new
    /// connections wait in the kernel's listen queue (whose length the kernel bounds) until
    /// one of those served closes.
    pub max_connections: usize,
    /// Longest wait for requests in flight on shutdown.
    pub shutdown_grace: Duration,
    /// gzip level, 0 to 9.
    pub gzip_level: u32,
    /// Index files up to this many bytes are read into memory (at start and on each reload)
    /// rather than mapped, so that a file truncated or rewritten in place cannot disturb the
    /// server; larger ones are mapped (replace them by rename only: a mapped file that shrinks
    /// makes the server die by SIGBUS). Default: a quarter of the machine's memory.
    pub copy_limit: u64,
    /// Whether `GET /` answers the page for people (see [`crate::web`]); without it, `/`
    /// answers 404.
    pub page: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            indexes: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_age: 2_678_400,
            header_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Duration::from_secs(10),
            gzip_level: 1,
            copy_limit: crate::sys::total_memory().unwrap_or(0) / 4,
            page: true,
        }
    }
}

/// The address to listen on from what a user types: `HOST:PORT` with an IP address
/// (`0.0.0.0:8080`, `[::1]:8080`) or a host name resolved now (`localhost:8080`: its first
/// address), or a bare `PORT`, meaning `127.0.0.1:PORT`.
pub fn resolve_listen(text: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let bad = |why: String| {
        Error::Invalid(format!(
            "--listen `{text}`: {why} (give HOST:PORT, such as 127.0.0.1:8080, 0.0.0.0:8080 or \
             localhost:8080, or a bare PORT for 127.0.0.1)"
        ))
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let port: u16 = text
            .parse()
            .map_err(|_| bad("a port is a number from 0 to 65535".into()))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !text.contains(':') {
        return Err(bad("no port".into()));
    }
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve it: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| bad("the host name has no address".into()))
}

/// Largest request head (request line and headers) accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The cap on connections served at once where the descriptor limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Descriptors left for other uses than connections (the listener, index files opened on
/// reload, standard streams) when the cap is derived from the descriptor limit.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The default cap on connections under a limit of `fd_limit` open descriptors: 10,000, or
/// as many as the limit leaves room for after [`RESERVED_DESCRIPTORS`], at least 1.
pub fn default_max_connections(fd_limit: Option<u64>) -> usize {
    let room = fd_limit.map_or(u64::MAX, |l| l.saturating_sub(RESERVED_DESCRIPTORS));
    usize::try_from(room)
        .unwrap_or(usize::MAX)
        .clamp(1, DEFAULT_MAX_CONNECTIONS)
}

/// An open index with what its responses need.
struct Served {
    index: Index,
    /// Unique to the index's content: its header and section-table checksums.
    tag: String,
    last_modified: HeaderValue,
    modified: std::time::SystemTime,
}

/// What a range request asks for, by its `mode=` query argument: SHA-1 passwords (no mode, or
/// any other), NTLM passwords, logins or login-and-password pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Sha1,
    Ntlm,
    Login,
    Pair,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Sha1, Mode::Ntlm, Mode::Login, Mode::Pair];

    /// The mode an index answers.
    fn of(index: &Index) -> Mode {
        match (index.key(), index.kind()) {
            (KeyType::Password, HashKind::Sha1) => Mode::Sha1,
            (KeyType::Password, HashKind::Ntlm) => Mode::Ntlm,
            (KeyType::Login, _) => Mode::Login,
            (KeyType::Pair, _) => Mode::Pair,
        }
    }

    /// The mode of a request's query string.
    fn of_query(query: Option<&str>) -> Mode {
        // The first `mode=` that names a mode; any other value means SHA-1, as before.
        query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == "mode")
            .find_map(|(_, v)| match v {
                v if v.eq_ignore_ascii_case("ntlm") => Some(Mode::Ntlm),
                v if v.eq_ignore_ascii_case("login") => Some(Mode::Login),
                v if v.eq_ignore_ascii_case("pair") => Some(Mode::Pair),
                _ => None,
            })
            .unwrap_or(Mode::Sha1)
    }

    /// The name in ETags and messages.
    fn name(self) -> &'static str {
        match self {
            Mode::Sha1 => "sha1",
            Mode::Ntlm => "ntlm",
            Mode::Login => "login",
            Mode::Pair => "pair",
        }
    }

    /// What its index holds, for messages.
    fn describe(self) -> &'static str {
        match self {
            Mode::Sha1 => "SHA-1",
            Mode::Ntlm => "NTLM",
            Mode::Login => "login",
            Mode::Pair => "pair",
        }
    }
}

/// The indexes being served: per [`Mode`], one index or the partitions of one, by prefix.
struct Indexes {
    by_mode: [Vec<Served>; 4],
}

impl Indexes {
    /// The indexes of a mode, if it has any.
    fn get(&self, mode: Mode) -> Option<&[Served]> {
        Some(self.by_mode[mode as usize].as_slice()).filter(|s| !s.is_empty())
    }
}

/// The index of `parts` (sorted by partition) that holds `prefix`.
fn part_for(parts: &[Served], prefix: u32) -> Option<&Served> {
    let i = parts.partition_point(|p| p.index.partition().last() < prefix);
    parts
        .get(i)
        .filter(|p| p.index.partition().contains(prefix))
}

fn load(paths: &[PathBuf], copy_limit: u64) -> Result<Indexes> {
    let mut indexes = Indexes {
        by_mode: [Vec::new(), Vec::new(), Vec::new(), Vec::new()],
    };
    for path in paths {
        let size = std::fs::metadata(path)
            .map_err(|e| Error::io(path, "cannot open", e))?
            .len();
        let index = if size <= copy_limit {
            Index::open_in_memory(path)?
        } else {
            Index::open(path)?
        };
        index.require_full_store("serving ranges")?;
        // A server runs for long: let what it reads from disk come in 2 MiB pages.
        index.prefer_huge_pages();
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        let tag = index.checksum();
        let served = Served {
            tag,
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(modified))
                .expect("an HTTP date is a valid header"),
            modified,
            index,
        };
        let mode = Mode::of(&served.index);
        let slot = &mut indexes.by_mode[mode as usize];
        if let Some(whole) = slot
            .iter()
            .chain([&served])
            .find(|s| s.index.partition().is_whole())
            .filter(|_| !slot.is_empty())
        {
            return Err(Error::Invalid(format!(
                "{}: a second {} index beside {}, which holds every prefix; serve at most one \
                 index of each (SHA-1 and NTLM passwords, logins, pairs), or the partitions of \
                 one (build --prefixes)",
                path.display(),
                mode.describe(),
                whole.index.path().display()
            )));
        }
        slot.push(served);
    }
    for slot in &mut indexes.by_mode {
        slot.sort_by_key(|s| s.index.partition());
        if !slot.is_empty() {
            crate::partition::check_parts(&slot.iter().map(|s| &s.index).collect::<Vec<_>>())?;
        }
    }
    if indexes.by_mode.iter().all(Vec::is_empty) {
        return Err(Error::Invalid("no index to serve".into()));
    }
    Ok(indexes)
}

/// Routes counted in the metrics.
#[derive(Clone, Copy)]
enum Route {
    Range,
    Health,
    Metrics,
    Other,
    Page,
    About,
}

const ROUTES: [&str; 6] = ["range", "health", "metrics", "other", "page", "about"];
const STATUSES: [u16; 8] = [200, 204, 304, 400, 404, 405, 500, 0];
/// Upper bounds of the latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01, 0.1, 1.0,
];

/// Counters for `/metrics`, updated without locks.
struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
    latency: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
    bytes_sent: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    connections_open: AtomicU64,
    connections_accepted: AtomicU64,
    /// Times the accept loop found every connection slot taken and stopped accepting.
    connection_limit_waits: AtomicU64,
    /// Connections closed because their request head did not arrive in time.
    head_timeouts: AtomicU64,
    /// Connections closed because the client read nothing of a response in time.
    send_timeouts: AtomicU64,
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            requests: Default::default(),
            latency: Default::default(),
            latency_count: AtomicU64::new(0),
            latency_sum_ns: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connection_limit_waits: AtomicU64::new(0),
            head_timeouts: AtomicU64::new(0),
            send_timeouts: AtomicU64::new(0),
        }
    }

    fn observe(&self, route: Route, status: StatusCode, elapsed: Duration, bytes: u64) {
        let s = STATUSES
            .iter()
            .position(|&c| c == status.as_u16())
            .unwrap_or(STATUSES.len() - 1);
        self.requests[route as usize][s].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(b) = LATENCY_BUCKETS.iter().position(|&le| secs <= le) {
            self.latency[b].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    fn render(&self, max_connections: usize) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP leakdex_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE leakdex_http_requests_total counter\n");
        for (r, route) in ROUTES.iter().enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                let n = self.requests[r][s].load(Ordering::Relaxed);
                if n > 0 {
                    let status = if *status == 0 {
                        "other".to_string()
                    } else {
                        status.to_string()
                    };
                    out.push_str(&format!(
                        "leakdex_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n"
                    ));
                }
            }
        }
        out.push_str(
            "# HELP leakdex_http_request_duration_seconds Time to answer a request.\n\
             # TYPE leakdex_http_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            out.push_str(&format!(
                "leakdex_http_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}\n"
            ));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        out.push_str(&format!(
            "leakdex_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             leakdex_http_request_duration_seconds_sum {}\n\
             leakdex_http_request_duration_seconds_count {count}\n",
            self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        ));
        out.push_str(&format!(
            "# HELP leakdex_http_response_body_bytes_total Body bytes sent.\n\
             # TYPE leakdex_http_response_body_bytes_total counter\n\
             leakdex_http_response_body_bytes_total {}\n\
             # HELP leakdex_index_reloads_total Index reloads by outcome.\n\
             # TYPE leakdex_index_reloads_total counter\n\
             leakdex_index_reloads_total{{outcome=\"ok\"}} {}\n\
             leakdex_index_reloads_total{{outcome=\"failed\"}} {}\n",
            self.bytes_sent.load(Ordering::Relaxed),
            self.reloads.load(Ordering::Relaxed),
            self.reload_failures.load(Ordering::Relaxed),
        ));
        out.push_str(&format!(
            "# HELP leakdex_http_connections_open Connections being served.\n\
             # TYPE leakdex_http_connections_open gauge\n\
             leakdex_http_connections_open {}\n\
             # HELP leakdex_http_connections_max Most connections served at once \
             (--max-connections).\n\
             # TYPE leakdex_http_connections_max gauge\n\
             leakdex_http_connections_max {max_connections}\n\
             # HELP leakdex_http_connections_accepted_total Connections accepted.\n\
             # TYPE leakdex_http_connections_accepted_total counter\n\
             leakdex_http_connections_accepted_total {}\n\
             # HELP leakdex_http_connection_limit_waits_total Times every connection slot was \
             taken, so that new connections waited in the listen queue.\n\
             # TYPE leakdex_http_connection_limit_waits_total counter\n\
             leakdex_http_connection_limit_waits_total {}\n\
             # HELP leakdex_http_connection_timeouts_total Connections closed for a request \
             head not received in time (head) or a response not read in time (send).\n\
             # TYPE leakdex_http_connection_timeouts_total counter\n\
             leakdex_http_connection_timeouts_total{{phase=\"head\"}} {}\n\
             leakdex_http_connection_timeouts_total{{phase=\"send\"}} {}\n",
            self.connections_open.load(Ordering::Relaxed),
            self.connections_accepted.load(Ordering::Relaxed),
            self.connection_limit_waits.load(Ordering::Relaxed),
            self.head_timeouts.load(Ordering::Relaxed),
            self.send_timeouts.load(Ordering::Relaxed),
        ));
        out
    }
}

/// Something the server wants its operator to know.
#[derive(Debug)]
pub enum ServerEvent {
    /// Listening and ready for requests.
    Listening(SocketAddr),
    /// The indexes were opened again after SIGHUP.
    Reloaded,
    /// Opening the indexes again failed; the old ones stay in service.
    ReloadFailed(Error),
    /// Shutting down: no new connections, waiting for requests in flight.
    ShuttingDown,
    /// A connection ended with an error (a client's fault, usually).
    ConnectionError(String),
    /// Every connection slot is taken (the number is `max_connections`): new connections
    /// wait in the listen queue until one closes. Sent at most once a minute.
    ConnectionLimit(usize),
}

/// A range server over open indexes.
pub struct Server {
    config: ServerConfig,
    indexes: ArcSwap<Indexes>,
    metrics: Metrics,
    ready: AtomicBool,
    cache_control: HeaderValue,
    /// Padding for gzip bodies, by suffix length (SHA-1, NTLM), made at the first need.
    padding: [std::sync::OnceLock<crate::gzip::PaddingPool>; 2],
    /// One permit per connection that may be served at once.
    connection_slots: Arc<Semaphore>,
}

impl Server {
    /// Opens the indexes; fails when one cannot be opened or two share a kind.
    pub fn new(config: ServerConfig) -> Result<Server> {
        let indexes = load(&config.indexes, config.copy_limit)?;
        let cache_control = HeaderValue::from_str(&format!("public, max-age={}", config.max_age))
            .expect("digits are a valid header");
        let slots = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        let kinds: Vec<HashKind> = indexes
            .by_mode
            .iter()
            .flatten()
            .map(|s| s.index.kind())
            .collect();
        let server = Server {
            config,
            indexes: ArcSwap::from_pointee(indexes),
            metrics: Metrics::new(),
            ready: AtomicBool::new(false),
            cache_control,
            padding: Default::default(),
            connection_slots: Arc::new(Semaphore::new(slots)),
        };
        // The padding pools of the kinds served are made now, not by the first padded
        // requests, which would all wait for them (the README's design notes say how long
        // they take).
        for kind in kinds {
            server.padding_pool(kind);
        }
        Ok(server)
    }

    /// The padding pool for gzip bodies of `kind`'s suffixes (made at the first call).
    fn padding_pool(&self, kind: HashKind) -> &crate::gzip::PaddingPool {
        self.padding[(kind == HashKind::Ntlm) as usize].get_or_init(|| {
            crate::gzip::PaddingPool::new(
                kind.suffix_hex_len(),
                self.config.gzip_level,
                &mut rand::rng(),
            )
        })
    }

    /// Opens the index files again and swaps them in; on failure the old ones stay.
    pub fn reload(&self) -> Result<()> {
        match load(&self.config.indexes, self.config.copy_limit) {
            Ok(indexes) => {
                self.indexes.store(Arc::new(indexes));
                self.metrics.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.metrics.reload_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Answers one request. Never panics on a bad request; every outcome is a response.
    pub fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let (route, response) = self.route(req);
        let bytes = response.body().size_hint_exact();
        let status = response.status();
        self.metrics.observe(
            route,
            status,
            started.elapsed(),
            if req.method() == Method::HEAD {
                0
            } else {
                bytes
            },
        );
        response
    }

    fn route<B>(&self, req: &Request<B>) -> (Route, Response<Full<Bytes>>) {
        let path = req.uri().path();
        if announces_body(req.headers()) {
            let route = match path {
                p if p.starts_with("/range/") => Route::Range,
                "/health" => Route::Health,
                "/metrics" => Route::Metrics,
                "/" if self.config.page => Route::Page,
                "/about" => Route::About,
                _ => Route::Other,
            };
            return (route, body_refused());
        }
        if let Some(prefix) = path.strip_prefix("/range/") {
            return (Route::Range, self.range(req, prefix));
        }
        let method_ok = matches!(*req.method(), Method::GET | Method::HEAD);
        match path {
            "/health" => {
                if !method_ok {
                    return (Route::Health, method_not_allowed(req.method()));
                }
                if self.ready.load(Ordering::Acquire) {
                    (Route::Health, text(StatusCode::OK, "ok\n"))
                } else {
                    (
                        Route::Health,
                        text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
                    )
                }
            }
            "/metrics" => {
                if !method_ok {
                    return (Route::Metrics, method_not_allowed(req.method()));
                }
                let mut r = text(
                    StatusCode::OK,
                    &self.metrics.render(self.config.max_connections),
                );
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                (Route::Metrics, r)
            }
            "/" if self.config.page => {
                if !method_ok {
                    return (Route::Page, method_not_allowed(req.method()));
                }
                (Route::Page, page())
            }
            "/about" => {
                if !method_ok {
                    return (Route::About, method_not_allowed(req.method()));
                }
                (Route::About, self.about())
            }
            _ => (
                Route::Other,
                text(StatusCode::NOT_FOUND, "Invalid API query"),
            ),
        }
    }

    /// What the server holds, for the page: per mode, the key and hash kind, the hashes, the
    /// prefixes and the newest index file's date. No path, file name or source.
    fn about(&self) -> Response<Full<Bytes>> {
        let indexes = self.indexes.load();
        let list: Vec<serde_json::Value> = Mode::ALL
            .into_iter()
            .filter_map(|mode| Some((mode, indexes.get(mode)?)))
            .map(|(mode, parts)| {
                let first = &parts[0].index;
                let prefixes: Vec<String> = parts
                    .iter()
                    .map(|p| p.index.partition().to_string())
                    .collect();
                let built = parts
                    .iter()
                    .map(|p| p.modified)
                    .max()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                serde_json::json!({
                    "mode": mode.name(),
                    "key": first.key().name(),
                    "kind": first.kind().name(),
                    "hashes": parts.iter().map(|p| p.index.hash_count()).sum::<u64>(),
                    "prefixes": prefixes.join(", "),
                    "built": crate::web::utc_timestamp(built),
                })
            })
            .collect();
        let body = serde_json::json!({ "indexes": list }).to_string();
        let mut r = text(StatusCode::OK, &body);
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        r
    }

    fn range<B>(&self, req: &Request<B>, prefix_text: &str) -> Response<Full<Bytes>> {
        match *req.method() {
            Method::GET | Method::HEAD => {}
            Method::OPTIONS => return preflight(),
            ref other => return method_not_allowed(other),
        }
        let prefix = match parse_prefix(prefix_text.as_bytes()) {
            Ok(p) => p,
            Err(e) => return with_cors(text(StatusCode::BAD_REQUEST, e.message())),
        };
        let mode = Mode::of_query(req.uri().query());
        let indexes = self.indexes.load();
        let Some(parts) = indexes.get(mode) else {
            let message = match mode {
                Mode::Sha1 => {
                    let others: Vec<&str> = Mode::ALL
                        .into_iter()
                        .filter(|m| indexes.get(*m).is_some())
                        .map(Mode::name)
                        .collect();
                    format!(
                        "This server has no SHA-1 index loaded; ask with mode={}.",
                        others.join(" or mode=")
                    )
                }
                other => format!(
                    "This server has no {} index loaded, so mode={} cannot be answered.",
                    other.describe(),
                    other.name()
                ),
            };
            return with_cors(text(StatusCode::NOT_FOUND, &message));
        };
        let Some(served) = part_for(parts, prefix) else {
            return with_cors(text(
                StatusCode::NOT_FOUND,
                &format!(
                    "This server holds {} partitions of other prefixes only, not one of this \
                     prefix.",
                    mode.describe()
                ),
            ));
        };
        let headers = req.headers();
        let padded = headers
            .get("add-padding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let gzip = accepts_gzip(headers);

        let mut etag_buf = [0u8; 48];
        let etag = (!padded).then(|| {
            let mut w = &mut etag_buf[..];
            let _ = write!(
                w,
                "\"{}-{}-{:05X}{}\"",
                served.tag,
                mode.name(),
                prefix,
                if gzip { "-gz" } else { "" }
            );
            let used = 48 - w.len();
            HeaderValue::from_bytes(&etag_buf[..used]).expect("ASCII")
        });
        let mut builder = Response::builder();
        if let Some(h) = builder.headers_mut() {
            self.common_headers(h, served);
            if let Some(etag) = &etag {
                h.insert(header::ETAG, etag.clone());
            }
        }
        if let Some(etag) = &etag {
            if not_modified(headers, etag, served.modified) {
                return builder
                    .status(StatusCode::NOT_MODIFIED)
                    .body(Full::new(Bytes::new()))
                    .unwrap_or_else(|_| internal_error());
            }
        }
        let index = &served.index;
        let real_rows = index.range_len(prefix).unwrap_or(0) as usize;
        let mut rng = rand::rng();
        // Padded and compressed: the real rows deflated, then padding deflated ahead of time
        // (see PaddingPool). An empty range takes the path below (a body cannot start with
        // the pool's line end).
        let pad_rows = if padded && gzip && real_rows > 0 {
            rng.random_range(crate::range::PAD_MIN_ROWS..=crate::range::PAD_MAX_ROWS)
        } else {
            0
        };
        if pad_rows > real_rows {
            let mut body = Vec::with_capacity(real_rows * (index.kind().suffix_hex_len() + 8));
            if index.write_range(prefix, &mut body).is_err() {
                return internal_error();
            }
            let body = self.padding_pool(index.kind()).gzip_padded(
                &body,
                pad_rows - real_rows,
                self.config.gzip_level,
                &mut rng,
            );
            return builder
                .header(header::CONTENT_ENCODING, "gzip")
                .status(StatusCode::OK)
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_else(|_| internal_error());
        }
        let mut body = Vec::with_capacity(
            real_rows.max(if padded { 1000 } else { 0 }) * (index.kind().suffix_hex_len() + 8),
        );
        let written = if padded {
            index.write_padded_range(prefix, &mut rng, &mut body)
        } else {
            index.write_range(prefix, &mut body)
        };
        if written.is_err() {
            return internal_error();
        }
        let body = if gzip {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            crate::gzip::gzip_bytes(&body, self.config.gzip_level)
        } else {
            body
        };
        builder
            .status(StatusCode::OK)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| internal_error())
    }

    fn common_headers(&self, h: &mut HeaderMap, served: &Served) {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::CACHE_CONTROL, self.cache_control.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding, Add-Padding"),
        );
        h.insert(header::LAST_MODIFIED, served.last_modified.clone());
    }

    /// Serves until SIGTERM or Ctrl-C, reloading the indexes on SIGHUP.
    pub async fn run(
        self: Arc<Self>,
        on_event: impl Fn(ServerEvent) + Send + Sync + 'static,
    ) -> Result<()> {
        let listener = bind_listener(self.config.listen)
            .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", self.config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Invalid(format!("cannot read the listening address: {e}")))?;
        self.run_on(listener, addr, Arc::new(on_event)).await
    }

    /// The HTTP/1 settings every connection is served with (also by the fuzz targets, through
    /// [`crate::fuzzing::serve_io`]).
    pub(crate) fn http1(&self) -> hyper::server::conn::http1::Builder {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.config.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES.max(8192))
            .max_headers(64)
            .keep_alive(true);
        http
    }

    async fn run_on(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        addr: SocketAddr,
        on_event: Arc<dyn Fn(ServerEvent) + Send + Sync>,
    ) -> Result<()> {
        let http = self.http1();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let shutdown = shutdown_signal();
        let mut shutdown = std::pin::pin!(shutdown);
        spawn_reloader(Arc::clone(&self), Arc::clone(&on_event));
        self.ready.store(true, Ordering::Release);
        on_event(ServerEvent::Listening(addr));
        let mut warned_at: Option<Instant> = None;
        loop {
            // A slot first, then a connection: at the cap nothing is accepted, and new
            // connections wait in the kernel's listen queue rather than in this process.
            let slot = match Arc::clone(&self.connection_slots).try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    self.metrics
                        .connection_limit_waits
                        .fetch_add(1, Ordering::Relaxed);
                    if warned_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        warned_at = Some(Instant::now());
                        on_event(ServerEvent::ConnectionLimit(self.config.max_connections));
                    }
                    let waited = Arc::clone(&self.connection_slots).acquire_owned();
                    match first(shutdown.as_mut(), waited).await {
                        Either::First(()) => break,
                        Either::Second(Ok(slot)) => slot,
                        Either::Second(Err(_)) => break, // closed: never, the server owns it
                    }
                }
            };
            let stream = match first(shutdown.as_mut(), listener.accept()).await {
                Either::First(()) => break,
                Either::Second(Ok((stream, _))) => stream,
                Either::Second(Err(e)) => {
                    // Out of descriptors or similar: wait a moment rather than spin. The
                    // connection stays in the listen queue meanwhile.
                    on_event(ServerEvent::ConnectionError(format!("accept: {e}")));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let slot = ConnectionSlot::new(Arc::clone(&self), slot);
            let stream = SendDeadline::new(stream, self.config.send_timeout);
            let server = Arc::clone(&self);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = server.respond(&req);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            let events = Arc::clone(&on_event);
            tokio::spawn(async move {
                let result = conn.await;
                if let Err(e) = result {
                    if e.is_timeout() {
                        slot.server
                            .metrics
                            .head_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                    } else if is_send_timeout(&e) {
                        slot.server
                            .metrics
                            .send_timeouts
                            .fetch_add(1, Ordering::Relaxed);
                    } else if !e.is_incomplete_message() {
                        events(ServerEvent::ConnectionError(e.to_string()));
                    }
                }
                drop(slot);
            });
        }
        self.ready.store(false, Ordering::Release);
        on_event(ServerEvent::ShuttingDown);
        drop(listener);
        let _ = tokio::time::timeout(self.config.shutdown_grace, graceful.shutdown()).await;
        Ok(())
    }
}

/// Connections the kernel may hold completed but not yet accepted (it caps this at
/// `net.core.somaxconn`). They wait there while every connection slot is taken; beyond them
/// the kernel drops new connection attempts, which clients retry. The standard library and
/// tokio ask for 128, which a burst of new clients at the cap fills at once.
pub const LISTEN_BACKLOG: u32 = 1024;

/// A listening socket on `addr` with a backlog of [`LISTEN_BACKLOG`] (and, as
/// `TcpListener::bind` does, `SO_REUSEADDR` where it means what it says).
fn bind_listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A connection's place under `max_connections`, counted in the metrics while it lasts.
struct ConnectionSlot {
    server: Arc<Server>,
    _permit: OwnedSemaphorePermit,
}

impl ConnectionSlot {
    fn new(server: Arc<Server>, permit: OwnedSemaphorePermit) -> ConnectionSlot {
        server
            .metrics
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        server
            .metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        ConnectionSlot {
            server,
            _permit: permit,
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.server
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The message of the error a [`SendDeadline`] raises.
const SEND_TIMEOUT: &str = "the client read none of the response in time";

/// A connection whose writes fail once one has waited the send timeout without the client
/// reading anything: the timer runs from when a write first has to wait and starts again
/// whenever bytes go out (as nginx's `send_timeout`).
struct SendDeadline<S> {
    inner: S,
    limit: Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> SendDeadline<S> {
    fn new(inner: S, limit: Duration) -> SendDeadline<S> {
        SendDeadline {
            inner,
            limit,
            waiting: None,
        }
    }

    /// What a write that could not proceed returns: pending, or the timeout's error.
    fn wait<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                SEND_TIMEOUT,
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Passes on a write's outcome, starting or stopping the timer.
    fn track<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Pending => self.wait(cx),
            ready => {
                self.waiting = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.track(cx, polled)
    }
}

/// Whether a connection ended because a [`SendDeadline`] ran out.
fn is_send_timeout(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = err.source();
    }
    false
}

/// Which of two futures finished first.
enum Either<A, B> {
    First(A),
    Second(B),
}

/// Waits for the first of two futures to finish, polling `a` first (`tokio::select!` without
/// tokio's macros, biased).
async fn first<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::First(out));
        }
        if let Poll::Ready(out) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Second(out));
        }
        Poll::Pending
    })
    .await
}

fn spawn_reloader(server: Arc<Server>, on_event: Arc<dyn Fn(ServerEvent) + Send + Sync>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            let s = Arc::clone(&server);
            let result = tokio::task::spawn_blocking(move || s.reload()).await;
            match result {
                Ok(Ok(())) => on_event(ServerEvent::Reloaded),
                Ok(Err(e)) => on_event(ServerEvent::ReloadFailed(e)),
                Err(e) => on_event(ServerEvent::ReloadFailed(Error::Invalid(e.to_string()))),
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                first(ctrl_c, term.recv()).await;
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Whether `Accept-Encoding` admits gzip (a `q=0` refuses it).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
        v.to_str().unwrap_or("").split(',').any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

/// Whether the client's cached copy is current (`If-None-Match`, else `If-Modified-Since`).
fn not_modified(headers: &HeaderMap, etag: &HeaderValue, modified: std::time::SystemTime) -> bool {
    let ours = etag.as_bytes();
    let inms: Vec<&HeaderValue> = headers.get_all(header::IF_NONE_MATCH).iter().collect();
    if !inms.is_empty() {
        return inms.iter().any(|v| {
            v.as_bytes().split(|&b| b == b',').any(|t| {
                let t = t.trim_ascii();
                let t = t.strip_prefix(b"W/").unwrap_or(t);
                t == b"*" || t == ours
            })
        });
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| {
            let secs = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            };
            secs(modified) <= secs(since)
        })
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// The page for people, with headers that keep it to itself: its content security policy,
/// no sniffing, no referrer, no framing.
fn page() -> Response<Full<Bytes>> {
    let page = crate::web::Page::get();
    // The policy is ASCII; were it not, the page would not be served without it.
    let Ok(csp) = HeaderValue::from_str(&page.csp) else {
        return internal_error();
    };
    let mut r = Response::new(Full::new(Bytes::from_static(page.html.as_bytes())));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn with_cors(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

fn preflight() -> Response<Full<Bytes>> {
    let mut r = with_cors(text(StatusCode::NO_CONTENT, ""));
    let h = r.headers_mut();
    h.remove(header::CONTENT_TYPE);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Add-Padding"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    r
}

fn method_not_allowed(method: &Method) -> Response<Full<Bytes>> {
    let shown: String = method.as_str().chars().take(32).collect();
    let mut r = with_cors(text(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("The method {shown} is not allowed here; use GET, HEAD or OPTIONS."),
    ));
    r.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    r
}

/// Whether a request says a body follows its head: a `Transfer-Encoding`, or a
/// `Content-Length` other than 0. The API takes no bodies. hyper drops the `Content-Length` of a
/// request that also has a `Transfer-Encoding` (the smuggling shape), so that one shows here as
/// a `Transfer-Encoding`.
fn announces_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes().trim_ascii() != b"0")
}

/// The answer to a request with a body: 400, and the connection closes without reading the
/// body, so that nothing in it is ever taken for a request of its own (request smuggling
/// through a proxy that frames the body otherwise).
fn body_refused() -> Response<Full<Bytes>> {
    let mut r = with_cors(text(
        StatusCode::BAD_REQUEST,
        "This API takes no request body; send GET or HEAD without one.",
    ));
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn internal_error() -> Response<Full<Bytes>> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The index could not answer this request: it may be damaged (try leakdex verify).",
    )
}

trait ExactSize {
    fn size_hint_exact(&self) -> u64;
}

impl ExactSize for Full<Bytes> {
    fn size_hint_exact(&self) -> u64 {
        use hyper::body::Body;
        self.size_hint().exact().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_round_trips_and_reuses_its_state() {
        for level in [1, 6, 1] {
            for body in [&b""[..], b"A:1", &b"0123456789ABCDEF:12\r\n".repeat(5000)] {
                let gz = crate::gzip::gzip_bytes(body, level);
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut out)
                    .unwrap();
                assert!(out == body);
            }
        }
    }

    #[test]
    fn accept_encoding_and_conditional_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.5"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!accepts_gzip(&h));
        let etag = HeaderValue::from_static("\"abc\"");
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(not_modified(&h, &etag, t));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"x\""));
        assert!(!not_modified(&h, &etag, t));
    }
}
