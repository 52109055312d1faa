/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>
#include <gst-uel/uel-dtype.h>

G_BEGIN_DECLS

/**
 * UEL_TRANSFER_POOL_SIZE:
 *
 * The size of the pinned pool that uel_transfer_to_gpu_pinned() stages
 * pageable tensors through, in bytes (64 MiB): pinned once, at the first
 * transfer, and reused; larger tensors pass through it in chunks.
 */
#define UEL_TRANSFER_POOL_SIZE (G_GUINT64_CONSTANT (64) << 20)

/**
 * UelTransfer:
 *
 * One tensor on its way to a CUDA device, started by
 * uel_transfer_to_gpu_pinned_async(): uel_transfer_wait() gives the
 * result, uel_transfer_free() releases what is left.  Owned by one thread
 * at a time; different transfers may run from different threads.
 */
typedef struct _UelTransfer UelTransfer;

GstBuffer   *uel_transfer_to_gpu_pinned    (GstBuffer * buffer,
                                            gint device,
                                            UelDType dtype,
                                            GError ** error);
UelTransfer *uel_transfer_to_gpu_pinned_async (GstBuffer * buffer,
                                            gint device,
                                            UelDType dtype,
                                            GError ** error);
GstBuffer   *uel_transfer_wait             (UelTransfer * transfer,
                                            GError ** error);
void         uel_transfer_free             (UelTransfer * transfer);
void         uel_pinned_transfer_get_stats (guint64 * pinned,
                                            guint64 * fallback);
void         uel_pinned_transfer_reset_stats (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (UelTransfer, uel_transfer_free)

G_END_DECLS
