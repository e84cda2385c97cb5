"""What fit(), evaluate() and predict() accept: arrays (NumPy, anything with __dlpack__ such as a
PyTorch tensor, or anything numpy.asarray takes) or a path to a dataset gpuml reads itself (an IDX
directory, a .csv, an .npz, a text file, a directory of shards)."""
import os


def is_path(x):
    return isinstance(x, (str, bytes, os.PathLike))


def split_pair(data, what):
    """(x, y) from a validation_data tuple."""
    if data is None:
        return None, None
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ValueError(f"{what} must be a tuple (x, y) of arrays")
