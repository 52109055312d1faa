/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib-object.h>
#include <gst-uel/uel-writer.h>

G_BEGIN_DECLS

GType uel_writer_get_type (void);
#define UEL_TYPE_WRITER (uel_writer_get_type ())

G_END_DECLS
