#!/usr/bin/python3
"""gpuml's ONNX export is valid ONNX and runs in ONNX Runtime with gpuml's outputs.

Usage: onnx_export_check.py GPUML_BINARY WORK_DIR [ORT_NODE_MODULES]
For the mlp and cnn presets (one epoch on a 2000-image Fashion-MNIST subset) and a JSON model
with the other exportable layers (BatchNorm2d, AvgPool2d, LayerNorm, GELU both forms, Tanh,
Sigmoid, Dropout, BatchNorm1d):
  1. `gpuml export --onnx` passes onnx.checker.check_model(full_check=True) (Debian's python3-onnx),
     with opset 17, IR version 8 and a dynamic batch dimension;
  2. when ORT_NODE_MODULES holds onnxruntime-node (`npm install --ignore-scripts onnxruntime-node`)
     and node is installed, ONNX Runtime (CPU execution provider) runs the model on the whole
     Fashion-MNIST test set (10000 images, batches of 1000 and 999 to vary the batch) and its
     probabilities equal `gpuml predict`'s within 1e-4.
Exits 77 (skipped) when onnx/numpy or the dataset is missing. A missing onnxruntime-node skips
only step 2, and says so.
"""
import json, os, shutil, subprocess, sys

try:
    import numpy as np
    import onnx
except ImportError:
    print("onnx/numpy (python3-onnx, python3-numpy) not installed: skipped")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_fmnist_common as common

HERE = os.path.dirname(os.path.abspath(__file__))

# Every other exportable layer, in one model that still trains on Fashion-MNIST.
ZOO = {"input_shape": [1, 28, 28], "layers": [
    {"type": "Conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1, "stride": 2},
    {"type": "BatchNorm2d", "num_features": 8},
    {"type": "GELU"},
    {"type": "AvgPool2d", "kernel_size": 2, "count_include_pad": False, "padding": 1},
    {"type": "Conv2d", "in_channels": 8, "out_channels": 8, "kernel_size": 3, "bias": False, "dilation": 2},
    {"type": "MaxPool2d", "kernel_size": 2, "stride": 1},
    {"type": "LayerNorm", "normalized_shape": [3, 3]},
    {"type": "Tanh"},
    {"type": "Flatten"},
    {"type": "Dropout", "p": 0.3},
    {"type": "Linear", "in_features": 72, "out_features": 32, "name": "fc"},
    {"type": "BatchNorm1d", "num_features": 32},
    {"type": "GELU", "approximate": "tanh"},
    {"type": "Sigmoid"},
    {"type": "Linear", "in_features": 32, "out_features": 10, "bias": False}]}


def check_onnx(path):
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    assert m.ir_version == 8 and [(o.domain, o.version) for o in m.opset_import] == [("", 17)], m.opset_import
    batch = m.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch", batch
    assert [o.name for o in m.graph.output] == ["logits", "probabilities"]
    return [n.op_type for n in m.graph.node]


def main():
    modules = os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else os.environ.get("GPUML_ORT_NODE_MODULES", ""))
    started = common.setup(2000, 10000)
    if started is None:
        return 77
    gpuml, work, data, x = started
    have_ort = bool(shutil.which("node")) and os.path.isdir(os.path.join(modules, "onnxruntime-node"))
    if not have_ort:
        print(f"ONNX Runtime check skipped: no node or no onnxruntime-node under '{modules}'")
    xfile = os.path.join(work, "x.f32")
    x.astype("<f4").tofile(xfile)
    with open(os.path.join(work, "zoo.json"), "w") as f:
        json.dump(ZOO, f)
    ok = True
    for name, model in [("mlp", "mlp"), ("cnn", "cnn"), ("zoo", os.path.join(work, "zoo.json"))]:
        run = os.path.join(work, "run-" + name)
        common.run([gpuml, "train", "--model", model, "--epochs", "1", "--quiet", "--data", data, "--out", run])
        path = os.path.join(work, name + ".onnx")
        common.run([gpuml, "export", "--checkpoint", run, "--onnx", path])
        print(f"{name}: onnx.checker (full_check) passed; nodes {check_onnx(path)}")
        if not have_ort:
            continue
        pred = os.path.join(work, name + ".npy")
        common.run([gpuml, "predict", "--checkpoint", run, "--input", os.path.join(data, "t10k-images-idx3-ubyte"),
                    "--output", pred])
        ours = np.load(pred)
        out = os.path.join(work, name + ".ort.f32")
        r = common.run(["node", os.path.join(HERE, "onnx_ort_run.js"), modules, path, xfile,
                        ",".join(map(str, x.shape)), "probabilities", out, "999"])
        print(r.stdout.strip())
        theirs = np.fromfile(out, dtype="<f4").reshape(ours.shape)
        err = float(np.abs(ours - theirs).max())
        agree = float((ours.argmax(1) == theirs.argmax(1)).mean())
        print(f"{name}: max |onnxruntime - gpuml predict| = {err:.3g} over {ours.shape}, argmax agreement {agree}")
        ok &= err < 1e-4
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
