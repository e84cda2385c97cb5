#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz: one per reader of user data) with clang, ASan and
# UBSan in their own build directory, then runs each for FUZZ_SECONDS on its corpus
# (`ctest -L fuzz`). A crash, sanitizer report, leak or timeout fails the run; the input that
# did it is left in $build/tests/fuzz/artifacts/<target>/.
#
#   bash tools/fuzz.sh                           # CI: a clean build, 20 s per target
#   FUZZ_SECONDS=300 FUZZ_JOBS=1 bash tools/fuzz.sh   # longer, one target at a time
#
# FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (targets run at once, default: all cores),
# BUILD_JOBS (compile jobs, default: all cores), FUZZ_CLEAN=0 to reuse an existing build,
# FUZZ_STAGE=build|run (default both: e.g. build under a shared lock, then run outside it).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${FUZZ_SECONDS:-20}"
cores="$(nproc)"

# What the fuzz step needs beyond the project's usual packages (tools/setup.sh installs those).
clang_packages="clang libclang-rt-14-dev"
project_packages="cmake make pkg-config libdnnl-dev libfmt-dev nlohmann-json3-dev libcli11-dev zlib1g-dev \
libzip-dev libonnx-dev libprotobuf-dev libpng-dev libjpeg-dev libutf8proc-dev"
missing=()
for tool in clang clang++ cmake pkg-config; do
  command -v "$tool" > /dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  probe="$(mktemp -d)"
  trap 'rm -rf "$probe"' EXIT
  printf '#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const unsigned char*, std::size_t) { return 0; }\n' \
    > "$probe/probe.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2> "$probe/log" ||
    missing+=("the libFuzzer runtime (clang++ -fsanitize=fuzzer fails: $(head -c 300 "$probe/log"))")
  printf '#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n' > "$probe/omp.cpp"
  clang++ -fopenmp "$probe/omp.cpp" -o "$probe/omp" 2> /dev/null || missing+=("OpenMP for clang")
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "fuzz: missing: ${missing[*]}" >&2
  echo "fuzz: install (Debian 12): apt-get install -y $clang_packages libomp-14-dev" >&2
  echo "fuzz: and the project's packages: apt-get install -y $project_packages" >&2
  exit 2
fi

stage="${FUZZ_STAGE:-all}"
start=$(date +%s)
if [[ "$stage" != run ]]; then
  if [[ "${FUZZ_CLEAN:-1}" == 1 ]]; then rm -rf "$build"; fi
  mkdir -p "$build"
  # Only what the fuzz targets need: no CUDA plugin, no tests, no benchmarks, no Python module.
  generator=(); command -v ninja > /dev/null && generator=(-G Ninja)
  CC=clang CXX=clang++ cmake "${generator[@]}" -S "$root" -B "$build" -DGPUML_FUZZ=ON -DGPUML_CUDA=OFF -DGPUML_BUILD_TESTS=OFF \
    -DGPUML_BUILD_BENCH=OFF -DGPUML_PYTHON=OFF -DGPUML_FUZZ_SECONDS="$seconds" > "$build/configure.log" ||
    { cat "$build/configure.log" >&2; echo "fuzz: configure failed (packages: $project_packages)" >&2; exit 2; }
  cmake --build "$build" --target gpuml_fuzz -j "${BUILD_JOBS:-$cores}"
  echo "fuzz: built the targets in $(($(date +%s) - start)) s"
  [[ "$stage" == build ]] && exit 0
else
  cmake -S "$root" -B "$build" -DGPUML_FUZZ_SECONDS="$seconds" > "$build/configure.log"
fi
built=$(date +%s)
echo "fuzz: running each target for $seconds s"
status=0
ctest --test-dir "$build" -L fuzz --output-on-failure -j "${FUZZ_JOBS:-$cores}" || status=$?
echo "fuzz: build $((built - start)) s, runs $(($(date +%s) - built)) s"
if [[ $status -ne 0 ]]; then
  echo "fuzz: a target failed; its input is in $build/tests/fuzz/artifacts/<target>/ -- add it to" \
       "tests/fuzz/regressions/<target>/ with the fix" >&2
fi
exit $status
