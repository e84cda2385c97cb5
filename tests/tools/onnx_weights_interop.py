#!/usr/bin/python3
"""Weights pass between gpuml and PyTorch as NPZ (numpy.load / numpy.savez) and safetensors.

Usage: onnx_weights_interop.py GPUML_BINARY WORK_DIR
1. gpuml trains the mlp for one epoch on a 2000-image subset; `gpuml export --npz` writes the
   weights; numpy.load reads them and torch's nn.Sequential loads them strictly; torch's
   probabilities equal `gpuml predict`'s within 1e-4.
2. torch initialises an mlp (its own init) and saves it with numpy.savez and as safetensors;
   `gpuml train --init-from` starts from each. With a learning rate of 1e-12 one epoch moves no
   weight measurably, so gpuml's predictions must equal torch's within 1e-4: the weights arrived
   by name, in the right layout.
3. A file missing a tensor makes `gpuml train --init-from` fail naming it, leaving no run.
Exits 77 (skipped) when torch, numpy or the dataset is missing.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ci_skip import skip  # noqa: E402

try:
    import numpy as np
    import torch
    import torch.nn as nn
except ImportError as e:
    skip(f"torch/numpy not installed ({e})")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_fmnist_common as common


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def torch_probs(model, x):
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()


def gpuml_probs(gpuml, run, data, out):
    common.run([gpuml, "predict", "--checkpoint", run, "--input", os.path.join(data, "t10k-images-idx3-ubyte"),
                "--output", out])
    return np.load(out)


def check(name, ours, theirs):
    err = float(np.abs(ours - theirs).max())
    print(f"{name}: max |torch - gpuml| = {err:.3g} over {theirs.shape}")
    return err < 1e-4


def main():
    started = common.setup(2000, 300)
    if started is None:
        return 77
    gpuml, work, data, x = started
    ok = True

    # 1. gpuml -> NPZ -> torch.
    run = os.path.join(work, "run")
    common.run([gpuml, "train", "--overwrite", "--model", "mlp", "--epochs", "1", "--quiet", "--data", data, "--out", run])
    npz = os.path.join(work, "weights.npz")
    common.run([gpuml, "export", "--checkpoint", run, "--npz", npz])
    arrays = np.load(npz)
    model = mlp()
    model.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files}, strict=True)
    ok &= check("export --npz", torch_probs(model, x), gpuml_probs(gpuml, run, data, os.path.join(work, "p1.npy")))

    # 2. torch -> NPZ / safetensors -> gpuml train --init-from.
    torch.manual_seed(1234)
    fresh = mlp()
    state = {k: v.numpy() for k, v in fresh.state_dict().items()}
    np.savez(os.path.join(work, "torch.npz"), **state)
    common.save_safetensors(os.path.join(work, "torch.safetensors"), state)
    expected = torch_probs(fresh, x)
    for file in ["torch.npz", "torch.safetensors"]:
        run2 = os.path.join(work, "run-" + file)
        common.run([gpuml, "train", "--overwrite", "--model", "mlp", "--epochs", "1", "--lr", "1e-12", "--quiet", "--data", data,
                    "--out", run2, "--init-from", os.path.join(work, file)])
        ok &= check("--init-from " + file, expected, gpuml_probs(gpuml, run2, data, os.path.join(work, "p2.npy")))

    # 3. A missing tensor is named, and nothing is written.
    del state["3.bias"]
    np.savez(os.path.join(work, "partial.npz"), **state)
    bad_run = os.path.join(work, "bad-run")
    r = common.run([gpuml, "train", "--model", "mlp", "--epochs", "1", "--quiet", "--data", data, "--out", bad_run,
                    "--init-from", os.path.join(work, "partial.npz")], expect_ok=False)
    print("missing tensor:", r.stdout.strip())
    ok &= r.returncode == 1 and "missing [3.bias]" in r.stdout and not os.path.exists(bad_run)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
