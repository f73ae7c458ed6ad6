//! Start-up work of the serving stores: the schema, then the keys that must
//! outlive a process (in SQLite and PostgreSQL: the CSRF key, so a form
//! posts after a restart or to another instance; the token signing key when
//! `tokens.secret` is not set). Retried until it works, while serving waits
//! at most `postgres.connect_timeout` for it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Backend;
use crate::store::postgres::Pg;
use crate::store::sqlite::Sqlite;
use crate::store::{random_key, StoreError};

/// Name of the stored CSRF key.
const CSRF_SECRET: &str = "csrf";
/// Name of the stored token signing key (when `tokens.secret` is not set).
const TOKEN_SECRET: &str = "tokens";
/// Pause between start-up attempts while the database is unavailable.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Keys every process on one database shares; random ones in memory.
pub(crate) struct SharedKeys {
    /// The CSRF key, so a form from one instance posts to another.
    pub(crate) csrf: [u8; 32],
    /// The access-token signing key; `None` when it was not asked for
    /// (`tokens.secret` sets it).
    pub(crate) tokens: Option<[u8; 32]>,
}

/// Start-up work under way; [`Started::wait`] waits for it to finish.
pub(crate) struct Started {
    done: watch::Receiver<bool>,
    limit: Duration,
    backend: &'static str,
}

/// Starts the work for `backend` and hands the keys to `apply`.
pub(super) fn start(
    backend: Backend,
    migrate: bool,
    token_key: bool,
    apply: impl FnOnce(SharedKeys) + Send + 'static,
) -> Started {
    let (done_tx, done) = watch::channel(false);
    let name = match &backend {
        Backend::Memory => "memory",
        Backend::Sqlite(_) => "SQLite",
        Backend::Postgres(_) => "PostgreSQL",
    };
    match backend {
        Backend::Memory => {
            apply(SharedKeys {
                csrf: random_key(),
                tokens: token_key.then(random_key),
            });
            let _ = done_tx.send(true);
        }
        Backend::Sqlite(db) => {
            tokio::spawn(async move {
                apply(retrying("SQLite", || init_sqlite(&db, token_key)).await);
                let _ = done_tx.send(true);
            });
        }
        Backend::Postgres(pg) => {
            tokio::spawn(async move {
                apply(retrying("PostgreSQL", || init_postgres(&pg, migrate, token_key)).await);
                let _ = done_tx.send(true);
            });
        }
    }
    Started {
        done,
        limit: Duration::ZERO,
        backend: name,
    }
}

impl Started {
    pub(super) fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Waits until start-up work is done, at most `postgres.connect_timeout`:
    /// with the database up, sign-in works from the first request accepted.
    /// If it does not answer by then, serving starts without it (503s and
    /// `/readyz` 503) while the work goes on being retried.
    pub(crate) async fn wait(&self) {
        let mut done = self.done.clone();
        let limit = self.limit;
        let waited = tokio::time::timeout(limit, done.wait_for(|done| *done)).await;
        if waited.is_err() {
            tracing::error!(
                ?limit,
                backend = self.backend,
                "the session store's start-up work did not finish within postgres.connect_timeout; serving without it (503 until it does)"
            );
        }
    }
}

/// Runs `attempt` until it succeeds, every 2 s, logging the first failure
/// and the recovery.
async fn retrying<F, Fut>(backend: &'static str, mut attempt: F) -> SharedKeys
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<SharedKeys, StoreError>>,
{
    let mut failing = false;
    loop {
        match attempt().await {
            Ok(keys) => {
                if failing {
                    tracing::info!(backend, "session store is available again");
                }
                return keys;
            }
            Err(e) => {
                tracing::error!(error = %e, backend, "session store is unavailable; retrying in 2s (sign-in answers 503 meanwhile)");
                failing = true;
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

/// Creates the file if needed, applies the schema, loads or creates the keys.
async fn init_sqlite(db: &Arc<Sqlite>, token_key: bool) -> Result<SharedKeys, StoreError> {
    let ran = db.migrate().await?;
    if ran > 0 {
        tracing::info!(migrations_applied = ran, "SQLite schema updated");
    }
    Ok(SharedKeys {
        csrf: db.shared_secret(CSRF_SECRET).await?,
        tokens: match token_key {
            true => Some(db.shared_secret(TOKEN_SECRET).await?),
            false => None,
        },
    })
}

/// Applies the schema (unless `migrate` is false) and loads the keys every
/// instance shares.
async fn init_postgres(
    pg: &Arc<Pg>,
    migrate: bool,
    token_key: bool,
) -> Result<SharedKeys, StoreError> {
    if migrate {
        let ran = pg.migrate().await?;
        if ran > 0 {
            tracing::info!(migrations_applied = ran, "PostgreSQL schema updated");
        }
    } else {
        pg.assume_migrated();
    }
    let tokens = if token_key {
        Some(pg.shared_secret(TOKEN_SECRET).await?)
    } else {
        None
    };
    Ok(SharedKeys {
        csrf: pg.shared_secret(CSRF_SECRET).await?,
        tokens,
    })
}
