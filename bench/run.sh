#!/usr/bin/env bash
# Entry point of `make bench` / `make soak`: install what the benchmark needs on a
# fresh Debian machine (idempotent, cached), then run the Python driver.
#   bench/run.sh            full benchmark  -> bench/results/<timestamp>/report.md
#   bench/run.sh --soak     soak test       -> bench/results/soak-<timestamp>/soak.md
#   bench/run.sh --icount   instructions per request under callgrind (bench/icount.py)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v pgrep >/dev/null 2>&1 || missing+=(procps)
python3 -c "import ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
command -v npm >/dev/null 2>&1 || missing+=(npm)   # for the Portkey peer
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench: apt-get install ${missing[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

if [ ! -x .venv/bin/python ]; then
  echo "bench: creating the project venv (.venv)"
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/crossroads ] || ! .venv/bin/python -c "import aiohttp, orjson, uvicorn, uvloop, httptools" 2>/dev/null; then
  echo "bench: pip install -e . (project and its dependencies)"
  .venv/bin/pip install -q --disable-pip-version-check -e . \
    || echo "bench: warning: installing the project failed; its scenarios will report why"
fi
if ! .venv/bin/python -c "import matplotlib" 2>/dev/null; then
  echo "bench: pip install matplotlib"
  .venv/bin/pip install -q --disable-pip-version-check 'matplotlib>=3.8'
fi
# The load generator and floor need these even if the project install failed.
.venv/bin/python -c "import aiohttp, orjson, uvicorn, uvloop, httptools" 2>/dev/null \
  || .venv/bin/pip install -q --disable-pip-version-check aiohttp orjson uvicorn uvloop httptools

if [ "${1:-}" = "--icount" ]; then
  shift
  if ! command -v valgrind >/dev/null 2>&1; then
    echo "bench: apt-get install valgrind"
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends valgrind >/dev/null
  fi
  exec .venv/bin/python bench/icount.py "$@"
fi
if [ "${1:-}" = "--soak" ]; then
  shift
  exec .venv/bin/python bench/soak.py "$@"
fi
exec .venv/bin/python bench/driver.py "$@"
