//! The first stage of config loading: `proxy.toml` as written, with serde
//! defaults and unknown keys refused. Durations and closed sets of words
//! (stores, backends, algorithms, formats) are typed here, so a bad one is
//! refused with its key before anything else; what needs the whole file or
//! the disk is checked by `config::validate`, the second stage.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::words::{AssertionAlgorithm, CredentialsBackend, TokenAlgorithm};
use super::{LogFormat, SameSite, SessionStoreKind};
use crate::policy::routes::RuleAccess;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// humantime's syntax (`"30s"`, `"12h"`, `"7d"`), with a message that shows
/// the value and the form expected.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|_| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration like \"30s\", \"30m\" or \"12h\""
        ))
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    pub server: RawServer,
    pub admin: RawAdmin,
    pub upstream: RawUpstream,
    pub session: RawSession,
    pub postgres: RawPostgres,
    pub credentials: RawCredentials,
    pub login: RawLogin,
    pub registration: RawRegistration,
    pub tokens: RawTokens,
    pub forward_auth: RawForwardAuth,
    pub audit: RawAudit,
    pub sso: RawSso,
    pub route: Vec<RawRoute>,
    pub log: RawLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawServer {
    pub listen: String,
    pub public_url: String,
    pub trusted_proxies: Vec<String>,
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    pub max_header_bytes: u64,
    pub max_connections: u64,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub body_read_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub keepalive_timeout: Duration,
    pub h2_max_streams: u32,
    pub websocket_origins: Vec<String>,
    pub tls: Option<RawTls>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            public_url: String::new(),
            trusted_proxies: Vec::new(),
            header_read_timeout: secs(10),
            max_header_bytes: 65536,
            max_connections: 10000,
            shutdown_grace: secs(30),
            body_read_timeout: secs(30),
            keepalive_timeout: secs(75),
            h2_max_streams: 100,
            websocket_origins: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub redirect_http_from: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAdmin {
    pub listen: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawUpstream {
    pub url: String,
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub response_header_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub pool_idle_timeout: Duration,
    pub pass_session_cookie: bool,
    pub max_connections: u32,
    #[serde(deserialize_with = "duration")]
    pub tunnel_idle_timeout: Duration,
    pub headers: RawIdentityHeaders,
    pub assertion: Option<RawAssertion>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8000".into(),
            connect_timeout: secs(5),
            response_header_timeout: secs(60),
            pool_idle_timeout: secs(4),
            pass_session_cookie: false,
            max_connections: 1024,
            tunnel_idle_timeout: secs(10 * MINUTE),
            headers: RawIdentityHeaders::default(),
            assertion: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawIdentityHeaders {
    pub user: String,
    pub email: String,
    pub roles: String,
}

impl Default for RawIdentityHeaders {
    fn default() -> Self {
        Self {
            user: "X-Auth-User".into(),
            email: "X-Auth-Email".into(),
            roles: "X-Auth-Roles".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAssertion {
    #[serde(default = "default_assertion_header")]
    pub header: String,
    #[serde(default = "default_assertion_algorithm")]
    pub algorithm: AssertionAlgorithm,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub secret: String,
    pub audience: String,
}

fn default_assertion_header() -> String {
    "X-Auth-Assertion".into()
}

fn default_assertion_algorithm() -> AssertionAlgorithm {
    AssertionAlgorithm::EdDSA
}

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
            store: SessionStoreKind::Memory,
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
}

impl Default for RawRegistration {
    fn default() -> Self {
        Self {
            enabled: false,
            password_min: 12,
            password_max: 128,
            insert: String::new(),
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
pub(crate) struct RawForwardAuth {
    pub uri_header: String,
    pub method_header: String,
}

impl Default for RawForwardAuth {
    fn default() -> Self {
        Self {
            uri_header: "X-Forwarded-Uri".into(),
            method_header: "X-Forwarded-Method".into(),
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSso {
    pub partners: Vec<RawPartner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPartner {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default = "default_max_age", deserialize_with = "duration")]
    pub max_age: Duration,
    #[serde(default = "default_clock_skew", deserialize_with = "duration")]
    pub clock_skew: Duration,
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    #[serde(default = "default_true")]
    pub require_known_user: bool,
}

fn default_max_age() -> Duration {
    secs(2 * MINUTE)
}

fn default_clock_skew() -> Duration {
    secs(30)
}

fn default_user_claim() -> String {
    "email".into()
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub path: String,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub access: Option<RuleAccess>,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub format: LogFormat,
    pub access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            access_log: true,
        }
    }
}
