//! Shared test builders: an upstream that echoes what it received (plus a few
//! streaming and WebSocket endpoints), a proxy started in-process from a TOML
//! string, an HTTP client that keeps the raw response, and a raw TCP helper
//! for requests no well-behaved client would send.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis::web::response::{full, Body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub mod db;
pub mod smtp;

/// Password of every test user; hashes use bcrypt cost 4 to keep tests fast.
pub const PASSWORD: &str = "correct horse battery";

// ---------------------------------------------------------------- upstream

/// A real HTTP server standing in for the app.
///
/// - any path: 200 JSON `{"method","path","query","headers":[[name,value]...],"body_len","body_sha256"}`
///   (headers in the order and spelling received, duplicates kept)
/// - `/sse`: three `data:` events 300 ms apart, flushed one by one
/// - `/download?bytes=N`: N bytes of a repeating pattern in 64 KiB chunks
/// - `/slow`: answers after 3 s
/// - `/ws`: WebSocket echo (answers 101); `/ws-refused`: 403 to an upgrade
pub struct Upstream {
    pub addr: SocketAddr,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(upstream_handler))
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The byte at position `i` of a `/download` body.
pub fn pattern_byte(i: usize) -> u8 {
    (i % 251) as u8
}

async fn upstream_handler(mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    match path.as_str() {
        "/sse" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<
                Result<Frame<Bytes>, portcullis::web::response::BoxError>,
            >(4);
            tokio::spawn(async move {
                for i in 0..3 {
                    let _ = tx
                        .send(Ok(Frame::data(Bytes::from(format!("data: event {i}\n\n")))))
                        .await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            });
            let stream = tokio_stream_from(rx);
            let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
            resp.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            Ok(resp)
        }
        "/download" => {
            let total: usize = query
                .strip_prefix("bytes=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let (tx, rx) = tokio::sync::mpsc::channel::<
                Result<Frame<Bytes>, portcullis::web::response::BoxError>,
            >(4);
            tokio::spawn(async move {
                let mut sent = 0;
                while sent < total {
                    let n = (total - sent).min(64 * 1024);
                    let chunk: Vec<u8> = (sent..sent + n).map(pattern_byte).collect();
                    if tx.send(Ok(Frame::data(Bytes::from(chunk)))).await.is_err() {
                        return;
                    }
                    sent += n;
                }
            });
            Ok(Response::new(BodyExt::boxed_unsync(StreamBody::new(
                tokio_stream_from(rx),
            ))))
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(Response::new(full("slow")))
        }
        "/ws" | "/ws-refused" => {
            if path == "/ws-refused" {
                let mut resp = Response::new(full("no websockets here"));
                *resp.status_mut() = StatusCode::FORBIDDEN;
                return Ok(resp);
            }
            let key = req.headers().get("sec-websocket-key").cloned();
            let Some(key) = key else {
                let mut resp = Response::new(full("not a websocket request"));
                *resp.status_mut() = StatusCode::BAD_REQUEST;
                return Ok(resp);
            };
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        if ws.send(msg).await.is_err() {
                            break;
                        }
                    } else if msg.is_close() {
                        break;
                    }
                }
            });
            let mut resp = Response::new(portcullis::web::response::empty());
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = resp.headers_mut();
            h.insert("connection", "upgrade".parse().unwrap());
            h.insert("upgrade", "websocket".parse().unwrap());
            h.insert("sec-websocket-accept", accept.parse().unwrap());
            Ok(resp)
        }
        _ => {
            let method = req.method().to_string();
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).to_string(),
                    )
                })
                .collect();
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            let mut body_len = 0usize;
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    body_len += data.len();
                    sha2::Digest::update(&mut hasher, data);
                }
            }
            let digest: [u8; 32] = sha2::Digest::finalize(hasher).into();
            let json = serde_json::json!({
                "method": method,
                "path": path,
                "query": query,
                "headers": headers,
                "body_len": body_len,
                "body_sha256": hex(&digest),
            });
            let mut resp = Response::new(full(json.to_string()));
            resp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            Ok(resp)
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------------- proxy

/// A users file with cost-4 bcrypt hashes of [`PASSWORD`]:
/// `demo` (id 1, patient), `admin` (id 2, admin + patient), `gone` (id 3, inactive).
pub fn users_file() -> tempfile::NamedTempFile {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let text = format!(
        r#"
[[user]]
id = "1"
username = "demo"
email = "demo@example.com"
password_hash = "{hash}"
roles = ["patient"]

[[user]]
id = "2"
username = "admin"
email = "admin@example.com"
password_hash = "{hash}"
roles = ["admin", "patient"]

[[user]]
id = "3"
username = "gone"
email = "gone@example.com"
password_hash = "{hash}"
roles = ["patient"]
active = false
"#
    );
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    file
}

/// A portcullis running in-process on `127.0.0.1:0`.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _users: tempfile::NamedTempFile,
    /// The directory of the SQLite file, when the test did not choose one.
    _state: Option<tempfile::TempDir>,
}

/// How a test proxy is started: [`Proxy::start`] for the common case,
/// [`Proxy::builder`] to change the `[server]` or `[upstream]` keys or the
/// users file.
pub struct ProxyBuilder {
    upstream_url: String,
    upstream_keys: String,
    server_keys: String,
    users: Option<String>,
    extra: String,
    sqlite: Option<std::path::PathBuf>,
}

impl ProxyBuilder {
    /// `[server]` keys (listen is set); replaces the default
    /// `public_url = "http://127.0.0.1"`.
    pub fn server(mut self, keys: &str) -> Self {
        self.server_keys = keys.to_string();
        self
    }

    /// More `[upstream]` keys (url is set).
    pub fn upstream_keys(mut self, keys: &str) -> Self {
        self.upstream_keys = keys.to_string();
        self
    }

    /// The users file (TOML text) instead of [`users_file`]'s.
    pub fn users(mut self, toml: &str) -> Self {
        self.users = Some(toml.to_string());
        self
    }

    /// Whole tables appended to the config (later keys of a table already
    /// present are not allowed).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra = toml.to_string();
        self
    }

    /// The SQLite file (`[sqlite] path`), for a test that restarts the
    /// proxy on the same file; by default each proxy gets a file of its
    /// own in a temp directory that goes with it.
    pub fn sqlite(mut self, path: &std::path::Path) -> Self {
        self.sqlite = Some(path.to_path_buf());
        self
    }

    pub async fn start(self) -> Proxy {
        let users = match &self.users {
            Some(text) => {
                let mut users = tempfile::NamedTempFile::new().unwrap();
                std::io::Write::write_all(&mut users, text.as_bytes()).unwrap();
                users
            }
            None => users_file(),
        };
        // Never the working directory's `portcullis.db`: every proxy of a
        // test run has its own file unless the test chose one.
        let (state, sqlite) = match &self.sqlite {
            Some(path) => (None, format!("[sqlite]\npath = \"{}\"\n", path.display())),
            None if self.extra.contains("[sqlite]") => (None, String::new()),
            None => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("portcullis.db");
                (
                    Some(dir),
                    format!("[sqlite]\npath = \"{}\"\n", path.display()),
                )
            }
        };
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
{server_keys}
[admin]
listen = "127.0.0.1:0"
[upstream]
url = "{upstream_url}"
{upstream_keys}
[credentials.file]
path = "{users}"
[[route]]
path = "/static/**"
methods = ["GET", "HEAD"]
access = "public"
[[route]]
path = "/admin/**"
roles = ["admin"]
[[route]]
path = "/internal/**"
access = "deny"
[log]
format = "pretty"
access_log = false
{sqlite}
{extra}
"#,
            server_keys = self.server_keys,
            upstream_url = self.upstream_url,
            upstream_keys = self.upstream_keys,
            extra = self.extra,
            users = users.path().display(),
        );
        let config = portcullis::Config::from_toml(&toml, std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n{toml}"));
        let listeners = portcullis::Listeners::bind(&config).await.unwrap();
        let addr = listeners.main.local_addr().unwrap();
        let admin_addr = listeners.admin.as_ref().unwrap().local_addr().unwrap();
        let app = portcullis::App::build(config).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(portcullis::run(app, listeners, async {
            let _ = rx.await;
        }));
        Proxy {
            addr,
            admin_addr,
            shutdown: Some(tx),
            task: Some(task),
            _users: users,
            _state: state,
        }
    }
}

impl Proxy {
    /// Starts a proxy in front of `upstream` with the SPEC example routes,
    /// an `http://` public URL (cookies without `Secure`, so plain-HTTP
    /// tests can use them), and `extra` TOML appended (whole tables).
    pub async fn start(upstream: &Upstream, extra: &str) -> Proxy {
        Self::builder(upstream).extra(extra).start().await
    }

    /// A proxy in front of `upstream`, to be adjusted before `start`.
    pub fn builder(upstream: &Upstream) -> ProxyBuilder {
        Self::builder_for_url(&upstream.url())
    }

    /// A proxy in front of any URL (a closed port, a slow server...).
    pub fn builder_for_url(upstream_url: &str) -> ProxyBuilder {
        ProxyBuilder {
            upstream_url: upstream_url.to_string(),
            upstream_keys: String::new(),
            server_keys: "public_url = \"http://127.0.0.1\"\n".to_string(),
            users: None,
            extra: String::new(),
            sqlite: None,
        }
    }

    /// Polls `/readyz` until it answers 200 (schema applied, keys loaded),
    /// failing the test after 20 s.
    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.admin_addr);
        let ready = eventually(Duration::from_secs(20), || async {
            get(&url, &[]).await.status == StatusCode::OK
        })
        .await;
        assert!(ready, "proxy never became ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals shutdown and returns the task that finishes once drained.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// ------------------------------------------------------------------ client

/// A response with its body fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `name=value` part of the session cookie set by this response.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_string())
    }

    /// The headers the echo upstream received, as `(name, value)` pairs.
    pub fn upstream_headers(&self) -> Vec<(String, String)> {
        self.json()["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_string(),
                    pair[1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Values of one header (case-insensitive name) the upstream received.
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        self.upstream_headers()
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request and reads the whole response.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client()
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send(Method::GET, url, headers, Bytes::new()).await
}

/// Opens the login form and returns `(csrf cookie "name=value", csrf token)`.
pub async fn login_form(proxy: &Proxy) -> (String, String) {
    let page = get(&proxy.url("/auth/login"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = page
        .set_cookie("portcullis-csrf")
        .expect("login form sets the CSRF cookie");
    (cookie, csrf_token_in(&page.text()))
}

pub fn csrf_token_in(page: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker).expect("page has a csrf_token field") + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}

/// Posts the login form; returns the raw reply.
pub async fn post_login(
    proxy: &Proxy,
    csrf_cookie: &str,
    token: &str,
    user: &str,
    password: &str,
    next: &str,
) -> Reply {
    let body = serde_urlencoded::to_string([
        ("username", user),
        ("password", password),
        ("csrf_token", token),
        ("next", next),
    ])
    .unwrap();
    send(
        Method::POST,
        &proxy.url("/auth/login"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", csrf_cookie),
        ],
        body,
    )
    .await
}

/// POSTs `body` as JSON.
pub async fn json_post(proxy: &Proxy, path: &str, body: serde_json::Value) -> Reply {
    let headers = [("content-type", "application/json")];
    send(Method::POST, &proxy.url(path), &headers, body.to_string()).await
}

/// Signs in with a JSON login; returns the token answer.
pub async fn token_login(proxy: &Proxy, user: &str) -> serde_json::Value {
    let body = serde_json::json!({"username": user, "password": PASSWORD});
    let reply = json_post(proxy, "/auth/login", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

/// Signs in and returns the session cookie as `name=value`.
pub async fn login(proxy: &Proxy, user: &str) -> String {
    let (csrf_cookie, token) = login_form(proxy).await;
    let reply = post_login(proxy, &csrf_cookie, &token, user, PASSWORD, "/").await;
    assert_eq!(
        reply.status,
        StatusCode::SEE_OTHER,
        "login failed: {}",
        reply.text()
    );
    reply
        .set_cookie("portcullis")
        .expect("login sets the session cookie")
}

// --------------------------------------------------------------------- raw

/// Writes `bytes` on a fresh connection and reads until the server closes or
/// `wait` passes; returns everything received.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).to_string()
}

/// Status code of the first response in a raw HTTP/1.1 reply.
pub fn raw_status(reply: &str) -> Option<u16> {
    reply.split_whitespace().nth(1)?.parse().ok()
}

pub type Shared<T> = Arc<T>;

/// Polls `check` every 50 ms for up to `limit`; true once it holds. For
/// properties with a deadline in SPEC ("within 1 second") or that settle
/// asynchronously; never a performance threshold.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
