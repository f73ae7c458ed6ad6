//! Storage behind traits, so the request path never knows which backend it
//! talks to: [`SessionStore`] (server-side sessions), [`CredentialStore`]
//! (users and password hashes), [`ThrottleStore`] (lockout and login
//! rate), [`RefreshStore`], [`ReplayStore`], [`AccountTokenStore`] (mailed
//! reset and verification links), [`FactorStore`] (second factors) and
//! [`AuditSink`]. `sqlite`
//! (one file, the default) and `postgres` (several instances) hold the same
//! tables from one versioned schema, behind the same session cache
//! (`session_cache`) and audit queue (`audit`); `memory` is for throwaway
//! runs. Users come from `file` or `mysql`. `wiring` ([`Stores`]) is the one
//! place that picks a backend per trait from the config and runs the
//! start-up work; the operator commands get theirs there too
//! ([`OperatorStores`]). Nothing here depends on `auth`.

mod audit;
mod factors;
mod file;
mod links;
pub(crate) mod memory;
mod mysql;
pub(crate) mod password_hash;
mod postgres;
mod revoked;
mod session_cache;
mod sqlite;
mod wiring;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use thiserror::Error;

pub use factors::{FactorRecord, FactorStore};
pub use links::{AccountToken, AccountTokenStore, LinkPurpose};
pub(crate) use wiring::{migrate, FactorOperatorStores, OperatorStores, Started, Stores};

/// Who a user is, as injected into upstream headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) email: String,
    pub(crate) roles: Vec<String>,
}

/// A user as the credential backend holds it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub(crate) identity: Identity,
    pub(crate) password_hash: String,
    pub(crate) active: bool,
}

/// SHA-256 of a session token: the only form in which a token is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to correlate in logs; the hash is not a secret,
        // but keeping logs short keeps them readable.
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// How a session was established, reported by `/auth/me`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    Sso,
}

impl AuthMethod {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Sso => "sso",
        }
    }
}

/// A live server-side session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub(crate) token_hash: TokenHash,
    pub(crate) identity: Identity,
    pub(crate) auth_method: AuthMethod,
    pub(crate) created_at: SystemTime,
    pub(crate) last_seen: SystemTime,
    /// Absolute end of the session, whatever the activity.
    pub(crate) expires_at: SystemTime,
    /// Last time the user was re-read from the credential backend.
    pub(crate) checked_at: SystemTime,
    /// Names the session on the account page and to the app
    /// (`X-Auth-Session`): random, so it reveals nothing of the token, and
    /// stable for the life of the sign-in.
    pub(crate) public_id: String,
    /// Where the sign-in came from, for the user's own list of sessions.
    pub(crate) client_ip: Option<IpAddr>,
    /// The browser's `User-Agent` at sign-in (bounded, control characters
    /// dropped), for the same list.
    pub(crate) user_agent: String,
}

#[derive(Debug, Clone, Error)]
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
    /// Revokes every session of a username (operators know names, not
    /// ids); returns how many.
    async fn remove_username(&self, username: &str) -> Result<u64, StoreError>;
    /// The sessions of a username, oldest first.
    async fn list_username(&self, username: &str) -> Result<Vec<SessionRecord>, StoreError>;
    /// Ends the session of `username` with this public id (a user ending
    /// one of their own sessions); false when they have none by that id.
    async fn remove_public(&self, username: &str, public_id: &str) -> Result<bool, StoreError>;
    /// Ends every session of `username` but `keep` ("sign out other
    /// devices", a password change); returns how many.
    async fn remove_others(&self, username: &str, keep: &TokenHash) -> Result<u64, StoreError>;
    /// Revokes every session; returns how many.
    async fn remove_all(&self) -> Result<u64, StoreError>;
    /// Stores the identity found by a credential re-check, and when.
    async fn update_identity(
        &self,
        token_hash: &TokenHash,
        identity: &Identity,
        checked_at: SystemTime,
    ) -> Result<(), StoreError>;
    /// Answers when the backend is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Finds a user by the name typed at login (username or email).
    async fn find_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Re-reads a signed-in user for the periodic re-check of live
    /// sessions; `None` when the user no longer exists.
    async fn find_current(&self, identity: &Identity) -> Result<Option<UserRecord>, StoreError>;
    /// Whether outdated hashes can be rewritten (`rehash_update` is set).
    fn can_rehash(&self) -> bool {
        false
    }
    /// Inserts a new user with `statement` (`registration.insert`, `?` bound
    /// to username, email, hash); false when the name or email is taken.
    async fn insert_user(
        &self,
        _statement: &str,
        _username: &str,
        _email: &str,
        _password_hash: &str,
    ) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable {
            backend: "credentials",
            message: "this credential backend cannot add users".into(),
        })
    }
    /// Rewrites a user's password hash after a login with an outdated one.
    async fn update_hash(&self, _user_id: &str, _hash: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether users' passwords can be set (`password_update` is set):
    /// password change and reset exist only then.
    fn can_set_password(&self) -> bool {
        false
    }
    /// Writes a new password hash for a user (password change and reset),
    /// with `credentials.mysql.password_update`.
    async fn set_password_hash(&self, _user_id: &str, _hash: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable {
            backend: "credentials",
            message: "credentials.mysql.password_update is not configured".into(),
        })
    }
    /// Activates a user whose address was verified with `statement`
    /// (`registration.activate`, `?` bound to the user id).
    async fn activate_user(&self, _statement: &str, _user_id: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable {
            backend: "credentials",
            message: "this credential backend cannot activate users".into(),
        })
    }
    /// Runs after each successful sign-in (`login_update`, `?` bound to the
    /// user id), so the app's own columns (`last_login`) stay true; a no-op
    /// where nothing is configured.
    async fn record_login(&self, _user_id: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn ping(&self) -> Result<(), StoreError>;
    /// Re-reads what the backend loaded at start (the users file) on SIGHUP;
    /// on error the old data stays in use.
    fn reload(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Lockout and per-IP login rate state.
///
/// An attempt is counted before its password is checked, so parallel
/// guesses cannot all slip past the limit while the first ones are hashing.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Counts a login attempt from `client` (a `/64` for IPv6); `Some(wait)`
    /// when it is over `rate`.
    async fn login_attempt(
        &self,
        client: &str,
        rate: crate::config::Rate,
    ) -> Result<Option<Duration>, StoreError>;
    /// Counts an attempt on `account`. Failures older than `lockout` are
    /// forgotten first.
    async fn begin_attempt(
        &self,
        account: &str,
        max_failures: u32,
        lockout: Duration,
    ) -> Result<Gate, StoreError>;
    /// Locks `account` for `lockout` (its `max_failures`-th attempt failed).
    async fn lock(&self, account: &str, lockout: Duration) -> Result<(), StoreError>;
    /// Forgets the failures of `account` (a successful login).
    async fn clear_failures(&self, account: &str) -> Result<(), StoreError>;
    /// Uncounts one attempt on `account` that turned out right without
    /// completing a sign-in (a correct password before its second factor):
    /// earlier failures stay, and a lock in force is left alone.
    async fn release_attempt(&self, account: &str) -> Result<(), StoreError>;
}

/// Whether a login attempt on an account may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The `attempt`-th attempt within the failure window.
    Allowed { attempt: u32 },
    /// Locked, or already at `max_failures` attempts.
    Refused,
}

/// A refresh token as stored; the key is its SHA-256.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    /// Every token minted by refreshing shares its first token's family, so
    /// a replayed token can revoke them all.
    pub(crate) family: String,
    pub(crate) identity: Identity,
    pub(crate) expires_at: SystemTime,
}

/// What spending a refresh token found (times on the store's own clock).
#[derive(Debug)]
pub enum Spend {
    Unknown,
    /// Its first use.
    Fresh(RefreshRecord),
    /// Used before, but within the grace period of its first use, with the
    /// successor pair that use was answered with once it is stored (sealed,
    /// see `auth::tokens`).
    InGrace {
        record: RefreshRecord,
        successor: Option<Vec<u8>>,
    },
    /// Used before, longer ago than the grace period: a replay.
    Reused {
        family: String,
    },
}

/// A spent refresh token presented again within this long of its first use
/// is honoured (concurrent refreshes), after that it revokes its family; the
/// stores keep the successor pair of a spent token for this long.
pub(crate) const REUSE_GRACE: Duration = Duration::from_secs(10);

/// Refresh tokens for API clients (rotation with reuse detection), and the
/// revoked families every bearer request is checked against.
#[async_trait]
pub trait RefreshStore: Send + Sync {
    /// Stores a new token; false (nothing stored) when its family has been
    /// revoked meanwhile, so a rotation racing a revocation cannot survive it.
    async fn insert(
        &self,
        token_hash: &TokenHash,
        record: &RefreshRecord,
    ) -> Result<bool, StoreError>;
    /// Marks a token spent (on its first use only) and says what it was.
    async fn spend(&self, token_hash: &TokenHash, grace: Duration) -> Result<Spend, StoreError>;
    /// Makes a freshly spent token unspent again (its rotation failed on the
    /// way, and the client will retry).
    async fn unspend(&self, token_hash: &TokenHash) -> Result<(), StoreError>;
    /// Keeps the sealed successor pair of a spent token for the rest of its
    /// grace period (then it is wiped), for a concurrent use to be given.
    async fn set_successor(&self, token_hash: &TokenHash, sealed: &[u8]) -> Result<(), StoreError>;
    /// Deletes every token of a family and refuses new ones, and makes every
    /// instance refuse the family's access tokens; returns how many tokens.
    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError>;
    /// [`RefreshStore::revoke_family`] for every family of a username
    /// (operators know names, not ids); returns how many families.
    async fn revoke_username(&self, username: &str) -> Result<u64, StoreError>;
    /// [`RefreshStore::revoke_family`] for every family; returns how many.
    async fn revoke_all(&self) -> Result<u64, StoreError>;
    /// Whether the family was revoked, from memory (the bearer hot path).
    fn family_revoked(&self, family: &str) -> bool;
    /// Whether [`RefreshStore::family_revoked`] can be trusted: false until
    /// a shared store has loaded the revoked families, and again once its
    /// notices have been missing for longer than `session.cache_ttl`.
    fn revocations_current(&self) -> bool {
        true
    }
}

/// Single use of SSO hand-off tokens, keyed on (`iss`, `jti`).
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Records the token until `expires_at`; false when it was used before.
    async fn first_use(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError>;
}

/// A security event for the audit trail (the log line is written anyway).
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub(crate) event: &'static str,
    pub(crate) user: String,
    pub(crate) client_ip: IpAddr,
    pub(crate) request_id: String,
}

/// Where audit events are kept beyond the log: `audit_events` in SQLite or
/// PostgreSQL.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Queues an event; never blocks the request.
    fn record(&self, event: AuditEvent);
    /// Writes an operator's action (a CLI command, client address `cli`)
    /// at once: the command exits right after and must say if it failed.
    async fn record_operator(&self, event: &'static str, user: &str) -> Result<(), StoreError>;
}

/// 32 bytes from the OS CSPRNG (keys made at start).
pub(crate) fn random_key() -> [u8; 32] {
    use rand::RngCore as _;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// The in-memory store: the log line is the whole audit trail.
pub(crate) struct LogOnlyAudit;

#[async_trait]
impl AuditSink for LogOnlyAudit {
    fn record(&self, _event: AuditEvent) {}

    async fn record_operator(&self, _event: &'static str, _user: &str) -> Result<(), StoreError> {
        Ok(())
    }
}
