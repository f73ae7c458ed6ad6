//! The in-process cache in front of a database's sessions, so the proxied
//! request path makes no database round trip:
//!
//! - Reads are served from entries that live at most `session.cache_ttl`;
//!   concurrent misses for one token share a single load, and unknown
//!   tokens are cached as unknown (a token cannot be presented before it
//!   exists), so a flood of made-up cookies does not reach the database.
//! - Activity (`touch`) is only remembered here and merged into every read;
//!   the backend writes the batch behind ([`SessionCache::take_touches`]).
//! - A revocation drops the entry; a revocation heard from elsewhere drops
//!   everything, and a load that overlapped one is served once but not kept.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use moka::future::Cache;

use super::{SessionRecord, StoreError, TokenHash};

pub(crate) struct SessionCache {
    cache: Cache<TokenHash, Option<SessionRecord>>,
    touches: Mutex<HashMap<TokenHash, SystemTime>>,
    /// Bumped by every revocation: a load that started before one must not
    /// put its row in the cache.
    generation: AtomicU64,
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
        }
    }

    fn touches(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, SystemTime>> {
        self.touches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session, from the cache or else from `load`, with its pending
    /// activity merged in.
    pub(crate) async fn get(
        &self,
        token_hash: &TokenHash,
        load: impl Future<Output = Result<Option<SessionRecord>, StoreError>>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = self
            .cache
            .try_get_with(*token_hash, load)
            .await
            .map_err(|e| (*e).clone())?;
        // A revocation during the load may concern this very row: serve it
        // this once, but do not keep it.
        if self.generation.load(Ordering::Acquire) != generation {
            self.cache.invalidate(token_hash).await;
        }
        let Some(mut record) = loaded else {
            return Ok(None);
        };
        if let Some(seen) = self.touches().get(token_hash) {
            record.last_seen = record.last_seen.max(*seen);
        }
        Ok(Some(record))
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
            self.cache.invalidate(hash).await;
            self.touches().remove(hash);
        }
    }

    /// Drops every cached session (a revocation was made elsewhere, or
    /// notices may have been missed); pending activity is kept.
    pub(crate) fn forget_everything(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
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
        let got = cache.get(&hash, async { Ok(None) }).await.unwrap().unwrap();
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
        let got = cache.get(&hash, async { Ok(None) }).await.unwrap();
        assert!(got.is_none(), "read from the backend again");
    }
}
