/* gst-uel: what the tool's commands share: output, escaping, sizes,
 * option parsing
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "gst-uel-common.h"

#include <errno.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>
#include <gst-uel/uel.h>

void
out (const gchar * format, ...)
{
  va_list args;

  va_start (args, format);
  vfprintf (stdout, format, args);
  va_end (args);
}

void
errout (const gchar * format, ...)
{
  va_list args;

  va_start (args, format);
  vfprintf (stderr, format, args);
  va_end (args);
  fflush (stderr);
}

/* Names, metadata and dictionaries come from the file: written as they
 * are, an escape sequence or a newline in them would drive the terminal
 * or fake lines of output.  This walk escapes what is not UTF-8 and the
 * control characters (C0, DEL and C1), as text or as JSON, and keeps the
 * rest of the UTF-8. */
static gchar *
escape_controls (const gchar * s, gboolean json)
{
  GString *out = g_string_sized_new (strlen (s));
  const gchar *p = s;

  while (*p) {
    gunichar c = g_utf8_get_char_validated (p, -1);

    if (c == (gunichar) - 1 || c == (gunichar) - 2) {
      /* not UTF-8 (a path can be anything): the byte, escaped; JSON
       * cannot hold a byte, U+FFFD stands for it */
      if (json)
        g_string_append (out, "\\ufffd");
      else
        g_string_append_printf (out, "\\x%02x", (guchar) * p);
      p++;
      continue;
    }
    if (c < 0x20 || (c >= 0x7f && c < 0xa0)) {
      if (json)
        g_string_append_printf (out, "\\u%04x", c);
      else
        g_string_append_printf (out, "\\x%02x", c);
    } else if (c == '\\' && !json)
      g_string_append (out, "\\\\");
    else
      g_string_append_unichar (out, c);
    p = g_utf8_next_char (p);
  }
  return g_string_free (out, FALSE);
}

/* Text for the terminal: control characters become \xNN and a backslash
 * \\, so that what is shown is unambiguous. */
gchar *
printable (const gchar * s)
{
  return escape_controls (s, FALSE);
}

/* JSON text from the file, kept valid JSON and made safe on a terminal:
 * the control characters that JSON allows raw in strings (DEL, C1) become
 * \u escapes; backslashes are the JSON's own and stay. */
gchar *
printable_json (const gchar * json)
{
  return escape_controls (json, TRUE);
}

/* a size in IEC units with a plain space (g_format_size() puts a
 * no-break space there) */
gchar *
format_size (guint64 bytes)
{
  static const gchar *units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  gdouble v = (gdouble) bytes;
  guint u = 0;

  if (bytes < 1024)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " bytes", bytes);
  v /= 1024;
  while (v >= 1024 && u + 1 < G_N_ELEMENTS (units)) {
    v /= 1024;
    u++;
  }
  return g_strdup_printf ("%.1f %s", v, units[u]);
}

/* Parses a command's options, GStreamer's own among them (--gst-debug…),
 * and initializes GStreamer.  FALSE: a usage error was printed. */
gboolean
parse_options (const CommandHelp * help, const GOptionEntry * entries,
    gint * argc, gchar *** argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new (help->parameter);
  GError *err = NULL;

  g_option_context_set_summary (ctx, help->summary);
  if (help->description)
    g_option_context_set_description (ctx, help->description);
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, argc, argv, &err)) {
    errout ("gst-uel %s: %s\n", help->name, err->message);
    g_error_free (err);
    return FALSE;
  }
  if (!gst_is_initialized ())
    gst_init (NULL, NULL);
  uel_init ();
  return TRUE;
}
/* Lists, JSON or text, are built an item at a time: @sep goes before
 * every item but the first, and the first is the one that takes @s past
 * @start (the length where the list began). */
void
append_separator (GString * s, gsize start, const gchar * sep)
{
  if (s->len > start)
    g_string_append (s, sep);
}

/* a string as a JSON string literal: names and metadata are UTF-8 (the
 * header was validated); paths may not be, and are shown for display.
 * Every control character is escaped, C1 (U+0080 to U+009F) too, so that
 * the text is safe on a terminal. */
void
json_string (GString * out, const gchar * s)
{
  g_string_append_c (out, '"');
  for (const guchar * p = (const guchar *) s; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf (out, "\\%c", *p);
    else if (*p == '\n')
      g_string_append (out, "\\n");
    else if (*p == '\t')
      g_string_append (out, "\\t");
    else if (*p < 0x20 || *p == 0x7f)
      g_string_append_printf (out, "\\u%04x", *p);
    else if (*p == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)
      g_string_append_printf (out, "\\u%04x", *++p);
    else
      g_string_append_c (out, (gchar) * p);
  }
  g_string_append_c (out, '"');
}

static gint
strcmp_ptr (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

/* the metadata's keys, sorted, so that the output is stable */
const gchar **
sorted_keys (GHashTable * table)
{
  guint n;
  const gchar **keys = (const gchar **) g_hash_table_get_keys_as_array (table,
      &n);

  qsort (keys, n, sizeof (gchar *), strcmp_ptr);
  return keys;
}

/* The table's entries as JSON members, "key": "value", in key order and
 * with @sep between them; the caller writes the braces and the layout
 * around them (inspect --json one a line, launch -m all on one). */
void
json_append_members (GString * out, GHashTable * table, const gchar * sep)
{
  g_autofree const gchar **keys = sorted_keys (table);
  gsize start = out->len;

  for (guint k = 0; keys[k]; k++) {
    append_separator (out, start, sep);
    json_string (out, keys[k]);
    g_string_append (out, ": ");
    json_string (out, g_hash_table_lookup (table, keys[k]));
  }
}

/* "4G", "512M", "100000": bytes, the suffixes powers of 1024; FALSE for
 * anything else, or a size past 2^64 */
gboolean
parse_size (const gchar * text, guint64 * bytes)
{
  guint64 n;
  gchar *end;
  guint shift = 0;

  if (!g_ascii_isdigit (*text))
    return FALSE;
  errno = 0;
  n = g_ascii_strtoull (text, &end, 10);
  if (errno)
    return FALSE;
  switch (g_ascii_toupper (*end)) {
    case 'G':
      shift = 30;
      break;
    case 'M':
      shift = 20;
      break;
    case 'K':
      shift = 10;
      break;
    case '\0':
      break;
    default:
      return FALSE;
  }
  if ((shift && end[1]) || n > G_MAXUINT64 >> shift)
    return FALSE;
  *bytes = n << shift;
  return TRUE;
}
