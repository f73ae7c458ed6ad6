//! SIGHUP reload against the real binary: new route rules and users apply
//! without a restart, open connections and sessions survive, and a broken
//! config is refused with the old one kept. SIGTERM then exits 0. The
//! assertion key rotates on SIGHUP, in the published key set too.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn write(path: &std::path::Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn config(port: u16, upstream: &Upstream, users: &std::path::Path, extra_routes: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1\"\n[admin]\nlisten = \"\"\n\
         [upstream]\nurl = \"{}\"\n[credentials.file]\npath = \"{}\"\n{extra_routes}[log]\nformat = \"json\"\n",
        upstream.url(),
        users.display()
    )
}

fn user(id: &str, name: &str) -> String {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    format!("[[user]]\nid = \"{id}\"\nusername = \"{name}\"\npassword_hash = \"{hash}\"\n")
}

/// Signs in against a bare address (the binary is not a `common::Proxy`).
async fn sign_in(base: &str, name: &str) -> Reply {
    let page = get(&format!("{base}/auth/login"), &[]).await;
    let cookie = page.set_cookie("portcullis-csrf").unwrap();
    let token = csrf_token_in(&page.text());
    let body = serde_urlencoded::to_string([
        ("username", name),
        ("password", PASSWORD),
        ("csrf_token", &token),
        ("next", "/"),
    ])
    .unwrap();
    send(
        http::Method::POST,
        &format!("{base}/auth/login"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", &cookie),
        ],
        body,
    )
    .await
}

#[tokio::test]
async fn sighup_applies_new_rules_and_users_and_refuses_a_broken_config() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let conf = dir.path().join("proxy.toml");
    write(&users, &user("1", "demo"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write(&conf, &config(port, &upstream, &users, ""));
    // The log tells the test when a reload was refused (the running config
    // looks the same whether SIGHUP was refused or ignored).
    let log_path = dir.path().join("portcullis.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&conf)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        eventually(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await,
        "portcullis did not start"
    );

    let session = sign_in(&base, "demo")
        .await
        .set_cookie("portcullis")
        .unwrap();
    assert_eq!(
        get(&format!("{base}/secret/x"), &[("cookie", &session)])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        sign_in(&base, "newbie").await.status,
        StatusCode::UNAUTHORIZED
    );

    // A keep-alive connection opened before the reload.
    let mut open = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET /x HTTP/1.1\r\nHost: a\r\nCookie: {session}\r\n\r\n");
    open.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = open.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    write(
        &users,
        &format!("{}{}", user("1", "demo"), user("7", "newbie")),
    );
    write(
        &conf,
        &config(
            port,
            &upstream,
            &users,
            "[[route]]\npath = \"/secret/**\"\naccess = \"deny\"\n",
        ),
    );
    signal(&running.0, "HUP");
    let denied = eventually(Duration::from_secs(10), || async {
        get(&format!("{base}/secret/x"), &[("cookie", &session)])
            .await
            .status
            == StatusCode::FORBIDDEN
    })
    .await;
    assert!(denied, "the new rule did not apply");
    assert_eq!(
        get(&format!("{base}/x"), &[("cookie", &session)])
            .await
            .status,
        StatusCode::OK,
        "sessions survive"
    );
    assert_eq!(
        sign_in(&base, "newbie").await.status,
        StatusCode::SEE_OTHER,
        "the new user signs in"
    );

    open.write_all(request.as_bytes()).await.unwrap();
    let n = open.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "open connection kept"
    );

    write(&conf, "[server]\nlisten = \"nowhere\"\nbogus_key = 1\n");
    signal(&running.0, "HUP");
    let refused = eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        async move { log.contains("reload refused") }
    })
    .await;
    assert!(
        refused,
        "the broken config was not refused (SIGHUP ignored?)"
    );
    assert_eq!(
        get(&format!("{base}/secret/x"), &[("cookie", &session)])
            .await
            .status,
        StatusCode::FORBIDDEN,
        "the old config is kept"
    );
    assert!(running.0.try_wait().unwrap().is_none(), "still running");

    signal(&running.0, "TERM");
    let exited = eventually(Duration::from_secs(10), || {
        let done = running.0.try_wait().unwrap();
        async move { done.is_some() }
    })
    .await;
    assert!(exited, "SIGTERM did not stop it");
    assert!(running.0.wait().unwrap().success(), "exit 0 on SIGTERM");
}

fn assertion(key: &str) -> String {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    format!(
        "[upstream.assertion]\nalgorithm = \"EdDSA\"\nkey = \"{fixtures}/{key}\"\naudience = \"growbal\"\n"
    )
}

/// The kid of the one key `/auth/jwks.json` publishes.
async fn published_kid(base: &str) -> String {
    let set = get(&format!("{base}/auth/jwks.json"), &[]).await.json();
    set["keys"][0]["kid"].as_str().unwrap().to_string()
}

/// The kid in the header of the assertion the app received for `/x`.
async fn forwarded_kid(base: &str, session: &str) -> String {
    let reply = get(&format!("{base}/x"), &[("cookie", session)]).await;
    let token = &reply.upstream_header("x-auth-assertion")[0];
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn sighup_rotates_the_assertion_key_and_the_published_jwks() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let conf = dir.path().join("proxy.toml");
    write(&users, &user("1", "demo"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let with_key = |key: &str| config(port, &upstream, &users, &assertion(key));
    write(&conf, &with_key("assertion-ed25519.key"));
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--config"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        eventually(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await,
        "portcullis did not start"
    );
    let session = sign_in(&base, "demo")
        .await
        .set_cookie("portcullis")
        .unwrap();
    let old = published_kid(&base).await;
    assert_eq!(forwarded_kid(&base, &session).await, old);

    write(&conf, &with_key("assertion-ed25519-next.key"));
    signal(&running.0, "HUP");
    let rotated = eventually(Duration::from_secs(10), || {
        let base = base.clone();
        let old = old.clone();
        async move { published_kid(&base).await != old }
    })
    .await;
    assert!(rotated, "the new key was not published");
    let new = published_kid(&base).await;
    assert_eq!(
        forwarded_kid(&base, &session).await,
        new,
        "assertions are signed with the new key"
    );
}
