/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

GST_ELEMENT_REGISTER_DECLARE (uelsrc);
GST_ELEMENT_REGISTER_DECLARE (uelqueue);
GST_ELEMENT_REGISTER_DECLARE (ueldictdecode);
GST_ELEMENT_REGISTER_DECLARE (uelpin);
GST_ELEMENT_REGISTER_DECLARE (uelcudaupload);
GST_ELEMENT_REGISTER_DECLARE (uelconvert);
GST_ELEMENT_REGISTER_DECLARE (uelsink);

GstAllocator *gst_uel_shared_pinned_allocator (GstElement * element);
gboolean gst_uel_property_can_change (GstElement * element,
    GParamSpec * pspec);
GstCaps *gst_uel_caps_filter (GstCaps * caps, GstCaps * filter);

G_END_DECLS
