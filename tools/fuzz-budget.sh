#!/usr/bin/env bash
# Runs the fuzz targets that tools/fuzz.sh built, each until it has used a budget of CPU time
# (not wall time: a busy machine must not shorten the run), one target per core at a time, and
# prints per target: CPU seconds, executions, coverage (edges, features), corpus size, and the
# verdict. A target is stopped with SIGINT at its budget (libFuzzer prints its final stats and
# exits 72); any other exit is a finding, left in $build/tests/fuzz/artifacts/<target>/.
#
#   FUZZ_STAGE=build bash tools/fuzz.sh && bash tools/fuzz-budget.sh            # 300 CPU-s each
#   FUZZ_CPU_SECONDS=1500 bash tools/fuzz-budget.sh csv onnx safetensors        # chosen targets
#
# FUZZ_BUILD_DIR (default build-fuzz), FUZZ_CPU_SECONDS (default 300), FUZZ_JOBS (default: cores),
# FUZZ_NICE (default 10), FUZZ_LOG_DIR (default $build/budget-logs).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
budget="${FUZZ_CPU_SECONDS:-300}"
jobs="${FUZZ_JOBS:-$(nproc)}"
logs="${FUZZ_LOG_DIR:-$build/budget-logs}"
fuzz="$build/tests/fuzz"
src="$root/tests/fuzz"
[[ -x "$fuzz/fuzz_csv" ]] || { echo "fuzz-budget: no targets in $fuzz: run FUZZ_STAGE=build bash tools/fuzz.sh" >&2; exit 2; }
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for t in "$fuzz"/fuzz_*; do [[ -x "$t" && -f "$t" ]] && targets+=("${t##*/fuzz_}"); done
fi
mkdir -p "$logs"
ticks=$(getconf CLK_TCK)

# CPU seconds used so far by a process (user + system, from /proc/PID/stat).
cpu_of() { awk -v t="$ticks" '{ sub(/^.*\) /, ""); print int(($12 + $13) / t) }' "/proc/$1/stat" 2> /dev/null || echo -1; }

run_one() {
  local name="$1" log="$logs/$1.log" corpora=("$fuzz/corpus/$1" "$src/corpus/$1")
  [[ -d "$src/regressions/$1" ]] && corpora+=("$src/regressions/$1")
  mkdir -p "$fuzz/corpus/$1" "$fuzz/artifacts/$1"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 nice -n "${FUZZ_NICE:-10}" \
    "$fuzz/fuzz_$1" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$fuzz/artifacts/$1/" "${corpora[@]}" > "$log" 2>&1 &
  local pid=$! used=0
  while kill -0 "$pid" 2> /dev/null; do
    used=$(cpu_of "$pid")
    if (( used >= budget )); then kill -INT "$pid"; break; fi
    sleep 2
  done
  local rc=0
  wait "$pid" || rc=$?
  local verdict=clean
  [[ $rc -eq 0 || $rc -eq 72 ]] || verdict="FINDING (exit $rc, see $log)"
  local status execs
  status=$(grep -E '^#[0-9]+' "$log" | tail -1)
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$used" "${execs:-?}" \
    "$(grep -o 'cov: [0-9]*' <<< "$status" | awk '{print $2}')" \
    "$(grep -o 'ft: [0-9]*' <<< "$status" | awk '{print $2}')" \
    "$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' <<< "$status" | awk '{print $2}')" "$verdict"
  [[ "$verdict" == clean ]]
}

echo "fuzz-budget: ${#targets[@]} targets, $budget CPU-s each, $jobs at a time, logs in $logs"
echo "| target | CPU s | executions | edges (cov) | features (ft) | corpus (units/bytes) | verdict |"
echo "|---|---|---|---|---|---|---|"
status=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if (( running >= jobs )); then wait -n || status=1; running=$((running - 1)); fi
done
while (( running > 0 )); do wait -n || status=1; running=$((running - 1)); done
exit $status
