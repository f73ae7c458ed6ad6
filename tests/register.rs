//! Self-service sign-up into the MySQL users table.

mod common;

use common::db::MysqlDb;
use common::*;
use http::{Method, StatusCode};
use serde_json::json;

const INSERT: &str = "INSERT INTO users (username, email, password_hash, roles, is_active) VALUES (?, ?, ?, 'patient', 1)";

async fn proxy_with_registration(upstream: &Upstream, db: &MysqlDb) -> Proxy {
    let extra = format!(
        "{}[registration]\nenabled = true\ninsert = \"{INSERT}\"\n",
        db.toml("")
    );
    Proxy::start(upstream, &extra).await
}

async fn register(proxy: &Proxy, body: serde_json::Value) -> Reply {
    send(
        Method::POST,
        &proxy.url("/auth/register"),
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn a_new_user_can_register_then_sign_in() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    let proxy = proxy_with_registration(&upstream, &db).await;
    let password = "violet-harbour-tunes-42";
    let reply = register(
        &proxy,
        json!({"username": "newbie", "email": "newbie@example.com", "password": password}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());

    let (cookie, token) = login_form(&proxy).await;
    let login = post_login(&proxy, &cookie, &token, "newbie", password, "/").await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let session = login.set_cookie("portcullis").unwrap();
    let app = get(&proxy.url("/x"), &[("cookie", &session)]).await;
    assert_eq!(app.upstream_header("x-auth-roles"), vec!["patient"]);

    let form = send(
        Method::POST,
        &proxy.url("/auth/register"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "http://127.0.0.1"),
        ],
        "username=formuser&email=formuser%40example.com&password=another-long-phrase-77",
    )
    .await;
    assert_eq!(form.status, StatusCode::CREATED, "{}", form.text());

    let cross_site = send(
        Method::POST,
        &proxy.url("/auth/register"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "https://evil.example"),
        ],
        "username=crosssite&email=crosssite%40example.com&password=another-long-phrase-77",
    )
    .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn taken_username_or_email_is_409() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    db.add_user(
        "taken",
        &bcrypt::hash(PASSWORD, 4).unwrap(),
        "patient",
        true,
    )
    .await;
    let proxy = proxy_with_registration(&upstream, &db).await;
    let password = "violet-harbour-tunes-42";
    for body in [
        json!({"username": "taken", "email": "other@example.com", "password": password}),
        json!({"username": "other", "email": "taken@example.com", "password": password}),
    ] {
        let reply = register(&proxy, body).await;
        assert_eq!(reply.status, StatusCode::CONFLICT);
        assert_eq!(reply.json()["error"], "taken");
    }
}

#[tokio::test]
async fn weak_password_is_422_with_every_reason() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    let proxy = proxy_with_registration(&upstream, &db).await;
    let reply = register(
        &proxy,
        json!({"username": "shorty", "email": "shorty@example.com", "password": "shorty"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reasons = reply.json()["reasons"].as_array().unwrap().clone();
    assert!(reasons.len() >= 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("at least 12")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().unwrap().contains("username")),
        "{reasons:?}"
    );
    let common = register(
        &proxy,
        json!({"username": "someone", "email": "someone@example.com", "password": "password123"}),
    )
    .await;
    assert_eq!(common.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn registration_is_off_unless_enabled() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let reply = register(
        &proxy,
        json!({"username": "x", "email": "x@example.com", "password": "violet-harbour-tunes-42"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[test]
fn registration_needs_the_mysql_backend_and_a_three_value_insert() {
    let err = portcullis::Config::from_toml(
        "[registration]\nenabled = true\ninsert = \"INSERT INTO users VALUES (?)\"\n",
        std::path::Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("registration.enabled") && err.contains("registration.insert"),
        "{err}"
    );
}
