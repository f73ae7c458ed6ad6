use super::*;

#[test]
fn decide_needs_a_caller_only_where_the_rule_does() {
    let roles = vec!["patient".to_string()];
    assert_eq!(decide(&Access::Public, None), Verdict::Allow);
    assert_eq!(decide(&Access::Deny, Some(&roles)), Verdict::Forbidden);
    assert_eq!(
        decide(&Access::Authenticated, None),
        Verdict::Unauthenticated
    );
    assert_eq!(decide(&Access::Authenticated, Some(&roles)), Verdict::Allow);
    let admin = Access::Roles(vec!["admin".into()]);
    assert_eq!(decide(&admin, None), Verdict::Unauthenticated);
    assert_eq!(decide(&admin, Some(&roles)), Verdict::Forbidden);
    assert_eq!(decide(&admin, Some(&["admin".to_string()])), Verdict::Allow);
    assert!(!Access::Public.needs_caller() && !Access::Deny.needs_caller());
}

/// `(path, methods, access, roles)`
type Rule<'a> = (&'a str, &'a [&'a str], Option<&'a str>, &'a [&'a str]);

fn rule_access(access: &str) -> RuleAccess {
    match access {
        "public" => RuleAccess::Public,
        "deny" => RuleAccess::Deny,
        "authenticated" => RuleAccess::Authenticated,
        other => panic!("no access {other:?}"),
    }
}

fn table(rules: &[Rule<'_>]) -> RouteTable {
    RouteTable::compile(
        rules
            .iter()
            .map(|(path, methods, access, roles)| RouteSpec {
                path: path.to_string(),
                methods: methods.iter().map(|s| s.to_string()).collect(),
                access: access.map(rule_access),
                roles: roles.iter().map(|s| s.to_string()).collect(),
            })
            .collect(),
    )
    .unwrap()
}

fn spec_example() -> RouteTable {
    table(&[
        ("/static/**", &["GET", "HEAD"], Some("public"), &[]),
        ("/admin/**", &[], None, &["admin"]),
        ("/internal/**", &[], Some("deny"), &[]),
    ])
}

#[test]
fn double_star_covers_the_directory_itself_but_not_siblings() {
    let t = spec_example();
    let admin = Access::Roles(vec!["admin".into()]);
    assert_eq!(t.access(&Method::GET, "/admin"), &admin);
    assert_eq!(t.access(&Method::GET, "/admin/"), &admin);
    assert_eq!(t.access(&Method::GET, "/admin/users/1"), &admin);
    assert_eq!(
        t.access(&Method::GET, "/administrator"),
        &Access::Authenticated
    );
    assert_eq!(t.access(&Method::GET, "/adminx/y"), &Access::Authenticated);
}

#[test]
fn methods_restrict_a_rule_and_others_fall_through() {
    let t = spec_example();
    assert_eq!(t.access(&Method::GET, "/static/app.css"), &Access::Public);
    assert_eq!(t.access(&Method::HEAD, "/static/app.css"), &Access::Public);
    assert_eq!(
        t.access(&Method::POST, "/static/app.css"),
        &Access::Authenticated
    );
}

#[test]
fn a_get_rule_also_judges_head() {
    let t = table(&[
        ("/reports/**", &["GET"], None, &["admin"]),
        ("/reports/**", &["POST"], Some("deny"), &[]),
        ("/**", &[], Some("public"), &[]),
    ]);
    let admin = Access::Roles(vec!["admin".into()]);
    assert_eq!(t.access(&Method::GET, "/reports/q1"), &admin);
    assert_eq!(t.access(&Method::HEAD, "/reports/q1"), &admin);
    assert_eq!(t.access(&Method::POST, "/reports/q1"), &Access::Deny);
    assert_eq!(
        t.access(&Method::OPTIONS, "/reports/q1"),
        &Access::Public,
        "only HEAD rides along with GET"
    );
    let post_only = table(&[("/form", &["post"], Some("deny"), &[])]);
    assert_eq!(
        post_only.access(&Method::HEAD, "/form"),
        &Access::Authenticated
    );
}

#[test]
fn first_match_wins() {
    let t = table(&[
        ("/internal/health", &[], Some("public"), &[]),
        ("/internal/**", &[], Some("deny"), &[]),
    ]);
    assert_eq!(t.access(&Method::GET, "/internal/health"), &Access::Public);
    assert_eq!(t.access(&Method::GET, "/internal/secrets"), &Access::Deny);
}

#[test]
fn single_star_stays_within_a_segment() {
    let t = table(&[("/files/*.pdf", &[], Some("public"), &[])]);
    assert_eq!(t.access(&Method::GET, "/files/a.pdf"), &Access::Public);
    assert_eq!(
        t.access(&Method::GET, "/files/x/a.pdf"),
        &Access::Authenticated
    );
    assert_eq!(
        t.access(&Method::GET, "/files/a.pdf.exe"),
        &Access::Authenticated
    );
}

#[test]
fn exact_rule_matches_with_or_without_trailing_slash() {
    let t = table(&[("/country", &[], Some("deny"), &[])]);
    assert_eq!(t.access(&Method::GET, "/country"), &Access::Deny);
    assert_eq!(t.access(&Method::GET, "/country/"), &Access::Deny);
    assert_eq!(t.access(&Method::GET, "/country/x"), &Access::Authenticated);
}

#[test]
fn wildcards_match_like_shell_globs() {
    assert!(wildcard_match("*", ""));
    assert!(wildcard_match("a*c", "abbbc"));
    assert!(wildcard_match("*.css", "x.css"));
    assert!(!wildcard_match("*.css", "x.cs"));
    assert!(wildcard_match("a*b*c", "a1b2c"));
    assert!(!wildcard_match("a*b*c", "a1c2b"));
}

#[test]
fn bad_rules_name_the_field() {
    let bad = |path: &str, access: Option<&str>, roles: &[&str]| {
        RouteTable::compile(vec![RouteSpec {
            path: path.into(),
            methods: vec![],
            access: access.map(rule_access),
            roles: roles.iter().map(|s| s.to_string()).collect(),
        }])
        .unwrap_err()[0]
            .0
            .clone()
    };
    assert_eq!(bad("admin", None, &[]), "route[0].path");
    assert_eq!(bad("/a**", None, &[]), "route[0].path");
    assert_eq!(bad("/a?x=1", None, &[]), "route[0].path");
    assert_eq!(bad("/a", Some("public"), &["admin"]), "route[0].roles");
}

/// Found reading `match_segments` while pinning it: every split of
/// every `**` was tried, so a rule like `/**/a/**/b/**/c` took time cubic
/// in the path's segment count (hours for a path hyper accepts). This
/// path has 4000 segments; the old matcher did not finish.
#[test]
fn many_double_stars_match_long_paths_in_linear_passes() {
    let t = table(&[
        ("/**/a/**/b/**/c", &[], Some("deny"), &[]),
        ("/**/a/**/b/**/a/**", &[], Some("public"), &[]),
    ]);
    let path: String = (0..4000).map(|i| ["/a", "/b"][i % 2]).collect();
    assert_eq!(t.access(&Method::GET, &path), &Access::Public);
    let path = format!("{path}/c");
    assert_eq!(t.access(&Method::GET, &path), &Access::Deny);
    let path: String = (0..4000).map(|i| ["/a", "/x"][i % 2]).collect();
    assert_eq!(t.access(&Method::GET, &path), &Access::Authenticated);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// 256 cases (`PROPTEST_CASES` overrides), no regression files:
    /// failures found are kept as named unit tests instead.
    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// One segment of a routing path (fully decoded, so `?`, `#`, `%`,
    /// `*` and spaces are literal characters), never `.`, `..` or empty.
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,6}",
            "[^/]{1,8}",
            Just("admin".to_string()),
            Just("?x=1".to_string()),
        ]
        .prop_filter("dot segment", |s| s != "." && s != "..")
    }

    fn path(segments: &[String], trailing_slash: bool) -> String {
        let mut p = format!("/{}", segments.join("/"));
        if trailing_slash && !segments.is_empty() {
            p.push('/');
        }
        p
    }

    /// The obvious matcher: every split of every `**`.
    fn exhaustive_match(pattern: &[Segment], parts: &[&str]) -> bool {
        match pattern.split_first() {
            None => parts.is_empty(),
            Some((Segment::Any, rest)) => {
                (0..=parts.len()).any(|skip| exhaustive_match(rest, &parts[skip..]))
            }
            Some((Segment::Pattern(p), rest)) => match parts.split_first() {
                Some((part, remaining)) => {
                    wildcard_match(p, part) && exhaustive_match(rest, remaining)
                }
                None => false,
            },
        }
    }

    /// Glob matching as a plain dynamic programme: `*` is any run of
    /// characters.
    fn reference_glob(pattern: &str, text: &str) -> bool {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        let mut m = vec![vec![false; t.len() + 1]; p.len() + 1];
        m[0][0] = true;
        for i in 1..=p.len() {
            for j in 0..=t.len() {
                m[i][j] = if p[i - 1] == '*' {
                    m[i - 1][j] || (j > 0 && m[i][j - 1])
                } else {
                    j > 0 && m[i - 1][j - 1] && p[i - 1] == t[j - 1]
                };
            }
        }
        m[p.len()][t.len()]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn double_star_covers_the_directory_and_below_only(
            below in prop::collection::vec(segment(), 0..5),
            trailing_slash in any::<bool>(),
            suffix in "[^/]{1,10}",
            rest in prop::collection::vec(segment(), 0..3),
        ) {
            let t = table(&[("/admin/**", &[], Some("deny"), &[])]);
            let inside = format!("/admin{}", path(&below, trailing_slash).trim_end_matches('/'));
            let inside = if trailing_slash { format!("{inside}/") } else { inside };
            prop_assert_eq!(t.access(&Method::GET, &inside), &Access::Deny, "{}", inside);
            // `/administrator`, `/admin.php`, `/admin?x`: siblings.
            let sibling = format!("/admin{suffix}{}", path(&rest, trailing_slash).trim_end_matches('/'));
            prop_assert_eq!(t.access(&Method::GET, &sibling), &Access::Authenticated, "{}", sibling);
        }

        #[test]
        fn single_star_never_crosses_a_slash(
            name in segment(),
            deeper in prop::collection::vec(segment(), 1..4),
            trailing_slash in any::<bool>(),
        ) {
            let t = table(&[("/files/*", &[], Some("public"), &[]), ("/x*y", &[], Some("deny"), &[])]);
            let one = path(&["files".to_string(), name.clone()], trailing_slash);
            prop_assert_eq!(t.access(&Method::GET, &one), &Access::Public, "{}", one);
            let mut segments = vec!["files".to_string(), name];
            segments.extend(deeper.iter().cloned());
            let two = path(&segments, trailing_slash);
            prop_assert_eq!(t.access(&Method::GET, &two), &Access::Authenticated, "{}", two);
            // `*` cannot swallow a `/` between `x` and `y`.
            let across = format!("/x{}y", path(&deeper, false));
            prop_assert_eq!(t.access(&Method::GET, &across), &Access::Authenticated, "{}", across);
        }

        /// A literal rule matches its own path (with or without a
        /// trailing slash) and nothing else: a `?` in the routing path is
        /// part of the path (a decoded `%3F`), never a query.
        #[test]
        fn literal_rules_match_only_their_path(
            rule in prop::collection::vec("[a-z]{1,4}", 1..4),
            candidate in prop::collection::vec(segment(), 0..4),
            query in prop::option::of("[ -~]{0,8}"),
            trailing_slash in any::<bool>(),
        ) {
            let rule_path = path(&rule, false);
            let t = table(&[(rule_path.as_str(), &[], Some("deny"), &[])]);
            let mut candidate = path(&candidate, trailing_slash);
            if let Some(q) = &query {
                candidate = format!("{candidate}?{q}");
            }
            let same = candidate.trim_end_matches('/') == rule_path;
            let access = t.access(&Method::GET, &candidate);
            prop_assert_eq!(access == &Access::Deny, same, "{} vs {}", rule_path, candidate);
            let with_query = format!("{rule_path}?{}", query.unwrap_or_default());
            prop_assert_eq!(t.access(&Method::GET, &with_query), &Access::Authenticated);
        }

        #[test]
        fn a_trailing_slash_never_changes_the_rule(
            segments in prop::collection::vec(segment(), 1..5),
        ) {
            let t = table(&[
                ("/static/**", &["GET"], Some("public"), &[]),
                ("/a/*/b", &[], Some("deny"), &[]),
                ("/*.css", &[], Some("public"), &[]),
                ("/**/admin", &[], None, &["admin"]),
            ]);
            let bare = path(&segments, false);
            prop_assert_eq!(t.access(&Method::GET, &bare), t.access(&Method::GET, &format!("{bare}/")));
        }

        #[test]
        fn segment_matching_agrees_with_trying_every_split(
            pattern in prop::collection::vec(
                prop_oneof![
                    Just(Segment::Any),
                    "[ab*]{1,3}".prop_map(Segment::Pattern),
                ],
                0..6,
            ),
            parts in prop::collection::vec("[ab]{1,2}", 0..8),
        ) {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            prop_assert_eq!(
                match_segments(&pattern, &parts),
                exhaustive_match(&pattern, &parts)
            );
        }

        #[test]
        fn wildcards_agree_with_a_reference_matcher(
            pattern in "[ab*]{0,8}",
            text in "[ab?]{0,10}",
        ) {
            prop_assert_eq!(wildcard_match(&pattern, &text), reference_glob(&pattern, &text));
        }

        /// Rules can only be written on the decoded path: anything that
        /// looks like a query, a fragment or an escape is refused.
        #[test]
        fn rules_with_query_like_characters_are_refused(
            before in "[a-z/*]{0,6}",
            special in prop::sample::select(vec!['?', '#', '%', '\\']),
            after in "[a-z/*=]{0,6}",
        ) {
            let spec = RouteSpec {
                path: format!("/{before}{special}{after}"),
                methods: vec![],
                access: None,
                roles: vec![],
            };
            prop_assert!(RouteTable::compile(vec![spec]).is_err());
        }
    }
}

/// Regression: `path = "/"` kept an empty segment that no path has once its
/// trailing slash is dropped, so a rule for the root never matched.
#[test]
fn a_rule_for_the_root_matches_the_root_only() {
    let t = table(&[
        ("/", &[], Some("public"), &[]),
        ("/a/", &[], Some("deny"), &[]),
    ]);
    assert_eq!(t.access(&Method::GET, "/"), &Access::Public);
    assert_eq!(t.access(&Method::GET, "/x"), &Access::Authenticated);
    assert_eq!(t.access(&Method::GET, "/a"), &Access::Deny);
    assert_eq!(t.access(&Method::GET, "/a/"), &Access::Deny);
    assert_eq!(t.access(&Method::GET, "/a/b"), &Access::Authenticated);
}
