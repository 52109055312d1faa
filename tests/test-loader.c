/* gst-uel: the loader API (UelLoader, UelTensorStream), pinned transfers
 * and the dict ⇄ tensor calls, against what uelsrc delivers
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test-utils.h"

/* ------------------------------------------------------------------ */
/* sample files */

/* every kind of tensor the loader must describe: ranks 0 to 3, a zero-size
 * tensor, a dictionary, names with pattern characters and a comma */
/* The model of these tests, as the reference writes it; @in_order: the
 * tensors in the order below instead (an early writer's layout, where
 * the I32 'with,comma' lands misaligned after the 5 bytes before it) */
static gchar *
write_model_in (const gchar * name, gboolean in_order)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  gchar *path = uel_test_path (name);
  const gchar *dict = "{\"model_type\": \"llama\", \"bits\": 16}";

  uel_test_builder_set_metadata (b, "format", "pt");
  uel_test_builder_set_metadata (b, "note", "loader test");
  uel_test_builder_add (b, "embed.weight", "BF16", "[64,32]", 64 * 32 * 2,
      NULL);
  uel_test_builder_add (b, "layer.0.q", "F32", "[16,16]", 16 * 16 * 4, NULL);
  uel_test_builder_add (b, "layer.0.bias", "F16", "[16]", 32, NULL);
  uel_test_builder_add (b, "scalar", "F64", "[]", 8, NULL);
  uel_test_builder_add (b, "empty", "F32", "[0,4]", 0, NULL);
  uel_test_builder_add (b, "cube", "I8", "[2,3,4]", 24, NULL);
  uel_test_builder_add (b, "odd*name?", "U8", "[5]", 5, NULL);
  uel_test_builder_add (b, "with,comma", "I32", "[3]", 12, NULL);
  uel_test_builder_add (b, "config", "U8", "[35]", strlen (dict), dict);
  uel_test_builder_set_align (b, 8);
  if (in_order)
    uel_test_builder_keep_order (b);
  uel_test_builder_write (b, path, NULL);
  return path;
}

static gchar *
write_model (const gchar * name)
{
  return write_model_in (name, FALSE);
}

/* an index and two shards */
static gchar *
write_sharded (void)
{
  g_autofree gchar *s1 = uel_test_path ("model-00001-of-00002.safetensors");
  g_autofree gchar *s2 = uel_test_path ("model-00002-of-00002.safetensors");
  gchar *index = uel_test_path ("model.safetensors.index.json");
  const gchar *json = "{\"metadata\": {\"total_size\": 84}, \"weight_map\": "
      "{\"b.weight\": \"model-00002-of-00002.safetensors\", "
      "\"a.weight\": \"model-00001-of-00002.safetensors\", "
      "\"a.bias\": \"model-00001-of-00002.safetensors\"}}";
  g_autoptr (UelTestBuilder) b1 = uel_test_builder_new ();
  g_autoptr (UelTestBuilder) b2 = uel_test_builder_new ();

  uel_test_builder_add (b1, "a.weight", "F32", "[4,2]", 32, NULL);
  uel_test_builder_add (b1, "a.bias", "F32", "[4]", 16, NULL);
  uel_test_builder_write (b1, s1, NULL);
  uel_test_builder_add (b2, "b.weight", "BF16", "[3,6]", 36, NULL);
  uel_test_builder_write (b2, s2, NULL);
  uel_test_write_bytes (index, json, strlen (json));
  return index;
}

/* @n tensors of @size bytes each */
static gchar *
write_many (const gchar * name, guint n, gsize size)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]", size);
  gchar *path = uel_test_path (name);

  for (guint i = 0; i < n; i++) {
    g_autofree gchar *t = g_strdup_printf ("t.%04u", i);
    uel_test_builder_add (b, t, "U8", shape, size, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  return path;
}

/* what uelsrc delivers for @path */
static GPtrArray *
uelsrc_buffers (const gchar * path)
{
  GPtrArray *bufs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "fakesink name=sink", path);
  GError *err = uel_test_run_pipeline (launch, bufs);

  g_assert_no_error (err);
  return bufs;
}

static void
assert_same_bytes (GstBuffer * a, GstBuffer * b)
{
  GstMapInfo ma, mb;

  g_assert_true (gst_buffer_map (a, &ma, GST_MAP_READ));
  g_assert_true (gst_buffer_map (b, &mb, GST_MAP_READ));
  g_assert_cmpmem (ma.data, ma.size, mb.data, mb.size);
  gst_buffer_unmap (b, &mb);
  gst_buffer_unmap (a, &ma);
}

/* @buf is the tensor uelsrc delivered as @expected: same bytes, same
 * description */
static void
assert_same_tensor (GstBuffer * buf, GstBuffer * expected)
{
  UelTensorMeta *m = uel_buffer_get_tensor_meta (buf);
  UelTensorMeta *e = uel_buffer_get_tensor_meta (expected);
  const UelTensorInfo *info;
  gsize elem;
  GstMapInfo map;

  g_assert_nonnull (m);
  g_assert_nonnull (e);
  g_assert_cmpstr (uel_tensor_meta_get_name (m), ==,
      uel_tensor_meta_get_name (e));
  g_assert_cmpstr (uel_tensor_meta_get_file (m), ==,
      uel_tensor_meta_get_file (e));
  g_assert_cmpint (m->dtype, ==, e->dtype);
  g_assert_cmpuint (m->n_bytes, ==, e->n_bytes);
  g_assert_cmpuint (m->tensor_index, ==, e->tensor_index);
  g_assert_true (m->last_chunk);
  g_assert_cmpuint (uel_tensor_meta_get_file_offset (m), ==,
      uel_tensor_meta_get_file_offset (e));
  g_assert_cmpuint (GST_BUFFER_OFFSET (buf), ==, GST_BUFFER_OFFSET (expected));
  g_assert_cmpuint (GST_BUFFER_OFFSET_END (buf), ==,
      GST_BUFFER_OFFSET_END (expected));
  assert_same_bytes (buf, expected);

  /* aligned for its dtype, as uelsrc's */
  info = uel_tensor_meta_get_tensor_info (m);
  elem = MAX (uel_dtype_get_bits (info->dtype) / 8, 1);
  if (gst_buffer_get_size (buf)) {
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpuint (GPOINTER_TO_SIZE (map.data) % elem, ==, 0);
    gst_buffer_unmap (buf, &map);
  }
}

/* ------------------------------------------------------------------ */
/* every call, both modes */

static void
check_every_call (const gchar * path, gboolean low_memory)
{
  g_autoptr (GPtrArray) expected = uelsrc_buffers (path);
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (UelHeader) header = NULL;
  g_autoptr (GHashTable) all = NULL;
  g_auto (GStrv) keys = NULL;
  GError *err = NULL;
  GHashTableIter it;
  gpointer k, v;
  guint64 total = 0;

  header = uel_header_open (path, &err);
  g_assert_no_error (err);
  loader = uel_loader_new (path, low_memory, &err);
  g_assert_no_error (err);
  g_assert_nonnull (loader);
  g_assert_cmpstr (uel_loader_get_location (loader), ==, path);
  g_assert_cmpint (uel_loader_get_low_memory (loader), ==, low_memory);
  g_assert_cmpuint (uel_header_get_n_tensors (uel_loader_get_header (loader)),
      ==, expected->len);

  /* keys: every tensor, in the order uelsrc delivers them */
  keys = uel_loader_keys (loader);
  g_assert_cmpuint (g_strv_length (keys), ==, expected->len);
  for (guint i = 0; i < expected->len; i++) {
    UelTensorMeta *e = uel_buffer_get_tensor_meta (g_ptr_array_index
        (expected, i));
    g_assert_cmpstr (keys[i], ==, uel_tensor_meta_get_name (e));
    g_assert_true (uel_loader_contains (loader, keys[i]));
    total += e->n_bytes;
  }
  g_assert_false (uel_loader_contains (loader, "no such tensor"));

  /* metadata */
  g_assert_cmpuint (g_hash_table_size (uel_loader_get_metadata (loader)), ==,
      g_hash_table_size (uel_header_get_metadata (header)));
  g_hash_table_iter_init (&it, uel_header_get_metadata (header));
  while (g_hash_table_iter_next (&it, &k, &v))
    g_assert_cmpstr (g_hash_table_lookup (uel_loader_get_metadata (loader),
            k), ==, v);

  g_assert_cmpuint (uel_loader_get_preloaded_bytes (loader), ==,
      low_memory ? 0 : total);

  /* shape, ndim, dtype from the header; get_tensor as uelsrc */
  for (guint i = 0; i < expected->len; i++) {
    GstBuffer *e = g_ptr_array_index (expected, i);
    UelTensorMeta *em = uel_buffer_get_tensor_meta (e);
    const UelTensorInfo *ei = uel_tensor_meta_get_tensor_info (em);
    const UelTensorInfo *info;
    const guint64 *shape = NULL;
    guint n_dims = 99;
    g_autoptr (GstBuffer) buf = NULL;

    info = uel_loader_get_tensor_info (loader, keys[i], &err);
    g_assert_no_error (err);
    g_assert_cmpuint (info->file_offset, ==, ei->file_offset);
    g_assert_true (uel_loader_get_shape (loader, keys[i], &shape, &n_dims,
            &err));
    g_assert_no_error (err);
    g_assert_cmpuint (n_dims, ==, ei->n_dims);
    if (n_dims)
      g_assert_cmpmem (shape, n_dims * 8, ei->shape, ei->n_dims * 8);
    else
      g_assert_null (shape);
    g_assert_cmpint (uel_loader_get_ndim (loader, keys[i], &err), ==,
        (gint) ei->n_dims);
    g_assert_no_error (err);
    g_assert_cmpint (uel_loader_get_dtype (loader, keys[i], &err), ==,
        ei->dtype);
    g_assert_no_error (err);

    buf = uel_loader_get_tensor (loader, keys[i], &err);
    g_assert_no_error (err);
    assert_same_tensor (buf, e);
    g_assert_cmpuint (uel_buffer_get_tensor_meta (buf)->count, ==,
        expected->len);
  }

  /* load_all: every tensor by name */
  all = uel_loader_load_all (loader, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (g_hash_table_size (all), ==, expected->len);
  for (guint i = 0; i < expected->len; i++)
    assert_same_tensor (g_hash_table_lookup (all, keys[i]),
        g_ptr_array_index (expected, i));
  g_clear_pointer (&all, g_hash_table_unref);

  /* mark_processed frees what standard mode preloaded; the tensor can
   * still be asked for, and is read again */
  for (guint i = 0; i < expected->len; i++) {
    g_autoptr (GstBuffer) again = NULL;
    UelTensorMeta *em = uel_buffer_get_tensor_meta (g_ptr_array_index
        (expected, i));

    g_assert_cmpint (uel_loader_mark_processed (loader, keys[i]), ==,
        !low_memory);
    g_assert_false (uel_loader_mark_processed (loader, keys[i]));
    total -= em->n_bytes;
    g_assert_cmpuint (uel_loader_get_preloaded_bytes (loader), ==,
        low_memory ? 0 : total);
    again = uel_loader_get_tensor (loader, keys[i], &err);
    g_assert_no_error (err);
    assert_same_tensor (again, g_ptr_array_index (expected, i));
  }
  g_assert_cmpuint (uel_loader_get_preloaded_bytes (loader), ==, 0);

  /* an unknown name is an error in every call */
  g_assert_null (uel_loader_get_tensor (loader, "nope", &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "'nope'"));
  g_clear_error (&err);
  g_assert_null (uel_loader_get_tensor_info (loader, "nope", &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_false (uel_loader_get_shape (loader, "nope", NULL, NULL, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_cmpint (uel_loader_get_ndim (loader, "nope", &err), ==, -1);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_cmpint (uel_loader_get_dtype (loader, "nope", &err), ==,
      UEL_DTYPE_INVALID);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_false (uel_loader_mark_processed (loader, "nope"));
}

static void
test_standard_mode (void)
{
  g_autofree gchar *path = write_model ("standard.safetensors");

  check_every_call (path, FALSE);
}

static void
test_low_memory (void)
{
  g_autofree gchar *path = write_model ("low.safetensors");

  check_every_call (path, TRUE);
}

static void
test_sharded_both_modes (void)
{
  g_autofree gchar *index = write_sharded ();

  check_every_call (index, FALSE);
  check_every_call (index, TRUE);
}

static void
on_freed (gpointer data, GstMiniObject * obj)
{
  *(gboolean *) data = TRUE;
}

static void
test_mark_processed_frees (void)
{
  g_autofree gchar *path = write_model ("free.safetensors");
  g_autoptr (UelLoader) std = NULL, low = NULL;
  GError *err = NULL;
  GstBuffer *a, *b;
  gboolean freed = FALSE;

  /* standard mode: the loader's copy goes at mark_processed (of every
   * tensor read into the same block, small ones sharing one) */
  std = uel_loader_new (path, FALSE, &err);
  g_assert_no_error (err);
  a = uel_loader_get_tensor (std, "embed.weight", &err);
  g_assert_no_error (err);
  b = uel_loader_get_tensor (std, "embed.weight", &err);
  g_assert_no_error (err);
  /* views of the same preloaded bytes, read-only */
  {
    GstMapInfo ma, mb;
    /* the block, before a write replaces a's memory with a copy */
    GstMemory *block = gst_buffer_peek_memory (a, 0)->parent;
    g_auto (GStrv) keys = uel_loader_keys (std);

    g_assert_true (gst_buffer_map (a, &ma, GST_MAP_READ));
    g_assert_true (gst_buffer_map (b, &mb, GST_MAP_READ));
    g_assert_true (ma.data == mb.data);
    gst_buffer_unmap (a, &ma);
    /* writing gets a copy: the shared bytes stay as they were */
    g_assert_true (gst_buffer_map (a, &ma, GST_MAP_WRITE));
    g_assert_true (ma.data != mb.data);
    ma.data[0] ^= 0xff;
    g_assert_cmpint (ma.data[0], !=, mb.data[0]);
    gst_buffer_unmap (a, &ma);
    gst_buffer_unmap (b, &mb);
    g_assert_nonnull (block);
    gst_mini_object_weak_ref (GST_MINI_OBJECT (block), on_freed, &freed);
    gst_buffer_unref (a);
    gst_buffer_unref (b);
    g_assert_false (freed);
    for (guint i = 0; keys[i]; i++)
      g_assert_true (uel_loader_mark_processed (std, keys[i]));
    g_assert_true (freed);
    g_assert_false (uel_loader_mark_processed (std, "embed.weight"));
    g_assert_cmpuint (uel_loader_get_preloaded_bytes (std), ==, 0);
  }

  /* low-memory mode: the loader keeps nothing */
  low = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  a = uel_loader_get_tensor (low, "embed.weight", &err);
  b = uel_loader_get_tensor (low, "embed.weight", &err);
  g_assert_no_error (err);
  g_assert_true (a != b);
  freed = FALSE;
  gst_mini_object_weak_ref (GST_MINI_OBJECT (a), on_freed, &freed);
  gst_buffer_unref (a);
  g_assert_true (freed);
  gst_buffer_unref (b);
}

static void
test_errors (void)
{
  g_autofree gchar *missing = uel_test_path ("missing.safetensors");
  g_autofree gchar *bad = uel_test_path ("bad.safetensors");
  g_autofree gchar *path = write_model ("shrinks.safetensors");
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (UelHeader) h = NULL;
  GError *err = NULL, *expected = NULL;
  GStatBuf st;

  g_assert_null (uel_loader_new (missing, FALSE, &err));
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_clear_error (&err);

  /* the header's own validation error, unchanged */
  uel_test_write_safetensors (bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[0,4]}}", "abcd", 4);
  h = uel_header_open (bad, &expected);
  g_assert_null (h);
  g_assert_null (uel_loader_new (bad, TRUE, &err));
  g_assert_error (err, UEL_ERROR, expected->code);
  g_assert_cmpstr (err->message, ==, expected->message);
  g_clear_error (&err);
  g_clear_error (&expected);

  /* a file that shrinks under a low-memory loader: an error, not a short
   * tensor */
  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (truncate (path, st.st_size / 2), ==, 0);
  g_assert_null (uel_loader_get_tensor (loader, "config", &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
  g_assert_nonnull (strstr (err->message, "config"));
  g_clear_error (&err);
  /* and a standard-mode loader refuses it */
  g_assert_null (uel_loader_new (path, FALSE, &err));
  g_assert_nonnull (err);
  g_clear_error (&err);
}

static void
test_gobject (void)
{
  g_autofree gchar *path = write_model ("gobject.safetensors");
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (UelHeader) header = NULL;
  g_autofree gchar *location = NULL;
  gboolean low = FALSE;
  GError *err = NULL;

  /* as a binding would construct it */
  loader = g_object_new (UEL_TYPE_LOADER, "location", path, "low-memory",
      TRUE, NULL);
  g_assert_true (g_initable_init (G_INITABLE (loader), NULL, &err));
  g_assert_no_error (err);
  g_object_get (loader, "location", &location, "low-memory", &low, "header",
      &header, NULL);
  g_assert_cmpstr (location, ==, path);
  g_assert_true (low);
  g_assert_true (header == uel_loader_get_header (loader));
  g_assert_cmpuint (uel_header_get_n_tensors (header), ==, 9);
}

/* ------------------------------------------------------------------ */
/* the stream */

static GPtrArray *
stream_all (UelTensorStream * stream, guint batch_size, guint * n_batches)
{
  GPtrArray *all = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  GPtrArray *batch;
  GError *err = NULL;

  *n_batches = 0;
  while ((batch = uel_tensor_stream_next (stream, &err))) {
    g_assert_cmpuint (batch->len, >, 0);
    g_assert_cmpuint (batch->len, <=, batch_size);
    /* only the last batch may be short */
    g_assert_cmpuint (all->len % batch_size, ==, 0);
    for (guint i = 0; i < batch->len; i++)
      g_ptr_array_add (all, gst_buffer_ref (g_ptr_array_index (batch, i)));
    g_ptr_array_unref (batch);
    (*n_batches)++;
  }
  g_assert_no_error (err);
  /* the end stays the end */
  g_assert_null (uel_tensor_stream_next (stream, &err));
  g_assert_no_error (err);
  return all;
}

static void
test_stream_batches (void)
{
  g_autofree gchar *path = write_model ("stream.safetensors");
  g_autoptr (GPtrArray) expected = uelsrc_buffers (path);
  g_autoptr (UelLoader) loader = NULL;
  GError *err = NULL;

  for (gint low = 0; low < 2; low++) {
    loader = uel_loader_new (path, low, &err);
    g_assert_no_error (err);
    for (guint batch_size = 1; batch_size <= 4; batch_size++) {
      g_autoptr (UelTensorStream) stream = NULL;
      g_autoptr (GPtrArray) got = NULL;
      UelTensorStreamStats stats;
      guint n_batches;

      stream = uel_loader_async_stream (loader, NULL, batch_size, 2, FALSE,
          &err);
      g_assert_no_error (err);
      got = stream_all (stream, batch_size, &n_batches);
      g_assert_cmpuint (got->len, ==, expected->len);
      g_assert_cmpuint (n_batches, ==,
          (expected->len + batch_size - 1) / batch_size);
      for (guint i = 0; i < got->len; i++)
        assert_same_tensor (g_ptr_array_index (got, i),
            g_ptr_array_index (expected, i));
      uel_tensor_stream_get_stats (stream, &stats);
      g_assert_cmpuint (stats.batches, ==, n_batches);
      g_assert_cmpuint (stats.tensors, ==, expected->len);
      g_assert_cmpuint (stats.pinned_pool_bytes, ==, 0);
    }
    g_clear_object (&loader);
  }
}

static void
test_stream_selects_keys (void)
{
  g_autofree gchar *path = write_model ("select.safetensors");
  g_autoptr (UelLoader) loader = NULL;
  GError *err = NULL;
  /* out of order, repeated, with pattern characters and a comma */
  const gchar *keys[] = { "config", "odd*name?", "with,comma", "layer.0.q",
    "config", NULL
  };
  /* file order: the reference's, by dtype (F32, I32, U8) then name */
  const gchar *order[] = { "layer.0.q", "with,comma", "config", "odd*name?" };
  const gchar *plain[] = { "scalar", "cube", NULL };
  const gchar *none[] = { NULL };
  const gchar *unknown[] = { "cube", "no such", NULL };

  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);

  for (guint round = 0; round < 2; round++) {
    const gchar *const *ask = round ? plain : keys;
    g_autoptr (UelTensorStream) stream = NULL;
    g_autoptr (GPtrArray) got = NULL;
    guint n_batches;

    stream = uel_loader_async_stream (loader, ask, 2, 1, FALSE, &err);
    g_assert_no_error (err);
    got = stream_all (stream, 2, &n_batches);
    g_assert_cmpuint (got->len, ==, round ? 2 : G_N_ELEMENTS (order));
    for (guint i = 0; i < got->len; i++) {
      GstBuffer *buf = g_ptr_array_index (got, i);
      g_autoptr (GstBuffer) direct = NULL;
      const gchar *name =
          uel_tensor_meta_get_name (uel_buffer_get_tensor_meta (buf));

      g_assert_cmpstr (name, ==, round ? (i ? "cube" : "scalar") : order[i]);
      direct = uel_loader_get_tensor (loader, name, &err);
      g_assert_no_error (err);
      assert_same_tensor (buf, direct);
    }
  }

  /* no keys: a stream that ends at once */
  {
    g_autoptr (UelTensorStream) stream = uel_loader_async_stream (loader,
        none, 2, 1, TRUE, &err);
    g_assert_no_error (err);
    g_assert_null (uel_tensor_stream_next (stream, &err));
    g_assert_no_error (err);
  }

  g_assert_null (uel_loader_async_stream (loader, unknown, 2, 1, FALSE,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "no such"));
  g_clear_error (&err);
  g_assert_null (uel_loader_async_stream (loader, NULL, 0, 1, FALSE, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
  g_assert_null (uel_loader_async_stream (loader, NULL, 1, 0, FALSE, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);
}

static void
test_stream_pins (void)
{
  g_autofree gchar *path = write_model ("pin.safetensors");
  g_autoptr (GPtrArray) expected = uelsrc_buffers (path);
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (UelTensorStream) stream = NULL;
  g_autoptr (GPtrArray) got = NULL;
  UelTensorStreamStats stats;
  GError *err = NULL;
  guint n_batches;

  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  stream = uel_loader_async_stream (loader, NULL, 3, 2, TRUE, &err);
  g_assert_no_error (err);
  got = stream_all (stream, 3, &n_batches);
  g_assert_cmpuint (got->len, ==, expected->len);
  for (guint i = 0; i < got->len; i++) {
    GstBuffer *buf = g_ptr_array_index (got, i);

    assert_same_tensor (buf, g_ptr_array_index (expected, i));
    /* in the pinned pool (page-aligned host memory without a GPU) */
    if (gst_buffer_get_size (buf))
      g_assert_true (uel_memory_is_pinned (gst_buffer_peek_memory (buf, 0)));
  }
  uel_tensor_stream_get_stats (stream, &stats);
  g_assert_cmpuint (stats.pinned_pool_bytes, >=, stats.peak_live_bytes);
}

/* The bound, as a Python `for batch in stream` loop uses a stream: the
 * previous batch is still held while the next one is fetched, and the
 * consumer is slower than the reader, so the queue fills up. */
static void
check_bounded (gboolean pin)
{
  const guint n = 120, batch_size = 4, prefetch = 2;
  const gsize size = 16 << 10;
  g_autofree gchar *path = write_many (pin ? "bounded-pin.safetensors" :
      "bounded.safetensors", n, size);
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (UelTensorStream) stream = NULL;
  GPtrArray *batch, *previous = NULL;
  UelTensorStreamStats stats;
  GError *err = NULL;
  guint64 bound, seen = 0;

  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  stream = uel_loader_async_stream (loader, NULL, batch_size, prefetch, pin,
      &err);
  g_assert_no_error (err);
  bound = uel_tensor_stream_get_max_live_tensors (stream);
  g_assert_cmpuint (bound, ==, batch_size * (prefetch + 2));

  while ((batch = uel_tensor_stream_next (stream, &err))) {
    g_usleep (5000);
    uel_tensor_stream_get_stats (stream, &stats);
    g_assert_cmpuint (stats.live_tensors, <=, bound);
    g_assert_cmpuint (stats.live_tensors, >=, batch->len);
    seen += batch->len;
    g_clear_pointer (&previous, g_ptr_array_unref);
    previous = batch;
  }
  g_assert_no_error (err);
  g_clear_pointer (&previous, g_ptr_array_unref);
  g_assert_cmpuint (seen, ==, n);

  uel_tensor_stream_get_stats (stream, &stats);
  g_test_message ("peak: %" G_GUINT64_FORMAT " tensors live, %"
      G_GUINT64_FORMAT " queued (bound %" G_GUINT64_FORMAT ")",
      stats.peak_live_tensors, stats.peak_queued_tensors, bound);
  g_assert_cmpuint (stats.peak_live_tensors, <=, bound);
  g_assert_cmpuint (stats.peak_live_bytes, <=, bound * size);
  /* the queue did fill (the reader was held back), and no further */
  g_assert_cmpuint (stats.peak_queued_tensors, ==, batch_size * prefetch);
  g_assert_cmpuint (stats.peak_live_tensors, >, batch_size * prefetch);
  /* everything was freed */
  g_assert_cmpuint (stats.live_tensors, ==, 0);
  g_assert_cmpuint (stats.live_bytes, ==, 0);
  if (pin)
    g_assert_cmpuint (stats.peak_live_bytes, <=, stats.pinned_pool_bytes);
}

static void
test_stream_bounded (void)
{
  check_bounded (FALSE);
}

static void
test_stream_bounded_pinned (void)
{
  check_bounded (TRUE);
}

static void
test_stream_error (void)
{
  g_autofree gchar *path = write_many ("truncated.safetensors", 64,
      256 << 10);
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (UelTensorStream) stream = NULL;
  GPtrArray *batch;
  GError *err = NULL;
  GStatBuf st;
  guint n = 0;

  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  stream = uel_loader_async_stream (loader, NULL, 1, 1, FALSE, &err);
  g_assert_no_error (err);
  batch = uel_tensor_stream_next (stream, &err);
  g_assert_no_error (err);
  g_ptr_array_unref (batch);

  /* the queue holds one tensor: most of the file is still to be read */
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (truncate (path, st.st_size / 2), ==, 0);
  while ((batch = uel_tensor_stream_next (stream, &err))) {
    g_ptr_array_unref (batch);
    n++;
  }
  g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
  g_assert_nonnull (strstr (err->message, path));
  g_assert_nonnull (strstr (err->message, "tensor '"));
  g_test_message ("after %u more tensors: %s", n, err->message);
  g_assert_cmpuint (n, <, 63);
  g_clear_error (&err);
  g_assert_null (uel_tensor_stream_next (stream, &err));
  g_assert_no_error (err);

  /* a file that changed before the stream starts */
  g_clear_object (&stream);
  stream = uel_loader_async_stream (loader, NULL, 1, 1, FALSE, &err);
  g_assert_null (stream);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
  g_clear_error (&err);
}

/* The stream is the library's own: a program linking libgstuel alone
 * streams with no GStreamer plugin at all, ours and appsink included. */
static void
test_stream_needs_no_plugin (void)
{
  if (g_test_subprocess ()) {
    g_autofree gchar *path = write_model ("noplugin.safetensors");
    g_autoptr (UelLoader) loader = uel_loader_new (path, TRUE, NULL);
    g_autoptr (UelTensorStream) stream = NULL;
    GstRegistry *registry = gst_registry_get ();
    GList *plugins = gst_registry_get_plugin_list (registry);
    GError *err = NULL;
    GPtrArray *batch;
    guint n = 0;

    for (GList * l = plugins; l; l = l->next)
      gst_registry_remove_plugin (registry, l->data);
    gst_plugin_list_free (plugins);
    g_assert_null (gst_element_factory_find ("uelsrc"));
    g_assert_null (gst_element_factory_find ("appsink"));

    for (gint pin = 0; pin < 2; pin++) {
      stream = uel_loader_async_stream (loader, NULL, 2, 1, pin, &err);
      g_assert_no_error (err);
      while ((batch = uel_tensor_stream_next (stream, &err))) {
        n += batch->len;
        g_ptr_array_unref (batch);
      }
      g_assert_no_error (err);
      g_clear_object (&stream);
    }
    g_assert_cmpuint (n, ==, 2 * uel_header_get_n_tensors
        (uel_loader_get_header (loader)));
    return;
  }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
test_stream_stops_early (void)
{
  g_autofree gchar *path = write_many ("early.safetensors", 50, 64 << 10);
  g_autoptr (UelLoader) loader = NULL;
  UelTensorStream *stream;
  GPtrArray *batch;
  GError *err = NULL;
  UelTensorStreamStats stats;

  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  for (gint pin = 0; pin < 2; pin++) {
    stream = uel_loader_async_stream (loader, NULL, 2, 2, pin, &err);
    g_assert_no_error (err);
    batch = uel_tensor_stream_next (stream, &err);
    g_assert_no_error (err);
    g_assert_cmpuint (batch->len, ==, 2);
    uel_tensor_stream_stop (stream);
    g_assert_null (uel_tensor_stream_next (stream, &err));
    g_assert_no_error (err);
    /* the caller's batch outlives the stream, even in the pinned pool */
    uel_tensor_stream_get_stats (stream, &stats);
    g_assert_cmpuint (stats.live_tensors, ==, 2);
    g_object_unref (stream);
    assert_same_bytes (g_ptr_array_index (batch, 1),
        g_ptr_array_index (batch, 1));
    g_ptr_array_unref (batch);
  }
}

/* A batch size of G_MAXUINT (an outside test: the first next() aborted
 * allocating 32 GiB of batch slots) is one batch of the whole stream, with
 * or without pinning; the bound says so. */
static void
test_stream_absurd_sizes (void)
{
  g_autofree gchar *path = write_model ("absurd.safetensors");
  g_autoptr (UelLoader) loader = NULL;
  GError *err = NULL;

  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  for (gint pin = 0; pin < 2; pin++) {
    g_autoptr (UelTensorStream) stream = NULL;
    GPtrArray *batch;

    stream = uel_loader_async_stream (loader, NULL, G_MAXUINT, G_MAXUINT, pin,
        &err);
    g_assert_no_error (err);
    g_assert_cmpuint (uel_tensor_stream_get_max_live_tensors (stream), ==, 9);
    batch = uel_tensor_stream_next (stream, &err);
    g_assert_no_error (err);
    g_assert_cmpuint (batch->len, ==, 9);
    g_ptr_array_unref (batch);
    g_assert_null (uel_tensor_stream_next (stream, &err));
    g_assert_no_error (err);
  }
}

/* Fifty thousand keys, given last to first, are looked up as names: each
 * streamed once, in stream order (an outside test: 31 s for 50,000 keys
 * passed on as patterns). */
static void
test_stream_many_keys (void)
{
  const guint n = 100000, n_keys = 50000;
  g_autofree gchar *path = uel_test_path ("many-keys.safetensors");
  g_autofree const gchar **keys = g_new0 (const gchar *, n_keys + 1);
  g_auto (GStrv) names = NULL;
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (UelTensorStream) stream = NULL;
  GPtrArray *batch;
  GError *err = NULL;
  guint seen = 0;

  uel_test_write_one_byte_tensors (path, n);

  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  names = uel_loader_keys (loader);
  for (guint k = 0; k < n_keys; k++)
    keys[k] = names[(n_keys - 1 - k) * 2];
  stream = uel_loader_async_stream (loader, keys, 64, 2, FALSE, &err);
  g_assert_no_error (err);
  while ((batch = uel_tensor_stream_next (stream, &err))) {
    for (guint i = 0; i < batch->len; i++) {
      GstBuffer *buf = g_ptr_array_index (batch, i);
      UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
      guint8 byte;

      g_assert_cmpstr (uel_tensor_meta_get_name (meta), ==,
          names[seen * 2]);
      g_assert_cmpuint (gst_buffer_extract (buf, 0, &byte, 1), ==, 1);
      g_assert_cmpuint (byte, ==, (guint8) (seen * 2));
      seen++;
    }
    g_ptr_array_unref (batch);
  }
  g_assert_no_error (err);
  g_assert_cmpuint (seen, ==, n_keys);
}

/* Standard mode holds a small tensor in a shared block, not in a page and
 * a buffer of its own: 200,000 one-byte tensors take less than 512 bytes
 * each beyond their header (an outside test: 4.7 GB for a million, about
 * 4.7 KiB each).  In a fresh process, on its resident memory; skipped
 * under AddressSanitizer, whose redzones would not fit. */
static void
test_standard_mode_small_tensors (void)
{
#if defined(__SANITIZE_ADDRESS__)
  g_test_skip ("AddressSanitizer's redzones make every allocation larger");
#else
  const guint n = 200000;
  g_autofree gchar *path = NULL;
  g_autoptr (UelLoader) low = NULL, loader = NULL;
  gint64 before, header_cost, loader_cost;
  GError *err = NULL;

  if (!g_test_subprocess ()) {
    g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
    g_test_trap_assert_passed ();
    return;
  }
  path = uel_test_path ("small-tensors.safetensors");
  uel_test_write_one_byte_tensors (path, n);
  /* what a loader that reads nothing costs (its header), then one that
   * reads every tensor */
  before = uel_test_resident_bytes ();
  low = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  header_cost = uel_test_resident_bytes () - before;
  before = uel_test_resident_bytes ();
  loader = uel_loader_new (path, FALSE, &err);
  g_assert_no_error (err);
  loader_cost = uel_test_resident_bytes () - before;
  g_test_message ("%u one-byte tensors: low-memory loader %.0f bytes each, "
      "standard loader %.0f", n, (gdouble) header_cost / n,
      (gdouble) loader_cost / n);
  g_assert_cmpuint (uel_loader_get_preloaded_bytes (loader), ==, n);
  g_assert_cmpint (loader_cost, <=, header_cost + (gint64) n * 512);
#endif
}

/* ------------------------------------------------------------------ */
/* pinned transfers */

static GstBuffer *
bf16_tensor (UelLoader * loader)
{
  GError *err = NULL;
  GstBuffer *buf = uel_loader_get_tensor (loader, "embed.weight", &err);

  g_assert_no_error (err);
  return buf;
}

/* @f32 holds the bits the CPU reference makes of the BF16 tensor @bf16 */
static void
assert_bf16_as_f32 (GstBuffer * f32, GstBuffer * bf16)
{
  g_autofree guint8 *ref = g_malloc (gst_buffer_get_size (bf16) * 2);
  GError *err = NULL;
  GstMapInfo src, map;

  g_assert_true (gst_buffer_map (bf16, &src, GST_MAP_READ));
  g_assert_true (uel_convert_cpu (UEL_DTYPE_BF16, UEL_DTYPE_F32, src.data,
          ref, src.size / 2, &err));
  g_assert_no_error (err);
  g_assert_true (gst_buffer_map (f32, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size, ref, src.size * 2);
  gst_buffer_unmap (f32, &map);
  gst_buffer_unmap (bf16, &src);
}

static void
test_transfer (void)
{
  g_autofree gchar *path = write_model ("transfer.safetensors");
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (GstBuffer) in = NULL, out = NULL, f32 = NULL, chunk = NULL;
  gboolean have_gpu = uel_cuda_device_check (0, NULL);
  guint64 pinned, fallback;
  GError *err = NULL;
  UelTensorMeta *m;

  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  in = bf16_tensor (loader);

  uel_pinned_transfer_reset_stats ();
  out = uel_transfer_to_gpu_pinned (in, 0, UEL_DTYPE_INVALID, &err);
  g_assert_no_error (err);
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  if (have_gpu) {
    g_assert_true (uel_memory_is_cuda (gst_buffer_peek_memory (out, 0)));
    g_assert_cmpuint (pinned, ==, 1);
    g_assert_cmpuint (fallback, ==, 0);
  } else {
    /* the graceful fallback: the same host buffer, counted */
    g_assert_true (out == in);
    g_assert_cmpuint (pinned, ==, 0);
    g_assert_cmpuint (fallback, ==, 1);
  }
  /* mapping without UEL_MAP_CUDA gives the bytes, on a device too */
  assert_same_bytes (out, in);
  g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
          (out)), ==, "embed.weight");

  /* with a conversion: the bits of the CPU reference */
  f32 = uel_transfer_to_gpu_pinned (in, 0, UEL_DTYPE_F32, &err);
  g_assert_no_error (err);
  m = uel_buffer_get_tensor_meta (f32);
  g_assert_cmpint (m->dtype, ==, UEL_DTYPE_F32);
  g_assert_cmpuint (m->n_bytes, ==, gst_buffer_get_size (in) * 2);
  g_assert_cmpuint (gst_buffer_get_size (f32), ==,
      gst_buffer_get_size (in) * 2);
  assert_bf16_as_f32 (f32, in);
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_assert_cmpuint (pinned + fallback, ==, 2);

  /* a buffer without a meta is bytes; U8 cannot become F32 */
  {
    g_autoptr (GstBuffer) raw = gst_buffer_new_allocate (NULL, 100, NULL);
    g_autoptr (GstBuffer) moved = NULL;

    gst_buffer_memset (raw, 0, 7, 100);
    moved = uel_transfer_to_gpu_pinned (raw, -1, UEL_DTYPE_INVALID, &err);
    g_assert_no_error (err);
    assert_same_bytes (moved, raw);
    g_assert_null (uel_transfer_to_gpu_pinned (raw, -1, UEL_DTYPE_F32,
            &err));
    g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
    g_clear_error (&err);
  }

  /* a chunk is not a tensor */
  chunk = gst_buffer_copy_region (in, GST_BUFFER_COPY_ALL, 0, 64);
  uel_buffer_get_tensor_meta (chunk)->last_chunk = FALSE;
  g_assert_null (uel_transfer_to_gpu_pinned (chunk, 0, UEL_DTYPE_INVALID,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);

  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_assert_cmpuint (pinned + fallback, ==, 3);

  if (have_gpu) {
    /* larger than the pinned pool: staged through it in chunks */
    g_autofree gchar *big = uel_test_path ("transfer-big.safetensors");
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
    g_autoptr (UelLoader) big_loader = NULL;
    g_autoptr (GstBuffer) host = NULL, dev = NULL;
    const gsize n = (gsize) UEL_TRANSFER_POOL_SIZE * 3 / 2 + 4096;
    g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]", n);

    uel_test_builder_add (b, "big", "U8", shape, n, NULL);
    uel_test_builder_write (b, big, NULL);
    big_loader = uel_loader_new (big, TRUE, &err);
    g_assert_no_error (err);
    host = uel_loader_get_tensor (big_loader, "big", &err);
    g_assert_no_error (err);
    dev = uel_transfer_to_gpu_pinned (host, 0, UEL_DTYPE_INVALID, &err);
    g_assert_no_error (err);
    g_assert_true (uel_memory_is_cuda (gst_buffer_peek_memory (dev, 0)));
    assert_same_bytes (dev, host);
    uel_pinned_transfer_get_stats (&pinned, &fallback);
    g_assert_cmpuint (pinned, ==, 4);
  }
  uel_pinned_transfer_reset_stats ();
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_assert_cmpuint (pinned, ==, 0);
  g_assert_cmpuint (fallback, ==, 0);
}

/* the BF16 tensor of a new model, read with the loader; the stats zeroed */
static GstBuffer *
transfer_input (const gchar * name)
{
  g_autofree gchar *path = write_model (name);
  g_autoptr (UelLoader) loader = NULL;
  GError *err = NULL;

  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  uel_pinned_transfer_reset_stats ();
  return bf16_tensor (loader);
}

/* the non-blocking variant: without a device, settled by the call itself */
static void
test_transfer_async (void)
{
  g_autoptr (GstBuffer) in = transfer_input ("transfer-async.safetensors");
  g_autoptr (GstBuffer) out = NULL, again = NULL, f32 = NULL;
  g_autoptr (UelTransfer) t = NULL, conv = NULL;
  gboolean have_gpu = uel_cuda_device_check (0, NULL);
  guint64 pinned, fallback;
  GError *err = NULL;

  t = uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_INVALID, &err);
  g_assert_no_error (err);
  g_assert_nonnull (t);
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  if (!have_gpu) {
    /* counted by the call: the outcome is known at once */
    g_assert_cmpuint (pinned, ==, 0);
    g_assert_cmpuint (fallback, ==, 1);
  }
  out = uel_transfer_wait (t, &err);
  g_assert_no_error (err);
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_assert_cmpuint (pinned + fallback, ==, 1);
  if (have_gpu) {
    g_assert_true (uel_memory_is_cuda (gst_buffer_peek_memory (out, 0)));
    g_assert_cmpuint (pinned, ==, 1);
  } else {
    g_assert_true (out == in);
  }
  assert_same_bytes (out, in);
  g_assert_cmpstr (uel_tensor_meta_get_name (uel_buffer_get_tensor_meta
          (out)), ==, "embed.weight");

  /* waiting again gives the same tensor again, and counts nothing */
  again = uel_transfer_wait (t, &err);
  g_assert_no_error (err);
  g_assert_true (again == out);
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_assert_cmpuint (pinned + fallback, ==, 1);

  /* a conversion: the CPU reference's bits, from either side */
  conv = uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_F32, &err);
  g_assert_no_error (err);
  f32 = uel_transfer_wait (conv, &err);
  g_assert_no_error (err);
  g_assert_cmpint (uel_buffer_get_tensor_meta (f32)->dtype, ==,
      UEL_DTYPE_F32);
  assert_bf16_as_f32 (f32, in);
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_assert_cmpuint (pinned + fallback, ==, 2);
  uel_pinned_transfer_reset_stats ();
}

/* what a caller may get wrong: nothing leaks (the sanitizer build checks) */
static void
test_transfer_async_misuse (void)
{
  g_autoptr (GstBuffer) in = transfer_input ("transfer-misuse.safetensors");
  g_autoptr (GstBuffer) chunk = NULL;
  gboolean have_gpu = uel_cuda_device_check (0, NULL);
  guint64 pinned, fallback;
  UelTransfer *t;
  GError *err = NULL;

  /* freed without waiting: the source and the copies are released; on a
   * device nothing is counted, no tensor came out */
  t = uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_INVALID, &err);
  g_assert_no_error (err);
  uel_transfer_free (t);
  t = uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_F16, &err);
  g_assert_no_error (err);
  uel_transfer_free (t);
  uel_pinned_transfer_get_stats (&pinned, &fallback);
  g_assert_cmpuint (pinned, ==, 0);
  g_assert_cmpuint (fallback, ==, have_gpu ? 0 : 2);
  /* the transfers held references to @in, and gave them back */
  g_assert_cmpint (GST_MINI_OBJECT_REFCOUNT_VALUE (in), ==, 1);
  uel_transfer_free (NULL);

  /* refused at the call, with no transfer to free */
  chunk = gst_buffer_copy_region (in, GST_BUFFER_COPY_ALL, 0, 64);
  uel_buffer_get_tensor_meta (chunk)->last_chunk = FALSE;
  g_assert_null (uel_transfer_to_gpu_pinned_async (chunk, 0,
          UEL_DTYPE_INVALID, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "'embed.weight'"));
  g_clear_error (&err);
  g_assert_null (uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_I32,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "'embed.weight'"));
  g_clear_error (&err);

  /* waited for twice, then freed: the result's references balance */
  t = uel_transfer_to_gpu_pinned_async (in, 0, UEL_DTYPE_INVALID, &err);
  g_assert_no_error (err);
  {
    g_autoptr (GstBuffer) a = uel_transfer_wait (t, &err);
    g_autoptr (GstBuffer) b = NULL;

    g_assert_no_error (err);
    b = uel_transfer_wait (t, &err);
    g_assert_no_error (err);
    g_assert_true (a == b);
    uel_transfer_free (t);
    /* the caller's two references outlive the transfer */
    g_assert_cmpint (GST_MINI_OBJECT_REFCOUNT_VALUE (a), ==,
        have_gpu ? 2 : 3);
  }
  g_assert_cmpint (GST_MINI_OBJECT_REFCOUNT_VALUE (in), ==, 1);
  uel_pinned_transfer_reset_stats ();
}

/* ------------------------------------------------------------------ */
/* dictionaries */

static void
test_dict_round_trip (void)
{
  g_autofree gchar *path = write_model ("dict.safetensors");
  g_autoptr (UelLoader) loader = NULL;
  g_autoptr (GstBuffer) tensor = NULL, from_file = NULL, not_u8 = NULL;
  g_autoptr (JsonNode) dict = NULL, back = NULL, cfg = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  JsonObject *o;
  GError *err = NULL;
  GstMapInfo map;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "param");
  json_builder_add_double_value (b, 1.0);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, "test");
  json_builder_end_object (b);
  dict = json_builder_get_root (b);

  tensor = uel_dict_to_tensor (dict, &err);
  g_assert_no_error (err);
  g_assert_true (gst_buffer_map (tensor, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size, "{\"param\":1.0,\"name\":\"test\"}",
      27);
  gst_buffer_unmap (tensor, &map);
  back = uel_tensor_to_dict (tensor, &err);
  g_assert_no_error (err);
  g_assert_true (json_node_equal (dict, back));

  /* a dictionary tensor of a file, through the loader */
  loader = uel_loader_new (path, TRUE, &err);
  g_assert_no_error (err);
  from_file = uel_loader_get_tensor (loader, "config", &err);
  g_assert_no_error (err);
  cfg = uel_tensor_to_dict (from_file, &err);
  g_assert_no_error (err);
  o = json_node_get_object (cfg);
  g_assert_cmpstr (json_object_get_string_member (o, "model_type"), ==,
      "llama");
  g_assert_cmpint (json_object_get_int_member (o, "bits"), ==, 16);

  /* a tensor that is not U8 */
  not_u8 = uel_loader_get_tensor (loader, "layer.0.q", &err);
  g_assert_null (uel_tensor_to_dict (not_u8, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_DICT_NOT_U8);
  g_clear_error (&err);
}

/* ------------------------------------------------------------------ */
/* loader modes of the 0.5 releases: use_mmap, direct_gpu; get_dtype */

/* whether @p lies in a mapping of the file @path (/proc/self/maps) */
static gboolean
in_mapping_of (gconstpointer p, const gchar * path)
{
  g_autofree gchar *real = realpath (path, NULL);
  g_autofree gchar *maps = NULL;
  g_auto (GStrv) lines = NULL;

  g_assert_true (g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL));
  lines = g_strsplit (maps, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    guintptr start, end;

    if (sscanf (lines[i], "%" G_GINTPTR_MODIFIER "x-%" G_GINTPTR_MODIFIER
            "x", &start, &end) == 2 && g_str_has_suffix (lines[i], real)
        && (guintptr) p >= start && (guintptr) p < end)
      return TRUE;
  }
  return FALSE;
}

/* whether the mmap modes give @buf's tensor as a view: it has bytes, and
 * they are aligned for its dtype in the file (others are read) */
static gboolean
can_be_view (GstBuffer * buf)
{
  const UelTensorInfo *info =
      uel_tensor_meta_get_tensor_info (uel_buffer_get_tensor_meta (buf));

  return info->n_bytes > 0 && info->file_offset %
      MAX (uel_dtype_get_bits (info->dtype) / 8, 1) == 0;
}

/* @buf holds exactly the bytes of its tensor in @file; whether they are a
 * view of the mapped file */
static gboolean
check_file_bytes (GstBuffer * buf, const gchar * path, const gchar * file)
{
  UelTensorMeta *m = uel_buffer_get_tensor_meta (buf);
  const UelTensorInfo *info = uel_tensor_meta_get_tensor_info (m);
  gboolean view;
  GstMapInfo map;

  g_assert_cmpuint (gst_buffer_get_size (buf), ==, info->n_bytes);
  if (info->n_bytes == 0)
    return FALSE;
  g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size, file + info->file_offset,
      info->n_bytes);
  view = in_mapping_of (map.data, path);
  gst_buffer_unmap (buf, &map);
  if (view)
    g_assert_true (GST_MEMORY_IS_READONLY (gst_buffer_peek_memory (buf, 0)));
  return view;
}

static void
test_mmap_views (void)
{
  g_autofree gchar *path = write_model_in ("mmap.safetensors", TRUE);
  g_autofree gchar *file = NULL;
  GError *err = NULL;

  g_assert_true (g_file_get_contents (path, &file, NULL, NULL));
  for (guint low = 0; low < 2; low++) {
    g_autoptr (UelLoader) loader = uel_loader_new_full (path, low, FALSE,
        TRUE, &err);
    g_autoptr (GstBuffer) kept = NULL;
    g_autoptr (UelTensorStream) stream = NULL;
    g_autoptr (GPtrArray) batch = NULL;
    g_auto (GStrv) keys = NULL;
    guint64 total = 0;
    guint n_views = 0;

    g_assert_no_error (err);
    g_assert_true (uel_loader_get_use_mmap (loader));
    g_assert_false (uel_loader_get_direct_gpu (loader));
    keys = uel_loader_keys (loader);
    for (guint i = 0; keys[i]; i++)
      total += uel_loader_get_tensor_info (loader, keys[i], NULL)->n_bytes;
    /* standard mode "preloads" views: no copy, the bytes still count */
    g_assert_cmpuint (uel_loader_get_preloaded_bytes (loader), ==,
        low ? 0 : total);
    for (guint i = 0; keys[i]; i++) {
      g_autoptr (GstBuffer) buf = uel_loader_get_tensor (loader, keys[i],
          &err);

      g_assert_no_error (err);
      g_assert_cmpint (check_file_bytes (buf, path, file), ==,
          can_be_view (buf));
      n_views += can_be_view (buf);
      g_assert_cmpint (uel_loader_mark_processed (loader, keys[i]), ==, !low);
    }
    /* one tensor is misaligned in the file, and read */
    g_assert_cmpuint (n_views, ==, g_strv_length (keys) - 2);
    /* a view outlives mark_processed and the loader */
    kept = uel_loader_get_tensor (loader, "embed.weight", &err);
    g_assert_no_error (err);

    /* the stream delivers views too, copies when it pins */
    for (guint pin = 0; pin < 2; pin++) {
      guint n = 0;

      stream = uel_loader_async_stream (loader, NULL, 4, 2, pin, &err);
      g_assert_no_error (err);
      while ((batch = uel_tensor_stream_next (stream, &err))) {
        for (guint i = 0; i < batch->len; i++) {
          GstBuffer *b = g_ptr_array_index (batch, i);

          g_assert_cmpint (check_file_bytes (b, path, file), ==,
              !pin && can_be_view (b));
          n++;
        }
        g_clear_pointer (&batch, g_ptr_array_unref);
      }
      g_assert_no_error (err);
      g_assert_cmpuint (n, ==, g_strv_length (keys));
      g_clear_object (&stream);
    }
    g_clear_object (&loader);
    g_assert_true (check_file_bytes (kept, path, file));
  }
}

static gboolean
no_device (void)
{
  GError *err = NULL;

  if (!uel_cuda_device_check (-1, &err)) {
    g_clear_error (&err);
    return TRUE;
  }
  g_test_skip ("a CUDA device is there: tests/gpu checks this mode");
  return FALSE;
}

/* direct_gpu without a device: low-memory mode, host memory, the same
 * bytes (the two warnings are not captured here: adding a log function
 * leaks GStreamer 1.22's old list, which LeakSanitizer reports) */
static void
test_direct_gpu_fallback (void)
{
  g_autofree gchar *path = write_model ("direct-gpu.safetensors");
  g_autofree gchar *file = NULL;
  GError *err = NULL;

  if (!no_device ())
    return;
  g_assert_true (g_file_get_contents (path, &file, NULL, NULL));
  for (guint mmap = 0; mmap < 2; mmap++) {
    g_autoptr (UelLoader) loader = uel_loader_new_full (path, FALSE, TRUE,
        mmap, &err);
    g_autoptr (UelTensorStream) stream = NULL;
    g_autoptr (GPtrArray) batch = NULL;
    g_auto (GStrv) keys = NULL;
    guint n = 0;

    g_assert_no_error (err);
    g_assert_true (uel_loader_get_low_memory (loader));
    g_assert_false (uel_loader_get_direct_gpu (loader));
    g_assert_cmpint (uel_loader_get_use_mmap (loader), ==, mmap);
    g_assert_cmpuint (uel_loader_get_preloaded_bytes (loader), ==, 0);
    keys = uel_loader_keys (loader);

    stream = uel_loader_async_stream (loader, NULL, 3, 2, FALSE, &err);
    g_assert_no_error (err);
    while ((batch = uel_tensor_stream_next (stream, &err))) {
      for (guint i = 0; i < batch->len; i++) {
        GstBuffer *b = g_ptr_array_index (batch, i);

        for (guint m = 0; m < gst_buffer_n_memory (b); m++)
          g_assert_false (uel_memory_is_cuda (gst_buffer_peek_memory (b, m)));
        g_assert_cmpint (check_file_bytes (b, path, file), ==,
            mmap && can_be_view (b));
        n++;
      }
      g_clear_pointer (&batch, g_ptr_array_unref);
    }
    g_assert_no_error (err);
    g_assert_cmpuint (n, ==, g_strv_length (keys));
    /* the loader holds nothing: nothing to give back */
    for (guint i = 0; keys[i]; i++)
      g_assert_false (uel_loader_mark_processed (loader, keys[i]));
  }
}

/* get_dtype of every dtype of the format, from the header alone, in both
 * modes, after mark_processed too */
static void
test_get_dtype (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autofree gchar *path = uel_test_path ("dtypes.safetensors");
  GError *err = NULL;

  /* 8 elements: whole bytes for the 4- and 6-bit types too */
  for (UelDType d = UEL_DTYPE_BOOL; d < UEL_DTYPE_N_TYPES; d++) {
    g_autofree gchar *name = g_strdup_printf ("t.%s",
        uel_dtype_to_string (d));
    uel_test_builder_add (b, name, uel_dtype_to_string (d), "[8]",
        uel_dtype_get_bits (d), NULL);
  }
  uel_test_builder_write (b, path, NULL);

  for (guint low = 0; low < 2; low++) {
    g_autoptr (UelLoader) loader = uel_loader_new (path, low, &err);

    g_assert_no_error (err);
    for (UelDType d = UEL_DTYPE_BOOL; d < UEL_DTYPE_N_TYPES; d++) {
      g_autofree gchar *name = g_strdup_printf ("t.%s",
          uel_dtype_to_string (d));

      g_assert_cmpint (uel_loader_get_dtype (loader, name, &err), ==, d);
      g_assert_no_error (err);
      uel_loader_mark_processed (loader, name);
      g_assert_cmpint (uel_loader_get_dtype (loader, name, &err), ==, d);
      g_assert_no_error (err);
    }
    g_assert_cmpint (uel_loader_get_dtype (loader, "t.F128", &err), ==,
        UEL_DTYPE_INVALID);
    g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (err->message, path));
    g_assert_nonnull (strstr (err->message, "'t.F128'"));
    g_clear_error (&err);
  }
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/loader/standard-mode/every-call-matches-uelsrc",
      test_standard_mode);
  g_test_add_func ("/loader/low-memory/every-call-matches-uelsrc",
      test_low_memory);
  g_test_add_func ("/loader/sharded-checkpoint-in-both-modes",
      test_sharded_both_modes);
  g_test_add_func ("/loader/mark-processed-frees-the-preloaded-tensor",
      test_mark_processed_frees);
  g_test_add_func ("/loader/errors/name-the-file-and-the-rule", test_errors);
  g_test_add_func ("/loader/is-an-initable-gobject", test_gobject);
  g_test_add_func ("/loader/stream/delivers-batches-in-stream-order",
      test_stream_batches);
  g_test_add_func ("/loader/stream/streams-only-the-keys-asked-for",
      test_stream_selects_keys);
  g_test_add_func ("/loader/stream/pins-memory", test_stream_pins);
  g_test_add_func ("/loader/stream/memory-stays-bounded",
      test_stream_bounded);
  g_test_add_func ("/loader/stream/memory-stays-bounded-when-pinned",
      test_stream_bounded_pinned);
  g_test_add_func ("/loader/stream/reports-read-errors", test_stream_error);
  g_test_add_func ("/loader/stream/stops-early", test_stream_stops_early);
  g_test_add_func ("/loader/stream/batch-size-g-maxuint-is-one-batch",
      test_stream_absurd_sizes);
  g_test_add_func ("/loader/stream/fifty-thousand-keys-as-names",
      test_stream_many_keys);
  g_test_add_func ("/loader/standard-mode/small-tensors-share-blocks",
      test_standard_mode_small_tensors);
  g_test_add_func ("/loader/stream/needs-no-plugin",
      test_stream_needs_no_plugin);
  g_test_add_func ("/loader/use-mmap/tensors-are-views-of-the-file",
      test_mmap_views);
  g_test_add_func ("/loader/direct-gpu/falls-back-to-host-memory",
      test_direct_gpu_fallback);
  g_test_add_func ("/loader/get-dtype/every-dtype-from-the-header",
      test_get_dtype);
  g_test_add_func ("/transfer/pinned-or-graceful-fallback", test_transfer);
  g_test_add_func ("/transfer/async/waits-for-the-same-result",
      test_transfer_async);
  g_test_add_func ("/transfer/async/misuse-leaks-nothing",
      test_transfer_async_misuse);
  g_test_add_func ("/dict/tensor-round-trip", test_dict_round_trip);
  return g_test_run ();
}
