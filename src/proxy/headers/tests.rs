use super::*;
use http::HeaderValue;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

fn identity() -> Vec<String> {
    [
        "X-Auth-User",
        "X-Auth-Email",
        "X-Auth-Roles",
        "X-Auth-Assertion",
    ]
    .iter()
    .map(|n| python_name(n))
    .collect()
}

#[test]
fn identity_headers_are_removed_in_every_spelling() {
    let mut h = map(&[
        ("x-auth-user", "a"),
        ("X-AUTH-USER", "b"),
        ("x_auth_user", "c"),
        ("X_Auth_User", "d"),
        ("x-auth_user", "e"),
        ("x_auth-email", "f"),
        ("x-auth-roles", "admin"),
        ("x-auth-assertion", "forged"),
        ("x-auth-userx", "kept"),
        ("accept", "text/html"),
    ]);
    strip_spoofable(&mut h, &identity());
    assert_eq!(h.len(), 2, "{h:?}");
    assert!(h.contains_key("x-auth-userx"));
    assert!(h.contains_key("accept"));
}

#[test]
fn duplicated_identity_headers_are_all_removed() {
    let mut h = map(&[
        ("x-auth-user", "a"),
        ("x-auth-user", "b"),
        ("x-auth-user", "c"),
    ]);
    strip_spoofable(&mut h, &identity());
    assert!(h.is_empty());
}

#[test]
fn connection_listed_headers_are_removed() {
    let mut h = map(&[
        ("connection", "keep-alive, X-Secret, x_other"),
        ("x-secret", "1"),
        ("x_other", "2"),
        ("keep-alive", "timeout=5"),
        ("x-kept", "3"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key("x-kept"));
}

/// Found by `no_spelling_of_an_identity_header_survives`: a client's `X-Auth-Session` (any spelling)
/// reached the app, which SPEC says ties its per-login state to it.
#[test]
fn client_session_header_is_stripped_by_default() {
    let config = crate::config::Config::from_toml("", std::path::Path::new(".")).unwrap();
    let h = &config.upstream.headers;
    let names: Vec<String> = [h.user.as_str(), h.email.as_str(), h.roles.as_str()]
        .into_iter()
        .chain(FORWARDING_HEADERS.iter().copied())
        .map(python_name)
        .collect();
    let mut h = map(&[
        ("x-auth-session", "victim"),
        ("X_Auth_Session", "victim"),
        ("x-auth_SESSION", "victim"),
        ("x-auth-sessions", "kept"),
    ]);
    strip_spoofable(&mut h, &names);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key("x-auth-sessions"));
}

/// Found by `hop_by_hop_and_connection_listed_headers_never_pass`: a
/// non-ASCII byte anywhere in `Connection` made the whole value unread,
/// so the headers it listed were forwarded.
#[test]
fn connection_listed_headers_are_removed_despite_obs_text() {
    let mut h = map(&[("x-secret", "1"), ("x-kept", "2")]);
    h.append(
        header::CONNECTION,
        HeaderValue::from_bytes(b"x-secret, \x80").unwrap(),
    );
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key("x-kept"));
}

#[test]
fn hop_by_hop_headers_are_removed() {
    let mut h = map(&[
        ("te", "trailers"),
        ("trailer", "x"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("http2-settings", "AAA"),
        ("proxy-authorization", "Basic x"),
        ("proxy-connection", "keep-alive"),
        ("proxy", "http://evil.example:8080"),
        ("proxy-anything", "x"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert!(h.is_empty(), "{h:?}");
}

#[test]
fn websocket_handshake_keeps_only_its_upgrade() {
    let mut h = map(&[
        ("connection", "Upgrade, X-Secret"),
        ("upgrade", "websocket"),
        ("x-secret", "1"),
        ("sec-websocket-key", "k"),
    ]);
    assert!(is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h));
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h["connection"], "upgrade");
    assert_eq!(h["upgrade"], "websocket");
    assert!(h.contains_key("sec-websocket-key"));
    assert!(!h.contains_key("x-secret"));
}

#[test]
fn h2c_upgrade_is_not_a_websocket() {
    let h = map(&[
        ("connection", "Upgrade, HTTP2-Settings"),
        ("upgrade", "h2c"),
    ]);
    assert!(!is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h));
    let h = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
    assert!(!is_websocket_upgrade(&Method::POST, Version::HTTP_11, &h));
}

#[test]
fn python_spelling_folds_case_and_underscores() {
    assert_eq!(python_name("X_Auth_User"), "x-auth-user");
    assert_eq!(python_name("x-auth-user"), "x-auth-user");
}

mod properties {
    use super::super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    /// 256 cases (`PROPTEST_CASES` overrides), no regression files:
    /// failures found are kept as named unit tests instead.
    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A header name as an operator may configure it.
    fn configured_name() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9_-]{0,15}"
    }

    /// The configurable names: `upstream.headers.{user,email,roles}`
    /// (default or not) and `upstream.assertion.header` (if set).
    fn configured() -> impl Strategy<Value = Vec<String>> {
        let or_default =
            |default: &'static str| prop_oneof![Just(default.to_string()), configured_name()];
        (
            or_default("X-Auth-User"),
            or_default("X-Auth-Email"),
            or_default("X-Auth-Roles"),
            prop::option::of(configured_name()),
        )
            .prop_map(|(user, email, roles, assertion)| {
                [user, email, roles].into_iter().chain(assertion).collect()
            })
    }

    /// `name` respelled: every letter in either case, every `-` or `_`
    /// as either.
    fn respelled(name: String) -> impl Strategy<Value = String> {
        let len = name.len();
        prop::collection::vec((any::<bool>(), any::<bool>()), len).prop_map(move |flips| {
            name.chars()
                .zip(flips)
                .map(|(c, (upper, swap))| match c {
                    '-' | '_' if swap => '_',
                    '-' | '_' => '-',
                    c if upper => c.to_ascii_uppercase(),
                    c => c.to_ascii_lowercase(),
                })
                .collect()
        })
    }

    /// The list the proxy strips, built exactly as `App::assemble` builds
    /// it from the configured names.
    fn spoofable(configured: &[String]) -> Vec<String> {
        configured
            .iter()
            .map(String::as_str)
            .chain(["X-Auth-Assertion"])
            .chain(FORWARDING_HEADERS.iter().copied())
            .map(python_name)
            .collect()
    }

    /// Every header a client must never get to the app: the configured
    /// names, the assertion's default name, SPEC's `X-Auth-Session`, and
    /// the forwarding headers portcullis sets.
    fn must_not_pass(configured: &[String]) -> Vec<String> {
        configured
            .iter()
            .map(String::as_str)
            .chain(["X-Auth-Assertion", "X-Auth-Session"])
            .chain(FORWARDING_HEADERS.iter().copied())
            .map(str::to_string)
            .collect()
    }

    fn values(headers: &HeaderMap, name: &str) -> Vec<HeaderValue> {
        headers.get_all(name).iter().cloned().collect()
    }

    /// Respellings of names that must not pass, mixed with unrelated
    /// headers.
    fn spoof_case() -> impl Strategy<Value = (Vec<String>, Vec<String>, Vec<String>)> {
        configured().prop_flat_map(|configured| {
            let spoofed = prop::collection::vec(
                prop::sample::select(must_not_pass(&configured)).prop_flat_map(respelled),
                1..12,
            );
            let unrelated = prop::collection::vec("[A-Za-z0-9_-]{1,20}", 0..8);
            (Just(configured), spoofed, unrelated)
        })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn python_name_is_a_stable_fold(name in "[ -~]{0,24}") {
            let folded = python_name(&name);
            prop_assert_eq!(folded.len(), name.len());
            prop_assert_eq!(python_name(&folded), folded.clone());
            prop_assert!(!folded.contains('_'));
            prop_assert!(!folded.bytes().any(|b| b.is_ascii_uppercase()));
            prop_assert!(reads_as(&name, &folded));
        }

        #[test]
        fn reads_as_is_equality_of_python_names(
            a in "[A-Za-z_-]{1,6}",
            b in "[A-Za-z_-]{1,6}",
        ) {
            prop_assert_eq!(reads_as(&a, &python_name(&b)), python_name(&a) == python_name(&b));
        }

        #[test]
        fn no_spelling_of_an_identity_header_survives(
            (configured, spoofed, unrelated) in spoof_case(),
        ) {
            let names = spoofable(&configured);
            let mut h = HeaderMap::new();
            for (i, name) in spoofed.iter().chain(&unrelated).enumerate() {
                let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
                h.append(name, HeaderValue::from(i));
            }
            let before = h.clone();
            strip_spoofable(&mut h, &names);
            for name in h.keys() {
                prop_assert!(
                    !names.contains(&python_name(name.as_str())),
                    "{name} survived"
                );
            }
            for name in &spoofed {
                prop_assert!(!h.contains_key(name.as_str()), "{name} survived");
            }
            for name in &unrelated {
                let kept = !names.contains(&python_name(name));
                let lower = name.to_ascii_lowercase();
                prop_assert_eq!(h.contains_key(lower.as_str()), kept, "{}", name);
                if kept {
                    prop_assert_eq!(values(&h, &lower), values(&before, &lower));
                }
            }
        }

        #[test]
        fn hop_by_hop_and_connection_listed_headers_never_pass(
            present in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(HOP_BY_HOP.to_vec()).prop_map(str::to_string),
                    "proxy(-[a-z]{1,8})?",
                    "x-[a-z_-]{1,8}",
                    "[a-z]{1,10}",
                ],
                0..12,
            ),
            listed in prop::collection::vec("[A-Za-z_-]{1,8}|x-[a-z_-]{1,8}", 0..4),
            junk in prop::collection::vec(0x80u8.., 0..8),
            keep_websocket in any::<bool>(),
        ) {
            let mut h = HeaderMap::new();
            for (i, name) in present.iter().enumerate() {
                h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from(i));
            }
            // A `Connection` value may carry obs-text bytes too.
            let mut connection = listed.join(" ,").into_bytes();
            if !junk.is_empty() {
                connection.extend_from_slice(b", ");
                connection.extend_from_slice(&junk);
            }
            h.append(header::CONNECTION, HeaderValue::from_bytes(&connection).unwrap());
            let before = h.clone();
            strip_hop_by_hop(&mut h, keep_websocket);

            let listed: Vec<String> = listed.iter().map(|n| n.to_ascii_lowercase()).collect();
            for name in h.keys() {
                let name = name.as_str();
                if keep_websocket && (name == "connection" || name == "upgrade") {
                    continue;
                }
                prop_assert!(!HOP_BY_HOP.contains(&name), "{name} survived");
                prop_assert!(name != "proxy" && !name.starts_with("proxy-"), "{name} survived");
                prop_assert!(!listed.iter().any(|l| l == name), "{name} survived");
            }
            if keep_websocket {
                prop_assert_eq!(values(&h, "connection"), vec![HeaderValue::from_static("upgrade")]);
                prop_assert_eq!(values(&h, "upgrade"), vec![HeaderValue::from_static("websocket")]);
            }
            for name in &present {
                let unrelated = !HOP_BY_HOP.contains(&name.as_str())
                    && name != "proxy"
                    && !name.starts_with("proxy-")
                    && !listed.contains(name);
                if unrelated {
                    prop_assert_eq!(values(&h, name), values(&before, name), "{}", name);
                }
            }
        }
    }
}
