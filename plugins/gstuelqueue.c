/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-uelqueue
 * @title: uelqueue
 *
 * A bounded prefetch stage for tensors: it holds up to
 * #GstUelQueue:max-size-bytes bytes (and, when set,
 * #GstUelQueue:max-size-buffers buffers) and pushes them downstream from its
 * own streaming thread, so that reading the next tensors overlaps with
 * whatever happens to the previous ones downstream.
 * When the queue is full, the upstream thread waits; that wait is the
 * pipeline's backpressure, and it is what keeps the memory a pipeline holds
 * bounded.
 *
 * Tensors have no duration, so unlike `queue` there is no time limit, and
 * sizes are 64-bit.  A single tensor larger than the byte limit is let in
 * when the queue holds no other buffer: a limit slows a pipeline down, it
 * never deadlocks it.  The level therefore never exceeds the limit, except
 * while one such oversized tensor is the only buffer queued;
 * #GstUelQueue:max-level-bytes records the highest level reached.
 *
 * The byte levels and limit count the memory the buffers hold, as
 * uel_buffer_get_footprint() measures it: each memory's allocation (a
 * one-byte tensor in a page of its own counts the page) plus a fixed
 * overhead per memory and per buffer (about 700 bytes for a small
 * tensor).  Counting the payload alone let a file of a million one-byte
 * tensors hold gigabytes in a queue that counted one megabyte.
 *
 * The levels count the buffers waiting in the queue: not the one being
 * pushed downstream, and neither events nor queries.  They are not notified
 * (a notification per tensor would cost more than it tells): read them, or
 * #GstUelQueue:stats, when needed.
 *
 * Serialized events and queries travel in order with the buffers.  That
 * includes the ALLOCATION query, so a source upstream of the queue still
 * learns the allocator proposed downstream of it (`uelsrc` reads straight
 * into the pinned memory that `uelpin` proposes).
 *
 * The signals are those of `queue`: #GstUelQueue::overrun when upstream is
 * about to wait on a full queue, #GstUelQueue::underrun when the streaming
 * thread is about to wait on an empty one, #GstUelQueue::running and
 * #GstUelQueue::pushing when data flows again.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors ! uelqueue max-size-bytes=268435456 ! fakesink
 * ]| Reads model.safetensors at most 256 MiB ahead of the sink.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst-uel/uel.h>

#include "gstuelelements.h"
#include "gstuelqueue.h"

GST_DEBUG_CATEGORY_STATIC (gst_uel_queue_debug);
#define GST_CAT_DEFAULT gst_uel_queue_debug

#define DEFAULT_MAX_SIZE_BYTES (G_GUINT64_CONSTANT (1) << 30)
#define DEFAULT_MAX_SIZE_BUFFERS 0

enum
{
  PROP_0,
  PROP_MAX_SIZE_BYTES,
  PROP_MAX_SIZE_BUFFERS,
  PROP_CURRENT_LEVEL_BYTES,
  PROP_CURRENT_LEVEL_BUFFERS,
  PROP_MAX_LEVEL_BYTES,
  PROP_MAX_LEVEL_BUFFERS,
  PROP_STATS,
};

enum
{
  SIGNAL_UNDERRUN,
  SIGNAL_RUNNING,
  SIGNAL_OVERRUN,
  SIGNAL_PUSHING,
  LAST_SIGNAL
};

static guint signals[LAST_SIGNAL];

struct _GstUelQueue
{
  GstElement parent;

  GstPad *sinkpad;
  GstPad *srcpad;

  /* Everything below is under lock.  The upstream thread waits on item_del
   * while the queue is full, the streaming thread on item_add while it is
   * empty, and the sender of a serialized query on query_done; every change
   * of srcresult wakes all three. */
  GMutex lock;
  GCond item_add;
  GCond item_del;
  GCond query_done;

  /* GstBuffer, GstEvent (owned) or GstQuery (owned by the thread that
   * waits for its answer) */
  GQueue items;

  guint64 max_bytes;
  guint max_buffers;

  guint64 cur_bytes;
  guint cur_buffers;
  guint64 peak_bytes;
  guint peak_buffers;
  guint64 in_buffers;
  guint64 in_bytes;
  guint64 out_buffers;
  guint64 out_bytes;
  guint64 n_overruns;
  guint64 n_underruns;

  /* the result of the last push downstream, FLUSHING while flushing or
   * inactive; anything but OK stops the streaming thread and is returned
   * to upstream */
  GstFlowReturn srcresult;
  /* upstream has learned srcresult from a chain call, and so has posted
   * any error itself */
  gboolean srcresult_returned;
  /* EOS is queued or pushed: upstream sends nothing more */
  gboolean eos;

  /* the serialized query the streaming thread is answering, and the last
   * one it answered */
  GstQuery *query_in_flight;
  GstQuery *query_answered;
  gboolean query_result;
};

/* any caps feature: pinned and CUDA tensors are queued like host ones */
static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "(ANY)"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "(ANY)"));

#define _do_init \
  GST_DEBUG_CATEGORY_INIT (gst_uel_queue_debug, "uelqueue", 0, \
      "bounded tensor prefetch queue");
#define gst_uel_queue_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstUelQueue, gst_uel_queue, GST_TYPE_ELEMENT,
    _do_init);
GST_ELEMENT_REGISTER_DEFINE (uelqueue, "uelqueue", GST_RANK_NONE,
    GST_TYPE_UEL_QUEUE);

static void gst_uel_queue_loop (GstPad * pad);

/* ------------------------------------------------------------------ */
/* the queue, under lock */

/* Whether a buffer of @size bytes must wait.  A buffer always enters a
 * queue that holds no buffer, whatever its size: a tensor larger than the
 * limit would otherwise wait forever. */
static gboolean
is_full_locked (GstUelQueue * self, guint64 size)
{
  if (self->cur_buffers == 0)
    return FALSE;
  if (self->max_buffers > 0 && self->cur_buffers >= self->max_buffers)
    return TRUE;
  if (self->max_bytes > 0 && (self->cur_bytes > self->max_bytes
          || size > self->max_bytes - self->cur_bytes))
    return TRUE;
  return FALSE;
}

static void
wake_all_locked (GstUelQueue * self)
{
  g_cond_broadcast (&self->item_add);
  g_cond_broadcast (&self->item_del);
  g_cond_broadcast (&self->query_done);
}

static gboolean
is_fatal (GstFlowReturn ret)
{
  return ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS;
}

/* Drops what is queued.  Queries are not ours to free: their senders see
 * srcresult and take them back.  Unless @full, sticky events other than
 * SEGMENT and EOS stay queued, so that caps and headers not yet pushed
 * still reach downstream when the stream resumes after a flush. */
static void
flush_locked (GstUelQueue * self, gboolean full)
{
  GQueue keep = G_QUEUE_INIT;
  GstMiniObject *item;

  while ((item = g_queue_pop_head (&self->items))) {
    if (GST_IS_QUERY (item))
      continue;
    if (!full && GST_IS_EVENT (item) && GST_EVENT_IS_STICKY (item)
        && GST_EVENT_TYPE (item) != GST_EVENT_SEGMENT
        && GST_EVENT_TYPE (item) != GST_EVENT_EOS) {
      g_queue_push_tail (&keep, item);
      continue;
    }
    gst_mini_object_unref (item);
  }
  self->items = keep;
  self->cur_bytes = 0;
  self->cur_buffers = 0;
  wake_all_locked (self);
}

static void
start_task_locked (GstUelQueue * self)
{
  if (gst_pad_is_active (self->srcpad))
    gst_pad_start_task (self->srcpad, (GstTaskFunction) gst_uel_queue_loop,
        self->srcpad, NULL);
  else
    GST_DEBUG_OBJECT (self, "not starting the task: src pad inactive");
}

/* ------------------------------------------------------------------ */
/* upstream side */

static GstFlowReturn
gst_uel_queue_chain (GstPad * pad, GstObject * parent, GstBuffer * buffer)
{
  GstUelQueue *self = GST_UEL_QUEUE (parent);
  guint64 payload = gst_buffer_get_size (buffer);
  guint64 size = uel_buffer_get_footprint (buffer);
  gboolean waited = FALSE;
  GstFlowReturn ret;

  g_mutex_lock (&self->lock);
  if (self->eos)
    goto eos;

  while (self->srcresult == GST_FLOW_OK && is_full_locked (self, size)) {
    if (!waited) {
      waited = TRUE;
      self->n_overruns++;
      GST_LOG_OBJECT (self, "full (%u buffers, %" G_GUINT64_FORMAT
          " bytes): waiting to queue %" G_GUINT64_FORMAT " bytes",
          self->cur_buffers, self->cur_bytes, size);
      g_mutex_unlock (&self->lock);
      g_signal_emit (self, signals[SIGNAL_OVERRUN], 0);
      g_mutex_lock (&self->lock);
      continue;
    }
    g_cond_wait (&self->item_del, &self->lock);
  }
  if (self->srcresult != GST_FLOW_OK)
    goto refused;

  g_queue_push_tail (&self->items, buffer);
  self->cur_bytes += size;
  self->cur_buffers++;
  self->in_buffers++;
  self->in_bytes += payload;
  self->peak_bytes = MAX (self->peak_bytes, self->cur_bytes);
  self->peak_buffers = MAX (self->peak_buffers, self->cur_buffers);
  g_cond_signal (&self->item_add);
  g_mutex_unlock (&self->lock);

  if (waited)
    g_signal_emit (self, signals[SIGNAL_RUNNING], 0);
  return GST_FLOW_OK;

refused:
  ret = self->srcresult;
  self->srcresult_returned = TRUE;
  g_mutex_unlock (&self->lock);
  GST_DEBUG_OBJECT (self, "refusing buffer: %s", gst_flow_get_name (ret));
  gst_buffer_unref (buffer);
  return ret;

eos:
  g_mutex_unlock (&self->lock);
  GST_DEBUG_OBJECT (self, "refusing buffer after EOS");
  gst_buffer_unref (buffer);
  return GST_FLOW_EOS;
}

static gboolean
queue_event (GstUelQueue * self, GstEvent * event)
{
  GstEventType type = GST_EVENT_TYPE (event);
  GstFlowReturn result;
  gboolean restart = FALSE;

  g_mutex_lock (&self->lock);
  /* a new stream or segment after EOS: data flows again, and the streaming
   * thread, if it stopped at the EOS, starts again */
  if ((type == GST_EVENT_STREAM_START || type == GST_EVENT_SEGMENT)
      && self->eos) {
    self->eos = FALSE;
    if (self->srcresult == GST_FLOW_EOS) {
      self->srcresult = GST_FLOW_OK;
      self->srcresult_returned = FALSE;
      restart = TRUE;
    }
  }

  if (self->srcresult != GST_FLOW_OK) {
    result = self->srcresult;
    if (type == GST_EVENT_EOS) {
      /* upstream stops here, so if it never saw the error nobody will
       * report it but us */
      gboolean post = is_fatal (result) && !self->srcresult_returned;

      self->srcresult_returned = TRUE;
      g_mutex_unlock (&self->lock);
      if (post)
        GST_ELEMENT_FLOW_ERROR (self, result);
      gst_event_unref (event);
      return FALSE;
    }
    if (!GST_EVENT_IS_STICKY (event)) {
      g_mutex_unlock (&self->lock);
      GST_DEBUG_OBJECT (self, "dropping %s event: %s",
          GST_EVENT_TYPE_NAME (event), gst_flow_get_name (result));
      gst_event_unref (event);
      return FALSE;
    }
    /* sticky events wait in the queue for the stream to resume; the data
     * that follows them will report the error */
  }

  if (type == GST_EVENT_EOS)
    self->eos = TRUE;
  g_queue_push_tail (&self->items, event);
  g_cond_signal (&self->item_add);
  if (restart)
    start_task_locked (self);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static gboolean
gst_uel_queue_sink_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstUelQueue *self = GST_UEL_QUEUE (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_START:
      /* refuse data before anything drains: an upstream thread waiting on
       * the full queue must get FLUSHING, not the room that the flush
       * makes downstream (it would push again after FLUSH_STOP, with no
       * segment) */
      g_mutex_lock (&self->lock);
      self->srcresult = GST_FLOW_FLUSHING;
      wake_all_locked (self);
      g_mutex_unlock (&self->lock);
      /* then downstream: that releases a push the streaming thread may be
       * blocked in */
      gst_pad_push_event (self->srcpad, event);
      /* returns once the streaming thread has left its loop */
      gst_pad_pause_task (self->srcpad);
      GST_DEBUG_OBJECT (self, "flushing");
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      gst_pad_push_event (self->srcpad, event);
      g_mutex_lock (&self->lock);
      flush_locked (self, FALSE);
      self->srcresult = GST_FLOW_OK;
      self->srcresult_returned = FALSE;
      self->eos = FALSE;
      start_task_locked (self);
      g_mutex_unlock (&self->lock);
      GST_DEBUG_OBJECT (self, "flush stopped");
      return TRUE;
    default:
      if (GST_EVENT_IS_SERIALIZED (event))
        return queue_event (self, event);
      return gst_pad_push_event (self->srcpad, event);
  }
}

/* Serialized queries (ALLOCATION, DRAIN, ...) must see downstream as the
 * buffers queued before them will: they are queued, answered by the
 * streaming thread, and waited for here. */
static gboolean
gst_uel_queue_sink_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  GstUelQueue *self = GST_UEL_QUEUE (parent);
  gboolean res;

  if (!GST_QUERY_IS_SERIALIZED (query))
    return gst_pad_query_default (pad, parent, query);

  g_mutex_lock (&self->lock);
  if (self->srcresult != GST_FLOW_OK) {
    GST_DEBUG_OBJECT (self, "refusing %s query: %s",
        GST_QUERY_TYPE_NAME (query), gst_flow_get_name (self->srcresult));
    g_mutex_unlock (&self->lock);
    return FALSE;
  }
  g_queue_push_tail (&self->items, query);
  g_cond_signal (&self->item_add);

  for (;;) {
    if (self->query_answered == query) {
      self->query_answered = NULL;
      res = self->query_result;
      break;
    }
    /* the streaming thread may still be using the query: wait for it to
     * finish before the query goes back to its owner */
    if (self->srcresult != GST_FLOW_OK && self->query_in_flight != query) {
      g_queue_remove (&self->items, query);
      res = FALSE;
      break;
    }
    g_cond_wait (&self->query_done, &self->lock);
  }
  g_mutex_unlock (&self->lock);

  GST_LOG_OBJECT (self, "%s query answered: %d", GST_QUERY_TYPE_NAME (query),
      res);
  return res;
}

static gboolean
gst_uel_queue_sink_activate_mode (GstPad * pad, GstObject * parent,
    GstPadMode mode, gboolean active)
{
  GstUelQueue *self = GST_UEL_QUEUE (parent);

  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;

  g_mutex_lock (&self->lock);
  if (active) {
    self->srcresult = GST_FLOW_OK;
    self->srcresult_returned = FALSE;
    self->eos = FALSE;
  } else {
    self->srcresult = GST_FLOW_FLUSHING;
    flush_locked (self, TRUE);
  }
  g_mutex_unlock (&self->lock);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* downstream side */

static void
gst_uel_queue_loop (GstPad * pad)
{
  GstUelQueue *self = GST_UEL_QUEUE (GST_PAD_PARENT (pad));
  GstMiniObject *item;
  GstFlowReturn ret = GST_FLOW_OK;
  gboolean starved = FALSE;
  gboolean pushed_eos = FALSE;
  GstFlowReturn reason;
  gboolean eos;

  g_mutex_lock (&self->lock);
  while (self->srcresult == GST_FLOW_OK && g_queue_is_empty (&self->items)) {
    if (!starved) {
      starved = TRUE;
      self->n_underruns++;
      g_mutex_unlock (&self->lock);
      g_signal_emit (self, signals[SIGNAL_UNDERRUN], 0);
      g_mutex_lock (&self->lock);
      continue;
    }
    g_cond_wait (&self->item_add, &self->lock);
  }
  if (self->srcresult != GST_FLOW_OK)
    goto paused;

  item = g_queue_pop_head (&self->items);
  if (GST_IS_BUFFER (item)) {
    /* a queued buffer is ours alone: its memories are what they were */
    self->cur_bytes -= uel_buffer_get_footprint (GST_BUFFER_CAST (item));
    self->cur_buffers--;
    self->out_buffers++;
    self->out_bytes += gst_buffer_get_size (GST_BUFFER_CAST (item));
    g_cond_signal (&self->item_del);
  } else if (GST_IS_QUERY (item)) {
    self->query_in_flight = GST_QUERY_CAST (item);
  }
  g_mutex_unlock (&self->lock);

  if (starved) {
    g_signal_emit (self, signals[SIGNAL_RUNNING], 0);
    g_signal_emit (self, signals[SIGNAL_PUSHING], 0);
  }

  if (GST_IS_BUFFER (item)) {
    ret = gst_pad_push (self->srcpad, GST_BUFFER_CAST (item));
  } else if (GST_IS_EVENT (item)) {
    pushed_eos = GST_EVENT_TYPE (item) == GST_EVENT_EOS;
    gst_pad_push_event (self->srcpad, GST_EVENT_CAST (item));
  } else {
    GstQuery *query = GST_QUERY_CAST (item);
    gboolean res = gst_pad_peer_query (self->srcpad, query);

    g_mutex_lock (&self->lock);
    self->query_in_flight = NULL;
    self->query_answered = query;
    self->query_result = res;
    g_cond_broadcast (&self->query_done);
    g_mutex_unlock (&self->lock);
  }

  g_mutex_lock (&self->lock);
  /* Nothing follows EOS until a new stream starts (only STREAM_START gets
   * past a pad at EOS): stop, unless it already has. */
  if (pushed_eos && g_queue_is_empty (&self->items))
    ret = GST_FLOW_EOS;
  /* a flush or deactivation during the push has the last word */
  if (self->srcresult == GST_FLOW_OK)
    self->srcresult = ret;
  if (self->srcresult != GST_FLOW_OK)
    goto paused;
  g_mutex_unlock (&self->lock);
  return;

paused:
  reason = self->srcresult;
  eos = self->eos;
  GST_DEBUG_OBJECT (self, "pausing the task: %s", gst_flow_get_name (reason));
  gst_pad_pause_task (self->srcpad);
  if (reason == GST_FLOW_FLUSHING)
    flush_locked (self, FALSE);
  wake_all_locked (self);
  /* with EOS queued, upstream pushes nothing more and will not learn of the
   * error: report it ourselves */
  eos = eos && reason != GST_FLOW_EOS && is_fatal (reason);
  if (eos)
    self->srcresult_returned = TRUE;
  g_mutex_unlock (&self->lock);

  if (eos) {
    GST_ELEMENT_FLOW_ERROR (self, reason);
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  }
}

static gboolean
gst_uel_queue_src_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstUelQueue *self = GST_UEL_QUEUE (parent);

  /* relinked after NOT_LINKED: try again */
  if (GST_EVENT_TYPE (event) == GST_EVENT_RECONFIGURE) {
    g_mutex_lock (&self->lock);
    if (self->srcresult == GST_FLOW_NOT_LINKED) {
      GST_DEBUG_OBJECT (self, "reconfigured: restarting after not-linked");
      self->srcresult = GST_FLOW_OK;
      self->srcresult_returned = FALSE;
      start_task_locked (self);
    }
    g_mutex_unlock (&self->lock);
  }
  return gst_pad_event_default (pad, parent, event);
}

static gboolean
gst_uel_queue_src_activate_mode (GstPad * pad, GstObject * parent,
    GstPadMode mode, gboolean active)
{
  GstUelQueue *self = GST_UEL_QUEUE (parent);
  gboolean ret;

  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;

  g_mutex_lock (&self->lock);
  if (active) {
    self->srcresult = GST_FLOW_OK;
    self->srcresult_returned = FALSE;
    self->eos = FALSE;
    ret = gst_pad_start_task (pad, (GstTaskFunction) gst_uel_queue_loop, pad,
        NULL);
    g_mutex_unlock (&self->lock);
  } else {
    self->srcresult = GST_FLOW_FLUSHING;
    wake_all_locked (self);
    g_mutex_unlock (&self->lock);
    /* joins the streaming thread, which the wake-up above releases */
    ret = gst_pad_stop_task (pad);
  }
  return ret;
}

/* ------------------------------------------------------------------ */
/* GObject */

static GstStateChangeReturn
gst_uel_queue_change_state (GstElement * element, GstStateChange transition)
{
  GstUelQueue *self = GST_UEL_QUEUE (element);

  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) {
    g_mutex_lock (&self->lock);
    self->peak_bytes = 0;
    self->peak_buffers = 0;
    self->in_buffers = self->in_bytes = 0;
    self->out_buffers = self->out_bytes = 0;
    self->n_overruns = self->n_underruns = 0;
    g_mutex_unlock (&self->lock);
  }
  return GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
}

static GstStructure *
stats_new_locked (GstUelQueue * self)
{
  return gst_structure_new ("uelqueue-stats",
      "current-level-bytes", G_TYPE_UINT64, self->cur_bytes,
      "current-level-buffers", G_TYPE_UINT, self->cur_buffers,
      "max-level-bytes", G_TYPE_UINT64, self->peak_bytes,
      "max-level-buffers", G_TYPE_UINT, self->peak_buffers,
      "in-buffers", G_TYPE_UINT64, self->in_buffers,
      "in-bytes", G_TYPE_UINT64, self->in_bytes,
      "out-buffers", G_TYPE_UINT64, self->out_buffers,
      "out-bytes", G_TYPE_UINT64, self->out_bytes,
      "overruns", G_TYPE_UINT64, self->n_overruns,
      "underruns", G_TYPE_UINT64, self->n_underruns, NULL);
}

static void
gst_uel_queue_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstUelQueue *self = GST_UEL_QUEUE (object);

  g_mutex_lock (&self->lock);
  switch (prop_id) {
    case PROP_MAX_SIZE_BYTES:
      self->max_bytes = g_value_get_uint64 (value);
      break;
    case PROP_MAX_SIZE_BUFFERS:
      self->max_buffers = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  /* a higher limit may let a waiting upstream in */
  g_cond_broadcast (&self->item_del);
  g_mutex_unlock (&self->lock);
}

static void
gst_uel_queue_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstUelQueue *self = GST_UEL_QUEUE (object);

  g_mutex_lock (&self->lock);
  switch (prop_id) {
    case PROP_MAX_SIZE_BYTES:
      g_value_set_uint64 (value, self->max_bytes);
      break;
    case PROP_MAX_SIZE_BUFFERS:
      g_value_set_uint (value, self->max_buffers);
      break;
    case PROP_CURRENT_LEVEL_BYTES:
      g_value_set_uint64 (value, self->cur_bytes);
      break;
    case PROP_CURRENT_LEVEL_BUFFERS:
      g_value_set_uint (value, self->cur_buffers);
      break;
    case PROP_MAX_LEVEL_BYTES:
      g_value_set_uint64 (value, self->peak_bytes);
      break;
    case PROP_MAX_LEVEL_BUFFERS:
      g_value_set_uint (value, self->peak_buffers);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, stats_new_locked (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  g_mutex_unlock (&self->lock);
}

static void
gst_uel_queue_finalize (GObject * object)
{
  GstUelQueue *self = GST_UEL_QUEUE (object);

  flush_locked (self, TRUE);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->item_add);
  g_cond_clear (&self->item_del);
  g_cond_clear (&self->query_done);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_uel_queue_class_init (GstUelQueueClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  gobject_class->set_property = gst_uel_queue_set_property;
  gobject_class->get_property = gst_uel_queue_get_property;
  gobject_class->finalize = gst_uel_queue_finalize;

  g_object_class_install_property (gobject_class, PROP_MAX_SIZE_BYTES,
      g_param_spec_uint64 ("max-size-bytes", "Max. size (bytes)",
          "Most bytes of memory the queued buffers hold, overheads "
          "included (0 = no limit); a single buffer larger than this still "
          "enters an empty queue",
          0, G_MAXUINT64, DEFAULT_MAX_SIZE_BYTES, rw));
  g_object_class_install_property (gobject_class, PROP_MAX_SIZE_BUFFERS,
      g_param_spec_uint ("max-size-buffers", "Max. size (buffers)",
          "Most buffers held in the queue (0 = no limit)",
          0, G_MAXUINT, DEFAULT_MAX_SIZE_BUFFERS, rw));
  g_object_class_install_property (gobject_class, PROP_CURRENT_LEVEL_BYTES,
      g_param_spec_uint64 ("current-level-bytes", "Current level (bytes)",
          "Bytes of memory the queued buffers hold now: their allocations "
          "and a fixed overhead per buffer and memory (events and queries "
          "count 0)",
          0, G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_CURRENT_LEVEL_BUFFERS,
      g_param_spec_uint ("current-level-buffers", "Current level (buffers)",
          "Buffers in the queue now", 0, G_MAXUINT, 0, ro));
  g_object_class_install_property (gobject_class, PROP_MAX_LEVEL_BYTES,
      g_param_spec_uint64 ("max-level-bytes", "Peak level (bytes)",
          "Highest current-level-bytes since the element last went from "
          "READY to PAUSED (0 = nothing queued yet)", 0, G_MAXUINT64, 0, ro));
  g_object_class_install_property (gobject_class, PROP_MAX_LEVEL_BUFFERS,
      g_param_spec_uint ("max-level-buffers", "Peak level (buffers)",
          "Highest current-level-buffers since the element last went from "
          "READY to PAUSED (0 = nothing queued yet)", 0, G_MAXUINT, 0, ro));
  /**
   * GstUelQueue:stats:
   *
   * A `uelqueue-stats` structure, counted since the element last went from
   * READY to PAUSED: `current-level-bytes` (guint64),
   * `current-level-buffers` (guint), `max-level-bytes` (guint64),
   * `max-level-buffers` (guint), `in-buffers`, `in-bytes`, `out-buffers`,
   * `out-bytes` (guint64: what entered and left the queue; these bytes are
   * the tensors' payload, the levels their memory), `overruns` and
   * `underruns` (guint64: how often upstream waited on a full queue and the
   * streaming thread on an empty one).
   */
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Levels, peaks, bytes and buffers in and out, overruns and "
          "underruns since the last READY to PAUSED change",
          GST_TYPE_STRUCTURE, ro));

  /**
   * GstUelQueue::underrun:
   * @queue: the queue
   *
   * The queue is empty: the streaming thread is about to wait for data.
   * Emitted from the streaming thread.
   */
  signals[SIGNAL_UNDERRUN] = g_signal_new ("underrun",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_FIRST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 0);
  /**
   * GstUelQueue::running:
   * @queue: the queue
   *
   * Data flows again: upstream queued a buffer after waiting on a full
   * queue, or the streaming thread found data after an underrun.
   */
  signals[SIGNAL_RUNNING] = g_signal_new ("running",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_FIRST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 0);
  /**
   * GstUelQueue::overrun:
   * @queue: the queue
   *
   * The queue is full: upstream is about to wait until a buffer leaves it.
   * Emitted from the upstream streaming thread, once per wait.
   */
  signals[SIGNAL_OVERRUN] = g_signal_new ("overrun",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_FIRST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 0);
  /**
   * GstUelQueue::pushing:
   * @queue: the queue
   *
   * The streaming thread pushes downstream again after an underrun.
   */
  signals[SIGNAL_PUSHING] = g_signal_new ("pushing",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_FIRST, 0, NULL, NULL, NULL,
      G_TYPE_NONE, 0);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Tensor queue", "Generic",
      "Bounded prefetch of tensors in bytes and buffers, pushed from its "
      "own streaming thread", "gst-uel developers");
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 uelsrc location=model.safetensors ! uelqueue "
      "max-size-bytes=268435456 ! fakesink");
  element_class->change_state = gst_uel_queue_change_state;
}

static void
gst_uel_queue_init (GstUelQueue * self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, gst_uel_queue_chain);
  gst_pad_set_event_function (self->sinkpad, gst_uel_queue_sink_event);
  gst_pad_set_query_function (self->sinkpad, gst_uel_queue_sink_query);
  gst_pad_set_activatemode_function (self->sinkpad,
      gst_uel_queue_sink_activate_mode);
  /* caps queries see through the queue; ALLOCATION is serialized and so
   * queued, never proxied past the buffers ahead of it */
  GST_PAD_SET_PROXY_CAPS (self->sinkpad);
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_event_function (self->srcpad, gst_uel_queue_src_event);
  gst_pad_set_activatemode_function (self->srcpad,
      gst_uel_queue_src_activate_mode);
  GST_PAD_SET_PROXY_CAPS (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  g_mutex_init (&self->lock);
  g_cond_init (&self->item_add);
  g_cond_init (&self->item_del);
  g_cond_init (&self->query_done);
  g_queue_init (&self->items);
  self->max_bytes = DEFAULT_MAX_SIZE_BYTES;
  self->max_buffers = DEFAULT_MAX_SIZE_BUFFERS;
  self->srcresult = GST_FLOW_FLUSHING;
}
