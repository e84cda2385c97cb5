"""Helpers shared by the onnx_* interop scripts: a Fashion-MNIST subset as IDX files, running
gpuml, and reading safetensors by hand (no safetensors package needed)."""
import gzip, json, os, struct, subprocess, sys

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"


def have_dataset():
    return os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz"))


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


def write_subset(work, train, test):
    """The first `train`/`test` samples as raw IDX files in WORK/data; returns that directory."""
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    for stem, n in [("train-images-idx3-ubyte", train), ("train-labels-idx1-ubyte", train),
                    ("t10k-images-idx3-ubyte", test), ("t10k-labels-idx1-ubyte", test)]:
        write_idx(os.path.join(data, stem), read_idx(os.path.join(DATA, stem + ".gz"))[:n])
    return data


def setup(train, test):
    """The scripts' common start: (gpuml, work) from argv, the first `train`/`test` samples in
    WORK/data, and the test images; None when the dataset is not installed (exit 77 then)."""
    gpuml, work = sys.argv[1], sys.argv[2]
    if not have_dataset():
        from ci_skip import skip
        skip("dataset-fashion-mnist not installed")
    os.makedirs(work, exist_ok=True)
    data = write_subset(work, train, test)
    return gpuml, work, data, test_images(data)


def test_images(data):
    """The test images as gpuml normalises them: (N, 1, 28, 28) f32 in [0, 1]."""
    x = read_idx(os.path.join(data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255
    return x[:, None, :, :]


def run(args, expect_ok=True):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if expect_ok and r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}")
    return r


def save_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        blobs.append(arr.tobytes())
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
