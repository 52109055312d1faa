/* gst-uel convert: a .safetensors file or sharded checkpoint into one
 * .safetensors file, through uelsrc ! uelconvert ! uelsink
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "gst-uel-run.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <gst/gst.h>
#include <gst-uel/uel.h>

typedef struct
{
  gboolean exists;
  dev_t dev;
  ino_t ino;
} FileId;

static FileId
file_id (const gchar * path)
{
  GStatBuf st;
  FileId id = { FALSE, 0, 0 };

  if (g_stat (path, &st) == 0) {
    id.exists = TRUE;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
  }
  return id;
}

/* uelsink renames a new file over OUT: another inode there means the
 * conversion completed */
static gboolean
file_id_changed (const FileId * before, const gchar * path)
{
  FileId now = file_id (path);

  if (now.exists != before->exists)
    return TRUE;
  return now.exists && (now.dev != before->dev || now.ino != before->ino);
}

/* --dtype: one of uelconvert's targets, by the enum's nick (f8-e4m3) or
 * as the file spells it (F8_E4M3); "keep" (and none) for no cast */
static gboolean
parse_dtype (GstElement * convert, const gchar * text, gint * value)
{
  GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (convert),
      "dtype");
  GEnumClass *klass = G_PARAM_SPEC_ENUM (ps)->enum_class;
  g_autofree gchar *nick = g_ascii_strdown (text, -1);
  GEnumValue *v;

  g_strdelimit (nick, "_", '-');
  if (strcmp (nick, "keep") == 0)
    nick[0] = '\0';
  v = g_enum_get_value_by_nick (klass, *nick ? nick : "none");
  if (!v)
    return FALSE;
  *value = v->value;
  return TRUE;
}

static gchar *
dtype_choices (GstElement * convert)
{
  GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (convert),
      "dtype");
  GEnumClass *klass = G_PARAM_SPEC_ENUM (ps)->enum_class;
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < klass->n_values; i++) {
    if (strcmp (klass->values[i].value_nick, "none") == 0)
      continue;
    append_separator (s, 0, ", ");
    g_string_append (s, klass->values[i].value_nick);
  }
  g_string_append (s, " or keep");
  return g_string_free (s, FALSE);
}

/* --metadata KEY=VALUE...: uelsink's `metadata` property, each value
 * typed and quoted so that commas, quotes and blanks in it stay.  A key
 * that GStreamer's structure syntax cannot carry is refused rather than
 * mangled: the text is parsed back and compared. */
static gchar *
metadata_property (gchar ** items, GError ** error)
{
  g_autoptr (GHashTable) want = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) keys = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) text = g_string_new (NULL);
  g_autoptr (GstStructure) parsed = NULL;
  g_autofree gchar *full = NULL;

  for (guint i = 0; items[i]; i++) {
    const gchar *eq = strchr (items[i], '=');
    GValue v = G_VALUE_INIT;
    g_autofree gchar *quoted = NULL;
    gchar *key;

    if (!eq || eq == items[i]) {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
          "--metadata %s: give KEY=VALUE", items[i]);
      return NULL;
    }
    key = g_strndup (items[i], eq - items[i]);
    g_ptr_array_add (keys, key);
    /* a repeated key: the last value counts, as in the property */
    g_hash_table_insert (want, key, (gpointer) (eq + 1));
    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, eq + 1);
    quoted = gst_value_serialize (&v);
    g_value_unset (&v);
    append_separator (text, 0, ", ");
    g_string_append_printf (text, "%s=(string)%s", key, quoted);
  }

  full = g_strconcat ("metadata, ", text->str, NULL);
  parsed = gst_structure_from_string (full, NULL);
  for (guint i = 0; i < keys->len; i++) {
    const gchar *key = g_ptr_array_index (keys, i);
    const gchar *back = parsed ? gst_structure_get_string (parsed, key) : NULL;

    if (!back || strcmp (back, g_hash_table_lookup (want, key)) != 0) {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
          "--metadata %s=...: uelsink cannot take this key (use letters, "
          "digits and _-+/:.)", key);
      return NULL;
    }
  }
  return g_strdup (text->str);
}

/* --tensors minus --exclude, as a `tensors` list of escaped names:
 * UelTensorFilter chooses, it does not exclude.  Every name and pattern
 * of both must choose a tensor (a misspelt one is an error, as in
 * uelsrc).  NULL with @error, or with no error when --exclude was not
 * given (uelsrc then takes --tensors as it is). */
static gchar *
kept_tensors (const UelHeader * header, const gchar * tensors,
    const gchar * exclude, GError ** error)
{
  g_autoptr (UelTensorFilter) take = uel_tensor_filter_new ();
  g_autoptr (UelTensorFilter) drop = uel_tensor_filter_new ();
  g_autoptr (GArray) taken = NULL, dropped = NULL;
  g_autofree gboolean *out = NULL;
  GString *list;
  guint n = uel_header_get_n_tensors (header), kept = 0;

  uel_tensor_filter_add_names (take, tensors);
  taken = uel_tensor_filter_select (take, header, NULL, error);
  if (!taken) {
    g_prefix_error (error, "--tensors: ");
    return NULL;
  }
  if (!exclude)
    return NULL;
  uel_tensor_filter_add_names (drop, exclude);
  if (!uel_tensor_filter_has_names (drop)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "--exclude names no tensor");
    return NULL;
  }
  dropped = uel_tensor_filter_select (drop, header, NULL, error);
  if (!dropped) {
    g_prefix_error (error, "--exclude: ");
    return NULL;
  }

  out = g_new0 (gboolean, MAX (n, 1));
  for (guint i = 0; i < dropped->len; i++)
    out[g_array_index (dropped, guint, i)] = TRUE;
  list = g_string_new (NULL);
  for (guint i = 0; i < taken->len; i++) {
    guint t = g_array_index (taken, guint, i);
    g_autofree gchar *escaped = NULL;

    if (out[t])
      continue;
    escaped = uel_tensor_name_escape (uel_header_get_tensor (header,
            t)->name);
    append_separator (list, 0, ",");
    g_string_append (list, escaped);
    kept++;
  }
  if (kept == 0) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "%s: --exclude leaves no tensor to write",
        uel_header_get_location (header));
    g_string_free (list, TRUE);
    return NULL;
  }
  return g_string_free (list, FALSE);
}

/* an element made but never added to the pipeline */
static void
drop_element (GstElement * e)
{
  if (e)
    gst_object_unref (gst_object_ref_sink (e));
}

static const CommandHelp help = {
  "convert", "IN OUT",
  "Write the tensors of IN (a .safetensors file, or a sharded checkpoint's "
      "*.index.json) into one .safetensors file OUT, through uelsrc ! "
      "uelconvert ! uelsink: floating tensors cast to --dtype, others "
      "unchanged; a selection of the tensors; metadata added.  OUT is laid "
      "out as the reference safetensors writer lays it out, and appears only "
      "once complete (renamed into place from a temporary .OUT.XXXXXX).  "
      "With --max-shard-size, OUT (model.safetensors) becomes "
      "model-00001-of-0000N.safetensors ... and "
      "model.safetensors.index.json when it needs more than one shard.\n\n"
      "Progress on stderr and a summary on stdout as in launch.  Ctrl-C stops "
      "at once and leaves nothing behind: no OUT (an existing OUT stays as "
      "it was) and no temporary file.  Exit status: 0 when OUT is written, "
      "1 on an error (a missing or invalid IN, a folder that cannot be "
      "written), 2 for a usage error, 130 when interrupted.",
  "Examples:\n"
      "  gst-uel convert --dtype bf16 model.safetensors model-bf16.safetensors\n"
      "  gst-uel convert --tensors '*.weight' --exclude 'lm_head.*' \\\n"
      "      model.safetensors.index.json weights.safetensors\n"
      "  gst-uel convert --metadata format=pt --metadata note='from fp32' \\\n"
      "      model.safetensors copy.safetensors"
};

gint
cmd_convert (gint argc, gchar ** argv)
{
  g_autofree gchar *dtype = NULL, *tensors = NULL, *exclude = NULL;
  g_autofree gchar *shard_size = NULL;
  g_auto (GStrv) metadata = NULL;
  gboolean drop_metadata = FALSE, quiet = FALSE;
  gdouble interval = 2.0;
  GOptionEntry entries[] = {
    {"dtype", 'd', 0, G_OPTION_ARG_STRING, &dtype,
          "Cast the floating tensors to DTYPE: f32, f16, bf16, f8-e4m3, "
          "f8-e5m2 (default: keep)", "DTYPE"},
    {"tensors", 't', 0, G_OPTION_ARG_FILENAME, &tensors,
          "Write only these tensors: comma-separated names and glob "
          "patterns, as uelsrc's tensors property (default: all)", "LIST"},
    {"exclude", 'x', 0, G_OPTION_ARG_FILENAME, &exclude,
        "Leave out these tensors: names and glob patterns", "LIST"},
    {"metadata", 'M', 0, G_OPTION_ARG_FILENAME_ARRAY, &metadata,
          "Set KEY to VALUE in OUT's __metadata__, over IN's (repeatable)",
        "KEY=VALUE"},
    {"max-shard-size", 0, 0, G_OPTION_ARG_STRING, &shard_size,
          "Split OUT into shards of at most SIZE bytes (suffixes K, M, G), "
          "with an index, as transformers shards a checkpoint (default: one "
          "file)", "SIZE"},
    {"drop-metadata", 0, 0, G_OPTION_ARG_NONE, &drop_metadata,
        "Do not copy IN's __metadata__ (only --metadata's fields)", NULL},
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet,
        "Print nothing but errors: no progress, no summary", NULL},
    {"interval", 'i', 0, G_OPTION_ARG_DOUBLE, &interval,
          "Seconds between progress lines when stderr is not a terminal "
          "(default 2)", "SECONDS"},
    {NULL}
  };
  g_autoptr (UelHeader) header = NULL;
  g_autofree gchar *meta_text = NULL, *kept = NULL, *choices = NULL;
  g_autofree gchar *shown = NULL;
  GstElement *pipeline, *src, *convert, *sink;
  const gchar *in, *out_path;
  RunOptions options = { 0, };
  GError *err = NULL;
  guint64 max_shard = 0;
  FileId before;
  gint dtype_value = 0, code;
  Run *run;

  if (!parse_options (&help, entries, &argc, &argv))
    return EXIT_USAGE;
  if (argc != 3) {
    errout ("gst-uel convert: give IN and OUT (see --help)\n");
    return EXIT_USAGE;
  }
  if (interval <= 0) {
    errout ("gst-uel convert: --interval must be positive\n");
    return EXIT_USAGE;
  }
  if (shard_size && !parse_size (shard_size, &max_shard)) {
    errout ("gst-uel convert: --max-shard-size %s: give bytes, optionally "
        "with K, M or G\n", shard_size);
    return EXIT_USAGE;
  }
  in = argv[1];
  out_path = argv[2];

  src = gst_element_factory_make ("uelsrc", NULL);
  convert = gst_element_factory_make ("uelconvert", NULL);
  sink = gst_element_factory_make ("uelsink", NULL);
  if (!src || !convert || !sink) {
    errout ("gst-uel convert: the gst-uel plugin (uelsrc, uelconvert, "
        "uelsink) is not installed or not on GST_PLUGIN_PATH\n");
    code = 1;
    goto out_elements;
  }
  if (dtype && !parse_dtype (convert, dtype, &dtype_value)) {
    choices = dtype_choices (convert);
    errout ("gst-uel convert: --dtype %s: not a dtype to convert to (%s)\n",
        dtype, choices);
    code = EXIT_USAGE;
    goto out_elements;
  }
  if (metadata && !(meta_text = metadata_property (metadata, &err))) {
    errout ("gst-uel convert: %s\n", err->message);
    g_clear_error (&err);
    code = EXIT_USAGE;
    goto out_elements;
  }

  /* IN's table now: its errors name the file before anything runs, and
   * --exclude needs it */
  header = uel_header_open (in, &err);
  if (header)
    kept = kept_tensors (header, tensors, exclude, &err);
  if (err) {
    errout ("gst-uel convert: %s\n", err->message);
    g_clear_error (&err);
    code = 1;
    goto out_elements;
  }

  g_object_set (src, "location", in, "tensors", kept ? kept : tensors, NULL);
  g_object_set (convert, "dtype", dtype_value, NULL);
  g_object_set (sink, "location", out_path, "metadata", meta_text,
      "keep-metadata", !drop_metadata, "max-shard-size", max_shard, NULL);
  pipeline = gst_pipeline_new ("convert");
  gst_bin_add_many (GST_BIN (pipeline), src, convert, sink, NULL);
  if (!gst_element_link_many (src, convert, sink, NULL)) {
    errout ("gst-uel convert: could not link uelsrc ! uelconvert ! "
        "uelsink\n");
    gst_object_unref (gst_object_ref_sink (pipeline));
    return 1;
  }

  options.quiet = quiet;
  options.interval = interval;
  options.interrupt = RUN_INTERRUPT_ABORT;
  before = file_id (out_path);
  run = run_new (pipeline, &options);
  code = run_pipeline (run);
  /* a Ctrl-C in the instant between uelsink's rename and the end of the
   * stream reaching the bus: the file is complete, say so */
  if (code == EXIT_INTERRUPTED && file_id_changed (&before, out_path)) {
    code = 0;
    run_set_exit_code (run, code);
  }
  code = run_finish (run);
  shown = printable (out_path);
  if (code == EXIT_INTERRUPTED)
    errout ("gst-uel convert: interrupted: %s was not written\n", shown);
  else if (code == 0 && !quiet) {
    GStatBuf st;

    g_autofree gchar *index = g_strconcat (out_path, ".index.json", NULL);
    g_autofree gchar *index_shown = printable (index);

    if (g_stat (out_path, &st) == 0)
      out ("Wrote %s: %" G_GUINT64_FORMAT " bytes\n", shown,
          (guint64) st.st_size);
    else if (g_file_test (index, G_FILE_TEST_EXISTS))
      out ("Wrote %s and its shards\n", index_shown);
  }
  return code;

out_elements:
  drop_element (src);
  drop_element (convert);
  drop_element (sink);
  return code;
}
