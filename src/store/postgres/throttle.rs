//! Lockout and per-IP login rate in PostgreSQL, so every instance counts the
//! same failures and attempts. Each operation is one atomic statement.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{db_error, pool_error, Pg};
use crate::config::Rate;
use crate::store::{StoreError, ThrottleStore};

pub struct PgThrottle {
    pg: Arc<Pg>,
}

impl PgThrottle {
    pub fn new(pg: Arc<Pg>) -> Self {
        Self { pg }
    }
}

#[async_trait]
impl ThrottleStore for PgThrottle {
    async fn login_attempt(&self, ip: IpAddr, rate: Rate) -> Result<Option<Duration>, StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        let window = rate.per.as_secs_f64();
        // A fixed window per client address, restarted once it has passed.
        let row = client
            .query_one(
                "INSERT INTO login_rate AS r (client_ip, window_start, attempts) VALUES ($1, now(), 1)
                 ON CONFLICT (client_ip) DO UPDATE SET
                     attempts = CASE WHEN r.window_start < now() - make_interval(secs => $2) THEN 1 ELSE r.attempts + 1 END,
                     window_start = CASE WHEN r.window_start < now() - make_interval(secs => $2) THEN now() ELSE r.window_start END
                 RETURNING attempts, EXTRACT(EPOCH FROM (r.window_start + make_interval(secs => $2) - now()))::float8",
                &[&ip.to_string(), &window],
            )
            .await
            .map_err(db_error)?;
        let attempts: i32 = row.get(0);
        let remaining: f64 = row.get(1);
        Ok((attempts as i64 > rate.count as i64)
            .then(|| Duration::from_secs_f64(remaining.max(1.0))))
    }

    async fn locked_until(&self, account: &str) -> Result<Option<SystemTime>, StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                "SELECT locked_until FROM login_failures WHERE account = $1 AND locked_until > now()",
                &[&account],
            )
            .await
            .map_err(db_error)?;
        Ok(row.and_then(|r| r.get(0)))
    }

    async fn record_failure(
        &self,
        account: &str,
        max_failures: u32,
        lockout: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        let secs = lockout.as_secs_f64();
        // Failures older than the lockout window are forgotten; reaching the
        // maximum locks the account and starts counting afresh.
        let row = client
            .query_one(
                "INSERT INTO login_failures AS f (account, failures, locked_until, updated_at) VALUES ($1, 1, NULL, now())
                 ON CONFLICT (account) DO UPDATE SET
                     failures = CASE WHEN f.updated_at < now() - make_interval(secs => $2) THEN 1 ELSE f.failures + 1 END,
                     updated_at = now()
                 RETURNING failures",
                &[&account, &secs],
            )
            .await
            .map_err(db_error)?;
        let failures: i32 = row.get(0);
        if failures as i64 >= max_failures as i64 {
            client
                .execute(
                    "UPDATE login_failures SET locked_until = now() + make_interval(secs => $2), failures = 0 WHERE account = $1",
                    &[&account, &secs],
                )
                .await
                .map_err(db_error)?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn clear_failures(&self, account: &str) -> Result<(), StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        client
            .execute("DELETE FROM login_failures WHERE account = $1", &[&account])
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
