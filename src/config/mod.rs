//! `proxy.toml`: loading, `${ENV}` interpolation and validation.
//!
//! Loading runs in two stages, after `env` substitutes `${NAME}` in the
//! parsed tree. `typed` deserializes it into `raw` (unknown keys refused,
//! defaults filled in, durations and fixed sets of words typed); `validate`
//! turns that into [`Config`], which holds resolved types only (socket
//! addresses, compiled route rules, a ready rustls config from `tls`), so
//! nothing downstream parses strings. Every error names the key path and
//! the offending value, and every problem is reported at once.

mod env;
mod errors;
mod raw;
mod sections;
mod tls;
mod typed;
mod validate;
mod words;

use std::path::Path;
use std::sync::Arc;

use crate::policy::routes::RouteTable;

pub use errors::ConfigErrors;
pub(crate) use sections::{
    AdminConfig, AuditConfig, CredentialsConfig, Fingerprint, MailConfig, MfaConfig,
    PasswordPolicy, RegistrationConfig, SameSite, ServerConfig, SessionStoreKind, SqliteConfig,
    TlsConfig,
};
// Public because the binary or other modules' public items name them.
pub use sections::{
    AssertionConfig, ForwardAuthConfig, IdentityHeaders, LogConfig, LogFormat, LoginConfig,
    MysqlConfig, PostgresConfig, PublicUrl, Rate, SessionConfig, SsoPartner, TokensConfig,
    UpstreamConfig,
};

/// The validated configuration the proxy runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) admin: AdminConfig,
    pub upstream: UpstreamConfig,
    pub(crate) session: SessionConfig,
    pub(crate) postgres: PostgresConfig,
    pub(crate) credentials: CredentialsConfig,
    pub(crate) login: LoginConfig,
    pub(crate) tokens: TokensConfig,
    pub(crate) forward_auth: ForwardAuthConfig,
    pub(crate) audit: AuditConfig,
    pub sso: Vec<SsoPartner>,
    /// `None` unless `registration.enabled`.
    pub(crate) registration: Option<RegistrationConfig>,
    /// For every password a user chooses (`registration.password_min` /
    /// `password_max`, read whether or not sign-up is enabled).
    pub(crate) password_policy: PasswordPolicy,
    pub(crate) sqlite: SqliteConfig,
    pub(crate) mfa: MfaConfig,
    /// `None` without a `[mail]` section: nothing is mailed.
    pub(crate) mail: Option<MailConfig>,
    pub(crate) routes: Arc<RouteTable>,
    pub log: LogConfig,
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
    /// templates, keys, certificates, the SQLite file) are resolved against
    /// `base`, the config file's directory, not the working directory.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        Self::from_toml_with_env(text, base, &|name| std::env::var(name).ok())
    }

    /// [`Config::from_toml`] with `${NAME}` looked up in `env`.
    fn from_toml_with_env(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        // Syntax errors carry a line and column. Values are typed only after
        // `${ENV}` interpolation (`idle_timeout = "${IDLE}"` is a string
        // until then), so a refused value is named by its key path instead.
        let value: toml::Value = toml::from_str(text).map_err(ConfigErrors::from_toml)?;
        let value = env::interpolate(value, env)?;
        let (raw, mut errors) = typed::typed(value);
        let Some(mut raw) = raw else {
            return Err(errors);
        };
        raw.resolve_paths(base);
        match validate::validate(raw) {
            Ok(config) => errors.into_result(config),
            Err(more) => {
                errors.problems.extend(more.problems);
                Err(errors)
            }
        }
    }

    /// The sections whose changes in `new` take a restart to apply. Route
    /// rules, SSO partners, the users file and the TLS certificate and key
    /// are applied by a reload (SIGHUP) and not counted; where TLS listens
    /// (`redirect_http_from`) is.
    pub(crate) fn restart_sections(&self, new: &Config) -> Vec<&'static str> {
        let server = |c: &Config| {
            let redirect = c.server.tls.as_ref().map(|t| t.redirect_http_from);
            let without_tls = ServerConfig {
                tls: None,
                ..c.server.clone()
            };
            (without_tls, redirect)
        };
        [
            ("server", server(self) != server(new)),
            ("admin", self.admin != new.admin),
            ("upstream", self.upstream != new.upstream),
            ("session", self.session != new.session),
            ("postgres", self.postgres != new.postgres),
            ("credentials", self.credentials != new.credentials),
            ("login", self.login != new.login),
            (
                "registration",
                self.registration != new.registration
                    || self.password_policy != new.password_policy,
            ),
            ("sqlite", self.sqlite != new.sqlite),
            ("mfa", self.mfa != new.mfa),
            ("mail", self.mail != new.mail),
            ("tokens", self.tokens != new.tokens),
            ("forward_auth", self.forward_auth != new.forward_auth),
            ("audit", self.audit != new.audit),
            ("log", self.log != new.log),
        ]
        .into_iter()
        .filter_map(|(section, changed)| changed.then_some(section))
        .collect()
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::Config;
    use std::path::Path;

    fn load(text: &str) -> Config {
        Config::from_toml(text, Path::new(".")).unwrap()
    }

    const BASE: &str = "[postgres]\nurl = \"postgres://portcullis:one@127.0.0.1/portcullis\"\n\
        [credentials]\nbackend = \"mysql\"\n\
        [credentials.mysql]\nurl = \"mysql://reader:one@127.0.0.1/app\"\n\
        [tokens]\nsecret = \"0123456789abcdef0123456789abcdef-one\"\n";

    /// `Debug` hides these three (they may hold passwords or keys), which is
    /// why a diff of `Debug` strings never saw them change.
    #[test]
    fn changed_urls_and_secrets_need_a_restart() {
        let old = load(BASE);
        assert!(old.restart_sections(&load(BASE)).is_empty());
        for (changed, section) in [
            ("portcullis:one@", "postgres"),
            ("reader:one@", "credentials"),
            ("abcdef-one", "tokens"),
        ] {
            let new = load(&BASE.replace(changed, &changed.replace("one", "two")));
            assert_eq!(old.restart_sections(&new), vec![section], "{changed}");
        }
        let new = load(&BASE.replace("abcdef-one", "abcdef-two"));
        assert_eq!(format!("{:?}", old.tokens), format!("{:?}", new.tokens));
    }

    #[test]
    fn what_a_reload_applies_needs_no_restart() {
        let old = load(BASE);
        let new = load(&format!(
            "{BASE}[[route]]\npath = \"/public/**\"\naccess = \"public\"\n\
             [[sso.partners]]\nname = \"p\"\nissuer = \"https://p\"\naudience = \"a\"\n\
             algorithms = [\"HS256\"]\nsecret = \"fedcba9876543210fedcba9876543210\"\n"
        ));
        assert!(old.restart_sections(&new).is_empty());
        let new = load(&format!("{BASE}[server]\nmax_connections = 5\n"));
        assert_eq!(old.restart_sections(&new), vec!["server"]);
    }

    /// A renewed certificate is swapped by a reload; the config still sees
    /// that it changed.
    #[test]
    fn tls_compares_by_file_contents_and_reloads_without_restart() {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::copy(format!("{fixtures}/localhost.crt"), &cert).unwrap();
        let text = format!(
            "[server.tls]\ncert = \"{}\"\nkey = \"{fixtures}/localhost.key\"\n",
            cert.display()
        );
        let old = load(&text);
        assert_eq!(old.server.tls, load(&text).server.tls);
        let mut pem = std::fs::read(&cert).unwrap();
        pem.extend_from_slice(b"\n");
        std::fs::write(&cert, pem).unwrap();
        let new = load(&text);
        assert_ne!(old.server.tls, new.server.tls);
        assert!(old.restart_sections(&new).is_empty());
        let new = load(&format!("{text}redirect_http_from = \"127.0.0.1:8081\"\n"));
        assert_eq!(old.restart_sections(&new), vec!["server"]);
    }
}
