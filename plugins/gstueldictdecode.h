/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/base/gstbasetransform.h>
#include <gst-uel/uel.h>

G_BEGIN_DECLS

#define GST_TYPE_UEL_DICT_DECODE (gst_uel_dict_decode_get_type ())
G_DECLARE_FINAL_TYPE (GstUelDictDecode, gst_uel_dict_decode, GST,
    UEL_DICT_DECODE, GstBaseTransform)

G_END_DECLS
