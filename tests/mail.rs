//! Password reset and address verification by mail, end to end: a real
//! SMTP conversation with the test server of `common::smtp`, the users in
//! MariaDB (a database per test), the proxy in-process.

mod common;

use std::time::Duration;

use common::db::{MysqlDb, PgSchema};
use common::smtp::{closed_port, Mail, SmtpServer};
use common::*;
use http::{Method, StatusCode};
use mysql_async::prelude::Queryable;

const PASSWORD_UPDATE: &str = "UPDATE users SET password_hash = ? WHERE id = ?";
const NEW_PASSWORD: &str = "violet-harbour-tunes-42";
/// Mail goes through a queue; it normally lands within milliseconds.
const MAIL_WAIT: Duration = Duration::from_secs(10);

fn mail_toml(smtp: &str, reset_ttl: &str) -> String {
    format!(
        "[mail]\nsmtp = \"{smtp}\"\nfrom = \"portcullis <no-reply@example.com>\"\nreset_ttl = \"{reset_ttl}\"\n"
    )
}

/// MariaDB with `alice` and `bob` (cost-4 bcrypt of [`PASSWORD`]).
async fn users_db() -> MysqlDb {
    let db = MysqlDb::create().await;
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    db.add_user("alice", &hash, "patient", true).await;
    db.add_user("bob", &hash, "patient", true).await;
    db
}

/// A proxy with reset configured (`password_update`, `[mail]`) and `more`
/// TOML appended.
async fn reset_proxy(
    upstream: &Upstream,
    db: &MysqlDb,
    smtp: &str,
    ttl: &str,
    more: &str,
) -> Proxy {
    let extra = format!(
        "{}{}{more}",
        db.toml(&format!("password_update = \"{PASSWORD_UPDATE}\"")),
        mail_toml(smtp, ttl)
    );
    Proxy::start(upstream, &extra).await
}

/// Opens the reset form: `(csrf cookie, csrf token)`.
async fn reset_form(proxy: &Proxy) -> (String, String) {
    let page = get(&proxy.url("/auth/reset"), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let cookie = page.set_cookie("portcullis-csrf").expect("CSRF cookie");
    (cookie, csrf_token_in(&page.text()))
}

/// Asks for a reset link for `login` the way the form does.
async fn request_reset(proxy: &Proxy, login: &str) -> Reply {
    let (cookie, token) = reset_form(proxy).await;
    let body = serde_urlencoded::to_string([("login", login), ("csrf_token", &token)]).unwrap();
    send(
        Method::POST,
        &proxy.url("/auth/reset"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", &cookie),
        ],
        body,
    )
    .await
}

fn confirm_path(token: &str) -> String {
    format!("/auth/reset/confirm?token={token}")
}

/// Opens the mailed link's page and posts `password` with its form.
async fn confirm(proxy: &Proxy, token: &str, password: &str) -> Reply {
    let page = get(&proxy.url(&confirm_path(token)), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let body = serde_urlencoded::to_string([
        ("new_password", password),
        ("csrf_token", &csrf_token_in(&page.text())),
    ])
    .unwrap();
    post_confirm(proxy, token, body).await
}

async fn post_confirm(proxy: &Proxy, token: &str, body: String) -> Reply {
    send(
        Method::POST,
        &proxy.url(&confirm_path(token)),
        &[("content-type", "application/x-www-form-urlencoded")],
        body,
    )
    .await
}

async fn sign_in(proxy: &Proxy, user: &str, password: &str) -> Reply {
    let (cookie, token) = login_form(proxy).await;
    post_login(proxy, &cookie, &token, user, password, "/").await
}

fn reset_token(mail: &Mail) -> String {
    mail.token("/auth/reset/confirm")
        .expect("a reset link in the mail")
}

#[tokio::test]
async fn the_mailed_link_sets_a_new_password_once() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let proxy = reset_proxy(&upstream, &db, &smtp.url(), "30m", "").await;

    let reply = request_reset(&proxy, "alice").await;
    assert_eq!(reply.status, StatusCode::OK);
    let mails = smtp.wait_for(1, MAIL_WAIT).await;
    let mail = &mails[0];
    assert_eq!(mail.to, ["alice@example.com"]);
    assert!(mail.header("Subject").contains("Reset your password"));
    let link = mail.link("/auth/reset/confirm").unwrap();
    let token = reset_token(mail);
    assert_eq!(
        link,
        format!("http://127.0.0.1/auth/reset/confirm?token={token}")
    );
    assert_eq!(token.len(), 43, "32 random bytes, base64url");
    assert!(
        mail.part("text/html").unwrap().contains(&link),
        "HTML part too"
    );

    let done = confirm(&proxy, &token, NEW_PASSWORD).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.header("location"), Some("/auth/login"));
    assert_eq!(
        sign_in(&proxy, "alice", NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_in(&proxy, "alice", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Single use: the page and the form are both gone.
    let again = get(&proxy.url(&confirm_path(&token)), &[]).await;
    assert_eq!(again.status, StatusCode::GONE);
    let body = serde_urlencoded::to_string([("new_password", "another-long-phrase-77")]).unwrap();
    assert_eq!(
        post_confirm(&proxy, &token, body).await.status,
        StatusCode::GONE
    );
    assert_eq!(
        sign_in(&proxy, "alice", NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn an_unknown_account_gets_the_same_page_and_no_mail() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let proxy = reset_proxy(&upstream, &db, &smtp.url(), "30m", "").await;

    let unknown = request_reset(&proxy, "nobody").await;
    let known = request_reset(&proxy, "bob@example.com").await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.status, known.status);
    assert_eq!(unknown.text(), known.text(), "the same page either way");
    // Only the known account's mail arrives (the queue is delivered in
    // order, and the unknown name was asked for first).
    let mails = smtp.wait_for(1, MAIL_WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["bob@example.com"]);
}

#[tokio::test]
async fn a_reset_link_expires() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let proxy = reset_proxy(&upstream, &db, &smtp.url(), "2s", "").await;
    request_reset(&proxy, "alice").await;
    let token = reset_token(&smtp.wait_for(1, MAIL_WAIT).await[0]);
    let expired = eventually(Duration::from_secs(10), || async {
        get(&proxy.url(&confirm_path(&token)), &[]).await.status == StatusCode::GONE
    })
    .await;
    assert!(expired, "the link still works after reset_ttl");
    let body = serde_urlencoded::to_string([("new_password", NEW_PASSWORD)]).unwrap();
    assert_eq!(
        post_confirm(&proxy, &token, body).await.status,
        StatusCode::GONE
    );
    assert_eq!(
        sign_in(&proxy, "alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_reset_ends_every_session_and_token_family_of_the_user() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let proxy = reset_proxy(&upstream, &db, &smtp.url(), "30m", "").await;
    let first = login(&proxy, "alice").await;
    let second = login(&proxy, "alice").await;
    let bob = login(&proxy, "bob").await;
    let tokens = send(
        Method::POST,
        &proxy.url("/auth/login"),
        &[("content-type", "application/json")],
        serde_json::json!({"username": "alice", "password": PASSWORD}).to_string(),
    )
    .await
    .json();
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    assert_eq!(
        get(&proxy.url("/x"), &[("authorization", &bearer)])
            .await
            .status,
        StatusCode::OK
    );

    request_reset(&proxy, "alice").await;
    let token = reset_token(&smtp.wait_for(1, MAIL_WAIT).await[0]);
    assert_eq!(
        confirm(&proxy, &token, NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );

    for cookie in [&first, &second] {
        let reply = get(
            &proxy.url("/x"),
            &[("cookie", cookie), ("accept", "application/json")],
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "a session outlived the reset"
        );
    }
    let refused = eventually(Duration::from_secs(1), || async {
        get(&proxy.url("/x"), &[("authorization", &bearer)])
            .await
            .status
            == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "the access token outlived the reset");
    let refresh = send(
        Method::POST,
        &proxy.url("/auth/refresh"),
        &[("content-type", "application/json")],
        serde_json::json!({"refresh_token": tokens["refresh_token"]}).to_string(),
    )
    .await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    let other = get(&proxy.url("/x"), &[("cookie", &bob)]).await;
    assert_eq!(other.status, StatusCode::OK, "another user's session stays");
}

#[tokio::test]
async fn a_weak_new_password_is_422_with_every_reason_and_the_link_still_works() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let proxy = reset_proxy(&upstream, &db, &smtp.url(), "30m", "").await;
    request_reset(&proxy, "alice").await;
    let token = reset_token(&smtp.wait_for(1, MAIL_WAIT).await[0]);
    let weak = confirm(&proxy, &token, "alice1").await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = weak.text();
    assert!(page.contains("at least 12"), "{page}");
    assert!(page.contains("must not contain the username"), "{page}");
    assert_eq!(
        confirm(&proxy, &token, "password123").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        confirm(&proxy, &token, NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

/// `password_update` runs with the new hash and the right id: the other
/// rows keep theirs.
#[tokio::test]
async fn password_update_changes_only_the_users_row() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let proxy = reset_proxy(&upstream, &db, &smtp.url(), "30m", "").await;
    let hashes = || async {
        let mut conn = db.conn().await;
        let rows: Vec<(String, String)> = conn
            .query("SELECT username, password_hash FROM users ORDER BY id")
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
        rows
    };
    let before = hashes().await;
    request_reset(&proxy, "alice").await;
    let token = reset_token(&smtp.wait_for(1, MAIL_WAIT).await[0]);
    assert_eq!(
        confirm(&proxy, &token, NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let after = hashes().await;
    assert_eq!(after[1], before[1], "bob's row is untouched");
    assert_ne!(after[0].1, before[0].1);
    assert!(bcrypt::verify(NEW_PASSWORD, &after[0].1).unwrap());
}

#[tokio::test]
async fn an_smtp_server_that_is_down_delays_mail_without_failing_the_page() {
    let (upstream, db) = (Upstream::start().await, users_db().await);
    let (held, port) = closed_port();
    let proxy = reset_proxy(
        &upstream,
        &db,
        &format!("smtp://127.0.0.1:{port}"),
        "30m",
        "",
    )
    .await;
    let reply = request_reset(&proxy, "alice").await;
    assert_eq!(reply.status, StatusCode::OK);
    let ready = get(&format!("http://{}/readyz", proxy.admin_addr), &[]).await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "readiness does not depend on mail"
    );
    // The server comes up: the queued mail is retried and arrives.
    drop(held);
    let smtp = SmtpServer::start_on(port).await;
    let mails = smtp.wait_for(1, Duration::from_secs(40)).await;
    assert_eq!(mails[0].to, ["alice@example.com"]);
    assert_eq!(
        confirm(&proxy, &reset_token(&mails[0]), NEW_PASSWORD)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn reset_requests_are_rate_limited_per_ip_and_per_account() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let proxy = reset_proxy(
        &upstream,
        &db,
        &smtp.url(),
        "30m",
        "[login]\nip_rate = \"4/min\"\n",
    )
    .await;
    // Twice for alice within a minute: one mail.
    assert_eq!(request_reset(&proxy, "alice").await.status, StatusCode::OK);
    assert_eq!(
        request_reset(&proxy, "alice@example.com").await.status,
        StatusCode::OK
    );
    assert_eq!(request_reset(&proxy, "bob").await.status, StatusCode::OK);
    let mails = smtp.wait_for(2, MAIL_WAIT).await;
    let mut to: Vec<_> = mails.iter().map(|m| m.to[0].clone()).collect();
    to.sort();
    assert_eq!(to, ["alice@example.com", "bob@example.com"]);
    // The fourth attempt from this address fills login.ip_rate, the fifth
    // is over it.
    assert_eq!(request_reset(&proxy, "nobody").await.status, StatusCode::OK);
    let limited = request_reset(&proxy, "nobody").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
}

#[tokio::test]
async fn the_reset_form_needs_its_csrf_token_or_our_origin() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let proxy = reset_proxy(&upstream, &db, &smtp.url(), "30m", "").await;
    let form = |origin: &'static str| {
        let url = proxy.url("/auth/reset");
        async move {
            send(
                Method::POST,
                &url,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("origin", origin),
                ],
                "login=alice",
            )
            .await
        }
    };
    assert_eq!(
        form("https://evil.example").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(form("http://127.0.0.1").await.status, StatusCode::OK);
    assert_eq!(smtp.wait_for(1, MAIL_WAIT).await.len(), 1);
}

#[tokio::test]
async fn reset_exists_only_with_mail_and_password_update() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let without = Proxy::start(
        &upstream,
        &format!("{}{}", db.toml(""), mail_toml(&smtp.url(), "30m")),
    )
    .await;
    assert_eq!(
        get(&without.url("/auth/reset"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!get(&without.url("/auth/login"), &[])
        .await
        .text()
        .contains("/auth/reset"));

    let with = reset_proxy(&upstream, &db, &smtp.url(), "30m", "").await;
    let page = get(&with.url("/auth/login"), &[]).await.text();
    assert!(
        page.contains("href=\"/auth/reset\""),
        "the sign-in page links to reset: {page}"
    );
}

#[tokio::test]
async fn verification_gates_sign_in_until_the_mailed_link_is_followed() {
    let (upstream, smtp) = (Upstream::start().await, SmtpServer::start().await);
    let db = MysqlDb::create().await;
    let extra = format!(
        "{}{}[registration]\nenabled = true\nverify_email = true\n\
         insert = \"INSERT INTO users (username, email, password_hash, roles, is_active) VALUES (?, ?, ?, 'patient', 0)\"\n\
         activate = \"UPDATE users SET is_active = 1 WHERE id = ?\"\n",
        db.toml(""),
        mail_toml(&smtp.url(), "30m")
    );
    let proxy = Proxy::start(&upstream, &extra).await;
    let registered = send(
        Method::POST,
        &proxy.url("/auth/register"),
        &[("content-type", "application/json")],
        serde_json::json!({"username": "carol", "email": "carol@example.com", "password": NEW_PASSWORD})
            .to_string(),
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text()
    );
    let refused = sign_in(&proxy, "carol", NEW_PASSWORD).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.text().contains("Incorrect username or password."),
        "the generic failure"
    );

    let mails = smtp.wait_for(1, MAIL_WAIT).await;
    assert_eq!(mails[0].to, ["carol@example.com"]);
    let link = mails[0]
        .link("/auth/verify-email")
        .expect("an activation link");
    let token = mails[0].token("/auth/verify-email").unwrap();
    assert_eq!(
        link,
        format!("http://127.0.0.1/auth/verify-email?token={token}")
    );
    let path = format!("/auth/verify-email?token={token}");
    let active = get(&proxy.url(&path), &[]).await;
    assert_eq!(active.status, StatusCode::OK);
    assert!(
        active.text().contains("href=\"/auth/login\""),
        "links to sign in"
    );
    assert_eq!(
        sign_in(&proxy, "carol", NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&proxy.url(&path), &[]).await.status,
        StatusCode::GONE,
        "single use"
    );
    let forged = get(
        &proxy.url("/auth/verify-email?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        &[],
    )
    .await;
    assert_eq!(forged.status, StatusCode::GONE);
}

/// The same flow with the tokens in PostgreSQL (`account_tokens`).
#[tokio::test]
async fn reset_links_work_once_from_postgresql() {
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let schema = PgSchema::create().await;
    let proxy = reset_proxy(&upstream, &db, &smtp.url(), "30m", &schema.toml()).await;
    proxy.wait_ready().await;
    request_reset(&proxy, "alice").await;
    request_reset(&proxy, "bob").await;
    let mails = smtp.wait_for(2, MAIL_WAIT).await;
    let token_of =
        |user: &str| reset_token(mails.iter().find(|m| m.to[0].starts_with(user)).unwrap());
    let (alice, bob) = (token_of("alice"), token_of("bob"));
    let stored: i64 = schema
        .client()
        .await
        .query_one("SELECT count(*) FROM account_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 2);
    assert_eq!(
        confirm(&proxy, &alice, NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&proxy.url(&confirm_path(&alice)), &[]).await.status,
        StatusCode::GONE
    );
    assert_eq!(
        get(&proxy.url(&confirm_path(&bob)), &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        sign_in(&proxy, "alice", NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

async fn check(config: &str) -> std::process::Output {
    let users = users_file();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let text = format!(
        "[server]\npublic_url = \"https://app.example.com\"\n[credentials.file]\npath = \"{}\"\n{config}",
        users.path().display()
    );
    std::fs::write(&path, text).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn check_connects_to_the_smtp_server_and_names_mail_smtp_when_it_does_not_answer() {
    let smtp = SmtpServer::start().await;
    let ok = check(&mail_toml(&smtp.url(), "30m")).await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let (_held, port) = closed_port();
    let down = check(&mail_toml(
        &format!("smtp://user:hunter2@127.0.0.1:{port}"),
        "30m",
    ))
    .await;
    assert_eq!(down.status.code(), Some(1));
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(err.contains("mail.smtp"), "{err}");
    // (Not "secret": check's warnings name `mfa.secret_key`.)
    assert!(
        !err.contains("hunter2"),
        "the password is never printed: {err}"
    );
}

/// A partner's own user may share a local user's name: a reset of the
/// local account ends only the local account's sessions.
#[tokio::test]
async fn a_reset_leaves_a_partner_user_of_the_same_name_signed_in() {
    const SECRET: &str = "partner-c-secret-of-at-least-32-bytes";
    let (upstream, smtp, db) = (
        Upstream::start().await,
        SmtpServer::start().await,
        users_db().await,
    );
    let partner = format!(
        "[[sso.partners]]\nname = \"partner-c\"\nissuer = \"https://partner-c.example\"\n\
         audience = \"growbal\"\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\n\
         user_claim = \"sub\"\nrequire_known_user = false\n"
    );
    let proxy = reset_proxy(&upstream, &db, &smtp.url(), "30m", &partner).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://partner-c.example", "aud": "growbal", "iat": now, "exp": now + 60,
        "jti": "reset-partner-1", "sub": "alice"
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let query = serde_urlencoded::to_string([("token", token.as_str()), ("next", "/")]).unwrap();
    let handoff = get(&proxy.url(&format!("/auth/sso?{query}")), &[]).await;
    let theirs = handoff
        .set_cookie("portcullis")
        .expect("the partner's alice is signed in");
    let local = login(&proxy, "alice").await;

    request_reset(&proxy, "alice").await;
    let link = reset_token(&smtp.wait_for(1, MAIL_WAIT).await[0]);
    assert_eq!(
        confirm(&proxy, &link, NEW_PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let json = ("accept", "application/json");
    let mine = get(&proxy.url("/x"), &[("cookie", &local), json]).await;
    assert_eq!(
        mine.status,
        StatusCode::UNAUTHORIZED,
        "the local alice's session ended"
    );
    let partners = get(&proxy.url("/x"), &[("cookie", &theirs), json]).await;
    assert_eq!(
        partners.status,
        StatusCode::OK,
        "the partner's alice kept hers"
    );
}
