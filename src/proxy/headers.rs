//! Header surgery on the way to the app and back: pure functions over a
//! `HeaderMap`, each with the rule it enforces.

use http::header::{self, HeaderName, HeaderValue};

use crate::config::IdentityHeaders;
use crate::store::Identity;
use http::{HeaderMap, Method, Version};

/// Hop-by-hop headers (RFC 9110 §7.6.1: "a proxy MUST remove any such
/// header fields before forwarding") and the h2c upgrade's settings;
/// `Proxy-*` is handled by prefix.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
];

/// Headers portcullis sets itself for the app; any client copy, in any
/// spelling, is removed first.
pub const FORWARDING_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-real-ip",
    "forwarded",
    "x-request-id",
];

/// The spelling a Python server may fold a header name into: lowercase with
/// `_` read as `-` (WSGI's `HTTP_X_AUTH_USER`, FastAPI's `x_auth_user`).
pub fn python_name(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b == b'_' {
                '-'
            } else {
                b.to_ascii_lowercase() as char
            }
        })
        .collect()
}

/// Whether a Python server could read header `name` as `python` (already in
/// [`python_name`] form), without allocating on the per-request path.
fn reads_as(name: &str, python: &str) -> bool {
    name.len() == python.len()
        && name.bytes().zip(python.bytes()).all(|(a, b)| {
            if a == b'_' {
                b == b'-'
            } else {
                a.to_ascii_lowercase() == b
            }
        })
}

/// Sets the identity headers for `identity`. A value that cannot be a
/// header (a control character in the users table) is left out rather than
/// sent mangled.
pub fn set_identity(headers: &mut HeaderMap, names: &IdentityHeaders, identity: &Identity) {
    let roles = identity.roles.join(",");
    for (name, value) in [
        (&names.user, identity.id.as_str()),
        (&names.email, identity.email.as_str()),
        (&names.roles, roles.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name.clone(), v);
        }
    }
}

/// True for a WebSocket handshake (HTTP/1.1 GET with `Connection: upgrade`
/// and `Upgrade: websocket`): the one upgrade that is tunnelled.
pub fn is_websocket_upgrade(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    method == Method::GET
        && version == Version::HTTP_11
        && has_token(headers, &header::CONNECTION, "upgrade")
        && headers
            .get_all(header::UPGRADE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers and every header named in `Connection`.
/// `keep_websocket` keeps `Connection: upgrade` / `Upgrade: websocket` (and
/// nothing else a `Connection` header named) for a WebSocket handshake.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_websocket: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    // Every `Proxy-*` header, and `Proxy` itself (httpoxy: CGI-style apps
    // read it as HTTP_PROXY).
    let proxy_headers: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str() == "proxy" || k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy_headers {
        headers.remove(name);
    }
    if keep_websocket {
        headers.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("upgrade"),
        );
        headers.insert(
            header::UPGRADE,
            header::HeaderValue::from_static("websocket"),
        );
    }
}

/// Removes every header whose Python spelling equals one of `names` (which
/// must already be in [`python_name`] form): any case, `_` for `-`, every
/// duplicate.
pub fn strip_spoofable(headers: &mut HeaderMap, names: &[String]) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| names.iter().any(|n| reads_as(k.as_str(), n)))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn identity() -> Vec<String> {
        [
            "X-Auth-User",
            "X-Auth-Email",
            "X-Auth-Roles",
            "X-Auth-Assertion",
        ]
        .iter()
        .map(|n| python_name(n))
        .collect()
    }

    #[test]
    fn identity_headers_are_removed_in_every_spelling() {
        let mut h = map(&[
            ("x-auth-user", "a"),
            ("X-AUTH-USER", "b"),
            ("x_auth_user", "c"),
            ("X_Auth_User", "d"),
            ("x-auth_user", "e"),
            ("x_auth-email", "f"),
            ("x-auth-roles", "admin"),
            ("x-auth-assertion", "forged"),
            ("x-auth-userx", "kept"),
            ("accept", "text/html"),
        ]);
        strip_spoofable(&mut h, &identity());
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(h.contains_key("x-auth-userx"));
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn duplicated_identity_headers_are_all_removed() {
        let mut h = map(&[
            ("x-auth-user", "a"),
            ("x-auth-user", "b"),
            ("x-auth-user", "c"),
        ]);
        strip_spoofable(&mut h, &identity());
        assert!(h.is_empty());
    }

    #[test]
    fn connection_listed_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret, x_other"),
            ("x-secret", "1"),
            ("x_other", "2"),
            ("keep-alive", "timeout=5"),
            ("x-kept", "3"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = map(&[
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAA"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("proxy", "http://evil.example:8080"),
            ("proxy-anything", "x"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn websocket_handshake_keeps_only_its_upgrade() {
        let mut h = map(&[
            ("connection", "Upgrade, X-Secret"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert!(h.contains_key("sec-websocket-key"));
        assert!(!h.contains_key("x-secret"));
    }

    #[test]
    fn h2c_upgrade_is_not_a_websocket() {
        let h = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert!(!is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h));
        let h = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        assert!(!is_websocket_upgrade(&Method::POST, Version::HTTP_11, &h));
    }

    #[test]
    fn python_spelling_folds_case_and_underscores() {
        assert_eq!(python_name("X_Auth_User"), "x-auth-user");
        assert_eq!(python_name("x-auth-user"), "x-auth-user");
    }
}
