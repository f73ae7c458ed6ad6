//! End to end against the real demo FastAPI app (deploy/app) under uvicorn,
//! the reference stack: the app sees exactly one X-Auth-User, the real one,
//! whatever spelling of it a client sends; with `[upstream.assertion]` it
//! verifies each request with the keys portcullis publishes (through the
//! `python/` package); and `portcullis routes` reads its real
//! `/openapi.json`. Needs the demo app's packages in `.venv`
//! (`scripts/test.sh` installs them); fails rather than skips without them.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use http::StatusCode;
use tokio::process::{Child, Command};

struct Uvicorn {
    addr: SocketAddr,
    _child: Child,
}

/// `$PORTCULLIS_TEST_PYTHON`, else the project's `.venv` (scripts/test.sh
/// installs the demo app's packages and `python/` there).
fn python() -> String {
    if let Ok(python) = std::env::var("PORTCULLIS_TEST_PYTHON") {
        return python;
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} missing: run scripts/test.sh to install the demo app",
        venv.display()
    );
    venv.display().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_uvicorn() -> Uvicorn {
    start_uvicorn_on(free_port(), &[]).await
}

/// The demo app on `port`, with `env` set (e.g. `PORTCULLIS_JWKS_URL`).
async fn start_uvicorn_on(port: u16, env: &[(&str, &str)]) -> Uvicorn {
    let python = python();
    let child = Command::new(&python)
        .args([
            "-m",
            "uvicorn",
            "--app-dir",
            "deploy/app",
            "main:app",
            "--host",
            "127.0.0.1",
        ])
        .args([
            "--port",
            &port.to_string(),
            "--proxy-headers",
            "--forwarded-allow-ips",
            "127.0.0.1",
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {python} -m uvicorn: {e}; run scripts/test.sh to install the demo app"
            )
        });
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = eventually(Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    assert!(
        started,
        "uvicorn did not start on {addr}; are the demo app and python/ installed in .venv (scripts/test.sh)?"
    );
    Uvicorn {
        addr,
        _child: child,
    }
}

#[tokio::test]
async fn demo_app_sees_exactly_one_trustworthy_user_header() {
    let app = start_uvicorn().await;
    let upstream = Upstream { addr: app.addr };
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;

    let request = format!(
        "GET /debug/headers HTTP/1.1\r\nHost: app.example\r\nCookie: {session}\r\n\
         X_Auth_User: evil-underscore\r\nx-auth-user: evil-lower\r\nX-AUTH-USER: evil-upper\r\n\
         x_auth_roles: admin\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n"
    );
    let reply = raw(proxy.addr, request.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(raw_status(&reply), Some(200), "{reply}");
    let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    // The proxy answers with a chunked or sized body; the JSON is one line.
    let json_line = body
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("JSON body");
    let seen: serde_json::Value = serde_json::from_str(json_line).unwrap();

    assert_eq!(seen["x_auth_user"], "1", "{seen}");
    let headers = seen["headers"].as_array().unwrap();
    let user_like: Vec<_> = headers
        .iter()
        .filter(|h| h[0].as_str().unwrap().replace('_', "-") == "x-auth-user")
        .collect();
    assert_eq!(
        user_like.len(),
        1,
        "exactly one user header reaches the app: {seen}"
    );
    assert_eq!(user_like[0][1], "1");
    let roles: Vec<_> = headers
        .iter()
        .filter(|h| h[0].as_str().unwrap().replace('_', "-") == "x-auth-roles")
        .collect();
    assert_eq!(roles.len(), 1, "{seen}");
    assert_eq!(roles[0][1], "patient");
    let xff: Vec<_> = headers
        .iter()
        .filter(|h| h[0] == "x-forwarded-for")
        .collect();
    assert_eq!(xff.len(), 1, "{seen}");
    assert_eq!(xff[0][1], "127.0.0.1");
    assert_eq!(
        seen["client"], "127.0.0.1",
        "uvicorn reads the proxy's X-Forwarded-For"
    );
}

#[tokio::test]
async fn demo_app_routes_are_behind_the_login_wall() {
    let app = start_uvicorn().await;
    let upstream = Upstream { addr: app.addr };
    let proxy = Proxy::start(&upstream, "").await;
    for path in ["/", "/country/", "/proceed-to-chat", "/chat/"] {
        let reply = get(
            &proxy.url(path),
            &[("accept", "text/html"), ("x-auth-user", "1")],
        )
        .await;
        assert_eq!(reply.status, StatusCode::FOUND, "{path}");
    }
    let session = login(&proxy, "demo").await;
    for path in ["/", "/country/", "/chat/"] {
        let reply = get(
            &proxy.url(path),
            &[("accept", "text/html"), ("cookie", &session)],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert!(
            reply.text().contains("demo@example.com") || reply.text().contains('1'),
            "{path}"
        );
    }
}

#[tokio::test]
async fn demo_app_verifies_assertions_with_the_published_keys() {
    // The proxy needs the app's address and the app the proxy's: fix the
    // app's port first.
    let app_port = free_port();
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/assertion-ed25519.key"
    );
    let proxy = Proxy::builder_for_url(&format!("http://127.0.0.1:{app_port}"))
        .upstream_keys(&format!(
            "[upstream.assertion]\nalgorithm = \"EdDSA\"\nkey = \"{key}\"\naudience = \"growbal\"\n"
        ))
        .start()
        .await;
    let jwks = proxy.url("/auth/jwks.json");
    let app = start_uvicorn_on(app_port, &[("PORTCULLIS_JWKS_URL", &jwks)]).await;

    let session = login(&proxy, "admin").await;
    let reply = get(&proxy.url("/debug/assertion"), &[("cookie", &session)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(seen["checked"], true, "{seen}");
    assert_eq!(seen["user_id"], "2");
    assert_eq!(
        seen["claims"]["roles"],
        serde_json::json!(["admin", "patient"])
    );
    let page = get(&proxy.url("/"), &[("cookie", &session)]).await;
    assert!(
        page.text().contains("verified with portcullis"),
        "{}",
        page.text()
    );

    // Around portcullis, identity headers alone are refused.
    let direct = get(
        &format!("http://{}/debug/assertion", app.addr),
        &[("x-auth-user", "2"), ("x-auth-roles", "admin")],
    )
    .await;
    assert_eq!(direct.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn routes_reads_the_demo_apps_real_openapi_json() {
    let app = start_uvicorn().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["routes", "--config", "proxy.toml", "--openapi"])
        .arg(format!("http://{}/openapi.json", app.addr))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/country/"),
        ("GET", "/proceed-to-chat"),
        ("POST", "/proceed-to-chat"),
        ("GET", "/chat/"),
        ("GET", "/healthz"),
    ] {
        assert!(
            rows.contains(&vec![method, path, "authenticated", "default"]),
            "{method} {path}: {stdout}"
        );
    }
    // The shipped proxy.toml has no rule for the demo app's pages: --strict
    // says so, naming them.
    let strict = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["routes", "--strict", "--config", "proxy.toml", "--openapi"])
        .arg(format!("http://{}/openapi.json", app.addr))
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stderr)
        .contains("--strict: GET /chat/ has no [[route]] rule"));
}

#[tokio::test]
async fn demo_app_keeps_its_chat_per_sign_in_by_x_auth_session() {
    let app = start_uvicorn().await;
    let upstream = Upstream { addr: app.addr };
    let proxy = Proxy::start(&upstream, "").await;
    let first = login(&proxy, "demo").await;
    let me = get(&proxy.url("/auth/me"), &[("cookie", &first)]).await;
    let session = me.json()["session"].as_str().unwrap().to_string();

    fn html(cookie: &str) -> [(&str, &str); 2] {
        [("accept", "text/html"), ("cookie", cookie)]
    }
    let page = get(&proxy.url("/chat/?message=hello-one"), &html(&first)).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    assert!(text.contains(&session), "the app shows X-Auth-Session");
    assert!(
        text.contains("href=\"/auth/account\""),
        "links the account page"
    );
    assert!(text.contains("<li>hello-one</li>"));

    // Another sign-in of the same user is another conversation.
    let second = login(&proxy, "demo").await;
    let page = get(&proxy.url("/chat/?message=hello-two"), &html(&second)).await;
    let text = page.text();
    assert!(text.contains("<li>hello-two</li>") && !text.contains("hello-one"));
    let page = get(&proxy.url("/chat/"), &html(&first)).await;
    assert!(
        page.text().contains("<li>hello-one</li>"),
        "kept for its sign-in"
    );
}
