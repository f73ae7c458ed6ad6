//! The account page, `/auth/account`: a user sees their own live sessions
//! (this one marked, with browser, address and public id), ends one of
//! them, all others, or this one, and never another user's (not even a
//! partner's user of the same name); every POST needs the page's token and
//! is refused from another site; anonymous callers are sent to sign in.
//! The same session scenario runs on memory and PostgreSQL sessions. The
//! password change and `login_update` (MariaDB) are in `account_mysql.rs`.

mod common;

use common::db::PgSchema;
use common::*;
use http::{Method, StatusCode};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const PARTNER_SECRET: &str = "partner-b-secret-of-at-least-32-bytes";

/// Signs in from a browser with this `User-Agent`; the session cookie.
async fn login_as(proxy: &Proxy, user: &str, agent: &str) -> String {
    let (csrf_cookie, token) = login_form(proxy).await;
    let body = serde_urlencoded::to_string([
        ("username", user),
        ("password", PASSWORD),
        ("csrf_token", token.as_str()),
        ("next", "/"),
    ])
    .unwrap();
    let reply = send(
        Method::POST,
        &proxy.url("/auth/login"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", csrf_cookie.as_str()),
            ("user-agent", agent),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    reply.set_cookie("portcullis").unwrap()
}

/// The session's public id, as `/auth/me` and the app see it.
async fn public_id(proxy: &Proxy, cookie: &str) -> String {
    let me = get(&proxy.url("/auth/me"), &[("cookie", cookie)]).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    me.json()["session"].as_str().unwrap().to_string()
}

async fn signed_in(proxy: &Proxy, cookie: &str) -> bool {
    let me = get(&proxy.url("/auth/me"), &[("cookie", cookie)]).await;
    me.status == StatusCode::OK
}

async fn account_page(proxy: &Proxy, cookie: &str) -> Reply {
    get(
        &proxy.url("/auth/account"),
        &[("cookie", cookie), ("accept", "text/html")],
    )
    .await
}

/// The public ids the page offers to end, in page order.
fn listed(page: &str) -> Vec<String> {
    page.split("data-session=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .filter(|id| id != "others")
        .collect()
}

/// The list item of one session on the page.
fn item<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("id=\"session-{id}\""))
        .unwrap_or_else(|| panic!("session {id} not listed"));
    let rest = &page[start..];
    &rest[..rest.find("</li>").unwrap()]
}

/// Posts the revoke form with `headers` added to the cookie and form type.
async fn revoke_with(
    proxy: &Proxy,
    cookie: &str,
    token: &str,
    session: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let body = serde_urlencoded::to_string([("session", session), ("csrf_token", token)]).unwrap();
    let mut all = vec![
        ("cookie", cookie),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    all.extend_from_slice(headers);
    send(
        Method::POST,
        &proxy.url("/auth/account/sessions/revoke"),
        &all,
        body,
    )
    .await
}

/// Opens the page for `cookie` and ends `session` with its token.
async fn revoke(proxy: &Proxy, cookie: &str, session: &str) -> Reply {
    let token = csrf_token_in(&account_page(proxy, cookie).await.text());
    revoke_with(proxy, cookie, &token, session, &[]).await
}

/// Lists, ends one, ends all others and ends this one, on any store.
async fn sessions_scenario(proxy: &Proxy) {
    let firefox = login_as(proxy, "demo", FIREFOX).await;
    let iphone = login_as(proxy, "demo", IPHONE).await;
    let admin = login(proxy, "admin").await;
    let (firefox_id, iphone_id) = (
        public_id(proxy, &firefox).await,
        public_id(proxy, &iphone).await,
    );

    let page = account_page(proxy, &firefox).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let text = page.text();
    assert_eq!(listed(&text), vec![firefox_id.clone(), iphone_id.clone()]);
    assert!(text.contains("demo@example.com") && text.contains("patient"));
    let this = item(&text, &firefox_id);
    assert!(this.contains("This session") && this.contains("Firefox on Linux"));
    assert!(this.contains("127.0.0.1") && this.contains(&firefox_id));
    let other = item(&text, &iphone_id);
    assert!(!other.contains("This session") && other.contains("Safari on iPhone"));
    assert_eq!(text.matches("This session").count(), 1);

    // End the other one: its cookie is refused at once, this one stays.
    let ended = revoke(proxy, &firefox, &iphone_id).await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{}", ended.text());
    assert_eq!(ended.header("location"), Some("/auth/account?done=ended"));
    assert!(!signed_in(proxy, &iphone).await, "ended session refused");
    assert!(signed_in(proxy, &firefox).await);
    let back = proxy.url(ended.header("location").unwrap());
    let page = get(&back, &[("cookie", &firefox)]).await.text();
    assert_eq!(listed(&page), vec![firefox_id.clone()]);
    assert!(page.contains("The session was ended."));

    // Another user's session cannot be ended by knowing its public id.
    let admin_id = public_id(proxy, &admin).await;
    let tried = revoke(proxy, &firefox, &admin_id).await;
    assert_eq!(tried.header("location"), Some("/auth/account?done=gone"));
    assert!(
        signed_in(proxy, &admin).await,
        "another user's session kept"
    );
    assert!(!account_page(proxy, &firefox)
        .await
        .text()
        .contains(&admin_id));

    // `others` ends every other session of the user, and only theirs.
    let second = login_as(proxy, "demo", IPHONE).await;
    let third = login(proxy, "demo").await;
    let ended = revoke(proxy, &firefox, "others").await;
    assert_eq!(ended.header("location"), Some("/auth/account?done=others"));
    assert!(!signed_in(proxy, &second).await && !signed_in(proxy, &third).await);
    assert!(signed_in(proxy, &firefox).await && signed_in(proxy, &admin).await);

    // Ending this session from the list signs this browser out.
    let out = revoke(proxy, &firefox, &firefox_id).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.header("location"), Some("/auth/login"));
    let cleared = out.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cleared.starts_with("portcullis=;"), "{cleared}");
    assert!(!signed_in(proxy, &firefox).await);
}

#[tokio::test]
async fn a_user_sees_and_ends_their_own_sessions_on_memory_sessions() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    sessions_scenario(&proxy).await;
}

#[tokio::test]
async fn a_user_sees_and_ends_their_own_sessions_on_postgres_sessions() {
    let upstream = Upstream::start().await;
    let schema = PgSchema::create().await;
    let proxy = Proxy::start(&upstream, &schema.toml()).await;
    proxy.wait_ready().await;
    sessions_scenario(&proxy).await;
}

#[tokio::test]
async fn posts_without_the_pages_token_or_from_another_site_are_refused() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let a = login(&proxy, "demo").await;
    let b = login(&proxy, "demo").await;
    let b_id = public_id(&proxy, &b).await;
    let token = csrf_token_in(&account_page(&proxy, &a).await.text());
    let b_token = csrf_token_in(&account_page(&proxy, &b).await.text());

    let refused = [
        ("no token", "", vec![]),
        ("another session's token", b_token.as_str(), vec![]),
        (
            "foreign Origin",
            token.as_str(),
            vec![("origin", "https://evil.example")],
        ),
        (
            "cross-site fetch",
            token.as_str(),
            vec![("sec-fetch-site", "cross-site")],
        ),
    ];
    for (what, token, headers) in refused {
        let reply = revoke_with(&proxy, &a, token, &b_id, &headers).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{what}");
        assert!(reply.headers.get("set-cookie").is_none(), "{what}");
        assert!(signed_in(&proxy, &b).await, "{what}: nothing ended");
    }
    let json = revoke_with(&proxy, &a, "", &b_id, &[("accept", "application/json")]).await;
    assert_eq!(json.json()["error"], "forbidden");

    // A browser's own form post: `no-referrer` pages make it send `null`.
    let own = [("origin", "null"), ("sec-fetch-site", "same-origin")];
    let reply = revoke_with(&proxy, &a, &token, &b_id, &own).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(!signed_in(&proxy, &b).await);
    let same = [("origin", "http://127.0.0.1")];
    let reply = revoke_with(&proxy, &a, &token, "others", &same).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn anonymous_callers_are_sent_to_sign_in() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(
        &upstream,
        "[tokens]\nsecret = \"tokens-secret-of-at-least-32-bytes!!\"\n",
    )
    .await;
    let page = get(&proxy.url("/auth/account"), &[("accept", "text/html")]).await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(
        page.header("location"),
        Some("/auth/login?next=%2Fauth%2Faccount")
    );
    let api = get(&proxy.url("/auth/account"), &[]).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.json()["error"], "unauthenticated");

    // A bearer client has no account page.
    let tokens = send(
        Method::POST,
        &proxy.url("/auth/login"),
        &[("content-type", "application/json")],
        serde_json::json!({"username": "demo", "password": PASSWORD}).to_string(),
    )
    .await
    .json();
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let api = get(&proxy.url("/auth/account"), &[("authorization", &bearer)]).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);

    let post = send(
        Method::POST,
        &proxy.url("/auth/account/sessions/revoke"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "text/html"),
        ],
        "session=others&csrf_token=x",
    )
    .await;
    assert_eq!(post.status, StatusCode::SEE_OTHER);
    assert!(post
        .header("location")
        .unwrap()
        .starts_with("/auth/login?next="));
    let put = send(Method::PUT, &proxy.url("/auth/account"), &[], "").await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn without_password_update_there_is_no_password_form_and_no_endpoint() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let page = account_page(&proxy, &session).await.text();
    assert!(!page.contains("current_password"), "{page}");
    let token = csrf_token_in(&page);
    let body = serde_urlencoded::to_string([
        ("current_password", PASSWORD),
        ("new_password", "violet-harbour-tunes-42"),
        ("csrf_token", token.as_str()),
    ])
    .unwrap();
    let reply = send(
        Method::POST,
        &proxy.url("/auth/account/password"),
        &[
            ("cookie", session.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn portcullis_pages_link_a_signed_in_user_to_their_account() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let html = [("accept", "text/html")];
    let anonymous = get(&proxy.url("/auth/logout"), &html).await.text();
    assert!(!anonymous.contains("Your account"));
    let session = login(&proxy, "demo").await;
    let with = [("cookie", session.as_str()), ("accept", "text/html")];
    let logout = get(&proxy.url("/auth/logout"), &with).await.text();
    let link = "href=\"/auth/account\"";
    assert!(logout.contains(link), "{logout}");
    let denied = get(&proxy.url("/admin/"), &with).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(denied.text().contains(link));
    let anonymous = get(&proxy.url("/internal/x"), &html).await;
    assert_eq!(anonymous.status, StatusCode::FORBIDDEN);
    assert!(!anonymous.text().contains("Your account"));
}

/// Regression guard: sessions are stored by username, and a partner's own
/// user (`require_known_user = false`) may share a local user's name; the
/// local user must neither see nor end the partner user's sessions.
#[tokio::test]
async fn a_partner_user_of_the_same_name_is_another_user() {
    let upstream = Upstream::start().await;
    let partner = format!(
        "[[sso.partners]]\nname = \"partner-b\"\nissuer = \"https://partner-b.example\"\n\
         audience = \"growbal\"\nalgorithms = [\"HS256\"]\nsecret = \"{PARTNER_SECRET}\"\n\
         user_claim = \"sub\"\nrequire_known_user = false\n"
    );
    let proxy = Proxy::start(&upstream, &partner).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://partner-b.example", "aud": "growbal", "iat": now, "exp": now + 60,
        "jti": "account-test-1", "sub": "demo"
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(PARTNER_SECRET.as_bytes()),
    )
    .unwrap();
    let query = serde_urlencoded::to_string([("token", token.as_str()), ("next", "/")]).unwrap();
    let handoff = get(&proxy.url(&format!("/auth/sso?{query}")), &[]).await;
    let theirs = handoff.set_cookie("portcullis").expect("partner session");
    let theirs_id = public_id(&proxy, &theirs).await;

    let local = login(&proxy, "demo").await;
    let page = account_page(&proxy, &local).await.text();
    assert_eq!(listed(&page), vec![public_id(&proxy, &local).await]);
    let tried = revoke(&proxy, &local, &theirs_id).await;
    assert_eq!(tried.header("location"), Some("/auth/account?done=gone"));
    revoke(&proxy, &local, "others").await;
    assert!(signed_in(&proxy, &theirs).await, "the partner's user kept");
}
