#!/usr/bin/env bash
# The macOS application: "BLIP Assistant.app" (PyInstaller's BUNDLE, Info.plist from this folder) in a .dmg.
# NOT RUN on the project's Linux machine; written to run unchanged on a macOS CI runner (macos-14 has
# Python 3.11, iconutil and hdiutil):
#
#   bash packaging/macos/build.sh
#
# Unsigned unless CODESIGN_IDENTITY is set; notarisation is left to the release job.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3.11 -m venv .venv
PY=.venv/bin/python
"$PY" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install --quiet --disable-pip-version-check -e ".[package]"
VERSION=$("$PY" packaging/bundle_version.py)

# The icon: an .iconset from the PNGs in resources/icons.
ICONSET=build/blip-assistant.iconset
mkdir -p "$ICONSET"
for size in 16 32 64 128 256 512; do
  cp "resources/icons/blip-assistant-$size.png" "$ICONSET/icon_${size}x${size}.png"
  half=$((size / 2))
  [ "$half" -ge 16 ] && cp "resources/icons/blip-assistant-$size.png" "$ICONSET/icon_${half}x${half}@2x.png"
done
iconutil -c icns "$ICONSET" -o packaging/macos/blip-assistant.icns

OMP_NUM_THREADS=1 "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/pyinstaller/blip-assistant.spec
APP="dist/BLIP Assistant.app"
test "$("$APP/Contents/MacOS/blip-assistant" --version)" = "$VERSION"
if [ -n "${CODESIGN_IDENTITY:-}" ]; then
  codesign --deep --force --options runtime --sign "$CODESIGN_IDENTITY" "$APP"
fi
hdiutil create -volname "BLIP Assistant" -srcfolder "$APP" -ov -format UDZO "dist/blip-assistant-$VERSION-macos.dmg"
echo "app: $APP"
