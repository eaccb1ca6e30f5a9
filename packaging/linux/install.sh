#!/usr/bin/env bash
# Install the unpacked bundle for this user, without root: the `blip-assistant` command in ~/.local/bin,
# the launcher in the applications menu, the icons and the AppStream metadata.
#
#   ./install.sh              install (the bundle stays where it was unpacked)
#   ./install.sh --uninstall  remove what install.sh added; asks before deleting your settings and history
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
CONFIG=${XDG_CONFIG_HOME:-$HOME/.config}
BIN=$HOME/.local/bin
APP_ID=org.blipassistant.BlipAssistant

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$BIN/blip-assistant" "$DATA/applications/blip-assistant.desktop" \
        "$DATA/metainfo/$APP_ID.metainfo.xml" "$CONFIG/autostart/blip-assistant.desktop"
  find "$DATA/icons/hicolor" -name blip-assistant.png -delete 2>/dev/null || true
  USERDATA=${BLIP_ASSISTANT_HOME:-$DATA/blip-assistant}
  if [ -d "$USERDATA" ]; then
    read -r -p "Also delete your settings, history and personal models in $USERDATA? [y/N] " answer
    case "$answer" in [yY]*) rm -rf "$USERDATA"; echo "Deleted.";; *) echo "Kept $USERDATA.";; esac
  fi
  echo "BLIP Assistant is uninstalled. You can delete $HERE."
  exit 0
fi

mkdir -p "$BIN" "$DATA/applications" "$DATA/metainfo"
ln -sf "$HERE/blip-assistant" "$BIN/blip-assistant"
sed "s|^Exec=blip-assistant|Exec=\"$HERE/blip-assistant\"|" "$HERE/share/applications/blip-assistant.desktop" \
  > "$DATA/applications/blip-assistant.desktop"
cp -r "$HERE/share/icons" "$DATA/"
cp "$HERE/share/metainfo/$APP_ID.metainfo.xml" "$DATA/metainfo/"
command -v update-desktop-database >/dev/null && update-desktop-database "$DATA/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q "$DATA/icons/hicolor" || true
echo "BLIP Assistant is installed: find it in your applications menu, or run blip-assistant."
echo "To start it at every login, turn on 'Start at login' in its settings."
