#!/usr/bin/env bash
# Runs on a GPU host that has no .NET SDK: unpacks the .NET runtime and our builds from
# payload.tar.xz (written by `dotnet pwsh build.ps1 bundle`), then runs stages, writing every log
# under OUTDIR and a one-screen SUMMARY.txt (stage, result, seconds, first error line) that is
# rewritten after every stage, so whatever ends the run, the evidence so far is there:
#   device     nvidia-smi, PyTorch's view of the GPU, `cudaswa info` (libraries chosen and found);
#              when CUDA is unavailable the run stops here and says why
#   warm-up    every kernel compiled and every cuDNN algorithm chosen once (untimed)
#   gpu-tests  every test in the Gpu category, with CUDASWA_REQUIRE_GPU=1 (a missing GPU fails,
#              never skips) and launch-blocking errors (an asynchronous fault names its kernel)
#   bench      `cudaswa bench` vs PyTorch's same-configuration baseline, TF32 off, then on
#   train      `cudaswa train --preset quick --device cuda`
#   all-tests  the whole suite
# One total budget (CUDASWA_GPU_BUDGET_S, default 390 s) bounds the run: each stage gets at most
# its own limit and what is left; a stage that cannot get its minimum is skipped, and says so.
# Usage: bash run.sh OUTDIR [--quick]        (--quick: no all-tests stage)
#        CUDASWA_GPU_REHEARSE=1 bash run.sh OUTDIR   rehearses every stage on a machine without a GPU
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mode=${2:-}
mkdir -p "$out"
start=$(date +%s)
budget=${CUDASWA_GPU_BUDGET_S:-390}
summary="$out/SUMMARY.txt"
rows=()

elapsed() { echo $(( $(date +%s) - start )); }
left() { echo $(( budget - $(elapsed) )); }
write_summary() {
  {
    echo "CudaSwa GPU run — $(date -u '+%Y-%m-%d %H:%M UTC'), budget ${budget} s, $(elapsed) s used"
    [ -f "$here/VERSION.txt" ] && sed 's/^/  /' "$here/VERSION.txt"
    printf '%-10s %-9s %6s  %s\n' stage result seconds "first error line / note"
    for r in "${rows[@]}"; do echo "$r"; done
  } > "$summary"
}
row() { rows+=("$(printf '%-10s %-9s %6s  %s' "$1" "$2" "$3" "$4")"); write_summary; }

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
  timeout -k 5 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$? secs=$(( $(date +%s) - t0 )) result=ok note=""
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then result=timeout; note="stopped at its ${limit} s limit"
  elif [ $rc -ne 0 ]; then result=failed; note="exit code $rc"; fi
  if [ "$result" != ok ]; then
    # A failed test with the first line of its message, else the first error-looking line.
    local first; first=$(grep -m1 -A1 '^failed ' "$out/$name.log" | tr '\n' ' ')
    [ -z "$first" ] && first=$(grep -m1 -E '[Ee]rror|[Ee]xception|CUDA unavailable|FAIL' "$out/$name.log")
    first=$(echo "$first" | tr -s ' ' | cut -c1-200)
    [ -n "$first" ] && note="$note: $first"
  fi
  row "$name" "$result" "$secs" "$note"
  tail -n 6 "$out/$name.log"
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
export work out here
export -f cli tests

device() {
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0))" || true
  cli info
}
export -f device
stage device 40 10 bash -c device
cp "$out/device.log" "$out/info.txt" 2>/dev/null
# CUDASWA_GPU_REHEARSE=1 goes on without a GPU: to rehearse the stages, limits and summary on any machine.
if grep -q "CUDA unavailable" "$out/device.log" && [ "${CUDASWA_GPU_REHEARSE:-}" != 1 ]; then
  row stop failed "$(elapsed)" "$(grep -m1 'CUDA unavailable' "$out/device.log" | cut -c1-160)"
  exit 1
fi

stage warm-up 90 20 bash -c 'cli bench --device cuda --prepare-only --models resnet20,resnet110,wrn28x10 --json "$out/warm-up.json"'

stage gpu-tests 150 40 env CUDASWA_REQUIRE_GPU=1 CUDASWA_LAUNCH_BLOCKING=1 bash -c 'tests --filter "TestCategory=Gpu"'

bench_pair() { # $1 = "" or --tf32, $2 = models, $3 = suffix
  cli bench --device cuda --models "$2" $1 --json "$out/bench-cudaswa-$3.json" || return $?
  if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    python3 "$here/pytorch/bench_torch.py" --device cuda --models "$2" $1 --json "$out/bench-pytorch-$3.json" || return $?
    python3 "$here/pytorch/compare.py" "$out/bench-cudaswa-$3.json" "$out/bench-pytorch-$3.json" | tee "$out/compare-$3.txt"
  else
    echo "no python3 with CUDA PyTorch: baseline skipped"
  fi
}
export -f bench_pair
stage bench 120 40 bash -c 'bench_pair "" resnet20,resnet110,wrn28x10 cuda'
stage bench-tf32 80 30 bash -c 'bench_pair --tf32 resnet20,resnet110 cuda-tf32'

stage train 120 40 bash -c 'cli train --preset quick --device cuda --out "$work/run" && cp "$work/run/summary.json" "$out/train-quick-summary.json"'

if [ "$mode" != "--quick" ]; then
  stage all-tests 240 60 bash -c tests
fi
bad=$(printf '%s\n' "${rows[@]}" | awk '$2 == "failed" || $2 == "timeout"' | wc -l)
row done "$([ "$bad" -eq 0 ] && echo ok || echo failed)" "$(elapsed)" "$bad stage(s) failed or timed out; logs in $out"
cat "$summary"
[ "$bad" -eq 0 ]
