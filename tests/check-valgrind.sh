#!/usr/bin/env bash
# Valgrind memcheck over gst-uel, as an extra to the sanitizer build (which
# already runs every test with LeakSanitizer):
#
#  1. one full pipeline run of gst-launch-1.0 over a generated Llama-like
#     model (16 MiB, two JSON dictionary tensors, tensors over 1 MiB read by
#     the I/O threads ahead of the one being pushed):
#     uelsrc ! uelqueue ! uelpin ! uelcudaupload ! ueldictdecode ! fakesink
#  2. tests/test-stress with 100 random state changes: every state change,
#     EOS mid-stream, refused seeks and flushes, eight concurrent readers.
#
# Each fails on any memcheck error or any definitely lost block; GLib's and
# GStreamer's own one-time allocations (threads kept by thread pools, the
# system clock) are in valgrind.supp, which names no frame of ours.
#
#   check-valgrind.sh BUILD_DIR SOURCE_DIR
#
# Not run by plain `meson test` (suite 'valgrind'): run it with
#   meson test -C BUILD_DIR --suite valgrind
# Exit status 0 or 1; 77 (skip) without valgrind or in a sanitizer build
# (UEL_SANITIZE set), whose instrumented plugin cannot run under valgrind.
set -euo pipefail

build=$(readlink -f "$1")
src=$(readlink -f "$2")

if [ -n "${UEL_SANITIZE:-}" ] && [ "$UEL_SANITIZE" != none ]; then
  echo "SKIP: a sanitizer build ($UEL_SANITIZE) does not run under valgrind"
  exit 77
fi
if ! command -v valgrind >/dev/null; then
  echo "SKIP: valgrind is not installed"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gst-uel-valgrind-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# GLib 2.74's slice allocator would hide leaked buffers, events and
# messages inside its own blocks
export G_SLICE=always-malloc
export G_DEBUG=fatal-criticals,gc-friendly
# a registry made outside valgrind, so that no plugin is scanned under it
export GST_REGISTRY_1_0="$tmp/registry.bin"
export GST_REGISTRY_UPDATE=no
GST_REGISTRY_UPDATE=yes gst-inspect-1.0 uelsrc >/dev/null

memcheck () {
  local name=$1
  shift
  local start=$SECONDS rc=0
  valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
    --error-exitcode=3 --num-callers=40 \
    --suppressions="$src/tests/valgrind.supp" \
    --log-file="$tmp/$name.log" "$@" >"$tmp/$name.out" 2>&1 || rc=$?
  echo "== $name: exit $rc, $((SECONDS - start)) s"
  grep -E 'definitely lost:|indirectly lost:|possibly lost:|suppressed:|ERROR SUMMARY' \
    "$tmp/$name.log" | sed 's/^==[0-9]*== */  /'
  if [ "$rc" -ne 0 ]; then
    echo "-- valgrind log"
    cat "$tmp/$name.log"
    echo "-- program output"
    tail -n 40 "$tmp/$name.out"
    return 1
  fi
}

"$build/tools/gst-uel" make-model --layers 2 --hidden 512 --vocab 2048 \
  --intermediate 1536 "$tmp/model.safetensors"

status=0
memcheck gst-launch gst-launch-1.0 -q uelsrc \
  location="$tmp/model.safetensors" io-threads=2 ! \
  uelqueue max-size-bytes=1048576 ! uelpin pool-size=8388608 ! \
  uelcudaupload ! ueldictdecode ! fakesink || status=1
UEL_STRESS_ITERATIONS=100 memcheck test-stress "$build/tests/test-stress" \
  || status=1
exit $status
