//! The opening bytes of a connection, read under a deadline before hyper
//! sees the connection, then replayed in front of the rest of the stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first bytes of a connection, and what they say.
pub struct Opening {
    pub bytes: Vec<u8>,
    /// The first HTTP/1 request carries both `Content-Length` and
    /// `Transfer-Encoding`: a request-smuggling shape, refused with 400.
    pub ambiguous_framing: bool,
}

impl Opening {
    /// The connection opened with the HTTP/2 preface.
    pub fn is_http2(&self) -> bool {
        self.bytes == H2_PREFACE
    }
}

/// Reads the first bytes of a request into `bytes` (none: the peer
/// closed). A connection's very first read stops at the length of the
/// HTTP/2 preface, so that frames behind it are not taken for HTTP/1.
pub async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    bytes: &mut Vec<u8>,
    may_be_http2: bool,
) -> io::Result<usize> {
    let want = if may_be_http2 { H2_PREFACE.len() } else { 4096 };
    AsyncReadExt::take(&mut *stream, want as u64)
        .read_buf(bytes)
        .await
}

/// Reads on from `bytes` (what was already read) until they decide
/// between HTTP/2 (the whole preface) and HTTP/1 (anything else), and for
/// HTTP/1 the whole header block of the request (up to `max_header_bytes`;
/// hyper answers 431 beyond). Only a connection's first request
/// (`may_be_http2`) can be the preface. `None` when the peer closes first.
pub async fn read_opening<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut bytes: Vec<u8>,
    may_be_http2: bool,
    max_header_bytes: usize,
) -> io::Result<Option<Opening>> {
    loop {
        let preface_so_far = may_be_http2 && H2_PREFACE.starts_with(&bytes);
        if !bytes.is_empty() {
            if may_be_http2 && bytes == H2_PREFACE {
                return Ok(Some(Opening {
                    bytes,
                    ambiguous_framing: false,
                }));
            }
            if !preface_so_far {
                // Empty lines before a request are allowed (RFC 9112 §2.2).
                let start = bytes
                    .iter()
                    .position(|&b| b != b'\r' && b != b'\n')
                    .unwrap_or(bytes.len());
                if let Some(end) = find(&bytes[start..], b"\r\n\r\n") {
                    let ambiguous_framing = has_both_framings(&bytes[start..start + end]);
                    return Ok(Some(Opening {
                        bytes,
                        ambiguous_framing,
                    }));
                }
                if bytes.len() > max_header_bytes {
                    return Ok(Some(Opening {
                        bytes,
                        ambiguous_framing: false,
                    }));
                }
            }
        }
        let want = if preface_so_far {
            H2_PREFACE.len() - bytes.len()
        } else {
            4096
        };
        // Straight into `bytes`: no buffer of its own in every connection's task.
        let n = AsyncReadExt::take(&mut *stream, want as u64)
            .read_buf(&mut bytes)
            .await?;
        if n == 0 {
            return Ok(None);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether a header block names both `Content-Length` and
/// `Transfer-Encoding` (RFC 9112 §6.3: a server may reject such a message).
fn has_both_framings(head: &[u8]) -> bool {
    let mut content_length = false;
    let mut transfer_encoding = false;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let name = line.split(|&b| b == b':').next().unwrap_or(&[]);
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = true;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        }
    }
    content_length && transfer_encoding
}

/// A stream that yields `prefix` before reading from `inner`.
pub struct Rewind<S> {
    prefix: Vec<u8>,
    consumed: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            consumed: 0,
            inner,
        }
    }
}

impl<S> Rewind<S> {
    /// The bytes not replayed yet, and the stream.
    pub fn into_parts(self) -> (Vec<u8>, S) {
        let mut rest = self.prefix;
        rest.drain(..self.consumed);
        (rest, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.consumed < this.prefix.len() {
            let rest = &this.prefix[this.consumed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.consumed += n;
            if this.consumed == this.prefix.len() {
                // Replayed: an idle connection keeps no copy of its opening.
                this.prefix = Vec::new();
                this.consumed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_replayed_opening_is_not_kept() {
        let (_client, server) = tokio::io::duplex(64);
        let mut rewind = Rewind::new(b"GET / HTTP/1.1\r\n\r\n".to_vec(), server);
        let mut buf = [0u8; 64];
        let n = rewind.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            rewind.prefix.capacity(),
            0,
            "an idle connection keeps no copy"
        );
    }

    #[tokio::test]
    async fn http1_opening_is_the_first_header_block_replayed_in_full() {
        let (mut client, mut server) = tokio::io::duplex(256);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let opening = read_opening(&mut server, Vec::new(), true, 8192)
            .await
            .unwrap()
            .unwrap();
        assert!(!opening.ambiguous_framing);
        drop(client);
        let mut all = Vec::new();
        Rewind::new(opening.bytes, server)
            .read_to_end(&mut all)
            .await
            .unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[tokio::test]
    async fn http2_opening_waits_for_the_whole_preface() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        let partial = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            read_opening(&mut server, Vec::new(), true, 8192),
        )
        .await;
        assert!(partial.is_err(), "a partial preface is not enough");
    }

    #[tokio::test]
    async fn closed_connection_has_no_opening() {
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(read_opening(&mut server, Vec::new(), true, 8192)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn empty_lines_before_a_request_do_not_hide_its_framing() {
        let (mut client, mut server) = tokio::io::duplex(256);
        let head = b"\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\ncontent-length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
        client.write_all(head).await.unwrap();
        let opening = read_opening(&mut server, Vec::new(), false, 8192)
            .await
            .unwrap();
        assert!(opening.unwrap().ambiguous_framing);
    }

    #[tokio::test]
    async fn content_length_with_transfer_encoding_is_flagged() {
        let (mut client, mut server) = tokio::io::duplex(256);
        let head = b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        client.write_all(head).await.unwrap();
        assert!(
            read_opening(&mut server, Vec::new(), true, 8192)
                .await
                .unwrap()
                .unwrap()
                .ambiguous_framing
        );
    }
}
