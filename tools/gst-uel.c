/* gst-uel: the command-line tool
 * SPDX-License-Identifier: MIT
 *
 *   gst-uel inspect [--json] [--checksum] FILE   the tensor table of a file
 *   gst-uel launch [--quiet] PIPELINE...      run a pipeline, with progress
 *   gst-uel make-model [OPTIONS] OUT          write a Llama-like sample model
 *
 * Exit status: 0 on success, 1 when the file is invalid or the pipeline
 * fails, 2 for a usage error, 130 when launch was interrupted (Ctrl-C).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gst/gst.h>
#include <gst-uel/uel.h>
#include <json-glib/json-glib.h>

#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130

/* g_print() would convert to the locale's charset, and a C locale turns
 * every non-ASCII character of a tensor name into an escape: names, paths
 * and messages are written as their bytes. */
static void out (const gchar * format, ...) G_GNUC_PRINTF (1, 2);
static void errout (const gchar * format, ...) G_GNUC_PRINTF (1, 2);

static void
out (const gchar * format, ...)
{
  va_list args;

  va_start (args, format);
  vfprintf (stdout, format, args);
  va_end (args);
}

static void
errout (const gchar * format, ...)
{
  va_list args;

  va_start (args, format);
  vfprintf (stderr, format, args);
  va_end (args);
  fflush (stderr);
}

/* Names, metadata and dictionaries come from the file: written as they
 * are, an escape sequence or a newline in them would drive the terminal
 * or fake lines of output.  Control characters (C0, DEL and C1) become
 * \xNN and a backslash \\, so that what is shown is unambiguous; the rest
 * of the UTF-8 is kept. */
static gchar *
printable (const gchar * s)
{
  GString *out = g_string_sized_new (strlen (s));
  const gchar *p = s;

  while (*p) {
    gunichar c = g_utf8_get_char_validated (p, -1);

    if (c == (gunichar) - 1 || c == (gunichar) - 2) {
      /* not UTF-8 (a path can be anything): the byte, escaped */
      g_string_append_printf (out, "\\x%02x", (guchar) * p);
      p++;
      continue;
    }
    if (c < 0x20 || (c >= 0x7f && c < 0xa0))
      g_string_append_printf (out, "\\x%02x", c);
    else if (c == '\\')
      g_string_append (out, "\\\\");
    else
      g_string_append_unichar (out, c);
    p = g_utf8_next_char (p);
  }
  return g_string_free (out, FALSE);
}

/* JSON text from the file, kept valid JSON and made safe on a terminal:
 * the control characters that JSON allows raw in strings (DEL, C1) become
 * \u escapes; backslashes are the JSON's own and stay. */
static gchar *
printable_json (const gchar * json)
{
  GString *out = g_string_sized_new (strlen (json));
  const gchar *p = json;

  while (*p) {
    gunichar c = g_utf8_get_char_validated (p, -1);

    if (c == (gunichar) - 1 || c == (gunichar) - 2) {
      g_string_append (out, "\\ufffd");
      p++;
      continue;
    }
    if (c < 0x20 || (c >= 0x7f && c < 0xa0))
      g_string_append_printf (out, "\\u%04x", c);
    else
      g_string_append_unichar (out, c);
    p = g_utf8_next_char (p);
  }
  return g_string_free (out, FALSE);
}

/* a size in IEC units with a plain space (g_format_size() puts a
 * no-break space there) */
static gchar *
format_size (guint64 bytes)
{
  static const gchar *units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  gdouble v = (gdouble) bytes;
  guint u = 0;

  if (bytes < 1024)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " bytes", bytes);
  v /= 1024;
  while (v >= 1024 && u + 1 < G_N_ELEMENTS (units)) {
    v /= 1024;
    u++;
  }
  return g_strdup_printf ("%.1f %s", v, units[u]);
}

/* Parses a command's options, GStreamer's own among them (--gst-debug…),
 * and initializes GStreamer.  FALSE: a usage error was printed. */
static gboolean
parse_options (GOptionContext * ctx, const gchar * command, gint * argc,
    gchar *** argv)
{
  GError *err = NULL;

  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, argc, argv, &err)) {
    errout ("gst-uel %s: %s\n", command, err->message);
    g_error_free (err);
    return FALSE;
  }
  if (!gst_is_initialized ())
    gst_init (NULL, NULL);
  uel_init ();
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* inspect */

/* a string as a JSON string literal: names and metadata are UTF-8 (the
 * header was validated); paths may not be, and are shown for display.
 * Every control character is escaped, C1 (U+0080 to U+009F) too, so that
 * the text is safe on a terminal. */
static void
json_string (GString * out, const gchar * s)
{
  g_string_append_c (out, '"');
  for (const guchar * p = (const guchar *) s; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf (out, "\\%c", *p);
    else if (*p == '\n')
      g_string_append (out, "\\n");
    else if (*p == '\t')
      g_string_append (out, "\\t");
    else if (*p < 0x20 || *p == 0x7f)
      g_string_append_printf (out, "\\u%04x", *p);
    else if (*p == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)
      g_string_append_printf (out, "\\u%04x", *++p);
    else
      g_string_append_c (out, (gchar) * p);
  }
  g_string_append_c (out, '"');
}

static void
json_path (GString * out, const gchar * path)
{
  g_autofree gchar *display = g_filename_display_name (path);

  json_string (out, display);
}

static gchar *
shape_string (const UelTensorInfo * t)
{
  GString *s = g_string_new ("[");

  for (guint d = 0; d < t->n_dims; d++)
    g_string_append_printf (s, "%s%" G_GUINT64_FORMAT, d ? ", " : "",
        t->shape[d]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static gint
strcmp_ptr (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

/* the metadata's keys, sorted, so that the output is stable */
static const gchar **
sorted_keys (GHashTable * table)
{
  guint n;
  const gchar **keys = (const gchar **) g_hash_table_get_keys_as_array (table,
      &n);

  qsort (keys, n, sizeof (gchar *), strcmp_ptr);
  return keys;
}

/* The SHA-256 of each tensor's bytes, read through the library's reader in
 * chunks of 4 MiB: memory stays bounded whatever the tensor's size, shards
 * are opened one at a time, and a file that changes under the read is an
 * error, not a checksum of mixed bytes. */
static gchar **
checksums (UelHeader * h, GError ** error)
{
  guint n = uel_header_get_n_tensors (h);
  g_autoptr (UelReader) reader = uel_reader_new (h);
  g_autoptr (GChecksum) sum = NULL;
  gchar **sums = g_new0 (gchar *, n + 1);
  GError *err = NULL;
  GstBuffer *buf;

  uel_reader_set_chunk_size (reader, 4 << 20);
  uel_reader_set_io_threads (reader, 1);
  uel_reader_set_read_ahead (reader, 0);
  if (!uel_reader_start (reader, &err))
    goto failed;
  while ((buf = uel_reader_next (reader, &err))) {
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    GstMapInfo map;

    if (!sum)
      sum = g_checksum_new (G_CHECKSUM_SHA256);
    if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
      g_set_error (&err, UEL_ERROR, UEL_ERROR_IO, "tensor '%s': cannot map "
          "its memory", uel_tensor_meta_get_name (meta));
      gst_buffer_unref (buf);
      goto failed;
    }
    g_checksum_update (sum, map.data, map.size);
    gst_buffer_unmap (buf, &map);
    if (meta->last_chunk) {
      sums[meta->index] = g_strdup (g_checksum_get_string (sum));
      g_clear_pointer (&sum, g_checksum_free);
    }
    gst_buffer_unref (buf);
  }
  if (!err)
    return sums;

failed:
  g_propagate_error (error, err);
  g_strfreev (sums);
  return NULL;
}

static void
print_json (UelHeader * h, gchar ** sums)
{
  g_autoptr (GString) o = g_string_new ("{\n  \"location\": ");
  g_autofree const gchar **keys = sorted_keys (uel_header_get_metadata (h));
  guint n = uel_header_get_n_tensors (h);
  gboolean sharded = uel_header_is_sharded (h);

  json_path (o, uel_header_get_location (h));
  g_string_append_printf (o, ",\n  \"valid\": true,\n  \"sharded\": %s,\n"
      "  \"n_tensors\": %u,\n  \"total_bytes\": %" G_GUINT64_FORMAT ",\n"
      "  \"files\": [", sharded ? "true" : "false", n,
      uel_header_get_total_bytes (h));
  for (guint f = 0; f < uel_header_get_n_files (h); f++) {
    g_string_append_printf (o, "%s\n    {\"path\": ", f ? "," : "");
    json_path (o, uel_header_get_file_path (h, f));
    g_string_append_printf (o, ", \"size\": %" G_GUINT64_FORMAT ", "
        "\"data_offset\": %" G_GUINT64_FORMAT "}",
        uel_header_get_file_size (h, f), uel_header_get_data_offset (h, f));
  }
  g_string_append (o, "\n  ],\n  \"metadata\": {");
  for (guint k = 0; keys[k]; k++) {
    g_string_append_printf (o, "%s\n    ", k ? "," : "");
    json_string (o, keys[k]);
    g_string_append (o, ": ");
    json_string (o, g_hash_table_lookup (uel_header_get_metadata (h),
            keys[k]));
  }
  g_string_append (o, keys[0] ? "\n  },\n" : "},\n");
  g_string_append (o, "  \"tensors\": [");
  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);
    const gchar *file = uel_header_get_file_path (h, t->file_index);

    g_string_append_printf (o, "%s\n    {\"name\": ", i ? "," : "");
    json_string (o, t->name);
    g_string_append_printf (o, ", \"dtype\": \"%s\", \"shape\": [",
        uel_dtype_to_string (t->dtype));
    for (guint d = 0; d < t->n_dims; d++)
      g_string_append_printf (o, "%s%" G_GUINT64_FORMAT, d ? ", " : "",
          t->shape[d]);
    g_string_append_printf (o, "], \"bytes\": %" G_GUINT64_FORMAT ", "
        "\"offset\": %" G_GUINT64_FORMAT ", \"data_offsets\": [%"
        G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT "], \"file\": ",
        t->n_bytes, t->file_offset, t->data_begin,
        t->data_begin + t->n_bytes);
    json_path (o, file);
    if (sharded) {
      g_autofree gchar *base = g_path_get_basename (file);

      g_string_append (o, ", \"shard\": ");
      json_path (o, base);
    }
    if (sums)
      g_string_append_printf (o, ", \"sha256\": \"%s\"", sums[i]);
    g_string_append_c (o, '}');
  }
  g_string_append (o, n ? "\n  ]\n}\n" : "]\n}\n");
  fputs (o->str, stdout);
}

static void
print_table (UelHeader * h, gchar ** sums)
{
  guint n = uel_header_get_n_tensors (h);
  gboolean sharded = uel_header_is_sharded (h);
  g_autofree const gchar **keys = sorted_keys (uel_header_get_metadata (h));
  g_auto (GStrv) shapes = g_new0 (gchar *, n + 1);
  g_auto (GStrv) names = g_new0 (gchar *, n + 1);
  guint64 by_dtype_bytes[UEL_DTYPE_N_TYPES] = { 0, };
  guint by_dtype_n[UEL_DTYPE_N_TYPES] = { 0, };
  gint name_w = 4, shape_w = 5;
  g_autofree gchar *total = NULL;
  GString *dtypes = g_string_new (NULL);

  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);

    shapes[i] = shape_string (t);
    names[i] = printable (t->name);
    name_w = MAX (name_w, (gint) g_utf8_strlen (names[i], -1));
    shape_w = MAX (shape_w, (gint) strlen (shapes[i]));
    by_dtype_n[t->dtype]++;
    by_dtype_bytes[t->dtype] += t->n_bytes;
  }
  name_w = MIN (name_w, 64);

  out ("%-*s  %-11s  %-*s  %14s  %14s%s%s\n", name_w, "NAME", "DTYPE",
      shape_w, "SHAPE", "BYTES", "OFFSET", sharded ? "  SHARD" : "",
      sums ? (sharded ? "  SHA256" : "  SHA256") : "");
  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);
    g_autofree gchar *shard = sharded ?
        g_path_get_basename (uel_header_get_file_path (h, t->file_index)) :
        NULL;
    /* pad by characters, not bytes, so that UTF-8 names line up */
    gint pad = MAX (name_w - (gint) g_utf8_strlen (names[i], -1), 0);

    out ("%s%*s  %-11s  %-*s  %14" G_GUINT64_FORMAT "  %14"
        G_GUINT64_FORMAT "%s%s%s%s\n", names[i], pad, "",
        uel_dtype_to_string (t->dtype), shape_w, shapes[i], t->n_bytes,
        t->file_offset, shard ? "  " : "", shard ? shard : "",
        sums ? "  " : "", sums ? sums[i] : "");
  }

  out ("\nmetadata:%s\n", keys[0] ? "" : " none");
  for (guint k = 0; keys[k]; k++) {
    g_autofree gchar *key = printable (keys[k]);
    g_autofree gchar *value = printable (g_hash_table_lookup
        (uel_header_get_metadata (h), keys[k]));

    out ("  %s: %s\n", key, value);
  }

  for (guint d = 0; d < UEL_DTYPE_N_TYPES; d++) {
    g_autofree gchar *sz = NULL;

    if (!by_dtype_n[d])
      continue;
    sz = format_size (by_dtype_bytes[d]);
    g_string_append_printf (dtypes, "%s%s %u (%s)", dtypes->len ? ", " : "",
        uel_dtype_to_string (d), by_dtype_n[d], sz);
  }
  total = format_size (uel_header_get_total_bytes (h));
  out ("\ntotal: %u tensors, %" G_GUINT64_FORMAT " bytes (%s)%s%s\n", n,
      uel_header_get_total_bytes (h), total, dtypes->len ? "; " : "",
      dtypes->str);
  g_string_free (dtypes, TRUE);
  out ("%s: valid safetensors%s, %u tensors in %u file%s%s\n",
      uel_header_get_location (h), sharded ? " checkpoint" : " file", n,
      uel_header_get_n_files (h), uel_header_get_n_files (h) == 1 ? "" : "s",
      sums ? ", every tensor read and checksummed" : "");
}

static gint
cmd_inspect (gint argc, gchar ** argv)
{
  gboolean json = FALSE, checksum = FALSE;
  GOptionEntry entries[] = {
    {"json", 'j', 0, G_OPTION_ARG_NONE, &json,
        "Print the table as JSON, for machines", NULL},
    {"checksum", 'c', 0, G_OPTION_ARG_NONE, &checksum,
          "Read every tensor and add the SHA-256 of its bytes (streamed, in "
          "4 MiB blocks)", NULL},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("FILE");
  g_autoptr (UelHeader) h = NULL;
  g_auto (GStrv) sums = NULL;
  GError *err = NULL;

  g_option_context_set_summary (ctx, "Validate the header of a "
      ".safetensors file, or of a sharded checkpoint's *.index.json and all "
      "its shards, and show its tensor table (name, dtype, shape, bytes, "
      "offset, shard), its __metadata__, the totals and a verdict.\n\n"
      "An invalid file prints the validation message alone on stderr and "
      "exits with status 1.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!parse_options (ctx, "inspect", &argc, &argv))
    return EXIT_USAGE;
  if (argc != 2) {
    errout ("gst-uel inspect: give one FILE (see --help)\n");
    return EXIT_USAGE;
  }

  h = uel_header_open (argv[1], &err);
  if (h && checksum)
    sums = checksums (h, &err);
  if (!h || (checksum && !sums)) {
    errout ("%s\n", err->message);
    g_error_free (err);
    return 1;
  }
  if (json)
    print_json (h, sums);
  else
    print_table (h, sums);
  return 0;
}

/* ------------------------------------------------------------------ */
/* launch */

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
      g_autofree const gchar **keys = sorted_keys (table);
      GString *m = g_string_new ("{");

      for (guint k = 0; keys[k]; k++) {
        g_string_append (m, k ? ", " : "");
        json_string (m, keys[k]);
        g_string_append (m, ": ");
        json_string (m, g_hash_table_lookup (table, keys[k]));
      }
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

  g_string_append_printf (s, "%s%s=%s", s->len ? ", " : "",
      g_quark_to_string (field), v ? v : "?");
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

static gint
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
  g_autoptr (GOptionContext) ctx =
      g_option_context_new ("PIPELINE-DESCRIPTION");
  Launch l = { 0, };
  GError *err = NULL;
  GstBus *bus;
  guint tick, sigint;
  GstStateChangeReturn ret;
  GPtrArray *stats;

  g_option_context_set_summary (ctx, "Run a pipeline described as for "
      "gst-launch-1.0, with a live progress bar on stderr when it is a "
      "terminal (tensors done / total, bytes, GB/s, ETA; the totals come "
      "from uelsrc's uel-header message), a plain progress line every "
      "--interval seconds when it is not, and a closing summary: time, "
      "GB/s, peak RSS and each uel element's stats.\n\n"
      "Ctrl-C stops cleanly (EOS, then NULL; a second Ctrl-C at once).  "
      "Exit status: 0 at the end of the stream, 1 with the error message "
      "on an error, 130 when interrupted.");
  g_option_context_set_description (ctx, "Example:\n  gst-uel launch "
      "uelsrc location=model.safetensors ! uelqueue ! fakesink");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!parse_options (ctx, "launch", &argc, &argv))
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

/* ------------------------------------------------------------------ */
/* make-model */

typedef struct
{
  gchar *name;
  const gchar *dtype;
  guint64 dims[2];
  guint n_dims;
  guint64 bytes;
  gchar *content;               /* for U8 JSON tensors */
} Entry;

static void
entry_clear (gpointer p)
{
  Entry *e = p;

  g_free (e->name);
  g_free (e->content);
}

static void
add (GArray * entries, const gchar * name, const gchar * dtype, guint64 d0,
    guint64 d1, guint elem)
{
  Entry e = { g_strdup (name), dtype, {d0, d1}, d1 ? 2 : 1, 0, NULL };

  e.bytes = d0 * (d1 ? d1 : 1) * elem;
  g_array_append_val (entries, e);
}

static void
add_json (GArray * entries, const gchar * name, gchar * json)
{
  Entry e = { g_strdup (name), "U8", {strlen (json), 0}, 1, strlen (json),
    json
  };
  g_array_append_val (entries, e);
}

/* xorshift64*: random bytes at memory speed, never all zeros */
static void
fill_random (guint8 * buf, gsize len, guint64 * state)
{
  guint64 x = *state;

  for (gsize i = 0; i + 8 <= len; i += 8) {
    guint64 r;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r = x * G_GUINT64_CONSTANT (2685821657736338717);
    memcpy (buf + i, &r, 8);
  }
  for (gsize i = len & ~(gsize) 7; i < len; i++)
    buf[i] = (guint8) (x >> (8 * (i & 7)));
  *state = x;
}

static gboolean
write_all (gint fd, const void *buf, gsize len, const gchar * path)
{
  const guint8 *p = buf;

  while (len > 0) {
    ssize_t w = write (fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      errout ("gst-uel make-model: %s: %s\n", path, g_strerror (errno));
      return FALSE;
    }
    p += w;
    len -= (gsize) w;
  }
  return TRUE;
}

static gint
cmd_make_model (gint argc, gchar ** argv)
{
  gint layers = 2, hidden = 256, vocab = 1024, inter = 688;
  gint small = 0;
  gchar *size_str = NULL;
  gboolean no_dicts = FALSE;
  guint64 seed = 1;
  GOptionEntry entries[] = {
    {"layers", 'l', 0, G_OPTION_ARG_INT, &layers,
        "Transformer layers (default 2)", "N"},
    {"hidden", 0, 0, G_OPTION_ARG_INT, &hidden,
        "Hidden size (default 256; Llama-7B: 4096)", "N"},
    {"vocab", 0, 0, G_OPTION_ARG_INT, &vocab,
        "Vocabulary size (default 1024; Llama: 32000)", "N"},
    {"intermediate", 0, 0, G_OPTION_ARG_INT, &inter,
        "MLP size (default 688; Llama-7B: 11008)", "N"},
    {"size", 's', 0, G_OPTION_ARG_STRING, &size_str,
        "Choose the number of layers to reach about this many bytes "
        "(suffixes K, M, G: powers of 1024)", "BYTES"},
    {"small-tensors", 0, 0, G_OPTION_ARG_INT, &small,
        "Instead of a model, write N tensors of 4-64 KiB", "N"},
    {"no-dicts", 0, 0, G_OPTION_ARG_NONE, &no_dicts,
        "Leave out the two U8 JSON dictionary tensors", NULL},
    {"seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Random seed", "N"},
    {NULL}
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("OUTPUT");
  g_autoptr (GArray) list = g_array_new (FALSE, TRUE, sizeof (Entry));
  g_autoptr (GString) header = g_string_new ("{\"__metadata__\":"
      "{\"format\":\"pt\",\"generator\":\"gst-uel make-model\"}");
  g_autofree guint8 *block = NULL;
  guint64 offset = 0, state, len_le;
  const gsize block_size = 16 << 20;
  gint fd;

  g_option_context_set_summary (ctx, "Write a Llama-like .safetensors "
      "model of random BF16 weights (embedding, per layer q/k/v/o, three "
      "MLP matrices and two norms, a final norm) with two U8 JSON "
      "dictionary tensors, or a file of many small tensors.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!parse_options (ctx, "make-model", &argc, &argv))
    return EXIT_USAGE;
  if (argc != 2 || layers < 0 || hidden <= 0 || vocab <= 0 || inter <= 0
      || small < 0) {
    errout ("gst-uel make-model: give one OUTPUT and positive sizes "
        "(see --help)\n");
    return EXIT_USAGE;
  }
  g_array_set_clear_func (list, entry_clear);
  state = seed * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15) | 1;

  if (size_str) {
    gchar *end;
    guint64 want = g_ascii_strtoull (size_str, &end, 10), per_layer, base;

    switch (g_ascii_toupper (*end)) {
      case 'G':
        want <<= 30;
        break;
      case 'M':
        want <<= 20;
        break;
      case 'K':
        want <<= 10;
        break;
      default:
        break;
    }
    per_layer = 2ull * hidden * (4ull * hidden + 3ull * inter + 2);
    base = 2ull * vocab * hidden + 2ull * hidden;
    layers = want > base ? (gint) MAX (1, (want - base + per_layer / 2) /
        per_layer) : 1;
  }

  if (small > 0) {
    for (gint i = 0; i < small; i++) {
      g_autofree gchar *name = g_strdup_printf ("small.%06d", i);
      guint64 kib = 4 + (guint64) (i * 7919) % 61;      /* 4..64 KiB */
      add (list, name, "F32", kib * 256, 0, 4);
    }
  } else {
    add (list, "model.embed_tokens.weight", "BF16", vocab, hidden, 2);
    for (gint l = 0; l < layers; l++) {
      static const gchar *attn[] = { "q_proj", "k_proj", "v_proj", "o_proj" };
      gchar name[128];

      for (guint a = 0; a < 4; a++) {
        g_snprintf (name, sizeof name, "model.layers.%d.self_attn.%s.weight",
            l, attn[a]);
        add (list, name, "BF16", hidden, hidden, 2);
      }
      g_snprintf (name, sizeof name, "model.layers.%d.mlp.gate_proj.weight",
          l);
      add (list, name, "BF16", inter, hidden, 2);
      g_snprintf (name, sizeof name, "model.layers.%d.mlp.up_proj.weight", l);
      add (list, name, "BF16", inter, hidden, 2);
      g_snprintf (name, sizeof name, "model.layers.%d.mlp.down_proj.weight",
          l);
      add (list, name, "BF16", hidden, inter, 2);
      g_snprintf (name, sizeof name,
          "model.layers.%d.input_layernorm.weight", l);
      add (list, name, "BF16", hidden, 0, 2);
      g_snprintf (name, sizeof name,
          "model.layers.%d.post_attention_layernorm.weight", l);
      add (list, name, "BF16", hidden, 0, 2);
    }
    add (list, "model.norm.weight", "BF16", hidden, 0, 2);
    if (!no_dicts) {
      /* written the way the seed's dict_to_tensor writes: json.dumps */
      add_json (list, "config", g_strdup_printf ("{\"model_type\": "
              "\"llama\", \"hidden_size\": %d, \"intermediate_size\": %d, "
              "\"num_hidden_layers\": %d, \"vocab_size\": %d, "
              "\"torch_dtype\": \"bfloat16\"}", hidden, inter, layers,
              vocab));
      add_json (list, "quantization", g_strdup ("{\"method\": \"none\", "
              "\"bits\": 16, \"note\": \"gst-uel sample \\u2713\"}"));
    }
  }

  for (guint i = 0; i < list->len; i++) {
    Entry *e = &g_array_index (list, Entry, i);

    g_string_append_printf (header, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
        e->name, e->dtype);
    for (guint d = 0; d < e->n_dims; d++)
      g_string_append_printf (header, "%s%" G_GUINT64_FORMAT, d ? "," : "",
          e->dims[d]);
    g_string_append_printf (header, "],\"data_offsets\":[%" G_GUINT64_FORMAT
        ",%" G_GUINT64_FORMAT "]}", offset, offset + e->bytes);
    offset += e->bytes;
  }
  g_string_append_c (header, '}');
  /* data section 8-byte aligned, as the Python writer does */
  while ((8 + header->len) % 8)
    g_string_append_c (header, ' ');

  fd = open (argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    errout ("gst-uel make-model: %s: %s\n", argv[1], g_strerror (errno));
    return 1;
  }
  len_le = GUINT64_TO_LE ((guint64) header->len);
  if (!write_all (fd, &len_le, 8, argv[1])
      || !write_all (fd, header->str, header->len, argv[1]))
    goto fail;

  block = g_malloc (block_size);
  for (guint i = 0; i < list->len; i++) {
    Entry *e = &g_array_index (list, Entry, i);
    guint64 left = e->bytes;

    if (e->content) {
      if (!write_all (fd, e->content, e->bytes, argv[1]))
        goto fail;
      continue;
    }
    while (left > 0) {
      gsize n = (gsize) MIN (left, (guint64) block_size);
      fill_random (block, n, &state);
      if (!write_all (fd, block, n, argv[1]))
        goto fail;
      left -= n;
    }
  }
  if (close (fd) != 0) {
    errout ("gst-uel make-model: %s: %s\n", argv[1], g_strerror (errno));
    return 1;
  }
  out ("%s: %u tensors, %" G_GUINT64_FORMAT " bytes of data (%d "
      "layers)\n", argv[1], list->len, offset, small ? 0 : layers);
  return 0;

fail:
  close (fd);
  return 1;
}

/* ------------------------------------------------------------------ */

static void
usage (void)
{
  out ("Usage: gst-uel COMMAND [OPTIONS] ARGS\n\n"
      "Commands:\n"
      "  inspect FILE          validate a file and show its tensor table\n"
      "  launch PIPELINE...    run a pipeline with a progress bar\n"
      "  make-model OUTPUT     write a Llama-like sample model\n\n"
      "Options:\n"
      "  -h, --help            show this help\n"
      "  --version             show the versions of gst-uel and GStreamer\n\n"
      "gst-uel COMMAND --help shows a command's options; GST_DEBUG and\n"
      "--gst-debug=... work as in every GStreamer program.\n");
}

int
main (int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "--version") == 0) {
    g_autofree gchar *gst = NULL;

    gst_init (NULL, NULL);
    gst = gst_version_string ();
    out ("gst-uel %s (%s)\n", PACKAGE_VERSION, gst);
    return 0;
  }
  if (argc < 2 || strcmp (argv[1], "--help") == 0
      || strcmp (argv[1], "-h") == 0) {
    usage ();
    return argc < 2 ? EXIT_USAGE : 0;
  }
  if (strcmp (argv[1], "inspect") == 0)
    return cmd_inspect (argc - 1, argv + 1);
  if (strcmp (argv[1], "launch") == 0)
    return cmd_launch (argc - 1, argv + 1);
  if (strcmp (argv[1], "make-model") == 0)
    return cmd_make_model (argc - 1, argv + 1);
  errout ("gst-uel: unknown command '%s'\n\n", argv[1]);
  usage ();
  return EXIT_USAGE;
}
