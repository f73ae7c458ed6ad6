//! `audit_events` rows, written by a background task so a slow or absent
//! database never delays a login; the log line is written regardless.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{db_error, pool_error, Pg};
use crate::store::{AuditEvent, AuditSink, StoreError};

/// Events waiting to be written; beyond this, new ones are dropped (and
/// counted in the log) rather than held in memory without bound.
const QUEUE: usize = 10_000;

pub struct PgAudit {
    tx: mpsc::Sender<AuditEvent>,
}

impl PgAudit {
    pub fn start(pg: Arc<Pg>) -> Self {
        let (tx, mut rx) = mpsc::channel::<AuditEvent>(QUEUE);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                // Retry a few times so a brief outage does not lose the row.
                for attempt in 0..5u32 {
                    match write(&pg, &event).await {
                        Ok(()) => break,
                        Err(e) if attempt == 4 => {
                            tracing::error!(error = %e, event = event.event, "audit row lost: PostgreSQL unavailable");
                        }
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(500 << attempt))
                                .await
                        }
                    }
                }
            }
        });
        Self { tx }
    }
}

async fn write(pg: &Pg, event: &AuditEvent) -> Result<(), StoreError> {
    let client = pg.pool.get().await.map_err(pool_error)?;
    client
        .execute(
            "INSERT INTO audit_events (event, username, client_ip, request_id) VALUES ($1, $2, $3, $4)",
            &[&event.event, &event.user, &event.client_ip.to_string(), &event.request_id],
        )
        .await
        .map_err(db_error)?;
    Ok(())
}

impl AuditSink for PgAudit {
    fn record(&self, event: AuditEvent) {
        if self.tx.try_send(event).is_err() {
            tracing::error!("audit queue full: an audit row was dropped");
        }
    }
}
