//! The `audit_events` statements for SQLite (`at` in unix milliseconds);
//! queueing, aggregation of refusals and retention are the shared
//! `store::audit`, as for PostgreSQL.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;

use super::{ms, now_ms, Sqlite};
use crate::store::audit::{AuditRow, AuditTable};
use crate::store::StoreError;

#[async_trait]
impl AuditTable for Sqlite {
    fn name(&self) -> &'static str {
        "SQLite"
    }

    fn ready(&self) -> bool {
        self.is_migrated()
    }

    async fn insert(&self, row: &AuditRow) -> Result<(), StoreError> {
        let (event, user, ip, request_id, count) = row.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO audit_events (at, event, username, client_ip, request_id, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now_ms(), event, user, ip, request_id, count],
            )
        })
        .await?;
        Ok(())
    }

    async fn prune(&self, retention: Duration) -> Result<u64, StoreError> {
        let before = now_ms() - ms(retention);
        let deleted = self
            .write(move |c| c.execute("DELETE FROM audit_events WHERE at < ?1", [before]))
            .await?;
        Ok(deleted as u64)
    }
}
