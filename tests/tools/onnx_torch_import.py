#!/usr/bin/python3
"""A model exported from PyTorch (torch.onnx.export, opset 17) imports into gpuml, predicts the
same probabilities within 1e-4, and fine-tunes.

Usage: onnx_torch_import.py GPUML_BINARY WORK_DIR [unused]
Models: the mlp, and a CNN with BatchNorm2d (random running statistics; torch folds it into the
conv when exporting in eval mode), AvgPool2d, Dropout, Linear, GELU (exported as its erf formula),
LayerNorm, BatchNorm1d, Tanh, Sigmoid; and a ResNet-style graph (issue 21): four residual blocks
(conv-BN-ReLU-conv-BN plus the block's input, a 1x1 projection where the width changes), one
torch.cat of two branches, a value used by several nodes; its logits (`predict --logits`) must
match PyTorch's within 1e-5. Inputs: 500 Fashion-MNIST test images as an .npy.
Then `gpuml train --model X.onnx` fine-tunes the imported mlp and the ResNet for one epoch on a
2000-image subset and each must reach a test accuracy above 0.4 (chance: 0.1). Exits 77 (skipped) without torch, onnx or
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


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the input (projected by a 1x1 conv when the width changes), ReLU."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.proj = nn.Conv2d(cin, cout, 1, stride) if (cin != cout or stride != 1) else None

    def forward(self, x):
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (self.proj(x) if self.proj is not None else x))


class ResNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.left, self.right = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 4, 3, padding=1)  # concatenated: 8 channels
        self.blocks = nn.Sequential(Block(8, 8), Block(8, 16, 2), Block(16, 16), Block(16, 16))
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        s = torch.relu(self.stem(x))  # used by both branches
        x = torch.cat([self.left(s), self.right(s)], dim=1)
        return self.fc(torch.flatten(self.pool(self.blocks(x)), 1))


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
    resnet = ResNetish()
    for m in resnet.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return {"mlp": mlp.eval(), "cnn": cnn.eval(), "resnet": resnet.eval()}


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
        if name == "resnet":  # a graph: the logits themselves, to 1e-5
            with torch.no_grad():
                logits = model(torch.from_numpy(x)).numpy()
            common.run([gpuml, "predict", "--model", path, "--input", xfile, "--output", out, "--logits",
                        "--device", "cpu"])
            err = float(np.abs(np.load(out) - logits).max())
            print(f"{name}: logits: max |gpuml - torch| = {err:.3g} (|logits| up to {np.abs(logits).max():.3g})")
            ok &= err <= 1e-5
    for name in ("mlp", "resnet"):
        run = os.path.join(work, "finetune-" + name)
        # The ResNet starts from PyTorch's random init (BN folded into the convs): Adam, batch 32.
        flags = ["--batch-size", "32", "--optimizer", "adam"] if name == "resnet" else []
        r = common.run([gpuml, "train", "--overwrite", "--model", os.path.join(work, name + ".onnx"), "--epochs", "1",
                        "--quiet", "--data", data, "--out", run] + flags)
        print(f"fine-tune {name}:", r.stdout.strip().splitlines()[-1])
        acc = float(r.stdout.split("eval acc ")[1].split()[0])
        ok &= acc > 0.4
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
