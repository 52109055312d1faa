/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:uel-cudamem
 * @title: CUDA device memory
 *
 * #UelCudaAllocator hands out device memory of the CUDA runtime's primary
 * context, the one PyTorch and every other runtime user in the process
 * share.  #UelCudaUploader copies tensors into it.  Both work through the
 * internal CUDA interface, so this file compiles the same without the
 * toolkit; every call then fails with %UEL_ERROR_CUDA.
 *
 * ## Mapping
 *
 * `gst_memory_map()` with `GST_MAP_READ | UEL_MAP_CUDA` (or
 * `GST_MAP_READWRITE | UEL_MAP_CUDA`) gives the device pointer.  A map
 * without %UEL_MAP_CUDA gives a host staging copy that the memory keeps
 * until it is freed: the first host map downloads the bytes, later host
 * maps reuse them without another copy for as long as nothing was written
 * on the device.  A host map with %GST_MAP_WRITE is uploaded back to the
 * device when the last such map is unmapped (a CUDA map made while one is
 * still open uploads first); a CUDA map with %GST_MAP_WRITE makes the next
 * host map download again.  Work written on the device through a CUDA map
 * must be finished (its stream synchronised) before that map is unmapped.
 * Maps of one memory and of the views gst_memory_share() made of it are
 * serialised by one lock and share one staging copy of the whole
 * allocation (a view's first host map downloads all of its parent), so
 * threads mapping at once see the same bytes and download them once.  The
 * staging copy costs host memory of the allocation's size for as long as
 * the memory lives.  Every transfer is synchronous; a failed one is logged
 * and fails the map (an upload that fails at unmap is retried by the next
 * CUDA map).
 *
 * ## Copying
 *
 * gst_memory_copy() (and so a deep gst_buffer_copy()) stays on the device:
 * the requested range is copied device to device into new memory of the
 * same allocator.
 */

#include "config.h"

#include <string.h>

#include "uel-convert.h"
#include "uel-cuda-private.h"
#include "uel-cudamem.h"
#include "uel-error.h"
#include "uel-memory-private.h"
#include "uel-meta.h"
#include "uel-pinned.h"

GST_DEBUG_CATEGORY_STATIC (uel_cudamem_debug);
#define GST_CAT_DEFAULT uel_cudamem_debug

/* device tensors start at this alignment inside a shared allocation, the
 * alignment cudaMalloc itself gives */
#define DEVICE_ALIGN ((guint64) 256)

/* one cudaMalloc shared by the tensors of a stream */
typedef struct
{
  gint ref_count;
  guint8 *base;
  guint64 size;
  guint64 used;
} Span;

typedef struct
{
  GstMemory mem;
  guint8 *dev;
  Span *span;                   /* NULL: @dev is our own cudaMalloc */
  gint device;

  /* The host side.  Only a root memory's fields are used: a view made by
   * mem_share holds copies of them, taken when it was made, which nothing
   * reads; maps of a view go through its parent's. */
  GMutex lock;
  guint8 *staging;              /* host copy of the maxsize bytes */
  gboolean staging_valid;       /* @staging holds the device's bytes */
  gboolean host_dirty;          /* @staging has writes the device lacks */
  guint host_writers;           /* host maps for writing not yet unmapped */
  guint cuda_writers;           /* CUDA maps for writing not yet unmapped */
} UelCudaMemory;

struct _UelCudaAllocator
{
  GstAllocator parent;
  gint device;
};

G_DEFINE_TYPE (UelCudaAllocator, uel_cuda_allocator, GST_TYPE_ALLOCATOR);

static void
span_unref (Span * span)
{
  if (g_atomic_int_dec_and_test (&span->ref_count)) {
    uel_cuda_free (span->base);
    g_free (span);
  }
}

static GstMemory *
cuda_memory_new (GstAllocator * allocator, guint8 * dev, gsize size,
    Span * span)
{
  UelCudaMemory *mem = g_new0 (UelCudaMemory, 1);

  mem->dev = dev;
  mem->span = span;
  mem->device = UEL_CUDA_ALLOCATOR (allocator)->device;
  g_mutex_init (&mem->lock);
  if (span)
    g_atomic_int_inc (&span->ref_count);
  gst_memory_init (GST_MEMORY_CAST (mem), 0, allocator, NULL, size, 0, 0,
      size);
  return GST_MEMORY_CAST (mem);
}

static GstMemory *
cuda_alloc (GstAllocator * allocator, gsize size,
    GstAllocationParams * params)
{
  GError *err = NULL;
  gpointer dev;

  if (!uel_cuda_set_device (UEL_CUDA_ALLOCATOR (allocator)->device, &err)
      || !uel_cuda_malloc (size, &dev, &err)) {
    GST_ERROR_OBJECT (allocator, "%s", err->message);
    g_clear_error (&err);
    return NULL;
  }
  return cuda_memory_new (allocator, dev, size, NULL);
}

static void
cuda_free (GstAllocator * allocator, GstMemory * memory)
{
  UelCudaMemory *mem = (UelCudaMemory *) memory;

  if (!memory->parent) {
    if (mem->span)
      span_unref (mem->span);
    else
      uel_cuda_free (mem->dev);
    g_free (mem->staging);
    g_mutex_clear (&mem->lock);
  }
  g_free (mem);
}

/* the memory whose lock and staging copy @memory uses */
static UelCudaMemory *
root_of (GstMemory * memory)
{
  return (UelCudaMemory *) (memory->parent ? memory->parent : memory);
}

/* Device → staging copy, with @root's lock held. */
static gboolean
download (UelCudaMemory * root)
{
  gsize n = root->mem.maxsize;
  GError *err = NULL;

  if (!root->staging) {
    root->staging = g_try_malloc (MAX (n, 1));
    if (!root->staging) {
      GST_ERROR_OBJECT (root->mem.allocator, "memory %p: no host memory for "
          "a copy of its %" G_GSIZE_FORMAT " bytes", root, n);
      return FALSE;
    }
  }
  GST_LOG_OBJECT (root->mem.allocator, "memory %p: downloading %"
      G_GSIZE_FORMAT " bytes", root, n);
  if (n > 0 && (!uel_cuda_set_device (root->device, &err)
          || !uel_cuda_memcpy_d2h (root->staging, root->dev, n, &err))) {
    GST_ERROR_OBJECT (root->mem.allocator, "memory %p: cannot read its %"
        G_GSIZE_FORMAT " bytes back from the device: %s", root, n,
        err->message);
    g_clear_error (&err);
    return FALSE;
  }
  root->staging_valid = TRUE;
  return TRUE;
}

/* Staging → device copy, with @root's lock held.  The staging copy stays
 * dirty while a host map for writing is open: it may be written again. */
static gboolean
upload (UelCudaMemory * root)
{
  gsize n = root->mem.maxsize;
  GError *err = NULL;

  GST_LOG_OBJECT (root->mem.allocator, "memory %p: uploading %"
      G_GSIZE_FORMAT " bytes", root, n);
  if (n > 0 && (!uel_cuda_set_device (root->device, &err)
          || !uel_cuda_memcpy_h2d (root->dev, root->staging, n, &err))) {
    GST_ERROR_OBJECT (root->mem.allocator, "memory %p: cannot write the "
        "host's %" G_GSIZE_FORMAT " bytes to the device: %s", root, n,
        err->message);
    g_clear_error (&err);
    return FALSE;
  }
  root->host_dirty = root->host_writers > 0;
  return TRUE;
}

static gpointer
cuda_map_full (GstMemory * memory, GstMapInfo * info, gsize maxsize)
{
  UelCudaMemory *root = root_of (memory);
  gboolean writing = (info->flags & GST_MAP_WRITE) != 0;
  gpointer data = NULL;

  g_mutex_lock (&root->lock);
  if (info->flags & UEL_MAP_CUDA) {
    /* the device must hold what the host wrote before anyone uses it */
    if (root->host_dirty && !upload (root))
      goto out;
    if (writing) {
      root->cuda_writers++;
      root->staging_valid = FALSE;
    }
    data = root->dev;
  } else {
    /* while a CUDA map for writing is open the device may change at any
     * time: no staging copy is trusted then */
    if ((!root->staging_valid || root->cuda_writers > 0) && !download (root))
      goto out;
    if (writing) {
      root->host_writers++;
      root->host_dirty = TRUE;
    }
    data = root->staging;
  }
out:
  g_mutex_unlock (&root->lock);
  return data;
}

static void
cuda_unmap_full (GstMemory * memory, GstMapInfo * info)
{
  UelCudaMemory *root = root_of (memory);

  if (!(info->flags & GST_MAP_WRITE))
    return;
  g_mutex_lock (&root->lock);
  if (info->flags & UEL_MAP_CUDA) {
    /* the device was written after the last host map: download again */
    root->cuda_writers--;
    root->staging_valid = FALSE;
  } else {
    root->host_writers--;
    /* on failure the staging copy stays dirty: the next CUDA map retries
     * the upload, and fails if it fails again */
    if (root->host_writers == 0 && root->host_dirty)
      upload (root);
  }
  g_mutex_unlock (&root->lock);
}

static GstMemory *
cuda_share (GstMemory * memory, gssize offset, gssize size)
{
  UelCudaMemory *view = (UelCudaMemory *) uel_memory_share (memory, offset,
      size, sizeof (UelCudaMemory));

  /* the parent's, which only the parent frees */
  view->staging = NULL;
  return GST_MEMORY_CAST (view);
}

/* A deep copy that stays on the device.  Like gst_memory_share(), @offset
 * counts from @memory's offset and may be negative, and @size -1 means up
 * to its end. */
static GstMemory *
cuda_copy (GstMemory * memory, gssize offset, gssize size)
{
  UelCudaMemory *root = root_of (memory);
  gssize start = (gssize) memory->offset + offset;
  GstMemory *copy = NULL;
  GError *err = NULL;

  if (size == -1)
    size = (gssize) memory->size > offset ? (gssize) memory->size - offset : 0;
  if (start < 0 || size < 0 || (gsize) start > memory->maxsize
      || (gsize) size > memory->maxsize - (gsize) start) {
    GST_ERROR_OBJECT (memory->allocator, "memory %p: cannot copy %"
        G_GSSIZE_FORMAT " bytes at "
        "%" G_GSSIZE_FORMAT ": outside its %" G_GSIZE_FORMAT " bytes",
        memory, size, start, memory->maxsize);
    return NULL;
  }

  g_mutex_lock (&root->lock);
  if (root->host_dirty && !upload (root))
    goto out;
  copy = cuda_alloc (memory->allocator, (gsize) size, NULL);
  if (!copy)
    goto out;
  if (size > 0 && !uel_cuda_memcpy_d2d (((UelCudaMemory *) copy)->dev,
          root->dev + start, (gsize) size, &err)) {
    GST_ERROR_OBJECT (memory->allocator, "memory %p: cannot copy %"
        G_GSSIZE_FORMAT " bytes on the "
        "device: %s", memory, size, err->message);
    g_clear_error (&err);
    gst_memory_unref (copy);
    copy = NULL;
  }
out:
  g_mutex_unlock (&root->lock);
  return copy;
}

static void
uel_cuda_allocator_class_init (UelCudaAllocatorClass * klass)
{
  GstAllocatorClass *aclass = GST_ALLOCATOR_CLASS (klass);

  aclass->alloc = cuda_alloc;
  aclass->free = cuda_free;
  GST_DEBUG_CATEGORY_INIT (uel_cudamem_debug, "uelcudamem", 0,
      "gst-uel CUDA device memory");
}

static void
uel_cuda_allocator_init (UelCudaAllocator * self)
{
  GstAllocator *alloc = GST_ALLOCATOR (self);

  alloc->mem_type = UEL_CUDA_MEMORY_TYPE;
  alloc->mem_map_full = cuda_map_full;
  alloc->mem_unmap_full = cuda_unmap_full;
  alloc->mem_share = cuda_share;
  alloc->mem_copy = cuda_copy;
  /* never the default: only elements that know device memory use it */
  GST_OBJECT_FLAG_SET (self, GST_ALLOCATOR_FLAG_CUSTOM_ALLOC);
}

/**
 * uel_cuda_device_check:
 * @device: a CUDA device number, or -1 for the current device
 * @error: return location for a #GError
 *
 * Returns: whether the device exists and can be made current; otherwise
 *   %FALSE with a %UEL_ERROR_CUDA error carrying CUDA's own message (no
 *   toolkit at build time, no driver, no device, a bad id)
 */
gboolean
uel_cuda_device_check (gint device, GError ** error)
{
  return uel_cuda_set_device (device, error);
}

/**
 * uel_cuda_device_memory:
 * @device: a CUDA device number, or -1 for the current device
 * @free_bytes: (out): device memory free now
 * @total_bytes: (out): device memory in all
 * @error: return location for a #GError
 *
 * Returns: %FALSE with a %UEL_ERROR_CUDA error when there is no device
 */
gboolean
uel_cuda_device_memory (gint device, guint64 * free_bytes,
    guint64 * total_bytes, GError ** error)
{
  return uel_cuda_set_device (device, error)
      && uel_cuda_mem_get_info (free_bytes, total_bytes, error);
}

/**
 * uel_cuda_allocator_new:
 * @device: the CUDA device (-1 = current)
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (nullable): an allocator of device memory, or
 *   %NULL when there is no such device
 */
GstAllocator *
uel_cuda_allocator_new (gint device, GError ** error)
{
  UelCudaAllocator *self;

  if (!uel_cuda_set_device (device, error))
    return NULL;
  self = g_object_new (UEL_TYPE_CUDA_ALLOCATOR, NULL);
  self->device = device;
  return gst_object_ref_sink (GST_ALLOCATOR (self));
}

/**
 * uel_memory_is_cuda:
 * @mem: a #GstMemory
 *
 * Returns: whether @mem is CUDA device memory
 */
gboolean
uel_memory_is_cuda (GstMemory * mem)
{
  return mem && mem->allocator && UEL_IS_CUDA_ALLOCATOR (mem->allocator);
}

/**
 * uel_cuda_memory_get_device:
 * @mem: CUDA device memory
 *
 * Returns: the device the memory lives on (-1: the one current when it was
 *   allocated)
 */
gint
uel_cuda_memory_get_device (GstMemory * mem)
{
  g_return_val_if_fail (uel_memory_is_cuda (mem), -1);
  return ((UelCudaMemory *) mem)->device;
}

/* ------------------------------------------------------------------ */
/* the uploader */

/* a host buffer whose bytes are being copied: released by the stream */
typedef struct
{
  GstBuffer *buffer;
  GstMapInfo map;
} Source;

/* a device tensor whose last copy (and conversion) is queued */
typedef struct
{
  gpointer done;                /* event after its last operation */
  GstBuffer *output;
  gpointer raw;                 /* staging memory of a conversion */
  GPtrArray *timings;           /* event pairs around its copies */
} Flight;

struct _UelCudaUploader
{
  gint device;
  UelDType convert_to;
  guint max_in_flight;
  GstAllocator *allocator;
  gpointer stream;
  GQueue flights;
  Span *span;

  /* the tensor being assembled */
  GstBuffer *out;
  guint8 *out_dev;              /* its device memory */
  guint8 *dst;                  /* where its raw bytes go */
  gpointer raw;
  guint64 expected;             /* next chunk offset */
  guint64 total;
  UelDType from;
  GPtrArray *timings;

  UelCudaUploadStats stats;
  gint64 first_us;
  gboolean warned_pageable;
};

static void
source_release (gpointer data)
{
  Source *src = data;

  /* runs on a CUDA thread once the copy is done: no CUDA calls here, and
   * freeing pinned memory only touches the pool's free list */
  gst_buffer_unmap (src->buffer, &src->map);
  gst_buffer_unref (src->buffer);
  g_free (src);
}

static void
timings_free (gpointer data)
{
  GPtrArray *t = data;

  for (guint i = 0; i < t->len; i++)
    uel_cuda_event_free (g_ptr_array_index (t, i));
  g_ptr_array_unref (t);
}

/**
 * uel_cuda_uploader_new: (skip)
 * @device: the CUDA device (-1 = current)
 * @convert_to: %UEL_DTYPE_INVALID to keep dtypes, or F32, F16, BF16, F8_E4M3
 *   or F8_E5M2 to convert floating-point tensors on the GPU
 * @max_in_flight: device tensors whose copies may be queued before the
 *   oldest is waited for
 * @error: return location for a #GError
 *
 * Not introspectable, like the rest of #UelCudaUploader: the uploader is
 * one owner's engine, with no reference count to hand to a binding;
 * bindings reach the same through the `uelcudaupload` element or
 * uel_loader_new_full() with direct_gpu set.
 *
 * Returns: (transfer full) (nullable): the uploader, or %NULL with a
 *   %UEL_ERROR_CUDA error when there is no such device
 */
UelCudaUploader *
uel_cuda_uploader_new (gint device, UelDType convert_to, guint max_in_flight,
    GError ** error)
{
  UelCudaUploader *u;
  GstAllocator *alloc = uel_cuda_allocator_new (device, error);
  gpointer stream;

  if (!alloc)
    return NULL;
  stream = uel_cuda_stream_new (error);
  if (!stream) {
    gst_object_unref (alloc);
    return NULL;
  }
  u = g_new0 (UelCudaUploader, 1);
  u->device = device;
  u->convert_to = convert_to;
  u->max_in_flight = MAX (max_in_flight, 1);
  u->allocator = alloc;
  u->stream = stream;
  g_queue_init (&u->flights);
  return u;
}

/**
 * uel_cuda_uploader_reserve: (skip)
 * @uploader: a #UelCudaUploader
 * @header: the stream's header
 * @error: return location for a #GError
 *
 * Makes one device allocation for all the tensors of @header (after
 * conversion), which the following tensors become views of: one
 * `cudaMalloc` instead of one per tensor.  Tensors that do not fit (a
 * second stream) get their own allocation.
 *
 * Returns: %FALSE when the device has not that much memory
 */
gboolean
uel_cuda_uploader_reserve (UelCudaUploader * uploader, UelHeader * header,
    GError ** error)
{
  guint64 total = 0;
  gpointer base;

  for (guint i = 0; i < uel_header_get_n_tensors (header); i++) {
    const UelTensorInfo *t = uel_header_get_tensor (header, i);
    guint64 n = t->n_bytes;

    if (uploader->convert_to != UEL_DTYPE_INVALID
        && uel_convert_supported (t->dtype, uploader->convert_to))
      n = uel_convert_output_size (t->dtype, uploader->convert_to, n);
    n = (n + DEVICE_ALIGN - 1) / DEVICE_ALIGN * DEVICE_ALIGN;
    if (!g_uint64_checked_add (&total, total, n)) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
          "%s: the tensors' total size overflows",
          uel_header_get_location (header));
      return FALSE;
    }
  }
  if (uploader->span) {
    span_unref (uploader->span);
    uploader->span = NULL;
  }
  if (total == 0)
    return TRUE;
  if (!uel_cuda_set_device (uploader->device, error)
      || !uel_cuda_malloc (total, &base, error))
    return FALSE;
  uploader->span = g_new0 (Span, 1);
  uploader->span->ref_count = 1;
  uploader->span->base = base;
  uploader->span->size = total;
  uploader->stats.allocations++;
  return TRUE;
}

static gboolean
device_alloc (UelCudaUploader * u, guint64 size, guint8 ** dev, Span ** span,
    GError ** error)
{
  Span *s = u->span;
  guint64 aligned = (size + DEVICE_ALIGN - 1) / DEVICE_ALIGN * DEVICE_ALIGN;

  if (s && s->used + aligned <= s->size) {
    *dev = s->base + s->used;
    *span = s;
    s->used += aligned;
    return TRUE;
  }
  *span = NULL;
  if (!uel_cuda_malloc (size, (gpointer *) dev, error))
    return FALSE;
  u->stats.allocations++;
  return TRUE;
}

static gboolean
complete_oldest (UelCudaUploader * u, GPtrArray * ready, GError ** error)
{
  Flight *f = g_queue_pop_head (&u->flights);
  gboolean ok = uel_cuda_event_sync (f->done, error);

  if (ok) {
    for (guint i = 0; i + 1 < f->timings->len; i += 2) {
      gfloat ms = uel_cuda_event_elapsed_ms (g_ptr_array_index (f->timings,
              i), g_ptr_array_index (f->timings, i + 1));
      if (ms > 0)
        u->stats.copy_ns += (guint64) ((gdouble) ms * 1e6);
    }
    u->stats.tensors++;
    u->stats.wall_ns = (guint64) (g_get_monotonic_time () - u->first_us) *
        1000;
  }
  if (ok && ready)
    g_ptr_array_add (ready, f->output);
  else
    gst_buffer_unref (f->output);
  uel_cuda_free (f->raw);
  uel_cuda_event_free (f->done);
  timings_free (f->timings);
  g_free (f);
  return ok;
}

static void
drop_current (UelCudaUploader * u)
{
  gst_clear_buffer (&u->out);
  if (u->raw) {
    /* queued copies may still write into it */
    uel_cuda_stream_sync (u->stream, NULL);
    uel_cuda_free (u->raw);
    u->raw = NULL;
  }
  g_clear_pointer (&u->timings, timings_free);
}

static gboolean
start_tensor (UelCudaUploader * u, GstBuffer * in, UelTensorMeta * meta,
    GError ** error)
{
  UelDType from = meta ? meta->dtype : UEL_DTYPE_U8;
  guint64 total = meta ? meta->n_bytes : gst_buffer_get_size (in);
  UelDType to = from;
  guint64 out_size = total;
  guint8 *dev;
  Span *span;
  GstMemory *mem;

  if (u->convert_to != UEL_DTYPE_INVALID && from != u->convert_to
      && uel_convert_supported (from, u->convert_to)) {
    to = u->convert_to;
    out_size = uel_convert_output_size (from, to, total);
    if (!uel_cuda_malloc (total, &u->raw, error))
      return FALSE;
  }
  if (!device_alloc (u, out_size, &dev, &span, error)) {
    uel_cuda_free (u->raw);
    u->raw = NULL;
    return FALSE;
  }
  mem = cuda_memory_new (u->allocator, dev, out_size, span);
  u->out = gst_buffer_new ();
  gst_buffer_append_memory (u->out, mem);
  if (meta) {
    UelTensorMeta *m = uel_buffer_add_tensor_meta (u->out, meta->header,
        meta->tensor_index, meta->index, meta->count);
    m->dtype = to;
    m->n_bytes = out_size;
    GST_BUFFER_OFFSET (u->out) = uel_tensor_meta_get_file_offset (meta);
    GST_BUFFER_OFFSET_END (u->out) = GST_BUFFER_OFFSET (u->out) + total;
  }
  u->out_dev = dev;
  u->dst = u->raw ? u->raw : dev;
  u->expected = 0;
  u->total = total;
  u->from = from;
  u->timings = g_ptr_array_new ();
  return TRUE;
}

/**
 * uel_cuda_uploader_submit: (skip)
 * @uploader: a #UelCudaUploader
 * @buffer: (transfer none): a tensor, or the next chunk of one, in host
 *   memory (pinned memory copies asynchronously; pageable memory works,
 *   slower)
 * @ready: (element-type GstBuffer) (transfer full): where device tensors
 *   whose copies have finished are appended
 * @error: return location for a #GError
 *
 * Queues the copy of @buffer's bytes to the device and returns without
 * waiting for it, unless more than max-in-flight tensors are queued: then
 * the oldest is waited for and appended to @ready.  @buffer is kept until
 * its copy has finished.  Chunks must come in order, each tensor's from
 * offset 0 to its last chunk.
 *
 * Returns: %FALSE on a CUDA failure or chunks out of order
 */
gboolean
uel_cuda_uploader_submit (UelCudaUploader * uploader, GstBuffer * buffer,
    GPtrArray * ready, GError ** error)
{
  UelCudaUploader *u = uploader;
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (buffer);
  guint64 offset = meta ? meta->chunk_offset : 0;
  gboolean last = meta ? meta->last_chunk : TRUE;
  gsize size = gst_buffer_get_size (buffer);
  const gchar *name = meta ? uel_tensor_meta_get_name (meta) : "(no meta)";
  gpointer t0, t1;
  gboolean timed;
  Source *src;

  if (!uel_cuda_set_device (u->device, error))
    return FALSE;
  if (u->first_us == 0)
    u->first_us = g_get_monotonic_time ();

  if (offset == 0) {
    if (u->out) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
          "tensor '%s' starts before the previous tensor's last chunk", name);
      drop_current (u);
      return FALSE;
    }
    if (!start_tensor (u, buffer, meta, error))
      return FALSE;
  } else if (!u->out) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "tensor '%s': chunk at byte %" G_GUINT64_FORMAT " arrived without "
        "the chunks before it", name, offset);
    return FALSE;
  }
  /* without a meta the buffer is a whole tensor of its own size */
  if (meta && !uel_tensor_meta_is_next_chunk (meta, size, u->expected)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "tensor '%s': chunk [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
        ")%s out of order or does not fit (expected byte %" G_GUINT64_FORMAT
        " of %" G_GUINT64_FORMAT ")", name, offset, offset + size,
        last ? " (last)" : "", u->expected, u->total);
    drop_current (u);
    return FALSE;
  }

  if (size > 0) {
    src = g_new0 (Source, 1);
    if (!gst_buffer_map (buffer, &src->map, GST_MAP_READ)) {
      g_free (src);
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
          "tensor '%s': cannot map the input buffer", name);
      drop_current (u);
      return FALSE;
    }
    src->buffer = gst_buffer_ref (buffer);
    /* several memories map as one merged, pageable copy */
    if (!(gst_buffer_n_memory (buffer) == 1 && uel_buffer_is_pinned (buffer))
        && !uel_cuda_host_is_pinned (src->map.data)) {
      u->stats.pageable++;
      if (!u->warned_pageable) {
        GST_DEBUG ("tensor '%s' is in pageable memory: the copy is staged "
            "by the driver and slower (put uelpin before uelcudaupload)",
            name);
        u->warned_pageable = TRUE;
      }
    }
    /* events around the copy measure its time on the GPU */
    t0 = uel_cuda_event_new (NULL);
    t1 = uel_cuda_event_new (NULL);
    timed = t0 && t1 && uel_cuda_event_record (t0, u->stream, NULL);
    if (!uel_cuda_memcpy_h2d_async (u->dst + offset, src->map.data, size,
            u->stream, error)) {
      source_release (src);
      uel_cuda_event_free (t0);
      uel_cuda_event_free (t1);
      drop_current (u);
      return FALSE;
    }
    if (timed && uel_cuda_event_record (t1, u->stream, NULL)) {
      g_ptr_array_add (u->timings, t0);
      g_ptr_array_add (u->timings, t1);
    } else {
      uel_cuda_event_free (t0);
      uel_cuda_event_free (t1);
    }
    /* the source goes back to its pool when the stream gets past here */
    if (!uel_cuda_launch_host_func (u->stream, source_release, src, error)) {
      uel_cuda_stream_sync (u->stream, NULL);
      source_release (src);
      drop_current (u);
      return FALSE;
    }
    u->stats.bytes += size;
  }
  u->expected = offset + size;

  if (last) {
    Flight *f = g_new0 (Flight, 1);
    UelTensorMeta *m = uel_buffer_get_tensor_meta (u->out);

    if (u->raw) {
      guint64 n = u->total * 8 / MAX (uel_dtype_get_bits (u->from), 1);

      if (!uel_cuda_convert (u->from, m ? m->dtype : u->from, u->raw,
              u->out_dev, n, u->stream, error)) {
        g_free (f);
        drop_current (u);
        return FALSE;
      }
      u->stats.converted++;
    }
    f->done = uel_cuda_event_new (error);
    if (!f->done || !uel_cuda_event_record (f->done, u->stream, error)) {
      uel_cuda_event_free (f->done);
      g_free (f);
      drop_current (u);
      return FALSE;
    }
    f->output = g_steal_pointer (&u->out);
    f->raw = g_steal_pointer (&u->raw);
    f->timings = g_steal_pointer (&u->timings);
    g_queue_push_tail (&u->flights, f);
  }

  while (u->flights.length > u->max_in_flight)
    if (!complete_oldest (u, ready, error))
      return FALSE;
  return TRUE;
}

/**
 * uel_cuda_uploader_drain: (skip)
 * @uploader: a #UelCudaUploader
 * @ready: (element-type GstBuffer) (transfer full) (nullable): where the
 *   finished device tensors are appended, or %NULL to drop them
 * @error: return location for a #GError
 *
 * Waits for every queued copy.  A tensor whose last chunk has not arrived
 * is dropped.
 *
 * Returns: %FALSE when a copy failed
 */
gboolean
uel_cuda_uploader_drain (UelCudaUploader * uploader, GPtrArray * ready,
    GError ** error)
{
  gboolean ok = TRUE;

  while (uploader->flights.length > 0) {
    GError *err = NULL;
    if (!complete_oldest (uploader, ready, &err)) {
      if (ok)
        g_propagate_error (error, err);
      else
        g_clear_error (&err);
      ok = FALSE;
    }
  }
  drop_current (uploader);
  return ok;
}

/**
 * uel_cuda_uploader_free: (skip)
 * @uploader: (transfer full): a #UelCudaUploader
 *
 * Waits for the queued copies, drops what they carried and frees the
 * stream.  Device tensors handed out stay valid.
 */
void
uel_cuda_uploader_free (UelCudaUploader * uploader)
{
  if (!uploader)
    return;
  uel_cuda_set_device (uploader->device, NULL);
  uel_cuda_uploader_drain (uploader, NULL, NULL);
  uel_cuda_stream_sync (uploader->stream, NULL);
  uel_cuda_stream_free (uploader->stream);
  if (uploader->span)
    span_unref (uploader->span);
  gst_object_unref (uploader->allocator);
  g_free (uploader);
}

/**
 * uel_cuda_uploader_get_stats: (skip)
 * @uploader: a #UelCudaUploader
 * @stats: (out caller-allocates): the counters
 */
void
uel_cuda_uploader_get_stats (UelCudaUploader * uploader,
    UelCudaUploadStats * stats)
{
  *stats = uploader->stats;
}
