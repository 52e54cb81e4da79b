#!/usr/bin/env bash
# The CLI as users install it: packs src/CudaSwa.Cli as a .NET tool into a temporary folder,
# installs it with `dotnet tool install --tool-path` from that folder, and runs the installed
# `cudaswa info` and a tiny `cudaswa train` (CPU, synthetic data). Ends with the line
# "tool: N passed, N failed" (one check per command) and exits 0 only when both passed.
set -u
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$(sed -nE 's:.*<VersionPrefix>([^<]+)</VersionPrefix>.*:\1:p' Directory.Build.props)
passed=0; failed=0
check() { # name, command...
  local name=$1; shift
  if "$@" > "$work/$name.log" 2>&1; then passed=$((passed + 1)); echo "tool: $name ok"
  else failed=$((failed + 1)); echo "tool: $name FAILED (exit $?); its output:"; tail -n 40 "$work/$name.log"; fi
}
if dotnet pack src/CudaSwa.Cli -c Release -o "$work/packages" > "$work/pack.log" 2>&1 &&
   dotnet tool install CudaSwa.Cli --version "$version" --tool-path "$work/tools" --add-source "$work/packages" > "$work/install.log" 2>&1; then
  echo "tool: CudaSwa.Cli $version packed and installed into a temporary tool path"
  check info "$work/tools/cudaswa" info
  check train "$work/tools/cudaswa" train --device cpu --model resnet8 --synthetic-train 256 --synthetic-test 128 --batch 64 \
    --epochs 2 --swa-start 1 --out "$work/run"
  if [ -f "$work/run/swa.safetensors" ]; then :; else [ "$failed" -gt 0 ] || { failed=$((failed + 1)); echo "tool: train wrote no swa.safetensors"; }; fi
else
  echo "tool: packing or installing CudaSwa.Cli failed:"; tail -n 40 "$work/pack.log" "$work/install.log" 2>/dev/null
  failed=2
fi
echo "tool: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
