/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * A strict RFC 8259 reader.  json-glib 1.6 accepts single quotes, comments,
 * leading zeros, silently wraps integers above 2^63 and keeps the last of
 * duplicate keys, none of which the safetensors reference (serde_json)
 * accepts, and it recurses without a depth limit.  This reader is linear,
 * bounded in depth, reads unsigned 64-bit integers exactly, and can build
 * json-glib nodes where a tree is wanted (dictionaries, index files).
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* serde_json's own recursion limit: what the reference accepts, we accept */
#define UEL_JSON_MAX_DEPTH 128

typedef struct
{
  const gchar *start;
  const gchar *p;
  const gchar *end;
  guint depth;
  guint max_depth;
  gint error_code;              /* UelError code used for syntax errors */
} UelJsonLexer;

G_GNUC_INTERNAL void uel_json_lexer_init (UelJsonLexer * lx, const gchar * data,
    gsize len, guint max_depth, gint error_code);
G_GNUC_INTERNAL void uel_json_skip_ws (UelJsonLexer * lx);
/* after whitespace: the next byte, or 0 at the end */
G_GNUC_INTERNAL gchar uel_json_peek (UelJsonLexer * lx);
G_GNUC_INTERNAL gboolean uel_json_expect (UelJsonLexer * lx, gchar c,
    GError ** error);
/* The items of an object or an array, the one loop every reader of them
 * runs: at its opening '{' or '[', uel_json_items_begin() steps over it
 * and says whether an item follows (an empty one's closing @close is read
 * too); after each item, uel_json_items_next() reads the ',' before the
 * next one (*more TRUE) or the closing @close (*more FALSE), and returns
 * FALSE on anything else. */
G_GNUC_INTERNAL gboolean uel_json_items_begin (UelJsonLexer * lx,
    gchar close);
G_GNUC_INTERNAL gboolean uel_json_items_next (UelJsonLexer * lx, gchar close,
    gboolean * more, GError ** error);
G_GNUC_INTERNAL gboolean uel_json_at_end (UelJsonLexer * lx, GError ** error);
G_GNUC_INTERNAL gchar *uel_json_read_string (UelJsonLexer * lx, gsize * len,
    GError ** error);
/* Reads one number.  Returns FALSE on a syntax error.  *is_u64 says whether
 * it was an integer in [0, 2^64) (no sign, fraction or exponent). */
G_GNUC_INTERNAL gboolean uel_json_read_number (UelJsonLexer * lx,
    guint64 * value, gboolean * is_u64, GError ** error);
G_GNUC_INTERNAL gboolean uel_json_skip_value (UelJsonLexer * lx,
    GError ** error);
/* Builds a json-glib tree.  Duplicate keys are an error when
 * @reject_duplicates. */
G_GNUC_INTERNAL JsonNode *uel_json_read_value (UelJsonLexer * lx,
    gboolean reject_duplicates, GError ** error);
G_GNUC_INTERNAL const gchar *uel_json_describe (UelJsonLexer * lx);

/* Appends @s as a JSON string literal: quotes, backslashes and control
 * characters escaped, the rest as it is (UTF-8). */
G_GNUC_INTERNAL void uel_json_append_string (GString * out, const gchar * s);
/* a string as Python's json.dumps() writes it (ensure_ascii=True) */
G_GNUC_INTERNAL void uel_json_append_string_ascii (GString * out,
    const gchar * s);
/* Appends @map (string to string) as one compact JSON object, its keys
 * sorted bytewise, so that the same map gives the same text. */
G_GNUC_INTERNAL void uel_json_append_sorted_object (GString * out,
    GHashTable * map);
/* Orders pointers to strings bytewise (qsort, g_ptr_array_sort). */
G_GNUC_INTERNAL gint uel_compare_string_ptrs (gconstpointer a,
    gconstpointer b);

/* Whole document: whitespace, one value, whitespace, end. */
G_GNUC_INTERNAL JsonNode *uel_json_parse (const gchar * data, gsize len,
    gboolean reject_duplicates, gint error_code, GError ** error);

/* UTF-8 as Rust's str::from_utf8 defines it: NUL bytes are valid UTF-8
 * (they fail later, as JSON).  Returns the offset of the first bad byte in
 * *bad. */
G_GNUC_INTERNAL gboolean uel_utf8_validate (const gchar * data, gsize len,
    gsize * bad);

G_END_DECLS
