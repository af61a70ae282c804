#!/usr/bin/env bash
# A long simulation: every channel type on its emulator, seeded buyers and faults, the
# checks afterwards, one line of figures. Arguments go to the simulation, e.g.
#   bash scripts/simulate.sh --minutes 10 --seed 7
#   bash scripts/simulate.sh --minutes 10 --seed 7 --replicas 3 --kills 20   (PostgreSQL)
# With --replicas and no --database, a throw-away PostgreSQL cluster is started (as for the
# tests) and removed afterwards. Exits 1 when a check failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
# shellcheck source=scripts/_pg.sh
source scripts/_pg.sh

args=("$@")
wants_pg=0
has_db=0
for arg in "$@"; do
    case "$arg" in
        --replicas) wants_pg=1 ;;
        --database) has_db=1 ;;
    esac
done

trap 'stop_private_pg' EXIT
ensure_venv
if [[ $wants_pg -eq 1 && $has_db -eq 0 ]]; then
    find_pg_bin || { install_pg && find_pg_bin; } \
        || die "PostgreSQL was installed but initdb/pg_ctl were not found"
    start_private_pg
    args+=(--database "$CHANNELSYNC_TEST_PG_URL")
fi
"$VENV_PY" -m channelsync.sandbox.simulation "${args[@]}"
