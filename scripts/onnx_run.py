"""Runs an ONNX model exported by `mlp-cli export` in onnxruntime, for the tests.

usage: onnx_run.py MODEL.onnx PIXELS.npy OUT_PREFIX

Reads PIXELS.npy (float32 [N, inputs], each byte / 255), runs the model on the CPU and writes
OUT_PREFIX.scores (float32, little-endian, N x classes) and OUT_PREFIX.class (int64, N); prints
the model's metadata and the runtime's version.
"""
import sys

import numpy as np
import onnxruntime as ort

model, pixels, out = sys.argv[1:4]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
scores, classes = session.run(["scores", "class"], {"pixels": np.load(pixels)})
scores.astype("<f4").tofile(out + ".scores")
classes.astype("<i8").tofile(out + ".class")
meta = session.get_modelmeta()
print(f"onnxruntime {ort.__version__}; inputs {[(i.name, i.shape) for i in session.get_inputs()]}")
print(f"metadata: {sorted(meta.custom_metadata_map)}")
