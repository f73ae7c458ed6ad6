//! Hostile bytes on the wire (SPEC, security properties): smuggling shapes,
//! slow and oversized headers, garbage and ambiguous paths are refused by
//! portcullis itself and never reach the app. Every test talks raw TCP to the
//! proxy; the app is a recorder that keeps the raw bytes it received.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An app that records every connection's raw bytes and answers each with
/// `200 ok` and `Connection: close` (so each forwarded request arrives on its
/// own connection and is recorded on its own).
struct Recorder {
    addr: SocketAddr,
    connections: Arc<Mutex<usize>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                *count.lock().unwrap() += 1;
                tokio::spawn(record(stream, seen.clone()));
            }
        });
        Recorder {
            addr,
            connections,
            requests,
        }
    }

    /// An [`Upstream`] value pointing at this recorder, for [`Proxy::start`].
    fn upstream(&self) -> Upstream {
        Upstream { addr: self.addr }
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads until the head is complete and the peer has been quiet for 300 ms,
/// records what came, answers.
async fn record(mut stream: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let head_done = data.windows(4).any(|w| w == b"\r\n\r\n");
        let idle = Duration::from_millis(if head_done { 300 } else { 5000 });
        match tokio::time::timeout(idle, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => data.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    if data.is_empty() {
        return;
    }
    seen.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&data).to_string());
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        .await;
}

/// A proxy in front of a fresh recorder, with extra `[server]` keys.
async fn proxy_with(server_keys: &str) -> (Recorder, Proxy) {
    let recorder = Recorder::start().await;
    let keys = format!("public_url = \"http://127.0.0.1\"\n{server_keys}");
    let proxy = Proxy::builder(&recorder.upstream())
        .server(&keys)
        .start()
        .await;
    (recorder, proxy)
}

/// Like `common::raw`, but a write the server refused midway is not a panic
/// (a server may close while a hostile request is still being sent).
async fn raw_lossy(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
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

/// Status codes of every response in a raw reply, in order.
fn statuses(reply: &str) -> Vec<u16> {
    reply
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| raw_status(&reply[i..]))
        .collect()
}

const WAIT: Duration = Duration::from_secs(5);

/// How long a stalled connection may stay open against a 2 s
/// `header_read_timeout` before the test calls it unbounded.
const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn conflicting_content_lengths_are_refused_and_never_forwarded() {
    let (recorder, proxy) = proxy_with("").await;
    let session = login(&proxy, "demo").await;
    let request = format!(
        "POST /x HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\nContent-Length: 4\r\n\
         Content-Length: 40\r\n\r\nbody"
    );
    let reply = raw(proxy.addr, request.as_bytes(), WAIT).await;
    assert_eq!(raw_status(&reply), Some(400), "{reply}");
    assert_eq!(statuses(&reply).len(), 1, "{reply}");
    assert_eq!(recorder.connections(), 0, "{:?}", recorder.requests());
}

#[tokio::test]
async fn bad_transfer_encoding_is_refused_and_never_forwarded() {
    let (recorder, proxy) = proxy_with("").await;
    let session = login(&proxy, "demo").await;
    for te in ["xchunked", "chunked, identity", "identity"] {
        let request = format!(
            "POST /x HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\nTransfer-Encoding: {te}\r\n\r\n\
             4\r\nbody\r\n0\r\n\r\n"
        );
        let reply = raw(proxy.addr, request.as_bytes(), WAIT).await;
        assert_eq!(raw_status(&reply), Some(400), "{te}: {reply}");
    }
    assert_eq!(recorder.connections(), 0, "{:?}", recorder.requests());
}

#[tokio::test]
async fn folded_header_line_is_refused_and_never_forwarded() {
    let (recorder, proxy) = proxy_with("").await;
    for request in [
        "GET /static/x HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n b\r\n\r\n",
        "GET /static/x HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n\tX-Auth-User: 2\r\n\r\n",
    ] {
        let reply = raw(proxy.addr, request.as_bytes(), WAIT).await;
        assert_eq!(raw_status(&reply), Some(400), "{request:?}: {reply}");
    }
    assert_eq!(recorder.connections(), 0, "{:?}", recorder.requests());
}

#[tokio::test]
async fn content_length_with_chunked_is_refused_and_never_forwarded() {
    let (recorder, proxy) = proxy_with("").await;
    let session = login(&proxy, "demo").await;
    let smuggled = "0\r\n\r\nGET /internal/x HTTP/1.1\r\nHost: x\r\n\r\n";
    let heads = [
        format!(
            "POST /x HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\nContent-Length: 4\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        ),
        format!(
            "POST /x HTTP/1.1\r\nHost: x\r\nCookie: {session}\r\nTransfer-Encoding: chunked\r\n\
             Content-Length: 4\r\n\r\n"
        ),
        "GET /static/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
            .to_string(),
    ];
    for head in &heads {
        let reply = raw(proxy.addr, format!("{head}{smuggled}").as_bytes(), WAIT).await;
        assert_eq!(
            statuses(&reply),
            vec![400],
            "refused, and nothing after it: {reply}"
        );
    }
    let requests = recorder.requests();
    assert!(requests.is_empty(), "{requests:#?}");
    for request in &requests {
        let lower = request.to_ascii_lowercase();
        assert!(!lower.contains("/internal"), "smuggled: {request:?}");
        assert!(
            !(lower.contains("\ncontent-length:") && lower.contains("\ntransfer-encoding:")),
            "app saw both framings: {request:?}"
        );
    }
}

#[tokio::test]
async fn trickled_header_is_cut_off_after_header_read_timeout() {
    let (_recorder, proxy) = proxy_with("header_read_timeout = \"2s\"\n").await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).to_string()
    });
    // 20 bytes, one every 1.5 s: 30 s in all, far past the 2 s limit.
    let request = b"GET /static/x HTTP/1.1\r\nHost: x\r\nX-Slow: a\r\n\r\n";
    for byte in &request[..20] {
        if reader.is_finished() || write.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    assert!(
        reader.is_finished(),
        "connection still open after the whole trickle"
    );
    let got = reader.await.unwrap();
    assert!(
        got.is_empty() || raw_status(&got) == Some(408),
        "a trickled request was answered: {got}"
    );
}

/// Connects, sends `first` and nothing more; true once the server closed.
async fn closed_within(addr: SocketAddr, first: &[u8], limit: Duration) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(first).await.unwrap();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_keepalive_timeout() {
    let (_recorder, proxy) = proxy_with("keepalive_timeout = \"2s\"\n").await;
    let first = b"GET /static/x HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(
        closed_within(proxy.addr, first, LIMIT).await,
        "an idle keep-alive connection is still open long past keepalive_timeout"
    );
}

#[tokio::test]

async fn silent_connection_is_closed_after_header_read_timeout() {
    let (_recorder, proxy) = proxy_with("header_read_timeout = \"2s\"\n").await;
    assert!(
        closed_within(proxy.addr, b"", LIMIT).await,
        "a connection that sent nothing is still open long past header_read_timeout"
    );
}

#[tokio::test]

async fn connection_stalled_in_the_http2_preface_is_closed_after_header_read_timeout() {
    let (_recorder, proxy) = proxy_with("header_read_timeout = \"2s\"\n").await;
    assert!(
        closed_within(proxy.addr, b"PRI * HTTP/2.0\r\n", LIMIT).await,
        "a connection stalled in the HTTP/2 preface is still open long past header_read_timeout"
    );
}

#[tokio::test]
async fn headers_over_max_header_bytes_get_431_and_are_never_forwarded() {
    let (recorder, proxy) = proxy_with("max_header_bytes = 8192\n").await;
    let request = format!(
        "GET /static/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let reply = raw_lossy(proxy.addr, request.as_bytes(), WAIT).await;
    assert_eq!(raw_status(&reply), Some(431), "{reply:?}");
    assert_eq!(recorder.connections(), 0, "{:?}", recorder.requests());
}

#[tokio::test]
async fn garbage_gets_400_and_the_proxy_keeps_serving() {
    let (recorder, proxy) = proxy_with("").await;
    for garbage in [
        &b"\x00\x01\x02\xff\xfe garbage\r\n\r\n"[..],
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /static/x HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET /static/x HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /static/x HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET /static/x HTTP/1.1\r\nHost: x\r\nBad\x01Name: 1\r\n\r\n",
    ] {
        let reply = raw(proxy.addr, garbage, WAIT).await;
        assert_eq!(raw_status(&reply), Some(400), "{garbage:?}: {reply:?}");
    }
    assert_eq!(recorder.connections(), 0, "{:?}", recorder.requests());
    let normal = raw(
        proxy.addr,
        b"GET /static/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(raw_status(&normal), Some(200), "{normal:?}");
    assert_eq!(recorder.requests().len(), 1);
}

#[tokio::test]
async fn encoded_slash_or_backslash_path_is_refused() {
    let (recorder, proxy) = proxy_with("").await;
    let session = login(&proxy, "admin").await;
    for path in [
        "/admin%2Fusers",
        "/admin%2fusers",
        "/static%2F..%2Fadmin",
        "/admin%5Cusers",
        "/a\\b",
        "/static\\..\\admin",
    ] {
        for cookie in ["", session.as_str()] {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
            );
            let reply = raw(proxy.addr, request.as_bytes(), WAIT).await;
            assert_eq!(raw_status(&reply), Some(400), "{path}: {reply:?}");
        }
    }
    assert_eq!(recorder.connections(), 0, "{:?}", recorder.requests());
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream)
        .server("public_url = \"http://127.0.0.1\"\nmax_connections = 1\n")
        .start()
        .await;
    let request = b"GET /static/a HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut first = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // The first connection stays open (keep-alive), holding the only slot.
    let mut second = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    second.write_all(request).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "the second connection was served while the first held the slot"
    );

    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf))
        .await
        .expect("served once the slot is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
