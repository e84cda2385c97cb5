#!/usr/bin/env bash
# The examples (examples/) as a user builds them: `cmake --install` of this build into a fresh
# prefix, examples/ configured with find_package(gpuml) against it alone, built, and run: train
# on arrays and save a checkpoint, load it and predict, and the installed command line reads the
# same checkpoint (`gpuml export`).
#   bash tests/examples/run_examples.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"
src="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
cmake "${generator[@]}" -S "$src/examples" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" ||
  { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" || { cat "$work/build.log"; exit 1; }

"$work/build/train_arrays" "$work/mlp.safetensors" | tee "$work/train.log"
grep -q "^saved $work/mlp.safetensors" "$work/train.log"
"$work/build/predict_checkpoint" "$work/mlp.safetensors" | tee "$work/predict.log"
[[ $(grep -c "^input [01]: class [0-3] " "$work/predict.log") == 2 ]]
"$work/prefix/bin/gpuml" export --checkpoint "$work/mlp.safetensors" --onnx "$work/mlp.onnx"
[[ -s "$work/mlp.onnx" ]]
echo "examples: built against the installed package and ran"
