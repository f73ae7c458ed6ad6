//! Deletes expired rows from every table, so none grows without bound. Run
//! about once a minute by the session store's background task (every
//! serving instance has one); deletes are idempotent, so instances sweeping
//! at once only repeat each other's work.

use std::time::SystemTime;

use super::{db_error, pool_error, Pg};
use crate::store::StoreError;

/// Sessions past their expiry or idle since before `idle_cutoff`, spent SSO
/// replay entries, expired refresh tokens, family revocations older than
/// 30 days, and throttle rows a day old (lockouts still in
/// force are kept).
pub(crate) async fn expired(pg: &Pg, idle_cutoff: SystemTime) -> Result<(), StoreError> {
    let client = pg.pool.get().await.map_err(pool_error)?;
    client
        .execute(
            "DELETE FROM sessions WHERE expires_at < now() OR last_seen < $1",
            &[&idle_cutoff],
        )
        .await
        .map_err(db_error)?;
    client
        .batch_execute(
            "DELETE FROM sso_replay WHERE expires_at < now();
             DELETE FROM refresh_tokens WHERE expires_at < now();
             DELETE FROM revoked_refresh_families WHERE revoked_at < now() - interval '30 days';
             DELETE FROM login_rate WHERE window_start < now() - interval '1 day';
             DELETE FROM login_failures WHERE updated_at < now() - interval '1 day'
                 AND (locked_until IS NULL OR locked_until < now());",
        )
        .await
        .map_err(db_error)
}
