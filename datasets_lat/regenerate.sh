#!/usr/bin/env bash
# Regenerate the shipped latency tables on this machine (default protocol, 1 thread,
# measuring process pinned to the last CPU). About 40 minutes on 2 cores, most of it
# converting 224x224 networks to TFLite.
# Usage: bash datasets_lat/regenerate.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/hwlat-tables}
mkdir -p "$work"
hwlat=.venv/bin/hwlat
for dev in onnxruntime-cpu litert-cpu; do
  db=$work/$dev.db rep=$work/$dev-repeat.db
  "$hwlat" measure --device "$dev" --space mbconv --n 500 --seed 0 --db "$db" --quiet --jobs 2
  "$hwlat" measure --device "$dev" --networks random:200 --seed 0 --db "$db" --quiet --jobs 2
  "$hwlat" measure --device "$dev" --space mbconv-backbone --n 71 --seed 0 --db "$db" --quiet --jobs 2
  # A later, separate run of the same ops and of 50 networks: the noise floor.
  "$hwlat" measure --device "$dev" --space mbconv --n 500 --seed 0 --db "$rep" --quiet --jobs 2
  "$hwlat" measure --device "$dev" --networks random:50 --seed 0 --db "$rep" --quiet --jobs 2
  "$hwlat" measure --device "$dev" --space mbconv-backbone --n 71 --seed 0 --db "$rep" --quiet --jobs 2
  "$hwlat" table export --db "$db" --out "datasets_lat/${dev}_mbconv.csv"
  "$hwlat" table export --db "$rep" --out "datasets_lat/${dev}_mbconv_repeat.csv"
  .venv/bin/python datasets_lat/make_card.py "datasets_lat/${dev}_mbconv.csv" --repeat "datasets_lat/${dev}_mbconv_repeat.csv"
done
