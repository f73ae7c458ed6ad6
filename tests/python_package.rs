//! The Python package in `python/` (`portcullis-fastapi`), tested by its own
//! pytest suite against this build's binary in front of a real FastAPI app
//! under uvicorn: `cargo test` runs the Python tests too. Needs the
//! project's `.venv` with the package and its test extras (`scripts/test.sh`
//! installs them); fails rather than skips without it.

use std::path::PathBuf;
use std::process::Command;

/// `$PORTCULLIS_TEST_PYTHON`, else the project's `.venv/bin/python`.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("PORTCULLIS_TEST_PYTHON") {
        return python.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} missing: run scripts/test.sh (or python3 -m venv .venv && .venv/bin/pip install -r deploy/app/requirements.txt './python[test]')",
        venv.display()
    );
    venv
}

#[test]
fn the_python_package_tests_pass_against_this_binary() {
    let python = python();
    let out = Command::new(&python)
        .args(["-m", "pytest", "python/tests", "-q", "-p", "no:cacheprovider"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PORTCULLIS_BIN", env!("CARGO_BIN_EXE_portcullis"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pytest failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Exit 0 with nothing collected would prove nothing.
    assert!(stdout.contains(" passed"), "{stdout}");
    assert!(!stdout.contains(" skipped"), "no test may skip: {stdout}");
}
