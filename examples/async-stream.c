/* gst-uel example: asynchronous streaming with pinning and GPU upload, as
 * a pipeline built from C:
 *
 *   uelsrc location=FILE ! uelqueue max-size-bytes=... ! uelpin pool-size=...
 *       ! uelcudaupload ! appsink
 *
 * This is what the Python loader's async_stream(pin_memory=True) followed
 * by transfer_to_gpu_pinned() does, as GStreamer elements: uelsrc reads in
 * its own thread, uelqueue bounds what is read ahead (the backpressure),
 * uelpin reads straight into one pinned pool (uelsrc gets it through the
 * ALLOCATION query), and uelcudaupload copies to the GPU on a CUDA stream.
 * Without a GPU, uelpin's pool is plain memory and uelcudaupload passes the
 * host buffers on: the program runs the same.
 *
 *   async-stream model.safetensors
 *
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst-uel/uel.h>

int
main (int argc, char **argv)
{
  GstElement *pipeline, *src, *queue, *pin, *upload, *sink;
  GstSample *sample;
  GstBus *bus;
  GstMessage *msg;
  GstStructure *stats = NULL;
  guint64 bytes = 0;
  guint tensors = 0, on_gpu = 0;
  gint ret = 0;

  gst_init (&argc, &argv);
  uel_init ();
  if (argc != 2) {
    g_printerr ("usage: %s FILE.safetensors\n", argv[0]);
    return 2;
  }

  pipeline = gst_pipeline_new ("async-stream");
  src = gst_element_factory_make ("uelsrc", NULL);
  queue = gst_element_factory_make ("uelqueue", NULL);
  pin = gst_element_factory_make ("uelpin", NULL);
  upload = gst_element_factory_make ("uelcudaupload", NULL);
  sink = gst_element_factory_make ("appsink", NULL);
  if (!src || !queue || !pin || !upload || !sink) {
    g_printerr ("the uel plugin is not installed (GST_PLUGIN_PATH?)\n");
    return 1;
  }

  g_object_set (src, "location", argv[1], NULL);
  /* read ahead at most 64 MiB: the memory bound of the whole pipeline */
  g_object_set (queue, "max-size-bytes", (guint64) 64 << 20, NULL);
  g_object_set (pin, "pool-size", (guint64) 128 << 20, NULL);
  /* without a GPU, warn once and pass host buffers on */
  gst_util_set_object_arg (G_OBJECT (upload), "fallback", "passthrough");
  /* a pull sink: no clock, a few tensors waiting at most */
  g_object_set (sink, "sync", FALSE, "max-buffers", 4, NULL);

  gst_bin_add_many (GST_BIN (pipeline), src, queue, pin, upload, sink, NULL);
  if (!gst_element_link_many (src, queue, pin, upload, sink, NULL)) {
    g_printerr ("cannot link the elements\n");
    gst_object_unref (pipeline);
    return 1;
  }
  gst_element_set_state (pipeline, GST_STATE_PLAYING);

  /* the tensors, as they arrive: on the GPU, or in pinned host memory */
  while ((sample = gst_app_sink_pull_sample (GST_APP_SINK (sink)))) {
    GstBuffer *tensor = gst_sample_get_buffer (sample);
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (tensor);
    gboolean gpu = uel_memory_is_cuda (gst_buffer_peek_memory (tensor, 0));

    g_print ("%4u/%-4u %-48s %10" G_GSIZE_FORMAT " bytes  %s\n",
        meta->index + 1, meta->count, uel_tensor_meta_get_name (meta),
        gst_buffer_get_size (tensor), gpu ? "on the GPU" : "in host memory");
    /* ... use the tensor; the sample's reference keeps it alive ... */
    tensors++;
    on_gpu += gpu;
    bytes += gst_buffer_get_size (tensor);
    gst_sample_unref (sample);
  }

  /* the end of the stream, or an error */
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  if (msg) {
    GError *err = NULL;

    gst_message_parse_error (msg, &err, NULL);
    g_printerr ("error: %s\n", err->message);
    g_error_free (err);
    gst_message_unref (msg);
    ret = 1;
  }
  gst_object_unref (bus);

  g_object_get (upload, "stats", &stats, NULL);
  g_print ("%u tensors, %" G_GUINT64_FORMAT " bytes, %u on the GPU\n",
      tensors, bytes, on_gpu);
  if (stats) {
    gchar *s = gst_structure_to_string (stats);
    g_print ("uelcudaupload stats: %s\n", s);
    g_free (s);
    gst_structure_free (stats);
  }

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  return ret;
}
