/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-uelconvert
 * @title: uelconvert
 *
 * Casts floating-point tensors to another floating dtype on the CPU, with
 * uel_convert_cpu(): round to nearest even, and for the 8-bit formats the
 * results of the Python package ml_dtypes bit for bit (F8_E4M3 is
 * float8_e4m3fn: it has no infinity, and what overflows its 448 becomes
 * NaN).  Large tensors are converted by all CPU cores.
 *
 * #GstUelConvert:dtype is the target: F32, F16, BF16, F8_E4M3 or F8_E5M2
 * (none, the default, passes every buffer on).  The tensors converted are
 * those of a dtype the CPU converts to the target (F64, F32, F16, BF16,
 * F8_E4M3, F8_E5M2; F64 only as a source), narrowed by
 * #GstUelConvert:tensors (names or glob patterns) and
 * #GstUelConvert:dtypes (source dtypes, read from the buffer's
 * #UelTensorMeta, so an earlier conversion counts).  Every other buffer
 * (integers, BOOL, the other 8-bit, 6-bit and 4-bit floats, tensors not
 * selected, buffers without a #UelTensorMeta) passes unchanged, as does a
 * tensor already in the target dtype.
 *
 * A converted buffer is a new buffer in system memory, with a copy of the
 * input's metas; its #UelTensorMeta says the new dtype, and `n-bytes` is
 * the whole converted tensor's size.  The name, shape and file offsets
 * stay the header's.
 *
 * Tensors read in chunks (uelsrc `chunk-size`) are converted chunk by
 * chunk, each on its own, with `chunk_offset` scaled to the new dtype.
 * That needs every chunk to start and end on an element boundary, which a
 * chunk size that is a multiple of 8 bytes always gives; a chunk that cuts
 * an element is a STREAM FORMAT error naming the tensor, the chunk and the
 * element size (the chunks are not reassembled: a tensor can be larger
 * than memory allows twice).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors ! uelconvert dtype=bf16 ! fakesink
 * ]| Reads every tensor and casts the floating ones to BF16.
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors ! uelconvert dtype=f8-e4m3 tensors="*.weight" dtypes=BF16,F16 ! fakesink
 * ]| Casts the BF16 and F16 weights to F8_E4M3; everything else passes.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst-uel/uel.h>
#include <gst-uel/uel-enum-private.h>

#include "gstuelconvert.h"
#include "gstuelelements.h"

GST_DEBUG_CATEGORY_STATIC (gst_uel_convert_debug);
#define GST_CAT_DEFAULT gst_uel_convert_debug

#define DEFAULT_DTYPE GST_UEL_CONVERT_DTYPE_NONE
#define DEFAULT_TENSORS NULL
#define DEFAULT_DTYPES NULL

enum
{
  PROP_0,
  PROP_DTYPE,
  PROP_TENSORS,
  PROP_DTYPES,
};

struct _GstUelConvert
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  GstUelConvertDType dtype;
  gchar *tensors;
  gchar *dtypes;
  UelTensorFilter *filter;      /* from tensors and dtypes */
};

/* Host memory in, system memory out: the bytes are read through a map and
 * the converted ones written into new buffers. */
static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "; " UEL_TENSOR_MEDIA_TYPE "("
        UEL_CAPS_FEATURE_MEMORY_PINNED ")"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE));

#define _do_init \
  GST_DEBUG_CATEGORY_INIT (gst_uel_convert_debug, "uelconvert", 0, \
      "CPU dtype conversion");
#define gst_uel_convert_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstUelConvert, gst_uel_convert,
    GST_TYPE_BASE_TRANSFORM, _do_init);
GST_ELEMENT_REGISTER_DEFINE (uelconvert, "uelconvert", GST_RANK_NONE,
    GST_TYPE_UEL_CONVERT);

static const GEnumValue dtype_values[] = {
  {GST_UEL_CONVERT_DTYPE_NONE, "keep every dtype", "none"},
  {GST_UEL_CONVERT_DTYPE_F32, "floating tensors to F32", "f32"},
  {GST_UEL_CONVERT_DTYPE_F16, "floating tensors to F16", "f16"},
  {GST_UEL_CONVERT_DTYPE_BF16, "floating tensors to BF16", "bf16"},
  {GST_UEL_CONVERT_DTYPE_F8_E4M3,
      "floating tensors to F8_E4M3 (float8_e4m3fn)", "f8-e4m3"},
  {GST_UEL_CONVERT_DTYPE_F8_E5M2, "floating tensors to F8_E5M2",
      "f8-e5m2"},
  {0, NULL, NULL}
};

UEL_DEFINE_ENUM_TYPE (GstUelConvertDType, gst_uel_convert_dtype,
    dtype_values);

static UelDType
target_dtype (GstUelConvertDType d)
{
  switch (d) {
    case GST_UEL_CONVERT_DTYPE_F32:
      return UEL_DTYPE_F32;
    case GST_UEL_CONVERT_DTYPE_F16:
      return UEL_DTYPE_F16;
    case GST_UEL_CONVERT_DTYPE_BF16:
      return UEL_DTYPE_BF16;
    case GST_UEL_CONVERT_DTYPE_F8_E4M3:
      return UEL_DTYPE_F8_E4M3;
    case GST_UEL_CONVERT_DTYPE_F8_E5M2:
      return UEL_DTYPE_F8_E5M2;
    default:
      return UEL_DTYPE_INVALID;
  }
}

/* the dtype a tensor described by @tensor, now in @dtype, converts to, or
 * UEL_DTYPE_INVALID to pass it */
static UelDType
choose_target_for (GstUelConvert * self, const UelTensorInfo * tensor,
    UelDType dtype)
{
  UelTensorInfo info;
  UelDType to;
  gboolean take;

  /* the filter reads the dtype from the info: give it the stream's */
  info = *tensor;
  info.dtype = dtype;

  GST_OBJECT_LOCK (self);
  to = target_dtype (self->dtype);
  take = uel_tensor_filter_matches (self->filter, &info);
  GST_OBJECT_UNLOCK (self);

  if (!take || to == dtype || !uel_convert_cpu_supported (dtype, to))
    return UEL_DTYPE_INVALID;
  return to;
}

/* the dtype @meta's buffer converts to, or UEL_DTYPE_INVALID to pass it */
static UelDType
choose_target (GstUelConvert * self, const UelTensorMeta * meta)
{
  if (!meta)
    return UEL_DTYPE_INVALID;
  return choose_target_for (self, uel_tensor_meta_get_tensor_info (meta),
      meta->dtype);
}

/* The header event goes on saying the dtypes and bytes the stream will
 * have after this element, so that uelsink writes the converted table
 * (the properties are fixed from then on: they change only in READY). */
static GstEvent *
convert_header_event (GstUelConvert * self, GstEvent * event)
{
  g_autoptr (UelHeader) header = NULL;
  g_autofree guint *tensors = NULL;
  g_autofree UelDType *dtypes = NULL;
  guint64 total = 0;
  gboolean changed = FALSE;
  guint n;

  if (!uel_header_event_parse_table (event, &n, &tensors, &dtypes)
      || !uel_header_event_parse (event, &header))
    return event;
  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *info = uel_header_get_tensor (header, tensors[i]);
    UelDType to = choose_target_for (self, info, dtypes[i]);

    if (to != UEL_DTYPE_INVALID) {
      dtypes[i] = to;
      changed = TRUE;
    }
    /* the dtypes converted have whole bytes per element */
    total += dtypes[i] == info->dtype ? info->n_bytes :
        info->n_elements * (uel_dtype_get_bits (dtypes[i]) / 8);
  }
  if (!changed)
    return event;
  GST_DEBUG_OBJECT (self, "header: %u tensors, %" G_GUINT64_FORMAT
      " bytes after conversion", n, total);
  gst_event_unref (event);
  return uel_header_event_new_full (header, n, tensors, dtypes, total);
}

static gboolean
gst_uel_convert_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  if (uel_header_event_parse (event, NULL))
    event = convert_header_event (GST_UEL_CONVERT (trans), event);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static GstCaps *
gst_uel_convert_transform_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * filter)
{
  /* whatever comes in, system memory goes out; system or pinned memory
   * can come in for system memory out */
  GstCaps *other = gst_static_pad_template_get_caps (direction ==
      GST_PAD_SINK ? &src_template : &sink_template);

  return gst_uel_caps_filter (other, filter);
}

static GstFlowReturn
gst_uel_convert_prepare_output_buffer (GstBaseTransform * trans,
    GstBuffer * in, GstBuffer ** out)
{
  GstUelConvert *self = GST_UEL_CONVERT (trans);
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (in);
  UelDType to = choose_target (self, meta);
  gsize size = gst_buffer_get_size (in);
  guint in_size, out_size;
  gsize out_bytes;
  UelTensorMeta *m;

  if (to == UEL_DTYPE_INVALID) {
    /* no reference added: the base class takes an output equal to the
     * input as that same reference (it unrefs the input only otherwise) */
    *out = in;
    return GST_FLOW_OK;
  }

  in_size = uel_dtype_get_bits (meta->dtype) / 8;
  out_size = uel_dtype_get_bits (to) / 8;
  if (meta->chunk_offset % in_size != 0 || size % in_size != 0) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Cannot convert tensor '%s': its chunks cut its elements",
            uel_tensor_meta_get_name (meta)),
        ("chunk %u holds %" G_GSIZE_FORMAT " bytes at offset %"
            G_GUINT64_FORMAT ", not whole %s elements of %u bytes: use a "
            "chunk size that is a multiple of 8", meta->chunk_index, size,
            meta->chunk_offset, uel_dtype_to_string (meta->dtype), in_size));
    return GST_FLOW_ERROR;
  }
  out_bytes = uel_convert_output_size (meta->dtype, to, size);
  if (out_bytes == 0 && size != 0) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Cannot convert tensor '%s'", uel_tensor_meta_get_name (meta)),
        ("%" G_GSIZE_FORMAT " bytes of %s do not convert to %s", size,
            uel_dtype_to_string (meta->dtype), uel_dtype_to_string (to)));
    return GST_FLOW_ERROR;
  }

  *out = gst_buffer_new_allocate (NULL, out_bytes, NULL);
  gst_buffer_copy_into (*out, in, GST_BUFFER_COPY_FLAGS |
      GST_BUFFER_COPY_TIMESTAMPS | GST_BUFFER_COPY_META, 0, -1);
  m = uel_buffer_get_tensor_meta (*out);
  m->dtype = to;
  m->n_bytes = meta->n_bytes / in_size * out_size;
  m->chunk_offset = meta->chunk_offset / in_size * out_size;
  GST_LOG_OBJECT (self, "tensor '%s': %" G_GSIZE_FORMAT " bytes of %s to "
      "%s", uel_tensor_meta_get_name (meta), size,
      uel_dtype_to_string (meta->dtype), uel_dtype_to_string (to));
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_uel_convert_transform (GstBaseTransform * trans, GstBuffer * in,
    GstBuffer * out)
{
  GstUelConvert *self = GST_UEL_CONVERT (trans);
  const UelTensorMeta *from = uel_buffer_get_tensor_meta (in);
  const UelTensorMeta *to = uel_buffer_get_tensor_meta (out);
  g_autoptr (GError) err = NULL;
  GstMapInfo src, dst;
  gboolean ok;

  if (out == in)
    return GST_FLOW_OK;

  if (!gst_buffer_map (in, &src, GST_MAP_READ)) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, (NULL),
        ("cannot map tensor '%s' for reading",
            uel_tensor_meta_get_name (from)));
    return GST_FLOW_ERROR;
  }
  if (!gst_buffer_map (out, &dst, GST_MAP_WRITE)) {
    gst_buffer_unmap (in, &src);
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, (NULL),
        ("cannot map the converted tensor '%s' for writing",
            uel_tensor_meta_get_name (from)));
    return GST_FLOW_ERROR;
  }
  ok = uel_convert_cpu (from->dtype, to->dtype, src.data, dst.data,
      src.size / (uel_dtype_get_bits (from->dtype) / 8), &err);
  gst_buffer_unmap (out, &dst);
  gst_buffer_unmap (in, &src);
  if (!ok) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("Cannot convert tensor '%s'", uel_tensor_meta_get_name (from)),
        ("%s", err->message));
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

/* ------------------------------------------------------------------ */
/* properties */

/* a filter from @tensors and @dtypes, or NULL with @error set */
static UelTensorFilter *
make_filter (const gchar * tensors, const gchar * dtypes, GError ** error)
{
  g_autoptr (UelTensorFilter) filter = uel_tensor_filter_new ();

  uel_tensor_filter_add_names (filter, tensors);
  if (!uel_tensor_filter_set_dtypes (filter, dtypes, error))
    return NULL;
  return g_steal_pointer (&filter);
}

/* sets @field (tensors or dtypes) to @value if the filter it makes is
 * valid; otherwise warns and keeps the old value */
static void
set_filter_string (GstUelConvert * self, gchar ** field, const gchar * value,
    const gchar * property)
{
  g_autoptr (GError) err = NULL;
  UelTensorFilter *filter;

  GST_OBJECT_LOCK (self);
  filter = make_filter (field == &self->tensors ? value : self->tensors,
      field == &self->dtypes ? value : self->dtypes, &err);
  if (filter) {
    g_free (*field);
    *field = g_strdup (value);
    uel_tensor_filter_free (self->filter);
    self->filter = filter;
  }
  GST_OBJECT_UNLOCK (self);
  if (!filter)
    g_warning ("%s: the '%s' property is invalid and stays unchanged: %s",
        GST_ELEMENT_NAME (self), property, err->message);
}

static void
gst_uel_convert_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstUelConvert *self = GST_UEL_CONVERT (object);

  switch (prop_id) {
    case PROP_DTYPE:
      GST_OBJECT_LOCK (self);
      self->dtype = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TENSORS:
      set_filter_string (self, &self->tensors, g_value_get_string (value),
          "tensors");
      break;
    case PROP_DTYPES:
      set_filter_string (self, &self->dtypes, g_value_get_string (value),
          "dtypes");
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_uel_convert_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstUelConvert *self = GST_UEL_CONVERT (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_DTYPE:
      g_value_set_enum (value, self->dtype);
      break;
    case PROP_TENSORS:
      g_value_set_string (value, self->tensors);
      break;
    case PROP_DTYPES:
      g_value_set_string (value, self->dtypes);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_convert_finalize (GObject * object)
{
  GstUelConvert *self = GST_UEL_CONVERT (object);

  g_free (self->tensors);
  g_free (self->dtypes);
  uel_tensor_filter_free (self->filter);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_uel_convert_class_init (GstUelConvertClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags rw_playing = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING;

  gobject_class->set_property = gst_uel_convert_set_property;
  gobject_class->get_property = gst_uel_convert_get_property;
  gobject_class->finalize = gst_uel_convert_finalize;

  g_object_class_install_property (gobject_class, PROP_DTYPE,
      g_param_spec_enum ("dtype", "Target dtype",
          "The floating dtype to cast the selected tensors to (none = pass "
          "every buffer on)", GST_TYPE_UEL_CONVERT_DTYPE, DEFAULT_DTYPE,
          rw_playing));
  g_object_class_install_property (gobject_class, PROP_TENSORS,
      g_param_spec_string ("tensors", "Tensors",
          "Comma-separated names or glob patterns (* and ?) of the tensors "
          "to convert; a backslash takes the next character literally "
          "(\\, \\* \\\\) (empty = every tensor)", DEFAULT_TENSORS,
          rw_playing));
  g_object_class_install_property (gobject_class, PROP_DTYPES,
      g_param_spec_string ("dtypes", "Source dtypes",
          "Comma-separated dtypes of the tensors to convert, as the buffers' "
          "metas say them, e.g. \"F32,F16\" (empty = every dtype that "
          "converts: F64, F32, F16, BF16, F8_E4M3, F8_E5M2)", DEFAULT_DTYPES,
          rw_playing));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Tensor dtype converter", "Filter/Converter",
      "Casts floating-point tensors to F32, F16, BF16, F8_E4M3 or F8_E5M2 "
      "on the CPU; other tensors pass unchanged", "gst-uel developers");
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 uelsrc location=model.safetensors ! uelconvert "
      "dtype=bf16 ! fakesink");

  trans_class->transform_caps = gst_uel_convert_transform_caps;
  trans_class->prepare_output_buffer = gst_uel_convert_prepare_output_buffer;
  trans_class->transform = gst_uel_convert_transform;
  trans_class->sink_event = gst_uel_convert_sink_event;
  trans_class->passthrough_on_same_caps = FALSE;
}

static void
gst_uel_convert_init (GstUelConvert * self)
{
  self->dtype = DEFAULT_DTYPE;
  self->filter = uel_tensor_filter_new ();
}
