#!/usr/bin/env bash
# Publishes what the images hold into OUT (default artifacts/publish): OUT/silo (the silo host) and OUT/cli (the
# `elastic` CLI, whose `elastic serve` is the API), framework-dependent for linux-x64, without other platforms' natives.
#   infra/images/publish.sh [OUT] [--cuda] [--no-build] [-c Release|Debug]
#     --cuda      libtorch with CUDA 12.8 for the silo (restored from nuget.org; GPU images)
#     --no-build  publish what the last build made (tests: the silo and API as an image would run them)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$root/artifacts/publish"; backend=cpu; build=(); configuration=Release
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) backend=cuda ;;
    --no-build) build=(--no-build) ;;
    -c) configuration="$2"; shift ;;
    -*) sed -n '2,6p' "$0" >&2; exit 2 ;;
    *) out="$1" ;;
  esac
  shift
done
publish() {  # project, folder
  rm -rf "${out:?}/$2"
  dotnet publish "$root/$1" -c "$configuration" "${build[@]}" -p:ElasticTorchBackend="$backend" -o "$out/$2" --nologo -v q
  # Only linux-x64 natives stay (libtorch for macOS and Windows is most of the rest).
  find "$out/$2/runtimes" -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
  find "$out/$2" -name '*.pdb' -delete
}
publish Silo/Elastic.Silo.csproj silo
publish Client/Cli/Elastic.Cli.csproj cli
echo "published the silo to $out/silo and the CLI and API to $out/cli ($(du -sh "$out" | cut -f1))"
