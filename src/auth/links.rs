//! Mailed links: password reset (see `reset`) and address verification.
//!
//! A link carries a token of 32 random bytes (base64url); the store keeps
//! only its SHA-256, with the account it is for, and spends it once. A
//! reset link works for `mail.reset_ttl`, a verification link for
//! [`VERIFY_TTL`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::session::{hash_token, new_token};
use super::Auth;
use crate::config::{Config, PasswordPolicy};
use crate::mail::{Letter, MailKind, Mailer};
use crate::store::{AccountToken, AccountTokenStore, LinkPurpose, StoreError, UserRecord};

/// How long an address verification link works: a day, enough for a mail
/// that arrives late or is read the next morning.
pub(crate) const VERIFY_TTL: Duration = Duration::from_secs(24 * 3600);

/// What mailed links need, fixed at start.
pub(crate) struct Links {
    pub(crate) tokens: Arc<dyn AccountTokenStore>,
    /// `None` without `[mail]`.
    pub(crate) mailer: Option<Arc<Mailer>>,
    /// `{public_url}{prefix}`, the start of every link.
    pub(crate) base: String,
    pub(crate) reset_ttl: Duration,
    pub(crate) policy: PasswordPolicy,
    /// `registration.activate` when `registration.verify_email` is on.
    pub(crate) activate: Option<String>,
}

impl Links {
    pub(crate) fn new(
        config: &Config,
        tokens: Arc<dyn AccountTokenStore>,
        mailer: Option<Arc<Mailer>>,
    ) -> Self {
        let origin = config
            .server
            .public_url
            .as_ref()
            .map_or("", |u| u.origin.as_str());
        Links {
            tokens,
            mailer,
            base: format!("{origin}{}", config.login.prefix),
            reset_ttl: config.mail.as_ref().map_or(Duration::ZERO, |m| m.reset_ttl),
            policy: config.password_policy,
            activate: config
                .registration
                .as_ref()
                .and_then(|r| r.activate.clone()),
        }
    }

    /// Makes a token for `user`, stores it and queues the mail with its
    /// link; false (logged) when the mail could not be queued.
    pub(crate) async fn issue(
        &self,
        purpose: LinkPurpose,
        user: &UserRecord,
    ) -> Result<bool, StoreError> {
        let Some(mailer) = &self.mailer else {
            return Ok(false);
        };
        let (kind, path, ttl) = match purpose {
            LinkPurpose::Reset => (MailKind::Reset, "/reset/confirm", self.reset_ttl),
            LinkPurpose::Verify => (MailKind::Verify, "/verify-email", VERIFY_TTL),
        };
        let token = new_token();
        let identity = &user.identity;
        self.tokens
            .insert(
                &hash_token(&token),
                purpose,
                &AccountToken {
                    user_id: identity.id.clone(),
                    username: identity.username.clone(),
                    email: identity.email.clone(),
                    expires_at: SystemTime::now() + ttl,
                },
            )
            .await?;
        let link = format!("{}{path}?token={token}", self.base);
        Ok(mailer.send(Letter {
            kind,
            to: &identity.email,
            username: &identity.username,
            link: &link,
            valid_for: ttl,
        }))
    }
}

/// A token as a link carries it: 43 base64url characters. Anything else
/// is refused before the store is asked.
pub(crate) fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Auth {
    /// Whether new accounts must follow a mailed link to become active.
    pub(crate) fn verifies_email(&self) -> bool {
        self.links.activate.is_some() && self.links.mailer.is_some()
    }

    /// After a sign-up with `registration.verify_email`: mails the new
    /// account (found by `username`, as the operator's INSERT made it) its
    /// activation link. Failures are logged: the account exists either way.
    pub(crate) async fn mail_verification(
        &self,
        username: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) {
        let user = match self.credentials.find_by_login(username).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                tracing::error!(
                    user = username,
                    "new account not found by registration's user_query; no verification mail sent"
                );
                return;
            }
            Err(e) => {
                tracing::error!(user = username, error = %e, "no verification mail sent");
                return;
            }
        };
        match self.links.issue(LinkPurpose::Verify, &user).await {
            Ok(true) => self.audit("verification_mailed", username, client_ip, request_id),
            Ok(false) => {}
            Err(e) => tracing::error!(user = username, error = %e, "no verification mail sent"),
        }
    }

    /// Follows a verification link: runs `registration.activate` for its
    /// account, then spends it. `None` for a link that is unknown, spent or
    /// expired. Activating twice is harmless, so the token is spent only
    /// once the account is active (a database hiccup does not waste it).
    pub(crate) async fn verify_email(
        &self,
        token: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(activate) = &self.links.activate else {
            return Ok(None);
        };
        if !well_formed(token) {
            return Ok(None);
        }
        let hash = hash_token(token);
        let Some(link) = self.links.tokens.find(&hash, LinkPurpose::Verify).await? else {
            self.audit("verification_link_refused", "", client_ip, request_id);
            return Ok(None);
        };
        self.credentials
            .activate_user(activate, &link.user_id)
            .await?;
        self.links.tokens.spend(&hash, LinkPurpose::Verify).await?;
        self.audit("email_verified", &link.username, client_ip, request_id);
        Ok(Some(link.username))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_of_our_shape_are_looked_up() {
        assert!(well_formed(&new_token()));
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(44)));
        assert!(!well_formed(&format!("{}=", "a".repeat(42))));
    }
}
