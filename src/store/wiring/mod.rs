//! Which backend serves which trait: the stores a config names, their
//! start-up work (schema and the keys that must outlive a process, see
//! `init`), and the same stores for the operator commands (`operator`).
//! The one place that names concrete backends; everything else holds
//! trait objects.

mod init;
mod operator;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use init::{SharedKeys, Started};
pub(crate) use operator::{migrate, FactorOperatorStores, OperatorStores};

use super::audit::QueuedAudit;
use super::file::FileCredentialStore;
use super::memory::{
    MemoryAccountTokens, MemoryFactorStore, MemoryRefreshStore, MemoryReplayStore,
    MemorySessionStore, MemoryThrottle,
};
use super::mysql::MysqlCredentialStore;
use super::postgres::{
    Pg, PgAccountTokens, PgFactorStore, PgRefreshStore, PgReplayStore, PgSessionStore, PgThrottle,
};
use super::sqlite::{
    Sqlite, SqliteAccountTokens, SqliteFactorStore, SqliteRefreshStore, SqliteReplayStore,
    SqliteSessionStore, SqliteThrottle,
};
use super::{
    AccountTokenStore, AuditSink, CredentialStore, FactorStore, LogOnlyAudit, RefreshStore,
    ReplayStore, SessionStore, ThrottleStore,
};
use crate::config::{Config, CredentialsConfig, SessionStoreKind};

/// The database behind the session-side stores.
#[derive(Clone)]
enum Backend {
    Memory,
    Sqlite(Arc<Sqlite>),
    Postgres(Arc<Pg>),
}

/// The stores a config names, built without connecting to anything.
pub(crate) struct Stores {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) credentials: Arc<dyn CredentialStore>,
    pub(crate) throttle: Arc<dyn ThrottleStore>,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) refresh: Arc<dyn RefreshStore>,
    pub(crate) replay: Arc<dyn ReplayStore>,
    /// Tokens of mailed links (password reset, address verification).
    pub(crate) account_tokens: Arc<dyn AccountTokenStore>,
    pub(crate) factors: Arc<dyn FactorStore>,
    /// The config key naming the credential backend, for error messages.
    credentials_key: &'static str,
    backend: Backend,
    /// `postgres.migrate`: apply the PostgreSQL schema at start.
    migrate: bool,
    /// `postgres.connect_timeout`: how long serving waits for start-up work.
    connect_timeout: Duration,
}

/// The stores `session.store` picks (everything but the credentials).
struct SessionSide {
    backend: Backend,
    sessions: Arc<dyn SessionStore>,
    throttle: Arc<dyn ThrottleStore>,
    audit: Arc<dyn AuditSink>,
    refresh: Arc<dyn RefreshStore>,
    replay: Arc<dyn ReplayStore>,
    account_tokens: Arc<dyn AccountTokenStore>,
    factors: Arc<dyn FactorStore>,
}

impl SessionSide {
    fn build(config: &Config, revocation_window: Duration) -> anyhow::Result<SessionSide> {
        let session = &config.session;
        let retention = config.audit.retention;
        Ok(match session.store {
            SessionStoreKind::Memory => SessionSide {
                backend: Backend::Memory,
                sessions: Arc::new(MemorySessionStore::new(session.idle_timeout)),
                throttle: Arc::new(MemoryThrottle::default()),
                audit: Arc::new(LogOnlyAudit),
                refresh: Arc::new(MemoryRefreshStore::new(revocation_window)),
                replay: Arc::new(MemoryReplayStore::default()),
                account_tokens: Arc::new(MemoryAccountTokens::default()),
                factors: Arc::new(MemoryFactorStore::default()),
            },
            SessionStoreKind::Sqlite => {
                let db = Sqlite::new(&config.sqlite).map_err(anyhow::Error::msg)?;
                db.follow_revocations();
                SessionSide {
                    backend: Backend::Sqlite(db.clone()),
                    sessions: SqliteSessionStore::start(
                        db.clone(),
                        session.cache_ttl,
                        session.idle_timeout,
                    ),
                    throttle: Arc::new(SqliteThrottle::new(db.clone())),
                    audit: Arc::new(QueuedAudit::start(db.clone(), retention)),
                    refresh: SqliteRefreshStore::start(
                        db.clone(),
                        revocation_window,
                        session.cache_ttl,
                    ),
                    replay: Arc::new(SqliteReplayStore::new(db.clone())),
                    account_tokens: Arc::new(SqliteAccountTokens::new(db.clone())),
                    factors: Arc::new(SqliteFactorStore::new(db)),
                }
            }
            SessionStoreKind::Postgres => {
                let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
                SessionSide {
                    backend: Backend::Postgres(pg.clone()),
                    sessions: PgSessionStore::start(
                        pg.clone(),
                        session.cache_ttl,
                        session.idle_timeout,
                    ),
                    throttle: Arc::new(PgThrottle::new(pg.clone())),
                    audit: Arc::new(QueuedAudit::start(pg.clone(), retention)),
                    refresh: PgRefreshStore::start(
                        pg.clone(),
                        revocation_window,
                        session.cache_ttl,
                    ),
                    replay: Arc::new(PgReplayStore::new(pg.clone())),
                    account_tokens: Arc::new(PgAccountTokens::new(pg.clone())),
                    factors: Arc::new(PgFactorStore::new(pg)),
                }
            }
        })
    }
}

impl Stores {
    /// Must run inside a tokio runtime (stores start background tasks).
    /// `revocation_window`: how long a revoked token family must be
    /// remembered (the longest one of its access tokens can verify).
    pub(crate) fn build(config: &Config, revocation_window: Duration) -> anyhow::Result<Stores> {
        let (credentials, credentials_key) = credentials(config)?;
        let side = SessionSide::build(config, revocation_window)?;
        Ok(Stores {
            sessions: side.sessions,
            credentials,
            throttle: side.throttle,
            audit: side.audit,
            refresh: side.refresh,
            replay: side.replay,
            account_tokens: side.account_tokens,
            factors: side.factors,
            credentials_key,
            backend: side.backend,
            migrate: config.postgres.migrate,
            connect_timeout: config.postgres.connect_timeout,
        })
    }

    /// Runs the start-up work and hands the keys to `apply`. With a
    /// database this goes on in the background: the schema (unless
    /// `postgres.migrate = false`), then the keys, retried every 2 s while
    /// the database is down or the file cannot be opened (requests that
    /// need it get 503 meanwhile, and `/readyz` says so). In memory, `apply`
    /// gets random keys before this returns. `token_key`: whether a signing
    /// key is wanted (false when `tokens.secret` is set).
    pub(crate) fn start(
        &self,
        token_key: bool,
        apply: impl FnOnce(SharedKeys) + Send + 'static,
    ) -> Started {
        init::start(self.backend.clone(), self.migrate, token_key, apply)
            .limit(self.connect_timeout)
    }

    /// Tries every backend (for `check`); the problems found, each starting
    /// with the config key to look at. Unlike `/readyz`, the database only
    /// has to answer: the schema may not be applied yet, and the SQLite
    /// file is not created.
    pub(crate) async fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.credentials.ping().await {
            problems.push(format!("{}: {e}", self.credentials_key));
        }
        match &self.backend {
            Backend::Memory => {}
            Backend::Sqlite(db) => {
                if let Err(e) = db.usable().await {
                    problems.push(format!("sqlite.path: {e}"));
                }
            }
            Backend::Postgres(pg) => {
                if let Err(e) = pg.answers().await {
                    problems.push(format!("postgres.url: {e}"));
                }
            }
        }
        problems
    }
}

/// The credential backend a config names, with the key naming it (for
/// error messages).
pub(super) fn credentials(
    config: &Config,
) -> anyhow::Result<(Arc<dyn CredentialStore>, &'static str)> {
    Ok(match &config.credentials {
        CredentialsConfig::File { path } => (
            Arc::new(FileCredentialStore::load(path)?),
            "credentials.file.path",
        ),
        CredentialsConfig::Mysql(mysql) => (
            Arc::new(MysqlCredentialStore::new(mysql).map_err(anyhow::Error::msg)?),
            "credentials.mysql.url",
        ),
    })
}
