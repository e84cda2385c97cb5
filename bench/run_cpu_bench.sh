#!/usr/bin/env bash
# Runs gpuml_bench on the CPU and prints GFLOP/s per library with the ratios gpuml/oneDNN and
# gpuml/OpenBLAS (bench/ratio_table.py).
#
# All providers run in one process with their repetitions randomly interleaved, so that a change
# in machine load during the run (other jobs on a shared machine) hits every provider alike; the
# table reports medians. OpenBLAS's idle threads are told to sleep at once instead of spinning
# for ~0.1 s after each call, so that they do not steal cores from the next benchmark.
#
#   bash bench/run_cpu_bench.sh                 # build dir ./build, JSON in build/bench_results/
#   THREADS=1 bash bench/run_cpu_bench.sh       # every library on one thread (OpenMP and OpenBLAS)
#   MIN_TIME=0.5 REPS=9 FILTER=matmul bash bench/run_cpu_bench.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
bench="$build_dir/bench/gpuml_bench"
min_time="${MIN_TIME:-0.1}"
reps="${REPS:-5}"
filter="${FILTER:-.}"
out_dir="${OUT_DIR:-$build_dir/bench_results}"

if [[ ! -x "$bench" ]]; then
  echo "run_cpu_bench: $bench not found; build it first: ninja -C $build_dir gpuml_bench" >&2
  exit 1
fi
# Same thread count for everyone: gpuml and oneDNN use OpenMP, OpenBLAS its own pthreads.
if [[ -n "${THREADS:-}" ]]; then
  export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
fi
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
mkdir -p "$out_dir"
file="$out_dir/cpu_$(date -u +%Y%m%dT%H%M%SZ)_threads-${THREADS:-all}.json"

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc --all) cores;" \
  "threads: ${THREADS:-all}; load: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%d)"
"$bench" --benchmark_filter="$filter" --benchmark_min_time="$min_time" \
  --benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true --benchmark_format=json \
  --benchmark_out="$file" --benchmark_out_format=json > /dev/null
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); raw results: $file"
python3 "$root/bench/ratio_table.py" "$file"
