#!/usr/bin/env python3
# gst-uel: writes the incremental writer's conformance vectors with the
# writer it follows, `unifiedefficientloader` 0.5.4's
# IncrementalSafetensorsWriter (from PyPI; it needs torch), so that
# tests/test-writer.c can check that UelWriter's incremental mode writes
# the same bytes.  Run it from this folder with the package on the path:
#
#   pip download --no-deps unifiedefficientloader==0.5.4 -d /tmp/uel
#   (cd /tmp/uel && python3 -m zipfile -e unifiedefficientloader-*.whl pkg)
#   PYTHONPATH=/tmp/uel/pkg python3 make-vectors.py
#
# The files it writes are committed; the tests do not need Python.  The
# test takes the tensors (in header order, which is the order they were
# written) and their bytes from each file, and the metadata keys' order
# and the reserve below from its own table: keep the two in step.
# SPDX-License-Identifier: MIT
import importlib.metadata
import os

import torch
from unifiedefficientloader import IncrementalSafetensorsWriter


def data(dtype, shape, seed):
    """deterministic values of every dtype: bytes counted up from @seed"""
    n = 1
    for d in shape:
        n *= d
    size = torch.empty(0, dtype=dtype).element_size()
    raw = (torch.arange(n * size, dtype=torch.int64) * 7 + seed * 13) % 251
    return raw.to(torch.uint8).view(dtype).reshape(shape)


def write(name, reserve, metadata, tensors, batch_from=None):
    """@tensors, a list of (name, dtype, shape), written one by one, the
    ones from index @batch_from on in one write_batch()"""
    if os.path.exists(name):
        os.remove(name)
    made = [(n, data(d, s, i + 1)) for i, (n, d, s) in enumerate(tensors)]
    cut = len(made) if batch_from is None else batch_from
    with IncrementalSafetensorsWriter(name, metadata=metadata,
                                      max_header_bytes=reserve) as w:
        for n, t in made[:cut]:
            w.write(n, t)
        if made[cut:]:
            w.write_batch(made[cut:])


# every dtype torch 1.13 maps, a scalar and empty tensors, in an order that
# is neither by name nor by dtype; metadata keys not sorted
write("mixed.safetensors", 1000, {"format": "pt", "b": "2", "a": "1"}, [
    ("z.weight", torch.float32, [4, 3]),
    ("a.bias", torch.float16, [5]),
    ("m.norm", torch.bfloat16, [3]),
    ("ids", torch.int64, [1, 4]),
    ("i32", torch.int32, [2]),
    ("i16", torch.int16, [3]),
    ("empty", torch.float32, [0]),
    ("i8", torch.int8, [5]),
    ("u8", torch.uint8, [7]),
    ("mask", torch.bool, [3]),
    ("scale", torch.float64, []),
    ("empty.3d", torch.uint8, [2, 0, 3]),
    ("c", torch.complex64, [2]),
], batch_from=9)

# names and metadata that JSON escapes, with ensure_ascii: everything
# outside ' ' to '~' as \uXXXX, a surrogate pair beyond the BMP; a reserve
# that is no multiple of 8 (1001: the block is 1008 bytes)
names = ["", "\"", "\\", "/", "a\"b\\c", "\x01\x1f", "\b\t\n\f\r", "\x7f",
         "é", "名前", "\U0001F600", "\uff61", "__metadata", " space",
         "\u2028"]
write("names.safetensors", 1001,
      {"k\"\\\n\x02\x1f\x7f\u00e9\U0001F600": "v\"\\\t\r/\u2028\x01"},
      [(n, torch.uint8, [k + 1]) for k, n in enumerate(names)])

# no metadata: no __metadata__ key
write("no-metadata.safetensors", 200, None, [
    ("b", torch.float32, [2, 2]),
    ("a", torch.int8, [3]),
])

# nothing at all: "{}" and spaces; metadata only
write("empty.safetensors", 8, None, [])
write("only-metadata.safetensors", 30, {"a": "b"}, [])

# a header that fills its block exactly, without a space of padding
# ({"xxxxxxxxxxxx":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}} is 64)
write("exact-fit.safetensors", 64, None, [("x" * 12, torch.int8, [1])])

# one byte more than the block holds: the writer raises at the end, and
# leaves the file it was filling under the final name
try:
    write("overflow.safetensors", 56, None, [("x" * 12, torch.int8, [1])])
    raise SystemExit("overflow.safetensors: no error")
except RuntimeError as e:
    print("overflow:", e)
    os.remove("overflow.safetensors")

print("written with unifiedefficientloader",
      importlib.metadata.version("unifiedefficientloader"),
      "and torch", torch.__version__)
