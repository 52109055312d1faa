#!/usr/bin/env python3
# gst-uel: the reference side of check-python-dropin.py, run by the
# interpreter of .venv-check (scripts/check-venv: Hugging Face
# `safetensors`, numpy<2, ml_dtypes), which need not be the one running
# gst_uel (Debian's, with Debian's NumPy and torch).
#
#   python-reference.py write-all-dtypes OUT
#       writes, with safetensors' own writer, one tensor of every dtype
#       (random bits), empty and scalar tensors; prints {name: sha256}
#       of what it was given
#   python-reference.py write-readme-model OUT
#       the model of the README examples: weight_name, a dictionary as
#       the only U8 tensor, F32, F16 and BF16 layers, metadata
#   python-reference.py hashes FILE
#       prints {name: [dtype, shape, sha256]} of every tensor as safe_open
#       reads it (the bytes given for the dtypes it has no array type for)
# SPDX-License-Identifier: MIT
import hashlib
import json
import sys

import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors._safetensors_rust import TensorSpec, serialize_file
from safetensors.numpy import save_file

NP_DTYPES = [
    (np.bool_, "BOOL"), (np.uint8, "U8"), (np.int8, "I8"),
    (np.int16, "I16"), (np.uint16, "U16"), (np.int32, "I32"),
    (np.uint32, "U32"), (np.int64, "I64"), (np.uint64, "U64"),
    (np.float16, "F16"), (np.float32, "F32"), (np.float64, "F64"),
    (np.complex64, "C64"), (ml_dtypes.bfloat16, "BF16"),
    (ml_dtypes.float8_e4m3fn, "F8_E4M3"), (ml_dtypes.float8_e5m2, "F8_E5M2"),
    (ml_dtypes.float8_e4m3fnuz, "F8_E4M3FNUZ"),
    (ml_dtypes.float8_e5m2fnuz, "F8_E5M2FNUZ"),
]
# the reference's dtypes that this ml_dtypes lacks: (its name, shape, bytes)
SPEC_ONLY = {"e8m0": ("float8_e8m0fnu", [3, 5], 15),
             "f4": ("float4_e2m1fn_x2", [4, 3], 12)}
rng = np.random.default_rng(20261205)


def random_array(dtype, shape):
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == np.bool_:
        return rng.integers(0, 2, n, dtype=np.uint8).view(np.bool_) \
            .reshape(shape)
    raw = rng.integers(0, 256, n * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


def write_all_dtypes(out):
    arrays, given = {}, {}
    for t, name in NP_DTYPES:
        arrays[f"{name.lower()}.matrix"] = random_array(t, (3, 7))
        arrays[f"{name.lower()}.scalar"] = random_array(t, ())
        arrays[f"{name.lower()}.empty"] = random_array(t, (0, 4))
    specs, keep = {}, []
    for name, v in arrays.items():
        keep.append(v)
        specs[name] = TensorSpec(dtype=v.dtype.name, shape=list(v.shape),
                                 data_ptr=v.ctypes.data, data_len=v.nbytes)
        given[name] = hashlib.sha256(v.tobytes()).hexdigest()
    for name, (ref_dtype, shape, n) in SPEC_ONLY.items():
        buf = rng.integers(0, 256, n, dtype=np.uint8)
        keep.append(buf)
        specs[name] = TensorSpec(dtype=ref_dtype, shape=shape,
                                 data_ptr=buf.ctypes.data, data_len=n)
        given[name] = hashlib.sha256(buf.tobytes()).hexdigest()
    serialize_file(specs, out, metadata={"format": "np", "made-by":
                                         "tests/python-reference.py"})
    return given


def write_readme_model(out):
    arrays = {"weight_name": random_array(np.float32, (16, 16)),
              "config": np.frombuffer(json.dumps(
                  {"quant": {"bits": 8, "group": [1, 2, 3]}, "name": "test",
                   "scale": 0.5}).encode(), dtype=np.uint8).copy()}
    for i, t in enumerate((np.float32, np.float16, ml_dtypes.bfloat16)):
        arrays[f"layers.{i}.weight"] = random_array(t, (64, 32))
        arrays[f"layers.{i}.bias"] = random_array(t, (64,))
    save_file(arrays, out, metadata={"format": "pt"})


def hashes(path, given):
    out = {}
    with safe_open(path, framework="numpy") as f:
        for k in f.keys():
            sl = f.get_slice(k)
            try:
                data = f.get_tensor(k).tobytes()
            except Exception:
                data = None
            if data is None:
                digest = given[k]
            else:
                digest = hashlib.sha256(data).hexdigest()
            out[k] = [sl.get_dtype(), list(sl.get_shape()), digest]
    return out


def main():
    if sys.argv[1] == "write-all-dtypes":
        json.dump(write_all_dtypes(sys.argv[2]), sys.stdout)
    elif sys.argv[1] == "write-readme-model":
        write_readme_model(sys.argv[2])
        json.dump({}, sys.stdout)
    elif sys.argv[1] == "hashes":
        given = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
        json.dump(hashes(sys.argv[2], given), sys.stdout)
    else:
        sys.exit(f"unknown command {sys.argv[1]}")


if __name__ == "__main__":
    main()
