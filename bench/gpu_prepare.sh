#!/usr/bin/env bash
# Prepares the GPU check here, before a session's device time is spent: the wheels the GPU machine lacks (.whl/,
# bench/gpu_wheels.sh), the EuroSAT patches for its tiles and a trained checkpoint (.gpu/, bench/gpu_prepare.py).
# Both folders are ignored by git and carried by the device tool (together about 50 MiB of its 64 MiB). Then prints
# the one device command to run. Takes about 10 minutes, most of it training on this machine's CPU.
#
#   bash bench/gpu_prepare.sh                    # then run the printed command on the device
#   bash bench/gpu_prepare.sh --train-minutes 3  # options go to bench/gpu_prepare.py
set -euo pipefail
cd "$(dirname "$0")/.."

for ignored in /.whl/ /.gpu/; do
  grep -qxF "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >> .git/info/exclude
done
bash bench/gpu_wheels.sh
.venv/bin/python -m bench.gpu_prepare "$@"
echo "gpu_prepare: working tree and carried folders: $(du -shc --exclude=.git --exclude=.venv . | tail -1 | cut -f1)"
cat <<'USAGE'
gpu_prepare: on the device (the run tool), with carry [".whl", ".gpu"] and timeout_s 540:
  bash bench/gpu_check.sh --checkpoint .gpu/model.pt --tiles-dir .gpu/eurosat --out "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu.log"
USAGE
