#!/usr/bin/python3
"""Checks that PyTorch loads a gpuml run and agrees with it.

Usage: torch_interop.py GPUML_BINARY WORK_DIR
Trains the mlp preset for one epoch on a 2000-image Fashion-MNIST subset with gpuml, loads
model.safetensors into torch's nn.Sequential (strict: every name and shape must match), and
checks that torch's probabilities equal `gpuml predict`'s within 1e-4. Exits 77 (skipped) when
torch or the dataset is missing.
"""
import os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ci_skip import skip  # noqa: E402

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as e:
    skip(f"torch/numpy not installed ({e})")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_fmnist_common import have_dataset, read_idx, write_subset  # noqa: E402


def load_safetensors(path):
    # The format, read by hand so that the check needs no safetensors package.
    import json, struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        b, e = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(body[b:e], dtype="<f4").copy().reshape(info["shape"]))
    return out


def main():
    gpuml, work = sys.argv[1], sys.argv[2]
    if not have_dataset():
        skip("dataset-fashion-mnist not installed")
    data = write_subset(work, 2000, 300)
    run = os.path.join(work, "run")
    subprocess.run([gpuml, "train", "--overwrite", "--model", "mlp", "--epochs", "1", "--quiet", "--data", data, "--out", run],
                   check=True)
    pred = os.path.join(work, "pred.npy")
    subprocess.run([gpuml, "predict", "--checkpoint", run, "--input", os.path.join(data, "t10k-images-idx3-ubyte"),
                    "--output", pred], check=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    model.load_state_dict(load_safetensors(os.path.join(run, "model.safetensors")), strict=True)
    x = torch.tensor(read_idx(os.path.join(data, "t10k-images-idx3-ubyte")), dtype=torch.float32).div(255).unsqueeze(1)
    with torch.no_grad():
        ours = torch.softmax(model(x), dim=1).numpy()
    theirs = np.load(pred)
    err = float(np.abs(ours - theirs).max())
    print(f"max |torch - gpuml| = {err:.3g} over {theirs.shape}")
    return 0 if err < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
