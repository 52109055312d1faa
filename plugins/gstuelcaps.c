/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * What the elements' transform_caps share.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstuelelements.h"

/* @caps (transfer full) as transform_caps returns them: intersected with
 * @filter, @filter's order first, when there is one */
GstCaps *
gst_uel_caps_filter (GstCaps * caps, GstCaps * filter)
{
  GstCaps *res;

  if (!filter)
    return caps;
  res = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
  gst_caps_unref (caps);
  return res;
}
