#!/usr/bin/env bash
# Runs the whole test suite: bash scripts/test.sh [pytest arguments...]
#
# Does all of its own set-up, so it works on a fresh Debian machine with only Python:
# - creates .venv and installs the project with its dev extras (skipped when current);
# - gives the tests a PostgreSQL server: $CHANNELSYNC_TEST_PG_URL if set, otherwise a
#   throw-away private cluster in a temp dir, on a free loopback port, removed on exit.
#   The server binaries are installed with apt-get when missing and we are root.
#   CHANNELSYNC_TEST_NO_PG=1 knowingly runs without PostgreSQL (PG tests skip), but
#   never under CI, where a skipped PG test would hide a broken backend.
# Exits with pytest's exit status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh

# shellcheck source=scripts/_pg.sh
source scripts/_pg.sh

# Remove the cluster however we leave: tests failing, set -e, Ctrl-C or a kill.
# Signals become an exit so the EXIT trap runs once, with the right status.
on_exit() {
    local rc=$?
    stop_private_pg
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

ensure_venv

if [[ -n "${CHANNELSYNC_TEST_PG_URL:-}" ]]; then
    echo "channelsync: using the PostgreSQL server from CHANNELSYNC_TEST_PG_URL" >&2
elif [[ "${CHANNELSYNC_TEST_NO_PG:-}" == 1 ]]; then
    if is_ci; then
        die "CHANNELSYNC_TEST_NO_PG=1 is not allowed under CI: PostgreSQL tests must run"
    fi
    echo "channelsync: CHANNELSYNC_TEST_NO_PG=1: PostgreSQL tests will be skipped" >&2
else
    find_pg_bin || { install_pg && find_pg_bin; } \
        || die "PostgreSQL was installed but initdb/pg_ctl were not found"
    start_private_pg
fi

# Not exec: the EXIT trap must outlive pytest to remove the cluster.
status=0
"$VENV_PY" -m pytest "$@" || status=$?
exit "$status"
