//! Bearer tokens for API clients: short-lived signed access tokens (JWT,
//! `typ` "access") and opaque refresh tokens stored as SHA-256, rotated on
//! every use, with reuse detection per family (a spent token presented again
//! revokes the family, except within [`REUSE_GRACE`] of its first use, so two
//! tabs refreshing at once both succeed).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::jwt;
use super::session::{hash_token, new_token};
use crate::config::TokensConfig;
use crate::store::{Identity, RefreshRecord, RefreshStore, Spend, StoreError, TokenHash};

/// `iss` and `aud` of access tokens: portcullis issues them for itself.
const ISSUER: &str = "portcullis";
const AUDIENCE: &str = "portcullis";
const ACCESS_TYPE: &str = "access";
/// A spent refresh token presented again within this long of its first use
/// is honoured (concurrent refreshes), after that it revokes its family.
pub const REUSE_GRACE: Duration = Duration::from_secs(10);
/// Clock skew allowed when checking our own tokens.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    aud: String,
    sub: String,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: String,
    typ: String,
    /// Refresh family, so logout can name what to revoke.
    sid: String,
    name: String,
    email: String,
    roles: Vec<String>,
}

/// What a client receives from a JSON login or a refresh.
#[derive(Debug, Serialize)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// A verified access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub identity: Identity,
    pub expires_at: SystemTime,
    pub family: String,
}

/// A refresh token that may be rotated.
#[derive(Debug)]
pub struct Spent {
    pub hash: TokenHash,
    pub record: RefreshRecord,
    pub first_use: bool,
}

/// Why a refresh was refused (all answer `invalid_grant`).
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshRefusal {
    Unknown,
    Expired,
    /// A spent token replayed after the grace period: its family is revoked.
    Reused,
}

pub struct Tokens {
    config: TokensConfig,
    /// The signing key: `tokens.secret`, or set once at start (random, or
    /// shared through PostgreSQL).
    key: OnceLock<Vec<u8>>,
    validation: Validation,
    store: Arc<dyn RefreshStore>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Tokens {
    pub fn new(config: TokensConfig, store: Arc<dyn RefreshStore>) -> Self {
        let key = OnceLock::new();
        if let Some(secret) = &config.secret {
            let _ = key.set(secret.clone());
        }
        let validation = jwt::strict_validation(&[config.algorithm], ISSUER, AUDIENCE, LEEWAY_SECS);
        Self {
            config,
            key,
            validation,
            store,
        }
    }

    /// Whether `tokens.secret` is configured (else a key must be supplied).
    pub fn has_key(&self) -> bool {
        self.key.get().is_some()
    }

    /// Supplies the signing key when `tokens.secret` is not set.
    pub fn set_key(&self, key: &[u8]) {
        let _ = self.key.set(key.to_vec());
    }

    fn key(&self) -> Result<&[u8], StoreError> {
        self.key
            .get()
            .map(Vec::as_slice)
            .ok_or(StoreError::Unavailable {
                backend: "postgres",
                message: "shared token key not loaded yet".into(),
            })
    }

    /// Mints an access token and a new refresh token for `identity`, in
    /// `family` (a new family for a login). `None` when the family was
    /// revoked meanwhile.
    pub async fn issue(
        &self,
        identity: &Identity,
        family: Option<String>,
    ) -> Result<Option<IssuedTokens>, StoreError> {
        let key = self.key()?.to_vec();
        let family = family.unwrap_or_else(new_token);
        let refresh_token = new_token();
        let now = SystemTime::now();
        let stored = self
            .store
            .insert(
                &hash_token(&refresh_token),
                &RefreshRecord {
                    family: family.clone(),
                    identity: identity.clone(),
                    expires_at: now + self.config.refresh_ttl,
                },
            )
            .await?;
        if !stored {
            return Ok(None);
        }
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: identity.id.clone(),
            exp: unix(now + self.config.access_ttl),
            iat: unix(now),
            nbf: unix(now),
            jti: new_token(),
            typ: ACCESS_TYPE.into(),
            sid: family,
            name: identity.username.clone(),
            email: identity.email.clone(),
            roles: identity.roles.clone(),
        };
        let header = Header::new(self.config.algorithm);
        let access_token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&key))
            .map_err(|e| StoreError::Unavailable {
                backend: "tokens",
                message: e.to_string(),
            })?;
        Ok(Some(IssuedTokens {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.config.access_ttl.as_secs(),
        }))
    }

    /// Whether bearer tokens can be checked yet (the shared key is loaded).
    pub fn ready(&self) -> bool {
        self.key.get().is_some()
    }

    /// Verifies a bearer access token; `None` for anything else (expired,
    /// forged, another kind of token, oversized, ...).
    pub fn verify_access(&self, token: &str) -> Option<AccessToken> {
        let key = self.key.get()?;
        let claims: AccessClaims =
            jwt::verify(token, &DecodingKey::from_secret(key), &self.validation).ok()?;
        if claims.typ != ACCESS_TYPE {
            return None;
        }
        Some(AccessToken {
            identity: Identity {
                id: claims.sub,
                username: claims.name,
                email: claims.email,
                roles: claims.roles,
            },
            expires_at: UNIX_EPOCH + Duration::from_secs(claims.exp),
            family: claims.sid,
        })
    }

    /// Spends a refresh token; returns it (hash, record, whether this was
    /// its first use) when it may be rotated. A replay after the grace
    /// period revokes the family.
    pub async fn spend(
        &self,
        refresh_token: &str,
    ) -> Result<Result<Spent, RefreshRefusal>, StoreError> {
        if refresh_token.is_empty() || refresh_token.len() > 128 {
            return Ok(Err(RefreshRefusal::Unknown));
        }
        let hash = hash_token(refresh_token);
        let (record, first_use) = match self.store.spend(&hash, REUSE_GRACE).await? {
            Spend::Unknown => return Ok(Err(RefreshRefusal::Unknown)),
            Spend::Reused { family } => {
                self.store.revoke_family(&family).await?;
                return Ok(Err(RefreshRefusal::Reused));
            }
            Spend::Fresh(record) => (record, true),
            Spend::InGrace(record) => (record, false),
        };
        if record.expires_at <= SystemTime::now() {
            return Ok(Err(RefreshRefusal::Expired));
        }
        Ok(Ok(Spent {
            hash,
            record,
            first_use,
        }))
    }

    /// Gives a freshly spent token back (its rotation failed on the way).
    pub async fn unspend(&self, spent: &Spent) {
        if spent.first_use {
            if let Err(e) = self.store.unspend(&spent.hash).await {
                tracing::warn!(error = %e, "could not restore a refresh token after a failed rotation");
            }
        }
    }

    pub async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        self.store.revoke_family(family).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryRefreshStore;

    fn tokens() -> Tokens {
        let config = TokensConfig {
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(3600),
            algorithm: jsonwebtoken::Algorithm::HS256,
            secret: Some(b"0123456789abcdef0123456789abcdef".to_vec()),
        };
        Tokens::new(config, Arc::new(MemoryRefreshStore::default()))
    }

    fn demo() -> Identity {
        Identity {
            id: "1".into(),
            username: "demo".into(),
            email: "demo@example.com".into(),
            roles: vec!["patient".into()],
        }
    }

    #[tokio::test]
    async fn issued_access_token_verifies_as_its_user() {
        let t = tokens();
        let issued = t.issue(&demo(), None).await.unwrap().unwrap();
        let access = t.verify_access(&issued.access_token).unwrap();
        assert_eq!(access.identity, demo());
        assert_eq!(issued.token_type, "Bearer");
        assert_eq!(issued.expires_in, 60);
    }

    #[tokio::test]
    async fn a_refresh_token_is_not_an_access_token() {
        let t = tokens();
        let issued = t.issue(&demo(), None).await.unwrap().unwrap();
        assert!(t.verify_access(&issued.refresh_token).is_none());
    }

    #[tokio::test]
    async fn a_token_of_another_type_is_refused() {
        let t = tokens();
        let now = unix(SystemTime::now());
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "1", "exp": now + 60, "iat": now, "nbf": now,
            "jti": "x", "typ": "refresh", "sid": "f", "name": "demo", "email": "", "roles": []
        });
        let forged = jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(t.verify_access(&forged).is_none());
    }

    #[tokio::test]
    async fn spent_refresh_token_within_grace_is_honoured_then_reuse_revokes_family() {
        let t = tokens();
        let issued = t.issue(&demo(), None).await.unwrap().unwrap();
        let first = t.spend(&issued.refresh_token).await.unwrap().unwrap();
        assert!(first.first_use);
        let again = t.spend(&issued.refresh_token).await.unwrap().unwrap();
        assert!(!again.first_use, "second use inside the grace period");
        let next = t
            .issue(&demo(), Some(first.record.family.clone()))
            .await
            .unwrap()
            .unwrap();
        // With no grace at all, the next use is a replay: the family goes.
        let hash = hash_token(&issued.refresh_token);
        assert!(matches!(
            t.store.spend(&hash, Duration::ZERO).await.unwrap(),
            Spend::Reused { .. }
        ));
        t.store.revoke_family(&first.record.family).await.unwrap();
        assert_eq!(
            t.spend(&next.refresh_token).await.unwrap().unwrap_err(),
            RefreshRefusal::Unknown
        );
        assert!(
            t.issue(&demo(), Some(first.record.family.clone()))
                .await
                .unwrap()
                .is_none(),
            "a revoked family takes no new tokens"
        );
    }

    #[tokio::test]
    async fn an_unspent_token_can_be_used_again() {
        let t = tokens();
        let issued = t.issue(&demo(), None).await.unwrap().unwrap();
        let spent = t.spend(&issued.refresh_token).await.unwrap().unwrap();
        t.unspend(&spent).await;
        assert!(
            t.spend(&issued.refresh_token)
                .await
                .unwrap()
                .unwrap()
                .first_use
        );
    }
}
