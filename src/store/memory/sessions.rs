//! In-process sessions, in a moka cache that drops each session when it
//! expires.

use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use moka::Expiry;

use crate::store::{Identity, SessionRecord, SessionStore, StoreError, TokenHash};

/// In-process sessions (single instance), in a cache whose entries expire
/// on their own ([`SessionExpiry`]), so memory stays bounded without a
/// sweeper: moka drops expired entries as later operations run.
///
/// Every change to a stored session goes through moka's per-key compute,
/// which runs one at a time per key, so a `touch` racing a `remove` cannot
/// bring a revoked session back.
pub(crate) struct MemorySessionStore {
    sessions: Cache<TokenHash, SessionRecord>,
    /// Serialises inserts, so two sign-ins of one user at once cannot both
    /// slip under `session.max_per_user`.
    inserting: tokio::sync::Mutex<()>,
}

/// When a stored session is dropped: at the earlier of its absolute expiry
/// and `session.idle_timeout` after its last activity, recomputed on every
/// write (a `touch` moves `last_seen`, so activity keeps a session). Reads
/// leave it alone. `auth::session::Sessions` checks both timeouts on every
/// lookup anyway; this only bounds memory.
struct SessionExpiry {
    idle_timeout: Duration,
}

impl SessionExpiry {
    /// How long `session` has left at `now`; zero once past either timeout.
    fn time_left(&self, session: &SessionRecord, now: SystemTime) -> Duration {
        session
            .expires_at
            .min(session.last_seen + self.idle_timeout)
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }
}

impl Expiry<TokenHash, SessionRecord> for SessionExpiry {
    fn expire_after_create(
        &self,
        _key: &TokenHash,
        session: &SessionRecord,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(self.time_left(session, SystemTime::now()))
    }

    fn expire_after_update(
        &self,
        _key: &TokenHash,
        session: &SessionRecord,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.time_left(session, SystemTime::now()))
    }
}

impl MemorySessionStore {
    /// `idle_timeout`: `session.idle_timeout`, after which an untouched
    /// session is dropped.
    pub(crate) fn new(idle_timeout: Duration) -> Self {
        Self {
            sessions: Cache::builder()
                .expire_after(SessionExpiry { idle_timeout })
                .build(),
            inserting: tokio::sync::Mutex::new(()),
        }
    }

    /// Applies `change` to a stored session, if there is one.
    async fn update(&self, token_hash: &TokenHash, change: impl FnOnce(&mut SessionRecord)) {
        self.sessions
            .entry(*token_hash)
            .and_compute_with(|entry| {
                std::future::ready(match entry {
                    Some(entry) => {
                        let mut session = entry.into_value();
                        change(&mut session);
                        Op::Put(session)
                    }
                    None => Op::Nop,
                })
            })
            .await;
    }

    /// Removes the sessions `matching` selects; returns how many.
    async fn remove_where(&self, matching: impl Fn(&SessionRecord) -> bool) -> u64 {
        let hashes: Vec<TokenHash> = self
            .sessions
            .iter()
            .filter(|(_, s)| matching(s))
            .map(|(hash, _)| *hash)
            .collect();
        let mut removed = 0;
        for hash in hashes {
            if self.remove(&hash).await.unwrap_or(false) {
                removed += 1;
            }
        }
        removed
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn insert(&self, session: SessionRecord, max_per_user: u32) -> Result<(), StoreError> {
        let _inserting = self.inserting.lock().await;
        if max_per_user > 0 {
            let mut mine: Vec<(SystemTime, TokenHash)> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.identity.id == session.identity.id)
                .map(|(_, s)| (s.created_at, s.token_hash))
                .collect();
            mine.sort_by_key(|(created, _)| *created);
            let excess = (mine.len() + 1).saturating_sub(max_per_user as usize);
            for (_, hash) in mine.into_iter().take(excess) {
                self.remove(&hash).await?;
            }
        }
        self.sessions.insert(session.token_hash, session).await;
        Ok(())
    }

    async fn get(&self, token_hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.sessions.get(token_hash).await)
    }

    async fn touch(&self, token_hash: &TokenHash, at: SystemTime) -> Result<(), StoreError> {
        self.update(token_hash, |s| s.last_seen = s.last_seen.max(at))
            .await;
        Ok(())
    }

    async fn remove(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        let removed = self
            .sessions
            .entry(*token_hash)
            .and_compute_with(|_| std::future::ready(Op::Remove))
            .await;
        Ok(matches!(removed, CompResult::Removed(_)))
    }

    async fn remove_username(&self, username: &str) -> Result<u64, StoreError> {
        Ok(self.remove_where(|s| s.identity.username == username).await)
    }

    async fn remove_public(&self, username: &str, public_id: &str) -> Result<bool, StoreError> {
        let removed = self
            .remove_where(|s| s.identity.username == username && s.public_id == public_id)
            .await;
        Ok(removed > 0)
    }

    async fn remove_others(&self, username: &str, keep: &TokenHash) -> Result<u64, StoreError> {
        Ok(self
            .remove_where(|s| s.identity.username == username && s.token_hash != *keep)
            .await)
    }

    async fn list_username(&self, username: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let mut list: Vec<SessionRecord> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.identity.username == username)
            .map(|(_, s)| s)
            .collect();
        list.sort_by_key(|s| s.created_at);
        Ok(list)
    }

    async fn remove_all(&self) -> Result<u64, StoreError> {
        Ok(self.remove_where(|_| true).await)
    }

    async fn update_identity(
        &self,
        token_hash: &TokenHash,
        identity: &Identity,
        checked_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.update(token_hash, |s| {
            s.identity = identity.clone();
            s.checked_at = checked_at;
        })
        .await;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuthMethod;

    /// A session created `created` seconds after `base`, valid for an hour.
    fn session_at(base: SystemTime, n: u8, user: &str, created: u64) -> SessionRecord {
        let at = base + Duration::from_secs(created);
        SessionRecord {
            token_hash: TokenHash([n; 32]),
            identity: Identity {
                id: user.into(),
                username: user.into(),
                email: format!("{user}@example.com"),
                roles: vec![],
            },
            auth_method: AuthMethod::Password,
            created_at: at,
            last_seen: at,
            expires_at: at + Duration::from_secs(3600),
            checked_at: at,
            public_id: format!("public-{n}"),
            client_ip: None,
            user_agent: String::new(),
        }
    }

    /// [`session_at`] from now, so the store keeps it.
    fn session(n: u8, user: &str, created: u64) -> SessionRecord {
        session_at(SystemTime::now(), n, user, created)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn max_per_user_revokes_the_oldest() {
        let store = MemorySessionStore::new(HOUR);
        store.insert(session(1, "u", 10), 2).await.unwrap();
        store.insert(session(2, "u", 20), 2).await.unwrap();
        store.insert(session(3, "other", 5), 2).await.unwrap();
        store.insert(session(4, "u", 30), 2).await.unwrap();
        assert!(store.get(&TokenHash([1; 32])).await.unwrap().is_none());
        assert!(store.get(&TokenHash([2; 32])).await.unwrap().is_some());
        assert!(store.get(&TokenHash([3; 32])).await.unwrap().is_some());
        assert_eq!(store.list_username("u").await.unwrap().len(), 2);
    }

    #[test]
    fn idle_and_expired_sessions_have_no_time_left() {
        let expiry = SessionExpiry {
            idle_timeout: Duration::from_secs(500),
        };
        let idle = session_at(SystemTime::UNIX_EPOCH, 1, "u", 0);
        let active = session_at(SystemTime::UNIX_EPOCH, 2, "u", 1000);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1100);
        assert_eq!(expiry.time_left(&idle, now), Duration::ZERO);
        assert_eq!(expiry.time_left(&active, now), Duration::from_secs(400));
        // The absolute expiry wins over the idle timeout.
        let late = SystemTime::UNIX_EPOCH + Duration::from_secs(4500);
        let mut touched = active.clone();
        touched.last_seen = late;
        assert_eq!(expiry.time_left(&touched, late), Duration::from_secs(100));
    }

    /// Regression guard: a session kept alive by activity must not be
    /// dropped at its first idle deadline; every write recomputes the
    /// expiry from the record instead of keeping the one it had.
    #[test]
    fn a_write_recomputes_the_expiry() {
        let expiry = SessionExpiry {
            idle_timeout: Duration::from_secs(500),
        };
        let s = session(1, "u", 0);
        let after =
            expiry.expire_after_update(&s.token_hash, &s, Instant::now(), Some(Duration::ZERO));
        assert_ne!(after, Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn expired_sessions_are_gone_from_the_store() {
        let store = MemorySessionStore::new(Duration::from_secs(500));
        let idle = session_at(SystemTime::now() - Duration::from_secs(600), 1, "u", 0);
        store.insert(idle, 0).await.unwrap();
        store.insert(session(2, "u", 0), 0).await.unwrap();
        assert!(store.get(&TokenHash([1; 32])).await.unwrap().is_none());
        assert!(store.get(&TokenHash([2; 32])).await.unwrap().is_some());
        assert_eq!(store.list_username("u").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn touch_records_the_latest_activity_and_remove_is_final() {
        let store = MemorySessionStore::new(HOUR);
        let s = session(1, "u", 0);
        store.insert(s.clone(), 0).await.unwrap();
        let later = s.last_seen + Duration::from_secs(60);
        store.touch(&s.token_hash, later).await.unwrap();
        store.touch(&s.token_hash, s.last_seen).await.unwrap();
        let got = store.get(&s.token_hash).await.unwrap().unwrap();
        assert_eq!(got.last_seen, later);
        assert!(store.remove(&s.token_hash).await.unwrap());
        store.touch(&s.token_hash, later).await.unwrap();
        assert!(store.get(&s.token_hash).await.unwrap().is_none());
        assert!(!store.remove(&s.token_hash).await.unwrap());
    }

    #[tokio::test]
    async fn revoking_a_username_or_everyone_counts_what_it_removed() {
        let store = MemorySessionStore::new(HOUR);
        store.insert(session(1, "u", 0), 0).await.unwrap();
        store.insert(session(2, "u", 1), 0).await.unwrap();
        store.insert(session(3, "other", 2), 0).await.unwrap();
        assert_eq!(store.remove_username("u").await.unwrap(), 2);
        assert_eq!(store.remove_all().await.unwrap(), 1);
        assert!(store.get(&TokenHash([3; 32])).await.unwrap().is_none());
    }
}
