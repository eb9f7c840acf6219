#!/usr/bin/env bash
# python_venv.sh - creates or refreshes the virtual environment of the Python package's tests
# (~/.cache/ragcore/python-venv, or $RAGCORE_PYTHON_VENV) from python/requirements-test.txt,
# every version pinned. Reused while the requirements file is unchanged (a stamp holds its
# hash), so only the first run, or a changed pin, downloads from PyPI. Prints the venv path.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${RAGCORE_PYTHON_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ragcore/python-venv}
req=$here/python/requirements-test.txt
want=$(sha256sum "$req" | cut -c1-16)
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.ragcore-requirements" 2>/dev/null)" = "$want" ]; then
    echo "$venv"
    exit 0
fi
echo "python_venv.sh: installing the pinned test dependencies into $venv" >&2
# Created in place (a moved venv keeps its old path in its scripts); the stamp, written
# last, marks a complete install.
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
echo "$want" > "$venv/.ragcore-requirements"
echo "$venv"
