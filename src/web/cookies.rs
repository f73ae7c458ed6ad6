//! Cookie attributes for the session, login-CSRF and pending sign-in
//! cookies, and reading them back from requests. Production cookies are
//! `__Host-` prefixed, `Secure`, `HttpOnly`, `Path=/`, no `Domain`. When `public_url` is `http://` (local
//! development) browsers refuse `Secure` and `__Host-`, so both are dropped.

use cookie::Cookie;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

pub(crate) use crate::auth::cookies::CookieSettings;

/// Session cookie values looked at per request.
const MAX_SESSION_COOKIES: usize = 2;

/// How long the login form's CSRF nonce cookie lives.
const CSRF_MAX_AGE: cookie::time::Duration = cookie::time::Duration::hours(12);

impl CookieSettings {
    fn build<'a>(&self, name: &'a str, value: &'a str) -> cookie::CookieBuilder<'a> {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
    }

    /// `Set-Cookie` for a new session (a browser-session cookie: the server
    /// enforces the idle and absolute timeouts).
    pub(crate) fn session(&self, token: &str) -> HeaderValue {
        header(self.build(&self.session_name, token).build())
    }

    pub(crate) fn clear_session(&self) -> HeaderValue {
        header(
            self.build(&self.session_name, "")
                .max_age(cookie::time::Duration::ZERO)
                .build(),
        )
    }

    pub(crate) fn csrf(&self, nonce: &str) -> HeaderValue {
        header(
            self.build(&self.csrf_name, nonce)
                .max_age(CSRF_MAX_AGE)
                .build(),
        )
    }

    /// `Set-Cookie` for a pending sign-in (password given, second factor
    /// to come): as the session cookie, but gone after five minutes.
    pub(crate) fn pending_mfa(&self, value: &str) -> HeaderValue {
        let max_age = crate::auth::mfa::PENDING_TTL.as_secs() as i64;
        header(
            self.build(&self.mfa_name, value)
                .max_age(cookie::time::Duration::seconds(max_age))
                .build(),
        )
    }

    pub(crate) fn clear_pending_mfa(&self) -> HeaderValue {
        header(
            self.build(&self.mfa_name, "")
                .max_age(cookie::time::Duration::ZERO)
                .build(),
        )
    }

    /// The pending sign-in cookie's value, if the request carries one.
    pub(crate) fn pending_mfa_value(&self, headers: &HeaderMap) -> Option<String> {
        cookie_values(headers, &self.mfa_name).into_iter().next()
    }

    /// The values the request carries for the session cookie, tried in
    /// order. A browser may hold two (say, one set for a parent path), never
    /// hundreds: the rest are ignored, so one request cannot cost more than
    /// [`MAX_SESSION_COOKIES`] lookups.
    pub(crate) fn session_tokens(&self, headers: &HeaderMap) -> Vec<String> {
        let mut values = cookie_values(headers, &self.session_name);
        values.truncate(MAX_SESSION_COOKIES);
        values
    }

    pub(crate) fn csrf_nonce(&self, headers: &HeaderMap) -> Option<String> {
        cookie_values(headers, &self.csrf_name).into_iter().next()
    }

    /// Rewrites the `Cookie` header for the app: one header (HTTP/2 clients
    /// send one per cookie; Starlette reads only the first), without the
    /// session, CSRF and pending sign-in cookies unless `pass_ours`
    /// (`pass_session_cookie`).
    pub(crate) fn prepare_for_upstream(&self, headers: &mut HeaderMap, pass_ours: bool) {
        let kept: Vec<String> = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|pair| {
                let name = pair.split_once('=').map_or(*pair, |(n, _)| n).trim();
                !pair.is_empty()
                    && (pass_ours
                        || (name != self.session_name
                            && name != self.csrf_name
                            && name != self.mfa_name))
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
pub(crate) fn append_set_cookie(headers: &mut HeaderMap, value: HeaderValue) {
    headers.append(SET_COOKIE, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings(toml: &str) -> CookieSettings {
        CookieSettings::from_config(
            &crate::config::Config::from_toml(toml, Path::new(".")).unwrap(),
        )
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
    fn the_pending_sign_in_cookie_is_a_host_cookie_for_five_minutes() {
        let c = settings("").pending_mfa("v").to_str().unwrap().to_string();
        assert!(c.starts_with("__Host-portcullis-mfa=v"), "{c}");
        for attr in [
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=300",
        ] {
            assert!(c.contains(attr), "{attr} missing in {c}");
        }
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "__Host-portcullis-mfa=v; a=1".parse().unwrap());
        settings("").prepare_for_upstream(&mut h, false);
        assert_eq!(h.get(COOKIE).unwrap(), "a=1");
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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// `cases` (`PROPTEST_CASES` overrides), no regression files:
        /// failures found are kept as named unit tests instead.
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

        /// Bytes a hostile `Cookie` header is made of: our names (exact,
        /// other case, prefixed), separators, quotes, whitespace, obs-text.
        #[rustfmt::skip]
        fn piece() -> impl Strategy<Value = &'static [u8]> {
            prop::sample::select(vec![
                &b"__Host-portcullis"[..], b"__Host-portcullis-csrf", b"__host-portcullis",
                b"__Host-portcullis =", b"\t__Host-portcullis-csrf\t=",
                b"portcullis", b"=", b"=", b";", b";", b"; ", b" ", b"\t", b",", b"\"", b"a", b"tok",
                b"\x80", b"\xff", b"%3B", b"$Version=1", b"==",
            ])
        }

        fn cookie_header() -> impl Strategy<Value = HeaderValue> {
            prop_oneof![
                3 => prop::collection::vec(piece(), 0..16).prop_map(|v| v.concat()),
                1 => prop::collection::vec(any::<u8>(), 0..64),
            ]
            .prop_filter_map("not a header value", |b| HeaderValue::from_bytes(&b).ok())
        }

        /// A cookie the app set, never named like ours (ours are
        /// case-sensitive: `__host-portcullis` is someone else's).
        fn other_cookie() -> impl Strategy<Value = (String, String)> {
            (
                prop_oneof![
                    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}",
                    Just("__host-portcullis".to_string()),
                    Just("__Host-portcullis-csrfx".to_string()),
                    Just("x__Host-portcullis".to_string()),
                ],
                "[!-:<-~]([ -:<-~]{0,14}[!-:<-~])?|",
            )
                .prop_filter("named like ours", |(name, _)| {
                    name != "__Host-portcullis" && name != "__Host-portcullis-csrf"
                })
        }

        proptest! {
            #![proptest_config(config(256))]

            #[test]
            fn malformed_cookie_headers_never_panic_nor_leak(
                values in prop::collection::vec(cookie_header(), 0..4),
                pass_ours in any::<bool>(),
            ) {
                let s = settings("");
                let mut h = HeaderMap::new();
                for v in values {
                    h.append(COOKIE, v);
                }
                prop_assert!(s.session_tokens(&h).len() <= MAX_SESSION_COOKIES);
                let _ = s.csrf_nonce(&h);
                s.prepare_for_upstream(&mut h, pass_ours);
                prop_assert!(h.get_all(COOKIE).iter().count() <= 1);
                if !pass_ours {
                    prop_assert_eq!(s.session_tokens(&h), Vec::<String>::new(), "{:?}", h);
                    prop_assert_eq!(s.csrf_nonce(&h), None, "{:?}", h);
                }
            }

            #[test]
            fn our_cookies_are_found_among_any_others(
                others in prop::collection::vec(other_cookie(), 0..12),
                token in "[A-Za-z0-9_-]{1,43}",
                nonce in prop::option::of("[A-Za-z0-9_-]{1,43}"),
                at in any::<prop::sample::Index>(),
                separators in prop::collection::vec(prop::sample::select(vec![";", "; ", " ;", ";  ;", "; \t"]), 13),
                split in prop::collection::vec(any::<bool>(), 13),
                pass_ours in any::<bool>(),
            ) {
                let s = settings("");
                // `(name, as written)`; whitespace around `=` is allowed.
                let mut pairs: Vec<(&str, String)> = others
                    .iter()
                    .map(|(n, v)| (n.as_str(), format!("{n}={v}")))
                    .collect();
                let ws = |i: usize| ["", " ", "\t"][i % 3];
                pairs.insert(
                    at.index(pairs.len() + 1),
                    ("ours", format!("__Host-portcullis{}={}{token}", ws(token.len()), ws(at.index(3)))),
                );
                if let Some(nonce) = &nonce {
                    pairs.insert(
                        at.index(pairs.len() + 1),
                        ("ours", format!("__Host-portcullis-csrf{}={nonce}", ws(nonce.len()))),
                    );
                }
                // One header or several (HTTP/2 sends one per cookie).
                let mut h = HeaderMap::new();
                let mut current = String::new();
                for (i, (_, pair)) in pairs.iter().enumerate() {
                    if split[i] && !current.is_empty() {
                        h.append(COOKIE, HeaderValue::from_str(&current).unwrap());
                        current.clear();
                    }
                    if !current.is_empty() {
                        current.push_str(separators[i]);
                    }
                    current.push_str(pair);
                }
                h.append(COOKIE, HeaderValue::from_str(&current).unwrap());

                prop_assert_eq!(s.session_tokens(&h), vec![token.clone()]);
                prop_assert_eq!(s.csrf_nonce(&h), nonce.clone());
                s.prepare_for_upstream(&mut h, pass_ours);
                let forwarded = h.get(COOKIE).map(|v| v.to_str().unwrap().to_string());
                let expected: Vec<&str> = pairs
                    .iter()
                    .filter(|(name, _)| pass_ours || *name != "ours")
                    .map(|(_, p)| p.trim())
                    .collect();
                prop_assert_eq!(forwarded, (!expected.is_empty()).then(|| expected.join("; ")));
            }
        }

        proptest! {
            #![proptest_config(config(16))]

            /// A flood of session cookies and junk costs at most
            /// `MAX_SESSION_COOKIES` lookups, the first ones sent.
            #[test]
            fn huge_cookie_headers_yield_at_most_two_tokens(
                copies in 1usize..3000,
                junk in "[ -:<-~]{0,40}",
            ) {
                let s = settings("");
                let flood: Vec<String> = (0..copies)
                    .map(|i| format!("{junk};__Host-portcullis=v{i}"))
                    .collect();
                let mut h = HeaderMap::new();
                h.insert(COOKIE, HeaderValue::from_str(&flood.join("; ")).unwrap());
                let tokens = s.session_tokens(&h);
                let expected: Vec<String> =
                    (0..copies.min(MAX_SESSION_COOKIES)).map(|i| format!("v{i}")).collect();
                prop_assert_eq!(tokens, expected);
            }
        }
    }
}
