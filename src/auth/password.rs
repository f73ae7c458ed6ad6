//! Password verification and hashing on a bounded pool off the async reactor.
//!
//! bcrypt (`$2a$`, `$2b$`, `$2y$`) and argon2id are accepted. bcrypt only
//! looks at the first 72 bytes of a password: a password of up to 72 bytes
//! works as in every other bcrypt, a longer one is never accepted (no match
//! on a prefix) but is refused only after the same hashing work as a wrong
//! password. An unknown user is checked against a dummy hash of the most
//! common algorithm and cost among real ones, so timing does not reveal
//! which usernames exist. A check waits at most `login.hash_wait` for a
//! hashing slot, so a flood of logins is answered 503 rather than queued
//! for ever.

mod pool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::password_hash::bcrypt_cost;

/// bcrypt cost used for new hashes and, until a real hash is seen, the dummy.
pub(crate) const DEFAULT_BCRYPT_COST: u32 = 12;

/// bcrypt hashes at most this many bytes of a password.
const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

#[derive(Debug, Error)]
pub enum HashError {
    #[error("unsupported algorithm {0:?}; use bcrypt or argon2id")]
    UnsupportedAlgorithm(String),
    #[error("hashing failed: {0}")]
    Failed(String),
}

/// No hashing slot became free within `login.hash_wait`.
#[derive(Debug, Error)]
#[error("no password hashing slot free within {0:?} (login.hash_wait)")]
pub(crate) struct HashBusy(pub Duration);

/// True for a bcrypt hash cheaper than [`DEFAULT_BCRYPT_COST`]: with
/// `rehash_update` set, a successful login rewrites it.
pub(crate) fn is_outdated(hash: &str) -> bool {
    bcrypt_cost(hash).is_some_and(|cost| cost < DEFAULT_BCRYPT_COST)
}

/// Hashes `password` for a users file or a credentials table.
pub fn hash_password(password: &str, algorithm: &str) -> Result<String, HashError> {
    match algorithm {
        // Never a hash that silently drops the bytes after the 72nd. (bcrypt's
        // own `non_truncating_hash` counts a trailing NUL and so refuses
        // exactly 72 bytes, which every other bcrypt accepts.)
        "bcrypt" if password.len() > BCRYPT_MAX_PASSWORD_BYTES => Err(HashError::Failed(format!(
            "the password is {} bytes; bcrypt uses at most {BCRYPT_MAX_PASSWORD_BYTES}, use argon2id for longer passwords",
            password.len()
        ))),
        "bcrypt" => bcrypt::hash(password, DEFAULT_BCRYPT_COST)
            .map_err(|e| HashError::Failed(e.to_string())),
        "argon2id" => {
            let salt_bytes: [u8; 16] = rand::random();
            let salt = SaltString::encode_b64(&salt_bytes)
                .map_err(|e| HashError::Failed(e.to_string()))?;
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        }
        other => Err(HashError::UnsupportedAlgorithm(other.to_string())),
    }
}

/// The outcome of a bcrypt check.
#[derive(Debug, PartialEq, Eq)]
struct BcryptCheck {
    /// The hashed bytes (at most the first 72) match the hash.
    matched: bool,
    /// The password fits in what bcrypt hashes, so a match may be accepted.
    fits: bool,
}

/// Hashes up to 72 bytes of `password` with the salt and cost of `hash`,
/// as every bcrypt does, so a password of exactly 72 bytes works. A longer
/// one cannot be accepted (that would be a match on a prefix), but is
/// hashed all the same: refusing it takes as long as a wrong password, so
/// the answer's timing says nothing about the stored hash's format.
fn bcrypt_check(password: &[u8], hash: &str) -> BcryptCheck {
    let fits = password.len() <= BCRYPT_MAX_PASSWORD_BYTES;
    let hashed = &password[..password.len().min(BCRYPT_MAX_PASSWORD_BYTES)];
    BcryptCheck {
        matched: bcrypt::verify(hashed, hash).unwrap_or(false),
        fits,
    }
}

/// Checks one password against one stored hash; false for any malformed hash.
fn verify_blocking(password: &[u8], hash: &str) -> bool {
    if bcrypt_cost(hash).is_some() {
        let check = bcrypt_check(password, hash);
        check.matched && check.fits
    } else if hash.starts_with("$argon2id$") {
        PasswordHash::new(hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
    } else {
        false
    }
}

/// The parameters that decide how long a hash takes to check: algorithm
/// and cost (`bcrypt$12`, `$argon2id$v=19$m=19456,t=2,p=1`).
fn shape(hash: &str) -> Option<String> {
    if let Some(cost) = bcrypt_cost(hash) {
        return Some(format!("bcrypt${cost}"));
    }
    if hash.starts_with("$argon2id$") {
        let params: Vec<&str> = hash.split('$').take(4).collect();
        return Some(params.join("$"));
    }
    None
}

/// A hash of a random password with the same shape as `sample`.
fn dummy_like(sample: &str) -> Option<String> {
    let secret: [u8; 16] = rand::random();
    if let Some(cost) = bcrypt_cost(sample) {
        return bcrypt::hash(secret, cost).ok();
    }
    let parsed = PasswordHash::new(sample).ok()?;
    let params = argon2::Params::try_from(&parsed).ok()?;
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).ok()?;
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(&secret, &salt)
        .ok()
        .map(|h| h.to_string())
}

#[derive(Default)]
struct Shapes {
    /// shape -> (times seen, a real hash of that shape)
    seen: HashMap<String, (u64, Arc<str>)>,
    /// shape -> dummy hash
    dummies: HashMap<String, Arc<str>>,
}

/// Runs password checks on at most `workers` blocking threads at a time;
/// a check waits at most `wait` (`login.hash_wait`) for a thread.
pub(crate) struct PasswordVerifier {
    permits: Arc<Semaphore>,
    threads: pool::HashThreads,
    wait: Duration,
    /// Unknown users are checked against a dummy of the most common shape
    /// among real hashes, so a few crafted logins cannot steer it.
    shapes: Arc<Mutex<Shapes>>,
}

/// A place on the hashing pool, taken before a login counts as an attempt
/// so an overloaded pool (503) never counts towards a lockout.
pub(crate) struct HashSlot {
    _permit: OwnedSemaphorePermit,
}

impl PasswordVerifier {
    pub(crate) fn new(workers: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            threads: pool::HashThreads::start(workers.max(1)),
            wait,
            shapes: Arc::default(),
        }
    }

    /// Waits at most `login.hash_wait` for a hashing slot.
    pub(crate) async fn slot(&self) -> Result<HashSlot, HashBusy> {
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(HashSlot { _permit: permit }),
            Ok(Err(_)) | Err(_) => Err(HashBusy(self.wait)),
        }
    }

    /// Verifies `password` against `hash`, or, with `None` (unknown user),
    /// against a dummy hash so the answer takes as long as a wrong password.
    #[cfg(test)]
    pub(crate) async fn verify(
        &self,
        password: &str,
        hash: Option<&str>,
    ) -> Result<bool, HashBusy> {
        let slot = self.slot().await?;
        Ok(self.verify_in(slot, password, hash).await)
    }

    /// [`Self::verify`] on a slot already taken.
    pub(crate) async fn verify_in(
        &self,
        slot: HashSlot,
        password: &str,
        hash: Option<&str>,
    ) -> bool {
        if let Some(h) = hash {
            self.record(h);
        }
        let hash: Option<Arc<str>> = hash.map(Arc::from);
        let password = password.as_bytes().to_vec();
        let shapes = self.shapes.clone();
        self.threads
            .run(move || {
                let _slot = slot;
                match hash {
                    Some(hash) => verify_blocking(&password, &hash),
                    None => {
                        let dummy = dummy_hash(&shapes);
                        verify_blocking(&password, &dummy);
                        false
                    }
                }
            })
            .await
            .unwrap_or(false)
    }

    /// Hashes a new password (bcrypt at the default cost) on the same
    /// bounded pool; `Ok(None)` if hashing failed.
    pub(crate) async fn hash(&self, password: &str) -> Result<Option<String>, HashBusy> {
        let password = password.to_string();
        let slot = self.slot().await?;
        Ok(self
            .threads
            .run(move || {
                let _slot = slot;
                hash_password(&password, "bcrypt").ok()
            })
            .await
            .flatten())
    }

    fn record(&self, hash: &str) {
        let Some(shape) = shape(hash) else { return };
        let mut shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        let entry = shapes
            .seen
            .entry(shape)
            .or_insert_with(|| (0, Arc::from(hash)));
        entry.0 += 1;
    }
}

/// The dummy for the most common shape seen (bcrypt at the default cost
/// before any), made once per shape on the hashing pool.
fn dummy_hash(shapes: &Mutex<Shapes>) -> Arc<str> {
    let lock = || shapes.lock().unwrap_or_else(|e| e.into_inner());
    let (shape, sample) = {
        let shapes = lock();
        shapes
            .seen
            .iter()
            .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.0.cmp(a.0)))
            .map(|(shape, (_, sample))| (shape.clone(), sample.clone()))
            .unwrap_or_else(|| {
                let default = format!("bcrypt${DEFAULT_BCRYPT_COST}");
                (
                    default,
                    Arc::from(format!("$2b${DEFAULT_BCRYPT_COST}$").as_str()),
                )
            })
    };
    if let Some(dummy) = lock().dummies.get(&shape) {
        return dummy.clone();
    }
    let dummy: Arc<str> = dummy_like(&sample)
        .or_else(|| bcrypt::hash(rand::random::<[u8; 16]>(), DEFAULT_BCRYPT_COST).ok())
        .unwrap_or_default()
        .into();
    lock().dummies.insert(shape, dummy.clone());
    dummy
}

#[cfg(test)]
mod tests;
