//! Forwarding to the app: one pooled HTTP/1.1 client built at start, with
//! at most `upstream.max_connections` connections open; bodies streamed
//! both ways (a stalled upload aborts the upstream request); WebSocket
//! upgrades tunnelled only once the app has answered 101, and closed after
//! `upstream.tunnel_idle_timeout` without a byte either way.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::headers::strip_hop_by_hop;
pub(crate) use super::slots::UpstreamSlots;
use super::slots::{BoundedConnector, UpstreamBusy};
use crate::config::UpstreamConfig;
use crate::web::body::{is_body_stalled, ReadTimeout};
use crate::web::error::ProxyError;
use crate::web::response::Body;

/// A proxied request body: the client's, cut off when it stalls.
type UpstreamBody = ReadTimeout<Incoming>;

pub(crate) struct Upstream {
    /// Replaced by a fresh one (closing its idle connections) when another
    /// worker needs a slot: see [`Upstream::give_back_idle`].
    client: ArcSwap<Client<BoundedConnector, UpstreamBody>>,
    connector: BoundedConnector,
    config: UpstreamConfig,
    /// `server.body_read_timeout`, for the bodies sent upstream.
    body_read_timeout: Duration,
}

impl Upstream {
    /// A client with its own pool; `slots` (`upstream.max_connections`) is
    /// shared with every other worker's client, so the cap is for the process.
    pub(crate) fn new(
        config: &UpstreamConfig,
        body_read_timeout: Duration,
        slots: UpstreamSlots,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let connector = BoundedConnector::new(connector, slots, config.connect_timeout);
        Self {
            client: ArcSwap::from_pointee(pooled_client(config, connector.clone())),
            connector,
            config: config.clone(),
            body_read_timeout,
        }
    }

    /// Runs beside the worker's requests: whenever some worker waits for a
    /// slot, this one closes its idle pooled connections (at most every
    /// [`RECLAIM_EVERY`]), so slots held idle in one worker's pool serve
    /// the others.
    pub(crate) async fn give_back_idle(&self) {
        let mut asked = self.connector.slots().reclaim_requests();
        let mut last = None::<Instant>;
        while asked.changed().await.is_ok() {
            let request = *asked.borrow_and_update();
            if !self.connector.slots().asked_by_another(request) {
                continue;
            }
            if last.is_some_and(|at| at.elapsed() < RECLAIM_EVERY) {
                tokio::time::sleep(RECLAIM_EVERY).await;
            }
            last = Some(Instant::now());
            // Dropping the old pool closes its idle connections; requests
            // in flight keep theirs until they finish.
            self.client.store(Arc::new(pooled_client(
                &self.config,
                self.connector.clone(),
            )));
        }
    }

    /// Sends `req` (its path already normalized, headers already rewritten)
    /// to the app and returns the app's response with hop-by-hop headers
    /// removed.
    pub(crate) async fn forward(
        &self,
        mut req: Request<Incoming>,
        websocket: bool,
        slot: Option<Arc<OwnedSemaphorePermit>>,
    ) -> Result<Response<Body>, ProxyError> {
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let uri = Uri::builder()
            .scheme(self.config.scheme.clone())
            .authority(self.config.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| ProxyError::BadRequest("unforwardable URI"))?;
        if !req.headers().contains_key(HOST) {
            // HTTP/2 clients send :authority instead of Host.
            if let Some(authority) = req.uri().authority() {
                if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                    req.headers_mut().insert(HOST, v);
                }
            }
        }
        *req.uri_mut() = uri;
        *req.version_mut() = http::Version::HTTP_11;
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
        let req = req.map(|body| ReadTimeout::new(body, self.body_read_timeout));

        let timeout = self.config.response_header_timeout;
        let client = self.client.load_full();
        let mut response = match tokio::time::timeout(timeout, client.request(req)).await {
            Err(_) => return Err(ProxyError::UpstreamTimeout(timeout)),
            Ok(Err(e)) => return Err(classify(e)),
            Ok(Ok(response)) => response,
        };

        let upgraded = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        match client_upgrade {
            Some(client_upgrade) if upgraded => {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                let idle = self.config.tunnel_idle_timeout;
                tokio::spawn(tunnel(client_upgrade, upstream_upgrade, idle, slot));
                strip_hop_by_hop(response.headers_mut(), true);
            }
            _ if upgraded => {
                // The app switched protocols without being asked to: refuse.
                return Err(ProxyError::UpstreamUnreachable(
                    "unexpected 101 from upstream".into(),
                ));
            }
            _ => strip_hop_by_hop(response.headers_mut(), false),
        }
        Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()))
    }
}

/// How often one worker's pool is emptied at most for the others.
const RECLAIM_EVERY: Duration = Duration::from_millis(100);

fn pooled_client(
    config: &UpstreamConfig,
    connector: BoundedConnector,
) -> Client<BoundedConnector, UpstreamBody> {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// What a failed upstream request means for the client: its own upload
/// stalled (408), no connection was free (503), or the app is unreachable.
fn classify(e: hyper_util::client::legacy::Error) -> ProxyError {
    if is_body_stalled(&e) {
        return ProxyError::BodyTimeout(stalled_for(&e));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(busy) = err.downcast_ref::<UpstreamBusy>() {
            return ProxyError::UpstreamBusy(busy.0);
        }
        source = err.source();
    }
    ProxyError::UpstreamUnreachable(Box::new(e))
}

fn stalled_for(e: &(dyn std::error::Error + 'static)) -> Duration {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(stalled) = err.downcast_ref::<crate::web::body::BodyStalled>() {
            return stalled.0;
        }
        source = err.source();
    }
    Duration::ZERO
}

/// Copies bytes both ways between the upgraded client and app connections
/// until either side closes or no byte has passed either way for
/// `idle_timeout`, holding the connection's `max_connections` slot meanwhile.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    idle_timeout: Duration,
    _slot: Option<Arc<OwnedSemaphorePermit>>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade did not complete");
            return;
        }
    };
    match copy_until_idle(TokioIo::new(client), TokioIo::new(upstream), idle_timeout).await {
        Ok(true) => tracing::debug!(?idle_timeout, "websocket tunnel idle; closed"),
        Ok(false) => {}
        Err(e) => tracing::debug!(error = %e, "websocket tunnel closed with an error"),
    }
}

/// `copy_bidirectional` that gives up once nothing was read from either
/// side for `idle_timeout`; `Ok(true)` when it gave up. Dropping both
/// streams closes them.
async fn copy_until_idle<A, B>(a: A, b: B, idle_timeout: Duration) -> io::Result<bool>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let clock = Arc::new(LastRead::new());
    let mut a = Touching {
        inner: a,
        clock: clock.clone(),
    };
    let mut b = Touching {
        inner: b,
        clock: clock.clone(),
    };
    let copying = tokio::io::copy_bidirectional(&mut a, &mut b);
    tokio::pin!(copying);
    loop {
        let deadline = clock.last() + idle_timeout;
        tokio::select! {
            copied = &mut copying => return copied.map(|_| false),
            () = tokio::time::sleep_until(deadline) => {
                if clock.last() + idle_timeout <= Instant::now() {
                    return Ok(true);
                }
            }
        }
    }
}

/// When a tunnel last read a byte, from either side.
struct LastRead {
    start: Instant,
    /// Milliseconds after `start`.
    millis: AtomicU64,
}

impl LastRead {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            millis: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let millis = self.start.elapsed().as_millis() as u64;
        self.millis.fetch_max(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.millis.load(Ordering::Relaxed))
    }
}

/// A tunnel end that records every read on the shared [`LastRead`].
struct Touching<S> {
    inner: S,
    clock: Arc<LastRead>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Touching<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Touching<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    #[tokio::test(start_paused = true)]
    async fn tunnel_with_no_bytes_either_way_is_closed_after_idle_timeout() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (upstream, mut upstream_peer) = tokio::io::duplex(64);
        let idle = Duration::from_secs(600);
        let copying = tokio::spawn(copy_until_idle(client, upstream, idle));
        client_peer.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        upstream_peer.read_exact(&mut buf).await.unwrap();
        let last_byte = Instant::now();
        assert!(copying.await.unwrap().unwrap(), "gave up as idle");
        assert_eq!(last_byte.elapsed(), idle);
        assert_eq!(client_peer.read(&mut buf).await.unwrap(), 0, "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn tunnel_closed_by_both_sides_is_not_idle() {
        let (client, client_peer) = tokio::io::duplex(64);
        let (upstream, upstream_peer) = tokio::io::duplex(64);
        drop((client_peer, upstream_peer));
        let copied = copy_until_idle(client, upstream, Duration::from_secs(600)).await;
        assert!(!matches!(copied, Ok(true)));
    }
}
