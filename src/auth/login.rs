//! Password sign-in: the per-IP rate limit, account lockout counted before
//! hashing, one answer for every failure, rewriting outdated hashes, and
//! handing users with a second factor on to its step.

use std::net::IpAddr;
use std::time::Duration;

use sha2::Digest as _;

use super::mfa::SecondStep;
use super::{password, Auth, AuthError, MAX_PASSWORD_BYTES, MAX_USERNAME_BYTES};
use crate::store::{Gate, Identity};

/// The result of a password login attempt.
pub(crate) enum LoginOutcome {
    Success(Identity),
    /// The right password of a user with a second factor: no sign-in yet,
    /// a code must follow ([`Auth::second_factor_login`]).
    NeedsCode(Identity),
    /// The right password of a user whose role requires a second factor
    /// they do not have yet: enrolment must follow.
    NeedsEnrolment(Identity),
    /// Unknown user, wrong password, inactive or locked: one answer for all.
    Failed,
    /// Too many attempts from this address; retry after this long.
    RateLimited(Duration),
}

impl Auth {
    /// Checks a username (or email) and password with the per-IP rate limit
    /// and account lockout applied. Unknown users, wrong passwords, inactive
    /// and locked accounts all fail alike, after the same hashing work.
    /// `AuthError::HashBusy` (503) when no hashing slot is free within
    /// `login.hash_wait`; such a login does not count as an attempt.
    pub(crate) async fn password_login(
        &self,
        login: &str,
        password: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<LoginOutcome, AuthError> {
        if let Some(wait) = self
            .throttle
            .login_attempt(&rate_key(client_ip), self.login.ip_rate)
            .await?
        {
            self.audit(
                "login_rate_limited",
                &account_key(None, login),
                client_ip,
                request_id,
            );
            return Ok(LoginOutcome::RateLimited(wait));
        }
        let plausible = !login.is_empty()
            && login.len() <= MAX_USERNAME_BYTES
            && password.len() <= MAX_PASSWORD_BYTES;
        let user = if plausible {
            self.credentials.find_by_login(login).await?
        } else {
            None
        };
        let account = account_key(user.as_ref().map(|u| u.identity.id.as_str()), login);
        // The slot before the attempt is counted: an overloaded pool must
        // not push anyone towards a lockout.
        let slot = self.verifier.slot().await?;
        let gate = self
            .throttle
            .begin_attempt(&account, self.login.max_failures, self.login.lockout)
            .await?;
        let hash = user.as_ref().map(|u| u.password_hash.as_str());
        let password_ok = self.verifier.verify_in(slot, password, hash).await;
        // Unknown names are logged by their hash: people type passwords into
        // the username field, and logs never hold passwords.
        let logged = user
            .as_ref()
            .map_or_else(|| account.clone(), |u| u.identity.username.clone());
        match (user, gate) {
            (Some(u), Gate::Allowed { .. }) if password_ok && u.active => {
                self.rehash_if_outdated(&u.identity.id, &u.password_hash, password)
                    .await;
                let step = self.mfa.second_step(&u.identity).await?;
                if step == SecondStep::None {
                    self.throttle.clear_failures(&account).await?;
                    self.record_login(&u.identity.id);
                    self.audit("login_ok", &u.identity.username, client_ip, request_id);
                    return Ok(LoginOutcome::Success(u.identity));
                }
                // Not a sign-in yet: earlier failures stay counted (only a
                // completed sign-in clears them), this attempt does not.
                self.throttle.release_attempt(&account).await?;
                self.audit(
                    "login_second_step",
                    &u.identity.username,
                    client_ip,
                    request_id,
                );
                Ok(match step {
                    SecondStep::Enrol => LoginOutcome::NeedsEnrolment(u.identity),
                    _ => LoginOutcome::NeedsCode(u.identity),
                })
            }
            (_, Gate::Allowed { attempt }) => {
                self.audit("login_failed", &logged, client_ip, request_id);
                if attempt >= self.login.max_failures {
                    self.throttle.lock(&account, self.login.lockout).await?;
                    self.audit("lockout", &logged, client_ip, request_id);
                }
                Ok(LoginOutcome::Failed)
            }
            (_, Gate::Refused) => {
                self.audit("login_refused_locked", &logged, client_ip, request_id);
                Ok(LoginOutcome::Failed)
            }
        }
    }

    /// Runs `credentials.mysql.login_update` for a user who just signed in
    /// (password, JSON login, SSO hand-off of a known user), off the
    /// request path: the app's `last_login` is bookkeeping, so a failure
    /// is logged and never fails or delays the sign-in.
    pub(crate) fn record_login(&self, user_id: &str) {
        let credentials = self.credentials.clone();
        let user_id = user_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = credentials.record_login(&user_id).await {
                tracing::warn!(error = %e, user_id, "credentials.mysql.login_update failed; the sign-in stands");
            }
        });
    }

    /// With `rehash_update` configured, replaces a hash weaker than today's
    /// default after a successful login. Failure only logs.
    async fn rehash_if_outdated(&self, user_id: &str, hash: &str, password: &str) {
        if !self.credentials.can_rehash() || !password::is_outdated(hash) {
            return;
        }
        match self.verifier.hash(password).await {
            Err(busy) => {
                tracing::info!(user_id, error = %busy, "outdated password hash kept for now")
            }
            Ok(Some(fresh)) => match self.credentials.update_hash(user_id, &fresh).await {
                Ok(()) => tracing::info!(user_id, "outdated password hash rewritten"),
                Err(e) => {
                    tracing::warn!(error = %e, user_id, "could not rewrite an outdated password hash")
                }
            },
            Ok(None) => tracing::warn!(user_id, "could not compute a new password hash"),
        }
    }
}

/// The login-rate key of a client: its address, or its /64 for IPv6 (one
/// host usually holds a whole /64).
pub(crate) fn rate_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The lockout key: the user id when the name exists (whichever of username
/// or email was typed), else a hash of the name as typed, so probing unknown
/// names is counted alike and stored keys stay short.
pub(super) fn account_key(user_id: Option<&str>, login: &str) -> String {
    match user_id {
        Some(id) => format!("id:{id}"),
        None => {
            let digest = sha2::Sha256::digest(login.to_lowercase().as_bytes());
            format!("name:{}", hex::encode(&digest[..16]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_rate_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(rate_key(a), rate_key(b));
        assert_ne!(rate_key(a), rate_key(c));
        assert_eq!(rate_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
    }

    #[test]
    fn account_keys_are_short_and_case_blind_for_unknown_names() {
        assert_eq!(account_key(Some("42"), "Alice"), "id:42");
        let long = "x".repeat(16 * 1024);
        assert!(account_key(None, &long).len() < 64);
        assert_eq!(account_key(None, "Bob"), account_key(None, "bob"));
    }
}
