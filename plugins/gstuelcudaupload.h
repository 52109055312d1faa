/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

typedef enum
{
  GST_UEL_CONVERT_NONE,
  GST_UEL_CONVERT_F32,
  GST_UEL_CONVERT_F16,
  GST_UEL_CONVERT_BF16,
  GST_UEL_CONVERT_F8_E4M3,
  GST_UEL_CONVERT_F8_E5M2,
} GstUelConvertTo;

typedef enum
{
  GST_UEL_FALLBACK_PASSTHROUGH,
  GST_UEL_FALLBACK_ERROR,
} GstUelFallback;

#define GST_TYPE_UEL_CONVERT_TO (gst_uel_convert_to_get_type ())
GType gst_uel_convert_to_get_type (void);
#define GST_TYPE_UEL_FALLBACK (gst_uel_fallback_get_type ())
GType gst_uel_fallback_get_type (void);

#define GST_TYPE_UEL_CUDA_UPLOAD (gst_uel_cuda_upload_get_type ())
G_DECLARE_FINAL_TYPE (GstUelCudaUpload, gst_uel_cuda_upload, GST,
    UEL_CUDA_UPLOAD, GstBaseTransform)

G_END_DECLS
