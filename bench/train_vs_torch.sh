#!/usr/bin/env bash
# Training speed against PyTorch, side by side in one run: the same model, data, batch size,
# optimizer (Adam 1e-3) and epochs, gpuml's `train` against ../shared/bench/torch_fmnist.py.
# Prints seconds per epoch (training loop only, both sides), test accuracy and the ratio
# gpuml/peer (below 1: gpuml is faster), one row per peer.
#
#   bash bench/train_vs_torch.sh                       # mlp and cnn, 1 epoch, every peer
#   MODELS=cnn EPOCHS=2 TORCH_THREADS=1 bash bench/train_vs_torch.sh
#   PRECISION=bf16 bash bench/train_vs_torch.sh        # gpuml --precision bf16 vs torch.autocast bf16
#   PEERS=torch1.13 bash bench/train_vs_torch.sh       # Debian's PyTorch only (no PyPI download)
#
# gpuml runs at its best thread count of THREADS and each peer (PEERS, default all three) at its
# best of TORCH_THREADS (both default "1 N" on N cores): on a busy 2-core machine one thread is
# often faster for both, since OpenMP threads then wait on each other.
#   torch1.13       Debian's python3-torch, under /usr/bin/python3
#   torch2          PyTorch 2.x from PyPI, eager, in a venv made by bench/torch2_venv.sh (outside
#                   the checkout, under ~/.cache/gpuml; also on Debian's /usr/bin/python3)
#   torch2-compile  the same with torch.compile (inductor, CPU); its graphs are compiled before the
#                   timed loop (bench/torch_peer.py), the compile time is reported
# The peer script runs through bench/torch_peer.py (bf16 autocast, compile warm-up).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
peer="${PEER:-$root/../shared/bench/torch_fmnist.py}"
models="${MODELS:-mlp cnn}"
epochs="${EPOCHS:-1}"
threads="${THREADS:-1 $(nproc)}"
torch_threads="${TORCH_THREADS:-1 $(nproc)}"
batch="${BATCH:-128}"
data="${DATA:-/usr/share/datasets/fashion-mnist}"
precision="${PRECISION:-fp32}"
peers="${PEERS:-torch1.13 torch2 torch2-compile}"

[[ -x "$build_dir/gpuml" ]] || { echo "train_vs_torch: build gpuml first (bash tools/setup.sh)" >&2; exit 1; }
[[ -f "$peer" ]] || { echo "train_vs_torch: peer script $peer not found" >&2; exit 1; }

peer_python() {  # the interpreter of a peer
  case "$1" in
    torch1.13) echo /usr/bin/python3 ;;
    torch2 | torch2-compile) bash "$root/bench/torch2_venv.sh" ;;
    *) echo "train_vs_torch: unknown peer '$1' (torch1.13, torch2, torch2-compile)" >&2; exit 2 ;;
  esac
}
declare -A python_of
for p in $peers; do
  python_of[$p]="$(peer_python "$p")"
  "${python_of[$p]}" -c "import torch" 2> /dev/null ||
    { echo "train_vs_torch: ${python_of[$p]} has no torch (for $p; Debian: apt-get install python3-torch)" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%Y-%m-%d); commit: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown); precision $precision; epochs $epochs"
for p in $peers; do
  echo "peer $p: $("${python_of[$p]}" -c 'import sys, torch; print(f"torch {torch.__version__} under {sys.executable} (Python {sys.version.split()[0]})")')"
done
printf "| model | batch | peer | gpuml s/epoch | gpuml threads | gpuml acc | peer s/epoch | peer threads | peer acc | gpuml/peer |\n"
printf "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n"
for model in $models; do
  g_s=""; g_t=""; g_acc=""
  for t in $threads; do
    "$build_dir/gpuml" train --model "$model" --epochs "$epochs" --batch-size "$batch" --threads "$t" \
      --data "$data" --precision "$precision" --out "$tmp/$model-$t" --quiet > "$tmp/$model.log"
    # metrics.csv: epoch_seconds is the training loop's wall time; test_accuracy after the last epoch.
    read -r s acc < <(python3 - "$tmp/$model-$t/metrics.csv" << 'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(sum(float(r["epoch_seconds"]) for r in rows) / len(rows), rows[-1]["test_accuracy"])
PY
    )
    if [[ -z "$g_s" ]] || python3 -c "import sys; sys.exit(0 if $s < $g_s else 1)"; then
      g_s="$s"; g_t="$t"; g_acc="$acc"
    fi
  done
  for p in $peers; do
    wrapper=("$root/bench/torch_peer.py")
    extra=()
    [[ "$precision" == bf16 ]] && wrapper+=(--precision bf16)
    [[ "$p" == torch2-compile ]] && extra+=(--compile)
    best_s=""; best_t=""; best_acc=""
    for t in $torch_threads; do
      line="$("${python_of[$p]}" "${wrapper[@]}" "$peer" "$model" "$epochs" --threads "$t" --batch-size "$batch" \
        --data "$data" "${extra[@]}" 2> "$tmp/peer.err")" || { cat "$tmp/peer.err" >&2; exit 1; }
      grep -h "compile time" "$tmp/peer.err" | sed "s/^/  ($p, $model, $t threads) /" >&2 || true
      s="$(sed -n 's/.*s_per_epoch=\([0-9.]*\).*/\1/p' <<< "$line")"
      acc="$(sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p' <<< "$line")"
      if [[ -z "$best_s" ]] || python3 -c "import sys; sys.exit(0 if $s < $best_s else 1)"; then
        best_s="$s"; best_t="$t"; best_acc="$acc"
      fi
    done
    ratio="$(python3 -c "print(f'{$g_s / $best_s:.2f}')")"
    printf "| %s | %s | %s | %.2f | %s | %s | %.2f | %s | %s | %s |\n" "$model" "$batch" "$p" "$g_s" "$g_t" "$g_acc" "$best_s" "$best_t" "$best_acc" "$ratio"
  done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
