//! Header surgery on the way to the app and back: pure functions over a
//! `HeaderMap`, each with the rule it enforces.

use http::header::{self, HeaderName};

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
/// spelling, is removed first. `X-Auth-Session` is the default of
/// `upstream.headers.session`; it stays reserved when that is renamed, as
/// the default assertion header does, so an app still reading the default
/// name can never be handed a client's copy.
pub(crate) const FORWARDING_HEADERS: &[&str] = &[
    "x-auth-session",
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
pub(crate) fn python_name(name: &str) -> String {
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

/// True for a WebSocket handshake (HTTP/1.1 GET with `Connection: upgrade`
/// and `Upgrade: websocket`): the one upgrade that is tunnelled.
pub(crate) fn is_websocket_upgrade(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    method == Method::GET
        && version == Version::HTTP_11
        && has_token(headers, &header::CONNECTION, "upgrade")
        && headers
            .get_all(header::UPGRADE)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Whether a comma-separated header `name` lists `token` (any case).
pub(crate) fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
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
/// `Connection` is read as bytes: one non-ASCII byte in it must not hide the
/// names listed beside it.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_websocket: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
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
pub(crate) fn strip_spoofable(headers: &mut HeaderMap, names: &[String]) {
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
mod tests;
