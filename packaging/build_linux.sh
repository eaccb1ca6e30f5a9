#!/usr/bin/env bash
# The Linux application: a one-folder PyInstaller bundle with its launcher, icons, AppStream metadata and
# an install script, packed as a tar.xz.
#
#   bash packaging/build_linux.sh          # after `bash packaging/setup.sh`; about 10 minutes on 2 CPUs
#
# Makes dist/blip-assistant/ (the app: dist/blip-assistant/blip-assistant) and
# dist/blip-assistant-VERSION-linux-x86_64.tar.xz. A user unpacks it anywhere and runs
# `blip-assistant/install.sh` (launcher, icons and metadata into ~/.local, no root), or starts
# blip-assistant/blip-assistant directly. "Start at login" is the app's own setting (Settings), which
# writes ~/.config/autostart/blip-assistant.desktop; share/autostart/ holds the same entry for
# distribution packagers.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "run bash packaging/setup.sh first (no .venv)" >&2; exit 1; }
"$PY" -c "import PyInstaller" 2>/dev/null || "$PY" -m pip install --quiet --disable-pip-version-check -e ".[package]"
VERSION=$("$PY" packaging/bundle_version.py)
APP_ID=org.blipassistant.BlipAssistant
OUT=dist/blip-assistant

# The build imports torch and transformers many times over: keep it polite on a shared machine.
OMP_NUM_THREADS=1 nice -n 10 "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/pyinstaller/blip-assistant.spec

# Desktop integration, generated from the same code the app uses for its autostart entry.
mkdir -p "$OUT/share/applications" "$OUT/share/autostart" "$OUT/share/metainfo"
"$PY" - "$OUT" <<'PYEOF'
import sys
from pathlib import Path

from assistant.autostart import DESKTOP_FILE, desktop_entry

out = Path(sys.argv[1]) / "share"
(out / "applications" / DESKTOP_FILE).write_text(desktop_entry(["blip-assistant"], autostart=False))
(out / "autostart" / DESKTOP_FILE).write_text(desktop_entry(["blip-assistant"], autostart=True))
PYEOF
for size in 16 32 48 64 128 256 512; do
  src=resources/icons/blip-assistant-$size.png
  [ -f "$src" ] || continue
  mkdir -p "$OUT/share/icons/hicolor/${size}x${size}/apps"
  cp "$src" "$OUT/share/icons/hicolor/${size}x${size}/apps/blip-assistant.png"
done
sed -e "s/@VERSION@/$VERSION/" -e "s/@DATE@/$(date -u +%Y-%m-%d)/" packaging/linux/metainfo.xml \
  > "$OUT/share/metainfo/$APP_ID.metainfo.xml"
install -m 755 packaging/linux/install.sh "$OUT/install.sh"
cp README.md "$OUT/README.md"

# Checks that need tools the build does not require: run them where they are installed.
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$OUT/share/applications/blip-assistant.desktop"
fi
if command -v appstreamcli >/dev/null; then
  appstreamcli validate --no-net "$OUT/share/metainfo/$APP_ID.metainfo.xml" || true
fi
test "$("$OUT/blip-assistant" --version)" = "$VERSION"

# The bundle must also start, not only print its version (on 2026-12-07 one built fine and died at its
# first import after PySide6's): headless, in a scratch home, it has to come up (and say "Ready." where
# espeak-ng can speak it), then quit on its own trigger. A bundle that cannot start is never packed.
SMOKE=$(mktemp -d /tmp/blip-smoke-XXXXXX)
mkdir -p "$SMOKE/home" "$SMOKE/run" && chmod 700 "$SMOKE/run"
echo '{"version": 1, "settings": {"app.show_welcome": false}}' > "$SMOKE/home/settings.json"
smoke_env=(env -i "PATH=/usr/bin:/bin" "HOME=$SMOKE" "BLIP_ASSISTANT_HOME=$SMOKE/home"
           "XDG_RUNTIME_DIR=$SMOKE/run" "QT_QPA_PLATFORM=offscreen" "HF_HUB_OFFLINE=1" "LANG=C.UTF-8"
           "BLIP_ASSISTANT_LOG_LEVEL=INFO")
if command -v espeak-ng >/dev/null; then up=('"Ready."' "$SMOKE/said.jsonl"); else up=('startup shown_at' "$SMOKE/app.log"); fi
"${smoke_env[@]}" "$OUT/blip-assistant" --speech-log "$SMOKE/said.jsonl" --speech-to-wav "$SMOKE/wav" \
  > "$SMOKE/app.log" 2>&1 &
app=$!
for _ in $(seq 120); do
  grep -qF "${up[0]}" "${up[1]}" 2>/dev/null && break
  kill -0 "$app" 2>/dev/null || break
  sleep 0.5
done
if ! grep -qF "${up[0]}" "${up[1]}" 2>/dev/null; then
  kill "$app" 2>/dev/null || true
  echo "the bundle did not start (it exited, or showed no '${up[0]}' within 60 s):" >&2
  tail -20 "$SMOKE/app.log" >&2
  exit 1
fi
"${smoke_env[@]}" "$OUT/blip-assistant" trigger quit >/dev/null
wait "$app" || { echo "the bundle did not quit cleanly:" >&2; tail -20 "$SMOKE/app.log" >&2; exit 1; }
rm -rf "$SMOKE"
echo "started: ${up[0]}, then quit"

TARBALL=dist/blip-assistant-$VERSION-linux-$(uname -m).tar.xz
XZ_OPT="-6 -T2" nice -n 10 tar -C dist -cJf "$TARBALL" blip-assistant
echo "bundle:   $OUT ($(du -sh "$OUT" | cut -f1))"
echo "download: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
