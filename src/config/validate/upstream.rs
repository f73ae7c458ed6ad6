//! `[upstream]`, its identity headers and `[upstream.assertion]`.

use super::values::{header_name, nonzero};
use crate::config::raw;
use crate::config::{AssertionConfig, ConfigErrors, Fingerprint, IdentityHeaders, UpstreamConfig};

pub(super) fn upstream(
    raw: raw::RawUpstream,
    e: &mut ConfigErrors,
) -> (UpstreamConfig, Option<Vec<u8>>) {
    let key = "upstream.url";
    let (scheme, authority) = match raw.url.parse::<http::Uri>() {
        Ok(uri) if uri.scheme() == Some(&http::uri::Scheme::HTTP) && uri.authority().is_some() => {
            if !matches!(uri.path(), "" | "/") {
                e.push(
                    key,
                    format!(
                        "{:?} must not have a path: requests keep their own",
                        raw.url
                    ),
                );
            }
            (
                uri.scheme().unwrap().clone(),
                uri.authority().unwrap().clone(),
            )
        }
        Ok(uri) if uri.scheme_str() == Some("https") => {
            e.push(key, format!("{:?}: https upstreams are not supported; the app listens on loopback or a private network over http", raw.url));
            (http::uri::Scheme::HTTP, "127.0.0.1:8000".parse().unwrap())
        }
        _ => {
            e.push(
                key,
                format!("{:?} is not a URL like \"http://127.0.0.1:8000\"", raw.url),
            );
            (http::uri::Scheme::HTTP, "127.0.0.1:8000".parse().unwrap())
        }
    };
    let (assertion, assertion_secret) = match raw.assertion.map(|a| assertion(a, e)) {
        Some(Some((config, secret))) => (Some(config), secret),
        _ => (None, None),
    };
    if raw.max_connections == 0 {
        e.push("upstream.max_connections", "must be at least 1");
    }
    let headers = IdentityHeaders {
        user: header_name(e, "upstream.headers.user", &raw.headers.user),
        email: header_name(e, "upstream.headers.email", &raw.headers.email),
        roles: header_name(e, "upstream.headers.roles", &raw.headers.roles),
        session: header_name(e, "upstream.headers.session", &raw.headers.session),
    };
    let config = UpstreamConfig {
        scheme,
        authority,
        connect_timeout: nonzero(e, "upstream.connect_timeout", raw.connect_timeout),
        response_header_timeout: nonzero(
            e,
            "upstream.response_header_timeout",
            raw.response_header_timeout,
        ),
        pool_idle_timeout: nonzero(e, "upstream.pool_idle_timeout", raw.pool_idle_timeout),
        pass_session_cookie: raw.pass_session_cookie,
        max_connections: raw.max_connections.max(1) as usize,
        tunnel_idle_timeout: nonzero(e, "upstream.tunnel_idle_timeout", raw.tunnel_idle_timeout),
        headers,
        assertion,
    };
    (config, assertion_secret)
}

/// The assertion settings, and the HS256 secret (to check it is not reused).
fn assertion(
    raw: raw::RawAssertion,
    e: &mut ConfigErrors,
) -> Option<(AssertionConfig, Option<Vec<u8>>)> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let header = header_name(e, "upstream.assertion.header", &raw.header);
    let algorithm: Algorithm = raw.algorithm.into();
    if raw.audience.trim().is_empty() {
        e.push(
            "upstream.assertion.audience",
            "must name the app, e.g. \"growbal\"",
        );
    }
    if algorithm == Algorithm::HS256 {
        let secret = if !raw.secret.is_empty() {
            raw.secret.into_bytes()
        } else if !raw.key.is_empty() {
            // A file holding the secret, as earlier versions read it.
            match std::fs::read(&raw.key) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec(),
                Err(err) => {
                    e.push(
                        "upstream.assertion.key",
                        format!("cannot read {}: {err}", raw.key),
                    );
                    return None;
                }
            }
        } else {
            e.push(
                "upstream.assertion.secret",
                "HS256 needs a secret of at least 32 bytes (e.g. \"${ASSERTION_SECRET}\")",
            );
            return None;
        };
        if secret.len() < 32 {
            e.push(
                "upstream.assertion.secret",
                "an HS256 secret must be at least 32 bytes",
            );
        }
        let config = AssertionConfig {
            header,
            algorithm,
            key: EncodingKey::from_secret(&secret),
            audience: raw.audience,
            fingerprint: Fingerprint::of(&[&secret]),
            public: None,
        };
        return Some((config, Some(secret)));
    }
    if !raw.secret.is_empty() {
        e.push(
            "upstream.assertion.secret",
            format!("is for HS256; {algorithm:?} signs with a PEM private key in upstream.assertion.key"),
        );
    }
    let bytes = match std::fs::read(&raw.key) {
        Ok(bytes) => bytes,
        Err(err) => {
            e.push(
                "upstream.assertion.key",
                format!("cannot read {:?}: {err}", raw.key),
            );
            return None;
        }
    };
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&bytes),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&bytes),
        _ => EncodingKey::from_ed_pem(&bytes),
    };
    let key = match key {
        Ok(key) => key,
        Err(err) => {
            e.push(
                "upstream.assertion.key",
                format!(
                    "{}: not a PEM private key for {:?}: {err}",
                    raw.key, algorithm
                ),
            );
            return None;
        }
    };
    // The public half for `{prefix}/jwks.json`; deriving it also proves the
    // key can sign, instead of a 503 at the first request.
    match crate::config::jwk::public_jwk(algorithm, &key) {
        Ok(public) => Some((
            AssertionConfig {
                header,
                algorithm,
                key,
                audience: raw.audience,
                fingerprint: Fingerprint::of(&[&bytes]),
                public,
            },
            None,
        )),
        Err(err) => {
            e.push(
                "upstream.assertion.key",
                format!("{}: {err} (algorithm {algorithm:?})", raw.key),
            );
            None
        }
    }
}
