#!/usr/bin/env bash
# The Python package's "done when" (issue 23), checked on a fresh machine: in a freshly made minimal
# Debian 12 root (tools/fresh-root.sh, as CI makes one), run
#   1. the README's setup command (the quick start's first command: apt-get, build, the main job);
#   2. the README's venv + pip command ("Using gpuml from Python"): a bare venv, `pip install .`
#      (scikit-build-core and NumPy from PyPI);
#   3. the README's Python example, written to a new folder and run there with the venv's python.
# All three are read from README.md at run time, verbatim, so the check cannot drift from what the
# README tells users. A manual check, not part of CI: it builds the project twice (the setup and the
# wheel) and takes 15 to 30 minutes on 2 cores. Needs root and the network (Debian's archive, PyPI).
#
#   sudo bash tools/check-pip-fresh.sh                          # prints each phase; exit 0: passed
#   GPUML_PIP_CHECK_WORK=/var/tmp/x sudo bash tools/check-pip-fresh.sh   # where the root is made
#   GPUML_CI_CACHE=/var/cache/gpuml-ci                          # the cache CI uses (shared, optional)
set -euo pipefail

checkout="$(cd "$(dirname "$0")/.." && pwd)"
source "$checkout/tools/fresh-root.sh"
fresh_root_work="${GPUML_PIP_CHECK_WORK:-/var/tmp/gpuml-pip-check}"
start=$(date +%s)
step=""

# The three commands, from the README as it is now.
readme="$checkout/README.md"
setup_command="$(python3 - "$readme" << 'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
block = re.search(r"```sh\n(.*?)```", text[text.index("## Quick start"):], re.S).group(1)
print(next(line for line in block.splitlines() if line.strip()))
EOF
)"
pip_command="$(python3 - "$readme" << 'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
block = re.search(r"```sh\n(.*?)```", text[text.index("## Using gpuml from Python"):], re.S).group(1)
print(next(line for line in block.splitlines() if line.strip()))
EOF
)"
example_file="$(mktemp)"
python3 - "$readme" > "$example_file" << 'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
sys.stdout.write(re.search(r"```python\n(.*?)```", text[text.index("## Using gpuml from Python"):], re.S).group(1))
EOF
[[ "$setup_command" == *tools/setup.sh* ]] || { echo "pip-check: the README's setup command is not setup.sh: $setup_command" >&2; exit 1; }
[[ "$pip_command" == *"pip install ."* ]] || { echo "pip-check: the README's pip command lacks 'pip install .': $pip_command" >&2; exit 1; }
[[ -s "$example_file" ]] || { echo "pip-check: no Python example in the README" >&2; exit 1; }

announce() {
  step="$1"
  echo "pip-check: == $1 ($(date -u +%H:%M:%S), $(($(date +%s) - start)) s in)"
}
cleanup() {
  local status=$?
  fresh_root_unmount
  rm -f "$example_file"
  if ((status != 0)); then echo "pip-check: FAILED in '$step' after $(($(date +%s) - start)) s" >&2; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

announce "make a minimal Debian 12 root"
fresh_root_make
fresh_root_copy_checkout "$checkout"
fresh_root_mount
mkdir -p "$(fresh_root_path)/root/example"
cp "$example_file" "$(fresh_root_path)/root/example/example.py"

announce "README setup command: $setup_command"
in_root "cd /work/main && $setup_command"

announce "README pip command: $pip_command"
in_root "cd /work/main && $pip_command"

# As the README runs it (`v/bin/python example.py`), from a folder of its own, so that `import
# gpuml` finds the installed package and not the checkout's python/ sources.
announce "README Python example (v/bin/python example.py in a new folder)"
in_root "cd /root/example && /work/main/v/bin/python example.py"
test -f "$(fresh_root_path)/root/example/runs/python-mlp/last.safetensors"

step="done"
echo "pip-check: passed in $(($(date +%s) - start)) s"
