#!/usr/bin/env bash
# Puts NVIDIA's runtime compiler NVRTC 11.8 (Debian's non-free packages libnvrtc11.2 and
# libnvrtc-builtins11.8, ~16 MB) into artifacts/nvrtc/lib, so the tests can compile every kernel
# with the real NVIDIA compiler on a machine without a GPU. Uses the machine's own apt sources
# with the non-free component added, in a temporary directory: the system's sources, lists and
# package cache are left untouched, and nothing is installed.
#
# Never fails the caller: where the packages cannot be had (no apt, no network, not Debian), it
# says why and exits 0, and the NVRTC tests are ignored with that reason.
# Usage: bash tests/tools/fetch-nvrtc.sh [DEST]        (DEST defaults to artifacts/nvrtc)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-$root/artifacts/nvrtc}
packages=(libnvrtc11.2 libnvrtc-builtins11.8)

if [ -e "$dest/lib/libnvrtc.so.11.2" ] && [ -e "$dest/lib/libnvrtc-builtins.so.11.8" ]; then
  echo "fetch-nvrtc: NVRTC already in $dest/lib"
  exit 0
fi
skip() { echo "fetch-nvrtc: skipped: $*"; exit 0; }
command -v apt-get >/dev/null || skip "no apt-get (not a Debian-like machine)"
command -v dpkg >/dev/null || skip "no dpkg"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/parts" "$work/lists/partial" "$work/archives/partial" "$work/x"

# The machine's sources, with non-free added: deb822 files get their Components line replaced,
# one-line .list entries get the components appended.
n=0
for f in /etc/apt/sources.list.d/*.sources; do
  [ -e "$f" ] || continue
  sed -E 's/^Components:.*/Components: main contrib non-free non-free-firmware/' "$f" > "$work/parts/$(basename "$f")"
  n=$((n + 1))
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -e "$f" ] || continue
  grep -E '^deb ' "$f" | sed -E 's/^(deb( \[[^]]*\])? [^ ]+ [^ ]+) .*/\1 main contrib non-free non-free-firmware/' > "$work/parts/$(basename "$f" .list)-nonfree.list"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || skip "no apt sources found under /etc/apt"

opts=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$work/parts" -o "Dir::State::Lists=$work/lists"
      -o "Dir::Cache::archives=$work/archives" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
echo "fetch-nvrtc: reading package lists (non-free added, in $work)"
apt-get -qq "${opts[@]}" update > "$work/update.log" 2>&1 || { tail -n 5 "$work/update.log"; skip "apt-get update failed"; }
(cd "$work" && apt-get -qq "${opts[@]}" download "${packages[@]}") > "$work/download.log" 2>&1 \
  || { tail -n 5 "$work/download.log"; skip "apt-get download ${packages[*]} failed"; }
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/x" || skip "dpkg -x $deb failed"; done

mkdir -p "$dest/lib.tmp"
cp -a "$work"/x/usr/lib/x86_64-linux-gnu/libnvrtc* "$dest/lib.tmp/" || skip "the packages held no libnvrtc"
ls "$work"/*.deb | xargs -n1 basename > "$dest/lib.tmp/PACKAGES.txt"
rm -rf "$dest/lib" && mv "$dest/lib.tmp" "$dest/lib"
echo "fetch-nvrtc: NVRTC in $dest/lib:"
ls -l "$dest/lib"
