//! PostgreSQL: sessions, lockout and rate state, second factors, the audit
//! log and shared keys, so several portcullis instances behave as one.
//!
//! The proxied-request hot path makes no database round trip: sessions are
//! served from an in-process cache bounded by `session.cache_ttl`, activity
//! is written behind in batches, and revocations are pushed to every
//! instance with LISTEN/NOTIFY (see `sessions`, `refresh` and `listener`).

mod account_tokens;
mod audit;
mod factors;
mod listener;
pub(crate) mod migrations;
mod refresh;
mod replay;
mod sessions;
mod sweep;
mod throttle;

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub(crate) use account_tokens::PgAccountTokens;
pub(crate) use factors::PgFactorStore;
pub(crate) use refresh::PgRefreshStore;
pub(crate) use replay::PgReplayStore;
pub(crate) use sessions::PgSessionStore;
pub(crate) use throttle::PgThrottle;

use super::StoreError;
use crate::config::PostgresConfig;

/// How long any database step may take before the request gets a 503.
pub(crate) const DB_TIMEOUT: Duration = Duration::from_secs(3);

/// A pool plus whether the schema is known to be in place.
pub(crate) struct Pg {
    pub(crate) pool: Pool,
    pub(crate) config: tokio_postgres::Config,
    migrated: AtomicBool,
}

impl Pg {
    /// Builds the pool without connecting: `serve` starts even while
    /// PostgreSQL is down, and connections are made (and remade) on demand.
    pub(crate) fn new(config: &PostgresConfig) -> Result<Arc<Pg>, String> {
        let mut pg_config = tokio_postgres::Config::from_str(&config.url)
            .map_err(|e| format!("postgres.url: not a PostgreSQL URL: {e}"))?;
        pg_config.connect_timeout(DB_TIMEOUT);
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("portcullis");
        }
        let manager = Manager::from_config(
            pg_config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(DB_TIMEOUT))
            .create_timeout(Some(DB_TIMEOUT))
            .recycle_timeout(Some(DB_TIMEOUT))
            .build()
            .map_err(|e| format!("postgres: {e}"))?;
        Ok(Arc::new(Pg {
            pool,
            config: pg_config,
            migrated: AtomicBool::new(false),
        }))
    }

    /// Runs one statement under [`DB_TIMEOUT`] and returns its rows; `what`
    /// names the table for the timeout's message.
    pub(crate) async fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        tokio::time::timeout(DB_TIMEOUT, client.query(sql, params))
            .await
            .map_err(|_| unavailable(format!("{what} query timed out")))?
            .map_err(db_error)
    }

    /// Applies the schema; marks the store ready on success.
    pub(crate) async fn migrate(&self) -> Result<usize, StoreError> {
        let ran = migrations::migrate(&self.pool).await?;
        self.migrated.store(true, Ordering::Release);
        Ok(ran)
    }

    /// Trusts an externally managed schema (`postgres.migrate = false`).
    pub(crate) fn assume_migrated(&self) {
        self.migrated.store(true, Ordering::Release);
    }

    /// True once the schema is known to be in place.
    pub(crate) fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        if !self.migrated.load(Ordering::Acquire) {
            return Err(unavailable("schema not applied yet"));
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        tokio::time::timeout(DB_TIMEOUT, client.simple_query("SELECT 1"))
            .await
            .map_err(|_| unavailable("timed out"))?
            .map_err(db_error)?;
        Ok(())
    }

    /// Whether the database takes a connection and answers a query, schema
    /// or not (for `check`); the error says which step failed.
    pub(crate) async fn answers(&self) -> Result<(), String> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A 32-byte key shared by every instance on this database, created on
    /// first use (the CSRF key, so a form from one instance posts to another).
    pub(crate) async fn shared_secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let fresh: [u8; 32] = {
            use rand::RngCore as _;
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            k
        };
        client
            .execute(
                "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &&fresh[..]],
            )
            .await
            .map_err(db_error)?;
        let row = client
            .query_one("SELECT value FROM shared_secrets WHERE name = $1", &[&name])
            .await
            .map_err(db_error)?;
        let value: Vec<u8> = row.get(0);
        value
            .try_into()
            .map_err(|_| unavailable("shared secret has the wrong length"))
    }
}

pub(crate) fn unavailable(message: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        backend: "postgres",
        message: message.to_string(),
    }
}

pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    unavailable(e)
}

pub(crate) fn db_error(e: tokio_postgres::Error) -> StoreError {
    // The error's source carries the server's message (missing table,
    // connection reset); `Display` alone says only "db error".
    match e.as_db_error() {
        Some(db) => unavailable(format!("{}: {}", db.code().code(), db.message())),
        None => unavailable(e),
    }
}
