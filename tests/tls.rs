//! TLS termination: rustls with ALPN h2 and http/1.1, the same pipeline over
//! both, and HTTP/2 requests forwarded to the app as HTTP/1.1.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

async fn start_tls_proxy(upstream: &Upstream) -> Proxy {
    let server_keys = format!(
        "public_url = \"https://localhost\"\n[server.tls]\ncert = \"{FIXTURES}/localhost.crt\"\nkey = \"{FIXTURES}/localhost.key\"\n"
    );
    Proxy::builder(upstream).server(&server_keys).start().await
}

async fn connect(proxy: &Proxy, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(format!("{FIXTURES}/ca.crt")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn http2_over_tls_is_negotiated_and_served() {
    let upstream = Upstream::start().await;
    let proxy = start_tls_proxy(&upstream).await;
    let tls = connect(&proxy, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://localhost/chat/")
        .header("accept", "text/html")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);

    let req = Request::get("https://localhost/static/app.css")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let host: Vec<_> = seen["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == "host")
        .collect();
    assert_eq!(host.len(), 1, "{seen}");
    assert_eq!(host[0][1], "localhost");
    let proto: Vec<_> = seen["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == "x-forwarded-proto")
        .collect();
    assert_eq!(proto[0][1], "https");
}

#[tokio::test]
async fn http1_over_tls_is_served() {
    let upstream = Upstream::start().await;
    let proxy = start_tls_proxy(&upstream).await;
    let tls = connect(&proxy, b"http/1.1").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/auth/login")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-portcullis-csrf=") && cookie.contains("Secure"),
        "{cookie}"
    );
}

#[test]
fn unreadable_certificate_is_a_config_error_naming_the_key() {
    let err = portcullis::Config::from_toml(
        "[server.tls]\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"\n",
        std::path::Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("server.tls") && err.contains("/nonexistent.pem"),
        "{err}"
    );
}

#[tokio::test]
async fn plain_http_listener_redirects_to_the_public_https_origin() {
    let upstream = Upstream::start().await;
    let users = users_file();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://localhost\"\n\
         [server.tls]\ncert = \"{FIXTURES}/localhost.crt\"\nkey = \"{FIXTURES}/localhost.key\"\n\
         redirect_http_from = \"127.0.0.1:0\"\n[admin]\nlisten = \"\"\n[upstream]\nurl = \"{}\"\n\
         [credentials.file]\npath = \"{}\"\n",
        upstream.url(),
        users.path().display()
    );
    let config = portcullis::Config::from_toml(&toml, std::path::Path::new(".")).unwrap();
    let listeners = portcullis::Listeners::bind(&config).await.unwrap();
    let redirect = listeners
        .https_redirect
        .as_ref()
        .unwrap()
        .local_addr()
        .unwrap();
    let app = portcullis::App::build(config).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(portcullis::run(app, listeners, async {
        let _ = stopped.await;
    }));

    let reply = get(
        &format!("http://{redirect}/chat/?a=1"),
        &[("host", "evil.example")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        reply.header("location"),
        Some("https://localhost/chat/?a=1")
    );

    let _ = stop.send(());
    server.await.unwrap();
}
