# Sourced by scripts/demo.sh and scripts/test.sh (from the repo root): makes sure .venv exists and holds the
# project with its test extras, then sets VENV_PY. Needs only Python 3.11 (and network access the first time).
# shellcheck shell=bash

VENV_DIR="${VENV_DIR:-.venv}"
VENV_PY="$PWD/$VENV_DIR/bin/python"
# Written after a successful install; a newer pyproject.toml (new dependencies) triggers a reinstall.
SETUP_STAMP="$VENV_DIR/.mitm-datakit-installed"

_setup_log() { echo "setup: $*" >&2; }

_setup_pick_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    _setup_log "no python3.11 or python3 on PATH; install Python 3.11 first"
    return 1
}

_setup_create_venv() {
    local py
    py="$(_setup_pick_python)" || return 1
    # mitmproxy 11.0.x is the last line that runs on 3.11, and 11.1+ needs 3.12: pyproject.toml pins 3.11.
    if ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        _setup_log "$py is Python $("$py" -c 'import platform; print(platform.python_version())'); mitm-datakit needs 3.11"
        return 1
    fi
    # Debian ships venv/ensurepip separately (pythonX.Y-venv); install it when we are root on a Debian-like box.
    if ! "$py" -c 'import ensurepip' >/dev/null 2>&1; then
        local pkg
        pkg="python$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            _setup_log "installing $pkg (needed for python -m venv)"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
        else
            _setup_log "$py cannot create a venv (no ensurepip); install the $pkg package"
            return 1
        fi
    fi
    _setup_log "creating $VENV_DIR with $py"
    "$py" -m venv "$VENV_DIR"
}

if [ ! -x "$VENV_PY" ]; then
    _setup_create_venv
fi

if [ ! -f "$SETUP_STAMP" ] || [ pyproject.toml -nt "$SETUP_STAMP" ]; then
    _setup_log "installing mitm-datakit and its test dependencies into $VENV_DIR"
    "$VENV_PY" -m pip install --quiet --disable-pip-version-check -e '.[test]'
    touch "$SETUP_STAMP"
fi
