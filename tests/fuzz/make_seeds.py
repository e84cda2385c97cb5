#!/usr/bin/env python3
"""Writes the small seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

(corpus/image/ is not written here: its PNG and JPEG seeds were made with gpuml's own encoders,
data::write_png_file and data::write_jpeg_file, on 3x7 to 6x5 gray and RGB images, each prefixed
with the option byte fuzz_entries.cpp reads: 0 names the file .png, 1 .jpg.)

    python3 tests/fuzz/make_seeds.py [path/to/gpuml]

Pure Python (no numpy) for the file formats; with a built gpuml binary it also trains a tiny
model for a real checkpoint and exports it as ONNX. Seeds are kept small (a few hundred bytes):
libFuzzer mutates small inputs much faster, and the committed corpus stays reviewable.
"""
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def byte_level_bpe_json(merges, pairs_as_lists=False):
    """A tokenizer.json of a byte-level BPE: the 256 byte tokens (GPT-2's characters), then merges."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    vocab = {chars[b]: b for b in range(256)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return json.dumps({"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": level,
                       "decoder": level, "model": {"type": "BPE", "dropout": None, "vocab": vocab,
                       "merges": [[a, b] if pairs_as_lists else a + " " + b for a, b in merges]}})


def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def npy(descr, shape, payload, fortran=False, version=1):
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        descr, "True" if fortran else "False", "".join("%d," % d for d in shape))
    pre = 10 if version == 1 else 12
    header += " " * ((64 - (pre + len(header) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode("latin1") + payload


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def zip_of(members, compression):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def main():
    # IDX: u8 images and labels, i32 and f32 arrays; gzip through the same target.
    images = idx(0x08, [2, 3, 3], bytes(range(18)))
    labels = idx(0x08, [2], b"\x00\x01")
    floats = idx(0x0D, [2, 2], struct.pack(">4f", 0.5, -1.0, 2.0, 3.5))
    ints = idx(0x0C, [3], struct.pack(">3i", -1, 0, 7))
    shorts = idx(0x0B, [2, 1], struct.pack(">2h", -3, 4))
    doubles = idx(0x0E, [1, 2], struct.pack(">2d", 1.0, -2.0))
    for name, data in [("images", images), ("labels", labels), ("f32", floats), ("i32", ints), ("i16", shorts),
                       ("f64", doubles)]:
        put("idx", name, data)
        put("idx_gzip", name, data)
    put("idx", "images.gz", gzip.compress(images, mtime=0))

    # CSV: the first byte picks the options (fuzz_entries.cpp, run_csv).
    put("csv", "plain", b"\x00a,b,label\n1,2,0\n3,4,1\n")
    put("csv", "mean_fill", b"\x01a,b,label\n1,,0\n3,4,1\n5,x,2\n")
    put("csv", "constant_fill", b"\x02x,y,z\n1.5,2e3,0\n-3,nan,1\n")
    put("csv", "label_by_name", b"\x04label,f1,f2\nsetosa,1,2\nvirginica,3,4\n")
    put("csv", "no_header", b"\x001,2,0\n3,4,1\n")
    put("csv", "quoted", b'\x00"a","b ""q""",label\n"1","2",0\r\n3,4,1\r\n')
    put("csv", "predict", b"\x031,2,3\n4,5,6\n")
    put("csv", "semicolons", b"\x00a;b;label\n1;2;0\n")

    # NPY: several dtypes, both byte orders, Fortran order, versions 1 and 2.
    put("npy", "f4", npy("<f4", [2, 2], f32([1, 2, 3, 4])))
    put("npy", "u1_images", npy("|u1", [1, 2, 2], bytes([0, 64, 128, 255])))
    put("npy", "f8_big_endian", npy(">f8", [2], struct.pack(">2d", 1.0, 2.0)))
    put("npy", "i8_fortran", npy("<i8", [2, 2], struct.pack("<4q", 1, 2, 3, 4), fortran=True))
    put("npy", "v2_i4", npy("<i4", [3], struct.pack("<3i", 1, 2, 3), version=2))
    put("npy", "bool", npy("|b1", [2], b"\x00\x01"))
    put("npy", "f2", npy("<f2", [2], struct.pack("<2e", 0.5, 1.5)))

    # NPZ: x/y and x_train/y_train/x_test/y_test, stored and deflated.
    x = npy("<f4", [2, 2], f32([1, 2, 3, 4]))
    y = npy("<i8", [2], struct.pack("<2q", 0, 1))
    put("npz", "xy_stored", zip_of({"x.npy": x, "y.npy": y}, zipfile.ZIP_STORED))
    put("npz", "xy_deflated", zip_of({"x.npy": x, "y.npy": y}, zipfile.ZIP_DEFLATED))
    xi = npy("|u1", [2, 2, 2], bytes(range(8)))
    yi = npy("|u1", [2], b"\x01\x00")
    put("npz", "train_test", zip_of({"x_train.npy": xi, "y_train.npy": yi, "x_test.npy": xi, "y_test.npy": yi},
                                    zipfile.ZIP_STORED))

    # safetensors: every dtype gpuml reads, metadata, an empty tensor.
    put("safetensors", "two_f32", safetensors({"w": ("F32", [2, 2], f32([1, 2, 3, 4])), "b": ("F32", [2], f32([0, 1]))}))
    put("safetensors", "dtypes", safetensors({
        "a": ("F64", [1], struct.pack("<d", 1.0)), "b": ("BF16", [2], b"\x80\x3f\x00\x40"),
        "c": ("F16", [1], struct.pack("<e", 1.0)), "d": ("I32", [1], struct.pack("<i", -1)),
        "e": ("I64", [1], struct.pack("<q", 5)), "f": ("U8", [3], b"abc"), "g": ("BOOL", [2], b"\x00\x01")}))
    put("safetensors", "metadata", safetensors({"x": ("F32", [1], f32([1]))}, {"format": "pt", "k": "v"}))
    put("safetensors", "empty_tensor", safetensors({"z": ("F32", [0, 3], b"")}))

    # Model JSON: the layer types and nesting a user writes.
    mlp = {"input_shape": [1, 4, 4], "layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 16, "out_features": 8},
                                               {"type": "ReLU"}, {"type": "Linear", "in_features": 8, "out_features": 3}]}
    cnn = {"input_shape": [1, 8, 8], "layers": [
        {"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d", "num_features": 2}, {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Dropout", "p": 0.1}, {"type": "Flatten"},
        {"type": "Linear", "in_features": 32, "out_features": 4, "name": "head"}]}
    nested = {"input_shape": [6], "layers": [{"type": "Sequential", "name": "block", "layers": [
        {"type": "Linear", "in_features": 6, "out_features": 6}, {"type": "LayerNorm", "normalized_shape": 6},
        {"type": "GELU"}]}, {"type": "Linear", "in_features": 6, "out_features": 2}]}
    embed = {"input_shape": [5], "layers": [{"type": "Embedding", "num_embeddings": 10, "embedding_dim": 3},
                                             {"type": "Flatten"}, {"type": "Linear", "in_features": 15, "out_features": 2}]}
    for name, m in [("mlp", mlp), ("cnn", cnn), ("nested", nested), ("embedding", embed)]:
        put("model_json", name + ".json", json.dumps(m))
    put("model_json", "deep_arrays", "[" * 100 + "]" * 100)

    # Shard manifest: what `gpuml data pack` writes.
    manifest = {"format": "gpuml-shards", "version": 1, "compression": "none", "num_classes": 2, "source": "seed",
                "fields": [{"name": "x", "dtype": "u8", "shape": [2, 2]}, {"name": "y", "dtype": "i64", "shape": []}],
                "splits": [{"name": "train", "records": 2, "shards": [
                    {"file": "train-00000.shard", "records": 2, "bytes": 24, "crc32c": "00000000"}]},
                           {"name": "test", "records": 1, "shards": [
                    {"file": "test-00000.shard", "records": 1, "bytes": 12, "crc32c": "00000000"}]}]}
    put("shard_manifest", "manifest.json", json.dumps(manifest, indent=1))

    # Shard records: the first byte picks the schema (fuzz_entries.cpp, run_shard_records).
    put("shard_records", "u8_i64", b"\x04" + bytes([1, 2, 3, 4]) + struct.pack("<q", 1) + bytes(4) + struct.pack("<q", 0))
    put("shard_records", "f32_i32", b"\x05" + f32([1, 2, 3]) + struct.pack("<i", 1))
    put("shard_records", "f64_u8", b"\x02" + struct.pack("<d", 0.5) + b"\x00")
    put("shard_records", "bf16_i64", b"\x07" + b"\x80\x3f\x00\x40" + struct.pack("<q", 1))

    # Text for character language models: the first byte sets the window (fuzz_entries.cpp, run_text).
    put("text", "ascii", b"\x03" + b"to be or not to be\n" * 3)
    put("text", "utf8", b"\x02" + "caf\u00e9 \u20ac na\u00efve \U0001f600\r\n".encode() * 2)
    put("text", "short", b"\x07" + b"abc")

    # Tokenizers (tokenizers' tokenizer.json of a byte-level BPE) and text to encode with one.
    put("tokenizer", "bpe", byte_level_bpe_json([("t", "h"), ("th", "e"), ("Ġ", "t"), ("Ġt", "he")]))
    put("tokenizer", "pair_merges", byte_level_bpe_json([("a", "b"), ("ab", "c")], pairs_as_lists=True))
    put("tokenizer", "no_merges", byte_level_bpe_json([]))
    put("bpe_encode", "english", b"the theme's  44 42\n\tthe")
    put("bpe_encode", "utf8", "caf\u00e9 \u20ac \u4e2d\u6587 \U0001f600 \u00a0x".encode())
    put("bpe_encode", "bytes", bytes(range(256)))

    # ONNX and a real checkpoint: from the built CLI, when given.
    if len(sys.argv) > 1:
        gpuml = sys.argv[1]
        with tempfile.TemporaryDirectory() as tmp:
            csv = os.path.join(tmp, "d.csv")
            with open(csv, "w") as f:
                f.write("a,b,c,d,label\n" + "".join("%d,%d,1,2,%d\n" % (i, i * 2, i % 3) for i in range(8)))
            for name, m in [("mlp", {"input_shape": [4], "layers": [
                    {"type": "Linear", "in_features": 4, "out_features": 3}, {"type": "ReLU"},
                    {"type": "Linear", "in_features": 3, "out_features": 3}]}),
                    ("norms", {"input_shape": [4], "layers": [
                    {"type": "Linear", "in_features": 4, "out_features": 4}, {"type": "LayerNorm", "normalized_shape": 4},
                    {"type": "GELU"}, {"type": "Dropout", "p": 0.2}, {"type": "Linear", "in_features": 4, "out_features": 3}]})]:
                model = os.path.join(tmp, name + ".json")
                with open(model, "w") as f:
                    json.dump(m, f)
                run = os.path.join(tmp, "run-" + name)
                subprocess.run([gpuml, "train", "--quiet", "--device", "cpu", "--data", csv, "--model", model,
                                "--epochs", "1", "--batch-size", "4", "--out", run], check=True)
                with open(os.path.join(run, "last.safetensors"), "rb") as f:
                    put("checkpoint", name + ".safetensors", f.read())
                onnx = os.path.join(tmp, name + ".onnx")
                subprocess.run([gpuml, "export", "--checkpoint", run, "--onnx", onnx], check=True)
                with open(onnx, "rb") as f:
                    put("onnx", name + ".onnx", f.read())


if __name__ == "__main__":
    main()
