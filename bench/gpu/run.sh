#!/usr/bin/env bash
# Runs on a GPU host that has no .NET SDK: unpacks the .NET runtime and our builds from
# payload.tar.xz (written by `dotnet pwsh build.ps1 bundle`), then, writing logs under $1:
#   1. nvidia-smi and `cudaswa info`            (what hardware and libraries were used)
#   2. every test in the Gpu category           (CUDA ops vs the CPU twin, training step, SWA, BN recompute)
#   3. `cudaswa bench` on the GPU, TF32 off and on, and PyTorch's same-configuration baseline if python3 has torch
#   4. `cudaswa train --preset quick --device cuda`
#   5. the whole test suite (CPU tests too), if time allows
# Usage: bash run.sh OUTDIR [--quick]      (--quick: steps 1-4 only)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mode=${2:-}
mkdir -p "$out"
work=$(mktemp -d /tmp/cudaswa-bundle.XXXXXX)
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$out/steps.log"; }

stamp "unpacking"
tar -C "$work" -xJf "$here/payload.tar.xz" || { echo "could not unpack payload" | tee -a "$out/steps.log"; exit 1; }
export DOTNET_ROOT="$work/dotnet" PATH="$work/dotnet:$PATH" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export CUDASWA_KERNEL_CACHE="$work/kernel-cache"
# Every step has its own time limit, so one stuck step cannot eat the whole device budget.
cli() { local limit=$1; shift; timeout "$limit" dotnet "$work/app/cli/cudaswa.dll" "$@"; }
tests() { local limit=$1; shift; timeout "$limit" dotnet "$work/app/tests/CudaSwa.Tests.dll" "$@"; }

stamp "device and libraries"
{ nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; } > "$out/nvidia-smi.txt" 2>&1
cli 60 info > "$out/info.txt" 2>&1; cat "$out/info.txt"

stamp "Gpu tests"
tests 180 --filter "TestCategory=Gpu" > "$out/gpu-tests.log" 2>&1; echo "exit code $?" >> "$out/gpu-tests.log"
tail -n 8 "$out/gpu-tests.log"

stamp "cudaswa bench (TF32 off, then on)"
cli 150 bench --device cuda --models resnet20,resnet110,wrn28x10 --json "$out/bench-cudaswa-cuda.json" > "$out/bench-cudaswa.log" 2>&1
cli 90 bench --device cuda --models resnet20,resnet110 --tf32 --json "$out/bench-cudaswa-cuda-tf32.json" >> "$out/bench-cudaswa.log" 2>&1
tail -n 12 "$out/bench-cudaswa.log"
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  stamp "PyTorch baseline (TF32 off, then on)"
  timeout 150 python3 "$here/pytorch/bench_torch.py" --device cuda --models resnet20,resnet110,wrn28x10 --json "$out/bench-pytorch-cuda.json" > "$out/bench-pytorch.log" 2>&1
  timeout 90 python3 "$here/pytorch/bench_torch.py" --device cuda --models resnet20,resnet110 --tf32 --json "$out/bench-pytorch-cuda-tf32.json" >> "$out/bench-pytorch.log" 2>&1
  python3 "$here/pytorch/compare.py" "$out/bench-cudaswa-cuda.json" "$out/bench-pytorch-cuda.json" | tee "$out/compare.txt"
  python3 "$here/pytorch/compare.py" "$out/bench-cudaswa-cuda-tf32.json" "$out/bench-pytorch-cuda-tf32.json" | tee -a "$out/compare.txt"
else
  stamp "no python3 with CUDA PyTorch: baseline skipped"
fi

stamp "cudaswa train --preset quick --device cuda"
cli 150 train --preset quick --device cuda --out "$work/run" > "$out/train-quick.log" 2>&1
echo "exit code $?" >> "$out/train-quick.log"
tail -n 14 "$out/train-quick.log"
cp "$work/run/summary.json" "$out/train-quick-summary.json" 2>/dev/null

if [ "$mode" != "--quick" ]; then
  stamp "all tests"
  tests 240 > "$out/all-tests.log" 2>&1
  tail -n 8 "$out/all-tests.log"
fi
stamp "done"
