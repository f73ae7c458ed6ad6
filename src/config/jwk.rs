//! The public half of the `[upstream.assertion]` key as a JWK (RFC 7517),
//! derived once when the config is read, so `{prefix}/jwks.json` can publish
//! it and every assertion names it in its `kid`. The `kid` is the key's
//! RFC 7638 thumbprint: it changes exactly when the key does, so an app
//! that caches the key set sees a new `kid` after a rotation and refetches.

use aws_lc_rs::signature::{self, KeyPair as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use sha2::{Digest, Sha256};

/// A public key ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PublicJwk {
    /// The RFC 7638 SHA-256 thumbprint, base64url.
    pub(crate) kid: String,
    /// The JWK with `kid`, `alg` and `use` set.
    pub(crate) jwk: serde_json::Value,
}

/// The public JWK of a private signing key; `None` for HS256, which has no
/// public half. `key` is what `EncodingKey::from_*_pem` built: PKCS#8 DER for
/// EdDSA and ES256, the PKCS#1 `RSAPrivateKey` for RS256 — the same bytes
/// jsonwebtoken signs with, read the same way.
pub(crate) fn public_jwk(
    algorithm: Algorithm,
    key: &EncodingKey,
) -> Result<Option<PublicJwk>, String> {
    let der = key.inner();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    // Members in the lexicographic order RFC 7638 §3.2 hashes them in.
    let members: Vec<(&str, String)> = match algorithm {
        Algorithm::HS256 => return Ok(None),
        Algorithm::EdDSA => {
            let pair = signature::Ed25519KeyPair::from_pkcs8(der)
                .map_err(|e| format!("not an Ed25519 private key: {e}"))?;
            vec![
                ("crv", "Ed25519".into()),
                ("kty", "OKP".into()),
                ("x", b64(pair.public_key().as_ref())),
            ]
        }
        Algorithm::ES256 => {
            let pair = signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
            )
            .map_err(|e| format!("not a P-256 private key: {e}"))?;
            // Uncompressed SEC1 point: 0x04 || x || y, 32 bytes each.
            let point = pair.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err("unexpected P-256 public key encoding".into());
            }
            vec![
                ("crv", "P-256".into()),
                ("kty", "EC".into()),
                ("x", b64(&point[1..33])),
                ("y", b64(&point[33..])),
            ]
        }
        Algorithm::RS256 => {
            let pair = signature::RsaKeyPair::from_der(der)
                .map_err(|e| format!("not an RSA private key: {e}"))?;
            let public = pair.public_key();
            vec![
                (
                    "e",
                    b64(public.exponent().big_endian_without_leading_zero()),
                ),
                ("kty", "RSA".into()),
                ("n", b64(public.modulus().big_endian_without_leading_zero())),
            ]
        }
        other => return Err(format!("{other:?} is not an assertion algorithm")),
    };
    // Every value is base64url or a fixed name: nothing to escape.
    let canonical = members
        .iter()
        .map(|(name, value)| format!("\"{name}\":\"{value}\""))
        .collect::<Vec<_>>()
        .join(",");
    let kid = b64(&Sha256::digest(format!("{{{canonical}}}").as_bytes()));
    let mut jwk = serde_json::Map::new();
    for (name, value) in members {
        jwk.insert(name.into(), value.into());
    }
    jwk.insert("kid".into(), kid.clone().into());
    jwk.insert("alg".into(), format!("{algorithm:?}").into());
    jwk.insert("use".into(), "sig".into());
    Ok(Some(PublicJwk {
        kid,
        jwk: jwk.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    /// RFC 7638 §3.1's own example: this RSA key's thumbprint is
    /// `NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs`.
    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let members = format!("{{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"{n}\"}}");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes())),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn the_ed25519_jwk_holds_the_public_key_of_the_private_one() {
        let key = EncodingKey::from_ed_pem(&fixture("assertion-ed25519.key")).unwrap();
        let public = public_jwk(Algorithm::EdDSA, &key).unwrap().unwrap();
        assert_eq!(public.jwk["kty"], "OKP");
        assert_eq!(public.jwk["crv"], "Ed25519");
        assert_eq!(public.jwk["kid"], public.kid.as_str());
        assert_eq!(public.jwk["alg"], "EdDSA");
        // The .pub.pem fixture is an SPKI whose last 32 bytes are the key.
        let pem = String::from_utf8(fixture("assertion-ed25519.pub.pem")).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let spki = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(
            public.jwk["x"],
            URL_SAFE_NO_PAD.encode(&spki[spki.len() - 32..])
        );
    }

    #[test]
    fn rsa_and_p256_keys_give_their_members_and_a_stable_kid() {
        let rsa = EncodingKey::from_rsa_pem(&fixture("assertion-rsa.key")).unwrap();
        let a = public_jwk(Algorithm::RS256, &rsa).unwrap().unwrap();
        assert_eq!(a.jwk["kty"], "RSA");
        assert_eq!(a.jwk["e"], "AQAB");
        assert!(a.jwk["n"].as_str().unwrap().len() > 300);
        assert_eq!(a, public_jwk(Algorithm::RS256, &rsa).unwrap().unwrap());
        // The thumbprint over the required members only, sorted, no spaces.
        let required: std::collections::BTreeMap<&str, &serde_json::Value> =
            ["e", "kty", "n"].map(|m| (m, &a.jwk[m])).into();
        let canonical = serde_json::to_string(&required).unwrap();
        assert_eq!(a.kid, URL_SAFE_NO_PAD.encode(Sha256::digest(canonical)));

        let ec = EncodingKey::from_ec_pem(&fixture("assertion-p256.key")).unwrap();
        let b = public_jwk(Algorithm::ES256, &ec).unwrap().unwrap();
        assert_eq!(
            (b.jwk["kty"].as_str(), b.jwk["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        assert_eq!(b.jwk["x"].as_str().unwrap().len(), 43);
        assert_eq!(b.jwk["y"].as_str().unwrap().len(), 43);
        assert_ne!(a.kid, b.kid);
    }

    #[test]
    fn hs256_has_no_public_key_and_a_mismatched_key_is_an_error() {
        let secret = EncodingKey::from_secret(&[7; 32]);
        assert_eq!(public_jwk(Algorithm::HS256, &secret), Ok(None));
        let rsa = EncodingKey::from_rsa_pem(&fixture("assertion-rsa.key")).unwrap();
        assert!(public_jwk(Algorithm::EdDSA, &EncodingKey::from_ed_der(rsa.inner())).is_err());
    }
}
