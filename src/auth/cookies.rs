//! Cookie attributes for the session and login-CSRF cookies, and reading them
//! back from requests. Production cookies are `__Host-` prefixed, `Secure`,
//! `HttpOnly`, `Path=/`, no `Domain`. When `public_url` is `http://` (local
//! development) browsers refuse `Secure` and `__Host-`, so both are dropped.

use cookie::{Cookie, SameSite};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

use crate::config::{self, Config};

/// Session cookie values looked at per request.
const MAX_SESSION_COOKIES: usize = 2;

/// How long the login form's CSRF nonce cookie lives.
const CSRF_MAX_AGE: cookie::time::Duration = cookie::time::Duration::hours(12);

#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// Effective session cookie name (prefix dropped in development).
    pub session_name: String,
    pub csrf_name: String,
    pub secure: bool,
    same_site: SameSite,
}

impl CookieSettings {
    pub fn from_config(config: &Config) -> Self {
        let secure = config.server.public_url.as_ref().is_none_or(|u| u.https);
        let name = &config.session.cookie_name;
        let session_name = if secure {
            name.clone()
        } else {
            strip_secure_prefix(name).to_string()
        };
        let csrf_name = format!("{session_name}-csrf");
        let same_site = match config.session.same_site {
            config::SameSite::Lax => SameSite::Lax,
            config::SameSite::Strict => SameSite::Strict,
        };
        Self {
            session_name,
            csrf_name,
            secure,
            same_site,
        }
    }

    fn build<'a>(&self, name: &'a str, value: &'a str) -> cookie::CookieBuilder<'a> {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
    }

    /// `Set-Cookie` for a new session (a browser-session cookie: the server
    /// enforces the idle and absolute timeouts).
    pub fn session(&self, token: &str) -> HeaderValue {
        header(self.build(&self.session_name, token).build())
    }

    pub fn clear_session(&self) -> HeaderValue {
        header(
            self.build(&self.session_name, "")
                .max_age(cookie::time::Duration::ZERO)
                .build(),
        )
    }

    pub fn csrf(&self, nonce: &str) -> HeaderValue {
        header(
            self.build(&self.csrf_name, nonce)
                .max_age(CSRF_MAX_AGE)
                .build(),
        )
    }

    /// The values the request carries for the session cookie, tried in
    /// order. A browser may hold two (say, one set for a parent path), never
    /// hundreds: the rest are ignored, so one request cannot cost more than
    /// [`MAX_SESSION_COOKIES`] lookups.
    pub fn session_tokens(&self, headers: &HeaderMap) -> Vec<String> {
        let mut values = cookie_values(headers, &self.session_name);
        values.truncate(MAX_SESSION_COOKIES);
        values
    }

    pub fn csrf_nonce(&self, headers: &HeaderMap) -> Option<String> {
        cookie_values(headers, &self.csrf_name).into_iter().next()
    }

    /// Rewrites the `Cookie` header for the app: one header (HTTP/2 clients
    /// send one per cookie; Starlette reads only the first), without the
    /// session and CSRF cookies unless `pass_ours` (`pass_session_cookie`).
    pub fn prepare_for_upstream(&self, headers: &mut HeaderMap, pass_ours: bool) {
        let kept: Vec<String> = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(n, _)| n).trim();
                !pair.is_empty()
                    && (pass_ours || (name != self.session_name && name != self.csrf_name))
            })
            .map(str::to_string)
            .collect();
        headers.remove(COOKIE);
        if !kept.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                headers.insert(COOKIE, v);
            }
        }
    }
}

fn strip_secure_prefix(name: &str) -> &str {
    name.strip_prefix("__Host-")
        .or_else(|| name.strip_prefix("__Secure-"))
        .unwrap_or(name)
}

fn header(cookie: Cookie<'_>) -> HeaderValue {
    HeaderValue::from_str(&cookie.to_string()).expect("cookie names and values are validated ASCII")
}

fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .collect()
}

/// Adds a `Set-Cookie` header.
pub fn append_set_cookie(headers: &mut HeaderMap, value: HeaderValue) {
    headers.append(SET_COOKIE, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings(toml: &str) -> CookieSettings {
        CookieSettings::from_config(&Config::from_toml(toml, Path::new(".")).unwrap())
    }

    #[test]
    fn production_cookie_has_every_protective_attribute() {
        let s = settings("[server]\npublic_url = \"https://app.example.com\"\n");
        let c = s.session("tok").to_str().unwrap().to_string();
        assert!(c.starts_with("__Host-portcullis=tok"), "{c}");
        for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(c.contains(attr), "{attr} missing in {c}");
        }
        assert!(!c.contains("Domain"), "{c}");
        assert!(!c.contains("Max-Age"), "{c}");
    }

    #[test]
    fn default_without_public_url_is_secure() {
        let c = settings("").session("tok").to_str().unwrap().to_string();
        assert!(c.starts_with("__Host-") && c.contains("Secure"), "{c}");
    }

    #[test]
    fn http_public_url_drops_prefix_and_secure() {
        let s = settings("[server]\npublic_url = \"http://localhost:8080\"\n");
        let c = s.session("tok").to_str().unwrap().to_string();
        assert!(c.starts_with("portcullis=tok"), "{c}");
        assert!(!c.contains("Secure"), "{c}");
        assert!(c.contains("HttpOnly"), "{c}");
    }

    #[test]
    fn at_most_two_session_cookie_values_are_looked_up() {
        let s = settings("");
        let mut h = HeaderMap::new();
        let flood: Vec<String> = (0..500)
            .map(|i| format!("__Host-portcullis=v{i}"))
            .collect();
        h.insert(COOKIE, flood.join("; ").parse().unwrap());
        assert_eq!(
            s.session_tokens(&h),
            vec!["v0".to_string(), "v1".to_string()]
        );
    }

    #[test]
    fn clearing_expires_the_cookie() {
        let c = settings("").clear_session().to_str().unwrap().to_string();
        assert!(c.contains("Max-Age=0"), "{c}");
    }

    #[test]
    fn session_cookies_are_stripped_others_kept_in_one_header() {
        let s = settings("");
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; __Host-portcullis=secret".parse().unwrap());
        h.append(COOKIE, "__Host-portcullis-csrf=n; b=2".parse().unwrap());
        assert_eq!(s.session_tokens(&h), vec!["secret".to_string()]);
        let mut passed = h.clone();
        s.prepare_for_upstream(&mut h, false);
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=2");
        s.prepare_for_upstream(&mut passed, true);
        assert_eq!(
            passed.get(COOKIE).unwrap(),
            "a=1; __Host-portcullis=secret; __Host-portcullis-csrf=n; b=2"
        );
    }
}
