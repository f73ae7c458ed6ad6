//! What the account features write to the app's own MariaDB users table:
//! `login_update` after every kind of sign-in, for that user's row only
//! (and a failing one never fails the sign-in); the password change through
//! `password_update` (policy, wrong current password counted towards the
//! lockout, the new hash stored, every other session and token family of
//! the user ended, this session kept). Each test owns a database.

mod common;

use std::time::Duration;

use common::db::MysqlDb;
use common::*;
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const TOKENS: &str = "[tokens]\nsecret = \"tokens-secret-of-at-least-32-bytes!!\"\n";
const NEW_PASSWORD: &str = "violet-harbour-tunes-42";
const LOGIN_UPDATE: &str = "login_update = \"UPDATE users SET last_login = NOW() WHERE id = ?\"";
const PASSWORD_UPDATE: &str =
    "password_update = \"UPDATE users SET password_hash = ? WHERE id = ?\"";

/// A users table with a `last_login` column and users `alice` and `bob`
/// (cost-4 hashes of [`PASSWORD`]).
async fn users_db() -> MysqlDb {
    let db = MysqlDb::create().await;
    db.exec("ALTER TABLE users ADD COLUMN last_login DATETIME NULL")
        .await;
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    db.add_user("alice", &hash, "patient", true).await;
    db.add_user("bob", &hash, "patient", true).await;
    db
}

async fn column(db: &MysqlDb, username: &str, column: &str) -> Option<String> {
    let mut conn = db.conn().await;
    let value: Option<Option<String>> = conn
        .exec_first(
            format!("SELECT CAST({column} AS CHAR) FROM users WHERE username = ?"),
            (username,),
        )
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    value.flatten()
}

async fn json_login(proxy: &Proxy, user: &str, password: &str) -> Reply {
    send(
        Method::POST,
        &proxy.url("/auth/login"),
        &[("content-type", "application/json")],
        json!({"username": user, "password": password}).to_string(),
    )
    .await
}

async fn try_login(proxy: &Proxy, user: &str, password: &str) -> StatusCode {
    let (cookie, token) = login_form(proxy).await;
    post_login(proxy, &cookie, &token, user, password, "/")
        .await
        .status
}

fn partner_token(email: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": "https://partner-a.example", "aud": "growbal", "iat": now, "exp": now + 60,
        "jti": format!("{:x}", rand::random::<u64>()), "email": email
    });
    let key = std::fs::read(format!("{FIXTURES}/partner-rsa.key")).unwrap();
    let key = EncodingKey::from_rsa_pem(&key).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

const PARTNER: &str =
    "[[sso.partners]]\nname = \"partner-a\"\nissuer = \"https://partner-a.example\"\n\
    audience = \"growbal\"\nalgorithms = [\"RS256\"]\nuser_claim = \"email\"\n";

#[tokio::test]
async fn login_update_runs_for_the_signed_in_user_only_after_every_kind_of_sign_in() {
    let upstream = Upstream::start().await;
    let db = users_db().await;
    db.add_user(
        "carol",
        &bcrypt::hash(PASSWORD, 4).unwrap(),
        "patient",
        true,
    )
    .await;
    let partner = format!("{PARTNER}key = \"{FIXTURES}/partner-rsa.pub.pem\"\n");
    let proxy = Proxy::start(
        &upstream,
        &format!("{}{TOKENS}{partner}", db.toml(LOGIN_UPDATE)),
    )
    .await;
    let stamped = |user: &'static str| {
        let db = &db;
        async move { column(db, user, "last_login").await.is_some() }
    };

    // A failed sign-in records nothing.
    assert_eq!(
        try_login(&proxy, "alice", "wrong password").await,
        StatusCode::UNAUTHORIZED
    );
    login(&proxy, "alice").await;
    assert!(eventually(Duration::from_secs(5), || stamped("alice")).await);
    assert!(!stamped("bob").await && !stamped("carol").await);

    let reply = json_login(&proxy, "bob", PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(eventually(Duration::from_secs(5), || stamped("bob")).await);
    assert!(!stamped("carol").await);

    let query = serde_urlencoded::to_string([
        ("token", partner_token("carol@example.com").as_str()),
        ("next", "/"),
    ])
    .unwrap();
    let handoff = get(&proxy.url(&format!("/auth/sso?{query}")), &[]).await;
    assert_eq!(handoff.status, StatusCode::SEE_OTHER, "{}", handoff.text());
    assert!(eventually(Duration::from_secs(5), || stamped("carol")).await);
}

#[tokio::test]
async fn a_failing_login_update_does_not_fail_the_sign_in() {
    let upstream = Upstream::start().await;
    let db = users_db().await;
    let broken = "login_update = \"UPDATE users SET no_such_column = NOW() WHERE id = ?\"";
    let proxy = Proxy::start(&upstream, &db.toml(broken)).await;
    let session = login(&proxy, "alice").await;
    let me = get(&proxy.url("/auth/me"), &[("cookie", &session)]).await;
    assert_eq!(me.status, StatusCode::OK);
}

/// The account page's token for `cookie`.
async fn page_token(proxy: &Proxy, cookie: &str) -> String {
    let page = get(&proxy.url("/auth/account"), &[("cookie", cookie)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(
        page.text().contains("name=\"new_password\""),
        "password form"
    );
    csrf_token_in(&page.text())
}

async fn change(proxy: &Proxy, cookie: &str, current: &str, new: &str) -> Reply {
    let token = page_token(proxy, cookie).await;
    let body = serde_urlencoded::to_string([
        ("current_password", current),
        ("new_password", new),
        ("csrf_token", token.as_str()),
    ])
    .unwrap();
    send(
        Method::POST,
        &proxy.url("/auth/account/password"),
        &[
            ("cookie", cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body,
    )
    .await
}

async fn signed_in(proxy: &Proxy, cookie: &str) -> bool {
    let me = get(&proxy.url("/auth/me"), &[("cookie", cookie)]).await;
    me.status == StatusCode::OK
}

#[tokio::test]
async fn a_password_change_stores_the_new_hash_and_ends_every_other_sign_in() {
    let upstream = Upstream::start().await;
    let db = users_db().await;
    let proxy = Proxy::start(&upstream, &format!("{}{TOKENS}", db.toml(PASSWORD_UPDATE))).await;
    let here = login(&proxy, "alice").await;
    let elsewhere = login(&proxy, "alice").await;
    let bob = login(&proxy, "bob").await;
    let tokens: Value = json_login(&proxy, "alice", PASSWORD).await.json();
    let old_hash = column(&db, "alice", "password_hash").await.unwrap();

    // The policy first: every reason, nothing stored.
    let weak = change(&proxy, &here, PASSWORD, "alice").await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    let text = weak.text();
    assert!(text.contains("at least 12 characters"), "{text}");
    assert!(text.contains("must not contain the username"), "{text}");
    let common = change(&proxy, &here, PASSWORD, "password123").await;
    assert!(common.text().contains("most common passwords"));

    let wrong = change(&proxy, &here, "not my password", NEW_PASSWORD).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("current password is not correct"));
    assert_eq!(
        column(&db, "alice", "password_hash").await.unwrap(),
        old_hash
    );

    let changed = change(&proxy, &here, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.text());
    assert_eq!(
        changed.header("location"),
        Some("/auth/account?done=password")
    );
    let stored = column(&db, "alice", "password_hash").await.unwrap();
    assert!(stored.starts_with("$2b$12$"), "cost 12: {stored}");
    assert!(bcrypt::verify(NEW_PASSWORD, &stored).unwrap());

    // This session stays; every other sign-in of alice ends; bob's stays.
    assert!(signed_in(&proxy, &here).await);
    assert!(!signed_in(&proxy, &elsewhere).await);
    assert!(signed_in(&proxy, &bob).await);
    let refresh = send(
        Method::POST,
        &proxy.url("/auth/refresh"),
        &[("content-type", "application/json")],
        json!({"refresh_token": tokens["refresh_token"]}).to_string(),
    )
    .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let me = get(&proxy.url("/auth/me"), &[("authorization", &bearer)]).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "access token refused");
    let page = get(
        &proxy.url("/auth/account?done=password"),
        &[("cookie", &here)],
    )
    .await;
    assert!(page.text().contains("Your password was changed."));

    assert_eq!(
        try_login(&proxy, "alice", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        try_login(&proxy, "alice", NEW_PASSWORD).await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_wrong_current_password_counts_towards_the_lockout() {
    let upstream = Upstream::start().await;
    let db = users_db().await;
    let extra = format!(
        "{}[login]\nmax_failures = 2\nlockout = \"10m\"\n",
        db.toml(PASSWORD_UPDATE)
    );
    let proxy = Proxy::start(&upstream, &extra).await;
    let session = login(&proxy, "alice").await;
    for _ in 0..2 {
        let wrong = change(&proxy, &session, "guess", NEW_PASSWORD).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    // Locked: neither the right current password nor a sign-in works.
    let locked = change(&proxy, &session, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(locked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        try_login(&proxy, "alice", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    let hash = column(&db, "alice", "password_hash").await.unwrap();
    assert!(bcrypt::verify(PASSWORD, &hash).unwrap(), "nothing stored");
}
