#!/usr/bin/env python3
# gst-uel: cross-checks the library against the real Python packages, where
# they are importable: the reference implementation (Hugging Face
# `safetensors`) and ml_dtypes.  A TAP test (tests/meson.build):
#
#   check-python-crosscheck.py HELPER TOOL VENV
#
# HELPER is uel-pycheck-helper (UelWriter and uel_convert_cpu()), TOOL the
# `gst-uel` program (its `inspect --json --checksum` reads every byte
# through UelReader), VENV the virtual environment that scripts/check-venv
# makes.  Run by an interpreter that lacks the packages, the script runs
# itself again with VENV's (or $UEL_CHECK_PYTHON); where neither has them,
# it skips ("1..0 # SKIP") and says why.
#
#   - UelWriter writes what save_file writes, byte for byte, for every dtype
#     (numpy's, ml_dtypes', and the rest through the reference's own
#     TensorSpec), empty and scalar tensors, names and metadata that JSON
#     escapes, every padding and random files; metadata with more than one
#     key is compared as a map (the reference orders it by a randomly
#     seeded hash map, UelWriter sorts it).
#   - what save_file wrote, one file or shards under an index, reads back
#     through UelReader with every tensor's SHA-256, dtype, shape, offsets
#     and the metadata.
#   - uel_convert_cpu() casts F32, F64, F16 and BF16 to BF16, F16, F8_E4M3
#     and F8_E5M2 to the bits that ml_dtypes' astype gives.
#   - a tensor over 4 GiB, written by UelWriter as a hole in a sparse file,
#     opens lazily in the reference's safe_open at the offsets expected,
#     with the bytes written around the 4 GiB mark.
# SPDX-License-Identifier: MIT
import hashlib
from fractions import Fraction
import json
import os
import subprocess
import sys
import tempfile

REEXEC = "UEL_CROSSCHECK_REEXEC"


def skip_or_reexec(reason):
    venv = sys.argv[3] if len(sys.argv) > 3 else ""
    candidates = [os.environ.get("UEL_CHECK_PYTHON", ""),
                  os.path.join(venv, "bin", "python3") if venv else ""]
    if not os.environ.get(REEXEC):
        for py in candidates:
            if py and os.access(py, os.X_OK):
                os.environ[REEXEC] = py
                os.execv(py, [py] + sys.argv)
    tried = os.environ.get(REEXEC) or sys.executable
    print(f"1..0 # SKIP {reason} in {tried} (bash scripts/check-venv "
          "installs them; it needs PyPI)")
    sys.exit(0)


try:
    import ml_dtypes
    import numpy as np
    import safetensors
    from safetensors import safe_open
    from safetensors._safetensors_rust import TensorSpec, serialize_file
    from safetensors.numpy import save_file
except ImportError as e:
    skip_or_reexec(f"the reference packages are not importable ({e})")

HELPER, TOOL = sys.argv[1], sys.argv[2]
SEED = int(os.environ.get("UEL_CROSSCHECK_SEED", "20240915"))
rng = np.random.default_rng(SEED)
n_cases = 0
n_failed = 0


def report(ok, what, detail=""):
    global n_cases, n_failed
    n_cases += 1
    if not ok:
        n_failed += 1
    print(f"{'ok' if ok else 'not ok'} {n_cases} - {what}")
    if not ok and detail:
        for line in str(detail).splitlines():
            print(f"#   {line}")
    sys.stdout.flush()


# numpy / ml_dtypes types and the safetensors dtype each is written as
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
UEL_NAME = {np.dtype(t).name: n for t, n in NP_DTYPES}
# the reference's dtypes that neither numpy nor this ml_dtypes has, through
# its own TensorSpec: (its name, ours, bits)
SPEC_ONLY = [("float8_e8m0fnu", "F8_E8M0", 8), ("float4_e2m1fn_x2", "F4", 4)]


def random_array(dtype, shape):
    """Random bits of any dtype: NaN payloads, subnormals, all of them
    (BOOL only 0 or 1, the only values the format allows)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == np.bool_:
        return rng.integers(0, 2, n, dtype=np.uint8).view(np.bool_) \
            .reshape(shape)
    raw = rng.integers(0, 256, n * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).reshape(shape)


def random_name(length):
    """Any code point but surrogates and NUL: ASCII control characters,
    quotes, backslashes, non-ASCII and astral planes, to exercise escaping.
    (UelWriter takes names as C strings, and UelHeader refuses a NUL in a
    name or in metadata, by choice.)"""
    pools = [(1, 0x80), (0x80, 0x800), (0x800, 0xD800), (0xE000, 0x10000),
             (0x10000, 0x110000)]
    out = []
    for _ in range(length):
        lo, hi = pools[rng.integers(0, len(pools)) if rng.random() < 0.4
                       else 0]
        out.append(chr(int(rng.integers(lo, hi))))
    return "".join(out)


# --- writing with UelWriter ----------------------------------------------

class Tensor:
    def __init__(self, name, dtype, shape, data):
        self.name, self.dtype, self.shape = name, dtype, list(shape)
        self.data = data  # bytes


def write_with_uelwriter(path, tensors, metadata, tmp, split=True):
    """Writes @tensors through uel-pycheck-helper; every tensor's bytes go
    in one or several pieces (the writer takes them in any cut)."""
    blob = bytearray()
    spec = {"metadata": metadata or {}, "tensors": []}
    for t in tensors:
        pieces = []
        n = len(t.data)
        cuts = sorted(set([0, n] + (list(rng.integers(0, n + 1, 2))
                                    if split and n > 1 else [])))
        for a, b in zip(cuts, cuts[1:]):
            pieces.append([int(a), len(blob) + int(a), int(b - a)])
        blob += t.data
        spec["tensors"].append({"name": t.name, "dtype": t.dtype,
                                "shape": t.shape, "pieces": pieces})
    spec_path = os.path.join(tmp, "spec.json")
    blob_path = os.path.join(tmp, "blob.bin")
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    with open(blob_path, "wb") as f:
        f.write(blob)
    r = subprocess.run([HELPER, "write", path, spec_path, blob_path],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr


def split_file(data):
    """(header length, header text, data section) of a file's bytes."""
    n = int.from_bytes(data[:8], "little")
    return n, data[8:8 + n].decode("utf-8"), data[8 + n:]


def metadata_span(header):
    """The text of the __metadata__ object and where it lies, or None."""
    key = '{"__metadata__":'
    if not header.startswith(key):
        return None
    _, end = json.JSONDecoder().raw_decode(header, len(key))
    return len(key), end


def compare_files(ours, ref, n_keys):
    """Whole files byte for byte; with more than one metadata key, the
    metadata object as a map (same members, same length, ours in sorted
    order) and every other byte exactly."""
    if ours == ref:
        return True, ""
    if n_keys <= 1:
        return False, first_difference(ours, ref)
    no, ho, do = split_file(ours)
    nr, hr, dr = split_file(ref)
    so, sr = metadata_span(ho), metadata_span(hr)
    if no != nr or do != dr or not so or not sr or so != sr:
        return False, "header length, data or metadata span differs: " \
            + first_difference(ours, ref)
    if ho[:so[0]] != hr[:sr[0]] or ho[so[1]:] != hr[sr[1]:]:
        return False, "header outside the metadata differs"
    mo = json.loads(ho[so[0]:so[1]], object_pairs_hook=list)
    mr = json.loads(hr[sr[0]:sr[1]], object_pairs_hook=list)
    if sorted(mo) != sorted(mr):
        return False, f"metadata differs: {mo!r} != {mr!r}"
    if [k for k, _ in mo] != sorted((k for k, _ in mo),
                                    key=lambda k: k.encode("utf-8")):
        return False, f"our metadata is not in bytewise key order: {mo!r}"
    return True, ""


def first_difference(a, b):
    i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]),
             min(len(a), len(b)))
    return (f"sizes {len(a)} (ours) and {len(b)} (reference); first "
            f"difference at byte {i}: ours {a[i:i + 48]!r}, reference "
            f"{b[i:i + 48]!r}")


def check_write(what, arrays, metadata, tmp, spec_only=()):
    """save_file(@arrays) against UelWriter; @spec_only are extra
    (name, reference dtype, our dtype, shape, bytes) written through the
    reference's TensorSpec.  Returns the reference's file."""
    ref = os.path.join(tmp, "ref.safetensors")
    ours = os.path.join(tmp, "ours.safetensors")
    tensors = [Tensor(k, UEL_NAME[v.dtype.name], v.shape, v.tobytes())
               for k, v in arrays.items()]
    if spec_only:
        keep = []
        specs = {}
        for name, ref_dtype, dtype, shape, data in spec_only:
            buf = np.frombuffer(data, dtype=np.uint8).copy()
            keep.append(buf)
            ref_shape = list(shape)
            if ref_dtype == "float4_e2m1fn_x2":
                # the reference counts pairs and doubles the last dimension
                ref_shape[-1] //= 2
            specs[name] = TensorSpec(dtype=ref_dtype, shape=ref_shape,
                                     data_ptr=buf.ctypes.data,
                                     data_len=len(data))
            tensors.append(Tensor(name, dtype, shape, data))
        for k, v in arrays.items():
            keep.append(v)
            specs[k] = TensorSpec(dtype=v.dtype.name, shape=list(v.shape),
                                  data_ptr=v.ctypes.data, data_len=v.nbytes)
        serialize_file(specs, ref, metadata=metadata)
    else:
        save_file(arrays, ref, metadata=metadata)
    ok, err = write_with_uelwriter(ours, tensors, metadata, tmp)
    if not ok:
        report(False, f"write: {what}", f"uel-pycheck-helper failed: {err}")
        return ref, tensors
    with open(ours, "rb") as f:
        a = f.read()
    with open(ref, "rb") as f:
        b = f.read()
    ok, detail = compare_files(a, b, len(metadata or {}))
    report(ok, f"write: {what} ({len(tensors)} tensors, {len(b)} bytes)",
           detail)
    return ref, tensors


# --- reading with UelReader ----------------------------------------------

def inspect(path):
    r = subprocess.run([TOOL, "inspect", "--json", "--checksum", path],
                       capture_output=True)
    if r.returncode != 0:
        return None, r.stderr.decode("utf-8", "replace")
    return json.loads(r.stdout), ""


def header_of(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


def check_read(what, path, tensors, metadata, shard_of=None):
    """Every tensor that the reference wrote, read through UelReader: same
    dtype, shape, offsets as the reference's header says, SHA-256 of the
    bytes given to the reference, the same metadata."""
    got, err = inspect(path)
    if got is None:
        report(False, f"read: {what}", err)
        return
    problems = []
    if got["metadata"] != (metadata or {}):
        problems.append(f"metadata {got['metadata']!r} != {metadata!r}")
    by_name = {t["name"]: t for t in got["tensors"]}
    if len(by_name) != len(tensors) or got["n_tensors"] != len(tensors):
        problems.append(f"{got['n_tensors']} tensors, not {len(tensors)}")
    headers = {}
    for t in tensors:
        g = by_name.get(t.name)
        if g is None:
            problems.append(f"{t.name!r} missing")
            continue
        shard = shard_of[t.name] if shard_of else path
        if shard not in headers:
            headers[shard] = header_of(shard)
        h = headers[shard][t.name]
        if g["dtype"] != t.dtype or g["shape"] != t.shape \
                or g["data_offsets"] != h["data_offsets"] \
                or h["dtype"] != t.dtype \
                or g["sha256"] != hashlib.sha256(t.data).hexdigest() \
                or os.path.realpath(g["file"]) != os.path.realpath(shard):
            problems.append(f"{t.name!r}: ours {g!r}, reference {h!r}")
    report(not problems, f"read: {what} ({len(tensors)} tensors)",
           "\n".join(problems[:5]))


# --- the cases -------------------------------------------------------------

def every_dtype(tmp):
    arrays = {}
    for i, (t, _) in enumerate(NP_DTYPES):
        for j, shape in enumerate([(3,), (2, 5), (4, 1, 3), (17,)]):
            arrays[f"{['w', 'B', 'a10', 'a9'][j]}.{np.dtype(t).name}"] = \
                random_array(t, shape)
    return arrays


def cases_write_and_read(tmp):
    meta1 = {"format": "np"}
    arrays = every_dtype(tmp)
    ref, tensors = check_write("every numpy and ml_dtypes dtype, random "
                               "bits, through save_file", arrays, meta1,
                               tmp)
    check_read("every numpy and ml_dtypes dtype", ref, tensors, meta1)

    extra = []
    for ref_dtype, dtype, bits in SPEC_ONLY:
        for shape in [(2, 4), (6,), (1, 2, 2)]:
            n = int(np.prod(shape)) * bits // 8
            extra.append((f"{dtype}.{len(extra)}", ref_dtype, dtype, shape,
                          rng.integers(0, 256, n, dtype=np.uint8).tobytes()))
    ref, tensors = check_write("F8_E8M0 and F4 through the reference's "
                               "TensorSpec, with every other dtype",
                               every_dtype(tmp), meta1, tmp, extra)
    check_read("F8_E8M0 and F4 beside every other dtype", ref, tensors,
               meta1)

    arrays = {}
    for t, _ in NP_DTYPES:
        for shape in [(), (0,), (2, 0, 3), (1, 1, 1, 1), (0, 0)]:
            arrays[f"{np.dtype(t).name}{list(shape)}"] = \
                random_array(t, shape)
    ref, tensors = check_write("scalars and empty tensors of every dtype, "
                               "no metadata", arrays, None, tmp)
    check_read("scalars and empty tensors", ref, tensors, None)

    names = ["", "\"", "\\", "/", "a\"b\\c", "\x01\x1f", "\b\t\n\f\r",
             "\x7f", "é", "名前", "\U0001F600", "\uff61", "__metadata",
             "__metadata__x", " ", "\u2028", "\u2029", "<>&'"]
    names += [random_name(int(rng.integers(1, 12))) for _ in range(40)]
    names = list(dict.fromkeys(names))
    arrays = {n: random_array(np.float32, (i % 3 + 1,))
              for i, n in enumerate(names)}
    meta = {"k\"\\\n\x02\x1f\x7f\u00e9\U0001F600": "v\"\\\t\r/\u2028\x01"}
    ref, tensors = check_write(f"{len(names)} names and a metadata entry "
                               "that JSON escapes", arrays, meta, tmp)
    check_read("names that JSON escapes", ref, tensors, meta)

    meta = {random_name(int(rng.integers(0, 8))): random_name(5)
            for _ in range(25)}
    meta["format"] = "pt"
    arrays = {"w": random_array(np.float16, (8,))}
    ref, tensors = check_write(f"{len(meta)} metadata keys, compared as a "
                               "map", arrays, meta, tmp)
    check_read(f"{len(meta)} metadata keys", ref, tensors, meta)

    ref, tensors = check_write("no tensor, no metadata", {}, None, tmp)
    ref, tensors = check_write("no tensor, one metadata key", {},
                               {"a": "b"}, tmp)

    for n in range(1, 9):
        arrays = {"x" * n: random_array(np.int8, (n,))}
        check_write(f"padding: a header one byte longer ({n})", arrays,
                    None, tmp)

    dtypes = [t for t, _ in NP_DTYPES]
    for k in range(40):
        arrays = {}
        for _ in range(int(rng.integers(0, 12))):
            t = dtypes[int(rng.integers(0, len(dtypes)))]
            shape = tuple(int(d) for d in
                          rng.integers(0, 7, int(rng.integers(0, 4))))
            arrays[random_name(int(rng.integers(1, 6)))] = \
                random_array(t, shape)
        meta = {random_name(3): random_name(int(rng.integers(0, 9)))
                for _ in range(int(rng.integers(0, 4)))} or None
        ref, tensors = check_write(f"random file {k}", arrays, meta, tmp)
        check_read(f"random file {k}", ref, tensors, meta)


def case_shards(tmp):
    """Two shards written by save_file under an index: the reference has
    no sharded writer, so the index is written here, as transformers
    writes it."""
    arrays = every_dtype(tmp)
    names = sorted(arrays)
    weight_map = {}
    shard_of = {}
    tensors = []
    for i, part in enumerate([names[:len(names) // 2],
                              names[len(names) // 2:]]):
        shard = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({n: arrays[n] for n in part}, os.path.join(tmp, shard),
                  metadata={"format": "np"})
        for n in part:
            weight_map[n] = shard
            shard_of[n] = os.path.join(tmp, shard)
            tensors.append(Tensor(n, UEL_NAME[arrays[n].dtype.name],
                                  arrays[n].shape, arrays[n].tobytes()))
    index = os.path.join(tmp, "model.safetensors.index.json")
    total = sum(len(t.data) for t in tensors)
    with open(index, "w") as f:
        json.dump({"metadata": {"total_size": total},
                   "weight_map": weight_map}, f)
    # the metadata of a sharded checkpoint is the index's, values as JSON
    # text
    check_read("two shards written by save_file, through their index",
               index, tensors, {"total_size": str(total)}, shard_of)


def specials(ftype):
    vals = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0]
    for t in (np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn,
              ml_dtypes.float8_e5m2, np.float32):
        fi = ml_dtypes.finfo(t)
        for x in (float(fi.max), float(fi.tiny),
                  float(fi.smallest_subnormal), float(fi.eps)):
            for m in (1.0, 0.5, 0.75, 1.5, 1.0625, 0.9375, 2.0, 1.25):
                vals += [x * m, -x * m]
    if ftype == np.float64:
        # just below or above a BF16 tie by less than F32 can hold: F32
        # rounds them onto the tie, and then to even, the wrong way
        for e in range(-130, 128, 7):
            for base, sign in ((1 + 2.0 ** -7, -1), (1.0, 1)):
                x = np.ldexp(base + 2.0 ** -8 + sign * 2.0 ** -40, e)
                vals += [x, -x]
    with np.errstate(over="ignore"):
        v = np.array(vals, dtype=np.float64).astype(ftype)
    return v


def rounds_to(x, a, b, b_bits):
    """Whether b, rather than a, is the correctly rounded BF16 of x: the
    nearer one, exactly; at a tie, the one whose last fraction bit is
    even."""
    da = abs(Fraction(float(x)) - Fraction(float(a)))
    db = abs(Fraction(float(x)) - Fraction(float(b)))
    return db < da or (db == da and not b_bits & 1)


def conversion_inputs(src):
    t = {"F32": np.float32, "F64": np.float64, "F16": np.float16,
         "BF16": ml_dtypes.bfloat16}[src]
    width = np.dtype(t).itemsize
    parts = [specials(t)]
    if width == 2:
        # every bit pattern
        parts.append(np.arange(65536, dtype=np.uint16).view(t))
    else:
        # random bits (NaN payloads included) and random values of every
        # scale the targets have
        parts.append(random_array(t, (100000,)))
        mant = rng.uniform(-2, 2, 100000)
        exp = rng.integers(-40, 40, 100000)
        parts.append(np.ldexp(mant, exp).astype(t))
    return np.concatenate([p.astype(t) for p in parts])


# (exponent bits, fraction bits, width) of the formats with NaN payloads
FORMATS = {"F64": (11, 52, 64), "F32": (8, 23, 32), "F16": (5, 10, 16),
           "BF16": (8, 7, 16)}


def nan_rule(bits, src, dst):
    """What uel-convert.c documents for a NaN cast between F64, F32, F16
    and BF16, where ml_dtypes differs (it drops the payload for BF16, and
    numpy leaves a signaling NaN signaling in F16): the sign, the top
    payload bits, the quiet bit set."""
    _, fs, ws = FORMATS[src]
    ed, fd, wd = FORMATS[dst]
    bits = int(bits)
    sign = bits >> (ws - 1)
    frac = bits & ((1 << fs) - 1)
    frac = frac >> (fs - fd) if fs > fd else frac << (fd - fs)
    frac |= 1 << (fd - 1)
    return (sign << (wd - 1)) | (((1 << ed) - 1) << fd) | frac


def expected_cast(x, src, dst, t, got):
    """ml_dtypes' astype, but for what uel-convert.c documents otherwise:
    a NaN cast between F64, F32, F16 and BF16 follows nan_rule(), and F64
    to BF16 is rounded once where ml_dtypes (through F32) rounds twice: the
    correctly rounded value, checked exactly.  Returns the expected bits
    and how many values each exception changed."""
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(t)
    w = want.itemsize
    wu = want.view(f"u{w}")
    ml = wu.copy()
    xb = x.view(f"u{x.itemsize}")
    with np.errstate(invalid="ignore"):
        nans = np.isnan(x.astype(np.float64))
    n_nan = n_twice = 0
    if dst in FORMATS and src != dst:
        for i in np.nonzero(nans)[0]:
            wu[i] = nan_rule(xb[i], src, dst)
        n_nan = int(np.count_nonzero(wu != ml))
    if (src, dst) == ("F64", "BF16") and got.size == wu.size:
        gu = got.view(f"u{w}")
        for i in np.nonzero((gu != ml) & ~nans)[0]:
            if rounds_to(x[i], want[i], got.view(t)[i], int(gu[i])):
                wu[i] = gu[i]
                n_twice += 1
    return wu, n_nan, n_twice


def cases_convert(tmp):
    targets = {"BF16": ml_dtypes.bfloat16, "F16": np.float16,
               "F8_E4M3": ml_dtypes.float8_e4m3fn,
               "F8_E5M2": ml_dtypes.float8_e5m2}
    inp = os.path.join(tmp, "in.bin")
    out = os.path.join(tmp, "out.bin")
    for src in ("F32", "F64", "F16", "BF16"):
        x = conversion_inputs(src)
        x.tofile(inp)
        for dst, t in targets.items():
            w = np.dtype(t).itemsize
            r = subprocess.run([HELPER, "convert", src, dst, inp, out],
                               capture_output=True, text=True)
            if r.returncode != 0:
                report(False, f"convert {src} -> {dst}", r.stderr)
                continue
            got = np.fromfile(out, dtype=np.uint8)
            if got.size != x.size * w:
                report(False, f"convert {src} -> {dst}",
                       f"{got.size} bytes, not {x.size * w}")
                continue
            got = got.view(f"u{w}")
            want, n_nan, n_twice = expected_cast(x, src, dst, t, got)
            bad = np.nonzero(got != want)[0]
            detail = f"{bad.size} of {x.size} differ; " + "; ".join(
                f"{x[i]!r} (0x{x[i:i + 1].view(f'u{x.itemsize}')[0]:x})"
                f" -> ours 0x{got[i]:x}, expected 0x{want[i]:x}"
                for i in bad[:5])
            notes = "".join([
                f", {n_nan} NaNs by the NaN rule" if n_nan else "",
                f", {n_twice} rounded once where ml_dtypes rounds twice"
                if n_twice else ""])
            report(not bad.size, f"convert {src} -> {dst}: {x.size} values "
                   f"bit for bit with ml_dtypes' astype{notes}", detail)


def case_over_4gib(tmp):
    """A tensor of 4 GiB + 256 bytes as a hole, with pieces written at its
    start, across the 4 GiB mark and at its end, and a tensor after it."""
    path = os.path.join(tmp, "big.safetensors")
    n_big = (1 << 30) + 64
    big_bytes = 4 * n_big
    head = rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    mark = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    tail = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    after = rng.integers(0, 256, 33, dtype=np.uint8).tobytes()
    before = random_array(np.float64, (3,)).tobytes()
    blob = head + mark + tail + after + before
    at_mark = (1 << 32) - 16
    spec = {"metadata": {"format": "np"}, "tensors": [
        {"name": "big", "dtype": "F32", "shape": [n_big], "pieces": [
            [0, 0, 16], [at_mark, 16, 32], [big_bytes - 8, 48, 8]]},
        {"name": "after", "dtype": "U8", "shape": [33],
         "pieces": [[0, 56, 33]]},
        {"name": "before", "dtype": "F64", "shape": [3],
         "pieces": [[0, 89, 24]]}]}
    with open(os.path.join(tmp, "spec.json"), "w") as f:
        json.dump(spec, f)
    with open(os.path.join(tmp, "blob.bin"), "wb") as f:
        f.write(blob)
    r = subprocess.run([HELPER, "write", path, os.path.join(tmp, "spec.json"),
                        os.path.join(tmp, "blob.bin")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        report(False, "over 4 GiB: UelWriter writes it", r.stderr)
        return
    st = os.stat(path)
    report(st.st_blocks * 512 < (64 << 20),
           f"over 4 GiB: a sparse file ({st.st_size} bytes, "
           f"{st.st_blocks * 512} allocated)")
    problems = []
    with safe_open(path, framework="np") as f:
        if sorted(f.keys()) != ["after", "before", "big"]:
            problems.append(f"keys {f.keys()}")
        if f.metadata() != {"format": "np"}:
            problems.append(f"metadata {f.metadata()}")
        s = f.get_slice("big")
        if s.get_shape() != [n_big] or s.get_dtype() != "F32":
            problems.append(f"big: {s.get_shape()} {s.get_dtype()}")
        for at, want in ((0, head), (at_mark, mark), (big_bytes - 8, tail),
                         (1 << 31, bytes(64))):
            got = s[at // 4:(at + len(want)) // 4].tobytes()
            if got != want:
                problems.append(f"big at {at}: {got!r} != {want!r}")
        if f.get_tensor("after").tobytes() != after:
            problems.append("after differs")
        if f.get_tensor("before").tobytes() != before:
            problems.append("before differs")
    h = header_of(path)
    # the reference's order: F64, F32, then U8 (widest dtype first)
    want_offsets = {"before": [0, 24], "big": [24, 24 + big_bytes],
                    "after": [24 + big_bytes, 24 + big_bytes + 33]}
    for name, off in want_offsets.items():
        if h[name]["data_offsets"] != off:
            problems.append(f"{name}: offsets {h[name]['data_offsets']}, "
                            f"not {off}")
    report(not problems, "over 4 GiB: safe_open reads it lazily: offsets, "
           "shapes, the bytes around the 4 GiB mark, the tensor after it",
           "\n".join(problems))
    got = subprocess.run([TOOL, "inspect", "--json", path],
                         capture_output=True, text=True)
    ok = got.returncode == 0
    if ok:
        j = json.loads(got.stdout)
        ok = {t["name"]: t["data_offsets"] for t in j["tensors"]} \
            == want_offsets and j["total_bytes"] == big_bytes + 57
    report(ok, "over 4 GiB: UelHeader reads the same offsets",
           got.stdout + got.stderr)
    os.unlink(path)


def main():
    print(f"# safetensors {safetensors.__version__}, ml_dtypes "
          f"{ml_dtypes.__version__}, numpy {np.__version__}, "
          f"{sys.executable}, seed {SEED} (UEL_CROSSCHECK_SEED)")
    with tempfile.TemporaryDirectory(prefix="uel-crosscheck-") as tmp:
        cases_write_and_read(tmp)
        case_shards(tmp)
        cases_convert(tmp)
        case_over_4gib(tmp)
    print(f"1..{n_cases}")
    print(f"# {n_cases - n_failed} passed, {n_failed} failed")
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
