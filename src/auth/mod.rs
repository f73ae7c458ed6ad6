//! Authentication: password checks, sessions and their cookies, CSRF, and
//! portcullis' own endpoints under `login.prefix` (sign-in, sign-out, `me`).

pub mod cookies;
pub mod csrf;
mod endpoints;
pub mod password;
pub mod session;

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

pub use endpoints::{handle, login_url, unauthenticated_json};

use crate::store::{CredentialStore, Identity, SessionRecord, StoreError};
use cookies::CookieSettings;
use csrf::Csrf;
use password::PasswordVerifier;
use session::Sessions;

/// Longest username or password considered; longer input fails like a wrong
/// password (after the same dummy hash), never with a different answer.
const MAX_USERNAME_BYTES: usize = 256;
const MAX_PASSWORD_BYTES: usize = 1024;

pub struct Auth {
    pub sessions: Sessions,
    pub credentials: Arc<dyn CredentialStore>,
    pub verifier: PasswordVerifier,
    pub csrf: Csrf,
    pub cookies: CookieSettings,
}

impl Auth {
    /// The live session named by the request's cookie, if any.
    pub async fn session_of(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<SessionRecord>, StoreError> {
        for token in self.cookies.session_tokens(headers) {
            if let Some(session) = self.sessions.lookup(&token).await? {
                return Ok(Some(session));
            }
        }
        Ok(None)
    }

    /// Checks a username (or email) and password. Unknown users, wrong
    /// passwords and inactive accounts all return `None` after the same work.
    pub async fn check_password(
        &self,
        login: &str,
        password: &str,
    ) -> Result<Option<Identity>, StoreError> {
        let plausible = !login.is_empty()
            && login.len() <= MAX_USERNAME_BYTES
            && password.len() <= MAX_PASSWORD_BYTES;
        let user = if plausible {
            self.credentials.find_by_login(login).await?
        } else {
            None
        };
        let ok = self
            .verifier
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await;
        Ok(match user {
            Some(u) if ok && u.active => Some(u.identity),
            _ => None,
        })
    }
}

/// A security event, logged with who, from where and which request. Never
/// carries a password or token.
pub fn audit(event: &'static str, user: &str, client_ip: IpAddr, request_id: &str) {
    tracing::info!(target: "portcullis::audit", event, user, client_ip = %client_ip, request_id, "security event");
}
