"""The one input-scaling rule (src/train/task.h, Task::input_normalization) from Python: uint8
features are images scaled to [0, 1], other dtypes are used as given, keyed on each array's own
dtype, so the same images as uint8 or as float32 in [0, 1] give the same results in fit,
validation, evaluate and predict, before and after save/load."""
import numpy as np
import pytest

import gpuml
from gpuml import layers

RUN = dict(epochs=2, batch_size=16, lr=0.05, seed=3, threads=1, device="cpu", verbose=0)


def images(n=64):
    rng = np.random.default_rng(23)
    x8 = rng.integers(0, 256, size=(n, 1, 4, 4), dtype=np.uint8)
    xf = (x8.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)  # as data/normalize.h computes it
    y = rng.integers(0, 3, size=n).astype(np.int64)
    return x8, xf, y


def model():
    return gpuml.Model([layers.Flatten(), layers.Linear(16, 3)], input_shape=(1, 4, 4))


@pytest.mark.parametrize("trained_on", ["uint8", "float32"])
def test_predict_and_evaluate_scale_by_the_inputs_dtype(trained_on, tmp_path):
    x8, xf, y = images()
    m = model()
    m.fit(x8 if trained_on == "uint8" else xf, y, **RUN)
    p = m.predict(x8[:8])
    assert np.array_equal(p, m.predict(xf[:8])), "uint8 images and the same images as floats"
    e8, ef = m.evaluate(x8, y), m.evaluate(xf, y)
    assert e8["loss"] == ef["loss"] and e8["accuracy"] == ef["accuracy"]
    loaded = gpuml.load(m.save(tmp_path / "run"), device="cpu")
    assert np.array_equal(loaded.predict(x8[:8]), p)
    assert np.array_equal(loaded.predict(xf[:8]), p)


def test_validation_data_of_another_dtype_is_scaled_by_its_own():
    x8, xf, y = images()
    same = model().fit(x8, y, validation_data=(x8, y), **RUN)
    mixed = model().fit(x8, y, validation_data=(xf, y), **RUN)
    floats = model().fit(xf, y, validation_data=(x8, y), **RUN)
    assert same["val_loss"] == mixed["val_loss"] == floats["val_loss"]
    assert same["loss"] == floats["loss"], "training on uint8 images or on the same images as floats"
