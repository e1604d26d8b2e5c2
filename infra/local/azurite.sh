#!/usr/bin/env bash
# Azurite, the Azure Storage emulator, from npm, for local clusters and tests.
#   azurite.sh install             installs it under .tools/azurite (once; ~30 s)
#   azurite.sh start DIR [PORT]    starts it in the background (in memory), blob on PORT (default 10000),
#                                  queue on PORT+1, table on PORT+2; pid and log in DIR
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

case "${1:-}" in
  install) install ;;
  bin) install; echo "$bin" ;;
  start)
    dir="${2:?usage: azurite.sh start DIR [PORT]}"; port="${3:-10000}"
    install
    mkdir -p "$dir"
    "$bin" --silent --inMemoryPersistence --disableTelemetry --skipApiVersionCheck --loose \
      --blobHost 127.0.0.1 --blobPort "$port" --queueHost 127.0.0.1 --queuePort "$((port + 1))" \
      --tableHost 127.0.0.1 --tablePort "$((port + 2))" >"$dir/azurite.log" 2>&1 &
    echo $! >"$dir/azurite.pid"
    for _ in $(seq 1 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$((port + 2))") 2>/dev/null; then exit 0; fi
      sleep 0.1
    done
    echo "azurite did not start; see $dir/azurite.log" >&2; exit 1 ;;
  stop)
    dir="${2:?usage: azurite.sh stop DIR}"
    if [ -f "$dir/azurite.pid" ]; then kill "$(cat "$dir/azurite.pid")" 2>/dev/null || true; rm -f "$dir/azurite.pid"; fi ;;
  *) sed -n '2,8p' "$0" >&2; exit 2 ;;
esac
