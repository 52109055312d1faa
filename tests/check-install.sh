#!/usr/bin/env bash
# Installs the build into a temporary folder (meson install --destdir, no
# rebuild) and checks it as a user of the installed package would: the
# headers, the library, the pkg-config file, the plugin in GStreamer's
# plugin folder, the tool and the introspection data (where built) are
# there; an example program builds against the pkg-config file alone;
# gst-inspect-1.0 finds the plugin there; the installed tool and the
# example run on a model with the installed plugin.
#
#   check-install.sh BUILD_DIR SOURCE_DIR
#
# The environment may name UEL_SANITIZE (meson's b_sanitize) and
# UEL_PRELOAD (sanitizer runtimes to preload into GStreamer's own,
# uninstrumented programs).  Exit status 0 or 1; 77 (skip) only when no C
# compiler is there.
set -euo pipefail

build=$(readlink -f "$1")
src=$(readlink -f "$2")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gst-uel-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dest="$tmp/dest"

fail () {
  echo "FAIL: $*" >&2
  exit 1
}

meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >/dev/null

# where things went: the pkg-config file says
pc=$(find "$dest" -name gst-uel-1.0.pc -path '*/pkgconfig/*' | head -n1)
[ -n "$pc" ] || fail "no gst-uel-1.0.pc installed"
prefix=$(sed -n 's/^prefix=//p' "$pc")
libdir=$(sed -n 's/^libdir=//p' "$pc" | sed "s|\${prefix}|$prefix|")
includedir=$(sed -n 's/^includedir=//p' "$pc" | sed "s|\${prefix}|$prefix|")
echo "prefix $prefix, libdir $libdir"

plugindir="$dest$libdir/gstreamer-1.0"
for f in "$dest$libdir/libgstuel-1.0.so" "$dest$libdir/libgstuel-1.0.so.0" \
    "$plugindir/libgstuel.so" "$dest$prefix/bin/gst-uel" \
    "$dest$includedir/gst-uel-1.0/gst-uel/uel.h"; do
  [ -e "$f" ] || fail "$f is not installed"
done
# every header uel.h includes is installed beside it
for h in $(sed -n 's|^#include <gst-uel/\(.*\)>|\1|p' "$src/gst-uel/uel.h"); do
  [ -f "$dest$includedir/gst-uel-1.0/gst-uel/$h" ] || fail "header $h is not installed"
done
# introspection data, where the build made it: the .gir with the other
# GIRs of the prefix, the .typelib in the library folder's
if [ -f "$build/gst-uel/GstUel-1.0.typelib" ]; then
  for f in "$dest$prefix/share/gir-1.0/GstUel-1.0.gir" \
      "$dest$libdir/girepository-1.0/GstUel-1.0.typelib"; do
    [ -f "$f" ] || fail "$f is not installed"
  done
fi
# the plugin sits in GStreamer's plugin folder for this prefix
case "$plugindir" in
  */gstreamer-1.0) ;;
  *) fail "plugin folder $plugindir" ;;
esac

# pkg-config, as for an installed prefix: the file installed, with its
# prefix moved to where DESTDIR put it
mkdir -p "$tmp/pkgconfig"
sed "s|^prefix=.*|prefix=$dest$prefix|" "$pc" > "$tmp/pkgconfig/gst-uel-1.0.pc"
export PKG_CONFIG_PATH="$tmp/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
cflags=$(pkg-config --cflags gst-uel-1.0)
libs=$(pkg-config --libs gst-uel-1.0)
case "$cflags" in
  *"$dest"*) ;;
  *) fail "pkg-config --cflags does not point into the installation: $cflags" ;;
esac

cc=${CC:-cc}
command -v "$cc" >/dev/null || exit 77
san=()
if [ -n "${UEL_SANITIZE:-}" ] && [ "$UEL_SANITIZE" != none ]; then
  san=("-fsanitize=$UEL_SANITIZE")
fi
# an example, built outside the tree against the installed files only
"$cc" -std=c11 -Wall -Werror "${san[@]}" -o "$tmp/standard-mode" \
  "$src/examples/standard-mode.c" $cflags $libs \
  || fail "examples/standard-mode.c does not build against gst-uel-1.0.pc"

# run with the installed files only: no build tree on any path
unset GST_PLUGIN_PATH
export GST_PLUGIN_PATH_1_0="$plugindir"
export GST_REGISTRY_1_0="$tmp/registry.bin"
export LD_LIBRARY_PATH="$dest$libdir"
preload=${UEL_PRELOAD:-}

inspect=$(env ${preload:+LD_PRELOAD="$preload"} ASAN_OPTIONS=detect_leaks=0 \
  gst-inspect-1.0 uelsrc) || fail "gst-inspect-1.0 does not find uelsrc in $plugindir"
echo "$inspect" | grep -q "Filename *$plugindir/libgstuel.so" \
  || fail "gst-inspect-1.0 found uelsrc elsewhere: $(echo "$inspect" | grep Filename)"
for e in uelsrc uelqueue uelpin uelcudaupload ueldictdecode uelconvert uelsink; do
  env ${preload:+LD_PRELOAD="$preload"} ASAN_OPTIONS=detect_leaks=0 \
    gst-inspect-1.0 "$e" >/dev/null || fail "gst-inspect-1.0 does not find $e"
done

tool="$dest$prefix/bin/gst-uel"
"$tool" --version
"$tool" make-model --layers 1 --hidden 64 --vocab 128 --intermediate 96 \
  "$tmp/model.safetensors" >/dev/null
"$tmp/standard-mode" "$tmp/model.safetensors" model.norm.weight \
  || fail "the example does not run against the installed library"
"$tool" launch -q uelsrc location="$tmp/model.safetensors" ! uelqueue ! fakesink \
  || fail "the installed gst-uel launch does not run"

# the Python package gst_uel, where the build made it: its files in the
# prefix's site-packages, importable from there (no build tree on any
# path), reading the model through the installed library and plugin
native=$(find "$build/python/gst_uel" -maxdepth 1 -name '_native*.so' 2>/dev/null | head -n1)
if [ -n "$native" ] && [ -n "${UEL_PYTHON:-}" ]; then
  pkgdir=$(find "$dest$prefix" -type d -name gst_uel -path '*-packages/*' | head -n1)
  [ -n "$pkgdir" ] || fail "the Python package gst_uel is not installed"
  for f in __init__.py _convert.py loader.py writer.py "$(basename "$native")"; do
    [ -f "$pkgdir/$f" ] || fail "gst_uel/$f is not installed"
  done
  PYTHONPATH=$(dirname "$pkgdir") \
    env ${preload:+LD_PRELOAD="$preload"} ASAN_OPTIONS=detect_leaks=0 \
    "$UEL_PYTHON" -c 'import sys, gst_uel
assert gst_uel.__file__.startswith(sys.argv[2]), gst_uel.__file__
gst_uel.set_framework("native")
l = gst_uel.UnifiedSafetensorsLoader(sys.argv[1], low_memory=True)
assert len(l.keys()) > 0 and l.get_tensor(l.keys()[0]).nbytes > 0
assert len([n for n, t in gst_uel.tensors("uelsrc location=" + sys.argv[1])]) == len(l.keys())' \
    "$tmp/model.safetensors" "$pkgdir" \
    || fail "the installed gst_uel does not import or read the model"
  echo "python: gst_uel installed in $pkgdir and usable"
fi
echo "installed and usable"
