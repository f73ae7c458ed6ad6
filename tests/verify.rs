//! Forward-auth mode (`GET /auth/verify`) for nginx `auth_request`, Traefik
//! ForwardAuth and Caddy `forward_auth`.

mod common;

use common::*;
use http::StatusCode;

const TRUSTED: &str = "public_url = \"http://127.0.0.1\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";

async fn verify(proxy: &Proxy, headers: &[(&str, &str)]) -> Reply {
    get(&proxy.url("/auth/verify"), headers).await
}

#[tokio::test]
async fn trusted_proxy_gets_the_route_decision_and_identity() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start_with(&upstream, TRUSTED, "").await;
    let demo = login(&proxy, "demo").await;
    let admin = login(&proxy, "admin").await;

    let ok = verify(
        &proxy,
        &[("x-forwarded-uri", "/chat/?x=1"), ("cookie", &demo)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("x-auth-user"), Some("1"));
    assert_eq!(ok.header("x-auth-email"), Some("demo@example.com"));
    assert_eq!(ok.header("x-auth-roles"), Some("patient"));

    let anonymous = verify(&proxy, &[("x-forwarded-uri", "/chat/")]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.header("x-auth-user").is_none());

    let public = verify(&proxy, &[("x-forwarded-uri", "/static/app.css")]).await;
    assert_eq!(public.status, StatusCode::OK);
    assert!(public.header("x-auth-user").is_none());

    let post_to_static = verify(
        &proxy,
        &[
            ("x-forwarded-uri", "/static/app.css"),
            ("x-forwarded-method", "POST"),
        ],
    )
    .await;
    assert_eq!(
        post_to_static.status,
        StatusCode::UNAUTHORIZED,
        "the rule is GET/HEAD only"
    );

    let denied = verify(
        &proxy,
        &[("x-original-uri", "/internal/x"), ("cookie", &admin)],
    )
    .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let not_admin = verify(
        &proxy,
        &[("x-forwarded-uri", "/admin/users"), ("cookie", &demo)],
    )
    .await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    let is_admin = verify(
        &proxy,
        &[("x-forwarded-uri", "/admin/users"), ("cookie", &admin)],
    )
    .await;
    assert_eq!(is_admin.status, StatusCode::OK);
    assert_eq!(is_admin.header("x-auth-user"), Some("2"));

    let sneaky = verify(
        &proxy,
        &[
            ("x-forwarded-uri", "/static/../internal/x"),
            ("cookie", &demo),
        ],
    )
    .await;
    assert_eq!(
        sneaky.status,
        StatusCode::FORBIDDEN,
        "the URI is normalized first"
    );
    let refused = verify(
        &proxy,
        &[("x-forwarded-uri", "/admin%2Fusers"), ("cookie", &admin)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn untrusted_caller_cannot_choose_the_uri() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let claimed_public = verify(&proxy, &[("x-forwarded-uri", "/static/app.css")]).await;
    assert_eq!(
        claimed_public.status,
        StatusCode::UNAUTHORIZED,
        "judged as GET / instead"
    );
    let demo = login(&proxy, "demo").await;
    let ok = verify(
        &proxy,
        &[("x-forwarded-uri", "/internal/x"), ("cookie", &demo)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "judged as GET /");
}
