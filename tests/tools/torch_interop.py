#!/usr/bin/python3
"""Checks that PyTorch loads a gpuml run and agrees with it.

Usage: torch_interop.py GPUML_BINARY WORK_DIR
Trains the mlp preset for one epoch on a 2000-image Fashion-MNIST subset with gpuml, loads
model.safetensors into torch's nn.Sequential (strict: every name and shape must match), and
checks that torch's probabilities equal `gpuml predict`'s within 1e-4. Exits 77 (skipped) when
torch or the dataset is missing.
"""
import gzip, os, subprocess, sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError:
    print("torch/numpy not installed: skipped")
    sys.exit(77)

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw[4 + 4 * nd:], dtype=np.uint8).reshape(dims)


def write_idx(path, arr):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, arr.ndim]))
        for d in arr.shape:
            f.write(int(d).to_bytes(4, "big"))
        f.write(arr.tobytes())


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
    if not os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz")):
        print("dataset-fashion-mnist not installed: skipped")
        return 77
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    for stem, n in [("train-images-idx3-ubyte", 2000), ("train-labels-idx1-ubyte", 2000),
                    ("t10k-images-idx3-ubyte", 300), ("t10k-labels-idx1-ubyte", 300)]:
        write_idx(os.path.join(data, stem), read_idx(os.path.join(DATA, stem + ".gz"))[:n])
    run = os.path.join(work, "run")
    subprocess.run([gpuml, "train", "--model", "mlp", "--epochs", "1", "--quiet", "--data", data, "--out", run],
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
