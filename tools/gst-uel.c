/* gst-uel: the command-line tool
 * SPDX-License-Identifier: MIT
 *
 *   gst-uel inspect [--json] [--checksum] FILE   the tensor table of a file
 *   gst-uel launch [--quiet] PIPELINE...      run a pipeline, with progress
 *   gst-uel make-model [OPTIONS] OUT          write a Llama-like sample model
 *   gst-uel convert [OPTIONS] IN OUT          cast, select, add metadata
 *
 * Exit status: 0 on success, 1 when the file is invalid or the pipeline
 * fails, 2 for a usage error, 130 when launch or convert was interrupted
 * (Ctrl-C).
 */
#include "config.h"

#include "gst-uel-common.h"

#include <string.h>

#include <gst/gst.h>

static void
usage (void)
{
  out ("Usage: gst-uel COMMAND [OPTIONS] ARGS\n\n"
      "Commands:\n"
      "  inspect FILE          validate a file and show its tensor table\n"
      "  launch PIPELINE...    run a pipeline with a progress bar\n"
      "  make-model OUTPUT     write a Llama-like sample model\n"
      "  convert IN OUT        rewrite a file or checkpoint: dtype, tensors,\n"
      "                        metadata\n\n"
      "Options:\n"
      "  -h, --help            show this help\n"
      "  --version             show the versions of gst-uel and GStreamer\n\n"
      "gst-uel COMMAND --help shows a command's options; GST_DEBUG and\n"
      "--gst-debug=... work as in every GStreamer program.\n");
}

int
main (int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "--version") == 0) {
    g_autofree gchar *gst = NULL;

    gst_init (NULL, NULL);
    gst = gst_version_string ();
    out ("gst-uel %s (%s)\n", PACKAGE_VERSION, gst);
    return 0;
  }
  if (argc < 2 || strcmp (argv[1], "--help") == 0
      || strcmp (argv[1], "-h") == 0) {
    usage ();
    return argc < 2 ? EXIT_USAGE : 0;
  }
  if (strcmp (argv[1], "inspect") == 0)
    return cmd_inspect (argc - 1, argv + 1);
  if (strcmp (argv[1], "launch") == 0)
    return cmd_launch (argc - 1, argv + 1);
  if (strcmp (argv[1], "make-model") == 0)
    return cmd_make_model (argc - 1, argv + 1);
  if (strcmp (argv[1], "convert") == 0)
    return cmd_convert (argc - 1, argv + 1);
  errout ("gst-uel: unknown command '%s'\n\n", argv[1]);
  usage ();
  return EXIT_USAGE;
}
