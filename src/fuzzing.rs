//! Hooks for the fuzz targets in `fuzz/` (`scripts/fuzz`): what they need of the crate's
//! internals, and nothing else. Not a stable interface; hidden from the documentation.

use crate::build::{parse_block_for_fuzzing, InputFormat};
use crate::dump::{ChunkError, ChunkStats, Entry};
use crate::hash::HashKind;
use crate::key::KeyType;
use crate::partition::PrefixRange;
/// The padding bounds of range bodies (`Add-Padding: true`), for the server's model.
pub use crate::range::{PAD_MAX_ROWS, PAD_MIN_ROWS};
#[cfg(feature = "server")]
use crate::server::Server;
/// The parser of a downloader tree's range bodies.
pub use crate::tree::parse_body;
#[cfg(feature = "server")]
use std::sync::Arc;

/// What `build` makes of one block of input.
#[derive(Debug)]
pub struct ParsedBlock {
    /// The entries: for hashes, one per line in order; for plaintext, sorted by hash with the
    /// repeats summed.
    pub entries: Vec<Entry>,
    /// Lines read, or the first malformed line of a dump of hashes.
    pub result: Result<ChunkStats, ChunkError>,
    /// Plaintext lines left out.
    pub skipped: u64,
    /// (0-based line, why) of the first lines left out.
    pub skipped_examples: Vec<(u64, &'static str)>,
}

/// Parses a block of input as `build` does, for a partition of `prefixes`.
pub fn parse_block(
    block: &[u8],
    kind: HashKind,
    key: KeyType,
    format: InputFormat,
    prefixes: PrefixRange,
) -> ParsedBlock {
    parse_block_for_fuzzing(block, kind, key, format, prefixes)
}

/// Serves one connection over `io` (bytes from memory rather than a socket) with the HTTP/1
/// settings and handler of [`Server::run`]; returns hyper's verdict on the connection.
#[cfg(feature = "server")]
pub async fn serve_io<I>(server: Arc<Server>, io: I) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = server.http1();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let response = server.respond(&req);
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    http.serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await
}

/// Reads a range body as `check --remote` does (`crate::remote`): the count the body gives
/// each of `suffixes` (hex of the kind's suffix length, upper case), `None` where it lists
/// none with a count above 0; where the body repeats a suffix, the last row counts, as
/// [`crate::remote::RemoteChecker::counts`] takes it. `Err` says why the body is refused.
pub fn remote_body_counts(
    kind: HashKind,
    body: &[u8],
    suffixes: &[Vec<u8>],
) -> Result<Vec<Option<u64>>, String> {
    let mut wanted: Vec<([u8; 40], u32)> = suffixes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut padded = [0u8; 40];
            padded[..s.len()].copy_from_slice(s);
            (padded, i as u32)
        })
        .collect();
    wanted.sort_unstable();
    let mut found = Vec::new();
    crate::remote::match_body(kind, body, &wanted, &mut found)?;
    let mut counts = vec![None; suffixes.len()];
    for (i, count) in found {
        counts[i as usize] = Some(count);
    }
    Ok(counts)
}
