/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>
#include <gst/base/gstpushsrc.h>
#include <gst-uel/uel.h>

G_BEGIN_DECLS

/**
 * GstUelSrcMethod:
 * @GST_UEL_SRC_METHOD_PREAD: pread(2) into recycled host memory (or
 *   the allocator downstream proposes)
 * @GST_UEL_SRC_METHOD_MMAP: zero-copy buffers over a read-only mapping of
 *   the file, which stays mapped while any buffer lives
 * @GST_UEL_SRC_METHOD_DIRECT: O_DIRECT reads with aligned offsets, sizes
 *   and memory, bypassing the page cache; falls back to pread where the file
 *   system refuses O_DIRECT
 */
typedef enum
{
  GST_UEL_SRC_METHOD_PREAD,
  GST_UEL_SRC_METHOD_MMAP,
  GST_UEL_SRC_METHOD_DIRECT,
} GstUelSrcMethod;

#define GST_TYPE_UEL_SRC_METHOD (gst_uel_src_method_get_type ())
GType gst_uel_src_method_get_type (void);

#define GST_TYPE_UEL_SRC (gst_uel_src_get_type ())
G_DECLARE_FINAL_TYPE (GstUelSrc, gst_uel_src, GST, UEL_SRC, GstPushSrc)

G_END_DECLS
