/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_UEL_QUEUE (gst_uel_queue_get_type ())
G_DECLARE_FINAL_TYPE (GstUelQueue, gst_uel_queue, GST, UEL_QUEUE, GstElement)

G_END_DECLS
