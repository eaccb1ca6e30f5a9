#!/usr/bin/env bash
# Command two: the test suite (ruff, then pytest). Desktop tests start their own Xvfb, window manager,
# tray host and accessibility bus; real-model runs are marked slow and run with `-m slow`.
#
#   bash packaging/test.sh            # what CI runs
#   bash packaging/test.sh -m slow    # the real-model and real-data runs
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1
.venv/bin/python -m ruff check assistant tests packaging
if [ $# -eq 0 ]; then set -- -m "not slow"; fi
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
