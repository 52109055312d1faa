/* gst-uel: libFuzzer target for the dictionary decoder
 * SPDX-License-Identifier: MIT
 *
 * The input is the bytes of a 1-D U8 tensor.  A dictionary that decodes
 * must encode again, and its encoding must decode to an equal dictionary
 * (what ueldictdecode hands out is what uel_dict_to_tensor() writes back).
 */
#include "config.h"

#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  g_autoptr (JsonNode) dict = NULL;
  g_autoptr (JsonNode) again = NULL;
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (GError) error = NULL;
  gsize len;
  const guint8 *p;

  dict = uel_dict_from_bytes ("fuzz", data, size, &error);
  if (!dict) {
    g_assert (error != NULL);
    g_assert (error->domain == UEL_ERROR);
    return 0;
  }
  g_assert (JSON_NODE_HOLDS_OBJECT (dict));
  bytes = uel_dict_to_bytes (dict, &error);
  g_assert_no_error (error);
  p = g_bytes_get_data (bytes, &len);
  again = uel_dict_from_bytes ("fuzz", p, len, &error);
  g_assert_no_error (error);
  g_assert (json_node_equal (dict, again));
  return 0;
}
