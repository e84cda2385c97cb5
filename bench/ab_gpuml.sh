#!/usr/bin/env bash
# Two builds of gpuml against each other, interleaved (A, B, A, B, ...) so that the machine's
# drift falls on both: the median training-loop seconds per epoch of each, and B/A. For
# refactors that must not slow training (issue 19: "median slowdown under 3%").
#
#   mkdir /tmp/a && cp build/gpuml build/libgpuml.so /tmp/a     # before the change
#   ... rebuild ...
#   A=/tmp/a B=build RUNS=5 bash bench/ab_gpuml.sh
#
# A and B: directories holding gpuml and libgpuml.so (each run uses its own library).
# MODELS (default mlp cnn; presets or JSON model files, e.g. bench/ab/layer_norm_mlp.json), EPOCHS (1),
# THREADS (all cores), RUNS (5), DATA (Fashion-MNIST).
set -euo pipefail
a="$(cd "${A:?A=dir of the first gpuml}" && pwd)"
b="$(cd "${B:?B=dir of the second gpuml}" && pwd)"
models="${MODELS:-mlp cnn}"
epochs="${EPOCHS:-1}"
threads="${THREADS:-$(nproc)}"
runs="${RUNS:-5}"
data="${DATA:-/usr/share/datasets/fashion-mnist}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Seconds per epoch of the training loop (metrics.csv's epoch_seconds), averaged over the epochs.
run_one() {  # dir model out
  LD_LIBRARY_PATH="$1" "$1/gpuml" train --model "$2" --epochs "$epochs" --threads "$threads" --device cpu \
    --data "$data" --out "$3" --quiet > /dev/null
  python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(sum(float(x['epoch_seconds']) for x in r)/len(r))" \
    "$3/metrics.csv"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A: $a; B: $b; $runs runs each, interleaved; $epochs epoch(s), $threads threads"
echo "| model | A median s/epoch | B median s/epoch | B/A | A runs | B runs |"
echo "|---|---:|---:|---:|---|---|"
for model in $models; do
  sa=(); sb=()
  for ((i = 0; i < runs; ++i)); do
    sa+=("$(run_one "$a" "$model" "$tmp/a-$(basename "$model")-$i")")
    sb+=("$(run_one "$b" "$model" "$tmp/b-$(basename "$model")-$i")")
  done
  python3 - "$model" "${sa[*]}" "${sb[*]}" << 'PY'
import statistics, sys
model, a, b = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ma, mb = statistics.median(a), statistics.median(b)
fmt = lambda v: " ".join(f"{x:.2f}" for x in v)
print(f"| {model} | {ma:.3f} | {mb:.3f} | {mb / ma:.3f} | {fmt(a)} | {fmt(b)} |")
PY
done
