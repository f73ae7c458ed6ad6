//! One client connection, from its opening bytes to its close.
//!
//! The opening is read under a deadline and decides the protocol. HTTP/2
//! is served by hyper for the connection's life. HTTP/1 is served in
//! rounds: once a connection has had no request for [`PARK_AFTER`](super::idle::PARK_AFTER) (after
//! requests without a body, upgrade or close: see [`parks_after`]), hyper
//! is made to end its round at the message boundary (its next read sees
//! the end of the stream, its shutdown does nothing), and its buffers,
//! cached headers and request future are freed. The parked connection then
//! holds only its socket until the next request's head arrives, and that
//! head starts a fresh round. This is what keeps an idle keep-alive
//! connection small (nginx frees its buffers the same way).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::idle::{Activity, Expiry, InFlightBody, Watched};
use super::rewind::{self, Opening, Rewind};
use super::{stopped, Limits, H2_PING_INTERVAL};
use crate::web::forwarded::Connection;
use crate::web::response::{Body, BoxError};

/// The answer to a request that carries both `Content-Length` and
/// `Transfer-Encoding` at the start of a round (before hyper, which would
/// read it as chunked).
const AMBIGUOUS_FRAMING_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 23\r\nconnection: close\r\n\r\n{\"error\":\"bad_request\"}";

/// hyper's HTTP/1 and HTTP/2 settings from the listener's limits.
pub(super) struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Builders {
    /// No HTTP/1 header timer: [`Activity`] keeps the exact limits (and
    /// hyper's timer would cost a timer registration per request).
    pub(super) fn new(limits: &Limits) -> Self {
        let mut http1 = http1::Builder::new();
        http1.max_buf_size(limits.max_header_bytes).keep_alive(true);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes as u32)
            .max_concurrent_streams(limits.h2_max_streams)
            .keep_alive_interval(Some(H2_PING_INTERVAL));
        Self { http1, http2 }
    }
}

/// What the service answers with: the handler's body, kept in flight.
type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Everything one accepted connection needs.
pub(super) struct ConnectionTask<H> {
    pub builders: Arc<Builders>,
    pub limits: Limits,
    pub handler: H,
    pub stop: watch::Receiver<bool>,
    pub peer: SocketAddr,
    /// The connection's place under `max_connections`.
    pub permit: OwnedSemaphorePermit,
    /// Counted in the listener's open-connections gauge while it lives.
    pub open: Option<super::OpenConnection>,
}

/// How a round of serving ended.
enum Outcome<S> {
    /// Parked between requests: the socket, and any bytes already read
    /// from it that no request has used yet.
    Parked(S, Vec<u8>),
    Ended,
}

impl<H, F> ConnectionTask<H>
where
    H: Fn(Request<Incoming>, Connection) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    /// The connection's task. Not an `async fn`: its arguments would be
    /// stored twice in every connection's future (once as arguments, once
    /// as the locals they are moved into); the block uses them in place.
    pub(super) fn serve<S>(self, mut stream: S, tls: bool) -> impl Future<Output = ()> + Send
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut task = self;
        async move {
            // The block captures only the fields it names: this keeps the
            // gauge's guard for the connection's life.
            let _open = &task.open;
            let conn = Connection {
                peer: task.peer,
                tls,
                slot: Some(Arc::new(task.permit)),
            };
            // hyper-util's protocol detection waits for bytes without a
            // deadline, and hyper's header timer only starts after it: read
            // the opening ourselves, the whole of it within
            // `header_read_timeout`.
            let accepted_by = Instant::now() + task.limits.header_read_timeout;
            let mut wait = Wait {
                first_byte_by: accepted_by,
                head_by: Some(accepted_by),
                carried: Vec::new(),
            };
            let mut activity: Option<Arc<Activity>> = None;
            loop {
                let first = activity.is_none();
                let opening = next_opening(
                    &mut stream,
                    &mut wait,
                    first,
                    &task.limits,
                    &mut task.stop,
                    &task.peer,
                );
                let Some(opening) = opening.await else {
                    return;
                };
                if opening.ambiguous_framing {
                    tracing::debug!(peer = %task.peer, "Content-Length with Transfer-Encoding refused");
                    let _ = stream.write_all(AMBIGUOUS_FRAMING_RESPONSE).await;
                    let _ = stream.shutdown().await;
                    return;
                }
                let http2 = first && opening.is_http2();
                let round = Round {
                    opening: opening.bytes,
                    handler: task.handler.clone(),
                    conn: conn.clone(),
                    stop: &mut task.stop,
                    peer: task.peer,
                };
                if http2 {
                    let activity = Activity::new(false, &task.limits);
                    return Box::pin(round.http2(stream, &task.builders.http2, activity)).await;
                }
                let activity = activity
                    .get_or_insert_with(|| Activity::new(true, &task.limits))
                    .clone();
                // Boxed: a parked connection's task keeps none of hyper's state.
                match Box::pin(round.http1(stream, &task.builders.http1, activity.clone())).await {
                    Outcome::Parked(parked, carried) => {
                        stream = parked;
                        wait = Wait {
                            first_byte_by: activity.idle_since() + task.limits.keepalive_timeout,
                            head_by: None,
                            carried,
                        };
                    }
                    Outcome::Ended => return,
                }
            }
        }
    }
}

/// How long the next opening may take to arrive.
struct Wait {
    /// Until when the connection may stay silent.
    first_byte_by: Instant,
    /// Until when the whole head must be in; `None`: `header_read_timeout`
    /// after its first bytes.
    head_by: Option<Instant>,
    /// Bytes already read that belong to the next request.
    carried: Vec<u8>,
}

/// Reads the next request's opening under `wait`; `None` when the client
/// closes, stays silent past its deadline, or the listener shuts down while
/// the connection waits for a request.
async fn next_opening<S: AsyncRead + Unpin>(
    stream: &mut S,
    wait: &mut Wait,
    may_be_http2: bool,
    limits: &Limits,
    stop: &mut watch::Receiver<bool>,
    peer: &SocketAddr,
) -> Option<Opening> {
    if wait.carried.is_empty() {
        let first = tokio::time::timeout_at(
            wait.first_byte_by,
            rewind::read_some(stream, &mut wait.carried, may_be_http2),
        );
        tokio::select! {
            read = first => match read {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return None,
                Err(_) => {
                    tracing::debug!(%peer, "no request in time; connection closed");
                    return None;
                }
            },
            () = stopped(stop) => return None,
        }
    }
    let head_by = wait
        .head_by
        .unwrap_or_else(|| Instant::now() + limits.header_read_timeout);
    let carried = std::mem::take(&mut wait.carried);
    let reading = rewind::read_opening(stream, carried, may_be_http2, limits.max_header_bytes);
    match tokio::time::timeout_at(head_by, reading).await {
        Ok(Ok(opening)) => opening,
        Ok(Err(_)) => None,
        Err(_) => {
            tracing::debug!(%peer, "request head not complete within header_read_timeout; connection closed");
            None
        }
    }
}

/// One round of serving a connection with hyper.
struct Round<'a, H> {
    /// The bytes read ahead of hyper, replayed to it first.
    opening: Vec<u8>,
    handler: H,
    conn: Connection,
    stop: &'a mut watch::Receiver<bool>,
    peer: SocketAddr,
}

impl<H, F> Round<'_, H>
where
    H: Fn(Request<Incoming>, Connection) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    async fn http1<S>(
        self,
        stream: S,
        builder: &http1::Builder,
        activity: Arc<Activity>,
    ) -> Outcome<S>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        activity.start_round();
        let io = TokioIo::new(Watched::new(
            Rewind::new(self.opening, stream),
            activity.clone(),
        ));
        let service = service(self.handler, self.conn, activity.clone());
        let mut connection = builder.serve_connection(io, service).with_upgrades();
        if !drive(&mut connection, &activity, self.stop, self.peer).await {
            return Outcome::Ended;
        }
        // Upgraded connections have no parts left; they never park.
        let Some(parts) = connection.into_parts() else {
            return Outcome::Ended;
        };
        let (unreplayed, stream) = parts.io.into_inner().into_inner().into_parts();
        // What hyper read but did not use comes before what it never read.
        let mut carried = parts.read_buf.to_vec();
        carried.extend_from_slice(&unreplayed);
        Outcome::Parked(stream, carried)
    }

    async fn http2<S>(
        self,
        stream: S,
        builder: &http2::Builder<TokioExecutor>,
        activity: Arc<Activity>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Watched::new(
            Rewind::new(self.opening, stream),
            activity.clone(),
        ));
        let service = service(self.handler, self.conn, activity.clone());
        let mut connection = builder.serve_connection(io, service);
        drive(&mut connection, &activity, self.stop, self.peer).await;
    }
}

/// The handler as a hyper service that keeps `activity` informed.
fn service<H, F>(
    handler: H,
    conn: Connection,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ResponseBody>,
    Error = Infallible,
    Future: Send + 'static,
> + Unpin
where
    H: Fn(Request<Incoming>, Connection) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    service_fn(move |req: Request<Incoming>| {
        let in_flight = activity.begin_request();
        let http1 = req.version() < http::Version::HTTP_2;
        if http1 && !parks_after(&req) {
            activity.keep_round();
        }
        let answering = handler(req, conn.clone());
        let activity = activity.clone();
        async move {
            let mut response = answering.await;
            if http1 && response.status() == StatusCode::REQUEST_TIMEOUT {
                // The request body was not read to its end: the
                // connection cannot carry another request.
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            if http1
                && (response.status() == StatusCode::SWITCHING_PROTOCOLS
                    || has_token(response.headers(), "close"))
            {
                activity.keep_round();
            }
            Ok::<_, Infallible>(
                response.map(|body| InFlightBody::new(body, in_flight).boxed_unsync()),
            )
        }
    })
}

/// Whether a round may park after `req`: only a bodiless HTTP/1.1
/// keep-alive request leaves hyper at a message boundary on both sides once
/// answered. A body may still be read (or drained) after the answer, and
/// its rest must never be taken for a request; hyper ends a close or an
/// upgrade itself.
fn parks_after(req: &Request<Incoming>) -> bool {
    use http_body::Body as _;
    req.version() == http::Version::HTTP_11
        && req.body().is_end_stream()
        && !req.headers().contains_key(http::header::UPGRADE)
        && !has_token(req.headers(), "close")
        && !has_token(req.headers(), "upgrade")
}

/// Whether a `Connection` header names `token`.
fn has_token(headers: &http::HeaderMap, token: &str) -> bool {
    crate::proxy::headers::has_token(headers, &CONNECTION, token)
}

/// A hyper connection that can be asked to finish its requests and close.
trait GracefulShutdown {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulShutdown for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, B, E> GracefulShutdown for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}

/// Drives `connection` under `activity`'s deadlines and the listener's
/// stop signal. `true` when it ended by parking: hyper stopped at a
/// message boundary and its parts can be taken back.
async fn drive<C>(
    connection: &mut C,
    activity: &Activity,
    stop: &mut watch::Receiver<bool>,
    peer: SocketAddr,
) -> bool
where
    C: Future<Output = hyper::Result<()>> + GracefulShutdown + Unpin,
{
    let mut connection = Pin::new(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            // The connection first: a head already replayed to hyper becomes
            // a request in flight before a shutdown can close the connection
            // as idle.
            biased;
            result = connection.as_mut() => {
                let parking = activity.is_parking();
                return match result {
                    Ok(()) => parking,
                    // A partial pipelined head in hyper's buffer: it comes
                    // back with the parts and is finished by the next round.
                    Err(e) if parking && e.is_incomplete_message() => true,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                        false
                    }
                };
            }
            () = stopped(stop), if !closing && !activity.is_parking() => {
                connection.as_mut().graceful_shutdown();
                activity.begin_closing();
                closing = true;
            }
            why = activity.expired() => match why {
                Expiry::StalledWrite => {
                    tracing::debug!(%peer, "client stopped reading its response; connection dropped");
                    return false;
                }
                Expiry::Park => activity.park(),
                Expiry::Closing => {
                    tracing::debug!(%peer, "peer did not finish closing; connection dropped");
                    return false;
                }
                Expiry::Idle | Expiry::SlowHead => {
                    tracing::debug!(%peer, reason = ?why, "connection unused; closing");
                    connection.as_mut().graceful_shutdown();
                    activity.begin_closing();
                    closing = true;
                }
            }
        }
    }
}
