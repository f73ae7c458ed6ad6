//! SSO hand-off from partner sites: `GET {prefix}/sso?token=JWT&next=PATH`.
//!
//! The partner is chosen by the token's `iss` among `[[sso.partners]]`, and
//! the token is then verified with that partner's configured key and
//! algorithm allow-list only (never a key or algorithm named by the token).
//! `exp`, `iat`, `iss`, `aud` and `jti` are required; a token older than the
//! partner's `max_age` is refused, and each is single use, keyed on
//! (`iss`, `jti`). A `typ` claim other than `sso` (an access or refresh
//! token) is refused.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

use super::jwt;
use crate::config::SsoPartner;
use crate::store::{ReplayStore, StoreError};

/// The `typ` claim of a hand-off token, when present.
pub(crate) const SSO_TYPE: &str = "sso";

#[derive(Debug, Error)]
pub(crate) enum SsoError {
    #[error("token refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refused(reason: impl Into<String>) -> SsoError {
    SsoError::Refused(reason.into())
}

/// A verified hand-off: which partner, and the user claim's value.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub partner: SsoPartner,
    pub user: String,
    pub email: Option<String>,
}

#[derive(Deserialize)]
/// Claims checked here beyond what jsonwebtoken checks (`exp` there).
struct Registered {
    iat: u64,
    jti: String,
}

pub(crate) struct Sso {
    /// Swapped whole on reload (SIGHUP).
    partners: ArcSwap<Vec<SsoPartner>>,
    replay: Arc<dyn ReplayStore>,
}

impl Sso {
    pub(crate) fn new(partners: Vec<SsoPartner>, replay: Arc<dyn ReplayStore>) -> Self {
        Self {
            partners: ArcSwap::from_pointee(partners),
            replay,
        }
    }

    /// Replaces the partner list (SIGHUP reload).
    pub(crate) fn set_partners(&self, partners: Vec<SsoPartner>) {
        self.partners.store(Arc::new(partners));
    }

    /// The configured partner that vouches on its own for `user_id`: an id
    /// namespaced `partner:user` by a partner with `require_known_user =
    /// false`. Such users are not in the credential backend, so the
    /// re-check asks whether that partner is still configured instead.
    pub(crate) fn vouching_partner(&self, user_id: &str) -> Option<String> {
        let (name, _) = user_id.split_once(':')?;
        self.partners
            .load()
            .iter()
            .find(|p| p.name == name && !p.require_known_user)
            .map(|p| p.name.clone())
    }

    /// Verifies a hand-off token and spends it.
    pub(crate) async fn verify(&self, token: &str) -> Result<Handoff, SsoError> {
        jwt::precheck(token).map_err(|e| refused(e.to_string()))?;
        let issuer = unverified_issuer(token).ok_or_else(|| refused("no iss claim"))?;
        let partner = self
            .partners
            .load()
            .iter()
            .find(|p| p.issuer == issuer)
            .cloned()
            .ok_or_else(|| refused("unknown issuer"))?;
        let skew = partner.clock_skew.as_secs();
        let mut validation = jwt::strict_validation(
            &partner.algorithms,
            &partner.issuer,
            &partner.audience,
            skew,
        );
        validation.set_required_spec_claims(&["exp", "iss", "aud", "iat"]);
        let claims: Map<String, Value> =
            jwt::verify(token, &partner.key, &validation).map_err(|e| refused(e.to_string()))?;
        if claims.get("typ").is_some_and(|t| t != SSO_TYPE) {
            return Err(refused("typ is not sso"));
        }
        let registered: Registered = serde_json::from_value(Value::Object(claims.clone()))
            .map_err(|_| refused("iat and jti (a string) are required"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if registered.iat > now + skew {
            return Err(refused("issued in the future"));
        }
        if now.saturating_sub(registered.iat) > partner.max_age.as_secs() + skew {
            return Err(refused("older than max_age"));
        }
        if registered.jti.is_empty() || registered.jti.len() > 256 {
            return Err(refused("bad jti"));
        }
        let user = claims
            .get(&partner.user_claim)
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| refused(format!("no {} claim", partner.user_claim)))?
            .to_string();
        // Remember the jti as long as the token could still pass the age
        // check (never from the token's own `exp`, which it controls).
        let keep_until =
            SystemTime::now() + partner.max_age + partner.clock_skew * 2 + Duration::from_secs(1);
        if !self
            .replay
            .first_use(&partner.issuer, &registered.jti, keep_until)
            .await?
        {
            return Err(refused("token already used"));
        }
        Ok(Handoff {
            partner,
            user,
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

/// The `iss` claim read without verification, only to pick the partner
/// whose key then verifies the token.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// Mints a hand-off token with an HS* partner's secret (`sso-token`), or
/// with a private key PEM for public-key partners.
pub fn mint(
    partner: &SsoPartner,
    user: &str,
    private_key_pem: Option<&[u8]>,
) -> Result<String, String> {
    use jsonwebtoken::{AlgorithmFamily, EncodingKey, Header};
    let algorithm = partner.algorithms[0];
    let key = match (algorithm.family(), private_key_pem, &partner.secret) {
        (AlgorithmFamily::Hmac, _, Some(secret)) => EncodingKey::from_secret(secret),
        (AlgorithmFamily::Rsa, Some(pem), _) => EncodingKey::from_rsa_pem(pem).map_err(|e| e.to_string())?,
        (AlgorithmFamily::Ec, Some(pem), _) => EncodingKey::from_ec_pem(pem).map_err(|e| e.to_string())?,
        (AlgorithmFamily::Ed, Some(pem), _) => EncodingKey::from_ed_pem(pem).map_err(|e| e.to_string())?,
        _ => {
            return Err(format!(
                "partner {:?} verifies with a public key: pass the partner's private key with --private-key PATH",
                partner.name
            ))
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let jti: [u8; 16] = rand::random();
    let claims = serde_json::json!({
        "iss": partner.issuer,
        "aud": partner.audience,
        "iat": now,
        "exp": now + partner.max_age.as_secs(),
        "jti": URL_SAFE_NO_PAD.encode(jti),
        "typ": SSO_TYPE,
        partner.user_claim.clone(): user,
    });
    jsonwebtoken::encode(&Header::new(algorithm), &claims, &key).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryReplayStore;

    const SECRET: &[u8] = b"partner-secret-of-at-least-32-bytes!";

    fn partner() -> SsoPartner {
        SsoPartner {
            name: "partner-a".into(),
            issuer: "https://partner-a.example".into(),
            audience: "growbal".into(),
            algorithms: vec![jsonwebtoken::Algorithm::HS256],
            key: jsonwebtoken::DecodingKey::from_secret(SECRET),
            secret: Some(SECRET.to_vec()),
            max_age: Duration::from_secs(120),
            clock_skew: Duration::from_secs(30),
            user_claim: "email".into(),
            require_known_user: true,
            require_mfa: false,
        }
    }

    fn sso() -> Sso {
        Sso::new(vec![partner()], Arc::new(MemoryReplayStore::default()))
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn sign(claims: &Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn claims() -> Value {
        serde_json::json!({
            "iss": "https://partner-a.example", "aud": "growbal", "iat": now(), "exp": now() + 60,
            "jti": "j-1", "email": "demo@example.com"
        })
    }

    #[tokio::test]
    async fn minted_token_verifies_once() {
        let sso = sso();
        let token = mint(&partner(), "demo@example.com", None).unwrap();
        let handoff = sso.verify(&token).await.unwrap();
        assert_eq!(handoff.user, "demo@example.com");
        assert!(
            matches!(sso.verify(&token).await, Err(SsoError::Refused(_))),
            "single use"
        );
    }

    #[tokio::test]
    async fn stale_unknown_and_incomplete_tokens_are_refused() {
        let sso = sso();
        let mut old = claims();
        old["iat"] = serde_json::json!(now() - 600);
        let mut other = claims();
        other["iss"] = serde_json::json!("https://evil.example");
        let mut no_jti = claims();
        no_jti.as_object_mut().unwrap().remove("jti");
        let mut no_iat = claims();
        no_iat.as_object_mut().unwrap().remove("iat");
        let mut access = claims();
        access["typ"] = serde_json::json!("access");
        let mut no_user = claims();
        no_user.as_object_mut().unwrap().remove("email");
        for (name, c) in [
            ("old", old),
            ("issuer", other),
            ("jti", no_jti),
            ("iat", no_iat),
            ("typ", access),
            ("user", no_user),
        ] {
            assert!(sso.verify(&sign(&c)).await.is_err(), "{name}");
        }
    }

    #[tokio::test]
    async fn replay_is_keyed_on_issuer_and_jti() {
        let sso = sso();
        assert!(sso.verify(&sign(&claims())).await.is_ok());
        let mut same_jti = claims();
        same_jti["iat"] = serde_json::json!(now() - 1);
        assert!(sso.verify(&sign(&same_jti)).await.is_err());
    }
}
