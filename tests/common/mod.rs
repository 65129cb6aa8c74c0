//! Helpers shared by the integration tests: a HashMap model and dump writers.
#![allow(dead_code)]

use leakdex::hash::write_decimal;
use leakdex::hash::{encode_hex_into, prefix_of};
use leakdex::{build_index, BuildOptions, HashBytes, HashKind, Index, NoProgress};
use std::collections::HashMap;
use std::io::Write;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The model: every hash with the sum of its counts.
pub type Model = HashMap<HashBytes, u64>;

/// Adds an entry to the model as the index should (counts summed).
pub fn model_add(model: &mut Model, hash: HashBytes, count: u64) {
    *model.entry(hash).or_insert(0) += count;
}

/// The range body the model says `prefix` should have.
pub fn model_range(model: &Model, kind: HashKind, prefix: u32) -> Vec<u8> {
    let mut rows: Vec<(&HashBytes, &u64)> = model
        .iter()
        .filter(|(h, _)| prefix_of(h) == prefix)
        .collect();
    rows.sort();
    let mut out = Vec::new();
    for (i, (h, c)) in rows.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let mut hex = Vec::new();
        encode_hex_into(&h[..kind.byte_len()], &mut hex);
        out.extend_from_slice(&hex[5..]);
        out.push(b':');
        write_decimal(**c, &mut out);
    }
    out
}

/// Upper-case hex of a hash.
pub fn hex(hash: &HashBytes, kind: HashKind) -> String {
    leakdex::hash::hash_to_hex(hash, kind)
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Builds an index from dump text and opens it.
pub fn build_from_text(dir: &Path, text: &[u8], options: &BuildOptions) -> leakdex::Result<Index> {
    let input = write_file(dir, "dump.txt", text);
    let output = dir.join("index.ldx");
    build_index(&[input], &output, options, &NoProgress)?;
    Index::open(&output)
}

/// A random hash from a small seed, with the prefix drawn from `prefixes`.
pub fn hash_from(seed: u64, prefix: u32, kind: HashKind) -> HashBytes {
    let mut h = [0u8; 20];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    for b in h.iter_mut() {
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        *b = (x >> 56) as u8;
    }
    h[0] = (prefix >> 12) as u8;
    h[1] = (prefix >> 4) as u8;
    h[2] = ((prefix as u8 & 0x0F) << 4) | (h[2] & 0x0F);
    h[kind.byte_len()..].fill(0);
    h
}

/// The index bytes that depend on content only: everything between the section table and the
/// sources section (which records file names, sizes and dates).
pub fn content_bytes(bytes: &[u8]) -> Vec<u8> {
    use leakdex::format::{HEADER_LEN, SECTIONS_START, SECTION_ENTRY_LEN};
    let sources = HEADER_LEN + 7 * SECTION_ENTRY_LEN;
    let offset = u64::from_le_bytes(bytes[sources + 8..sources + 16].try_into().unwrap()) as usize;
    bytes[SECTIONS_START..offset].to_vec()
}

/// Names of the files in `dir` whose names contain `needle` (temporary files left behind).
pub fn files_named_with(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(needle))
        .collect()
}

/// The leakdex binary of this build.
pub fn leakdex() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leakdex"))
}

/// Runs leakdex with `args`, `stdin` on its standard input, and collects what it prints.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = leakdex()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit before reading its input (an error exits early): not our failure.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// `leakdex build INPUT -o OUTPUT EXTRA...` with nothing on standard input.
pub fn run_build(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["build", s(input), "-o", s(output)];
    args.extend_from_slice(extra);
    run(&args, b"")
}

/// Printed bytes as text, for messages and comparisons.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A path as the `&str` an argument list takes.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Gives a child the default action for SIGINT, SIGTERM and SIGHUP, whatever this process
/// inherited: a test run started in the background has SIGINT ignored, and leakdex keeps an
/// ignored signal ignored (as under `nohup`), so a test that stops it by signal must reset them.
#[cfg(unix)]
pub fn default_signals(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec, only signal(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        })
    }
}

/// One HTTP/1.1 response, as the tests read it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value by name, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response from a connection (bodies have a Content-Length; none for HEAD).
pub fn read_reply(reader: &mut std::io::BufReader<std::net::TcpStream>, head_only: bool) -> Reply {
    use std::io::{BufRead, Read};
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; if head_only { 0 } else { len }];
    reader.read_exact(&mut body).unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

// --- `leakdex serve` --------------------------------------------------------------------

/// A `leakdex serve` process on a loopback port, killed when dropped.
pub struct Served {
    pub child: std::process::Child,
    pub addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `leakdex serve` on the indexes (one -i each) and waits until it listens.
pub fn serve(indexes: &[&Path], extra: &[&str]) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leakdex"));
    cmd.arg("serve").args(["--listen", "127.0.0.1:0"]);
    for i in indexes {
        cmd.arg("-i").arg(i);
    }
    let mut child = cmd
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Served { child, addr }
}

/// A connection to the server.
pub fn connect(s: &Served) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(&s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    BufReader::new(stream)
}

/// Sends one request on `conn` and reads the reply.
pub fn send(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.get_mut().write_all(req.as_bytes()).unwrap();
    read_reply(conn, method == "HEAD")
}

// --- nginx ----------------------------------------------------------------------------------

/// nginx serving an export tree, stopped when dropped.
pub struct Nginx {
    pub child: std::process::Child,
    pub port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nginx binary, where one is installed.
pub fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Starts nginx in the foreground with the tree's `nginx.conf` on a free loopback port.
pub fn start_nginx(nginx: &Path, tree: &Path, work: &Path) -> Nginx {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = std::fs::read_to_string(tree.join("nginx.conf")).unwrap();
    assert!(server.contains("listen 8080;"));
    let server_conf = work.join("server.conf");
    std::fs::write(
        &server_conf,
        server.replace("listen 8080;", &format!("listen 127.0.0.1:{port};")),
    )
    .unwrap();
    let w = work.display();
    let main = format!(
        "daemon off;\nmaster_process off;\npid {w}/nginx.pid;\nerror_log {w}/error.log;\n\
         events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {w}/b;\n  \
         proxy_temp_path {w}/p;\n  fastcgi_temp_path {w}/f;\n  uwsgi_temp_path {w}/u;\n  \
         scgi_temp_path {w}/s;\n  include {};\n}}\n",
        server_conf.display()
    );
    let conf = work.join("nginx-main.conf");
    std::fs::write(&conf, main).unwrap();
    let child = Command::new(nginx)
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(work)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut served = Nginx { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return served;
        }
        if let Ok(Some(status)) = served.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = served.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("nginx exited with {status}: {err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nginx did not start listening on port {port}");
}
