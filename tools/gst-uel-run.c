/* gst-uel: running a pipeline with progress, a closing summary and
 * Ctrl-C handling, for the commands that run one (launch, convert)
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "gst-uel-run.h"

#include <glib-unix.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gst-uel/uel.h>

struct _Run
{
  GMainLoop *loop;
  GstElement *pipeline;
  gboolean quiet;
  gboolean tty;
  gboolean messages;
  gdouble interval;
  RunInterrupt interrupt;
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

  GPtrArray *stats;             /* lines of the summary, from collect_stats */
};

static gdouble
elapsed_s (Run * run)
{
  gint64 end = run->t_end ? run->t_end : g_get_monotonic_time ();

  return run->t_start ? (gdouble) (end - run->t_start) / 1e6 : 0.0;
}

static void
get_totals (Run * run, guint64 * tensors, guint64 * bytes)
{
  GHashTableIter it;
  gpointer v;

  *tensors = *bytes = 0;
  g_hash_table_iter_init (&it, run->totals);
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
progress_text (Run * run, gboolean bar)
{
  guint64 total_t, total_b, done_t, done_b;
  gdouble secs = elapsed_s (run), rate, frac;
  g_autofree gchar *done_sz = NULL, *total_sz = NULL, *eta = NULL;
  g_autofree gchar *speed = NULL;
  GString *s = g_string_new (NULL);

  g_mutex_lock (&run->lock);
  get_totals (run, &total_t, &total_b);
  done_t = run->done_tensors;
  done_b = run->done_bytes;
  g_mutex_unlock (&run->lock);

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
clear_progress (Run * run)
{
  if (run->tty && !run->quiet)
    errout ("\r\033[K");
}

static gboolean
on_progress_tick (gpointer data)
{
  Run *run = data;
  g_autofree gchar *text = NULL;

  if (run->quiet || !run->t_start)
    return G_SOURCE_CONTINUE;
  text = progress_text (run, run->tty);
  if (run->tty)
    errout ("\r\033[K%s", text);
  else
    errout ("progress: %s\n", text);
  return G_SOURCE_CONTINUE;
}

/* counts the tensor data reaching a sink, once per tensor chunk whatever
 * the number of sinks (a tee) */
static void
count_buffer (Run * run, GstBuffer * buf)
{
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
  gsize size = gst_buffer_get_size (buf);
  gchar *key;

  g_mutex_lock (&run->lock);
  run->done_buffers++;
  if (!meta) {
    run->done_bytes += size;
    g_mutex_unlock (&run->lock);
    return;
  }
  key = g_strdup_printf ("%p:%u:%" G_GUINT64_FORMAT, meta->header,
      meta->tensor_index, meta->chunk_offset);
  if (g_hash_table_add (run->seen, key)) {
    const UelTensorInfo *info = uel_tensor_meta_get_tensor_info (meta);

    /* in the file's bytes, also where an element converted the dtype */
    if (meta->n_bytes)
      run->done_bytes += (guint64) ((gdouble) size * (gdouble) info->n_bytes /
          (gdouble) meta->n_bytes);
    if (meta->last_chunk)
      run->done_tensors++;
  }
  g_mutex_unlock (&run->lock);
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
watch_sinks (Run * run)
{
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (run->pipeline));
  GValue v = G_VALUE_INIT;

  while (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&v);
    GList *p;

    if (!GST_IS_BIN (e) && GST_OBJECT_FLAG_IS_SET (e, GST_ELEMENT_FLAG_SINK)) {
      GST_OBJECT_LOCK (e);
      for (p = e->sinkpads; p; p = p->next)
        gst_pad_add_probe (p->data, GST_PAD_PROBE_TYPE_BUFFER |
            GST_PAD_PROBE_TYPE_BUFFER_LIST, sink_probe, run, NULL);
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
  Run *run = data;

  run->n_interrupts++;
  clear_progress (run);
  if (run->n_interrupts == 1 && run->interrupt == RUN_INTERRUPT_DRAIN) {
    errout ("Interrupt: stopping the pipeline (EOS, then NULL); press "
        "Ctrl-C again to stop at once\n");
    run->exit_code = EXIT_INTERRUPTED;
    run->eos_thread = g_thread_new ("gst-uel-eos", send_eos,
        gst_object_ref (run->pipeline));
  } else if (run->n_interrupts == 1) {
    /* no EOS: a sink that finishes its output at EOS must not */
    errout ("Interrupt: stopping the pipeline at once (NULL, no EOS)\n");
    run->exit_code = EXIT_INTERRUPTED;
    g_main_loop_quit (run->loop);
  } else {
    errout ("Interrupt: stopping at once\n");
    g_main_loop_quit (run->loop);
  }
  return G_SOURCE_CONTINUE;
}

static void
print_error_message (Run * run, GstMessage * msg, gboolean warning)
{
  GError *err = NULL;
  gchar *debug = NULL;
  g_autofree gchar *path = gst_object_get_path_string (msg->src);

  if (warning)
    gst_message_parse_warning (msg, &err, &debug);
  else
    gst_message_parse_error (msg, &err, &debug);
  clear_progress (run);
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
print_element_message (Run * run, GstMessage * msg, const GstStructure * s)
{
  const gchar *name = NULL, *json = NULL;
  UelHeader *header = NULL;

  clear_progress (run);
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
  Run *run = data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_EOS:
      run->t_end = g_get_monotonic_time ();
      g_main_loop_quit (run->loop);
      break;
    case GST_MESSAGE_ERROR:
      run->t_end = g_get_monotonic_time ();
      print_error_message (run, msg, FALSE);
      run->exit_code = 1;
      g_main_loop_quit (run->loop);
      break;
    case GST_MESSAGE_WARNING:
      print_error_message (run, msg, TRUE);
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
        g_mutex_lock (&run->lock);
        g_hash_table_insert (run->totals, gst_object_ref (msg->src), v);
        g_mutex_unlock (&run->lock);
      }
      if (run->messages && s && !run->quiet)
        print_element_message (run, msg, s);
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
collect_stats (Run * run)
{
  GstIterator *it = gst_bin_iterate_recurse (GST_BIN (run->pipeline));
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
print_summary (Run * run)
{
  struct rusage ru;
  gdouble secs = elapsed_s (run);
  g_autofree gchar *bytes = NULL, *rss = NULL, *speed = NULL;
  guint64 total_t, total_b;

  getrusage (RUSAGE_SELF, &ru);
  g_mutex_lock (&run->lock);
  get_totals (run, &total_t, &total_b);
  bytes = format_size (run->done_bytes);
  g_mutex_unlock (&run->lock);
  rss = format_size ((guint64) ru.ru_maxrss * 1024);

  out ("%s: %" G_GUINT64_FORMAT " tensors", run->exit_code == 0 ? "Done" :
      run->exit_code == EXIT_INTERRUPTED ? "Interrupted" : "Failed",
      run->done_tensors);
  if (total_t)
    out (" of %" G_GUINT64_FORMAT, total_t);
  out (", %s", bytes);
  if (run->done_bytes >= 1024)
    out (" (%" G_GUINT64_FORMAT " bytes)", run->done_bytes);
  speed = format_rate (secs > 0 ? (gdouble) run->done_bytes / secs : 0.0);
  out (" in %.3f s: %s, peak RSS %s\n", secs, speed, rss);
  /* the iterator walks a bin from its last child: print in order */
  for (guint i = run->stats->len; i > 0; i--)
    out ("%s\n", (gchar *) g_ptr_array_index (run->stats, i - 1));
}

/* takes @pipeline (floating or not); run_pipeline() then run_finish() */
Run *
run_new (GstElement * pipeline, const RunOptions * options)
{
  Run *run = g_new0 (Run, 1);

  run->pipeline = gst_object_ref_sink (pipeline);
  run->quiet = options->quiet;
  run->messages = options->messages;
  run->interval = options->interval > 0 ? options->interval : 2.0;
  run->interrupt = options->interrupt;
  run->tty = isatty (STDERR_FILENO);
  run->loop = g_main_loop_new (NULL, FALSE);
  g_mutex_init (&run->lock);
  run->totals = g_hash_table_new_full (g_direct_hash, g_direct_equal,
      gst_object_unref, g_free);
  run->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return run;
}

/* Plays the pipeline until the end of the stream, an error or Ctrl-C,
 * with the progress on stderr, then reads the elements' stats and sets it
 * to NULL.  Returns the exit status: 0 at the end of the stream, 1 after
 * an error (its message printed), EXIT_INTERRUPTED after Ctrl-C. */
gint
run_pipeline (Run * run)
{
  GstBus *bus = gst_element_get_bus (run->pipeline);
  guint tick, sigint;

  watch_sinks (run);
  gst_bus_add_watch (bus, on_bus_message, run);
  tick = g_timeout_add (run->tty ? 100 : (guint) (run->interval * 1000),
      on_progress_tick, run);
  sigint = g_unix_signal_add (SIGINT, on_sigint, run);

  run->t_start = g_get_monotonic_time ();
  if (gst_element_set_state (run->pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);

    if (msg) {
      print_error_message (run, msg, FALSE);
      gst_message_unref (msg);
    } else {
      errout ("ERROR: the pipeline does not want to play\n");
    }
    run->exit_code = 1;
  } else {
    g_main_loop_run (run->loop);
  }
  if (!run->t_end)
    run->t_end = g_get_monotonic_time ();

  g_source_remove (tick);
  /* removed, the handler gives SIGINT back its default action, which
   * kills at once; in abort mode the sinks clean up as they stop (uelsink
   * removes its temporary file), so a Ctrl-C then waits for them */
  if (run->interrupt != RUN_INTERRUPT_ABORT)
    g_source_remove (sigint);
  clear_progress (run);
  run->stats = collect_stats (run);
  gst_element_set_state (run->pipeline, GST_STATE_NULL);
  if (run->interrupt == RUN_INTERRUPT_ABORT)
    g_source_remove (sigint);
  if (run->eos_thread)
    g_thread_join (run->eos_thread);
  run->eos_thread = NULL;
  gst_bus_remove_watch (bus);
  gst_object_unref (bus);
  return run->exit_code;
}

/* what the summary calls the end: a command that finds the run finished
 * after all (its output complete) says so */
void
run_set_exit_code (Run * run, gint exit_code)
{
  run->exit_code = exit_code;
}

/* prints the summary (unless quiet), frees the run and returns its exit
 * status */
gint
run_finish (Run * run)
{
  gint exit_code = run->exit_code;

  if (!run->quiet && run->stats)
    print_summary (run);
  if (run->stats)
    g_ptr_array_unref (run->stats);
  gst_object_unref (run->pipeline);
  g_main_loop_unref (run->loop);
  g_hash_table_unref (run->totals);
  g_hash_table_unref (run->seen);
  g_mutex_clear (&run->lock);
  g_free (run);
  return exit_code;
}
