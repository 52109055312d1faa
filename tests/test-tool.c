/* gst-uel: the gst-uel command-line tool, run as a user runs it
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-utils.h"

static const gchar *tool = UEL_TOOL_PATH;

/* Runs @argv (the tool first, NULL-terminated); returns its exit status
 * (128 + the signal when one killed it). */
static gint
spawn_tool (gchar ** argv, gchar ** out, gchar ** err)
{
  GError *error = NULL;
  gint status;

  g_spawn_sync (NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err,
      &status, &error);
  g_assert_no_error (error);
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  g_assert_true (WIFEXITED (status));
  return WEXITSTATUS (status);
}

/* Runs the tool with @args (NULL-terminated); returns its exit status. */
static gint
run_tool (gchar ** out, gchar ** err, const gchar * first, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  va_list ap;

  g_ptr_array_add (argv, (gpointer) tool);
  va_start (ap, first);
  for (const gchar * a = first; a; a = va_arg (ap, const gchar *))
      g_ptr_array_add (argv, (gpointer) a);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  return spawn_tool ((gchar **) argv->pdata, out, err);
}

static gchar *
write_model (const gchar * name)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  gchar *path = uel_test_path (name);
  const gchar *dict = "{\"a\": 1}";

  uel_test_builder_set_metadata (b, "format", "pt");
  uel_test_builder_set_metadata (b, "generator", "test-tool");
  uel_test_builder_add (b, "embed.weight", "BF16", "[64,32]", 4096, NULL);
  uel_test_builder_add (b, "layer.0.w", "F32", "[16,16]", 1024, NULL);
  uel_test_builder_add (b, "scalar", "F64", "[]", 8, NULL);
  uel_test_builder_add (b, "empty", "F16", "[0]", 0, NULL);
  uel_test_builder_add (b, "nämé ✓", "I8", "[3]", 3, NULL);
  uel_test_builder_add (b, "config", "U8", "[8]", 8, dict);
  uel_test_builder_set_align (b, 8);
  uel_test_builder_write (b, path, NULL);
  return path;
}

static gchar *
write_sharded (void)
{
  g_autofree gchar *s1 = uel_test_path ("m-00001-of-00002.safetensors");
  g_autofree gchar *s2 = uel_test_path ("m-00002-of-00002.safetensors");
  gchar *index = uel_test_path ("m.safetensors.index.json");
  const gchar *json = "{\"metadata\": {\"total_size\": 84}, \"weight_map\": "
      "{\"b.weight\": \"m-00002-of-00002.safetensors\", "
      "\"a.weight\": \"m-00001-of-00002.safetensors\", "
      "\"a.bias\": \"m-00001-of-00002.safetensors\"}}";
  g_autoptr (UelTestBuilder) b1 = uel_test_builder_new ();
  g_autoptr (UelTestBuilder) b2 = uel_test_builder_new ();

  uel_test_builder_add (b1, "a.weight", "F32", "[4,2]", 32, NULL);
  uel_test_builder_add (b1, "a.bias", "F32", "[4]", 16, NULL);
  uel_test_builder_write (b1, s1, NULL);
  uel_test_builder_add (b2, "b.weight", "BF16", "[3,6]", 36, NULL);
  uel_test_builder_write (b2, s2, NULL);
  uel_test_write_bytes (index, json, strlen (json));
  return index;
}

/* ------------------------------------------------------------------ */

static void
test_version_and_help (void)
{
  g_autofree gchar *out = NULL, *err = NULL;
  const gchar *commands[] = { "inspect", "launch", "make-model", "convert" };
  const gchar *options[] = { "--checksum", "--quiet", "--size", "--exclude" };

  g_assert_cmpint (run_tool (&out, &err, "--version", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "gst-uel " PACKAGE_VERSION " "));
  g_assert_nonnull (strstr (out, "GStreamer 1."));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (run_tool (&out, &err, "--help", NULL), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    g_assert_nonnull (strstr (out, commands[i]));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++) {
    g_assert_cmpint (run_tool (&out, &err, commands[i], "--help", NULL), ==,
        0);
    g_assert_nonnull (strstr (out, options[i]));
    /* GStreamer's own options are there too */
    g_assert_nonnull (strstr (out, "--help-gst"));
    g_clear_pointer (&out, g_free);
    g_clear_pointer (&err, g_free);
  }

  /* usage errors: status 2 */
  g_assert_cmpint (run_tool (&out, &err, NULL), ==, 2);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "frobnicate", NULL), ==, 2);
  g_assert_nonnull (strstr (err, "unknown command 'frobnicate'"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "inspect", NULL), ==, 2);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "inspect", "--nope", "x", NULL), ==,
      2);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "launch", NULL), ==, 2);
}

static void
test_inspect_table (void)
{
  g_autofree gchar *path = write_model ("table.safetensors");
  g_autofree gchar *out = NULL, *err = NULL, *verdict = NULL;
  g_autoptr (UelHeader) h = uel_header_open (path, NULL);
  g_auto (GStrv) lines = NULL;

  g_assert_cmpint (run_tool (&out, &err, "inspect", path, NULL), ==, 0);
  g_assert_cmpstr (err, ==, "");
  lines = g_strsplit (out, "\n", -1);

  /* a header row, then one row per tensor, in file order */
  g_assert_true (g_str_has_prefix (lines[0], "NAME"));
  for (const gchar * col = "DTYPE\0SHAPE\0BYTES\0OFFSET\0"; *col;
      col += strlen (col) + 1)
    g_assert_nonnull (strstr (lines[0], col));
  g_assert_null (strstr (lines[0], "SHARD"));
  for (guint i = 0; i < uel_header_get_n_tensors (h); i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);
    g_autofree gchar *bytes = g_strdup_printf (" %" G_GUINT64_FORMAT " ",
        t->n_bytes);
    g_autofree gchar *offset = g_strdup_printf (" %" G_GUINT64_FORMAT,
        t->file_offset);

    g_assert_true (g_str_has_prefix (lines[i + 1], t->name));
    g_assert_nonnull (strstr (lines[i + 1], uel_dtype_to_string (t->dtype)));
    g_assert_nonnull (strstr (lines[i + 1], bytes));
    g_assert_true (g_str_has_suffix (lines[i + 1], offset));
  }
  g_assert_nonnull (strstr (out, "  [64, 32]  "));
  g_assert_nonnull (strstr (out, "  []  "));
  /* metadata, sorted */
  g_assert_nonnull (strstr (out, "\nmetadata:\n  format: pt\n"
          "  generator: test-tool\n"));
  /* totals and the verdict */
  g_assert_nonnull (strstr (out, "\ntotal: 6 tensors, 5139 bytes (5.0 KiB); "));
  g_assert_nonnull (strstr (out, "BF16 1 (4.0 KiB)"));
  verdict = g_strdup_printf ("\n%s: valid safetensors file, 6 tensors in 1 "
      "file\n", path);
  g_assert_true (g_str_has_suffix (out, verdict));
}

/* nothing but printable text and newlines: no escape sequence, carriage
 * return, DEL or C1 control reaches the terminal */
static void
assert_terminal_safe (const gchar * text)
{
  for (const gchar * p = text; *p; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);

    if ((c < 0x20 && c != '\n') || (c >= 0x7f && c < 0xa0))
      g_error ("control character U+%04X at byte %" G_GSIZE_FORMAT " of:\n%s",
          c, (gsize) (p - text), text);
  }
}

/* Names and metadata come from the file: printed raw, an escape sequence
 * or a newline in them would drive the terminal or fake lines of output
 * (an outside test found both in inspect's table and in launch -m). */
static void
test_hostile_text_is_escaped (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("hostile-names.safetensors");
  g_autofree gchar *out = NULL, *err = NULL;
  g_auto (GStrv) lines = NULL;

  uel_test_builder_add (b, "evil\x1b[31mRED\x1b[0m\nname", "U8", "[1]", 1,
      NULL);
  uel_test_builder_add (b, "csi\xc2\x9b" "2J\r\x7f", "U8", "[1]", 1, NULL);
  uel_test_builder_add (b, "back\\slash", "U8", "[1]", 1, NULL);
  uel_test_builder_add (b, "dict", "U8", "[20]", 20,
      "{\"k\": \"del\x7f \\u2713\"}");
  uel_test_builder_set_metadata (b, "", "empty key");
  uel_test_builder_set_metadata (b, "sp ace", "y\x1b[2J");
  uel_test_builder_set_metadata (b, "nl", "a\nb");
  uel_test_builder_write (b, path, NULL);

  g_assert_cmpint (run_tool (&out, &err, "inspect", path, NULL), ==, 0);
  assert_terminal_safe (out);
  lines = g_strsplit (out, "\n", -1);
  /* one line a tensor, after the column titles */
  g_assert_true (g_str_has_prefix (lines[1],
          "evil\\x1b[31mRED\\x1b[0m\\x0aname  "));
  g_assert_true (g_str_has_prefix (lines[2], "csi\\x9b2J\\x0d\\x7f  "));
  g_assert_true (g_str_has_prefix (lines[3], "back\\\\slash  "));
  g_assert_nonnull (strstr (out, "\nmetadata:\n  : empty key\n"
          "  nl: a\\x0ab\n  sp ace: y\\x1b[2J\n"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (run_tool (&out, &err, "inspect", "--json", path, NULL), ==,
      0);
  assert_terminal_safe (out);
  g_assert_nonnull (strstr (out, "\"csi\\u009b2J\\u000d\\u007f\""));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  {
    g_autofree gchar *launch = g_strdup_printf ("location=%s", path);

    g_assert_cmpint (run_tool (&out, &err, "launch", "-m", "uelsrc", launch,
            "!", "ueldictdecode", "tensors=dict", "!", "fakesink", NULL), ==,
        0);
  }
  assert_terminal_safe (out);
  g_assert_nonnull (strstr (out, "4 tensors, 23 bytes; metadata: {\"\": "
          "\"empty key\", \"nl\": \"a\\nb\", \"sp ace\": \"y\\u001b[2J\"}\n"));
  /* the dictionary stays JSON: its own escapes kept, DEL escaped */
  g_assert_nonnull (strstr (out, "dictionary 'dict' from ueldictdecode0: "
          "{\"k\": \"del\\u007f \\u2713\"}\n"));
}

/* The file's own name and the shard names an index gives are text from
 * outside too: the verdict line and the SHARD column escape them. */
static void
test_hostile_paths_are_escaped (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("odd\x1b[2Jname.safetensors");
  g_autofree gchar *shard = uel_test_path ("sh\x1b[31m.safetensors");
  g_autofree gchar *index = uel_test_path ("odd.safetensors.index.json");
  g_autofree gchar *out = NULL, *err = NULL;

  uel_test_builder_add (b, "a", "U8", "[1]", 1, NULL);
  uel_test_builder_write (b, path, NULL);
  g_assert_cmpint (run_tool (&out, &err, "inspect", path, NULL), ==, 0);
  assert_terminal_safe (out);
  g_assert_nonnull (strstr (out, "odd\\x1b[2Jname.safetensors: valid "));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  uel_test_builder_write (b, shard, NULL);
  g_assert_true (g_file_set_contents (index, "{\"weight_map\": {\"a\": "
          "\"sh\\u001b[31m.safetensors\"}}", -1, NULL));
  g_assert_cmpint (run_tool (&out, &err, "inspect", index, NULL), ==, 0);
  assert_terminal_safe (out);
  g_assert_nonnull (strstr (out, "  sh\\x1b[31m.safetensors\n"));
}

static void
test_inspect_invalid (void)
{
  g_autofree gchar *bad = uel_test_path ("bad.safetensors");
  g_autofree gchar *missing = uel_test_path ("missing.safetensors");
  const gchar *files[] = { bad, missing };
  const gchar *flags[] = { NULL, "--json", "--checksum" };

  /* rule 11: the size does not match the dtype and shape */
  uel_test_write_safetensors (bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[0,4]}}", "abcd", 4);

  for (guint f = 0; f < G_N_ELEMENTS (files); f++) {
    g_autoptr (GError) expected = NULL;
    g_autofree gchar *want = NULL;

    g_assert_null (uel_header_open (files[f], &expected));
    want = g_strdup_printf ("%s\n", expected->message);
    for (guint i = 0; i < G_N_ELEMENTS (flags); i++) {
      g_autofree gchar *out = NULL, *err = NULL;

      g_assert_cmpint (run_tool (&out, &err, "inspect", files[f], flags[i],
              NULL), ==, 1);
      /* the validation message, and nothing else */
      g_assert_cmpstr (out, ==, "");
      g_assert_cmpstr (err, ==, want);
    }
  }
}

static void
test_inspect_sharded (void)
{
  g_autofree gchar *index = write_sharded ();
  g_autofree gchar *out = NULL, *err = NULL;

  g_assert_cmpint (run_tool (&out, &err, "inspect", index, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "SHARD"));
  g_assert_nonnull (strstr (out, "  m-00001-of-00002.safetensors\n"));
  g_assert_nonnull (strstr (out, "  m-00002-of-00002.safetensors\n"));
  g_assert_true (g_str_has_prefix (strstr (out, "\na.weight") + 1,
          "a.weight"));
  g_assert_nonnull (strstr (out, "  total_size: 84\n"));
  g_assert_nonnull (strstr (out, ": valid safetensors checkpoint, 3 tensors "
          "in 2 files\n"));
}

static JsonObject *
parse_json (const gchar * text, JsonParser * parser)
{
  GError *err = NULL;

  json_parser_load_from_data (parser, text, -1, &err);
  g_assert_no_error (err);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));
  return json_node_get_object (json_parser_get_root (parser));
}

/* --json read back gives the header's every number */
static void
check_json (const gchar * path, gboolean checksum)
{
  g_autofree gchar *out = NULL, *err = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (UelHeader) h = uel_header_open (path, NULL);
  JsonObject *root, *meta;
  JsonArray *tensors, *files;
  GHashTableIter it;
  gpointer k, v;

  g_assert_cmpint (run_tool (&out, &err, "inspect", "--json", path,
          checksum ? "--checksum" : NULL, NULL), ==, 0);
  g_assert_cmpstr (err, ==, "");
  root = parse_json (out, parser);
  g_assert_cmpstr (json_object_get_string_member (root, "location"), ==,
      path);
  g_assert_true (json_object_get_boolean_member (root, "valid"));
  g_assert_cmpint (json_object_get_boolean_member (root, "sharded"), ==,
      uel_header_is_sharded (h));
  g_assert_cmpint (json_object_get_int_member (root, "n_tensors"), ==,
      uel_header_get_n_tensors (h));
  g_assert_cmpint (json_object_get_int_member (root, "total_bytes"), ==,
      uel_header_get_total_bytes (h));

  files = json_object_get_array_member (root, "files");
  g_assert_cmpuint (json_array_get_length (files), ==,
      uel_header_get_n_files (h));
  for (guint f = 0; f < json_array_get_length (files); f++) {
    JsonObject *o = json_array_get_object_element (files, f);

    g_assert_cmpstr (json_object_get_string_member (o, "path"), ==,
        uel_header_get_file_path (h, f));
    g_assert_cmpint (json_object_get_int_member (o, "size"), ==,
        uel_header_get_file_size (h, f));
    g_assert_cmpint (json_object_get_int_member (o, "data_offset"), ==,
        uel_header_get_data_offset (h, f));
  }

  meta = json_object_get_object_member (root, "metadata");
  g_assert_cmpuint (json_object_get_size (meta), ==,
      g_hash_table_size (uel_header_get_metadata (h)));
  g_hash_table_iter_init (&it, uel_header_get_metadata (h));
  while (g_hash_table_iter_next (&it, &k, &v))
    g_assert_cmpstr (json_object_get_string_member (meta, k), ==, v);

  tensors = json_object_get_array_member (root, "tensors");
  g_assert_cmpuint (json_array_get_length (tensors), ==,
      uel_header_get_n_tensors (h));
  for (guint i = 0; i < uel_header_get_n_tensors (h); i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);
    JsonObject *o = json_array_get_object_element (tensors, i);
    JsonArray *shape = json_object_get_array_member (o, "shape");
    JsonArray *offs = json_object_get_array_member (o, "data_offsets");

    g_assert_cmpstr (json_object_get_string_member (o, "name"), ==, t->name);
    g_assert_cmpstr (json_object_get_string_member (o, "dtype"), ==,
        uel_dtype_to_string (t->dtype));
    g_assert_cmpuint (json_array_get_length (shape), ==, t->n_dims);
    for (guint d = 0; d < t->n_dims; d++)
      g_assert_cmpint (json_array_get_int_element (shape, d), ==,
          t->shape[d]);
    g_assert_cmpint (json_object_get_int_member (o, "bytes"), ==,
        t->n_bytes);
    g_assert_cmpint (json_object_get_int_member (o, "offset"), ==,
        t->file_offset);
    g_assert_cmpint (json_array_get_int_element (offs, 0), ==,
        t->data_begin);
    g_assert_cmpint (json_array_get_int_element (offs, 1), ==,
        t->data_begin + t->n_bytes);
    g_assert_cmpstr (json_object_get_string_member (o, "file"), ==,
        uel_header_get_file_path (h, t->file_index));
    g_assert_cmpint (json_object_has_member (o, "shard"), ==,
        uel_header_is_sharded (h));
    g_assert_cmpint (json_object_has_member (o, "sha256"), ==, checksum);
  }
}

static void
test_inspect_json (void)
{
  g_autofree gchar *path = write_model ("json.safetensors");
  g_autofree gchar *index = write_sharded ();

  check_json (path, FALSE);
  check_json (path, TRUE);
  check_json (index, FALSE);
}

/* --checksum against SHA-256 computed here from the file's bytes, and
 * against sha256sum(1) where it is installed */
static void
check_checksums (const gchar * path)
{
  g_autofree gchar *out = NULL, *err = NULL, *table = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (UelHeader) h = uel_header_open (path, NULL);
  g_autofree gchar *sha256sum = g_find_program_in_path ("sha256sum");
  JsonArray *tensors;

  g_assert_cmpint (run_tool (&out, &err, "inspect", "--json", "--checksum",
          path, NULL), ==, 0);
  tensors = json_object_get_array_member (parse_json (out, parser),
      "tensors");
  g_assert_cmpint (run_tool (&table, NULL, "inspect", "--checksum", path,
          NULL), ==, 0);
  g_assert_nonnull (strstr (table, "SHA256"));
  g_assert_nonnull (strstr (table, "every tensor read and checksummed"));

  for (guint i = 0; i < uel_header_get_n_tensors (h); i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);
    const gchar *got = json_object_get_string_member
        (json_array_get_object_element (tensors, i), "sha256");
    g_autofree gchar *data = NULL;
    g_autofree gchar *want = NULL;
    gsize len;

    g_assert_true (g_file_get_contents (uel_header_get_file_path (h,
                t->file_index), &data, &len, NULL));
    g_assert_cmpuint (t->file_offset + t->n_bytes, <=, len);
    want = g_compute_checksum_for_data (G_CHECKSUM_SHA256,
        (const guchar *) data + t->file_offset, t->n_bytes);
    g_assert_cmpstr (got, ==, want);
    g_assert_nonnull (strstr (table, want));

    if (sha256sum) {
      g_autofree gchar *one = uel_test_path ("one-tensor.bin");
      g_autofree gchar *sum_out = NULL;
      const gchar *argv[] = { sha256sum, one, NULL };

      uel_test_write_bytes (one, data + t->file_offset, t->n_bytes);
      g_assert_true (g_spawn_sync (NULL, (gchar **) argv, NULL,
              G_SPAWN_DEFAULT, NULL, NULL, &sum_out, NULL, NULL, NULL));
      g_assert_true (g_str_has_prefix (sum_out, got));
    }
  }
}

static void
test_inspect_checksum (void)
{
  g_autofree gchar *path = write_model ("sums.safetensors");
  g_autofree gchar *index = write_sharded ();
  g_autofree gchar *big = uel_test_path ("big.safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();

  check_checksums (path);
  check_checksums (index);
  /* tensors of several 4 MiB blocks */
  uel_test_builder_add (b, "big", "U8", "[9437185]", 9437185, NULL);
  uel_test_builder_add (b, "small", "U8", "[3]", 3, NULL);
  uel_test_builder_write (b, big, NULL);
  check_checksums (big);
}

/* ------------------------------------------------------------------ */
/* launch */

static void
test_launch_eos (void)
{
  g_autofree gchar *path = write_model ("launch.safetensors");
  g_autofree gchar *loc = g_strdup_printf ("location=%s", path);
  g_autofree gchar *out = NULL, *err = NULL;

  g_assert_cmpint (run_tool (&out, &err, "launch", "uelsrc", loc, "!",
          "uelqueue", "!", "fakesink", NULL), ==, 0);
  /* the summary: tensors, bytes, time, GB/s, peak RSS, each uel element's
   * stats */
  g_test_message ("%s", out);
  g_assert_true (g_str_has_prefix (out, "Done: 6 tensors of 6, 5.0 KiB "
          "(5139 bytes) in "));
  g_assert_nonnull (strstr (out, "B/s, peak RSS "));
  g_assert_nonnull (strstr (out, "\n  uelqueue0: "));
  g_assert_nonnull (strstr (out, "in-buffers=6"));
  g_assert_cmpstr (err, ==, "");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* a tee: every tensor counted once */
  g_assert_cmpint (run_tool (&out, &err, "launch", "uelsrc", loc, "!",
          "tee", "name=t", "!", "queue", "!", "fakesink", "t.", "!", "queue",
          "!", "fakesink", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "Done: 6 tensors of 6, 5.0 KiB "
          "(5139 bytes) in "));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* --quiet: nothing */
  g_assert_cmpint (run_tool (&out, &err, "launch", "-q", "uelsrc", loc, "!",
          "fakesink", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "");
  g_assert_cmpstr (err, ==, "");
}

static void
test_launch_progress_lines (void)
{
  g_autofree gchar *path = uel_test_path ("slow.safetensors");
  g_autofree gchar *loc = NULL;
  g_autofree gchar *out = NULL, *err = NULL;
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();

  for (guint i = 0; i < 20; i++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", i);
    uel_test_builder_add (b, name, "U8", "[1000]", 1000, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  loc = g_strdup_printf ("location=%s", path);

  /* stderr is not a terminal here: plain lines */
  g_assert_cmpint (run_tool (&out, &err, "launch", "--interval", "0.05",
          "uelsrc", loc, "!", "identity", "sleep-time=20000", "!", "fakesink",
          NULL), ==, 0);
  g_test_message ("%s", err);
  g_assert_true (g_str_has_prefix (err, "progress: "));
  g_assert_nonnull (strstr (err, "/20 tensors  "));
  g_assert_nonnull (strstr (err, " / 19.5 KiB  "));
  g_assert_nonnull (strstr (err, "B/s  ETA "));
  g_assert_null (strchr (err, '\r'));
  g_assert_true (g_str_has_prefix (out, "Done: 20 tensors of 20, "));
}

/* stderr on a terminal: a bar redrawn in place */
static void
test_launch_progress_bar (void)
{
  g_autofree gchar *path = uel_test_path ("bar.safetensors");
  g_autofree gchar *loc = NULL;
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (GString) tty = g_string_new (NULL);
  g_autofree gchar *out = NULL;
  const gchar *argv[10];
  GError *error = NULL;
  gint master, slave, out_fd, status;
  GPid pid;
  gchar buf[4096];
  ssize_t r;

  for (guint i = 0; i < 10; i++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", i);
    uel_test_builder_add (b, name, "U8", "[1000]", 1000, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  loc = g_strdup_printf ("location=%s", path);

  master = posix_openpt (O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt (master) != 0 || unlockpt (master) != 0) {
    g_test_skip ("no pseudo-terminal");
    return;
  }
  slave = open (ptsname (master), O_RDWR | O_NOCTTY);
  g_assert_cmpint (slave, >=, 0);

  argv[0] = tool;
  argv[1] = "launch";
  argv[2] = "uelsrc";
  argv[3] = loc;
  argv[4] = "!";
  argv[5] = "identity";
  argv[6] = "sleep-time=50000";
  argv[7] = "!";
  argv[8] = "fakesink";
  argv[9] = NULL;
  g_spawn_async_with_pipes_and_fds (NULL, argv, NULL,
      G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, -1, -1, slave, NULL, NULL, 0,
      &pid, NULL, &out_fd, NULL, &error);
  g_assert_no_error (error);
  close (slave);

  /* until the child closes the terminal (EIO) */
  while ((r = read (master, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
    if (r > 0)
      g_string_append_len (tty, buf, r);
  close (master);
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_spawn_close_pid (pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
  {
    GIOChannel *ch = g_io_channel_unix_new (out_fd);
    g_io_channel_read_to_end (ch, &out, NULL, NULL);
    g_io_channel_shutdown (ch, FALSE, NULL);
    g_io_channel_unref (ch);
  }

  /* redrawn with \r and erase-line, a bar, the counts, GB/s, an ETA */
  g_assert_nonnull (strstr (tty->str, "\r\033[K["));
  g_assert_nonnull (strstr (tty->str, "] "));
  g_assert_nonnull (strstr (tty->str, "/10 tensors  "));
  g_assert_nonnull (strstr (tty->str, "B/s  ETA "));
  g_assert_null (strstr (tty->str, "progress: "));
  g_assert_true (g_str_has_prefix (out, "Done: 10 tensors of 10, "));
}

static void
test_launch_errors (void)
{
  g_autofree gchar *missing = uel_test_path ("nothing-here.safetensors");
  g_autofree gchar *bad = uel_test_path ("launch-bad.safetensors");
  g_autofree gchar *loc = g_strdup_printf ("location=%s", missing);
  g_autofree gchar *bad_loc = g_strdup_printf ("location=%s", bad);
  g_autofree gchar *out = NULL, *err = NULL;
  g_autoptr (GError) expected = NULL;

  /* at start: the element's message, status 1 */
  g_assert_cmpint (run_tool (&out, &err, "launch", "uelsrc", loc, "!",
          "fakesink", NULL), ==, 1);
  g_test_message ("%s", err);
  g_assert_true (g_str_has_prefix (err, "ERROR: from element "));
  g_assert_nonnull (strstr (err, missing));
  g_assert_nonnull (strstr (err, "No such file or directory"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* an invalid file: the validation message */
  uel_test_write_safetensors (bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[0,4]}}", "abcd", 4);
  g_assert_null (uel_header_open (bad, &expected));
  g_assert_cmpint (run_tool (&out, &err, "launch", "-q", "uelsrc", bad_loc,
          "!", "uelqueue", "!", "fakesink", NULL), ==, 1);
  g_assert_nonnull (strstr (err, expected->message));
  g_assert_cmpstr (out, ==, "");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* while running: a downstream element fails */
  {
    g_autofree gchar *path = write_model ("fails.safetensors");
    g_autofree gchar *ok_loc = g_strdup_printf ("location=%s", path);

    g_assert_cmpint (run_tool (&out, &err, "launch", "uelsrc", ok_loc, "!",
            "identity", "error-after=2", "!", "fakesink", NULL), ==, 1);
    g_assert_nonnull (strstr (err, "ERROR: from element "));
    g_assert_nonnull (strstr (err, "identity"));
    g_assert_true (g_str_has_prefix (out, "Failed: "));
    g_clear_pointer (&out, g_free);
    g_clear_pointer (&err, g_free);
  }

  /* pipelines that cannot be built */
  g_assert_cmpint (run_tool (&out, &err, "launch", "uelsrc", loc, "!",
          "nosuchelement", NULL), ==, 1);
  g_assert_nonnull (strstr (err, "could not construct the pipeline"));
  g_assert_nonnull (strstr (err, "nosuchelement"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "launch", "uelsrc", "locaton=x", "!",
          "fakesink", NULL), ==, 1);
  g_assert_nonnull (strstr (err, "locaton"));
}

/* Runs the tool with @args (NULL-terminated; argv[0] is set here) and
 * sends it SIGINT once stderr shows a progress line (run it with a short
 * --interval), reading stdout and stderr to the end.  Returns the exit
 * status; *@sent says whether the signal went before the tool ended. */
static gint
run_interrupted (const gchar * const *args, gchar ** out, GString * err,
    gboolean * sent)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  GError *error = NULL;
  gint out_fd, err_fd, status;
  GPid pid;
  gchar buf[1024];
  ssize_t r;

  g_ptr_array_add (argv, (gpointer) tool);
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  g_spawn_async_with_pipes (NULL, (gchar **) argv->pdata, NULL,
      G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, NULL, &out_fd, &err_fd,
      &error);
  g_assert_no_error (error);

  /* Ctrl-C once the pipeline runs, then read to the end */
  *sent = FALSE;
  while ((r = read (err_fd, buf, sizeof buf)) != 0) {
    if (r < 0 && errno == EINTR)
      continue;
    g_assert_cmpint (r, >, 0);
    g_string_append_len (err, buf, r);
    if (!*sent && strstr (err->str, "progress: ")) {
      kill (pid, SIGINT);
      *sent = TRUE;
    }
  }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_spawn_close_pid (pid);
  {
    GIOChannel *ch = g_io_channel_unix_new (out_fd);
    g_io_channel_read_to_end (ch, out, NULL, NULL);
    g_io_channel_shutdown (ch, FALSE, NULL);
    g_io_channel_unref (ch);
  }
  close (err_fd);
  g_test_message ("%s%s", err->str, *out);
  g_assert_true (WIFEXITED (status));
  return WEXITSTATUS (status);
}

/* Ctrl-C: EOS, then NULL, a summary, status 130 */
static void
test_launch_interrupt (void)
{
  g_autofree gchar *path = uel_test_path ("interrupt.safetensors");
  g_autofree gchar *loc = NULL;
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (GString) err = g_string_new (NULL);
  g_autofree gchar *out = NULL;
  gboolean sent;

  for (guint i = 0; i < 200; i++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", i);
    uel_test_builder_add (b, name, "U8", "[1000]", 1000, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  loc = g_strdup_printf ("location=%s", path);

  {
    const gchar *args[] = { "launch", "--interval", "0.05", "uelsrc", loc,
      "!", "uelqueue", "max-size-buffers=2", "!", "identity",
      "sleep-time=20000", "!", "fakesink", NULL
    };

    g_assert_cmpint (run_interrupted (args, &out, err, &sent), ==, 130);
  }
  g_assert_true (sent);
  g_assert_nonnull (strstr (err->str, "Interrupt: stopping the pipeline "
          "(EOS, then NULL)"));
  g_assert_null (strstr (err->str, "ERROR"));
  /* it stopped early, with a summary */
  g_assert_true (g_str_has_prefix (out, "Interrupted: "));
  g_assert_null (strstr (out, "Interrupted: 200 tensors"));
  g_assert_nonnull (strstr (out, " of 200, "));
}

/* ------------------------------------------------------------------ */
/* convert */

/* what `gst-launch-1.0 uelsrc location=IN ! ELEMENTS ! uelsink
 * location=OUT` writes: the bytes the tool must write too */
static void
write_by_pipeline (const gchar * in, const gchar * elements,
    const gchar * out)
{
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! %s "
      "! uelsink location=\"%s\"", in, elements, out);
  GError *err = uel_test_run_pipeline (launch, NULL);

  g_assert_no_error (err);
}

static void
assert_same_file (const gchar * a, const gchar * b)
{
  g_autofree gchar *da = NULL, *db = NULL;
  gsize la, lb;

  g_assert_true (g_file_get_contents (a, &da, &la, NULL));
  g_assert_true (g_file_get_contents (b, &db, &lb, NULL));
  g_assert_cmpmem (da, la, db, lb);
}

/* the tensor names of @path, in file order, one a line */
static gchar *
tensor_names (const gchar * path)
{
  g_autoptr (UelHeader) h = uel_test_header_open (path);
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < uel_header_get_n_tensors (h); i++) {
    if (i > 0)
      g_string_append_c (s, '\n');
    g_string_append (s, uel_header_get_tensor (h, i)->name);
  }
  return g_string_free (s, FALSE);
}

static void
test_convert_dtype (void)
{
  g_autofree gchar *in = write_model ("conv-in.safetensors");
  g_autofree gchar *bf16 = uel_test_path ("conv-bf16.safetensors");
  g_autofree gchar *ref = uel_test_path ("conv-bf16-ref.safetensors");
  g_autofree gchar *copy = uel_test_path ("conv-copy.safetensors");
  g_autofree gchar *copy_ref = uel_test_path ("conv-copy-ref.safetensors");
  g_autofree gchar *out = NULL, *err = NULL;
  g_autoptr (UelHeader) h = NULL;

  g_assert_cmpint (run_tool (&out, &err, "convert", "--dtype", "bf16", in,
          bf16, NULL), ==, 0);
  g_test_message ("%s%s", err, out);
  g_assert_cmpstr (err, ==, "");
  g_assert_true (g_str_has_prefix (out, "Done: 6 tensors of 6, "));
  g_assert_nonnull (strstr (out, "\nWrote "));
  write_by_pipeline (in, "uelconvert dtype=bf16", ref);
  assert_same_file (bf16, ref);
  /* the floating tensors cast, the others as they were */
  h = uel_test_header_open (bf16);
  g_assert_cmpint (uel_header_lookup (h, "layer.0.w", NULL)->dtype, ==,
      UEL_DTYPE_BF16);
  g_assert_cmpint (uel_header_lookup (h, "scalar", NULL)->dtype, ==,
      UEL_DTYPE_BF16);
  g_assert_cmpint (uel_header_lookup (h, "nämé ✓", NULL)->dtype, ==,
      UEL_DTYPE_I8);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* no --dtype: a copy, as the reference writes it; the nick's other
   * spelling works too */
  g_assert_cmpint (run_tool (&out, &err, "convert", "-q", in, copy, NULL),
      ==, 0);
  g_assert_cmpstr (out, ==, "");
  g_assert_cmpstr (err, ==, "");
  write_by_pipeline (in, "identity", copy_ref);
  assert_same_file (copy, copy_ref);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "convert", "-q", "--dtype",
          "F8_E4M3", in, copy, NULL), ==, 0);
  write_by_pipeline (in, "uelconvert dtype=f8-e4m3", copy_ref);
  assert_same_file (copy, copy_ref);
}

static void
test_convert_sharded (void)
{
  g_autofree gchar *index = write_sharded ();
  g_autofree gchar *f16 = uel_test_path ("conv-sharded.safetensors");
  g_autofree gchar *ref = uel_test_path ("conv-sharded-ref.safetensors");
  g_autofree gchar *out = NULL, *err = NULL;
  g_autofree gchar *names = NULL;

  g_assert_cmpint (run_tool (&out, &err, "convert", "--dtype", "f16", index,
          f16, NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "Done: 3 tensors of 3, "));
  write_by_pipeline (index, "uelconvert dtype=f16", ref);
  assert_same_file (f16, ref);
  names = tensor_names (f16);
  g_assert_cmpstr (names, ==, "a.bias\na.weight\nb.weight");
}

/* --max-shard-size splits OUT as transformers does (uelsink's property):
 * the shards and their index hold the bytes the one file would */
static void
test_convert_max_shard_size (void)
{
  g_autofree gchar *in = write_model ("conv-shard-in.safetensors");
  g_autofree gchar *one = uel_test_path ("conv-one.safetensors");
  g_autofree gchar *split = uel_test_path ("conv-split.safetensors");
  g_autofree gchar *index = g_strconcat (split, ".index.json", NULL);
  g_autofree gchar *out = NULL, *err = NULL;
  g_autoptr (UelHeader) a = NULL;
  g_autoptr (UelHeader) b = NULL;
  g_autoptr (UelReader) ra = NULL;
  g_autoptr (UelReader) rb = NULL;

  g_assert_cmpint (run_tool (&out, &err, "convert", "-q", "--dtype", "bf16",
          in, one, NULL), ==, 0);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "convert", "--dtype", "bf16",
          "--max-shard-size", "100", in, split, NULL), ==, 0);
  g_assert_nonnull (strstr (out, ".index.json and its shards\n"));
  g_assert_false (g_file_test (split, G_FILE_TEST_EXISTS));
  a = uel_test_header_open (one);
  b = uel_test_header_open (index);
  g_assert_cmpuint (uel_header_get_n_files (b), >, 1);
  g_assert_cmpuint (uel_header_get_n_tensors (a), ==,
      uel_header_get_n_tensors (b));
  ra = uel_reader_new (a);
  rb = uel_reader_new (b);
  for (guint i = 0; i < uel_header_get_n_tensors (a); i++) {
    const UelTensorInfo *t = uel_header_get_tensor (a, i);
    guint j;
    g_autoptr (GstBuffer) x = uel_reader_read_tensor (ra, i, NULL);
    g_autoptr (GstBuffer) y = NULL;

    GstMapInfo mx, my;

    g_assert_nonnull (uel_header_lookup (b, t->name, &j));
    y = uel_reader_read_tensor (rb, j, NULL);

    g_assert_cmpuint (uel_header_get_tensor (b, j)->dtype, ==, t->dtype);
    g_assert_true (gst_buffer_map (x, &mx, GST_MAP_READ));
    g_assert_true (gst_buffer_map (y, &my, GST_MAP_READ));
    g_assert_cmpmem (mx.data, mx.size, my.data, my.size);
    gst_buffer_unmap (x, &mx);
    gst_buffer_unmap (y, &my);
  }
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "convert", "--max-shard-size",
          "lots", in, split, NULL), ==, 2);
}

/* --exclude is computed in the tool: the kept names go to uelsrc escaped,
 * so that a name with a comma, a star or a backslash is itself and not a
 * list or a pattern */
static void
test_convert_select (void)
{
  g_autofree gchar *in = write_model ("conv-sel.safetensors");
  g_autofree gchar *odd = uel_test_path ("conv-odd.safetensors");
  g_autofree gchar *dst = uel_test_path ("conv-sel-out.safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  const struct
  {
    const gchar *in;
    const gchar *tensors, *exclude;
    const gchar *want;
  } cases[] = {
    {in, "*.w*,scalar", NULL, "embed.weight\nlayer.0.w\nscalar"},
    {in, NULL, "embed.*,nämé ✓,config", "scalar\nlayer.0.w\nempty"},
    {in, "*e*,s*,config", "empty,?ayer*", "embed.weight\nscalar\nconfig"},
    {odd, NULL, "a\\,b", "w1\nw*\nx\\y"},
    {odd, NULL, "w1", "a,b\nw*\nx\\y"},
    {odd, NULL, "w\\*", "a,b\nw1\nx\\y"},
    {odd, "w*,x\\\\y", "w1", "w*\nx\\y"},
  };

  uel_test_builder_add (b, "a,b", "U8", "[1]", 1, NULL);
  uel_test_builder_add (b, "w*", "U8", "[1]", 1, NULL);
  uel_test_builder_add (b, "w1", "U8", "[1]", 1, NULL);
  uel_test_builder_add (b, "x\\y", "U8", "[1]", 1, NULL);
  uel_test_builder_set_align (b, 8);
  uel_test_builder_write (b, odd, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GPtrArray) args = g_ptr_array_new ();
    g_autofree gchar *out = NULL, *err = NULL, *names = NULL;
    g_auto (GStrv) got = NULL, want = NULL;

    g_ptr_array_add (args, (gpointer) tool);
    g_ptr_array_add (args, (gpointer) "convert");
    g_ptr_array_add (args, (gpointer) "-q");
    if (cases[i].tensors) {
      g_ptr_array_add (args, (gpointer) "--tensors");
      g_ptr_array_add (args, (gpointer) cases[i].tensors);
    }
    if (cases[i].exclude) {
      g_ptr_array_add (args, (gpointer) "--exclude");
      g_ptr_array_add (args, (gpointer) cases[i].exclude);
    }
    g_ptr_array_add (args, (gpointer) cases[i].in);
    g_ptr_array_add (args, (gpointer) dst);
    g_ptr_array_add (args, NULL);
    g_test_message ("--tensors %s --exclude %s", cases[i].tensors,
        cases[i].exclude);
    g_assert_cmpint (spawn_tool ((gchar **) args->pdata, &out, &err), ==, 0);
    g_assert_cmpstr (err, ==, "");

    /* as sets: the file's order is the writer's */
    names = tensor_names (dst);
    got = g_strsplit (names, "\n", -1);
    want = g_strsplit (cases[i].want, "\n", -1);
    g_assert_cmpuint (g_strv_length (got), ==, g_strv_length (want));
    for (guint k = 0; want[k]; k++)
      g_assert_true (g_strv_contains ((const gchar * const *) got, want[k]));
  }
}

static void
test_convert_select_errors (void)
{
  g_autofree gchar *in = write_model ("conv-sel-err.safetensors");
  g_autofree gchar *dst = uel_test_path ("conv-sel-err-out.safetensors");
  g_autofree gchar *out = NULL, *err = NULL;

  /* a name that chooses nothing, in either list, and an empty result */
  g_assert_cmpint (run_tool (&out, &err, "convert", "--exclude", "zzz", in,
          dst, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "--exclude: "));
  g_assert_nonnull (strstr (err, "zzz"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "convert", "--tensors", "zzz", in,
          dst, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "--tensors: "));
  g_assert_nonnull (strstr (err, "zzz"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "convert", "--tensors", "s*",
          "--exclude", "scalar", in, dst, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "--exclude leaves no tensor"));
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
}

static void
test_convert_metadata (void)
{
  g_autofree gchar *in = write_model ("conv-meta.safetensors");
  g_autofree gchar *dst = uel_test_path ("conv-meta-out.safetensors");
  g_autofree gchar *out = NULL, *err = NULL;
  g_autoptr (UelHeader) h = NULL;
  GHashTable *meta;

  /* over IN's metadata; a value with a comma, quotes and blanks as it is;
   * a repeated key: the last */
  g_assert_cmpint (run_tool (&out, &err, "convert", "-q", "--metadata",
          "note=a, \"b\" c", "--metadata", "format=x", "--metadata",
          "format=safetensors", "--metadata", "torch.dtype=bf16=yes", in,
          dst, NULL), ==, 0);
  h = uel_test_header_open (dst);
  meta = uel_header_get_metadata (h);
  g_assert_cmpuint (g_hash_table_size (meta), ==, 4);
  g_assert_cmpstr (g_hash_table_lookup (meta, "note"), ==, "a, \"b\" c");
  g_assert_cmpstr (g_hash_table_lookup (meta, "format"), ==, "safetensors");
  g_assert_cmpstr (g_hash_table_lookup (meta, "generator"), ==, "test-tool");
  g_assert_cmpstr (g_hash_table_lookup (meta, "torch.dtype"), ==, "bf16=yes");
  g_clear_pointer (&h, uel_header_unref);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* --drop-metadata: only the fields given */
  g_assert_cmpint (run_tool (&out, &err, "convert", "-q", "--drop-metadata",
          "-M", "k=v", in, dst, NULL), ==, 0);
  h = uel_test_header_open (dst);
  meta = uel_header_get_metadata (h);
  g_assert_cmpuint (g_hash_table_size (meta), ==, 1);
  g_assert_cmpstr (g_hash_table_lookup (meta, "k"), ==, "v");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* not KEY=VALUE, or a key the property cannot carry: usage errors */
  for (guint i = 0; i < 3; i++) {
    const gchar *bad[] = { "novalue", "=v", "a key=v" };

    g_assert_cmpint (run_tool (&out, &err, "convert", "--metadata", bad[i],
            in, dst, NULL), ==, 2);
    g_assert_nonnull (strstr (err, "--metadata "));
    g_clear_pointer (&out, g_free);
    g_clear_pointer (&err, g_free);
  }
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

/* the names of the files in @dir, sorted, comma-separated */
static gchar *
folder_listing (const gchar * dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const gchar *n;

  g_assert_nonnull (d);
  while ((n = g_dir_read_name (d)))
    g_ptr_array_add (names, g_strdup (n));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (",", (gchar **) names->pdata);
}

/* Ctrl-C while converting: NULL at once, no EOS, so uelsink removes its
 * temporary file; OUT stays as it was, or absent.  The test needs the
 * conversion still running when the signal arrives: a model that ended
 * first is tried again four times larger. */
static void
test_convert_interrupt (void)
{
  g_autofree gchar *dir = uel_test_path ("conv-int");
  g_autofree gchar *in = g_build_filename (dir, "in.safetensors", NULL);
  g_autofree gchar *dst = g_build_filename (dir, "out.safetensors", NULL);
  const gchar *old = "what was there before";
  guint n_tensors = 64, interrupted = 0;

  g_assert_cmpint (g_mkdir (dir, 0755), ==, 0);
  for (guint attempt = 0; attempt < 4 && interrupted < 2; attempt++) {
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();

    for (guint i = 0; i < n_tensors; i++) {
      g_autofree gchar *name = g_strdup_printf ("t%04u", i);
      uel_test_builder_add (b, name, "F32", "[65536]", 262144, NULL);
    }
    uel_test_builder_write (b, in, NULL);

    /* with OUT there, then without */
    for (guint with_old = 1; with_old < 2 && interrupted < 2; with_old--) {
      const gchar *args[] = { "convert", "--interval", "0.01", "--dtype",
        "f8-e4m3", in, dst, NULL
      };
      g_autoptr (GString) err = g_string_new (NULL);
      g_autofree gchar *out = NULL, *listing = NULL;
      gboolean sent;
      gint status;

      if (with_old)
        uel_test_write_bytes (dst, old, strlen (old));
      else
        g_assert_cmpint (g_unlink (dst), ==, 0);
      status = run_interrupted (args, &out, err, &sent);
      if (status == 0) {
        /* it ended before the signal arrived: OUT complete */
        g_test_message ("%u tensors: done before Ctrl-C", n_tensors);
        g_unlink (dst);
        break;
      }
      g_assert_true (sent);
      g_assert_cmpint (status, ==, 130);
      g_assert_nonnull (strstr (err->str, "Interrupt: stopping the pipeline "
              "at once"));
      g_assert_nonnull (strstr (err->str, "was not written\n"));
      g_assert_null (strstr (err->str, "ERROR"));
      g_assert_true (g_str_has_prefix (out, "Interrupted: "));

      /* nothing left behind: no temporary .out.safetensors.XXXXXX */
      listing = folder_listing (dir);
      if (with_old) {
        g_autofree gchar *now = NULL;

        g_assert_cmpstr (listing, ==, "in.safetensors,out.safetensors");
        g_assert_true (g_file_get_contents (dst, &now, NULL, NULL));
        g_assert_cmpstr (now, ==, old);
      } else {
        g_assert_cmpstr (listing, ==, "in.safetensors");
      }
      interrupted++;
    }
    n_tensors *= 4;
  }
  g_assert_cmpuint (interrupted, ==, 2);
}

static void
test_convert_errors (void)
{
  g_autofree gchar *in = write_model ("conv-err.safetensors");
  g_autofree gchar *missing = uel_test_path ("conv-missing.safetensors");
  g_autofree gchar *bad = uel_test_path ("conv-bad.safetensors");
  g_autofree gchar *no_dir = uel_test_path ("conv-no-dir/out.safetensors");
  g_autofree gchar *dst = uel_test_path ("conv-err-out.safetensors");
  g_autofree gchar *out = NULL, *err = NULL;
  g_autoptr (GError) expected = NULL;

  /* a missing IN, an invalid one: the message names the file */
  g_assert_cmpint (run_tool (&out, &err, "convert", missing, dst, NULL), ==,
      1);
  g_assert_true (g_str_has_prefix (err, "gst-uel convert: "));
  g_assert_nonnull (strstr (err, missing));
  g_assert_nonnull (strstr (err, "No such file or directory"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  uel_test_write_safetensors (bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[0,4]}}", "abcd", 4);
  g_assert_null (uel_header_open (bad, &expected));
  g_assert_cmpint (run_tool (&out, &err, "convert", bad, dst, NULL), ==, 1);
  g_assert_nonnull (strstr (err, expected->message));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));

  /* a folder that is not there: uelsink's message names OUT */
  g_assert_cmpint (run_tool (&out, &err, "convert", in, no_dir, NULL), ==, 1);
  g_test_message ("%s", err);
  g_assert_nonnull (strstr (err, "ERROR: "));
  g_assert_nonnull (strstr (err, no_dir));
  g_assert_true (g_str_has_prefix (out, "Failed: "));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* usage errors: a dtype that is none, IN and OUT missing */
  g_assert_cmpint (run_tool (&out, &err, "convert", "--dtype", "f7", in, dst,
          NULL), ==, 2);
  g_assert_nonnull (strstr (err, "--dtype f7: "));
  g_assert_nonnull (strstr (err, "bf16"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "convert", in, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "give IN and OUT"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_tool (&out, &err, "convert", "--interval", "0", in,
          dst, NULL), ==, 2);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
}

/* ------------------------------------------------------------------ */

static void
test_make_model (void)
{
  g_autofree gchar *path = uel_test_path ("made.safetensors");
  g_autofree gchar *out = NULL, *err = NULL;
  g_autoptr (UelHeader) h = NULL;
  GError *error = NULL;

  g_assert_cmpint (run_tool (&out, &err, "make-model", "--layers", "1",
          path, NULL), ==, 0);
  h = uel_header_open (path, &error);
  g_assert_no_error (error);
  /* embedding, 9 per layer, the final norm, two dictionaries */
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 1 + 9 + 1 + 2);
  g_assert_nonnull (uel_header_lookup (h, "config", NULL));
  /* laid out as the reference writes: the BF16 weights by name, then the
   * U8 dictionaries; the metadata kept */
  g_assert_cmpstr (uel_header_get_tensor (h, 0)->name, ==,
      "model.embed_tokens.weight");
  g_assert_cmpstr (uel_header_get_tensor (h, 1)->name, ==,
      "model.layers.0.input_layernorm.weight");
  g_assert_cmpstr (uel_header_get_tensor (h, 11)->name, ==, "config");
  g_assert_cmpstr (uel_header_get_tensor (h, 12)->name, ==, "quantization");
  g_assert_cmpstr (g_hash_table_lookup (uel_header_get_metadata (h),
          "generator"), ==, "gst-uel make-model");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* a size that is not one, or past 2^64, is a usage error */
  for (guint i = 0; i < 4; i++) {
    const gchar *bad[] = { "lots", "4X", "4GB", "99999999999G" };

    g_assert_cmpint (run_tool (&out, &err, "make-model", "--size", bad[i],
            path, NULL), ==, 2);
    g_assert_nonnull (strstr (err, "--size"));
    g_clear_pointer (&out, g_free);
    g_clear_pointer (&err, g_free);
  }
}

/* make-model writes through UelWriter: a folder that is not there is an
 * error naming the file, and nothing is left behind */
static void
test_make_model_no_folder (void)
{
  g_autofree gchar *path = uel_test_path ("no-such-folder/m.safetensors");
  g_autofree gchar *out = NULL, *err = NULL;

  g_assert_cmpint (run_tool (&out, &err, "make-model", path, NULL), ==, 1);
  g_assert_nonnull (strstr (err, "m.safetensors"));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/tool/version-help-and-usage-errors",
      test_version_and_help);
  g_test_add_func ("/tool/inspect/prints-a-table-metadata-totals-verdict",
      test_inspect_table);
  g_test_add_func ("/tool/inspect/invalid-file-prints-only-the-message",
      test_inspect_invalid);
  g_test_add_func ("/tool/inspect/sharded-checkpoint", test_inspect_sharded);
  g_test_add_func ("/tool/hostile-names-and-metadata-are-escaped",
      test_hostile_text_is_escaped);
  g_test_add_func ("/tool/hostile-paths-are-escaped",
      test_hostile_paths_are_escaped);
  g_test_add_func ("/tool/inspect/json-parses-back", test_inspect_json);
  g_test_add_func ("/tool/inspect/checksum-equals-sha256-of-the-bytes",
      test_inspect_checksum);
  g_test_add_func ("/tool/launch/runs-to-eos-with-a-summary",
      test_launch_eos);
  g_test_add_func ("/tool/launch/plain-progress-lines-when-not-a-terminal",
      test_launch_progress_lines);
  g_test_add_func ("/tool/launch/progress-bar-on-a-terminal",
      test_launch_progress_bar);
  g_test_add_func ("/tool/launch/errors-exit-non-zero-with-the-message",
      test_launch_errors);
  g_test_add_func ("/tool/launch/ctrl-c-stops-cleanly", test_launch_interrupt);
  g_test_add_func ("/tool/convert/bf16-is-what-the-pipeline-writes",
      test_convert_dtype);
  g_test_add_func ("/tool/convert/sharded-checkpoint-into-one-file",
      test_convert_sharded);
  g_test_add_func ("/tool/convert/max-shard-size-splits-as-transformers",
      test_convert_max_shard_size);
  g_test_add_func ("/tool/convert/tensors-and-exclude-select-exactly",
      test_convert_select);
  g_test_add_func ("/tool/convert/selection-that-chooses-nothing-is-an-error",
      test_convert_select_errors);
  g_test_add_func ("/tool/convert/metadata-lands-in-metadata",
      test_convert_metadata);
  g_test_add_func ("/tool/convert/ctrl-c-leaves-nothing-behind",
      test_convert_interrupt);
  g_test_add_func ("/tool/convert/errors-name-the-file",
      test_convert_errors);
  g_test_add_func ("/tool/make-model/writes-a-valid-model", test_make_model);
  g_test_add_func ("/tool/make-model/missing-folder",
      test_make_model_no_folder);
  return g_test_run ();
}
