/* gst-uel: libFuzzer target for the .safetensors header parser
 * SPDX-License-Identifier: MIT
 *
 * The input is a whole file: it goes into a memfd and through
 * uel_header_new_from_fd(), the entry point every element and the loader
 * use.  A header that parses is walked entirely, so that every field the
 * parser promises (offsets inside the file, sizes that match the shape) is
 * checked by an assertion here as well.
 */
#include "config.h"

#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  g_autoptr (UelHeader) header = NULL;
  g_autoptr (GError) error = NULL;
  guint64 total = 0, data_offset, file_size;
  guint i, n;
  gint fd;

  fd = memfd_create ("fuzz-header", MFD_CLOEXEC);
  g_assert (fd >= 0);
  uel_fuzz_write_all (fd, data, size);

  header = uel_header_new_from_fd (fd, "fuzz.safetensors", &error);
  close (fd);
  if (!header) {
    g_assert (error != NULL);
    g_assert (error->message[0] != '\0');
    return 0;
  }
  g_assert (error == NULL);

  file_size = uel_header_get_file_size (header, 0);
  data_offset = uel_header_get_data_offset (header, 0);
  g_assert (file_size == size);
  g_assert (data_offset >= 8 && data_offset <= file_size);

  n = uel_header_get_n_tensors (header);
  for (i = 0; i < n; i++) {
    const UelTensorInfo *info = uel_header_get_tensor (header, i);
    guint64 elems = 1, bits;
    guint d;

    g_assert (info != NULL);
    guint found = G_MAXUINT;

    g_assert (uel_header_lookup (header, info->name, &found) == info);
    g_assert (found == i);
    g_assert (info->file_offset >= data_offset);
    g_assert (info->file_offset + info->n_bytes <= file_size);
    for (d = 0; d < info->n_dims; d++)
      g_assert (g_uint64_checked_mul (&elems, elems, info->shape[d]));
    g_assert (elems == info->n_elements);
    g_assert (g_uint64_checked_mul (&bits, elems,
            uel_dtype_get_bits (info->dtype)));
    g_assert (bits % 8 == 0 && bits / 8 == info->n_bytes);
    total += info->n_bytes;
  }
  g_assert (uel_header_get_total_bytes (header) == total);
  /* the data section is covered exactly (rule: no holes, no overlaps) */
  g_assert (total == file_size - data_offset);
  (void) uel_header_get_metadata (header);
  return 0;
}
