/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * UelWriter as a boxed type, so that bindings (GObject introspection) and
 * GValues can hold writers.  A writer owns a temporary file and cannot be
 * duplicated: copying the boxed value takes another reference instead, and
 * the writer is freed (aborted, when unfinished) with the last one.  The
 * writer has no reference count of its own, so the extra references are
 * counted here, beside it.
 */
#include "config.h"

#include "uel-writer-type.h"

static GMutex extra_refs_lock;
/* UelWriter * -> the number of references beyond the first */
static GHashTable *extra_refs;

static UelWriter *
writer_ref (UelWriter * writer)
{
  guint n;

  g_mutex_lock (&extra_refs_lock);
  if (!extra_refs)
    extra_refs = g_hash_table_new (NULL, NULL);
  n = GPOINTER_TO_UINT (g_hash_table_lookup (extra_refs, writer));
  g_hash_table_insert (extra_refs, writer, GUINT_TO_POINTER (n + 1));
  g_mutex_unlock (&extra_refs_lock);
  return writer;
}

static void
writer_unref (UelWriter * writer)
{
  guint n = 0;

  g_mutex_lock (&extra_refs_lock);
  if (extra_refs)
    n = GPOINTER_TO_UINT (g_hash_table_lookup (extra_refs, writer));
  if (n > 1)
    g_hash_table_insert (extra_refs, writer, GUINT_TO_POINTER (n - 1));
  else if (n == 1)
    g_hash_table_remove (extra_refs, writer);
  g_mutex_unlock (&extra_refs_lock);
  if (n == 0)
    uel_writer_free (writer);
}

G_DEFINE_BOXED_TYPE (UelWriter, uel_writer, writer_ref, writer_unref);
