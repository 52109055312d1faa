/* gst-uel: helpers for the fuzz targets
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "fuzz.h"

/* A g_return_if_fail() that a hostile input reaches is a bug like any
 * crash: criticals abort, in libFuzzer's runs and in the replays alike. */
__attribute__ ((constructor))
static void
fatal_criticals (void)
{
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
}

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
