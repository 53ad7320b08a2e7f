#!/usr/bin/env bash
# Installs the Debian packages that building vae-cluster needs, if any is missing.
# Usage: scripts/install-deps.sh [--force]   (--force: apt-get update and install even if present)
set -euo pipefail
packages=(libopenblas-dev zlib1g-dev libzmq3-dev libpng-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${1:-}" = "--force" ]; then missing=("${packages[@]}"); fi
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}" >&2
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
