//! SPEC, security: "Nothing a client controls holds a resource for ever".
//! Each test sets a small limit in the TOML, stalls the way a hostile or
//! broken client would, and checks that the resource comes back: the
//! connection is closed, the upstream request aborted, the slot reused.
//! Deadlines below are upper bounds many times the configured limit, never
//! measurements.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use portcullis::web::response::full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Upper bound for "closed / answered after a 1 s limit".
const DEADLINE: Duration = Duration::from_secs(20);

// ----------------------------------------------------------------- helpers

/// Reads until the peer closes; `None` if it is still open at `limit`.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(String::from_utf8_lossy(&got).to_string())
}

/// Reads one response head and its `Content-Length` body from a
/// connection that stays open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// A proxy with `server_keys` in `[server]` in front of `upstream`.
async fn proxy(upstream: &Upstream, server_keys: &str, extra: &str) -> Proxy {
    let keys = format!("public_url = \"http://127.0.0.1\"\n{server_keys}");
    Proxy::builder(upstream)
        .server(&keys)
        .extra(extra)
        .start()
        .await
}

/// An app that reports how each request body ended (`"complete"` or
/// `"aborted"`), and answers `/hold` only once released.
struct Gate {
    addr: SocketAddr,
    bodies: mpsc::UnboundedReceiver<&'static str>,
    release: Arc<Notify>,
}

impl Gate {
    async fn start() -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, bodies) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let released = release.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (tx, released) = (tx.clone(), released.clone());
                let service = service_fn(move |req: Request<Incoming>| {
                    let (tx, released) = (tx.clone(), released.clone());
                    async move {
                        if req.uri().path() == "/hold" {
                            released.notified().await;
                            return Ok::<_, Infallible>(Response::new(full("released")));
                        }
                        let mut body = req.into_body();
                        let mut outcome = "complete";
                        while let Some(frame) = body.frame().await {
                            if frame.is_err() {
                                outcome = "aborted";
                                break;
                            }
                        }
                        let _ = tx.send(outcome);
                        Ok(Response::new(full(outcome)))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Gate {
            addr,
            bodies,
            release,
        }
    }

    fn upstream(&self) -> Upstream {
        Upstream { addr: self.addr }
    }
}

/// The head of a form POST to the login endpoint announcing 100 bytes.
const LOGIN_HEAD: &[u8] = b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
    Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=";

// ------------------------------------------------------------ request bodies

#[tokio::test]
async fn stalled_login_body_gets_408_and_its_connection_slot_is_reused() {
    let upstream = Upstream::start().await;
    let proxy = proxy(
        &upstream,
        "max_connections = 2\nbody_read_timeout = \"1s\"\n",
        "",
    )
    .await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(LOGIN_HEAD).await.unwrap();
        stalled.push(stream);
    }
    // Both slots are taken; this client waits in the backlog.
    let mut next = TcpStream::connect(proxy.addr).await.unwrap();
    next.write_all(b"GET /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();

    for stream in &mut stalled {
        let reply = read_to_close(stream, DEADLINE)
            .await
            .expect("a stalled login body is cut off");
        assert_eq!(raw_status(&reply), Some(408), "{reply}");
        assert!(reply.contains("request_timeout"), "{reply}");
    }
    let reply = read_response(&mut next).await;
    assert_eq!(raw_status(&reply), Some(200), "{reply}");
}

#[tokio::test]
async fn stalled_proxied_upload_is_aborted_upstream_and_answered_408() {
    let mut gate = Gate::start().await;
    let proxy = proxy(&gate.upstream(), "body_read_timeout = \"1s\"\n", "").await;
    let session = login(&proxy, "demo").await;

    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {session}\r\n\
         Content-Length: 1000\r\n\r\nfirst bytes"
    );
    stream.write_all(head.as_bytes()).await.unwrap();

    let outcome = tokio::time::timeout(DEADLINE, gate.bodies.recv())
        .await
        .expect("the upstream request ends")
        .unwrap();
    assert_eq!(outcome, "aborted");
    let reply = read_to_close(&mut stream, DEADLINE)
        .await
        .expect("the client connection is not held");
    assert_eq!(raw_status(&reply), Some(408), "{reply}");
}

// ---------------------------------------------------------------- keep-alive

#[tokio::test]
async fn idle_http1_connection_is_closed_after_keepalive_timeout() {
    let upstream = Upstream::start().await;
    // A long header_read_timeout: only keepalive_timeout can close it.
    let proxy = proxy(
        &upstream,
        "keepalive_timeout = \"1s\"\nheader_read_timeout = \"10m\"\n",
        "",
    )
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /static/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut stream).await), Some(200));
    assert!(
        read_to_close(&mut stream, DEADLINE).await.is_some(),
        "an idle keep-alive connection is still open"
    );
}

#[tokio::test]
async fn trickled_second_request_head_is_cut_after_header_read_timeout() {
    let upstream = Upstream::start().await;
    // A long keepalive_timeout: only header_read_timeout can close it.
    let proxy = proxy(
        &upstream,
        "keepalive_timeout = \"10m\"\nheader_read_timeout = \"1s\"\n",
        "",
    )
    .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /static/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut stream).await), Some(200));
    stream
        .write_all(b"GET /static/b HTTP/1.1\r\nHost: 1")
        .await
        .unwrap();
    let reply = read_to_close(&mut stream, DEADLINE)
        .await
        .expect("a stalled second head is cut off");
    assert!(
        reply.is_empty() || raw_status(&reply) == Some(408),
        "{reply}"
    );
}

// ------------------------------------------------------ parked connections
//
// An HTTP/1 connection idle for 20 ms is parked: hyper's state is freed
// and the next request starts a fresh round on the same socket. Nothing a
// client sent may be lost or misread across that boundary.

/// Several times the idle time after which a connection is parked.
const PAST_PARKING: Duration = Duration::from_millis(500);

fn head(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

fn answered_path(response: &str) -> String {
    let body = &response[response.find("\r\n\r\n").expect("a head") + 4..];
    let json: serde_json::Value = serde_json::from_str(body).expect("the upstream's JSON");
    json["path"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_requests() {
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "", "").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    for path in ["/static/a", "/static/b", "/static/c"] {
        stream.write_all(head(path).as_bytes()).await.unwrap();
        let response = read_response(&mut stream).await;
        assert_eq!(raw_status(&response), Some(200), "{response}");
        assert_eq!(answered_path(&response), path);
        tokio::time::sleep(PAST_PARKING).await;
    }
}

#[tokio::test]
async fn a_partial_pipelined_head_survives_parking() {
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "", "").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    // The start of the second head arrives with the first request, so
    // hyper holds it when the connection parks.
    let first = format!("{}GET /static/second HTTP/1.1\r\nHo", head("/static/first"));
    stream.write_all(first.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(answered_path(&response), "/static/first");
    tokio::time::sleep(PAST_PARKING).await;
    stream.write_all(b"st: 127.0.0.1\r\n\r\n").await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(raw_status(&response), Some(200), "{response}");
    assert_eq!(answered_path(&response), "/static/second");
}

#[tokio::test]
async fn a_request_body_that_pauses_is_not_cut_by_parking() {
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "", "").await;
    let session = login(&proxy, "demo").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {session}\r\nContent-Length: 10\r\n\r\n01234"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(PAST_PARKING).await;
    stream.write_all(b"56789").await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(raw_status(&response), Some(200), "{response}");
    assert!(response.contains("\"body_len\":10"), "{response}");
}

#[tokio::test]
async fn the_rest_of_an_unread_body_is_never_taken_for_a_request() {
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "", "").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    // Answered 401 before its body is read; the body then stalls past the
    // time a connection parks, and its rest looks like a request.
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 60\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(raw_status(&response), Some(401), "{response}");
    tokio::time::sleep(PAST_PARKING).await;
    let smuggled = format!("{:<50}", "GET /static/smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
    let _ = stream.write_all(smuggled.as_bytes()).await;
    let rest = read_to_close(&mut stream, DEADLINE)
        .await
        .unwrap_or_default();
    assert!(!rest.contains("HTTP/1.1"), "a second answer: {rest}");
}

/// An app that answers every request at once, without reading its body,
/// and then never reads from the connection again.
async fn answers_before_the_body() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
            held.push(stream);
        }
    });
    Upstream { addr }
}

/// Everything a connection sends within `period`.
async fn read_for(stream: &mut TcpStream, period: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(period, async {
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&got).to_string()
}

#[tokio::test]
async fn a_body_still_arriving_after_the_answer_is_never_taken_for_a_request() {
    let upstream = answers_before_the_body().await;
    let proxy = proxy(&upstream, "", "").await;
    let session = login(&proxy, "demo").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {session}\r\nContent-Length: 60\r\n\r\n0123456789"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(raw_status(&response), Some(200), "{response}");
    // The body stalls past the time an idle connection parks; its rest
    // looks like a request of its own.
    tokio::time::sleep(PAST_PARKING).await;
    let smuggled = format!("{:<50}", "GET /static/smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
    let _ = stream.write_all(smuggled.as_bytes()).await;
    let rest = read_for(&mut stream, Duration::from_secs(2)).await;
    assert!(!rest.contains("HTTP/1.1"), "a second answer: {rest}");
}

#[tokio::test]
async fn ambiguous_framing_after_parking_is_refused() {
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "", "").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(head("/static/a").as_bytes())
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut stream).await), Some(200));
    tokio::time::sleep(PAST_PARKING).await;
    stream
        .write_all(b"POST /static/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut stream, DEADLINE)
        .await
        .expect("closed after the refusal");
    assert_eq!(raw_status(&reply), Some(400), "{reply}");
}

#[tokio::test]
async fn a_parked_connection_upgrades_to_a_websocket() {
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "", "").await;
    let session = login(&proxy, "demo").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(head("/static/a").as_bytes())
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut stream).await), Some(200));
    tokio::time::sleep(PAST_PARKING).await;
    let mut request = format!("ws://{}/ws", proxy.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", session.parse().unwrap());
    headers.insert("origin", "http://127.0.0.1".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    let echoed = tokio::time::timeout(DEADLINE, ws.next()).await.unwrap();
    assert_eq!(echoed.unwrap().unwrap(), Message::Text("hello".into()));
}

#[tokio::test]
async fn request_in_flight_outlives_keepalive_timeout() {
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "keepalive_timeout = \"1s\"\n", "").await;
    let session = login(&proxy, "demo").await;
    // The app takes 3 s; the connection has no idle moment meanwhile.
    let reply = get(&proxy.url("/slow"), &[("cookie", &session)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "slow");
}

/// An HTTP/2 (prior knowledge) connection to the proxy that PINGs every
/// 100 ms; the receiver yields once the connection has ended.
async fn h2_connect(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = connection.await;
        let _ = ended_tx.send(());
    });
    (sender, ended)
}

#[tokio::test]
async fn idle_http2_connection_is_closed_after_keepalive_timeout_despite_pings() {
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "keepalive_timeout = \"1s\"\n", "").await;
    let session = login(&proxy, "demo").await;
    let (mut sender, ended) = h2_connect(proxy.addr).await;

    // A 3 s stream in flight is not cut by the 1 s idle limit ...
    let request = Request::builder()
        .uri(format!("http://127.0.0.1:{}/slow", proxy.addr.port()))
        .header("cookie", &session)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"slow");

    // ... but afterwards the connection, PINGed all along, is closed.
    tokio::time::timeout(DEADLINE, ended)
        .await
        .expect("an idle HTTP/2 connection is still open")
        .unwrap();
}

// -------------------------------------------------------------- HTTP/2 streams

/// One HTTP/2 frame: `(type, flags, stream id, payload)`.
async fn read_frame(stream: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.unwrap();
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    (head[3], head[4], id, payload)
}

fn frame(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn http2_max_streams_is_advertised_and_enforced() {
    const SETTINGS: u8 = 0x4;
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const END_HEADERS: u8 = 0x4;
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "h2_max_streams = 2\n", "").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();

    let advertised = tokio::time::timeout(DEADLINE, async {
        loop {
            let (kind, flags, _, payload) = read_frame(&mut stream).await;
            if kind == SETTINGS && flags & 1 == 0 {
                return payload
                    .chunks(6)
                    .find(|p| p[..2] == [0, 3])
                    .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(advertised, Some(2), "SETTINGS_MAX_CONCURRENT_STREAMS");
    stream.write_all(&frame(SETTINGS, 1, 0, &[])).await.unwrap();

    // Three login POSTs whose bodies never come: each stream stays open.
    let mut block = vec![0x83, 0x86, 0x04, 11];
    block.extend_from_slice(b"/auth/login");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"127.0.0.1");
    for id in [1, 3, 5] {
        stream
            .write_all(&frame(HEADERS, END_HEADERS, id, &block))
            .await
            .unwrap();
    }
    let refused = tokio::time::timeout(DEADLINE, async {
        loop {
            let (kind, _, id, payload) = read_frame(&mut stream).await;
            if kind == RST_STREAM {
                return (id, u32::from_be_bytes(payload[..4].try_into().unwrap()));
            }
        }
    })
    .await
    .expect("the stream over the limit is reset");
    assert_eq!(refused, (5, 0x7), "stream 5 refused with REFUSED_STREAM");
}

// ---------------------------------------------------------------- connection cap

#[tokio::test]
async fn stalled_clients_at_max_connections_give_way_once_they_time_out() {
    let upstream = Upstream::start().await;
    let proxy = proxy(
        &upstream,
        "max_connections = 3\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\n\
         keepalive_timeout = \"1s\"\n",
        "",
    )
    .await;
    // One stalls in its head, one in its body, one idles after a request.
    let mut head = TcpStream::connect(proxy.addr).await.unwrap();
    head.write_all(b"GET /static/a HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let mut body = TcpStream::connect(proxy.addr).await.unwrap();
    body.write_all(LOGIN_HEAD).await.unwrap();
    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    idle.write_all(b"GET /static/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut idle).await), Some(200));

    let mut next = TcpStream::connect(proxy.addr).await.unwrap();
    next.write_all(b"GET /static/b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut next).await), Some(200));
    for (what, stream) in [
        ("head", &mut head),
        ("body", &mut body),
        ("idle", &mut idle),
    ] {
        assert!(
            read_to_close(stream, DEADLINE).await.is_some(),
            "the {what} stall is still open"
        );
    }
}

// --------------------------------------------------------------- upstream limits

#[tokio::test]
async fn upstream_max_connections_full_gives_503_after_connect_timeout() {
    let gate = Gate::start().await;
    let proxy = Proxy::builder_for_url(&format!("http://{}", gate.addr))
        .upstream_keys("max_connections = 1\nconnect_timeout = \"1s\"\n")
        .start()
        .await;
    let session = login(&proxy, "demo").await;
    let held = tokio::spawn({
        let (url, session) = (proxy.url("/hold"), session.clone());
        async move { get(&url, &[("cookie", &session)]).await }
    });
    // The first request holds the only upstream connection until released.
    let busy = tokio::time::timeout(DEADLINE, async {
        loop {
            let reply = get(&proxy.url("/second"), &[("cookie", &session)]).await;
            if reply.status == StatusCode::SERVICE_UNAVAILABLE {
                return reply;
            }
            // Sent before /hold took the connection: try again.
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        }
    })
    .await
    .expect("a request waited for an upstream connection without end");
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(
        busy.json(),
        serde_json::json!({"error": "service_unavailable"})
    );
    assert!(!busy.text().contains("max_connections"), "{}", busy.text());

    gate.release.notify_one();
    let held = tokio::time::timeout(DEADLINE, held).await.unwrap().unwrap();
    assert_eq!(held.status, StatusCode::OK);
    assert_eq!(
        get(&proxy.url("/third"), &[("cookie", &session)])
            .await
            .status,
        StatusCode::OK,
        "the connection is given back"
    );
}

/// Each worker thread pools its own upstream connections under one shared
/// `upstream.max_connections`: an idle connection kept by one worker must
/// not leave the others waiting (every request here opens a new client
/// connection, which the kernel hands to any worker).
#[tokio::test]
async fn an_idle_pooled_upstream_connection_is_given_back_to_other_workers() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder_for_url(&upstream.url())
        .upstream_keys("max_connections = 1\nconnect_timeout = \"5s\"\n")
        .start()
        .await;
    let session = login(&proxy, "demo").await;
    for round in 0..12 {
        let reply = get(
            &proxy.url(&format!("/round/{round}")),
            &[("cookie", &session)],
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "round {round}: {}",
            reply.text()
        );
    }
}

#[tokio::test]
async fn websocket_tunnel_is_closed_after_tunnel_idle_timeout() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder_for_url(&upstream.url())
        .upstream_keys("tunnel_idle_timeout = \"1s\"\n")
        .start()
        .await;
    let session = login(&proxy, "demo").await;
    let mut request = format!("ws://{}/ws", proxy.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", session.parse().unwrap());
    headers.insert("origin", "http://127.0.0.1".parse().unwrap());
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    let echoed = tokio::time::timeout(DEADLINE, ws.next()).await.unwrap();
    assert_eq!(echoed.unwrap().unwrap(), Message::Text("hello".into()));

    // Then silence both ways: the tunnel ends (an error or the end of
    // the stream, never another message).
    let after = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .expect("an idle tunnel is still open");
    assert!(
        !matches!(after, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{after:?}"
    );
}

// ---------------------------------------------------------------- hashing pool

#[tokio::test]
async fn login_waiting_longer_than_hash_wait_gets_503_with_retry_after() {
    let upstream = Upstream::start().await;
    // Unknown names are checked against a cost-12 dummy: slow enough that
    // logins sent together overlap on the one hashing thread.
    let proxy = Proxy::start(
        &upstream,
        "[login]\nhash_workers = 1\nhash_wait = \"1ms\"\nip_rate = \"100000/min\"\n",
    )
    .await;
    let attempt = |i: usize| {
        let url = proxy.url("/auth/login");
        async move {
            let body = serde_json::json!({"username": format!("nobody{i}"), "password": "x"});
            send(
                Method::POST,
                &url,
                &[("content-type", "application/json")],
                body.to_string(),
            )
            .await
        }
    };
    let mut busy = None;
    for round in 0..20 {
        let replies = futures_util::future::join_all((0..4).map(|i| attempt(round * 4 + i))).await;
        for reply in replies {
            match reply.status {
                StatusCode::SERVICE_UNAVAILABLE => busy = Some(reply),
                StatusCode::UNAUTHORIZED => {}
                other => panic!("unexpected {other}: {}", reply.text()),
            }
        }
        if busy.is_some() {
            break;
        }
    }
    let busy = busy.expect("no login was refused for want of a hashing slot");
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(
        busy.json(),
        serde_json::json!({"error": "service_unavailable"})
    );
}

// --------------------------------------------------------------- side listeners

#[tokio::test]
async fn admin_listener_cuts_off_a_silent_socket_and_an_idle_one() {
    let upstream = Upstream::start().await;
    let proxy = proxy(
        &upstream,
        "header_read_timeout = \"1s\"\nkeepalive_timeout = \"1s\"\n",
        "",
    )
    .await;
    // The admin listener used a fixed 10 s before: 6 s tells them apart.
    let limit = Duration::from_secs(6);
    let mut silent = TcpStream::connect(proxy.admin_addr).await.unwrap();
    assert!(
        read_to_close(&mut silent, limit).await.is_some(),
        "a silent admin connection is still open"
    );
    let mut idle = TcpStream::connect(proxy.admin_addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw_status(&read_response(&mut idle).await), Some(200));
    assert!(
        read_to_close(&mut idle, limit).await.is_some(),
        "an idle admin connection is still open"
    );
}

// --------------------------------------------------------------------- bcrypt

#[tokio::test]
async fn bcrypt_password_of_exactly_72_bytes_signs_in() {
    let upstream = Upstream::start().await;
    let password = "Seventy-two bytes exactly, as every bcrypt reads them: ".to_string();
    let password = format!("{password}{}", "z".repeat(72 - password.len()));
    assert_eq!(password.len(), 72);
    let hash = bcrypt::hash(&password, 4).unwrap();
    let users = format!(
        "[[user]]\nid = \"9\"\nusername = \"long\"\nemail = \"long@example.com\"\n\
         password_hash = \"{hash}\"\nroles = []\n"
    );
    let proxy = Proxy::builder(&upstream).users(&users).start().await;
    let (cookie, token) = login_form(&proxy).await;
    let reply = post_login(&proxy, &cookie, &token, "long", &password, "/").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());

    let (cookie, token) = login_form(&proxy).await;
    let longer = format!("{password}!");
    let reply = post_login(&proxy, &cookie, &token, "long", &longer, "/").await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "73 bytes never sign in"
    );
}

/// Regression: the stall timer restarted on every byte, so a login body
/// trickled a byte at a time held its connection slot for days.
#[tokio::test]
async fn trickled_login_body_gets_408_within_body_read_timeout() {
    let upstream = Upstream::start().await;
    let proxy = proxy(&upstream, "body_read_timeout = \"1s\"\n", "").await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream.write_all(LOGIN_HEAD).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = read.read_to_end(&mut got).await;
        String::from_utf8_lossy(&got).to_string()
    });
    // 90 bytes, one every 200 ms: 18 s in all, far past the 1 s limit.
    for _ in 0..90 {
        if reader.is_finished() || write.write_all(b"x").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reader.is_finished(), "still reading the trickled body");
    let reply = reader.await.unwrap();
    assert_eq!(raw_status(&reply), Some(408), "{reply}");
}

/// Regression: a client that asked for a large response and never read it
/// held its connection (and an upstream one) for ever.
#[tokio::test]
async fn client_that_never_reads_its_response_loses_the_connection() {
    let upstream = Upstream::start().await;
    let proxy = proxy(
        &upstream,
        "body_read_timeout = \"1s\"\nmax_connections = 1\n",
        "[[route]]\npath = \"/download\"\naccess = \"public\"\n",
    )
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(proxy.addr).await.unwrap();
    stalled
        .write_all(b"GET /download?bytes=67108864 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // It never reads; the next client gets the only slot once it is dropped.
    let mut next = TcpStream::connect(proxy.addr).await.unwrap();
    next.write_all(b"GET /static/b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let reply = tokio::time::timeout(DEADLINE, read_response(&mut next))
        .await
        .expect("the stalled reader still holds the only connection slot");
    assert_eq!(raw_status(&reply), Some(200));
    drop(stalled);
}
