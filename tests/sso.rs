//! SSO hand-off from partner sites: `GET /auth/sso?token=JWT&next=PATH`.

mod common;

use std::process::Command;

use common::db::PgSchema;
use common::*;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const SECRET: &str = "partner-b-secret-of-at-least-32-bytes";

fn partners() -> String {
    format!(
        r#"
[[sso.partners]]
name = "partner-a"
issuer = "https://partner-a.example"
audience = "growbal"
algorithms = ["RS256"]
key = "{FIXTURES}/partner-rsa.pub.pem"
user_claim = "email"

[[sso.partners]]
name = "partner-b"
issuer = "https://partner-b.example"
audience = "growbal"
algorithms = ["HS256"]
secret = "{SECRET}"
user_claim = "sub"
require_known_user = false
"#
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(format!("{FIXTURES}/partner-rsa.key")).unwrap())
        .unwrap()
}

fn partner_a_claims(email: &str) -> Value {
    let jti: u64 = rand::random();
    json!({
        "iss": "https://partner-a.example", "aud": "growbal", "iat": now(), "exp": now() + 60,
        "jti": format!("{jti:x}"), "email": email
    })
}

fn partner_a_token(claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &rsa_key()).unwrap()
}

async fn handoff(proxy: &Proxy, token: &str, next: &str) -> Reply {
    let query = serde_urlencoded::to_string([("token", token), ("next", next)]).unwrap();
    get(
        &proxy.url(&format!("/auth/sso?{query}")),
        &[("accept", "text/html")],
    )
    .await
}

#[tokio::test]
async fn partner_token_signs_a_known_user_in_once() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &partners()).await;
    let token = partner_a_token(&partner_a_claims("demo@example.com"));
    let reply = handoff(&proxy, &token, "/chat/?from=partner").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/chat/?from=partner"));
    let session = reply.set_cookie("portcullis").expect("session cookie");
    let app = get(&proxy.url("/chat/"), &[("cookie", &session)]).await;
    assert_eq!(app.upstream_header("x-auth-user"), vec!["1"]);
    let me = get(&proxy.url("/auth/me"), &[("cookie", &session)]).await;
    assert_eq!(me.json()["auth_method"], "sso");

    let replay = handoff(&proxy, &token, "/").await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "single use");
    assert!(replay.set_cookie("portcullis").is_none());
}

#[tokio::test]
async fn hostile_next_after_sso_becomes_root() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &partners()).await;
    let token = partner_a_token(&partner_a_claims("demo@example.com"));
    let reply = handoff(&proxy, &token, "//evil.example/").await;
    assert_eq!(reply.header("location"), Some("/"));
}

#[tokio::test]
async fn unknown_or_inactive_users_are_refused_when_required() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &partners()).await;
    for email in ["nobody@example.com", "gone@example.com"] {
        let reply = handoff(&proxy, &partner_a_token(&partner_a_claims(email)), "/").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{email}");
    }
}

#[tokio::test]
async fn forged_stale_and_confused_tokens_are_refused() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &partners()).await;
    let public_pem = std::fs::read(format!("{FIXTURES}/partner-rsa.pub.pem")).unwrap();
    let mut stale = partner_a_claims("demo@example.com");
    stale["iat"] = json!(now() - 600);
    let mut no_jti = partner_a_claims("demo@example.com");
    no_jti.as_object_mut().unwrap().remove("jti");
    let mut wrong_aud = partner_a_claims("demo@example.com");
    wrong_aud["aud"] = json!("someone-else");
    let mut as_access = partner_a_claims("demo@example.com");
    as_access["typ"] = json!("access");
    let mut with_big_claim = partner_a_claims("demo@example.com");
    with_big_claim["pad"] = json!("x".repeat(9000));
    let forged = [
        // HS256 signed with the public key as the secret: HS/RS confusion.
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &partner_a_claims("demo@example.com"),
            &EncodingKey::from_secret(&public_pem),
        )
        .unwrap(),
        partner_a_token(&stale),
        partner_a_token(&no_jti),
        partner_a_token(&wrong_aud),
        partner_a_token(&as_access),
        partner_a_token(&with_big_claim),
        "not.a.token".to_string(),
        String::new(),
    ];
    for (i, token) in forged.iter().enumerate() {
        let reply = handoff(&proxy, token, "/").await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "forgery {i} accepted"
        );
        assert!(reply.set_cookie("portcullis").is_none());
    }
}

#[tokio::test]
async fn sso_token_command_mints_a_working_token() {
    let upstream = Upstream::start().await;
    let users = users_file();
    let mut config = tempfile::NamedTempFile::new().unwrap();
    let text = format!(
        "[credentials.file]\npath = \"{}\"\n{}",
        users.path().display(),
        partners()
    );
    std::io::Write::write_all(&mut config, text.as_bytes()).unwrap();
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let minted = Command::new(bin)
        .args([
            "sso-token",
            "--partner",
            "partner-b",
            "--user",
            "partner-user-7",
            "--config",
        ])
        .arg(config.path())
        .output()
        .unwrap();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_string();

    let proxy = Proxy::start(&upstream, &partners()).await;
    let reply = handoff(&proxy, &token, "/").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let session = reply.set_cookie("portcullis").unwrap();
    let app = get(&proxy.url("/x"), &[("cookie", &session)]).await;
    assert_eq!(
        app.upstream_header("x-auth-user"),
        vec!["partner-b:partner-user-7"]
    );

    let needs_key = Command::new(bin)
        .args([
            "sso-token",
            "--partner",
            "partner-a",
            "--user",
            "demo@example.com",
            "--config",
        ])
        .arg(config.path())
        .output()
        .unwrap();
    assert_eq!(needs_key.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&needs_key.stderr).contains("--private-key"));
    let with_key = Command::new(bin)
        .args([
            "sso-token",
            "--partner",
            "partner-a",
            "--user",
            "demo@example.com",
            "--private-key",
        ])
        .arg(format!("{FIXTURES}/partner-rsa.key"))
        .arg("--config")
        .arg(config.path())
        .output()
        .unwrap();
    assert!(
        with_key.status.success(),
        "{}",
        String::from_utf8_lossy(&with_key.stderr)
    );
}

#[tokio::test]
async fn a_token_used_on_one_instance_is_refused_by_another() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let extra = format!("{}{}", schema.toml(), partners());
    let a = Proxy::start(&upstream, &extra).await;
    let b = Proxy::start(&upstream, &extra).await;
    for proxy in [&a, &b] {
        let url = format!("http://{}/readyz", proxy.admin_addr);
        assert!(
            eventually(std::time::Duration::from_secs(10), || async {
                get(&url, &[]).await.status == StatusCode::OK
            })
            .await
        );
    }
    let token = partner_a_token(&partner_a_claims("demo@example.com"));
    assert_eq!(handoff(&a, &token, "/").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        handoff(&b, &token, "/").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn partner_config_mistakes_name_the_key() {
    let cases = [
        (
            "algorithms = []\nsecret = \"x\"",
            "sso.partners[0].algorithms",
        ),
        (
            "algorithms = [\"none\"]\nsecret = \"x\"",
            "sso.partners[0].algorithms",
        ),
        (
            "algorithms = [\"HS256\", \"RS256\"]\nsecret = \"x\"",
            "sso.partners[0].algorithms",
        ),
        (
            "algorithms = [\"RS256\"]\nsecret = \"0123456789abcdef0123456789abcdef\"",
            "sso.partners[0].secret",
        ),
        (
            "algorithms = [\"HS256\"]\nkey = \"/etc/hosts\"",
            "sso.partners[0].key",
        ),
        (
            "algorithms = [\"RS256\"]\nkey = \"/nonexistent.pem\"",
            "sso.partners[0].key",
        ),
        (
            "algorithms = [\"HS256\"]\nsecret = \"0123456789abcdef0123456789abcdef\"\nclock_skew = \"1h\"",
            "sso.partners[0].clock_skew",
        ),
    ];
    for (keys, expected) in cases {
        let toml = format!(
            "[[sso.partners]]\nname = \"p\"\nissuer = \"https://p\"\naudience = \"a\"\n{keys}\n"
        );
        let err = portcullis::Config::from_toml(&toml, std::path::Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{keys}: {err}");
    }
}

#[test]
fn a_partner_secret_must_differ_from_the_token_secret() {
    let secret = "0123456789abcdef0123456789abcdef";
    let toml = format!(
        "[tokens]\nsecret = \"{secret}\"\n[[sso.partners]]\nname = \"p\"\nissuer = \"https://p\"\naudience = \"a\"\nalgorithms = [\"HS256\"]\nsecret = \"{secret}\"\n"
    );
    let err = portcullis::Config::from_toml(&toml, std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sso.partners[0].secret"), "{err}");
}

fn partner_b_token(sub: &str) -> String {
    let jti: u64 = rand::random();
    let claims = json!({
        "iss": "https://partner-b.example", "aud": "growbal", "iat": now(), "exp": now() + 60,
        "jti": format!("{jti:x}"), "sub": sub
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Regression: a partner's own user (`require_known_user = false`) is not
/// in the credential backend, and the first re-check signed them out.
#[tokio::test]
async fn partner_vouched_users_survive_the_recheck() {
    let upstream = Upstream::start().await;
    let extra = format!("{}\n[session]\nrecheck_interval = \"1s\"\n", partners());
    let proxy = Proxy::start(&upstream, &extra).await;
    let reply = handoff(&proxy, &partner_b_token("partner-user-9"), "/").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    let session = reply.set_cookie("portcullis").expect("session cookie");
    let me = get(&proxy.url("/auth/me"), &[("cookie", &session)]).await;
    assert_eq!(me.json()["id"], "partner-b:partner-user-9");
    // Let the re-check come due, then ask twice (the first request runs it).
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    for _ in 0..2 {
        let me = get(&proxy.url("/auth/me"), &[("cookie", &session)]).await;
        assert_eq!(me.status, StatusCode::OK, "signed out by the re-check");
    }
}

/// Regression: a planted `GET /auth/sso?token=<attacker's token>` replaced
/// the victim's live session with the attacker's account.
#[tokio::test]
async fn handoff_never_silently_replaces_another_users_session() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &partners()).await;
    let victim = login(&proxy, "demo").await;
    let query = serde_urlencoded::to_string([
        ("token", partner_b_token("attacker").as_str()),
        ("next", "/chat/"),
    ])
    .unwrap();
    let url = proxy.url(&format!("/auth/sso?{query}"));
    let page = get(&url, &[("cookie", &victim), ("accept", "text/html")]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.set_cookie("portcullis").is_none(), "session kept");
    let text = page.text();
    assert!(text.contains("demo") && text.contains("attacker"), "{text}");
    let me = get(&proxy.url("/auth/me"), &[("cookie", &victim)]).await;
    assert_eq!(me.json()["username"], "demo");

    let marker = "name=\"handoff\" value=\"";
    let start = text.find(marker).unwrap() + marker.len();
    let handoff = text[start..].split('"').next().unwrap().to_string();
    let csrf = csrf_token_in(&text);
    let post = |cookie: String, token: String| {
        let body =
            serde_urlencoded::to_string([("handoff", &handoff), ("csrf_token", &token)]).unwrap();
        let url = proxy.url("/auth/sso");
        async move {
            send(
                http::Method::POST,
                &url,
                &[
                    ("cookie", cookie.as_str()),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                body,
            )
            .await
        }
    };
    let forged = post(victim.clone(), "forged".into()).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let other_session = login(&proxy, "demo").await;
    let replayed = post(other_session, csrf.clone()).await;
    assert_eq!(
        replayed.status,
        StatusCode::FORBIDDEN,
        "bound to the session it was shown to"
    );

    let confirmed = post(victim.clone(), csrf).await;
    assert_eq!(confirmed.status, StatusCode::SEE_OTHER);
    assert_eq!(confirmed.header("location"), Some("/chat/"));
    let switched = confirmed.set_cookie("portcullis").expect("new session");
    let me = get(&proxy.url("/auth/me"), &[("cookie", &switched)]).await;
    assert_eq!(me.json()["id"], "partner-b:attacker");
}

#[tokio::test]
async fn handoff_for_the_signed_in_user_goes_straight_on() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &partners()).await;
    let session = login(&proxy, "demo").await;
    let query = serde_urlencoded::to_string([(
        "token",
        partner_a_token(&partner_a_claims("demo@example.com")).as_str(),
    )])
    .unwrap();
    let reply = get(
        &proxy.url(&format!("/auth/sso?{query}")),
        &[("cookie", &session), ("accept", "text/html")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sso_hand_offs_count_against_the_login_ip_rate() {
    let upstream = Upstream::start().await;
    let extra = format!("{}[login]\nip_rate = \"2/min\"\n", partners());
    let proxy = Proxy::start(&upstream, &extra).await;
    let first = handoff(
        &proxy,
        &partner_a_token(&partner_a_claims("demo@example.com")),
        "/",
    )
    .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text());
    let forged = handoff(&proxy, "not-a-token", "/").await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    // Over the rate: refused before the token is looked at, so a good one
    // is not spent by the refused attempt.
    let good = partner_a_token(&partner_a_claims("demo@example.com"));
    let page = handoff(&proxy, &good, "/").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.header("retry-after").is_some());
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.set_cookie("portcullis").is_none());
    let query = serde_urlencoded::to_string([("token", good.as_str())]).unwrap();
    let api = get(&proxy.url(&format!("/auth/sso?{query}")), &[]).await;
    assert_eq!(api.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(api.json(), json!({"error": "rate_limited"}));
    assert!(api.header("retry-after").is_some());
}
