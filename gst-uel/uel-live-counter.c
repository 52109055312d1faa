/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * How many of a stream's tensors are alive: a token in each buffer's qdata
 * counts it down when the buffer's last reference goes.
 */
#include "config.h"

#include "uel-live-counter-private.h"

struct _UelLiveCounter
{
  gint ref_count;
  GMutex lock;
  guint64 tensors;
  guint64 bytes;
  guint64 peak_tensors;
  guint64 peak_bytes;
};

typedef struct
{
  UelLiveCounter *counter;
  guint64 bytes;
} LiveToken;

static GQuark live_quark;

UelLiveCounter *
uel_live_counter_new (void)
{
  static gsize once = 0;
  UelLiveCounter *c = g_new0 (UelLiveCounter, 1);

  if (g_once_init_enter (&once)) {
    live_quark = g_quark_from_static_string ("uel-tensor-stream-live");
    g_once_init_leave (&once, 1);
  }
  c->ref_count = 1;
  g_mutex_init (&c->lock);
  return c;
}

static UelLiveCounter *
live_counter_ref (UelLiveCounter * c)
{
  g_atomic_int_inc (&c->ref_count);
  return c;
}

void
uel_live_counter_unref (UelLiveCounter * c)
{
  if (g_atomic_int_dec_and_test (&c->ref_count)) {
    g_mutex_clear (&c->lock);
    g_free (c);
  }
}

static void
live_token_free (gpointer data)
{
  LiveToken *t = data;

  g_mutex_lock (&t->counter->lock);
  t->counter->tensors--;
  t->counter->bytes -= t->bytes;
  g_mutex_unlock (&t->counter->lock);
  uel_live_counter_unref (t->counter);
  g_free (t);
}

void
uel_live_counter_track (UelLiveCounter * c, GstBuffer * buf)
{
  LiveToken *t = g_new (LiveToken, 1);

  t->counter = live_counter_ref (c);
  t->bytes = gst_buffer_get_size (buf);
  g_mutex_lock (&c->lock);
  c->tensors++;
  c->bytes += t->bytes;
  c->peak_tensors = MAX (c->peak_tensors, c->tensors);
  c->peak_bytes = MAX (c->peak_bytes, c->bytes);
  g_mutex_unlock (&c->lock);
  gst_mini_object_set_qdata (GST_MINI_OBJECT_CAST (buf), live_quark, t,
      live_token_free);
}

void
uel_live_counter_get (UelLiveCounter * c, guint64 * tensors, guint64 * bytes,
    guint64 * peak_tensors, guint64 * peak_bytes)
{
  g_mutex_lock (&c->lock);
  *tensors = c->tensors;
  *bytes = c->bytes;
  *peak_tensors = c->peak_tensors;
  *peak_bytes = c->peak_bytes;
  g_mutex_unlock (&c->lock);
}
