#!/usr/bin/python3
"""gpuml's ONNX export is valid ONNX and runs in ONNX Runtime with gpuml's outputs.

Usage: onnx_export_check.py GPUML_BINARY WORK_DIR
For the mlp and cnn presets (one epoch on a 2000-image Fashion-MNIST subset) and a JSON model
with the other exportable layers (BatchNorm2d, AvgPool2d, LayerNorm, GELU both forms, Tanh,
Sigmoid, Dropout, BatchNorm1d):
  1. `gpuml export --onnx` passes onnx.checker.check_model(full_check=True) (Debian's python3-onnx),
     with opset 17, IR version 8 and a dynamic batch dimension;
  2. ONNX Runtime (the `onnxruntime` package from PyPI, CPU execution provider) runs the model on
     the whole Fashion-MNIST test set (10000 images, batches of 999 to vary the batch) and its
     probabilities equal `gpuml predict`'s within 1e-4;
  3. a small GPT (2 blocks, context 16, tied head) trained on a text this script writes exports
     (attention as MatMul/Softmax/MatMul with a causal mask, opset 17), passes the checker, and
     ONNX Runtime's logits equal `gpuml predict --logits`'s within 1e-4 on the validation windows,
     and, with the input's dims ("batch", "seq") dynamic, on prefixes of 1, 7, 15 and 16 tokens.
Skips (exit 77) when onnx/numpy, onnxruntime or the dataset is missing; under CI=true a missing
tool is a failure instead (ci_skip.py).
"""
import json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ci_skip import skip  # noqa: E402

try:
    import numpy as np
    import onnx
except ImportError as e:
    skip(f"onnx/numpy (python3-onnx, python3-numpy) not installed ({e})")
try:
    import onnxruntime as ort
except ImportError as e:
    skip(f"onnxruntime (pip install onnxruntime) not installed ({e})")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnx_fmnist_common as common


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


def run_onnxruntime(path, x, batch):
    """The model's probabilities from ONNX Runtime, in batches of `batch` (the last one shorter)."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    parts = [session.run(["probabilities"], {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(parts)


def main():
    gpuml, work, data, x = common.setup(2000, 10000)
    with open(os.path.join(work, "zoo.json"), "w") as f:
        json.dump(ZOO, f)
    ok = True
    for name, model in [("mlp", "mlp"), ("cnn", "cnn"), ("zoo", os.path.join(work, "zoo.json"))]:
        run = os.path.join(work, "run-" + name)
        common.run([gpuml, "train", "--overwrite", "--model", model, "--epochs", "1", "--quiet", "--data", data, "--out", run])
        path = os.path.join(work, name + ".onnx")
        common.run([gpuml, "export", "--checkpoint", run, "--onnx", path])
        print(f"{name}: onnx.checker (full_check) passed; nodes {check_onnx(path)}")
        pred = os.path.join(work, name + ".npy")
        common.run([gpuml, "predict", "--checkpoint", run, "--input", os.path.join(data, "t10k-images-idx3-ubyte"),
                    "--output", pred])
        ours = np.load(pred)
        theirs = run_onnxruntime(path, x, 999)
        err = float(np.abs(ours - theirs).max())
        agree = float((ours.argmax(1) == theirs.argmax(1)).mean())
        print(f"{name}: max |onnxruntime - gpuml predict| = {err:.3g} over {ours.shape}, argmax agreement {agree}")
        ok &= err < 1e-4
    ok &= check_gpt(gpuml, work)
    return 0 if ok else 1


def check_gpt(gpuml, work):
    text = "".join(f"{i} men went to mow, went to mow a meadow ({i * 5 % 11})\n" for i in range(60))
    corpus = os.path.join(work, "mow.txt")
    with open(corpus, "w") as f:
        f.write(text)
    chars = sorted(set(text))
    block, width = 16, 32
    spec = {"input_shape": [block], "layers": [
        {"type": "Embedding", "name": "wte", "num_embeddings": len(chars), "embedding_dim": width, "init_std": 0.02},
        {"type": "PositionEmbedding", "name": "wpe", "num_embeddings": block, "embedding_dim": width},
        {"type": "Sequential", "name": "blocks", "layers": [
            {"type": "TransformerBlock", "n_embd": width, "n_head": 2, "n_layer": 2}] * 2},
        {"type": "LayerNorm", "name": "ln_f", "normalized_shape": width},
        {"type": "Linear", "name": "head", "in_features": width, "out_features": len(chars), "bias": False,
         "tied_to": "wte.weight"}]}
    model = os.path.join(work, "gpt.json")
    with open(model, "w") as f:
        json.dump(spec, f)
    run, path = os.path.join(work, "run-gpt"), os.path.join(work, "gpt.onnx")
    common.run([gpuml, "train", "--overwrite", "--quiet", "--data", corpus, "--model", model, "--steps", "100",
                "--batch-size", "8", "--optimizer", "adamw", "--lr", "3e-3", "--device", "cpu", "--out", run])
    common.run([gpuml, "export", "--checkpoint", run, "--onnx", path])
    nodes = check_onnx(path)
    lut = {c: i for i, c in enumerate(chars)}
    ids = np.array([lut[c] for c in text], dtype=np.float32)
    val = ids[int(0.9 * len(ids)):]
    n = (len(val) - 1) // block
    windows = val[:n * block].reshape(n, block)
    np.save(os.path.join(work, "windows.npy"), windows)
    logits_path = os.path.join(work, "gpt-logits.npy")
    common.run([gpuml, "predict", "--checkpoint", run, "--input", os.path.join(work, "windows.npy"), "--output",
                logits_path, "--logits", "--device", "cpu"])
    ours = np.load(logits_path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    theirs = np.concatenate([session.run(["logits"], {session.get_inputs()[0].name: windows[i:i + 5]})[0]
                             for i in range(0, n, 5)])
    err = float(np.abs(ours - theirs).max()) if ours.shape == theirs.shape else float("inf")
    print(f"gpt: {nodes.count('Softmax')} softmaxes, {nodes.count('MatMul')} MatMuls; max |onnxruntime - gpuml "
          f"predict --logits| = {err:.3g} over {ours.shape}")
    ok = err < 1e-4
    # The batch and the sequence length are dynamic: a prefix of t tokens gives the logits of the
    # full window's first t positions (attention is causal, positions count from 0).
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in onnx.load(path).graph.input]
    if dims != [["batch", "seq"]]:
        print(f"gpt: FAIL: the input's dims are {dims}, expected [['batch', 'seq']]")
        ok = False
    for t in (1, 7, 15, block):
        prefix = session.run(["logits"], {session.get_inputs()[0].name: windows[:3, :t]})[0]
        err = float(np.abs(ours[:3, :t] - prefix).max()) if prefix.shape == ours[:3, :t].shape else float("inf")
        print(f"gpt: prefix of {t} tokens: logits {prefix.shape}, max |onnxruntime - gpuml| = {err:.3g}")
        ok &= err < 1e-4
    return ok


if __name__ == "__main__":
    sys.exit(main())
