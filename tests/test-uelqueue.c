/* gst-uel: uelqueue through GstHarness and gst_parse_launch pipelines
 * SPDX-License-Identifier: MIT
 *
 * Nothing here waits for time to pass: every blocked thread is blocked on a
 * condition the test controls (a probe or a handoff that waits on a GCond)
 * or that the queue announces (its overrun signal), and the levels are
 * read while both sides are known to be stopped.
 */
#include "config.h"

#include <gst/check/gstharness.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test-utils.h"

#define TENSOR_CAPS "other/x-uel-tensor"

/* ------------------------------------------------------------------ */
/* buffers that report when they are freed */

static gint n_created;
static gint n_freed;

static void
on_buffer_freed (gpointer data, GstMiniObject * obj)
{
  g_atomic_int_inc (&n_freed);
}

static void
tracking_reset (void)
{
  g_atomic_int_set (&n_created, 0);
  g_atomic_int_set (&n_freed, 0);
}

static void
assert_all_freed (void)
{
  g_assert_cmpint (g_atomic_int_get (&n_freed), ==,
      g_atomic_int_get (&n_created));
}

/* @size bytes of uel_test_fill (@seed), with @seed as the buffer offset */
static GstBuffer *
tensor_new (gsize size, guint seed)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, size, NULL);
  GstMapInfo map;

  g_assert_true (gst_buffer_map (buf, &map, GST_MAP_WRITE));
  uel_test_fill (map.data, size, seed);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_OFFSET (buf) = seed;
  gst_mini_object_weak_ref (GST_MINI_OBJECT (buf), on_buffer_freed, NULL);
  g_atomic_int_inc (&n_created);
  return buf;
}

static void
assert_tensor (GstBuffer * buf, gsize size, guint seed)
{
  g_autofree guint8 *expected = g_malloc (MAX (size, 1));
  GstMapInfo map;

  g_assert_nonnull (buf);
  g_assert_cmpuint (GST_BUFFER_OFFSET (buf), ==, seed);
  uel_test_fill (expected, size, seed);
  g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size, expected, size);
  gst_buffer_unmap (buf, &map);
}

static void
pull_and_check (GstHarness * h, gsize size, guint seed)
{
  GstBuffer *buf = gst_harness_pull (h);

  assert_tensor (buf, size, seed);
  gst_buffer_unref (buf);
}

/* What the queue counts for a buffer of @size bytes from
 * gst_buffer_new_allocate() (tensor_new()): its memory (system memory
 * adds its alignment) and the fixed overheads. */
static guint64
footprint (gsize size)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, size, NULL);
  guint64 bytes = uel_buffer_get_footprint (buf);

  g_assert_cmpuint (bytes, >=, size + UEL_BUFFER_OVERHEAD +
      UEL_MEMORY_OVERHEAD);
  gst_buffer_unref (buf);
  return bytes;
}

/* ... and for a tensor of @size bytes that uelsrc read into its host
 * memory: blocks of whole pages above UEL_HOST_SMALL_MAX (up to 1 MiB) */
static guint64
src_footprint (gsize size)
{
  if (size > UEL_HOST_SMALL_MAX)
    size = (size + 4095) / 4096 * 4096;
  return size + UEL_BUFFER_OVERHEAD + UEL_MEMORY_OVERHEAD;
}

static guint64
level_bytes (GstElement * queue)
{
  guint64 v;

  g_object_get (queue, "current-level-bytes", &v, NULL);
  return v;
}

static guint
level_buffers (GstElement * queue)
{
  guint v;

  g_object_get (queue, "current-level-buffers", &v, NULL);
  return v;
}

static guint64
peak_bytes (GstElement * queue)
{
  guint64 v;

  g_object_get (queue, "max-level-bytes", &v, NULL);
  return v;
}

static guint
peak_buffers (GstElement * queue)
{
  guint v;

  g_object_get (queue, "max-level-buffers", &v, NULL);
  return v;
}

/* our plugin registers every element it has, whatever the machine: a
 * missing one is a failure, not a skip */
static void
require_element (const gchar * name)
{
  GstElementFactory *factory = gst_element_factory_find (name);

  g_assert_nonnull (factory);
  gst_object_unref (factory);
}

static GstHarness *
queue_harness_new (guint64 max_bytes, guint max_buffers)
{
  GstHarness *h;

  require_element ("uelqueue");
  h = gst_harness_new ("uelqueue");
  g_object_set (h->element, "max-size-bytes", max_bytes,
      "max-size-buffers", max_buffers, NULL);
  gst_harness_set_src_caps_str (h, TENSOR_CAPS);
  return h;
}

static GstPad *
queue_srcpad (GstHarness * h)
{
  GstPad *pad = gst_element_get_static_pad (h->element, "src");

  /* the element keeps its pad alive */
  gst_object_unref (pad);
  return pad;
}

/* ------------------------------------------------------------------ */
/* a gate on the queue's src pad, and what the queue announces */

typedef struct
{
  GMutex lock;
  GCond cond;
  guint arrived;                /* buffers that reached the gate */
  guint allowed;                /* buffers it lets through (G_MAXUINT: open) */
  GstFlowReturn fail;           /* what held buffers return when released */
  guint overruns;
  guint underruns;
  GPtrArray *trace;             /* what left the queue, in order */
} Gate;

static void
gate_init (Gate * g)
{
  memset (g, 0, sizeof (*g));
  g_mutex_init (&g->lock);
  g_cond_init (&g->cond);
  g->fail = GST_FLOW_OK;
  g->trace = g_ptr_array_new_with_free_func (g_free);
}

static void
gate_clear (Gate * g)
{
  g_mutex_clear (&g->lock);
  g_cond_clear (&g->cond);
  g_ptr_array_unref (g->trace);
}

static void
gate_allow (Gate * g, guint allowed, GstFlowReturn fail)
{
  g_mutex_lock (&g->lock);
  g->allowed = allowed;
  g->fail = fail;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
}

static void
gate_wait_arrived (Gate * g, guint n)
{
  g_mutex_lock (&g->lock);
  while (g->arrived < n)
    g_cond_wait (&g->cond, &g->lock);
  g_mutex_unlock (&g->lock);
}

static void
gate_wait_overruns (Gate * g, guint n)
{
  g_mutex_lock (&g->lock);
  while (g->overruns < n)
    g_cond_wait (&g->cond, &g->lock);
  g_mutex_unlock (&g->lock);
}

/* holds buffers beyond g->allowed in the queue's streaming thread */
static GstPadProbeReturn
gate_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Gate *g = data;
  GstFlowReturn fail;

  g_mutex_lock (&g->lock);
  g->arrived++;
  g_cond_broadcast (&g->cond);
  while (g->arrived > g->allowed)
    g_cond_wait (&g->cond, &g->lock);
  fail = g->fail;
  g_mutex_unlock (&g->lock);

  if (fail == GST_FLOW_OK)
    return GST_PAD_PROBE_OK;
  gst_buffer_unref (GST_PAD_PROBE_INFO_BUFFER (info));
  GST_PAD_PROBE_INFO_DATA (info) = NULL;
  GST_PAD_PROBE_INFO_FLOW_RETURN (info) = fail;
  return GST_PAD_PROBE_HANDLED;
}

/* counts arrivals, then lets GStreamer's own blocking hold the buffer: a
 * flush or a state change releases it, not the test */
static GstPadProbeReturn
count_then_block_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Gate *g = data;

  g_mutex_lock (&g->lock);
  g->arrived++;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
  return GST_PAD_PROBE_OK;
}

static void
on_overrun (GstElement * queue, gpointer data)
{
  Gate *g = data;

  g_mutex_lock (&g->lock);
  g->overruns++;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
}

static void
on_underrun (GstElement * queue, gpointer data)
{
  Gate *g = data;

  g_mutex_lock (&g->lock);
  g->underruns++;
  g_mutex_unlock (&g->lock);
}

static gulong
gate_attach (Gate * g, GstHarness * h)
{
  g_signal_connect (h->element, "overrun", G_CALLBACK (on_overrun), g);
  g_signal_connect (h->element, "underrun", G_CALLBACK (on_underrun), g);
  return gst_pad_add_probe (queue_srcpad (h), GST_PAD_PROBE_TYPE_BUFFER,
      gate_probe, g, NULL);
}

/* a push from another thread, for pushes that are meant to block */
typedef struct
{
  GstHarness *h;
  GstBuffer *buf;
  GstFlowReturn ret;
  GThread *thread;
} Pusher;

static gpointer
pusher_func (gpointer data)
{
  Pusher *p = data;

  p->ret = gst_harness_push (p->h, p->buf);
  return NULL;
}

static Pusher *
pusher_start (GstHarness * h, GstBuffer * buf)
{
  Pusher *p = g_new0 (Pusher, 1);

  p->h = h;
  p->buf = buf;
  p->thread = g_thread_new ("pusher", pusher_func, p);
  return p;
}

static GstFlowReturn
pusher_join (Pusher * p)
{
  GstFlowReturn ret;

  g_thread_join (p->thread);
  ret = p->ret;
  g_free (p);
  return ret;
}

/* ------------------------------------------------------------------ */
/* properties */

static void
test_properties (void)
{
  GstElement *q;
  GParamSpec *pspec;
  GstStructure *stats = NULL;
  guint64 bytes;
  guint buffers;
  const gchar *readonly[] = {
    "current-level-bytes", "current-level-buffers", "max-level-bytes",
    "max-level-buffers", "stats",
  };

  q = gst_element_factory_make ("uelqueue", NULL);
  g_assert_nonnull (q);
  g_object_get (q, "max-size-bytes", &bytes, "max-size-buffers", &buffers,
      NULL);
  g_assert_cmpuint (bytes, ==, G_GUINT64_CONSTANT (1) << 30);
  g_assert_cmpuint (buffers, ==, 0);

  /* byte limits are 64-bit: more than 4 GiB can be asked for */
  g_object_set (q, "max-size-bytes", G_GUINT64_CONSTANT (6) << 30, NULL);
  g_object_get (q, "max-size-bytes", &bytes, NULL);
  g_assert_cmpuint (bytes, ==, G_GUINT64_CONSTANT (6) << 30);

  for (guint i = 0; i < G_N_ELEMENTS (readonly); i++) {
    pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (q),
        readonly[i]);
    g_assert_nonnull (pspec);
    g_assert_true (pspec->flags & G_PARAM_READABLE);
    g_assert_false (pspec->flags & G_PARAM_WRITABLE);
  }
  g_assert_cmpuint (level_bytes (q), ==, 0);
  g_assert_cmpuint (level_buffers (q), ==, 0);
  g_assert_cmpuint (peak_bytes (q), ==, 0);

  g_object_get (q, "stats", &stats, NULL);
  g_assert_nonnull (stats);
  g_assert_cmpstr (gst_structure_get_name (stats), ==, "uelqueue-stats");
  g_assert_true (gst_structure_get_uint64 (stats, "max-level-bytes", &bytes));
  g_assert_true (gst_structure_has_field (stats, "overruns"));
  gst_structure_free (stats);

  for (guint i = 0; i < 4; i++) {
    const gchar *names[] = { "overrun", "underrun", "running", "pushing" };
    g_assert_cmpuint (g_signal_lookup (names[i], G_OBJECT_TYPE (q)), !=, 0);
  }
  gst_object_unref (q);
}

/* pinned and CUDA tensors are queued like host ones */
static void
test_accepts_any_memory_feature (void)
{
  GstHarness *h;

  tracking_reset ();
  h = queue_harness_new (0, 0);
  gst_harness_set_src_caps_str (h, TENSOR_CAPS "(memory:UelPinned)");
  g_assert_cmpint (gst_harness_push (h, tensor_new (64, 1)), ==, GST_FLOW_OK);
  pull_and_check (h, 64, 1);
  gst_harness_teardown (h);
  assert_all_freed ();
}

/* ------------------------------------------------------------------ */
/* order */

static GstPadProbeReturn
trace_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Gate *g = data;
  gchar *item = NULL;

  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER) {
    item = g_strdup_printf ("b%" G_GUINT64_FORMAT,
        GST_BUFFER_OFFSET (GST_PAD_PROBE_INFO_BUFFER (info)));
  } else if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_EVENT_BOTH) {
    GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);

    if (GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_DOWNSTREAM)
      item = g_strdup (gst_structure_get_name (gst_event_get_structure
              (event)));
    else if (GST_EVENT_TYPE (event) == GST_EVENT_EOS)
      item = g_strdup ("eos");
  } else if ((GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_PUSH)) {
    GstQuery *query = GST_PAD_PROBE_INFO_QUERY (info);

    if (GST_QUERY_TYPE (query) == GST_QUERY_ALLOCATION
        || GST_QUERY_TYPE (query) == GST_QUERY_DRAIN)
      item = g_strdup (GST_QUERY_TYPE_NAME (query));
  }
  if (item) {
    g_mutex_lock (&g->lock);
    g_ptr_array_add (g->trace, item);
    g_mutex_unlock (&g->lock);
  }
  return GST_PAD_PROBE_OK;
}

/* opens the gate from the querying thread right before the ALLOCATION
 * query enters the queue, which still holds the buffers ahead of it */
static GstPadProbeReturn
open_on_allocation_probe (GstPad * pad, GstPadProbeInfo * info,
    gpointer data)
{
  if (GST_QUERY_TYPE (GST_PAD_PROBE_INFO_QUERY (info)) == GST_QUERY_ALLOCATION)
    gate_allow (data, G_MAXUINT, GST_FLOW_OK);
  return GST_PAD_PROBE_OK;
}

static GstEvent *
custom_event (const gchar * name)
{
  return gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
      gst_structure_new_empty (name));
}

static void
test_keeps_order (void)
{
  const gsize sizes[] = { 1000, 2000, 3000, 4000, 5000 };
  const gchar *expected[] = {
    "b0", "e1", "b1", "e2", "b2", "allocation", "b3", "e3", "drain", "b4",
    "eos",
  };
  GstAllocator *proposed = uel_host_allocator_new (0);
  GstAllocator *allocator = NULL;
  GstHarness *h;
  GstQuery *query;
  GstCaps *caps;
  GstEvent *event;
  GstPad *sinkpad;
  Gate g;

  tracking_reset ();
  gate_init (&g);
  h = queue_harness_new (0, 0);
  gst_harness_set_propose_allocator (h, gst_object_ref (proposed), NULL);
  gst_pad_add_probe (queue_srcpad (h), GST_PAD_PROBE_TYPE_DATA_DOWNSTREAM |
      GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM, trace_probe, &g, NULL);
  gate_attach (&g, h);
  sinkpad = gst_element_get_static_pad (h->element, "sink");
  gst_pad_add_probe (sinkpad, GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM |
      GST_PAD_PROBE_TYPE_PUSH, open_on_allocation_probe, &g, NULL);
  gst_object_unref (sinkpad);

  /* b0 leaves the queue and is held; the rest waits in the queue */
  g_assert_cmpint (gst_harness_push (h, tensor_new (sizes[0], 0)), ==,
      GST_FLOW_OK);
  gate_wait_arrived (&g, 1);
  g_assert_true (gst_harness_push_event (h, custom_event ("e1")));
  g_assert_cmpint (gst_harness_push (h, tensor_new (sizes[1], 1)), ==,
      GST_FLOW_OK);
  g_assert_true (gst_harness_push_event (h, custom_event ("e2")));
  g_assert_cmpint (gst_harness_push (h, tensor_new (sizes[2], 2)), ==,
      GST_FLOW_OK);
  /* events and queries take no room */
  g_assert_cmpuint (level_buffers (h->element), ==, 2);
  g_assert_cmpuint (level_bytes (h->element), ==, footprint (sizes[1]) +
      footprint (sizes[2]));

  /* answered downstream, after b2, by the harness's allocator */
  caps = gst_caps_from_string (TENSOR_CAPS);
  query = gst_query_new_allocation (caps, FALSE);
  gst_caps_unref (caps);
  g_assert_true (gst_pad_peer_query (h->srcpad, query));
  g_assert_cmpuint (gst_query_get_n_allocation_params (query), ==, 1);
  gst_query_parse_nth_allocation_param (query, 0, &allocator, NULL);
  g_assert_true (allocator == proposed);
  gst_object_unref (allocator);
  gst_query_unref (query);

  g_assert_cmpint (gst_harness_push (h, tensor_new (sizes[3], 3)), ==,
      GST_FLOW_OK);
  g_assert_true (gst_harness_push_event (h, custom_event ("e3")));
  query = gst_query_new_drain ();
  gst_pad_peer_query (h->srcpad, query);
  gst_query_unref (query);
  g_assert_cmpint (gst_harness_push (h, tensor_new (sizes[4], 4)), ==,
      GST_FLOW_OK);
  g_assert_true (gst_harness_push_event (h, gst_event_new_eos ()));

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    pull_and_check (h, sizes[i], i);
  /* the EOS comes last downstream too */
  while ((event = gst_harness_pull_event (h))) {
    gboolean eos = GST_EVENT_TYPE (event) == GST_EVENT_EOS;
    gst_event_unref (event);
    if (eos)
      break;
  }
  g_assert_null (gst_harness_try_pull (h));

  g_mutex_lock (&g.lock);
  g_assert_cmpuint (g.trace->len, ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    g_assert_cmpstr (g_ptr_array_index (g.trace, i), ==, expected[i]);
  g_mutex_unlock (&g.lock);

  g_assert_cmpuint (level_bytes (h->element), ==, 0);
  gst_harness_teardown (h);
  gst_object_unref (proposed);
  gate_clear (&g);
  assert_all_freed ();
}

/* uelsrc learns, through the queue, the allocator proposed after it */
static void
test_allocation_reaches_uelsrc (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("allocation.safetensors");
  g_autofree gchar *launch = NULL;
  GstAllocator *proposed = uel_host_allocator_new (0);
  const guint8 *data;
  gsize offset = 0;
  const gsize sizes[] = { 4096, 100, 65536, 12 };
  GstHarness *h;

  require_element ("uelsrc");
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", i);
    g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]",
        sizes[i]);
    uel_test_builder_add (b, name, "U8", shape, sizes[i], NULL);
  }
  data = uel_test_builder_write (b, path, NULL);

  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelqueue "
      "max-size-bytes=8192", path);
  h = gst_harness_new_parse (launch);
  gst_harness_set_propose_allocator (h, gst_object_ref (proposed), NULL);
  gst_harness_play (h);

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    GstBuffer *buf = gst_harness_pull (h);
    GstMapInfo map;

    g_assert_nonnull (buf);
    g_assert_true (gst_buffer_peek_memory (buf, 0)->allocator == proposed);
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpmem (map.data, map.size, data + offset, sizes[i]);
    gst_buffer_unmap (buf, &map);
    offset += sizes[i];
    gst_buffer_unref (buf);
  }
  gst_harness_teardown (h);
  gst_object_unref (proposed);
}

/* ------------------------------------------------------------------ */
/* limits */

static void
test_oversized_tensor_passes_when_empty (void)
{
  GstHarness *h;
  Pusher *p;
  Gate g;

  tracking_reset ();
  gate_init (&g);
  h = queue_harness_new (1000, 0);
  gate_attach (&g, h);

  /* s0 leaves the queue and is held downstream: the queue is empty */
  g_assert_cmpint (gst_harness_push (h, tensor_new (100, 0)), ==,
      GST_FLOW_OK);
  gate_wait_arrived (&g, 1);

  /* five times the limit, and it enters at once */
  g_assert_cmpint (gst_harness_push (h, tensor_new (5000, 1)), ==,
      GST_FLOW_OK);
  g_assert_cmpuint (level_bytes (h->element), ==, footprint (5000));
  g_assert_cmpuint (level_buffers (h->element), ==, 1);

  /* but nothing joins it */
  p = pusher_start (h, tensor_new (100, 2));
  gate_wait_overruns (&g, 1);
  g_assert_cmpuint (level_bytes (h->element), ==, footprint (5000));
  g_assert_cmpuint (level_buffers (h->element), ==, 1);

  gate_allow (&g, G_MAXUINT, GST_FLOW_OK);
  g_assert_cmpint (pusher_join (p), ==, GST_FLOW_OK);
  pull_and_check (h, 100, 0);
  pull_and_check (h, 5000, 1);
  pull_and_check (h, 100, 2);
  g_assert_cmpuint (peak_bytes (h->element), ==, footprint (5000));
  g_assert_cmpuint (peak_buffers (h->element), ==, 1);

  /* and alone into an empty queue, with nothing held downstream */
  g_assert_cmpint (gst_harness_push (h, tensor_new (70000, 3)), ==,
      GST_FLOW_OK);
  pull_and_check (h, 70000, 3);

  gst_harness_teardown (h);
  gate_clear (&g);
  assert_all_freed ();
}

static void
test_limits_bytes (void)
{
  GstHarness *h;
  Pusher *p;
  Gate g;

  tracking_reset ();
  gate_init (&g);
  h = queue_harness_new (footprint (600) + footprint (400), 0);
  gate_attach (&g, h);

  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 0)), ==, GST_FLOW_OK);
  gate_wait_arrived (&g, 1);
  /* exactly the limit fits */
  g_assert_cmpint (gst_harness_push (h, tensor_new (600, 1)), ==,
      GST_FLOW_OK);
  g_assert_cmpint (gst_harness_push (h, tensor_new (400, 2)), ==,
      GST_FLOW_OK);
  g_assert_cmpuint (level_bytes (h->element), ==, footprint (600) + footprint (400));

  /* one byte more does not: a buffer counts its memory and overheads */
  p = pusher_start (h, tensor_new (1, 3));
  gate_wait_overruns (&g, 1);
  g_assert_cmpuint (level_bytes (h->element), ==, footprint (600) + footprint (400));
  g_assert_cmpuint (level_buffers (h->element), ==, 2);

  /* a higher limit lets it in while downstream still holds s0 */
  g_object_set (h->element, "max-size-bytes", footprint (600) + footprint (400) + footprint (1),
      NULL);
  g_assert_cmpint (pusher_join (p), ==, GST_FLOW_OK);
  g_assert_cmpuint (level_bytes (h->element), ==, footprint (600) + footprint (400) +
      footprint (1));
  g_assert_cmpuint (level_buffers (h->element), ==, 3);

  gate_allow (&g, G_MAXUINT, GST_FLOW_OK);
  pull_and_check (h, 10, 0);
  pull_and_check (h, 600, 1);
  pull_and_check (h, 400, 2);
  pull_and_check (h, 1, 3);
  g_assert_cmpuint (peak_bytes (h->element), ==, footprint (600) + footprint (400) +
      footprint (1));
  gst_harness_teardown (h);
  gate_clear (&g);
  assert_all_freed ();
}

static void
test_limits_buffers (void)
{
  GstHarness *h;
  Pusher *p;
  Gate g;

  tracking_reset ();
  gate_init (&g);
  h = queue_harness_new (0, 2);
  gate_attach (&g, h);

  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 0)), ==, GST_FLOW_OK);
  gate_wait_arrived (&g, 1);
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 1)), ==, GST_FLOW_OK);
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 2)), ==, GST_FLOW_OK);
  p = pusher_start (h, tensor_new (10, 3));
  gate_wait_overruns (&g, 1);
  g_assert_cmpuint (level_buffers (h->element), ==, 2);

  gate_allow (&g, G_MAXUINT, GST_FLOW_OK);
  g_assert_cmpint (pusher_join (p), ==, GST_FLOW_OK);
  for (guint i = 0; i < 4; i++)
    pull_and_check (h, 10, i);
  g_assert_cmpuint (peak_buffers (h->element), ==, 2);
  g_assert_cmpuint (g.underruns, >=, 1);
  gst_harness_teardown (h);
  gate_clear (&g);
  assert_all_freed ();
}

/* ------------------------------------------------------------------ */
/* flushing, EOS, errors, state */

static void
test_flush_unblocks_upstream (void)
{
  GstHarness *h;
  GstSegment segment;
  GstQuery *query;
  GstCaps *caps;
  Pusher *p;
  gulong probe;
  Gate g;

  tracking_reset ();
  gate_init (&g);
  h = queue_harness_new (0, 1);
  g_signal_connect (h->element, "overrun", G_CALLBACK (on_overrun), &g);
  probe = gst_pad_add_probe (queue_srcpad (h), GST_PAD_PROBE_TYPE_BLOCK |
      GST_PAD_PROBE_TYPE_BUFFER, count_then_block_probe, &g, NULL);

  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 0)), ==, GST_FLOW_OK);
  gate_wait_arrived (&g, 1);
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 1)), ==, GST_FLOW_OK);
  p = pusher_start (h, tensor_new (10, 2));
  gate_wait_overruns (&g, 1);

  g_assert_true (gst_harness_push_event (h, gst_event_new_flush_start ()));
  g_assert_cmpint (pusher_join (p), ==, GST_FLOW_FLUSHING);
  g_assert_cmpuint (level_buffers (h->element), ==, 0);
  g_assert_cmpuint (level_bytes (h->element), ==, 0);
  /* serialized queries are refused while flushing */
  caps = gst_caps_from_string (TENSOR_CAPS);
  query = gst_query_new_allocation (caps, FALSE);
  gst_caps_unref (caps);
  g_assert_false (gst_pad_peer_query (h->srcpad, query));
  gst_query_unref (query);

  gst_pad_remove_probe (queue_srcpad (h), probe);
  g_assert_true (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  g_assert_true (gst_harness_push_event (h, gst_event_new_segment (&segment)));

  /* nothing from before the flush comes out, and data flows again */
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 3)), ==, GST_FLOW_OK);
  pull_and_check (h, 10, 3);
  g_assert_null (gst_harness_try_pull (h));

  gst_harness_teardown (h);
  gate_clear (&g);
  assert_all_freed ();
}

static void
test_eos (void)
{
  GstHarness *h;
  GstEvent *event;
  guint n_events = 0;

  tracking_reset ();
  h = queue_harness_new (0, 0);
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 0)), ==, GST_FLOW_OK);
  g_assert_cmpint (gst_harness_push (h, tensor_new (20, 1)), ==, GST_FLOW_OK);
  g_assert_true (gst_harness_push_event (h, gst_event_new_eos ()));

  pull_and_check (h, 10, 0);
  pull_and_check (h, 20, 1);
  while ((event = gst_harness_pull_event (h))) {
    gboolean eos = GST_EVENT_TYPE (event) == GST_EVENT_EOS;
    gst_event_unref (event);
    n_events++;
    if (eos)
      break;
  }
  g_assert_nonnull (event);
  g_assert_null (gst_harness_try_pull_event (h));

  /* nothing after EOS */
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 2)), ==, GST_FLOW_EOS);
  g_assert_null (gst_harness_try_pull (h));

  /* until a new stream starts */
  g_assert_true (gst_harness_push_event (h,
          gst_event_new_stream_start ("second")));
  gst_harness_set_src_caps_str (h, TENSOR_CAPS);
  g_assert_cmpint (gst_harness_push (h, tensor_new (30, 3)), ==, GST_FLOW_OK);
  pull_and_check (h, 30, 3);

  gst_harness_teardown (h);
  assert_all_freed ();
}

static void
test_not_linked_reaches_upstream (void)
{
  GstHarness *h;
  GstFlowReturn ret = GST_FLOW_OK;
  GstBus *bus = gst_bus_new ();
  guint i;

  tracking_reset ();
  h = queue_harness_new (0, 1);
  gst_element_set_bus (h->element, bus);
  g_assert_true (gst_pad_unlink (queue_srcpad (h), h->sinkpad));

  /* The first push is queued; with one buffer of room, the third at the
   * latest waits for the queue to drain, which it never will, and learns
   * why instead of hanging. */
  for (i = 0; i < 3 && ret == GST_FLOW_OK; i++)
    ret = gst_harness_push (h, tensor_new (10, i));
  g_assert_cmpint (ret, ==, GST_FLOW_NOT_LINKED);
  g_assert_cmpuint (i, >=, 2);

  /* upstream knows, and reports the error itself: the queue stays quiet */
  g_assert_false (gst_harness_push_event (h, gst_event_new_eos ()));
  g_assert_null (gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR));

  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  assert_all_freed ();
}

/* linking sends RECONFIGURE upstream, which restarts the stopped queue */
static void
test_resumes_when_relinked (void)
{
  GstHarness *h;
  GstFlowReturn ret = GST_FLOW_OK;
  GstBuffer *buf = NULL;

  tracking_reset ();
  h = queue_harness_new (0, 1);
  g_assert_true (gst_pad_unlink (queue_srcpad (h), h->sinkpad));
  for (guint i = 0; i < 3 && ret == GST_FLOW_OK; i++)
    ret = gst_harness_push (h, tensor_new (10, i));
  g_assert_cmpint (ret, ==, GST_FLOW_NOT_LINKED);

  g_assert_cmpint (gst_pad_link (queue_srcpad (h), h->sinkpad), ==,
      GST_PAD_LINK_OK);
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 9)), ==, GST_FLOW_OK);
  /* a tensor queued before the relink may come first */
  for (guint i = 0; i < 2; i++) {
    buf = gst_harness_pull (h);
    g_assert_nonnull (buf);
    if (GST_BUFFER_OFFSET (buf) == 9)
      break;
    gst_buffer_unref (buf);
    buf = NULL;
  }
  assert_tensor (buf, 10, 9);
  gst_buffer_unref (buf);

  gst_harness_teardown (h);
  assert_all_freed ();
}

/* With EOS already queued, upstream will never learn of a downstream
 * error: the queue reports it. */
static void
test_error_after_eos_is_posted (void)
{
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GstEvent *event;
  GError *err = NULL;
  Gate g;

  tracking_reset ();
  gate_init (&g);
  h = queue_harness_new (0, 0);
  gst_element_set_bus (h->element, bus);
  gate_attach (&g, h);

  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 0)), ==, GST_FLOW_OK);
  gate_wait_arrived (&g, 1);
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 1)), ==, GST_FLOW_OK);
  g_assert_true (gst_harness_push_event (h, gst_event_new_eos ()));
  gate_allow (&g, G_MAXUINT, GST_FLOW_NOT_NEGOTIATED);

  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_ERROR);
  gst_message_parse_error (msg, &err, NULL);
  g_assert_error (err, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED);
  g_assert_true (GST_MESSAGE_SRC (msg) == GST_OBJECT (h->element));
  g_clear_error (&err);
  gst_message_unref (msg);
  g_assert_null (gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR));
  /* downstream still gets its EOS */
  while ((event = gst_harness_pull_event (h))) {
    gboolean eos = GST_EVENT_TYPE (event) == GST_EVENT_EOS;
    gst_event_unref (event);
    if (eos)
      break;
  }
  g_assert_nonnull (event);

  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  gate_clear (&g);
  assert_all_freed ();
}

static void
test_downstream_error_unblocks_upstream (void)
{
  GstHarness *h;
  Pusher *p;
  Gate g;

  tracking_reset ();
  gate_init (&g);
  h = queue_harness_new (0, 1);
  gate_attach (&g, h);

  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 0)), ==, GST_FLOW_OK);
  gate_wait_arrived (&g, 1);
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 1)), ==, GST_FLOW_OK);
  p = pusher_start (h, tensor_new (10, 2));
  gate_wait_overruns (&g, 1);

  gate_allow (&g, G_MAXUINT, GST_FLOW_ERROR);
  g_assert_cmpint (pusher_join (p), ==, GST_FLOW_ERROR);
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 3)), ==,
      GST_FLOW_ERROR);
  g_assert_null (gst_harness_try_pull (h));

  /* a flush starts the stream again */
  g_assert_true (gst_harness_push_event (h, gst_event_new_flush_start ()));
  g_assert_true (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_harness_set_src_caps_str (h, TENSOR_CAPS);
  gate_allow (&g, G_MAXUINT, GST_FLOW_OK);
  g_assert_cmpint (gst_harness_push (h, tensor_new (10, 4)), ==, GST_FLOW_OK);
  pull_and_check (h, 10, 4);

  gst_harness_teardown (h);
  gate_clear (&g);
  assert_all_freed ();
}

typedef struct
{
  GstHarness *h;
  gboolean res;
} Querier;

static gpointer
drain_func (gpointer data)
{
  Querier *q = data;
  GstQuery *query = gst_query_new_drain ();

  q->res = gst_pad_peer_query (q->h->srcpad, query);
  gst_query_unref (query);
  return NULL;
}

static void
test_null_while_full (void)
{
  GstHarness *h;
  Pusher *p;
  Querier q;
  GThread *querier;
  Gate g;

  tracking_reset ();
  gate_init (&g);
  h = queue_harness_new (2 * footprint (50), 0);
  g_signal_connect (h->element, "overrun", G_CALLBACK (on_overrun), &g);
  gst_pad_add_probe (queue_srcpad (h), GST_PAD_PROBE_TYPE_BLOCK |
      GST_PAD_PROBE_TYPE_BUFFER, count_then_block_probe, &g, NULL);

  g_assert_cmpint (gst_harness_push (h, tensor_new (50, 0)), ==, GST_FLOW_OK);
  gate_wait_arrived (&g, 1);
  g_assert_cmpint (gst_harness_push (h, tensor_new (50, 1)), ==, GST_FLOW_OK);
  g_assert_cmpint (gst_harness_push (h, tensor_new (50, 2)), ==, GST_FLOW_OK);
  p = pusher_start (h, tensor_new (50, 3));
  gate_wait_overruns (&g, 1);
  /* a serialized query waiting behind the full queue, too */
  q.h = h;
  q.res = TRUE;
  querier = g_thread_new ("querier", drain_func, &q);

  g_assert_cmpint (gst_element_set_state (h->element, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  g_assert_cmpint (pusher_join (p), ==, GST_FLOW_FLUSHING);
  g_thread_join (querier);
  g_assert_false (q.res);
  g_assert_cmpuint (level_bytes (h->element), ==, 0);
  g_assert_cmpuint (level_buffers (h->element), ==, 0);
  g_assert_cmpuint (peak_bytes (h->element), ==, 2 * footprint (50));
  /* every buffer is gone, none through the queue */
  assert_all_freed ();
  g_assert_null (gst_harness_try_pull (h));

  /* and it starts again from NULL */
  gst_harness_play (h);
  g_assert_true (gst_harness_push_event (h,
          gst_event_new_stream_start ("again")));
  gst_harness_set_src_caps_str (h, TENSOR_CAPS);
  g_assert_cmpint (gst_harness_push (h, tensor_new (50, 4)), ==, GST_FLOW_OK);
  g_assert_cmpuint (peak_bytes (h->element), <=, footprint (50));

  gst_harness_teardown (h);
  gate_clear (&g);
  assert_all_freed ();
}

/* ------------------------------------------------------------------ */
/* pipelines: uelsrc ! uelqueue ! a sink the test holds */

typedef struct
{
  GMutex lock;
  GCond cond;
  GstElement *pipeline;
  GstElement *queue;
  guint64 limit;
  const gsize *sizes;
  const guint8 *data;
  gsize *offsets;
  guint n;

  guint arrived;                /* tensors that reached the sink */
  guint allowed;                /* tensors the sink lets through */
  guint entered;                /* tensors that reached the queue */
  gint blocked;                 /* the tensor upstream waits with, -1 */
  gboolean eos_entered;
  gboolean failed;              /* an error on the bus */
  guint overruns;
  guint violations;             /* the level above its bound */
  guint mismatches;             /* tensors with the wrong bytes */
} Flow;

static gboolean
level_within_bound (Flow * f)
{
  guint64 bytes;
  guint buffers;

  /* read in one call: the bound holds at every instant, but two calls
   * could straddle a change */
  g_object_get (f->queue, "current-level-bytes", &bytes,
      "current-level-buffers", &buffers, NULL);
  return bytes <= f->limit || buffers <= 1;
}

static GstPadProbeReturn
flow_enter_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Flow *f = data;

  g_mutex_lock (&f->lock);
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER)
    f->entered++;
  else if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) == GST_EVENT_EOS)
    f->eos_entered = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
  return GST_PAD_PROBE_OK;
}

static void
flow_on_overrun (GstElement * queue, gpointer data)
{
  Flow *f = data;
  gboolean ok = level_within_bound (f);

  g_mutex_lock (&f->lock);
  f->violations += !ok;
  f->overruns++;
  f->blocked = (gint) f->entered - 1;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
}

static void
flow_on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer data)
{
  Flow *f = data;
  gboolean bound_ok = level_within_bound (f);
  gboolean bytes_ok = TRUE;
  GstMapInfo map;
  guint index;

  g_mutex_lock (&f->lock);
  index = f->arrived;
  g_mutex_unlock (&f->lock);

  g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
  if (index >= f->n || map.size != f->sizes[index]
      || memcmp (map.data, f->data + f->offsets[index], map.size) != 0)
    bytes_ok = FALSE;
  gst_buffer_unmap (buf, &map);

  g_mutex_lock (&f->lock);
  f->violations += !bound_ok;
  f->mismatches += !bytes_ok;
  f->arrived++;
  g_cond_broadcast (&f->cond);
  while (f->arrived > f->allowed)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);
}

static GstBusSyncReply
flow_on_message (GstBus * bus, GstMessage * msg, gpointer data)
{
  Flow *f = data;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;

    gst_message_parse_error (msg, &err, NULL);
    g_printerr ("# error from %s: %s\n", GST_MESSAGE_SRC_NAME (msg),
        err->message);
    g_clear_error (&err);
    g_mutex_lock (&f->lock);
    f->failed = TRUE;
    g_cond_broadcast (&f->cond);
    g_mutex_unlock (&f->lock);
  }
  return GST_BUS_PASS;
}

static void
flow_allow (Flow * f, guint allowed)
{
  g_mutex_lock (&f->lock);
  f->allowed = allowed;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
}

/* Writes @n tensors of @sizes bytes and builds the pipeline around them;
 * the sink holds every tensor past f->allowed. */
static void
flow_init (Flow * f, const gchar * name, const gsize * sizes, guint n,
    guint64 limit, UelTestBuilder * b)
{
  g_autofree gchar *path = uel_test_path (name);
  g_autofree gchar *launch = NULL;
  GError *err = NULL;
  GstElement *sink;
  GstBus *bus;
  GstPad *pad;

  memset (f, 0, sizeof (*f));
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  f->limit = limit;
  f->sizes = sizes;
  f->n = n;
  f->blocked = -1;
  f->offsets = g_new0 (gsize, n);
  for (guint i = 0; i < n; i++) {
    g_autofree gchar *tname = g_strdup_printf ("layer.%u.weight", i);
    g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]",
        sizes[i]);
    f->offsets[i] = i ? f->offsets[i - 1] + sizes[i - 1] : 0;
    uel_test_builder_add (b, tname, "U8", shape, sizes[i], NULL);
  }
  f->data = uel_test_builder_write (b, path, NULL);

  require_element ("uelsrc");
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelqueue name=q "
      "max-size-bytes=%" G_GUINT64_FORMAT " ! fakesink name=sink sync=false "
      "signal-handoffs=true", path, limit);
  f->pipeline = gst_parse_launch (launch, &err);
  g_assert_no_error (err);
  f->queue = gst_bin_get_by_name (GST_BIN (f->pipeline), "q");
  sink = gst_bin_get_by_name (GST_BIN (f->pipeline), "sink");
  g_signal_connect (sink, "handoff", G_CALLBACK (flow_on_handoff), f);
  gst_object_unref (sink);
  g_signal_connect (f->queue, "overrun", G_CALLBACK (flow_on_overrun), f);
  pad = gst_element_get_static_pad (f->queue, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER |
      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, flow_enter_probe, f, NULL);
  gst_object_unref (pad);
  bus = gst_element_get_bus (f->pipeline);
  gst_bus_set_sync_handler (bus, flow_on_message, f, NULL);
  gst_object_unref (bus);
}

static void
flow_clear (Flow * f)
{
  flow_allow (f, G_MAXUINT);
  g_assert_cmpint (gst_element_set_state (f->pipeline, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (f->queue);
  gst_object_unref (f->pipeline);
  g_free (f->offsets);
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
}

static void
flow_wait_eos (Flow * f)
{
  GstBus *bus = gst_element_get_bus (f->pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

  g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_object_unref (bus);
}

/* One past the last tensor the queue holds while the sink holds tensor
 * @held: the queue takes tensors in order while they fit, and always the
 * first one. */
static guint
model_end (Flow * f, guint held)
{
  guint64 sum = 0;
  guint i;

  for (i = held + 1; i < f->n; i++) {
    if (i > held + 1 && sum + src_footprint (f->sizes[i]) > f->limit)
      break;
    sum += src_footprint (f->sizes[i]);
  }
  return i;
}

/* Holds the sink on each tensor in turn.  While it is held, the queue
 * fills until upstream waits (announced by the overrun signal for the
 * tensor the model says cannot fit) or until EOS; then the level must be
 * exactly the model's. */
static void
run_bounded_flow (const gsize * sizes, guint n, guint64 limit,
    gsize largest)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  guint64 highest = 0, total = 0;
  GstStructure *stats = NULL;
  guint64 v;
  Flow f;

  flow_init (&f, "bounded.safetensors", sizes, n, limit, b);
  gst_element_set_state (f.pipeline, GST_STATE_PLAYING);

  for (guint held = 0; held < n; held++) {
    guint end = model_end (&f, held);
    guint64 expect_bytes = 0;

    for (guint i = held + 1; i < end; i++)
      expect_bytes += src_footprint (sizes[i]);

    g_mutex_lock (&f.lock);
    while (!f.failed && (f.arrived < held + 1 || (end < n
                && f.blocked != (gint) end) || (end == n && !f.eos_entered)))
      g_cond_wait (&f.cond, &f.lock);
    g_assert_false (f.failed);
    g_assert_cmpuint (f.arrived, ==, held + 1);
    g_mutex_unlock (&f.lock);

    g_assert_cmpuint (level_bytes (f.queue), ==, expect_bytes);
    g_assert_cmpuint (level_buffers (f.queue), ==, end - held - 1);
    highest = MAX (highest, expect_bytes);
    flow_allow (&f, held + 1);
  }
  flow_wait_eos (&f);

  g_mutex_lock (&f.lock);
  g_assert_cmpuint (f.arrived, ==, n);
  g_assert_cmpuint (f.mismatches, ==, 0);
  g_assert_cmpuint (f.violations, ==, 0);
  g_assert_cmpuint (f.overruns, >, 0);
  g_mutex_unlock (&f.lock);

  for (guint i = 0; i < n; i++)
    total += sizes[i];
  g_object_get (f.queue, "stats", &stats, NULL);
  g_assert_true (gst_structure_get_uint64 (stats, "in-bytes", &v));
  g_assert_cmpuint (v, ==, total);
  g_assert_true (gst_structure_get_uint64 (stats, "out-buffers", &v));
  g_assert_cmpuint (v, ==, n);
  gst_structure_free (stats);

  /* above the limit only by one tensor that is larger than it alone */
  v = peak_bytes (f.queue);
  g_assert_cmpuint (v, >=, highest);
  if (src_footprint (largest) > limit) {
    g_assert_cmpuint (v, ==, src_footprint (largest));
  } else {
    g_assert_cmpuint (v, <=, limit);
  }
  flow_clear (&f);
}

/* 3..19 KiB, in an irregular order */
static gsize *
mixed_sizes (guint n)
{
  gsize *sizes = g_new (gsize, n);

  for (guint i = 0; i < n; i++)
    sizes[i] = (3 + (i * 37) % 17) * 1024 + i;
  return sizes;
}

static void
test_pipeline_bounds_level (void)
{
  const guint n = 40;
  g_autofree gsize *sizes = mixed_sizes (n);
  gsize largest = 0;

  for (guint i = 0; i < n; i++)
    largest = MAX (largest, sizes[i]);
  run_bounded_flow (sizes, n, 48 * 1024, largest);
}

static void
test_pipeline_bounds_level_with_oversized_tensor (void)
{
  const guint n = 40;
  g_autofree gsize *sizes = mixed_sizes (n);

  sizes[17] = 160 * 1024;
  sizes[18] = 48 * 1024;        /* exactly the limit */
  run_bounded_flow (sizes, n, src_footprint (48 * 1024), sizes[17]);
}

/* state changes while the queue is full and the sink held, at several
 * points of the stream; then the whole stream again from READY */
static void
test_pipeline_state_changes (void)
{
  const guint n = 24;
  g_autofree gsize *sizes = mixed_sizes (n);
  const guint stops[] = { 0, 1, 5, 11, 23 };

  for (guint s = 0; s < G_N_ELEMENTS (stops); s++) {
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
    GstBus *bus;
    GstMessage *msg;
    Flow f;

    flow_init (&f, "states.safetensors", sizes, n, 32 * 1024, b);
    flow_allow (&f, stops[s]);
    g_assert_cmpint (gst_element_set_state (f.pipeline, GST_STATE_PLAYING),
        !=, GST_STATE_CHANGE_FAILURE);
    g_mutex_lock (&f.lock);
    while (!f.failed && f.arrived < stops[s] + 1)
      g_cond_wait (&f.cond, &f.lock);
    g_assert_false (f.failed);
    g_mutex_unlock (&f.lock);

    /* PAUSED as soon as the sink lets go (basesink's state change waits
     * for render to return): it prerolls on a later tensor or EOS */
    flow_allow (&f, G_MAXUINT);
    g_assert_cmpint (gst_element_set_state (f.pipeline, GST_STATE_PAUSED),
        !=, GST_STATE_CHANGE_FAILURE);
    g_assert_cmpint (gst_element_get_state (f.pipeline, NULL, NULL,
            GST_CLOCK_TIME_NONE), ==, GST_STATE_CHANGE_SUCCESS);
    g_assert_cmpint (gst_element_set_state (f.pipeline, GST_STATE_READY), ==,
        GST_STATE_CHANGE_SUCCESS);
    g_assert_cmpuint (level_bytes (f.queue), ==, 0);
    g_assert_cmpuint (level_buffers (f.queue), ==, 0);

    /* from READY, the whole stream again, in order */
    bus = gst_element_get_bus (f.pipeline);
    while ((msg = gst_bus_pop (bus)))
      gst_message_unref (msg);
    gst_object_unref (bus);
    g_mutex_lock (&f.lock);
    f.arrived = 0;
    f.mismatches = 0;
    g_mutex_unlock (&f.lock);
    gst_element_set_state (f.pipeline, GST_STATE_PLAYING);
    flow_wait_eos (&f);
    g_mutex_lock (&f.lock);
    g_assert_cmpuint (f.arrived, ==, n);
    g_assert_cmpuint (f.mismatches, ==, 0);
    g_assert_cmpuint (f.violations, ==, 0);
    g_mutex_unlock (&f.lock);
    flow_clear (&f);
  }
}

/* NULL at once, with the queue full and upstream waiting */
static void
test_pipeline_null_while_full (void)
{
  const guint n = 24;
  g_autofree gsize *sizes = mixed_sizes (n);

  for (guint stop = 0; stop < 12; stop++) {
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
    Flow f;

    flow_init (&f, "null.safetensors", sizes, n, 32 * 1024, b);
    flow_allow (&f, stop);
    gst_element_set_state (f.pipeline, GST_STATE_PLAYING);
    g_mutex_lock (&f.lock);
    while (!f.failed && (f.arrived < stop + 1 || f.overruns == 0))
      g_cond_wait (&f.cond, &f.lock);
    g_assert_false (f.failed);
    g_mutex_unlock (&f.lock);
    /* flow_clear releases the sink and goes to NULL straight away */
    flow_clear (&f);
  }
}

static void
test_pipeline_downstream_error (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  const guint n = 24;
  g_autofree gsize *sizes = mixed_sizes (n);
  GstElement *sink;
  GstPad *pad;
  GstBus *bus;
  GstMessage *msg;
  GError *err = NULL;
  Gate g;
  Flow f;

  gate_init (&g);
  flow_init (&f, "error.safetensors", sizes, n, 32 * 1024, b);
  flow_allow (&f, G_MAXUINT);
  /* the sink's pad fails the fourth tensor */
  sink = gst_bin_get_by_name (GST_BIN (f.pipeline), "sink");
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, gate_probe, &g, NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);
  gate_allow (&g, 3, GST_FLOW_OK);

  bus = gst_element_get_bus (f.pipeline);
  gst_bus_set_sync_handler (bus, NULL, NULL, NULL);
  gst_element_set_state (f.pipeline, GST_STATE_PLAYING);
  gate_wait_arrived (&g, 4);
  gate_allow (&g, G_MAXUINT, GST_FLOW_ERROR);

  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_ERROR);
  gst_message_parse_error (msg, &err, NULL);
  g_assert_error (err, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED);
  g_clear_error (&err);
  gst_message_unref (msg);
  gst_object_unref (bus);

  g_mutex_lock (&f.lock);
  g_assert_cmpuint (f.arrived, ==, 3);
  g_assert_cmpuint (f.mismatches, ==, 0);
  g_mutex_unlock (&f.lock);
  flow_clear (&f);
  gate_clear (&g);
}

static void
test_pipeline_not_linked (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("unlinked.safetensors");
  g_autofree gchar *launch = NULL;
  GError *err;

  require_element ("uelsrc");
  for (guint i = 0; i < 8; i++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", i);
    uel_test_builder_add (b, name, "F32", "[256]", 1024, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelqueue "
      "max-size-buffers=1", path);
  err = uel_test_run_pipeline (launch, NULL);
  g_assert_error (err, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED);
  g_clear_error (&err);
}

static void
test_pipeline_delivers_every_tensor (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("every.safetensors");
  g_autofree gchar *launch = NULL;
  GPtrArray *bufs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  const guint n = 64;
  g_autofree gsize *sizes = mixed_sizes (n);
  const guint8 *data;
  gsize offset = 0;
  GError *err;

  require_element ("uelsrc");
  for (guint i = 0; i < n; i++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", i);
    g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]",
        sizes[i]);
    uel_test_builder_add (b, name, "U8", shape, sizes[i], NULL);
  }
  data = uel_test_builder_write (b, path, NULL);
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelqueue "
      "max-size-bytes=20000 ! uelqueue max-size-buffers=2 ! "
      "fakesink name=sink", path);
  err = uel_test_run_pipeline (launch, bufs);
  g_assert_no_error (err);
  g_assert_cmpuint (bufs->len, ==, n);
  for (guint i = 0; i < n; i++) {
    GstBuffer *buf = g_ptr_array_index (bufs, i);
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    GstMapInfo map;

    g_assert_nonnull (meta);
    g_assert_cmpuint (meta->index, ==, i);
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpmem (map.data, map.size, data + offset, sizes[i]);
    gst_buffer_unmap (buf, &map);
    offset += sizes[i];
  }
  g_ptr_array_unref (bufs);
}

/* The queue's byte limit bounds the memory tiny tensors hold, not their
 * payload: a file of one-byte tensors (or a tensor cut into one-byte
 * chunks) fills a 1 MiB queue with about 1,500 buffers, not a million
 * (an outside test reached 4.7 GB of memory behind a queue that counted
 * 1 MB). */
typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean overrun;
  gboolean eos_queued;          /* nothing ever filled the queue */
} Overrun;

static void
on_queue_overrun (GstElement * q, gpointer data)
{
  Overrun *o = data;

  g_mutex_lock (&o->lock);
  o->overrun = TRUE;
  g_cond_broadcast (&o->cond);
  g_mutex_unlock (&o->lock);
}

static GstPadProbeReturn
hold_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
eos_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Overrun *o = data;

  if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) == GST_EVENT_EOS) {
    g_mutex_lock (&o->lock);
    o->eos_queued = TRUE;
    g_cond_broadcast (&o->cond);
    g_mutex_unlock (&o->lock);
  }
  return GST_PAD_PROBE_OK;
}

static void
check_tiny_tensors_bounded (const gchar * path, const gchar * src_props,
    guint n_buffers)
{
  const guint64 limit = 1 << 20;
  const guint64 most = limit / (UEL_BUFFER_OVERHEAD + UEL_MEMORY_OVERHEAD);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" %s ! "
      "uelqueue name=q max-size-bytes=%" G_GUINT64_FORMAT " ! "
      "fakesink name=sink", path, src_props, limit);
  GstElement *pipeline, *q, *sink;
  GstPad *pad;
  gulong probe;
  Overrun o = { 0, };
  GError *err = NULL;
  GstBus *bus;
  GstMessage *msg;
  guint buffers;
  guint64 bytes;

  g_mutex_init (&o.lock);
  g_cond_init (&o.cond);
  pipeline = gst_parse_launch (launch, &err);
  g_assert_no_error (err);
  q = gst_bin_get_by_name (GST_BIN (pipeline), "q");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_signal_connect (q, "overrun", G_CALLBACK (on_queue_overrun), &o);
  pad = gst_element_get_static_pad (q, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, eos_probe, &o,
      NULL);
  gst_object_unref (pad);
  /* the sink holds the first tensor: the queue fills until it is full (or,
   * counting too little, takes the whole stream) */
  pad = gst_element_get_static_pad (sink, "sink");
  probe = gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BLOCK |
      GST_PAD_PROBE_TYPE_BUFFER, hold_probe, NULL, NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_mutex_lock (&o.lock);
  while (!o.overrun && !o.eos_queued)
    g_cond_wait (&o.cond, &o.lock);
  g_mutex_unlock (&o.lock);

  g_object_get (q, "current-level-buffers", &buffers, "current-level-bytes",
      &bytes, NULL);
  g_test_message ("a full queue of %" G_GUINT64_FORMAT " bytes holds %u "
      "buffers (%" G_GUINT64_FORMAT " bytes counted)", limit, buffers, bytes);
  g_assert_cmpuint (bytes, <=, limit);
  g_assert_cmpuint (buffers, <=, most);
  g_assert_cmpuint (buffers, >=, most / 2);

  /* and everything still flows once the sink lets go */
  gst_pad_remove_probe (pad, probe);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_EOS);
  gst_message_unref (msg);
  g_object_get (q, "stats", &msg, NULL);
  {
    GstStructure *stats = (GstStructure *) msg;
    guint64 out;

    g_assert_true (gst_structure_get_uint64 (stats, "out-buffers", &out));
    g_assert_cmpuint (out, ==, n_buffers);
    gst_structure_free (stats);
  }
  gst_object_unref (bus);
  gst_object_unref (pad);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (q);
  gst_object_unref (pipeline);
  g_mutex_clear (&o.lock);
  g_cond_clear (&o.cond);
}

static void
test_pipeline_bounds_tiny_tensors (void)
{
  const guint n = 20000;
  g_autofree gchar *path = uel_test_path ("tiny-tensors.safetensors");
  g_autofree gchar *big = uel_test_path ("one-byte-chunks.safetensors");
  g_autofree gchar *json = NULL;
  g_autofree guint8 *data = g_malloc (n);

  require_element ("uelsrc");
  uel_test_write_one_byte_tensors (path, n);
  check_tiny_tensors_bounded (path, "", n);

  /* one tensor of 20,000 bytes in chunks of one byte */
  json = g_strdup_printf ("{\"w\":{\"dtype\":\"U8\",\"shape\":[%u],"
      "\"data_offsets\":[0,%u]}}", n, n);
  uel_test_fill (data, n, 1);
  uel_test_write_safetensors (big, json, data, n);
  check_tiny_tensors_bounded (big, "chunk-size=1", n);
}

/* What uel_buffer_get_footprint() counts covers what small tensors really
 * hold, as uelsrc makes them (recycled host memory, a tensor meta): the
 * queue's bound is a real bound.  Measured on the resident memory of a
 * fresh process for each size (memory freed by an earlier size would be
 * reused and hide the cost); a sanitizer's redzones would not fit, so it
 * is skipped there. */
static const gsize footprint_sizes[] = {
  1, 100, UEL_HOST_SMALL_MAX, UEL_HOST_SMALL_MAX + 1
};

static void
test_footprint_covers_tiny_tensors (gconstpointer data)
{
#if defined(__SANITIZE_ADDRESS__)
  g_test_skip ("AddressSanitizer's redzones make every allocation larger");
#else
  const gsize size = *(const gsize *) data;
  const guint n = 50000;
  g_autofree gchar *path = NULL;
  g_autoptr (UelHeader) h = NULL;
  GstAllocator *alloc;
  GstBuffer **bufs;
  guint64 counted = 0;
  gint64 before, grown;

  if (!g_test_subprocess ()) {
    g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDOUT);
    g_test_trap_assert_passed ();
    return;
  }
  path = uel_test_path ("footprint.safetensors");
  uel_test_write_safetensors (path, "{\"t\":{\"dtype\":\"U8\","
      "\"shape\":[1],\"data_offsets\":[0,1]}}", "x", 1);
  h = uel_header_open (path, NULL);
  g_assert_nonnull (h);
  alloc = uel_host_allocator_new (0);
  bufs = g_new (GstBuffer *, n);

  before = uel_test_resident_bytes ();
  for (guint i = 0; i < n; i++) {
    GstMemory *mem = gst_allocator_alloc (alloc, size, NULL);
    GstMapInfo map;

    g_assert_true (gst_memory_map (mem, &map, GST_MAP_WRITE));
    memset (map.data, 1, map.size);
    gst_memory_unmap (mem, &map);
    bufs[i] = gst_buffer_new ();
    gst_buffer_append_memory (bufs[i], mem);
    uel_buffer_add_tensor_meta (bufs[i], h, 0, i, n);
    counted += uel_buffer_get_footprint (bufs[i]);
  }
  grown = uel_test_resident_bytes () - before;
  g_test_message ("%u tensors of %" G_GSIZE_FORMAT " bytes: %.0f bytes "
      "each resident, %.0f counted", n, size, (gdouble) grown / n,
      (gdouble) counted / n);
  g_assert_cmpint (grown, <=, (gint64) counted);
  g_assert_cmpint (grown, >=, (gint64) (n * size));
  for (guint i = 0; i < n; i++)
    gst_buffer_unref (bufs[i]);
  g_free (bufs);
  gst_object_unref (alloc);
#endif
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/uelqueue/has-tensor-sized-properties", test_properties);
  g_test_add_func ("/uelqueue/accepts-any-memory-feature",
      test_accepts_any_memory_feature);
  g_test_add_func ("/uelqueue/keeps-buffers-events-and-queries-in-order",
      test_keeps_order);
  g_test_add_func ("/uelqueue/passes-the-allocation-query-to-uelsrc",
      test_allocation_reaches_uelsrc);
  g_test_add_func ("/uelqueue/passes-an-oversized-tensor-when-empty",
      test_oversized_tensor_passes_when_empty);
  g_test_add_func ("/uelqueue/blocks-upstream-at-max-size-bytes",
      test_limits_bytes);
  g_test_add_func ("/uelqueue/blocks-upstream-at-max-size-buffers",
      test_limits_buffers);
  g_test_add_func ("/uelqueue/flush-unblocks-a-waiting-upstream",
      test_flush_unblocks_upstream);
  g_test_add_func ("/uelqueue/forwards-eos-and-refuses-data-after-it",
      test_eos);
  g_test_add_func ("/uelqueue/returns-not-linked-to-upstream",
      test_not_linked_reaches_upstream);
  g_test_add_func ("/uelqueue/resumes-when-relinked-after-not-linked",
      test_resumes_when_relinked);
  g_test_add_func ("/uelqueue/posts-an-error-upstream-cannot-see",
      test_error_after_eos_is_posted);
  g_test_add_func ("/uelqueue/returns-downstream-errors-to-a-waiting-upstream",
      test_downstream_error_unblocks_upstream);
  g_test_add_func ("/uelqueue/stops-cleanly-when-set-to-null-while-full",
      test_null_while_full);
  g_test_add_func ("/uelqueue/pipeline/delivers-every-tensor-in-order",
      test_pipeline_delivers_every_tensor);
  g_test_add_func ("/uelqueue/pipeline/never-exceeds-max-size-bytes",
      test_pipeline_bounds_level);
  g_test_add_func
      ("/uelqueue/pipeline/exceeds-the-limit-only-by-one-oversized-tensor",
      test_pipeline_bounds_level_with_oversized_tensor);
  g_test_add_func ("/uelqueue/pipeline/bounds-the-memory-of-tiny-tensors",
      test_pipeline_bounds_tiny_tensors);
  for (guint i = 0; i < G_N_ELEMENTS (footprint_sizes); i++) {
    g_autofree gchar *path = g_strdup_printf ("/uelqueue/footprint/"
        "covers-what-%" G_GSIZE_FORMAT "-byte-tensors-hold",
        footprint_sizes[i]);

    g_test_add_data_func (path, &footprint_sizes[i],
        test_footprint_covers_tiny_tensors);
  }
  g_test_add_func ("/uelqueue/pipeline/survives-state-changes-while-full",
      test_pipeline_state_changes);
  g_test_add_func ("/uelqueue/pipeline/goes-to-null-while-full",
      test_pipeline_null_while_full);
  g_test_add_func ("/uelqueue/pipeline/reports-downstream-errors",
      test_pipeline_downstream_error);
  g_test_add_func ("/uelqueue/pipeline/reports-not-linked",
      test_pipeline_not_linked);
  return g_test_run ();
}
