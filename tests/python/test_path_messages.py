"""Messages about paths from the Python API name the path (and the argument), not a command-line
flag (--checkpoint, --data, --out) that a Python user never typed: gpuml.load, gpuml.Model(checkpoint)
and fit on a dataset path that is not there (OSError), fit(run_dir=...) into a directory in use."""
import pytest

import gpuml


def test_missing_checkpoints_and_data_are_named_by_path_not_by_a_flag(tmp_path):
    missing = tmp_path / "no-such-run"
    with pytest.raises(OSError) as e:
        gpuml.load(missing)
    assert str(missing) in str(e.value) and "--" not in str(e.value), str(e.value)
    empty = tmp_path / "empty-run"
    empty.mkdir()
    with pytest.raises(OSError) as e:
        gpuml.load(empty)
    assert str(empty) in str(e.value) and "no checkpoint" in str(e.value) and "--" not in str(e.value), str(e.value)
    with pytest.raises(OSError) as e:
        gpuml.Model(str(tmp_path / "gone.safetensors"))
    assert "gone.safetensors" in str(e.value) and "--" not in str(e.value), str(e.value)
    with pytest.raises(OSError) as e:
        gpuml.Model("mlp").fit(str(tmp_path / "no-such-data"), epochs=1, threads=1, verbose=0)
    assert "no-such-data" in str(e.value) and "--data" not in str(e.value), str(e.value)


def test_a_run_dir_in_use_is_refused_naming_the_argument_not_a_flag(tmp_path):
    import numpy as np
    x = np.zeros((8, 4), dtype=np.float32)
    y = np.zeros(8, dtype=np.int64)
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    model = gpuml.Model({"input_shape": [4], "layers": [{"type": "Linear", "in_features": 4, "out_features": 2}]})
    with pytest.raises(FileExistsError) as e:
        model.fit(x, y, epochs=1, threads=1, verbose=0, run_dir=used)
    assert str(used) in str(e.value) and "run_dir" in str(e.value) and "--" not in str(e.value), str(e.value)
    assert (used / "notes.txt").read_text() == "mine"
