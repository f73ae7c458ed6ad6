//! Tokens of mailed links (password reset, address verification) in
//! process memory: a single instance, gone at restart (a link mailed before
//! a restart no longer works; the user asks for another).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::store::{AccountToken, AccountTokenStore, LinkPurpose, StoreError, TokenHash};

#[derive(Default)]
pub(crate) struct MemoryAccountTokens {
    tokens: Mutex<HashMap<(TokenHash, LinkPurpose), AccountToken>>,
}

impl MemoryAccountTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TokenHash, LinkPurpose), AccountToken>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl AccountTokenStore for MemoryAccountTokens {
    async fn insert(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
        token: &AccountToken,
    ) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let mut tokens = self.lock();
        tokens.retain(|_, t| t.expires_at > now);
        tokens.insert((*token_hash, purpose), token.clone());
        Ok(())
    }

    async fn find(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
    ) -> Result<Option<AccountToken>, StoreError> {
        let now = SystemTime::now();
        Ok(self
            .lock()
            .get(&(*token_hash, purpose))
            .filter(|t| t.expires_at > now)
            .cloned())
    }

    async fn spend(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
    ) -> Result<Option<AccountToken>, StoreError> {
        let now = SystemTime::now();
        let mut tokens = self.lock();
        let Some(token) = tokens
            .remove(&(*token_hash, purpose))
            .filter(|t| t.expires_at > now)
        else {
            return Ok(None);
        };
        tokens.retain(|(_, p), t| !(*p == purpose && t.user_id == token.user_id));
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn token(user_id: &str, ttl: Duration) -> AccountToken {
        AccountToken {
            user_id: user_id.into(),
            username: format!("user{user_id}"),
            email: format!("user{user_id}@example.com"),
            expires_at: SystemTime::now() + ttl,
        }
    }

    #[tokio::test]
    async fn a_token_is_spent_once_and_only_for_its_purpose() {
        let store = MemoryAccountTokens::default();
        let hash = TokenHash([1; 32]);
        let hour = Duration::from_secs(3600);
        store
            .insert(&hash, LinkPurpose::Reset, &token("7", hour))
            .await
            .unwrap();
        assert!(store
            .spend(&hash, LinkPurpose::Verify)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .find(&hash, LinkPurpose::Reset)
            .await
            .unwrap()
            .is_some());
        let spent = store.spend(&hash, LinkPurpose::Reset).await.unwrap();
        assert_eq!(spent.unwrap().user_id, "7");
        assert!(store
            .spend(&hash, LinkPurpose::Reset)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn spending_one_link_ends_the_users_other_links_of_that_purpose() {
        let store = MemoryAccountTokens::default();
        let hour = Duration::from_secs(3600);
        let (a, b, c) = (TokenHash([1; 32]), TokenHash([2; 32]), TokenHash([3; 32]));
        store
            .insert(&a, LinkPurpose::Reset, &token("7", hour))
            .await
            .unwrap();
        store
            .insert(&b, LinkPurpose::Reset, &token("7", hour))
            .await
            .unwrap();
        store
            .insert(&c, LinkPurpose::Reset, &token("8", hour))
            .await
            .unwrap();
        store.spend(&a, LinkPurpose::Reset).await.unwrap().unwrap();
        assert!(store.find(&b, LinkPurpose::Reset).await.unwrap().is_none());
        assert!(store.find(&c, LinkPurpose::Reset).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_expired_token_is_dead() {
        let store = MemoryAccountTokens::default();
        let hash = TokenHash([1; 32]);
        let mut expired = token("7", Duration::ZERO);
        expired.expires_at = SystemTime::now() - Duration::from_secs(1);
        store
            .insert(&hash, LinkPurpose::Reset, &expired)
            .await
            .unwrap();
        assert!(store
            .find(&hash, LinkPurpose::Reset)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .spend(&hash, LinkPurpose::Reset)
            .await
            .unwrap()
            .is_none());
    }
}
