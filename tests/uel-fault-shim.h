/* gst-uel: the fault-injection shim's control interface
 * SPDX-License-Identifier: MIT
 *
 * The shim (libuel-fault-shim.so) is loaded with LD_PRELOAD and sits
 * between the program and the C library's pread/pread64 (and, for
 * UEL_FAULT_NODIRECT, the open family; for UEL_FAULT_POPULATE_NOMEM,
 * madvise; for UEL_FAULT_NOSPC, pwrite/pwrite64; for UEL_FAULT_SYNC_EIO,
 * fdatasync and fsync).  It acts only on descriptors whose
 * /proc/self/fd link (or, for opens, on paths) containing a configured
 * substring, so that GStreamer's own file access is left alone.  A test
 * finds the functions below with dlsym (RTLD_DEFAULT, ...): they are there
 * only when the shim is preloaded.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef enum
{
  /* nothing injected: every call goes straight to the C library */
  UEL_FAULT_NONE,
  /* a read reaching a byte in [offset, end) fails with EIO, at most
   * max_faults times (-1 = every time) */
  UEL_FAULT_EIO,
  /* every read transfers at most short_max bytes (0 = half of what was
   * asked, at least 1) */
  UEL_FAULT_SHORT,
  /* every other read fails with EINTR before doing anything */
  UEL_FAULT_EINTR,
  /* the file seems to end at offset: reads there or after return 0, a read
   * across it stops there */
  UEL_FAULT_EOF,
  /* an open with O_DIRECT fails with EINVAL, as on a file system that
   * refuses it; reads are untouched */
  UEL_FAULT_NODIRECT,
  /* madvise (MADV_POPULATE_WRITE) of at least offset bytes fails with
   * ENOMEM, as when the kernel cannot find the memory (match is not used
   * but must be set) */
  UEL_FAULT_POPULATE_NOMEM,
  /* the disk is full from offset on: a write (pwrite) starting there or
   * after fails with ENOSPC, a write across it stops there */
  UEL_FAULT_NOSPC,
  /* fdatasync and fsync fail with EIO, as when write-back failed */
  UEL_FAULT_SYNC_EIO,
} UelFaultMode;

typedef struct
{
  UelFaultMode mode;
  /* substring of the path that selects the targeted files (copied) */
  const char *match;
  uint64_t offset;
  /* UEL_FAULT_EIO: the end of the failing range (0 = no end) */
  uint64_t end;
  /* UEL_FAULT_EIO: how many reads fail (-1 = all of them) */
  long max_faults;
  /* UEL_FAULT_SHORT: the most bytes a read transfers (0 = half) */
  size_t short_max;
} UelFaultConfig;

typedef struct
{
  /* calls on targeted descriptors (reads) or paths (opens) */
  unsigned long calls;
  /* faults injected: failed, shortened or refused calls */
  unsigned long faults;
} UelFaultCounters;

/* Replaces the configuration and zeroes the counters; NULL = UEL_FAULT_NONE */
typedef void (*UelFaultConfigureFunc) (const UelFaultConfig * config);
/* The counters since the last configuration */
typedef void (*UelFaultGetCountersFunc) (UelFaultCounters * counters);

#define UEL_FAULT_CONFIGURE_SYMBOL "uel_fault_configure"
#define UEL_FAULT_GET_COUNTERS_SYMBOL "uel_fault_get_counters"
