/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst-uel/uel.h>

#include "gstuelelements.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  uel_init ();
  ret |= GST_ELEMENT_REGISTER (uelsrc, plugin);
  ret |= GST_ELEMENT_REGISTER (uelqueue, plugin);
  ret |= GST_ELEMENT_REGISTER (ueldictdecode, plugin);
  ret |= GST_ELEMENT_REGISTER (uelpin, plugin);
  ret |= GST_ELEMENT_REGISTER (uelcudaupload, plugin);
  ret |= GST_ELEMENT_REGISTER (uelconvert, plugin);
  ret |= GST_ELEMENT_REGISTER (uelsink, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, uel,
    "Stream safetensors tensors into host, pinned and GPU memory",
    plugin_init, PACKAGE_VERSION, GST_LICENSE, GST_PACKAGE_NAME,
    GST_PACKAGE_ORIGIN)
