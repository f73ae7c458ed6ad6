//! The versioned SQLite schema: the same tables and columns as PostgreSQL's
//! (`store/postgres/migrations.rs`), in SQLite's types. Applied at start and
//! by `portcullis migrate`; each step runs once, in order, in one
//! transaction with the `schema_migrations` rows.
//!
//! Mapping from the PostgreSQL schema: `bytea` is BLOB, `text[]` is TEXT
//! holding a JSON array, `timestamptz` is INTEGER unix milliseconds,
//! `bigserial` is INTEGER PRIMARY KEY. Step 1 is PostgreSQL's steps 1 to 5
//! at once; from then on every change lands in both lists (step 2 is
//! PostgreSQL's 6). `revocations`
//! exists only here: it stands in for PostgreSQL's NOTIFY (see `watch`).

use rusqlite::Connection;

/// `(version, SQL)`; append only, never edit a released step.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,        -- SHA-256 of the cookie token; the token itself is never stored
    user_id      TEXT NOT NULL,
    username     TEXT NOT NULL,
    email        TEXT NOT NULL,
    roles        TEXT NOT NULL,           -- JSON array
    auth_method  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,        -- absolute timeout
    checked_at   INTEGER NOT NULL         -- last re-read of the user from the credential backend
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE login_failures (
    account      TEXT PRIMARY KEY,        -- user id, or the name typed for unknown users
    failures     INTEGER NOT NULL,
    locked_until INTEGER,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE login_rate (
    client_ip    TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    attempts     INTEGER NOT NULL
);

CREATE TABLE sso_replay (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    family     TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    username   TEXT NOT NULL DEFAULT '',
    email      TEXT NOT NULL DEFAULT '',
    roles      TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER,
    -- The successor pair this token's first use was answered with, sealed
    -- with a key only this token opens, kept for its grace period.
    successor  BLOB
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_username ON refresh_tokens (username);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_successor_spent_at ON refresh_tokens (spent_at) WHERE successor IS NOT NULL;

-- Families revoked by a logout or a detected replay: no new token joins them.
CREATE TABLE revoked_refresh_families (
    family     TEXT PRIMARY KEY,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX revoked_refresh_families_revoked_at ON revoked_refresh_families (revoked_at);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    event      TEXT NOT NULL,
    username   TEXT NOT NULL,
    client_ip  TEXT NOT NULL,
    request_id TEXT NOT NULL,
    count      INTEGER NOT NULL DEFAULT 1  -- refusals are written one row per window
);
CREATE INDEX audit_events_at ON audit_events (at);

-- Keys that outlive a restart (the CSRF key, the token signing key).
CREATE TABLE shared_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- One row, bumped by every revocation (sessions or refresh families), so
-- the server hears about those made by another process on this file.
CREATE TABLE revocations (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO revocations (id, seq) VALUES (1, 0);
"#,
    ),
    (
        2,
        r#"
-- PostgreSQL step 6. Each session's public id (the account page,
-- X-Auth-Session) and where it was signed in from. Sessions from before get
-- a random id of their own.
ALTER TABLE sessions ADD COLUMN public_id TEXT NOT NULL DEFAULT '';
UPDATE sessions SET public_id = lower(hex(randomblob(16)));
ALTER TABLE sessions ADD COLUMN client_ip TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_username ON sessions (username);
"#,
    ),
    (
        3,
        r#"
-- PostgreSQL step 7. Tokens of mailed links (password reset, address
-- verification): only their SHA-256 is stored, and a row goes when its
-- link is used.
CREATE TABLE account_tokens (
    token_hash BLOB NOT NULL,
    purpose    TEXT NOT NULL,            -- reset or verify
    user_id    TEXT NOT NULL,
    username   TEXT NOT NULL,
    email      TEXT NOT NULL,            -- the address the link was mailed to
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (token_hash, purpose)
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);
"#,
    ),
    (
        4,
        r#"
-- PostgreSQL step 8. Second factors. `secret` starts with a version byte:
-- 1 = AES-256-GCM under mfa.secret_key (nonce, ciphertext, tag), 0 = in
-- the clear.
CREATE TABLE mfa_factors (
    user_id    TEXT PRIMARY KEY,
    secret     BLOB NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 0,
    last_step  INTEGER,                  -- last TOTP step accepted: each is used once
    created_at INTEGER NOT NULL,
    enabled_at INTEGER
);
-- One-time recovery codes, only as hashes; a spent code's row is deleted.
CREATE TABLE mfa_recovery_codes (
    user_id   TEXT NOT NULL,
    code_hash BLOB NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);
"#,
    ),
];

/// The newest schema version this build knows.
#[cfg(test)]
pub(crate) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Applies every migration not yet recorded; returns how many ran. Runs in
/// one IMMEDIATE transaction, so two processes starting on one file do not
/// race.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<usize> {
    apply(conn, MIGRATIONS)
}

/// [`migrate`] with the steps up to `version` only (tests of upgrades).
#[cfg(test)]
pub(crate) fn migrate_to(conn: &mut Connection, version: i64) -> rusqlite::Result<usize> {
    let end = MIGRATIONS.partition_point(|(v, _)| *v <= version);
    apply(conn, &MIGRATIONS[..end])
}

fn apply(conn: &mut Connection, steps: &[(i64, &str)]) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )",
    )?;
    let applied: Vec<i64> = tx
        .prepare("SELECT version FROM schema_migrations")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut ran = 0;
    for (version, sql) in steps {
        if applied.contains(version) {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, super::now_ms()],
        )?;
        ran += 1;
    }
    tx.commit()?;
    Ok(ran)
}
