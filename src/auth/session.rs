//! Server-side sessions: token minting, lookup with idle and absolute
//! timeouts, and revocation, over whichever [`SessionStore`] is configured.
//!
//! A session token is 32 bytes from the OS CSPRNG, base64url-encoded for the
//! cookie; the store only ever sees its SHA-256.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::config::SessionConfig;
use crate::store::{AuthMethod, Identity, SessionRecord, SessionStore, StoreError, TokenHash};

/// Base64url length of a 32-byte token; anything else is not ours.
const TOKEN_LEN: usize = 43;

/// Mints a new session token: 32 bytes from the OS CSPRNG, base64url.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A session's public id: 16 random bytes, base64url. Unrelated to the
/// token, so showing it (account page, `X-Auth-Session`) reveals nothing.
fn new_public_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Longest `User-Agent` kept with a session (browsers send about 150 bytes).
const USER_AGENT_MAX: usize = 256;

/// Where a sign-in comes from, kept with the session so its user can tell
/// their sessions apart.
pub(crate) struct SignInFrom<'a> {
    pub(crate) ip: IpAddr,
    /// The raw `User-Agent` header, if any.
    pub(crate) user_agent: Option<&'a [u8]>,
}

/// The `User-Agent` as stored: printable ASCII only, at most
/// [`USER_AGENT_MAX`] bytes.
fn stored_user_agent(raw: Option<&[u8]>) -> String {
    raw.unwrap_or_default()
        .iter()
        .filter(|b| (0x20..0x7f).contains(*b))
        .take(USER_AGENT_MAX)
        .map(|&b| b as char)
        .collect()
}

/// The stored form of a token.
pub(crate) fn hash_token(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

pub(crate) struct Sessions {
    store: Arc<dyn SessionStore>,
    config: SessionConfig,
}

impl Sessions {
    pub(crate) fn new(store: Arc<dyn SessionStore>, config: SessionConfig) -> Self {
        Self { store, config }
    }

    pub(crate) fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Starts a session for `identity`; returns the token for the cookie.
    pub(crate) async fn create(
        &self,
        identity: Identity,
        auth_method: AuthMethod,
        from: SignInFrom<'_>,
    ) -> Result<(String, SessionRecord), StoreError> {
        let token = new_token();
        let now = SystemTime::now();
        let record = SessionRecord {
            token_hash: hash_token(&token),
            identity,
            auth_method,
            created_at: now,
            last_seen: now,
            expires_at: now + self.config.absolute_timeout,
            checked_at: now,
            public_id: new_public_id(),
            client_ip: Some(from.ip),
            user_agent: stored_user_agent(from.user_agent),
        };
        self.store
            .insert(record.clone(), self.config.max_per_user)
            .await?;
        Ok((token, record))
    }

    /// The live session for a cookie token, if any. Expired sessions are
    /// removed on sight; a live one has its activity recorded.
    pub(crate) async fn lookup(&self, token: &str) -> Result<Option<SessionRecord>, StoreError> {
        if token.len() != TOKEN_LEN {
            return Ok(None);
        }
        let hash = hash_token(token);
        let Some(record) = self.store.get(&hash).await? else {
            return Ok(None);
        };
        let now = SystemTime::now();
        if !self.is_live(&record, now) {
            self.store.remove(&hash).await?;
            return Ok(None);
        }
        self.store.touch(&hash, now).await?;
        Ok(Some(record))
    }

    /// Within both the absolute and the idle timeout at `now`.
    pub(crate) fn is_live(&self, record: &SessionRecord, now: SystemTime) -> bool {
        now < record.expires_at && now < record.last_seen + self.config.idle_timeout
    }

    /// When the session ends if nothing else happens: the earlier of the
    /// absolute expiry and the idle timeout from now.
    pub(crate) fn ends_at(&self, record: &SessionRecord) -> SystemTime {
        record
            .expires_at
            .min(SystemTime::now() + self.config.idle_timeout)
    }

    pub(crate) async fn revoke(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        self.store.remove(token_hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_random_bytes_in_base64url() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), TOKEN_LEN);
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn public_ids_are_random_and_not_tokens() {
        let a = new_public_id();
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 16);
        assert_ne!(a, new_public_id());
        assert_ne!(a.len(), TOKEN_LEN);
    }

    #[test]
    fn user_agents_are_stored_bounded_and_printable() {
        assert_eq!(stored_user_agent(None), "");
        assert_eq!(stored_user_agent(Some(b"Firefox\r\n\x01/1")), "Firefox/1");
        assert_eq!(stored_user_agent(Some(&[b'a'; 1000])).len(), USER_AGENT_MAX);
    }

    #[test]
    fn stored_hash_is_sha256_of_the_token() {
        let token = new_token();
        let expected: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        assert_eq!(hash_token(&token).0, expected);
    }
}
