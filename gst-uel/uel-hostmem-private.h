/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "uel-hostmem.h"

G_BEGIN_DECLS

/* for tests: the time (microseconds) a huge page may take to fault in
 * before a new block goes on 4 KiB pages (-1: every block does), and how
 * many blocks did */
G_GNUC_INTERNAL void uel_host_allocator_set_slow_huge_page_us (
    UelHostAllocator * allocator, gint64 us);
G_GNUC_INTERNAL guint64 uel_host_allocator_get_n_small_pages (
    UelHostAllocator * allocator);

G_END_DECLS
