//! Unit tests of the SQLite stores, each on a file of its own in a temp
//! directory; a second `Sqlite` on the same file plays another process.
//! This file: the schema, kept keys, audit rows, `check`; `sessions` and
//! `tokens` (refresh, replay, lockout) beside it.

mod factors;
mod links;
mod sessions;
mod tokens;

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
use rusqlite::params;

pub(super) async fn open(path: &Path) -> Arc<Sqlite> {
    let db = Sqlite::new(&SqliteConfig {
        path: path.to_path_buf(),
    })
    .unwrap();
    db.migrate().await.unwrap();
    db
}

pub(super) fn identity(id: &str, name: &str) -> Identity {
    Identity {
        id: id.into(),
        username: name.into(),
        email: format!("{name}@example.com"),
        roles: vec!["patient".into(), "admin".into()],
    }
}

pub(super) fn session(byte: u8, user: &Identity, created: SystemTime) -> SessionRecord {
    SessionRecord {
        token_hash: TokenHash([byte; 32]),
        identity: user.clone(),
        auth_method: AuthMethod::Sso,
        created_at: created,
        last_seen: created,
        expires_at: created + Duration::from_secs(3600),
        checked_at: created,
        public_id: format!("public-{byte}"),
        client_ip: Some(std::net::IpAddr::from([10, 0, 0, byte])),
        user_agent: "Firefox/128.0".into(),
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

/// A file made by the first schema (sessions without public ids) opens and
/// upgrades, and its sessions get public ids of their own.
#[tokio::test]
async fn a_file_of_the_first_schema_upgrades_and_keeps_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        migrations::migrate_to(&mut conn, 1).unwrap();
        for byte in [1u8, 2] {
            conn.execute(
                "INSERT INTO sessions VALUES (?1, '1', 'demo', 'd@example.com', '[\"patient\"]', 'password', 0, 0, 9999999999999, 0)",
                [&[byte; 32][..]],
            )
            .unwrap();
        }
    }
    let db = Sqlite::new(&SqliteConfig { path }).unwrap();
    assert_eq!(db.migrate().await.unwrap() as i64, migrations::latest() - 1);
    let store = SqliteSessionStore::new(db, Duration::from_secs(5));
    let listed = store.list_username("demo").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].identity.roles, ["patient"]);
    assert_eq!(listed[0].public_id.len(), 32);
    assert_ne!(listed[0].public_id, listed[1].public_id);
    assert_eq!(
        (listed[0].client_ip, listed[0].user_agent.as_str()),
        (None, "")
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

#[tokio::test]
async fn the_sweep_deletes_expired_rows_and_keeps_live_ones_and_lockouts() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("w.db")).await;
    let sessions = SqliteSessionStore::new(db.clone(), Duration::from_secs(5));
    let demo = identity("1", "demo");
    let now = SystemTime::now();
    sessions.insert(session(1, &demo, now), 0).await.unwrap();
    let idle = session(2, &demo, now - Duration::from_secs(7200));
    sessions.insert(idle, 0).await.unwrap();
    let old = now_ms() - 2 * 86_400_000;
    let counts = db
        .write(move |c| {
            c.execute(
                "INSERT INTO login_failures VALUES ('stale', 2, NULL, ?1), ('locked', 0, ?2, ?1)",
                params![old, now_ms() + 60_000],
            )?;
            sweep::expired(c, Duration::from_secs(1800))?;
            let count = |table: &str| -> rusqlite::Result<i64> {
                c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            };
            Ok((count("sessions")?, count("login_failures")?))
        })
        .await
        .unwrap();
    assert_eq!(counts, (1, 1), "the idle session and the stale failures go");
}
