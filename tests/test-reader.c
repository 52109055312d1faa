/* gst-uel: the reading engine (UelReader): exact bytes whatever the way of
 * reading, a bounded number of open files, files that change under it
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-utils.h"

static const UelReadMethod methods[] = {
  UEL_READ_PREAD, UEL_READ_MMAP, UEL_READ_DIRECT
};

static const gchar *
method_name (UelReadMethod m)
{
  return m == UEL_READ_PREAD ? "pread" : m == UEL_READ_MMAP ? "mmap" :
      "direct";
}

/* the bytes of the files the tests read, each read once (no test
 * compares a file after changing it) */
static GHashTable *file_cache;

static const gchar *
file_data (const gchar * path, gsize * len)
{
  GBytes *bytes;

  if (!file_cache)
    file_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
        (GDestroyNotify) g_bytes_unref);
  bytes = g_hash_table_lookup (file_cache, path);
  if (!bytes) {
    gchar *data;
    gsize n;

    g_assert_true (g_file_get_contents (path, &data, &n, NULL));
    bytes = g_bytes_new_take (data, n);
    g_hash_table_insert (file_cache, g_strdup (path), bytes);
  }
  return g_bytes_get_data (bytes, len);
}

/* @buf holds exactly the bytes its meta says, from its file */
static void
assert_exact (GstBuffer * buf)
{
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
  const UelTensorInfo *info;
  const gchar *data;
  gsize len;
  GstMapInfo map;

  g_assert_nonnull (meta);
  info = uel_tensor_meta_get_tensor_info (meta);
  data = file_data (uel_tensor_meta_get_file (meta), &len);
  g_assert_cmpuint (GST_BUFFER_OFFSET (buf), ==, info->file_offset +
      meta->chunk_offset);
  g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
  g_assert_cmpuint (GST_BUFFER_OFFSET (buf) + map.size, <=, len);
  if (map.size)
    g_assert_cmpmem (map.data, map.size, data + GST_BUFFER_OFFSET (buf),
        map.size);
  gst_buffer_unmap (buf, &map);
}

/* Streams everything; returns the number of buffers, checking each and
 * that no more descriptors than @max_open (when not 0) are ever open, and
 * none once it stops (unless other threads are reading). */
static guint
stream_all (UelReader * r, guint max_open, gboolean alone)
{
  GError *err = NULL;
  GstBuffer *buf;
  guint n = 0;

  g_assert_false (uel_reader_is_started (r));
  g_assert_true (uel_reader_start (r, &err));
  g_assert_no_error (err);
  g_assert_true (uel_reader_is_started (r));
  while ((buf = uel_reader_next (r, &err))) {
    assert_exact (buf);
    if (max_open)
      g_assert_cmpuint (uel_reader_get_n_open_files (r), <=, max_open);
    gst_buffer_unref (buf);
    n++;
  }
  g_assert_no_error (err);
  uel_reader_stop (r);
  g_assert_false (uel_reader_is_started (r));
  if (alone)
    g_assert_cmpuint (uel_reader_get_n_open_files (r), ==, 0);
  return n;
}

/* every way of reading gives the file's bytes: methods, I/O threads,
 * chunks, a tensor large enough to be read in parallel parts */
static void
test_exact_bytes (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("exact.safetensors");
  g_autoptr (UelHeader) h = NULL;
  const guint64 chunks[] = { 0, 4096, 3 << 20 };

  uel_test_builder_add (b, "small", "U8", "[100]", 100, NULL);
  uel_test_builder_add (b, "f32", "F32", "[3]", 12, NULL);
  uel_test_builder_add (b, "empty", "F16", "[0]", 0, NULL);
  uel_test_builder_add (b, "large", "U8", "[20000000]", 20000000, NULL);
  uel_test_builder_add (b, "odd", "U8", "[4099]", 4099, NULL);
  uel_test_builder_write (b, path, NULL);
  h = uel_test_header_open (path);

  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    for (guint threads = 1; threads <= 3; threads += 2) {
      for (guint c = 0; c < G_N_ELEMENTS (chunks); c++) {
        g_autoptr (UelReader) r = uel_reader_new (h);
        guint n, expected = 0;

        uel_reader_set_method (r, methods[m]);
        uel_reader_set_io_threads (r, threads);
        uel_reader_set_chunk_size (r, chunks[c]);
        for (guint t = 0; t < uel_header_get_n_tensors (h); t++) {
          guint64 len = uel_header_get_tensor (h, t)->n_bytes;

          expected += chunks[c] && len > chunks[c] ?
              (guint) ((len + chunks[c] - 1) / chunks[c]) : 1;
        }
        n = stream_all (r, 0, TRUE);
        g_test_message ("%s, %u threads, chunks of %" G_GUINT64_FORMAT
            ": %u buffers", method_name (methods[m]), threads, chunks[c], n);
        g_assert_cmpuint (n, ==, expected);
      }
    }
  }
}

/* A checkpoint of 300 shards under a descriptor limit of 48 (an outside
 * test saw 3,000 shards fail under `ulimit -n 256` with "Too many open
 * files"): every way of reading, the loader and uelsrc get every tensor,
 * and the reader never holds more than its budget. */
static void
test_many_shards (void)
{
  const guint n_shards = 300;
  g_autofree gchar *index = NULL, *launch = NULL;
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (UelLoader) std = NULL, low = NULL;
  g_autoptr (UelTensorStream) stream = NULL;
  g_autoptr (GPtrArray) bufs = NULL;
  struct rlimit rl;
  GError *err = NULL;
  GPtrArray *batch;
  guint n = 0;

  if (!g_test_subprocess ()) {
    g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed ();
    return;
  }
  /* the checkpoint first: writing it needs no more than one file */
  index = uel_test_write_checkpoint ("many-shards", n_shards, 2, 5000);
  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &rl), ==, 0);
  rl.rlim_cur = 48;
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &rl), ==, 0);

  h = uel_test_header_open (index);
  g_assert_cmpuint (uel_header_get_n_files (h), ==, n_shards);
  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    g_autoptr (UelReader) r = uel_reader_new (h);

    g_assert_cmpuint (uel_reader_get_max_open_files (r), ==, 48 / 8);
    uel_reader_set_method (r, methods[m]);
    uel_reader_set_io_threads (r, 2);
    g_assert_cmpuint (stream_all (r, uel_reader_get_max_open_files (r), TRUE),
        ==,
        2 * n_shards);
  }

  /* random access, last to first */
  {
    g_autoptr (UelReader) r = uel_reader_new (h);

    for (guint i = uel_header_get_n_tensors (h); i-- > 0;) {
      GstBuffer *buf = uel_reader_read_tensor (r, i, &err);

      g_assert_no_error (err);
      assert_exact (buf);
      gst_buffer_unref (buf);
      g_assert_cmpuint (uel_reader_get_n_open_files (r), <=,
          uel_reader_get_max_open_files (r));
    }
  }

  /* the loader, in its three ways */
  std = uel_loader_new (index, FALSE, &err);
  g_assert_no_error (err);
  low = uel_loader_new (index, TRUE, &err);
  g_assert_no_error (err);
  for (guint i = 0; i < uel_header_get_n_tensors (h); i++) {
    const gchar *name = uel_header_get_tensor (h, i)->name;
    GstBuffer *a = uel_loader_get_tensor (std, name, &err);
    GstBuffer *b = uel_loader_get_tensor (low, name, &err);

    g_assert_no_error (err);
    assert_exact (a);
    assert_exact (b);
    gst_buffer_unref (a);
    gst_buffer_unref (b);
  }
  stream = uel_loader_async_stream (low, NULL, 7, 2, FALSE, &err);
  g_assert_no_error (err);
  while ((batch = uel_tensor_stream_next (stream, &err))) {
    n += batch->len;
    g_ptr_array_unref (batch);
  }
  g_assert_no_error (err);
  g_assert_cmpuint (n, ==, 2 * n_shards);

  /* and uelsrc */
  bufs = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  launch = g_strdup_printf ("uelsrc location=\"%s\" ! fakesink name=sink",
      index);
  err = uel_test_run_pipeline (launch, bufs);
  g_assert_no_error (err);
  g_assert_cmpuint (bufs->len, ==, 2 * n_shards);
  for (guint i = 0; i < bufs->len; i++)
    assert_exact (g_ptr_array_index (bufs, i));
}

/* A file rewritten in place while it is streamed (an outside test saw the
 * new bytes delivered silently): every later read is a FILE_CHANGED error
 * naming the file and the tensor; what came before was exact. */
static void
test_rewritten_in_place (void)
{
  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
    g_autofree gchar *path = g_strdup_printf ("%s/rewritten-%s.safetensors",
        uel_test_tmpdir (), method_name (methods[m]));
    g_autoptr (UelHeader) h = NULL;
    g_autoptr (UelReader) r = NULL;
    g_autofree gchar *expected = NULL;
    GError *err = NULL;
    GstBuffer *buf;
    guint delivered = 0;

    for (guint i = 0; i < 8; i++) {
      g_autofree gchar *name = g_strdup_printf ("t%u", i);
      uel_test_builder_add (b, name, "U8", "[65536]", 65536, NULL);
    }
    uel_test_builder_set_align (b, 8);
    uel_test_builder_write (b, path, NULL);
    h = uel_test_header_open (path);
    r = uel_reader_new (h);
    uel_reader_set_method (r, methods[m]);
    g_assert_true (uel_reader_start (r, &err));
    buf = uel_reader_next (r, &err);
    g_assert_no_error (err);
    assert_exact (buf);
    gst_buffer_unref (buf);

    uel_test_rewrite_in_place (path, 4096);
    /* what was read (and checked) before the change may still come, with
     * the bytes the file had then; the first read after it fails */
    while ((buf = uel_reader_next (r, &err))) {
      assert_exact (buf);
      delivered++;
      gst_buffer_unref (buf);
    }
    g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
    g_test_message ("%s: %u more, then %s", method_name (methods[m]),
        delivered, err->message);
    g_assert_cmpuint (delivered, <, 7);
    g_assert_nonnull (strstr (err->message, path));
    expected = g_strdup_printf ("tensor 't%u'", delivered + 1);
    g_assert_nonnull (strstr (err->message, expected));
    g_assert_nonnull (strstr (err->message, "modification time"));
    g_clear_error (&err);

    g_assert_null (uel_reader_read_tensor (r, 3, &err));
    g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
    g_assert_nonnull (strstr (err->message, "tensor 't3'"));
    g_clear_error (&err);
  }
}

typedef struct
{
  UelReader *reader;
  guint n;
  guint seed;
} Worker;

static gpointer
read_tensors (gpointer data)
{
  Worker *w = data;

  for (guint k = 0; k < 3 * w->n; k++) {
    guint i = (k * 7919 + w->seed) % w->n;
    GError *err = NULL;
    GstBuffer *buf = uel_reader_read_tensor (w->reader, i, &err);

    g_assert_no_error (err);
    g_assert_cmpuint (uel_buffer_get_tensor_meta (buf)->tensor_index, ==, i);
    assert_exact (buf);
    gst_buffer_unref (buf);
  }
  return NULL;
}

/* random reads from four threads at once, over more shards than the
 * reader keeps open, while the stream reads too */
static void
test_threads (void)
{
  g_autofree gchar *index = uel_test_write_checkpoint ("threads", 20, 3,
      10000);
  g_autoptr (UelHeader) h = uel_test_header_open (index);
  g_autoptr (UelReader) r = uel_reader_new (h);
  Worker w[4];
  GThread *threads[4];

  uel_reader_set_max_open_files (r, 2);
  g_assert_cmpuint (uel_reader_get_max_open_files (r), ==, 2);
  for (guint i = 0; i < 4; i++) {
    w[i] = (Worker) {
    r, uel_header_get_n_tensors (h), i};
    threads[i] = g_thread_new ("reader", read_tensors, &w[i]);
  }
  g_assert_cmpuint (stream_all (r, 0, FALSE), ==, 60);
  for (guint i = 0; i < 4; i++)
    g_thread_join (threads[i]);
  /* busy files may go over the budget; idle ones never stay */
  g_assert_cmpuint (uel_reader_get_n_open_files (r), <=, 2);
}

/* stopped and started again, a reader reads from the first tensor; one
 * given no tensors ends at once */
static void
test_restart_and_empty (void)
{
  g_autofree gchar *index = uel_test_write_checkpoint ("restart", 3, 4, 3000);
  g_autoptr (UelHeader) h = uel_test_header_open (index);
  g_autoptr (UelReader) r = uel_reader_new (h);
  g_autoptr (UelReader) none = uel_reader_new (h);
  const guint picked[] = { 11, 0, 5 };
  GError *err = NULL;

  for (guint round = 0; round < 2; round++) {
    GstBuffer *buf;

    g_assert_true (uel_reader_start (r, &err));
    buf = uel_reader_next (r, &err);
    g_assert_cmpuint (uel_buffer_get_tensor_meta (buf)->index, ==, 0);
    gst_buffer_unref (buf);
    uel_reader_stop (r);
  }
  g_assert_cmpuint (stream_all (r, 0, TRUE), ==, 12);

  uel_reader_set_tensors (r, picked, G_N_ELEMENTS (picked));
  g_assert_cmpuint (uel_reader_get_n_tensors (r), ==, 3);
  g_assert_cmpuint (uel_reader_get_total_bytes (r), ==, 9000);
  g_assert_cmpuint (stream_all (r, 0, TRUE), ==, 3);

  uel_reader_set_tensors (none, NULL, 0);
  g_assert_cmpuint (uel_reader_get_n_tensors (none), ==, 0);
  g_assert_cmpuint (stream_all (none, 0, TRUE), ==, 0);
}

int
main (int argc, char **argv)
{
  gint ret;

  uel_test_init (&argc, &argv);

  g_test_add_func ("/reader/exact-bytes-every-way", test_exact_bytes);
  g_test_add_func ("/reader/300-shards-under-a-limit-of-48-descriptors",
      test_many_shards);
  g_test_add_func ("/reader/file-rewritten-in-place-is-an-error",
      test_rewritten_in_place);
  g_test_add_func ("/reader/threads-read-while-it-streams", test_threads);
  g_test_add_func ("/reader/restarts-and-reads-what-it-is-given",
      test_restart_and_empty);
  ret = g_test_run ();
  g_clear_pointer (&file_cache, g_hash_table_unref);
  return ret;
}
