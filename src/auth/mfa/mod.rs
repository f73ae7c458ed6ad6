//! Second factors: TOTP enrolment with recovery codes, checking a typed
//! code (each TOTP step and each recovery code accepted once), secrets
//! sealed at rest under `mfa.secret_key`, `mfa.required_roles`, and the
//! pending sign-in between a correct password and its code. The sign-in
//! decisions built on these (lockout, audit) are in `signin`.

mod codes;
mod pending;
mod seal;
mod signin;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::csrf::Csrf;
use crate::auth::AuthError;
use crate::config::MfaConfig;
use crate::store::{AuthMethod, FactorStore, Identity, ReplayStore, StoreError};
use codes::Typed;
pub(crate) use pending::{Pending, PENDING_TTL};
pub(crate) use seal::OpenError;
pub(crate) use signin::Disable;

/// A pending enrolment older than this gets a new secret when the setup
/// page is opened again (a reload within it shows the same one).
const PENDING_FRESH: Duration = Duration::from_secs(3600);
/// The replay-store issuer under which pending sign-ins are spent (SSO
/// partners' issuers are URLs or names of theirs, never this).
const PENDING_ISSUER: &str = "portcullis:mfa-pending";

pub(crate) struct Mfa {
    store: Arc<dyn FactorStore>,
    replay: Arc<dyn ReplayStore>,
    csrf: Arc<Csrf>,
    config: MfaConfig,
}

/// What the setup page shows.
#[derive(Debug)]
pub(crate) enum Enrolment {
    /// Not on yet: the secret to add to an authenticator app.
    Pending {
        /// `otpauth://totp/...`, for the QR code.
        uri: String,
        /// The same secret in base32, to type by hand.
        secret: String,
    },
    /// On, with this many unspent recovery codes.
    Enabled { recovery_left: u32 },
}

/// What a sign-in needs after a correct password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecondStep {
    None,
    /// The user has a factor: a code.
    Code,
    /// A role in `mfa.required_roles` and no factor: enrolment.
    Enrol,
}

/// What a typed code turned out to be for a user with a factor.
#[derive(Debug, PartialEq, Eq)]
enum CodeCheck {
    Totp,
    Recovery,
    Wrong,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unreadable(e: OpenError) -> AuthError {
    tracing::error!(error = %e, "a stored TOTP secret cannot be read");
    e.into()
}

impl Mfa {
    pub(crate) fn new(
        store: Arc<dyn FactorStore>,
        replay: Arc<dyn ReplayStore>,
        csrf: Arc<Csrf>,
        config: MfaConfig,
    ) -> Self {
        Self {
            store,
            replay,
            csrf,
            config,
        }
    }

    fn key(&self) -> Option<&[u8; 32]> {
        self.config.secret_key.as_ref()
    }

    /// Whether `identity` must have a factor: one of its roles is in
    /// `mfa.required_roles` (such users cannot turn theirs off).
    pub(crate) fn required(&self, identity: &Identity) -> bool {
        identity
            .roles
            .iter()
            .any(|r| self.config.required_roles.contains(r))
    }

    /// Whether the user has a second factor turned on.
    pub(crate) async fn enabled(&self, user_id: &str) -> Result<bool, StoreError> {
        Ok(self.store.get(user_id).await?.is_some_and(|f| f.enabled))
    }

    pub(crate) async fn second_step(&self, identity: &Identity) -> Result<SecondStep, StoreError> {
        Ok(if self.enabled(&identity.id).await? {
            SecondStep::Code
        } else if self.required(identity) {
            SecondStep::Enrol
        } else {
            SecondStep::None
        })
    }

    /// The user's enrolment: the factor that is on, or the pending secret
    /// (made now, or the one made earlier so a reload shows the same).
    pub(crate) async fn enrolment(&self, identity: &Identity) -> Result<Enrolment, AuthError> {
        let fresh = seal::seal(self.key(), &identity.id, &codes::new_secret());
        let factor = self
            .store
            .pending(&identity.id, &fresh, PENDING_FRESH)
            .await?;
        if factor.enabled {
            return Ok(Enrolment::Enabled {
                recovery_left: self.store.recovery_left(&identity.id).await?,
            });
        }
        let secret = seal::open(self.key(), &identity.id, &factor.secret).map_err(unreadable)?;
        Ok(Enrolment::Pending {
            uri: codes::otpauth_uri(&secret, &self.config.issuer, &identity.username),
            secret: codes::base32(&secret),
        })
    }

    /// Turns the pending factor on if `code` is one of its current codes
    /// (that step then counts as used); returns the new recovery codes,
    /// `None` for a wrong code or when there is no pending factor.
    async fn confirm(
        &self,
        identity: &Identity,
        code: &str,
    ) -> Result<Option<Vec<String>>, AuthError> {
        let Some(factor) = self.store.get(&identity.id).await?.filter(|f| !f.enabled) else {
            return Ok(None);
        };
        let Some(Typed::Totp(code)) = codes::read_code(code) else {
            return Ok(None);
        };
        let secret = seal::open(self.key(), &identity.id, &factor.secret).map_err(unreadable)?;
        let Some(step) = codes::matching_step(&secret, &code, now_unix()) else {
            return Ok(None);
        };
        let recovery = codes::new_recovery_codes();
        let hashes: Vec<[u8; 32]> = recovery
            .iter()
            .map(|c| codes::recovery_hash(self.key(), &identity.id, c))
            .collect();
        let enabled = self
            .store
            .enable(&identity.id, &factor.secret, step, &hashes)
            .await?;
        Ok(enabled.then_some(recovery))
    }

    /// Checks a typed code against the user's enabled factor, spending the
    /// TOTP step or the recovery code it matches.
    async fn check(&self, user_id: &str, code: &str) -> Result<CodeCheck, AuthError> {
        let Some(factor) = self.store.get(user_id).await?.filter(|f| f.enabled) else {
            return Ok(CodeCheck::Wrong);
        };
        match codes::read_code(code) {
            Some(Typed::Totp(code)) => {
                let secret = seal::open(self.key(), user_id, &factor.secret).map_err(unreadable)?;
                match codes::matching_step(&secret, &code, now_unix()) {
                    Some(step) if self.store.use_step(user_id, step).await? => Ok(CodeCheck::Totp),
                    _ => Ok(CodeCheck::Wrong),
                }
            }
            Some(Typed::Recovery(code)) => {
                // Codes handed out before `secret_key` was set are stored
                // under plain SHA-256: both forms are looked for.
                let mut hashes = vec![codes::recovery_hash(None, user_id, &code)];
                if let Some(key) = self.key() {
                    hashes.push(codes::recovery_hash(Some(key), user_id, &code));
                }
                Ok(if self.store.use_recovery(user_id, &hashes).await? {
                    CodeCheck::Recovery
                } else {
                    CodeCheck::Wrong
                })
            }
            None => Ok(CodeCheck::Wrong),
        }
    }

    /// Removes the user's factor and recovery codes (turned off, or reset
    /// by an operator); true when one was on.
    pub(crate) async fn remove(&self, user_id: &str) -> Result<bool, StoreError> {
        self.store.remove(user_id).await
    }

    /// A pending sign-in for `identity` going on to `next`, and its cookie
    /// value.
    pub(crate) fn issue_pending(
        &self,
        identity: &Identity,
        next: &str,
        method: AuthMethod,
    ) -> Result<(Pending, String), AuthError> {
        let mut pending = Pending::new(identity, next, SystemTime::now());
        pending.sso = method == AuthMethod::Sso;
        let value = pending.seal(&self.csrf)?;
        Ok((pending, value))
    }

    /// The pending sign-in a cookie value carries, if valid and unexpired.
    pub(crate) fn read_pending(&self, value: &str) -> Result<Option<Pending>, AuthError> {
        Pending::open(&self.csrf, value, SystemTime::now())
    }

    /// Spends a pending sign-in as it completes; false when it was spent
    /// before (here or on another instance).
    pub(crate) async fn spend_pending(&self, pending: &Pending) -> Result<bool, StoreError> {
        self.replay
            .first_use(PENDING_ISSUER, &pending.id, pending.expires_at())
            .await
    }

    /// The CSRF token of a second-factor form, bound to what authorizes
    /// it: the pending sign-in's id or the session's token hash.
    pub(crate) fn form_token(&self, bound_to: &[u8]) -> Result<String, AuthError> {
        self.csrf.bound_token(b"mfa-form", bound_to)
    }

    pub(crate) fn check_form_token(&self, bound_to: &[u8], token: &str) -> Result<bool, AuthError> {
        self.csrf.check_bound(b"mfa-form", bound_to, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::{MemoryFactorStore, MemoryReplayStore};

    fn mfa(key: Option<[u8; 32]>) -> Mfa {
        Mfa::new(
            Arc::new(MemoryFactorStore::default()),
            Arc::new(MemoryReplayStore::default()),
            Arc::new(Csrf::random()),
            MfaConfig {
                required_roles: vec!["admin".into()],
                issuer: "portcullis".into(),
                secret_key: key,
            },
        )
    }

    fn ana() -> Identity {
        Identity {
            id: "7".into(),
            username: "ana".into(),
            email: String::new(),
            roles: vec!["patient".into()],
        }
    }

    /// The current code of the secret in an `otpauth://` URI.
    fn current_code(uri: &str) -> String {
        let secret = uri
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let bytes = totp_rs::Secret::Encoded(secret.into()).to_bytes().unwrap();
        let totp = totp_rs::TOTP::new_unchecked(
            totp_rs::Algorithm::SHA1,
            6,
            1,
            30,
            bytes,
            None,
            String::new(),
        );
        totp.generate(now_unix())
    }

    #[tokio::test]
    async fn enrolment_then_each_step_and_recovery_code_once() {
        let mfa = mfa(Some([3; 32]));
        let Enrolment::Pending { uri, .. } = mfa.enrolment(&ana()).await.unwrap() else {
            panic!("not pending")
        };
        let Enrolment::Pending { uri: again, .. } = mfa.enrolment(&ana()).await.unwrap() else {
            panic!("not pending")
        };
        assert_eq!(uri, again, "a reload shows the same secret");
        assert_eq!(mfa.second_step(&ana()).await.unwrap(), SecondStep::None);
        let code = current_code(&uri);
        let recovery = mfa.confirm(&ana(), &code).await.unwrap().unwrap();
        assert_eq!(recovery.len(), 10);
        assert_eq!(mfa.second_step(&ana()).await.unwrap(), SecondStep::Code);
        assert_eq!(
            mfa.check("7", &code).await.unwrap(),
            CodeCheck::Wrong,
            "the enrolment code's step is used"
        );
        assert_eq!(
            mfa.check("7", &recovery[0]).await.unwrap(),
            CodeCheck::Recovery
        );
        assert_eq!(
            mfa.check("7", &recovery[0]).await.unwrap(),
            CodeCheck::Wrong
        );
        assert!(matches!(
            mfa.enrolment(&ana()).await.unwrap(),
            Enrolment::Enabled { recovery_left: 9 }
        ));
        assert!(mfa.remove("7").await.unwrap());
        assert!(!mfa.enabled("7").await.unwrap());
    }

    #[tokio::test]
    async fn required_roles_ask_for_enrolment() {
        let mfa = mfa(None);
        let mut admin = ana();
        admin.roles.push("admin".into());
        assert_eq!(mfa.second_step(&admin).await.unwrap(), SecondStep::Enrol);
        assert!(mfa.required(&admin) && !mfa.required(&ana()));
    }

    #[tokio::test]
    async fn a_pending_sign_in_is_spent_once() {
        let mfa = mfa(None);
        let (pending, value) = mfa
            .issue_pending(&ana(), "/chat/", AuthMethod::Password)
            .unwrap();
        assert_eq!(mfa.read_pending(&value).unwrap(), Some(pending.clone()));
        assert!(mfa.spend_pending(&pending).await.unwrap());
        assert!(!mfa.spend_pending(&pending).await.unwrap());
    }
}
