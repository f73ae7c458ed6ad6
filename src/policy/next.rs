//! Validation of the `next` redirect target after login: only a same-origin
//! relative path is accepted; everything else becomes `/`, so the login page
//! can never be used as an open redirect.

use super::path::{normalize, percent_decode};

/// Longest `next` kept; longer values become `/`.
const MAX_NEXT_LEN: usize = 2048;

/// Returns `raw` (already form-decoded) if it is a safe same-origin target,
/// with its path normalized and any fragment dropped; otherwise `/`.
pub fn validate_next(raw: &str) -> String {
    safe_next(raw).unwrap_or_else(|| "/".to_string())
}

fn safe_next(raw: &str) -> Option<String> {
    if raw.len() > MAX_NEXT_LEN || !raw.starts_with('/') {
        return None;
    }
    // Browsers drop tabs and newlines and read `\` as `/`, so `/\t/evil.com`
    // or `/\evil.com` would leave the origin: refuse them raw or decoded.
    let decoded = percent_decode(raw)?;
    for s in [raw, decoded.as_str()] {
        if s.starts_with("//") || s.contains('\\') || s.chars().any(char::is_control) {
            return None;
        }
    }
    let without_fragment = raw.split('#').next().unwrap_or("/");
    let (path, query) = match without_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (without_fragment, None),
    };
    let path = normalize(path).ok()?;
    Some(match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    })
}

#[cfg(test)]
mod tests {
    use super::validate_next;

    #[test]
    fn next_with_hostile_values_becomes_root() {
        let hostile = [
            "//evil.com",
            "///evil.com",
            "////evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "\\\\evil.com",
            "/%09/evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r\n/evil.com",
            "/%0a/evil.com",
            "/%0d%0aSet-Cookie:%20x=y",
            "https:evil.com",
            "https://evil.com",
            "http:/evil.com",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "evil.com",
            " //evil.com",
            "/%2F/evil.com",
            "/%2f%2fevil.com",
            "%2F%2Fevil.com",
            "/%5Cevil.com",
            "/%5C%5Cevil.com",
            "/%00",
            "/a%E0%80%AF",
            "/..",
            "/../evil",
            "/%2e%2e/evil",
            "",
            "@evil.com",
            ".//evil.com",
            "/%",
            "/\u{0085}/evil.com",
        ];
        assert!(hostile.len() >= 25);
        for value in hostile {
            assert_eq!(validate_next(value), "/", "{value:?} must become /");
        }
    }

    #[test]
    fn next_with_two_leading_slashes_becomes_root() {
        assert_eq!(validate_next("//app.example.com/x"), "/");
    }

    #[test]
    fn ordinary_relative_paths_are_kept() {
        assert_eq!(validate_next("/"), "/");
        assert_eq!(validate_next("/chat/"), "/chat/");
        assert_eq!(validate_next("/country/?q=fr&x=1"), "/country/?q=fr&x=1");
        assert_eq!(validate_next("/proceed-to-chat"), "/proceed-to-chat");
        assert_eq!(validate_next("/a/./b"), "/a/b");
        assert_eq!(
            validate_next("/search?u=https://x.example"),
            "/search?u=https://x.example"
        );
    }

    #[test]
    fn fragment_is_dropped() {
        assert_eq!(validate_next("/chat/#top"), "/chat/");
    }

    #[test]
    fn overlong_next_becomes_root() {
        let long = format!("/{}", "a".repeat(5000));
        assert_eq!(validate_next(&long), "/");
    }

    mod properties {
        use super::super::{validate_next, MAX_NEXT_LEN};
        use crate::policy::path::{normalize, percent_decode};
        use proptest::prelude::*;

        /// 256 cases (`PROPTEST_CASES` overrides), no regression files:
        /// failures found are kept as named unit tests instead.
        fn config() -> ProptestConfig {
            ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        /// What browsers and URL parsers bend: slashes and backslashes raw or
        /// encoded, tabs and newlines (removed by WHATWG parsers), schemes,
        /// userinfo, dot segments, Unicode look-alikes and C1 controls.
        #[rustfmt::skip]
        fn piece() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "/", "/", "/", "//", "\\", "%5c", "%5C", "%2f", "%2F", "\t", "\n", "\r", "%09",
                "%0a", "%0D", "%00", "\0", "\u{7f}", "%7f", "\u{85}", "%C2%85", "\u{a0}",
                "\u{3000}", "\u{ff0f}", "\u{2215}", "\u{feff}", " ", "%20", "evil.com",
                "app.example.com", "@", ":", "https:", "http:", "javascript:", "data:", "//evil",
                "?", "#", "&", "=", "..", ".", "%2e", "%2E", "%2e%2e", "a", "b", "é", "%C3%A9",
                "%", "%g1", "%25", "%252f", "~", ";",
            ])
        }

        fn raw_next() -> impl Strategy<Value = String> {
            prop_oneof![
                6 => prop::collection::vec(piece(), 0..12).prop_map(|v| format!("/{}", v.concat())),
                2 => prop::collection::vec(piece(), 0..10).prop_map(|v| v.concat()),
                1 => any::<String>(),
            ]
        }

        /// Where a browser on `https://app.example.com/login` would go.
        fn resolve(target: &str) -> Result<url::Url, url::ParseError> {
            url::Url::parse("https://app.example.com/auth/login?next=x")?.join(target)
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn whatever_passes_stays_on_our_origin(raw in raw_next()) {
                let next = validate_next(&raw);
                prop_assert!(next.len() <= MAX_NEXT_LEN);
                prop_assert!(next.starts_with('/'), "{next:?}");
                prop_assert!(!next.starts_with("//") && !next.starts_with("/\\"), "{next:?}");
                prop_assert!(!next.contains('\\'), "{next:?}");
                prop_assert!(!next.contains('#'), "{next:?} keeps a fragment");
                prop_assert!(!next.chars().any(char::is_control), "{next:?}");
                let decoded = percent_decode(&next);
                prop_assert!(decoded.is_some(), "{next:?} does not decode");
                let decoded = decoded.unwrap();
                prop_assert!(!decoded.starts_with("//") && !decoded.contains('\\'), "{next:?}");
                prop_assert!(!decoded.chars().any(char::is_control), "{next:?}");
                // A WHATWG parser (backslash as slash, tabs and newlines
                // dropped) resolves it on our origin, with no userinfo.
                let url = resolve(&next).map_err(|e| {
                    TestCaseError::fail(format!("{next:?} does not resolve: {e}"))
                })?;
                prop_assert_eq!(url.origin().ascii_serialization(), "https://app.example.com");
                prop_assert_eq!(url.username(), "");
                prop_assert_eq!(url.password(), None);
                // The path part is what the proxy itself would forward.
                let path = next.split('?').next().unwrap_or_default();
                prop_assert_eq!(normalize(path), Ok(path.to_string()));
                prop_assert_eq!(validate_next(&next), next.clone(), "not idempotent");
            }

            /// The check is not vacuous: ordinary same-origin targets survive.
            #[test]
            fn ordinary_paths_are_kept(
                segments in prop::collection::vec("[a-zA-Z0-9_~-][a-zA-Z0-9._~-]{0,7}", 0..6),
                slash in any::<bool>(),
                query in prop::option::of("[a-z0-9]{1,6}=[a-zA-Z0-9/:.?]{0,12}"),
            ) {
                let mut raw = format!("/{}", segments.join("/"));
                if slash && !segments.is_empty() {
                    raw.push('/');
                }
                if let Some(q) = &query {
                    raw = format!("{raw}?{q}");
                }
                prop_assert_eq!(validate_next(&raw), raw);
            }
        }
    }
}
