//! `audit_events` rows for the database backends (PostgreSQL and SQLite),
//! written by a background task so a slow or absent database never delays
//! a login; the log line is written regardless. A backend supplies only
//! its statements ([`AuditTable`]).
//!
//! Refusals that anyone can provoke without an account (a forged CSRF
//! token, a bad SSO token, a rate-limited address...) are counted in memory
//! and written as one row per (event, user, address) every
//! [`FLUSH_EVERY`] with a `count`, so a flood of them can neither fill the
//! queue and push out real events nor grow the table one row a request.
//! Rows older than `audit.retention` are deleted hourly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{AuditEvent, AuditSink, StoreError};

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

/// `(event, username, client_ip, request_id, count)`.
pub(crate) type AuditRow = (&'static str, String, String, String, i32);

/// The statements of one backend's `audit_events` table.
#[async_trait]
pub(crate) trait AuditTable: Send + Sync + 'static {
    /// For log lines ("PostgreSQL", "SQLite").
    fn name(&self) -> &'static str;
    /// True once the schema is in place (pruning waits for it).
    fn ready(&self) -> bool;
    async fn insert(&self, row: &AuditRow) -> Result<(), StoreError>;
    /// Deletes rows older than `retention`; how many.
    async fn prune(&self, retention: Duration) -> Result<u64, StoreError>;
}

type RefusalKey = (&'static str, String, String);

/// The audit sink of a serving process: queued, aggregated, pruned.
pub(crate) struct QueuedAudit {
    table: Arc<dyn AuditTable>,
    tx: mpsc::Sender<AuditEvent>,
    refusals: Arc<Mutex<HashMap<RefusalKey, i32>>>,
}

/// True for the events an anonymous client can cause at will.
fn is_refusal(event: &str) -> bool {
    event.ends_with("_refused") || event.ends_with("_rate_limited")
}

fn row_of(event: AuditEvent) -> AuditRow {
    (
        event.event,
        event.user,
        event.client_ip.to_string(),
        event.request_id,
        1,
    )
}

impl QueuedAudit {
    pub(crate) fn start(table: Arc<dyn AuditTable>, retention: Duration) -> Self {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(QUEUE);
        let writer = table.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                write_with_retries(&*writer, &row_of(event)).await;
            }
        });
        // The tasks below hold the table weakly: they end with the store.
        let refusals: Arc<Mutex<HashMap<RefusalKey, i32>>> = Arc::default();
        let weak = Arc::downgrade(&refusals);
        let flusher = Arc::downgrade(&table);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (Some(refusals), Some(table)) = (weak.upgrade(), flusher.upgrade()) else {
                    break;
                };
                let window = std::mem::take(&mut *refusals.lock().expect("not poisoned"));
                drop(refusals);
                for ((event, user, ip), count) in window {
                    let row = (event, user, ip, "-".to_string(), count);
                    write_with_retries(&*table, &row).await;
                }
            }
        });
        tokio::spawn(prune(Arc::downgrade(&table), retention));
        Self {
            table,
            tx,
            refusals,
        }
    }
}

async fn write_with_retries(table: &dyn AuditTable, row: &AuditRow) {
    // Retry a few times so a brief outage does not lose the row.
    for attempt in 0..5u32 {
        match table.insert(row).await {
            Ok(()) => return,
            Err(e) if attempt == 4 => {
                tracing::error!(error = %e, event = row.0, backend = table.name(), "audit row lost: database unavailable");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500 << attempt)).await,
        }
    }
}

/// Deletes rows older than `retention`, once the schema is in place and
/// then hourly.
async fn prune(weak: Weak<dyn AuditTable>, retention: Duration) {
    loop {
        let Some(table) = weak.upgrade() else { return };
        if !table.ready() {
            drop(table);
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        match table.prune(retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                ?retention,
                "audit rows past audit.retention deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "audit retention: could not delete old rows"),
        }
        drop(table);
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// The row of an operator's action: no client address or request id.
fn operator_row(event: &'static str, user: &str) -> AuditRow {
    (
        event,
        user.to_string(),
        "cli".to_string(),
        "-".to_string(),
        1,
    )
}

#[async_trait]
impl AuditSink for QueuedAudit {
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
        self.table.insert(&operator_row(event, user)).await
    }
}

/// Audit rows written one by one as they come, for the operator commands:
/// their process ends right after, so nothing is queued, aggregated or
/// pruned in the background.
pub(crate) struct DirectAudit {
    table: Arc<dyn AuditTable>,
}

impl DirectAudit {
    pub(crate) fn new(table: Arc<dyn AuditTable>) -> Self {
        Self { table }
    }
}

#[async_trait]
impl AuditSink for DirectAudit {
    fn record(&self, event: AuditEvent) {
        let table = self.table.clone();
        tokio::spawn(async move {
            write_with_retries(&*table, &row_of(event)).await;
        });
    }

    async fn record_operator(&self, event: &'static str, user: &str) -> Result<(), StoreError> {
        self.table.insert(&operator_row(event, user)).await
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
