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
