//! Deletes expired rows from every table, so none grows without bound (the
//! same rows as PostgreSQL's sweep), and wipes refresh successor pairs past
//! their grace. Run by the session store's background task.

use std::time::Duration;

use rusqlite::{params, Connection};

use super::{ms, now_ms};
use crate::store::REUSE_GRACE;

/// Sessions past their expiry or idle for longer than `idle_timeout`, spent
/// SSO replay entries, expired refresh tokens, family revocations older
/// than 30 days, throttle rows a day old (lockouts still in force are
/// kept) and second-factor enrolments never confirmed within a day, in one
/// transaction.
pub(crate) fn expired(c: &mut Connection, idle_timeout: Duration) -> rusqlite::Result<()> {
    let now = now_ms();
    let day = ms(Duration::from_secs(86_400));
    let tx = c.transaction()?;
    tx.execute(
        "DELETE FROM sessions WHERE expires_at < ?1 OR last_seen < ?2",
        params![now, now - ms(idle_timeout)],
    )?;
    tx.execute("DELETE FROM sso_replay WHERE expires_at < ?1", [now])?;
    tx.execute("DELETE FROM account_tokens WHERE expires_at < ?1", [now])?;
    tx.execute("DELETE FROM refresh_tokens WHERE expires_at < ?1", [now])?;
    tx.execute(
        "DELETE FROM revoked_refresh_families WHERE revoked_at < ?1",
        [now - 30 * day],
    )?;
    tx.execute(
        "DELETE FROM login_rate WHERE window_start < ?1",
        [now - day],
    )?;
    tx.execute(
        "DELETE FROM login_failures WHERE updated_at < ?1 AND (locked_until IS NULL OR locked_until < ?2)",
        params![now - day, now],
    )?;
    tx.execute(
        "DELETE FROM mfa_factors WHERE NOT enabled AND created_at < ?1",
        [now - day],
    )?;
    tx.commit()
}

/// Forgets the sealed successor pair of every refresh token spent longer
/// ago than the grace period: it can no longer be handed out.
pub(crate) fn successors(c: &mut Connection) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE refresh_tokens SET successor = NULL WHERE successor IS NOT NULL AND spent_at < ?1",
        [now_ms() - ms(REUSE_GRACE)],
    )
}
