"""gpuml.Model: a network, trained and run by gpuml's engine (the C++ API of include/gpuml/gpuml.h)."""
import json
import math
import os
import shutil
import tempfile

from . import _gpuml
from ._data import is_path, split_pair
from ._progress import Progress

class History(dict):
    """fit()'s per-epoch figures, a dict of lists: loss, the task's metric (accuracy, rmse or
    perplexity), val_loss and val_<metric> when there is held-out data, seconds; plus `report`,
    the run's closing figures (device, task, whether it was stopped, run_dir)."""

    def __init__(self):
        super().__init__()
        self.report = {}

    @property
    def history(self):  # Keras's spelling
        return self


def _check_new_run_dir(path, who):
    """A run directory to write must be new or empty; the message names the path and the call."""
    if os.path.isdir(path) and os.listdir(path):
        raise FileExistsError(f"{path} is not empty: {who} writes a new run directory; give a new or empty one")
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path} is a file: {who} writes a run directory")


def _call(cb, name, *args):
    f = getattr(cb, name, None)
    if f is not None:
        f(*args)


class Model:
    """A network: a preset name ("mlp", "cnn"), a JSON model file (.json) or ONNX model (.onnx), a
    dict in gpuml's JSON model format, or a list of layers (gpuml.layers) with `input_shape`.

        model = gpuml.Model("mlp")
        model = gpuml.Model([layers.Flatten(), layers.Linear(784, 10)], input_shape=(1, 28, 28))
        history = model.fit(x, y, epochs=2)
        probabilities = model.predict(x[:5])
    """

    def __init__(self, spec="mlp", input_shape=None):
        self._preset = None
        self._trainer = None
        self._predictor = None
        self._checkpoint = None  # the file a loaded model came from
        self.stop_training = False  # a callback sets it to stop after the current step
        self.history = None
        if isinstance(spec, _gpuml.Model):
            self._spec = spec
        elif isinstance(spec, (list, tuple)):
            if input_shape is None:
                raise ValueError("a model given as layers needs input_shape (per sample, e.g. (1, 28, 28))")
            self._spec = _gpuml.Model.from_json(json.dumps({"input_shape": list(input_shape), "layers": list(spec)}))
        elif isinstance(spec, dict):
            self._spec = _gpuml.Model.from_json(json.dumps(spec))
        elif is_path(spec):
            path = os.fspath(spec)
            if isinstance(path, bytes):
                path = path.decode()
            looks_like_file = os.path.exists(path) or os.sep in path or os.path.splitext(path)[1] != ""
            if not looks_like_file:  # a preset name; an unknown one gets the engine's message
                self._spec = _gpuml.Model.preset(path)
                self._preset = path
            elif path.endswith(".json"):
                with open(path, encoding="utf-8") as f:
                    self._spec = _gpuml.Model.from_json(f.read())
            else:
                self._spec = _gpuml.Model.from_file(path)
        else:
            raise TypeError(f"gpuml.Model takes a preset name, a file path, a dict or a list of layers, "
                            f"not {type(spec).__name__}")

    # ---- the network ----
    @property
    def input_shape(self):
        return tuple(self._spec.input_shape)

    @property
    def num_parameters(self):
        return self._spec.num_parameters

    def to_json(self):
        """The model in gpuml's JSON model format, as a dict."""
        return json.loads(self._spec.to_json())

    def summary(self, batch_size=1, print_fn=print):
        """Prints the layers, their output shapes (for `batch_size` samples) and parameters."""
        print_fn(self._spec.summary(batch_size).rstrip("\n"))

    def __repr__(self):
        state = "trained" if self._trainer else "loaded" if self._predictor else "untrained"
        return f"<gpuml.Model input {self.input_shape}, {self.num_parameters:,} parameters, {state}>"

    # ---- training ----
    def fit(self, x, y=None, *, epochs=5, batch_size=128, validation_data=None, validation_split=None,
            optimizer="adam", lr=1e-3, weight_decay=None, callbacks=None, device="auto", precision="fp32",
            seed=0, threads=0, task="auto", deterministic=False, run_dir=None, verbose=1):
        """Trains from freshly initialised weights (seeded) and returns a History.

        x, y: arrays (NumPy, PyTorch or any __dlpack__ tensor, anything numpy.asarray takes): x (N, ...)
        float features or uint8 images (scaled to [0, 1] as gpuml train does), y (N,) class ids or
        (N, ...) float targets. Or x a path that gpuml train's --data takes (IDX directory, .csv,
        .npz, .txt, shards) and y None. Arrays that are C-contiguous float32/float64/int32/int64/uint8
        are read in place (keep them unchanged while the model lives); others are copied once.
        validation_data=(x_val, y_val) is evaluated after each epoch; validation_split holds out a
        fraction of x instead (default: none for arrays; gpuml train's default for a path).
        callbacks: callables f(epoch, logs) called after each epoch, or objects with any of
        on_train_begin(logs), on_epoch_end(epoch, logs), on_batch_end(batch, logs), on_train_end(logs);
        setting model.stop_training = True stops after the current step. run_dir: write what
        gpuml train writes there (metrics, TensorBoard, checkpoints; a Ctrl-C leaves a checkpoint of
        where it stopped, which `gpuml train --resume` continues when x was a dataset path). verbose: 0 silent, 1 a tqdm bar (plain lines without
        tqdm), 2 a line per epoch. Ctrl-C raises KeyboardInterrupt after the current step; the model
        keeps the weights it had there.
        """
        settings = dict(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                        weight_decay=weight_decay, seed=seed, threads=threads, device=device,
                        precision=precision, task=task, deterministic=deterministic,
                        out=os.fspath(run_dir) if run_dir is not None else None, print_progress=False)
        if run_dir is not None:  # checked here so that the message speaks of run_dir, not gpuml train's --out
            _check_new_run_dir(os.fspath(run_dir), "fit(run_dir=...)")
        if validation_split is not None:
            settings["val_split"] = validation_split
        vx, vy = split_pair(validation_data, "validation_data")
        tmp = None
        try:
            if is_path(x):
                if y is not None or validation_data is not None:
                    raise ValueError("with a dataset path, y and validation_data come from the dataset (pass y=None)")
                settings["data"] = os.fspath(x)
                if self._preset:
                    settings["model"] = self._preset
                else:  # the engine reads a model file: this one's JSON
                    tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
                    tmp.write(self._spec.to_json())
                    tmp.close()
                    settings["model"] = tmp.name
                trainer = _gpuml.Trainer(settings, None, None, None, None, None)
            else:
                if y is None:
                    raise ValueError("fit(x, y): y (the labels or targets) is missing")
                if validation_data is None and validation_split is None:
                    settings["val_split"] = 0.0
                trainer = _gpuml.Trainer(settings, self._spec, x, y, vx, vy)
        finally:
            if tmp is not None:
                os.unlink(tmp.name)
        self._trainer = trainer
        self._predictor = None
        return self._run(trainer, epochs, callbacks, verbose)

    def _run(self, trainer, epochs, callbacks, verbose):
        metric = trainer.metric_name
        callbacks = list(callbacks or [])
        progress = Progress(epochs, verbose)
        progress.metric_name = metric
        if verbose:
            callbacks.insert(0, progress)
        history = History()
        self.history = history
        self.stop_training = False

        def epoch_logs(e):
            logs = {"loss": e["loss"], metric: e["metric"]}
            if not math.isnan(e["val_loss"]):
                logs["val_loss"] = e["val_loss"]
                logs["val_" + metric] = e["val_metric"]
            logs["seconds"] = e["seconds"]
            return logs

        def on_step(r):
            for cb in callbacks:
                _call(cb, "on_batch_end", r["batch"] - 1, r)
            if self.stop_training:
                trainer.request_stop()

        def on_epoch(e):
            logs = epoch_logs(e)
            for k, v in logs.items():
                history.setdefault(k, []).append(v)
            for cb in callbacks:
                if cb is progress:
                    progress.on_epoch_end(e["epoch"] - 1, {**e, "metric": e["metric"]})
                elif callable(cb) and not hasattr(cb, "on_epoch_end"):
                    cb(e["epoch"] - 1, dict(logs))
                else:
                    _call(cb, "on_epoch_end", e["epoch"] - 1, dict(logs))
            if self.stop_training:
                trainer.request_stop()

        if any(hasattr(cb, "on_batch_end") for cb in callbacks):
            trainer.on_step_end(on_step)
        else:  # signals are still checked after each step, by the binding itself
            trainer.on_step_end(lambda r: trainer.request_stop() if self.stop_training else None)
        trainer.on_epoch_end(on_epoch)
        for cb in callbacks:
            _call(cb, "on_train_begin", {})
        try:
            report = trainer.fit()
        finally:
            progress.close()
        history.report = report
        for cb in callbacks:
            _call(cb, "on_train_end", dict(report))
        return history

    # ---- using the model ----
    def _runner(self):
        if self._trainer is not None:
            return self._trainer
        if self._predictor is not None:
            return self._predictor
        raise ValueError("the model has no weights yet: fit() it, or gpuml.load() a trained one")

    def predict(self, x):
        """What the model gives for x (N, ...): class probabilities (N, C), or regression values
        (N, K...), as a NumPy array (gpuml's memory, owned by the array). x: float features
        (used as given) or uint8 images (scaled to [0, 1]): the one input-scaling rule, the same
        whatever dtype fit() had and for a loaded model."""
        return self._runner().predict(x)

    def evaluate(self, x, y):
        """{"loss": ..., metric: ..., "count": rows} on x, y (the task's loss and metric)."""
        if self._trainer is not None:
            e = self._trainer.evaluate(x, y)
            return {"loss": e["loss"], e["metric_name"]: e["metric"], "count": e["count"]}
        import numpy as np  # a loaded model: from its predictions (classification or regression)
        p = np.asarray(self._runner().predict(x), dtype=np.float64)
        y = np.asarray(y)
        if y.dtype.kind in "iu" and p.ndim == 2 and p.shape[0] == y.shape[0]:
            picked = p[np.arange(len(y)), y.astype(np.int64)]
            return {"loss": float(-np.mean(np.log(np.maximum(picked, 1e-300)))),
                    "accuracy": float(np.mean(p.argmax(1) == y)), "count": int(len(y))}
        err = p.reshape(len(p), -1) - y.astype(np.float64).reshape(len(y), -1)
        mse = float(np.mean(err ** 2))
        return {"loss": mse, "rmse": math.sqrt(mse), "count": int(len(y))}

    def save(self, path):
        """Writes a run directory (last.safetensors and model.json), as gpuml train leaves one:
        gpuml.load, gpuml eval|predict|export --checkpoint PATH and gpuml train --resume read it.
        The directory must be new or empty."""
        path = os.fspath(path)
        _check_new_run_dir(path, "save()")
        os.makedirs(path, exist_ok=True)
        checkpoint = os.path.join(path, "last.safetensors")
        if self._trainer is not None:
            self._trainer.save(checkpoint)
        elif self._checkpoint is not None and self._checkpoint.endswith(".safetensors"):
            shutil.copyfile(self._checkpoint, checkpoint)
        else:
            raise ValueError("the model has no weights to save: fit() it first")
        with open(os.path.join(path, "model.json"), "w", encoding="utf-8") as f:
            f.write(self._spec.to_json() + "\n")
        return path


def load(path, device="auto"):
    """A trained model: a run directory (its best checkpoint, else the last), a .safetensors
    checkpoint, or an .onnx model. Ready to predict() and evaluate()."""
    path = os.fspath(path)
    predictor = _gpuml.Predictor.load(path, device)
    model = Model(predictor.model)
    model._predictor = predictor
    if os.path.isdir(path):
        for name in ("best.safetensors", "last.safetensors"):
            if os.path.exists(os.path.join(path, name)):
                model._checkpoint = os.path.join(path, name)
                break
    else:
        model._checkpoint = path
    return model
