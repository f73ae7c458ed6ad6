//! The second-factor store's trait: one TOTP factor per user (pending or
//! enabled, its last used step) and its one-time recovery codes. Backends:
//! `memory/factors.rs`, `postgres/factors.rs`.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// A user's TOTP factor as stored. The secret arrives sealed by `auth`
/// (AES-256-GCM under `mfa.secret_key` when set): the store keeps bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorRecord {
    pub(crate) secret: Vec<u8>,
    /// False while the enrolment waits for its first code.
    pub(crate) enabled: bool,
    /// The last TOTP time step accepted (`None` before the first).
    pub(crate) last_step: Option<i64>,
}

/// Second factors, keyed by user id: one TOTP factor (pending or enabled)
/// and its one-time recovery codes, stored as hashes made by `auth`.
#[async_trait]
pub trait FactorStore: Send + Sync {
    async fn get(&self, user_id: &str) -> Result<Option<FactorRecord>, StoreError>;
    /// Keeps `secret` as the user's pending factor unless they have one
    /// already (enabled, or pending and younger than `fresh_for`, so a
    /// reload of the setup page shows the same secret); returns the factor
    /// now stored.
    async fn pending(
        &self,
        user_id: &str,
        secret: &[u8],
        fresh_for: Duration,
    ) -> Result<FactorRecord, StoreError>;
    /// Turns on the pending factor whose stored secret is `secret`, with
    /// `step` counted as used, and makes `recovery` (hashes) the user's
    /// recovery codes; false when it is no longer pending (another tab
    /// confirmed it, or it was replaced or reset meanwhile).
    async fn enable(
        &self,
        user_id: &str,
        secret: &[u8],
        step: i64,
        recovery: &[[u8; 32]],
    ) -> Result<bool, StoreError>;
    /// Records `step` as used if it is later than the last one used, in one
    /// atomic step (two requests with one code cannot both pass); false
    /// otherwise or without an enabled factor.
    async fn use_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError>;
    /// Spends one unspent recovery code stored under any of `hashes`;
    /// false when there is none.
    async fn use_recovery(&self, user_id: &str, hashes: &[[u8; 32]]) -> Result<bool, StoreError>;
    /// How many unspent recovery codes the user has.
    async fn recovery_left(&self, user_id: &str) -> Result<u32, StoreError>;
    /// Removes the user's factor and recovery codes; true when an enabled
    /// factor was removed.
    async fn remove(&self, user_id: &str) -> Result<bool, StoreError>;
}
