#!/usr/bin/env bash
# Full GPU latency tables on your own GPU machine (no deadline): the GPU session of
# benchmarks/gpu_session.py with the deadline lifted, then benchmarks/gpu_ingest.py.
# Per configuration (cuda eager / CUDA graphs x batch 1 / 8): 500 MBConv-space ops, the
# 71 backbone configs and 200 random networks -> datasets_lat/cuda-<mode>-b<batch>_mbconv.csv
# with cards; predictor accuracy, graphs-vs-eager / batch-8 summary and the zoo comparison
# (CPU columns measured on this machine) -> benchmarks/results/. About an hour on one GPU.
# Resumable: run the same command again after an interruption (rows are kept in WORKDIR).
#
# Usage: bash benchmarks/gpu_tables.sh [WORKDIR] [gpu_session.py options, e.g. --gpu 1]
# Needs hwlat installed (pip install -e '.[gpu]') and a CUDA build of torch; PYTHON=python3.
# In a time-limited session (the device tool), use benchmarks/gpu_session.sh instead.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/hwlat-gpu-tables}
shift || true
python=${PYTHON:-python3}
"$python" benchmarks/gpu_session.py --out "$work" --deadline-s 86400 --reserve-s 1800 \
  --repeat-ops 500 --repeat-nets 50 --tests-timeout-s 600 "$@"
"$python" benchmarks/gpu_ingest.py "$work"
