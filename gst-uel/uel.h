/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * The public API of libgstuel-1.0.  Include this header only.
 */
#pragma once

#include <gst-uel/uel-error.h>
#include <gst-uel/uel-dtype.h>
#include <gst-uel/uel-convert.h>
#include <gst-uel/uel-cudamem.h>
#include <gst-uel/uel-header.h>
#include <gst-uel/uel-meta.h>
#include <gst-uel/uel-dict.h>
#include <gst-uel/uel-hostmem.h>
#include <gst-uel/uel-io.h>
#include <gst-uel/uel-loader.h>
#include <gst-uel/uel-pinned.h>
#include <gst-uel/uel-reader.h>
#include <gst-uel/uel-select.h>
#include <gst-uel/uel-transfer.h>
#include <gst-uel/uel-writer.h>

G_BEGIN_DECLS

void uel_init (void);

G_END_DECLS
