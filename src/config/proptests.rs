//! Properties of loading: any text, TOML-ish lines, every key with random
//! values and deep nesting are refused with named problems, never a panic.

use super::Config;
use proptest::prelude::*;
use std::path::Path;

/// `cases` (`PROPTEST_CASES` overrides), no regression files: failures
/// found are kept as named unit tests instead.
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

fn load(text: &str) {
    // Ok or a list of problems, never a panic.
    if let Err(e) = Config::from_toml(text, Path::new(".")) {
        assert!(!e.problems.is_empty(), "an error names no problem");
    }
}

/// Lines that are almost TOML, or TOML at its edges.
#[rustfmt::skip]
fn toml_line() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "[server]", "[server.tls]", "[upstream.headers]", "[upstream.assertion]", "[[route]]",
        "[[sso.partners]]", "[session]", "[login]", "[tokens]", "[credentials.mysql]", "[log]",
        "[server", "]]", "[[", "[a.b.c]", "[]", "path = \"/a\"", "path = '/**'", "a = 1",
        "listen = \"0.0.0.0:8080\"", "idle_timeout = \"99999999999999999999y\"",
        "max_header_bytes = 9223372036854775807", "max_connections = -1", "x.y = [1, \"a\"]",
        "inline = { a = 1, b = { c = [] } }", "s = '''", "\"\"\"", "=", "= 1", "# comment",
        "", "t = 1979-05-27T07:32:00Z", "n = nan", "n = -inf", "n = 0x7fffffffffffffff",
        "n = 99999999999999999999", "k = \"${HOME}\"", "k = \"${\"", "k = \"\\uD800\"",
        "k = \"\\u0000\"", "roles = [\"admin\"]", "methods = [\"GET\", 1]", "access = \"deny\"",
        "algorithms = [\"HS256\"]", "secret = \"0123456789abcdef0123456789abcdef\"", "\u{feff}",
        "a = \"\u{0}\"", "\r", "a.\"b\".c = true",
    ])
}

/// `a = [[[...`, `a = {b = {b = ...`, `[server.a.a...]`, `a.a.a... = 1`:
/// nesting as deep as a file can go.
fn nested() -> impl Strategy<Value = String> {
    (0usize..3000, 0..4, any::<bool>()).prop_map(|(depth, shape, closed)| {
        let (open, close) = match shape {
            0 => ("[", "]"),
            1 => ("{b = ", "}"),
            2 => return format!("[server{}]\nb = 1", ".a".repeat(depth)),
            _ => return format!("server{}.b = 1", ".a".repeat(depth)),
        };
        let mut s = format!("a = {}1", open.repeat(depth));
        if closed {
            s.push_str(&close.repeat(depth));
        }
        s
    })
}

/// Every key `proxy.toml` has, with the type it takes: `s` string,
/// `i` integer, `b` boolean, `l` list of strings; `!` marks a key its
/// table cannot do without.
#[rustfmt::skip]
const SCHEMA: &[(&str, &[&str])] = &[
    ("server", &["s:listen", "s:public_url", "l:trusted_proxies", "s:header_read_timeout",
        "i:max_header_bytes", "i:max_connections", "s:shutdown_grace", "s:body_read_timeout",
        "s:keepalive_timeout", "i:h2_max_streams", "l:websocket_origins"]),
    ("server.tls", &["s!cert", "s!key", "s:redirect_http_from"]),
    ("admin", &["s:listen"]),
    ("upstream", &["s:url", "s:connect_timeout", "s:response_header_timeout",
        "s:pool_idle_timeout", "b:pass_session_cookie", "i:max_connections",
        "s:tunnel_idle_timeout"]),
    ("upstream.headers", &["s:user", "s:email", "s:roles"]),
    ("upstream.assertion", &["s:header", "s:algorithm", "s:key", "s:secret", "s!audience"]),
    ("session", &["s:store", "s:cookie_name", "s:idle_timeout", "s:absolute_timeout",
        "s:same_site", "i:max_per_user", "s:cache_ttl", "s:recheck_interval"]),
    ("postgres", &["s:url", "i:pool_size", "s:connect_timeout", "b:migrate"]),
    ("credentials", &["s:backend"]),
    ("credentials.file", &["s:path"]),
    ("credentials.mysql", &["s:url", "i:pool_size", "s:user_query", "s:rehash_update"]),
    ("login", &["s:prefix", "s:title", "s:template", "i:max_failures", "s:lockout",
        "s:ip_rate", "i:hash_workers", "s:hash_wait"]),
    ("registration", &["b:enabled", "i:password_min", "i:password_max", "s:insert"]),
    ("tokens", &["s:access_ttl", "s:refresh_ttl", "s:algorithm", "s:secret"]),
    ("forward_auth", &["s:uri_header", "s:method_header"]),
    ("audit", &["s:retention"]),
    ("log", &["s:format", "b:access_log"]),
    ("route[]", &["s!path", "l:methods", "s:access", "l:roles"]),
    ("sso.partners[]", &["s!name", "s!issuer", "s!audience", "l!algorithms", "s:key",
        "s:secret", "s:max_age", "s:clock_skew", "s:user_claim", "b:require_known_user",
        "b:require_mfa"]),
];

/// Values that sit on the edges of what each key accepts.
#[rustfmt::skip]
fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => prop::sample::select(vec![
            "", "0s", "1ns", "30s", "5m", "12h", "7d", "18446744073709551615s",
            "99999999999999999999y", "-1s", "1.5h", "10 m", "http://127.0.0.1:8000",
            "https://app.example.com", "http://", "http://[::1]:1/", "http://a:b@h/p?q",
            "postgres://u@h/db", "mysql://r@h/app", "mysql://", "ftp://x", "X-Auth-User",
            "bad header", "x_y", "/auth", "/", "//", "/a/../b", "/auth/", "/%2e", "auth",
            "/**", "/a**", "/*/x", "HS256", "HS384", "EdDSA", "RS256", "ES256", "none", "PS256",
            "20/min", "0/min", "4294967296/s", "1/0s", "1/18446744073709551615s", "5/", "/min",
            "10.0.0.0/8", "::1/200", "1.2.3.4", "300.0.0.1", "0.0.0.0:8080", "127.0.0.1:0",
            "[::1]:99999", "memory", "sqlite", "postgres", "file", "mysql", "lax", "strict", "json",
            "pretty", "public", "deny", "authenticated", "GET", "get", "BREW", "SELECT ? ?",
            "INSERT ? ? ?", "UPDATE ? ?", "__Host-x", "email", "0123456789abcdef0123456789abcdef",
            "\u{0}", "\u{85}", "é",
        ]).prop_map(str::to_string),
        5 => "[ -~]{0,16}",
        1 => prop::sample::select(vec![
            "${HOME}", "${PORTCULLIS_PROPTEST_UNSET}", "${", "${a-b}", "$${X}", "a${HOME}b",
        ]).prop_map(str::to_string),
    ]
}

#[rustfmt::skip]
fn value(kind: char) -> BoxedStrategy<toml::Value> {
    let typed = match kind {
        'i' => prop_oneof![
            4 => prop::sample::select(vec![
                0i64, 1, 7, 8, 12, 128, 1024, 1025, 8191, 8192, 65536, 1 << 20,
                (1 << 20) + 1, 10_000, 10_001, u32::MAX as i64,
            ]),
            4 => 0..=u32::MAX as i64,
            1 => prop_oneof![9 => 0..=u32::MAX as i64, 1 => any::<i64>()],
        ]
        .prop_map(toml::Value::Integer)
        .boxed(),
        'b' => any::<bool>().prop_map(toml::Value::Boolean).boxed(),
        'l' => prop::collection::vec(string_value().prop_map(toml::Value::String), 0..4)
            .prop_map(toml::Value::Array)
            .boxed(),
        _ => string_value().prop_map(toml::Value::String).boxed(),
    };
    let wrong = prop_oneof![
        any::<f64>().prop_map(toml::Value::Float),
        any::<i64>().prop_map(toml::Value::Integer),
        string_value().prop_map(toml::Value::String),
        Just(toml::Value::Table(toml::Table::new())),
    ];
    prop_oneof![300 => typed, 1 => wrong].boxed()
}

/// A structurally valid `proxy.toml`: a random subset of sections and
/// keys (now and then an unknown one), each with a random value of
/// (mostly) the right type.
fn structured() -> impl Strategy<Value = toml::Table> {
    let sections: Vec<BoxedStrategy<(&'static str, Vec<toml::Table>)>> = SCHEMA
        .iter()
        .map(|(section, keys)| {
            let entries: Vec<_> = keys
                .iter()
                .map(|k| {
                    let (kind, name) = k.split_at(2);
                    let present = if kind.ends_with('!') { 0.98 } else { 0.6 };
                    prop::option::weighted(present, value(kind.chars().next().unwrap()))
                        .prop_map(move |v| (name, v))
                })
                .collect();
            let table = (entries, prop::option::weighted(0.005, string_value())).prop_map(
                |(entries, unknown)| {
                    let mut t: toml::Table = entries
                        .into_iter()
                        .filter_map(|(k, v)| Some((k.to_string(), v?)))
                        .collect();
                    if let Some(v) = unknown {
                        t.insert("unknown_key".into(), toml::Value::String(v));
                    }
                    t
                },
            );
            let count = if section.ends_with("[]") { 0..4 } else { 0..2 };
            (Just(*section), prop::collection::vec(table, count)).boxed()
        })
        .collect();
    sections.prop_map(|sections| {
        let mut root = toml::Table::new();
        for (section, tables) in sections {
            let (path, array) = match section.strip_suffix("[]") {
                Some(p) => (p, true),
                None => (section, false),
            };
            let mut parts: Vec<&str> = path.split('.').collect();
            let last = parts.pop().unwrap();
            let mut parent = &mut root;
            for p in parts {
                parent = parent
                    .entry(p)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .unwrap();
            }
            if array {
                let items = tables.into_iter().map(toml::Value::Table).collect();
                parent.insert(last.into(), toml::Value::Array(items));
            } else if let Some(t) = tables.into_iter().next() {
                let slot = parent
                    .entry(last)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                slot.as_table_mut().unwrap().extend(t);
            }
        }
        root
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_text_loads_or_is_refused(text in any::<String>()) {
        load(&text);
    }

    #[test]
    fn toml_ish_text_loads_or_is_refused(
        lines in prop::collection::vec(toml_line(), 0..16),
    ) {
        load(&lines.join("\n"));
    }

    #[test]
    fn random_values_in_every_key_load_or_are_refused(table in structured()) {
        let text = toml::to_string(&table).unwrap();
        load(&text);
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn deep_nesting_is_refused_without_overflowing(text in nested()) {
        load(&text);
    }
}
