//! The tokens of mailed links (password reset, address verification):
//! what a link is for, whom it is for, and the store that spends each once.

use std::time::SystemTime;

use async_trait::async_trait;

use super::{StoreError, TokenHash};

/// What a mailed link is for; a token is spent only by its own page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkPurpose {
    /// `{prefix}/reset/confirm`: sets a new password.
    Reset,
    /// `{prefix}/verify-email`: activates a new account.
    Verify,
}

impl LinkPurpose {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Reset => "reset",
            LinkPurpose::Verify => "verify",
        }
    }
}

/// The account a mailed link was made for. The link's token is 32 random
/// bytes; only its SHA-256 ([`TokenHash`]) is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountToken {
    pub(crate) user_id: String,
    pub(crate) username: String,
    /// The address the link was mailed to.
    pub(crate) email: String,
    pub(crate) expires_at: SystemTime,
}

/// Single-use, expiring tokens of mailed links (password reset, address
/// verification), keyed on their SHA-256.
#[async_trait]
pub trait AccountTokenStore: Send + Sync {
    /// Stores a new token. Expired ones are never returned, and are
    /// deleted by the store's own sweep.
    async fn insert(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
        token: &AccountToken,
    ) -> Result<(), StoreError>;
    /// The token if it is live (not spent, not expired), without spending
    /// it: the page behind a link says at once when the link is dead.
    async fn find(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
    ) -> Result<Option<AccountToken>, StoreError>;
    /// Spends a live token: of concurrent callers exactly one gets it.
    /// Every other token of the same purpose for that user goes too (a
    /// password reset ends the links mailed before it).
    async fn spend(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
    ) -> Result<Option<AccountToken>, StoreError>;
}
