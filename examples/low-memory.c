/* gst-uel example: low-memory mode, as the Python loader's
 *
 *   with UnifiedSafetensorsLoader("model.safetensors",
 *                                 low_memory=True) as loader:
 *       for key in loader.keys():
 *           tensor = loader.get_tensor(key)
 *           # Process tensor...
 *           loader.mark_processed(key)  # Frees memory
 *
 * Each get_tensor() reads one tensor's bytes at its offset; memory holds
 * one tensor at a time.
 *
 *   low-memory model.safetensors
 *
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>
#include <gst-uel/uel.h>

/* "processing": the sum of the bytes, to show they really are there */
static guint64
process (GstBuffer * tensor)
{
  GstMapInfo map;
  guint64 sum = 0;

  if (gst_buffer_map (tensor, &map, GST_MAP_READ)) {
    for (gsize i = 0; i < map.size; i++)
      sum += map.data[i];
    gst_buffer_unmap (tensor, &map);
  }
  return sum;
}

int
main (int argc, char **argv)
{
  UelLoader *loader;
  GError *error = NULL;
  gchar **keys;
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

  keys = uel_loader_keys (loader);
  for (guint i = 0; keys[i]; i++) {
    GstBuffer *tensor = uel_loader_get_tensor (loader, keys[i], &error);

    if (!tensor) {
      g_printerr ("%s\n", error->message);
      g_clear_error (&error);
      ret = 1;
      break;
    }
    g_print ("%-48s %10" G_GSIZE_FORMAT " bytes  sum %" G_GUINT64_FORMAT
        "\n", keys[i], gst_buffer_get_size (tensor), process (tensor));
    /* our reference goes, and the loader forgets the tensor: its memory is
     * free for the next one */
    gst_buffer_unref (tensor);
    uel_loader_mark_processed (loader, keys[i]);
  }

  g_strfreev (keys);
  g_object_unref (loader);
  return ret;
}
