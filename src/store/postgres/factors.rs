//! Second factors in PostgreSQL (`mfa_factors`, `mfa_recovery_codes`), so
//! every instance sees one enrolment, and a TOTP step or recovery code used
//! on one instance is refused by all: each check-and-spend is one atomic
//! statement.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::{db_error, pool_error, unavailable, Pg, DB_TIMEOUT};
use crate::store::{FactorRecord, FactorStore, StoreError};

pub(crate) struct PgFactorStore {
    pg: Arc<Pg>,
}

impl PgFactorStore {
    pub(crate) fn new(pg: Arc<Pg>) -> Self {
        Self { pg }
    }

    /// Runs one statement under the store's deadline; returns its rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.pg.query("second factor", sql, params).await
    }
}

fn record(row: &tokio_postgres::Row) -> FactorRecord {
    FactorRecord {
        secret: row.get("secret"),
        enabled: row.get("enabled"),
        last_step: row.get("last_step"),
    }
}

fn as_slices(hashes: &[[u8; 32]]) -> Vec<&[u8]> {
    hashes.iter().map(|h| &h[..]).collect()
}

#[async_trait]
impl FactorStore for PgFactorStore {
    async fn get(&self, user_id: &str) -> Result<Option<FactorRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT secret, enabled, last_step FROM mfa_factors WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        Ok(rows.first().map(record))
    }

    async fn pending(
        &self,
        user_id: &str,
        secret: &[u8],
        fresh_for: Duration,
    ) -> Result<FactorRecord, StoreError> {
        let rows = self
            .query(
                "INSERT INTO mfa_factors AS f (user_id, secret) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now(), last_step = NULL
                     WHERE NOT f.enabled AND f.created_at <= now() - make_interval(secs => $3)
                 RETURNING secret, enabled, last_step",
                &[&user_id, &secret, &fresh_for.as_secs_f64()],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Ok(record(row));
        }
        self.get(user_id)
            .await?
            .ok_or_else(|| unavailable("mfa_factors row vanished while being read"))
    }

    async fn enable(
        &self,
        user_id: &str,
        secret: &[u8],
        step: i64,
        recovery: &[[u8; 32]],
    ) -> Result<bool, StoreError> {
        let mut client = self.pg.pool.get().await.map_err(pool_error)?;
        let work = async {
            let tx = client.transaction().await?;
            let updated = tx
                .execute(
                    "UPDATE mfa_factors SET enabled = true, last_step = $3, enabled_at = now()
                     WHERE user_id = $1 AND NOT enabled AND secret = $2",
                    &[&user_id, &secret, &step],
                )
                .await?;
            if updated != 1 {
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
            tx.execute(
                "INSERT INTO mfa_recovery_codes (user_id, code_hash)
                 SELECT $1, h FROM unnest($2::bytea[]) AS h ON CONFLICT DO NOTHING",
                &[&user_id, &as_slices(recovery)],
            )
            .await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(true)
        };
        tokio::time::timeout(DB_TIMEOUT, work)
            .await
            .map_err(|_| unavailable("second factor enrolment timed out"))?
            .map_err(db_error)
    }

    async fn use_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "UPDATE mfa_factors SET last_step = $2
                 WHERE user_id = $1 AND enabled AND (last_step IS NULL OR last_step < $2)
                 RETURNING 1",
                &[&user_id, &step],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn use_recovery(&self, user_id: &str, hashes: &[[u8; 32]]) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "DELETE FROM mfa_recovery_codes c USING mfa_factors f
                 WHERE c.user_id = $1 AND c.code_hash = ANY($2) AND f.user_id = c.user_id AND f.enabled
                 RETURNING 1",
                &[&user_id, &as_slices(hashes)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn recovery_left(&self, user_id: &str) -> Result<u32, StoreError> {
        let rows = self
            .query(
                "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        let n: i64 = rows.first().map_or(0, |r| r.get(0));
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn remove(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut client = self.pg.pool.get().await.map_err(pool_error)?;
        let work = async {
            let tx = client.transaction().await?;
            tx.execute(
                "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
            let removed = tx
                .query(
                    "DELETE FROM mfa_factors WHERE user_id = $1 RETURNING enabled",
                    &[&user_id],
                )
                .await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(removed.first().is_some_and(|r| r.get::<_, bool>(0)))
        };
        tokio::time::timeout(DB_TIMEOUT, work)
            .await
            .map_err(|_| unavailable("second factor removal timed out"))?
            .map_err(db_error)
    }
}
