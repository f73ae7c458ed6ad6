//! One LISTEN connection per channel, kept open for as long as its store
//! lives: how revocations made by one instance reach every other instance's
//! memory (session cache, revoked refresh families).
//!
//! The loop is the same for every channel: connect, `LISTEN`, tell the
//! store it is connected (it reloads what it may have missed: notices sent
//! while nobody listened are lost), hand it each notice, prove the
//! connection alive on a heartbeat (a connection that silently died through
//! NAT or failover would otherwise lose notices unnoticed), and on any
//! failure tell the store it is deaf and reconnect after [`RECONNECT_DELAY`].
//! Only the first failure of a run is logged as a warning, and the recovery
//! once.

use std::sync::Weak;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::{db_error, Pg};
use crate::store::StoreError;

/// How often the listener's heartbeat runs.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);
/// Pause before reconnecting after a failure.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// What a store does with its channel. Every method that returns an error
/// makes the listener drop the connection and reconnect.
#[async_trait]
pub(crate) trait Subscriber: Send + Sync + 'static {
    /// The NOTIFY channel (a fixed identifier, not user input).
    const CHANNEL: &'static str;
    /// Names the listener in logs ("session revocation listener").
    const NAME: &'static str;
    /// What users see while it is down, for the warning.
    const WHILE_DOWN: &'static str;

    fn pg(&self) -> &Pg;

    /// Called once `LISTEN` is in place, so nothing sent from now on is
    /// missed: catch up on whatever may have been missed before.
    async fn connected(&self, client: &Client) -> Result<(), StoreError>;

    /// One notice's payload.
    async fn notice(&self, client: &Client, payload: &str) -> Result<(), StoreError>;

    /// Every [`HEARTBEAT`]; an error means the connection is not to be
    /// trusted any more.
    async fn heartbeat(&self, client: &Client) -> Result<(), StoreError>;

    /// The connection is gone (or never came): notices may be missed from
    /// now until the next [`Subscriber::connected`].
    fn lost(&self);
}

/// Keeps `S`'s channel listened to until the store is dropped.
pub(crate) async fn listen<S: Subscriber>(store: Weak<S>) {
    let mut announced_down = false;
    loop {
        let Some(config) = store.upgrade().map(|s| s.pg().config.clone()) else {
            return;
        };
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                // The connection must be polled for the client to work; the
                // channel closes when the connection ends.
                let pump = tokio::spawn(async move {
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(n) = message {
                            if tx.send(n.payload().to_string()).is_err() {
                                break;
                            }
                        }
                    }
                });
                let outcome = serve(&store, &client, &mut rx, &mut announced_down).await;
                pump.abort();
                match outcome {
                    Outcome::StoreGone => return,
                    Outcome::SetupFailed(e) => {
                        if !announced_down {
                            tracing::warn!(error = %e, "{} cannot start listening; retrying ({})", S::NAME, S::WHILE_DOWN);
                            announced_down = true;
                        }
                    }
                    Outcome::Dropped => {}
                }
            }
            Err(e) => {
                if !announced_down {
                    tracing::warn!(error = %e, "{} cannot connect; retrying ({})", S::NAME, S::WHILE_DOWN);
                    announced_down = true;
                }
            }
        }
        if let Some(s) = store.upgrade() {
            s.lost();
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// How one connection ended.
enum Outcome {
    /// The store was dropped: stop listening.
    StoreGone,
    /// `LISTEN` or the catch-up failed (typically: schema not applied yet).
    SetupFailed(StoreError),
    /// The connection failed or a callback asked to reconnect.
    Dropped,
}

async fn serve<S: Subscriber>(
    store: &Weak<S>,
    client: &Client,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    announced_down: &mut bool,
) -> Outcome {
    if let Err(e) = client
        .batch_execute(&format!("LISTEN {}", S::CHANNEL))
        .await
        .map_err(db_error)
    {
        return Outcome::SetupFailed(e);
    }
    // Listening first, then catching up: nothing falls in between.
    let Some(s) = store.upgrade() else {
        return Outcome::StoreGone;
    };
    if let Err(e) = s.connected(client).await {
        return Outcome::SetupFailed(e);
    }
    drop(s);
    if *announced_down {
        tracing::info!("{} reconnected", S::NAME);
        *announced_down = false;
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            payload = rx.recv() => {
                let Some(payload) = payload else { return Outcome::Dropped };
                let Some(s) = store.upgrade() else { return Outcome::StoreGone };
                if let Err(e) = s.notice(client, &payload).await {
                    tracing::warn!(error = %e, "{} could not apply a notice; reconnecting", S::NAME);
                    return Outcome::Dropped;
                }
            }
            _ = heartbeat.tick() => {
                let Some(s) = store.upgrade() else { return Outcome::StoreGone };
                if s.heartbeat(client).await.is_err() {
                    return Outcome::Dropped;
                }
            }
        }
    }
}
