/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS


gboolean uel_pread_full (gint fd, gpointer buf, gsize len, guint64 offset,
                         const gchar * path, GError ** error);

G_END_DECLS
