/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * bench-pipeline: runs one launch string to EOS and prints one line of
 * key=value pairs: bytes and buffers counted at the sink, tensors, wall
 * times, GB/s, tensors/s, peak RSS (getrusage) and the counters of every
 * uelqueue and uelpin in the pipeline.
 *
 * Two times: `total_s` from the request for PLAYING (the pipeline is in
 * READY) to the EOS message, and `seconds` from the moment uelsrc posts its
 * `uel-header` message (header parsed and validated, files open, every
 * element downstream started: a pinned pool is mapped and pre-faulted) to
 * EOS.  GB/s and tensors/s use `seconds`, the streaming phase, which is
 * what the raw limits time too (they read the header and allocate their
 * buffer before their clock starts).  Without a uelsrc, both are the same.
 *
 *   bench-pipeline [--touch BYTES] [--label NAME] 'uelsrc location=F !
 *       fakesink enable-last-sample=false'
 *
 * Bytes are counted by a buffer probe on the sink pad of the last sink in
 * the pipeline (not with signal-handoffs, whose signal emission costs more
 * than the probe); the total the `uel-header` message announces is printed
 * next to them as a check.  --touch reads the first BYTES of every buffer
 * (-1: all of it) in that probe, the way a consumer that only looks at part
 * of each tensor would: with method=mmap that is where the page-cache copy
 * really happens.
 */

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <gst/gst.h>
#include <gst-uel/uel.h>

typedef struct
{
  gint64 touch;                 /* bytes to read per buffer, -1 all, 0 none */
  guint64 buffers;
  guint64 bytes;
  guint64 tensors;
  guint64 checksum;             /* keeps the reads from being optimized out */
  gint64 t_first;
  gint64 t_header;              /* when the first uel-header was posted */
} Counters;

/* runs in the thread that posts: the time the header was ready, not the
 * time the main loop got to the message */
static GstBusSyncReply
bus_sync (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  Counters *c = user_data;
  const GstStructure *s;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT && c->t_header == 0
      && (s = gst_message_get_structure (msg))
      && gst_structure_has_name (s, UEL_HEADER_STRUCTURE_NAME))
    c->t_header = g_get_monotonic_time ();
  return GST_BUS_PASS;
}

static guint64
touch_bytes (const guint8 * p, gsize n)
{
  guint64 a = 0, b = 0, c = 0, d = 0;
  gsize i = 0;

  /* four independent sums of 64-bit words: memory speed, not add latency */
  for (; i + 32 <= n; i += 32) {
    guint64 w[4];

    memcpy (w, p + i, sizeof w);
    a += w[0];
    b += w[1];
    c += w[2];
    d += w[3];
  }
  for (; i < n; i++)
    a += p[i];
  return a ^ b ^ c ^ d;
}

static GstPadProbeReturn
count_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Counters *c = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  UelTensorMeta *meta;
  gsize size;

  if (!buf)
    return GST_PAD_PROBE_OK;
  size = gst_buffer_get_size (buf);
  if (c->buffers == 0)
    c->t_first = g_get_monotonic_time ();
  c->buffers++;
  c->bytes += size;
  meta = uel_buffer_get_tensor_meta (buf);
  if (!meta || meta->last_chunk)
    c->tensors++;

  if (c->touch != 0 && size > 0) {
    gsize want = c->touch < 0 ? size : MIN (size, (gsize) c->touch);
    GstMapInfo map;

    if (gst_buffer_map (buf, &map, GST_MAP_READ)) {
      c->checksum += touch_bytes (map.data, want);
      gst_buffer_unmap (buf, &map);
    }
  }
  return GST_PAD_PROBE_OK;
}

/* the sink pad of the pipeline's sink (the element named "sink", else the
 * first element flagged as a sink) */
static GstPad *
find_sink_pad (GstBin * bin)
{
  GstElement *sink = gst_bin_get_by_name (bin, "sink");
  GstPad *pad;

  if (!sink) {
    GstIterator *it = gst_bin_iterate_sinks (bin);
    GValue v = G_VALUE_INIT;

    if (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
      sink = g_value_dup_object (&v);
      g_value_unset (&v);
    }
    gst_iterator_free (it);
  }
  if (!sink)
    return NULL;
  pad = gst_element_get_static_pad (sink, "sink");
  gst_object_unref (sink);
  return pad;
}

static void
print_field (GString * out, const gchar * prefix, const GstStructure * s,
    const gchar * field)
{
  const GValue *v = gst_structure_get_value (s, field);
  gchar *key;

  if (!v)
    return;
  key = g_strdelimit (g_strdup_printf ("%s_%s", prefix, field), "-", '_');
  if (G_VALUE_HOLDS_UINT64 (v))
    g_string_append_printf (out, " %s=%" G_GUINT64_FORMAT, key,
        g_value_get_uint64 (v));
  else if (G_VALUE_HOLDS_UINT (v))
    g_string_append_printf (out, " %s=%u", key, g_value_get_uint (v));
  else if (G_VALUE_HOLDS_BOOLEAN (v))
    g_string_append_printf (out, " %s=%d", key, g_value_get_boolean (v));
  g_free (key);
}

/* the stats of every uelqueue and uelpin, prefixed by the element's name */
static void
append_element_stats (GString * out, GstBin * bin)
{
  static const gchar *queue_fields[] = { "max-level-bytes",
    "max-level-buffers", "overruns", "underruns", NULL
  };
  static const gchar *pin_fields[] = { "zero-copy", "copied", "fallbacks",
    "copy-time", "device-pinned", "pool-size", "pool-peak-bytes",
    "pool-waits", NULL
  };
  GstIterator *it = gst_bin_iterate_recurse (bin);
  GValue v = G_VALUE_INIT;

  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&v);
    GstElementFactory *f = gst_element_get_factory (e);
    const gchar *fname = f ? GST_OBJECT_NAME (f) : "";
    const gchar **fields = NULL;

    if (g_strcmp0 (fname, "uelqueue") == 0)
      fields = queue_fields;
    else if (g_strcmp0 (fname, "uelpin") == 0)
      fields = pin_fields;
    if (fields) {
      GstStructure *s = NULL;

      g_object_get (e, "stats", &s, NULL);
      if (s) {
        for (guint i = 0; fields[i]; i++)
          print_field (out, GST_OBJECT_NAME (e), s, fields[i]);
        gst_structure_free (s);
      }
    }
    g_value_unset (&v);
  }
  gst_iterator_free (it);
}

/* runs @launch to EOS once; prints its result line if @print */
static gboolean
run_once (const gchar * launch, gint64 touch, const gchar * label,
    gint timeout_s, GstContext * pool_context, gboolean print)
{
  GError *err = NULL;
  GstElement *pipeline;
  GstPad *pad;
  GstBus *bus;
  Counters c = { 0, };
  guint64 announced = 0;
  guint announced_tensors = 0;
  gint64 t0, t_start, t_eos = 0;
  gboolean ok = FALSE, done = FALSE;
  struct rusage ru;
  GString *out;
  gdouble secs;

  c.touch = touch;

  pipeline = gst_parse_launch (launch, &err);
  if (!pipeline) {
    g_printerr ("bench-pipeline: %s\n", err->message);
    return FALSE;
  }
  if (err) {
    g_printerr ("bench-pipeline: warning: %s\n", err->message);
    g_clear_error (&err);
  }
  if (!GST_IS_BIN (pipeline)) {
    g_printerr ("bench-pipeline: give a pipeline with a sink\n");
    return FALSE;
  }
  pad = find_sink_pad (GST_BIN (pipeline));
  if (!pad) {
    g_printerr ("bench-pipeline: no sink in the pipeline\n");
    return FALSE;
  }
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_probe, &c, NULL);
  gst_object_unref (pad);

  if (pool_context)
    gst_element_set_context (pipeline, pool_context);
  bus = gst_element_get_bus (pipeline);
  gst_bus_set_sync_handler (bus, bus_sync, &c, NULL);
  gst_element_set_state (pipeline, GST_STATE_READY);

  t0 = g_get_monotonic_time ();
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE)
    g_printerr ("bench-pipeline: cannot start the pipeline\n");

  while (!done) {
    GstMessage *msg = gst_bus_timed_pop (bus,
        (GstClockTime) timeout_s * GST_SECOND);
    const GstStructure *s;

    if (!msg) {
      g_printerr ("bench-pipeline: no EOS after %d s\n", timeout_s);
      break;
    }
    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_EOS:
        t_eos = g_get_monotonic_time ();
        ok = TRUE;
        done = TRUE;
        break;
      case GST_MESSAGE_ERROR:{
        gchar *dbg = NULL;

        gst_message_parse_error (msg, &err, &dbg);
        g_printerr ("bench-pipeline: error from %s: %s\n%s\n",
            GST_OBJECT_NAME (msg->src), err->message, dbg ? dbg : "");
        g_clear_error (&err);
        g_free (dbg);
        done = TRUE;
        break;
      }
      case GST_MESSAGE_ELEMENT:
        s = gst_message_get_structure (msg);
        if (s && gst_structure_has_name (s, UEL_HEADER_STRUCTURE_NAME)) {
          guint64 tb = 0;
          guint nt = 0;

          gst_structure_get_uint64 (s, "total-bytes", &tb);
          gst_structure_get_uint (s, "n-tensors", &nt);
          announced += tb;
          announced_tensors += nt;
        }
        break;
      default:
        break;
    }
    gst_message_unref (msg);
  }

  t_start = c.t_header ? c.t_header : t0;
  secs = (t_eos - t_start) / 1e6;
  getrusage (RUSAGE_SELF, &ru);
  out = g_string_new (NULL);
  g_string_append_printf (out, "bench-pipeline label=%s ok=%d bytes=%"
      G_GUINT64_FORMAT " buffers=%" G_GUINT64_FORMAT " tensors=%"
      G_GUINT64_FORMAT " announced_bytes=%" G_GUINT64_FORMAT
      " announced_tensors=%u seconds=%.6f total_s=%.6f setup_s=%.6f"
      " first_buffer_s=%.6f gbps=%.4f"
      " tensors_per_s=%.1f maxrss_kb=%ld minflt=%ld majflt=%ld"
      " utime_s=%.3f stime_s=%.3f touch=%" G_GINT64_FORMAT " checksum=%"
      G_GUINT64_FORMAT, label ? label : "-", ok, c.bytes, c.buffers,
      c.tensors, announced, announced_tensors, ok ? secs : 0.0,
      ok ? (t_eos - t0) / 1e6 : 0.0, (t_start - t0) / 1e6,
      c.buffers ? (c.t_first - t_start) / 1e6 : 0.0,
      ok && secs > 0 ? c.bytes / secs / 1e9 : 0.0,
      ok && secs > 0 ? c.tensors / secs : 0.0, ru.ru_maxrss, ru.ru_minflt,
      ru.ru_majflt, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
      ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, touch, c.checksum);
  /* counters are read at EOS, before a state change resets them */
  append_element_stats (out, GST_BIN (pipeline));
  if (print)
    g_print ("%s\n", out->str);
  g_string_free (out, TRUE);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  return ok;
}

int
main (int argc, char **argv)
{
  gint64 touch = 0;
  gchar *label = NULL;
  gint timeout_s = 600;
  gint runs = 1;
  gint64 shared_pool = 0;
  GOptionEntry entries[] = {
    {"touch", 't', 0, G_OPTION_ARG_INT64, &touch,
        "Read the first BYTES of every buffer at the sink (-1: all)", "BYTES"},
    {"label", 'l', 0, G_OPTION_ARG_STRING, &label,
        "A name printed first on the result line", "NAME"},
    {"timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s,
        "Give up after this many seconds (default 600)", "S"},
    {"runs", 0, 0, G_OPTION_ARG_INT, &runs,
        "Run the line this many times in this process, one after another; "
          "print the last run's line (default 1)", "N"},
    {"shared-pool", 0, 0, G_OPTION_ARG_INT64, &shared_pool,
        "Give every run one pinned pool of BYTES, pinned once, as a "
          "uel.pinned-pool context", "BYTES"},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("'LAUNCH LINE'");
  GError *err = NULL;
  GstAllocator *pool = NULL;
  GstContext *pool_context = NULL;
  gboolean ok = TRUE;

  g_option_context_set_summary (ctx, "Run one launch line to EOS and print "
      "bytes, seconds, GB/s, tensors/s and peak RSS as key=value pairs.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("bench-pipeline: %s\n", err->message);
    return 2;
  }
  if (argc != 2) {
    g_printerr ("bench-pipeline: give one launch line (see --help)\n");
    return 2;
  }
  uel_init ();
  if (shared_pool > 0) {
    pool = uel_pinned_allocator_new ((guint64) shared_pool, -1);
    pool_context = uel_pinned_pool_context_new (UEL_PINNED_ALLOCATOR (pool));
  }
  for (gint r = 0; ok && r < MAX (runs, 1); r++)
    ok = run_once (argv[1], touch, label, timeout_s, pool_context,
        r == MAX (runs, 1) - 1);
  if (pool_context)
    gst_context_unref (pool_context);
  gst_clear_object (&pool);
  g_free (label);
  return ok ? 0 : 1;
}
