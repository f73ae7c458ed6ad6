//! Sessions in SQLite behind the in-process [`SessionCache`] (the same one
//! as in front of PostgreSQL): a signed-in request reads memory, activity
//! is written behind every [`FLUSH_INTERVAL`] in one transaction, and
//! expired rows of every table are swept about once a minute (`sweep`).
//! Revocations made by another process on the file (`portcullis sessions
//! revoke`) clear the cache within 250 ms (see `watch`).

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, Connection, Row};

use super::{millis, roles_json, roles_of, sweep, time_of, watch, Sqlite};
use crate::store::session_cache::SessionCache;
use crate::store::{AuthMethod, Identity, SessionRecord, SessionStore, StoreError, TokenHash};

/// How often batched `last_seen` times are written.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Sweeps run every this many flushes (about once a minute).
const SWEEP_EVERY: u32 = 12;
const COLUMNS: &str =
    "token_hash, user_id, username, email, roles, auth_method, created_at, last_seen, expires_at, checked_at,
     public_id, client_ip, user_agent";

pub(crate) struct SqliteSessionStore {
    db: Arc<Sqlite>,
    cache: SessionCache,
}

impl SqliteSessionStore {
    /// The store of a serving process: its activity flusher, sweeper and
    /// revocation follower stop when the store is dropped.
    pub(crate) fn start(db: Arc<Sqlite>, cache_ttl: Duration, idle_timeout: Duration) -> Arc<Self> {
        let store = Self::new(db, cache_ttl);
        tokio::spawn(flush_and_sweep(Arc::downgrade(&store), idle_timeout));
        tokio::spawn(follow_revocations(Arc::downgrade(&store)));
        store
    }

    /// A store that reads and revokes but runs nothing in the background
    /// (the operator commands).
    pub(crate) fn new(db: Arc<Sqlite>, cache_ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            db,
            cache: SessionCache::new(cache_ttl),
        })
    }

    /// Writes pending activity in one transaction; on failure the times are
    /// put back to be written next round.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let batch = self.cache.take_touches();
        if batch.is_empty() {
            return Ok(());
        }
        let rows: Vec<([u8; 32], i64)> = batch.iter().map(|(h, t)| (h.0, millis(*t))).collect();
        let written = self
            .db
            .write(move |c| {
                let tx = c.transaction()?;
                {
                    let mut update = tx.prepare_cached(
                        "UPDATE sessions SET last_seen = max(last_seen, ?2) WHERE token_hash = ?1",
                    )?;
                    for (hash, seen) in &rows {
                        update.execute(params![&hash[..], seen])?;
                    }
                }
                tx.commit()
            })
            .await;
        if let Err(e) = written {
            self.cache.restore_touches(batch);
            return Err(e);
        }
        Ok(())
    }

    /// Deletes the sessions `condition` (with `?1`, `?2`...) selects;
    /// returns how many, after forgetting them here and telling other
    /// processes.
    async fn delete_where(
        &self,
        condition: &'static str,
        params: Vec<Value>,
    ) -> Result<u64, StoreError> {
        let (hashes, seq) = self
            .db
            .write(move |c| {
                let tx = c.transaction()?;
                let hashes = deleted(
                    &tx,
                    &format!("DELETE FROM sessions WHERE {condition} RETURNING token_hash"),
                    rusqlite::params_from_iter(params),
                )?;
                let seq = if hashes.is_empty() {
                    None
                } else {
                    Some(watch::bump(&tx)?)
                };
                tx.commit()?;
                Ok((hashes, seq))
            })
            .await?;
        self.revoked(&hashes, seq).await;
        Ok(hashes.len() as u64)
    }

    async fn revoked(&self, hashes: &[TokenHash], seq: Option<i64>) {
        self.cache.forget(hashes).await;
        if let Some(seq) = seq {
            self.db.revocations.own(seq);
        }
    }
}

/// Runs a `DELETE ... RETURNING token_hash`; the hashes deleted.
fn deleted(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<TokenHash>> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map(params, |row| Ok(hash_of(row.get_ref(0)?.as_blob()?)))?;
    rows.collect()
}

fn hash_of(bytes: &[u8]) -> TokenHash {
    // Every stored hash is 32 bytes; anything else matches no cookie.
    TokenHash(bytes.try_into().unwrap_or([0; 32]))
}

fn record_of(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    let method: String = row.get("auth_method")?;
    let roles: String = row.get("roles")?;
    Ok(SessionRecord {
        token_hash: hash_of(row.get_ref("token_hash")?.as_blob()?),
        identity: Identity {
            id: row.get("user_id")?,
            username: row.get("username")?,
            email: row.get("email")?,
            roles: roles_of(&roles),
        },
        auth_method: if method == "sso" {
            AuthMethod::Sso
        } else {
            AuthMethod::Password
        },
        created_at: time_of(row.get("created_at")?),
        last_seen: time_of(row.get("last_seen")?),
        expires_at: time_of(row.get("expires_at")?),
        checked_at: time_of(row.get("checked_at")?),
        public_id: row.get("public_id")?,
        // An address that does not parse is shown as unknown.
        client_ip: row
            .get::<_, Option<String>>("client_ip")?
            .and_then(|ip| ip.parse().ok()),
        user_agent: row.get("user_agent")?,
    })
}

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn insert(&self, s: SessionRecord, max_per_user: u32) -> Result<(), StoreError> {
        let record = s.clone();
        let (evicted, seq) = self
            .db
            .write(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    &format!("INSERT INTO sessions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
                    params![
                        &s.token_hash.0[..],
                        s.identity.id,
                        s.identity.username,
                        s.identity.email,
                        roles_json(&s.identity.roles),
                        s.auth_method.as_str(),
                        millis(s.created_at),
                        millis(s.last_seen),
                        millis(s.expires_at),
                        millis(s.checked_at),
                        s.public_id,
                        s.client_ip.map(|ip| ip.to_string()),
                        s.user_agent,
                    ],
                )?;
                let mut evicted = Vec::new();
                if max_per_user > 0 {
                    evicted = deleted(
                        &tx,
                        "DELETE FROM sessions WHERE token_hash IN (
                             SELECT token_hash FROM sessions WHERE user_id = ?1
                             ORDER BY created_at DESC LIMIT -1 OFFSET ?2)
                         RETURNING token_hash",
                        params![s.identity.id, i64::from(max_per_user)],
                    )?;
                }
                let seq = if evicted.is_empty() {
                    None
                } else {
                    Some(watch::bump(&tx)?)
                };
                tx.commit()?;
                Ok((evicted, seq))
            })
            .await?;
        self.revoked(&evicted, seq).await;
        self.cache.insert(record).await;
        Ok(())
    }

    async fn get(&self, token_hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        let hash = *token_hash;
        let load = || {
            let db = self.db.clone();
            async move {
                db.read(move |c| {
                    let mut statement = c.prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM sessions WHERE token_hash = ?1"
                    ))?;
                    let mut rows = statement.query([&hash.0[..]])?;
                    rows.next()?.map(record_of).transpose()
                })
                .await
            }
        };
        self.cache.get(token_hash, load).await
    }

    /// Only remembers the time; reads merge it in, the flusher writes it.
    async fn touch(&self, token_hash: &TokenHash, at: SystemTime) -> Result<(), StoreError> {
        self.cache.touch(token_hash, at);
        Ok(())
    }

    async fn remove(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        let hash = Value::Blob(token_hash.0.to_vec());
        Ok(self.delete_where("token_hash = ?1", vec![hash]).await? > 0)
    }

    async fn remove_username(&self, username: &str) -> Result<u64, StoreError> {
        let name = Value::Text(username.to_string());
        self.delete_where("username = ?1", vec![name]).await
    }

    async fn remove_public(&self, username: &str, public_id: &str) -> Result<bool, StoreError> {
        let params = vec![
            Value::Text(username.to_string()),
            Value::Text(public_id.to_string()),
        ];
        let removed = self
            .delete_where("username = ?1 AND public_id = ?2", params)
            .await?;
        Ok(removed > 0)
    }

    async fn remove_others(&self, username: &str, keep: &TokenHash) -> Result<u64, StoreError> {
        let params = vec![
            Value::Text(username.to_string()),
            Value::Blob(keep.0.to_vec()),
        ];
        self.delete_where("username = ?1 AND token_hash <> ?2", params)
            .await
    }

    async fn remove_all(&self) -> Result<u64, StoreError> {
        let (n, seq) = self
            .db
            .write(|c| {
                let tx = c.transaction()?;
                let n = tx.execute("DELETE FROM sessions", [])?;
                let seq = watch::bump(&tx)?;
                tx.commit()?;
                Ok((n as u64, seq))
            })
            .await?;
        self.cache.clear();
        self.db.revocations.own(seq);
        Ok(n)
    }

    async fn list_username(&self, username: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let name = username.to_string();
        self.db
            .read(move |c| {
                let mut statement = c.prepare(&format!(
                    "SELECT {COLUMNS} FROM sessions WHERE username = ?1 ORDER BY created_at"
                ))?;
                let rows = statement.query_map([name], record_of)?;
                rows.collect()
            })
            .await
    }

    async fn update_identity(
        &self,
        token_hash: &TokenHash,
        identity: &Identity,
        checked_at: SystemTime,
    ) -> Result<(), StoreError> {
        let (hash, identity, checked) = (*token_hash, identity.clone(), millis(checked_at));
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE sessions SET username = ?2, email = ?3, roles = ?4, checked_at = ?5 WHERE token_hash = ?1",
                    params![&hash.0[..], identity.username, identity.email, roles_json(&identity.roles), checked],
                )
            })
            .await?;
        // The cached entry must not keep the old roles.
        self.cache.forget(std::slice::from_ref(token_hash)).await;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }
}

/// Drops the whole cache whenever another process revoked something (or the
/// poll recovered from a failure, when it may have missed some).
async fn follow_revocations(store: Weak<SqliteSessionStore>) {
    let Some(mut heard) = store.upgrade().map(|s| s.db.revocations.subscribe()) else {
        return;
    };
    while heard.changed().await.is_ok() {
        let Some(s) = store.upgrade() else { return };
        s.cache.forget_everything();
    }
}

/// Writes batched activity and wipes refresh successor pairs past their
/// grace every [`FLUSH_INTERVAL`]; about once a minute, sweeps expired rows
/// from every table (see `sweep`).
async fn flush_and_sweep(store: Weak<SqliteSessionStore>, idle_timeout: Duration) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    let mut rounds: u32 = 0;
    loop {
        tick.tick().await;
        let Some(s) = store.upgrade() else { return };
        if !s.db.is_migrated() {
            continue;
        }
        if let Err(e) = s.flush().await {
            tracing::warn!(error = %e, "could not write session activity; will retry");
        }
        if let Err(e) = s.db.write(sweep::successors).await {
            tracing::debug!(error = %e, "successor pairs past their grace not wiped this round");
        }
        rounds = rounds.wrapping_add(1);
        if rounds % SWEEP_EVERY == 0 {
            if let Err(e) = s.db.write(move |c| sweep::expired(c, idle_timeout)).await {
                tracing::debug!(error = %e, "expired-row sweep failed");
            }
        }
    }
}
