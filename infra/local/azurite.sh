#!/usr/bin/env bash
# Azurite, the Azure Storage emulator, from npm, for local clusters and tests.
#   azurite.sh install             installs it under .tools/azurite (once; ~30 s)
#   azurite.sh start DIR [PORT] [--persist]
#                                  starts it in the background, blob on PORT (default 10000), queue on PORT+1,
#                                  table on PORT+2; pid and log in DIR; in memory, or with --persist its data in DIR/data
#                                  (a restart loses nothing); refuses when the instance of DIR or the ports are in use
#   azurite.sh stop DIR            stops the instance started with DIR
#   azurite.sh bin                 prints the path of the azurite executable
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prefix="$root/.tools/azurite"
bin="$prefix/node_modules/.bin/azurite"
version="3.37.0"

install() {
  if [ -x "$bin" ]; then return; fi
  mkdir -p "$prefix"
  npm install --prefix "$prefix" "azurite@$version" --no-audit --no-fund --loglevel=error >/dev/null
}

# True when DIR's pid file names a live Azurite process (a reused pid of another program does not count).
running() {
  [ -f "$1/azurite.pid" ] || return 1
  local pid; pid="$(cat "$1/azurite.pid")"
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q azurite
}

case "${1:-}" in
  install) install ;;
  bin) install; echo "$bin" ;;
  start)
    dir="${2:?usage: azurite.sh start DIR [PORT] [--persist]}"; port="${3:-10000}"
    install
    mkdir -p "$dir"
    if running "$dir"; then echo "azurite already runs for $dir (pid $(cat "$dir/azurite.pid"))" >&2; exit 1; fi
    for p in "$port" "$((port + 1))" "$((port + 2))"; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "port $p is in use: another Azurite or service listens there" >&2; exit 1; fi
    done
    if [ "${4:-}" = "--persist" ]; then storage=(--location "$dir/data"); else storage=(--inMemoryPersistence); fi
    "$bin" --silent "${storage[@]}" --disableTelemetry --skipApiVersionCheck --loose \
      --blobHost 127.0.0.1 --blobPort "$port" --queueHost 127.0.0.1 --queuePort "$((port + 1))" \
      --tableHost 127.0.0.1 --tablePort "$((port + 2))" >"$dir/azurite.log" 2>&1 &
    echo $! >"$dir/azurite.pid"
    for _ in $(seq 1 100); do
      if ! running "$dir"; then break; fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$((port + 2))") 2>/dev/null; then exit 0; fi
      sleep 0.1
    done
    echo "azurite did not start; see $dir/azurite.log" >&2; exit 1 ;;
  stop)
    dir="${2:?usage: azurite.sh stop DIR}"
    if running "$dir"; then kill "$(cat "$dir/azurite.pid")" 2>/dev/null || true; fi
    rm -f "$dir/azurite.pid" ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
