/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:uel-pinned
 * @title: UelPinnedAllocator
 *
 * A fixed pool of pinned (page-locked) host memory, pinned once and reused.
 * Pinning costs 0.2–1 s per GiB, so it is never done per tensor: the pool
 * is one region, mapped, pre-faulted and registered with the CUDA driver the
 * first time it is needed, and carved into page-aligned blocks.  When the
 * pool is used up, an allocation waits until buffers come back: the pool's
 * capacity is also the pipeline's memory bound.
 *
 * Nothing waits forever.  A request larger than half the pool is refused
 * at once: a single buffer kept elsewhere (a sink's last sample) could keep
 * it from ever fitting.  A request that memory does not come back for
 * within uel_pinned_allocator_set_wait_timeout() (3 s by default: buffers
 * held downstream, a fragmented pool) is refused too, and so, at once, is
 * every request that does not fit until some memory comes back: an
 * application that keeps every buffer (a loader holding the whole model)
 * waits once, not once per tensor.  The caller then uses ordinary memory
 * for that buffer; `uelsrc chunk-size` keeps every buffer small enough to
 * be pinned.
 *
 * Pipelines can share one pool: uel_pinned_allocator_new_shared() makes
 * another allocator over the same pool, and a #GstContext of type
 * %UEL_PINNED_POOL_CONTEXT_TYPE (uel_pinned_pool_context_new()) hands a
 * pool to the `uelpin` and `uelcudaupload` elements of any pipeline it is
 * set on.  An application that loads models one after another then pins
 * once, as PyTorch's caching host allocator does, instead of once per
 * pipeline.
 *
 * Without a CUDA device (or driver, or toolkit at build time), the same
 * pool is plain page-aligned, pre-faulted host memory, so every pipeline
 * still runs; uel_pinned_allocator_is_device_pinned() tells which.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "uel-cuda-private.h"
#include "uel-error.h"
#include "uel-memory-private.h"
#include "uel-pinned.h"

GST_DEBUG_CATEGORY_STATIC (uel_pinned_debug);
#define GST_CAT_DEFAULT uel_pinned_debug

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define BLOCK ((guint64) 4096)
#define HUGE_PAGE ((guint64) 2 << 20)

typedef struct
{
  guint64 offset;
  guint64 len;
} Extent;

typedef struct
{
  GstMemory mem;
  guint64 extent_offset;
  guint64 extent_len;
} UelPinnedMemory;

/* The pinned region, shared by every allocator made from it with
 * uel_pinned_allocator_new_shared(); freed with the last one. */
typedef struct
{
  gatomicrefcount ref_count;
  guint64 capacity;
  gint device;

  GMutex lock;
  GCond cond;                   /* signalled when memory comes back */
  guint8 *base;                 /* the region, NULL until prepared */
  gboolean prepared;
  gboolean registered;
  gchar *fallback_reason;
  GArray *free_list;            /* Extent, sorted by offset, coalesced */
  guint64 n_frees;              /* memory given back so far */
} Pool;

struct _UelPinnedAllocator
{
  GstAllocator parent;

  Pool *pool;
  /* under pool->lock */
  gboolean flushing;
  gint64 wait_timeout_us;
  /* a wait ran out when pool->n_frees was starved_at: until memory comes
   * back, do not wait again */
  gboolean starved;
  guint64 starved_at;
  UelPinnedStats stats;         /* this allocator's own use */
};

G_DEFINE_TYPE (UelPinnedAllocator, uel_pinned_allocator, GST_TYPE_ALLOCATOR);

/* Maps and pins the region.  Called with the lock held. */
static gboolean
prepare_locked (Pool * self, GError ** error)
{
  GError *cuda_err = NULL;
  Extent all = { 0, self->capacity };

  if (self->prepared)
    return TRUE;

  self->base = mmap (NULL, self->capacity, PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (self->base == MAP_FAILED) {
    gint err = errno;
    self->base = NULL;
    g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY,
        "cannot map a pinned pool of %" G_GUINT64_FORMAT " bytes: %s",
        self->capacity, g_strerror (err));
    return FALSE;
  }
  madvise (self->base, self->capacity, MADV_HUGEPAGE);
  if (madvise (self->base, self->capacity, MADV_POPULATE_WRITE) != 0) {
    gint err = errno;

    /* ENOMEM: the kernel could not find the memory; say so rather than
     * touch the pages into the OOM killer's hands.  Anything else (EINVAL
     * from a kernel before 5.14, EPERM from a seccomp filter): touch the
     * pages instead. */
    if (err == ENOMEM) {
      munmap (self->base, self->capacity);
      self->base = NULL;
      g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY,
          "cannot fault in a pinned pool of %" G_GUINT64_FORMAT " bytes: %s",
          self->capacity, g_strerror (err));
      return FALSE;
    }
    for (guint64 o = 0; o < self->capacity; o += BLOCK)
      self->base[o] = 0;
  }

  if (uel_cuda_set_device (self->device, &cuda_err)
      && uel_cuda_host_register (self->base, self->capacity, &cuda_err)) {
    self->registered = TRUE;
    GST_INFO ("pinned %" G_GUINT64_FORMAT " bytes", self->capacity);
  } else {
    self->fallback_reason = g_strdup (cuda_err->message);
    GST_WARNING ("%s: the pool is plain page-aligned host memory",
        cuda_err->message);
    g_clear_error (&cuda_err);
  }
  g_array_append_val (self->free_list, all);
  self->prepared = TRUE;
  return TRUE;
}

/* first fit; returns the extent's offset or G_MAXUINT64 */
static guint64
take_extent (Pool * self, guint64 len)
{
  for (guint i = 0; i < self->free_list->len; i++) {
    Extent *e = &g_array_index (self->free_list, Extent, i);

    if (e->len >= len) {
      guint64 off = e->offset;
      e->offset += len;
      e->len -= len;
      if (e->len == 0)
        g_array_remove_index (self->free_list, i);
      return off;
    }
  }
  return G_MAXUINT64;
}

static void
give_extent (Pool * self, guint64 off, guint64 len)
{
  GArray *fl = self->free_list;
  guint lo = 0, hi = fl->len;
  Extent *prev, *next;

  /* position of the first extent after @off */
  while (lo < hi) {
    guint mid = (lo + hi) / 2;
    if (g_array_index (fl, Extent, mid).offset < off)
      lo = mid + 1;
    else
      hi = mid;
  }
  prev = lo > 0 ? &g_array_index (fl, Extent, lo - 1) : NULL;
  next = lo < fl->len ? &g_array_index (fl, Extent, lo) : NULL;

  if (prev && prev->offset + prev->len == off) {
    prev->len += len;
    if (next && prev->offset + prev->len == next->offset) {
      prev->len += next->len;
      g_array_remove_index (fl, lo);
    }
  } else if (next && off + len == next->offset) {
    next->offset = off;
    next->len += len;
  } else {
    Extent e = { off, len };
    g_array_insert_val (fl, lo, e);
  }
}

static GstMemory *
pinned_alloc (GstAllocator * allocator, gsize size,
    GstAllocationParams * params)
{
  UelPinnedAllocator *self = UEL_PINNED_ALLOCATOR (allocator);
  Pool *pool = self->pool;
  UelPinnedMemory *mem;
  guint64 need, len, off;
  gint64 deadline;
  gboolean waited = FALSE;
  GError *err = NULL;

  g_return_val_if_fail (pool != NULL, NULL);

  if (params->align >= BLOCK
      || !g_uint64_checked_add (&need, size, params->prefix)
      || !g_uint64_checked_add (&need, need, params->padding)
      || need > G_MAXUINT64 - BLOCK)
    return NULL;
  len = MAX ((need + BLOCK - 1) / BLOCK * BLOCK, BLOCK);

  g_mutex_lock (&pool->lock);
  if (!prepare_locked (pool, &err)) {
    GST_ERROR_OBJECT (self, "%s", err->message);
    g_clear_error (&err);
    g_mutex_unlock (&pool->lock);
    return NULL;
  }
  /* more than half the pool: one buffer kept elsewhere (a sink's last
   * sample) could keep it from ever fitting */
  if (len > pool->capacity / 2) {
    self->stats.n_too_large++;
    g_mutex_unlock (&pool->lock);
    GST_DEBUG_OBJECT (self, "%" G_GSIZE_FORMAT " bytes: more than half the "
        "pool of %" G_GUINT64_FORMAT, size, pool->capacity);
    return NULL;
  }
  deadline = g_get_monotonic_time () + self->wait_timeout_us;
  while ((off = take_extent (pool, len)) == G_MAXUINT64) {
    if (self->flushing) {
      g_mutex_unlock (&pool->lock);
      return NULL;
    }
    /* nothing came back since the last wait ran out: waiting again would
     * only cost the timeout once more */
    if (self->starved && self->starved_at == pool->n_frees) {
      self->stats.n_starved++;
      g_mutex_unlock (&pool->lock);
      return NULL;
    }
    if (!waited) {
      self->stats.n_waits++;
      waited = TRUE;
    }
    /* a safety valve, not a clock: memory that never comes back (buffers
     * kept downstream, a fragmented pool) must not hang the pipeline */
    if (!g_cond_wait_until (&pool->cond, &pool->lock, deadline)
        && (off = take_extent (pool, len)) == G_MAXUINT64) {
      self->stats.n_starved++;
      self->starved = TRUE;
      self->starved_at = pool->n_frees;
      g_mutex_unlock (&pool->lock);
      GST_WARNING_OBJECT (self, "no %" G_GUINT64_FORMAT " bytes came back "
          "in the pool for %" G_GINT64_FORMAT " ms: giving up (buffers kept "
          "downstream?)", len, self->wait_timeout_us / 1000);
      return NULL;
    }
  }
  self->stats.n_allocs++;
  self->stats.live_bytes += len;
  self->stats.peak_bytes = MAX (self->stats.peak_bytes,
      self->stats.live_bytes);
  g_mutex_unlock (&pool->lock);

  mem = g_new (UelPinnedMemory, 1);
  mem->extent_offset = off;
  mem->extent_len = len;
  gst_memory_init (GST_MEMORY_CAST (mem), params->flags, allocator, NULL,
      (gsize) len, params->align, params->prefix, size);
  if (params->prefix && (params->flags & GST_MEMORY_FLAG_ZERO_PREFIXED))
    memset (pool->base + off, 0, params->prefix);
  if (params->padding && (params->flags & GST_MEMORY_FLAG_ZERO_PADDED))
    memset (pool->base + off + params->prefix + size, 0, params->padding);
  return GST_MEMORY_CAST (mem);
}

static void
pinned_free (GstAllocator * allocator, GstMemory * memory)
{
  UelPinnedAllocator *self = UEL_PINNED_ALLOCATOR (allocator);
  Pool *pool = self->pool;
  UelPinnedMemory *mem = (UelPinnedMemory *) memory;

  if (!memory->parent) {
    g_mutex_lock (&pool->lock);
    give_extent (pool, mem->extent_offset, mem->extent_len);
    self->stats.live_bytes -= mem->extent_len;
    pool->n_frees++;
    g_cond_broadcast (&pool->cond);
    g_mutex_unlock (&pool->lock);
  }
  g_free (mem);
}

static gpointer
pinned_map (GstMemory * mem, gsize maxsize, GstMapFlags flags)
{
  UelPinnedAllocator *self = UEL_PINNED_ALLOCATOR (mem->allocator);

  return self->pool->base + ((UelPinnedMemory *) mem)->extent_offset;
}

static void
pinned_unmap (GstMemory * mem)
{
}

static GstMemory *
pinned_share (GstMemory * mem, gssize offset, gssize size)
{
  return uel_memory_share (mem, offset, size, sizeof (UelPinnedMemory));
}

static gboolean
pinned_is_span (GstMemory * mem1, GstMemory * mem2, gsize * offset)
{
  UelPinnedMemory *a = (UelPinnedMemory *) mem1, *b = (UelPinnedMemory *) mem2;

  if (a->extent_offset != b->extent_offset
      || mem1->offset + mem1->size != mem2->offset)
    return FALSE;
  if (offset)
    *offset = mem1->offset;
  return TRUE;
}

static Pool *
pool_new (guint64 capacity, gint device)
{
  Pool *pool = g_new0 (Pool, 1);

  g_atomic_ref_count_init (&pool->ref_count);
  pool->capacity = capacity;
  pool->device = device;
  g_mutex_init (&pool->lock);
  g_cond_init (&pool->cond);
  pool->free_list = g_array_new (FALSE, FALSE, sizeof (Extent));
  return pool;
}

static void
pool_unref (Pool * pool)
{
  if (!g_atomic_ref_count_dec (&pool->ref_count))
    return;
  if (pool->base) {
    if (pool->registered)
      uel_cuda_host_unregister (pool->base);
    munmap (pool->base, pool->capacity);
  }
  g_array_unref (pool->free_list);
  g_free (pool->fallback_reason);
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->cond);
  g_free (pool);
}

static void
uel_pinned_allocator_finalize (GObject * object)
{
  UelPinnedAllocator *self = UEL_PINNED_ALLOCATOR (object);

  g_clear_pointer (&self->pool, pool_unref);
  G_OBJECT_CLASS (uel_pinned_allocator_parent_class)->finalize (object);
}

static void
uel_pinned_allocator_class_init (UelPinnedAllocatorClass * klass)
{
  GstAllocatorClass *aclass = GST_ALLOCATOR_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = uel_pinned_allocator_finalize;
  aclass->alloc = pinned_alloc;
  aclass->free = pinned_free;
  GST_DEBUG_CATEGORY_INIT (uel_pinned_debug, "uelpinned", 0,
      "gst-uel pinned host memory pool");
}

static void
uel_pinned_allocator_init (UelPinnedAllocator * self)
{
  GstAllocator *alloc = GST_ALLOCATOR (self);

  alloc->mem_type = UEL_PINNED_MEMORY_TYPE;
  alloc->mem_map = pinned_map;
  alloc->mem_unmap = pinned_unmap;
  alloc->mem_share = pinned_share;
  alloc->mem_is_span = pinned_is_span;
  self->wait_timeout_us = UEL_PINNED_DEFAULT_WAIT_TIMEOUT_MS * 1000;
}

/**
 * uel_pinned_allocator_new:
 * @capacity: the pool's size in bytes (rounded up to 2 MiB)
 * @cuda_device: the CUDA device whose driver pins the pool (-1 = current)
 *
 * Creates the allocator; the pool itself is mapped and pinned by
 * uel_pinned_allocator_prepare() or the first allocation.
 *
 * Returns: (transfer full) (nullable): the allocator, or %NULL if
 *   @capacity is 0
 */
GstAllocator *
uel_pinned_allocator_new (guint64 capacity, gint cuda_device)
{
  UelPinnedAllocator *self;

  if (capacity == 0 || capacity > G_MAXUINT64 - HUGE_PAGE)
    return NULL;
  self = g_object_new (UEL_TYPE_PINNED_ALLOCATOR, NULL);
  self->pool = pool_new ((capacity + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE,
      cuda_device);
  self->stats.capacity = self->pool->capacity;
  return gst_object_ref_sink (GST_ALLOCATOR (self));
}

/**
 * uel_pinned_allocator_new_shared:
 * @allocator: a #UelPinnedAllocator
 *
 * Creates an allocator that hands out memory from the same pool as the
 * given @allocator: the pool is mapped and pinned once, whichever allocates
 * first, and stays until the last allocator made from it (and the last
 * buffer of its memory) is gone.  Each allocator has its own flushing
 * state, wait timeout, give-up state and counters, so pipelines that share
 * a pool stop, flush and wait independently; their buffers together never
 * exceed the pool.
 *
 * Returns: (transfer full): the new allocator
 */
GstAllocator *
uel_pinned_allocator_new_shared (UelPinnedAllocator * allocator)
{
  UelPinnedAllocator *self;

  g_return_val_if_fail (UEL_IS_PINNED_ALLOCATOR (allocator), NULL);
  g_return_val_if_fail (allocator->pool != NULL, NULL);

  self = g_object_new (UEL_TYPE_PINNED_ALLOCATOR, NULL);
  g_atomic_ref_count_inc (&allocator->pool->ref_count);
  self->pool = allocator->pool;
  self->stats.capacity = self->pool->capacity;
  return gst_object_ref_sink (GST_ALLOCATOR (self));
}

/**
 * uel_pinned_allocator_shares_pool:
 * @a: a #UelPinnedAllocator
 * @b: another
 *
 * Returns: whether @a and @b hand out memory from the same pool
 */
gboolean
uel_pinned_allocator_shares_pool (UelPinnedAllocator * a,
    UelPinnedAllocator * b)
{
  g_return_val_if_fail (UEL_IS_PINNED_ALLOCATOR (a), FALSE);
  g_return_val_if_fail (UEL_IS_PINNED_ALLOCATOR (b), FALSE);

  return a->pool == b->pool;
}

/**
 * uel_pinned_pool_context_new:
 * @allocator: the #UelPinnedAllocator whose pool is to be shared
 *
 * Wraps @allocator's pool in a #GstContext of type
 * %UEL_PINNED_POOL_CONTEXT_TYPE.  Set it on pipelines with
 * gst_element_set_context() before they leave READY (or give it in answer
 * to their `need-context` message, from a bus sync handler: the element
 * asks while it starts and looks once more right after): their `uelpin`
 * and `uelcudaupload` elements then draw from this one pool, pinned once
 * for all of them, instead of each pinning its own.  An element takes the
 * pool when it starts; a context set later applies from its next start.
 *
 * Returns: (transfer full): a persistent context
 */
GstContext *
uel_pinned_pool_context_new (UelPinnedAllocator * allocator)
{
  GstContext *context;

  g_return_val_if_fail (UEL_IS_PINNED_ALLOCATOR (allocator), NULL);

  context = gst_context_new (UEL_PINNED_POOL_CONTEXT_TYPE, TRUE);
  gst_structure_set (gst_context_writable_structure (context),
      "allocator", UEL_TYPE_PINNED_ALLOCATOR, allocator, NULL);
  return context;
}

/**
 * uel_pinned_pool_context_get_allocator:
 * @context: a #GstContext
 *
 * Returns: (transfer full) (nullable): the allocator of a context made by
 *   uel_pinned_pool_context_new(), or %NULL for any other context
 */
GstAllocator *
uel_pinned_pool_context_get_allocator (GstContext * context)
{
  const GstStructure *s;
  UelPinnedAllocator *allocator = NULL;

  g_return_val_if_fail (GST_IS_CONTEXT (context), NULL);

  if (!gst_context_has_context_type (context, UEL_PINNED_POOL_CONTEXT_TYPE))
    return NULL;
  s = gst_context_get_structure (context);
  if (!gst_structure_get (s, "allocator", UEL_TYPE_PINNED_ALLOCATOR,
          &allocator, NULL))
    return NULL;
  return GST_ALLOCATOR (allocator);
}

/**
 * uel_pinned_allocator_prepare:
 * @allocator: a #UelPinnedAllocator
 * @error: return location for a #GError
 *
 * Maps, pre-faults and pins the pool now, in the calling thread, instead of
 * at the first allocation.  Having no CUDA device is not an error: the pool
 * is then plain host memory (see uel_pinned_allocator_get_fallback_reason()).
 *
 * Returns: %FALSE only when the memory itself cannot be mapped
 */
gboolean
uel_pinned_allocator_prepare (UelPinnedAllocator * allocator, GError ** error)
{
  gboolean ok;

  g_return_val_if_fail (UEL_IS_PINNED_ALLOCATOR (allocator), FALSE);
  g_return_val_if_fail (allocator->pool != NULL, FALSE);

  g_mutex_lock (&allocator->pool->lock);
  ok = prepare_locked (allocator->pool, error);
  g_mutex_unlock (&allocator->pool->lock);
  return ok;
}

/**
 * uel_pinned_allocator_is_device_pinned:
 * @allocator: a prepared #UelPinnedAllocator
 *
 * Returns: whether the CUDA driver page-locked the pool
 */
gboolean
uel_pinned_allocator_is_device_pinned (UelPinnedAllocator * allocator)
{
  gboolean r;

  g_return_val_if_fail (UEL_IS_PINNED_ALLOCATOR (allocator), FALSE);
  g_return_val_if_fail (allocator->pool != NULL, FALSE);

  g_mutex_lock (&allocator->pool->lock);
  r = allocator->pool->registered;
  g_mutex_unlock (&allocator->pool->lock);
  return r;
}

/**
 * uel_pinned_allocator_get_fallback_reason:
 * @allocator: a prepared #UelPinnedAllocator
 *
 * Returns: (nullable): why the pool is not pinned (CUDA's message), or
 *   %NULL when it is
 */
const gchar *
uel_pinned_allocator_get_fallback_reason (UelPinnedAllocator * allocator)
{
  g_return_val_if_fail (UEL_IS_PINNED_ALLOCATOR (allocator), NULL);
  g_return_val_if_fail (allocator->pool != NULL, NULL);

  return allocator->pool->fallback_reason;
}

/**
 * uel_pinned_allocator_set_flushing:
 * @allocator: a #UelPinnedAllocator
 * @flushing: whether waiting allocations give up
 *
 * While flushing, an allocation that would wait returns %NULL instead, and
 * those already waiting wake up and return %NULL: a pipeline that stops
 * never hangs on a full pool.
 */
void
uel_pinned_allocator_set_flushing (UelPinnedAllocator * allocator,
    gboolean flushing)
{
  g_return_if_fail (UEL_IS_PINNED_ALLOCATOR (allocator));
  g_return_if_fail (allocator->pool != NULL);

  g_mutex_lock (&allocator->pool->lock);
  allocator->flushing = flushing;
  g_cond_broadcast (&allocator->pool->cond);
  g_mutex_unlock (&allocator->pool->lock);
}

/**
 * uel_pinned_allocator_get_stats:
 * @allocator: a #UelPinnedAllocator
 * @stats: (out caller-allocates): the counters
 */
void
uel_pinned_allocator_get_stats (UelPinnedAllocator * allocator,
    UelPinnedStats * stats)
{
  g_return_if_fail (UEL_IS_PINNED_ALLOCATOR (allocator));
  g_return_if_fail (allocator->pool != NULL);

  g_mutex_lock (&allocator->pool->lock);
  *stats = allocator->stats;
  stats->device_pinned = allocator->pool->registered;
  g_mutex_unlock (&allocator->pool->lock);
}

/**
 * uel_memory_is_pinned:
 * @mem: a #GstMemory
 *
 * Returns: whether @mem comes from a #UelPinnedAllocator
 */
gboolean
uel_memory_is_pinned (GstMemory * mem)
{
  return mem && mem->allocator && UEL_IS_PINNED_ALLOCATOR (mem->allocator);
}

/**
 * uel_buffer_is_pinned:
 * @buffer: a #GstBuffer
 *
 * Returns: whether @buffer has memory and all of it comes from a
 *   #UelPinnedAllocator
 */
gboolean
uel_buffer_is_pinned (GstBuffer * buffer)
{
  guint n = gst_buffer_n_memory (buffer);

  for (guint i = 0; i < n; i++)
    if (!uel_memory_is_pinned (gst_buffer_peek_memory (buffer, i)))
      return FALSE;
  return n > 0;
}

/**
 * uel_pinned_allocator_set_wait_timeout:
 * @allocator: a #UelPinnedAllocator
 * @ms: how long an allocation may wait for memory to come back, in
 *   milliseconds
 *
 * After that long, the allocation gives up and returns %NULL (counted in
 * #UelPinnedStats.n_starved), so that buffers kept downstream can never
 * hang a pipeline.  The default is %UEL_PINNED_DEFAULT_WAIT_TIMEOUT_MS.
 */
void
uel_pinned_allocator_set_wait_timeout (UelPinnedAllocator * allocator,
    guint ms)
{
  g_return_if_fail (UEL_IS_PINNED_ALLOCATOR (allocator));
  g_return_if_fail (allocator->pool != NULL);

  g_mutex_lock (&allocator->pool->lock);
  allocator->wait_timeout_us = (gint64) ms * 1000;
  g_mutex_unlock (&allocator->pool->lock);
}
