//! Storage behind traits, so the request path never knows which backend it
//! talks to: [`SessionStore`] (server-side sessions) and [`CredentialStore`]
//! (users and password hashes). `memory` and `file` are the embedded
//! defaults; the PostgreSQL and MySQL backends implement the same traits.

pub mod file;
pub mod memory;

use std::time::SystemTime;

use async_trait::async_trait;
use thiserror::Error;

/// Who a user is, as injected into upstream headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
}

/// A user as the credential backend holds it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub identity: Identity,
    pub password_hash: String,
    pub active: bool,
}

/// SHA-256 of a session token: the only form in which a token is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to correlate in logs; the hash is not a secret,
        // but keeping logs short keeps them readable.
        write!(f, "TokenHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// How a session was established, reported by `/auth/me`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    Sso,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Sso => "sso",
        }
    }
}

/// A live server-side session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub token_hash: TokenHash,
    pub identity: Identity,
    pub auth_method: AuthMethod,
    pub created_at: SystemTime,
    pub last_seen: SystemTime,
    /// Absolute end of the session, whatever the activity.
    pub expires_at: SystemTime,
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend did not answer or failed; requests get a 503.
    #[error("{backend} unavailable: {message}")]
    Unavailable {
        backend: &'static str,
        message: String,
    },
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session. With `max_per_user > 0`, the user's oldest
    /// sessions are revoked so at most that many remain.
    async fn insert(&self, session: SessionRecord, max_per_user: u32) -> Result<(), StoreError>;
    async fn get(&self, token_hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError>;
    /// Records activity for the idle timeout.
    async fn touch(&self, token_hash: &TokenHash, at: SystemTime) -> Result<(), StoreError>;
    /// Returns whether a session was removed.
    async fn remove(&self, token_hash: &TokenHash) -> Result<bool, StoreError>;
    /// Revokes every session of a user id; returns how many.
    async fn remove_user(&self, user_id: &str) -> Result<u64, StoreError>;
    async fn list_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError>;
    /// Answers when the backend is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Finds a user by the name typed at login (username or email).
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Finds a user by id, for the periodic re-check of live sessions.
    async fn find_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}
