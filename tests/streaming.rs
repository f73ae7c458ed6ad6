//! Bodies and connections that outlive a single buffered exchange: SSE
//! flushed event by event, WebSocket tunnels, large uploads and downloads
//! streamed intact, the 502 / 504 answers when the app is down or slow, and
//! graceful shutdown finishing what is in flight (SPEC request flow steps 7
//! and 8, Operations).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

// ----------------------------------------------------------------- helpers

/// An address nothing listens on: bound, then released.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// Opens a WebSocket to `path` on the proxy, with `cookie` if given.
async fn ws_connect(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
    }
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, stream)
        .await
        .map(|(ws, _)| ws)
}

/// Reads one HTTP/1.1 response head and its `Content-Length` body from a
/// connection that stays open; returns `(status, head, body)`.
async fn read_response(stream: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("response head in time")
            .unwrap();
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("response has a content-length");
    while buf.len() < head_end + length {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("response body in time")
            .unwrap();
        assert!(n > 0, "connection closed inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    (raw_status(&head).unwrap(), head, body)
}

fn assert_no_internal_detail(body: &str, upstream: SocketAddr) {
    for leak in [
        "Connection refused",
        "connection refused",
        "hyper",
        "error trying to connect",
        "os error",
        "tcp connect",
        &upstream.to_string(),
    ] {
        assert!(!body.contains(leak), "body leaks {leak:?}: {body}");
    }
}

async fn next_message(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("echo in time")
        .expect("stream open")
        .unwrap()
}

// ---------------------------------------------------------------------- SSE

#[tokio::test]
async fn sse_events_are_flushed_as_they_come() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;

    let req = Request::get(proxy.url("/sse"))
        .header("cookie", &session)
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut body = resp.into_body();

    // The upstream writes "event 2" 600 ms after "event 0"; a proxy that
    // buffered the response would deliver them together.
    let mut seen = String::new();
    let mut reads = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            let text = String::from_utf8_lossy(data).to_string();
            seen.push_str(&text);
            reads.push(text);
        }
    }
    let first = &reads[0];
    assert!(first.contains("event 0"), "first read: {first:?}");
    assert!(
        !first.contains("event 2"),
        "first read already holds the last event: {first:?}"
    );
    assert!(reads.len() >= 2, "all events in one read: {reads:?}");
    assert_eq!(seen, "data: event 0\n\ndata: event 1\n\ndata: event 2\n\n");
}

// ---------------------------------------------------------------- WebSocket

#[tokio::test]
async fn websocket_echoes_text_and_binary_through_the_proxy() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;

    let mut ws = ws_connect(proxy.addr, "/ws", Some(&session))
        .await
        .expect("handshake through the proxy succeeds");
    ws.send(Message::Text("hello through portcullis".into()))
        .await
        .unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.send(Message::Binary(binary.clone())).await.unwrap();

    assert_eq!(
        next_message(&mut ws).await,
        Message::Text("hello through portcullis".into())
    );
    assert_eq!(next_message(&mut ws).await, Message::Binary(binary));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_handshake_without_session_gets_401_and_no_tunnel() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;

    match ws_connect(proxy.addr, "/ws", None).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            assert!(resp.headers().get("sec-websocket-accept").is_none());
        }
        Ok(_) => panic!("unauthenticated WebSocket was tunnelled"),
        Err(e) => panic!("expected an HTTP 401, got {e}"),
    }
}

#[tokio::test]
async fn websocket_refused_by_the_app_gets_403_and_stays_http() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;

    match ws_connect(proxy.addr, "/ws-refused", Some(&session)).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), StatusCode::FORBIDDEN),
        Ok(_) => panic!("a 403 from the app was treated as an upgrade"),
        Err(e) => panic!("expected an HTTP 403, got {e}"),
    }

    // The same connection keeps speaking HTTP after the refused upgrade.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let upgrade = format!(
        "GET /ws-refused HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {session}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut stream).await;
    assert_eq!(status, 403);
    assert_eq!(body, "no websockets here");
    let follow_up = format!(
        "GET /after-refusal HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {session}\r\n\
         Accept: application/json\r\n\r\n"
    );
    stream.write_all(follow_up.as_bytes()).await.unwrap();
    let (status, _, body) = read_response(&mut stream).await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["path"], "/after-refusal");

    // And a new connection works too.
    let fresh = get(&proxy.url("/fresh"), &[("cookie", &session)]).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.json()["path"], "/fresh");
}

// ---------------------------------------------------------- large bodies

#[tokio::test]
async fn large_streamed_upload_arrives_intact() {
    const TOTAL: usize = 20 * 1024 * 1024;
    const CHUNK: usize = 256 * 1024;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let producer = tokio::spawn(async move {
        let mut hasher = Sha256::new();
        let mut sent = 0;
        while sent < TOTAL {
            let chunk: Vec<u8> = (sent..sent + CHUNK)
                .map(|i| (i.wrapping_mul(31) % 253) as u8)
                .collect();
            hasher.update(&chunk);
            sent += chunk.len();
            if tx.send(Ok(Frame::data(Bytes::from(chunk)))).await.is_err() {
                break;
            }
        }
        hex(&hasher.finalize())
    });
    let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let req = Request::post(proxy.url("/upload"))
        .header("cookie", &session)
        .header("content-type", "application/octet-stream")
        .body(body)
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let expected_sha = producer.await.unwrap();
    assert_eq!(echo["path"], "/upload");
    assert_eq!(echo["body_len"], TOTAL);
    assert_eq!(echo["body_sha256"], expected_sha);
}

#[tokio::test]
async fn large_download_arrives_byte_for_byte() {
    const TOTAL: usize = 32 * 1024 * 1024;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;

    let req = Request::get(proxy.url(&format!("/download?bytes={TOTAL}")))
        .header("cookie", &session)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut offset = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("download body is not cut off");
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if let Some(i) = data
            .iter()
            .enumerate()
            .position(|(j, b)| *b != pattern_byte(offset + j))
        {
            panic!("byte {} differs from the upstream's", offset + i);
        }
        offset += data.len();
    }
    assert_eq!(offset, TOTAL);
}

// ------------------------------------------------------ upstream failures

#[tokio::test]
async fn unreachable_upstream_gives_502_without_internal_detail() {
    let dead = closed_port().await;
    let upstream = Upstream { addr: dead };
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;

    let page = get(
        &proxy.url("/dashboard"),
        &[("cookie", &session), ("accept", "text/html")],
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        page.headers
    );
    assert_no_internal_detail(&page.text(), dead);

    let api = get(
        &proxy.url("/api/data"),
        &[("cookie", &session), ("accept", "application/json")],
    )
    .await;
    assert_eq!(api.status, StatusCode::BAD_GATEWAY);
    assert!(api
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(api.json(), serde_json::json!({"error": "bad_gateway"}));
    assert_no_internal_detail(&api.text(), dead);
}

#[tokio::test]
async fn upstream_slower_than_response_header_timeout_gives_504() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder_for_url(&upstream.url())
        .upstream_keys("response_header_timeout = \"1s\"\n")
        .start()
        .await;
    let session = login(&proxy, "demo").await;
    let base = format!("http://{}", proxy.addr);

    let api = get(
        &format!("{base}/slow"),
        &[("cookie", &session), ("accept", "application/json")],
    )
    .await;
    assert_eq!(api.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(api.json(), serde_json::json!({"error": "gateway_timeout"}));

    let page = get(
        &format!("{base}/slow"),
        &[("cookie", &session), ("accept", "text/html")],
    )
    .await;
    assert_eq!(page.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(!page.text().contains("hyper"), "{}", page.text());

    // A fast answer on the same proxy is unaffected.
    let fast = get(&format!("{base}/fast"), &[("cookie", &session)]).await;
    assert_eq!(fast.status, StatusCode::OK);
}

// ---------------------------------------------------------------- shutdown

#[tokio::test]
async fn graceful_shutdown_finishes_the_in_flight_request() {
    let upstream = Upstream::start().await;
    let mut proxy = Proxy::start(&upstream, "").await;
    let session = Arc::new(login(&proxy, "demo").await);

    let url = proxy.url("/slow");
    let in_flight = {
        let session = session.clone();
        tokio::spawn(async move { get(&url, &[("cookie", &session)]).await })
    };
    // Let the request reach the upstream (which holds it for 3 s).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!in_flight.is_finished());

    let run = proxy.begin_shutdown();
    let reply = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("in-flight request completes")
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "slow");

    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run task finishes once drained")
        .unwrap();
    assert!(
        TcpStream::connect(proxy.addr).await.is_err(),
        "a new connection after shutdown is refused"
    );
}

/// WebSockets are exempt from CORS: a foreign page could otherwise open one
/// with the user's cookie (cross-site WebSocket hijacking).
#[tokio::test]
async fn websocket_from_a_foreign_origin_is_refused() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream).server("public_url = \"http://127.0.0.1\"\nwebsocket_origins = [\"https://partner.example\"]\n").start()
    .await;
    let session = login(&proxy, "demo").await;
    let open = |origin: &'static str| {
        let session = session.clone();
        async move {
            let mut request = format!("ws://{}/ws", proxy.addr)
                .into_client_request()
                .unwrap();
            request
                .headers_mut()
                .insert("cookie", session.parse().unwrap());
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
            let stream = TcpStream::connect(proxy.addr).await.unwrap();
            tokio_tungstenite::client_async(request, stream).await
        }
    };
    match open("https://evil.example").await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), StatusCode::FORBIDDEN),
        Ok(_) => panic!("a foreign Origin's WebSocket was tunnelled"),
        Err(e) => panic!("expected an HTTP 403, got {e}"),
    }
    assert!(open("http://127.0.0.1").await.is_ok(), "our own origin");
    assert!(
        open("https://partner.example").await.is_ok(),
        "an origin listed in server.websocket_origins"
    );
}
