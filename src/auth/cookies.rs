//! The session, login-CSRF and pending sign-in cookies' names and attributes, resolved once
//! from the config. Production cookies are `__Host-` prefixed and `Secure`;
//! when `public_url` is `http://` (local development) browsers refuse both,
//! so they are dropped. Writing and reading the headers is `web::cookies`.

use cookie::SameSite;

use crate::config::{self, Config};

#[derive(Debug, Clone)]
pub(crate) struct CookieSettings {
    /// Effective session cookie name (prefix dropped in development).
    pub session_name: String,
    pub csrf_name: String,
    /// The pending sign-in between a password and its second factor.
    pub mfa_name: String,
    pub secure: bool,
    pub(crate) same_site: SameSite,
}

impl CookieSettings {
    pub(crate) fn from_config(config: &Config) -> Self {
        let secure = config.server.public_url.as_ref().is_none_or(|u| u.https);
        let name = &config.session.cookie_name;
        let session_name = if secure {
            name.clone()
        } else {
            strip_secure_prefix(name).to_string()
        };
        let csrf_name = format!("{session_name}-csrf");
        let mfa_name = format!("{session_name}-mfa");
        let same_site = match config.session.same_site {
            config::SameSite::Lax => SameSite::Lax,
            config::SameSite::Strict => SameSite::Strict,
        };
        Self {
            session_name,
            csrf_name,
            mfa_name,
            secure,
            same_site,
        }
    }
}

fn strip_secure_prefix(name: &str) -> &str {
    name.strip_prefix("__Host-")
        .or_else(|| name.strip_prefix("__Secure-"))
        .unwrap_or(name)
}
