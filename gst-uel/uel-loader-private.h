/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>

#include "uel-loader.h"

G_BEGIN_DECLS

/* The loader's and its stream's: GST_DEBUG=uelloader tells both. */
G_GNUC_INTERNAL extern GstDebugCategory *uel_loader_debug;

/* Whether g_initable_init() opened @loader: every call that reads the
 * header or a tensor needs it. */
G_GNUC_INTERNAL gboolean uel_loader_is_ready (UelLoader * loader);

/* direct_gpu: the loader holds @slot, a device tensor that a stream
 * delivered, until uel_loader_mark_processed (@name). */
G_GNUC_INTERNAL void uel_loader_hold_device_tensor (UelLoader * loader,
    const gchar * name, GstBuffer * slot);

G_END_DECLS
