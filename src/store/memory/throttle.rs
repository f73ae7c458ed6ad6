//! In-process lockout and login-rate counters (single instance). The
//! per-IP limit is a fixed window that counts every attempt, refused ones
//! included, and answers with the rest of the window, like the PostgreSQL
//! store (`governor`'s GCRA counts only admitted cells and answers with
//! the time to the next one, so it would behave differently per backend).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::config::Rate;
use crate::store::{Gate, StoreError, ThrottleStore};

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

    async fn release_attempt(&self, account: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        if let Some(entry) = self.lock_state().accounts.get_mut(account) {
            if entry.locked_until.is_none_or(|t| t <= now) {
                entry.attempts = entry.attempts.saturating_sub(1);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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

    #[tokio::test]
    async fn a_released_attempt_no_longer_counts_but_earlier_failures_do() {
        let t = MemoryThrottle::default();
        let lockout = Duration::from_secs(600);
        t.begin_attempt("a", 3, lockout).await.unwrap();
        t.begin_attempt("a", 3, lockout).await.unwrap();
        t.release_attempt("a").await.unwrap();
        assert_eq!(
            t.begin_attempt("a", 3, lockout).await.unwrap(),
            Gate::Allowed { attempt: 2 }
        );
    }
}
