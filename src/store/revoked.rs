//! The in-process set of revoked refresh families that every bearer request
//! is checked against, so a revoked family's access tokens are refused
//! without a database round trip.
//!
//! An entry is kept for the refresh store's `window` (the longest an access
//! token of the family can still verify, see
//! `auth::tokens::revocation_window`) and dropped after that, so the set
//! holds at most the revocations of one access-token lifetime. A store
//! shared by several instances fills it at start, on every notice and on
//! every reconnect of its listener; while that listener is down the set is
//! trusted for `staleness` only (`session.cache_ttl`, the same bound as the
//! session cache), then bearer requests get a 503 until it is back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Expired entries are dropped every this many insertions.
const PRUNE_EVERY: u32 = 1024;

pub(crate) struct RevokedFamilies {
    window: Duration,
    staleness: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    /// family -> when its entry may be forgotten
    families: HashMap<String, Instant>,
    inserts: u32,
    sync: Sync,
}

/// Whether the set is known to hold every revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Not loaded from the shared store yet: nothing can be trusted.
    Never,
    /// Loaded, and notices arrive (or the store is this process' own).
    Live,
    /// The notice listener went down at this instant.
    LostAt(Instant),
}

impl RevokedFamilies {
    /// A set for a store of this process alone: complete from the start.
    pub(crate) fn local(window: Duration) -> Self {
        Self::new(window, Duration::ZERO, Sync::Live)
    }

    /// A set fed from a shared store: incomplete until [`Self::mark_live`].
    pub(crate) fn shared(window: Duration, staleness: Duration) -> Self {
        Self::new(window, staleness, Sync::Never)
    }

    fn new(window: Duration, staleness: Duration, sync: Sync) -> Self {
        Self {
            window,
            staleness,
            inner: Mutex::new(Inner {
                families: HashMap::new(),
                inserts: 0,
                sync,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every operation leaves the map whole; a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long an entry is kept after its revocation.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Records a family revoked `age` ago (zero: just now). Entries older
    /// than the window are not kept.
    pub(crate) fn insert(&self, family: &str, age: Duration) {
        let Some(left) = self.window.checked_sub(age) else {
            return;
        };
        let now = Instant::now();
        let mut inner = self.lock();
        let forget_at = now + left;
        let slot = inner
            .families
            .entry(family.to_string())
            .or_insert(forget_at);
        *slot = (*slot).max(forget_at);
        inner.inserts = inner.inserts.wrapping_add(1);
        if inner.inserts % PRUNE_EVERY == 0 {
            inner.families.retain(|_, at| *at > now);
        }
    }

    pub(crate) fn contains(&self, family: &str) -> bool {
        self.lock().families.contains_key(family)
    }

    /// Drops entries past the window.
    pub(crate) fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        self.lock().families.retain(|_, at| *at > now);
    }

    /// The set was (re)loaded and notices arrive.
    pub(crate) fn mark_live(&self) {
        self.lock().sync = Sync::Live;
    }

    /// Notices stopped arriving; the set is trusted for `staleness` more.
    pub(crate) fn mark_lost(&self) {
        let mut inner = self.lock();
        if inner.sync == Sync::Live {
            inner.sync = Sync::LostAt(Instant::now());
        }
    }

    /// Whether the set can be trusted to hold every revocation.
    pub(crate) fn is_current(&self) -> bool {
        match self.lock().sync {
            Sync::Live => true,
            Sync::Never => false,
            Sync::LostAt(at) => at.elapsed() < self.staleness,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().families.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_older_than_the_window_are_not_kept() {
        let set = RevokedFamilies::local(Duration::from_secs(60));
        set.insert("old", Duration::from_secs(61));
        set.insert("new", Duration::from_secs(30));
        assert!(!set.contains("old"));
        assert!(set.contains("new"));
    }

    #[test]
    fn pruning_drops_expired_entries_only() {
        let set = RevokedFamilies::local(Duration::from_secs(60));
        set.insert("a", Duration::from_secs(50));
        set.insert("b", Duration::ZERO);
        set.prune();
        assert_eq!(set.len(), 2, "both still inside the window");
        set.prune_at(Instant::now() + Duration::from_secs(30));
        assert!(!set.contains("a"));
        assert!(set.contains("b"));
    }

    #[test]
    fn a_shared_set_is_trusted_only_once_loaded_and_briefly_after_a_loss() {
        let set = RevokedFamilies::shared(Duration::from_secs(60), Duration::ZERO);
        assert!(!set.is_current(), "never loaded");
        set.mark_live();
        assert!(set.is_current());
        set.mark_lost();
        assert!(!set.is_current(), "zero staleness allowed");
        let set = RevokedFamilies::shared(Duration::from_secs(60), Duration::from_secs(60));
        set.mark_live();
        set.mark_lost();
        assert!(set.is_current(), "within the staleness bound");
    }
}
