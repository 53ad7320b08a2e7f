#!/usr/bin/env bash
# Times what CI does after each session: a fresh clone of this repository's HEAD, then
# `CI=true bash .ci/run` (apt and Python installs, the debug build with tests, the whole suite).
# Stores the commit, the exit status, the wall time, the test runner's closing lines and
# machine.json under Benchmarks/results/ci-time-STAMP/, and the full log beside them.
# Usage: Benchmarks/ci-time.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="$root/Benchmarks/results/ci-time-$stamp"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$root/Benchmarks/machine-info.sh" > "$out/machine.json"
git clone -q "$root" "$work/clone"
cd "$work/clone"
start=$(date +%s)
set +e
CI=true bash .ci/run > "$out/ci.log" 2>&1
status=$?
set -e
end=$(date +%s)
{
  echo "commit $(git rev-parse HEAD)"
  echo "status $status"
  echo "seconds $((end - start))"
  grep -E "Build complete|Test run with|Executed [0-9]+ tests" "$out/ci.log" | tail -4
} > "$out/summary.txt"
cat "$out/summary.txt"
exit $status
