//! Unit tests of the SQLite stores, each on a file of its own in a temp
//! directory; a second `Sqlite` on the same file plays another process.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::Rate;
use crate::store::audit::{AuditRow, AuditTable};
use crate::store::{
    AuthMethod, Gate, Identity, RefreshRecord, RefreshStore, ReplayStore, SessionRecord,
    SessionStore, Spend, ThrottleStore, TokenHash,
};

async fn open(path: &Path) -> Arc<Sqlite> {
    let db = Sqlite::new(&SqliteConfig {
        path: path.to_path_buf(),
    })
    .unwrap();
    db.migrate().await.unwrap();
    db
}

fn identity(id: &str, name: &str) -> Identity {
    Identity {
        id: id.into(),
        username: name.into(),
        email: format!("{name}@example.com"),
        roles: vec!["patient".into(), "admin".into()],
    }
}

fn session(byte: u8, user: &Identity, created: SystemTime) -> SessionRecord {
    SessionRecord {
        token_hash: TokenHash([byte; 32]),
        identity: user.clone(),
        auth_method: AuthMethod::Sso,
        created_at: created,
        last_seen: created,
        expires_at: created + Duration::from_secs(3600),
        checked_at: created,
    }
}

#[tokio::test]
async fn the_schema_applies_once_and_the_pragmas_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let db = open(&path).await;
    assert_eq!(db.migrate().await.unwrap(), 0, "nothing left to apply");
    let (mode, sync, fk): (String, i64, i64) = db
        .read(|c| {
            Ok((
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((mode.as_str(), sync, fk), ("wal", 1, 1));
    let version: i64 = db
        .read(|c| {
            c.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
        })
        .await
        .unwrap();
    assert_eq!(version, migrations::latest());
}

#[tokio::test]
async fn a_file_of_an_older_schema_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        migrations::migrate_to(&mut conn, migrations::latest() - 1).unwrap();
    }
    let db = Sqlite::new(&SqliteConfig { path }).unwrap();
    assert_eq!(db.migrate().await.unwrap(), 1);
    db.ping().await.unwrap();
}

#[tokio::test]
async fn sessions_survive_a_new_store_on_the_file_with_their_activity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let t0 = SystemTime::now() - Duration::from_secs(60);
    let demo = identity("1", "demo");
    {
        let store = SqliteSessionStore::new(open(&path).await, Duration::from_secs(5));
        store.insert(session(1, &demo, t0), 0).await.unwrap();
        store
            .touch(&TokenHash([1; 32]), t0 + Duration::from_secs(30))
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    let store = SqliteSessionStore::new(open(&path).await, Duration::from_secs(5));
    let got = store.get(&TokenHash([1; 32])).await.unwrap().unwrap();
    assert_eq!(got.identity, demo);
    assert_eq!(got.auth_method, AuthMethod::Sso);
    assert_eq!(millis(got.last_seen), millis(t0 + Duration::from_secs(30)));
    assert_eq!(
        millis(got.expires_at),
        millis(t0 + Duration::from_secs(3600))
    );
    assert!(store.get(&TokenHash([9; 32])).await.unwrap().is_none());
}

#[tokio::test]
async fn the_oldest_sessions_go_beyond_max_per_user_and_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteSessionStore::new(open(&dir.path().join("m.db")).await, Duration::from_secs(5));
    let (demo, admin) = (identity("1", "demo"), identity("2", "admin"));
    let t0 = SystemTime::now();
    for i in 0..3u8 {
        let at = t0 + Duration::from_secs(u64::from(i));
        store.insert(session(i, &demo, at), 2).await.unwrap();
    }
    store.insert(session(7, &admin, t0), 2).await.unwrap();
    assert!(
        store.get(&TokenHash([0; 32])).await.unwrap().is_none(),
        "oldest evicted"
    );
    let listed = store.list_username("demo").await.unwrap();
    let hashes: Vec<_> = listed.iter().map(|s| s.token_hash).collect();
    assert_eq!(hashes, [TokenHash([1; 32]), TokenHash([2; 32])]);
    assert_eq!(store.remove_username("demo").await.unwrap(), 2);
    assert!(store.get(&TokenHash([2; 32])).await.unwrap().is_none());
    assert!(store.remove(&TokenHash([7; 32])).await.unwrap());
    assert!(!store.remove(&TokenHash([7; 32])).await.unwrap());
}

#[tokio::test]
async fn a_revocation_by_another_process_reaches_the_cache_within_a_poll() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let served = open(&path).await;
    served.follow_revocations();
    let server =
        SqliteSessionStore::start(served, Duration::from_secs(600), Duration::from_secs(600));
    let demo = identity("1", "demo");
    server
        .insert(session(1, &demo, SystemTime::now()), 0)
        .await
        .unwrap();
    assert!(server.get(&TokenHash([1; 32])).await.unwrap().is_some());
    let operator = SqliteSessionStore::new(open(&path).await, Duration::from_secs(5));
    assert_eq!(operator.remove_username("demo").await.unwrap(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while server.get(&TokenHash([1; 32])).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still served from the cache"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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

#[tokio::test]
async fn check_names_a_missing_directory_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Sqlite::new(&SqliteConfig {
        path: dir.path().join("nope/p.db"),
    })
    .unwrap();
    let err = missing.usable().await.unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
    let fresh = Sqlite::new(&SqliteConfig {
        path: dir.path().join("p.db"),
    })
    .unwrap();
    fresh.usable().await.unwrap();
    assert!(!dir.path().join("p.db").exists());
    std::fs::write(dir.path().join("p.db"), b"not a database, not at all").unwrap();
    let err = fresh.usable().await.unwrap_err();
    assert!(
        err.contains("not a usable SQLite database") || err.contains("not a database"),
        "{err}"
    );
}

#[test]
fn times_round_trip_through_milliseconds() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    assert_eq!(time_of(millis(t)), t);
    let before = SystemTime::UNIX_EPOCH - Duration::from_millis(5);
    assert_eq!(time_of(millis(before)), before);
    assert_eq!(
        roles_of(&roles_json(&["a".into(), "b\"".into()])),
        ["a", "b\""]
    );
    assert!(roles_of("not json").is_empty());
}
