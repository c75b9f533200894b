#!/usr/bin/env python3
"""Writes a few small valid inputs for each fuzz target into fuzz/corpus/<target>/, so that
libFuzzer starts from files that get past the first checks: IDX files of two 28 x 28 images, a
one-layer model in safetensors, and PNG pictures of a stroke. Made here, never committed."""
import gzip
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def idx_images(count, rows=28, cols=28):
    pixels = bytes((i * 37) % 256 if i % 3 == 0 else 0 for i in range(count * rows * cols))
    return struct.pack(">IIII", 0x803, count, rows, cols) + pixels


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def model(inputs=784, outputs=10):
    weights = struct.pack(f"<{inputs * outputs}f", *[0.01 * (i % 7) for i in range(inputs * outputs)])
    bias = struct.pack(f"<{outputs}f", *[0.0] * outputs)
    header = {
        "__metadata__": {
            "format": "mlp-core model 1",
            "layers": f"{inputs},{outputs}",
            "activation": "sigmoid",
            "output": "sigmoid-mse",
            "seed": "0",
            "epochs": "1",
        },
        "layer1.weights": {"dtype": "F32", "shape": [inputs, outputs], "data_offsets": [0, len(weights)]},
        "layer1.bias": {"dtype": "F32", "shape": [outputs], "data_offsets": [len(weights), len(weights) + len(bias)]},
    }
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + weights + bias


def png(width, height, grey):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + bytes(grey(x, y) for x in range(width)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


write("idx", "images", idx_images(2))
write("idx", "labels", idx_labels([3, 7]))
write("idx", "images.gz", gzip.compress(idx_images(2)))
files = [idx_images(2), idx_labels([1, 2]), idx_images(1), idx_labels([3])]
write("data_dir", "small-set", struct.pack("<HHH", *[len(f) for f in files[:3]]) + b"\0\0" + b"".join(files))
write("model", "one-layer", model())
write("model", "tiny", model(3, 2))
write("digit", "stroke", png(40, 40, lambda x, y: 0 if abs(x - 20) < 3 and 5 < y < 35 else 255))
write("digit", "blank", png(8, 8, lambda x, y: 255))
