#!/usr/bin/env bash
# Reading speed of a mixed-type CSV table (`vae train --likelihood mixed`): `vae-bench table`
# parses, types and encodes a synthetic survey-like table of ROWS rows (default 200000 and
# 1000000, about 7 and 34 MB), the best of 3 each, in MB/s of CSV.
# Usage: Benchmarks/table-read.sh
# Output: Benchmarks/results/table-read-<time>/results.jsonl (one line per size, with the commit)
#   and machine.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-200000,1000000}
[[ "$ROWS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "table-read: ROWS must be comma-separated row counts, not '$ROWS'" >&2; exit 2; }
out=Benchmarks/results/table-read-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
swift build -c release --product vae-bench >&2
Benchmarks/machine-info.sh > "$out/machine.json"
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources || echo "+changes")
for rows in ${ROWS//,/ }; do
  .build/release/vae-bench table --rows "$rows" | python3 -c "import json,sys; o=json.load(sys.stdin); o['commit']='$commit'; print(json.dumps(o, sort_keys=True))" | tee -a "$out/results.jsonl"
done
echo "results in $out"
