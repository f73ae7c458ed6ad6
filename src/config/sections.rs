//! The validated sections of [`Config`](super::Config): resolved types only.
//! `Debug` leaves out URLs, secrets and keys; `PartialEq` compares them (keys
//! by a fingerprint of what they were built from), so a reload can tell what
//! changed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where browsers reach portcullis; `None` means "assume https".
    pub public_url: Option<PublicUrl>,
    pub trusted_proxies: Vec<IpNet>,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    /// Longest wait for the next bytes of a request body: 408 for our own
    /// endpoints, the upstream request aborted for proxied ones.
    pub body_read_timeout: Duration,
    /// An h1 or h2 connection with no request in flight is closed after this.
    pub keepalive_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub h2_max_streams: u32,
    /// Origins besides `public_url`'s allowed to open WebSockets
    /// (`scheme://host[:port]`, lower case).
    pub websocket_origins: Vec<String>,
    pub tls: Option<TlsConfig>,
}

/// The scheme and origin of `server.public_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub https: bool,
    /// `scheme://host[:port]`, compared with a browser's `Origin` header.
    pub origin: String,
}

#[derive(Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
    pub redirect_http_from: Option<SocketAddr>,
    /// Of the certificate and key bytes `server_config` was built from.
    pub(crate) fingerprint: Fingerprint,
}

/// Equal when built from the same files holding the same bytes.
impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        self.cert == other.cert
            && self.key == other.key
            && self.redirect_http_from == other.redirect_http_from
            && self.fingerprint == other.fingerprint
    }
}

/// A SHA-256 over the bytes a key or certificate was built from: configs
/// compare by it where the built object (a rustls config, a JWT key) has no
/// equality, without a second copy of a secret and with nothing to print.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub(crate) fn of(parts: &[&[u8]]) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in parts {
            // Length first, so ("ab", "c") and ("a", "bc") differ.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        Self(hash.finalize().into())
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("redirect_http_from", &self.redirect_http_from)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// `None` when `admin.listen = ""` turns the admin listener off.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// `scheme://authority` of the app, no path.
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    pub connect_timeout: Duration,
    pub response_header_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pass_session_cookie: bool,
    /// Open upstream connections at most; a request waits `connect_timeout`
    /// for one, then gets 503.
    pub max_connections: usize,
    /// A WebSocket tunnel with no byte either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    pub headers: IdentityHeaders,
    pub assertion: Option<AssertionConfig>,
}

/// `[upstream.assertion]`: a signed JWT per authenticated request, for apps
/// that verify rather than trust the identity headers.
#[derive(Clone)]
pub struct AssertionConfig {
    pub header: HeaderName,
    pub algorithm: jsonwebtoken::Algorithm,
    pub key: jsonwebtoken::EncodingKey,
    pub audience: String,
    /// Of the secret or PEM bytes `key` was built from.
    pub(crate) fingerprint: Fingerprint,
}

/// Equal when signing alike: the key compares by what it was built from.
impl PartialEq for AssertionConfig {
    fn eq(&self, other: &Self) -> bool {
        self.header == other.header
            && self.algorithm == other.algorithm
            && self.audience == other.audience
            && self.fingerprint == other.fingerprint
    }
}

impl std::fmt::Debug for AssertionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionConfig")
            .field("header", &self.header)
            .field("algorithm", &self.algorithm)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Names of the identity headers portcullis injects (and strips from clients).
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityHeaders {
    pub user: HeaderName,
    pub email: HeaderName,
    pub roles: HeaderName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionStoreKind {
    Memory,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub store: SessionStoreKind,
    /// As configured; see `auth::cookies` for the development variant.
    pub cookie_name: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub same_site: SameSite,
    /// 0 = unlimited; otherwise the oldest session is revoked at login.
    pub max_per_user: u32,
    pub cache_ttl: Duration,
    pub recheck_interval: Duration,
}

/// `PartialEq` sees the URL and secret that `Debug` hides.
#[derive(Clone, PartialEq)]
pub struct PostgresConfig {
    pub url: String,
    pub pool_size: u32,
    /// Bounds each connection attempt, and the start-up work done before
    /// the listener opens.
    pub connect_timeout: Duration,
    pub migrate: bool,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PostgresConfig")
            .field("pool_size", &self.pool_size)
            .field("migrate", &self.migrate)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CredentialsConfig {
    File { path: PathBuf },
    Mysql(MysqlConfig),
}

/// `PartialEq` sees the URL and secret that `Debug` hides.
#[derive(Clone, PartialEq)]
pub struct MysqlConfig {
    pub url: String,
    pub pool_size: u32,
    pub user_query: String,
    pub rehash_update: Option<String>,
}

impl std::fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("MysqlConfig")
            .field("pool_size", &self.pool_size)
            .field("user_query", &self.user_query)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoginConfig {
    /// Path prefix of portcullis' own endpoints, e.g. `/auth` (no trailing slash).
    pub prefix: String,
    pub title: String,
    pub template: Option<PathBuf>,
    pub max_failures: u32,
    pub lockout: Duration,
    pub ip_rate: Rate,
    /// Threads for password hashing; resolved from 0 to the core count.
    pub hash_workers: usize,
    /// Longest wait for a hashing slot before a login gets 503.
    pub hash_wait: Duration,
}

/// `[forward_auth]`: the only headers `/auth/verify` reads the original
/// request from (and only from `server.trusted_proxies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuthConfig {
    pub uri_header: HeaderName,
    pub method_header: HeaderName,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// `audit_events` rows older than this are deleted.
    pub retention: Duration,
}

/// Self-service sign-up (`[registration]`), into the MySQL users table.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationConfig {
    pub password_min: usize,
    pub password_max: usize,
    /// INSERT with `?` bound to username, email, password_hash.
    pub insert: String,
}

/// Bearer tokens for API clients (`[tokens]`).
/// `PartialEq` sees the URL and secret that `Debug` hides.
#[derive(Clone, PartialEq)]
pub struct TokensConfig {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// HS256, HS384 or HS512.
    pub algorithm: jsonwebtoken::Algorithm,
    /// `None`: a random key per process, or one shared through PostgreSQL.
    pub secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for TokensConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokensConfig")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A partner site allowed to hand users over with a signed JWT
/// (`[[sso.partners]]`).
#[derive(Clone)]
pub struct SsoPartner {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    /// Explicit allow-list, all of one family matching the key.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub key: jsonwebtoken::DecodingKey,
    /// The shared secret of an HS* partner, so `sso-token` can mint.
    pub secret: Option<Vec<u8>>,
    pub max_age: Duration,
    pub clock_skew: Duration,
    pub user_claim: String,
    pub require_known_user: bool,
}

impl std::fmt::Debug for SsoPartner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoPartner")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// `count` events per `per`, e.g. `20/min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    pub access_log: bool,
}
