//! `proxy.toml`: loading, `${ENV}` interpolation and validation.
//!
//! Loading runs in two stages. `raw` deserializes the file as written (unknown
//! keys refused, defaults filled in); `validate` turns that into [`Config`],
//! which holds resolved types only (socket addresses, durations, compiled
//! route rules, a ready rustls config), so nothing downstream parses strings.
//! Every error names the key path and the offending value.

mod env;
mod raw;
mod tls;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use crate::policy::routes::RouteTable;

pub use validate::ConfigErrors;

/// The validated configuration the proxy runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    pub session: SessionConfig,
    pub postgres: PostgresConfig,
    pub credentials: CredentialsConfig,
    pub login: LoginConfig,
    pub tokens: TokensConfig,
    pub forward_auth: ForwardAuthConfig,
    pub audit: AuditConfig,
    pub sso: Vec<SsoPartner>,
    /// `None` unless `registration.enabled`.
    pub registration: Option<RegistrationConfig>,
    pub routes: Arc<RouteTable>,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `None` when `admin.listen = ""` turns the admin listener off.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
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

#[derive(Clone)]
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

#[derive(Debug, Clone)]
pub enum CredentialsConfig {
    File { path: PathBuf },
    Mysql(MysqlConfig),
}

#[derive(Clone)]
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

#[derive(Debug, Clone)]
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
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    pub password_min: usize,
    pub password_max: usize,
    /// INSERT with `?` bound to username, email, password_hash.
    pub insert: String,
}

/// Bearer tokens for API clients (`[tokens]`).
#[derive(Clone)]
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

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub access_log: bool,
}

impl Config {
    /// Reads, interpolates and validates the file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base)
            .map_err(|e| anyhow::anyhow!("invalid config {}:\n{e}", path.display()))
    }

    /// Parses and validates TOML text. Relative paths in it (users file,
    /// templates, certificates) are resolved from the working directory, as an
    /// operator reading the file expects; `_base` is kept for error context.
    pub fn from_toml(text: &str, _base: &Path) -> Result<Config, ConfigErrors> {
        Self::from_toml_with_env(text, &|name| std::env::var(name).ok())
    }

    /// [`Config::from_toml`] with `${NAME}` looked up in `env`.
    fn from_toml_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        // Syntax errors carry a line and column. Values are typed only after
        // `${ENV}` interpolation (`idle_timeout = "${IDLE}"` is a string
        // until then), so a refused value is named by its key path instead.
        let value: toml::Value = toml::from_str(text).map_err(ConfigErrors::from_toml)?;
        let value = env::interpolate(value, env)?;
        let raw: raw::RawConfig =
            serde_path_to_error::deserialize(value).map_err(ConfigErrors::from_typed)?;
        validate::validate(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::Config;
    use proptest::prelude::*;
    use std::path::Path;

    /// `cases` (`PROPTEST_CASES` overrides), no regression files: failures
    /// found are kept as named unit tests instead.
    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(cases),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn load(text: &str) {
        // Ok or a list of problems, never a panic.
        if let Err(e) = Config::from_toml(text, Path::new(".")) {
            assert!(!e.problems.is_empty(), "an error names no problem");
        }
    }

    /// Lines that are almost TOML, or TOML at its edges.
    #[rustfmt::skip]
    fn toml_line() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "[server]", "[server.tls]", "[upstream.headers]", "[upstream.assertion]", "[[route]]",
            "[[sso.partners]]", "[session]", "[login]", "[tokens]", "[credentials.mysql]", "[log]",
            "[server", "]]", "[[", "[a.b.c]", "[]", "path = \"/a\"", "path = '/**'", "a = 1",
            "listen = \"0.0.0.0:8080\"", "idle_timeout = \"99999999999999999999y\"",
            "max_header_bytes = 9223372036854775807", "max_connections = -1", "x.y = [1, \"a\"]",
            "inline = { a = 1, b = { c = [] } }", "s = '''", "\"\"\"", "=", "= 1", "# comment",
            "", "t = 1979-05-27T07:32:00Z", "n = nan", "n = -inf", "n = 0x7fffffffffffffff",
            "n = 99999999999999999999", "k = \"${HOME}\"", "k = \"${\"", "k = \"\\uD800\"",
            "k = \"\\u0000\"", "roles = [\"admin\"]", "methods = [\"GET\", 1]", "access = \"deny\"",
            "algorithms = [\"HS256\"]", "secret = \"0123456789abcdef0123456789abcdef\"", "\u{feff}",
            "a = \"\u{0}\"", "\r", "a.\"b\".c = true",
        ])
    }

    /// `a = [[[...`, `a = {b = {b = ...`, `[server.a.a...]`, `a.a.a... = 1`:
    /// nesting as deep as a file can go.
    fn nested() -> impl Strategy<Value = String> {
        (0usize..3000, 0..4, any::<bool>()).prop_map(|(depth, shape, closed)| {
            let (open, close) = match shape {
                0 => ("[", "]"),
                1 => ("{b = ", "}"),
                2 => return format!("[server{}]\nb = 1", ".a".repeat(depth)),
                _ => return format!("server{}.b = 1", ".a".repeat(depth)),
            };
            let mut s = format!("a = {}1", open.repeat(depth));
            if closed {
                s.push_str(&close.repeat(depth));
            }
            s
        })
    }

    /// Every key `proxy.toml` has, with the type it takes: `s` string,
    /// `i` integer, `b` boolean, `l` list of strings; `!` marks a key its
    /// table cannot do without.
    #[rustfmt::skip]
    const SCHEMA: &[(&str, &[&str])] = &[
        ("server", &["s:listen", "s:public_url", "l:trusted_proxies", "s:header_read_timeout",
            "i:max_header_bytes", "i:max_connections", "s:shutdown_grace", "s:body_read_timeout",
            "s:keepalive_timeout", "i:h2_max_streams", "l:websocket_origins"]),
        ("server.tls", &["s!cert", "s!key", "s:redirect_http_from"]),
        ("admin", &["s:listen"]),
        ("upstream", &["s:url", "s:connect_timeout", "s:response_header_timeout",
            "s:pool_idle_timeout", "b:pass_session_cookie", "i:max_connections",
            "s:tunnel_idle_timeout"]),
        ("upstream.headers", &["s:user", "s:email", "s:roles"]),
        ("upstream.assertion", &["s:header", "s:algorithm", "s:key", "s:secret", "s!audience"]),
        ("session", &["s:store", "s:cookie_name", "s:idle_timeout", "s:absolute_timeout",
            "s:same_site", "i:max_per_user", "s:cache_ttl", "s:recheck_interval"]),
        ("postgres", &["s:url", "i:pool_size", "s:connect_timeout", "b:migrate"]),
        ("credentials", &["s:backend"]),
        ("credentials.file", &["s:path"]),
        ("credentials.mysql", &["s:url", "i:pool_size", "s:user_query", "s:rehash_update"]),
        ("login", &["s:prefix", "s:title", "s:template", "i:max_failures", "s:lockout",
            "s:ip_rate", "i:hash_workers", "s:hash_wait"]),
        ("registration", &["b:enabled", "i:password_min", "i:password_max", "s:insert"]),
        ("tokens", &["s:access_ttl", "s:refresh_ttl", "s:algorithm", "s:secret"]),
        ("forward_auth", &["s:uri_header", "s:method_header"]),
        ("audit", &["s:retention"]),
        ("log", &["s:format", "b:access_log"]),
        ("route[]", &["s!path", "l:methods", "s:access", "l:roles"]),
        ("sso.partners[]", &["s!name", "s!issuer", "s!audience", "l!algorithms", "s:key",
            "s:secret", "s:max_age", "s:clock_skew", "s:user_claim", "b:require_known_user"]),
    ];

    /// Values that sit on the edges of what each key accepts.
    #[rustfmt::skip]
    fn string_value() -> impl Strategy<Value = String> {
        prop_oneof![
            20 => prop::sample::select(vec![
                "", "0s", "1ns", "30s", "5m", "12h", "7d", "18446744073709551615s",
                "99999999999999999999y", "-1s", "1.5h", "10 m", "http://127.0.0.1:8000",
                "https://app.example.com", "http://", "http://[::1]:1/", "http://a:b@h/p?q",
                "postgres://u@h/db", "mysql://r@h/app", "mysql://", "ftp://x", "X-Auth-User",
                "bad header", "x_y", "/auth", "/", "//", "/a/../b", "/auth/", "/%2e", "auth",
                "/**", "/a**", "/*/x", "HS256", "HS384", "EdDSA", "RS256", "ES256", "none", "PS256",
                "20/min", "0/min", "4294967296/s", "1/0s", "1/18446744073709551615s", "5/", "/min",
                "10.0.0.0/8", "::1/200", "1.2.3.4", "300.0.0.1", "0.0.0.0:8080", "127.0.0.1:0",
                "[::1]:99999", "memory", "postgres", "file", "mysql", "lax", "strict", "json",
                "pretty", "public", "deny", "authenticated", "GET", "get", "BREW", "SELECT ? ?",
                "INSERT ? ? ?", "UPDATE ? ?", "__Host-x", "email", "0123456789abcdef0123456789abcdef",
                "\u{0}", "\u{85}", "é",
            ]).prop_map(str::to_string),
            5 => "[ -~]{0,16}",
            1 => prop::sample::select(vec![
                "${HOME}", "${PORTCULLIS_PROPTEST_UNSET}", "${", "${a-b}", "$${X}", "a${HOME}b",
            ]).prop_map(str::to_string),
        ]
    }

    #[rustfmt::skip]
    fn value(kind: char) -> BoxedStrategy<toml::Value> {
        let typed = match kind {
            'i' => prop_oneof![
                4 => prop::sample::select(vec![
                    0i64, 1, 7, 8, 12, 128, 1024, 1025, 8191, 8192, 65536, 1 << 20,
                    (1 << 20) + 1, 10_000, 10_001, u32::MAX as i64,
                ]),
                4 => 0..=u32::MAX as i64,
                1 => prop_oneof![9 => 0..=u32::MAX as i64, 1 => any::<i64>()],
            ]
            .prop_map(toml::Value::Integer)
            .boxed(),
            'b' => any::<bool>().prop_map(toml::Value::Boolean).boxed(),
            'l' => prop::collection::vec(string_value().prop_map(toml::Value::String), 0..4)
                .prop_map(toml::Value::Array)
                .boxed(),
            _ => string_value().prop_map(toml::Value::String).boxed(),
        };
        let wrong = prop_oneof![
            any::<f64>().prop_map(toml::Value::Float),
            any::<i64>().prop_map(toml::Value::Integer),
            string_value().prop_map(toml::Value::String),
            Just(toml::Value::Table(toml::Table::new())),
        ];
        prop_oneof![300 => typed, 1 => wrong].boxed()
    }

    /// A structurally valid `proxy.toml`: a random subset of sections and
    /// keys (now and then an unknown one), each with a random value of
    /// (mostly) the right type.
    fn structured() -> impl Strategy<Value = toml::Table> {
        let sections: Vec<BoxedStrategy<(&'static str, Vec<toml::Table>)>> = SCHEMA
            .iter()
            .map(|(section, keys)| {
                let entries: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        let (kind, name) = k.split_at(2);
                        let present = if kind.ends_with('!') { 0.98 } else { 0.6 };
                        prop::option::weighted(present, value(kind.chars().next().unwrap()))
                            .prop_map(move |v| (name, v))
                    })
                    .collect();
                let table = (entries, prop::option::weighted(0.005, string_value())).prop_map(
                    |(entries, unknown)| {
                        let mut t: toml::Table = entries
                            .into_iter()
                            .filter_map(|(k, v)| Some((k.to_string(), v?)))
                            .collect();
                        if let Some(v) = unknown {
                            t.insert("unknown_key".into(), toml::Value::String(v));
                        }
                        t
                    },
                );
                let count = if section.ends_with("[]") { 0..4 } else { 0..2 };
                (Just(*section), prop::collection::vec(table, count)).boxed()
            })
            .collect();
        sections.prop_map(|sections| {
            let mut root = toml::Table::new();
            for (section, tables) in sections {
                let (path, array) = match section.strip_suffix("[]") {
                    Some(p) => (p, true),
                    None => (section, false),
                };
                let mut parts: Vec<&str> = path.split('.').collect();
                let last = parts.pop().unwrap();
                let mut parent = &mut root;
                for p in parts {
                    parent = parent
                        .entry(p)
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                        .as_table_mut()
                        .unwrap();
                }
                if array {
                    let items = tables.into_iter().map(toml::Value::Table).collect();
                    parent.insert(last.into(), toml::Value::Array(items));
                } else if let Some(t) = tables.into_iter().next() {
                    let slot = parent
                        .entry(last)
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    slot.as_table_mut().unwrap().extend(t);
                }
            }
            root
        })
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn any_text_loads_or_is_refused(text in any::<String>()) {
            load(&text);
        }

        #[test]
        fn toml_ish_text_loads_or_is_refused(
            lines in prop::collection::vec(toml_line(), 0..16),
        ) {
            load(&lines.join("\n"));
        }

        #[test]
        fn random_values_in_every_key_load_or_are_refused(table in structured()) {
            let text = toml::to_string(&table).unwrap();
            load(&text);
        }
    }

    proptest! {
        #![proptest_config(config(16))]

        #[test]
        fn deep_nesting_is_refused_without_overflowing(text in nested()) {
            load(&text);
        }
    }
}
