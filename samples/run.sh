#!/usr/bin/env bash
# Packs the engine as a NuGet package, then builds every sample against that PACKAGE (not the
# project: what a user of the package gets) and runs it. Each sample checks its own results and
# exits non-zero when they are wrong. Prints one line per sample and a final
# "samples: N passed, N failed". Exit code 0 only when every sample built and passed.
#   bash samples/run.sh [sample ...]      (default: every folder under samples/ with a .csproj)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
feed=$root/artifacts/packages
logs=$root/artifacts/samples
mkdir -p "$feed" "$logs"

# A fresh prerelease version per run: NuGet caches packages by id and version, so re-packing the
# same version would let the samples build against an older copy from the cache.
suffix="local.$(date -u +%Y%m%d%H%M%S)"
rm -f "$feed"/CudaSwa.*-local.*.nupkg "$feed"/CudaSwa.*-local.*.snupkg
echo "== packing the engine (version suffix $suffix) into artifacts/packages"
if ! dotnet pack src/CudaSwa -c Release -o "$feed" --version-suffix "$suffix" > "$logs/pack.log" 2>&1; then
  tail -n 30 "$logs/pack.log"
  echo "samples: 0 passed, 1 failed (the package did not build; see artifacts/samples/pack.log)"
  exit 1
fi
package=$(ls "$feed"/CudaSwa.*-"$suffix".nupkg)
version=${package##*/CudaSwa.}; version=${version%.nupkg}
echo "   $package"
# What the package must hold: the engine, its XML documentation, the README (symbols go to the .snupkg).
listing=$( (unzip -Z1 "$package" 2>/dev/null || python3 -m zipfile -l "$package" 2>/dev/null) | awk '{print $1}')
if [ -z "$listing" ]; then
  echo "   (neither unzip nor python3 here: package contents not checked)"
else
  for want in lib/net10.0/CudaSwa.Engine.dll lib/net10.0/CudaSwa.Engine.xml README.md; do
    if ! grep -qx "$want" <<< "$listing"; then
      echo "samples: 0 passed, 1 failed (the package lacks $want)"
      exit 1
    fi
  done
  [ -f "${package%.nupkg}.snupkg" ] || { echo "samples: 0 passed, 1 failed (no symbol package next to $package)"; exit 1; }
  echo "   holds CudaSwa.Engine.dll, CudaSwa.Engine.xml, README.md; symbols in $(basename "${package%.nupkg}.snupkg")"
fi

if [ $# -gt 0 ]; then samples=("$@"); else
  samples=(); for p in samples/*/*.csproj; do samples+=("$(basename "$(dirname "$p")")"); done
fi
passed=0; failed=0
for name in "${samples[@]}"; do
  dir=samples/$name
  log=$logs/$name.log
  start=$SECONDS
  if ! dotnet build "$dir" -c Release -p:CudaSwaVersion="$version" > "$logs/$name.build.log" 2>&1; then
    echo "FAIL  $name: does not build against the package (artifacts/samples/$name.build.log)"; tail -n 20 "$logs/$name.build.log"
    failed=$((failed + 1)); continue
  fi
  dll=$dir/bin/Release/net10.0/$name.dll
  if dotnet "$dll" > "$log" 2>&1; then
    echo "ok    $name ($((SECONDS - start)) s)"; sed 's/^/      /' "$log" | tail -n 8
    passed=$((passed + 1))
  else
    echo "FAIL  $name: exit code $? (artifacts/samples/$name.log)"; tail -n 20 "$log"
    failed=$((failed + 1))
  fi
done
echo "samples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
