//! Sign-in decisions on second factors: a code after a correct password,
//! turning a factor on and off. A code is an attempt on the account like a
//! password: counted before it is checked, a wrong one is a failure toward
//! `login.max_failures`, and only a completed sign-in clears the count.

use std::net::IpAddr;

use super::CodeCheck;
use crate::auth::login::account_key;
use crate::auth::{Auth, AuthError, LoginOutcome};
use crate::store::{Gate, Identity, StoreError};

/// What turning a factor off came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Disable {
    Off,
    /// A role in `mfa.required_roles`: it stays on.
    Required,
    /// Wrong code, or the account is locked.
    Failed,
}

impl Auth {
    /// Whether the user has a second factor on (for `/auth/me` and the
    /// account page).
    pub(crate) async fn mfa_enabled(&self, user_id: &str) -> Result<bool, StoreError> {
        self.mfa.enabled(user_id).await
    }

    /// The second step of a sign-in: `code` (TOTP or recovery) for the user
    /// of a pending sign-in, re-read from the credential backend (an
    /// account deactivated meanwhile fails). Success means a completed
    /// sign-in (`login_ok`, failures cleared); the caller starts the
    /// session. The per-IP rate is the caller's to count.
    pub(crate) async fn second_factor_login(
        &self,
        identity: &Identity,
        code: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<LoginOutcome, AuthError> {
        let user = self.credentials.find_current(identity).await?;
        let Some(user) = user.filter(|u| u.active) else {
            self.audit("login_failed", &identity.username, client_ip, request_id);
            return Ok(LoginOutcome::Failed);
        };
        if !self
            .counted_code(&user.identity, code, client_ip, request_id)
            .await?
        {
            return Ok(LoginOutcome::Failed);
        }
        self.record_login(&user.identity.id);
        self.audit("login_ok", &user.identity.username, client_ip, request_id);
        Ok(LoginOutcome::Success(user.identity))
    }

    /// Turns on the user's pending factor with a current code; the new
    /// recovery codes, or `None` for a wrong code. Audited as `mfa_enabled`.
    pub(crate) async fn enable_second_factor(
        &self,
        identity: &Identity,
        code: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<Option<Vec<String>>, AuthError> {
        let codes = self.mfa.confirm(identity, code).await?;
        if codes.is_some() {
            self.audit("mfa_enabled", &identity.username, client_ip, request_id);
        }
        Ok(codes)
    }

    /// Completes a sign-in that was waiting for a forced enrolment, now
    /// confirmed with a current code: as any completed sign-in, the
    /// failures are cleared and `login_ok` recorded.
    pub(crate) async fn enrolment_sign_in(
        &self,
        identity: &Identity,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<(), StoreError> {
        let account = account_key(Some(&identity.id), &identity.username);
        self.throttle.clear_failures(&account).await?;
        self.record_login(&identity.id);
        self.audit("login_ok", &identity.username, client_ip, request_id);
        Ok(())
    }

    /// Turns the user's factor off with a current code (or a recovery code),
    /// unless a role of theirs requires one. A wrong code counts toward the
    /// lockout like one at sign-in. Audited as `mfa_disabled`.
    pub(crate) async fn disable_second_factor(
        &self,
        identity: &Identity,
        code: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<Disable, AuthError> {
        if self.mfa.required(identity) {
            return Ok(Disable::Required);
        }
        if !self
            .counted_code(identity, code, client_ip, request_id)
            .await?
        {
            return Ok(Disable::Failed);
        }
        self.mfa.remove(&identity.id).await?;
        self.audit("mfa_disabled", &identity.username, client_ip, request_id);
        Ok(Disable::Off)
    }

    /// Checks `code` as an attempt on the account: refused while locked, a
    /// wrong one recorded (`mfa_failed`) and locking the account at
    /// `max_failures`, a right one clearing the failures.
    async fn counted_code(
        &self,
        identity: &Identity,
        code: &str,
        client_ip: IpAddr,
        request_id: &str,
    ) -> Result<bool, AuthError> {
        let user = &identity.username;
        let account = account_key(Some(&identity.id), user);
        let gate = self
            .throttle
            .begin_attempt(&account, self.login.max_failures, self.login.lockout)
            .await?;
        let Gate::Allowed { attempt } = gate else {
            self.audit("login_refused_locked", user, client_ip, request_id);
            return Ok(false);
        };
        match self.mfa.check(&identity.id, code).await? {
            CodeCheck::Totp => {}
            CodeCheck::Recovery => self.audit("mfa_recovery_used", user, client_ip, request_id),
            CodeCheck::Wrong => {
                self.audit("mfa_failed", user, client_ip, request_id);
                if attempt >= self.login.max_failures {
                    self.throttle.lock(&account, self.login.lockout).await?;
                    self.audit("lockout", user, client_ip, request_id);
                }
                return Ok(false);
            }
        }
        self.throttle.clear_failures(&account).await?;
        Ok(true)
    }
}
