//! `[credentials]` and `[registration]` (which inserts into the MySQL users
//! table the credentials are read from).

use std::path::PathBuf;

use crate::config::raw;
use crate::config::words::CredentialsBackend;
use crate::config::{ConfigErrors, CredentialsConfig, MysqlConfig, RegistrationConfig};

pub(super) fn credentials(raw: raw::RawCredentials, e: &mut ConfigErrors) -> CredentialsConfig {
    match raw.backend {
        CredentialsBackend::File => {
            if raw.file.path.is_empty() {
                e.push("credentials.file.path", "must name the users file");
            }
            CredentialsConfig::File {
                path: PathBuf::from(raw.file.path),
            }
        }
        CredentialsBackend::Mysql => {
            let m = raw.mysql;
            if !m.url.starts_with("mysql://") {
                e.push(
                    "credentials.mysql.url",
                    "must be a URL like \"mysql://reader:${MYSQL_PASSWORD}@127.0.0.1/app\"",
                );
            }
            if m.pool_size == 0 {
                e.push("credentials.mysql.pool_size", "must be at least 1");
            }
            if !m.user_query.contains('?') {
                e.push(
                    "credentials.mysql.user_query",
                    "must bind the typed name with at least one `?`, e.g. \"... WHERE username = ? OR email = ?\"",
                );
            }
            let rehash = m.rehash_update.trim();
            if !rehash.is_empty() && rehash.matches('?').count() != 2 {
                e.push(
                    "credentials.mysql.rehash_update",
                    "must have exactly two `?`: the new hash, then the user id (UPDATE users SET password_hash = ? WHERE id = ?)",
                );
            }
            CredentialsConfig::Mysql(MysqlConfig {
                url: m.url,
                pool_size: m.pool_size,
                user_query: m.user_query,
                rehash_update: (!rehash.is_empty()).then(|| rehash.to_string()),
            })
        }
    }
}

pub(super) fn registration(
    raw: raw::RawRegistration,
    credentials: &CredentialsConfig,
    e: &mut ConfigErrors,
) -> Option<RegistrationConfig> {
    if !raw.enabled {
        return None;
    }
    if !matches!(credentials, CredentialsConfig::Mysql(_)) {
        e.push(
            "registration.enabled",
            "needs credentials.backend = \"mysql\": new users are inserted there",
        );
    }
    if raw.insert.matches('?').count() != 3 {
        e.push(
            "registration.insert",
            "must be an INSERT with three `?`: username, email, password_hash (in that order)",
        );
    }
    if raw.password_min < 8 || raw.password_min > raw.password_max || raw.password_max > 1024 {
        e.push(
            "registration.password_min",
            format!(
                "{} / password_max {}: need 8 <= password_min <= password_max <= 1024",
                raw.password_min, raw.password_max
            ),
        );
    }
    Some(RegistrationConfig {
        password_min: raw.password_min,
        password_max: raw.password_max,
        insert: raw.insert,
    })
}
