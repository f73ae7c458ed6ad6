//! Lockout and rate, refresh families, SSO replay in the SQLite file.

use super::*;

#[tokio::test]
async fn lockout_and_rate_count_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let throttle = SqliteThrottle::new(open(&path).await);
    let lockout = Duration::from_secs(60);
    for attempt in 1..=3 {
        assert_eq!(
            throttle.begin_attempt("1", 3, lockout).await.unwrap(),
            Gate::Allowed { attempt }
        );
    }
    assert_eq!(
        throttle.begin_attempt("1", 3, lockout).await.unwrap(),
        Gate::Refused
    );
    throttle.lock("1", lockout).await.unwrap();
    let again = SqliteThrottle::new(open(&path).await);
    assert_eq!(
        again.begin_attempt("1", 3, lockout).await.unwrap(),
        Gate::Refused,
        "still locked"
    );
    again.clear_failures("1").await.unwrap();
    assert_eq!(
        again.begin_attempt("1", 3, lockout).await.unwrap(),
        Gate::Allowed { attempt: 1 }
    );

    let rate = Rate {
        count: 2,
        per: Duration::from_secs(60),
    };
    assert_eq!(again.login_attempt("10.0.0.1", rate).await.unwrap(), None);
    assert_eq!(again.login_attempt("10.0.0.1", rate).await.unwrap(), None);
    let wait = again
        .login_attempt("10.0.0.1", rate)
        .await
        .unwrap()
        .unwrap();
    assert!(
        wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    assert_eq!(again.login_attempt("10.0.0.2", rate).await.unwrap(), None);
}

#[tokio::test]
async fn refresh_tokens_rotate_with_grace_and_reuse_detection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let store = SqliteRefreshStore::new(open(&path).await, Duration::from_secs(900));
    let record = RefreshRecord {
        family: "fam".into(),
        identity: identity("1", "demo"),
        expires_at: SystemTime::now() + Duration::from_secs(3600),
    };
    let (a, b) = (TokenHash([1; 32]), TokenHash([2; 32]));
    assert!(store.insert(&a, &record).await.unwrap());
    let Spend::Fresh(got) = store.spend(&a, Duration::from_secs(10)).await.unwrap() else {
        panic!("first use is fresh");
    };
    assert_eq!(got.identity, record.identity);
    store.set_successor(&a, b"sealed").await.unwrap();
    match store.spend(&a, Duration::from_secs(10)).await.unwrap() {
        Spend::InGrace { successor, .. } => assert_eq!(successor.as_deref(), Some(&b"sealed"[..])),
        other => panic!("within grace: {other:?}"),
    }
    assert!(matches!(
        store.spend(&a, Duration::ZERO).await.unwrap(),
        Spend::Reused { family } if family == "fam"
    ));
    store.unspend(&a).await.unwrap();
    assert!(matches!(
        store.spend(&a, Duration::ZERO).await.unwrap(),
        Spend::Fresh(_)
    ));
    assert!(matches!(
        store.spend(&b, Duration::ZERO).await.unwrap(),
        Spend::Unknown
    ));

    assert_eq!(store.revoke_username("demo").await.unwrap(), 1);
    assert!(store.family_revoked("fam"));
    assert!(
        !store.insert(&b, &record).await.unwrap(),
        "a revoked family takes no new token"
    );
    assert!(matches!(
        store.spend(&a, Duration::ZERO).await.unwrap(),
        Spend::Unknown
    ));
}

#[tokio::test]
async fn revoked_families_load_at_start_and_follow_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let window = Duration::from_secs(900);
    let operator = SqliteRefreshStore::new(open(&path).await, window);
    operator.revoke_family("old").await.unwrap();
    let served = open(&path).await;
    served.follow_revocations();
    let server = SqliteRefreshStore::start(served, window, Duration::from_secs(5));
    let record = RefreshRecord {
        family: "new".into(),
        identity: identity("1", "demo"),
        expires_at: SystemTime::now() + Duration::from_secs(3600),
    };
    assert!(server.insert(&TokenHash([3; 32]), &record).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !(server.revocations_current() && server.family_revoked("old")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "revoked families never loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(operator.revoke_all().await.unwrap(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while !server.family_revoked("new") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "revocation not heard"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_sso_token_is_used_once_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let later = SystemTime::now() + Duration::from_secs(60);
    let replay = SqliteReplayStore::new(open(&path).await);
    assert!(replay.first_use("iss", "1", later).await.unwrap());
    assert!(!replay.first_use("iss", "1", later).await.unwrap());
    assert!(replay.first_use("other", "1", later).await.unwrap());
    let after_restart = SqliteReplayStore::new(open(&path).await);
    assert!(!after_restart.first_use("iss", "1", later).await.unwrap());
    let past = SystemTime::now() - Duration::from_secs(1);
    assert!(after_restart.first_use("iss", "2", past).await.unwrap());
    assert!(
        after_restart.first_use("iss", "2", later).await.unwrap(),
        "an expired entry is free"
    );
}

#[tokio::test]
async fn keys_and_audit_rows_stay_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let key = open(&path).await.shared_secret("csrf").await.unwrap();
    let db = open(&path).await;
    assert_eq!(db.shared_secret("csrf").await.unwrap(), key);
    assert_ne!(db.shared_secret("tokens").await.unwrap(), key);
    let row: AuditRow = (
        "login_ok",
        "demo".into(),
        "10.0.0.1".into(),
        "req-1".into(),
        1,
    );
    db.insert(&row).await.unwrap();
    assert_eq!(db.prune(Duration::from_secs(60)).await.unwrap(), 0);
    let stored: (String, String, i64) = db
        .read(|c| {
            c.query_row("SELECT event, username, count FROM audit_events", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
        })
        .await
        .unwrap();
    assert_eq!(stored, ("login_ok".into(), "demo".into(), 1));
    db.write(|c| c.execute("UPDATE audit_events SET at = at - 61000", []))
        .await
        .unwrap();
    assert_eq!(
        db.prune(Duration::from_secs(60)).await.unwrap(),
        1,
        "past retention"
    );
}
