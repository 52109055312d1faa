/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "uel-error.h"
#include "uel-io.h"
#include "uel-io-private.h"

gboolean
uel_preadv_partial (gint fd, struct iovec * iov, gint iovcnt, gsize len,
    guint64 offset, const gchar * path, gsize * done, GError ** error)
{
  gint first = 0;

  *done = 0;
  while (*done < len) {
    /* one buffer left: pread(2), without preadv's copy of the vector */
    ssize_t r = iovcnt - first == 1
        ? pread (fd, iov[first].iov_base, iov[first].iov_len,
        (off_t) (offset + *done))
        : preadv (fd, iov + first, MIN (iovcnt - first, IOV_MAX),
        (off_t) (offset + *done));
    gsize left;

    if (r < 0) {
      gint err = errno;
      if (err == EINTR)
        continue;
      g_set_error (error, UEL_ERROR, UEL_ERROR_IO,
          "%s: read of %" G_GSIZE_FORMAT " bytes at offset %" G_GUINT64_FORMAT
          " failed: %s", path, len, offset, g_strerror (err));
      return FALSE;
    }
    if (r == 0) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_FILE_CHANGED,
          "%s: the file ends at byte %" G_GUINT64_FORMAT " but %"
          G_GSIZE_FORMAT " bytes were expected at offset %" G_GUINT64_FORMAT
          ": it shrank after it was validated", path, offset + *done, len,
          offset);
      return FALSE;
    }
    *done += (gsize) r;
    /* a short read: go on from where it stopped */
    for (left = (gsize) r; first < iovcnt && left >= iov[first].iov_len;
        first++)
      left -= iov[first].iov_len;
    if (left > 0) {
      iov[first].iov_base = (guint8 *) iov[first].iov_base + left;
      iov[first].iov_len -= left;
    }
  }
  return TRUE;
}

gboolean
uel_pread_partial (gint fd, gpointer buf, gsize len, guint64 offset,
    const gchar * path, gsize * done, GError ** error)
{
  struct iovec iov = { buf, len };

  /* one buffer of the same loop (the kernel's cap of 0x7ffff000 bytes a
   * call is a short read like any other) */
  return uel_preadv_partial (fd, &iov, 1, len, offset, path, done, error);
}

/**
 * uel_pread_full: (skip)
 * @fd: a file descriptor open for reading
 * @buf: (out caller-allocates) (array length=len): where to put the bytes
 * @len: how many bytes to read
 * @offset: where in the file
 * @path: the file's name, for messages
 * @error: return location for a #GError
 *
 * Not introspectable: bindings cannot hand a caller-allocated C array in,
 * and have their own pread (Python's os.pread()).
 *
 * Reads exactly @len bytes at @offset, retrying short reads and EINTR.
 * The end of the file before @len bytes is %UEL_ERROR_FILE_CHANGED (the file
 * shrank after it was validated), never a short result.
 *
 * Returns: %TRUE on success
 */
gboolean
uel_pread_full (gint fd, gpointer buf, gsize len, guint64 offset,
    const gchar * path, GError ** error)
{
  gsize done;

  return uel_pread_partial (fd, buf, len, offset, path, &done, error);
}
