//! The application state shared by every connection: validated config, page
//! templates, authentication with its stores. Built
//! once at start.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::auth::cookies::CookieSettings;
use crate::auth::csrf::Csrf;
use crate::auth::password::PasswordVerifier;
use crate::auth::session::Sessions;
use crate::auth::sso::Sso;
use crate::auth::tokens::{revocation_window, Tokens};
use crate::auth::Auth;
use crate::config::{AssertionConfig, Config};
use crate::metrics::Metrics;
use crate::pages::Pages;
use crate::policy::routes::RouteTable;
use crate::store::{Started, Stores};

pub struct App {
    pub config: Config,
    pub pages: Pages,
    /// Session and CSRF cookie names and attributes.
    pub(crate) cookies: CookieSettings,
    pub(crate) auth: Auth,
    pub metrics: Arc<Metrics>,
    /// Route rules; replaced whole by a reload (SIGHUP).
    pub routes: ArcSwap<RouteTable>,
    /// The TLS certificate and key; replaced by a reload.
    pub tls: Option<ArcSwap<rustls::ServerConfig>>,
    /// `[upstream.assertion]`: its key, algorithm and audience are replaced
    /// by a reload (key rotation); adding or removing it takes a restart.
    pub(crate) assertion: ArcSwapOption<AssertionConfig>,
    /// Start-up work (PostgreSQL schema and shared keys).
    started: Started,
}

impl App {
    /// Builds the state from a validated config, without waiting for any
    /// backend. Must run inside a tokio runtime. With PostgreSQL, a
    /// background task applies the schema and loads the CSRF key every
    /// instance shares, retrying while the database is down (requests that
    /// need it get 503 meanwhile, and `/readyz` says so).
    pub fn build(config: Config) -> anyhow::Result<Arc<App>> {
        let stores = Stores::build(&config, revocation_window(&config.tokens))?;
        let tokens = Arc::new(Tokens::new(config.tokens.clone(), stores.refresh.clone()));
        let csrf = Arc::new(Csrf::pending());
        let started = stores.start(!tokens.has_key(), {
            let (csrf, tokens) = (csrf.clone(), tokens.clone());
            move |keys| {
                if let Some(key) = keys.tokens {
                    tokens.set_key(&key);
                }
                csrf.set_key(keys.csrf);
            }
        });
        Self::assemble(config, stores, csrf, tokens, started)
    }

    /// Waits until start-up work is done, at most `postgres.connect_timeout`:
    /// with the database up, sign-in works from the first request accepted.
    /// If it does not answer by then, serving starts without it (503s and
    /// `/readyz` 503) while the work goes on being retried.
    pub async fn wait_started(&self) {
        let began = tokio::time::Instant::now();
        self.started.wait().await;
        // The revoked token families load through their own listener, once
        // the schema is in place: bearer requests need them too.
        let limit = began + self.config.postgres.connect_timeout;
        while !self.auth.tokens.ready() && tokio::time::Instant::now() < limit {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn assemble(
        config: Config,
        stores: Stores,
        csrf: Arc<Csrf>,
        tokens: Arc<Tokens>,
        started: Started,
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
            verifier: PasswordVerifier::new(config.login.hash_workers, config.login.hash_wait),
            csrf,
            login: config.login.clone(),
            recheck_interval: config.session.recheck_interval,
            tokens,
            bearer_rechecks: Auth::bearer_recheck_cache(config.session.recheck_interval),
            sso: Sso::new(config.sso.clone(), stores.replay),
            metrics: metrics.clone(),
        };
        Ok(Arc::new(App {
            cookies,
            pages,
            auth,
            metrics,
            routes: ArcSwap::new(config.routes.clone()),
            tls: config
                .server
                .tls
                .as_ref()
                .map(|t| ArcSwap::new(t.server_config.clone())),
            assertion: ArcSwapOption::new(config.upstream.assertion.clone().map(Arc::new)),
            started,
            config,
        }))
    }
}

impl App {
    /// Applies what can change without a restart (SIGHUP): route rules, SSO
    /// partners, the users file, the TLS certificate and the assertion key. `new` is already
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
        // Same header name only: the pipeline strips that name from clients
        // and was built with it (other changes count under "upstream").
        if let Some(next) = &new.upstream.assertion {
            let same_header = self
                .assertion
                .load()
                .as_ref()
                .is_some_and(|current| current.header == next.header);
            if same_header {
                self.assertion.store(Some(Arc::new(next.clone())));
            }
        }
        let needs_restart = self.config.restart_sections(new);
        if !needs_restart.is_empty() {
            tracing::warn!(sections = ?needs_restart, "these changes take a restart; routes, SSO partners, the users file, TLS certificates and the assertion key were reloaded");
        }
        tracing::info!(partners = new.sso.len(), "configuration reloaded");
        Ok(())
    }
}
