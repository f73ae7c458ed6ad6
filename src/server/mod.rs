//! Listeners and connections: one accept loop for every listener (the
//! proxy, the admin listener and the https redirect), with one set of
//! limits from `[server]`: a connection cap, optional TLS with a handshake
//! deadline, HTTP/1.1 and HTTP/2 with a real header read timeout, a header
//! size limit, an idle (keep-alive) timeout and an HTTP/2 stream cap, and
//! graceful shutdown that lets in-flight requests finish within
//! `server.shutdown_grace`.

mod connection;
mod idle;
mod redirect;
mod rewind;
mod workers;

pub use redirect::run_https_redirect;
pub use workers::run;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::FutureExt as _;
use http::{Request, Response};
use hyper::body::Incoming;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::config::ServerConfig;
use crate::web::forwarded::Connection;
use crate::web::response::Body;
use connection::{Builders, ConnectionTask};

/// Clients taken at most per wake-up of an accept loop beyond the first.
const ACCEPT_BATCH: usize = 128;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How often an HTTP/2 connection is PINGed to notice a vanished peer.
/// Answered PINGs do not count as use: an idle connection still closes
/// after `server.keepalive_timeout`.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);

/// The bounds every listener applies to its clients, all from `[server]`,
/// so nothing a client controls holds a connection for ever.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// TLS handshake, the first bytes, and any request head once started.
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    /// A connection with no request in flight is closed after this.
    pub keepalive_timeout: Duration,
    pub h2_max_streams: u32,
    pub shutdown_grace: Duration,
    /// A client that leaves our writes blocked (does not read its
    /// response) this long loses the connection, request in flight or not.
    pub write_stall_timeout: Duration,
}

impl Limits {
    pub(crate) fn of(config: &ServerConfig) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            max_header_bytes: config.max_header_bytes,
            keepalive_timeout: config.keepalive_timeout,
            h2_max_streams: config.h2_max_streams,
            shutdown_grace: config.shutdown_grace,
            write_stall_timeout: config.body_read_timeout,
        }
    }
}

/// One listening socket and what is particular to it.
pub(crate) struct Listener<'a> {
    /// For logs: `"proxy"`, `"admin"`, `"https redirect"`.
    pub name: &'static str,
    pub socket: TcpListener,
    /// Terminate TLS with the current certificate (reloads swap it).
    pub tls: Option<&'a ArcSwap<rustls::ServerConfig>>,
    /// Counts this listener's open connections.
    pub open_gauge: Option<Gauge>,
    /// Its `server.max_connections` places, shared by every worker that
    /// accepts on the same socket.
    pub slots: Arc<Semaphore>,
}

/// Accepts on `listener` under `limits` and serves each connection with
/// `handler` until `shutdown` resolves; then stops accepting, asks every
/// connection to close once its requests are done, and waits up to
/// `limits.shutdown_grace` for them.
pub(crate) async fn serve_listener<H, F>(
    listener: Listener<'_>,
    limits: Limits,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, Connection) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let name = listener.name;
    let builders = Arc::new(Builders::new(&limits));
    let permits = listener.slots.clone();
    // Every connection holds a receiver; `closed()` resolves once all are gone.
    let stop = watch::Sender::new(false);
    tokio::pin!(shutdown);
    let start = |stream: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit| {
        let _ = stream.set_nodelay(true);
        let tls = listener
            .tls
            .map(|t| tokio_rustls::TlsAcceptor::from(t.load_full()));
        let task = ConnectionTask {
            builders: builders.clone(),
            limits,
            handler: handler.clone(),
            stop: stop.subscribe(),
            peer,
            permit,
            open: listener.open_gauge.clone().map(OpenConnection::new),
        };
        // Spawned as they are, not wrapped in another future: a wrapper
        // would store the task a second time in every connection.
        match tls {
            None => {
                tokio::spawn(task.serve(stream, false));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                        Ok(Ok(stream)) => task.serve(stream, true).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    };

    loop {
        // A slot first: at the cap, new clients wait in the backlog until a
        // connection ends (every way a client can stall has a deadline).
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.socket.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        start(stream, peer, permit);
        // Take every client already waiting too: one accept per wake-up
        // would leave a burst of new clients a scheduler round each behind
        // the busy connections (seconds, with a thousand of them).
        for _ in 0..ACCEPT_BATCH {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            match listener.socket.accept().now_or_never() {
                Some(Ok((stream, peer))) => start(stream, peer, permit),
                Some(Err(_)) | None => break,
            }
        }
    }

    drop(listener.socket);
    let grace = limits.shutdown_grace;
    let open = stop.receiver_count();
    tracing::info!(
        listener = name,
        open_connections = open,
        ?grace,
        "shutting down"
    );
    let _ = stop.send(true);
    if tokio::time::timeout(grace, stop.closed()).await.is_err() {
        tracing::warn!(
            listener = name,
            ?grace,
            "shutdown grace expired with requests still open"
        );
    }
}

/// Counts a client connection in `portcullis_connections_open` while alive.
pub(super) struct OpenConnection(Gauge);

impl OpenConnection {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Resolves once the listener shuts down (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
