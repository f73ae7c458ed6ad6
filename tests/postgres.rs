//! Sessions, lockout, rate limit and audit in PostgreSQL, with several
//! instances on one database behaving as one. Each test owns a schema.

mod common;

use std::time::Duration;

use common::db::PgSchema;
use common::*;
use http::{Method, StatusCode};
use sha2::Digest;

async fn pg_proxy(upstream: &Upstream, schema: &PgSchema, extra: &str) -> Proxy {
    pg_proxy_with(upstream, schema, "", extra).await
}

/// A proxy on `schema` with more `[session]` keys and other tables.
async fn pg_proxy_with(
    upstream: &Upstream,
    schema: &PgSchema,
    session_keys: &str,
    extra: &str,
) -> Proxy {
    let proxy = Proxy::start(
        upstream,
        &format!("{}{extra}", schema.toml_with(session_keys)),
    )
    .await;
    proxy.wait_ready().await;
    proxy
}

#[tokio::test]
async fn session_from_one_instance_works_on_another() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let a = pg_proxy(&upstream, &schema, "").await;
    let b = pg_proxy(&upstream, &schema, "").await;
    let session = login(&a, "demo").await;
    let on_b = get(&b.url("/chat/"), &[("cookie", &session)]).await;
    assert_eq!(on_b.status, StatusCode::OK);
    assert_eq!(on_b.upstream_header("x-auth-user"), vec!["1"]);
}

#[tokio::test]
async fn login_form_from_one_instance_posts_to_another() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let a = pg_proxy(&upstream, &schema, "").await;
    let b = pg_proxy(&upstream, &schema, "").await;
    let (csrf_cookie, token) = login_form(&a).await;
    let reply = post_login(&b, &csrf_cookie, &token, "demo", PASSWORD, "/").await;
    assert_eq!(
        reply.status,
        StatusCode::SEE_OTHER,
        "the CSRF key is shared"
    );
}

#[tokio::test]
async fn logout_on_one_instance_is_refused_by_the_other_within_a_second() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    // A long cache TTL: only the revocation notice can make A forget.
    let a = pg_proxy_with(&upstream, &schema, "cache_ttl = \"10m\"", "").await;
    let b = pg_proxy_with(&upstream, &schema, "cache_ttl = \"10m\"", "").await;

    let session = login(&a, "demo").await;
    assert_eq!(
        get(&a.url("/x"), &[("cookie", &session)]).await.status,
        StatusCode::OK,
        "cached on A"
    );
    let out = send(
        Method::POST,
        &b.url("/auth/logout"),
        &[("cookie", session.as_str()), ("origin", "http://127.0.0.1")],
        "",
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let refused = eventually(Duration::from_secs(1), || async {
        get(&a.url("/x"), &[("cookie", &session)]).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "instance A still accepts a session revoked on B");
}

#[tokio::test]
async fn sessions_survive_a_proxy_restart() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let mut first = pg_proxy(&upstream, &schema, "").await;
    let session = login(&first, "demo").await;
    first.begin_shutdown().await.unwrap();
    let second = pg_proxy(&upstream, &schema, "").await;
    let reply = get(&second.url("/chat/"), &[("cookie", &session)]).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn only_the_sha256_of_a_token_is_stored() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let proxy = pg_proxy(&upstream, &schema, "").await;
    let session = login(&proxy, "demo").await;
    let token = session.split_once('=').unwrap().1.to_string();
    let client = schema.client().await;
    let rows = client
        .query("SELECT token_hash, sessions::text FROM sessions", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored: Vec<u8> = rows[0].get(0);
    assert_eq!(stored, sha2::Sha256::digest(token.as_bytes()).to_vec());
    let whole_row: String = rows[0].get(1);
    assert!(
        !whole_row.contains(&token),
        "raw token found in the sessions table"
    );
}

#[tokio::test]
async fn lockout_is_shared_by_two_instances() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let limits = "[login]\nmax_failures = 3\nlockout = \"10m\"\n";
    let a = pg_proxy(&upstream, &schema, limits).await;
    let b = pg_proxy(&upstream, &schema, limits).await;
    for (proxy, password) in [(&a, "wrong-1"), (&b, "wrong-2"), (&a, "wrong-3")] {
        let (cookie, token) = login_form(proxy).await;
        let reply = post_login(proxy, &cookie, &token, "demo", password, "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // Locked now: even the right password is refused, with the same answer.
    for proxy in [&a, &b] {
        let (cookie, token) = login_form(proxy).await;
        let reply = post_login(proxy, &cookie, &token, "demo", PASSWORD, "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.text().contains("Incorrect username or password."));
    }
    // Another account is not affected.
    let (cookie, token) = login_form(&b).await;
    let reply = post_login(&b, &cookie, &token, "admin", PASSWORD, "/").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_rate_per_ip_answers_429_with_retry_after() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let limits = "[login]\nip_rate = \"3/min\"\n";
    let a = pg_proxy(&upstream, &schema, limits).await;
    let b = pg_proxy(&upstream, &schema, limits).await;
    let (cookie, token) = login_form(&a).await;
    for proxy in [&a, &b, &a] {
        let reply = post_login(proxy, &cookie, &token, "nobody", "x", "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let limited = post_login(&b, &cookie, &token, "demo", PASSWORD, "/").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(limited.set_cookie("portcullis").is_none());
}

#[tokio::test]
async fn security_events_are_written_to_audit_events() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let proxy = pg_proxy(&upstream, &schema, "").await;
    let (cookie, token) = login_form(&proxy).await;
    post_login(&proxy, &cookie, &token, "demo", "wrong", "/").await;
    let session = login(&proxy, "demo").await;
    let out = send(
        Method::POST,
        &proxy.url("/auth/logout"),
        &[("cookie", session.as_str()), ("origin", "http://127.0.0.1")],
        "",
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let client = schema.client().await;
    let complete = eventually(Duration::from_secs(5), || async {
        let rows = client
            .query("SELECT event FROM audit_events ORDER BY id", &[])
            .await
            .unwrap();
        let events: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        events == ["login_failed", "login_ok", "logout"]
    })
    .await;
    let rows = client
        .query(
            "SELECT event, username, client_ip, request_id FROM audit_events ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert!(complete, "audit rows: {rows:?}");
    for row in &rows {
        let (user, ip, request_id): (String, String, String) = (row.get(1), row.get(2), row.get(3));
        assert_eq!(user, "demo");
        assert_eq!(ip, "127.0.0.1");
        assert_eq!(request_id.len(), 32);
    }
    let dump: String = client
        .query_one(
            "SELECT coalesce(string_agg(audit_events::text, ' '), '') FROM audit_events",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !dump.contains(PASSWORD) && !dump.contains("wrong"),
        "no password in audit rows"
    );
}

#[tokio::test]
async fn sessions_revoke_command_ends_the_users_sessions_everywhere() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let proxy = pg_proxy_with(&upstream, &schema, "cache_ttl = \"10m\"", "").await;
    let demo = login(&proxy, "demo").await;
    let admin = login(&proxy, "admin").await;
    assert_eq!(
        get(&proxy.url("/x"), &[("cookie", &demo)]).await.status,
        StatusCode::OK
    );

    let mut config = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut config, schema.toml().as_bytes()).unwrap();
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let list = std::process::Command::new(bin)
        .args(["sessions", "list", "--user", "demo", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listed = String::from_utf8_lossy(&list.stdout);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        !listed.contains(demo.split_once('=').unwrap().1),
        "the token is never printed"
    );

    let revoke = std::process::Command::new(bin)
        .args(["sessions", "revoke", "--user", "demo", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    assert!(String::from_utf8_lossy(&revoke.stdout).contains("revoked 1"));
    let refused = eventually(Duration::from_secs(1), || async {
        get(&proxy.url("/x"), &[("cookie", &demo)]).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "revoked session still accepted");
    let audited: i64 = schema
        .client()
        .await
        .query_one("SELECT count(*) FROM audit_events WHERE event = 'sessions_revoked' AND username = 'demo'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1, "the revocation is an audit event");
    assert_eq!(
        get(&proxy.url("/x"), &[("cookie", &admin)]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn max_per_user_revokes_the_oldest_session() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let proxy = pg_proxy_with(&upstream, &schema, "max_per_user = 1", "").await;
    let first = login(&proxy, "demo").await;
    let second = login(&proxy, "demo").await;
    assert_eq!(
        get(&proxy.url("/x"), &[("cookie", &second)]).await.status,
        StatusCode::OK
    );
    let refused = eventually(Duration::from_secs(1), || async {
        get(&proxy.url("/x"), &[("cookie", &first)]).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused);
}

/// Regression: the schema and shared keys loaded in the background, so the
/// first requests after a start on a fresh database got 503.
#[tokio::test]
async fn sign_in_works_from_the_first_request_on_a_fresh_database() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let proxy = Proxy::start(&upstream, &schema.toml_with("")).await;
    let form = get(&proxy.url("/auth/login"), &[("accept", "text/html")]).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let session = login(&proxy, "demo").await;
    let reply = get(&proxy.url("/x"), &[("cookie", &session)]).await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// Regression: the revoked token families loaded only once the schema was
/// in place, by a listener retrying every 500 ms, so bearer requests right
/// after a start on a fresh database got 503.
#[tokio::test]
async fn bearer_tokens_work_from_the_first_request_on_a_fresh_database() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let proxy = Proxy::start(&upstream, &schema.toml_with("")).await;
    let tokens = send(
        Method::POST,
        &proxy.url("/auth/login"),
        &[("content-type", "application/json")],
        format!(r#"{{"username":"demo","password":"{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text());
    let access = tokens.json()["access_token"].as_str().unwrap().to_string();
    let me = get(
        &proxy.url("/auth/me"),
        &[("authorization", &format!("Bearer {access}"))],
    )
    .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
}

/// Regression: anonymous refusals were queued one row each, so a flood of
/// them filled the audit queue and real events were dropped.
#[tokio::test]
async fn anonymous_refusals_are_aggregated_and_real_events_still_written() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let proxy = pg_proxy(&upstream, &schema, "").await;
    for _ in 0..40 {
        let refused = send(
            Method::POST,
            &proxy.url("/auth/logout"),
            &[("origin", "https://evil.example")],
            "",
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
    login(&proxy, "demo").await;
    let client = schema.client().await;
    let written = eventually(Duration::from_secs(20), || async {
        let row = client
            .query_one(
                "SELECT count(*), coalesce(sum(count), 0)::bigint FROM audit_events WHERE event = 'logout_csrf_refused'",
                &[],
            )
            .await
            .unwrap();
        let (rows, total): (i64, i64) = (row.get(0), row.get(1));
        assert!(rows <= 1, "{rows} rows for one client's refusals");
        total == 40
    })
    .await;
    assert!(written, "the 40 refusals were never counted");
    let ok: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_events WHERE event = 'login_ok'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn audit_rows_past_retention_are_deleted() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let first = pg_proxy(&upstream, &schema, "").await;
    let client = schema.client().await;
    client
        .batch_execute(
            "INSERT INTO audit_events (at, event, username, client_ip, request_id) VALUES
               (now() - interval '40 days', 'login_ok', 'old', '127.0.0.1', 'r1'),
               (now() - interval '1 day', 'login_ok', 'recent', '127.0.0.1', 'r2')",
        )
        .await
        .unwrap();
    drop(first);
    // A new instance prunes once its schema is in place.
    let _second = pg_proxy(&upstream, &schema, "[audit]\nretention = \"30d\"\n").await;
    let pruned = eventually(Duration::from_secs(10), || async {
        let users: Vec<String> = client
            .query("SELECT username FROM audit_events ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        users == ["recent"]
    })
    .await;
    assert!(pruned, "the 40-day-old row outlived a 30-day retention");
}

/// Runs `portcullis sessions revoke ARGS --config` on `schema`; its stdout.
fn sessions_revoke(schema: &PgSchema, args: &[&str]) -> String {
    let mut config = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut config, schema.toml().as_bytes()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["sessions", "revoke"])
        .args(args)
        .arg("--config")
        .arg(config.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Bearer tokens of `user` from a JSON login: (access header, refresh token).
async fn bearer_login(proxy: &Proxy, user: &str) -> (String, String) {
    let reply = send(
        Method::POST,
        &proxy.url("/auth/login"),
        &[("content-type", "application/json")],
        serde_json::json!({"username": user, "password": PASSWORD}).to_string(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let tokens = reply.json();
    (
        format!("Bearer {}", tokens["access_token"].as_str().unwrap()),
        tokens["refresh_token"].as_str().unwrap().to_string(),
    )
}

async fn refresh_status(proxy: &Proxy, refresh_token: &str) -> StatusCode {
    send(
        Method::POST,
        &proxy.url("/auth/refresh"),
        &[("content-type", "application/json")],
        serde_json::json!({"refresh_token": refresh_token}).to_string(),
    )
    .await
    .status
}

/// SPEC: revocation reaches every instance within 1 second; the margin
/// covers the test's own requests, not the proxy.
const PROPAGATION: Duration = Duration::from_millis(1250);

#[tokio::test]
async fn sessions_revoke_command_ends_the_users_bearer_tokens_on_every_instance() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let a = pg_proxy(&upstream, &schema, "").await;
    let b = pg_proxy(&upstream, &schema, "").await;
    let (demo_access, demo_refresh) = bearer_login(&a, "demo").await;
    let (admin_access, admin_refresh) = bearer_login(&a, "admin").await;
    let on_b = |access: String| {
        let url = b.url("/x");
        async move { get(&url, &[("authorization", &access)]).await.status }
    };
    assert_eq!(on_b(demo_access.clone()).await, StatusCode::OK);

    let printed = sessions_revoke(&schema, &["--user", "demo"]);
    assert!(printed.contains("1 token family"), "{printed}");
    // Regression: access tokens stayed good until `exp`, refresh tokens for ever.
    let refused = eventually(PROPAGATION, || async {
        on_b(demo_access.clone()).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        refused,
        "instance B still accepts a revoked user's access token"
    );
    assert_eq!(
        get(&a.url("/x"), &[("authorization", &demo_access)])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh_status(&b, &demo_refresh).await,
        StatusCode::UNAUTHORIZED
    );
    // Another user is untouched.
    assert_eq!(on_b(admin_access.clone()).await, StatusCode::OK);
    assert_eq!(refresh_status(&a, &admin_refresh).await, StatusCode::OK);
}

#[tokio::test]
async fn sessions_revoke_all_ends_every_bearer_token_on_every_instance() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let a = pg_proxy(&upstream, &schema, "").await;
    let b = pg_proxy(&upstream, &schema, "").await;
    let (demo_access, demo_refresh) = bearer_login(&a, "demo").await;
    let (admin_access, _) = bearer_login(&b, "admin").await;
    sessions_revoke(&schema, &["--all"]);
    for access in [&demo_access, &admin_access] {
        let refused = eventually(PROPAGATION, || async {
            get(&b.url("/x"), &[("authorization", access)]).await.status == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(refused, "an access token survived sessions revoke --all");
    }
    assert_eq!(
        refresh_status(&a, &demo_refresh).await,
        StatusCode::UNAUTHORIZED
    );
}
