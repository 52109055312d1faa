/* gst-uel inspect: validate a file or a sharded checkpoint and show its
 * tensor table, as text or JSON, with SHA-256 checksums on request
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "gst-uel-common.h"

#include <stdio.h>
#include <string.h>

#include <gst/gst.h>
#include <gst-uel/uel.h>

static void
json_path (GString * out, const gchar * path)
{
  g_autofree gchar *display = g_filename_display_name (path);

  json_string (out, display);
}

/* "[a, b]", the same in the table and in --json */
static void
append_shape (GString * s, const UelTensorInfo * t)
{
  gsize start;

  g_string_append_c (s, '[');
  start = s->len;
  for (guint d = 0; d < t->n_dims; d++) {
    append_separator (s, start, ", ");
    g_string_append_printf (s, "%" G_GUINT64_FORMAT, t->shape[d]);
  }
  g_string_append_c (s, ']');
}

static gchar *
shape_string (const UelTensorInfo * t)
{
  GString *s = g_string_new (NULL);

  append_shape (s, t);
  return g_string_free (s, FALSE);
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
  GHashTable *metadata = uel_header_get_metadata (h);
  guint n = uel_header_get_n_tensors (h);
  gboolean sharded = uel_header_is_sharded (h);
  gsize start;

  json_path (o, uel_header_get_location (h));
  g_string_append_printf (o, ",\n  \"valid\": true,\n  \"sharded\": %s,\n"
      "  \"n_tensors\": %u,\n  \"total_bytes\": %" G_GUINT64_FORMAT ",\n"
      "  \"files\": [", sharded ? "true" : "false", n,
      uel_header_get_total_bytes (h));
  start = o->len;
  for (guint f = 0; f < uel_header_get_n_files (h); f++) {
    append_separator (o, start, ",");
    g_string_append (o, "\n    {\"path\": ");
    json_path (o, uel_header_get_file_path (h, f));
    g_string_append_printf (o, ", \"size\": %" G_GUINT64_FORMAT ", "
        "\"data_offset\": %" G_GUINT64_FORMAT "}",
        uel_header_get_file_size (h, f), uel_header_get_data_offset (h, f));
  }
  g_string_append (o, "\n  ],\n  \"metadata\": {");
  if (g_hash_table_size (metadata)) {
    g_string_append (o, "\n    ");
    json_append_members (o, metadata, ",\n    ");
    g_string_append (o, "\n  ");
  }
  g_string_append (o, "},\n  \"tensors\": [");
  start = o->len;
  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);
    const gchar *file = uel_header_get_file_path (h, t->file_index);

    append_separator (o, start, ",");
    g_string_append (o, "\n    {\"name\": ");
    json_string (o, t->name);
    g_string_append_printf (o, ", \"dtype\": \"%s\", \"shape\": ",
        uel_dtype_to_string (t->dtype));
    append_shape (o, t);
    g_string_append_printf (o, ", \"bytes\": %" G_GUINT64_FORMAT ", "
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
  g_string_append (o, n ? "\n  ]" : "]");
  if (uel_header_get_bytes_fetched (h) > 0)
    g_string_append_printf (o, ",\n  \"bytes_fetched\": %" G_GUINT64_FORMAT,
        uel_header_get_bytes_fetched (h));
  g_string_append (o, "\n}\n");
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
  g_autofree gchar *location = NULL;
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
    g_autofree gchar *base = sharded ?
        g_path_get_basename (uel_header_get_file_path (h, t->file_index)) :
        NULL;
    g_autofree gchar *shard = base ? printable (base) : NULL;
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
    append_separator (dtypes, 0, ", ");
    g_string_append_printf (dtypes, "%s %u (%s)", uel_dtype_to_string (d),
        by_dtype_n[d], sz);
  }
  total = format_size (uel_header_get_total_bytes (h));
  out ("\ntotal: %u tensors, %" G_GUINT64_FORMAT " bytes (%s)%s%s\n", n,
      uel_header_get_total_bytes (h), total, dtypes->len ? "; " : "",
      dtypes->str);
  g_string_free (dtypes, TRUE);
  location = printable (uel_header_get_location (h));
  out ("%s: valid safetensors%s, %u tensors in %u file%s%s\n",
      location, sharded ? " checkpoint" : " file", n,
      uel_header_get_n_files (h), uel_header_get_n_files (h) == 1 ? "" : "s",
      sums ? ", every tensor read and checksummed" : "");
  if (uel_header_get_bytes_fetched (h) > 0)
    /* a URL: what reading it cost (the header only, without --checksum) */
    out ("%" G_GUINT64_FORMAT " bytes fetched from the server\n",
        uel_header_get_bytes_fetched (h));
}

static const CommandHelp help = {
  "inspect", "FILE",
  "Validate the header of a .safetensors file, or of a sharded checkpoint's "
      "*.index.json and all its shards, and show its tensor table (name, "
      "dtype, shape, bytes, offset, shard), its __metadata__, the totals and "
      "a verdict.\n\n"
      "FILE may be an http:// or https:// URL: only the header is fetched "
      "(one range request, two for a header over 64 KiB), and the bytes "
      "fetched are reported; --checksum streams the tensors.\n\n"
      "An invalid file prints the validation message alone on stderr and "
      "exits with status 1.",
  NULL
};

gint
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
  g_autoptr (UelHeader) h = NULL;
  g_auto (GStrv) sums = NULL;
  GError *err = NULL;

  if (!parse_options (&help, entries, &argc, &argv))
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
