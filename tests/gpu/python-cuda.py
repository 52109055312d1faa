#!/usr/bin/env python3
# gst-uel: the Python drop-in's device paths, for tests/gpu/run on a GPU
# host (where the bundle carries python/gst_uel): tensors reaching the end
# of `uelsrc ! uelcudaupload` as CUDA tensors through DLPack, direct_gpu's
# async_stream, and transfer_to_gpu_pinned, each tensor's bytes equal to
# the file's.  Without a CUDA device the same calls fall back to host
# memory, and the script checks that instead (so that it runs, and can be
# tried, on any machine with the build: `PYTHONPATH=build/python
# GST_PLUGIN_PATH=build/plugins python3 tests/gpu/python-cuda.py MODEL`).
# Prints TAP; exits 1 when a check fails, 0 when torch or gst_uel cannot
# be imported (said on a "# skipped" line).
# SPDX-License-Identifier: MIT
import sys
import traceback

try:
    import torch
    import gst_uel
except Exception as e:
    print(f"# skipped: {e}")
    sys.exit(0)

path = sys.argv[1]
device = "cuda" if torch.cuda.is_available() else "cpu"
n_cases = n_failed = 0


def check(what, fn):
    global n_cases, n_failed
    n_cases += 1
    try:
        fn()
        print(f"ok {n_cases} - {what}", flush=True)
    except Exception:
        n_failed += 1
        print(f"not ok {n_cases} - {what}", flush=True)
        for line in traceback.format_exc().splitlines():
            print(f"# {line}")


def raw(t):
    """The bytes of a torch tensor, copied to the host."""
    t = t.detach().cpu().contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes()


def on_device(name, t):
    assert isinstance(t, torch.Tensor), (name, type(t))
    assert t.device.type == device, (name, t.device)


# the file's bytes, read on the host by the low-memory loader
gst_uel.set_framework("torch")
with gst_uel.UnifiedSafetensorsLoader(path, low_memory=True) as loader:
    want = {k: raw(loader.get_tensor(k)) for k in loader.keys()}
print(f"# {len(want)} tensors; expecting tensors on '{device}'")


def pipeline():
    n = 0
    for name, t in gst_uel.tensors(f"uelsrc location={path} ! "
                                   "uelcudaupload"):
        on_device(name, t)
        assert raw(t) == want[name], name
        n += 1
    assert n == len(want), (n, len(want))


def direct_gpu():
    n = 0
    with gst_uel.UnifiedSafetensorsLoader(path, low_memory=True,
                                          direct_gpu=True) as loader:
        for batch in loader.async_stream(loader.keys(), batch_size=4,
                                         prefetch_batches=2):
            for name, t in batch:
                on_device(name, t)
                assert raw(t) == want[name], name
                loader.mark_processed(name)
                n += 1
    assert n == len(want), (n, len(want))


def transfer():
    with gst_uel.UnifiedSafetensorsLoader(path, low_memory=True) as loader:
        for name in loader.keys():
            t = gst_uel.transfer_to_gpu_pinned(loader.get_tensor(name),
                                               device=device)
            on_device(name, t)
            assert raw(t) == want[name], name


check(f"tensors('uelsrc ! uelcudaupload') gives {device} tensors with the "
      "file's bytes", pipeline)
check(f"direct_gpu=True async_stream gives {device} tensors with the "
      "file's bytes", direct_gpu)
check(f"transfer_to_gpu_pinned gives {device} tensors with the file's "
      "bytes", transfer)
print(f"1..{n_cases}")
sys.exit(1 if n_failed else 0)
