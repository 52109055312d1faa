/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* Counts the tensors read and not yet freed, and the most there have been
 * at once: a buffer counts from uel_live_counter_track() until its last
 * reference goes.  Shared with the buffers (which may outlive the
 * counter's owner), hence reference-counted. */
typedef struct _UelLiveCounter UelLiveCounter;

G_GNUC_INTERNAL UelLiveCounter *uel_live_counter_new (void);
G_GNUC_INTERNAL void uel_live_counter_unref (UelLiveCounter * c);
G_GNUC_INTERNAL void uel_live_counter_track (UelLiveCounter * c,
    GstBuffer * buf);
G_GNUC_INTERNAL void uel_live_counter_get (UelLiveCounter * c,
    guint64 * tensors, guint64 * bytes, guint64 * peak_tensors,
    guint64 * peak_bytes);

G_END_DECLS
