#!/usr/bin/env bash
# Training speed against PyTorch, side by side in one run: the same model, data, batch size,
# optimizer (Adam 1e-3) and epochs, gpuml's `train` against ../shared/bench/torch_fmnist.py.
# Prints seconds per epoch (training loop only, both sides), test accuracy and the ratio
# gpuml/torch (below 1: gpuml is faster).
#
#   bash bench/train_vs_torch.sh                       # mlp and cnn, 1 epoch, all threads
#   MODELS=cnn EPOCHS=2 TORCH_THREADS=1 bash bench/train_vs_torch.sh
#   PRECISION=bf16 bash bench/train_vs_torch.sh        # gpuml --precision bf16 vs torch.autocast bf16
#
# PyTorch 1.13 from Debian (python3-torch) is run with /usr/bin/python3; on 2 cores its script
# says it is fastest with 1 thread, so by default torch runs with 1 and with all threads, and the
# better of the two is the peer.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
peer="${PEER:-$root/../shared/bench/torch_fmnist.py}"
models="${MODELS:-mlp cnn}"
epochs="${EPOCHS:-1}"
threads="${THREADS:-$(nproc)}"
torch_threads="${TORCH_THREADS:-1 $(nproc)}"
batch="${BATCH:-128}"
data="${DATA:-/usr/share/datasets/fashion-mnist}"
python="${PYTHON:-/usr/bin/python3}"
precision="${PRECISION:-fp32}"
# bf16: the peer script runs under torch.autocast(bfloat16) (bench/torch_autocast_bf16.py).
torch_cmd=("$python")
[[ "$precision" == bf16 ]] && torch_cmd=("$python" "$root/bench/torch_autocast_bf16.py")

[[ -x "$build_dir/gpuml" ]] || { echo "train_vs_torch: build gpuml first (bash tools/setup.sh)" >&2; exit 1; }
[[ -f "$peer" ]] || { echo "train_vs_torch: peer script $peer not found" >&2; exit 1; }
"$python" -c "import torch" 2>/dev/null || { echo "train_vs_torch: $python has no torch (apt-get install python3-torch)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); precision $precision"
printf "| model | batch | gpuml s/epoch | gpuml acc | torch s/epoch | torch threads | torch acc | gpuml/torch |\n"
printf "|---|---:|---:|---:|---:|---:|---:|---:|\n"
for model in $models; do
  "$build_dir/gpuml" train --model "$model" --epochs "$epochs" --batch-size "$batch" --threads "$threads" \
    --data "$data" --precision "$precision" --out "$tmp/$model" --quiet > "$tmp/$model.log"
  # metrics.csv: epoch_seconds is the training loop's wall time; test_accuracy after the last epoch.
  read -r g_s g_acc < <(python3 - "$tmp/$model/metrics.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(sum(float(r["epoch_seconds"]) for r in rows) / len(rows), rows[-1]["test_accuracy"])
PY
)
  best_s=""; best_t=""; best_acc=""
  for t in $torch_threads; do
    line="$("${torch_cmd[@]}" "$peer" "$model" "$epochs" --threads "$t" --batch-size "$batch" --data "$data")"
    s="$(sed -n 's/.*s_per_epoch=\([0-9.]*\).*/\1/p' <<< "$line")"
    acc="$(sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p' <<< "$line")"
    if [[ -z "$best_s" ]] || python3 -c "import sys; sys.exit(0 if $s < $best_s else 1)"; then
      best_s="$s"; best_t="$t"; best_acc="$acc"
    fi
  done
  ratio="$(python3 -c "print(f'{$g_s / $best_s:.2f}')")"
  printf "| %s | %s | %.2f | %s | %.2f | %s | %s | %s |\n" "$model" "$batch" "$g_s" "$g_acc" "$best_s" "$best_t" "$best_acc" "$ratio"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
