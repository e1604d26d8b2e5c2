#!/usr/bin/env bash
# A real multi-process Elastic cluster on this machine: Azurite (Azure Table membership) and N silo processes.
#   infra/local/cluster.sh start [N] [DEVICES]   builds, starts Azurite (data kept on disk) and N silos (default 3) of DEVICES
#                                                virtual devices (default 2); refuses while a cluster of this clone runs
#   infra/local/cluster.sh stop                  stops every process it started
#   infra/local/cluster.sh status                lists them, checking each pid is still that process
# Jobs may read data under .local-cluster/data and write models under .local-cluster/outputs (set ELASTIC_DATA_ROOTS or
# ELASTIC_OUTPUT_ROOTS, folders separated by ';', for others); checkpoints go to Azurite's blob storage.
# Then: export ELASTIC_CLUSTER="$(infra/local/cluster.sh address)"; ./elastic cluster; ./elastic submit examples/tiny.json
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state="$root/.local-cluster"
port=10100   # Azurite blob port; table is port + 2
account="AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;DefaultEndpointsProtocol=http"
connection="$account;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;TableEndpoint=http://127.0.0.1:$((port + 2))/devstoreaccount1;"

# True when the pid file names a live process that is still ours (a silo or Azurite), not a reused pid.
alive() {
  [ -f "$1" ] || return 1
  local pid; pid="$(cat "$1")"
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -E 'Elastic\.Silo\.dll|azurite'
}

case "${1:-}" in
  start)
    silos="${2:-3}"; devices="${3:-2}"
    mkdir -p "$state/data" "$state/outputs"
    for pid in "$state"/silo-*.pid "$state"/azurite.pid; do
      if alive "$pid"; then echo "a local cluster already runs ($(basename "$pid" .pid), pid $(cat "$pid")); infra/local/cluster.sh stop first" >&2; exit 1; fi
    done
    dotnet build "$root/Silo/Elastic.Silo.csproj" -c Release --nologo -v q >/dev/null
    "$root/infra/local/azurite.sh" start "$state" "$port" --persist
    for i in $(seq 0 $((silos - 1))); do
      Elastic__Name="silo-$i" Elastic__Clustering=azure Elastic__ConnectionString="$connection" \
      Elastic__SiloPort=$((11111 + i)) Elastic__GatewayPort=$((30000 + i)) Elastic__Devices__Count="$devices" \
      Elastic__Devices__Kind=cpu Elastic__Checkpoints__ConnectionString="$connection" \
      Elastic__Jobs__DataRoots="${ELASTIC_DATA_ROOTS:-$state/data}" Elastic__Jobs__OutputRoots="${ELASTIC_OUTPUT_ROOTS:-$state/outputs}" \
        dotnet "$root/Silo/bin/Release/net10.0/Elastic.Silo.dll" >"$state/silo-$i.log" 2>&1 &
      echo $! >"$state/silo-$i.pid"
    done
    echo "started Azurite and $silos silo(s) x $devices device(s); logs in $state; data roots ${ELASTIC_DATA_ROOTS:-$state/data}, output roots ${ELASTIC_OUTPUT_ROOTS:-$state/outputs}"
    echo "export ELASTIC_CLUSTER='azure:$connection'" ;;
  address) echo "azure:$connection" ;;
  stop)
    # Silos first (gracefully, then by force after 20 s), while the membership table is still up.
    pids=()
    for pid in "$state"/silo-*.pid; do
      [ -f "$pid" ] || continue
      pids+=("$(cat "$pid")"); rm -f "$pid"
    done
    [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 200); do
      alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ $alive -eq 0 ] && break; sleep 0.1
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    "$root/infra/local/azurite.sh" stop "$state" ;;
  status)
    for pid in "$state"/*.pid; do
      [ -f "$pid" ] || continue
      if alive "$pid"; then echo "$(basename "$pid" .pid): running (pid $(cat "$pid"))"; else echo "$(basename "$pid" .pid): gone"; fi
    done ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
