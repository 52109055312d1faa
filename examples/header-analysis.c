/* gst-uel example: header analysis, as the Python loader's
 *
 *   uint8_tensor_keys = [
 *       key for key, info in loader._header.items()
 *       if isinstance(info, dict) and info.get("dtype") == "U8"]
 *   for key in uint8_tensor_keys:
 *       loaded_tensor = loader.get_tensor(key)
 *       extracted_dict = tensor_to_dict(loaded_tensor)
 *
 * The header tells every tensor's dtype and shape without reading any
 * data; only the U8 tensors are then read, from their offsets, and decoded
 * as JSON dictionaries.
 *
 *   header-analysis model.safetensors
 *
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>
#include <gst-uel/uel.h>
#include <json-glib/json-glib.h>

int
main (int argc, char **argv)
{
  UelLoader *loader;
  UelHeader *header;
  GError *error = NULL;
  guint n_dicts = 0;
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

  /* 1. the header alone: nothing has been read yet */
  header = uel_loader_get_header (loader);
  for (guint i = 0; i < uel_header_get_n_tensors (header); i++) {
    const UelTensorInfo *info = uel_header_get_tensor (header, i);
    GstBuffer *tensor;
    JsonNode *dict;
    gchar *text;

    if (info->dtype != UEL_DTYPE_U8 || info->n_dims != 1)
      continue;

    /* 2. only this tensor's bytes, from its offset */
    tensor = uel_loader_get_tensor (loader, info->name, &error);
    if (!tensor) {
      g_printerr ("%s\n", error->message);
      g_clear_error (&error);
      ret = 1;
      continue;
    }

    /* 3. decoded into a dictionary */
    dict = uel_tensor_to_dict (tensor, &error);
    if (!dict) {
      g_print ("%s: not a dictionary: %s\n", info->name, error->message);
      g_clear_error (&error);
    } else {
      text = json_to_string (dict, FALSE);
      g_print ("Decoded %s: %s\n", info->name, text);
      g_free (text);
      json_node_unref (dict);
      n_dicts++;
    }
    gst_buffer_unref (tensor);
  }
  g_print ("%u dictionaries in %u tensors\n", n_dicts,
      uel_header_get_n_tensors (header));

  g_object_unref (loader);
  return ret;
}
