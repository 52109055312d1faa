/* gst-uel example: standard mode, as the Python loader's
 *
 *   with UnifiedSafetensorsLoader("model.safetensors",
 *                                 low_memory=False) as loader:
 *       tensor = loader.get_tensor("weight_name")
 *
 * Every tensor is read when the loader is created; get_tensor() hands out
 * the preloaded buffer.
 *
 *   standard-mode model.safetensors [TENSOR-NAME]
 *
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>
#include <gst-uel/uel.h>

int
main (int argc, char **argv)
{
  UelLoader *loader;
  GstBuffer *tensor;
  GError *error = NULL;
  const gchar *name;
  const guint64 *shape;
  guint n_dims;
  gchar **keys;

  gst_init (&argc, &argv);
  uel_init ();
  if (argc < 2 || argc > 3) {
    g_printerr ("usage: %s FILE.safetensors [TENSOR-NAME]\n", argv[0]);
    return 2;
  }

  loader = uel_loader_new (argv[1], FALSE, &error);
  if (!loader) {
    g_printerr ("%s\n", error->message);
    g_error_free (error);
    return 1;
  }
  g_print ("preloaded %" G_GUINT64_FORMAT " bytes\n",
      uel_loader_get_preloaded_bytes (loader));

  /* the tensor named on the command line, or the file's first one */
  keys = uel_loader_keys (loader);
  name = argc == 3 ? argv[2] : keys[0];
  if (!name) {
    g_print ("the file holds no tensors\n");
    g_strfreev (keys);
    g_object_unref (loader);
    return 0;
  }

  tensor = uel_loader_get_tensor (loader, name, &error);
  if (!tensor) {
    g_printerr ("%s\n", error->message);
    g_error_free (error);
    g_strfreev (keys);
    g_object_unref (loader);
    return 1;
  }
  uel_loader_get_shape (loader, name, &shape, &n_dims, NULL);
  g_print ("%s: %s, %u dimensions:", name,
      uel_dtype_to_string (uel_loader_get_dtype (loader, name, NULL)),
      n_dims);
  for (guint d = 0; d < n_dims; d++)
    g_print (" %" G_GUINT64_FORMAT, shape[d]);
  g_print (", %" G_GSIZE_FORMAT " bytes\n", gst_buffer_get_size (tensor));

  gst_buffer_unref (tensor);
  g_strfreev (keys);
  g_object_unref (loader);
  return 0;
}
