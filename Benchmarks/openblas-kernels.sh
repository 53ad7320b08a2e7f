#!/usr/bin/env bash
# What OpenBLAS's kernel choice does to the numeric core: `vae-bench sgemm` (the training step's
# four matrix shapes, 1 thread, best of 300 calls each) and `vae-bench iwae --images 20` (IWAE
# NLL at k = 5000, 1 thread) with OPENBLAS_CORETYPE=Haswell (AVX2 kernels) and with
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (OpenBLAS picks by CPUID: SkylakeX/Cooperlake
# AVX-512 kernels where the guest exposes AVX-512, Zen or Haswell kernels where it does not).
# The two settings alternate, ROUNDS times; machine.json says which core each one got.
#
# Usage: Benchmarks/openblas-kernels.sh       (ROUNDS=3 by default)
# Output: Benchmarks/results/openblas-kernels-<time>/ (raw JSON per run, summary.json)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${OUT:-Benchmarks/results/openblas-kernels-$stamp}
mkdir -p "$out"
swift build -c release --product vae-bench >&2
bench=.build/release/vae-bench
Benchmarks/machine-info.sh > "$out/machine.json"
core() { python3 -c 'import ctypes; l = ctypes.CDLL("libopenblas.so.0"); l.openblas_get_corename.restype = ctypes.c_char_p; print(l.openblas_get_corename().decode())'; }
haswell=(env OPENBLAS_CORETYPE=Haswell)
auto=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
echo "{\"haswell\": \"$("${haswell[@]}" bash -c "$(declare -f core); core")\", \"auto\": \"$("${auto[@]}" bash -c "$(declare -f core); core")\"}" > "$out/cores.json"

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  for mode in haswell auto; do
    declare -n run=$mode
    "${run[@]}" $bench sgemm --threads 1 > "$out/sgemm-$mode-$round.json"
    "${run[@]}" $bench iwae --images 20 --threads 1 > "$out/iwae-$mode-$round.json"
  done
done

python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
result = {"rounds": rounds, "cores": json.load(open(f"{out}/cores.json"))}
for mode in ("haswell", "auto"):
    sgemm = [json.load(open(f"{out}/sgemm-{mode}-{r}.json")) for r in range(1, rounds + 1)]
    iwae = [json.load(open(f"{out}/iwae-{mode}-{r}.json")) for r in range(1, rounds + 1)]
    result[mode] = {"sgemm_mean_gflops": spread([s["mean_gflops"] for s in sgemm]),
                    "sgemm_shape_gflops": spread([x["gflops"] for s in sgemm for x in s["results"]]),
                    "iwae_images_per_s": spread([i["images_per_s"] for i in iwae]),
                    "iwae_mean_nll": sorted({i["mean_nll"] for i in iwae})}
result["auto_to_haswell"] = {
    "sgemm": result["auto"]["sgemm_mean_gflops"]["median"] / result["haswell"]["sgemm_mean_gflops"]["median"],
    "iwae": result["auto"]["iwae_images_per_s"]["median"] / result["haswell"]["iwae_images_per_s"]["median"]}
json.dump(result, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
echo "results in $out" >&2
