//! Tokens of mailed links (password reset, address verification) in
//! PostgreSQL (`account_tokens`), so a link mailed by one instance works on
//! any, and is spent once for all of them.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::Pg;
use crate::store::{AccountToken, AccountTokenStore, LinkPurpose, StoreError, TokenHash};

pub(crate) struct PgAccountTokens {
    pg: Arc<Pg>,
}

impl PgAccountTokens {
    pub(crate) fn new(pg: Arc<Pg>) -> Self {
        Self { pg }
    }

    /// Runs one statement under the store's deadline; returns its rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.pg.query("account_tokens", sql, params).await
    }
}

fn token_of(row: &tokio_postgres::Row) -> AccountToken {
    AccountToken {
        user_id: row.get(0),
        username: row.get(1),
        email: row.get(2),
        expires_at: row.get::<_, SystemTime>(3),
    }
}

#[async_trait]
impl AccountTokenStore for PgAccountTokens {
    async fn insert(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
        token: &AccountToken,
    ) -> Result<(), StoreError> {
        // Expired rows go with the periodic sweep (`sweep.rs`).
        self.query(
            "INSERT INTO account_tokens (token_hash, purpose, user_id, username, email, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &&token_hash.0[..],
                &purpose.as_str(),
                &token.user_id,
                &token.username,
                &token.email,
                &token.expires_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn find(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
    ) -> Result<Option<AccountToken>, StoreError> {
        let rows = self
            .query(
                "SELECT user_id, username, email, expires_at FROM account_tokens
                 WHERE token_hash = $1 AND purpose = $2 AND expires_at > now()",
                &[&&token_hash.0[..], &purpose.as_str()],
            )
            .await?;
        Ok(rows.first().map(token_of))
    }

    async fn spend(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
    ) -> Result<Option<AccountToken>, StoreError> {
        // One statement: the row lock makes exactly one of concurrent
        // spenders see the row; the user's other links of this purpose go
        // with it.
        let rows = self
            .query(
                "WITH spent AS (
                     DELETE FROM account_tokens WHERE token_hash = $1 AND purpose = $2
                     RETURNING user_id, username, email, expires_at
                 ), others AS (
                     DELETE FROM account_tokens a USING spent
                     WHERE a.purpose = $2 AND a.user_id = spent.user_id
                       AND a.token_hash <> $1 AND spent.expires_at > now()
                 )
                 SELECT user_id, username, email, expires_at FROM spent WHERE expires_at > now()",
                &[&&token_hash.0[..], &purpose.as_str()],
            )
            .await?;
        Ok(rows.first().map(token_of))
    }
}
