#!/usr/bin/env bash
# Runs the demo: the FastAPI app from deploy/app on 127.0.0.1:8000 (in the
# background, stopped when this script ends) and portcullis on the shipped
# proxy.toml at http://localhost:8080. Sign in as demo / portcullis-demo.
#
# The first run creates a virtual environment in .venv/ (ignored by git) and
# installs the demo app's packages and python/ (the portcullis package) into
# it: nothing is installed system-wide, which Debian's python3 refuses
# (PEP 668). On Debian or Ubuntu that needs `apt-get install python3-venv`.
#
# Environment:
#   PORTCULLIS_DEMO_VENV=DIR         the virtual environment (default .venv)
#   PORTCULLIS_DEMO_SETUP_ONLY=1     stop once it is set up
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${PORTCULLIS_DEMO_VENV:-.venv}

if ! "$venv/bin/python" -c 'import fastapi, uvicorn, portcullis' 2>/dev/null; then
    echo "==> installing the demo app's packages into $venv/ (first run)"
    if [ ! -x "$venv/bin/pip" ]; then
        if ! python3 -m venv "$venv"; then
            echo "error: python3 -m venv failed; on Debian or Ubuntu: apt-get install python3-venv" >&2
            exit 1
        fi
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check -r deploy/app/requirements.txt ./python
fi
if [ "${PORTCULLIS_DEMO_SETUP_ONLY:-}" = 1 ]; then
    echo "==> $venv/ is ready"
    exit 0
fi

echo "==> demo app on http://127.0.0.1:8000 (reachable only through portcullis in production)"
"$venv/bin/python" -m uvicorn --app-dir deploy/app main:app --host 127.0.0.1 --port 8000 \
    --proxy-headers --forwarded-allow-ips 127.0.0.1 --log-level warning &
app_pid=$!
trap 'kill "$app_pid" 2>/dev/null || true' EXIT

echo "==> portcullis on http://localhost:8080 (admin on 127.0.0.1:9090)"
cargo run --quiet -- serve --config proxy.toml
