/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * Remote files: `http://`, `https://` and `s3://` locations read with
 * ranged GET requests (libcurl; SigV4 for S3), for the header parser and
 * the reading engine.
 */
#pragma once

#include "uel-header.h"

G_BEGIN_DECLS

struct iovec;

/* One object on a server: its URL, and the validators (ETag,
 * Last-Modified) and size pinned from the first response.  Thread-safe:
 * any number of threads read from it at once, each request on an easy
 * handle (a connection) of its own. */
typedef struct _UelRemote UelRemote;

/* Whether @location names a remote file (http://, https://, s3://), which
 * uel_header_open() reads with ranged requests. */
G_GNUC_INTERNAL gboolean uel_location_is_url (const gchar * location);

/* @url for messages and logs: no user name or password, no query (signed
 * parameters), no fragment. */
G_GNUC_INTERNAL gchar *uel_url_redact (const gchar * url);

G_GNUC_INTERNAL UelRemote *uel_remote_ref (UelRemote * remote);
G_GNUC_INTERNAL void uel_remote_unref (UelRemote * remote);
/* the redacted URL */
G_GNUC_INTERNAL const gchar *uel_remote_get_name (UelRemote * remote);
/* the object's size, pinned by the first response */
G_GNUC_INTERNAL guint64 uel_remote_get_size (UelRemote * remote);
/* body bytes received so far, every request counted */
G_GNUC_INTERNAL guint64 uel_remote_get_bytes_fetched (UelRemote * remote);

/* Reads exactly @len bytes at @offset into the buffers of @iov (one after
 * the other), retrying and resuming as the faults allow.  @done says how
 * many arrived before a failure.  %UEL_ERROR_FILE_CHANGED when the object
 * is no longer the one whose header was read.  While *@cancel (atomic; may
 * be NULL) is non-zero, a read in progress, waiting to retry or not yet
 * started ends at once with %UEL_ERROR_IO. */
G_GNUC_INTERNAL gboolean uel_remote_readv (UelRemote * remote,
    const struct iovec * iov, gint iovcnt, gsize len, guint64 offset,
    const gint * cancel, gsize * done, GError ** error);
G_GNUC_INTERNAL gboolean uel_remote_read (UelRemote * remote, gpointer dst,
    gsize len, guint64 offset, const gint * cancel, GError ** error);

/* The header of the `.safetensors` file at @url: one ranged request for
 * its first bytes, a second when the header is longer. */
G_GNUC_INTERNAL UelHeader *uel_remote_header_open (const gchar * url,
    GError ** error);

/* The whole of a small object (an index), at most @max bytes: NULL with
 * @error set when it is larger.  @name gets the redacted URL. */
G_GNUC_INTERNAL gchar *uel_remote_fetch_small (const gchar * url, gsize max,
    gsize * len, gchar ** name, GError ** error);

/* The URL of @file in the same folder as @url's object (shards beside
 * their index). */
G_GNUC_INTERNAL gchar *uel_url_sibling (const gchar * url,
    const gchar * file, GError ** error);

/* The remote object behind a header's file, or NULL for a local file
 * (uel-header.c). */
G_GNUC_INTERNAL UelRemote *uel_header_get_file_remote (const UelHeader *
    header, guint file_index);

G_END_DECLS
