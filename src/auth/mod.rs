//! Authentication: password checks with lockout and rate limits, second
//! factors, sessions and their cookies, CSRF, the audit trail, and
//! portcullis' own endpoints under `login.prefix` (sign-in, sign-out, `me`),
//! password reset and address verification by mailed links.

pub(crate) mod account;
pub(crate) mod cookies;
pub(crate) mod csrf;
pub(crate) mod jwt;
pub(crate) mod links;
mod login;
pub(crate) mod mfa;
pub mod password;
pub(crate) mod register;
pub(crate) mod reset;
pub(crate) mod session;
pub mod sso;
pub(crate) mod tokens;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::LoginConfig;
use crate::store::{
    AuditEvent, AuditSink, AuthMethod, CredentialStore, Identity, SessionRecord, StoreError,
    ThrottleStore, TokenHash,
};
use csrf::Csrf;
pub(crate) use login::rate_key;
pub(crate) use login::LoginOutcome;
use password::PasswordVerifier;
use session::Sessions;
use tokens::{AccessToken, IssuedTokens, RefreshRefusal, Spent, Tokens};

/// Longest username or password considered; longer input fails like a wrong
/// password (after the same dummy hash), never with a different answer.
const MAX_USERNAME_BYTES: usize = 256;
const MAX_PASSWORD_BYTES: usize = 1024;

pub(crate) struct Auth {
    pub sessions: Sessions,
    pub credentials: Arc<dyn CredentialStore>,
    pub throttle: Arc<dyn ThrottleStore>,
    pub audit_sink: Arc<dyn AuditSink>,
    pub verifier: PasswordVerifier,
    pub csrf: Arc<Csrf>,
    pub login: LoginConfig,
    /// How often a live session's user is re-read (`session.recheck_interval`).
    pub recheck_interval: Duration,
    pub tokens: Arc<Tokens>,
    /// Users of bearer families re-read within `recheck_interval`, by
    /// family (see [`Auth::bearer_recheck_cache`]).
    pub bearer_rechecks: moka::future::Cache<String, Identity>,
    pub sso: sso::Sso,
    pub mfa: mfa::Mfa,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Mailed links: password reset and address verification.
    pub links: Arc<links::Links>,
}

/// Who is making a request: a session cookie or a bearer access token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub identity: Identity,
    pub auth_method: &'static str,
    /// When the session or token ends if nothing else happens.
    pub expires_at: SystemTime,
    /// The session, for a cookie caller.
    pub session: Option<TokenHash>,
    /// The refresh family, for a bearer caller.
    pub family: Option<String>,
    pub bearer: bool,
    /// The session's public id, or the refresh family for a bearer caller:
    /// what the app sees as `X-Auth-Session`.
    pub public_id: String,
}

/// The credentials a request presents, read from its headers by `web`:
/// session cookie values (at most two) and a bearer token.
#[derive(Debug, Default)]
pub(crate) struct Presented {
    pub session_tokens: Vec<String>,
    pub bearer: Option<String>,
}

/// Why a sign-in could not be decided (as opposed to refused).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// A store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No password hashing slot was free within `login.hash_wait`.
    #[error(transparent)]
    HashBusy(#[from] password::HashBusy),
    /// A key shared through the database (the CSRF key, the token key) is
    /// not loaded yet: start-up work is still running, like a store outage.
    #[error("{0} not loaded yet")]
    KeyNotLoaded(&'static str),
    /// An access token could not be signed (a fault of ours).
    #[error("could not sign an access token: {0}")]
    Signing(jsonwebtoken::errors::Error),
    /// Another request is still rotating this refresh token and its result
    /// did not arrive in time; the client may retry.
    #[error("a concurrent refresh of this token has not finished")]
    RefreshInProgress,
    /// A stored TOTP secret does not open under `mfa.secret_key` (the key
    /// was changed or removed): the operator's to fix, a 500.
    #[error(transparent)]
    MfaSecret(#[from] mfa::OpenError),
}

impl Auth {
    /// The caller of a request: the session cookie first, then a bearer
    /// access token.
    pub(crate) async fn caller(&self, presented: &Presented) -> Result<Option<Caller>, AuthError> {
        if let Some(session) = self.session_of(&presented.session_tokens).await? {
            return Ok(Some(Caller {
                expires_at: self.sessions.ends_at(&session),
                auth_method: session.auth_method.as_str(),
                session: Some(session.token_hash),
                family: None,
                bearer: false,
                public_id: session.public_id,
                identity: session.identity,
            }));
        }
        let Some(token) = presented.bearer.as_deref() else {
            return Ok(None);
        };
        // The shared key or the revoked families are still loading: a 503,
        // not a 401 that would make the client throw away a good token (nor
        // a 200 for a token that may be revoked).
        self.tokens.check_ready()?;
        let Some(access) = self.tokens.verify_access(token) else {
            return Ok(None);
        };
        let Some(identity) = Box::pin(self.recheck_bearer(&access)).await else {
            return Ok(None);
        };
        Ok(Some(Caller {
            identity,
            auth_method: "bearer",
            expires_at: access.expires_at,
            session: None,
            public_id: access.family.clone(),
            family: Some(access.family),
            bearer: true,
        }))
    }

    /// The cache behind [`Auth::recheck_bearer`]: an entry lives
    /// `recheck_interval`, so a family's user is re-read at most that often
    /// per instance; bounded like the session cache.
    pub(crate) fn bearer_recheck_cache(
        recheck_interval: Duration,
    ) -> moka::future::Cache<String, Identity> {
        moka::future::Cache::builder()
            .time_to_live(recheck_interval)
            .max_capacity(100_000)
            .build()
    }

    /// Bearer callers are re-checked like sessions: once a token is older
    /// than `recheck_interval` (its identity was read when it was minted),
    /// its user is re-read at most every `recheck_interval` per family. An
    /// inactive or deleted user's family is revoked (`None`: refused
    /// everywhere); otherwise the current identity applies (changed roles).
    /// A credential outage postpones the check, as for sessions.
    async fn recheck_bearer(&self, access: &AccessToken) -> Option<Identity> {
        if access.issued_at + self.recheck_interval > SystemTime::now() {
            return Some(access.identity.clone());
        }
        // A live entry was read less than `recheck_interval` ago, hence after
        // this (due) token was minted: it is never older than the token.
        let read = self
            .bearer_rechecks
            .try_get_with(access.family.clone(), async {
                match self.credentials.find_current(&access.identity).await {
                    Ok(Some(user)) if user.active => Ok(user.identity),
                    Ok(_) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            })
            .await;
        match read {
            Ok(identity) => {
                if identity != access.identity {
                    tracing::debug!(user = %identity.username, "user details changed; bearer caller updated");
                }
                Some(identity)
            }
            Err(e) => match e.as_ref() {
                Some(e) => {
                    tracing::warn!(error = %e, "bearer re-check postponed: credential backend unavailable");
                    Some(access.identity.clone())
                }
                None => {
                    if let Err(e) = self.tokens.revoke_family(&access.family).await {
                        // Refused anyway; the next request re-reads and retries.
                        tracing::warn!(error = %e, "could not revoke the token family of an inactive user");
                    }
                    // Found by the re-check, not by a request of the user's
                    // own: no client address or request id to record.
                    self.audit(
                        "tokens_revoked_inactive",
                        &access.identity.username,
                        IpAddr::from([0, 0, 0, 0]),
                        "-",
                    );
                    None
                }
            },
        }
    }

    /// Rotates a refresh token: a new access and refresh token in the same
    /// family, for a user who is still active (re-read from the credential
    /// backend, so changed roles apply); within the grace, the pair the
    /// first use got. `None` answers `invalid_grant`.
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<Option<IssuedTokens>, AuthError> {
        let rotation = match self.tokens.spend(refresh_token).await? {
            Ok(Spent::Fresh(rotation)) => rotation,
            Ok(Spent::Again { record, issued }) => {
                // Within the grace: the pair the first use got, re-sent.
                self.audit(
                    "token_refresh_repeated",
                    &record.identity.username,
                    client_ip,
                    request_id,
                );
                return Ok(Some(issued));
            }
            Err(RefreshRefusal::Reused) => {
                self.audit("refresh_reuse", "", client_ip, request_id);
                return Ok(None);
            }
            Err(_) => {
                self.audit("refresh_refused", "", client_ip, request_id);
                return Ok(None);
            }
        };
        let record = &rotation.record;
        // If the rest fails (a backend outage), the token is given back so a
        // later retry is not taken for a replay.
        let user = match self.credentials.find_current(&record.identity).await {
            Ok(user) => user,
            Err(e) => {
                self.tokens.unspend(&rotation).await;
                return Err(e.into());
            }
        };
        let Some(user) = user.filter(|u| u.active) else {
            self.tokens.revoke_family(&record.family).await?;
            self.audit(
                "refresh_refused_inactive",
                &record.identity.username,
                client_ip,
                request_id,
            );
            return Ok(None);
        };
        let issued = match self
            .tokens
            .issue(&user.identity, Some(record.family.clone()))
            .await
        {
            Ok(Some(issued)) => issued,
            Ok(None) => {
                self.audit(
                    "refresh_refused",
                    &user.identity.username,
                    client_ip,
                    request_id,
                );
                return Ok(None);
            }
            Err(e) => {
                self.tokens.unspend(&rotation).await;
                return Err(e);
            }
        };
        self.tokens.rotated(&rotation, &issued).await;
        self.audit(
            "token_refresh",
            &user.identity.username,
            client_ip,
            request_id,
        );
        Ok(Some(issued))
    }

    /// The live session named by the request's cookie, if any. Every
    /// `recheck_interval` the user is re-read from the credential backend:
    /// an inactive or deleted user loses the session, changed roles apply.
    pub(crate) async fn session_of(
        &self,
        session_tokens: &[String],
    ) -> Result<Option<SessionRecord>, StoreError> {
        for token in session_tokens {
            if let Some(session) = self.sessions.lookup(token).await? {
                let due = session.checked_at + self.recheck_interval <= SystemTime::now();
                if !due {
                    return Ok(Some(session));
                }
                // Boxed: every proxied request's future would carry the
                // credential backend's state otherwise.
                return Box::pin(self.recheck(session)).await;
            }
        }
        Ok(None)
    }

    async fn recheck(
        &self,
        mut session: SessionRecord,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let now = SystemTime::now();
        let due = session.checked_at + self.recheck_interval <= now;
        if !due {
            return Ok(Some(session));
        }
        if session.auth_method == AuthMethod::Sso
            && self.sso.vouching_partner(&session.identity.id).is_some()
        {
            // A partner's own user (not in our credentials): it stays as
            // long as the partner is configured.
            self.sessions
                .store()
                .update_identity(&session.token_hash, &session.identity, now)
                .await?;
            session.checked_at = now;
            return Ok(Some(session));
        }
        let current = match self.credentials.find_current(&session.identity).await {
            Ok(current) => current,
            Err(e) => {
                // A credential outage does not sign everyone out; the check
                // is retried on the next request.
                tracing::warn!(error = %e, "session re-check postponed: credential backend unavailable");
                return Ok(Some(session));
            }
        };
        match current {
            Some(user) if user.active => {
                if user.identity != session.identity {
                    tracing::info!(user = %session.identity.username, "user details changed; session updated");
                }
                self.sessions
                    .store()
                    .update_identity(&session.token_hash, &user.identity, now)
                    .await?;
                session.identity = user.identity;
                session.checked_at = now;
                Ok(Some(session))
            }
            _ => {
                self.sessions.revoke(&session.token_hash).await?;
                // Found by the re-check, not by a request of the user's own:
                // no client address or request id to record.
                self.audit(
                    "session_revoked_inactive",
                    &session.identity.username,
                    IpAddr::from([0, 0, 0, 0]),
                    "-",
                );
                Ok(None)
            }
        }
    }

    /// Records a security event: a log line with who, from where and which
    /// request, and an `audit_events` row where PostgreSQL is configured.
    /// Never carries a password or token.
    pub(crate) fn audit(
        &self,
        event: &'static str,
        user: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) {
        tracing::info!(target: "portcullis::audit", event, user, client_ip = %client_ip, request_id, "security event");
        self.metrics.record_event(event);
        self.audit_sink.record(AuditEvent {
            event,
            user: user.to_string(),
            client_ip,
            request_id: request_id.to_string(),
        });
    }
}
