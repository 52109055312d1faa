/* gst-uel: the safetensors header parser (UelHeader) against the reference
 * implementation's rules, its conformance vectors and hostile files
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-utils.h"

/* ------------------------------------------------------------------ */
/* helpers */

#define assert_contains(s, sub) G_STMT_START {                              \
    const gchar *_s = (s), *_sub = (sub);                                   \
    if (strstr (_s, _sub) == NULL)                                          \
      g_assertion_message_cmpstr (G_LOG_DOMAIN, __FILE__, __LINE__,         \
          G_STRFUNC, "strstr (" #s ", " #sub ")", _s, "contains", _sub);    \
  } G_STMT_END

/* one tensor entry of a header, as JSON text */
#define T(name, dtype, shape, offsets) \
  "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape \
  ",\"data_offsets\":" offsets "}"

/* A file in the test folder named after @slug: every test writes its own
 * files, so that the tests can run in any order or alone. */
static gchar *
file_for (const gchar * slug, const gchar * suffix)
{
  g_autofree gchar *name = g_strconcat (slug, suffix, NULL);

  g_strdelimit (name, "/", '-');
  return uel_test_path (name);
}

/* 8-byte little-endian @declared_len, then @len header bytes (which may
 * contain NUL or invalid UTF-8, and need not be @declared_len long), then
 * @data_len bytes of data */
static void
write_raw (const gchar * path, guint64 declared_len, gconstpointer header,
    gsize len, gconstpointer data, gsize data_len)
{
  guint64 le = GUINT64_TO_LE (declared_len);
  g_autoptr (GByteArray) b = g_byte_array_sized_new (8 + len + data_len);

  g_byte_array_append (b, (const guint8 *) &le, 8);
  if (len)
    g_byte_array_append (b, header, (guint) len);
  if (data_len)
    g_byte_array_append (b, data, (guint) data_len);
  uel_test_write_bytes (path, b->data, b->len);
}

/* a header followed by @data_len bytes of data that the header ought to
 * describe */
static void
write_with_data (const gchar * path, const gchar * header, gsize len,
    gsize data_len)
{
  g_autofree guint8 *data = g_malloc (data_len + 1);

  uel_test_fill (data, data_len, 7);
  write_raw (path, len, header, len, data, data_len);
}

/* @location is rejected with exactly @domain and @code, and the message
 * names the file (and @what, where it is not NULL: a tensor, a shard) */
static void
assert_rejected (const gchar * location, GQuark domain, gint code,
    const gchar * what)
{
  g_autoptr (GError) err = NULL;
  g_autoptr (UelHeader) h = uel_header_open (location, &err);

  g_assert_null (h);
  g_assert_error (err, domain, code);
  g_test_message ("rejected as expected: %s", err->message);
  assert_contains (err->message, location);
  if (what)
    assert_contains (err->message, what);
}

/* @before, @depth arrays nested in each other ("[[[...]]]"), @after */
static gchar *
nested (const gchar * before, guint depth, const gchar * after)
{
  GString *s = g_string_new (before);

  for (guint i = 0; i < depth; i++)
    g_string_append_c (s, '[');
  for (guint i = 0; i < depth; i++)
    g_string_append_c (s, ']');
  g_string_append (s, after);
  return g_string_free (s, FALSE);
}

static const UelTensorInfo *
lookup_ok (const UelHeader * h, const gchar * name, guint * index)
{
  const UelTensorInfo *info = uel_header_lookup (h, name, index);

  if (!info)
    g_assertion_message_cmpstr (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC,
        "uel_header_lookup (h, name, index) finds", name, "in", "the table");
  g_assert_cmpstr (info->name, ==, name);
  return info;
}

/* the tensor's bytes, read where the header says they are */
static guint8 *
read_tensor (const UelHeader * h, const UelTensorInfo * info)
{
  const gchar *path = uel_header_get_file_path (h, info->file_index);
  guint8 *buf = g_malloc (info->n_bytes + 1);
  GError *err = NULL;
  gint fd = open (path, O_RDONLY | O_CLOEXEC);

  g_assert_cmpint (fd, >=, 0);
  uel_pread_full (fd, buf, info->n_bytes, info->file_offset, path, &err);
  g_assert_no_error (err);
  close (fd);
  return buf;
}

/* ------------------------------------------------------------------ */
/* the reference's conformance vectors */

typedef struct
{
  const gchar *name;            /* file and tensor name */
  UelDType dtype;
  guint item_size;
} Vector;

static const Vector vectors[] = {
  {"B", UEL_DTYPE_U8, 1},
  {"H", UEL_DTYPE_U16, 2},
  {"I", UEL_DTYPE_U32, 4},
  {"b", UEL_DTYPE_I8, 1},
  {"d", UEL_DTYPE_F64, 8},
  {"e", UEL_DTYPE_F16, 2},
  {"f", UEL_DTYPE_F32, 4},
  {"h", UEL_DTYPE_I16, 2},
  {"i", UEL_DTYPE_I32, 4},
};

/* the six values -3, -2, -1, 0, 1, 2 of the vectors, decoded one by one */
static void
check_minus_three_to_two (const guint8 * p, UelDType dtype)
{
  static const guint8 u8[] = { 253, 254, 255, 0, 1, 2 };
  static const guint16 u16[] = { 65533, 65534, 65535, 0, 1, 2 };
  static const guint32 u32[] = {
    4294967293u, 4294967294u, 4294967295u, 0, 1, 2
  };
  /* IEEE binary16 bit patterns of -3 -2 -1 0 1 2 */
  static const guint16 f16[] = {
    0xc200, 0xc000, 0xbc00, 0x0000, 0x3c00, 0x4000
  };

  for (guint i = 0; i < 6; i++) {
    gint want = (gint) i - 3;

    switch (dtype) {
      case UEL_DTYPE_U8:
        g_assert_cmpuint (p[i], ==, u8[i]);
        break;
      case UEL_DTYPE_I8:
        g_assert_cmpint ((gint8) p[i], ==, want);
        break;
      case UEL_DTYPE_U16:{
        guint16 v;

        memcpy (&v, p + 2 * i, 2);
        g_assert_cmpuint (GUINT16_FROM_LE (v), ==, u16[i]);
        break;
      }
      case UEL_DTYPE_I16:{
        guint16 v;

        memcpy (&v, p + 2 * i, 2);
        g_assert_cmpint ((gint16) GUINT16_FROM_LE (v), ==, want);
        break;
      }
      case UEL_DTYPE_U32:{
        guint32 v;

        memcpy (&v, p + 4 * i, 4);
        g_assert_cmpuint (GUINT32_FROM_LE (v), ==, u32[i]);
        break;
      }
      case UEL_DTYPE_I32:{
        guint32 v;

        memcpy (&v, p + 4 * i, 4);
        g_assert_cmpint ((gint32) GUINT32_FROM_LE (v), ==, want);
        break;
      }
      case UEL_DTYPE_F16:{
        guint16 v;

        memcpy (&v, p + 2 * i, 2);
        g_assert_cmphex (GUINT16_FROM_LE (v), ==, f16[i]);
        break;
      }
      case UEL_DTYPE_F32:{
        guint32 v;
        gfloat f;

        memcpy (&v, p + 4 * i, 4);
        v = GUINT32_FROM_LE (v);
        memcpy (&f, &v, 4);
        g_assert_cmpfloat (f, ==, (gfloat) want);
        break;
      }
      case UEL_DTYPE_F64:{
        guint64 v;
        gdouble d;

        memcpy (&v, p + 8 * i, 8);
        v = GUINT64_FROM_LE (v);
        memcpy (&d, &v, 8);
        g_assert_cmpfloat (d, ==, (gdouble) want);
        break;
      }
      default:
        g_assert_not_reached ();
    }
  }
}

static void
check_vector_tensor (const UelHeader * h, const UelTensorInfo * info,
    const Vector * v, guint64 data_begin)
{
  g_autofree guint8 *bytes = NULL;

  g_assert_cmpstr (info->name, ==, v->name);
  g_assert_cmpint (info->dtype, ==, v->dtype);
  g_assert_cmpstr (uel_dtype_to_string (info->dtype), ==,
      uel_dtype_to_string (v->dtype));
  g_assert_cmpuint (info->n_dims, ==, 1);
  g_assert_cmpuint (info->shape[0], ==, 6);
  g_assert_cmpuint (info->n_elements, ==, 6);
  g_assert_cmpuint (info->n_bytes, ==, 6 * v->item_size);
  g_assert_cmpuint (info->data_begin, ==, data_begin);
  g_assert_cmpuint (info->file_offset, ==,
      uel_header_get_data_offset (h, 0) + data_begin);
  g_assert_cmpuint (info->file_index, ==, 0);

  bytes = read_tensor (h, info);
  check_minus_three_to_two (bytes, v->dtype);
}

static void
check_vector_file (const UelHeader * h, const gchar * path,
    guint64 header_len, guint64 file_size)
{
  GHashTable *meta = uel_header_get_metadata (h);

  g_assert_cmpstr (uel_header_get_location (h), ==, path);
  g_assert_false (uel_header_is_sharded (h));
  g_assert_cmpuint (uel_header_get_n_files (h), ==, 1);
  g_assert_cmpstr (uel_header_get_file_path (h, 0), ==, path);
  g_assert_cmpuint (uel_header_get_file_size (h, 0), ==, file_size);
  g_assert_cmpuint (uel_header_get_data_offset (h, 0), ==, 8 + header_len);
  g_assert_cmpuint (g_hash_table_size (meta), ==, 1);
  g_assert_cmpstr (g_hash_table_lookup (meta, "test"), ==, "a");
}

/* the length prefix and size of a file, read independently of the parser */
static void
file_layout (const gchar * path, guint64 * header_len, guint64 * file_size)
{
  g_autofree gchar *contents = NULL;
  gsize len;
  guint64 le;
  GError *err = NULL;

  g_file_get_contents (path, &contents, &len, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (len, >=, 8);
  memcpy (&le, contents, 8);
  *header_len = GUINT64_FROM_LE (le);
  *file_size = len;
}

static void
test_conformance_single (gconstpointer data)
{
  const Vector *v = data;
  g_autofree gchar *name = g_strconcat (v->name, ".safetensors", NULL);
  g_autofree gchar *path =
      g_build_filename (uel_test_conformance_dir (), name, NULL);
  g_autoptr (UelHeader) h = NULL;
  guint64 header_len, file_size;
  guint index = G_MAXUINT;

  file_layout (path, &header_len, &file_size);
  h = uel_test_header_open (path);
  check_vector_file (h, path, header_len, file_size);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 1);
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 6 * v->item_size);
  g_assert_cmpuint (8 + header_len + 6 * v->item_size, ==, file_size);
  check_vector_tensor (h, uel_header_get_tensor (h, 0), v, 0);
  g_assert_true (lookup_ok (h, v->name, &index) ==
      uel_header_get_tensor (h, 0));
  g_assert_cmpuint (index, ==, 0);
}

static void
test_conformance_overall (void)
{
  g_autofree gchar *path = g_build_filename (uel_test_conformance_dir (),
      "overall.safetensors", NULL);
  g_autoptr (UelHeader) h = NULL;
  guint64 header_len, file_size, begin = 0;

  file_layout (path, &header_len, &file_size);
  h = uel_test_header_open (path);
  check_vector_file (h, path, header_len, file_size);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, G_N_ELEMENTS (vectors));

  /* file order, B H I b d e f h i, which is also the header's order */
  for (guint i = 0; i < G_N_ELEMENTS (vectors); i++) {
    const UelTensorInfo *info = uel_header_get_tensor (h, i);
    guint index = G_MAXUINT;

    check_vector_tensor (h, info, &vectors[i], begin);
    g_assert_true (lookup_ok (h, vectors[i].name, &index) == info);
    g_assert_cmpuint (index, ==, i);
    begin += info->n_bytes;
  }
  g_assert_cmpuint (begin, ==, 168);
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 168);
  g_assert_cmpuint (8 + header_len + 168, ==, file_size);
}

/* ------------------------------------------------------------------ */
/* valid files */

static const struct
{
  const gchar *name;
  UelDType dtype;
  guint bits;
} all_dtypes[] = {
  {"BOOL", UEL_DTYPE_BOOL, 8},
  {"U8", UEL_DTYPE_U8, 8},
  {"I8", UEL_DTYPE_I8, 8},
  {"F8_E5M2", UEL_DTYPE_F8_E5M2, 8},
  {"F8_E4M3", UEL_DTYPE_F8_E4M3, 8},
  {"F8_E8M0", UEL_DTYPE_F8_E8M0, 8},
  {"F8_E4M3FNUZ", UEL_DTYPE_F8_E4M3FNUZ, 8},
  {"F8_E5M2FNUZ", UEL_DTYPE_F8_E5M2FNUZ, 8},
  {"F4", UEL_DTYPE_F4, 4},
  {"F6_E2M3", UEL_DTYPE_F6_E2M3, 6},
  {"F6_E3M2", UEL_DTYPE_F6_E3M2, 6},
  {"I16", UEL_DTYPE_I16, 16},
  {"U16", UEL_DTYPE_U16, 16},
  {"F16", UEL_DTYPE_F16, 16},
  {"BF16", UEL_DTYPE_BF16, 16},
  {"I32", UEL_DTYPE_I32, 32},
  {"U32", UEL_DTYPE_U32, 32},
  {"F32", UEL_DTYPE_F32, 32},
  {"C64", UEL_DTYPE_C64, 64},
  {"F64", UEL_DTYPE_F64, 64},
  {"I64", UEL_DTYPE_I64, 64},
  {"U64", UEL_DTYPE_U64, 64},
};

static void
test_every_dtype (void)
{
  g_autofree gchar *path = file_for ("every-dtype", ".safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (UelHeader) h = NULL;
  const guint8 *data;
  gsize data_len;
  guint64 begin = 0;

  g_assert_cmpuint (G_N_ELEMENTS (all_dtypes), ==, 22);
  g_assert_cmpuint (G_N_ELEMENTS (all_dtypes), ==, UEL_DTYPE_N_TYPES - 1);
  for (guint i = 0; i < G_N_ELEMENTS (all_dtypes); i++) {
    g_autofree gchar *name = g_strdup_printf ("t.%s", all_dtypes[i].name);

    /* 4 elements: 2 bytes of F4, 3 bytes of F6 */
    uel_test_builder_add (b, name, all_dtypes[i].name, "[4]",
        4 * all_dtypes[i].bits / 8, NULL);
  }
  data = uel_test_builder_write (b, path, &data_len);

  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 22);
  for (guint i = 0; i < G_N_ELEMENTS (all_dtypes); i++) {
    const UelTensorInfo *info = uel_header_get_tensor (h, i);
    g_autofree gchar *name = g_strdup_printf ("t.%s", all_dtypes[i].name);
    g_autofree guint8 *bytes = NULL;

    g_assert_cmpstr (info->name, ==, name);
    g_assert_cmpint (info->dtype, ==, all_dtypes[i].dtype);
    g_assert_cmpstr (uel_dtype_to_string (info->dtype), ==,
        all_dtypes[i].name);
    g_assert_cmpuint (info->n_dims, ==, 1);
    g_assert_cmpuint (info->shape[0], ==, 4);
    g_assert_cmpuint (info->n_elements, ==, 4);
    g_assert_cmpuint (info->n_bytes, ==, 4 * all_dtypes[i].bits / 8);
    g_assert_cmpuint (info->data_begin, ==, begin);
    g_assert_cmpuint (info->file_offset, ==,
        uel_header_get_data_offset (h, 0) + begin);
    bytes = read_tensor (h, info);
    g_assert_cmpmem (bytes, info->n_bytes, data + begin, info->n_bytes);
    begin += info->n_bytes;
  }
  g_assert_cmpuint (uel_header_get_tensor (h, 8)->n_bytes, ==, 2);
  g_assert_cmpuint (uel_header_get_tensor (h, 9)->n_bytes, ==, 3);
  g_assert_cmpuint (uel_header_get_tensor (h, 10)->n_bytes, ==, 3);
  g_assert_cmpuint (begin, ==, data_len);
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, data_len);
}

static void
test_sub_byte_sizes (void)
{
  static const struct
  {
    const gchar *dtype, *shape;
    guint64 n_elements, n_bytes;
  } cases[] = {
    {"F4", "[4]", 4, 2},
    {"F4", "[2]", 2, 1},
    {"F4", "[2,3]", 6, 3},
    {"F4", "[0]", 0, 0},
    {"F6_E2M3", "[4]", 4, 3},
    {"F6_E3M2", "[4]", 4, 3},
    {"F6_E3M2", "[2,4]", 8, 6},
    {"F6_E2M3", "[4,1,1]", 4, 3},
  };
  g_autofree gchar *path = file_for ("sub-byte-sizes", ".safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (UelHeader) h = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", i);

    uel_test_builder_add (b, name, cases[i].dtype, cases[i].shape,
        cases[i].n_bytes, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, G_N_ELEMENTS (cases));
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree gchar *name = g_strdup_printf ("t%u", i);
    const UelTensorInfo *info = lookup_ok (h, name, NULL);

    g_assert_cmpstr (uel_dtype_to_string (info->dtype), ==, cases[i].dtype);
    g_assert_cmpuint (info->n_elements, ==, cases[i].n_elements);
    g_assert_cmpuint (info->n_bytes, ==, cases[i].n_bytes);
  }
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 2 + 1 + 3 + 3 + 3 + 6
      + 3);
}

static void
test_scalars (void)
{
  static const gchar header[] = "{"
      T ("f32", "F32", "[]", "[0,4]") ","
      T ("u8", "U8", "[]", "[4,5]") ","
      T ("f64", "F64", "[]", "[5,13]") ","
      T ("bool", "BOOL", "[ ]", "[13,14]") ","
      T ("c64", "C64", "[]", "[14,22]") "}";
  g_autofree gchar *path = file_for ("scalars", ".safetensors");
  g_autoptr (UelHeader) h = NULL;
  static const struct
  {
    const gchar *name;
    guint64 n_bytes;
  } want[] = { {"f32", 4}, {"u8", 1}, {"f64", 8}, {"bool", 1}, {"c64", 8} };

  write_with_data (path, header, strlen (header), 22);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 5);
  for (guint i = 0; i < G_N_ELEMENTS (want); i++) {
    const UelTensorInfo *info = uel_header_get_tensor (h, i);

    g_assert_cmpstr (info->name, ==, want[i].name);
    g_assert_cmpuint (info->n_dims, ==, 0);
    g_assert_cmpuint (info->n_elements, ==, 1);
    g_assert_cmpuint (info->n_bytes, ==, want[i].n_bytes);
  }
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 22);
}

static void
test_zero_size_tensors (void)
{
  /* several empty tensors share offsets 0, 2 and the end (4), between and
   * around two non-empty ones; the header lists them out of file order */
  static const gchar header[] = "{"
      T ("end.a", "F32", "[0]", "[4,4]") ","
      T ("x", "U8", "[2]", "[2,4]") ","
      T ("zero.a", "U8", "[0]", "[0,0]") ","
      T ("mid", "F16", "[3,0]", "[2,2]") ","
      T ("zero.b", "I64", "[0,5]", "[0,0]") ","
      T ("w", "U8", "[2]", "[0,2]") ","
      T ("zero.c", "F4", "[0]", "[0,0]") ","
      T ("end.b", "BOOL", "[7,0,9]", "[4,4]") "}";
  static const gchar *order[] = {
    "zero.a", "zero.b", "zero.c", "w", "mid", "x", "end.a", "end.b"
  };
  static const gchar empty_only[] = "{" T ("a", "U8", "[0]", "[0,0]") ","
      T ("b", "F64", "[0,0]", "[0,0]") "}";
  g_autofree gchar *path = file_for ("zero-size-tensors", ".safetensors");
  g_autofree gchar *only_empty = file_for ("only-zero-size-tensors",
      ".safetensors");
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (UelHeader) h2 = NULL;

  write_with_data (path, header, strlen (header), 4);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, G_N_ELEMENTS (order));
  for (guint i = 0; i < G_N_ELEMENTS (order); i++) {
    const UelTensorInfo *info = uel_header_get_tensor (h, i);
    gboolean empty = g_str_has_prefix (order[i], "zero")
        || g_str_has_prefix (order[i], "end") || g_str_equal (order[i], "mid");

    g_assert_cmpstr (info->name, ==, order[i]);
    if (empty) {
      g_assert_cmpuint (info->n_elements, ==, 0);
      g_assert_cmpuint (info->n_bytes, ==, 0);
    } else {
      g_assert_cmpuint (info->n_bytes, ==, 2);
    }
  }
  g_assert_cmpuint (lookup_ok (h, "end.b", NULL)->data_begin, ==, 4);
  g_assert_cmpuint (lookup_ok (h, "end.b", NULL)->n_dims, ==, 3);
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 4);

  /* a file of empty tensors has no data section at all */
  write_with_data (only_empty, empty_only, strlen (empty_only), 0);
  h2 = uel_test_header_open (only_empty);
  g_assert_cmpuint (uel_header_get_n_tensors (h2), ==, 2);
  g_assert_cmpuint (uel_header_get_total_bytes (h2), ==, 0);
}

static void
test_unicode_names (void)
{
  /* raw UTF-8, \u escapes (one a surrogate pair) and other escapes */
  static const gchar header[] = "{"
      T ("größe", "U8", "[1]", "[0,1]") ","
      T ("名前", "U8", "[1]", "[1,2]") ","
      T ("🙂", "U8", "[1]", "[2,3]") ","
      T ("\\u00e9t\\u00E9", "U8", "[1]", "[3,4]") ","
      T ("\\ud83d\\ude00", "U8", "[1]", "[4,5]") ","
      T ("\\u540d.\\u0041", "U8", "[1]", "[5,6]") ","
      T ("a\\\"b\\\\c\\/d", "U8", "[1]", "[6,7]") ","
      T ("tab\\there\\n", "U8", "[1]", "[7,8]") "}";
  static const gchar *names[] = {
    "größe", "名前", "🙂", "été", "\xf0\x9f\x98\x80", "名.A",
    "a\"b\\c/d", "tab\there\n"
  };
  g_autofree gchar *path = file_for ("unicode-names", ".safetensors");
  g_autoptr (UelHeader) h = NULL;

  write_with_data (path, header, strlen (header), 8);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, G_N_ELEMENTS (names));
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    guint index = G_MAXUINT;

    g_assert_cmpstr (uel_header_get_tensor (h, i)->name, ==, names[i]);
    g_assert_true (g_utf8_validate (names[i], -1, NULL));
    lookup_ok (h, names[i], &index);
    g_assert_cmpuint (index, ==, i);
  }
  /* the surrogate pair decodes to U+1F600 */
  g_assert_cmpuint (g_utf8_get_char (uel_header_get_tensor (h, 4)->name), ==,
      0x1f600);
}

static void
test_metadata_variants (void)
{
  static const struct
  {
    const gchar *slug, *header;
    guint n_meta;
  } cases[] = {
    {"metadata-null", "{\"__metadata__\":null," T ("a", "U8", "[2]", "[0,2]")
          "}", 0},
    {"metadata-absent", "{" T ("a", "U8", "[2]", "[0,2]") "}", 0},
    {"metadata-empty", "{\"__metadata__\":{}," T ("a", "U8", "[2]", "[0,2]")
          "}", 0},
    {"metadata-empty-with-space", "{\"__metadata__\" : { } ,"
          T ("a", "U8", "[2]", "[0,2]") "}", 0},
    {"metadata-after-tensors", "{" T ("a", "U8", "[2]", "[0,2]")
          ",\"__metadata__\":{\"format\":\"pt\",\"x\":\"\"}}", 2},
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree gchar *path = file_for (cases[i].slug, ".safetensors");
    g_autoptr (UelHeader) h = NULL;
    GHashTable *meta;

    g_test_message ("%s", cases[i].slug);
    write_with_data (path, cases[i].header, strlen (cases[i].header), 2);
    h = uel_test_header_open (path);
    meta = uel_header_get_metadata (h);
    g_assert_nonnull (meta);
    g_assert_cmpuint (g_hash_table_size (meta), ==, cases[i].n_meta);
    g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 1);
    g_assert_cmpstr (uel_header_get_tensor (h, 0)->name, ==, "a");
    if (cases[i].n_meta) {
      g_assert_cmpstr (g_hash_table_lookup (meta, "format"), ==, "pt");
      g_assert_cmpstr (g_hash_table_lookup (meta, "x"), ==, "");
    }
  }
}

static void
test_get_metadata (void)
{
  static const gchar header[] = "{\"__metadata__\":{"
      "\"format\":\"pt\","
      "\"quote\\\"d\":\"line\\nbreak \\u00e9\\ud83d\\ude00\","
      "\"größe\":\"名前\","
      "\"empty\":\"\"},"
      T ("a", "U8", "[2]", "[0,2]") "}";
  g_autofree gchar *path = file_for ("get-metadata", ".safetensors");
  g_autoptr (UelHeader) h = NULL;
  GHashTable *meta;

  write_with_data (path, header, strlen (header), 2);
  h = uel_test_header_open (path);
  meta = uel_header_get_metadata (h);
  g_assert_cmpuint (g_hash_table_size (meta), ==, 4);
  g_assert_cmpstr (g_hash_table_lookup (meta, "format"), ==, "pt");
  g_assert_cmpstr (g_hash_table_lookup (meta, "quote\"d"), ==,
      "line\nbreak é\xf0\x9f\x98\x80");
  g_assert_cmpstr (g_hash_table_lookup (meta, "größe"), ==, "名前");
  g_assert_cmpstr (g_hash_table_lookup (meta, "empty"), ==, "");
  g_assert_null (g_hash_table_lookup (meta, "missing"));
  /* the metadata is not a tensor */
  g_assert_null (uel_header_lookup (h, "__metadata__", NULL));
}

static void
test_unknown_fields_ignored (void)
{
  static const gchar header[] = "{\"a\":{"
      "\"x_before\":{\"nested\":[1,2.5,-3e-7,true,false,null,\"s\",{}]},"
      "\"dtype\":\"U16\","
      "\"comment\":\"ignored \\u00e9\","
      "\"shape\":[2],"
      "\"n\":18446744073709551616,"
      "\"neg\":-1,"
      "\"data_offsets\":[0,4],"
      "\"flags\":[true,false,null],"
      "\"deep\":[[[[[[[[{\"k\":[]}]]]]]]]]}}";
  g_autofree gchar *path = file_for ("unknown-fields", ".safetensors");
  g_autoptr (UelHeader) h = NULL;
  const UelTensorInfo *info;

  write_with_data (path, header, strlen (header), 4);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 1);
  info = uel_header_get_tensor (h, 0);
  g_assert_cmpstr (info->name, ==, "a");
  g_assert_cmpint (info->dtype, ==, UEL_DTYPE_U16);
  g_assert_cmpuint (info->n_bytes, ==, 4);
  g_assert_cmpuint (g_hash_table_size (uel_header_get_metadata (h)), ==, 0);
}

static void
test_whitespace_around_object (void)
{
  static const gchar header[] = " \t\r\n{ \t\r\n\"__metadata__\" \n:\t{ "
      "\"k\" : \"v\" } ,\r\n\"a\" : { \"dtype\" : \"U8\" , \"shape\" : [ 2 ] "
      ", \"data_offsets\" : [ 0 , 2 ] }\n} \t\r\n";
  g_autofree gchar *path = file_for ("whitespace", ".safetensors");
  g_autoptr (UelHeader) h = NULL;

  write_with_data (path, header, strlen (header), 2);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 1);
  g_assert_cmpuint (uel_header_get_tensor (h, 0)->n_bytes, ==, 2);
  g_assert_cmpuint (uel_header_get_tensor (h, 0)->file_offset, ==,
      8 + strlen (header));
  g_assert_cmpstr (g_hash_table_lookup (uel_header_get_metadata (h), "k"), ==,
      "v");
}

static void
test_padded_header (void)
{
  g_autofree gchar *aligned = file_for ("padded-align-8", ".safetensors");
  g_autofree gchar *page = file_for ("padded-4096", ".safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (UelHeader) h2 = NULL;
  g_autoptr (GString) s = g_string_new ("{" T ("a", "F32", "[3]", "[0,12]")
      "}");

  /* the builder's alignment: trailing spaces up to a multiple of 8 */
  uel_test_builder_add (b, "a", "F32", "[3]", 12, NULL);
  uel_test_builder_add (b, "b", "U8", "[1]", 1, NULL);
  uel_test_builder_set_align (b, 8);
  uel_test_builder_write (b, aligned, NULL);
  h = uel_test_header_open (aligned);
  g_assert_cmpuint (uel_header_get_data_offset (h, 0) % 8, ==, 0);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 2);

  /* a data section that starts on a page: thousands of spaces */
  while (8 + s->len < 4096)
    g_string_append_c (s, ' ');
  write_with_data (page, s->str, s->len, 12);
  h2 = uel_test_header_open (page);
  g_assert_cmpuint (uel_header_get_data_offset (h2, 0), ==, 4096);
  g_assert_cmpuint (uel_header_get_tensor (h2, 0)->file_offset, ==, 4096);
}

static void
test_key_order_differs_from_offset_order (void)
{
  /* entries in reverse file order, their members in every order */
  static const gchar header[] = "{"
      "\"c\":{\"data_offsets\":[6,14],\"shape\":[2],\"dtype\":\"F32\"},"
      "\"b\":{\"shape\":[2],\"data_offsets\":[2,6],\"dtype\":\"I16\"},"
      "\"__metadata__\":{\"k\":\"v\"},"
      "\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,2],\"shape\":[2]}}";
  static const gchar *order[] = { "a", "b", "c" };
  g_autofree gchar *path = file_for ("key-order", ".safetensors");
  g_autoptr (UelHeader) h = NULL;
  guint64 begin = 0;

  write_with_data (path, header, strlen (header), 14);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 3);
  for (guint i = 0; i < 3; i++) {
    const UelTensorInfo *info = uel_header_get_tensor (h, i);
    guint index = G_MAXUINT;

    g_assert_cmpstr (info->name, ==, order[i]);
    g_assert_cmpuint (info->data_begin, ==, begin);
    g_assert_true (lookup_ok (h, order[i], &index) == info);
    g_assert_cmpuint (index, ==, i);
    begin += info->n_bytes;
  }
  g_assert_cmpuint (begin, ==, 14);
}

static void
test_ten_thousand_tiny_tensors (void)
{
  g_autofree gchar *path = file_for ("ten-thousand", ".safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (UelHeader) h = NULL;
  const guint8 *data;

  for (guint i = 0; i < 10000; i++) {
    g_autofree gchar *name = g_strdup_printf ("layer.%u.w", i);

    uel_test_builder_add (b, name, "U8", "[1]", 1, NULL);
  }
  data = uel_test_builder_write (b, path, NULL);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 10000);
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 10000);
  for (guint i = 0; i < 10000; i += 997) {
    g_autofree gchar *name = g_strdup_printf ("layer.%u.w", i);
    const UelTensorInfo *info = uel_header_get_tensor (h, i);
    g_autofree guint8 *byte = read_tensor (h, info);
    guint index = G_MAXUINT;

    g_assert_cmpstr (info->name, ==, name);
    g_assert_cmpuint (info->data_begin, ==, i);
    g_assert_true (lookup_ok (h, name, &index) == info);
    g_assert_cmpuint (index, ==, i);
    g_assert_cmpuint (byte[0], ==, data[i]);
  }
}

static void
test_huge_dimension_times_zero (void)
{
  /* 2^64 - 1 elements times 0: the product never overflows, as in the
   * reference's checked product from the left */
  static const gchar header[] = "{"
      T ("huge.zero", "F64", "[18446744073709551615,0]", "[0,0]") ","
      T ("zero.huge", "U8", "[0,18446744073709551615]", "[0,0]") ","
      T ("a", "U8", "[1]", "[0,1]") "}";
  g_autofree gchar *path = file_for ("huge-dimension-times-zero",
      ".safetensors");
  g_autoptr (UelHeader) h = NULL;
  const UelTensorInfo *info;

  write_with_data (path, header, strlen (header), 1);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 3);
  info = lookup_ok (h, "huge.zero", NULL);
  g_assert_cmpuint (info->n_dims, ==, 2);
  g_assert_cmpuint (info->shape[0], ==, G_MAXUINT64);
  g_assert_cmpuint (info->shape[1], ==, 0);
  g_assert_cmpuint (info->n_elements, ==, 0);
  g_assert_cmpuint (info->n_bytes, ==, 0);
  info = lookup_ok (h, "zero.huge", NULL);
  g_assert_cmpuint (info->shape[1], ==, G_MAXUINT64);
  g_assert_cmpuint (info->n_elements, ==, 0);
}

static void
test_empty_table (void)
{
  g_autofree gchar *path = file_for ("empty-table", ".safetensors");
  g_autofree gchar *meta_only = file_for ("metadata-only", ".safetensors");
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (UelHeader) h2 = NULL;
  static const gchar only[] = "{\"__metadata__\":{\"a\":\"b\"}}";

  write_with_data (path, "{}", 2, 0);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 0);
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 0);
  g_assert_null (uel_header_lookup (h, "a", NULL));

  write_with_data (meta_only, only, strlen (only), 0);
  h2 = uel_test_header_open (meta_only);
  g_assert_cmpuint (uel_header_get_n_tensors (h2), ==, 0);
  g_assert_cmpstr (g_hash_table_lookup (uel_header_get_metadata (h2), "a"),
      ==, "b");
}

static void
test_nesting_127_levels_accepted (void)
{
  /* serde_json accepts 127 levels of nesting and no more: the object (1),
   * the entry (2) and 125 arrays in an unknown member */
  g_autofree gchar *path = file_for ("nesting-127", ".safetensors");
  g_autofree gchar *header = nested ("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
      "\"data_offsets\":[0,1],\"x\":", 125, "}}");
  g_autoptr (UelHeader) h = NULL;

  write_with_data (path, header, strlen (header), 1);
  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 1);
}

static void
test_lookup (void)
{
  g_autofree gchar *path = file_for ("lookup", ".safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (UelHeader) h = NULL;
  const UelTensorInfo *info;
  guint index = 12345;

  uel_test_builder_add (b, "model.embed", "BF16", "[4,2]", 16, NULL);
  uel_test_builder_add (b, "model.norm", "F32", "[2]", 8, NULL);
  uel_test_builder_add (b, "model.head", "I8", "[3]", 3, NULL);
  uel_test_builder_write (b, path, NULL);
  h = uel_test_header_open (path);

  info = uel_header_lookup (h, "model.norm", &index);
  g_assert_nonnull (info);
  g_assert_cmpuint (index, ==, 1);
  g_assert_true (info == uel_header_get_tensor (h, 1));
  g_assert_cmpstr (info->name, ==, "model.norm");
  g_assert_cmpuint (info->n_bytes, ==, 8);
  g_assert_cmpuint (info->data_begin, ==, 16);
  /* @index is optional */
  g_assert_true (uel_header_lookup (h, "model.head", NULL) ==
      uel_header_get_tensor (h, 2));

  /* misses leave @index alone */
  index = 12345;
  g_assert_null (uel_header_lookup (h, "model", &index));
  g_assert_null (uel_header_lookup (h, "model.norm.", &index));
  g_assert_null (uel_header_lookup (h, "MODEL.NORM", &index));
  g_assert_null (uel_header_lookup (h, "", &index));
  g_assert_cmpuint (index, ==, 12345);
}

static void
test_new_from_fd_and_refcount (void)
{
  g_autofree gchar *path = file_for ("from-fd", ".safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  UelHeader *h, *copy;
  GError *err = NULL;
  gint fd;

  uel_test_builder_add (b, "a", "U8", "[3]", 3, NULL);
  uel_test_builder_write (b, path, NULL);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  h = uel_header_new_from_fd (fd, "a name for messages", &err);
  g_assert_no_error (err);
  close (fd);
  g_assert_cmpstr (uel_header_get_file_path (h, 0), ==, "a name for messages");
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 1);

  /* a boxed type: copies are references, each one released */
  copy = g_boxed_copy (UEL_TYPE_HEADER, h);
  g_assert_true (copy == h);
  g_assert_true (uel_header_ref (h) == h);
  uel_header_unref (h);
  g_boxed_free (UEL_TYPE_HEADER, copy);
  g_assert_cmpstr (uel_header_get_tensor (h, 0)->name, ==, "a");
  uel_header_unref (h);
}

/* ------------------------------------------------------------------ */
/* malformed files, one rule at a time */

typedef struct
{
  const gchar *slug;            /* /header/rejects/<slug> */
  const gchar *header;          /* NULL: made by @make */
  gsize len;                    /* bytes of @header; 0: strlen */
  gchar *(*make) (gsize * len);
  gsize data_len;               /* bytes of data after the header */
  UelError code;
  const gchar *tensor;          /* the message names this tensor */
} Reject;

static gchar *
make_empty (gsize * len)
{
  *len = 0;
  return g_strdup ("");
}

static gchar *
make_nesting_128 (gsize * len)
{
  gchar *s = nested ("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
      "\"data_offsets\":[0,1],\"x\":", 126, "}}");

  *len = strlen (s);
  return s;
}

static gchar *
make_nesting_200 (gsize * len)
{
  gchar *s = nested ("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
      "\"data_offsets\":[0,1],\"x\":", 198, "}}");

  *len = strlen (s);
  return s;
}

static gchar *
make_deep_metadata (gsize * len)
{
  gchar *s = nested ("{\"__metadata__\":", 100000,
      "," T ("a", "U8", "[1]", "[0,1]") "}");

  *len = strlen (s);
  return s;
}

static gchar *
make_deep_unknown_member (gsize * len)
{
  gchar *s = nested ("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
      "\"data_offsets\":[0,1],\"x\":", 100000, "}}");

  *len = strlen (s);
  return s;
}

/* never closed: a parser that recursed first and checked later would
 * overflow its stack here */
static gchar *
make_deep_unclosed (gsize * len)
{
  GString *s = g_string_new ("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
      "\"data_offsets\":[0,1],\"x\":");

  for (guint i = 0; i < 100000; i++)
    g_string_append (s, "{\"k\":");
  *len = s->len;
  return g_string_free (s, FALSE);
}

static gchar *
make_deep_header (gsize * len)
{
  gchar *s = nested ("", 100000, "");

  *len = strlen (s);
  return s;
}

#define A T ("a", "U8", "[2]", "[0,2]")
#define BAD(dtype, shape, offsets) T ("bad", dtype, shape, offsets)
/* a header with NUL bytes in it */
#define RAW(s) s, sizeof (s) - 1

static const Reject rejects[] = {
  /* rule 4: UTF-8 as Rust's str::from_utf8 sees it */
  {"invalid-utf8-lone-0xff-byte", "{\"bad\xff\":{\"dtype\":\"U8\","
        "\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_UTF8},
  {"invalid-utf8-overlong-encoding", "{\"bad\xc0\xaf\":{\"dtype\":\"U8\","
        "\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_UTF8},
  {"invalid-utf8-truncated-sequence", "{\"bad\xe2\x82\":{\"dtype\":\"U8\","
        "\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_UTF8},
  {"invalid-utf8-truncated-at-end-of-header", "{" A "} \xf0\x9f\x98", 0,
      NULL, 2, UEL_ERROR_HEADER_NOT_UTF8},
  {"invalid-utf8-encoded-surrogate", "{\"bad\xed\xa0\x80\":{\"dtype\":\"U8\","
        "\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_UTF8},
  {"invalid-utf8-above-u10ffff", "{\"bad\xf4\x90\x80\x80\":{\"dtype\":\"U8\","
        "\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_UTF8},
  {"invalid-utf8-before-invalid-json", "{\"bad\xff", 0, NULL, 0,
      UEL_ERROR_HEADER_NOT_UTF8},

  /* rule 5: NUL is valid UTF-8 but never valid raw JSON */
  {"raw-nul-byte-in-a-name", RAW ("{\"bad\0name\":{\"dtype\":\"U8\","
            "\"shape\":[2],\"data_offsets\":[0,2]}}"), NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"raw-nul-byte-after-the-object", RAW ("{" A "}\0"), NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},

  /* rule 5: strict JSON, as serde_json reads it */
  {"empty-header", NULL, 0, make_empty, 0, UEL_ERROR_HEADER_NOT_JSON},
  {"whitespace-only-header", " \t\r\n ", 0, NULL, 0,
      UEL_ERROR_HEADER_NOT_JSON},
  {"trailing-garbage-after-the-object", "{" A "}x", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"second-object-after-the-object", "{" A "}{}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"single-quotes", "{'a':{'dtype':'U8','shape':[2],'data_offsets':[0,2]}}",
      0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"block-comment", "{/* c */" A "}", 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"line-comment", "{// c\n" A "}", 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"leading-zero", "{" T ("a", "U8", "[02]", "[0,2]") "}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"plus-sign", "{" T ("a", "U8", "[+2]", "[0,2]") "}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"hexadecimal-number", "{" T ("a", "U8", "[0x2]", "[0,2]") "}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"trailing-comma-in-object", "{" A ",}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"trailing-comma-in-array", "{" T ("a", "U8", "[2,]", "[0,2]") "}", 0,
      NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"missing-colon", "{\"a\"{\"dtype\":\"U8\",\"shape\":[2],"
        "\"data_offsets\":[0,2]}}", 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"missing-comma", "{\"a\":{\"dtype\":\"U8\" \"shape\":[2],"
        "\"data_offsets\":[0,2]}}", 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"unterminated-string", "{\"a", 0, NULL, 0, UEL_ERROR_HEADER_NOT_JSON},
  {"unterminated-object", "{" A, 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"lone-leading-surrogate", "{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[2],"
        "\"data_offsets\":[0,2]}}", 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"lone-trailing-surrogate", "{\"\\udc00\":{\"dtype\":\"U8\",\"shape\":[2],"
        "\"data_offsets\":[0,2]}}", 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"leading-surrogate-without-trailing-one", "{\"\\ud800\\u0041\":{"
        "\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"control-character-in-string", "{\"a\nb\":{\"dtype\":\"U8\",\"shape\":[2],"
        "\"data_offsets\":[0,2]}}", 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"raw-tab-in-string", "{\"a\tb\":{\"dtype\":\"U8\",\"shape\":[2],"
        "\"data_offsets\":[0,2]}}", 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"invalid-escape", "{\"a\\x41\":{\"dtype\":\"U8\",\"shape\":[2],"
        "\"data_offsets\":[0,2]}}", 0, NULL, 2, UEL_ERROR_HEADER_NOT_JSON},
  {"nan-in-unknown-member", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],"
        "\"data_offsets\":[0,2],\"x\":NaN}}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"capitalised-literal-in-unknown-member", "{\"a\":{\"dtype\":\"U8\","
        "\"shape\":[2],\"data_offsets\":[0,2],\"x\":True}}", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_JSON},
  {"nesting-128-levels-deep", NULL, 0, make_nesting_128, 1,
      UEL_ERROR_HEADER_NOT_JSON},
  {"nesting-200-levels-deep", NULL, 0, make_nesting_200, 1,
      UEL_ERROR_HEADER_NOT_JSON},
  {"nesting-100000-levels-deep-as-metadata", NULL, 0, make_deep_metadata, 1,
      UEL_ERROR_HEADER_NOT_JSON},
  {"nesting-100000-levels-deep-in-unknown-member", NULL, 0,
      make_deep_unknown_member, 1, UEL_ERROR_HEADER_NOT_JSON},
  {"nesting-100000-objects-never-closed", NULL, 0, make_deep_unclosed, 1,
      UEL_ERROR_HEADER_NOT_JSON},
  {"nesting-100000-levels-deep-as-the-header", NULL, 0, make_deep_header, 0,
      UEL_ERROR_HEADER_NOT_JSON},

  /* rule 5: one JSON value, but not an object */
  {"header-is-an-array", "[" "{" A "}" "]", 0, NULL, 2,
      UEL_ERROR_HEADER_NOT_OBJECT},
  {"header-is-a-number", "42", 0, NULL, 0, UEL_ERROR_HEADER_NOT_OBJECT},
  {"header-is-a-string", "\"{}\"", 0, NULL, 0, UEL_ERROR_HEADER_NOT_OBJECT},
  {"header-is-null", " null ", 0, NULL, 0, UEL_ERROR_HEADER_NOT_OBJECT},
  {"header-is-a-boolean", "true", 0, NULL, 0, UEL_ERROR_HEADER_NOT_OBJECT},

  /* rule 6: __metadata__ maps strings to strings */
  {"metadata-is-a-string", "{\"__metadata__\":\"x\"," A "}", 0, NULL, 2,
      UEL_ERROR_INVALID_METADATA},
  {"metadata-is-an-array", "{\"__metadata__\":[\"x\"]," A "}", 0, NULL, 2,
      UEL_ERROR_INVALID_METADATA},
  {"metadata-is-a-number", "{\"__metadata__\":0," A "}", 0, NULL, 2,
      UEL_ERROR_INVALID_METADATA},
  {"metadata-is-a-boolean", "{\"__metadata__\":false," A "}", 0, NULL, 2,
      UEL_ERROR_INVALID_METADATA},
  {"metadata-value-is-a-number", "{\"__metadata__\":{\"k\":1}," A "}", 0,
      NULL, 2, UEL_ERROR_INVALID_METADATA},
  {"metadata-value-is-null", "{\"__metadata__\":{\"k\":null}," A "}", 0,
      NULL, 2, UEL_ERROR_INVALID_METADATA},
  {"metadata-value-is-an-object", "{\"__metadata__\":{\"k\":{}}," A "}", 0,
      NULL, 2, UEL_ERROR_INVALID_METADATA},
  {"metadata-value-is-an-array", "{\"__metadata__\":{\"k\":[\"v\"]}," A "}",
      0, NULL, 2, UEL_ERROR_INVALID_METADATA},
  {"duplicate-metadata-key", "{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"},"
        A "}", 0, NULL, 2, UEL_ERROR_INVALID_METADATA},
  {"metadata-twice", "{\"__metadata__\":{\"k\":\"v\"}," A ","
        "\"__metadata__\":{\"j\":\"w\"}}", 0, NULL, 2,
      UEL_ERROR_INVALID_METADATA},
  {"metadata-twice-first-null", "{\"__metadata__\":null,"
        "\"__metadata__\":{}," A "}", 0, NULL, 2, UEL_ERROR_INVALID_METADATA},

  /* rule 7: each entry is {dtype, shape, data_offsets} */
  {"entry-is-an-array", "{" A ",\"bad\":[\"U8\",[2],[2,4]]}", 0, NULL, 4,
      UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-is-a-string", "{" A ",\"bad\":\"U8\"}", 0, NULL, 2,
      UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-is-null", "{" A ",\"bad\":null}", 0, NULL, 2,
      UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-is-a-number", "{\"bad\":2," A "}", 0, NULL, 2,
      UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-is-empty", "{" A ",\"bad\":{}}", 0, NULL, 2,
      UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-without-dtype", "{\"bad\":{\"shape\":[2],\"data_offsets\":[0,2]}}",
      0, NULL, 2, UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-without-shape", "{\"bad\":{\"dtype\":\"U8\",\"data_offsets\":[0,2]}}",
      0, NULL, 2, UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-without-data-offsets", "{\"bad\":{\"dtype\":\"U8\",\"shape\":[2]}}",
      0, NULL, 2, UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-with-dtype-twice", "{\"bad\":{\"dtype\":\"U8\",\"shape\":[2],"
        "\"dtype\":\"U8\",\"data_offsets\":[0,2]}}", 0, NULL, 2,
      UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-with-shape-twice", "{\"bad\":{\"dtype\":\"U8\",\"shape\":[2],"
        "\"shape\":[2],\"data_offsets\":[0,2]}}", 0, NULL, 2,
      UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},
  {"entry-with-data-offsets-twice", "{\"bad\":{\"dtype\":\"U8\","
        "\"data_offsets\":[0,2],\"shape\":[2],\"data_offsets\":[0,2]}}", 0,
      NULL, 2, UEL_ERROR_INVALID_TENSOR_ENTRY, "bad"},

  /* rule 7: dtype is one of the 22 names, case-sensitive */
  {"dtype-in-lowercase", "{" BAD ("f32", "[1]", "[0,4]") "}", 0, NULL, 4,
      UEL_ERROR_UNKNOWN_DTYPE, "bad"},
  {"dtype-unknown", "{" BAD ("F31", "[1]", "[0,4]") "}", 0, NULL, 4,
      UEL_ERROR_UNKNOWN_DTYPE, "bad"},
  {"dtype-with-trailing-space", "{" BAD ("U8 ", "[2]", "[0,2]") "}", 0, NULL,
      2, UEL_ERROR_UNKNOWN_DTYPE, "bad"},
  {"dtype-empty", "{" BAD ("", "[2]", "[0,2]") "}", 0, NULL, 2,
      UEL_ERROR_UNKNOWN_DTYPE, "bad"},
  {"dtype-not-of-the-format", "{" BAD ("F8_E4M3FN", "[2]", "[0,2]") "}", 0,
      NULL, 2, UEL_ERROR_UNKNOWN_DTYPE, "bad"},
  {"dtype-is-a-number", "{\"bad\":{\"dtype\":32,\"shape\":[1],"
        "\"data_offsets\":[0,4]}}", 0, NULL, 4, UEL_ERROR_UNKNOWN_DTYPE, "bad"},
  {"dtype-is-null", "{\"bad\":{\"dtype\":null,\"shape\":[1],"
        "\"data_offsets\":[0,4]}}", 0, NULL, 4, UEL_ERROR_UNKNOWN_DTYPE, "bad"},

  /* rule 7: shape is an array of integers in [0, 2^64) */
  {"shape-with-negative-dimension", "{" BAD ("U8", "[-1]", "[0,2]") "}", 0,
      NULL, 2, UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-with-negative-zero", "{" BAD ("U8", "[-0]", "[0,0]") "}", 0, NULL,
      0, UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-with-fraction", "{" BAD ("U8", "[1.5]", "[0,2]") "}", 0, NULL, 2,
      UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-with-integral-fraction", "{" BAD ("U8", "[2.0]", "[0,2]") "}", 0,
      NULL, 2, UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-with-exponent", "{" BAD ("U8", "[1e3]", "[0,1000]") "}", 0, NULL,
      1000, UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-with-string-dimension", "{" BAD ("U8", "[\"2\"]", "[0,2]") "}", 0,
      NULL, 2, UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-with-dimension-2-to-the-64", "{" BAD ("U8",
            "[18446744073709551616]", "[0,2]") "}", 0, NULL, 2,
      UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-with-nested-array", "{" BAD ("U8", "[[2]]", "[0,2]") "}", 0, NULL,
      2, UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-with-null-dimension", "{" BAD ("U8", "[null]", "[0,2]") "}", 0,
      NULL, 2, UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-is-a-number", "{" BAD ("U8", "2", "[0,2]") "}", 0, NULL, 2,
      UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-is-null", "{" BAD ("U8", "null", "[0,2]") "}", 0, NULL, 2,
      UEL_ERROR_INVALID_SHAPE, "bad"},
  {"shape-is-an-object", "{" BAD ("U8", "{\"0\":2}", "[0,2]") "}", 0, NULL,
      2, UEL_ERROR_INVALID_SHAPE, "bad"},

  /* rule 7: data_offsets is exactly two integers in [0, 2^64) */
  {"data-offsets-with-one-number", "{" BAD ("U8", "[2]", "[2]") "}", 0, NULL,
      2, UEL_ERROR_INVALID_OFFSETS, "bad"},
  {"data-offsets-with-three-numbers", "{" BAD ("U8", "[2]", "[0,2,4]") "}",
      0, NULL, 2, UEL_ERROR_INVALID_OFFSETS, "bad"},
  {"data-offsets-empty", "{" BAD ("U8", "[0]", "[]") "}", 0, NULL, 0,
      UEL_ERROR_INVALID_OFFSETS, "bad"},
  {"data-offsets-negative", "{" BAD ("U8", "[2]", "[-2,0]") "}", 0, NULL, 2,
      UEL_ERROR_INVALID_OFFSETS, "bad"},
  {"data-offsets-float", "{" BAD ("U8", "[2]", "[0,2.0]") "}", 0, NULL, 2,
      UEL_ERROR_INVALID_OFFSETS, "bad"},
  {"data-offsets-2-to-the-64", "{" BAD ("U8", "[2]",
            "[0,18446744073709551616]") "}", 0, NULL, 2,
      UEL_ERROR_INVALID_OFFSETS, "bad"},
  {"data-offsets-with-string", "{" BAD ("U8", "[2]", "[\"0\",2]") "}", 0,
      NULL, 2, UEL_ERROR_INVALID_OFFSETS, "bad"},
  {"data-offsets-is-an-object", "{" BAD ("U8", "[2]",
            "{\"begin\":0,\"end\":2}") "}", 0, NULL, 2,
      UEL_ERROR_INVALID_OFFSETS, "bad"},

  /* names: unique, and without NUL (our choices) */
  {"duplicate-tensor-name", "{" BAD ("U8", "[2]", "[0,2]") ","
        BAD ("U8", "[2]", "[2,4]") "}", 0, NULL, 4,
      UEL_ERROR_DUPLICATE_TENSOR, "bad"},
  {"duplicate-tensor-name-through-an-escape", "{" BAD ("U8", "[2]", "[0,2]")
        "," T ("\\u0062ad", "U8", "[2]", "[2,4]") "}", 0, NULL, 4,
      UEL_ERROR_DUPLICATE_TENSOR, "bad"},
  {"tensor-name-with-escaped-nul", "{" T ("bad\\u0000name", "U8", "[2]",
            "[0,2]") "}", 0, NULL, 2, UEL_ERROR_INVALID_TENSOR_NAME, "bad"},

  /* rule 8: sorted by offsets, the tensors tile the data from 0 */
  {"gap-between-tensors", "{" A "," BAD ("U8", "[2]", "[3,5]") "}", 0, NULL,
      5, UEL_ERROR_OFFSETS_NOT_CONTIGUOUS, "bad"},
  {"overlapping-tensors", "{" A "," BAD ("U8", "[2]", "[1,3]") "}", 0, NULL,
      3, UEL_ERROR_OFFSETS_NOT_CONTIGUOUS, "bad"},
  {"two-tensors-share-a-range", "{" A "," BAD ("U8", "[2]", "[0,2]") "}", 0,
      NULL, 2, UEL_ERROR_OFFSETS_NOT_CONTIGUOUS, "bad"},
  {"first-tensor-not-at-zero", "{" BAD ("U8", "[2]", "[1,3]") "}", 0, NULL,
      3, UEL_ERROR_OFFSETS_NOT_CONTIGUOUS, "bad"},
  {"reversed-range", "{" A "," BAD ("U8", "[0]", "[4,2]") "}", 0, NULL, 4,
      UEL_ERROR_OFFSETS_NOT_CONTIGUOUS, "bad"},
  {"zero-size-tensor-inside-another", "{" T ("a", "U8", "[4]", "[0,4]") ","
        BAD ("U8", "[0]", "[2,2]") "}", 0, NULL, 4,
      UEL_ERROR_OFFSETS_NOT_CONTIGUOUS, "bad"},
  {"zero-size-tensor-past-the-end", "{" A "," BAD ("U8", "[0]", "[5,5]") "}",
      0, NULL, 2, UEL_ERROR_OFFSETS_NOT_CONTIGUOUS, "bad"},

  /* rule 9: element count × bits fits 64 bits */
  {"element-count-overflows", "{" BAD ("U8", "[4294967296,4294967296,2]",
            "[0,0]") "}", 0, NULL, 0, UEL_ERROR_SIZE_OVERFLOW, "bad"},
  {"element-count-overflows-before-a-zero-dimension", "{" BAD ("U8",
            "[18446744073709551615,2,0]", "[0,0]") "}", 0, NULL, 0,
      UEL_ERROR_SIZE_OVERFLOW, "bad"},
  {"bit-count-overflows", "{" BAD ("U64", "[2305843009213693952]", "[0,0]")
        "}", 0, NULL, 0, UEL_ERROR_SIZE_OVERFLOW, "bad"},

  /* rule 10: whole bytes */
  {"f4-with-odd-element-count", "{" BAD ("F4", "[3]", "[0,2]") "}", 0, NULL,
      2, UEL_ERROR_PARTIAL_BYTE, "bad"},
  {"f4-scalar", "{" BAD ("F4", "[]", "[0,1]") "}", 0, NULL, 1,
      UEL_ERROR_PARTIAL_BYTE, "bad"},
  {"f6-single-element", "{" BAD ("F6_E2M3", "[1]", "[0,1]") "}", 0, NULL, 1,
      UEL_ERROR_PARTIAL_BYTE, "bad"},

  /* rule 11: end - begin is the byte size */
  {"size-mismatch", "{" BAD ("U16", "[2]", "[0,2]") "}", 0, NULL, 2,
      UEL_ERROR_SIZE_MISMATCH, "bad"},
  {"size-mismatch-f4-counted-as-bytes", "{" BAD ("F4", "[4]", "[0,4]") "}", 0,
      NULL, 4, UEL_ERROR_SIZE_MISMATCH, "bad"},
  {"size-mismatch-f6-counted-as-bytes", "{" BAD ("F6_E3M2", "[4]", "[0,4]")
        "}", 0, NULL, 4, UEL_ERROR_SIZE_MISMATCH, "bad"},
  {"size-mismatch-c64-counted-as-f32", "{" A "," BAD ("C64", "[1]", "[2,6]")
        "}", 0, NULL, 6, UEL_ERROR_SIZE_MISMATCH, "bad"},
  {"size-mismatch-zero-size-shape-with-bytes", "{" BAD ("F32", "[0]",
            "[0,4]") "}", 0, NULL, 4, UEL_ERROR_SIZE_MISMATCH, "bad"},

  /* rule 12: the data section ends where the file ends */
  {"trailing-byte-after-data", "{" A "}", 0, NULL, 3,
      UEL_ERROR_FILE_SIZE_MISMATCH},
  {"truncated-data", "{" A "}", 0, NULL, 1, UEL_ERROR_FILE_SIZE_MISMATCH},
  {"no-data-at-all", "{" A "}", 0, NULL, 0, UEL_ERROR_FILE_SIZE_MISMATCH},
  {"empty-table-with-a-data-byte", "{}", 0, NULL, 1,
      UEL_ERROR_FILE_SIZE_MISMATCH},
  {"data-section-of-2-to-the-61-bytes", "{" BAD ("U8",
            "[2305843009213693951]", "[0,2305843009213693951]") "}", 0, NULL, 0,
      UEL_ERROR_FILE_SIZE_MISMATCH},

  /* the reference's order: tensor by tensor in offset order, the file size
   * last */
  {"order-checks-run-tensor-by-tensor-in-offset-order", "{"
        T ("later", "U8", "[2]", "[5,7]") "," BAD ("U8", "[2]", "[0,3]") "}",
      0, NULL, 7, UEL_ERROR_SIZE_MISMATCH, "bad"},
  {"order-size-before-file-size", "{" BAD ("U16", "[2]", "[0,2]") "}", 0,
      NULL, 9, UEL_ERROR_SIZE_MISMATCH, "bad"},
  {"order-offsets-before-overflow", "{" BAD ("U8",
            "[4294967296,4294967296,2]", "[1,1]") "}", 0, NULL, 0,
      UEL_ERROR_OFFSETS_NOT_CONTIGUOUS, "bad"},
};

#undef A
#undef BAD
#undef RAW

static void
test_reject (gconstpointer data)
{
  const Reject *r = data;
  g_autofree gchar *path = file_for (r->slug, ".safetensors");
  g_autofree gchar *made = NULL;
  const gchar *header = r->header;
  gsize len = r->len;

  if (r->make) {
    made = r->make (&len);
    header = made;
  } else if (len == 0) {
    len = strlen (header);
  }
  write_with_data (path, header, len, r->data_len);
  assert_rejected (path, UEL_ERROR, r->code, r->tensor);
}

/* rules 1 to 3 and opening: files that need more than a header */

static void
test_reject_file_too_small (void)
{
  g_autofree gchar *empty = file_for ("empty-file", ".safetensors");
  g_autofree gchar *seven = file_for ("seven-byte-file", ".safetensors");

  uel_test_write_bytes (empty, "", 0);
  assert_rejected (empty, UEL_ERROR, UEL_ERROR_FILE_TOO_SMALL, NULL);
  uel_test_write_bytes (seven, "\x02\0\0\0\0\0\0", 7);
  assert_rejected (seven, UEL_ERROR, UEL_ERROR_FILE_TOO_SMALL, NULL);
}

static void
test_reject_header_too_large (void)
{
  g_autofree gchar *path = file_for ("header-100000001", ".safetensors");

  /* rule 2 comes before rule 3: the tiny file is not what is reported */
  write_raw (path, G_GUINT64_CONSTANT (100000001), "{}", 2, NULL, 0);
  assert_rejected (path, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE, "100000001");
}

static void
test_reject_header_length_max (void)
{
  g_autofree gchar *path = file_for ("header-2-to-the-64-minus-1",
      ".safetensors");

  write_raw (path, G_MAXUINT64, "{}", 2, NULL, 0);
  assert_rejected (path, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE, NULL);
}

static void
test_reject_header_past_end (void)
{
  g_autofree gchar *past = file_for ("header-past-end", ".safetensors");
  g_autofree gchar *one = file_for ("header-one-byte-past-end",
      ".safetensors");
  g_autofree gchar *limit = file_for ("header-100000000-in-tiny-file",
      ".safetensors");

  write_raw (past, 100, "{}", 2, NULL, 0);
  assert_rejected (past, UEL_ERROR, UEL_ERROR_HEADER_TRUNCATED, NULL);
  write_raw (one, 3, "{}", 2, NULL, 0);
  assert_rejected (one, UEL_ERROR, UEL_ERROR_HEADER_TRUNCATED, NULL);
  /* the largest length allowed passes rule 2 and fails rule 3 */
  write_raw (limit, G_GUINT64_CONSTANT (100000000), "{}", 2, NULL, 0);
  assert_rejected (limit, UEL_ERROR, UEL_ERROR_HEADER_TRUNCATED, NULL);
}

static void
test_reject_directory (void)
{
  g_autofree gchar *path = file_for ("a-directory", ".safetensors");

  g_assert_cmpint (g_mkdir (path, 0700), ==, 0);
  assert_rejected (path, G_FILE_ERROR, G_FILE_ERROR_ISDIR, NULL);
}

static void
test_reject_missing_file (void)
{
  g_autofree gchar *path = file_for ("does-not-exist", ".safetensors");

  assert_rejected (path, G_FILE_ERROR, G_FILE_ERROR_NOENT, NULL);
}

static void
test_reject_fifo (void)
{
  g_autofree gchar *path = file_for ("a-fifo", ".safetensors");

  /* nobody writes to it: opening must not wait for a writer */
  g_assert_cmpint (mkfifo (path, 0600), ==, 0);
  assert_rejected (path, G_FILE_ERROR, G_FILE_ERROR_FAILED, NULL);
}

static void
write_text (const gchar * path, const gchar * text)
{
  uel_test_write_bytes (path, text, strlen (text));
}

/* A file of another kind is named as such, not reported only as a header
 * length nobody wrote (an outside test found "header length
 * 3475222254926655346" for a text file); so is a shard that is a symlink
 * to one. */
static void
test_reject_not_safetensors (void)
{
  g_autofree gchar *text = file_for ("a-text-file", ".safetensors");
  g_autofree gchar *dir = file_for ("not-safetensors-shard", "");
  g_autofree gchar *index = NULL, *link = NULL;
  g_autoptr (GError) err = NULL;
  g_autoptr (UelHeader) h = NULL;
  static const gchar words[] = "Hello, this is a text file.\n";

  uel_test_write_bytes (text, words, strlen (words));
  assert_rejected (text, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE,
      "not a safetensors file");
  assert_rejected (text, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE,
      "'Hello, t'");

  g_assert_cmpint (g_mkdir (dir, 0700), ==, 0);
  index = g_build_filename (dir, "model.safetensors.index.json", NULL);
  link = g_build_filename (dir, "model-00001-of-00001.safetensors", NULL);
  g_assert_cmpint (symlink (text, link), ==, 0);
  write_text (index, "{\"weight_map\":{\"w\":"
      "\"model-00001-of-00001.safetensors\"}}");
  h = uel_header_open (index, &err);
  g_assert_null (h);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE);
  assert_contains (err->message, "model-00001-of-00001.safetensors");
  assert_contains (err->message, "not a safetensors file");
}

/* A file replaced, rewritten in place or touched after its header was
 * validated is no longer the file the table describes: opening it for
 * the data, or checking a descriptor of it, says so. */
static void
test_open_file_sees_changes (void)
{
  static const gchar header[] = "{" T ("a", "U8", "[4]", "[0,4]") "}";
  g_autofree gchar *path = file_for ("changed-after-validation",
      ".safetensors");
  g_autofree gchar *other = file_for ("changed-after-validation-new",
      ".safetensors");
  g_autoptr (UelHeader) h = NULL;
  struct timespec times[2] = { {0, UTIME_OMIT}, {12345, 678} };
  GError *err = NULL;
  gint fd, fd2;

  write_with_data (path, header, strlen (header), 4);
  h = uel_test_header_open (path);
  fd = uel_header_open_file (h, 0, 0, &err);
  g_assert_no_error (err);
  g_assert_true (uel_header_check_file (h, 0, fd, &err));
  g_assert_no_error (err);

  /* the same size, written in place: the modification time tells */
  g_assert_cmpint (utimensat (AT_FDCWD, path, times, 0), ==, 0);
  g_assert_false (uel_header_check_file (h, 0, fd, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
  assert_contains (err->message, path);
  assert_contains (err->message, "modification time");
  g_clear_error (&err);
  g_assert_cmpint (uel_header_open_file (h, 0, 0, &err), ==, -1);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
  g_clear_error (&err);

  /* another file renamed over the path: a new inode, even with the same
   * size and time; the descriptor open before still reads the old one */
  write_with_data (other, header, strlen (header), 4);
  g_assert_cmpint (utimensat (AT_FDCWD, other, times, 0), ==, 0);
  g_assert_cmpint (g_rename (other, path), ==, 0);
  g_assert_cmpint (uel_header_open_file (h, 0, 0, &err), ==, -1);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
  assert_contains (err->message, "inode");
  g_clear_error (&err);

  /* truncated */
  g_clear_pointer (&h, uel_header_unref);
  h = uel_test_header_open (path);
  fd2 = uel_header_open_file (h, 0, 0, &err);
  g_assert_no_error (err);
  g_assert_cmpint (truncate (path, 10), ==, 0);
  g_assert_false (uel_header_check_file (h, 0, fd2, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
  assert_contains (err->message, "size");
  g_clear_error (&err);
  close (fd);
  close (fd2);
}

/* The metadata as JSON text: any key (empty, with spaces, with control
 * characters) is fine there, and the text is the same whatever the hash
 * table's order. */
static void
test_metadata_json (void)
{
  static const gchar header[] = "{\"__metadata__\":{\"sp ace\":\"y\","
      "\"\":\"empty\",\"esc\":\"\\u001b[2J\\n\",\"q\\\"\":\"\\\\\"},"
      T ("a", "U8", "[2]", "[0,2]") "}";
  g_autofree gchar *path = file_for ("metadata-json", ".safetensors");
  g_autofree gchar *none_path = file_for ("metadata-json-none",
      ".safetensors");
  g_autoptr (UelHeader) h = NULL, none = NULL;
  g_autofree gchar *json = NULL, *empty = NULL;

  write_with_data (path, header, strlen (header), 2);
  h = uel_test_header_open (path);
  json = uel_header_get_metadata_json (h);
  g_assert_cmpstr (json, ==, "{\"\":\"empty\",\"esc\":\"\\u001b[2J\\n\","
      "\"q\\\"\":\"\\\\\",\"sp ace\":\"y\"}");
  write_with_data (none_path, "{" T ("a", "U8", "[2]", "[0,2]") "}",
      strlen ("{" T ("a", "U8", "[2]", "[0,2]") "}"), 2);
  none = uel_test_header_open (none_path);
  empty = uel_header_get_metadata_json (none);
  g_assert_cmpstr (empty, ==, "{}");
}

/* ------------------------------------------------------------------ */
/* selection (UelTensorFilter) */

static const gchar *select_names[] = {
  "a,b", "w*", "w1", "sp ace ", " lead", "back\\slash", "q?", "größe",
  "x.y", "x.z"
};

static gchar *
write_select_file (const gchar * slug)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  gchar *path = file_for (slug, ".safetensors");

  for (guint i = 0; i < G_N_ELEMENTS (select_names); i++)
    uel_test_builder_add (b, select_names[i], i % 2 ? "F16" : "U8",
        i % 3 ? "[2]" : "[1,2]", i % 2 ? 4 : 2, NULL);
  uel_test_builder_write (b, path, NULL);
  return path;
}

/* the names @spec selects, joined by '|' */
static gchar *
selected (const UelHeader * h, const gchar * spec, GError ** error)
{
  g_autoptr (UelTensorFilter) f = uel_tensor_filter_new ();
  g_autoptr (GArray) idx = NULL;
  GString *out = g_string_new (NULL);

  uel_tensor_filter_add_names (f, spec);
  idx = uel_tensor_filter_select (f, h, NULL, error);
  if (!idx) {
    g_string_free (out, TRUE);
    return NULL;
  }
  for (guint i = 0; i < idx->len; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (h,
        g_array_index (idx, guint, i));

    g_string_append_printf (out, "%s%s", i ? "|" : "", t->name);
    /* the same filter says so tensor by tensor (ueldictdecode) */
    g_assert_true (uel_tensor_filter_matches (f, t));
  }
  return g_string_free (out, FALSE);
}

static void
test_select_names (void)
{
  static const struct
  {
    const gchar *spec, *want;
  } cases[] = {
    {NULL, "a,b|w*|w1|sp ace | lead|back\\slash|q?|größe|x.y|x.z"},
    {" , ,", "a,b|w*|w1|sp ace | lead|back\\slash|q?|größe|x.y|x.z"},
    {"a\\,b", "a,b"},
    {"w\\*", "w*"},
    {"w*", "w*|w1"},
    {"q\\?", "q?"},
    {"q?", "q?"},
    {"sp ace\\ ", "sp ace "},
    {"\\ lead", " lead"},
    {"back\\\\slash", "back\\slash"},
    {"gr??e", "größe"},
    {"x.*,w1", "w1|x.y|x.z"},
    {"  x.z ,\tw1, x.z", "w1|x.z"},
    {"*", "a,b|w*|w1|sp ace | lead|back\\slash|q?|größe|x.y|x.z"},
    {"*\\*", "w*"},
    {"*\\\\*", "back\\slash"},
  };
  g_autofree gchar *path = write_select_file ("select-names");
  g_autoptr (UelHeader) h = uel_test_header_open (path);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GError *err = NULL;
    g_autofree gchar *got = selected (h, cases[i].spec, &err);

    g_test_message ("spec \"%s\"", cases[i].spec ? cases[i].spec : "(null)");
    g_assert_no_error (err);
    g_assert_cmpstr (got, ==, cases[i].want);
  }

  /* any name, escaped, selects exactly itself */
  for (guint i = 0; i < G_N_ELEMENTS (select_names); i++) {
    g_autofree gchar *spec = uel_tensor_name_escape (select_names[i]);
    GError *err = NULL;
    g_autofree gchar *got = selected (h, spec, &err);

    g_assert_no_error (err);
    g_assert_cmpstr (got, ==, select_names[i]);
  }
}

static void
test_select_errors_and_kinds (void)
{
  g_autofree gchar *path = write_select_file ("select-kinds");
  g_autoptr (UelHeader) h = uel_test_header_open (path);
  g_autoptr (UelTensorFilter) f = uel_tensor_filter_new ();
  g_autoptr (GArray) idx = NULL;
  GError *err = NULL;
  guint64 bytes = 0;
  gchar *got;

  got = selected (h, "w1,nope", &err);
  g_assert_null (got);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  assert_contains (err->message, path);
  assert_contains (err->message, "no tensor is called \"nope\"");
  g_clear_error (&err);
  got = selected (h, "zz*", &err);
  g_assert_null (got);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  assert_contains (err->message, "no tensor matches \"zz*\"");
  g_clear_error (&err);
  /* a comma without its backslash splits the name */
  g_assert_null (selected (h, "a,b", &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);

  /* dtypes and rank narrow what names choose; a name they exclude is no
   * error */
  g_assert_false (uel_tensor_filter_set_dtypes (f, "U8,Q9", &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  assert_contains (err->message, "unknown dtype \"Q9\"");
  g_clear_error (&err);
  g_assert_true (uel_tensor_filter_set_dtypes (f, " f16 ", &err));
  uel_tensor_filter_set_ndim (f, 1);
  uel_tensor_filter_add_names (f, "w*,a\\,b");
  idx = uel_tensor_filter_select (f, h, &bytes, &err);
  g_assert_no_error (err);
  /* w* is F16 [2]; w1 is U8; a,b is U8 [1,2] */
  g_assert_cmpuint (idx->len, ==, 1);
  g_assert_cmpstr (uel_header_get_tensor (h, g_array_index (idx, guint,
              0))->name, ==, "w*");
  g_assert_cmpuint (bytes, ==, 4);
}

/* Fifty thousand literal names among a million tensors: a hash lookup
 * each.  Matched as patterns, one name against every tensor, they took 31 s
 * for 50,000 of 100,000 tensors (an outside test); here that would be over
 * five minutes, past this test's timeout. */
static void
test_select_many_names (void)
{
  const guint n = 1000000, n_keys = 50000;
  g_autofree gchar *path = file_for ("select-million", ".safetensors");
  g_autoptr (UelTensorFilter) f = uel_tensor_filter_new ();
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (GArray) idx = NULL;
  GString *spec = g_string_new (NULL);
  GError *err = NULL;

  uel_test_write_one_byte_tensors (path, n);
  h = uel_test_header_open (path);

  /* every 20th tensor, given last to first */
  for (guint k = n_keys; k-- > 0;)
    g_string_append_printf (spec, "t%07u,", k * 20);
  uel_tensor_filter_add_names (f, spec->str);
  g_string_free (spec, TRUE);
  idx = uel_tensor_filter_select (f, h, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (idx->len, ==, n_keys);
  for (guint k = 0; k < n_keys; k++)
    g_assert_cmpuint (g_array_index (idx, guint, k), ==, k * 20);
}

/* ------------------------------------------------------------------ */
/* sharded checkpoints */

static void
test_sharded_three_shards (void)
{
  static const struct
  {
    const gchar *shard;
    const gchar *names[2];
  } shards[] = {
    {"sh3-model-00001-of-00003.safetensors", {"embed", "layer.0"}},
    {"sh3-model-00002-of-00003.safetensors", {"layer.1", "layer.2"}},
    {"sh3-model-00003-of-00003.safetensors", {"head", NULL}},
  };
  /* the weight map lists the last shard first: the table follows the shard
   * names, not the index's order */
  static const gchar index_json[] = "{\n"
      "  \"metadata\": {\"total_size\": 123, \"format\": \"pt\"},\n"
      "  \"weight_map\": {\n"
      "    \"head\": \"sh3-model-00003-of-00003.safetensors\",\n"
      "    \"layer.2\": \"sh3-model-00002-of-00003.safetensors\",\n"
      "    \"embed\": \"sh3-model-00001-of-00003.safetensors\",\n"
      "    \"layer.1\": \"sh3-model-00002-of-00003.safetensors\",\n"
      "    \"layer.0\": \"sh3-model-00001-of-00003.safetensors\"\n"
      "  }\n}\n";
  static const struct
  {
    const gchar *name;
    guint file_index;
    guint64 n_bytes;
  } table[] = {
    {"embed", 0, 16}, {"layer.0", 0, 8}, {"layer.1", 1, 8}, {"layer.2", 1, 8},
    {"head", 2, 6},
  };
  g_autofree gchar *index = file_for ("sh3-model.safetensors.index",
      ".json");
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (GPtrArray) datas = g_ptr_array_new_with_free_func (g_free);
  GHashTable *meta;
  guint64 total = 0;

  for (guint s = 0; s < G_N_ELEMENTS (shards); s++) {
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
    g_autofree gchar *path = uel_test_path (shards[s].shard);
    const guint8 *data;
    gsize len;

    for (guint i = 0; i < G_N_ELEMENTS (shards[s].names)
        && shards[s].names[i]; i++) {
      if (g_str_equal (shards[s].names[i], "embed"))
        uel_test_builder_add (b, "embed", "BF16", "[2,4]", 16, NULL);
      else if (g_str_equal (shards[s].names[i], "head"))
        uel_test_builder_add (b, "head", "U8", "[2,3]", 6, NULL);
      else
        uel_test_builder_add (b, shards[s].names[i], "F32", "[2]", 8, NULL);
    }
    uel_test_builder_set_metadata (b, "shard", shards[s].shard);
    data = uel_test_builder_write (b, path, &len);
    g_ptr_array_add (datas, g_memdup2 (data, len));
  }
  write_text (index, index_json);

  h = uel_test_header_open (index);
  g_assert_true (uel_header_is_sharded (h));
  g_assert_cmpstr (uel_header_get_location (h), ==, index);
  g_assert_cmpuint (uel_header_get_n_files (h), ==, 3);
  for (guint s = 0; s < 3; s++) {
    g_autofree gchar *path = uel_test_path (shards[s].shard);
    struct stat st;

    g_assert_cmpstr (uel_header_get_file_path (h, s), ==, path);
    g_assert_cmpint (g_stat (path, &st), ==, 0);
    g_assert_cmpuint (uel_header_get_file_size (h, s), ==, st.st_size);
    g_assert_cmpuint (uel_header_get_data_offset (h, s), >, 8);
  }

  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, G_N_ELEMENTS (table));
  for (guint i = 0; i < G_N_ELEMENTS (table); i++) {
    const UelTensorInfo *info = uel_header_get_tensor (h, i);
    const guint8 *data = g_ptr_array_index (datas, table[i].file_index);
    g_autofree guint8 *bytes = NULL;
    guint index_found = G_MAXUINT;

    g_assert_cmpstr (info->name, ==, table[i].name);
    g_assert_cmpuint (info->file_index, ==, table[i].file_index);
    g_assert_cmpuint (info->n_bytes, ==, table[i].n_bytes);
    g_assert_cmpuint (info->file_offset, ==,
        uel_header_get_data_offset (h, info->file_index) + info->data_begin);
    g_assert_true (lookup_ok (h, table[i].name, &index_found) == info);
    g_assert_cmpuint (index_found, ==, i);
    bytes = read_tensor (h, info);
    g_assert_cmpmem (bytes, info->n_bytes, data + info->data_begin,
        info->n_bytes);
    total += info->n_bytes;
  }
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, total);

  /* the index's metadata, not the shards', with numbers as their JSON */
  meta = uel_header_get_metadata (h);
  g_assert_cmpuint (g_hash_table_size (meta), ==, 2);
  g_assert_cmpstr (g_hash_table_lookup (meta, "total_size"), ==, "123");
  g_assert_cmpstr (g_hash_table_lookup (meta, "format"), ==, "pt");
}

static void
test_sharded_two_shards (void)
{
  g_autofree gchar *index = file_for ("sh2.index", ".json");
  g_autofree gchar *s1 = uel_test_path ("sh2-a.safetensors");
  g_autofree gchar *s2 = uel_test_path ("sh2-b.safetensors");
  g_autoptr (UelTestBuilder) b1 = uel_test_builder_new ();
  g_autoptr (UelTestBuilder) b2 = uel_test_builder_new ();
  g_autoptr (UelHeader) h = NULL;

  uel_test_builder_add (b1, "x", "I64", "[1]", 8, NULL);
  uel_test_builder_write (b1, s1, NULL);
  uel_test_builder_add (b2, "y", "F16", "[3]", 6, NULL);
  uel_test_builder_add (b2, "z", "F8_E4M3", "[]", 1, NULL);
  uel_test_builder_write (b2, s2, NULL);
  write_text (index, "{\"weight_map\":{\"z\":\"sh2-b.safetensors\","
      "\"x\":\"sh2-a.safetensors\",\"y\":\"sh2-b.safetensors\"}}");

  h = uel_test_header_open (index);
  g_assert_cmpuint (uel_header_get_n_files (h), ==, 2);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 3);
  g_assert_cmpstr (uel_header_get_tensor (h, 0)->name, ==, "x");
  g_assert_cmpstr (uel_header_get_tensor (h, 1)->name, ==, "y");
  g_assert_cmpstr (uel_header_get_tensor (h, 2)->name, ==, "z");
  g_assert_cmpuint (uel_header_get_tensor (h, 2)->file_index, ==, 1);
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 15);
  /* no "metadata" in the index: none */
  g_assert_cmpuint (g_hash_table_size (uel_header_get_metadata (h)), ==, 0);
}

typedef struct
{
  const gchar *slug;
  const gchar *index;           /* the index's text */
  GQuark (*domain) (void);
  gint code;
  const gchar *what;            /* the message names this */
} ShardReject;

/* The shards these indexes refer to: "shr-ok.safetensors" holds tensors a
 * and b, "shr-trailing.safetensors" has a byte too many.  The index file is
 * written next to them. */
static const ShardReject shard_rejects[] = {
  {"index-not-json", "{\"weight_map\": {\"a\": \"shr-ok.safetensors\"",
      uel_error_quark, UEL_ERROR_INVALID_INDEX},
  {"index-with-trailing-comma", "{\"weight_map\": {\"a\": "
        "\"shr-ok.safetensors\",}}", uel_error_quark, UEL_ERROR_INVALID_INDEX},
  {"index-empty-file", "", uel_error_quark, UEL_ERROR_INVALID_INDEX},
  {"index-not-an-object", "[{\"weight_map\": {}}]", uel_error_quark,
      UEL_ERROR_INVALID_INDEX},
  {"index-without-weight-map", "{\"metadata\": {}}", uel_error_quark,
      UEL_ERROR_INVALID_INDEX, "weight_map"},
  {"index-weight-map-not-an-object", "{\"weight_map\": [\"a\"]}",
      uel_error_quark, UEL_ERROR_INVALID_INDEX, "weight_map"},
  /* fuzz/regressions/index/empty-weight-map: a header of no file */
  {"index-weight-map-empty", "{\"weight_map\": {}}", uel_error_quark,
      UEL_ERROR_INVALID_INDEX, "is empty"},
  {"index-weight-map-value-not-a-string", "{\"weight_map\": {\"a\": 1}}",
      uel_error_quark, UEL_ERROR_INVALID_INDEX, "'a'"},
  {"index-weight-map-value-null", "{\"weight_map\": {\"a\": null}}",
      uel_error_quark, UEL_ERROR_INVALID_INDEX, "'a'"},
  {"index-metadata-not-an-object", "{\"metadata\": \"x\", \"weight_map\": "
        "{\"a\": \"shr-ok.safetensors\"}}", uel_error_quark,
      UEL_ERROR_INVALID_INDEX, "metadata"},
  {"index-duplicate-tensor", "{\"weight_map\": {\"a\": "
        "\"shr-ok.safetensors\", \"a\": \"shr-ok.safetensors\"}}",
      uel_error_quark, UEL_ERROR_INVALID_INDEX},
  {"index-tensor-name-with-escaped-nul", "{\"weight_map\": {\"a\\u0000x\": "
        "\"shr-ok.safetensors\"}}", uel_error_quark, UEL_ERROR_INVALID_INDEX},
  {"index-not-utf8", "{\"weight_map\": {\"a\xff\": \"shr-ok.safetensors\"}}",
      uel_error_quark, UEL_ERROR_INVALID_INDEX},
  {"shard-path-absolute", "{\"weight_map\": {\"a\": "
        "\"/tmp/shr-ok.safetensors\"}}", uel_error_quark,
      UEL_ERROR_INVALID_SHARD_PATH, "/tmp/shr-ok.safetensors"},
  {"shard-path-dot-dot", "{\"weight_map\": {\"a\": \"..\"}}", uel_error_quark,
      UEL_ERROR_INVALID_SHARD_PATH, "'..'"},
  {"shard-path-in-parent-folder", "{\"weight_map\": {\"a\": "
        "\"../shr-ok.safetensors\"}}", uel_error_quark,
      UEL_ERROR_INVALID_SHARD_PATH, "../shr-ok.safetensors"},
  {"shard-path-with-slash", "{\"weight_map\": {\"a\": "
        "\"sub/shr-ok.safetensors\"}}", uel_error_quark,
      UEL_ERROR_INVALID_SHARD_PATH, "sub/shr-ok.safetensors"},
  {"shard-path-empty", "{\"weight_map\": {\"a\": \"\"}}", uel_error_quark,
      UEL_ERROR_INVALID_SHARD_PATH},
  {"shard-path-dot", "{\"weight_map\": {\"a\": \".\"}}", uel_error_quark,
      UEL_ERROR_INVALID_SHARD_PATH},
  {"shard-missing-a-mapped-tensor", "{\"weight_map\": {\"a\": "
        "\"shr-ok.safetensors\", \"nope\": \"shr-ok.safetensors\"}}",
      uel_error_quark, UEL_ERROR_SHARD_MISSING_TENSOR, "nope"},
  {"shard-invalid", "{\"weight_map\": {\"a\": \"shr-ok.safetensors\", "
        "\"t\": \"shr-trailing.safetensors\"}}", uel_error_quark,
      UEL_ERROR_FILE_SIZE_MISMATCH, "shr-trailing.safetensors"},
  {"shard-missing", "{\"weight_map\": {\"a\": \"shr-ok.safetensors\", "
        "\"t\": \"shr-absent.safetensors\"}}", g_file_error_quark,
      G_FILE_ERROR_NOENT, "shr-absent.safetensors"},
};

static void
write_reject_shards (void)
{
  g_autofree gchar *ok = uel_test_path ("shr-ok.safetensors");
  g_autofree gchar *trailing = uel_test_path ("shr-trailing.safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  static const gchar bad[] = "{" T ("t", "U8", "[2]", "[0,2]") "}";

  uel_test_builder_add (b, "a", "U8", "[2]", 2, NULL);
  uel_test_builder_add (b, "b", "U8", "[2]", 2, NULL);
  uel_test_builder_write (b, ok, NULL);
  write_with_data (trailing, bad, strlen (bad), 3);
}

static void
test_sharded_reject (gconstpointer data)
{
  const ShardReject *r = data;
  g_autofree gchar *index = file_for (r->slug, ".index.json");

  write_reject_shards ();
  write_text (index, r->index);
  assert_rejected (index, r->domain (), r->code, r->what);
}

static void
test_sharded_missing_index (void)
{
  g_autofree gchar *index = file_for ("no-such", ".index.json");

  assert_rejected (index, G_FILE_ERROR, G_FILE_ERROR_NOENT, NULL);
}

/* ------------------------------------------------------------------ */
/* scale: large but legal headers parse (no timing: see bench/) */

static void
test_hundred_thousand_tensors (void)
{
  g_autofree gchar *path = file_for ("hundred-thousand", ".safetensors");
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (UelHeader) h = NULL;
  const UelTensorInfo *last;
  struct stat st;

  for (guint i = 0; i < 100000; i++) {
    g_autofree gchar *name =
        g_strdup_printf ("model.layers.%u.self_attn.q_proj.weight", i);

    uel_test_builder_add (b, name, i % 2 ? "F16" : "U8", i % 2 ? "[1]" :
        "[2]", 2, NULL);
  }
  uel_test_builder_write (b, path, NULL);
  h = uel_test_header_open (path);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_test_message ("header of %" G_GUINT64_FORMAT " bytes",
      uel_header_get_data_offset (h, 0) - 8);
  g_assert_cmpuint (uel_header_get_data_offset (h, 0), >, 5000000);
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 100000);
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==, 200000);
  last = uel_header_get_tensor (h, 99999);
  g_assert_cmpstr (last->name, ==,
      "model.layers.99999.self_attn.q_proj.weight");
  g_assert_cmpuint (last->data_begin, ==, 199998);
  g_assert_cmpuint (last->file_offset + last->n_bytes, ==, st.st_size);
  g_assert_true (lookup_ok (h,
          "model.layers.54321.self_attn.q_proj.weight", NULL) ==
      uel_header_get_tensor (h, 54321));
  g_unlink (path);
}

static void
test_fifty_megabyte_metadata (void)
{
  /* 40 MB read without escapes and 10 MB after an escape, which takes the
   * string reader's other path */
  const gsize plain = 40 * 1000 * 1000, escaped = 10 * 1000 * 1000;
  g_autofree gchar *path = file_for ("fifty-megabytes", ".safetensors");
  g_autoptr (GString) s = g_string_sized_new (plain + escaped + 256);
  g_autoptr (UelHeader) h = NULL;
  GHashTable *meta;
  const gchar *v;

  g_string_append (s, "{\"__metadata__\":{\"big\":\"");
  for (gsize i = 0; i < plain; i++)
    g_string_append_c (s, (gchar) ('a' + i % 26));
  g_string_append (s, "\",\"escaped\":\"\\u00e9");
  for (gsize i = 0; i < escaped; i++)
    g_string_append_c (s, 'x');
  g_string_append (s, "\"}," T ("a", "U8", "[2]", "[0,2]") "}");
  write_with_data (path, s->str, s->len, 2);

  h = uel_test_header_open (path);
  g_assert_cmpuint (uel_header_get_data_offset (h, 0), ==, 8 + s->len);
  meta = uel_header_get_metadata (h);
  v = g_hash_table_lookup (meta, "big");
  g_assert_nonnull (v);
  g_assert_cmpuint (strlen (v), ==, plain);
  g_assert_cmpint (v[0], ==, 'a');
  g_assert_cmpint (v[plain - 1], ==, 'a' + (plain - 1) % 26);
  v = g_hash_table_lookup (meta, "escaped");
  g_assert_nonnull (v);
  g_assert_cmpuint (strlen (v), ==, escaped + 2);
  g_assert_true (g_str_has_prefix (v, "é"));
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==, 1);
  g_unlink (path);
}

/* ------------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  for (guint i = 0; i < G_N_ELEMENTS (vectors); i++) {
    g_autofree gchar *p = g_strdup_printf ("/header/conformance/%s",
        vectors[i].name);

    g_test_add_data_func (p, &vectors[i], test_conformance_single);
  }
  g_test_add_func ("/header/conformance/overall", test_conformance_overall);

  g_test_add_func ("/header/accepts/every-dtype-with-its-byte-size",
      test_every_dtype);
  g_test_add_func ("/header/accepts/sub-byte-dtypes-in-whole-bytes",
      test_sub_byte_sizes);
  g_test_add_func ("/header/accepts/scalars-as-one-element", test_scalars);
  g_test_add_func ("/header/accepts/zero-size-tensors-sharing-offsets",
      test_zero_size_tensors);
  g_test_add_func ("/header/accepts/unicode-names-raw-and-escaped",
      test_unicode_names);
  g_test_add_func ("/header/accepts/metadata-null-absent-or-empty",
      test_metadata_variants);
  g_test_add_func ("/header/accepts/unknown-entry-members-and-ignores-them",
      test_unknown_fields_ignored);
  g_test_add_func ("/header/accepts/whitespace-around-the-object",
      test_whitespace_around_object);
  g_test_add_func ("/header/accepts/header-padded-with-spaces",
      test_padded_header);
  g_test_add_func ("/header/accepts/key-order-unlike-offset-order",
      test_key_order_differs_from_offset_order);
  g_test_add_func ("/header/accepts/ten-thousand-tiny-tensors",
      test_ten_thousand_tiny_tensors);
  g_test_add_func ("/header/accepts/dimension-2-to-the-64-minus-1-times-zero",
      test_huge_dimension_times_zero);
  g_test_add_func ("/header/accepts/empty-table", test_empty_table);
  g_test_add_func ("/header/accepts/nesting-127-levels-deep",
      test_nesting_127_levels_accepted);
  g_test_add_func ("/header/lookup/finds-names-and-their-index", test_lookup);
  g_test_add_func ("/header/metadata/maps-strings-to-strings",
      test_get_metadata);
  g_test_add_func ("/header/new-from-fd/reads-a-descriptor-and-refcounts",
      test_new_from_fd_and_refcount);

  for (guint i = 0; i < G_N_ELEMENTS (rejects); i++) {
    g_autofree gchar *p = g_strdup_printf ("/header/rejects/%s",
        rejects[i].slug);

    g_test_add_data_func (p, &rejects[i], test_reject);
  }
  g_test_add_func ("/header/rejects/file-shorter-than-8-bytes",
      test_reject_file_too_small);
  g_test_add_func ("/header/rejects/header-length-100000001-before-file-size",
      test_reject_header_too_large);
  g_test_add_func ("/header/rejects/header-length-2-to-the-64-minus-1",
      test_reject_header_length_max);
  g_test_add_func ("/header/rejects/header-length-past-end-of-file",
      test_reject_header_past_end);
  g_test_add_func ("/header/rejects/directory", test_reject_directory);
  g_test_add_func ("/header/rejects/other-files-as-not-safetensors",
      test_reject_not_safetensors);
  g_test_add_func ("/header/open-file/sees-files-changed-after-validation",
      test_open_file_sees_changes);
  g_test_add_func ("/header/metadata/as-json-text-whatever-the-keys",
      test_metadata_json);
  g_test_add_func ("/select/names-patterns-and-escapes", test_select_names);
  g_test_add_func ("/select/errors-dtypes-and-rank",
      test_select_errors_and_kinds);
  g_test_add_func ("/select/fifty-thousand-names-among-a-million-tensors",
      test_select_many_names);
  g_test_add_func ("/header/rejects/missing-file", test_reject_missing_file);
  g_test_add_func ("/header/rejects/fifo-without-waiting-for-a-writer",
      test_reject_fifo);

  g_test_add_func ("/header/sharded/three-shards-in-shard-name-order",
      test_sharded_three_shards);
  g_test_add_func ("/header/sharded/two-shards-without-metadata",
      test_sharded_two_shards);
  for (guint i = 0; i < G_N_ELEMENTS (shard_rejects); i++) {
    g_autofree gchar *p = g_strdup_printf ("/header/sharded/rejects/%s",
        shard_rejects[i].slug);

    g_test_add_data_func (p, &shard_rejects[i], test_sharded_reject);
  }
  g_test_add_func ("/header/sharded/rejects/missing-index",
      test_sharded_missing_index);

  g_test_add_func ("/header/scale/hundred-thousand-tensors",
      test_hundred_thousand_tensors);
  g_test_add_func ("/header/scale/fifty-megabyte-metadata-value",
      test_fifty_megabyte_metadata);

  return g_test_run ();
}
