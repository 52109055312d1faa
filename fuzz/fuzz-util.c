/* gst-uel: helpers for the fuzz targets
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "fuzz.h"

void
uel_fuzz_write_all (int fd, const uint8_t * data, size_t size)
{
  while (size > 0) {
    ssize_t r = write (fd, data, size);

    if (r < 0 && errno == EINTR)
      continue;
    g_assert (r > 0);
    data += r;
    size -= (size_t) r;
  }
}
