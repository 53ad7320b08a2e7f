#!/usr/bin/env bash
# How long the lab takes: `lab.sh up 4 --slurm` and `lab.sh down` (ROUNDS times each), and the
# lab's own tests (LabTests, SlurmTests) with the times Swift Testing prints for each. The figures
# quoted in docs/LAB.md come from here.
#
# Usage: sudo Benchmarks/lab-tests.sh     (ROUNDS=3 by default; builds the tests if needed)
# Output: Benchmarks/results/lab-tests-<time>/: up-down.txt (milliseconds per round), tests.txt (the
#   test run's output), machine.json
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "lab-tests: the lab needs root to create network namespaces; run it with sudo" >&2
  exit 1
fi
ROUNDS=${ROUNDS:-3}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/lab-tests-$stamp}
mkdir -p "$out"
Benchmarks/machine-info.sh > "$out/machine.json"
export LAB=labtime
trap 'trap - EXIT INT TERM; Deploy/lab/lab.sh down >/dev/null 2>&1 || true' EXIT
trap 'exit 130' INT TERM
echo "round up_4_slurm_ms down_ms" > "$out/up-down.txt"
for round in $(seq 1 "$ROUNDS"); do
  start=$(date +%s%N)
  Deploy/lab/lab.sh up 4 --slurm >&2
  middle=$(date +%s%N)
  Deploy/lab/lab.sh down >&2
  end=$(date +%s%N)
  echo "$round $(( (middle - start) / 1000000 )) $(( (end - middle) / 1000000 ))" >> "$out/up-down.txt"
done
cat "$out/up-down.txt"
swift build --build-tests >&2
swift test --skip-build --filter 'LabTests|SlurmTests' 2>&1 | tee "$out/tests.txt" | grep -E '^(✔|✘) (Test|Suite)' || true
echo "results in $out" >&2
