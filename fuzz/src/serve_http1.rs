//! Raw bytes through what faces the network: hyper's HTTP/1 parser with the settings of
//! `leakdex serve` (head size and header limits, keep-alive, pipelining), then the real
//! handler (`leakdex::fuzzing::serve_io`), over an in-memory stream: the client's bytes
//! arrive in pieces of a size the input chooses, then the client closes its side, and
//! everything the server writes is kept. The connection must end (no hang), and every answer
//! must be an HTTP/1 response (1.0 to a 1.0 request) other than 500.
//!
//! Input: one byte choosing the server (low 2 bits) and the size of the pieces (the rest: 0
//! for all at once, else 1 to 63 bytes), then the bytes a client sends.

use super::{runtime, servers};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The server's side of a connection whose client has sent `input` and closed its side.
struct Memory {
    input: Vec<u8>,
    at: usize,
    piece: usize,
    output: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Memory {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (self.input.len() - self.at)
            .min(buf.remaining())
            .min(self.piece);
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Memory {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The `serve_http1` target: one input.
pub fn serve_http1(data: &[u8]) {
    let Some((&which, sent)) = data.split_first() else {
        return;
    };
    let server = Arc::clone(&servers()[which as usize % 3].server);
    let piece = match which >> 2 {
        0 => usize::MAX,
        n => n as usize,
    };
    let output = Arc::new(Mutex::new(Vec::new()));
    let io = Memory {
        input: sent.to_vec(),
        at: 0,
        piece,
        output: Arc::clone(&output),
    };
    // hyper's verdict (a malformed request, a head too large) is not checked: the bytes are.
    let _ = runtime().block_on(leakdex::fuzzing::serve_io(server, io));
    let received = output.lock().unwrap();
    if !received.is_empty() {
        assert!(
            received.starts_with(b"HTTP/1.1 ") || received.starts_with(b"HTTP/1.0 "),
            "not an HTTP/1 answer: {:?}",
            String::from_utf8_lossy(&received[..received.len().min(200)])
        );
    }
    assert!(
        !received
            .windows(12)
            .any(|w| w == b"HTTP/1.1 500" || w == b"HTTP/1.0 500"),
        "a golden index failed"
    );
}
