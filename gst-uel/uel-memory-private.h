/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* mem_share for gst-uel's allocators: a read-only sub-memory of @mem's
 * root, a copy of its @struct_size-byte memory struct (so the allocator's
 * own fields, such as the block's address, come along).  The allocators'
 * free functions release nothing for memories that have a parent. */
G_GNUC_INTERNAL GstMemory *uel_memory_share (GstMemory * mem, gssize offset,
    gssize size, gsize struct_size);

G_END_DECLS
