#!/usr/bin/python3
"""A model exported from PyTorch (torch.onnx.export, opset 17) imports into gpuml, predicts the
same probabilities within 1e-4, and fine-tunes.

Usage: onnx_torch_import.py GPUML_BINARY WORK_DIR [unused]
Models: the mlp, and a CNN with BatchNorm2d (random running statistics; torch folds it into the
conv when exporting in eval mode), AvgPool2d, Dropout, Linear, GELU (exported as its erf formula),
LayerNorm, BatchNorm1d, Tanh, Sigmoid. Inputs: 500 Fashion-MNIST test images as an .npy.
Then `gpuml train --model mlp.onnx` fine-tunes the imported mlp for one epoch on a 2000-image
subset and must reach a test accuracy above 0.4 (chance: 0.1). Exits 77 (skipped) without torch, onnx or
numpy, or without the dataset.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ci_skip import skip  # noqa: E402

try:
    import numpy as np
    import onnx  # noqa: F401  (torch.onnx.export needs it)
    import torch
    import torch.nn as nn
except ImportError as e:
    skip(f"torch/onnx/numpy not installed ({e})")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_fmnist_common as common


def models():
    torch.manual_seed(7)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, stride=2, bias=False), nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.2),
                        nn.Linear(144, 64), nn.GELU(), nn.LayerNorm(64), nn.Linear(64, 32), nn.BatchNorm1d(32),
                        nn.Tanh(), nn.Linear(32, 16), nn.Sigmoid(), nn.Linear(16, 10))
    for m in cnn.modules():  # non-trivial running statistics and affine parameters
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                if hasattr(m, "running_mean"):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
    return {"mlp": mlp.eval(), "cnn": cnn.eval()}


def main():
    started = common.setup(2000, 500)
    if started is None:
        return 77
    gpuml, work, data, x = started
    xfile = os.path.join(work, "x.npy")
    np.save(xfile, x)
    ok = True
    for name, model in models().items():
        path = os.path.join(work, name + ".onnx")
        torch.onnx.export(model, torch.from_numpy(x[:2]), path, opset_version=17, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
        with torch.no_grad():
            expected = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
        out = os.path.join(work, name + ".npy")
        r = common.run([gpuml, "predict", "--model", path, "--input", xfile, "--output", out])
        got = np.load(out)
        err = float(np.abs(got - expected).max())
        print(f"{name}: torch.onnx.export -> gpuml predict: max |gpuml - torch| = {err:.3g} over {got.shape}")
        ok &= err < 1e-4
    run = os.path.join(work, "finetune")
    r = common.run([gpuml, "train", "--overwrite", "--model", os.path.join(work, "mlp.onnx"), "--epochs", "1", "--quiet",
                    "--data", data, "--out", run])
    print("fine-tune:", r.stdout.strip().splitlines()[-1])
    acc = float(r.stdout.split("eval acc ")[1].split()[0])
    ok &= acc > 0.4
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
