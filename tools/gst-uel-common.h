/* gst-uel: what the tool's commands share
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define EXIT_USAGE 2
#define EXIT_INTERRUPTED 130

/* g_print() would convert to the locale's charset, and a C locale turns
 * every non-ASCII character of a tensor name into an escape: names, paths
 * and messages are written as their bytes. */
void out (const gchar * format, ...) G_GNUC_PRINTF (1, 2);
void errout (const gchar * format, ...) G_GNUC_PRINTF (1, 2);

gchar *printable (const gchar * s);
gchar *printable_json (const gchar * json);
gchar *format_size (guint64 bytes);
gboolean parse_size (const gchar * text, guint64 * bytes);

/* what a command's --help says besides its options */
typedef struct
{
  const gchar *name;
  const gchar *parameter;       /* after the options: "FILE" */
  const gchar *summary;
  const gchar *description;     /* after the options; may be NULL */
} CommandHelp;

gboolean parse_options (const CommandHelp * help,
    const GOptionEntry * entries, gint * argc, gchar *** argv);

void append_separator (GString * s, gsize start, const gchar * sep);
void json_string (GString * out, const gchar * s);
void json_append_members (GString * out, GHashTable * table,
    const gchar * sep);
const gchar **sorted_keys (GHashTable * table);

/* the commands, one file each */
gint cmd_inspect (gint argc, gchar ** argv);
gint cmd_launch (gint argc, gchar ** argv);
gint cmd_make_model (gint argc, gchar ** argv);
gint cmd_convert (gint argc, gchar ** argv);

G_END_DECLS
