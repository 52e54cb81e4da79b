#!/usr/bin/env bash
# Runs on a GPU host that has no .NET SDK: unpacks the .NET runtime and our builds from
# payload.tar.xz (written by `dotnet pwsh build.ps1 bundle`), then runs stages within one time
# budget. OUTDIR receives exactly two files, rewritten after every stage, so whatever ends the run
# (and however few files a host hands back) the evidence so far is there:
#   SUMMARY.txt   one screen: versions, then stage, result, seconds, first error line / note
#   logs.tgz      every stage's log and output file (bench JSON, train summary, cudaswa info)
# Stages, in order (a stage that cannot get its minimum from what is left of the budget is skipped
# and says so):
#   device       nvidia-smi, PyTorch's view of the GPU (import torch under its own 30 s limit),
#                `cudaswa info` (libraries chosen and found); without CUDA the run stops here
#   warm-up      every kernel compiled and every cuDNN algorithm chosen once (untimed)
#   gpu-tests    the Gpu category except NCCL, with CUDASWA_REQUIRE_GPU=1 (a missing GPU fails,
#                never skips): every op against its CPU twin, the networks, the BN recompute, and
#                whole `cudaswa` commands on --device cuda against the same on the CPU
#   gpu-blocking only when gpu-tests failed: the same again with CUDA_LAUNCH_BLOCKING=1 and
#                CUDASWA_LAUNCH_BLOCKING=1, so an asynchronous fault names its kernel or cuDNN call
#   bench        `cudaswa bench` vs PyTorch's same-configuration baseline, few steps, TF32 off
#   train        `cudaswa train --preset quick --device cuda`
#   bench-tf32   the bench with TF32 on
#   host-tests   what else depends on the host's CUDA: every kernel compiled by the host's NVRTC,
#                CUDA availability and the choice of library files
#   nccl         last and alone, under its own limit with NCCL_DEBUG=WARN: a hang here cannot take
#                the results above with it
# (The CPU-only tests are not run here: CI runs them; a timeout of theirs would say nothing about a GPU.)
# Usage: bash run.sh OUTDIR [--quick]        (--quick: no host-tests stage)
#        CUDASWA_GPU_REHEARSE=1 bash run.sh OUTDIR   rehearses every stage on a machine without a GPU
#        CUDASWA_GPU_BUDGET_S (default 390) bounds the whole run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mode=${2:-}
mkdir -p "$out"
start=$(date +%s)
budget=${CUDASWA_GPU_BUDGET_S:-390}
logs=$(mktemp -d /tmp/cudaswa-gpu-logs.XXXXXX)
summary="$out/SUMMARY.txt"
rows=()

elapsed() { echo $(( $(date +%s) - start )); }
left() { echo $(( budget - $(elapsed) )); }
publish() {
  {
    echo "CudaSwa GPU run — $(date -u '+%Y-%m-%d %H:%M UTC'), budget ${budget} s, $(elapsed) s used$([ "${CUDASWA_GPU_REHEARSE:-}" = 1 ] && echo ', REHEARSAL (no GPU needed)')"
    [ -f "$here/VERSION.txt" ] && sed 's/^/  /' "$here/VERSION.txt"
    [ -f "$logs/versions.txt" ] && sed 's/^/  /' "$logs/versions.txt"
    printf '%-12s %-9s %6s  %s\n' stage result seconds "first error line / note"
    for r in "${rows[@]}"; do echo "$r"; done
    echo "logs: logs.tgz (every stage's log and output)"
  } > "$summary.tmp" && mv "$summary.tmp" "$summary"
  tar -C "$logs" -czf "$out/logs.tgz.tmp" . 2>/dev/null && mv "$out/logs.tgz.tmp" "$out/logs.tgz"
}
row() { rows+=("$(printf '%-12s %-9s %6s  %s' "$1" "$2" "$3" "$4")"); publish; }

# stage NAME MAX_S MIN_S COMMAND...: runs COMMAND with a limit of min(MAX_S, budget left), logging to NAME.log.
stage() {
  local name=$1 max=$2 min=$3; shift 3
  local remaining; remaining=$(left)
  if [ "$remaining" -lt "$min" ]; then
    row "$name" skipped 0 "only ${remaining} s of the budget left; needs ${min} s"
    return 99
  fi
  local limit=$(( max < remaining ? max : remaining ))
  local t0; t0=$(date +%s)
  echo "[$(elapsed)s] $name (limit ${limit} s)"
  timeout -k 5 "$limit" "$@" > "$logs/$name.log" 2>&1
  local rc=$? secs=$(( $(date +%s) - t0 )) result=ok note=""
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then result=timeout; note="stopped at its ${limit} s limit"
  elif [ $rc -ne 0 ]; then result=failed; note="exit code $rc"; fi
  # Test stages: the runner's own count.
  local counts; counts=$(grep -E '^\s*(total|failed|succeeded|skipped):' "$logs/$name.log" | tr -s ' ' | tr '\n' ' ')
  [ -n "$counts" ] && note="${note:+$note; }$counts"
  if [ "$result" != ok ]; then
    # A failed test with the first line of its message, else the first error-looking line.
    local first; first=$(grep -m1 -A1 '^failed ' "$logs/$name.log" | tr '\n' ' ')
    [ -z "$first" ] && first=$(grep -m1 -E '[Ee]rror|[Ee]xception|CUDA unavailable|FAIL' "$logs/$name.log")
    first=$(echo "$first" | tr -s ' ' | cut -c1-200)
    [ -n "$first" ] && note="$note: $first"
  fi
  row "$name" "$result" "$secs" "$note"
  tail -n 6 "$logs/$name.log"
  return $rc
}

work=$(mktemp -d /tmp/cudaswa-bundle.XXXXXX)
if ! tar -C "$work" -xJf "$here/payload.tar.xz"; then row unpack failed "$(elapsed)" "could not unpack payload.tar.xz"; exit 1; fi
row unpack ok "$(elapsed)" ""
export DOTNET_ROOT="$work/dotnet" PATH="$work/dotnet:$PATH" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export CUDASWA_KERNEL_CACHE="$work/kernel-cache"
# The Python that has torch is asked where its site-packages (and NVIDIA's wheels) are.
command -v python3 >/dev/null && export CUDASWA_PYTHON=$(command -v python3)
cli() { dotnet "$work/app/cli/cudaswa.dll" "$@"; }
tests() { dotnet "$work/app/tests/CudaSwa.Tests.dll" "$@"; }
export work out here logs
export -f cli tests

device() {
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  timeout 30 python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0))" \
    || echo "import torch: not available within 30 s (the PyTorch baselines will be skipped)"
  cli info | tee "$logs/info.txt"
  { nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/GPU, driver: /'
    grep -E '^(device|  NVRTC|  cuBLAS|  cuDNN|STAND-IN)' "$logs/info.txt"; } > "$logs/versions.txt"
}
export -f device
stage device 60 10 bash -c device
# CUDASWA_GPU_REHEARSE=1 goes on without a GPU: to rehearse the stages, limits and summary on any machine.
if grep -q "CUDA unavailable" "$logs/device.log" && [ "${CUDASWA_GPU_REHEARSE:-}" != 1 ]; then
  row stop failed "$(elapsed)" "$(grep -m1 'CUDA unavailable' "$logs/device.log" | cut -c1-160)"
  exit 1
fi

stage warm-up 90 20 bash -c 'cli bench --device cuda --prepare-only --models resnet20,resnet110,wrn28x10 --json "$logs/warm-up.json"'

if ! stage gpu-tests 200 60 env CUDASWA_REQUIRE_GPU=1 bash -c 'tests --filter "TestCategory=Gpu&TestCategory!=Nccl"'; then
  stage gpu-blocking 200 60 env CUDASWA_REQUIRE_GPU=1 CUDA_LAUNCH_BLOCKING=1 CUDASWA_LAUNCH_BLOCKING=1 \
    bash -c 'tests --filter "TestCategory=Gpu&TestCategory!=Nccl"'
fi

bench_pair() { # $1 = "" or --tf32, $2 = models, $3 = suffix, $4 = steps
  cli bench --device cuda --models "$2" --steps "$4" $1 --json "$logs/bench-cudaswa-$3.json" || return $?
  if timeout 30 python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    python3 "$here/pytorch/bench_torch.py" --device cuda --models "$2" --steps "$4" $1 --json "$logs/bench-pytorch-$3.json" || return $?
    python3 "$here/pytorch/compare.py" "$logs/bench-cudaswa-$3.json" "$logs/bench-pytorch-$3.json" | tee "$logs/compare-$3.txt"
  else
    echo "no python3 with CUDA PyTorch: baseline skipped"
  fi
}
export -f bench_pair
stage bench 120 40 bash -c 'bench_pair "" resnet20,resnet110,wrn28x10 cuda 10'

stage train 120 40 bash -c 'cli train --preset quick --device cuda --out "$work/run" && cp "$work/run/summary.json" "$logs/train-quick-summary.json"'

stage bench-tf32 80 30 bash -c 'bench_pair --tf32 resnet20,resnet110 cuda-tf32 10'

if [ "$mode" != "--quick" ]; then
  stage host-tests 90 20 bash -c 'tests --filter "TestCategory=Nvrtc|FullyQualifiedName~CudaAvailabilityTests|FullyQualifiedName~ToolkitSelectionTests"'
fi

stage nccl 60 20 env CUDASWA_REQUIRE_GPU=1 NCCL_DEBUG=WARN bash -c 'tests --filter "TestCategory=Nccl"'

bad=$(printf '%s\n' "${rows[@]}" | awk '$2 == "failed" || $2 == "timeout"' | wc -l)
row done "$([ "$bad" -eq 0 ] && echo ok || echo failed)" "$(elapsed)" "$bad stage(s) failed or timed out; logs in logs.tgz"
cat "$summary"
[ "$bad" -eq 0 ]
