/* gst-uel: the pinned pool and uelpin
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <gst/check/gstharness.h>
#include <string.h>

#include "test-utils.h"

#define MiB (G_GUINT64_CONSTANT (1) << 20)

static GstStructure *
get_stats (GstElement * pin)
{
  GstStructure *s = NULL;

  g_object_get (pin, "stats", &s, NULL);
  g_assert_nonnull (s);
  return s;
}

static gboolean
stat_bool (const GstStructure * s, const gchar * field)
{
  gboolean v;

  g_assert_true (gst_structure_get_boolean (s, field, &v));
  return v;
}

static gboolean
have_device (void)
{
  GstAllocator *a = uel_pinned_allocator_new (MiB, -1);
  gboolean r;

  g_assert_true (uel_pinned_allocator_prepare (UEL_PINNED_ALLOCATOR (a),
          NULL));
  r = uel_pinned_allocator_is_device_pinned (UEL_PINNED_ALLOCATOR (a));
  gst_object_unref (a);
  return r;
}

/* a file of @n tensors of @size bytes each */
static gchar *
write_model (const gchar * name, guint n, gsize size)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]", size);
  gchar *path = uel_test_path (name);

  uel_test_builder_set_align (b, 8);
  for (guint i = 0; i < n; i++) {
    g_autofree gchar *t = g_strdup_printf ("t%03u", i);
    uel_test_builder_add (b, t, "U8", shape, size, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  return path;
}

static void
check_bytes (GPtrArray * bufs, const gchar * path)
{
  g_autofree gchar *data = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  for (guint i = 0; i < bufs->len; i++) {
    GstBuffer *buf = g_ptr_array_index (bufs, i);
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    guint64 off = uel_tensor_meta_get_file_offset (meta) + meta->chunk_offset;
    GstMapInfo map;

    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpuint (off + map.size, <=, len);
    g_assert_cmpmem (map.data, map.size, data + off, map.size);
    gst_buffer_unmap (buf, &map);
  }
}

/* ------------------------------------------------------------------ */
/* the allocator */

typedef struct
{
  GstAllocator *alloc;
  gsize size;
  GstMemory *mem;
  gint done;
} AllocJob;

static gpointer
alloc_thread (gpointer data)
{
  AllocJob *job = data;

  job->mem = gst_allocator_alloc (job->alloc, job->size, NULL);
  g_atomic_int_set (&job->done, 1);
  return NULL;
}

static void
wait_for_waiters (GstAllocator * alloc, guint64 n)
{
  UelPinnedStats st;

  /* the waiting thread bumps n_waits under the pool's lock right before it
   * blocks: spin on the counter, not on time */
  do {
    g_thread_yield ();
    uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (alloc), &st);
  } while (st.n_waits < n);
}

/* a buffer is pinned when it has memory and all of it is the pool's */
static void
test_buffer_is_pinned (void)
{
  GstAllocator *alloc = uel_pinned_allocator_new (MiB, -1);
  GstBuffer *buf = gst_buffer_new ();

  g_assert_false (uel_buffer_is_pinned (buf));
  gst_buffer_append_memory (buf, gst_allocator_alloc (alloc, 100, NULL));
  gst_buffer_append_memory (buf, gst_allocator_alloc (alloc, 100, NULL));
  g_assert_true (uel_buffer_is_pinned (buf));
  gst_buffer_append_memory (buf, gst_allocator_alloc (NULL, 100, NULL));
  g_assert_false (uel_buffer_is_pinned (buf));
  gst_buffer_unref (buf);
  gst_object_unref (alloc);
}

static void
test_pool_blocks_and_resumes (void)
{
  GstAllocator *alloc = uel_pinned_allocator_new (4 * MiB, -1);
  GstMemory *mems[4];
  AllocJob job = { alloc, MiB, NULL };
  UelPinnedStats st;
  GThread *t;

  for (guint i = 0; i < 4; i++) {
    mems[i] = gst_allocator_alloc (alloc, MiB, NULL);
    g_assert_nonnull (mems[i]);
    g_assert_true (uel_memory_is_pinned (mems[i]));
  }
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (alloc), &st);
  g_assert_cmpuint (st.live_bytes, ==, 4 * MiB);
  g_assert_cmpuint (st.capacity, ==, 4 * MiB);

  /* full: the fifth waits until one comes back */
  t = g_thread_new ("alloc", alloc_thread, &job);
  wait_for_waiters (alloc, 1);
  g_assert_null (job.mem);
  gst_memory_unref (mems[2]);
  g_thread_join (t);
  g_assert_nonnull (job.mem);
  mems[2] = job.mem;

  /* a request larger than the whole pool is refused at once */
  g_assert_null (gst_allocator_alloc (alloc, 5 * MiB, NULL));

  /* flushing wakes a waiter with nothing */
  job.mem = NULL;
  t = g_thread_new ("alloc", alloc_thread, &job);
  wait_for_waiters (alloc, 2);
  uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (alloc), TRUE);
  g_thread_join (t);
  g_assert_null (job.mem);
  uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (alloc), FALSE);

  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (alloc), &st);
  g_assert_cmpuint (st.peak_bytes, ==, 4 * MiB);
  g_assert_cmpuint (st.n_too_large, ==, 1);
  for (guint i = 0; i < 4; i++)
    gst_memory_unref (mems[i]);
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (alloc), &st);
  g_assert_cmpuint (st.live_bytes, ==, 0);
  gst_object_unref (alloc);
}

/* freed blocks coalesce: after any order of frees the pool is one block
 * again, and two half-pool requests fit (without coalescing they would wait
 * and give up) */
static void
test_pool_coalesces (void)
{
  GstAllocator *alloc = uel_pinned_allocator_new (8 * MiB, -1);
  const guint order[] = { 3, 0, 7, 5, 1, 6, 2, 4 };
  GstMemory *mems[8];
  GstMemory *half[2];
  GstMapInfo map;

  uel_pinned_allocator_set_wait_timeout (UEL_PINNED_ALLOCATOR (alloc), 0);
  for (guint i = 0; i < 8; i++) {
    mems[i] = gst_allocator_alloc (alloc, MiB, NULL);
    g_assert_true (gst_memory_map (mems[i], &map, GST_MAP_WRITE));
    g_assert_cmpuint (GPOINTER_TO_SIZE (map.data) % 4096, ==, 0);
    memset (map.data, i, map.size);
    gst_memory_unmap (mems[i], &map);
  }
  for (guint i = 0; i < 8; i++)
    gst_memory_unref (mems[order[i]]);
  half[0] = gst_allocator_alloc (alloc, 4 * MiB, NULL);
  half[1] = gst_allocator_alloc (alloc, 4 * MiB, NULL);
  g_assert_nonnull (half[0]);
  g_assert_nonnull (half[1]);
  gst_memory_unref (half[0]);
  gst_memory_unref (half[1]);
  gst_object_unref (alloc);
}

/* a shared sub-memory sees its parent's bytes and keeps the block in use
 * until it goes too (host, pinned) */
static void
test_shared_memory (void)
{
  GstAllocator *allocs[2] = { uel_pinned_allocator_new (4 * MiB, -1),
    uel_host_allocator_new (0)
  };

  for (guint a = 0; a < 2; a++) {
    GstMemory *mem = gst_allocator_alloc (allocs[a], 10000, NULL);
    GstMemory *sub;
    GstMapInfo m1, m2;
    UelPinnedStats st;

    g_assert_true (gst_memory_map (mem, &m1, GST_MAP_WRITE));
    for (guint i = 0; i < 10000; i++)
      m1.data[i] = (guint8) i;
    gst_memory_unmap (mem, &m1);
    sub = gst_memory_share (mem, 100, 50);
    g_assert_true (sub->allocator == allocs[a]);
    gst_memory_unref (mem);
    g_assert_true (gst_memory_map (sub, &m2, GST_MAP_READ));
    g_assert_cmpuint (m2.size, ==, 50);
    for (guint i = 0; i < 50; i++)
      g_assert_cmpuint (m2.data[i], ==, (guint8) (100 + i));
    gst_memory_unmap (sub, &m2);
    if (a == 0) {
      uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (allocs[a]), &st);
      g_assert_cmpuint (st.live_bytes, ==, 12288);
    }
    gst_memory_unref (sub);
    if (a == 0) {
      uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (allocs[a]), &st);
      g_assert_cmpuint (st.live_bytes, ==, 0);
    }
    gst_object_unref (allocs[a]);
  }
}

/* memory that never comes back (here: a fragmented pool) makes an
 * allocation give up after the wait timeout instead of hanging */
static void
test_pool_gives_up (void)
{
  GstAllocator *alloc = uel_pinned_allocator_new (4 * MiB, -1);
  GstMemory *mems[4];
  UelPinnedStats st;

  uel_pinned_allocator_set_wait_timeout (UEL_PINNED_ALLOCATOR (alloc), 50);
  for (guint i = 0; i < 4; i++)
    mems[i] = gst_allocator_alloc (alloc, MiB, NULL);
  gst_memory_unref (mems[0]);
  gst_memory_unref (mems[2]);
  /* 2 MiB are free, in two pieces of 1 MiB */
  g_assert_null (gst_allocator_alloc (alloc, 2 * MiB, NULL));
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (alloc), &st);
  g_assert_cmpuint (st.n_starved, ==, 1);
  g_assert_cmpuint (st.n_waits, ==, 1);
  g_assert_cmpuint (st.n_too_large, ==, 0);
  /* a request more than half the pool is refused without waiting */
  g_assert_null (gst_allocator_alloc (alloc, 2 * MiB + 1, NULL));
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (alloc), &st);
  g_assert_cmpuint (st.n_too_large, ==, 1);
  g_assert_cmpuint (st.n_waits, ==, 1);
  /* nothing came back since the wait ran out: refused without a second
   * wait (a loader keeping every tensor would otherwise wait once per
   * tensor) */
  g_assert_null (gst_allocator_alloc (alloc, 2 * MiB, NULL));
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (alloc), &st);
  g_assert_cmpuint (st.n_starved, ==, 2);
  g_assert_cmpuint (st.n_waits, ==, 1);
  /* memory came back: the next request that does not fit waits again */
  gst_memory_unref (mems[1]);
  mems[1] = gst_allocator_alloc (alloc, 2 * MiB, NULL);
  g_assert_nonnull (mems[1]);
  /* 1 MiB free */
  g_assert_null (gst_allocator_alloc (alloc, 2 * MiB, NULL));
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (alloc), &st);
  g_assert_cmpuint (st.n_starved, ==, 3);
  g_assert_cmpuint (st.n_waits, ==, 2);
  gst_memory_unref (mems[1]);
  gst_memory_unref (mems[3]);
  gst_object_unref (alloc);
}


/* two allocators over one pool: one region, one capacity; each its own
 * flushing and counters */
static void
test_shared_pool (void)
{
  GstAllocator *a = uel_pinned_allocator_new (4 * MiB, -1);
  GstAllocator *b = uel_pinned_allocator_new_shared (UEL_PINNED_ALLOCATOR (a));
  GstAllocator *other = uel_pinned_allocator_new (4 * MiB, -1);
  GstMemory *ma, *mb, *m;
  GstMapInfo ia, ib;
  UelPinnedStats st;

  g_assert_true (uel_pinned_allocator_shares_pool (UEL_PINNED_ALLOCATOR (a),
          UEL_PINNED_ALLOCATOR (b)));
  g_assert_false (uel_pinned_allocator_shares_pool (UEL_PINNED_ALLOCATOR
          (a), UEL_PINNED_ALLOCATOR (other)));
  uel_pinned_allocator_set_wait_timeout (UEL_PINNED_ALLOCATOR (a), 50);
  uel_pinned_allocator_set_wait_timeout (UEL_PINNED_ALLOCATOR (b), 50);

  /* half the pool each fills it: both come from one 4 MiB region */
  ma = gst_allocator_alloc (a, 2 * MiB, NULL);
  mb = gst_allocator_alloc (b, 2 * MiB, NULL);
  g_assert_nonnull (ma);
  g_assert_nonnull (mb);
  g_assert_true (gst_memory_map (ma, &ia, GST_MAP_WRITE));
  g_assert_true (gst_memory_map (mb, &ib, GST_MAP_WRITE));
  g_assert_true (ib.data == ia.data + 2 * MiB || ia.data == ib.data + 2 * MiB);
  gst_memory_unmap (ma, &ia);
  gst_memory_unmap (mb, &ib);
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (b), &st);
  g_assert_cmpuint (st.capacity, ==, 4 * MiB);
  g_assert_cmpuint (st.live_bytes, ==, 2 * MiB);
  g_assert_cmpuint (st.n_allocs, ==, 1);

  /* flushing a gives up a's requests at once, not b's: b waits (its
   * timeout) and is counted starved */
  uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (a), TRUE);
  g_assert_null (gst_allocator_alloc (a, MiB, NULL));
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (a), &st);
  g_assert_cmpuint (st.n_waits, ==, 0);
  g_assert_cmpuint (st.n_starved, ==, 0);
  g_assert_null (gst_allocator_alloc (b, MiB, NULL));
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (b), &st);
  g_assert_cmpuint (st.n_waits, ==, 1);
  g_assert_cmpuint (st.n_starved, ==, 1);

  /* a's memory returned serves b; the pool outlives a */
  gst_memory_unref (ma);
  gst_object_unref (a);
  m = gst_allocator_alloc (b, 2 * MiB, NULL);
  g_assert_nonnull (m);
  gst_memory_unref (m);
  gst_memory_unref (mb);
  gst_object_unref (b);
  gst_object_unref (other);
}

/* one pipeline giving up on a shared pool, or stopping, does not cut short
 * another's wait: b waits its own timeout, through a's starvation and a's
 * flush, and gets the memory a gives back */
static void
test_shared_pool_waits_are_independent (void)
{
  GstAllocator *a = uel_pinned_allocator_new (4 * MiB, -1);
  GstAllocator *b = uel_pinned_allocator_new_shared (UEL_PINNED_ALLOCATOR (a));
  GstMemory *ma, *mb;
  AllocJob job = { b, MiB, NULL, 0 };
  UelPinnedStats st;
  GThread *t;

  uel_pinned_allocator_set_wait_timeout (UEL_PINNED_ALLOCATOR (a), 20);
  /* long enough never to run out on a loaded machine: the test ends it */
  uel_pinned_allocator_set_wait_timeout (UEL_PINNED_ALLOCATOR (b), 600000);
  ma = gst_allocator_alloc (a, 2 * MiB, NULL);
  mb = gst_allocator_alloc (a, 2 * MiB, NULL);
  g_assert_nonnull (ma);
  g_assert_nonnull (mb);
  /* a gives up first */
  g_assert_null (gst_allocator_alloc (a, MiB, NULL));
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (a), &st);
  g_assert_cmpuint (st.n_starved, ==, 1);

  /* b still waits, once */
  t = g_thread_new ("alloc", alloc_thread, &job);
  do {
    g_thread_yield ();
    uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (b), &st);
  } while (st.n_waits < 1 && !g_atomic_int_get (&job.done));
  g_assert_cmpuint (st.n_waits, ==, 1);

  /* a stops: its flush wakes every waiter of the pool; b waits on */
  uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (a), TRUE);
  g_assert_null (gst_allocator_alloc (a, MiB, NULL));
  gst_memory_unref (ma);
  g_thread_join (t);
  g_assert_nonnull (job.mem);
  uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (b), &st);
  g_assert_cmpuint (st.n_starved, ==, 0);
  g_assert_cmpuint (st.n_waits, ==, 1);

  gst_memory_unref (job.mem);
  gst_memory_unref (mb);
  gst_object_unref (a);
  gst_object_unref (b);
}

/* ------------------------------------------------------------------ */
/* the element */

static void
test_proposes_allocator (void)
{
  GstHarness *h = gst_harness_new ("uelpin");
  GstQuery *q;
  GstCaps *caps = gst_caps_from_string (UEL_TENSOR_CAPS);
  GstAllocator *alloc = NULL;

  gst_harness_set_src_caps (h, gst_caps_ref (caps));
  q = gst_query_new_allocation (caps, TRUE);
  g_assert_true (gst_pad_peer_query (h->srcpad, q));
  g_assert_cmpuint (gst_query_get_n_allocation_params (q), >=, 1);
  gst_query_parse_nth_allocation_param (q, 0, &alloc, NULL);
  g_assert_nonnull (alloc);
  g_assert_true (UEL_IS_PINNED_ALLOCATOR (alloc));
  gst_object_unref (alloc);
  gst_query_unref (q);
  gst_caps_unref (caps);
  gst_harness_teardown (h);
}

/* The output caps say what the memory is: memory:UelPinned when a device
 * pinned the pool, plain system memory without one; stopped, either. */
static void
test_caps_say_what_the_memory_is (void)
{
  g_autofree gchar *path = write_model ("caps.safetensors", 1, 1000);
  g_autoptr (UelHeader) header = uel_header_open (path, NULL);
  GstElement *e = gst_element_factory_make ("uelpin", NULL);
  GstPad *src = gst_element_get_static_pad (e, "src");
  GstCaps *caps = gst_pad_query_caps (src, NULL);
  GstHarness *h;
  GstBuffer *in;
  GstCapsFeatures *f;

  g_assert_cmpuint (gst_caps_get_size (caps), ==, 2);
  g_assert_true (gst_caps_features_contains (gst_caps_get_features (caps, 0),
          UEL_CAPS_FEATURE_MEMORY_PINNED));
  g_assert_true (gst_caps_features_is_equal (gst_caps_get_features (caps, 1),
          GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY));
  gst_caps_unref (caps);
  gst_object_unref (src);
  gst_object_unref (e);

  h = gst_harness_new ("uelpin");
  gst_harness_set_src_caps_str (h, UEL_TENSOR_CAPS);
  in = gst_buffer_new_allocate (NULL, 1000, NULL);
  uel_buffer_add_tensor_meta (in, header, 0, 0, 1);
  gst_buffer_unref (gst_harness_push_and_pull (h, in));
  caps = gst_pad_get_current_caps (h->sinkpad);
  g_assert_cmpuint (gst_caps_get_size (caps), ==, 1);
  f = gst_caps_get_features (caps, 0);
  if (have_device ())
    g_assert_true (gst_caps_features_contains (f,
            UEL_CAPS_FEATURE_MEMORY_PINNED));
  else
    g_assert_true (gst_caps_features_is_equal (f,
            GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY));
  gst_caps_unref (caps);
  gst_harness_teardown (h);
}

/* a buffer from elsewhere is copied into the pool: same bytes, same meta */
static void
test_copies_foreign_buffers (void)
{
  g_autofree gchar *path = write_model ("foreign.safetensors", 1, 1000);
  g_autoptr (UelHeader) header = uel_header_open (path, NULL);
  GstHarness *h = gst_harness_new ("uelpin");
  GstBuffer *in, *out;
  GstStructure *s;
  guint8 bytes[1000];
  GstMapInfo map;

  uel_test_fill (bytes, sizeof bytes, 7);
  gst_harness_set_src_caps_str (h, UEL_TENSOR_CAPS);
  in = gst_buffer_new_memdup (bytes, sizeof bytes);
  uel_buffer_add_tensor_meta (in, header, 0, 0, 1);
  out = gst_harness_push_and_pull (h, in);
  g_assert_nonnull (out);
  g_assert_true (uel_memory_is_pinned (gst_buffer_peek_memory (out, 0)));
  g_assert_true (gst_buffer_map (out, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size, bytes, sizeof bytes);
  g_assert_cmpuint (GPOINTER_TO_SIZE (map.data) % 4096, ==, 0);
  gst_buffer_unmap (out, &map);
  g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
          (out)), ==, "t000");

  /* a pinned buffer passes through as it is */
  in = gst_buffer_ref (out);
  g_assert_true (gst_harness_push_and_pull (h, in) == out);
  gst_buffer_unref (out);
  gst_buffer_unref (out);

  s = get_stats (h->element);
  g_assert_cmpuint (uel_test_stat (s, "tensors"), ==, 2);
  g_assert_cmpuint (uel_test_stat (s, "copied"), ==, 1);
  g_assert_cmpuint (uel_test_stat (s, "zero-copy"), ==, 1);
  g_assert_cmpuint (uel_test_stat (s, "bytes"), ==, 2000);
  gst_structure_free (s);
  gst_harness_teardown (h);
}

static void
collect (GstElement * sink, GstBuffer * buf, GstPad * pad, GPtrArray * bufs)
{
  g_ptr_array_add (bufs, gst_buffer_ref (buf));
}

typedef struct
{
  GstContext *answer;           /* given to need-context, or NULL */
  guint asked;
} NeedContext;

static GstBusSyncReply
need_context (GstBus * bus, GstMessage * msg, gpointer data)
{
  NeedContext *nc = data;
  const gchar *type;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_NEED_CONTEXT
      && gst_message_parse_context_type (msg, &type)
      && g_str_equal (type, UEL_PINNED_POOL_CONTEXT_TYPE)) {
    nc->asked++;
    if (nc->answer)
      gst_element_set_context (GST_ELEMENT (GST_MESSAGE_SRC (msg)),
          nc->answer);
  }
  return GST_BUS_PASS;
}

/* runs @launch with @set on the pipeline before it starts, or with
 * @nc (if not NULL) answering need-context */
static GPtrArray *
run_with_context (const gchar * launch, GstContext * set, NeedContext * nc,
    GstStructure ** stats)
{
  GPtrArray *bufs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *sink, *pin;
  GstMessage *msg;

  g_assert_no_error (err);
  if (set)
    gst_element_set_context (pipeline, set);
  if (nc)
    gst_bus_set_sync_handler (GST_ELEMENT_BUS (pipeline), need_context, nc,
        NULL);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  pin = gst_bin_get_by_name (GST_BIN (pipeline), "pin");
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (collect), bufs);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipeline),
      GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_EOS);
  gst_message_unref (msg);
  *stats = get_stats (pin);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pin);
  gst_object_unref (pipeline);
  return bufs;
}

static GPtrArray *
run_with_pin (const gchar * launch, GstStructure ** stats)
{
  return run_with_context (launch, NULL, NULL, stats);
}


/* uelsrc reads straight into the pool that uelpin proposes, through the
 * queue: no copy at all */
static void
test_reads_straight_into_pool (void)
{
  g_autofree gchar *path = write_model ("straight.safetensors", 12, 100000);
  const gchar *chains[] = { "", "uelqueue ! " };

  for (guint c = 0; c < G_N_ELEMENTS (chains); c++) {
    g_autofree gchar *launch = NULL;
    g_autoptr (GPtrArray) bufs = NULL;
    GstStructure *s;

    if (*chains[c] && !gst_registry_check_feature_version
        (gst_registry_get (), "uelqueue", 1, 0, 0))
      continue;
    launch = g_strdup_printf ("uelsrc location=\"%s\" ! %suelpin name=pin "
        "pool-size=%" G_GUINT64_FORMAT " ! fakesink name=sink", path,
        chains[c], 64 * MiB);
    bufs = run_with_pin (launch, &s);
    g_assert_cmpuint (bufs->len, ==, 12);
    for (guint i = 0; i < bufs->len; i++)
      g_assert_true (uel_memory_is_pinned (gst_buffer_peek_memory
              (g_ptr_array_index (bufs, i), 0)));
    check_bytes (bufs, path);
    g_assert_cmpuint (uel_test_stat (s, "zero-copy"), ==, 12);
    g_assert_cmpuint (uel_test_stat (s, "copied"), ==, 0);
    g_assert_cmpuint (uel_test_stat (s, "bytes"), ==, 1200000);
    gst_structure_free (s);
  }
}

/* pipelines run one after another draw from the application's pool, given
 * as a context set on the pipeline or in answer to need-context; without
 * one, each pins its own */
static void
test_shared_pool_across_pipelines (void)
{
  g_autofree gchar *path = write_model ("shared.safetensors", 12, 100000);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "uelqueue ! uelpin name=pin ! fakesink name=sink", path);
  GstAllocator *pool = uel_pinned_allocator_new (8 * MiB, -1);
  GstContext *ctx = uel_pinned_pool_context_new (UEL_PINNED_ALLOCATOR (pool));
  GstAllocator *got = uel_pinned_pool_context_get_allocator (ctx);
  GstMemory *m[2];

  g_assert_true (got == pool);
  gst_object_unref (got);

  for (guint run = 0; run < 4; run++) {
    gboolean answer = run >= 2;
    NeedContext nc = { answer ? ctx : NULL, 0 };
    GstStructure *s;
    g_autoptr (GPtrArray) bufs = run_with_context (launch,
        answer ? NULL : ctx, &nc, &s);

    g_assert_cmpuint (bufs->len, ==, 12);
    for (guint i = 0; i < bufs->len; i++) {
      GstMemory *mem = gst_buffer_peek_memory (g_ptr_array_index (bufs, i),
          0);

      g_assert_true (uel_memory_is_pinned (mem));
      g_assert_true (uel_pinned_allocator_shares_pool (UEL_PINNED_ALLOCATOR
              (mem->allocator), UEL_PINNED_ALLOCATOR (pool)));
    }
    check_bytes (bufs, path);
    /* a context set before the start is used without asking */
    g_assert_cmpuint (nc.asked, ==, answer ? 1 : 0);
    g_assert_true (stat_bool (s, "pool-shared"));
    g_assert_cmpuint (uel_test_stat (s, "pool-size"), ==, 8 * MiB);
    g_assert_cmpuint (uel_test_stat (s, "zero-copy"), ==, 12);
    gst_structure_free (s);
  }

  /* no context: uelpin asks once, then pins its own pool-size */
  {
    NeedContext nc = { NULL, 0 };
    GstStructure *s;
    g_autoptr (GPtrArray) bufs = run_with_context (launch, NULL, &nc, &s);

    g_assert_cmpuint (bufs->len, ==, 12);
    g_assert_false (uel_pinned_allocator_shares_pool (UEL_PINNED_ALLOCATOR
            (gst_buffer_peek_memory (g_ptr_array_index (bufs, 0),
                    0)->allocator), UEL_PINNED_ALLOCATOR (pool)));
    check_bytes (bufs, path);
    g_assert_cmpuint (nc.asked, ==, 1);
    g_assert_false (stat_bool (s, "pool-shared"));
    g_assert_cmpuint (uel_test_stat (s, "pool-size"), ==, 256 * MiB);
    gst_structure_free (s);
  }

  /* every buffer came back: the whole pool is free again */
  gst_context_unref (ctx);
  m[0] = gst_allocator_alloc (pool, 4 * MiB, NULL);
  m[1] = gst_allocator_alloc (pool, 4 * MiB, NULL);
  g_assert_nonnull (m[0]);
  g_assert_nonnull (m[1]);
  gst_memory_unref (m[0]);
  gst_memory_unref (m[1]);
  gst_object_unref (pool);
}

/* an empty tensor is not a fallback: on a GPU host nothing falls back, on
 * a machine without one every tensor with bytes does */
static void
test_empty_tensor_not_a_fallback (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("empty.safetensors");
  g_autofree gchar *launch = NULL;
  g_autoptr (GPtrArray) bufs = NULL;
  GstStructure *s;

  uel_test_builder_add (b, "empty", "F32", "[0]", 0, NULL);
  uel_test_builder_add (b, "full", "F32", "[10]", 40, NULL);
  uel_test_builder_add (b, "also-empty", "U8", "[3,0]", 0, NULL);
  uel_test_builder_write (b, path, NULL);
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelpin name=pin ! "
      "fakesink name=sink", path);
  bufs = run_with_pin (launch, &s);
  g_assert_cmpuint (bufs->len, ==, 3);
  g_assert_cmpuint (uel_test_stat (s, "tensors"), ==, 3);
  g_assert_cmpuint (uel_test_stat (s, "fallbacks"), ==, have_device () ? 0 : 1);
  g_assert_cmpuint (uel_test_stat (s, "zero-copy") + uel_test_stat (s,
          "copied"), ==, 1);
  gst_structure_free (s);
}

/* with chunks, a 4 MiB pool carries tensors of 20 MiB, every byte pinned */
static void
test_chunks_through_small_pool (void)
{
  g_autofree gchar *path = write_model ("chunky.safetensors", 3,
      20 * MiB + 3);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
      "chunk-size=%" G_GUINT64_FORMAT " ! uelpin name=pin pool-size=%"
      G_GUINT64_FORMAT " ! fakesink name=sink", path, MiB, 4 * MiB);
  GstStructure *s;

  {
    /* checked buffer by buffer, without keeping them: the pool is small */
    GError *err = NULL;
    GstElement *p = gst_parse_launch (launch, &err);
    GstElement *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
    GstElement *pin = gst_bin_get_by_name (GST_BIN (p), "pin");
    GstMessage *msg;

    g_assert_no_error (err);
    gst_object_unref (sink);
    gst_element_set_state (p, GST_STATE_PLAYING);
    msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p),
        GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_EOS);
    gst_message_unref (msg);
    s = get_stats (pin);
    gst_element_set_state (p, GST_STATE_NULL);
    gst_object_unref (pin);
    gst_object_unref (p);
  }
  g_assert_cmpuint (uel_test_stat (s, "buffers"), ==, 3 * 21);
  g_assert_cmpuint (uel_test_stat (s, "tensors"), ==, 3);
  g_assert_cmpuint (uel_test_stat (s, "zero-copy"), ==, 3 * 21);
  g_assert_cmpuint (uel_test_stat (s, "bytes"), ==, 3 * (20 * MiB + 3));
  g_assert_cmpuint (uel_test_stat (s, "pool-peak-bytes"), <=, 4 * MiB);
  gst_structure_free (s);
}

/* a tensor larger than the pool passes unpinned: no deadlock, exact bytes */
static void
test_tensor_larger_than_pool (void)
{
  g_autofree gchar *path = write_model ("large.safetensors", 2, 6 * MiB);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "uelpin name=pin pool-size=%" G_GUINT64_FORMAT " ! fakesink name=sink",
      path, 4 * MiB);
  g_autoptr (GPtrArray) bufs = NULL;
  GstStructure *s;

  bufs = run_with_pin (launch, &s);
  g_assert_cmpuint (bufs->len, ==, 2);
  check_bytes (bufs, path);
  g_assert_false (uel_memory_is_pinned (gst_buffer_peek_memory
          (g_ptr_array_index (bufs, 0), 0)));
  g_assert_cmpuint (uel_test_stat (s, "fallbacks"), ==, 2);
  g_assert_cmpuint (uel_test_stat (s, "copied"), ==, 0);
  gst_structure_free (s);
}

/* a consumer that keeps every tensor it gets until the test lets go */
typedef struct
{
  GQueue held;
  guint max_held;
  guint count;
} Holder;

static void
hold_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, Holder * h)
{
  g_queue_push_tail (&h->held, gst_buffer_ref (buf));
  if (h->held.length > h->max_held)
    gst_buffer_unref (g_queue_pop_head (&h->held));
  h->count++;
}

static void
retain_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad,
    GAsyncQueue * q)
{
  g_async_queue_push (q, gst_buffer_ref (buf));
}

/* The consumer keeps everything: the pool fills up and the reader waits.
 * Each time it does, the test checks the bounds, then lets the consumer
 * drop what it holds, until the whole file has gone through. */
static void
test_memory_bound (void)
{
  g_autofree gchar *path = write_model ("bound.safetensors", 64, MiB);
  gboolean have_queue = gst_registry_check_feature_version
      (gst_registry_get (), "uelqueue", 1, 0, 0);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "%suelpin name=pin pool-size=%" G_GUINT64_FORMAT " ! fakesink "
      "name=sink signal-handoffs=true", path, have_queue ?
      "uelqueue name=q max-size-bytes=3145728 ! " : "", 8 * MiB);
  GAsyncQueue *retained = g_async_queue_new_full (
      (GDestroyNotify) gst_buffer_unref);
  GError *err = NULL;
  GstElement *p = gst_parse_launch (launch, &err);
  GstElement *sink, *pin, *q;
  GstStructure *s;
  guint64 waits = 0, total = 0, rounds = 0;
  gboolean eos = FALSE;
  GstBuffer *b;

  g_assert_no_error (err);
  sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  pin = gst_bin_get_by_name (GST_BIN (p), "pin");
  q = gst_bin_get_by_name (GST_BIN (p), "q");
  g_signal_connect (sink, "handoff", G_CALLBACK (retain_handoff), retained);
  gst_element_set_state (p, GST_STATE_PLAYING);

  while (!eos) {
    GstMessage *msg;

    /* wait for the reader to wait on the full pool, or for the end */
    for (;;) {
      msg = gst_bus_pop_filtered (GST_ELEMENT_BUS (p),
          GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
      if (msg) {
        g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_EOS);
        gst_message_unref (msg);
        eos = TRUE;
        break;
      }
      s = get_stats (pin);
      if (uel_test_stat (s, "pool-waits") > waits)
        break;
      gst_structure_free (s);
      g_thread_yield ();
    }
    if (!eos) {
      waits = uel_test_stat (s, "pool-waits");
      rounds++;
      g_assert_cmpuint (uel_test_stat (s, "pool-live-bytes"), <=, 8 * MiB);
      gst_structure_free (s);
      if (q) {
        guint64 level;
        g_object_get (q, "current-level-bytes", &level, NULL);
        g_assert_cmpuint (level, <=, 3 * MiB);
      }
    }
    /* let go of what the consumer holds now (at most the pool), not of
     * what arrives meanwhile: each round then frees at most 8 MiB */
    for (gint n = g_async_queue_length (retained); n > 0; n--) {
      b = g_async_queue_pop (retained);
      total += gst_buffer_get_size (b);
      gst_buffer_unref (b);
    }
  }
  while ((b = g_async_queue_try_pop (retained))) {
    total += gst_buffer_get_size (b);
    gst_buffer_unref (b);
  }
  g_assert_cmpuint (total, ==, 64 * MiB);
  /* 56 MiB had to be let go of before the end, 8 MiB a round at most: the
   * pool was full and the reader waited at least 7 times */
  g_assert_cmpuint (rounds, >=, 7);
  s = get_stats (pin);
  g_assert_cmpuint (uel_test_stat (s, "bytes"), ==, 64 * MiB);
  g_assert_cmpuint (uel_test_stat (s, "pool-peak-bytes"), ==, 8 * MiB);
  gst_structure_free (s);
  if (q) {
    guint64 peak;
    g_object_get (q, "max-level-bytes", &peak, NULL);
    g_assert_cmpuint (peak, <=, 3 * MiB);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  g_async_queue_unref (retained);
  gst_object_unref (sink);
  gst_object_unref (pin);
  gst_clear_object (&q);
  gst_object_unref (p);
}

/* fakesink keeps its last buffer (enable-last-sample defaults to true): a
 * tensor more than half the pool behind it must not wait forever for it
 * (found by bench/: `uelsrc ! uelqueue ! uelpin ! fakesink` hung on a
 * 250 MiB embedding with the 256 MiB default pool) */
static void
test_kept_last_buffer (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("kept.safetensors");
  g_autofree gchar *launch = NULL;
  GError *err;

  uel_test_builder_set_align (b, 8);
  /* the sink keeps each tensor until the next one arrives: the next one
   * must fit beside it */
  uel_test_builder_add (b, "a", "U8", "[2621440]", 2621440, NULL);
  uel_test_builder_add (b, "b", "U8", "[2621440]", 2621440, NULL);
  uel_test_builder_add (b, "c", "U8", "[1500000]", 1500000, NULL);
  uel_test_builder_add (b, "d", "U8", "[2000000]", 2000000, NULL);
  uel_test_builder_add (b, "e", "U8", "[1024]", 1024, NULL);
  uel_test_builder_write (b, path, NULL);
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelqueue ! uelpin "
      "pool-size=%" G_GUINT64_FORMAT " ! fakesink", path, 4 * MiB);
  err = uel_test_run_pipeline (launch, NULL);
  g_assert_no_error (err);
}

/* the reader waits in a full pool; going to NULL must wake it, not hang */
static void
test_null_while_pool_full (void)
{
  g_autofree gchar *path = write_model ("stuck.safetensors", 16, MiB);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "uelpin name=pin pool-size=%" G_GUINT64_FORMAT " ! fakesink name=sink "
      "signal-handoffs=true", path, 4 * MiB);
  Holder holder = { G_QUEUE_INIT, G_MAXUINT, 0 };
  GError *err = NULL;
  GstElement *p = gst_parse_launch (launch, &err);
  GstElement *sink, *pin;
  GstStructure *s;

  g_assert_no_error (err);
  sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  pin = gst_bin_get_by_name (GST_BIN (p), "pin");
  g_signal_connect (sink, "handoff", G_CALLBACK (hold_handoff), &holder);
  gst_element_set_state (p, GST_STATE_PLAYING);
  do {
    g_thread_yield ();
    s = get_stats (pin);
    if (uel_test_stat (s, "pool-waits") > 0)
      break;
    gst_structure_free (s);
  } while (TRUE);
  gst_structure_free (s);
  g_assert_cmpint (gst_element_set_state (p, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  g_assert_cmpuint (holder.count, <=, 4);
  g_queue_clear_full (&holder.held, (GDestroyNotify) gst_buffer_unref);
  gst_object_unref (sink);
  gst_object_unref (pin);
  gst_object_unref (p);
}

static void
test_no_gpu_warns_once (void)
{
  g_autofree gchar *path = write_model ("warn.safetensors", 3, 1000);
  g_autofree gchar *launch = NULL;
  GError *err = NULL;
  GstElement *p;
  GstBus *bus;
  GstMessage *msg;
  guint warnings = 0;

  if (have_device ()) {
    g_test_skip ("a CUDA device is present");
    return;
  }
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelpin ! fakesink",
      path);
  p = gst_parse_launch (launch, &err);
  g_assert_no_error (err);
  bus = gst_element_get_bus (p);
  gst_element_set_state (p, GST_STATE_PLAYING);
  while ((msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
              GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING))) {
    GstMessageType t = GST_MESSAGE_TYPE (msg);

    if (t == GST_MESSAGE_WARNING) {
      GError *w = NULL;
      gst_message_parse_warning (msg, &w, NULL);
      g_assert_nonnull (strstr (w->message, "No CUDA device"));
      g_error_free (w);
      warnings++;
    }
    gst_message_unref (msg);
    g_assert_cmpint (t, !=, GST_MESSAGE_ERROR);
    if (t == GST_MESSAGE_EOS)
      break;
  }
  g_assert_cmpuint (warnings, ==, 1);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (p);
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/pinned/pool-blocks-when-full-and-resumes",
      test_pool_blocks_and_resumes);
  g_test_add_func ("/pinned/freed-blocks-coalesce", test_pool_coalesces);
  g_test_add_func ("/pinned/buffer-is-pinned", test_buffer_is_pinned);
  g_test_add_func ("/pinned/shared-memory-keeps-its-block",
      test_shared_memory);
  g_test_add_func ("/pinned/allocators-share-one-pool", test_shared_pool);
  g_test_add_func ("/pinned/shared-pool-waits-are-independent",
      test_shared_pool_waits_are_independent);
  g_test_add_func ("/pinned/gives-up-when-memory-never-comes-back",
      test_pool_gives_up);
  g_test_add_func ("/uelpin/proposes-its-allocator", test_proposes_allocator);
  g_test_add_func ("/uelpin/caps-say-what-the-memory-is",
      test_caps_say_what_the_memory_is);
  g_test_add_func ("/uelpin/buffer-kept-by-the-sink-does-not-hang",
      test_kept_last_buffer);
  g_test_add_func ("/uelpin/copies-foreign-buffers",
      test_copies_foreign_buffers);
  g_test_add_func ("/uelpin/reader-fills-the-pool-without-copies",
      test_reads_straight_into_pool);
  g_test_add_func ("/uelpin/pipelines-share-the-application-pool",
      test_shared_pool_across_pipelines);
  g_test_add_func ("/uelpin/empty-tensor-is-not-a-fallback",
      test_empty_tensor_not_a_fallback);
  g_test_add_func ("/uelpin/chunks-carry-tensors-larger-than-the-pool",
      test_chunks_through_small_pool);
  g_test_add_func ("/uelpin/tensor-larger-than-pool-passes-unpinned",
      test_tensor_larger_than_pool);
  g_test_add_func ("/uelpin/memory-stays-within-the-pool",
      test_memory_bound);
  g_test_add_func ("/uelpin/null-while-pool-full-does-not-hang",
      test_null_while_pool_full);
  g_test_add_func ("/uelpin/no-gpu-warns-once", test_no_gpu_warns_once);
  return g_test_run ();
}
