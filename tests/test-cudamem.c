/* gst-uel: CUDA device memory (uel-cudamem) without a GPU
 * SPDX-License-Identifier: MIT
 *
 * The allocator's own code runs on the stand-in runtime of
 * tests/uel-fake-cuda.c, whose "device" memory is host memory, so every
 * copy a map makes is counted.  The checks shared with tests/gpu/test-gpu.c
 * (cudamem-checks.c) run here with those counts; the ones below need the
 * stand-in to fail copies on demand and to count allocations, and so do
 * the non-blocking transfers' (uel-transfer.c is linked in too).
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

/* ------------------------------------------------------------------ */
/* uel_transfer_to_gpu_pinned_async() on the stand-in device */

/* one F32 tensor "w" of two pool chunks and a bit, from a file */
static GstBuffer *
transfer_source (void)
{
  const gsize n = (gsize) UEL_TRANSFER_POOL_SIZE / 4 + 12;
  g_autofree gchar *path = uel_test_path ("transfer-async.safetensors");
  g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]", n / 4);
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (UelLoader) loader = NULL;
  GError *err = NULL;
  GstBuffer *buf;

  uel_test_builder_add (b, "w", "F32", shape, n, NULL);
  uel_test_builder_write (b, path, NULL);
  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  buf = uel_loader_get_tensor (loader, "w", &err);
  g_assert_no_error (err);
  return buf;
}

static void
assert_stats (guint64 pinned, guint64 fallback)
{
  guint64 p, f;

  uel_pinned_transfer_get_stats (&p, &f);
  g_assert_cmpuint (p, ==, pinned);
  g_assert_cmpuint (f, ==, fallback);
}

static void
test_transfer_async (void)
{
  g_autoptr (GstBuffer) in = transfer_source ();
  g_autoptr (GstBuffer) out = NULL, again = NULL;
  UelTransfer *t;
  UelFakeCudaCounts c;
  GError *err = NULL;
  GstMapInfo a, b;

  uel_pinned_transfer_reset_stats ();
  t = uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_INVALID, &err);
  g_assert_no_error (err);
  /* counted once the copies are waited for */
  assert_stats (0, 0);
  out = uel_transfer_wait (t, &err);
  g_assert_no_error (err);
  assert_stats (1, 0);
  g_assert_true (uel_memory_is_cuda (gst_buffer_peek_memory (out, 0)));
  g_assert_cmpint (uel_buffer_get_tensor_meta (out)->dtype, ==,
      UEL_DTYPE_F32);
  g_assert_true (gst_buffer_map (out, &a, GST_MAP_READ));
  g_assert_true (gst_buffer_map (in, &b, GST_MAP_READ));
  g_assert_cmpmem (a.data, a.size, b.data, b.size);
  gst_buffer_unmap (in, &b);
  gst_buffer_unmap (out, &a);
  again = uel_transfer_wait (t, &err);
  g_assert_no_error (err);
  g_assert_true (again == out);
  uel_transfer_free (t);
  assert_stats (1, 0);
  gst_clear_buffer (&out);
  gst_clear_buffer (&again);
  uel_fake_cuda_get_counts (&c);
  g_assert_cmpuint (c.live, ==, 0);

  /* freed without waiting: the device memory goes too, uncounted */
  t = uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_INVALID, &err);
  g_assert_no_error (err);
  uel_transfer_free (t);
  uel_fake_cuda_get_counts (&c);
  g_assert_cmpuint (c.live, ==, 0);
  assert_stats (1, 0);
  g_assert_cmpint (GST_MINI_OBJECT_REFCOUNT_VALUE (in), ==, 1);
  uel_pinned_transfer_reset_stats ();
}

static void
test_transfer_async_failures (void)
{
  g_autoptr (GstBuffer) in = transfer_source ();
  g_autoptr (GstBuffer) out = NULL;
  UelTransfer *t;
  UelFakeCudaCounts c;
  GError *err = NULL;

  uel_pinned_transfer_reset_stats ();
  /* the pinned copies fail on the way: wait copies from pageable memory */
  uel_fake_cuda_fail_syncs (1);
  t = uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_INVALID, &err);
  g_assert_no_error (err);
  out = uel_transfer_wait (t, &err);
  g_assert_no_error (err);
  g_assert_true (uel_memory_is_cuda (gst_buffer_peek_memory (out, 0)));
  assert_stats (0, 1);
  uel_transfer_free (t);
  gst_clear_buffer (&out);

  /* the pageable copy fails too: an error naming the tensor, twice */
  uel_fake_cuda_fail_syncs (2);
  t = uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_INVALID, &err);
  g_assert_no_error (err);
  for (guint i = 0; i < 2; i++) {
    g_assert_null (uel_transfer_wait (t, &err));
    g_assert_error (err, UEL_ERROR, UEL_ERROR_CUDA);
    g_assert_true (g_str_has_prefix (err->message, "tensor 'w': "));
    g_clear_error (&err);
  }
  uel_transfer_free (t);
  assert_stats (0, 1);

  /* queuing fails both ways (the stand-in has no conversion kernels):
   * refused at the call */
  g_assert_null (uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_F16,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_CUDA);
  g_assert_true (g_str_has_prefix (err->message, "tensor 'w': "));
  g_clear_error (&err);
  assert_stats (0, 1);

  uel_fake_cuda_get_counts (&c);
  g_assert_cmpuint (c.live, ==, 0);
  g_assert_cmpint (GST_MINI_OBJECT_REFCOUNT_VALUE (in), ==, 1);
  uel_pinned_transfer_reset_stats ();
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
  g_test_add_func ("/transfer/async/arrives-in-device-memory-when-waited-for",
      test_transfer_async);
  g_test_add_func ("/transfer/async/failed-copies-retry-then-name-the-tensor",
      test_transfer_async_failures);
  return g_test_run ();
}
