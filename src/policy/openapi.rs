//! Route coverage from the app's OpenAPI document (`portcullis routes`):
//! every operation the app declares, judged by the same `[[route]]` rules
//! and the same first-match lookup the proxy uses, so an app route nobody
//! wrote a rule for shows up before an audit does.
//!
//! A path template such as `/items/{item_id}` stands for every value of its
//! parameters. Each `{...}` is matched as a placeholder that no literal text
//! in a rule can equal: only a rule that matches *every* value decides the
//! operation, i.e. `*` or `**` in that place (or a glob like `*.json` for
//! `/{name}.json`). A literal rule such as `/items/special` covers one value
//! only, so it never decides `/items/{item_id}`; the report shows the rule
//! the other values get.

use http::Method;

use crate::policy::routes::{Access, RouteTable};

/// What a `{param}` becomes before matching: `%` may not appear in a rule
/// (`route[i].path` refuses it), so only `*` globs can match it.
const PLACEHOLDER: &str = "%";

/// The methods an OpenAPI path item may hold, in the order they are listed.
const METHODS: [(&str, Method); 8] = [
    ("get", Method::GET),
    ("head", Method::HEAD),
    ("post", Method::POST),
    ("put", Method::PUT),
    ("patch", Method::PATCH),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("trace", Method::TRACE),
];

/// Why a document cannot be read as OpenAPI.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum OpenApiError {
    #[error("not a JSON document ({0}); FastAPI serves JSON at /openapi.json")]
    NotJson(String),
    #[error("no \"paths\" object: is this an OpenAPI document?")]
    NoPaths,
    #[error("paths: {0:?} does not start with '/'")]
    RelativePath(String),
}

/// One operation of the app: a method on a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operation {
    pub(crate) method: Method,
    /// As written in the document, e.g. `/items/{item_id}`.
    pub(crate) path: String,
}

/// The operations of an OpenAPI (3.x, or Swagger 2.0) JSON document, sorted
/// by path, then in [`METHODS`] order.
pub(crate) fn operations(document: &[u8]) -> Result<Vec<Operation>, OpenApiError> {
    let doc: serde_json::Value =
        serde_json::from_slice(document).map_err(|e| OpenApiError::NotJson(e.to_string()))?;
    let paths = doc
        .get("paths")
        .and_then(|p| p.as_object())
        .ok_or(OpenApiError::NoPaths)?;
    let mut operations = Vec::new();
    for (path, item) in paths {
        if !path.starts_with('/') {
            return Err(OpenApiError::RelativePath(path.clone()));
        }
        for (rank, (key, method)) in METHODS.iter().enumerate() {
            if item.get(key).is_some_and(|op| op.is_object()) {
                let operation = Operation {
                    method: method.clone(),
                    path: path.clone(),
                };
                operations.push((rank, operation));
            }
        }
    }
    // serde_json's map order depends on a crate feature: sort explicitly.
    operations.sort_by(|(a_rank, a), (b_rank, b)| a.path.cmp(&b.path).then(a_rank.cmp(b_rank)));
    Ok(operations.into_iter().map(|(_, op)| op).collect())
}

/// What the rules make of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The first matching `[[route]]` rule: its index and access.
    Rule(usize, Access),
    /// No rule matches: the default, a signed-in user.
    Default,
    /// Under `login.prefix`: portcullis answers itself, the app never sees it.
    Portcullis,
}

impl Decision {
    /// The decision column: `public`, `authenticated`, `roles: a, b`,
    /// `deny`, or `portcullis` for the prefix.
    pub(crate) fn access_text(&self) -> String {
        match self {
            Decision::Rule(_, access) => describe(access),
            Decision::Default => describe(&crate::policy::routes::DEFAULT_ACCESS),
            Decision::Portcullis => "portcullis".into(),
        }
    }

    /// The rule column: `route[i]`, `default` or `login.prefix`.
    pub(crate) fn rule_text(&self) -> String {
        match self {
            Decision::Rule(i, _) => format!("route[{i}]"),
            Decision::Default => "default".into(),
            Decision::Portcullis => "login.prefix".into(),
        }
    }
}

/// An access rule in words, as `proxy.toml` writes it.
pub(crate) fn describe(access: &Access) -> String {
    match access {
        Access::Public => "public".into(),
        Access::Deny => "deny".into(),
        Access::Authenticated => "authenticated".into(),
        Access::Roles(roles) => format!("roles: {}", roles.join(", ")),
    }
}

/// Judges `operation` as the proxy would judge any request for it: paths
/// under `prefix` are portcullis' own, the rest go through the rules.
pub(crate) fn decide(table: &RouteTable, prefix: &str, operation: &Operation) -> Decision {
    let probe = probe_path(&operation.path);
    let own = probe
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if own {
        return Decision::Portcullis;
    }
    match table.deciding_rule(&operation.method, &probe) {
        Some((i, access)) => Decision::Rule(i, access.clone()),
        None => Decision::Default,
    }
}

/// The template with every `{...}` replaced by [`PLACEHOLDER`]. An
/// unclosed `{` is kept as text.
fn probe_path(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(PLACEHOLDER);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::routes::{RouteSpec, RuleAccess};

    fn rule(path: &str, methods: &[&str], access: Option<RuleAccess>, roles: &[&str]) -> RouteSpec {
        RouteSpec {
            path: path.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            access,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn table() -> RouteTable {
        RouteTable::compile(vec![
            rule("/items/special", &[], Some(RuleAccess::Deny), &[]),
            rule("/static/**", &["GET"], Some(RuleAccess::Public), &[]),
            rule("/items/*", &["GET"], Some(RuleAccess::Public), &[]),
            rule("/admin/**", &[], None, &["admin", "ops"]),
            rule("/files/*.json", &[], Some(RuleAccess::Authenticated), &[]),
        ])
        .unwrap()
    }

    fn op(method: Method, path: &str) -> Operation {
        Operation {
            method,
            path: path.into(),
        }
    }

    fn judged(method: Method, path: &str) -> (String, String) {
        let d = decide(&table(), "/auth", &op(method, path));
        (d.access_text(), d.rule_text())
    }

    #[test]
    fn a_parameter_segment_is_decided_only_by_a_glob_that_takes_every_value() {
        // The literal deny for one value does not decide the template.
        assert_eq!(
            judged(Method::GET, "/items/{item_id}"),
            ("public".into(), "route[2]".into())
        );
        assert_eq!(
            judged(Method::GET, "/static/{path}"),
            ("public".into(), "route[1]".into())
        );
        assert_eq!(
            judged(Method::GET, "/files/{name}.json"),
            ("authenticated".into(), "route[4]".into())
        );
        // `*.json` does not cover every value of `{name}`.
        assert_eq!(
            judged(Method::GET, "/files/{name}"),
            ("authenticated".into(), "default".into())
        );
    }

    #[test]
    fn methods_follow_the_rules_and_get_rules_cover_head() {
        assert_eq!(
            judged(Method::HEAD, "/items/{id}"),
            ("public".into(), "route[2]".into())
        );
        assert_eq!(
            judged(Method::DELETE, "/items/{id}"),
            ("authenticated".into(), "default".into())
        );
        assert_eq!(
            judged(Method::POST, "/admin/users/{id}"),
            ("roles: admin, ops".into(), "route[3]".into())
        );
        assert_eq!(
            judged(Method::GET, "/items/special"),
            ("deny".into(), "route[0]".into())
        );
    }

    #[test]
    fn paths_under_the_prefix_are_portcullis_own() {
        assert_eq!(
            judged(Method::GET, "/auth/me"),
            ("portcullis".into(), "login.prefix".into())
        );
        assert_eq!(
            judged(Method::GET, "/authors"),
            ("authenticated".into(), "default".into())
        );
    }

    #[test]
    fn placeholders_replace_each_braced_name() {
        assert_eq!(probe_path("/a/{x}/b/{y}.json"), "/a/%/b/%.json");
        assert_eq!(probe_path("/a/{unclosed"), "/a/{unclosed");
        assert_eq!(probe_path("/plain"), "/plain");
    }

    #[test]
    fn operations_are_read_from_paths_sorted_and_non_operations_skipped() {
        let doc = br#"{"openapi":"3.1.0","paths":{
            "/z":{"get":{},"post":{}},
            "/a/{id}":{"parameters":[],"summary":"x","delete":{},"get":{}}
        }}"#;
        let ops = operations(doc).unwrap();
        assert_eq!(
            ops,
            vec![
                op(Method::GET, "/a/{id}"),
                op(Method::DELETE, "/a/{id}"),
                op(Method::GET, "/z"),
                op(Method::POST, "/z"),
            ]
        );
    }

    #[test]
    fn documents_that_are_not_openapi_are_refused_with_the_reason() {
        assert!(matches!(
            operations(b"openapi: 3.1.0"),
            Err(OpenApiError::NotJson(_))
        ));
        assert_eq!(operations(b"{\"info\":{}}"), Err(OpenApiError::NoPaths));
        assert_eq!(
            operations(br#"{"paths":{"items":{"get":{}}}}"#),
            Err(OpenApiError::RelativePath("items".into()))
        );
    }
}
