/* gst-uel: runs a fuzz target over files, without libFuzzer
 * SPDX-License-Identifier: MIT
 *
 * `replay-X FILE-OR-FOLDER...` feeds every file (a folder's files in name
 * order) to the target once and prints one TAP line per argument, so that
 * the seed corpus and every input that once failed run under `meson test`
 * with any compiler.  A failing input aborts inside the target: the test
 * fails, and the last path on stderr names the input.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "fuzz.h"

/* targets without LLVMFuzzerInitialize get this one */
__attribute__ ((weak)) int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  return 0;
}

static gint
compare_paths (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

static void
collect (const gchar * path, GPtrArray * files)
{
  g_autoptr (GDir) d = NULL;
  g_autoptr (GPtrArray) names = NULL;
  const gchar *name;

  if (!g_file_test (path, G_FILE_TEST_IS_DIR)) {
    g_ptr_array_add (files, g_strdup (path));
    return;
  }
  d = g_dir_open (path, 0, NULL);
  if (!d) {
    g_printerr ("cannot open %s\n", path);
    exit (2);
  }
  names = g_ptr_array_new_with_free_func (g_free);
  while ((name = g_dir_read_name (d)))
    if (name[0] != '.')
      g_ptr_array_add (names, g_build_filename (path, name, NULL));
  g_ptr_array_sort (names, compare_paths);
  for (guint i = 0; i < names->len; i++)
    collect (names->pdata[i], files);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  uel_init ();
  LLVMFuzzerInitialize (&argc, &argv);
  if (argc < 2) {
    g_printerr ("usage: %s FILE-OR-FOLDER...\n", argv[0]);
    return 2;
  }

  /* one test case per argument (a folder holds hundreds of inputs); the
   * input being run is named on stderr first, so that a failure inside
   * the target says which */
  printf ("1..%d\n", argc - 1);
  for (int a = 1; a < argc; a++) {
    g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
    guint failed = 0;

    collect (argv[a], files);
    for (guint i = 0; i < files->len; i++) {
      const gchar *path = files->pdata[i];
      g_autofree gchar *data = NULL;
      g_autoptr (GError) error = NULL;
      gsize len;

      if (!g_file_get_contents (path, &data, &len, &error)) {
        g_printerr ("%s\n", error->message);
        failed++;
        continue;
      }
      g_printerr ("%s\n", path);
      LLVMFuzzerTestOneInput ((const uint8_t *) data, len);
    }
    printf ("%s %d - %s: %u inputs\n", failed ? "not ok" : "ok", a, argv[a],
        files->len);
  }
  return 0;
}
