/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "uel-reader.h"

G_BEGIN_DECLS

/* Reads @len bytes at @offset of file @file_index into @dst through the
 * reader's bounded set of open files, and checks that the file did not
 * change (the loader's preloading reads runs of small tensors at once). */
G_GNUC_INTERNAL gboolean uel_reader_pread (UelReader * reader,
    guint file_index, gpointer dst, gsize len, guint64 offset,
    GError ** error);

/* The most buffers read ahead at once, counting the one the next
 * uel_reader_next() returns (0, the default: as the byte window allows);
 * may change between uel_reader_next() calls.  The loader's stream counts
 * tensors, not bytes: it lets the reader run ahead only within the batch
 * it fills. */
G_GNUC_INTERNAL void uel_reader_set_max_ahead (UelReader * reader,
    guint n_buffers);

G_END_DECLS
