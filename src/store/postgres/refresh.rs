//! Refresh tokens in PostgreSQL, so any instance can rotate a token minted
//! by another and a replay revokes the family everywhere. Rotation and
//! revocation of one family are serialised with an advisory lock, and a
//! revoked family is remembered, so a rotation racing a revocation loses.
//!
//! Revoked families also reach the bearer hot path of every instance
//! without a query per request: each keeps them in memory
//! ([`RevokedFamilies`]), loads the recent ones when its listener connects,
//! and hears new ones by `NOTIFY portcullis_refresh_families` (the family id,
//! or `*` for "reload"), sent inside the revoking transaction so it travels
//! exactly when the revocation commits. The connection is kept by
//! `listener`: a heartbeat proves it alive, and every (re)connect reloads
//! the set, since notices sent while it was away are lost.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::Client;

use super::listener::{listen, Subscriber};
use super::{db_error, pool_error, unavailable, Pg, DB_TIMEOUT};
use crate::store::revoked::RevokedFamilies;
use crate::store::REUSE_GRACE;
use crate::store::{Identity, RefreshRecord, RefreshStore, Spend, StoreError, TokenHash};

/// Locks one family for the current transaction.
const LOCK_FAMILY: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))";
/// The NOTIFY channel family revocations travel on.
const CHANNEL: &str = "portcullis_refresh_families";
/// Payload asking every instance to reload the revoked families.
const RELOAD: &str = "*";
/// Beyond this many families in one revocation, one reload notice is sent
/// instead of one notice per family.
const MAX_NOTICES: usize = 100;

pub(crate) struct PgRefreshStore {
    pg: Arc<Pg>,
    revoked: RevokedFamilies,
}

impl PgRefreshStore {
    /// A store that writes and announces revocations but does not hear
    /// them (the CLI): it never answers bearer requests.
    pub(crate) fn new(pg: Arc<Pg>, window: Duration) -> Self {
        Self {
            pg,
            revoked: RevokedFamilies::shared(window, Duration::ZERO),
        }
    }

    /// The store of a serving instance: a listener keeps the revoked
    /// families current (it stops when the store is dropped). `window`: how
    /// long a revocation matters (the longest an access token can verify);
    /// `staleness`: how long the set is trusted while the listener is down.
    pub(crate) fn start(pg: Arc<Pg>, window: Duration, staleness: Duration) -> Arc<Self> {
        let store = Arc::new(Self {
            pg,
            revoked: RevokedFamilies::shared(window, staleness),
        });
        tokio::spawn(listen(Arc::downgrade(&store)));
        store
    }

    /// Merges the families revoked within the window into the set (never
    /// removes any: revocations are never undone).
    async fn reload(&self, client: &tokio_postgres::Client) -> Result<(), StoreError> {
        let rows = tokio::time::timeout(
            DB_TIMEOUT,
            client.query(
                "SELECT family, greatest(extract(epoch FROM now() - revoked_at), 0)::float8
                 FROM revoked_refresh_families
                 WHERE revoked_at > now() - make_interval(secs => $1)",
                &[&self.revoked.window().as_secs_f64()],
            ),
        )
        .await
        .map_err(|_| unavailable("loading revoked refresh families timed out"))?
        .map_err(db_error)?;
        for row in &rows {
            let family: &str = row.get(0);
            let age: f64 = row.get(1);
            self.revoked
                .insert(family, Duration::from_secs_f64(age.max(0.0)));
        }
        self.revoked.prune();
        Ok(())
    }

    /// Revokes `families` (sorted, no duplicates) in one transaction: each
    /// is locked against a racing rotation, remembered, emptied and
    /// announced. Returns how many tokens were deleted.
    async fn revoke_families(&self, families: &[String]) -> Result<u64, StoreError> {
        if families.is_empty() {
            return Ok(0);
        }
        let mut client = self.pg.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        for family in families {
            tx.execute(LOCK_FAMILY, &[family]).await.map_err(db_error)?;
        }
        tx.execute(
            "INSERT INTO revoked_refresh_families (family) SELECT unnest($1::text[])
             ON CONFLICT DO NOTHING",
            &[&families],
        )
        .await
        .map_err(db_error)?;
        let deleted = tx
            .execute(
                "DELETE FROM refresh_tokens WHERE family = ANY($1)",
                &[&families],
            )
            .await
            .map_err(db_error)?;
        notify(&tx, families).await?;
        tx.commit().await.map_err(db_error)?;
        for family in families {
            self.revoked.insert(family, Duration::ZERO);
        }
        Ok(deleted)
    }
}

/// Announces revoked families; delivered when the transaction commits.
async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    families: &[String],
) -> Result<(), StoreError> {
    if families.len() > MAX_NOTICES {
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &RELOAD])
            .await
            .map_err(db_error)?;
        return Ok(());
    }
    tx.execute(
        "SELECT pg_notify($1, f) FROM unnest($2::text[]) AS f",
        &[&CHANNEL, &families],
    )
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl RefreshStore for PgRefreshStore {
    async fn insert(&self, token_hash: &TokenHash, r: &RefreshRecord) -> Result<bool, StoreError> {
        let mut client = self.pg.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute(LOCK_FAMILY, &[&r.family])
            .await
            .map_err(db_error)?;
        // Inserted before the check: `revoke_all` locks the table rather
        // than each family, so the check must come after any wait for it.
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
        let revoked = tx
            .query_opt(
                "SELECT 1 FROM revoked_refresh_families WHERE family = $1",
                &[&r.family],
            )
            .await
            .map_err(db_error)?
            .is_some();
        if revoked {
            // Dropping the transaction rolls the insert back.
            return Ok(false);
        }
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
                     before.spent_at >= now() - make_interval(secs => $2),
                     t.successor",
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
            Spend::InGrace {
                record,
                successor: row.get(8),
            }
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
                "UPDATE refresh_tokens SET spent_at = NULL, successor = NULL WHERE token_hash = $1",
                &[&&token_hash.0[..]],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn set_successor(&self, token_hash: &TokenHash, sealed: &[u8]) -> Result<(), StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "UPDATE refresh_tokens SET successor = $2 WHERE token_hash = $1 AND spent_at IS NOT NULL",
                &[&&token_hash.0[..], &sealed],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        self.revoke_families(&[family.to_string()]).await
    }

    async fn revoke_username(&self, username: &str) -> Result<u64, StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        let families: Vec<String> = client
            .query(
                "SELECT DISTINCT family FROM refresh_tokens WHERE username = $1 ORDER BY family",
                &[&username],
            )
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        drop(client);
        self.revoke_families(&families).await?;
        Ok(families.len() as u64)
    }

    async fn revoke_all(&self) -> Result<u64, StoreError> {
        let mut client = self.pg.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        // No token can join any family until this commits (see `insert`).
        tx.batch_execute("LOCK TABLE refresh_tokens IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(db_error)?;
        let families: Vec<String> = tx
            .query("SELECT DISTINCT family FROM refresh_tokens", &[])
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        tx.execute(
            "INSERT INTO revoked_refresh_families (family) SELECT unnest($1::text[])
             ON CONFLICT DO NOTHING",
            &[&families],
        )
        .await
        .map_err(db_error)?;
        tx.execute("DELETE FROM refresh_tokens", &[])
            .await
            .map_err(db_error)?;
        notify(&tx, &families).await?;
        tx.commit().await.map_err(db_error)?;
        for family in &families {
            self.revoked.insert(family, Duration::ZERO);
        }
        Ok(families.len() as u64)
    }

    fn family_revoked(&self, family: &str) -> bool {
        self.revoked.contains(family)
    }

    fn revocations_current(&self) -> bool {
        self.revoked.is_current()
    }
}

/// Family revocations from every instance reach this one's set; the set is
/// reloaded on every (re)connect and heartbeat, the heartbeat also wiping
/// successor pairs past their grace.
#[async_trait]
impl Subscriber for PgRefreshStore {
    const CHANNEL: &'static str = CHANNEL;
    const NAME: &'static str = "refresh family revocation listener";
    const WHILE_DOWN: &'static str = "bearer requests answer 503 once the revoked set is stale";

    fn pg(&self) -> &Pg {
        &self.pg
    }

    async fn connected(&self, client: &Client) -> Result<(), StoreError> {
        self.reload(client).await?;
        self.revoked.mark_live();
        Ok(())
    }

    async fn notice(&self, client: &Client, payload: &str) -> Result<(), StoreError> {
        if payload == RELOAD {
            self.reload(client).await
        } else {
            self.revoked.insert(payload, Duration::ZERO);
            Ok(())
        }
    }

    async fn heartbeat(&self, client: &Client) -> Result<(), StoreError> {
        // The reload doubles as the liveness probe.
        self.reload(client).await?;
        let wiped = tokio::time::timeout(
            DB_TIMEOUT,
            client.execute(
                "UPDATE refresh_tokens SET successor = NULL
                 WHERE successor IS NOT NULL AND spent_at < now() - make_interval(secs => $1)",
                &[&REUSE_GRACE.as_secs_f64()],
            ),
        )
        .await;
        if !matches!(wiped, Ok(Ok(_))) {
            tracing::debug!("successor pairs past their grace not wiped this round");
        }
        Ok(())
    }

    fn lost(&self) {
        self.revoked.mark_lost();
    }
}
