//! Lockout and per-IP login rate in SQLite, so a restart forgets neither.
//! Each operation is one UPSERT, the same logic as PostgreSQL's with the
//! clock passed in (`?2` is now, in unix milliseconds).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;

use super::{ms, now_ms, Sqlite};
use crate::config::Rate;
use crate::store::{Gate, StoreError, ThrottleStore};

pub(crate) struct SqliteThrottle {
    db: Arc<Sqlite>,
}

impl SqliteThrottle {
    pub(crate) fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }
}

#[async_trait]
impl ThrottleStore for SqliteThrottle {
    async fn login_attempt(
        &self,
        client: &str,
        rate: Rate,
    ) -> Result<Option<Duration>, StoreError> {
        let (client, per) = (client.to_string(), ms(rate.per));
        // A fixed window per client, restarted once it has passed.
        let (attempts, left): (i64, i64) = self
            .db
            .write(move |c| {
                c.query_row(
                    "INSERT INTO login_rate AS r (client_ip, window_start, attempts) VALUES (?1, ?2, 1)
                     ON CONFLICT (client_ip) DO UPDATE SET
                         attempts = CASE WHEN r.window_start < ?2 - ?3 THEN 1 ELSE r.attempts + 1 END,
                         window_start = CASE WHEN r.window_start < ?2 - ?3 THEN ?2 ELSE r.window_start END
                     RETURNING attempts, window_start + ?3 - ?2",
                    params![client, now_ms(), per],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
            })
            .await?;
        Ok((attempts > i64::from(rate.count)).then(|| {
            Duration::from_millis(u64::try_from(left).unwrap_or(0)).max(Duration::from_secs(1))
        }))
    }

    async fn begin_attempt(
        &self,
        account: &str,
        max_failures: u32,
        lockout: Duration,
    ) -> Result<Gate, StoreError> {
        let (account, lockout) = (account.to_string(), ms(lockout));
        // A lock in force leaves the row alone; an expired lock or a quiet
        // spell longer than `lockout` starts counting afresh.
        let (attempt, locked): (i64, bool) = self
            .db
            .write(move |c| {
                c.query_row(
                    "INSERT INTO login_failures AS f (account, failures, locked_until, updated_at) VALUES (?1, 1, NULL, ?2)
                     ON CONFLICT (account) DO UPDATE SET
                         failures = CASE
                             WHEN f.locked_until > ?2 THEN f.failures
                             WHEN f.locked_until IS NOT NULL OR f.updated_at < ?2 - ?3 THEN 1
                             ELSE f.failures + 1 END,
                         locked_until = CASE WHEN f.locked_until > ?2 THEN f.locked_until ELSE NULL END,
                         updated_at = ?2
                     RETURNING failures, locked_until IS NOT NULL",
                    params![account, now_ms(), lockout],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
            })
            .await?;
        Ok(if locked || attempt > i64::from(max_failures) {
            Gate::Refused
        } else {
            Gate::Allowed {
                attempt: u32::try_from(attempt.max(1)).unwrap_or(u32::MAX),
            }
        })
    }

    async fn lock(&self, account: &str, lockout: Duration) -> Result<(), StoreError> {
        let (account, lockout) = (account.to_string(), ms(lockout));
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE login_failures SET locked_until = ?2 + ?3, failures = 0 WHERE account = ?1",
                    params![account, now_ms(), lockout],
                )
            })
            .await?;
        Ok(())
    }

    async fn clear_failures(&self, account: &str) -> Result<(), StoreError> {
        let account = account.to_string();
        self.db
            .write(move |c| c.execute("DELETE FROM login_failures WHERE account = ?1", [account]))
            .await?;
        Ok(())
    }

    async fn release_attempt(&self, account: &str) -> Result<(), StoreError> {
        let account = account.to_string();
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE login_failures SET failures = max(failures - 1, 0)
                     WHERE account = ?1 AND (locked_until IS NULL OR locked_until <= ?2)",
                    params![account, now_ms()],
                )
            })
            .await?;
        Ok(())
    }
}
