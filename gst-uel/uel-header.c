/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uel-error.h"
#include "uel-header.h"
#include "uel-header-private.h"
#include "uel-http-private.h"
#include "uel-io.h"
#include "uel-json-private.h"

G_DEFINE_BOXED_TYPE (UelHeader, uel_header, uel_header_ref,
    uel_header_unref);
G_DEFINE_BOXED_TYPE (UelTensorInfo, uel_tensor_info, uel_tensor_info_copy,
    uel_tensor_info_free);

/**
 * uel_tensor_info_copy:
 * @info: a #UelTensorInfo
 *
 * Copies @info with its name and shape, in one allocation, so that the
 * copy outlives the header @info came from (bindings hold such copies).
 *
 * Returns: (transfer full): the copy; free it with uel_tensor_info_free()
 */
UelTensorInfo *
uel_tensor_info_copy (const UelTensorInfo * info)
{
  gsize shape_bytes, name_bytes;
  UelTensorInfo *copy;
  guint64 *shape;

  g_return_val_if_fail (info != NULL, NULL);

  shape_bytes = (gsize) info->n_dims * sizeof (guint64);
  name_bytes = strlen (info->name) + 1;
  copy = g_malloc (sizeof (UelTensorInfo) + shape_bytes + name_bytes);
  *copy = *info;
  shape = (guint64 *) (copy + 1);
  if (shape_bytes)
    memcpy (shape, info->shape, shape_bytes);
  copy->shape = shape;
  copy->name = memcpy ((gchar *) shape + shape_bytes, info->name, name_bytes);
  return copy;
}

/**
 * uel_tensor_info_free:
 * @info: (transfer full) (nullable): a #UelTensorInfo made by
 *   uel_tensor_info_copy()
 *
 * Frees a copy; the entries of a #UelHeader belong to the header.
 */
void
uel_tensor_info_free (UelTensorInfo * info)
{
  g_free (info);
}

/**
 * uel_tensor_info_get_shape:
 * @info: a #UelTensorInfo
 * @n_dims: (out) (optional): the rank
 *
 * The dimensions, for bindings that cannot read @info's array field.
 *
 * Returns: (array length=n_dims) (transfer none) (nullable): the
 *   dimensions (%NULL or empty for a scalar)
 */
const guint64 *
uel_tensor_info_get_shape (const UelTensorInfo * info, guint * n_dims)
{
  g_return_val_if_fail (info != NULL, NULL);

  if (n_dims)
    *n_dims = info->n_dims;
  return info->shape;
}

/* a tensor while the table is being read, before validation */
typedef struct
{
  gchar *name;
  UelDType dtype;
  guint shape_start;
  guint n_dims;
  guint64 begin;
  guint64 end;
  guint order;
} Pending;

static void
file_clear (gpointer p)
{
  UelFile *f = p;

  g_free (f->path);
  g_clear_pointer (&f->remote, uel_remote_unref);
}

UelHeader *
uel_header_new_empty (const gchar * location)
{
  UelHeader *h = g_new0 (UelHeader, 1);

  h->ref_count = 1;
  h->location = g_strdup (location);
  h->files = g_array_new (FALSE, TRUE, sizeof (UelFile));
  g_array_set_clear_func (h->files, file_clear);
  h->tensors = g_array_new (FALSE, TRUE, sizeof (UelTensorInfo));
  h->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  h->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      g_free);
  return h;
}

/**
 * uel_header_ref:
 * @header: a #UelHeader
 *
 * Returns: (transfer full): @header
 */
UelHeader *
uel_header_ref (UelHeader * header)
{
  g_return_val_if_fail (header != NULL, NULL);
  g_atomic_int_inc (&header->ref_count);
  return header;
}

/**
 * uel_header_unref:
 * @header: (transfer full): a #UelHeader
 */
void
uel_header_unref (UelHeader * header)
{
  g_return_if_fail (header != NULL);
  if (!g_atomic_int_dec_and_test (&header->ref_count))
    return;
  g_free (header->location);
  g_array_unref (header->files);
  g_array_unref (header->tensors);
  g_clear_pointer (&header->names, g_ptr_array_unref);
  g_free (header->shapes);
  g_clear_pointer (&header->shards, g_ptr_array_unref);
  g_hash_table_unref (header->by_name);
  g_hash_table_unref (header->metadata);
  g_free (header);
}

/* A printable, bounded rendering of an untrusted string for messages. */
gchar *
uel_quote (const gchar * s, gsize len)
{
  g_autofree gchar *cut = g_strndup (s, MIN (len, 64));
  g_autofree gchar *esc = g_strescape (cut, NULL);

  return g_strdup_printf ("'%s'%s", esc, len > 64 ? "…" : "");
}

/* A tensor name for messages, quoted only when a message needs it: a
 * header of a million tensors has a million names and, usually, no
 * message. */
typedef struct
{
  const gchar *s;
  gsize len;
  gchar *quoted;
} Name;

static const gchar *
name_q (Name * n)
{
  if (!n->quoted)
    n->quoted = uel_quote (n->s, n->len);
  return n->quoted;
}

static void
name_clear (Name * n)
{
  g_clear_pointer (&n->quoted, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Name, name_clear);

static gboolean
io_error (GError ** error, const gchar * path, const gchar * what, gint err)
{
  g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "%s: %s: %s", path, what,
      g_strerror (err));
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* the JSON tensor table */

static gboolean
read_dims (UelJsonLexer * lx, GArray * dims, gint code, const gchar * path,
    Name * tname, const gchar * field, GError ** error)
{
  gboolean more;

  if (uel_json_peek (lx) != '[') {
    g_set_error (error, UEL_ERROR, code,
        "%s: tensor %s: rule 7: \"%s\" is %s, not an array of integers",
        path, name_q (tname), field, uel_json_describe (lx));
    return FALSE;
  }
  more = uel_json_items_begin (lx, ']');
  for (guint i = 0; more; i++) {
    const gchar *at;
    gchar c = uel_json_peek (lx);
    guint64 v;
    gboolean is_u64;

    if (c == '"' || c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n') {
      g_set_error (error, UEL_ERROR, code,
          "%s: tensor %s: rule 7: element %u of \"%s\" is %s, not an integer",
          path, name_q (tname), i, field, uel_json_describe (lx));
      return FALSE;
    }
    at = lx->p;
    if (!uel_json_read_number (lx, &v, &is_u64, error))
      return FALSE;
    if (!is_u64) {
      g_set_error (error, UEL_ERROR, code,
          "%s: tensor %s: rule 7: element %u of \"%s\" (%.*s) is not an "
          "integer in [0, 2^64)", path, name_q (tname), i, field,
          (int) MIN (lx->p - at, 40), at);
      return FALSE;
    }
    g_array_append_val (dims, v);
    if (!uel_json_items_next (lx, ']', &more, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
read_metadata (UelJsonLexer * lx, UelHeader * h, const gchar * path,
    GError ** error)
{
  gchar c = uel_json_peek (lx);
  gboolean more;

  if (c == 'n')
    return uel_json_skip_value (lx, error);
  if (c != '{') {
    const gchar *what = uel_json_describe (lx);

    if (!uel_json_skip_value (lx, error))
      return FALSE;
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_METADATA,
        "%s: rule 6: __metadata__ is %s, not an object of strings", path,
        what);
    return FALSE;
  }
  more = uel_json_items_begin (lx, '}');
  while (more) {
    gsize klen, vlen;
    g_autofree gchar *key = uel_json_read_string (lx, &klen, error);
    g_autofree gchar *val = NULL;
    g_autofree gchar *qkey = NULL;

    if (!key || !uel_json_expect (lx, ':', error))
      return FALSE;
    qkey = uel_quote (key, klen);
    if (uel_json_peek (lx) != '"') {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_METADATA,
          "%s: rule 6: __metadata__ value of %s is %s, not a string", path,
          qkey, uel_json_describe (lx));
      return FALSE;
    }
    val = uel_json_read_string (lx, &vlen, error);
    if (!val)
      return FALSE;
    if (memchr (key, 0, klen) || memchr (val, 0, vlen)) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_METADATA,
          "%s: rule 6: __metadata__ entry %s contains a NUL character",
          path, qkey);
      return FALSE;
    }
    if (g_hash_table_contains (h->metadata, key)) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_METADATA,
          "%s: rule 6: __metadata__ key %s appears twice", path, qkey);
      return FALSE;
    }
    g_hash_table_insert (h->metadata, g_steal_pointer (&key),
        g_steal_pointer (&val));
    if (!uel_json_items_next (lx, '}', &more, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
read_entry (UelJsonLexer * lx, Pending * t, GArray * dims, const gchar * path,
    Name * tname, GError ** error)
{
  gboolean have_dtype = FALSE, have_shape = FALSE, have_offsets = FALSE;
  gboolean more;
  const gchar *missing;

  if (uel_json_peek (lx) != '{') {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_TENSOR_ENTRY,
        "%s: tensor %s: rule 7: the entry is %s, not an object", path,
        name_q (tname),
        uel_json_describe (lx));
    return FALSE;
  }
  lx->depth++;
  more = uel_json_items_begin (lx, '}');
  while (more) {
    gsize klen;
    g_autofree gchar *key = uel_json_read_string (lx, &klen, error);
    gboolean *have = NULL;

    if (!key || !uel_json_expect (lx, ':', error))
      return FALSE;
    if (strcmp (key, "dtype") == 0 && klen == 5)
      have = &have_dtype;
    else if (strcmp (key, "shape") == 0 && klen == 5)
      have = &have_shape;
    else if (strcmp (key, "data_offsets") == 0 && klen == 12)
      have = &have_offsets;

    if (have && *have) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_TENSOR_ENTRY,
          "%s: tensor %s: rule 7: \"%s\" appears twice", path,
          name_q (tname), key);
      return FALSE;
    }
    if (have == &have_dtype) {
      g_autofree gchar *s = NULL;
      gsize slen;

      if (uel_json_peek (lx) != '"') {
        g_set_error (error, UEL_ERROR, UEL_ERROR_UNKNOWN_DTYPE,
            "%s: tensor %s: rule 7: \"dtype\" is %s, not a string", path,
            name_q (tname), uel_json_describe (lx));
        return FALSE;
      }
      s = uel_json_read_string (lx, &slen, error);
      if (!s)
        return FALSE;
      t->dtype = uel_dtype_from_string (s, (gssize) slen);
      if (t->dtype == UEL_DTYPE_INVALID) {
        g_autofree gchar *q = uel_quote (s, slen);
        g_set_error (error, UEL_ERROR, UEL_ERROR_UNKNOWN_DTYPE,
            "%s: tensor %s: rule 7: dtype %s is not a safetensors dtype "
            "(names are case-sensitive)", path, name_q (tname), q);
        return FALSE;
      }
    } else if (have == &have_shape) {
      t->shape_start = dims->len;
      if (!read_dims (lx, dims, UEL_ERROR_INVALID_SHAPE, path, tname,
              "shape", error))
        return FALSE;
      t->n_dims = dims->len - t->shape_start;
    } else if (have == &have_offsets) {
      g_autoptr (GArray) off = g_array_new (FALSE, FALSE, sizeof (guint64));

      if (!read_dims (lx, off, UEL_ERROR_INVALID_OFFSETS, path, tname,
              "data_offsets", error))
        return FALSE;
      if (off->len != 2) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_OFFSETS,
            "%s: tensor %s: rule 7: \"data_offsets\" has %u integers, "
            "not 2", path, name_q (tname), off->len);
        return FALSE;
      }
      t->begin = g_array_index (off, guint64, 0);
      t->end = g_array_index (off, guint64, 1);
    } else if (!uel_json_skip_value (lx, error)) {
      /* unknown members are ignored, as the reference does */
      return FALSE;
    }
    if (have)
      *have = TRUE;
    if (!uel_json_items_next (lx, '}', &more, error))
      return FALSE;
  }
  lx->depth--;

  missing = !have_dtype ? "dtype" : !have_shape ? "shape" :
      !have_offsets ? "data_offsets" : NULL;
  if (missing) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_TENSOR_ENTRY,
        "%s: tensor %s: rule 7: the entry has no \"%s\"", path, name_q (tname),
        missing);
    return FALSE;
  }
  return TRUE;
}

static gint
pending_cmp (gconstpointer a, gconstpointer b)
{
  const Pending *x = a, *y = b;

  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static void
pending_clear (gpointer p)
{
  g_free (((Pending *) p)->name);
}

/* Rules 4 to 12 over the header's bytes; the file is described by h->files[0]. */
static gboolean
parse_table (UelHeader * h, const gchar * json, gsize n, GError ** error)
{
  const UelFile *file = &g_array_index (h->files, UelFile, 0);
  const gchar *path = file->path;
  g_autoptr (GArray) pending = g_array_new (FALSE, TRUE, sizeof (Pending));
  g_autoptr (GArray) dims = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  gboolean have_metadata = FALSE, more;
  UelJsonLexer lx;
  guint64 start = 0, data_end;
  const gchar *prev = NULL;
  gsize bad;

  g_array_set_clear_func (pending, pending_clear);

  /* rule 4 */
  if (!uel_utf8_validate (json, n, &bad)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_HEADER_NOT_UTF8,
        "%s: rule 4: the header is not valid UTF-8 (byte %" G_GSIZE_FORMAT
        " of %" G_GSIZE_FORMAT ")", path, bad, n);
    return FALSE;
  }

  /* rules 5 to 7, in one pass.  serde_json counts down from its limit
   * (UEL_JSON_MAX_DEPTH) and fails when the count reaches 0: the deepest
   * header the reference accepts nests one level less. */
  uel_json_lexer_init (&lx, json, n, UEL_JSON_MAX_DEPTH - 1,
      UEL_ERROR_HEADER_NOT_JSON);
  if (uel_json_peek (&lx) != '{') {
    const gchar *what = uel_json_describe (&lx);

    if (uel_json_skip_value (&lx, error) && uel_json_at_end (&lx, error))
      g_set_error (error, UEL_ERROR, UEL_ERROR_HEADER_NOT_OBJECT,
          "%s: rule 5: the header is %s, not a JSON object", path, what);
    goto json_error;
  }
  lx.depth = 1;
  more = uel_json_items_begin (&lx, '}');
  while (more) {
    gsize klen;
    g_autofree gchar *key = uel_json_read_string (&lx, &klen, error);
    g_auto (Name) tn = { NULL, 0, NULL };
    Pending t = { 0, };

    if (!key || !uel_json_expect (&lx, ':', error))
      goto json_error;
    if (klen == 12 && memcmp (key, "__metadata__", 12) == 0) {
      if (have_metadata) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_METADATA,
            "%s: rule 6: __metadata__ appears twice", path);
        return FALSE;
      }
      have_metadata = TRUE;
      if (!read_metadata (&lx, h, path, error))
        goto json_error;
    } else {
      tn.s = key;
      tn.len = klen;
      if (memchr (key, 0, klen)) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_TENSOR_NAME,
            "%s: tensor %s: its name contains a NUL character", path,
            name_q (&tn));
        return FALSE;
      }
      if (g_hash_table_contains (seen, key)) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_DUPLICATE_TENSOR,
            "%s: tensor %s: the name appears twice in the header", path,
            name_q (&tn));
        return FALSE;
      }
      if (!read_entry (&lx, &t, dims, path, &tn, error))
        goto json_error;
      t.order = pending->len;
      t.name = g_steal_pointer (&key);
      g_array_append_val (pending, t);
      g_hash_table_add (seen, t.name);
    }
    if (!uel_json_items_next (&lx, '}', &more, error))
      goto json_error;
  }
  if (!uel_json_at_end (&lx, error))
    goto json_error;

  /* rules 8 to 11, in file order */
  g_array_sort (pending, pending_cmp);
  for (guint i = 0; i < pending->len; i++) {
    Pending *t = &g_array_index (pending, Pending, i);
    g_auto (Name) tn = { t->name, strlen (t->name), NULL };
    guint64 count = 1, bits, size;
    guint dtype_bits = uel_dtype_get_bits (t->dtype);

    if (t->end < t->begin) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_OFFSETS_NOT_CONTIGUOUS,
          "%s: tensor %s: rule 8: data_offsets [%" G_GUINT64_FORMAT ", %"
          G_GUINT64_FORMAT "] are reversed", path, name_q (&tn), t->begin,
          t->end);
      return FALSE;
    }
    if (t->begin != start) {
      g_autofree gchar *pname = prev ? uel_quote (prev, strlen (prev)) : NULL;

      if (t->begin > start)
        g_set_error (error, UEL_ERROR, UEL_ERROR_OFFSETS_NOT_CONTIGUOUS,
            "%s: tensor %s: rule 8: begins at %" G_GUINT64_FORMAT
            ", leaving a gap after %s which ends at %" G_GUINT64_FORMAT,
            path, name_q (&tn), t->begin,
            pname ? pname : "the start of the data",
            start);
      else
        g_set_error (error, UEL_ERROR, UEL_ERROR_OFFSETS_NOT_CONTIGUOUS,
            "%s: tensor %s: rule 8: begins at %" G_GUINT64_FORMAT
            ", overlapping %s which ends at %" G_GUINT64_FORMAT, path,
            name_q (&tn),
            t->begin, pname, start);
      return FALSE;
    }
    start = t->end;
    prev = t->name;

    for (guint d = 0; d < t->n_dims; d++) {
      if (!g_uint64_checked_mul (&count, count,
              g_array_index (dims, guint64, t->shape_start + d))) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_SIZE_OVERFLOW,
            "%s: tensor %s: rule 9: the element count of its shape "
            "overflows 64 bits", path, name_q (&tn));
        return FALSE;
      }
    }
    if (!g_uint64_checked_mul (&bits, count, dtype_bits)) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_SIZE_OVERFLOW,
          "%s: tensor %s: rule 9: %" G_GUINT64_FORMAT " elements × %u bits "
          "overflows 64 bits", path, name_q (&tn), count, dtype_bits);
      return FALSE;
    }
    if (bits % 8 != 0) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_PARTIAL_BYTE,
          "%s: tensor %s: rule 10: %" G_GUINT64_FORMAT " elements of %s are "
          "%" G_GUINT64_FORMAT " bits, not a whole number of bytes", path,
          name_q (&tn), count, uel_dtype_to_string (t->dtype), bits);
      return FALSE;
    }
    size = bits / 8;
    if (t->end - t->begin != size) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_SIZE_MISMATCH,
          "%s: tensor %s: rule 11: data_offsets [%" G_GUINT64_FORMAT ", %"
          G_GUINT64_FORMAT "] span %" G_GUINT64_FORMAT " bytes but %"
          G_GUINT64_FORMAT " elements of %s take %" G_GUINT64_FORMAT, path,
          name_q (&tn), t->begin, t->end, t->end - t->begin, count,
          uel_dtype_to_string (t->dtype), size);
      return FALSE;
    }
  }

  /* rule 12 */
  if (!g_uint64_checked_add (&data_end, file->data_offset, start)
      || data_end != file->size) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_FILE_SIZE_MISMATCH,
        "%s: rule 12: the header says the data ends at byte %"
        G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT " but the file is %"
        G_GUINT64_FORMAT " bytes (%s)", path, file->data_offset, start,
        file->size, (data_end > file->size
            || data_end < file->data_offset) ? "truncated" :
        "trailing bytes");
    return FALSE;
  }

  /* commit */
  h->total_bytes = start;
  h->names = g_ptr_array_new_full (pending->len, g_free);
  h->shapes = (guint64 *) g_array_steal (dims, NULL);
  for (guint i = 0; i < pending->len; i++) {
    Pending *t = &g_array_index (pending, Pending, i);
    UelTensorInfo info = { 0, };
    guint64 count = 1;

    for (guint d = 0; d < t->n_dims; d++)
      count *= h->shapes[t->shape_start + d];
    info.name = t->name;
    info.dtype = t->dtype;
    info.n_dims = t->n_dims;
    info.shape = t->n_dims ? h->shapes + t->shape_start : NULL;
    info.n_elements = count;
    info.n_bytes = t->end - t->begin;
    info.data_begin = t->begin;
    info.file_offset = file->data_offset + t->begin;
    info.file_index = 0;
    g_array_append_val (h->tensors, info);
    g_ptr_array_add (h->names, g_steal_pointer (&t->name));
    g_hash_table_insert (h->by_name, (gpointer) info.name,
        GUINT_TO_POINTER (i + 1));
  }
  return TRUE;

json_error:
  if (error && *error && (*error)->domain == UEL_ERROR
      && (*error)->code == UEL_ERROR_HEADER_NOT_JSON)
    g_prefix_error (error, "%s: rule 5: the header is not strict JSON: ",
        path);
  return FALSE;
}

/* ------------------------------------------------------------------ */
/* single files */

static void
file_set_identity (UelFile * file, const struct stat *st)
{
  file->size = (guint64) st->st_size;
  file->dev = (guint64) st->st_dev;
  file->ino = (guint64) st->st_ino;
  file->mtime_sec = (gint64) st->st_mtim.tv_sec;
  file->mtime_nsec = (gint64) st->st_mtim.tv_nsec;
}

gboolean
uel_check_regular (gint fd, const gchar * path, struct stat *st,
    GError ** error)
{
  if (fstat (fd, st) < 0)
    return io_error (error, path, "cannot stat", errno);
  if (S_ISDIR (st->st_mode)) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_ISDIR,
        "%s: is a directory, not a .safetensors file", path);
    return FALSE;
  }
  if (!S_ISREG (st->st_mode)) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
        "%s: is not a regular file", path);
    return FALSE;
  }
  return TRUE;
}

gboolean
uel_header_check_length (const gchar * path, const guint8 * head,
    gsize head_len, guint64 size, guint64 * n, GError ** error)
{
  guint64 len;

  /* rule 1 */
  if (size < 8) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_FILE_TOO_SMALL,
        "%s: not a safetensors file: rule 1: the file is %" G_GUINT64_FORMAT
        " bytes, shorter than the 8-byte header length", path, size);
    return FALSE;
  }
  g_assert (head_len >= 8);
  memcpy (&len, head, 8);
  len = GUINT64_FROM_LE (len);

  /* rule 2, before the file size.  A file of another kind fails here (its
   * first bytes, read as a length, are huge): say so first, and show the
   * bytes, rather than only a number nobody wrote. */
  if (len > UEL_MAX_HEADER_SIZE) {
    g_autofree gchar *q = uel_quote ((const gchar *) head, 8);

    g_set_error (error, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE,
        "%s: not a safetensors file: rule 2: its first 8 bytes, %s, give a "
        "header length of %" G_GUINT64_FORMAT ", larger than the limit of %"
        G_GUINT64_FORMAT " bytes", path, q, len, UEL_MAX_HEADER_SIZE);
    return FALSE;
  }
  /* rule 3 */
  if (8 + len > size) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_HEADER_TRUNCATED,
        "%s: truncated, or not a safetensors file: rule 3: the header "
        "length %" G_GUINT64_FORMAT " runs past the end of the file (8 + %"
        G_GUINT64_FORMAT " > %" G_GUINT64_FORMAT " bytes)", path, len, len,
        size);
    return FALSE;
  }
  *n = len;
  return TRUE;
}

UelHeader *
uel_header_new_remote (UelRemote * remote, const gchar * json, guint64 n,
    GError ** error)
{
  g_autoptr (UelHeader) h = NULL;
  g_autofree gchar *text = g_malloc ((gsize) n + 1);
  const gchar *name = uel_remote_get_name (remote);
  UelFile file = { 0, };

  memcpy (text, json, (gsize) n);
  text[n] = '\0';
  h = uel_header_new_empty (name);
  file.path = g_strdup (name);
  file.remote = uel_remote_ref (remote);
  file.size = uel_remote_get_size (remote);
  file.data_offset = 8 + n;
  g_array_append_val (h->files, file);
  if (!parse_table (h, text, (gsize) n, error))
    return NULL;
  return g_steal_pointer (&h);
}

/**
 * uel_header_new_from_fd:
 * @fd: a file descriptor open for reading on a `.safetensors` file
 * @path: the file's name, kept for messages and reported by
 *   uel_header_get_file_path()
 * @error: return location for a #GError
 *
 * Reads and validates the header of one `.safetensors` file, without
 * reading its data section.  Nothing is allocated from the header length
 * before it has been checked against %UEL_MAX_HEADER_SIZE and the real file
 * size.
 *
 * Returns: (transfer full) (nullable): the header, or %NULL with @error set
 *   in the #UEL_ERROR domain (or #G_FILE_ERROR for a directory or a special
 *   file)
 */
UelHeader *
uel_header_new_from_fd (gint fd, const gchar * path, GError ** error)
{
  g_autoptr (UelHeader) h = NULL;
  g_autofree gchar *json = NULL;
  struct stat st;
  guint8 len_le[8] = { 0, };
  guint64 n, size;
  UelFile file = { 0, };

  g_return_val_if_fail (fd >= 0, NULL);
  g_return_val_if_fail (path != NULL, NULL);

  if (!uel_check_regular (fd, path, &st, error))
    return NULL;
  size = (guint64) st.st_size;

  if (size >= 8 && !uel_pread_full (fd, len_le, 8, 0, path, error))
    return NULL;
  if (!uel_header_check_length (path, len_le, size >= 8 ? 8 : 0, size, &n,
          error))
    return NULL;

  json = g_malloc (n + 1);
  if (!uel_pread_full (fd, json, n, 8, path, error))
    return NULL;
  json[n] = '\0';

  h = uel_header_new_empty (path);
  file.path = g_strdup (path);
  file_set_identity (&file, &st);
  file.data_offset = 8 + n;
  g_array_append_val (h->files, file);
  if (!parse_table (h, json, n, error))
    return NULL;
  return g_steal_pointer (&h);
}

gint
uel_open_readonly (const gchar * path, gint flags, GError ** error)
{
  /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer before
   * uel_check_regular() could reject it.  Reads block again afterwards. */
  gint fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags);

  if (fd < 0) {
    gint err = errno;
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (err),
        "%s: cannot open: %s", path, g_strerror (err));
    return -1;
  }
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

UelHeader *
uel_header_open_single (const gchar * path, GError ** error)
{
  UelHeader *h;
  gint fd = uel_open_readonly (path, 0, error);

  if (fd < 0)
    return NULL;
  h = uel_header_new_from_fd (fd, path, error);
  close (fd);
  return h;
}

/**
 * uel_header_open:
 * @location: a `.safetensors` file, or a sharded checkpoint's index (a name
 *   ending in `.json`, such as `model.safetensors.index.json`); either may
 *   be an `http://`, `https://` or `s3://` URL
 * @error: return location for a #GError
 *
 * A URL's header is read with one range request for its first 64 KiB
 * (a second when the header is longer), and its tensors later with more
 * (see #UelReader); an index's shards are fetched beside it.  Redirects
 * are followed (a Hugging Face Hub `resolve` URL), `HF_TOKEN` goes as a
 * bearer token to the Hub (`huggingface.co`, or the `HF_ENDPOINT` of
 * huggingface_hub) and to no other host, TLS is verified (against
 * `CURL_CA_BUNDLE` or `SSL_CERT_FILE` when set) and libcurl's proxy
 * variables apply.  Messages name the URL without its user information
 * and query, and so does uel_header_get_location().  `s3://BUCKET/KEY`
 * requests are signed with SigV4 (`AWS_ACCESS_KEY_ID` and the other
 * standard variables, or `~/.aws/credentials` and `~/.aws/config`;
 * `AWS_ENDPOINT_URL` for an S3-compatible store).
 *
 * Opens and validates a file's header, or an index and every shard it
 * names.  An index is `{"metadata": {...}, "weight_map": {tensor: shard}}`;
 * the `weight_map` must map at least one tensor (an index of no shard is a
 * checkpoint of nothing, not an empty model: a broken download, most
 * likely), its shards must be plain file names in the index's folder, each
 * must be a valid `.safetensors` file, and each mapped tensor must exist in
 * its shard.  (A single `.safetensors` file of no tensor is valid: the
 * reference writes one for an empty dict.)
 *
 * Returns: (transfer full) (nullable): the header, or %NULL with @error set:
 *   #G_FILE_ERROR for a file that cannot be opened (%G_FILE_ERROR_NOENT,
 *   %G_FILE_ERROR_ACCES, %G_FILE_ERROR_ISDIR …; HTTP 404 and 410 are
 *   %G_FILE_ERROR_NOENT, 401 and 403 %G_FILE_ERROR_ACCES), #UEL_ERROR
 *   otherwise (%UEL_ERROR_IO for a server or TLS failure)
 */
UelHeader *
uel_header_open (const gchar * location, GError ** error)
{
  g_return_val_if_fail (location != NULL, NULL);

  if (uel_location_is_url (location)) {
    g_autofree gchar *name = uel_url_redact (location);

    if (g_str_has_suffix (name, ".json"))
      return uel_index_open (location, error);
    return uel_remote_header_open (location, error);
  }
  if (g_str_has_suffix (location, ".json"))
    return uel_index_open (location, error);
  return uel_header_open_single (location, error);
}

/**
 * uel_header_get_location:
 * @header: a #UelHeader
 *
 * Returns: the path the header was opened from (the index for a sharded
 *   checkpoint)
 */
const gchar *
uel_header_get_location (const UelHeader * header)
{
  return header->location;
}

/**
 * uel_header_is_sharded:
 * @header: a #UelHeader
 *
 * Returns: whether @header was opened from a `*.index.json`
 */
gboolean
uel_header_is_sharded (const UelHeader * header)
{
  return header->sharded;
}

/**
 * uel_header_get_n_tensors:
 * @header: a #UelHeader
 *
 * Returns: the number of tensors in the table
 */
guint
uel_header_get_n_tensors (const UelHeader * header)
{
  return header->tensors->len;
}

/**
 * uel_header_get_tensor:
 * @header: a #UelHeader
 * @index: a position in stream order, below uel_header_get_n_tensors()
 *
 * Returns: (transfer none): the tensor at @index, owned by @header
 */
const UelTensorInfo *
uel_header_get_tensor (const UelHeader * header, guint index)
{
  g_return_val_if_fail (index < header->tensors->len, NULL);
  return &g_array_index (header->tensors, UelTensorInfo, index);
}

/**
 * uel_header_lookup:
 * @header: a #UelHeader
 * @name: a tensor name
 * @index: (out) (optional): its position in stream order
 *
 * Returns: (transfer none) (nullable): the tensor called @name, or %NULL
 */
const UelTensorInfo *
uel_header_lookup (const UelHeader * header, const gchar * name, guint * index)
{
  guint i = GPOINTER_TO_UINT (g_hash_table_lookup (header->by_name, name));

  if (i == 0)
    return NULL;
  if (index)
    *index = i - 1;
  return &g_array_index (header->tensors, UelTensorInfo, i - 1);
}

/**
 * uel_header_get_metadata:
 * @header: a #UelHeader
 *
 * The `__metadata__` map of a single file; for a sharded checkpoint, the
 * index's `metadata` (values that are not strings in their JSON text, e.g.
 * `"total_size"` → `"123"`).
 *
 * Returns: (transfer none) (element-type utf8 utf8): the metadata, empty
 *   when the file has none
 */
GHashTable *
uel_header_get_metadata (const UelHeader * header)
{
  return header->metadata;
}

/**
 * uel_header_get_metadata_json:
 * @header: a #UelHeader
 *
 * The metadata map as one compact JSON object, its keys sorted so that the
 * text is the same for the same map: what the `uel-header` event and
 * message carry in their `metadata` field.  Linear in the size of the map
 * (plus the sort), whatever its keys: any string is a valid key here,
 * where a #GstStructure field name is not.
 *
 * Returns: (transfer full): the JSON text, `{}` for no metadata
 */
gchar *
uel_header_get_metadata_json (const UelHeader * header)
{
  GString *out = g_string_new (NULL);

  uel_json_append_sorted_object (out, header->metadata);
  return g_string_free (out, FALSE);
}

/**
 * uel_header_get_total_bytes:
 * @header: a #UelHeader
 *
 * Returns: the sum of the byte sizes of all tensors in the table
 */
guint64
uel_header_get_total_bytes (const UelHeader * header)
{
  return header->total_bytes;
}

/**
 * uel_header_get_n_files:
 * @header: a #UelHeader
 *
 * Returns: the number of `.safetensors` files: 1, or the number of shards
 */
guint
uel_header_get_n_files (const UelHeader * header)
{
  return header->files->len;
}

/**
 * uel_header_get_file_path:
 * @header: a #UelHeader
 * @file_index: below uel_header_get_n_files()
 *
 * Returns: the path of the file (a shard's path joins the index's folder)
 */
const gchar *
uel_header_get_file_path (const UelHeader * header, guint file_index)
{
  g_return_val_if_fail (file_index < header->files->len, NULL);
  return g_array_index (header->files, UelFile, file_index).path;
}

/**
 * uel_header_get_file_size:
 * @header: a #UelHeader
 * @file_index: below uel_header_get_n_files()
 *
 * Returns: the file's size in bytes when it was validated
 */
guint64
uel_header_get_file_size (const UelHeader * header, guint file_index)
{
  g_return_val_if_fail (file_index < header->files->len, 0);
  return g_array_index (header->files, UelFile, file_index).size;
}

/**
 * uel_header_get_data_offset:
 * @header: a #UelHeader
 * @file_index: below uel_header_get_n_files()
 *
 * Returns: where the file's data section begins: 8 + the header length
 */
guint64
uel_header_get_data_offset (const UelHeader * header, guint file_index)
{
  g_return_val_if_fail (file_index < header->files->len, 0);
  return g_array_index (header->files, UelFile, file_index).data_offset;
}

/* Whether @st still describes the file that was validated. */
static gboolean
check_identity (const UelHeader * header, guint file_index,
    const struct stat *st, GError ** error)
{
  const UelFile *f = &g_array_index (header->files, UelFile, file_index);
  const gchar *what = NULL;

  if ((guint64) st->st_dev != f->dev || (guint64) st->st_ino != f->ino)
    what = "another file (a new inode) is now at this path";
  else if ((guint64) st->st_size != f->size)
    what = "its size changed";
  else if ((gint64) st->st_mtim.tv_sec != f->mtime_sec
      || (gint64) st->st_mtim.tv_nsec != f->mtime_nsec)
    what = "it was written to (its modification time changed)";
  if (!what)
    return TRUE;
  g_set_error (error, UEL_ERROR, UEL_ERROR_FILE_CHANGED,
      "%s: the file changed after its header was validated: %s (now %"
      G_GUINT64_FORMAT " bytes, was %" G_GUINT64_FORMAT ")", f->path, what,
      (guint64) st->st_size, f->size);
  return FALSE;
}

/**
 * uel_header_open_file:
 * @header: a #UelHeader
 * @file_index: below uel_header_get_n_files()
 * @flags: open(2) flags added to `O_RDONLY | O_CLOEXEC` (e.g. `O_DIRECT`)
 * @error: return location for a #GError
 *
 * Opens one of the header's files for reading its tensors, and checks that
 * it is still the file that was validated: a regular file with the same
 * device, inode, size and modification time (%UEL_ERROR_FILE_CHANGED
 * otherwise).  The header was read on another descriptor; this is the one
 * to read the data with.
 *
 * Returns: a file descriptor to close(), or -1 with @error set
 */
gint
uel_header_open_file (const UelHeader * header, guint file_index, gint flags,
    GError ** error)
{
  const gchar *path;
  struct stat st;
  gint fd;

  g_return_val_if_fail (file_index < header->files->len, -1);
  path = uel_header_get_file_path (header, file_index);
  if (uel_header_get_file_remote (header, file_index)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT, "%s: a remote "
        "file has no descriptor: read it with a UelReader", path);
    return -1;
  }
  fd = uel_open_readonly (path, flags, error);
  if (fd < 0)
    return -1;
  if (!uel_check_regular (fd, path, &st, error)
      || !check_identity (header, file_index, &st, error)) {
    close (fd);
    return -1;
  }
  return fd;
}

/**
 * uel_header_check_file:
 * @header: a #UelHeader
 * @file_index: below uel_header_get_n_files()
 * @fd: a descriptor of that file, from uel_header_open_file()
 * @error: return location for a #GError
 *
 * Checks that the file behind @fd is still what it was when its header
 * was validated: same size and modification time.  A reader calls it
 * after reading a tensor and before handing it on, so that bytes read
 * while the file was rewritten in place, extended or truncated are an
 * error (%UEL_ERROR_FILE_CHANGED) instead of a silent mix of old and new.
 * A remote file needs no check here (%TRUE): each response is compared
 * with the validators of the first before its bytes are used.
 * A writer that keeps the size and sets the modification time back, or
 * writes within the file system's timestamp granularity of the
 * validation, is not seen.
 *
 * Returns: %TRUE when the file is unchanged
 */
gboolean
uel_header_check_file (const UelHeader * header, guint file_index, gint fd,
    GError ** error)
{
  struct stat st;

  g_return_val_if_fail (file_index < header->files->len, FALSE);
  /* a remote file's responses are each checked as they arrive */
  if (uel_header_get_file_remote (header, file_index))
    return TRUE;
  if (fstat (fd, &st) < 0)
    return io_error (error, uel_header_get_file_path (header, file_index),
        "cannot stat", errno);
  return check_identity (header, file_index, &st, error);
}

UelRemote *
uel_header_get_file_remote (const UelHeader * header, guint file_index)
{
  return g_array_index (header->files, UelFile, file_index).remote;
}

/**
 * uel_header_get_bytes_fetched:
 * @header: a #UelHeader
 *
 * The bytes received from servers for @header's remote files so far:
 * after uel_header_open() the header's own (and an index's), then the
 * tensors read by any #UelReader of @header.  Retried and discarded bytes
 * are counted too.
 *
 * Returns: the bytes, 0 for local files
 */
guint64
uel_header_get_bytes_fetched (const UelHeader * header)
{
  guint64 n = header->index_bytes;

  for (guint i = 0; i < header->files->len; i++) {
    UelRemote *r = g_array_index (header->files, UelFile, i).remote;

    if (r)
      n += uel_remote_get_bytes_fetched (r);
  }
  return n;
}
