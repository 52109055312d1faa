#!/usr/bin/env bash
# Valgrind memcheck over the Python package's reference-lifetime checks
# (check-python-dropin.py --lifetime-only, NumPy alone): loaders, native
# tensors, DLPack capsules and arrays dropped in every order, streams and
# pipelines outlived by their tensors.  Fails on any memcheck error (a
# read of freed memory under a live array is one).  Leaks are not
# checked: CPython keeps its own allocations until exit.
#
#   check-python-valgrind.sh PYTHON DROPIN-SCRIPT TOOL
#
# valgrind-python.supp (beside this script) holds the one false positive
# of glibc's dynamic loader, which names no frame of ours.
#
# Suite 'valgrind' (meson test --suite valgrind).  Exit status 0 or 1; 77
# (skip) without valgrind or in a sanitizer build (UEL_SANITIZE set).
set -euo pipefail

if [ -n "${UEL_SANITIZE:-}" ] && [ "$UEL_SANITIZE" != none ]; then
  echo "1..0 # SKIP a sanitizer build ($UEL_SANITIZE) does not run under valgrind"
  exit 0
fi
if ! command -v valgrind >/dev/null; then
  echo "1..0 # SKIP valgrind is not installed (bash scripts/deps valgrind)"
  exit 0
fi
# CPython's own allocator hides freed blocks from memcheck
export PYTHONMALLOC=malloc
exec valgrind -q --error-exitcode=1 --leak-check=no \
  --suppressions="$(dirname "$0")/valgrind-python.supp" \
  "$1" "$2" "$3" "" --lifetime-only
