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
}
