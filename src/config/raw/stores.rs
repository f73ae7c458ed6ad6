//! `[session]`, `[sqlite]`, `[postgres]` and `[audit]` as written.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, secs, DAY, HOUR, MINUTE};
use crate::config::{SameSite, SessionStoreKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSession {
    pub store: SessionStoreKind,
    pub cookie_name: String,
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub absolute_timeout: Duration,
    pub same_site: SameSite,
    pub max_per_user: u32,
    #[serde(deserialize_with = "duration")]
    pub cache_ttl: Duration,
    #[serde(deserialize_with = "duration")]
    pub recheck_interval: Duration,
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            store: SessionStoreKind::Sqlite,
            cookie_name: "__Host-portcullis".into(),
            idle_timeout: secs(30 * MINUTE),
            absolute_timeout: secs(12 * HOUR),
            same_site: SameSite::Lax,
            max_per_user: 0,
            cache_ttl: secs(5),
            recheck_interval: secs(5 * MINUTE),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPostgres {
    pub url: String,
    pub pool_size: u32,
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    pub migrate: bool,
}

impl Default for RawPostgres {
    fn default() -> Self {
        Self {
            url: "postgres://portcullis@127.0.0.1/portcullis".into(),
            pool_size: 16,
            connect_timeout: secs(10),
            migrate: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAudit {
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            retention: secs(90 * DAY),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSqlite {
    pub path: String,
}

impl Default for RawSqlite {
    fn default() -> Self {
        Self {
            path: "portcullis.db".into(),
        }
    }
}
