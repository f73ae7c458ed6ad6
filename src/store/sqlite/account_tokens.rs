//! Tokens of mailed links (password reset, address verification) in
//! SQLite (`account_tokens`): a link mailed before a restart still works
//! after it, and is spent once.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use super::{millis, now_ms, time_of, Sqlite};
use crate::store::{AccountToken, AccountTokenStore, LinkPurpose, StoreError, TokenHash};

pub(crate) struct SqliteAccountTokens {
    db: Arc<Sqlite>,
}

impl SqliteAccountTokens {
    pub(crate) fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }
}

fn token_of(row: &Row<'_>) -> rusqlite::Result<AccountToken> {
    Ok(AccountToken {
        user_id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        expires_at: time_of(row.get(3)?),
    })
}

#[async_trait]
impl AccountTokenStore for SqliteAccountTokens {
    async fn insert(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
        token: &AccountToken,
    ) -> Result<(), StoreError> {
        let (hash, token) = (token_hash.0, token.clone());
        // Expired rows go with the periodic sweep (`sweep.rs`).
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO account_tokens
                         (token_hash, purpose, user_id, username, email, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        &hash[..],
                        purpose.as_str(),
                        token.user_id,
                        token.username,
                        token.email,
                        now_ms(),
                        millis(token.expires_at)
                    ],
                )
            })
            .await?;
        Ok(())
    }

    async fn find(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
    ) -> Result<Option<AccountToken>, StoreError> {
        let hash = token_hash.0;
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT user_id, username, email, expires_at FROM account_tokens
                     WHERE token_hash = ?1 AND purpose = ?2 AND expires_at > ?3",
                    params![&hash[..], purpose.as_str(), now_ms()],
                    token_of,
                )
                .optional()
            })
            .await
    }

    async fn spend(
        &self,
        token_hash: &TokenHash,
        purpose: LinkPurpose,
    ) -> Result<Option<AccountToken>, StoreError> {
        let hash = token_hash.0;
        // One IMMEDIATE transaction: of concurrent spenders (in this process
        // or another) exactly one finds the row; the user's other links of
        // this purpose go with it.
        self.db
            .write(move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let found = tx
                    .query_row(
                        "DELETE FROM account_tokens WHERE token_hash = ?1 AND purpose = ?2
                         RETURNING user_id, username, email, expires_at",
                        params![&hash[..], purpose.as_str()],
                        token_of,
                    )
                    .optional()?;
                let live = found.filter(|t| millis(t.expires_at) > now_ms());
                if let Some(token) = &live {
                    tx.execute(
                        "DELETE FROM account_tokens WHERE purpose = ?1 AND user_id = ?2",
                        params![purpose.as_str(), token.user_id],
                    )?;
                }
                tx.commit()?;
                Ok(live)
            })
            .await
    }
}
