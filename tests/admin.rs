//! The admin listener: `/healthz`, `/readyz`, `/metrics`.

mod common;

use common::*;
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
