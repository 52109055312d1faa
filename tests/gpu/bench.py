#!/usr/bin/env python3
"""gst-uel GPU benchmark, Python side: the same file loaded by the
reference `safetensors` to cuda, and the seed's approach (per tensor:
get_tensor, pin_memory, .to('cuda')).  Warm cache: the file is read once
before each measurement.  Prints one line per variant, median GB/s."""
import statistics
import sys
import time

path, reps = sys.argv[1], int(sys.argv[2])
try:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
except Exception as e:  # pragma: no cover - only where torch is missing
    print(f"# python: skipped ({e})")
    sys.exit(0)


def warm():
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


def size():
    n = 0
    with safe_open(path, "pt") as f:
        for k in f.keys():
            t = f.get_slice(k)
            shape = t.get_shape()
            el = 1
            for d in shape:
                el *= d
            n += el * {"BF16": 2, "F16": 2, "F32": 4, "U8": 1, "I64": 8,
                       "F64": 8, "I32": 4}.get(t.get_dtype(), 1)
    return n


total = size()
torch.cuda.init()
torch.empty(1, device="cuda")


def run(fn):
    out = []
    for _ in range(reps):
        warm()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append(total / (time.perf_counter() - t0) / 1e9)
    return statistics.median(out), min(out), max(out)


def st_cuda():
    d = load_file(path, device="cuda")
    del d


def seed():
    keep = []
    with safe_open(path, "pt") as f:
        for k in f.keys():
            keep.append(f.get_tensor(k).pin_memory().to("cuda",
                                                        non_blocking=True))
    del keep


for name, fn in [("safetensors-load_file-cuda", st_cuda),
                 ("seed-pin_memory-to-cuda", seed)]:
    med, lo, hi = run(fn)
    print(f"python {name:28s} {med:.2f} GB/s (min {lo:.2f} max {hi:.2f})")
