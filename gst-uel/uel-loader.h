/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * The calls of the Python package unifiedefficientloader, in C: open a
 * file, read tensors by key, free them when processed, stream them in
 * batches with bounded memory.
 */
#pragma once

#include <gst/gst.h>
#include <gst-uel/uel-header.h>

G_BEGIN_DECLS

/**
 * UelLoader:
 *
 * A validated `.safetensors` file (or sharded checkpoint) whose tensors
 * are read by name: every one when the loader is created (standard mode),
 * or each when it is asked for (low-memory mode); as copies or as views of
 * a mapping of the file (use-mmap); streamed into host or device memory
 * (direct-gpu).  The Python loader's `UnifiedSafetensorsLoader`.  A
 * #GObject implementing #GInitable: uel_loader_new() and
 * uel_loader_new_full() create and open it in one call.
 */
#define UEL_TYPE_LOADER (uel_loader_get_type ())
G_DECLARE_FINAL_TYPE (UelLoader, uel_loader, UEL, LOADER, GObject)

/**
 * UelTensorStream:
 *
 * Batches of tensors read ahead by a thread of its own, with bounded
 * memory: what uel_loader_async_stream() returns, the Python loader's
 * `async_stream()` generator.  Take the batches with
 * uel_tensor_stream_next(); freeing the stream stops its thread.
 */
#define UEL_TYPE_TENSOR_STREAM (uel_tensor_stream_get_type ())
G_DECLARE_FINAL_TYPE (UelTensorStream, uel_tensor_stream, UEL, TENSOR_STREAM,
    GObject)

UelLoader       *uel_loader_new            (const gchar * location,
                                            gboolean low_memory,
                                            GError ** error);
UelLoader       *uel_loader_new_full       (const gchar * location,
                                            gboolean low_memory,
                                            gboolean direct_gpu,
                                            gboolean use_mmap,
                                            GError ** error);

const gchar     *uel_loader_get_location   (UelLoader * loader);
gboolean         uel_loader_get_low_memory (UelLoader * loader);
gboolean         uel_loader_get_use_mmap   (UelLoader * loader);
gboolean         uel_loader_get_direct_gpu (UelLoader * loader);
UelHeader       *uel_loader_get_header     (UelLoader * loader);

gchar          **uel_loader_keys           (UelLoader * loader);
gboolean         uel_loader_contains       (UelLoader * loader,
                                            const gchar * key);
GHashTable      *uel_loader_get_metadata   (UelLoader * loader);
const UelTensorInfo *uel_loader_get_tensor_info (UelLoader * loader,
                                            const gchar * key,
                                            GError ** error);
gboolean         uel_loader_get_shape      (UelLoader * loader,
                                            const gchar * key,
                                            const guint64 ** shape,
                                            guint * n_dims,
                                            GError ** error);
gint             uel_loader_get_ndim       (UelLoader * loader,
                                            const gchar * key,
                                            GError ** error);
UelDType         uel_loader_get_dtype      (UelLoader * loader,
                                            const gchar * key,
                                            GError ** error);

GstBuffer       *uel_loader_get_tensor     (UelLoader * loader,
                                            const gchar * key,
                                            GError ** error);
gboolean         uel_loader_mark_processed (UelLoader * loader,
                                            const gchar * key);
guint64          uel_loader_get_preloaded_bytes (UelLoader * loader);
GHashTable      *uel_loader_load_all       (UelLoader * loader,
                                            GError ** error);

UelTensorStream *uel_loader_async_stream   (UelLoader * loader,
                                            const gchar * const *keys,
                                            guint batch_size,
                                            guint prefetch_batches,
                                            gboolean pin_memory,
                                            GError ** error);

/**
 * UelTensorStreamStats:
 * @batches: batches returned by uel_tensor_stream_next()
 * @tensors: tensors returned
 * @bytes: bytes of the tensors returned
 * @live_tensors: tensors read and not yet freed now: read ahead, or
 *   returned and still referenced by the caller
 * @live_bytes: their bytes
 * @peak_live_tensors: the most @live_tensors has been
 * @peak_live_bytes: the most @live_bytes has been
 * @peak_queued_tensors: the most tensors read ahead, in batches not yet
 *   taken
 * @peak_queued_bytes: the most bytes read ahead
 * @pinned_pool_bytes: the size of the pinned pool, 0 without pinning
 *
 * Counters of a #UelTensorStream, to check that its memory stays bounded.
 * A tensor counts as live from the moment it is read until the last
 * reference to it goes.
 */
typedef struct
{
  guint64 batches;
  guint64 tensors;
  guint64 bytes;
  guint64 live_tensors;
  guint64 live_bytes;
  guint64 peak_live_tensors;
  guint64 peak_live_bytes;
  guint64 peak_queued_tensors;
  guint64 peak_queued_bytes;
  guint64 pinned_pool_bytes;
} UelTensorStreamStats;

GPtrArray       *uel_tensor_stream_next      (UelTensorStream * stream,
                                              GError ** error);
void             uel_tensor_stream_stop      (UelTensorStream * stream);
guint64          uel_tensor_stream_get_max_live_tensors
                                             (UelTensorStream * stream);
void             uel_tensor_stream_get_stats (UelTensorStream * stream,
                                              UelTensorStreamStats * stats);

G_END_DECLS
