//! In-process session store: the embedded default for a single instance.
//! Sessions do not survive a restart; use the PostgreSQL store for that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{SessionRecord, SessionStore, StoreError, TokenHash};

#[derive(Default)]
pub struct MemorySessionStore {
    sessions: Mutex<HashMap<TokenHash, SessionRecord>>,
}

impl MemorySessionStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops sessions past their absolute expiry or idle for longer than
    /// `idle_timeout`; called periodically so memory stays bounded.
    pub fn purge_expired(&self, now: SystemTime, idle_timeout: Duration) -> usize {
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, s| s.expires_at > now && s.last_seen + idle_timeout > now);
        before - sessions.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, SessionRecord>> {
        // A panic while holding the lock cannot leave a half-written map
        // (every operation is a single insert/remove), so poisoning is ignored.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn insert(&self, session: SessionRecord, max_per_user: u32) -> Result<(), StoreError> {
        let mut sessions = self.lock();
        if max_per_user > 0 {
            let mut mine: Vec<(SystemTime, TokenHash)> = sessions
                .values()
                .filter(|s| s.identity.id == session.identity.id)
                .map(|s| (s.created_at, s.token_hash))
                .collect();
            mine.sort_by_key(|(created, _)| *created);
            let excess = (mine.len() + 1).saturating_sub(max_per_user as usize);
            for (_, hash) in mine.into_iter().take(excess) {
                sessions.remove(&hash);
            }
        }
        sessions.insert(session.token_hash, session);
        Ok(())
    }

    async fn get(&self, token_hash: &TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock().get(token_hash).cloned())
    }

    async fn touch(&self, token_hash: &TokenHash, at: SystemTime) -> Result<(), StoreError> {
        if let Some(s) = self.lock().get_mut(token_hash) {
            s.last_seen = s.last_seen.max(at);
        }
        Ok(())
    }

    async fn remove(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        Ok(self.lock().remove(token_hash).is_some())
    }

    async fn remove_user(&self, user_id: &str) -> Result<u64, StoreError> {
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, s| s.identity.id != user_id);
        Ok((before - sessions.len()) as u64)
    }

    async fn list_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let mut list: Vec<SessionRecord> = self
            .lock()
            .values()
            .filter(|s| s.identity.id == user_id)
            .cloned()
            .collect();
        list.sort_by_key(|s| s.created_at);
        Ok(list)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuthMethod, Identity};

    fn session(n: u8, user: &str, created: u64) -> SessionRecord {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(created);
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
        }
    }

    #[tokio::test]
    async fn max_per_user_revokes_the_oldest() {
        let store = MemorySessionStore::new();
        store.insert(session(1, "u", 10), 2).await.unwrap();
        store.insert(session(2, "u", 20), 2).await.unwrap();
        store.insert(session(3, "other", 5), 2).await.unwrap();
        store.insert(session(4, "u", 30), 2).await.unwrap();
        assert!(store.get(&TokenHash([1; 32])).await.unwrap().is_none());
        assert!(store.get(&TokenHash([2; 32])).await.unwrap().is_some());
        assert!(store.get(&TokenHash([3; 32])).await.unwrap().is_some());
        assert_eq!(store.list_user("u").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn purge_drops_idle_and_expired_sessions() {
        let store = MemorySessionStore::new();
        store.insert(session(1, "u", 0), 0).await.unwrap();
        store.insert(session(2, "u", 1000), 0).await.unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1100);
        assert_eq!(store.purge_expired(now, Duration::from_secs(500)), 1);
        assert!(store.get(&TokenHash([2; 32])).await.unwrap().is_some());
    }
}
