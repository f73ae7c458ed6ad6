//! The in-process cache in front of a database's sessions, so the proxied
//! request path makes no database round trip:
//!
//! - Reads are served from entries that live at most `session.cache_ttl`;
//!   concurrent misses for one token share a single load, and every
//!   request waiting for it is woken at once when it ends (moka's own
//!   `try_get_with` hands the result on to its waiters one at a time, a
//!   scheduler round apart each: a thousand requests behind an expired
//!   entry waited up to two seconds). Unknown tokens are cached as unknown
//!   (a token cannot be presented before it exists), so a flood of made-up
//!   cookies does not reach the database.
//! - Activity (`touch`) is only remembered here and merged into every read;
//!   the backend writes the batch behind ([`SessionCache::take_touches`]).
//! - A revocation drops the entry; a revocation heard from elsewhere drops
//!   everything, and a load that overlapped one is served once but not kept.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures_util::future::{FutureExt as _, Shared};
use moka::future::Cache;

use super::{SessionRecord, StoreError, TokenHash};

type Loaded = Result<Option<SessionRecord>, StoreError>;
type Load = Shared<Pin<Box<dyn Future<Output = Loaded> + Send>>>;

/// A load in flight: the shared read, the generation it started in, and
/// how many requests wait for it.
struct InFlight {
    load: Load,
    generation: u64,
    waiters: usize,
}

/// One request's wait for a load. Dropped before the load ended (the
/// client left), it counts itself out, and the last one out drops the
/// load: reads nobody waits for must not stay in `loading` (made-up
/// cookies from clients that disconnect at once would pile up there).
struct Waiting<'a> {
    cache: &'a SessionCache,
    token_hash: TokenHash,
    /// `None` once the load ended for this request.
    load: Option<Load>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(load) = self.load.take() else {
            return;
        };
        let mut loading = self.cache.loading();
        if let Some(in_flight) = loading.get_mut(&self.token_hash) {
            if in_flight.load.ptr_eq(&load) {
                in_flight.waiters -= 1;
                if in_flight.waiters == 0 {
                    loading.remove(&self.token_hash);
                }
            }
        }
    }
}

pub(crate) struct SessionCache {
    cache: Cache<TokenHash, Option<SessionRecord>>,
    touches: Mutex<HashMap<TokenHash, SystemTime>>,
    /// Bumped by every revocation: a load that started before one must not
    /// put its row in the cache.
    generation: AtomicU64,
    loading: Mutex<HashMap<TokenHash, InFlight>>,
}

impl SessionCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(1_000_000)
                .build(),
            touches: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            loading: Mutex::new(HashMap::new()),
        }
    }

    fn loading(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, InFlight>> {
        self.loading.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touches(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, SystemTime>> {
        self.touches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session, from the cache or else from the read `load` makes
    /// (shared with every concurrent miss for the token), with its pending
    /// activity merged in.
    pub(crate) async fn get<F>(&self, token_hash: &TokenHash, load: impl FnOnce() -> F) -> Loaded
    where
        F: Future<Output = Loaded> + Send + 'static,
    {
        let loaded = match self.cache.get(token_hash).await {
            Some(cached) => cached,
            None => self.load(token_hash, load).await?,
        };
        let Some(mut record) = loaded else {
            return Ok(None);
        };
        if let Some(seen) = self.touches().get(token_hash) {
            record.last_seen = record.last_seen.max(*seen);
        }
        Ok(Some(record))
    }

    /// Joins the load in flight for `token_hash`, or starts `load`. The
    /// first waiter to see it end keeps the row, unless a revocation came
    /// in meanwhile: then it is served this once but not kept.
    async fn load<F>(&self, token_hash: &TokenHash, load: impl FnOnce() -> F) -> Loaded
    where
        F: Future<Output = Loaded> + Send + 'static,
    {
        let (joined, mut waiting) = {
            let mut loading = self.loading();
            let generation = self.generation.load(Ordering::Acquire);
            let in_flight = loading.entry(*token_hash).or_insert_with(|| InFlight {
                load: (Box::pin(load()) as Pin<Box<dyn Future<Output = Loaded> + Send>>).shared(),
                generation,
                waiters: 0,
            });
            in_flight.waiters += 1;
            let waiting = Waiting {
                cache: self,
                token_hash: *token_hash,
                load: Some(in_flight.load.clone()),
            };
            (in_flight.load.clone(), waiting)
        };
        let loaded = joined.await;
        let Some(ours) = waiting.load.take() else {
            return loaded;
        };
        let started_in = {
            let mut loading = self.loading();
            match loading.get(token_hash) {
                Some(in_flight) if in_flight.load.ptr_eq(&ours) => {
                    loading.remove(token_hash).map(|done| done.generation)
                }
                _ => None,
            }
        };
        if let (Some(started_in), Ok(row)) = (started_in, &loaded) {
            if self.generation.load(Ordering::Acquire) == started_in {
                self.cache.insert(*token_hash, row.clone()).await;
                // A revocation between the check and the insert.
                if self.generation.load(Ordering::Acquire) != started_in {
                    self.cache.invalidate(token_hash).await;
                }
            }
        }
        loaded
    }

    /// Caches a session just stored.
    pub(crate) async fn insert(&self, record: SessionRecord) {
        self.cache.insert(record.token_hash, Some(record)).await;
    }

    /// Remembers activity, to be written behind.
    pub(crate) fn touch(&self, token_hash: &TokenHash, at: SystemTime) {
        let mut touches = self.touches();
        let slot = touches.entry(*token_hash).or_insert(at);
        *slot = (*slot).max(at);
    }

    /// The activity to write, removed from the cache's keeping.
    pub(crate) fn take_touches(&self) -> Vec<(TokenHash, SystemTime)> {
        self.touches().drain().collect()
    }

    /// Puts back activity whose write failed, for the next round.
    pub(crate) fn restore_touches(&self, batch: Vec<(TokenHash, SystemTime)>) {
        let mut touches = self.touches();
        for (hash, at) in batch {
            let slot = touches.entry(hash).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    /// Forgets revoked (or changed) sessions.
    pub(crate) async fn forget(&self, hashes: &[TokenHash]) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for hash in hashes {
            // Requests after the revocation must not join a read made
            // before it.
            self.loading().remove(hash);
            self.cache.invalidate(hash).await;
            self.touches().remove(hash);
        }
    }

    /// Drops every cached session (a revocation was made elsewhere, or
    /// notices may have been missed); pending activity is kept.
    pub(crate) fn forget_everything(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.loading().clear();
        self.cache.invalidate_all();
    }

    /// Drops every cached session and its pending activity (all revoked).
    pub(crate) fn clear(&self) {
        self.forget_everything();
        self.touches().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuthMethod, Identity};

    fn record(hash: TokenHash, last_seen: SystemTime) -> SessionRecord {
        SessionRecord {
            token_hash: hash,
            identity: Identity {
                id: "1".into(),
                username: "demo".into(),
                email: "demo@example.com".into(),
                roles: vec![],
            },
            auth_method: AuthMethod::Password,
            created_at: last_seen,
            last_seen,
            expires_at: last_seen + Duration::from_secs(3600),
            checked_at: last_seen,
            public_id: "public".into(),
            client_ip: None,
            user_agent: String::new(),
        }
    }

    #[tokio::test]
    async fn pending_activity_is_merged_into_reads() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let hash = TokenHash([1; 32]);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        cache.insert(record(hash, t0)).await;
        cache.touch(&hash, t0 + Duration::from_secs(5));
        let got = cache
            .get(&hash, || async { Ok(None) })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.last_seen, t0 + Duration::from_secs(5));
        assert_eq!(cache.take_touches().len(), 1);
        assert!(cache.take_touches().is_empty());
    }

    #[tokio::test]
    async fn a_forgotten_session_is_loaded_again() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let hash = TokenHash([2; 32]);
        let t0 = SystemTime::UNIX_EPOCH;
        cache.insert(record(hash, t0)).await;
        cache.touch(&hash, t0);
        cache.forget(&[hash]).await;
        assert!(
            cache.take_touches().is_empty(),
            "a revoked session's activity is dropped"
        );
        let got = cache.get(&hash, || async { Ok(None) }).await.unwrap();
        assert!(got.is_none(), "read from the backend again");
    }

    #[tokio::test]
    async fn every_request_waiting_for_a_load_is_woken_at_once() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        let cache = Arc::new(SessionCache::new(Duration::from_secs(60)));
        let hash = TokenHash([3; 32]);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = released.shared();
        let loads = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let waiters = 100;
        for _ in 0..waiters {
            let (cache, released, loads, done) =
                (cache.clone(), released.clone(), loads.clone(), done.clone());
            tokio::spawn(async move {
                let load = || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    let _ = released.await;
                    Ok(Some(record(hash, SystemTime::UNIX_EPOCH)))
                };
                assert!(cache.get(&hash, load).await.unwrap().is_some());
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        tokio::task::yield_now().await;
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one read for all");
        release.send(()).unwrap();
        // One pass of the scheduler: handing the row on one waiter at a
        // time would finish a few here, not all.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(done.load(Ordering::SeqCst), waiters);
    }

    #[tokio::test]
    async fn a_read_made_before_a_revocation_is_neither_joined_nor_kept() {
        use std::sync::Arc;
        let cache = Arc::new(SessionCache::new(Duration::from_secs(60)));
        let hash = TokenHash([4; 32]);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let early = tokio::spawn({
            let cache = cache.clone();
            async move {
                let load = || async move {
                    let _ = released.await;
                    Ok(Some(record(hash, SystemTime::UNIX_EPOCH)))
                };
                cache.get(&hash, load).await.unwrap()
            }
        });
        tokio::task::yield_now().await;
        cache.forget(&[hash]).await;
        // After the revocation a request reads afresh: the row is gone.
        let after = cache.get(&hash, || async { Ok(None) }).await.unwrap();
        assert!(after.is_none());
        release.send(()).unwrap();
        assert!(early.await.unwrap().is_some(), "served once to its request");
        let again = cache.get(&hash, || async { Ok(None) }).await.unwrap();
        assert!(again.is_none(), "the early read was not kept");
    }

    #[tokio::test]
    async fn a_read_nobody_waits_for_any_more_is_dropped() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let hash = TokenHash([5; 32]);
        let never = || std::future::pending::<Loaded>();
        let first = cache.get(&hash, never);
        let second = cache.get(&hash, never);
        // Both start waiting, then their clients leave.
        let both = async { tokio::join!(first, second) };
        assert!(tokio::time::timeout(Duration::from_millis(10), both)
            .await
            .is_err());
        assert!(cache.loading().is_empty(), "nothing left behind");
        // The next request starts a read of its own.
        let got = cache.get(&hash, || async { Ok(None) }).await.unwrap();
        assert!(got.is_none());
    }
}
