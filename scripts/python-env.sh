#!/usr/bin/env bash
# Usage: scripts/python-env.sh VENV REQUIREMENTS
# Creates the Python venv at VENV (python3 -m venv) and installs the pinned REQUIREMENTS into it.
# Idempotent: the sha256 of the requirements file is stored in VENV/.requirements.sha256 and pip
# runs again only when the file changed (or the venv is missing or broken). Quiet on success; on a
# failure it prints pip's output. PYTHON selects the interpreter that creates the venv (default python3).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 VENV REQUIREMENTS" >&2
    exit 2
fi
venv=$1
requirements=$2
python=${PYTHON:-python3}
stamp="$venv/.requirements.sha256"

[ -f "$requirements" ] || { echo "error: requirements file '$requirements' not found" >&2; exit 1; }
want=$(sha256sum "$requirements" | cut -d' ' -f1)

# A venv is usable when its interpreter runs (a venv whose base interpreter went away does not).
venv_works() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; }

if venv_works && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

if ! venv_works; then
    command -v "$python" >/dev/null || { echo "error: $python not found (install python3 and python3-venv)" >&2; exit 1; }
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" >"$log" 2>&1; then
        cat "$log" >&2
        rm -rf "$venv"
        echo "error: '$python -m venv $venv' failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
fi

rm -f "$stamp"
if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$requirements" >"$log" 2>&1; then
    cat "$log" >&2
    echo "error: installing $requirements into $venv failed" >&2
    exit 1
fi
echo "$want" >"$stamp"
