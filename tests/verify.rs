//! Forward-auth mode (`GET /auth/verify`) for nginx `auth_request`, Traefik
//! ForwardAuth and Caddy `forward_auth`.

mod common;

use common::*;
use http::{Method, StatusCode};

const TRUSTED: &str = "public_url = \"http://127.0.0.1\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";

async fn verify(proxy: &Proxy, headers: &[(&str, &str)]) -> Reply {
    get(&proxy.url("/auth/verify"), headers).await
}

#[tokio::test]
async fn trusted_proxy_gets_the_route_decision_and_identity() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream).server(TRUSTED).start().await;
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
        &[("x-forwarded-uri", "/internal/x"), ("cookie", &admin)],
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

#[tokio::test]
async fn untrusted_caller_headers_are_not_even_checked() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let demo = login(&proxy, "demo").await;
    // Duplicates, a bad method and a public-looking URI from a caller not in
    // trusted_proxies: none of it is read, the answer is that of GET /.
    let ignored = verify(
        &proxy,
        &[
            ("x-forwarded-uri", "/static/app.css"),
            ("x-forwarded-uri", "/internal/x"),
            ("x-forwarded-method", "G(ET"),
            ("x-original-uri", "/static/app.css"),
        ],
    )
    .await;
    assert_eq!(
        ignored.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        ignored.text()
    );
    let signed_in = verify(
        &proxy,
        &[
            ("x-forwarded-uri", "/internal/x"),
            ("x-forwarded-uri", "/admin/users"),
            ("cookie", &demo),
        ],
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::OK, "judged as GET /");
    assert_eq!(signed_in.header("x-auth-user"), Some("1"));
}

/// Regression: a client behind nginx's auth_request added a second
/// X-Forwarded-Uri of its own; /auth/verify read whichever came first.
#[tokio::test]
async fn duplicated_uri_or_method_header_is_refused() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream).server(TRUSTED).start().await;
    let demo = login(&proxy, "demo").await;
    for forged_first in [true, false] {
        let (first, second) = if forged_first {
            ("/static/a.css", "/admin/users")
        } else {
            ("/admin/users", "/static/a.css")
        };
        let reply = verify(
            &proxy,
            &[
                ("x-forwarded-uri", first),
                ("x-forwarded-uri", second),
                ("cookie", &demo),
            ],
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{first} then {second}"
        );
        assert!(reply.header("x-auth-user").is_none());
    }
    let two_methods = verify(
        &proxy,
        &[
            ("x-forwarded-uri", "/static/a.css"),
            ("x-forwarded-method", "POST"),
            ("x-forwarded-method", "GET"),
        ],
    )
    .await;
    assert_eq!(two_methods.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn trusted_caller_without_the_uri_header_gets_400() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream).server(TRUSTED).start().await;
    let demo = login(&proxy, "demo").await;
    let reply = verify(&proxy, &[("x-forwarded-method", "GET"), ("cookie", &demo)]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.header("x-auth-user").is_none());
    let bare = verify(&proxy, &[("cookie", &demo)]).await;
    assert_eq!(
        bare.status,
        StatusCode::BAD_REQUEST,
        "never judged as GET / when the proxy forgot the header"
    );
}

/// Regression: nginx snippets that set only X-Original-URI let a client's
/// own X-Forwarded-Uri decide, because that name was read first.
#[tokio::test]
async fn x_original_uri_is_ignored_by_default() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream).server(TRUSTED).start().await;
    let demo = login(&proxy, "demo").await;
    let only_original = verify(
        &proxy,
        &[("x-original-uri", "/static/app.css"), ("cookie", &demo)],
    )
    .await;
    assert_eq!(only_original.status, StatusCode::BAD_REQUEST);
    let both = verify(
        &proxy,
        &[
            ("x-original-uri", "/static/app.css"),
            ("x-forwarded-uri", "/admin/users"),
            ("cookie", &demo),
        ],
    )
    .await;
    assert_eq!(
        both.status,
        StatusCode::FORBIDDEN,
        "only X-Forwarded-Uri counts"
    );
}

#[tokio::test]
async fn configured_header_names_are_the_only_ones_read() {
    let upstream = Upstream::start().await;
    let extra =
        "[forward_auth]\nuri_header = \"X-Original-URI\"\nmethod_header = \"X-Original-Method\"\n";
    let proxy = Proxy::builder(&upstream)
        .server(TRUSTED)
        .extra(extra)
        .start()
        .await;
    let demo = login(&proxy, "demo").await;
    let admin_page = verify(
        &proxy,
        &[
            ("x-original-uri", "/admin/users"),
            ("x-forwarded-uri", "/static/app.css"),
            ("cookie", &demo),
        ],
    )
    .await;
    assert_eq!(admin_page.status, StatusCode::FORBIDDEN);
    let public = verify(&proxy, &[("x-original-uri", "/static/app.css")]).await;
    assert_eq!(public.status, StatusCode::OK);
    let post = verify(
        &proxy,
        &[
            ("x-original-uri", "/static/app.css"),
            ("x-original-method", "POST"),
            ("x-forwarded-method", "GET"),
        ],
    )
    .await;
    assert_eq!(
        post.status,
        StatusCode::UNAUTHORIZED,
        "the method comes from X-Original-Method"
    );
    let default_name = verify(&proxy, &[("x-forwarded-uri", "/static/app.css")]).await;
    assert_eq!(
        default_name.status,
        StatusCode::BAD_REQUEST,
        "X-Forwarded-Uri is not configured"
    );
}

/// Regression: a rule listing only GET let HEAD fall through to the rules
/// below it.
#[tokio::test]
async fn a_get_rule_also_judges_head() {
    let upstream = Upstream::start().await;
    let extra = "[[route]]\npath = \"/reports/**\"\nmethods = [\"GET\"]\nroles = [\"admin\"]\n";
    let proxy = Proxy::builder(&upstream)
        .server(TRUSTED)
        .extra(extra)
        .start()
        .await;
    let demo = login(&proxy, "demo").await;
    let admin = login(&proxy, "admin").await;
    let head = verify(
        &proxy,
        &[
            ("x-forwarded-uri", "/reports/q1"),
            ("x-forwarded-method", "HEAD"),
            ("cookie", &demo),
        ],
    )
    .await;
    assert_eq!(head.status, StatusCode::FORBIDDEN);
    let proxied = send(
        Method::HEAD,
        &proxy.url("/reports/q1"),
        &[("cookie", &demo)],
        "",
    )
    .await;
    assert_eq!(proxied.status, StatusCode::FORBIDDEN);
    let allowed = send(
        Method::HEAD,
        &proxy.url("/reports/q1"),
        &[("cookie", &admin)],
        "",
    )
    .await;
    assert_eq!(allowed.status, StatusCode::OK);
}

/// Regression: the proxy refused a WebSocket handshake from a foreign
/// page's Origin, but forward-auth said 200 to the same handshake.
#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused_in_forward_auth_too() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream).server(TRUSTED).start().await;
    let session = login(&proxy, "demo").await;
    let ask = |origin: &'static str| {
        let session = session.clone();
        let url = proxy.url("/auth/verify");
        async move {
            get(
                &url,
                &[
                    ("cookie", session.as_str()),
                    ("x-forwarded-uri", "/chat/ws"),
                    ("upgrade", "websocket"),
                    ("origin", origin),
                ],
            )
            .await
            .status
        }
    };
    assert_eq!(ask("https://evil.example").await, StatusCode::FORBIDDEN);
    assert_eq!(ask("http://127.0.0.1").await, StatusCode::OK);
}
