"""fit()'s progress: a tqdm bar per epoch when tqdm is installed (and verbose=1), plain lines
otherwise (verbose=2, or no tqdm), nothing with verbose=0. A callback like any other."""
import math
import sys
import time


def _figures(logs, metric_name):
    parts = [f"loss {logs['loss']:.4f}"]
    if logs.get("metric") is not None and not math.isnan(logs["metric"]):
        parts.append(f"{metric_name} {logs['metric']:.4f}")
    if logs.get("val_loss") is not None and not math.isnan(logs["val_loss"]):
        parts.append(f"val_loss {logs['val_loss']:.4f}")
        parts.append(f"val_{metric_name} {logs['val_metric']:.4f}")
    return " ".join(parts)


class Progress:
    """Reports fit()'s steps and epochs to `stream` (stderr)."""

    def __init__(self, epochs, verbose=1, stream=None):
        self.epochs = epochs
        self.verbose = verbose
        self.stream = stream or sys.stderr
        self.metric_name = "metric"
        self._bar = None
        self._tqdm = None
        if verbose == 1:
            try:
                from tqdm.auto import tqdm
                self._tqdm = tqdm
            except ImportError:
                self._tqdm = None
        self._last_line = 0.0
        self._loss_sum = 0.0
        self._rows = 0

    def on_batch_end(self, batch, logs):
        if self.verbose == 0:
            return
        self._loss_sum += logs["loss"] * logs["rows"]
        self._rows += logs["rows"]
        running = self._loss_sum / max(self._rows, 1)
        if self._tqdm is not None:
            if self._bar is None:
                self._bar = self._tqdm(total=logs["batches"], desc=f"epoch {logs['epoch']}/{self.epochs}",
                                       file=self.stream, leave=True, unit="step")
            self._bar.update(1)
            if logs["batch"] % 10 == 0 or logs["batch"] == logs["batches"]:
                self._bar.set_postfix_str(f"loss {running:.4f}", refresh=False)
            return
        now = time.monotonic()
        if now - self._last_line >= 10 or logs["batch"] == 1:  # a line every 10 s at most
            self._last_line = now
            print(f"epoch {logs['epoch']}/{self.epochs} step {logs['batch']}/{logs['batches']} "
                  f"loss {running:.4f}", file=self.stream, flush=True)

    def on_epoch_end(self, epoch, logs):
        if self.verbose == 0:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._loss_sum, self._rows = 0.0, 0
        print(f"epoch {epoch + 1}/{self.epochs}: {_figures(logs, self.metric_name)} "
              f"({logs['seconds']:.1f} s)", file=self.stream, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
