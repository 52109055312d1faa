/* gst-uel: checks that need a CUDA device; every test skips without one.
 *
 * Run on a GPU host by tests/gpu/run, with the build and its runtime
 * libraries carried along (tests/gpu/bundle).
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#if HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "cudamem-checks.h"
#include "test-utils.h"

#define MiB (G_GUINT64_CONSTANT (1) << 20)

static gboolean
need_device (void)
{
  GError *err = NULL;

  if (uel_cuda_device_check (-1, &err))
    return TRUE;
  g_test_skip (err->message);
  g_error_free (err);
  return FALSE;
}

static const gchar *dtypes[][2] = {
  {"BOOL", "8"}, {"U8", "8"}, {"I8", "8"}, {"F8_E5M2", "8"},
  {"F8_E4M3", "8"}, {"F8_E8M0", "8"}, {"F8_E4M3FNUZ", "8"},
  {"F8_E5M2FNUZ", "8"}, {"F4", "4"}, {"F6_E2M3", "6"}, {"F6_E3M2", "6"},
  {"I16", "16"}, {"U16", "16"}, {"F16", "16"}, {"BF16", "16"},
  {"I32", "32"}, {"U32", "32"}, {"F32", "32"}, {"C64", "64"},
  {"F64", "64"}, {"I64", "64"}, {"U64", "64"},
};

/* every dtype, a scalar, an empty tensor and a few MiB-sized ones, as the
 * reference writer would write them (the builder uses UelWriter) */
static gchar *
write_model (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  gchar *path = uel_test_path ("gpu.safetensors");

  uel_test_builder_set_align (b, 8);
  for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++) {
    guint bits = (guint) atoi (dtypes[i][1]);
    uel_test_builder_add (b, dtypes[i][0], dtypes[i][0], "[64,3]",
        192 * bits / 8, NULL);
  }
  uel_test_builder_add (b, "scalar", "F32", "[]", 4, NULL);
  uel_test_builder_add (b, "empty", "BF16", "[0,8]", 0, NULL);
  uel_test_builder_add (b, "big.bf16", "BF16", "[1024,2049]", 4196352, NULL);
  uel_test_builder_add (b, "big.f32", "F32", "[3000,1001]", 12012000, NULL);
  uel_test_builder_add (b, "odd.u8", "U8", "[3333337]", 3333337, NULL);
  uel_test_builder_write (b, path, NULL);
  return path;
}

typedef struct
{
  GPtrArray *bufs;
  GstStructure *up_stats;
  GstStructure *pin_stats;
} Result;

static void
collect (GstElement * sink, GstBuffer * buf, GstPad * pad, GPtrArray * bufs)
{
  g_ptr_array_add (bufs, gst_buffer_ref (buf));
}

/* runs @launch, with @context (if not NULL) set on the pipeline and
 * @probe (if not NULL) on the buffers entering the element named "up" */
static Result
run_with (const gchar * launch, GstContext * context,
    GstPadProbeCallback probe, gpointer probe_data)
{
  Result r = { g_ptr_array_new_with_free_func ((GDestroyNotify)
        gst_buffer_unref), NULL, NULL };
  GError *err = NULL;
  GstElement *p = gst_parse_launch (launch, &err);
  GstElement *sink, *up, *pin;
  GstMessage *msg;

  g_assert_no_error (err);
  if (context)
    gst_element_set_context (p, context);
  sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  up = gst_bin_get_by_name (GST_BIN (p), "up");
  pin = gst_bin_get_by_name (GST_BIN (p), "pin");
  if (probe) {
    GstPad *pad = gst_element_get_static_pad (up, "sink");

    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, probe, probe_data,
        NULL);
    gst_object_unref (pad);
  }
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (collect), r.bufs);
  gst_element_set_state (p, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p), GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *dbg = NULL;
    gst_message_parse_error (msg, &err, &dbg);
    g_printerr ("%s: %s\n", err->message, dbg);
    g_assert_no_error (err);
  }
  gst_message_unref (msg);
  if (up)
    g_object_get (up, "stats", &r.up_stats, NULL);
  if (pin)
    g_object_get (pin, "stats", &r.pin_stats, NULL);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_clear_object (&sink);
  gst_clear_object (&up);
  gst_clear_object (&pin);
  gst_object_unref (p);
  return r;
}

static Result
run (const gchar * launch)
{
  return run_with (launch, NULL, NULL, NULL);
}

static void
result_clear (Result * r)
{
  g_ptr_array_unref (r->bufs);
  if (r->up_stats)
    gst_structure_free (r->up_stats);
  if (r->pin_stats)
    gst_structure_free (r->pin_stats);
}

/* each output is one whole device tensor whose bytes (read back through a
 * host map) are the file's; returns the number of tensors */
static guint
check_device_tensors (GPtrArray * bufs, const gchar * path)
{
  g_autofree gchar *data = NULL;
  gsize len;
  g_autoptr (UelHeader) h = uel_header_open (path, NULL);

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  g_assert_cmpuint (bufs->len, ==, uel_header_get_n_tensors (h));
  for (guint i = 0; i < bufs->len; i++) {
    GstBuffer *buf = g_ptr_array_index (bufs, i);
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    const UelTensorInfo *info = uel_tensor_meta_get_tensor_info (meta);
    GstMemory *mem = gst_buffer_peek_memory (buf, 0);
    GstMapInfo map;

    g_assert_cmpuint (meta->tensor_index, ==, i);
    g_assert_true (meta->last_chunk);
    g_assert_cmpuint (meta->chunk_offset, ==, 0);
    g_assert_cmpuint (meta->dtype, ==, info->dtype);
    g_assert_true (uel_memory_is_cuda (mem));
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ | UEL_MAP_CUDA));
    g_assert_nonnull (map.data);
    g_assert_cmpuint (GPOINTER_TO_SIZE (map.data) % 256, ==, 0);
    gst_buffer_unmap (buf, &map);
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpuint (map.size, ==, info->n_bytes);
    if (map.size)
      g_assert_cmpmem (map.data, map.size, data + info->file_offset,
          info->n_bytes);
    gst_buffer_unmap (buf, &map);
  }
  return bufs->len;
}

static void
test_exact_bytes (void)
{
  g_autofree gchar *path = NULL;
  /* pinned by uelpin; pinned by our own proposal; pageable (mmap) */
  const gchar *paths[] = {
    "uelqueue ! uelpin name=pin pool-size=67108864 ! ",
    "uelqueue ! ",
    "",
  };
  const gchar *methods[] = { "pread", "pread", "mmap" };
  const gchar *chunks[] = { "", "chunk-size=1048576", "chunk-size=3333" };
  const gchar *single[] = { "false", "true" };

  if (!need_device ())
    return;
  path = write_model ();
  for (guint p = 0; p < G_N_ELEMENTS (paths); p++) {
    for (guint c = 0; c < G_N_ELEMENTS (chunks); c++) {
      for (guint s = 0; s < G_N_ELEMENTS (single); s++) {
        g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
            "method=%s %s ! %suelcudaupload name=up single-allocation=%s ! "
            "fakesink name=sink", path, methods[p], chunks[c], paths[p],
            single[s]);
        Result r = run (launch);
        guint n;

        g_test_message ("%s", launch);
        n = check_device_tensors (r.bufs, path);
        g_assert_cmpuint (uel_test_stat (r.up_stats, "tensors"), ==, n);
        g_assert_cmpuint (uel_test_stat (r.up_stats, "fallbacks"), ==, 0);
        if (s == 1)
          g_assert_cmpuint (uel_test_stat (r.up_stats, "allocations"), ==, 1);
        else
          g_assert_cmpuint (uel_test_stat (r.up_stats, "allocations"), ==, n);
        /* pinned input copies without staging, pageable is counted */
        if (p < 2)
          g_assert_cmpuint (uel_test_stat (r.up_stats, "pageable"), ==, 0);
        else
          g_assert_cmpuint (uel_test_stat (r.up_stats, "pageable"), >, 0);
        if (r.pin_stats) {
          gboolean pinned = FALSE;
          g_assert_true (gst_structure_get_boolean (r.pin_stats,
                  "device-pinned", &pinned));
          g_assert_true (pinned);
          g_assert_cmpuint (uel_test_stat (r.pin_stats, "fallbacks"), ==, 0);
          g_assert_cmpuint (uel_test_stat (r.pin_stats, "copied"), ==, 0);
        }
        result_clear (&r);
      }
    }
  }
}

/* random bit patterns: NaNs, infinities and subnormals included */
static gchar *
write_float_model (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  gchar *path = uel_test_path ("floats.safetensors");
  g_autofree guint8 *f8 = g_malloc (70003);

  /* the 8-bit formats: every bit pattern, 273 times over, and odd tails */
  for (guint i = 0; i < 70003; i++)
    f8[i] = (guint8) (i * 7 + 3);
  uel_test_builder_set_align (b, 8);
  uel_test_builder_add (b, "f32", "F32", "[250001]", 1000004, NULL);
  uel_test_builder_add (b, "f16", "F16", "[65536]", 131072, NULL);
  uel_test_builder_add (b, "bf16", "BF16", "[65536]", 131072, NULL);
  uel_test_builder_add (b, "f64", "F64", "[33333]", 266664, NULL);
  uel_test_builder_add (b, "e4m3", "F8_E4M3", "[70001]", 70001, f8);
  uel_test_builder_add (b, "e5m2", "F8_E5M2", "[70003]", 70003, f8);
  uel_test_builder_add (b, "ids", "I32", "[1000]", 4000, NULL);
  uel_test_builder_add (b, "mask", "BOOL", "[77]", 77, NULL);
  uel_test_builder_write (b, path, NULL);
  return path;
}

static void
test_convert_matches_cpu (void)
{
  g_autofree gchar *path = NULL;
  g_autofree gchar *data = NULL;
  g_autoptr (UelHeader) h = NULL;
  const gchar *targets[] = { "f32", "f16", "bf16", "f8-e4m3", "f8-e5m2" };
  const UelDType target_dtypes[] = { UEL_DTYPE_F32, UEL_DTYPE_F16,
    UEL_DTYPE_BF16, UEL_DTYPE_F8_E4M3, UEL_DTYPE_F8_E5M2
  };
  gsize len;

  if (!need_device ())
    return;
  path = write_float_model ();
  h = uel_header_open (path, NULL);
  g_assert_true (g_file_get_contents (path, &data, &len, NULL));

  for (guint t = 0; t < G_N_ELEMENTS (targets); t++) {
    for (guint chunked = 0; chunked < 2; chunked++) {
      g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" %s "
          "! uelpin ! uelcudaupload name=up convert-to=%s ! fakesink "
          "name=sink", path, chunked ? "chunk-size=4099" : "", targets[t]);
      Result r = run (launch);
      guint converted = 0;

      g_assert_cmpuint (r.bufs->len, ==, 8);
      for (guint i = 0; i < r.bufs->len; i++) {
        GstBuffer *buf = g_ptr_array_index (r.bufs, i);
        UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
        const UelTensorInfo *info = uel_header_get_tensor (h, i);
        UelDType to = target_dtypes[t];
        gboolean conv = uel_convert_supported (info->dtype, to)
            && info->dtype != to;
        g_autofree guint8 *expect = NULL;
        gsize expect_len = info->n_bytes;
        GstMapInfo map;

        if (conv) {
          GError *err = NULL;
          expect_len = uel_convert_output_size (info->dtype, to,
              info->n_bytes);
          expect = g_malloc (expect_len);
          g_assert_true (uel_convert_cpu (info->dtype, to,
                  data + info->file_offset, expect, info->n_elements, &err));
          g_assert_no_error (err);
          converted++;
        } else {
          expect = g_memdup2 (data + info->file_offset, info->n_bytes);
        }
        g_assert_cmpuint (meta->dtype, ==, conv ? to : info->dtype);
        g_assert_cmpuint (meta->n_bytes, ==, expect_len);
        g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
        g_assert_cmpmem (map.data, map.size, expect, expect_len);
        gst_buffer_unmap (buf, &map);
      }
      g_assert_cmpuint (uel_test_stat (r.up_stats, "converted"), ==, converted);
      result_clear (&r);
    }
  }
}

/* device memory comes back: ten runs leave the free memory where it was */
static void
test_no_leak (void)
{
  g_autofree gchar *path = NULL;
  g_autofree gchar *launch = NULL;
  guint64 before, after, total;
  GError *err = NULL;

  if (!need_device ())
    return;
  path = write_model ();
  launch = g_strdup_printf ("uelsrc location=\"%s\" chunk-size=1000000 ! "
      "uelqueue ! uelpin ! uelcudaupload name=up ! fakesink name=sink", path);
  {
    Result r = run (launch);
    result_clear (&r);
  }
  g_assert_true (uel_cuda_device_memory (-1, &before, &total, &err));
  for (guint i = 0; i < 10; i++) {
    Result r = run (launch);
    g_assert_cmpuint (r.bufs->len, >, 0);
    result_clear (&r);
  }
  g_assert_true (uel_cuda_device_memory (-1, &after, &total, &err));
  g_test_message ("device memory free: %" G_GUINT64_FORMAT " before, %"
      G_GUINT64_FORMAT " after", before, after);
  /* a leak of even one run would be 20 MiB */
  g_assert_cmpuint (after + 4 * MiB, >=, before);
}

typedef struct
{
  GstElement *up;
  gint stop;
  guint reads;
} StatsPoll;

static gpointer
poll_stats (gpointer data)
{
  StatsPoll *sp = data;

  while (!g_atomic_int_get (&sp->stop)) {
    GstStructure *s = NULL;

    g_object_get (sp->up, "stats", &s, NULL);
    g_assert_nonnull (s);
    gst_structure_free (s);
    sp->reads++;
  }
  return NULL;
}

/* The application reads the stats while the pipeline starts and stops
 * (the uploader is made at start and freed at stop): never a read of a
 * freed uploader, and after stop the last run's counts remain. */
static void
test_stats_while_stopping (void)
{
  g_autofree gchar *path = NULL;
  g_autofree gchar *launch = NULL;
  StatsPoll sp = { NULL, 0, 0 };
  GstElement *p;
  GThread *t;
  guint64 tensors = 0;
  GstStructure *s = NULL;

  if (!need_device ())
    return;
  path = write_model ();
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelcudaupload name=up "
      "! fakesink name=sink", path);
  p = gst_parse_launch (launch, NULL);
  sp.up = gst_bin_get_by_name (GST_BIN (p), "up");
  t = g_thread_new ("stats", poll_stats, &sp);
  for (guint i = 0; i < 20; i++) {
    GstMessage *msg;

    gst_element_set_state (p, GST_STATE_PLAYING);
    msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p),
        GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, GST_MESSAGE_EOS);
    gst_message_unref (msg);
    g_assert_cmpint (gst_element_set_state (p, GST_STATE_NULL), ==,
        GST_STATE_CHANGE_SUCCESS);
  }
  g_atomic_int_set (&sp.stop, 1);
  g_thread_join (t);
  g_assert_cmpuint (sp.reads, >, 0);
  g_object_get (sp.up, "stats", &s, NULL);
  g_assert_true (gst_structure_get_uint64 (s, "tensors", &tensors));
  g_assert_cmpuint (tensors, ==, G_N_ELEMENTS (dtypes) + 5);
  gst_structure_free (s);
  gst_object_unref (sp.up);
  gst_object_unref (p);
}

static void
test_bad_device_id (void)
{
  g_autofree gchar *path = NULL;
  g_autofree gchar *launch = NULL;
  GError *err;

  if (!need_device ())
    return;
  path = write_model ();
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! uelcudaupload "
      "cuda-device-id=99 fallback=error ! fakesink", path);
  err = uel_test_run_pipeline (launch, NULL);
  g_assert_error (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (err->message, "99"));
  g_error_free (err);
}

typedef struct
{
  GstAllocator *pool;
  guint n_buffers;
  guint n_shared;
} SharedCount;

static GstPadProbeReturn
count_shared (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  SharedCount *c = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  GstMemory *mem;

  /* an empty tensor has no memory */
  if (gst_buffer_n_memory (buf) == 0)
    return GST_PAD_PROBE_OK;
  mem = gst_buffer_peek_memory (buf, 0);
  c->n_buffers++;
  if (uel_memory_is_pinned (mem)
      && uel_pinned_allocator_shares_pool (UEL_PINNED_ALLOCATOR
          (mem->allocator), UEL_PINNED_ALLOCATOR (c->pool)))
    c->n_shared++;
  return GST_PAD_PROBE_OK;
}

/* without uelpin, uelsrc reads into the pool uelcudaupload proposes: the
 * application's, given as a context, in every pipeline */
static void
test_upload_shares_pool (void)
{
  g_autofree gchar *path = NULL;
  g_autofree gchar *launch = NULL;
  GstAllocator *pool;
  GstContext *ctx;

  if (!need_device ())
    return;
  path = write_model ();
  launch = g_strdup_printf ("uelsrc location=\"%s\" chunk-size=1000000 ! "
      "uelcudaupload name=up ! fakesink name=sink", path);
  pool = uel_pinned_allocator_new (64 * MiB, -1);
  ctx = uel_pinned_pool_context_new (UEL_PINNED_ALLOCATOR (pool));
  for (guint i = 0; i < 2; i++) {
    SharedCount c = { pool, 0, 0 };
    Result r = run_with (launch, ctx, count_shared, &c);

    g_assert_cmpuint (c.n_buffers, >, 0);
    /* small tensors are read by the streaming thread into the same pool */
    g_assert_cmpuint (c.n_shared, ==, c.n_buffers);
    g_assert_true (uel_pinned_allocator_is_device_pinned
        (UEL_PINNED_ALLOCATOR (pool)));
    check_device_tensors (r.bufs, path);
    result_clear (&r);
  }
  gst_context_unref (ctx);
  gst_object_unref (pool);
}

/* a tensor larger than the device: cudaMalloc fails, the pipeline stops
 * with an error naming device memory, nothing is left allocated.  The file
 * is sparse (zeros the writer counts but does not write): only its first
 * chunks are ever read. */
static void
test_device_memory_exhausted (void)
{
  g_autofree gchar *path = uel_test_path ("huge.safetensors");
  g_autofree gchar *launch = NULL;
  g_autoptr (UelWriter) w = NULL;
  guint64 before, after, total, n;
  GError *err = NULL;

  if (!need_device ())
    return;
  g_assert_true (uel_cuda_device_memory (-1, &before, &total, &err));
  n = total + 1024 * MiB;
  w = uel_writer_new (path, &err);
  g_assert_no_error (err);
  g_assert_true (uel_writer_add_tensor (w, "huge", UEL_DTYPE_U8, 1, &n,
          &err));
  g_assert_true (uel_writer_write_zeros (w, "huge", 0, n, &err));
  g_assert_true (uel_writer_finish (w, &err));
  g_assert_no_error (err);

  for (guint single = 0; single < 2; single++) {
    launch = g_strdup_printf ("uelsrc location=\"%s\" chunk-size=67108864 ! "
        "uelcudaupload fallback=error single-allocation=%s ! fakesink", path,
        single ? "true" : "false");
    err = uel_test_run_pipeline (launch, NULL);
    g_assert_nonnull (err);
    g_test_message ("single-allocation=%u: %s", single, err->message);
    g_assert_true (err->domain == GST_RESOURCE_ERROR);
    g_clear_error (&err);
    g_clear_pointer (&launch, g_free);
  }
  g_assert_true (uel_cuda_device_memory (-1, &after, &total, &err));
  g_assert_cmpuint (after + 4 * MiB, >=, before);
}

/* The device-memory checks (cudamem-checks.c) on the real device: they
 * reach the device side behind the allocator's back with this program's
 * own CUDA runtime, a second static copy that shares the primary context
 * (and so the device pointers) with the library's. */
#if HAVE_CUDA
static void
cuda_ok (cudaError_t err)
{
  if (err != cudaSuccess)
    g_error ("CUDA error %d: %s", (int) err, cudaGetErrorString (err));
}

static void
device_read (gpointer host, gconstpointer dev, gsize n)
{
  cuda_ok (cudaMemcpy (host, dev, n, cudaMemcpyDeviceToHost));
}

static void
device_write (gpointer dev, gconstpointer host, gsize n)
{
  cuda_ok (cudaMemcpy (dev, host, n, cudaMemcpyHostToDevice));
  cuda_ok (cudaDeviceSynchronize ());
}
#else
/* never called: without the toolkit need_device() skips every check */
static void
device_read (gpointer host, gconstpointer dev, gsize n)
{
  g_assert_not_reached ();
}

static void
device_write (gpointer dev, gconstpointer host, gsize n)
{
  g_assert_not_reached ();
}
#endif

/* an odd size of a few MiB: a download takes long enough for threads
 * mapping at once to meet */
static const UelCudaMemChecks device_checks = {
  "/gpu/memory", 8 * MiB + 3, need_device, device_read, device_write, NULL,
};

/* direct_gpu: device tensors with the file's bytes, held by the loader
 * until mark_processed; a stream whose slots are all held waits, and
 * stopping it does not */
static void
test_loader_direct_gpu (void)
{
  g_autofree gchar *path = NULL;
  g_autofree gchar *file = NULL;
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (UelTensorStream) stream = NULL;
  g_autoptr (GPtrArray) batch = NULL;
  g_auto (GStrv) keys = NULL;
  GError *err = NULL;
  guint n = 0;

  if (!need_device ())
    return;
  path = write_model ();
  g_assert_true (g_file_get_contents (path, &file, NULL, NULL));
  loader = uel_loader_new_full (path, FALSE, TRUE, FALSE, &err);
  g_assert_no_error (err);
  g_assert_true (uel_loader_get_direct_gpu (loader));
  g_assert_true (uel_loader_get_low_memory (loader));
  keys = uel_loader_keys (loader);

  stream = uel_loader_async_stream (loader, NULL, 2, 2, FALSE, &err);
  g_assert_no_error (err);
  while ((batch = uel_tensor_stream_next (stream, &err))) {
    for (guint i = 0; i < batch->len; i++) {
      GstBuffer *b = g_ptr_array_index (batch, i);
      UelTensorMeta *m = uel_buffer_get_tensor_meta (b);
      const UelTensorInfo *info = uel_tensor_meta_get_tensor_info (m);
      GstMapInfo map;

      g_assert_cmpuint (gst_buffer_get_size (b), ==, info->n_bytes);
      if (info->n_bytes == 0)
        continue;
      g_assert_true (uel_memory_is_cuda (gst_buffer_peek_memory (b, 0)));
      g_assert_true (gst_buffer_map (b, &map, GST_MAP_READ));
      g_assert_cmpmem (map.data, map.size, file + info->file_offset,
          info->n_bytes);
      gst_buffer_unmap (b, &map);
      g_assert_true (uel_loader_mark_processed (loader,
              uel_tensor_meta_get_name (m)));
      g_assert_false (uel_loader_mark_processed (loader,
              uel_tensor_meta_get_name (m)));
      n++;
    }
    g_clear_pointer (&batch, g_ptr_array_unref);
  }
  g_assert_no_error (err);
  g_assert_cmpuint (n, >, 0);
  g_clear_object (&stream);

  /* nothing marked processed: the stream stops at its slots, and a stop
   * wakes it */
  stream = uel_loader_async_stream (loader, NULL, 1, 1, FALSE, &err);
  g_assert_no_error (err);
  batch = uel_tensor_stream_next (stream, &err);
  g_assert_no_error (err);
  g_clear_pointer (&batch, g_ptr_array_unref);
  uel_tensor_stream_stop (stream);
  g_assert_null (uel_tensor_stream_next (stream, &err));
  g_assert_no_error (err);
}

/* several non-blocking transfers in flight at once, each waited for later:
 * pageable ones larger than the pinned pool (so staged in chunks), one
 * converted on the GPU, one freed without waiting */
static void
test_transfer_async (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = NULL;
  g_autoptr (UelLoader) loader = NULL;
  const gchar *names[] = { "big", "bf16", "small" };
  GstBuffer *in[G_N_ELEMENTS (names)];
  UelTransfer *t[G_N_ELEMENTS (names)];
  g_autoptr (UelTransfer) conv = NULL, dropped = NULL;
  g_autoptr (GstBuffer) f32 = NULL, warm = NULL;
  guint64 free0, free1, total, pinned, fallback;
  const gsize big = (gsize) UEL_TRANSFER_POOL_SIZE * 5 / 2 + 8;
  g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]", big);
  GError *err = NULL;

  if (!need_device ())
    return;
  path = uel_test_path ("transfer-async.safetensors");
  uel_test_builder_add (b, "big", "U8", shape, big, NULL);
  uel_test_builder_add (b, "bf16", "BF16", "[1048577]", 2097154, NULL);
  uel_test_builder_add (b, "small", "F32", "[3]", 12, NULL);
  uel_test_builder_write (b, path, NULL);
  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    in[i] = uel_loader_get_tensor (loader, names[i], &err);
    g_assert_no_error (err);
  }
  /* the pool and the context exist before the baseline */
  warm = uel_transfer_to_gpu_pinned (in[2], 0, UEL_DTYPE_INVALID, &err);
  g_assert_no_error (err);
  gst_clear_buffer (&warm);
  g_assert_true (uel_cuda_device_memory (0, &free0, &total, NULL));

  uel_pinned_transfer_reset_stats ();
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    t[i] = uel_transfer_to_gpu_pinned_async (in[i], 0, UEL_DTYPE_INVALID,
        &err);
    g_assert_no_error (err);
  }
  conv = uel_transfer_to_gpu_pinned_async (in[1], 0, UEL_DTYPE_F32, &err);
  g_assert_no_error (err);
  dropped = uel_transfer_to_gpu_pinned_async (in[0], 0, UEL_DTYPE_INVALID,
      &err);
  g_assert_no_error (err);
  g_clear_pointer (&dropped, uel_transfer_free);
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_assert_cmpuint (pinned + fallback, ==, 0);

  /* waited for in the reverse order */
  for (guint i = G_N_ELEMENTS (names); i-- > 0;) {
    g_autoptr (GstBuffer) out = uel_transfer_wait (t[i], &err);
    GstMapInfo a, h;

    g_assert_no_error (err);
    g_assert_true (uel_memory_is_cuda (gst_buffer_peek_memory (out, 0)));
    g_assert_true (gst_buffer_map (out, &a, GST_MAP_READ));
    g_assert_true (gst_buffer_map (in[i], &h, GST_MAP_READ));
    g_assert_cmpmem (a.data, a.size, h.data, h.size);
    gst_buffer_unmap (in[i], &h);
    gst_buffer_unmap (out, &a);
    uel_transfer_free (t[i]);
  }
  f32 = uel_transfer_wait (conv, &err);
  g_assert_no_error (err);
  {
    gsize n = gst_buffer_get_size (in[1]) / 2;
    g_autofree guint8 *ref = g_malloc (n * 4);
    GstMapInfo a, h;

    g_assert_true (gst_buffer_map (in[1], &h, GST_MAP_READ));
    g_assert_true (uel_convert_cpu (UEL_DTYPE_BF16, UEL_DTYPE_F32, h.data,
            ref, n, &err));
    g_assert_no_error (err);
    g_assert_true (gst_buffer_map (f32, &a, GST_MAP_READ));
    g_assert_cmpmem (a.data, a.size, ref, n * 4);
    gst_buffer_unmap (f32, &a);
    gst_buffer_unmap (in[1], &h);
  }
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_assert_cmpuint (pinned, ==, G_N_ELEMENTS (names) + 1);
  g_assert_cmpuint (fallback, ==, 0);

  gst_clear_buffer (&f32);
  g_clear_pointer (&conv, uel_transfer_free);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    g_assert_cmpint (GST_MINI_OBJECT_REFCOUNT_VALUE (in[i]), ==, 1);
    gst_buffer_unref (in[i]);
  }
  /* every device allocation went back (allowing the driver's rounding) */
  g_assert_true (uel_cuda_device_memory (0, &free1, &total, NULL));
  g_assert_cmpuint (free1 + 4 * MiB, >=, free0);
  uel_pinned_transfer_reset_stats ();
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/gpu/every-tensor-equals-the-file-bytes",
      test_exact_bytes);
  g_test_add_func ("/gpu/loader-direct-gpu-slots-until-mark-processed",
      test_loader_direct_gpu);
  g_test_add_func ("/gpu/conversion-matches-the-cpu-reference",
      test_convert_matches_cpu);
  g_test_add_func ("/gpu/repeated-runs-leak-no-device-memory", test_no_leak);
  g_test_add_func ("/gpu/bad-device-id-fails-clearly", test_bad_device_id);
  g_test_add_func ("/gpu/stats-read-while-stopping",
      test_stats_while_stopping);
  g_test_add_func ("/gpu/upload-draws-from-the-application-pool",
      test_upload_shares_pool);
  g_test_add_func ("/gpu/device-memory-exhausted-fails-clearly",
      test_device_memory_exhausted);
  g_test_add_func ("/gpu/transfer-async/several-in-flight-waited-for-later",
      test_transfer_async);
  uel_cudamem_checks_add (&device_checks);
  return g_test_run ();
}
