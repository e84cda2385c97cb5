"""README's Python example ("Using gpuml from Python") runs as written, in a fresh folder."""
import os
import re
import subprocess
import sys

import pytest

from conftest import FASHION_MNIST

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def readme_example():
    text = open(README, encoding="utf-8").read()
    section = text[text.index("## Using gpuml from Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_example_runs_as_written(tmp_path):
    if not os.path.exists(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Fashion-MNIST is not installed (dataset-fashion-mnist), required under CI=true")
        pytest.skip("Fashion-MNIST is not installed")
    code = readme_example()
    assert "/usr/share/datasets/fashion-mnist/" in code
    code = code.replace("/usr/share/datasets/fashion-mnist/", FASHION_MNIST.rstrip("/") + "/")
    (tmp_path / "example.py").write_text(code)
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout
    assert "Total params" in r.stdout and "'accuracy'" in r.stdout, r.stdout
    assert (tmp_path / "runs" / "python-mlp" / "last.safetensors").exists()
