#!/usr/bin/env bash
# Checks config/channelsync.service with systemd-analyze verify: bash scripts/verify-unit.sh
#
# verify refuses a unit whose ExecStart binary does not exist, and /usr/local/bin/channelsync
# exists only on an installed server. So a copy of the unit, in a temp dir, gets one change:
# that path becomes this checkout's .venv/bin/channelsync. Every other line is checked as
# written, and line numbers in the output are the real file's.
# Fails when verify fails or says anything about our unit; lines about other units (a
# container's missing targets, say) are shown but ignored. Needs systemd-analyze
# (Debian: apt-get install systemd) and /bin/kill for ExecReload (procps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh

UNIT="config/channelsync.service"
INSTALLED_BIN="/usr/local/bin/channelsync"   # ExecStart's path, as docs/service.md installs it

command -v systemd-analyze >/dev/null \
    || die "systemd-analyze not found; install systemd (Debian: apt-get install systemd)"
[[ -x "$VENV_DIR/bin/channelsync" ]] || ensure_venv
bin="$PWD/$VENV_DIR/bin/channelsync"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/cs-unit.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# The copy keeps the file name: verify takes the unit's name from it.
copy="$tmp/channelsync.service"
sed "s#^ExecStart=$INSTALLED_BIN #ExecStart=$bin #" "$UNIT" >"$copy"
[[ "$(grep -c "^ExecStart=$bin " "$copy")" -eq 1 ]] \
    || die "$UNIT: expected exactly one 'ExecStart=$INSTALLED_BIN ...' line to check"

# Only our unit's own errors decide the exit status (systemd 250 and later).
args=()
version="$(systemd-analyze --version | awk 'NR == 1 { print $2 }')"
[[ "$version" =~ ^[0-9]+$ && "$version" -ge 250 ]] && args+=(--recursive-errors=no)

rc=0
output="$(systemd-analyze verify "${args[@]}" "$copy" 2>&1)" || rc=$?
output="${output//"$copy"/"$UNIT"}"
[[ -z "$output" ]] || printf '%s\n' "$output"
problems="$(grep -c 'channelsync\.service' <<<"$output" || true)"
if [[ $rc -ne 0 || $problems -ne 0 ]]; then
    die "systemd-analyze verify rejected $UNIT (exit $rc, $problems line(s) about it)"
fi
echo "$UNIT: systemd-analyze verify (systemd $version) found no problems"
