//! The admin listener: `/healthz`, `/readyz`, `/metrics`.

mod common;

use common::*;
use std::time::Duration;

use http::{Method, StatusCode};

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let admin = |path: &str| format!("http://{}{path}", proxy.admin_addr);
    assert_eq!(get(&admin("/healthz"), &[]).await.status, StatusCode::OK);
    assert_eq!(get(&admin("/readyz"), &[]).await.status, StatusCode::OK);

    let (cookie, token) = login_form(&proxy).await;
    post_login(&proxy, &cookie, &token, "demo", "wrong", "/").await;
    let session = login(&proxy, "demo").await;
    assert_eq!(
        get(&proxy.url("/x"), &[("cookie", &session)]).await.status,
        StatusCode::OK
    );

    let metrics = get(&admin("/metrics"), &[]).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.text();
    assert!(
        text.contains("portcullis_requests_total{class=\"2xx\"}"),
        "{text}"
    );
    assert!(
        text.contains("portcullis_security_events_total{event=\"login_failed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("portcullis_security_events_total{event=\"login_ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("portcullis_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains("demo"), "no user names in metrics");

    let post = send(Method::POST, &admin("/metrics"), &[], "").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        get(&admin("/nope"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

/// The value of `portcullis_connections_open` on the admin listener.
async fn open_connections(proxy: &Proxy) -> Option<u64> {
    let text = get(&format!("http://{}/metrics", proxy.admin_addr), &[])
        .await
        .text();
    text.lines()
        .find_map(|line| line.strip_prefix("portcullis_connections_open "))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn open_connections_are_counted_for_their_whole_life_parked_or_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let request = format!("GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {session}\r\n\r\n");
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    // The helpers' own connections close; the three stay, and park after
    // 20 ms without a request.
    let three = eventually(Duration::from_secs(5), || async {
        open_connections(&proxy).await == Some(3)
    })
    .await;
    assert!(three, "{:?}", open_connections(&proxy).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        open_connections(&proxy).await,
        Some(3),
        "parked ones still count"
    );

    // A parked connection still serves, and is counted once.
    let mut stream = held.pop().unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert_eq!(open_connections(&proxy).await, Some(3));

    drop(stream);
    drop(held);
    let none = eventually(Duration::from_secs(5), || async {
        open_connections(&proxy).await == Some(0)
    })
    .await;
    assert!(none, "{:?}", open_connections(&proxy).await);
}
