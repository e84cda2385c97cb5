"""Layers for gpuml.Model, as in gpuml's JSON model format (README, "The model JSON format"),
with PyTorch's argument names and defaults:

    gpuml.Model([layers.Flatten(), layers.Linear(784, 256), layers.ReLU(), layers.Linear(256, 10)],
                input_shape=(1, 28, 28))

Each layer is a dict of its JSON fields; fields not named here pass through as keywords
(`layers.Conv2d(1, 32, 3, padding=1, name="c1")`), so every field the format takes is reachable.
"""

__all__ = ["Layer", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
           "LayerNorm", "Dropout", "Embedding", "ReLU", "GELU", "Tanh", "Sigmoid", "Flatten",
           "Sequential", "Add", "Concat"]


class Layer(dict):
    """One layer: {"type": TYPE, field: value, ...}."""

    def __init__(self, type, **fields):
        super().__init__(type=type, **{k: v for k, v in fields.items() if v is not None})

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.items() if k != "type")
        return f"{self['type']}({args})"


def _layer(type_name, positional):
    def make(*args, **kwargs):
        if len(args) > len(positional):
            raise TypeError(f"{type_name} takes at most {len(positional)} positional arguments "
                            f"({', '.join(positional)}), got {len(args)}")
        fields = dict(zip(positional, args))
        fields.update(kwargs)
        return Layer(type_name, **fields)
    make.__name__ = make.__qualname__ = type_name
    make.__doc__ = f"gpuml's {type_name} layer: positional fields {positional or '(none)'}, others as keywords."
    return make


Linear = _layer("Linear", ("in_features", "out_features"))
Conv2d = _layer("Conv2d", ("in_channels", "out_channels", "kernel_size"))
MaxPool2d = _layer("MaxPool2d", ("kernel_size",))
AvgPool2d = _layer("AvgPool2d", ("kernel_size",))
BatchNorm1d = _layer("BatchNorm1d", ("num_features",))
BatchNorm2d = _layer("BatchNorm2d", ("num_features",))
LayerNorm = _layer("LayerNorm", ("normalized_shape",))
Dropout = _layer("Dropout", ("p",))
Embedding = _layer("Embedding", ("num_embeddings", "embedding_dim"))
ReLU = _layer("ReLU", ())
GELU = _layer("GELU", ())
Tanh = _layer("Tanh", ())
Sigmoid = _layer("Sigmoid", ())
Flatten = _layer("Flatten", ())
Add = _layer("Add", ())
Concat = _layer("Concat", ())


def Sequential(*layers, **fields):
    """A nested Sequential of `layers`."""
    return Layer("Sequential", layers=list(layers), **fields)
