/* gst-uel: hostile files, injected read faults and allocation failures,
 * through uelsrc, UelLoader and uelpin; a full disk under UelWriter
 * SPDX-License-Identifier: MIT
 *
 * Faults come from the LD_PRELOAD shim uel-fault-shim.c (meson test sets
 * LD_PRELOAD): failed, short and interrupted reads, a file that ends
 * early, O_DIRECT refused.  Nothing in the library knows about it.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-utils.h"
#include "uel-fault-shim.h"

#define KiB (G_GUINT64_CONSTANT (1) << 10)
#define MiB (G_GUINT64_CONSTANT (1) << 20)
#define GiB (G_GUINT64_CONSTANT (1) << 30)

/* a pipeline that has neither ended nor failed by then hangs */
#define HANG_TIMEOUT (120 * GST_SECOND)

static UelFaultConfigureFunc fault_configure;
static UelFaultGetCountersFunc fault_get_counters;

static void
inject (UelFaultMode mode, const gchar * match, guint64 offset, guint64 end,
    glong max_faults, gsize short_max)
{
  UelFaultConfig c = { mode, match, offset, end, max_faults, short_max };

  fault_configure (&c);
}

/* stops injecting and returns what was injected */
static UelFaultCounters
inject_none (void)
{
  UelFaultCounters c;

  fault_get_counters (&c);
  fault_configure (NULL);
  return c;
}

static void
assert_contains_impl (const gchar * haystack, const gchar * needle,
    const gchar * file, gint line, const gchar * func)
{
  g_autofree gchar *msg = NULL;

  if (haystack && strstr (haystack, needle))
    return;
  msg = g_strdup_printf ("\"%s\" does not contain \"%s\"", haystack, needle);
  g_assertion_message (G_LOG_DOMAIN, file, line, func, msg);
}

#define assert_contains(haystack, needle) \
  assert_contains_impl ((haystack), (needle), __FILE__, __LINE__, G_STRFUNC)

/* ------------------------------------------------------------------ */
/* the sample file */

/* Tensors of every way uelsrc reads: inline by the streaming thread (under
 * 1 MiB), by one I/O thread, in several 8 MiB parts.  Every tensor and
 * every 1 MiB chunk starts on a 4 KiB boundary, so that an O_DIRECT read
 * covers exactly one buffer and a fault hits the same buffer with every
 * method. */
typedef struct
{
  gchar *path;
  GBytes *bytes;
  UelHeader *header;
} Sample;

static Sample *
sample_new (const gchar * name)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  Sample *s = g_new0 (Sample, 1);
  GError *err = NULL;
  gchar *data;
  gsize len;

  s->path = uel_test_path (name);
  uel_test_builder_set_align (b, 4096);
  uel_test_builder_add (b, "t0", "U8", "[65536]", 64 * KiB, NULL);
  uel_test_builder_add (b, "t1", "F32", "[786432]", 3 * MiB, NULL);
  uel_test_builder_add (b, "t2", "U8", "[4096]", 4096, NULL);
  uel_test_builder_add (b, "t3", "F16", "[5242880]", 10 * MiB, NULL);
  uel_test_builder_add (b, "t4", "U8", "[1048576]", MiB, NULL);
  uel_test_builder_add (b, "t5", "BF16", "[2048]", 4096, NULL);
  uel_test_builder_write (b, s->path, NULL);
  g_file_get_contents (s->path, &data, &len, &err);
  g_assert_no_error (err);
  s->bytes = g_bytes_new_take (data, len);
  s->header = uel_header_open (s->path, &err);
  g_assert_no_error (err);
  return s;
}

static void
sample_free (Sample * s)
{
  g_free (s->path);
  g_bytes_unref (s->bytes);
  uel_header_unref (s->header);
  g_free (s);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Sample, sample_free)

/* puts the original bytes back (a mutation test changed the file) */
static void
sample_rewrite (Sample * s)
{
  uel_test_write_bytes (s->path, g_bytes_get_data (s->bytes, NULL),
      g_bytes_get_size (s->bytes));
}

static const UelTensorInfo *
sample_tensor (Sample * s, guint i)
{
  return uel_header_get_tensor (s->header, i);
}

/* a byte in the second 8 MiB part of t3, and in its tenth 1 MiB chunk */
static guint64
sample_deep_offset (Sample * s)
{
  return sample_tensor (s, 3)->file_offset + 9 * MiB + 100;
}

/* one expected buffer */
typedef struct
{
  guint tensor;
  guint64 offset;
  gsize len;
} Range;

static GArray *
expected_ranges (Sample * s, guint64 chunk)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (Range));

  for (guint i = 0; i < uel_header_get_n_tensors (s->header); i++) {
    const UelTensorInfo *info = sample_tensor (s, i);
    guint64 pos = 0;

    do {
      Range r = { i, info->file_offset + pos, (gsize) (info->n_bytes - pos) };

      if (chunk && r.len > chunk)
        r.len = (gsize) chunk;
      g_array_append_val (a, r);
      pos += r.len;
    } while (pos < info->n_bytes);
  }
  return a;
}

/* how many buffers come before the one holding file byte @offset */
static guint
ranges_before (GArray * ranges, guint64 offset)
{
  guint i = 0;

  while (i < ranges->len
      && g_array_index (ranges, Range, i).offset +
      g_array_index (ranges, Range, i).len <= offset)
    i++;
  return i;
}

/* exactly the first @n expected buffers, each with the file's bytes */
static void
check_buffers (GPtrArray * bufs, Sample * s, GArray * ranges, guint n)
{
  const guint8 *file = g_bytes_get_data (s->bytes, NULL);

  g_assert_cmpuint (bufs->len, ==, n);
  for (guint i = 0; i < n; i++) {
    GstBuffer *buf = g_ptr_array_index (bufs, i);
    const Range *r = &g_array_index (ranges, Range, i);
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    GstMapInfo map;

    g_assert_nonnull (meta);
    g_assert_cmpuint (meta->tensor_index, ==, r->tensor);
    g_assert_cmpuint (GST_BUFFER_OFFSET (buf), ==, r->offset);
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpmem (map.data, map.size, file + r->offset, r->len);
    gst_buffer_unmap (buf, &map);
  }
}

/* a tensor the loader returned: the file's bytes */
static void
check_loader_tensor (GstBuffer * buf, Sample * s, guint i)
{
  const UelTensorInfo *info = sample_tensor (s, i);
  GstMapInfo map;

  g_assert_nonnull (buf);
  g_assert_cmpuint (uel_buffer_get_tensor_meta (buf)->tensor_index, ==, i);
  g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size,
      (const guint8 *) g_bytes_get_data (s->bytes, NULL) + info->file_offset,
      info->n_bytes);
  gst_buffer_unmap (buf, &map);
}

/* ------------------------------------------------------------------ */
/* running pipelines */

typedef struct
{
  GPtrArray *bufs;              /* what reached the element "sink" */
  GstStateChangeReturn start;   /* what going to PLAYING returned */
  GError *error;                /* the error message; NULL at EOS */
  GError *warning;              /* the first warning message */
  guint n_warnings;
  GstStructure *pin_stats;      /* the stats of the element "pin" */
} Run;

static void
run_clear (Run * run)
{
  g_clear_pointer (&run->bufs, g_ptr_array_unref);
  g_clear_error (&run->error);
  g_clear_error (&run->warning);
  g_clear_pointer (&run->pin_stats, gst_structure_free);
}

static void
collect (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer data)
{
  g_ptr_array_add (data, gst_buffer_ref (buf));
}

/* Runs @launch until EOS or an error; @on_handoff (with @data) is also
 * called for every buffer reaching "sink", after it was collected. */
static void
run_pipeline (const gchar * launch, Run * run, GCallback on_handoff,
    gpointer data)
{
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *sink, *pin;
  GstBus *bus;
  gboolean done = FALSE;

  g_assert_no_error (err);
  memset (run, 0, sizeof *run);
  run->bufs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_assert_nonnull (sink);
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (collect), run->bufs);
  if (on_handoff)
    g_signal_connect (sink, "handoff", on_handoff, data);
  gst_object_unref (sink);

  bus = gst_element_get_bus (pipeline);
  run->start = gst_element_set_state (pipeline, GST_STATE_PLAYING);
  while (!done) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, HANG_TIMEOUT,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING);

    if (!msg)
      g_error ("%s: neither EOS nor an error: the pipeline hangs", launch);
    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_WARNING:
        run->n_warnings++;
        if (!run->warning)
          gst_message_parse_warning (msg, &run->warning, NULL);
        break;
      case GST_MESSAGE_ERROR:
        gst_message_parse_error (msg, &run->error, NULL);
        done = TRUE;
        break;
      default:
        done = TRUE;
        break;
    }
    gst_message_unref (msg);
  }
  gst_object_unref (bus);

  pin = gst_bin_get_by_name (GST_BIN (pipeline), "pin");
  if (pin) {
    g_object_get (pin, "stats", &run->pin_stats, NULL);
    gst_object_unref (pin);
  }
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (pipeline);
}

/* the ways uelsrc reads: method, I/O threads (1 = the streaming thread
 * alone), chunk size */
typedef struct
{
  const gchar *method;
  guint io_threads;
  guint64 chunk;
} SrcConfig;

static const SrcConfig read_configs[] = {
  {"pread", 1, 0}, {"pread", 3, 0}, {"pread", 1, MiB}, {"pread", 3, MiB},
  {"direct", 1, 0}, {"direct", 3, 0}, {"direct", 1, MiB}, {"direct", 3, MiB},
};

static gchar *
src_launch (const gchar * path, const SrcConfig * c, const gchar * extra)
{
  return g_strdup_printf ("uelsrc location=\"%s\" method=%s io-threads=%u "
      "chunk-size=%" G_GUINT64_FORMAT " %s ! fakesink name=sink", path,
      c->method, c->io_threads, c->chunk, extra ? extra : "");
}

static Sample *shared_sample;

/* the sample the fault tests share (they never change it) */
static Sample *
get_sample (void)
{
  if (!shared_sample)
    shared_sample = sample_new ("faults.safetensors");
  return shared_sample;
}

/* ------------------------------------------------------------------ */
/* uelsrc under read faults */

/* a failing header read: the pipeline does not start, and says which file
 * and what the system said */
static void
test_src_eio_in_header (void)
{
  Sample *s = get_sample ();
  /* the 8-byte length, then the JSON text */
  const guint64 where[] = { 0, 8 };
  const gchar *methods[] = { "pread", "mmap", "direct" };

  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    for (guint w = 0; w < G_N_ELEMENTS (where); w++) {
      g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
          "method=%s ! fakesink name=sink", s->path, methods[m]);
      UelFaultCounters c;
      Run run;

      inject (UEL_FAULT_EIO, s->path, where[w], where[w] + 1, -1, 0);
      run_pipeline (launch, &run, NULL, NULL);
      c = inject_none ();

      g_assert_cmpint (run.start, ==, GST_STATE_CHANGE_FAILURE);
      g_assert_error (run.error, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_READ);
      assert_contains (run.error->message, s->path);
      assert_contains (run.error->message, g_strerror (EIO));
      g_assert_cmpuint (run.bufs->len, ==, 0);
      g_assert_cmpuint (c.faults, ==, 1);
      run_clear (&run);
    }
  }
}

/* a failing read of one tensor: every buffer before it is exact, it and
 * the ones after it never come, the error names the file, the tensor and
 * the system's reason, and the pipeline ends */
static void
test_src_eio_in_tensor (void)
{
  Sample *s = get_sample ();
  /* t2 is read by the streaming thread, t3 in parts by the I/O threads */
  const guint64 where[] = {
    sample_tensor (s, 2)->file_offset + 100, sample_deep_offset (s)
  };
  const gchar *names[] = { "'t2'", "'t3'" };

  for (guint i = 0; i < G_N_ELEMENTS (read_configs); i++) {
    g_autoptr (GArray) ranges = expected_ranges (s, read_configs[i].chunk);
    g_autofree gchar *launch = src_launch (s->path, &read_configs[i], NULL);

    for (guint w = 0; w < G_N_ELEMENTS (where); w++) {
      UelFaultCounters c;
      Run run;

      /* once: uelsrc does not retry, the first failure is the error */
      inject (UEL_FAULT_EIO, s->path, where[w], where[w] + 1, 1, 0);
      run_pipeline (launch, &run, NULL, NULL);
      c = inject_none ();

      g_assert_cmpint (run.start, !=, GST_STATE_CHANGE_FAILURE);
      g_assert_error (run.error, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_READ);
      assert_contains (run.error->message, s->path);
      assert_contains (run.error->message, names[w]);
      assert_contains (run.error->message, g_strerror (EIO));
      check_buffers (run.bufs, s, ranges, ranges_before (ranges, where[w]));
      g_assert_cmpuint (c.faults, ==, 1);
      run_clear (&run);
    }
  }
}

/* reads that return less than asked, everywhere: every tensor exact */
static void
test_src_short_reads (void)
{
  Sample *s = get_sample ();
  /* half of each request; an odd size that breaks O_DIRECT's alignment */
  const gsize most[] = { 0, 1000 };

  for (guint i = 0; i < G_N_ELEMENTS (read_configs); i++) {
    g_autoptr (GArray) ranges = expected_ranges (s, read_configs[i].chunk);
    g_autofree gchar *launch = src_launch (s->path, &read_configs[i], NULL);

    for (guint k = 0; k < G_N_ELEMENTS (most); k++) {
      UelFaultCounters c;
      Run run;

      inject (UEL_FAULT_SHORT, s->path, 0, 0, -1, most[k]);
      run_pipeline (launch, &run, NULL, NULL);
      c = inject_none ();

      g_assert_no_error (run.error);
      check_buffers (run.bufs, s, ranges, ranges->len);
      g_assert_cmpuint (c.faults, >, 0);
      run_clear (&run);
    }
  }
}

/* every other read interrupted before it starts: retried, every tensor
 * exact */
static void
test_src_eintr (void)
{
  Sample *s = get_sample ();

  for (guint i = 0; i < G_N_ELEMENTS (read_configs); i++) {
    g_autoptr (GArray) ranges = expected_ranges (s, read_configs[i].chunk);
    g_autofree gchar *launch = src_launch (s->path, &read_configs[i], NULL);
    UelFaultCounters c;
    Run run;

    inject (UEL_FAULT_EINTR, s->path, 0, 0, -1, 0);
    run_pipeline (launch, &run, NULL, NULL);
    c = inject_none ();

    g_assert_no_error (run.error);
    check_buffers (run.bufs, s, ranges, ranges->len);
    g_assert_cmpuint (c.faults, >, 0);
    g_assert_cmpuint (c.faults, ==, (c.calls + 1) / 2);
    run_clear (&run);
  }
}

/* the file ends early (as if truncated after validation): the file-changed
 * error, and nothing short pushed */
static void
test_src_early_eof (void)
{
  Sample *s = get_sample ();
  guint64 end = sample_deep_offset (s);

  for (guint i = 0; i < G_N_ELEMENTS (read_configs); i++) {
    g_autoptr (GArray) ranges = expected_ranges (s, read_configs[i].chunk);
    g_autofree gchar *launch = src_launch (s->path, &read_configs[i], NULL);
    UelFaultCounters c;
    Run run;

    inject (UEL_FAULT_EOF, s->path, end, 0, -1, 0);
    run_pipeline (launch, &run, NULL, NULL);
    c = inject_none ();

    g_assert_cmpint (run.start, !=, GST_STATE_CHANGE_FAILURE);
    g_assert_error (run.error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ);
    assert_contains (run.error->message, s->path);
    assert_contains (run.error->message, "'t3'");
    assert_contains (run.error->message, "shrank");
    check_buffers (run.bufs, s, ranges, ranges_before (ranges, end));
    g_assert_cmpuint (c.faults, >, 0);
    run_clear (&run);
  }
}

/* a file system that refuses O_DIRECT: method=direct reads with pread */
static void
test_src_direct_refused (void)
{
  Sample *s = get_sample ();

  for (guint i = 0; i < G_N_ELEMENTS (read_configs); i++) {
    g_autoptr (GArray) ranges = NULL;
    g_autofree gchar *launch = NULL;
    UelFaultCounters c;
    Run run;

    if (strcmp (read_configs[i].method, "direct") != 0)
      continue;
    ranges = expected_ranges (s, read_configs[i].chunk);
    launch = src_launch (s->path, &read_configs[i], NULL);
    inject (UEL_FAULT_NODIRECT, s->path, 0, 0, -1, 0);
    run_pipeline (launch, &run, NULL, NULL);
    c = inject_none ();

    g_assert_no_error (run.error);
    check_buffers (run.bufs, s, ranges, ranges->len);
    /* the one O_DIRECT open refused; the header's and the buffered data
     * descriptor's opens went through */
    g_assert_cmpuint (c.faults, ==, 1);
    g_assert_cmpuint (c.calls, ==, 3);
    run_clear (&run);
  }
}

/* ------------------------------------------------------------------ */
/* UelLoader under read faults */

static void
test_loader_eio_in_header (void)
{
  Sample *s = get_sample ();

  for (gint low = 0; low <= 1; low++) {
    GError *err = NULL;
    UelLoader *loader;
    UelFaultCounters c;

    inject (UEL_FAULT_EIO, s->path, 0, 0, -1, 0);
    loader = uel_loader_new (s->path, low, &err);
    c = inject_none ();

    g_assert_null (loader);
    g_assert_error (err, UEL_ERROR, UEL_ERROR_IO);
    assert_contains (err->message, s->path);
    assert_contains (err->message, g_strerror (EIO));
    g_assert_cmpuint (c.faults, ==, 1);
    g_clear_error (&err);
  }
}

static void
test_loader_eio_in_tensor (void)
{
  Sample *s = get_sample ();
  guint64 where = sample_deep_offset (s);
  guint n = uel_header_get_n_tensors (s->header);
  GError *err = NULL;
  UelLoader *loader;
  UelFaultCounters c;

  /* standard mode reads everything when it opens: opening fails */
  inject (UEL_FAULT_EIO, s->path, where, where + 1, -1, 0);
  loader = uel_loader_new (s->path, FALSE, &err);
  c = inject_none ();
  g_assert_null (loader);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_IO);
  assert_contains (err->message, s->path);
  assert_contains (err->message, "'t3'");
  assert_contains (err->message, g_strerror (EIO));
  g_assert_cmpuint (c.faults, ==, 1);
  g_clear_error (&err);

  /* low-memory mode: only t3 fails, and only while the fault lasts */
  inject (UEL_FAULT_EIO, s->path, where, where + 1, 1, 0);
  loader = uel_loader_new (s->path, TRUE, &err);
  g_assert_no_error (err);
  for (guint i = 0; i < n; i++) {
    GstBuffer *buf = uel_loader_get_tensor (loader,
        sample_tensor (s, i)->name, &err);

    if (i == 3) {
      g_assert_null (buf);
      g_assert_error (err, UEL_ERROR, UEL_ERROR_IO);
      assert_contains (err->message, s->path);
      assert_contains (err->message, "'t3'");
      assert_contains (err->message, g_strerror (EIO));
      g_clear_error (&err);
    } else {
      g_assert_no_error (err);
      check_loader_tensor (buf, s, i);
      gst_buffer_unref (buf);
    }
  }
  {
    /* the one fault is spent: the same call now succeeds */
    GstBuffer *buf = uel_loader_get_tensor (loader, "t3", &err);

    g_assert_no_error (err);
    check_loader_tensor (buf, s, 3);
    gst_buffer_unref (buf);
  }
  c = inject_none ();
  g_assert_cmpuint (c.faults, ==, 1);
  g_object_unref (loader);
}

/* short and interrupted reads: every tensor exact, in both modes */
static void
test_loader_short_and_eintr (void)
{
  Sample *s = get_sample ();
  guint n = uel_header_get_n_tensors (s->header);
  const struct
  {
    UelFaultMode mode;
    gsize most;
  } faults[] = {
    {UEL_FAULT_SHORT, 0}, {UEL_FAULT_SHORT, 1000}, {UEL_FAULT_EINTR, 0},
  };

  for (guint f = 0; f < G_N_ELEMENTS (faults); f++) {
    for (gint low = 0; low <= 1; low++) {
      GError *err = NULL;
      UelLoader *loader;
      UelFaultCounters c;

      inject (faults[f].mode, s->path, 0, 0, -1, faults[f].most);
      loader = uel_loader_new (s->path, low, &err);
      g_assert_no_error (err);
      for (guint i = 0; i < n; i++) {
        GstBuffer *buf = uel_loader_get_tensor (loader,
            sample_tensor (s, i)->name, &err);

        g_assert_no_error (err);
        check_loader_tensor (buf, s, i);
        gst_buffer_unref (buf);
      }
      c = inject_none ();
      g_assert_cmpuint (c.faults, >, 0);
      if (faults[f].mode == UEL_FAULT_EINTR)
        g_assert_cmpuint (c.faults, ==, (c.calls + 1) / 2);
      g_object_unref (loader);
    }
  }
}

/* the file ends early: UEL_ERROR_FILE_CHANGED, naming file and tensor */
static void
test_loader_early_eof (void)
{
  Sample *s = get_sample ();
  guint64 end = sample_deep_offset (s);
  guint n = uel_header_get_n_tensors (s->header);
  GError *err = NULL;
  UelLoader *loader;

  inject (UEL_FAULT_EOF, s->path, end, 0, -1, 0);
  loader = uel_loader_new (s->path, FALSE, &err);
  g_assert_null (loader);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
  assert_contains (err->message, s->path);
  assert_contains (err->message, "'t3'");
  assert_contains (err->message, "shrank");
  g_clear_error (&err);

  loader = uel_loader_new (s->path, TRUE, &err);
  g_assert_no_error (err);
  for (guint i = 0; i < n; i++) {
    GstBuffer *buf = uel_loader_get_tensor (loader,
        sample_tensor (s, i)->name, &err);

    if (i < 3) {
      g_assert_no_error (err);
      check_loader_tensor (buf, s, i);
      gst_buffer_unref (buf);
    } else {
      /* t3 and everything after the new end */
      g_assert_null (buf);
      g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
      assert_contains (err->message, sample_tensor (s, i)->name);
      g_clear_error (&err);
    }
  }
  g_assert_cmpuint (inject_none ().faults, >, 0);
  g_object_unref (loader);
}

/* ------------------------------------------------------------------ */
/* hostile locations */

static void
check_src_rejects (const gchar * path, GQuark domain, gint code,
    const gchar * needle)
{
  const gchar *methods[] = { "pread", "mmap", "direct" };

  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
        "method=%s ! fakesink name=sink", path, methods[m]);
    Run run;

    run_pipeline (launch, &run, NULL, NULL);
    g_assert_cmpint (run.start, ==, GST_STATE_CHANGE_FAILURE);
    g_assert_error (run.error, domain, code);
    assert_contains (run.error->message, path);
    assert_contains (run.error->message, needle);
    g_assert_cmpuint (run.bufs->len, ==, 0);
    run_clear (&run);
  }
}

static void
check_loader_rejects (const gchar * path, GQuark domain, gint code,
    const gchar * needle)
{
  for (gint low = 0; low <= 1; low++) {
    GError *err = NULL;
    UelLoader *loader = uel_loader_new (path, low, &err);

    g_assert_null (loader);
    g_assert_error (err, domain, code);
    assert_contains (err->message, path);
    assert_contains (err->message, needle);
    g_clear_error (&err);
  }
}

/* things that are not safetensors files, given as one: each a clear error
 * from the element and from the loader, none a hang (a FIFO without a
 * writer blocks a plain open) */
static void
test_hostile_locations (void)
{
  g_autofree gchar *dir = uel_test_path ("dir.safetensors");
  g_autofree gchar *fifo = uel_test_path ("fifo.safetensors");
  g_autofree gchar *fifo_index = uel_test_path ("fifo.safetensors.index.json");
  g_autofree gchar *link = uel_test_path ("zero-link.safetensors");
  g_autofree gchar *missing = uel_test_path ("missing.safetensors");
  g_autofree gchar *empty = uel_test_path ("empty.safetensors");
  const struct
  {
    const gchar *path;
    GQuark src_domain;
    gint src_code;
    GQuark lib_domain;
    gint lib_code;
    const gchar *needle;
  } cases[] = {
    {dir, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        G_FILE_ERROR, G_FILE_ERROR_ISDIR, "directory"},
    {fifo, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        G_FILE_ERROR, G_FILE_ERROR_FAILED, "not a regular file"},
    {fifo_index, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        G_FILE_ERROR, G_FILE_ERROR_FAILED, "not a regular file"},
    {"/dev/zero", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        G_FILE_ERROR, G_FILE_ERROR_FAILED, "not a regular file"},
    {"/dev/null", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        G_FILE_ERROR, G_FILE_ERROR_FAILED, "not a regular file"},
    {link, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
        G_FILE_ERROR, G_FILE_ERROR_FAILED, "not a regular file"},
    {missing, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        G_FILE_ERROR, G_FILE_ERROR_NOENT, g_strerror (ENOENT)},
    {empty, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT,
        UEL_ERROR, UEL_ERROR_FILE_TOO_SMALL, "rule 1"},
  };

  g_assert_cmpint (g_mkdir (dir, 0755), ==, 0);
  g_assert_cmpint (mkfifo (fifo, 0644), ==, 0);
  g_assert_cmpint (mkfifo (fifo_index, 0644), ==, 0);
  g_assert_cmpint (symlink ("/dev/zero", link), ==, 0);
  uel_test_write_bytes (empty, "", 0);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_test_message ("%s", cases[i].path);
    check_src_rejects (cases[i].path, cases[i].src_domain,
        cases[i].src_code, cases[i].needle);
    check_loader_rejects (cases[i].path, cases[i].lib_domain,
        cases[i].lib_code, cases[i].needle);
  }
}

/* both files hold the same tensors; only @denied's mode forbids reading */
static void
check_no_permission (const gchar * denied, const gchar * allowed)
{
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "fakesink name=sink", allowed);
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (GBytes) bytes = NULL;
  GError *err = NULL;
  gchar *data;
  gsize len;
  Run run;

  g_assert_cmpint (access (denied, R_OK), ==, -1);
  check_src_rejects (denied, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_OPEN_READ, g_strerror (EACCES));
  check_loader_rejects (denied, G_FILE_ERROR, G_FILE_ERROR_ACCES,
      g_strerror (EACCES));

  /* the same user reads the other file */
  g_file_get_contents (allowed, &data, &len, &err);
  g_assert_no_error (err);
  bytes = g_bytes_new_take (data, len);
  h = uel_header_open (allowed, &err);
  g_assert_no_error (err);
  run_pipeline (launch, &run, NULL, NULL);
  g_assert_no_error (run.error);
  g_assert_cmpuint (run.bufs->len, ==, uel_header_get_n_tensors (h));
  for (guint i = 0; i < run.bufs->len; i++) {
    const UelTensorInfo *info = uel_header_get_tensor (h, i);
    GstMapInfo map;

    g_assert_true (gst_buffer_map (g_ptr_array_index (run.bufs, i), &map,
            GST_MAP_READ));
    g_assert_cmpmem (map.data, map.size,
        (const guint8 *) g_bytes_get_data (bytes, NULL) + info->file_offset,
        info->n_bytes);
    gst_buffer_unmap (g_ptr_array_index (run.bufs, i), &map);
  }
  run_clear (&run);
  loader = uel_loader_new (allowed, TRUE, &err);
  g_assert_no_error (err);
}

/* a file without read permission, for a user that permissions apply to
 * (as root, in a subprocess that becomes 'nobody') */
static void
test_no_read_permission (void)
{
  g_autofree gchar *denied = uel_test_path ("noperm.safetensors");
  g_autofree gchar *allowed = uel_test_path ("perm.safetensors");

  if (!g_test_subprocess ()) {
    const gchar *files[] = { denied, allowed, NULL };
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();

    uel_test_builder_add (b, "w", "F32", "[4,4]", 64, NULL);
    uel_test_builder_add (b, "b", "F32", "[4]", 16, NULL);
    uel_test_builder_write (b, denied, NULL);
    uel_test_builder_write (b, allowed, NULL);
    /* write-only for its owner, nothing for anyone else */
    g_assert_cmpint (g_chmod (denied, 0200), ==, 0);
    g_assert_cmpint (g_chmod (allowed, 0600), ==, 0);
    if (uel_test_run_unprivileged (files))
      return;
  } else {
    uel_test_drop_privileges ();
  }
  check_no_permission (denied, allowed);
}

/* ------------------------------------------------------------------ */
/* the file changes while it streams */

typedef struct
{
  const gchar *path;
  gchar *other;                 /* replace: the file renamed over path */
  guint64 size;                 /* truncate: the new size */
  gint done;
} Mutation;

static gboolean
first_buffer (Mutation * m)
{
  return g_atomic_int_add (&m->done, 1) == 0;
}

static void
replace_on_first (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer data)
{
  Mutation *m = data;

  if (first_buffer (m))
    g_assert_cmpint (g_rename (m->other, m->path), ==, 0);
}

static void
extend_on_first (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer data)
{
  Mutation *m = data;
  guint8 junk[4096];
  gint fd;

  if (!first_buffer (m))
    return;
  memset (junk, 0xee, sizeof junk);
  fd = open (m->path, O_WRONLY | O_APPEND);
  g_assert_cmpint (fd, >=, 0);
  for (guint i = 0; i < 256; i++)
    g_assert_cmpint (write (fd, junk, sizeof junk), ==, sizeof junk);
  close (fd);
}

/* the same size, other bytes in the second half, a later modification
 * time */
static void
rewrite_on_first (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer data)
{
  Mutation *m = data;
  GStatBuf st;

  if (!first_buffer (m))
    return;
  g_assert_cmpint (g_stat (m->path, &st), ==, 0);
  uel_test_rewrite_in_place (m->path, st.st_size / 2);
}

static void
truncate_on_first (GstElement * sink, GstBuffer * buf, GstPad * pad,
    gpointer data)
{
  Mutation *m = data;

  if (first_buffer (m))
    g_assert_cmpint (truncate (m->path, (off_t) m->size), ==, 0);
}

static const SrcConfig every_method[] = {
  {"pread", 1, 0}, {"pread", 3, 0}, {"mmap", 1, 0}, {"mmap", 3, 0},
  {"direct", 1, 0}, {"direct", 3, 0},
};

/* another file renamed over the path after the first tensor: uelsrc holds
 * its descriptors, so every tensor is the original file's */
static void
test_replaced_while_streaming (void)
{
  g_autoptr (Sample) s = sample_new ("replaced.safetensors");
  g_autoptr (GArray) ranges = expected_ranges (s, 0);
  g_autofree gchar *other = uel_test_path ("replacement.safetensors");
  gsize size = g_bytes_get_size (s->bytes);
  g_autofree guint8 *zeros = g_malloc0 (size);

  for (guint i = 0; i < G_N_ELEMENTS (every_method); i++) {
    /* read-ahead=0: every later tensor is read after the rename */
    g_autofree gchar *launch = src_launch (s->path, &every_method[i],
        "read-ahead=0");
    Mutation m = { s->path, other, 0, 0 };
    g_autofree gchar *now = NULL;
    gsize now_len;
    Run run;

    sample_rewrite (s);
    uel_test_write_bytes (other, zeros, size);
    run_pipeline (launch, &run, G_CALLBACK (replace_on_first), &m);

    g_assert_no_error (run.error);
    check_buffers (run.bufs, s, ranges, ranges->len);
    /* the path does hold the other file now */
    g_assert_true (g_file_get_contents (s->path, &now, &now_len, NULL));
    g_assert_cmpmem (now, now_len, zeros, size);
    run_clear (&run);
  }
}

/* The bytes read are the file's only while it is the file that was
 * validated: after each read, uelsrc checks its size and modification
 * time.  The message that the file changed names it and the tensor, and
 * every buffer pushed before is exact. */
static void
assert_changed_after_first (Run * run, Sample * s, GArray * ranges,
    const gchar * reason)
{
  g_assert_error (run->error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ);
  assert_contains (run->error->message, s->path);
  assert_contains (run->error->message, "tensor '");
  if (!strstr (run->error->message, "shrank"))
    assert_contains (run->error->message, reason);
  /* the change came with the first buffer: nothing read after it passes */
  g_assert_cmpuint (run->bufs->len, ==, 1);
  check_buffers (run->bufs, s, ranges, 1);
}

/* Changes the file with @mutate after the first tensor, with every
 * method: an error before the next tensor, which the first was not read
 * after, and the file ends @size_delta bytes longer than it was. */
static void
check_changed_while_streaming (const gchar * name, GCallback mutate,
    const gchar * reason, gsize size_delta)
{
  g_autoptr (Sample) s = sample_new (name);
  g_autoptr (GArray) ranges = expected_ranges (s, 0);

  for (guint i = 0; i < G_N_ELEMENTS (every_method); i++) {
    g_autofree gchar *launch = src_launch (s->path, &every_method[i],
        "read-ahead=0");
    Mutation m = { s->path, NULL, 0, 0 };
    GStatBuf st;
    Run run;

    sample_rewrite (s);
    run_pipeline (launch, &run, mutate, &m);

    g_test_message ("%s, %u threads: %s", every_method[i].method,
        every_method[i].io_threads, run.error ? run.error->message : "");
    assert_changed_after_first (&run, s, ranges, reason);
    g_assert_cmpint (g_stat (s->path, &st), ==, 0);
    g_assert_cmpuint ((guint64) st.st_size, ==, g_bytes_get_size (s->bytes)
        + size_delta);
    run_clear (&run);
  }
}

/* bytes appended after the first tensor: an error before the next one
 * (extending a file in place is writing to it: its later tensors may be
 * being rewritten too) */
static void
test_extended_while_streaming (void)
{
  check_changed_while_streaming ("extended.safetensors",
      G_CALLBACK (extend_on_first), "size changed", MiB);
}

/* rewritten in place after the first tensor, the size kept (an outside
 * test saw the new bytes delivered silently): an error before the next
 * tensor, whatever the method */
static void
test_rewritten_while_streaming (void)
{
  check_changed_while_streaming ("rewritten.safetensors",
      G_CALLBACK (rewrite_on_first), "modification time", 0);
}

/* truncated after the first tensor, inside t3, with a read-ahead smaller
 * than any later read so that every one of them comes after the
 * truncation: the file-changed error at the next buffer, every buffer
 * before exact.  (The streaming-thread case with read-ahead=0 is
 * /uelsrc/errors/file-shrinks-while-reading; mmap cannot survive a
 * truncation, see uelsrc's docs.) */
static void
test_truncated_while_streaming (void)
{
  g_autoptr (Sample) s = sample_new ("truncated.safetensors");
  guint64 end = sample_deep_offset (s);

  for (guint i = 0; i < G_N_ELEMENTS (read_configs); i++) {
    g_autoptr (GArray) ranges = expected_ranges (s, read_configs[i].chunk);
    g_autofree gchar *launch = src_launch (s->path, &read_configs[i],
        "read-ahead=4096");
    Mutation m = { s->path, NULL, end, 0 };
    Run run;

    sample_rewrite (s);
    run_pipeline (launch, &run, G_CALLBACK (truncate_on_first), &m);

    assert_changed_after_first (&run, s, ranges, "size changed");
    run_clear (&run);
  }
}

/* Buffers that come from no uelsrc (no tensor meta, any size, 0 bytes
 * included) forced into the chain by caps: every element passes them on
 * unchanged or says why, none crashes, the pipeline ends. */
static void
record_input (GstElement * src, GstBuffer * buf, GstPad * pad,
    GPtrArray * inputs)
{
  g_ptr_array_add (inputs, gst_buffer_copy_deep (buf));
}

static void
test_foreign_buffers (void)
{
  g_autoptr (GPtrArray) inputs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  g_autoptr (GPtrArray) outputs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch ("fakesrc name=src num-buffers=60 "
      "sizetype=random sizemin=0 sizemax=300000 filltype=random "
      "signal-handoffs=true ! " UEL_TENSOR_CAPS " ! uelqueue "
      "max-size-bytes=100000 ! uelpin pool-size=1048576 ! uelcudaupload ! "
      "ueldictdecode ! fakesink name=sink signal-handoffs=true", &err);
  GstElement *src, *sink;
  GstMessage *msg;

  g_assert_no_error (err);
  src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_signal_connect (src, "handoff", G_CALLBACK (record_input), inputs);
  g_signal_connect (sink, "handoff", G_CALLBACK (collect), outputs);
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_PLAYING), !=,
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (pipeline),
      HANG_TIMEOUT, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_nonnull (msg);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gst_message_parse_error (msg, &err, NULL);
    g_assert_no_error (err);
  }
  gst_message_unref (msg);
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);

  g_assert_cmpuint (inputs->len, ==, 60);
  g_assert_cmpuint (outputs->len, ==, inputs->len);
  for (guint i = 0; i < inputs->len; i++) {
    GstBuffer *in = g_ptr_array_index (inputs, i);
    GstBuffer *out = g_ptr_array_index (outputs, i);
    GstMapInfo a, b;

    g_assert_true (gst_buffer_map (in, &a, GST_MAP_READ));
    g_assert_true (gst_buffer_map (out, &b, GST_MAP_READ));
    g_assert_cmpmem (a.data, a.size, b.data, b.size);
    gst_buffer_unmap (out, &b);
    gst_buffer_unmap (in, &a);
  }
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
}

/* ------------------------------------------------------------------ */
/* allocation failures */

/* a pool that cannot be pinned (a CUDA device that does not exist, here
 * or on a GPU host): the documented fallback, page-aligned host memory,
 * said once in a warning and in the stats, and every tensor exact */
static void
test_pin_unpinnable_pool (void)
{
  Sample *s = get_sample ();
  g_autoptr (GArray) ranges = expected_ranges (s, 0);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "uelpin name=pin cuda-device-id=4096 pool-size=%" G_GUINT64_FORMAT
      " ! fakesink name=sink", s->path, 64 * MiB);
  gboolean pinned = TRUE;
  Run run;

  run_pipeline (launch, &run, NULL, NULL);
  g_assert_no_error (run.error);
  check_buffers (run.bufs, s, ranges, ranges->len);
  g_assert_cmpuint (run.n_warnings, ==, 1);
  g_assert_error (run.warning, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_SETTINGS);
  g_assert_nonnull (run.pin_stats);
  g_assert_true (gst_structure_get_boolean (run.pin_stats, "device-pinned",
          &pinned));
  g_assert_false (pinned);
  g_assert_cmpuint (uel_test_stat (run.pin_stats, "tensors"), ==, ranges->len);
  g_assert_cmpuint (uel_test_stat (run.pin_stats, "fallbacks"), ==,
      ranges->len);
  /* uelsrc still read straight into the (unpinned) pool */
  g_assert_cmpuint (uel_test_stat (run.pin_stats, "zero-copy"), ==,
      ranges->len);
  for (guint i = 0; i < run.bufs->len; i++)
    g_assert_true (uel_memory_is_pinned (gst_buffer_peek_memory
            (g_ptr_array_index (run.bufs, i), 0)));
  run_clear (&run);
}

static guint64
meminfo_bytes (const gchar * field)
{
  g_autofree gchar *text = NULL;
  const gchar *p;

  g_assert_true (g_file_get_contents ("/proc/meminfo", &text, NULL, NULL));
  p = strstr (text, field);
  g_assert_nonnull (p);
  return g_ascii_strtoull (p + strlen (field), NULL, 10) * KiB;
}

/* a pool far larger than memory: a clear error before any tensor, not a
 * crash and not the OOM killer */
static void
test_pin_pool_larger_than_memory (void)
{
  Sample *s = get_sample ();
  g_autofree gchar *overcommit = NULL;
  g_autofree gchar *launch = NULL;
  g_autofree gchar *size_text = NULL;
  guint64 pool;
  Run run;

  /* with overcommit_memory=1 the kernel grants any mapping, and uelpin
   * would fault in the pool until the OOM killer came */
  if (g_file_get_contents ("/proc/sys/vm/overcommit_memory", &overcommit,
          NULL, NULL) && g_ascii_strtoull (overcommit, NULL, 10) == 1) {
    g_test_skip ("vm.overcommit_memory=1 grants any mapping");
    return;
  }
  /* at least 1 TiB, and 4 × RAM + swap: the kernel's heuristic refuses
   * one mapping larger than RAM + swap */
  pool = MAX (1024 * GiB, 4 * (meminfo_bytes ("MemTotal:") +
          meminfo_bytes ("SwapTotal:")));
  pool = (pool + 2 * MiB - 1) / (2 * MiB) * (2 * MiB);
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelpin name=pin "
      "pool-size=%" G_GUINT64_FORMAT " ! fakesink name=sink", s->path, pool);
  size_text = g_strdup_printf ("%" G_GUINT64_FORMAT, pool);

  run_pipeline (launch, &run, NULL, NULL);
  g_assert_cmpint (run.start, ==, GST_STATE_CHANGE_FAILURE);
  g_assert_error (run.error, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_NO_SPACE_LEFT);
  assert_contains (run.error->message, size_text);
  assert_contains (run.error->message, g_strerror (ENOMEM));
  g_assert_cmpuint (run.bufs->len, ==, 0);
  run_clear (&run);
}

/* Host memory that runs out under uelsrc (an address-space limit set in a
 * subprocess, so that only this case lives under it): a tensor whose
 * memory cannot be had is a clear error naming the file, the tensor and
 * the size, never an abort.  The file is sparse; the tensor is never
 * read. */
static void
test_src_host_memory_exhausted (void)
{
  g_autofree gchar *path = uel_test_path ("one-gib.safetensors");
  const gchar *header = "{\"big\":{\"dtype\":\"U8\",\"shape\":[1073741824],"
      "\"data_offsets\":[0,1073741824]}}";

#if defined(__SANITIZE_ADDRESS__)
  /* ASan reserves terabytes of shadow address space */
  g_test_skip ("an address-space limit cannot apply under AddressSanitizer");
  return;
#endif
  if (!g_test_subprocess ()) {
    uel_test_write_safetensors (path, header, NULL, 0);
    g_assert_cmpint (truncate (path, (off_t) (8 + strlen (header) + GiB)),
        ==, 0);
    g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed ();
    return;
  }

  {
    g_autofree gchar *statm = NULL;
    g_autofree gchar *launch = NULL;
    struct rlimit lim;
    guint64 pages;
    Run run;

    /* what the process has mapped now, plus 256 MiB for threads and
     * small allocations: a 1 GiB block cannot fit */
    g_assert_true (g_file_get_contents ("/proc/self/statm", &statm, NULL,
            NULL));
    pages = g_ascii_strtoull (statm, NULL, 10);
    lim.rlim_cur = lim.rlim_max = (rlim_t) (pages * (guint64) getpagesize ()
        + 256 * MiB);
    g_assert_cmpint (setrlimit (RLIMIT_AS, &lim), ==, 0);

    for (guint i = 0; i < 2; i++) {
      launch = g_strdup_printf ("uelsrc location=\"%s\" method=%s ! "
          "fakesink name=sink", path, i ? "direct" : "pread");
      run_pipeline (launch, &run, NULL, NULL);
      g_assert_error (run.error, GST_RESOURCE_ERROR,
          GST_RESOURCE_ERROR_NO_SPACE_LEFT);
      assert_contains (run.error->message, path);
      assert_contains (run.error->message, "'big'");
      assert_contains (run.error->message, "cannot allocate 1073741824");
      g_assert_cmpuint (run.bufs->len, ==, 0);
      run_clear (&run);
      g_clear_pointer (&launch, g_free);
    }
  }
}

/* The kernel cannot find the memory for a pinned pool when it is faulted
 * in (MADV_POPULATE_WRITE fails with ENOMEM): a clear error before any
 * tensor, not pages touched into the OOM killer's hands. */
static void
test_pin_pool_not_faulted_in (void)
{
  Sample *s = get_sample ();
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "uelpin name=pin pool-size=%" G_GUINT64_FORMAT " ! fakesink name=sink",
      s->path, 8 * MiB);
  UelFaultCounters c;
  Run run;

  inject (UEL_FAULT_POPULATE_NOMEM, "", 8 * MiB, 0, -1, 0);
  run_pipeline (launch, &run, NULL, NULL);
  c = inject_none ();

  g_assert_cmpint (run.start, ==, GST_STATE_CHANGE_FAILURE);
  g_assert_error (run.error, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_NO_SPACE_LEFT);
  assert_contains (run.error->message, "cannot fault in a pinned pool of "
      "8388608 bytes");
  assert_contains (run.error->message, g_strerror (ENOMEM));
  g_assert_cmpuint (run.bufs->len, ==, 0);
  g_assert_cmpuint (c.faults, ==, 1);
  run_clear (&run);
}

/* The same for the host memory of a small tensor (blocks under 2 MiB are
 * faulted in when they are made): uelsrc stops with an error naming the
 * tensor, after exactly the tensors before it. */
static void
test_src_host_block_not_faulted_in (void)
{
  Sample *s = get_sample ();
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "fakesink name=sink", s->path);
  const UelTensorInfo *first = uel_header_get_tensor (s->header, 0);
  UelFaultCounters c;
  Run run;

  g_assert_cmpuint (first->n_bytes, <, 2 * MiB);
  inject (UEL_FAULT_POPULATE_NOMEM, "", 0, 0, -1, 0);
  run_pipeline (launch, &run, NULL, NULL);
  c = inject_none ();

  g_assert_error (run.error, GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_NO_SPACE_LEFT);
  assert_contains (run.error->message, s->path);
  assert_contains (run.error->message, first->name);
  assert_contains (run.error->message, "cannot allocate");
  g_assert_cmpuint (run.bufs->len, ==, 0);
  g_assert_cmpuint (c.faults, >, 0);
  run_clear (&run);
}

/* ------------------------------------------------------------------ */
/* the writer on a full disk, with a failed write-back */

/* @path holds @bytes, and no temporary file of it is left */
static void
assert_untouched (const gchar * path, const gchar * bytes)
{
  g_autofree gchar *now = NULL;
  g_autofree gchar *dir = g_path_get_dirname (path);
  g_autofree gchar *prefix = NULL;
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  g_assert_true (g_file_get_contents (path, &now, NULL, NULL));
  g_assert_cmpstr (now, ==, bytes);
  prefix = g_strdup_printf (".%s.", strrchr (path, '/') + 1);
  while ((name = g_dir_read_name (d)))
    g_assert_false (g_str_has_prefix (name, prefix));
  g_dir_close (d);
}

/* the disk fills 100 bytes into the second tensor: the write fails with
 * ENOSPC, naming the file and the tensor, and so does every later call */
static void
test_writer_full_disk (void)
{
  g_autofree gchar *path = uel_test_path ("full.safetensors");
  g_autofree guint8 *data = g_malloc (64 * KiB);
  const guint64 shape[] = { 64 * KiB };
  g_autoptr (UelWriter) w = NULL;
  const UelTensorInfo *second;
  UelFaultCounters c;
  GError *err = NULL;

  uel_test_write_bytes (path, "before", 7);
  uel_test_fill (data, 64 * KiB, 1);
  w = uel_writer_new (path, &err);
  g_assert_no_error (err);
  g_assert_true (uel_writer_add_tensor (w, "a", UEL_DTYPE_U8, 1, shape, &err));
  g_assert_true (uel_writer_add_tensor (w, "b", UEL_DTYPE_U8, 1, shape, &err));
  g_assert_true (uel_writer_write_header (w, &err));
  g_assert_no_error (err);
  second = uel_writer_get_tensor (w, 1);

  inject (UEL_FAULT_NOSPC, ".full.safetensors.", second->file_offset + 100,
      0, -1, 0);
  g_assert_true (uel_writer_write (w, uel_writer_get_tensor (w, 0)->name, 0,
          data, 64 * KiB, &err));
  g_assert_no_error (err);
  g_assert_false (uel_writer_write (w, second->name, 0, data, 64 * KiB,
          &err));
  c = inject_none ();
  g_assert_cmpuint (c.faults, ==, 2);
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_NOSPC);
  assert_contains (err->message, path);
  assert_contains (err->message, "tensor 'b'");
  g_clear_error (&err);
  assert_untouched (path, "before");

  g_assert_false (uel_writer_write (w, "a", 0, data, 1, &err));
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_NOSPC);
  g_clear_error (&err);
  g_assert_false (uel_writer_finish (w, &err));
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_NOSPC);
  g_clear_error (&err);
  assert_untouched (path, "before");
}

/* fdatasync fails: finish fails, nothing is renamed */
static void
test_writer_failed_sync (void)
{
  g_autofree gchar *path = uel_test_path ("unsynced.safetensors");
  const guint64 shape[] = { 4 };
  g_autoptr (UelWriter) w = NULL;
  GError *err = NULL;

  uel_test_write_bytes (path, "before", 7);
  w = uel_writer_new (path, &err);
  g_assert_no_error (err);
  g_assert_true (uel_writer_add_tensor (w, "a", UEL_DTYPE_U8, 1, shape, &err));
  g_assert_true (uel_writer_write (w, "a", 0, "abcd", 4, &err));
  g_assert_no_error (err);
  inject (UEL_FAULT_SYNC_EIO, ".unsynced.safetensors.", 0, 0, -1, 0);
  g_assert_false (uel_writer_finish (w, &err));
  g_assert_cmpuint (inject_none ().faults, ==, 1);
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_IO);
  assert_contains (err->message, path);
  g_clear_error (&err);
  assert_untouched (path, "before");
}

int
main (int argc, char **argv)
{
  gint ret;

  uel_test_init (&argc, &argv);

  fault_configure = (UelFaultConfigureFunc) dlsym (RTLD_DEFAULT,
      UEL_FAULT_CONFIGURE_SYMBOL);
  fault_get_counters = (UelFaultGetCountersFunc) dlsym (RTLD_DEFAULT,
      UEL_FAULT_GET_COUNTERS_SYMBOL);
  if (!fault_configure || !fault_get_counters) {
    /* TAP: the whole program fails, with the reason */
    printf ("Bail out! the fault-injection shim is not loaded: run this "
        "test through meson test, or with LD_PRELOAD naming "
        "libuel-fault-shim.so (after any sanitizer runtime)\n");
    return 1;
  }

  g_test_add_func ("/faults/uelsrc/eio-in-header-fails-to-start",
      test_src_eio_in_header);
  g_test_add_func ("/faults/uelsrc/eio-in-a-tensor-ends-after-exact-buffers",
      test_src_eio_in_tensor);
  g_test_add_func ("/faults/uelsrc/short-reads-deliver-exact-tensors",
      test_src_short_reads);
  g_test_add_func ("/faults/uelsrc/eintr-is-retried", test_src_eintr);
  g_test_add_func ("/faults/uelsrc/early-eof-is-file-changed",
      test_src_early_eof);
  g_test_add_func ("/faults/uelsrc/direct-refused-falls-back-to-pread",
      test_src_direct_refused);
  g_test_add_func ("/faults/loader/eio-in-header", test_loader_eio_in_header);
  g_test_add_func ("/faults/loader/eio-in-a-tensor",
      test_loader_eio_in_tensor);
  g_test_add_func ("/faults/loader/short-reads-and-eintr-deliver-exact-"
      "tensors", test_loader_short_and_eintr);
  g_test_add_func ("/faults/loader/early-eof-is-file-changed",
      test_loader_early_eof);
  g_test_add_func ("/faults/hostile/non-files-are-clear-errors",
      test_hostile_locations);
  g_test_add_func ("/faults/hostile/no-read-permission",
      test_no_read_permission);
  g_test_add_func ("/faults/changes/replaced-file-streams-the-original",
      test_replaced_while_streaming);
  g_test_add_func ("/faults/changes/file-rewritten-in-place-is-an-error",
      test_rewritten_while_streaming);
  g_test_add_func ("/faults/changes/extended-file-is-an-error-after-the-"
      "exact-tensors-before",
      test_extended_while_streaming);
  g_test_add_func ("/faults/changes/truncated-file-is-an-error-with-"
      "threads-and-chunks", test_truncated_while_streaming);
  g_test_add_func ("/faults/alloc/host-memory-exhausted-is-an-error",
      test_src_host_memory_exhausted);
  g_test_add_func ("/faults/hostile/foreign-buffers-pass-every-element",
      test_foreign_buffers);
  g_test_add_func ("/faults/alloc/host-block-not-faulted-in-is-an-error",
      test_src_host_block_not_faulted_in);
  g_test_add_func ("/faults/alloc/pinned-pool-not-faulted-in-is-an-error",
      test_pin_pool_not_faulted_in);
  g_test_add_func ("/faults/uelpin/unpinnable-pool-falls-back",
      test_pin_unpinnable_pool);
  g_test_add_func ("/faults/uelpin/pool-larger-than-memory-is-an-error",
      test_pin_pool_larger_than_memory);
  g_test_add_func ("/faults/writer/full-disk-fails-leaving-the-file-as-it-was",
      test_writer_full_disk);
  g_test_add_func ("/faults/writer/failed-sync-fails-leaving-the-file-as-it-"
      "was", test_writer_failed_sync);

  ret = g_test_run ();
  g_clear_pointer (&shared_sample, sample_free);
  return ret;
}
