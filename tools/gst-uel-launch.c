/* gst-uel launch: run a pipeline described as for gst-launch-1.0, with
 * progress, a closing summary and a clean stop on Ctrl-C
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "gst-uel-run.h"

#include <gst/gst.h>

static const CommandHelp help = {
  "launch", "PIPELINE-DESCRIPTION",
  "Run a pipeline described as for gst-launch-1.0, with a live progress bar "
      "on stderr when it is a terminal (tensors done / total, bytes, GB/s, "
      "ETA; the totals come from uelsrc's uel-header message), a plain "
      "progress line every --interval seconds when it is not, and a closing "
      "summary: time, GB/s, peak RSS and each uel element's stats.\n\n"
      "Ctrl-C stops cleanly (EOS, then NULL; a second Ctrl-C at once).  "
      "Exit status: 0 at the end of the stream, 1 with the error message on "
      "an error, 130 when interrupted.",
  "Example:\n  gst-uel launch uelsrc location=model.safetensors ! uelqueue "
      "! fakesink"
};

gint
cmd_launch (gint argc, gchar ** argv)
{
  gboolean quiet = FALSE, messages = FALSE;
  gdouble interval = 2.0;
  GOptionEntry entries[] = {
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet,
        "Print nothing but errors: no progress, no summary", NULL},
    {"messages", 'm', 0, G_OPTION_ARG_NONE, &messages,
        "Print the elements' messages (the uel-header, decoded "
          "dictionaries…)", NULL},
    {"interval", 'i', 0, G_OPTION_ARG_DOUBLE, &interval,
          "Seconds between progress lines when stderr is not a terminal "
          "(default 2)", "SECONDS"},
    {NULL}
  };
  RunOptions options = { 0, };
  GError *err = NULL;
  GstElement *pipeline;
  Run *run;

  if (!parse_options (&help, entries, &argc, &argv))
    return EXIT_USAGE;
  if (argc < 2) {
    errout ("gst-uel launch: give a pipeline (see --help)\n");
    return EXIT_USAGE;
  }
  if (interval <= 0) {
    errout ("gst-uel launch: --interval must be positive\n");
    return EXIT_USAGE;
  }

  pipeline = gst_parse_launchv ((const gchar **) argv + 1, &err);
  if (!pipeline) {
    errout ("gst-uel launch: could not construct the pipeline: %s\n",
        err ? err->message : "(unknown error)");
    g_clear_error (&err);
    return 1;
  }
  if (err) {
    /* a recoverable error: an element or property that does not exist */
    errout ("gst-uel launch: could not construct the pipeline: %s\n",
        err->message);
    g_clear_error (&err);
    gst_object_unref (pipeline);
    return 1;
  }
  if (!GST_IS_PIPELINE (pipeline)) {
    GstElement *p = gst_pipeline_new (NULL);
    gst_bin_add (GST_BIN (p), pipeline);
    pipeline = p;
  }

  options.quiet = quiet;
  options.messages = messages;
  options.interval = interval;
  options.interrupt = RUN_INTERRUPT_DRAIN;
  run = run_new (pipeline, &options);
  run_pipeline (run);
  return run_finish (run);
}
