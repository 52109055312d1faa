/* gst-uel: the writer (UelWriter): the reference's bytes, round trips
 * through the reader, every refusal, nothing half-written
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-utils.h"

static UelWriter *
writer_ok (const gchar * path)
{
  GError *err = NULL;
  UelWriter *w = uel_writer_new (path, &err);

  g_assert_no_error (err);
  g_assert_nonnull (w);
  return w;
}

static void
add_ok (UelWriter * w, const gchar * name, UelDType dtype, guint n_dims,
    const guint64 * shape)
{
  GError *err = NULL;

  gboolean ok = uel_writer_add_tensor (w, name, dtype, n_dims, shape, &err);

  g_assert_no_error (err);
  g_assert_true (ok);
}

static void
write_ok (UelWriter * w, const gchar * name, guint64 offset,
    gconstpointer data, gsize len)
{
  GError *err = NULL;

  gboolean ok = uel_writer_write (w, name, offset, data, len, &err);

  g_assert_no_error (err);
  g_assert_true (ok);
}

static void
finish_ok (UelWriter * w)
{
  GError *err = NULL;

  gboolean ok = uel_writer_finish (w, &err);

  g_assert_no_error (err);
  g_assert_true (ok);
}

static GBytes *
read_file (const gchar * path)
{
  GError *err = NULL;
  gchar *data;
  gsize len;

  g_file_get_contents (path, &data, &len, &err);
  g_assert_no_error (err);
  return g_bytes_new_take (data, len);
}

static void
assert_error_names (const GError * err, const gchar * path,
    const gchar * tensor)
{
  g_assert_nonnull (err);
  g_test_message ("%s", err->message);
  g_assert_nonnull (strstr (err->message, path));
  if (tensor)
    g_assert_nonnull (strstr (err->message, tensor));
}

/* a call that returned @ok failed with @domain and @code, naming @path and
 * @named in its message; frees @err */
static void
assert_refused (gboolean ok, GError * err, GQuark domain, gint code,
    const gchar * path, const gchar * named)
{
  g_assert_false (ok);
  g_assert_error (err, domain, code);
  assert_error_names (err, path, named);
  g_error_free (err);
}

/* ------------------------------------------------------------------ */
/* the reference's bytes */

/* Where the reference's metadata object ends in @json (which begins with
 * `{"__metadata__":{`): the offset of its closing brace. */
static gsize
metadata_end (const gchar * json, gsize len)
{
  gboolean in_string = FALSE;

  for (gsize i = strlen ("{\"__metadata__\":{"); i < len; i++) {
    if (in_string && json[i] == '\\')
      i++;
    else if (json[i] == '"')
      in_string = !in_string;
    else if (!in_string && json[i] == '}')
      return i;
  }
  g_assert_not_reached ();
  return 0;
}

static void
assert_same_metadata (UelHeader * a, UelHeader * b)
{
  GHashTable *ma = uel_header_get_metadata (a);
  GHashTable *mb = uel_header_get_metadata (b);
  GHashTableIter it;
  gpointer k, v;

  g_assert_cmpuint (g_hash_table_size (ma), ==, g_hash_table_size (mb));
  g_hash_table_iter_init (&it, ma);
  while (g_hash_table_iter_next (&it, &k, &v))
    g_assert_cmpstr (g_hash_table_lookup (mb, k), ==, v);
}

/* @written is @reference byte for byte; where the reference wrote several
 * metadata keys (in the order of its randomly seeded hash map), the
 * metadata object is compared as a map and every other byte as bytes */
static void
assert_same_file (const gchar * reference, const gchar * written)
{
  g_autoptr (GBytes) a = read_file (reference);
  g_autoptr (GBytes) b = read_file (written);
  g_autoptr (UelHeader) ha = uel_test_header_open (reference);
  g_autoptr (UelHeader) hb = uel_test_header_open (written);
  gsize len, from, to;
  const gchar *pa = g_bytes_get_data (a, &len);
  const gchar *pb = g_bytes_get_data (b, NULL);

  if (g_hash_table_size (uel_header_get_metadata (ha)) < 2) {
    g_assert_cmpmem (pb, g_bytes_get_size (b), pa, len);
    return;
  }
  g_assert_cmpuint (g_bytes_get_size (b), ==, len);
  from = 8 + strlen ("{\"__metadata__\":{");
  to = 8 + metadata_end (pa + 8, len - 8);
  g_assert_cmpuint (8 + metadata_end (pb + 8, len - 8), ==, to);
  g_assert_cmpmem (pb, from, pa, from);
  g_assert_cmpmem (pb + to, len - to, pa + to, len - to);
  assert_same_metadata (ha, hb);
}

/* Writes @reference's tensors and metadata again to @out: declared in
 * reverse file order, written last tensor first, each in pieces of 5
 * bytes from its end back (the writer must put them where they belong). */
static void
recreate (const gchar * reference, const gchar * out)
{
  g_autoptr (UelHeader) h = uel_test_header_open (reference);
  g_autoptr (GBytes) bytes = read_file (reference);
  const guint8 *data = g_bytes_get_data (bytes, NULL);
  g_autoptr (UelWriter) w = writer_ok (out);
  GHashTableIter it;
  gpointer k, v;
  GError *err = NULL;

  g_hash_table_iter_init (&it, uel_header_get_metadata (h));
  while (g_hash_table_iter_next (&it, &k, &v)) {
    g_assert_true (uel_writer_set_metadata (w, k, v, &err));
    g_assert_no_error (err);
  }
  for (guint i = uel_header_get_n_tensors (h); i-- > 0;) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);
    add_ok (w, t->name, t->dtype, t->n_dims, t->shape);
  }
  for (guint i = uel_header_get_n_tensors (h); i-- > 0;) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);

    for (guint64 off = t->n_bytes; off > 0;) {
      guint64 piece = MIN (off, 5);

      off -= piece;
      write_ok (w, t->name, off, data + t->file_offset + off, piece);
    }
  }
  finish_ok (w);
}

static const gchar *reference_files[] = {
  "every-dtype", "names", "scalars-and-empty", "no-tensors",
  "only-metadata", "metadata-keys", "overall",
  "pad-1", "pad-2", "pad-3", "pad-4", "pad-5", "pad-6", "pad-7", "pad-8",
};

/* files written by the reference (tests/conformance/writer), written
 * again from their tensors and metadata */
static void
test_reference_bytes (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (reference_files); i++) {
    g_autofree gchar *file = g_strdup_printf ("%s.safetensors",
        reference_files[i]);
    g_autofree gchar *ref = g_build_filename (uel_test_conformance_dir (),
        "writer", file, NULL);
    g_autofree gchar *out = uel_test_path (file);

    g_test_message ("%s", file);
    recreate (ref, out);
    assert_same_file (ref, out);
  }
}

/* The older samples (tests/conformance) come from a reference that
 * neither padded its header nor ordered by dtype: written again, each
 * single tensor file is theirs with the header padded, and all nine
 * tensors together are what this reference writes for them. */
static void
test_reference_samples (void)
{
  const gchar *samples[] = { "B", "b", "H", "h", "I", "i", "e", "f", "d" };
  g_autofree gchar *overall = g_build_filename (uel_test_conformance_dir (),
      "overall.safetensors", NULL);
  g_autofree gchar *overall_now = g_build_filename
      (uel_test_conformance_dir (), "writer", "overall.safetensors", NULL);
  g_autofree gchar *out = uel_test_path ("samples-overall.safetensors");

  for (guint i = 0; i < G_N_ELEMENTS (samples); i++) {
    g_autofree gchar *file = g_strdup_printf ("%s.safetensors", samples[i]);
    g_autofree gchar *ref = g_build_filename (uel_test_conformance_dir (),
        file, NULL);
    g_autofree gchar *mine = uel_test_path (file);
    g_autoptr (GBytes) a = NULL;
    g_autoptr (GBytes) b = NULL;
    g_autoptr (UelHeader) ha = uel_test_header_open (ref);
    g_autoptr (UelHeader) hb = NULL;
    const guint8 *pa, *pb;
    gsize la, lb, ha_len, hb_len;

    recreate (ref, mine);
    a = read_file (ref);
    b = read_file (mine);
    pa = g_bytes_get_data (a, &la);
    pb = g_bytes_get_data (b, &lb);
    hb = uel_test_header_open (mine);
    ha_len = uel_header_get_data_offset (ha, 0) - 8;
    hb_len = uel_header_get_data_offset (hb, 0) - 8;
    g_assert_cmpuint (hb_len % 8, ==, 0);
    g_assert_cmpuint (hb_len, ==, (ha_len + 7) / 8 * 8);
    /* the same JSON, then spaces */
    g_assert_cmpmem (pb + 8, ha_len, pa + 8, ha_len);
    for (gsize j = ha_len; j < hb_len; j++)
      g_assert_cmpint (pb[8 + j], ==, ' ');
    g_assert_cmpmem (pb + 8 + hb_len, lb - 8 - hb_len, pa + 8 + ha_len,
        la - 8 - ha_len);
  }
  recreate (overall, out);
  assert_same_file (overall_now, out);
}

/* ------------------------------------------------------------------ */
/* round trips */

static const UelDType every_dtype[] = {
  UEL_DTYPE_BOOL, UEL_DTYPE_U8, UEL_DTYPE_I8, UEL_DTYPE_F8_E5M2,
  UEL_DTYPE_F8_E4M3, UEL_DTYPE_F8_E8M0, UEL_DTYPE_F8_E4M3FNUZ,
  UEL_DTYPE_F8_E5M2FNUZ, UEL_DTYPE_F4, UEL_DTYPE_F6_E2M3, UEL_DTYPE_F6_E3M2,
  UEL_DTYPE_I16, UEL_DTYPE_U16, UEL_DTYPE_F16, UEL_DTYPE_BF16,
  UEL_DTYPE_I32, UEL_DTYPE_U32, UEL_DTYPE_F32, UEL_DTYPE_C64,
  UEL_DTYPE_F64, UEL_DTYPE_I64, UEL_DTYPE_U64,
};

/* every dtype, a scalar, empty tensors, many dimensions, odd names;
 * written whole, in pieces and out of order; read back by UelHeader and
 * UelReader, byte for byte */
static void
test_round_trip (void)
{
  g_autofree gchar *path = uel_test_path ("round-trip.safetensors");
  g_autoptr (UelWriter) w = writer_ok (path);
  g_autoptr (GHashTable) bytes = g_hash_table_new_full (g_str_hash,
      g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (UelReader) r = NULL;
  const guint64 shape[] = { 8, 3 }, empty[] = { 4, 0, 2 };
  const guint64 deep[] = { 2, 1, 3, 1, 2, 1, 1, 5 };
  GError *err = NULL;
  GstBuffer *buf;
  guint n = 0;

  g_assert_true (uel_writer_set_metadata (w, "format", "pt", &err));
  g_assert_true (uel_writer_set_metadata (w, "note", "\"quoted\"\n✓", &err));
  g_assert_true (uel_writer_set_metadata (w, "format", "np", &err));
  g_assert_no_error (err);
  for (guint i = 0; i < G_N_ELEMENTS (every_dtype); i++)
    add_ok (w, uel_dtype_to_string (every_dtype[i]), every_dtype[i], 2,
        shape);
  add_ok (w, "scalar", UEL_DTYPE_F64, 0, NULL);
  add_ok (w, "empty", UEL_DTYPE_BF16, 3, empty);
  add_ok (w, "deep", UEL_DTYPE_I16, G_N_ELEMENTS (deep), deep);
  add_ok (w, "", UEL_DTYPE_U8, 1, (const guint64[]) { 3 });
  add_ok (w, "ünïcødé/名前 ✓ \"\\", UEL_DTYPE_U8, 1, (const guint64[]) { 7 });
  g_assert_cmpuint (uel_writer_get_n_tensors (w), ==,
      G_N_ELEMENTS (every_dtype) + 5);

  g_assert_true (uel_writer_write_header (w, &err));
  g_assert_no_error (err);
  /* whole tensors front to back, but every third one back to front in
   * pieces of 7 bytes */
  for (guint i = 0; i < uel_writer_get_n_tensors (w); i++) {
    const UelTensorInfo *t = uel_writer_get_tensor (w, i);
    guint8 *data = g_malloc (t->n_bytes + 1);

    uel_test_fill (data, t->n_bytes, i + 100);
    if (i % 3 == 0) {
      for (guint64 off = t->n_bytes; off > 0;) {
        guint64 piece = MIN (off, 7);
        off -= piece;
        write_ok (w, t->name, off, data + off, piece);
      }
    } else {
      g_assert_true (uel_writer_write_tensor (w, t->name, data, t->n_bytes,
              &err));
      g_assert_no_error (err);
    }
    g_hash_table_insert (bytes, g_strdup (t->name),
        g_bytes_new_take (data, t->n_bytes));
  }
  finish_ok (w);
  g_assert_cmpuint (uel_test_count_temporaries (path), ==, 0);

  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==,
      uel_writer_get_n_tensors (w));
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==,
      uel_writer_get_total_bytes (w));
  g_assert_cmpuint (uel_header_get_data_offset (h, 0) % 8, ==, 0);
  g_assert_cmpuint (g_hash_table_size (uel_header_get_metadata (h)), ==, 2);
  g_assert_cmpstr (g_hash_table_lookup (uel_header_get_metadata (h),
          "format"), ==, "np");
  g_assert_cmpstr (g_hash_table_lookup (uel_header_get_metadata (h),
          "note"), ==, "\"quoted\"\n✓");
  for (guint i = 0; i < uel_header_get_n_tensors (h); i++) {
    const UelTensorInfo *a = uel_header_get_tensor (h, i);
    const UelTensorInfo *b = uel_writer_get_tensor (w, i);
    guint index = G_MAXUINT;

    g_assert_cmpstr (a->name, ==, b->name);
    g_assert_true (uel_writer_lookup (w, a->name, &index) == b);
    g_assert_cmpuint (index, ==, i);
    g_assert_cmpint (a->dtype, ==, b->dtype);
    g_assert_cmpmem (a->shape, a->n_dims * 8, b->shape, b->n_dims * 8);
    g_assert_cmpuint (a->n_elements, ==, b->n_elements);
    g_assert_cmpuint (a->n_bytes, ==, b->n_bytes);
    g_assert_cmpuint (a->data_begin, ==, b->data_begin);
    g_assert_cmpuint (a->file_offset, ==, b->file_offset);
  }

  r = uel_reader_new (h);
  g_assert_true (uel_reader_start (r, &err));
  g_assert_no_error (err);
  while ((buf = uel_reader_next (r, &err))) {
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    GBytes *expect = g_hash_table_lookup (bytes,
        uel_tensor_meta_get_name (meta));
    GstMapInfo map;

    g_assert_nonnull (expect);
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpmem (map.data, map.size, g_bytes_get_data (expect, NULL),
        g_bytes_get_size (expect));
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    n++;
  }
  g_assert_no_error (err);
  g_assert_cmpuint (n, ==, uel_header_get_n_tensors (h));
}

/* dtype from the reference's widest down, then name, bytewise: F6 and F4
 * sit between BOOL and U8 there, not with the floats as in UelDType */
static void
test_reference_order (void)
{
  static const gchar *expected[] = {
    "U64", "I64", "F64", "C64", "F32", "U32", "I32", "BF16", "F16", "U16",
    "I16", "F8_E5M2FNUZ", "F8_E4M3FNUZ", "F8_E8M0", "F8_E4M3", "F8_E5M2",
    "I8", "B", "U8", "a", "a10", "a9", "b", "é", "F6_E3M2", "F6_E2M3", "F4",
    "BOOL",
  };
  static const gchar *u8_names[] = { "é", "b", "a9", "a10", "a", "B" };
  g_autofree gchar *path = uel_test_path ("order.safetensors");
  g_autoptr (UelWriter) w = writer_ok (path);
  g_autoptr (UelHeader) h = NULL;
  const guint64 shape[] = { 4 };
  guint64 begin = 0;

  /* declared neither in dtype nor in name order */
  for (guint i = 0; i < G_N_ELEMENTS (every_dtype); i++) {
    UelDType d = every_dtype[(i * 7) % G_N_ELEMENTS (every_dtype)];
    add_ok (w, uel_dtype_to_string (d), d, 1, shape);
    if (i == 5)
      for (guint j = 0; j < G_N_ELEMENTS (u8_names); j++)
        add_ok (w, u8_names[j], UEL_DTYPE_U8, 1, shape);
  }
  g_assert_true (uel_writer_write_header (w, NULL));
  g_assert_cmpuint (uel_writer_get_n_tensors (w), ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++) {
    const UelTensorInfo *t = uel_writer_get_tensor (w, i);
    guint8 data[32] = { 0 };

    g_assert_cmpstr (t->name, ==, expected[i]);
    g_assert_cmpuint (t->data_begin, ==, begin);
    begin += t->n_bytes;
    write_ok (w, t->name, 0, data, t->n_bytes);
  }
  finish_ok (w);
  h = uel_test_header_open (path);
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    g_assert_cmpstr (uel_header_get_tensor (h, i)->name, ==, expected[i]);
}

/* no tensor and no metadata: the reference's `{}` and six spaces */
static void
test_nothing (void)
{
  g_autofree gchar *path = uel_test_path ("nothing.safetensors");
  g_autoptr (UelWriter) w = writer_ok (path);
  g_autoptr (GBytes) b = NULL;
  static const guint8 expect[] = "\x08\0\0\0\0\0\0\0{}      ";

  finish_ok (w);
  b = read_file (path);
  g_assert_cmpmem (g_bytes_get_data (b, NULL), g_bytes_get_size (b), expect,
      sizeof expect - 1);
}

typedef struct
{
  UelWriter *w;
  const guint8 *data;
  guint64 n_bytes;
  guint thread;
  guint n_threads;
} Share;

static gpointer
write_share (gpointer p)
{
  Share *s = p;
  const gsize piece = 4099;

  /* pieces thread, thread + n, ... of each tensor */
  for (guint t = 0; t < 3; t++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", t);
    for (guint64 off = s->thread * piece; off < s->n_bytes;
        off += s->n_threads * piece)
      write_ok (s->w, name, off, s->data + t * s->n_bytes + off,
          MIN (piece, s->n_bytes - off));
  }
  return NULL;
}

/* several threads write pieces of the same tensors at once */
static void
test_threads (void)
{
  g_autofree gchar *path = uel_test_path ("threads.safetensors");
  g_autoptr (UelWriter) w = writer_ok (path);
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (GBytes) file = NULL;
  const guint64 n_bytes = 1000003, shape[] = { n_bytes };
  g_autofree guint8 *data = g_malloc (3 * n_bytes);
  Share shares[4];
  GThread *threads[4];

  uel_test_fill (data, 3 * n_bytes, 7);
  for (guint t = 0; t < 3; t++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", t);
    add_ok (w, name, UEL_DTYPE_U8, 1, shape);
  }
  for (guint i = 0; i < 4; i++) {
    shares[i] = (Share) { w, data, n_bytes, i, 4 };
    threads[i] = g_thread_new ("writer", write_share, &shares[i]);
  }
  for (guint i = 0; i < 4; i++)
    g_thread_join (threads[i]);
  finish_ok (w);
  h = uel_test_header_open (path);
  file = read_file (path);
  g_assert_cmpmem ((const guint8 *) g_bytes_get_data (file, NULL) +
      uel_header_get_data_offset (h, 0), 3 * n_bytes, data, 3 * n_bytes);
}

/* zeros are counted, not written: a tensor of 1 GiB of them takes no
 * disk space (the file systems tests run on have holes) */
static void
test_zeros (void)
{
  g_autofree gchar *path = uel_test_path ("zeros.safetensors");
  g_autoptr (UelWriter) w = writer_ok (path);
  g_autoptr (UelHeader) h = NULL;
  const guint64 gib = G_GUINT64_CONSTANT (1) << 30, shape[] = { gib };
  const UelTensorInfo *info;
  guint8 tail[16], zeros[16] = { 0 };
  GError *err = NULL;
  GStatBuf st;
  gint fd;

  add_ok (w, "zeros", UEL_DTYPE_U8, 1, shape);
  add_ok (w, "x", UEL_DTYPE_U8, 1, (const guint64[]) { 3 });
  g_assert_true (uel_writer_write_zeros (w, "zeros", 4096, gib - 4096,
          &err));
  g_assert_no_error (err);
  g_assert_false (uel_writer_write_zeros (w, "zeros", 4000, 100, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_WRITE_OVERLAP);
  g_clear_error (&err);
  g_assert_false (uel_writer_write_zeros (w, "zeros", 0, gib + 1, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_WRITE_OUT_OF_RANGE);
  g_clear_error (&err);
  g_assert_false (uel_writer_finish (w, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INCOMPLETE);
  g_clear_error (&err);
  write_ok (w, "zeros", 0, zeros, 16);
  g_assert_true (uel_writer_write_zeros (w, "zeros", 16, 4080, &err));
  write_ok (w, "x", 0, "abc", 3);
  finish_ok (w);

  h = uel_test_header_open (path);
  info = uel_header_lookup (h, "zeros", NULL);
  g_assert_cmpuint (info->n_bytes, ==, gib);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpuint (st.st_size, ==, uel_header_get_data_offset (h, 0) + gib
      + 3);
  g_assert_cmpuint ((guint64) st.st_blocks * 512, <, 1 << 20);
  fd = g_open (path, O_RDONLY, 0);
  g_assert_cmpint (pread (fd, tail, 16, info->file_offset + gib - 16), ==, 16);
  g_assert_cmpmem (tail, 16, zeros, 16);
  close (fd);
}

/* an existing file is replaced, with the permissions of a new file */
static void
test_replaces_existing (void)
{
  g_autofree gchar *path = uel_test_path ("replaced.safetensors");
  g_autoptr (UelWriter) w = NULL;
  g_autoptr (UelHeader) h = NULL;
  GStatBuf st;
  mode_t mask = umask (022);

  umask (mask);
  uel_test_write_bytes (path, "old", 3);
  g_assert_cmpint (g_chmod (path, 0600), ==, 0);
  w = writer_ok (path);
  add_ok (w, "x", UEL_DTYPE_U8, 1, (const guint64[]) { 2 });
  write_ok (w, "x", 0, "ab", 2);
  /* nothing happens to the old file before the end */
  g_assert_true (g_stat (path, &st) == 0 && st.st_size == 3);
  finish_ok (w);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 1);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0666 & ~mask);
  g_assert_cmpuint (uel_test_count_temporaries (path), ==, 0);
}

/* ------------------------------------------------------------------ */
/* refusals */

/* declarations a reader would refuse, with the error each gets */
static const struct
{
  const gchar *name;
  UelDType dtype;
  guint n_dims;
  guint64 shape[2];
  gint code;
  const gchar *named;           /* how the message names the tensor */
} refused[] = {
  {"a", UEL_DTYPE_U8, 1, {1}, UEL_ERROR_DUPLICATE_TENSOR, "'a'"},
  {"__metadata__", UEL_DTYPE_U8, 1, {1}, UEL_ERROR_INVALID_TENSOR_NAME,
      "'__metadata__'"},
  {"bad\xff\xfe", UEL_DTYPE_U8, 1, {1}, UEL_ERROR_INVALID_TENSOR_NAME,
      "'bad"},
  {"nodtype", UEL_DTYPE_INVALID, 1, {1}, UEL_ERROR_UNKNOWN_DTYPE,
      "'nodtype'"},
  {"nodtype", UEL_DTYPE_N_TYPES, 1, {1}, UEL_ERROR_UNKNOWN_DTYPE,
      "'nodtype'"},
  /* 2^64 elements; 2^62 elements of 32 bits */
  {"count", UEL_DTYPE_U8, 2, {G_GUINT64_CONSTANT (1) << 32,
          G_GUINT64_CONSTANT (1) << 32}, UEL_ERROR_SIZE_OVERFLOW, "'count'"},
  {"bits", UEL_DTYPE_F32, 1, {G_GUINT64_CONSTANT (1) << 62},
      UEL_ERROR_SIZE_OVERFLOW, "'bits'"},
  /* 3 × 4 bits, 2 × 6 bits */
  {"f4", UEL_DTYPE_F4, 1, {3}, UEL_ERROR_PARTIAL_BYTE, "'f4'"},
  {"f6", UEL_DTYPE_F6_E2M3, 1, {2}, UEL_ERROR_PARTIAL_BYTE, "'f6'"},
};


static void
test_refuses_declarations (void)
{
  g_autofree gchar *path = uel_test_path ("refused.safetensors");
  g_autoptr (UelWriter) w = writer_ok (path);
  const guint64 huge[] = { G_GUINT64_CONSTANT (1) << 60, 1 };
  GError *err = NULL;
  gboolean ok;

  add_ok (w, "a", UEL_DTYPE_F32, 1, (const guint64[]) { 1 });
  for (guint i = 0; i < G_N_ELEMENTS (refused); i++) {
    ok = uel_writer_add_tensor (w, refused[i].name, refused[i].dtype,
        refused[i].n_dims, refused[i].shape, &err);
    assert_refused (ok, err, UEL_ERROR, refused[i].code, path,
        refused[i].named);
    err = NULL;
  }
  /* a tensor of 2^60 bytes fits (its size in bits just does); eight of
   * them are more than a file can be */
  for (guint i = 0; i < 7; i++) {
    g_autofree gchar *name = g_strdup_printf ("huge%u", i);
    add_ok (w, name, UEL_DTYPE_U8, 2, huge);
  }
  ok = uel_writer_add_tensor (w, "huge7", UEL_DTYPE_U8, 2, huge, &err);
  assert_refused (ok, err, UEL_ERROR, UEL_ERROR_SIZE_OVERFLOW, path,
      "'huge7'");
  err = NULL;
  add_ok (w, "f4", UEL_DTYPE_F4, 1, (const guint64[]) { 2 });

  ok = uel_writer_set_metadata (w, "k\xc0", "v", &err);
  assert_refused (ok, err, UEL_ERROR, UEL_ERROR_INVALID_METADATA, path,
      "key");
  err = NULL;
  ok = uel_writer_set_metadata (w, "k", "v\xed\xa0\x80", &err);
  assert_refused (ok, err, UEL_ERROR, UEL_ERROR_INVALID_METADATA, path,
      "value");

  /* the refusals changed nothing */
  g_assert_cmpuint (uel_writer_get_n_tensors (w), ==, 9);
  g_assert_cmpuint (uel_writer_get_total_bytes (w), ==,
      7 * (G_GUINT64_CONSTANT (1) << 60) + 5);
}

/* writes outside the table are refused and change nothing; each byte is
 * written once */
static void
test_refuses_writes (void)
{
  g_autofree gchar *path = uel_test_path ("writes.safetensors");
  g_autoptr (UelWriter) w = writer_ok (path);
  g_autoptr (GBytes) file = NULL;
  g_autoptr (UelHeader) h = NULL;
  guint8 data[30];
  GError *err = NULL;

  uel_test_fill (data, sizeof data, 3);
  add_ok (w, "t", UEL_DTYPE_U8, 1, (const guint64[]) { 30 });
  add_ok (w, "e", UEL_DTYPE_U8, 1, (const guint64[]) { 0 });

  g_assert_false (uel_writer_write (w, "nope", 0, data, 1, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_UNKNOWN_TENSOR);
  assert_error_names (err, path, "'nope'");
  g_clear_error (&err);

  g_assert_false (uel_writer_write (w, "t", 25, data, 6, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_WRITE_OUT_OF_RANGE);
  assert_error_names (err, path, "'t'");
  g_clear_error (&err);
  g_assert_false (uel_writer_write (w, "t", G_MAXUINT64, data, 1, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_WRITE_OUT_OF_RANGE);
  g_clear_error (&err);
  g_assert_false (uel_writer_write (w, "e", 0, data, 1, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_WRITE_OUT_OF_RANGE);
  g_clear_error (&err);
  /* nothing, anywhere up to the end, is no write at all */
  write_ok (w, "t", 30, data, 0);
  write_ok (w, "e", 0, NULL, 0);

  g_assert_false (uel_writer_write_tensor (w, "t", data, 29, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_SIZE_MISMATCH);
  assert_error_names (err, path, "'t'");
  g_clear_error (&err);

  /* pieces out of order merge; an overlap with any of them is refused */
  write_ok (w, "t", 20, data + 20, 5);
  write_ok (w, "t", 0, data, 10);
  write_ok (w, "t", 25, data + 25, 5);
  g_assert_false (uel_writer_write (w, "t", 9, data + 9, 2, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_WRITE_OVERLAP);
  assert_error_names (err, path, "0 to 10");
  g_clear_error (&err);
  g_assert_false (uel_writer_write (w, "t", 19, data + 19, 2, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_WRITE_OVERLAP);
  assert_error_names (err, path, "20 to 30");
  g_clear_error (&err);

  g_assert_false (uel_writer_finish (w, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INCOMPLETE);
  assert_error_names (err, path, "'t'");
  g_assert_nonnull (strstr (err->message, "10 of its 30 bytes"));
  g_assert_nonnull (strstr (err->message, "at byte 10"));
  g_clear_error (&err);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));

  /* the missing bytes, then the file */
  write_ok (w, "t", 10, data + 10, 10);
  g_assert_false (uel_writer_write (w, "t", 29, data + 29, 1, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_WRITE_OVERLAP);
  g_clear_error (&err);
  finish_ok (w);
  h = uel_test_header_open (path);
  file = read_file (path);
  g_assert_cmpmem ((const guint8 *) g_bytes_get_data (file, NULL) +
      uel_header_lookup (h, "t", NULL)->file_offset, 30, data, 30);
}

/* a header over 100,000,000 bytes: the writer fails before writing */
static void
test_header_too_large (void)
{
  g_autofree gchar *path = uel_test_path ("too-large.safetensors");
  g_autoptr (UelWriter) w = writer_ok (path);
  g_autofree gchar *name = g_malloc (UEL_MAX_HEADER_SIZE + 1);
  GError *err = NULL;

  memset (name, 'n', UEL_MAX_HEADER_SIZE);
  name[UEL_MAX_HEADER_SIZE - 40] = '\0';
  add_ok (w, name, UEL_DTYPE_U8, 1, (const guint64[]) { 1 });
  add_ok (w, "x", UEL_DTYPE_U8, 1, (const guint64[]) { 1 });
  g_assert_false (uel_writer_write_header (w, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE);
  assert_error_names (err, path, "100000000");
  g_clear_error (&err);
  g_assert_cmpuint (uel_test_count_temporaries (path), ==, 0);
  /* and says so again */
  g_assert_false (uel_writer_write (w, "x", 0, "x", 1, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE);
  g_clear_error (&err);
  g_assert_false (uel_writer_finish (w, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE);
  g_clear_error (&err);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

/* ------------------------------------------------------------------ */
/* the incremental mode */

static UelWriter *
incremental_ok (const gchar * path, guint64 reserve)
{
  GError *err = NULL;
  UelWriter *w = uel_writer_new_incremental (path, reserve, &err);

  g_assert_no_error (err);
  g_assert_nonnull (w);
  return w;
}

static void
set_metadata_ok (UelWriter * w, const gchar * key, const gchar * value)
{
  GError *err = NULL;

  gboolean ok = uel_writer_set_metadata (w, key, value, &err);

  g_assert_no_error (err);
  g_assert_true (ok);
}

/* the files of tests/conformance/incremental, written by
 * IncrementalSafetensorsWriter (unifiedefficientloader 0.5.4) with these
 * reserves and metadata keys in this order (make-vectors.py) */
static const struct
{
  const gchar *file;
  guint64 reserve;
  const gchar *keys[4];
} incremental_files[] = {
  {"mixed", 1000, {"format", "b", "a"}},
  {"names", 1001, {"k\"\\\n\x02\x1f\x7f\u00e9\U0001F600"}},
  {"no-metadata", 200, {NULL}},
  {"empty", 8, {NULL}},
  {"only-metadata", 30, {"a"}},
  {"exact-fit", 64, {NULL}},
};

/* Writes the tensors of @reference again, incrementally, in its header's
 * order (the order the Python writer was given them): whole with
 * uel_writer_append_tensor() and the metadata first, or when @in_pieces
 * declared first, then written last tensor first in pieces of 5 bytes
 * from the end back, the metadata set last. */
static void
rewrite_incrementally (guint v, const gchar * reference, const gchar * out,
    gboolean in_pieces)
{
  g_autoptr (UelHeader) h = uel_test_header_open (reference);
  g_autoptr (GBytes) bytes = read_file (reference);
  const guint8 *data = g_bytes_get_data (bytes, NULL);
  GHashTable *metadata = uel_header_get_metadata (h);
  UelWriter *w = incremental_ok (out, incremental_files[v].reserve);
  guint n = uel_header_get_n_tensors (h);
  const gchar *const *keys = incremental_files[v].keys;
  GError *err = NULL;

  g_assert_cmpuint (g_hash_table_size (metadata), ==,
      g_strv_length ((gchar **) keys));
  for (guint k = 0; !in_pieces && keys[k]; k++)
    set_metadata_ok (w, keys[k], g_hash_table_lookup (metadata, keys[k]));
  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);

    if (in_pieces) {
      add_ok (w, t->name, t->dtype, t->n_dims, t->shape);
    } else {
      g_assert_true (uel_writer_append_tensor (w, t->name, t->dtype,
              t->n_dims, t->shape, data + t->file_offset, t->n_bytes, &err));
      g_assert_no_error (err);
    }
  }
  for (guint i = n; in_pieces && i-- > 0;) {
    const UelTensorInfo *t = uel_header_get_tensor (h, i);

    for (guint64 off = t->n_bytes; off > 0;) {
      guint64 piece = MIN (off, 5);

      off -= piece;
      write_ok (w, t->name, off, data + t->file_offset + off, piece);
    }
  }
  for (guint k = 0; in_pieces && keys[k]; k++)
    set_metadata_ok (w, keys[k], g_hash_table_lookup (metadata, keys[k]));
  finish_ok (w);
  uel_writer_free (w);
}

static void
test_incremental_reference_bytes (void)
{
  for (guint v = 0; v < G_N_ELEMENTS (incremental_files); v++) {
    g_autofree gchar *file = g_strdup_printf ("%s.safetensors",
        incremental_files[v].file);
    g_autofree gchar *ref = g_build_filename (uel_test_conformance_dir (),
        "incremental", file, NULL);
    g_autofree gchar *out = uel_test_path (file);

    for (guint way = 0; way < 2; way++) {
      g_autoptr (GBytes) a = NULL;
      g_autoptr (GBytes) b = NULL;
      g_autoptr (UelHeader) back = NULL;

      g_test_message ("%s, %s", file, way ? "in pieces" : "whole");
      rewrite_incrementally (v, ref, out, way == 1);
      a = read_file (ref);
      b = read_file (out);
      g_assert_cmpmem (g_bytes_get_data (b, NULL), g_bytes_get_size (b),
          g_bytes_get_data (a, NULL), g_bytes_get_size (a));
      back = uel_test_header_open (out);
      g_assert_cmpuint (uel_test_count_temporaries (out), ==, 0);
    }
  }
}

static void
test_incremental_reserve (void)
{
  g_autofree gchar *path = uel_test_path ("reserve.safetensors");
  UelWriter *w;
  GError *err = NULL;

  w = incremental_ok (path, 0);
  g_assert_true (uel_writer_is_incremental (w));
  g_assert_cmpuint (uel_writer_get_header_reserve (w), ==, 1048576);
  uel_writer_free (w);
  w = incremental_ok (path, 1);
  g_assert_cmpuint (uel_writer_get_header_reserve (w), ==, 8);
  uel_writer_free (w);
  w = incremental_ok (path, UEL_MAX_HEADER_SIZE);
  g_assert_cmpuint (uel_writer_get_header_reserve (w), ==,
      UEL_MAX_HEADER_SIZE);
  uel_writer_free (w);
  w = writer_ok (path);
  g_assert_false (uel_writer_is_incremental (w));
  g_assert_cmpuint (uel_writer_get_header_reserve (w), ==, 0);
  uel_writer_free (w);

  /* a block no reader would take */
  g_assert_null (uel_writer_new_incremental (path, UEL_MAX_HEADER_SIZE + 1,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  assert_error_names (err, path, "100000001");
  g_clear_error (&err);
  g_assert_cmpuint (uel_test_count_temporaries (path), ==, 0);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

/* The header of {"xxxxxxxxxxxx":{"dtype":"I8",...}} is 64 bytes: refused
 * in a block of 56, naming both sizes, the writer as it was before */
static void
test_incremental_header_too_large (void)
{
  g_autofree gchar *path = uel_test_path ("outgrown.safetensors");
  g_autofree gchar *expected = NULL;
  UelWriter *w = incremental_ok (path, 56);
  GError *err = NULL;

  uel_test_write_bytes (path, "old", 3);
  g_assert_false (uel_writer_append_tensor (w, "xxxxxxxxxxxx", UEL_DTYPE_I8,
          1, (const guint64[]) { 1 }, "x", 1, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE);
  expected = g_strdup_printf ("%s: the header would be 64 bytes, larger "
      "than the 56 bytes reserved for it", path);
  g_assert_cmpstr (err->message, ==, expected);
  g_clear_error (&err);
  g_assert_cmpuint (uel_writer_get_n_tensors (w), ==, 0);
  g_assert_false (uel_writer_add_tensor (w, "xxxxxxxxxxxx", UEL_DTYPE_I8,
          1, (const guint64[]) { 1 }, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE);
  g_clear_error (&err);

  /* metadata too: {"__metadata__":{"k":"..."}} */
  g_assert_false (uel_writer_set_metadata (w, "k",
          "1234567890123456789012345678901234567890", &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE);
  assert_error_names (err, path, "56 bytes");
  g_clear_error (&err);

  /* what fits still goes in: 56 bytes exactly */
  g_assert_true (uel_writer_append_tensor (w, "xxxx", UEL_DTYPE_I8, 1,
          (const guint64[]) { 1 }, "x", 1, &err));
  g_assert_no_error (err);
  g_assert_false (uel_writer_set_metadata (w, "k", "v", &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE);
  g_clear_error (&err);
  g_assert_cmpuint (uel_test_count_temporaries (path), ==, 1);
  uel_writer_free (w);
  /* abandoned: nothing left, the old file as it was */
  g_assert_cmpuint (uel_test_count_temporaries (path), ==, 0);
  {
    g_autoptr (GBytes) old = read_file (path);

    g_assert_cmpmem (g_bytes_get_data (old, NULL), g_bytes_get_size (old),
        "old", 3);
  }
}

static void
test_incremental_refusals (void)
{
  g_autofree gchar *path = uel_test_path ("incremental-refused.safetensors");
  UelWriter *w = incremental_ok (path, 0);
  GError *err = NULL;
  gboolean ok;

  uel_test_write_bytes (path, "old", 3);
  g_assert_true (uel_writer_append_tensor (w, "a", UEL_DTYPE_F32, 1,
          (const guint64[]) { 2 }, "12345678", 8, &err));
  g_assert_no_error (err);
  ok = uel_writer_append_tensor (w, "a", UEL_DTYPE_U8, 0, NULL, "1", 1, &err);
  assert_refused (ok, err, UEL_ERROR, UEL_ERROR_DUPLICATE_TENSOR, path, "a");
  err = NULL;
  ok = uel_writer_append_tensor (w, "__metadata__", UEL_DTYPE_U8, 0, NULL,
      "1", 1, &err);
  assert_refused (ok, err, UEL_ERROR, UEL_ERROR_INVALID_TENSOR_NAME, path,
      "__metadata__");
  err = NULL;
  ok = uel_writer_append_tensor (w, "b", UEL_DTYPE_F16, 1,
      (const guint64[]) { 3 }, "1234", 4, &err);
  assert_refused (ok, err, UEL_ERROR, UEL_ERROR_SIZE_MISMATCH, path, "b");
  err = NULL;
  g_assert_cmpuint (uel_writer_get_n_tensors (w), ==, 1);

  /* declared, half written: finishing names it and changes nothing */
  add_ok (w, "c", UEL_DTYPE_U8, 1, (const guint64[]) { 4 });
  g_assert_cmpuint (uel_writer_lookup (w, "c", NULL)->data_begin, ==, 8);
  write_ok (w, "c", 2, "cd", 2);
  ok = uel_writer_finish (w, &err);
  assert_refused (ok, err, UEL_ERROR, UEL_ERROR_INCOMPLETE, path, "c");
  err = NULL;
  ok = uel_writer_write (w, "c", 3, "d", 1, &err);
  assert_refused (ok, err, UEL_ERROR, UEL_ERROR_WRITE_OVERLAP, path, "c");
  err = NULL;
  {
    g_autoptr (GBytes) old = read_file (path);

    g_assert_cmpmem (g_bytes_get_data (old, NULL), g_bytes_get_size (old),
        "old", 3);
  }
  write_ok (w, "c", 0, "ab", 2);
  finish_ok (w);
  uel_writer_free (w);
  g_assert_cmpuint (uel_test_count_temporaries (path), ==, 0);
  {
    g_autoptr (UelHeader) h = uel_test_header_open (path);
    g_autoptr (GBytes) b = read_file (path);
    const guint8 *p = g_bytes_get_data (b, NULL);

    g_assert_cmpuint (g_bytes_get_size (b), ==, 8 + 1048576 + 12);
    g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 2);
    g_assert_cmpmem (p + 8 + 1048576, 12, "12345678abcd", 12);
  }
}

/* ------------------------------------------------------------------ */
/* nothing half-written */

static void
test_abort_removes_temporary (void)
{
  g_autofree gchar *path = uel_test_path ("aborted.safetensors");
  UelWriter *w = writer_ok (path);

  g_assert_cmpuint (uel_test_count_temporaries (path), ==, 1);
  add_ok (w, "x", UEL_DTYPE_U8, 1, (const guint64[]) { 4 });
  write_ok (w, "x", 0, "ab", 2);
  uel_writer_abort (w);
  g_assert_cmpuint (uel_test_count_temporaries (path), ==, 0);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  uel_writer_free (w);

  /* freed without finishing, before and after the header */
  for (guint i = 0; i < 2; i++) {
    w = writer_ok (path);
    add_ok (w, "x", UEL_DTYPE_U8, 1, (const guint64[]) { 4 });
    if (i)
      write_ok (w, "x", 0, "abcd", 4);
    g_assert_cmpuint (uel_test_count_temporaries (path), ==, 1);
    uel_writer_free (w);
    g_assert_cmpuint (uel_test_count_temporaries (path), ==, 0);
    g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  }
}

/* what was at the location stays there when the writer does not finish,
 * for whatever reason */
static void
test_existing_untouched_on_error (void)
{
  g_autofree gchar *path = uel_test_path ("precious.safetensors");
  static const gchar precious[] = "precious bytes";
  GError *err = NULL;

  uel_test_write_bytes (path, precious, sizeof precious);
  for (guint i = 0; i < 3; i++) {
    g_autoptr (UelWriter) w = writer_ok (path);
    g_autoptr (GBytes) now = NULL;

    add_ok (w, "x", UEL_DTYPE_U8, 1, (const guint64[]) { 4 });
    write_ok (w, "x", 0, "ab", 2);
    if (i == 0) {
      /* bytes missing */
      g_assert_false (uel_writer_finish (w, &err));
      g_assert_error (err, UEL_ERROR, UEL_ERROR_INCOMPLETE);
    } else if (i == 1) {
      /* the temporary file vanished: the rename fails */
      write_ok (w, "x", 2, "cd", 2);
      g_assert_cmpuint (uel_test_count_temporaries (path), ==, 1);
      {
        g_autofree gchar *dir = g_path_get_dirname (path);
        GDir *d = g_dir_open (dir, 0, NULL);
        const gchar *name;

        while ((name = g_dir_read_name (d))) {
          if (g_str_has_prefix (name, ".precious.safetensors.")) {
            g_autofree gchar *tmp = g_build_filename (dir, name, NULL);
            g_assert_cmpint (g_unlink (tmp), ==, 0);
          }
        }
        g_dir_close (d);
      }
      g_assert_false (uel_writer_finish (w, &err));
      g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_NOENT);
      assert_error_names (err, path, NULL);
    } else {
      uel_writer_abort (w);
    }
    g_clear_error (&err);
    g_clear_pointer (&w, uel_writer_free);
    now = read_file (path);
    g_assert_cmpmem (g_bytes_get_data (now, NULL), g_bytes_get_size (now),
        precious, sizeof precious);
    g_assert_cmpuint (uel_test_count_temporaries (path), ==, 0);
  }
}

/* no writer for @path: the file system's error, naming it */
static void
assert_no_writer (const gchar * path, gint code)
{
  GError *err = NULL;
  UelWriter *w = uel_writer_new (path, &err);

  assert_refused (w != NULL, err, G_FILE_ERROR, code, path, NULL);
}

static void
test_missing_folder (void)
{
  g_autofree gchar *path = uel_test_path ("no-such-folder/x.safetensors");

  assert_no_writer (path, G_FILE_ERROR_NOENT);
}

static void
test_location_is_a_folder (void)
{
  g_autofree gchar *path = uel_test_path ("a-folder");

  g_assert_cmpint (g_mkdir (path, 0755), ==, 0);
  assert_no_writer (path, G_FILE_ERROR_ISDIR);
}

/* a folder the user cannot write to (as root, in a subprocess that
 * becomes 'nobody': root writes everywhere) */
static void
test_read_only_folder (void)
{
  g_autofree gchar *dir = uel_test_path ("read-only");
  g_autofree gchar *path = g_build_filename (dir, "x.safetensors", NULL);

  if (!g_test_subprocess ()) {
    g_assert_cmpint (g_mkdir (dir, 0555), ==, 0);
    if (uel_test_run_unprivileged (NULL))
      return;
  } else {
    uel_test_drop_privileges ();
  }
  assert_no_writer (path, G_FILE_ERROR_ACCES);
}

/* ------------------------------------------------------------------ */
/* sharded output */

/* a fresh folder for one test's files */
static gchar *
fresh_dir (const gchar * name)
{
  gchar *dir = uel_test_path (name);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  return dir;
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

/* the names in @dir, sorted, joined with spaces */
static gchar *
list_dir (const gchar * dir)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;

  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)))
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (gchar **) names->pdata);
}

/* tensors whose sizes exercise every rule of huggingface_hub's split, with
 * a maximum of 100 bytes: 'a' opens a shard, 'B' (over the maximum) gets
 * its own, numbered before the open one, 'c' (with a DEL, which Python
 * escapes) fits beside 'a', 'dé' does
 * not and opens the third, the empty '🙂' joins it */
static const struct
{
  const gchar *name;
  guint64 n_bytes;
} shard_tensors[] = {
  {"a", 40}, {"B", 120}, {"c\x7f", 40}, {"d\u00e9", 40}, {"\U0001F642", 0},
};

/* json.dumps (index, indent=2, sort_keys=True) + "\n", as transformers
 * writes it (printed by Python 3 for these tensors) */
static const gchar expected_index[] =
    "{\n"
    "  \"metadata\": {\n"
    "    \"total_size\": 240\n"
    "  },\n"
    "  \"weight_map\": {\n"
    "    \"B\": \"model-00001-of-00003.safetensors\",\n"
    "    \"a\": \"model-00002-of-00003.safetensors\",\n"
    "    \"c\\u007f\": \"model-00002-of-00003.safetensors\",\n"
    "    \"d\\u00e9\": \"model-00003-of-00003.safetensors\",\n"
    "    \"\\ud83d\\ude42\": \"model-00003-of-00003.safetensors\"\n"
    "  }\n"
    "}\n";

/* declares and writes the shard_tensors[] whose bits are set in @which
 * (each filled from its own seed) */
static void
write_shard_tensors (UelWriter * w, guint which)
{
  for (guint i = 0; i < G_N_ELEMENTS (shard_tensors); i++)
    if (which & (1u << i))
      add_ok (w, shard_tensors[i].name, UEL_DTYPE_U8, 1,
          &shard_tensors[i].n_bytes);
  for (guint i = 0; i < G_N_ELEMENTS (shard_tensors); i++) {
    guint8 buf[120];

    if (!(which & (1u << i)))
      continue;
    uel_test_fill (buf, sizeof buf, i);
    write_ok (w, shard_tensors[i].name, 0, buf, shard_tensors[i].n_bytes);
  }
}

#define ALL_SHARD_TENSORS ((1u << G_N_ELEMENTS (shard_tensors)) - 1)

/* the shards are the files one writer writes for their tensors alone, the
 * index is transformers', and the reader reads every byte back */
static void
test_shards_as_transformers (void)
{
  g_autofree gchar *dir = fresh_dir ("sharded");
  g_autofree gchar *single = fresh_dir ("sharded-single");
  g_autofree gchar *location = g_build_filename (dir, "model.safetensors",
      NULL);
  g_autofree gchar *index = g_build_filename (dir,
      "model.safetensors.index.json", NULL);
  g_autofree gchar *listing = NULL;
  g_autofree gchar *dup_index = NULL;
  g_autoptr (UelWriter) w = writer_ok (location);
  g_autoptr (GBytes) index_bytes = NULL;
  g_autoptr (UelHeader) h = NULL;
  /* which tensors each shard holds */
  static const guint shards[3] = { 1u << 1, 1u << 0 | 1u << 2,
    1u << 3 | 1u << 4
  };

  uel_writer_set_metadata (w, "format", "pt", NULL);
  uel_writer_set_max_shard_size (w, 100);
  g_assert_cmpuint (uel_writer_get_max_shard_size (w), ==, 100);
  write_shard_tensors (w, ALL_SHARD_TENSORS);
  g_assert_cmpuint (uel_writer_get_n_files (w), ==, 3);
  /* nothing appears before the end */
  listing = list_dir (dir);
  g_assert_false (g_str_has_prefix (listing, "model")
      || strstr (listing, " model"));
  finish_ok (w);
  dup_index = uel_writer_dup_index_path (w);
  g_assert_cmpstr (dup_index, ==, index);

  g_clear_pointer (&listing, g_free);
  listing = list_dir (dir);
  g_assert_cmpstr (listing, ==, "model-00001-of-00003.safetensors "
      "model-00002-of-00003.safetensors model-00003-of-00003.safetensors "
      "model.safetensors.index.json");
  index_bytes = read_file (index);
  g_assert_cmpmem (g_bytes_get_data (index_bytes, NULL),
      g_bytes_get_size (index_bytes), expected_index,
      sizeof expected_index - 1);

  /* each shard: what one writer writes for its tensors */
  for (guint s = 0; s < 3; s++) {
    g_autofree gchar *name = g_strdup_printf ("model-%05u-of-00003"
        ".safetensors", s + 1);
    g_autofree gchar *shard = g_build_filename (dir, name, NULL);
    g_autofree gchar *alone = g_build_filename (single, name, NULL);
    g_autoptr (UelWriter) one = writer_ok (alone);

    g_assert_cmpstr (uel_writer_get_file_path (w, s), ==, shard);
    uel_writer_set_metadata (one, "format", "pt", NULL);
    write_shard_tensors (one, shards[s]);
    finish_ok (one);
    assert_same_file (alone, shard);
  }

  /* read back through the index */
  h = uel_test_header_open (index);
  g_assert_true (uel_header_is_sharded (h));
  g_assert_cmpuint (uel_header_get_n_files (h), ==, 3);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 5);
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 240);
  for (guint i = 0; i < G_N_ELEMENTS (shard_tensors); i++) {
    const UelTensorInfo *t = uel_header_lookup (h, shard_tensors[i].name,
        NULL);
    g_autoptr (GBytes) file = NULL;
    guint8 expected[120];

    g_assert_nonnull (t);
    file = read_file (uel_header_get_file_path (h, t->file_index));
    uel_test_fill (expected, sizeof expected, i);
    g_assert_cmpmem ((const guint8 *) g_bytes_get_data (file, NULL) +
        t->file_offset, t->n_bytes, expected, shard_tensors[i].n_bytes);
  }
}

/* one shard is `model.safetensors` with no index, whether the location
 * names the file or the index; what an earlier output left there that
 * the new one does not replace goes (as huggingface_hub removes it) */
static void
test_one_shard_is_one_file (void)
{
  g_autofree gchar *dir = fresh_dir ("one-shard");
  g_autofree gchar *index = g_build_filename (dir,
      "model.safetensors.index.json", NULL);
  g_autofree gchar *old_shard = g_build_filename (dir,
      "model-00002-of-00002.safetensors", NULL);
  g_autofree gchar *other = g_build_filename (dir, "model-1-of-2.safetensors",
      NULL);
  g_autofree gchar *listing = NULL;
  g_autoptr (UelWriter) w = writer_ok (index);

  uel_test_write_bytes (index, "{}", 2);
  uel_test_write_bytes (old_shard, "old", 3);
  uel_test_write_bytes (other, "kept", 4);
  uel_writer_set_max_shard_size (w, 1000);
  write_shard_tensors (w, ALL_SHARD_TENSORS);
  g_assert_cmpuint (uel_writer_get_n_files (w), ==, 1);
  g_assert_null (uel_writer_dup_index_path (w));
  finish_ok (w);
  listing = list_dir (dir);
  g_assert_cmpstr (listing, ==, "model-1-of-2.safetensors "
      "model.safetensors");
}

/* a sharded output replaces a single file and shards of another count;
 * before the end, and after a failure, everything is as it was */
static void
test_shards_replace_an_earlier_output (void)
{
  g_autofree gchar *dir = fresh_dir ("replaced-shards");
  g_autofree gchar *location = g_build_filename (dir, "model.safetensors",
      NULL);
  g_autofree gchar *index = g_build_filename (dir,
      "model.safetensors.index.json", NULL);
  g_autofree gchar *old_shard = g_build_filename (dir,
      "model-00001-of-00004.safetensors", NULL);
  g_autofree gchar *second = g_build_filename (dir,
      "model-00002-of-00002.safetensors", NULL);
  g_autofree gchar *before = NULL;
  g_autofree gchar *after = NULL;
  g_autoptr (UelWriter) failed = NULL;
  g_autoptr (UelWriter) w = NULL;
  GError *err = NULL;

  uel_test_write_bytes (location, "old", 3);
  uel_test_write_bytes (index, "{}", 2);
  uel_test_write_bytes (old_shard, "old", 3);
  before = list_dir (dir);
  failed = writer_ok (location);

  /* a failure (a tensor missing) and an abort change nothing */
  uel_writer_set_max_shard_size (failed, 100);
  add_ok (failed, "missing", UEL_DTYPE_U8, 0, NULL);
  write_shard_tensors (failed, 1u << 0 | 1u << 1);
  g_assert_false (uel_writer_finish (failed, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INCOMPLETE);
  g_clear_error (&err);
  after = list_dir (dir);
  g_assert_cmpuint (uel_test_count_temporaries (location), ==, 1);
  g_assert_cmpuint (uel_test_count_temporaries (second), ==, 1);
  g_clear_pointer (&failed, uel_writer_free);
  g_clear_pointer (&after, g_free);
  after = list_dir (dir);
  g_assert_cmpstr (after, ==, before);

  w = writer_ok (location);
  uel_writer_set_max_shard_size (w, 100);
  write_shard_tensors (w, ALL_SHARD_TENSORS);
  finish_ok (w);
  g_clear_pointer (&after, g_free);
  after = list_dir (dir);
  g_assert_cmpstr (after, ==, "model-00001-of-00003.safetensors "
      "model-00002-of-00003.safetensors model-00003-of-00003.safetensors "
      "model.safetensors.index.json");
}

/* ------------------------------------------------------------------ */
/* a writer killed mid-write */

#define KILLED_ENV "UEL_TEST_WRITER_KILLED_IN"

/* The process that test_killed() kills: in the folder @dir, a writer of
 * `killed.safetensors` and a sharded writer of `model.safetensors`, each
 * with half of its data written; says so on stdout and waits for its
 * end. */
static int
killed_child (const gchar * dir)
{
  g_autofree gchar *single = g_build_filename (dir, "killed.safetensors",
      NULL);
  g_autofree gchar *sharded = g_build_filename (dir, "model.safetensors",
      NULL);
  g_autoptr (UelWriter) a = writer_ok (single);
  g_autoptr (UelWriter) b = writer_ok (sharded);
  static const guint64 shape[] = { 1 << 20 };
  g_autofree guint8 *half = g_malloc0 (shape[0] / 2);

  add_ok (a, "x", UEL_DTYPE_U8, 1, shape);
  write_ok (a, "x", 0, half, shape[0] / 2);
  uel_writer_set_max_shard_size (b, shape[0]);
  add_ok (b, "x", UEL_DTYPE_U8, 1, shape);
  add_ok (b, "y", UEL_DTYPE_U8, 1, shape);
  write_ok (b, "x", 0, half, shape[0] / 2);
  g_assert_cmpint (write (STDOUT_FILENO, "R", 1), ==, 1);
  for (;;)
    pause ();
  return 0;
}

/* kill -9 in the middle of a write leaves the files under their final
 * names as they were, and the temporaries (`.NAME.XXXXXX`) behind */
static void
test_killed (void)
{
  g_autofree gchar *dir = fresh_dir ("killed");
  g_autofree gchar *single = g_build_filename (dir, "killed.safetensors",
      NULL);
  g_autofree gchar *index = g_build_filename (dir,
      "model.safetensors.index.json", NULL);
  g_autofree gchar *before = NULL;
  g_autofree gchar *after = NULL;
  g_autoptr (GBytes) old = NULL;
  gchar *argv[] = { (gchar *) "/proc/self/exe", NULL };
  g_auto (GStrv) envp = g_environ_setenv (g_get_environ (), KILLED_ENV, dir,
      TRUE);
  GError *err = NULL;
  GPid pid;
  gint out, status;
  gchar ready = 0;
  g_autofree gchar *exe = g_file_read_link ("/proc/self/exe", NULL);

  uel_test_write_bytes (single, "old", 3);
  uel_test_write_bytes (index, "{}", 2);
  before = list_dir (dir);
  argv[0] = exe;
  g_assert_true (g_spawn_async_with_pipes (NULL, argv, envp,
          G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, NULL, &out, NULL,
          &err));
  g_assert_no_error (err);
  g_assert_cmpint (read (out, &ready, 1), ==, 1);
  g_assert_cmpint (ready, ==, 'R');
  g_assert_cmpint (kill (pid, SIGKILL), ==, 0);
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
  close (out);
  g_spawn_close_pid (pid);

  old = read_file (single);
  g_assert_cmpmem (g_bytes_get_data (old, NULL), g_bytes_get_size (old),
      "old", 3);
  g_clear_pointer (&old, g_bytes_unref);
  old = read_file (index);
  g_assert_cmpmem (g_bytes_get_data (old, NULL), g_bytes_get_size (old),
      "{}", 2);
  /* the temporaries remain: the single file's and the two shards' (the
   * index's is made at the end) */
  g_assert_cmpuint (uel_test_count_temporaries (single), ==, 1);
  after = list_dir (dir);
  g_test_message ("%s", after);
  {
    g_auto (GStrv) names = g_strsplit (after, " ", -1);
    guint n_tmp = 0;

    for (guint i = 0; names[i]; i++)
      if (names[i][0] == '.') {
        g_autofree gchar *path = g_build_filename (dir, names[i], NULL);

        n_tmp++;
        g_assert_cmpint (g_unlink (path), ==, 0);
      } else {
        g_assert_nonnull (strstr (before, names[i]));
      }
    g_assert_cmpuint (n_tmp, ==, 3);
  }
}

int
main (int argc, char **argv)
{
  if (g_getenv (KILLED_ENV))
    return killed_child (g_getenv (KILLED_ENV));
  uel_test_init (&argc, &argv);

  g_test_add_func ("/writer/writes-the-references-bytes",
      test_reference_bytes);
  g_test_add_func ("/writer/rewrites-the-older-reference-samples",
      test_reference_samples);
  g_test_add_func ("/writer/round-trips-through-the-reader",
      test_round_trip);
  g_test_add_func ("/writer/orders-by-the-references-dtype-then-name",
      test_reference_order);
  g_test_add_func ("/writer/writes-an-empty-file-as-the-reference",
      test_nothing);
  g_test_add_func ("/writer/takes-pieces-from-several-threads", test_threads);
  g_test_add_func ("/writer/zeros-take-no-disk-space", test_zeros);
  g_test_add_func ("/writer/replaces-an-existing-file-at-the-end",
      test_replaces_existing);
  g_test_add_func ("/writer/refuses-what-a-reader-would-refuse",
      test_refuses_declarations);
  g_test_add_func ("/writer/refuses-writes-outside-or-twice",
      test_refuses_writes);
  g_test_add_func ("/writer/refuses-a-header-over-the-limit",
      test_header_too_large);
  g_test_add_func ("/writer/incremental/writes-the-python-writers-bytes",
      test_incremental_reference_bytes);
  g_test_add_func ("/writer/incremental/rounds-and-bounds-the-reserve",
      test_incremental_reserve);
  g_test_add_func ("/writer/incremental/refuses-a-header-over-its-block",
      test_incremental_header_too_large);
  g_test_add_func ("/writer/incremental/refuses-and-leaves-nothing",
      test_incremental_refusals);
  g_test_add_func ("/writer/abort-removes-the-temporary-file",
      test_abort_removes_temporary);
  g_test_add_func ("/writer/existing-file-untouched-on-error",
      test_existing_untouched_on_error);
  g_test_add_func ("/writer/missing-folder-is-noent", test_missing_folder);
  g_test_add_func ("/writer/location-that-is-a-folder-is-isdir",
      test_location_is_a_folder);
  g_test_add_func ("/writer/read-only-folder-is-acces",
      test_read_only_folder);
  g_test_add_func ("/writer/shards-as-transformers-does",
      test_shards_as_transformers);
  g_test_add_func ("/writer/one-shard-is-one-file-without-index",
      test_one_shard_is_one_file);
  g_test_add_func ("/writer/shards-replace-an-earlier-output-at-the-end",
      test_shards_replace_an_earlier_output);
  g_test_add_func ("/writer/killed-mid-write-leaves-the-old-files",
      test_killed);
  return g_test_run ();
}
