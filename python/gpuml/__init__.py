"""gpuml: train and run neural networks on CPUs and NVIDIA GPUs with gpuml's C++ engine.

    import gpuml
    model = gpuml.Model("mlp")                     # or a JSON file, a dict, or gpuml.layers
    history = model.fit(x, y, epochs=2, validation_data=(x_test, y_test))
    probabilities = model.predict(x_test)          # a NumPy array
    model.save("runs/mlp")                         # a run directory gpuml eval|predict read
    model = gpuml.load("runs/mlp")

Arrays are read in place where their layout allows (C-contiguous float32/float64/int32/int64/
uint8 NumPy arrays, CPU tensors through DLPack); errors are ValueError (bad input or shapes),
MemoryError and OSError (files), with gpuml's messages. README, "Python", has the rest.
"""
from . import _gpuml, layers
from ._model import History, Model, load

__version__ = _gpuml.version()
__all__ = ["Model", "History", "load", "info", "layers", "__version__"]


def info():
    """What `gpuml info` prints: the build, the CPU and its features, backends and devices."""
    return _gpuml.info()
