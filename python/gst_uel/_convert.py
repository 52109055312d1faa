# gst-uel: the library's tensors as PyTorch tensors or NumPy arrays, with
# no copy.  SPDX-License-Identifier: MIT
"""Conversion of gst_uel._native.Tensor to the framework in use.

PyTorch (``torch.from_dlpack``) when ``torch`` imports, NumPy
(``numpy.asarray`` through ``__array_interface__``) otherwise, the native
tensor itself when neither does; :func:`gst_uel.set_framework` chooses.
The framework's tensor shares the buffer's memory and keeps it alive.

Element types (safetensors name -> torch / numpy):

- F16 F32 F64 I8 I16 I32 I64 U8 C64 BOOL: the framework's own type.
- BF16: ``torch.bfloat16``; NumPy has none: ``ml_dtypes.bfloat16`` when
  ml_dtypes imports, else ``uint16`` holding the raw bits.
- F8_E4M3, F8_E5M2, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ: torch's float8
  types where this torch has them (2.1 and later), ml_dtypes' for NumPy;
  else ``uint8`` holding the raw bits, same shape.
- U16 U32 U64: NumPy's; torch's where it has them (2.3 and later), else
  raw bytes: ``uint8`` with the last dimension times the element size
  (what ``tensor.view(torch.uint8)`` gives).
- F4, F6_E2M3, F6_E3M2 (packed, under a byte an element): 1-D ``uint8``
  of the packed bytes.

A NumPy array of raw bits carries the safetensors type in its dtype's
metadata (``a.dtype.metadata == {"safetensors": "BF16"}``), which the
writer reads, so that a tensor read and written back keeps its type.
"""
import importlib

from . import _native


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


torch = _import("torch")
numpy = _import("numpy")
ml_dtypes = _import("ml_dtypes") if numpy is not None else None

_framework = "torch" if torch is not None else (
    "numpy" if numpy is not None else "native")

# types that cross DLPack as themselves in every torch
_TORCH_DIRECT = {"F16", "F32", "F64", "BF16", "I8", "I16", "I32", "I64",
                 "U8", "C64"}
_TORCH_NAMES = {
    "F64": "float64", "F32": "float32", "F16": "float16",
    "BF16": "bfloat16", "I64": "int64", "I32": "int32", "I16": "int16",
    "I8": "int8", "U8": "uint8", "BOOL": "bool", "C64": "complex64",
    "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn",
    "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz", "U16": "uint16", "U32": "uint32",
    "U64": "uint64",
}
_ML_NAMES = {
    "BF16": "bfloat16", "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu",
    "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
}
_SUB_BYTE = {"F4", "F6_E2M3", "F6_E3M2"}


def set_framework(name):
    """Choose what tensors are returned as: "torch", "numpy" or "native"
    (gst_uel._native.Tensor).  The default is torch when it imports, numpy
    otherwise."""
    global _framework
    if name not in ("torch", "numpy", "native"):
        raise ValueError(f"unknown framework {name!r}: torch, numpy or native")
    if name == "torch" and torch is None:
        raise ImportError("torch does not import in this interpreter")
    if name == "numpy" and numpy is None:
        raise ImportError("numpy does not import in this interpreter")
    _framework = name


def get_framework():
    """The framework tensors are returned as: "torch", "numpy" or "native"."""
    return _framework


def torch_dtype(st):
    """The torch dtype a tensor of safetensors type `st` becomes."""
    if st in _SUB_BYTE:
        return torch.uint8
    t = getattr(torch, _TORCH_NAMES.get(st, ""), None)
    return t if t is not None else torch.uint8


def numpy_dtype(st):
    """The NumPy dtype a tensor of safetensors type `st` becomes."""
    if st in _ML_NAMES and ml_dtypes is not None and hasattr(
            ml_dtypes, _ML_NAMES[st]):
        return numpy.dtype(getattr(ml_dtypes, _ML_NAMES[st]))
    return numpy.dtype({"F16": numpy.float16, "F32": numpy.float32,
            "F64": numpy.float64, "C64": numpy.complex64,
            "BOOL": numpy.bool_, "I8": numpy.int8, "I16": numpy.int16,
            "I32": numpy.int32, "I64": numpy.int64, "U8": numpy.uint8,
            "U16": numpy.uint16, "U32": numpy.uint32, "U64": numpy.uint64,
            "BF16": numpy.uint16}.get(st, numpy.uint8))


def framework_dtype(st):
    if _framework == "torch":
        return torch_dtype(st)
    if _framework == "numpy":
        return numpy_dtype(st)
    return st


def to_torch(t):
    st = t.dtype
    if st in _TORCH_DIRECT:
        return torch.from_dlpack(t)
    target = getattr(torch, _TORCH_NAMES.get(st, ""), None)
    if st in ("U16", "U32", "U64"):
        # raw bytes, viewed as the type where this torch has it
        t.raw = True
        out = torch.from_dlpack(t)
        if target is None:
            return out
        out = out.view(target)
        return out.reshape(()) if not t.shape else out
    # BOOL, the 8-bit floats and the packed types cross as uint8 (of the
    # same shape, or 1-D packed bytes)
    out = torch.from_dlpack(t)
    if target is not None and st not in _SUB_BYTE:
        out = out.view(target)
    return out


def to_numpy(t):
    if t.device != "cpu":
        raise ValueError(f"{t!r} is in device memory: NumPy cannot hold it "
                         "(use torch, or set_framework('native'))")
    a = numpy.asarray(t)
    st = t.dtype
    if st in _ML_NAMES or st in _SUB_BYTE:
        target = numpy_dtype(st)
        if target.name in ("uint8", "uint16"):
            # raw bits: the dtype's metadata keeps the safetensors type,
            # so that the writer writes it back as it came
            target = numpy.dtype(target, metadata={"safetensors": st})
        a = a.view(target)
    return a


def convert(t):
    """A native tensor as the framework's, sharing its memory."""
    if _framework == "torch":
        return to_torch(t)
    if _framework == "numpy" and t.device == "cpu":
        return to_numpy(t)
    return t
