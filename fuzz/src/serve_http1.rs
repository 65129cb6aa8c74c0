//! Raw bytes through what faces the network: hyper's HTTP/1 parser with the settings of
//! `leakdex serve` (head size and header limits, keep-alive, pipelining), then the real
//! handler (`leakdex::fuzzing::serve_io`), over an in-memory stream. The client's bytes arrive
//! in pieces of a size the input chooses (with a pending read between pieces); once they are
//! all sent, the client waits until the server has nothing more to do, then closes its side,
//! and everything the server writes is kept. The connection is driven by hand, so no timer
//! ever fires: the run is the same every time.
//!
//! What must hold: the connection ends once the client closes (no hang, no endless loop);
//! the server's bytes are a sequence of well-framed HTTP/1 responses (status line, headers,
//! a body as long as its `Content-Length`), none of them a 500; and for the requests a strict
//! model of HTTP/1 reads (below), one response each, in order, in the request's version,
//! each what the handler itself answers (`Server::respond`): the status, every header the
//! handler sets, and the body (none for `HEAD`, 204 and 304); nothing after a request that
//! closes (HTTP/1.0, `Connection: close`), nor after a request the model can tell hyper must
//! refuse (a bad URI: 400; over 64 headers: 431).
//!
//! The model reads `METHOD SP TARGET SP HTTP/1.x CRLF`, then `Name: value CRLF` lines and an
//! empty line, with tokens for the method and names, visible ASCII for the target and values,
//! at most 8 KiB of head; a request with a body or a connection header other than `close`
//! (`Content-Length`, `Transfer-Encoding`, `Expect`, `Upgrade`, `CONNECT`), or anything else,
//! ends what it predicts; the responses after that are only checked for form.
//!
//! Input: one byte choosing the server (its value modulo 3) and the size of the pieces (its
//! value divided by 4: 0 for all at once, else 1 to 63 bytes), then the bytes a client sends.

use super::{runtime, servers};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri, Version};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest request head the model predicts: half the server's limit
/// (`MAX_HEAD_BYTES`), far from where hyper's buffer sizes decide.
const MODEL_MAX_HEAD: usize = 8 * 1024;

/// Polls of the connection allowed before it counts as an endless loop.
const MAX_POLLS: usize = 1_000_000;

/// The client's side of the conversation, shared with the stream the server reads.
#[derive(Default)]
struct Client {
    /// What the client sends.
    input: Vec<u8>,
    /// Bytes of `input` read by the server.
    at: usize,
    /// Bytes per read (`usize::MAX`: all at once).
    piece: usize,
    /// Whether the next read returns pending, to make the server wait between pieces.
    pend_next: bool,
    /// The server read with nothing left to read, and was told to wait.
    waiting: bool,
    /// The client has closed its side: reads past the input are at the end.
    closed: bool,
    /// What the server wrote.
    output: Vec<u8>,
    /// The server shut its writing side down.
    shut: bool,
}

/// The server's side of the connection.
struct Memory(Arc<Mutex<Client>>);

impl AsyncRead for Memory {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut c = self.0.lock().unwrap();
        if c.at == c.input.len() {
            if c.closed {
                return Poll::Ready(Ok(()));
            }
            // The driver closes the client's side once nothing else can happen.
            c.waiting = true;
            return Poll::Pending;
        }
        if c.piece != usize::MAX {
            c.pend_next = !c.pend_next;
            if !c.pend_next {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        let n = (c.input.len() - c.at).min(buf.remaining()).min(c.piece);
        let at = c.at;
        buf.put_slice(&c.input[at..at + n]);
        c.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Memory {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut c = self.0.lock().unwrap();
        assert!(!c.shut, "a write after shutdown");
        c.output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.lock().unwrap().shut = true;
        Poll::Ready(Ok(()))
    }
}

/// A waker that records whether it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Serves one connection whose client sends `input` in pieces of `piece` bytes, then closes
/// once the server waits for more; returns what the server wrote.
fn converse(server: &Arc<leakdex::server::Server>, input: &[u8], piece: usize) -> Vec<u8> {
    let client = Arc::new(Mutex::new(Client {
        input: input.to_vec(),
        piece,
        ..Default::default()
    }));
    // hyper's header timer needs a runtime to be made in; the runtime is never driven, so
    // the timer never fires.
    let _entered = runtime().enter();
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let mut connection = std::pin::pin!(leakdex::fuzzing::serve_io(
        Arc::clone(server),
        Memory(Arc::clone(&client)),
    ));
    let mut polls = 0;
    // hyper's verdict (a malformed request, an incomplete one) is not checked: the bytes are.
    let _verdict = loop {
        flag.0.store(false, Ordering::SeqCst);
        if let Poll::Ready(verdict) = connection.as_mut().poll(&mut cx) {
            break verdict;
        }
        polls += 1;
        assert!(polls < MAX_POLLS, "the connection never ends");
        if flag.0.load(Ordering::SeqCst) {
            continue;
        }
        // Nothing woke the connection: it waits for the client (or for a timer).
        let mut c = client.lock().unwrap();
        assert!(
            c.waiting && !c.closed,
            "the connection waits for something other than the client's bytes"
        );
        c.waiting = false;
        c.closed = true;
    };
    let c = client.lock().unwrap();
    c.output.clone()
}

/// The `serve_http1` target: one input.
pub fn serve_http1(data: &[u8]) {
    let Some((&which, sent)) = data.split_first() else {
        return;
    };
    let server = &servers()[which as usize % 3].server;
    let piece = match which >> 2 {
        0 => usize::MAX,
        n => n as usize,
    };
    let received = converse(server, sent, piece);

    let (expected, end) = model(sent);
    let heads: Vec<bool> = expected
        .iter()
        .map(|e| e.request.method() == Method::HEAD)
        .collect();
    let responses = responses(&received, &heads);
    for r in &responses {
        assert_ne!(r.status, 500, "a golden index failed");
    }
    assert!(
        responses.len() >= expected.len(),
        "{} responses to {} requests",
        responses.len(),
        expected.len()
    );
    for (i, (got, want)) in responses.iter().zip(&expected).enumerate() {
        compare(server, i, got, want);
    }
    match end {
        End::Input | End::Closes => assert_eq!(
            responses.len(),
            expected.len(),
            "responses past the last request or after a close"
        ),
        End::Refused(status) => {
            assert_eq!(
                responses.len(),
                expected.len() + 1,
                "no refusal, or responses after it"
            );
            assert_eq!(responses[expected.len()].status, status, "the refusal");
        }
        End::Unknown => {}
    }
}

/// A request the model reads, as hyper should hand it to the handler.
struct Expected {
    request: Request<()>,
}

/// How the requests the model reads end.
#[derive(Debug)]
enum End {
    /// At the end of the input.
    Input,
    /// With a request that closes the connection.
    Closes,
    /// With a request hyper must refuse with this status, and close.
    Refused(u16),
    /// With bytes the model does not read.
    Unknown,
}

/// Whether `b` may be in a token (method, header name).
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The requests at the start of `input` that the model reads, and how they end.
fn model(input: &[u8]) -> (Vec<Expected>, End) {
    let mut expected = Vec::new();
    let mut rest = input;
    loop {
        if rest.is_empty() {
            return (expected, End::Input);
        }
        let Some(head_len) = find(rest, b"\r\n\r\n").map(|i| i + 4) else {
            return (expected, End::Unknown);
        };
        if head_len > MODEL_MAX_HEAD {
            return (expected, End::Unknown);
        }
        // Each line with its CR; the empty piece after the last LF left out.
        let mut lines = rest[..head_len - 3].split(|&b| b == b'\n');
        let Some(Ok((method, target, version))) = lines.next().map(request_line) else {
            return (expected, End::Unknown);
        };
        let mut headers = Vec::new();
        for line in lines {
            match header_line(line) {
                Some(h) => headers.push(h),
                None => return (expected, End::Unknown),
            }
        }
        if headers.len() > 64 {
            return (expected, End::Refused(431));
        }
        let mut closes = version == Version::HTTP_10;
        for (name, value) in &headers {
            match name.as_str() {
                "content-length" | "transfer-encoding" | "expect" | "upgrade" => {
                    return (expected, End::Unknown)
                }
                "connection" if value.as_bytes().eq_ignore_ascii_case(b"close") => closes = true,
                "connection" => return (expected, End::Unknown),
                _ => {}
            }
        }
        if method == Method::CONNECT {
            return (expected, End::Unknown);
        }
        let Ok(uri) = Uri::try_from(target) else {
            return (expected, End::Refused(400));
        };
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .version(version)
            .body(())
            .expect("parts that parsed");
        for (name, value) in headers {
            request.headers_mut().append(name, value);
        }
        expected.push(Expected { request });
        if closes {
            return (expected, End::Closes);
        }
        rest = &rest[head_len..];
    }
}

/// `METHOD SP TARGET SP HTTP/1.x CR`, or `Err` for anything else.
fn request_line(line: &[u8]) -> Result<(Method, &[u8], Version), ()> {
    let line = line.strip_suffix(b"\r").ok_or(())?;
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(());
    };
    if method.is_empty() || !method.iter().all(|&b| tchar(b)) {
        return Err(());
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..=0x7E).contains(&b)) {
        return Err(());
    }
    let version = match version {
        b"HTTP/1.1" => Version::HTTP_11,
        b"HTTP/1.0" => Version::HTTP_10,
        _ => return Err(()),
    };
    Ok((Method::from_bytes(method).map_err(|_| ())?, target, version))
}

/// `Name: value CR`, with blanks around the value, or `None` for anything else.
fn header_line(line: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    let line = line.strip_suffix(b"\r")?;
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| tchar(b)) {
        return None;
    }
    let value = blanks_trimmed(&line[colon + 1..]);
    if !value
        .iter()
        .all(|&b| (0x20..=0x7E).contains(&b) || b == b'\t')
    {
        return None;
    }
    Some((
        HeaderName::from_bytes(name).ok()?,
        HeaderValue::from_bytes(value).ok()?,
    ))
}

/// `text` without the spaces and tabs around it (HTTP's optional whitespace: not the other
/// ASCII blanks, which `trim_ascii` takes too).
fn blanks_trimmed(mut text: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = text {
        text = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = text {
        text = rest;
    }
    text
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One response as the server wrote it.
#[derive(Debug)]
struct Response {
    version: Version,
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Reads `out` as a sequence of HTTP/1 responses, checking their form, and panics on
/// anything else. `heads[i]` says whether response `i` answers a `HEAD` (no body).
fn responses(mut out: &[u8], heads: &[bool]) -> Vec<Response> {
    let mut all = Vec::new();
    while !out.is_empty() {
        let head_len = find(out, b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or_else(|| panic!("a response head that does not end: {}", shown(out)));
        // Each line with its CR; the empty piece after the last LF left out.
        let head = &out[..head_len - 3];
        let mut lines = head.split(|&b| b == b'\n');
        let status_line = lines.next().unwrap();
        let status_line = status_line
            .strip_suffix(b"\r")
            .expect("a status line ending in CRLF");
        let version = match status_line.get(..9) {
            Some(b"HTTP/1.1 ") => Version::HTTP_11,
            Some(b"HTTP/1.0 ") => Version::HTTP_10,
            _ => panic!("not an HTTP/1 response: {}", shown(out)),
        };
        let digits = status_line.get(9..12).expect("a status code");
        assert!(digits.iter().all(u8::is_ascii_digit), "a status code");
        assert!(matches!(status_line.get(12), None | Some(b' ')));
        let status: u16 = std::str::from_utf8(digits).unwrap().parse().unwrap();
        assert!((200..=599).contains(&status), "status {status}");
        let mut headers = Vec::new();
        for line in lines {
            let line = line.strip_suffix(b"\r").expect("header lines end in CRLF");
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .expect("a header with a colon");
            let name = std::str::from_utf8(&line[..colon]).expect("an ASCII header name");
            assert!(
                !name.is_empty() && name.bytes().all(tchar),
                "header name {name:?}"
            );
            let value = blanks_trimmed(&line[colon + 1..]).to_vec();
            headers.push((name.to_ascii_lowercase(), value));
        }
        out = &out[head_len..];
        let mut response = Response {
            version,
            status,
            headers,
            body: Vec::new(),
        };
        assert!(
            response.header("transfer-encoding").is_none(),
            "a chunked response"
        );
        let lengths: Vec<_> = response
            .headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .collect();
        assert!(lengths.len() <= 1, "two Content-Lengths");
        // The answer to a HEAD has no body, and a Content-Length only where the handler set
        // one (its short texts); a 204 or 304 neither. Past the requests the model read, an
        // answer whose body is not there (the next response, or the end, follows its head)
        // is taken for the answer to a HEAD.
        let head_request = match heads.get(all.len()) {
            Some(&head) => head,
            None => {
                let len = response.header("content-length");
                let absent = len.is_none() || out.starts_with(b"HTTP/1.") || out.is_empty();
                absent && len != Some(b"0")
            }
        };
        let len = match response.header("content-length") {
            Some(text) => std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse::<usize>().ok())
                .expect("a decimal Content-Length"),
            None => {
                assert!(
                    matches!(status, 204 | 304) || head_request,
                    "a {status} response without Content-Length: {}",
                    shown(head)
                );
                0
            }
        };
        if !head_request && !matches!(status, 204 | 304) {
            assert!(out.len() >= len, "a body shorter than its Content-Length");
            response.body = out[..len].to_vec();
            out = &out[len..];
        }
        all.push(response);
    }
    all
}

fn shown(bytes: &[u8]) -> String {
    format!(
        "{:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
    )
}

/// Response `i`, `got`, against what the handler answers to the request itself.
fn compare(server: &leakdex::server::Server, i: usize, got: &Response, want: &Expected) {
    let request = &want.request;
    let response = server.respond(request);
    let status = response.status();
    let what = format!("response {i} ({} {})", request.method(), request.uri());
    assert_eq!(got.version, request.version(), "{what}: the version");
    assert_eq!(got.status, status.as_u16(), "{what}: the status");
    for (name, value) in response.headers() {
        assert_eq!(
            got.header(name.as_str()),
            Some(value.as_bytes()),
            "{what}: header {name}"
        );
    }
    if matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED) {
        return;
    }
    let padded = request
        .headers()
        .get("add-padding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    // Padding's rows are random, and the metrics count the requests: their bodies differ.
    if padded || request.uri().path() == "/metrics" {
        return;
    }
    let body = runtime()
        .block_on(http_body_util::BodyExt::collect(response.into_body()))
        .expect("a full body")
        .to_bytes();
    if request.method() == Method::HEAD {
        assert!(got.body.is_empty(), "{what}: a body for HEAD");
    } else {
        let len = body.len().to_string();
        assert_eq!(
            got.header("content-length"),
            Some(len.as_bytes()),
            "{what}: the length"
        );
        assert!(got.body == body, "{what}: the body");
    }
}
