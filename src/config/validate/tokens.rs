//! `[tokens]`: bearer tokens for API clients.

use super::values::nonzero;
use crate::config::raw;
use crate::config::{ConfigErrors, TokensConfig};

pub(super) fn tokens(raw: raw::RawTokens, e: &mut ConfigErrors) -> TokensConfig {
    let secret = (!raw.secret.is_empty()).then(|| raw.secret.into_bytes());
    if secret.as_ref().is_some_and(|s| s.len() < 32) {
        e.push(
            "tokens.secret",
            "must be at least 32 bytes (e.g. `openssl rand -base64 48`)",
        );
    }
    TokensConfig {
        access_ttl: nonzero(e, "tokens.access_ttl", raw.access_ttl),
        refresh_ttl: nonzero(e, "tokens.refresh_ttl", raw.refresh_ttl),
        algorithm: raw.algorithm.into(),
        secret,
    }
}
