#!/usr/bin/env bash
# The GPU check, run from the unpacked bundle that tools/gpu-bundle.sh makes (issue 17). The GPU
# machine has a driver, CUDA libraries and python3 with PyTorch, but no compiler, no -dev
# packages, no network: nothing is built there. Two calls, each meant to finish within 5 minutes:
#
#   bash gpuml-gpu/tools/gpu-check.sh verify  RESULTS_DIR   # env, tests, nccl, matmul
#   bash gpuml-gpu/tools/gpu-check.sh measure RESULTS_DIR   # train, stream, gpt, nccl-step
#   STAGES="matmul" bash gpuml-gpu/tools/gpu-check.sh verify RESULTS_DIR   # rerun one stage
#
#   GPU_CHECK_DRY_RUN=1 bash tools/gpu-check.sh dry-run RESULTS_DIR ARCHIVE   # rehearsal, here
#
# Stages (STAGES picks among them; the environment check runs always, it takes a second):
#   env      finds cudart, cuBLAS(Lt), cuDNN (CUDA_LIB_DIRS, then /usr/local/cuda, then PyTorch's
#            nvidia/*/lib under python3's site-packages), prints which and their versions, checks
#            with ldd that every library resolves and that each executable starts, and that the
#            plugin loads (`gpuml info`); stops at once with the reason otherwise;
#   tests    gpuml_cuda_tests and the plugin tests of gpuml_unit_tests (target: 0 skipped, 0 failed);
#   nccl     NCCL with one rank (GPUML_COMM=nccl): it initialises, its collectives give the one-rank
#            result on device and host memory, and a step through it trains as the fused one does
#            (gpuml_cuda_tests' NcclOneRank tests). libnccl.so.2 is the GPU machine's (dlopen'ed by
#            the plugin: CUDA_LIB_DIRS, /usr/local/cuda, PyTorch's nvidia/nccl/lib). Two ranks need
#            two GPUs (NCCL refuses two ranks on one device) and mpirun, which the bundle lacks;
#   nccl-step  train step time with NCCL carrying one rank's gradients against the single process
#            (mlp and cnn, batch NCCL_BATCH (128), EPOCHS epochs; the fastest epoch of each): ratio
#            target <= 1.02;
#   matmul   bf16 and tf32 at 4096^3 and 8192^3, gpuml (cuBLASLt) and torch.matmul, each timed as
#            N back-to-back launches and one wait;
#   train    mlp and cnn, batch 128 and 1024, fp32 (TF32 off on both sides) and bf16, against
#            PyTorch eager, and torch.compile at batch 1024; peak GPU memory of both processes;
#   stream   a streamed run from shards (data wait fraction);
#   gpt      the gpu-char GPT (GPT_PRESET), GPT_STEPS (200) steps, bf16 and fp32 (GPT_PRECISIONS), and
#            gpt2-124m on random tokens, GPT2_STEPS (30) steps, bf16 (GPT2_PRECISIONS): tokens/s and
#            MFU against torch_gpt.py eager (SDPA) and torch.compile.
# Each call writes RESULTS_DIR/gpu-check-<call>-<time>.md and .json, summary table last, and
# prints the duration of each stage. Environment: PYTHON (default python3), EPOCHS (default 3; seconds
# per epoch are the mean over them, on both sides), STREAM_RECORDS (default 500000),
# MODELS, BATCHES, PRECISIONS, CUDA_LIB_DIRS (colon-separated, searched first), GPUML_TRAIN_FLAGS.
set -uo pipefail

call="${1:-}"
results="${2:-}"
case "$call" in
  verify) default_stages="tests nccl matmul" ;;
  measure) default_stages="train stream gpt nccl-step" ;;
  dry-run) ;;
  *) echo "usage: gpu-check.sh verify|measure RESULTS_DIR, or dry-run RESULTS_DIR ARCHIVE" >&2; exit 2 ;;
esac
[[ -n "$results" ]] || { echo "gpu-check: name the results folder" >&2; exit 2; }
mkdir -p "$results" && results="$(cd "$results" && pwd)"

# ---------------------------------------------------------------------------------------------
# dry-run: unpack the archive into a temporary folder and run this script's copy from there,
# inside a private mount namespace where the build tree, the source tree and the system's
# Fashion-MNIST are hidden under empty folders: whatever the bundle still needs from them fails.
if [[ "$call" == dry-run ]]; then
  archive="${3:-}"
  [[ -f "$archive" ]] || { echo "gpu-check: dry-run needs the archive (tools/gpu-bundle.sh makes it)" >&2; exit 2; }
  archive="$(cd "$(dirname "$archive")" && pwd)/$(basename "$archive")"
  start=$(date +%s)
  tmp="$(mktemp -d /tmp/gpuml-dry-run.XXXXXX)"
  trap 'rm -rf "$tmp"' EXIT
  tar -C "$tmp" -xJf "$archive" || { echo "gpu-check: cannot unpack $archive" >&2; exit 1; }
  src_root="$(cd "$(dirname "$0")/.." && pwd)"
  hide=("$src_root" /usr/share/datasets/fashion-mnist)
  for h in ${GPU_CHECK_HIDE:-}; do hide+=("$h"); done
  mkdir -p "$tmp/results"
  inner="set -e; for h in ${hide[*]@Q}; do [[ -d \$h ]] && mount -t tmpfs -o size=1m gpuml-hidden \"\$h\"; done
         GPU_CHECK_DRY_RUN=1 exec bash $tmp/gpuml-gpu/tools/gpu-check.sh verify $tmp/results"
  if [[ "$(id -u)" -eq 0 ]] && unshare --mount --propagation private true 2> /dev/null; then
    echo "== dry run: unpacked into $tmp; hidden: ${hide[*]}"
    unshare --mount --propagation private bash -c "$inner"
  elif [[ "${CI:-}" == true ]]; then
    echo "gpu-check: dry run under CI=true needs a private mount namespace (root, and a chroot whose / is a" \
         "mount point) to hide the build tree; unshare --mount failed here" >&2
    exit 1
  else
    echo "== dry run: unpacked into $tmp (no private mount namespace here: the build tree stays visible)"
    GPU_CHECK_DRY_RUN=1 bash "$tmp/gpuml-gpu/tools/gpu-check.sh" verify "$tmp/results"
  fi
  rc=$?
  cp "$tmp/results"/* "$results/" 2> /dev/null
  echo "== dry run: exit $rc in $(( $(date +%s) - start )) s; reports in $results"
  exit $rc
fi

bundle="$(cd "$(dirname "$0")/.." && pwd)"
bin="$bundle/bin"
lib="$bundle/lib"
dry="${GPU_CHECK_DRY_RUN:-}"
python="${PYTHON:-python3}"
epochs="${EPOCHS:-3}"
stages="${STAGES:-$default_stages}"
data="${DATA:-$bundle/data/fashion-mnist}"
# GPU_CHECK_DEVICE=cpu rehearses the train and stream stages on a machine without a GPU (the
# figures then mean nothing; the script's parsing and reports are what is checked).
device="${GPU_CHECK_DEVICE:-cuda}"
export GPUML_FASHION_MNIST="$data"  # the test executables read the dataset from here
stamp="$(date -u +%Y%m%d-%H%M%S)"
report="$results/gpu-check-$call-$stamp.md"
figures="$results/gpu-check-$call-$stamp.json"
work="$(mktemp -d /tmp/gpuml-gpu-check.XXXXXX)"
summary="$work/summary"
json_rows="$work/figures.jsonl"
trap 'rm -rf "$work"' EXIT
touch "$summary" "$json_rows"

note() { echo "== $*"; }
md() { echo "$*" >> "$report"; }
stage_on() { [[ " $stages " == *" $1 "* ]]; }
# summary_row STAGE|WHAT|VALUE|TARGET: one line of the summary table.
summary_row() { echo "$1" >> "$summary"; }
# figure KEY=VALUE...: one JSON object per measured case (values are numbers or strings).
figure() {
  "$python" - "$@" >> "$json_rows" << 'PY' 2> /dev/null || echo "{\"raw\": \"$*\"}" >> "$json_rows"
import json, sys
row = {}
for kv in sys.argv[1:]:
    k, _, v = kv.partition("=")
    try: row[k] = float(v) if v not in ("", "nan") else None
    except ValueError: row[k] = v
print(json.dumps(row))
PY
}
declare -A stage_seconds=()
stage_start=0
current_stage=env
begin_stage() { current_stage=$1; note "stage $1"; stage_start=$(date +%s); md ""; md "## $1"; md ""; }
end_stage() {
  local s=$(( $(date +%s) - stage_start ))
  stage_seconds[$1]=$s
  note "stage $1: $s s"
  md ""; md "($1: $s s)"
}
finish() {
  local rc=$1
  {
    echo ""
    echo "## Summary ($call$([[ -n "$dry" ]] && echo ', DRY RUN: no GPU'))"
    echo ""
    echo "| stage | case | value | target |"
    echo "|---|---|---|---|"
    sed 's/^/| /; s/|/ | /g; s/$/ |/' "$summary"
    echo ""
    echo -n "Stage durations:"
    for s in "${!stage_seconds[@]}"; do echo -n " $s ${stage_seconds[$s]} s;"; done
    echo ""
  } >> "$report"
  local durations=""
  for s in "${!stage_seconds[@]}"; do durations+="$s=${stage_seconds[$s]} "; done
  "$python" - "$json_rows" "$figures" "$call" "$stamp" "${dry:+dry-run}" "$durations" "$rc" << 'PY' 2> /dev/null
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
seconds = {k: int(v) for k, _, v in (kv.partition("=") for kv in sys.argv[6].split())}
json.dump({"call": sys.argv[3], "stamp": sys.argv[4], "dry_run": sys.argv[5] == "dry-run", "exit": int(sys.argv[7]),
           "stage_seconds": seconds, "figures": rows}, open(sys.argv[2], "w"), indent=1)
PY
  echo
  echo "report: $report"
  echo "figures: $figures"
  echo
  echo "== summary ($call)"
  column -t -s '|' "$summary" 2> /dev/null || cat "$summary"
  exit "$rc"
}
fail() {
  end_stage "$current_stage"
  echo "gpu-check: $*" >&2
  md ""; md "**STOPPED: $***"
  summary_row "env|stopped|$*|"
  finish 1
}

{
  echo "# gpuml GPU check: $call, $stamp$([[ -n "$dry" ]] && echo ' (DRY RUN, no GPU)')"
  echo
  echo '```'
  head -n 7 "$bundle/MANIFEST" 2> /dev/null
  echo '```'
} > "$report"

# ---------------------------------------------------------------------------------------------
# env: the CUDA libraries, the executables, the plugin. Always runs: the other stages need its
# LD_LIBRARY_PATH, and a machine where the plugin cannot load is not worth a second more.
begin_stage env
# Libraries the GPU machine provides; everything else must resolve inside the bundle.
provided_re='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl|libnvJitLink|libnvrtc)\.so'
candidates=()
IFS=: read -r -a extra <<< "${CUDA_LIB_DIRS:-}"
candidates+=("${extra[@]}" /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib)
if command -v "$python" > /dev/null; then
  while read -r d; do candidates+=("$d"); done < <("$python" - << 'PY' 2> /dev/null
import glob, os, site, sys
roots = list(site.getsitepackages()) + [site.getusersitepackages()] + [p for p in sys.path if p.endswith("-packages")]
seen = set()
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))) + sorted(glob.glob(os.path.join(r, "nvidia", "cu*", "lib"))):
        if d not in seen:
            seen.add(d); print(d)
PY
)
fi
# The sonames the plugin needs but the loader does not find yet: look for each in the candidates.
missing_cuda_libs() {
  ldd "$lib/libgpuml_cuda.so" 2> /dev/null | sed -n 's/^[[:space:]]*\([^ ]*\) => not found.*/\1/p' | sort -u
}
ld_dirs=()
for _ in 1 2 3; do
  missing="$(missing_cuda_libs)"
  [[ -z "$missing" ]] && break
  for so in $missing; do
    for d in "${candidates[@]}"; do
      if [[ -e "$d/$so" ]]; then
        [[ " ${ld_dirs[*]} " == *" $d "* ]] || ld_dirs+=("$d")
        break
      fi
    done
  done
  export LD_LIBRARY_PATH="$(IFS=:; echo "${ld_dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
# NCCL is dlopen'ed by the plugin when a run asks for it (ldd does not list it): where the loader
# does not find libnccl.so.2 already, the first candidate folder that holds it goes on the path.
nccl_path="$(ldconfig -p 2> /dev/null | sed -n 's/.*libnccl\.so\.2 .*=> \(.*\)/\1/p' | head -n1)"
ld_path_now="${LD_LIBRARY_PATH:-}"
for d in ${ld_path_now//:/ }; do [[ -z "$nccl_path" && -e "$d/libnccl.so.2" ]] && nccl_path="$d/libnccl.so.2"; done
if [[ -z "$nccl_path" ]]; then
  for d in "${candidates[@]}"; do
    if [[ -e "$d/libnccl.so.2" ]]; then
      nccl_path="$d/libnccl.so.2"
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      break
    fi
  done
fi
# cuDNN 9 opens its sub-libraries (ops, cnn, engines, graph) itself, from its own folder.
cudnn_path="$(ldd "$lib/libgpuml_cuda.so" | sed -n 's/.*libcudnn\.so[.0-9]* => \([^ ]*\) .*/\1/p' | head -n1)"
md "CUDA libraries (LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}):"; md ""; md '```'
for so in libcudart libcublasLt libcudnn; do  # what the plugin links (cuBLAS proper: not used)
  p="$(ldd "$lib/libgpuml_cuda.so" | sed -n "s/^[[:space:]]*$so\.so[.0-9]* => \([^ ]*\) .*/\1/p" | head -n1)"
  line="$so: ${p:-not found} $( [[ -n "$p" ]] && echo "-> $(readlink -f "$p")")"
  echo "$line"; md "$line"
done
line="libnccl.so.2 (dlopen'ed for GPUML_COMM=nccl): ${nccl_path:-not found} $( [[ -n "$nccl_path" ]] && echo "-> $(readlink -f "$nccl_path")")"
echo "$line"; md "$line"
if [[ -n "$cudnn_path" ]]; then
  subs="$(ls "$(dirname "$cudnn_path")"/libcudnn_*.so* 2> /dev/null | xargs -r -n1 basename | paste -sd' ')"
  echo "cuDNN sub-libraries: ${subs:-none found}"; md "cuDNN sub-libraries: ${subs:-none found}"
fi
md '```'

# ldd on every executable and library: each must resolve inside the bundle, or be provided.
ldd_bad="$work/ldd-bad.txt"
: > "$ldd_bad"
for elf in "$bin"/* "$lib"/*.so*; do
  ldd "$elf" 2>&1 | sed 's/^[[:space:]]*//' | while read -r line; do
    name="${line%% *}"
    [[ "$line" == *"not a dynamic executable"* ]] && continue
    path="$(sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p' <<< "$line")"
    if [[ "$name" =~ $provided_re ]]; then
      # In the dry run the toolkit's libraries may be missing (CI has no driver): allowed.
      [[ "$line" == *"not found"* && -z "$dry" && "$elf" == *libgpuml_cuda.so ]] && echo "$(basename "$elf"): $line (not found on this machine)"
      continue
    fi
    [[ "$name" == /* ]] && continue  # the loader itself, named by path
    [[ "$line" == *"not found"* ]] && { echo "$(basename "$elf"): $line"; continue; }
    [[ -n "$path" && "$(readlink -f "$path")" != "$bundle"/* ]] && echo "$(basename "$elf"): $name resolves outside the bundle: $path"
  done >> "$ldd_bad"
done
if [[ -s "$ldd_bad" ]]; then
  md '```'; cat "$ldd_bad" >> "$report"; md '```'
  cat "$ldd_bad" >&2
  fail "libraries missing or taken from outside the bundle (above; glibc $(ldd --version | head -n1 | awk '{print $NF}') here)"
fi
md "ldd: every library resolves inside the bundle or is glibc/driver/CUDA toolkit."
summary_row "env|ldd|every library inside the bundle or provided|"

# Each executable must start (a missing symbol or an older glibc shows here, not mid-test).
for exe in "$bin"/gpuml_*_tests; do
  "$exe" --gtest_list_tests > "$work/start.log" 2>&1 || { cat "$work/start.log" >&2; fail "$(basename "$exe") cannot start: $(head -n 3 "$work/start.log")"; }
done
"$bin/gpuml_bench" --benchmark_list_tests > "$work/start.log" 2>&1 || fail "gpuml_bench cannot start: $(head -n 3 "$work/start.log")"
"$bin/gpuml" info > "$work/info.txt" 2>&1 || fail "gpuml info failed: $(tail -n 5 "$work/info.txt")"
head -n 25 "$work/info.txt"
md ""; md '```'; cat "$work/info.txt" >> "$report"; md '```'
cuda_line="$(grep -m1 '^CUDA' "$work/info.txt")"
if [[ -n "$dry" ]]; then
  summary_row "env|gpuml info|$cuda_line|(dry run: not loaded is expected)"
elif grep -q "^CUDA: *loaded" "$work/info.txt"; then
  summary_row "env|plugin|$cuda_line|loaded"
elif [[ "$device" == cpu ]]; then
  summary_row "env|plugin|$cuda_line|(GPU_CHECK_DEVICE=cpu: a rehearsal of the stages on the CPU)"
else
  fail "the CUDA plugin did not load: $cuda_line"
fi
if [[ -z "$dry" ]]; then
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/GPU: /' | tee -a "$report"
  torch_line="$("$python" -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' 2>&1 | tail -n1)"
  echo "$torch_line"; md ""; md "- $torch_line"
fi
end_stage env

# ---------------------------------------------------------------------------------------------
# gtest_counts LOG: "passed P, failed F, skipped S" from a gtest run.
gtest_counts() {
  local p f s
  p="$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -n1)"
  # "[  SKIPPED ] 3 tests." (--gtest_brief) or "..., listed below:"; the list's lines name tests.
  f="$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test.*/\1/p' "$1" | tail -n1)"
  s="$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) test.*/\1/p' "$1" | tail -n1)"
  echo "passed ${p:-0}, failed ${f:-0}, skipped ${s:-0}"
}
run_gtest() {  # run_gtest NAME [gtest args]: runs bin/NAME, reports, returns its status
  local name=$1; shift
  local log="$work/$name.log" rc
  (cd "$work" && timeout "${TEST_TIMEOUT:-$( [[ -n "$dry" ]] && echo 900 || echo 240)}" "$bin/$name" --gtest_brief=1 "$@") > "$log" 2>&1
  rc=$?
  local counts; counts="$(gtest_counts "$log")"
  echo "$name: exit $rc; $counts"
  md "- $name: exit $rc; $counts"
  [[ $rc -ne 0 ]] && { md ""; md '```'; grep -E '^\[  FAILED|Failure|error|Skipped|timed out' "$log" | head -n 40 >> "$report"; md '```'; tail -n 30 "$log"; }
  summary_row "$current_stage|$name|exit $rc; $counts|$( [[ -n "$dry" ]] && echo 'exit 0' || echo '0 failed, 0 skipped')"
  figure stage=tests name="$name" exit="$rc" counts="$counts"
  return $rc
}

if [[ -n "$dry" ]]; then
  begin_stage cpu-tests
  md "The CPU test executables, from the bundle (the build tree and the system's Fashion-MNIST hidden)."
  md ""
  dry_failures=0
  for t in ${DRY_RUN_TESTS:-gpuml_unit_tests gpuml_ops_tests gpuml_grad_tests gpuml_e2e_tests}; do run_gtest "$t" || dry_failures=$(( dry_failures + 1 )); done
  # The peers must at least compile here (torch itself may be missing).
  for py in "$bundle"/bench/*.py; do
    "$python" -m py_compile "$py" 2> "$work/py.log" || { cat "$work/py.log" >&2; summary_row "cpu-tests|$(basename "$py")|does not compile|"; dry_failures=$(( dry_failures + 1 )); }
  done
  end_stage cpu-tests
  for s in tests nccl matmul train stream nccl-step; do
    md ""; md "## $s"; md ""; md "not run: dry run, no GPU"
    summary_row "$s|not run|dry run, no GPU|"
  done
  [[ "$dry_failures" -eq 0 ]] || finish 1
  finish 0
fi

if stage_on tests; then
  begin_stage tests
  run_gtest gpuml_cuda_tests
  run_gtest gpuml_unit_tests --gtest_filter='CudaPlugin*:Cli*:Device*'
  end_stage tests
fi

if stage_on nccl; then
  begin_stage nccl
  md "NCCL with one rank on this GPU (libnccl.so.2: ${nccl_path:-NOT FOUND}): init, collectives on device and host memory, a step through it against the fused step."
  md ""
  run_gtest gpuml_cuda_tests --gtest_filter='NcclOneRank*'
  end_stage nccl
fi

if stage_on matmul; then
  begin_stage matmul
  md "TFLOP/s; both sides time ${MATMUL_LAUNCHES:-20} back-to-back launches and one wait (gpuml: one synchronize after the launches; torch: two events)."
  md ""
  md "| case | gpuml | torch.matmul | gpuml/torch | target |"; md "|---|---:|---:|---:|---|"
  GPUML_MATMUL_LAUNCHES="${MATMUL_LAUNCHES:-20}" timeout 240 "$bin/gpuml_bench" --benchmark_filter='cuda_matmul/(bf16|tf32)/' \
    --benchmark_format=json > "$work/mm.json" 2> "$work/mm.err" || { cat "$work/mm.err" >&2; md "gpuml_bench failed: $(tail -n 3 "$work/mm.err")"; }
  "$python" "$bundle/bench/torch_matmul.py" --launches "${MATMUL_LAUNCHES:-20}" > "$work/mm_torch.txt" 2> "$work/mm_torch.err" \
    || { cat "$work/mm_torch.err" >&2; md "torch_matmul.py failed: $(tail -n 3 "$work/mm_torch.err")"; }
  "$python" - "$work/mm.json" "$work/mm_torch.txt" > "$work/mm.txt" << 'PY'
import json, sys
g = {}
try:
    for b in json.load(open(sys.argv[1]))["benchmarks"]:
        _, dtype, n = b["name"].split("/")[:3]   # cuda_matmul/<dtype>/<n>/real_time
        g[(dtype, int(n))] = b.get("TFLOPs", float("nan"))
except Exception:
    pass
t = {}
for line in open(sys.argv[2]):
    kv = dict(x.split("=") for x in line.split())
    t[(kv["dtype"], int(kv["n"]))] = float(kv["tflops"])
for dtype in ("bf16", "tf32"):
    for n in (4096, 8192):
        a, b = g.get((dtype, n), float("nan")), t.get((dtype, n), float("nan"))
        print(f"{dtype}|{n}|{a:.1f}|{b:.1f}|{a / b if b == b and b else float('nan'):.2f}")
PY
  while IFS='|' read -r dtype n a b r; do
    md "| $dtype ${n}^3 | $a | $b | $r | >= 0.95 |"
    summary_row "matmul|$dtype ${n}^3 TFLOP/s (gpuml/torch)|$a / $b = $r|>= 0.95"
    figure stage=matmul dtype="$dtype" n="$n" gpuml_tflops="$a" torch_tflops="$b" ratio="$r"
  done < "$work/mm.txt"
  end_stage matmul
fi

# peak_gpu_mib PID: the largest memory nvidia-smi saw for PID while it ran (sampled every 100 ms),
# the same measure for gpuml and PyTorch (context and library workspaces included).
# Where the process's pid is not the one nvidia-smi sees (a container's pid namespace), the rise of
# the GPU's used memory over its level before the start stands in (nothing else runs there).
sample_gpu_memory() {  # sample_gpu_memory OUTFILE CMD...: runs CMD, writes its peak MiB to OUTFILE
  local out=$1; shift
  local base; base="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2> /dev/null | head -n1)"
  "$@" &
  local pid=$! peak=0 rise=0 m u
  while kill -0 "$pid" 2> /dev/null; do
    m="$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2> /dev/null \
         | awk -F', *' -v p="$pid" '$1 == p {print $2}' | head -n1)"
    [[ -n "$m" && "$m" -gt "$peak" ]] 2> /dev/null && peak=$m
    u="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2> /dev/null | head -n1)"
    [[ -n "$u" && -n "$base" && $(( u - base )) -gt "$rise" ]] 2> /dev/null && rise=$(( u - base ))
    sleep 0.1
  done
  wait "$pid"; local rc=$?
  (( peak > 0 )) && echo "$peak" > "$out" || echo "~$rise" > "$out"
  return $rc
}

if stage_on train; then
  begin_stage train
  md "$epochs epoch(s) of $(( $(gzip -dc "$data/train-images-idx3-ubyte.gz" | wc -c) / 784 )) training images, Adam 1e-3; seconds per epoch (training only, both sides)."
  md "fp32: TF32 off on both sides (gpuml --precision fp32; torch allow_tf32 = False for matmul and cuDNN)."
  md "bf16: gpuml --precision bf16 against torch.autocast(bfloat16). Peak memory: nvidia-smi's used memory of each process, sampled every 100 ms."
  md ""
  md "| precision | model | batch | gpuml s/epoch | acc | peak MiB | torch eager | acc | peak MiB | torch.compile | gpuml/eager (<= 0.5) | gpuml/compile (<= 0.8) |"
  md "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for precision in ${PRECISIONS:-fp32 bf16}; do
    for model in ${MODELS:-mlp cnn}; do
      for batch in ${BATCHES:-128 1024}; do
        run="$work/run-$precision-$model-$batch"
        t0=$(date +%s)
        sample_gpu_memory "$run.gmem" "$bin/gpuml" train --device "$device" --model "$model" --epochs "$epochs" --batch-size "$batch" \
          --precision "$precision" --data "$data" --out "$run" --quiet ${GPUML_TRAIN_FLAGS:-} > "$run.log" 2>&1 \
          || { tail -n 20 "$run.log"; md "- gpuml train $precision $model b$batch FAILED: $(tail -n 2 "$run.log" | tr '\n' ' ')"; }
        read -r g_s g_acc < <("$python" - "$run/metrics.csv" << 'PY' 2> /dev/null || echo "nan nan"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(sum(float(r["epoch_seconds"]) for r in rows) / len(rows), rows[-1]["test_accuracy"])
PY
)
        peer=("$python" "$bundle/bench/torch_peer.py" --precision "$precision" "$bundle/bench/torch_fmnist.py" "$model" "$epochs"
              --device "$device" --batch-size "$batch" --data "$data")
        sample_gpu_memory "$run.emem" "${peer[@]}" > "$run.eager" 2> "$run.eager.err" || tail -n 5 "$run.eager.err"
        e_s="$(sed -n 's/.*s_per_epoch=\([0-9.]*\).*/\1/p' "$run.eager")"; e_acc="$(sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p' "$run.eager")"
        c_s=nan
        if [[ "$batch" == 1024 ]]; then
          "${peer[@]}" --compile > "$run.compile" 2> "$run.compile.err" || tail -n 5 "$run.compile.err"
          c_s="$(sed -n 's/.*s_per_epoch=\([0-9.]*\).*/\1/p' "$run.compile")"
        fi
        row="$("$python" -c "
g, e, c = float('${g_s:-nan}'), float('${e_s:-nan}'), float('${c_s:-nan}')
print(f'{g:.3f}|{e:.3f}|{c:.3f}|{g / e if e else float(\"nan\"):.2f}|{g / c if c == c and c else float(\"nan\"):.2f}')")"
        IFS='|' read -r gs es cs re rc <<< "$row"
        gm="$(cat "$run.gmem")"; em="$(cat "$run.emem")"
        md "| $precision | $model | $batch | $gs | $g_acc | $gm | $es | ${e_acc:-?} | $em | $cs | $re | $rc |"
        summary_row "train|$precision $model b$batch s/epoch gpuml/eager, gpuml/compile; MiB gpuml/torch|$re, $rc; $gm/$em|<= 0.5, <= 0.8; <= 1"
        figure stage=train precision="$precision" model="$model" batch="$batch" gpuml_s="$gs" gpuml_acc="$g_acc" gpuml_peak_mib="$gm" \
          eager_s="$es" eager_acc="${e_acc:-nan}" eager_peak_mib="$em" compile_s="$cs" ratio_eager="$re" ratio_compile="$rc"
        echo "train $precision $model b$batch: gpuml $gs s, eager $es s, compile $cs s; peak MiB $gm / $em ($(( $(date +%s) - t0 )) s)"
        grep -h "CUDA graphs" "$run.log" | sed "s/^/- $precision $model b$batch: /" >> "$work/graph-notes.md" || true
      done
    done
  done
  if [[ -s "$work/graph-notes.md" ]]; then md ""; md "CUDA graph replay per run:"; md ""; cat "$work/graph-notes.md" >> "$report"; fi
  end_stage train
fi

if stage_on stream; then
  begin_stage stream
  # Batches built in pinned memory and copied one step ahead on a copy stream: data wait < 10%.
  records="${STREAM_RECORDS:-500000}"
  "$bin/gpuml" data pack "synthetic:$records" "$work/shards" --shard-size 64M --quiet > "$work/pack.log" 2>&1 \
    || { tail -n 5 "$work/pack.log"; md "data pack failed"; }
  md "mlp, batch 128, 1 epoch of $records synthetic records from shards, --data-memory-limit 512M"; md ""
  "$bin/gpuml" train --device "$device" --model mlp --epochs 1 --batch-size 128 --data "$work/shards" \
    --data-memory-limit 512M --out "$work/run-stream" --quiet > "$work/run-stream.log" 2>&1 \
    || { tail -n 20 "$work/run-stream.log"; md "streamed gpuml train FAILED: $(tail -n 2 "$work/run-stream.log" | tr '\n' ' ')"; }
  read -r st_sps st_wait < <("$python" - "$work/run-stream/metrics.csv" << 'PY' 2> /dev/null || echo "nan nan"
import csv, sys
r = list(csv.DictReader(open(sys.argv[1])))[-1]
print(f'{float(r["samples_per_second"]):.0f}', f'{float(r["data_wait_fraction"]):.4f}')
PY
)
  md "| samples/s | data_wait_fraction (< 0.10) |"; md "|---:|---:|"; md "| $st_sps | $st_wait |"
  summary_row "stream|mlp b128 samples/s, data wait|$st_sps, $st_wait|wait < 0.10"
  figure stage=stream samples_per_s="$st_sps" data_wait_fraction="$st_wait"
  end_stage stream
fi

if stage_on gpt; then
  begin_stage gpt
  # A GPT against ../shared/bench/torch_gpt.py, the same preset and recipe (gpuml's --model PRESET
  # applies the peer's): gpu-char on tiny Shakespeare (GPT_PRESET, GPT_STEPS steps, GPT_PRECISIONS),
  # then gpt2-124m on the peer's random tokens of a 50,304 vocabulary (gpuml's default data for that
  # preset; GPT2_STEPS steps, GPT2_PRECISIONS; GPT2_STEPS=0 skips it). GPT_PRESET=cpu-small
  # GPT_STEPS=20 GPT2_STEPS=0 rehearses it on a CPU.
  text="$bundle/data/tinyshakespeare.txt"
  md "tokens/s = batch x context / step time: gpuml's mean step over all steps (its first step plans, and captures a"
  md "CUDA graph), the peer's median after 10 warm-up steps (torch.compile's compilation is in those). MFU by PaLM's"
  md "formula, (6N + 12 L C T) FLOPs per token, against 989 TFLOP/s (bf16 dense). gpt2-124m trains on random tokens"
  md "(timing only: its loss is about ln 50304 = 10.8 and says nothing)."
  md ""
  md "| preset | steps | precision | gpuml tokens/s | MFU | val loss | torch eager tokens/s | torch.compile tokens/s | gpuml/eager | gpuml/compile (>= 1.0) |"
  md "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  gpt_run() {  # gpt_run PRESET STEPS PRECISION: one row of the table
    local preset="$1" gsteps="$2" precision="$3" run="$work/gpt-$1-$3" data_flag=()
    [[ "$preset" != gpt2-124m ]] && data_flag=(--data "$text")
    "$bin/gpuml" train --device "$device" "${data_flag[@]}" --model "$preset" --steps "$gsteps" --precision "$precision" \
      --out "$run" --quiet > "$run.log" 2>&1 \
      || { tail -n 20 "$run.log"; md "- gpuml train $preset $precision FAILED: $(tail -n 2 "$run.log" | tr '\n' ' ')"; }
    local peer=("$python" "$bundle/bench/torch_gpt.py" --preset "$preset" --data "$text" --device "$device"
                --dtype "$precision" --iters "$gsteps" --timed "$gsteps" --eval-iters 10)
    "${peer[@]}" > "$run.eager" 2> "$run.eager.err" || tail -n 5 "$run.eager.err"
    "${peer[@]}" --compile > "$run.compile" 2> "$run.compile.err" || tail -n 5 "$run.compile.err"
    local row g_tps mfu loss e_tps c_tps re rc
    row="$("$python" - "$run" "$preset" << 'PY' 2> /dev/null || echo "nan|nan|nan|nan|nan|nan|nan"
import csv, json, re, sys
run, preset = sys.argv[1], sys.argv[2]
shape = {"cpu-small": (4, 128, 64, 12), "gpu-char": (6, 384, 256, 64), "gpt2-124m": (12, 768, 1024, 8)}[preset]
layers, width, ctx, batch = shape
nan = float("nan")
try:
    rows = list(csv.DictReader(open(run + "/metrics.csv")))
    steps = int(rows[-1]["step"])
    g_tps = steps * batch * ctx / sum(float(r["step_seconds"]) for r in rows)
    loss = float(rows[-1]["val_loss"])
    model = json.load(open(run + "/model.json"))
    vocab = model["layers"][0]["num_embeddings"]
    # parameters as torch counts them (the tied head once)
    n = vocab * width + ctx * width + layers * (12 * width * width + 13 * width) + 2 * width
    mfu = g_tps * (6 * n + 12 * layers * width * ctx) / 989e12
except Exception:
    g_tps, loss, mfu = nan, nan, nan
def peer(path):
    m = re.search(r"tokens_per_s=([0-9.]+)", open(path).read()) if path else None
    return float(m.group(1)) if m else nan
e, c = peer(run + ".eager"), peer(run + ".compile")
ratio = lambda a, b: a / b if b == b and b else nan
print(f"{g_tps:.0f}|{mfu:.3f}|{loss:.4f}|{e:.0f}|{c:.0f}|{ratio(g_tps, e):.2f}|{ratio(g_tps, c):.2f}")
PY
)"
    IFS='|' read -r g_tps mfu loss e_tps c_tps re rc <<< "$row"
    md "| $preset | $gsteps | $precision | $g_tps | $mfu | $loss | $e_tps | $c_tps | $re | $rc |"
    summary_row "gpt|$preset $precision tokens/s gpuml/eager, gpuml/compile|$re, $rc|>= 1.0 vs compile"
    figure stage=gpt preset="$preset" precision="$precision" gpuml_tokens_per_s="$g_tps" mfu="$mfu" val_loss="$loss" \
      eager_tokens_per_s="$e_tps" compile_tokens_per_s="$c_tps" ratio_eager="$re" ratio_compile="$rc"
    echo "gpt $preset $precision: gpuml $g_tps tokens/s (MFU $mfu), eager $e_tps, compile $c_tps"
  }
  for precision in ${GPT_PRECISIONS:-bf16 fp32}; do gpt_run "${GPT_PRESET:-gpu-char}" "${GPT_STEPS:-200}" "$precision"; done
  if (( ${GPT2_STEPS:-30} > 0 )); then
    for precision in ${GPT2_PRECISIONS:-bf16}; do gpt_run gpt2-124m "${GPT2_STEPS:-30}" "$precision"; done
  fi
  end_stage gpt
fi

if stage_on nccl-step; then
  begin_stage nccl-step
  # One process twice, the same model, data and seed: the fused step (forward, backward and update in
  # one graph), and GPUML_COMM=nccl, where the step is split around an NCCL all-reduce of the
  # gradient in device memory (one rank: what several ranks add per step besides the transfer).
  # Alternated twice; each side's figure is its fastest epoch over both runs (the first epoch plans and captures).
  nccl_batch="${NCCL_BATCH:-128}"
  md "mlp and cnn, batch $nccl_batch, $epochs epoch(s), fp32: seconds of the fastest epoch, the single process against NCCL with one rank."
  md ""
  md "| model | single s/epoch | NCCL 1 rank s/epoch | NCCL/single (<= 1.02) | gradients went through |"
  md "|---|---:|---:|---:|---|"
  for model in ${NCCL_MODELS:-mlp cnn}; do
    for rep in 1 2; do
      for side in single nccl; do
        run="$work/nccl-$model-$side-$rep"
        env $( [[ "$side" == nccl ]] && echo GPUML_COMM=nccl ) "$bin/gpuml" train --device "$device" --model "$model" \
          --epochs "$epochs" --batch-size "$nccl_batch" --data "$data" --out "$run" > "$run.log" 2>&1 \
          || { tail -n 20 "$run.log"; md "- gpuml train $model ($side) FAILED: $(tail -n 2 "$run.log" | tr '\n' ' ')"; }
      done
    done
    row="$("$python" - "$work" "$model" << 'PY' 2> /dev/null || echo "nan|nan|nan"
import csv, sys
work, model = sys.argv[1], sys.argv[2]
def fastest(side):
    best = float("nan")
    for rep in (1, 2):
        try:
            for r in csv.DictReader(open(f"{work}/nccl-{model}-{side}-{rep}/metrics.csv")):
                s = float(r["epoch_seconds"])
                best = s if best != best or s < best else best
        except Exception:
            pass
    return best
a, b = fastest("single"), fastest("nccl")
print(f"{a:.4f}|{b:.4f}|{b / a if a == a and a else float('nan'):.3f}")
PY
)"
    IFS='|' read -r single_s nccl_s ratio <<< "$row"
    through="$(grep -o 'gradients: [^,]*' "$work/nccl-$model-nccl-1.log" | head -n1)"
    md "| $model | $single_s | $nccl_s | $ratio | ${through:-NOT NCCL (see the log)} |"
    summary_row "nccl-step|$model b$nccl_batch s/epoch NCCL 1 rank / single|$nccl_s / $single_s = $ratio|<= 1.02"
    figure stage=nccl-step model="$model" batch="$nccl_batch" single_s="$single_s" nccl_s="$nccl_s" ratio="$ratio" through="${through:-none}"
    echo "nccl-step $model: single $single_s s/epoch, NCCL one rank $nccl_s s/epoch, ratio $ratio (${through:-gradients: not NCCL})"
  done
  end_stage nccl-step
fi

finish 0
