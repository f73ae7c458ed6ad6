//! A real browser (headless Chromium driven over WebDriver by chromedriver)
//! goes through the login wall: it is sent to the sign-in page, fills in the
//! form, and lands on the app page it asked for, which sees the user header;
//! its account page lists its session and ends another one; with a second
//! factor, it enrols on the setup page, then signs in with the password and
//! a code.
//! Needs `chromium` and `chromium-driver` (scripts/test.sh installs them);
//! fails rather than skips without them.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Method;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// The W3C WebDriver key naming an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Browser {
    driver: SocketAddr,
    session: String,
    _chromedriver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let chromedriver =
            std::env::var("PORTCULLIS_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {chromedriver}: {e}; run scripts/test.sh to install chromium-driver"));
        let driver: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut ready = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(driver).await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let binary = std::env::var("PORTCULLIS_TEST_CHROMIUM")
            .unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1024,768",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let created = webdriver(driver, Method::POST, "/session", Some(capabilities)).await;
        let session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        Browser {
            driver,
            session,
            _chromedriver: child,
            _profile: profile,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        webdriver(self.driver, method, &path, body).await
    }

    async fn goto(&self, url: &str) {
        self.call(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        self.call(Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn source(&self) -> String {
        self.call(Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Saves a PNG of the page as `{name}.png` in `docs/screenshots/` (or
    /// the directory named by `PORTCULLIS_TEST_SCREENSHOTS`): README and
    /// docs show these files, so every run of this test redraws them from
    /// the pages it has just checked, and they cannot go stale.
    async fn screenshot(&self, name: &str) {
        let dir = std::env::var("PORTCULLIS_TEST_SCREENSHOTS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots").to_string()
        });
        use base64::Engine as _;
        let png = self.call(Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5_000,
            "{name}: not a picture of a page ({} bytes)",
            bytes.len()
        );
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{name}.png"), bytes).unwrap();
    }

    /// Resizes the window (CSS pixels), e.g. to a phone's width.
    async fn resize(&self, width: u32, height: u32) {
        self.call(
            Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// Ends the session, which closes Chromium; chromedriver itself is
    /// killed when the `Browser` is dropped.
    async fn quit(self) {
        webdriver(
            self.driver,
            Method::DELETE,
            &format!("/session/{}", self.session),
            None,
        )
        .await;
    }

    /// Waits (up to 10 s) until the page's source contains `text`.
    async fn wait_for_text(&self, text: &str) -> bool {
        eventually(Duration::from_secs(10), || async {
            self.source().await.contains(text)
        })
        .await
    }

    /// Waits (up to 10 s) until the current URL satisfies `done`.
    async fn wait_for_url(&self, done: impl Fn(&str) -> bool) -> String {
        for _ in 0..100 {
            let url = self.url().await;
            if done(&url) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.url().await
    }
}

/// One WebDriver command; returns its `value`.
async fn webdriver(driver: SocketAddr, method: Method, path: &str, body: Option<Value>) -> Value {
    let url = format!("http://{driver}{path}");
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let reply = send(method, &url, &[("content-type", "application/json")], body).await;
    reply.json()["value"].clone()
}

/// Signs `demo` in from another client that calls itself Safari on an
/// iPhone; the session cookie.
async fn login_from_an_iphone(proxy: &Proxy) -> String {
    let (csrf_cookie, token) = login_form(proxy).await;
    let body = serde_urlencoded::to_string([
        ("username", "demo"),
        ("password", PASSWORD),
        ("csrf_token", token.as_str()),
        ("next", "/"),
    ])
    .unwrap();
    let agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
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
    reply.set_cookie("portcullis").expect("signed in")
}

#[tokio::test]
async fn browser_signs_in_and_lands_on_the_page_it_asked_for() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let browser = Browser::start().await;
    let base = format!("http://127.0.0.1:{}", proxy.addr.port());

    browser.goto(&format!("{base}/chat/?room=7")).await;
    let login_url = browser.url().await;
    assert!(
        login_url.starts_with(&format!("{base}/auth/login?next=")),
        "sent to sign in: {login_url}"
    );
    let page = browser.source().await;
    assert!(
        page.contains("<label for=\"username\""),
        "labelled username field"
    );
    assert!(
        page.contains("<label for=\"password\""),
        "labelled password field"
    );
    browser.resize(1024, 768).await;
    browser.screenshot("sign-in").await;

    browser.type_into("#username", "demo").await;
    browser.type_into("#password", "wrong password").await;
    browser.click("button[type=submit]").await;
    let after_failure = browser.wait_for_url(|u| !u.contains("?next=")).await;
    assert!(after_failure.ends_with("/auth/login"), "{after_failure}");
    assert!(browser
        .source()
        .await
        .contains("Incorrect username or password."));

    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    let landed = browser.wait_for_url(|u| u.contains("/chat/")).await;
    assert_eq!(landed, format!("{base}/chat/?room=7"));
    let app_page = browser.source().await;
    assert!(
        app_page.contains("\"x-auth-user\",\"1\""),
        "the app sees the user: {app_page}"
    );

    // The account page lists this session and another sign-in of the
    // same user, and its button ends the other one.
    let other = login_from_an_iphone(&proxy).await;
    let other_id = get(&proxy.url("/auth/me"), &[("cookie", &other)])
        .await
        .json()["session"]
        .as_str()
        .unwrap()
        .to_string();
    browser.goto(&format!("{base}/auth/account")).await;
    browser.resize(1024, 900).await;
    browser.screenshot("account").await;
    browser.resize(390, 844).await;
    browser.screenshot("account-phone").await;
    browser.resize(1024, 768).await;
    let account = browser.source().await;
    assert!(account.contains("This session"), "{account}");
    assert!(account.contains("Headless Chrome on Linux"), "{account}");
    assert!(account.contains(&other_id), "the other session is listed");
    assert!(account.contains("Safari on iPhone"), "{account}");
    browser
        .click(&format!("form[data-session=\"{other_id}\"] button"))
        .await;
    let after = browser.wait_for_url(|u| u.contains("done=")).await;
    assert_eq!(after, format!("{base}/auth/account?done=ended"));
    assert!(browser.source().await.contains("The session was ended."));
    let refused = get(&proxy.url("/auth/me"), &[("cookie", &other)]).await;
    assert_eq!(refused.status, http::StatusCode::UNAUTHORIZED);
    assert!(!browser.source().await.contains(&other_id));

    // Back to the sign-in page with a live session goes straight on.
    browser
        .goto(&format!("{base}/auth/login?next=/country/"))
        .await;
    let url = browser.wait_for_url(|u| u.contains("/country/")).await;
    assert_eq!(url, format!("{base}/country/"));

    // Sign out with the button; the app is walled off again.
    browser.goto(&format!("{base}/auth/logout")).await;
    browser.click("button[type=submit]").await;
    let out = browser.wait_for_url(|u| u.ends_with("/auth/login")).await;
    assert!(out.ends_with("/auth/login"), "{out}");
    browser.goto(&format!("{base}/chat/")).await;
    assert!(browser.url().await.contains("/auth/login?next="));
    browser.quit().await;
}

/// The base32 secret on the setup page (`<code id="secret">`).
fn secret_on(page: &str) -> String {
    let marker = "id=\"secret\">";
    let start = page.find(marker).expect("the setup page shows the secret") + marker.len();
    page[start..].split('<').next().unwrap().to_string()
}

/// The TOTP code of `secret` (base32) at Unix time `t`.
fn totp_at(secret: &str, t: u64) -> String {
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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn browser_enrols_a_second_factor_then_signs_in_with_password_and_code() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let browser = Browser::start().await;
    let base = format!("http://127.0.0.1:{}", proxy.addr.port());

    // Sign in with the password alone, then enrol on the setup page.
    browser.goto(&format!("{base}/auth/mfa/setup")).await;
    browser.type_into("#username", "demo").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for_url(|u| u.contains("/auth/mfa/setup"))
        .await;
    let page = browser.source().await;
    assert!(page.contains("<svg"), "the QR code is inline SVG");
    let secret = secret_on(&page);
    // The previous step's code enrols, so the current one is left to sign in.
    let ok = eventually(Duration::from_secs(10), || async { unix_now() % 30 <= 20 }).await;
    assert!(ok);
    let now = unix_now();
    browser
        .type_into("#code", &totp_at(&secret, now - 30))
        .await;
    browser.click("button[type=submit]").await;
    assert!(
        browser.wait_for_text("recovery-codes").await,
        "recovery codes shown"
    );

    // Sign out; the app asks for the password, then the code.
    browser.goto(&format!("{base}/auth/logout")).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url(|u| u.ends_with("/auth/login")).await;
    browser.goto(&format!("{base}/chat/?room=7")).await;
    browser.type_into("#username", "demo").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    let second = browser.wait_for_url(|u| u.ends_with("/auth/mfa")).await;
    assert_eq!(second, format!("{base}/auth/mfa"));
    let form = browser.source().await;
    assert!(form.contains("autocomplete=\"one-time-code\""), "{form}");

    browser.type_into("#code", "000000").await;
    browser.click("button[type=submit]").await;
    assert!(browser.wait_for_text("That code is not right.").await);

    browser.type_into("#code", &totp_at(&secret, now)).await;
    browser.click("button[type=submit]").await;
    let landed = browser.wait_for_url(|u| u.contains("/chat/")).await;
    assert_eq!(landed, format!("{base}/chat/?room=7"));
    assert!(
        browser.source().await.contains("\"x-auth-user\",\"1\""),
        "the app sees the user"
    );
    browser.quit().await;
}

/// A user who forgot their password gets back in from the mail alone:
/// the sign-in page's link, the form, the mailed link, a new password.
#[tokio::test]
async fn browser_resets_a_forgotten_password_from_the_mailed_link() {
    let upstream = Upstream::start().await;
    let smtp = common::smtp::SmtpServer::start().await;
    let db = common::db::MysqlDb::create().await;
    db.add_user(
        "alice",
        &bcrypt::hash(PASSWORD, 4).unwrap(),
        "patient",
        true,
    )
    .await;
    let extra = format!(
        "{}[mail]\nsmtp = \"{}\"\nfrom = \"portcullis <no-reply@example.com>\"\n",
        db.toml("password_update = \"UPDATE users SET password_hash = ? WHERE id = ?\""),
        smtp.url()
    );
    let proxy = Proxy::start(&upstream, &extra).await;
    let browser = Browser::start().await;
    let base = format!("http://127.0.0.1:{}", proxy.addr.port());

    browser.goto(&format!("{base}/auth/login")).await;
    browser.click("a[href=\"/auth/reset\"]").await;
    browser.wait_for_url(|u| u.ends_with("/auth/reset")).await;
    browser.type_into("#login", "alice@example.com").await;
    browser.click("button[type=submit]").await;
    let mut sent = String::new();
    for _ in 0..100 {
        sent = browser.source().await;
        if sent.contains("Check your email") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent.contains("Check your email"), "{sent}");

    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    // The link names `server.public_url` (no port in the tests).
    let link = mails[0].link("/auth/reset/confirm").expect("a reset link");
    let link = link.replacen("http://127.0.0.1", &base, 1);
    browser.goto(&link).await;
    let new_password = "violet-harbour-tunes-42";
    browser.type_into("#new_password", new_password).await;
    browser.click("button[type=submit]").await;
    let url = browser.wait_for_url(|u| u.ends_with("/auth/login")).await;
    assert!(url.ends_with("/auth/login"), "{url}");

    browser.type_into("#username", "alice").await;
    browser.type_into("#password", new_password).await;
    browser.click("button[type=submit]").await;
    let landed = browser.wait_for_url(|u| !u.contains("/auth/")).await;
    assert_eq!(landed, format!("{base}/"));
    browser.quit().await;
}
