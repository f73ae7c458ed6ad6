//! In-process session store and lockout/rate counters: the embedded
//! defaults for a single instance. Nothing survives a restart and nothing is
//! shared; use the PostgreSQL store for that.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;

use super::{Identity, SessionRecord, SessionStore, StoreError, ThrottleStore, TokenHash};
use crate::config::Rate;

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

    async fn remove_all(&self) -> Result<u64, StoreError> {
        let mut sessions = self.lock();
        let n = sessions.len() as u64;
        sessions.clear();
        Ok(n)
    }

    async fn update_identity(
        &self,
        token_hash: &TokenHash,
        identity: &Identity,
        checked_at: SystemTime,
    ) -> Result<(), StoreError> {
        if let Some(s) = self.lock().get_mut(token_hash) {
            s.identity = identity.clone();
            s.checked_at = checked_at;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// In-process lockout and login-rate counters (single instance).
#[derive(Default)]
pub struct MemoryThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    /// client address -> (window start, attempts in it)
    rate: HashMap<IpAddr, (Instant, u32)>,
    /// account -> (failures, last failure, locked until)
    failures: HashMap<String, (u32, SystemTime, Option<SystemTime>)>,
}

impl MemoryThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ThrottleStore for MemoryThrottle {
    async fn login_attempt(&self, ip: IpAddr, rate: Rate) -> Result<Option<Duration>, StoreError> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.rate.len() > 100_000 {
            state
                .rate
                .retain(|_, (start, _)| now.duration_since(*start) < rate.per);
        }
        let entry = state.rate.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= rate.per {
            *entry = (now, 0);
        }
        entry.1 += 1;
        Ok((entry.1 > rate.count).then(|| {
            rate.per
                .saturating_sub(now.duration_since(entry.0))
                .max(Duration::from_secs(1))
        }))
    }

    async fn locked_until(&self, account: &str) -> Result<Option<SystemTime>, StoreError> {
        let now = SystemTime::now();
        Ok(self
            .lock()
            .failures
            .get(account)
            .and_then(|(_, _, until)| *until)
            .filter(|until| *until > now))
    }

    async fn record_failure(
        &self,
        account: &str,
        max_failures: u32,
        lockout: Duration,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let mut state = self.lock();
        let entry = state
            .failures
            .entry(account.to_string())
            .or_insert((0, now, None));
        if entry.1 + lockout < now {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now;
        if entry.0 >= max_failures {
            entry.0 = 0;
            entry.2 = Some(now + lockout);
            return Ok(true);
        }
        Ok(false)
    }

    async fn clear_failures(&self, account: &str) -> Result<(), StoreError> {
        self.lock().failures.remove(account);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuthMethod;

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
            checked_at: at,
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

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[tokio::test]
    async fn rate_limit_answers_with_a_wait_once_over() {
        let t = MemoryThrottle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let rate = Rate {
            count: 2,
            per: Duration::from_secs(60),
        };
        assert!(t.login_attempt(ip, rate).await.unwrap().is_none());
        assert!(t.login_attempt(ip, rate).await.unwrap().is_none());
        let wait = t.login_attempt(ip, rate).await.unwrap().unwrap();
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(1));
        assert!(t
            .login_attempt([10, 0, 0, 2].into(), rate)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn max_failures_lock_the_account_until_cleared_or_expired() {
        let t = MemoryThrottle::default();
        let lockout = Duration::from_secs(600);
        assert!(!t.record_failure("1", 3, lockout).await.unwrap());
        assert!(!t.record_failure("1", 3, lockout).await.unwrap());
        assert!(t.locked_until("1").await.unwrap().is_none());
        assert!(t.record_failure("1", 3, lockout).await.unwrap());
        assert!(t.locked_until("1").await.unwrap().is_some());
        assert!(t.locked_until("2").await.unwrap().is_none());
        t.clear_failures("1").await.unwrap();
        assert!(t.locked_until("1").await.unwrap().is_none());
    }
}
