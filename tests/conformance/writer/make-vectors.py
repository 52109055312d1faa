#!/usr/bin/env python3
# gst-uel: writes the writer's conformance vectors with the reference
# implementation (Hugging Face `safetensors`, from PyPI), so that
# tests/test-writer.c can check that UelWriter writes the same bytes.
# Run it from this folder; the files it writes are committed, and the
# tests do not need Python.  See README.md.
# SPDX-License-Identifier: MIT
import numpy as np
import safetensors
from safetensors import numpy as st_numpy
from safetensors._safetensors_rust import TensorSpec, serialize_file

# the reference's own names for the dtypes its Python binding accepts (F6
# has none), with their widths in bits
DTYPES = [
    ("bool", 8), ("uint8", 8), ("int8", 8), ("int16", 16), ("uint16", 16),
    ("int32", 32), ("uint32", 32), ("int64", 64), ("uint64", 64),
    ("float16", 16), ("float32", 32), ("float64", 64), ("bfloat16", 16),
    ("float8_e4m3fn", 8), ("float8_e4m3fnuz", 8), ("float8_e5m2", 8),
    ("float8_e5m2fnuz", 8), ("float8_e8m0fnu", 8), ("float4_e2m1fn_x2", 8),
    ("complex64", 64),
]

keep = []


def spec(dtype, shape, bits, seed):
    """A tensor of deterministic bytes; float4_e2m1fn_x2 counts bytes (two
    elements each), and the reference doubles its last dimension."""
    n = int(np.prod(shape, dtype=np.uint64)) * bits // 8
    data = ((np.arange(n, dtype=np.uint64) * 7 + seed * 13) % 251)
    data = data.astype(np.uint8)
    keep.append(data)
    return TensorSpec(dtype=dtype, shape=list(shape), data_ptr=data.ctypes.data,
                      data_len=n)


def write(name, tensors, metadata=None):
    serialize_file(tensors, name, metadata=metadata)


# every dtype, several tensors each, declared in an order that is neither
# the dtype order nor the name order
t = {}
for i, (dtype, bits) in enumerate(DTYPES):
    for j, name in enumerate(["b", "B", "a10", "a9", "é"]):
        t[f"{name}.{dtype}"] = spec(dtype, [2, 3], bits, i * 5 + j)
t["Z"] = spec("float32", [], 32, 200)
write("every-dtype.safetensors", t, {"format": "pt"})

# names and metadata that JSON must escape, and names whose byte order
# differs from their UTF-16 order
names = ["", "\"", "\\", "/", "a\"b\\c", "\x01\x1f", "\b\t\n\f\r", "\x7f",
         "é", "名前", "\U0001F600", "\uff61", "__metadata", "__metadata__x",
         " space", "tab\there", "\u2028"]
t = {n: spec("uint8", [k + 1], 8, k) for k, n in enumerate(names)}
write("names.safetensors", t,
      {"k\"\\\n\x02\x1f\x7f\u00e9\U0001F600": "v\"\\\t\r/\u2028\x01"})

# scalars and empty tensors: no data, and no metadata
t = {
    "scalar": spec("float32", [], 32, 1),
    "empty": spec("float16", [0], 16, 2),
    "empty.3d": spec("uint8", [2, 0, 3], 8, 3),
    "ones": spec("int64", [1, 1, 1, 1], 64, 4),
    "scalar.bool": spec("bool", [], 8, 5),
}
write("scalars-and-empty.safetensors", t)

# no tensor at all, with and without metadata
write("no-tensors.safetensors", {})
write("only-metadata.safetensors", {}, {"a": "b"})

# every padding: header lengths of each remainder modulo 8
for n in range(1, 9):
    write(f"pad-{n}.safetensors", {"x" * n: spec("int8", [n], 8, n)})

# several metadata keys: the reference writes them in the order of a
# randomly seeded hash map, so the test compares that map as a map
t = {"w": spec("float32", [4], 32, 9)}
write("metadata-keys.safetensors", t,
      {"format": "pt", "b": "2", "a": "1", "c": "3", "": "empty key"})

# the samples of ../README.md as this version writes them, through the
# NumPy front end
v = np.array([-3, -2, -1, 0, 1, 2])
overall = {
    "B": v.astype(np.uint8), "b": v.astype(np.int8),
    "H": v.astype(np.uint16), "h": v.astype(np.int16),
    "I": v.astype(np.uint32), "i": v.astype(np.int32),
    "e": v.astype(np.float16), "f": v.astype(np.float32),
    "d": v.astype(np.float64),
}
st_numpy.save_file(overall, "overall.safetensors", metadata={"test": "a"})

print("written with safetensors", safetensors.__version__)
