//! `portcullis routes --openapi`: the app's operations against the route
//! rules, from a FastAPI-style document read from a file, stdin or http://,
//! and the exit codes CI relies on (0, 1 with `--strict`, 2 when the
//! document cannot be read). The demo app's real `/openapi.json` under
//! uvicorn is read in tests/demo_app.rs.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openapi-fastapi.json"
);

/// Rules for the fixture's shop: everything but `PUT /items/{item_id}`,
/// `GET /` and the report is covered.
const RULES: &str = r#"
[[route]]
path = "/static/**"
methods = ["GET", "HEAD"]
access = "public"

[[route]]
path = "/items/*"
methods = ["GET"]
access = "public"

[[route]]
path = "/admin/**"
roles = ["admin", "ops"]

[[route]]
path = "/internal/**"
access = "deny"
"#;

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn routes(config: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let file = config_file(config);
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("routes")
        .arg("--config")
        .arg(file.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        pipe.write_all(bytes).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

/// The table's rows as `[method, path, decision, rule]` (columns are
/// separated by at least two spaces; `roles: a, b` holds single ones).
fn rows(out: &Output) -> Vec<Vec<String>> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

fn row(method: &str, path: &str, decision: &str, rule: &str) -> Vec<String> {
    [method, path, decision, rule].map(String::from).to_vec()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_operation_is_listed_with_the_rule_that_decides_it() {
    let out = routes(RULES, &["--openapi", FIXTURE], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        rows(&out),
        vec![
            row("GET", "/", "authenticated", "default"),
            row("GET", "/admin/users", "roles: admin, ops", "route[2]"),
            row(
                "DELETE",
                "/admin/users/{user_id}",
                "roles: admin, ops",
                "route[2]"
            ),
            row("GET", "/internal/metrics", "deny", "route[3]"),
            row("GET", "/items/{item_id}", "public", "route[1]"),
            row("PUT", "/items/{item_id}", "authenticated", "default"),
            row(
                "GET",
                "/reports/{year}/{month}.csv",
                "authenticated",
                "default"
            ),
            row("GET", "/static/{file_path}", "public", "route[0]"),
        ]
    );
    assert!(
        stderr(&out).contains("8 operation(s), 3 decided by the default"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn strict_exits_1_and_names_each_operation_without_a_rule() {
    let out = routes(RULES, &["--openapi", FIXTURE, "--strict"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for op in [
        "GET /",
        "PUT /items/{item_id}",
        "GET /reports/{year}/{month}.csv",
    ] {
        assert!(
            err.contains(&format!("--strict: {op} has no [[route]] rule")),
            "{op}: {err}"
        );
    }
    assert_eq!(err.matches("--strict:").count(), 3, "{err}");
    assert_eq!(rows(&out).len(), 8, "the table is printed all the same");
}

#[test]
fn strict_exits_0_once_every_operation_has_a_rule() {
    // A parameter is only covered by a glob that takes every value:
    // `/reports/*/*.csv` covers `/reports/{year}/{month}.csv`.
    let config = format!(
        "{RULES}\n[[route]]\npath = \"/reports/*/*.csv\"\nroles = [\"finance\"]\n\
         [[route]]\npath = \"/items/*\"\nmethods = [\"PUT\"]\n\
         [[route]]\npath = \"/\"\naccess = \"authenticated\"\n"
    );
    let out = routes(&config, &["--openapi", FIXTURE, "--strict"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = rows(&out);
    assert!(rows.contains(&row(
        "GET",
        "/reports/{year}/{month}.csv",
        "roles: finance",
        "route[4]"
    )));
    assert!(rows.contains(&row("PUT", "/items/{item_id}", "authenticated", "route[5]")));
    assert!(rows.contains(&row("GET", "/", "authenticated", "route[6]")));
}

#[test]
fn a_literal_rule_for_one_value_does_not_cover_the_template() {
    let config = "[[route]]\npath = \"/items/1\"\naccess = \"public\"\n";
    let out = routes(config, &["--openapi", FIXTURE, "--strict"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(rows(&out).contains(&row("GET", "/items/{item_id}", "authenticated", "default")));
}

#[test]
fn the_document_can_come_from_stdin() {
    let doc = br#"{"openapi":"3.1.0","paths":{"/auth/me":{"get":{}},"/x":{"post":{}}}}"#;
    let out = routes(RULES, &["--openapi", "-"], Some(doc));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        rows(&out),
        vec![
            row("GET", "/auth/me", "portcullis", "login.prefix"),
            row("POST", "/x", "authenticated", "default"),
        ]
    );
}

/// Serves one HTTP exchange on 127.0.0.1 with `response`, returning the URL
/// and a handle yielding the request it received.
fn serve_once(response: Vec<u8>) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/openapi.json", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        stream.write_all(&response).unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (url, handle)
}

#[test]
fn the_document_is_fetched_over_http() {
    let body = std::fs::read(FIXTURE).unwrap();
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let (url, server) = serve_once(response);
    let out = routes(RULES, &["--openapi", &url], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(rows(&out).len(), 8);
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /openapi.json HTTP/1.1\r\n"),
        "{request}"
    );
}

#[test]
fn a_redirect_says_to_fetch_from_the_app_and_exits_2() {
    let (url, server) = serve_once(
        b"HTTP/1.1 302 Found\r\nlocation: /auth/login\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            .to_vec(),
    );
    let out = routes(RULES, &["--openapi", &url], None);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("302") && err.contains("fetch it from the app itself"),
        "{err}"
    );
}

#[test]
fn an_unreadable_document_exits_2_with_the_reason() {
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/openapi.json", listener.local_addr().unwrap())
    };
    let yaml = config_file("openapi: 3.1.0\npaths: {}\n");
    let yaml_path = yaml.path().to_str().unwrap();
    for (location, expected) in [
        ("/nonexistent/openapi.json", "cannot read the file"),
        (refused.as_str(), "--openapi http://127.0.0.1:"),
        (yaml_path, "not a JSON document"),
        ("https://app.example/openapi.json", "https is not supported"),
    ] {
        let out = routes(RULES, &["--openapi", location], None);
        assert_eq!(out.status.code(), Some(2), "{location}");
        assert!(
            stderr(&out).contains(expected),
            "{location}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{location}");
    }
}
