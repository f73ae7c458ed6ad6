//! The SSO replay store in PostgreSQL: a hand-off token used on one
//! instance is refused by all.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{db_error, pool_error, Pg};
use crate::store::{ReplayStore, StoreError};

pub(crate) struct PgReplayStore {
    pg: Arc<Pg>,
}

impl PgReplayStore {
    pub(crate) fn new(pg: Arc<Pg>) -> Self {
        Self { pg }
    }
}

#[async_trait]
impl ReplayStore for PgReplayStore {
    async fn first_use(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<bool, StoreError> {
        let client = self.pg.pool.get().await.map_err(pool_error)?;
        let inserted = client
            .execute(
                "INSERT INTO sso_replay (issuer, jti, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (issuer, jti) DO NOTHING",
                &[&issuer, &jti, &expires_at],
            )
            .await
            .map_err(db_error)?;
        Ok(inserted == 1)
    }
}
