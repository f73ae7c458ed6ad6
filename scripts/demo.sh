#!/usr/bin/env bash
# Runs the demo: the FastAPI app from deploy/app on 127.0.0.1:8000 (in the
# background, stopped when this script ends) and portcullis on the shipped
# proxy.toml at http://localhost:8080. Sign in as demo / portcullis-demo.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import fastapi, uvicorn' 2>/dev/null; then
    echo "==> installing the demo app's Python packages"
    python3 -m pip install -q -r deploy/app/requirements.txt
fi

echo "==> demo app on http://127.0.0.1:8000 (reachable only through portcullis in production)"
python3 -m uvicorn --app-dir deploy/app main:app --host 127.0.0.1 --port 8000 \
    --proxy-headers --forwarded-allow-ips 127.0.0.1 --log-level warning &
app_pid=$!
trap 'kill "$app_pid" 2>/dev/null || true' EXIT

echo "==> portcullis on http://localhost:8080 (admin on 127.0.0.1:9090)"
cargo run --quiet -- serve --config proxy.toml
