/* gst-uel: stress and lifecycle tests
 * SPDX-License-Identifier: MIT
 *
 * Random state changes with data flowing through every element, eight
 * pipelines reading one file at once, EOS sent mid-stream, seeks that the
 * source refuses and flushes that an application sends into a queue.
 *
 * Nothing here waits for time to pass.  Every wait is on something a
 * pipeline announces (a buffer reaching the sink, a queue's overrun signal,
 * a bus message) and is bounded, so that a deadlock fails the test with a
 * message instead of hanging it; meson's timeout bounds the whole program.
 *
 * UEL_STRESS_SEED and UEL_STRESS_ITERATIONS override the seed (printed in
 * the TAP output) and the number of the random state changes.
 */
#include "config.h"

#include <string.h>

#include "test-utils.h"

#define KiB ((gsize) 1 << 10)
#define MiB ((gsize) 1 << 20)

/* Far longer than any state change or any stream of these files takes,
 * even under the sanitizers: reaching it means that something is stuck. */
#define STATE_BOUND (10 * GST_SECOND)
#define WAIT_BOUND_US (30 * G_TIME_SPAN_SECOND)

#define DEFAULT_SEED 20240808u
#define DEFAULT_ITERATIONS 1000

/* ------------------------------------------------------------------ */
/* files with known bytes */

typedef struct
{
  gchar *path;
  guint8 *data;                 /* the data section, as written */
  guint n;
  gsize *offsets;               /* each tensor's bytes in @data */
  gsize *sizes;
  guint64 total;
  guint dict;                   /* the tensor holding a JSON dictionary */
} Model;

static const gchar dict_json[] =
    "{\"model_type\":\"llama\",\"num_hidden_layers\":2,"
    "\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0},"
    "\"quantization\":[\"q4\",\"q8\"]}";

static const gchar *const small_dtypes[] = { "F32", "F16", "BF16", "I64",
  "U8"
};

static gsize
dtype_size (const gchar * dtype)
{
  if (g_str_equal (dtype, "I64"))
    return 8;
  if (g_str_equal (dtype, "F32"))
    return 4;
  if (g_str_equal (dtype, "F16") || g_str_equal (dtype, "BF16"))
    return 2;
  return 1;
}

static void
model_add (UelTestBuilder * b, GArray * sizes, const gchar * dtype,
    gsize n_bytes, gconstpointer data)
{
  g_autofree gchar *name = g_strdup_printf ("blk.%u.%s", sizes->len, dtype);
  g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]",
      n_bytes / dtype_size (dtype));

  g_assert_cmpuint (n_bytes % dtype_size (dtype), ==, 0);
  uel_test_builder_add (b, name, dtype, shape, n_bytes, data);
  g_array_append_val (sizes, n_bytes);
}

static void
model_add_dict (UelTestBuilder * b, GArray * sizes, guint * dict)
{
  *dict = sizes->len;
  model_add (b, sizes, "U8", strlen (dict_json), dict_json);
}

static Model *
model_write (UelTestBuilder * b, GArray * sizes, guint dict,
    const gchar * name)
{
  Model *m = g_new0 (Model, 1);
  const guint8 *data;
  gsize len;

  m->path = uel_test_path (name);
  data = uel_test_builder_write (b, m->path, &len);
  m->data = g_memdup2 (data, len);
  m->n = sizes->len;
  m->sizes = g_memdup2 (sizes->data, sizeof (gsize) * m->n);
  m->offsets = g_new (gsize, m->n);
  for (guint i = 0; i < m->n; i++) {
    m->offsets[i] = (gsize) m->total;
    m->total += m->sizes[i];
  }
  g_assert_cmpuint (m->total, ==, len);
  m->dict = dict;
  return m;
}

static void
model_free (Model * m)
{
  g_free (m->path);
  g_free (m->data);
  g_free (m->offsets);
  g_free (m->sizes);
  g_free (m);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Model, model_free)

/* For the state changes, the flushes and the seeks, with a 1 MiB uelqueue
 * and a 2 MiB pinned pool.  Small tensors come first (about 1.1 MiB, more
 * than the queue holds, so that a prerolled pipeline always fills it), then
 * tensors of 600-1100 KiB among them (the reader waits for pool memory; the
 * largest is over half the pool and is read into ordinary memory), one of
 * 1.5 MiB (read in parts by the I/O threads), an empty tensor and a JSON
 * dictionary, in that order (not the reference writer's).  The data
 * section is 8-byte aligned: mmap maps tensors in place. */
static Model *
model_states (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (GArray) sizes = g_array_new (FALSE, FALSE, sizeof (gsize));
  guint dict = 0;

  uel_test_builder_set_align (b, 8);
  uel_test_builder_keep_order (b);
  for (guint i = 0; i < 44; i++) {
    if (i == 3)
      model_add_dict (b, sizes, &dict);
    if (i == 9)
      model_add (b, sizes, "F32", 0, NULL);
    if (i >= 32 && i % 2 == 0)
      model_add (b, sizes, "F16", (600 + 50 * (i - 32)) * KiB, NULL);
    if (i == 37)
      model_add (b, sizes, "F32", 3 * MiB / 2, NULL);
    model_add (b, sizes, small_dtypes[i % 5],
        (8 + (i * 7) % 57) * KiB + 8 * (i % 3), NULL);
  }
  return model_write (b, sizes, dict, "states.safetensors");
}

/* For the concurrent readers and EOS: a data section at no particular
 * alignment (mmap copies the misaligned tensors), tensors from a few bytes
 * to 9 MiB (read in 8 MiB parts by the I/O threads, ahead of the one being
 * pushed), an empty tensor and a JSON dictionary. */
static Model *
model_wide (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (GArray) sizes = g_array_new (FALSE, FALSE, sizeof (gsize));
  guint dict = 0;

  for (guint i = 0; i < 24; i++) {
    if (i == 2)
      model_add_dict (b, sizes, &dict);
    if (i == 5)
      model_add (b, sizes, "BF16", 0, NULL);
    if (i == 8)
      model_add (b, sizes, "F32", 9 * MiB + 12, NULL);
    if (i == 12)
      model_add (b, sizes, "BF16", 3 * MiB + 6, NULL);
    if (i == 16)
      model_add (b, sizes, "U8", MiB + 1, NULL);
    if (i == 20)
      model_add (b, sizes, "F16", 5 * MiB / 2, NULL);
    model_add (b, sizes, small_dtypes[i % 5],
        (1 + (i * 13) % 40) * KiB + 8 * (i % 4), NULL);
  }
  return model_write (b, sizes, dict, "wide.safetensors");
}

/* ------------------------------------------------------------------ */
/* what reaches a sink and what the bus says */

typedef struct
{
  GMutex lock;
  GCond cond;
  guint n;
  guint arrived;
} Barrier;

typedef struct
{
  GMutex lock;
  GCond cond;
  const Model *model;
  GstElement *pipeline;
  gboolean expect_dicts;        /* a ueldictdecode is in the pipeline */

  /* the stream at the sink, since it last began at the first tensor */
  guint buffers;
  guint tensors;
  guint64 bytes;
  guint next;                   /* the tensor expected next */
  guint64 next_offset;          /* and where in it */
  guint dicts;                  /* dictionaries attached to the buffers */

  /* over the tally's life */
  guint64 all_buffers;
  guint starts;                 /* streams that began at the first tensor */
  guint bad;
  gchar *first_bad;

  /* the bus */
  gboolean eos;
  GstMessage *error;
  guint dict_messages;

  /* EOS is sent to the pipeline at the sink's eos_at-th buffer */
  guint eos_at;
  gboolean eos_sent;
  /* the sink's hold_at-th buffer waits there until released */
  guint hold_at;
  gboolean held;
  gboolean released;
  /* the sink's first buffer waits until every pipeline has one */
  Barrier *barrier;
} Tally;

static void
tally_init (Tally * t, const Model * m)
{
  memset (t, 0, sizeof (*t));
  g_mutex_init (&t->lock);
  g_cond_init (&t->cond);
  t->model = m;
}

static void
tally_clear (Tally * t)
{
  g_free (t->first_bad);
  if (t->error)
    gst_message_unref (t->error);
  g_mutex_clear (&t->lock);
  g_cond_clear (&t->cond);
}

static void G_GNUC_PRINTF (2, 3)
tally_bad_locked (Tally * t, const gchar * format, ...)
{
  va_list args;

  t->bad++;
  if (t->first_bad)
    return;
  va_start (args, format);
  t->first_bad = g_strdup_vprintf (format, args);
  va_end (args);
}

/* Checks @buf against the file: the next tensor (or chunk) in order, its
 * exact bytes, and a dictionary on the dictionary tensor. */
static void
tally_check_locked (Tally * t, GstBuffer * buf)
{
  const Model *m = t->model;
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
  gsize size = gst_buffer_get_size (buf);
  GstMapInfo map;
  guint i;

  t->all_buffers++;
  if (!meta) {
    tally_bad_locked (t, "buffer %" G_GUINT64_FORMAT " has no tensor meta",
        t->all_buffers);
    return;
  }
  i = meta->index;
  if (i == 0 && meta->chunk_offset == 0) {
    t->starts++;
    t->buffers = t->tensors = t->dicts = 0;
    t->bytes = 0;
    t->next = 0;
    t->next_offset = 0;
  }
  if (meta->count != m->n || i >= m->n) {
    tally_bad_locked (t, "tensor %u of %u in a file of %u", i, meta->count,
        m->n);
    return;
  }
  if (i != t->next || meta->chunk_offset != t->next_offset)
    tally_bad_locked (t, "tensor %u at %" G_GUINT64_FORMAT " arrived, "
        "expected tensor %u at %" G_GUINT64_FORMAT, i, meta->chunk_offset,
        t->next, t->next_offset);
  if (meta->chunk_offset + size > m->sizes[i]
      || meta->last_chunk != (meta->chunk_offset + size == m->sizes[i])) {
    tally_bad_locked (t, "tensor %u: %" G_GSIZE_FORMAT " bytes at %"
        G_GUINT64_FORMAT " (last: %d) of %" G_GSIZE_FORMAT, i, size,
        meta->chunk_offset, meta->last_chunk, m->sizes[i]);
    return;
  }
  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    tally_bad_locked (t, "tensor %u: cannot map", i);
    return;
  }
  if (size > 0 && memcmp (map.data, m->data + m->offsets[i] +
          meta->chunk_offset, size) != 0)
    tally_bad_locked (t, "tensor %u: the %" G_GSIZE_FORMAT " bytes at %"
        G_GUINT64_FORMAT " differ from the file's", i, size,
        meta->chunk_offset);
  gst_buffer_unmap (buf, &map);

  if (i == m->dict && meta->last_chunk && uel_buffer_get_dict_meta (buf))
    t->dicts++;
  t->buffers++;
  t->bytes += size;
  if (meta->last_chunk) {
    t->tensors++;
    t->next = i + 1;
    t->next_offset = 0;
  } else {
    t->next = i;
    t->next_offset = meta->chunk_offset + size;
  }
}

static gboolean
wait_until_locked (GCond * cond, GMutex * lock, gint64 deadline)
{
  return g_cond_wait_until (cond, lock, deadline);
}

static void
barrier_wait (Barrier * b, Tally * t)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_BOUND_US;
  gboolean ok = TRUE;

  g_mutex_lock (&b->lock);
  b->arrived++;
  g_cond_broadcast (&b->cond);
  while (ok && b->arrived < b->n)
    ok = wait_until_locked (&b->cond, &b->lock, deadline);
  g_mutex_unlock (&b->lock);
  if (!ok) {
    g_mutex_lock (&t->lock);
    tally_bad_locked (t, "only %u of %u pipelines had a buffer after %d s",
        b->arrived, b->n, (gint) (WAIT_BOUND_US / G_TIME_SPAN_SECOND));
    g_mutex_unlock (&t->lock);
  }
}

static void
tally_on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer data)
{
  Tally *t = data;
  gboolean first, send_eos;

  g_mutex_lock (&t->lock);
  tally_check_locked (t, buf);
  first = t->all_buffers == 1;
  send_eos = t->eos_at > 0 && t->buffers == t->eos_at;
  if (t->hold_at > 0 && t->buffers == t->hold_at) {
    gint64 deadline = g_get_monotonic_time () + WAIT_BOUND_US;

    t->held = TRUE;
    g_cond_broadcast (&t->cond);
    while (!t->released)
      if (!wait_until_locked (&t->cond, &t->lock, deadline)) {
        tally_bad_locked (t, "held at buffer %u and never released",
            t->hold_at);
        break;
      }
  }
  g_cond_broadcast (&t->cond);
  g_mutex_unlock (&t->lock);

  if (first && t->barrier)
    barrier_wait (t->barrier, t);
  /* from the streaming thread, as an application's pad probe would */
  if (send_eos) {
    gboolean sent = gst_element_send_event (t->pipeline,
        gst_event_new_eos ());

    g_mutex_lock (&t->lock);
    t->eos_sent = sent;
    g_mutex_unlock (&t->lock);
  }
}

static GstBusSyncReply
tally_on_message (GstBus * bus, GstMessage * msg, gpointer data)
{
  Tally *t = data;

  g_mutex_lock (&t->lock);
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ERROR:
      if (!t->error)
        t->error = gst_message_ref (msg);
      break;
    case GST_MESSAGE_EOS:
      t->eos = TRUE;
      break;
    case GST_MESSAGE_ELEMENT:
      if (uel_dict_message_parse (msg, NULL, NULL))
        t->dict_messages++;
      break;
    default:
      break;
  }
  g_cond_broadcast (&t->cond);
  g_mutex_unlock (&t->lock);
  /* nobody pops this bus: everything is counted here, and a sync handler
   * that drops a message owns it */
  gst_message_unref (msg);
  return GST_BUS_DROP;
}

static GstElement *
tally_pipeline_new (Tally * t, const gchar * launch)
{
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *sink;
  GstBus *bus;

  g_assert_no_error (err);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_assert_nonnull (sink);
  g_object_set (sink, "signal-handoffs", TRUE, "sync", FALSE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (tally_on_handoff), t);
  gst_object_unref (sink);
  bus = gst_element_get_bus (pipeline);
  gst_bus_set_sync_handler (bus, tally_on_message, t, NULL);
  gst_object_unref (bus);
  t->pipeline = pipeline;
  t->expect_dicts = strstr (launch, "ueldictdecode") != NULL;
  return pipeline;
}

/* fails with the error's own message and the first wrong buffer */
static void
tally_assert_ok (Tally * t)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *debug = NULL;
  g_autofree gchar *first_bad = NULL;
  guint bad;

  g_mutex_lock (&t->lock);
  if (t->error) {
    gst_message_parse_error (t->error, &err, &debug);
    g_test_message ("error from %s: %s", GST_MESSAGE_SRC_NAME (t->error),
        debug);
  }
  first_bad = g_strdup (t->first_bad);
  bad = t->bad;
  g_mutex_unlock (&t->lock);
  g_assert_no_error (err);
  g_assert_cmpstr (first_bad, ==, NULL);
  g_assert_cmpuint (bad, ==, 0);
}

/* Waits for the pipeline's EOS message, or an error, within the bound. */
static void
tally_wait_eos (Tally * t)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_BOUND_US;
  gboolean in_time = TRUE;

  g_mutex_lock (&t->lock);
  while (in_time && !t->eos && !t->error)
    in_time = wait_until_locked (&t->cond, &t->lock, deadline);
  g_mutex_unlock (&t->lock);
  tally_assert_ok (t);
  g_assert_true (in_time);
  g_assert_true (t->eos);
}

/* the whole file, in order, exactly */
static void
tally_assert_complete (Tally * t)
{
  g_mutex_lock (&t->lock);
  g_assert_cmpuint (t->tensors, ==, t->model->n);
  g_assert_cmpuint (t->bytes, ==, t->model->total);
  g_assert_cmpuint (t->next, ==, t->model->n);
  if (t->expect_dicts)
    g_assert_cmpuint (t->dicts, ==, 1);
  g_mutex_unlock (&t->lock);
}

static void
tally_reset (Tally * t)
{
  g_mutex_lock (&t->lock);
  t->eos = FALSE;
  t->starts = 0;
  t->buffers = t->tensors = t->dicts = 0;
  t->bytes = 0;
  t->next = 0;
  t->next_offset = 0;
  t->dict_messages = 0;
  g_mutex_unlock (&t->lock);
}

/* Sets @state and waits for it, within the bound: ASYNC after the bound is
 * a deadlock, FAILURE an error. */
static void
set_state_bounded (GstElement * pipeline, Tally * t, GstState state)
{
  GstStateChangeReturn ret;
  GstState now = GST_STATE_VOID_PENDING, pending;

  ret = gst_element_set_state (pipeline, state);
  if (ret != GST_STATE_CHANGE_FAILURE)
    ret = gst_element_get_state (pipeline, &now, &pending, STATE_BOUND);
  if (ret != GST_STATE_CHANGE_SUCCESS && t)
    tally_assert_ok (t);
  g_assert_cmpstr (gst_element_state_change_return_get_name (ret), ==,
      "SUCCESS");
  g_assert_cmpstr (gst_element_state_get_name (now), ==,
      gst_element_state_get_name (state));
}

/* ------------------------------------------------------------------ */
/* what the reader allocates: every buffer it pushes is freed, and every
 * pinned pool it reads into has all its memory back, once the pipeline is
 * in READY or NULL */

typedef struct
{
  GMutex lock;
  GPtrArray *pools;             /* pinned allocators offered to uelsrc */
  gint alive;                   /* buffers pushed by uelsrc, not yet freed */
  guint64 pushed;
  /* over the pools released so far */
  guint64 n_pools;
  guint64 pool_allocs;
  guint64 pool_waits;
  guint64 pool_starved;
  guint64 pool_too_large;
} Tracker;

static void
tracker_init (Tracker * tr)
{
  memset (tr, 0, sizeof (*tr));
  g_mutex_init (&tr->lock);
  tr->pools = g_ptr_array_new_with_free_func (gst_object_unref);
}

static void
tracker_clear (Tracker * tr)
{
  g_ptr_array_unref (tr->pools);
  g_mutex_clear (&tr->lock);
}

static void
tracker_on_buffer_freed (gpointer data, GstMiniObject * obj)
{
  Tracker *tr = data;

  g_atomic_int_add (&tr->alive, -1);
}

static GstPadProbeReturn
tracker_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Tracker *tr = data;

  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

    g_atomic_int_inc (&tr->alive);
    gst_mini_object_weak_ref (GST_MINI_OBJECT (buf), tracker_on_buffer_freed,
        tr);
    g_mutex_lock (&tr->lock);
    tr->pushed++;
    g_mutex_unlock (&tr->lock);
  } else if ((info->type & GST_PAD_PROBE_TYPE_PULL)
      && GST_QUERY_TYPE (GST_PAD_PROBE_INFO_QUERY (info)) ==
      GST_QUERY_ALLOCATION) {
    /* the answered query: the allocators downstream proposed */
    GstQuery *query = GST_PAD_PROBE_INFO_QUERY (info);

    for (guint i = 0; i < gst_query_get_n_allocation_params (query); i++) {
      GstAllocator *a = NULL;

      gst_query_parse_nth_allocation_param (query, i, &a, NULL);
      if (!a)
        continue;
      g_mutex_lock (&tr->lock);
      if (UEL_IS_PINNED_ALLOCATOR (a)
          && !g_ptr_array_find (tr->pools, a, NULL))
        g_ptr_array_add (tr->pools, g_steal_pointer (&a));
      g_mutex_unlock (&tr->lock);
      gst_clear_object (&a);
    }
  }
  return GST_PAD_PROBE_OK;
}

static void
tracker_attach (Tracker * tr, GstElement * pipeline)
{
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstPad *pad;

  g_assert_nonnull (src);
  pad = gst_element_get_static_pad (src, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER |
      GST_PAD_PROBE_TYPE_QUERY_DOWNSTREAM, tracker_probe, tr, NULL);
  gst_object_unref (pad);
  gst_object_unref (src);
}

static void
tracker_assert_released (Tracker * tr)
{
  g_assert_cmpint (g_atomic_int_get (&tr->alive), ==, 0);
  g_mutex_lock (&tr->lock);
  for (guint i = 0; i < tr->pools->len; i++) {
    UelPinnedStats st;

    uel_pinned_allocator_get_stats (g_ptr_array_index (tr->pools, i), &st);
    g_assert_cmpuint (st.live_bytes, ==, 0);
    tr->n_pools++;
    tr->pool_allocs += st.n_allocs;
    tr->pool_waits += st.n_waits;
    tr->pool_starved += st.n_starved;
    tr->pool_too_large += st.n_too_large;
  }
  g_ptr_array_set_size (tr->pools, 0);
  g_mutex_unlock (&tr->lock);
}

/* ------------------------------------------------------------------ */
/* 1. random state changes with data flowing */

static guint
env_uint (const gchar * name, guint fallback)
{
  const gchar *s = g_getenv (name);
  guint64 v;
  GError *err = NULL;

  if (!s || !*s)
    return fallback;
  g_ascii_string_to_unsigned (s, 10, 0, G_MAXUINT32, &v, &err);
  g_assert_no_error (err);
  return (guint) v;
}

static void
on_overrun (GstElement * queue, gpointer data)
{
  g_atomic_int_inc ((gint *) data);
}

static GstElement *
get_by_name (GstElement * pipeline, const gchar * name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipeline), name);

  g_assert_nonnull (e);
  /* the pipeline keeps its elements alive */
  gst_object_unref (e);
  return e;
}

/* The @field of @element's stats (plus @other_field's, when given) */
static void
assert_stat (GstElement * element, const gchar * field,
    const gchar * other_field, guint64 expected)
{
  GstStructure *stats = NULL;
  guint64 v = 0, w = 0;

  g_object_get (element, "stats", &stats, NULL);
  g_assert_nonnull (stats);
  g_assert_true (gst_structure_get_uint64 (stats, field, &v));
  if (other_field)
    g_assert_true (gst_structure_get_uint64 (stats, other_field, &w));
  gst_structure_free (stats);
  g_assert_cmpuint (v + w, ==, expected);
}

/* Waits, within the bound, until @more buffers reached the sink or the
 * stream ended. */
static void
tally_wait_buffers (Tally * t, guint more)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_BOUND_US;
  gboolean in_time = TRUE;
  guint64 until;

  g_mutex_lock (&t->lock);
  until = t->all_buffers + more;
  while (in_time && !t->eos && !t->error && t->all_buffers < until)
    in_time = wait_until_locked (&t->cond, &t->lock, deadline);
  g_mutex_unlock (&t->lock);
  tally_assert_ok (t);
  g_assert_true (in_time);
}

static void
test_random_state_changes (void)
{
  static const GstState states[] = { GST_STATE_NULL, GST_STATE_READY,
    GST_STATE_PAUSED, GST_STATE_PLAYING
  };
  static const gchar *const methods[] = { "pread", "mmap", "direct" };
  guint32 seed = env_uint ("UEL_STRESS_SEED", DEFAULT_SEED);
  guint iterations = env_uint ("UEL_STRESS_ITERATIONS", DEFAULT_ITERATIONS);
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);
  g_autoptr (Model) m = model_states ();
  g_autofree gchar *launch = NULL;
  guint changes[4][4] = { {0} };
  guint waits = 0, eos_sent = 0;
  gint overruns = 0;
  GstElement *pipeline, *src;
  Tracker tr;
  Tally t;

  g_test_message ("seed %u (UEL_STRESS_SEED), %u state changes "
      "(UEL_STRESS_ITERATIONS)", seed, iterations);
  tally_init (&t, m);
  tracker_init (&tr);
  launch = g_strdup_printf ("uelsrc name=src location=\"%s\" ! "
      "uelqueue name=q max-size-bytes=%" G_GSIZE_FORMAT " ! "
      "uelpin name=pin pool-size=%" G_GSIZE_FORMAT " ! "
      "uelcudaupload name=up ! ueldictdecode ! fakesink name=sink", m->path,
      MiB, 2 * MiB);
  pipeline = tally_pipeline_new (&t, launch);
  tracker_attach (&tr, pipeline);
  src = get_by_name (pipeline, "src");
  g_signal_connect (get_by_name (pipeline, "q"), "overrun",
      G_CALLBACK (on_overrun), &overruns);

  for (guint i = 0; i < iterations; i++) {
    GstState target = states[g_rand_int_range (rand, 0, 4)];
    GstState from;

    gst_element_get_state (pipeline, &from, NULL, 0);
    if (from <= GST_STATE_READY) {
      /* the reader takes these at READY→PAUSED: vary them */
      gst_util_set_object_arg (G_OBJECT (src), "method",
          methods[g_rand_int_range (rand, 0, 3)]);
      g_object_set (src, "io-threads", (guint) g_rand_int_range (rand, 1, 4),
          NULL);
    }
    if (g_test_verbose ())
      g_test_message ("%u: %s → %s", i, gst_element_state_get_name (from),
          gst_element_state_get_name (target));
    set_state_bounded (pipeline, &t, target);
    tally_assert_ok (&t);
    changes[from - GST_STATE_NULL][target - GST_STATE_NULL]++;

    /* now and then the application ends the stream early: the next start
     * must read the whole file again */
    if (g_rand_int_range (rand, 0, 12) == 0 && target >= GST_STATE_PAUSED) {
      g_assert_true (gst_element_send_event (pipeline, gst_event_new_eos ()));
      eos_sent++;
    }
    if (target <= GST_STATE_READY) {
      tracker_assert_released (&tr);
      g_mutex_lock (&t.lock);
      t.eos = FALSE;
      g_mutex_unlock (&t.lock);
    } else if (target == GST_STATE_PLAYING
        && g_rand_int_range (rand, 0, 3) == 0) {
      /* let a few tensors through before the next change */
      tally_wait_buffers (&t, g_rand_int_range (rand, 1, 9));
      waits++;
    }
  }
  set_state_bounded (pipeline, &t, GST_STATE_NULL);
  tracker_assert_released (&tr);

  for (guint a = 0; a < 4; a++)
    g_test_message ("from %-7s to NULL/READY/PAUSED/PLAYING: %u %u %u %u",
        gst_element_state_get_name (states[a]), changes[a][0], changes[a][1],
        changes[a][2], changes[a][3]);
  g_test_message ("%u waits for data, %u EOS sent; at the sink %"
      G_GUINT64_FORMAT " buffers in %u streams; %" G_GUINT64_FORMAT
      " pushed by uelsrc; %d queue overruns", waits, eos_sent, t.all_buffers,
      t.starts, tr.pushed, overruns);
  g_test_message ("%" G_GUINT64_FORMAT " pinned pools: %" G_GUINT64_FORMAT
      " allocations, %" G_GUINT64_FORMAT " waits, %" G_GUINT64_FORMAT
      " starved, %" G_GUINT64_FORMAT " too large", tr.n_pools,
      tr.pool_allocs, tr.pool_waits, tr.pool_starved, tr.pool_too_large);

  /* the run stressed what it claims to */
  if (iterations >= DEFAULT_ITERATIONS) {
    g_assert_cmpuint (t.starts, >, 10);
    g_assert_cmpint (overruns, >, 0);
    g_assert_cmpuint (tr.pool_waits, >, 0);
    g_assert_cmpuint (tr.pool_too_large, >, 0);
  }

  /* and the pipeline still delivers the whole file */
  tally_reset (&t);
  set_state_bounded (pipeline, &t, GST_STATE_PLAYING);
  tally_wait_eos (&t);
  tally_assert_complete (&t);
  g_assert_cmpuint (t.starts, ==, 1);
  g_assert_cmpuint (t.dict_messages, ==, 1);
  /* the elements counted that stream, and only it */
  assert_stat (get_by_name (pipeline, "pin"), "tensors", NULL, m->n);
  assert_stat (get_by_name (pipeline, "pin"), "bytes", NULL, m->total);
  /* copied to the device, or passed on without one */
  assert_stat (get_by_name (pipeline, "up"), "tensors", "fallbacks", m->n);
  assert_stat (get_by_name (pipeline, "up"), "bytes", "fallback-bytes",
      m->total);
  set_state_bounded (pipeline, &t, GST_STATE_NULL);
  tracker_assert_released (&tr);

  gst_object_unref (pipeline);
  tracker_clear (&tr);
  tally_clear (&t);
}

/* ------------------------------------------------------------------ */
/* 2. eight pipelines reading one file at once */

static void
test_concurrent_readers (void)
{
  /* every read method, with and without I/O threads, read-ahead, chunks,
   * queues and pinned pools */
  static const gchar *const launches[] = {
    "method=pread io-threads=1 ! fakesink name=sink",
    "method=pread io-threads=4 ! uelqueue max-size-bytes=4194304 ! "
        "fakesink name=sink",
    "method=mmap ! uelqueue max-size-buffers=3 ! fakesink name=sink",
    "method=mmap io-threads=2 ! uelqueue ! uelpin pool-size=4194304 ! "
        "fakesink name=sink",
    "method=direct io-threads=1 ! ueldictdecode ! fakesink name=sink",
    "method=direct io-threads=3 read-ahead=16777216 ! "
        "uelqueue max-size-bytes=8388608 ! uelpin pool-size=33554432 ! "
        "uelcudaupload ! ueldictdecode ! fakesink name=sink",
    "method=pread io-threads=2 chunk-size=2097152 ! "
        "uelqueue max-size-bytes=1048576 ! uelpin pool-size=8388608 ! "
        "fakesink name=sink",
    "method=direct io-threads=2 chunk-size=1000000 ! uelqueue ! "
        "ueldictdecode ! fakesink name=sink",
  };
  enum
  { N = G_N_ELEMENTS (launches) };
  g_autoptr (Model) m = model_wide ();
  GstElement *pipelines[N];
  Tracker trackers[N];
  Tally tallies[N];
  Barrier barrier;

  memset (&barrier, 0, sizeof (barrier));
  g_mutex_init (&barrier.lock);
  g_cond_init (&barrier.cond);
  barrier.n = N;

  for (guint i = 0; i < N; i++) {
    g_autofree gchar *launch = g_strdup_printf (
        "uelsrc name=src location=\"%s\" %s", m->path, launches[i]);

    tally_init (&tallies[i], m);
    tallies[i].barrier = &barrier;
    tracker_init (&trackers[i]);
    pipelines[i] = tally_pipeline_new (&tallies[i], launch);
    tracker_attach (&trackers[i], pipelines[i]);
  }
  /* all at once: the first buffer of each waits at the barrier until every
   * pipeline has one, so all eight are reading at the same time */
  for (guint i = 0; i < N; i++)
    g_assert_cmpint (gst_element_set_state (pipelines[i],
            GST_STATE_PLAYING), !=, GST_STATE_CHANGE_FAILURE);
  for (guint i = 0; i < N; i++) {
    g_test_message ("pipeline %u: %s", i, launches[i]);
    tally_wait_eos (&tallies[i]);
    tally_assert_complete (&tallies[i]);
    g_assert_cmpuint (tallies[i].starts, ==, 1);
  }
  g_assert_cmpuint (barrier.arrived, ==, N);

  for (guint i = 0; i < N; i++) {
    set_state_bounded (pipelines[i], &tallies[i], GST_STATE_NULL);
    tracker_assert_released (&trackers[i]);
    gst_object_unref (pipelines[i]);
    tracker_clear (&trackers[i]);
    tally_clear (&tallies[i]);
  }
  g_mutex_clear (&barrier.lock);
  g_cond_clear (&barrier.cond);
}

/* ------------------------------------------------------------------ */
/* 3. EOS, seeks and flushes mid-stream */

typedef struct
{
  GMutex lock;
  GCond cond;
  GstElement *pipeline;
  guint at;                     /* the buffer uelsrc pushes that acts */
  guint pushed;
  gboolean hold;                /* wait at it instead of sending EOS */
  gboolean reached;
  gboolean released;
  gboolean eos_sent;
  gboolean timed_out;
} SrcHook;

static void
src_hook_init (SrcHook * h, GstElement * pipeline, guint at, gboolean hold)
{
  memset (h, 0, sizeof (*h));
  g_mutex_init (&h->lock);
  g_cond_init (&h->cond);
  h->pipeline = pipeline;
  h->at = at;
  h->hold = hold;
}

static GstPadProbeReturn
src_hook_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  SrcHook *h = data;
  gboolean act;

  g_mutex_lock (&h->lock);
  act = ++h->pushed == h->at;
  if (act && h->hold) {
    gint64 deadline = g_get_monotonic_time () + WAIT_BOUND_US;

    h->reached = TRUE;
    g_cond_broadcast (&h->cond);
    while (!h->released && !h->timed_out)
      h->timed_out = !wait_until_locked (&h->cond, &h->lock, deadline);
  }
  g_mutex_unlock (&h->lock);

  if (act && !h->hold) {
    /* in uelsrc's streaming thread, while it pushes the at-th buffer */
    gboolean sent = gst_element_send_event (h->pipeline,
        gst_event_new_eos ());

    g_mutex_lock (&h->lock);
    h->eos_sent = sent;
    h->reached = TRUE;
    g_cond_broadcast (&h->cond);
    g_mutex_unlock (&h->lock);
  }
  return GST_PAD_PROBE_OK;
}

static void
src_hook_attach (SrcHook * h)
{
  GstPad *pad = gst_element_get_static_pad (get_by_name (h->pipeline, "src"),
      "src");

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, src_hook_probe, h,
      NULL);
  gst_object_unref (pad);
}

static void
src_hook_wait_reached (SrcHook * h)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_BOUND_US;
  gboolean in_time = TRUE;

  g_mutex_lock (&h->lock);
  while (in_time && !h->reached)
    in_time = wait_until_locked (&h->cond, &h->lock, deadline);
  g_mutex_unlock (&h->lock);
  g_assert_true (in_time);
}

static void
src_hook_release (SrcHook * h)
{
  g_mutex_lock (&h->lock);
  h->released = TRUE;
  g_cond_broadcast (&h->cond);
  g_mutex_unlock (&h->lock);
}

static void
src_hook_clear (SrcHook * h)
{
  g_mutex_clear (&h->lock);
  g_cond_clear (&h->cond);
}

typedef struct
{
  const gchar *launch;
  gboolean from_source;         /* EOS sent as uelsrc pushes the buffer */
  guint slack;                  /* buffers past it that may still arrive */
} EosCase;

/* EOS sent to the pipeline as the at-th buffer passes (at the sink, or as
 * uelsrc pushes it): the pipeline reaches EOS with exactly that prefix of
 * the file, or, when sent at the sink behind a queue, at most the queue's
 * buffers and the one being pushed more. */
static void
test_eos_mid_stream (void)
{
  static const EosCase cases[] = {
    {"io-threads=4 ! fakesink name=sink", FALSE, 0},
    {"method=mmap ! ueldictdecode ! fakesink name=sink", FALSE, 0},
    {"method=direct io-threads=2 ! uelqueue max-size-buffers=3 ! "
          "uelpin pool-size=8388608 ! fakesink name=sink", FALSE, 4},
    {"method=direct io-threads=2 ! uelqueue max-size-buffers=3 ! "
          "uelpin pool-size=8388608 ! fakesink name=sink", TRUE, 0},
    {"io-threads=3 ! uelqueue max-size-bytes=1048576 ! "
          "uelpin pool-size=4194304 ! uelcudaupload ! ueldictdecode ! "
          "fakesink name=sink", TRUE, 0},
  };
  g_autoptr (Model) m = model_wide ();
  const guint ats[] = { 1, 9, m->n - 6 };

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    for (guint a = 0; a < G_N_ELEMENTS (ats); a++) {
      g_autofree gchar *launch = g_strdup_printf (
          "uelsrc name=src location=\"%s\" %s", m->path, cases[c].launch);
      GstElement *pipeline;
      SrcHook h;
      Tracker tr;
      Tally t;

      tally_init (&t, m);
      tracker_init (&tr);
      pipeline = tally_pipeline_new (&t, launch);
      tracker_attach (&tr, pipeline);
      src_hook_init (&h, pipeline, cases[c].from_source ? ats[a] : 0, FALSE);
      if (cases[c].from_source)
        src_hook_attach (&h);
      else
        t.eos_at = ats[a];

      g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_PLAYING),
          !=, GST_STATE_CHANGE_FAILURE);
      tally_wait_eos (&t);
      g_mutex_lock (&h.lock);
      g_assert_true (!cases[c].from_source || h.eos_sent);
      g_mutex_unlock (&h.lock);
      g_mutex_lock (&t.lock);
      g_assert_true (cases[c].from_source || t.eos_sent);
      g_assert_cmpuint (t.starts, ==, 1);
      /* a prefix of the file, exact (tally_check_locked), shorter */
      g_assert_cmpuint (t.buffers, >=, ats[a]);
      g_assert_cmpuint (t.buffers, <=, ats[a] + cases[c].slack);
      g_assert_cmpuint (t.buffers, <, m->n);
      g_assert_cmpuint (t.tensors, ==, t.buffers);
      g_assert_cmpuint (t.next, ==, t.buffers);
      if (t.expect_dicts)
        g_assert_cmpuint (t.dicts, ==, t.buffers > m->dict ? 1 : 0);
      g_mutex_unlock (&t.lock);

      set_state_bounded (pipeline, &t, GST_STATE_NULL);
      tracker_assert_released (&tr);
      gst_object_unref (pipeline);
      src_hook_clear (&h);
      tracker_clear (&tr);
      tally_clear (&t);
    }
  }
}

/* uelsrc refuses seeks: a seek on the pipeline returns FALSE, in PLAYING
 * with uelsrc held at a buffer and in PAUSED, and the stream goes on to
 * deliver the whole file, exactly, without starting again. */
static void
test_seek_refused (void)
{
  g_autoptr (Model) m = model_states ();
  g_autofree gchar *launch = g_strdup_printf ("uelsrc name=src "
      "location=\"%s\" io-threads=2 ! uelqueue max-size-bytes=262144 ! "
      "uelpin pool-size=4194304 ! uelcudaupload ! ueldictdecode ! "
      "fakesink name=sink", m->path);
  GstElement *pipeline;
  GstQuery *query;
  gboolean seekable = TRUE;
  SrcHook h;
  Tracker tr;
  Tally t;

  tally_init (&t, m);
  tracker_init (&tr);
  pipeline = tally_pipeline_new (&t, launch);
  tracker_attach (&tr, pipeline);
  src_hook_init (&h, pipeline, 12, TRUE);
  src_hook_attach (&h);

  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_PLAYING), !=,
      GST_STATE_CHANGE_FAILURE);
  src_hook_wait_reached (&h);
  query = gst_query_new_seeking (GST_FORMAT_BYTES);
  g_assert_true (gst_element_query (pipeline, query));
  gst_query_parse_seeking (query, NULL, &seekable, NULL, NULL);
  gst_query_unref (query);
  g_assert_false (seekable);
  g_assert_false (gst_element_seek_simple (pipeline, GST_FORMAT_BYTES,
          GST_SEEK_FLAG_FLUSH, 0));
  g_assert_false (gst_element_seek_simple (pipeline, GST_FORMAT_BYTES,
          GST_SEEK_FLAG_NONE, (gint64) m->offsets[3]));
  g_assert_false (gst_element_seek_simple (pipeline, GST_FORMAT_TIME,
          GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE, GST_SECOND));
  src_hook_release (&h);
  tally_wait_eos (&t);
  tally_assert_complete (&t);
  g_assert_cmpuint (t.starts, ==, 1);
  g_mutex_lock (&h.lock);
  g_assert_false (h.timed_out);
  g_mutex_unlock (&h.lock);

  /* prerolled, from the start again */
  set_state_bounded (pipeline, &t, GST_STATE_READY);
  tracker_assert_released (&tr);
  tally_reset (&t);
  set_state_bounded (pipeline, &t, GST_STATE_PAUSED);
  g_assert_false (gst_element_seek_simple (pipeline, GST_FORMAT_BYTES,
          GST_SEEK_FLAG_FLUSH, 0));
  set_state_bounded (pipeline, &t, GST_STATE_PLAYING);
  tally_wait_eos (&t);
  tally_assert_complete (&t);
  g_assert_cmpuint (t.starts, ==, 1);

  set_state_bounded (pipeline, &t, GST_STATE_NULL);
  tracker_assert_released (&tr);
  gst_object_unref (pipeline);
  src_hook_clear (&h);
  tracker_clear (&tr);
  tally_clear (&t);
}

/* Whether uelsrc is stuck on the full queue while the sink holds a
 * buffer: its k-th buffer has not entered the queue and cannot, because
 * what is queued leaves no room for it and nothing leaves the queue.  The
 * overrun signal (in uelsrc's thread, right before it waits) says when to
 * look; the queue's own stats, read under its lock, say whether the wait
 * is real or the buffer got in after all (a buffer that left the queue
 * before the sink held made room). */
typedef struct
{
  Tally *t;
  GstPad *src_pad;              /* uelsrc's */
  guint64 max_bytes;
  guint pushed;                 /* buffers uelsrc pushed */
  gsize size;                   /* the size of the last one */
  guint waiting;                /* the one announced by the last overrun */
  gsize waiting_size;
  guint overruns;
} Upstream;

static GstPadProbeReturn
upstream_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Upstream *u = data;

  g_mutex_lock (&u->t->lock);
  u->pushed++;
  u->size = gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
  g_mutex_unlock (&u->t->lock);
  return GST_PAD_PROBE_OK;
}

static void
upstream_on_overrun (GstElement * queue, gpointer data)
{
  Upstream *u = data;

  g_mutex_lock (&u->t->lock);
  u->waiting = u->pushed;
  u->waiting_size = u->size;
  u->overruns++;
  g_cond_broadcast (&u->t->cond);
  g_mutex_unlock (&u->t->lock);
}

static void
upstream_attach (Upstream * u, Tally * t, GstElement * pipeline)
{
  GstElement *q = get_by_name (pipeline, "q");
  GstPad *pad = gst_element_get_static_pad (get_by_name (pipeline, "src"),
      "src");

  memset (u, 0, sizeof (*u));
  u->t = t;
  u->src_pad = pad;
  g_object_get (q, "max-size-bytes", &u->max_bytes, NULL);
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, upstream_probe, u,
      NULL);
  /* the element keeps its pad alive */
  gst_object_unref (pad);
  g_signal_connect (q, "overrun", G_CALLBACK (upstream_on_overrun), u);
}

/* The buffers that entered @q since it last started. */
static guint64
queue_in_buffers (GstElement * q)
{
  GstStructure *stats = NULL;
  guint64 in;

  g_object_get (q, "stats", &stats, NULL);
  g_assert_true (gst_structure_get_uint64 (stats, "in-buffers", &in));
  gst_structure_free (stats);
  return in;
}

/* Returns once uelsrc's streaming thread is between two buffers: it holds
 * its pad's stream lock while it reads and pushes one. */
static void
upstream_sync (Upstream * u)
{
  GST_PAD_STREAM_LOCK (u->src_pad);
  GST_PAD_STREAM_UNLOCK (u->src_pad);
}

/* FLUSH_START reaching the sink: it releases the buffer the sink holds.
 * Then, before the flush goes further, wait for uelsrc's push to return:
 * a queue that let the stuck buffer in once the held one left (room made
 * by the flush) has it counted in its in-buffers now. */
static GstPadProbeReturn
release_on_flush (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Upstream *u = data;
  gboolean held;

  if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) !=
      GST_EVENT_FLUSH_START)
    return GST_PAD_PROBE_OK;
  g_mutex_lock (&u->t->lock);
  held = u->t->held && !u->t->released;
  u->t->released = TRUE;
  g_cond_broadcast (&u->t->cond);
  g_mutex_unlock (&u->t->lock);
  /* (a sink prerolled in PAUSED lets go only in the flush itself) */
  if (held)
    upstream_sync (u);
  return GST_PAD_PROBE_OK;
}

/* Returns the number of the buffer uelsrc is stuck with. */
static guint
wait_upstream_stuck (Upstream * u, GstElement * q)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_BOUND_US;
  gboolean in_time = TRUE;
  guint seen = 0;

  for (;;) {
    GstStructure *stats = NULL;
    guint64 in, level;
    guint buffers, k;
    gsize size;

    g_mutex_lock (&u->t->lock);
    while (in_time && u->overruns == seen && !u->t->error)
      in_time = wait_until_locked (&u->t->cond, &u->t->lock, deadline);
    seen = u->overruns;
    k = u->waiting;
    size = u->waiting_size;
    g_mutex_unlock (&u->t->lock);
    tally_assert_ok (u->t);
    g_assert_true (in_time);

    g_object_get (q, "stats", &stats, NULL);
    g_assert_true (gst_structure_get_uint64 (stats, "in-buffers", &in));
    g_assert_true (gst_structure_get_uint64 (stats, "current-level-bytes",
            &level));
    g_assert_true (gst_structure_get_uint (stats, "current-level-buffers",
            &buffers));
    gst_structure_free (stats);
    if (in == k - 1 && buffers > 0 && size > u->max_bytes - MIN (level,
            u->max_bytes))
      return k;
  }
}

static void
send_flush (GstElement * queue, Upstream * u, guint stuck, gboolean stop)
{
  GstPad *pad = gst_element_get_static_pad (queue, "sink");

  g_assert_true (gst_pad_send_event (pad, gst_event_new_flush_start ()));
  /* uelsrc's stuck buffer was refused (FLUSHING): it never entered the
   * queue, and uelsrc stopped, so nothing follows FLUSH_STOP */
  upstream_sync (u);
  g_assert_cmpuint (queue_in_buffers (queue), ==, stuck - 1);
  if (stop)
    g_assert_true (gst_pad_send_event (pad, gst_event_new_flush_stop (TRUE)));
  gst_object_unref (pad);
}

/* After flushes the application sends into uelqueue's sink pad, the
 * pipeline stops cleanly, gives every buffer and all pool memory back, and
 * from NULL delivers the whole file again. */
static void
test_flush_into_queue (void)
{
  g_autoptr (Model) m = model_states ();
  g_autofree gchar *launch = g_strdup_printf ("uelsrc name=src "
      "location=\"%s\" io-threads=2 ! uelqueue name=q max-size-bytes=262144 "
      "! uelpin pool-size=2097152 ! uelcudaupload ! ueldictdecode ! "
      "fakesink name=sink", m->path);
  /* 0: prerolled in PAUSED with the queue full; otherwise the sink holds
   * that buffer in PLAYING while the queue fills.  With the sizes of
   * model_states(), the buffer uelsrc is stuck with after 5 and 13 fits in
   * the room that the next buffer leaving makes; after 1 and 30 it does
   * not. */
  const guint holds[] = { 0, 1, 5, 13, 30 };

  for (guint k = 0; k < G_N_ELEMENTS (holds); k++) {
    for (guint stop = 0; stop < 2; stop++) {
      GstElement *pipeline, *sink, *q;
      GstPad *pad;
      Upstream u;
      Tracker tr;
      Tally t;
      guint stuck;

      tally_init (&t, m);
      tracker_init (&tr);
      pipeline = tally_pipeline_new (&t, launch);
      tracker_attach (&tr, pipeline);
      q = get_by_name (pipeline, "q");
      upstream_attach (&u, &t, pipeline);
      sink = get_by_name (pipeline, "sink");
      pad = gst_element_get_static_pad (sink, "sink");
      gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_EVENT_FLUSH,
          release_on_flush, &u, NULL);
      gst_object_unref (pad);

      t.hold_at = holds[k];
      if (holds[k] == 0) {
        set_state_bounded (pipeline, &t, GST_STATE_PAUSED);
      } else {
        gint64 deadline = g_get_monotonic_time () + WAIT_BOUND_US;
        gboolean in_time = TRUE;

        g_assert_cmpint (gst_element_set_state (pipeline,
                GST_STATE_PLAYING), !=, GST_STATE_CHANGE_FAILURE);
        g_mutex_lock (&t.lock);
        while (in_time && !t.held && !t.error)
          in_time = wait_until_locked (&t.cond, &t.lock, deadline);
        g_mutex_unlock (&t.lock);
        tally_assert_ok (&t);
        g_assert_true (in_time);
      }
      /* uelsrc waits on the full queue: the flush must refuse it its
       * buffer, or it pushes again after FLUSH_STOP, with no segment */
      stuck = wait_upstream_stuck (&u, q);
      send_flush (q, &u, stuck, stop);

      /* the sink got the file's first buffers, up to the one it held, and
       * nothing after the flush */
      tally_assert_ok (&t);
      g_mutex_lock (&t.lock);
      g_assert_cmpuint (t.buffers, ==, holds[k]);
      g_assert_cmpuint (t.next, ==, holds[k]);
      g_mutex_unlock (&t.lock);

      g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_NULL), ==,
          GST_STATE_CHANGE_SUCCESS);
      tracker_assert_released (&tr);

      g_mutex_lock (&t.lock);
      t.hold_at = 0;
      g_mutex_unlock (&t.lock);
      tally_reset (&t);
      set_state_bounded (pipeline, &t, GST_STATE_PLAYING);
      tally_wait_eos (&t);
      tally_assert_complete (&t);
      g_assert_cmpuint (t.starts, ==, 1);
      set_state_bounded (pipeline, &t, GST_STATE_NULL);
      tracker_assert_released (&tr);

      gst_object_unref (pipeline);
      tracker_clear (&tr);
      tally_clear (&t);
    }
  }
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/stress/random-state-changes-with-data-flowing",
      test_random_state_changes);
  g_test_add_func ("/stress/eight-pipelines-read-one-file-at-once",
      test_concurrent_readers);
  g_test_add_func ("/stress/eos-mid-stream-ends-with-an-exact-prefix",
      test_eos_mid_stream);
  g_test_add_func ("/stress/seeks-are-refused-and-the-stream-completes",
      test_seek_refused);
  g_test_add_func ("/stress/flushes-into-the-queue-stop-cleanly",
      test_flush_into_queue);
  return g_test_run ();
}
