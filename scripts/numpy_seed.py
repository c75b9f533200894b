#!/usr/bin/env python3
"""The seed configuration (docs/SEED.md) in NumPy f32, timed per epoch, so that the README's
ratio to `mlp-cli bench` can be reproduced beside it on any machine.

    python3 scripts/numpy_seed.py [--data-dir data/mnist] [--epochs 15] [--threads N]

784-64-32-16-10 sigmoid layers and output, squared error, gradients summed over batches of
100 in the file's order, N(0, 1) weights, plain gradient descent at 0.01: the notebook's
algorithm, dense (every zero pixel multiplied), as NumPy users write it. Each epoch is timed
around the batches only, as `bench` times them; validation runs after the clock stops.
Needs only NumPy.
"""

import argparse
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

# Set before NumPy loads OpenBLAS, which reads them once. Some machines set these two for older
# OpenBLAS builds; they slow a current NumPy, so they are dropped here.
for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(name, None)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR", "data/mnist"))
    parser.add_argument("--epochs", type=int, default=15, help="epochs timed (after one warm-up)")
    parser.add_argument("--threads", type=int, help="OpenBLAS threads (default: its own choice)")
    return parser.parse_args()


def read_idx(path):
    """The bytes after an IDX header, from a raw or gzipped file."""
    raw = Path(path)
    data = gzip.open(raw.with_name(raw.name + ".gz")).read() if not raw.exists() else raw.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    dims = data[3]
    return data[4 + 4 * dims :]


def load(data_dir, prefix, np):
    images = read_idx(Path(data_dir) / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(Path(data_dir) / f"{prefix}-labels-idx1-ubyte")
    x = np.frombuffer(images, dtype=np.uint8).reshape(-1, 784).astype(np.float32) / 255.0
    y = np.frombuffer(labels, dtype=np.uint8)
    return x, y


def sigmoid(s, np):
    return 1.0 / (1.0 + np.exp(-s))


def main():
    args = parse_args()
    if args.threads:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np

    x_train, y_train = load(args.data_dir, "train", np)
    x_test, y_test = load(args.data_dir, "t10k", np)
    eye = np.eye(10, dtype=np.float32)
    rng = np.random.default_rng(0)
    sizes = [784, 64, 32, 16, 10]
    weights = [rng.standard_normal((i, o)).astype(np.float32) for i, o in zip(sizes, sizes[1:])]
    biases = [rng.standard_normal(o).astype(np.float32) for o in sizes[1:]]
    lr = np.float32(0.01)

    def step(a0, y):
        activations = [a0]
        for w, b in zip(weights, biases):
            activations.append(sigmoid(activations[-1] @ w + b, np))
        delta = (activations[-1] - y) * activations[-1] * (1.0 - activations[-1])
        for k in range(len(weights) - 1, -1, -1):
            below = activations[k]
            grad_w = below.T @ delta
            grad_b = delta.sum(axis=0)
            if k > 0:
                delta = (delta @ weights[k].T) * below * (1.0 - below)
            weights[k] -= lr * grad_w
            biases[k] -= lr * grad_b

    def accuracy():
        a = x_test
        for w, b in zip(weights, biases):
            a = sigmoid(a @ w + b, np)
        return float((a.argmax(axis=1) == y_test).mean())

    seconds = []
    for epoch in range(args.epochs + 1):
        started = time.perf_counter()
        for start in range(0, len(x_train), 100):
            step(x_train[start : start + 100], eye[y_train[start : start + 100]])
        elapsed = time.perf_counter() - started
        label = "warm-up epoch" if epoch == 0 else f"epoch {epoch}"
        print(f"{label}: {elapsed:.4f} s, test accuracy {100 * accuracy():.2f}%")
        if epoch > 0:
            seconds.append(elapsed)
    print(
        f"median {statistics.median(seconds):.4f} s per epoch over {len(seconds)} epochs "
        f"(NumPy {np.__version__}, f32, dense)"
    )


if __name__ == "__main__":
    sys.exit(main())
