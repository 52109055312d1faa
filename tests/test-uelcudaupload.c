/* gst-uel: uelcudaupload where no device can be used
 *
 * cuda-device-id=99 names a device no machine here has, so these paths run
 * the same on a GPU host as on a machine without a driver.
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include <gst/base/gstbasetransform.h>

#include "test-utils.h"

static gchar *
write_model (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  gchar *path = uel_test_path ("upload.safetensors");

  uel_test_builder_add (b, "w", "F32", "[100,10]", 4000, NULL);
  uel_test_builder_add (b, "h", "F16", "[7]", 14, NULL);
  uel_test_builder_add (b, "b", "BF16", "[3,3]", 18, NULL);
  uel_test_builder_add (b, "ids", "I64", "[5]", 40, NULL);
  uel_test_builder_write (b, path, NULL);
  return path;
}

typedef struct
{
  GPtrArray *bufs;
  guint warnings;
  GError *error;
  GstStructure *stats;
} Run;

static void
collect (GstElement * sink, GstBuffer * buf, GstPad * pad, GPtrArray * bufs)
{
  g_ptr_array_add (bufs, gst_buffer_ref (buf));
}

static void
run (const gchar * launch, Run * r)
{
  GError *err = NULL;
  GstElement *p = gst_parse_launch (launch, &err);
  GstElement *sink, *up;
  GstBus *bus;
  GstMessage *msg;

  g_assert_no_error (err);
  r->bufs = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_buffer_unref);
  sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  up = gst_bin_get_by_name (GST_BIN (p), "up");
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (collect), r->bufs);
  bus = gst_element_get_bus (p);
  gst_element_set_state (p, GST_STATE_PLAYING);
  while ((msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
              GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING))) {
    GstMessageType t = GST_MESSAGE_TYPE (msg);

    if (t == GST_MESSAGE_WARNING && GST_MESSAGE_SRC (msg) == GST_OBJECT (up)) {
      GError *w = NULL;
      gst_message_parse_warning (msg, &w, NULL);
      g_assert_nonnull (strstr (w->message, "Cannot copy tensors to the "
              "GPU"));
      g_error_free (w);
      r->warnings++;
    }
    if (t == GST_MESSAGE_ERROR)
      gst_message_parse_error (msg, &r->error, NULL);
    gst_message_unref (msg);
    if (t != GST_MESSAGE_WARNING)
      break;
  }
  g_object_get (up, "stats", &r->stats, NULL);
  g_assert_cmpint (gst_element_set_state (p, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (up);
  gst_object_unref (p);
}

static void
run_clear (Run * r)
{
  g_ptr_array_unref (r->bufs);
  g_clear_error (&r->error);
  gst_structure_free (r->stats);
}

/* exact host bytes, meta untouched, in order */
static void
check_passthrough (GPtrArray * bufs, const gchar * path, guint n)
{
  g_autofree gchar *data = NULL;
  gsize len;
  guint t = 0;
  guint64 pos = 0;

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  for (guint i = 0; i < bufs->len; i++) {
    GstBuffer *buf = g_ptr_array_index (bufs, i);
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    const UelTensorInfo *info = uel_tensor_meta_get_tensor_info (meta);
    GstMapInfo map;

    g_assert_false (uel_memory_is_cuda (gst_buffer_peek_memory (buf, 0)));
    g_assert_cmpuint (meta->tensor_index, ==, t);
    g_assert_cmpuint (meta->dtype, ==, info->dtype);
    g_assert_cmpuint (meta->chunk_offset, ==, pos);
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpmem (map.data, map.size, data + info->file_offset + pos,
        map.size);
    gst_buffer_unmap (buf, &map);
    pos += map.size;
    if (meta->last_chunk) {
      g_assert_cmpuint (pos, ==, info->n_bytes);
      t++;
      pos = 0;
    }
  }
  g_assert_cmpuint (t, ==, n);
}

static void
test_passthrough (void)
{
  g_autofree gchar *path = write_model ();
  const gchar *variants[] = {
    "", "convert-to=f16", "single-allocation=true max-in-flight=1"
  };
  const gchar *chunks[] = { "", "chunk-size=1000" };

  for (guint v = 0; v < G_N_ELEMENTS (variants); v++) {
    for (guint c = 0; c < G_N_ELEMENTS (chunks); c++) {
      g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
          "%s ! uelcudaupload name=up cuda-device-id=99 %s ! fakesink "
          "name=sink", path, chunks[c], variants[v]);
      Run r = { 0, };

      run (launch, &r);
      g_assert_no_error (r.error);
      g_assert_cmpuint (r.warnings, ==, 1);
      check_passthrough (r.bufs, path, 4);
      g_assert_cmpuint (uel_test_stat (r.stats, "fallbacks"), ==, r.bufs->len);
      g_assert_cmpuint (uel_test_stat (r.stats, "fallback-bytes"), ==, 4072);
      g_assert_cmpuint (uel_test_stat (r.stats, "tensors"), ==, 0);
      run_clear (&r);
    }
  }
}

static void
test_fallback_error (void)
{
  g_autofree gchar *path = write_model ();
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "uelcudaupload name=up cuda-device-id=99 fallback=error ! fakesink "
      "name=sink", path);
  Run r = { 0, };

  run (launch, &r);
  g_assert_error (r.error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (r.error->message, "Cannot copy tensors to the "
          "GPU"));
  g_assert_nonnull (strstr (r.error->message, "CUDA"));
  g_assert_cmpuint (r.bufs->len, ==, 0);
  run_clear (&r);
}

static void
test_properties (void)
{
  GstElement *e = gst_element_factory_make ("uelcudaupload", NULL);
  gint device;
  guint in_flight;
  gboolean single;
  guint64 pool;

  g_assert_nonnull (e);
  g_object_get (e, "cuda-device-id", &device, "max-in-flight", &in_flight,
      "single-allocation", &single, "pool-size", &pool, NULL);
  g_assert_cmpint (device, ==, -1);
  g_assert_cmpuint (in_flight, ==, 4);
  g_assert_false (single);
  g_assert_cmpuint (pool, ==, 256 << 20);
  gst_util_set_object_arg (G_OBJECT (e), "convert-to", "bf16");
  gst_util_set_object_arg (G_OBJECT (e), "fallback", "error");
  {
    GValue c = G_VALUE_INIT, f = G_VALUE_INIT;

    g_object_get_property (G_OBJECT (e), "convert-to", g_value_init (&c,
            g_type_from_name ("GstUelConvertTo")));
    g_object_get_property (G_OBJECT (e), "fallback", g_value_init (&f,
            g_type_from_name ("GstUelFallback")));
    g_assert_cmpstr (g_enum_get_value (g_type_class_peek (G_VALUE_TYPE (&c)),
            g_value_get_enum (&c))->value_nick, ==, "bf16");
    g_assert_cmpstr (g_enum_get_value (g_type_class_peek (G_VALUE_TYPE (&f)),
            g_value_get_enum (&f))->value_nick, ==, "error");
    g_value_unset (&c);
    g_value_unset (&f);
  }
  gst_object_unref (e);
}

static GstCaps *
query_caps (GstElement * e, const gchar * pad_name)
{
  GstPad *pad = gst_element_get_static_pad (e, pad_name);
  GstCaps *caps = gst_pad_query_caps (pad, NULL);

  gst_object_unref (pad);
  return caps;
}

/* A GstBaseTransform whose CAPS answers translate the memory feature by
 * direction: stopped, it may give device or host memory; upstream of a
 * consumer of device memory any host memory will do, and upstream of a
 * consumer of system memory only system memory (passed through). */
static void
test_transform_caps (void)
{
  g_autoptr (GstElement) bin = gst_parse_launch ("uelcudaupload name=up ! "
      "capsfilter name=f ! fakesink", NULL);
  g_autoptr (GstElement) up = gst_bin_get_by_name (GST_BIN (bin), "up");
  g_autoptr (GstElement) f = gst_bin_get_by_name (GST_BIN (bin), "f");
  g_autoptr (GstCaps) any = gst_caps_from_string (UEL_TENSOR_MEDIA_TYPE
      "(ANY)");
  g_autoptr (GstCaps) sys = gst_caps_from_string (UEL_TENSOR_MEDIA_TYPE);
  g_autoptr (GstCaps) cuda = gst_caps_from_string (UEL_TENSOR_MEDIA_TYPE
      "(" UEL_CAPS_FEATURE_MEMORY_CUDA ")");
  GstCaps *caps;

  g_assert_true (GST_IS_BASE_TRANSFORM (up));

  /* downstream takes anything: device memory first, host memory too */
  caps = query_caps (up, "src");
  g_assert_cmpuint (gst_caps_get_size (caps), ==, 2);
  g_assert_true (gst_caps_features_contains (gst_caps_get_features (caps, 0),
          UEL_CAPS_FEATURE_MEMORY_CUDA));
  gst_caps_unref (caps);

  g_object_set (f, "caps", cuda, NULL);
  caps = query_caps (up, "sink");
  g_assert_true (gst_caps_is_equal (caps, any));
  gst_caps_unref (caps);

  g_object_set (f, "caps", sys, NULL);
  caps = query_caps (up, "sink");
  g_assert_true (gst_caps_is_equal (caps, sys));
  gst_caps_unref (caps);
}

/* Without a device the element passes buffers through and says so in its
 * caps: downstream gets the input caps, never memory:UelCUDA, and a
 * consumer that insists on device memory fails to negotiate instead of
 * receiving host buffers labelled as device memory. */
static void
test_no_device_caps (void)
{
  g_autofree gchar *path = write_model ();
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "uelcudaupload name=up cuda-device-id=99 ! fakesink name=sink", path);
  g_autofree gchar *strict = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "uelcudaupload name=up cuda-device-id=99 ! " UEL_TENSOR_MEDIA_TYPE
      "(" UEL_CAPS_FEATURE_MEMORY_CUDA ") ! fakesink name=sink", path);
  g_autoptr (GstElement) p = gst_parse_launch (launch, NULL);
  g_autoptr (GstElement) up = gst_bin_get_by_name (GST_BIN (p), "up");
  g_autoptr (GstBus) bus = gst_element_get_bus (p);
  g_autoptr (GstMessage) msg = NULL;
  GstPad *src = gst_element_get_static_pad (up, "src");
  GstPad *sink = gst_element_get_static_pad (up, "sink");
  GstCaps *in, *out;
  Run r = { 0, };

  gst_element_set_state (p, GST_STATE_PAUSED);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_ASYNC_DONE | GST_MESSAGE_ERROR);
  g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_ASYNC_DONE);
  in = gst_pad_get_current_caps (sink);
  out = gst_pad_get_current_caps (src);
  g_assert_true (gst_caps_is_equal (in, out));
  g_assert_false (gst_caps_features_contains (gst_caps_get_features (out, 0),
          UEL_CAPS_FEATURE_MEMORY_CUDA));
  gst_caps_unref (in);
  gst_caps_unref (out);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (sink);

  run (strict, &r);
  g_assert_error (r.error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED);
  g_assert_cmpuint (r.bufs->len, ==, 0);
  run_clear (&r);
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/uelcudaupload/no-device-passes-exact-host-bytes",
      test_passthrough);
  g_test_add_func ("/uelcudaupload/fallback-error-fails-to-start",
      test_fallback_error);
  g_test_add_func ("/uelcudaupload/properties", test_properties);
  g_test_add_func ("/uelcudaupload/transform-caps", test_transform_caps);
  g_test_add_func ("/uelcudaupload/no-device-caps", test_no_device_caps);
  return g_test_run ();
}
