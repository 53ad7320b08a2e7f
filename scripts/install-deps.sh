#!/usr/bin/env bash
# Installs what building and testing vae-cluster needs, if any of it is missing: the Debian
# packages of the C libraries, and the Python Prometheus parser the metrics tests scrape with.
# Usage: scripts/install-deps.sh [--force]   (--force: apt-get update and install even if present)
set -euo pipefail
packages=(libopenblas-dev zlib1g-dev libzmq3-dev libpng-dev pkg-config)
prometheus_client="prometheus-client==0.26.0"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${1:-}" = "--force" ]; then missing=("${packages[@]}"); fi
if ! command -v python3 >/dev/null; then missing+=(python3 python3-prometheus-client); fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
if ! python3 -c "import prometheus_client" 2>/dev/null; then
  echo "installing: $prometheus_client (pip)" >&2
  python3 -m pip install --quiet --disable-pip-version-check "$prometheus_client" \
    || python3 -m pip install --quiet --disable-pip-version-check --user "$prometheus_client"
fi
