//! Which request `/auth/verify` judges. In forward-auth mode the front proxy
//! (nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`) asks
//! about a request it holds, naming its method and URI in two headers. Those
//! headers are believed only from `server.trusted_proxies`, only under the
//! names in `[forward_auth]`, and only once each: a client behind the proxy
//! can add headers of its own, and any spelling or copy the proxy did not set
//! would let it choose the URI that is judged.

use http::{HeaderMap, HeaderName, Method};
use thiserror::Error;

use crate::config::ForwardAuthConfig;

/// What an untrusted caller is judged as: whatever it claims, it learns only
/// whether it may open `/`.
const UNTRUSTED_PATH: &str = "/";

/// The original request named by a trusted proxy, or `GET /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OriginalRequest {
    pub method: Method,
    /// The path as the proxy sent it (not yet normalized), without query.
    pub path: String,
}

/// Why the forward-auth headers of a trusted proxy were refused (400). Each
/// names the header, so the operator knows which line of the proxy's
/// config to fix.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum ForwardAuthError {
    #[error(
        "the trusted proxy sent no {0} header; its auth sub-request must set it \
         to the original request URI (forward_auth.uri_header)"
    )]
    MissingUri(HeaderName),
    #[error("{0} appears more than once; the proxy must set it, not append to a client's copy")]
    Duplicated(HeaderName),
    #[error("{0} is not text")]
    NotText(HeaderName),
    #[error("{0} is not a valid method")]
    BadMethod(HeaderName),
    #[error("{0} is not an origin-form (/path?query) or http(s) absolute URI")]
    BadUri(HeaderName),
}

/// Reads the original method and URI from `headers`. `trusted` is whether
/// the caller is in `server.trusted_proxies`; an untrusted caller's headers
/// are never looked at.
pub(crate) fn original_request(
    headers: &HeaderMap,
    config: &ForwardAuthConfig,
    trusted: bool,
) -> Result<OriginalRequest, ForwardAuthError> {
    if !trusted {
        return Ok(OriginalRequest {
            method: Method::GET,
            path: UNTRUSTED_PATH.to_string(),
        });
    }
    let uri = single(headers, &config.uri_header)?
        .ok_or_else(|| ForwardAuthError::MissingUri(config.uri_header.clone()))?;
    let path = path_of(uri).ok_or_else(|| ForwardAuthError::BadUri(config.uri_header.clone()))?;
    let method = match single(headers, &config.method_header)? {
        None => Method::GET,
        Some(m) => Method::from_bytes(m.trim().as_bytes())
            .map_err(|_| ForwardAuthError::BadMethod(config.method_header.clone()))?,
    };
    Ok(OriginalRequest {
        method,
        path: path.to_string(),
    })
}

/// The one value of `name`; a second copy is refused rather than choosing
/// between the proxy's and the client's.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, ForwardAuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ForwardAuthError::Duplicated(name.clone()));
    }
    // Not UTF-8 cannot be a method or a request target a proxy would pass.
    first
        .to_str()
        .map(Some)
        .map_err(|_| ForwardAuthError::NotText(name.clone()))
}

/// The path of a request target: origin-form `/p?q` (what nginx's
/// `$request_uri`, Traefik and Caddy send), or absolute-form
/// `http://host/p?q` (nginx passes a client's absolute-form target through
/// in `$request_uri`). The query and any fragment are cut off; rules never
/// look at them.
fn path_of(uri: &str) -> Option<&str> {
    // A request target never carries a fragment: one here means the proxy
    // passed something the app may read differently (`/a#/../admin`).
    if uri.contains('#') {
        return None;
    }
    let target = if uri.starts_with('/') {
        uri
    } else {
        let rest = ["http://", "https://"].iter().find_map(|scheme| {
            uri.get(..scheme.len())
                .filter(|s| s.eq_ignore_ascii_case(scheme))
                .map(|_| &uri[scheme.len()..])
        })?;
        // The authority ends at the first '/', '?' or '#'; no path means "/".
        match rest.find(['/', '?', '#']) {
            Some(at) if rest.as_bytes()[at] == b'/' => &rest[at..],
            _ => "/",
        }
    };
    target.split(['?', '#']).next().filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ForwardAuthConfig {
        ForwardAuthConfig {
            uri_header: HeaderName::from_static("x-forwarded-uri"),
            method_header: HeaderName::from_static("x-forwarded-method"),
        }
    }

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

    fn judged(pairs: &[(&str, &str)], trusted: bool) -> Result<(Method, String), ForwardAuthError> {
        original_request(&map(pairs), &config(), trusted).map(|r| (r.method, r.path))
    }

    #[test]
    fn untrusted_caller_is_judged_as_get_root_whatever_it_sends() {
        let sent = [
            ("x-forwarded-uri", "/static/a.css"),
            ("x-forwarded-uri", "/other"),
            ("x-forwarded-method", "HEAD"),
        ];
        assert_eq!(judged(&sent, false), Ok((Method::GET, "/".into())));
        assert_eq!(judged(&[], false), Ok((Method::GET, "/".into())));
    }

    #[test]
    fn trusted_proxy_names_method_and_path() {
        let sent = [
            ("x-forwarded-uri", "/admin/x?next=/static/a.css"),
            ("x-forwarded-method", "DELETE"),
        ];
        assert_eq!(judged(&sent, true), Ok((Method::DELETE, "/admin/x".into())));
        assert_eq!(
            judged(&[("x-forwarded-uri", "/a")], true),
            Ok((Method::GET, "/a".into())),
            "no method header means GET"
        );
    }

    /// Regression: `/static/a#/../../admin/x` was judged as `/static/a`
    /// while nginx passed the whole string to the app.
    #[test]
    fn a_fragment_in_the_uri_is_refused() {
        let sent = [("x-forwarded-uri", "/static/a#/../../admin/x")];
        assert!(matches!(
            judged(&sent, true),
            Err(ForwardAuthError::BadUri(_))
        ));
    }

    #[test]
    fn a_second_copy_of_either_header_is_refused() {
        let uri_twice = [("x-forwarded-uri", "/admin/x"), ("x-forwarded-uri", "/")];
        assert!(matches!(
            judged(&uri_twice, true),
            Err(ForwardAuthError::Duplicated(_))
        ));
        let method_twice = [
            ("x-forwarded-uri", "/"),
            ("x-forwarded-method", "POST"),
            ("x-forwarded-method", "GET"),
        ];
        assert!(matches!(
            judged(&method_twice, true),
            Err(ForwardAuthError::Duplicated(_))
        ));
    }

    #[test]
    fn other_spellings_are_not_read() {
        let sent = [
            ("x-original-uri", "/static/a.css"),
            ("x_forwarded_uri", "/static/a.css"),
        ];
        assert!(matches!(
            judged(&sent, true),
            Err(ForwardAuthError::MissingUri(_))
        ));
    }

    #[test]
    fn absolute_form_targets_are_judged_by_their_path() {
        for (uri, path) in [
            ("http://app.example/admin/x?y", "/admin/x"),
            ("HTTPS://app.example:8443/a", "/a"),
            ("http://app.example", "/"),
            ("http://app.example?x=/static/a.css", "/"),
        ] {
            assert_eq!(
                judged(&[("x-forwarded-uri", uri)], true),
                Ok((Method::GET, path.into())),
                "{uri}"
            );
        }
        for uri in ["", "*", "app.example:443", "ftp://x/a", "?x"] {
            assert!(
                matches!(
                    judged(&[("x-forwarded-uri", uri)], true),
                    Err(ForwardAuthError::BadUri(_))
                ),
                "{uri:?}"
            );
        }
    }

    #[test]
    fn a_bad_method_is_refused() {
        let sent = [("x-forwarded-uri", "/"), ("x-forwarded-method", "G(ET")];
        assert!(matches!(
            judged(&sent, true),
            Err(ForwardAuthError::BadMethod(_))
        ));
    }
}
