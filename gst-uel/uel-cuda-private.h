/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * The one interface to the CUDA runtime.  Everything else in gst-uel calls
 * these functions, so that it compiles the same with or without the
 * toolkit; without it (or without a driver, or a device) they fail with a
 * GError carrying CUDA's own message and code instead of crashing.
 */
#pragma once

#include <glib.h>

#include "uel-dtype.h"

G_BEGIN_DECLS

/* Number of CUDA devices, or -1 with @error set (no toolkit at build time,
 * no driver, no device). */
G_GNUC_INTERNAL gint uel_cuda_device_count (GError ** error);
/* Makes @device (or, when -1, the current one) current for this thread,
 * checking it exists. */
G_GNUC_INTERNAL gboolean uel_cuda_set_device (gint device, GError ** error);
/* Page-locks existing host memory (cudaHostRegister, portable). */
G_GNUC_INTERNAL gboolean uel_cuda_host_register (gpointer ptr, gsize size,
    GError ** error);
G_GNUC_INTERNAL void uel_cuda_host_unregister (gpointer ptr);

/* device memory, streams and events; every call checks CUDA's return code
 * and turns a failure into a UEL_ERROR_CUDA GError */
G_GNUC_INTERNAL gboolean uel_cuda_malloc (gsize size, gpointer * dev_ptr,
    GError ** error);
G_GNUC_INTERNAL void uel_cuda_free (gpointer dev_ptr);
G_GNUC_INTERNAL gboolean uel_cuda_memcpy_h2d_async (gpointer dst,
    gconstpointer src, gsize n, gpointer stream, GError ** error);
/* synchronous copies: each returns once the bytes have arrived, so that
 * work on any stream (non-blocking ones too) sees them afterwards */
G_GNUC_INTERNAL gboolean uel_cuda_memcpy_d2h (gpointer dst,
    gconstpointer src, gsize n, GError ** error);
G_GNUC_INTERNAL gboolean uel_cuda_memcpy_h2d (gpointer dst,
    gconstpointer src, gsize n, GError ** error);
G_GNUC_INTERNAL gboolean uel_cuda_memcpy_d2d (gpointer dst,
    gconstpointer src, gsize n, GError ** error);
G_GNUC_INTERNAL gpointer uel_cuda_stream_new (GError ** error);
G_GNUC_INTERNAL void uel_cuda_stream_free (gpointer stream);
G_GNUC_INTERNAL gpointer uel_cuda_event_new (GError ** error);
G_GNUC_INTERNAL void uel_cuda_event_free (gpointer event);
G_GNUC_INTERNAL gboolean uel_cuda_event_record (gpointer event,
    gpointer stream, GError ** error);
G_GNUC_INTERNAL gboolean uel_cuda_event_sync (gpointer event,
    GError ** error);
/* milliseconds between two completed events, or a negative value */
G_GNUC_INTERNAL gfloat uel_cuda_event_elapsed_ms (gpointer start,
    gpointer end);
/* runs @func (which must not call CUDA) once the work queued on @stream so
 * far has finished */
G_GNUC_INTERNAL gboolean uel_cuda_launch_host_func (gpointer stream,
    void (*func) (gpointer), gpointer data, GError ** error);
G_GNUC_INTERNAL gboolean uel_cuda_stream_sync (gpointer stream,
    GError ** error);
G_GNUC_INTERNAL gboolean uel_cuda_mem_get_info (guint64 * free_bytes,
    guint64 * total_bytes, GError ** error);
/* whether @ptr is host memory the driver has page-locked */
G_GNUC_INTERNAL gboolean uel_cuda_host_is_pinned (gconstpointer ptr);

/* Converts @n_elements elements of device memory from @from to @to on
 * @stream (NULL: the default stream), asynchronously, with exactly the
 * results of uel_convert_cpu() (uel-convert.c; kernels in
 * uel-convert-cuda.cu).  Any alignment; no overlap except in place for
 * same-size dtypes.  Fails with UEL_ERROR_INVALID_ARGUMENT for a pair that
 * uel_convert_supported() rejects, UEL_ERROR_CUDA when the launch fails or
 * gst-uel was built without the toolkit; errors while the kernel runs
 * surface at the next synchronisation of @stream. */
G_GNUC_INTERNAL gboolean uel_cuda_convert (UelDType from, UelDType to,
    gconstpointer src_dev, gpointer dst_dev, gsize n_elements,
    gpointer stream, GError ** error);

G_END_DECLS
