/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * Dictionaries stored as 1-D U8 tensors holding UTF-8 JSON text: model
 * configuration, quantization parameters, provenance.
 */
#pragma once

#include <gst/gst.h>
#include <json-glib/json-glib.h>
#include <gst-uel/uel-meta.h>

G_BEGIN_DECLS

/**
 * UEL_DICT_MAX_DEPTH:
 *
 * The deepest nesting of arrays and objects a dictionary may have (the
 * top-level object counts as 1), read or written.  json-glib 1.6 has no
 * limit of its own and recurses once per level: a hostile tensor of
 * `[[[[...` must not exhaust the stack.  128 is serde_json's limit, the
 * same as for file headers.
 */
#define UEL_DICT_MAX_DEPTH 128

/**
 * UEL_DICT_MAX_SIZE:
 *
 * The largest dictionary tensor, in bytes, that is decoded (or written):
 * 64 MiB.  Configuration and provenance documents are kilobytes; the limit
 * bounds what a decoder holds (the text, plus the tree, which is several
 * times larger) when a file claims a huge "dictionary".
 */
#define UEL_DICT_MAX_SIZE (G_GUINT64_CONSTANT (64) << 20)

/**
 * UEL_DICT_STRUCTURE_NAME:
 *
 * Name of the element message that `ueldictdecode` posts for every decoded
 * dictionary: fields `tensor` (string, the tensor's name) and `json`
 * (string, the tensor's JSON text as stored in the file).
 */
#define UEL_DICT_STRUCTURE_NAME "uel-dict"

GBytes   *uel_dict_to_bytes          (JsonNode * dict,
                                      GError ** error);
JsonNode *uel_dict_from_bytes        (const gchar * tensor_name,
                                      const guint8 * data,
                                      gsize len,
                                      GError ** error);
gboolean  uel_dict_check_tensor_meta (const UelTensorMeta * meta,
                                      GError ** error);
JsonNode *uel_dict_from_buffer       (GstBuffer * buffer,
                                      GError ** error);

GstBuffer *uel_dict_to_tensor       (JsonNode * dict,
                                      GError ** error);
JsonNode *uel_tensor_to_dict         (GstBuffer * tensor,
                                      GError ** error);

gboolean  uel_dict_message_parse     (GstMessage * message,
                                      const gchar ** tensor_name,
                                      const gchar ** json);

/**
 * UelDictMeta:
 * @meta: the parent #GstMeta
 * @tensor_name: the name of the tensor the dictionary was decoded from
 * @dict: (transfer none): the decoded dictionary, a #JsonNode holding a
 *   #JsonObject; it is sealed (immutable, see json_node_seal()) so that
 *   every thread may read it: json_node_copy() it to change it
 *
 * A dictionary decoded from the buffer's bytes (by `ueldictdecode`).
 */
typedef struct
{
  GstMeta meta;

  gchar *tensor_name;
  JsonNode *dict;
} UelDictMeta;

GType uel_dict_meta_api_get_type (void);
#define UEL_DICT_META_API_TYPE (uel_dict_meta_api_get_type ())
const GstMetaInfo *uel_dict_meta_get_info (void);

UelDictMeta *uel_buffer_add_dict_meta (GstBuffer * buffer,
                                       const gchar * tensor_name,
                                       JsonNode * dict);
UelDictMeta *uel_buffer_get_dict_meta (GstBuffer * buffer);

G_END_DECLS
