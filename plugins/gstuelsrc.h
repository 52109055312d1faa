/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>
#include <gst/base/gstpushsrc.h>
#include <gst-uel/uel.h>

G_BEGIN_DECLS

#define GST_TYPE_UEL_SRC (gst_uel_src_get_type ())
G_DECLARE_FINAL_TYPE (GstUelSrc, gst_uel_src, GST, UEL_SRC, GstPushSrc)

G_END_DECLS
