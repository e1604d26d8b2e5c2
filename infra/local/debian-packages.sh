#!/usr/bin/env bash
# Debian packages the tests use: chromium (Playwright drives it for the dashboard's browser tests; it never downloads a
# browser), python3-numpy (the independent reference forward pass that exported models are checked against) and
# redis-server (a cluster with Redis membership and job state; each test starts its own on a free port); and,
# where the machine's package sources have it (Debian's own do not), kubectl, which renders the Kubernetes overlays
# (their tests say they are skipped without it).
#   debian-packages.sh install    installs those that are missing (apt, as root or with sudo; ~1 min)
set -euo pipefail
packages=(chromium python3-numpy redis-server)
optional=(kubectl)
case "${1:-}" in
  install)
    missing=()
    for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
    wanted=()
    for p in "${optional[@]}"; do command -v "$p" >/dev/null || wanted+=("$p"); done
    if [ ${#missing[@]} -eq 0 ] && [ ${#wanted[@]} -eq 0 ]; then exit 0; fi
    if [ "$(id -u)" -eq 0 ]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo -n); else
      [ ${#missing[@]} -eq 0 ] && exit 0
      echo "${missing[*]} missing and this user cannot install packages: run apt-get install ${missing[*]} as root" >&2; exit 1
    fi
    "${as_root[@]}" apt-get update -qq >/dev/null
    [ ${#missing[@]} -eq 0 ] || "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    for p in "${wanted[@]}"; do
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null 2>&1 || echo "$p: not in this machine's package sources; the tests that need it are skipped"
    done ;;
  *) sed -n '2,4p' "$0" >&2; exit 2 ;;
esac
