/* gst-uel example: one tensor to the GPU through pinned memory, as the
 * Python loader's
 *
 *   tensor = torch.randn(100, 100)
 *   # Transfers using pinned memory if CUDA is available, otherwise falls
 *   # back gracefully
 *   gpu_tensor = transfer_to_gpu_pinned(tensor, device="cuda:0")
 *
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>
#include <gst-uel/uel.h>

int
main (int argc, char **argv)
{
  const gsize n = 100 * 100;
  GstBuffer *tensor, *gpu_tensor;
  GstMapInfo map;
  GError *error = NULL;
  guint64 pinned, fallback;
  GRand *rand;

  gst_init (&argc, &argv);
  uel_init ();

  /* 100×100 F32 of random numbers, in ordinary host memory */
  tensor = gst_buffer_new_allocate (NULL, n * sizeof (gfloat), NULL);
  gst_buffer_map (tensor, &map, GST_MAP_WRITE);
  rand = g_rand_new_with_seed (1);
  for (gsize i = 0; i < n; i++)
    ((gfloat *) map.data)[i] = (gfloat) g_rand_double_range (rand, -1, 1);
  g_rand_free (rand);
  gst_buffer_unmap (tensor, &map);

  /* device 0 ("cuda:0"); UEL_DTYPE_INVALID keeps the dtype */
  gpu_tensor = uel_transfer_to_gpu_pinned (tensor, 0, UEL_DTYPE_INVALID,
      &error);
  if (!gpu_tensor) {
    g_printerr ("%s\n", error->message);
    g_error_free (error);
    gst_buffer_unref (tensor);
    return 1;
  }

  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_print ("%" G_GSIZE_FORMAT " bytes %s (transfers: %" G_GUINT64_FORMAT
      " pinned, %" G_GUINT64_FORMAT " fallback)\n",
      gst_buffer_get_size (gpu_tensor),
      uel_memory_is_cuda (gst_buffer_peek_memory (gpu_tensor, 0)) ?
      "on the GPU" : "kept in host memory: no CUDA device", pinned,
      fallback);

  gst_buffer_unref (gpu_tensor);
  gst_buffer_unref (tensor);
  return 0;
}
