"""The Python package (python/gpuml) against the engine and the CLI: fit on arrays gives the
weights `gpuml train` gives, inputs are read in place, outputs are NumPy arrays that keep their
memory, errors are Python's types, Ctrl-C stops after a step, callbacks see every epoch."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import gpuml
from gpuml import _gpuml, layers
from conftest import load_safetensors, normalised

COMMON = dict(batch_size=128, seed=5, threads=1, device="cpu", verbose=0)


def cli_train(cli, data, out, epochs, extra=()):
    r = subprocess.run([cli, "train", "--model", "mlp", "--data", data, "--epochs", str(epochs), "--batch-size", "128",
                        "--seed", "5", "--threads", "1", "--device", "cpu", "--quiet", "--out", str(out), *extra],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout
    return load_safetensors(os.path.join(out, "last.safetensors"))


def assert_same_weights(a, b):
    params = [k for k in a if not k.startswith("optimizer.")]
    assert params and sorted(params) == sorted(k for k in b if not k.startswith("optimizer."))
    for k in params:
        assert np.array_equal(a[k], b[k]), f"{k} differs: max |diff| {np.abs(a[k] - b[k]).max()}"


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_fit_on_arrays_gives_the_cli_weights_bit_for_bit(fmnist_subset, cli, tmp_path, dtype):
    d = fmnist_subset
    cli_weights = cli_train(cli, d["dir"], tmp_path / "cli", epochs=2)
    if dtype == "float32":  # what the CLI makes of the IDX bytes
        x, x_test = normalised(d["x"]), normalised(d["x_test"])
    else:  # gpuml scales uint8 images itself, as for IDX files
        x, x_test = d["x"][:, None], d["x_test"][:, None]
    model = gpuml.Model("mlp")
    history = model.fit(x, d["y"], epochs=2, validation_data=(x_test, d["y_test"]), **COMMON)
    assert len(history["loss"]) == 2 and len(history["val_accuracy"]) == 2
    model.save(tmp_path / "py")
    assert_same_weights(cli_weights, load_safetensors(tmp_path / "py" / "last.safetensors"))


def test_torch_tensors_are_read_in_place_and_train_as_numpy_does(fmnist_subset):
    torch = pytest.importorskip("torch")
    d = fmnist_subset
    x = normalised(d["x"][:512])
    y = d["y"][:512].astype(np.int64)
    tx, ty = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    assert _gpuml.array_address(tx) == tx.data_ptr(), "a contiguous CPU tensor is read in place (DLPack)"
    assert _gpuml.array_address(x) == x.ctypes.data, "a C-contiguous NumPy array is read in place"
    strided = np.asfortranarray(x.reshape(512, 784))
    assert _gpuml.array_address(strided) != strided.ctypes.data  # copied once, still accepted
    a, b = gpuml.Model("mlp"), gpuml.Model("mlp")
    a.fit(x, y, epochs=1, **COMMON)
    b.fit(tx, ty, epochs=1, **COMMON)
    pa, pb = a.predict(x[:50]), b.predict(torch.from_numpy(x[:50].copy()))
    assert np.array_equal(pa, pb)
    # int32 labels, a float64 tensor and a transposed (non-contiguous) tensor are accepted too.
    c = gpuml.Model("mlp")
    c.fit(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.int32)), epochs=1, **COMMON)
    t = torch.from_numpy(x.reshape(512, 784).T.copy()).T.reshape(512, 1, 28, 28)
    assert c.predict(t).shape == (512, 10)


def test_predictions_are_numpy_arrays_that_keep_their_memory(fmnist_subset):
    d = fmnist_subset
    model = gpuml.Model("mlp")
    model.fit(normalised(d["x"][:256]), d["y"][:256], epochs=1, **COMMON)
    p = model.predict(normalised(d["x_test"][:20]))
    assert isinstance(p, np.ndarray) and p.dtype == np.float32 and p.shape == (20, 10)
    assert p.base is not None, "shares gpuml's buffer"
    del model
    import gc
    gc.collect()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    p[0, 0] = 7.0  # its own memory: writable
    assert p[0, 0] == 7.0


LARGE_INPUT = r"""
import resource, sys, numpy as np, gpuml
rows = (1 << 30) // (256 * 4)                     # 1 GiB of float32 features
x = np.ones((rows, 256), dtype=np.float32)
y = np.zeros(rows, dtype=np.int64); y[::2] = 1
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
class StopAfterOneStep:
    def on_batch_end(self, batch, logs):
        model.stop_training = True
model = gpuml.Model({"input_shape": [256], "layers": [{"type": "Linear", "in_features": 256, "out_features": 2}]})
h = model.fit(x, y, epochs=1, batch_size=256, threads=1, device="cpu", verbose=0, callbacks=[StopAfterOneStep()])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
assert h.report["stopped"], h.report
print((after - before) / (1 << 20))
"""


def test_a_1gib_input_is_not_copied(tmp_path):
    r = subprocess.run([sys.executable, "-c", LARGE_INPUT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout
    growth_mib = float(r.stdout.strip().splitlines()[-1])
    assert growth_mib < 200, f"peak RSS grew {growth_mib:.0f} MiB past the 1 GiB input: it was copied"


def test_errors_are_pythons_types_with_gpumls_messages(tmp_path):
    with pytest.raises(ValueError, match="resnet"):
        gpuml.Model("resnet")
    with pytest.raises(ValueError, match="unknown field 'bais'"):
        gpuml.Model([layers.Linear(4, 2, bais=False)], input_shape=(4,))
    model = gpuml.Model([layers.Linear(4, 2)], input_shape=(4,))
    x = np.random.default_rng(1).standard_normal((10, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="do not match"):
        model.fit(x, np.zeros(9, dtype=np.int64), verbose=0)
    with pytest.raises(ValueError):
        model.fit(x.reshape(10, 2, 2), np.zeros(10, dtype=np.int64), verbose=0, threads=1)
    with pytest.raises(ValueError, match="numeric"):
        model.fit(np.array([["a"] * 4] * 10), np.zeros(10, dtype=np.int64), verbose=0)
    with pytest.raises(ValueError, match="no weights"):
        model.predict(x)
    with pytest.raises(OSError):
        gpuml.load(tmp_path / "no-such-run")
    with pytest.raises(OSError):
        gpuml.Model("mlp").fit(str(tmp_path / "no-such-data"), verbose=0, threads=1)
    with pytest.raises(MemoryError):  # 2^21 x 2^21 weights: 16 TiB
        big = gpuml.Model([layers.Linear(1 << 21, 1 << 21)], input_shape=(1 << 21,))
        big.fit(np.zeros((1, 1 << 21), dtype=np.float32), np.zeros(1, dtype=np.int64), verbose=0, threads=1)
    with pytest.raises(TypeError):
        gpuml.Model(42)


def test_ctrl_c_raises_keyboard_interrupt_after_a_step_with_a_checkpoint(fmnist_subset, tmp_path):
    d = fmnist_subset
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    model = gpuml.Model("mlp")
    steps = []

    # Ctrl-C from another thread a moment into training (the main thread is then inside fit).
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))

    class Count:
        def on_batch_end(self, batch, logs):
            if not steps:
                timer.start()
            steps.append(logs["step"])

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt) as e:
        model.fit(normalised(d["x"]), d["y"], epochs=1000, run_dir=tmp_path / "run", callbacks=[Count()], **COMMON)
    timer.cancel()
    assert time.monotonic() - start < 60
    report = e.value.gpuml_report
    assert report["stopped"] and steps, report
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the library leaves Python's handler"
    # The checkpoint holds the weights it stopped with (the model keeps them too).
    x = normalised(d["x_test"][:20])
    assert np.array_equal(gpuml.load(tmp_path / "run").predict(x), model.predict(x))


def test_callbacks_see_every_epoch_and_every_step(fmnist_subset):
    d = fmnist_subset
    seen_by_function, seen_by_object, batches, begun, ended = [], [], [], [], []

    class Recorder:
        def on_train_begin(self, logs):
            begun.append(True)

        def on_batch_end(self, batch, logs):
            batches.append(batch)

        def on_epoch_end(self, epoch, logs):
            seen_by_object.append((epoch, sorted(logs)))

        def on_train_end(self, logs):
            ended.append(logs)

    model = gpuml.Model("mlp")
    history = model.fit(normalised(d["x"][:640]), d["y"][:640], epochs=3,
                        validation_data=(normalised(d["x_test"]), d["y_test"]),
                        callbacks=[lambda epoch, logs: seen_by_function.append(epoch), Recorder()], **COMMON)
    assert seen_by_function == [0, 1, 2]
    assert [e for e, _ in seen_by_object] == [0, 1, 2]
    assert seen_by_object[0][1] == ["accuracy", "loss", "seconds", "val_accuracy", "val_loss"]
    assert batches == list(range(5)) * 3
    assert begun == [True] and len(ended) == 1 and not ended[0]["stopped"]
    assert history["loss"][-1] < history["loss"][0]

    class StopAtSecondEpoch:
        def on_epoch_end(self, epoch, logs):
            model.stop_training = epoch == 1

    history = model.fit(normalised(d["x"][:640]), d["y"][:640], epochs=5, callbacks=[StopAtSecondEpoch()], **COMMON)
    assert len(history["loss"]) == 2 and history.report["stopped"]
    with pytest.raises(ZeroDivisionError):  # a callback's exception stops the run and comes out
        model.fit(normalised(d["x"][:640]), d["y"][:640], epochs=2, callbacks=[lambda e, logs: 1 / 0], **COMMON)

    # The arrays a model was fitted on (read in place) are freed with the model: no cycle through
    # the callbacks keeps them.
    import gc
    import weakref
    x = normalised(d["x"][:640])
    watch = weakref.ref(x)
    model = gpuml.Model("mlp")
    model.fit(x, d["y"][:640], epochs=1, callbacks=[Recorder()], **COMMON)
    del model, x
    gc.collect()
    assert watch() is None


def test_progress_is_printed_unless_verbose_is_0(fmnist_subset, capfd):
    d = fmnist_subset
    model = gpuml.Model("mlp")
    model.fit(normalised(d["x"][:256]), d["y"][:256], epochs=1, batch_size=128, threads=1, device="cpu", verbose=0)
    assert capfd.readouterr().err == ""
    model.fit(normalised(d["x"][:256]), d["y"][:256], epochs=1, batch_size=128, threads=1, device="cpu", verbose=2)
    assert "epoch 1/1: loss" in capfd.readouterr().err


def test_models_from_presets_files_dicts_and_layers_save_and_load(fmnist_subset, cli, tmp_path, capsys):
    d = fmnist_subset
    spec = {"input_shape": [1, 28, 28], "layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 784,
                                                                          "out_features": 10}]}
    (tmp_path / "m.json").write_text(json.dumps(spec))
    from_layers = gpuml.Model([layers.Flatten(), layers.Linear(784, 10)], input_shape=(1, 28, 28))
    for m in (gpuml.Model(spec), gpuml.Model(str(tmp_path / "m.json")), from_layers):
        assert m.num_parameters == 7850 and m.input_shape == (1, 28, 28)
    from_layers.summary(batch_size=32)
    assert "(32, 10)" in capsys.readouterr().out
    assert "cpu" in gpuml.info()
    # A path to a dataset trains as gpuml train --data does (a non-preset model included).
    h = from_layers.fit(d["dir"], epochs=1, **COMMON)
    assert 0 < h["accuracy"][0] <= 1 and "val_accuracy" in h
    run = from_layers.save(tmp_path / "run")
    loaded = gpuml.load(run)
    # Trained on IDX bytes: the trained model takes samples as the dataset holds them (uint8),
    # which a loaded one scales to [0, 1] as well.
    x = d["x_test"][:100, None]
    assert np.array_equal(loaded.predict(x), from_layers.predict(x))
    assert np.array_equal(loaded.predict(normalised(d["x_test"][:100])), from_layers.predict(x))
    ev = loaded.evaluate(x, d["y_test"][:100])
    ev_trainer = from_layers.evaluate(x, d["y_test"][:100])
    assert ev["accuracy"] == pytest.approx(ev_trainer["accuracy"])
    assert ev["loss"] == pytest.approx(ev_trainer["loss"], rel=1e-4)
    r = subprocess.run([cli, "eval", "--checkpoint", str(run), "--data", d["dir"]], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0 and "accuracy" in r.stdout, r.stdout
    with pytest.raises(FileExistsError):
        from_layers.save(run)
