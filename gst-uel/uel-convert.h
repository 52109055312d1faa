/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>
#include <gst-uel/uel-dtype.h>

G_BEGIN_DECLS

gboolean uel_convert_supported   (UelDType from,
                                  UelDType to);
gboolean uel_convert_cpu_supported (UelDType from,
                                    UelDType to);
gsize    uel_convert_output_size (UelDType from,
                                  UelDType to,
                                  gsize in_bytes);
gboolean uel_convert_cpu         (UelDType from,
                                  UelDType to,
                                  gconstpointer src,
                                  gpointer dst,
                                  gsize n_elements,
                                  GError ** error);
GBytes  *uel_convert_cpu_bytes   (UelDType from,
                                  UelDType to,
                                  GBytes * src,
                                  GError ** error);

G_END_DECLS
