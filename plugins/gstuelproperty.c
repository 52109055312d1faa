/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstuelelements.h"

static const gchar *
state_name (GstState state)
{
  return gst_element_state_get_name (state);
}

/* Whether @pspec may change now, as its GST_PARAM_MUTABLE_* flag says.  A
 * change the element could not honour (a location, a chunk size or a pool
 * while a stream runs) is refused with a warning, as filesrc refuses its
 * location: the value read back stays the one in use.  Call it before
 * taking the object lock. */
gboolean
gst_uel_property_can_change (GstElement * element, GParamSpec * pspec)
{
  GstState state, next, most;

  if (pspec->flags & GST_PARAM_MUTABLE_PLAYING)
    return TRUE;
  if (pspec->flags & GST_PARAM_MUTABLE_PAUSED)
    most = GST_STATE_PAUSED;
  else if (pspec->flags & GST_PARAM_MUTABLE_READY)
    most = GST_STATE_READY;
  else
    return TRUE;

  GST_OBJECT_LOCK (element);
  state = GST_STATE (element);
  next = GST_STATE_NEXT (element);
  GST_OBJECT_UNLOCK (element);
  if (state <= most && next <= most)
    return TRUE;
  g_warning ("%s: the '%s' property can change only in the %s state or "
      "below, not in %s: the change is ignored", GST_ELEMENT_NAME (element),
      pspec->name, state_name (most),
      state_name (next != GST_STATE_VOID_PENDING ? MAX (state, next) :
          state));
  return FALSE;
}
