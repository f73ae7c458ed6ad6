//! The SSO replay store in SQLite: a hand-off token used once stays
//! refused after a restart, until it expires.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use rusqlite::params;

use super::{millis, now_ms, Sqlite};
use crate::store::{ReplayStore, StoreError};

pub(crate) struct SqliteReplayStore {
    db: Arc<Sqlite>,
}

impl SqliteReplayStore {
    pub(crate) fn new(db: Arc<Sqlite>) -> Self {
        Self { db }
    }
}

#[async_trait]
impl ReplayStore for SqliteReplayStore {
    async fn first_use(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        let (issuer, jti, expires) = (issuer.to_string(), jti.to_string(), millis(expires_at));
        // An expired entry the sweeper has not deleted yet does not count.
        let inserted = self
            .db
            .write(move |c| {
                c.execute(
                    "INSERT INTO sso_replay (issuer, jti, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = excluded.expires_at
                     WHERE sso_replay.expires_at < ?4",
                    params![issuer, jti, expires, now_ms()],
                )
            })
            .await?;
        Ok(inserted == 1)
    }
}
