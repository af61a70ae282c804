#!/usr/bin/env bash
# The README's first command: the sandbox demo on embedded defaults (five channel
# emulators on loopback, a SQLite ledger in a temp dir, buyers, sync cycles, a verdict).
# Sets up .venv itself, so it works on a fresh machine with only Python 3.11.
# Arguments go to 'channelsync demo' (e.g. --duration 60).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ensure_venv
exec "$VENV_DIR/bin/channelsync" demo "$@"
