#!/usr/bin/env bash
# fit() from Python against `gpuml train` for the same run (issue 23): the mlp preset on
# Fashion-MNIST, EPOCHS epochs, batch 128, seed 0, THREADS threads, evaluation on the test set after
# each epoch, run files written (--out / run_dir), no progress output (--quiet / verbose=0).
# RUNS interleaved pairs (CLI, Python, CLI, ...); for each: the process's wall time (Python's
# includes starting the interpreter, importing NumPy and gpuml and reading the IDX files with
# gzip+NumPy, as the CLI's includes its own reading) and the training loops' time (metrics.csv's
# epoch seconds, the same field for both). Prints the medians and the ratios Python/CLI.
# SOURCE=arrays (default): Python reads the IDX files into NumPy arrays and passes them in place;
# SOURCE=path: Python passes the dataset's directory, as the CLI's --data (fit reads it itself).
# Usage: bash bench/python_vs_cli.sh   (GPUML=build/gpuml PYTHONPATH=build/python PYTHON=/usr/bin/python3
#        EPOCHS=5 THREADS=2 RUNS=5 SOURCE=arrays|path WORK=/tmp/gpuml-pybench)
set -euo pipefail
GPUML=${GPUML:-build/gpuml}
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHONPATH=${PYTHONPATH:-build/python}
EPOCHS=${EPOCHS:-5}
THREADS=${THREADS:-2}
RUNS=${RUNS:-5}
WORK=${WORK:-/tmp/gpuml-pybench}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
SOURCE=${SOURCE:-arrays}
rm -rf "$WORK" && mkdir -p "$WORK"

if [[ "$SOURCE" == path ]]; then
  cat > "$WORK/fit.py" << PY
import sys
import gpuml

gpuml.Model("mlp").fit("$FMNIST", epochs=$EPOCHS, batch_size=128, seed=0, threads=$THREADS, device="cpu",
                       run_dir=sys.argv[1], verbose=0)
PY
elif [[ "$SOURCE" != arrays ]]; then
  echo "python_vs_cli: SOURCE must be arrays or path, not '$SOURCE'" >&2
  exit 2
else

cat > "$WORK/fit.py" << PY
import gzip, sys
import numpy as np
import gpuml

def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3]).reshape(dims)

d = "$FMNIST/"
x = read_idx(d + "train-images-idx3-ubyte.gz")[:, None]  # uint8, scaled by gpuml as for IDX files
y = read_idx(d + "train-labels-idx1-ubyte.gz")
xt = read_idx(d + "t10k-images-idx3-ubyte.gz")[:, None]
yt = read_idx(d + "t10k-labels-idx1-ubyte.gz")
gpuml.Model("mlp").fit(x, y, epochs=$EPOCHS, batch_size=128, seed=0, threads=$THREADS, device="cpu",
                       validation_data=(xt, yt), run_dir=sys.argv[1], verbose=0)
PY
fi

loop_seconds() {  # the sum of metrics.csv's epoch seconds
  "$PYTHON" -c "import csv,sys; print(sum(float(r['epoch_seconds']) for r in csv.DictReader(open(sys.argv[1]))))" "$1/metrics.csv"
}
now() { date +%s.%N; }

: > "$WORK/times.txt"
for i in $(seq 1 "$RUNS"); do
  t0=$(now)
  "$GPUML" train --model mlp --data "$FMNIST" --epochs "$EPOCHS" --batch-size 128 --seed 0 --threads "$THREADS" \
    --device cpu --quiet --out "$WORK/cli-$i" > /dev/null
  t1=$(now)
  "$PYTHON" "$WORK/fit.py" "$WORK/py-$i"
  t2=$(now)
  echo "$i $(echo "$t1 - $t0" | bc) $(loop_seconds "$WORK/cli-$i") $(echo "$t2 - $t1" | bc) $(loop_seconds "$WORK/py-$i")" |
    tee -a "$WORK/times.txt"
done
"$PYTHON" - "$WORK/times.txt" << 'PY'
import statistics, sys
rows = [list(map(float, l.split()[1:])) for l in open(sys.argv[1])]
cli_wall, cli_loop, py_wall, py_loop = (statistics.median(c) for c in zip(*rows))
print(f"median of {len(rows)}: process wall CLI {cli_wall:.2f} s, Python {py_wall:.2f} s, ratio {py_wall / cli_wall:.3f}")
print(f"median of {len(rows)}: training loops CLI {cli_loop:.2f} s, Python {py_loop:.2f} s, ratio {py_loop / cli_loop:.3f}")
PY
