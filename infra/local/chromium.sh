#!/usr/bin/env bash
# Debian's chromium, for the dashboard's browser tests (Playwright drives it; it never downloads a browser).
#   chromium.sh install    installs the Debian package when /usr/bin/chromium is missing (apt, as root or with sudo; ~1 min)
set -euo pipefail
case "${1:-}" in
  install)
    if [ -x /usr/bin/chromium ]; then exit 0; fi
    if [ "$(id -u)" -eq 0 ]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo -n); else
      echo "chromium is missing and this user cannot install packages: run apt-get install chromium as root" >&2; exit 1
    fi
    "${as_root[@]}" apt-get update -qq >/dev/null
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ;;
  *) sed -n '2,3p' "$0" >&2; exit 2 ;;
esac
