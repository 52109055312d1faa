#!/usr/bin/env python3
# gst-uel: the Python package gst_uel, each use of unifiedefficientloader's
# README in turn, on a model given on the command line:
#
#   PYTHONPATH=build/python GST_PLUGIN_PATH=build/plugins \
#     python3 examples/python-loader.py model.safetensors
#
# Tensors are PyTorch tensors when torch imports, NumPy arrays otherwise;
# either way they share the library's memory (no copy).  meson test runs
# this (suite examples) on a generated model.
# SPDX-License-Identifier: MIT
import os
import sys
import tempfile

import gst_uel
from gst_uel import (IncrementalSafetensorsWriter, UnifiedSafetensorsLoader,
                     dict_to_tensor, tensor_to_dict, transfer_to_gpu_pinned)

path = sys.argv[1]
print(f"gst_uel returns {gst_uel.get_framework()} tensors")

# 1. standard mode: every tensor read up front, then taken by name
with UnifiedSafetensorsLoader(path, low_memory=False) as loader:
    first = loader.keys()[0]
    tensor = loader.get_tensor(first)
    print(f"standard: {first} {tuple(tensor.shape)} {tensor.dtype}")

# 2. low-memory mode: one tensor at a time, released when processed
with UnifiedSafetensorsLoader(path, low_memory=True) as loader:
    total = 0
    for key in loader.keys():
        tensor = loader.get_tensor(key)
        total += tensor.nbytes if hasattr(tensor, "nbytes") else \
            tensor.numel() * tensor.element_size()
        loader.mark_processed(key)
    print(f"low-memory: {len(loader.keys())} tensors, {total} bytes, "
          f"metadata {loader.metadata()}")

# 3. the header alone finds the dictionaries; only those are read
with UnifiedSafetensorsLoader(path, low_memory=True) as loader:
    for key, info in loader._header.items():
        if isinstance(info, dict) and info.get("dtype") == "U8" \
                and len(info["shape"]) == 1:
            print(f"dictionary {key}: {tensor_to_dict(loader.get_tensor(key))}")

# 4. batches read ahead by the library's thread, pinned, sent to the GPU
#    (kept in host memory, gracefully, without one)
with UnifiedSafetensorsLoader(path, low_memory=True) as loader:
    n = 0
    for batch in loader.async_stream(loader.keys(), batch_size=8,
                                     prefetch_batches=2, pin_memory=True):
        for key, pinned in batch:
            on_device = transfer_to_gpu_pinned(pinned, device="cuda")
            loader.mark_processed(key)
            n += 1
    print(f"async_stream: {n} tensors; transfers "
          f"{gst_uel.get_pinned_transfer_stats()}")

# 5. every tensor as a view of a mapping of the file, written back out
with UnifiedSafetensorsLoader(path, low_memory=True, use_mmap=True) as loader:
    state_dict = loader.load_all()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "copy.safetensors")
        with IncrementalSafetensorsWriter(out, metadata=loader.metadata()) \
                as writer:
            writer.write_dict(state_dict)
        with UnifiedSafetensorsLoader(out, low_memory=True) as copy:
            assert copy.keys() == list(state_dict)
        print(f"load_all(use_mmap=True): {len(state_dict)} tensors, "
              f"written back ({os.path.getsize(out)} bytes)")

# dictionaries as tensors, and back
config = {"param": 1.0, "name": "test"}
assert tensor_to_dict(dict_to_tensor(config)) == config

# the tensors at the end of any launch line, zero-copy
for name, tensor in gst_uel.tensors(f"uelsrc location={path} ! uelqueue"):
    print(f"tensors(): {name} {tuple(tensor.shape)}")
    break
