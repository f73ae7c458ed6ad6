//! The pending sign-in: what a browser holds between a correct password and
//! its second factor (or its forced enrolment). Nothing is stored until it
//! is spent: the cookie carries the user, `next`, an expiry five minutes
//! out and a random id, with an HMAC under the key every instance shares
//! (the CSRF key, under a purpose of its own), so it cannot be forged or
//! moved to another user. Completing the sign-in spends the id in the
//! replay store, so each pending sign-in makes at most one session, on any
//! instance. A wrong code leaves it alone: it lasts until it expires or
//! the account locks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::auth::csrf::Csrf;
use crate::auth::AuthError;
use crate::store::{AuthMethod, Identity};

/// How long a pending sign-in lasts (the cookie's `Max-Age` too).
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(300);
const PURPOSE: &[u8] = b"mfa-pending";
/// Longest cookie value looked at; ours are a few hundred bytes.
const MAX_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    #[serde(rename = "u")]
    pub(crate) user_id: String,
    #[serde(rename = "n")]
    pub(crate) username: String,
    #[serde(rename = "e")]
    pub(crate) email: String,
    /// The validated `next` the sign-in goes on to.
    #[serde(rename = "x")]
    pub(crate) next: String,
    /// Unix seconds.
    #[serde(rename = "t")]
    pub(crate) expires: u64,
    /// Random; spent once in the replay store.
    #[serde(rename = "j")]
    pub(crate) id: String,
    /// Began with a partner's hand-off rather than a password.
    #[serde(rename = "s", default)]
    pub(crate) sso: bool,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Pending {
    pub(crate) fn new(identity: &Identity, next: &str, now: SystemTime) -> Pending {
        Pending {
            user_id: identity.id.clone(),
            username: identity.username.clone(),
            email: identity.email.clone(),
            next: next.to_string(),
            expires: unix(now + PENDING_TTL),
            id: Csrf::new_nonce(),
            sso: false,
        }
    }

    /// How the session it completes into was begun.
    pub(crate) fn method(&self) -> AuthMethod {
        if self.sso {
            AuthMethod::Sso
        } else {
            AuthMethod::Password
        }
    }

    /// Who passed the password, for re-reading them from the credential
    /// backend (roles and active state are read afresh).
    pub(crate) fn identity(&self) -> Identity {
        Identity {
            id: self.user_id.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            roles: Vec::new(),
        }
    }

    pub(crate) fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expires)
    }

    /// The cookie value: `base64url(json).base64url(hmac)`.
    pub(super) fn seal(&self, csrf: &Csrf) -> Result<String, AuthError> {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        let mac = csrf.bound_token(PURPOSE, body.as_bytes())?;
        Ok(format!("{body}.{mac}"))
    }

    /// The pending sign-in a cookie value carries, if it is ours, intact
    /// and not expired at `now` (spent ones are found out when spending).
    pub(super) fn open(
        csrf: &Csrf,
        value: &str,
        now: SystemTime,
    ) -> Result<Option<Pending>, AuthError> {
        let Some((body, mac)) = value.split_once('.').filter(|_| value.len() <= MAX_LEN) else {
            return Ok(None);
        };
        if !csrf.check_bound(PURPOSE, body.as_bytes(), mac)? {
            return Ok(None);
        }
        let pending = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|json| serde_json::from_slice::<Pending>(&json).ok());
        Ok(pending.filter(|p| p.expires > unix(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            id: "7".into(),
            username: "ana".into(),
            email: "ana@example.com".into(),
            roles: vec!["admin".into()],
        }
    }

    #[test]
    fn a_pending_sign_in_opens_until_it_expires() {
        let csrf = Csrf::random();
        let now = SystemTime::now();
        let pending = Pending::new(&identity(), "/chat/", now);
        let value = pending.seal(&csrf).unwrap();
        assert!(value.len() < 400, "{}", value.len());
        assert_eq!(
            Pending::open(&csrf, &value, now).unwrap(),
            Some(pending.clone())
        );
        let later = now + PENDING_TTL - Duration::from_secs(1);
        assert!(Pending::open(&csrf, &value, later).unwrap().is_some());
        let expired = now + PENDING_TTL + Duration::from_secs(1);
        assert_eq!(Pending::open(&csrf, &value, expired).unwrap(), None);
    }

    #[test]
    fn a_pending_sign_in_cannot_be_forged_or_altered() {
        let csrf = Csrf::random();
        let now = SystemTime::now();
        let value = Pending::new(&identity(), "/", now).seal(&csrf).unwrap();
        assert_eq!(Pending::open(&Csrf::random(), &value, now).unwrap(), None);
        let (_, mac) = value.split_once('.').unwrap();
        let mut other = Pending::new(&identity(), "/", now);
        other.user_id = "1".into();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        assert_eq!(
            Pending::open(&csrf, &format!("{body}.{mac}"), now).unwrap(),
            None
        );
        assert_eq!(Pending::open(&csrf, "garbage", now).unwrap(), None);
    }
}
