//! Route rules: `[[route]]` entries compiled into matchers. First match wins;
//! a path no rule matches requires an authenticated user. A rule that lists
//! `GET` also applies to `HEAD`.
//!
//! Globs work on whole `/` segments of the normalized path (never the query):
//! `*` matches within one segment, `**` matches any number of segments,
//! including none, so `/admin/**` covers `/admin` and `/admin/x/y` but never
//! `/administrator`.

use http::Method;

/// A rule as written in `proxy.toml`.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub path: String,
    pub methods: Vec<String>,
    pub access: Option<String>,
    pub roles: Vec<String>,
}

/// What a matching rule requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Forwarded with no identity, whoever asks.
    Public,
    /// Always 403.
    Deny,
    /// Any signed-in user.
    Authenticated,
    /// A signed-in user holding at least one of these roles.
    Roles(Vec<String>),
}

#[derive(Debug, Clone)]
struct Route {
    segments: Vec<Segment>,
    methods: Vec<Method>,
    access: Access,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of segments.
    Any,
    /// A literal segment, possibly containing `*` wildcards.
    Pattern(String),
}

/// The compiled `[[route]]` list.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Compiles the rules; errors are `(key, message)` pairs like
    /// `("route[2].path", "...")`.
    pub fn compile(specs: Vec<RouteSpec>) -> Result<RouteTable, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut routes = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            match Route::compile(spec) {
                Ok(route) => routes.push(route),
                Err((field, message)) => problems.push((format!("route[{i}].{field}"), message)),
            }
        }
        if problems.is_empty() {
            Ok(RouteTable { routes })
        } else {
            Err(problems)
        }
    }

    /// The access rule for a normalized path, or `Authenticated` by default.
    pub fn access(&self, method: &Method, path: &str) -> &Access {
        const DEFAULT: &Access = &Access::Authenticated;
        self.routes
            .iter()
            .find(|r| r.matches(method, path))
            .map_or(DEFAULT, |r| &r.access)
    }
}

impl Route {
    fn compile(spec: RouteSpec) -> Result<Route, (&'static str, String)> {
        let path = &spec.path;
        if !path.starts_with('/') {
            return Err(("path", format!("{path:?} must start with '/'")));
        }
        if path.contains(['?', '#', '\\', '%']) {
            return Err((
                "path",
                format!(
                    "{path:?} is matched against the decoded path only: no '?', '#', '%' or '\\'"
                ),
            ));
        }
        let mut segments = Vec::new();
        for segment in path.split('/').skip(1) {
            if segment == "**" {
                segments.push(Segment::Any);
            } else if segment.contains("**") {
                return Err((
                    "path",
                    format!("{path:?}: '**' must be a whole segment, as in \"/static/**\""),
                ));
            } else if segment == "." || segment == ".." {
                return Err((
                    "path",
                    format!("{path:?} must be normalized (no '.' or '..')"),
                ));
            } else {
                segments.push(Segment::Pattern(segment.to_string()));
            }
        }
        let mut methods = spec
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| ("methods", format!("{m:?} is not an HTTP method")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // HEAD is GET without the body (RFC 9110 §9.3.2): a rule written for
        // GET must judge HEAD too, or a HEAD to a `deny` or role-restricted
        // GET route would fall through to a weaker rule below it.
        if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            methods.push(Method::HEAD);
        }
        let access = match (spec.access.as_deref(), spec.roles.is_empty()) {
            (Some("public"), true) => Access::Public,
            (Some("deny"), true) => Access::Deny,
            (Some("authenticated") | None, true) => Access::Authenticated,
            (Some("authenticated") | None, false) => Access::Roles(spec.roles),
            (Some("public" | "deny"), false) => {
                return Err((
                    "roles",
                    "roles only apply to authenticated routes; remove access or roles".into(),
                ))
            }
            (Some(other), _) => {
                return Err((
                    "access",
                    format!("must be \"public\", \"deny\" or \"authenticated\", not {other:?}"),
                ))
            }
        };
        Ok(Route {
            segments,
            methods,
            access,
        })
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        // `/a/` and `/a` are the same resource to a rule.
        let parts = match parts.split_last() {
            Some((&"", rest)) => rest,
            _ => &parts[..],
        };
        match_segments(&self.segments, parts)
    }
}

fn match_segments(pattern: &[Segment], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((Segment::Any, rest)) => {
            (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..]))
        }
        Some((Segment::Pattern(p), rest)) => match parts.split_first() {
            Some((part, remaining)) => wildcard_match(p, part) && match_segments(rest, remaining),
            None => false,
        },
    }
}

/// `*` matches any run of characters within one segment.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = rest.split('*').collect();
    for (i, piece) in pieces.iter().enumerate() {
        if i == pieces.len() - 1 {
            return remaining.len() >= piece.len() && remaining.ends_with(piece);
        }
        match remaining.find(piece) {
            Some(at) => remaining = &remaining[at + piece.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(path, methods, access, roles)`
    type Rule<'a> = (&'a str, &'a [&'a str], Option<&'a str>, &'a [&'a str]);

    fn table(rules: &[Rule<'_>]) -> RouteTable {
        RouteTable::compile(
            rules
                .iter()
                .map(|(path, methods, access, roles)| RouteSpec {
                    path: path.to_string(),
                    methods: methods.iter().map(|s| s.to_string()).collect(),
                    access: access.map(str::to_string),
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
                access: access.map(Into::into),
                roles: roles.iter().map(|s| s.to_string()).collect(),
            }])
            .unwrap_err()[0]
                .0
                .clone()
        };
        assert_eq!(bad("admin", None, &[]), "route[0].path");
        assert_eq!(bad("/a**", None, &[]), "route[0].path");
        assert_eq!(bad("/a?x=1", None, &[]), "route[0].path");
        assert_eq!(bad("/a", Some("open"), &[]), "route[0].access");
        assert_eq!(bad("/a", Some("public"), &["admin"]), "route[0].roles");
    }
}
