//! The page for people on `leakdex serve` (`GET /`), its `/about`, `--no-page`, and the page
//! driven through headless Chromium by `tests/browser/page.py`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Stealer-log lines for the login and pair indexes: Alice twice (her login in two cases), Bob
/// once.
const STEALER: &[u8] = b"https://accounts.google.com:alice@example.com:hunter2\n\
https://www.netflix.com/login: Alice@Example.COM :hunter2\n\
bob@example.com:correct horse battery staple\n";

fn build(dir: &Path, name: &str, args: &[&str], lines: &[u8]) -> PathBuf {
    let input = write_file(dir, &format!("{name}.txt"), lines);
    let out = dir.join(format!("{name}.ldx"));
    let mut all: Vec<&str> = vec!["build", "-q", "-o", s(&out)];
    all.extend_from_slice(args);
    all.push(s(&input));
    let result = run(&all, b"");
    assert_eq!(result.status.code(), Some(0), "{}", text(&result.stderr));
    out
}

/// A SHA-1 password index (hunter2 three times, one more password once, and enough others to
/// fill ranges), a login index and a pair index.
fn indexes(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut passwords = b"hunter2\nhunter2\nhunter2\nTr0ub4dor&3\n".to_vec();
    for i in 0..5000 {
        passwords.extend_from_slice(format!("filler-{i}\n").as_bytes());
    }
    let sha1 = build(dir, "passwords", &["--input", "passwords"], &passwords);
    let login = build(
        dir,
        "logins",
        &["--input", "ulp", "--key", "login"],
        STEALER,
    );
    let pair = build(dir, "pairs", &["--input", "ulp", "--key", "pair"], STEALER);
    (sha1, login, pair)
}

fn get(server: &Served, method: &str, path: &str) -> Reply {
    let mut conn = connect(server);
    send(&mut conn, method, path, &[])
}

#[test]
fn the_page_and_about_are_served_with_their_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (sha1, login, pair) = indexes(dir.path());
    let server = serve(&[&sha1, &login, &pair], &[]);
    let page = get(&server, "GET", "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert_eq!(csp, leakdex::web::Page::get().csp);
    assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
    assert!(csp.contains("connect-src 'self'") && csp.contains("form-action 'none'"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.body == leakdex::web::PAGE_HTML.as_bytes());
    let head = get(&server, "HEAD", "/");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(get(&server, "POST", "/").status, 405);

    // /about: what is held, per mode, without a path or a file name.
    let about = get(&server, "GET", "/about");
    assert_eq!(about.status, 200);
    assert_eq!(about.header("content-type"), Some("application/json"));
    let body = text(&about.body);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let list = json["indexes"].as_array().unwrap();
    let modes: Vec<&str> = list.iter().map(|i| i["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["sha1", "login", "pair"]);
    assert_eq!(list[0]["key"], "password");
    assert_eq!(list[0]["kind"], "sha1");
    assert_eq!(list[0]["hashes"], 5002);
    assert_eq!(list[1]["hashes"], 2);
    assert_eq!(list[2]["prefixes"], "00000-FFFFF");
    let built = list[0]["built"].as_str().unwrap();
    assert!(
        built.len() == 20 && built.ends_with('Z') && built.starts_with("20"),
        "{built}"
    );
    for leak in [s(dir.path()), "passwords", "logins", ".ldx", ".txt"] {
        assert!(!body.contains(leak), "/about shows {leak}: {body}");
    }
}

#[test]
fn no_page_answers_404_at_the_root_and_about_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (sha1, _, _) = indexes(dir.path());
    let server = serve(&[&sha1], &["--no-page"]);
    let root = get(&server, "GET", "/");
    assert_eq!(root.status, 404);
    assert!(!text(&root.body).contains("<html"));
    assert_eq!(get(&server, "GET", "/about").status, 200);
    assert_eq!(get(&server, "GET", "/range/5BAA6").status, 200);
}

/// Python with selenium, chromium and chromedriver, where all are installed (`scripts/test`
/// installs them with apt-get where it can).
fn browser() -> Option<&'static str> {
    let python = "/usr/bin/python3";
    let ready = Path::new("/usr/bin/chromium").exists()
        && Path::new("/usr/bin/chromedriver").exists()
        && Command::new(python)
            .args(["-c", "import selenium"])
            .output()
            .is_ok_and(|o| o.status.success());
    ready.then_some(python)
}

/// The page in headless Chromium against a real `leakdex serve`: a leaked password shows its
/// count, an unknown one "not found", accounts and pairs by their tabs; what the browser sent
/// was 5-hex prefixes with padding to the server only; the policy header came with the page.
/// A screenshot lands in target/page.png.
#[test]
fn the_page_works_in_a_real_browser() {
    let Some(python) = browser() else {
        eprintln!(
            "skipped: the browser test needs /usr/bin/chromium, /usr/bin/chromedriver and \
             python3-selenium (apt-get install chromium chromium-driver python3-selenium; \
             scripts/test installs them where it can)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (sha1, login, pair) = indexes(dir.path());
    let server = serve(&[&sha1, &login, &pair], &[]);
    let expectations = serde_json::json!({
        "passwords": [
            {"password": "hunter2", "count": 3},
            {"password": "Tr0ub4dor&3", "count": 1},
            {"password": "never leaked, surely", "count": 0},
        ],
        "logins": [
            {"login": " ALICE@example.com ", "count": 2},
            {"login": "nobody@example.com", "count": 0},
        ],
        "pairs": [
            {"login": "Bob@Example.com", "password": "correct horse battery staple", "count": 1},
            {"login": "bob@example.com", "password": "hunter2", "count": 0},
        ],
    });
    let expect_file = write_file(
        dir.path(),
        "expect.json",
        expectations.to_string().as_bytes(),
    );
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/page.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/page.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(format!("http://{}", server.addr))
        .arg(&expect_file)
        .arg(&screenshot)
        .output()
        .unwrap();
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if out.status.code() == Some(77) {
        eprintln!("skipped: {report}");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("every check passed"), "{report}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
}
