//! `upstream.max_connections` across the workers: a connection to the app
//! is made only with a slot, the slot lives inside the connection (pooled
//! idle connections and WebSocket tunnels count too), and a worker that
//! finds every slot taken asks the others to close their idle ones.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::web::response::BoxError;

/// The slots every worker's pool draws from.
#[derive(Clone)]
pub(crate) struct UpstreamSlots {
    permits: Arc<Semaphore>,
    /// How many times a connection waited for a slot, and in which worker.
    reclaim: Arc<watch::Sender<(u64, usize)>>,
    /// The worker these slots are handed to.
    worker: usize,
}

impl UpstreamSlots {
    pub(crate) fn new(max_connections: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_connections)),
            reclaim: Arc::new(watch::Sender::new((0, 0))),
            worker: 0,
        }
    }

    /// The same slots, for worker `index`.
    pub(crate) fn for_worker(&self, index: usize) -> Self {
        Self {
            worker: index,
            ..self.clone()
        }
    }

    /// A slot, at once if one is free; otherwise idle connections are
    /// asked back and this waits for the first slot given back.
    async fn take(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        let worker = self.worker;
        self.reclaim
            .send_modify(|(asked, by)| (*asked, *by) = (asked.wrapping_add(1), worker));
        self.permits.clone().acquire_owned().await.ok()
    }

    /// Changes whenever a worker waits for a slot.
    pub(crate) fn reclaim_requests(&self) -> watch::Receiver<(u64, usize)> {
        self.reclaim.subscribe()
    }

    /// Whether the last request for slots came from another worker (its
    /// own idle connections a worker already uses before opening one).
    pub(crate) fn asked_by_another(&self, request: (u64, usize)) -> bool {
        request.1 != self.worker
    }
}

/// No upstream connection became free within `upstream.connect_timeout`.
#[derive(Debug, Error)]
#[error("all {0:?}-bounded upstream connections busy (upstream.max_connections)")]
pub(crate) struct UpstreamBusy(pub(crate) Duration);

/// The HTTP connector under `upstream.max_connections`: a connection is
/// made only with a permit, and the permit lives inside the connection, so
/// it is given back only when the connection closes (pooled idle
/// connections and WebSocket tunnels count too).
#[derive(Clone)]
pub(crate) struct BoundedConnector {
    inner: HttpConnector,
    slots: UpstreamSlots,
    /// How long a new connection waits for a permit.
    wait: Duration,
}

impl BoundedConnector {
    pub(crate) fn new(inner: HttpConnector, slots: UpstreamSlots, wait: Duration) -> Self {
        Self { inner, slots, wait }
    }

    pub(crate) fn slots(&self) -> &UpstreamSlots {
        &self.slots
    }
}

impl tower_service::Service<Uri> for BoundedConnector {
    type Response = Bounded<TokioIo<tokio::net::TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let slots = self.slots.clone();
        let wait = self.wait;
        Box::pin(async move {
            let permit = match tokio::time::timeout(wait, slots.take()).await {
                Ok(Some(permit)) => permit,
                Ok(None) | Err(_) => return Err(Box::new(UpstreamBusy(wait)) as BoxError),
            };
            let io = inner.call(dst).await.map_err(Into::<BoxError>::into)?;
            Ok(Bounded {
                io,
                _permit: permit,
            })
        })
    }
}

/// An upstream connection holding its `max_connections` permit.
pub(crate) struct Bounded<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
}

impl<T: Connection> Connection for Bounded<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Unpin> Read for Bounded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Bounded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
