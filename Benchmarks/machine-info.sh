#!/usr/bin/env bash
# Prints, as one JSON object, what a benchmark result depends on besides the code: the time, the
# commit, the CPU as the guest sees it (model, family, whether AVX-512 is exposed), cores, memory,
# OpenBLAS's kernel choice (OPENBLAS_CORETYPE and the core OpenBLAS picks), and the load average
# when the run started (these machines are shared). The benchmark scripts store it beside their
# results as machine.json.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import ctypes, json, os, platform, subprocess, time
def lscpu(field):
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None
flags = (lscpu("Flags") or "").split()
try:
    blas = ctypes.CDLL("libopenblas.so.0")
    blas.openblas_get_corename.restype = ctypes.c_char_p
    core = blas.openblas_get_corename().decode()
    blas.openblas_get_config.restype = ctypes.c_char_p
    config = blas.openblas_get_config().decode()
except OSError:
    core = config = None
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip() != ""
print(json.dumps({
    "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": commit + ("+changes" if dirty else ""),
    "cpu_model": lscpu("Model name"), "cpu_family": lscpu("CPU family"), "cpu_model_number": lscpu("Model"),
    "hypervisor": lscpu("Hypervisor vendor"), "cores": os.cpu_count(),
    "avx512f": "avx512f" in flags, "avx2": "avx2" in flags,
    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(unset)"), "openblas_core": core, "openblas_config": config,
    "load_average_1_5_15": os.getloadavg(), "kernel": platform.release(),
}, indent=1))
PY
