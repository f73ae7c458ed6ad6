//! The application state shared by every connection: validated config, page
//! templates, authentication, the upstream client. Built once at start.

use std::sync::Arc;
use std::time::SystemTime;

use crate::auth::cookies::CookieSettings;
use crate::auth::csrf::Csrf;
use crate::auth::password::PasswordVerifier;
use crate::auth::session::Sessions;
use crate::auth::Auth;
use crate::config::{Config, CredentialsConfig, SessionStoreKind};
use crate::pages::Pages;
use crate::proxy::forward::Upstream;
use crate::proxy::headers::{python_name, FORWARDING_HEADERS};
use crate::store::file::FileCredentialStore;
use crate::store::memory::MemorySessionStore;
use crate::store::{CredentialStore, SessionStore};

/// Assertion header name stripped even before `[upstream.assertion]` is
/// configured, so a client can never pre-place one.
const DEFAULT_ASSERTION_HEADER: &str = "X-Auth-Assertion";

pub struct App {
    pub config: Config,
    pub pages: Pages,
    pub auth: Auth,
    pub upstream: Upstream,
    /// Python spellings of every header a client may not pass to the app.
    pub spoofable: Vec<String>,
}

impl App {
    /// Builds the state from a validated config. Must run inside a tokio
    /// runtime (it starts the session sweeper).
    pub fn build(config: Config) -> anyhow::Result<Arc<App>> {
        let pages = Pages::new(&config.login.title, config.login.template.as_deref())?;
        let credentials: Arc<dyn CredentialStore> = match &config.credentials {
            CredentialsConfig::File { path } => Arc::new(FileCredentialStore::load(path)?),
        };
        let sessions: Arc<dyn SessionStore> = match config.session.store {
            SessionStoreKind::Memory => {
                let store = Arc::new(MemorySessionStore::new());
                spawn_sweeper(&store, config.session.idle_timeout);
                store
            }
        };
        let cookies = CookieSettings::from_config(&config);
        if !cookies.secure {
            tracing::warn!(
                cookie = %cookies.session_name,
                "server.public_url is http://: session cookies are sent without Secure and without the __Host- prefix; use https in production"
            );
        }
        let auth = Auth {
            sessions: Sessions::new(sessions, config.session.clone()),
            credentials,
            verifier: PasswordVerifier::new(config.login.hash_workers),
            csrf: Csrf::random(),
            cookies,
        };
        let headers = &config.upstream.headers;
        let mut spoofable: Vec<String> = [
            headers.user.as_str(),
            headers.email.as_str(),
            headers.roles.as_str(),
        ]
        .into_iter()
        .chain([DEFAULT_ASSERTION_HEADER])
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
            config,
        }))
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
