//! Refresh tokens in SQLite: rotation with reuse detection and a grace
//! successor, as in PostgreSQL. Every read-modify-write runs in one
//! IMMEDIATE transaction, which holds the file's write lock from its start,
//! so a rotation racing a revocation cannot interleave with it (the role of
//! PostgreSQL's advisory locks).
//!
//! Revoked families are kept in memory ([`RevokedFamilies`]) for the bearer
//! hot path: loaded at start, updated by this process' revocations, and
//! reloaded whenever another process (`portcullis sessions revoke`) revoked
//! something (see `watch`). Successor pairs past their grace are wiped by
//! the sweeper (see `sessions`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{millis, ms, now_ms, roles_json, roles_of, time_of, watch, Sqlite};
use crate::store::revoked::RevokedFamilies;
use crate::store::{Identity, RefreshRecord, RefreshStore, Spend, StoreError, TokenHash};

pub(crate) struct SqliteRefreshStore {
    db: Arc<Sqlite>,
    revoked: RevokedFamilies,
}

impl SqliteRefreshStore {
    /// A store that writes revocations but does not follow them (the
    /// operator commands): it never answers bearer requests.
    pub(crate) fn new(db: Arc<Sqlite>, window: Duration) -> Self {
        Self {
            db,
            revoked: RevokedFamilies::shared(window, Duration::ZERO),
        }
    }

    /// The store of a serving process. `window`: how long a revocation
    /// matters (the longest an access token can verify); `staleness`: how
    /// long the set is trusted while the revocation poll fails.
    pub(crate) fn start(db: Arc<Sqlite>, window: Duration, staleness: Duration) -> Arc<Self> {
        let store = Arc::new(Self {
            db,
            revoked: RevokedFamilies::shared(window, staleness),
        });
        tokio::spawn(follow_revocations(Arc::downgrade(&store)));
        store
    }

    /// Merges the families revoked within the window into the set, and
    /// wipes successor pairs past their grace.
    async fn reload(&self) -> Result<(), StoreError> {
        let since = now_ms() - ms(self.revoked.window());
        let rows: Vec<(String, i64)> = self
            .db
            .read(move |c| {
                let mut statement = c.prepare(
                    "SELECT family, revoked_at FROM revoked_refresh_families WHERE revoked_at > ?1",
                )?;
                let rows = statement.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await?;
        let now = now_ms();
        for (family, at) in rows {
            let age = Duration::from_millis(u64::try_from(now - at).unwrap_or(0));
            self.revoked.insert(&family, age);
        }
        self.revoked.prune();
        Ok(())
    }

    /// Revokes the families `select` names (a statement with `?1`, or none
    /// for all) in one transaction: remembered, emptied, announced. Returns
    /// (families, tokens deleted).
    async fn revoke_where(
        &self,
        select: &'static str,
        param: Option<String>,
    ) -> Result<(Vec<String>, u64), StoreError> {
        let (families, deleted, seq) = self
            .db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let families: Vec<String> = {
                    let mut statement = tx.prepare(select)?;
                    let rows: rusqlite::Result<Vec<String>> = match &param {
                        Some(p) => statement
                            .query_map([p], |r| r.get::<_, String>(0))?
                            .collect(),
                        None => statement
                            .query_map([], |r| r.get::<_, String>(0))?
                            .collect(),
                    };
                    rows?
                };
                let deleted = revoke(&tx, &families)?;
                let seq = if families.is_empty() {
                    None
                } else {
                    Some(watch::bump(&tx)?)
                };
                tx.commit()?;
                Ok((families, deleted, seq))
            })
            .await?;
        for family in &families {
            self.revoked.insert(family, Duration::ZERO);
        }
        if let Some(seq) = seq {
            self.db.revocations.own(seq);
        }
        Ok((families, deleted))
    }
}

/// Records `families` as revoked and deletes their tokens; how many tokens.
fn revoke(c: &Connection, families: &[String]) -> rusqlite::Result<u64> {
    let now = now_ms();
    let mut remember = c.prepare_cached(
        "INSERT INTO revoked_refresh_families (family, revoked_at) VALUES (?1, ?2)
         ON CONFLICT (family) DO NOTHING",
    )?;
    let mut delete = c.prepare_cached("DELETE FROM refresh_tokens WHERE family = ?1")?;
    let mut deleted = 0;
    for family in families {
        remember.execute(params![family, now])?;
        deleted += delete.execute([family])? as u64;
    }
    Ok(deleted)
}

#[async_trait]
impl RefreshStore for SqliteRefreshStore {
    async fn insert(&self, token_hash: &TokenHash, r: &RefreshRecord) -> Result<bool, StoreError> {
        let (hash, r) = (*token_hash, r.clone());
        self.db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let revoked = tx
                    .query_row(
                        "SELECT 1 FROM revoked_refresh_families WHERE family = ?1",
                        [&r.family],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if revoked {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO refresh_tokens (token_hash, family, user_id, username, email, roles, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        &hash.0[..],
                        r.family,
                        r.identity.id,
                        r.identity.username,
                        r.identity.email,
                        roles_json(&r.identity.roles),
                        now_ms(),
                        millis(r.expires_at),
                    ],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await
    }

    async fn spend(&self, token_hash: &TokenHash, grace: Duration) -> Result<Spend, StoreError> {
        let hash = *token_hash;
        self.db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let row = tx
                    .query_row(
                        "SELECT family, user_id, username, email, roles, expires_at, spent_at, successor
                         FROM refresh_tokens WHERE token_hash = ?1",
                        [&hash.0[..]],
                        |row| {
                            let roles: String = row.get(4)?;
                            let record = RefreshRecord {
                                family: row.get(0)?,
                                identity: Identity {
                                    id: row.get(1)?,
                                    username: row.get(2)?,
                                    email: row.get(3)?,
                                    roles: roles_of(&roles),
                                },
                                expires_at: time_of(row.get(5)?),
                            };
                            let spent_at: Option<i64> = row.get(6)?;
                            let successor: Option<Vec<u8>> = row.get(7)?;
                            Ok((record, spent_at, successor))
                        },
                    )
                    .optional()?;
                let Some((record, spent_at, successor)) = row else {
                    return Ok(Spend::Unknown);
                };
                let now = now_ms();
                let spend = match spent_at {
                    None => {
                        tx.execute(
                            "UPDATE refresh_tokens SET spent_at = ?2 WHERE token_hash = ?1",
                            params![&hash.0[..], now],
                        )?;
                        Spend::Fresh(record)
                    }
                    Some(at) if at > now - ms(grace) => Spend::InGrace { record, successor },
                    Some(_) => Spend::Reused {
                        family: record.family,
                    },
                };
                tx.commit()?;
                Ok(spend)
            })
            .await
    }

    async fn unspend(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        let hash = *token_hash;
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE refresh_tokens SET spent_at = NULL, successor = NULL WHERE token_hash = ?1",
                    [&hash.0[..]],
                )
            })
            .await?;
        Ok(())
    }

    async fn set_successor(&self, token_hash: &TokenHash, sealed: &[u8]) -> Result<(), StoreError> {
        let (hash, sealed) = (*token_hash, sealed.to_vec());
        self.db
            .write(move |c| {
                c.execute(
                    "UPDATE refresh_tokens SET successor = ?2 WHERE token_hash = ?1 AND spent_at IS NOT NULL",
                    params![&hash.0[..], sealed],
                )
            })
            .await?;
        Ok(())
    }

    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        // The family is recorded even when it holds no token any more.
        let (_, deleted) = self
            .revoke_where("SELECT ?1", Some(family.to_string()))
            .await?;
        Ok(deleted)
    }

    async fn revoke_username(&self, username: &str) -> Result<u64, StoreError> {
        let (families, _) = self
            .revoke_where(
                "SELECT DISTINCT family FROM refresh_tokens WHERE username = ?1 ORDER BY family",
                Some(username.to_string()),
            )
            .await?;
        Ok(families.len() as u64)
    }

    async fn revoke_all(&self) -> Result<u64, StoreError> {
        let (families, _) = self
            .revoke_where("SELECT DISTINCT family FROM refresh_tokens", None)
            .await?;
        Ok(families.len() as u64)
    }

    fn family_revoked(&self, family: &str) -> bool {
        self.revoked.contains(family)
    }

    fn revocations_current(&self) -> bool {
        self.revoked.is_current()
    }
}

/// Loads the revoked families once the revocation poll first answers, and
/// again whenever another process revoked something; marks the set stale
/// while the poll fails.
async fn follow_revocations(store: Weak<SqliteRefreshStore>) {
    let Some(mut heard) = store.upgrade().map(|s| s.db.revocations.subscribe()) else {
        return;
    };
    while heard.changed().await.is_ok() {
        let live = heard.borrow_and_update().live;
        let Some(s) = store.upgrade() else { return };
        if !live {
            s.revoked.mark_lost();
            continue;
        }
        match s.reload().await {
            Ok(()) => s.revoked.mark_live(),
            Err(e) => {
                tracing::warn!(error = %e, "revoked refresh families could not be loaded; retrying");
                s.revoked.mark_lost();
                drop(s);
                tokio::time::sleep(watch::POLL_EVERY).await;
                heard.mark_changed();
            }
        }
    }
}
