//! Fault injection: a PostgreSQL cluster of the test's own (never the shared
//! server) is stopped and started under a running proxy. While it is down,
//! requests that need it get a clear 503 (never a hang, a redirect loop or a
//! 500 with internal text) and `/readyz` says so; once it is back, the proxy
//! recovers by itself and every session still works.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};

/// How long any single request may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

// ------------------------------------------------------------ own cluster

/// A throwaway PostgreSQL cluster in a temp dir, on a port of its own.
/// Dropping it stops the server and removes the directory.
struct TempCluster {
    ctl: PgCtl,
    running: bool,
    // Removed after `Drop::drop` has stopped the server.
    _dir: tempfile::TempDir,
}

/// Where a cluster lives and how to run its binaries (cheap to clone into a
/// blocking task, so `pg_ctl -w` never stalls the proxy sharing the runtime).
#[derive(Clone)]
struct PgCtl {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
}

impl TempCluster {
    /// Runs `initdb` into a fresh temp dir; the server is not started yet.
    async fn init() -> TempCluster {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-faults-")
            .tempdir()
            .unwrap();
        let ctl = PgCtl {
            bin: postgres_bin(),
            root: dir.path().to_path_buf(),
            port: free_port(),
        };
        let init = ctl.clone();
        tokio::task::spawn_blocking(move || init.initdb())
            .await
            .unwrap();
        TempCluster {
            ctl,
            running: false,
            _dir: dir,
        }
    }

    /// Runs `initdb` and starts the server.
    async fn started() -> TempCluster {
        let mut cluster = TempCluster::init().await;
        cluster.start().await;
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.ctl.port)
    }

    /// Starts the server (same dir, same port every time) and waits for it.
    async fn start(&mut self) {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || ctl.start())
            .await
            .unwrap();
        self.running = true;
    }

    /// Stops the server (fast shutdown: every client is disconnected).
    async fn stop(&mut self) {
        let ctl = self.ctl.clone();
        tokio::task::spawn_blocking(move || ctl.stop())
            .await
            .unwrap();
        self.running = false;
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.ctl.pg_ctl_stop();
        }
    }
}

impl PgCtl {
    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// A command for one of the server binaries, as the postgres user when
    /// the tests run as root (PostgreSQL refuses to run as root).
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if running_as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn initdb(&self) {
        let sock = self.root.join("sock");
        std::fs::create_dir(&sock).unwrap();
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.root)
                .status()
                .unwrap();
            assert!(status.success(), "chown of {} failed", self.root.display());
        }
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["--auth=trust", "-U", "postgres", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60 \
             -c shared_buffers=16MB -c fsync=off",
            self.port,
            self.root.join("sock").display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-o")
            .arg(options)
            .arg("-w")
            .arg("-l")
            .arg(self.log_file())
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.log_file()).unwrap_or_default()
        );
    }

    fn pg_ctl_stop(&self) -> std::process::Output {
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .unwrap()
    }

    fn stop(&self) {
        let out = self.pg_ctl_stop();
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The newest installed PostgreSQL's `bin` directory.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/pg_ctl")
        .1
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ----------------------------------------------------------------- helpers

/// TOML selecting the PostgreSQL session store on `cluster`.
fn pg_toml(cluster: &TempCluster, session_keys: &str) -> String {
    format!(
        "[session]\nstore = \"postgres\"\n{session_keys}\n[postgres]\nurl = \"{}\"\nconnect_timeout = \"1s\"\n",
        cluster.url()
    )
}

/// `send` that fails the test instead of waiting forever.
async fn send_in_time(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let body = body.to_string();
    tokio::time::timeout(HANG, send(method.clone(), url, headers, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {url} hung for more than {HANG:?}"))
}

async fn get_in_time(url: &str, headers: &[(&str, &str)]) -> Reply {
    send_in_time(Method::GET, url, headers, "").await
}

async fn readyz(proxy: &Proxy) -> StatusCode {
    get_in_time(&format!("http://{}/readyz", proxy.admin_addr), &[])
        .await
        .status
}

/// A clear 503: the right status, a Retry-After, and nothing of the
/// database's own words in the body.
fn assert_clear_503(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {:?} {}",
        reply.headers,
        reply.text()
    );
    assert!(
        reply.header("retry-after").is_some(),
        "{what}: 503 without Retry-After: {:?}",
        reply.headers
    );
    let body = reply.text().to_lowercase();
    for internal in ["postgres", "connection", "error trying", "db error"] {
        assert!(
            !body.contains(internal),
            "{what}: body leaks {internal:?}: {}",
            reply.text()
        );
    }
}

const JSON: (&str, &str) = ("accept", "application/json");
const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml");

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn postgres_outage_gives_503_then_recovers_without_losing_sessions() {
    let mut cluster = TempCluster::started().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &pg_toml(&cluster, "cache_ttl = \"1s\"")).await;
    proxy.wait_ready().await;

    let session = login(&proxy, "demo").await;
    let before = get_in_time(&proxy.url("/chat/"), &[("cookie", &session), JSON]).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.upstream_header("x-auth-user"), vec!["1"]);
    let (csrf_cookie, token) = login_form(&proxy).await;

    cluster.stop().await;
    // Past cache_ttl (the revocation listener also clears the cache when its
    // connection drops): the session must be read from the database again.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Under load: many API calls at once, every one a clear 503 in time.
    let calls = (0..16)
        .map(|_| async { get_in_time(&proxy.url("/chat/"), &[("cookie", &session), JSON]).await });
    for reply in futures_util::future::join_all(calls).await {
        assert_clear_503(&reply, "API request during the outage");
        assert_eq!(reply.json()["error"], "service_unavailable");
    }

    // A browser is told to wait, not sent to sign in again (a redirect loop).
    let page = get_in_time(&proxy.url("/chat/"), &[("cookie", &session), HTML]).await;
    assert_ne!(
        page.status,
        StatusCode::FOUND,
        "redirected: {:?}",
        page.headers
    );
    assert_ne!(
        page.status,
        StatusCode::SEE_OTHER,
        "redirected: {:?}",
        page.headers
    );
    assert!(page.header("location").is_none(), "{:?}", page.headers);
    assert_clear_503(&page, "browser navigation during the outage");

    // Signing in cannot work without the database: 503, no session cookie.
    let body = serde_urlencoded::to_string([
        ("username", "demo"),
        ("password", PASSWORD),
        ("csrf_token", token.as_str()),
        ("next", "/"),
    ])
    .unwrap();
    let submit = send_in_time(
        Method::POST,
        &proxy.url("/auth/login"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", csrf_cookie.as_str()),
            HTML,
        ],
        &body,
    )
    .await;
    assert_clear_503(&submit, "login POST during the outage");
    assert!(submit.set_cookie("portcullis").is_none());

    assert_eq!(readyz(&proxy).await, StatusCode::SERVICE_UNAVAILABLE);

    // Back again: the same cookie works, with no restart of the proxy.
    cluster.start().await;
    let recovered = eventually(Duration::from_secs(20), || async {
        get_in_time(&proxy.url("/chat/"), &[("cookie", &session), JSON])
            .await
            .status
            == StatusCode::OK
    })
    .await;
    assert!(
        recovered,
        "the session never worked again after PostgreSQL came back"
    );
    let after = get_in_time(&proxy.url("/chat/"), &[("cookie", &session), JSON]).await;
    assert_eq!(after.upstream_header("x-auth-user"), vec!["1"]);
    let ready = eventually(Duration::from_secs(10), || async {
        readyz(&proxy).await == StatusCode::OK
    })
    .await;
    assert!(ready, "/readyz stayed 503 after PostgreSQL came back");
    // And signing in works again.
    let fresh = login(&proxy, "admin").await;
    let admin = get_in_time(&proxy.url("/admin/"), &[("cookie", &fresh), JSON]).await;
    assert_eq!(admin.status, StatusCode::OK);
}

#[tokio::test]
async fn serve_starts_while_postgres_is_down() {
    let mut cluster = TempCluster::init().await;
    let upstream = Upstream::start().await;
    let proxy = tokio::time::timeout(HANG, Proxy::start(&upstream, &pg_toml(&cluster, "")))
        .await
        .expect("the proxy did not start while PostgreSQL was down");

    let health = get_in_time(&format!("http://{}/healthz", proxy.admin_addr), &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(readyz(&proxy).await, StatusCode::SERVICE_UNAVAILABLE);

    // A session cookie can only be checked in the database: 503, in time.
    let unknown = format!("portcullis={}", "A".repeat(43));
    let api = get_in_time(&proxy.url("/chat/"), &[("cookie", &unknown), JSON]).await;
    assert_clear_503(&api, "API request before PostgreSQL is up");
    // The sign-in form needs the shared CSRF key from the database.
    let form = get_in_time(&proxy.url("/auth/login"), &[HTML]).await;
    assert_clear_503(&form, "login form before PostgreSQL is up");

    cluster.start().await;
    let ready = eventually(Duration::from_secs(20), || async {
        readyz(&proxy).await == StatusCode::OK
    })
    .await;
    assert!(ready, "/readyz never turned 200 once PostgreSQL was up");
    let session = login(&proxy, "demo").await;
    let reply = get_in_time(&proxy.url("/chat/"), &[("cookie", &session), JSON]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.upstream_header("x-auth-user"), vec!["1"]);
}

#[tokio::test]
async fn check_names_the_failing_postgres_backend() {
    let users = users_file();
    let check = |url: String| {
        let users = users.path().to_path_buf();
        async move {
            let text = format!(
                "[session]\nstore = \"postgres\"\n[postgres]\nurl = \"{url}\"\n\
                 [credentials.file]\npath = \"{}\"\n",
                users.display()
            );
            let mut config = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(&mut config, text.as_bytes()).unwrap();
            let run = tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_portcullis"))
                    .args(["check", "--config"])
                    .arg(config.path())
                    .output()
                    .unwrap()
            });
            tokio::time::timeout(Duration::from_secs(30), run)
                .await
                .expect("portcullis check hung")
                .unwrap()
        }
    };

    let closed = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    let out = check(closed).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("postgres.url"), "{err}");

    let cluster = TempCluster::started().await;
    let out = check(cluster.url()).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
