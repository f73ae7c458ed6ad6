//! Second factors end to end: enrolment (the QR code decodes to the exact
//! `otpauth://` URI), sign-in with password then code, each TOTP step and
//! recovery code accepted once, wrong codes toward the lockout, enrolment
//! forced by role, the JSON login's `mfa_required`, CSRF on every form,
//! turning a factor off, SSO partners with `require_mfa`, and (SQLite and
//! PostgreSQL) secrets sealed at rest and `portcullis mfa reset`.
//!
//! Codes are made here with `totp-rs` from the secret the setup page shows.
//! Each TOTP step is accepted once per user, and the server accepts the
//! steps either side of its own: a test enrols with the previous step's
//! code, then signs in with the current and the next one.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::db::PgSchema;
use common::*;
use http::{Method, StatusCode};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const PENDING: &str = "portcullis-mfa";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until at least 5 s of the current 30 s step remain, so a test
/// that starts with the previous step's code is not caught by the tick.
async fn fresh_step() -> u64 {
    let ok = eventually(Duration::from_secs(10), || async { now() % 30 <= 24 }).await;
    assert!(ok);
    now()
}

/// The code of `secret` (base32) at Unix time `t`.
fn code_at(secret: &str, t: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        None,
        "test".into(),
    )
    .unwrap()
    .generate(t)
}

/// The text of the element with this id (`<code id="...">TEXT</code>`).
fn element_text(page: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id}: {page}"))
        + marker.len();
    page[start..].split('<').next().unwrap().to_string()
}

/// Renders the page's inline SVG QR code to pixels and decodes it.
fn decode_qr(page: &str) -> String {
    let svg = &page[page.find("<svg").expect("an inline SVG")..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    let attr = |name: &str| -> usize {
        let marker = format!(" {name}=\"");
        let at = svg.find(&marker).unwrap() + marker.len();
        svg[at..].split('"').next().unwrap().parse().unwrap()
    };
    let (w, h) = (attr("width"), attr("height"));
    let mut dark = vec![false; w * h];
    let d = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    // Rectangles `M{x} {y}h{w}v{h}H{x}V{y}`, as the qrcode crate writes them.
    for rect in d.split('M').filter(|r| !r.is_empty()) {
        let nums: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        let (x, y, rw, rh) = (nums[0], nums[1], nums[2], nums[3]);
        for yy in y..y + rh {
            for xx in x..x + rw {
                dark[yy * w + xx] = true;
            }
        }
    }
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(
            w,
            h,
            |x, y| if dark[y * w + x] { 0 } else { 255 },
        );
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the page");
    grids[0].decode().expect("the QR code decodes").1
}

struct Enrolled {
    secret: String,
    recovery: Vec<String>,
    /// When the enrolment code was made: its step is used.
    at: u64,
}

fn recovery_codes(page: &str) -> Vec<String> {
    page.split("<code>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_string())
        .filter(|c| c.len() == 9 && c.as_bytes()[4] == b'-')
        .collect()
}

/// Opens the setup page with `cookie` (session or pending sign-in) and
/// confirms with the previous step's code; returns the secret and the
/// recovery codes, and the confirming reply.
async fn enrol(proxy: &Proxy, cookie: &str) -> (Enrolled, Reply) {
    let at = fresh_step().await - 30;
    let page = get(&proxy.url("/auth/mfa/setup"), &[("cookie", cookie)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let text = page.text();
    let secret = element_text(&text, "secret");
    let uri = element_text(&text, "otpauth-uri");
    assert!(uri.starts_with("otpauth://totp/portcullis:"), "{uri}");
    assert!(
        uri.contains(&format!("secret={secret}&issuer=portcullis")),
        "{uri}"
    );
    assert_eq!(decode_qr(&text), uri, "the QR code encodes the exact URI");
    let again = get(&proxy.url("/auth/mfa/setup"), &[("cookie", cookie)]).await;
    assert_eq!(
        element_text(&again.text(), "secret"),
        secret,
        "a reload shows the same secret"
    );
    let body = serde_urlencoded::to_string([
        ("code", code_at(&secret, at).as_str()),
        ("csrf_token", &csrf_token_in(&text)),
    ])
    .unwrap();
    let reply = send(
        Method::POST,
        &proxy.url("/auth/mfa/setup"),
        &[FORM, ("cookie", cookie)],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let recovery = recovery_codes(&reply.text());
    assert_eq!(recovery.len(), 10, "{}", reply.text());
    (
        Enrolled {
            secret,
            recovery,
            at,
        },
        reply,
    )
}

/// The password step: returns the reply (303 to the second step).
async fn password(proxy: &Proxy, user: &str, next: &str) -> Reply {
    let (csrf_cookie, token) = login_form(proxy).await;
    post_login(proxy, &csrf_cookie, &token, user, PASSWORD, next).await
}

/// The password step of a user with a factor: the pending cookie.
async fn pending(proxy: &Proxy, user: &str, next: &str) -> String {
    let reply = password(proxy, user, next).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/auth/mfa"));
    assert!(reply.set_cookie("portcullis").is_none(), "no session yet");
    reply.set_cookie(PENDING).expect("a pending sign-in cookie")
}

/// Opens the code form and posts `code`.
async fn post_code(proxy: &Proxy, pending: &str, code: &str) -> Reply {
    let form = get(&proxy.url("/auth/mfa"), &[("cookie", pending)]).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let body =
        serde_urlencoded::to_string([("code", code), ("csrf_token", &csrf_token_in(&form.text()))])
            .unwrap();
    send(
        Method::POST,
        &proxy.url("/auth/mfa"),
        &[FORM, ("cookie", pending)],
        body,
    )
    .await
}

async fn me(proxy: &Proxy, session: &str) -> serde_json::Value {
    let reply = get(&proxy.url("/auth/me"), &[("cookie", session)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()
}

#[tokio::test]
async fn enrol_then_sign_in_with_password_and_code_each_step_once() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    assert_eq!(me(&proxy, &session).await["mfa"], false);
    let (enrolled, _) = enrol(&proxy, &session).await;
    assert_eq!(me(&proxy, &session).await["mfa"], true);

    let reply = password(&proxy, "demo", "/chat/?room=7").await;
    let set = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("portcullis-mfa="))
        .unwrap();
    for attr in ["HttpOnly", "Path=/", "Max-Age=300", "SameSite=Lax"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    let pending_cookie = set.split(';').next().unwrap().to_string();
    // The pending sign-in is no session: the app stays walled off.
    let wall = get(&proxy.url("/chat/"), &[("cookie", &pending_cookie)]).await;
    assert_eq!(wall.status, StatusCode::UNAUTHORIZED);
    let form = get(&proxy.url("/auth/mfa"), &[("cookie", &pending_cookie)]).await;
    let page = form.text();
    assert!(page.contains("autocomplete=\"one-time-code\""), "{page}");
    assert!(page.contains("inputmode=\"numeric\""), "{page}");

    // The enrolment code's step is used already.
    let used = post_code(
        &proxy,
        &pending_cookie,
        &code_at(&enrolled.secret, enrolled.at),
    )
    .await;
    assert_eq!(used.status, StatusCode::UNAUTHORIZED);
    let code = code_at(&enrolled.secret, enrolled.at + 30);
    let done = post_code(&proxy, &pending_cookie, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.header("location"), Some("/chat/?room=7"));
    let session = done.set_cookie("portcullis").expect("a session");
    assert_eq!(me(&proxy, &session).await["auth_method"], "password");
    let app = get(&proxy.url("/chat/"), &[("cookie", &session)]).await;
    assert_eq!(app.status, StatusCode::OK);

    // The pending sign-in is spent: a second use makes no session.
    let again = post_code(&proxy, &pending_cookie, &enrolled.recovery[0]).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.set_cookie("portcullis").is_none());

    // A replayed code is refused on a new sign-in; the next step works.
    let pending_cookie = pending(&proxy, "demo", "/").await;
    let replay = post_code(&proxy, &pending_cookie, &code).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.text().contains("one-time-code"), "the form again");
    let next = post_code(
        &proxy,
        &pending_cookie,
        &code_at(&enrolled.secret, enrolled.at + 60),
    )
    .await;
    assert_eq!(next.status, StatusCode::SEE_OTHER, "{}", next.text());
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let (enrolled, _) = enrol(&proxy, &session).await;
    let code = enrolled.recovery[3].to_uppercase();
    let first = post_code(&proxy, &pending(&proxy, "demo", "/").await, &code).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text());
    let second = post_code(&proxy, &pending(&proxy, "demo", "/").await, &code).await;
    assert_eq!(second.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn five_wrong_codes_lock_the_account() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "[login]\nmax_failures = 5\n").await;
    let session = login(&proxy, "demo").await;
    let (enrolled, _) = enrol(&proxy, &session).await;
    let pending_cookie = pending(&proxy, "demo", "/").await;
    for _ in 0..4 {
        let wrong = post_code(&proxy, &pending_cookie, "000000").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    // Four wrong codes (a correct password counts for nothing): still open.
    let right = code_at(&enrolled.secret, enrolled.at + 30);
    let ok = post_code(&proxy, &pending_cookie, &right).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());

    let pending_cookie = pending(&proxy, "demo", "/").await;
    let mut last = String::new();
    for _ in 0..5 {
        let wrong = post_code(&proxy, &pending_cookie, "000000").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        last = wrong.text();
    }
    let locked = post_code(
        &proxy,
        &pending_cookie,
        &code_at(&enrolled.secret, enrolled.at + 60),
    )
    .await;
    assert_eq!(
        locked.status,
        StatusCode::UNAUTHORIZED,
        "locked: the right code fails too"
    );
    assert_eq!(
        locked.text().replace(&csrf_token_in(&locked.text()), ""),
        last.replace(&csrf_token_in(&last), ""),
        "one generic answer"
    );
    let (csrf_cookie, token) = login_form(&proxy).await;
    let refused = post_login(&proxy, &csrf_cookie, &token, "demo", PASSWORD, "/").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.text().contains("Incorrect username or password."));
}

#[tokio::test]
async fn a_required_role_enrols_before_it_gets_a_session_and_cannot_turn_it_off() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "[mfa]\nrequired_roles = [\"admin\"]\n").await;
    // Users without the role sign in with a password alone.
    login(&proxy, "demo").await;
    let json = json_post(
        &proxy,
        "/auth/login",
        serde_json::json!({"username": "admin", "password": PASSWORD}),
    )
    .await;
    assert_eq!(json.status, StatusCode::UNAUTHORIZED);
    assert_eq!(json.json()["error"], "mfa_enrolment_required");

    let reply = password(&proxy, "admin", "/admin/panel").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("/auth/mfa/setup"));
    assert!(
        reply.set_cookie("portcullis").is_none(),
        "no session before enrolment"
    );
    let pending_cookie = reply.set_cookie(PENDING).unwrap();
    let wall = get(&proxy.url("/admin/panel"), &[("cookie", &pending_cookie)]).await;
    assert_eq!(wall.status, StatusCode::UNAUTHORIZED);

    let (enrolled, confirmed) = enrol(&proxy, &pending_cookie).await;
    assert!(
        confirmed.text().contains("href=\"/admin/panel\""),
        "{}",
        confirmed.text()
    );
    let session = confirmed
        .set_cookie("portcullis")
        .expect("the session comes with enrolment");
    assert_eq!(me(&proxy, &session).await["mfa"], true);
    let app = get(&proxy.url("/admin/panel"), &[("cookie", &session)]).await;
    assert_eq!(app.status, StatusCode::OK);

    // It cannot be turned off.
    let status = get(&proxy.url("/auth/mfa/setup"), &[("cookie", &session)]).await;
    assert!(
        !status.text().contains("Turn off"),
        "no form to turn it off"
    );
    let body = serde_urlencoded::to_string([(
        "code",
        code_at(&enrolled.secret, enrolled.at + 30).as_str(),
    )])
    .unwrap();
    let refused = send(
        Method::POST,
        &proxy.url("/auth/mfa/disable"),
        &[FORM, ("cookie", &session)],
        body,
    )
    .await;
    assert!(
        refused.text().contains("role requires"),
        "{}",
        refused.text()
    );
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(me(&proxy, &session).await["mfa"], true);
}

#[tokio::test]
async fn json_login_asks_for_the_code_and_takes_it() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let (enrolled, _) = enrol(&proxy, &session).await;
    let body = |code: Option<&str>| {
        let mut b = serde_json::json!({"username": "demo", "password": PASSWORD});
        if let Some(code) = code {
            b["code"] = code.into();
        }
        b
    };
    let without = json_post(&proxy, "/auth/login", body(None)).await;
    assert_eq!(without.status, StatusCode::UNAUTHORIZED);
    assert_eq!(without.json(), serde_json::json!({"error": "mfa_required"}));
    let wrong_password = json_post(
        &proxy,
        "/auth/login",
        serde_json::json!({"username": "demo", "password": "nope", "code": "123456"}),
    )
    .await;
    assert_eq!(wrong_password.json()["error"], "invalid_credentials");
    let wrong = json_post(&proxy, "/auth/login", body(Some("000000"))).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json(),
        serde_json::json!({"error": "invalid_credentials"})
    );
    let right = code_at(&enrolled.secret, enrolled.at + 30);
    let tokens = json_post(&proxy, "/auth/login", body(Some(&right))).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text());
    let access = tokens.json()["access_token"].as_str().unwrap().to_string();
    let me = get(
        &proxy.url("/auth/me"),
        &[("authorization", &format!("Bearer {access}"))],
    )
    .await;
    assert_eq!(me.json()["mfa"], true);
    let replayed = json_post(&proxy, "/auth/login", body(Some(&right))).await;
    assert_eq!(replayed.json()["error"], "invalid_credentials");
}

#[tokio::test]
async fn every_form_needs_its_csrf_token() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let page = get(&proxy.url("/auth/mfa/setup"), &[("cookie", &session)]).await;
    let secret = element_text(&page.text(), "secret");
    let at = fresh_step().await;
    let post = |path: &'static str, cookie: String, body: String| {
        let url = proxy.url(path);
        async move { send(Method::POST, &url, &[FORM, ("cookie", &cookie)], body).await }
    };
    let no_token = serde_urlencoded::to_string([("code", code_at(&secret, at - 30))]).unwrap();
    let refused = post("/auth/mfa/setup", session.clone(), no_token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(me(&proxy, &session).await["mfa"], false);
    let (enrolled, _) = enrol(&proxy, &session).await;

    let pending_cookie = pending(&proxy, "demo", "/").await;
    let code = code_at(&enrolled.secret, enrolled.at + 30);
    let body =
        serde_urlencoded::to_string([("code", code.as_str()), ("csrf_token", "forged")]).unwrap();
    let refused = post("/auth/mfa", pending_cookie.clone(), body).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.set_cookie("portcullis").is_none());

    let disable = serde_urlencoded::to_string([("code", code.as_str())]).unwrap();
    let refused = post("/auth/mfa/disable", session.clone(), disable).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(me(&proxy, &session).await["mfa"], true);
}

#[tokio::test]
async fn a_current_code_turns_the_factor_off() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let (enrolled, _) = enrol(&proxy, &session).await;
    let status = get(
        &proxy.url("/auth/mfa/setup?next=/auth/account"),
        &[("cookie", &session)],
    )
    .await;
    assert!(status.text().contains("Turn off"), "{}", status.text());
    let token = csrf_token_in(&status.text());
    let disable = |code: String| {
        let body = serde_urlencoded::to_string([
            ("code", code.as_str()),
            ("csrf_token", &token),
            ("next", "/auth/account"),
        ])
        .unwrap();
        let url = proxy.url("/auth/mfa/disable");
        let session = session.clone();
        async move { send(Method::POST, &url, &[FORM, ("cookie", &session)], body).await }
    };
    assert_eq!(
        disable("000000".into()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let off = disable(code_at(&enrolled.secret, enrolled.at + 30)).await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.text());
    assert_eq!(off.header("location"), Some("/auth/account"));
    assert_eq!(me(&proxy, &session).await["mfa"], false);
    // Back to a password alone.
    login(&proxy, "demo").await;
}

#[tokio::test]
async fn without_a_pending_sign_in_the_second_step_leads_to_the_sign_in_page() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let form = get(&proxy.url("/auth/mfa"), &[]).await;
    assert_eq!(form.status, StatusCode::SEE_OTHER);
    assert_eq!(form.header("location"), Some("/auth/login"));
    let forged = "portcullis-mfa=eyJ1IjoiMSJ9.forged";
    let post = send(
        Method::POST,
        &proxy.url("/auth/mfa"),
        &[FORM, ("cookie", forged)],
        "code=123456&csrf_token=x",
    )
    .await;
    assert_eq!(post.status, StatusCode::UNAUTHORIZED);
    assert!(post.set_cookie("portcullis").is_none());
    let setup = get(&proxy.url("/auth/mfa/setup"), &[]).await;
    assert_eq!(setup.status, StatusCode::SEE_OTHER);
    assert!(setup
        .header("location")
        .unwrap()
        .starts_with("/auth/login?next="));
}

/// PostgreSQL: the stored secret is sealed under `mfa.secret_key`, and
/// `portcullis mfa reset` (another process) removes the factor, audited.
#[tokio::test]
async fn secrets_are_sealed_at_rest_and_mfa_reset_removes_the_factor() {
    let schema = PgSchema::create().await;
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let users = users_file();
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(
        &upstream,
        &format!("{}[mfa]\nsecret_key = \"{key}\"\n", schema.toml()),
    )
    .await;
    proxy.wait_ready().await;
    let session = login(&proxy, "demo").await;
    let (enrolled, _) = enrol(&proxy, &session).await;

    let db = schema.client().await;
    let row = db
        .query_one(
            "SELECT secret, enabled FROM mfa_factors WHERE user_id = '1'",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<u8> = row.get(0);
    assert!(row.get::<_, bool>(1));
    let raw = totp_rs::Secret::Encoded(enrolled.secret.clone())
        .to_bytes()
        .unwrap();
    assert!(
        !stored.windows(raw.len()).any(|w| w == raw),
        "raw secret stored"
    );
    assert!(
        !String::from_utf8_lossy(&stored).contains(&enrolled.secret),
        "base32 secret stored"
    );
    let codes: i64 = db
        .query_one(
            "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = '1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(codes, 10);

    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "{}[credentials.file]\npath = \"{}\"\n[mfa]\nsecret_key = \"{key}\"\n",
            schema.toml(),
            users.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["mfa", "reset", "--user", "demo", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(me(&proxy, &session).await["mfa"], false);
    let audited: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_events WHERE event = 'mfa_reset' AND username = 'demo'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
    // A password alone signs in again.
    login(&proxy, "demo").await;

    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["mfa", "reset", "--user", "nobody", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));
}

/// The SQLite file (the default store): the same sealing, and `mfa reset`
/// run by another process on the file.
#[tokio::test]
async fn with_sqlite_secrets_are_sealed_and_mfa_reset_works_on_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.db");
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let mfa = format!("[mfa]\nsecret_key = \"{key}\"\n");
    let users = users_file();
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream)
        .sqlite(&file)
        .extra(&mfa)
        .start()
        .await;
    proxy.wait_ready().await;
    let session = login(&proxy, "demo").await;
    let (enrolled, _) = enrol(&proxy, &session).await;

    let conn = rusqlite::Connection::open(&file).unwrap();
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT secret FROM mfa_factors WHERE user_id = '1' AND enabled",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let raw = totp_rs::Secret::Encoded(enrolled.secret.clone())
        .to_bytes()
        .unwrap();
    assert!(
        !stored.windows(raw.len()).any(|w| w == raw),
        "raw secret stored"
    );
    assert!(!String::from_utf8_lossy(&stored).contains(&enrolled.secret));

    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[sqlite]\npath = \"{}\"\n[credentials.file]\npath = \"{}\"\n{mfa}",
            file.display(),
            users.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["mfa", "reset", "--user", "demo@example.com", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(me(&proxy, &session).await["mfa"], false);
    let audited: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_events WHERE event = 'mfa_reset' AND username = 'demo'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(audited, 1);
    login(&proxy, "demo").await;
}

#[test]
fn check_warns_when_secrets_would_be_stored_in_the_clear_over_https() {
    let users = users_file();
    let config = |extra: &str| {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            format!(
                "[server]\npublic_url = \"https://app.example.com\"\n[credentials.file]\npath = \"{}\"\n{extra}",
                users.path().display()
            ),
        )
        .unwrap();
        file
    };
    let check = |file: &tempfile::NamedTempFile| {
        std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("check")
            .arg("--config")
            .arg(file.path())
            .output()
            .unwrap()
    };
    let out = check(&config(""));
    assert!(out.status.success(), "a warning, not an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: mfa.secret_key"));
    let out = check(&config(
        "[mfa]\nsecret_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n",
    ));
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("mfa.secret_key"));
}

/// PostgreSQL, two instances: a pending sign-in made by one completes on
/// the other, and a TOTP step or a pending sign-in used on one is refused
/// by the other.
#[tokio::test]
async fn codes_and_pending_sign_ins_are_single_use_across_instances() {
    let schema = PgSchema::create().await;
    let upstream = Upstream::start().await;
    let a = Proxy::start(&upstream, &schema.toml()).await;
    a.wait_ready().await;
    let b = Proxy::start(&upstream, &schema.toml()).await;
    b.wait_ready().await;
    let session = login(&a, "demo").await;
    let (enrolled, _) = enrol(&a, &session).await;
    assert_eq!(me(&b, &session).await["mfa"], true);

    // Password on a, code on b.
    let pending_cookie = pending(&a, "demo", "/chat/").await;
    let code = code_at(&enrolled.secret, enrolled.at + 30);
    let done = post_code(&b, &pending_cookie, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    // The same pending sign-in on a, with a recovery code: spent.
    let again = post_code(&a, &pending_cookie, &enrolled.recovery[0]).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.set_cookie("portcullis").is_none());
    // The same code on a, for a new sign-in: its step is used.
    let replay = post_code(&a, &pending(&a, "demo", "/").await, &code).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
}

/// Two HS256 partners vouching for local users by email, one of them with
/// `require_mfa`.
fn partners() -> String {
    let partner = |name: &str, strict: bool| {
        format!(
            "[[sso.partners]]\nname = \"{name}\"\nissuer = \"https://{name}.example\"\n\
             audience = \"growbal\"\nalgorithms = [\"HS256\"]\n\
             secret = \"{name}-partner-secret-of-at-least-32-bytes\"\nrequire_mfa = {strict}\n"
        )
    };
    partner("strict", true) + &partner("lenient", false)
}

async fn handoff(proxy: &Proxy, partner: &str, email: &str, next: &str) -> Reply {
    let jti: u64 = rand::random();
    let claims = serde_json::json!({
        "iss": format!("https://{partner}.example"), "aud": "growbal", "iat": now(),
        "exp": now() + 60, "jti": format!("{jti:x}"), "email": email,
    });
    let key = format!("{partner}-partner-secret-of-at-least-32-bytes");
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap();
    let query = serde_urlencoded::to_string([("token", token.as_str()), ("next", next)]).unwrap();
    get(&proxy.url(&format!("/auth/sso?{query}")), &[]).await
}

#[tokio::test]
async fn a_partner_with_require_mfa_hands_over_to_the_second_step() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &partners()).await;
    let session = login(&proxy, "demo").await;
    let (enrolled, _) = enrol(&proxy, &session).await;

    // By default the partner's assertion stands for its own second factor.
    let lenient = handoff(&proxy, "lenient", "demo@example.com", "/chat/").await;
    assert_eq!(lenient.status, StatusCode::SEE_OTHER, "{}", lenient.text());
    assert_eq!(lenient.header("location"), Some("/chat/"));
    assert!(lenient.set_cookie("portcullis").is_some());

    let strict = handoff(&proxy, "strict", "demo@example.com", "/chat/").await;
    assert_eq!(strict.status, StatusCode::SEE_OTHER, "{}", strict.text());
    assert_eq!(strict.header("location"), Some("/auth/mfa"));
    assert!(strict.set_cookie("portcullis").is_none(), "no session yet");
    let pending_cookie = strict.set_cookie(PENDING).unwrap();
    let done = post_code(
        &proxy,
        &pending_cookie,
        &code_at(&enrolled.secret, enrolled.at + 30),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.header("location"), Some("/chat/"));
    let session = done.set_cookie("portcullis").unwrap();
    assert_eq!(me(&proxy, &session).await["auth_method"], "sso");

    // A user without a factor (and no role requiring one) goes straight on.
    let plain = handoff(&proxy, "strict", "admin@example.com", "/").await;
    assert!(plain.set_cookie("portcullis").is_some(), "{}", plain.text());
}

/// The account page's token works for the form that turns the factor off,
/// so the account page can carry that form.
#[tokio::test]
async fn the_account_pages_token_turns_the_factor_off_too() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let before = get(&proxy.url("/auth/account"), &[("cookie", &session)]).await;
    assert!(
        before.text().contains("data-mfa=\"off\""),
        "{}",
        before.text()
    );
    assert!(before
        .text()
        .contains("href=\"/auth/mfa/setup?next=/auth/account\""));
    let (enrolled, _) = enrol(&proxy, &session).await;
    let account = get(&proxy.url("/auth/account"), &[("cookie", &session)]).await;
    assert_eq!(account.status, StatusCode::OK);
    let page = account.text();
    assert!(page.contains("data-mfa=\"on\""), "{page}");
    assert!(
        page.contains("action=\"/auth/mfa/disable\""),
        "the account page's own form"
    );
    let body = serde_urlencoded::to_string([
        ("code", code_at(&enrolled.secret, enrolled.at + 30).as_str()),
        ("csrf_token", &csrf_token_in(&account.text())),
        ("next", "/auth/account"),
    ])
    .unwrap();
    let off = send(
        Method::POST,
        &proxy.url("/auth/mfa/disable"),
        &[FORM, ("cookie", &session)],
        body,
    )
    .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.text());
    assert_eq!(me(&proxy, &session).await["mfa"], false);
}
