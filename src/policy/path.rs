//! Request path normalization (SPEC, request flow step 2).
//!
//! The app behind portcullis (uvicorn) percent-decodes the whole path before
//! routing, so a rule must be checked against the path the app will act on.
//! We decode unreserved characters, resolve `.` and `..`, and merge repeated
//! slashes; anything that could decode differently in the app (an encoded `/`
//! or `\`, a backslash, a NUL, invalid UTF-8) is refused. The normalized path
//! is both what route rules see and what is forwarded.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path is not absolute")]
    NotAbsolute,
    #[error("path contains an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path contains a NUL or control character")]
    ControlCharacter,
    #[error("path has a malformed percent-encoding")]
    BadEncoding,
    #[error("path is not valid UTF-8 once decoded")]
    InvalidUtf8,
    #[error("path escapes the root with '..'")]
    EscapesRoot,
}

/// Normalizes an origin-form path (no query). See the module doc.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(raw) {
        return Ok(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut partly_decoded: Vec<u8> = Vec::with_capacity(raw.len());
    let mut fully_decoded: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let decoded = decode_escape(bytes, i).ok_or(PathError::BadEncoding)?;
                match decoded {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    _ if decoded.is_ascii_control() => return Err(PathError::ControlCharacter),
                    _ if is_unreserved(decoded) => partly_decoded.push(decoded),
                    _ => partly_decoded.extend_from_slice(&bytes[i..i + 3]),
                }
                fully_decoded.push(decoded);
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            _ if b.is_ascii_control() => return Err(PathError::ControlCharacter),
            _ => {
                partly_decoded.push(b);
                fully_decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8(fully_decoded).map_err(|_| PathError::InvalidUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    // Raw bytes above 0x7f are kept as sent; valid since the decoded form is.
    let partly_decoded = String::from_utf8(partly_decoded).map_err(|_| PathError::InvalidUtf8)?;
    resolve_dots(&partly_decoded)
}

/// The byte a `%XX` escape at `at` stands for.
fn decode_escape(bytes: &[u8], at: usize) -> Option<u8> {
    let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
    u8::from_str_radix(hex, 16).ok()
}

/// Full percent-decoding; `None` for malformed escapes or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(decode_escape(bytes, i)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The path as the app will route it (uvicorn decodes every escape): what
/// route rules are matched against. Takes a [`normalize`]d path, in which no
/// escape can decode to a separator.
pub fn routing_path(normalized: &str) -> std::borrow::Cow<'_, str> {
    if !normalized.contains('%') {
        return std::borrow::Cow::Borrowed(normalized);
    }
    std::borrow::Cow::Owned(percent_decode(normalized).unwrap_or_else(|| normalized.to_string()))
}

/// The common case, already normal: no escapes, backslashes or controls,
/// no empty segment and no segment starting with a dot (which covers `.`
/// and `..`; `/.well-known` merely takes the full path).
fn is_plain(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes
        .iter()
        .all(|&b| b > 0x20 && b < 0x7f && b != b'%' && b != b'\\')
        && !bytes
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

/// RFC 3986 unreserved: safe to decode because no server reads them differently.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Resolves `.` and `..` and merges empty segments; keeps a trailing slash.
fn resolve_dots(path: &str) -> Result<String, PathError> {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = true;
        match segment {
            "" | "." => {}
            ".." => {
                stack.pop().ok_or(PathError::EscapesRoot)?;
            }
            s => {
                stack.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &stack {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p)
    }

    #[test]
    fn plain_paths_are_unchanged() {
        for p in [
            "/",
            "/a",
            "/a/",
            "/a/b.c",
            "/country/",
            "/chat/x;y",
            "/Admin",
            "/a%20b",
        ] {
            assert_eq!(n(p).unwrap(), p);
        }
    }

    #[test]
    fn repeated_slashes_are_merged() {
        assert_eq!(n("//admin").unwrap(), "/admin");
        assert_eq!(n("/a//b///c").unwrap(), "/a/b/c");
        assert_eq!(n("/a//").unwrap(), "/a/");
    }

    #[test]
    fn dot_segments_are_resolved() {
        assert_eq!(n("/./admin").unwrap(), "/admin");
        assert_eq!(n("/a/../admin").unwrap(), "/admin");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/a/.").unwrap(), "/a/");
        assert_eq!(n("/a/..").unwrap(), "/");
    }

    #[test]
    fn encoded_dots_are_decoded_then_resolved() {
        assert_eq!(n("/x/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(n("/x/%2E./admin").unwrap(), "/admin");
        assert_eq!(n("/%2e/admin").unwrap(), "/admin");
    }

    #[test]
    fn unreserved_characters_are_decoded_and_others_kept() {
        assert_eq!(n("/%61dmin").unwrap(), "/admin");
        assert_eq!(n("/a%7Eb%2D").unwrap(), "/a~b-");
        assert_eq!(n("/a%3Bb%20c").unwrap(), "/a%3Bb%20c");
    }

    #[test]
    fn escaping_the_root_is_refused() {
        assert_eq!(n("/.."), Err(PathError::EscapesRoot));
        assert_eq!(n("/%2e%2e/etc"), Err(PathError::EscapesRoot));
        assert_eq!(n("/a/../../b"), Err(PathError::EscapesRoot));
    }

    #[test]
    fn encoded_separators_are_refused() {
        assert_eq!(n("/admin%2Fusers"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/admin%2fusers"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/admin%5Cusers"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/admin\\users"), Err(PathError::Backslash));
    }

    #[test]
    fn nul_control_and_invalid_utf8_are_refused() {
        assert_eq!(n("/a%00b"), Err(PathError::ControlCharacter));
        assert_eq!(n("/a%0Ab"), Err(PathError::ControlCharacter));
        assert_eq!(n("/a%C0%AE"), Err(PathError::InvalidUtf8));
        assert_eq!(n("/a%ff"), Err(PathError::InvalidUtf8));
        assert_eq!(n("/a%C2%85"), Err(PathError::ControlCharacter));
    }

    #[test]
    fn valid_utf8_escapes_are_kept_encoded() {
        assert_eq!(n("/caf%C3%A9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn fast_path_agrees_with_the_full_one() {
        for p in [
            "/",
            "/a/b",
            "/a/.b",
            "/.well-known/x",
            "/a//b",
            "/a/./b",
            "/a%41",
            "/x/..",
            "/a-b_c~d",
        ] {
            let full = resolve_dots(p).unwrap_or_default();
            if is_plain(p) {
                assert_eq!(full, p, "{p}");
            }
            if !p.contains('%') {
                assert_eq!(n(p).unwrap(), full, "{p}");
            }
        }
    }

    #[test]
    fn raw_utf8_is_kept_as_sent() {
        assert_eq!(n("/café/x").unwrap(), "/café/x");
    }

    #[test]
    fn routing_path_is_fully_decoded() {
        assert_eq!(
            routing_path(&n("/donn%C3%A9es/a%20b%3Bc").unwrap()),
            "/données/a b;c"
        );
    }

    #[test]
    fn malformed_escapes_are_refused() {
        assert_eq!(n("/a%"), Err(PathError::BadEncoding));
        assert_eq!(n("/a%g1"), Err(PathError::BadEncoding));
        assert_eq!(n("/a%2"), Err(PathError::BadEncoding));
    }

    #[test]
    fn relative_paths_are_refused() {
        assert_eq!(n("admin"), Err(PathError::NotAbsolute));
        assert_eq!(n("*"), Err(PathError::NotAbsolute));
    }

    mod properties {
        use super::super::*;
        use http::uri::PathAndQuery;
        use proptest::prelude::*;

        /// 256 cases (`PROPTEST_CASES` overrides), no regression files:
        /// failures found are kept as named unit tests instead.
        fn config() -> ProptestConfig {
            ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        /// Pieces that exercise every branch: separators, dot segments raw and
        /// encoded, encoded separators, controls, UTF-8 (valid, overlong, C1),
        /// malformed escapes and the characters `http` treats specially.
        #[rustfmt::skip]
        fn piece() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "/", "/", "/", "//", "a", "b", "admin", ".", "..", "...", ".a", "%2e", "%2E",
                "%2e%2e", ".%2E", "%2f", "%2F", "%5c", "%5C", "\\", "%00", "%0a", "%0D", "%7f",
                "\t", "\0", "%41", "%7e", "%7E", "%2D", "%25", "%252e", "%252F", "%3F", "%23",
                "%3B", "%20", " ", "%C3%A9", "é", "%ff", "%C0%AE", "%E0%80%AF", "%C2%85", "\u{85}",
                "\u{200b}", "%", "%g1", "%2", "~", ";", "?", "#", "*", "\"", "{", "`", "<", "^",
                "|", "@", ":", "+", "!", "$", "&", "'", "(", ",", "=",
            ])
        }

        /// Mostly absolute, mostly path-like strings.
        fn raw_path() -> impl Strategy<Value = String> {
            prop_oneof![
                6 => prop::collection::vec(piece(), 0..14).prop_map(|v| format!("/{}", v.concat())),
                1 => prop::collection::vec(piece(), 0..8).prop_map(|v| v.concat()),
                1 => any::<String>(),
                1 => "/[ -~]{0,40}",
            ]
        }

        /// An independent model of what the app sees: decode every escape
        /// first, then resolve dot segments and merge empty ones.
        fn decoded_then_resolved(raw: &str) -> Option<String> {
            let decoded = percent_decode(raw)?;
            let mut stack: Vec<&str> = Vec::new();
            let segments: Vec<&str> = decoded.split('/').skip(1).collect();
            for segment in &segments {
                match *segment {
                    "" | "." => {}
                    ".." => {
                        stack.pop()?;
                    }
                    s => stack.push(s),
                }
            }
            let ends_in_dir = matches!(segments.last(), Some(&("" | "." | "..")));
            let mut out = format!("/{}", stack.join("/"));
            if ends_in_dir && !stack.is_empty() {
                out.push('/');
            }
            Some(out)
        }

        fn assert_clean(out: &str) -> Result<(), TestCaseError> {
            prop_assert!(out.starts_with('/'), "{out:?} is not absolute");
            prop_assert!(!out.contains("//"), "{out:?} has an empty segment");
            let lower = out.to_ascii_lowercase();
            prop_assert!(
                !lower.contains("%2f") && !lower.contains("%5c"),
                "{out:?} has an encoded separator"
            );
            prop_assert!(!out.contains('\\'), "{out:?} has a backslash");
            prop_assert!(!out.chars().any(char::is_control), "{out:?} has a control");
            // What the rules and the app see: the same, fully decoded.
            let routed = routing_path(out);
            prop_assert_eq!(Some(routed.to_string()), percent_decode(out));
            for view in [out, routed.as_ref()] {
                prop_assert!(
                    !view.split('/').any(|s| s == ".." || s == "."),
                    "{view:?} has a dot segment"
                );
                prop_assert!(!view.contains("//"), "{view:?} has an empty segment");
                prop_assert!(!view.contains('\\'), "{view:?} has a backslash");
                prop_assert!(
                    !view.chars().any(char::is_control),
                    "{view:?} has a control"
                );
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn normalized_paths_are_clean_and_stable(raw in raw_path()) {
                if let Ok(out) = normalize(&raw) {
                    assert_clean(&out)?;
                    prop_assert_eq!(normalize(&out), Ok(out.clone()), "not idempotent");
                    prop_assert!(out.len() <= raw.len(), "{:?} grew into {:?}", raw, out);
                    // Rules see the path the app will route, whatever the
                    // order of decoding and dot resolution.
                    prop_assert_eq!(
                        Some(routing_path(&out).into_owned()),
                        decoded_then_resolved(&raw),
                        "rules and app disagree on {:?}", raw
                    );
                }
            }

            /// The proxy forwards `{normalized}?{query}` parsed as a
            /// `PathAndQuery` (`proxy::rewrite`, then `Upstream::forward`
            /// copies `as_str()`): no request hyper accepts may normalize into
            /// something `http` would refuse or read differently.
            #[test]
            fn normalized_paths_go_upstream_unchanged(
                raw in raw_path(),
                query in prop::option::of("[ -~]{0,12}"),
            ) {
                let target = match &query {
                    Some(q) => format!("{raw}?{q}"),
                    None => raw.clone(),
                };
                let Ok(received) = target.parse::<PathAndQuery>() else {
                    return Ok(());
                };
                if let Ok(out) = normalize(received.path()) {
                    let forwarded = match received.query() {
                        Some(q) => format!("{out}?{q}"),
                        None => out.clone(),
                    };
                    let parsed: PathAndQuery = forwarded.parse().map_err(|e| {
                        TestCaseError::fail(format!("{forwarded:?} does not parse: {e}"))
                    })?;
                    prop_assert_eq!(parsed.as_str(), forwarded.as_str());
                    prop_assert_eq!(parsed.path(), out.as_str());
                    prop_assert_eq!(parsed.query(), received.query());
                }
            }

            #[test]
            fn dot_segments_never_survive(
                segments in prop::collection::vec(
                    prop::sample::select(vec!["a", "b", ".", "..", "%2e", "%2E%2e", ".%2e", ""]),
                    0..10,
                ),
            ) {
                let raw = format!("/{}", segments.join("/"));
                if let Ok(out) = normalize(&raw) {
                    assert_clean(&out)?;
                }
            }
        }
    }
}
