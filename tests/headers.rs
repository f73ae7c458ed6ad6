//! Header surgery seen from the app: a client can never hand the app an
//! identity, a client address, a scheme or a request id of its choosing, in
//! any spelling a Python server would read, and hop-by-hop headers stop at
//! portcullis. Spellings a well-behaved client would normalize go over raw
//! TCP.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The identity headers portcullis sets, in their canonical spelling.
const IDENTITY: [&str; 5] = [
    "X-Auth-User",
    "X-Auth-Email",
    "X-Auth-Roles",
    "X-Auth-Session",
    "X-Auth-Assertion",
];

/// Every spelling of `canonical` a Python server may read as it: as sent,
/// lowercase, `_` for `-` (title and lower case), uppercase, and mixed.
fn spellings(canonical: &str) -> Vec<String> {
    let lower = canonical.to_ascii_lowercase();
    let (head, tail) = lower.rsplit_once('-').unwrap();
    vec![
        canonical.to_string(),
        lower.clone(),
        canonical.replace('-', "_"),
        lower.replace('-', "_"),
        canonical.to_ascii_uppercase(),
        format!("{head}_{tail}"),
    ]
}

/// Lowercase with `_` read as `-`, as WSGI and FastAPI fold names.
fn python_name(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Values of every header the app received whose Python spelling is `name`'s.
fn folded(headers: &[(String, String)], name: &str) -> Vec<String> {
    let want = python_name(name);
    headers
        .iter()
        .filter(|(k, _)| python_name(k) == want)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A response read off a raw socket.
struct RawReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawReply {
    fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn upstream_headers(&self) -> Vec<(String, String)> {
        echoed_headers(&self.body)
    }
}

/// The headers the echo upstream received (names as it saw them), read from
/// its JSON body.
fn echoed_headers(body: &str) -> Vec<(String, String)> {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    json["headers"]
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

/// Sends `GET path` with `lines` (each `Name: value`, CRLF added) verbatim on
/// a fresh connection and parses the one response.
async fn raw_get(addr: SocketAddr, path: &str, lines: &[String]) -> RawReply {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for line in lines {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let reply = raw(addr, request.as_bytes(), Duration::from_secs(10)).await;
    parse_reply(&reply)
}

fn parse_reply(reply: &str) -> RawReply {
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {reply:?}"));
    let status = raw_status(head).unwrap_or_else(|| panic!("no status line: {head:?}"));
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    RawReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

fn is_request_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The spoofed lines for one spelling: the header twice, with forged values.
fn spoofed_twice(name: &str) -> Vec<String> {
    vec![format!("{name}: 999"), format!("{name}: admin")]
}

/// Asserts the app saw exactly demo's identity, once each, and no assertion.
fn assert_demo_identity(headers: &[(String, String)], case: &str) {
    assert_eq!(folded(headers, "x-auth-user"), vec!["1"], "{case}");
    assert_eq!(
        folded(headers, "x-auth-email"),
        vec!["demo@example.com"],
        "{case}"
    );
    assert_eq!(folded(headers, "x-auth-roles"), vec!["patient"], "{case}");
    let session = folded(headers, "x-auth-session");
    assert_eq!(session.len(), 1, "{case}: {headers:?}");
    assert!(
        session[0].len() == 22 && !["999", "admin"].contains(&session[0].as_str()),
        "{case}: {session:?}"
    );
    assert!(
        folded(headers, "x-auth-assertion").is_empty(),
        "{case}: {headers:?}"
    );
}

fn assert_no_identity(headers: &[(String, String)], case: &str) {
    for name in IDENTITY {
        assert!(
            folded(headers, name).is_empty(),
            "{case}: {name} reached the app: {headers:?}"
        );
    }
}

#[tokio::test]
async fn spoofed_identity_in_any_spelling_never_reaches_an_authenticated_route() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let mut cases: Vec<Vec<String>> = IDENTITY
        .iter()
        .flat_map(|n| spellings(n))
        .map(|s| spoofed_twice(&s))
        .collect();
    cases.push(cases.concat());
    for lines in cases {
        let mut all = lines.clone();
        all.push(format!("Cookie: {session}"));
        let reply = raw_get(proxy.addr, "/x", &all).await;
        assert_eq!(reply.status, 200, "{lines:?}");
        assert_demo_identity(&reply.upstream_headers(), &format!("{lines:?}"));
    }
}

#[tokio::test]
async fn spoofed_identity_in_any_spelling_never_reaches_a_public_route() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let mut cases: Vec<Vec<String>> = IDENTITY
        .iter()
        .flat_map(|n| spellings(n))
        .map(|s| spoofed_twice(&s))
        .collect();
    cases.push(cases.concat());
    for lines in cases {
        let reply = raw_get(proxy.addr, "/static/x", &lines).await;
        assert_eq!(reply.status, 200, "{lines:?}");
        assert_no_identity(&reply.upstream_headers(), &format!("{lines:?}"));
    }
}

#[tokio::test]
async fn spoofed_identity_from_a_normal_client_is_replaced_or_dropped() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let names: Vec<String> = IDENTITY.iter().flat_map(|n| spellings(n)).collect();
    let mut spoofed: Vec<(&str, &str)> = names
        .iter()
        .flat_map(|n| [(n.as_str(), "999"), (n.as_str(), "admin")])
        .collect();

    let public = get(&proxy.url("/static/x"), &spoofed).await;
    assert_eq!(public.status, StatusCode::OK);
    assert_no_identity(&public.upstream_headers(), "public");

    spoofed.push(("cookie", session.as_str()));
    let private = get(&proxy.url("/x"), &spoofed).await;
    assert_eq!(private.status, StatusCode::OK);
    assert_demo_identity(&private.upstream_headers(), "authenticated");
}

#[tokio::test]
async fn spoofed_identity_over_http2_is_replaced_or_dropped() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    for (path, cookie) in [("/static/x", None), ("/x", Some(&session))] {
        let mut req = Request::get(proxy.url(path));
        for name in IDENTITY.iter().flat_map(|n| spellings(n)) {
            req = req.header(&name, "999").header(&name, "admin");
        }
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        let resp = h2
            .request(req.body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.version(), Version::HTTP_2);
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let headers = echoed_headers(&String::from_utf8_lossy(&body));
        match cookie {
            None => assert_no_identity(&headers, path),
            Some(_) => assert_demo_identity(&headers, path),
        }
    }
}

#[tokio::test]
async fn identity_header_named_in_connection_does_not_survive() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    for listed in ["x-auth-user", "X_Auth_User"] {
        let lines = vec![
            format!("Connection: {listed}"),
            format!("{listed}: 999"),
            "X-Auth-User: 998".to_string(),
        ];
        let public = raw_get(proxy.addr, "/static/x", &lines).await;
        assert_eq!(public.status, 200);
        assert_no_identity(&public.upstream_headers(), listed);

        let mut with_cookie = lines.clone();
        with_cookie.push(format!("Cookie: {session}"));
        let private = raw_get(proxy.addr, "/x", &with_cookie).await;
        assert_eq!(private.status, 200);
        assert_demo_identity(&private.upstream_headers(), listed);
    }
}

#[tokio::test]
async fn untrusted_client_gets_exactly_one_x_forwarded_for_with_its_own_address() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let spoofed = vec![
        "X-Forwarded-For: 203.0.113.5".to_string(),
        "X-Forwarded-For: 198.51.100.1, 10.0.0.1".to_string(),
        "X_Forwarded_For: 203.0.113.6".to_string(),
        "x-forwarded_for: 203.0.113.7".to_string(),
        "Forwarded: for=203.0.113.8".to_string(),
        "X-Real-IP: 203.0.113.9".to_string(),
    ];
    for (path, cookie) in [("/static/x", None), ("/x", Some(&session))] {
        let mut lines = spoofed.clone();
        lines.extend(cookie.map(|c| format!("Cookie: {c}")));
        let reply = raw_get(proxy.addr, path, &lines).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            folded(&reply.upstream_headers(), "x-forwarded-for"),
            vec!["127.0.0.1"],
            "{path}"
        );
        let headers = reply.upstream_headers();
        assert!(folded(&headers, "forwarded").is_empty(), "{headers:?}");
        assert!(folded(&headers, "x-real-ip").is_empty(), "{headers:?}");
    }
}

#[tokio::test]
async fn trusted_proxy_x_forwarded_for_names_the_real_client() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream)
        .server("public_url = \"http://127.0.0.1\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n")
        .start()
        .await;
    let reply = get(
        &proxy.url("/static/x"),
        &[("x-forwarded-for", "203.0.113.5")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        folded(&reply.upstream_headers(), "x-forwarded-for"),
        vec!["203.0.113.5"]
    );
}

#[tokio::test]
async fn exactly_one_x_forwarded_proto_with_the_real_scheme() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let lines = vec![
        "X-Forwarded-Proto: https".to_string(),
        "X-Forwarded-Proto: https".to_string(),
        "X_Forwarded_Proto: https".to_string(),
    ];
    let reply = raw_get(proxy.addr, "/static/x", &lines).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        folded(&reply.upstream_headers(), "x-forwarded-proto"),
        vec!["http"]
    );
}

#[tokio::test]
async fn generated_request_id_reaches_the_app_and_is_echoed() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let reply = get(&proxy.url("/static/x"), &[]).await;
        let sent = reply.upstream_header("x-request-id");
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(is_request_id(&sent[0]), "{sent:?}");
        assert_eq!(reply.header("x-request-id"), Some(sent[0].as_str()));
        seen.push(sent[0].clone());
    }
    assert_ne!(seen[0], seen[1], "each request gets its own id");
}

#[tokio::test]
async fn untrusted_client_request_id_is_replaced() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let lines = vec![
        "X-Request-Id: client-chosen-id".to_string(),
        "X_Request_Id: client-chosen-id".to_string(),
    ];
    let reply = raw_get(proxy.addr, "/static/x", &lines).await;
    assert_eq!(reply.status, 200);
    let sent = folded(&reply.upstream_headers(), "x-request-id");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(is_request_id(&sent[0]), "{sent:?}");
    assert_eq!(reply.header("x-request-id"), sent);
}

#[tokio::test]
async fn trusted_proxy_request_id_is_kept() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::builder(&upstream)
        .server("public_url = \"http://127.0.0.1\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n")
        .start()
        .await;
    let reply = get(&proxy.url("/static/x"), &[("x-request-id", "lb-1234")]).await;
    assert_eq!(reply.upstream_header("x-request-id"), vec!["lb-1234"]);
    assert_eq!(reply.header("x-request-id"), Some("lb-1234"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let lines = vec![
        "Connection: X-Secret, x_other".to_string(),
        "X-Secret: 1".to_string(),
        "X_Other: 2".to_string(),
        "Keep-Alive: timeout=5".to_string(),
        "TE: trailers".to_string(),
        "Trailer: X-Checksum".to_string(),
        "Proxy-Authorization: Basic dXNlcjpwYXNz".to_string(),
        "Proxy-Connection: keep-alive".to_string(),
        "X-Kept: 3".to_string(),
    ];
    let reply = raw_get(proxy.addr, "/static/x", &lines).await;
    assert_eq!(reply.status, 200);
    let headers = reply.upstream_headers();
    for name in [
        "x-secret",
        "x-other",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(folded(&headers, name).is_empty(), "{name}: {headers:?}");
    }
    for value in folded(&headers, "connection") {
        assert!(!value.to_ascii_lowercase().contains("secret"), "{value}");
    }
    assert_eq!(folded(&headers, "x-kept"), vec!["3"]);
}

#[tokio::test]
async fn h2c_upgrade_is_never_forwarded_and_the_request_is_answered() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let h2c = vec![
        "Connection: Upgrade, HTTP2-Settings".to_string(),
        "Upgrade: h2c".to_string(),
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA".to_string(),
    ];
    for (path, cookie) in [("/static/x", None), ("/x", Some(&session))] {
        let mut lines = h2c.clone();
        lines.extend(cookie.map(|c| format!("Cookie: {c}")));
        let reply = raw_get(proxy.addr, path, &lines).await;
        assert_eq!(reply.status, 200, "{path}: a normal answer, not 101");
        assert!(reply.header("upgrade").is_empty(), "{path}");
        let headers = reply.upstream_headers();
        assert!(folded(&headers, "upgrade").is_empty(), "{headers:?}");
        assert!(folded(&headers, "http2-settings").is_empty(), "{headers:?}");
        for value in folded(&headers, "connection") {
            assert!(!value.to_ascii_lowercase().contains("upgrade"), "{value}");
        }
    }
}
