#!/usr/bin/env bash
# Create .venv with Python 3.12 and install the pinned requirements (uv, bytecode compiled).
# Re-runs are cheap: nothing happens unless requirements.txt changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP=$VENV/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [[ -x $VENV/bin/python && -f $STAMP && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
    [[ -n $candidate ]] || continue
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
      command -v "$candidate" || echo "$candidate"
      return 0
    fi
  done
  return 1
}

if ! PY=$(find_python); then
  echo "bootstrap: Python 3.12 not found. Install it (Ubuntu 24.04: apt-get install python3.12 python3.12-venv)" >&2
  echo "           or point PYTHON=/path/to/python3.12 at one." >&2
  exit 1
fi
echo "bootstrap: creating $VENV with $PY ($("$PY" --version))"

# uv installs the ~170 pinned packages in seconds instead of minutes; it is bootstrapped with pip.
UV_HOME=.cache/uv-tool
if [[ ! -x $UV_HOME/bin/uv ]]; then
  "$PY" -m venv "$UV_HOME"
  "$UV_HOME/bin/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
fi
UV=$UV_HOME/bin/uv
[[ -x $VENV/bin/python ]] || "$UV" venv --quiet --python "$PY" "$VENV"
# Compiled bytecode matters: every Ansible module call re-imports boto3 otherwise (~50 % slower).
UV_COMPILE_BYTECODE=1 "$UV" pip install --quiet --python "$VENV/bin/python" -r requirements.txt
echo "$want" > "$STAMP"
echo "bootstrap: $("$VENV/bin/ansible" --version | head -1), $("$VENV/bin/prefect" version 2>/dev/null | head -1 | tr -s ' ')"
