/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * bench-loader: reads every tensor of a file through the UelLoader API and
 * prints one line of key=value pairs, like bench-pipeline.
 *
 *   standard   uel_loader_new (low_memory=FALSE) reads every tensor; then
 *              get_tensor + mark_processed for each key (the seed's
 *              standard mode)
 *   lowmem     uel_loader_new (low_memory=TRUE); get_tensor, unref and
 *              mark_processed for each key (the seed's get_tensor loop)
 *   stream     uel_loader_async_stream (all keys, --batch, --prefetch,
 *              --pin) until the end; each batch is freed when it arrives
 *
 * The clock runs to the last tensor from uel_loader_new () in standard
 * mode (which reads every tensor there) and from the return of
 * uel_loader_new () otherwise (header parsed, nothing read: what the raw
 * limits leave out of their time too); `total_s` always from before
 * uel_loader_new ().
 */

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <gst/gst.h>
#include <gst-uel/uel.h>

int
main (int argc, char **argv)
{
  gint batch = 8, prefetch = 2;
  gboolean pin = FALSE;
  gchar *label = NULL;
  GOptionEntry entries[] = {
    {"batch", 0, 0, G_OPTION_ARG_INT, &batch,
        "stream: tensors per batch (default 8)", "N"},
    {"prefetch", 0, 0, G_OPTION_ARG_INT, &prefetch,
        "stream: batches read ahead (default 2)", "N"},
    {"pin", 0, 0, G_OPTION_ARG_NONE, &pin, "stream: pin_memory", NULL},
    {"label", 'l', 0, G_OPTION_ARG_STRING, &label,
        "A name printed first on the result line", "NAME"},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("MODE FILE");
  GError *err = NULL;
  UelLoader *loader;
  const gchar *mode, *path;
  guint64 bytes = 0, tensors = 0, peak_live = 0;
  gint64 t0, t_start, t1;
  struct rusage ru;
  gdouble secs;

  g_option_context_set_summary (ctx, "Modes: standard, lowmem, stream.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err)) {
    g_printerr ("bench-loader: %s\n", err->message);
    return 2;
  }
  if (argc != 3 || batch < 1 || prefetch < 1) {
    g_printerr ("bench-loader: give MODE and FILE (see --help)\n");
    return 2;
  }
  uel_init ();
  mode = argv[1];
  path = argv[2];
  if (strcmp (mode, "standard") && strcmp (mode, "lowmem")
      && strcmp (mode, "stream")) {
    g_printerr ("bench-loader: unknown mode '%s'\n", mode);
    return 2;
  }

  t0 = g_get_monotonic_time ();
  loader = uel_loader_new (path, strcmp (mode, "standard") != 0, &err);
  if (!loader)
    goto failed;
  t_start = strcmp (mode, "standard") == 0 ? t0 : g_get_monotonic_time ();

  if (strcmp (mode, "stream") == 0) {
    UelTensorStream *stream = uel_loader_async_stream (loader, NULL,
        (guint) batch, (guint) prefetch, pin, &err);
    UelTensorStreamStats st;
    GPtrArray *b;

    if (!stream)
      goto failed;
    while ((b = uel_tensor_stream_next (stream, &err))) {
      for (guint i = 0; i < b->len; i++)
        bytes += gst_buffer_get_size (g_ptr_array_index (b, i));
      tensors += b->len;
      g_ptr_array_unref (b);
    }
    if (err)
      goto failed;
    uel_tensor_stream_get_stats (stream, &st);
    peak_live = st.peak_live_bytes;
    g_object_unref (stream);
  } else {
    gchar **keys = uel_loader_keys (loader);

    for (guint i = 0; keys[i]; i++) {
      GstBuffer *buf = uel_loader_get_tensor (loader, keys[i], &err);

      if (!buf) {
        g_strfreev (keys);
        goto failed;
      }
      bytes += gst_buffer_get_size (buf);
      tensors++;
      gst_buffer_unref (buf);
      uel_loader_mark_processed (loader, keys[i]);
    }
    g_strfreev (keys);
  }
  t1 = g_get_monotonic_time ();
  g_object_unref (loader);

  secs = (t1 - t_start) / 1e6;
  getrusage (RUSAGE_SELF, &ru);
  g_print ("bench-loader label=%s ok=1 mode=%s bytes=%" G_GUINT64_FORMAT
      " tensors=%" G_GUINT64_FORMAT " seconds=%.6f total_s=%.6f gbps=%.4f"
      " tensors_per_s=%.1f maxrss_kb=%ld minflt=%ld majflt=%ld"
      " utime_s=%.3f stime_s=%.3f peak_live_bytes=%" G_GUINT64_FORMAT
      " batch=%d prefetch=%d pin=%d\n",
      label ? label : "-", mode, bytes, tensors, secs, (t1 - t0) / 1e6,
      secs > 0 ? bytes / secs / 1e9 : 0.0, secs > 0 ? tensors / secs : 0.0,
      ru.ru_maxrss, ru.ru_minflt, ru.ru_majflt,
      ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
      ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, peak_live, batch,
      prefetch, pin);
  g_free (label);
  return 0;

failed:
  g_printerr ("bench-loader: %s\n", err->message);
  g_clear_error (&err);
  return 1;
}
