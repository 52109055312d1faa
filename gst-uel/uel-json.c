/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "uel-error.h"
#include "uel-json-private.h"

void
uel_json_lexer_init (UelJsonLexer * lx, const gchar * data, gsize len,
    guint max_depth, gint error_code)
{
  lx->start = lx->p = data;
  lx->end = data + len;
  lx->depth = 0;
  lx->max_depth = max_depth;
  lx->error_code = error_code;
}

/* serde_json's escapes, and with @ascii those of Python's json.dumps()
 * (ensure_ascii=True): every character outside ' ' to '~' as \uXXXX in
 * lowercase hex, a surrogate pair beyond the BMP */
static void
append_string (GString * out, const gchar * s, gboolean ascii)
{
  g_string_append_c (out, '"');
  for (const gchar * p = s; *p; p = ascii ? g_utf8_next_char (p) : p + 1) {
    gunichar c = ascii ? g_utf8_get_char (p) : (guchar) * p;

    switch (c) {
      case '"':
        g_string_append (out, "\\\"");
        break;
      case '\\':
        g_string_append (out, "\\\\");
        break;
      case '\b':
        g_string_append (out, "\\b");
        break;
      case '\f':
        g_string_append (out, "\\f");
        break;
      case '\n':
        g_string_append (out, "\\n");
        break;
      case '\r':
        g_string_append (out, "\\r");
        break;
      case '\t':
        g_string_append (out, "\\t");
        break;
      default:
        if (c >= 0x10000 && ascii)
          g_string_append_printf (out, "\\u%04x\\u%04x",
              0xd800 + ((c - 0x10000) >> 10), 0xdc00 + ((c - 0x10000) & 0x3ff));
        else if (c < 0x20 || (ascii && c > 0x7e))
          g_string_append_printf (out, "\\u%04x", c);
        else
          g_string_append_c (out, (gchar) c);
        break;
    }
  }
  g_string_append_c (out, '"');
}

void
uel_json_append_string (GString * out, const gchar * s)
{
  append_string (out, s, FALSE);
}

void
uel_json_append_string_ascii (GString * out, const gchar * s)
{
  append_string (out, s, TRUE);
}

gint
uel_compare_string_ptrs (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

void
uel_json_append_sorted_object (GString * out, GHashTable * map)
{
  guint n;
  g_autofree const gchar **keys = (const gchar **)
      g_hash_table_get_keys_as_array (map, &n);

  qsort (keys, n, sizeof (gchar *), uel_compare_string_ptrs);
  g_string_append_c (out, '{');
  for (guint i = 0; i < n; i++) {
    if (i)
      g_string_append_c (out, ',');
    uel_json_append_string (out, keys[i]);
    g_string_append_c (out, ':');
    uel_json_append_string (out, g_hash_table_lookup (map, keys[i]));
  }
  g_string_append_c (out, '}');
}

static gboolean
syntax_error (UelJsonLexer * lx, GError ** error, const gchar * what)
{
  gsize at = (gsize) (lx->p - lx->start);

  if (lx->p >= lx->end)
    g_set_error (error, UEL_ERROR, lx->error_code,
        "%s at byte %" G_GSIZE_FORMAT " (end of input)", what, at);
  else if ((guchar) * lx->p >= 0x20 && (guchar) * lx->p < 0x7f)
    g_set_error (error, UEL_ERROR, lx->error_code,
        "%s at byte %" G_GSIZE_FORMAT " ('%c')", what, at, *lx->p);
  else
    g_set_error (error, UEL_ERROR, lx->error_code,
        "%s at byte %" G_GSIZE_FORMAT " (byte 0x%02x)", what, at,
        (guchar) * lx->p);
  return FALSE;
}

void
uel_json_skip_ws (UelJsonLexer * lx)
{
  while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'
          || *lx->p == '\n' || *lx->p == '\r'))
    lx->p++;
}

gchar
uel_json_peek (UelJsonLexer * lx)
{
  uel_json_skip_ws (lx);
  return lx->p < lx->end ? *lx->p : 0;
}

gboolean
uel_json_expect (UelJsonLexer * lx, gchar c, GError ** error)
{
  gchar msg[32];

  if (uel_json_peek (lx) == c && lx->p < lx->end) {
    lx->p++;
    return TRUE;
  }
  g_snprintf (msg, sizeof msg, "expected '%c'", c);
  return syntax_error (lx, error, msg);
}

gboolean
uel_json_items_begin (UelJsonLexer * lx, gchar close)
{
  lx->p++;
  if (uel_json_peek (lx) == close) {
    lx->p++;
    return FALSE;
  }
  return TRUE;
}

gboolean
uel_json_items_next (UelJsonLexer * lx, gchar close, gboolean * more,
    GError ** error)
{
  if (uel_json_peek (lx) == ',') {
    lx->p++;
    *more = TRUE;
    return TRUE;
  }
  *more = FALSE;
  return uel_json_expect (lx, close, error);
}

gboolean
uel_json_at_end (UelJsonLexer * lx, GError ** error)
{
  uel_json_skip_ws (lx);
  if (lx->p == lx->end)
    return TRUE;
  return syntax_error (lx, error, "trailing characters after the JSON value");
}

const gchar *
uel_json_describe (UelJsonLexer * lx)
{
  switch (uel_json_peek (lx)) {
    case '{':
      return "an object";
    case '[':
      return "an array";
    case '"':
      return "a string";
    case 't':
    case 'f':
      return "a boolean";
    case 'n':
      return "null";
    case 0:
      return "nothing";
    default:
      return "a number";
  }
}

static gint
hex_value (gchar c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static gboolean
read_hex4 (UelJsonLexer * lx, gunichar * out, GError ** error)
{
  gunichar v = 0;

  if (lx->end - lx->p < 4)
    return syntax_error (lx, error, "truncated \\u escape");
  for (gint i = 0; i < 4; i++) {
    gint h = hex_value (lx->p[i]);
    if (h < 0)
      return syntax_error (lx, error, "invalid \\u escape");
    v = (v << 4) | (gunichar) h;
  }
  lx->p += 4;
  *out = v;
  return TRUE;
}

gchar *
uel_json_read_string (UelJsonLexer * lx, gsize * len, GError ** error)
{
  const gchar *run;
  GString *s;

  if (uel_json_peek (lx) != '"') {
    syntax_error (lx, error, "expected a string");
    return NULL;
  }
  lx->p++;

  /* fast path: no escapes */
  run = lx->p;
  while (lx->p < lx->end && *lx->p != '"' && *lx->p != '\\'
      && (guchar) * lx->p >= 0x20)
    lx->p++;
  if (lx->p < lx->end && *lx->p == '"') {
    gsize n = (gsize) (lx->p - run);
    lx->p++;
    if (len)
      *len = n;
    return g_strndup (run, n);
  }

  s = g_string_new_len (run, lx->p - run);
  while (lx->p < lx->end) {
    guchar c = (guchar) * lx->p;

    if (c == '"') {
      lx->p++;
      if (len)
        *len = s->len;
      return g_string_free (s, FALSE);
    }
    if (c < 0x20) {
      syntax_error (lx, error, "control character in string");
      goto fail;
    }
    if (c != '\\') {
      g_string_append_c (s, (gchar) c);
      lx->p++;
      continue;
    }
    lx->p++;
    if (lx->p >= lx->end)
      break;
    c = (guchar) * lx->p++;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        g_string_append_c (s, (gchar) c);
        break;
      case 'b':
        g_string_append_c (s, '\b');
        break;
      case 'f':
        g_string_append_c (s, '\f');
        break;
      case 'n':
        g_string_append_c (s, '\n');
        break;
      case 'r':
        g_string_append_c (s, '\r');
        break;
      case 't':
        g_string_append_c (s, '\t');
        break;
      case 'u':{
        gunichar u, lo;

        if (!read_hex4 (lx, &u, error))
          goto fail;
        if (u >= 0xdc00 && u <= 0xdfff) {
          syntax_error (lx, error, "lone trailing surrogate in \\u escape");
          goto fail;
        }
        if (u >= 0xd800 && u <= 0xdbff) {
          if (lx->end - lx->p < 2 || lx->p[0] != '\\' || lx->p[1] != 'u') {
            syntax_error (lx, error, "lone leading surrogate in \\u escape");
            goto fail;
          }
          lx->p += 2;
          if (!read_hex4 (lx, &lo, error))
            goto fail;
          if (lo < 0xdc00 || lo > 0xdfff) {
            syntax_error (lx, error, "invalid surrogate pair in \\u escape");
            goto fail;
          }
          u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        }
        g_string_append_unichar (s, u);
        break;
      }
      default:
        lx->p--;
        syntax_error (lx, error, "invalid escape");
        goto fail;
    }
  }
  syntax_error (lx, error, "unterminated string");
fail:
  g_string_free (s, TRUE);
  return NULL;
}

gboolean
uel_json_read_number (UelJsonLexer * lx, guint64 * value, gboolean * is_u64,
    GError ** error)
{
  gboolean neg = FALSE, integer = TRUE, overflow = FALSE;
  guint64 v = 0;

  uel_json_skip_ws (lx);
  if (lx->p < lx->end && *lx->p == '-') {
    neg = TRUE;
    lx->p++;
  }
  if (lx->p >= lx->end || !g_ascii_isdigit (*lx->p))
    return syntax_error (lx, error, "expected a value");
  if (*lx->p == '0') {
    lx->p++;
    if (lx->p < lx->end && g_ascii_isdigit (*lx->p))
      return syntax_error (lx, error, "leading zero in number");
  } else {
    while (lx->p < lx->end && g_ascii_isdigit (*lx->p)) {
      guint d = (guint) (*lx->p - '0');
      if (v > (G_MAXUINT64 - d) / 10)
        overflow = TRUE;
      else
        v = v * 10 + d;
      lx->p++;
    }
  }
  if (lx->p < lx->end && *lx->p == '.') {
    integer = FALSE;
    lx->p++;
    if (lx->p >= lx->end || !g_ascii_isdigit (*lx->p))
      return syntax_error (lx, error, "expected a digit after '.'");
    while (lx->p < lx->end && g_ascii_isdigit (*lx->p))
      lx->p++;
  }
  if (lx->p < lx->end && (*lx->p == 'e' || *lx->p == 'E')) {
    integer = FALSE;
    lx->p++;
    if (lx->p < lx->end && (*lx->p == '+' || *lx->p == '-'))
      lx->p++;
    if (lx->p >= lx->end || !g_ascii_isdigit (*lx->p))
      return syntax_error (lx, error, "expected a digit in exponent");
    while (lx->p < lx->end && g_ascii_isdigit (*lx->p))
      lx->p++;
  }
  *is_u64 = integer && !overflow && (!neg || v == 0);
  /* "-0" is an integer but not an unsigned one to serde: it rejects it */
  if (neg)
    *is_u64 = FALSE;
  *value = v;
  return TRUE;
}

static gboolean
match_literal (UelJsonLexer * lx, const gchar * lit, GError ** error)
{
  gsize n = strlen (lit);

  if ((gsize) (lx->end - lx->p) < n || memcmp (lx->p, lit, n) != 0)
    return syntax_error (lx, error, "expected a value");
  lx->p += n;
  return TRUE;
}

static gboolean
enter (UelJsonLexer * lx, GError ** error)
{
  if (++lx->depth > lx->max_depth) {
    g_set_error (error, UEL_ERROR, lx->error_code,
        "nesting deeper than %u levels at byte %" G_GSIZE_FORMAT,
        lx->max_depth, (gsize) (lx->p - lx->start));
    return FALSE;
  }
  return TRUE;
}

/* One function for skipping and for building, so that both accept exactly
 * the same language.  @out is NULL when skipping. */
static gboolean
read_value (UelJsonLexer * lx, gboolean dups, JsonNode ** out,
    GError ** error)
{
  gchar c = uel_json_peek (lx);

  switch (c) {
    case '{':{
      g_autoptr (JsonObject) obj = out ? json_object_new () : NULL;
      g_autoptr (GHashTable) seen = NULL;
      gboolean more;

      if (!enter (lx, error))
        return FALSE;
      more = uel_json_items_begin (lx, '}');
      if (dups && !out)
        seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      while (more) {
        JsonNode *member = NULL;
        const gchar *key_at = lx->p;
        gsize klen;
        g_autofree gchar *key = uel_json_read_string (lx, &klen, error);

        if (!key || !uel_json_expect (lx, ':', error))
          return FALSE;
        if (out && memchr (key, 0, klen)) {
          /* json-glib member names are C strings: the name would be cut
           * at the NUL and could then match another one */
          lx->p = key_at;
          uel_json_skip_ws (lx);
          return syntax_error (lx, error,
              "member name with a NUL character (\\u0000)");
        }
        if (dups && ((obj && json_object_has_member (obj, key))
                || (seen && g_hash_table_contains (seen, key)))) {
          lx->p = key_at;
          uel_json_skip_ws (lx);
          return syntax_error (lx, error, "duplicate key");
        }
        if (!read_value (lx, dups, out ? &member : NULL, error))
          return FALSE;
        if (obj)
          json_object_set_member (obj, key, member);
        else if (seen)
          g_hash_table_add (seen, g_steal_pointer (&key));
        if (!uel_json_items_next (lx, '}', &more, error))
          return FALSE;
      }
      lx->depth--;
      if (out)
        *out = json_node_init_object (json_node_alloc (), obj);
      return TRUE;
    }
    case '[':{
      g_autoptr (JsonArray) arr = out ? json_array_new () : NULL;
      gboolean more;

      if (!enter (lx, error))
        return FALSE;
      more = uel_json_items_begin (lx, ']');
      while (more) {
        JsonNode *elem = NULL;

        if (!read_value (lx, dups, out ? &elem : NULL, error))
          return FALSE;
        if (arr)
          json_array_add_element (arr, elem);
        if (!uel_json_items_next (lx, ']', &more, error))
          return FALSE;
      }
      lx->depth--;
      if (out)
        *out = json_node_init_array (json_node_alloc (), arr);
      return TRUE;
    }
    case '"':{
      g_autofree gchar *s = NULL;
      gsize n;

      s = uel_json_read_string (lx, &n, error);
      if (!s)
        return FALSE;
      if (out) {
        if (memchr (s, 0, n)) {
          /* json-glib strings are C strings */
          g_set_error (error, UEL_ERROR, lx->error_code,
              "string with a NUL character (\\u0000) before byte %"
              G_GSIZE_FORMAT, (gsize) (lx->p - lx->start));
          return FALSE;
        }
        *out = json_node_init_string (json_node_alloc (), s);
      }
      return TRUE;
    }
    case 't':
      if (!match_literal (lx, "true", error))
        return FALSE;
      if (out)
        *out = json_node_init_boolean (json_node_alloc (), TRUE);
      return TRUE;
    case 'f':
      if (!match_literal (lx, "false", error))
        return FALSE;
      if (out)
        *out = json_node_init_boolean (json_node_alloc (), FALSE);
      return TRUE;
    case 'n':
      if (!match_literal (lx, "null", error))
        return FALSE;
      if (out)
        *out = json_node_init_null (json_node_alloc ());
      return TRUE;
    default:{
      const gchar *num_start;
      guint64 v;
      gboolean is_u64;

      uel_json_skip_ws (lx);
      num_start = lx->p;
      if (!uel_json_read_number (lx, &v, &is_u64, error))
        return FALSE;
      if (!is_u64 || out) {
        g_autofree gchar *txt = g_strndup (num_start, lx->p - num_start);
        gdouble d = 0;
        gint64 i;

        /* integers that fit gint64 stay exact; the rest become doubles,
         * as json-glib itself stores them.  A number beyond the range of a
         * double is refused, as serde_json does: it would become infinity,
         * which JSON cannot write back (found by fuzz/fuzz-dict.c) */
        if (!is_u64) {
          d = g_ascii_strtod (txt, NULL);
          if (!isfinite (d)) {
            lx->p = num_start;
            return syntax_error (lx, error,
                "number out of the range of a double");
          }
        }
        if (!out)
          return TRUE;
        if (is_u64 && v <= G_MAXINT64)
          *out = json_node_init_int (json_node_alloc (), (gint64) v);
        else if (!strpbrk (txt, ".eE")
            && g_ascii_string_to_signed (txt, 10, G_MININT64, G_MAXINT64, &i,
                NULL))
          *out = json_node_init_int (json_node_alloc (), i);
        else
          *out = json_node_init_double (json_node_alloc (),
              is_u64 ? (gdouble) v : d);
      }
      return TRUE;
    }
  }
}

gboolean
uel_json_skip_value (UelJsonLexer * lx, GError ** error)
{
  return read_value (lx, FALSE, NULL, error);
}

JsonNode *
uel_json_read_value (UelJsonLexer * lx, gboolean reject_duplicates,
    GError ** error)
{
  JsonNode *node = NULL;

  if (!read_value (lx, reject_duplicates, &node, error)) {
    g_clear_pointer (&node, json_node_unref);
    return NULL;
  }
  return node;
}

JsonNode *
uel_json_parse (const gchar * data, gsize len, gboolean reject_duplicates,
    gint error_code, GError ** error)
{
  UelJsonLexer lx;
  JsonNode *node;

  uel_json_lexer_init (&lx, data, len, UEL_JSON_MAX_DEPTH, error_code);
  node = uel_json_read_value (&lx, reject_duplicates, error);
  if (node && !uel_json_at_end (&lx, error))
    g_clear_pointer (&node, json_node_unref);
  return node;
}

gboolean
uel_utf8_validate (const gchar * data, gsize len, gsize * bad)
{
  const gchar *p = data, *stop = data + len, *end;

  while (p < stop) {
    if (g_utf8_validate_len (p, (gsize) (stop - p), &end))
      return TRUE;
    if (end < stop && *end == '\0') {
      p = end + 1;
      continue;
    }
    if (bad)
      *bad = (gsize) (end - data);
    return FALSE;
  }
  return TRUE;
}
