# gst-uel: unifiedefficientloader's calls over libgstuel-1.0.
# SPDX-License-Identifier: MIT
"""The loader, dictionaries and pinned transfers of unifiedefficientloader
0.5.x, call for call, on the C library."""
import json
import os

from . import _convert, _native
from ._convert import convert


class UnifiedSafetensorsLoader:
    """A ``.safetensors`` file (or a sharded checkpoint's
    ``*.index.json``) whose tensors are read by name, as
    unifiedefficientloader's loader of the same name, on UelLoader.

    Standard mode (``low_memory=False``) reads every tensor when the
    loader is created; ``get_tensor`` then returns views of those bytes,
    and ``mark_processed`` releases them.  Low-memory mode reads each
    tensor when it is asked for.  ``use_mmap=True`` gives read-only views
    of a mapping of the file (writing to one is an error: copy it first).
    ``direct_gpu=True`` makes ``async_stream`` deliver CUDA tensors (it
    implies ``low_memory=True``; without a device it falls back to host
    memory and ``self.direct_gpu`` reads False).

    Tensors are PyTorch tensors when torch imports, NumPy arrays
    otherwise (:func:`gst_uel.set_framework`), sharing the library's
    memory: nothing is copied, and the memory stays valid while any
    tensor of it lives, after ``close()`` too.

    Errors are exceptions with the library's message: FileNotFoundError
    for a missing file, KeyError for a tensor the file does not have,
    gst_uel.Error for a file that breaks a rule of the format (naming the
    rule, the tensor and the numbers).

    Usage::

        with UnifiedSafetensorsLoader("model.safetensors", low_memory=True) as loader:
            for key in loader.keys():
                tensor = loader.get_tensor(key)
                # ... process tensor ...
                loader.mark_processed(key)
    """

    def __init__(self, filename, low_memory=False, direct_gpu=False,
                 use_mmap=False):
        """Opens (and in standard mode reads) `filename`."""
        if direct_gpu and not low_memory:
            # as the Python package: direct_gpu streams, so it is low-memory
            low_memory = True
        self.filename = os.fspath(filename)
        self._native = _native.Loader(self.filename, low_memory=low_memory,
                                      direct_gpu=direct_gpu,
                                      use_mmap=use_mmap)
        self.low_memory = low_memory
        self.use_mmap = use_mmap
        self.direct_gpu = self._native.direct_gpu
        self._all_keys = self._native.keys()
        self._metadata = self._native.metadata()
        self._header_cache = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.close()

    def close(self):
        """Releases the file and the preloaded tensors; tensors already
        returned stay valid."""
        if self._native is not None:
            self._native.close()

    def _loader(self):
        if self._native is None:
            raise ValueError("the loader is closed")
        return self._native

    @property
    def _header(self):
        """The file's header as the Python package parses it: name ->
        {"dtype", "shape", "data_offsets"}, plus "__metadata__" when there
        is metadata (offsets are within the tensor's own file)."""
        if self._header_cache is None:
            h = {}
            if self._metadata:
                h["__metadata__"] = dict(self._metadata)
            for k in self._all_keys:
                dtype, shape, n_bytes, begin = self._loader().info(k)
                h[k] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [begin, begin + n_bytes]}
            self._header_cache = h
        return self._header_cache

    def keys(self):
        """The tensor names (a list), in the order of their bytes in the
        file."""
        return list(self._all_keys)

    def metadata(self):
        """The ``__metadata__`` map (a dict of str)."""
        return dict(self._metadata)

    def get_shape(self, key):
        """The tensor's shape (a tuple), from the header alone."""
        return tuple(self._loader().info(key)[1])

    def get_ndim(self, key):
        """The tensor's number of dimensions, from the header alone."""
        return len(self.get_shape(key))

    def get_dtype(self, key):
        """The dtype of the tensor `get_tensor(key)` returns (torch's or
        NumPy's; see gst_uel._convert for types a framework lacks), from
        the header alone."""
        return _convert.framework_dtype(self._loader().info(key)[0])

    def get_tensor(self, key):
        """The tensor `key`: a view of the preloaded bytes in standard
        mode, read from the file now otherwise."""
        return convert(self._loader().get_tensor(key))

    def mark_processed(self, key):
        """Done with `key`: in standard mode the loader's copy is released
        (its memory goes when the tensors of it go too)."""
        self._loader().mark_processed(key)

    def load_all(self):
        """Every tensor, a dict of name -> tensor: the preloaded ones in
        standard mode; in low-memory mode read by the library's stream in
        batches of 16, as the Python package reads them through its
        async_stream."""
        if not self.low_memory:
            return {k: convert(t)
                    for k, t in self._loader().load_all().items()}
        # the stream's reader thread reads ahead while tensors are
        # converted: twice as fast as uel_loader_load_all()'s one read
        # after another (0.36 s against 0.68 s for 1 GiB here); without
        # pinning it never waits for the caller to drop what it holds
        out = {}
        stream = self._loader().async_stream(None, 16, 2, False)
        try:
            for batch in stream:
                for k, t in batch:
                    out[k] = convert(t)
        finally:
            stream.close()
        return out

    def async_stream(self, keys=None, batch_size=1, prefetch_batches=2,
                     pin_memory=False):
        """Yields lists of up to `batch_size` (key, tensor) pairs, read
        ahead by a thread of the library into at most `prefetch_batches`
        batches; `keys` None for every tensor.  With `pin_memory` the
        tensors are read straight into a pinned pool.  Memory stays
        bounded: batch_size × (prefetch_batches + 2) tensors at most, for
        a caller that drops each batch before taking the next.  Closing
        the generator (or Ctrl-C) stops the reading thread."""
        stream = self._loader().async_stream(
            None if keys is None else list(keys), batch_size,
            prefetch_batches, pin_memory)
        try:
            for batch in stream:
                yield [(k, convert(t)) for k, t in batch]
        finally:
            stream.close()


MemoryEfficientSafeOpen = UnifiedSafetensorsLoader


def dict_to_tensor(data_dict):
    """A dictionary as a 1-D uint8 tensor of its JSON text (the library's
    uel_dict_to_tensor(): compact JSON, its depth and size limits)."""
    return convert(_native.dict_to_tensor(json.dumps(data_dict)))


def _host_bytes(tensor):
    """(owner, address, size) of a host tensor's contiguous bytes."""
    torch = _convert.torch
    if isinstance(tensor, _native.Tensor):
        return tensor
    if torch is not None and isinstance(tensor, torch.Tensor):
        t = tensor.detach().contiguous()
        return (t, t.data_ptr(), t.numel() * t.element_size())
    np = _convert.numpy
    a = np.ascontiguousarray(tensor)
    return (a, a.ctypes.data, a.nbytes)


def tensor_to_dict(tensor_data):
    """The dictionary a 1-D uint8 tensor of JSON text holds (ValueError
    when it holds none)."""
    if isinstance(tensor_data, _native.Tensor):
        return json.loads(_native.tensor_to_dict(tensor_data))
    if tensor_data.ndim != 1:
        raise ValueError("Expected a 1D tensor for dict conversion, got "
                         f"{tensor_data.ndim}D tensor.")
    torch = _convert.torch
    if torch is not None and isinstance(tensor_data, torch.Tensor):
        tensor_data = tensor_data.detach().cpu().contiguous().numpy()
    data = memoryview(_convert.numpy.ascontiguousarray(tensor_data)).cast("B")
    return json.loads(_native.tensor_to_dict(data))


def _device_index(device):
    torch = _convert.torch
    if torch is not None and isinstance(device, torch.device):
        return device.index or 0
    s = str(device)
    return int(s.split(":", 1)[1]) if ":" in s else 0


def transfer_to_gpu_pinned(tensor, device="cuda", dtype=None,
                           non_blocking=True):
    """Copies a host tensor to a CUDA device through the library's pinned
    pool (uel_transfer_to_gpu_pinned(): pinned once, reused, chunked) and
    waits for it.  Without a usable device the tensor is returned as it is
    (counted as a fallback), as the library's graceful fallback; `dtype`
    then casts it.  A tensor already on a device, or a `device` that is
    not CUDA, goes through ``tensor.to()`` as in the Python package."""
    torch = _convert.torch
    is_torch = torch is not None and isinstance(tensor, torch.Tensor)
    if not str(device).startswith("cuda") or (
            is_torch and tensor.device.type != "cpu"):
        if not is_torch:
            return tensor
        return tensor.to(device=device, dtype=dtype,
                         non_blocking=non_blocking)
    src = _host_bytes(tensor)
    out = _native.transfer(src, _device_index(device))
    if out.device == "cpu":
        result = tensor
    elif isinstance(tensor, _native.Tensor):
        result = convert(out)
    elif is_torch:
        result = torch.from_dlpack(out).view(tensor.dtype).reshape(
            tensor.shape)
    else:
        # NumPy cannot hold device memory: the native tensor (DLPack)
        result = out
    if dtype is not None and is_torch:
        result = result.to(dtype)
    return result


def get_pinned_transfer_stats():
    """{'pinned': n, 'fallback': n}: the library's transfer counters."""
    return _native.get_pinned_transfer_stats()


def reset_pinned_transfer_stats():
    """Resets the transfer counters."""
    _native.reset_pinned_transfer_stats()
