#!/usr/bin/env bash
# Data parallelism on the CPU, side by side in one run, at the same global batch (2 x 64 = 128),
# the same model (gpuml's mlp and cnn presets), Adam 1e-3, Fashion-MNIST in memory:
#   gpuml 1 process x 2 threads, batch 128                       (the reference of the ratios)
#   gpuml 2 ranks x 1 thread, batch 64 each, under mpirun         (MPI plugin)
#   the same with --zero 1                                         (the update split over the ranks)
#   gpuml 2 ranks x 1 thread, batch 64 each, torchrun variables   (Gloo plugin)
#   PyTorch DDP, gloo backend, 2 ranks x 1 thread, batch 64 each  (bench/torch_ddp_peer.py, Debian's
#                                                                  torch 1.13 under /usr/bin/python3)
# Prints samples/s (global batch x steps / seconds of the training loop: gpuml's "s training",
# the peer's timed loop; both include their first step) and each one's ratio to gpuml's one
# process, then gpuml Gloo / PyTorch DDP; and each gpuml 2-rank run's all-reduce line (rank 0's):
# buckets per step, milliseconds per step inside the all-reduces, the share of that which ran while
# backward was still running, and how long the update waited for the last bucket. One run each: on
# a shared machine, look at the load.
#
#   bash bench/dist_vs_torch_ddp.sh                     # mlp 6000 steps, cnn 300 steps
#   MODELS=mlp MLP_STEPS=1000 bash bench/dist_vs_torch_ddp.sh
#   BUCKET_MB=0.1 bash bench/dist_vs_torch_ddp.sh       # gpuml's --bucket-mb (default: gpuml's)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
gpuml="$build_dir/gpuml"
models="${MODELS:-mlp cnn}"
mlp_steps="${MLP_STEPS:-6000}"
cnn_steps="${CNN_STEPS:-300}"
data="${DATA:-/usr/share/datasets/fashion-mnist}"
python="${TORCH_PYTHON:-/usr/bin/python3}"
port="${PORT:-29640}"
mpirun=(mpirun --oversubscribe -np 2)
[[ "$(id -u)" -eq 0 ]] && mpirun+=(--allow-run-as-root)

[[ -x "$gpuml" ]] || { echo "dist_vs_torch_ddp: build gpuml first (bash tools/setup.sh)" >&2; exit 1; }
for plugin in libgpuml_mpi.so libgpuml_gloo.so; do
  [[ -f "$build_dir/$plugin" ]] || { echo "dist_vs_torch_ddp: $build_dir/$plugin not built" >&2; exit 1; }
done
command -v mpirun > /dev/null || { echo "dist_vs_torch_ddp: no mpirun (Debian: openmpi-bin)" >&2; exit 1; }
"$python" -c "import torch.distributed as d; assert d.is_gloo_available()" 2> /dev/null ||
  { echo "dist_vs_torch_ddp: $python has no torch with gloo (Debian: python3-torch)" >&2; exit 1; }

bucket_flags=()
[[ -n "${BUCKET_MB:-}" ]] && bucket_flags=(--bucket-mb "$BUCKET_MB")
[[ -n "${BUCKET_MB:-}" ]] && ! "$gpuml" train --help | grep -q -- --bucket-mb &&
  { echo "dist_vs_torch_ddp: $gpuml has no --bucket-mb (built before gradient buckets)" >&2; exit 1; }

ratios=()
all_reduce_lines=()
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

seconds_of() {  # the "N s training" of a gpuml run's output
  grep -o '[0-9.]* s training' "$1" | head -n1 | cut -d' ' -f1
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)"
echo "peer: $("$python" -c 'import sys, torch; print(f"torch {torch.__version__} under {sys.executable}")')"
echo
echo "| model | steps | run | samples/s | vs gpuml 1 process x 2 threads |"
echo "|---|---:|---|---:|---:|"
for model in $models; do
  steps=$mlp_steps
  [[ "$model" == cnn ]] && steps=$cnn_steps
  common=(train --model "$model" --steps "$steps" --data "$data" --quiet)
  "$gpuml" "${common[@]}" --batch-size 128 --threads 2 --out "$tmp/$model-one" > "$tmp/$model-one.log" 2>&1
  "${mpirun[@]}" "$gpuml" "${common[@]}" --batch-size 64 --threads 1 "${bucket_flags[@]}" --out "$tmp/$model-mpi" \
    > "$tmp/$model-mpi.log" 2>&1
  "${mpirun[@]}" "$gpuml" "${common[@]}" --batch-size 64 --threads 1 "${bucket_flags[@]}" --zero 1 \
    --out "$tmp/$model-zero" > "$tmp/$model-zero.log" 2>&1
  for rank in 0 1; do
    RANK=$rank LOCAL_RANK=$rank WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$gpuml" "${common[@]}" --batch-size 64 --threads 1 "${bucket_flags[@]}" --out "$tmp/$model-gloo" \
      > "$tmp/$model-gloo-$rank.log" 2>&1 &
  done
  wait
  for log in "$tmp/$model-mpi.log" "$tmp/$model-zero.log" "$tmp/$model-gloo-0.log"; do
    line=$(grep -m1 '^all-reduce' "$log" || echo "no all-reduce line (a gpuml built before gradient buckets)")
    all_reduce_lines+=("$model: $line")
  done
  "$python" "$root/bench/torch_ddp_peer.py" "$model" "$steps" --batch-size 64 --data "$data" --port $((port + 10)) \
    > "$tmp/$model-ddp.log" 2>&1
  one=$(python3 -c "print(128 * $steps / $(seconds_of "$tmp/$model-one.log"))")
  mpi=$(python3 -c "print(128 * $steps / $(seconds_of "$tmp/$model-mpi.log"))")
  zero=$(python3 -c "print(128 * $steps / $(seconds_of "$tmp/$model-zero.log"))")
  gloo=$(python3 -c "print(128 * $steps / $(seconds_of "$tmp/$model-gloo-0.log"))")
  ddp=$(grep -o 'samples_per_s=[0-9]*' "$tmp/$model-ddp.log" | cut -d= -f2)
  [[ -n "$ddp" ]] || { cat "$tmp/$model-ddp.log" >&2; exit 1; }
  row() { printf "| %s | %d | %s | %.0f | %.2fx |\n" "$model" "$steps" "$1" "$2" "$(python3 -c "print($2 / $one)")"; }
  row "gpuml 1 process x 2 threads, batch 128" "$one"
  row "gpuml 2 ranks x 1 thread, MPI" "$mpi"
  row "gpuml 2 ranks x 1 thread, MPI, --zero 1" "$zero"
  row "gpuml 2 ranks x 1 thread, Gloo" "$gloo"
  row "PyTorch DDP (gloo) 2 ranks x 1 thread" "$ddp"
  ratios+=("$model: gpuml Gloo / PyTorch DDP = $(python3 -c "print(f'{$gloo / $ddp:.2f}')")x, gpuml MPI / PyTorch DDP = $(python3 -c "print(f'{$mpi / $ddp:.2f}')")x (samples/s; above 1: gpuml is faster)")
done
echo
printf '%s\n' "${ratios[@]}"
echo
printf '%s\n' "${all_reduce_lines[@]}"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
