//! Lockout and per-IP login rate in PostgreSQL, so every instance counts the
//! same failures and attempts. Each operation is one atomic statement.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::{unavailable, Pg};
use crate::config::Rate;
use crate::store::{Gate, StoreError, ThrottleStore};

pub(crate) struct PgThrottle {
    pg: Arc<Pg>,
}

impl PgThrottle {
    pub(crate) fn new(pg: Arc<Pg>) -> Self {
        Self { pg }
    }

    /// Runs one statement under the store's deadline; returns its rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.pg.query("login throttle", sql, params).await
    }
}

#[async_trait]
impl ThrottleStore for PgThrottle {
    async fn login_attempt(
        &self,
        client: &str,
        rate: Rate,
    ) -> Result<Option<Duration>, StoreError> {
        // A fixed window per client, restarted once it has passed.
        let rows = self
            .query(
                "INSERT INTO login_rate AS r (client_ip, window_start, attempts) VALUES ($1, now(), 1)
                 ON CONFLICT (client_ip) DO UPDATE SET
                     attempts = CASE WHEN r.window_start < now() - make_interval(secs => $2) THEN 1 ELSE r.attempts + 1 END,
                     window_start = CASE WHEN r.window_start < now() - make_interval(secs => $2) THEN now() ELSE r.window_start END
                 RETURNING attempts, EXTRACT(EPOCH FROM (r.window_start + make_interval(secs => $2) - now()))::float8",
                &[&client, &rate.per.as_secs_f64()],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| unavailable("no row from login_rate"))?;
        let attempts: i32 = row.get(0);
        let remaining: f64 = row.get(1);
        Ok((i64::from(attempts) > i64::from(rate.count))
            .then(|| Duration::from_secs_f64(remaining.max(1.0))))
    }

    async fn begin_attempt(
        &self,
        account: &str,
        max_failures: u32,
        lockout: Duration,
    ) -> Result<Gate, StoreError> {
        // A lock in force leaves the row alone; an expired lock or a quiet
        // spell longer than `lockout` starts counting afresh.
        let rows = self
            .query(
                "INSERT INTO login_failures AS f (account, failures, locked_until, updated_at) VALUES ($1, 1, NULL, now())
                 ON CONFLICT (account) DO UPDATE SET
                     failures = CASE
                         WHEN f.locked_until > now() THEN f.failures
                         WHEN f.locked_until IS NOT NULL OR f.updated_at < now() - make_interval(secs => $2) THEN 1
                         ELSE f.failures + 1 END,
                     locked_until = CASE WHEN f.locked_until > now() THEN f.locked_until ELSE NULL END,
                     updated_at = now()
                 RETURNING failures, locked_until IS NOT NULL",
                &[&account, &lockout.as_secs_f64()],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| unavailable("no row from login_failures"))?;
        let attempt: i32 = row.get(0);
        let locked: bool = row.get(1);
        Ok(if locked || i64::from(attempt) > i64::from(max_failures) {
            Gate::Refused
        } else {
            Gate::Allowed {
                attempt: attempt.max(1) as u32,
            }
        })
    }

    async fn lock(&self, account: &str, lockout: Duration) -> Result<(), StoreError> {
        self.query(
            "UPDATE login_failures SET locked_until = now() + make_interval(secs => $2), failures = 0 WHERE account = $1",
            &[&account, &lockout.as_secs_f64()],
        )
        .await?;
        Ok(())
    }

    async fn clear_failures(&self, account: &str) -> Result<(), StoreError> {
        self.query("DELETE FROM login_failures WHERE account = $1", &[&account])
            .await?;
        Ok(())
    }

    async fn release_attempt(&self, account: &str) -> Result<(), StoreError> {
        self.query(
            "UPDATE login_failures SET failures = GREATEST(failures - 1, 0)
             WHERE account = $1 AND (locked_until IS NULL OR locked_until <= now())",
            &[&account],
        )
        .await?;
        Ok(())
    }
}
