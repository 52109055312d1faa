/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define UEL_PINNED_MEMORY_TYPE "UelPinned"

/**
 * UEL_PINNED_DEFAULT_WAIT_TIMEOUT_MS:
 *
 * How long an allocation waits for pool memory to come back before it
 * gives up, by default: 3 seconds.
 */
#define UEL_PINNED_DEFAULT_WAIT_TIMEOUT_MS 3000

/**
 * UEL_PINNED_POOL_CONTEXT_TYPE:
 *
 * The #GstContext type by which applications give pipelines a pinned pool
 * to share: see uel_pinned_pool_context_new().
 */
#define UEL_PINNED_POOL_CONTEXT_TYPE "uel.pinned-pool"

#define UEL_TYPE_PINNED_ALLOCATOR (uel_pinned_allocator_get_type ())
G_DECLARE_FINAL_TYPE (UelPinnedAllocator, uel_pinned_allocator, UEL,
    PINNED_ALLOCATOR, GstAllocator)

/**
 * UelPinnedStats:
 * @capacity: the pool's size in bytes
 * @live_bytes: bytes handed out and not yet returned (by this allocator:
 *   the other allocators of a shared pool count their own)
 * @peak_bytes: the most @live_bytes has ever been
 * @n_allocs: allocations served
 * @n_waits: allocations that had to wait for memory to come back
 * @n_too_large: requests larger than half the pool, refused at once
 * @n_starved: requests refused because memory did not come back: after
 *   waiting the wait timeout, or at once when nothing has come back since
 *   the last such wait
 * @device_pinned: whether the pool is page-locked by the CUDA driver
 *   (%FALSE: no device, plain page-aligned host memory)
 *
 * Counters of a #UelPinnedAllocator: all but @capacity and
 * @device_pinned count this allocator's own requests.
 */
typedef struct
{
  guint64 capacity;
  guint64 live_bytes;
  guint64 peak_bytes;
  guint64 n_allocs;
  guint64 n_waits;
  guint64 n_too_large;
  guint64 n_starved;
  gboolean device_pinned;
} UelPinnedStats;

GstAllocator *uel_pinned_allocator_new          (guint64 capacity,
                                                 gint cuda_device);
GstAllocator *uel_pinned_allocator_new_shared   (UelPinnedAllocator * allocator);
gboolean      uel_pinned_allocator_shares_pool  (UelPinnedAllocator * a,
                                                 UelPinnedAllocator * b);
gboolean      uel_pinned_allocator_prepare      (UelPinnedAllocator * allocator,
                                                 GError ** error);
gboolean      uel_pinned_allocator_is_device_pinned (UelPinnedAllocator * allocator);
const gchar  *uel_pinned_allocator_get_fallback_reason (UelPinnedAllocator * allocator);
void          uel_pinned_allocator_set_flushing (UelPinnedAllocator * allocator,
                                                 gboolean flushing);
void          uel_pinned_allocator_get_stats    (UelPinnedAllocator * allocator,
                                                 UelPinnedStats * stats);
void          uel_pinned_allocator_set_wait_timeout (UelPinnedAllocator * allocator,
                                                 guint ms);
gboolean      uel_memory_is_pinned              (GstMemory * mem);
gboolean      uel_buffer_is_pinned              (GstBuffer * buffer);

GstContext   *uel_pinned_pool_context_new       (UelPinnedAllocator * allocator);
GstAllocator *uel_pinned_pool_context_get_allocator (GstContext * context);

G_END_DECLS
