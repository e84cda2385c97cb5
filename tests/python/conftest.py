"""Shared pieces of the Python package's tests (run by ctest as `python_package`, with
PYTHONPATH=build/python; GPUML_CLI names the gpuml binary to compare against)."""
import gzip
import os
import shutil

import numpy as np
import pytest

FASHION_MNIST = os.environ.get("GPUML_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")


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
        f.write(np.ascontiguousarray(arr).tobytes())


def normalised(images):
    """uint8 (N, 28, 28) as gpuml train reads IDX images: float32 (N, 1, 28, 28), x * (1/255)
    computed in double (data/normalize.h)."""
    return (images.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)[:, None, :, :]


@pytest.fixture(scope="session")
def fmnist_subset(tmp_path_factory):
    """The first 2000 training and 500 test images: an IDX directory for the CLI, and the arrays."""
    src = os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")
    if not os.path.exists(src):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Fashion-MNIST is not installed (dataset-fashion-mnist), required under CI=true")
        pytest.skip("Fashion-MNIST is not installed (dataset-fashion-mnist)")
    out = tmp_path_factory.mktemp("fmnist")
    arrays = {}
    for stem, n in [("train-images-idx3-ubyte", 2000), ("train-labels-idx1-ubyte", 2000),
                    ("t10k-images-idx3-ubyte", 500), ("t10k-labels-idx1-ubyte", 500)]:
        a = read_idx(os.path.join(FASHION_MNIST, stem + ".gz"))[:n]
        write_idx(os.path.join(out, stem), a)
        arrays[stem] = a
    return {"dir": str(out),
            "x": arrays["train-images-idx3-ubyte"], "y": arrays["train-labels-idx1-ubyte"],
            "x_test": arrays["t10k-images-idx3-ubyte"], "y_test": arrays["t10k-labels-idx1-ubyte"]}


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("GPUML_CLI") or shutil.which("gpuml")
    if not path:
        pytest.skip("no gpuml binary (GPUML_CLI)")
    return path


def load_safetensors(path):
    """{name: array} of a .safetensors file, read by hand (no safetensors package needed)."""
    import json
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}[info["dtype"]]
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(body[b:e], dtype=dtype).reshape(info["shape"])
    return out
