/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "uel-hostmem.h"

G_BEGIN_DECLS

/* for tests: the time (microseconds) a huge page may take to fault in
 * before a new block goes on 4 KiB pages (-1: every block timed does),
 * which also ends a pause after a slow one; how many huge pages were
 * timed, and how many blocks went on 4 KiB pages */
G_GNUC_INTERNAL void uel_host_allocator_set_slow_huge_page_us (
    UelHostAllocator * allocator, gint64 us);
G_GNUC_INTERNAL void uel_host_allocator_get_huge_page_stats (
    UelHostAllocator * allocator, guint64 * n_timed,
    guint64 * n_small_pages);

G_END_DECLS
