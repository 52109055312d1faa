/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define UEL_HOST_MEMORY_TYPE "UelHostMemory"

#define UEL_TYPE_HOST_ALLOCATOR (uel_host_allocator_get_type ())
G_DECLARE_FINAL_TYPE (UelHostAllocator, uel_host_allocator, UEL,
    HOST_ALLOCATOR, GstAllocator)

GstAllocator *uel_host_allocator_new       (guint64 max_cached_bytes);
void          uel_host_allocator_get_stats (UelHostAllocator * allocator,
                                            guint64 * n_fresh,
                                            guint64 * n_reused,
                                            guint64 * cached_bytes);

G_END_DECLS
