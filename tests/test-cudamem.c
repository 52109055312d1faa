/* gst-uel: CUDA device memory (uel-cudamem) without a GPU
 * SPDX-License-Identifier: MIT
 *
 * The allocator's own code runs on the stand-in runtime of
 * tests/uel-fake-cuda.c, whose "device" memory is host memory, so every
 * copy a map makes is counted.  The checks shared with tests/gpu/test-gpu.c
 * (cudamem-checks.c) run here with those counts; the ones below need the
 * stand-in to fail copies on demand and to count allocations.
 */
#include "config.h"

#include <string.h>

#include "cudamem-checks.h"
#include "test-utils.h"
#include "uel-fake-cuda.h"

static gboolean
fake_usable (void)
{
  return TRUE;
}

static void
fake_copy (gpointer dst, gconstpointer src, gsize n)
{
  memcpy (dst, src, n);
}

static void
fake_count (guint * d2h, guint * h2d, guint * d2d)
{
  UelFakeCudaCounts c;

  uel_fake_cuda_get_counts (&c);
  *d2h = c.d2h;
  *h2d = c.h2d;
  *d2d = c.d2d;
}

static const UelCudaMemChecks fake = {
  "/cudamem", 4096, fake_usable, fake_copy, fake_copy, fake_count,
};

static void
expect_copies (guint d2h, guint h2d, guint d2d)
{
  UelFakeCudaCounts c;

  uel_fake_cuda_get_counts (&c);
  g_assert_cmpuint (c.d2h, ==, d2h);
  g_assert_cmpuint (c.h2d, ==, h2d);
  g_assert_cmpuint (c.d2d, ==, d2d);
}

static void
test_failed_transfers (void)
{
  GstMemory *mem = uel_cudamem_filled (&fake, fake.size, 11);
  GstMapInfo map;

  /* a download that fails fails the map; the next one tries again */
  uel_fake_cuda_reset_copies ();
  uel_fake_cuda_fail_copies (1);
  g_assert_false (gst_memory_map (mem, &map, GST_MAP_READ));
  uel_cudamem_expect_bytes (&fake, mem, GST_MAP_READ, 11, 0, fake.size);
  expect_copies (1, 0, 0);

  /* an upload that fails at unmap is retried by the next CUDA map, and
   * fails that map while it keeps failing */
  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READWRITE));
  uel_test_fill (map.data, fake.size, 12);
  uel_fake_cuda_fail_copies (2);
  gst_memory_unmap (mem, &map);
  g_assert_false (gst_memory_map (mem, &map, GST_MAP_READ | UEL_MAP_CUDA));
  uel_cudamem_expect_bytes (&fake, mem, GST_MAP_READ | UEL_MAP_CUDA, 12, 0,
      fake.size);
  expect_copies (1, 1, 0);

  /* a device-to-device copy that fails gives no memory and keeps none */
  uel_fake_cuda_fail_copies (1);
  g_assert_null (gst_memory_copy (mem, 0, -1));

  gst_memory_unref (mem);
}

static void
test_freed_with_the_memory (void)
{
  GstMemory *mem = uel_cudamem_filled (&fake, fake.size, 13);
  GstMemory *view = gst_memory_share (mem, 10, 10);
  GstMemory *copy = gst_memory_copy (view, 0, -1);
  UelFakeCudaCounts c;

  uel_cudamem_expect_bytes (&fake, view, GST_MAP_READ, 13, 10, 10);
  uel_cudamem_expect_bytes (&fake, copy, GST_MAP_READ, 13, 10, 10);
  uel_fake_cuda_get_counts (&c);
  g_assert_cmpuint (c.live, ==, 2);
  gst_memory_unref (mem);
  gst_memory_unref (copy);
  uel_fake_cuda_get_counts (&c);
  g_assert_cmpuint (c.live, ==, 1);
  /* the parent's block (and host copy) goes with its last view */
  gst_memory_unref (view);
  uel_fake_cuda_get_counts (&c);
  g_assert_cmpuint (c.live, ==, 0);
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);
  /* slow copies, so that threads mapping at once overlap: without the
   * memory's lock each would make its own */
  uel_fake_cuda_set_copy_delay (10000);

  uel_cudamem_checks_add (&fake);
  g_test_add_func ("/cudamem/failed-transfers-fail-the-map-and-are-retried",
      test_failed_transfers);
  g_test_add_func ("/cudamem/host-copy-and-block-go-with-the-last-reference",
      test_freed_with_the_memory);
  return g_test_run ();
}
