//! Revocation across instances: a deleted session is dropped from this
//! instance's cache and announced with `NOTIFY portcullis_sessions` (its
//! hash in hex, or `*` for "drop everything"); every instance's listener
//! (see `listener`) drops it from its own cache.

use async_trait::async_trait;
use tokio_postgres::Client;

use super::PgSessionStore;
use crate::store::postgres::listener::Subscriber;
use crate::store::postgres::{db_error, unavailable, Pg, DB_TIMEOUT};
use crate::store::{StoreError, TokenHash};

/// The NOTIFY channel revocations travel on. The payload is a token hash in
/// hex, or `*` for "drop everything".
const CHANNEL: &str = "portcullis_sessions";

impl PgSessionStore {
    /// Drops every cached session (after possibly missed notices).
    pub(super) fn forget_everything(&self) {
        self.cache.forget_everything();
    }

    pub(super) async fn notify(
        &self,
        client: &deadpool_postgres::Object,
        payload: &str,
    ) -> Result<(), StoreError> {
        client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// After sessions were deleted: forget them here and tell every other
    /// instance. The deletion stands whatever happens to the notice; a lost
    /// notice is bounded by the other instances' `cache_ttl`.
    pub(super) async fn revoked(&self, client: &deadpool_postgres::Object, hashes: &[TokenHash]) {
        self.cache.forget(hashes).await;
        for hash in hashes {
            if let Err(e) = self.notify(client, &notice_of(hash)).await {
                tracing::warn!(error = %e, "revocation notice not sent; other instances drop the session within session.cache_ttl");
                break;
            }
        }
    }
}

/// The NOTIFY payload naming one revoked session.
fn notice_of(hash: &TokenHash) -> String {
    hex::encode(hash.0)
}

/// The session a NOTIFY payload names; `None` for `*` or anything else.
fn hash_of_notice(payload: &str) -> Option<TokenHash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(payload, &mut out).ok()?;
    Some(TokenHash(out))
}

#[async_trait]
impl Subscriber for PgSessionStore {
    const CHANNEL: &'static str = CHANNEL;
    const NAME: &'static str = "session revocation listener";
    const WHILE_DOWN: &'static str =
        "sessions revoked elsewhere are dropped here within session.cache_ttl";

    fn pg(&self) -> &Pg {
        &self.pg
    }

    /// Notices sent while nobody listened are lost: start clean.
    async fn connected(&self, _client: &Client) -> Result<(), StoreError> {
        self.forget_everything();
        Ok(())
    }

    async fn notice(&self, _client: &Client, payload: &str) -> Result<(), StoreError> {
        if payload == "*" {
            self.cache.forget_everything();
        } else if let Some(hash) = hash_of_notice(payload) {
            self.cache.forget(&[hash]).await;
        }
        Ok(())
    }

    async fn heartbeat(&self, client: &Client) -> Result<(), StoreError> {
        tokio::time::timeout(DB_TIMEOUT, client.simple_query("SELECT 1"))
            .await
            .map_err(|_| unavailable("listener heartbeat timed out"))?
            .map_err(db_error)?;
        Ok(())
    }

    fn lost(&self) {
        self.forget_everything();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_payload_round_trips() {
        let hash = TokenHash([0xab; 32]);
        assert_eq!(hash_of_notice(&notice_of(&hash)), Some(hash));
        assert_eq!(hash_of_notice("*"), None);
        assert_eq!(hash_of_notice(&"zz".repeat(32)), None);
    }
}
