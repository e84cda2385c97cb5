#!/usr/bin/env bash
# GPT training on CPU against PyTorch, side by side in one run: ../shared/bench/torch_gpt.py's
# cpu-small preset (4 layers, 4 heads, 128 wide, context 64, batch 12, AdamW betas 0.9,0.99 with
# weight decay 0.1 on 2-d weights, warm-up 100 then cosine 1e-3 -> 1e-4, clip 1.0) on tiny
# Shakespeare, and gpuml's `train --model cpu-small` with the same recipe. Prints ms per step,
# validation loss, peak RSS and the ratio gpuml/peer (below 1: gpuml is faster), one row per peer.
#
#   bash bench/gpt_vs_torch.sh                     # 2000 steps, every peer, threads "1 N"
#   STEPS=300 PEERS=torch1.13 bash bench/gpt_vs_torch.sh
#   PRECISION=bf16 bash bench/gpt_vs_torch.sh      # mixed bf16 on both sides (gpuml --precision bf16,
#                                                  # the peer's --dtype bf16: torch.autocast on CPU)
#
# ms/step: gpuml's is the mean over all steps (metrics.csv step_seconds / steps, the first
# step's planning included); the peer's is its median after 10 warm-up steps (its own report).
# Validation loss: gpuml's over every validation window after the last step, the peer's the mean
# of 50 random validation batches. Peak RSS: /usr/bin/time's maximum resident set for gpuml,
# ru_maxrss for the peer. Peers as in bench/train_vs_torch.sh: torch1.13 (Debian), torch2 (PyPI,
# eager), torch2-compile (inductor; its compile time is inside the peer's warm-up steps).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
peer="${PEER:-$root/../shared/bench/torch_gpt.py}"
data="${DATA:-$root/../shared/data/tinyshakespeare.txt}"
steps="${STEPS:-2000}"
threads="${THREADS:-1 $(nproc)}"
torch_threads="${TORCH_THREADS:-1 $(nproc)}"
peers="${PEERS:-torch1.13 torch2 torch2-compile}"
precision="${PRECISION:-fp32}"
[[ "$precision" == fp32 || "$precision" == bf16 ]] || { echo "gpt_vs_torch: PRECISION is fp32 or bf16" >&2; exit 2; }

[[ -x "$build_dir/gpuml" ]] || { echo "gpt_vs_torch: build gpuml first (bash tools/setup.sh)" >&2; exit 1; }
[[ -f "$peer" ]] || { echo "gpt_vs_torch: peer script $peer not found" >&2; exit 1; }
[[ -f "$data" ]] || { echo "gpt_vs_torch: corpus $data not found" >&2; exit 1; }

peer_python() {
  case "$1" in
    torch1.13) echo /usr/bin/python3 ;;
    torch2 | torch2-compile) bash "$root/bench/torch2_venv.sh" ;;
    *) echo "gpt_vs_torch: unknown peer '$1' (torch1.13, torch2, torch2-compile)" >&2; exit 2 ;;
  esac
}
declare -A python_of
for p in $peers; do python_of[$p]="$(peer_python "$p")"; done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%Y-%m-%d); commit: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown); cpu-small, $steps steps, $precision"

g_ms=""; g_t=""; g_loss=""; g_rss=""
for t in $threads; do
  /usr/bin/time -f "%M" -o "$tmp/rss" "$build_dir/gpuml" train --data "$data" --model cpu-small --steps "$steps" \
    --batch-size 12 --optimizer adamw --lr 1e-3 --betas 0.9,0.99 --weight-decay 0.1 \
    --weight-decay-params matrices --clip-grad-norm 1 --schedule cosine:1e-4,warmup:100 --seed 1337 \
    --threads "$t" --device cpu --precision "$precision" --out "$tmp/gpuml-$t" --quiet > "$tmp/gpuml.log"
  read -r ms loss < <(python3 - "$tmp/gpuml-$t/metrics.csv" "$steps" << 'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(sum(float(r["step_seconds"]) for r in rows) / int(sys.argv[2]) * 1e3, rows[-1]["val_loss"])
PY
  )
  rss="$(( $(tail -1 "$tmp/rss") / 1024 ))"
  echo "  gpuml, $t threads: $ms ms/step, val loss $loss, peak RSS $rss MiB" >&2
  if [[ -z "$g_ms" ]] || python3 -c "import sys; sys.exit(0 if $ms < $g_ms else 1)"; then
    g_ms="$ms"; g_t="$t"; g_loss="$loss"; g_rss="$rss"
  fi
done

printf "| peer | gpuml ms/step | threads | val loss | peak MiB | peer ms/step | threads | val loss | peak MiB | gpuml/peer |\n"
printf "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
for p in $peers; do
  extra=()
  [[ "$p" == torch2-compile ]] && extra+=(--compile)
  best_ms=""; best_t=""; best_loss=""; best_rss=""
  for t in $torch_threads; do
    line="$("${python_of[$p]}" "$peer" --preset cpu-small --data "$data" --iters "$steps" --threads "$t" \
      --dtype "$precision" "${extra[@]}" 2> "$tmp/peer.err")" || { cat "$tmp/peer.err" >&2; exit 1; }
    ms="$(sed -n 's/.*ms_per_step=\([0-9.]*\).*/\1/p' <<< "$line")"
    echo "  $p, $t threads: $line" >&2
    if [[ -z "$best_ms" ]] || python3 -c "import sys; sys.exit(0 if $ms < $best_ms else 1)"; then
      best_ms="$ms"; best_t="$t"
      best_loss="$(sed -n 's/.*val_loss=\([0-9.]*\).*/\1/p' <<< "$line")"
      best_rss="$(sed -n 's/.*peak_mib=\([0-9.]*\).*/\1/p' <<< "$line")"
    fi
  done
  printf "| %s | %.1f | %s | %.4f | %s | %.1f | %s | %s | %s | %s |\n" "$p" "$g_ms" "$g_t" "$g_loss" "$g_rss" \
    "$best_ms" "$best_t" "$best_loss" "$best_rss" "$(python3 -c "print(f'{$g_ms / $best_ms:.2f}')")"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
