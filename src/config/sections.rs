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
pub(crate) struct ServerConfig {
    pub(crate) listen: SocketAddr,
    /// Where browsers reach portcullis; `None` means "assume https".
    pub(crate) public_url: Option<PublicUrl>,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) shutdown_grace: Duration,
    /// Longest wait for the next bytes of a request body: 408 for our own
    /// endpoints, the upstream request aborted for proxied ones.
    pub(crate) body_read_timeout: Duration,
    /// An h1 or h2 connection with no request in flight is closed after this.
    pub(crate) keepalive_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub(crate) h2_max_streams: u32,
    /// Origins besides `public_url`'s allowed to open WebSockets
    /// (`scheme://host[:port]`, lower case).
    pub(crate) websocket_origins: Vec<String>,
    pub(crate) tls: Option<TlsConfig>,
}

/// The scheme and origin of `server.public_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub(crate) https: bool,
    /// `scheme://host[:port]`, compared with a browser's `Origin` header.
    pub(crate) origin: String,
}

#[derive(Clone)]
pub(crate) struct TlsConfig {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) server_config: Arc<rustls::ServerConfig>,
    pub(crate) redirect_http_from: Option<SocketAddr>,
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
pub(crate) struct AdminConfig {
    /// `None` when `admin.listen = ""` turns the admin listener off.
    pub(crate) listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// `scheme://authority` of the app, no path.
    pub(crate) scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_header_timeout: Duration,
    pub(crate) pool_idle_timeout: Duration,
    pub(crate) pass_session_cookie: bool,
    /// Open upstream connections at most; a request waits `connect_timeout`
    /// for one, then gets 503.
    pub(crate) max_connections: usize,
    /// A WebSocket tunnel with no byte either way for this long is closed.
    pub(crate) tunnel_idle_timeout: Duration,
    pub(crate) headers: IdentityHeaders,
    pub(crate) assertion: Option<AssertionConfig>,
}

/// `[upstream.assertion]`: a signed JWT per authenticated request, for apps
/// that verify rather than trust the identity headers.
#[derive(Clone)]
pub struct AssertionConfig {
    pub(crate) header: HeaderName,
    pub(crate) algorithm: jsonwebtoken::Algorithm,
    pub(crate) key: jsonwebtoken::EncodingKey,
    pub(crate) audience: String,
    /// Of the secret or PEM bytes `key` was built from.
    pub(crate) fingerprint: Fingerprint,
    /// The public key and its `kid`, for `{prefix}/jwks.json` and the JWT
    /// header; `None` for HS256.
    pub(crate) public: Option<super::PublicJwk>,
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
    pub(crate) user: HeaderName,
    pub(crate) email: HeaderName,
    pub(crate) roles: HeaderName,
    /// The session's public id (the refresh family's for bearer callers).
    pub(crate) session: HeaderName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SessionStoreKind {
    /// One file (`[sqlite] path`), survives restarts; a single instance.
    Sqlite,
    /// Several instances sharing one database.
    Postgres,
    /// Throwaway runs: everything ends with the process.
    Memory,
}

/// `[sqlite]`: where the embedded store keeps its file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SqliteConfig {
    /// Absolute, or relative to the config file's directory.
    pub(crate) path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SameSite {
    Lax,
    Strict,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub(crate) store: SessionStoreKind,
    /// As configured; see `auth::cookies` for the development variant.
    pub(crate) cookie_name: String,
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_timeout: Duration,
    pub(crate) same_site: SameSite,
    /// 0 = unlimited; otherwise the oldest session is revoked at login.
    pub(crate) max_per_user: u32,
    pub(crate) cache_ttl: Duration,
    pub(crate) recheck_interval: Duration,
}

/// `PartialEq` sees the URL and secret that `Debug` hides.
#[derive(Clone, PartialEq)]
pub struct PostgresConfig {
    pub(crate) url: String,
    pub(crate) pool_size: u32,
    /// Bounds each connection attempt, and the start-up work done before
    /// the listener opens.
    pub(crate) connect_timeout: Duration,
    pub(crate) migrate: bool,
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
pub(crate) enum CredentialsConfig {
    File { path: PathBuf },
    Mysql(MysqlConfig),
}

/// `PartialEq` sees the URL and secret that `Debug` hides.
#[derive(Clone, PartialEq)]
pub struct MysqlConfig {
    pub(crate) url: String,
    pub(crate) pool_size: u32,
    pub(crate) user_query: String,
    pub(crate) rehash_update: Option<String>,
    /// `UPDATE ... SET password_hash = ? WHERE id = ?`: enables password
    /// change and reset.
    pub(crate) password_update: Option<String>,
    /// Run after each successful sign-in, `?` bound to the user id.
    pub(crate) login_update: Option<String>,
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
    pub(crate) prefix: String,
    pub(crate) title: String,
    pub(crate) template: Option<PathBuf>,
    pub(crate) max_failures: u32,
    pub(crate) lockout: Duration,
    pub(crate) ip_rate: Rate,
    /// Threads for password hashing; resolved from 0 to the core count.
    pub(crate) hash_workers: usize,
    /// Longest wait for a hashing slot before a login gets 503.
    pub(crate) hash_wait: Duration,
}

/// `[forward_auth]`: the only headers `/auth/verify` reads the original
/// request from (and only from `server.trusted_proxies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuthConfig {
    pub(crate) uri_header: HeaderName,
    pub(crate) method_header: HeaderName,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditConfig {
    /// `audit_events` rows older than this are deleted.
    pub(crate) retention: Duration,
}

/// What a new password must satisfy (`registration.password_min` /
/// `password_max`), wherever a user chooses one: sign-up, password change,
/// reset. In characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PasswordPolicy {
    pub(crate) min: usize,
    pub(crate) max: usize,
}

/// Self-service sign-up (`[registration]`), into the MySQL users table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RegistrationConfig {
    /// INSERT with `?` bound to username, email, password_hash.
    pub(crate) insert: String,
    /// `Some(UPDATE ... WHERE id = ?)` when new accounts must follow an
    /// emailed link before they can sign in (`registration.verify_email`).
    pub(crate) activate: Option<String>,
}

/// `[mfa]`: second factors (TOTP).
/// `PartialEq` sees the key that `Debug` hides.
#[derive(Clone, PartialEq)]
pub(crate) struct MfaConfig {
    /// Users with any of these roles must enrol at their next sign-in.
    pub(crate) required_roles: Vec<String>,
    /// Shown in the authenticator app.
    pub(crate) issuer: String,
    /// Encrypts TOTP secrets at rest when set.
    pub(crate) secret_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for MfaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaConfig")
            .field("required_roles", &self.required_roles)
            .field("issuer", &self.issuer)
            .field("encrypted", &self.secret_key.is_some())
            .finish()
    }
}

/// `[mail]`: outgoing mail for password reset and address verification.
/// `PartialEq` sees the URL that `Debug` hides (it may carry a password).
#[derive(Clone, PartialEq)]
pub(crate) struct MailConfig {
    /// `smtp://` (STARTTLS when offered) or `smtps://`, `user:pass@` allowed.
    pub(crate) smtp: String,
    pub(crate) from: String,
    pub(crate) reset_ttl: Duration,
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("from", &self.from)
            .field("reset_ttl", &self.reset_ttl)
            .finish_non_exhaustive()
    }
}

/// Bearer tokens for API clients (`[tokens]`).
/// `PartialEq` sees the URL and secret that `Debug` hides.
#[derive(Clone, PartialEq)]
pub struct TokensConfig {
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
    /// HS256, HS384 or HS512.
    pub(crate) algorithm: jsonwebtoken::Algorithm,
    /// `None`: a random key per process, or one shared through PostgreSQL.
    pub(crate) secret: Option<Vec<u8>>,
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
    pub(crate) issuer: String,
    pub(crate) audience: String,
    /// Explicit allow-list, all of one family matching the key.
    pub(crate) algorithms: Vec<jsonwebtoken::Algorithm>,
    pub(crate) key: jsonwebtoken::DecodingKey,
    /// The shared secret of an HS* partner, so `sso-token` can mint.
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) max_age: Duration,
    pub(crate) clock_skew: Duration,
    pub(crate) user_claim: String,
    pub(crate) require_known_user: bool,
    /// The partner's users who have a second factor here (or a role that
    /// requires one) go through its step after the hand-off.
    pub(crate) require_mfa: bool,
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
    pub(crate) count: u32,
    pub(crate) per: Duration,
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
    pub(crate) access_log: bool,
}
