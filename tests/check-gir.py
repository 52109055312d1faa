#!/usr/bin/env python3
# gst-uel: the library from Python through GObject introspection, as a
# Python user calls it.  A TAP test (tests/meson.build):
#
#   check-gir.py TYPELIB_DIR CONFORMANCE_DIR
#
# TYPELIB_DIR holds the build's GstUel-1.0.typelib (empty when meson was
# configured without introspection: the test skips); meson points
# GI_TYPELIB_PATH and LD_LIBRARY_PATH at the build tree.  Every value is
# checked exactly: the reference's conformance file (tests/conformance/
# README.md: metadata {"test": "a"}, nine 1-D tensors of six elements
# holding -3..2) and a file written here with UelWriter.
# SPDX-License-Identifier: MIT
import os
import struct
import sys
import tempfile

if len(sys.argv) < 3 or not sys.argv[1]:
    print("1..0 # SKIP introspection disabled (meson -Dintrospection)")
    sys.exit(0)
typelib_dir, conformance_dir = sys.argv[1], sys.argv[2]
if not os.path.exists(os.path.join(typelib_dir, "GstUel-1.0.typelib")):
    print(f"Bail out! no GstUel-1.0.typelib in {typelib_dir}")
    sys.exit(1)
try:
    import gi
    gi.require_version("GLib", "2.0")
    gi.require_version("Gst", "1.0")
    gi.require_version("GstUel", "1.0")
    from gi.repository import GLib, Gst, GstUel
except (ImportError, ValueError) as e:
    print(f"1..0 # SKIP no gi or typelib in {sys.executable}: {e} "
          "(scripts/deps installs python3-gi and the gir1.2 packages)")
    sys.exit(0)

Gst.init(None)
GstUel.init()

OVERALL = os.path.join(conformance_dir, "overall.safetensors")
# the conformance file's tensors, in file order, with their dtypes and the
# values -3..2 packed as the dtype stores them
VALUES = [-3, -2, -1, 0, 1, 2]
OVERALL_TENSORS = [
    ("B", GstUel.DType.U8, "6B", [v & 0xff for v in VALUES]),
    ("H", GstUel.DType.U16, "<6H", [v & 0xffff for v in VALUES]),
    ("I", GstUel.DType.U32, "<6I", [v & 0xffffffff for v in VALUES]),
    ("b", GstUel.DType.I8, "6b", VALUES),
    ("d", GstUel.DType.F64, "<6d", VALUES),
    ("e", GstUel.DType.F16, "<6e", VALUES),
    ("f", GstUel.DType.F32, "<6f", VALUES),
    ("h", GstUel.DType.I16, "<6h", VALUES),
    ("i", GstUel.DType.I32, "<6i", VALUES),
]

tests = []


def test(fn):
    tests.append(fn)
    return fn


def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def raises(fn, domain, code, what):
    """fn() fails with a GLib.Error of that domain (a quark) and code"""
    try:
        fn()
    except GLib.Error as e:
        if not e.matches(domain, code):
            raise AssertionError(f"{what}: got {e.domain} {e.code} "
                                 f"({e.message}), want "
                                 f"{GLib.quark_to_string(domain)} {code}")
        return e
    raise AssertionError(f"{what}: no error")


def buffer_bytes(buf):
    return buf.extract_dup(0, buf.get_size())


def stream(reader):
    """starts reader and yields each buffer with its UelTensorMeta"""
    reader.start()
    while (buf := reader.next()) is not None:
        yield buf, GstUel.buffer_get_tensor_meta(buf)


def overall_bytes(i):
    _, _, fmt, values = OVERALL_TENSORS[i]
    return struct.pack(fmt, *values)


@test
def header_reads_the_conformance_file():
    h = GstUel.Header.open(OVERALL)
    eq(h.get_location(), OVERALL, "location")
    eq(h.is_sharded(), False, "sharded")
    eq(h.get_n_files(), 1, "files")
    eq(h.get_file_path(0), OVERALL, "file path")
    eq(h.get_file_size(0), os.path.getsize(OVERALL), "file size")
    eq(h.get_metadata(), {"test": "a"}, "metadata")
    eq(h.get_metadata_json(), '{"test":"a"}', "metadata json")
    eq(h.get_n_tensors(), 9, "tensors")
    data_offset = h.get_data_offset(0)
    begin = 0
    for i, (name, dtype, fmt, _) in enumerate(OVERALL_TENSORS):
        info = h.get_tensor(i)
        size = struct.calcsize(fmt)
        eq((info.name, info.dtype, info.n_dims, info.get_shape(),
            info.n_elements, info.n_bytes, info.data_begin,
            info.file_offset, info.file_index),
           (name, dtype, 1, [6], 6, size, begin, data_offset + begin, 0),
           f"tensor {i}")
        begin += size
    eq(h.get_total_bytes(), begin, "total bytes")
    info, index = h.lookup("e")
    eq((info.name, index), ("e", 5), "lookup")
    eq(h.lookup("nope"), (None, 0), "lookup of a missing name")


@test
def tensor_info_outlives_its_header():
    h = GstUel.Header.open(OVERALL)
    info = h.get_tensor(8)
    del h
    eq((info.name, info.dtype, info.get_shape()),
       ("i", GstUel.DType.I32, [6]), "info after the header is gone")
    copy = info.copy()
    eq((copy.name, copy.n_bytes), ("i", 24), "copy")


@test
def reader_streams_buffers_with_their_meta():
    h = GstUel.Header.open(OVERALL)
    r = GstUel.Reader.new(h)
    eq(r.get_n_tensors(), 9, "reader tensors")
    eq(r.get_total_bytes(), h.get_total_bytes(), "reader bytes")
    r.start()
    for i, (name, dtype, fmt, _) in enumerate(OVERALL_TENSORS):
        buf = r.next()
        meta = GstUel.buffer_get_tensor_meta(buf)
        eq((meta.get_name(), meta.get_shape(), meta.tensor_index, meta.index,
            meta.count, meta.dtype, meta.n_bytes, meta.chunk_offset,
            meta.chunk_index, meta.last_chunk),
           (name, [6], i, i, 9, dtype, struct.calcsize(fmt), 0, 0, True),
           f"meta of buffer {i}")
        eq(meta.get_file(), OVERALL, "meta file")
        eq(meta.get_file_offset(), h.get_tensor(i).file_offset, "offset")
        eq(buffer_bytes(buf), overall_bytes(i), f"bytes of {name}")
    eq(r.next(), None, "end of stream")
    r.stop()


@test
def reader_reads_a_selection_in_chunks():
    h = GstUel.Header.open(OVERALL)
    r = GstUel.Reader.new(h)
    r.set_tensors([4, 6])       # d (48 bytes), f (24 bytes)
    r.set_chunk_size(16)
    got = [(m.get_name(), m.index, m.count, m.chunk_index, m.chunk_offset,
            m.last_chunk, buf.get_size()) for buf, m in stream(r)]
    eq(got, [("d", 0, 2, 0, 0, False, 16), ("d", 0, 2, 1, 16, False, 16),
             ("d", 0, 2, 2, 32, True, 16), ("f", 1, 2, 0, 0, False, 16),
             ("f", 1, 2, 1, 16, True, 8)], "chunks")
    eq(buffer_bytes(r.read_tensor(6)), overall_bytes(6), "read_tensor")


@test
def tensor_filter_selects_by_name_dtype_and_rank():
    h = GstUel.Header.open(OVERALL)
    f = GstUel.TensorFilter.new()
    eq(f.has_names(), False, "empty filter")
    f.add_names("?,i")
    f.set_dtypes("i8,i32,f16")
    eq(f.has_names(), True, "names")
    eq(f.matches(h.get_tensor(3)), True, "b matches")
    eq(f.matches(h.get_tensor(0)), False, "B (U8) does not")
    indices, total = f.select(h)
    eq((list(indices), total), ([3, 5, 8], 6 + 12 + 24), "select")
    g = f.copy()
    g.set_ndim(2)
    eq(list(g.select(h)[0]), [], "rank 2 selects nothing")
    raises(lambda: f.set_dtypes("F17"), GstUel.error_quark(),
           GstUel.Error.INVALID_ARGUMENT, "unknown dtype")
    eq(GstUel.tensor_name_escape("a*b"), "a\\*b", "escape")


@test
def loader_reads_by_key_and_streams():
    loader = GstUel.Loader.new(OVERALL, False)
    names = [t[0] for t in OVERALL_TENSORS]
    eq(loader.keys(), names, "keys")
    eq((loader.contains("h"), loader.contains("x")), (True, False),
       "contains")
    eq(loader.get_metadata(), {"test": "a"}, "metadata")
    eq(loader.get_dtype("e"), GstUel.DType.F16, "dtype")
    eq(loader.get_ndim("e"), 1, "ndim")
    eq(loader.get_shape("e"), (True, [6]), "shape")
    eq(loader.get_tensor_info("e").n_bytes, 12, "info")
    eq(buffer_bytes(loader.get_tensor("f")), overall_bytes(6), "get_tensor")
    eq(loader.mark_processed("f"), True, "mark_processed")
    eq(buffer_bytes(loader.get_tensor("f")), overall_bytes(6),
       "get_tensor after mark_processed")
    raises(lambda: loader.get_tensor("x"), GstUel.error_quark(),
           GstUel.Error.INVALID_ARGUMENT, "missing key")

    low = GstUel.Loader.new_full(OVERALL, True, False, True)
    eq((low.get_low_memory(), low.get_use_mmap(), low.get_direct_gpu()),
       (True, True, False), "modes")
    stream = low.async_stream(["i", "B", "e"], 2, 1, False)
    batches = []
    while True:
        batch = stream.next()
        if not batch:           # NULL at the end: PyGObject gives []
            break
        batches.append([(GstUel.buffer_get_tensor_meta(b).get_name(),
                         buffer_bytes(b)) for b in batch])
    eq(batches, [[("B", overall_bytes(0)), ("e", overall_bytes(5))],
                 [("i", overall_bytes(8))]], "batches in stream order")
    stats = stream.get_stats()
    eq((stats.batches, stats.tensors, stats.bytes, stats.live_tensors),
       (2, 3, 6 + 12 + 24, 0), "stream stats: every tensor released")


@test
def writer_writes_what_the_reader_reads_back():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.safetensors")
        w = GstUel.Writer.new(path)
        eq(w.get_location(), path, "location")
        w.add_tensor("weight", GstUel.DType.F32, [2, 3])
        w.add_tensor("mask", GstUel.DType.U8, [4])
        w.add_tensor("scale", GstUel.DType.BF16, [])
        w.set_metadata("format", "pt")
        raises(lambda: w.add_tensor("mask", GstUel.DType.U8, [1]),
               GstUel.error_quark(), GstUel.Error.DUPLICATE_TENSOR,
               "a name declared twice")
        eq(w.get_total_bytes(), 24 + 4 + 2, "total bytes")
        w.write_header()
        # the reference's order: widest dtype first
        eq([w.get_tensor(i).name for i in range(w.get_n_tensors())],
           ["weight", "scale", "mask"], "file order")
        weight = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
        w.write("weight", 12, weight[12:])
        w.write("weight", 0, weight[:12])
        w.write_tensor("mask", b"\x01\x00\x01\x01")
        raises(w.finish, GstUel.error_quark(), GstUel.Error.INCOMPLETE,
               "finish before every byte")
        w.write_zeros("scale", 0, 2)
        w.finish()
        del w

        h = GstUel.Header.open(path)
        eq(h.get_metadata(), {"format": "pt"}, "metadata read back")
        got = [(m.get_name(), m.dtype, m.get_shape(), buffer_bytes(buf))
               for buf, m in stream(GstUel.Reader.new(h))]
        eq(got, [("weight", GstUel.DType.F32, [2, 3], weight),
                 ("scale", GstUel.DType.BF16, [], b"\x00\x00"),
                 ("mask", GstUel.DType.U8, [4], b"\x01\x00\x01\x01")],
           "tensors read back")


@test
def writer_freed_unfinished_leaves_nothing():
    with tempfile.TemporaryDirectory() as d:
        w = GstUel.Writer.new(os.path.join(d, "x.safetensors"))
        w.add_tensor("a", GstUel.DType.U8, [1])
        eq(len(os.listdir(d)), 1, "the temporary file")
        del w
        eq(os.listdir(d), [], "folder after the writer is gone")
        raises(lambda: GstUel.Writer.new(os.path.join(d, "no", "x")),
               GLib.file_error_quark(), GLib.FileError.NOENT,
               "a missing folder")


@test
def convert_cpu_casts_bytes():
    f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 65520.0)
    eq(GstUel.convert_cpu(GstUel.DType.F32, GstUel.DType.F16,
                          GLib.Bytes.new(f32)).get_data(),
       struct.pack("<4H", 0x3c00, 0xc000, 0x3800, 0x7c00), "F32 to F16")
    eq(GstUel.convert_cpu(GstUel.DType.F32, GstUel.DType.BF16,
                          GLib.Bytes.new(f32)).get_data(),
       struct.pack("<4H", 0x3f80, 0xc000, 0x3f00, 0x4780),
       "F32 to BF16")
    eq(GstUel.convert_cpu(GstUel.DType.F32, GstUel.DType.F8_E4M3,
                          GLib.Bytes.new(f32)).get_data(),
       bytes([0x38, 0xc0, 0x30, 0x7f]), "F32 to F8_E4M3 (overflow: NaN)")
    eq(GstUel.convert_cpu(GstUel.DType.F16, GstUel.DType.F32,
                          GLib.Bytes.new(b"")).get_size(), 0, "empty")
    e = raises(lambda: GstUel.convert_cpu(GstUel.DType.U8, GstUel.DType.F32,
                                          GLib.Bytes.new(b"\x01")),
               GstUel.error_quark(), GstUel.Error.INVALID_ARGUMENT,
               "an unsupported pair")
    eq(e.message, "cannot convert U8 to F32: only F32, F16, BF16, F8_E4M3 "
       "and F8_E5M2 convert into one another, and F64 to each of them",
       "message")
    raises(lambda: GstUel.convert_cpu(GstUel.DType.F32, GstUel.DType.F16,
                                      GLib.Bytes.new(b"\x00" * 6)),
           GstUel.error_quark(), GstUel.Error.INVALID_ARGUMENT,
           "a partial element")


@test
def errors_carry_the_uel_domain_and_code():
    eq(GLib.quark_to_string(GstUel.error_quark()), "uel-error-quark",
       "domain")
    eq(int(GstUel.Error.FILE_TOO_SMALL), 1, "first code")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "short.safetensors")
        with open(path, "wb") as f:
            f.write(b"\x01\x02\x03")
        e = raises(lambda: GstUel.Header.open(path), GstUel.error_quark(),
                   GstUel.Error.FILE_TOO_SMALL, "a 3-byte file")
        eq(e.domain, "uel-error-quark", "error domain string")
        raises(lambda: GstUel.Header.open(os.path.join(d, "none")),
               GLib.file_error_quark(), GLib.FileError.NOENT, "no file")


@test
def dtype_helpers():
    eq(GstUel.dtype_from_string("bf16", -1), GstUel.DType.INVALID,
       "names are case-sensitive")
    eq(GstUel.dtype_from_string("BF16", -1), GstUel.DType.BF16, "BF16")
    eq(GstUel.dtype_to_string(GstUel.DType.F8_E4M3), "F8_E4M3", "name")
    eq((GstUel.dtype_get_bits(GstUel.DType.F4),
        GstUel.dtype_is_float(GstUel.DType.I32)), (4, False), "bits, float")


print(f"1..{len(tests)}")
failed = 0
for n, fn in enumerate(tests, 1):
    name = fn.__name__.replace("_", "-")
    try:
        fn()
        print(f"ok {n} /gir/{name}")
    except Exception as e:      # a failed check or a binding error
        failed += 1
        print(f"not ok {n} /gir/{name}")
        for line in f"{type(e).__name__}: {e}".splitlines():
            print(f"# {line}")
sys.exit(1 if failed else 0)
