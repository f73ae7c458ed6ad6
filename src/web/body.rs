//! Request bodies under `server.body_read_timeout`: a body whose next bytes
//! do not arrive in time ends with [`BodyStalled`], so a client that stops
//! sending holds neither our endpoint nor an upstream request for ever.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use thiserror::Error;
use tokio::time::{Instant, Sleep};

use crate::web::response::BoxError;

/// The error a [`ReadTimeout`] body ends with.
#[derive(Debug, Error)]
#[error("request body stalled: no bytes for {0:?} (server.body_read_timeout)")]
pub(crate) struct BodyStalled(pub Duration);

/// True when `error` or anything in its `source()` chain is a
/// [`BodyStalled`] (hyper and hyper-util wrap a body's error).
pub(crate) fn is_body_stalled(error: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyStalled>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A body that fails when its next frame takes longer than `timeout`. The
/// clock runs only while someone is waiting for a frame, so a reader that is
/// itself slow (an upstream applying backpressure, a pool still connecting)
/// never makes the client look stalled.
pub(crate) struct ReadTimeout<B> {
    inner: B,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    waiting: bool,
}

impl<B> ReadTimeout<B> {
    pub(crate) fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            waiting: false,
        }
    }
}

impl<B> HttpBody for ReadTimeout<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let deadline = Instant::now() + this.timeout;
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(this.timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{stream, StreamExt as _};
    use http_body_util::{BodyExt, StreamBody};

    type Frames = Vec<Result<Frame<Bytes>, BoxError>>;

    #[tokio::test(start_paused = true)]
    async fn body_that_stops_arriving_ends_with_body_stalled() {
        let first: Frames = vec![Ok(Frame::data(Bytes::from_static(b"part")))];
        let body = StreamBody::new(stream::iter(first).chain(stream::pending()));
        let mut body = ReadTimeout::new(body, Duration::from_secs(30));
        assert!(body.frame().await.unwrap().is_ok());
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(is_body_stalled(err.as_ref()), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn time_before_the_first_read_does_not_count() {
        let frames: Frames = vec![Ok(Frame::data(Bytes::from_static(b"all")))];
        let body = ReadTimeout::new(
            StreamBody::new(stream::iter(frames)),
            Duration::from_secs(1),
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"all");
    }
}
