#!/usr/bin/env bash
# Packs a self-contained gpuml for a GPU machine that has a driver, the CUDA libraries and
# python3 with PyTorch, but none of gpuml's build dependencies, no network and no way to install
# anything (issue 17): a Release build with the CUDA plugin (sm_80 + sm_90 machine code, compute_90
# PTX), the test executables, gpuml_bench, tools/gpu-check.sh, the PyTorch peers, a Fashion-MNIST
# subset, and every shared library these load except glibc's, the driver (libcuda) and the CUDA
# toolkit libraries (cudart, cuBLAS(Lt), cuDNN, NCCL), which the GPU machine provides. NCCL is
# not even linked: the plugin dlopen()s libnccl.so.2 only for GPUML_COMM=nccl or several GPU ranks,
# and tools/gpu-check.sh finds it there (/usr/local/cuda, or PyTorch's nvidia/nccl/lib). It is not
# packed: libnccl.so.2 alone is about 210 MB, several times the bundle's MAX_MIB.
#
#   bash tools/gpu-bundle.sh                         # builds Release in build-gpu-bundle/build
#   BUILD_DIR=build bash tools/gpu-bundle.sh         # reuses an existing Release build with the plugin
#   GPU_CHECK_DRY_RUN=1 bash tools/gpu-bundle.sh     # then rehearses the GPU check here (see below)
#
# Writes build-gpu-bundle/gpuml-gpu-bundle.tar.xz (ignored: /build*/). On the GPU machine:
#   tar -xJf gpuml-gpu-bundle.tar.xz && bash gpuml-gpu/tools/gpu-check.sh verify RESULTS_DIR
# (without xz there: python3 -c "import tarfile; tarfile.open('gpuml-gpu-bundle.tar.xz').extractall()").
#
# Layout: bin/ (executables, RUNPATH $ORIGIN/../lib), lib/ (libgpuml.so, libgpuml_cuda.so, the
# third-party libraries; RUNPATH $ORIGIN), tools/, bench/, data/fashion-mnist/, MANIFEST.
#
# Environment: BUILD_DIR (reuse; default: configure and build build-gpu-bundle/build), OUT_DIR
# (default build-gpu-bundle), TRAIN_SAMPLES (default 10000), TEST_SAMPLES (default 10000),
# MAX_MIB (default 45), GPU_CHECK_DRY_RUN=1 (after packing, run tools/gpu-check.sh dry-run on the
# archive with the build tree hidden), JOBS (default 2).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out_dir="$(mkdir -p "${OUT_DIR:-$root/build-gpu-bundle}" && cd "${OUT_DIR:-$root/build-gpu-bundle}" && pwd)"
train_samples="${TRAIN_SAMPLES:-10000}"
test_samples="${TEST_SAMPLES:-10000}"
max_mib="${MAX_MIB:-45}"
jobs="${JOBS:-2}"
archive="$out_dir/gpuml-gpu-bundle.tar.xz"
start=$(date +%s)
note() { echo "== gpu-bundle: $*"; }
die() { echo "gpu-bundle: $*" >&2; exit 1; }

# Libraries the GPU machine provides (matched on the file name): glibc's, the driver, the CUDA
# toolkit's. tools/gpu-check.sh holds the same list for its ldd check.
provided_re='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl)\.so'

command -v patchelf > /dev/null || {
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get > /dev/null; then
    note "installing patchelf (Debian package) to set \$ORIGIN-relative RUNPATHs"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends patchelf > /dev/null
  fi
  command -v patchelf > /dev/null || die "patchelf not found (apt-get install patchelf)"
}

# --- the build: reuse BUILD_DIR, or configure a Release build with the plugin of our own.
[[ -x /usr/local/cuda/bin/nvcc ]] && export PATH="$PATH:/usr/local/cuda/bin"
if [[ -n "${BUILD_DIR:-}" ]]; then
  build_dir="$(cd "$BUILD_DIR" && pwd)" || die "BUILD_DIR=$BUILD_DIR does not exist"
  [[ -f "$build_dir/CMakeCache.txt" ]] || die "$build_dir is not a CMake build directory"
  note "reusing $build_dir (incremental build: a no-op when it is up to date)"
else
  build_dir="$out_dir/build"
  if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    note "configuring Release with the CUDA plugin (sm_80, sm_90, compute_90 PTX) in $build_dir"
    cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGPUML_CUDA=ON \
      -DGPUML_WERROR="${GPUML_WERROR:-ON}" -DGPUML_CUDA_ARCHITECTURES="80-real;90" > "$out_dir/configure.log" \
      || { tail -n 30 "$out_dir/configure.log"; die "configure failed"; }
  fi
fi
cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt"; }
[[ "$(cache_value CMAKE_BUILD_TYPE)" == Release ]] || die "$build_dir is a $(cache_value CMAKE_BUILD_TYPE) build; the bundle needs Release"
# CMAKE_CUDA_ARCHITECTURES when cached (given on the command line), else the plugin's own option.
archs="$(cache_value CMAKE_CUDA_ARCHITECTURES)"
[[ -n "$archs" ]] || archs="$(cache_value GPUML_CUDA_ARCHITECTURES)"
[[ "$archs" == *80* && "$archs" == *90* ]] || die "$build_dir builds the plugin for '$archs'; the bundle needs 80 and 90 (default 80-real;90)"
build_start=$(date +%s)
if command -v flock > /dev/null; then
  flock /tmp/gpuml-build.lock cmake --build "$build_dir" -j "$jobs" > "$out_dir/build.log" 2>&1 || { tail -n 40 "$out_dir/build.log"; die "build failed"; }
else
  cmake --build "$build_dir" -j "$jobs" > "$out_dir/build.log" 2>&1 || { tail -n 40 "$out_dir/build.log"; die "build failed"; }
fi
build_s=$(( $(date +%s) - build_start ))
note "build: $build_s s"
[[ -f "$build_dir/libgpuml_cuda.so" ]] || die "$build_dir has no libgpuml_cuda.so (configure with -DGPUML_CUDA=ON)"

# --- stage the files.
stage="$out_dir/stage"
bundle="$stage/gpuml-gpu"
rm -rf "$stage"
mkdir -p "$bundle"/{bin,lib,tools,bench,data/fashion-mnist}
for exe in gpuml bench/gpuml_bench tests/gpuml_unit_tests tests/gpuml_ops_tests tests/gpuml_grad_tests \
           tests/gpuml_e2e_tests tests/gpuml_cuda_tests; do
  [[ -x "$build_dir/$exe" ]] || die "$build_dir/$exe is missing (was the build configured with tests and benchmarks?)"
  cp "$build_dir/$exe" "$bundle/bin/"
done
cp "$build_dir/libgpuml_cuda.so" "$bundle/lib/"
cp -L "$build_dir/libgpuml.so" "$bundle/lib/libgpuml.so"
cp "$root/tools/gpu-check.sh" "$bundle/tools/"
cp "$root/bench/torch_peer.py" "$root/bench/torch_matmul.py" "$bundle/bench/"
peer="$root/../shared/bench/torch_fmnist.py"
[[ -f "$peer" ]] || peer="/work/shared/bench/torch_fmnist.py"
[[ -f "$peer" ]] || die "the PyTorch peer torch_fmnist.py is not in ../shared/bench"
cp "$peer" "$bundle/bench/"
# The GPT peer and its corpus, for the gpt stage of `measure`.
cp "$(dirname "$peer")/torch_gpt.py" "$bundle/bench/" || die "the PyTorch peer torch_gpt.py is not beside $peer"
cp "$(dirname "$peer")/../data/tinyshakespeare.txt" "$bundle/data/" || die "../shared/data/tinyshakespeare.txt is missing"

# Every library the executables and the plugin load, found by ldd (transitive), except those the
# GPU machine provides. Copied under their soname (what the loader asks for).
copy_dependencies() {
  local elf line name path
  for elf in "$bundle"/bin/* "$bundle"/lib/*.so*; do
    while read -r line; do
      name="${line%% *}"
      path="$(sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p' <<< "$line")"
      [[ "$name" =~ $provided_re ]] && continue
      [[ "$line" == *"not found"* ]] && die "$(basename "$elf") needs $name, which is not found here"
      [[ -z "$path" ]] && continue
      [[ -e "$bundle/lib/$name" || "$path" == "$bundle"/* ]] && continue
      cp -L "$path" "$bundle/lib/$name"
    done < <(ldd "$elf" | sed 's/^[[:space:]]*//')
  done
}
copy_dependencies
chmod u+w "$bundle"/lib/* "$bundle"/bin/*
for f in "$bundle"/bin/*; do patchelf --set-rpath '$ORIGIN/../lib' "$f"; done
for f in "$bundle"/lib/*; do patchelf --set-rpath '$ORIGIN' "$f"; done
# Debug sections are most of a Release test executable; the GPU machine has no debugger to use them.
strip --strip-debug "$bundle"/bin/* "$bundle"/lib/libgpuml.so "$bundle"/lib/libgpuml_cuda.so 2> /dev/null || true

# --- data: the first TRAIN_SAMPLES / TEST_SAMPLES of Fashion-MNIST, or synthetic data of the
# same shapes (timings only) where the Debian package is missing.
python3 - "$bundle/data/fashion-mnist" "$train_samples" "$test_samples" << 'PY'
import gzip, os, struct, sys
out, n_train, n_test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
src = os.environ.get("GPUML_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
have = os.path.exists(f"{src}/train-images-idx3-ubyte.gz")
for split, n in (("train", n_train), ("t10k", n_test)):
    for kind, dims in (("images", (28, 28)), ("labels", ())):
        name = f"{split}-{kind}-idx{1 + len(dims)}-ubyte.gz"
        if have:
            with gzip.open(f"{src}/{name}", "rb") as f:
                raw = f.read()
            ndim = raw[3]
            per = 1
            for d in struct.unpack(">" + "I" * (ndim - 1), raw[8:4 + 4 * ndim]):
                per *= d
            body = raw[4 + 4 * ndim:4 + 4 * ndim + n * per]
        else:
            import random
            rng = random.Random(f"{split}-{kind}")
            per = 784 if dims else 1
            body = bytes(rng.randrange(256 if dims else 10) for _ in range(n * per))
        header = struct.pack(">I", 0x800 + 1 + len(dims)) + struct.pack(">I", n) + b"".join(struct.pack(">I", d) for d in dims)
        with gzip.open(f"{out}/{name}", "wb", compresslevel=9) as f:
            f.write(header + body)
print("data:", "Fashion-MNIST subset" if have else "SYNTHETIC (no Fashion-MNIST here)", f"{n_train} train, {n_test} test")
PY

# --- what is in it, for the report on the GPU machine.
{
  echo "gpuml GPU bundle"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)$(git -C "$root" diff --quiet 2> /dev/null || echo ' (uncommitted changes)')"
  echo "built: $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(ldd --version | head -n1)"
  echo "CUDA toolkit: $(nvcc --version 2> /dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p'); architectures: $archs"
  echo "cuDNN headers: $(sed -n 's/^#define CUDNN_\(MAJOR\|MINOR\|PATCHLEVEL\) *\([0-9]*\).*/\2/p' /usr/local/cuda/include/cudnn_version.h /usr/include/cudnn_version.h 2> /dev/null | head -n3 | paste -sd.)"
  echo "provided by the GPU machine (not bundled): glibc, libcuda, cudart, cublas, cublasLt, cudnn*, nccl (dlopen'ed)"
  # The newest glibc symbol version any bundled file asks for: the GPU machine's glibc must be as new.
  echo "needs glibc >= $(for f in "$bundle"/bin/* "$bundle"/lib/*; do objdump -T "$f" 2> /dev/null; done \
    | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -n1 | sed 's/GLIBC_//')"
  echo
  (cd "$bundle" && find . -type f | sort | xargs ls -l | awk '{printf "%10d %s\n", $5, $9}')
} > "$bundle/MANIFEST"

# --- pack.
note "packing $archive (xz)"
rm -f "$archive"
tar -C "$stage" -cf - gpuml-gpu | xz -T"$jobs" -6 > "$archive"
bytes=$(stat -c %s "$archive")
unpacked=$(du -sb "$bundle" | cut -f1)
echo
echo "sizes (unpacked, bytes):"
(cd "$bundle" && du -ab bin lib data tools bench | sort -n -r | head -n 25)
echo
echo "unpacked: $(( unpacked / 1048576 )) MiB; archive: $archive"
echo "archive: $bytes bytes ($(awk "BEGIN {printf \"%.1f\", $bytes / 1048576}") MiB; limit $max_mib MiB)"
(( bytes <= max_mib * 1048576 )) || die "the bundle is over $max_mib MiB"
rm -rf "$stage"
note "done in $(( $(date +%s) - start )) s (build $build_s s)"

if [[ -n "${GPU_CHECK_DRY_RUN:-}" ]]; then
  GPU_CHECK_HIDE="${GPU_CHECK_HIDE:-$build_dir}" bash "$root/tools/gpu-check.sh" dry-run "$out_dir/dry-run" "$archive"
fi
