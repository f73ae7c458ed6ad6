//! `[credentials]`, `[login]`, `[registration]`, `[tokens]`, `[mfa]` and
//! `[mail]` as written.

use std::time::Duration;

use serde::Deserialize;

use super::{duration, secs, DAY, MINUTE};
use crate::config::words::{CredentialsBackend, TokenAlgorithm};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCredentials {
    pub backend: CredentialsBackend,
    pub file: RawCredentialsFile,
    pub mysql: RawCredentialsMysql,
}

impl Default for RawCredentials {
    fn default() -> Self {
        Self {
            backend: CredentialsBackend::File,
            file: RawCredentialsFile::default(),
            mysql: RawCredentialsMysql::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCredentialsFile {
    pub path: String,
}

impl Default for RawCredentialsFile {
    fn default() -> Self {
        Self {
            path: "deploy/users.toml".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCredentialsMysql {
    pub url: String,
    pub pool_size: u32,
    pub user_query: String,
    pub rehash_update: String,
    pub password_update: String,
    pub login_update: String,
}

impl Default for RawCredentialsMysql {
    fn default() -> Self {
        Self {
            url: String::new(),
            pool_size: 8,
            user_query: "SELECT id, username, email, password_hash, roles, is_active AS active \
                         FROM users WHERE username = ? OR email = ?"
                .into(),
            rehash_update: String::new(),
            password_update: String::new(),
            login_update: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLogin {
    pub prefix: String,
    pub title: String,
    pub template: String,
    pub max_failures: u32,
    #[serde(deserialize_with = "duration")]
    pub lockout: Duration,
    pub ip_rate: String,
    pub hash_workers: usize,
    #[serde(deserialize_with = "duration")]
    pub hash_wait: Duration,
}

impl Default for RawLogin {
    fn default() -> Self {
        Self {
            prefix: "/auth".into(),
            title: "Sign in".into(),
            template: String::new(),
            max_failures: 5,
            lockout: secs(30 * MINUTE),
            ip_rate: "20/min".into(),
            hash_workers: 0,
            hash_wait: secs(5),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawRegistration {
    pub enabled: bool,
    pub password_min: usize,
    pub password_max: usize,
    pub insert: String,
    pub verify_email: bool,
    pub activate: String,
}

impl Default for RawRegistration {
    fn default() -> Self {
        Self {
            enabled: false,
            password_min: 12,
            password_max: 128,
            insert: String::new(),
            verify_email: false,
            activate: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTokens {
    #[serde(deserialize_with = "duration")]
    pub access_ttl: Duration,
    #[serde(deserialize_with = "duration")]
    pub refresh_ttl: Duration,
    pub algorithm: TokenAlgorithm,
    pub secret: String,
}

impl Default for RawTokens {
    fn default() -> Self {
        Self {
            access_ttl: secs(30 * MINUTE),
            refresh_ttl: secs(7 * DAY),
            algorithm: TokenAlgorithm::HS256,
            secret: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMfa {
    pub required_roles: Vec<String>,
    pub issuer: String,
    pub secret_key: String,
}

impl Default for RawMfa {
    fn default() -> Self {
        Self {
            required_roles: Vec::new(),
            issuer: "portcullis".into(),
            secret_key: String::new(),
        }
    }
}

/// `[mail]`: absent means no mail is sent (no reset, no verification).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMail {
    #[serde(default = "default_smtp")]
    pub smtp: String,
    pub from: String,
    #[serde(default = "default_reset_ttl", deserialize_with = "duration")]
    pub reset_ttl: Duration,
}

fn default_smtp() -> String {
    "smtp://127.0.0.1:25".into()
}

fn default_reset_ttl() -> Duration {
    secs(30 * MINUTE)
}
