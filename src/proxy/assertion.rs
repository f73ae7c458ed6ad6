//! The signed upstream assertion (`[upstream.assertion]`): a short-lived
//! JWT per authenticated request, so an app that can verify it does not
//! have to trust the identity headers alone (defence in depth if the app is
//! ever reachable without portcullis).

use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde::Serialize;

use crate::config::AssertionConfig;
use crate::store::Identity;

/// How long an assertion is valid: it is for one request, now.
const LIFETIME_SECS: u64 = 60;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'static str,
    aud: &'a str,
    sub: &'a str,
    name: &'a str,
    email: &'a str,
    roles: &'a [String],
    iat: u64,
    nbf: u64,
    exp: u64,
    /// The request id, so an app can tie the assertion to its log line.
    jti: &'a str,
    typ: &'static str,
}

/// Signs the assertion for `identity`. An error must fail the request
/// (503): forwarding without the assertion would fail open for an app that
/// relies on it.
pub(crate) fn sign(
    config: &AssertionConfig,
    identity: &Identity,
    request_id: &str,
) -> Result<HeaderValue, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = Claims {
        iss: "portcullis",
        aud: &config.audience,
        sub: &identity.id,
        name: &identity.username,
        email: &identity.email,
        roles: &identity.roles,
        iat: now,
        nbf: now,
        exp: now + LIFETIME_SECS,
        jti: request_id,
        typ: "assertion",
    };
    let mut header = jsonwebtoken::Header::new(config.algorithm);
    // The key's thumbprint, as published at `{prefix}/jwks.json`.
    header.kid = config.public.as_ref().map(|p| p.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, &config.key)?;
    // A JWT is base64url and dots: always a valid header value.
    Ok(HeaderValue::from_str(&token).expect("a JWT is a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_cannot_sign_is_an_error_not_a_missing_header() {
        let config = AssertionConfig {
            header: http::HeaderName::from_static("x-auth-assertion"),
            algorithm: jsonwebtoken::Algorithm::RS256,
            key: jsonwebtoken::EncodingKey::from_secret(b"not an RSA key"),
            audience: "app".into(),
            fingerprint: crate::config::Fingerprint::of(&[b"not an RSA key"]),
            public: None,
        };
        let identity = Identity {
            id: "1".into(),
            username: "demo".into(),
            email: "demo@example.com".into(),
            roles: vec![],
        };
        assert!(sign(&config, &identity, "req-1").is_err());
    }
}
