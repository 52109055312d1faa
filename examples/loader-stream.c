/* gst-uel example: the Python loader's async_stream() and
 * transfer_to_gpu_pinned(), call for call:
 *
 *   stream = loader.async_stream(keys_to_load, batch_size=8,
 *                                prefetch_batches=2, pin_memory=True)
 *   for batch in stream:
 *       for key, pinned_tensor in batch:
 *           gpu_tensor = transfer_to_gpu_pinned(pinned_tensor, device="cuda")
 *           # ... process gpu_tensor ...
 *           loader.mark_processed(key)
 *
 * A thread of the stream reads ahead at most two batches, straight into
 * one pinned pool.  Without a GPU the transfers fall
 * back to host memory and are counted as fallbacks.
 *
 *   loader-stream model.safetensors
 *
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>
#include <gst-uel/uel.h>

int
main (int argc, char **argv)
{
  UelLoader *loader;
  UelTensorStream *stream;
  UelTensorStreamStats stats;
  GPtrArray *batch;
  GError *error = NULL;
  guint64 pinned, fallback;
  guint n_batches = 0;
  gint ret = 0;

  gst_init (&argc, &argv);
  uel_init ();
  if (argc != 2) {
    g_printerr ("usage: %s FILE.safetensors\n", argv[0]);
    return 2;
  }

  loader = uel_loader_new (argv[1], TRUE, &error);
  if (!loader) {
    g_printerr ("%s\n", error->message);
    g_error_free (error);
    return 1;
  }

  /* NULL: all keys (loader.keys()) */
  stream = uel_loader_async_stream (loader, NULL, 8, 2, TRUE, &error);
  if (!stream) {
    g_printerr ("%s\n", error->message);
    g_error_free (error);
    g_object_unref (loader);
    return 1;
  }

  while ((batch = uel_tensor_stream_next (stream, &error))) {
    for (guint i = 0; i < batch->len; i++) {
      GstBuffer *pinned_tensor = g_ptr_array_index (batch, i);
      UelTensorMeta *meta = uel_buffer_get_tensor_meta (pinned_tensor);
      const gchar *key = uel_tensor_meta_get_name (meta);
      GstBuffer *gpu_tensor;

      /* device 0, keeping the dtype */
      gpu_tensor = uel_transfer_to_gpu_pinned (pinned_tensor, 0,
          UEL_DTYPE_INVALID, &error);
      if (!gpu_tensor) {
        g_printerr ("%s: %s\n", key, error->message);
        g_clear_error (&error);
        ret = 1;
        continue;
      }
      /* ... process gpu_tensor ... */
      gst_buffer_unref (gpu_tensor);
      uel_loader_mark_processed (loader, key);
    }
    n_batches++;
    g_ptr_array_unref (batch);
  }
  if (error) {
    g_printerr ("%s\n", error->message);
    g_clear_error (&error);
    ret = 1;
  }

  uel_tensor_stream_get_stats (stream, &stats);
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_print ("%u batches, %" G_GUINT64_FORMAT " tensors, %" G_GUINT64_FORMAT
      " bytes; at most %" G_GUINT64_FORMAT " tensors in memory at once "
      "(bound %" G_GUINT64_FORMAT ")\n", n_batches, stats.tensors,
      stats.bytes, stats.peak_live_tensors,
      uel_tensor_stream_get_max_live_tensors (stream));
  g_print ("transfers: %" G_GUINT64_FORMAT " pinned, %" G_GUINT64_FORMAT
      " fallback\n", pinned, fallback);

  g_object_unref (stream);
  g_object_unref (loader);
  return ret;
}
