#!/usr/bin/env bash
# Run the unit and end-to-end tests under another CPython (every version setup.cfg claims is tested).
#
#   scripts/test-python.sh 3.12 [pytest args...]
#
# The interpreter is the newest 3.12.x that pyenv knows, else `python3.12` on PATH. It gets its own
# virtualenv, .venv-3.12, with the package and its dev extra installed.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: scripts/test-python.sh X.Y [pytest args...]}
shift

# A candidate counts only if it runs and is that version (pyenv shims exist for versions not selected).
works() { [ -n "$1" ] && [ -x "$1" ] && "$1" -c "import sys; sys.exit(sys.version.startswith('$version.') is False)" 2>/dev/null; }
python=""
if command -v pyenv >/dev/null 2>&1; then
    candidate=$(ls -d "$(pyenv root)"/versions/"$version".*/bin/python 2>/dev/null | sort -V | tail -n 1 || true)
    works "$candidate" && python=$candidate
fi
if [ -z "$python" ]; then
    candidate=$(command -v "python$version" || true)
    works "$candidate" && python=$candidate
fi
if [ -z "$python" ]; then
    echo "test-python: no CPython $version found (neither in pyenv nor python$version on PATH)." >&2
    echo "test-python: install it (e.g. 'pyenv install $version'), or leave it out: make test EXTRA_PYTHONS=" >&2
    exit 1
fi

venv=".venv-$version"
stamp="$venv/.installed"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e '.[dev]'
    touch "$stamp"
fi
echo "test-python: $("$venv/bin/python" --version) from $python"
exec "$venv/bin/python" -m pytest tests/unit tests/e2e -q "$@"
