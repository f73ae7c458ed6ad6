//! The signed upstream assertion: a JWT per authenticated request that the
//! app can verify with portcullis' public key.

mod common;

use common::*;
use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn assertion_toml() -> String {
    format!(
        "[upstream.assertion]\nheader = \"X-Auth-Assertion\"\nalgorithm = \"EdDSA\"\nkey = \"{FIXTURES}/assertion-ed25519.key\"\naudience = \"growbal\"\n"
    )
}

#[tokio::test]
async fn app_receives_one_verifiable_assertion_for_the_signed_in_user() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &assertion_toml()).await;
    let session = login(&proxy, "admin").await;
    let reply = get(
        &proxy.url("/x"),
        &[
            ("cookie", &session),
            ("x-auth-assertion", "forged"),
            ("X_Auth_Assertion", "forged"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let assertions = reply.upstream_header("x-auth-assertion");
    assert_eq!(assertions.len(), 1, "exactly one, ours");
    let underscored: Vec<_> = reply
        .upstream_headers()
        .into_iter()
        .filter(|(k, _)| k.replace('_', "-") == "x-auth-assertion")
        .collect();
    assert_eq!(underscored.len(), 1);

    let public = std::fs::read(format!("{FIXTURES}/assertion-ed25519.pub.pem")).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["growbal"]);
    validation.set_issuer(&["portcullis"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims: Value = jsonwebtoken::decode(
        &assertions[0],
        &DecodingKey::from_ed_pem(&public).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "2");
    assert_eq!(claims["email"], "admin@example.com");
    assert_eq!(claims["roles"], serde_json::json!(["admin", "patient"]));
    assert_eq!(claims["jti"].as_str(), reply.header("x-request-id"));
}

#[tokio::test]
async fn public_routes_get_no_assertion_and_forged_ones_are_removed() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream, &assertion_toml()).await;
    let reply = get(
        &proxy.url("/static/app.css"),
        &[("x-auth-assertion", "forged")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.upstream_header("x-auth-assertion").is_empty());
}

#[test]
fn unreadable_or_wrong_key_is_a_config_error() {
    for (key, algorithm) in [
        ("/nonexistent.pem", "EdDSA"),
        ("assertion-ed25519.pub.pem", "EdDSA"),
        ("partner-rsa.key", "ES256"),
    ] {
        let path = if key.starts_with('/') {
            key.to_string()
        } else {
            format!("{FIXTURES}/{key}")
        };
        let toml = format!("[upstream.assertion]\nalgorithm = \"{algorithm}\"\nkey = \"{path}\"\naudience = \"a\"\n");
        let err = portcullis::Config::from_toml(&toml, std::path::Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("upstream.assertion.key"), "{key}: {err}");
    }
}
