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
    pub access: Option<RuleAccess>,
    pub roles: Vec<String>,
}

/// A rule's `access` as written; with `roles`, `authenticated` becomes
/// [`Access::Roles`]. Typed when the config is read, so an unknown word is
/// refused there with its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAccess {
    Public,
    Deny,
    Authenticated,
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

impl Access {
    /// Whether the caller must be looked up (a session or token) before
    /// [`decide`] can answer.
    pub fn needs_caller(&self) -> bool {
        matches!(self, Access::Authenticated | Access::Roles(_))
    }
}

/// What a route rule makes of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward (with the caller's identity when there is one).
    Allow,
    /// No valid session or token: 302 to sign in, or 401.
    Unauthenticated,
    /// A `deny` route, or none of the route's roles: 403.
    Forbidden,
}

/// The one authorization decision, for the proxy and `/auth/verify` alike:
/// `access` is the matching rule, `caller_roles` the roles of the signed-in
/// caller (`None`: nobody is signed in, or the caller was not looked up
/// because the rule does not need one).
pub fn decide(access: &Access, caller_roles: Option<&[String]>) -> Verdict {
    match (access, caller_roles) {
        (Access::Public, _) => Verdict::Allow,
        (Access::Deny, _) => Verdict::Forbidden,
        (Access::Authenticated | Access::Roles(_), None) => Verdict::Unauthenticated,
        (Access::Authenticated, Some(_)) => Verdict::Allow,
        (Access::Roles(required), Some(held)) => {
            if required.iter().any(|r| held.contains(r)) {
                Verdict::Allow
            } else {
                Verdict::Forbidden
            }
        }
    }
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

/// What a path no rule matches requires: a signed-in user (fail closed).
pub static DEFAULT_ACCESS: Access = Access::Authenticated;

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
        self.deciding_rule(method, path)
            .map_or(&DEFAULT_ACCESS, |(_, access)| access)
    }

    /// The index (in `[[route]]` order) and access of the first rule that
    /// matches, or `None` when the request falls to the default
    /// ([`DEFAULT_ACCESS`]); `portcullis routes` reports which one decided.
    pub fn deciding_rule(&self, method: &Method, path: &str) -> Option<(usize, &Access)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(method, path))
            .map(|(i, r)| (i, &r.access))
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
        // A trailing slash is dropped from paths before matching (see
        // `matches`), so from the rule too: otherwise `path = "/"` would
        // never match the root.
        if segments.last() == Some(&Segment::Pattern(String::new())) {
            segments.pop();
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
        let access = match (spec.access, spec.roles.is_empty()) {
            (Some(RuleAccess::Public), true) => Access::Public,
            (Some(RuleAccess::Deny), true) => Access::Deny,
            (Some(RuleAccess::Authenticated) | None, true) => Access::Authenticated,
            (Some(RuleAccess::Authenticated) | None, false) => Access::Roles(spec.roles),
            (Some(RuleAccess::Public | RuleAccess::Deny), false) => {
                return Err((
                    "roles",
                    "roles only apply to authenticated routes; remove access or roles".into(),
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

/// Glob matching over segments with a single backtrack point: on a mismatch
/// only the latest `**` takes one more segment, since anything an earlier
/// `**` could have taken the latest one can take too. At most
/// `pattern.len() * parts.len()` steps: the client picks the path, and trying
/// every split of every `**` (as in `/**/a/**/b`) is polynomial in its
/// segment count, hours for a 64 KiB path.
fn match_segments(pattern: &[Segment], parts: &[&str]) -> bool {
    let (mut p, mut t) = (0, 0);
    // (index of the latest `**`, parts it covers up to)
    let mut latest_any: Option<(usize, usize)> = None;
    while t < parts.len() {
        match pattern.get(p) {
            Some(Segment::Any) => {
                latest_any = Some((p, t));
                p += 1;
            }
            Some(Segment::Pattern(glob)) if wildcard_match(glob, parts[t]) => {
                p += 1;
                t += 1;
            }
            _ => match latest_any {
                Some((any, covered)) => {
                    latest_any = Some((any, covered + 1));
                    p = any + 1;
                    t = covered + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|s| *s == Segment::Any)
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
mod tests;
