#!/usr/bin/env bash
# Static checks: ruff (style, imports, likely bugs) and mypy (types), both configured
# in pyproject.toml. Kept apart from scripts/test.sh so a lint error never hides
# test results and tests can be run while code is still untidy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ensure_venv

# Run both even if the first fails, so one run shows every problem; fail if either did.
status=0
echo "== ruff check ."
"$VENV_DIR/bin/ruff" check . || status=1
echo "== mypy"
"$VENV_DIR/bin/mypy" || status=1
exit "$status"
