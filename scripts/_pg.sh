# shellcheck shell=bash
# A throw-away PostgreSQL cluster on loopback, for scripts/test.sh and scripts/simulate.sh
# (sourced, after scripts/_venv.sh). start_private_pg exports CHANNELSYNC_TEST_PG_URL;
# stop_private_pg removes the cluster. The server binaries are installed with apt-get when
# missing and we are root.

PG_TMP=""     # the private cluster's temp dir, when we started one
PG_BIN=""     # directory holding initdb / pg_ctl
PG_SUPERUSER="postgres"
PG_DBNAME="channelsync_test"

# Runs a server-side command (initdb, pg_ctl) as the cluster's owner. PostgreSQL refuses
# to run as root, so as root we use the postgres system user the Debian package creates.
as_pg_owner() {
    if [[ $EUID -ne 0 ]]; then
        "$@"
    elif command -v runuser >/dev/null; then
        runuser -u postgres -- "$@"
    else
        su -s /bin/bash postgres -c "$(printf '%q ' "$@")"
    fi
}

find_pg_bin() {
    local dir
    # An explicit choice (another version, a source build) wins and must be right.
    if [[ -n "${CHANNELSYNC_PG_BIN:-}" ]]; then
        [[ -x "$CHANNELSYNC_PG_BIN/initdb" && -x "$CHANNELSYNC_PG_BIN/pg_ctl" ]] \
            || die "CHANNELSYNC_PG_BIN=$CHANNELSYNC_PG_BIN has no initdb/pg_ctl"
        PG_BIN="$CHANNELSYNC_PG_BIN"
        return 0
    fi
    # Debian keeps the server tools out of PATH, one directory per major version;
    # take the newest installed.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            PG_BIN="$dir"
            return 0
        fi
    done
    # Other layouts (Homebrew, source builds) put them in PATH.
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        PG_BIN="$(dirname "$(command -v initdb)")"
        return 0
    fi
    return 1
}

install_pg() {
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "channelsync: installing PostgreSQL (apt-get install postgresql)" >&2
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
        return 0
    fi
    cat >&2 <<MSG
error: the tests need a PostgreSQL server and none was found.
  Either install the server binaries (Debian: sudo apt-get install postgresql; this
  script then runs a private throw-away cluster and leaves the system one alone),
  or point the tests at a server whose user may CREATE DATABASE:
      CHANNELSYNC_TEST_PG_URL=postgresql://USER@HOST:PORT/DB bash scripts/test.sh
  or knowingly skip the PostgreSQL tests:
      CHANNELSYNC_TEST_NO_PG=1 bash scripts/test.sh
MSG
    exit 1
}

stop_private_pg() {
    [[ -n "$PG_TMP" ]] || return 0
    if [[ -f "$PG_TMP/data/postmaster.pid" ]]; then
        # Immediate: the data is thrown away, so there is nothing to checkpoint.
        (cd "$PG_TMP" && as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w \
            stop >/dev/null 2>&1) || echo "warning: could not stop the test cluster" >&2
    fi
    rm -rf "$PG_TMP"
    PG_TMP=""
}

free_port() {
    "$VENV_PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

start_private_pg() {
    local started=0 attempt port t0=$SECONDS
    if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        die "running as root but there is no 'postgres' user to own the test cluster"
    fi
    # Short path: the unix socket path inside it must stay under ~107 bytes.
    PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/cs-pg.XXXXXX")"
    mkdir "$PG_TMP/run"
    [[ $EUID -ne 0 ]] || chown -R postgres: "$PG_TMP"
    # cd into the temp dir: the postgres user may not be allowed into our working dir.
    (cd "$PG_TMP" && as_pg_owner "$PG_BIN/initdb" -D "$PG_TMP/data" -U "$PG_SUPERUSER" \
        --auth=trust --encoding=UTF8 --no-locale --no-sync >"$PG_TMP/initdb.log" 2>&1) || {
        cat "$PG_TMP/initdb.log" >&2
        die "initdb failed"
    }
    # Only loopback TCP and a socket inside the temp dir: nothing else can reach it,
    # which is what makes trust authentication acceptable. Durability is off because
    # the cluster is thrown away; it makes the per-test CREATE DATABASE much faster.
    cat >>"$PG_TMP/data/postgresql.conf" <<CONF

# channelsync test cluster (scripts/test.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_TMP/run'
fsync = off
synchronous_commit = off
full_page_writes = off
max_parallel_workers_per_gather = 0
CONF
    # Another process may take the free port between our probe and the server's bind.
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        if (cd "$PG_TMP" && as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_TMP/data" \
            -l "$PG_TMP/server.log" -o "-p $port" -w -t 60 start >/dev/null); then
            started=1
            break
        fi
        echo "channelsync: test cluster did not start on port $port (try $attempt)" >&2
    done
    if [[ $started -ne 1 ]]; then
        cat "$PG_TMP/server.log" >&2 || true
        die "could not start the PostgreSQL test cluster"
    fi
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" "$PG_DBNAME"
    export CHANNELSYNC_TEST_PG_URL="postgresql://$PG_SUPERUSER@127.0.0.1:$port/$PG_DBNAME"
    echo "channelsync: PostgreSQL test cluster at $CHANNELSYNC_TEST_PG_URL" \
        "($("$PG_BIN/postgres" --version), ready in $((SECONDS - t0))s)" >&2
}
