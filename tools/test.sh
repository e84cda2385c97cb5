#!/usr/bin/env bash
# Runs the whole test suite: the one test command of the README's quick start and of CI.
# Rebuilds first (a no-op when nothing changed) so that it never tests stale binaries.
#
#   bash tools/test.sh                 # every label: unit, ops, grad
#   bash tools/test.sh -L unit         # extra arguments go to ctest
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  echo "test: no build in $build_dir; run 'bash tools/setup.sh' first" >&2
  exit 1
fi
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}"
ctest --test-dir "$build_dir" --output-on-failure -j2 "$@"
