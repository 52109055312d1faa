/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * bench-limits: the raw limits of this machine for reading a file, in
 * plain C, so that the pipelines can be measured against them in the same
 * run.  One mode per call; one line of key=value pairs on stdout.
 *
 *   chunked   pread of the whole file in --block chunks (16 MiB) into one
 *             reused buffer: the page-cache limit
 *   tensor    pread of each tensor (offsets from the file's header, read by
 *             UelHeader) into one reused buffer as large as the largest
 *             tensor: the limit for one-buffer-per-tensor streaming
 *   fresh     pread of each tensor into memory malloc'd for it and freed
 *             after it: what page faults cost
 *   direct    O_DIRECT reads of the whole file in --block chunks into one
 *             reused aligned buffer, --threads readers (each its own buffer,
 *             blocks taken in turn): the disk limit
 *   copy      pread of the whole file in --block chunks, each pwritten at
 *             the same offset of a new file --out, then fdatasync: the limit
 *             for copying a file on this machine (read and write)
 *   write     pwrite of one --block buffer until --out is as large as FILE,
 *             then fdatasync: the write limit alone
 *   cast-f8   pread of each tensor into one reused buffer, and the BF16
 *             tensors cast to F8_E4M3 (float8_e4m3fn) into a second one by
 *             a plain scalar loop, one thread; `bytes` counts what comes
 *             out (one byte per BF16 element, other tensors as they are),
 *             as a sink after `uelconvert` would
 *   evict     drop the file from the page cache (fdatasync, then
 *             posix_fadvise DONTNEED) and report what stays cached
 *   resident  report how much of the file is in the page cache (mincore)
 *   touch     map --block bytes of fresh anonymous memory (on huge pages
 *             unless --no-huge-pages) and write a byte of every 4 KiB:
 *             what filling memory that is not yet backed costs (FILE is
 *             ignored, like prime's)
 *   prime     touch --block bytes of anonymous memory (on huge pages unless
 *             --no-huge-pages) and free them (FILE
 *             is ignored): on these virtual machines memory that has been
 *             free for about 2 s is taken back by the hypervisor and costs
 *             0.4 GB/s to touch again, so a measurement that runs right
 *             after this one finds memory as a long-running process would
 *
 * Buffers are allocated and touched before the clock starts, except in
 * `fresh`, where allocating is what is measured.  copy and write time the
 * fdatasync too, and remove --out once the clock has stopped.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <gst-uel/uel-header.h>

#define DIRECT_ALIGN ((gsize) 4096)

typedef struct
{
  const gchar *path;
  gint fd;
  guint64 size;
  gsize block;
  guint n_threads;
  /* shared by the readers of the direct and chunked modes */
  gint next_block;              /* atomic */
  guint64 n_blocks;
} Job;

typedef struct
{
  Job *job;
  guint8 *buf;
  guint64 bytes;
  gboolean failed;
} Reader;

static void
die (const gchar * what, const gchar * path)
{
  fprintf (stderr, "bench-limits: %s: %s: %s\n", path, what,
      g_strerror (errno));
  exit (1);
}

/* The reused buffers: page-aligned and, from 2 MiB up, on transparent huge
 * pages, as the elements' own memory is.  This matters beyond TLB misses:
 * an O_DIRECT request holds at most max_segments (254 on virtio-blk)
 * physically contiguous pieces, so 4 KiB pages cap a request at about
 * 1 MiB where huge pages allow 4 MiB. */
static gboolean use_huge_pages = TRUE;

static guint8 *
alloc_touched (gsize size)
{
  const gsize huge = (gsize) 2 << 20;
  gsize len = MAX ((size + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN,
      DIRECT_ALIGN);
  guint8 *p;

  if (use_huge_pages && len >= huge) {
    len = (len + huge - 1) / huge * huge;
    if (posix_memalign ((void **) &p, huge, len))
      return NULL;
    madvise (p, len, MADV_HUGEPAGE);
  } else if (posix_memalign ((void **) &p, DIRECT_ALIGN, len)) {
    return NULL;
  }
  memset (p, 1, len);
  return p;
}

/* reads up to @len bytes at @off; returns the bytes read (short at the end
 * of the file) or -1 */
static gssize
pread_all (gint fd, guint8 * buf, gsize len, guint64 off, gboolean direct)
{
  gsize done = 0;

  while (done < len) {
    ssize_t r = pread (fd, buf + done, len - done, (off_t) (off + done));

    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    done += (gsize) r;
    if (direct && (gsize) r % DIRECT_ALIGN)
      break;
  }
  return (gssize) done;
}

static gpointer
block_reader (gpointer data)
{
  Reader *r = data;
  Job *job = r->job;

  for (;;) {
    guint64 b = (guint64) g_atomic_int_add (&job->next_block, 1);
    guint64 off = b * job->block;
    gssize n;

    if (b >= job->n_blocks)
      break;
    n = pread_all (job->fd, r->buf, job->block, off, TRUE);
    if (n < 0) {
      fprintf (stderr, "bench-limits: %s: read at %" G_GUINT64_FORMAT
          ": %s\n", job->path, off, g_strerror (errno));
      r->failed = TRUE;
      break;
    }
    r->bytes += (guint64) n;
  }
  return NULL;
}

/* chunked (buffered) or direct reads of the whole file in blocks */
static guint64
read_blocks (Job * job, gboolean direct, gdouble * secs)
{
  Reader *readers = g_new0 (Reader, job->n_threads);
  GThread **threads = g_new0 (GThread *, job->n_threads);
  guint64 total = 0;
  gint64 t0;

  job->n_blocks = (job->size + job->block - 1) / job->block;
  job->next_block = 0;
  for (guint i = 0; i < job->n_threads; i++) {
    readers[i].job = job;
    readers[i].buf = alloc_touched (job->block);
    if (!readers[i].buf)
      die ("cannot allocate the buffer", job->path);
  }

  t0 = g_get_monotonic_time ();
  if (job->n_threads == 1 && !direct) {
    /* the plain loop: one buffer, one thread, no atomics */
    for (guint64 off = 0; off < job->size; off += job->block) {
      gssize n = pread_all (job->fd, readers[0].buf, job->block, off, FALSE);
      if (n <= 0)
        die ("read failed", job->path);
      total += (guint64) n;
    }
  } else {
    for (guint i = 1; i < job->n_threads; i++)
      threads[i] = g_thread_new ("reader", block_reader, &readers[i]);
    block_reader (&readers[0]);
    for (guint i = 1; i < job->n_threads; i++)
      g_thread_join (threads[i]);
    for (guint i = 0; i < job->n_threads; i++) {
      if (readers[i].failed)
        exit (1);
      total += readers[i].bytes;
    }
  }
  *secs = (g_get_monotonic_time () - t0) / 1e6;

  for (guint i = 0; i < job->n_threads; i++)
    free (readers[i].buf);
  g_free (readers);
  g_free (threads);
  return total;
}

/* BF16 to float8_e4m3fn, rounding to nearest even, as uelconvert does
 * (ml_dtypes' rules): no infinity, what rounds above 448 and ±Inf become
 * the NaN S.1111.111, subnormals kept.  Plain scalar C, one element at a
 * time, but computing both cases and choosing, not branching: the random
 * bits of the sample model would mispredict most branches. */
static inline guint8
bf16_to_f8_e4m3 (guint16 x)
{
  guint a = x & 0x7FFF, e = a >> 7, normal, sub, s, shift, is_normal;

  /* a normal of E4M3 (2^-6 and up): rebias the exponent from 127 to 7 and
   * round off 4 of the 7 fraction bits; a carry moves into the exponent,
   * and past 0x7E (448) everything, ±Inf and NaN too, is the NaN */
  normal = MIN ((a - (120u << 7) + 7 + ((a >> 4) & 1)) >> 4, 0x7Fu);
  /* below it: the significand with its leading one, rounded to steps of
   * 2^-9; from a shift of 9 on everything rounds to zero (125 - e wraps
   * above 125: a normal, where this result is not used) */
  s = 0x80 | (a & 0x7F);
  shift = MIN (125u - e, 9u);
  sub = (s + ((1u << shift) >> 1) - 1 + ((s >> shift) & 1)) >> shift;
  /* a mask, not a conditional, which the compiler would make a branch */
  is_normal = -(guint) (e >= 121);
  return ((x >> 8) & 0x80) | (normal & is_normal) | (sub & ~is_normal);
}

static void
cast_bf16_to_f8_e4m3 (const guint8 * src, guint8 * dst, gsize n_elements)
{
  for (gsize i = 0; i < n_elements; i++) {
    guint16 x;

    memcpy (&x, src + 2 * i, 2);
    dst[i] = bf16_to_f8_e4m3 (x);
  }
  /* the results are never read: keep the compiler from dropping them */
  __asm__ volatile ("":: "r" (dst):"memory");
}

/* one pread per tensor, into a reused buffer or into fresh memory; with
 * @cast, BF16 tensors then go to F8_E4M3 and count as their output */
static guint64
read_tensors (UelHeader * h, gint * fds, gboolean fresh, gboolean cast,
    guint64 * n_tensors, gdouble * secs)
{
  guint n = uel_header_get_n_tensors (h);
  guint64 largest = 0, total = 0;
  guint8 *buf = NULL, *out = NULL;
  gint64 t0;

  for (guint i = 0; i < n; i++)
    largest = MAX (largest, uel_header_get_tensor (h, i)->n_bytes);
  if (!fresh) {
    buf = alloc_touched ((gsize) largest);
    if (!buf)
      die ("cannot allocate the buffer", uel_header_get_location (h));
  }
  if (cast) {
    out = alloc_touched ((gsize) largest / 2);
    if (!out)
      die ("cannot allocate the buffer", uel_header_get_location (h));
  }

  t0 = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);
    guint8 *dst = fresh ? malloc (MAX (t->n_bytes, 1)) : buf;
    gssize r;

    if (!dst)
      die ("cannot allocate", t->name);
    r = pread_all (fds[t->file_index], dst, (gsize) t->n_bytes,
        t->file_offset, FALSE);
    if (r < 0 || (guint64) r != t->n_bytes)
      die ("short read", t->name);
    if (cast && t->dtype == UEL_DTYPE_BF16) {
      cast_bf16_to_f8_e4m3 (dst, out, (gsize) t->n_elements);
      total += t->n_elements;
    } else {
      total += t->n_bytes;
    }
    if (fresh)
      free (dst);
  }
  *secs = (g_get_monotonic_time () - t0) / 1e6;
  *n_tensors = n;
  free (buf);
  free (out);
  return total;
}

static void
pwrite_all (gint fd, const guint8 * buf, gsize len, guint64 off,
    const gchar * path)
{
  gsize done = 0;

  while (done < len) {
    ssize_t r = pwrite (fd, buf + done, len - done, (off_t) (off + done));

    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      die ("write failed", path);
    done += (gsize) r;
  }
}

/* copy: the file in blocks into a new file @out; write: one buffer written
 * over and over until @out is as large as the file.  Both end with
 * fdatasync, inside the time, and remove @out after it. */
static guint64
write_blocks (Job * job, const gchar * out, gboolean copy, gdouble * secs)
{
  guint8 *buf = alloc_touched (job->block);
  guint64 total = 0;
  gint64 t0;
  gint ofd;

  if (!buf)
    die ("cannot allocate the buffer", job->path);
  if (!copy) {
    GRand *rand = g_rand_new_with_seed (1);

    for (gsize i = 0; i + 4 <= job->block; i += 4) {
      guint32 w = g_rand_int (rand);

      memcpy (buf + i, &w, 4);
    }
    g_rand_free (rand);
  }
  ofd = open (out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (ofd < 0)
    die ("cannot create", out);

  t0 = g_get_monotonic_time ();
  for (guint64 off = 0; off < job->size; off += job->block) {
    gsize n = (gsize) MIN ((guint64) job->block, job->size - off);

    if (copy) {
      if (pread_all (job->fd, buf, n, off, FALSE) != (gssize) n)
        die ("short read", job->path);
    } else {
      /* the offset in every 4 KiB page: no two pages of the file alike,
       * for a disk or host that would dedupe or compress them */
      for (gsize p = 0; p + 8 <= n; p += 4096)
        memcpy (buf + p, &off, 8);
    }
    pwrite_all (ofd, buf, n, off, out);
    total += n;
  }
  if (fdatasync (ofd) != 0)
    die ("fdatasync failed", out);
  *secs = (g_get_monotonic_time () - t0) / 1e6;

  close (ofd);
  if (unlink (out) != 0)
    die ("cannot remove", out);
  free (buf);
  return total;
}

static gdouble
resident_fraction (gint fd, guint64 size)
{
  gsize page = (gsize) sysconf (_SC_PAGESIZE);
  guint64 pages = (size + page - 1) / page, in = 0;
  const guint64 window = G_GUINT64_CONSTANT (1) << 30;
  guchar *vec;

  if (size == 0)
    return 1.0;
  vec = g_malloc (window / page);
  for (guint64 off = 0; off < size; off += window) {
    gsize len = (gsize) MIN (window, size - off);
    gsize np = (len + page - 1) / page;
    void *p = mmap (NULL, len, PROT_READ, MAP_SHARED, fd, (off_t) off);

    if (p == MAP_FAILED)
      die ("cannot map", "mincore");
    if (mincore (p, len, vec) != 0)
      die ("mincore failed", "mincore");
    for (gsize i = 0; i < np; i++)
      in += vec[i] & 1;
    munmap (p, len);
  }
  g_free (vec);
  return (gdouble) in / pages;
}

/* prime and touch: maps @size bytes (on huge pages unless
 * --no-huge-pages), writes a byte of every 4 KiB, unmaps them */
static gint
touch_memory (const gchar * mode, gsize size)
{
  gint64 t0 = g_get_monotonic_time ();
  guint8 *p = mmap (NULL, size, PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  gdouble secs;

  if (p == MAP_FAILED)
    die ("cannot map", mode);
  if (use_huge_pages)
    madvise (p, size, MADV_HUGEPAGE);
  for (gsize o = 0; o < size; o += 4096)
    p[o] = 1;
  secs = (g_get_monotonic_time () - t0) / 1e6;
  munmap (p, size);
  printf ("bench-limits mode=%s bytes=%" G_GSIZE_FORMAT " seconds=%.6f"
      " gbps=%.4f huge_pages=%d\n", mode, size, secs, size / secs / 1e9,
      use_huge_pages);
  return 0;
}

static guint64
parse_size (const gchar * s)
{
  gchar *end;
  guint64 v = g_ascii_strtoull (s, &end, 10);

  switch (g_ascii_toupper (*end)) {
    case 'G':
      return v << 30;
    case 'M':
      return v << 20;
    case 'K':
      return v << 10;
    default:
      return v;
  }
}

int
main (int argc, char **argv)
{
  gchar *block_str = NULL, *out_path = NULL;
  gint n_threads = 1;
  GOptionEntry entries[] = {
    {"block", 'b', 0, G_OPTION_ARG_STRING, &block_str,
        "Block size for chunked and direct (default 16M; K, M, G)", "BYTES"},
    {"threads", 'j', 0, G_OPTION_ARG_INT, &n_threads,
        "Readers for chunked and direct (default 1)", "N"},
    {"no-huge-pages", 0, G_OPTION_FLAG_REVERSE, G_OPTION_ARG_NONE,
          &use_huge_pages, "Reused buffers on 4 KiB pages only", NULL},
    {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path,
        "The file copy and write create (and remove at the end)", "FILE"},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("MODE FILE | prime");
  GError *err = NULL;
  const gchar *mode, *path;
  guint64 bytes = 0, n_tensors = 0;
  gdouble secs = 0, resident;
  gsize block;
  struct rusage ru;
  struct stat st;
  Job job = { 0, };
  gint fd;

  g_option_context_set_summary (ctx, "Modes: chunked, tensor, fresh, "
      "direct, copy, write, cast-f8, evict, resident, prime, touch (see the "
      "source's first comment).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    fprintf (stderr, "bench-limits: %s\n", err->message);
    return 2;
  }
  if (argc == 2 && (strcmp (argv[1], "prime") == 0
          || strcmp (argv[1], "touch") == 0))
    return touch_memory (argv[1], block_str ? parse_size (block_str) :
        768 << 20);
  if (argc != 3 || n_threads < 1) {
    fprintf (stderr, "bench-limits: give MODE and FILE (see --help)\n");
    return 2;
  }
  mode = argv[1];
  path = argv[2];
  block = (gsize) (block_str ? parse_size (block_str) : 16 << 20);
  if (block == 0 || block % DIRECT_ALIGN) {
    fprintf (stderr, "bench-limits: --block must be a multiple of 4096\n");
    return 2;
  }

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat (fd, &st) < 0)
    die ("cannot open", path);
  job.path = path;
  job.fd = fd;
  job.size = (guint64) st.st_size;
  job.block = block;
  job.n_threads = (guint) n_threads;

  if (strcmp (mode, "chunked") == 0) {
    posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    bytes = read_blocks (&job, FALSE, &secs);
  } else if (strcmp (mode, "direct") == 0) {
    gint dfd = open (path, O_RDONLY | O_CLOEXEC | O_DIRECT);

    if (dfd < 0)
      die ("O_DIRECT refused", path);
    job.fd = dfd;
    bytes = read_blocks (&job, TRUE, &secs);
    close (dfd);
  } else if (strcmp (mode, "copy") == 0 || strcmp (mode, "write") == 0) {
    if (!out_path) {
      fprintf (stderr, "bench-limits: %s needs --out\n", mode);
      return 2;
    }
    posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    bytes = write_blocks (&job, out_path, mode[0] == 'c', &secs);
  } else if (strcmp (mode, "tensor") == 0 || strcmp (mode, "fresh") == 0
      || strcmp (mode, "cast-f8") == 0) {
    UelHeader *h = uel_header_open (path, &err);
    guint nf;
    gint *fds;

    if (!h) {
      fprintf (stderr, "bench-limits: %s\n", err->message);
      return 1;
    }
    nf = uel_header_get_n_files (h);
    fds = g_new (gint, nf);
    for (guint i = 0; i < nf; i++) {
      fds[i] = open (uel_header_get_file_path (h, i), O_RDONLY | O_CLOEXEC);
      if (fds[i] < 0)
        die ("cannot open", uel_header_get_file_path (h, i));
      posix_fadvise (fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    bytes = read_tensors (h, fds, mode[0] == 'f', mode[0] == 'c',
        &n_tensors, &secs);
    for (guint i = 0; i < nf; i++)
      close (fds[i]);
    g_free (fds);
    uel_header_unref (h);
  } else if (strcmp (mode, "evict") == 0) {
    fdatasync (fd);
    if (posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
      die ("posix_fadvise failed", path);
  } else if (strcmp (mode, "resident") != 0) {
    fprintf (stderr, "bench-limits: unknown mode '%s'\n", mode);
    return 2;
  }

  resident = resident_fraction (fd, job.size);
  close (fd);
  getrusage (RUSAGE_SELF, &ru);
  printf ("bench-limits mode=%s block=%" G_GSIZE_FORMAT " threads=%d bytes=%"
      G_GUINT64_FORMAT " tensors=%" G_GUINT64_FORMAT " seconds=%.6f"
      " gbps=%.4f tensors_per_s=%.1f maxrss_kb=%ld minflt=%ld majflt=%ld"
      " utime_s=%.3f stime_s=%.3f resident_after=%.4f huge_pages=%d\n",
      mode, block, n_threads, bytes, n_tensors, secs,
      secs > 0 ? bytes / secs / 1e9 : 0.0,
      secs > 0 ? n_tensors / secs : 0.0, ru.ru_maxrss, ru.ru_minflt,
      ru.ru_majflt, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
      ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, resident,
      use_huge_pages);
  g_free (block_str);
  g_free (out_path);
  return 0;
}
