#!/usr/bin/env bash
# Create or refresh a project-local Python virtualenv with exactly pinned requirements.
#
#   tests/tools/venv.sh DIR REQUIREMENTS_FILE
#
# Idempotent: a stamp file in DIR records the SHA-256 of the requirements file and the
# interpreter version; packages are (re)installed only when either changes. The venv is
# rebuilt from scratch when its interpreter is missing or not Python 3.11.
# PYTHON may name the interpreter to use (default: python3.11, then python3).
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 DIR REQUIREMENTS_FILE" >&2
    exit 2
fi
dir=$1
req=$2
if [ ! -f "$req" ]; then
    echo "venv.sh: requirements file not found: $req" >&2
    exit 2
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then
            python=$candidate
            break
        fi
    done
fi
if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
    echo "venv.sh: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi

want="$(sha256sum "$req" | cut -d' ' -f1) $("$python" -c 'import platform; print(platform.python_version())')"
stamp="$dir/.requirements.stamp"

if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
    rm -rf "$dir"
    "$python" -m venv "$dir"
fi

echo "venv.sh: installing $(basename "$req") into $dir" >&2
rm -f "$stamp"
"$dir/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
echo "$want" >"$stamp"
