/* gst-uel: the uelconvert element
 * SPDX-License-Identifier: MIT
 *
 * The element's bytes are checked against uel_convert_cpu() (whose results
 * test-convert checks against ml_dtypes); here: which tensors convert, the
 * metas of the results, chunks.
 */
#include "config.h"

#include <string.h>

#include "test-utils.h"

typedef struct
{
  const gchar *name, *dtype, *shape;
  gsize n_bytes;
} TensorSpec;

static const TensorSpec tensors[] = {
  {"w.f32", "F32", "[4,8]", 128},
  {"w.f16", "F16", "[16]", 32},
  {"b.bf16", "BF16", "[10]", 20},
  {"ids", "I32", "[6]", 24},
  {"x.f64", "F64", "[5]", 40},
  {"e4", "F8_E4M3", "[12]", 12},
  {"big", "F32", "[3000]", 12000},
};

/* the test file, written once; its data section in @data */
static const gchar *
test_file (const guint8 ** data)
{
  static gchar *path;
  static UelTestBuilder *b;
  static const guint8 *bytes;

  if (!path) {
    path = uel_test_path ("convert.safetensors");
    b = uel_test_builder_new ();
    for (guint i = 0; i < G_N_ELEMENTS (tensors); i++)
      uel_test_builder_add (b, tensors[i].name, tensors[i].dtype,
          tensors[i].shape, tensors[i].n_bytes, NULL);
    bytes = uel_test_builder_write (b, path, NULL);
  }
  if (data)
    *data = bytes;
  return path;
}

/* the bytes of tensor @i in the file */
static const guint8 *
tensor_bytes (guint i)
{
  const guint8 *data;
  gsize offset = 0;

  test_file (&data);
  for (guint k = 0; k < i; k++)
    offset += tensors[k].n_bytes;
  return data + offset;
}

static guint
tensor_number (const gchar * name)
{
  for (guint i = 0; i < G_N_ELEMENTS (tensors); i++)
    if (g_str_equal (tensors[i].name, name))
      return i;
  g_assert_not_reached ();
}

/* runs uelsrc (with @src_props) ! uelconvert @props ! fakesink */
static GPtrArray *
run (const gchar * src_props, const gchar * props)
{
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" %s ! "
      "uelconvert %s ! fakesink name=sink signal-handoffs=true",
      test_file (NULL), src_props, props);
  GPtrArray *buffers = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_buffer_unref);
  GError *err = uel_test_run_pipeline (launch, buffers);

  g_assert_no_error (err);
  return buffers;
}

/* Checks that @buf holds tensor @name converted to @to (or unchanged for
 * UEL_DTYPE_INVALID), as the library converts it. */
static void
check_buffer (GstBuffer * buf, const gchar * name, UelDType to)
{
  UelTensorMeta *m = uel_buffer_get_tensor_meta (buf);
  guint i = tensor_number (name);
  UelDType from = uel_dtype_from_string (tensors[i].dtype, -1);
  gsize n = tensors[i].n_bytes / (uel_dtype_get_bits (from) / 8);
  g_autofree guint8 *want = NULL;
  gsize want_len = tensors[i].n_bytes;
  GError *err = NULL;
  GstMapInfo map;

  g_assert_nonnull (m);
  g_assert_cmpstr (uel_tensor_meta_get_name (m), ==, name);
  if (to == UEL_DTYPE_INVALID) {
    want = g_memdup2 (tensor_bytes (i), want_len);
    to = from;
  } else {
    want_len = n * (uel_dtype_get_bits (to) / 8);
    want = g_malloc (want_len);
    g_assert_true (uel_convert_cpu (from, to, tensor_bytes (i), want, n,
            &err));
    g_assert_no_error (err);
  }
  g_assert_cmpstr (uel_dtype_to_string (m->dtype), ==,
      uel_dtype_to_string (to));
  g_assert_cmpuint (m->n_bytes, ==, want_len);
  g_assert_true (m->last_chunk);
  g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size, want, want_len);
  gst_buffer_unmap (buf, &map);
}

static void
test_casts_like_the_library (void)
{
  g_autoptr (GPtrArray) bufs = run ("", "dtype=bf16");

  g_assert_cmpuint (bufs->len, ==, G_N_ELEMENTS (tensors));
  check_buffer (bufs->pdata[0], "w.f32", UEL_DTYPE_BF16);
  check_buffer (bufs->pdata[1], "w.f16", UEL_DTYPE_BF16);
  /* already BF16: the same buffer passes */
  check_buffer (bufs->pdata[2], "b.bf16", UEL_DTYPE_INVALID);
  check_buffer (bufs->pdata[3], "ids", UEL_DTYPE_INVALID);
  check_buffer (bufs->pdata[4], "x.f64", UEL_DTYPE_BF16);
  check_buffer (bufs->pdata[5], "e4", UEL_DTYPE_BF16);
  check_buffer (bufs->pdata[6], "big", UEL_DTYPE_BF16);
}

static void
test_fp8_targets (void)
{
  g_autoptr (GPtrArray) bufs = run ("", "dtype=f8-e4m3");
  g_autoptr (GPtrArray) bufs2 = run ("tensors=e4,w.f16",
      "dtype=f8-e5m2");

  check_buffer (bufs->pdata[0], "w.f32", UEL_DTYPE_F8_E4M3);
  check_buffer (bufs->pdata[3], "ids", UEL_DTYPE_INVALID);
  check_buffer (bufs->pdata[4], "x.f64", UEL_DTYPE_F8_E4M3);
  check_buffer (bufs->pdata[5], "e4", UEL_DTYPE_INVALID);
  g_assert_cmpuint (bufs2->len, ==, 2);
  check_buffer (bufs2->pdata[0], "w.f16", UEL_DTYPE_F8_E5M2);
  check_buffer (bufs2->pdata[1], "e4", UEL_DTYPE_F8_E5M2);
}

static void
test_none_passes_everything (void)
{
  g_autoptr (GPtrArray) bufs = run ("", "");

  g_assert_cmpuint (bufs->len, ==, G_N_ELEMENTS (tensors));
  for (guint i = 0; i < bufs->len; i++)
    check_buffer (bufs->pdata[i], tensors[i].name, UEL_DTYPE_INVALID);
}

static void
test_selects_by_name_glob_and_dtype (void)
{
  g_autoptr (GPtrArray) glob = run ("", "dtype=f32 tensors=\"w.*\"");
  g_autoptr (GPtrArray) names = run ("", "dtype=f16 tensors=\"x.f64,e4\"");
  g_autoptr (GPtrArray) dtypes = run ("", "dtype=f16 dtypes=F32,bf16");
  g_autoptr (GPtrArray) both = run ("", "dtype=f16 tensors=\"w.*,big\" "
      "dtypes=F32");

  check_buffer (glob->pdata[0], "w.f32", UEL_DTYPE_INVALID);
  check_buffer (glob->pdata[1], "w.f16", UEL_DTYPE_F32);
  check_buffer (glob->pdata[2], "b.bf16", UEL_DTYPE_INVALID);
  check_buffer (glob->pdata[6], "big", UEL_DTYPE_INVALID);

  check_buffer (names->pdata[0], "w.f32", UEL_DTYPE_INVALID);
  check_buffer (names->pdata[4], "x.f64", UEL_DTYPE_F16);
  check_buffer (names->pdata[5], "e4", UEL_DTYPE_F16);

  check_buffer (dtypes->pdata[0], "w.f32", UEL_DTYPE_F16);
  check_buffer (dtypes->pdata[2], "b.bf16", UEL_DTYPE_F16);
  check_buffer (dtypes->pdata[4], "x.f64", UEL_DTYPE_INVALID);
  check_buffer (dtypes->pdata[5], "e4", UEL_DTYPE_INVALID);
  check_buffer (dtypes->pdata[6], "big", UEL_DTYPE_F16);

  check_buffer (both->pdata[0], "w.f32", UEL_DTYPE_F16);
  check_buffer (both->pdata[1], "w.f16", UEL_DTYPE_INVALID);
  check_buffer (both->pdata[6], "big", UEL_DTYPE_F16);
  /* integers never convert, even when named */
  {
    g_autoptr (GPtrArray) ints = run ("", "dtype=f32 tensors=ids "
        "dtypes=I32");

    check_buffer (ints->pdata[3], "ids", UEL_DTYPE_INVALID);
  }
}

/* chunk-size=1000 cuts F32 "big" on element boundaries: each chunk
 * converts on its own, its offset scaled */
static void
test_converts_chunks (void)
{
  g_autoptr (GPtrArray) bufs = run ("tensors=big chunk-size=1000",
      "dtype=f8-e5m2");
  guint i = tensor_number ("big");
  gsize n = tensors[i].n_bytes / 4;
  g_autofree guint8 *want = g_malloc (n);
  GError *err = NULL;
  gsize offset = 0;

  g_assert_true (uel_convert_cpu (UEL_DTYPE_F32, UEL_DTYPE_F8_E5M2,
          tensor_bytes (i), want, n, &err));
  g_assert_no_error (err);
  g_assert_cmpuint (bufs->len, ==, 12);
  for (guint k = 0; k < bufs->len; k++) {
    GstBuffer *buf = bufs->pdata[k];
    UelTensorMeta *m = uel_buffer_get_tensor_meta (buf);
    GstMapInfo map;

    g_assert_cmpint (m->dtype, ==, UEL_DTYPE_F8_E5M2);
    g_assert_cmpuint (m->n_bytes, ==, n);
    g_assert_cmpuint (m->chunk_index, ==, k);
    g_assert_cmpuint (m->chunk_offset, ==, offset);
    g_assert_cmpint (m->last_chunk, ==, k + 1 == bufs->len);
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpuint (map.size, ==, 250);
    g_assert_cmpmem (map.data, map.size, want + offset, 250);
    offset += map.size;
    gst_buffer_unmap (buf, &map);
  }
  g_assert_cmpuint (offset, ==, n);
}

/* chunk-size=1001 cuts F32 elements: refused with an error */
static void
test_refuses_chunks_that_cut_elements (void)
{
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" "
      "tensors=big chunk-size=1001 ! uelconvert dtype=bf16 ! fakesink",
      test_file (NULL));
  GError *err = uel_test_run_pipeline (launch, NULL);

  g_assert_error (err, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT);
  g_assert_nonnull (strstr (err->message, "'big'"));
  g_clear_error (&err);

  /* not selected: the chunks pass */
  g_free (launch);
  launch = g_strdup_printf ("uelsrc location=\"%s\" tensors=big "
      "chunk-size=1001 ! uelconvert dtype=bf16 dtypes=F16 ! fakesink",
      test_file (NULL));
  err = uel_test_run_pipeline (launch, NULL);
  g_assert_no_error (err);
}

static void
test_invalid_dtypes_stay_unchanged (void)
{
  GstElement *e = gst_element_factory_make ("uelconvert", NULL);
  g_autofree gchar *value = NULL;

  g_object_set (e, "dtypes", "F32", NULL);
  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING,
      "*'dtypes' property is invalid*F99*");
  g_object_set (e, "dtypes", "F99", NULL);
  g_test_assert_expected_messages ();
  g_object_get (e, "dtypes", &value, NULL);
  g_assert_cmpstr (value, ==, "F32");
  gst_object_unref (e);
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/uelconvert/casts-like-the-library",
      test_casts_like_the_library);
  g_test_add_func ("/uelconvert/casts-to-fp8", test_fp8_targets);
  g_test_add_func ("/uelconvert/none-passes-everything",
      test_none_passes_everything);
  g_test_add_func ("/uelconvert/selects-by-name-glob-and-dtype",
      test_selects_by_name_glob_and_dtype);
  g_test_add_func ("/uelconvert/converts-chunks-on-element-boundaries",
      test_converts_chunks);
  g_test_add_func ("/uelconvert/refuses-chunks-that-cut-elements",
      test_refuses_chunks_that_cut_elements);
  g_test_add_func ("/uelconvert/invalid-dtypes-stay-unchanged",
      test_invalid_dtypes_stay_unchanged);

  return g_test_run ();
}
