//! Operator commands behind the CLI: `check` (config plus a live try of
//! every backend and the SMTP server), `migrate`, `sessions list / revoke`
//! (revoke also ends bearer token families), `routes` (the app's OpenAPI
//! operations against the route rules) and `mfa reset`. Each prints what
//! it did or what is
//! wrong, naming the config key to fix.

pub mod routes;

use std::time::SystemTime;

use crate::auth::tokens::revocation_window;
use crate::config::Config;
use crate::store::{self, FactorOperatorStores, OperatorStores, SessionRecord, StoreError, Stores};

/// Tries every backend the config names; returns the problems found, each
/// starting with the key to look at.
pub async fn check(config: &Config) -> Vec<String> {
    let mut problems = match Stores::build(config, revocation_window(&config.tokens)) {
        Ok(stores) => stores.problems().await,
        Err(e) => vec![format!("{e:#}")],
    };
    // Mail is tried here only: `/readyz` never depends on it (a mail
    // server that is down delays mails, it fails no page).
    if let Some(mail) = &config.mail {
        let site = crate::app::public_host(config);
        if let Err(e) = crate::mail::check(mail, Some(&site)).await {
            problems.push(e);
        }
    }
    problems
}

/// What is allowed but unwise in the config (`check` prints these and still
/// exits 0), each starting with the key to look at.
pub fn warnings(config: &Config) -> Vec<String> {
    crate::app::mfa_key_warning(config)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Removes the second factor and recovery codes of the user named
/// `login` (username or email, found through the credential backend), so
/// they can sign in with their password and enrol again (a lost phone).
/// Audited as `mfa_reset`; false when they had no factor on.
pub async fn mfa_reset(config: &Config, login: &str) -> anyhow::Result<bool> {
    let stores = FactorOperatorStores::build(config)?;
    let user = stores
        .credentials
        .find_by_login(login)
        .await
        .map_err(|e| anyhow::anyhow!("credentials: {e}"))?
        .ok_or_else(|| anyhow::anyhow!("no user {login:?} in the credential backend"))?;
    let key = stores.key;
    let database = |e: StoreError| anyhow::anyhow!("{key}: {e}");
    let removed = stores
        .factors
        .remove(&user.identity.id)
        .await
        .map_err(database)?;
    let username = &user.identity.username;
    stores
        .audit
        .record_operator("mfa_reset", username)
        .await
        .map_err(database)?;
    tracing::info!(target: "portcullis::audit", event = "mfa_reset", user = %username, removed, "security event");
    Ok(removed)
}

/// Applies the schema of the configured store (SQLite or PostgreSQL);
/// returns how many steps ran.
pub async fn migrate(config: &Config) -> anyhow::Result<usize> {
    store::migrate(config).await
}

/// The live sessions of `username`, one line each (never the token).
pub async fn sessions_list(config: &Config, username: &str) -> anyhow::Result<Vec<String>> {
    let stores = OperatorStores::build(config, revocation_window(&config.tokens))?;
    let sessions = stores
        .sessions
        .list_username(username)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", stores.key))?;
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
/// them; every instance (or the one server on a SQLite file) refuses them
/// within a second.
pub async fn sessions_revoke(config: &Config, username: Option<&str>) -> anyhow::Result<Revoked> {
    let stores = OperatorStores::build(config, revocation_window(&config.tokens))?;
    let key = stores.key;
    let database = |e: StoreError| anyhow::anyhow!("{key}: {e}");
    let sessions = match username {
        Some(user) => stores.sessions.remove_username(user).await,
        None => stores.sessions.remove_all().await,
    }
    .map_err(database)?;
    let families = match username {
        Some(user) => stores.refresh.revoke_username(user).await,
        None => stores.refresh.revoke_all().await,
    }
    .map_err(database)?;
    // The operator's revocation is a security event like any other.
    let event = if username.is_some() {
        "sessions_revoked"
    } else {
        "sessions_revoked_all"
    };
    stores
        .audit
        .record_operator(event, username.unwrap_or("*"))
        .await
        .map_err(database)?;
    tracing::info!(target: "portcullis::audit", event, user = username.unwrap_or("*"), sessions, families, "security event");
    Ok(Revoked { sessions, families })
}
