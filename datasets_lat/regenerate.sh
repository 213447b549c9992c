#!/usr/bin/env bash
# Regenerate the shipped latency tables on this machine (default protocol, 1 thread).
# Usage: bash datasets_lat/regenerate.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/hwlat-tables}
mkdir -p "$work"
hwlat=.venv/bin/hwlat
for dev in onnxruntime-cpu litert-cpu; do
  "$hwlat" measure --device "$dev" --space mbconv --n 500 --seed 0 --db "$work/$dev.db" --quiet
  "$hwlat" measure --device "$dev" --networks random:200 --seed 0 --db "$work/$dev.db" --quiet
  "$hwlat" table export --db "$work/$dev.db" --out "datasets_lat/${dev}_mbconv.csv"
done
