//! JWT checks shared by bearer tokens and SSO hand-offs, stricter than
//! jsonwebtoken's defaults: the algorithm comes from our allow-list (never
//! from the token), `exp`, `iss` and `aud` are required, `nbf` is honoured,
//! the leeway is ours, `crit` headers are refused, header keys (`jku`,
//! `x5u`, `jwk`, `kid`) are never used, and a token over 8 KiB is refused
//! before it is decoded.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use thiserror::Error;

/// Longest token looked at.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum JwtError {
    #[error("token over 8 KiB")]
    TooLong,
    #[error("malformed token")]
    Malformed,
    #[error("token header has a crit parameter")]
    Critical,
    #[error("token refused: {0}")]
    Invalid(String),
}

/// Checks done before any decoding: size and the raw header.
pub(crate) fn precheck(token: &str) -> Result<(), JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::TooLong);
    }
    let header = token.split('.').next().ok_or(JwtError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)?;
    if header.contains_key("crit") {
        return Err(JwtError::Critical);
    }
    Ok(())
}

/// A validation with every check on: `exp`, `iss`, `aud` required, `nbf`
/// honoured, `leeway_secs` of clock skew, only `algorithms` accepted.
pub(crate) fn strict_validation(
    algorithms: &[Algorithm],
    issuer: &str,
    audience: &str,
    leeway_secs: u64,
) -> Validation {
    let mut validation = Validation::new(algorithms[0]);
    validation.algorithms = algorithms.to_vec();
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.leeway = leeway_secs;
    validation
}

/// Prechecks and verifies `token` with `key`; returns its claims.
pub(crate) fn verify<T: DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<T, JwtError> {
    precheck(token)?;
    jsonwebtoken::decode::<T>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| JwtError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn sign(header: &Header, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn check(token: &str) -> Result<serde_json::Value, JwtError> {
        let validation = strict_validation(&[Algorithm::HS256], "iss-a", "aud-a", 30);
        verify(token, &DecodingKey::from_secret(SECRET), &validation)
    }

    fn good_claims() -> serde_json::Value {
        json!({"iss": "iss-a", "aud": "aud-a", "exp": now() + 60, "sub": "1"})
    }

    #[test]
    fn a_good_token_verifies() {
        assert!(check(&sign(&Header::new(Algorithm::HS256), &good_claims())).is_ok());
    }

    #[test]
    fn exp_iss_and_aud_are_required_not_merely_checked() {
        for missing in ["exp", "iss", "aud"] {
            let mut claims = good_claims();
            claims.as_object_mut().unwrap().remove(missing);
            assert!(
                check(&sign(&Header::new(Algorithm::HS256), &claims)).is_err(),
                "{missing}"
            );
        }
    }

    #[test]
    fn wrong_issuer_audience_or_expired_is_refused() {
        for (k, v) in [
            ("iss", json!("other")),
            ("aud", json!("other")),
            ("exp", json!(now() - 120)),
        ] {
            let mut claims = good_claims();
            claims[k] = v;
            assert!(
                check(&sign(&Header::new(Algorithm::HS256), &claims)).is_err(),
                "{k}"
            );
        }
    }

    #[test]
    fn not_before_in_the_future_is_refused_beyond_the_skew() {
        let mut claims = good_claims();
        claims["nbf"] = json!(now() + 300);
        assert!(check(&sign(&Header::new(Algorithm::HS256), &claims)).is_err());
        claims["nbf"] = json!(now() + 10);
        assert!(check(&sign(&Header::new(Algorithm::HS256), &claims)).is_ok());
    }

    #[test]
    fn algorithm_outside_the_allow_list_is_refused() {
        let token = sign(&Header::new(Algorithm::HS512), &good_claims());
        assert!(check(&token).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(good_claims().to_string());
        assert!(check(&format!("{header}.{body}.")).is_err());
    }

    #[test]
    fn crit_header_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#);
        let body = URL_SAFE_NO_PAD.encode(good_claims().to_string());
        let token = format!("{header}.{body}.sig");
        assert_eq!(check(&token), Err(JwtError::Critical));
    }

    #[test]
    fn oversized_token_is_refused_before_decoding() {
        let token = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(check(&token), Err(JwtError::TooLong));
    }
}
