/* gst-uel: checks of CUDA device memory (uel-cudamem), shared by the test
 * on the stand-in runtime (test-cudamem.c) and the one on a real device
 * (gpu/test-gpu.c)
 * SPDX-License-Identifier: MIT
 *
 * Each check reads or writes the device side behind the allocator's back
 * (through the program's read and write functions), so that what a host
 * map shows can be told apart from what the device holds: a host map that
 * still shows the old bytes after such a write proves it did not download
 * again.
 */
#include "config.h"

#include <string.h>

#include "cudamem-checks.h"
#include "test-utils.h"

typedef struct
{
  guint d2h, h2d, d2d;
} Copies;

static void
copies_mark (const UelCudaMemChecks * c, Copies * mark)
{
  if (c->count)
    c->count (&mark->d2h, &mark->h2d, &mark->d2d);
}

/* the allocator made these copies since @mark, where they can be counted */
static void
expect_copies (const UelCudaMemChecks * c, const Copies * mark, guint d2h,
    guint h2d, guint d2d)
{
  Copies now;

  if (!c->count)
    return;
  c->count (&now.d2h, &now.h2d, &now.d2d);
  g_assert_cmpuint (now.d2h - mark->d2h, ==, d2h);
  g_assert_cmpuint (now.h2d - mark->h2d, ==, h2d);
  g_assert_cmpuint (now.d2d - mark->d2d, ==, d2d);
}

static guint8 *
fill_new (gsize size, guint seed)
{
  guint8 *bytes = g_malloc (MAX (size, 1));

  uel_test_fill (bytes, size, seed);
  return bytes;
}

static void
expect_filled (const guint8 * bytes, gsize n, guint seed)
{
  g_autofree guint8 *want = fill_new (n, seed);

  g_assert_cmpmem (bytes, n, want, n);
}

/* bytes [@from, @from + @n) of @mem's device side, read past the
 * allocator */
static guint8 *
device_get (const UelCudaMemChecks * c, GstMemory * mem, gsize from, gsize n)
{
  guint8 *host = g_malloc (MAX (n, 1));
  GstMapInfo map;

  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READ | UEL_MAP_CUDA));
  c->read (host, map.data + from, n);
  gst_memory_unmap (mem, &map);
  return host;
}

/* writes the bytes of @seed on the device through a map for reading: the
 * allocator is not told */
static void
device_set_behind (const UelCudaMemChecks * c, GstMemory * mem, guint seed)
{
  g_autofree guint8 *bytes = fill_new (mem->size, seed);
  GstMapInfo map;

  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READ | UEL_MAP_CUDA));
  c->write (map.data, bytes, map.size);
  gst_memory_unmap (mem, &map);
}

GstMemory *
uel_cudamem_filled (const UelCudaMemChecks * c, gsize size, guint seed)
{
  GError *err = NULL;
  GstAllocator *alloc = uel_cuda_allocator_new (0, &err);
  g_autofree guint8 *bytes = fill_new (size, seed);
  GstMemory *mem;
  GstMapInfo map;

  g_assert_no_error (err);
  mem = gst_allocator_alloc (alloc, size, NULL);
  gst_object_unref (alloc);
  g_assert_nonnull (mem);
  g_assert_true (uel_memory_is_cuda (mem));
  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READWRITE |
          UEL_MAP_CUDA));
  c->write (map.data, bytes, size);
  gst_memory_unmap (mem, &map);
  return mem;
}

void
uel_cudamem_expect_bytes (const UelCudaMemChecks * c, GstMemory * mem,
    GstMapFlags flags, guint seed, gsize from, gsize n)
{
  g_autofree guint8 *want = fill_new (from + n, seed);
  g_autofree guint8 *dev = NULL;
  GstMapInfo map;

  g_assert_true (gst_memory_map (mem, &map, flags));
  g_assert_cmpuint (map.size, ==, n);
  if (flags & UEL_MAP_CUDA) {
    dev = g_malloc (MAX (n, 1));
    c->read (dev, map.data, n);
  }
  g_assert_cmpmem (dev ? dev : map.data, n, want + from, n);
  gst_memory_unmap (mem, &map);
}

/* Each check starts from device memory of the program's size holding the
 * bytes of seed 1, written through a CUDA map, and a mark of the copies
 * made so far; @mem is NULL when there is no device (skipped). */
typedef struct
{
  const UelCudaMemChecks *c;
  gsize size;
  GstMemory *mem;
  Copies mark;
} Fixture;

static void
fixture_set_up (Fixture * f, gconstpointer data)
{
  f->c = data;
  f->size = f->c->size;
  f->mem = f->c->usable () ? uel_cudamem_filled (f->c, f->size, 1) : NULL;
  copies_mark (f->c, &f->mark);
}

static void
fixture_tear_down (Fixture * f, gconstpointer data)
{
  g_clear_pointer (&f->mem, gst_memory_unref);
}

static void
check_host_maps_download_once (Fixture * f, gconstpointer data)
{
  GstMemory *mem = f->mem;
  GstMapInfo a, b, d;

  if (!mem)
    return;
  g_assert_true (gst_memory_map (mem, &a, GST_MAP_READ));
  g_assert_true (gst_memory_map (mem, &b, GST_MAP_READ));
  gst_memory_unmap (mem, &b);
  gst_memory_unmap (mem, &a);
  g_assert_true (gst_memory_map (mem, &d, GST_MAP_READ));
  g_assert_true (a.data == b.data && b.data == d.data);
  gst_memory_unmap (mem, &d);
  expect_copies (f->c, &f->mark, 1, 0, 0);

  /* new bytes on the device that the allocator was not told of stay
   * unseen: the host maps read the copy made the first time, also after
   * CUDA maps for reading */
  device_set_behind (f->c, mem, 2);
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ, 1, 0, f->size);
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ | UEL_MAP_CUDA, 2, 0,
      f->size);
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ, 1, 0, f->size);
  expect_copies (f->c, &f->mark, 1, 0, 0);
}

/* writes the bytes of @seed through a CUDA map that @map holds */
static void
device_write_seed (Fixture * f, GstMapInfo * map, guint seed)
{
  g_autofree guint8 *bytes = fill_new (f->size, seed);

  f->c->write (map->data, bytes, f->size);
}

static void
check_cuda_write_then_host_map (Fixture * f, gconstpointer data)
{
  GstMemory *mem = f->mem;
  GstMapInfo map;

  if (!mem)
    return;
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ, 1, 0, f->size);
  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READWRITE |
          UEL_MAP_CUDA));
  device_write_seed (f, &map, 3);
  gst_memory_unmap (mem, &map);
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ, 3, 0, f->size);
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ, 3, 0, f->size);
  expect_copies (f->c, &f->mark, 2, 0, 0);

  /* while the device may be written every host map reads it afresh,
   * and so does the next one once the CUDA map is done */
  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READWRITE |
          UEL_MAP_CUDA));
  device_write_seed (f, &map, 4);
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ, 4, 0, f->size);
  device_write_seed (f, &map, 5);
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ, 5, 0, f->size);
  gst_memory_unmap (mem, &map);
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ, 5, 0, f->size);
  expect_copies (f->c, &f->mark, 5, 0, 0);
}

static void
check_host_write_then_cuda_map (Fixture * f, gconstpointer data)
{
  GstMemory *mem = f->mem;
  g_autofree guint8 *want = NULL;
  g_autofree guint8 *dev = NULL;
  GstMapInfo map;

  if (!mem)
    return;
  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READWRITE));
  /* the bytes not written are the device's: the map downloaded them */
  expect_filled (map.data, map.size, 1);
  memset (map.data + 100, 0xab, 10);
  gst_memory_unmap (mem, &map);
  expect_copies (f->c, &f->mark, 1, 1, 0);

  want = fill_new (f->size, 1);
  memset (want + 100, 0xab, 10);
  dev = device_get (f->c, mem, 0, f->size);
  g_assert_cmpmem (dev, f->size, want, f->size);
  /* the host copy is still the device's: no download, no upload */
  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size, want, f->size);
  gst_memory_unmap (mem, &map);
  expect_copies (f->c, &f->mark, 1, 1, 0);
}

static void
check_nested_host_writes (Fixture * f, gconstpointer data)
{
  GstMemory *mem = f->mem;
  GstMapInfo outer, inner, reader;

  if (!mem)
    return;
  g_assert_true (gst_memory_map (mem, &outer, GST_MAP_READWRITE));
  g_assert_true (gst_memory_map (mem, &inner, GST_MAP_READWRITE));
  g_assert_true (gst_memory_map (mem, &reader, GST_MAP_READ));
  g_assert_true (outer.data == inner.data && inner.data == reader.data);
  uel_test_fill (inner.data, f->size, 6);
  gst_memory_unmap (mem, &reader);
  gst_memory_unmap (mem, &inner);
  /* the outer map may still write: not uploaded yet */
  expect_copies (f->c, &f->mark, 1, 0, 0);
  gst_memory_unmap (mem, &outer);
  expect_copies (f->c, &f->mark, 1, 1, 0);
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ | UEL_MAP_CUDA, 6, 0,
      f->size);
}

static void
check_cuda_map_uploads_open_host_writes (Fixture * f, gconstpointer data)
{
  GstMemory *mem = f->mem;
  g_autofree guint8 *dev = NULL;
  guint8 marks[64];
  GstMapInfo host, map;

  if (!mem)
    return;
  g_assert_true (gst_memory_map (mem, &host, GST_MAP_READWRITE));
  uel_test_fill (host.data, f->size, 7);
  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READ | UEL_MAP_CUDA));
  expect_copies (f->c, &f->mark, 1, 1, 0);
  gst_memory_unmap (mem, &map);
  /* each CUDA map uploads again while the host map may still write */
  uel_cudamem_expect_bytes (f->c, mem, GST_MAP_READ | UEL_MAP_CUDA, 7, 0,
      f->size);
  expect_copies (f->c, &f->mark, 1, 2, 0);

  /* written again after the CUDA maps: uploaded at the unmap */
  memset (host.data, 0x5a, sizeof marks);
  gst_memory_unmap (mem, &host);
  expect_copies (f->c, &f->mark, 1, 3, 0);
  memset (marks, 0x5a, sizeof marks);
  dev = device_get (f->c, mem, 0, sizeof marks);
  g_assert_cmpmem (dev, sizeof marks, marks, sizeof marks);
}

static void
check_deep_copy (Fixture * f, gconstpointer data)
{
  GstMemory *mem = f->mem;
  gsize size = f->size;
  g_autofree guint8 *src = NULL;
  g_autofree guint8 *dst = NULL;
  GstMemory *copy, *view, *part;
  GstBuffer *buf, *deep;
  GstMapInfo host, a, b;

  if (!mem)
    return;
  buf = gst_buffer_new ();
  gst_buffer_append_memory (buf, gst_memory_ref (mem));
  deep = gst_buffer_copy_deep (buf);
  g_assert_nonnull (deep);
  g_assert_cmpuint (gst_buffer_n_memory (deep), ==, 1);
  copy = gst_buffer_peek_memory (deep, 0);
  g_assert_true (uel_memory_is_cuda (copy));
  g_assert_cmpint (uel_cuda_memory_get_device (copy), ==, 0);
  g_assert_cmpuint (copy->size, ==, size);
  /* device to device, without a trip through the host */
  expect_copies (f->c, &f->mark, 0, 0, 1);
  g_assert_true (gst_memory_map (mem, &a, GST_MAP_READ | UEL_MAP_CUDA));
  g_assert_true (gst_memory_map (copy, &b, GST_MAP_READ | UEL_MAP_CUDA));
  g_assert_true (a.data != b.data);
  gst_memory_unmap (copy, &b);
  gst_memory_unmap (mem, &a);
  src = device_get (f->c, mem, 0, size);
  dst = device_get (f->c, copy, 0, size);
  g_assert_cmpmem (dst, size, src, size);
  uel_cudamem_expect_bytes (f->c, copy, GST_MAP_READ, 1, 0, size);

  /* a range, and a range of a view */
  part = gst_memory_copy (mem, 100, 200);
  uel_cudamem_expect_bytes (f->c, part, GST_MAP_READ | UEL_MAP_CUDA, 1, 100,
      200);
  gst_memory_unref (part);
  view = gst_memory_share (mem, 1000, 500);
  part = gst_memory_copy (view, 10, -1);
  uel_cudamem_expect_bytes (f->c, part, GST_MAP_READ | UEL_MAP_CUDA, 1, 1010,
      490);
  uel_cudamem_expect_bytes (f->c, part, GST_MAP_READ, 1, 1010, 490);
  gst_memory_unref (part);
  gst_memory_unref (view);
  expect_copies (f->c, &f->mark, 2, 0, 3);

  /* outside the memory: refused */
  g_assert_null (gst_memory_copy (mem, size - 10, 20));
  g_assert_null (gst_memory_copy (mem, -1, 10));

  /* what the host is writing is on the device before it is copied */
  g_assert_true (gst_memory_map (mem, &host, GST_MAP_READWRITE));
  memset (host.data, 0x11, size);
  part = gst_memory_copy (mem, 0, -1);
  g_free (dst);
  dst = device_get (f->c, part, 0, size);
  g_assert_cmpmem (dst, size, host.data, size);
  gst_memory_unmap (mem, &host);
  gst_memory_unref (part);

  gst_buffer_unref (deep);
  gst_buffer_unref (buf);
}

static void
check_view_maps_its_range (Fixture * f, gconstpointer data)
{
  GstMemory *mem = f->mem;
  GstMemory *view, *inner;
  GstMapInfo map, root_map;

  if (!mem)
    return;
  view = gst_memory_share (mem, 1000, 500);
  uel_cudamem_expect_bytes (f->c, view, GST_MAP_READ, 1, 1000, 500);
  /* a view of a view counts from its own start */
  inner = gst_memory_share (view, 100, 50);
  uel_cudamem_expect_bytes (f->c, inner, GST_MAP_READ, 1, 1100, 50);
  /* the views and their parent share one host copy */
  g_assert_true (gst_memory_map (mem, &root_map, GST_MAP_READ));
  g_assert_true (gst_memory_map (view, &map, GST_MAP_READ));
  g_assert_true (map.data == root_map.data + 1000);
  gst_memory_unmap (view, &map);
  gst_memory_unmap (mem, &root_map);
  expect_copies (f->c, &f->mark, 1, 0, 0);

  /* on the device too */
  g_assert_true (gst_memory_map (mem, &root_map, GST_MAP_READ |
          UEL_MAP_CUDA));
  g_assert_true (gst_memory_map (view, &map, GST_MAP_READ | UEL_MAP_CUDA));
  g_assert_true (map.data == root_map.data + 1000);
  gst_memory_unmap (view, &map);
  gst_memory_unmap (mem, &root_map);
  uel_cudamem_expect_bytes (f->c, inner, GST_MAP_READ | UEL_MAP_CUDA, 1,
      1100, 50);
  /* views are read-only */
  g_assert_false (gst_memory_map (view, &map, GST_MAP_WRITE));

  gst_memory_unref (inner);
  gst_memory_unref (view);
}

typedef struct
{
  GstMemory *mem;
  GMutex lock;
  GCond cond;
  gboolean go;
} Race;

static gpointer
map_at_once (gpointer data)
{
  Race *r = data;
  GstMapInfo map;
  g_autofree guint8 *want = fill_new (r->mem->size, 1);
  gpointer seen;

  g_mutex_lock (&r->lock);
  while (!r->go)
    g_cond_wait (&r->cond, &r->lock);
  g_mutex_unlock (&r->lock);
  g_assert_true (gst_memory_map (r->mem, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size, want, r->mem->size);
  seen = map.data;
  gst_memory_unmap (r->mem, &map);
  return seen;
}

static void
check_threads_map_at_once (Fixture * f, gconstpointer data)
{
  Race r = { f->mem };
  GThread *threads[4];
  gpointer seen[G_N_ELEMENTS (threads)];

  if (!f->mem)
    return;
  g_mutex_init (&r.lock);
  g_cond_init (&r.cond);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("map", map_at_once, &r);
  g_mutex_lock (&r.lock);
  r.go = TRUE;
  g_cond_broadcast (&r.cond);
  g_mutex_unlock (&r.lock);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    seen[i] = g_thread_join (threads[i]);
  for (guint i = 1; i < G_N_ELEMENTS (threads); i++)
    g_assert_true (seen[i] == seen[0]);
  expect_copies (f->c, &f->mark, 1, 0, 0);
  /* and the one copy is kept */
  device_set_behind (f->c, f->mem, 2);
  uel_cudamem_expect_bytes (f->c, f->mem, GST_MAP_READ, 1, 0, f->size);
  g_mutex_clear (&r.lock);
  g_cond_clear (&r.cond);
}

void
uel_cudamem_checks_add (const UelCudaMemChecks * c)
{
  static const struct
  {
    const gchar *name;
    void (*func) (Fixture *, gconstpointer);
  } checks[] = {
    {"host-maps-download-once", check_host_maps_download_once},
    {"cuda-write-then-host-map-sees-the-new-bytes",
        check_cuda_write_then_host_map},
    {"host-write-then-cuda-map-sees-the-new-bytes",
        check_host_write_then_cuda_map},
    {"nested-host-writes-upload-once", check_nested_host_writes},
    {"cuda-map-uploads-open-host-writes-first",
        check_cuda_map_uploads_open_host_writes},
    {"deep-copy-stays-on-the-device", check_deep_copy},
    {"view-maps-its-own-range", check_view_maps_its_range},
    {"threads-mapping-at-once-see-one-copy", check_threads_map_at_once},
  };

  g_assert_cmpuint (c->size, >=, 4096);
  for (guint i = 0; i < G_N_ELEMENTS (checks); i++) {
    g_autofree gchar *path = g_strdup_printf ("%s/%s", c->prefix,
        checks[i].name);

    g_test_add (path, Fixture, c, fixture_set_up, checks[i].func,
        fixture_tear_down);
  }
}
