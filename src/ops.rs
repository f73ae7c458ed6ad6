//! Operator commands behind the CLI: `check` (config plus a live try of
//! every backend), `migrate`, and `sessions list / revoke` (revoke also ends
//! bearer token families). Each prints what it did or what is wrong, naming
//! the config key to fix.

use std::sync::Arc;
use std::time::SystemTime;

use crate::auth::tokens::revocation_window;
use crate::config::{Config, SessionStoreKind};
use crate::store::postgres::{Pg, PgRefreshStore, PgSessionStore};
use crate::store::{SessionRecord, Stores};

/// Tries every backend the config names; returns the problems found, each
/// starting with the key to look at.
pub async fn check(config: &Config) -> Vec<String> {
    match Stores::build(config, revocation_window(&config.tokens)) {
        Ok(stores) => stores.problems().await,
        Err(e) => vec![format!("{e:#}")],
    }
}

/// Applies the PostgreSQL schema; returns how many steps ran.
pub async fn migrate(config: &Config) -> anyhow::Result<usize> {
    let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
    pg.migrate()
        .await
        .map_err(|e| anyhow::anyhow!("postgres.url: {e}"))
}

fn session_store(config: &Config) -> anyhow::Result<Arc<PgSessionStore>> {
    if config.session.store != SessionStoreKind::Postgres {
        anyhow::bail!(
            "session.store is \"memory\": sessions live inside the running proxy and end with it; \
             the sessions commands need session.store = \"postgres\""
        );
    }
    let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
    pg.assume_migrated();
    Ok(PgSessionStore::start(
        pg,
        config.session.cache_ttl,
        config.session.idle_timeout,
    ))
}

/// The live sessions of `username`, one line each (never the token).
pub async fn sessions_list(config: &Config, username: &str) -> anyhow::Result<Vec<String>> {
    use crate::store::SessionStore as _;
    let store = session_store(config)?;
    let sessions = store
        .list_username(username)
        .await
        .map_err(|e| anyhow::anyhow!("postgres.url: {e}"))?;
    Ok(sessions.iter().map(describe).collect())
}

fn describe(s: &SessionRecord) -> String {
    let at = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    format!(
        "{:?}  user={} id={} method={} created={} last_seen={} expires={}",
        s.token_hash,
        s.identity.username,
        s.identity.id,
        s.auth_method.as_str(),
        at(s.created_at),
        at(s.last_seen),
        at(s.expires_at)
    )
}

/// What `sessions revoke` ended.
#[derive(Debug, Clone, Copy)]
pub struct Revoked {
    pub sessions: u64,
    /// Refresh token families, whose access tokens are refused too.
    pub families: u64,
}

/// Revokes the sessions and bearer token families of `username`, or all of
/// them; every instance refuses them within a second.
pub async fn sessions_revoke(config: &Config, username: Option<&str>) -> anyhow::Result<Revoked> {
    use crate::store::{RefreshStore as _, SessionStore as _};
    let store = session_store(config)?;
    let sessions = match username {
        Some(user) => store.remove_username(user).await,
        None => store.remove_all().await,
    }
    .map_err(|e| anyhow::anyhow!("postgres.url: {e}"))?;
    let pg = Pg::new(&config.postgres).map_err(anyhow::Error::msg)?;
    let refresh = PgRefreshStore::new(pg.clone(), revocation_window(&config.tokens));
    let families = match username {
        Some(user) => refresh.revoke_username(user).await,
        None => refresh.revoke_all().await,
    }
    .map_err(|e| anyhow::anyhow!("postgres.url: {e}"))?;
    // The operator's revocation is a security event like any other.
    let event = if username.is_some() {
        "sessions_revoked"
    } else {
        "sessions_revoked_all"
    };
    let client = pg
        .pool
        .get()
        .await
        .map_err(|e| anyhow::anyhow!("postgres.url: {e}"))?;
    client
        .execute(
            "INSERT INTO audit_events (event, username, client_ip, request_id) VALUES ($1, $2, 'cli', '-')",
            &[&event, &username.unwrap_or("*")],
        )
        .await
        .map_err(|e| anyhow::anyhow!("postgres.url: {e}"))?;
    tracing::info!(target: "portcullis::audit", event, user = username.unwrap_or("*"), sessions, families, "security event");
    Ok(Revoked { sessions, families })
}
