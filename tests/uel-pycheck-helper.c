/* gst-uel: the library's side of the Python cross-check
 * (check-python-crosscheck.py): writes a file with UelWriter from a JSON
 * description, and casts raw arrays with uel_convert_cpu()
 * SPDX-License-Identifier: MIT
 *
 *   uel-pycheck-helper write OUT SPEC.json BLOB
 *     SPEC.json: {"metadata": {"key": "value", ...},
 *                 "tensors": [{"name": "w", "dtype": "F32", "shape": [2, 3],
 *                              "pieces": [[at, blob_offset, length], ...]},
 *                             ...]}
 *     Each piece is written with uel_writer_write() from BLOB at
 *     blob_offset, to the tensor's byte at; the bytes no piece covers are
 *     written with uel_writer_write_zeros(), so that a tensor with no piece
 *     is a hole in the file.
 *
 *   uel-pycheck-helper convert FROM TO IN OUT
 *     Casts the raw little-endian elements of IN (dtype FROM, e.g. F32)
 *     to TO with uel_convert_cpu() and writes them to OUT.
 */
#include <gst-uel/uel.h>
#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>

static gboolean
json_u64 (JsonNode * node, guint64 * out)
{
  gint64 v;

  if (!JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  v = json_node_get_int (node);
  if (v < 0)
    return FALSE;
  *out = (guint64) v;
  return TRUE;
}

static gint
compare_pieces (gconstpointer a, gconstpointer b)
{
  guint64 x = ((const guint64 *) a)[0], y = ((const guint64 *) b)[0];

  return x < y ? -1 : x > y;
}

/* Writes one tensor's pieces in order of their place in the tensor, and
 * zeros in the gaps between them. */
static gboolean
write_tensor (UelWriter * w, const UelTensorInfo * t, JsonArray * pieces,
    GMappedFile * blob, GError ** error)
{
  const gchar *data = blob ? g_mapped_file_get_contents (blob) : NULL;
  gsize blob_len = blob ? g_mapped_file_get_length (blob) : 0;
  guint n = pieces ? json_array_get_length (pieces) : 0;
  g_autofree guint64 *p = g_new0 (guint64, 3 * (gsize) n + 1);
  guint64 at = 0;

  for (guint i = 0; i < n; i++) {
    JsonArray *a = json_node_get_array (json_array_get_element (pieces, i));

    if (!a || json_array_get_length (a) != 3
        || !json_u64 (json_array_get_element (a, 0), &p[3 * i])
        || !json_u64 (json_array_get_element (a, 1), &p[3 * i + 1])
        || !json_u64 (json_array_get_element (a, 2), &p[3 * i + 2])
        || p[3 * i + 1] > blob_len || p[3 * i + 2] > blob_len - p[3 * i + 1]) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
          "tensor '%s': piece %u is not [at, blob_offset, length] inside "
          "the blob", t->name, i);
      return FALSE;
    }
  }
  qsort (p, n, 3 * sizeof (guint64), compare_pieces);
  for (guint i = 0; i <= n; i++) {
    guint64 next = i < n ? p[3 * i] : t->n_bytes;

    if (next > at && !uel_writer_write_zeros (w, t->name, at, next - at,
            error))
      return FALSE;
    if (i == n)
      break;
    if (!uel_writer_write (w, t->name, p[3 * i], data + p[3 * i + 1],
            p[3 * i + 2], error))
      return FALSE;
    at = MAX (at, p[3 * i] + p[3 * i + 2]);
  }
  return TRUE;
}

static gboolean
declare (UelWriter * w, JsonObject * spec, GError ** error)
{
  JsonObject *metadata = json_object_get_object_member (spec, "metadata");
  JsonArray *tensors = json_object_get_array_member (spec, "tensors");

  if (metadata) {
    g_autoptr (GList) keys = json_object_get_members (metadata);

    for (GList * k = keys; k; k = k->next)
      if (!uel_writer_set_metadata (w, k->data,
              json_object_get_string_member (metadata, k->data), error))
        return FALSE;
  }
  for (guint i = 0; tensors && i < json_array_get_length (tensors); i++) {
    JsonObject *t = json_array_get_object_element (tensors, i);
    JsonArray *shape = json_object_get_array_member (t, "shape");
    guint n_dims = json_array_get_length (shape);
    g_autofree guint64 *dims = g_new0 (guint64, n_dims + 1);

    for (guint d = 0; d < n_dims; d++)
      if (!json_u64 (json_array_get_element (shape, d), &dims[d])) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
            "tensor %u: dimension %u is not a size", i, d);
        return FALSE;
      }
    if (!uel_writer_add_tensor (w, json_object_get_string_member (t, "name"),
            uel_dtype_from_string (json_object_get_string_member (t, "dtype"),
                -1), n_dims, dims, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
write_file (const gchar * out, const gchar * spec_path, const gchar * blob_path,
    GError ** error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GMappedFile) blob = NULL;
  g_autoptr (UelWriter) w = NULL;
  JsonObject *spec;
  JsonArray *tensors;

  if (!json_parser_load_from_file (parser, spec_path, error))
    return FALSE;
  spec = json_node_get_object (json_parser_get_root (parser));
  if (!spec) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "%s: not a JSON object", spec_path);
    return FALSE;
  }
  blob = g_mapped_file_new (blob_path, FALSE, error);
  if (!blob)
    return FALSE;
  w = uel_writer_new (out, error);
  if (!w || !declare (w, spec, error)
      || !uel_writer_write_header (w, error))
    return FALSE;
  tensors = json_object_get_array_member (spec, "tensors");
  for (guint i = 0; tensors && i < json_array_get_length (tensors); i++) {
    JsonObject *t = json_array_get_object_element (tensors, i);
    const UelTensorInfo *info = uel_writer_lookup (w,
        json_object_get_string_member (t, "name"), NULL);
    JsonArray *pieces = json_object_has_member (t, "pieces")
        ? json_object_get_array_member (t, "pieces") : NULL;

    if (!write_tensor (w, info, pieces, blob, error))
      return FALSE;
  }
  return uel_writer_finish (w, error);
}

static gboolean
convert_file (const gchar * from_name, const gchar * to_name,
    const gchar * in, const gchar * out, GError ** error)
{
  UelDType from = uel_dtype_from_string (from_name, -1);
  UelDType to = uel_dtype_from_string (to_name, -1);
  g_autofree gchar *src = NULL;
  g_autofree gchar *dst = NULL;
  gsize len, width, n;

  if (!uel_convert_cpu_supported (from, to)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "no CPU conversion from '%s' to '%s'", from_name, to_name);
    return FALSE;
  }
  if (!g_file_get_contents (in, &src, &len, error))
    return FALSE;
  width = uel_dtype_get_bits (from) / 8;
  if (len % width) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "%s: %" G_GSIZE_FORMAT " bytes is not a whole number of %s "
        "elements", in, len, from_name);
    return FALSE;
  }
  n = len / width;
  dst = g_malloc (uel_convert_output_size (from, to, len) + 1);
  return uel_convert_cpu (from, to, src, dst, n, error)
      && g_file_set_contents (out, dst,
      uel_convert_output_size (from, to, len), error);
}

int
main (int argc, char **argv)
{
  GError *err = NULL;
  gboolean ok;

  if (argc == 5 && !strcmp (argv[1], "write"))
    ok = write_file (argv[2], argv[3], argv[4], &err);
  else if (argc == 6 && !strcmp (argv[1], "convert"))
    ok = convert_file (argv[2], argv[3], argv[4], argv[5], &err);
  else {
    g_printerr ("usage: %s write OUT SPEC.json BLOB\n"
        "       %s convert FROM TO IN OUT\n", argv[0], argv[0]);
    return 2;
  }
  if (!ok) {
    g_printerr ("%s: %s\n", argv[1], err->message);
    g_error_free (err);
    return 1;
  }
  return 0;
}
