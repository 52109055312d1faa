/* gst-uel launch: run a pipeline described as for gst-launch-1.0, with
 * progress, a closing summary and a clean stop on Ctrl-C
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "gst-uel-common.h"

#include <glib-unix.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gst/gst.h>
#include <gst-uel/uel.h>

typedef struct
{
  GMainLoop *loop;
  GstElement *pipeline;
  gboolean quiet;
  gboolean tty;
  gboolean messages;
  gint exit_code;
  guint n_interrupts;
  GThread *eos_thread;
  gint64 t_start;               /* µs, monotonic */
  gint64 t_end;
  gint64 t_last_line;

  /* from the streaming threads */
  GMutex lock;
  GHashTable *totals;           /* uelsrc → guint64[2]: tensors, bytes */
  GHashTable *seen;             /* "header:tensor:chunk" of counted data */
  guint64 done_tensors;
  guint64 done_bytes;
  guint64 done_buffers;
} Launch;

static gdouble
elapsed_s (Launch * l)
{
  gint64 end = l->t_end ? l->t_end : g_get_monotonic_time ();

  return l->t_start ? (gdouble) (end - l->t_start) / 1e6 : 0.0;
}

static void
get_totals (Launch * l, guint64 * tensors, guint64 * bytes)
{
  GHashTableIter it;
  gpointer v;

  *tensors = *bytes = 0;
  g_hash_table_iter_init (&it, l->totals);
  while (g_hash_table_iter_next (&it, NULL, &v)) {
    *tensors += ((guint64 *) v)[0];
    *bytes += ((guint64 *) v)[1];
  }
}

/* bytes per second: GB/s (10^9) as disks and buses are quoted, smaller
 * units for slow pipelines rather than 0.00 */
static gchar *
format_rate (gdouble bytes_per_s)
{
  if (bytes_per_s >= 1e8)
    return g_strdup_printf ("%.2f GB/s", bytes_per_s / 1e9);
  if (bytes_per_s >= 1e5)
    return g_strdup_printf ("%.1f MB/s", bytes_per_s / 1e6);
  return g_strdup_printf ("%.1f kB/s", bytes_per_s / 1e3);
}

static gchar *
format_duration (gdouble s)
{
  guint64 t = (guint64) (s + 0.5);

  if (t >= 3600)
    return g_strdup_printf ("%" G_GUINT64_FORMAT ":%02u:%02u", t / 3600,
        (guint) (t / 60 % 60), (guint) (t % 60));
  return g_strdup_printf ("%u:%02u", (guint) (t / 60), (guint) (t % 60));
}

/* one progress line, without its end: tensors, bytes, GB/s, ETA */
static gchar *
progress_text (Launch * l, gboolean bar)
{
  guint64 total_t, total_b, done_t, done_b;
  gdouble secs = elapsed_s (l), rate, frac;
  g_autofree gchar *done_sz = NULL, *total_sz = NULL, *eta = NULL;
  g_autofree gchar *speed = NULL;
  GString *s = g_string_new (NULL);

  g_mutex_lock (&l->lock);
  get_totals (l, &total_t, &total_b);
  done_t = l->done_tensors;
  done_b = l->done_bytes;
  g_mutex_unlock (&l->lock);

  rate = secs > 0 ? (gdouble) done_b / secs : 0;
  speed = format_rate (rate);
  done_sz = format_size (done_b);
  if (total_t == 0) {
    g_string_append_printf (s, "%" G_GUINT64_FORMAT " tensors, %s, "
        "%s, %.1f s", done_t, done_sz, speed, secs);
    return g_string_free (s, FALSE);
  }

  total_sz = format_size (total_b);
  frac = total_b ? (gdouble) done_b / (gdouble) total_b :
      (gdouble) done_t / (gdouble) total_t;
  frac = CLAMP (frac, 0.0, 1.0);
  if (bar) {
    const gint width = 24;
    gint fill = (gint) (frac * width);

    g_string_append_c (s, '[');
    for (gint i = 0; i < width; i++)
      g_string_append_c (s, i < fill ? '#' : (i == fill ? '>' : ' '));
    g_string_append (s, "] ");
  }
  if (rate > 0 && done_b < total_b)
    eta = format_duration ((gdouble) (total_b - done_b) / rate);
  else if (done_b >= total_b)
    eta = g_strdup ("0:00");
  g_string_append_printf (s, "%3.0f%%  %" G_GUINT64_FORMAT "/%"
      G_GUINT64_FORMAT " tensors  %s / %s  %s  ETA %s", frac * 100,
      done_t, total_t, done_sz, total_sz, speed, eta ? eta : "?");
  return g_string_free (s, FALSE);
}

static void
clear_progress (Launch * l)
{
  if (l->tty && !l->quiet)
    errout ("\r\033[K");
}

static gboolean
on_progress_tick (gpointer data)
{
  Launch *l = data;
  g_autofree gchar *text = NULL;

  if (l->quiet || !l->t_start)
    return G_SOURCE_CONTINUE;
  text = progress_text (l, l->tty);
  if (l->tty)
    errout ("\r\033[K%s", text);
  else
    errout ("progress: %s\n", text);
  return G_SOURCE_CONTINUE;
}

/* counts the tensor data reaching a sink, once per tensor chunk whatever
 * the number of sinks (a tee) */
static void
count_buffer (Launch * l, GstBuffer * buf)
{
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
  gsize size = gst_buffer_get_size (buf);
  gchar *key;

  g_mutex_lock (&l->lock);
  l->done_buffers++;
  if (!meta) {
    l->done_bytes += size;
    g_mutex_unlock (&l->lock);
    return;
  }
  key = g_strdup_printf ("%p:%u:%" G_GUINT64_FORMAT, meta->header,
      meta->tensor_index, meta->chunk_offset);
  if (g_hash_table_add (l->seen, key)) {
    const UelTensorInfo *info = uel_tensor_meta_get_tensor_info (meta);

    /* in the file's bytes, also where an element converted the dtype */
    if (meta->n_bytes)
      l->done_bytes += (guint64) ((gdouble) size * (gdouble) info->n_bytes /
          (gdouble) meta->n_bytes);
    if (meta->last_chunk)
      l->done_tensors++;
  }
  g_mutex_unlock (&l->lock);
}

static gboolean
count_list_item (GstBuffer ** buf, guint idx, gpointer data)
{
  count_buffer (data, *buf);
  return TRUE;
}

static GstPadProbeReturn
sink_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
    count_buffer (data, GST_PAD_PROBE_INFO_BUFFER (info));
  else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    gst_buffer_list_foreach (GST_PAD_PROBE_INFO_BUFFER_LIST (info),
        count_list_item, data);
  return GST_PAD_PROBE_OK;
}

static void
watch_sinks (Launch * l)
{
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (l->pipeline));
  GValue v = G_VALUE_INIT;

  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&v);
    GList *p;

    if (!GST_IS_BIN (e) && GST_OBJECT_FLAG_IS_SET (e, GST_ELEMENT_FLAG_SINK)) {
      GST_OBJECT_LOCK (e);
      for (p = e->sinkpads; p; p = p->next)
        gst_pad_add_probe (p->data, GST_PAD_PROBE_TYPE_BUFFER |
            GST_PAD_PROBE_TYPE_BUFFER_LIST, sink_probe, l, NULL);
      GST_OBJECT_UNLOCK (e);
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
}

/* Ctrl-C: EOS into every source's downstream peer, from a thread of its
 * own since the push may wait for a full queue; the sinks' EOS then ends
 * the loop as a normal end of stream would.  Sending EOS to the pipeline
 * would not do: a source that is not a GstBaseSrc ignores it. */
static gpointer
send_eos (gpointer data)
{
  GstElement *pipeline = data;
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (pipeline));
  GValue v = G_VALUE_INIT;
  GPtrArray *peers = g_ptr_array_new_with_free_func (gst_object_unref);

  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&v);

    if (!GST_IS_BIN (e) && e->numsinkpads == 0) {
      GST_OBJECT_LOCK (e);
      for (GList * p = e->srcpads; p; p = p->next) {
        GstPad *peer = gst_pad_get_peer (p->data);
        if (peer)
          g_ptr_array_add (peers, peer);
      }
      GST_OBJECT_UNLOCK (e);
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);

  for (guint i = 0; i < peers->len; i++)
    gst_pad_send_event (g_ptr_array_index (peers, i), gst_event_new_eos ());
  g_ptr_array_unref (peers);
  gst_object_unref (pipeline);
  return NULL;
}

static gboolean
on_sigint (gpointer data)
{
  Launch *l = data;

  l->n_interrupts++;
  clear_progress (l);
  if (l->n_interrupts == 1) {
    errout ("Interrupt: stopping the pipeline (EOS, then NULL); press "
        "Ctrl-C again to stop at once\n");
    l->exit_code = EXIT_INTERRUPTED;
    l->eos_thread = g_thread_new ("gst-uel-eos", send_eos,
        gst_object_ref (l->pipeline));
  } else {
    errout ("Interrupt: stopping at once\n");
    g_main_loop_quit (l->loop);
  }
  return G_SOURCE_CONTINUE;
}

static void
print_error_message (Launch * l, GstMessage * msg, gboolean warning)
{
  GError *err = NULL;
  gchar *debug = NULL;
  g_autofree gchar *path = gst_object_get_path_string (msg->src);

  if (warning)
    gst_message_parse_warning (msg, &err, &debug);
  else
    gst_message_parse_error (msg, &err, &debug);
  clear_progress (l);
  errout ("%s: from element %s: %s\n", warning ? "WARNING" : "ERROR",
      path, err->message);
  if (debug)
    errout ("Additional debug info:\n%s\n", debug);
  g_error_free (err);
  g_free (debug);
}

/* -m: the header and the dictionaries as text, other messages as
 * structures */
static void
print_element_message (Launch * l, GstMessage * msg, const GstStructure * s)
{
  const gchar *name = NULL, *json = NULL;
  UelHeader *header = NULL;

  clear_progress (l);
  if (uel_header_message_parse (msg, &header)) {
    GHashTable *table = uel_header_get_metadata (header);
    g_autofree gchar *meta = NULL, *location = NULL;
    guint n = 0;
    guint64 bytes = 0;

    /* the map as JSON: escaped, on one line, whatever the keys */
    if (g_hash_table_size (table)) {
      GString *m = g_string_new ("{");

      json_append_members (m, table, ", ");
      g_string_append_c (m, '}');
      meta = g_string_free (m, FALSE);
    }
    location = printable (uel_header_get_location (header));
    gst_structure_get_uint (s, "n-tensors", &n);
    gst_structure_get_uint64 (s, "total-bytes", &bytes);
    out ("header from %s: %s: %u tensors, %" G_GUINT64_FORMAT " bytes; "
        "metadata: %s\n", GST_MESSAGE_SRC_NAME (msg), location, n, bytes,
        meta ? meta : "none");
    uel_header_unref (header);
  } else if (uel_dict_message_parse (msg, &name, &json)) {
    g_autofree gchar *pname = printable (name);
    g_autofree gchar *pjson = printable_json (json);

    out ("dictionary '%s' from %s: %s\n", pname, GST_MESSAGE_SRC_NAME (msg),
        pjson);
  } else {
    g_autofree gchar *text = gst_structure_to_string (s);

    out ("message from %s: %s\n", GST_MESSAGE_SRC_NAME (msg), text);
  }
}

static gboolean
on_bus_message (GstBus * bus, GstMessage * msg, gpointer data)
{
  Launch *l = data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_EOS:
      l->t_end = g_get_monotonic_time ();
      g_main_loop_quit (l->loop);
      break;
    case GST_MESSAGE_ERROR:
      l->t_end = g_get_monotonic_time ();
      print_error_message (l, msg, FALSE);
      l->exit_code = 1;
      g_main_loop_quit (l->loop);
      break;
    case GST_MESSAGE_WARNING:
      print_error_message (l, msg, TRUE);
      break;
    case GST_MESSAGE_ELEMENT:{
      const GstStructure *s = gst_message_get_structure (msg);
      guint n = 0;
      guint64 bytes = 0;

      if (s && gst_structure_has_name (s, UEL_HEADER_STRUCTURE_NAME)
          && gst_structure_get_uint (s, "n-tensors", &n)
          && gst_structure_get_uint64 (s, "total-bytes", &bytes)) {
        guint64 *v = g_new (guint64, 2);

        v[0] = n;
        v[1] = bytes;
        g_mutex_lock (&l->lock);
        g_hash_table_insert (l->totals, gst_object_ref (msg->src), v);
        g_mutex_unlock (&l->lock);
      }
      if (l->messages && s && !l->quiet)
        print_element_message (l, msg, s);
      break;
    }
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
print_field (GQuark field, const GValue * value, gpointer data)
{
  GString *s = data;
  g_autofree gchar *v = gst_value_serialize (value);

  append_separator (s, 0, ", ");
  g_string_append_printf (s, "%s=%s", g_quark_to_string (field), v ? v : "?");
  return TRUE;
}

/* the `stats` structure of every uel element, read before the pipeline
 * stops: elements reset their counters when they stop */
static GPtrArray *
collect_stats (Launch * l)
{
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (l->pipeline));
  GValue v = G_VALUE_INIT;
  GPtrArray *lines = g_ptr_array_new_with_free_func (g_free);

  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&v);
    GstElementFactory *f = gst_element_get_factory (e);
    GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (e),
        "stats");
    GstStructure *stats = NULL;

    if (f && g_str_has_prefix (GST_OBJECT_NAME (f), "uel") && ps
        && ps->value_type == GST_TYPE_STRUCTURE) {
      GString *s = g_string_new (NULL);

      g_object_get (e, "stats", &stats, NULL);
      if (stats) {
        gst_structure_foreach (stats, print_field, s);
        gst_structure_free (stats);
      }
      g_ptr_array_add (lines, g_strdup_printf ("  %s: %s",
              GST_ELEMENT_NAME (e), s->str));
      g_string_free (s, TRUE);
    }
    g_value_reset (&v);
  }
  g_value_unset (&v);
  gst_iterator_free (it);
  return lines;
}

static void
print_summary (Launch * l, GPtrArray * stats)
{
  struct rusage ru;
  gdouble secs = elapsed_s (l);
  g_autofree gchar *bytes = NULL, *rss = NULL, *speed = NULL;
  guint64 total_t, total_b;

  getrusage (RUSAGE_SELF, &ru);
  g_mutex_lock (&l->lock);
  get_totals (l, &total_t, &total_b);
  bytes = format_size (l->done_bytes);
  g_mutex_unlock (&l->lock);
  rss = format_size ((guint64) ru.ru_maxrss * 1024);

  out ("%s: %" G_GUINT64_FORMAT " tensors", l->exit_code == 0 ? "Done" :
      l->exit_code == EXIT_INTERRUPTED ? "Interrupted" : "Failed",
      l->done_tensors);
  if (total_t)
    out (" of %" G_GUINT64_FORMAT, total_t);
  out (", %s", bytes);
  if (l->done_bytes >= 1024)
    out (" (%" G_GUINT64_FORMAT " bytes)", l->done_bytes);
  speed = format_rate (secs > 0 ? (gdouble) l->done_bytes / secs : 0.0);
  out (" in %.3f s: %s, peak RSS %s\n", secs, speed, rss);
  /* the iterator walks a bin from its last child: print in order */
  for (guint i = stats->len; i > 0; i--)
    out ("%s\n", (gchar *) g_ptr_array_index (stats, i - 1));
}

static const CommandHelp help = {
  "launch", "PIPELINE-DESCRIPTION",
  "Run a pipeline described as for gst-launch-1.0, with a live progress bar "
      "on stderr when it is a terminal (tensors done / total, bytes, GB/s, "
      "ETA; the totals come from uelsrc's uel-header message), a plain "
      "progress line every --interval seconds when it is not, and a closing "
      "summary: time, GB/s, peak RSS and each uel element's stats.\n\n"
      "Ctrl-C stops cleanly (EOS, then NULL; a second Ctrl-C at once).  "
      "Exit status: 0 at the end of the stream, 1 with the error message on "
      "an error, 130 when interrupted.",
  "Example:\n  gst-uel launch uelsrc location=model.safetensors ! uelqueue "
      "! fakesink"
};

gint
cmd_launch (gint argc, gchar ** argv)
{
  gboolean quiet = FALSE, messages = FALSE;
  gdouble interval = 2.0;
  GOptionEntry entries[] = {
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet,
        "Print nothing but errors: no progress, no summary", NULL},
    {"messages", 'm', 0, G_OPTION_ARG_NONE, &messages,
        "Print the elements' messages (the uel-header, decoded "
          "dictionaries…)", NULL},
    {"interval", 'i', 0, G_OPTION_ARG_DOUBLE, &interval,
          "Seconds between progress lines when stderr is not a terminal "
          "(default 2)", "SECONDS"},
    {NULL}
  };
  Launch l = { 0, };
  GError *err = NULL;
  GstBus *bus;
  guint tick, sigint;
  GstStateChangeReturn ret;
  GPtrArray *stats;

  if (!parse_options (&help, entries, &argc, &argv))
    return EXIT_USAGE;
  if (argc < 2) {
    errout ("gst-uel launch: give a pipeline (see --help)\n");
    return EXIT_USAGE;
  }
  if (interval <= 0) {
    errout ("gst-uel launch: --interval must be positive\n");
    return EXIT_USAGE;
  }

  l.pipeline = gst_parse_launchv ((const gchar **) argv + 1, &err);
  if (!l.pipeline) {
    errout ("gst-uel launch: could not construct the pipeline: %s\n",
        err ? err->message : "(unknown error)");
    g_clear_error (&err);
    return 1;
  }
  if (err) {
    /* a recoverable error: an element or property that does not exist */
    errout ("gst-uel launch: could not construct the pipeline: %s\n",
        err->message);
    g_clear_error (&err);
    gst_object_unref (l.pipeline);
    return 1;
  }
  if (!GST_IS_PIPELINE (l.pipeline)) {
    GstElement *p = gst_pipeline_new (NULL);
    gst_bin_add (GST_BIN (p), l.pipeline);
    l.pipeline = p;
  }
  gst_object_ref_sink (l.pipeline);

  l.quiet = quiet;
  l.messages = messages;
  l.tty = isatty (STDERR_FILENO);
  l.loop = g_main_loop_new (NULL, FALSE);
  g_mutex_init (&l.lock);
  l.totals = g_hash_table_new_full (g_direct_hash, g_direct_equal,
      gst_object_unref, g_free);
  l.seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  watch_sinks (&l);

  bus = gst_element_get_bus (l.pipeline);
  gst_bus_add_watch (bus, on_bus_message, &l);
  tick = l.tty ? g_timeout_add (100, on_progress_tick, &l) :
      g_timeout_add ((guint) (interval * 1000), on_progress_tick, &l);
  sigint = g_unix_signal_add (SIGINT, on_sigint, &l);

  l.t_start = g_get_monotonic_time ();
  ret = gst_element_set_state (l.pipeline, GST_STATE_PLAYING);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);

    if (msg) {
      print_error_message (&l, msg, FALSE);
      gst_message_unref (msg);
    } else {
      errout ("ERROR: the pipeline does not want to play\n");
    }
    l.exit_code = 1;
    l.t_end = g_get_monotonic_time ();
  } else {
    g_main_loop_run (l.loop);
  }
  if (!l.t_end)
    l.t_end = g_get_monotonic_time ();

  g_source_remove (tick);
  g_source_remove (sigint);
  clear_progress (&l);
  stats = collect_stats (&l);
  gst_element_set_state (l.pipeline, GST_STATE_NULL);
  if (l.eos_thread)
    g_thread_join (l.eos_thread);
  if (!l.quiet)
    print_summary (&l, stats);
  g_ptr_array_unref (stats);

  gst_bus_remove_watch (bus);
  gst_object_unref (bus);
  gst_object_unref (l.pipeline);
  g_main_loop_unref (l.loop);
  g_hash_table_unref (l.totals);
  g_hash_table_unref (l.seen);
  g_mutex_clear (&l.lock);
  return l.exit_code;
}
