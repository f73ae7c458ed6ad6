//! The second stage of config loading: `RawConfig` -> [`Config`]. Collects
//! every problem, each as `key.path: what is wrong (value)`, so an operator
//! fixes the whole file in one pass.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use super::raw::{self, CredentialsBackend, RawConfig};
use super::*;
use crate::policy::routes::{RouteSpec, RouteTable};

/// Every problem found in a config, one `key: message` per line.
#[derive(Debug, Default)]
pub struct ConfigErrors {
    pub problems: Vec<(String, String)>,
}

impl ConfigErrors {
    pub(crate) fn push(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push((key.to_string(), message.into()));
    }

    pub(crate) fn from_toml(e: toml::de::Error) -> Self {
        let mut errors = Self::default();
        // toml's message already says where (line, column, key).
        errors.push("proxy.toml", e.to_string().trim_end().to_string());
        errors
    }

    /// A value serde refused, as `key.path: message`.
    pub(crate) fn from_typed(e: serde_path_to_error::Error<toml::de::Error>) -> Self {
        let mut errors = Self::default();
        let key = e.path().to_string();
        let key = if key == "." { "proxy.toml" } else { &key };
        errors.push(key, e.inner().message().trim_end().to_string());
        errors
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, message)) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{key}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub(crate) fn validate(raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut e = ConfigErrors::default();
    let server = server(raw.server, &mut e);
    let admin = AdminConfig {
        listen: if raw.admin.listen.is_empty() {
            None
        } else {
            socket_addr(&mut e, "admin.listen", &raw.admin.listen)
        },
    };
    let (upstream, assertion_secret) = upstream(raw.upstream, &mut e);
    let session = session(raw.session, &mut e);
    let postgres = PostgresConfig {
        url: raw.postgres.url,
        pool_size: raw.postgres.pool_size,
        connect_timeout: nonzero(
            &mut e,
            "postgres.connect_timeout",
            raw.postgres.connect_timeout,
        ),
        migrate: raw.postgres.migrate,
    };
    if postgres.pool_size == 0 {
        e.push("postgres.pool_size", "must be at least 1");
    }
    if session.store == SessionStoreKind::Postgres {
        if let Err(err) = postgres.url.parse::<tokio_postgres::Config>() {
            e.push("postgres.url", format!("is not a PostgreSQL URL like \"postgres://portcullis@127.0.0.1/portcullis\": {err}"));
        }
    }
    let credentials = credentials(raw.credentials, &mut e);
    let login = login(raw.login, &mut e);
    let tokens = tokens(raw.tokens, &mut e);
    let sso = raw
        .sso
        .partners
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| partner(i, p, &mut e))
        .collect::<Vec<_>>();
    for (i, p) in sso.iter().enumerate() {
        if sso[..i]
            .iter()
            .any(|q| q.name == p.name || q.issuer == p.issuer)
        {
            e.push(
                &format!("sso.partners[{i}]"),
                "name and issuer must be unique among partners",
            );
        }
    }
    let registration = registration(raw.registration, &credentials, &mut e);
    if registration.is_some() {
        // Sign-up does not verify email addresses: someone could register a
        // victim's address and be handed the victim's SSO log-in later.
        for (i, p) in sso.iter().enumerate() {
            if p.require_known_user && p.user_claim == "email" {
                e.push(
                    &format!("sso.partners[{i}].user_claim"),
                    "\"email\" with require_known_user cannot be combined with registration.enabled (addresses are not verified at sign-up)",
                );
            }
        }
    }
    if let Some(secret) = &tokens.secret {
        for (i, p) in sso.iter().enumerate() {
            if p.secret.as_ref() == Some(secret) {
                e.push(
                    &format!("sso.partners[{i}].secret"),
                    "must differ from tokens.secret (the partner could mint bearer tokens)",
                );
            }
        }
    }
    if let Some(assertion_secret) = &assertion_secret {
        // The app holds this secret: with it, it could mint our bearer
        // tokens or a partner's hand-offs.
        let reused = tokens.secret.as_ref() == Some(assertion_secret)
            || sso
                .iter()
                .any(|p| p.secret.as_ref() == Some(assertion_secret));
        if reused {
            e.push(
                "upstream.assertion.secret",
                "must differ from tokens.secret and every sso partner secret (the app could mint tokens)",
            );
        }
    }
    let forward_auth = ForwardAuthConfig {
        uri_header: header_name(
            &mut e,
            "forward_auth.uri_header",
            &raw.forward_auth.uri_header,
        ),
        method_header: header_name(
            &mut e,
            "forward_auth.method_header",
            &raw.forward_auth.method_header,
        ),
    };
    let audit = AuditConfig {
        retention: nonzero(&mut e, "audit.retention", raw.audit.retention),
    };
    let routes = routes(raw.route, &mut e);
    let log = LogConfig {
        format: raw.log.format,
        access_log: raw.log.access_log,
    };
    let config = Config {
        server,
        admin,
        upstream,
        session,
        postgres,
        credentials,
        login,
        tokens,
        forward_auth,
        audit,
        sso,
        registration,
        routes: Arc::new(routes),
        log,
    };
    e.into_result(config)
}

fn server(raw: raw::RawServer, e: &mut ConfigErrors) -> ServerConfig {
    let listen =
        socket_addr(e, "server.listen", &raw.listen).unwrap_or(([0, 0, 0, 0], 8080).into());
    let public_url = if raw.public_url.is_empty() {
        None
    } else {
        public_url(&raw.public_url, e)
    };
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let parsed = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => Some(net),
                Err(_) => {
                    e.push(
                        &format!("server.trusted_proxies[{i}]"),
                        format!("{s:?} is not an IP address or CIDR like \"10.0.0.0/8\""),
                    );
                    None
                }
            }
        })
        .collect();
    let max_header_bytes = raw.max_header_bytes;
    if !(8192..=1 << 20).contains(&max_header_bytes) {
        e.push(
            "server.max_header_bytes",
            format!("must be between 8192 and 1048576, not {max_header_bytes}"),
        );
    }
    if raw.max_connections == 0 {
        e.push("server.max_connections", "must be at least 1");
    }
    let tls = raw.tls.and_then(|t| tls(t, e));
    if !(1..=10_000).contains(&raw.h2_max_streams) {
        e.push(
            "server.h2_max_streams",
            format!("must be between 1 and 10000, not {}", raw.h2_max_streams),
        );
    }
    let websocket_origins = raw
        .websocket_origins
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let origin = origin_of(s);
            if origin.is_none() {
                e.push(
                    &format!("server.websocket_origins[{i}]"),
                    format!("{s:?} is not an origin like \"https://app.example.com\""),
                );
            }
            origin
        })
        .collect();
    ServerConfig {
        listen,
        public_url,
        trusted_proxies,
        header_read_timeout: nonzero(e, "server.header_read_timeout", raw.header_read_timeout),
        max_header_bytes: max_header_bytes.clamp(8192, 1 << 20) as usize,
        max_connections: raw.max_connections.clamp(1, u32::MAX as u64) as usize,
        shutdown_grace: raw.shutdown_grace,
        body_read_timeout: nonzero(e, "server.body_read_timeout", raw.body_read_timeout),
        keepalive_timeout: nonzero(e, "server.keepalive_timeout", raw.keepalive_timeout),
        h2_max_streams: raw.h2_max_streams.clamp(1, 10_000),
        websocket_origins,
        tls,
    }
}

fn public_url(s: &str, e: &mut ConfigErrors) -> Option<PublicUrl> {
    let key = "server.public_url";
    let Ok(uri) = s.parse::<http::Uri>() else {
        e.push(
            key,
            format!("{s:?} is not a URL like \"https://app.example.com\""),
        );
        return None;
    };
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            e.push(
                key,
                format!("{s:?} must start with https:// (or http:// for local development)"),
            );
            return None;
        }
    };
    let Some(authority) = uri.authority() else {
        e.push(key, format!("{s:?} has no host"));
        return None;
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        e.push(key, format!("{s:?} must be an origin without a path"));
    }
    let scheme = if https { "https" } else { "http" };
    Some(PublicUrl {
        https,
        origin: format!("{scheme}://{}", authority.as_str().to_ascii_lowercase()),
    })
}

/// `scheme://host[:port]` in lower case, as browsers send it in `Origin`,
/// for an http(s) URL without a path; `None` for anything else.
fn origin_of(s: &str) -> Option<String> {
    let uri = s.parse::<http::Uri>().ok()?;
    let scheme = uri
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    let authority = uri.authority()?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return None;
    }
    Some(format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))
}

fn tls(raw: raw::RawTls, e: &mut ConfigErrors) -> Option<TlsConfig> {
    let redirect_http_from = if raw.redirect_http_from.is_empty() {
        None
    } else {
        socket_addr(e, "server.tls.redirect_http_from", &raw.redirect_http_from)
    };
    let cert = PathBuf::from(&raw.cert);
    let key = PathBuf::from(&raw.key);
    match super::tls::server_config(&cert, &key) {
        Ok((server_config, fingerprint)) => Some(TlsConfig {
            cert,
            key,
            server_config,
            redirect_http_from,
            fingerprint,
        }),
        Err(err) => {
            e.push("server.tls", err);
            None
        }
    }
}

fn upstream(raw: raw::RawUpstream, e: &mut ConfigErrors) -> (UpstreamConfig, Option<Vec<u8>>) {
    let key = "upstream.url";
    let (scheme, authority) = match raw.url.parse::<http::Uri>() {
        Ok(uri) if uri.scheme() == Some(&http::uri::Scheme::HTTP) && uri.authority().is_some() => {
            if !matches!(uri.path(), "" | "/") {
                e.push(
                    key,
                    format!(
                        "{:?} must not have a path: requests keep their own",
                        raw.url
                    ),
                );
            }
            (
                uri.scheme().unwrap().clone(),
                uri.authority().unwrap().clone(),
            )
        }
        Ok(uri) if uri.scheme_str() == Some("https") => {
            e.push(key, format!("{:?}: https upstreams are not supported; the app listens on loopback or a private network over http", raw.url));
            (http::uri::Scheme::HTTP, "127.0.0.1:8000".parse().unwrap())
        }
        _ => {
            e.push(
                key,
                format!("{:?} is not a URL like \"http://127.0.0.1:8000\"", raw.url),
            );
            (http::uri::Scheme::HTTP, "127.0.0.1:8000".parse().unwrap())
        }
    };
    let (assertion, assertion_secret) = match raw.assertion.map(|a| assertion(a, e)) {
        Some(Some((config, secret))) => (Some(config), secret),
        _ => (None, None),
    };
    if raw.max_connections == 0 {
        e.push("upstream.max_connections", "must be at least 1");
    }
    let headers = IdentityHeaders {
        user: header_name(e, "upstream.headers.user", &raw.headers.user),
        email: header_name(e, "upstream.headers.email", &raw.headers.email),
        roles: header_name(e, "upstream.headers.roles", &raw.headers.roles),
    };
    let config = UpstreamConfig {
        scheme,
        authority,
        connect_timeout: nonzero(e, "upstream.connect_timeout", raw.connect_timeout),
        response_header_timeout: nonzero(
            e,
            "upstream.response_header_timeout",
            raw.response_header_timeout,
        ),
        pool_idle_timeout: nonzero(e, "upstream.pool_idle_timeout", raw.pool_idle_timeout),
        pass_session_cookie: raw.pass_session_cookie,
        max_connections: raw.max_connections.max(1) as usize,
        tunnel_idle_timeout: nonzero(e, "upstream.tunnel_idle_timeout", raw.tunnel_idle_timeout),
        headers,
        assertion,
    };
    (config, assertion_secret)
}

/// The assertion settings, and the HS256 secret (to check it is not reused).
fn assertion(
    raw: raw::RawAssertion,
    e: &mut ConfigErrors,
) -> Option<(AssertionConfig, Option<Vec<u8>>)> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    let header = header_name(e, "upstream.assertion.header", &raw.header);
    let algorithm: Algorithm = raw.algorithm.into();
    if raw.audience.trim().is_empty() {
        e.push(
            "upstream.assertion.audience",
            "must name the app, e.g. \"growbal\"",
        );
    }
    if algorithm == Algorithm::HS256 {
        let secret = if !raw.secret.is_empty() {
            raw.secret.into_bytes()
        } else if !raw.key.is_empty() {
            // A file holding the secret, as earlier versions read it.
            match std::fs::read(&raw.key) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec(),
                Err(err) => {
                    e.push(
                        "upstream.assertion.key",
                        format!("cannot read {}: {err}", raw.key),
                    );
                    return None;
                }
            }
        } else {
            e.push(
                "upstream.assertion.secret",
                "HS256 needs a secret of at least 32 bytes (e.g. \"${ASSERTION_SECRET}\")",
            );
            return None;
        };
        if secret.len() < 32 {
            e.push(
                "upstream.assertion.secret",
                "an HS256 secret must be at least 32 bytes",
            );
        }
        let config = AssertionConfig {
            header,
            algorithm,
            key: EncodingKey::from_secret(&secret),
            audience: raw.audience,
        };
        return Some((config, Some(secret)));
    }
    if !raw.secret.is_empty() {
        e.push(
            "upstream.assertion.secret",
            format!("is for HS256; {algorithm:?} signs with a PEM private key in upstream.assertion.key"),
        );
    }
    let bytes = match std::fs::read(&raw.key) {
        Ok(bytes) => bytes,
        Err(err) => {
            e.push(
                "upstream.assertion.key",
                format!("cannot read {:?}: {err}", raw.key),
            );
            return None;
        }
    };
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&bytes),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&bytes),
        _ => EncodingKey::from_ed_pem(&bytes),
    };
    match key {
        Ok(key) => Some((
            AssertionConfig {
                header,
                algorithm,
                key,
                audience: raw.audience,
            },
            None,
        )),
        Err(err) => {
            e.push(
                "upstream.assertion.key",
                format!(
                    "{}: not a PEM private key for {:?}: {err}",
                    raw.key, algorithm
                ),
            );
            None
        }
    }
}

fn session(raw: raw::RawSession, e: &mut ConfigErrors) -> SessionConfig {
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

fn credentials(raw: raw::RawCredentials, e: &mut ConfigErrors) -> CredentialsConfig {
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

fn login(raw: raw::RawLogin, e: &mut ConfigErrors) -> LoginConfig {
    let prefix = raw.prefix.trim_end_matches('/').to_string();
    let valid_prefix = prefix.starts_with('/')
        && prefix.len() > 1
        && crate::policy::path::normalize(&prefix).is_ok_and(|p| p == prefix);
    if !valid_prefix {
        e.push(
            "login.prefix",
            format!("{:?} must be a normalized path like \"/auth\"", raw.prefix),
        );
    }
    if raw.max_failures == 0 {
        e.push("login.max_failures", "must be at least 1");
    }
    let ip_rate = rate(&raw.ip_rate).unwrap_or_else(|| {
        e.push(
            "login.ip_rate",
            format!("{:?} is not a rate like \"20/min\"", raw.ip_rate),
        );
        Rate {
            count: 20,
            per: Duration::from_secs(60),
        }
    });
    let hash_workers = if raw.hash_workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        raw.hash_workers
    };
    LoginConfig {
        prefix,
        title: raw.title,
        template: (!raw.template.is_empty()).then(|| PathBuf::from(raw.template)),
        max_failures: raw.max_failures,
        lockout: nonzero(e, "login.lockout", raw.lockout),
        ip_rate,
        hash_workers,
        hash_wait: nonzero(e, "login.hash_wait", raw.hash_wait),
    }
}

fn registration(
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

fn tokens(raw: raw::RawTokens, e: &mut ConfigErrors) -> TokensConfig {
    let secret = (!raw.secret.is_empty()).then(|| raw.secret.into_bytes());
    if secret.as_ref().is_some_and(|s| s.len() < 32) {
        e.push(
            "tokens.secret",
            "must be at least 32 bytes (e.g. `openssl rand -base64 48`)",
        );
    }
    TokensConfig {
        access_ttl: nonzero(e, "tokens.access_ttl", raw.access_ttl),
        refresh_ttl: nonzero(e, "tokens.refresh_ttl", raw.refresh_ttl),
        algorithm: raw.algorithm.into(),
        secret,
    }
}

fn partner(i: usize, raw: raw::RawPartner, e: &mut ConfigErrors) -> Option<SsoPartner> {
    use jsonwebtoken::{AlgorithmFamily, DecodingKey};
    let key_path = |field: &str| format!("sso.partners[{i}].{field}");
    let before = e.problems.len();
    for (field, value) in [
        ("name", &raw.name),
        ("issuer", &raw.issuer),
        ("audience", &raw.audience),
        ("user_claim", &raw.user_claim),
    ] {
        if value.trim().is_empty() {
            e.push(&key_path(field), "must not be empty");
        }
    }
    let algorithms = raw.algorithms;
    if algorithms.is_empty() {
        e.push(
            &key_path("algorithms"),
            "must list the algorithms this partner signs with, e.g. [\"RS256\"]",
        );
    }
    let families: Vec<AlgorithmFamily> = algorithms.iter().map(|a| a.family()).collect();
    if families.windows(2).any(|w| w[0] != w[1]) {
        e.push(
            &key_path("algorithms"),
            "must all be of one family (HS*, RS*/PS*, ES* or EdDSA): one key cannot serve two",
        );
    }
    let family = families.first().copied();
    let key = match (raw.key.is_empty(), raw.secret.is_empty(), family) {
        (true, false, Some(AlgorithmFamily::Hmac)) => {
            if raw.secret.len() < 32 {
                e.push(&key_path("secret"), "must be at least 32 bytes");
            }
            Some(DecodingKey::from_secret(raw.secret.as_bytes()))
        }
        (false, true, Some(family)) if family != AlgorithmFamily::Hmac => {
            match std::fs::read(&raw.key) {
                Ok(pem) => {
                    let parsed = match family {
                        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
                        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
                        _ => DecodingKey::from_ed_pem(&pem),
                    };
                    match parsed {
                        Ok(key) => Some(key),
                        Err(err) => {
                            e.push(
                                &key_path("key"),
                                format!(
                                    "{}: not a PEM public key for {:?}: {err}",
                                    raw.key, algorithms[0]
                                ),
                            );
                            None
                        }
                    }
                }
                Err(err) => {
                    e.push(&key_path("key"), format!("cannot read {}: {err}", raw.key));
                    None
                }
            }
        }
        (_, _, None) => None,
        (true, true, _) => {
            e.push(
                &key_path("key"),
                "set `key` (PEM public key) for RS/PS/ES/EdDSA or `secret` for HS*",
            );
            None
        }
        (false, false, _) => {
            e.push(&key_path("key"), "set either `key` or `secret`, not both");
            None
        }
        (true, false, Some(_)) => {
            e.push(&key_path("secret"), "a shared secret only goes with HS* algorithms; use `key` for public-key algorithms");
            None
        }
        (false, true, Some(_)) => {
            e.push(
                &key_path("key"),
                "HS* algorithms use `secret`, not a public key (that would allow HS/RS confusion)",
            );
            None
        }
    };
    let max_age = nonzero(e, &key_path("max_age"), raw.max_age);
    let clock_skew = raw.clock_skew;
    if clock_skew > Duration::from_secs(300) || clock_skew > max_age {
        e.push(
            &key_path("clock_skew"),
            format!(
                "{:?} must be at most 5m and at most max_age",
                show(clock_skew)
            ),
        );
    }
    if e.problems.len() > before {
        return None;
    }
    Some(SsoPartner {
        name: raw.name,
        issuer: raw.issuer,
        audience: raw.audience,
        algorithms,
        key: key?,
        secret: (!raw.secret.is_empty()).then(|| raw.secret.into_bytes()),
        max_age,
        clock_skew,
        user_claim: raw.user_claim,
        require_known_user: raw.require_known_user,
    })
}

fn routes(raw: Vec<raw::RawRoute>, e: &mut ConfigErrors) -> RouteTable {
    let specs = raw
        .into_iter()
        .map(|r| RouteSpec {
            path: r.path,
            methods: r.methods,
            access: r.access,
            roles: r.roles,
        })
        .collect();
    match RouteTable::compile(specs) {
        Ok(table) => table,
        Err(problems) => {
            for (key, message) in problems {
                e.push(&key, message);
            }
            RouteTable::default()
        }
    }
}

/// `"20/min"`, `"5/s"`, `"100/hour"`, or `"10/30s"`.
fn rate(s: &str) -> Option<Rate> {
    let (count, per) = s.split_once('/')?;
    let count: u32 = count.trim().parse().ok().filter(|&c| c > 0)?;
    let per = match per.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => humantime::parse_duration(other)
            .ok()
            .filter(|d| !d.is_zero())?,
    };
    Some(Rate { count, per })
}

/// `d`, unless it is zero where only a positive duration makes sense.
fn nonzero(e: &mut ConfigErrors, key: &str, d: Duration) -> Duration {
    if d.is_zero() {
        e.push(key, format!("{:?} must be longer than zero", show(d)));
        return Duration::from_secs(1);
    }
    d
}

/// A duration as an operator writes it (`"1h 30m"`), for messages.
fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn socket_addr(e: &mut ConfigErrors, key: &str, s: &str) -> Option<SocketAddr> {
    match s.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            e.push(
                key,
                format!("{s:?} is not an address like \"0.0.0.0:8080\""),
            );
            None
        }
    }
}

fn header_name(e: &mut ConfigErrors, key: &str, s: &str) -> HeaderName {
    match HeaderName::from_bytes(s.as_bytes()) {
        Ok(name) => name,
        Err(_) => {
            e.push(key, format!("{s:?} is not a valid header name"));
            HeaderName::from_static("x-invalid")
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn errors(toml: &str) -> String {
        Config::from_toml(toml, Path::new("."))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_file_gives_safe_defaults() {
        let c = Config::from_toml("", Path::new(".")).unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.session.cookie_name, "__Host-portcullis");
        assert_eq!(c.session.idle_timeout.as_secs(), 30 * 60);
        assert_eq!(c.login.prefix, "/auth");
        assert!(c.server.public_url.is_none());
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let err = errors("[session]\nidle_timout = \"5m\"\n");
        assert!(err.contains("idle_timout"), "{err}");
    }

    #[test]
    fn bad_duration_names_key_and_value() {
        let err = errors("[session]\nidle_timeout = \"soon\"\n");
        assert!(err.contains("session.idle_timeout: "), "{err}");
        assert!(err.contains("\"soon\""), "{err}");
    }

    /// Every problem past typing, that is: a value serde refuses (a bad
    /// duration or word) is reported alone, as in the next tests.
    #[test]
    fn every_problem_is_reported_at_once() {
        let err = errors(
            "[server]\nlisten = \"nowhere\"\n[session]\ncookie_name = \"a b\"\n[login]\nip_rate = \"fast\"\n",
        );
        assert!(err.contains("server.listen"), "{err}");
        assert!(err.contains("session.cookie_name"), "{err}");
        assert!(err.contains("login.ip_rate"), "{err}");
    }

    #[test]
    fn same_site_none_is_refused_by_name() {
        let err = errors("[session]\nsame_site = \"none\"\n");
        assert!(err.contains("session.same_site: "), "{err}");
        assert!(err.contains("\"none\" would send"), "{err}");
        let c = Config::from_toml("[session]\nsame_site = \"Strict\"\n", Path::new(".")).unwrap();
        assert_eq!(c.session.same_site, crate::config::SameSite::Strict);
    }

    #[test]
    fn unknown_words_name_key_and_value() {
        for (toml, key, value) in [
            ("[session]\nstore = \"redis\"", "session.store", "redis"),
            ("[log]\nformat = \"xml\"", "log.format", "xml"),
            (
                "[credentials]\nbackend = \"ldap\"",
                "credentials.backend",
                "ldap",
            ),
            (
                "[tokens]\nalgorithm = \"RS256\"",
                "tokens.algorithm",
                "RS256",
            ),
            (
                "[upstream.assertion]\nalgorithm = \"PS256\"\naudience = \"a\"",
                "upstream.assertion.algorithm",
                "PS256",
            ),
            (
                "[[route]]\npath = \"/a\"\n[[route]]\npath = \"/b\"\naccess = \"open\"",
                "route[1].access",
                "open",
            ),
        ] {
            let err = errors(toml);
            assert!(err.contains(&format!("{key}: ")), "{toml}: {err}");
            assert!(err.contains(value), "{toml}: {err}");
        }
    }

    #[test]
    fn interpolated_durations_and_words_are_typed_after_substitution() {
        let env = |name: &str| match name {
            "IDLE" => Some("45m".to_string()),
            "STORE" => Some("postgres".to_string()),
            "SOON" => Some("soon".to_string()),
            _ => None,
        };
        let text = "[session]\nidle_timeout = \"${IDLE}\"\nstore = \"${STORE}\"\n";
        let c = Config::from_toml_with_env(text, &env).unwrap();
        assert_eq!(c.session.idle_timeout.as_secs(), 45 * 60);
        assert_eq!(c.session.store, crate::config::SessionStoreKind::Postgres);
        let text = "[session]\nidle_timeout = \"${SOON}\"\n";
        let err = Config::from_toml_with_env(text, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("session.idle_timeout: "), "{err}");
        assert!(err.contains("\"soon\""), "{err}");
    }

    #[test]
    fn zero_durations_are_refused_where_they_must_be_positive() {
        let err = errors("[session]\nrecheck_interval = \"0s\"\n[login]\nhash_wait = \"0s\"\n");
        assert!(
            err.contains("session.recheck_interval: \"0s\" must be longer than zero"),
            "{err}"
        );
        assert!(err.contains("login.hash_wait"), "{err}");
        assert!(Config::from_toml("[session]\ncache_ttl = \"0s\"\n", Path::new(".")).is_ok());
    }

    #[test]
    fn bad_route_names_its_index() {
        let err = errors("[[route]]\npath = \"/a\"\n[[route]]\npath = \"no-slash\"\n");
        assert!(err.contains("route[1].path"), "{err}");
    }

    #[test]
    fn public_url_with_path_is_refused() {
        let err = errors("[server]\npublic_url = \"https://x.example/app\"\n");
        assert!(err.contains("server.public_url"), "{err}");
    }

    #[test]
    fn rates_parse_in_common_shapes() {
        assert_eq!(super::rate("20/min").unwrap().count, 20);
        assert_eq!(super::rate("5/s").unwrap().per.as_secs(), 1);
        assert_eq!(super::rate("10/30s").unwrap().per.as_secs(), 30);
        assert!(super::rate("0/min").is_none());
        assert!(super::rate("fast").is_none());
    }

    #[test]
    fn assertion_secret_equal_to_token_secret_is_refused() {
        let secret = "s".repeat(40);
        let err = errors(&format!(
            "[tokens]\nsecret = \"{secret}\"\n[upstream.assertion]\nalgorithm = \"HS256\"\nsecret = \"{secret}\"\naudience = \"app\"\n"
        ));
        assert!(err.contains("upstream.assertion.secret"), "{err}");
    }

    #[test]
    fn hardening_limits_have_safe_defaults() {
        let c = Config::from_toml("", Path::new(".")).unwrap();
        assert_eq!(c.server.body_read_timeout.as_secs(), 30);
        assert_eq!(c.server.keepalive_timeout.as_secs(), 75);
        assert_eq!(c.server.h2_max_streams, 100);
        assert_eq!(c.upstream.max_connections, 1024);
        assert_eq!(c.upstream.tunnel_idle_timeout.as_secs(), 600);
        assert_eq!(c.login.hash_wait.as_secs(), 5);
        assert_eq!(c.postgres.connect_timeout.as_secs(), 10);
        assert_eq!(c.forward_auth.uri_header, "x-forwarded-uri");
        assert_eq!(c.audit.retention.as_secs(), 90 * 86400);
    }

    #[test]
    fn websocket_origin_must_be_an_origin() {
        let err = errors("[server]\nwebsocket_origins = [\"https://ok.example\", \"nope\"]\n");
        assert!(err.contains("server.websocket_origins[1]"), "{err}");
    }

    #[test]
    fn idle_longer_than_absolute_is_refused() {
        let err = errors("[session]\nidle_timeout = \"13h\"\n");
        assert!(err.contains("session.idle_timeout"), "{err}");
    }
}
