/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:uel-transfer
 * @title: Pinned transfers
 *
 * uel_transfer_to_gpu_pinned() is the Python loader's
 * `transfer_to_gpu_pinned()`: one tensor to a CUDA device through pinned
 * memory, with the same graceful fallback and the same two counters.
 *
 * Unlike the Python call, which pins each tensor anew (`pin_memory()`
 * costs 0.2–1 s per GiB), pageable tensors are staged through one pinned
 * pool of %UEL_TRANSFER_POOL_SIZE bytes, pinned once and reused, in chunks,
 * while earlier chunks are still being copied.  Tensors already in pinned
 * memory (from `uelpin`, or from uel_loader_async_stream() with
 * pin_memory) are copied straight from where they are.
 */

#include "config.h"

#include <string.h>

#include "uel-convert.h"
#include "uel-cudamem.h"
#include "uel-error.h"
#include "uel-meta.h"
#include "uel-pinned.h"
#include "uel-transfer.h"

GST_DEBUG_CATEGORY_STATIC (uel_transfer_debug);
#define GST_CAT_DEFAULT uel_transfer_debug

/* a pageable tensor goes through the pool in chunks of this size: four fit,
 * so chunks are filled while earlier ones are on their way */
#define CHUNK (UEL_TRANSFER_POOL_SIZE / 4)

static GMutex transfer_lock;
static guint64 n_pinned;
static guint64 n_fallback;
static GstAllocator *pool;      /* UelPinnedAllocator, made once */

static void
debug_init (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (uel_transfer_debug, "ueltransfer", 0,
        "gst-uel pinned transfers");
    g_once_init_leave (&done, 1);
  }
}

static void
count (gboolean pinned)
{
  g_mutex_lock (&transfer_lock);
  if (pinned)
    n_pinned++;
  else
    n_fallback++;
  g_mutex_unlock (&transfer_lock);
}

static GstAllocator *
get_pool (gint device)
{
  GstAllocator *p;

  g_mutex_lock (&transfer_lock);
  if (!pool)
    pool = uel_pinned_allocator_new (UEL_TRANSFER_POOL_SIZE, device);
  p = gst_object_ref (pool);
  g_mutex_unlock (&transfer_lock);
  return p;
}

static gboolean
all_memory (GstBuffer * buffer, gboolean (*test) (GstMemory *))
{
  guint n = gst_buffer_n_memory (buffer);

  for (guint i = 0; i < n; i++)
    if (!test (gst_buffer_peek_memory (buffer, i)))
      return FALSE;
  return n > 0;
}

/* the seed's fallback `tensor.to(dtype=...)` on the CPU */
static GstBuffer *
convert_on_host (GstBuffer * in, UelDType from, UelDType to,
    GError ** error)
{
  gsize size = gst_buffer_get_size (in);
  gsize out_size = uel_convert_output_size (from, to, size);
  GstBuffer *out;
  UelTensorMeta *m;
  GstMapInfo src, dst;
  gboolean ok;

  if (out_size == 0 && size != 0) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "cannot convert %" G_GSIZE_FORMAT " bytes of %s to %s", size,
        uel_dtype_to_string (from), uel_dtype_to_string (to));
    return NULL;
  }
  out = gst_buffer_new_allocate (NULL, out_size, NULL);
  gst_buffer_copy_into (out, in, GST_BUFFER_COPY_FLAGS |
      GST_BUFFER_COPY_TIMESTAMPS | GST_BUFFER_COPY_META, 0, -1);
  if (!gst_buffer_map (in, &src, GST_MAP_READ)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "cannot map the tensor for reading");
    gst_buffer_unref (out);
    return NULL;
  }
  gst_buffer_map (out, &dst, GST_MAP_WRITE);
  ok = uel_convert_cpu (from, to, src.data, dst.data,
      size * 8 / uel_dtype_get_bits (from), error);
  gst_buffer_unmap (out, &dst);
  gst_buffer_unmap (in, &src);
  if (!ok) {
    gst_buffer_unref (out);
    return NULL;
  }
  m = uel_buffer_get_tensor_meta (out);
  if (m) {
    m->dtype = to;
    m->n_bytes = out_size;
  }
  return out;
}

/* a copy of @len bytes of @buffer from @offset, in pinned memory */
static GstBuffer *
pinned_copy (GstAllocator * alloc, GstBuffer * buffer, gsize offset,
    gsize len, GError ** error)
{
  GstMemory *mem = gst_allocator_alloc (alloc, len, NULL);
  GstBuffer *out;
  GstMapInfo map;

  if (!mem || !gst_memory_map (mem, &map, GST_MAP_WRITE)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_CUDA, "cannot allocate %"
        G_GSIZE_FORMAT " bytes of pinned memory", len);
    if (mem)
      gst_memory_unref (mem);
    return NULL;
  }
  gst_buffer_extract (buffer, offset, map.data, len);
  gst_memory_unmap (mem, &map);
  out = gst_buffer_new ();
  gst_buffer_append_memory (out, mem);
  return out;
}

/* Submits @buffer's bytes from pinned memory: as they are when they are
 * pinned already, else copied through the pool, in chunks when the buffer
 * describes a tensor.  *@pinned says whether the bytes went from pinned
 * memory (a buffer without a #UelTensorMeta larger than the pool goes
 * from pageable memory). */
static gboolean
upload (UelCudaUploader * up, GstBuffer * buffer, gint device,
    GPtrArray * ready, gboolean * pinned, GError ** error)
{
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (buffer);
  gsize size = gst_buffer_get_size (buffer);
  g_autoptr (GstAllocator) alloc = NULL;
  gsize offset = 0;
  guint index = 0;

  *pinned = TRUE;
  if (size == 0 || uel_buffer_is_pinned (buffer))
    return uel_cuda_uploader_submit (up, buffer, ready, error);

  alloc = get_pool (device);
  if (!meta) {
    GstBuffer *copy;
    gboolean ok;

    if (size > UEL_TRANSFER_POOL_SIZE) {
      GST_INFO ("a buffer of %" G_GSIZE_FORMAT " bytes without a tensor meta "
          "is larger than the pinned pool: copied from pageable memory",
          size);
      *pinned = FALSE;
      return uel_cuda_uploader_submit (up, buffer, ready, error);
    }
    copy = pinned_copy (alloc, buffer, 0, size, error);
    if (!copy)
      return FALSE;
    ok = uel_cuda_uploader_submit (up, copy, ready, error);
    gst_buffer_unref (copy);
    return ok;
  }

  /* the uploader releases each chunk once its copy is done, so the pool
   * refills while later chunks are being staged */
  while (offset < size) {
    gsize len = MIN (size - offset, (gsize) CHUNK);
    GstBuffer *chunk = pinned_copy (alloc, buffer, offset, len, error);
    UelTensorMeta *m;
    gboolean ok;

    if (!chunk)
      return FALSE;
    m = uel_buffer_add_tensor_meta (chunk, meta->header, meta->tensor_index,
        meta->index, meta->count);
    m->dtype = meta->dtype;
    m->n_bytes = meta->n_bytes;
    m->chunk_offset = offset;
    m->chunk_index = index++;
    m->last_chunk = offset + len == size;
    ok = uel_cuda_uploader_submit (up, chunk, ready, error);
    gst_buffer_unref (chunk);
    if (!ok)
      return FALSE;
    offset += len;
  }
  return TRUE;
}

struct _UelTransfer
{
  GstBuffer *input;             /* kept for a retry from pageable memory */
  gint device;
  UelDType convert_to;
  gchar *name;                  /* "tensor 'x': " for errors, or "" */
  UelCudaUploader *uploader;    /* copies queued and not waited for */
  GPtrArray *ready;
  gboolean pinned;              /* the queued copies go from pinned memory */
  gboolean retry;               /* pageable copies may replace them */
  gboolean settled;
  GstBuffer *result;
  GError *error;
};

static void
stop_copies (UelTransfer * t)
{
  g_clear_pointer (&t->uploader, uel_cuda_uploader_free);
  g_clear_pointer (&t->ready, g_ptr_array_unref);
}

/* Queues the copies of @t's tensor, pinned or from pageable memory. */
static gboolean
start_copies (UelTransfer * t, gboolean try_pinned, GError ** error)
{
  gboolean ok;

  t->uploader = uel_cuda_uploader_new (t->device, t->convert_to, 2, error);
  if (!t->uploader)
    return FALSE;
  t->ready = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_buffer_unref);
  t->retry = try_pinned;
  if (try_pinned) {
    ok = upload (t->uploader, t->input, t->device, t->ready, &t->pinned,
        error);
  } else {
    t->pinned = FALSE;
    ok = uel_cuda_uploader_submit (t->uploader, t->input, t->ready, error);
  }
  if (!ok)
    stop_copies (t);
  return ok;
}

/* Waits for the queued copies: the device tensor, or NULL. */
static GstBuffer *
finish_copies (UelTransfer * t, GError ** error)
{
  GstBuffer *out = NULL;

  if (uel_cuda_uploader_drain (t->uploader, t->ready, error)) {
    if (t->ready->len == 1)
      out = gst_buffer_ref (g_ptr_array_index (t->ready, 0));
    else
      g_set_error (error, UEL_ERROR, UEL_ERROR_CUDA, "the upload delivered "
          "%u tensors instead of one", t->ready->len);
  }
  stop_copies (t);
  return out;
}

static void
settle (UelTransfer * t, GstBuffer * result, GError * error)
{
  t->settled = TRUE;
  t->result = result;
  t->error = error;
  gst_clear_buffer (&t->input);
}

/**
 * uel_transfer_to_gpu_pinned_async: (skip)
 * @buffer: (transfer none): a whole tensor in host memory (with or without
 *   a #UelTensorMeta; without one, its bytes count as `U8`)
 * @device: the CUDA device (-1 = the current one)
 * @dtype: %UEL_DTYPE_INVALID to keep the tensor's dtype, or F32, F16,
 *   BF16, F8_E4M3 or F8_E5M2 to convert a floating-point tensor on the way
 *   (see uel_convert_supported())
 * @error: return location for a #GError
 *
 * Not introspectable, like uel_transfer_wait() and uel_transfer_free(): a
 * #UelTransfer belongs to one owner, with no reference count to hand to a
 * binding; bindings call uel_transfer_to_gpu_pinned().
 *
 * Starts copying a tensor to a CUDA device through pinned memory and
 * returns without waiting for the copy: the Python loader's
 * `transfer_to_gpu_pinned(..., non_blocking=True)`.  uel_transfer_wait()
 * gives the result, as uel_transfer_to_gpu_pinned() would have returned
 * it; uel_transfer_free() then releases the transfer.
 *
 * The copies run on a CUDA stream of the transfer's own.  A tensor already
 * in pinned memory is queued at once; a pageable one is first staged into
 * the pinned pool on the calling thread, chunk after chunk, so the call
 * returns once all of it is staged (at most the pool's size, 64 MiB, is
 * then still on its way).  @buffer is kept until the transfer is settled.
 *
 * The fallbacks are uel_transfer_to_gpu_pinned()'s.  Without a usable
 * device the transfer is settled at once: uel_transfer_wait() returns the
 * host tensor without waiting, and the call has counted the fallback.
 * When the pinned copy fails, the tensor is copied from pageable memory
 * instead: at once when queuing it fails, in uel_transfer_wait() when the
 * copy itself fails.
 *
 * Each transfer counts once in uel_pinned_transfer_get_stats(), when its
 * outcome is known: in this call without a device, in uel_transfer_wait()
 * otherwise.  A transfer freed without being waited for is not counted.
 *
 * Unlike PyTorch's non-blocking copies, which later work on the same CUDA
 * stream is ordered after, nothing orders the caller's streams after this
 * copy: the device memory may only be used once uel_transfer_wait() has
 * returned it.
 *
 * Returns: (transfer full) (nullable): the transfer, or %NULL with @error
 *   set: %UEL_ERROR_INVALID_ARGUMENT for a chunk of a tensor or a
 *   conversion that is not supported, %UEL_ERROR_CUDA when even queuing a
 *   copy from pageable memory failed
 */
UelTransfer *
uel_transfer_to_gpu_pinned_async (GstBuffer * buffer, gint device,
    UelDType dtype, GError ** error)
{
  UelTensorMeta *meta;
  UelDType from;
  UelDType convert_to = UEL_DTYPE_INVALID;
  GError *err = NULL;
  UelTransfer *t;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  debug_init ();

  meta = uel_buffer_get_tensor_meta (buffer);
  if (meta && (meta->chunk_offset != 0 || !meta->last_chunk
          || gst_buffer_get_size (buffer) != meta->n_bytes)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "tensor '%s': the buffer holds a chunk (%" G_GSIZE_FORMAT " bytes "
        "from offset %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT "): "
        "transfer whole tensors", uel_tensor_meta_get_name (meta),
        gst_buffer_get_size (buffer), meta->chunk_offset, meta->n_bytes);
    return NULL;
  }
  from = meta ? meta->dtype : UEL_DTYPE_U8;
  if (dtype != UEL_DTYPE_INVALID && dtype != from) {
    if (!uel_convert_supported (from, dtype)) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
          "%s%s%scannot convert %s to %s: only F32, F16, BF16, F8_E4M3 and "
          "F8_E5M2 convert into one another, and F64 to each of them",
          meta ? "tensor '" :
          "", meta ? uel_tensor_meta_get_name (meta) : "", meta ? "': " : "",
          uel_dtype_to_string (from), uel_dtype_to_string (dtype));
      return NULL;
    }
    convert_to = dtype;
  }

  t = g_new0 (UelTransfer, 1);
  t->input = gst_buffer_ref (buffer);
  t->device = device;
  t->convert_to = convert_to;
  t->name = meta ? g_strdup_printf ("tensor '%s': ",
      uel_tensor_meta_get_name (meta)) : g_strdup ("");

  if (convert_to == UEL_DTYPE_INVALID
      && all_memory (buffer, uel_memory_is_cuda)) {
    settle (t, gst_buffer_ref (buffer), NULL);
    return t;
  }

  if (!uel_cuda_device_check (device, &err)) {
    GstBuffer *host;

    GST_INFO ("%sno CUDA device (%s): the tensor stays in host memory",
        t->name, err->message);
    g_clear_error (&err);
    count (FALSE);
    if (convert_to == UEL_DTYPE_INVALID)
      host = gst_buffer_ref (buffer);
    else if (!(host = convert_on_host (buffer, from, convert_to, error)))
      goto failed;
    settle (t, host, NULL);
    return t;
  }

  if (!start_copies (t, TRUE, &err)) {
    /* as the seed does when pinning fails: a plain copy */
    GST_WARNING ("%spinned transfer failed (%s): copying from pageable "
        "memory", t->name, err->message);
    g_clear_error (&err);
    if (!start_copies (t, FALSE, error)) {
      g_prefix_error (error, "%s", t->name);
      goto failed;
    }
  }
  return t;

failed:
  uel_transfer_free (t);
  return NULL;
}

/**
 * uel_transfer_wait: (skip)
 * @transfer: a #UelTransfer
 * @error: return location for a #GError
 *
 * Waits until @transfer's copies have arrived (the tensor converted, when
 * a conversion was asked for) and gives the tensor, as
 * uel_transfer_to_gpu_pinned() returns it: device memory that any CUDA
 * stream may use from now on, or the host tensor of a fallback.  When the
 * pinned copy failed, the tensor is copied again from pageable memory
 * before this returns.
 *
 * Waiting again gives the same result again: another reference to the
 * same buffer, or the same error.  uel_transfer_free() must still be
 * called.
 *
 * Returns: (transfer full) (nullable): the tensor, or %NULL with a
 *   %UEL_ERROR_CUDA error naming the tensor when even the pageable copy
 *   failed
 */
GstBuffer *
uel_transfer_wait (UelTransfer * transfer, GError ** error)
{
  UelTransfer *t = transfer;
  GError *err = NULL;
  GstBuffer *out;

  g_return_val_if_fail (t != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!t->settled) {
    out = finish_copies (t, &err);
    if (!out && t->retry) {
      GST_WARNING ("%spinned transfer failed (%s): copying from pageable "
          "memory", t->name, err->message);
      g_clear_error (&err);
      if (start_copies (t, FALSE, &err))
        out = finish_copies (t, &err);
    }
    if (out)
      count (t->pinned);
    else
      g_prefix_error (&err, "%s", t->name);
    settle (t, out, err);
  }
  if (t->error) {
    g_propagate_error (error, g_error_copy (t->error));
    return NULL;
  }
  return gst_buffer_ref (t->result);
}

/**
 * uel_transfer_free: (skip)
 * @transfer: (transfer full) (nullable): a #UelTransfer
 *
 * Releases @transfer: its reference to the result, and, when it was never
 * waited for, its copies (waited for first, as the device memory and the
 * source must outlive them; their tensor is dropped, uncounted) and its
 * reference to the source tensor.
 */
void
uel_transfer_free (UelTransfer * transfer)
{
  if (!transfer)
    return;
  if (transfer->uploader) {
    GError *err = NULL;

    if (!uel_cuda_uploader_drain (transfer->uploader, NULL, &err)) {
      GST_WARNING ("%sa transfer freed without waiting for it failed: %s",
          transfer->name, err->message);
      g_clear_error (&err);
    }
  }
  stop_copies (transfer);
  gst_clear_buffer (&transfer->input);
  gst_clear_buffer (&transfer->result);
  g_clear_error (&transfer->error);
  g_free (transfer->name);
  g_free (transfer);
}

/**
 * uel_transfer_to_gpu_pinned:
 * @buffer: (transfer none): a whole tensor in host memory (with or without
 *   a #UelTensorMeta; without one, its bytes count as `U8`)
 * @device: the CUDA device (-1 = the current one)
 * @dtype: %UEL_DTYPE_INVALID to keep the tensor's dtype, or F32, F16,
 *   BF16, F8_E4M3 or F8_E5M2 to convert a floating-point tensor on the way
 *   (see uel_convert_supported())
 * @error: return location for a #GError
 *
 * Copies a tensor to a CUDA device through pinned memory, asynchronously
 * on its own CUDA stream, and waits until it has arrived: the Python
 * loader's `transfer_to_gpu_pinned()` (uel_transfer_to_gpu_pinned_async()
 * followed by uel_transfer_wait()).  The result is a new buffer of CUDA
 * device memory (map it with `GST_MAP_READ | UEL_MAP_CUDA` for the device
 * pointer) with the tensor's meta, its dtype and size updated when it was
 * converted; it counts as a pinned transfer.
 *
 * The fallback is graceful, as in the Python loader, and counts as a
 * fallback: without a usable device (no CUDA toolkit at build time, no
 * driver, no device, a bad @device), the tensor stays in host memory: the
 * result is @buffer itself (another reference), or a converted host copy
 * when @dtype asks for a conversion.  When the pinned copy fails on a
 * device that works, the tensor is copied from pageable memory instead.  A
 * buffer already in device memory is returned as it is, uncounted, unless
 * it must be converted.
 *
 * Safe to call from several threads.
 *
 * Returns: (transfer full) (nullable): the tensor on the device (or, as a
 *   fallback, in host memory), or %NULL with @error set:
 *   %UEL_ERROR_INVALID_ARGUMENT for a chunk of a tensor or a conversion
 *   that is not supported, %UEL_ERROR_CUDA when even the pageable copy
 *   failed
 */
GstBuffer *
uel_transfer_to_gpu_pinned (GstBuffer * buffer, gint device, UelDType dtype,
    GError ** error)
{
  g_autoptr (UelTransfer) t = NULL;

  t = uel_transfer_to_gpu_pinned_async (buffer, device, dtype, error);
  return t ? uel_transfer_wait (t, error) : NULL;
}

/**
 * uel_pinned_transfer_get_stats:
 * @pinned: (out) (optional): transfers made through pinned memory
 * @fallback: (out) (optional): transfers that fell back (no device, or
 *   from pageable memory)
 *
 * The counters of uel_transfer_to_gpu_pinned() in this process since the
 * last uel_pinned_transfer_reset_stats(): the Python loader's
 * `get_pinned_transfer_stats()`.
 */
void
uel_pinned_transfer_get_stats (guint64 * pinned, guint64 * fallback)
{
  g_mutex_lock (&transfer_lock);
  if (pinned)
    *pinned = n_pinned;
  if (fallback)
    *fallback = n_fallback;
  g_mutex_unlock (&transfer_lock);
}

/**
 * uel_pinned_transfer_reset_stats:
 *
 * Sets both counters of uel_transfer_to_gpu_pinned() back to zero.
 */
void
uel_pinned_transfer_reset_stats (void)
{
  g_mutex_lock (&transfer_lock);
  n_pinned = n_fallback = 0;
  g_mutex_unlock (&transfer_lock);
}
