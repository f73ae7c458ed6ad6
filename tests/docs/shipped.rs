//! The keys of the shipped `proxy.toml`, for `tests/docs.rs`: the ones TOML
//! sees and the commented-out ones (`# key = value` under a `[section]` or a
//! commented `# [section]` header), each as `section.key`, with arrays of
//! tables written `route[].path`.

use std::collections::BTreeSet;

/// Every key of `text` as `section.key`, with arrays of tables written
/// `route[].path`: the keys TOML sees, and the commented-out ones, `# key =
/// value` lines under a `[section]` or `# [section]` header. A comment line
/// that looks like a key but is not valid TOML is an error, so a commented
/// key can never be missed.
pub fn shipped_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let table: toml::Table = toml::from_str(text).expect("proxy.toml is valid TOML");
    flatten("", &toml::Value::Table(table), &mut keys);
    let mut section = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let (commented, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        if let Some(name) = section_header(body) {
            section = name;
            continue;
        }
        if !commented || !looks_like_key(body) {
            continue;
        }
        let parsed: toml::Table = toml::from_str(body).unwrap_or_else(|e| {
            panic!(
                "proxy.toml line {}: {body:?} looks like a commented key but is not TOML: {e}",
                n + 1
            )
        });
        for key in parsed.keys() {
            assert!(
                !section.is_empty(),
                "proxy.toml line {}: key outside a section",
                n + 1
            );
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

fn flatten(prefix: &str, value: &toml::Value, keys: &mut BTreeSet<String>) {
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                flatten(&join(key), value, keys);
            }
        }
        toml::Value::Array(items) if !items.is_empty() && items.iter().all(|v| v.is_table()) => {
            for item in items {
                flatten(&format!("{prefix}[]"), item, keys);
            }
        }
        _ => {
            keys.insert(prefix.to_string());
        }
    }
}

/// `server.tls` for `[server.tls]`, `route[]` for `[[route]]`.
fn section_header(line: &str) -> Option<String> {
    let (name, array) = if let Some(rest) = line.strip_prefix("[[") {
        (rest.split_once("]]")?, true)
    } else {
        (line.strip_prefix('[')?.split_once(']')?, false)
    };
    let (name, after) = name;
    let after = after.trim();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
        && (after.is_empty() || after.starts_with('#'));
    valid.then(|| {
        if array {
            format!("{name}[]")
        } else {
            name.to_string()
        }
    })
}

/// `name = ...` with a bare lower-case key: what a commented-out key looks
/// like (prose never starts that way).
fn looks_like_key(line: &str) -> bool {
    let Some((key, value)) = line.split_once('=') else {
        return false;
    };
    let key = key.trim_end();
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !value.trim().is_empty()
}

#[test]
fn the_extractor_sees_commented_keys_in_commented_sections() {
    let text = "[server]\n# Prose = not a key.\n# listen = \"0.0.0.0:8080\"  # default\n\
                # [server.tls]\n# cert = \"c.pem\"\n# [[sso.partners]]\n# name = \"p\"\n\
                [[route]]\npath = \"/\"\n";
    let keys: Vec<String> = shipped_keys(text).into_iter().collect();
    assert_eq!(
        keys,
        vec![
            "route[].path",
            "server.listen",
            "server.tls.cert",
            "sso.partners[].name"
        ]
    );
}
