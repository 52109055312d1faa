/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:uel-hostmem
 * @title: UelHostAllocator
 *
 * Page-aligned host memory that is recycled.  Reading a tensor into
 * freshly mapped memory costs a page fault per 4 KiB (about 2 GB/s on the
 * virtual machines we measure on, against 17 GB/s into reused memory), and
 * memory handed back to the system is expensive to touch again, so freed
 * blocks are kept, by size class, up to a byte limit, and handed out
 * again, the most recently freed first; past the limit the blocks unused
 * the longest are let go.  Size classes are eighths of a power of two (at
 * most 12.5% unused per block), so tensors of similar sizes share blocks.
 *
 * Blocks under 2 MiB are pre-faulted when they are mapped.  Larger blocks
 * are on transparent huge pages, as long as huge pages come fast: one huge
 * page of each new block is faulted in when it is mapped, and timed.  If
 * it took longer than 4 KiB pages would (the system compacting memory for
 * it, or a virtual machine's host providing it anew: 0.4-0.7 GB/s on the
 * VMs we measure on, against 2-4 GB/s for 4 KiB pages and 10-20 GB/s for
 * huge pages that are at hand), the rest of the block is on 4 KiB pages,
 * and so are the blocks mapped in the second that follows, untimed.
 * The rest is faulted in by its first write, one fault per page: when
 * several threads read parts of one tensor (as uelsrc's I/O threads do),
 * they fault their parts in at the same time.
 *
 * Memory of up to %UEL_HOST_SMALL_MAX bytes is not a page of its own: it
 * comes from the C heap, with its memory struct, 64-byte aligned (more
 * than any dtype needs).  A page each would make a million one-byte
 * tensors hold 4 GiB.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uel-hostmem-private.h"
#include "uel-memory-private.h"

GST_DEBUG_CATEGORY_STATIC (uel_hostmem_debug);
#define GST_CAT_DEFAULT uel_hostmem_debug

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE ((gsize) 4096)
#define HUGE_PAGE (((gsize) 2) << 20)
/* A huge page that takes longer than this to fault in is slower than 4 KiB
 * pages: 2 MiB at 4 GB/s, what two threads fault 4 KiB pages at on the
 * 2-CPU VM we measure on (bench/RESULTS.md, "Huge pages") */
#define SLOW_HUGE_PAGE_US 500
/* After a huge page that came slowly, new blocks go on 4 KiB pages without
 * asking for this long: timing a slow one costs 2-30 ms here (a 4 GiB
 * load_all mapped 71 blocks, 45 of them slow: 0.25 s of its 1.5 s) */
#define HUGE_PAGE_BACKOFF_US G_USEC_PER_SEC

typedef struct
{
  GstMemory mem;
  guint8 *base;
  gboolean small;               /* base lies inside this struct's own block */
} UelHostMemory;

#define SMALL_ALIGN ((gsize) 64)

/* a freed block kept for reuse, in two queues: its size's and the age */
typedef struct
{
  guint8 *base;
  gsize size;
  GList size_link;
  GList age_link;
} Cached;

struct _UelHostAllocator
{
  GstAllocator parent;

  GMutex lock;
  GHashTable *free_blocks;      /* block size -> GQueue of Cached, newest
                                 * first; kept when empty (one per size
                                 * class seen), so that a block cycling
                                 * through the cache costs no queue */
  GQueue age;                   /* every Cached, the newest first */
  guint64 cached_bytes;
  guint64 max_cached;
  guint64 n_fresh;
  guint64 n_reused;
  gint64 slow_huge_page_us;
  gint64 huge_pages_again;      /* no huge pages asked for before this */
  guint64 n_timed;              /* huge pages timed */
  guint64 n_small_pages;        /* large blocks put on 4 KiB pages */
};

G_DEFINE_TYPE (UelHostAllocator, uel_host_allocator, GST_TYPE_ALLOCATOR);

static gsize
block_size (gsize size)
{
  gsize gran = PAGE;

  if (size > (((gsize) 1) << 20)) {
    gsize p2 = (gsize) 1 << g_bit_storage (size - 1);
    gran = MAX (p2 / 8, PAGE);
  }
  if (size > G_MAXSIZE - gran)
    return 0;
  return (size + gran - 1) / gran * gran;
}

/* Faults in one huge page of the block at @p and says whether it came
 * fast enough to be worth asking for. */
static gboolean
huge_page_is_fast (UelHostAllocator * self, guint8 * p, gsize bs)
{
  guint8 *first = (guint8 *) ((GPOINTER_TO_SIZE (p) + HUGE_PAGE - 1) &
      ~(HUGE_PAGE - 1));
  gint64 start;
  gint64 took;

  /* no whole huge page inside: none to measure, and none to be had */
  if (first + HUGE_PAGE > p + bs)
    return TRUE;
  start = g_get_monotonic_time ();
  /* before Linux 5.14 (EINVAL) the advice is refused: keep huge pages, as
   * the kernel gives them */
  if (madvise (first, HUGE_PAGE, MADV_POPULATE_WRITE) != 0)
    return errno != ENOMEM;
  took = g_get_monotonic_time () - start;
  g_mutex_lock (&self->lock);
  self->n_timed++;
  g_mutex_unlock (&self->lock);
  GST_LOG_OBJECT (self, "a huge page of a %" G_GSIZE_FORMAT "-byte block "
      "took %" G_GINT64_FORMAT " us to fault in", bs, took);
  return took <= self->slow_huge_page_us;
}

static guint8 *
map_block (UelHostAllocator * self, gsize bs)
{
  guint8 *p = mmap (NULL, bs, PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (p == MAP_FAILED)
    return NULL;
  /* huge pages: 512× fewer faults and TLB misses for large tensors.  Not
   * populated here beyond the page that is timed: the read that fills the
   * block faults one page per 2 MiB, no more than populating would, and a
   * read split among I/O threads faults its parts in parallel instead of
   * after this thread has faulted the whole block (bench/RESULTS.md: a
   * fresh process on a 2-CPU VM, whose memory the hypervisor must provide
   * anew, streams 3.6 → 5.9 GB/s; O_DIRECT from a cold cache 2.50 → 2.62
   * GB/s) */
  if (bs >= HUGE_PAGE) {
    gboolean ask;

    g_mutex_lock (&self->lock);
    ask = g_get_monotonic_time () >= self->huge_pages_again;
    g_mutex_unlock (&self->lock);
    if (ask) {
      madvise (p, bs, MADV_HUGEPAGE);
      if (huge_page_is_fast (self, p, bs))
        return p;
    }
    /* 4 KiB pages, even where the system would give huge ones unasked */
    madvise (p, bs, MADV_NOHUGEPAGE);
    g_mutex_lock (&self->lock);
    self->n_small_pages++;
    if (ask)
      self->huge_pages_again = g_get_monotonic_time () + HUGE_PAGE_BACKOFF_US;
    g_mutex_unlock (&self->lock);
    return p;
  }
  /* small blocks: fault it all in now, in one call, rather than page by
   * page inside the read; kernels before 5.14 refuse the advice and we
   * touch the pages */
  if (madvise (p, bs, MADV_POPULATE_WRITE) != 0) {
    /* ENOMEM: the memory is not there; other failures (EINVAL before
     * Linux 5.14, EPERM under seccomp): touch the pages */
    if (errno == ENOMEM) {
      munmap (p, bs);
      return NULL;
    }
    for (gsize o = 0; o < bs; o += PAGE)
      p[o] = 0;
  }
  return p;
}

static void
init_memory (UelHostMemory * mem, GstAllocator * allocator, gsize maxsize,
    gsize size, GstAllocationParams * params)
{
  gst_memory_init (GST_MEMORY_CAST (mem), params->flags, allocator, NULL,
      maxsize, params->align, params->prefix, size);
  if (params->prefix && (params->flags & GST_MEMORY_FLAG_ZERO_PREFIXED))
    memset (mem->base, 0, params->prefix);
  if (params->padding && (params->flags & GST_MEMORY_FLAG_ZERO_PADDED))
    memset (mem->base + params->prefix + size, 0, params->padding);
}

/* small memory: struct and data in one heap block, the data 64-aligned */
static GstMemory *
small_alloc (GstAllocator * allocator, gsize maxsize, gsize size,
    GstAllocationParams * params)
{
  UelHostMemory *mem = g_try_malloc (sizeof (UelHostMemory) + SMALL_ALIGN +
      maxsize);

  if (!mem)
    return NULL;
  mem->base = (guint8 *) ((GPOINTER_TO_SIZE (mem + 1) + SMALL_ALIGN - 1) &
      ~(SMALL_ALIGN - 1));
  mem->small = TRUE;
  init_memory (mem, allocator, maxsize, size, params);
  return GST_MEMORY_CAST (mem);
}

static GstMemory *
host_alloc (GstAllocator * allocator, gsize size, GstAllocationParams * params)
{
  UelHostAllocator *self = UEL_HOST_ALLOCATOR (allocator);
  UelHostMemory *mem;
  gsize maxsize, bs;
  GQueue *sized;
  guint8 *base = NULL;

  if (params->align >= PAGE) {
    GST_WARNING_OBJECT (self, "alignment %" G_GSIZE_FORMAT " above a page "
        "is not supported", params->align + 1);
    return NULL;
  }
  if (!g_size_checked_add (&maxsize, size, params->prefix)
      || !g_size_checked_add (&maxsize, maxsize, params->padding))
    return NULL;
  if (maxsize <= UEL_HOST_SMALL_MAX && params->align < SMALL_ALIGN) {
    g_mutex_lock (&self->lock);
    self->n_fresh++;
    g_mutex_unlock (&self->lock);
    return small_alloc (allocator, maxsize, size, params);
  }
  if ((bs = block_size (maxsize)) == 0)
    return NULL;

  g_mutex_lock (&self->lock);
  sized = g_hash_table_lookup (self->free_blocks, GSIZE_TO_POINTER (bs));
  if (sized && !g_queue_is_empty (sized)) {
    Cached *c = g_queue_pop_head_link (sized)->data;

    g_queue_unlink (&self->age, &c->age_link);
    base = c->base;
    g_free (c);
    self->cached_bytes -= bs;
    self->n_reused++;
  } else {
    self->n_fresh++;
  }
  g_mutex_unlock (&self->lock);

  if (!base) {
    base = map_block (self, bs);
    if (!base) {
      GST_ERROR_OBJECT (self, "cannot map %" G_GSIZE_FORMAT " bytes: %s", bs,
          g_strerror (errno));
      return NULL;
    }
  }

  mem = g_new (UelHostMemory, 1);
  mem->base = base;
  mem->small = FALSE;
  init_memory (mem, allocator, bs, size, params);
  return GST_MEMORY_CAST (mem);
}

/* Takes the oldest cached block out of the cache; returns it. */
static Cached *
evict_oldest (UelHostAllocator * self)
{
  Cached *c = g_queue_peek_tail (&self->age);
  GQueue *sized = g_hash_table_lookup (self->free_blocks,
      GSIZE_TO_POINTER (c->size));

  g_queue_unlink (&self->age, &c->age_link);
  g_queue_unlink (sized, &c->size_link);
  self->cached_bytes -= c->size;
  return c;
}

/* Gives a block taken out of the cache back to the system. */
static void
release (Cached * c)
{
  munmap (c->base, c->size);
  g_free (c);
}

static void
host_free (GstAllocator * allocator, GstMemory * memory)
{
  UelHostAllocator *self = UEL_HOST_ALLOCATOR (allocator);
  UelHostMemory *mem = (UelHostMemory *) memory;
  gsize bs = memory->maxsize;
  GSList *evicted = NULL;
  Cached *c;
  GQueue *sized;

  if (memory->parent || mem->small) {
    /* a shared sub-memory (its parent owns the block), or a small memory
     * that is one heap block with its struct */
    g_free (mem);
    return;
  }
  if (bs > self->max_cached) {
    munmap (mem->base, bs);
    g_free (mem);
    return;
  }

  c = g_new (Cached, 1);
  c->base = mem->base;
  c->size = bs;
  c->size_link = (GList) {.data = c };
  c->age_link = (GList) {.data = c };
  g_free (mem);

  /* the block just freed is the likeliest to be asked for again (the
   * next layer's tensor of the same shape): room is made for it by
   * letting go of the blocks unused the longest, such as the embedding's,
   * read once at the start */
  g_mutex_lock (&self->lock);
  while (self->cached_bytes + bs > self->max_cached)
    evicted = g_slist_prepend (evicted, evict_oldest (self));
  sized = g_hash_table_lookup (self->free_blocks, GSIZE_TO_POINTER (bs));
  if (!sized) {
    sized = g_queue_new ();
    g_hash_table_insert (self->free_blocks, GSIZE_TO_POINTER (bs), sized);
  }
  g_queue_push_head_link (sized, &c->size_link);
  g_queue_push_head_link (&self->age, &c->age_link);
  self->cached_bytes += bs;
  g_mutex_unlock (&self->lock);

  /* unmapping takes a while for large blocks: outside the lock */
  g_slist_free_full (evicted, (GDestroyNotify) release);
}

static gpointer
host_map (GstMemory * mem, gsize maxsize, GstMapFlags flags)
{
  return ((UelHostMemory *) mem)->base;
}

static void
host_unmap (GstMemory * mem)
{
}

GstMemory *
uel_memory_share (GstMemory * mem, gssize offset, gssize size,
    gsize struct_size)
{
  GstMemory *parent = mem->parent ? mem->parent : mem;
  GstMemory *sub = g_memdup2 (mem, struct_size);

  if (size == -1)
    size = (gssize) mem->size - offset;
  gst_memory_init (sub,
      GST_MINI_OBJECT_FLAGS (parent) | GST_MINI_OBJECT_FLAG_LOCK_READONLY,
      mem->allocator, parent, mem->maxsize, mem->align,
      mem->offset + offset, (gsize) size);
  return sub;
}

static GstMemory *
host_share (GstMemory * mem, gssize offset, gssize size)
{
  return uel_memory_share (mem, offset, size, sizeof (UelHostMemory));
}

static gboolean
host_is_span (GstMemory * mem1, GstMemory * mem2, gsize * offset)
{
  UelHostMemory *a = (UelHostMemory *) mem1, *b = (UelHostMemory *) mem2;

  if (a->base != b->base || mem1->offset + mem1->size != mem2->offset)
    return FALSE;
  if (offset)
    *offset = mem1->offset;
  return TRUE;
}

static void
uel_host_allocator_finalize (GObject * object)
{
  UelHostAllocator *self = UEL_HOST_ALLOCATOR (object);

  while (!g_queue_is_empty (&self->age))
    release (evict_oldest (self));
  g_hash_table_unref (self->free_blocks);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (uel_host_allocator_parent_class)->finalize (object);
}

static void
uel_host_allocator_class_init (UelHostAllocatorClass * klass)
{
  GstAllocatorClass *aclass = GST_ALLOCATOR_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = uel_host_allocator_finalize;
  aclass->alloc = host_alloc;
  aclass->free = host_free;
  GST_DEBUG_CATEGORY_INIT (uel_hostmem_debug, "uelhostmem", 0,
      "gst-uel recycled host memory");
}

static void
uel_host_allocator_init (UelHostAllocator * self)
{
  GstAllocator *alloc = GST_ALLOCATOR (self);

  alloc->mem_type = UEL_HOST_MEMORY_TYPE;
  alloc->mem_map = host_map;
  alloc->mem_unmap = host_unmap;
  alloc->mem_share = host_share;
  alloc->mem_is_span = host_is_span;
  g_mutex_init (&self->lock);
  self->free_blocks = g_hash_table_new_full (g_direct_hash, g_direct_equal,
      NULL, (GDestroyNotify) g_queue_free);
  g_queue_init (&self->age);
  self->slow_huge_page_us = SLOW_HUGE_PAGE_US;
}

/**
 * uel_host_allocator_new:
 * @max_cached_bytes: how many bytes of freed blocks to keep for reuse
 *
 * Returns: (transfer full): a new allocator of recycled, page-aligned
 *   host memory
 */
GstAllocator *
uel_host_allocator_new (guint64 max_cached_bytes)
{
  UelHostAllocator *self = g_object_new (UEL_TYPE_HOST_ALLOCATOR, NULL);

  self->max_cached = max_cached_bytes;
  return gst_object_ref_sink (GST_ALLOCATOR (self));
}

/**
 * uel_host_allocator_get_stats:
 * @allocator: a #UelHostAllocator
 * @n_fresh: (out) (optional): blocks newly mapped, and small memories
 *   taken from the heap
 * @n_reused: (out) (optional): blocks handed out again
 * @cached_bytes: (out) (optional): bytes kept for reuse now
 */
void
uel_host_allocator_get_stats (UelHostAllocator * allocator, guint64 * n_fresh,
    guint64 * n_reused, guint64 * cached_bytes)
{
  g_mutex_lock (&allocator->lock);
  if (n_fresh)
    *n_fresh = allocator->n_fresh;
  if (n_reused)
    *n_reused = allocator->n_reused;
  if (cached_bytes)
    *cached_bytes = allocator->cached_bytes;
  g_mutex_unlock (&allocator->lock);
}

void
uel_host_allocator_set_slow_huge_page_us (UelHostAllocator * allocator,
    gint64 us)
{
  g_mutex_lock (&allocator->lock);
  allocator->slow_huge_page_us = us;
  allocator->huge_pages_again = 0;
  g_mutex_unlock (&allocator->lock);
}

void
uel_host_allocator_get_huge_page_stats (UelHostAllocator * allocator,
    guint64 * n_timed, guint64 * n_small_pages)
{
  g_mutex_lock (&allocator->lock);
  *n_timed = allocator->n_timed;
  *n_small_pages = allocator->n_small_pages;
  g_mutex_unlock (&allocator->lock);
}
