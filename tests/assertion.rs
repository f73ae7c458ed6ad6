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

fn assertion_toml_for(algorithm: &str, key: &str) -> String {
    format!(
        "[upstream.assertion]\nalgorithm = \"{algorithm}\"\nkey = \"{FIXTURES}/{key}\"\naudience = \"growbal\"\n"
    )
}

/// Verifies `token` with nothing but the published key set, as an app
/// would: the key is picked by the token's `kid`, the algorithm by the key.
fn verify_with_jwks(token: &str, jwks: &Value) -> Value {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let kid = jsonwebtoken::decode_header(token)
        .unwrap()
        .kid
        .expect("the assertion names its key");
    let jwk = set.find(&kid).expect("the kid is in the published set");
    let algorithm: Algorithm = jwk
        .common
        .key_algorithm
        .map(|a| a.to_string().parse().unwrap())
        .expect("alg published");
    let mut validation = Validation::new(algorithm);
    validation.set_audience(&["growbal"]);
    validation.set_issuer(&["portcullis"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn the_published_jwks_alone_verifies_assertions_for_each_public_key_algorithm() {
    let upstream = Upstream::start().await;
    for (algorithm, key, kty) in [
        ("EdDSA", "assertion-ed25519.key", "OKP"),
        ("RS256", "assertion-rsa.key", "RSA"),
        ("ES256", "assertion-p256.key", "EC"),
    ] {
        let proxy = Proxy::start(&upstream, &assertion_toml_for(algorithm, key)).await;
        let jwks = get(&proxy.url("/auth/jwks.json"), &[]).await;
        assert_eq!(jwks.status, StatusCode::OK, "{algorithm}");
        assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
        assert_eq!(jwks.header("content-type"), Some("application/json"));
        let set = jwks.json();
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{algorithm}: {set}");
        assert_eq!(keys[0]["kty"], kty);
        assert_eq!(keys[0]["alg"], algorithm);
        assert_eq!(keys[0]["use"], "sig");
        assert!(keys[0].get("d").is_none(), "{algorithm}: no private member");

        let session = login(&proxy, "admin").await;
        let reply = get(&proxy.url("/x"), &[("cookie", &session)]).await;
        let assertion = &reply.upstream_header("x-auth-assertion")[0];
        let header = jsonwebtoken::decode_header(assertion).unwrap();
        assert_eq!(
            header.kid.as_deref(),
            keys[0]["kid"].as_str(),
            "{algorithm}"
        );
        let claims = verify_with_jwks(assertion, &set);
        assert_eq!(claims["sub"], "2", "{algorithm}");
        assert_eq!(claims["roles"], serde_json::json!(["admin", "patient"]));

        let head = send(
            http::Method::HEAD,
            &proxy.url("/auth/jwks.json"),
            &[],
            String::new(),
        )
        .await;
        assert_eq!(head.status, StatusCode::OK);
        let post = send(
            http::Method::POST,
            &proxy.url("/auth/jwks.json"),
            &[],
            String::new(),
        )
        .await;
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    }
}

#[tokio::test]
async fn without_a_public_key_the_jwks_is_404_and_assertions_name_no_kid() {
    let upstream = Upstream::start().await;
    let none = Proxy::start(&upstream, "").await;
    let reply = get(&none.url("/auth/jwks.json"), &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let secret = "s".repeat(40);
    let hs256 = Proxy::start(
        &upstream,
        &format!("[upstream.assertion]\nalgorithm = \"HS256\"\nsecret = \"{secret}\"\naudience = \"growbal\"\n"),
    )
    .await;
    let reply = get(&hs256.url("/auth/jwks.json"), &[]).await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "a shared secret is never published"
    );
    let session = login(&hs256, "admin").await;
    let reply = get(&hs256.url("/x"), &[("cookie", &session)]).await;
    let assertion = &reply.upstream_header("x-auth-assertion")[0];
    assert_eq!(jsonwebtoken::decode_header(assertion).unwrap().kid, None);
}
