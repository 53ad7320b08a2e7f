#!/usr/bin/env bash
# What serving Prometheus metrics costs training: the coordinator with 2 local workers (784-400-20
# VAE on MNIST, global batch 128, 2 epochs), without --metrics-port and with it while a scraper
# GETs /metrics every second (Prometheus usually scrapes every 15 to 60 s). The two alternate,
# ROUNDS times; the medians of samples/s are compared.
#
# Usage: Benchmarks/metrics-overhead.sh   (ROUNDS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/metrics-overhead-$stamp}
mkdir -p "$out"
work=$(mktemp -d)
scraper=""
trap '[ -n "$scraper" ] && kill "$scraper" 2>/dev/null; rm -rf "$work"' EXIT
swift build -c release >&2
common=(--data Data/mnist --epochs 2 --batch 128 --hidden 400 --latent 20 --seed 1 --local-workers 2
        --bind 'tcp://127.0.0.1:*' --quiet)

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  .build/release/vae-coordinator start "${common[@]}" --out "$work/plain" >/dev/null
  cp "$work/plain/summary.json" "$out/plain-$round.json"

  rm -rf "$work/metrics"
  .build/release/vae-coordinator start "${common[@]}" --metrics-port 0 --out "$work/metrics" >/dev/null &
  coordinator=$!
  (
    url=""
    while [ -z "$url" ]; do
      sleep 0.1
      url=$(python3 -c 'import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "metrics_serving": print(e["url"]); break' "$work/metrics/events.jsonl" 2>/dev/null || true)
    done
    n=0
    while curl -sf "$url" -o /dev/null; do n=$((n + 1)); sleep 1; done
    echo "$n" > "$work/scrapes"
  ) &
  scraper=$!
  wait "$coordinator"
  wait "$scraper" || true
  scraper=""
  cp "$work/metrics/summary.json" "$out/metrics-$round.json"
  echo "{\"scrapes\": $(cat "$work/scrapes")}" > "$out/scrapes-$round.json"
done

python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
def rates(kind):
    return [json.load(open(f))["samples_per_s"] for f in sorted(glob.glob(f"{out}/{kind}-*.json"))]
plain, metrics = rates("plain"), rates("metrics")
scrapes = [json.load(open(f))["scrapes"] for f in sorted(glob.glob(f"{out}/scrapes-*.json"))]
result = {"plain_samples_per_s": statistics.median(plain), "metrics_samples_per_s": statistics.median(metrics),
          "ratio_metrics_to_plain": statistics.median(metrics) / statistics.median(plain),
          "plain_rounds": plain, "metrics_rounds": metrics, "scrapes_per_round": scrapes}
json.dump(result, open(f"{out}/result.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
