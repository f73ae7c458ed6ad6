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
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::future::{FutureExt as _, Shared};
use moka::future::Cache;

use super::{SessionRecord, StoreError, TokenHash};

type Loaded = Result<Option<SessionRecord>, StoreError>;
type Load = Shared<Pin<Box<dyn Future<Output = Loaded> + Send>>>;
type Loading = Arc<Mutex<HashMap<TokenHash, Load>>>;

pub(crate) struct SessionCache {
    cache: Cache<TokenHash, Option<SessionRecord>>,
    touches: Mutex<HashMap<TokenHash, SystemTime>>,
    /// Bumped by every revocation: a load that started before one must not
    /// put its row in the cache.
    generation: Arc<AtomicU64>,
    /// The reads in flight, each joined by every request for its token.
    loading: Loading,
}

impl SessionCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(1_000_000)
                .build(),
            touches: Mutex::new(HashMap::new()),
            generation: Arc::new(AtomicU64::new(0)),
            loading: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn loading(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, Load>> {
        lock(&self.loading)
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

    /// Joins the read in flight for `token_hash`, or starts the one `load`
    /// makes, with a task of its own that runs it to its end whoever waits
    /// (requests may leave; nothing they cancel can skip the bookkeeping).
    async fn load<F>(&self, token_hash: &TokenHash, load: impl FnOnce() -> F) -> Loaded
    where
        F: Future<Output = Loaded> + Send + 'static,
    {
        let joined = {
            let mut loading = self.loading();
            match loading.get(token_hash) {
                Some(in_flight) => in_flight.clone(),
                None => {
                    let started_in = self.generation.load(Ordering::SeqCst);
                    // A read that panics answers 503, not a hung request.
                    let read = AssertUnwindSafe(load()).catch_unwind().map(|result| {
                        result.unwrap_or_else(|_| {
                            Err(StoreError::Unavailable {
                                backend: "session store",
                                message: "a session read failed unexpectedly".into(),
                            })
                        })
                    });
                    let read =
                        (Box::pin(read) as Pin<Box<dyn Future<Output = Loaded> + Send>>).shared();
                    loading.insert(*token_hash, read.clone());
                    tokio::spawn(keep(
                        self.cache.clone(),
                        self.generation.clone(),
                        self.loading.clone(),
                        *token_hash,
                        read.clone(),
                        started_in,
                    ));
                    read
                }
            }
        };
        joined.await
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
        if hashes.is_empty() {
            return;
        }
        {
            // Requests after the revocation must not join a read made
            // before it, and that read must not be kept.
            let mut loading = self.loading();
            self.generation.fetch_add(1, Ordering::SeqCst);
            for hash in hashes {
                loading.remove(hash);
            }
        }
        for hash in hashes {
            self.touches().remove(hash);
        }
        for hash in hashes {
            self.cache.invalidate(hash).await;
        }
    }

    /// Drops every cached session (a revocation was made elsewhere, or
    /// notices may have been missed); pending activity is kept.
    pub(crate) fn forget_everything(&self) {
        {
            let mut loading = self.loading();
            self.generation.fetch_add(1, Ordering::SeqCst);
            loading.clear();
        }
        self.cache.invalidate_all();
    }

    /// Drops every cached session and its pending activity (all revoked).
    pub(crate) fn clear(&self) {
        self.forget_everything();
        self.touches().clear();
    }
}

/// Waits for a shared read to end, keeps its row unless a revocation came
/// in since the read started (then it was served once, not kept), and then
/// lets later requests read afresh.
async fn keep(
    cache: Cache<TokenHash, Option<SessionRecord>>,
    generation: Arc<AtomicU64>,
    loading: Loading,
    token_hash: TokenHash,
    read: Load,
    started_in: u64,
) {
    if let Ok(row) = read.clone().await {
        if generation.load(Ordering::SeqCst) == started_in {
            cache.insert(token_hash, row).await;
            // A revocation between the check and the insert.
            if generation.load(Ordering::SeqCst) != started_in {
                cache.invalidate(&token_hash).await;
            }
        }
    }
    let mut loading = lock(&loading);
    if loading.get(&token_hash).is_some_and(|l| l.ptr_eq(&read)) {
        loading.remove(&token_hash);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Waits (5 s at most) until no read is in flight.
    async fn reads_ended(cache: &SessionCache) {
        let settled = async {
            while !cache.loading().is_empty() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), settled)
            .await
            .expect("the read's task ends");
    }

    #[tokio::test]
    async fn a_read_runs_to_its_end_and_is_kept_when_its_requests_left() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let hash = TokenHash([5; 32]);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let load = || async move {
            let _ = released.await;
            Ok(Some(record(hash, SystemTime::UNIX_EPOCH)))
        };
        // The only request gives up before the read ends.
        let wait = tokio::time::timeout(Duration::from_millis(10), cache.get(&hash, load));
        assert!(wait.await.is_err());
        release.send(()).unwrap();
        reads_ended(&cache).await;
        let got = cache.get(&hash, || async { Ok(None) }).await.unwrap();
        assert!(got.is_some(), "the row was kept");
    }

    #[tokio::test]
    async fn a_read_that_panics_answers_an_error_and_the_next_one_reads_again() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let hash = TokenHash([6; 32]);
        let failed = cache
            .get(&hash, || async { panic!("a malformed row") })
            .await;
        assert!(matches!(failed, Err(StoreError::Unavailable { .. })));
        reads_ended(&cache).await;
        let again = cache.get(&hash, || async { Ok(None) }).await.unwrap();
        assert!(again.is_none());
    }
}
