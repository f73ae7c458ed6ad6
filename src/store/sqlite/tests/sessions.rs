//! The SQLite session store: rows, eviction, public ids, revocations
//! heard from another process.

use super::*;

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
    assert_eq!(got.public_id, "public-1");
    assert_eq!(got.client_ip, Some(std::net::IpAddr::from([10, 0, 0, 1])));
    assert_eq!(got.user_agent, "Firefox/128.0");
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
async fn a_user_ends_one_session_by_public_id_or_all_others_and_never_anothers() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteSessionStore::new(open(&dir.path().join("p.db")).await, Duration::from_secs(5));
    let (demo, admin) = (identity("1", "demo"), identity("2", "admin"));
    let now = SystemTime::now();
    for byte in 1..=3 {
        store.insert(session(byte, &demo, now), 0).await.unwrap();
    }
    store.insert(session(9, &admin, now), 0).await.unwrap();
    assert!(
        !store.remove_public("demo", "public-9").await.unwrap(),
        "admin's"
    );
    assert!(store.remove_public("demo", "public-2").await.unwrap());
    assert!(store.get(&TokenHash([2; 32])).await.unwrap().is_none());
    assert_eq!(
        store
            .remove_others("demo", &TokenHash([1; 32]))
            .await
            .unwrap(),
        1
    );
    assert!(store.get(&TokenHash([1; 32])).await.unwrap().is_some());
    assert!(store.get(&TokenHash([3; 32])).await.unwrap().is_none());
    assert!(store.get(&TokenHash([9; 32])).await.unwrap().is_some());
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
