//! `portcullis routes --openapi URL|FILE [--strict]`: reads the app's
//! OpenAPI document (a file, `-` for stdin, or an `http://` URL such as
//! FastAPI's `/openapi.json`) and lists every operation with the decision
//! the configured `[[route]]` rules give it and the rule that decided. The
//! matching itself is `policy::openapi`; this module reads and prints.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::Config;
use crate::policy::openapi::{self, Decision};

/// How long fetching the document may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A document larger than this is refused: a large app's is a few hundred KiB.
const MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;

/// One operation in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) method: String,
    pub(crate) path: String,
    /// `public`, `authenticated`, `roles: a, b`, `deny`, or `portcullis`.
    pub(crate) decision: String,
    /// `route[i]`, `default` or `login.prefix`.
    pub(crate) rule: String,
    /// No rule matched: what `--strict` refuses.
    pub(crate) default: bool,
}

/// Reads the document at `location`: an `http://` URL, `-` for stdin, or a
/// file path. Errors say what to try instead.
pub(crate) async fn read_document(location: &str) -> anyhow::Result<Vec<u8>> {
    if location.starts_with("https://") {
        anyhow::bail!(
            "--openapi {location}: https is not supported here; fetch the document from the app directly over http \
             (e.g. http://127.0.0.1:8000/openapi.json), or save it and pass the file"
        );
    }
    if location.starts_with("http://") {
        return tokio::time::timeout(FETCH_TIMEOUT, fetch(location))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "--openapi {location}: no complete answer within {}s",
                    FETCH_TIMEOUT.as_secs()
                )
            })?;
    }
    if location == "-" {
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut buf)
            .await
            .map_err(|e| anyhow::anyhow!("--openapi -: cannot read stdin: {e}"))?;
        return Ok(buf);
    }
    tokio::fs::read(location)
        .await
        .map_err(|e| anyhow::anyhow!("--openapi {location}: cannot read the file: {e}"))
}

async fn fetch(url: &str) -> anyhow::Result<Vec<u8>> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("--openapi {url}: not a valid URL: {e}"))?;
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "portcullis-routes")
        .body(Empty::new())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| anyhow::anyhow!("--openapi {url}: {}", error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        let hint = if status.is_redirection() || status == http::StatusCode::UNAUTHORIZED {
            " (through portcullis the document needs a session: fetch it from the app itself)"
        } else {
            ""
        };
        anyhow::bail!("--openapi {url}: the server answered {status}{hint}");
    }
    let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("--openapi {url}: reading the document: {e}"))?;
    Ok(body.to_bytes().to_vec())
}

/// The error and its causes, `: `-separated (hyper's own message is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The whole command: the table on stdout, a summary (and with `strict`,
/// each operation no rule covers) on stderr. Returns the exit code: 0, 1
/// when `strict` and an operation falls to the default, 2 when the document
/// cannot be read.
pub async fn run(config: &Config, location: &str, strict: bool) -> u8 {
    let rows = match read_document(location)
        .await
        .and_then(|document| coverage(config, &document))
    {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("{e:#}");
            return 2;
        }
    };
    print!("{}", render(&rows));
    let defaults: Vec<&Row> = rows.iter().filter(|r| r.default).collect();
    eprintln!(
        "{} operation(s), {} decided by the default (authenticated)",
        rows.len(),
        defaults.len()
    );
    if strict && !defaults.is_empty() {
        for row in defaults {
            eprintln!(
                "--strict: {} {} has no [[route]] rule",
                row.method, row.path
            );
        }
        return 1;
    }
    0
}

/// Every operation of `document` judged by the config's route rules.
pub(crate) fn coverage(config: &Config, document: &[u8]) -> anyhow::Result<Vec<Row>> {
    let operations =
        openapi::operations(document).map_err(|e| anyhow::anyhow!("--openapi: {e}"))?;
    Ok(operations
        .iter()
        .map(|op| {
            let decision = openapi::decide(&config.routes, &config.login.prefix, op);
            Row {
                method: op.method.to_string(),
                path: op.path.clone(),
                decision: decision.access_text(),
                rule: decision.rule_text(),
                default: decision == Decision::Default,
            }
        })
        .collect())
}

/// The rows as an aligned table with a header line.
pub(crate) fn render(rows: &[Row]) -> String {
    let header = Row {
        method: "METHOD".into(),
        path: "PATH".into(),
        decision: "DECISION".into(),
        rule: "RULE".into(),
        default: false,
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
    let (m, p, d) = (
        width(|r| &r.method),
        width(|r| &r.path),
        width(|r| &r.decision),
    );
    all.iter()
        .map(|r| {
            format!(
                "{:m$}  {:p$}  {:d$}  {}\n",
                r.method, r.path, r.decision, r.rule
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &[u8] = br#"{"openapi":"3.1.0","paths":{
        "/":{"get":{}},
        "/static/{path}":{"get":{}},
        "/admin/users/{id}":{"delete":{}},
        "/auth/me":{"get":{}}
    }}"#;

    fn config() -> Config {
        let toml = "[[route]]\npath = \"/static/**\"\nmethods = [\"GET\"]\naccess = \"public\"\n\
                    [[route]]\npath = \"/admin/**\"\nroles = [\"admin\"]\n";
        Config::from_toml(toml, std::path::Path::new(".")).unwrap()
    }

    #[test]
    fn every_operation_gets_its_rule_or_the_default() {
        let rows = coverage(&config(), DOC).unwrap();
        let cells: Vec<(&str, &str, &str, &str, bool)> = rows
            .iter()
            .map(|r| {
                (
                    r.method.as_str(),
                    r.path.as_str(),
                    r.decision.as_str(),
                    r.rule.as_str(),
                    r.default,
                )
            })
            .collect();
        assert_eq!(
            cells,
            vec![
                ("GET", "/", "authenticated", "default", true),
                (
                    "DELETE",
                    "/admin/users/{id}",
                    "roles: admin",
                    "route[1]",
                    false
                ),
                ("GET", "/auth/me", "portcullis", "login.prefix", false),
                ("GET", "/static/{path}", "public", "route[0]", false),
            ]
        );
    }

    #[test]
    fn the_table_is_aligned_under_its_header() {
        let table = render(&coverage(&config(), DOC).unwrap());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("METHOD  PATH "), "{table}");
        let column = lines[0].find("DECISION").unwrap();
        assert!(lines.iter().skip(1).all(|l| l[column - 2..column] == *"  "));
        assert_eq!(lines[2].split_whitespace().last(), Some("route[1]"));
    }

    #[tokio::test]
    async fn https_is_refused_with_what_to_do_instead() {
        let err = read_document("https://app.example/openapi.json")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("https is not supported"), "{err}");
        assert!(err.contains("pass the file"), "{err}");
    }
}
