#!/usr/bin/env bash
# Installs and starts what the tests and the demo need, when it is missing; does nothing
# where it is already there. Called by the Makefile (`make test`, `make demo`) and .ci/run.
#
#   scripts/services.sh packages   Debian's redis-server, redis-sentinel, redis-tools,
#                                  postgresql, chromium, faketime and iptables (as root, via apt-get)
#   scripts/services.sh env        packages, then a PostgreSQL on loopback for the example
#                                  tests; prints `export VAR=...` lines for the Makefile to eval
#
# Installs need root (apt-get); without root, whatever is missing is reported and the tests
# that need it skip (or fail under CI=true). Only loopback addresses are ever used.
set -euo pipefail

say() { echo "services: $*" >&2; }

need_packages() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
    command -v chromium >/dev/null || missing+=(chromium)
    # The fault suite: libfaketime (clock skew) and iptables (partitions in a namespace).
    command -v faketime >/dev/null || missing+=(faketime)
    command -v iptables >/dev/null || missing+=(iptables)
    printf '%s\n' "${missing[@]}"
}

packages() {
    local missing
    missing=$(need_packages)
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        say "missing (install them, or run as root to let this script do it):" $missing
        return 0
    fi
    say "installing with apt-get:" $missing
    apt-get update -qq >&2
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
    # Debian's postinst scripts may start a system redis-server on 6379; the tests start their
    # own servers on free ports and never use it, so it is left alone.
}

# A private PostgreSQL cluster for the sign-up example's tests: trust auth, loopback only,
# database `test`. Reused when it is already running; SIGNUP_TEST_POSTGRES_URL wins.
postgres_url() {
    if [ -n "${SIGNUP_TEST_POSTGRES_URL:-}" ]; then
        echo "$SIGNUP_TEST_POSTGRES_URL"
        return 0
    fi
    local bin
    bin=$(compgen -G "/usr/lib/postgresql/*/bin" | sort -V | tail -n 1 || true)
    if [ -z "$bin" ]; then
        say "no PostgreSQL server installed; its tests will skip (fail under CI=true)"
        return 0
    fi
    local as=()
    if [ "$(id -u)" = 0 ]; then
        as=(runuser -u postgres --)  # initdb and postgres refuse to run as root
    fi
    local dir="/tmp/pyasynq-postgres-$(id -u)"
    local port_file="$dir/pyasynq.port"
    if [ -f "$port_file" ] && "$bin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$port_file")"; then
        echo "postgresql://postgres@127.0.0.1:$(cat "$port_file")/test"
        return 0
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        [ "$(id -u)" = 0 ] && chown postgres: "$dir"
        if ! "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
            >"$dir/initdb.log" 2>&1; then
            say "initdb failed; its output:"
            tail -n 20 "$dir/initdb.log" >&2
            return 0
        fi
    fi
    # 5432 when free (the tests' default), else the next free port.
    local port=5432
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        port=$((port + 1))
    done
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $dir" start >&2 || {
        say "PostgreSQL did not start; its log:"
        tail -n 20 "$dir/server.log" >&2 || true
        return 0
    }
    echo "$port" >"$port_file"
    "${as[@]}" "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "CREATE DATABASE test" >/dev/null 2>&1 || true
    say "PostgreSQL for the tests on 127.0.0.1:$port (data in $dir)"
    echo "postgresql://postgres@127.0.0.1:$port/test"
}

case "${1:-}" in
packages)
    packages
    ;;
env)
    packages
    url=$(postgres_url)
    if [ -n "$url" ]; then
        echo "export SIGNUP_TEST_POSTGRES_URL='$url' PYASYNQ_TEST_POSTGRES_URL='$url'"
    fi
    ;;
*)
    echo "usage: $0 packages|env" >&2
    exit 2
    ;;
esac
