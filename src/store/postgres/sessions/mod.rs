//! Sessions in PostgreSQL behind the in-process [`SessionCache`] (the same
//! one as SQLite's).
//!
//! - Reads: served from the cache, whose entries live at most `cache_ttl`,
//!   so a session costs one query per `cache_ttl` per instance, not one per
//!   request.
//! - Activity: `touch` only records the time in memory; a flusher writes the
//!   batch every [`FLUSH_INTERVAL`] in one statement. The idle timeout is
//!   therefore accurate to that interval.
//! - Revocation (`revocation`): deleting a session sends `NOTIFY
//!   portcullis_sessions` with its hash; every instance listens and drops it
//!   from its cache at once. A listener that loses its connection clears its
//!   whole cache, since it may have missed notices, and `cache_ttl` bounds
//!   staleness regardless.

mod revocation;

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio_postgres::Row;

use super::listener::listen;
use super::{db_error, pool_error, sweep, unavailable, Pg, DB_TIMEOUT};
use crate::store::session_cache::SessionCache;
use crate::store::{AuthMethod, Identity, SessionRecord, SessionStore, StoreError, TokenHash};

/// How often batched `last_seen` times are written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
const COLUMNS: &str =
    "token_hash, user_id, username, email, roles, auth_method, created_at, last_seen, expires_at, checked_at, \
     public_id, client_ip, user_agent";

pub(crate) struct PgSessionStore {
    pg: Arc<Pg>,
    cache: SessionCache,
}

impl PgSessionStore {
    /// Starts the store with its revocation listener, activity flusher and
    /// expiry sweeper (all stop when the store is dropped).
    pub(crate) fn start(pg: Arc<Pg>, cache_ttl: Duration, idle_timeout: Duration) -> Arc<Self> {
        let store = Arc::new(Self {
            pg,
            cache: SessionCache::new(cache_ttl),
        });
        tokio::spawn(listen(Arc::downgrade(&store)));
        tokio::spawn(flush_and_sweep(Arc::downgrade(&store), idle_timeout));
        store
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pg.pool.get().await.map_err(pool_error)
    }

    /// Writes pending activity in one statement; on failure the times are
    /// put back to be written next round.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let batch = self.cache.take_touches();
        if batch.is_empty() {
            return Ok(());
        }
        let hashes: Vec<&[u8]> = batch.iter().map(|(h, _)| &h.0[..]).collect();
        let times: Vec<SystemTime> = batch.iter().map(|(_, t)| *t).collect();
        let result = async {
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE sessions s SET last_seen = GREATEST(s.last_seen, t.seen)
                     FROM unnest($1::bytea[], $2::timestamptz[]) AS t(hash, seen)
                     WHERE s.token_hash = t.hash",
                    &[&hashes, &times],
                )
                .await
                .map_err(db_error)
        }
        .await;
        if let Err(e) = result {
            self.cache.restore_touches(batch);
            return Err(e);
        }
        Ok(())
    }

    /// Reads one session row (for a cache miss); owns what it needs, as
    /// the read is shared by every request waiting for it.
    fn load(
        &self,
        token_hash: &TokenHash,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send + 'static {
        let pg = self.pg.clone();
        let hash = *token_hash;
        async move {
            let client = pg.pool.get().await.map_err(pool_error)?;
            let row = tokio::time::timeout(
                DB_TIMEOUT,
                client.query_opt(
                    &format!("SELECT {COLUMNS} FROM sessions WHERE token_hash = $1"),
                    &[&&hash.0[..]],
                ),
            )
            .await
            .map_err(|_| unavailable("session lookup timed out"))?
            .map_err(db_error)?;
            Ok(row.as_ref().map(record_of))
        }
    }

    async fn delete_where(
        &self,
        condition: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("DELETE FROM sessions WHERE {condition} RETURNING token_hash"),
                params,
            )
            .await
            .map_err(db_error)?;
        let hashes: Vec<TokenHash> = rows.iter().map(hash_of).collect();
        self.revoked(&client, &hashes).await;
        Ok(hashes.len() as u64)
    }
}

fn hash_of(row: &Row) -> TokenHash {
    let bytes: &[u8] = row.get("token_hash");
    // Every stored hash is 32 bytes; anything else matches no cookie.
    TokenHash(bytes.try_into().unwrap_or([0; 32]))
}

fn record_of(row: &Row) -> SessionRecord {
    let method: &str = row.get("auth_method");
    SessionRecord {
        token_hash: hash_of(row),
        identity: Identity {
            id: row.get("user_id"),
            username: row.get("username"),
            email: row.get("email"),
            roles: row.get("roles"),
        },
        auth_method: if method == "sso" {
            AuthMethod::Sso
        } else {
            AuthMethod::Password
        },
        created_at: row.get("created_at"),
        last_seen: row.get("last_seen"),
        expires_at: row.get("expires_at"),
        checked_at: row.get("checked_at"),
        public_id: row.get("public_id"),
        client_ip: row
            .get::<_, Option<&str>>("client_ip")
            .and_then(|ip| ip.parse().ok()),
        user_agent: row.get("user_agent"),
    }
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn insert(&self, s: SessionRecord, max_per_user: u32) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                &format!("INSERT INTO sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"),
                &[
                    &&s.token_hash.0[..],
                    &s.identity.id,
                    &s.identity.username,
                    &s.identity.email,
                    &s.identity.roles,
                    &s.auth_method.as_str(),
                    &s.created_at,
                    &s.last_seen,
                    &s.expires_at,
                    &s.checked_at,
                    &s.public_id,
                    &s.client_ip.map(|ip| ip.to_string()),
                    &s.user_agent,
                ],
            )
            .await
            .map_err(db_error)?;
        if max_per_user > 0 {
            let evicted = client
                .query(
                    "DELETE FROM sessions WHERE token_hash IN (
                         SELECT token_hash FROM sessions WHERE user_id = $1
                         ORDER BY created_at DESC OFFSET $2)
                     RETURNING token_hash",
                    &[&s.identity.id, &(max_per_user as i64)],
                )
                .await
                .map_err(db_error)?;
            let evicted: Vec<TokenHash> = evicted.iter().map(hash_of).collect();
            self.revoked(&client, &evicted).await;
        }
        self.cache.insert(s).await;
        Ok(())
    }

    async fn get(&self, token_hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        self.cache.get(token_hash, || self.load(token_hash)).await
    }

    /// Only remembers the time; [`PgSessionStore::get`] merges it in, so the
    /// cached entry keeps its own `cache_ttl` expiry.
    async fn touch(&self, token_hash: &TokenHash, at: SystemTime) -> Result<(), StoreError> {
        self.cache.touch(token_hash, at);
        Ok(())
    }

    async fn remove(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        Ok(self
            .delete_where("token_hash = $1", &[&&token_hash.0[..]])
            .await?
            > 0)
    }

    async fn remove_username(&self, username: &str) -> Result<u64, StoreError> {
        self.delete_where("username = $1", &[&username]).await
    }

    async fn remove_public(&self, username: &str, public_id: &str) -> Result<bool, StoreError> {
        let removed = self
            .delete_where("username = $1 AND public_id = $2", &[&username, &public_id])
            .await?;
        Ok(removed > 0)
    }

    async fn remove_others(&self, username: &str, keep: &TokenHash) -> Result<u64, StoreError> {
        self.delete_where(
            "username = $1 AND token_hash <> $2",
            &[&username, &&keep.0[..]],
        )
        .await
    }

    async fn remove_all(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM sessions", &[])
            .await
            .map_err(db_error)?;
        self.cache.clear();
        if let Err(e) = self.notify(&client, "*").await {
            tracing::warn!(error = %e, "revocation notice not sent; other instances drop sessions within session.cache_ttl");
        }
        Ok(n)
    }

    async fn list_username(&self, username: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM sessions WHERE username = $1 ORDER BY created_at"),
                &[&username],
            )
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(record_of).collect())
    }

    async fn update_identity(
        &self,
        token_hash: &TokenHash,
        identity: &Identity,
        checked_at: SystemTime,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE sessions SET username = $2, email = $3, roles = $4, checked_at = $5 WHERE token_hash = $1",
                &[&&token_hash.0[..], &identity.username, &identity.email, &identity.roles, &checked_at],
            )
            .await
            .map_err(db_error)?;
        // Other instances must not keep serving the old roles.
        self.revoked(&client, std::slice::from_ref(token_hash))
            .await;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.pg.ping().await
    }
}

/// Writes batched activity every [`FLUSH_INTERVAL`] and, about once a
/// minute, sweeps expired rows from every table (see `sweep`).
async fn flush_and_sweep(store: Weak<PgSessionStore>, idle_timeout: Duration) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    let mut rounds: u32 = 0;
    loop {
        tick.tick().await;
        let Some(s) = store.upgrade() else { return };
        if let Err(e) = s.flush().await {
            tracing::warn!(error = %e, "could not write session activity; will retry");
        }
        rounds = rounds.wrapping_add(1);
        if rounds % 12 == 0 {
            let swept = sweep::expired(&s.pg, SystemTime::now() - idle_timeout).await;
            if let Err(e) = swept {
                tracing::debug!(error = %e, "expired-row sweep failed");
            }
        }
    }
}
