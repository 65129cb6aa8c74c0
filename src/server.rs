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
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// requests on a kept-alive connection.
    pub header_timeout: Duration,
    /// Longest wait for requests in flight on shutdown.
    pub shutdown_grace: Duration,
    /// gzip level, 0 to 9.
    pub gzip_level: u32,
    /// Index files up to this many bytes are read into memory (at start and on each reload)
    /// rather than mapped, so that a file truncated or rewritten in place cannot disturb the
    /// server; larger ones are mapped (replace them by rename only: a mapped file that shrinks
    /// makes the server die by SIGBUS). Default: a quarter of the machine's memory.
    pub copy_limit: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            indexes: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_age: 2_678_400,
            header_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            gzip_level: 1,
            copy_limit: crate::build::total_memory().unwrap_or(0) / 4,
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
}

const ROUTES: [&str; 4] = ["range", "health", "metrics", "other"];
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

    fn render(&self) -> String {
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
}

/// A range server over open indexes.
pub struct Server {
    config: ServerConfig,
    indexes: ArcSwap<Indexes>,
    metrics: Metrics,
    ready: AtomicBool,
    cache_control: HeaderValue,
}

impl Server {
    /// Opens the indexes; fails when one cannot be opened or two share a kind.
    pub fn new(config: ServerConfig) -> Result<Server> {
        let indexes = load(&config.indexes, config.copy_limit)?;
        let cache_control = HeaderValue::from_str(&format!("public, max-age={}", config.max_age))
            .expect("digits are a valid header");
        Ok(Server {
            config,
            indexes: ArcSwap::from_pointee(indexes),
            metrics: Metrics::new(),
            ready: AtomicBool::new(false),
            cache_control,
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
                let mut r = text(StatusCode::OK, &self.metrics.render());
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                (Route::Metrics, r)
            }
            _ => (
                Route::Other,
                text(StatusCode::NOT_FOUND, "Invalid API query"),
            ),
        }
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
        let mut body = Vec::with_capacity(
            (index.range_len(prefix).unwrap_or(0) as usize).max(if padded { 1000 } else { 0 })
                * (index.kind().suffix_hex_len() + 8),
        );
        let written = if padded {
            index.write_padded_range(prefix, &mut rand::rng(), &mut body)
        } else {
            index.write_range(prefix, &mut body)
        };
        if written.is_err() {
            return internal_error();
        }
        let body = if gzip {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            gzip_bytes(&body, self.config.gzip_level)
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
        let listener = tokio::net::TcpListener::bind(self.config.listen)
            .await
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
        tokio::pin!(shutdown);
        spawn_reloader(Arc::clone(&self), Arc::clone(&on_event));
        self.ready.store(true, Ordering::Release);
        on_event(ServerEvent::Listening(addr));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(s) => s,
                        Err(e) => {
                            // Out of descriptors or similar: wait a moment rather than spin.
                            on_event(ServerEvent::ConnectionError(format!("accept: {e}")));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let server = Arc::clone(&self);
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let response = server.respond(&req);
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    let events = Arc::clone(&on_event);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            if !e.is_incomplete_message() && !e.is_timeout() {
                                events(ServerEvent::ConnectionError(e.to_string()));
                            }
                        }
                    });
                }
                _ = &mut shutdown => break,
            }
        }
        self.ready.store(false, Ordering::Release);
        on_event(ServerEvent::ShuttingDown);
        drop(listener);
        let _ = tokio::time::timeout(self.config.shutdown_grace, graceful.shutdown()).await;
        Ok(())
    }
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
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
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

thread_local! {
    /// One deflate state per worker thread, reset between bodies: setting one up costs more
    /// than compressing a typical range body.
    static DEFLATE: std::cell::RefCell<Option<(u32, flate2::Compress)>> =
        const { std::cell::RefCell::new(None) };
}

/// gzip (RFC 1952) of `body`: a fixed header, raw deflate, CRC-32 and length.
fn gzip_bytes(body: &[u8], level: u32) -> Vec<u8> {
    let level = level.min(9);
    let mut out = Vec::with_capacity(body.len() / 2 + 64);
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown).
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    DEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fresh = !matches!(&*slot, Some((l, _)) if *l == level);
        if fresh {
            *slot = Some((
                level,
                flate2::Compress::new(flate2::Compression::new(level), false),
            ));
        }
        let (_, deflate) = slot.as_mut().expect("set above");
        deflate.reset();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let consumed = deflate.total_in() as usize;
            match deflate.compress_vec(&body[consumed..], &mut out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => break,
                Ok(_) => continue,
                Err(_) => {
                    out.truncate(10);
                    break;
                }
            }
        }
    });
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
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
                let gz = gzip_bytes(body, level);
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
