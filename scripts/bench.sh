#!/usr/bin/env bash
# Benchmark: portcullis against nginx as a plain reverse proxy, in one run on
# this machine, in front of the same upstream (an nginx of its own answering a
# small static body on /app and 1 MiB on /big/1m.bin). Targets, taken in turn
# in every round of every scenario so that drift hits them alike: nginx
# proxy_pass with 1 and with 2 workers (upstream keepalive), portcullis on
# SQLite sessions (the shipped default) and on PostgreSQL (a fresh database,
# dropped at exit). Scenarios:
#   1  signed-in GET (nginx: no auth), small body, keep-alive, 50 connections
#   2  the same with 1,000 connections
#   3  1 MiB responses, 10 connections
#   4  a storm of browser sign-ins at bcrypt cost 12 while a prober sends
#      signed-in GETs at a fixed rate (portcullis only): sign-ins per second
#      against the hash-bound limit, prober p99 idle and during the storm
#   5  memory: 100,000 sign-ins (the cheapest argon2id hash: they fill the
#      session store, their hashing is scenario 4's), then 10,000 keep-alive
#      connections that each made one signed-in request, left idle: the
#      proxy's VmRSS and VmHWM (nginx: RSS of master + workers, no sign-ins)
# Then the PostgreSQL transactions per proxied request at steady state and
# per sign-in, and a table of every figure against its target.
#
#   scripts/bench.sh [seconds per run, default 3]
#
# Environment: PROXY_CPUS and LOAD_CPUS (taskset lists; default the upper and
# the lower half of the cores: the proxies under test get the upper half, wrk,
# the Python clients and the upstream nginx the lower), BENCH_ROUNDS (2),
# BENCH_SCENARIOS (which to run, default "1 2 3 4 5"),
# BENCH_SIGNINS (100000), BENCH_IDLE_CONNS (10000), BENCH_S5_POSTGRES (0: the
# memory scenario on SQLite only), BENCH_PROBE_RATE (1000
# GETs/s), BENCH_PG_SIGNINS (500), PORTCULLIS_TEST_POSTGRES (default
# postgres://postgres@127.0.0.1:5432/test; the benchmark creates and drops
# its own database beside it).
#
# Needs wrk, nginx, curl and psql (wrk, nginx and curl installed with apt-get
# when missing), python3 (standard library only; helpers in scripts/bench/)
# and builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-3}
ROUNDS=${BENCH_ROUNDS:-2}
SIGNINS=${BENCH_SIGNINS:-100000}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
PROBE_RATE=${BENCH_PROBE_RATE:-1000}
PG_SIGNINS=${BENCH_PG_SIGNINS:-500}
SCENARIOS=" ${BENCH_SCENARIOS:-1 2 3 4 5} "
PG_BASE=${PORTCULLIS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
PG_ADMIN=${PG_BASE%/*}/postgres
PG_DB=portcullis_bench_$$
CONNS_S1=50 CONNS_S2=1000 CONNS_S3=10 PROBE_CONNS=10
SESSION_COOKIE=portcullis # the shipped __Host-portcullis, prefix dropped over http
PASSWORD=bench-password
# argon2id of $PASSWORD at the lowest cost argon2 allows (8 KiB, one pass;
# hash-password always gives bcrypt cost 12), for the sign-ins of scenario 5
# and of the PostgreSQL count: they measure what a sign-in stores, and
# 100,000 of them at bcrypt cost 4 would take three minutes of hashing.
# shellcheck disable=SC2016 # a literal hash
HASH_FAST='$argon2id$v=19$m=8,t=1,p=1$TsYSpjJXRU6yEf3k9Xe4oA$uxhH+n2MMrS+qJxIlM73Az1q+w/ro1SlVErGY+JY650'
TARGETS=(nginx1 nginx2 sqlite postgres)
HERE=scripts/bench
export PYTHONDONTWRITEBYTECODE=1 # keep the helpers' directory clean

die() { echo "!! $*" >&2; exit 1; }
for n in "$DURATION" "$ROUNDS" "$SIGNINS" "$IDLE_CONNS" "$PROBE_RATE" "$PG_SIGNINS"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n (usage: scripts/bench.sh [seconds per run])"
done
if [ "$DURATION" -lt 1 ] || [ "$ROUNDS" -lt 1 ] || [ "$PG_SIGNINS" -lt 1 ]; then
    die "seconds per run, BENCH_ROUNDS and BENCH_PG_SIGNINS must be at least 1"
fi

need=()
for tool in wrk nginx curl; do command -v $tool >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    apt-get install -y -q "${need[@]}" </dev/null >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" </dev/null >/dev/null; }
fi
command -v psql >/dev/null || die "psql is needed (apt-get install postgresql-client)"

echo "==> building portcullis (release)"
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/portcullis
BEGIN=$SECONDS

# Every client connection is a descriptor in the client and in the proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((IDLE_CONNS + 2000)) ] ||
    die "open files limited to $(ulimit -n): $((IDLE_CONNS + 2000)) are needed (BENCH_IDLE_CONNS)"

read -r auto_load auto_proxy < <(python3 $HERE/machine.py split)
LOAD_CPUS=${LOAD_CPUS:-$auto_load}
PROXY_CPUS=${PROXY_CPUS:-$auto_proxy}
PROXY_CORES=$(python3 $HERE/machine.py count "$PROXY_CPUS")
LOAD_CORES=$(python3 $HERE/machine.py count "$LOAD_CPUS")
MACHINE="$(nproc) cores, $(python3 $HERE/machine.py model)"
SPLIT="proxies under test on CPU $PROXY_CPUS ($PROXY_CORES), wrk + Python clients + upstream nginx on CPU $LOAD_CPUS ($LOAD_CORES)"
[ "$PROXY_CPUS" != "$LOAD_CPUS" ] || SPLIT="$SPLIT: one core, no split"
STORM_CONNS=$((2 * PROXY_CORES + 2))   # more than the hashing threads: always one waiting
SIGNIN_CONNS=$((4 * PROXY_CORES + 4))

WORK=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
RESULTS=$WORK/results.tsv
declare -A PID=() PORT=() ADMIN=() COOKIE=()
HELPER=""
cleanup() {
    set +e
    [ -n "$HELPER" ] && kill "$HELPER" 2>/dev/null
    for name in "${!PID[@]}"; do kill "${PID[$name]}" 2>/dev/null; done
    for name in "${!PID[@]}"; do wait "${PID[$name]}" 2>/dev/null; done
    psql -X -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 ||
        psql -X -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r 'PORT[upstream]' 'PORT[nginx1]' 'PORT[nginx2]' 'PORT[sqlite]' 'ADMIN[sqlite]' \
    'PORT[postgres]' 'ADMIN[postgres]' < <(python3 $HERE/machine.py ports 7)

# The upstream's files must be readable by nginx's unprivileged workers.
chmod 711 "$WORK"
mkdir -p "$WORK/www/big"
head -c 1048576 /dev/urandom >"$WORK/www/big/1m.bin"
chmod -R a+rX "$WORK/www"

nginx_conf() { # name workers connections servers...
    local name=$1 workers=$2 connections=$3
    shift 3
    mkdir -p "$WORK/$name"
    chmod 755 "$WORK/$name"
    cat >"$WORK/$name/nginx.conf" <<EOF
worker_processes $workers;
worker_rlimit_nofile 65536;
pid $WORK/$name/nginx.pid;
error_log $WORK/$name/error.log warn;
events { worker_connections $connections; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    $*
}
EOF
}
nginx_conf upstream "$LOAD_CORES" 16384 "
    server {
        listen 127.0.0.1:${PORT[upstream]} backlog=4096;
        root $WORK/www;
        location /big/ { default_type application/octet-stream; }
        location / { default_type text/plain; return 200 \"hello from the app\n\"; }
    }"
# The reference proxies: upstream keepalive, and 1 MiB bodies streamed
# through 1 MiB of buffers rather than spilled to a temporary file (the
# fastest of the settings tried on the 1 MiB scenario).
for workers in 1 2; do
    nginx_conf nginx$workers $workers $((IDLE_CONNS + 4096)) "
    upstream app {
        server 127.0.0.1:${PORT[upstream]};
        keepalive 1024;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:${PORT[nginx$workers]} backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_buffers 16 64k;
            proxy_busy_buffers_size 128k;
            proxy_max_temp_file_size 0;
        }
    }"
done

# One user per sign-in client: portcullis counts an account's sign-ins in
# flight against login.max_failures, so more than 5 at once for one account
# are refused. "bench" (cost 12) gives the cookies of scenarios 1-4,
# "bench-N" (cost 12) sign in in the storm, "fast-N" (argon2id, lowest cost) in scenario 5
# and in the PostgreSQL count; each group shares one hash.
user() { # id name hash
    printf '[[user]]\nid = "%s"\nusername = "%s"\nemail = "%s@example.com"\npassword_hash = "%s"\nroles = ["patient"]\n\n' \
        "$1" "$2" "$2" "$3"
}
HASH_COST12=$(printf '%s\n' "$PASSWORD" | "$BIN" hash-password)
{
    user 1 bench "$HASH_COST12"
    for i in $(seq "$STORM_CONNS"); do user "storm-$i" "bench-$i" "$HASH_COST12"; done
    for i in $(seq "$SIGNIN_CONNS"); do user "fast-$i" "fast-$i" "$HASH_FAST"; done
} >"$WORK/users.toml"

psql -X -q "$PG_ADMIN" -c "CREATE DATABASE $PG_DB" >/dev/null

config() { # name extra
    cat >"$WORK/$1.toml" <<EOF
[server]
listen = "127.0.0.1:${PORT[$1]}"
public_url = "http://127.0.0.1:${PORT[$1]}"
max_connections = $((IDLE_CONNS + 10000))
[admin]
listen = "127.0.0.1:${ADMIN[$1]}"
[upstream]
url = "http://127.0.0.1:${PORT[upstream]}"
[credentials.file]
path = "$WORK/users.toml"
[login]
ip_rate = "1000000/s"
[log]
format = "json"
access_log = false
$2
EOF
}
config sqlite "$(printf '[sqlite]\npath = "%s"\n' "$WORK/portcullis.db")"
config postgres "$(printf '[session]\nstore = "postgres"\n[postgres]\nurl = "%s"\n' "${PG_BASE%/*}/$PG_DB")"

is_portcullis() { [ "$1" = sqlite ] || [ "$1" = postgres ]; }

start() { # target: start it pinned and wait until it answers (30 s at most)
    local url
    case $1 in
    upstream) taskset -c "$LOAD_CPUS" nginx -e "$WORK/$1/error.log" -p "$WORK/$1" \
        -c "$WORK/$1/nginx.conf" -g 'daemon off;' & ;;
    nginx1 | nginx2) taskset -c "$PROXY_CPUS" nginx -e "$WORK/$1/error.log" -p "$WORK/$1" \
        -c "$WORK/$1/nginx.conf" -g 'daemon off;' & ;;
    *) RUST_LOG=warn taskset -c "$PROXY_CPUS" "$BIN" serve --config "$WORK/$1.toml" \
        >>"$WORK/$1.log" 2>&1 & ;;
    esac
    PID[$1]=$!
    if is_portcullis "$1"; then url=http://127.0.0.1:${ADMIN[$1]}/readyz; else url=http://127.0.0.1:${PORT[$1]}/; fi
    local deadline=$((SECONDS + 30))
    until curl -sf -o /dev/null "$url"; do
        kill -0 "${PID[$1]}" 2>/dev/null || { tail -n 20 "$WORK/$1"*.log "$WORK/$1/error.log" 2>/dev/null; die "$1 exited at start"; }
        [ $SECONDS -lt $deadline ] || die "$1 not ready after 30 s"
        sleep 0.1
    done
}
stop() { # target
    kill "${PID[$1]}" 2>/dev/null || true
    wait "${PID[$1]}" 2>/dev/null || true
    unset "PID[$1]"
}

# Counters of the PostgreSQL portcullis' database. PostgreSQL 15 and later
# flush an idle backend's counters up to 10 s after its last statement: a
# count is read only 12 s after the proxy was last busy (the other targets'
# runs usually fill that time).
PG_BUSY=0
PG_PENDING=()
pg_busy() { PG_BUSY=$(date +%s); }
pg_xacts() {
    local wait=$((PG_BUSY + 12 - $(date +%s)))
    if [ $wait -gt 0 ]; then
        echo "    (waiting ${wait} s for PostgreSQL's statistics)" >&2
        sleep $wait
    fi
    psql -X -At "$PG_ADMIN" -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$PG_DB'"
}
pg_begin() { # what counted, per what: the count before it
    pg_settle
    PG_PENDING=("$1" "$2" "$(pg_xacts)")
}
pg_end() { # how many of them
    PG_PENDING+=("$1")
    pg_busy
}
pg_settle() { # finish a pending count once it can be read
    [ ${#PG_PENDING[@]} -eq 4 ] || return 0
    local after
    after=$(pg_xacts)
    echo "${PG_PENDING[0]}|${PG_PENDING[1]}|$((after - PG_PENDING[2]))|${PG_PENDING[3]}" >>"$WORK/pg-counts"
    PG_PENDING=()
}

non_2xx() { # portcullis target: answers other than 2xx so far, from its metrics
    local text
    text=$(curl -sf "http://127.0.0.1:${ADMIN[$1]}/metrics") || die "$1: cannot read /metrics"
    grep -q '^portcullis_requests_total{' <<<"$text" || die "$1: no portcullis_requests_total in /metrics"
    awk '/^portcullis_requests_total\{/ && !/class="2xx"/ { n += $2 } END { printf "%d\n", n }' <<<"$text"
}

expect_200() { # target path: one request as the benchmark will send it
    local args=(-s -o /dev/null -w '%{http_code}')
    is_portcullis "$1" && args+=(-H "Cookie: ${COOKIE[$1]}")
    local code
    code=$(curl "${args[@]}" "http://127.0.0.1:${PORT[$1]}$2")
    [ "$code" = 200 ] || die "$1 answered $code to GET $2, not 200: not the benchmark it claims to be"
}

sign_in() { # portcullis target -> "name=value" of a session cookie of user bench
    local jar="$WORK/jar-$1" port=${PORT[$1]} token
    token=$(curl -sf -c "$jar" "http://127.0.0.1:$port/auth/login" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p')
    [ -n "$token" ] || die "$1: no csrf_token on the sign-in page"
    curl -s -b "$jar" -c "$jar" -o /dev/null "http://127.0.0.1:$port/auth/login" \
        --data-urlencode username=bench --data-urlencode "password=$PASSWORD" \
        --data-urlencode "csrf_token=$token" --data-urlencode next=/
    local value
    value=$(awk -v name="$SESSION_COOKIE" '$6 == name { print $7 }' "$jar")
    [ -n "$value" ] || die "$1: the sign-in set no $SESSION_COOKIE cookie"
    printf '%s=%s' "$SESSION_COOKIE" "$value"
}

run_wrk() { # scenario target connections path round
    local target=$2 out="$WORK/$1-$2-$5.wrk" before=0 after=0
    local args=(-t"$((LOAD_CORES < $3 ? LOAD_CORES : $3))" -c"$3" -d"${DURATION}s" --timeout 10s --latency)
    if is_portcullis "$target"; then
        args+=(-H "Cookie: ${COOKIE[$target]}")
        before=$(non_2xx "$target")
    fi
    taskset -c "$LOAD_CPUS" wrk "${args[@]}" "http://127.0.0.1:${PORT[$target]}$4" >"$out"
    is_portcullis "$target" && after=$(non_2xx "$target")
    python3 $HERE/results.py wrk "$RESULTS" "$1" "$target" "$out" $((after - before))
}

scenario_wrk() { # scenario connections path title
    echo "==> scenario ${1#s}: $4"
    for target in "${TARGETS[@]}"; do expect_200 "$target" "$3"; done
    for round in $(seq "$ROUNDS"); do
        echo "  round $round/$ROUNDS"
        for target in "${TARGETS[@]}"; do
            if [ "$target" != postgres ]; then
                run_wrk "$1" "$target" "$2" "$3" "$round"
            elif [ "$1" = s1 ] && [ "$round" = "$ROUNDS" ]; then
                pg_begin "transactions per proxied request (steady state, scenario 1)" "proxied requests"
                run_wrk "$1" "$target" "$2" "$3" "$round"
                pg_end "$(awk '/requests in/ { print $1 }' "$WORK/$1-$target-$round.wrk")"
            else
                pg_settle
                run_wrk "$1" "$target" "$2" "$3" "$round"
                pg_busy
            fi
        done
    done
}

storm() { # target round
    local out="$WORK/s4-$1-$2.txt" hash_ms
    # The hash-bound limit, measured on the proxies' cores just before.
    hash_ms=$(python3 $HERE/machine.py hash "$BIN" "$PROXY_CPUS")
    python3 $HERE/results.py meta "$RESULTS" hash_ms "$hash_ms"
    taskset -c "$LOAD_CPUS" python3 $HERE/storm.py --port "${PORT[$1]}" --path /app \
        --cookie "${COOKIE[$1]}" --rate "$PROBE_RATE" --conns $PROBE_CONNS \
        --duration "$DURATION" --storm-conns $STORM_CONNS --user 'bench-{i}' \
        --password "$PASSWORD" --session-cookie $SESSION_COOKIE >"$out" ||
        die "scenario 4 on $1 failed"
    python3 $HERE/results.py add "$RESULTS" s4 "$1" <"$out"
    awk -v t="$1" -v h="$hash_ms" '{ v[$1] = $2 } END { printf "    %-9s %8.2f sign-ins/s (one hash %.1f ms)   probe p99 idle %7.2f ms, storm %7.2f ms\n", t, v["logins_per_s"], h, v["p99_idle"], v["p99_storm"] }' "$out"
}

rss_kib() { # pids...: sum of VmRSS
    local total=0 pid kib
    for pid in "$@"; do
        kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
        total=$((total + kib))
    done
    echo "$total"
}

hold() { # target signins idle: scenario 5 on a freshly started target
    local target=$1 out="$WORK/s5-$1.txt" args=()
    is_portcullis "$target" && args=(--signins "$2" --conns "$SIGNIN_CONNS" --user 'fast-{i}' --password "$PASSWORD")
    [ "$target" = postgres ] && pg_settle
    stop "$target"
    start "$target"
    taskset -c "$LOAD_CPUS" python3 $HERE/hold.py --port "${PORT[$target]}" --path /app \
        --idle "$3" --session-cookie $SESSION_COOKIE "${args[@]}" >"$out" 2>"$out.err" &
    HELPER=$!
    local deadline=$((SECONDS + 120 + $2 / 50 + $3 / 50))
    until grep -qsx ready "$out"; do
        kill -0 "$HELPER" 2>/dev/null || { cat "$out.err" >&2; die "scenario 5 on $target failed"; }
        [ $SECONDS -lt $deadline ] || die "scenario 5 on $target: not done in time"
        sleep 0.2
    done
    # Idle means idle: a second without a request (portcullis frees an
    # HTTP/1 connection's buffers after 20 ms of it).
    sleep 1
    local rss hwm=""
    if is_portcullis "$target"; then
        rss=$(rss_kib "${PID[$target]}")
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/${PID[$target]}/status")
    else
        # shellcheck disable=SC2046 # one pid per word
        rss=$(rss_kib "${PID[$target]}" $(pgrep -P "${PID[$target]}"))
    fi
    kill "$HELPER"
    wait "$HELPER" 2>/dev/null || true
    HELPER=""
    [ "$target" = postgres ] && pg_busy
    {
        grep -v '^ready$' "$out"
        echo "rss_mib $(awk -v k="$rss" 'BEGIN { printf "%.2f", k / 1024 }')"
        [ -z "$hwm" ] || echo "hwm_mib $(awk -v k="$hwm" 'BEGIN { printf "%.2f", k / 1024 }')"
    } | tee "$out.figures" | python3 $HERE/results.py add "$RESULTS" s5 "$target"
    awk -v t="$target" '{ v[$1] = $2 } END { printf "    %-9s RSS %7.1f MiB", t, v["rss_mib"]; if ("hwm_mib" in v) printf ", VmHWM %7.1f MiB", v["hwm_mib"]; if ("signins_per_s" in v) printf "   (%d sign-ins at %.0f/s)", v["signins"], v["signins_per_s"]; printf "\n" }' "$out.figures"
}

echo "==> machine: $MACHINE"
echo "    split: $SPLIT"
python3 $HERE/results.py meta "$RESULTS" proxy_cores "$PROXY_CORES"
python3 $HERE/results.py meta "$RESULTS" s1_conns $CONNS_S1
python3 $HERE/results.py meta "$RESULTS" s2_conns $CONNS_S2
python3 $HERE/results.py meta "$RESULTS" s3_conns $CONNS_S3
python3 $HERE/results.py meta "$RESULTS" s4_rate "$PROBE_RATE"
python3 $HERE/results.py meta "$RESULTS" s5_signins "$SIGNINS"
python3 $HERE/results.py meta "$RESULTS" s5_idle "$IDLE_CONNS"

echo "==> starting the upstream, nginx (1 and 2 workers), portcullis (sqlite, postgres)"
for target in upstream "${TARGETS[@]}"; do start "$target"; done
COOKIE[sqlite]=$(sign_in sqlite)
COOKIE[postgres]=$(sign_in postgres)
pg_busy

echo "==> wrk: $LOAD_CORES thread(s), ${DURATION} s per run, $ROUNDS rounds, targets in turn"
wanted() { [[ $SCENARIOS == *" $1 "* ]]; }
wanted 1 && scenario_wrk s1 $CONNS_S1 /app "signed-in GET, small body, $CONNS_S1 connections"
wanted 2 && scenario_wrk s2 $CONNS_S2 /app "signed-in GET, small body, $CONNS_S2 connections"
wanted 3 && scenario_wrk s3 $CONNS_S3 /big/1m.bin "1 MiB responses, $CONNS_S3 connections (req/s = MiB/s)"

if wanted 4; then
    echo "==> scenario 4: sign-in storm at cost 12 ($STORM_CONNS clients), probe $PROBE_RATE GETs/s on $PROBE_CONNS connections, ${DURATION} s idle then ${DURATION} s in the storm"
    for round in $(seq "$ROUNDS"); do
        echo "  round $round/$ROUNDS"
        for target in postgres sqlite; do # sqlite last: its run lets PostgreSQL's counters settle
            [ "$target" = postgres ] && pg_settle
            storm "$target" "$round"
            [ "$target" = postgres ] && pg_busy
        done
    done
fi

echo "==> PostgreSQL: $PG_SIGNINS sign-ins (argon2id, lowest cost) on one connection"
pg_begin "transactions per sign-in" "sign-ins"
taskset -c "$LOAD_CPUS" python3 $HERE/hold.py --port "${PORT[postgres]}" --signins "$PG_SIGNINS" \
    --conns 1 --user fast-1 --password "$PASSWORD" --session-cookie $SESSION_COOKIE >/dev/null ||
    die "sign-ins on postgres failed"
pg_end "$PG_SIGNINS"

wanted 5 && echo "==> scenario 5: $SIGNINS sign-ins (argon2id, lowest cost), then $IDLE_CONNS idle keep-alive connections, each target freshly started"
# PostgreSQL's sign-ins are twice as slow (12 transactions each): its
# memory run is opt-in to keep the benchmark within ten minutes.
S5_TARGETS=(nginx1 nginx2 sqlite)
[ "${BENCH_S5_POSTGRES:-0}" = 1 ] && S5_TARGETS+=(postgres)
wanted 5 && for target in "${S5_TARGETS[@]}"; do hold "$target" "$SIGNINS" "$IDLE_CONNS"; done
pg_settle

echo
echo "machine: $MACHINE"
echo "split:   $SPLIT"
echo "runs:    ${DURATION} s per run, $ROUNDS rounds, figures are medians over rounds"
echo
python3 $HERE/results.py table "$RESULTS"
echo
while IFS='|' read -r what per count n; do
    echo "PostgreSQL transactions: $count for $n $per"
    awk -v q="$count" -v r="$n" -v what="$what" 'BEGIN { printf "= %.5f %s\n", q / r, what }'
done <"$WORK/pg-counts"
echo
echo "every round:"
python3 $HERE/results.py details "$RESULTS"
echo
echo "measured in $((SECONDS - BEGIN)) s (build excluded)"
