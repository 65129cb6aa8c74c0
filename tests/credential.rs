//! Stealer-log and combo lines (issue 10): lines rendered from known URL, login, password and
//! separator parse back into them; any line parses into slices that tile it or is refused; a
//! random stealer file builds password, login and pair indexes with the counts of HashMap
//! models of the same rules; and the command
//! line builds `--input ulp` from the issue's sample while `--input combo` refuses its URLs.

mod common;

use common::{run, s, text};
use leakdex::credential::{parse_combo, parse_ulp, scheme_len};
use leakdex::hash::sha1_password;
use leakdex::{build_index, BuildOptions, HashBytes, Index, InputFormat, KeyType, NoProgress};
use proptest::prelude::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// The shape of a rendered line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `scheme://host[:port][/path]` SEP login SEP password.
    Scheme,
    /// `host[/path]` SEP login SEP password, SEP `:` or `|`.
    HostFirst,
    /// `login:password`.
    Combo,
}

/// A credential and how it is written on its line.
#[derive(Clone, Debug)]
struct Record {
    shape: Shape,
    url: String,
    login: String,
    password: String,
    separator: char,
}

impl Record {
    fn render(&self) -> String {
        let s = self.separator;
        match self.shape {
            Shape::Combo => format!("{}:{}", self.login, self.password),
            _ => format!("{}{s}{}{s}{}", self.url, self.login, self.password),
        }
    }
}

fn scheme() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("https".to_string()),
        1 => Just("http".to_string()),
        1 => Just("android".to_string()),
        1 => "[A-Za-z][A-Za-z0-9+.-]{0,8}",
    ]
}

/// Hosts of scheme lines: names, IPv4, Android package hosts with `@` and `=`, userinfo, and
/// IPv6 in brackets.
fn scheme_host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9-]{1,12}(\\.[a-z0-9-]{1,8}){0,3}",
        1 => "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        2 => "[A-Za-z0-9+_-]{4,24}={0,2}@[a-z]{2,8}(\\.[a-z]{2,10}){1,3}",
        1 => "[a-z]{1,6}@[a-z]{1,8}\\.[a-z]{2,3}",
        1 => "\\[[0-9a-f:]{2,20}\\]",
    ]
}

/// Hosts of host-first lines: a `.`, no `@`.
fn bare_host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9-]{1,12}(\\.[a-z0-9-]{1,8}){1,3}",
        1 => "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
    ]
}

/// `:port` or nothing; leading zeros included, never more than 5 digits.
fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        1 => any::<u16>().prop_map(|p| format!(":{p}")),
        1 => (0u16..1000).prop_map(|p| format!(":{p:05}")),
    ]
}

/// A path, query or fragment without separators. `with_at`: may hold `@`.
fn path(with_at: bool) -> impl Strategy<Value = String> {
    let chars = if with_at {
        "/[A-Za-z0-9._~%!$&'()*+,;=@/?#-]{0,24}"
    } else {
        "/[A-Za-z0-9._~%!$&'()*+,;=/?#-]{0,24}"
    };
    prop_oneof![Just(String::new()), chars]
}

/// A login: it starts with a letter (so that it cannot read as a port), or is a phone
/// number of six digits or more; it may hold separators other than the line's.
fn login(separator: char) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9._+-]{0,10}@[a-z]{1,8}\\.[a-z]{2,3}",
        2 => "[A-Za-z][A-Za-z0-9._:| \t-]{0,14}",
        1 => "\\+?[0-9]{6,12}",
        1 => "[A-Za-zÀ-ÿЀ-ӿ][^\n\r]{0,10}",
    ]
    .prop_map(move |l: String| l.replace(separator, ""))
    .prop_filter("a login", |l| !l.is_empty())
}

/// A password: anything but a line end, separators included.
fn password() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[^\n]{1,24}",
        2 => "[A-Za-z0-9:| \t@/=.!#]{1,24}",
        1 => Just(":".to_string()),
        1 => Just(" ".to_string()),
    ]
}

fn separator(with_blanks: bool) -> impl Strategy<Value = char> {
    let all = if with_blanks {
        vec![':', '|', ' ', '\t']
    } else {
        vec![':', '|']
    };
    proptest::sample::select(all)
}

fn scheme_record() -> impl Strategy<Value = Record> {
    (scheme(), scheme_host(), port(), path(true), separator(true)).prop_flat_map(
        |(scheme, host, port, path, separator)| {
            let url = format!("{scheme}://{host}{port}{path}");
            (login(separator), password()).prop_map(move |(login, password)| Record {
                shape: Shape::Scheme,
                url: url.clone(),
                login,
                password,
                separator,
            })
        },
    )
}

fn host_first_record() -> impl Strategy<Value = Record> {
    (bare_host(), path(false), separator(false)).prop_flat_map(|(host, path, separator)| {
        let url = format!("{host}{path}");
        // Without a scheme there is no port: short numbers are logins.
        let login = prop_oneof![3 => login(separator), 1 => "[0-9]{1,5}"];
        (login, password()).prop_map(move |(login, password)| Record {
            shape: Shape::HostFirst,
            url: url.clone(),
            login,
            password,
            separator,
        })
    })
}

fn combo_record() -> impl Strategy<Value = Record> {
    (
        prop_oneof![
            "[a-z0-9._+-]{1,10}@[a-z]{1,8}\\.[a-z]{2,3}",
            "[A-Za-z0-9_-]{1,12}",
            "\\+?[0-9]{1,12}",
        ],
        // A password after `login:` that starts with `//` would make a URL of the line.
        password().prop_filter("not //", |p| !p.starts_with("//")),
    )
        .prop_map(|(login, password)| Record {
            shape: Shape::Combo,
            url: String::new(),
            login,
            password,
            separator: ':',
        })
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        3 => scheme_record(),
        1 => host_first_record(),
        1 => combo_record(),
    ]
}

/// Where `part` starts in `line`, of which it must be a slice.
fn offset(line: &[u8], part: &[u8]) -> usize {
    let at = part.as_ptr() as usize - line.as_ptr() as usize;
    assert!(at + part.len() <= line.len());
    at
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rendered_lines_parse_back(r in record()) {
        let line = r.render();
        let c = parse_ulp(line.as_bytes())
            .unwrap_or_else(|why| panic!("{line:?} refused: {why}"));
        let expected_url = (r.shape != Shape::Combo).then_some(r.url.as_bytes());
        prop_assert_eq!(c.url, expected_url, "{:?}", line);
        prop_assert_eq!(c.login, r.login.as_bytes(), "{:?}", line);
        prop_assert_eq!(c.password, r.password.as_bytes(), "{:?}", line);
        // Combo agrees on the lines it takes, and refuses the others with a hint.
        match r.shape {
            Shape::Combo => {
                let c = parse_combo(line.as_bytes()).unwrap();
                prop_assert_eq!(c.login, r.login.as_bytes());
                prop_assert_eq!(c.password, r.password.as_bytes());
            }
            Shape::Scheme => {
                let why = parse_combo(line.as_bytes()).unwrap_err();
                prop_assert!(why.contains("--input ulp"));
            }
            Shape::HostFirst => {}
        }
    }

    /// Any line, well formed or not: refused, or split into a URL, the separator, the login,
    /// the same separator and the password, which tile the line (or `login:password` with the
    /// first `:`), none of them empty where the rules say so.
    #[test]
    fn any_line_is_refused_or_tiled(
        prefix in prop_oneof![Just(""), Just("https://"), Just("android://"), Just("x://")],
        body in "[a-z0-9.:|@/= \t\\[\\]?#]{0,30}",
    ) {
        let line = format!("{prefix}{body}");
        let bytes = line.as_bytes();
        let Ok(c) = parse_ulp(bytes) else { return Ok(()); };
        prop_assert!(!c.login.is_empty() && !c.password.is_empty());
        let login_at = offset(bytes, c.login);
        let password_at = offset(bytes, c.password);
        prop_assert_eq!(password_at + c.password.len(), bytes.len());
        match c.url {
            Some(url) => {
                prop_assert_eq!(offset(bytes, url), 0);
                prop_assert!(!url.is_empty());
                let sep = bytes[url.len()];
                prop_assert!(b":| \t".contains(&sep));
                prop_assert_eq!(login_at, url.len() + 1);
                prop_assert_eq!(bytes[login_at + c.login.len()], sep);
                prop_assert_eq!(password_at, login_at + c.login.len() + 1);
                prop_assert!(!c.login.contains(&sep));
                if scheme_len(bytes).is_none() {
                    prop_assert!(sep == b':' || sep == b'|');
                }
            }
            None => {
                prop_assert!(scheme_len(bytes).is_none());
                prop_assert_eq!(login_at, 0);
                prop_assert_eq!(bytes[c.login.len()], b':');
                prop_assert!(!c.login.contains(&b':'));
                prop_assert_eq!(password_at, c.login.len() + 1);
            }
        }
    }
}

// --- A random stealer file against a model -------------------------------------------------

/// Lines that fit no rule: each must be counted and left out.
const BAD_LINES: [&str; 6] = [
    "https://site.com/login",
    "https://site.com:bob",
    "site.com:bob:",
    "nocolon",
    ":pw",
    " https://site.com:bob:pw",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_random_stealer_file_builds_the_model_counts(
        records in proptest::collection::vec(record(), 1..120),
        repeats in proptest::collection::vec((0usize..1000, 1usize..4), 0..20),
        bad in proptest::collection::vec((0usize..1000, 0usize..BAD_LINES.len()), 0..10),
        crlf in any::<bool>(),
        bom in any::<bool>(),
        blanks in proptest::collection::vec(0usize..1000, 0..5),
    ) {
        // A `\r` that ends a line is part of its line end, not of the password.
        let records: Vec<Record> = records
            .into_iter()
            .map(|mut r| {
                r.password = r.password.trim_end_matches('\r').to_string() + "x";
                r
            })
            .collect();
        let mut lines: Vec<String> = records.iter().map(Record::render).collect();
        // One model per key, by the rules written out here: the password as it is; the login
        // trimmed of ASCII whitespace and lowercased; the two joined by `:`. A login that is
        // empty once trimmed is left out of login and pair indexes.
        let mut models: [HashMap<HashBytes, u64>; 3] = Default::default();
        let mut empty_logins = 0u64;
        let mut add = |r: &Record| {
            *models[0].entry(sha1_password(r.password.as_bytes())).or_default() += 1;
            let login = r.login.trim_matches(|c: char| c.is_ascii_whitespace()).to_lowercase();
            if login.is_empty() {
                empty_logins += 1;
                return;
            }
            *models[1].entry(sha1_password(login.as_bytes())).or_default() += 1;
            let pair = format!("{login}:{}", r.password);
            *models[2].entry(sha1_password(pair.as_bytes())).or_default() += 1;
        };
        for r in &records {
            add(r);
        }
        // Repeated lines add up.
        for &(pick, times) in &repeats {
            let r = &records[pick % records.len()];
            for _ in 0..times {
                lines.push(r.render());
                add(r);
            }
        }
        for &(at, which) in &bad {
            lines.insert(at % (lines.len() + 1), BAD_LINES[which].to_string());
        }
        for &at in &blanks {
            lines.insert(at % (lines.len() + 1), String::new());
        }
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = if bom { "\u{feff}".to_string() } else { String::new() };
        text.push_str(&lines.join(end));
        text.push_str(end);

        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("stealer.txt");
        std::fs::write(&input, &text).unwrap();
        for (key, model) in KeyType::ALL.into_iter().zip(&models) {
            let output = dir.path().join(format!("{key}.ldx"));
            let options = BuildOptions {
                input: InputFormat::Ulp,
                key: Some(key),
                chunk_size: 512,
                allow_empty: true,
                ..BuildOptions::default()
            };
            let summary =
                build_index(std::slice::from_ref(&input), &output, &options, &NoProgress).unwrap();
            let skipped_logins = if key == KeyType::Password { 0 } else { empty_logins };
            prop_assert_eq!(summary.skipped_lines, bad.len() as u64 + skipped_logins);
            let index = Index::open(&output).unwrap();
            prop_assert_eq!(index.key(), key);
            let mut got: HashMap<HashBytes, u64> = HashMap::new();
            index
                .for_each_entry(&mut |e| {
                    got.insert(e.hash, e.count);
                    Ok(())
                })
                .unwrap();
            prop_assert_eq!(&got, model, "key {}", key);
        }
    }
}

// --- The command line ---------------------------------------------------------------------

/// The four lines of issue 10.
const SAMPLE: &str = "https://accounts.google.com:alice@example.com:hunter2\n\
                      bob@example.com:password\n\
                      android://xyz@com.app/:carol:letmein\n\
                      site.com|dave|qwerty\n";

/// `check -i INDEX` of `passwords`: each one's printed count, and the exit code.
fn check(index: &Path, passwords: &[&str]) -> (Vec<u64>, Option<i32>) {
    let stdin: String = passwords.iter().map(|p| format!("{p}\n")).collect();
    let out = run(&["check", "-i", s(index)], stdin.as_bytes());
    let stdout = text(&out.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), passwords.len(), "{stdout}");
    let counts = rows
        .iter()
        .zip(passwords)
        .map(|(row, p)| {
            let (hash, count) = row.split_once(':').unwrap();
            let expected =
                leakdex::hash::hash_to_hex(&sha1_password(p.as_bytes()), leakdex::HashKind::Sha1);
            assert_eq!(hash, expected, "{row}");
            count.parse().unwrap()
        })
        .collect();
    (counts, out.status.code())
}

#[test]
fn build_input_ulp_finds_the_passwords_of_the_issue_sample() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("stealer.txt");
    std::fs::write(&input, SAMPLE).unwrap();
    let index = d.join("ulp.ldx");
    let out = run(
        &["build", "--input", "ulp", s(&input), "-o", s(&index)],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(": 4 SHA-1 hashes"), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(!stderr.contains("left out"), "{stderr}");
    let found = ["hunter2", "password", "letmein", "qwerty"];
    for password in found {
        assert_eq!(check(&index, &[password]), (vec![1], Some(1)), "{password}");
    }
    // What --input combo used to index instead is not there.
    let (counts, code) = check(
        &index,
        &[
            "//accounts.google.com:alice@example.com:hunter2",
            "//xyz@com.app/:carol:letmein",
            "dave|qwerty",
            "alice@example.com:hunter2",
        ],
    );
    assert_eq!((counts, code), (vec![0, 0, 0, 0], Some(0)));

    // The same through a pipe, gzip-compressed, with CRLF, a byte-order mark, blank lines
    // and a line that fits no rule, which is reported by line number and never shown.
    let mut crlf = "\u{feff}".to_string() + &SAMPLE.replace('\n', "\r\n");
    crlf.push_str("\r\nhttps://secret-site.com/login\r\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(crlf.as_bytes()).unwrap();
    let piped = d.join("piped.ldx");
    let out = run(
        &["build", "--input", "ulp", "-", "-q", "-o", s(&piped)],
        &gz.finish().unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("-:6: a URL with no `:`, `|`, space or tab after it"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-site"), "{stderr}");
    let (counts, code) = check(&piped, &found);
    assert_eq!((counts, code), (vec![1, 1, 1, 1], Some(1)));
}

#[test]
fn build_input_combo_refuses_stealer_lines_and_names_ulp() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("stealer.txt");
    std::fs::write(&input, SAMPLE).unwrap();
    let index = d.join("combo.ldx");
    let out = run(
        &["build", "--input", "combo", s(&input), "-o", s(&index)],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    // Each URL line is counted and reported with the hint.
    assert!(
        stderr.contains("3 lines could not be hashed and were left out"),
        "{stderr}"
    );
    for line in [1, 3] {
        assert!(
            stderr.contains(&format!(
                "stealer.txt:{line}: starts with a URL, as stealer-log lines do; --input combo \
                 leaves them out: use --input ulp"
            )),
            "{stderr}"
        );
    }
    assert!(
        stderr.contains("stealer.txt:4: no `:` between user and password"),
        "{stderr}"
    );
    for secret in ["hunter2", "letmein", "alice", "carol"] {
        assert!(!stderr.contains(secret), "{stderr}");
    }
    // Only bob's line is indexed; nothing of the refused lines is.
    let (counts, code) = check(
        &index,
        &[
            "password",
            "hunter2",
            "//accounts.google.com:alice@example.com:hunter2",
            "//xyz@com.app/:carol:letmein",
        ],
    );
    assert_eq!((counts, code), (vec![1, 0, 0, 0], Some(1)));
}
