//! Password reset by mail. A request answers alike whether or not the
//! account exists: the same lookups and the same rate-limit write happen
//! for every name, and the link is stored and mailed off the request path.
//! Confirming sets the password through `credentials.mysql.password_update`
//! and ends every session and refresh family of the user.

use std::net::IpAddr;
use std::time::Duration;

use super::links::well_formed;
use super::login::{account_key, rate_key};
use super::register::password_problems;
use super::session::hash_token;
use super::{Auth, AuthError, MAX_USERNAME_BYTES};
use crate::config::Rate;
use crate::store::{AccountToken, LinkPurpose, StoreError};

/// At most one reset mail per account per minute, whoever asks: a name
/// typed again and again does not flood its owner's mailbox.
const PER_ACCOUNT: Rate = Rate {
    count: 1,
    per: Duration::from_secs(60),
};

/// The answer to a reset request.
#[derive(Debug)]
pub(crate) enum ResetRequest {
    /// The same for every name: a link was mailed if the account exists.
    Accepted,
    /// Too many attempts from this address (`login.ip_rate`).
    RateLimited(Duration),
}

/// The result of setting a new password from a link.
#[derive(Debug)]
pub(crate) enum ResetOutcome {
    /// The password was set; every session of the user has ended.
    Done,
    /// Unknown, spent or expired: one answer for all.
    InvalidLink,
    /// The new password breaks the policy; every reason. The link stays
    /// usable.
    Weak {
        username: String,
        reasons: Vec<String>,
    },
}

impl Auth {
    /// Whether password reset is on: `[mail]` and `password_update`.
    pub(crate) fn reset_enabled(&self) -> bool {
        self.links.mailer.is_some() && self.credentials.can_set_password()
    }

    /// Handles "forgot password" for `login` (a username or email).
    pub(crate) async fn request_reset(
        &self,
        login: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<ResetRequest, StoreError> {
        if let Some(wait) = self
            .throttle
            .login_attempt(&rate_key(client_ip), self.login.ip_rate)
            .await?
        {
            self.audit("reset_rate_limited", "", client_ip, request_id);
            return Ok(ResetRequest::RateLimited(wait));
        }
        let login = login.trim();
        let user = if !login.is_empty() && login.len() <= MAX_USERNAME_BYTES {
            self.credentials.find_by_login(login).await?
        } else {
            None
        };
        let account = account_key(user.as_ref().map(|u| u.identity.id.as_str()), login);
        let throttled = self
            .throttle
            .login_attempt(&format!("reset:{account}"), PER_ACCOUNT)
            .await?
            .is_some();
        let user = match user {
            Some(user) if user.active && !user.identity.email.is_empty() && !throttled => user,
            Some(user) => {
                let why = if throttled {
                    "reset_account_rate_limited"
                } else {
                    "reset_inactive_refused"
                };
                self.audit(why, &user.identity.username, client_ip, request_id);
                return Ok(ResetRequest::Accepted);
            }
            None => {
                self.audit("reset_unknown_refused", &account, client_ip, request_id);
                return Ok(ResetRequest::Accepted);
            }
        };
        self.audit(
            "reset_requested",
            &user.identity.username,
            client_ip,
            request_id,
        );
        // Stored and queued off the request path, so a known name answers
        // as fast as an unknown one.
        let links = self.links.clone();
        tokio::spawn(async move {
            if let Err(e) = links.issue(LinkPurpose::Reset, &user).await {
                tracing::error!(user = %user.identity.username, error = %e, "reset link not stored; no mail sent");
            }
        });
        Ok(ResetRequest::Accepted)
    }

    /// The account a live reset link is for, without spending it (the
    /// page behind the link).
    pub(crate) async fn reset_link(&self, token: &str) -> Result<Option<AccountToken>, StoreError> {
        if !well_formed(token) {
            return Ok(None);
        }
        self.links
            .tokens
            .find(&hash_token(token), LinkPurpose::Reset)
            .await
    }

    /// Sets a new password from a reset link: the registration policy, the
    /// hash written with `password_update`, the link (and the user's other
    /// reset links) spent, every session and refresh family of the user
    /// ended, failed sign-ins forgotten.
    pub(crate) async fn confirm_reset(
        &self,
        token: &str,
        new_password: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<ResetOutcome, AuthError> {
        let Some(link) = self.reset_link(token).await? else {
            self.audit("reset_link_refused", "", client_ip, request_id);
            return Ok(ResetOutcome::InvalidLink);
        };
        let policy = self.links.policy;
        let problems = password_problems(
            new_password,
            &link.username,
            &link.email,
            policy.min,
            policy.max,
        );
        if !problems.is_empty() {
            return Ok(ResetOutcome::Weak {
                username: link.username,
                reasons: problems,
            });
        }
        let hash =
            self.verifier
                .hash(new_password)
                .await?
                .ok_or_else(|| StoreError::Unavailable {
                    backend: "password hashing",
                    message: "could not hash the new password".into(),
                })?;
        // Spent before the write: of two tabs posting the same link, one
        // sets the password.
        let hash_of_token = hash_token(token);
        let Some(link) = self
            .links
            .tokens
            .spend(&hash_of_token, LinkPurpose::Reset)
            .await?
        else {
            return Ok(ResetOutcome::InvalidLink);
        };
        self.credentials
            .set_password_hash(&link.user_id, &hash)
            .await?;
        // By user id, not name alone: a partner's own user may share the name.
        let mut sessions = 0u64;
        for session in self.sessions.store().list_username(&link.username).await? {
            if session.identity.id == link.user_id
                && self.sessions.revoke(&session.token_hash).await?
            {
                sessions += 1;
            }
        }
        let families = self.tokens.revoke_username(&link.username).await?;
        self.throttle
            .clear_failures(&account_key(Some(&link.user_id), ""))
            .await?;
        tracing::info!(user = %link.username, sessions, families, "password reset: sessions and token families ended");
        self.audit("password_reset", &link.username, client_ip, request_id);
        Ok(ResetOutcome::Done)
    }
}
