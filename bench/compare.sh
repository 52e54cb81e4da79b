#!/usr/bin/env bash
# One command for the ratio table ours / PyTorch, side by side on this machine:
#   bash bench/compare.sh                      # CPU, resnet20
#   DEVICE=cuda MODELS=resnet20,resnet110 bash bench/compare.sh
#   ONLY=conv MODELS=resnet20,resnet110,preresnet164,wrn28x10 bash bench/compare.sh   # per-shape convolution roofline
# Needs a python3 with PyTorch: Debian's `apt-get install python3-torch` on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cpu}
MODELS=${MODELS:-resnet20}
ONLY=${ONLY:-all}
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import torch" 2>/dev/null; then PY=/usr/bin/python3
  else echo "bench/compare.sh: no python3 with PyTorch found; on Debian: apt-get install python3-torch (or set PYTHON=...)"; exit 2; fi
fi
out=${OUT:-artifacts/bench}
mkdir -p "$out"
dotnet run --project src/CudaSwa.Cli -c Release -- bench --device "$DEVICE" --models "$MODELS" --only "$ONLY" --json "$out/cudaswa-$DEVICE.json"
shapes=()
if [ "$ONLY" = conv ]; then shapes=(--shapes-from "$out/cudaswa-$DEVICE.json"); fi
"$PY" bench/pytorch/bench_torch.py --device "$DEVICE" --models "$MODELS" --only "$ONLY" "${shapes[@]}" --json "$out/pytorch-$DEVICE.json"
echo
"$PY" bench/pytorch/compare.py "$out/cudaswa-$DEVICE.json" "$out/pytorch-$DEVICE.json"
