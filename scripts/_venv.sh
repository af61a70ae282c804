# shellcheck shell=bash
# Shared by scripts/test.sh and scripts/lint.sh (sourced, not run): makes sure
# .venv exists and holds the project with its dev extras, so that both scripts
# work on a fresh machine that has nothing but Python 3.11.

# The interpreter that creates the venv; override with PYTHON=/path/to/python3.11.
: "${PYTHON:=python3}"
VENV_DIR=".venv"
VENV_PY="$VENV_DIR/bin/python"

die() {
    echo "error: $*" >&2
    exit 1
}

# True when running under CI. GitHub and most runners set CI=true; treat the usual
# "off" spellings as not CI so a developer can say CI=0.
is_ci() {
    case "${CI:-}" in
        "" | 0 | false | False | FALSE | no) return 1 ;;
        *) return 0 ;;
    esac
}

ensure_venv() {
    # A venv whose interpreter no longer runs (Python upgraded or moved) is rebuilt.
    if [[ -d "$VENV_DIR" ]] && ! "$VENV_PY" -c "" 2>/dev/null; then
        echo "channelsync: $VENV_DIR is broken; recreating it" >&2
        rm -rf "$VENV_DIR"
    fi
    if [[ ! -x "$VENV_PY" ]]; then
        command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11+"
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || die "$PYTHON is older than 3.11"
        # Debian's own python3 ships venv's pip bootstrap in a separate package.
        if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
            if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
                echo "channelsync: installing python3-venv (ensurepip is missing)" >&2
                apt-get update -q >/dev/null
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
            else
                die "$PYTHON cannot create a venv (no ensurepip): install python3-venv"
            fi
        fi
        echo "channelsync: creating $VENV_DIR" >&2
        "$PYTHON" -m venv "$VENV_DIR"
    fi
    # pip install -e costs several seconds even when nothing changed, so it runs only
    # when pyproject.toml (dependencies, entry points) differs from the last install.
    local stamp="$VENV_DIR/.channelsync-installed" want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
        echo "channelsync: installing the project and its dev tools into $VENV_DIR" >&2
        # The log is shown only on failure: pip's warnings are noise in a passing run.
        local log="$VENV_DIR/.pip-install.log"
        if ! "$VENV_PY" -m pip install -q -e '.[dev]' >"$log" 2>&1; then
            cat "$log" >&2
            die "pip install -e '.[dev]' failed"
        fi
        echo "$want" >"$stamp"
    fi
}
