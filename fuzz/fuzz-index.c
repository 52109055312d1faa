/* gst-uel: libFuzzer target for the sharded-checkpoint index parser
 * SPDX-License-Identifier: MIT
 *
 * The input is the text of `model.safetensors.index.json`, written into a
 * folder that also holds two valid shards, then opened with
 * uel_header_open() as an element or the loader would.  An index that
 * opens is walked: every tensor must come from one of the two shards.
 */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static gchar *dir;
static gchar *index_path;

static void
write_shard (const gchar * name, const gchar * header_json, gsize data_len)
{
  g_autofree gchar *path = g_build_filename (dir, name, NULL);
  guint64 hl = GUINT64_TO_LE (strlen (header_json));
  g_autofree guint8 *data = g_malloc0 (data_len + 1);
  gint fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  g_assert (fd >= 0);
  uel_fuzz_write_all (fd, (const uint8_t *) &hl, 8);
  uel_fuzz_write_all (fd, (const uint8_t *) header_json, strlen (header_json));
  uel_fuzz_write_all (fd, data, data_len);
  close (fd);
}

static void
remove_dir (void)
{
  const gchar *names[] = { "model.safetensors.index.json",
    "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
  };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree gchar *path = g_build_filename (dir, names[i], NULL);
    g_unlink (path);
  }
  g_rmdir (dir);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  dir = g_dir_make_tmp ("uel-fuzz-index-XXXXXX", NULL);
  g_assert (dir != NULL);
  index_path = g_build_filename (dir, "model.safetensors.index.json", NULL);
  /* the shards the seed corpus names */
  write_shard ("model-00001-of-00002.safetensors",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}", 11);
  write_shard ("model-00002-of-00002.safetensors",
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
  atexit (remove_dir);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  g_autoptr (UelHeader) header = NULL;
  g_autoptr (GError) error = NULL;
  guint64 total = 0;
  guint i, n;
  gint fd;

  fd = open (index_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  g_assert (fd >= 0);
  uel_fuzz_write_all (fd, data, size);
  close (fd);

  header = uel_header_open (index_path, &error);
  if (!header) {
    g_assert (error != NULL);
    g_assert (error->message[0] != '\0');
    return 0;
  }
  g_assert (uel_header_is_sharded (header));
  g_assert (uel_header_get_n_files (header) >= 1);
  g_assert (uel_header_get_n_files (header) <= 2);
  n = uel_header_get_n_tensors (header);
  g_assert (n <= 3);
  for (i = 0; i < n; i++) {
    const UelTensorInfo *info = uel_header_get_tensor (header, i);

    guint found = G_MAXUINT;

    g_assert (uel_header_lookup (header, info->name, &found) == info);
    g_assert (found == i);
    g_assert (info->file_index < uel_header_get_n_files (header));
    g_assert (info->file_offset + info->n_bytes <=
        uel_header_get_file_size (header, info->file_index));
    total += info->n_bytes;
  }
  g_assert (uel_header_get_total_bytes (header) == total);
  (void) uel_header_get_metadata (header);
  return 0;
}
