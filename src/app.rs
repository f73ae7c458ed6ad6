//! The application state shared by every connection: validated config, page
//! templates, authentication with its stores, the upstream client. Built
//! once at start.

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::SystemTime;

use crate::admin::metrics::Metrics;
use crate::auth::cookies::CookieSettings;
use crate::auth::csrf::Csrf;
use crate::auth::password::PasswordVerifier;
use crate::auth::session::Sessions;
use crate::auth::sso::Sso;
use crate::auth::tokens::{revocation_window, Tokens};
use crate::auth::Auth;
use crate::config::{Config, CredentialsConfig, SessionStoreKind};
use crate::pages::Pages;
use crate::policy::routes::RouteTable;
use crate::proxy::forward::Upstream;
use crate::proxy::headers::{python_name, FORWARDING_HEADERS};
use crate::store::file::FileCredentialStore;
use crate::store::memory::{
    MemoryRefreshStore, MemoryReplayStore, MemorySessionStore, MemoryThrottle,
};
use crate::store::mysql::MysqlCredentialStore;
use crate::store::postgres::{
    Pg, PgAudit, PgRefreshStore, PgReplayStore, PgSessionStore, PgThrottle,
};
use crate::store::{
    AuditSink, CredentialStore, LogOnlyAudit, RefreshStore, ReplayStore, SessionStore,
    ThrottleStore,
};

/// Assertion header name stripped even before `[upstream.assertion]` is
/// configured, so a client can never pre-place one.
const DEFAULT_ASSERTION_HEADER: &str = "X-Auth-Assertion";
/// Name of the shared CSRF key in PostgreSQL.
const CSRF_SECRET: &str = "csrf";
/// Name of the shared token signing key in PostgreSQL (when `tokens.secret`
/// is not set).
const TOKEN_SECRET: &str = "tokens";

pub struct App {
    pub config: Config,
    pub pages: Pages,
    pub auth: Auth,
    pub upstream: Upstream,
    /// Python spellings of every header a client may not pass to the app.
    pub spoofable: Vec<String>,
    /// The PostgreSQL backend, when `session.store = "postgres"`.
    pub postgres: Option<Arc<Pg>>,
    pub metrics: Arc<Metrics>,
    /// Route rules; replaced whole by a reload (SIGHUP).
    pub routes: ArcSwap<RouteTable>,
    /// The TLS certificate and key; replaced by a reload.
    pub tls: Option<ArcSwap<rustls::ServerConfig>>,
    /// True once start-up work (PostgreSQL schema and shared keys) is done.
    started: tokio::sync::watch::Receiver<bool>,
}

/// The stores a config names, built without connecting to anything.
pub struct Stores {
    pub sessions: Arc<dyn SessionStore>,
    pub credentials: Arc<dyn CredentialStore>,
    pub throttle: Arc<dyn ThrottleStore>,
    pub audit: Arc<dyn AuditSink>,
    pub refresh: Arc<dyn RefreshStore>,
    pub replay: Arc<dyn ReplayStore>,
    pub postgres: Option<Arc<Pg>>,
}

impl Stores {
    /// Must run inside a tokio runtime (stores start background tasks).
    pub fn build(config: &Config) -> anyhow::Result<Stores> {
        let credentials: Arc<dyn CredentialStore> = match &config.credentials {
            CredentialsConfig::File { path } => Arc::new(FileCredentialStore::load(path)?),
            CredentialsConfig::Mysql(mysql) => {
                Arc::new(MysqlCredentialStore::new(mysql).map_err(anyhow::Error::msg)?)
            }
        };
        let session = &config.session;
        Ok(match session.store {
            SessionStoreKind::Memory => {
                let store = Arc::new(MemorySessionStore::new());
                spawn_sweeper(&store, session.idle_timeout);
                Stores {
                    sessions: store,
                    credentials,
                    throttle: Arc::new(MemoryThrottle::default()),
                    audit: Arc::new(LogOnlyAudit),
                    refresh: Arc::new(MemoryRefreshStore::new(revocation_window(&config.tokens))),
                    replay: Arc::new(MemoryReplayStore::default()),
                    postgres: None,
                }
            }
            SessionStoreKind::Postgres => {
                let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
                Stores {
                    sessions: PgSessionStore::start(
                        pg.clone(),
                        session.cache_ttl,
                        session.idle_timeout,
                    ),
                    credentials,
                    throttle: Arc::new(PgThrottle::new(pg.clone())),
                    audit: Arc::new(PgAudit::start(pg.clone(), config.audit.retention)),
                    refresh: PgRefreshStore::start(
                        pg.clone(),
                        revocation_window(&config.tokens),
                        session.cache_ttl,
                    ),
                    replay: Arc::new(PgReplayStore::new(pg.clone())),
                    postgres: Some(pg),
                }
            }
        })
    }
}

impl App {
    /// Builds the state from a validated config, without waiting for any
    /// backend. Must run inside a tokio runtime. With PostgreSQL, a
    /// background task applies the schema and loads the CSRF key every
    /// instance shares, retrying while the database is down (requests that
    /// need it get 503 meanwhile, and `/readyz` says so).
    pub fn build(config: Config) -> anyhow::Result<Arc<App>> {
        let stores = Stores::build(&config)?;
        let tokens = Arc::new(Tokens::new(config.tokens.clone(), stores.refresh.clone()));
        let (started_tx, started) = tokio::sync::watch::channel(false);
        let csrf = match &stores.postgres {
            Some(pg) => {
                let csrf = Arc::new(Csrf::pending());
                let init = init_postgres(
                    pg.clone(),
                    config.postgres.migrate,
                    csrf.clone(),
                    tokens.clone(),
                );
                tokio::spawn(async move {
                    init.await;
                    let _ = started_tx.send(true);
                });
                csrf
            }
            None => {
                if !tokens.has_key() {
                    tokens.set_key(&rand::random::<[u8; 32]>());
                }
                let _ = started_tx.send(true);
                Arc::new(Csrf::random())
            }
        };
        Self::assemble(config, stores, csrf, tokens, started)
    }

    /// Waits until start-up work is done, at most `postgres.connect_timeout`:
    /// with the database up, sign-in works from the first request accepted.
    /// If it does not answer by then, serving starts without it (503s and
    /// `/readyz` 503) while the work goes on being retried.
    pub async fn wait_started(&self) {
        let mut started = self.started.clone();
        let limit = self.config.postgres.connect_timeout;
        let waited = tokio::time::timeout(limit, started.wait_for(|done| *done)).await;
        if waited.is_err() {
            tracing::error!(
                ?limit,
                "PostgreSQL did not answer within postgres.connect_timeout; serving without it (503 until it does)"
            );
        }
    }

    fn assemble(
        config: Config,
        stores: Stores,
        csrf: Arc<Csrf>,
        tokens: Arc<Tokens>,
        started: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<App>> {
        let pages = Pages::new(&config.login.title, config.login.template.as_deref())?;
        let metrics = Arc::new(Metrics::new());
        let cookies = CookieSettings::from_config(&config);
        if !cookies.secure {
            tracing::warn!(
                cookie = %cookies.session_name,
                "server.public_url is http://: session cookies are sent without Secure and without the __Host- prefix; use https in production"
            );
        }
        let auth = Auth {
            sessions: Sessions::new(stores.sessions, config.session.clone()),
            credentials: stores.credentials,
            throttle: stores.throttle,
            audit_sink: stores.audit,
            verifier: PasswordVerifier::new(config.login.hash_workers),
            csrf,
            cookies,
            login: config.login.clone(),
            recheck_interval: config.session.recheck_interval,
            tokens,
            bearer_rechecks: Auth::bearer_recheck_cache(config.session.recheck_interval),
            sso: Sso::new(config.sso.clone(), stores.replay),
            metrics: metrics.clone(),
        };
        let headers = &config.upstream.headers;
        let mut spoofable: Vec<String> = [
            headers.user.as_str(),
            headers.email.as_str(),
            headers.roles.as_str(),
        ]
        .into_iter()
        .chain([DEFAULT_ASSERTION_HEADER])
        .chain(
            config
                .upstream
                .assertion
                .as_ref()
                .map(|a| a.header.as_str()),
        )
        .chain(FORWARDING_HEADERS.iter().copied())
        .map(python_name)
        .collect();
        spoofable.sort();
        spoofable.dedup();
        Ok(Arc::new(App {
            upstream: Upstream::new(&config.upstream),
            pages,
            auth,
            spoofable,
            postgres: stores.postgres,
            metrics,
            routes: ArcSwap::new(config.routes.clone()),
            tls: config
                .server
                .tls
                .as_ref()
                .map(|t| ArcSwap::new(t.server_config.clone())),
            started,
            config,
        }))
    }
}

impl App {
    /// Applies what can change without a restart (SIGHUP): route rules, SSO
    /// partners, the users file and the TLS certificate. `new` is already
    /// validated; if the users file does not load, nothing changes and the
    /// error says why. Other settings take effect at the next restart.
    pub fn reload(&self, new: &Config) -> Result<(), String> {
        self.auth.credentials.reload()?;
        self.routes.store(new.routes.clone());
        self.auth.sso.set_partners(new.sso.clone());
        match (&self.tls, &new.server.tls) {
            (Some(current), Some(tls)) => current.store(tls.server_config.clone()),
            (None, None) => {}
            _ => tracing::warn!("server.tls was added or removed: that takes a restart"),
        }
        let needs_restart = self.config.restart_sections(new);
        if !needs_restart.is_empty() {
            tracing::warn!(sections = ?needs_restart, "these changes take a restart; routes, SSO partners, the users file and TLS certificates were reloaded");
        }
        tracing::info!(partners = new.sso.len(), "configuration reloaded");
        Ok(())
    }
}

/// Applies the schema (unless `postgres.migrate = false`) and loads the
/// keys every instance shares (CSRF, and the token key unless
/// `tokens.secret` is set), retrying every 2 s while PostgreSQL is down.
async fn init_postgres(pg: Arc<Pg>, migrate: bool, csrf: Arc<Csrf>, tokens: Arc<Tokens>) {
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
            let token_key = if tokens.has_key() {
                None
            } else {
                Some(pg.shared_secret(TOKEN_SECRET).await?)
            };
            Ok::<_, crate::store::StoreError>((pg.shared_secret(CSRF_SECRET).await?, token_key))
        };
        match attempt.await {
            Ok((key, token_key)) => {
                if let Some(token_key) = token_key {
                    tokens.set_key(&token_key);
                }
                csrf.set_key(key);
                if failing {
                    tracing::info!("PostgreSQL is reachable again");
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "PostgreSQL is unavailable; retrying in 2s (sign-in answers 503 meanwhile)");
                failing = true;
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    }
}

/// Drops expired in-memory sessions every minute so memory stays bounded.
fn spawn_sweeper(store: &Arc<MemorySessionStore>, idle_timeout: std::time::Duration) {
    let weak = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(store) = weak.upgrade() else { break };
            store.purge_expired(SystemTime::now(), idle_timeout);
        }
    });
}
