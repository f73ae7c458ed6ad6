//! The SQLite store (`session.store = "sqlite"`, the default) against a real
//! file per test: what a restart of the proxy on the same file keeps
//! (sessions, logouts, lockouts, refresh families, SSO replay, keys), the
//! audit rows, the idle timeout, and the `sessions` commands reaching a
//! running proxy within a second.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};

const PARTNER_SECRET: &str = "partner-secret-of-at-least-32-bytes!";

/// A proxy on the file `db` with `extra` tables, ready to serve.
async fn on_file(upstream: &Upstream, db: &Path, extra: &str) -> Proxy {
    let proxy = Proxy::builder(upstream)
        .sqlite(db)
        .extra(extra)
        .start()
        .await;
    proxy.wait_ready().await;
    proxy
}

/// Stops `proxy` and waits until it has let go of its connections.
async fn stop(mut proxy: Proxy) {
    proxy.begin_shutdown().await.unwrap();
}

fn state() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("portcullis.db");
    (dir, db)
}

async fn status(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> StatusCode {
    get(&proxy.url(path), headers).await.status
}

fn bearer(tokens: &Value) -> String {
    format!("Bearer {}", tokens["access_token"].as_str().unwrap())
}

async fn logout(proxy: &Proxy, cookie: &str) {
    let headers = [("cookie", cookie), ("origin", "http://127.0.0.1")];
    let out = send(Method::POST, &proxy.url("/auth/logout"), &headers, "").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sessions_and_forms_survive_a_restart_and_a_logout_stays_a_logout() {
    let upstream = Upstream::start().await;
    let (_dir, db) = state();
    let first = on_file(&upstream, &db, "").await;
    let kept = login(&first, "demo").await;
    let public_id = get(&first.url("/x"), &[("cookie", &kept)])
        .await
        .upstream_header("x-auth-session");
    assert_eq!(public_id.len(), 1);
    let ended = login(&first, "admin").await;
    logout(&first, &ended).await;
    let (csrf_cookie, csrf_token) = login_form(&first).await;
    stop(first).await;

    let second = on_file(&upstream, &db, "").await;
    assert_eq!(
        status(&second, "/x", &[("cookie", &kept)]).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&second, "/x", &[("cookie", &ended)]).await,
        StatusCode::UNAUTHORIZED
    );
    let reply = post_login(&second, &csrf_cookie, &csrf_token, "admin", PASSWORD, "/").await;
    assert_eq!(
        reply.status,
        StatusCode::SEE_OTHER,
        "a form from before the restart posts"
    );
}

#[tokio::test]
async fn a_lockout_survives_a_restart() {
    let upstream = Upstream::start().await;
    let (_dir, db) = state();
    let limits = "[login]\nmax_failures = 2\nlockout = \"10m\"\n";
    let first = on_file(&upstream, &db, limits).await;
    for password in ["wrong-1", "wrong-2"] {
        let (cookie, token) = login_form(&first).await;
        let reply = post_login(&first, &cookie, &token, "demo", password, "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    stop(first).await;
    let second = on_file(&upstream, &db, limits).await;
    let (cookie, token) = login_form(&second).await;
    let reply = post_login(&second, &cookie, &token, "demo", PASSWORD, "/").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "still locked");
    let reply = post_login(&second, &cookie, &token, "admin", PASSWORD, "/").await;
    assert_eq!(
        reply.status,
        StatusCode::SEE_OTHER,
        "another account is not"
    );
}

#[tokio::test]
async fn bearer_tokens_survive_a_restart_and_reuse_still_revokes_the_family() {
    let upstream = Upstream::start().await;
    let (_dir, db) = state();
    let first = on_file(&upstream, &db, "").await;
    let issued = token_login(&first, "demo").await;
    let rotated = json_post(
        &first,
        "/auth/refresh",
        json!({"refresh_token": issued["refresh_token"]}),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let current = rotated.json();
    stop(first).await;

    let second = on_file(&upstream, &db, "").await;
    let access = bearer(&current);
    assert_eq!(
        status(&second, "/x", &[("authorization", &access)]).await,
        StatusCode::OK
    );
    // Past the grace of its first use (moved back in the file), the spent
    // token is a replay.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE refresh_tokens SET spent_at = spent_at - 60000 WHERE spent_at IS NOT NULL",
        [],
    )
    .unwrap();
    let replay = json_post(
        &second,
        "/auth/refresh",
        json!({"refresh_token": issued["refresh_token"]}),
    )
    .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(&second, "/x", &[("authorization", &access)]).await,
        StatusCode::UNAUTHORIZED
    );
    let refresh = json_post(
        &second,
        "/auth/refresh",
        json!({"refresh_token": current["refresh_token"]}),
    )
    .await;
    assert_eq!(
        refresh.status,
        StatusCode::UNAUTHORIZED,
        "the whole family is gone"
    );
}

fn partner() -> String {
    format!(
        "[[sso.partners]]\nname = \"b\"\nissuer = \"https://partner-b.example\"\naudience = \"growbal\"\n\
         algorithms = [\"HS256\"]\nsecret = \"{PARTNER_SECRET}\"\nuser_claim = \"sub\"\nrequire_known_user = false\n"
    )
}

#[tokio::test]
async fn an_sso_token_used_before_a_restart_is_refused_after_it() {
    let upstream = Upstream::start().await;
    let (_dir, db) = state();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": "https://partner-b.example", "aud": "growbal", "iat": now, "exp": now + 60,
        "jti": format!("{:x}", rand::random::<u64>()), "sub": "partner-user"
    });
    let key = jsonwebtoken::EncodingKey::from_secret(PARTNER_SECRET.as_bytes());
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &key,
    )
    .unwrap();
    let url = |proxy: &Proxy| {
        let query =
            serde_urlencoded::to_string([("token", token.as_str()), ("next", "/")]).unwrap();
        proxy.url(&format!("/auth/sso?{query}"))
    };
    let first = on_file(&upstream, &db, &partner()).await;
    let used = get(&url(&first), &[("accept", "text/html")]).await;
    assert_eq!(used.status, StatusCode::SEE_OTHER);
    stop(first).await;
    let second = on_file(&upstream, &db, &partner()).await;
    let replayed = get(&url(&second), &[("accept", "text/html")]).await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn security_events_are_written_to_audit_events_in_the_file() {
    let upstream = Upstream::start().await;
    let (_dir, db) = state();
    let proxy = on_file(&upstream, &db, "").await;
    let (cookie, token) = login_form(&proxy).await;
    post_login(&proxy, &cookie, &token, "demo", "wrong", "/").await;
    let session = login(&proxy, "demo").await;
    logout(&proxy, &session).await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows = || -> Vec<(String, String, String, String)> {
        let mut statement = conn
            .prepare("SELECT event, username, client_ip, request_id FROM audit_events ORDER BY id")
            .unwrap();
        let rows = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    let complete = eventually(Duration::from_secs(5), || {
        let events: Vec<String> = rows().into_iter().map(|r| r.0).collect();
        std::future::ready(events == ["login_failed", "login_ok", "logout"])
    })
    .await;
    assert!(complete, "audit rows: {:?}", rows());
    for (_, user, ip, request_id) in rows() {
        assert_eq!(
            (user.as_str(), ip.as_str(), request_id.len()),
            ("demo", "127.0.0.1", 32)
        );
    }
}

#[tokio::test]
async fn an_idle_session_ends_after_idle_timeout() {
    let upstream = Upstream::start().await;
    let (_dir, db) = state();
    let proxy = on_file(&upstream, &db, "[session]\nidle_timeout = \"1s\"\n").await;
    let cookie = login(&proxy, "demo").await;
    // Activity keeps it past the timeout: each request moves `last_seen`.
    let mut last_use = tokio::time::Instant::now();
    for _ in 0..4 {
        tokio::time::sleep_until(last_use + Duration::from_millis(400)).await;
        assert_eq!(
            status(&proxy, "/x", &[("cookie", &cookie)]).await,
            StatusCode::OK
        );
        last_use = tokio::time::Instant::now();
    }
    // A full timeout after the last answer (so after the server's last_seen).
    tokio::time::sleep_until(last_use + Duration::from_millis(1000)).await;
    assert_eq!(
        status(&proxy, "/x", &[("cookie", &cookie)]).await,
        StatusCode::UNAUTHORIZED
    );
}

/// A config file for the operator commands, on the proxy's file.
fn operator_config(dir: &Path, db: &Path) -> PathBuf {
    let users = dir.join("users.toml");
    std::fs::write(&users, "").unwrap();
    let config = dir.join("operator.toml");
    let text = format!(
        "[credentials.file]\npath = \"{}\"\n[sqlite]\npath = \"{}\"\n",
        users.display(),
        db.display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn portcullis(args: &[&str], config: &Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn sessions_commands_on_the_file_reach_the_running_proxy_within_a_second() {
    let upstream = Upstream::start().await;
    let (dir, db) = state();
    let proxy = on_file(&upstream, &db, "[session]\ncache_ttl = \"10m\"\n").await;
    let cookie = login(&proxy, "demo").await;
    let tokens = token_login(&proxy, "demo").await;
    let other = login(&proxy, "admin").await;
    let access = bearer(&tokens);
    for (name, value) in [("cookie", &cookie), ("authorization", &access)] {
        assert_eq!(status(&proxy, "/x", &[(name, value)]).await, StatusCode::OK);
    }
    let config = operator_config(dir.path(), &db);

    let listed = portcullis(&["sessions", "list", "--user", "demo"], &config);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        !listed.contains(cookie.split_once('=').unwrap().1),
        "the token is never printed"
    );

    let revoked = portcullis(&["sessions", "revoke", "--user", "demo"], &config);
    assert!(revoked.contains("revoked 1"), "{revoked}");
    for (name, value) in [("cookie", &cookie), ("authorization", &access)] {
        let refused = eventually(Duration::from_secs(1), || async {
            status(&proxy, "/x", &[(name, value)]).await == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(
            refused,
            "{name} still accepted a second after the revocation"
        );
    }
    assert_eq!(
        status(&proxy, "/x", &[("cookie", &other)]).await,
        StatusCode::OK
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_events WHERE event = 'sessions_revoked' AND username = 'demo'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1, "the revocation is an audit event");
}

#[test]
fn sessions_commands_name_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = operator_config(dir.path(), &dir.path().join("absent.db"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["sessions", "list", "--user", "demo", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sqlite.path") && err.contains("absent.db"),
        "{err}"
    );
    assert!(!dir.path().join("absent.db").exists(), "nothing created");
}
