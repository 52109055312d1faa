# gst-uel: stream safetensors tensors through GStreamer, from Python.
# SPDX-License-Identifier: MIT
"""gst_uel: libgstuel-1.0 from Python.

A drop-in for the Python package ``unifiedefficientloader`` (0.5.x): the
same calls (``UnifiedSafetensorsLoader``, ``IncrementalSafetensorsWriter``,
``dict_to_tensor``, ``tensor_to_dict``, ``transfer_to_gpu_pinned``,
``get_pinned_transfer_stats``, ``reset_pinned_transfer_stats``) on the C
library, returning PyTorch tensors when ``torch`` imports and NumPy arrays
otherwise, without copying the library's memory.  Plus :func:`tensors`,
the tensors reaching the end of any GStreamer launch line.

Change the import line and nothing else::

    from gst_uel import UnifiedSafetensorsLoader
"""
from . import _convert, _native
from ._convert import get_framework, set_framework
from ._native import Error, Tensor
from .loader import (MemoryEfficientSafeOpen, UnifiedSafetensorsLoader,
                     dict_to_tensor, get_pinned_transfer_stats,
                     reset_pinned_transfer_stats, tensor_to_dict,
                     transfer_to_gpu_pinned)
from .writer import IncrementalSafetensorsWriter

__all__ = [
    "UnifiedSafetensorsLoader", "MemoryEfficientSafeOpen",
    "IncrementalSafetensorsWriter", "dict_to_tensor", "tensor_to_dict",
    "transfer_to_gpu_pinned", "get_pinned_transfer_stats",
    "reset_pinned_transfer_stats", "tensors", "set_framework",
    "get_framework", "Error", "Tensor",
]


def tensors(launch_line, max_buffers=4):
    """Yields (name, tensor) for every buffer reaching the appsink at the
    end of a GStreamer launch line, without a copy: e.g.
    ``tensors("uelsrc location=model.safetensors ! uelqueue")``.

    A line without an appsink gets one at its end (``sync=false``,
    `max_buffers` deep, so that a slow consumer holds the pipeline back);
    a line that ends in its own appsink keeps its settings.  Elements are
    found on GST_PLUGIN_PATH as usual.  A buffer with a UelTensorMeta
    becomes a tensor of its dtype and shape (a CUDA tensor for
    ``memory:UelCUDA``), anything else 1-D uint8 bytes (name None).  An
    error on the bus raises gst_uel.Error naming the element; closing the
    generator, or Ctrl-C, stops the pipeline."""
    pipeline = _native.Pipeline(launch_line, max_buffers=max_buffers)
    try:
        for name, t in pipeline:
            yield name, _convert.convert(t)
    finally:
        pipeline.close()
