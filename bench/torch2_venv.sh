#!/usr/bin/env bash
# Makes (once) a virtual environment with PyTorch 2.x from PyPI, outside the checkout, and prints
# its python. The peer that users run today, beside Debian's PyTorch 1.13 (python3-torch).
# The PyPI wheel also pulls NVIDIA's CUDA libraries (several GiB); on a CPU machine they are unused.
#
#   bash bench/torch2_venv.sh                 # prints e.g. /root/.cache/gpuml/torch2-venv/bin/python
#   TORCH2_VENV=/opt/t2 bash bench/torch2_venv.sh
#
# Built on Debian's /usr/bin/python3 (3.11; the venv module is python3-venv), so that the peer runs
# under the same interpreter as Debian's torch; torch.compile (inductor) compiles C++ against its
# headers (python3-dev) with g++.
set -euo pipefail

torch_pin="${TORCH2_PIN:-torch==2.15.0}"
venv="${TORCH2_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gpuml/torch2-venv}"
python=/usr/bin/python3

if ! "$venv/bin/python" -c "import torch, numpy; assert torch.__version__.startswith('${torch_pin#torch==}')" 2> /dev/null; then
  missing=()
  "$python" -c "import ensurepip" 2> /dev/null || missing+=(python3-venv)
  [[ -f "/usr/include/python3.11/Python.h" ]] || missing+=(python3-dev)
  if ((${#missing[@]})); then
    echo "torch2_venv: installing ${missing[*]} (apt-get)" >&2
    sudo=""; [[ "$(id -u)" -ne 0 ]] && sudo=sudo
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" > /dev/null
  fi
  echo "torch2_venv: installing $torch_pin into $venv (PyPI; large download)" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q "$torch_pin" numpy >&2
fi
echo "$venv/bin/python"
