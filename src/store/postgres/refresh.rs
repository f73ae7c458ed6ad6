//! Refresh tokens in PostgreSQL, so any instance can rotate a token minted
//! by another and a replay revokes the family everywhere.

use std::sync::Arc;

use async_trait::async_trait;

use super::{db_error, pool_error, Pg};
use crate::store::{Identity, RefreshRecord, RefreshStore, StoreError, TokenHash};

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
    async fn insert(&self, token_hash: &TokenHash, r: &RefreshRecord) -> Result<(), StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        client
            .execute(
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
        Ok(())
    }

    async fn spend(&self, token_hash: &TokenHash) -> Result<Option<RefreshRecord>, StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        // One statement: concurrent uses all see the first use's time.
        let row = client
            .query_opt(
                "WITH before AS (
                     SELECT token_hash, spent_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE
                 )
                 UPDATE refresh_tokens t SET spent_at = coalesce(t.spent_at, now())
                 FROM before WHERE t.token_hash = before.token_hash
                 RETURNING t.family, t.user_id, t.username, t.email, t.roles, t.expires_at, before.spent_at",
                &[&&token_hash.0[..]],
            )
            .await
            .map_err(db_error)?;
        Ok(row.map(|row| RefreshRecord {
            family: row.get(0),
            identity: Identity {
                id: row.get(1),
                username: row.get(2),
                email: row.get(3),
                roles: row.get(4),
            },
            expires_at: row.get(5),
            spent_at: row.get(6),
        }))
    }

    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        client
            .execute("DELETE FROM refresh_tokens WHERE family = $1", &[&family])
            .await
            .map_err(db_error)
    }
}
