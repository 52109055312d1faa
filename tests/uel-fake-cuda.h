/* gst-uel: a stand-in for the CUDA runtime, for tests without a GPU
 * SPDX-License-Identifier: MIT
 *
 * tests/uel-fake-cuda.c defines the library's internal CUDA interface
 * (gst-uel/uel-cuda-private.h) on host memory: one "device" whose
 * allocations are plain heap blocks, copies that are memcpy.  A test that
 * links it together with its own copies of library objects (see
 * tests/meson.build) runs their device-memory logic on any machine and
 * counts the copies they make.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  guint d2h;                    /* device-to-host copies */
  guint h2d;                    /* host-to-device copies, async ones too */
  guint d2d;                    /* device-to-device copies */
  guint live;                   /* device allocations not yet freed */
} UelFakeCudaCounts;

void uel_fake_cuda_get_counts (UelFakeCudaCounts * counts);
/* zeroes the copy counters (not the live allocations) */
void uel_fake_cuda_reset_copies (void);
/* the next @n synchronous copies fail with a UEL_ERROR_CUDA error */
void uel_fake_cuda_fail_copies (guint n);
/* the next @n event syncs fail, as when queued copies failed */
void uel_fake_cuda_fail_syncs (guint n);
/* every synchronous copy takes at least this long, so that threads
 * calling at once overlap */
void uel_fake_cuda_set_copy_delay (guint microseconds);

G_END_DECLS
