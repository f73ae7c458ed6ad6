//! The reference in `docs/` against the code it describes, so it cannot
//! drift: every key of the shipped `proxy.toml` (set or commented out) is
//! in `docs/configuration.md`, every key documented there is one the config
//! loader accepts with its documented default and example, and every link
//! in README.md, ARCHITECTURE.md and `docs/` points at a file (and heading)
//! that exists inside the repository or at a well-known site.

#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/shipped.rs"]
mod shipped;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use portcullis::config::Config;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Hosts a link may leave the repository for: standards and the manuals of
/// the software the reference tells operators to run.
const EXTERNAL_HOSTS: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "www.rfc-editor.org",
    "datatracker.ietf.org",
    "developer.mozilla.org",
    "nginx.org",
    "doc.traefik.io",
    "caddyserver.com",
    "www.uvicorn.org",
    "fastapi.tiangolo.com",
    "prometheus.io",
    "www.sqlite.org",
    "www.postgresql.org",
];

/// Error text that means the loader did not take a key or its value as
/// written (unknown key, wrong type or word, unparsable duration), as
/// opposed to a check of the whole file (a key file that does not exist).
const REFUSED: &[&str] = &[
    "unknown field",
    "invalid type",
    "unknown variant",
    "invalid value",
    "invalid length",
    "is not a duration",
];

// --- docs/configuration.md ----------------------------------------------

/// A documented key: its row's default (when written as one TOML value)
/// and example.
struct Documented {
    key: String,
    line: usize,
    default: Option<toml::Value>,
    example: toml::Value,
}

/// Every row of `docs/configuration.md` whose first cell is a key in
/// backticks. The example cell must be one TOML value in backticks.
fn documented_keys() -> Vec<Documented> {
    let text = read("docs/configuration.md");
    let mut rows = Vec::new();
    for (i, line) in markdown::outside_fences(&text).into_iter().enumerate() {
        let Some(cells) = markdown::table_cells(line) else {
            continue;
        };
        let Some(key) = markdown::code_span(&cells[0], false).filter(|k| is_key(k)) else {
            continue;
        };
        assert_eq!(
            cells.len(),
            4,
            "configuration.md line {}: want 4 cells",
            i + 1
        );
        let example = markdown::code_span(&cells[2], false)
            .and_then(value)
            .unwrap_or_else(|| {
                panic!("configuration.md line {}: example of {key} is not one TOML value in backticks: {}", i + 1, cells[2])
            });
        rows.push(Documented {
            key: key.to_string(),
            line: i + 1,
            default: markdown::code_span(&cells[1], true).and_then(value),
            example,
        });
    }
    rows
}

/// `server.tls.cert`, `route[].path`: dotted lower-case segments, `[]` after
/// an array of tables.
fn is_key(s: &str) -> bool {
    s.contains('.')
        && s.split('.').all(|segment| {
            let name = segment.strip_suffix("[]").unwrap_or(segment);
            name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn value(text: &str) -> Option<toml::Value> {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()?
        .remove("v")
}

/// A config holding only `key = value`: `[section]` or `[[array]]` header,
/// then the key. `${NAME}` is replaced by a long literal, so the key is
/// typed whatever the environment holds.
fn snippet(key: &str, value: &toml::Value) -> String {
    let (table, leaf) = key.rsplit_once('.').expect("a dotted key");
    let header = match table.strip_suffix("[]") {
        Some(array) => format!("[[{array}]]"),
        None => format!("[{table}]"),
    };
    let mut entry = toml::Table::new();
    entry.insert(leaf.to_string(), without_env(value));
    format!("{header}\n{entry}")
}

fn without_env(value: &toml::Value) -> toml::Value {
    match value {
        toml::Value::String(s) => {
            let mut out = s.clone();
            while let Some(start) = out.find("${") {
                let end = out[start..].find('}').map_or(out.len(), |e| start + e + 1);
                out.replace_range(start..end, "0123456789abcdef0123456789abcdef-docs");
            }
            toml::Value::String(out)
        }
        toml::Value::Array(items) => toml::Value::Array(items.iter().map(without_env).collect()),
        other => other.clone(),
    }
}

/// The loader's complaints about `text` that say a key or value was not
/// taken as written.
fn refusals(text: &str) -> Vec<String> {
    match Config::from_toml(text, &root()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .to_string()
            .lines()
            .filter(|line| REFUSED.iter().any(|r| line.contains(r)))
            .map(str::to_string)
            .collect(),
    }
}

#[test]
fn every_shipped_key_is_documented_and_nothing_else() {
    let shipped = shipped::shipped_keys(&read("proxy.toml"));
    let documented: BTreeSet<String> = documented_keys().into_iter().map(|d| d.key).collect();
    let missing: Vec<_> = shipped.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "keys of proxy.toml missing from docs/configuration.md: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&shipped).collect();
    assert!(
        extra.is_empty(),
        "keys in docs/configuration.md that proxy.toml does not show (add them there, commented, with their default): {extra:?}"
    );
}

#[test]
fn every_documented_key_is_accepted_with_its_default_and_example() {
    let rows = documented_keys();
    assert!(
        rows.len() > 90,
        "only {} keys found: is the table format still `| `key` | ...`?",
        rows.len()
    );
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for row in &rows {
        if !seen.insert(row.key.clone()) {
            problems.push(format!("line {}: {} documented twice", row.line, row.key));
        }
        for (what, value) in [
            ("example", Some(&row.example)),
            ("default", row.default.as_ref()),
        ] {
            let Some(value) = value else { continue };
            let text = snippet(&row.key, value);
            for refusal in refusals(&text) {
                problems.push(format!(
                    "line {}: {} ({what}): {refusal}",
                    row.line, row.key
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md:\n{}",
        problems.join("\n")
    );
}

/// The check above relies on the loader's wording; this pins it.
#[test]
fn the_loader_still_words_refusals_as_this_test_expects() {
    assert!(!refusals("[session]\nidle_timeot = \"30m\"\n").is_empty());
    assert!(!refusals("[session]\nidle_timeout = 30\n").is_empty());
    assert!(!refusals("[session]\nidle_timeout = \"soon\"\n").is_empty());
    assert!(!refusals("[session]\nstore = \"redis\"\n").is_empty());
    assert!(!refusals("[[route]]\npath = \"/x\"\naccess = \"open\"\n").is_empty());
    assert!(refusals("[session]\nidle_timeout = \"30m\"\n").is_empty());
}

#[test]
fn the_shipped_proxy_toml_loads() {
    Config::load(&root().join("proxy.toml")).expect("proxy.toml loads");
}

// --- links --------------------------------------------------------------

/// README.md, ARCHITECTURE.md and every page of `docs/`.
fn pages() -> Vec<String> {
    let mut pages = vec!["README.md".to_string(), "ARCHITECTURE.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn check_link(page: &str, target: &str) -> Result<(), String> {
    if let Some(rest) = target
        .strip_prefix("https://")
        .or_else(|| target.strip_prefix("http://"))
    {
        let host = rest.split(['/', ':', '?', '#']).next().unwrap_or("");
        return match EXTERNAL_HOSTS.contains(&host) {
            true => Ok(()),
            false => Err(format!("leaves the repository for {host}")),
        };
    }
    if target.contains("://") || target.starts_with("mailto:") || target.starts_with('/') {
        return Err("not a relative link into the repository".into());
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let base = Path::new(page).parent().unwrap_or(Path::new(""));
    let file = if path.is_empty() {
        root().join(page)
    } else {
        root().join(base).join(path)
    };
    let resolved = file
        .canonicalize()
        .map_err(|_| format!("{} does not exist", file.display()))?;
    let repository = root().canonicalize().unwrap();
    if !resolved.starts_with(&repository) {
        return Err("points outside the repository".into());
    }
    if let Some(anchor) = anchor {
        let text = std::fs::read_to_string(&resolved).map_err(|e| e.to_string())?;
        if !markdown::anchors(&text).iter().any(|a| a == anchor) {
            return Err(format!("no heading with anchor #{anchor}"));
        }
    }
    Ok(())
}

#[test]
fn every_link_stays_in_the_repository_and_resolves() {
    let mut problems = Vec::new();
    for page in pages() {
        for (line, target) in markdown::link_targets(&read(&page)) {
            if let Err(why) = check_link(&page, &target) {
                problems.push(format!("{page}:{line}: {target}: {why}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// The reference stands on its own: nothing names a contract file that is
/// not in the repository.
#[test]
fn no_page_mentions_files_outside_the_repository() {
    for page in pages().into_iter().chain(["proxy.toml".to_string()]) {
        let text = read(&page);
        for outside in ["SPEC.md", "../shared", "/work/"] {
            assert!(!text.contains(outside), "{page} mentions {outside}");
        }
    }
}

#[test]
fn the_reference_links_every_page_from_its_index_and_the_readme() {
    let index = read("docs/README.md");
    let readme = read("README.md");
    for page in pages().iter().filter_map(|p| p.strip_prefix("docs/")) {
        if page != "README.md" {
            assert!(
                index.contains(&format!("]({page}")),
                "docs/README.md does not link {page}"
            );
            assert!(
                readme.contains(&format!("](docs/{page}")),
                "README.md does not link docs/{page}"
            );
        }
    }
}
