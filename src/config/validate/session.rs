//! `[session]` and `[postgres]`.

use super::values::{nonzero, show};
use crate::config::raw;
use crate::config::{ConfigErrors, PostgresConfig, SessionConfig, SessionStoreKind};

pub(super) fn session(raw: raw::RawSession, e: &mut ConfigErrors) -> SessionConfig {
    let name = &raw.cookie_name;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        e.push(
            "session.cookie_name",
            format!("{name:?} must be letters, digits, '-', '_' or '.'"),
        );
    }
    let idle_timeout = nonzero(e, "session.idle_timeout", raw.idle_timeout);
    let absolute_timeout = nonzero(e, "session.absolute_timeout", raw.absolute_timeout);
    if idle_timeout > absolute_timeout {
        e.push(
            "session.idle_timeout",
            format!(
                "{:?} is longer than session.absolute_timeout {:?}",
                show(idle_timeout),
                show(absolute_timeout)
            ),
        );
    }
    SessionConfig {
        store: raw.store,
        cookie_name: raw.cookie_name,
        idle_timeout,
        absolute_timeout,
        same_site: raw.same_site,
        max_per_user: raw.max_per_user,
        cache_ttl: raw.cache_ttl,
        recheck_interval: nonzero(e, "session.recheck_interval", raw.recheck_interval),
    }
}

/// The URL is checked only where it is used (`session.store = "postgres"`).
pub(super) fn postgres(
    raw: raw::RawPostgres,
    store: SessionStoreKind,
    e: &mut ConfigErrors,
) -> PostgresConfig {
    if raw.pool_size == 0 {
        e.push("postgres.pool_size", "must be at least 1");
    }
    if store == SessionStoreKind::Postgres {
        if let Err(err) = raw.url.parse::<tokio_postgres::Config>() {
            e.push("postgres.url", format!("is not a PostgreSQL URL like \"postgres://portcullis@127.0.0.1/portcullis\": {err}"));
        }
    }
    PostgresConfig {
        url: raw.url,
        pool_size: raw.pool_size,
        connect_timeout: nonzero(e, "postgres.connect_timeout", raw.connect_timeout),
        migrate: raw.migrate,
    }
}
