//! The opening bytes of a connection, read under a deadline before hyper
//! sees the connection, then replayed in front of the rest of the stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the bytes decide between HTTP/1 (anything that is not the
/// start of the HTTP/2 preface) and HTTP/2 (the whole preface). `None` when
/// the peer closes first.
pub async fn read_opening<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<Vec<u8>>> {
    let mut opening = Vec::with_capacity(H2_PREFACE.len());
    let mut chunk = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream
            .read(&mut chunk[..H2_PREFACE.len() - opening.len()])
            .await?;
        if n == 0 {
            return Ok(None);
        }
        opening.extend_from_slice(&chunk[..n]);
        if opening.len() == H2_PREFACE.len() || !H2_PREFACE.starts_with(&opening) {
            return Ok(Some(opening));
        }
    }
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
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn http1_opening_is_decided_by_its_first_bytes_and_replayed() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let opening = read_opening(&mut server).await.unwrap().unwrap();
        assert!(!opening.is_empty());
        drop(client);
        let mut all = Vec::new();
        Rewind::new(opening, server)
            .read_to_end(&mut all)
            .await
            .unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn http2_opening_waits_for_the_whole_preface() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, &H2_PREFACE[..10])
            .await
            .unwrap();
        let partial = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            read_opening(&mut server),
        )
        .await;
        assert!(partial.is_err(), "a partial preface is not enough");
    }

    #[tokio::test]
    async fn closed_connection_has_no_opening() {
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(read_opening(&mut server).await.unwrap().is_none());
    }
}
