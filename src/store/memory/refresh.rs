//! In-process refresh tokens and revoked families (single instance).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::store::revoked::RevokedFamilies;
use crate::store::{RefreshRecord, RefreshStore, Spend, StoreError, TokenHash, REUSE_GRACE};

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
