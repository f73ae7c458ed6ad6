//! The versioned PostgreSQL schema. Applied at start (unless
//! `postgres.migrate = false`) and by `portcullis migrate`; each step runs
//! once, in order, under an advisory lock so instances starting together do
//! not race. Tables land in the first schema of the connection's
//! `search_path`.

use deadpool_postgres::Pool;

use crate::store::StoreError;

/// `(version, SQL)`; append only, never edit a released step.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE sessions (
    token_hash   bytea PRIMARY KEY,       -- SHA-256 of the cookie token; the token itself is never stored
    user_id      text NOT NULL,
    username     text NOT NULL,
    email        text NOT NULL,
    roles        text[] NOT NULL,
    auth_method  text NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,    -- absolute timeout
    checked_at   timestamptz NOT NULL     -- last re-read of the user from the credential backend
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE login_failures (
    account      text PRIMARY KEY,        -- user id, or the name typed for unknown users
    failures     integer NOT NULL,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE login_rate (
    client_ip    text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    attempts     integer NOT NULL
);

CREATE TABLE sso_replay (
    issuer     text NOT NULL,
    jti        text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    family     text NOT NULL,
    user_id    text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

CREATE TABLE audit_events (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    event      text NOT NULL,
    username   text NOT NULL,
    client_ip  text NOT NULL,
    request_id text NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);

-- Keys every instance must share (the CSRF key), created once.
CREATE TABLE shared_secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);
"#,
    ),
    (
        2,
        r#"
-- Refresh tokens carry the identity their access tokens are minted for.
ALTER TABLE refresh_tokens
    ADD COLUMN username text NOT NULL DEFAULT '',
    ADD COLUMN email    text NOT NULL DEFAULT '',
    ADD COLUMN roles    text[] NOT NULL DEFAULT '{}';
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
"#,
    ),
    (
        3,
        r#"
-- Families revoked by a logout or a detected replay: no new token joins them.
CREATE TABLE revoked_refresh_families (
    family     text PRIMARY KEY,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
"#,
    ),
    (
        4,
        r#"
-- The successor pair a refresh token's first use was answered with, sealed
-- with a key only that token opens, kept for its grace period (then wiped).
ALTER TABLE refresh_tokens ADD COLUMN successor bytea;
CREATE INDEX refresh_tokens_successor_spent_at ON refresh_tokens (spent_at) WHERE successor IS NOT NULL;
-- `sessions revoke --user` revokes the user's families too.
CREATE INDEX refresh_tokens_username ON refresh_tokens (username);
-- Every instance loads the families revoked within one access-token lifetime.
CREATE INDEX revoked_refresh_families_revoked_at ON revoked_refresh_families (revoked_at);
"#,
    ),
    (
        5,
        r#"
-- Refusals anyone can provoke are written as one row per window with a count.
ALTER TABLE audit_events ADD COLUMN count integer NOT NULL DEFAULT 1;
"#,
    ),
    (
        6,
        r#"
-- Each session's public id (the account page, X-Auth-Session) and where it
-- was signed in from. Sessions from before get a random id of their own.
ALTER TABLE sessions
    ADD COLUMN public_id  text NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text),
    ADD COLUMN client_ip  text,
    ADD COLUMN user_agent text NOT NULL DEFAULT '';
ALTER TABLE sessions ALTER COLUMN public_id DROP DEFAULT;
CREATE INDEX sessions_username ON sessions (username);
"#,
    ),
];

/// Arbitrary constant naming portcullis' migration lock.
const LOCK_ID: i64 = 0x706f_7274_6375_6c6c;

/// Applies every migration not yet recorded; returns how many ran.
pub(crate) async fn migrate(pool: &Pool) -> Result<usize, StoreError> {
    let mut client = pool.get().await.map_err(super::pool_error)?;
    let tx = client.transaction().await.map_err(super::db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_ID])
        .await
        .map_err(super::db_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(super::db_error)?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(super::db_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut ran = 0;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(super::db_error)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(super::db_error)?;
        ran += 1;
    }
    tx.commit().await.map_err(super::db_error)?;
    Ok(ran)
}
