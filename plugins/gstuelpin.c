/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-uelpin
 * @title: uelpin
 *
 * Places tensors in pinned (page-locked) host memory, from which the GPU
 * copies at full bus speed.  The memory is one pool of #GstUelPin:pool-size
 * bytes, pinned once and reused; when it is used up, the stream waits for
 * buffers to come back, so the pool is also the pipeline's memory bound.
 *
 * uelpin proposes its pool upstream in the ALLOCATION query: `uelsrc`
 * (through `uelqueue`) then reads straight into pinned memory and uelpin
 * passes those buffers on without a copy.  Buffers that arrive elsewhere
 * are copied into the pool, all in this element's single streaming thread,
 * so pinning never contends among readers.  A buffer larger than half the
 * pool passes unpinned (counted as a fallback), and so does one for which
 * no memory comes back within 3 s (buffers kept downstream, such as a
 * sink's last sample): nothing waits forever.  Use `uelsrc chunk-size=N`
 * with N at most a quarter of the pool to pin tensors of any size.
 *
 * An application that runs one pipeline after another (loading models in
 * turn) can pin once for all of them: it creates a pool with
 * uel_pinned_allocator_new() and sets uel_pinned_pool_context_new() of it
 * on each pipeline with gst_element_set_context() before the pipeline
 * leaves READY (or answers, from a bus sync handler, the `need-context`
 * message for `uel.pinned-pool` that uelpin posts when it starts).  uelpin
 * then draws from that pool, whatever its own #GstUelPin:pool-size and
 * #GstUelPin:cuda-device-id, and `pool-shared` in its stats says so; the
 * `pool-live-bytes`, `pool-peak-bytes`, `pool-waits` and `pool-starved`
 * counters are this element's own share of it.
 *
 * Its output caps say what the buffers hold: `memory:UelPinned` when the
 * pool is pinned by a device, plain system memory (no caps feature) without
 * a CUDA device or driver, when uelpin warns once and uses page-aligned host
 * memory, so every pipeline still runs.  The fallbacks above (a buffer
 * larger than half the pool, or starved) pass in the memory they came in
 * and are counted in the stats.  #GstUelPin:stats says what
 * happened: tensors and bytes, how many arrived already pinned (zero
 * copies), how many were copied, how many fell back, and the time spent
 * copying.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors chunk-size=67108864 ! uelqueue max-size-bytes=268435456 ! uelpin pool-size=268435456 ! fakesink
 * ]| Streams a model of any size through 256 MiB of pinned memory.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include <gst/base/gstbasetransform.h>
#include <gst-uel/uel.h>

#include "gstuelelements.h"
#include "gstuelpin.h"

GST_DEBUG_CATEGORY_STATIC (gst_uel_pin_debug);
#define GST_CAT_DEFAULT gst_uel_pin_debug

#define DEFAULT_POOL_SIZE (G_GUINT64_CONSTANT (256) << 20)
#define DEFAULT_CUDA_DEVICE_ID -1

enum
{
  PROP_0,
  PROP_POOL_SIZE,
  PROP_CUDA_DEVICE_ID,
  PROP_STATS,
};

struct _GstUelPin
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  guint64 pool_size;
  gint cuda_device_id;

  GstAllocator *allocator;      /* UelPinnedAllocator, from start to stop */
  gboolean pool_shared;         /* drawn from an application's pool */
  gboolean device_pinned;

  /* statistics, under the object lock */
  guint64 n_buffers;
  guint64 n_tensors;
  guint64 n_bytes;
  guint64 n_zero_copy;
  guint64 n_copied;
  guint64 n_fallback;
  guint64 copy_ns;
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "(ANY)"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "("
        UEL_CAPS_FEATURE_MEMORY_PINNED "); " UEL_TENSOR_MEDIA_TYPE));

#define _do_init \
  GST_DEBUG_CATEGORY_INIT (gst_uel_pin_debug, "uelpin", 0, \
      "pinned host memory");
#define gst_uel_pin_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstUelPin, gst_uel_pin, GST_TYPE_BASE_TRANSFORM,
    _do_init);
GST_ELEMENT_REGISTER_DEFINE (uelpin, "uelpin", GST_RANK_NONE,
    GST_TYPE_UEL_PIN);

/* The media type stays, the memory changes: any memory upstream; pinned
 * memory downstream with a device, system memory without one (no feature:
 * the caps say what the buffers hold), either while stopped. */
static GstCaps *
gst_uel_pin_transform_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * filter)
{
  GstUelPin *self = GST_UEL_PIN (trans);
  GstCaps *out = gst_caps_new_empty ();
  gboolean started, pinned;

  GST_OBJECT_LOCK (self);
  started = self->allocator != NULL;
  pinned = self->device_pinned;
  GST_OBJECT_UNLOCK (self);

  for (guint i = 0; i < gst_caps_get_size (caps); i++) {
    GstStructure *s = gst_caps_get_structure (caps, i);

    if (direction == GST_PAD_SRC) {
      out = gst_caps_merge_structure_full (out, gst_structure_copy (s),
          gst_caps_features_new_any ());
      continue;
    }
    if (!started || pinned)
      out = gst_caps_merge_structure_full (out, gst_structure_copy (s),
          gst_caps_features_new (UEL_CAPS_FEATURE_MEMORY_PINNED, NULL));
    if (!started || !pinned)
      out = gst_caps_merge_structure_full (out, gst_structure_copy (s),
          NULL);
  }
  return gst_uel_caps_filter (out, filter);
}

static gboolean
gst_uel_pin_propose_allocation (GstBaseTransform * trans,
    GstQuery * decide_query, GstQuery * query)
{
  GstUelPin *self = GST_UEL_PIN (trans);
  GstAllocationParams params;

  if (!self->allocator)
    return FALSE;
  gst_allocation_params_init (&params);
  gst_query_add_allocation_param (query, self->allocator, &params);
  GST_DEBUG_OBJECT (self, "proposed the pinned pool upstream");
  return TRUE;
}

static gboolean
gst_uel_pin_decide_allocation (GstBaseTransform * trans, GstQuery * query)
{
  /* output buffers come from our own pool, whatever downstream offers */
  return TRUE;
}

static GstFlowReturn
gst_uel_pin_prepare_output_buffer (GstBaseTransform * trans,
    GstBuffer * inbuf, GstBuffer ** outbuf)
{
  GstUelPin *self = GST_UEL_PIN (trans);
  gsize size = gst_buffer_get_size (inbuf);
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (inbuf);
  gboolean pinned_in = uel_buffer_is_pinned (inbuf);
  UelPinnedStats st;
  GstMemory *mem = NULL;

  if (!pinned_in && size > 0) {
    GstAllocationParams params;

    gst_allocation_params_init (&params);
    mem = gst_allocator_alloc (self->allocator, size, &params);
    if (!mem) {
      if (GST_PAD_IS_FLUSHING (GST_BASE_TRANSFORM_SINK_PAD (trans)))
        return GST_FLOW_FLUSHING;
      uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (self->allocator),
          &st);
      GST_DEBUG_OBJECT (self, "tensor '%s' of %" G_GSIZE_FORMAT " bytes "
          "passed on unpinned: more than half the pool of %" G_GUINT64_FORMAT
          ", or no memory came back in time; use uelsrc chunk-size",
          meta ? uel_tensor_meta_get_name (meta) : "?", size, st.capacity);
    }
  }

  GST_OBJECT_LOCK (self);
  self->n_buffers++;
  if (!meta || meta->last_chunk)
    self->n_tensors++;
  self->n_bytes += size;
  if (pinned_in)
    self->n_zero_copy++;
  else if (mem)
    self->n_copied++;
  /* an empty tensor has no bytes to pin: neither copied nor a fallback */
  if (size > 0 && (!self->device_pinned || (!pinned_in && !mem)))
    self->n_fallback++;
  GST_OBJECT_UNLOCK (self);

  if (!mem) {
    /* in place: already pinned, empty, or too large for the pool */
    *outbuf = inbuf;
    return GST_FLOW_OK;
  }
  *outbuf = gst_buffer_new ();
  gst_buffer_append_memory (*outbuf, mem);
  if (!GST_BASE_TRANSFORM_CLASS (parent_class)->copy_metadata (trans, inbuf,
          *outbuf)) {
    gst_buffer_unref (*outbuf);
    *outbuf = NULL;
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_uel_pin_transform (GstBaseTransform * trans, GstBuffer * inbuf,
    GstBuffer * outbuf)
{
  GstUelPin *self = GST_UEL_PIN (trans);
  gint64 t0 = g_get_monotonic_time ();
  GstMapInfo out;
  gsize n;

  /* prepare_output_buffer passed it on as it is (already pinned, empty or
   * too large for the pool): GstBaseTransform still calls us */
  if (outbuf == inbuf)
    return GST_FLOW_OK;

  if (!gst_buffer_map (outbuf, &out, GST_MAP_WRITE)) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, (NULL),
        ("cannot map pinned memory"));
    return GST_FLOW_ERROR;
  }
  n = gst_buffer_extract (inbuf, 0, out.data, out.size);
  gst_buffer_unmap (outbuf, &out);
  if (n != out.size) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, (NULL),
        ("copied %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes", n,
            out.size));
    return GST_FLOW_ERROR;
  }
  GST_OBJECT_LOCK (self);
  self->copy_ns += (guint64) (g_get_monotonic_time () - t0) * 1000;
  GST_OBJECT_UNLOCK (self);
  return GST_FLOW_OK;
}

static gboolean
gst_uel_pin_start (GstBaseTransform * trans)
{
  GstUelPin *self = GST_UEL_PIN (trans);
  guint64 pool_size;
  gint device;
  GError *err = NULL;
  GstAllocator *alloc;
  gboolean shared, device_pinned;

  GST_OBJECT_LOCK (self);
  pool_size = self->pool_size;
  device = self->cuda_device_id;
  self->n_buffers = self->n_tensors = self->n_bytes = 0;
  self->n_zero_copy = self->n_copied = self->n_fallback = self->copy_ns = 0;
  GST_OBJECT_UNLOCK (self);

  /* a pool shared by the application, or our own */
  alloc = gst_uel_shared_pinned_allocator (GST_ELEMENT (self));
  shared = alloc != NULL;
  if (shared)
    GST_INFO_OBJECT (self, "drawing from the application's pinned pool");
  else
    alloc = uel_pinned_allocator_new (pool_size, device);
  if (!uel_pinned_allocator_prepare (UEL_PINNED_ALLOCATOR (alloc), &err)) {
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, ("%s", err->message),
        (NULL));
    g_clear_error (&err);
    gst_object_unref (alloc);
    return FALSE;
  }
  device_pinned =
      uel_pinned_allocator_is_device_pinned (UEL_PINNED_ALLOCATOR (alloc));
  if (!device_pinned)
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
        ("No CUDA device: tensors go to page-aligned host memory instead "
            "of pinned memory."), ("%s",
            uel_pinned_allocator_get_fallback_reason (UEL_PINNED_ALLOCATOR
                (alloc))));
  GST_OBJECT_LOCK (self);
  self->allocator = alloc;
  self->device_pinned = device_pinned;
  self->pool_shared = shared;
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static gboolean
gst_uel_pin_stop (GstBaseTransform * trans)
{
  GstUelPin *self = GST_UEL_PIN (trans);

  GstAllocator *alloc;

  /* buffers still alive downstream keep the pool alive */
  GST_OBJECT_LOCK (self);
  alloc = g_steal_pointer (&self->allocator);
  self->pool_shared = FALSE;
  GST_OBJECT_UNLOCK (self);
  gst_clear_object (&alloc);
  return TRUE;
}

static void
set_flushing (GstUelPin * self, gboolean flushing)
{
  GstAllocator *alloc = NULL;

  GST_OBJECT_LOCK (self);
  if (self->allocator)
    alloc = gst_object_ref (self->allocator);
  GST_OBJECT_UNLOCK (self);
  if (alloc) {
    uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (alloc), flushing);
    gst_object_unref (alloc);
  }
}

static gboolean
gst_uel_pin_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstUelPin *self = GST_UEL_PIN (trans);

  /* a flush must wake a reader waiting for pool memory upstream */
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_START)
    set_flushing (self, TRUE);
  else if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP)
    set_flushing (self, FALSE);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static GstStateChangeReturn
gst_uel_pin_change_state (GstElement * element, GstStateChange transition)
{
  GstUelPin *self = GST_UEL_PIN (element);

  /* downstream changes state first: wake the upstream thread that may be
   * waiting in our pool before the pads are deactivated */
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    set_flushing (self, TRUE);
  return GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
}

static GstStructure *
make_stats (GstUelPin * self)
{
  UelPinnedStats st = { 0, };
  GstStructure *s;

  GST_OBJECT_LOCK (self);
  if (self->allocator)
    uel_pinned_allocator_get_stats (UEL_PINNED_ALLOCATOR (self->allocator),
        &st);
  s = gst_structure_new ("uelpin-stats",
      "tensors", G_TYPE_UINT64, self->n_tensors,
      "buffers", G_TYPE_UINT64, self->n_buffers,
      "bytes", G_TYPE_UINT64, self->n_bytes,
      "zero-copy", G_TYPE_UINT64, self->n_zero_copy,
      "copied", G_TYPE_UINT64, self->n_copied,
      "fallbacks", G_TYPE_UINT64, self->n_fallback,
      "copy-time", G_TYPE_UINT64, self->copy_ns,
      "device-pinned", G_TYPE_BOOLEAN, st.device_pinned,
      "pool-size", G_TYPE_UINT64, st.capacity,
      "pool-shared", G_TYPE_BOOLEAN, self->pool_shared,
      "pool-live-bytes", G_TYPE_UINT64, st.live_bytes,
      "pool-peak-bytes", G_TYPE_UINT64, st.peak_bytes,
      "pool-waits", G_TYPE_UINT64, st.n_waits,
      "pool-starved", G_TYPE_UINT64, st.n_starved, NULL);
  GST_OBJECT_UNLOCK (self);
  return s;
}

static void
gst_uel_pin_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstUelPin *self = GST_UEL_PIN (object);

  if (!gst_uel_property_can_change (GST_ELEMENT (self), pspec))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_POOL_SIZE:
      self->pool_size = g_value_get_uint64 (value);
      break;
    case PROP_CUDA_DEVICE_ID:
      self->cuda_device_id = g_value_get_int (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_pin_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstUelPin *self = GST_UEL_PIN (object);

  switch (prop_id) {
    case PROP_POOL_SIZE:
      GST_OBJECT_LOCK (self);
      g_value_set_uint64 (value, self->pool_size);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_CUDA_DEVICE_ID:
      GST_OBJECT_LOCK (self);
      g_value_set_int (value, self->cuda_device_id);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, make_stats (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_uel_pin_class_init (GstUelPinClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->set_property = gst_uel_pin_set_property;
  gobject_class->get_property = gst_uel_pin_get_property;

  g_object_class_install_property (gobject_class, PROP_POOL_SIZE,
      g_param_spec_uint64 ("pool-size", "Pool size",
          "Bytes of pinned memory, pinned once and reused (rounded up to "
          "2 MiB); also the most tensor bytes alive downstream of the "
          "reader.  Unused when a uel.pinned-pool context gives the pool", 1, G_MAXUINT64, DEFAULT_POOL_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_CUDA_DEVICE_ID,
      g_param_spec_int ("cuda-device-id", "CUDA device id",
          "The CUDA device whose driver pins the pool (-1 = current)", -1,
          G_MAXINT, DEFAULT_CUDA_DEVICE_ID,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "tensors, buffers, bytes; zero-copy (arrived pinned), copied, "
          "fallbacks (not device-pinned); copy-time (ns); device-pinned; "
          "pool-size, pool-shared (the application's pool), "
          "pool-live-bytes, pool-peak-bytes, pool-waits, pool-starved (gave "
          "up waiting): these four count this element's own buffers",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Pinned host memory for tensors", "Filter/Converter",
      "Places tensors in a reused pool of pinned host memory, proposing it "
      "upstream so that readers fill it without a copy",
      "gst-uel developers");
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 uelsrc location=model.safetensors "
      "chunk-size=67108864 ! uelqueue ! uelpin pool-size=268435456 ! "
      "fakesink");
  element_class->change_state = gst_uel_pin_change_state;

  trans_class->transform_caps = gst_uel_pin_transform_caps;
  trans_class->propose_allocation = gst_uel_pin_propose_allocation;
  trans_class->decide_allocation = gst_uel_pin_decide_allocation;
  trans_class->prepare_output_buffer = gst_uel_pin_prepare_output_buffer;
  trans_class->transform = gst_uel_pin_transform;
  trans_class->sink_event = gst_uel_pin_sink_event;
  trans_class->start = gst_uel_pin_start;
  trans_class->stop = gst_uel_pin_stop;
  trans_class->passthrough_on_same_caps = FALSE;
}

static void
gst_uel_pin_init (GstUelPin * self)
{
  self->pool_size = DEFAULT_POOL_SIZE;
  self->cuda_device_id = DEFAULT_CUDA_DEVICE_ID;
  gst_base_transform_set_prefer_passthrough (GST_BASE_TRANSFORM (self),
      FALSE);
}
