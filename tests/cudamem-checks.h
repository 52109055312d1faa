/* gst-uel: checks of CUDA device memory (uel-cudamem), shared by the test
 * on the stand-in runtime (test-cudamem.c) and the one on a real device
 * (gpu/test-gpu.c)
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* What the checks need from the program that runs them. */
typedef struct
{
  const gchar *prefix;          /* of the test paths, e.g. "/gpu/memory" */
  gsize size;                   /* bytes of the memories the checks map */
  /* FALSE when there is no device: the check has skipped itself */
  gboolean (*usable) (void);
  /* copies behind the allocator's back, to and from device memory */
  void (*read) (gpointer host, gconstpointer dev, gsize n);
  void (*write) (gpointer dev, gconstpointer host, gsize n);
  /* the allocator's copies so far, by direction, or NULL where they
   * cannot be counted (then the checks rely on what the bytes show) */
  void (*count) (guint * d2h, guint * h2d, guint * d2d);
} UelCudaMemChecks;

/* Registers the checks with g_test_add_data_func; @checks must outlive
 * g_test_run(). */
void uel_cudamem_checks_add (const UelCudaMemChecks * checks);

/* For a program's own checks: device memory of @size bytes on device 0
 * holding uel_test_fill (…, @seed), written through a CUDA map. */
GstMemory *uel_cudamem_filled (const UelCudaMemChecks * checks, gsize size,
    guint seed);
/* Maps @mem with @flags (a CUDA map is read through @checks) and compares
 * its bytes with bytes @from to @from + @n of uel_test_fill (…, @seed). */
void uel_cudamem_expect_bytes (const UelCudaMemChecks * checks,
    GstMemory * mem, GstMapFlags flags, guint seed, gsize from, gsize n);

G_END_DECLS
