//! Second factors in the file: a pending secret kept until enabled, each
//! TOTP step and recovery code spent once, also across two processes, and
//! the released lockout attempt.

use super::*;
use crate::store::FactorStore;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_factor_is_pending_then_enabled_and_each_step_and_code_is_spent_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = SqliteFactorStore::new(open(&path).await);
    let first = store.pending("1", b"one", HOUR).await.unwrap();
    assert!(!first.enabled);
    assert_eq!(store.pending("1", b"two", HOUR).await.unwrap(), first);
    let replaced = store.pending("1", b"two", Duration::ZERO).await.unwrap();
    assert_eq!(
        replaced.secret, b"two",
        "a stale pending secret is replaced"
    );
    assert!(!store.enable("1", b"one", 10, &[]).await.unwrap());
    assert!(store
        .enable("1", b"two", 10, &[[7; 32], [8; 32]])
        .await
        .unwrap());
    assert!(!store.enable("1", b"two", 11, &[]).await.unwrap(), "once");
    assert_eq!(store.recovery_left("1").await.unwrap(), 2);

    // Another process on the same file sees the same state.
    let other = SqliteFactorStore::new(open(&path).await);
    assert!(
        !other.use_step("1", 10).await.unwrap(),
        "enrolment step used"
    );
    assert!(other.use_step("1", 11).await.unwrap());
    assert!(!store.use_step("1", 11).await.unwrap());
    assert!(store.use_recovery("1", &[[1; 32], [7; 32]]).await.unwrap());
    assert!(!other.use_recovery("1", &[[7; 32]]).await.unwrap());
    assert_eq!(other.recovery_left("1").await.unwrap(), 1);
    assert!(other.remove("1").await.unwrap());
    assert!(store.get("1").await.unwrap().is_none());
    assert_eq!(store.recovery_left("1").await.unwrap(), 0);
    assert!(!store.remove("1").await.unwrap());
}

#[tokio::test]
async fn a_released_attempt_no_longer_counts_but_earlier_failures_do() {
    let dir = tempfile::tempdir().unwrap();
    let throttle = SqliteThrottle::new(open(&dir.path().join("p.db")).await);
    let lockout = Duration::from_secs(600);
    throttle.begin_attempt("a", 3, lockout).await.unwrap();
    throttle.begin_attempt("a", 3, lockout).await.unwrap();
    throttle.release_attempt("a").await.unwrap();
    assert_eq!(
        throttle.begin_attempt("a", 3, lockout).await.unwrap(),
        Gate::Allowed { attempt: 2 }
    );
}
