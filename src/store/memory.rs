//! In-process session store and lockout/rate counters: the embedded
//! defaults for a single instance. Nothing survives a restart and nothing is
//! shared; use the PostgreSQL store for that.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use moka::Expiry;

use super::{
    Gate, Identity, RefreshRecord, RefreshStore, ReplayStore, SessionRecord, SessionStore, Spend,
    StoreError, ThrottleStore, TokenHash,
};
use crate::config::Rate;
use crate::store::revoked::RevokedFamilies;
use crate::store::REUSE_GRACE;

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

/// In-process refresh tokens (single instance).
pub(crate) struct MemoryRefreshStore {
    state: Mutex<RefreshState>,
    revoked: RevokedFamilies,
}

#[derive(Default)]
struct RefreshState {
    tokens: HashMap<TokenHash, StoredRefresh>,
    /// Sealed successor pairs to wipe, oldest first: (when, token).
    successors: VecDeque<(SystemTime, TokenHash)>,
}

struct StoredRefresh {
    record: RefreshRecord,
    first_use: Option<SystemTime>,
    /// The sealed pair its first use was answered with, during the grace.
    successor: Option<Vec<u8>>,
}

impl MemoryRefreshStore {
    /// `window`: how long a revoked family is remembered (the longest an
    /// access token of it can still verify).
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            state: Mutex::new(RefreshState::default()),
            revoked: RevokedFamilies::local(window),
        }
    }

    /// Takes the state, wiping successor pairs whose grace has passed.
    fn lock(&self) -> std::sync::MutexGuard<'_, RefreshState> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        while let Some((at, hash)) = state.successors.front().copied() {
            if at + REUSE_GRACE > now {
                break;
            }
            state.successors.pop_front();
            if let Some(t) = state.tokens.get_mut(&hash) {
                t.successor = None;
            }
        }
        state
    }

    fn revoke_families(&self, families: &[String]) -> u64 {
        let mut state = self.lock();
        for family in families {
            self.revoked.insert(family, Duration::ZERO);
        }
        state
            .tokens
            .retain(|_, t| !families.contains(&t.record.family));
        families.len() as u64
    }
}

#[async_trait]
impl RefreshStore for MemoryRefreshStore {
    async fn insert(
        &self,
        token_hash: &TokenHash,
        record: &RefreshRecord,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let mut state = self.lock();
        if self.revoked.contains(&record.family) {
            return Ok(false);
        }
        // Expired tokens are dropped as new ones arrive, so memory stays bounded.
        if state.tokens.len() % 1024 == 1023 {
            state.tokens.retain(|_, t| t.record.expires_at > now);
        }
        state.tokens.insert(
            *token_hash,
            StoredRefresh {
                record: record.clone(),
                first_use: None,
                successor: None,
            },
        );
        Ok(true)
    }

    async fn spend(&self, token_hash: &TokenHash, grace: Duration) -> Result<Spend, StoreError> {
        let now = SystemTime::now();
        let mut state = self.lock();
        let Some(t) = state.tokens.get_mut(token_hash) else {
            return Ok(Spend::Unknown);
        };
        Ok(match t.first_use {
            None => {
                t.first_use = Some(now);
                Spend::Fresh(t.record.clone())
            }
            Some(at) if now.duration_since(at).unwrap_or_default() <= grace => Spend::InGrace {
                record: t.record.clone(),
                successor: t.successor.clone(),
            },
            Some(_) => {
                t.successor = None;
                Spend::Reused {
                    family: t.record.family.clone(),
                }
            }
        })
    }

    async fn unspend(&self, token_hash: &TokenHash) -> Result<(), StoreError> {
        if let Some(t) = self.lock().tokens.get_mut(token_hash) {
            t.first_use = None;
            t.successor = None;
        }
        Ok(())
    }

    async fn set_successor(&self, token_hash: &TokenHash, sealed: &[u8]) -> Result<(), StoreError> {
        let mut state = self.lock();
        let Some(t) = state.tokens.get_mut(token_hash) else {
            return Ok(());
        };
        let Some(first_use) = t.first_use else {
            return Ok(());
        };
        t.successor = Some(sealed.to_vec());
        state.successors.push_back((first_use, *token_hash));
        Ok(())
    }

    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        let mut state = self.lock();
        self.revoked.insert(family, Duration::ZERO);
        let before = state.tokens.len();
        state.tokens.retain(|_, t| t.record.family != family);
        Ok((before - state.tokens.len()) as u64)
    }

    async fn revoke_username(&self, username: &str) -> Result<u64, StoreError> {
        let families = {
            let state = self.lock();
            let mut families: Vec<String> = state
                .tokens
                .values()
                .filter(|t| t.record.identity.username == username)
                .map(|t| t.record.family.clone())
                .collect();
            families.sort();
            families.dedup();
            families
        };
        Ok(self.revoke_families(&families))
    }

    async fn revoke_all(&self) -> Result<u64, StoreError> {
        let families = {
            let state = self.lock();
            let mut families: Vec<String> = state
                .tokens
                .values()
                .map(|t| t.record.family.clone())
                .collect();
            families.sort();
            families.dedup();
            families
        };
        Ok(self.revoke_families(&families))
    }

    fn family_revoked(&self, family: &str) -> bool {
        self.revoked.contains(family)
    }
}

/// In-process SSO replay store (single instance).
#[derive(Default)]
pub(crate) struct MemoryReplayStore {
    seen: Mutex<HashMap<(String, String), SystemTime>>,
}

#[async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn first_use(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() % 1024 == 1023 {
            seen.retain(|_, until| *until > now);
        }
        let key = (issuer.to_string(), jti.to_string());
        if seen.get(&key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        seen.insert(key, expires_at);
        Ok(true)
    }
}

/// In-process lockout and login-rate counters (single instance).
#[derive(Default)]
pub(crate) struct MemoryThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    /// client -> (window start, attempts in it)
    rate: HashMap<String, (Instant, u32)>,
    /// account -> attempts and lock
    accounts: HashMap<String, AccountState>,
    /// Attempts since the last sweep of stale entries.
    since_sweep: u32,
}

struct AccountState {
    attempts: u32,
    last_attempt: Instant,
    locked_until: Option<Instant>,
}

/// Stale entries are swept every this many attempts, so memory stays bounded.
const SWEEP_EVERY: u32 = 1024;
/// Entries untouched for this long are dropped by the sweep (unless locked).
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

impl MemoryThrottle {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.since_sweep += 1;
        if state.since_sweep >= SWEEP_EVERY {
            state.since_sweep = 0;
            let now = Instant::now();
            state
                .rate
                .retain(|_, (start, _)| now.duration_since(*start) < FORGET_AFTER);
            state.accounts.retain(|_, a| {
                now.duration_since(a.last_attempt) < FORGET_AFTER
                    || a.locked_until.is_some_and(|t| t > now)
            });
        }
        state
    }
}

#[async_trait]
impl ThrottleStore for MemoryThrottle {
    async fn login_attempt(
        &self,
        client: &str,
        rate: Rate,
    ) -> Result<Option<Duration>, StoreError> {
        let now = Instant::now();
        let mut state = self.lock_state();
        let entry = state.rate.entry(client.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= rate.per {
            *entry = (now, 0);
        }
        entry.1 += 1;
        let wait = rate.per.saturating_sub(now.duration_since(entry.0));
        Ok((entry.1 > rate.count).then(|| wait.max(Duration::from_secs(1))))
    }

    async fn begin_attempt(
        &self,
        account: &str,
        max_failures: u32,
        lockout: Duration,
    ) -> Result<Gate, StoreError> {
        let now = Instant::now();
        let mut state = self.lock_state();
        let entry = state
            .accounts
            .entry(account.to_string())
            .or_insert(AccountState {
                attempts: 0,
                last_attempt: now,
                locked_until: None,
            });
        if entry.locked_until.is_some_and(|t| t > now) {
            return Ok(Gate::Refused);
        }
        if entry.locked_until.take().is_some() || now.duration_since(entry.last_attempt) >= lockout
        {
            entry.attempts = 0;
        }
        entry.attempts += 1;
        entry.last_attempt = now;
        Ok(if entry.attempts > max_failures {
            Gate::Refused
        } else {
            Gate::Allowed {
                attempt: entry.attempts,
            }
        })
    }

    async fn lock(&self, account: &str, lockout: Duration) -> Result<(), StoreError> {
        if let Some(entry) = self.lock_state().accounts.get_mut(account) {
            entry.locked_until = Some(Instant::now() + lockout);
            entry.attempts = 0;
        }
        Ok(())
    }

    async fn clear_failures(&self, account: &str) -> Result<(), StoreError> {
        self.lock_state().accounts.remove(account);
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

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[tokio::test]
    async fn rate_limit_answers_with_a_wait_once_over() {
        let t = MemoryThrottle::default();
        let rate = Rate {
            count: 2,
            per: Duration::from_secs(60),
        };
        assert!(t.login_attempt("10.0.0.1", rate).await.unwrap().is_none());
        assert!(t.login_attempt("10.0.0.1", rate).await.unwrap().is_none());
        let wait = t.login_attempt("10.0.0.1", rate).await.unwrap().unwrap();
        assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(1));
        assert!(t.login_attempt("10.0.0.2", rate).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn attempts_beyond_max_are_refused_even_in_flight() {
        let t = MemoryThrottle::default();
        let lockout = Duration::from_secs(600);
        for n in 1..=3 {
            assert_eq!(
                t.begin_attempt("a", 3, lockout).await.unwrap(),
                Gate::Allowed { attempt: n }
            );
        }
        assert_eq!(
            t.begin_attempt("a", 3, lockout).await.unwrap(),
            Gate::Refused
        );
        assert_eq!(
            t.begin_attempt("b", 3, lockout).await.unwrap(),
            Gate::Allowed { attempt: 1 }
        );
    }

    #[tokio::test]
    async fn lock_refuses_until_cleared() {
        let t = MemoryThrottle::default();
        let lockout = Duration::from_secs(600);
        t.begin_attempt("a", 3, lockout).await.unwrap();
        t.lock("a", lockout).await.unwrap();
        assert_eq!(
            t.begin_attempt("a", 3, lockout).await.unwrap(),
            Gate::Refused
        );
        t.clear_failures("a").await.unwrap();
        assert_eq!(
            t.begin_attempt("a", 3, lockout).await.unwrap(),
            Gate::Allowed { attempt: 1 }
        );
    }
}
