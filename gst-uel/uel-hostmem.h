/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define UEL_HOST_MEMORY_TYPE "UelHostMemory"

/**
 * UEL_HOST_SMALL_MAX:
 *
 * Memory of up to this many bytes comes from the C heap, 64-byte aligned,
 * rather than from a page-aligned block of its own.
 */
#define UEL_HOST_SMALL_MAX 2048

#define UEL_TYPE_HOST_ALLOCATOR (uel_host_allocator_get_type ())
G_DECLARE_FINAL_TYPE (UelHostAllocator, uel_host_allocator, UEL,
    HOST_ALLOCATOR, GstAllocator)

GstAllocator *uel_host_allocator_new       (guint64 max_cached_bytes);
void          uel_host_allocator_get_stats (UelHostAllocator * allocator,
                                            guint64 * n_fresh,
                                            guint64 * n_reused,
                                            guint64 * cached_bytes);

G_END_DECLS
