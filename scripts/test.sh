#!/usr/bin/env bash
# The test suite: fast tests plus the Ray and browser tests; real-data runs (-m slow) are separate.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1
.venv/bin/python -m ruff check src tests benchmarks scripts
exec .venv/bin/python -m pytest -m "not slow" -p no:cacheprovider "$@"
