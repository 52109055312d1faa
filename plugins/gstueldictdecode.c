/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-ueldictdecode
 * @title: ueldictdecode
 *
 * Decodes the dictionaries that model files keep in 1-D `U8` tensors
 * holding UTF-8 JSON text (configuration, quantization parameters,
 * provenance), as the Python loader's `dict_to_tensor()` writes them.
 * Every buffer passes through with its bytes unchanged.  For each selected
 * tensor the JSON object is attached to the buffer as a #UelDictMeta
 * (uel_buffer_get_dict_meta(), a #JsonNode) and posted on the bus as an
 * element message `uel-dict` with the fields `tensor` (the name) and `json`
 * (the text); uel_dict_message_parse() reads it.
 *
 * By default every 1-D `U8` tensor is selected; #GstUelDictDecode:tensors
 * selects by name or glob pattern instead (a selected tensor that is not a
 * 1-D `U8` tensor is then reported like one that is not JSON).  A selected
 * tensor that is not a dictionary (not UTF-8, not JSON, not an object,
 * nested deeper than %UEL_DICT_MAX_DEPTH, larger than %UEL_DICT_MAX_SIZE)
 * is a STREAM DECODE warning naming the tensor and the reason, and the
 * stream goes on; with #GstUelDictDecode:strict it is an error.  Warnings
 * and errors carry details: `tensor` (string) and `uel-error` (int, the
 * #UelError code).
 *
 * Tensors read in chunks (uelsrc `chunk-size`) are assembled, up to
 * %UEL_DICT_MAX_SIZE bytes, and the dictionary is attached to the buffer
 * holding the last chunk.  Chunks that arrive incomplete or out of order
 * are reported (%UEL_ERROR_DICT_CHUNKED) like an invalid tensor.
 *
 * To read only the dictionaries of a large file, let uelsrc select them
 * from the header (`dtypes=U8 ndim=1`): only their bytes are read, from
 * their offsets.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -m uelsrc location=model.safetensors dtypes=U8 ndim=1 ! ueldictdecode ! fakesink
 * ]| Reads only the 1-D U8 tensors of model.safetensors and prints each
 * dictionary in a `uel-dict` message.
 * |[
 * gst-launch-1.0 -m uelsrc location=model.safetensors ! ueldictdecode tensors="quant_*,config" strict=true ! fakesink
 * ]| Reads every tensor and decodes the named ones; a named tensor that is
 * not a dictionary stops the pipeline with an error.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstuelelements.h"
#include "gstueldictdecode.h"

GST_DEBUG_CATEGORY_STATIC (gst_uel_dict_decode_debug);
#define GST_CAT_DEFAULT gst_uel_dict_decode_debug

#define DEFAULT_TENSORS NULL
#define DEFAULT_STRICT FALSE

enum
{
  PROP_0,
  PROP_TENSORS,
  PROP_STRICT,
};

struct _GstUelDictDecode
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  gchar *tensors;
  UelTensorFilter *filter;      /* no names: every 1-D U8 tensor */
  gboolean strict;

  /* streaming thread: the chunked tensor being assembled */
  UelHeader *asm_header;        /* NULL: none */
  guint asm_tensor;
  gchar *asm_name;
  GByteArray *asm_data;         /* NULL: refused, its chunks pass as they are */
  guint asm_next_chunk;
};

/* any memory: the bytes are only read, through a map */
static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "(ANY)"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "(ANY)"));

#define _do_init \
  GST_DEBUG_CATEGORY_INIT (gst_uel_dict_decode_debug, "ueldictdecode", 0, \
      "JSON dictionary tensor decoder");
#define gst_uel_dict_decode_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstUelDictDecode, gst_uel_dict_decode,
    GST_TYPE_BASE_TRANSFORM, _do_init);
GST_ELEMENT_REGISTER_DEFINE (ueldictdecode, "ueldictdecode", GST_RANK_NONE,
    GST_TYPE_UEL_DICT_DECODE);

/* ------------------------------------------------------------------ */
/* selection and reports */

static gboolean
is_selected (GstUelDictDecode * self, const UelTensorMeta * meta)
{
  gboolean take;

  GST_OBJECT_LOCK (self);
  if (uel_tensor_filter_has_names (self->filter)) {
    take = uel_tensor_filter_matches (self->filter,
        uel_tensor_meta_get_tensor_info (meta));
  } else {
    guint n_dims;

    uel_tensor_meta_get_shape (meta, &n_dims);
    take = meta->dtype == UEL_DTYPE_U8 && n_dims == 1;
  }
  GST_OBJECT_UNLOCK (self);
  return take;
}

/* A warning, or with strict=true an error (then returns FALSE). */
static gboolean
report (GstUelDictDecode * self, const gchar * tensor_name,
    const GError * err)
{
  gboolean strict;

  GST_OBJECT_LOCK (self);
  strict = self->strict;
  GST_OBJECT_UNLOCK (self);

  if (strict) {
    GST_ELEMENT_ERROR_WITH_DETAILS (self, STREAM, DECODE,
        ("%s", err->message), ("uel error %d (strict=true)", err->code),
        ("tensor", G_TYPE_STRING, tensor_name, "uel-error", G_TYPE_INT,
            err->code, NULL));
    return FALSE;
  }
  GST_ELEMENT_WARNING_WITH_DETAILS (self, STREAM, DECODE,
      ("%s", err->message), ("uel error %d", err->code),
      ("tensor", G_TYPE_STRING, tensor_name, "uel-error", G_TYPE_INT,
          err->code, NULL));
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* chunk assembly */

static void
reset_assembly (GstUelDictDecode * self)
{
  g_clear_pointer (&self->asm_header, uel_header_unref);
  g_clear_pointer (&self->asm_name, g_free);
  g_clear_pointer (&self->asm_data, g_byte_array_unref);
  self->asm_tensor = 0;
  self->asm_next_chunk = 0;
}

/* The tensor being assembled will get no more chunks: report it unless it
 * was refused already.  Returns FALSE when that is an error (strict). */
static gboolean
drop_incomplete (GstUelDictDecode * self, const gchar * why)
{
  gboolean ok = TRUE;

  if (self->asm_header && self->asm_data) {
    g_autoptr (GError) err = g_error_new (UEL_ERROR, UEL_ERROR_DICT_CHUNKED,
        "tensor '%s': %s after %u chunk(s), %u bytes: the dictionary is "
        "incomplete", self->asm_name, why, self->asm_next_chunk,
        self->asm_data->len);

    ok = report (self, self->asm_name, err);
  }
  reset_assembly (self);
  return ok;
}

static void
start_assembly (GstUelDictDecode * self, const UelTensorMeta * meta,
    gboolean accept)
{
  reset_assembly (self);
  self->asm_header = uel_header_ref (meta->header);
  self->asm_tensor = meta->tensor_index;
  self->asm_name = g_strdup (uel_tensor_meta_get_name (meta));
  /* the size is the header's, validated against the file, and checked
   * against UEL_DICT_MAX_SIZE by the caller */
  if (accept)
    self->asm_data = g_byte_array_sized_new ((guint) meta->n_bytes);
}

/* Adds the chunk in @buf.  Returns the whole tensor's bytes once @buf ends
 * it; otherwise NULL, with @error set when the tensor is refused (then the
 * rest of its chunks pass unseen). */
static GByteArray *
add_chunk (GstUelDictDecode * self, const UelTensorMeta * meta,
    GstBuffer * buf, GError ** error)
{
  const gchar *name = uel_tensor_meta_get_name (meta);
  gsize size = gst_buffer_get_size (buf);
  GstMapInfo map;

  if (meta->chunk_index == 0) {
    gboolean ok = uel_dict_check_tensor_meta (meta, error);

    start_assembly (self, meta, ok);
    if (!ok)
      return NULL;
  } else if (!self->asm_header) {
    start_assembly (self, meta, FALSE);
    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_CHUNKED,
        "tensor '%s': chunk %u (offset %" G_GUINT64_FORMAT ") arrived "
        "without the chunks before it", name, meta->chunk_index,
        meta->chunk_offset);
    return NULL;
  }
  if (!self->asm_data)
    return NULL;

  if (meta->chunk_index != self->asm_next_chunk
      || !uel_tensor_meta_is_next_chunk (meta, size, self->asm_data->len)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_DICT_CHUNKED,
        "tensor '%s': chunk %u holds %" G_GSIZE_FORMAT " bytes at offset %"
        G_GUINT64_FORMAT "%s; expected chunk %u at offset %u of %"
        G_GUINT64_FORMAT " bytes", name, meta->chunk_index, size,
        meta->chunk_offset, meta->last_chunk ? " (last)" : "",
        self->asm_next_chunk, self->asm_data->len, meta->n_bytes);
    g_clear_pointer (&self->asm_data, g_byte_array_unref);
    return NULL;
  }
  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "tensor '%s': cannot map chunk %u for reading", name,
        meta->chunk_index);
    g_clear_pointer (&self->asm_data, g_byte_array_unref);
    return NULL;
  }
  g_byte_array_append (self->asm_data, map.data, (guint) map.size);
  gst_buffer_unmap (buf, &map);
  self->asm_next_chunk++;

  if (!meta->last_chunk)
    return NULL;
  return g_steal_pointer (&self->asm_data);
}

/* ------------------------------------------------------------------ */
/* streaming */

static gboolean
same_tensor (GstUelDictDecode * self, const UelTensorMeta * meta)
{
  return self->asm_header == meta->header
      && self->asm_tensor == meta->tensor_index;
}

/* In place: the base class hands over a writable buffer, the bytes pass
 * unchanged and a decoded dictionary is attached as a meta. */
static GstFlowReturn
gst_uel_dict_decode_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstUelDictDecode *self = GST_UEL_DICT_DECODE (trans);
  g_autoptr (GError) err = NULL;
  g_autoptr (GByteArray) whole = NULL;
  g_autofree gchar *name = NULL;
  g_autofree gchar *text = NULL;
  UelTensorMeta *meta;
  UelDictMeta *old;
  JsonNode *dict = NULL;
  GstMapInfo map;

  meta = uel_buffer_get_tensor_meta (buf);
  if (!meta) {
    GST_LOG_OBJECT (self, "buffer without tensor meta passes");
    return GST_FLOW_OK;
  }

  /* a tensor whose chunks stopped before its last one */
  if (self->asm_header && (!same_tensor (self, meta)
          || meta->chunk_index == 0)
      && !drop_incomplete (self, "the next tensor began")) {
    return GST_FLOW_ERROR;
  }

  if (!is_selected (self, meta))
    return GST_FLOW_OK;

  name = g_strdup (uel_tensor_meta_get_name (meta));
  if (meta->chunk_index == 0 && meta->last_chunk) {
    dict = uel_dict_from_buffer (buf, &err);
    if (dict && gst_buffer_map (buf, &map, GST_MAP_READ)) {
      text = g_strndup ((const gchar *) map.data, map.size);
      gst_buffer_unmap (buf, &map);
    }
  } else {
    gboolean last = meta->last_chunk;

    whole = add_chunk (self, meta, buf, &err);
    if (last)
      reset_assembly (self);
    if (whole) {
      dict = uel_dict_from_bytes (name, whole->data, whole->len, &err);
      if (dict)
        text = g_strndup ((const gchar *) whole->data, whole->len);
    }
  }

  if (err) {
    GST_DEBUG_OBJECT (self, "%s", err->message);
    if (!report (self, name, err)) {
      return GST_FLOW_ERROR;
    }
    return GST_FLOW_OK;
  }
  if (!dict)
    return GST_FLOW_OK;

  GST_INFO_OBJECT (self, "tensor '%s': dictionary of %" G_GSIZE_FORMAT
      " bytes", name, text ? strlen (text) : 0);
  old = uel_buffer_get_dict_meta (buf);
  if (old)
    gst_buffer_remove_meta (buf, (GstMeta *) old);
  uel_buffer_add_dict_meta (buf, name, dict);
  json_node_unref (dict);

  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          gst_structure_new (UEL_DICT_STRUCTURE_NAME,
              "tensor", G_TYPE_STRING, name,
              "json", G_TYPE_STRING, text ? text : "", NULL)));
  return GST_FLOW_OK;
}

static gboolean
gst_uel_dict_decode_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstUelDictDecode *self = GST_UEL_DICT_DECODE (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_EOS:
      /* in strict mode the error is posted; EOS still goes on */
      drop_incomplete (self, "the stream ended");
      break;
    case GST_EVENT_FLUSH_STOP:
    case GST_EVENT_STREAM_START:
      reset_assembly (self);
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static gboolean
gst_uel_dict_decode_stop (GstBaseTransform * trans)
{
  reset_assembly (GST_UEL_DICT_DECODE (trans));
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* GObject */

static void
set_tensors (GstUelDictDecode * self, const gchar * spec)
{
  g_free (self->tensors);
  self->tensors = g_strdup (spec);
  uel_tensor_filter_free (self->filter);
  self->filter = uel_tensor_filter_new ();
  uel_tensor_filter_add_names (self->filter, spec);
}

static void
gst_uel_dict_decode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstUelDictDecode *self = GST_UEL_DICT_DECODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_TENSORS:
      set_tensors (self, g_value_get_string (value));
      break;
    case PROP_STRICT:
      self->strict = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_dict_decode_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstUelDictDecode *self = GST_UEL_DICT_DECODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_TENSORS:
      g_value_set_string (value, self->tensors);
      break;
    case PROP_STRICT:
      g_value_set_boolean (value, self->strict);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_dict_decode_finalize (GObject * object)
{
  GstUelDictDecode *self = GST_UEL_DICT_DECODE (object);

  reset_assembly (self);
  g_free (self->tensors);
  uel_tensor_filter_free (self->filter);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_uel_dict_decode_class_init (GstUelDictDecodeClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags rw_playing = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING;

  gobject_class->set_property = gst_uel_dict_decode_set_property;
  gobject_class->get_property = gst_uel_dict_decode_get_property;
  gobject_class->finalize = gst_uel_dict_decode_finalize;

  g_object_class_install_property (gobject_class, PROP_TENSORS,
      g_param_spec_string ("tensors", "Tensors",
          "Comma-separated names or glob patterns (* and ?) of the tensors "
          "to decode as JSON dictionaries; a backslash takes the next "
          "character literally (\\, \\* \\\\) (empty = every 1-D U8 tensor)",
          DEFAULT_TENSORS, rw_playing));
  g_object_class_install_property (gobject_class, PROP_STRICT,
      g_param_spec_boolean ("strict", "Strict",
          "Post an error and stop when a selected tensor is not a JSON "
          "dictionary (false = post a warning and go on)", DEFAULT_STRICT,
          rw_playing));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Dictionary tensor decoder", "Decoder/Metadata",
      "Decodes 1-D U8 tensors holding UTF-8 JSON objects, attaches them to "
      "the buffers and posts them on the bus; buffers pass unchanged",
      "gst-uel developers");
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 -m uelsrc location=model.safetensors dtypes=U8 ndim=1 "
      "! ueldictdecode ! fakesink");

  trans_class->transform_ip = gst_uel_dict_decode_transform_ip;
  trans_class->sink_event = gst_uel_dict_decode_sink_event;
  trans_class->stop = gst_uel_dict_decode_stop;
  trans_class->passthrough_on_same_caps = FALSE;
}

static void
gst_uel_dict_decode_init (GstUelDictDecode * self)
{
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  self->filter = uel_tensor_filter_new ();
  self->strict = DEFAULT_STRICT;
}
