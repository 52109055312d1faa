/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * What the parsers of a single file (uel-header.c) and of a sharded
 * checkpoint's index (uel-index.c) share: the header they fill in, and
 * the checks on opening a file.
 */
#pragma once

#include <sys/stat.h>

#include "uel-header.h"

G_BEGIN_DECLS

typedef struct _UelRemote UelRemote;

typedef struct
{
  gchar *path;                  /* a URL without credentials for a remote
                                 * file */
  UelRemote *remote;            /* NULL: a local file */
  guint64 size;
  guint64 data_offset;
  /* what the file was when it was validated: a later open, or a read,
   * compares these to tell that it changed (uel_header_check_file()) */
  guint64 dev;
  guint64 ino;
  gint64 mtime_sec;
  gint64 mtime_nsec;
} UelFile;

struct _UelHeader
{
  gint ref_count;
  gchar *location;
  gboolean sharded;
  GArray *files;                /* UelFile */
  GArray *tensors;              /* UelTensorInfo, stream order */
  GPtrArray *names;             /* owns the names of a single file */
  guint64 *shapes;              /* owns the dims of a single file */
  GPtrArray *shards;            /* UelHeader *: own a sharded table's data */
  GHashTable *by_name;          /* name -> index + 1 */
  GHashTable *metadata;         /* gchar * -> gchar * */
  guint64 total_bytes;
  guint64 index_bytes;          /* a remote index's own bytes */
};

/* A header of no tensor, no file and no metadata, read from @location. */
G_GNUC_INTERNAL UelHeader *uel_header_new_empty (const gchar * location);

/* One `.safetensors` file's header, whatever its name (where
 * uel_header_open() takes a name ending in .json for an index). */
G_GNUC_INTERNAL UelHeader *uel_header_open_single (const gchar * path,
    GError ** error);

/* A sharded checkpoint: the index at @path and every shard it names
 * (uel-index.c). */
G_GNUC_INTERNAL UelHeader *uel_index_open (const gchar * path,
    GError ** error);

/* Rules 1 to 3 on a file of @size bytes whose first @head_len bytes are
 * @head (at least 8 when @size is): the header length in @n. */
G_GNUC_INTERNAL gboolean uel_header_check_length (const gchar * path,
    const guint8 * head, gsize head_len, guint64 size, guint64 * n,
    GError ** error);

/* The header of the remote file @remote, whose header JSON of @n bytes is
 * @json (uel-http.c). */
G_GNUC_INTERNAL UelHeader *uel_header_new_remote (UelRemote * remote,
    const gchar * json, guint64 n, GError ** error);

/* @len bytes of @s, at most 64 of them, escaped and in quotes: an
 * untrusted string for a message. */
G_GNUC_INTERNAL gchar *uel_quote (const gchar * s, gsize len);

/* open(2) for reading, @flags added; a FIFO does not block it. */
G_GNUC_INTERNAL gint uel_open_readonly (const gchar * path, gint flags,
    GError ** error);

/* fstat(2) into @st: a directory or a special file is an error. */
G_GNUC_INTERNAL gboolean uel_check_regular (gint fd, const gchar * path,
    struct stat *st, GError ** error);

G_END_DECLS
