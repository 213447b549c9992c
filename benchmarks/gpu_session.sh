#!/usr/bin/env bash
# The GPU session in one command, for a GPU machine that has torch with CUDA but no
# network and no hwlat install (the device tool's H200): hwlat is copied into a
# package folder on PYTHONPATH (no pip, no dependencies beyond what the image has:
# numpy, pandas, scipy, scikit-learn, onnx, onnxruntime, tqdm, matplotlib, pytest,
# nvidia-ml-py), then benchmarks/gpu_session.py runs against a deadline and writes
# gpu.db, gpu_repeat.db, compare.db, session.json, session.md and session.log to $OUT.
#
# Usage (device tool): run(command="bash benchmarks/gpu_session.sh", timeout_s=560)
#   Arguments are passed on, e.g. `--deadline-s 300`. PYTHON picks the interpreter (python3).
# Afterwards, here: python benchmarks/gpu_ingest.py /work/.device/.../gpu.db (see docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
site=$(mktemp -d /tmp/hwlat-site.XXXXXX)
trap 'rm -rf "$site"' EXIT
cp -r hwlat "$site/hwlat"
cp -r devices "$site/hwlat/devices"
cp -r search "$site/hwlat/search"
# PYTHONSAFEPATH: `python -m pytest` from the repository root must not import ./hwlat
# (the source folder, without devices/ and search/ inside) instead of the copy.
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONSAFEPATH=1
export HWLAT_CACHE=${HWLAT_CACHE:-/tmp/hwlat-cache}
out=${OUT:-out/gpu-session}
"$python" -c "
import sys, hwlat, hwlat.devices, hwlat.search
print('hwlat', hwlat.__version__, 'from', hwlat.__file__)
sys.exit(0 if hwlat.__file__.startswith('$site') else 'hwlat was not imported from the copy in $site')"
"$python" benchmarks/gpu_session.py --out "$out" "$@"
