#!/usr/bin/env bash
# Runs any command with CudaSwa pointed at the stand-in CUDA stack instead of a GPU: the test
# stand-in driver (host memory, the kernels emulated on the CPU after NVIDIA's NVRTC compiled
# them), the stand-in cuDNN and the stand-in cuBLAS (float64 loops), through the engine's own
# library overrides CUDASWA_LIBCUDA, CUDASWA_NVRTC, CUDASWA_CUBLAS and CUDASWA_CUDNN. Builds what
# it needs first: NVRTC (tests/tools/fetch-nvrtc.sh, when artifacts/nvrtc is missing), the test
# project, and the stand-ins (clang++-14, cached under the temp folder). Nothing here touches a GPU:
# `cudaswa info` under it says so. Much slower than a GPU, and than the CPU backend.
#
#   bash tests/tools/standin.sh dotnet src/CudaSwa.Cli/bin/Release/net10.0/cudaswa.dll train --model resnet8 \
#        --synthetic-train 1024 --synthetic-test 512 --epochs 3 --swa-start 2 --device cuda --out DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -lt 1 ]; then
  echo "usage: bash tests/tools/standin.sh COMMAND [ARGS...]   (e.g. dotnet src/CudaSwa.Cli/bin/Release/net10.0/cudaswa.dll info)" >&2
  exit 2
fi
command -v clang++-14 >/dev/null || { echo "standin.sh: clang++-14 is needed to build the stand-ins (apt-get install clang-14)." >&2; exit 3; }
if [ ! -f "$root/artifacts/nvrtc/lib/libnvrtc.so.11.2" ] && [ -z "${CUDASWA_NVRTC:-}" ]; then
  echo "standin.sh: fetching NVRTC (tests/tools/fetch-nvrtc.sh)" >&2
  bash "$root/tests/tools/fetch-nvrtc.sh" >&2 || { echo "standin.sh: NVRTC could not be fetched; set CUDASWA_NVRTC to a libnvrtc.so" >&2; exit 3; }
fi
echo "standin.sh: building the tests and the stand-ins (once; then cached)" >&2
env_file=$(mktemp)
trap 'rm -f "$env_file" "$env_file.log"' EXIT
if ! dotnet build "$root/tests/CudaSwa.Tests" -c Release -nologo -v quiet > "$env_file.log" 2>&1; then
  cat "$env_file.log" >&2
  echo "standin.sh: the test project did not build" >&2
  exit 3
fi
if ! CUDASWA_STANDIN_ENV="$env_file" dotnet "$root/tests/CudaSwa.Tests/bin/Release/net10.0/CudaSwa.Tests.dll" \
     --filter "FullyQualifiedName=CudaSwa.Tests.Cuda.StandInEnvironmentTests.StandInStackIsReadyForCommands" > "$env_file.log" 2>&1 || [ ! -s "$env_file" ]; then
  echo "standin.sh: the stand-ins could not be built or found:" >&2
  cat "$env_file.log" >&2
  exit 3
fi
# shellcheck disable=SC1090
source "$env_file"
echo "standin.sh: CUDA is the stand-in (no GPU): driver $CUDASWA_LIBCUDA" >&2
"$@"
