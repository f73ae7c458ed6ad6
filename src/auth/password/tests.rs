use super::*;
use crate::store::password_hash::is_supported_hash;

/// Regression: `bcrypt::non_truncating_hash` refused exactly 72 bytes,
/// so `hash-password` and registration could not make a hash for a
/// password every other bcrypt accepts.
#[test]
fn a_72_byte_password_can_be_hashed_and_verifies_and_73_cannot() {
    let password = "p".repeat(72);
    let hash = hash_password(&password, "bcrypt").unwrap();
    assert!(bcrypt::verify(&password, &hash).unwrap());
    assert!(hash_password(&"p".repeat(73), "bcrypt").is_err());
}

/// A verifier whose checks never give up waiting for a slot.
fn verifier(workers: usize) -> PasswordVerifier {
    PasswordVerifier::new(workers, Duration::from_secs(600))
}

#[tokio::test]
async fn bcrypt_password_of_exactly_72_bytes_signs_in() {
    let password = "p".repeat(71) + "!";
    assert_eq!(password.len(), 72);
    let hash = bcrypt::hash(&password, 4).unwrap();
    let v = verifier(1);
    assert!(v.verify(&password, Some(&hash)).await.unwrap());
    assert!(!v.verify(&password[..71], Some(&hash)).await.unwrap());
}

#[test]
fn bcrypt_password_over_72_bytes_is_hashed_then_refused() {
    // The hash of its first 72 bytes: only real hashing work can tell
    // that they match, and the password must still be refused.
    let base = "b".repeat(72);
    let hash = bcrypt::hash(&base, 4).unwrap();
    let long = format!("{base}X");
    assert_eq!(
        bcrypt_check(long.as_bytes(), &hash),
        BcryptCheck {
            matched: true,
            fits: false
        }
    );
    assert!(!verify_blocking(long.as_bytes(), &hash));
    assert!(verify_blocking(base.as_bytes(), &hash));
}

#[tokio::test]
async fn check_waits_at_most_hash_wait_for_a_slot() {
    let v = PasswordVerifier::new(1, Duration::from_millis(50));
    let held = v.slot().await.unwrap();
    let hash = bcrypt::hash("x", 4).unwrap();
    assert!(matches!(v.verify("x", Some(&hash)).await, Err(HashBusy(_))));
    assert!(matches!(v.hash("x").await, Err(HashBusy(_))));
    drop(held);
    assert!(v.verify("x", Some(&hash)).await.unwrap());
}

#[test]
fn new_bcrypt_hashes_never_truncate() {
    assert!(hash_password(&"c".repeat(73), "bcrypt").is_err());
}

#[tokio::test]
async fn every_bcrypt_prefix_verifies() {
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let v = verifier(2);
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        let h = format!("{prefix}{}", &hash[4..]);
        assert!(
            v.verify("correct horse", Some(&h)).await.unwrap(),
            "{prefix}"
        );
        assert!(
            !v.verify("wrong horse", Some(&h)).await.unwrap(),
            "{prefix}"
        );
    }
}

#[tokio::test]
async fn argon2id_verifies() {
    let hash = hash_password("correct horse", "argon2id").unwrap();
    assert!(hash.starts_with("$argon2id$"));
    let v = verifier(1);
    assert!(v.verify("correct horse", Some(&hash)).await.unwrap());
    assert!(!v.verify("correct horsf", Some(&hash)).await.unwrap());
}

#[tokio::test]
async fn bcrypt_refuses_a_password_that_differs_only_after_byte_72() {
    let base = "a".repeat(72);
    let hash = bcrypt::hash(format!("{base}one"), 4).unwrap();
    let v = verifier(1);
    assert!(!v.verify(&format!("{base}two"), Some(&hash)).await.unwrap());
    assert!(!v.verify(&format!("{base}one"), Some(&hash)).await.unwrap());
    // `base` itself (72 bytes) is accepted: this hash is bit for bit the
    // hash of those 72 bytes, and every bcrypt accepts them (SPEC).
}

#[tokio::test]
async fn unknown_user_never_verifies() {
    let v = verifier(1);
    v.record(&bcrypt::hash("x", 4).unwrap());
    assert!(!v.verify("anything", None).await.unwrap());
    assert!(!v.verify("", None).await.unwrap());
}

#[test]
fn dummy_hash_follows_the_most_common_real_shape() {
    let v = verifier(1);
    let common = bcrypt::hash("x", 5).unwrap();
    v.record(&common);
    v.record(&common);
    v.record(&bcrypt::hash("x", 4).unwrap());
    assert_eq!(bcrypt_cost(&dummy_hash(&v.shapes)), Some(5));
}

#[test]
fn argon2id_dummy_keeps_the_parameters() {
    let v = verifier(1);
    let real = hash_password("x", "argon2id").unwrap();
    v.record(&real);
    let dummy = dummy_hash(&v.shapes);
    assert_eq!(shape(&dummy), shape(&real));
    assert_ne!(&*dummy, real.as_str());
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
