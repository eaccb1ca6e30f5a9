#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (pytest -m browser), unless it is already there.
# Idempotent: a second run does nothing. Playwright's own browser download is never used: the tests
# drive /usr/bin/chromium through the `playwright` Python package (in the `dev` extra).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(command -v chromium || echo /usr/bin/chromium)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium
echo "installed: $(command -v chromium)"
