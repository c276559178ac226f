#!/usr/bin/env bash
# Makes sure the Debian tools the tests use are installed: systemd-analyze checks
# deploy/systemd/exchange-hub.service, headless Chromium opens the HTML cooperation report.
# Installs what is missing with apt-get when it can (root on Debian); otherwise says what to do.
set -euo pipefail
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing the Debian packages the tests use: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "The tests need these Debian packages, not installed: ${missing[*]}." >&2
echo "Install them (apt-get install ${missing[*]}) and run the tests again." >&2
exit 1
