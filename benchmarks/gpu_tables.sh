#!/usr/bin/env bash
# GPU latency tables for the MBConv space with the `cuda` backend (PyTorch on CUDA):
# eager and CUDA graphs, batch 1 and 8 (ProxylessNAS reports GPU latency at batch 8).
# Needs a CUDA GPU and a CUDA build of torch (`hwlat devices` says what is missing);
# `pip install 'hwlat[gpu]'` adds pynvml, so the tables record the GPU's clocks.
#
# Per configuration (4 of them) it measures, like datasets_lat/regenerate.sh does on the CPU:
#   500 sampled MBConv-space ops, 200 random ProxylessNAS-backbone networks and the
#   71 backbone configurations, with the default adaptive protocol; then exports
#   datasets_lat/cuda-<mode>-b<batch>_mbconv.csv with its card (.md).
# Afterwards: the zoo models across the four configurations (`hwlat compare`, in
# benchmarks/results/compare-gpu/) and a summary of graph-vs-eager and batch-8-vs-1
# (benchmarks/results/gpu_tables.md, .json) from benchmarks/gpu_tables_summary.py.
# Measurements are resumable: run the same command again after an interruption.
#
# Usage: bash benchmarks/gpu_tables.sh [WORKDIR]
# Environment: N=500 (ops), NETS=200 (random networks), GPU=0 (CUDA device index),
#   HWLAT=.venv/bin/hwlat, TABLES=datasets_lat, RESULTS=benchmarks/results,
#   BACKEND=cuda (BACKEND=fake with small N, NETS and other TABLES/RESULTS folders
#   rehearses the whole pipeline without a GPU).
# Rough cost on one GPU: ~0.5-1 s per op and configuration (settling + protocol), ~1 h in all.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/hwlat-gpu-tables}
N=${N:-500}
NETS=${NETS:-200}
GPU=${GPU:-0}
BACKEND=${BACKEND:-cuda}
TABLES=${TABLES:-datasets_lat}
RESULTS=${RESULTS:-benchmarks/results}
hwlat=${HWLAT:-.venv/bin/hwlat}
python=$(dirname "$hwlat")/python
mkdir -p "$work" "$TABLES" "$RESULTS"

if ! "$hwlat" devices | awk -v b="$BACKEND" '$1 == b && $2 == "yes" {found = 1} END {exit !found}'; then
  echo "the $BACKEND backend is unavailable here:" >&2
  "$hwlat" devices | awk -v b="$BACKEND" '$1 == b' >&2
  exit 1
fi
gpu_name=$("$python" -c "import torch; print(torch.cuda.get_device_name($GPU) if torch.cuda.is_available() else 'no GPU (rehearsal)')")
echo "GPU: $gpu_name"

csvs=()
for mode in eager graph; do
  for batch in 1 8; do
    dev="$BACKEND/mode=$mode/gpu=$GPU"
    name="$BACKEND-$mode-b$batch"
    db="$work/$name.db"
    "$hwlat" measure --device "$dev" --batch "$batch" --space mbconv --n "$N" --seed 0 --db "$db" --quiet
    "$hwlat" measure --device "$dev" --batch "$batch" --networks "random:$NETS" --seed 0 --db "$db" --quiet
    "$hwlat" measure --device "$dev" --batch "$batch" --space mbconv-backbone --n 71 --seed 0 --db "$db" --quiet
    "$hwlat" table export --db "$db" --out "$TABLES/${name}_mbconv.csv"
    "$python" datasets_lat/make_card.py "$TABLES/${name}_mbconv.csv" --note \
      "Measured with benchmarks/gpu_tables.sh: CUDA events around each run, synchronised after it (one
inference on an idle GPU), warm-up until successive 25 ms windows agree. Regenerate with that script."
    csvs+=("$TABLES/${name}_mbconv.csv")
  done
done

"$hwlat" compare --models proxyless-gpu,proxyless-cpu,proxyless-mobile,mobilenetv2,resnet18 \
  --devices "$BACKEND/mode=eager/gpu=$GPU,$BACKEND/mode=graph/gpu=$GPU,$BACKEND/b8/mode=eager/gpu=$GPU,$BACKEND/b8/mode=graph/gpu=$GPU" \
  --budget 2 --db "$work/compare-gpu.db" --out "$RESULTS/compare-gpu" -q \
  --title "Zoo models on $gpu_name (PyTorch $BACKEND backend; batch 1 and 8, eager and CUDA graphs)"

"$python" benchmarks/gpu_tables_summary.py "${csvs[@]}" --out "$RESULTS/gpu_tables"
