/* gst-uel example: load models one after another, pinning memory once.
 *
 *   reload model-a.safetensors model-b.safetensors ...
 *
 * Pinning a pool costs 0.2–1 s per GiB; a process that loads one model
 * after another (a server swapping models, a benchmark) need not pay it
 * each time.  It makes one pinned pool, wraps it in a "uel.pinned-pool"
 * context and sets that on every pipeline: their uelpin (and uelcudaupload)
 * elements draw from it instead of pinning their own.  The pool is pinned
 * by the first load and freed when the last reference goes.
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>
#include <gst-uel/uel.h>

static gboolean
load (const gchar * path, GstContext * pool_context)
{
  GError *err = NULL;
  GstElement *pipeline, *src, *pin;
  GstMessage *msg;
  GstStructure *stats = NULL;
  gboolean ok, shared = FALSE;
  guint64 bytes = 0;
  gint64 t0;

  pipeline = gst_parse_launch ("uelsrc name=src ! uelqueue ! uelpin name=pin "
      "! uelcudaupload ! fakesink", &err);
  if (!pipeline) {
    g_printerr ("%s\n", err->message);
    g_error_free (err);
    return FALSE;
  }
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  pin = gst_bin_get_by_name (GST_BIN (pipeline), "pin");
  g_object_set (src, "location", path, NULL);
  /* a bin passes the context to every element inside it */
  gst_element_set_context (pipeline, pool_context);

  t0 = g_get_monotonic_time ();
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipeline),
      GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  ok = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
  if (!ok) {
    gst_message_parse_error (msg, &err, NULL);
    g_printerr ("%s: %s\n", path, err->message);
    g_error_free (err);
  } else {
    g_object_get (pin, "stats", &stats, NULL);
    gst_structure_get_uint64 (stats, "bytes", &bytes);
    gst_structure_get_boolean (stats, "pool-shared", &shared);
    g_print ("%s: %" G_GUINT64_FORMAT " bytes in %.1f ms, %s pool\n", path,
        bytes, (g_get_monotonic_time () - t0) / 1e3,
        shared ? "the shared" : "its own");
    gst_structure_free (stats);
  }
  gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (pin);
  gst_object_unref (pipeline);
  return ok && shared;
}

int
main (int argc, char **argv)
{
  GstAllocator *pool;
  GstContext *pool_context;
  gint ret = 0;

  gst_init (&argc, &argv);
  uel_init ();
  if (argc < 2) {
    g_printerr ("usage: %s FILE.safetensors...\n", argv[0]);
    return 2;
  }

  /* 256 MiB, on the current CUDA device (plain memory without one) */
  pool = uel_pinned_allocator_new (256 << 20, -1);
  pool_context = uel_pinned_pool_context_new (UEL_PINNED_ALLOCATOR (pool));
  for (gint i = 1; i < argc && ret == 0; i++)
    if (!load (argv[i], pool_context))
      ret = 1;
  g_print ("the pool is %s\n",
      uel_pinned_allocator_is_device_pinned (UEL_PINNED_ALLOCATOR (pool)) ?
      "pinned by the CUDA driver" : "plain host memory (no CUDA device)");
  gst_context_unref (pool_context);
  gst_object_unref (pool);
  return ret;
}
