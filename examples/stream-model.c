/* gst-uel example: stream every tensor of a file through a pipeline built
 * from C and print what arrived.
 *
 *   stream-model model.safetensors
 *
 * The pipeline is uelsrc ! uelqueue ! fakesink when uelqueue exists (or
 * uelsrc ! fakesink), built with gst_element_factory_make; each tensor
 * reaches the sink's "handoff" signal with its UelTensorMeta.
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>
#include <gst-uel/uel.h>

static void
on_tensor (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer data)
{
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
  guint64 *total = data;
  GString *shape = g_string_new ("[");
  GstMapInfo map;
  guint32 sum = 0;
  const guint64 *dims;
  guint n_dims;

  dims = uel_tensor_meta_get_shape (meta, &n_dims);
  for (guint d = 0; d < n_dims; d++)
    g_string_append_printf (shape, "%s%" G_GUINT64_FORMAT, d ? ", " : "",
        dims[d]);
  g_string_append_c (shape, ']');

  /* a cheap checksum, to show the bytes really are there */
  if (gst_buffer_map (buf, &map, GST_MAP_READ)) {
    for (gsize i = 0; i < map.size; i++)
      sum = sum * 31 + map.data[i];
    gst_buffer_unmap (buf, &map);
  }
  g_print ("%4u/%-4u %-48s %-5s %-16s %10" G_GSIZE_FORMAT " bytes  "
      "sum %08x\n", meta->index + 1, meta->count,
      uel_tensor_meta_get_name (meta), uel_dtype_to_string (meta->dtype),
      shape->str, gst_buffer_get_size (buf), sum);
  *total += gst_buffer_get_size (buf);
  g_string_free (shape, TRUE);
}

int
main (int argc, char **argv)
{
  GstElement *pipeline, *src, *queue = NULL, *sink;
  GstBus *bus;
  GstMessage *msg;
  guint64 total = 0;
  gint ret = 0;

  gst_init (&argc, &argv);
  if (argc != 2) {
    g_printerr ("usage: %s FILE.safetensors\n", argv[0]);
    return 2;
  }

  pipeline = gst_pipeline_new ("stream-model");
  src = gst_element_factory_make ("uelsrc", NULL);
  sink = gst_element_factory_make ("fakesink", NULL);
  if (!src || !sink) {
    g_printerr ("the uel plugin is not installed (GST_PLUGIN_PATH?)\n");
    return 1;
  }
  queue = gst_element_factory_make ("uelqueue", NULL);
  g_object_set (src, "location", argv[1], NULL);
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_tensor), &total);

  gst_bin_add_many (GST_BIN (pipeline), src, sink, NULL);
  if (queue) {
    gst_bin_add (GST_BIN (pipeline), queue);
    gst_element_link_many (src, queue, sink, NULL);
  } else {
    gst_element_link (src, sink);
  }

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gst_message_parse_error (msg, &err, NULL);
    g_printerr ("error: %s\n", err->message);
    g_error_free (err);
    ret = 1;
  } else {
    g_print ("done: %" G_GUINT64_FORMAT " bytes of tensors\n", total);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  return ret;
}
