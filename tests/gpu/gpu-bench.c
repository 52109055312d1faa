/* gst-uel: file → GPU through our pipelines, for tests/gpu/run.
 *
 *   gpu-bench MODEL REPS
 *
 * Each variant runs REPS times after the file has been read once into the
 * page cache (warm cache).  Prints, per variant, the median of: wall GB/s
 * from NULL → PLAYING to EOS (pool pinning included), and uelcudaupload's
 * own wall-gbps (first copy queued to last copy done) and copy gbps (time
 * the copies took on the GPU).  Variants named `*-shared-pool` run with a
 * 256 MiB pinned pool that the process pinned once before (a `uel.pinned-pool`
 * context): what loads after the first one cost an application that keeps
 * its pool.
 * SPDX-License-Identifier: MIT
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <gst/gst.h>
#include <gst-uel/uel.h>

static void
warm (const gchar * path)
{
  gint fd = open (path, O_RDONLY);
  gsize sz = 16 << 20;
  gchar *buf = g_malloc (sz);

  while (fd >= 0 && read (fd, buf, sz) > 0);
  if (fd >= 0)
    close (fd);
  g_free (buf);
}

static int
cmp (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  const gchar *variants[][2] = {
    {"defaults-32M-single",
        "uelsrc location=\"@\" chunk-size=33554432 ! uelcudaupload name=up "
          "single-allocation=true ! fakesink"},
    {"pin-whole-4threads",
        "uelsrc location=\"@\" io-threads=4 ! uelqueue "
          "max-size-bytes=1073741824 ! uelpin pool-size=1073741824 ! "
          "uelcudaupload name=up ! fakesink"},
    {"pin-32M-16threads",
        "uelsrc location=\"@\" io-threads=16 chunk-size=33554432 "
          "read-ahead=134217728 ! uelqueue max-size-bytes=67108864 ! "
          "uelpin pool-size=268435456 ! uelcudaupload name=up ! fakesink"},
    {"direct-32M-16threads",
        "uelsrc location=\"@\" io-threads=16 chunk-size=33554432 "
          "read-ahead=134217728 ! uelcudaupload name=up "
          "pool-size=268435456 ! fakesink"},
    {"direct-16M-16threads",
        "uelsrc location=\"@\" io-threads=16 chunk-size=16777216 "
          "read-ahead=134217728 ! uelcudaupload name=up "
          "pool-size=268435456 ! fakesink"},
    {"direct-32M-12threads-512M",
        "uelsrc location=\"@\" io-threads=12 chunk-size=33554432 "
          "read-ahead=201326592 ! uelcudaupload name=up "
          "pool-size=536870912 ! fakesink"},
    {"direct-32M-16threads-single",
        "uelsrc location=\"@\" io-threads=16 chunk-size=33554432 "
          "read-ahead=134217728 ! uelcudaupload name=up "
          "pool-size=268435456 single-allocation=true ! fakesink"},
    /* a pool small enough to stay partly in the CPU caches: on the
     * 2-core VM that builds this, `uelsrc io-threads=1 chunk-size=8M !
     * uelpin` ran at 13.4-15.0 GB/s where one thread's 8 MiB preads
     * cycling through a 256 MiB ring ran at 10.3 (hand-run pairs): is a
     * small pool faster on a GPU host too? */
    {"direct-8M-16threads-single-64M-pool",
        "uelsrc location=\"@\" io-threads=16 chunk-size=8388608 "
          "read-ahead=33554432 ! uelcudaupload name=up pool-size=67108864 "
          "single-allocation=true ! fakesink"},
    {"direct-32M-16threads-single-shared-pool",
        "uelsrc location=\"@\" io-threads=16 chunk-size=33554432 "
          "read-ahead=134217728 ! uelcudaupload name=up "
          "single-allocation=true ! fakesink"},
    {"pageable-mmap",
        "uelsrc location=\"@\" method=mmap ! uelcudaupload name=up ! "
          "fakesink"},
  };


  gint reps;
  guint64 total_bytes = 0;
  GstAllocator *pool;
  GstContext *pool_context;
  GError *pool_err = NULL;

  gst_init (&argc, &argv);
  if (argc != 3) {
    g_printerr ("usage: %s MODEL REPS\n", argv[0]);
    return 2;
  }
  reps = CLAMP (atoi (argv[2]), 1, 32);
  {
    g_autoptr (UelHeader) h = uel_header_open (argv[1], NULL);
    if (!h)
      return 1;
    total_bytes = uel_header_get_total_bytes (h);
  }
  pool = uel_pinned_allocator_new (256 << 20, -1);
  if (!uel_pinned_allocator_prepare (UEL_PINNED_ALLOCATOR (pool), &pool_err)) {
    g_printerr ("%s\n", pool_err->message);
    return 1;
  }
  pool_context = uel_pinned_pool_context_new (UEL_PINNED_ALLOCATOR (pool));

  for (guint v = 0; v < G_N_ELEMENTS (variants); v++) {
    double wall[32], upw[32], copy[32];
    g_auto (GStrv) parts = g_strsplit (variants[v][1], "@", 2);
    g_autofree gchar *launch = g_strjoin (argv[1], parts[0], parts[1], NULL);

    for (gint r = 0; r < reps; r++) {
      GError *err = NULL;
      GstElement *p;
      GstElement *up;
      GstMessage *msg;
      GstStructure *s = NULL;
      gint64 t0;

      warm (argv[1]);
      p = gst_parse_launch (launch, &err);
      if (!p) {
        g_printerr ("%s\n", err->message);
        return 1;
      }
      if (g_str_has_suffix (variants[v][0], "-shared-pool"))
        gst_element_set_context (p, pool_context);
      up = gst_bin_get_by_name (GST_BIN (p), "up");
      t0 = g_get_monotonic_time ();
      gst_element_set_state (p, GST_STATE_PLAYING);
      msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p),
          GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
      wall[r] = total_bytes / ((g_get_monotonic_time () - t0) * 1e3);
      if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
        gst_message_parse_error (msg, &err, NULL);
        g_printerr ("%s: %s\n", variants[v][0], err->message);
        return 1;
      }
      gst_message_unref (msg);
      g_object_get (up, "stats", &s, NULL);
      gst_structure_get_double (s, "wall-gbps", &upw[r]);
      gst_structure_get_double (s, "gbps", &copy[r]);
      if (r == reps - 1) {
        gchar *str = gst_structure_to_string (s);
        g_print ("# %s: %s\n", variants[v][0], str);
        g_free (str);
      }
      gst_structure_free (s);
      gst_element_set_state (p, GST_STATE_NULL);
      gst_object_unref (up);
      gst_object_unref (p);
    }
    qsort (wall, reps, sizeof (double), cmp);
    qsort (upw, reps, sizeof (double), cmp);
    qsort (copy, reps, sizeof (double), cmp);
    g_print ("ours %-20s wall %.2f GB/s (min %.2f max %.2f)  upload-wall "
        "%.2f GB/s  copy %.2f GB/s\n", variants[v][0], wall[reps / 2],
        wall[0], wall[reps - 1], upw[reps / 2], copy[reps / 2]);
  }
  gst_context_unref (pool_context);
  gst_object_unref (pool);
  return 0;
}
