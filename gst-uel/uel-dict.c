/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "uel-dict.h"
#include "uel-error.h"
#include "uel-json-private.h"

G_STATIC_ASSERT (UEL_DICT_MAX_SIZE <= G_MAXSIZE);

static const gchar *
display_name (const gchar * tensor_name)
{
  return tensor_name ? tensor_name : "(unnamed)";
}

static const gchar *
describe_node (JsonNode * node)
{
  switch (JSON_NODE_TYPE (node)) {
    case JSON_NODE_OBJECT:
      return "an object";
    case JSON_NODE_ARRAY:
      return "an array";
    case JSON_NODE_NULL:
      return "null";
    case JSON_NODE_VALUE:
      switch (json_node_get_value_type (node)) {
        case G_TYPE_STRING:
          return "a string";
        case G_TYPE_BOOLEAN:
          return "a boolean";
        default:
          return "a number";
      }
  }
  return "a value";
}

/* ------------------------------------------------------------------ */
/* writing */

/* The shortest text that reads back to the same double, laid out as
 * Python's repr() does (positional for exponents -4..15, else scientific),
 * with ".0" where it would otherwise read back as an integer. */
static void
append_double (GString * out, gdouble v)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
  gchar fmt[16];
  gint digits, exp;

  for (digits = 0; digits < 17; digits++) {
    g_snprintf (fmt, sizeof fmt, "%%.%de", digits);
    g_ascii_formatd (buf, sizeof buf, fmt, v);
    if (g_ascii_strtod (buf, NULL) == v)
      break;
  }
  exp = atoi (strchr (buf, 'e') + 1);
  if (exp >= -4 && exp < 16) {
    g_snprintf (fmt, sizeof fmt, "%%.%df", MAX (digits - exp, 0));
    g_ascii_formatd (buf, sizeof buf, fmt, v);
    g_string_append (out, buf);
    if (!strchr (buf, '.'))
      g_string_append (out, ".0");
  } else {
    g_string_append (out, buf);
  }
}

static gboolean
too_large (GString * out, GError ** error)
{
  if (out->len <= UEL_DICT_MAX_SIZE)
    return FALSE;
  g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_TOO_LARGE,
      "dictionary: more than the limit of %" G_GUINT64_FORMAT " bytes of "
      "JSON", UEL_DICT_MAX_SIZE);
  return TRUE;
}

/* Writes only what our reader (and Python's json.loads) reads back: no
 * nesting beyond UEL_DICT_MAX_DEPTH, which also bounds the recursion, no
 * invalid UTF-8, no NaN or infinities; stops at UEL_DICT_MAX_SIZE. */
static gboolean
write_node (GString * out, JsonNode * node, guint depth, GError ** error)
{
  if (!node) {
    g_string_append (out, "null");
    return TRUE;
  }

  switch (JSON_NODE_TYPE (node)) {
    case JSON_NODE_OBJECT:{
      JsonObject *obj = json_node_get_object (node);
      GList *members, *l;
      gboolean ok = TRUE;

      if (depth + 1 > UEL_DICT_MAX_DEPTH) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_TOO_DEEP,
            "dictionary: nesting deeper than %u levels", UEL_DICT_MAX_DEPTH);
        return FALSE;
      }
      /* in insertion order, as Python keeps a dict's */
      members = json_object_get_members (obj);
      g_string_append_c (out, '{');
      for (l = members; l && ok; l = l->next) {
        const gchar *key = l->data;

        if (!g_utf8_validate (key, -1, NULL)) {
          g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_NOT_UTF8,
              "dictionary: a member name is not valid UTF-8");
          ok = FALSE;
          break;
        }
        if (l != members)
          g_string_append_c (out, ',');
        uel_json_append_string (out, key);
        g_string_append_c (out, ':');
        ok = write_node (out, json_object_get_member (obj, key), depth + 1,
            error) && !too_large (out, error);
      }
      g_list_free (members);
      g_string_append_c (out, '}');
      return ok;
    }
    case JSON_NODE_ARRAY:{
      JsonArray *arr = json_node_get_array (node);
      guint n = json_array_get_length (arr);

      if (depth + 1 > UEL_DICT_MAX_DEPTH) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_TOO_DEEP,
            "dictionary: nesting deeper than %u levels", UEL_DICT_MAX_DEPTH);
        return FALSE;
      }
      g_string_append_c (out, '[');
      for (guint i = 0; i < n; i++) {
        if (i)
          g_string_append_c (out, ',');
        if (!write_node (out, json_array_get_element (arr, i), depth + 1,
                error) || too_large (out, error))
          return FALSE;
      }
      g_string_append_c (out, ']');
      return TRUE;
    }
    case JSON_NODE_NULL:
      g_string_append (out, "null");
      return TRUE;
    case JSON_NODE_VALUE:
      break;
  }

  switch (json_node_get_value_type (node)) {
    case G_TYPE_INT64:
      g_string_append_printf (out, "%" G_GINT64_FORMAT,
          json_node_get_int (node));
      return TRUE;
    case G_TYPE_BOOLEAN:
      g_string_append (out, json_node_get_boolean (node) ? "true" : "false");
      return TRUE;
    case G_TYPE_DOUBLE:{
      gdouble v = json_node_get_double (node);

      if (!isfinite (v)) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_NOT_JSON,
            "dictionary: %g cannot be written as JSON (RFC 8259 has no NaN "
            "or infinity)", v);
        return FALSE;
      }
      append_double (out, v);
      return TRUE;
    }
    case G_TYPE_STRING:{
      const gchar *s = json_node_get_string (node);

      if (s && !g_utf8_validate (s, -1, NULL)) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_NOT_UTF8,
            "dictionary: a string value is not valid UTF-8");
        return FALSE;
      }
      uel_json_append_string (out, s ? s : "");
      return TRUE;
    }
    default:
      g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_NOT_JSON,
          "dictionary: a value of type %s has no JSON form",
          g_type_name (json_node_get_value_type (node)));
      return FALSE;
  }
}

/**
 * uel_dict_to_bytes:
 * @dict: a #JsonNode holding a #JsonObject
 * @error: return location for a #GError
 *
 * Writes @dict as compact UTF-8 JSON text (no BOM, no terminating NUL):
 * the bytes of a 1-D `U8` tensor of shape `[size]`, ready to be stored in
 * a `.safetensors` file.  The bytes are those of Python's
 * `json.dumps (d, separators=(",", ":"), ensure_ascii=False)`: what the
 * Python loader's `dict_to_tensor()` stores, without the spaces after `,`
 * and `:` and with non-ASCII text as UTF-8 rather than `\uXXXX` escapes;
 * Python's `json.loads()` (and `tensor_to_dict()`) read them back to the
 * same values.  Members keep their order.  Integers are written exactly;
 * doubles as Python's repr() writes them (the shortest text that reads
 * back to the same double, always with a `.` or an exponent); control
 * characters in strings are escaped.
 *
 * Fails with %UEL_ERROR_DICT_NOT_OBJECT when @dict is not an object,
 * %UEL_ERROR_DICT_NOT_UTF8 for a string or member name that is not UTF-8,
 * %UEL_ERROR_DICT_NOT_JSON for NaN or an infinity,
 * %UEL_ERROR_DICT_TOO_DEEP beyond %UEL_DICT_MAX_DEPTH and
 * %UEL_ERROR_DICT_TOO_LARGE beyond %UEL_DICT_MAX_SIZE bytes: whatever this
 * function writes, uel_dict_from_bytes() reads.
 *
 * Returns: (transfer full) (nullable): the JSON text, or %NULL with @error
 *   set
 */
GBytes *
uel_dict_to_bytes (JsonNode * dict, GError ** error)
{
  GString *out;
  gsize len;

  g_return_val_if_fail (dict != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!JSON_NODE_HOLDS_OBJECT (dict)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_NOT_OBJECT,
        "dictionary: the JSON value is %s, not an object",
        describe_node (dict));
    return NULL;
  }
  out = g_string_new (NULL);
  if (!write_node (out, dict, 0, error) || too_large (out, error)) {
    g_string_free (out, TRUE);
    return NULL;
  }
  len = out->len;
  return g_bytes_new_take (g_string_free (out, FALSE), len);
}

/* ------------------------------------------------------------------ */
/* reading */

/**
 * uel_dict_from_bytes:
 * @tensor_name: (nullable): the tensor's name, for messages
 * @data: (array length=len) (nullable): the tensor's bytes
 * @len: their number
 *
 * Reads the bytes of a dictionary tensor: UTF-8 JSON text holding one
 * object, as the Python loader's `dict_to_tensor()` (`json.dumps()`, with
 * its `", "` and `": "` separators and `\uXXXX` escapes) and
 * uel_dict_to_bytes() write it.
 *
 * The reader is strict RFC 8259 JSON, bounded in depth: no comments,
 * single quotes, trailing commas, leading zeros, NaN or Infinity (which
 * Python writes for non-finite floats unless told `allow_nan=False`), and
 * no `\u0000` in strings (json-glib strings are C strings).  Integers in
 * the range of #gint64 are kept exactly (json_node_get_int()); larger ones
 * and numbers with a fraction or exponent become doubles.  Of duplicate
 * member names the last wins, as in Python.
 *
 * Every error message names the tensor.  Errors, in the order checked:
 * %UEL_ERROR_DICT_TOO_LARGE (more than %UEL_DICT_MAX_SIZE bytes),
 * %UEL_ERROR_DICT_NOT_UTF8 (with the offset of the first bad byte),
 * %UEL_ERROR_DICT_TOO_DEEP (nesting beyond %UEL_DICT_MAX_DEPTH, refused as
 * soon as the reader gets there, without recursing further),
 * %UEL_ERROR_DICT_NOT_JSON (with the byte offset),
 * %UEL_ERROR_DICT_NOT_OBJECT (valid JSON that is not an object).
 *
 * Returns: (transfer full) (nullable): a #JsonNode holding a #JsonObject,
 *   or %NULL with @error set
 */
JsonNode *
uel_dict_from_bytes (const gchar * tensor_name, const guint8 * data,
    gsize len, GError ** error)
{
  const gchar *name = display_name (tensor_name);
  g_autoptr (GError) err = NULL;
  UelJsonLexer lx;
  JsonNode *node;
  gsize bad = 0;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (len > UEL_DICT_MAX_SIZE) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_TOO_LARGE,
        "tensor '%s': %" G_GSIZE_FORMAT " bytes, more than the limit of %"
        G_GUINT64_FORMAT " bytes for a dictionary", name, len,
        UEL_DICT_MAX_SIZE);
    return NULL;
  }
  if (!data)
    data = (const guint8 *) "";
  if (!uel_utf8_validate ((const gchar *) data, len, &bad)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_NOT_UTF8,
        "tensor '%s': not UTF-8 text: invalid byte 0x%02x at offset %"
        G_GSIZE_FORMAT, name, data[bad], bad);
    return NULL;
  }

  uel_json_lexer_init (&lx, (const gchar *) data, len, UEL_DICT_MAX_DEPTH,
      UEL_ERROR_DICT_NOT_JSON);
  node = uel_json_read_value (&lx, FALSE, &err);
  if (node && !uel_json_at_end (&lx, &err))
    g_clear_pointer (&node, json_node_unref);
  if (!node) {
    /* the reader stops, with its depth one past the limit, at the first
     * container too many: that is the only failure leaving it there */
    if (lx.depth > lx.max_depth) {
      err->code = UEL_ERROR_DICT_TOO_DEEP;
      g_propagate_prefixed_error (error, g_steal_pointer (&err),
          "tensor '%s': ", name);
    } else {
      g_propagate_prefixed_error (error, g_steal_pointer (&err),
          "tensor '%s': not JSON: ", name);
    }
    return NULL;
  }
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_NOT_OBJECT,
        "tensor '%s': the JSON value is %s, not an object", name,
        describe_node (node));
    json_node_unref (node);
    return NULL;
  }
  return node;
}

/**
 * uel_dict_check_tensor_meta:
 * @meta: a #UelTensorMeta
 * @error: return location for a #GError
 *
 * Checks that the tensor @meta describes can hold a dictionary: dtype `U8`
 * (%UEL_ERROR_DICT_NOT_U8), one dimension (%UEL_ERROR_DICT_NOT_1D) and at
 * most %UEL_DICT_MAX_SIZE bytes (%UEL_ERROR_DICT_TOO_LARGE).  Whether the
 * bytes are JSON is for uel_dict_from_bytes() to say.
 *
 * Returns: %TRUE if it can, %FALSE with @error set otherwise
 */
gboolean
uel_dict_check_tensor_meta (const UelTensorMeta * meta, GError ** error)
{
  const gchar *name;
  const guint64 *shape;
  guint n_dims;

  g_return_val_if_fail (meta != NULL, FALSE);

  name = uel_tensor_meta_get_name (meta);
  shape = uel_tensor_meta_get_shape (meta, &n_dims);
  if (meta->dtype != UEL_DTYPE_U8) {
    const gchar *dtype = uel_dtype_to_string (meta->dtype);

    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_NOT_U8,
        "tensor '%s': dtype %s, not U8: a dictionary is stored as UTF-8 "
        "bytes", name, dtype ? dtype : "(invalid)");
    return FALSE;
  }
  if (n_dims != 1) {
    g_autoptr (GString) s = g_string_new ("[");

    for (guint i = 0; i < n_dims; i++)
      g_string_append_printf (s, "%s%" G_GUINT64_FORMAT, i ? ", " : "",
          shape[i]);
    g_string_append_c (s, ']');
    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_NOT_1D,
        "tensor '%s': shape %s has %u dimensions, not 1: a dictionary is "
        "a 1-D tensor of bytes", name, s->str, n_dims);
    return FALSE;
  }
  if (meta->n_bytes > UEL_DICT_MAX_SIZE) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_TOO_LARGE,
        "tensor '%s': %" G_GUINT64_FORMAT " bytes, more than the limit of %"
        G_GUINT64_FORMAT " bytes for a dictionary", name, meta->n_bytes,
        UEL_DICT_MAX_SIZE);
    return FALSE;
  }
  return TRUE;
}

/**
 * uel_dict_from_buffer:
 * @buffer: a #GstBuffer holding a whole tensor, with its #UelTensorMeta
 * @error: return location for a #GError
 *
 * Decodes the dictionary held by a tensor buffer, as uelsrc pushes it.
 * The meta must describe a 1-D `U8` tensor (see
 * uel_dict_check_tensor_meta()) and the buffer must hold all of it: a
 * chunk (uelsrc `chunk-size`) fails with %UEL_ERROR_DICT_CHUNKED; assemble
 * the chunks and call uel_dict_from_bytes(), as `ueldictdecode` does.  A
 * buffer without a #UelTensorMeta, or one whose memory cannot be mapped
 * for reading, fails with %UEL_ERROR_INVALID_ARGUMENT.  The other errors
 * are those of uel_dict_from_bytes().
 *
 * Returns: (transfer full) (nullable): a #JsonNode holding a #JsonObject,
 *   or %NULL with @error set
 */
JsonNode *
uel_dict_from_buffer (GstBuffer * buffer, GError ** error)
{
  UelTensorMeta *meta;
  const gchar *name;
  GstMapInfo map;
  JsonNode *node;
  gsize size;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  meta = uel_buffer_get_tensor_meta (buffer);
  if (!meta) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "the buffer carries no UelTensorMeta: decode plain bytes with "
        "uel_dict_from_bytes()");
    return NULL;
  }
  if (!uel_dict_check_tensor_meta (meta, error))
    return NULL;

  name = uel_tensor_meta_get_name (meta);
  size = gst_buffer_get_size (buffer);
  if (meta->chunk_offset != 0 || !meta->last_chunk || size != meta->n_bytes) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_CHUNKED,
        "tensor '%s': the buffer holds %" G_GSIZE_FORMAT " bytes from offset "
        "%" G_GUINT64_FORMAT " (chunk %u) of %" G_GUINT64_FORMAT ": a "
        "dictionary is decoded from the whole tensor (assemble the chunks, "
        "or read without chunk-size)", name, size, meta->chunk_offset,
        meta->chunk_index, meta->n_bytes);
    return NULL;
  }
  if (!gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "tensor '%s': cannot map the buffer's memory for reading", name);
    return NULL;
  }
  node = uel_dict_from_bytes (name, map.data, map.size, error);
  gst_buffer_unmap (buffer, &map);
  return node;
}

/**
 * uel_dict_to_tensor:
 * @dict: a #JsonNode holding a #JsonObject
 * @error: return location for a #GError
 *
 * The Python loader's `dict_to_tensor()`: a 1-D `U8` tensor of shape
 * `[size]` holding @dict as UTF-8 JSON text (the bytes of
 * uel_dict_to_bytes()), as a #GstBuffer of system memory ready to be
 * written into a `.safetensors` file.  The buffer carries no
 * #UelTensorMeta: a tensor's meta describes a tensor of a file, and this one
 * is in none yet.
 *
 * Returns: (transfer full) (nullable): the tensor's bytes, or %NULL with
 *   @error set (the errors of uel_dict_to_bytes())
 */
GstBuffer *
uel_dict_to_tensor (JsonNode * dict, GError ** error)
{
  GBytes *bytes;
  GstBuffer *buf;

  g_return_val_if_fail (dict != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  bytes = uel_dict_to_bytes (dict, error);
  if (!bytes)
    return NULL;
  /* the buffer holds its own reference */
  buf = gst_buffer_new_wrapped_bytes (bytes);
  g_bytes_unref (bytes);
  return buf;
}

/**
 * uel_tensor_to_dict:
 * @tensor: a #GstBuffer: a tensor read from a file (with its
 *   #UelTensorMeta), or the bytes uel_dict_to_tensor() made (without one)
 * @error: return location for a #GError
 *
 * The Python loader's `tensor_to_dict()`: the dictionary a 1-D `U8`
 * tensor holds.  With a #UelTensorMeta, the tensor is checked as
 * uel_dict_from_buffer() does (dtype, rank, whole tensor); without one, the
 * buffer's bytes are read as uel_dict_from_bytes() does.
 *
 * Returns: (transfer full) (nullable): a #JsonNode holding a #JsonObject,
 *   or %NULL with @error set (the errors of uel_dict_from_buffer() and
 *   uel_dict_from_bytes())
 */
JsonNode *
uel_tensor_to_dict (GstBuffer * tensor, GError ** error)
{
  GstMapInfo map;
  JsonNode *node;

  g_return_val_if_fail (GST_IS_BUFFER (tensor), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (uel_buffer_get_tensor_meta (tensor))
    return uel_dict_from_buffer (tensor, error);
  if (!gst_buffer_map (tensor, &map, GST_MAP_READ)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "cannot map the tensor's memory for reading");
    return NULL;
  }
  node = uel_dict_from_bytes (NULL, map.data, map.size, error);
  gst_buffer_unmap (tensor, &map);
  return node;
}

/**
 * uel_dict_message_parse:
 * @message: a #GstMessage
 * @tensor_name: (out) (transfer none) (optional): the tensor's name
 * @json: (out) (transfer none) (optional): the tensor's JSON text
 *
 * Reads the element message %UEL_DICT_STRUCTURE_NAME that `ueldictdecode`
 * posts for each dictionary.  The strings belong to @message.
 *
 * Returns: whether @message is such a message
 */
gboolean
uel_dict_message_parse (GstMessage * message, const gchar ** tensor_name,
    const gchar ** json)
{
  const GstStructure *s;
  const gchar *name, *text;

  g_return_val_if_fail (GST_IS_MESSAGE (message), FALSE);

  if (GST_MESSAGE_TYPE (message) != GST_MESSAGE_ELEMENT)
    return FALSE;
  s = gst_message_get_structure (message);
  if (!s || !gst_structure_has_name (s, UEL_DICT_STRUCTURE_NAME))
    return FALSE;
  name = gst_structure_get_string (s, "tensor");
  text = gst_structure_get_string (s, "json");
  if (!name || !text)
    return FALSE;
  if (tensor_name)
    *tensor_name = name;
  if (json)
    *json = text;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* meta */

static gboolean
dict_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  UelDictMeta *m = (UelDictMeta *) meta;

  m->tensor_name = NULL;
  m->dict = NULL;
  return TRUE;
}

static void
dict_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  UelDictMeta *m = (UelDictMeta *) meta;

  g_clear_pointer (&m->tensor_name, g_free);
  g_clear_pointer (&m->dict, json_node_unref);
}

static gboolean
dict_meta_transform (GstBuffer * dest, GstMeta * meta, GstBuffer * buffer,
    GQuark type, gpointer data)
{
  UelDictMeta *src = (UelDictMeta *) meta;
  GstMetaTransformCopy *copy = data;

  /* the dictionary describes all of the bytes: a part holds no document */
  if (!GST_META_TRANSFORM_IS_COPY (type) || copy->region)
    return FALSE;
  return uel_buffer_add_dict_meta (dest, src->tensor_name, src->dict) != NULL;
}

GType
uel_dict_meta_api_get_type (void)
{
  static gsize type = 0;
  static const gchar *tags[] = { NULL };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("UelDictMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return (GType) type;
}

/**
 * uel_dict_meta_get_info:
 *
 * Returns: (transfer none): the #GstMetaInfo of #UelDictMeta
 */
const GstMetaInfo *
uel_dict_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_register (UEL_DICT_META_API_TYPE,
        "UelDictMeta", sizeof (UelDictMeta), dict_meta_init,
        dict_meta_free, dict_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

/**
 * uel_buffer_add_dict_meta:
 * @buffer: a writable #GstBuffer
 * @tensor_name: the name of the tensor @dict was decoded from
 * @dict: a #JsonNode holding a #JsonObject; a reference is taken and the
 *   node is sealed (json_node_seal()), so that it can be shared between
 *   threads
 *
 * Attaches a decoded dictionary to @buffer.
 *
 * Returns: (transfer none) (nullable): the meta
 */
UelDictMeta *
uel_buffer_add_dict_meta (GstBuffer * buffer, const gchar * tensor_name,
    JsonNode * dict)
{
  UelDictMeta *m;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (tensor_name != NULL, NULL);
  g_return_val_if_fail (dict != NULL && JSON_NODE_HOLDS_OBJECT (dict), NULL);

  m = (UelDictMeta *) gst_buffer_add_meta (buffer, uel_dict_meta_get_info (),
      NULL);
  if (!m)
    return NULL;
  json_node_seal (dict);
  m->tensor_name = g_strdup (tensor_name);
  m->dict = json_node_ref (dict);
  return m;
}

/**
 * uel_buffer_get_dict_meta:
 * @buffer: a #GstBuffer
 *
 * Returns: (transfer none) (nullable): the buffer's #UelDictMeta, or %NULL
 */
UelDictMeta *
uel_buffer_get_dict_meta (GstBuffer * buffer)
{
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);

  return (UelDictMeta *) gst_buffer_get_meta (buffer, UEL_DICT_META_API_TYPE);
}
