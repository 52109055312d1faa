#!/usr/bin/env python3
# gst-uel: writes the FP8 conversion reference vectors of tests/data/fp8/
# SPDX-License-Identifier: MIT
#
# The expected results come from the Python package ml_dtypes (float8_e4m3fn,
# float8_e5m2, bfloat16) with numpy; test-convert compares uel_convert_cpu()
# with them bit for bit.  Only this script needs the packages, the tests
# read the committed files:
#
#   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install 'ml_dtypes<0.5' 'numpy<2'
#   /tmp/venv/bin/python tests/data/make-fp8-vectors.py tests/data/fp8
#
# Every file is raw little-endian elements, no header:
#   <from>-all-to-<to>.bin   the results for every bit pattern of <from>
#                            (F16, BF16: 65536; F8_*: 256), in pattern order
#   <from>-inputs.bin        chosen F32 / F64 inputs (specials, each FP8
#                            format's maximum, ties, subnormals, random)
#   <from>-to-<to>.bin       their results, in the same order
# The inputs are fixed by the seed below: running the script again writes
# the same bytes.

import os
import sys

import ml_dtypes
import numpy as np

E4M3 = ml_dtypes.float8_e4m3fn
E5M2 = ml_dtypes.float8_e5m2
BF16 = ml_dtypes.bfloat16

FP8 = {"f8_e4m3": E4M3, "f8_e5m2": E5M2}
WIDE = {"f32": np.float32, "f16": np.float16, "bf16": BF16}
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(UINT[a.dtype.itemsize])


def patterns(dtype):
    n = 1 << (8 * np.dtype(dtype).itemsize)
    return np.arange(n, dtype=UINT[np.dtype(dtype).itemsize]).view(dtype)


def fp8_finite_values(dtype):
    v = patterns(dtype).astype(np.float64)
    v = np.unique(v[np.isfinite(v)])
    return v


def chosen_inputs(ftype, rng):
    """Specials, values around each FP8 format's extremes and ties, random."""
    fi = ml_dtypes.finfo(ftype)
    vals = [0.0, -0.0, np.inf, -np.inf, fi.max, -fi.max, fi.tiny, -fi.tiny,
            fi.smallest_subnormal, -fi.smallest_subnormal, 1.0, -1.0]
    for dtype in (E4M3, E5M2, np.float16, BF16):
        f8 = ml_dtypes.finfo(dtype)
        for x in (float(f8.max), float(f8.tiny),
                  float(f8.smallest_subnormal)):
            vals += [x, x * 1.5, x * 0.5, x * 0.75, x * 1.0625, x * 2]
        # past the maximum: half an ulp (the overflow tie) and one ulp
        top = float(f8.max)
        ulp = 2.0 ** (np.floor(np.log2(top)) - f8.nmant)
        vals += [top + ulp / 2, -(top + ulp / 2), top + ulp, -(top + ulp)]
        if dtype in (E4M3, E5M2):
            # every midpoint between neighbours: the ties
            v = fp8_finite_values(dtype)
            v = v[v >= 0]
            mids = (v[:-1] + v[1:]) / 2
            vals += list(mids) + list(-mids)
    vals = np.array(vals, dtype=np.float64)
    out = vals.astype(ftype)
    # one unit in the last place of @ftype to either side of each value
    up = np.nextafter(out, ftype(np.inf))
    down = np.nextafter(out, ftype(-np.inf))
    out = np.concatenate([out, up, down])
    if ftype is np.float64:
        # just above/below a tie by far less than an F32 ulp: ml_dtypes
        # rounds F64 through F32, so these land on the tie
        eps = vals * 2.0 ** -40
        out = np.concatenate([out, vals + eps, vals - eps])
    # NaNs: quiet, signaling, with payloads, both signs
    ib = UINT[np.dtype(ftype).itemsize]
    if ftype is np.float32:
        nans = [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FA12345,
                0xFFFFFFFF, 0x7FBFFFFF, 0x7FE00000]
    else:
        nans = [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001,
                0xFFF0000000000001, 0x7FF4000000000000, 0xFFFFFFFFFFFFFFFF]
    out = np.concatenate([out, np.array(nans, dtype=ib).view(ftype)])
    # random bit patterns over the whole format, and random magnitudes
    # across the FP8 range (log-uniform, both signs)
    rb = rng.integers(0, np.iinfo(ib).max, size=1500, dtype=ib,
                      endpoint=True).view(ftype)
    mag = 2.0 ** rng.uniform(-20, 17, size=1500)
    sign = rng.choice([-1.0, 1.0], size=1500)
    out = np.concatenate([out, rb, (mag * sign).astype(ftype)])
    return np.ascontiguousarray(out, dtype=ftype)


def write(path, array):
    with open(path, "wb") as f:
        f.write(bits(array).astype(bits(array).dtype.newbyteorder("<"))
                .tobytes())


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fp8")
    os.makedirs(outdir, exist_ok=True)
    np.seterr(all="ignore")
    rng = np.random.default_rng(20240515)

    # every F16 and BF16 pattern to each FP8 format
    for wname, wtype in (("f16", np.float16), ("bf16", BF16)):
        src = patterns(wtype)
        for tname, ttype in FP8.items():
            write(os.path.join(outdir, "%s-all-to-%s.bin" % (wname, tname)),
                  src.astype(ttype))
    # every FP8 pattern to the wider formats and to the other FP8 format
    for fname, ftype in FP8.items():
        src = patterns(ftype)
        targets = dict(WIDE)
        targets.update({k: v for k, v in FP8.items() if k != fname})
        for tname, ttype in targets.items():
            write(os.path.join(outdir, "%s-all-to-%s.bin" % (fname, tname)),
                  src.astype(ttype))
    # chosen F32 and F64 inputs to each FP8 format
    for fname, ftype in (("f32", np.float32), ("f64", np.float64)):
        src = chosen_inputs(ftype, rng)
        write(os.path.join(outdir, "%s-inputs.bin" % fname), src)
        for tname, ttype in FP8.items():
            write(os.path.join(outdir, "%s-to-%s.bin" % (fname, tname)),
                  src.astype(ttype))
    print("ml_dtypes %s, numpy %s: vectors written to %s"
          % (ml_dtypes.__version__, np.__version__, outdir))


if __name__ == "__main__":
    main()
