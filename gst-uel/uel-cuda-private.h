/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * The one interface to the CUDA runtime.  Everything else in gst-uel calls
 * these functions, so that it compiles the same with or without the
 * toolkit; without it (or without a driver, or a device) they fail with a
 * message instead of crashing.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Number of CUDA devices, or -1 with @error set (no toolkit at build time,
 * no driver, no device).  The error message is CUDA's own, with its code. */
G_GNUC_INTERNAL gint uel_cuda_device_count (GError ** error);

G_END_DECLS
