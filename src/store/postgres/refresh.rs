//! Refresh tokens in PostgreSQL, so any instance can rotate a token minted
//! by another and a replay revokes the family everywhere. Rotation and
//! revocation of one family are serialised with an advisory lock, and a
//! revoked family is remembered, so a rotation racing a revocation loses.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{db_error, pool_error, Pg};
use crate::store::{Identity, RefreshRecord, RefreshStore, Spend, StoreError, TokenHash};

/// Locks one family for the current transaction.
const LOCK_FAMILY: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))";

pub struct PgRefreshStore {
    pg: Arc<Pg>,
}

impl PgRefreshStore {
    pub fn new(pg: Arc<Pg>) -> Self {
        Self { pg }
    }
}

#[async_trait]
impl RefreshStore for PgRefreshStore {
    async fn insert(&self, token_hash: &TokenHash, r: &RefreshRecord) -> Result<bool, StoreError> {
        let mut client = self.pg.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute(LOCK_FAMILY, &[&r.family])
            .await
            .map_err(db_error)?;
        let revoked = tx
            .query_opt(
                "SELECT 1 FROM revoked_refresh_families WHERE family = $1",
                &[&r.family],
            )
            .await
            .map_err(db_error)?
            .is_some();
        if revoked {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO refresh_tokens (token_hash, family, user_id, username, email, roles, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, now(), $7)",
            &[
                &&token_hash.0[..],
                &r.family,
                &r.identity.id,
                &r.identity.username,
                &r.identity.email,
                &r.identity.roles,
                &r.expires_at,
            ],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn spend(&self, token_hash: &TokenHash, grace: Duration) -> Result<Spend, StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        // One statement, and the database's clock for both times: concurrent
        // uses all see the first use's time.
        let row = client
            .query_opt(
                "WITH before AS (
                     SELECT token_hash, spent_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE
                 )
                 UPDATE refresh_tokens t SET spent_at = coalesce(t.spent_at, now())
                 FROM before WHERE t.token_hash = before.token_hash
                 RETURNING t.family, t.user_id, t.username, t.email, t.roles, t.expires_at,
                     before.spent_at IS NULL,
                     before.spent_at >= now() - make_interval(secs => $2)",
                &[&&token_hash.0[..], &grace.as_secs_f64()],
            )
            .await
            .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(Spend::Unknown);
        };
        let record = RefreshRecord {
            family: row.get(0),
            identity: Identity {
                id: row.get(1),
                username: row.get(2),
                email: row.get(3),
                roles: row.get(4),
            },
            expires_at: row.get(5),
        };
        let fresh: bool = row.get(6);
        let in_grace: Option<bool> = row.get(7);
        Ok(if fresh {
            Spend::Fresh(record)
        } else if in_grace == Some(true) {
            Spend::InGrace(record)
        } else {
            Spend::Reused {
                family: record.family,
            }
        })
    }

    async fn unspend(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "UPDATE refresh_tokens SET spent_at = NULL WHERE token_hash = $1",
                &[&&token_hash.0[..]],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        let mut client = self.pg.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute(LOCK_FAMILY, &[&family])
            .await
            .map_err(db_error)?;
        tx.execute(
            "INSERT INTO revoked_refresh_families (family) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&family],
        )
        .await
        .map_err(db_error)?;
        let deleted = tx
            .execute("DELETE FROM refresh_tokens WHERE family = $1", &[&family])
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(deleted)
    }
}
