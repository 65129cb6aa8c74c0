//! The request path of `leakdex serve` through its real handler (`Server::respond`): method,
//! path, prefix, query and headers (Add-Padding, Accept-Encoding, If-None-Match,
//! If-Modified-Since), over servers of golden indexes; each answer is checked against the
//! index itself.
//!
//! Input: one byte choosing the server, then `METHOD TARGET` and `Name: value` lines.

use super::{assert_padded, mode_of, rows_of, runtime, servers};
use http_body_util::BodyExt;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use std::io::Read;

/// The `serve_request` target: one input.
pub fn serve_request(data: &[u8]) {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let served = &servers()[which as usize % 3];
    let mut lines = text.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let (method, target) = match first.iter().position(|&b| b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (&b"GET"[..], first),
    };
    let Ok(method) = Method::from_bytes(method) else {
        return;
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let mut builder = Request::builder().method(method.clone()).uri(uri);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            builder = builder.header(name, value);
        }
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let response = served.server.respond(&request);
    let status = response.status();
    let headers = response.headers().clone();
    let body = runtime()
        .block_on(response.into_body().collect())
        .expect("a full body")
        .to_bytes();
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a golden index failed"
    );

    let path = request.uri().path();
    let get = matches!(method, Method::GET | Method::HEAD);
    // A request that says a body follows is refused on every route, before anything else.
    let rh = request.headers();
    if rh.contains_key("transfer-encoding")
        || rh
            .get_all("content-length")
            .iter()
            .any(|v| v.as_bytes().trim_ascii() != b"0")
    {
        assert_eq!(status, StatusCode::BAD_REQUEST, "a request with a body");
        return;
    }
    let Some(prefix_text) = path.strip_prefix("/range/") else {
        let expected = match path {
            "/health" | "/metrics" | "/" | "/about" if !get => StatusCode::METHOD_NOT_ALLOWED,
            // The page and what the server holds.
            "/" | "/about" => StatusCode::OK,
            // Never started: not ready.
            "/health" => StatusCode::SERVICE_UNAVAILABLE,
            "/metrics" => StatusCode::OK,
            _ => StatusCode::NOT_FOUND,
        };
        assert_eq!(status, expected, "{path}");
        return;
    };
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..])
    );
    if method == Method::OPTIONS {
        assert_eq!(status, StatusCode::NO_CONTENT);
        return;
    }
    if !get {
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(headers.contains_key("allow"));
        return;
    }
    let Ok(prefix) = leakdex::hash::parse_prefix(prefix_text.as_bytes()) else {
        assert_eq!(status, StatusCode::BAD_REQUEST);
        return;
    };
    let Some(index) = &served.by_mode[mode_of(request.uri().query())] else {
        assert_eq!(status, StatusCode::NOT_FOUND, "a mode without an index");
        return;
    };
    if !index.partition().contains(prefix) {
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "a prefix outside the partition"
        );
        return;
    }
    let padded = request
        .headers()
        .get("add-padding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    assert_eq!(headers.contains_key("etag"), !padded);
    if status == StatusCode::NOT_MODIFIED {
        assert!(!padded && body.is_empty());
        assert!(
            request.headers().contains_key("if-none-match")
                || request.headers().contains_key("if-modified-since")
        );
        return;
    }
    assert_eq!(status, StatusCode::OK);
    let body = match headers.get("content-encoding") {
        Some(coding) => {
            assert_eq!(coding, "gzip");
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("valid gzip");
            out
        }
        None => body.to_vec(),
    };
    let real = index.range_body(prefix).expect("a golden range");
    if padded {
        let rows = rows_of(&body, index.kind(), prefix);
        let real = rows_of(&real, index.kind(), prefix);
        assert_padded(&rows, &real);
        let (rows, real) = (rows.len(), real.len());
        assert!(rows >= real.max(800) && rows <= 1000 || rows == real && real > 1000);
    } else {
        assert!(body == real, "the body differs from the index's range");
    }
}
