//! The Python package in `python/` (`portcullis-fastapi`), tested by its own
//! pytest suite against this build's binary in front of a real FastAPI app
//! under uvicorn: `cargo test` runs the Python tests too. Needs the
//! project's `.venv` with the package and its test extras (`scripts/test.sh`
//! installs them); fails rather than skips without it. Also the first-run
//! setup of `scripts/demo.sh`.

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
        .args([
            "-m",
            "pytest",
            "python/tests",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
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

/// `scripts/demo.sh` on a machine with nothing installed: its first run makes
/// a virtual environment (never a system-wide pip install, which Debian's
/// python3 refuses) holding the demo app's packages and `pip install
/// ./python`. Needs PyPI, like `scripts/test.sh`.
#[test]
fn demo_sh_sets_up_a_fresh_virtual_environment() {
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    let out = Command::new("bash")
        .arg("scripts/demo.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PORTCULLIS_DEMO_VENV", &venv)
        .env("PORTCULLIS_DEMO_SETUP_ONLY", "1")
        .env("PIP_NO_INPUT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(first run)"));
    // The package itself, copied into the environment (not an editable
    // link to the working tree).
    let check = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import fastapi, uvicorn, portcullis; print(portcullis.__file__)",
        ])
        .output()
        .unwrap();
    let file = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{file}");
    assert!(file.contains("site-packages/portcullis/"), "{file}");

    // A second run finds everything in place and installs nothing.
    let again = Command::new("bash")
        .arg("scripts/demo.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PORTCULLIS_DEMO_VENV", &venv)
        .env("PORTCULLIS_DEMO_SETUP_ONLY", "1")
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stdout).contains("first run"));
}
