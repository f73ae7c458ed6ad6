//! A signed-in user looking after their own account: listing and ending
//! their own sessions, changing their password.
//!
//! Sessions are listed by username (what the stores index) and then kept
//! only when they belong to the same user id: a partner's own SSO user may
//! share a local user's name, and neither may see or end the other's
//! sessions. For the same reason "end all others" ends the listed sessions
//! one by one rather than everything stored under the name.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::login::account_key;
use super::{Auth, AuthError, MAX_PASSWORD_BYTES};
use crate::config::PasswordPolicy;
use crate::store::{Gate, SessionRecord, StoreError};

/// What a password change came to.
#[derive(Debug)]
pub(crate) enum PasswordChange {
    /// Stored; the user's other sessions and token families are ended.
    Changed,
    /// The current password was wrong (counted as a failed sign-in), the
    /// account is locked, or the user is gone or inactive.
    WrongCurrent,
    /// Too many attempts from this address; retry after this long.
    RateLimited(Duration),
    /// The new password breaks the policy: every reason.
    Weak(Vec<String>),
}

/// The request a change comes from, for the audit trail and the rate limit.
pub(crate) struct Requester<'a> {
    pub(crate) session: &'a SessionRecord,
    pub(crate) client_ip: IpAddr,
    pub(crate) request_id: &'a str,
}

impl Auth {
    /// The live sessions of `session`'s user, the current one first, then
    /// the most recently active.
    pub(crate) async fn own_sessions(
        &self,
        session: &SessionRecord,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let now = SystemTime::now();
        let mut list: Vec<SessionRecord> = self
            .sessions
            .store()
            .list_username(&session.identity.username)
            .await?
            .into_iter()
            .filter(|s| s.identity.id == session.identity.id && self.sessions.is_live(s, now))
            .collect();
        list.sort_by_key(|s| {
            (
                s.token_hash != session.token_hash,
                std::cmp::Reverse(s.last_seen),
            )
        });
        Ok(list)
    }

    /// Ends the session with this public id if it is one of the user's own
    /// live sessions; returns it (`None`: no such session of theirs, which
    /// includes another user's).
    pub(crate) async fn end_own_session(
        &self,
        requester: &Requester<'_>,
        public_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let session = requester.session;
        let Some(target) = self
            .own_sessions(session)
            .await?
            .into_iter()
            .find(|s| s.public_id == public_id)
        else {
            return Ok(None);
        };
        if !self
            .sessions
            .store()
            .remove_public(&session.identity.username, public_id)
            .await?
        {
            return Ok(None);
        }
        self.audit_ended(requester, 1);
        Ok(Some(target))
    }

    /// Ends every live session of the user but `requester`'s own; returns
    /// how many.
    pub(crate) async fn end_other_sessions(
        &self,
        requester: &Requester<'_>,
    ) -> Result<u64, StoreError> {
        let session = requester.session;
        let mut ended = 0;
        for other in self.own_sessions(session).await? {
            if other.token_hash != session.token_hash
                && self.sessions.revoke(&other.token_hash).await?
            {
                ended += 1;
            }
        }
        self.audit_ended(requester, ended);
        Ok(ended)
    }

    /// One `session_revoked_by_user` event per session ended.
    fn audit_ended(&self, requester: &Requester<'_>, count: u64) {
        for _ in 0..count {
            self.audit(
                "session_revoked_by_user",
                &requester.session.identity.username,
                requester.client_ip,
                requester.request_id,
            );
        }
    }

    /// Changes the signed-in user's password through `password_update`.
    ///
    /// The new password must pass `policy` (checked first: no hashing work
    /// and no attempt counted for a typo in it). The current password is
    /// then checked like a sign-in: the per-IP rate, the account's lockout
    /// counter (a wrong one is a failed sign-in, and can lock the account),
    /// the same hashing pool. On success the new bcrypt hash is stored,
    /// every other session and every refresh token family of the user is
    /// ended, and the requester's session is kept.
    pub(crate) async fn change_password(
        &self,
        requester: &Requester<'_>,
        current: &str,
        new: &str,
        policy: PasswordPolicy,
    ) -> Result<PasswordChange, AuthError> {
        let session = requester.session;
        let identity = &session.identity;
        let (ip, request_id) = (requester.client_ip, requester.request_id);
        let problems = super::register::password_problems(
            new,
            &identity.username,
            &identity.email,
            policy.min,
            policy.max,
        );
        if !problems.is_empty() {
            return Ok(PasswordChange::Weak(problems));
        }
        if let Some(wait) = self
            .throttle
            .login_attempt(&super::rate_key(ip), self.login.ip_rate)
            .await?
        {
            self.audit(
                "password_change_rate_limited",
                &identity.username,
                ip,
                request_id,
            );
            return Ok(PasswordChange::RateLimited(wait));
        }
        let user = self.credentials.find_current(identity).await?;
        let account = account_key(Some(&identity.id), &identity.username);
        let slot = self.verifier.slot().await?;
        let gate = self
            .throttle
            .begin_attempt(&account, self.login.max_failures, self.login.lockout)
            .await?;
        let hash = user.as_ref().map(|u| u.password_hash.as_str());
        let plausible = current.len() <= MAX_PASSWORD_BYTES;
        let current_ok = self.verifier.verify_in(slot, current, hash).await && plausible;
        let user = match (user, gate) {
            (Some(user), Gate::Allowed { .. }) if current_ok && user.active => user,
            (_, Gate::Allowed { attempt }) => {
                self.audit("password_change_failed", &identity.username, ip, request_id);
                if attempt >= self.login.max_failures {
                    self.throttle.lock(&account, self.login.lockout).await?;
                    self.audit("lockout", &identity.username, ip, request_id);
                }
                return Ok(PasswordChange::WrongCurrent);
            }
            (_, Gate::Refused) => {
                self.audit(
                    "password_change_refused_locked",
                    &identity.username,
                    ip,
                    request_id,
                );
                return Ok(PasswordChange::WrongCurrent);
            }
        };
        self.throttle.clear_failures(&account).await?;
        if new == current {
            return Ok(PasswordChange::Weak(vec![
                "must differ from the current password".to_string(),
            ]));
        }
        let Some(fresh) = self.verifier.hash(new).await? else {
            // Only a password bcrypt refuses, which the policy rules out.
            return Ok(PasswordChange::Weak(vec![
                "could not be hashed; choose another".to_string(),
            ]));
        };
        self.credentials
            .set_password_hash(&user.identity.id, &fresh)
            .await?;
        // The password is changed: whatever follows must not undo that, but
        // a failure to end the other sign-ins is reported (503), so the user
        // can retry from the page.
        self.end_other_sessions(requester).await?;
        self.tokens.revoke_username(&identity.username).await?;
        self.audit("password_changed", &identity.username, ip, request_id);
        Ok(PasswordChange::Changed)
    }
}
