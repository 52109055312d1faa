/* gst-uel: the file → GPU limit of this machine, for tests/gpu/run.
 *
 *   file-limit FILE [REPS]
 *
 * Like h2d-limit, the raw CUDA runtime and no gst-uel on purpose: this
 * measures what the host can do, so that our pipelines can be compared
 * with the best any loader could reach on the same machine, not only with
 * the DMA limit.  The file is read once first (warm cache); every
 * measurement is the median of REPS runs (default 3), in GB/s = 10^9 bytes
 * of file data per second, on one greppable line:
 *
 *   limit NAME threads=N piece=SIZE X.XX GB/s median (MIN-MAX) EXTRA
 *
 * - pread-pinned: N threads pread the file, piece after piece, into a
 *   256 MiB ring pinned the way the pinned pool pins (anonymous mmap,
 *   MADV_HUGEPAGE, MADV_POPULATE_WRITE, cudaHostRegister portable), slot
 *   after slot; a slot holds one piece at a time, so with 32 MiB pieces at
 *   most 8 reads are in flight, as in a 256 MiB pool.  The ring is pinned
 *   once, before, and its cost printed on a `pin` line.  Page cache →
 *   pinned memory by the kernel: the host-side ceiling.
 * - pread-gpu: the same reads, and each piece is then copied with
 *   cudaMemcpyAsync to its offset in one device allocation the size of the
 *   file, on one stream per thread; a slot is refilled only once the event
 *   recorded after its copy has completed.  From the first read to the
 *   last copy done: the ceiling of file → GPU through a pinned ring, the
 *   number our pipelines are compared with.  The device memory is checked
 *   against the file after the last run.
 * - memcpy-pinned: the file mmap'd (MAP_POPULATE) and 16 threads memcpy it
 *   into the ring: the same host copy done in user space.
 * - register-file: the file mmap'd shared and read-only, registered with
 *   cudaHostRegisterReadOnly, and copied straight to the device in 64 MiB
 *   pieces on one stream: no host copy at all, where the driver allows it.
 *   Printed without and with the cost of registering (mmap included).
 *
 * Threads are capped at twice the processors.  Without a CUDA device the
 * ring stays plain memory, and the GPU measurements print
 * `skip NAME: why`.  Any other failure prints the call and exits 1.
 * SPDX-License-Identifier: MIT
 */
#include <cuda_runtime_api.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MiB ((gsize) 1 << 20)
#define GiB ((gsize) 1 << 30)
/* the pool size of our best pipeline row (tests/gpu/RESULTS.md) */
#define RING (256 * MiB)
#define MAX_THREADS 16
#define MAX_SLOTS (RING / (8 * MiB))
#define REGISTER_PIECE (64 * MiB)

#define CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
      fprintf (stderr, "%s: %s\n", #call, cudaGetErrorString (e_)); \
      exit (1); } } while (0)

typedef struct
{
  int fd;
  guint64 size;
  const char *src;              /* memcpy from here instead of pread */
  const char *file;             /* the file mapped, to check device copies */
  const char *ring_kind;        /* "pinned" or "plain" */
  char *ring;
  gsize piece;
  gint nslots;
  gint npieces;
  char *dev;                    /* copy each piece here, or NULL */
  cudaStream_t streams[MAX_THREADS];    /* one per thread */
  cudaEvent_t events[MAX_SLOTS];        /* per slot: its last copy */
  GMutex lock;
  GCond cond;
  gint turn[MAX_SLOTS];         /* per slot: the piece that may use it next */
  gint next;                    /* the next piece to take */
} Run;

typedef struct
{
  Run *run;
  guint index;
} Worker;

static void
die (const char *call)
{
  int e = errno;

  fprintf (stderr, "%s: %s\n", call, g_strerror (e));
  exit (1);
}

static double
now (void)
{
  return g_get_monotonic_time () / 1e6;
}

static int
cmp (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
pread_full (int fd, char *dst, gsize len, guint64 off)
{
  while (len > 0) {
    ssize_t n = pread (fd, dst, len, (off_t) off);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      die ("pread");
    if (n == 0) {
      fprintf (stderr, "pread: end of file at %" G_GUINT64_FORMAT
          " (did the file shrink?)\n", off);
      exit (1);
    }
    dst += n;
    len -= n;
    off += n;
  }
}

static gpointer
worker (gpointer data)
{
  Worker *w = data;
  Run *r = w->run;
  cudaStream_t stream = r->streams[w->index];

  for (;;) {
    gint i = g_atomic_int_add (&r->next, 1);
    gint s;
    guint64 off;
    gsize len;
    char *slot;

    if (i >= r->npieces)
      break;
    s = i % r->nslots;
    off = (guint64) i * r->piece;
    len = MIN (r->piece, r->size - off);
    slot = r->ring + s * r->piece;

    /* Piece i - nslots has finished with this slot on the host side (read
     * done, copy queued and its event recorded); with a copy, wait for the
     * copy itself too.  Pieces are taken in order, so this never waits on
     * a piece that has not been taken. */
    g_mutex_lock (&r->lock);
    while (r->turn[s] != i)
      g_cond_wait (&r->cond, &r->lock);
    g_mutex_unlock (&r->lock);
    if (r->dev)
      CHECK (cudaEventSynchronize (r->events[s]));

    if (r->src)
      memcpy (slot, r->src + off, len);
    else
      pread_full (r->fd, slot, len, off);
    if (r->dev) {
      CHECK (cudaMemcpyAsync (r->dev + off, slot, len,
              cudaMemcpyHostToDevice, stream));
      CHECK (cudaEventRecord (r->events[s], stream));
    }

    g_mutex_lock (&r->lock);
    r->turn[s] = i + r->nslots;
    g_cond_broadcast (&r->cond);
    g_mutex_unlock (&r->lock);
  }
  return NULL;
}

/* One run over the whole file; returns GB/s. */
static double
run_once (Run * r, guint nthreads)
{
  GThread *threads[MAX_THREADS];
  Worker w[MAX_THREADS];
  double t0;

  r->next = 0;
  for (gint s = 0; s < r->nslots; s++)
    r->turn[s] = s;

  t0 = now ();
  for (guint k = 0; k < nthreads; k++) {
    GError *err = NULL;

    w[k] = (Worker) { r, k };
    threads[k] = g_thread_try_new ("file-limit", worker, &w[k], &err);
    if (!threads[k]) {
      fprintf (stderr, "g_thread_try_new: %s\n", err->message);
      exit (1);
    }
  }
  for (guint k = 0; k < nthreads; k++)
    g_thread_join (threads[k]);
  if (r->dev)
    for (guint k = 0; k < nthreads; k++)
      CHECK (cudaStreamSynchronize (r->streams[k]));
  return r->size / (now () - t0) / 1e9;
}

/* Reads the device copy back through the ring and compares it with the
 * file, so that a slot refilled too early cannot pass for a fast run. */
static void
verify (const char *what, const char *dev, const char *file, guint64 size,
    char *bounce)
{
  for (guint64 off = 0; off < size; off += RING) {
    gsize len = MIN (RING, size - off);

    CHECK (cudaMemcpy (bounce, dev + off, len, cudaMemcpyDeviceToHost));
    if (memcmp (bounce, file + off, len) != 0) {
      fprintf (stderr, "%s: device memory differs from the file between "
          "bytes %" G_GUINT64_FORMAT " and %" G_GUINT64_FORMAT "\n", what,
          off, off + len);
      exit (1);
    }
  }
}

static void
print_limit (const char *name, guint nthreads, gsize piece, double *gbps,
    int reps, const char *extra)
{
  qsort (gbps, reps, sizeof gbps[0], cmp);
  printf ("limit %s threads=%u piece=%" G_GSIZE_FORMAT "M %.2f GB/s median "
      "(%.2f-%.2f) %s\n", name, nthreads, piece / MiB, gbps[reps / 2],
      gbps[0], gbps[reps - 1], extra);
  fflush (stdout);
}

static void
measure (const char *name, Run * r, guint nthreads, gsize piece, int reps,
    const char *note)
{
  double *gbps = g_new (double, reps);
  char *extra;

  r->piece = piece;
  r->nslots = RING / piece;
  r->npieces = (r->size + piece - 1) / piece;
  for (int k = 0; k < reps; k++) {
    if (r->dev) {
      CHECK (cudaMemset (r->dev, 0, r->size));
      CHECK (cudaDeviceSynchronize ());
    }
    gbps[k] = run_once (r, nthreads);
  }
  if (r->dev)
    verify (name, r->dev, r->file, r->size, r->ring);
  extra = g_strdup_printf ("slots=%d ring=%s%s%s", r->nslots, r->ring_kind,
      note ? " " : "", note ? note : "");
  print_limit (name, nthreads, piece, gbps, reps, extra);
  g_free (extra);
  g_free (gbps);
}

/* The file mapped shared and read-only (a private mapping would make the
 * kernel copy each page on a long-term pin), registered, and copied from
 * directly. */
static void
register_file (int fd, guint64 size, char *dev, const char *file,
    char *bounce, int reps)
{
  long pagesize = sysconf (_SC_PAGESIZE);
  gsize len;
  int ro_supported;
  cudaStream_t s;
  double *copy = g_new (double, reps), *total = g_new (double, reps);
  double *reg = g_new (double, reps), *unreg = g_new (double, reps);
  char *extra;

  if (pagesize <= 0)
    die ("sysconf (_SC_PAGESIZE)");
  len = (size + pagesize - 1) / pagesize * pagesize;
  /* only printed, so that a refused registration can be told apart */
  if (cudaDeviceGetAttribute (&ro_supported,
          cudaDevAttrHostRegisterReadOnlySupported, 0) != cudaSuccess) {
    ro_supported = -1;
    cudaGetLastError ();
  }
  CHECK (cudaStreamCreateWithFlags (&s, cudaStreamNonBlocking));

  for (int k = 0; k < reps; k++) {
    double t0, t1, t2, t3;
    char *map;
    cudaError_t e;

    CHECK (cudaMemset (dev, 0, size));
    CHECK (cudaDeviceSynchronize ());

    t0 = now ();
    map = mmap (NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
      die ("mmap (FILE, PROT_READ, MAP_SHARED)");
    e = cudaHostRegister (map, len,
        cudaHostRegisterReadOnly | cudaHostRegisterPortable);
    t1 = now ();
    if (e != cudaSuccess) {
      printf ("limit register-file failed: cudaHostRegister (file mapping, "
          "ReadOnly | Portable): %s: %s (hostRegisterReadOnlySupported=%d)\n",
          cudaGetErrorName (e), cudaGetErrorString (e), ro_supported);
      fflush (stdout);
      cudaGetLastError ();
      if (munmap (map, len) != 0)
        die ("munmap (FILE)");
      goto out;
    }

    for (guint64 off = 0; off < size; off += REGISTER_PIECE)
      CHECK (cudaMemcpyAsync (dev + off, map + off,
              MIN (REGISTER_PIECE, size - off), cudaMemcpyHostToDevice, s));
    CHECK (cudaStreamSynchronize (s));
    t2 = now ();

    if (k == reps - 1)
      verify ("register-file", dev, file, size, bounce);

    t3 = now ();
    CHECK (cudaHostUnregister (map));
    if (munmap (map, len) != 0)
      die ("munmap (FILE)");
    unreg[k] = now () - t3;
    reg[k] = t1 - t0;
    copy[k] = size / (t2 - t1) / 1e9;
    total[k] = size / (t2 - t0) / 1e9;
  }

  qsort (reg, reps, sizeof reg[0], cmp);
  qsort (unreg, reps, sizeof unreg[0], cmp);
  extra = g_strdup_printf ("copies only, verified; register %.3f s "
      "(%.2f s/GiB) unregister %.3f s, medians", reg[reps / 2],
      reg[reps / 2] / ((double) size / GiB), unreg[reps / 2]);
  print_limit ("register-file", 1, REGISTER_PIECE, copy, reps, extra);
  g_free (extra);
  print_limit ("register-file+register", 1, REGISTER_PIECE, total, reps,
      "mmap + cudaHostRegister + copies (unregister not counted)");

out:
  CHECK (cudaStreamDestroy (s));
  g_free (copy);
  g_free (total);
  g_free (reg);
  g_free (unreg);
}

/* Whether there is a device; where there is none, why not.  Any other
 * failure is fatal. */
static gboolean
open_device (const char **why)
{
  int n = 0;
  cudaError_t e = cudaGetDeviceCount (&n);

  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver
      || e == cudaErrorStubLibrary) {
    *why = cudaGetErrorString (e);
    cudaGetLastError ();
    return FALSE;
  }
  CHECK (e);
  if (n == 0) {
    *why = "no CUDA device";
    return FALSE;
  }
  CHECK (cudaSetDevice (0));
  CHECK (cudaFree (0));         /* create the context outside the timings */
  return TRUE;
}

static double
warm (int fd)
{
  gsize sz = 16 * MiB;
  char *buf = g_malloc (sz);
  double t0 = now ();
  ssize_t n;

  while ((n = read (fd, buf, sz)) != 0) {
    if (n < 0 && errno != EINTR)
      die ("read");
  }
  g_free (buf);
  return now () - t0;
}

int
main (int argc, char **argv)
{
  static const guint pinned_threads[] = { 1, 2, 4, 8, 16 };
  static const guint gpu_threads[] = { 8, 16 };
  Run r = { 0 };
  struct stat st;
  const char *why = NULL;
  gboolean have_dev, pinned = FALSE;
  guint nproc = g_get_num_processors ();
  guint cap = MIN (MAX_THREADS, 2 * nproc), prev;
  int reps;
  double t0, warm_s, populate_s, register_s, map_s;
  char *fmap;
  cudaError_t e;

  if (argc < 2 || argc > 3) {
    fprintf (stderr, "usage: %s FILE [REPS]\n", argv[0]);
    return 2;
  }
  reps = argc > 2 ? atoi (argv[2]) : 3;
  if (reps < 1 || reps > 1000) {
    fprintf (stderr, "REPS must be 1 to 1000, not %s\n", argv[2]);
    return 2;
  }

  r.fd = open (argv[1], O_RDONLY | O_CLOEXEC);
  if (r.fd < 0)
    die (argv[1]);
  if (fstat (r.fd, &st) != 0)
    die ("fstat");
  if (st.st_size <= 0) {
    fprintf (stderr, "%s: empty or not a regular file\n", argv[1]);
    return 1;
  }
  r.size = st.st_size;
  if ((r.size + 8 * MiB - 1) / (8 * MiB) > G_MAXINT) {
    fprintf (stderr, "%s: too large\n", argv[1]);
    return 1;
  }
  g_mutex_init (&r.lock);
  g_cond_init (&r.cond);

  warm_s = warm (r.fd);
  printf ("# file-limit %s: %.2f GB, read once in %.2f s (warm cache), "
      "%u processors, threads capped at %u, %d runs each\n", argv[1],
      r.size / 1e9, warm_s, nproc, cap, reps);

  have_dev = open_device (&why);

  /* the ring, pinned as uel-pinned.c pins its pool */
  t0 = now ();
  r.ring = mmap (NULL, RING, PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r.ring == MAP_FAILED)
    die ("mmap (ring)");
  if (madvise (r.ring, RING, MADV_HUGEPAGE) != 0)
    printf ("# madvise (ring, MADV_HUGEPAGE): %s: small pages\n",
        g_strerror (errno));
  if (madvise (r.ring, RING, MADV_POPULATE_WRITE) != 0) {
    if (errno == ENOMEM)
      die ("madvise (ring, MADV_POPULATE_WRITE)");
    printf ("# madvise (ring, MADV_POPULATE_WRITE): %s: touching the pages "
        "instead\n", g_strerror (errno));
    for (gsize o = 0; o < RING; o += 4096)
      r.ring[o] = 0;
  }
  populate_s = now () - t0;
  t0 = now ();
  e = cudaHostRegister (r.ring, RING, cudaHostRegisterPortable);
  register_s = now () - t0;
  if (e == cudaSuccess) {
    pinned = TRUE;
    printf ("pin ring=%" G_GSIZE_FORMAT "M mmap+populate %.3f s, "
        "cudaHostRegister %.3f s (%.2f s/GiB)\n", RING / MiB, populate_s,
        register_s, register_s / ((double) RING / GiB));
  } else if (!have_dev) {
    printf ("pin ring=%" G_GSIZE_FORMAT "M mmap+populate %.3f s, "
        "cudaHostRegister failed: %s: the ring is plain memory\n",
        RING / MiB, populate_s, cudaGetErrorString (e));
    cudaGetLastError ();
  } else {
    fprintf (stderr, "cudaHostRegister (ring, cudaHostRegisterPortable): "
        "%s\n", cudaGetErrorString (e));
    return 1;
  }
  r.ring_kind = pinned ? "pinned" : "plain";
  fflush (stdout);

  /* 1: page cache → pinned ring, by the kernel */
  prev = 0;
  for (gsize i = 0; i < G_N_ELEMENTS (pinned_threads); i++) {
    guint n = MIN (pinned_threads[i], cap);

    if (n == prev)
      continue;
    prev = n;
    measure ("pread-pinned", &r, n, 8 * MiB, reps, NULL);
    if (n == cap)
      measure ("pread-pinned", &r, n, 32 * MiB, reps, NULL);
  }

  /* the file mapped once, for memcpy-pinned and to check device copies */
  t0 = now ();
  fmap = mmap (NULL, r.size, PROT_READ, MAP_SHARED | MAP_POPULATE, r.fd, 0);
  if (fmap == MAP_FAILED)
    die ("mmap (FILE, MAP_POPULATE)");
  map_s = now () - t0;
  r.file = fmap;

  /* 2: page cache → pinned ring → device */
  if (have_dev) {
    CHECK (cudaMalloc ((void **) &r.dev, r.size));
    for (guint k = 0; k < MAX_THREADS; k++)
      CHECK (cudaStreamCreateWithFlags (&r.streams[k],
              cudaStreamNonBlocking));
    for (guint s = 0; s < MAX_SLOTS; s++)
      CHECK (cudaEventCreateWithFlags (&r.events[s],
              cudaEventDisableTiming));
    prev = 0;
    for (gsize i = 0; i < G_N_ELEMENTS (gpu_threads); i++) {
      guint n = MIN (gpu_threads[i], cap);

      if (n == prev)
        continue;
      prev = n;
      measure ("pread-gpu", &r, n, 8 * MiB, reps,
          "one stream per thread, verified");
      measure ("pread-gpu", &r, n, 32 * MiB, reps,
          "one stream per thread, verified");
    }
  } else {
    printf ("skip pread-gpu: %s\n", why);
    fflush (stdout);
  }

  /* 3: page cache → pinned ring, by memcpy from the mapping; no copies to
   * the device */
  {
    char *dev = r.dev;
    char *note = g_strdup_printf ("(mmap with MAP_POPULATE took %.3f s)",
        map_s);

    r.dev = NULL;
    r.src = fmap;
    measure ("memcpy-pinned", &r, cap, 8 * MiB, reps, note);
    r.src = NULL;
    r.dev = dev;
    g_free (note);
  }

  /* 4: the file itself registered, no host copy */
  if (have_dev)
    register_file (r.fd, r.size, r.dev, fmap, r.ring, reps);
  else
    printf ("skip register-file: %s\n", why);

  if (have_dev) {
    for (guint k = 0; k < MAX_THREADS; k++)
      CHECK (cudaStreamDestroy (r.streams[k]));
    for (guint s = 0; s < MAX_SLOTS; s++)
      CHECK (cudaEventDestroy (r.events[s]));
    CHECK (cudaFree (r.dev));
  }
  if (pinned)
    CHECK (cudaHostUnregister (r.ring));
  if (munmap (r.ring, RING) != 0)
    die ("munmap (ring)");
  if (munmap (fmap, r.size) != 0)
    die ("munmap (FILE)");
  if (close (r.fd) != 0)
    die ("close");
  g_mutex_clear (&r.lock);
  g_cond_clear (&r.cond);
  return 0;
}
