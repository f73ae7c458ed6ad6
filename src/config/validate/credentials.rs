//! `[credentials]` and `[registration]` (which inserts into the MySQL users
//! table the credentials are read from).

use std::path::PathBuf;

use crate::config::raw;
use crate::config::words::CredentialsBackend;
use crate::config::{
    ConfigErrors, CredentialsConfig, MysqlConfig, PasswordPolicy, RegistrationConfig,
};

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
            let password_update = m.password_update.trim();
            if !password_update.is_empty() && password_update.matches('?').count() != 2 {
                e.push(
                    "credentials.mysql.password_update",
                    "must have exactly two `?`: the new hash, then the user id (UPDATE users SET password_hash = ? WHERE id = ?)",
                );
            }
            let login_update = m.login_update.trim();
            if !login_update.is_empty() && login_update.matches('?').count() != 1 {
                e.push(
                    "credentials.mysql.login_update",
                    "must have exactly one `?`: the user id (UPDATE users SET last_login = NOW() WHERE id = ?)",
                );
            }
            let optional = |s: &str| (!s.is_empty()).then(|| s.to_string());
            CredentialsConfig::Mysql(MysqlConfig {
                url: m.url,
                pool_size: m.pool_size,
                user_query: m.user_query,
                rehash_update: optional(rehash),
                password_update: optional(password_update),
                login_update: optional(login_update),
            })
        }
    }
}

/// `registration.password_min` / `password_max`: the policy for every new
/// password (sign-up, change, reset); its bounds are checked where a user
/// can choose one (sign-up enabled, or `password_update` set).
pub(super) fn password_policy(
    raw: &raw::RawRegistration,
    credentials: &CredentialsConfig,
    e: &mut ConfigErrors,
) -> PasswordPolicy {
    let chosen = raw.enabled
        || matches!(credentials, CredentialsConfig::Mysql(m) if m.password_update.is_some());
    if chosen
        && (raw.password_min < 8 || raw.password_min > raw.password_max || raw.password_max > 1024)
    {
        e.push(
            "registration.password_min",
            format!(
                "{} / password_max {}: need 8 <= password_min <= password_max <= 1024",
                raw.password_min, raw.password_max
            ),
        );
    }
    PasswordPolicy {
        min: raw.password_min,
        max: raw.password_max,
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
    let activate = raw.activate.trim();
    if raw.verify_email && activate.matches('?').count() != 1 {
        e.push(
            "registration.activate",
            "with verify_email = true, must be an UPDATE with one `?`, the user id (UPDATE users SET is_active = 1 WHERE id = ?)",
        );
    }
    if !raw.verify_email && !activate.is_empty() {
        e.push(
            "registration.activate",
            "is only used with registration.verify_email = true",
        );
    }
    Some(RegistrationConfig {
        insert: raw.insert,
        activate: raw.verify_email.then(|| activate.to_string()),
    })
}
