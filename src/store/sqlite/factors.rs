//! Second factors in the SQLite file (`mfa_factors`, `mfa_recovery_codes`,
//! as in PostgreSQL): enrolments survive a restart, and each
//! check-and-spend is one statement, so a TOTP step or recovery code is
//! accepted once even with the operator's `mfa reset` writing to the file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

use super::{ms, now_ms, Sqlite};
use crate::store::{FactorRecord, FactorStore, StoreError};

pub(crate) struct SqliteFactorStore {
    db: Arc<Sqlite>,
}

impl SqliteFactorStore {
    pub(crate) fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }
}

fn record(row: &Row<'_>) -> rusqlite::Result<FactorRecord> {
    Ok(FactorRecord {
        secret: row.get(0)?,
        enabled: row.get(1)?,
        last_step: row.get(2)?,
    })
}

const SELECT: &str = "SELECT secret, enabled, last_step FROM mfa_factors WHERE user_id = ?1";

#[async_trait]
impl FactorStore for SqliteFactorStore {
    async fn get(&self, user_id: &str) -> Result<Option<FactorRecord>, StoreError> {
        let user_id = user_id.to_string();
        self.db
            .read(move |c| c.query_row(SELECT, [user_id], record).optional())
            .await
    }

    async fn pending(
        &self,
        user_id: &str,
        secret: &[u8],
        fresh_for: Duration,
    ) -> Result<FactorRecord, StoreError> {
        let (user_id, secret, fresh_for) = (user_id.to_string(), secret.to_vec(), ms(fresh_for));
        self.db
            .write(move |c| {
                let now = now_ms();
                c.execute(
                    "INSERT INTO mfa_factors AS f (user_id, secret, enabled, created_at) VALUES (?1, ?2, 0, ?3)
                     ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = ?3, last_step = NULL
                         WHERE NOT f.enabled AND f.created_at <= ?3 - ?4",
                    params![user_id, secret, now, fresh_for],
                )?;
                c.query_row(SELECT, [user_id], record)
            })
            .await
    }

    async fn enable(
        &self,
        user_id: &str,
        secret: &[u8],
        step: i64,
        recovery: &[[u8; 32]],
    ) -> Result<bool, StoreError> {
        let (user_id, secret, recovery) = (user_id.to_string(), secret.to_vec(), recovery.to_vec());
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let updated = tx.execute(
                    "UPDATE mfa_factors SET enabled = 1, last_step = ?3, enabled_at = ?4
                     WHERE user_id = ?1 AND NOT enabled AND secret = ?2",
                    params![user_id, secret, step, now_ms()],
                )?;
                if updated != 1 {
                    return Ok(false);
                }
                tx.execute(
                    "DELETE FROM mfa_recovery_codes WHERE user_id = ?1",
                    [&user_id],
                )?;
                for hash in &recovery {
                    tx.execute(
                        "INSERT OR IGNORE INTO mfa_recovery_codes (user_id, code_hash) VALUES (?1, ?2)",
                        params![user_id, &hash[..]],
                    )?;
                }
                tx.commit()?;
                Ok(true)
            })
            .await
    }

    async fn use_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let user_id = user_id.to_string();
        let updated = self
            .db
            .write(move |c| {
                c.execute(
                    "UPDATE mfa_factors SET last_step = ?2
                     WHERE user_id = ?1 AND enabled AND (last_step IS NULL OR last_step < ?2)",
                    params![user_id, step],
                )
            })
            .await?;
        Ok(updated == 1)
    }

    async fn use_recovery(&self, user_id: &str, hashes: &[[u8; 32]]) -> Result<bool, StoreError> {
        let (user_id, hashes) = (user_id.to_string(), hashes.to_vec());
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let enabled: bool = tx
                    .query_row(
                        "SELECT enabled FROM mfa_factors WHERE user_id = ?1",
                        [&user_id],
                        |row| row.get(0),
                    )
                    .optional()?
                    .unwrap_or(false);
                let mut spent = 0;
                if enabled {
                    for hash in &hashes {
                        spent += tx.execute(
                            "DELETE FROM mfa_recovery_codes WHERE user_id = ?1 AND code_hash = ?2",
                            params![user_id, &hash[..]],
                        )?;
                    }
                }
                tx.commit()?;
                Ok(spent > 0)
            })
            .await
    }

    async fn recovery_left(&self, user_id: &str) -> Result<u32, StoreError> {
        let user_id = user_id.to_string();
        let n: i64 = self
            .db
            .read(move |c| {
                c.query_row(
                    "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = ?1",
                    [user_id],
                    |row| row.get(0),
                )
            })
            .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn remove(&self, user_id: &str) -> Result<bool, StoreError> {
        let user_id = user_id.to_string();
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "DELETE FROM mfa_recovery_codes WHERE user_id = ?1",
                    [&user_id],
                )?;
                let enabled: Option<bool> = tx
                    .query_row(
                        "DELETE FROM mfa_factors WHERE user_id = ?1 RETURNING enabled",
                        [&user_id],
                        |row| row.get(0),
                    )
                    .optional()?;
                tx.commit()?;
                Ok(enabled.unwrap_or(false))
            })
            .await
    }
}
