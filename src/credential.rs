//! Splitting credential lines into a login and a password: `--input ulp` (stealer logs:
//! URL, login, password) with [`parse_ulp`], and `--input combo` (`LOGIN:PASSWORD`) with
//! [`parse_combo`].
//!
//! Both take one line **without its line end** (`\n` or `\r\n`) and without a leading UTF-8
//! byte-order mark: the caller strips those, as [`crate::build`] does, and skips blank lines.
//! They return slices of the line, never copies, so a build's hot loop allocates nothing. A
//! refused line gives a short reason for the `file:line: why` report; a reason never holds
//! any of the line, which holds secrets.
//!
//! # `--input ulp`
//!
//! A *separator* is `:`, `|`, a space or a tab.
//!
//! **A line that starts with a scheme** (`[A-Za-z][A-Za-z0-9+.-]*://`):
//! 1. The host follows `://` and runs up to the first `/`, `?`, `#` or separator. It may hold
//!    `@` and `=`, as Android URLs (`android://<base64>==@com.app.name/`) do. A host that
//!    starts with `[` (IPv6) runs through the next `]`. An empty host is refused.
//! 2. `:` and 1 to 5 digits (at most 65535) after the host, followed by the end of the line,
//!    `/`, `?`, `#` or a separator, are a port, and the URL runs past them.
//! 3. The URL then runs on through the path up to the first separator: that separator is the
//!    line's. A URL that no separator follows is refused.
//! 4. The login runs from there to the next occurrence of the same separator (another
//!    separator is part of the login); the password is the rest of the line, whatever it
//!    holds (`:`, `|`, spaces, tabs).
//!
//! **A line without a scheme.** Its *first field* is what comes before its first `:` or `|`.
//! - `host:login:password` or `host|login|password` when the first field holds a `.` and no
//!   `@`, space or tab, and the line has at least three fields: the first field is the host
//!   (a path may follow it: `site.com/login:bob:pw`), the login runs to the next occurrence
//!   of the separator that ended it, and the password is the rest.
//! - Otherwise `login:password`, split at the first `:`.
//!
//! Login and password must not be empty, and a login made only of separators (`URL | login |
//! password` with padded separators reads so) is refused. A line that fits none of these rules
//! is refused.
//!
//! | line | URL or host | login | password |
//! |---|---|---|---|
//! | `https://accounts.google.com:alice@example.com:hunter2` | `https://accounts.google.com` | `alice@example.com` | `hunter2` |
//! | `https://host:8443/login:user:pw` | `https://host:8443/login` | `user` | `pw` |
//! | `https://host:8443:user:pa:ss` | `https://host:8443` | `user` | `pa:ss` |
//! | `https://site.com/login\|bob\|pa ss\|word` | `https://site.com/login` | `bob` | `pa ss\|word` |
//! | `https://site.com/ bob my pass` | `https://site.com/` | `bob` | `my pass` |
//! | `android://xyz==@com.app/:carol:letmein` | `android://xyz==@com.app/` | `carol` | `letmein` |
//! | `http://[::1]:8080/x:root:toor` | `http://[::1]:8080/x` | `root` | `toor` |
//! | `site.com\|dave\|qwerty` | `site.com` | `dave` | `qwerty` |
//! | `site.com:dave:pa:ss` | `site.com` | `dave` | `pa:ss` |
//! | `bob@example.com:password` | none | `bob@example.com` | `password` |
//! | `bob@example.com:pa:ss` (an `@`) | none | `bob@example.com` | `pa:ss` |
//! | `alice:pa:ss` (no `.`) | none | `alice` | `pa:ss` |
//!
//! Refused: `https://site.com/login` (no separator after the URL), `https://site.com:bob`
//! (no second `:`), `https://:bob:pw` (no host), `https://site.com::pw` (empty login),
//! `https://site.com:bob:` and `site.com:bob:` (empty password), `password` (no `:`),
//! `:pw` and `bob:`, and ` https://site.com:bob:pw` (see below).
//!
//! ## Ambiguous lines, and what is decided
//! - **A port or a numeric login.** `https://host:12345:pa:ss` reads as port `12345`, login
//!   `pa`, password `ss`: digits after the host are a port whenever the rest still holds a
//!   login, the same separator again and a password. When it does not (`https://host:1234:pw`),
//!   the digits are the login (`1234`, password `pw`) rather than refusing the line. Six
//!   digits or more, or a number above 65535, are never a port, so phone numbers are logins.
//! - **A path holding a separator.** The URL ends at the first separator after the host, as
//!   the rules say: `https://en.wikipedia.org/wiki/Special:Login:bob:pw` gives login `Login`
//!   and password `bob:pw`, and a space in a path ends the URL as well. Such lines cannot be
//!   told from others by their shape.
//! - **No port without a scheme.** The rule for these lines is `host:login:password`, and
//!   short numeric logins are common, so digits after the host are the login:
//!   `site.com:4242:pa:ss` gives login `4242` and password `pa:ss`, and so does
//!   `192.168.0.1:8080:admin:admin` (login `8080`, password `admin:admin`).
//! - **A dotted user name and a password holding `:`.** `john.doe:pa:ss` fits the host-first
//!   rule (a `.`, no `@`, three fields): host `john.doe`, login `pa`, password `ss`. A host
//!   cannot be told from a user name without a list of domains; emails (an `@`) are safe.
//! - **IPv6** hosts are read simply: from `[` to the next `]`, whatever is between; a `[`
//!   with no `]` is refused.
//! - **A URL that does not start the line** (blanks, quotes or another byte-order mark before
//!   the scheme, or a scheme with a `_`) would otherwise be split at its scheme's `:` and
//!   index `//host...` as a password, the very mistake `--input ulp` exists to stop. A line
//!   without a scheme whose first `:` is followed by `//` is refused. The cost: a combo
//!   password that starts with `//` behind a login that is not a valid scheme.
//! - A line ending in `\r` that reaches the parser keeps it in the password: line ends are the
//!   caller's to strip.
//!
//! # `--input combo`
//!
//! `LOGIN:PASSWORD`, split at the first `:`: the password may hold `:`. A line that starts
//! with a scheme is refused, with a reason that names `--input ulp`. An empty login or
//! password is accepted, as before `--input ulp` existed: `alice:` is the empty password.

/// One credential: slices of the line it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credential<'a> {
    /// The URL (`https://host:8443/login`) or host (`site.com`) the credential is for, as the
    /// line spells it; `None` for a `login:password` line.
    pub url: Option<&'a [u8]>,
    /// The login: an email, a user name, a phone number, as the line spells it.
    pub login: &'a [u8],
    /// The password, as the line spells it.
    pub password: &'a [u8],
}

/// Why a line was refused: a short phrase for `file:line: why`, never any of the line.
pub type Refusal = &'static str;

const NO_COLON: Refusal = "no `:` between user and password";
const NO_SEPARATOR: Refusal = "a URL with no `:`, `|`, space or tab after it";
const NO_HOST: Refusal = "a URL with no host after `://`";
const OPEN_BRACKET: Refusal = "a URL whose host opens a `[` and never closes it";
const EMPTY_LOGIN: Refusal = "an empty login";
const SEPARATOR_LOGIN: Refusal =
    "a login made only of separators (padded ones, as in `URL | login | password`?)";
const EMPTY_PASSWORD: Refusal = "an empty password";
const URL_INSIDE: Refusal =
    "`://` after the first `:`: a URL that does not start the line (blanks or quotes before it?)";
const COMBO_URL: Refusal =
    "starts with a URL, as stealer-log lines do; --input combo leaves them out: use --input ulp";

/// The reason for a separator that is not found again after the login.
fn no_second(separator: u8) -> Refusal {
    match separator {
        b':' => "no second `:` between login and password",
        b'|' => "no second `|` between login and password",
        b' ' => "no second space between login and password",
        _ => "no second tab between login and password",
    }
}

/// The length of the scheme and its `://` at the start of `line` (`https://` gives 8), for
/// a scheme of the form `[A-Za-z][A-Za-z0-9+.-]*`.
#[inline]
pub fn scheme_len(line: &[u8]) -> Option<usize> {
    if !line.first()?.is_ascii_alphabetic() {
        return None;
    }
    let mut i = 1;
    while i < line.len()
        && (line[i].is_ascii_alphanumeric() || matches!(line[i], b'+' | b'.' | b'-'))
    {
        i += 1;
    }
    line[i..].starts_with(b"://").then_some(i + 3)
}

/// A separator in a line with a scheme.
#[inline]
fn any_separator(b: u8) -> bool {
    matches!(b, b':' | b'|' | b' ' | b'\t')
}

/// A separator in a line without a scheme.
#[inline]
fn colon_or_bar(b: u8) -> bool {
    matches!(b, b':' | b'|')
}

/// Where the URL ends (at its separator) and where the login ends (at the same separator
/// again).
#[derive(Clone, Copy)]
struct Fields {
    url_end: usize,
    login_end: usize,
}

impl Fields {
    fn credential(self, line: &[u8]) -> Result<Credential<'_>, Refusal> {
        let login = &line[self.url_end + 1..self.login_end];
        let password = &line[self.login_end + 1..];
        check(Credential {
            url: Some(&line[..self.url_end]),
            login,
            password,
        })
    }
}

fn check(credential: Credential<'_>) -> Result<Credential<'_>, Refusal> {
    if credential.login.is_empty() {
        Err(EMPTY_LOGIN)
    } else if credential.login.iter().all(|&b| any_separator(b)) {
        // `URL | login | password`: the space is the separator, and the login would be `|`.
        Err(SEPARATOR_LOGIN)
    } else if credential.password.is_empty() {
        Err(EMPTY_PASSWORD)
    } else {
        Ok(credential)
    }
}

/// From `from`, the URL runs to the first separator, and the login to that separator again.
#[inline]
fn fields_from(line: &[u8], from: usize, separator: fn(u8) -> bool) -> Result<Fields, Refusal> {
    let url_end = from
        + line[from..]
            .iter()
            .position(|&b| separator(b))
            .ok_or(NO_SEPARATOR)?;
    let sep = line[url_end];
    let login_end =
        url_end + 1 + memchr::memchr(sep, &line[url_end + 1..]).ok_or_else(|| no_second(sep))?;
    Ok(Fields { url_end, login_end })
}

/// The end of a port that starts at `start` (just after a `:`): 1 to 5 digits, at most 65535,
/// followed by the end of the line, `/`, `?`, `#` or a separator.
#[inline]
fn port_end(line: &[u8], start: usize, separator: fn(u8) -> bool) -> Option<usize> {
    let mut end = start;
    let mut value = 0u32;
    while end < line.len() && line[end].is_ascii_digit() {
        if end - start == 5 {
            return None;
        }
        value = value * 10 + u32::from(line[end] - b'0');
        end += 1;
    }
    let followed = match line.get(end) {
        None => true,
        Some(&b) => matches!(b, b'/' | b'?' | b'#') || separator(b),
    };
    (end > start && value <= 65535 && followed).then_some(end)
}

/// The fields of a line whose host ends at `host_end`: past a port if there is one.
#[inline]
fn after_host(line: &[u8], host_end: usize, separator: fn(u8) -> bool) -> Result<Fields, Refusal> {
    if line.get(host_end) == Some(&b':') {
        if let Some(port_end) = port_end(line, host_end + 1, separator) {
            let with_port = fields_from(line, port_end, separator);
            if with_port.is_ok() || line.get(port_end) != Some(&b':') {
                return with_port;
            }
            // `host:DIGITS:` with no login, separator and password after the digits: the
            // digits are the login.
        }
    }
    fields_from(line, host_end, separator)
}

/// Splits a stealer-log line into URL, login and password by the rules of the
/// [module documentation](self): `URL:LOGIN:PASSWORD` (or `|`, space, tab), `host:login:password`
/// and `login:password`.
#[inline]
pub fn parse_ulp(line: &[u8]) -> Result<Credential<'_>, Refusal> {
    match scheme_len(line) {
        Some(start) => {
            let host_end = if line.get(start) == Some(&b'[') {
                start + 1 + memchr::memchr(b']', &line[start..]).ok_or(OPEN_BRACKET)?
            } else {
                start
                    + line[start..]
                        .iter()
                        .position(|&b| matches!(b, b'/' | b'?' | b'#') || any_separator(b))
                        .unwrap_or(line.len() - start)
            };
            if host_end == start {
                return Err(NO_HOST);
            }
            after_host(line, host_end, any_separator)?.credential(line)
        }
        None => {
            let first = memchr::memchr2(b':', b'|', line).ok_or(NO_COLON)?;
            if line[first] == b':' && line[first + 1..].starts_with(b"//") {
                return Err(URL_INSIDE);
            }
            let field = &line[..first];
            if memchr::memchr(b'.', field).is_some()
                && memchr::memchr3(b'@', b' ', b'\t', field).is_none()
            {
                if let Ok(fields) = fields_from(line, first, colon_or_bar) {
                    return fields.credential(line);
                }
            }
            let (login, password) = split_combo(line).ok_or(NO_COLON)?;
            check(Credential {
                url: None,
                login,
                password,
            })
        }
    }
}

/// Splits a combolist line at its first `:`. A line that starts with a scheme is refused
/// with a reason that names `--input ulp`; an empty login or password is accepted.
#[inline]
pub fn parse_combo(line: &[u8]) -> Result<Credential<'_>, Refusal> {
    if scheme_len(line).is_some() {
        return Err(COMBO_URL);
    }
    let (login, password) = split_combo(line).ok_or(NO_COLON)?;
    Ok(Credential {
        url: None,
        login,
        password,
    })
}

#[inline]
fn split_combo(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    Some((&line[..colon], &line[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields = (Option<String>, String, String);

    fn owned(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// `(url, login, password)` of a line read with `--input ulp`.
    fn ulp(line: &str) -> Result<Fields, Refusal> {
        parse_ulp(line.as_bytes()).map(|c| (c.url.map(owned), owned(c.login), owned(c.password)))
    }

    fn ok(url: &str, login: &str, password: &str) -> Result<Fields, Refusal> {
        Ok((Some(url.into()), login.into(), password.into()))
    }

    fn combo(login: &str, password: &str) -> Result<Fields, Refusal> {
        Ok((None, login.into(), password.into()))
    }

    #[test]
    fn schemes_are_recognised() {
        assert_eq!(scheme_len(b"https://x"), Some(8));
        assert_eq!(scheme_len(b"android://x"), Some(10));
        assert_eq!(scheme_len(b"git+ssh://x"), Some(10));
        assert_eq!(scheme_len(b"a.b-c://x"), Some(8));
        assert_eq!(scheme_len(b"X://"), Some(4));
        assert_eq!(scheme_len(b"1http://x"), None);
        assert_eq!(scheme_len(b" https://x"), None);
        assert_eq!(scheme_len(b"ht_tp://x"), None);
        assert_eq!(scheme_len(b"https:/x"), None);
        assert_eq!(scheme_len(b"https"), None);
        assert_eq!(scheme_len(b"://x"), None);
        assert_eq!(scheme_len(b""), None);
    }

    #[test]
    fn the_four_lines_of_issue_10() {
        assert_eq!(
            ulp("https://accounts.google.com:alice@example.com:hunter2"),
            ok(
                "https://accounts.google.com",
                "alice@example.com",
                "hunter2"
            )
        );
        assert_eq!(
            ulp("bob@example.com:password"),
            combo("bob@example.com", "password")
        );
        assert_eq!(
            ulp("android://xyz@com.app/:carol:letmein"),
            ok("android://xyz@com.app/", "carol", "letmein")
        );
        assert_eq!(
            ulp("site.com|dave|qwerty"),
            ok("site.com", "dave", "qwerty")
        );
    }

    #[test]
    fn ports_and_paths() {
        assert_eq!(
            ulp("https://host:8443/login:user:pw"),
            ok("https://host:8443/login", "user", "pw")
        );
        assert_eq!(
            ulp("https://host:8443/auth/login?next=/a#top:user:pw"),
            ok("https://host:8443/auth/login?next=/a#top", "user", "pw")
        );
        assert_eq!(
            ulp("https://host:8443:user:pw"),
            ok("https://host:8443", "user", "pw")
        );
        assert_eq!(
            ulp("https://host:8443|user|pw"),
            ok("https://host:8443", "user", "pw")
        );
        assert_eq!(
            ulp("https://host:8443 user pw"),
            ok("https://host:8443", "user", "pw")
        );
        assert_eq!(
            ulp("https://host:8443\tuser\tpw"),
            ok("https://host:8443", "user", "pw")
        );
        assert_eq!(
            ulp("https://host:1:user:pw"),
            ok("https://host:1", "user", "pw")
        );
        assert_eq!(
            ulp("https://host:65535:user:pw"),
            ok("https://host:65535", "user", "pw")
        );
        assert_eq!(
            ulp("https://host/:user:pw"),
            ok("https://host/", "user", "pw")
        );
        assert_eq!(
            ulp("https://host?x=1:user:pw"),
            ok("https://host?x=1", "user", "pw")
        );
        assert_eq!(
            ulp("https://accounts.google.com/:alice@example.com:hunter2"),
            ok(
                "https://accounts.google.com/",
                "alice@example.com",
                "hunter2"
            )
        );
        // A path may hold `@` and `=`.
        assert_eq!(
            ulp("https://h.com/a@b=c/:user:pw"),
            ok("https://h.com/a@b=c/", "user", "pw")
        );
        // Userinfo before the host is part of it.
        assert_eq!(
            ulp("ftp://anon@ftp.site.com:21/pub:user:pw"),
            ok("ftp://anon@ftp.site.com:21/pub", "user", "pw")
        );
    }

    #[test]
    fn a_port_or_a_numeric_login() {
        // The rest holds a login and a password after the digits: they are a port.
        assert_eq!(
            ulp("https://host:12345:pa:ss"),
            ok("https://host:12345", "pa", "ss")
        );
        // It does not: the digits are the login.
        assert_eq!(
            ulp("https://host:1234:pw"),
            ok("https://host", "1234", "pw")
        );
        assert_eq!(
            ulp("https://host:1234:p w|x"),
            ok("https://host", "1234", "p w|x")
        );
        // Six digits, or more than 65535, are never a port.
        assert_eq!(
            ulp("https://host:5551234567:pa:ss"),
            ok("https://host", "5551234567", "pa:ss")
        );
        assert_eq!(
            ulp("https://host:123456:pa:ss"),
            ok("https://host", "123456", "pa:ss")
        );
        assert_eq!(
            ulp("https://host:65536:pa:ss"),
            ok("https://host", "65536", "pa:ss")
        );
        assert_eq!(
            ulp("https://host:000080:pa:ss"),
            ok("https://host", "000080", "pa:ss")
        );
        // A port is followed by a path, a query, a fragment or a separator.
        assert_eq!(
            ulp("https://host:8443?next=/a:user:pw"),
            ok("https://host:8443?next=/a", "user", "pw")
        );
        assert_eq!(
            ulp("https://host:8443#x:user:pw"),
            ok("https://host:8443#x", "user", "pw")
        );
        // Digits after a query are not a port: `?` and `#` end the host.
        assert_eq!(
            ulp("https://site.com?ref=x:12345:pa:ss"),
            ok("https://site.com?ref=x", "12345", "pa:ss")
        );
        assert_eq!(
            ulp("https://site.com#top:12345:pa:ss"),
            ok("https://site.com#top", "12345", "pa:ss")
        );
        // Digits followed by something else are the start of the login.
        assert_eq!(
            ulp("https://host:8443abc:pw"),
            ok("https://host", "8443abc", "pw")
        );
        // A port and a path with nothing after: refused, not read as login `8443/x`.
        assert_eq!(ulp("https://host:8443/x:user"), Err(no_second(b':')));
        assert_eq!(ulp("https://host:8443"), Err(NO_SEPARATOR));
        assert_eq!(ulp("https://host:8443/login"), Err(NO_SEPARATOR));
        // A port, then the separator, an empty login: refused, not login `8443`.
        assert_eq!(ulp("https://host:8443/:user:"), Err(EMPTY_PASSWORD));
        assert_eq!(ulp("https://host:8443::pw"), Err(EMPTY_LOGIN));
    }

    #[test]
    fn passwords_hold_separators_and_anything_else() {
        assert_eq!(
            ulp("https://site.com/:bob:pa:ss|wo rd\tx"),
            ok("https://site.com/", "bob", "pa:ss|wo rd\tx")
        );
        assert_eq!(
            ulp("https://site.com/login|bob|pa ss|word"),
            ok("https://site.com/login", "bob", "pa ss|word")
        );
        assert_eq!(
            ulp("https://site.com/ bob my pass"),
            ok("https://site.com/", "bob", "my pass")
        );
        assert_eq!(
            ulp("https://site.com/\tbob\tmy\tpass: |x"),
            ok("https://site.com/", "bob", "my\tpass: |x")
        );
        assert_eq!(ulp("https://s.com:bob: "), ok("https://s.com", "bob", " "));
        assert_eq!(
            ulp("https://s.com:bob:пароль密码🔑"),
            ok("https://s.com", "bob", "пароль密码🔑")
        );
        let line = b"https://s.com:bob:\xff\x00\xfe";
        assert_eq!(parse_ulp(line).unwrap().password, b"\xff\x00\xfe");
        // The login runs to the same separator; other separators are part of it.
        assert_eq!(
            ulp("https://s.com|a:b c|pw"),
            ok("https://s.com", "a:b c", "pw")
        );
        assert_eq!(
            ulp("https://s.com b|c:d pw"),
            ok("https://s.com", "b|c:d", "pw")
        );
        // Line ends are the caller's: a `\r` left on stays in the password.
        assert_eq!(
            ulp("https://s.com:bob:pw\r"),
            ok("https://s.com", "bob", "pw\r")
        );
    }

    #[test]
    fn android_urls() {
        assert_eq!(
            ulp("android://Kj8mZp1p-ZhDvY1w_Pj4UedlUwbYFv7v5h6Y0mU9eD==@com.facebook.katana/:alice@example.com:hunter2"),
            ok(
                "android://Kj8mZp1p-ZhDvY1w_Pj4UedlUwbYFv7v5h6Y0mU9eD==@com.facebook.katana/",
                "alice@example.com",
                "hunter2"
            )
        );
        // No `/` after the package.
        assert_eq!(
            ulp("android://abc+def==@com.app.name:carol:let:me:in"),
            ok("android://abc+def==@com.app.name", "carol", "let:me:in")
        );
        assert_eq!(
            ulp("android://abc==@com.app.name/|carol|letmein"),
            ok("android://abc==@com.app.name/", "carol", "letmein")
        );
        assert_eq!(
            ulp("android://abc==@com.app.name/ carol letmein"),
            ok("android://abc==@com.app.name/", "carol", "letmein")
        );
        // Standard base64 may hold `/`: the rest of it reads as a path.
        assert_eq!(
            ulp("android://ab/cd==@com.app/:carol:letmein"),
            ok("android://ab/cd==@com.app/", "carol", "letmein")
        );
    }

    #[test]
    fn ipv6_hosts() {
        assert_eq!(
            ulp("http://[::1]:8080/x:root:toor"),
            ok("http://[::1]:8080/x", "root", "toor")
        );
        assert_eq!(
            ulp("http://[2001:db8::1]:root:toor"),
            ok("http://[2001:db8::1]", "root", "toor")
        );
        assert_eq!(ulp("http://[2001:db8::1:root:toor"), Err(OPEN_BRACKET));
    }

    #[test]
    fn host_first_lines() {
        assert_eq!(
            ulp("site.com|dave|qwerty"),
            ok("site.com", "dave", "qwerty")
        );
        assert_eq!(
            ulp("site.com:dave:qwerty"),
            ok("site.com", "dave", "qwerty")
        );
        assert_eq!(ulp("site.com:dave:pa:ss"), ok("site.com", "dave", "pa:ss"));
        assert_eq!(
            ulp("site.com|dave|pa|ss: x"),
            ok("site.com", "dave", "pa|ss: x")
        );
        assert_eq!(ulp("site.com|a:b|pw"), ok("site.com", "a:b", "pw"));
        assert_eq!(
            ulp("www.site.com/login:dave:pw"),
            ok("www.site.com/login", "dave", "pw")
        );
        assert_eq!(
            ulp("192.168.0.1:admin:admin"),
            ok("192.168.0.1", "admin", "admin")
        );
        assert_eq!(ulp("site.com:1234:pw"), ok("site.com", "1234", "pw"));
        // No port without a scheme: digits after the host are the login.
        assert_eq!(ulp("site.com:4242:pa:ss"), ok("site.com", "4242", "pa:ss"));
        assert_eq!(
            ulp("192.168.0.1:8080:admin:admin"),
            ok("192.168.0.1", "8080", "admin:admin")
        );
        // ... so a port followed by `|` leaves no three `:` fields: `login:password`.
        assert_eq!(
            ulp("site.com:8080|dave|pw"),
            combo("site.com", "8080|dave|pw")
        );
        // Ambiguous, decided by the rule: a dotted user name with a password holding `:`.
        assert_eq!(ulp("john.doe:pa:ss"), ok("john.doe", "pa", "ss"));
        // Space and tab are not separators without a scheme.
        assert_eq!(ulp("site.com dave qwerty"), Err(NO_COLON));
    }

    #[test]
    fn login_password_lines() {
        assert_eq!(
            ulp("bob@example.com:password"),
            combo("bob@example.com", "password")
        );
        // Not host-first: an `@`, a space or a tab, no `.`, or only two fields.
        assert_eq!(
            ulp("bob@example.com:pa:ss"),
            combo("bob@example.com", "pa:ss")
        );
        assert_eq!(ulp("a.b@c:pa:ss"), combo("a.b@c", "pa:ss"));
        assert_eq!(ulp("my site.com:pa:ss"), combo("my site.com", "pa:ss"));
        assert_eq!(ulp("my\tsite.com:pa:ss"), combo("my\tsite.com", "pa:ss"));
        assert_eq!(ulp("alice:pa:ss"), combo("alice", "pa:ss"));
        assert_eq!(ulp("site.com:password"), combo("site.com", "password"));
        assert_eq!(ulp("alice:pa ss|x"), combo("alice", "pa ss|x"));
        // A first field ended by `|` that is no host: split at the first `:`.
        assert_eq!(ulp("bob|smith:pw|x"), combo("bob|smith", "pw|x"));
        assert_eq!(ulp("site.com|a:b"), combo("site.com|a", "b"));
        assert_eq!(ulp("5551234567:pw"), combo("5551234567", "pw"));
    }

    #[test]
    fn lines_that_are_refused() {
        for (line, why) in [
            ("https://site.com/login", NO_SEPARATOR),
            ("https://site.com", NO_SEPARATOR),
            ("https://", NO_HOST),
            ("https://:bob:pw", NO_HOST),
            ("https:///path:bob:pw", NO_HOST),
            ("https://site.com:bob", no_second(b':')),
            ("https://site.com|bob", no_second(b'|')),
            ("https://site.com bob", no_second(b' ')),
            ("https://site.com\tbob", no_second(b'\t')),
            ("https://site.com/:bob|pw", no_second(b':')),
            ("https://site.com::pw", EMPTY_LOGIN),
            ("https://site.com/||pw", EMPTY_LOGIN),
            ("https://site.com:bob:", EMPTY_PASSWORD),
            ("https://site.com  pw", EMPTY_LOGIN),
            ("site.com:bob:", EMPTY_PASSWORD),
            ("site.com::pw", EMPTY_LOGIN),
            ("site.com||pw", EMPTY_LOGIN),
            ("site.com|bob|", EMPTY_PASSWORD),
            ("site.com|bob", NO_COLON),
            ("password", NO_COLON),
            ("bob|pw", NO_COLON),
            ("bob pw", NO_COLON),
            (":pw", EMPTY_LOGIN),
            ("bob:", EMPTY_PASSWORD),
            (":", EMPTY_LOGIN),
            (" https://site.com:bob:pw", URL_INSIDE),
            ("\"https://site.com\":bob:pw", URL_INSIDE),
            ("\u{feff}https://site.com:bob:pw", URL_INSIDE),
            ("ht_tp://site.com:bob:pw", URL_INSIDE),
            ("https://site.com/login | bob | pw", SEPARATOR_LOGIN),
            ("https://site.com/login : bob : pw", SEPARATOR_LOGIN),
            ("https://site.com/ |\t| pw", SEPARATOR_LOGIN),
        ] {
            assert_eq!(ulp(line), Err(why), "{line:?}");
        }
    }

    #[test]
    fn combo_lines() {
        let c = |line: &str| {
            parse_combo(line.as_bytes()).map(|c| {
                assert_eq!(c.url, None);
                (
                    String::from_utf8(c.login.to_vec()).unwrap(),
                    String::from_utf8(c.password.to_vec()).unwrap(),
                )
            })
        };
        let pair = |l: &str, p: &str| Ok((l.to_string(), p.to_string()));
        assert_eq!(c("alice:password"), pair("alice", "password"));
        assert_eq!(c("alice:pa:ss"), pair("alice", "pa:ss"));
        // Host-first lines are not a combo rule: the password is after the first `:`.
        assert_eq!(c("site.com:dave:pw"), pair("site.com", "dave:pw"));
        assert_eq!(c("a|b:c"), pair("a|b", "c"));
        // Empty fields are accepted, as before.
        assert_eq!(c("alice:"), pair("alice", ""));
        assert_eq!(c(":pw"), pair("", "pw"));
        assert_eq!(c("nocolon"), Err(NO_COLON));
        for line in [
            "https://accounts.google.com:alice@example.com:hunter2",
            "android://xyz@com.app/:carol:letmein",
            "ftp://h:u:p",
            "https://",
        ] {
            let why = parse_combo(line.as_bytes()).unwrap_err();
            assert_eq!(why, COMBO_URL);
            assert!(why.contains("--input ulp"));
        }
    }
}
