//! The stores of the operator commands (`sessions list / revoke`,
//! `mfa reset`, `migrate`): short-lived processes that act on the same database as
//! `serve`. Revocations still reach the running server (PostgreSQL's
//! NOTIFY, SQLite's `revocations` row), but nothing listens, queues or
//! sweeps on this side.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, SessionStoreKind};
use crate::store::audit::DirectAudit;
use crate::store::postgres::{Pg, PgFactorStore, PgRefreshStore, PgSessionStore};
use crate::store::sqlite::{Sqlite, SqliteFactorStore, SqliteRefreshStore, SqliteSessionStore};
use crate::store::{AuditSink, CredentialStore, FactorStore, RefreshStore, SessionStore};

pub(crate) struct OperatorStores {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) refresh: Arc<dyn RefreshStore>,
    pub(crate) audit: Arc<dyn AuditSink>,
    /// The config key naming the database, for error messages.
    pub(crate) key: &'static str,
}

impl OperatorStores {
    /// Refused for `session.store = "memory"`: sessions live inside the
    /// running proxy and nothing outside it can reach them; and for a
    /// SQLite file that does not exist yet (a wrong config, most likely).
    /// `revocation_window` as for `Stores::build`.
    pub(crate) fn build(
        config: &Config,
        revocation_window: Duration,
    ) -> anyhow::Result<OperatorStores> {
        let session = &config.session;
        match session.store {
            SessionStoreKind::Memory => anyhow::bail!(
                "session.store is \"memory\": sessions live inside the running proxy and end with it; \
                 the sessions commands need session.store = \"sqlite\" or \"postgres\""
            ),
            SessionStoreKind::Sqlite => {
                let db = existing_sqlite(config)?;
                Ok(OperatorStores {
                    sessions: SqliteSessionStore::new(db.clone(), session.cache_ttl),
                    refresh: Arc::new(SqliteRefreshStore::new(db.clone(), revocation_window)),
                    audit: Arc::new(DirectAudit::new(db)),
                    key: "sqlite.path",
                })
            }
            SessionStoreKind::Postgres => {
                let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
                pg.assume_migrated();
                Ok(OperatorStores {
                    sessions: PgSessionStore::start(
                        pg.clone(),
                        session.cache_ttl,
                        session.idle_timeout,
                    ),
                    refresh: Arc::new(PgRefreshStore::new(pg.clone(), revocation_window)),
                    audit: Arc::new(DirectAudit::new(pg)),
                    key: "postgres.url",
                })
            }
        }
    }
}

/// What `mfa reset` acts on: the credential backend (to find a user's id
/// from their name), the second factors and the audit trail.
pub(crate) struct FactorOperatorStores {
    pub(crate) credentials: Arc<dyn CredentialStore>,
    pub(crate) factors: Arc<dyn FactorStore>,
    pub(crate) audit: Arc<dyn AuditSink>,
    /// The config key naming the database, for error messages.
    pub(crate) key: &'static str,
}

impl FactorOperatorStores {
    /// Refused for `session.store = "memory"` (second factors live inside
    /// the running proxy) and for a SQLite file that does not exist yet.
    pub(crate) fn build(config: &Config) -> anyhow::Result<FactorOperatorStores> {
        let credentials = super::credentials(config)?.0;
        match config.session.store {
            SessionStoreKind::Memory => anyhow::bail!(
                "session.store is \"memory\": second factors live inside the running proxy and end with it; \
                 the mfa commands need session.store = \"sqlite\" or \"postgres\""
            ),
            SessionStoreKind::Sqlite => {
                let db = existing_sqlite(config)?;
                Ok(FactorOperatorStores {
                    credentials,
                    factors: Arc::new(SqliteFactorStore::new(db.clone())),
                    audit: Arc::new(DirectAudit::new(db)),
                    key: "sqlite.path",
                })
            }
            SessionStoreKind::Postgres => {
                let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
                pg.assume_migrated();
                Ok(FactorOperatorStores {
                    credentials,
                    factors: Arc::new(PgFactorStore::new(pg.clone())),
                    audit: Arc::new(DirectAudit::new(pg)),
                    key: "postgres.url",
                })
            }
        }
    }
}

/// The SQLite file `serve` uses, which must exist already (a missing one
/// is most likely a wrong `--config`).
fn existing_sqlite(config: &Config) -> anyhow::Result<Arc<Sqlite>> {
    let path = &config.sqlite.path;
    if !path.exists() {
        anyhow::bail!(
            "sqlite.path: {} does not exist; point --config at the file `serve` uses",
            path.display()
        );
    }
    let db = Sqlite::new(&config.sqlite).map_err(anyhow::Error::msg)?;
    db.assume_migrated();
    Ok(db)
}

/// Applies the schema of the configured store (`portcullis migrate`):
/// SQLite's for `session.store = "sqlite"` (creating the file), PostgreSQL's
/// otherwise. Returns how many steps ran.
pub(crate) async fn migrate(config: &Config) -> anyhow::Result<usize> {
    match config.session.store {
        SessionStoreKind::Sqlite => {
            let db = Sqlite::new(&config.sqlite).map_err(anyhow::Error::msg)?;
            db.migrate()
                .await
                .map_err(|e| anyhow::anyhow!("sqlite.path: {e}"))
        }
        SessionStoreKind::Postgres | SessionStoreKind::Memory => {
            let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
            pg.migrate()
                .await
                .map_err(|e| anyhow::anyhow!("postgres.url: {e}"))
        }
    }
}
