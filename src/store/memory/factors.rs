//! Second factors in process memory (single instance; lost on restart, so
//! every user would have to enrol again: use PostgreSQL or SQLite for
//! anything but a throwaway run).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::store::{FactorRecord, FactorStore, StoreError};

#[derive(Default)]
pub(crate) struct MemoryFactorStore {
    users: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    factor: FactorRecord,
    created: Instant,
    recovery: HashSet<[u8; 32]>,
}

impl MemoryFactorStore {
    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl FactorStore for MemoryFactorStore {
    async fn get(&self, user_id: &str) -> Result<Option<FactorRecord>, StoreError> {
        Ok(self.users().get(user_id).map(|e| e.factor.clone()))
    }

    async fn pending(
        &self,
        user_id: &str,
        secret: &[u8],
        fresh_for: Duration,
    ) -> Result<FactorRecord, StoreError> {
        let mut users = self.users();
        let keep = users
            .get(user_id)
            .is_some_and(|e| e.factor.enabled || e.created.elapsed() < fresh_for);
        if !keep {
            users.insert(
                user_id.to_string(),
                Entry {
                    factor: FactorRecord {
                        secret: secret.to_vec(),
                        enabled: false,
                        last_step: None,
                    },
                    created: Instant::now(),
                    recovery: HashSet::new(),
                },
            );
        }
        Ok(users[user_id].factor.clone())
    }

    async fn enable(
        &self,
        user_id: &str,
        secret: &[u8],
        step: i64,
        recovery: &[[u8; 32]],
    ) -> Result<bool, StoreError> {
        let mut users = self.users();
        let Some(entry) = users.get_mut(user_id) else {
            return Ok(false);
        };
        if entry.factor.enabled || entry.factor.secret != secret {
            return Ok(false);
        }
        entry.factor.enabled = true;
        entry.factor.last_step = Some(step);
        entry.recovery = recovery.iter().copied().collect();
        Ok(true)
    }

    async fn use_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let mut users = self.users();
        match users.get_mut(user_id) {
            Some(e) if e.factor.enabled && e.factor.last_step.is_none_or(|last| last < step) => {
                e.factor.last_step = Some(step);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn use_recovery(&self, user_id: &str, hashes: &[[u8; 32]]) -> Result<bool, StoreError> {
        let mut users = self.users();
        let Some(entry) = users.get_mut(user_id).filter(|e| e.factor.enabled) else {
            return Ok(false);
        };
        Ok(hashes.iter().any(|h| entry.recovery.remove(h)))
    }

    async fn recovery_left(&self, user_id: &str) -> Result<u32, StoreError> {
        Ok(self
            .users()
            .get(user_id)
            .map_or(0, |e| e.recovery.len() as u32))
    }

    async fn remove(&self, user_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .users()
            .remove(user_id)
            .is_some_and(|e| e.factor.enabled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn a_pending_factor_is_kept_until_enabled_then_steps_only_move_forward() {
        let store = MemoryFactorStore::default();
        let first = store.pending("1", b"one", HOUR).await.unwrap();
        let again = store.pending("1", b"two", HOUR).await.unwrap();
        assert_eq!(first, again, "a reload shows the same pending secret");
        assert!(!store.enable("1", b"two", 10, &[]).await.unwrap());
        assert!(store.enable("1", b"one", 10, &[[7; 32]]).await.unwrap());
        assert!(
            !store.use_step("1", 10).await.unwrap(),
            "enrolment step used"
        );
        assert!(store.use_step("1", 11).await.unwrap());
        assert!(!store.use_step("1", 11).await.unwrap());
        assert!(store.use_recovery("1", &[[1; 32], [7; 32]]).await.unwrap());
        assert!(!store.use_recovery("1", &[[7; 32]]).await.unwrap());
        assert!(store.remove("1").await.unwrap());
        assert!(store.get("1").await.unwrap().is_none());
    }
}
