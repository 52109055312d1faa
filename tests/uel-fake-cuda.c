/* gst-uel: a stand-in for the CUDA runtime, for tests without a GPU
 * SPDX-License-Identifier: MIT
 *
 * Every function of gst-uel/uel-cuda-private.h, on host memory.  Copies
 * check that their device side lies inside a live fake allocation, so a
 * test notices a pointer that went the wrong way.
 */
#include <string.h>

#include <gst-uel/uel-cuda-private.h>
#include <gst-uel/uel-error.h>

#include "uel-fake-cuda.h"

static GMutex lock;
static GHashTable *blocks;      /* base → size, the live allocations */
static UelFakeCudaCounts counts;
static guint fail_copies;
static guint copy_delay_us;
static guint fail_syncs;

/* whether [ptr, ptr + n) lies inside one live allocation */
static gboolean
on_device (gconstpointer ptr, gsize n)
{
  GHashTableIter iter;
  gpointer base, size;
  gboolean found = FALSE;

  g_mutex_lock (&lock);
  if (blocks) {
    g_hash_table_iter_init (&iter, blocks);
    while (!found && g_hash_table_iter_next (&iter, &base, &size))
      found = (const guint8 *) ptr >= (const guint8 *) base
          && (const guint8 *) ptr + n <= (guint8 *) base
          + GPOINTER_TO_SIZE (size);
  }
  g_mutex_unlock (&lock);
  return found;
}

static gboolean
copy (gpointer dst, gconstpointer src, gsize n, guint * counter,
    GError ** error)
{
  gboolean fail;

  g_mutex_lock (&lock);
  fail = fail_copies > 0;
  if (fail)
    fail_copies--;
  else
    (*counter)++;
  g_mutex_unlock (&lock);
  if (copy_delay_us)
    g_usleep (copy_delay_us);
  if (fail) {
    g_set_error_literal (error, UEL_ERROR, UEL_ERROR_CUDA,
        "fake CUDA: copy failed as the test asked");
    return FALSE;
  }
  memcpy (dst, src, n);
  return TRUE;
}

void
uel_fake_cuda_get_counts (UelFakeCudaCounts * out)
{
  g_mutex_lock (&lock);
  *out = counts;
  g_mutex_unlock (&lock);
}

void
uel_fake_cuda_reset_copies (void)
{
  g_mutex_lock (&lock);
  counts.d2h = counts.h2d = counts.d2d = 0;
  g_mutex_unlock (&lock);
}

void
uel_fake_cuda_fail_copies (guint n)
{
  g_mutex_lock (&lock);
  fail_copies = n;
  g_mutex_unlock (&lock);
}

void
uel_fake_cuda_fail_syncs (guint n)
{
  g_mutex_lock (&lock);
  fail_syncs = n;
  g_mutex_unlock (&lock);
}

void
uel_fake_cuda_set_copy_delay (guint microseconds)
{
  copy_delay_us = microseconds;
}

gint
uel_cuda_device_count (GError ** error)
{
  return 1;
}

gboolean
uel_cuda_set_device (gint device, GError ** error)
{
  if (device < 1)
    return TRUE;
  g_set_error (error, UEL_ERROR, UEL_ERROR_CUDA,
      "fake CUDA: no device %d, only device 0", device);
  return FALSE;
}

gboolean
uel_cuda_host_register (gpointer ptr, gsize size, GError ** error)
{
  g_set_error_literal (error, UEL_ERROR, UEL_ERROR_CUDA,
      "fake CUDA: no pinning");
  return FALSE;
}

void
uel_cuda_host_unregister (gpointer ptr)
{
}

gboolean
uel_cuda_malloc (gsize size, gpointer * dev_ptr, GError ** error)
{
  *dev_ptr = g_malloc0 (MAX (size, 1));
  g_mutex_lock (&lock);
  if (!blocks)
    blocks = g_hash_table_new (NULL, NULL);
  g_hash_table_insert (blocks, *dev_ptr, GSIZE_TO_POINTER (MAX (size, 1)));
  counts.live++;
  g_mutex_unlock (&lock);
  return TRUE;
}

void
uel_cuda_free (gpointer dev_ptr)
{
  if (!dev_ptr)
    return;
  g_mutex_lock (&lock);
  g_assert_true (g_hash_table_remove (blocks, dev_ptr));
  counts.live--;
  g_mutex_unlock (&lock);
  g_free (dev_ptr);
}

gboolean
uel_cuda_memcpy_h2d_async (gpointer dst, gconstpointer src, gsize n,
    gpointer stream, GError ** error)
{
  g_assert_true (on_device (dst, n));
  g_mutex_lock (&lock);
  counts.h2d++;
  g_mutex_unlock (&lock);
  memcpy (dst, src, n);
  return TRUE;
}

gboolean
uel_cuda_memcpy_d2h (gpointer dst, gconstpointer src, gsize n,
    GError ** error)
{
  g_assert_true (on_device (src, n) && !on_device (dst, 1));
  return copy (dst, src, n, &counts.d2h, error);
}

gboolean
uel_cuda_memcpy_h2d (gpointer dst, gconstpointer src, gsize n,
    GError ** error)
{
  g_assert_true (on_device (dst, n) && !on_device (src, 1));
  return copy (dst, src, n, &counts.h2d, error);
}

gboolean
uel_cuda_memcpy_d2d (gpointer dst, gconstpointer src, gsize n,
    GError ** error)
{
  g_assert_true (on_device (dst, n) && on_device (src, n));
  return copy (dst, src, n, &counts.d2d, error);
}

/* streams and events: everything is done by the time a call returns */
gpointer
uel_cuda_stream_new (GError ** error)
{
  return g_new0 (guint8, 1);
}

void
uel_cuda_stream_free (gpointer stream)
{
  g_free (stream);
}

gpointer
uel_cuda_event_new (GError ** error)
{
  return g_new0 (guint8, 1);
}

void
uel_cuda_event_free (gpointer event)
{
  g_free (event);
}

gboolean
uel_cuda_event_record (gpointer event, gpointer stream, GError ** error)
{
  return TRUE;
}

gboolean
uel_cuda_event_sync (gpointer event, GError ** error)
{
  gboolean fail;

  g_mutex_lock (&lock);
  fail = fail_syncs > 0;
  if (fail)
    fail_syncs--;
  g_mutex_unlock (&lock);
  if (fail)
    g_set_error_literal (error, UEL_ERROR, UEL_ERROR_CUDA,
        "fake CUDA: the queued work failed as the test asked");
  return !fail;
}

gfloat
uel_cuda_event_elapsed_ms (gpointer start, gpointer end)
{
  return -1;
}

gboolean
uel_cuda_launch_host_func (gpointer stream, void (*func) (gpointer),
    gpointer data, GError ** error)
{
  func (data);
  return TRUE;
}

gboolean
uel_cuda_stream_sync (gpointer stream, GError ** error)
{
  return TRUE;
}

gboolean
uel_cuda_mem_get_info (guint64 * free_bytes, guint64 * total_bytes,
    GError ** error)
{
  *free_bytes = *total_bytes = G_GUINT64_CONSTANT (1) << 30;
  return TRUE;
}

gboolean
uel_cuda_host_is_pinned (gconstpointer ptr)
{
  return FALSE;
}

gboolean
uel_cuda_convert (UelDType from, UelDType to, gconstpointer src_dev,
    gpointer dst_dev, gsize n_elements, gpointer stream, GError ** error)
{
  g_set_error_literal (error, UEL_ERROR, UEL_ERROR_CUDA,
      "fake CUDA: no conversion kernels");
  return FALSE;
}
