/* gst-uel: uelsrc through GstHarness and gst_parse_launch pipelines
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <gst/check/gstharness.h>
#include <string.h>
#include <unistd.h>

#include "test-utils.h"

static const gchar *methods[] = { "pread", "mmap", "direct" };

/* the bytes of a file, for comparisons */
static GBytes *
file_bytes (const gchar * path)
{
  gchar *data;
  gsize len;
  GError *err = NULL;

  g_file_get_contents (path, &data, &len, &err);
  g_assert_no_error (err);
  return g_bytes_new_take (data, len);
}

/* every buffer equals the file's bytes at its meta's offset, its meta
 * agrees with the header, and the buffers come in file order */
static void
check_buffers_against_file (GPtrArray * bufs, const gchar * path,
    guint expected)
{
  g_autoptr (GBytes) file = file_bytes (path);
  g_autoptr (UelHeader) h = NULL;
  GError *err = NULL;
  guint64 last = 0;

  h = uel_header_open (path, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (bufs->len, ==, expected);

  for (guint i = 0; i < bufs->len; i++) {
    GstBuffer *buf = g_ptr_array_index (bufs, i);
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    const UelTensorInfo *info;
    GstMapInfo map;
    gsize elem;

    g_assert_nonnull (meta);
    info = uel_tensor_meta_get_tensor_info (meta);
    g_assert_cmpuint (meta->index, ==, i);
    g_assert_cmpuint (meta->count, ==, expected);
    g_assert_cmpuint (meta->n_bytes, ==, info->n_bytes);
    g_assert_true (meta->last_chunk);
    g_assert_cmpuint (GST_BUFFER_OFFSET (buf), ==, info->file_offset);
    g_assert_cmpuint (GST_BUFFER_OFFSET_END (buf), ==,
        info->file_offset + info->n_bytes);
    g_assert_cmpuint (GST_BUFFER_OFFSET (buf), >=, last);
    last = GST_BUFFER_OFFSET (buf);
    g_assert_cmpstr (uel_tensor_meta_get_file (meta), ==, path);
    g_assert_nonnull (uel_header_lookup (h, info->name, NULL));

    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpuint (map.size, ==, info->n_bytes);
    if (map.size)
      g_assert_cmpmem (map.data, map.size,
          (const guint8 *) g_bytes_get_data (file, NULL) + info->file_offset,
          info->n_bytes);
    /* data is aligned to its element size, whatever the file's layout */
    elem = MAX (uel_dtype_get_bits (info->dtype) / 8, 1);
    if (map.size)
      g_assert_cmpuint (GPOINTER_TO_SIZE (map.data) % elem, ==, 0);
    gst_buffer_unmap (buf, &map);
  }
}

static GPtrArray *
run_ok (const gchar * launch)
{
  GPtrArray *bufs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  GError *err = uel_test_run_pipeline (launch, bufs);

  g_assert_no_error (err);
  return bufs;
}

/* ------------------------------------------------------------------ */

static void
test_conformance (void)
{
  static const gchar *files[] = { "B", "b", "H", "h", "I", "i", "e", "f",
    "d", "overall"
  };
  static const gchar *overall_order[] = { "B", "H", "I", "b", "d", "e", "f",
    "h", "i"
  };

  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    for (guint f = 0; f < G_N_ELEMENTS (files); f++) {
      g_autofree gchar *name = g_strdup_printf ("%s.safetensors", files[f]);
      g_autofree gchar *path = g_build_filename (uel_test_conformance_dir (),
          name, NULL);
      g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
          "method=%s ! fakesink name=sink", path, methods[m]);
      g_autoptr (GPtrArray) bufs = run_ok (launch);
      guint n = strcmp (files[f], "overall") == 0 ? 9 : 1;

      check_buffers_against_file (bufs, path, n);
      for (guint i = 0; i < n; i++) {
        UelTensorMeta *meta =
            uel_buffer_get_tensor_meta (g_ptr_array_index (bufs, i));
        guint nd;
        const guint64 *shape = uel_tensor_meta_get_shape (meta, &nd);

        g_assert_cmpstr (uel_tensor_meta_get_name (meta), ==,
            n == 1 ? files[f] : overall_order[i]);
        g_assert_cmpuint (nd, ==, 1);
        g_assert_cmpuint (shape[0], ==, 6);
      }
    }
  }
}

/* the values -3 … 2 of the conformance README, as the source delivers them */
static void
test_conformance_values (void)
{
  g_autofree gchar *path = g_build_filename (uel_test_conformance_dir (),
      "overall.safetensors", NULL);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "fakesink name=sink", path);
  g_autoptr (GPtrArray) bufs = run_ok (launch);

  for (guint i = 0; i < bufs->len; i++) {
    GstBuffer *buf = g_ptr_array_index (bufs, i);
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    GstMapInfo map;

    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    for (gint k = 0; k < 6; k++) {
      gdouble v = 0;

      switch (meta->dtype) {
        case UEL_DTYPE_U8:
          v = (gint8) map.data[k];
          break;
        case UEL_DTYPE_I8:
          v = ((gint8 *) map.data)[k];
          break;
        case UEL_DTYPE_U16:
        case UEL_DTYPE_I16:
          v = ((gint16 *) map.data)[k];
          break;
        case UEL_DTYPE_U32:
        case UEL_DTYPE_I32:
          v = ((gint32 *) map.data)[k];
          break;
        case UEL_DTYPE_F32:
          v = ((gfloat *) map.data)[k];
          break;
        case UEL_DTYPE_F64:
          v = ((gdouble *) map.data)[k];
          break;
        case UEL_DTYPE_F16:{
          /* -3..2 are exact in F16: sign, exponent, 10-bit mantissa */
          guint16 h = ((guint16 *) map.data)[k];
          gint e = (h >> 10) & 0x1f;
          gdouble mant = e ? 1.0 + (h & 0x3ff) / 1024.0 : 0;
          v = (h & 0x8000 ? -1 : 1) * (e ? mant * (1 << e) / (1 << 15) : 0);
          break;
        }
        default:
          g_assert_not_reached ();
      }
      g_assert_cmpfloat (v, ==, (gdouble) (k - 3));
    }
    gst_buffer_unmap (buf, &map);
  }
}

static const gchar *all_dtypes[][2] = {
  {"BOOL", "8"}, {"U8", "8"}, {"I8", "8"}, {"F8_E5M2", "8"},
  {"F8_E4M3", "8"}, {"F8_E8M0", "8"}, {"F8_E4M3FNUZ", "8"},
  {"F8_E5M2FNUZ", "8"}, {"F4", "4"}, {"F6_E2M3", "6"}, {"F6_E3M2", "6"},
  {"I16", "16"}, {"U16", "16"}, {"F16", "16"}, {"BF16", "16"},
  {"I32", "32"}, {"U32", "32"}, {"F32", "32"}, {"C64", "64"},
  {"F64", "64"}, {"I64", "64"}, {"U64", "64"},
};

static gchar *
write_every_dtype (guint align)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  gchar *path = uel_test_path (align ? "dtypes-aligned.safetensors" :
      "dtypes.safetensors");

  uel_test_builder_set_align (b, align);
  uel_test_builder_set_metadata (b, "format", "pt");
  for (guint i = 0; i < G_N_ELEMENTS (all_dtypes); i++) {
    guint bits = (guint) atoi (all_dtypes[i][1]);
    /* 8 × 3 elements: whole bytes for every width */
    uel_test_builder_add (b, all_dtypes[i][0], all_dtypes[i][0], "[8,3]",
        24 * bits / 8, NULL);
  }
  uel_test_builder_add (b, "scalar", "F32", "[]", 4, NULL);
  uel_test_builder_add (b, "empty", "F32", "[0,7]", 0, NULL);
  uel_test_builder_add (b, "ünïcødé/名前 ✓", "U8", "[5]", 5, NULL);
  uel_test_builder_write (b, path, NULL);
  return path;
}

/* write_every_dtype's tensors in file order: as added (unaligned, by
 * hand), or as the reference orders them (aligned, by UelWriter: dtype
 * from the widest down, then name) */
static const gchar *every_dtype_added[] = {
  "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
  "F8_E5M2FNUZ", "F4", "F6_E2M3", "F6_E3M2", "I16", "U16", "F16", "BF16",
  "I32", "U32", "F32", "C64", "F64", "I64", "U64", "scalar", "empty",
  "ünïcødé/名前 ✓",
};

static const gchar *every_dtype_reference[] = {
  "U64", "I64", "F64", "C64", "F32", "empty", "scalar", "U32", "I32",
  "BF16", "F16", "U16", "I16", "F8_E5M2FNUZ", "F8_E4M3FNUZ", "F8_E8M0",
  "F8_E4M3", "F8_E5M2", "I8", "U8", "ünïcødé/名前 ✓", "F6_E3M2", "F6_E2M3",
  "F4", "BOOL",
};

static void
test_every_dtype (void)
{
  for (guint align = 0; align <= 8; align += 8) {
    g_autofree gchar *path = write_every_dtype (align);
    const gchar **order = align ? every_dtype_reference : every_dtype_added;

    for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
      g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
          "method=%s ! fakesink name=sink", path, methods[m]);
      g_autoptr (GPtrArray) bufs = run_ok (launch);
      guint n = G_N_ELEMENTS (all_dtypes) + 3;

      G_STATIC_ASSERT (G_N_ELEMENTS (every_dtype_added) ==
          G_N_ELEMENTS (all_dtypes) + 3);
      G_STATIC_ASSERT (G_N_ELEMENTS (every_dtype_reference) ==
          G_N_ELEMENTS (all_dtypes) + 3);
      check_buffers_against_file (bufs, path, n);
      for (guint i = 0; i < n; i++) {
        GstBuffer *buf = g_ptr_array_index (bufs, i);
        UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
        const gchar *name = uel_tensor_meta_get_name (meta);

        g_assert_cmpstr (name, ==, order[i]);
        /* the dtype tensors are named after their dtype */
        if (uel_dtype_from_string (name, -1) != UEL_DTYPE_INVALID)
          g_assert_cmpstr (uel_dtype_to_string (meta->dtype), ==, name);
        if (g_str_equal (name, "empty"))
          g_assert_cmpuint (gst_buffer_get_size (buf), ==, 0);
      }
    }
  }
}

static void
test_selection (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("select.safetensors");
  static const gchar *names[] = { "layer.0.weight", "layer.0.bias",
    "layer.1.weight", "layer.1.bias", "embed"
  };
  g_autofree gchar *launch = NULL;
  g_autoptr (GPtrArray) bufs = NULL;
  GError *err;

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    uel_test_builder_add (b, names[i], "F32", "[4]", 16, NULL);
  uel_test_builder_write (b, path, NULL);

  /* patterns select, file order is kept, a tensor matched twice comes once */
  launch = g_strdup_printf ("uelsrc location=\"%s\" tensors=\"embed, "
      "*.weight,layer.0.*\" ! fakesink name=sink", path);
  bufs = run_ok (launch);
  g_assert_cmpuint (bufs->len, ==, 4);
  g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
          (g_ptr_array_index (bufs, 0))), ==, "layer.0.weight");
  g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
          (g_ptr_array_index (bufs, 1))), ==, "layer.0.bias");
  g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
          (g_ptr_array_index (bufs, 2))), ==, "layer.1.weight");
  g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
          (g_ptr_array_index (bufs, 3))), ==, "embed");
  for (guint i = 0; i < bufs->len; i++) {
    UelTensorMeta *meta =
        uel_buffer_get_tensor_meta (g_ptr_array_index (bufs, i));
    g_assert_cmpuint (meta->index, ==, i);
    g_assert_cmpuint (meta->count, ==, 4);
  }

  /* names with commas and pattern characters, escaped */
  {
    g_autoptr (UelTestBuilder) b2 = uel_test_builder_new ();
    g_autofree gchar *path2 = uel_test_path ("select-escaped.safetensors");
    g_autofree gchar *launch2 = NULL;
    g_autoptr (GPtrArray) bufs2 = NULL;

    uel_test_builder_add (b2, "a,b", "U8", "[1]", 1, NULL);
    uel_test_builder_add (b2, "w*", "U8", "[1]", 1, NULL);
    uel_test_builder_add (b2, "w1", "U8", "[1]", 1, NULL);
    uel_test_builder_write (b2, path2, NULL);
    launch2 = g_strdup_printf ("uelsrc location=\"%s\" "
        "tensors=\"w\\\\*, a\\\\,b\" ! fakesink name=sink", path2);
    bufs2 = run_ok (launch2);
    g_assert_cmpuint (bufs2->len, ==, 2);
    g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
            (g_ptr_array_index (bufs2, 0))), ==, "a,b");
    g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
            (g_ptr_array_index (bufs2, 1))), ==, "w*");
  }

  /* a name that matches nothing is an error, and nothing is pushed */
  g_clear_pointer (&launch, g_free);
  g_ptr_array_set_size (bufs, 0);
  launch = g_strdup_printf ("uelsrc location=\"%s\" tensors=embed,nope ! "
      "fakesink name=sink", path);
  err = uel_test_run_pipeline (launch, bufs);
  g_assert_error (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (err->message, "nope"));
  g_assert_cmpuint (bufs->len, ==, 0);
  g_error_free (err);
}

static void
test_num_buffers (void)
{
  g_autofree gchar *path = write_every_dtype (0);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
      "num-buffers=3 ! fakesink name=sink", path);
  g_autoptr (GPtrArray) bufs = run_ok (launch);

  g_assert_cmpuint (bufs->len, ==, 3);
}

/* ------------------------------------------------------------------ */
/* GstHarness */

static void
test_harness_event_order (void)
{
  g_autofree gchar *path = g_build_filename (uel_test_conformance_dir (),
      "overall.safetensors", NULL);
  GstHarness *h = gst_harness_new ("uelsrc");
  GstEvent *ev;
  g_autoptr (UelHeader) header = NULL;
  const GstStructure *s;
  guint n;
  guint64 total;

  g_object_set (h->element, "location", path, NULL);
  gst_harness_play (h);

  ev = gst_harness_pull_event (h);
  g_assert_cmpint (GST_EVENT_TYPE (ev), ==, GST_EVENT_STREAM_START);
  gst_event_unref (ev);
  ev = gst_harness_pull_event (h);
  g_assert_cmpint (GST_EVENT_TYPE (ev), ==, GST_EVENT_CAPS);
  gst_event_unref (ev);
  ev = gst_harness_pull_event (h);
  g_assert_cmpint (GST_EVENT_TYPE (ev), ==, GST_EVENT_SEGMENT);
  gst_event_unref (ev);
  ev = gst_harness_pull_event (h);
  g_assert_true (uel_header_event_parse (ev, &header));
  s = gst_event_get_structure (ev);
  g_assert_true (gst_structure_get_uint (s, "n-tensors", &n));
  g_assert_true (gst_structure_get_uint64 (s, "total-bytes", &total));
  g_assert_cmpuint (n, ==, 9);
  g_assert_cmpuint (total, ==, 168);
  g_assert_cmpstr (gst_structure_get_string (s, "metadata"), ==,
      "{\"test\":\"a\"}");
  g_assert_cmpuint (uel_header_get_n_tensors (header), ==, 9);
  g_assert_true (GST_EVENT_IS_STICKY (ev));
  gst_event_unref (ev);

  for (guint i = 0; i < 9; i++) {
    GstBuffer *buf = gst_harness_pull (h);
    g_assert_cmpuint (uel_buffer_get_tensor_meta (buf)->index, ==, i);
    gst_buffer_unref (buf);
  }
  ev = gst_harness_pull_event (h);
  g_assert_cmpint (GST_EVENT_TYPE (ev), ==, GST_EVENT_EOS);
  gst_event_unref (ev);
  gst_harness_teardown (h);
}

/* The uel-header message of a file whose metadata has a million keys, some
 * of which are no GstStructure field name: built in linear time (one
 * field a key took 40 s for 200,000 keys, and would take about a quarter
 * of an hour here: the test's timeout catches it), and printed as a
 * structure that parses back. */
static void
test_header_message_any_metadata (void)
{
  const guint n_keys = 1000000;
  g_autofree gchar *path = uel_test_path ("million-keys.safetensors");
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=%s ! fakesink",
      path);
  GString *json = g_string_new ("{\"__metadata__\":{\"\":\"empty\","
      "\"sp ace\":\"a\\u001b[2J\\n\"");
  GstElement *pipeline;
  GstBus *bus;
  GstMessage *msg;
  GstStructure *parsed = NULL;
  g_autofree gchar *text = NULL, *expected_meta = NULL;
  g_autoptr (UelHeader) header = NULL, reparsed = NULL;
  GError *err = NULL;

  for (guint i = 0; i < n_keys; i++)
    g_string_append_printf (json, ",\"k%07u\":\"v\"", i);
  g_string_append (json, "},\"w\":{\"dtype\":\"U8\",\"shape\":[2],"
      "\"data_offsets\":[0,2]}}");
  uel_test_write_safetensors (path, json->str, "ab", 2);
  g_string_free (json, TRUE);

  pipeline = gst_parse_launch (launch, &err);
  g_assert_no_error (err);
  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  while ((msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
              GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR))) {
    GstMessageType type = GST_MESSAGE_TYPE (msg);

    if (type == GST_MESSAGE_ELEMENT && !header
        && uel_header_message_parse (msg, &header))
      text = gst_structure_to_string (gst_message_get_structure (msg));
    g_assert_cmpint (type, !=, GST_MESSAGE_ERROR);
    gst_message_unref (msg);
    if (type == GST_MESSAGE_EOS)
      break;
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);

  g_assert_nonnull (header);
  g_assert_cmpuint (g_hash_table_size (uel_header_get_metadata (header)), ==,
      n_keys + 2);
  expected_meta = uel_header_get_metadata_json (header);
  g_assert_true (g_str_has_prefix (expected_meta, "{\"\":\"empty\","
          "\"k0000000\":\"v\","));
  g_assert_true (g_str_has_suffix (expected_meta, ",\"sp ace\":"
          "\"a\\u001b[2J\\n\"}"));

  parsed = gst_structure_from_string (text, NULL);
  g_assert_nonnull (parsed);
  g_assert_cmpstr (gst_structure_get_string (parsed, "metadata"), ==,
      expected_meta);
  g_assert_cmpstr (gst_structure_get_string (parsed, "location"), ==, path);
  /* the header parses back as the same file's header */
  g_assert_true (gst_structure_get (parsed, "header", UEL_TYPE_HEADER,
          &reparsed, NULL));
  g_assert_cmpstr (uel_header_get_location (reparsed), ==, path);
  g_assert_cmpuint (uel_header_get_n_tensors (reparsed), ==, 1);
  gst_structure_free (parsed);
}

static void
count_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer data)
{
  g_atomic_int_inc ((gint *) data);
}

/* Properties documented as settable in NULL or READY are refused with a
 * warning above that, as filesrc refuses its location (an outside test
 * changed num-buffers and chunk-size mid-stream, and location reported a
 * file that was not the one being read); they change again once the
 * pipeline is back in READY. */
static void
test_properties_refused_while_running (void)
{
  g_autofree gchar *path = write_every_dtype (8);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc name=src location=%s "
      "! uelpin name=pin ! uelcudaupload name=up ! fakesink name=sink "
      "signal-handoffs=true", path);
  g_autoptr (UelHeader) header = uel_header_open (path, NULL);
  gint n_buffers = 0;
  const gchar *src_props[] = { "location", "tensors", "method", "io-threads",
    "chunk-size", "dtypes", "ndim", "read-ahead"
  };
  const gchar *values[] = { "/elsewhere.safetensors", "a*", "mmap", "3",
    "4096", "U8", "1", "0"
  };
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *src, *pin, *up;
  GstBus *bus;
  GstMessage *msg;

  g_assert_no_error (err);
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  pin = gst_bin_get_by_name (GST_BIN (pipeline), "pin");
  up = gst_bin_get_by_name (GST_BIN (pipeline), "up");
  {
    GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");

    g_signal_connect (sink, "handoff", G_CALLBACK (count_handoff),
        &n_buffers);
    gst_object_unref (sink);
  }
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_PAUSED), !=,
      GST_STATE_CHANGE_FAILURE);
  g_assert_cmpint (gst_element_get_state (pipeline, NULL, NULL,
          GST_CLOCK_TIME_NONE), ==, GST_STATE_CHANGE_SUCCESS);

  for (guint i = 0; i < G_N_ELEMENTS (src_props); i++) {
    GValue before = G_VALUE_INIT, after = G_VALUE_INIT;

    g_object_get_property (G_OBJECT (src), src_props[i], &before);
    g_test_expect_message (NULL, G_LOG_LEVEL_WARNING,
        "*the '*' property can change only in the READY state or below, "
        "not in PAUSED*");
    gst_util_set_object_arg (G_OBJECT (src), src_props[i], values[i]);
    g_test_assert_expected_messages ();
    g_object_get_property (G_OBJECT (src), src_props[i], &after);
    g_assert_cmpint (gst_value_compare (&before, &after), ==,
        GST_VALUE_EQUAL);
    g_value_unset (&before);
    g_value_unset (&after);
  }
  g_test_expect_message (NULL, G_LOG_LEVEL_WARNING, "*'pool-size'*");
  g_object_set (pin, "pool-size", (guint64) 4096, NULL);
  g_test_assert_expected_messages ();
  g_test_expect_message (NULL, G_LOG_LEVEL_WARNING, "*'max-in-flight'*");
  g_object_set (up, "max-in-flight", 9, NULL);
  g_test_assert_expected_messages ();
  /* GstBaseSrc's num-buffers is taken at start: a change now is kept for
   * the next run, and this one goes on */
  g_object_set (src, "num-buffers", 1, NULL);

  /* and the stream is the one configured before: every tensor, whole */
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_object_unref (bus);
  g_assert_cmpint (g_atomic_int_get (&n_buffers), ==,
      (gint) uel_header_get_n_tensors (header));

  /* back in READY, the same changes are taken */
  gst_element_set_state (pipeline, GST_STATE_READY);
  g_object_set (src, "num-buffers", 1, "location", "/elsewhere.safetensors",
      NULL);
  g_object_set (pin, "pool-size", (guint64) 4096, NULL);
  {
    gint nb;
    g_autofree gchar *loc = NULL;

    g_object_get (src, "num-buffers", &nb, "location", &loc, NULL);
    g_assert_cmpint (nb, ==, 1);
    g_assert_cmpstr (loc, ==, "/elsewhere.safetensors");
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (pin);
  gst_object_unref (up);
  gst_object_unref (pipeline);
}

/* a sink that keeps every buffer: the pinned pool they came from fills */
typedef struct
{
  GMutex lock;
  GCond cond;
  GPtrArray *kept;
} Keeper;

static void
keep_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer data)
{
  Keeper *k = data;

  g_mutex_lock (&k->lock);
  g_ptr_array_add (k->kept, gst_buffer_ref (buf));
  g_cond_broadcast (&k->cond);
  g_mutex_unlock (&k->lock);
}

/* uelsrc waiting for pinned memory that the sink keeps, set to NULL on
 * its own (an application taking a source out of a running pipeline:
 * uelpin, still playing, does not flush its pool): its unlock sets the
 * pool flushing, so the state change does not wait out the pool's 3 s
 * timeout, as it did before uelsrc derived from GstBaseSrc. */
static void
test_unlock_ends_a_pool_wait (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("pool-wait.safetensors");
  g_autofree gchar *launch = NULL;
  GstElement *pipeline, *sink, *pin, *src;
  GstStructure *stats = NULL;
  GError *err = NULL;
  Keeper k;
  gint64 t0, took;

  for (guint i = 0; i < 16; i++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", i);
    uel_test_builder_add (b, name, "U8", "[262144]", 262144, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  launch = g_strdup_printf ("uelsrc name=src location=%s io-threads=1 ! "
      "uelpin name=pin pool-size=2097152 ! fakesink name=sink "
      "signal-handoffs=true", path);
  pipeline = gst_parse_launch (launch, &err);
  g_assert_no_error (err);
  g_mutex_init (&k.lock);
  g_cond_init (&k.cond);
  k.kept = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  pin = gst_bin_get_by_name (GST_BIN (pipeline), "pin");
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  g_signal_connect (sink, "handoff", G_CALLBACK (keep_handoff), &k);

  /* eight tensors of 256 KiB fill the 2 MiB pool: the ninth waits */
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_mutex_lock (&k.lock);
  while (k.kept->len < 8)
    g_cond_wait (&k.cond, &k.lock);
  g_mutex_unlock (&k.lock);
  g_object_get (pin, "stats", &stats, NULL);
  g_assert_cmpuint (uel_test_stat (stats, "pool-live-bytes"), ==, 2 << 20);
  gst_structure_free (stats);

  gst_element_set_locked_state (src, TRUE);
  t0 = g_get_monotonic_time ();
  g_assert_cmpint (gst_element_set_state (src, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  took = g_get_monotonic_time () - t0;
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  g_test_message ("to NULL in %.3f s, %u tensors kept", took / 1e6,
      k.kept->len);
  /* far from the 3 s the wait would last: not a measurement */
  g_assert_cmpint (took, <, G_USEC_PER_SEC);
  g_assert_cmpuint (k.kept->len, ==, 8);

  gst_object_unref (src);
  gst_object_unref (pin);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  /* the pool goes with the last of its buffers */
  g_ptr_array_unref (k.kept);
  g_mutex_clear (&k.lock);
  g_cond_clear (&k.cond);
}

/* a proposed allocator is the one uelsrc reads into, for every method that
 * reads (mmap is zero-copy and allocates nothing) */
static void
test_harness_uses_proposed_allocator (void)
{
  g_autofree gchar *path = write_every_dtype (8);
  const gchar *read_methods[] = { "pread", "direct" };

  for (guint m = 0; m < G_N_ELEMENTS (read_methods); m++) {
    GstHarness *h = gst_harness_new ("uelsrc");
    GstAllocator *alloc = uel_host_allocator_new (0);
    GstAllocationParams params;
    guint64 fresh, reused;
    guint non_empty = 0;

    gst_allocation_params_init (&params);
    gst_harness_set_propose_allocator (h, alloc, &params);
    gst_util_set_object_arg (G_OBJECT (h->element), "method",
        read_methods[m]);
    g_object_set (h->element, "location", path, NULL);
    gst_harness_play (h);
    for (guint i = 0; i < G_N_ELEMENTS (all_dtypes) + 3; i++) {
      GstBuffer *buf = gst_harness_pull (h);
      if (gst_buffer_get_size (buf) > 0) {
        g_assert_true (gst_buffer_peek_memory (buf, 0)->allocator == alloc);
        non_empty++;
      }
      gst_buffer_unref (buf);
    }
    uel_host_allocator_get_stats (UEL_HOST_ALLOCATOR (alloc), &fresh,
        &reused, NULL);
    g_assert_cmpuint (fresh + reused, ==, non_empty);
    gst_harness_teardown (h);
  }
}

/* ------------------------------------------------------------------ */
/* errors */

static void
check_error (const gchar * location, GQuark domain, gint code,
    const gchar * needle)
{
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "fakesink name=sink", location);
  g_autoptr (GPtrArray) bufs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  GError *err = uel_test_run_pipeline (launch, bufs);

  g_assert_error (err, domain, code);
  g_assert_nonnull (strstr (err->message, needle));
  g_assert_cmpuint (bufs->len, ==, 0);
  g_error_free (err);
}

static void
test_errors (void)
{
  g_autofree gchar *missing = uel_test_path ("missing.safetensors");
  g_autofree gchar *bad = uel_test_path ("bad.safetensors");
  g_autofree gchar *tiny = uel_test_path ("tiny.safetensors");
  g_autofree gchar *gap = uel_test_path ("gap.safetensors");
  guint8 data[16] = { 0 };

  check_error (missing, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
      missing);
  check_error (uel_test_tmpdir (), GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_OPEN_READ, "directory");
  check_error ("/dev/null", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
      "not a regular file");

  uel_test_write_bytes (tiny, "1234", 4);
  check_error (tiny, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "rule 1");

  uel_test_write_safetensors (bad, "{\"t\": {\"dtype\": \"F32\", \"shape\": "
      "[4], \"data_offsets\": [0, 16]}} trailing", data, 16);
  check_error (bad, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "rule 5");

  uel_test_write_safetensors (gap, "{\"a\": {\"dtype\": \"F32\", \"shape\": "
      "[2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", "
      "\"shape\": [1], \"data_offsets\": [12, 16]}}", data, 16);
  check_error (gap, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE, "'b'");
}

/* root reads files whatever their mode: as root, the check runs in a
 * subprocess that has become 'nobody' */
static void
test_error_permission (void)
{
  g_autofree gchar *path = uel_test_path ("noperm.safetensors");

  if (!g_test_subprocess ()) {
    const gchar *files[] = { path, NULL };
    guint8 data[4] = { 0 };

    uel_test_write_safetensors (path, "{\"t\":{\"dtype\":\"F32\","
        "\"shape\":[1],\"data_offsets\":[0,4]}}", data, 4);
    g_assert_cmpint (g_chmod (path, 0), ==, 0);
    if (uel_test_run_unprivileged (files))
      return;
  } else {
    uel_test_drop_privileges ();
  }
  check_error (path, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ, path);
}

/* truncates the file while the first tensor is in the sink: the next read
 * must fail with a read error, not deliver a short tensor or crash */
static void
truncate_on_first (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer path)
{
  if (uel_buffer_get_tensor_meta (buf)->index == 0)
    g_assert_cmpint (truncate (path, 8 + 200), ==, 0);
}

static void
test_file_shrinks (void)
{
  const gchar *read_methods[] = { "pread", "direct" };

  for (guint m = 0; m < G_N_ELEMENTS (read_methods); m++) {
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
    g_autofree gchar *path = uel_test_path ("shrinks.safetensors");
    g_autofree gchar *launch = NULL;
    GstElement *pipeline, *sink;
    GstMessage *msg;
    GError *err = NULL;
    g_autofree gchar *debug = NULL;
    guint count = 0;

    uel_test_builder_add (b, "first", "U8", "[4096]", 4096, NULL);
    uel_test_builder_add (b, "second", "U8", "[1048576]", 1048576, NULL);
    uel_test_builder_write (b, path, NULL);

    /* read-ahead=0: the second tensor is read after the first is pushed */
    launch = g_strdup_printf ("uelsrc location=\"%s\" method=%s "
        "read-ahead=0 ! fakesink name=sink signal-handoffs=true", path,
        read_methods[m]);
    pipeline = gst_parse_launch (launch, &err);
    g_assert_no_error (err);
    sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
    g_signal_connect (sink, "handoff", G_CALLBACK (truncate_on_first), path);
    g_signal_connect_swapped (sink, "handoff", G_CALLBACK (g_atomic_int_inc),
        &count);
    gst_element_set_state (pipeline, GST_STATE_PLAYING);
    msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipeline),
        GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_ERROR);
    gst_message_parse_error (msg, &err, &debug);
    g_assert_error (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ);
    g_assert_nonnull (strstr (err->message, "shrank"));
    g_assert_cmpuint (count, ==, 1);
    g_error_free (err);
    gst_message_unref (msg);
    gst_element_set_state (pipeline, GST_STATE_NULL);
    gst_object_unref (sink);
    gst_object_unref (pipeline);
  }
}

/* ------------------------------------------------------------------ */
/* sizes, chunks, threads, shards */

/* one U8 tensor of 4 GiB + 4 KiB in a sparse file: a single buffer with
 * mmap, exact chunks with pread */
static void
test_tensor_over_4gib (void)
{
  const guint64 n = (G_GUINT64_CONSTANT (1) << 32) + 4096;
  g_autofree gchar *path = uel_test_path ("huge.safetensors");
  g_autofree gchar *json = g_strdup_printf ("{\"huge\":{\"dtype\":\"U8\","
      "\"shape\":[%" G_GUINT64_FORMAT "],\"data_offsets\":[0,%"
      G_GUINT64_FORMAT "]}}", n, n);
  guint64 header_len = strlen (json);
  guint8 tail[4] = { 1, 2, 3, 4 };
  gint fd;

  uel_test_write_safetensors (path, json, NULL, 0);
  fd = open (path, O_WRONLY);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, (off_t) (8 + header_len + n)), ==, 0);
  g_assert_cmpint (pwrite (fd, tail, 4, (off_t) (8 + header_len + n - 4)),
      ==, 4);
  close (fd);

  {
    g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
        "method=mmap ! fakesink name=sink", path);
    g_autoptr (GPtrArray) bufs = run_ok (launch);
    GstBuffer *buf;
    GstMapInfo map;

    g_assert_cmpuint (bufs->len, ==, 1);
    buf = g_ptr_array_index (bufs, 0);
    g_assert_cmpuint (gst_buffer_get_size (buf), ==, n);
    g_assert_cmpuint (uel_buffer_get_tensor_meta (buf)->n_bytes, ==, n);
    g_assert_cmpuint (GST_BUFFER_OFFSET_END (buf), ==, 8 + header_len + n);
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpmem (map.data + n - 4, 4, tail, 4);
    g_assert_cmpuint (map.data[(G_GUINT64_CONSTANT (1) << 32) + 1], ==, 0);
    gst_buffer_unmap (buf, &map);
  }
  {
    const guint64 chunk = G_GUINT64_CONSTANT (1) << 30;
    g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
        "chunk-size=%" G_GUINT64_FORMAT " ! fakesink name=sink", path, chunk);
    g_autoptr (GPtrArray) bufs = NULL;
    guint64 pos = 0;

    bufs = run_ok (launch);
    g_assert_cmpuint (bufs->len, ==, 5);
    for (guint i = 0; i < bufs->len; i++) {
      GstBuffer *buf = g_ptr_array_index (bufs, i);
      UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);

      g_assert_cmpuint (meta->chunk_index, ==, i);
      g_assert_cmpuint (meta->chunk_offset, ==, pos);
      g_assert_cmpuint (meta->n_bytes, ==, n);
      g_assert_cmpint (meta->last_chunk, ==, i == 4);
      pos += gst_buffer_get_size (buf);
      if (i == 4) {
        GstMapInfo map;
        g_assert_cmpuint (gst_buffer_get_size (buf), ==, 4096);
        g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
        g_assert_cmpmem (map.data + 4092, 4, tail, 4);
        gst_buffer_unmap (buf, &map);
      }
      /* drop the gigabyte now rather than at the end */
      gst_buffer_unref (buf);
      g_ptr_array_index (bufs, i) = gst_buffer_new ();
    }
    g_assert_cmpuint (pos, ==, n);
  }
  g_unlink (path);
}

/* every chunk size from 1 byte to more than the largest tensor reassembles
 * to the file's exact bytes */
static void
test_chunks_reassemble (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("chunks.safetensors");
  g_autoptr (GBytes) file = NULL;
  g_autoptr (UelHeader) h = NULL;
  const guint64 sizes[] = { 1, 2, 3, 7, 64, 100, 999, 1000, 1001, 4096 };

  uel_test_builder_add (b, "a", "U8", "[1000]", 1000, NULL);
  uel_test_builder_add (b, "b", "F32", "[3]", 12, NULL);
  uel_test_builder_add (b, "c", "U8", "[0]", 0, NULL);
  uel_test_builder_add (b, "d", "U8", "[333]", 333, NULL);
  uel_test_builder_write (b, path, NULL);
  file = file_bytes (path);
  h = uel_header_open (path, NULL);
  g_assert_nonnull (h);

  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
      g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
          "method=%s chunk-size=%" G_GUINT64_FORMAT " ! fakesink name=sink",
          path, methods[m], sizes[s]);
      g_autoptr (GPtrArray) bufs = run_ok (launch);
      guint t = 0, chunk = 0;
      guint64 pos = 0;

      for (guint i = 0; i < bufs->len; i++) {
        GstBuffer *buf = g_ptr_array_index (bufs, i);
        UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
        const UelTensorInfo *info = uel_header_get_tensor (h, t);
        gsize len = gst_buffer_get_size (buf);
        GstMapInfo map;

        g_assert_cmpuint (meta->tensor_index, ==, t);
        g_assert_cmpuint (meta->chunk_index, ==, chunk);
        g_assert_cmpuint (meta->chunk_offset, ==, pos);
        g_assert_cmpuint (len, <=, sizes[s]);
        g_assert_cmpuint (GST_BUFFER_OFFSET (buf), ==, info->file_offset +
            pos);
        g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
        if (len)
          g_assert_cmpmem (map.data, len,
              (const guint8 *) g_bytes_get_data (file, NULL) +
              info->file_offset + pos, len);
        gst_buffer_unmap (buf, &map);
        pos += len;
        chunk++;
        g_assert_cmpint (meta->last_chunk, ==, pos == info->n_bytes);
        if (meta->last_chunk) {
          t++;
          pos = 0;
          chunk = 0;
        }
      }
      g_assert_cmpuint (t, ==, 4);
    }
  }
}

/* tensors split among several I/O threads arrive intact */
static void
test_io_threads (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("threads.safetensors");
  const guint threads[] = { 0, 1, 2, 4, 7 };

  uel_test_builder_set_align (b, 8);
  uel_test_builder_add (b, "big", "U8", "[25165831]", 25165831, NULL);
  uel_test_builder_add (b, "small", "U8", "[3]", 3, NULL);
  uel_test_builder_add (b, "medium", "F32", "[3000000]", 12000000, NULL);
  uel_test_builder_write (b, path, NULL);

  /* read-ahead: none, less than a part, several tensors */
  const gchar *ahead[] = { "0", "1000", "1073741824" };

  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    for (guint t = 0; t < G_N_ELEMENTS (threads); t++) {
      for (guint a = 0; a < G_N_ELEMENTS (ahead); a++) {
        g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
            "method=%s io-threads=%u read-ahead=%s ! fakesink name=sink",
            path, methods[m], threads[t], ahead[a]);
        g_autoptr (GPtrArray) bufs = run_ok (launch);

        check_buffers_against_file (bufs, path, 3);
      }
    }
  }
}

static void
test_many_tiny_tensors (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("tiny-many.safetensors");
  g_autofree gchar *launch = NULL;
  g_autoptr (GPtrArray) bufs = NULL;

  for (guint i = 0; i < 10000; i++) {
    g_autofree gchar *name = g_strdup_printf ("t.%05u", i);
    uel_test_builder_add (b, name, i % 2 ? "U8" : "I16", "[2]",
        i % 2 ? 2 : 4, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! fakesink name=sink",
      path);
  bufs = run_ok (launch);
  check_buffers_against_file (bufs, path, 10000);
  for (guint i = 0; i < 10000; i += 997) {
    g_autofree gchar *name = g_strdup_printf ("t.%05u", i);
    g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
            (g_ptr_array_index (bufs, i))), ==, name);
  }
}

static void
test_sharded (void)
{
  g_autofree gchar *s1 = uel_test_path ("model-00001-of-00002.safetensors");
  g_autofree gchar *s2 = uel_test_path ("model-00002-of-00002.safetensors");
  g_autofree gchar *index = uel_test_path ("model.safetensors.index.json");
  const gchar *json = "{\"metadata\": {\"total_size\": 84}, \"weight_map\": "
      "{\"b.weight\": \"model-00002-of-00002.safetensors\", "
      "\"a.weight\": \"model-00001-of-00002.safetensors\", "
      "\"a.bias\": \"model-00001-of-00002.safetensors\"}}";
  g_autoptr (GBytes) f1 = NULL, f2 = NULL;
  g_autofree gchar *launch = NULL;
  g_autoptr (GPtrArray) bufs = NULL;
  static const gchar *order[] = { "a.weight", "a.bias", "b.weight" };

  {
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
    uel_test_builder_add (b, "a.weight", "F32", "[4,2]", 32, NULL);
    uel_test_builder_add (b, "a.bias", "F32", "[4]", 16, NULL);
    uel_test_builder_write (b, s1, NULL);
  }
  {
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
    uel_test_builder_add (b, "b.weight", "BF16", "[3,6]", 36, NULL);
    uel_test_builder_write (b, s2, NULL);
  }
  uel_test_write_bytes (index, json, strlen (json));
  f1 = file_bytes (s1);
  f2 = file_bytes (s2);

  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    g_clear_pointer (&launch, g_free);
    g_clear_pointer (&bufs, g_ptr_array_unref);
    launch = g_strdup_printf ("uelsrc location=\"%s\" method=%s ! fakesink "
        "name=sink", index, methods[m]);
    bufs = run_ok (launch);
    g_assert_cmpuint (bufs->len, ==, 3);
    for (guint i = 0; i < 3; i++) {
      GstBuffer *buf = g_ptr_array_index (bufs, i);
      UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
      const UelTensorInfo *info = uel_tensor_meta_get_tensor_info (meta);
      GBytes *f = i < 2 ? f1 : f2;
      GstMapInfo map;

      g_assert_cmpstr (uel_tensor_meta_get_name (meta), ==, order[i]);
      g_assert_cmpstr (uel_tensor_meta_get_file (meta), ==, i < 2 ? s1 : s2);
      g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
      g_assert_cmpmem (map.data, map.size,
          (const guint8 *) g_bytes_get_data (f, NULL) + info->file_offset,
          info->n_bytes);
      gst_buffer_unmap (buf, &map);
    }
  }
}

/* ------------------------------------------------------------------ */
/* states */

/* descriptors and mappings of @path held by this process: what uelsrc
 * opens and maps (other descriptors come and go with GStreamer's own
 * threads and polls, and say nothing about uelsrc) */
static guint
count_open (const gchar * path)
{
  GDir *d = g_dir_open ("/proc/self/fd", 0, NULL);
  g_autofree gchar *maps = NULL;
  const gchar *name;
  guint n = 0;

  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d))) {
    g_autofree gchar *fd = g_build_filename ("/proc/self/fd", name, NULL);
    g_autofree gchar *target = g_file_read_link (fd, NULL);
    if (target && strcmp (target, path) == 0)
      n++;
  }
  g_dir_close (d);
  g_assert_true (g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL));
  for (const gchar * p = maps; (p = strstr (p, path)); p++)
    n++;
  return n;
}

/* NULL → PLAYING → NULL, stopping at every point of the stream: no file
 * descriptor, thread or mapping is left behind (memory: the sanitizer
 * build's leak checker) */
static void
test_state_cycling (void)
{
  g_autofree gchar *path = write_every_dtype (8);
  g_autofree gchar *launch = NULL;
  GError *warm;

  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    g_clear_pointer (&launch, g_free);
    launch = g_strdup_printf ("uelsrc location=\"%s\" method=%s "
        "io-threads=3 ! fakesink", path, methods[m]);
    warm = uel_test_run_pipeline (launch, NULL);
    g_assert_no_error (warm);
    g_assert_cmpuint (count_open (path), ==, 0);
    for (guint i = 0; i < 20; i++) {
      GError *err = NULL;
      GstElement *p = gst_parse_launch (launch, &err);

      g_assert_no_error (err);
      g_assert_cmpint (gst_element_set_state (p, GST_STATE_PLAYING), !=,
          GST_STATE_CHANGE_FAILURE);
      if (i % 2) {
        g_assert_cmpint (gst_element_get_state (p, NULL, NULL,
                GST_CLOCK_TIME_NONE), ==, GST_STATE_CHANGE_SUCCESS);
        /* the probe sees what uelsrc holds while it runs */
        g_assert_cmpuint (count_open (path), >=, 1);
      }
      g_assert_cmpint (gst_element_set_state (p, i % 3 ? GST_STATE_NULL :
              GST_STATE_READY), ==, GST_STATE_CHANGE_SUCCESS);
      g_assert_cmpint (gst_element_set_state (p, GST_STATE_NULL), ==,
          GST_STATE_CHANGE_SUCCESS);
      gst_object_unref (p);
    }
    g_assert_cmpuint (count_open (path), ==, 0);
  }
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/uelsrc/reads-conformance-files", test_conformance);
  g_test_add_func ("/uelsrc/conformance-values", test_conformance_values);
  g_test_add_func ("/uelsrc/reads-every-dtype", test_every_dtype);
  g_test_add_func ("/uelsrc/selects-by-name-and-glob", test_selection);
  g_test_add_func ("/uelsrc/stops-after-num-buffers", test_num_buffers);
  g_test_add_func ("/uelsrc/harness/event-order", test_harness_event_order);
  g_test_add_func ("/uelsrc/unlock/ends-a-wait-for-pinned-memory",
      test_unlock_ends_a_pool_wait);
  g_test_add_func ("/uelsrc/properties/refused-while-running",
      test_properties_refused_while_running);
  g_test_add_func ("/uelsrc/header-message/million-metadata-keys-any-key",
      test_header_message_any_metadata);
  g_test_add_func ("/uelsrc/harness/reads-into-proposed-allocator",
      test_harness_uses_proposed_allocator);
  g_test_add_func ("/uelsrc/errors/name-file-and-rule", test_errors);
  g_test_add_func ("/uelsrc/errors/no-permission", test_error_permission);
  g_test_add_func ("/uelsrc/errors/file-shrinks-while-reading",
      test_file_shrinks);
  g_test_add_func ("/uelsrc/tensor-over-4gib", test_tensor_over_4gib);
  g_test_add_func ("/uelsrc/chunks-reassemble", test_chunks_reassemble);
  g_test_add_func ("/uelsrc/io-threads", test_io_threads);
  g_test_add_func ("/uelsrc/10000-tiny-tensors", test_many_tiny_tensors);
  g_test_add_func ("/uelsrc/sharded-checkpoint", test_sharded);
  g_test_add_func ("/uelsrc/state-cycling-leaks-nothing",
      test_state_cycling);
  return g_test_run ();
}
