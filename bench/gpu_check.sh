#!/usr/bin/env bash
# The GPU check for a CUDA machine with this repository: predictions on the GPU match the CPU's, and tiles/s of the
# predictor, of the worker's pipeline and of real worker processes in fp32 and bf16 (see bench/gpu_check.py). Uses a
# python3 that can import torch, else .venv/bin/python; installs the wheels in .whl/ (bench/gpu_prepare.sh) into a
# temporary folder when they are there, and nothing else. Stops itself after 8 minutes.
#
#   bash bench/gpu_check.sh                 # defaults: 4096 tiles, chunks of 256, compiled bf16 included
#   bash bench/gpu_check.sh --checkpoint .gpu/model.pt --tiles-dir .gpu/eurosat --out "$OUT/gpu.json"
#                                           # as bench/gpu_prepare.sh prints it for the device tool
#   bash bench/gpu_check.sh --no-compile    # any further options go to bench/gpu_check.py
set -euo pipefail
cd "$(dirname "$0")/.."

python=""
for candidate in python3 .venv/bin/python; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import torch, torchvision' 2>/dev/null; then
    python="$candidate"
    break
  fi
done
if [[ -z "$python" ]]; then
  echo "gpu_check: no python with torch and torchvision (tried python3 and .venv/bin/python)" >&2
  exit 3
fi

# The GPU machine's Python has torch but not celery, SQLAlchemy, ...: the wheels bench/gpu_prepare.sh put in .whl/.
if ! "$python" -c 'import celery, sqlalchemy, pydantic_settings' 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  site="${TMPDIR:-/tmp}/tileclass-gpu-site"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

nvidia-smi -L || echo "gpu_check: nvidia-smi is not available" >&2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TILECLASS_DATA_DIR="${TMPDIR:-/tmp}/tileclass-gpu-check-state"
echo "gpu_check: $("$python" --version) at $(command -v "$python")"
exec timeout --signal=TERM --kill-after=20 480 "$python" -m bench.gpu_check "$@"
