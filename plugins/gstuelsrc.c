/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-uelsrc
 * @title: uelsrc
 *
 * Reads the tensors of a `.safetensors` file (or of a sharded checkpoint's
 * `*.index.json`) by byte offset and pushes one buffer per tensor, in file
 * order, each with a #UelTensorMeta (name, dtype, shape, offsets, index).
 * The header is read and validated completely before anything is pushed;
 * it then travels downstream as a sticky `uel-header` event and to the
 * application as a `uel-header` element message.
 *
 * When downstream proposes an allocator in the ALLOCATION query (`uelpin`
 * proposes its pinned allocator), tensors are read straight into it;
 * otherwise into recycled host memory.  Sizes are 64-bit
 * throughout: a single tensor over 4 GiB is one buffer (or several chunks
 * with #GstUelSrc:chunk-size).
 *
 * Buffer data is aligned to at least the tensor's element size, even when
 * the file's data section is not (with `method=mmap`, a misaligned tensor
 * is copied instead of mapped).
 *
 * #GstUelSrc:dtypes and #GstUelSrc:ndim narrow the selection by what the
 * header says of each tensor: `dtypes=U8 ndim=1` reads only the 1-D `U8`
 * tensors, where model files keep JSON dictionaries (see ueldictdecode),
 * without knowing their names; the other tensors are never read.
 *
 * Errors: a missing file is a RESOURCE NOT_FOUND error (as is a `tensors`
 * pattern that matches nothing, or an unknown name in `dtypes`), a
 * directory or unreadable file RESOURCE OPEN_READ, a failed read or a file
 * that shrinks while it is read RESOURCE READ; a file that is not safetensors at all (too small, header
 * length over the limit, not UTF-8, not a JSON object) is STREAM FORMAT,
 * and every other header rule is STREAM DECODE.  The messages name the file,
 * the tensor and the rule.
 *
 * The file is read through the descriptors opened at start: a file renamed
 * over the path or extended meanwhile still yields the validated tensors.
 * A file truncated while `method=mmap` maps it can kill the process with
 * SIGBUS (the kernel's answer to touching pages past the end), which no
 * element can catch: use `pread` or `direct` for files that may shrink.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors ! fakesink
 * ]| Reads every tensor of model.safetensors.
 * |[
 * gst-launch-1.0 -m uelsrc location=model.safetensors.index.json tensors="*.weight" method=direct ! fakesink
 * ]| Reads the weights of a sharded checkpoint with O_DIRECT and prints the
 * header message.
 * |[
 * gst-launch-1.0 -m uelsrc location=model.safetensors dtypes=U8 ndim=1 ! ueldictdecode ! fakesink
 * ]| Reads only the 1-D U8 tensors, from their offsets, and prints the
 * dictionaries they hold.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gstuelelements.h"
#include "gstuelsrc.h"

GST_DEBUG_CATEGORY_STATIC (gst_uel_src_debug);
#define GST_CAT_DEFAULT gst_uel_src_debug

#define DEFAULT_LOCATION NULL
#define DEFAULT_TENSORS NULL
#define DEFAULT_METHOD GST_UEL_SRC_METHOD_PREAD
/* 0: one I/O thread per CPU, up to AUTO_IO_THREADS (measured on a 16-core
 * GPU host: reading from the page cache into pinned memory scales to about
 * 16 threads) */
#define DEFAULT_IO_THREADS 0
#define AUTO_IO_THREADS 16
#define MAX_IO_THREADS 64
#define DEFAULT_NUM_BUFFERS -1
#define DEFAULT_CHUNK_SIZE 0
#define DEFAULT_DTYPES NULL
#define DEFAULT_NDIM -1

/* Large reads go to the I/O threads in parts of this size: small enough
 * that the threads share a chunk evenly and start on the next one while
 * the last parts finish, large enough to be worth a thread's wake-up (and a
 * good O_DIRECT request). */
#define PART_SIZE ((gsize) 8 << 20)
/* Smaller reads are done by the streaming thread itself: handing a small
 * tensor to a thread costs more than the copy. */
#define INLINE_MAX ((gsize) 1 << 20)
#define DEFAULT_READ_AHEAD (G_GUINT64_CONSTANT (64) << 20)
/* O_DIRECT needs offsets, sizes and memory aligned to the logical block
 * size; 4096 covers every device we know of. */
#define DIRECT_ALIGN G_GUINT64_CONSTANT (4096)
/* recycled host memory kept for reuse (the largest Llama-like tensors of
 * 100-200 MiB cycle through without new page faults) */
#define HOST_CACHE_BYTES (G_GUINT64_CONSTANT (512) << 20)

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_TENSORS,
  PROP_METHOD,
  PROP_IO_THREADS,
  PROP_NUM_BUFFERS,
  PROP_CHUNK_SIZE,
  PROP_DTYPES,
  PROP_NDIM,
  PROP_READ_AHEAD,
};

/* a file mapping shared by every buffer cut from it */
typedef struct
{
  gint ref_count;
  guint8 *addr;
  gsize len;
} Mapping;

typedef struct
{
  gint fd;                      /* buffered reads */
  gint direct_fd;               /* O_DIRECT, or -1 */
  Mapping *map;                 /* method=mmap */
} OpenFile;

/* a buffer being read: the read-ahead window holds several */
typedef struct
{
  GstBuffer *buf;
  GstMemory *mem;               /* NULL: complete without a read */
  GstMapInfo map;
  guint tensor_index;
  guint index;                  /* position in the stream */
  guint64 pos;                  /* where the bytes start in the tensor */
  gsize len;
  guint chunk_index;
  gsize delta;                  /* O_DIRECT: where they start in @mem */
  gsize elem;                   /* the alignment the data needs */
  guint pending;                /* parts still being read, under io_lock */
  GError *error;                /* the first failure, under io_lock */
  struct _IoPart *parts;
} Job;

/* one part of a read, for the I/O thread pool */
typedef struct _IoPart
{
  GstUelSrc *self;
  Job *job;
  gint fd;                      /* buffered */
  gint direct_fd;               /* O_DIRECT, or -1: read from fd */
  guint8 *dst;
  gsize len;                    /* bytes asked for */
  gsize need;                   /* bytes that must arrive (O_DIRECT at EOF) */
  guint64 offset;
  const gchar *path;
} IoPart;

struct _GstUelSrc
{
  GstElement parent;

  GstPad *srcpad;

  /* properties, under the object lock */
  gchar *location;
  gchar *tensors;
  GstUelSrcMethod method;
  guint io_threads;
  gint num_buffers;
  guint64 chunk_size;
  guint64 read_ahead;
  gchar *dtypes;
  gint ndim;

  /* set up in READY→PAUSED, used by the streaming thread */
  UelHeader *header;
  GArray *selected;             /* guint: tensor indices, stream order */
  guint64 selected_bytes;
  OpenFile *files;
  guint n_files;
  GThreadPool *pool;
  GstAllocator *host_allocator;

  /* streaming thread state */
  gboolean started;
  guint next;                   /* position in selected of the next read */
  guint64 chunk_pos;            /* where in that tensor */
  guint chunk_index;
  gint n_issued;
  gint n_pushed;
  gint eos_requested;           /* atomic: an EOS event was sent to us */
  guint64 bytes_pushed;
  GQueue jobs;                  /* the read-ahead window, in stream order */
  guint64 jobs_bytes;
  guint64 window;               /* bytes the window may hold */
  GstAllocator *allocator;      /* what downstream proposed, or ours */
  GstAllocationParams params;

  /* completion of the parts read by the I/O threads */
  GMutex io_lock;
  GCond io_cond;
};

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_CAPS));

#define _do_init \
  GST_DEBUG_CATEGORY_INIT (gst_uel_src_debug, "uelsrc", 0, \
      "safetensors tensor source");
#define gst_uel_src_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstUelSrc, gst_uel_src, GST_TYPE_ELEMENT, _do_init);
GST_ELEMENT_REGISTER_DEFINE (uelsrc, "uelsrc", GST_RANK_NONE,
    GST_TYPE_UEL_SRC);

GType
gst_uel_src_method_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_UEL_SRC_METHOD_PREAD, "pread into recycled memory", "pread"},
    {GST_UEL_SRC_METHOD_MMAP, "zero-copy buffers over mmap", "mmap"},
    {GST_UEL_SRC_METHOD_DIRECT, "O_DIRECT aligned reads", "direct"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstUelSrcMethod", values);
    g_once_init_leave (&type, t);
  }
  return (GType) type;
}

/* ------------------------------------------------------------------ */
/* errors */

static void
post_error (GstUelSrc * self, const GError * err)
{
  if (err->domain == G_FILE_ERROR) {
    if (err->code == G_FILE_ERROR_NOENT)
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("%s", err->message),
          ("file error %d", err->code));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("%s", err->message),
          ("file error %d", err->code));
    return;
  }
  if (err->domain != UEL_ERROR) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("%s", err->message), (NULL));
    return;
  }
  switch ((UelError) err->code) {
    case UEL_ERROR_IO:
    case UEL_ERROR_FILE_CHANGED:
      GST_ELEMENT_ERROR (self, RESOURCE, READ, ("%s", err->message),
          ("uel error %d", err->code));
      break;
    case UEL_ERROR_INVALID_ARGUMENT:
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("%s", err->message),
          ("uel error %d", err->code));
      break;
    case UEL_ERROR_NO_MEMORY:
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, ("%s", err->message),
          ("uel error %d", err->code));
      break;
    case UEL_ERROR_FILE_TOO_SMALL:
    case UEL_ERROR_HEADER_TOO_LARGE:
    case UEL_ERROR_HEADER_TRUNCATED:
    case UEL_ERROR_HEADER_NOT_UTF8:
    case UEL_ERROR_HEADER_NOT_JSON:
    case UEL_ERROR_HEADER_NOT_OBJECT:
      GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("%s", err->message),
          ("uel error %d: not a safetensors file", err->code));
      break;
    default:
      GST_ELEMENT_ERROR (self, STREAM, DECODE, ("%s", err->message),
          ("uel error %d: invalid safetensors header", err->code));
      break;
  }
}

/* ------------------------------------------------------------------ */
/* files */

static Mapping *
mapping_ref (Mapping * m)
{
  g_atomic_int_inc (&m->ref_count);
  return m;
}

static void
mapping_unref (gpointer data)
{
  Mapping *m = data;

  if (g_atomic_int_dec_and_test (&m->ref_count)) {
    if (m->len)
      munmap (m->addr, m->len);
    g_free (m);
  }
}

static void
close_files (GstUelSrc * self)
{
  for (guint i = 0; i < self->n_files; i++) {
    if (self->files[i].fd >= 0)
      close (self->files[i].fd);
    if (self->files[i].direct_fd >= 0)
      close (self->files[i].direct_fd);
    if (self->files[i].map)
      mapping_unref (self->files[i].map);
  }
  g_clear_pointer (&self->files, g_free);
  self->n_files = 0;
}

static gboolean
open_files (GstUelSrc * self, GstUelSrcMethod method, GError ** error)
{
  guint n = uel_header_get_n_files (self->header);

  self->files = g_new (OpenFile, n);
  self->n_files = n;
  for (guint i = 0; i < n; i++)
    self->files[i] = (OpenFile) {-1, -1, NULL};

  for (guint i = 0; i < n; i++) {
    const gchar *path = uel_header_get_file_path (self->header, i);
    guint64 size = uel_header_get_file_size (self->header, i);
    OpenFile *f = &self->files[i];

    f->fd = uel_header_open_file (self->header, i, 0, error);
    if (f->fd < 0)
      return FALSE;
    posix_fadvise (f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);

    if (method == GST_UEL_SRC_METHOD_DIRECT) {
      GError *direct_err = NULL;

      f->direct_fd = uel_header_open_file (self->header, i, O_DIRECT,
          &direct_err);
      if (f->direct_fd < 0) {
        GST_INFO_OBJECT (self, "O_DIRECT refused (%s): reading with pread "
            "instead", direct_err->message);
        g_clear_error (&direct_err);
      }
    } else if (method == GST_UEL_SRC_METHOD_MMAP && size > 0) {
      gpointer addr = mmap (NULL, size, PROT_READ, MAP_SHARED, f->fd, 0);

      if (addr == MAP_FAILED) {
        gint err = errno;
        g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "%s: cannot map %"
            G_GUINT64_FORMAT " bytes: %s", path, size, g_strerror (err));
        return FALSE;
      }
      f->map = g_new0 (Mapping, 1);
      f->map->ref_count = 1;
      f->map->addr = addr;
      f->map->len = size;
    }
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* reading */

static gboolean
read_part (IoPart * part, GError ** error)
{
  gsize done = 0;

  if (part->direct_fd < 0)
    return uel_pread_full (part->fd, part->dst, part->len,
        part->offset, part->path, error);

  while (done < part->len) {
    ssize_t r = pread (part->direct_fd, part->dst + done, part->len - done,
        (off_t) (part->offset + done));

    if (r < 0) {
      gint err = errno;
      if (err == EINTR)
        continue;
      g_set_error (error, UEL_ERROR, UEL_ERROR_IO,
          "%s: O_DIRECT read of %" G_GSIZE_FORMAT " bytes at offset %"
          G_GUINT64_FORMAT " failed: %s", part->path, part->len - done,
          part->offset + done, g_strerror (err));
      return FALSE;
    }
    done += (gsize) r;
    /* O_DIRECT goes on only from a block boundary */
    if (r == 0 || ((gsize) r % DIRECT_ALIGN) != 0)
      break;
  }
  /* Short of the bytes that must exist: the end of the file (it shrank),
   * or a read that returned less for its own reasons, which any read may
   * do.  Buffered reads of the rest tell the two apart. */
  if (done < part->need)
    return uel_pread_full (part->fd, part->dst + done, part->need - done,
        part->offset + done, part->path, error);
  return TRUE;
}

static void
io_thread_func (gpointer data, gpointer user_data)
{
  IoPart *part = data;
  GstUelSrc *self = part->self;
  Job *job = part->job;
  GError *err = NULL;

  read_part (part, &err);
  g_mutex_lock (&self->io_lock);
  if (err && !job->error)
    job->error = g_steal_pointer (&err);
  if (--job->pending == 0)
    g_cond_broadcast (&self->io_cond);
  g_mutex_unlock (&self->io_lock);
  g_clear_error (&err);
}

/* Reads @len bytes at @offset into @dst for @job: in the streaming thread
 * when it is small or there are no I/O threads, otherwise as parts that the
 * I/O threads read while the streaming thread goes on.  With a @direct_fd,
 * @offset, @len and @dst are block-aligned and only the first @need bytes
 * must exist in the file. */
static void
submit_read (GstUelSrc * self, Job * job, gint fd, gint direct_fd,
    guint8 * dst, gsize len, gsize need, guint64 offset, const gchar * path)
{
  guint n;

  if (!self->pool || len < INLINE_MAX) {
    IoPart part = { self, job, fd, direct_fd, dst, len, need, offset, path };
    read_part (&part, &job->error);
    return;
  }
  n = (guint) ((len + PART_SIZE - 1) / PART_SIZE);
  job->parts = g_new (IoPart, n);
  for (guint i = 0; i < n; i++) {
    gsize start = (gsize) i * PART_SIZE;
    gsize end = MIN (start + PART_SIZE, len);

    job->parts[i] = (IoPart) {
      self, job, fd, direct_fd, dst + start, end - start,
      need > start ? MIN (need - start, end - start) : 0,
      offset + start, path
    };
  }
  g_mutex_lock (&self->io_lock);
  job->pending = n;
  g_mutex_unlock (&self->io_lock);
  for (guint i = 0; i < n; i++)
    g_thread_pool_push (self->pool, &job->parts[i], NULL);
}

static void
wait_job (GstUelSrc * self, Job * job)
{
  g_mutex_lock (&self->io_lock);
  while (job->pending > 0)
    g_cond_wait (&self->io_cond, &self->io_lock);
  g_mutex_unlock (&self->io_lock);
}

static void
job_free (GstUelSrc * self, Job * job)
{
  /* never free memory a thread is still reading into */
  wait_job (self, job);
  if (job->mem) {
    gst_memory_unmap (job->mem, &job->map);
    gst_memory_unref (job->mem);
  }
  gst_buffer_unref (job->buf);
  g_clear_error (&job->error);
  g_free (job->parts);
  g_free (job);
}

static void
clear_jobs (GstUelSrc * self)
{
  Job *job;

  while ((job = g_queue_pop_head (&self->jobs)))
    job_free (self, job);
  self->jobs_bytes = 0;
}

static GstMemory *
alloc_memory (GstUelSrc * self, gsize size, gsize align)
{
  GstAllocationParams params = self->params;
  GstMemory *mem;

  params.align = MAX (params.align, align - 1);
  mem = gst_allocator_alloc (self->allocator, size, &params);
  /* a proposed pool refuses what can never fit it (and gives up while
   * flushing): take our own memory rather than fail the stream */
  if (!mem && self->allocator != self->host_allocator
      && !GST_PAD_IS_FLUSHING (self->srcpad)) {
    GST_DEBUG_OBJECT (self, "%s refused %" G_GSIZE_FORMAT " bytes: reading "
        "into host memory", GST_OBJECT_NAME (self->allocator), size);
    mem = gst_allocator_alloc (self->host_allocator, size, &params);
  }
  return mem;
}

static gboolean
map_job_memory (GstUelSrc * self, Job * job, gsize size, gsize align)
{
  job->mem = alloc_memory (self, size, align);
  if (job->mem && gst_memory_map (job->mem, &job->map, GST_MAP_WRITE))
    return TRUE;
  if (job->mem)
    gst_memory_unref (job->mem);
  job->mem = NULL;
  return FALSE;
}

/* Starts reading [pos, pos + len) of the tensor at @tensor_index: returns
 * the job, whose bytes may still be arriving, or NULL when there is no
 * memory for it. */
static Job *
start_job (GstUelSrc * self, guint tensor_index, guint64 pos, gsize len,
    GError ** error)
{
  const UelTensorInfo *info = uel_header_get_tensor (self->header,
      tensor_index);
  OpenFile *f = &self->files[info->file_index];
  const gchar *path = uel_header_get_file_path (self->header,
      info->file_index);
  guint64 offset = info->file_offset + pos;
  Job *job = g_new0 (Job, 1);

  job->buf = gst_buffer_new ();
  job->tensor_index = tensor_index;
  job->pos = pos;
  job->len = len;
  job->elem = MAX (uel_dtype_get_bits (info->dtype) / 8, 1);
  if (len == 0)
    return job;

  if (f->map && (GPOINTER_TO_SIZE (f->map->addr + offset) % job->elem) == 0) {
    struct stat st;

    /* a shrunk file would SIGBUS the reader: refuse to hand out pages
     * beyond its end (this narrows, not closes, the window; use pread for
     * files that may change) */
    if (fstat (f->fd, &st) == 0 && (guint64) st.st_size < offset + len) {
      g_set_error (&job->error, UEL_ERROR, UEL_ERROR_FILE_CHANGED,
          "%s: tensor '%s': the file is now %" G_GUINT64_FORMAT " bytes, "
          "shorter than the tensor's end at %" G_GUINT64_FORMAT, path,
          info->name, (guint64) st.st_size, offset + len);
      return job;
    }
    gst_buffer_append_memory (job->buf,
        gst_memory_new_wrapped (GST_MEMORY_FLAG_READONLY,
            f->map->addr + offset, len, 0, len, mapping_ref (f->map),
            mapping_unref));
    return job;
  }

  if (f->direct_fd >= 0) {
    guint64 a_off = offset / DIRECT_ALIGN * DIRECT_ALIGN;
    gsize delta = (gsize) (offset - a_off);
    gsize a_len = (delta + len + DIRECT_ALIGN - 1) / DIRECT_ALIGN *
        DIRECT_ALIGN;

    if (!map_job_memory (self, job, a_len, DIRECT_ALIGN))
      goto alloc_failed;
    if (GPOINTER_TO_SIZE (job->map.data) % DIRECT_ALIGN == 0) {
      job->delta = delta;
      submit_read (self, job, f->fd, f->direct_fd, job->map.data, a_len,
          delta + len, a_off, path);
      return job;
    }
    /* the allocator ignored the alignment: read this one buffered */
    GST_DEBUG_OBJECT (self, "memory not block-aligned, using pread");
    gst_memory_unmap (job->mem, &job->map);
    gst_memory_unref (job->mem);
    job->mem = NULL;
  }

  if (!map_job_memory (self, job, len, job->elem))
    goto alloc_failed;
  submit_read (self, job, f->fd, -1, job->map.data, len, len, offset,
      path);
  return job;

alloc_failed:
  g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY,
      "%s: tensor '%s': cannot allocate %" G_GSIZE_FORMAT " bytes", path,
      info->name, len);
  job_free (self, job);
  return NULL;
}

/* Waits for the job's bytes and makes its buffer: exactly the bytes of the
 * range, aligned to the element size. */
static GstBuffer *
finish_job (GstUelSrc * self, Job * job, GError ** error)
{
  GstBuffer *buf;

  wait_job (self, job);
  if (job->error) {
    /* a read's message names the file and the offsets: say which tensor
     * too (a mapped job's own message already does) */
    if (job->mem)
      g_prefix_error (&job->error, "tensor '%s': ",
          uel_header_get_tensor (self->header, job->tensor_index)->name);
    g_propagate_error (error, g_steal_pointer (&job->error));
    job_free (self, job);
    return NULL;
  }
  if (job->mem) {
    if (job->delta % job->elem != 0) {
      memmove (job->map.data, job->map.data + job->delta, job->len);
      job->delta = 0;
    }
    gst_memory_unmap (job->mem, &job->map);
    gst_memory_resize (job->mem, (gssize) job->delta, job->len);
    gst_buffer_append_memory (job->buf, g_steal_pointer (&job->mem));
  }
  buf = g_steal_pointer (&job->buf);
  job->buf = gst_buffer_new ();
  job_free (self, job);
  return buf;
}

/* ------------------------------------------------------------------ */
/* streaming */

static void
negotiate_allocation (GstUelSrc * self, GstCaps * caps)
{
  GstQuery *query = gst_query_new_allocation (caps, TRUE);
  GstAllocator *allocator = NULL;
  GstAllocationParams params;

  gst_allocation_params_init (&params);
  if (gst_pad_peer_query (self->srcpad, query)
      && gst_query_get_n_allocation_params (query) > 0)
    gst_query_parse_nth_allocation_param (query, 0, &allocator, &params);
  gst_query_unref (query);

  /* plain system memory from malloc costs a page fault per 4 KiB for every
   * large tensor: our recycled memory serves the same purpose faster */
  if (allocator && g_strcmp0 (allocator->mem_type, GST_ALLOCATOR_SYSMEM) == 0)
    gst_clear_object (&allocator);
  gst_clear_object (&self->allocator);
  self->allocator = allocator ? allocator :
      gst_object_ref (self->host_allocator);
  self->params = params;

  /* without I/O threads nothing reads while we push: no window */
  GST_OBJECT_LOCK (self);
  self->window = self->pool ? self->read_ahead : 0;
  GST_OBJECT_UNLOCK (self);
  /* reads ahead hold pool memory that nobody downstream can free: keep
   * them to half a bounded pool so that the pool never fills with them */
  if (UEL_IS_PINNED_ALLOCATOR (self->allocator)) {
    UelPinnedStats st;
    uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (self->allocator),
        &st);
    self->window = MIN (self->window, st.capacity / 2);
  }
  GST_INFO_OBJECT (self, "reading into %s memory (allocator %s), %"
      G_GUINT64_FORMAT " bytes ahead", self->allocator->mem_type,
      GST_OBJECT_NAME (self->allocator), self->window);
}

static gboolean
start_stream (GstUelSrc * self)
{
  g_autofree gchar *stream_id = NULL;
  GstCaps *caps;
  GstSegment segment;
  GstEvent *event;

  stream_id = g_compute_checksum_for_string (G_CHECKSUM_SHA256,
      uel_header_get_location (self->header), -1);
  event = gst_event_new_stream_start (stream_id);
  gst_event_set_group_id (event, gst_util_group_id_next ());
  gst_pad_push_event (self->srcpad, event);

  caps = gst_caps_new_empty_simple (UEL_TENSOR_MEDIA_TYPE);
  if (!gst_pad_push_event (self->srcpad, gst_event_new_caps (caps))) {
    gst_caps_unref (caps);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("downstream refused caps " UEL_TENSOR_CAPS));
    return FALSE;
  }
  negotiate_allocation (self, caps);
  gst_caps_unref (caps);

  gst_segment_init (&segment, GST_FORMAT_BYTES);
  gst_pad_push_event (self->srcpad, gst_event_new_segment (&segment));
  gst_pad_push_event (self->srcpad, uel_header_event_new (self->header,
          self->selected->len, self->selected_bytes));
  return TRUE;
}

static void
push_eos_and_pause (GstUelSrc * self)
{
  gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  gst_pad_pause_task (self->srcpad);
}

/* Starts reads until the window is full: always at least one, so that a
 * tensor larger than the window still goes through. */
static gboolean
fill_window (GstUelSrc * self, gint num_buffers, guint64 chunk_size,
    GError ** error)
{
  while (self->next < self->selected->len
      && (num_buffers < 0 || self->n_issued < num_buffers)) {
    guint tensor_index = g_array_index (self->selected, guint, self->next);
    const UelTensorInfo *info = uel_header_get_tensor (self->header,
        tensor_index);
    guint64 len = info->n_bytes - self->chunk_pos;
    Job *job;

    if (chunk_size > 0 && len > chunk_size)
      len = chunk_size;
    /* small reads are done inline by this thread: reading them ahead only
     * holds memory (bench: 20,000 small tensors went 0.46 → 0.69× of the
     * raw loop without it) */
    if (!g_queue_is_empty (&self->jobs)
        && (self->jobs_bytes + len > self->window || !self->pool
            || len < INLINE_MAX))
      break;
    if (len > G_MAXSIZE) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: tensor '%s' of %"
          G_GUINT64_FORMAT " bytes does not fit this machine's address "
          "space", uel_header_get_location (self->header), info->name,
          info->n_bytes);
      return FALSE;
    }
    job = start_job (self, tensor_index, self->chunk_pos, (gsize) len, error);
    if (!job)
      return FALSE;
    job->index = self->next;
    job->chunk_index = self->chunk_index;
    g_queue_push_tail (&self->jobs, job);
    self->jobs_bytes += len;
    self->n_issued++;
    if (self->chunk_pos + len == info->n_bytes) {
      self->next++;
      self->chunk_pos = 0;
      self->chunk_index = 0;
    } else {
      self->chunk_pos += len;
      self->chunk_index++;
    }
  }
  return TRUE;
}

static void
gst_uel_src_loop (GstPad * pad)
{
  GstUelSrc *self = GST_UEL_SRC (GST_PAD_PARENT (pad));
  const UelTensorInfo *info;
  UelTensorMeta *meta;
  GError *err = NULL;
  GstBuffer *buf;
  GstFlowReturn ret;
  gint num_buffers;
  guint64 chunk_size;
  Job *job;
  guint64 pos;
  gsize len;
  guint tensor_index, index, chunk_index;

  if (!self->started) {
    if (!start_stream (self)) {
      push_eos_and_pause (self);
      return;
    }
    self->started = TRUE;
  }
  if (g_atomic_int_get (&self->eos_requested)) {
    GST_DEBUG_OBJECT (self, "EOS requested after %d buffers", self->n_pushed);
    /* the reads ahead are not wanted: their memory goes back now */
    clear_jobs (self);
    push_eos_and_pause (self);
    return;
  }

  GST_OBJECT_LOCK (self);
  num_buffers = self->num_buffers;
  chunk_size = self->chunk_size;
  GST_OBJECT_UNLOCK (self);

  if (!fill_window (self, num_buffers, chunk_size, &err))
    goto error;
  job = g_queue_pop_head (&self->jobs);
  if (!job) {
    GST_DEBUG_OBJECT (self, "EOS after %d buffers, %" G_GUINT64_FORMAT
        " bytes", self->n_pushed, self->bytes_pushed);
    push_eos_and_pause (self);
    return;
  }
  self->jobs_bytes -= job->len;
  info = uel_header_get_tensor (self->header, job->tensor_index);
  tensor_index = job->tensor_index;
  index = job->index;
  chunk_index = job->chunk_index;
  pos = job->pos;
  len = job->len;

  buf = finish_job (self, g_steal_pointer (&job), &err);
  if (!buf)
    goto error;
  meta = uel_buffer_add_tensor_meta (buf, self->header, tensor_index, index,
      self->selected->len);
  meta->chunk_offset = pos;
  meta->chunk_index = chunk_index;
  meta->last_chunk = pos + len == info->n_bytes;
  GST_BUFFER_OFFSET (buf) = info->file_offset + pos;
  GST_BUFFER_OFFSET_END (buf) = info->file_offset + pos + len;
  if (self->n_pushed == 0)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  self->n_pushed++;
  self->bytes_pushed += len;

  GST_LOG_OBJECT (self, "pushing tensor %u/%u '%s' (%" G_GSIZE_FORMAT
      " bytes at %" G_GUINT64_FORMAT ")", meta->index + 1, meta->count,
      info->name, len, pos);
  ret = gst_pad_push (pad, buf);
  if (ret != GST_FLOW_OK) {
    GST_DEBUG_OBJECT (self, "pausing: %s", gst_flow_get_name (ret));
    gst_pad_pause_task (pad);
    if (ret == GST_FLOW_EOS) {
      gst_pad_push_event (pad, gst_event_new_eos ());
    } else if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) {
      GST_ELEMENT_FLOW_ERROR (self, ret);
      gst_pad_push_event (pad, gst_event_new_eos ());
    }
  }
  return;

error:
  if (GST_PAD_IS_FLUSHING (pad)) {
    /* shutting down: a refused allocation is not the user's problem */
    GST_DEBUG_OBJECT (self, "flushing: %s", err->message);
    g_clear_error (&err);
    gst_pad_pause_task (pad);
    return;
  }
  post_error (self, err);
  g_clear_error (&err);
  push_eos_and_pause (self);
}

/* ------------------------------------------------------------------ */
/* state */

/* Appends where a selection error comes from: the message of a filter
 * names the file and the item, not the element's property. */
static void
suffix_error (GError * err, const gchar * property)
{
  gchar *old = err->message;

  err->message = g_strdup_printf ("%s (property '%s')", old, property);
  g_free (old);
}

static gboolean
select_tensors (GstUelSrc * self, GError ** error)
{
  g_autoptr (UelTensorFilter) filter = uel_tensor_filter_new ();
  g_autofree gchar *spec = NULL, *dtypes = NULL;
  gint ndim;

  GST_OBJECT_LOCK (self);
  spec = g_strdup (self->tensors);
  dtypes = g_strdup (self->dtypes);
  ndim = self->ndim;
  GST_OBJECT_UNLOCK (self);

  uel_tensor_filter_add_names (filter, spec);
  uel_tensor_filter_set_ndim (filter, ndim);
  if (!uel_tensor_filter_set_dtypes (filter, dtypes, error)) {
    g_prefix_error (error, "%s: ", uel_header_get_location (self->header));
    suffix_error (*error, "dtypes");
    return FALSE;
  }
  self->selected = uel_tensor_filter_select (filter, self->header,
      &self->selected_bytes, error);
  if (!self->selected) {
    suffix_error (*error, "tensors");
    return FALSE;
  }
  return TRUE;
}

static void
gst_uel_src_close (GstUelSrc * self)
{
  clear_jobs (self);
  if (self->pool) {
    g_thread_pool_free (self->pool, FALSE, TRUE);
    self->pool = NULL;
  }
  close_files (self);
  g_clear_pointer (&self->selected, g_array_unref);
  g_clear_pointer (&self->header, uel_header_unref);
  gst_clear_object (&self->allocator);
  gst_clear_object (&self->host_allocator);
}

static gboolean
gst_uel_src_open (GstUelSrc * self)
{
  g_autofree gchar *location = NULL;
  GstUelSrcMethod method;
  guint io_threads;
  GError *err = NULL;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  method = self->method;
  io_threads = self->io_threads;
  GST_OBJECT_UNLOCK (self);

  if (!location || !*location) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No file name specified for reading."),
        ("the 'location' property is not set"));
    return FALSE;
  }

  self->header = uel_header_open (location, &err);
  if (!self->header)
    goto failed;
  if (!select_tensors (self, &err))
    goto failed;
  if (!open_files (self, method, &err))
    goto failed;

  if (io_threads == 0)
    io_threads = (guint) CLAMP (g_get_num_processors (), 1, AUTO_IO_THREADS);
  if (io_threads > 1) {
    self->pool = g_thread_pool_new (io_thread_func, NULL, (gint) io_threads,
        FALSE, &err);
    if (!self->pool)
      goto failed;
  }
  self->host_allocator = uel_host_allocator_new (HOST_CACHE_BYTES);

  GST_INFO_OBJECT (self, "%s: %u of %u tensors selected, %" G_GUINT64_FORMAT
      " bytes, %u file(s)", location, self->selected->len,
      uel_header_get_n_tensors (self->header), self->selected_bytes,
      uel_header_get_n_files (self->header));
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          uel_header_structure_new (self->header, self->selected->len,
              self->selected_bytes)));
  return TRUE;

failed:
  post_error (self, err);
  g_clear_error (&err);
  gst_uel_src_close (self);
  return FALSE;
}

static gboolean
gst_uel_src_activate_mode (GstPad * pad, GstObject * parent,
    GstPadMode mode, gboolean active)
{
  GstUelSrc *self = GST_UEL_SRC (parent);

  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  if (active) {
    clear_jobs (self);
    self->started = FALSE;
    self->n_issued = 0;
    self->next = 0;
    self->chunk_pos = 0;
    self->chunk_index = 0;
    self->n_pushed = 0;
    self->bytes_pushed = 0;
    g_atomic_int_set (&self->eos_requested, 0);
    return gst_pad_start_task (pad, (GstTaskFunction) gst_uel_src_loop, pad,
        NULL);
  }
  return gst_pad_stop_task (pad);
}

static gboolean
gst_uel_src_src_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_SEEK:
      /* tensors are not a timeline: seeking is not supported */
      gst_event_unref (event);
      return FALSE;
    default:
      return gst_pad_event_default (pad, parent, event);
  }
}

static gboolean
gst_uel_src_src_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstUelSrc *self = GST_UEL_SRC (parent);
  GstFormat format;

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_DURATION:
      gst_query_parse_duration (query, &format, NULL);
      if (format != GST_FORMAT_BYTES || !self->selected)
        return FALSE;
      gst_query_set_duration (query, format, (gint64) self->selected_bytes);
      return TRUE;
    case GST_QUERY_POSITION:
      gst_query_parse_position (query, &format, NULL);
      if (format != GST_FORMAT_BYTES)
        return FALSE;
      gst_query_set_position (query, format, (gint64) self->bytes_pushed);
      return TRUE;
    case GST_QUERY_SEEKING:
      gst_query_parse_seeking (query, &format, NULL, NULL, NULL);
      gst_query_set_seeking (query, format, FALSE, 0, -1);
      return TRUE;
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

/* An EOS sent to the element (gst_element_send_event() on it or on the
 * pipeline) ends the stream after the buffer being pushed, as GstBaseSrc
 * does: the tensors already read ahead are dropped. */
static gboolean
gst_uel_src_send_event (GstElement * element, GstEvent * event)
{
  GstUelSrc *self = GST_UEL_SRC (element);

  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    GST_DEBUG_OBJECT (self, "EOS requested by the application");
    g_atomic_int_set (&self->eos_requested, 1);
    gst_event_unref (event);
    return TRUE;
  }
  if (GST_ELEMENT_CLASS (parent_class)->send_event)
    return GST_ELEMENT_CLASS (parent_class)->send_event (element, event);
  gst_event_unref (event);
  return FALSE;
}

static GstStateChangeReturn
gst_uel_src_change_state (GstElement * element, GstStateChange transition)
{
  GstUelSrc *self = GST_UEL_SRC (element);
  GstStateChangeReturn ret;

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED
      && !gst_uel_src_open (self))
    return GST_STATE_CHANGE_FAILURE;

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);

  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY
      || (transition == GST_STATE_CHANGE_READY_TO_PAUSED
          && ret == GST_STATE_CHANGE_FAILURE))
    gst_uel_src_close (self);
  return ret;
}

/* ------------------------------------------------------------------ */
/* GObject */

static void
gst_uel_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstUelSrc *self = GST_UEL_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_TENSORS:
      g_free (self->tensors);
      self->tensors = g_value_dup_string (value);
      break;
    case PROP_METHOD:
      self->method = g_value_get_enum (value);
      break;
    case PROP_IO_THREADS:
      self->io_threads = g_value_get_uint (value);
      break;
    case PROP_NUM_BUFFERS:
      self->num_buffers = g_value_get_int (value);
      break;
    case PROP_CHUNK_SIZE:
      self->chunk_size = g_value_get_uint64 (value);
      break;
    case PROP_READ_AHEAD:
      self->read_ahead = g_value_get_uint64 (value);
      break;
    case PROP_DTYPES:
      g_free (self->dtypes);
      self->dtypes = g_value_dup_string (value);
      break;
    case PROP_NDIM:
      self->ndim = g_value_get_int (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_src_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstUelSrc *self = GST_UEL_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_TENSORS:
      g_value_set_string (value, self->tensors);
      break;
    case PROP_METHOD:
      g_value_set_enum (value, self->method);
      break;
    case PROP_IO_THREADS:
      g_value_set_uint (value, self->io_threads);
      break;
    case PROP_NUM_BUFFERS:
      g_value_set_int (value, self->num_buffers);
      break;
    case PROP_CHUNK_SIZE:
      g_value_set_uint64 (value, self->chunk_size);
      break;
    case PROP_READ_AHEAD:
      g_value_set_uint64 (value, self->read_ahead);
      break;
    case PROP_DTYPES:
      g_value_set_string (value, self->dtypes);
      break;
    case PROP_NDIM:
      g_value_set_int (value, self->ndim);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_src_finalize (GObject * object)
{
  GstUelSrc *self = GST_UEL_SRC (object);

  gst_uel_src_close (self);
  g_free (self->location);
  g_free (self->tensors);
  g_free (self->dtypes);
  g_mutex_clear (&self->io_lock);
  g_cond_clear (&self->io_cond);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_uel_src_class_init (GstUelSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw_ready = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_uel_src_set_property;
  gobject_class->get_property = gst_uel_src_get_property;
  gobject_class->finalize = gst_uel_src_finalize;

  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "The .safetensors file, or a sharded checkpoint's *.index.json",
          DEFAULT_LOCATION, rw_ready));
  g_object_class_install_property (gobject_class, PROP_TENSORS,
      g_param_spec_string ("tensors", "Tensors",
          "Comma-separated tensor names or glob patterns (* and ?) to read, "
          "in file order; each must match at least one tensor; a backslash "
          "takes the next character literally (\\, \\* \\\\) "
          "(empty = all tensors)", DEFAULT_TENSORS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_METHOD,
      g_param_spec_enum ("method", "Method",
          "How tensors are read: pread into recycled memory, zero-copy "
          "mmap, or O_DIRECT (falls back to pread where refused)",
          GST_TYPE_UEL_SRC_METHOD, DEFAULT_METHOD, rw_ready));
  g_object_class_install_property (gobject_class, PROP_IO_THREADS,
      g_param_spec_uint ("io-threads", "I/O threads",
          "Threads reading large tensors in parallel, in parts of 8 MiB, "
          "ahead of the one being pushed (0 = one per CPU, up to 16; 1 = "
          "read in the streaming thread only)", 0, MAX_IO_THREADS,
          DEFAULT_IO_THREADS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_NUM_BUFFERS,
      g_param_spec_int ("num-buffers", "Number of buffers",
          "Stop after this many buffers (-1 = all tensors)", -1, G_MAXINT,
          DEFAULT_NUM_BUFFERS, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_CHUNK_SIZE,
      g_param_spec_uint64 ("chunk-size", "Chunk size",
          "Emit tensors larger than this many bytes as consecutive chunks "
          "(0 = whole tensors)", 0, G_MAXUINT64, DEFAULT_CHUNK_SIZE,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_DTYPES,
      g_param_spec_string ("dtypes", "Dtypes",
          "Comma-separated dtype names, case-insensitive (e.g. \"U8\" or "
          "\"F16,BF16\"); only tensors of these dtypes are read, among those "
          "'tensors' selects (empty = all dtypes)",
          DEFAULT_DTYPES, rw_ready));
  g_object_class_install_property (gobject_class, PROP_READ_AHEAD,
      g_param_spec_uint64 ("read-ahead", "Read-ahead",
          "Bytes of the next buffers read by the I/O threads while the "
          "current one is pushed (at most half a pinned pool downstream; "
          "0 = one buffer at a time)", 0, G_MAXUINT64, DEFAULT_READ_AHEAD,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_NDIM,
      g_param_spec_int ("ndim", "Number of dimensions",
          "Only tensors with this many dimensions are read, among those "
          "'tensors' and 'dtypes' select (0 = scalars, -1 = any)", -1,
          G_MAXINT, DEFAULT_NDIM, rw_ready));

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Safetensors tensor source", "Source/File",
      "Reads the tensors of a .safetensors file or sharded checkpoint by "
      "byte offset, one buffer per tensor, header validated first",
      "gst-uel developers");
  /* gst-inspect-1.0 prints every metadata key: the example is where users
   * look first */
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 uelsrc location=model.safetensors ! fakesink");
  element_class->change_state = gst_uel_src_change_state;
  element_class->send_event = gst_uel_src_send_event;

  gst_type_mark_as_plugin_api (GST_TYPE_UEL_SRC_METHOD, 0);
}

static void
gst_uel_src_init (GstUelSrc * self)
{
  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_activatemode_function (self->srcpad,
      gst_uel_src_activate_mode);
  gst_pad_set_event_function (self->srcpad, gst_uel_src_src_event);
  gst_pad_set_query_function (self->srcpad, gst_uel_src_src_query);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->method = DEFAULT_METHOD;
  self->io_threads = DEFAULT_IO_THREADS;
  self->num_buffers = DEFAULT_NUM_BUFFERS;
  self->chunk_size = DEFAULT_CHUNK_SIZE;
  self->read_ahead = DEFAULT_READ_AHEAD;
  g_queue_init (&self->jobs);
  self->ndim = DEFAULT_NDIM;
  g_mutex_init (&self->io_lock);
  g_cond_init (&self->io_cond);
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);
}
