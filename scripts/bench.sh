#!/usr/bin/env bash
# Benchmark: portcullis against nginx as a plain reverse proxy, in one run,
# in front of the same upstream (an nginx server answering a small static
# body), with wrk on loopback. Also counts PostgreSQL queries per proxied
# request at steady state with session.store = "postgres".
#
#   scripts/bench.sh [seconds per run, default 10] [connections, default 64]
#
# Needs wrk and nginx (installed with apt-get when missing), a release build
# of portcullis (built here), and PostgreSQL on 127.0.0.1:5432 for the query
# count (PORTCULLIS_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNECTIONS=${2:-64}
THREADS=2
PG_BASE=${PORTCULLIS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
PG_ADMIN=${PG_BASE%/*}/postgres
PG_DB=portcullis_bench

command -v wrk >/dev/null && command -v nginx >/dev/null || {
    echo "==> installing wrk and nginx"
    apt-get install -y -q wrk nginx-light </dev/null >/dev/null
}

echo "==> building portcullis (release)"
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/portcullis

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
    psql -X -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Ports: upstream 18000, nginx proxy 18001, portcullis memory 18002,
# portcullis postgres 18003, portcullis sqlite 18004 (admin listeners
# 19002, 19003, 19004).
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    upstream app { server 127.0.0.1:18000; keepalive 64; }
    server {
        listen 127.0.0.1:18000;
        location / { default_type text/plain; return 200 "hello from the app\n"; }
    }
    server {
        listen 127.0.0.1:18001;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
EOF
nginx -c "$WORK/nginx.conf" -p "$WORK"

# A cost-12 bcrypt user, as in production.
HASH=$(printf 'bench-password\n' | $BIN hash-password)
cat >"$WORK/users.toml" <<EOF
[[user]]
id = "1"
username = "bench"
email = "bench@example.com"
password_hash = "$HASH"
roles = ["patient"]
EOF

psql -X -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null

config() { # name port admin_port extra
    cat >"$WORK/$1.toml" <<EOF
[server]
listen = "127.0.0.1:$2"
public_url = "http://127.0.0.1:$2"
[admin]
listen = "127.0.0.1:$3"
[upstream]
url = "http://127.0.0.1:18000"
[credentials.file]
path = "$WORK/users.toml"
[[route]]
path = "/public/**"
access = "public"
[log]
format = "json"
access_log = false
$4
EOF
}
config memory 18002 19002 "$(printf '[session]\nstore = "memory"\n')"
config postgres 18003 19003 "$(printf '[session]\nstore = "postgres"\n[postgres]\nurl = "%s"\n' "${PG_BASE%/*}/$PG_DB")"
config sqlite 18004 19004 "$(printf '[sqlite]\npath = "%s"\n' "$WORK/portcullis.db")"

for name in memory postgres sqlite; do
    RUST_LOG=warn $BIN serve --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
done
for port in 19002 19003 19004; do
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
        sleep 0.1
    done
done

login() { # port -> "Cookie: name=value"
    local jar="$WORK/jar-$1" token
    token=$(curl -s -c "$jar" "http://127.0.0.1:$1/auth/login" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p')
    curl -s -b "$jar" -c "$jar" -o /dev/null "http://127.0.0.1:$1/auth/login" \
        --data-urlencode username=bench --data-urlencode password=bench-password \
        --data-urlencode "csrf_token=$token" --data-urlencode next=/
    printf 'Cookie: portcullis=%s' "$(awk '$6 == "portcullis" {print $7}' "$jar")"
}
COOKIE_MEMORY=$(login 18002)
COOKIE_PG=$(login 18003)
COOKIE_SQLITE=$(login 18004)

run() { # label url [header]
    local out rps p50 p99
    if [ -n "${3:-}" ]; then
        out=$(wrk -t$THREADS -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$3" "$2")
    else
        out=$(wrk -t$THREADS -c"$CONNECTIONS" -d"${DURATION}s" --latency "$2")
    fi
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    if grep -q "Non-2xx" <<<"$out"; then
        echo "!! $1: non-2xx answers:"; echo "$out"; exit 1
    fi
    printf '%-44s %12s %10s %10s\n' "$1" "$rps" "$p50" "$p99"
}

echo
echo "wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION}s per line, on $(nproc) cores"
printf '%-44s %12s %10s %10s\n' "target" "requests/s" "p50" "p99"
run "upstream directly (nginx static)" "http://127.0.0.1:18000/public/x"
run "nginx proxy_pass" "http://127.0.0.1:18001/public/x"
run "portcullis, public route" "http://127.0.0.1:18002/public/x"
run "portcullis, signed-in (memory sessions)" "http://127.0.0.1:18002/app" "$COOKIE_MEMORY"
run "portcullis, signed-in (sqlite sessions)" "http://127.0.0.1:18004/app" "$COOKIE_SQLITE"

stat() {
    psql -X -At "$PG_ADMIN" -c "SELECT pg_stat_clear_snapshot(); SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$PG_DB'" | tail -n1
}
sleep 6 # let the write-behind settle
before=$(stat)
out=$(wrk -t$THREADS -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$COOKIE_PG" "http://127.0.0.1:18003/app")
sleep 6 # the last batch of last-seen times is written
after=$(stat)
requests=$(awk '/requests in/ {print $1}' <<<"$out")
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
printf '%-44s %12s %10s %10s\n' "portcullis, signed-in (postgres sessions)" "$rps" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")"
echo
echo "PostgreSQL transactions during that run: $((after - before)) for $requests proxied requests"
awk -v q=$((after - before)) -v r="$requests" 'BEGIN { printf "= %.5f database queries per proxied request (steady state)\n", q / r }'
