/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "uel-meta.h"
#include "uel-meta-private.h"

static gboolean
tensor_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  UelTensorMeta *m = (UelTensorMeta *) meta;

  m->header = NULL;
  m->tensor_index = m->index = m->count = 0;
  m->dtype = UEL_DTYPE_INVALID;
  m->n_bytes = 0;
  m->chunk_offset = 0;
  m->chunk_index = 0;
  m->last_chunk = TRUE;
  return TRUE;
}

static void
tensor_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  UelTensorMeta *m = (UelTensorMeta *) meta;

  g_clear_pointer (&m->header, uel_header_unref);
}

static gboolean
tensor_meta_transform (GstBuffer * dest, GstMeta * meta, GstBuffer * buffer,
    GQuark type, gpointer data)
{
  UelTensorMeta *src = (UelTensorMeta *) meta, *dst;

  /* a copy (whole or partial) still describes the same tensor */
  if (!GST_META_TRANSFORM_IS_COPY (type))
    return FALSE;
  dst = uel_buffer_add_tensor_meta (dest, src->header, src->tensor_index,
      src->index, src->count);
  if (!dst)
    return FALSE;
  dst->dtype = src->dtype;
  dst->n_bytes = src->n_bytes;
  dst->chunk_offset = src->chunk_offset;
  dst->chunk_index = src->chunk_index;
  dst->last_chunk = src->last_chunk;
  return TRUE;
}

GType
uel_tensor_meta_api_get_type (void)
{
  static gsize type = 0;
  static const gchar *tags[] = { NULL };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("UelTensorMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return (GType) type;
}

/**
 * uel_tensor_meta_get_info:
 *
 * Returns: (transfer none): the #GstMetaInfo of #UelTensorMeta
 */
const GstMetaInfo *
uel_tensor_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *mi = gst_meta_register (UEL_TENSOR_META_API_TYPE,
        "UelTensorMeta", sizeof (UelTensorMeta), tensor_meta_init,
        tensor_meta_free, tensor_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) mi);
  }
  return info;
}

/**
 * uel_buffer_add_tensor_meta:
 * @buffer: a writable #GstBuffer
 * @header: the tensor's table
 * @tensor_index: the tensor's position in @header
 * @index: its position in the stream
 * @count: the number of tensors in the stream
 *
 * Attaches a #UelTensorMeta describing a whole tensor (dtype and size from
 * @header, one chunk).
 *
 * Returns: (transfer none) (nullable): the meta
 */
UelTensorMeta *
uel_buffer_add_tensor_meta (GstBuffer * buffer, UelHeader * header,
    guint tensor_index, guint index, guint count)
{
  UelTensorMeta *m;
  const UelTensorInfo *info;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (header != NULL, NULL);
  g_return_val_if_fail (tensor_index < uel_header_get_n_tensors (header),
      NULL);

  m = (UelTensorMeta *) gst_buffer_add_meta (buffer,
      uel_tensor_meta_get_info (), NULL);
  if (!m)
    return NULL;
  info = uel_header_get_tensor (header, tensor_index);
  m->header = uel_header_ref (header);
  m->tensor_index = tensor_index;
  m->index = index;
  m->count = count;
  m->dtype = info->dtype;
  m->n_bytes = info->n_bytes;
  return m;
}

/**
 * uel_buffer_get_tensor_meta:
 * @buffer: a #GstBuffer
 *
 * Returns: (transfer none) (nullable): the buffer's #UelTensorMeta, or %NULL
 */
UelTensorMeta *
uel_buffer_get_tensor_meta (GstBuffer * buffer)
{
  return (UelTensorMeta *) gst_buffer_get_meta (buffer,
      UEL_TENSOR_META_API_TYPE);
}

/**
 * uel_tensor_meta_get_tensor_info:
 * @meta: a #UelTensorMeta
 *
 * Returns: (transfer none): the tensor's entry in its header (dtype and
 *   size as in the file)
 */
const UelTensorInfo *
uel_tensor_meta_get_tensor_info (const UelTensorMeta * meta)
{
  return uel_header_get_tensor (meta->header, meta->tensor_index);
}

/**
 * uel_tensor_meta_get_name:
 * @meta: a #UelTensorMeta
 *
 * Returns: (transfer none): the tensor's name
 */
const gchar *
uel_tensor_meta_get_name (const UelTensorMeta * meta)
{
  return uel_tensor_meta_get_tensor_info (meta)->name;
}

/**
 * uel_tensor_meta_is_next_chunk:
 * @meta: the #UelTensorMeta of a buffer of @size bytes
 * @size: the buffer's size
 * @expected_offset: the byte of the tensor that the chunks before it ended at
 *   (0 for the first)
 *
 * What a consumer that reassembles chunked tensors checks of each chunk:
 * it starts where the chunks before it ended, it fits the tensor, and the
 * last one ends the tensor exactly.
 *
 * Returns: whether the chunk is the one expected
 */
gboolean
uel_tensor_meta_is_next_chunk (const UelTensorMeta * meta, gsize size,
    guint64 expected_offset)
{
  return meta->chunk_offset == expected_offset
      && meta->chunk_offset <= meta->n_bytes
      && size <= meta->n_bytes - meta->chunk_offset
      && (!meta->last_chunk || meta->chunk_offset + size == meta->n_bytes);
}

/**
 * uel_tensor_meta_get_shape:
 * @meta: a #UelTensorMeta
 * @n_dims: (out): the rank
 *
 * Returns: (transfer none) (array length=n_dims) (nullable): the dimensions
 */
const guint64 *
uel_tensor_meta_get_shape (const UelTensorMeta * meta, guint * n_dims)
{
  const UelTensorInfo *info = uel_tensor_meta_get_tensor_info (meta);

  *n_dims = info->n_dims;
  return info->shape;
}

/**
 * uel_tensor_meta_get_file_offset:
 * @meta: a #UelTensorMeta
 *
 * Returns: the absolute byte offset of the tensor in its file
 */
guint64
uel_tensor_meta_get_file_offset (const UelTensorMeta * meta)
{
  return uel_tensor_meta_get_tensor_info (meta)->file_offset;
}

/**
 * uel_tensor_meta_get_file:
 * @meta: a #UelTensorMeta
 *
 * Returns: (transfer none): the path of the file holding the tensor
 */
const gchar *
uel_tensor_meta_get_file (const UelTensorMeta * meta)
{
  return uel_header_get_file_path (meta->header,
      uel_tensor_meta_get_tensor_info (meta)->file_index);
}

/**
 * uel_buffer_get_footprint:
 * @buffer: a #GstBuffer
 *
 * The host or device memory @buffer holds, as a bounded queue should count
 * it: for each memory its allocated size (a page-aligned block is counted
 * whole, so a tensor of one byte in a page costs the page) plus
 * %UEL_MEMORY_OVERHEAD, and %UEL_BUFFER_OVERHEAD for the buffer and its
 * metas.  A memory shared from another (gst_memory_share(): a chunk, a
 * view into one device allocation) counts its own size only, its parent
 * being counted where it is held whole.  The overheads are measured, not
 * guessed: a million one-byte tensors from `uelsrc` hold about 610 bytes
 * each (GLib 2.74, GStreamer 1.22, x86-64).
 *
 * Returns: the bytes, never less than the payload
 */
guint64
uel_buffer_get_footprint (GstBuffer * buffer)
{
  guint n = gst_buffer_n_memory (buffer);
  guint64 bytes = UEL_BUFFER_OVERHEAD;

  for (guint i = 0; i < n; i++) {
    GstMemory *mem = gst_buffer_peek_memory (buffer, i);

    bytes += UEL_MEMORY_OVERHEAD + (mem->parent ? mem->size :
        MAX (mem->maxsize, mem->size));
  }
  return bytes;
}

/* A header prints as the location it was read from, and parses back by
 * reading that location's header again: a printed `uel-header` message
 * (gst-launch-1.0 -m) is then a structure gst_structure_from_string()
 * accepts, as every printed structure should be. */
static gchar *
header_serialize (const GValue * value)
{
  const UelHeader *header = g_value_get_boxed (value);
  GValue location = G_VALUE_INIT;
  gchar *text;

  if (!header)
    return g_strdup ("NULL");
  g_value_init (&location, G_TYPE_STRING);
  g_value_set_string (&location, uel_header_get_location (header));
  text = gst_value_serialize (&location);
  g_value_unset (&location);
  return text;
}

static gboolean
header_deserialize (GValue * dest, const gchar * s)
{
  GValue location = G_VALUE_INIT;
  UelHeader *header = NULL;

  if (g_strcmp0 (s, "NULL") == 0) {
    g_value_set_boxed (dest, NULL);
    return TRUE;
  }
  g_value_init (&location, G_TYPE_STRING);
  if (gst_value_deserialize (&location, s))
    header = uel_header_open (g_value_get_string (&location), NULL);
  g_value_unset (&location);
  if (!header)
    return FALSE;
  g_value_take_boxed (dest, header);
  return TRUE;
}

/* Once, after gst_init() (GStreamer's value tables exist only then):
 * uel_init() and every uel-header structure call it. */
void
uel_header_register_value_table (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    static GstValueTable table;

    table.type = uel_header_get_type ();
    table.serialize = header_serialize;
    table.deserialize = header_deserialize;
    gst_value_register (&table);
    g_once_init_leave (&done, 1);
  }
}

/**
 * uel_header_structure_new:
 * @header: a #UelHeader
 * @n_tensors: tensors in the stream (after selection)
 * @total_bytes: their bytes
 *
 * The fields: `location` (string), `n-tensors` (guint), `total-bytes`
 * (guint64), `n-files` (guint), `header` (#UelHeader: every tensor, and
 * the metadata as a table) and `metadata`: the `__metadata__` map as one
 * JSON object (uel_header_get_metadata_json()).  The map travels as JSON
 * text rather than as a nested #GstStructure because its keys are any
 * string (an empty key or one with spaces is no field name) and a file may
 * hold millions of them (a structure finds each field by a linear search).
 *
 * Returns: (transfer full): a #GstStructure named
 *   %UEL_HEADER_STRUCTURE_NAME
 */
GstStructure *
uel_header_structure_new (UelHeader * header, guint n_tensors,
    guint64 total_bytes)
{
  GstStructure *s = gst_structure_new (UEL_HEADER_STRUCTURE_NAME,
      "location", G_TYPE_STRING, uel_header_get_location (header),
      "n-tensors", G_TYPE_UINT, n_tensors,
      "total-bytes", G_TYPE_UINT64, total_bytes,
      "n-files", G_TYPE_UINT, uel_header_get_n_files (header),
      "header", UEL_TYPE_HEADER, header, NULL);
  GValue v = G_VALUE_INIT;

  uel_header_register_value_table ();
  g_value_init (&v, G_TYPE_STRING);
  g_value_take_string (&v, uel_header_get_metadata_json (header));
  gst_structure_take_value (s, "metadata", &v);
  return s;
}

/**
 * uel_header_event_new:
 * @header: a #UelHeader
 * @n_tensors: tensors in the stream (after selection)
 * @total_bytes: their bytes
 *
 * Returns: (transfer full): a custom downstream sticky event carrying the
 *   header, sent before the first tensor
 */
GstEvent *
uel_header_event_new (UelHeader * header, guint n_tensors,
    guint64 total_bytes)
{
  return gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM_STICKY,
      uel_header_structure_new (header, n_tensors, total_bytes));
}

/**
 * uel_header_event_new_full:
 * @header: a #UelHeader
 * @n_tensors: tensors in the stream (after selection)
 * @tensors: (array length=n_tensors): their indices in @header, in stream
 *   order
 * @dtypes: (array length=n_tensors) (nullable): the dtype of each of
 *   them in the stream, where an element converts them; %NULL when every
 *   tensor keeps the header's
 * @total_bytes: their bytes, in those dtypes
 *
 * A header event that also says which tensors the stream holds and in
 * which dtypes, so that a writer downstream knows the whole table of its
 * file before the first tensor arrives.  Beside the fields of
 * uel_header_structure_new() it has `tensors` (a #GstValueArray of guint)
 * and, with @dtypes, `dtypes` (a #GstValueArray of dtype names).  Those
 * fields are optional: uel_header_event_parse_table() reads them.
 *
 * Returns: (transfer full): a custom downstream sticky event
 */
GstEvent *
uel_header_event_new_full (UelHeader * header, guint n_tensors,
    const guint * tensors, const UelDType * dtypes, guint64 total_bytes)
{
  GstStructure *s = uel_header_structure_new (header, n_tensors, total_bytes);
  GValue list = G_VALUE_INIT, v = G_VALUE_INIT;

  g_return_val_if_fail (tensors != NULL || n_tensors == 0, NULL);

  g_value_init (&list, GST_TYPE_ARRAY);
  g_value_init (&v, G_TYPE_UINT);
  for (guint i = 0; i < n_tensors; i++) {
    g_value_set_uint (&v, tensors[i]);
    gst_value_array_append_value (&list, &v);
  }
  g_value_unset (&v);
  gst_structure_take_value (s, "tensors", &list);

  if (dtypes) {
    g_value_init (&list, GST_TYPE_ARRAY);
    g_value_init (&v, G_TYPE_STRING);
    for (guint i = 0; i < n_tensors; i++) {
      g_value_set_static_string (&v, uel_dtype_to_string (dtypes[i]));
      gst_value_array_append_value (&list, &v);
    }
    g_value_unset (&v);
    gst_structure_take_value (s, "dtypes", &list);
  }
  return gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM_STICKY, s);
}

static gboolean
structure_parse (const GstStructure * s, UelHeader ** header)
{
  if (!s || !gst_structure_has_name (s, UEL_HEADER_STRUCTURE_NAME))
    return FALSE;
  if (header && !gst_structure_get (s, "header", UEL_TYPE_HEADER, header,
          NULL))
    return FALSE;
  return TRUE;
}

/**
 * uel_header_event_parse:
 * @event: a #GstEvent
 * @header: (out) (transfer full) (optional): the header
 *
 * Returns: whether @event is a header event
 */
gboolean
uel_header_event_parse (GstEvent * event, UelHeader ** header)
{
  if (GST_EVENT_TYPE (event) != GST_EVENT_CUSTOM_DOWNSTREAM_STICKY)
    return FALSE;
  return structure_parse (gst_event_get_structure (event), header);
}

/**
 * uel_header_event_parse_table:
 * @event: a #GstEvent
 * @n_tensors: (out): the number of tensors in the stream
 * @tensors: (out) (transfer full) (array length=n_tensors): their indices
 *   in the header, in stream order; free with g_free()
 * @dtypes: (out) (transfer full) (array length=n_tensors): their dtypes in
 *   the stream; free with g_free()
 *
 * Which tensors the stream holds, and in which dtypes: from the `tensors`
 * and `dtypes` fields of uel_header_event_new_full(); without `tensors`,
 * every tensor of the header when `n-tensors` says as many (an event of
 * an element that does not know those fields), and without `dtypes`, the
 * header's dtypes.
 *
 * Returns: %FALSE when @event is no header event or does not say which
 *   tensors the stream holds (a selection announced only by its count)
 */
gboolean
uel_header_event_parse_table (GstEvent * event, guint * n_tensors,
    guint ** tensors, UelDType ** dtypes)
{
  g_autoptr (UelHeader) header = NULL;
  const GstStructure *s;
  const GValue *list, *names;
  guint n, n_all;
  guint *idx;
  UelDType *dt;

  g_return_val_if_fail (n_tensors && tensors && dtypes, FALSE);
  if (!uel_header_event_parse (event, &header))
    return FALSE;
  s = gst_event_get_structure (event);
  if (!gst_structure_get_uint (s, "n-tensors", &n))
    return FALSE;
  n_all = uel_header_get_n_tensors (header);
  list = gst_structure_get_value (s, "tensors");
  names = gst_structure_get_value (s, "dtypes");
  if (list && (!GST_VALUE_HOLDS_ARRAY (list)
          || gst_value_array_get_size (list) != n))
    return FALSE;
  if (!list && n != n_all)
    return FALSE;
  if (names && (!GST_VALUE_HOLDS_ARRAY (names)
          || gst_value_array_get_size (names) != n))
    return FALSE;

  idx = g_new (guint, MAX (n, 1));
  dt = g_new (UelDType, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    if (list) {
      const GValue *v = gst_value_array_get_value (list, i);

      if (!G_VALUE_HOLDS_UINT (v) || g_value_get_uint (v) >= n_all)
        goto invalid;
      idx[i] = g_value_get_uint (v);
    } else {
      idx[i] = i;
    }
    dt[i] = uel_header_get_tensor (header, idx[i])->dtype;
    if (names) {
      const GValue *v = gst_value_array_get_value (names, i);

      if (!G_VALUE_HOLDS_STRING (v))
        goto invalid;
      dt[i] = uel_dtype_from_string (g_value_get_string (v), -1);
      if (dt[i] == UEL_DTYPE_INVALID)
        goto invalid;
    }
  }
  *n_tensors = n;
  *tensors = idx;
  *dtypes = dt;
  return TRUE;

invalid:
  g_free (idx);
  g_free (dt);
  return FALSE;
}

/**
 * uel_header_message_parse:
 * @message: a #GstMessage
 * @header: (out) (transfer full) (optional): the header
 *
 * Returns: whether @message is the element message `uel-header`
 */
gboolean
uel_header_message_parse (GstMessage * message, UelHeader ** header)
{
  if (GST_MESSAGE_TYPE (message) != GST_MESSAGE_ELEMENT)
    return FALSE;
  return structure_parse (gst_message_get_structure (message), header);
}
