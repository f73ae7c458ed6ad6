//! Bearer tokens for API clients: short-lived signed access tokens (JWT,
//! `typ` "access") and opaque refresh tokens stored as SHA-256, rotated on
//! every use, with reuse detection per family (a spent token presented again
//! revokes the family, except within [`REUSE_GRACE`] of its first use, so two
//! tabs refreshing at once both succeed).
//!
//! Every access token names its refresh family (`sid`). Revoking a family
//! (logout, `sessions revoke`, a replay, the user turning inactive) makes
//! every instance refuse its access tokens at once, from an in-memory set the
//! refresh store keeps current (see `store::revoked`), not only at `exp`.
//!
//! Within the grace, a spent token is answered with the very pair its first
//! use got, never a new one. That pair is kept server-side for the grace
//! only, sealed (AES-256-GCM) under a key derived from the spent refresh
//! token itself, which the server never stores: a copy of the database
//! alone opens nothing.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use hmac::{Hmac, Mac};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::jwt;
use super::session::{hash_token, new_token};
use crate::config::TokensConfig;
use crate::store::{
    Identity, RefreshRecord, RefreshStore, Spend, StoreError, TokenHash, REUSE_GRACE,
};

/// `iss` and `aud` of access tokens: portcullis issues them for itself.
const ISSUER: &str = "portcullis";
const AUDIENCE: &str = "portcullis";
const ACCESS_TYPE: &str = "access";
/// Clock skew allowed when checking our own tokens.
const LEEWAY_SECS: u64 = 5;
/// Extra time a revoked family is remembered beyond the access-token
/// lifetime and leeway, for clocks that differ between instances.
const CLOCK_MARGIN: Duration = Duration::from_secs(60);
/// Longest a use inside the grace waits for the concurrent first use to
/// store its pair; then 503, and the client retries.
const SUCCESSOR_WAIT: Duration = Duration::from_secs(5);
/// Label of the key that seals a successor pair (HMAC-SHA256 keyed by the
/// spent refresh token), distinct from the token's lookup hash.
const SUCCESSOR_LABEL: &[u8] = b"portcullis refresh successor v1";

/// How long a revoked family must be remembered: no access token of it can
/// verify after this (lifetime, leeway, and a margin for clock differences).
pub(crate) fn revocation_window(config: &TokensConfig) -> Duration {
    config.access_ttl + Duration::from_secs(LEEWAY_SECS) + CLOCK_MARGIN
}

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
    /// Refresh family, so a revocation can name what to refuse.
    sid: String,
    name: String,
    email: String,
    roles: Vec<String>,
}

/// What a client receives from a JSON login or a refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// The sealed form of an [`IssuedTokens`].
#[derive(Serialize, Deserialize)]
struct SealedPair {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

/// A verified access token.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub identity: Identity,
    pub expires_at: SystemTime,
    /// When it was minted, which is when its identity was read.
    pub issued_at: SystemTime,
    pub family: String,
}

/// A refresh token spent by its first use: rotate it, then
/// [`Tokens::rotated`] (or [`Tokens::unspend`] when the rotation failed).
#[derive(Debug)]
pub(crate) struct Rotation {
    pub hash: TokenHash,
    pub record: RefreshRecord,
    successor_key: [u8; 32],
}

/// What presenting a refresh token allows.
#[derive(Debug)]
pub(crate) enum Spent {
    /// Its first use: mint a successor pair.
    Fresh(Rotation),
    /// A use within the grace: the pair the first use was answered with.
    Again {
        record: RefreshRecord,
        issued: IssuedTokens,
    },
}

/// Why a refresh was refused (all answer `invalid_grant`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefreshRefusal {
    Unknown,
    Expired,
    /// A spent token replayed after the grace period: its family is revoked.
    Reused,
}

pub(crate) struct Tokens {
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

fn successor_key(refresh_token: &str) -> [u8; 32] {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(refresh_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(SUCCESSOR_LABEL);
    mac.finalize().into_bytes().into()
}

/// `nonce || ciphertext || tag`, bound to the spent token's row by `aad`.
fn seal(key: &[u8; 32], aad: &TokenHash, pair: &IssuedTokens) -> Option<Vec<u8>> {
    let key = RandomizedNonceKey::new(&AES_256_GCM, key).ok()?;
    let mut data = serde_json::to_vec(&SealedPair {
        access_token: pair.access_token.clone(),
        refresh_token: pair.refresh_token.clone(),
        expires_in: pair.expires_in,
    })
    .ok()?;
    let nonce = key
        .seal_in_place_append_tag(Aad::from(&aad.0[..]), &mut data)
        .ok()?;
    let mut sealed = nonce.as_ref().to_vec();
    sealed.extend_from_slice(&data);
    Some(sealed)
}

fn open(key: &[u8; 32], aad: &TokenHash, sealed: &[u8]) -> Option<IssuedTokens> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let key = RandomizedNonceKey::new(&AES_256_GCM, key).ok()?;
    let (nonce, data) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut data = data.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(&aad.0[..]), &mut data)
        .ok()?;
    let pair: SealedPair = serde_json::from_slice(plain).ok()?;
    Some(IssuedTokens {
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        token_type: "Bearer",
        expires_in: pair.expires_in,
    })
}

impl Tokens {
    pub(crate) fn new(config: TokensConfig, store: Arc<dyn RefreshStore>) -> Self {
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
    pub(crate) fn has_key(&self) -> bool {
        self.key.get().is_some()
    }

    /// Supplies the signing key when `tokens.secret` is not set.
    pub(crate) fn set_key(&self, key: &[u8]) {
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
    pub(crate) async fn issue(
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

    /// Whether bearer tokens can be checked yet: the shared key is loaded
    /// and the revoked families are known.
    pub(crate) fn ready(&self) -> bool {
        self.key.get().is_some() && self.store.revocations_current()
    }

    /// Why [`Tokens::ready`] is false, for the 503's log line.
    pub(crate) fn not_ready_reason(&self) -> &'static str {
        if self.key.get().is_none() {
            "shared token key not loaded yet"
        } else {
            "revoked refresh families not loaded (revocation listener down)"
        }
    }

    /// Verifies a bearer access token; `None` for anything else (expired,
    /// forged, another kind of token, oversized, of a revoked family, ...).
    pub(crate) fn verify_access(&self, token: &str) -> Option<AccessToken> {
        let key = self.key.get()?;
        let claims: AccessClaims =
            jwt::verify(token, &DecodingKey::from_secret(key), &self.validation).ok()?;
        if claims.typ != ACCESS_TYPE || self.store.family_revoked(&claims.sid) {
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
            issued_at: UNIX_EPOCH + Duration::from_secs(claims.iat),
            family: claims.sid,
        })
    }

    /// Spends a refresh token. Its first use may be rotated; a use within
    /// the grace gets the pair the first use was answered with (waiting up
    /// to [`SUCCESSOR_WAIT`] for a concurrent first use to finish); a replay
    /// after the grace revokes the family.
    pub(crate) async fn spend(
        &self,
        refresh_token: &str,
    ) -> Result<Result<Spent, RefreshRefusal>, StoreError> {
        if refresh_token.is_empty() || refresh_token.len() > 128 {
            return Ok(Err(RefreshRefusal::Unknown));
        }
        let hash = hash_token(refresh_token);
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let (record, successor) = match self.store.spend(&hash, REUSE_GRACE).await? {
                Spend::Unknown => return Ok(Err(RefreshRefusal::Unknown)),
                Spend::Reused { family } => {
                    self.store.revoke_family(&family).await?;
                    return Ok(Err(RefreshRefusal::Reused));
                }
                Spend::Fresh(record) => {
                    if record.expires_at <= SystemTime::now() {
                        return Ok(Err(RefreshRefusal::Expired));
                    }
                    return Ok(Ok(Spent::Fresh(Rotation {
                        hash,
                        record,
                        successor_key: successor_key(refresh_token),
                    })));
                }
                Spend::InGrace { record, successor } => (record, successor),
            };
            if let Some(sealed) = successor {
                // Only the holder of the spent token can open it; anything
                // else is refused like an unknown token.
                return Ok(match open(&successor_key(refresh_token), &hash, &sealed) {
                    Some(issued) => Ok(Spent::Again { record, issued }),
                    None => Err(RefreshRefusal::Unknown),
                });
            }
            if started.elapsed() >= SUCCESSOR_WAIT {
                return Err(StoreError::Unavailable {
                    backend: "tokens",
                    message: "a concurrent refresh of this token has not finished".into(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Keeps the pair a rotation was answered with for the rest of the
    /// grace, so a concurrent use gets the same. Failure only logs: the
    /// concurrent use then gets a 503 and retries.
    pub(crate) async fn rotated(&self, rotation: &Rotation, issued: &IssuedTokens) {
        let Some(sealed) = seal(&rotation.successor_key, &rotation.hash, issued) else {
            tracing::warn!("could not seal a successor pair; a concurrent refresh will be retried");
            return;
        };
        if let Err(e) = self.store.set_successor(&rotation.hash, &sealed).await {
            tracing::warn!(error = %e, "could not keep a successor pair; a concurrent refresh will be retried");
        }
    }

    /// Gives a freshly spent token back (its rotation failed on the way).
    pub(crate) async fn unspend(&self, rotation: &Rotation) {
        if let Err(e) = self.store.unspend(&rotation.hash).await {
            tracing::warn!(error = %e, "could not restore a refresh token after a failed rotation");
        }
    }

    /// Revokes a family: its refresh tokens are deleted and its access
    /// tokens refused by every instance.
    pub(crate) async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        self.store.revoke_family(family).await
    }

    /// Revokes every family of a username (`sessions revoke --user`, a
    /// password change or reset); returns how many families.
    pub(crate) async fn revoke_username(&self, username: &str) -> Result<u64, StoreError> {
        self.store.revoke_username(username).await
    }
}

#[cfg(test)]
mod tests;
