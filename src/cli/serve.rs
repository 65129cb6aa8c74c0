//! `leakdex serve`: the range server.

use clap::Args;
use leakdex::server::{Server, ServerConfig, ServerEvent};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Serve range queries over HTTP, compatible with the Pwned Passwords API.
///
/// `GET /range/{prefix}` answers from the SHA-1 password index, `GET /range/{prefix}?mode=ntlm`
/// from the NTLM one, `?mode=login` and `?mode=pair` from indexes of logins and of credential
/// pairs (`build --key`), byte for byte as the official service (CORS, ETag, gzip,
/// `Add-Padding`). Give -i once per index: at most one of each of these four, or the
/// partitions of one (`build --prefixes`, which must not overlap): each request goes to the
/// partition that holds its prefix, and a prefix that none holds is answered 404.
/// `GET /` answers a page for people that checks a password (and, where such indexes are
/// served, an account or an account with its password) by hashing it in the browser and asking
/// the range API, and `/about` says what the server holds, in JSON, without paths.
/// `/health` says whether the indexes are open; `/metrics` gives Prometheus metrics. SIGHUP
/// opens the index files again (replace them by atomic rename); SIGTERM or Ctrl-C stops after
/// the requests in flight.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Index to serve; give it once per index (SHA-1 and NTLM passwords, logins, pairs) or
    /// per partition.
    #[arg(short, long = "index", value_name = "INDEX", required = true)]
    indexes: Vec<PathBuf>,
    /// Address to listen on: HOST:PORT (an IP address or a host name, resolved at start) or a
    /// bare PORT, which means 127.0.0.1:PORT. Serving other machines needs an explicit address
    /// such as 0.0.0.0:8080.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Seconds in `Cache-Control: public, max-age=`.
    #[arg(long, default_value_t = 2_678_400)]
    max_age: u64,
    /// Seconds a client may take to send a request's whole head (a deadline, not a gap
    /// between bytes: a client that trickles its head is closed when it runs out), to stay
    /// idle between requests, or to start reading a response it asked for.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    header_timeout: u64,
    /// Most connections served at once. At the cap the server stops accepting: new
    /// connections wait in the kernel's listen queue (up to 1,024, or net.core.somaxconn if
    /// lower; beyond that the kernel drops connection attempts and clients retry) until a
    /// served one closes (slow or idle ones close after --header-timeout). Each connection
    /// takes a descriptor; at start the descriptor limit is raised to its hard limit
    /// [default: 10,000, or fewer when the descriptor limit leaves room for fewer, 64
    /// descriptors kept for other uses].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Index files up to SIZE (such as 2G or 512M; 0 for none) are read into memory at start
    /// and on each SIGHUP; larger ones are mapped. A file in memory may be truncated, rewritten
    /// or removed without effect on the server. A mapped file must be replaced by rename only
    /// (the server keeps the old file until SIGHUP): truncated or rewritten in place, it makes
    /// the server die by SIGBUS at the next read of a lost page [default: a quarter of the
    /// machine's memory].
    #[arg(long, value_name = "SIZE", value_parser = super::build::parse_size)]
    copy_limit: Option<u64>,
    /// Do not serve the page for people at `/` (which then answers 404). The page hashes in
    /// the browser and sends only the first 5 hex digits of the hash, as any client of the
    /// range API does; `/about` (what the server holds, for the page) stays.
    #[arg(long)]
    no_page: bool,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    leakdex::server::resolve_listen(text).map_err(|e| e.to_string())
}

pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    // Each connection holds a descriptor: lift the soft limit (often 1,024) to the hard one.
    let fd_limit = leakdex::sys::raise_fd_limit();
    let max_connections = match args.max_connections {
        Some(n) => {
            let reserved = leakdex::server::RESERVED_DESCRIPTORS;
            if let Some(limit) = fd_limit.filter(|&l| n.saturating_add(reserved) > l) {
                eprintln!(
                    "leakdex: --max-connections {n} is more than the descriptor limit of {limit} \
                     leaves room for: beyond about {} connections, new ones wait in the listen \
                     queue as they do at the cap",
                    limit.saturating_sub(reserved)
                );
            }
            usize::try_from(n).unwrap_or(usize::MAX)
        }
        None => leakdex::server::default_max_connections(fd_limit),
    };
    let timeout = Duration::from_secs(args.header_timeout.max(1));
    let config = ServerConfig {
        indexes: args.indexes,
        listen: args.listen,
        max_age: args.max_age,
        header_timeout: timeout,
        send_timeout: timeout,
        max_connections,
        page: !args.no_page,
        copy_limit: args
            .copy_limit
            .unwrap_or_else(|| ServerConfig::default().copy_limit),
        ..ServerConfig::default()
    };
    let server = Arc::new(Server::new(config)?);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads.filter(|&t| t > 0) {
        runtime.worker_threads(threads);
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(server.run(|event| match event {
        ServerEvent::Listening(addr) => {
            println!("listening on http://{addr} (ready)");
        }
        ServerEvent::Reloaded => eprintln!("leakdex: indexes reopened"),
        ServerEvent::ReloadFailed(e) => {
            eprintln!("leakdex: reopening the indexes failed, still serving the old ones: {e}")
        }
        ServerEvent::ShuttingDown => eprintln!("leakdex: shutting down"),
        ServerEvent::ConnectionLimit(n) => eprintln!(
            "leakdex: {n} connections open, as many as --max-connections allows: new ones wait \
             until some close (said at most once a minute)"
        ),
        // A client's doing, and its text could carry what the client sent: not logged.
        ServerEvent::ConnectionError(_) => {}
    }))?;
    Ok(0)
}
