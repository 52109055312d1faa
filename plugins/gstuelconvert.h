/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

typedef enum
{
  GST_UEL_CONVERT_DTYPE_NONE,
  GST_UEL_CONVERT_DTYPE_F32,
  GST_UEL_CONVERT_DTYPE_F16,
  GST_UEL_CONVERT_DTYPE_BF16,
  GST_UEL_CONVERT_DTYPE_F8_E4M3,
  GST_UEL_CONVERT_DTYPE_F8_E5M2,
} GstUelConvertDType;

#define GST_TYPE_UEL_CONVERT_DTYPE (gst_uel_convert_dtype_get_type ())
GType gst_uel_convert_dtype_get_type (void);

#define GST_TYPE_UEL_CONVERT (gst_uel_convert_get_type ())
G_DECLARE_FINAL_TYPE (GstUelConvert, gst_uel_convert, GST, UEL_CONVERT,
    GstBaseTransform)

G_END_DECLS
