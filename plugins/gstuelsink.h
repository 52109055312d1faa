/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/base/gstbasesink.h>

G_BEGIN_DECLS

#define GST_TYPE_UEL_SINK (gst_uel_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstUelSink, gst_uel_sink, GST, UEL_SINK, GstBaseSink)

G_END_DECLS
