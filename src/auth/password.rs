//! Password verification and hashing on a bounded pool off the async reactor.
//!
//! bcrypt (`$2a$`, `$2b$`, `$2y$`) and argon2id are accepted. bcrypt only
//! looks at the first 72 bytes of a password, so longer passwords are refused
//! outright (`non_truncating_verify`) rather than matched on a prefix. An
//! unknown user is checked against a dummy hash of the same bcrypt cost as
//! real ones, so timing does not reveal which usernames exist.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use thiserror::Error;
use tokio::sync::Semaphore;

/// bcrypt cost used for new hashes and, until a real hash is seen, the dummy.
pub const DEFAULT_BCRYPT_COST: u32 = 12;

#[derive(Debug, Error)]
pub enum HashError {
    #[error("unsupported algorithm {0:?}; use bcrypt or argon2id")]
    UnsupportedAlgorithm(String),
    #[error("hashing failed: {0}")]
    Failed(String),
}

/// True for the hash formats this module can verify.
pub fn is_supported_hash(hash: &str) -> bool {
    bcrypt_cost(hash).is_some() || hash.starts_with("$argon2id$")
}

/// The cost of a `$2?$NN$...` bcrypt hash.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = hash
        .strip_prefix("$2a$")
        .or_else(|| hash.strip_prefix("$2b$"))
        .or_else(|| hash.strip_prefix("$2y$"))?;
    rest.get(..2)?.parse().ok()
}

/// True for a bcrypt hash cheaper than [`DEFAULT_BCRYPT_COST`]: with
/// `rehash_update` set, a successful login rewrites it.
pub fn is_outdated(hash: &str) -> bool {
    bcrypt_cost(hash).is_some_and(|cost| cost < DEFAULT_BCRYPT_COST)
}

/// Hashes `password` for a users file or a credentials table.
pub fn hash_password(password: &str, algorithm: &str) -> Result<String, HashError> {
    match algorithm {
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

/// Checks one password against one stored hash; false for any malformed hash.
fn verify_blocking(password: &[u8], hash: &str) -> bool {
    if bcrypt_cost(hash).is_some() {
        // Err for passwords over 72 bytes: never accept a truncated match.
        bcrypt::non_truncating_verify(password, hash).unwrap_or(false)
    } else if hash.starts_with("$argon2id$") {
        PasswordHash::new(hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
    } else {
        false
    }
}

/// Runs password checks on at most `workers` blocking threads at a time.
pub struct PasswordVerifier {
    permits: Arc<Semaphore>,
    /// Cost of the last real bcrypt hash checked, so the dummy matches it.
    seen_cost: AtomicU32,
    dummy: Mutex<Option<(u32, Arc<str>)>>,
}

impl PasswordVerifier {
    pub fn new(workers: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            seen_cost: AtomicU32::new(DEFAULT_BCRYPT_COST),
            dummy: Mutex::new(None),
        }
    }

    /// Verifies `password` against `hash`, or, with `None` (unknown user),
    /// against a dummy hash so the answer takes as long as a wrong password.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let (hash, real): (Arc<str>, bool) = match hash {
            Some(h) => {
                if let Some(cost) = bcrypt_cost(h) {
                    self.seen_cost.store(cost, Ordering::Relaxed);
                }
                (Arc::from(h), true)
            }
            None => (self.dummy_hash().await, false),
        };
        let password = password.as_bytes().to_vec();
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
            .await
            .unwrap_or(false);
        ok && real
    }

    async fn dummy_hash(&self) -> Arc<str> {
        let cost = self.seen_cost.load(Ordering::Relaxed);
        if let Some((c, hash)) = self
            .dummy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            if *c == cost {
                return hash.clone();
            }
        }
        let hash: Arc<str> = tokio::task::spawn_blocking(move || {
            let secret: [u8; 16] = rand::random();
            bcrypt::hash(secret, cost).unwrap_or_default()
        })
        .await
        .unwrap_or_default()
        .into();
        *self.dummy.lock().unwrap_or_else(|e| e.into_inner()) = Some((cost, hash.clone()));
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_bcrypt_prefix_verifies() {
        let hash = bcrypt::hash("correct horse", 4).unwrap();
        let v = PasswordVerifier::new(2);
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let h = format!("{prefix}{}", &hash[4..]);
            assert!(v.verify("correct horse", Some(&h)).await, "{prefix}");
            assert!(!v.verify("wrong horse", Some(&h)).await, "{prefix}");
        }
    }

    #[tokio::test]
    async fn argon2id_verifies() {
        let hash = hash_password("correct horse", "argon2id").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let v = PasswordVerifier::new(1);
        assert!(v.verify("correct horse", Some(&hash)).await);
        assert!(!v.verify("correct horsf", Some(&hash)).await);
    }

    #[tokio::test]
    async fn bcrypt_refuses_a_password_that_differs_only_after_byte_72() {
        let base = "a".repeat(72);
        let hash = bcrypt::hash(format!("{base}one"), 4).unwrap();
        let v = PasswordVerifier::new(1);
        assert!(!v.verify(&format!("{base}two"), Some(&hash)).await);
        assert!(!v.verify(&base, Some(&hash)).await);
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let v = PasswordVerifier::new(1);
        v.seen_cost.store(4, Ordering::Relaxed);
        assert!(!v.verify("anything", None).await);
        assert!(!v.verify("", None).await);
    }

    #[tokio::test]
    async fn dummy_hash_follows_the_cost_of_real_hashes() {
        let v = PasswordVerifier::new(1);
        let real = bcrypt::hash("x", 5).unwrap();
        v.verify("x", Some(&real)).await;
        let dummy = v.dummy_hash().await;
        assert_eq!(bcrypt_cost(&dummy), Some(5));
    }

    #[test]
    fn cheap_bcrypt_hashes_are_outdated() {
        assert!(is_outdated("$2b$04$abcdefghijklmnopqrstuv"));
        assert!(is_outdated("$2y$10$abcdefghijklmnopqrstuv"));
        assert!(!is_outdated("$2b$12$abcdefghijklmnopqrstuv"));
        assert!(!is_outdated("$argon2id$v=19$m=19456,t=2,p=1$x$y"));
    }

    #[test]
    fn plaintext_and_unknown_formats_are_unsupported() {
        assert!(!is_supported_hash("hunter2"));
        assert!(!is_supported_hash("$argon2i$v=19$m=16,t=2,p=1$x$y"));
        assert!(!verify_blocking(b"hunter2", "hunter2"));
        assert!(is_supported_hash("$2y$10$abcdefghijklmnopqrstuv"));
    }
}
