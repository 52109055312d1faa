/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* uel_pread_full(), saying in @done how many bytes arrived before a
 * failure: the reader's runs of small tensors read in one call tell which
 * tensor a failure is in. */
G_GNUC_INTERNAL gboolean uel_pread_partial (gint fd, gpointer buf,
    gsize len, guint64 offset, const gchar * path, gsize * done,
    GError ** error);

/* The same for one read into several buffers, one after the other in
 * the file (preadv(2)): @iov is changed as the reads go on. */
struct iovec;
G_GNUC_INTERNAL gboolean uel_preadv_partial (gint fd, struct iovec * iov,
    gint iovcnt, gsize len, guint64 offset, const gchar * path, gsize * done,
    GError ** error);

G_END_DECLS
