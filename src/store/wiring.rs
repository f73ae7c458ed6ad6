//! Which backend serves which trait: the stores a config names, their
//! start-up work (PostgreSQL schema and the keys every instance shares),
//! and the same stores for the operator commands. The one place that
//! names concrete backends; everything else holds trait objects.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::file::FileCredentialStore;
use super::memory::{
    MemoryAccountTokens, MemoryFactorStore, MemoryRefreshStore, MemoryReplayStore,
    MemorySessionStore, MemoryThrottle,
};
use super::mysql::MysqlCredentialStore;
use super::postgres::{
    Pg, PgAccountTokens, PgAudit, PgDirectAudit, PgFactorStore, PgRefreshStore, PgReplayStore,
    PgSessionStore, PgThrottle,
};
use super::{
    AccountTokenStore, AuditSink, CredentialStore, FactorStore, LogOnlyAudit, RefreshStore,
    ReplayStore, SessionStore, StoreError, ThrottleStore,
};
use crate::config::{Config, CredentialsConfig, PostgresConfig, SessionStoreKind};

/// Name of the shared CSRF key in PostgreSQL.
const CSRF_SECRET: &str = "csrf";
/// Name of the shared token signing key in PostgreSQL (when `tokens.secret`
/// is not set).
const TOKEN_SECRET: &str = "tokens";
/// Pause between start-up attempts while PostgreSQL is down.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// The stores a config names, built without connecting to anything.
pub(crate) struct Stores {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) credentials: Arc<dyn CredentialStore>,
    pub(crate) throttle: Arc<dyn ThrottleStore>,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) refresh: Arc<dyn RefreshStore>,
    pub(crate) replay: Arc<dyn ReplayStore>,
    pub(crate) factors: Arc<dyn FactorStore>,
    /// Tokens of mailed links (password reset, address verification).
    pub(crate) account_tokens: Arc<dyn AccountTokenStore>,
    /// The config key naming the credential backend, for error messages.
    credentials_key: &'static str,
    /// The PostgreSQL backend, when `session.store = "postgres"`.
    postgres: Option<Arc<Pg>>,
    /// `postgres.migrate`: apply the schema at start.
    migrate: bool,
    /// `postgres.connect_timeout`: how long serving waits for start-up work.
    connect_timeout: Duration,
}

/// The shared stores the `sessions` commands act on, for a short-lived
/// process: revocations still reach every instance (NOTIFY), but nothing
/// listens, queues or sweeps on this side.
pub(crate) struct OperatorStores {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) refresh: Arc<dyn RefreshStore>,
    pub(crate) audit: Arc<dyn AuditSink>,
}

/// What `mfa reset` acts on: the credential backend (to find a user's id
/// from their name), the shared second factors and the audit trail.
pub(crate) struct FactorOperatorStores {
    pub(crate) credentials: Arc<dyn CredentialStore>,
    pub(crate) factors: Arc<dyn FactorStore>,
    pub(crate) audit: Arc<dyn AuditSink>,
}

/// Keys every instance on one database shares; random ones for a single
/// in-memory instance.
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
}

impl Stores {
    /// Must run inside a tokio runtime (stores start background tasks).
    /// `revocation_window`: how long a revoked token family must be
    /// remembered (the longest one of its access tokens can verify).
    pub(crate) fn build(config: &Config, revocation_window: Duration) -> anyhow::Result<Stores> {
        let (credentials, credentials_key) = credentials(config)?;
        let session = &config.session;
        let migrate = config.postgres.migrate;
        let connect_timeout = config.postgres.connect_timeout;
        Ok(match session.store {
            // Until the SQLite backend lands, "sqlite" runs in memory.
            SessionStoreKind::Memory | SessionStoreKind::Sqlite => Stores {
                sessions: Arc::new(MemorySessionStore::new(session.idle_timeout)),
                credentials,
                credentials_key,
                throttle: Arc::new(MemoryThrottle::default()),
                audit: Arc::new(LogOnlyAudit),
                refresh: Arc::new(MemoryRefreshStore::new(revocation_window)),
                replay: Arc::new(MemoryReplayStore::default()),
                factors: Arc::new(MemoryFactorStore::default()),
                account_tokens: Arc::new(MemoryAccountTokens::default()),
                postgres: None,
                migrate,
                connect_timeout,
            },
            SessionStoreKind::Postgres => {
                let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
                Stores {
                    sessions: PgSessionStore::start(
                        pg.clone(),
                        session.cache_ttl,
                        session.idle_timeout,
                    ),
                    credentials,
                    credentials_key,
                    throttle: Arc::new(PgThrottle::new(pg.clone())),
                    audit: Arc::new(PgAudit::start(pg.clone(), config.audit.retention)),
                    refresh: PgRefreshStore::start(
                        pg.clone(),
                        revocation_window,
                        session.cache_ttl,
                    ),
                    replay: Arc::new(PgReplayStore::new(pg.clone())),
                    factors: Arc::new(PgFactorStore::new(pg.clone())),
                    account_tokens: Arc::new(PgAccountTokens::new(pg.clone())),
                    postgres: Some(pg),
                    migrate,
                    connect_timeout,
                }
            }
        })
    }

    /// Runs the start-up work and hands the keys to `apply`. With
    /// PostgreSQL this goes on in the background: the schema (unless
    /// `postgres.migrate = false`), then the shared keys, retried every 2 s
    /// while the database is down (requests that need it get 503 meanwhile,
    /// and `/readyz` says so). In memory, `apply` gets random keys before
    /// this returns. `token_key`: whether a signing key is wanted (false
    /// when `tokens.secret` is set).
    pub(crate) fn start(
        &self,
        token_key: bool,
        apply: impl FnOnce(SharedKeys) + Send + 'static,
    ) -> Started {
        let (done_tx, done) = watch::channel(false);
        match &self.postgres {
            Some(pg) => {
                let init = init_postgres(pg.clone(), self.migrate, token_key);
                tokio::spawn(async move {
                    apply(init.await);
                    let _ = done_tx.send(true);
                });
            }
            None => {
                apply(SharedKeys {
                    csrf: random_key(),
                    tokens: token_key.then(random_key),
                });
                let _ = done_tx.send(true);
            }
        }
        Started {
            done,
            limit: self.connect_timeout,
        }
    }
}

impl Stores {
    /// Tries every backend (for `check`); the problems found, each starting
    /// with the config key to look at. Unlike `/readyz`, PostgreSQL only
    /// has to answer: the schema may not be applied yet.
    pub(crate) async fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.credentials.ping().await {
            problems.push(format!("{}: {e}", self.credentials_key));
        }
        if let Some(pg) = &self.postgres {
            if let Err(e) = pg.answers().await {
                problems.push(format!("postgres.url: {e}"));
            }
        }
        problems
    }
}

impl OperatorStores {
    /// Refused unless `session.store = "postgres"`: in memory, sessions live
    /// inside the running proxy and nothing outside it can reach them.
    /// `revocation_window` as for [`Stores::build`].
    pub(crate) fn build(
        config: &Config,
        revocation_window: Duration,
    ) -> anyhow::Result<OperatorStores> {
        if config.session.store != SessionStoreKind::Postgres {
            anyhow::bail!(
                "session.store is \"memory\": sessions live inside the running proxy and end with it; \
                 the sessions commands need session.store = \"postgres\""
            );
        }
        let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
        pg.assume_migrated();
        Ok(OperatorStores {
            sessions: PgSessionStore::start(
                pg.clone(),
                config.session.cache_ttl,
                config.session.idle_timeout,
            ),
            refresh: Arc::new(PgRefreshStore::new(pg.clone(), revocation_window)),
            audit: Arc::new(PgDirectAudit::new(pg)),
        })
    }
}

impl FactorOperatorStores {
    /// Refused unless `session.store = "postgres"`: in memory, second
    /// factors live inside the running proxy and nothing outside reaches them.
    pub(crate) fn build(config: &Config) -> anyhow::Result<FactorOperatorStores> {
        if config.session.store != SessionStoreKind::Postgres {
            anyhow::bail!(
                "session.store is not \"postgres\": second factors live inside the running proxy; \
                 the mfa commands need session.store = \"postgres\""
            );
        }
        let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
        pg.assume_migrated();
        Ok(FactorOperatorStores {
            credentials: credentials(config)?.0,
            factors: Arc::new(PgFactorStore::new(pg.clone())),
            audit: Arc::new(PgDirectAudit::new(pg)),
        })
    }
}

/// The credential backend a config names, with the key naming it (for
/// error messages).
fn credentials(config: &Config) -> anyhow::Result<(Arc<dyn CredentialStore>, &'static str)> {
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

/// Applies the PostgreSQL schema (`portcullis migrate`); returns how many
/// steps ran.
pub(crate) async fn migrate(config: &PostgresConfig) -> anyhow::Result<usize> {
    let pg = Pg::new(config).map_err(anyhow::Error::msg)?;
    pg.migrate()
        .await
        .map_err(|e| anyhow::anyhow!("postgres.url: {e}"))
}

impl Started {
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
                "PostgreSQL did not answer within postgres.connect_timeout; serving without it (503 until it does)"
            );
        }
    }
}

/// 32 bytes from the OS CSPRNG.
fn random_key() -> [u8; 32] {
    use rand::RngCore as _;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// Applies the schema (unless `migrate` is false) and loads the keys every
/// instance shares, retrying every 2 s while PostgreSQL is down.
async fn init_postgres(pg: Arc<Pg>, migrate: bool, token_key: bool) -> SharedKeys {
    let mut failing = false;
    loop {
        let attempt = async {
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
            Ok::<_, StoreError>(SharedKeys {
                csrf: pg.shared_secret(CSRF_SECRET).await?,
                tokens,
            })
        };
        match attempt.await {
            Ok(keys) => {
                if failing {
                    tracing::info!("PostgreSQL is reachable again");
                }
                return keys;
            }
            Err(e) => {
                tracing::error!(error = %e, "PostgreSQL is unavailable; retrying in 2s (sign-in answers 503 meanwhile)");
                failing = true;
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}
