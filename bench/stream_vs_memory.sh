#!/usr/bin/env bash
# Streaming from shards vs training from memory (issue 5), side by side in one run:
#   1. the mlp preset on a synthetic dataset of (1,28,28) u8 records packed to GIB GiB (default 8)
#      and streamed with --data-memory-limit = a quarter of it, against the same model on an
#      in-memory dataset of the same shapes (MEM_RECORDS records, IDX written here): samples/s,
#      data_wait_fraction (metrics.csv) and peak RSS (/usr/bin/time -v);
#   2. Fashion-MNIST from packed shards with a shuffle buffer of 10% of the training set against
#      the same training from memory (same model, epochs, seed), for each of SEEDS: test accuracy
#      per seed and the mean difference.
# Usage: bash bench/stream_vs_memory.sh   (GPUML=build/gpuml WORK=/tmp/gpuml-stream GIB=8 BATCH=128
#        FMNIST_EPOCHS=3 FMNIST_MODEL=mlp SEEDS='0 1 ... 9' KEEP=0 DROP_CACHES=1 SKIP_BIG=0)
# Needs ~GIB + 1 GiB of free disk under WORK; the big shard set is deleted at the end unless KEEP=1.
set -euo pipefail
GPUML=${GPUML:-build/gpuml}
WORK=${WORK:-/tmp/gpuml-stream}
GIB=${GIB:-8}
SIZE_MIB=${SIZE_MIB:-$((GIB * 1024))}  # for a quick try: SIZE_MIB=64
BATCH=${BATCH:-128}
MEM_RECORDS=${MEM_RECORDS:-2000000}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
FMNIST_EPOCHS=${FMNIST_EPOCHS:-3}
FMNIST_MODEL=${FMNIST_MODEL:-mlp}
mkdir -p "$WORK"

metric() {  # metric RUN_DIR COLUMN -> the value in the last row of metrics.csv
  python3 - "$1/metrics.csv" "$2" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(rows[-1][sys.argv[2]])
PY
}
peak_rss_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$1"; }

if [ "${SKIP_BIG:-0}" != 1 ]; then
  RECORDS=$(( (SIZE_MIB * 1048576 + 791) / 792 ))
  LIMIT=$(( SIZE_MIB * 1048576 / 4 ))
  SHARD=$(( LIMIT / 16 < 67108864 ? LIMIT / 16 : 67108864 ))  # 64 MiB, smaller for small tries
  echo "== in-memory: $MEM_RECORDS synthetic (1,28,28) u8 records as IDX"
  python3 - "$WORK/mem-idx" "$MEM_RECORDS" <<'PY'
import os, struct, sys
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
def write(prefix, count):
    with open(f"{out}/{prefix}-images-idx3-ubyte", "wb") as img, open(f"{out}/{prefix}-labels-idx1-ubyte", "wb") as lab:
        img.write(struct.pack(">IIII", 0x803, count, 28, 28))
        lab.write(struct.pack(">II", 0x801, count))
        done = 0
        while done < count:
            k = min(65536, count - done)
            pixels = os.urandom(784 * k)
            img.write(pixels)
            lab.write(bytes(pixels[784 * i] % 10 for i in range(k)))  # as pack's synthetic labels
            done += k
write("train", n)
write("t10k", 10000)
PY
  # The in-memory run is repeated after the streamed one (same data, page cache dropped by then):
  # samples/s on a shared VM moves by +-15% from run to run, and the ratio uses the mean of both.
  train_mem() {
    /usr/bin/time -v "$GPUML" train --data "$WORK/mem-idx" --model mlp --epochs 1 --batch-size "$BATCH" --seed 0 \
        --quiet --overwrite --out "$WORK/run-mem$1" 2> "$WORK/time-mem$1.txt" >/dev/null
  }
  train_mem ""

  echo "== pack synthetic:$RECORDS ($SIZE_MIB MiB) into $WORK/shards"
  start=$(date +%s.%N)
  "$GPUML" data pack "synthetic:$RECORDS" "$WORK/shards" --shard-size "$SHARD" --quiet
  pack_seconds=$(echo "$(date +%s.%N) - $start" | bc)
  du -sh "$WORK/shards"
  if [ "${DROP_CACHES:-1}" = 1 ] && sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
    echo "page cache dropped: the epoch reads the shards from disk"
  else
    echo "page cache NOT dropped: shards may be read from the page cache"
  fi
  echo "== streaming: --data-memory-limit $LIMIT"
  /usr/bin/time -v "$GPUML" train --data "$WORK/shards" --model mlp --epochs 1 --batch-size "$BATCH" --seed 0 \
      --data-memory-limit "${LIMIT}B" --quiet --overwrite --out "$WORK/run-stream" 2> "$WORK/time-stream.txt" >"$WORK/stream.log"
  train_mem "-again"
  rm -rf "$WORK/mem-idx"
  mem_sps=$(python3 -c "print(($(metric "$WORK/run-mem" samples_per_second) + $(metric "$WORK/run-mem-again" samples_per_second)) / 2)")
  stream_sps=$(metric "$WORK/run-stream" samples_per_second)
  echo
  echo "| run | records | samples/s | data_wait_fraction | peak RSS (MiB) |"
  echo "|---|---|---|---|---|"
  for run in "" "-again"; do
    printf "| in memory (IDX)%s | %s | %.0f | %.4f | %s |\n" "${run:+, again after}" "$MEM_RECORDS" \
        "$(metric "$WORK/run-mem$run" samples_per_second)" "$(metric "$WORK/run-mem$run" data_wait_fraction)" \
        "$(peak_rss_mib "$WORK/time-mem$run.txt")"
  done
  printf "| streamed, limit %s MiB | %s | %.0f | %.4f | %s |\n" $((LIMIT / 1048576)) "$RECORDS" "$stream_sps" \
      "$(metric "$WORK/run-stream" data_wait_fraction)" "$(peak_rss_mib "$WORK/time-stream.txt")"
  echo
  echo "streamed / in-memory samples/s (mean of the two in-memory runs): $(python3 -c "print(round($stream_sps / $mem_sps, 3))")"
  echo "pack: $pack_seconds s for $SIZE_MIB MiB"
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK/shards"
fi

SEEDS=${SEEDS:-0 1 2 3 4 5 6 7 8 9}
echo "== Fashion-MNIST: $FMNIST_MODEL, $FMNIST_EPOCHS epochs, seeds $SEEDS: memory vs shards (shuffle buffer 6000 = 10%)"
"$GPUML" data pack "$FMNIST" "$WORK/fmnist-shards" --shard-size 4M --quiet >/dev/null
echo "| seed | in memory | shards | shards - memory (points) |"
echo "|---|---|---|---|"
for seed in $SEEDS; do
  "$GPUML" train --data "$FMNIST" --model "$FMNIST_MODEL" --epochs "$FMNIST_EPOCHS" --seed "$seed" --threads 1 --quiet \
      --overwrite --out "$WORK/fm-mem-$seed" >/dev/null
  "$GPUML" train --data "$WORK/fmnist-shards" --model "$FMNIST_MODEL" --epochs "$FMNIST_EPOCHS" --seed "$seed" \
      --threads 1 --quiet --shuffle-buffer 6000 --data-memory-limit 256M --overwrite --out "$WORK/fm-stream-$seed" >/dev/null
  mem=$(metric "$WORK/fm-mem-$seed" test_accuracy)
  stream=$(metric "$WORK/fm-stream-$seed" test_accuracy)
  printf "| %s | %.4f | %.4f | %+.2f |\n" "$seed" "$mem" "$stream" "$(python3 -c "print(100 * ($stream - $mem))")"
  echo "$mem $stream" >> "$WORK/fm-pairs.txt"
done
python3 - "$WORK/fm-pairs.txt" <<'PY'
import statistics, sys
pairs = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
diff = [100 * (s - m) for m, s in pairs]
print(f"mean in memory {statistics.mean(m for m, _ in pairs):.4f}, shards {statistics.mean(s for _, s in pairs):.4f}, "
      f"mean difference {statistics.mean(diff):+.2f} points over {len(diff)} seeds"
      + (f" (sd {statistics.stdev(diff):.2f})" if len(diff) > 1 else ""))
PY
rm -f "$WORK/fm-pairs.txt"
