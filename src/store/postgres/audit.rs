//! The `audit_events` statements for PostgreSQL; queueing, aggregation of
//! refusals and retention are the shared `store::audit`.

use std::time::Duration;

use async_trait::async_trait;

use super::{db_error, pool_error, Pg};
use crate::store::audit::{AuditRow, AuditTable};
use crate::store::StoreError;

#[async_trait]
impl AuditTable for Pg {
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }

    fn ready(&self) -> bool {
        self.is_migrated()
    }

    async fn insert(
        &self,
        (event, user, ip, request_id, count): &AuditRow,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "INSERT INTO audit_events (event, username, client_ip, request_id, count) VALUES ($1, $2, $3, $4, $5)",
                &[event, user, ip, request_id, count],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn prune(&self, retention: Duration) -> Result<u64, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "DELETE FROM audit_events WHERE at < now() - make_interval(secs => $1)",
                &[&retention.as_secs_f64()],
            )
            .await
            .map_err(db_error)
    }
}
