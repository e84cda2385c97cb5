#!/usr/bin/env bash
# Runs gpuml_bench on the CPU and prints GFLOP/s per library with the ratios gpuml/oneDNN and
# gpuml/OpenBLAS. Each provider runs in its own process so that one library's idle threads
# (OpenBLAS pthreads, OpenMP workers spinning) do not steal cores from the next one.
#
#   bash bench/run_cpu_bench.sh                 # build dir ./build, JSON in build/bench_results/
#   BUILD_DIR=out MIN_TIME=0.5 REPS=5 bash bench/run_cpu_bench.sh
#   THREADS=1 bash bench/run_cpu_bench.sh       # every library on one thread (OpenMP and OpenBLAS)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
bench="$build_dir/bench/gpuml_bench"
min_time="${MIN_TIME:-0.2}"
reps="${REPS:-3}"
out_dir="${OUT_DIR:-$build_dir/bench_results}"
# Same thread count for everyone: gpuml and oneDNN use OpenMP, OpenBLAS its own pthreads.
if [[ -n "${THREADS:-}" ]]; then
  export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
fi

if [[ ! -x "$bench" ]]; then
  echo "run_cpu_bench: $bench not found; build it first: ninja -C $build_dir gpuml_bench" >&2
  exit 1
fi
mkdir -p "$out_dir"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc --all) cores;" \
  "threads: ${THREADS:-all}; load: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%d)"
files=()
for provider in gpuml onednn openblas; do
  file="$out_dir/cpu_${stamp}_t${THREADS:-all}_${provider}.json"
  "$bench" --benchmark_filter="/${provider}" --benchmark_min_time="$min_time" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_format=json --benchmark_out="$file" --benchmark_out_format=json > /dev/null
  files+=("$file")
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); raw results: ${files[*]}"
python3 "$root/bench/ratio_table.py" "${files[@]}"
