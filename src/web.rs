//! The page that `leakdex serve` answers at `/`, for people rather than scripts.
//!
//! One self-contained HTML file (`src/page.html`, built into the binary): inline CSS and
//! JavaScript, nothing loaded from elsewhere. It hashes what is typed in the browser (SHA-1 by
//! WebCrypto where the page may use it, in JavaScript where it may not, MD4 for NTLM) and asks
//! `GET /range/<first 5 hex digits>` with `Add-Padding: true`; the rest of the hash is
//! compared in the page. It learns what the server holds from `GET /about`, whose JSON has the
//! kind, hash count, prefixes and date of each index, and no path.
//!
//! [`Page::csp`] is the `Content-Security-Policy` it is served with: nothing but its own inline
//! script and style (allowed by their SHA-256, computed from the page itself, so that the two
//! cannot drift apart) and requests to its own origin.

use sha2::{Digest, Sha256};

/// The page's HTML.
pub const PAGE_HTML: &str = include_str!("page.html");

/// The page with the headers it is served with.
pub struct Page {
    /// The HTML.
    pub html: &'static str,
    /// The `Content-Security-Policy` header's value.
    pub csp: String,
}

impl Page {
    /// The page of this build, with its policy.
    pub fn get() -> &'static Page {
        static PAGE: std::sync::OnceLock<Page> = std::sync::OnceLock::new();
        PAGE.get_or_init(|| Page {
            html: PAGE_HTML,
            csp: content_security_policy(PAGE_HTML),
        })
    }
}

/// The contents of every `<tag>…</tag>` element of `html` (tags written without attributes).
fn inline_elements<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        found.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    found
}

/// A policy that allows the page's own inline scripts and styles (by hash) and requests to its
/// own origin, and nothing else: no other script, style, image, font, frame, form target or
/// base URL, and no framing of the page by others.
pub fn content_security_policy(html: &str) -> String {
    let hashes = |tag: &str| -> String {
        inline_elements(html, tag)
            .iter()
            .map(|body| format!(" 'sha256-{}'", base64(&Sha256::digest(body.as_bytes()))))
            .collect()
    };
    format!(
        "default-src 'none'; script-src{}; style-src{}; connect-src 'self'; img-src 'none'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes("script"),
        hashes("style")
    )
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn utc_timestamp(secs: u64) -> String {
    let [year, month, day, hour, minute, second] = utc_fields(secs);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// Year, month, day, hour, minute and second (UTC) of a Unix time.
pub fn utc_fields(secs: u64) -> [i64; 6] {
    let days = (secs / 86400) as i64;
    let rem = (secs % 86400) as i64;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    [year, month, day, rem / 3600, rem / 60 % 60, rem % 60]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_the_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn the_policy_allows_exactly_the_pages_inline_script_and_style() {
        let page = Page::get();
        let scripts = inline_elements(page.html, "script");
        let styles = inline_elements(page.html, "style");
        assert_eq!((scripts.len(), styles.len()), (1, 1));
        assert!(page
            .csp
            .starts_with("default-src 'none'; script-src 'sha256-"));
        assert_eq!(page.csp.matches("'sha256-").count(), 2);
        // The page loads nothing from elsewhere and has no other script or style.
        for needle in [
            "http://", "https://", "<script ", "<link", "<img", "style=\"", "onclick",
        ] {
            assert!(!page.html.contains(needle), "{needle}");
        }
        // A changed script gets another hash.
        let changed = content_security_policy(&page.html.replace("use strict", "use  strict"));
        assert_ne!(changed, page.csp);
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_796_000_000), "2026-11-30T00:53:20Z");
    }
}
