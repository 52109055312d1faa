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
 * BF16, F8_E4M3, F8_E5M2, F64) are converted on the GPU with
 * round-to-nearest-even, bit for bit as uelconvert and uel_convert_cpu()
 * convert on the CPU (for the 8-bit floats: as ml_dtypes does); the meta
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

#include <gst/base/gstbasetransform.h>
#include <gst-uel/uel.h>
#include <gst-uel/uel-enum-private.h>

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

/* what the element does with buffers, which decides its caps */
typedef enum
{
  MODE_STOPPED,                 /* either: caps queries answer both */
  MODE_UPLOAD,                  /* memory:UelCUDA out */
  MODE_PASSTHROUGH,             /* no device: the input caps out */
} Mode;

struct _GstUelCudaUpload
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  gint device;
  GstUelConvertTo convert_to;
  GstUelFallback fallback;
  gboolean single_allocation;
  guint max_in_flight;
  guint64 pool_size;

  /* set by start and stop under the object lock, which make_stats takes
   * to read the uploader's counters: stop cannot free it under a reader */
  Mode mode;
  UelCudaUploader *uploader;
  UelCudaUploadStats last_stats;        /* the stopped uploader's counters */
  guint64 n_fallback;
  guint64 n_fallback_bytes;

  GstAllocator *pinned;         /* proposed upstream, from start to stop */
  GQueue ready;                 /* streaming thread: copies done, to push */
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
    GST_TYPE_BASE_TRANSFORM, _do_init);
GST_ELEMENT_REGISTER_DEFINE (uelcudaupload, "uelcudaupload", GST_RANK_NONE,
    GST_TYPE_UEL_CUDA_UPLOAD);

static const GEnumValue convert_to_values[] = {
  {GST_UEL_CONVERT_NONE, "keep every dtype", "none"},
  {GST_UEL_CONVERT_F32, "floating tensors to F32", "f32"},
  {GST_UEL_CONVERT_F16, "floating tensors to F16", "f16"},
  {GST_UEL_CONVERT_BF16, "floating tensors to BF16", "bf16"},
  {GST_UEL_CONVERT_F8_E4M3, "floating tensors to F8_E4M3 (float8_e4m3fn)",
      "f8-e4m3"},
  {GST_UEL_CONVERT_F8_E5M2, "floating tensors to F8_E5M2", "f8-e5m2"},
  {0, NULL, NULL}
};

static const GEnumValue fallback_values[] = {
  {GST_UEL_FALLBACK_PASSTHROUGH,
      "without a device, warn once and pass host buffers on", "passthrough"},
  {GST_UEL_FALLBACK_ERROR, "without a device, fail to start", "error"},
  {0, NULL, NULL}
};

UEL_DEFINE_ENUM_TYPE (GstUelConvertTo, gst_uel_convert_to, convert_to_values);
UEL_DEFINE_ENUM_TYPE (GstUelFallback, gst_uel_fallback, fallback_values);

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
    case GST_UEL_CONVERT_F8_E4M3:
      return UEL_DTYPE_F8_E4M3;
    case GST_UEL_CONVERT_F8_E5M2:
      return UEL_DTYPE_F8_E5M2;
    default:
      return UEL_DTYPE_INVALID;
  }
}

/* ------------------------------------------------------------------ */
/* caps and allocation */

static gboolean
has_cuda_feature (GstCaps * caps, guint i)
{
  GstCapsFeatures *f = gst_caps_get_features (caps, i);

  return f && !gst_caps_features_is_any (f)
      && gst_caps_features_contains (f, UEL_CAPS_FEATURE_MEMORY_CUDA);
}

/* Downstream (direction SINK): device memory when copying, the input as it
 * is when passing through, both while stopped.  Upstream (direction SRC):
 * device memory comes from any host memory; anything else passed through
 * unchanged. */
static GstCaps *
gst_uel_cuda_upload_transform_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * filter)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (trans);
  GstCaps *out = gst_caps_new_empty ();
  Mode mode;

  GST_OBJECT_LOCK (self);
  mode = self->mode;
  GST_OBJECT_UNLOCK (self);

  for (guint i = 0; i < gst_caps_get_size (caps); i++) {
    GstStructure *s = gst_caps_get_structure (caps, i);
    GstCapsFeatures *f = gst_caps_get_features (caps, i);

    if (direction == GST_PAD_SINK) {
      if (mode != MODE_PASSTHROUGH)
        out = gst_caps_merge_structure_full (out, gst_structure_copy (s),
            gst_caps_features_new (UEL_CAPS_FEATURE_MEMORY_CUDA, NULL));
      if (mode != MODE_UPLOAD)
        out = gst_caps_merge_structure_full (out, gst_structure_copy (s),
            f ? gst_caps_features_copy (f) : NULL);
    } else {
      out = gst_caps_merge_structure_full (out, gst_structure_copy (s),
          has_cuda_feature (caps, i) ? gst_caps_features_new_any () :
          f ? gst_caps_features_copy (f) : NULL);
    }
  }
  return gst_uel_caps_filter (out, filter);
}

/* With a device, offer a pinned pool so that the reader fills it directly
 * when no uelpin stands in between; passing through, downstream answers. */
static gboolean
gst_uel_cuda_upload_propose_allocation (GstBaseTransform * trans,
    GstQuery * decide_query, GstQuery * query)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (trans);
  GstAllocationParams params;

  if (!self->pinned)
    return GST_BASE_TRANSFORM_CLASS (parent_class)->propose_allocation (trans,
        decide_query, query);
  gst_allocation_params_init (&params);
  gst_query_add_allocation_param (query, self->pinned, &params);
  return TRUE;
}

static gboolean
gst_uel_cuda_upload_decide_allocation (GstBaseTransform * trans,
    GstQuery * query)
{
  /* device memory comes from the uploader, whatever downstream offers */
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* streaming */

static void
post_cuda_error (GstUelCudaUpload * self, GError * err)
{
  GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
      ("Could not copy a tensor to the GPU."), ("%s", err->message));
}

static void
queue_ready (GstUelCudaUpload * self, GPtrArray * ready)
{
  for (guint i = 0; i < ready->len; i++)
    g_queue_push_tail (&self->ready, g_ptr_array_index (ready, i));
  g_ptr_array_set_size (ready, 0);
}

static void
clear_ready (GstUelCudaUpload * self)
{
  GstBuffer *buf;

  while ((buf = g_queue_pop_head (&self->ready)))
    gst_buffer_unref (buf);
}

/* The base class checks negotiation and queues @buf; the copy starts here,
 * and the tensors whose copies are done wait for generate_output. */
static GstFlowReturn
gst_uel_cuda_upload_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (trans);
  g_autoptr (GPtrArray) ready = NULL;
  GError *err = NULL;
  GstFlowReturn ret;
  GstBuffer *buf;
  gboolean ok;

  ret = GST_BASE_TRANSFORM_CLASS (parent_class)->submit_input_buffer (trans,
      is_discont, input);
  buf = g_steal_pointer (&trans->queued_buf);
  if (ret != GST_FLOW_OK || !buf) {
    gst_clear_buffer (&buf);
    return ret;
  }

  if (!self->uploader) {
    GST_OBJECT_LOCK (self);
    self->n_fallback++;
    self->n_fallback_bytes += gst_buffer_get_size (buf);
    GST_OBJECT_UNLOCK (self);
    g_queue_push_tail (&self->ready, buf);
    return GST_FLOW_OK;
  }

  ready = g_ptr_array_new ();
  ok = uel_cuda_uploader_submit (self->uploader, buf, ready, &err);
  gst_buffer_unref (buf);
  queue_ready (self, ready);
  if (!ok) {
    post_cuda_error (self, err);
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_uel_cuda_upload_generate_output (GstBaseTransform * trans,
    GstBuffer ** outbuf)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (trans);

  *outbuf = g_queue_pop_head (&self->ready);
  return GST_FLOW_OK;
}

/* Everything queued reaches downstream before the next serialized event. */
static gboolean
drain (GstUelCudaUpload * self)
{
  GstPad *srcpad = GST_BASE_TRANSFORM_SRC_PAD (self);
  g_autoptr (GPtrArray) ready = g_ptr_array_new ();
  GstFlowReturn ret = GST_FLOW_OK;
  GError *err = NULL;
  gboolean ok = TRUE;
  GstBuffer *buf;

  if (self->uploader) {
    ok = uel_cuda_uploader_drain (self->uploader, ready, &err);
    queue_ready (self, ready);
  }
  while ((buf = g_queue_pop_head (&self->ready))) {
    if (ret == GST_FLOW_OK)
      ret = gst_pad_push (srcpad, buf);
    else
      gst_buffer_unref (buf);
  }
  if (!ok) {
    post_cuda_error (self, err);
    g_clear_error (&err);
  }
  return ok;
}

static gboolean
gst_uel_cuda_upload_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (trans);
  UelHeader *header = NULL;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_STOP:
      if (self->uploader)
        uel_cuda_uploader_drain (self->uploader, NULL, NULL);
      clear_ready (self);
      break;
    case GST_EVENT_CAPS:
      break;
    default:
      if (!GST_EVENT_IS_SERIALIZED (event))
        break;
      if (!drain (self)) {
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
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

/* ------------------------------------------------------------------ */
/* start and stop */

static gboolean
gst_uel_cuda_upload_start (GstBaseTransform * trans)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (trans);
  UelCudaUploader *uploader;
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
  memset (&self->last_stats, 0, sizeof (self->last_stats));
  GST_OBJECT_UNLOCK (self);

  uploader = uel_cuda_uploader_new (device, to, max_in_flight, &err);
  if (!uploader) {
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
    GST_OBJECT_LOCK (self);
    self->mode = MODE_PASSTHROUGH;
    GST_OBJECT_UNLOCK (self);
    /* allocation queries go on downstream, as through any passthrough */
    gst_base_transform_set_passthrough (trans, TRUE);
    return TRUE;
  }
  /* a pool shared by the application, or our own (pinned when first used) */
  self->pinned = gst_uel_shared_pinned_allocator (GST_ELEMENT (self));
  if (self->pinned)
    GST_INFO_OBJECT (self, "proposing the application's pinned pool");
  else
    self->pinned = uel_pinned_allocator_new (pool_size, device);
  GST_OBJECT_LOCK (self);
  self->uploader = uploader;
  self->mode = MODE_UPLOAD;
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static gboolean
gst_uel_cuda_upload_stop (GstBaseTransform * trans)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (trans);
  UelCudaUploader *uploader;

  clear_ready (self);
  GST_OBJECT_LOCK (self);
  uploader = g_steal_pointer (&self->uploader);
  if (uploader)
    uel_cuda_uploader_get_stats (uploader, &self->last_stats);
  self->mode = MODE_STOPPED;
  GST_OBJECT_UNLOCK (self);
  gst_base_transform_set_passthrough (trans, FALSE);
  g_clear_pointer (&uploader, uel_cuda_uploader_free);
  gst_clear_object (&self->pinned);
  return TRUE;
}

static GstStateChangeReturn
gst_uel_cuda_upload_change_state (GstElement * element,
    GstStateChange transition)
{
  GstUelCudaUpload *self = GST_UEL_CUDA_UPLOAD (element);

  /* wake a reader waiting on our pinned pool before the pads deactivate */
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY && self->pinned)
    uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (self->pinned),
        TRUE);
  return GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
}

static GstStructure *
make_stats (GstUelCudaUpload * self)
{
  UelCudaUploadStats st;
  gdouble gbps, wall_gbps;
  guint64 n_fallback, n_fallback_bytes;

  /* the streaming thread updates the uploader's counters: a reading may be
   * a tensor behind, never torn, as they are plain 64-bit words; the lock
   * keeps stop from freeing the uploader meanwhile */
  GST_OBJECT_LOCK (self);
  if (self->uploader)
    uel_cuda_uploader_get_stats (self->uploader, &st);
  else
    st = self->last_stats;
  n_fallback = self->n_fallback;
  n_fallback_bytes = self->n_fallback_bytes;
  GST_OBJECT_UNLOCK (self);

  gbps = st.copy_ns ? (gdouble) st.bytes / (gdouble) st.copy_ns : 0;
  wall_gbps = st.wall_ns ? (gdouble) st.bytes / (gdouble) st.wall_ns : 0;
  return gst_structure_new ("uelcudaupload-stats",
      "tensors", G_TYPE_UINT64, st.tensors,
      "bytes", G_TYPE_UINT64, st.bytes,
      "copy-time", G_TYPE_UINT64, st.copy_ns,
      "gbps", G_TYPE_DOUBLE, gbps,
      "wall-time", G_TYPE_UINT64, st.wall_ns,
      "wall-gbps", G_TYPE_DOUBLE, wall_gbps,
      "pageable", G_TYPE_UINT64, st.pageable,
      "converted", G_TYPE_UINT64, st.converted,
      "allocations", G_TYPE_UINT64, st.allocations,
      "fallbacks", G_TYPE_UINT64, n_fallback,
      "fallback-bytes", G_TYPE_UINT64, n_fallback_bytes, NULL);
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
gst_uel_cuda_upload_class_init (GstUelCudaUploadClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  const GParamFlags rw_ready = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_uel_cuda_upload_set_property;
  gobject_class->get_property = gst_uel_cuda_upload_get_property;

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

  trans_class->start = gst_uel_cuda_upload_start;
  trans_class->stop = gst_uel_cuda_upload_stop;
  trans_class->transform_caps = gst_uel_cuda_upload_transform_caps;
  trans_class->propose_allocation = gst_uel_cuda_upload_propose_allocation;
  trans_class->decide_allocation = gst_uel_cuda_upload_decide_allocation;
  trans_class->submit_input_buffer = gst_uel_cuda_upload_submit_input_buffer;
  trans_class->generate_output = gst_uel_cuda_upload_generate_output;
  trans_class->sink_event = gst_uel_cuda_upload_sink_event;
  trans_class->passthrough_on_same_caps = FALSE;

  gst_type_mark_as_plugin_api (GST_TYPE_UEL_CONVERT_TO, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_UEL_FALLBACK, 0);
}

static void
gst_uel_cuda_upload_init (GstUelCudaUpload * self)
{
  g_queue_init (&self->ready);
  self->device = DEFAULT_DEVICE;
  self->convert_to = DEFAULT_CONVERT_TO;
  self->fallback = DEFAULT_FALLBACK;
  self->single_allocation = DEFAULT_SINGLE_ALLOCATION;
  self->max_in_flight = DEFAULT_MAX_IN_FLIGHT;
  self->pool_size = DEFAULT_POOL_SIZE;
}
