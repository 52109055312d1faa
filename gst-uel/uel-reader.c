/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:uel-reader
 * @title: UelReader
 *
 * The reading engine under `uelsrc`, the loader and the tool.  It reads
 * the tensors a #UelHeader describes, in stream order, one #GstBuffer per
 * tensor (or per chunk, with uel_reader_set_chunk_size()), each with its
 * #UelTensorMeta and the tensor's file offsets as the buffer's offsets,
 * the data aligned for its dtype whatever the file's layout.
 *
 * |[<!-- language="C" -->
 * g_autoptr (UelReader) reader = uel_reader_new (header);
 * GstBuffer *buf;
 *
 * if (!uel_reader_start (reader, &error))
 *   return FALSE;
 * while ((buf = uel_reader_next (reader, &error))) {
 *   // ... use buf ...
 *   gst_buffer_unref (buf);
 * }
 * if (error)
 *   return FALSE;
 * ]|
 *
 * Reads of a tensor larger than 1 MiB are split into parts of
 * %UEL_READER_PART_SIZE that I/O threads read in parallel, and the reads
 * of the next buffers run ahead of the one being handed out, within a
 * byte window (uel_reader_set_read_ahead()).  Smaller tensors are read by
 * the calling thread: handing one to a thread costs more than the copy.
 *
 * Files are opened when a tensor of theirs is read and closed when others
 * are needed: at most uel_reader_get_max_open_files() descriptors are
 * open at once (by default an eighth of the process's limit, at most 64),
 * so a checkpoint of thousands of shards reads under a small `ulimit -n`.
 * Each file is opened only if it is still the one whose header was
 * validated (uel_header_open_file()), and checked again after each read
 * (uel_header_check_file()): a file rewritten, truncated or extended while
 * it is read is a %UEL_ERROR_FILE_CHANGED error, never a buffer of mixed
 * bytes.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include "uel-enum-private.h"
#include "uel-error.h"
#include "uel-hostmem.h"
#include "uel-http-private.h"
#include "uel-io.h"
#include "uel-io-private.h"
#include "uel-meta.h"
#include "uel-pinned.h"
#include "uel-reader.h"
#include "uel-reader-private.h"

GST_DEBUG_CATEGORY_STATIC (uel_reader_debug);
#define GST_CAT_DEFAULT uel_reader_debug

/* 0 I/O threads: one per CPU, up to this (measured on a 16-core GPU
 * host: reading from the page cache into pinned memory scales to about
 * 16 threads) */
#define AUTO_IO_THREADS 16
/* 0 I/O threads for a remote file: at least this many connections (one
 * a thread), whatever the CPUs; a single TCP stream is bound by its
 * window, several fill the link */
#define AUTO_REMOTE_CONNECTIONS 4
/* Smaller reads are done by the calling thread itself. */
#define INLINE_MAX ((gsize) 1 << 20)
/* Consecutive small reads of one file are done as one preadv(2) straight
 * into their buffers, and checked against the file once: two system calls
 * for up to RUN_MAX_JOBS tensors instead of two each (a million one-byte
 * tensors through uelsrc ! fakesink: 0.41 → 1.2 million a second), and no
 * copy (20,000 tensors of 4-64 KiB: a copy out of one scratch read, or an
 * fstat after each read, each cost 9% of uelsrc's rate).  Within the
 * read-ahead. */
#define RUN_MAX_BYTES ((gsize) 256 << 10)
#define RUN_MAX_JOBS 256
/* O_DIRECT needs offsets, sizes and memory aligned to the logical block
 * size; 4096 covers every device we know of. */
#define DIRECT_ALIGN G_GUINT64_CONSTANT (4096)
/* recycled host memory kept for reuse (the largest Llama-like tensors of
 * 100-200 MiB cycle through without new page faults) */
#define HOST_CACHE_BYTES (G_GUINT64_CONSTANT (512) << 20)
#define MAX_OPEN_FILES 64

/* a file mapping shared by every buffer cut from it */
typedef struct
{
  gint ref_count;
  guint8 *addr;
  gsize len;
} Mapping;

/* one of the header's files, open or not, under files_lock */
typedef struct
{
  guint index;
  gint fd;                      /* buffered reads; -1: closed */
  gint direct_fd;               /* O_DIRECT, or -1 */
  Mapping *map;                 /* UEL_READ_MMAP */
  guint users;                  /* reads in progress */
  GList link;                   /* in the idle list while open and unused */
  gint reads_done;              /* reads completed, counted atomically */
  gint checked;                 /* reads_done when the file last proved
                                 * unchanged (the stream's thread) */
  UelRemote *remote;            /* a remote file: always "open", no fd;
                                 * read with ranged requests */
} OpenFile;

typedef struct _IoPart IoPart;

/* a buffer being read: the read-ahead window holds several */
typedef struct
{
  GstBuffer *buf;
  GstMemory *mem;               /* NULL: nothing to read, or mapped */
  GstMapInfo map;
  OpenFile *file;               /* acquired, or NULL for no bytes */
  guint tensor_index;
  guint index;                  /* position in the stream */
  guint64 pos;                  /* where the bytes start in the tensor */
  gsize len;
  guint chunk_index;
  gsize delta;                  /* O_DIRECT: where they start in @mem */
  gsize elem;                   /* the alignment the data needs */
  guint pending;                /* parts still being read, under io_lock */
  GError *error;                /* the first failure, under io_lock */
  IoPart *parts;
  gboolean in_run;              /* read and checked with the others of a run */
  gint done_seq;                /* its file's reads_done once it completed */
} Job;

/* one part of a read, for the I/O thread pool */
struct _IoPart
{
  UelReader *self;
  Job *job;
  gint fd;                      /* buffered */
  gint direct_fd;               /* O_DIRECT, or -1: read from fd */
  guint8 *dst;
  gsize len;                    /* bytes asked for */
  gsize need;                   /* bytes that must arrive (O_DIRECT at EOF) */
  guint64 offset;
  const gchar *path;
};

struct _UelReader
{
  GObject parent;

  UelHeader *header;

  /* configuration, set before uel_reader_start() */
  GArray *selected;             /* guint: tensor indices, stream order */
  guint64 selected_bytes;
  UelReadMethod method;
  guint io_threads;
  guint64 chunk_size;
  guint64 read_ahead;
  gint max_buffers;
  guint max_ahead;              /* most buffers in the window, 0: any */
  guint max_open;
  GstAllocator *allocator;      /* what to read into */
  GstAllocationParams params;
  GstAllocator *host_allocator; /* ours, and the fallback */

  /* the files, under files_lock */
  GMutex files_lock;
  OpenFile *files;
  guint n_fds;                  /* descriptors open */
  GQueue idle;                  /* open files nobody reads, oldest first */

  /* the stream, in the thread that calls next() */
  gboolean started;
  GThreadPool *pool;
  guint next;                   /* position in selected of the next read */
  guint64 chunk_pos;            /* where in that tensor */
  guint chunk_index;
  gint n_issued;
  GQueue jobs;                  /* the read-ahead window, in stream order */
  guint64 jobs_bytes;
  guint64 window;               /* bytes the window may hold */
  GPtrArray *run;               /* Job *: small reads not yet done */
  gsize run_bytes;
  gsize run_limit;              /* the most bytes a run may read ahead */
  gint flushing;                /* atomic */

  /* completion of the parts read by the I/O threads */
  GMutex io_lock;
  GCond io_cond;
};

G_DEFINE_TYPE_WITH_CODE (UelReader, uel_reader, G_TYPE_OBJECT,
    GST_DEBUG_CATEGORY_INIT (uel_reader_debug, "uelreader", 0,
        "gst-uel reading engine"));

static const GEnumValue read_methods[] = {
  {UEL_READ_PREAD, "pread into recycled memory", "pread"},
  {UEL_READ_MMAP, "zero-copy buffers over mmap", "mmap"},
  {UEL_READ_DIRECT, "O_DIRECT aligned reads", "direct"},
  {0, NULL, NULL}
};

UEL_DEFINE_ENUM_TYPE (UelReadMethod, uel_read_method, read_methods);

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

static guint
file_fds (const OpenFile * f)
{
  return (f->fd >= 0) + (f->direct_fd >= 0);
}

/* under files_lock, for a file nobody reads */
static void
close_file (UelReader * self, OpenFile * f)
{
  g_assert (f->users == 0);
  GST_LOG_OBJECT (self, "closing %s",
      uel_header_get_file_path (self->header, f->index));
  g_queue_unlink (&self->idle, &f->link);
  self->n_fds -= file_fds (f);
  if (f->fd >= 0)
    close (f->fd);
  if (f->direct_fd >= 0)
    close (f->direct_fd);
  f->fd = f->direct_fd = -1;
  g_clear_pointer (&f->map, mapping_unref);
}

static void
close_idle_locked (UelReader * self, guint keep)
{
  while (self->idle.length > 0 && self->n_fds > keep)
    close_file (self, self->idle.head->data);
}

static gboolean
is_out_of_descriptors (const GError * err)
{
  return err->domain == G_FILE_ERROR && (err->code == G_FILE_ERROR_MFILE
      || err->code == G_FILE_ERROR_NFILE);
}

/* under files_lock: opens file @f as the method wants it */
static gboolean
open_file_locked (UelReader * self, OpenFile * f, GError ** error)
{
  const gchar *path = uel_header_get_file_path (self->header, f->index);
  guint64 size = uel_header_get_file_size (self->header, f->index);
  GError *err = NULL;

  f->fd = uel_header_open_file (self->header, f->index, 0, &err);
  if (f->fd < 0 && is_out_of_descriptors (err)) {
    /* the process's other descriptors took the room: give back ours */
    GST_DEBUG_OBJECT (self, "%s: retrying after closing %u idle files",
        err->message, self->idle.length);
    g_clear_error (&err);
    close_idle_locked (self, 0);
    f->fd = uel_header_open_file (self->header, f->index, 0, &err);
  }
  if (f->fd < 0) {
    g_propagate_error (error, err);
    return FALSE;
  }
  posix_fadvise (f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  /* validated as it opened: the reads from now on need a check */
  g_atomic_int_set (&f->checked, g_atomic_int_get (&f->reads_done));

  if (self->method == UEL_READ_DIRECT) {
    f->direct_fd = uel_header_open_file (self->header, f->index, O_DIRECT,
        &err);
    if (f->direct_fd < 0) {
      GST_INFO_OBJECT (self, "O_DIRECT refused (%s): reading with pread "
          "instead", err->message);
      g_clear_error (&err);
    }
  } else if (self->method == UEL_READ_MMAP && size > 0) {
    gpointer addr = mmap (NULL, size, PROT_READ, MAP_SHARED, f->fd, 0);

    if (addr == MAP_FAILED) {
      gint e = errno;

      g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "%s: cannot map %"
          G_GUINT64_FORMAT " bytes: %s", path, size, g_strerror (e));
      close (f->fd);
      f->fd = -1;
      return FALSE;
    }
    f->map = g_new0 (Mapping, 1);
    f->map->ref_count = 1;
    f->map->addr = addr;
    f->map->len = size;
  }
  self->n_fds += file_fds (f);
  GST_LOG_OBJECT (self, "opened %s (%u descriptors open)", path,
      self->n_fds);
  return TRUE;
}

/* The file of tensors in @file_index, open, for a read: NULL with @error
 * set when it cannot be opened, or NULL without an error when opening it
 * would go over the descriptor budget and @must is FALSE (the caller
 * waits for a read to finish and tries again). */
static OpenFile *
file_acquire (UelReader * self, guint file_index, gboolean must,
    GError ** error)
{
  OpenFile *f = &self->files[file_index];
  guint need = self->method == UEL_READ_DIRECT ? 2 : 1;

  g_mutex_lock (&self->files_lock);
  if (f->remote) {
    /* takes no descriptor: each read takes a connection of its own */
    f->users++;
    g_mutex_unlock (&self->files_lock);
    return f;
  }
  if (f->fd >= 0) {
    if (f->users++ == 0)
      g_queue_unlink (&self->idle, &f->link);
    g_mutex_unlock (&self->files_lock);
    return f;
  }
  close_idle_locked (self, self->max_open >= need ? self->max_open - need :
      0);
  if (!must && self->n_fds + need > self->max_open) {
    g_mutex_unlock (&self->files_lock);
    return NULL;
  }
  if (!open_file_locked (self, f, error)) {
    g_mutex_unlock (&self->files_lock);
    return NULL;
  }
  f->users = 1;
  g_mutex_unlock (&self->files_lock);
  return f;
}

static void
file_release (UelReader * self, OpenFile * f)
{
  g_mutex_lock (&self->files_lock);
  g_assert (f->users > 0);
  if (--f->users == 0 && !f->remote) {
    g_queue_push_tail_link (&self->idle, &f->link);
    close_idle_locked (self, self->max_open);
  }
  g_mutex_unlock (&self->files_lock);
}

static void
close_all_files (UelReader * self)
{
  g_mutex_lock (&self->files_lock);
  close_idle_locked (self, 0);
  g_mutex_unlock (&self->files_lock);
}

/* ------------------------------------------------------------------ */
/* reading */

/* @job's bytes have all arrived: it takes the next number of its file's
 * completed reads (see finish_job) */
static void
read_completed (Job * job)
{
  job->done_seq = g_atomic_int_add (&job->file->reads_done, 1) + 1;
}

/* Reads @len bytes at @offset of the acquired file @f into @dst: pread,
 * or ranged requests for a remote file. */
static gboolean
file_read (UelReader * self, OpenFile * f, gpointer dst, gsize len,
    guint64 offset, GError ** error)
{
  /* a remote read ends at once while the reader flushes or stops */
  if (f->remote)
    return uel_remote_read (f->remote, dst, len, offset, &self->flushing,
        error);
  return uel_pread_full (f->fd, dst, len, offset,
      uel_header_get_file_path (self->header, f->index), error);
}

static gboolean
read_part (IoPart * part, GError ** error)
{
  gsize done = 0;

  if (part->job->file->remote)
    return file_read (part->self, part->job->file, part->dst, part->len,
        part->offset, error);
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
  UelReader *self = part->self;
  Job *job = part->job;
  GError *err = NULL;

  read_part (part, &err);
  g_mutex_lock (&self->io_lock);
  if (err && !job->error)
    job->error = g_steal_pointer (&err);
  if (--job->pending == 0) {
    read_completed (job);
    g_cond_broadcast (&self->io_cond);
  }
  g_mutex_unlock (&self->io_lock);
  g_clear_error (&err);
}

/* Reads @len bytes at @offset into @dst for @job: in this thread when it
 * is small or there are no I/O threads, otherwise as parts that the I/O
 * threads read while this thread goes on.  With a @direct_fd, @offset,
 * @len and @dst are block-aligned and only the first @need bytes must
 * exist in the file. */
static void
submit_read (UelReader * self, Job * job, gint fd, gint direct_fd,
    guint8 * dst, gsize len, gsize need, guint64 offset, const gchar * path)
{
  guint n;

  if (!self->pool || len < INLINE_MAX) {
    IoPart part = { self, job, fd, direct_fd, dst, len, need, offset, path };
    read_part (&part, &job->error);
    read_completed (job);
    return;
  }
  n = (guint) ((len + UEL_READER_PART_SIZE - 1) / UEL_READER_PART_SIZE);
  job->parts = g_new (IoPart, n);
  for (guint i = 0; i < n; i++) {
    gsize start = (gsize) i * UEL_READER_PART_SIZE;
    gsize end = MIN (start + UEL_READER_PART_SIZE, len);

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
wait_job (UelReader * self, Job * job)
{
  g_mutex_lock (&self->io_lock);
  while (job->pending > 0)
    g_cond_wait (&self->io_cond, &self->io_lock);
  g_mutex_unlock (&self->io_lock);
}

static void
job_free (UelReader * self, Job * job)
{
  /* never free memory a thread is still reading into */
  wait_job (self, job);
  if (job->mem) {
    gst_memory_unmap (job->mem, &job->map);
    gst_memory_unref (job->mem);
  }
  if (job->file)
    file_release (self, job->file);
  gst_clear_buffer (&job->buf);
  g_clear_error (&job->error);
  g_free (job->parts);
  g_free (job);
}

static void
clear_jobs (UelReader * self)
{
  Job *job;

  while ((job = g_queue_pop_head (&self->jobs)))
    job_free (self, job);
  self->jobs_bytes = 0;
}

static GstMemory *
alloc_memory (UelReader * self, gsize size, gsize align)
{
  GstAllocationParams params = self->params;
  GstMemory *mem;

  params.align = MAX (params.align, align - 1);
  mem = gst_allocator_alloc (self->allocator, size, &params);
  /* a given pool refuses what can never fit it (and gives up while
   * flushing): take our own memory rather than fail the stream */
  if (!mem && self->allocator != self->host_allocator
      && !g_atomic_int_get (&self->flushing)) {
    GST_DEBUG_OBJECT (self, "%s refused %" G_GSIZE_FORMAT " bytes: reading "
        "into host memory", GST_OBJECT_NAME (self->allocator), size);
    mem = gst_allocator_alloc (self->host_allocator, size, &params);
  }
  return mem;
}

static gboolean
map_job_memory (UelReader * self, Job * job, gsize size, gsize align)
{
  job->mem = alloc_memory (self, size, align);
  if (job->mem && gst_memory_map (job->mem, &job->map, GST_MAP_WRITE))
    return TRUE;
  if (job->mem)
    gst_memory_unref (job->mem);
  job->mem = NULL;
  return FALSE;
}

/* where a job's bytes are in its file */
static guint64
job_offset (UelReader * self, Job * job)
{
  return uel_header_get_tensor (self->header, job->tensor_index)->file_offset
      + job->pos;
}

/* Reads the run: one read of its bytes, one check of the file, then the
 * bytes copied to each job.  A read that fails fails the job it failed in
 * (and the ones after, which the stream never reaches); the jobs before
 * it are complete.  A file that changed fails them all. */
static void
run_flush (UelReader * self)
{
  Job *first;
  const gchar *path;
  GError *err = NULL, *changed = NULL;
  gsize done = 0, pos = 0;
  struct iovec iov[RUN_MAX_JOBS];

  if (self->run->len == 0)
    return;
  first = g_ptr_array_index (self->run, 0);
  path = uel_header_get_file_path (self->header, first->file->index);
  for (guint i = 0; i < self->run->len; i++) {
    Job *job = g_ptr_array_index (self->run, i);

    iov[i].iov_base = job->map.data;
    iov[i].iov_len = job->len;
  }
  if (first->file->remote)
    /* one range request; each response is checked as it arrives */
    uel_remote_readv (first->file->remote, iov, (gint) self->run->len,
        self->run_bytes, job_offset (self, first), &self->flushing, &done,
        &err);
  else {
    uel_preadv_partial (first->file->fd, iov, (gint) self->run->len,
        self->run_bytes, job_offset (self, first), path, &done, &err);
    uel_header_check_file (self->header, first->file->index,
        first->file->fd, &changed);
  }
  for (guint i = 0; i < self->run->len; i++) {
    Job *job = g_ptr_array_index (self->run, i);

    if (changed)
      job->error = g_error_copy (changed);
    else if (pos + job->len > done)
      job->error = g_error_copy (err);
    pos += job->len;
  }
  GST_LOG_OBJECT (self, "read %u small buffers in one read of %"
      G_GSIZE_FORMAT " bytes", self->run->len, self->run_bytes);
  g_clear_error (&err);
  g_clear_error (&changed);
  g_ptr_array_set_size (self->run, 0);
  self->run_bytes = 0;
}

/* Whether a read of @len bytes at @offset of file @file_index continues
 * the run, within its limits. */
static gboolean
run_continues (UelReader * self, guint file_index, guint64 offset, gsize len)
{
  Job *last;

  if (self->run->len == 0 || self->run->len >= RUN_MAX_JOBS
      || self->run_bytes + len > self->run_limit)
    return FALSE;
  last = g_ptr_array_index (self->run, self->run->len - 1);
  return last->file->index == file_index
      && job_offset (self, last) + last->len == offset;
}

static void
run_add (UelReader * self, Job * job)
{
  if (!run_continues (self, job->file->index, job_offset (self, job),
          job->len))
    run_flush (self);
  job->in_run = TRUE;
  g_ptr_array_add (self->run, job);
  self->run_bytes += job->len;
}

/* UEL_READ_MMAP: gives @job its bytes as a view of the file's mapping,
 * which the view keeps alive; FALSE when they must be read instead (no
 * mapping, or bytes not aligned for the dtype). */
static gboolean
map_view (UelReader * self, Job * job, const UelTensorInfo * info,
    guint64 offset)
{
  OpenFile *f = job->file;

  if (!f->map || (GPOINTER_TO_SIZE (f->map->addr + offset) % job->elem) != 0)
    return FALSE;
  /* a truncated file would SIGBUS the reader: refuse to hand out pages
   * of a file that changed (this narrows, not closes, the window; use
   * pread for files that may change) */
  if (!uel_header_check_file (self->header, info->file_index, f->fd,
          &job->error))
    return TRUE;
  gst_buffer_append_memory (job->buf,
      gst_memory_new_wrapped (GST_MEMORY_FLAG_READONLY,
          f->map->addr + offset, job->len, 0, job->len, mapping_ref (f->map),
          mapping_unref));
  return TRUE;
}

/* Starts reading [pos, pos + len) of the tensor at @tensor_index from the
 * acquired @file: returns FALSE when there is no memory for it. */
static gboolean
start_job (UelReader * self, Job * job, GError ** error)
{
  const UelTensorInfo *info = uel_header_get_tensor (self->header,
      job->tensor_index);
  OpenFile *f = job->file;
  const gchar *path = uel_header_get_file_path (self->header,
      info->file_index);
  guint64 offset = info->file_offset + job->pos;
  gsize len = job->len;

  if (map_view (self, job, info, offset))
    return TRUE;

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
      return TRUE;
    }
    /* the allocator ignored the alignment: read this one buffered */
    GST_DEBUG_OBJECT (self, "memory not block-aligned, using pread");
    gst_memory_unmap (job->mem, &job->map);
    gst_memory_unref (job->mem);
    job->mem = NULL;
  }

  if (!map_job_memory (self, job, len, job->elem))
    goto alloc_failed;
  if (len <= self->run_limit) {
    run_add (self, job);
    return TRUE;
  }
  submit_read (self, job, f->fd, -1, job->map.data, len, len, offset, path);
  return TRUE;

alloc_failed:
  g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY,
      "%s: tensor '%s': cannot allocate %" G_GSIZE_FORMAT " bytes", path,
      info->name, len);
  return FALSE;
}

static Job *
job_new (UelReader * self, guint tensor_index, guint64 pos, gsize len)
{
  const UelTensorInfo *info = uel_header_get_tensor (self->header,
      tensor_index);
  Job *job = g_new0 (Job, 1);

  job->buf = gst_buffer_new ();
  job->tensor_index = tensor_index;
  job->pos = pos;
  job->len = len;
  job->elem = MAX (uel_dtype_get_bits (info->dtype) / 8, 1);
  return job;
}

/* Waits for the job's bytes, checks that the file did not change under
 * them, and makes its buffer: exactly the bytes of the range, aligned to
 * the element size, with its meta.  Frees @job. */
static GstBuffer *
finish_job (UelReader * self, Job * job, guint count, GError ** error)
{
  const UelTensorInfo *info = uel_header_get_tensor (self->header,
      job->tensor_index);
  UelTensorMeta *meta;
  GstBuffer *buf;

  wait_job (self, job);
  /* bytes read while the file changed are not the validated tensor (a
   * mapped one was checked when it was mapped).  One check after the read
   * covers every read of the file completed before it: the reads ahead
   * that finished meanwhile need no check of their own (one fstat per
   * 20,000 small tensors took 9% of uelsrc's rate). */
  if (!job->error && job->mem && !job->in_run
      && job->done_seq - g_atomic_int_get (&job->file->checked) > 0) {
    gint seq = g_atomic_int_get (&job->file->reads_done);

    if (uel_header_check_file (self->header, info->file_index,
            job->file->fd, &job->error))
      g_atomic_int_set (&job->file->checked, seq);
  }
  if (job->error) {
    /* the message names the file and the offsets: say which tensor too */
    g_prefix_error (&job->error, "tensor '%s': ", info->name);
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
  meta = uel_buffer_add_tensor_meta (buf, self->header, job->tensor_index,
      job->index, count);
  meta->chunk_offset = job->pos;
  meta->chunk_index = job->chunk_index;
  meta->last_chunk = job->pos + job->len == info->n_bytes;
  GST_BUFFER_OFFSET (buf) = info->file_offset + job->pos;
  GST_BUFFER_OFFSET_END (buf) = info->file_offset + job->pos + job->len;
  job_free (self, job);
  return buf;
}

/* ------------------------------------------------------------------ */
/* the stream */

/* Starts reads until the window is full: always at least one, so that a
 * tensor larger than the window still goes through. */
static gboolean
fill_window (UelReader * self, GError ** error)
{
  GError *err = NULL;

  while (self->next < self->selected->len
      && (self->max_buffers < 0 || self->n_issued < self->max_buffers)) {
    guint tensor_index = g_array_index (self->selected, guint, self->next);
    const UelTensorInfo *info = uel_header_get_tensor (self->header,
        tensor_index);
    gboolean first = g_queue_is_empty (&self->jobs);
    guint64 len = info->n_bytes - self->chunk_pos;
    Job *job;

    if (self->chunk_size > 0 && len > self->chunk_size)
      len = self->chunk_size;
    /* small reads are done inline by this thread, and read ahead only as
     * a run (reading them ahead one by one only holds memory: 20,000
     * small tensors went 0.46 → 0.69× of the raw loop without it) */
    if (!first && self->max_ahead && self->jobs.length >= self->max_ahead)
      break;
    if (!first && !(len == 0 || run_continues (self, info->file_index,
                info->file_offset + self->chunk_pos, (gsize) len))
        && (self->jobs_bytes + len > self->window || !self->pool
            || len < INLINE_MAX))
      break;
    if (len > G_MAXSIZE) {
      g_set_error (&err, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: tensor '%s' of %"
          G_GUINT64_FORMAT " bytes does not fit this machine's address "
          "space", uel_header_get_location (self->header), info->name,
          info->n_bytes);
      goto failed;
    }
    job = job_new (self, tensor_index, self->chunk_pos, (gsize) len);
    if (len > 0) {
      /* the first read may open over the budget (a read must make
       * progress); the others wait for the first to free its file */
      job->file = file_acquire (self, info->file_index, first, &err);
      if (!job->file) {
        job_free (self, job);
        if (!err)
          break;
        g_prefix_error (&err, "tensor '%s': ", info->name);
        goto failed;
      }
      if (!start_job (self, job, &err)) {
        job_free (self, job);
        goto failed;
      }
    }
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
  run_flush (self);
  return TRUE;

failed:
  /* the run's jobs stay in the window, unread: never hand them out */
  for (guint i = 0; i < self->run->len; i++) {
    Job *job = g_ptr_array_index (self->run, i);

    job->error = g_error_copy (err);
  }
  g_ptr_array_set_size (self->run, 0);
  self->run_bytes = 0;
  g_propagate_error (error, err);
  return FALSE;
}

/**
 * uel_reader_start:
 * @reader: a #UelReader
 * @error: return location for a #GError
 *
 * Starts the stream from its first tensor: the I/O threads, and the first
 * file, opened now so that a file that cannot be read is an error here
 * rather than at the first uel_reader_next().  A reader that was stopped
 * starts again from the beginning.
 *
 * Returns: %TRUE, or %FALSE with @error set (#G_FILE_ERROR when the file
 *   cannot be opened, %UEL_ERROR_FILE_CHANGED when it is no longer the
 *   file that was validated)
 */
gboolean
uel_reader_start (UelReader * reader, GError ** error)
{
  guint threads;

  g_return_val_if_fail (UEL_IS_READER (reader), FALSE);
  g_return_val_if_fail (!reader->started, FALSE);

  if (reader->selected->len > 0) {
    const UelTensorInfo *first = uel_header_get_tensor (reader->header,
        g_array_index (reader->selected, guint, 0));
    OpenFile *f = file_acquire (reader, first->file_index, TRUE, error);

    if (!f)
      return FALSE;
    file_release (reader, f);
  }

  threads = reader->io_threads;
  if (threads == 0)
    threads = (guint) CLAMP (g_get_num_processors (), 1, AUTO_IO_THREADS);
  if (reader->io_threads == 0 && reader->files[0].remote)
    threads = MAX (threads, AUTO_REMOTE_CONNECTIONS);
  if (threads > 1) {
    reader->pool = g_thread_pool_new (io_thread_func, NULL, (gint) threads,
        FALSE, error);
    if (!reader->pool)
      return FALSE;
  }
  /* without I/O threads nothing reads while a buffer is handed out: no
   * window; reads ahead hold pool memory that nobody downstream can free:
   * keep them to half a bounded pool so that it never fills with them */
  reader->window = reader->pool ? reader->read_ahead : 0;
  if (UEL_IS_PINNED_ALLOCATOR (reader->allocator)) {
    UelPinnedStats st;

    uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (reader->allocator),
        &st);
    reader->window = MIN (reader->window, st.capacity / 2);
  }
  reader->run_limit = (gsize) MIN (RUN_MAX_BYTES, reader->read_ahead);
  if (UEL_IS_PINNED_ALLOCATOR (reader->allocator))
    reader->run_limit = (gsize) MIN (reader->run_limit, reader->window);
  reader->next = 0;
  reader->chunk_pos = 0;
  reader->chunk_index = 0;
  reader->n_issued = 0;
  reader->started = TRUE;
  GST_INFO_OBJECT (reader, "%s: reading %u tensors, %" G_GUINT64_FORMAT
      " bytes, into %s memory, %u I/O threads, %" G_GUINT64_FORMAT
      " bytes ahead, at most %u descriptors",
      uel_header_get_location (reader->header), reader->selected->len,
      reader->selected_bytes, reader->allocator->mem_type, threads,
      reader->window, reader->max_open);
  return TRUE;
}

/**
 * uel_reader_next:
 * @reader: a started #UelReader
 * @error: return location for a #GError
 *
 * The next buffer of the stream: a tensor, or a chunk of one, with its
 * #UelTensorMeta (index and count in the stream, chunk position) and its
 * file offsets as the buffer's offsets.  Reads ahead, within the window,
 * as it goes.
 *
 * Returns: (transfer full) (nullable): the buffer, or %NULL at the end of
 *   the stream (@error unset) or on an error: %UEL_ERROR_IO,
 *   %UEL_ERROR_FILE_CHANGED, %UEL_ERROR_NO_MEMORY, or #G_FILE_ERROR when
 *   a shard cannot be opened; the message names the file and the tensor
 */
GstBuffer *
uel_reader_next (UelReader * reader, GError ** error)
{
  Job *job;

  g_return_val_if_fail (UEL_IS_READER (reader), NULL);
  g_return_val_if_fail (reader->started, NULL);

  if (!fill_window (reader, error))
    return NULL;
  job = g_queue_pop_head (&reader->jobs);
  if (!job)
    return NULL;
  reader->jobs_bytes -= job->len;
  return finish_job (reader, job, reader->selected->len, error);
}

/**
 * uel_reader_set_flushing:
 * @reader: a #UelReader
 * @flushing: whether the reader's owner is shutting down
 *
 * While flushing, memory refused by the allocator given with
 * uel_reader_set_allocator() (a pinned pool that its owner set flushing)
 * is a failure, not a reason to read into host memory instead, and the
 * reads of a remote file in progress or waiting to retry end at once
 * with an error.  Any thread may call it.
 */
void
uel_reader_set_flushing (UelReader * reader, gboolean flushing)
{
  g_return_if_fail (UEL_IS_READER (reader));
  g_atomic_int_set (&reader->flushing, flushing);
}

/**
 * uel_reader_stop:
 * @reader: a #UelReader
 *
 * Drops the reads ahead (their memory goes back at once), stops the I/O
 * threads and closes the files.  Buffers already returned stay valid.
 */
void
uel_reader_stop (UelReader * reader)
{
  gint was_flushing;

  g_return_if_fail (UEL_IS_READER (reader));

  /* remote reads ahead end now rather than after their last byte */
  was_flushing = g_atomic_int_get (&reader->flushing);
  g_atomic_int_set (&reader->flushing, TRUE);
  g_ptr_array_set_size (reader->run, 0);
  reader->run_bytes = 0;
  clear_jobs (reader);
  if (reader->pool) {
    g_thread_pool_free (reader->pool, FALSE, TRUE);
    reader->pool = NULL;
  }
  g_atomic_int_set (&reader->flushing, was_flushing);
  close_all_files (reader);
  reader->started = FALSE;
}

/**
 * uel_reader_is_started:
 * @reader: a #UelReader
 *
 * Returns: whether @reader is between uel_reader_start() and
 *   uel_reader_stop(): reading, and its settings fixed
 */
gboolean
uel_reader_is_started (UelReader * reader)
{
  g_return_val_if_fail (UEL_IS_READER (reader), FALSE);

  return reader->started;
}

/* ------------------------------------------------------------------ */
/* random access */

/**
 * uel_reader_read_tensor:
 * @reader: a #UelReader
 * @tensor_index: a tensor of the header, below uel_header_get_n_tensors()
 * @error: return location for a #GError
 *
 * Reads one whole tensor now, in the calling thread, whatever the stream
 * is doing: into the reader's allocator (uel_reader_set_allocator()), with
 * buffered reads, or, with %UEL_READ_MMAP, as a view of the file's mapping
 * as the stream's buffers are; checked as the stream's reads are.  Its
 * meta's index and count are those of the header.  Safe to call from
 * several threads at once, and alongside uel_reader_next().
 *
 * Returns: (transfer full) (nullable): the tensor, or %NULL with @error
 *   set as for uel_reader_next()
 */
GstBuffer *
uel_reader_read_tensor (UelReader * reader, guint tensor_index,
    GError ** error)
{
  const UelTensorInfo *info;
  Job *job;
  GError *err = NULL;

  g_return_val_if_fail (UEL_IS_READER (reader), NULL);
  g_return_val_if_fail (tensor_index <
      uel_header_get_n_tensors (reader->header), NULL);

  info = uel_header_get_tensor (reader->header, tensor_index);
  if (info->n_bytes > G_MAXSIZE) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: tensor '%s' of %"
        G_GUINT64_FORMAT " bytes does not fit this machine's address space",
        uel_header_get_file_path (reader->header, info->file_index),
        info->name, info->n_bytes);
    return NULL;
  }
  job = job_new (reader, tensor_index, 0, (gsize) info->n_bytes);
  job->index = tensor_index;
  if (job->len > 0) {
    const gchar *path = uel_header_get_file_path (reader->header,
        info->file_index);

    job->file = file_acquire (reader, info->file_index, TRUE, &err);
    if (!job->file) {
      g_propagate_prefixed_error (error, err, "tensor '%s': ", info->name);
      job_free (reader, job);
      return NULL;
    }
    if (map_view (reader, job, info, info->file_offset))
      return finish_job (reader, job,
          uel_header_get_n_tensors (reader->header), error);
    if (!map_job_memory (reader, job, job->len, job->elem)) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: tensor '%s': "
          "cannot allocate %" G_GSIZE_FORMAT " bytes", path, info->name,
          job->len);
      job_free (reader, job);
      return NULL;
    }
    file_read (reader, job->file, job->map.data, job->len,
        info->file_offset, &job->error);
    read_completed (job);
  }
  return finish_job (reader, job, uel_header_get_n_tensors (reader->header),
      error);
}

void
uel_reader_set_max_ahead (UelReader * reader, guint n_buffers)
{
  reader->max_ahead = n_buffers;
}

gboolean
uel_reader_pread (UelReader * reader, guint file_index, gpointer dst,
    gsize len, guint64 offset, GError ** error)
{
  OpenFile *f = file_acquire (reader, file_index, TRUE, error);
  gboolean ok;

  if (!f)
    return FALSE;
  ok = file_read (reader, f, dst, len, offset, error)
      && uel_header_check_file (reader->header, file_index, f->fd, error);
  file_release (reader, f);
  return ok;
}

/* ------------------------------------------------------------------ */
/* configuration */

static void
add_tensor (UelReader * reader, guint index)
{
  g_array_append_val (reader->selected, index);
  reader->selected_bytes += uel_header_get_tensor (reader->header,
      index)->n_bytes;
}

/**
 * uel_reader_set_tensors:
 * @reader: a #UelReader, not started
 * @indices: (array length=n_indices): tensors of the header in the order
 *   to read them (uel_tensor_filter_select() gives them)
 * @n_indices: the number of @indices; 0 reads nothing
 *
 * Chooses what the stream reads: every tensor of the header until this is
 * called.
 */
void
uel_reader_set_tensors (UelReader * reader, const guint * indices,
    guint n_indices)
{
  guint n;

  g_return_if_fail (UEL_IS_READER (reader));
  g_return_if_fail (!reader->started);
  g_return_if_fail (indices != NULL || n_indices == 0);

  n = uel_header_get_n_tensors (reader->header);
  g_array_set_size (reader->selected, 0);
  reader->selected_bytes = 0;
  for (guint i = 0; i < n_indices; i++) {
    g_return_if_fail (indices[i] < n);
    add_tensor (reader, indices[i]);
  }
}

/**
 * uel_reader_get_n_tensors:
 * @reader: a #UelReader
 *
 * Returns: the number of tensors the stream reads
 */
guint
uel_reader_get_n_tensors (UelReader * reader)
{
  g_return_val_if_fail (UEL_IS_READER (reader), 0);
  return reader->selected->len;
}

/**
 * uel_reader_get_tensors: (skip)
 * @reader: a #UelReader
 *
 * Not introspectable: the array's length comes from another call.
 * Bindings have the indices they gave uel_reader_set_tensors(), and read
 * each buffer's #UelTensorMeta.
 *
 * Returns: (array) (transfer none): the header indices of the tensors the
 *   stream reads, in stream order (uel_reader_get_n_tensors() of them)
 */
const guint *
uel_reader_get_tensors (UelReader * reader)
{
  g_return_val_if_fail (UEL_IS_READER (reader), NULL);
  return (const guint *) reader->selected->data;
}

/**
 * uel_reader_get_total_bytes:
 * @reader: a #UelReader
 *
 * Returns: the bytes of the tensors the stream reads
 */
guint64
uel_reader_get_total_bytes (UelReader * reader)
{
  g_return_val_if_fail (UEL_IS_READER (reader), 0);
  return reader->selected_bytes;
}

/**
 * uel_reader_set_method:
 * @reader: a #UelReader, not started
 * @method: how to read (%UEL_READ_PREAD by default)
 */
void
uel_reader_set_method (UelReader * reader, UelReadMethod method)
{
  g_return_if_fail (UEL_IS_READER (reader));
  g_return_if_fail (!reader->started);
  reader->method = method;
}

/**
 * uel_reader_set_io_threads:
 * @reader: a #UelReader, not started
 * @n_threads: threads that read large tensors in parallel parts, ahead of
 *   the buffer being handed out: 0 for one per CPU up to 16 (the default;
 *   at least 4 for a remote file), 1 for none (everything is read by the
 *   thread calling uel_reader_next())
 *
 * For a remote file (an `http://` or `https://` location) each thread
 * reads on a connection of its own: this is the number of connections
 * at once, plus the calling thread's for runs of small tensors.
 */
void
uel_reader_set_io_threads (UelReader * reader, guint n_threads)
{
  g_return_if_fail (UEL_IS_READER (reader));
  g_return_if_fail (!reader->started);
  reader->io_threads = n_threads;
}

/**
 * uel_reader_set_chunk_size:
 * @reader: a #UelReader, not started
 * @chunk_size: tensors larger than this many bytes come as consecutive
 *   chunks of at most this size (0, the default: whole tensors)
 */
void
uel_reader_set_chunk_size (UelReader * reader, guint64 chunk_size)
{
  g_return_if_fail (UEL_IS_READER (reader));
  g_return_if_fail (!reader->started);
  reader->chunk_size = chunk_size;
}

/**
 * uel_reader_set_read_ahead:
 * @reader: a #UelReader, not started
 * @bytes: bytes of the next buffers the I/O threads may read while the
 *   current one is handed out (0: one buffer at a time, everything read is
 *   handed out; at most half a pinned pool given as the allocator)
 */
void
uel_reader_set_read_ahead (UelReader * reader, guint64 bytes)
{
  g_return_if_fail (UEL_IS_READER (reader));
  g_return_if_fail (!reader->started);
  reader->read_ahead = bytes;
}

/**
 * uel_reader_set_max_buffers:
 * @reader: a #UelReader, not started
 * @max_buffers: the stream ends after this many buffers (-1, the default:
 *   all of them); nothing beyond is read ahead
 */
void
uel_reader_set_max_buffers (UelReader * reader, gint max_buffers)
{
  g_return_if_fail (UEL_IS_READER (reader));
  g_return_if_fail (!reader->started);
  reader->max_buffers = max_buffers;
}

/**
 * uel_reader_set_max_open_files:
 * @reader: a #UelReader
 * @max_open: the most file descriptors the reader keeps open (O_DIRECT
 *   takes two a file); 0 for the default, an eighth of the process's
 *   limit (RLIMIT_NOFILE) between 2 and 64.  A read in progress may open
 *   its file over the limit when every open file is busy.
 */
void
uel_reader_set_max_open_files (UelReader * reader, guint max_open)
{
  g_return_if_fail (UEL_IS_READER (reader));

  if (max_open == 0) {
    struct rlimit rl;
    guint64 limit = 1024;

    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      limit = rl.rlim_cur;
    max_open = (guint) CLAMP (limit / 8, 2, MAX_OPEN_FILES);
  }
  g_mutex_lock (&reader->files_lock);
  reader->max_open = max_open;
  close_idle_locked (reader, max_open);
  g_mutex_unlock (&reader->files_lock);
}

/**
 * uel_reader_get_max_open_files:
 * @reader: a #UelReader
 *
 * Returns: the most file descriptors the reader keeps open
 */
guint
uel_reader_get_max_open_files (UelReader * reader)
{
  g_return_val_if_fail (UEL_IS_READER (reader), 0);
  return reader->max_open;
}

/**
 * uel_reader_get_n_open_files:
 * @reader: a #UelReader
 *
 * Returns: the file descriptors open now
 */
guint
uel_reader_get_n_open_files (UelReader * reader)
{
  guint n;

  g_return_val_if_fail (UEL_IS_READER (reader), 0);
  g_mutex_lock (&reader->files_lock);
  n = reader->n_fds;
  g_mutex_unlock (&reader->files_lock);
  return n;
}

/**
 * uel_reader_set_allocator:
 * @reader: a #UelReader, not started
 * @allocator: (nullable): the allocator to read into (a pinned pool, a
 *   downstream element's), or %NULL for the reader's recycled host memory
 *   (the default).  GStreamer's system memory is replaced by the host
 *   memory too: malloc'd memory costs a page fault per 4 KiB of every large
 *   tensor, where recycled memory is already there.
 * @params: (nullable): its allocation parameters
 *
 * Memory that @allocator refuses (a pool smaller than a tensor, or one
 * that gave up waiting) is taken from host memory instead, unless the
 * reader is flushing (uel_reader_set_flushing()).
 */
void
uel_reader_set_allocator (UelReader * reader, GstAllocator * allocator,
    const GstAllocationParams * params)
{
  g_return_if_fail (UEL_IS_READER (reader));
  g_return_if_fail (!reader->started);

  if (allocator && g_strcmp0 (allocator->mem_type, GST_ALLOCATOR_SYSMEM) == 0)
    allocator = NULL;
  gst_object_replace ((GstObject **) & reader->allocator,
      GST_OBJECT (allocator ? allocator : reader->host_allocator));
  if (params)
    reader->params = *params;
  else
    gst_allocation_params_init (&reader->params);
}

/* ------------------------------------------------------------------ */
/* GObject */

static void
uel_reader_finalize (GObject * object)
{
  UelReader *self = UEL_READER (object);

  uel_reader_stop (self);
  g_free (self->files);
  g_ptr_array_unref (self->run);
  g_array_unref (self->selected);
  gst_clear_object (&self->allocator);
  gst_clear_object (&self->host_allocator);
  g_clear_pointer (&self->header, uel_header_unref);
  g_mutex_clear (&self->files_lock);
  g_mutex_clear (&self->io_lock);
  g_cond_clear (&self->io_cond);
  G_OBJECT_CLASS (uel_reader_parent_class)->finalize (object);
}

static void
uel_reader_class_init (UelReaderClass * klass)
{
  G_OBJECT_CLASS (klass)->finalize = uel_reader_finalize;
}

static void
uel_reader_init (UelReader * self)
{
  self->selected = g_array_new (FALSE, FALSE, sizeof (guint));
  self->run = g_ptr_array_new ();
  self->method = UEL_READ_PREAD;
  self->max_buffers = -1;
  g_queue_init (&self->jobs);
  g_queue_init (&self->idle);
  g_mutex_init (&self->files_lock);
  g_mutex_init (&self->io_lock);
  g_cond_init (&self->io_cond);
}

/**
 * uel_reader_new:
 * @header: a validated header
 *
 * A reader of every tensor of @header, in stream order, with pread, one
 * I/O thread per CPU and a 64 MiB read-ahead window, into recycled host
 * memory: change any of that before uel_reader_start().
 *
 * Returns: (transfer full): the reader
 */
UelReader *
uel_reader_new (UelHeader * header)
{
  UelReader *self;
  guint n_files;

  g_return_val_if_fail (header != NULL, NULL);

  self = g_object_new (UEL_TYPE_READER, NULL);
  self->header = uel_header_ref (header);
  n_files = uel_header_get_n_files (header);
  self->files = g_new0 (OpenFile, n_files);
  for (guint i = 0; i < n_files; i++) {
    self->files[i].index = i;
    self->files[i].fd = self->files[i].direct_fd = -1;
    self->files[i].link.data = &self->files[i];
    self->files[i].remote = uel_header_get_file_remote (header, i);
  }
  self->read_ahead = G_GUINT64_CONSTANT (64) << 20;
  self->host_allocator = uel_host_allocator_new (HOST_CACHE_BYTES);
  self->allocator = gst_object_ref (self->host_allocator);
  gst_allocation_params_init (&self->params);
  uel_reader_set_max_open_files (self, 0);
  for (guint i = 0; i < uel_header_get_n_tensors (header); i++)
    add_tensor (self, i);
  return self;
}

/**
 * uel_reader_get_header:
 * @reader: a #UelReader
 *
 * Returns: (transfer none): the header the reader reads
 */
UelHeader *
uel_reader_get_header (UelReader * reader)
{
  g_return_val_if_fail (UEL_IS_READER (reader), NULL);
  return reader->header;
}
