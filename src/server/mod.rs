//! Listeners and connections: accept with a connection limit, optional TLS
//! (with a handshake deadline), HTTP/1.1 and HTTP/2 with a real header read
//! timeout and header size limit, and graceful shutdown that lets in-flight
//! requests finish within `server.shutdown_grace`.

mod rewind;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::proxy::{self, Connection};
use crate::response::{self, Body};

/// The answer to a first request that carries both `Content-Length` and
/// `Transfer-Encoding` (before hyper, which would read it as chunked).
const AMBIGUOUS_FRAMING_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 23\r\nconnection: close\r\n\r\n{\"error\":\"bad_request\"}";

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves the proxy on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to `server.shutdown_grace` for open requests.
pub async fn run(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let config = &app.config.server;
    let builder = Arc::new(http_builder(
        config.header_read_timeout,
        config.max_header_bytes,
    ));

    let handshake_timeout = config.header_read_timeout;
    let limits = (config.header_read_timeout, config.max_header_bytes);
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        // The current certificate, as of this connection (reloads swap it).
        let tls = app
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.load_full()));
        tokio::spawn(async move {
            let slot = Some(Arc::new(permit));
            let _open = OpenConnection::new(&app.metrics.connections_open);
            match tls {
                None => {
                    let conn = Connection {
                        peer,
                        tls: false,
                        slot,
                    };
                    serve(&builder, limits, watcher, stream, app, conn).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = Connection {
                                peer,
                                tls: true,
                                slot,
                            };
                            serve(&builder, limits, watcher, stream, app, conn).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }

    drop(listener);
    let grace = app.config.server.shutdown_grace;
    tracing::info!(open_connections = graceful.count(), ?grace, "shutting down");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?grace, "shutdown grace expired with requests still open");
    }
}

/// Counts a client connection in `portcullis_connections_open` while alive.
struct OpenConnection(prometheus_client::metrics::gauge::Gauge);

impl OpenConnection {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// HTTP/1.1 + HTTP/2 with the configured limits. hyper enforces
/// `header_read_timeout` only when a timer is set.
fn http_builder(
    header_read_timeout: Duration,
    max_header_bytes: usize,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(max_header_bytes as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

async fn serve<S>(
    builder: &auto::Builder<TokioExecutor>,
    (header_read_timeout, max_header_bytes): (Duration, usize),
    watcher: hyper_util::server::graceful::Watcher,
    stream: S,
    app: Arc<App>,
    conn: Connection,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper-util's HTTP/1-or-2 detection waits for bytes without a deadline,
    // and hyper's header timer only starts after it: read the opening bytes
    // ourselves, under `header_read_timeout`, and replay them.
    let mut stream = stream;
    let reading = rewind::read_opening(&mut stream, max_header_bytes);
    let opening = match tokio::time::timeout(header_read_timeout, reading).await {
        Ok(Ok(Some(opening))) if opening.ambiguous_framing => {
            tracing::debug!(peer = %conn.peer, "Content-Length with Transfer-Encoding refused");
            let _ = stream.write_all(AMBIGUOUS_FRAMING_RESPONSE).await;
            let _ = stream.shutdown().await;
            return;
        }
        Ok(Ok(Some(opening))) => opening.bytes,
        Ok(Ok(None)) | Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!(peer = %conn.peer, "no request within header_read_timeout; connection closed");
            return;
        }
    };
    let stream = rewind::Rewind::new(opening, stream);
    let peer = conn.peer;
    let service = service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(proxy::handle(&app, req, conn).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Connections the plain-HTTP redirect listener serves at once.
const REDIRECT_MAX_CONNECTIONS: usize = 1024;

/// Plain-HTTP listener (`server.tls.redirect_http_from`) that sends every
/// request over https with a 308: to `server.public_url` when set (so a
/// forged `Host` cannot redirect elsewhere), else to the request's host.
/// HTTP/1.1 only, with the same header deadline and a connection cap.
pub async fn run_https_redirect(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let header_read_timeout = app.config.server.header_read_timeout;
    let origin: Option<Arc<str>> = app
        .config
        .server
        .public_url
        .as_ref()
        .map(|u| Arc::from(u.origin.as_str()));
    let permits = Arc::new(Semaphore::new(REDIRECT_MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => { tokio::time::sleep(ACCEPT_BACKOFF).await; continue; }
            },
            () = &mut shutdown => break,
        };
        let origin = origin.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req: Request<Incoming>| {
                let origin = origin.clone();
                async move { Ok::<_, Infallible>(https_redirect(&req, origin.as_deref())) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn https_redirect(req: &Request<Incoming>, public_origin: Option<&str>) -> Response<Body> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = if path.starts_with('/') { path } else { "/" };
    if let Some(origin) = public_origin.filter(|o| o.starts_with("https://")) {
        return response::redirect(StatusCode::PERMANENT_REDIRECT, &format!("{origin}{path}"));
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
    let Some(host) = host else {
        return response::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "bad_request"}),
        );
    };
    // The https listener's port is not known here; browsers use 443.
    let host = match host.rsplit_once(':') {
        Some((name, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (name.ends_with(']') || !name.contains(':')) =>
        {
            name
        }
        _ => host,
    };
    response::redirect(
        StatusCode::PERMANENT_REDIRECT,
        &format!("https://{host}{path}"),
    )
}
