#!/usr/bin/env python3
# Runs every command of the ```sh blocks of a Markdown file
# (examples/launch-lines.md, README.md) as written, in a folder
# holding the sample model and a sharded checkpoint, with `gst-uel` on
# PATH; each must exit with status 0.  TAP output.
#
#   check-launch-lines.py LAUNCH-LINES.md GST-UEL-TOOL
#
# UEL_PRELOAD (optional) names sanitizer runtimes to preload into
# GStreamer's own programs, which are not instrumented.  UEL_PYTHON
# (optional) is the interpreter the Python package gst_uel was built for:
# it is `python3` on that PATH (PYTHONPATH names the package).
import json
import os
import re
import struct
import subprocess
import sys
import tempfile


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, bytes)"""
    header, data, offset = {}, b"", 0
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(blob)]}
        data += blob
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def write_sharded(folder):
    shards = {
        "model-00001-of-00002.safetensors": [
            ("a.weight", "F32", [4, 2], bytes(range(32))),
            ("a.bias", "F32", [4], bytes(range(16)))],
        "model-00002-of-00002.safetensors": [
            ("b.weight", "BF16", [3, 6], bytes(range(36)))],
    }
    weight_map = {}
    for shard, tensors in shards.items():
        write_safetensors(os.path.join(folder, shard), tensors)
        for t in tensors:
            weight_map[t[0]] = shard
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 84}, "weight_map": weight_map},
                  f)


def commands(markdown):
    blocks = re.findall(r"```sh\n(.*?)```", markdown, re.S)
    return [l.strip() for b in blocks for l in b.splitlines()
            if l.strip() and not l.strip().startswith("#")]


def main():
    md, tool = sys.argv[1], os.path.abspath(sys.argv[2])
    lines = commands(open(md, encoding="utf-8").read())
    print(f"1..{len(lines)}")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="gst-uel-launch-lines-") as tmp:
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        os.symlink(tool, os.path.join(bindir, "gst-uel"))
        if os.environ.get("UEL_PYTHON"):
            os.symlink(os.environ["UEL_PYTHON"],
                       os.path.join(bindir, "python3"))
        write_sharded(tmp)
        env = dict(os.environ)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        for n, line in enumerate(lines, 1):
            e = dict(env)
            # GStreamer's programs and python3 are not instrumented; the
            # plugin and the Python package's extension are
            if line.startswith(("gst-launch-1.0", "python3")) and \
                    os.environ.get("UEL_PRELOAD"):
                e["LD_PRELOAD"] = os.environ["UEL_PRELOAD"]
                e["ASAN_OPTIONS"] = "detect_leaks=0"
            try:
                r = subprocess.run(["bash", "-c", line], cwd=tmp, env=e,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=120)
                ok, out = r.returncode == 0, r.stdout.decode(errors="replace")
                why = f"exit status {r.returncode}"
            except subprocess.TimeoutExpired as t:
                ok, out, why = False, (t.output or b"").decode(), "timeout"
            print(f"{'ok' if ok else 'not ok'} {n} - {line}")
            if not ok:
                failed += 1
                print(f"# {why}")
                for l in out.splitlines()[-20:]:
                    print(f"# {l}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
