/* gst-uel example: dictionaries as tensors, as the Python loader's
 *
 *   my_dict = {"param": 1.0, "name": "test"}
 *   tensor = dict_to_tensor(my_dict)
 *   recovered_dict = tensor_to_dict(tensor)
 *
 * A dictionary is stored as a 1-D U8 tensor of UTF-8 JSON text.
 *
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>
#include <gst-uel/uel.h>
#include <json-glib/json-glib.h>

int
main (int argc, char **argv)
{
  JsonBuilder *builder;
  JsonNode *my_dict, *recovered_dict;
  JsonObject *obj;
  GstBuffer *tensor;
  GError *error = NULL;
  gchar *text;

  gst_init (&argc, &argv);
  uel_init ();

  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "param");
  json_builder_add_double_value (builder, 1.0);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, "test");
  json_builder_end_object (builder);
  my_dict = json_builder_get_root (builder);
  g_object_unref (builder);

  tensor = uel_dict_to_tensor (my_dict, &error);
  if (!tensor) {
    g_printerr ("%s\n", error->message);
    g_error_free (error);
    return 1;
  }
  g_print ("tensor: U8, shape [%" G_GSIZE_FORMAT "]\n",
      gst_buffer_get_size (tensor));

  recovered_dict = uel_tensor_to_dict (tensor, &error);
  if (!recovered_dict) {
    g_printerr ("%s\n", error->message);
    g_error_free (error);
    return 1;
  }
  text = json_to_string (recovered_dict, FALSE);
  g_print ("recovered: %s\n", text);
  g_free (text);

  obj = json_node_get_object (recovered_dict);
  if (json_object_get_double_member (obj, "param") != 1.0
      || g_strcmp0 (json_object_get_string_member (obj, "name"), "test")) {
    g_printerr ("the dictionary did not come back the same\n");
    return 1;
  }

  json_node_unref (recovered_dict);
  json_node_unref (my_dict);
  gst_buffer_unref (tensor);
  return 0;
}
