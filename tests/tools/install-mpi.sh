#!/usr/bin/env bash
# Installs MPICH from the machine's Debian packages (mpich: mpiexec and libmpich.so.12, the MPI
# ABI the engine binds to) for the Distributed tests, which start 2 and 3 ranks on this machine.
# Needs root and apt; does nothing when mpiexec is already there.
#
# Never fails the caller: where MPICH cannot be installed it says why and exits 0, and the
# Distributed tests are ignored with the reason.
# Usage: bash tests/tools/install-mpi.sh
set -uo pipefail
skip() { echo "install-mpi: skipped: $*"; exit 0; }

if command -v mpiexec >/dev/null && { [ -e /usr/lib/x86_64-linux-gnu/libmpich.so.12 ] || ldconfig -p 2>/dev/null | grep -qE 'libmpi(ch)?\.so\.12'; }; then
  echo "install-mpi: mpiexec (MPICH $(mpiexec --version 2>/dev/null | grep -m1 -oE "Version:[[:space:]]+[0-9.]+" | grep -oE "[0-9.]+$")) already installed"
  exit 0
fi
command -v apt-get >/dev/null || skip "no apt-get (not a Debian-like machine)"
[ "$(id -u)" -eq 0 ] || skip "not root (install MPICH yourself: apt-get install mpich)"

export DEBIAN_FRONTEND=noninteractive
install() { timeout 600 apt-get install -y --no-install-recommends mpich >/tmp/install-mpi.log 2>&1; }
if ! install; then
  echo "install-mpi: first try failed; refreshing the package lists"
  timeout 300 apt-get update >/dev/null 2>&1 || skip "apt-get update failed"
  install || skip "apt-get install mpich failed: $(tail -n 3 /tmp/install-mpi.log | tr '\n' ' ')"
fi
echo "install-mpi: installed mpiexec (MPICH $(mpiexec --version 2>/dev/null | grep -m1 -oE "Version:[[:space:]]+[0-9.]+" | grep -oE "[0-9.]+$"))"
