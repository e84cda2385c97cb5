#!/usr/bin/env bash
# Installs gpuml's dependencies (Debian/Ubuntu packages), configures and builds it, then runs
# the main job: `gpuml train` (the cnn preset on Fashion-MNIST). Step one of the quick start; step
# two is tools/test.sh. Extra arguments go to `gpuml train` (e.g. --epochs 1 --model mlp).
#
#   bash tools/setup.sh                      # Release build in ./build
#   GPUML_WERROR=ON bash tools/setup.sh      # warnings are errors (what CI does)
#   SKIP_APT=1 bash tools/setup.sh           # dependencies already installed
#   GPUML_CUDA=OFF bash tools/setup.sh       # no CUDA plugin even where a toolkit is installed
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
build_type="${BUILD_TYPE:-Release}"
werror="${GPUML_WERROR:-OFF}"
jobs="${JOBS:-$(nproc)}"

# Everything comes from the distribution; nothing is downloaded at build time. Recommends are not
# installed, so a package that another one only recommends is named here: oneDNN's CMake config
# needs the OpenCL headers and loader (ocl-icd-opencl-dev), a Recommends of libdnnl-dev. CI
# (.ci/run) runs this script in a fresh Debian root, so a missing entry fails there. Open MPI
# (openmpi-bin: mpirun; libopenmpi-dev: headers for the MPI plugin) and Gloo (libgloo-dev: the
# Gloo plugin, for the torchrun variables) are for data parallelism.
packages=(
  build-essential cmake ninja-build pkg-config
  libdnnl-dev ocl-icd-opencl-dev libopenblas-dev libfmt-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libzip-dev
  libonnx-dev libprotobuf-dev libpng-dev libjpeg-dev libutf8proc-dev
  openmpi-bin libopenmpi-dev libgloo-dev
  libgtest-dev libbenchmark-dev
  python3 dataset-fashion-mnist
  # The Python package (python/): built in ./build when these are there; python3-venv for
  # `python3 -m venv v && v/bin/pip install .` (README, "Using gpuml from Python").
  python3-dev python3-venv pybind11-dev
)

if [[ -z "${SKIP_APT:-}" ]]; then
  sudo=""
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo > /dev/null || { echo "setup: not root and no sudo; install: ${packages[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "== installing dependencies (apt-get)"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

# The CUDA plugin is built when a toolkit is found (GPUML_CUDA=AUTO); nvcc usually lives here.
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="$PATH:/usr/local/cuda/bin"
cuda="${GPUML_CUDA:-AUTO}"

echo "== configuring ($build_type, GPUML_WERROR=$werror, GPUML_CUDA=$cuda) in $build_dir"
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" -DGPUML_WERROR="$werror" -DGPUML_CUDA="$cuda"

echo "== building with $jobs jobs"
cmake --build "$build_dir" -j "$jobs"

# The main job: train the cnn preset on Fashion-MNIST (the Debian package), on the fastest device.
"$build_dir/gpuml" info | head -n 12
echo "== $build_dir/gpuml train"
"$build_dir/gpuml" train "$@"
