//! `audit_events` rows, written by a background task so a slow or absent
//! database never delays a login; the log line is written regardless.
//!
//! Refusals that anyone can provoke without an account (a forged CSRF
//! token, a bad SSO token, a rate-limited address...) are counted in memory
//! and written as one row per (event, user, address) every
//! [`FLUSH_EVERY`] with a `count`, so a flood of them can neither fill the
//! queue and push out real events nor grow the table one row a request.
//! Rows older than `audit.retention` are deleted hourly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{db_error, pool_error, Pg};
use crate::store::{AuditEvent, AuditSink, StoreError};

/// Events waiting to be written; beyond this, new ones are dropped (and
/// counted in the log) rather than held in memory without bound.
const QUEUE: usize = 10_000;
/// How often aggregated refusals are written.
const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// Distinct (event, user, address) keys counted per window; beyond it,
/// refusals are counted under the event alone (user and address "*").
const MAX_REFUSAL_KEYS: usize = 1_000;
/// How often rows past `audit.retention` are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

type RefusalKey = (&'static str, String, String);

pub(crate) struct PgAudit {
    pg: Arc<Pg>,
    tx: mpsc::Sender<AuditEvent>,
    refusals: Arc<Mutex<HashMap<RefusalKey, i32>>>,
}

/// True for the events an anonymous client can cause at will.
fn is_refusal(event: &str) -> bool {
    event.ends_with("_refused") || event.ends_with("_rate_limited")
}

impl PgAudit {
    pub(crate) fn start(pg: Arc<Pg>, retention: Duration) -> Self {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(QUEUE);
        let writer_pg = pg.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let row = (
                    event.event,
                    event.user,
                    event.client_ip.to_string(),
                    event.request_id,
                    1,
                );
                write_with_retries(&writer_pg, &row).await;
            }
        });
        let refusals: Arc<Mutex<HashMap<RefusalKey, i32>>> = Arc::default();
        let weak = Arc::downgrade(&refusals);
        let flush_pg = pg.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(refusals) = weak.upgrade() else {
                    break;
                };
                let window = std::mem::take(&mut *refusals.lock().expect("not poisoned"));
                drop(refusals);
                for ((event, user, ip), count) in window {
                    let row = (event, user, ip, "-".to_string(), count);
                    write_with_retries(&flush_pg, &row).await;
                }
            }
        });
        tokio::spawn(prune(pg.clone(), retention));
        Self { pg, tx, refusals }
    }
}

/// `(event, username, client_ip, request_id, count)`.
type Row = (&'static str, String, String, String, i32);

async fn write_with_retries(pg: &Pg, row: &Row) {
    // Retry a few times so a brief outage does not lose the row.
    for attempt in 0..5u32 {
        match write(pg, row).await {
            Ok(()) => return,
            Err(e) if attempt == 4 => {
                tracing::error!(error = %e, event = row.0, "audit row lost: PostgreSQL unavailable");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500 << attempt)).await,
        }
    }
}

async fn write(pg: &Pg, (event, user, ip, request_id, count): &Row) -> Result<(), StoreError> {
    let client = pg.pool.get().await.map_err(pool_error)?;
    client
        .execute(
            "INSERT INTO audit_events (event, username, client_ip, request_id, count) VALUES ($1, $2, $3, $4, $5)",
            &[event, user, ip, request_id, count],
        )
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes rows older than `retention`, once the schema is in place and
/// then hourly.
async fn prune(pg: Arc<Pg>, retention: Duration) {
    loop {
        if !pg.is_migrated() {
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        let deleted = async {
            let client = pg.pool.get().await.map_err(pool_error)?;
            client
                .execute(
                    "DELETE FROM audit_events WHERE at < now() - make_interval(secs => $1)",
                    &[&retention.as_secs_f64()],
                )
                .await
                .map_err(db_error)
        };
        match deleted.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                ?retention,
                "audit rows past audit.retention deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "audit retention: could not delete old rows"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// The row of an operator's action: no client address or request id.
fn operator_row(event: &'static str, user: &str) -> Row {
    (
        event,
        user.to_string(),
        "cli".to_string(),
        "-".to_string(),
        1,
    )
}

#[async_trait]
impl AuditSink for PgAudit {
    fn record(&self, event: AuditEvent) {
        if is_refusal(event.event) {
            count_refusal(&self.refusals, event.event, &event.user, event.client_ip);
            return;
        }
        if self.tx.try_send(event).is_err() {
            tracing::error!("audit queue full: an audit row was dropped");
        }
    }

    async fn record_operator(&self, event: &'static str, user: &str) -> Result<(), StoreError> {
        write(&self.pg, &operator_row(event, user)).await
    }
}

/// Audit rows written one by one as they come, for the operator commands:
/// their process ends right after, so nothing is queued, aggregated or
/// pruned in the background.
pub(crate) struct PgDirectAudit {
    pg: Arc<Pg>,
}

impl PgDirectAudit {
    pub(crate) fn new(pg: Arc<Pg>) -> Self {
        Self { pg }
    }
}

#[async_trait]
impl AuditSink for PgDirectAudit {
    fn record(&self, event: AuditEvent) {
        let pg = self.pg.clone();
        tokio::spawn(async move {
            let row = (
                event.event,
                event.user,
                event.client_ip.to_string(),
                event.request_id,
                1,
            );
            write_with_retries(&pg, &row).await;
        });
    }

    async fn record_operator(&self, event: &'static str, user: &str) -> Result<(), StoreError> {
        write(&self.pg, &operator_row(event, user)).await
    }
}

fn count_refusal(
    refusals: &Mutex<HashMap<RefusalKey, i32>>,
    event: &'static str,
    user: &str,
    ip: IpAddr,
) {
    let mut refusals = refusals.lock().expect("not poisoned");
    let key = (event, user.to_string(), ip.to_string());
    let key = if refusals.len() < MAX_REFUSAL_KEYS || refusals.contains_key(&key) {
        key
    } else {
        (event, "*".to_string(), "*".to_string())
    };
    let count = refusals.entry(key).or_insert(0);
    *count = count.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_from_real_events() {
        assert!(is_refusal("login_csrf_refused"));
        assert!(is_refusal("sso_refused"));
        assert!(is_refusal("login_rate_limited"));
        assert!(!is_refusal("login_ok"));
        assert!(!is_refusal("login_failed"));
        assert!(!is_refusal("refresh_reuse"));
    }

    #[test]
    fn a_flood_of_refusals_stays_within_the_key_bound() {
        let refusals = Mutex::new(HashMap::new());
        for i in 0..50_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            count_refusal(&refusals, "sso_refused", "", ip);
        }
        let refusals = refusals.into_inner().unwrap();
        assert!(refusals.len() <= MAX_REFUSAL_KEYS + 1);
        assert_eq!(refusals.values().map(|&c| c as u64).sum::<u64>(), 50_000);
    }
}
