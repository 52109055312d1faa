/* gst-uel: running a pipeline with progress, a closing summary and
 * Ctrl-C handling, for the commands that run one (launch, convert)
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "gst-uel-common.h"

#include <gst/gst.h>

G_BEGIN_DECLS

/* what the first Ctrl-C does (the second always stops at once) */
typedef enum
{
  /* EOS into the pipeline after its sources, so that what was read
   * drains: a pipeline whose sinks only consume (launch) */
  RUN_INTERRUPT_DRAIN,
  /* NULL at once, no EOS: a sink that completes its output at EOS
   * (uelsink renames its file into place then) must not see one */
  RUN_INTERRUPT_ABORT,
} RunInterrupt;

typedef struct
{
  gboolean quiet;               /* no progress, no summary */
  gboolean messages;            /* print the elements' messages (-m) */
  gdouble interval;             /* s between plain progress lines; 0 = 2 */
  RunInterrupt interrupt;
} RunOptions;

typedef struct _Run Run;

Run *run_new (GstElement * pipeline, const RunOptions * options);
gint run_pipeline (Run * run);
void run_set_exit_code (Run * run, gint exit_code);
gint run_finish (Run * run);

G_END_DECLS
