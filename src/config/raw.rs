//! The first stage of config loading: `proxy.toml` exactly as written, with
//! serde defaults and unknown keys refused. Nothing here is interpreted; see
//! `config::validate` for the second stage.

use serde::Deserialize;

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
    pub header_read_timeout: String,
    pub max_header_bytes: u64,
    pub max_connections: u64,
    pub shutdown_grace: String,
    pub body_read_timeout: String,
    pub keepalive_timeout: String,
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
            header_read_timeout: "10s".into(),
            max_header_bytes: 65536,
            max_connections: 10000,
            shutdown_grace: "30s".into(),
            body_read_timeout: "30s".into(),
            keepalive_timeout: "75s".into(),
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
    pub connect_timeout: String,
    pub response_header_timeout: String,
    pub pool_idle_timeout: String,
    pub pass_session_cookie: bool,
    pub max_connections: u32,
    pub tunnel_idle_timeout: String,
    pub headers: RawIdentityHeaders,
    pub assertion: Option<RawAssertion>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8000".into(),
            connect_timeout: "5s".into(),
            response_header_timeout: "60s".into(),
            pool_idle_timeout: "4s".into(),
            pass_session_cookie: false,
            max_connections: 1024,
            tunnel_idle_timeout: "10m".into(),
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
    pub algorithm: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub secret: String,
    pub audience: String,
}

fn default_assertion_header() -> String {
    "X-Auth-Assertion".into()
}

fn default_assertion_algorithm() -> String {
    "EdDSA".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSession {
    pub store: String,
    pub cookie_name: String,
    pub idle_timeout: String,
    pub absolute_timeout: String,
    pub same_site: String,
    pub max_per_user: u32,
    pub cache_ttl: String,
    pub recheck_interval: String,
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            store: "memory".into(),
            cookie_name: "__Host-portcullis".into(),
            idle_timeout: "30m".into(),
            absolute_timeout: "12h".into(),
            same_site: "lax".into(),
            max_per_user: 0,
            cache_ttl: "5s".into(),
            recheck_interval: "5m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPostgres {
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout: String,
    pub migrate: bool,
}

impl Default for RawPostgres {
    fn default() -> Self {
        Self {
            url: "postgres://portcullis@127.0.0.1/portcullis".into(),
            pool_size: 16,
            connect_timeout: "10s".into(),
            migrate: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCredentials {
    pub backend: String,
    pub file: RawCredentialsFile,
    pub mysql: RawCredentialsMysql,
}

impl Default for RawCredentials {
    fn default() -> Self {
        Self {
            backend: "file".into(),
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
    pub lockout: String,
    pub ip_rate: String,
    pub hash_workers: usize,
    pub hash_wait: String,
}

impl Default for RawLogin {
    fn default() -> Self {
        Self {
            prefix: "/auth".into(),
            title: "Sign in".into(),
            template: String::new(),
            max_failures: 5,
            lockout: "30m".into(),
            ip_rate: "20/min".into(),
            hash_workers: 0,
            hash_wait: "5s".into(),
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
    pub access_ttl: String,
    pub refresh_ttl: String,
    pub algorithm: String,
    pub secret: String,
}

impl Default for RawTokens {
    fn default() -> Self {
        Self {
            access_ttl: "30m".into(),
            refresh_ttl: "7d".into(),
            algorithm: "HS256".into(),
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
    pub retention: String,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            retention: "90d".into(),
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
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default = "default_max_age")]
    pub max_age: String,
    #[serde(default = "default_clock_skew")]
    pub clock_skew: String,
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    #[serde(default = "default_true")]
    pub require_known_user: bool,
}

fn default_max_age() -> String {
    "2m".into()
}

fn default_clock_skew() -> String {
    "30s".into()
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
    pub access: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub format: String,
    pub access_log: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "json".into(),
            access_log: true,
        }
    }
}
