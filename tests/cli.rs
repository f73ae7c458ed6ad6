//! The binary's commands as an operator runs them: `check` on good and
//! broken configs, `hash-password` from stdin, `serve` refusing a broken
//! config at once, shell completions (`routes` is in tests/routes_cli.rs),
//! and `migrate` making the SQLite file next to the config.

use std::io::Write;
use std::process::{Command, Stdio};

fn portcullis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn check_accepts_the_shipped_proxy_toml() {
    let out = portcullis()
        .args(["check", "--config", "proxy.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_names_every_broken_key_and_exits_1() {
    let file = config_file(
        "[session]\nidle_timeout = \"soon\"\n[[route]]\npath = \"admin/**\"\n[server]\nlisten = \"nowhere\"\n",
    );
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("session.idle_timeout: \"soon\""), "{err}");
    assert!(err.contains("route[0].path"), "{err}");
    assert!(err.contains("server.listen"), "{err}");
}

#[test]
fn check_refuses_unknown_keys_by_name() {
    let file = config_file("[login]\nprefx = \"/auth\"\n");
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prefx"));
}

#[test]
fn check_reports_a_missing_users_file() {
    let file = config_file("[credentials.file]\npath = \"/nonexistent/users.toml\"\n");
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("credentials.file.path") && err.contains("/nonexistent/users.toml"),
        "{err}"
    );
}

#[test]
fn check_reports_a_missing_environment_variable() {
    let file = config_file("[upstream]\nurl = \"${PORTCULLIS_TEST_SURELY_UNSET}\"\n");
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("upstream.url") && err.contains("PORTCULLIS_TEST_SURELY_UNSET"),
        "{err}"
    );
}

#[test]
fn environment_variables_are_interpolated() {
    let file = config_file(&format!(
        "[login]\ntitle = \"${{PORTCULLIS_TEST_TITLE}}\"\n[credentials.file]\npath = \"{}/deploy/users.toml\"\n",
        env!("CARGO_MANIFEST_DIR")
    ));
    let out = portcullis()
        .arg("check")
        .arg("--config")
        .arg(file.path())
        .env("PORTCULLIS_TEST_TITLE", "Welcome")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--config /etc/portcullis/proxy.toml` finds `users.toml` beside it
/// whatever the working directory.
#[test]
fn relative_paths_are_read_from_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/users.toml"),
        dir.path().join("users.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("proxy.toml"),
        "[credentials.file]\npath = \"users.toml\"\n[sqlite]\npath = \"portcullis.db\"\n",
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = portcullis()
        .current_dir(elsewhere.path())
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("proxy.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same file named relative to another working directory.
    let out = portcullis()
        .current_dir(dir.path().parent().unwrap())
        .arg("check")
        .arg("--config")
        .arg(
            dir.path()
                .file_name()
                .unwrap()
                .to_os_string()
                .into_string()
                .unwrap()
                + "/proxy.toml",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hash_password(args: &[&str], stdin: &[u8]) -> String {
    let mut child = portcullis()
        .arg("hash-password")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn hash_password_strips_only_the_trailing_newline() {
    let hash = hash_password(&[], b" pass word \n");
    assert!(hash.starts_with("$2b$12$"), "{hash}");
    assert!(bcrypt::verify(" pass word ", &hash).unwrap());
    assert!(!bcrypt::verify(" pass word", &hash).unwrap());
}

#[test]
fn hash_password_makes_argon2id_on_request() {
    let hash = hash_password(&["--algorithm", "argon2id"], b"secret\n");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

#[test]
fn serve_refuses_a_broken_config_at_once() {
    let file = config_file("[session]\nsame_site = \"none\"\n");
    let out = portcullis()
        .arg("serve")
        .arg("--config")
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("session.same_site"));
}

#[test]
fn compose_config_is_valid_and_check_names_the_unreachable_backends() {
    let out = portcullis()
        .args(["check", "--config", "deploy/proxy.compose.toml"])
        .env("PORTCULLIS_PUBLIC_URL", "http://localhost:8080")
        .env(
            "PORTCULLIS_POSTGRES_URL",
            "postgres://portcullis@127.0.0.1:1/portcullis",
        )
        .env("PORTCULLIS_MYSQL_URL", "mysql://reader:pw@127.0.0.1:1/app")
        .env(
            "PORTCULLIS_MFA_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("invalid config"), "{err}");
    assert!(
        err.contains("postgres.url") && err.contains("credentials.mysql.url"),
        "{err}"
    );
}

/// `migrate` with the default `[sqlite] path`, run from another directory:
/// the file lands next to the config, with every table.
#[test]
fn migrate_creates_the_file_next_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    std::fs::write(&config, "[credentials.file]\npath = \"users.toml\"\n").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let migrate = || {
        let out = portcullis()
            .current_dir(elsewhere.path())
            .args(["migrate", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(migrate().contains("applied"));
    assert!(!elsewhere.path().join("portcullis.db").exists());
    let conn = rusqlite::Connection::open(dir.path().join("portcullis.db")).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('sessions', 'refresh_tokens', 'audit_events')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 3);
    assert!(
        migrate().contains("(0 migration"),
        "a second run has nothing to do"
    );
}

#[test]
fn completions_name_every_subcommand_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = portcullis().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(!script.trim().is_empty(), "{shell}");
        for subcommand in [
            "serve",
            "check",
            "hash-password",
            "migrate",
            "sessions",
            "sso-token",
            "routes",
            "completions",
        ] {
            assert!(script.contains(subcommand), "{shell}: {subcommand}");
        }
        assert!(script.contains("openapi"), "{shell}: routes' flag");
    }
    let out = portcullis().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
