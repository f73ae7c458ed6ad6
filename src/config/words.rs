//! The closed sets of words `proxy.toml` takes where the resolved config has
//! no type of its own (the rest, such as `session.store`, deserialize into
//! their `Config` types directly).

use serde::{Deserialize, Deserializer};

use super::SameSite;

/// `credentials.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CredentialsBackend {
    File,
    Mysql,
}

/// `tokens.algorithm`: HMAC only, signed with `tokens.secret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum TokenAlgorithm {
    HS256,
    HS384,
    HS512,
}

impl From<TokenAlgorithm> for jsonwebtoken::Algorithm {
    fn from(a: TokenAlgorithm) -> Self {
        match a {
            TokenAlgorithm::HS256 => Self::HS256,
            TokenAlgorithm::HS384 => Self::HS384,
            TokenAlgorithm::HS512 => Self::HS512,
        }
    }
}

/// `upstream.assertion.algorithm`: the ones an app's JWT library is sure to
/// verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(crate) enum AssertionAlgorithm {
    EdDSA,
    HS256,
    RS256,
    ES256,
}

impl From<AssertionAlgorithm> for jsonwebtoken::Algorithm {
    fn from(a: AssertionAlgorithm) -> Self {
        match a {
            AssertionAlgorithm::EdDSA => Self::EdDSA,
            AssertionAlgorithm::HS256 => Self::HS256,
            AssertionAlgorithm::RS256 => Self::RS256,
            AssertionAlgorithm::ES256 => Self::ES256,
        }
    }
}

/// Any case, as browsers accept it; `none` is refused by name.
impl<'de> Deserialize<'de> for SameSite {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "lax" => Ok(SameSite::Lax),
            "strict" => Ok(SameSite::Strict),
            other => Err(serde::de::Error::custom(format!(
                "must be \"lax\" or \"strict\", not {other:?} (\"none\" would send the session cookie cross-site)"
            ))),
        }
    }
}
