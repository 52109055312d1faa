/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * UelTensorStream, what uel_loader_async_stream() returns: a thread of its
 * own reads the tensors through a UelReader and hands them to the caller
 * a batch at a time (the SECTION in uel-loader.c documents both).
 */
#include "config.h"

#include "uel-cuda-private.h"
#include "uel-cudamem.h"
#include "uel-error.h"
#include "uel-live-counter-private.h"
#include "uel-loader.h"
#include "uel-loader-private.h"
#include "uel-meta.h"
#include "uel-pinned.h"
#include "uel-reader-private.h"
#include "uel-select.h"

#define GST_CAT_DEFAULT uel_loader_debug
/* the location for messages: a URL without its credentials */
#define LOCATION(loader) \
  uel_header_get_location (uel_loader_get_header (loader))

/* How long a caller waiting for a batch looks again before it sleeps. */
#define STREAM_SPIN_US 50
#if defined(__x86_64__) || defined(__i386__)
#define SPIN_PAUSE() __builtin_ia32_pause ()
#else
#define SPIN_PAUSE() G_STMT_START { } G_STMT_END
#endif

struct _UelTensorStream
{
  GObject parent;

  UelLoader *loader;
  UelReader *reader;            /* the reading thread's */
  GstAllocator *pool;           /* pin_memory: the pinned pool, or NULL */
  GThread *thread;
  guint batch_size;
  guint prefetch_batches;
  guint n_tensors;              /* in the stream */
  guint64 pool_size;
  GstBufferPool *slots;         /* direct_gpu: the device slots, or NULL */
  gpointer cuda_stream;         /* ... and the stream their copies run on */
  GPtrArray *staged;            /* host buffers whose copies are queued */

  /* between the reading thread and the caller: each waits on cond, and
   * is woken only when it says it waits (a wake-up is a system call, and
   * a batch of small tensors takes microseconds) */
  GMutex lock;
  GCond cond;
  gboolean reader_waits;
  gboolean caller_waits;
  gint n_batches;               /* atomic: batches.length, read unlocked */
  GQueue batches;               /* GPtrArray *, read and not yet taken */
  guint64 queued_tensors;
  guint64 queued_bytes;
  gboolean finished;            /* the reading thread is done */
  GError *error;                /* ... because of this */
  gboolean stopping;            /* the caller stopped the stream */

  /* the caller's */
  gboolean done;                /* no more batches */
  UelLiveCounter *counter;
  UelTensorStreamStats stats;   /* under lock */
};

G_DEFINE_TYPE (UelTensorStream, uel_tensor_stream, G_TYPE_OBJECT);

static void
uel_tensor_stream_finalize (GObject * object)
{
  UelTensorStream *self = UEL_TENSOR_STREAM (object);

  uel_tensor_stream_stop (self);
  g_clear_object (&self->reader);
  gst_clear_object (&self->pool);
  if (self->slots) {
    /* slots still held go back to an inactive pool: freed then */
    gst_buffer_pool_set_active (self->slots, FALSE);
    gst_clear_object (&self->slots);
  }
  g_clear_pointer (&self->cuda_stream, uel_cuda_stream_free);
  g_clear_pointer (&self->staged, g_ptr_array_unref);
  g_clear_object (&self->loader);
  g_clear_error (&self->error);
  uel_live_counter_unref (self->counter);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (uel_tensor_stream_parent_class)->finalize (object);
}

static void
uel_tensor_stream_class_init (UelTensorStreamClass * klass)
{
  G_OBJECT_CLASS (klass)->finalize = uel_tensor_stream_finalize;
}

static void
uel_tensor_stream_init (UelTensorStream * self)
{
  self->counter = uel_live_counter_new ();
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  g_queue_init (&self->batches);
}

/* The pinned pool must hold every tensor that can be alive at once
 * (see uel_tensor_stream_get_max_live_tensors()), or the reader would wait
 * for memory that a caller holding its batches never gives back: the
 * largest sum of that many consecutive tensors, plus the largest tensor as
 * room against fragmentation. */
static guint64
pool_size_for (UelHeader * header, GArray * selected, guint64 window)
{
  guint64 sum = 0, best = 0, largest = 0;

  for (guint i = 0; i < selected->len; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (header,
        g_array_index (selected, guint, i));
    guint64 s = (t->n_bytes + 4095) / 4096 * 4096;

    sum += s;
    if (i >= window)
      sum -= (uel_header_get_tensor (header, g_array_index (selected, guint,
                  i - window))->n_bytes + 4095) / 4096 * 4096;
    best = MAX (best, sum);
    largest = MAX (largest, s);
  }
  return MAX (best + largest, G_GUINT64_CONSTANT (2) << 20);
}

/* The device slots of a direct_gpu stream, as the Python loader sizes its
 * GPU pool: (max_in_flight + max_workers) * 2 + 2 slots of the largest
 * tensor streamed, with its max_workers = min (16, max (4, batch_size))
 * and max_in_flight = max (max_workers, prefetch_batches * batch_size);
 * never more slots than tensors with bytes.  All of them allocated now, as
 * the Python pool's are.  FALSE when they cannot be had. */
static gboolean
make_slots (UelTensorStream * self, UelHeader * header, GArray * selected,
    GError ** error)
{
  guint64 workers = MIN (16, MAX (4, self->batch_size));
  guint64 in_flight = MAX (workers, (guint64) self->prefetch_batches *
      self->batch_size);
  guint64 n_slots = (in_flight + workers) * 2 + 2, n_data = 0;
  guint64 slot_size = 0, free_bytes = 0;
  GstAllocator *alloc;
  GstStructure *config;

  for (guint i = 0; i < selected->len; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (header,
        g_array_index (selected, guint, i));

    slot_size = MAX (slot_size, t->n_bytes);
    n_data += t->n_bytes > 0;
  }
  n_slots = MIN (n_slots, n_data);
  if (n_slots == 0)
    return TRUE;
  /* untrusted sizes: refuse before asking the device for them */
  if (!uel_cuda_device_memory (-1, &free_bytes, NULL, error))
    return FALSE;
  if (slot_size > G_MAXSIZE || slot_size > free_bytes / n_slots) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: %"
        G_GUINT64_FORMAT " device slots of %" G_GUINT64_FORMAT " bytes (the "
        "largest tensor streamed) do not fit the device's %" G_GUINT64_FORMAT
        " free bytes", LOCATION (self->loader), n_slots,
        slot_size, free_bytes);
    return FALSE;
  }
  alloc = uel_cuda_allocator_new (-1, error);
  if (!alloc)
    return FALSE;
  self->slots = gst_buffer_pool_new ();
  config = gst_buffer_pool_get_config (self->slots);
  gst_buffer_pool_config_set_params (config, NULL, (guint) MIN (slot_size,
          G_MAXUINT), (guint) n_slots, (guint) n_slots);
  gst_buffer_pool_config_set_allocator (config, alloc, NULL);
  gst_object_unref (alloc);
  if (slot_size > G_MAXUINT || !gst_buffer_pool_set_config (self->slots,
          config) || !gst_buffer_pool_set_active (self->slots, TRUE)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: cannot "
        "allocate %" G_GUINT64_FORMAT " device slots of %" G_GUINT64_FORMAT
        " bytes", LOCATION (self->loader), n_slots,
        slot_size);
    gst_clear_object (&self->slots);
    return FALSE;
  }
  self->cuda_stream = uel_cuda_stream_new (error);
  if (!self->cuda_stream) {
    gst_buffer_pool_set_active (self->slots, FALSE);
    gst_clear_object (&self->slots);
    return FALSE;
  }
  self->staged = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_buffer_unref);
  GST_INFO ("%s: direct GPU: %" G_GUINT64_FORMAT " device slots of %"
      G_GUINT64_FORMAT " bytes", LOCATION (self->loader),
      n_slots, slot_size);
  return TRUE;
}

/* direct_gpu: the tensor @host (taken) in a device slot, its copy queued
 * on the stream's CUDA stream (the batch waits for it before it is handed
 * over).  Waits for a free slot: the loader holds each until
 * uel_loader_mark_processed().  NULL with @error set on a failure, NULL
 * without when the stream stopped while waiting. */
static GstBuffer *
to_device (UelTensorStream * self, GstBuffer * host, GError ** error)
{
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (host);
  gsize size = gst_buffer_get_size (host);
  GstBuffer *slot = NULL;
  GstMapInfo dev, src;
  gboolean ok;

  if (size == 0)
    return host;
  if (gst_buffer_pool_acquire_buffer (self->slots, &slot, NULL) !=
      GST_FLOW_OK) {
    gst_buffer_unref (host);
    return NULL;
  }
  if (!gst_buffer_map (slot, &dev, GST_MAP_WRITE | UEL_MAP_CUDA)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_CUDA, "tensor '%s': cannot map "
        "its device slot", uel_tensor_meta_get_name (meta));
    gst_buffer_unref (slot);
    gst_buffer_unref (host);
    return NULL;
  }
  gst_buffer_map (host, &src, GST_MAP_READ);
  ok = uel_cuda_memcpy_h2d_async (dev.data, src.data, size,
      self->cuda_stream, error);
  gst_buffer_unmap (host, &src);
  gst_buffer_unmap (slot, &dev);
  if (!ok) {
    g_prefix_error (error, "tensor '%s': ", uel_tensor_meta_get_name (meta));
    gst_buffer_unref (slot);
    gst_buffer_unref (host);
    return NULL;
  }
  gst_buffer_resize (slot, 0, (gssize) size);
  gst_buffer_copy_into (slot, host, GST_BUFFER_COPY_TIMESTAMPS |
      GST_BUFFER_COPY_META, 0, -1);
  GST_BUFFER_OFFSET (slot) = GST_BUFFER_OFFSET (host);
  GST_BUFFER_OFFSET_END (slot) = GST_BUFFER_OFFSET_END (host);
  /* the host bytes stay until the copy is done */
  g_ptr_array_add (self->staged, host);
  uel_loader_hold_device_tensor (self->loader,
      uel_tensor_meta_get_name (meta), slot);
  return slot;
}

/* The reading thread: a batch at a time, once there is room for it among
 * the prefetched ones, so that the batches read and not yet taken never
 * exceed prefetch_batches. */
static gpointer
stream_thread (gpointer data)
{
  UelTensorStream *self = data;
  guint delivered = 0;
  GError *err = NULL;
  gboolean more = TRUE;

  while (more) {
    GPtrArray *batch;
    guint64 bytes = 0, ahead;
    guint free_after;

    g_mutex_lock (&self->lock);
    while (!self->stopping && self->batches.length >= self->prefetch_batches) {
      self->reader_waits = TRUE;
      g_cond_wait (&self->cond, &self->lock);
    }
    self->reader_waits = FALSE;
    /* the batches that may still be read after this one: the room the
     * reader may read ahead into (more may free up; this is the least) */
    free_after = self->prefetch_batches - 1 - self->batches.length;
    g_mutex_unlock (&self->lock);
    if (g_atomic_int_get (&self->stopping))
      break;

    /* sized for what is left, not for the batch size asked: a batch of
     * G_MAXUINT tensors is the whole stream, not 32 GiB of slots */
    batch = g_ptr_array_new_full (MIN (self->batch_size,
            self->n_tensors - delivered), (GDestroyNotify) gst_buffer_unref);
    while (batch->len < self->batch_size) {
      GstBuffer *buf;

      /* reads ahead (runs of small tensors, parts of large ones) stay
       * within this batch and the prefetched ones still to come, all
       * counted in the bound */
      ahead = (guint64) self->batch_size - batch->len +
          (guint64) self->batch_size * free_after;
      uel_reader_set_max_ahead (self->reader, (guint) MIN (ahead,
              G_MAXUINT));
      buf = uel_reader_next (self->reader, &err);
      if (buf && self->slots)
        buf = to_device (self, buf, &err);

      if (!buf) {
        more = FALSE;
        break;
      }
      uel_live_counter_track (self->counter, buf);
      bytes += gst_buffer_get_size (buf);
      g_ptr_array_add (batch, buf);
    }
    delivered += batch->len;
    /* the batch is handed over once its bytes are on the device, as the
     * Python loader waits on each tensor's event before it yields it */
    if (self->staged && self->staged->len > 0) {
      if (!uel_cuda_stream_sync (self->cuda_stream, err ? NULL : &err)) {
        more = FALSE;
        g_ptr_array_set_size (batch, 0);
      }
      g_ptr_array_set_size (self->staged, 0);
    }

    g_mutex_lock (&self->lock);
    if (batch->len > 0 && !self->stopping) {
      g_queue_push_tail (&self->batches, batch);
      g_atomic_int_inc (&self->n_batches);
      self->queued_tensors += batch->len;
      self->queued_bytes += bytes;
      self->stats.peak_queued_tensors = MAX (self->stats.peak_queued_tensors,
          self->queued_tensors);
      self->stats.peak_queued_bytes = MAX (self->stats.peak_queued_bytes,
          self->queued_bytes);
      batch = NULL;
    }
    if (!more) {
      g_atomic_int_set (&self->finished, TRUE);
      self->error = g_steal_pointer (&err);
    }
    if (self->caller_waits || self->finished)
      g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
    if (batch)
      g_ptr_array_unref (batch);
  }
  g_clear_error (&err);
  uel_reader_stop (self->reader);
  g_mutex_lock (&self->lock);
  g_atomic_int_set (&self->finished, TRUE);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  return NULL;
}

/**
 * uel_loader_async_stream:
 * @loader: a #UelLoader
 * @keys: (array zero-terminated=1) (nullable): the names of the tensors to
 *   stream, or %NULL for all of them
 * @batch_size: tensors per batch (at least 1; any larger value, G_MAXUINT
 *   included, is fine: a batch never holds more than the stream)
 * @prefetch_batches: batches read ahead while the caller works (at least
 *   1)
 * @pin_memory: place the tensors in pinned (page-locked) host memory,
 *   ready for fast copies to a GPU; without a CUDA device the memory is
 *   plain page-aligned host memory
 * @error: return location for a #GError
 *
 * Streams tensors in batches, as the Python loader's `async_stream()`: a
 * thread reads them through a #UelReader (large tensors in parallel parts)
 * while the caller works, and hands them over a batch at a time.  With
 * @pin_memory the thread reads straight into one pinned pool, pinned
 * once, sized to hold every tensor that can be alive at once (see
 * uel_tensor_stream_get_max_live_tensors()).
 *
 * Tensors come in stream order (see uel_loader_keys()), whatever the order
 * of @keys; a name given twice is streamed once; names are looked up as
 * they are (no patterns).  Each batch holds @batch_size tensors, the last
 * one fewer.  The stream reads from the file in either mode of the loader:
 * preloaded tensors are neither used nor freed by it.
 *
 * Memory is bounded as in the Python loader: at most @prefetch_batches
 * batches are read ahead (counting the one being read), and reading waits
 * while they are all there; nothing is read beyond them (see
 * uel_tensor_stream_get_max_live_tensors()).
 *
 * Returns: (transfer full) (nullable): the stream, or %NULL with @error
 *   set: %UEL_ERROR_INVALID_ARGUMENT for an unknown name or a zero size,
 *   the reader's error when the first file cannot be opened (it changed
 *   since the loader validated it, say), %UEL_ERROR_NO_MEMORY when the
 *   pinned pool cannot be had
 */
UelTensorStream *
uel_loader_async_stream (UelLoader * loader, const gchar * const *keys,
    guint batch_size, guint prefetch_batches, gboolean pin_memory,
    GError ** error)
{
  g_autoptr (UelTensorStream) self = NULL;
  g_autoptr (UelTensorFilter) filter = uel_tensor_filter_new ();
  g_autoptr (GArray) selected = NULL;
  UelHeader *header;

  g_return_val_if_fail (uel_loader_is_ready (loader), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  header = uel_loader_get_header (loader);

  if (batch_size == 0 || prefetch_batches == 0) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "batch_size (%u) and prefetch_batches (%u) must be at least 1",
        batch_size, prefetch_batches);
    return NULL;
  }
  if (keys) {
    for (guint i = 0; keys[i]; i++) {
      if (!uel_loader_get_tensor_info (loader, keys[i], error))
        return NULL;
      uel_tensor_filter_add_name (filter, keys[i]);
    }
    if (!keys[0])
      selected = g_array_new (FALSE, FALSE, sizeof (guint));
  }
  if (!selected)
    selected = uel_tensor_filter_select (filter, header, NULL, error);
  if (!selected)
    return NULL;

  self = g_object_new (UEL_TYPE_TENSOR_STREAM, NULL);
  self->loader = g_object_ref (loader);
  self->batch_size = batch_size;
  self->prefetch_batches = prefetch_batches;
  self->n_tensors = selected->len;
  if (selected->len == 0) {
    self->done = TRUE;
    return g_steal_pointer (&self);
  }

  self->reader = uel_reader_new (header);
  uel_reader_set_tensors (self->reader, (const guint *) selected->data,
      selected->len);
  if (uel_loader_get_direct_gpu (loader)) {
    g_autoptr (GError) err = NULL;

    /* the Python loader's fallback when its pools cannot be had */
    if (!make_slots (self, header, selected, &err)) {
      GST_WARNING ("%s: direct GPU streaming failed (%s): falling back to "
          "host memory", LOCATION (loader), err->message);
    } else {
      /* the tensors are staged in pinned memory, as the Python loader's */
      pin_memory = TRUE;
    }
  }
  /* everything read is in a batch and counted in the bound: the reader
   * reads ahead only within the batch being filled (see stream_thread) */
  if (pin_memory) {
    self->pool_size = pool_size_for (header, selected,
        uel_tensor_stream_get_max_live_tensors (self));
    self->pool = uel_pinned_allocator_new (self->pool_size, -1);
    if (!uel_pinned_allocator_prepare (UEL_PINNED_ALLOCATOR (self->pool),
            error))
      return NULL;
    uel_reader_set_allocator (self->reader, self->pool, NULL);
  }
  if (uel_loader_get_use_mmap (loader) && !pin_memory)
    uel_reader_set_method (self->reader, UEL_READ_MMAP);
  if (!uel_reader_start (self->reader, error))
    return NULL;

  GST_DEBUG ("%s: streaming %u tensors, batches of %u, %u prefetched%s",
      LOCATION (loader), selected->len, batch_size,
      prefetch_batches, pin_memory ? ", pinned" : "");
  self->thread = g_thread_new ("uel-stream", stream_thread, self);
  return g_steal_pointer (&self);
}

/**
 * uel_tensor_stream_next:
 * @stream: a #UelTensorStream
 * @error: return location for a #GError
 *
 * Waits for the next batch of tensors, each a #GstBuffer with its
 * #UelTensorMeta (uel_tensor_meta_get_name() gives its key).  The caller
 * owns the batch: freeing it (or the buffers) gives their memory back to
 * the stream, which is what lets reading go on.  The array's free
 * function releases the buffers, hence (transfer container): bindings take
 * their own references to the buffers and free the array.
 *
 * Returns: (transfer container) (element-type GstBuffer) (nullable): the batch,
 *   or %NULL at the end of the stream (@error unset) or on an error (@error
 *   set: %UEL_ERROR_FILE_CHANGED for a file that changed, %UEL_ERROR_IO
 *   for a failed read, #G_FILE_ERROR for a shard that cannot be opened,
 *   naming the file and the tensor); after %NULL the stream is over
 */
GPtrArray *
uel_tensor_stream_next (UelTensorStream * stream, GError ** error)
{
  GPtrArray *batch;
  GError *err = NULL;

  g_return_val_if_fail (UEL_IS_TENSOR_STREAM (stream), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (stream->done)
    return NULL;
  /* A caller faster than the reader (small tensors) finds nothing ready,
   * and sleeping costs two context switches a batch (a million one-byte
   * tensors in batches of 8: 5.0 s instead of 2.4 s): look again for a
   * few microseconds first, about what a batch of small tensors takes. */
  if (g_atomic_int_get (&stream->n_batches) == 0) {
    gint64 until = g_get_monotonic_time () + STREAM_SPIN_US;

    while (g_atomic_int_get (&stream->n_batches) == 0
        && !g_atomic_int_get (&stream->finished)
        && g_get_monotonic_time () < until)
      for (guint i = 0; i < 64; i++)
        SPIN_PAUSE ();
  }
  g_mutex_lock (&stream->lock);
  while (g_queue_is_empty (&stream->batches) && !stream->finished) {
    stream->caller_waits = TRUE;
    g_cond_wait (&stream->cond, &stream->lock);
  }
  stream->caller_waits = FALSE;
  batch = g_queue_pop_head (&stream->batches);
  if (batch) {
    g_atomic_int_add (&stream->n_batches, -1);
    stream->queued_tensors -= batch->len;
    for (guint i = 0; i < batch->len; i++) {
      guint64 size = gst_buffer_get_size (g_ptr_array_index (batch, i));

      stream->queued_bytes -= size;
      stream->stats.bytes += size;
    }
    stream->stats.tensors += batch->len;
    stream->stats.batches++;
    /* room for one more batch */
    if (stream->reader_waits)
      g_cond_broadcast (&stream->cond);
  } else {
    err = g_steal_pointer (&stream->error);
  }
  g_mutex_unlock (&stream->lock);

  if (!batch) {
    if (err)
      g_propagate_error (error, err);
    uel_tensor_stream_stop (stream);
  }
  return batch;
}

/**
 * uel_tensor_stream_stop:
 * @stream: a #UelTensorStream
 *
 * Stops reading and frees the batches read ahead; later calls to
 * uel_tensor_stream_next() return %NULL.  Batches already returned stay
 * valid.  Freeing the stream stops it too.
 */
void
uel_tensor_stream_stop (UelTensorStream * stream)
{
  GPtrArray *batch;

  g_return_if_fail (UEL_IS_TENSOR_STREAM (stream));

  stream->done = TRUE;
  if (!stream->thread)
    return;
  g_mutex_lock (&stream->lock);
  stream->stopping = TRUE;
  g_cond_broadcast (&stream->cond);
  g_mutex_unlock (&stream->lock);
  /* a read waiting for pool memory that the caller holds gives up now */
  uel_reader_set_flushing (stream->reader, TRUE);
  /* ... and so does a wait for a device slot that the loader holds */
  if (stream->slots)
    gst_buffer_pool_set_flushing (stream->slots, TRUE);
  if (stream->pool)
    uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (stream->pool),
        TRUE);
  g_thread_join (g_steal_pointer (&stream->thread));
  while ((batch = g_queue_pop_head (&stream->batches)))
    g_ptr_array_unref (batch);
  g_atomic_int_set (&stream->n_batches, 0);
  stream->queued_tensors = stream->queued_bytes = 0;
}

/**
 * uel_tensor_stream_get_max_live_tensors:
 * @stream: a #UelTensorStream
 *
 * The stream's bound on tensors in memory at once, counting those read
 * ahead and those the caller holds, for a caller that keeps at most one
 * batch while it waits for the next one (as a `for batch in stream` loop
 * does): batch_size × (prefetch_batches + 2), or every tensor of the
 * stream if that is fewer.  That is the prefetched batches (the one being
 * read among them), the batch the caller takes, and the caller's previous
 * batch.
 *
 * Returns: the bound
 */
guint64
uel_tensor_stream_get_max_live_tensors (UelTensorStream * stream)
{
  guint64 bound;

  g_return_val_if_fail (UEL_IS_TENSOR_STREAM (stream), 0);
  /* no overflow: both factors are below 2^33 */
  bound = (guint64) stream->batch_size * ((guint64) stream->prefetch_batches
      + 2);
  return MIN (bound, stream->n_tensors);
}

/**
 * uel_tensor_stream_get_stats:
 * @stream: a #UelTensorStream
 * @stats: (out caller-allocates): the counters
 *
 * Reads the stream's counters; after the stream has stopped, their last
 * values.
 */
void
uel_tensor_stream_get_stats (UelTensorStream * stream,
    UelTensorStreamStats * stats)
{
  UelTensorStreamStats s;

  g_return_if_fail (UEL_IS_TENSOR_STREAM (stream));
  g_return_if_fail (stats != NULL);

  g_mutex_lock (&stream->lock);
  s = stream->stats;
  g_mutex_unlock (&stream->lock);
  uel_live_counter_get (stream->counter, &s.live_tensors, &s.live_bytes,
      &s.peak_live_tensors, &s.peak_live_bytes);
  s.pinned_pool_bytes = stream->pool_size;
  *stats = s;
}
