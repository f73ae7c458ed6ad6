//! Bearer tokens for API clients: JSON login, bearer access on proxied
//! routes and `/auth/me`, refresh rotation and its grace, logout and the
//! re-check reaching access tokens (on every instance), the login rate, and
//! forged tokens.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::db::{MysqlDb, PgSchema};
use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "tokens-secret-of-at-least-32-bytes!!";

fn bearer(token: &Value) -> String {
    format!("Bearer {}", token.as_str().unwrap())
}

fn secret_toml() -> String {
    format!("[tokens]\nsecret = \"{SECRET}\"\n")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: &Value, key: &str, alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

fn claims(typ: &str) -> Value {
    json!({
        "iss": "portcullis", "aud": "portcullis", "sub": "2", "exp": now() + 600, "iat": now(),
        "nbf": now(), "jti": "x", "typ": typ, "sid": "f", "name": "admin",
        "email": "admin@example.com", "roles": ["admin"]
    })
}

#[tokio::test]
async fn json_login_gives_tokens_that_open_the_app_as_the_user() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let tokens = token_login(&proxy, "demo").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 1800);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 43);

    let reply = get(
        &proxy.url("/chat/"),
        &[("authorization", &bearer(&tokens["access_token"]))],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.upstream_header("x-auth-user"), vec!["1"]);
    assert!(
        reply.upstream_header("authorization").is_empty(),
        "our token is not passed to the app"
    );

    let me = get(
        &proxy.url("/auth/me"),
        &[("authorization", &bearer(&tokens["access_token"]))],
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["auth_method"], "bearer");
    assert_eq!(me.json()["username"], "demo");
    assert_eq!(me.json()["mfa"], false);
    // The refresh family names the sign-in, for the app and for /auth/me.
    let session = reply.upstream_header("x-auth-session");
    assert_eq!(session.len(), 1);
    assert_eq!(me.json()["session"], session[0].as_str());
    let refreshed = send(
        Method::POST,
        &proxy.url("/auth/refresh"),
        &[("content-type", "application/json")],
        json!({"refresh_token": tokens["refresh_token"]}).to_string(),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    let after = get(
        &proxy.url("/chat/"),
        &[("authorization", &bearer(&refreshed.json()["access_token"]))],
    )
    .await;
    assert_eq!(
        after.upstream_header("x-auth-session"),
        session,
        "stable across refreshes"
    );
}

#[tokio::test]
async fn json_login_failures_answer_invalid_credentials() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    for (user, password) in [("demo", "wrong"), ("nobody", PASSWORD), ("gone", PASSWORD)] {
        let reply = json_post(
            &proxy,
            "/auth/login",
            json!({"username": user, "password": password}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.json(), json!({"error": "invalid_credentials"}));
    }
    let malformed = send(
        Method::POST,
        &proxy.url("/auth/login"),
        &[("content-type", "application/json")],
        "{not json",
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refresh_rotates_and_concurrent_refreshes_both_succeed() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let tokens = token_login(&proxy, "demo").await;
    let refresh = tokens["refresh_token"].clone();
    let (a, b) = tokio::join!(
        json_post(&proxy, "/auth/refresh", json!({"refresh_token": refresh})),
        json_post(&proxy, "/auth/refresh", json!({"refresh_token": refresh})),
    );
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(b.status, StatusCode::OK, "{}", b.text());
    let next = a.json();
    assert_ne!(next["refresh_token"], refresh);
    assert_eq!(b.json(), next, "both tabs get the same successor pair");
    let reply = get(
        &proxy.url("/x"),
        &[("authorization", &bearer(&next["access_token"]))],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let again = json_post(
        &proxy,
        "/auth/refresh",
        json!({"refresh_token": next["refresh_token"]}),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_refresh_tokens_answer_invalid_grant() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    for body in [
        json!({"refresh_token": "nope"}),
        json!({}),
        json!({"refresh_token": ""}),
    ] {
        let reply = json_post(&proxy, "/auth/refresh", body).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.json(), json!({"error": "invalid_grant"}));
    }
    // An access token is not a refresh token.
    let tokens = token_login(&proxy, "demo").await;
    let reply = json_post(
        &proxy,
        "/auth/refresh",
        json!({"refresh_token": tokens["access_token"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_with_a_bearer_token_ends_its_access_and_refresh_tokens() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let tokens = token_login(&proxy, "demo").await;
    let other = token_login(&proxy, "demo").await;
    let access = bearer(&tokens["access_token"]);
    assert_eq!(
        get(&proxy.url("/x"), &[("authorization", &access)])
            .await
            .status,
        StatusCode::OK
    );
    let out = send(
        Method::POST,
        &proxy.url("/auth/logout"),
        &[("authorization", &access)],
        "",
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    // Regression: the access token stayed good until its `exp`.
    for path in ["/x", "/auth/me"] {
        let reply = get(&proxy.url(path), &[("authorization", &access)]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let reply = json_post(
        &proxy,
        "/auth/refresh",
        json!({"refresh_token": tokens["refresh_token"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Another sign-in of the same user is its own family and stays.
    assert_eq!(
        get(
            &proxy.url("/x"),
            &[("authorization", &bearer(&other["access_token"]))]
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_refresh_repeated_within_the_grace_returns_the_identical_pair() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let tokens = token_login(&proxy, "demo").await;
    let body = json!({"refresh_token": tokens["refresh_token"]});
    let first = json_post(&proxy, "/auth/refresh", body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let again = json_post(&proxy, "/auth/refresh", body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    // Regression: the repeat minted a second, different pair.
    assert_eq!(again.json(), first.json());
    // The one pair works, and rotates on.
    let next = first.json();
    assert_eq!(
        get(
            &proxy.url("/x"),
            &[("authorization", &bearer(&next["access_token"]))]
        )
        .await
        .status,
        StatusCode::OK
    );
    let rotated = json_post(
        &proxy,
        "/auth/refresh",
        json!({"refresh_token": next["refresh_token"]}),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_ne!(rotated.json()["refresh_token"], next["refresh_token"]);
}

#[tokio::test]
async fn refresh_counts_against_the_login_ip_rate() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "[login]\nip_rate = \"3/min\"\n").await;
    // One JSON login and two refreshes use up the budget of three.
    let tokens = token_login(&proxy, "demo").await;
    let refreshed = json_post(
        &proxy,
        "/auth/refresh",
        json!({"refresh_token": tokens["refresh_token"]}),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let unknown = json_post(&proxy, "/auth/refresh", json!({"refresh_token": "guess"})).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let limited = json_post(
        &proxy,
        "/auth/refresh",
        json!({"refresh_token": refreshed.json()["refresh_token"]}),
    )
    .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json(), json!({"error": "rate_limited"}));
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let login = json_post(
        &proxy,
        "/auth/login",
        json!({"username": "demo", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        login.status,
        StatusCode::TOO_MANY_REQUESTS,
        "one shared budget"
    );
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &secret_toml()).await;
    // The real thing works, to show the forgeries below differ only in what they change.
    let genuine = sign(&claims("access"), SECRET, jsonwebtoken::Algorithm::HS256);
    assert_eq!(
        get(
            &proxy.url("/admin/x"),
            &[("authorization", &format!("Bearer {genuine}"))]
        )
        .await
        .status,
        StatusCode::OK
    );
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims("access").to_string());
    let crit_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","crit":["x"]}"#);
    let mut expired = claims("access");
    expired["exp"] = json!(now() - 3600);
    let mut no_iss = claims("access");
    no_iss.as_object_mut().unwrap().remove("iss");
    let mut other_aud = claims("access");
    other_aud["aud"] = json!("someone-else");
    let forgeries = [
        format!("{none_header}.{body}."),
        sign(
            &claims("access"),
            "another-secret-of-at-least-32-bytes",
            jsonwebtoken::Algorithm::HS256,
        ),
        sign(&claims("access"), SECRET, jsonwebtoken::Algorithm::HS512),
        sign(&claims("refresh"), SECRET, jsonwebtoken::Algorithm::HS256),
        sign(&claims("sso"), SECRET, jsonwebtoken::Algorithm::HS256),
        sign(&expired, SECRET, jsonwebtoken::Algorithm::HS256),
        sign(&no_iss, SECRET, jsonwebtoken::Algorithm::HS256),
        sign(&other_aud, SECRET, jsonwebtoken::Algorithm::HS256),
        format!(
            "{crit_header}.{body}.{}",
            genuine.rsplit('.').next().unwrap()
        ),
        format!("{genuine}{}", "A".repeat(9 * 1024)),
        "garbage".to_string(),
    ];
    for (i, token) in forgeries.iter().enumerate() {
        let reply = get(
            &proxy.url("/admin/x"),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "forgery {i} was accepted"
        );
    }
}

#[tokio::test]
async fn tokens_work_across_instances_sharing_postgres() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let a = Proxy::start(&upstream, &schema.toml()).await;
    let b = Proxy::start(&upstream, &schema.toml()).await;
    let ready = |p: &Proxy| format!("http://{}/readyz", p.admin_addr);
    for proxy in [&a, &b] {
        let url = ready(proxy);
        assert!(
            eventually(std::time::Duration::from_secs(10), || async {
                get(&url, &[]).await.status == StatusCode::OK
            })
            .await
        );
    }
    let tokens = token_login(&a, "demo").await;
    let on_b = get(
        &b.url("/x"),
        &[("authorization", &bearer(&tokens["access_token"]))],
    )
    .await;
    assert_eq!(on_b.status, StatusCode::OK, "the signing key is shared");
    let rotated = json_post(
        &b,
        "/auth/refresh",
        json!({"refresh_token": tokens["refresh_token"]}),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
}

async fn pg_proxy(upstream: &Upstream, schema: &PgSchema) -> Proxy {
    let proxy = Proxy::start(upstream, &schema.toml()).await;
    proxy.wait_ready().await;
    proxy
}

/// SPEC: revocation reaches every instance within 1 second; the margin
/// covers the test's own requests, not the proxy.
const PROPAGATION: std::time::Duration = std::time::Duration::from_millis(1250);

async fn status_with(proxy: &Proxy, path: &str, access: &str) -> StatusCode {
    get(&proxy.url(path), &[("authorization", access)])
        .await
        .status
}

#[tokio::test]
async fn a_bearer_logout_on_one_instance_is_refused_by_another_within_a_second() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let a = pg_proxy(&upstream, &schema).await;
    let b = pg_proxy(&upstream, &schema).await;
    let tokens = token_login(&a, "demo").await;
    let access = bearer(&tokens["access_token"]);
    assert_eq!(status_with(&b, "/x", &access).await, StatusCode::OK);
    let out = send(
        Method::POST,
        &a.url("/auth/logout"),
        &[("authorization", &access)],
        "",
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let refused = eventually(PROPAGATION, || async {
        status_with(&b, "/x", &access).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        refused,
        "instance B still accepts an access token revoked on A"
    );
    assert_eq!(
        status_with(&a, "/auth/me", &access).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_instance_started_after_a_revocation_refuses_the_token() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let a = pg_proxy(&upstream, &schema).await;
    let tokens = token_login(&a, "demo").await;
    let access = bearer(&tokens["access_token"]);
    let out = send(
        Method::POST,
        &a.url("/auth/logout"),
        &[("authorization", &access)],
        "",
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let later = pg_proxy(&upstream, &schema).await;
    assert_eq!(
        status_with(&later, "/x", &access).await,
        StatusCode::UNAUTHORIZED,
        "the revoked families are loaded at start"
    );
}

#[tokio::test]
async fn the_grace_returns_the_same_pair_on_every_instance() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let a = pg_proxy(&upstream, &schema).await;
    let b = pg_proxy(&upstream, &schema).await;
    let tokens = token_login(&a, "demo").await;
    let body = json!({"refresh_token": tokens["refresh_token"]});
    let (first, second) = tokio::join!(
        json_post(&a, "/auth/refresh", body.clone()),
        json_post(&b, "/auth/refresh", body.clone()),
    );
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(first.json(), second.json(), "one successor pair");
    let third = json_post(&b, "/auth/refresh", body).await;
    assert_eq!(third.json(), first.json());
    // Only its hash and a sealed copy are stored, never the pair as is.
    let pair = first.json();
    let dump: String = schema
        .client()
        .await
        .query_one(
            "SELECT coalesce(string_agg(refresh_tokens::text, ' '), '') FROM refresh_tokens",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for token in ["access_token", "refresh_token"] {
        assert!(
            !dump.contains(pair[token].as_str().unwrap()),
            "{token} stored as is"
        );
    }
}

/// A cost-4 bcrypt hash of [`PASSWORD`].
fn cheap_hash() -> String {
    bcrypt::hash(PASSWORD, 4).unwrap()
}

#[tokio::test]
async fn a_bearer_caller_made_inactive_is_refused_at_the_recheck() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    db.add_user("alice", &cheap_hash(), "patient", true).await;
    let extra = format!("{}[session]\nrecheck_interval = \"1s\"\n", db.toml(""));
    let proxy = Proxy::start(&upstream, &extra).await;
    let tokens = token_login(&proxy, "alice").await;
    let access = bearer(&tokens["access_token"]);
    assert_eq!(status_with(&proxy, "/x", &access).await, StatusCode::OK);
    db.exec("UPDATE users SET is_active = 0 WHERE username = 'alice'")
        .await;
    let refused = eventually(std::time::Duration::from_secs(10), || async {
        status_with(&proxy, "/x", &access).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "an inactive user's access token is still accepted");
    // The family is revoked, not merely refused for now.
    db.exec("UPDATE users SET is_active = 1 WHERE username = 'alice'")
        .await;
    assert_eq!(
        status_with(&proxy, "/x", &access).await,
        StatusCode::UNAUTHORIZED
    );
    let refresh = json_post(
        &proxy,
        "/auth/refresh",
        json!({"refresh_token": tokens["refresh_token"]}),
    )
    .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changed_roles_apply_to_a_bearer_caller_at_the_recheck() {
    let upstream = Upstream::start().await;
    let db = MysqlDb::create().await;
    db.add_user("alice", &cheap_hash(), "patient", true).await;
    let extra = format!("{}[session]\nrecheck_interval = \"1s\"\n", db.toml(""));
    let proxy = Proxy::start(&upstream, &extra).await;
    let tokens = token_login(&proxy, "alice").await;
    let access = bearer(&tokens["access_token"]);
    assert_eq!(
        status_with(&proxy, "/admin/x", &access).await,
        StatusCode::FORBIDDEN
    );
    db.exec("UPDATE users SET roles = 'admin' WHERE username = 'alice'")
        .await;
    let promoted = eventually(std::time::Duration::from_secs(10), || async {
        status_with(&proxy, "/admin/x", &access).await == StatusCode::OK
    })
    .await;
    assert!(promoted, "the re-read roles did not apply");
    let reply = get(&proxy.url("/admin/x"), &[("authorization", &access)]).await;
    assert_eq!(reply.upstream_header("x-auth-roles"), vec!["admin"]);
}
