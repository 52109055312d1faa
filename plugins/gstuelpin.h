/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_UEL_PIN (gst_uel_pin_get_type ())
G_DECLARE_FINAL_TYPE (GstUelPin, gst_uel_pin, GST, UEL_PIN, GstBaseTransform)

G_END_DECLS
