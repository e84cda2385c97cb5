#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, the CUDA toolkit and no network, build gpuml for
# the local GPU, run the whole test suite (the `cuda` label included), then benchmark side by side
# with PyTorch (python3 with torch): matmul TFLOP/s (bf16, tf32; 4096^3 and 8192^3) and training
# seconds per epoch (mlp and cnn, batch 128 and 1024, Adam; fp32, and --precision bf16 against
# torch.autocast bf16) against torch eager and torch.compile.
# Prints a summary table last and writes the full results as markdown into the results directory.
#
#   bash tools/gpu-check.sh [RESULTS_DIR]          # default bench/results/ (or $GPU_CHECK_RESULTS)
#   DATA=/path/to/fashion-mnist bash tools/gpu-check.sh
#
# Environment: BUILD_DIR (default build-gpu), DATA (Fashion-MNIST IDX files; default
# data/fashion-mnist in the working tree, then /usr/share/datasets/fashion-mnist, else synthetic
# data of the same shapes), EPOCHS (default 1), PYTHON (default python3), SKIP_TESTS=1, JOBS,
# PRECISIONS (default "fp32 bf16"), STAGES (default "test matmul fusion train stream": the parts to
# run after the build; the report of each call goes to its own file in RESULTS_DIR), and for the
# train stage MODELS (default "mlp cnn") and BATCHES (default "128 1024"); GPUML_TRAIN_FLAGS adds
# train flags (e.g. --no-cuda-graphs, to time eager launches against the default CUDA-graph replay).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
results="${1:-${GPU_CHECK_RESULTS:-$root/bench/results}}"
build_dir="${BUILD_DIR:-$root/build-gpu}"
epochs="${EPOCHS:-1}"
python="${PYTHON:-python3}"
jobs="${JOBS:-$(nproc)}"
peer="$root/../shared/bench/torch_fmnist.py"
[[ -f "$peer" ]] || peer="$root/bench/torch_fmnist.py"
mkdir -p "$results"
stamp="$(date +%Y%m%d-%H%M%S)"
report="$results/gpu-check-$stamp.md"
summary="$(mktemp)"
work="$(mktemp -d)"
trap 'rm -rf "$work" "$summary"' EXIT

note() { echo "== $*"; }
# STAGES picks what runs after the (incremental) build, so that each part fits in a time-limited
# session: e.g. STAGES=test, then STAGES="matmul fusion stream", then STAGES=train PRECISIONS=fp32.
stages="${STAGES:-test matmul fusion train stream}"
stage() { [[ " $stages " == *" $1 "* ]]; }
md() { echo "$*" >> "$report"; }

command -v nvidia-smi > /dev/null || { echo "gpu-check: nvidia-smi not found: no NVIDIA driver here" >&2; exit 1; }
export PATH="$PATH:/usr/local/cuda/bin"
command -v nvcc > /dev/null || { echo "gpu-check: nvcc not found (install the CUDA toolkit)" >&2; exit 1; }

gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n1)"
cuda_version="$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
torch_version="$("$python" -c 'import torch; print(torch.__version__, torch.version.cuda)' 2> /dev/null || echo none)"
{
  echo "# gpuml GPU check, $stamp"
  echo
  echo "- GPU: $gpu (name, driver, memory)"
  echo "- CUDA toolkit: $cuda_version; PyTorch: $torch_version"
  echo "- commit: $(git rev-parse --short HEAD 2> /dev/null || echo unknown)"
  echo
} > "$report"

note "configure for the local GPU (native architecture) in $build_dir"
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPUML_WERROR=ON -DGPUML_CUDA=ON \
  -DGPUML_CUDA_ARCHITECTURES=native > "$work/configure.log"
note "build ($jobs jobs)"
build_start=$(date +%s)
cmake --build "$build_dir" -j "$jobs" > "$work/build.log" 2>&1 || { tail -n 50 "$work/build.log"; exit 1; }
md "- build: $(( $(date +%s) - build_start )) s"
"$build_dir/gpuml" info | tee "$work/info.txt" | head -n 20
grep -q "^CUDA: *loaded" "$work/info.txt" || { echo "gpu-check: the CUDA plugin did not load (see gpuml info above)" >&2; exit 1; }
md ""; md '```'; cat "$work/info.txt" >> "$report"; md '```'

tests_status="not run"
if stage test && [[ -z "${SKIP_TESTS:-}" ]]; then
  note "tests (ctest, every label, cuda included)"
  if ctest --test-dir "$build_dir" -j "$jobs" --output-on-failure > "$work/ctest.log" 2>&1; then tests_status="passed"; else tests_status="FAILED"; fi
  tail -n 5 "$work/ctest.log"
  skipped="$(grep -c 'Skipped\|SKIPPED' "$work/ctest.log" || true)"
  md ""; md "## Tests: $tests_status"; md ""; md '```'; tail -n 40 "$work/ctest.log" >> "$report"; md '```'
  echo "tests|$tests_status ($(grep -m1 'tests passed' "$work/ctest.log" || echo '?'); $skipped skipped lines)" >> "$summary"
fi

if stage matmul; then
note "matmul: gpuml (cuBLASLt) vs torch.matmul"
"$build_dir/gpuml_bench" --benchmark_filter='cuda_matmul/bf16' --benchmark_format=json > "$work/mm_bf16.json"
"$build_dir/gpuml_bench" --benchmark_filter='cuda_matmul/tf32' --benchmark_format=json > "$work/mm_tf32.json"
"$python" - "$work" >> "$work/mm.txt" << 'PY'
import json, sys, torch
work = sys.argv[1]
def gpuml(path):
    # Names read cuda_matmul/<dtype>/<n>/real_time; the TFLOPs counter is already a rate.
    return {int(b["name"].split("/")[2]): b.get("TFLOPs", float("nan")) for b in json.load(open(path))["benchmarks"]}
def torch_tflops(n, dtype, tf32):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.rand(n, n, device="cuda", dtype=dtype); b = torch.rand(n, n, device="cuda", dtype=dtype)
    for _ in range(3): torch.matmul(a, b)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    iters = 20
    start.record()
    for _ in range(iters): torch.matmul(a, b)
    end.record(); torch.cuda.synchronize()
    return 2 * n ** 3 * iters / (start.elapsed_time(end) / 1e3) / 1e12
for label, path, dtype, tf32 in (("bf16", "mm_bf16.json", torch.bfloat16, False), ("tf32", "mm_tf32.json", torch.float32, True)):
    g = gpuml(f"{work}/{path}")
    for n in (4096, 8192):
        t = torch_tflops(n, dtype, tf32)
        print(f"matmul {label} {n}^3|{g.get(n, float('nan')):.1f}|{t:.1f}|{g.get(n, float('nan')) / t:.2f}|>= 0.95")
PY
md ""; md "## matmul TFLOP/s (gpuml | torch | ratio | target)"; md ""
md "| case | gpuml | torch | gpuml/torch | target |"; md "|---|---:|---:|---:|---|"
sed 's/^/| /; s/|/ | /g; s/$/ |/' "$work/mm.txt" >> "$report"
cat "$work/mm.txt" >> "$summary"

fi

if stage fusion; then
note "fusion: planned mlp/cnn steps on the GPU, fused (cuBLASLt epilogues) vs unfused"
"$build_dir/gpuml_bench" --benchmark_filter='fusion/cuda' --benchmark_min_time=0.2 --benchmark_repetitions=5 \
  --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
  --benchmark_format=json > "$work/fusion.json" || echo "gpu-check: fusion benchmark failed" >&2
"$python" "$root/bench/ratio_table.py" "$work/fusion.json" > "$work/fusion.txt" 2>&1 || true
md ""; md "## Fusion on the GPU (bench/fusion_bench.cpp)"; md ""; md '```'; cat "$work/fusion.txt" >> "$report"; md '```'
sed -n 's/^fusion\/\([^ ]*\) *\([^ ]*\) *\([^ ]*\) *\([^ ]*\).*/fusion \1 fused\/unfused|\4/p' "$work/fusion.txt" >> "$summary"

fi

if stage train; then
# Fashion-MNIST, or same-shaped synthetic IDX files (timing only: accuracies are then meaningless).
data="${DATA:-}"
for d in "$root/data/fashion-mnist" /usr/share/datasets/fashion-mnist; do
  [[ -z "$data" && -f "$d/train-images-idx3-ubyte.gz" ]] && data="$d"
done
if [[ -z "$data" ]]; then
  data="$work/synthetic-fmnist"
  note "no Fashion-MNIST: synthetic data of the same shapes in $data"
  "$python" - "$data" << 'PY'
import gzip, os, struct, sys, numpy as np
d = sys.argv[1]; os.makedirs(d, exist_ok=True); rng = np.random.default_rng(0)
for split, n in (("train", 60000), ("t10k", 10000)):
    with gzip.open(f"{d}/{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes())
    with gzip.open(f"{d}/{split}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + rng.integers(0, 10, n, dtype=np.uint8).tobytes())
PY
  md ""; md "Training data: synthetic (same shapes as Fashion-MNIST; accuracies are meaningless)."
fi

note "training: gpuml --device cuda vs torch eager and torch.compile"
# bf16: gpuml --precision bf16 against the peer under torch.autocast (bench/torch_peer.py --bf16).
precisions="${PRECISIONS:-fp32 bf16}"
md ""; md "## Training, $epochs epoch(s), Adam 1e-3 (seconds per epoch)"; md ""
md "| precision | model | batch | gpuml s/epoch | gpuml acc | torch eager | torch.compile | gpuml/eager (<= 0.5) | gpuml/compile (<= 0.8) |"
md "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for precision in $precisions; do
  peer_cmd=("$python" "$peer")
  [[ "$precision" == bf16 ]] && peer_cmd=("$python" "$root/bench/torch_peer.py" --bf16 "$peer")
  for model in ${MODELS:-mlp cnn}; do
    for batch in ${BATCHES:-128 1024}; do
      run="$work/run-$precision-$model-$batch"
      # GPUML_TRAIN_FLAGS: extra train flags, e.g. --no-cuda-graphs to time eager launches.
      "$build_dir/gpuml" train --device cuda --model "$model" --epochs "$epochs" --batch-size "$batch" \
        --precision "$precision" --data "$data" --out "$run" --quiet ${GPUML_TRAIN_FLAGS:-} > "$run.log" 2>&1 \
        || { tail -n 20 "$run.log"; echo "gpu-check: gpuml train failed" >&2; }
      grep -h "CUDA graphs" "$run.log" | sed "s/^/- $precision $model b$batch: /" >> "$work/graph-notes.md" || true
      read -r g_s g_acc < <("$python" - "$run/metrics.csv" << 'PY' || echo "nan nan"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(sum(float(r["epoch_seconds"]) for r in rows) / len(rows), rows[-1]["test_accuracy"])
PY
)
      peer_s() { "${peer_cmd[@]}" "$model" "$epochs" --device cuda --batch-size "$batch" --data "$data" "$@" 2>/dev/null \
        | sed -n 's/.*s_per_epoch=\([0-9.]*\).*/\1/p'; }
      e_s="$(peer_s)"; c_s="$(peer_s --compile)"
      row="$("$python" -c "
g, e, c = float('$g_s'), float('${e_s:-nan}'), float('${c_s:-nan}')
print(f'train $precision $model b$batch|{g:.2f}|{e:.2f}|{c:.2f}|{g / e:.2f}|{g / c:.2f}')")"
      IFS='|' read -r _ gs es cs re rc <<< "$row"
      md "| $precision | $model | $batch | $gs | $g_acc | $es | $cs | $re | $rc |"
      echo "$row" >> "$summary"
    done
  done
done
if [[ -s "$work/graph-notes.md" ]]; then md ""; md "CUDA graph replay per run:"; md ""; cat "$work/graph-notes.md" >> "$report"; fi

fi

if stage stream; then
# Issue 5 on the GPU: a streamed run whose batches are built in pinned memory and copied one step
# ahead on a copy stream; the target is data wait < 10% of step time.
note "streaming: 2M synthetic records from shards on cuda"
"$build_dir/gpuml" data pack synthetic:2000000 "$work/shards" --shard-size 64M --quiet > /dev/null
md ""; md "## Streaming from shards on the GPU (mlp, batch 128, 1 epoch, --data-memory-limit 512M)"; md ""
md "| run | samples/s | data_wait_fraction (< 0.10) |"
md "|---|---:|---:|"
"$build_dir/gpuml" train --device cuda --model mlp --epochs 1 --batch-size 128 --data "$work/shards" \
  --data-memory-limit 512M --out "$work/run-stream" --quiet > "$work/run-stream.log" 2>&1 \
  || { tail -n 20 "$work/run-stream.log"; echo "gpu-check: streamed gpuml train failed" >&2; }
read -r st_sps st_wait < <("$python" - "$work/run-stream/metrics.csv" << 'PY' || echo "nan nan"
import csv, sys
r = list(csv.DictReader(open(sys.argv[1])))[-1]
print(f'{float(r["samples_per_second"]):.0f}', f'{float(r["data_wait_fraction"]):.4f}')
PY
)
md "| streamed, pinned + copy stream | $st_sps | $st_wait |"
echo "stream mlp b128|$st_sps samples/s|data wait $st_wait" >> "$summary"
fi


echo
echo "full results: $report"
echo
echo "== summary (gpuml vs PyTorch on $gpu)"
column -t -s '|' "$summary"
