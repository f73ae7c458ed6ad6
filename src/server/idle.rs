//! What a client connection is doing, so the accept loop can close one that
//! nobody uses: the requests in flight, when it last went idle, and when
//! the next HTTP/1 request head started arriving.
//!
//! hyper cannot do this alone: its HTTP/1 `header_read_timeout` also runs
//! while a keep-alive connection is idle (so it cannot tell a slow head from
//! an idle connection), and HTTP/2 PINGs keep a connection alive for ever.
//! The rule here: with no request in flight, a connection lives
//! `server.keepalive_timeout` after its last request, an HTTP/1 head that
//! has started arriving gets `server.header_read_timeout`, and a connection
//! told to close gets `server.header_read_timeout` to finish closing.
//! Requests in flight are never cut by any of these.
//!
//! An HTTP/1 connection with no request for [`PARK_AFTER`] is parked: its
//! reads see the end of the stream and its shutdown does nothing, so hyper
//! ends the round at the message boundary and hands the socket back.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limits;
use crate::web::response::{Body, BoxError};

/// How long an HTTP/1 connection stays idle in hyper's hands before it is
/// parked. Short, so that a burst of new connections does not hold hyper's
/// buffers (16 KiB each) for long: 10,000 connections opened at once
/// peaked 12 MiB lower than with 100 ms. Parking early costs a fresh round
/// (a few allocations) on the next request, nothing a client can see.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(20);

/// Why an idle connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No request for `keepalive_timeout`.
    Idle,
    /// An HTTP/1 head started arriving and was not complete within
    /// `header_read_timeout`.
    SlowHead,
    /// Told to close, and still open `header_read_timeout` later with
    /// nothing in flight (a peer that never finishes the HTTP/2 GOAWAY).
    Closing,
    /// Our writes stayed blocked for `write_stall_timeout`: the client does
    /// not read what it asked for. Dropped at once, in flight or not.
    StalledWrite,
    /// An HTTP/1 connection idle for [`PARK_AFTER`]: time to park it.
    Park,
}

struct State {
    in_flight: usize,
    idle_since: Instant,
    head_started: Option<Instant>,
    closing_since: Option<Instant>,
    /// Since when the socket has refused our writes (the peer's window full).
    write_blocked_since: Option<Instant>,
    /// Since when the connection has been parking (reads see the end).
    parking_since: Option<Instant>,
    /// This round may park (see `connection::parks_after`).
    parkable: bool,
}

/// One connection's activity, shared by its IO wrapper, its service and
/// the task that drives it.
pub(crate) struct Activity {
    state: Mutex<State>,
    changed: Notify,
    /// Read on every read of the socket, so kept outside the lock.
    parking: AtomicBool,
    /// Bytes between requests start a head only on HTTP/1; on HTTP/2 they
    /// are PINGs, SETTINGS and WINDOW_UPDATEs.
    http1: bool,
    keepalive_timeout: Duration,
    header_read_timeout: Duration,
    write_stall_timeout: Duration,
}

impl Activity {
    pub(crate) fn new(http1: bool, limits: &Limits) -> Arc<Self> {
        Self::with(
            http1,
            limits.keepalive_timeout,
            limits.header_read_timeout,
            limits.write_stall_timeout,
        )
    }

    fn with(
        http1: bool,
        keepalive_timeout: Duration,
        header_read_timeout: Duration,
        write_stall_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
                closing_since: None,
                write_blocked_since: None,
                parking_since: None,
                parkable: true,
            }),
            changed: Notify::new(),
            parking: AtomicBool::new(false),
            http1,
            keepalive_timeout,
            header_read_timeout,
            write_stall_timeout,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request arrived; it is in flight until the guard (moved into its
    /// response body) is dropped.
    pub(crate) fn begin_request(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.in_flight += 1;
        state.head_started = None;
        InFlight(self.clone())
    }

    /// A round of HTTP/1 starts with a request head already read.
    pub(crate) fn start_round(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        state.idle_since = now;
        state.head_started = Some(now);
        state.parking_since = None;
        state.parkable = true;
        self.parking.store(false, Ordering::Relaxed);
    }

    /// This round must end in hyper's hands, never by parking.
    pub(crate) fn keep_round(&self) {
        self.lock().parkable = false;
    }

    /// When the connection last had no request in flight.
    pub(crate) fn idle_since(&self) -> Instant {
        self.lock().idle_since
    }

    /// From now on reads see the end of the stream and shutdown does
    /// nothing, until the next round.
    pub(crate) fn park(&self) {
        self.lock().parking_since = Some(Instant::now());
        self.parking.store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub(crate) fn is_parking(&self) -> bool {
        self.parking.load(Ordering::Relaxed)
    }

    /// The connection was told to close (graceful shutdown).
    pub(crate) fn begin_closing(&self) {
        self.lock().closing_since = Some(Instant::now());
        self.changed.notify_waiters();
    }

    fn bytes_read(&self) {
        if !self.http1 {
            return;
        }
        let mut state = self.lock();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
            drop(state);
            self.changed.notify_waiters();
        }
    }

    /// Records whether a write went through (`true`) or was refused
    /// because the peer is not reading (`false`).
    fn write_progress(&self, written: bool) {
        let mut state = self.lock();
        match (written, state.write_blocked_since) {
            (true, Some(_)) => state.write_blocked_since = None,
            (false, None) => {
                state.write_blocked_since = Some(Instant::now());
                drop(state);
                self.changed.notify_waiters();
            }
            _ => {}
        }
    }

    /// When the connection expires as things stand; `None` while a request
    /// is in flight and its writes go through.
    fn deadline(&self) -> Option<(Instant, Expiry)> {
        let state = self.lock();
        if let Some(blocked) = state.write_blocked_since {
            return Some((blocked + self.write_stall_timeout, Expiry::StalledWrite));
        }
        if state.in_flight > 0 {
            return None;
        }
        // A round that does not end once parked is dropped like a peer
        // that does not finish closing.
        let closing = state.closing_since.or(state.parking_since);
        Some(match (closing, state.head_started) {
            (Some(closing), _) => (
                closing.max(state.idle_since) + self.header_read_timeout,
                Expiry::Closing,
            ),
            (None, Some(head)) => (head + self.header_read_timeout, Expiry::SlowHead),
            (None, None) if self.http1 && state.parkable && PARK_AFTER < self.keepalive_timeout => {
                (state.idle_since + PARK_AFTER, Expiry::Park)
            }
            (None, None) => (state.idle_since + self.keepalive_timeout, Expiry::Idle),
        })
    }

    /// Resolves once the connection has expired. Cancel-safe: a fresh call
    /// reads the current state.
    pub(crate) async fn expired(&self) -> Expiry {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.deadline() {
                None => notified.await,
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut notified => {}
                    }
                }
            }
        }
    }
}

/// A request in flight; dropping it makes the connection idle again once
/// no other request is in flight.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.head_started = None;
            drop(state);
            self.0.changed.notify_waiters();
        }
    }
}

/// A response body that keeps its request in flight until hyper has sent
/// it (or given up on it).
pub(crate) struct InFlightBody {
    inner: Body,
    _in_flight: InFlight,
}

impl InFlightBody {
    pub(crate) fn new(inner: Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl HttpBody for InFlightBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's byte stream, reporting reads to its [`Activity`].
pub(crate) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.activity.is_parking() {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.write_progress(polled.is_ready());
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.write_progress(polled.is_ready());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // TLS takes writes into its buffer: a peer that does not read
        // shows here.
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.activity.write_progress(polled.is_ready());
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.is_parking() {
            // The socket stays open for the next round.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> Watched<S> {
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: Duration = Duration::from_secs(75);
    const HEADER: Duration = Duration::from_secs(10);
    const STALL: Duration = Duration::from_secs(30);

    /// Regression: a client that never read its response held its
    /// connection (and the upstream one) for ever, request in flight.
    #[tokio::test(start_paused = true)]
    async fn blocked_writes_expire_even_with_a_request_in_flight() {
        let activity = Activity::with(true, KEEPALIVE, HEADER, STALL);
        let _in_flight = activity.begin_request();
        activity.write_progress(false);
        let started = Instant::now();
        assert_eq!(activity.expired().await, Expiry::StalledWrite);
        assert_eq!(started.elapsed(), STALL);

        let activity = Activity::with(true, KEEPALIVE, HEADER, STALL);
        let _in_flight = activity.begin_request();
        activity.write_progress(false);
        activity.write_progress(true);
        assert!(
            activity.deadline().is_none(),
            "a write that went through clears it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_expires_after_keepalive_timeout() {
        let activity = Activity::with(false, KEEPALIVE, HEADER, STALL);
        let started = Instant::now();
        assert_eq!(activity.expired().await, Expiry::Idle);
        assert_eq!(started.elapsed(), KEEPALIVE);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_http1_connection_parks_and_a_stuck_park_is_dropped() {
        let activity = Activity::with(true, KEEPALIVE, HEADER, STALL);
        let started = Instant::now();
        assert_eq!(activity.expired().await, Expiry::Park);
        assert_eq!(started.elapsed(), PARK_AFTER);
        activity.park();
        assert!(activity.is_parking());
        let parked = Instant::now();
        assert_eq!(activity.expired().await, Expiry::Closing);
        assert_eq!(parked.elapsed(), HEADER);
        activity.start_round();
        assert!(!activity.is_parking(), "a new round reads again");
        assert_eq!(activity.deadline().unwrap().1, Expiry::SlowHead);
    }

    #[tokio::test(start_paused = true)]
    async fn request_in_flight_never_expires_and_idle_restarts_after_it() {
        let activity = Activity::with(false, KEEPALIVE, HEADER, STALL);
        let request = activity.begin_request();
        let waiting = tokio::spawn({
            let activity = activity.clone();
            async move { activity.expired().await }
        });
        tokio::time::sleep(KEEPALIVE * 3).await;
        assert!(!waiting.is_finished(), "expired with a request in flight");
        let idle_from = Instant::now();
        drop(request);
        assert_eq!(waiting.await.unwrap(), Expiry::Idle);
        assert_eq!(idle_from.elapsed(), KEEPALIVE);
    }

    #[tokio::test(start_paused = true)]
    async fn started_http1_head_gets_header_read_timeout() {
        let activity = Activity::with(true, KEEPALIVE, HEADER, STALL);
        tokio::time::sleep(Duration::from_secs(5)).await;
        activity.bytes_read();
        let head_from = Instant::now();
        assert_eq!(activity.expired().await, Expiry::SlowHead);
        assert_eq!(head_from.elapsed(), HEADER);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_do_not_start_a_head() {
        let activity = Activity::with(false, KEEPALIVE, HEADER, STALL);
        activity.bytes_read();
        let started = Instant::now();
        assert_eq!(activity.expired().await, Expiry::Idle);
        assert_eq!(started.elapsed(), KEEPALIVE);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_connection_gets_header_read_timeout_once_idle() {
        let activity = Activity::with(false, KEEPALIVE, HEADER, STALL);
        activity.begin_closing();
        let started = Instant::now();
        assert_eq!(activity.expired().await, Expiry::Closing);
        assert_eq!(started.elapsed(), HEADER);
    }
}
