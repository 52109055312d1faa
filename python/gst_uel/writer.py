# gst-uel: unifiedefficientloader's IncrementalSafetensorsWriter over
# UelWriter.  SPDX-License-Identifier: MIT
"""The incremental writer of unifiedefficientloader 0.5.x on UelWriter."""
import os

from . import _convert, _native

_TORCH_TO_ST = {
    "float64": "F64", "float32": "F32", "float16": "F16",
    "bfloat16": "BF16", "int64": "I64", "int32": "I32", "int16": "I16",
    "int8": "I8", "uint8": "U8", "bool": "BOOL", "complex64": "C64",
    "float8_e5m2": "F8_E5M2", "float8_e4m3fn": "F8_E4M3",
    "float8_e8m0fnu": "F8_E8M0", "uint16": "U16", "uint32": "U32",
    "uint64": "U64", "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
}


def _st_dtype_and_bytes(tensor):
    """(safetensors dtype, shape, bytes-like) of a torch tensor, NumPy
    array or native tensor, without a copy for host tensors in order."""
    if isinstance(tensor, _native.Tensor):
        return tensor.dtype, tensor.shape, tensor.tobytes()
    torch = _convert.torch
    np = _convert.numpy
    if torch is not None and isinstance(tensor, torch.Tensor):
        name = str(tensor.dtype).replace("torch.", "")
        if name not in _TORCH_TO_ST:
            raise ValueError(f"Unsupported torch dtype: {tensor.dtype}")
        t = tensor.detach().cpu().contiguous()
        flat = t.reshape(-1).view(torch.uint8) if t.numel() else \
            torch.empty(0, dtype=torch.uint8)
        return _TORCH_TO_ST[name], tuple(t.shape), flat.numpy()
    a = np.ascontiguousarray(tensor)
    name = a.dtype.name
    # raw bits of a type NumPy lacks, as gst_uel returned them
    meta = a.dtype.metadata or {}
    if meta.get("safetensors"):
        return meta["safetensors"], a.shape, a.reshape(-1).view(np.uint8)
    st = {"float64": "F64", "float32": "F32", "float16": "F16",
          "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
          "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64",
          "bool": "BOOL", "complex64": "C64", "bfloat16": "BF16",
          "float8_e5m2": "F8_E5M2", "float8_e4m3fn": "F8_E4M3",
          "float8_e4m3fnuz": "F8_E4M3FNUZ",
          "float8_e5m2fnuz": "F8_E5M2FNUZ"}.get(name)
    if st is None:
        raise ValueError(f"Unsupported NumPy dtype: {a.dtype}")
    return st, a.shape, a.reshape(-1).view(np.uint8)


class IncrementalSafetensorsWriter:
    """Writes tensors to a ``.safetensors`` file as they come, the header
    reserved at the start (`max_header_bytes`, rounded up to 8) and
    filled at the end: unifiedefficientloader's writer of the same name,
    on the library's UelWriter (the same bytes for the same calls).

    Unlike the Python package, the file is written under a temporary name
    and renamed when the ``with`` block ends without an exception; an
    exception (or ``abort()``) leaves nothing at `filename`.  A header
    that outgrows the reserved block is refused at the ``write`` that
    would overflow it, naming both sizes.  Writes happen in the calling
    thread, without the GIL (`max_workers` is accepted and unused).

    Usage::

        with IncrementalSafetensorsWriter("out.safetensors") as writer:
            for batch in loader.async_stream(keys, batch_size=16):
                writer.write_batch(batch)
    """

    def __init__(self, filename, metadata=None,
                 max_header_bytes=1024 * 1024, max_workers=4):
        self.filename = os.fspath(filename)
        self.metadata = metadata or {}
        self.max_header_bytes = max_header_bytes + (-max_header_bytes % 8)
        self._writer = None
        self._names = set()

    def __enter__(self):
        os.makedirs(os.path.dirname(self.filename) or ".", exist_ok=True)
        self._writer = _native.Writer(self.filename, self.max_header_bytes)
        for k, v in self.metadata.items():
            self._writer.set_metadata(str(k), str(v))
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        w, self._writer = self._writer, None
        if w is None:
            return
        if exc_type is None:
            w.finish()
        else:
            w.abort()

    def abort(self):
        """Gives up: the temporary file goes, nothing is written."""
        w, self._writer = self._writer, None
        if w is not None:
            w.abort()

    def write(self, name, tensor):
        """Appends one tensor (its bytes are written before this returns)."""
        if self._writer is None:
            raise RuntimeError("Must be used within a context manager.")
        if name in self._names:
            raise ValueError(f"Tensor '{name}' has already been written.")
        st, shape, data = _st_dtype_and_bytes(tensor)
        self._writer.append(name, st, list(shape), data)
        self._names.add(name)

    def write_batch(self, batch):
        """Appends (name, tensor) pairs in order: an ``async_stream``
        batch."""
        for name, tensor in batch:
            self.write(name, tensor)

    def write_dict(self, state_dict):
        """Appends every tensor of a state dict, in its order."""
        self.write_batch(list(state_dict.items()))
