#!/usr/bin/env bash
# The equivalence check of issue 15: 150 Adam steps (eps 1e-4, batch 240) with 1-4 ring workers
# (also over sockets, ring-sockets) and 3 star workers against one process (the integration test that asserts 1e-5), with its
# printed differences stored.
#
# Usage: Benchmarks/equivalence.sh   (output: Benchmarks/results/equivalence-<time>.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/equivalence-$stamp.txt}
swift build --build-tests >&2
{
  echo "commit $(git rev-parse --short HEAD), $(date -u)"
  swift test --skip-build --filter nWorkersEndWithinOneHundredThousandthOfOneProcessAfter150AdamSteps 2>&1 \
    | grep -E "equivalence:|passed after|failed after|recorded an issue"
} | tee "$out"
echo "stored in $out" >&2
