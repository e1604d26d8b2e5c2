#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: restores and builds everything (warnings are errors),
# runs every test, and ends with one summary line: "N passed, N failed[, N skipped]".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
results="$root/artifacts/test-results"
rm -rf "$results"

# Azurite (from npm) backs the multi-process cluster tests; each test starts and stops its own instance.
if ! infra/local/azurite.sh install; then
  echo "installing Azurite failed"
  echo "0 passed, 1 failed"
  exit 1
fi

# Debian's chromium backs the dashboard's browser tests, python3-numpy the reference forward pass of exported models;
# kubectl (where the package sources have it) renders the Kubernetes overlays.
if ! infra/local/debian-packages.sh install; then
  echo "installing Debian packages failed"
  echo "0 passed, 1 failed"
  exit 1
fi

if ! dotnet build Elastic.sln -c Release --nologo -v q; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

# --blame records the order tests ran in, so that a test host that crashes names the tests it was running; a test that
# runs past the hang timeout (the longest take about 3 minutes) is named and its host killed, so the run always ends.
dotnet test Tests/Elastic.Tests.csproj -c Release --no-build --nologo --blame --blame-hang-timeout 10min --blame-hang-dump-type none \
  --logger "console;verbosity=normal" --logger "trx;LogFileName=results.trx" --results-directory "$results"
status=$?

trx="$results/results.trx"
if [ ! -f "$trx" ]; then
  echo "no test results were written"
  echo "0 passed, 1 failed"
  exit 1
fi
counters=$(grep -o '<Counters [^>]*>' "$trx")
count() { printf '%s' "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
passed=$(count passed); failed=$(( $(count failed) + $(count error) + $(count timeout) + $(count aborted) ))
# Skipped tests (no CUDA, say) are counted in total but not executed; the notExecuted counter stays 0 for them.
skipped=$(( $(count total) - $(count executed) ))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # The run itself failed (a crashed test host leaves every finished test passed): not a green run.
  grep -o '<Text>[^<]*' "$trx" | sed 's/<Text>//' | head -3
  find "$results" -name 'Sequence_*.xml' -exec sh -c 'echo "the last tests started before the run ended:"; grep -o "Name=\"[^\"]*\"" "$1" | tail -8' _ {} \;
  failed=1
fi
if [ "$failed" -gt 0 ]; then
  # CI keeps only the tail of the log: name each failed test and the first lines of its message next to the summary.
  echo "failed tests:"
  awk '
    /<UnitTestResult / && /outcome="(Failed|Error|Timeout|Aborted)"/ {
      match($0, /testName="[^"]*"/); print "  " substr($0, RSTART + 10, RLENGTH - 11); want = 1; next }
    want && /<Message>/ { inmsg = 1; lines = 0; sub(/.*<Message>/, "") }
    inmsg {
      end = sub(/<\/Message>.*/, "")
      if (lines < 6) print "    " $0
      lines++
      if (end) { inmsg = 0; want = 0 } }
  ' "$trx" | sed 's/&quot;/"/g; s/&lt;/</g; s/&gt;/>/g; s/&apos;/'"'"'/g; s/&amp;/\&/g'
fi
summary="$passed passed, $failed failed"
[ "${skipped:-0}" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
