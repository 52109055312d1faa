/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:uel-select
 * @title: UelTensorFilter
 *
 * Tensor selection, the one way every element and the loader do it.
 *
 * A names specification is a comma-separated list.  Blanks around each item
 * are dropped, and empty items too.  An item with a `*` (any run of
 * characters) or a `?` (one character) is a glob pattern; any other item
 * is a literal name, looked up by hash, so a list of thousands of names
 * costs no more than one.  A backslash takes the next character as it is:
 * `a\,b` is the name `a,b`, `w\*` the name `w*`, `\\` a backslash, `\ `
 * a blank kept at either end.  uel_tensor_name_escape() writes any name
 * that way.
 */

#include "config.h"

#include <string.h>

#include "uel-error.h"
#include "uel-select.h"

typedef struct
{
  gchar *text;                  /* a pattern keeps its backslashes */
  gboolean is_pattern;
} Item;

struct _UelTensorFilter
{
  GArray *items;                /* Item, in the order given */
  GHashTable *literals;         /* unescaped name -> index in items + 1 */
  GArray *patterns;             /* guint: indices in items */
  gboolean any_dtype;
  gboolean dtypes[UEL_DTYPE_N_TYPES];
  gint ndim;
};

G_DEFINE_BOXED_TYPE (UelTensorFilter, uel_tensor_filter,
    uel_tensor_filter_copy, uel_tensor_filter_free);

static void
item_clear (gpointer p)
{
  g_free (((Item *) p)->text);
}

/**
 * uel_tensor_filter_new:
 *
 * Returns: (transfer full): a filter that takes every tensor
 */
UelTensorFilter *
uel_tensor_filter_new (void)
{
  UelTensorFilter *f = g_new0 (UelTensorFilter, 1);

  f->items = g_array_new (FALSE, TRUE, sizeof (Item));
  g_array_set_clear_func (f->items, item_clear);
  f->literals = g_hash_table_new (g_str_hash, g_str_equal);
  f->patterns = g_array_new (FALSE, FALSE, sizeof (guint));
  f->any_dtype = TRUE;
  f->ndim = -1;
  return f;
}

static void
add_item (UelTensorFilter * f, gchar * text, gboolean is_pattern)
{
  Item item = { text, is_pattern };
  guint index = f->items->len;

  g_array_append_val (f->items, item);
  if (is_pattern)
    g_array_append_val (f->patterns, index);
  else if (!g_hash_table_contains (f->literals, text))
    g_hash_table_insert (f->literals, text, GUINT_TO_POINTER (index + 1));
}

/**
 * uel_tensor_filter_copy:
 * @filter: a #UelTensorFilter
 *
 * Returns: (transfer full): a copy of @filter
 */
UelTensorFilter *
uel_tensor_filter_copy (const UelTensorFilter * filter)
{
  UelTensorFilter *f = uel_tensor_filter_new ();

  for (guint i = 0; i < filter->items->len; i++) {
    const Item *it = &g_array_index (filter->items, Item, i);

    add_item (f, g_strdup (it->text), it->is_pattern);
  }
  f->any_dtype = filter->any_dtype;
  memcpy (f->dtypes, filter->dtypes, sizeof f->dtypes);
  f->ndim = filter->ndim;
  return f;
}

/**
 * uel_tensor_filter_free:
 * @filter: (transfer full): a #UelTensorFilter
 */
void
uel_tensor_filter_free (UelTensorFilter * filter)
{
  if (!filter)
    return;
  g_hash_table_unref (filter->literals);
  g_array_unref (filter->patterns);
  g_array_unref (filter->items);
  g_free (filter);
}

static gboolean
is_blank (gchar c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/**
 * uel_tensor_filter_add_names:
 * @filter: a #UelTensorFilter
 * @spec: (nullable): comma-separated names and glob patterns (see the
 *   section's description for the escapes)
 *
 * Adds the items of @spec.  Once a filter has names, it takes only the
 * tensors that one of them names or matches.
 */
void
uel_tensor_filter_add_names (UelTensorFilter * filter, const gchar * spec)
{
  GString *raw = g_string_new (NULL), *name = g_string_new (NULL);
  gsize raw_end = 0, name_end = 0;
  gboolean is_pattern = FALSE;

  g_return_if_fail (filter != NULL);
  if (!spec)
    spec = "";

  for (const gchar * p = spec;; p++) {
    if (*p == '\0' || *p == ',') {
      if (raw_end > 0) {
        if (is_pattern) {
          g_string_truncate (raw, raw_end);
          add_item (filter, g_strdup (raw->str), TRUE);
        } else {
          g_string_truncate (name, name_end);
          add_item (filter, g_strdup (name->str), FALSE);
        }
      }
      g_string_truncate (raw, 0);
      g_string_truncate (name, 0);
      raw_end = name_end = 0;
      is_pattern = FALSE;
      if (*p == '\0')
        break;
      continue;
    }
    if (*p == '\\' && p[1] != '\0') {
      /* the pattern matcher reads the escape; the name is the character */
      g_string_append_c (raw, '\\');
      g_string_append_c (raw, p[1]);
      g_string_append_c (name, p[1]);
      p++;
    } else if (is_blank (*p)) {
      /* blanks count only between other characters */
      if (raw_end == 0)
        continue;
      g_string_append_c (raw, *p);
      g_string_append_c (name, *p);
      continue;
    } else {
      if (*p == '*' || *p == '?')
        is_pattern = TRUE;
      /* a backslash that ends the spec escapes nothing: it is itself */
      if (*p == '\\')
        g_string_append_c (raw, '\\');
      g_string_append_c (raw, *p);
      g_string_append_c (name, *p);
    }
    raw_end = raw->len;
    name_end = name->len;
  }
  g_string_free (raw, TRUE);
  g_string_free (name, TRUE);
}

/**
 * uel_tensor_filter_add_name:
 * @filter: a #UelTensorFilter
 * @name: a tensor name, taken as it is (no pattern, no escapes)
 *
 * Adds one literal name.
 */
void
uel_tensor_filter_add_name (UelTensorFilter * filter, const gchar * name)
{
  g_return_if_fail (filter != NULL);
  g_return_if_fail (name != NULL);
  add_item (filter, g_strdup (name), FALSE);
}

/**
 * uel_tensor_filter_set_dtypes:
 * @filter: a #UelTensorFilter
 * @spec: (nullable): comma-separated dtype names, case-insensitive ("U8",
 *   "f16,bf16"); %NULL or empty for every dtype
 * @error: return location for a #GError
 *
 * Takes only tensors of these dtypes, among those the names choose.
 *
 * Returns: %TRUE, or %FALSE with %UEL_ERROR_INVALID_ARGUMENT naming an
 *   unknown dtype (the filter is then unchanged)
 */
gboolean
uel_tensor_filter_set_dtypes (UelTensorFilter * filter, const gchar * spec,
    GError ** error)
{
  gboolean accept[UEL_DTYPE_N_TYPES] = { FALSE, };
  g_auto (GStrv) items = NULL;
  gboolean any = FALSE;

  g_return_val_if_fail (filter != NULL, FALSE);

  items = g_strsplit (spec ? spec : "", ",", -1);
  for (guint i = 0; items[i]; i++) {
    g_autofree gchar *name = g_ascii_strup (g_strstrip (items[i]), -1);
    UelDType d;

    if (!*name)
      continue;
    d = uel_dtype_from_string (name, -1);
    if (d == UEL_DTYPE_INVALID) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
          "unknown dtype \"%s\"", items[i]);
      return FALSE;
    }
    accept[d] = TRUE;
    any = TRUE;
  }
  filter->any_dtype = !any;
  memcpy (filter->dtypes, accept, sizeof accept);
  return TRUE;
}

/**
 * uel_tensor_filter_set_ndim:
 * @filter: a #UelTensorFilter
 * @ndim: the rank to take (0 for scalars), or -1 for any
 *
 * Takes only tensors of this rank, among those the names choose.
 */
void
uel_tensor_filter_set_ndim (UelTensorFilter * filter, gint ndim)
{
  g_return_if_fail (filter != NULL);
  filter->ndim = ndim < 0 ? -1 : ndim;
}

/**
 * uel_tensor_filter_has_names:
 * @filter: a #UelTensorFilter
 *
 * Returns: whether names or patterns restrict the filter
 */
gboolean
uel_tensor_filter_has_names (const UelTensorFilter * filter)
{
  g_return_val_if_fail (filter != NULL, FALSE);
  return filter->items->len > 0;
}

/* A glob match with `*` and `?` (one UTF-8 character) and backslash
 * escapes, linear in practice: on a mismatch it backtracks only to the
 * last star. */
static gboolean
glob_match (const gchar * p, const gchar * s)
{
  const gchar *star_p = NULL, *star_s = NULL;

  while (*s) {
    if (*p == '*') {
      star_p = ++p;
      star_s = s;
      continue;
    }
    if (*p == '?') {
      p++;
      s = g_utf8_next_char (s);
      continue;
    }
    if (*p == '\\' && p[1] != '\0' && p[1] == *s) {
      p += 2;
      s++;
      continue;
    }
    if (*p != '\\' && *p != '\0' && *p == *s) {
      p++;
      s++;
      continue;
    }
    if (!star_p)
      return FALSE;
    /* the star takes one more character */
    star_s = g_utf8_next_char (star_s);
    s = star_s;
    p = star_p;
  }
  while (*p == '*')
    p++;
  return *p == '\0';
}

static gboolean
kind_matches (const UelTensorFilter * f, const UelTensorInfo * info)
{
  if (!f->any_dtype && !f->dtypes[info->dtype])
    return FALSE;
  return f->ndim < 0 || info->n_dims == (guint) f->ndim;
}

/**
 * uel_tensor_filter_matches:
 * @filter: a #UelTensorFilter
 * @info: a tensor
 *
 * Returns: whether @filter takes @info: one of its names or patterns
 *   chooses it (or it has none), and its dtype and rank are accepted
 */
gboolean
uel_tensor_filter_matches (const UelTensorFilter * filter,
    const UelTensorInfo * info)
{
  g_return_val_if_fail (filter != NULL, FALSE);
  g_return_val_if_fail (info != NULL, FALSE);

  if (!kind_matches (filter, info))
    return FALSE;
  if (filter->items->len == 0
      || g_hash_table_contains (filter->literals, info->name))
    return TRUE;
  for (guint p = 0; p < filter->patterns->len; p++) {
    const Item *it = &g_array_index (filter->items, Item,
        g_array_index (filter->patterns, guint, p));

    if (glob_match (it->text, info->name))
      return TRUE;
  }
  return FALSE;
}

/**
 * uel_tensor_filter_select:
 * @filter: a #UelTensorFilter
 * @header: a #UelHeader
 * @total_bytes: (out) (optional): the bytes of the tensors selected
 * @error: return location for a #GError
 *
 * The tensors of @header that @filter takes, in stream order.  Literal
 * names are looked up by hash and each pattern is matched once per
 * tensor, so a long list of names costs its length, not its length times
 * the number of tensors.  Every name and pattern must choose at least one
 * tensor: a misspelt name is an error, not an empty stream (dtypes and
 * rank then narrow what the names chose, without making them an error).
 *
 * Returns: (transfer full) (element-type guint): the indices, or %NULL
 *   with %UEL_ERROR_INVALID_ARGUMENT naming the file and the first item
 *   that chooses nothing
 */
GArray *
uel_tensor_filter_select (const UelTensorFilter * filter,
    const UelHeader * header, guint64 * total_bytes, GError ** error)
{
  guint n = uel_header_get_n_tensors (header);
  g_autofree gboolean *named = NULL, *used = NULL;
  GArray *out;
  guint64 bytes = 0;

  g_return_val_if_fail (filter != NULL, NULL);
  g_return_val_if_fail (header != NULL, NULL);

  if (filter->items->len > 0) {
    GHashTableIter it;
    gpointer key, value;

    named = g_new0 (gboolean, MAX (n, 1));
    used = g_new0 (gboolean, filter->items->len);
    g_hash_table_iter_init (&it, filter->literals);
    while (g_hash_table_iter_next (&it, &key, &value)) {
      guint index;

      if (uel_header_lookup (header, key, &index)) {
        named[index] = TRUE;
        used[GPOINTER_TO_UINT (value) - 1] = TRUE;
      }
    }
    for (guint p = 0; p < filter->patterns->len; p++) {
      guint item = g_array_index (filter->patterns, guint, p);
      const gchar *pattern = g_array_index (filter->items, Item, item).text;

      for (guint i = 0; i < n; i++) {
        if (glob_match (pattern, uel_header_get_tensor (header, i)->name)) {
          named[i] = TRUE;
          used[item] = TRUE;
        }
      }
    }
    for (guint k = 0; k < filter->items->len; k++) {
      const Item *item = &g_array_index (filter->items, Item, k);

      /* a name given twice: its first item counts for both */
      if (!used[k] && !item->is_pattern) {
        guint first = GPOINTER_TO_UINT (g_hash_table_lookup
            (filter->literals, item->text)) - 1;
        used[k] = used[first];
      }
      if (!used[k]) {
        g_autofree gchar *shown = g_strescape (item->text, NULL);

        g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
            "%s: no tensor %s \"%s\"", uel_header_get_location (header),
            item->is_pattern ? "matches" : "is called", shown);
        return NULL;
      }
    }
  }

  out = g_array_new (FALSE, FALSE, sizeof (guint));
  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (header, i);

    if ((named && !named[i]) || !kind_matches (filter, t))
      continue;
    g_array_append_val (out, i);
    bytes += t->n_bytes;
  }
  if (total_bytes)
    *total_bytes = bytes;
  return out;
}

/**
 * uel_tensor_name_escape:
 * @name: a tensor name
 *
 * Writes @name so that uel_tensor_filter_add_names() (and so the `tensors`
 * properties) read it back as exactly that literal name: a backslash
 * before each `,`, `*`, `?` and `\`, and before blanks at either end.
 *
 * Returns: (transfer full): the escaped name
 */
gchar *
uel_tensor_name_escape (const gchar * name)
{
  GString *out;
  gsize len, lead = 0, trail;

  g_return_val_if_fail (name != NULL, NULL);

  len = strlen (name);
  while (lead < len && is_blank (name[lead]))
    lead++;
  trail = len;
  while (trail > lead && is_blank (name[trail - 1]))
    trail--;
  out = g_string_sized_new (len + 8);
  for (gsize i = 0; i < len; i++) {
    gchar c = name[i];

    if (c == ',' || c == '*' || c == '?' || c == '\\'
        || (is_blank (c) && (i < lead || i >= trail)))
      g_string_append_c (out, '\\');
    g_string_append_c (out, c);
  }
  return g_string_free (out, FALSE);
}
