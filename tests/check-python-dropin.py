#!/usr/bin/env python3
# gst-uel: the Python package gst_uel against the Python package it
# replaces and against the reference implementation.  A TAP test
# (tests/meson.build), run by the interpreter the package was built for
# (Debian's python3, with Debian's NumPy and, where installed, torch):
#
#   check-python-dropin.py TOOL REFERENCE-PYTHON [--lifetime-only]
#
# TOOL is the `gst-uel` program (make-model), REFERENCE-PYTHON the
# interpreter of .venv-check (scripts/check-venv) that runs
# tests/python-reference.py: Hugging Face `safetensors` writes a file of
# every dtype and reads both test files; where it is missing, the checks
# that need it skip and say why.  PYTHONPATH names build/python.
#
# For NumPy always, and for PyTorch where torch imports:
#   - the usage examples of unifiedefficientloader 0.5.4's README (MIT,
#     silveroxides), as written there with only the import line changed,
#     on a model.safetensors of every dtype, their results checked;
#   - every tensor of the sample model and of the all-dtypes file, through
#     get_tensor (standard, low-memory and mmap modes), load_all,
#     async_stream and tensors(), has the bytes the reference reads, and
#     the documented dtype and shape;
#   - the framework's tensor shares the library's memory (same address);
#   - references dropped in every order (loader, native tensor, DLPack
#     capsule, NumPy array, torch tensor) leave every live tensor intact,
#     and a stream's memory is released when the last tensor of it dies;
#   - errors: a missing file, a missing key, a hostile file, a bad
#     pipeline, each with the library's message; Ctrl-C stops tensors();
#   - the writer writes what the reference reads back; dictionaries round
#     trip; transfers fall back to host memory without a device.
# --lifetime-only runs the reference-lifetime checks with NumPy alone
# (tests/meson.build runs that under valgrind, suite valgrind).
# SPDX-License-Identifier: MIT
import gc
import hashlib
import itertools
import json
import os
import pydoc
import signal
import subprocess
import sys
import tempfile
import threading
import time

import gst_uel
from gst_uel import _convert, _native

TOOL = os.path.abspath(sys.argv[1])
REF_PYTHON = os.path.abspath(sys.argv[2]) if sys.argv[2] else ""
REF_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "python-reference.py")
LIFETIME_ONLY = "--lifetime-only" in sys.argv

np = _convert.numpy
torch = _convert.torch
ml_dtypes = _convert.ml_dtypes

n_cases = 0
n_failed = 0


def report(ok, what, detail=""):
    global n_cases, n_failed
    n_cases += 1
    if not ok:
        n_failed += 1
    print(f"{'ok' if ok else 'not ok'} {n_cases} - {what}", flush=True)
    if not ok and detail:
        for line in str(detail).splitlines()[-30:]:
            print(f"# {line}")


def skip(what, why):
    global n_cases
    n_cases += 1
    print(f"ok {n_cases} - {what} # SKIP {why}", flush=True)


def check(what, fn):
    """Runs fn(); its AssertionError or exception fails the case."""
    try:
        fn()
        report(True, what)
    except Exception as e:
        import traceback
        report(False, what, traceback.format_exc())


def sha(data):
    return hashlib.sha256(data).hexdigest()


def raw_bytes(t):
    """The bytes of a framework tensor, as they are in memory."""
    if torch is not None and isinstance(t, torch.Tensor):
        t = t.detach().cpu().contiguous()
        if t.numel() == 0:
            return b""
        return t.reshape(-1).view(torch.uint8).numpy().tobytes()
    if isinstance(t, _native.Tensor):
        return t.tobytes()
    return np.ascontiguousarray(t).tobytes()


def data_address(t):
    if torch is not None and isinstance(t, torch.Tensor):
        return t.data_ptr()
    return t.ctypes.data


ML = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
      "F8_E5M2": "float8_e5m2", "F8_E4M3FNUZ": "float8_e4m3fnuz",
      "F8_E5M2FNUZ": "float8_e5m2fnuz", "F8_E8M0": "float8_e8m0fnu"}
SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2,
         "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8,
         "F64": 8, "C64": 8}
SUB_BYTE = {"F4", "F6_E2M3", "F6_E3M2"}


def expected(framework, st, shape, n_bytes):
    """(dtype name, shape) that the package documents for a tensor."""
    shape = tuple(shape)
    if st in SUB_BYTE:
        return "uint8", (n_bytes,)
    if framework == "numpy":
        if st in ML:
            if ml_dtypes is not None and hasattr(ml_dtypes, ML[st]):
                return ML[st], shape
            return ("uint16" if st == "BF16" else "uint8"), shape
        return {"BOOL": "bool", "U8": "uint8", "I8": "int8",
                "I16": "int16", "U16": "uint16", "F16": "float16",
                "I32": "int32", "U32": "uint32", "F32": "float32",
                "I64": "int64", "U64": "uint64", "F64": "float64",
                "C64": "complex64"}[st], shape
    names = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16",
             "F16": "float16", "BF16": "bfloat16", "I32": "int32",
             "F32": "float32", "I64": "int64", "F64": "float64",
             "C64": "complex64", "U16": "uint16", "U32": "uint32",
             "U64": "uint64", "F8_E4M3": "float8_e4m3fn",
             "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu",
             "F8_E4M3FNUZ": "float8_e4m3fnuz",
             "F8_E5M2FNUZ": "float8_e5m2fnuz"}
    if hasattr(torch, names[st]):
        return names[st], shape
    if st in ("U16", "U32", "U64"):
        # raw bytes: the last dimension times the element size
        if not shape:
            return "uint8", (SIZES[st],)
        return "uint8", shape[:-1] + (shape[-1] * SIZES[st],)
    return "uint8", shape


def dtype_name(t):
    if torch is not None and isinstance(t, torch.Tensor):
        return str(t.dtype).replace("torch.", "")
    return t.dtype.name


def check_tensor(framework, name, t, ref):
    """t has the reference's bytes and the documented dtype and shape."""
    st, shape, digest = ref
    got = raw_bytes(t)
    assert sha(got) == digest, f"{name}: bytes differ from the reference"
    want = expected(framework, st, shape, len(got))
    have = (dtype_name(t), tuple(t.shape))
    assert have == want, f"{name} ({st} {shape}): {have}, expected {want}"


# --- the reference ------------------------------------------------------

def run_reference(*args):
    r = subprocess.run([REF_PYTHON, REF_SCRIPT, *args], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return json.loads(r.stdout)


def reference_available():
    if not REF_PYTHON or not os.access(REF_PYTHON, os.X_OK):
        return f"no reference interpreter at {REF_PYTHON!r}"
    r = subprocess.run([REF_PYTHON, "-c", "import safetensors, ml_dtypes"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        return "safetensors or ml_dtypes does not import in " + REF_PYTHON
    return None


# --- the Python package's README, import line changed -------------------
# unifiedefficientloader 0.5.4's README.md (MIT License, Copyright (c) 2026
# silveroxides): each usage example as written there, but for
# "from unifiedefficientloader import" -> "from gst_uel import".

README_EXAMPLES = [
    ("Unified Safetensors Loader", None, '''
from gst_uel import UnifiedSafetensorsLoader

# Standard mode (preload all)
with UnifiedSafetensorsLoader("model.safetensors", low_memory=False) as loader:
    tensor = loader.get_tensor("weight_name")

# Low memory mode (streaming)
with UnifiedSafetensorsLoader("model.safetensors", low_memory=True) as loader:
    for key in loader.keys():
        tensor = loader.get_tensor(key)
        # Process tensor...
        loader.mark_processed(key) # Frees memory
'''),
    ("Incremental Safetensors Writer", None, '''
from gst_uel import UnifiedSafetensorsLoader, IncrementalSafetensorsWriter

# Initialize Writer
writer = IncrementalSafetensorsWriter(output_path, metadata=metadata)
writer.__enter__()

# Load model tensors and process them.
with UnifiedSafetensorsLoader("model.safetensors", low_memory=True) as loader:
    for key in loader.keys():
        tensor = loader.get_tensor(key)
        # Process tensor...
        writer.write(key, tensor)
        del tensor
        loader.mark_processed(key) # Frees memory
'''),
    ("Loading Specific Tensors Dynamically (Header Analysis)", None, '''
from gst_uel import UnifiedSafetensorsLoader, tensor_to_dict

with UnifiedSafetensorsLoader("model.safetensors", low_memory=True) as loader:
    # 1. Analyze the header metadata without loading any tensors
    # loader._header contains the full safetensors header directory
    uint8_tensor_keys = [
        key for key, info in loader._header.items()
        if isinstance(info, dict) and info.get("dtype") == "U8"
    ]

    # 2. Load ONLY those specific tensors using their keys
    for key in uint8_tensor_keys:
        # get_tensor dynamically reads only the bytes for this tensor
        # based on the offsets found in the header
        loaded_tensor = loader.get_tensor(key)

        # 3. Decode the uint8 tensor back into a Python dictionary
        extracted_dict = tensor_to_dict(loaded_tensor)
        print(f"Decoded {key}:", extracted_dict)
'''),
    ("Optimized Asynchronous Streaming via ThreadPoolExecutor", None, '''
from gst_uel import UnifiedSafetensorsLoader, transfer_to_gpu_pinned

with UnifiedSafetensorsLoader("model.safetensors", low_memory=True) as loader:
    keys_to_load = loader.keys()

    # Create the continuous streaming generator
    # prefetch_batches controls how many batches to buffer in memory
    stream = loader.async_stream(
        keys_to_load,
        batch_size=8,
        prefetch_batches=2,
        pin_memory=True
    )

    # Iterate directly over the generator
    for batch in stream:
        for key, pinned_tensor in batch:
            # Transfer directly to GPU via DMA (pinning is already done)
            gpu_tensor = transfer_to_gpu_pinned(pinned_tensor, device="cuda")

            # ... process gpu_tensor ...
            loader.mark_processed(key)
'''),
    ("Direct-to-GPU Streaming (Zero-Copy)", "cuda", '''
from gst_uel import UnifiedSafetensorsLoader

with UnifiedSafetensorsLoader("model.safetensors", low_memory=True, direct_gpu=True) as loader:
    stream = loader.async_stream(
        loader.keys(),
        batch_size=8,
        prefetch_batches=2,
    )
    for batch in stream:
        for key, gpu_tensor in batch:
            # gpu_tensor is already on the GPU
            assert gpu_tensor.device.type == "cuda"
            # ... process gpu_tensor ...
            loader.mark_processed(key)  # releases GPU buffer back to pool
'''),
    ("Zero-Copy MMAP Loading", None, '''
from gst_uel import UnifiedSafetensorsLoader

with UnifiedSafetensorsLoader("model.safetensors", low_memory=True, use_mmap=True) as loader:
    state_dict = loader.load_all()
    # all tensors are zero-copy views into mapped memory
'''),
    ("Tensor/Dict Conversion", None, '''
from gst_uel import dict_to_tensor, tensor_to_dict

my_dict = {"param": 1.0, "name": "test"}
tensor = dict_to_tensor(my_dict)
recovered_dict = tensor_to_dict(tensor)
'''),
    ("Pinned Memory Transfers", "torch", '''
import torch
from gst_uel import transfer_to_gpu_pinned

tensor = torch.randn(100, 100)
# Transfers using pinned memory if CUDA is available, otherwise falls back gracefully
gpu_tensor = transfer_to_gpu_pinned(tensor, device="cuda:0")
'''),
]


def run_readme_examples(framework, folder, ref_all, have_ref):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for title, needs, code in README_EXAMPLES:
            what = f"{framework}: README example '{title}'"
            if needs == "torch" and framework != "torch":
                skip(what, "the example is written for torch tensors")
                continue
            if needs == "cuda" and not (framework == "torch"
                                        and torch.cuda.is_available()):
                skip(what, "it asserts CUDA tensors: no CUDA device here "
                     "(the fallback is checked below)")
                continue
            ns = {"output_path": os.path.join(folder, "written.safetensors"),
                  "metadata": {"source": "README example"}}
            try:
                import contextlib
                import io
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(compile(code, title, "exec"), ns)
                check_readme_result(framework, title, ns, out.getvalue(),
                                    ref_all, have_ref, folder)
                report(True, what)
            except Exception:
                import traceback
                report(False, what, traceback.format_exc())
    finally:
        os.chdir(cwd)


def check_readme_result(framework, title, ns, out, ref_all, have_ref, folder):
    if title == "Unified Safetensors Loader" and have_ref:
        # the last tensor of the low-memory loop
        last = gst_uel.UnifiedSafetensorsLoader("model.safetensors",
                                                low_memory=True).keys()[-1]
        check_tensor(framework, last, ns["tensor"], ref_all[last])
    elif title == "Incremental Safetensors Writer":
        # the example never leaves the writer's context: we do
        ns["writer"].__exit__(None, None, None)
        if have_ref:
            written = run_reference("hashes", ns["output_path"])
            want = {k: v for k, v in ref_all.items()}
            assert written == want, "the written file differs: " + str(
                [k for k in want if written.get(k) != want[k]][:5])
    elif title.startswith("Loading Specific"):
        assert ns["uint8_tensor_keys"] == ["config"], ns["uint8_tensor_keys"]
        assert "Decoded config: {'quant': {'bits': 8, 'group': [1, 2, 3]}, " \
            "'name': 'test', 'scale': 0.5}" in out, out
    elif title.startswith("Zero-Copy MMAP") and have_ref:
        sd = ns["state_dict"]
        assert set(sd) == set(ref_all)
        for k, t in sd.items():
            check_tensor(framework, k, t, ref_all[k])
    elif title == "Tensor/Dict Conversion":
        assert ns["recovered_dict"] == ns["my_dict"], ns["recovered_dict"]
    elif title == "Pinned Memory Transfers":
        g = ns["gpu_tensor"]
        if torch.cuda.is_available():
            assert g.device.type == "cuda"
        assert torch.equal(g.cpu(), ns["tensor"])


# --- every tensor, every way ----------------------------------------------

def check_every_tensor(framework, path, ref, label):
    def in_mode(**kw):
        def run():
            with gst_uel.UnifiedSafetensorsLoader(path, **kw) as loader:
                keys = loader.keys()
                assert sorted(keys) == sorted(ref), "keys differ"
                for k in keys:
                    t = loader.get_tensor(k)
                    check_tensor(framework, k, t, ref[k])
                    assert loader.get_shape(k) == tuple(ref[k][1]) or \
                        ref[k][0] in SUB_BYTE, (k, loader.get_shape(k))
                    assert loader.get_ndim(k) == len(ref[k][1])
                    assert loader.get_dtype(k) == _convert.framework_dtype(
                        ref[k][0])
                    loader.mark_processed(k)
        return run

    for kw in ({"low_memory": False}, {"low_memory": True},
               {"low_memory": True, "use_mmap": True}):
        check(f"{framework}: {label}: get_tensor, {kw}", in_mode(**kw))

    def load_all():
        for low in (False, True):
            with gst_uel.UnifiedSafetensorsLoader(path,
                                                  low_memory=low) as loader:
                sd = loader.load_all()
            assert set(sd) == set(ref)
            for k, t in sd.items():
                check_tensor(framework, k, t, ref[k])
    check(f"{framework}: {label}: load_all, both modes", load_all)

    def stream():
        for pin in (False, True):
            with gst_uel.UnifiedSafetensorsLoader(path,
                                                  low_memory=True) as loader:
                seen = []
                for batch in loader.async_stream(loader.keys(), batch_size=8,
                                                 prefetch_batches=2,
                                                 pin_memory=pin):
                    assert 0 < len(batch) <= 8
                    for k, t in batch:
                        check_tensor(framework, k, t, ref[k])
                        seen.append(k)
                assert seen == loader.keys(), "not every key, in order"
    check(f"{framework}: {label}: async_stream(8, 2), pinned and not", stream)

    def pipeline():
        seen = []
        for name, t in gst_uel.tensors(f"uelsrc location={path} ! uelqueue"):
            check_tensor(framework, name, t, ref[name])
            seen.append(name)
        assert sorted(seen) == sorted(ref)
    check(f"{framework}: {label}: tensors('uelsrc ! uelqueue')", pipeline)


def check_zero_copy(framework, path):
    def run():
        with gst_uel.UnifiedSafetensorsLoader(path) as loader:
            for k in loader.keys():
                nt = loader._native.get_tensor(k)
                if nt.nbytes == 0:
                    continue
                t = _convert.convert(nt)
                assert data_address(t) == nt.data_ptr, k
                # standard mode: every call is a view of the same bytes
                again = loader.get_tensor(k)
                assert data_address(again) == nt.data_ptr, k
    check(f"{framework}: tensors share the library's memory (no copy)", run)


# --- lifetimes ------------------------------------------------------------

def check_lifetimes(framework, path, keys, contents):
    """Drops the loader, the native tensor and the framework's tensor in
    every order; whatever is alive still reads the file's bytes."""
    consumers = ["numpy"] + (["torch"] if framework == "torch" else [])

    def orders(**mode):
        def run():
            for key in keys:
                for order in itertools.permutations(
                        ["loader", "native"] + consumers):
                    objs = {"loader": gst_uel.UnifiedSafetensorsLoader(
                        path, **mode)}
                    objs["native"] = objs["loader"]._native.get_tensor(key)
                    for c in consumers:
                        objs[c] = _convert.to_torch(objs["native"]) if \
                            c == "torch" else np.asarray(objs["native"])
                    for name in order:
                        if name == "loader":
                            objs["loader"].close()
                        del objs[name]
                        gc.collect()
                        for c in consumers:
                            if c in objs:
                                got = raw_bytes(objs[c])
                                assert got == contents[key], \
                                    f"{key}: {c} changed after dropping " \
                                    f"{name} (order {order})"
        return run

    for mode in ({"low_memory": False}, {"low_memory": True},
                 {"low_memory": True, "use_mmap": True}):
        check(f"{framework}: references dropped in every order, {mode}",
              orders(**mode))

    def capsules():
        loader = gst_uel.UnifiedSafetensorsLoader(path)
        nt = loader._native.get_tensor(keys[0])
        # a capsule nobody takes frees its tensor reference itself
        cap = nt.__dlpack__()
        del cap
        # taken ones are the consumer's to free
        arrays = []
        if hasattr(np, "from_dlpack"):
            # NumPy 1.24 takes no bfloat16 through DLPack: the bytes
            nt.raw = True
            arrays += [np.from_dlpack(nt).view(np.uint8).reshape(-1)
                       for _ in range(3)]
            nt.raw = False
        if torch is not None and framework == "torch":
            arrays += [torch.from_dlpack(nt) for _ in range(3)]
        loader.close()
        del loader, nt
        gc.collect()
        for a in arrays:
            assert raw_bytes(a) == contents[keys[0]]
        del arrays
        gc.collect()
    check(f"{framework}: DLPack capsules, taken and not", capsules)

    def stream_release():
        # a stream's tensors count as live until the last reference to
        # them goes: the framework's tensor holds the buffer.  One batch
        # holds every tensor, so once it is out the reader reads nothing
        # more and the counts below are exact (with smaller batches, or
        # keys left to read, the reader refills what is dropped, at its
        # own pace: what failed once under valgrind)
        loader = gst_uel.UnifiedSafetensorsLoader(path, low_memory=True)
        n = len(keys)
        assert n >= 2, keys
        stream = loader._native.async_stream(list(keys), n, 1, False)
        batch = next(stream)
        assert len(batch) == n, len(batch)
        held = [_convert.convert(t) for _, t in batch]
        del batch
        gc.collect()
        assert stream.stats()["live_tensors"] == n, stream.stats()
        del held[: n // 2]
        gc.collect()
        assert stream.stats()["live_tensors"] == n - n // 2, stream.stats()
        del held
        gc.collect()
        assert stream.stats()["live_tensors"] == 0, stream.stats()
        stream.close()
        loader.close()
    check(f"{framework}: a stream's memory goes with its last tensor",
          stream_release)

    def stream_outlives():
        loader = gst_uel.UnifiedSafetensorsLoader(path, low_memory=True)
        gen = loader.async_stream(loader.keys(), batch_size=4,
                                  prefetch_batches=2)
        first = next(gen)
        gen.close()
        loader.close()
        del gen, loader
        gc.collect()
        for k, t in first:
            assert raw_bytes(t) == contents[k], k
    check(f"{framework}: batches outlive their stream and loader",
          stream_outlives)

    def pipeline_outlives():
        gen = gst_uel.tensors(f"uelsrc location={path}")
        held = [next(gen), next(gen)]
        gen.close()
        del gen
        gc.collect()
        for k, t in held:
            assert raw_bytes(t) == contents[k], k
    check(f"{framework}: tensors() outlive their pipeline", pipeline_outlives)


# --- errors, interruption, the rest of the API ------------------------------

def check_errors(folder, path):
    def missing():
        p = os.path.join(folder, "no-such-model.safetensors")
        try:
            gst_uel.UnifiedSafetensorsLoader(p, low_memory=True)
        except FileNotFoundError as e:
            assert p in str(e), str(e)
            return
        raise AssertionError("no FileNotFoundError")
    check("a missing file: FileNotFoundError naming it", missing)

    def bad_key():
        for low in (False, True):
            with gst_uel.UnifiedSafetensorsLoader(path,
                                                  low_memory=low) as loader:
                for call in (loader.get_tensor, loader.get_shape,
                             loader.get_dtype,
                             lambda k: next(loader.async_stream([k]))):
                    try:
                        call("no.such.tensor")
                    except KeyError as e:
                        assert "no.such.tensor" in str(e), str(e)
                        continue
                    raise AssertionError(f"no KeyError from {call}")
    check("a missing tensor: KeyError naming it", bad_key)

    def hostile():
        p = os.path.join(folder, "hostile.safetensors")
        header = b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,99]}}'
        with open(p, "wb") as f:
            f.write(len(header).to_bytes(8, "little") + header + bytes(16))
        try:
            gst_uel.UnifiedSafetensorsLoader(p)
        except gst_uel.Error as e:
            assert e.domain == "uel-error-quark" and e.code > 0, vars(e)
            assert "'a'" in str(e) or "a:" in str(e) or p in str(e), str(e)
            return
        raise AssertionError("no gst_uel.Error")
    check("a file that breaks a rule: gst_uel.Error with the library's "
          "message and code", hostile)

    def bad_pipeline():
        for line in ("nosuchelement", f"uelsrc location={folder}/nothing"):
            try:
                for _ in gst_uel.tensors(line):
                    pass
            except gst_uel.Error as e:
                assert str(e), line
                continue
            raise AssertionError(f"no error from {line}")
    check("tensors(): an unknown element, a missing file: gst_uel.Error",
          bad_pipeline)

    def closed():
        loader = gst_uel.UnifiedSafetensorsLoader(path)
        loader.close()
        try:
            loader.get_tensor("x")
        except ValueError as e:
            assert "closed" in str(e)
            return
        raise AssertionError("no ValueError")
    check("a closed loader: ValueError", closed)

    def ctrl_c():
        # nothing reaches the appsink (valve drops it all): the wait is
        # interrupted, and the pipeline stops
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        gen = gst_uel.tensors(f"uelsrc location={path} ! valve drop=true")
        start = time.monotonic()
        timer.start()
        try:
            next(gen)
        except KeyboardInterrupt:
            assert time.monotonic() - start < 5
            gen.close()
            return
        finally:
            timer.cancel()
        raise AssertionError("no KeyboardInterrupt")
    check("Ctrl-C stops tensors() (KeyboardInterrupt)", ctrl_c)

    def stream_ctrl_c():
        # Ctrl-C in the loop body of an async_stream: the generator's
        # close stops (joins) the reading thread, which is waiting for
        # room to read ahead
        loader = gst_uel.UnifiedSafetensorsLoader(path, low_memory=True)
        gen = loader.async_stream(loader.keys(), batch_size=1,
                                  prefetch_batches=1)
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            for _ in gen:
                time.sleep(0.05)
        except KeyboardInterrupt:
            start = time.monotonic()
            gen.close()
            loader.close()
            assert time.monotonic() - start < 5
            return
        finally:
            timer.cancel()
        raise AssertionError("no KeyboardInterrupt")
    check("Ctrl-C in an async_stream loop: the stream closes cleanly",
          stream_ctrl_c)

    def docs():
        for obj in (gst_uel, gst_uel.UnifiedSafetensorsLoader,
                    gst_uel.UnifiedSafetensorsLoader.async_stream,
                    gst_uel.tensors, gst_uel.IncrementalSafetensorsWriter,
                    gst_uel.transfer_to_gpu_pinned, gst_uel.dict_to_tensor,
                    gst_uel.Tensor, gst_uel.Tensor.__dlpack__):
            assert obj.__doc__ and len(obj.__doc__) > 20, obj
        assert "low_memory" in pydoc.render_doc(gst_uel)
    check("help(): docstrings", docs)


def check_dicts_and_transfers(framework):
    def dicts():
        d = {"param": 1.0, "name": "test", "nested": {"a": [1, 2, None]},
             "unicode": "\u00e9\U0001f600"}
        t = gst_uel.dict_to_tensor(d)
        assert dtype_name(t) == "uint8" and len(t.shape) == 1
        assert gst_uel.tensor_to_dict(t) == d
        try:
            gst_uel.tensor_to_dict(t.reshape(1, -1))
        except ValueError:
            pass
        else:
            raise AssertionError("a 2-D tensor decoded")
        bad = gst_uel.dict_to_tensor({"a": 1})
        bad = bad[:-1]
        try:
            gst_uel.tensor_to_dict(bad)
        except ValueError:
            return
        raise AssertionError("truncated JSON decoded")
    check(f"{framework}: dict_to_tensor / tensor_to_dict round trip, errors",
          dicts)

    def transfer():
        gst_uel.reset_pinned_transfer_stats()
        src = np.arange(12, dtype=np.float32).reshape(3, 4)
        if framework == "torch":
            src = torch.from_numpy(src)
        out = gst_uel.transfer_to_gpu_pinned(src, device="cuda")
        stats = gst_uel.get_pinned_transfer_stats()
        assert set(stats) == {"pinned", "fallback"}
        assert stats["pinned"] + stats["fallback"] == 1, stats
        if framework == "torch" and torch.cuda.is_available():
            assert out.device.type == "cuda"
            assert torch.equal(out.cpu(), src)
        else:
            assert stats["fallback"] == 1
            assert raw_bytes(out) == raw_bytes(src)
        gst_uel.reset_pinned_transfer_stats()
        assert gst_uel.get_pinned_transfer_stats() == {"pinned": 0,
                                                       "fallback": 0}
    check(f"{framework}: transfer_to_gpu_pinned and its counters", transfer)

    def direct_gpu(path, contents):
        cuda = framework == "torch" and torch.cuda.is_available()
        with gst_uel.UnifiedSafetensorsLoader(path, direct_gpu=True) as loader:
            # direct_gpu implies low_memory; without a device it falls back
            assert loader.low_memory
            assert loader.direct_gpu == cuda or not cuda
            seen = 0
            for batch in loader.async_stream(loader.keys(), batch_size=8,
                                             prefetch_batches=2):
                for k, t in batch:
                    if loader.direct_gpu:
                        assert t.device.type == "cuda"
                    assert raw_bytes(t) == contents[k], k
                    loader.mark_processed(k)
                    seen += 1
            assert seen == len(contents)
    return direct_gpu


# --- main -----------------------------------------------------------------

def check_url(path, contents):
    """The loader takes an http:// URL as it takes a file: the test's
    fault server (tests/remote-server.py, well-behaved under /plain/)
    serves the sample model on 127.0.0.1; every tensor has the file's
    bytes, in both modes."""
    server = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "remote-server.py")
    folder = os.path.dirname(path)
    proc = subprocess.Popen([sys.executable, server, folder,
                             os.path.join(folder, "requests.log")],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}/plain/py/{os.path.basename(path)}"
        try:
            gst_uel.UnifiedSafetensorsLoader(url, low_memory=True).close()
        except Exception as e:
            if "not built with HTTP support" in str(e):
                skip("the loader reads an http:// URL", str(e))
                return
            raise

        def run():
            for low in (True, False):
                with gst_uel.UnifiedSafetensorsLoader(url,
                                                      low_memory=low) as l:
                    assert sorted(l.keys()) == sorted(contents)
                    for k in l.keys():
                        assert l._native.get_tensor(k).tobytes() == \
                            contents[k], (low, k)
        check("the loader reads an http:// URL: every tensor exact, both "
              "modes", run)
    finally:
        proc.terminate()
        proc.wait()


def file_contents(path):
    """name -> bytes, read by the library's low-memory loader as native
    tensors (independent of the framework conversions)."""
    with gst_uel.UnifiedSafetensorsLoader(path, low_memory=True) as loader:
        return {k: loader._native.get_tensor(k).tobytes()
                for k in loader.keys()}


def main():
    frameworks = ["numpy"]
    if LIFETIME_ONLY:
        pass
    elif torch is not None:
        frameworks.append("torch")
    else:
        print("# torch does not import here: the PyTorch path is not run")
    with tempfile.TemporaryDirectory(prefix="gst-uel-python-") as folder:
        sample = os.path.join(folder, "sample.safetensors")
        subprocess.run([TOOL, "make-model", "--layers", "2", "--hidden", "64",
                        "--vocab", "128", "--intermediate", "96", sample],
                       check=True, stdout=subprocess.DEVNULL)
        contents = file_contents(sample)
        keys = list(contents)
        if LIFETIME_ONLY:
            for fw in frameworks:
                gst_uel.set_framework(fw)
                check_lifetimes(fw, sample, keys[:2], contents)
            print(f"1..{n_cases}")
            return
        why = reference_available()
        model = os.path.join(folder, "every-dtype.safetensors")
        readme = os.path.join(folder, "model.safetensors")
        ref_sample = ref_all = ref_readme = None
        if why is None:
            given = run_reference("write-all-dtypes", model)
            ref_all = run_reference("hashes", model, json.dumps(given))
            ref_sample = run_reference("hashes", sample)
            run_reference("write-readme-model", readme)
            ref_readme = run_reference("hashes", readme)
        for fw in frameworks:
            gst_uel.set_framework(fw)
            if why is None:
                run_readme_examples(fw, folder, ref_readme, True)
                check_every_tensor(fw, sample, ref_sample, "sample model")
                check_every_tensor(fw, model, ref_all, "every dtype")
            else:
                skip(f"{fw}: README examples and every tensor against the "
                     "reference", why)
            check_zero_copy(fw, sample)
            check_lifetimes(fw, sample, keys[:3], contents)
            if fw == "torch" and torch.cuda.is_available():
                def on_device():
                    n = 0
                    for name, t in gst_uel.tensors(
                            f"uelsrc location={sample} ! uelcudaupload"):
                        assert t.device.type == "cuda", (name, t.device)
                        assert raw_bytes(t) == contents[name], name
                        n += 1
                    assert n == len(contents)
                check("torch: tensors('uelsrc ! uelcudaupload') gives CUDA "
                      "tensors with the file's bytes", on_device)
            else:
                skip(f"{fw}: tensors('uelsrc ! uelcudaupload') as CUDA "
                     "tensors", "needs torch and a CUDA device")
            direct_gpu = check_dicts_and_transfers(fw)
            check(f"{fw}: direct_gpu=True streams (on the device, or in host "
                  "memory without one)", lambda: direct_gpu(sample, contents))
        gst_uel.set_framework(frameworks[-1])
        check_url(sample, contents)
        check_errors(folder, sample)
    print(f"1..{n_cases}")


if __name__ == "__main__":
    main()
    sys.exit(1 if n_failed else 0)
