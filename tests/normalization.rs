//! Path-normalization bypass attempts against `deny` and `roles` rules
//! (SPEC request flow step 2, security property on route globs): whatever
//! spelling a client uses, rules match the normalized path, refused
//! encodings get 400, and exactly the normalized path reaches the app.
//!
//! Requests go over raw TCP so no client library rewrites or rejects the
//! path before portcullis sees it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// A response read off a raw connection.
struct RawReply {
    status: u16,
    body: String,
}

impl RawReply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends `GET {target}` exactly as written, with `cookie` if given, and
/// reads the reply (the connection is closed by the server after it).
async fn raw_get(addr: SocketAddr, target: &str, cookie: Option<&str>) -> RawReply {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}Accept: application/json\r\n\
         Connection: close\r\n\r\n"
    );
    let reply = raw(addr, request.as_bytes(), Duration::from_secs(10)).await;
    let status = raw_status(&reply).unwrap_or_else(|| panic!("no status for {target}: {reply:?}"));
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head for {target}: {reply:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    RawReply { status, body }
}

/// Decodes a complete chunked body.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// The reply came from portcullis' own refusal, not from the app.
fn assert_refused(reply: &RawReply, target: &str, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{target}: {}", reply.body);
    assert_eq!(
        reply.json(),
        serde_json::json!({ "error": code }),
        "{target} must not reach the app"
    );
}

/// The reply came from the echo app, which saw exactly `path`.
fn assert_forwarded_as(reply: &RawReply, target: &str, path: &str) {
    assert_eq!(reply.status, 200, "{target}: {}", reply.body);
    assert_eq!(reply.json()["path"], path, "{target}");
}

#[tokio::test]
async fn spellings_of_a_denied_path_are_all_denied() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    for target in [
        "/internal",
        "/internal/",
        "/internal/x",
        "//internal/x",
        "/./internal/x",
        "/%2e/internal/x",
        "/a/../internal/x",
        "/x/%2e%2e/internal/x",
        "/x/%2E%2E/internal/x",
        "/x/.%2e/internal/x",
        "/%69nternal/x",
        "/%69%6E%74%65%72%6E%61%6C/x",
        "/internal/./x",
        "/internal//x",
        "/static/../internal/x",
        "/internal/x/../../internal/y",
        "/internal?x=1",
    ] {
        let reply = raw_get(proxy.addr, target, Some(&session)).await;
        assert_refused(&reply, target, 403, "forbidden");
    }
}

#[tokio::test]
async fn deny_applies_before_authentication() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    for target in ["//internal/x", "/static/../internal/x", "/%69nternal/x"] {
        let reply = raw_get(proxy.addr, target, None).await;
        assert_refused(&reply, target, 403, "forbidden");
    }
}

#[tokio::test]
async fn spellings_of_an_admin_path_are_refused_to_a_non_admin() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    for target in [
        "/admin",
        "/admin/",
        "/admin/users",
        "//admin//users",
        "/admin/./users",
        "/x/../admin",
        "/x/%2e%2e/admin/users",
        "/%61dmin/users",
        "/static/../admin/users",
        "/admin?role=admin",
    ] {
        let reply = raw_get(proxy.addr, target, Some(&session)).await;
        assert_refused(&reply, target, 403, "forbidden");
    }
}

#[tokio::test]
async fn dot_dot_out_of_a_public_prefix_is_not_public() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let public = raw_get(proxy.addr, "/static/app.css", None).await;
    assert_forwarded_as(&public, "/static/app.css", "/static/app.css");
    for target in ["/static/../secret", "/static/%2e%2e/admin/users"] {
        let reply = raw_get(proxy.addr, target, None).await;
        assert_refused(&reply, target, 401, "unauthenticated");
    }
}

#[tokio::test]
async fn ambiguous_encodings_are_refused_with_400() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    for target in [
        "/%2e%2e/internal/x",
        "/..",
        "/a/../../internal/x",
        "/internal%2Fx",
        "/internal%2fx",
        "/admin%2Fusers",
        "/internal%5Cx",
        "/internal\\x",
        "/\\internal/x",
        "/internal%00/x",
        "/internal/%ff",
        "/internal/%zz",
    ] {
        let reply = raw_get(proxy.addr, target, Some(&session)).await;
        assert_refused(&reply, target, 400, "bad_request");
    }
}

#[tokio::test]
async fn case_is_kept_so_uppercase_is_a_different_path() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    let reply = raw_get(proxy.addr, "/INTERNAL/x", Some(&session)).await;
    assert_forwarded_as(&reply, "/INTERNAL/x", "/INTERNAL/x");
}

#[tokio::test]
async fn admin_reaches_the_app_with_exactly_the_normalized_path() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "admin").await;
    for (target, path) in [
        ("/admin//users/./1", "/admin/users/1"),
        ("/admin", "/admin"),
        ("/x/../admin/", "/admin/"),
        ("//admin//users", "/admin/users"),
        ("/%61dmin/users/%31", "/admin/users/1"),
    ] {
        let reply = raw_get(proxy.addr, target, Some(&session)).await;
        assert_forwarded_as(&reply, target, path);
    }
    let reply = raw_get(proxy.addr, "/admin//users/./1?tab=x", Some(&session)).await;
    assert_eq!(reply.json()["query"], "tab=x");
}

#[tokio::test]
async fn forwarded_paths_are_the_normalized_ones() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    for (target, path) in [
        ("/a//b///c", "/a/b/c"),
        ("/a/./b/../c", "/a/c"),
        ("/%7Euser/%41", "/~user/A"),
        // Reserved characters stay encoded, and nothing is decoded twice.
        ("/a%20b", "/a%20b"),
        ("/%2561dmin", "/%2561dmin"),
        ("/chat/x;y", "/chat/x;y"),
        ("/caf%C3%A9", "/caf%C3%A9"),
    ] {
        let reply = raw_get(proxy.addr, target, Some(&session)).await;
        assert_forwarded_as(&reply, target, path);
    }
}

#[tokio::test]
async fn rules_never_match_the_query_string() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    for (target, query) in [
        ("/ok?x=/internal/y", "x=/internal/y"),
        ("/ok?next=/admin/users", "next=/admin/users"),
        ("/ok?/internal/x", "/internal/x"),
    ] {
        let reply = raw_get(proxy.addr, target, Some(&session)).await;
        assert_forwarded_as(&reply, target, "/ok");
        assert_eq!(reply.json()["query"], query, "{target}");
    }
}

#[tokio::test]
async fn admin_rule_does_not_cover_administrator() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, "").await;
    let session = login(&proxy, "demo").await;
    for target in ["/administrator", "/admin-panel", "/internalx"] {
        let reply = raw_get(proxy.addr, target, Some(&session)).await;
        assert_forwarded_as(&reply, target, target);
    }
}

#[tokio::test]
async fn rules_match_the_path_as_the_app_decodes_it() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(
        &upstream,
        "[[route]]\npath = \"/données/**\"\naccess = \"deny\"\n[[route]]\npath = \"/a b;c\"\naccess = \"deny\"\n",
    )
    .await;
    let session = login(&proxy, "demo").await;
    for path in ["/donn%C3%A9es/x", "/donn%c3%a9es", "/a%20b%3Bc", "/a%20b;c"] {
        let reply = get(&proxy.url(path), &[("cookie", &session)]).await;
        assert_eq!(reply.status, http::StatusCode::FORBIDDEN, "{path}");
    }
    let other = get(&proxy.url("/donn%C3%A9e/x"), &[("cookie", &session)]).await;
    assert_eq!(other.status, http::StatusCode::OK);
}
