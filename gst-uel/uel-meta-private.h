/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Lets a printed uel-header structure parse back: a #UelHeader serializes
 * as its location.  Needs gst_init(); called by uel_init() and by
 * uel_header_structure_new(). */
G_GNUC_INTERNAL void uel_header_register_value_table (void);

G_END_DECLS
