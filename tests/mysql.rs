//! The app's own MySQL/MariaDB users table as the credential backend: every
//! hash format signs in, roles in either spelling reach the app, inactive
//! users are refused and lose live sessions at the re-check, outdated hashes
//! are rewritten, custom queries work, and an unreachable or misconfigured
//! database gives a 503 (never a 500, never internal text). Each test owns a
//! database.

mod common;

use std::time::{Duration, Instant};

use common::db::MysqlDb;
use common::*;
use http::StatusCode;
use mysql_async::prelude::Queryable;

const GENERIC_FAILURE: &str = "Incorrect username or password.";

/// A cost-4 bcrypt hash of [`PASSWORD`] (`$2b$`).
fn cheap_hash() -> String {
    bcrypt::hash(PASSWORD, 4).unwrap()
}

/// A proxy reading users from `db`, with more `[credentials.mysql]` keys and
/// other whole tables after them.
async fn mysql_proxy(upstream: &Upstream, db: &MysqlDb, mysql_keys: &str, extra: &str) -> Proxy {
    Proxy::start(upstream, &format!("{}{extra}", db.toml(mysql_keys))).await
}

/// Posts the login form with a fresh CSRF pair.
async fn try_login(proxy: &Proxy, user: &str, password: &str) -> Reply {
    let (cookie, token) = login_form(proxy).await;
    post_login(proxy, &cookie, &token, user, password, "/").await
}

/// The login page with what legitimately differs between two answers (the
/// CSRF token, the echoed username) blanked out.
fn normalized_page(reply: &Reply, typed: &str) -> String {
    let text = reply.text();
    let token = csrf_token_in(&text);
    text.replace(&token, "TOKEN").replace(typed, "USER")
}

/// The stored hash of one user.
async fn stored_hash(db: &MysqlDb, username: &str) -> String {
    let mut conn = db.conn().await;
    let hash: Option<String> = conn
        .exec_first(
            "SELECT password_hash FROM users WHERE username = ?",
            (username,),
        )
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    hash.unwrap()
}

/// A `mysql://` URL on a local port nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("mysql://root@127.0.0.1:{port}/app")
}

fn assert_no_internal_text(reply: &Reply) {
    let body = reply.text().to_lowercase();
    for word in ["column", "mysql"] {
        assert!(!body.contains(word), "internal text {word:?} in: {body}");
    }
}

#[tokio::test]
async fn every_bcrypt_prefix_and_argon2id_sign_in() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    let b = cheap_hash();
    assert!(b.starts_with("$2b$04$"), "{b}");
    let argon = portcullis::auth::password::hash_password(PASSWORD, "argon2id").unwrap();
    assert!(argon.starts_with("$argon2id$"), "{argon}");
    let users = [
        ("v2a", format!("$2a${}", &b[4..])),
        ("v2b", b.clone()),
        ("v2y", format!("$2y${}", &b[4..])),
        ("vargon", argon),
    ];
    for (name, hash) in &users {
        db.add_user(name, hash, "patient", true).await;
    }
    let proxy = mysql_proxy(&upstream, &db, "", "").await;
    for (name, _) in &users {
        let wrong = try_login(&proxy, name, "not the password").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{name}");
        assert!(wrong.text().contains(GENERIC_FAILURE), "{name}");
        assert!(wrong.set_cookie("portcullis").is_none(), "{name}");

        let session = login(&proxy, name).await;
        let app = get(&proxy.url("/x"), &[("cookie", &session)]).await;
        assert_eq!(app.status, StatusCode::OK, "{name}");
        assert_eq!(
            app.upstream_header("x-auth-email"),
            vec![format!("{name}@example.com")]
        );
    }
}

#[tokio::test]
async fn roles_from_a_comma_list_or_a_json_array_reach_the_app() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    let hash = cheap_hash();
    db.add_user("commas", &hash, "admin, patient", true).await;
    db.add_user("json", &hash, r#"["admin","patient"]"#, true)
        .await;
    db.add_user("boss", &hash, "admin", true).await;
    db.add_user("plain", &hash, "patient", true).await;
    let proxy = mysql_proxy(&upstream, &db, "", "").await;

    for name in ["commas", "json"] {
        let session = login(&proxy, name).await;
        let app = get(&proxy.url("/x"), &[("cookie", &session)]).await;
        assert_eq!(app.status, StatusCode::OK, "{name}");
        assert_eq!(
            app.upstream_header("x-auth-roles"),
            vec!["admin,patient"],
            "{name}"
        );
    }

    let boss = login(&proxy, "boss").await;
    let admin = get(&proxy.url("/admin/x"), &[("cookie", &boss)]).await;
    assert_eq!(admin.status, StatusCode::OK);
    assert_eq!(admin.upstream_header("x-auth-roles"), vec!["admin"]);

    let plain = login(&proxy, "plain").await;
    let refused = get(&proxy.url("/admin/x"), &[("cookie", &plain)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn inactive_and_unknown_users_get_the_wrong_password_answer() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    let hash = cheap_hash();
    let alice = db.add_user("alice", &hash, "patient", true).await;
    db.add_user("sleeper", &hash, "patient", false).await;
    let proxy = mysql_proxy(&upstream, &db, "", "").await;

    let wrong = try_login(&proxy, "alice", "not the password").await;
    let inactive = try_login(&proxy, "sleeper", PASSWORD).await;
    let unknown = try_login(&proxy, "nobody", PASSWORD).await;
    for (case, reply) in [
        ("wrong password", &wrong),
        ("inactive", &inactive),
        ("unknown", &unknown),
    ] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}");
        assert!(reply.text().contains(GENERIC_FAILURE), "{case}");
        assert!(reply.set_cookie("portcullis").is_none(), "{case}");
    }
    let expected = normalized_page(&wrong, "alice");
    assert_eq!(normalized_page(&inactive, "sleeper"), expected);
    assert_eq!(normalized_page(&unknown, "nobody"), expected);

    // The default query also matches the email.
    let session = login(&proxy, "alice@example.com").await;
    let app = get(&proxy.url("/x"), &[("cookie", &session)]).await;
    assert_eq!(app.status, StatusCode::OK);
    assert_eq!(app.upstream_header("x-auth-user"), vec![alice.to_string()]);
    assert_eq!(
        app.upstream_header("x-auth-email"),
        vec!["alice@example.com"]
    );
}

#[tokio::test]
async fn a_user_made_inactive_loses_the_session_at_the_recheck() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    db.add_user("alice", &cheap_hash(), "patient", true).await;
    let proxy = mysql_proxy(&upstream, &db, "", "[session]\nrecheck_interval = \"1s\"\n").await;

    let session = login(&proxy, "alice").await;
    assert_eq!(
        get(&proxy.url("/x"), &[("cookie", &session)]).await.status,
        StatusCode::OK
    );
    db.exec("UPDATE users SET is_active = 0 WHERE username = 'alice'")
        .await;
    let refused = eventually(Duration::from_secs(10), || async {
        get(&proxy.url("/x"), &[("cookie", &session)]).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        refused,
        "an inactive user kept the session past the re-check"
    );

    // Active again, the ended session stays ended.
    db.exec("UPDATE users SET is_active = 1 WHERE username = 'alice'")
        .await;
    let still = get(&proxy.url("/x"), &[("cookie", &session)]).await;
    assert_eq!(still.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changed_roles_apply_at_the_recheck() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    db.add_user("alice", &cheap_hash(), "patient", true).await;
    let proxy = mysql_proxy(&upstream, &db, "", "[session]\nrecheck_interval = \"1s\"\n").await;

    let session = login(&proxy, "alice").await;
    assert_eq!(
        get(&proxy.url("/admin/x"), &[("cookie", &session)])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    db.exec("UPDATE users SET roles = 'admin' WHERE username = 'alice'")
        .await;
    let promoted = eventually(Duration::from_secs(10), || async {
        get(&proxy.url("/admin/x"), &[("cookie", &session)])
            .await
            .status
            == StatusCode::OK
    })
    .await;
    assert!(promoted, "changed roles did not apply at the re-check");
    let admin = get(&proxy.url("/admin/x"), &[("cookie", &session)]).await;
    assert_eq!(admin.upstream_header("x-auth-roles"), vec!["admin"]);
}

#[tokio::test]
async fn rehash_update_rewrites_an_outdated_bcrypt_hash() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    let old = cheap_hash();
    db.add_user("alice", &old, "patient", true).await;
    let proxy = mysql_proxy(
        &upstream,
        &db,
        "rehash_update = \"UPDATE users SET password_hash = ? WHERE id = ?\"",
        "",
    )
    .await;

    login(&proxy, "alice").await;
    let fresh = stored_hash(&db, "alice").await;
    assert!(fresh.starts_with("$2b$12$"), "{fresh}");
    assert!(bcrypt::verify(PASSWORD, &fresh).unwrap());
    // The new hash signs in too.
    login(&proxy, "alice").await;
}

#[tokio::test]
async fn without_rehash_update_the_stored_hash_is_left_alone() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    let old = cheap_hash();
    db.add_user("alice", &old, "patient", true).await;
    let proxy = mysql_proxy(&upstream, &db, "", "").await;

    login(&proxy, "alice").await;
    assert_eq!(stored_hash(&db, "alice").await, old);
}

#[tokio::test]
async fn a_custom_user_query_with_one_placeholder_works() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    let alice = db.add_user("alice", &cheap_hash(), "patient", true).await;
    let proxy = mysql_proxy(
        &upstream,
        &db,
        "user_query = \"SELECT id, username, email, password_hash, roles, is_active AS active FROM users WHERE username = ?\"",
        "",
    )
    .await;

    let session = login(&proxy, "alice").await;
    let app = get(&proxy.url("/x"), &[("cookie", &session)]).await;
    assert_eq!(app.status, StatusCode::OK);
    assert_eq!(app.upstream_header("x-auth-user"), vec![alice.to_string()]);
    // This query knows nothing of emails.
    let by_email = try_login(&proxy, "alice@example.com", PASSWORD).await;
    assert_eq!(by_email.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_user_query_missing_a_column_answers_503_without_detail() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    db.add_user("alice", &cheap_hash(), "patient", true).await;
    let proxy = mysql_proxy(
        &upstream,
        &db,
        "user_query = \"SELECT id, username, email, password_hash, is_active AS active FROM users WHERE username = ?\"",
        "",
    )
    .await;

    let reply = try_login(&proxy, "alice", PASSWORD).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(reply.set_cookie("portcullis").is_none());
    assert_no_internal_text(&reply);
}

#[tokio::test]
async fn an_unreachable_database_answers_503_quickly_and_readyz_says_so() {
    let upstream = Upstream::start().await;
    let url = closed_port_url();
    let proxy = Proxy::start(
        &upstream,
        &format!("[credentials]\nbackend = \"mysql\"\n[credentials.mysql]\nurl = \"{url}\"\n"),
    )
    .await;

    let (cookie, token) = login_form(&proxy).await;
    let started = Instant::now();
    let reply = post_login(&proxy, &cookie, &token, "alice", PASSWORD, "/").await;
    let took = started.elapsed();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(took < Duration::from_secs(5), "login took {took:?}");
    assert!(reply.set_cookie("portcullis").is_none());
    assert_no_internal_text(&reply);

    let ready = get(&format!("http://{}/readyz", proxy.admin_addr), &[]).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text()
    );
}

#[test]
fn check_names_the_mysql_url_when_the_database_is_unreachable() {
    let url = closed_port_url();
    let mut config = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut config,
        format!(
            "[credentials]\nbackend = \"mysql\"\n[credentials.file]\npath = \"/nonexistent/users.toml\"\n[credentials.mysql]\nurl = \"{url}\"\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg("--config")
        .arg(config.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("credentials.mysql.url"), "{err}");
}

/// Regression: the re-check binds the session's username to `user_query`, so
/// a query keyed on email alone never finds the user again and every session
/// ends at its first re-check although the user is still active.
#[tokio::test]
async fn an_email_keyed_user_query_keeps_sessions_across_the_recheck() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    db.add_user("alice", &cheap_hash(), "patient", true).await;
    let proxy = mysql_proxy(
        &upstream,
        &db,
        "user_query = \"SELECT id, username, email, password_hash, roles, is_active AS active FROM users WHERE email = ?\"",
        "[session]\nrecheck_interval = \"1s\"\n",
    )
    .await;
    let session = login(&proxy, "alice@example.com").await;
    assert_eq!(
        get(&proxy.url("/x"), &[("cookie", &session)]).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let app = get(&proxy.url("/x"), &[("cookie", &session)]).await;
    assert_eq!(
        app.status,
        StatusCode::OK,
        "an active user lost the session at the re-check"
    );
}
