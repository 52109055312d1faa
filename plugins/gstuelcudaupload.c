/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-uelcudaupload
 * @title: uelcudaupload
 *
 * Copies tensors to CUDA device memory (the runtime's primary context, the
 * one PyTorch shares) with asynchronous copies on its own stream, several in
 * flight, so that reading the next tensors overlaps the copies.  Chunked
 * tensors (`uelsrc chunk-size=N`) are reassembled into one device tensor.
 * An input buffer goes back to its pool only when its copy has finished.
 *
 * Pinned input (from `uelpin`, or read straight into the pinned pool this
 * element proposes upstream when there is no `uelpin`) copies at full bus
 * speed; pageable input works, slower.  The pool proposed upstream is the
 * application's when a `uel.pinned-pool` context gives one (see uelpin),
 * so that pipelines run one after another pin only once; without a device
 * there is no pool to propose, and the element does not ask for one.
 *
 * With #GstUelCudaUpload:convert-to, floating-point tensors (F32, F16,
 * BF16, F64) are converted on the GPU with round-to-nearest-even; the meta
 * then says the new dtype.  Other tensors are copied unchanged.
 *
 * Output buffers hold #UelCudaAllocator memory, caps feature
 * `memory:UelCUDA`: map with `GST_MAP_READ | UEL_MAP_CUDA` for the device
 * pointer, or plainly for a host copy.  With #GstUelCudaUpload:single-allocation
 * all tensors of a stream are views of one device allocation sized from the
 * header.
 *
 * Without a CUDA device or driver, or with a bad device id, the default
 * (`fallback=passthrough`) warns once and passes host buffers on unchanged,
 * as the seed's `transfer_to_gpu_pinned` falls back; `fallback=error` fails
 * to start with CUDA's own message.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors ! uelqueue ! uelpin ! uelcudaupload convert-to=bf16 ! fakesink
 * ]| Loads a model onto the GPU in BF16.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst-uel/uel.h>

#include "gstuelcudaupload.h"
#include "gstuelelements.h"

GST_DEBUG_CATEGORY_STATIC (gst_uel_cuda_upload_debug);
#define GST_CAT_DEFAULT gst_uel_cuda_upload_debug

#define DEFAULT_DEVICE -1
#define DEFAULT_CONVERT_TO GST_UEL_CONVERT_NONE
#define DEFAULT_FALLBACK GST_UEL_FALLBACK_PASSTHROUGH
#define DEFAULT_SINGLE_ALLOCATION FALSE
#define DEFAULT_MAX_IN_FLIGHT 4
#define DEFAULT_POOL_SIZE (G_GUINT64_CONSTANT (256) << 20)

enum
{
  PROP_0,
  PROP_DEVICE,
  PROP_CONVERT_TO,
  PROP_FALLBACK,
  PROP_SINGLE_ALLOCATION,
  PROP_MAX_IN_FLIGHT,
  PROP_POOL_SIZE,
  PROP_STATS,
};

struct _GstUelCudaUpload
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* properties, under the object lock */
  gint device;
  GstUelConvertTo convert_to;
  GstUelFallback fallback;
  gboolean single_allocation;
  guint max_in_flight;
  guint64 pool_size;

  /* from READY→PAUSED to PAUSED→READY */
  UelCudaUploader *uploader;    /* NULL: passing host buffers through */
  GstAllocator *pinned;         /* proposed upstream */
  guint64 n_fallback;           /* under the object lock */
  guint64 n_fallback_bytes;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "(ANY)"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "(" UEL_CAPS_FEATURE_MEMORY_CUDA
        "); " UEL_TENSOR_MEDIA_TYPE "(ANY)"));

#define _do_init \
  GST_DEBUG_CATEGORY_INIT (gst_uel_cuda_upload_debug, "uelcudaupload", 0, \
      "host to CUDA device copies");
#define gst_uel_cuda_upload_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstUelCudaUpload, gst_uel_cuda_upload,
    GST_TYPE_ELEMENT, _do_init);
GST_ELEMENT_REGISTER_DEFINE (uelcudaupload, "uelcudaupload", GST_RANK_NONE,
    GST_TYPE_UEL_CUDA_UPLOAD);

GType
gst_uel_convert_to_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_UEL_CONVERT_NONE, "keep every dtype", "none"},
    {GST_UEL_CONVERT_F32, "floating tensors to F32", "f32"},
    {GST_UEL_CONVERT_F16, "floating tensors to F16", "f16"},
    {GST_UEL_CONVERT_BF16, "floating tensors to BF16", "bf16"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstUelConvertTo", values);
    g_once_init_leave (&type, t);
  }
  return (GType) type;
}

GType
gst_uel_fallback_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_UEL_FALLBACK_PASSTHROUGH,
        "without a device, warn once and pass host buffers on", "passthrough"},
    {GST_UEL_FALLBACK_ERROR, "without a device, fail to start", "error"},
    {0, NULL, NULL}
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstUelFallback", values);
    g_once_init_leave (&type, t);
  }
  return (GType) type;
}

static UelDType
convert_dtype (GstUelConvertTo c)
{
  switch (c) {
    case GST_UEL_CONVERT_F32:
      return UEL_DTYPE_F32;
    case GST_UEL_CONVERT_F16:
      return UEL_DTYPE_F16;
    case GST_UEL_CONVERT_BF16:
      return UEL_DTYPE_BF16;
    default:
      return UEL_DTYPE_INVALID;
  }
}

static GstFlowReturn
push_ready (GstUelCudaUpload * self, GPtrArray * ready)
{
  GstFlowReturn ret = GST_FLOW_OK;

  for (guint i = 0; i < ready->len; i++) {
    GstBuffer *buf = g_ptr_array_index (ready, i);

    g_ptr_array_index (ready, i) = NULL;
    if (ret == GST_FLOW_OK)
      ret = gst_pad_push (self->srcpad, buf);
    else
      gst_buffer_unref (buf);
  }
  g_ptr_array_set_size (ready, 0);
  return ret;
}

static void
post_cuda_error (GstUelCudaUpload * self, GError * err)
{
  GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
      ("Could not copy a tensor to the GPU."), ("%s", err->message));
}

static GstFlowReturn
gst_uel_cuda_upload_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (parent);
  g_autoptr (GPtrArray) ready = NULL;
  GError *err = NULL;
  gboolean ok;

  if (!self->uploader) {
    GST_OBJECT_LOCK (self);
    self->n_fallback++;
    self->n_fallback_bytes += gst_buffer_get_size (buf);
    GST_OBJECT_UNLOCK (self);
    return gst_pad_push (self->srcpad, buf);
  }

  ready = g_ptr_array_new ();
  ok = uel_cuda_uploader_submit (self->uploader, buf, ready, &err);
  gst_buffer_unref (buf);
  if (!ok) {
    post_cuda_error (self, err);
    g_clear_error (&err);
    push_ready (self, ready);
    return GST_FLOW_ERROR;
  }
  return push_ready (self, ready);
}

/* everything queued reaches downstream before the next serialized event */
static gboolean
drain (GstUelCudaUpload * self)
{
  g_autoptr (GPtrArray) ready = g_ptr_array_new ();
  GError *err = NULL;
  gboolean ok;

  if (!self->uploader)
    return TRUE;
  ok = uel_cuda_uploader_drain (self->uploader, ready, &err);
  push_ready (self, ready);
  if (!ok) {
    post_cuda_error (self, err);
    g_clear_error (&err);
  }
  return ok;
}

static gboolean
gst_uel_cuda_upload_sink_event (GstPad * pad, GstObject * parent,
    GstEvent * event)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (parent);
  UelHeader *header = NULL;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;

      if (!self->uploader)
        break;
      /* same tensors, now in device memory */
      caps = gst_caps_new_empty_simple (UEL_TENSOR_MEDIA_TYPE);
      gst_caps_set_features (caps, 0,
          gst_caps_features_new (UEL_CAPS_FEATURE_MEMORY_CUDA, NULL));
      gst_event_unref (event);
      return gst_pad_push_event (self->srcpad, gst_event_new_caps (caps));
    }
    case GST_EVENT_FLUSH_STOP:
      if (self->uploader)
        uel_cuda_uploader_drain (self->uploader, NULL, NULL);
      break;
    default:
      if (GST_EVENT_IS_SERIALIZED (event) && !drain (self)) {
        gst_event_unref (event);
        return FALSE;
      }
      if (self->uploader && uel_header_event_parse (event, &header)) {
        gboolean single;
        GError *err = NULL;

        GST_OBJECT_LOCK (self);
        single = self->single_allocation;
        GST_OBJECT_UNLOCK (self);
        if (single
            && !uel_cuda_uploader_reserve (self->uploader, header, &err)) {
          post_cuda_error (self, err);
          g_clear_error (&err);
          uel_header_unref (header);
          gst_event_unref (event);
          return FALSE;
        }
        uel_header_unref (header);
      }
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_uel_cuda_upload_sink_query (GstPad * pad, GstObject * parent,
    GstQuery * query)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (parent);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_ALLOCATION:{
      GstAllocationParams params;

      /* with a device, offer a pinned pool so that the reader fills it
       * directly when no uelpin stands in between */
      if (!self->pinned)
        return FALSE;
      gst_allocation_params_init (&params);
      gst_query_add_allocation_param (query, self->pinned, &params);
      return TRUE;
    }
    case GST_QUERY_CAPS:{
      GstCaps *filter, *caps = gst_pad_get_pad_template_caps (pad);

      gst_query_parse_caps (query, &filter);
      if (filter) {
        GstCaps *tmp = gst_caps_intersect_full (filter, caps,
            GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref (caps);
        caps = tmp;
      }
      gst_query_set_caps_result (query, caps);
      gst_caps_unref (caps);
      return TRUE;
    }
    default:
      return gst_pad_query_default (pad, parent, query);
  }
}

static gboolean
gst_uel_cuda_upload_start (GstUelCudaUpload * self)
{
  GError *err = NULL;
  gint device;
  UelDType to;
  guint max_in_flight;
  guint64 pool_size;
  GstUelFallback fallback;

  GST_OBJECT_LOCK (self);
  device = self->device;
  to = convert_dtype (self->convert_to);
  max_in_flight = self->max_in_flight;
  pool_size = self->pool_size;
  fallback = self->fallback;
  self->n_fallback = self->n_fallback_bytes = 0;
  GST_OBJECT_UNLOCK (self);

  self->uploader = uel_cuda_uploader_new (device, to, max_in_flight, &err);
  if (!self->uploader) {
    if (fallback == GST_UEL_FALLBACK_ERROR) {
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
          ("Cannot copy tensors to the GPU: %s.", err->message),
          ("fallback=error; cuda-device-id=%d", device));
      g_clear_error (&err);
      return FALSE;
    }
    GST_ELEMENT_WARNING (self, RESOURCE, NOT_FOUND,
        ("Cannot copy tensors to the GPU: passing them on in host memory."),
        ("%s (fallback=passthrough)", err->message));
    g_clear_error (&err);
    return TRUE;
  }
  /* a pool shared by the application, or our own (pinned when first used) */
  self->pinned = gst_uel_shared_pinned_allocator (GST_ELEMENT (self));
  if (self->pinned)
    GST_INFO_OBJECT (self, "proposing the application's pinned pool");
  else
    self->pinned = uel_pinned_allocator_new (pool_size, device);
  return TRUE;
}

static void
gst_uel_cuda_upload_stop (GstUelCudaUpload * self)
{
  g_clear_pointer (&self->uploader, uel_cuda_uploader_free);
  gst_clear_object (&self->pinned);
}

static GstStateChangeReturn
gst_uel_cuda_upload_change_state (GstElement * element,
    GstStateChange transition)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!gst_uel_cuda_upload_start (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* wake a reader waiting on our pinned pool */
      if (self->pinned)
        uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR
            (self->pinned), TRUE);
      break;
    default:
      break;
  }
  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY
      || (transition == GST_STATE_CHANGE_READY_TO_PAUSED
          && ret == GST_STATE_CHANGE_FAILURE))
    gst_uel_cuda_upload_stop (self);
  return ret;
}

static GstStructure *
make_stats (GstUelCudaUpload * self)
{
  UelCudaUploadStats st = { 0, };
  gdouble gbps, wall_gbps;
  GstStructure *s;

  /* the streaming thread updates the counters: a reading may be a tensor
   * behind, never torn, as they are plain 64-bit words */
  if (self->uploader)
    uel_cuda_uploader_get_stats (self->uploader, &st);
  gbps = st.copy_ns ? (gdouble) st.bytes / (gdouble) st.copy_ns : 0;
  wall_gbps = st.wall_ns ? (gdouble) st.bytes / (gdouble) st.wall_ns : 0;
  GST_OBJECT_LOCK (self);
  s = gst_structure_new ("uelcudaupload-stats",
      "tensors", G_TYPE_UINT64, st.tensors,
      "bytes", G_TYPE_UINT64, st.bytes,
      "copy-time", G_TYPE_UINT64, st.copy_ns,
      "gbps", G_TYPE_DOUBLE, gbps,
      "wall-time", G_TYPE_UINT64, st.wall_ns,
      "wall-gbps", G_TYPE_DOUBLE, wall_gbps,
      "pageable", G_TYPE_UINT64, st.pageable,
      "converted", G_TYPE_UINT64, st.converted,
      "allocations", G_TYPE_UINT64, st.allocations,
      "fallbacks", G_TYPE_UINT64, self->n_fallback,
      "fallback-bytes", G_TYPE_UINT64, self->n_fallback_bytes, NULL);
  GST_OBJECT_UNLOCK (self);
  return s;
}

static void
gst_uel_cuda_upload_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (object);

  if (!gst_uel_property_can_change (GST_ELEMENT (self), pspec))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_DEVICE:
      self->device = g_value_get_int (value);
      break;
    case PROP_CONVERT_TO:
      self->convert_to = g_value_get_enum (value);
      break;
    case PROP_FALLBACK:
      self->fallback = g_value_get_enum (value);
      break;
    case PROP_SINGLE_ALLOCATION:
      self->single_allocation = g_value_get_boolean (value);
      break;
    case PROP_MAX_IN_FLIGHT:
      self->max_in_flight = g_value_get_uint (value);
      break;
    case PROP_POOL_SIZE:
      self->pool_size = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_cuda_upload_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, make_stats (self));
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_DEVICE:
      g_value_set_int (value, self->device);
      break;
    case PROP_CONVERT_TO:
      g_value_set_enum (value, self->convert_to);
      break;
    case PROP_FALLBACK:
      g_value_set_enum (value, self->fallback);
      break;
    case PROP_SINGLE_ALLOCATION:
      g_value_set_boolean (value, self->single_allocation);
      break;
    case PROP_MAX_IN_FLIGHT:
      g_value_set_uint (value, self->max_in_flight);
      break;
    case PROP_POOL_SIZE:
      g_value_set_uint64 (value, self->pool_size);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_cuda_upload_finalize (GObject * object)
{
  gst_uel_cuda_upload_stop (GST_UEL_CUDA_UPLOAD (object));
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_uel_cuda_upload_class_init (GstUelCudaUploadClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw_ready = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_uel_cuda_upload_set_property;
  gobject_class->get_property = gst_uel_cuda_upload_get_property;
  gobject_class->finalize = gst_uel_cuda_upload_finalize;

  g_object_class_install_property (gobject_class, PROP_DEVICE,
      g_param_spec_int ("cuda-device-id", "CUDA device id",
          "The CUDA device to copy to (-1 = current)", -1, G_MAXINT,
          DEFAULT_DEVICE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_CONVERT_TO,
      g_param_spec_enum ("convert-to", "Convert to",
          "Convert floating-point tensors to this dtype on the GPU "
          "(round to nearest even); other tensors are copied unchanged",
          GST_TYPE_UEL_CONVERT_TO, DEFAULT_CONVERT_TO, rw_ready));
  g_object_class_install_property (gobject_class, PROP_FALLBACK,
      g_param_spec_enum ("fallback", "Fallback",
          "What to do without a usable CUDA device", GST_TYPE_UEL_FALLBACK,
          DEFAULT_FALLBACK, rw_ready));
  g_object_class_install_property (gobject_class, PROP_SINGLE_ALLOCATION,
      g_param_spec_boolean ("single-allocation", "Single allocation",
          "Place all tensors of a stream in one device allocation sized "
          "from the header (tensors become views) instead of one each",
          DEFAULT_SINGLE_ALLOCATION, rw_ready));
  g_object_class_install_property (gobject_class, PROP_MAX_IN_FLIGHT,
      g_param_spec_uint ("max-in-flight", "Max in flight",
          "Tensors whose copies may be queued on the GPU before the oldest "
          "is waited for and pushed", 1, 1024, DEFAULT_MAX_IN_FLIGHT,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_POOL_SIZE,
      g_param_spec_uint64 ("pool-size", "Pool size",
          "Bytes of the pinned pool proposed upstream when no uelpin "
          "provides one (unused when a uel.pinned-pool context gives the "
          "pool)", 1, G_MAXUINT64, DEFAULT_POOL_SIZE, rw_ready));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "tensors, bytes, copy-time (ns on the GPU), gbps (bytes per ns of "
          "copy time), wall-time, wall-gbps, pageable, converted, "
          "allocations, fallbacks, fallback-bytes", GST_TYPE_STRUCTURE,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "CUDA tensor upload", "Filter/Converter",
      "Copies tensors to CUDA device memory asynchronously, optionally "
      "converting floating-point dtypes on the GPU", "gst-uel developers");
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 uelsrc location=model.safetensors ! uelqueue ! "
      "uelpin ! uelcudaupload ! fakesink");
  element_class->change_state = gst_uel_cuda_upload_change_state;

  gst_type_mark_as_plugin_api (GST_TYPE_UEL_CONVERT_TO, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_UEL_FALLBACK, 0);
}

static void
gst_uel_cuda_upload_init (GstUelCudaUpload * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, gst_uel_cuda_upload_chain);
  gst_pad_set_event_function (self->sinkpad, gst_uel_cuda_upload_sink_event);
  gst_pad_set_query_function (self->sinkpad, gst_uel_cuda_upload_sink_query);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->device = DEFAULT_DEVICE;
  self->convert_to = DEFAULT_CONVERT_TO;
  self->fallback = DEFAULT_FALLBACK;
  self->single_allocation = DEFAULT_SINGLE_ALLOCATION;
  self->max_in_flight = DEFAULT_MAX_IN_FLIGHT;
  self->pool_size = DEFAULT_POOL_SIZE;
}
