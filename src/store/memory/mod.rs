//! In-process stores: the embedded defaults for a single instance
//! (sessions, refresh tokens, SSO replay, lockout and login-rate counters,
//! mailed-link tokens, second factors).
//! Nothing survives a restart and nothing is shared; use the PostgreSQL
//! store for that.

mod account_tokens;
mod factors;
mod refresh;
mod sessions;
mod throttle;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

pub(crate) use account_tokens::MemoryAccountTokens;
pub(crate) use factors::MemoryFactorStore;
pub(crate) use refresh::MemoryRefreshStore;
pub(crate) use sessions::MemorySessionStore;
pub(crate) use throttle::MemoryThrottle;

use super::{ReplayStore, StoreError};

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
