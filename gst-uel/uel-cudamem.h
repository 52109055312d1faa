/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>
#include <gst-uel/uel-dtype.h>
#include <gst-uel/uel-header.h>

G_BEGIN_DECLS

#define UEL_CUDA_MEMORY_TYPE "UelCUDA"

/**
 * UEL_MAP_CUDA:
 *
 * Map flag for CUDA device memory: gst_memory_map() with
 * `GST_MAP_READ | UEL_MAP_CUDA` gives the device pointer (add
 * %GST_MAP_WRITE when the device side will be written).  Without it,
 * mapping gives a host copy of the bytes, so `appsink`, tests and tools
 * can look at them: downloaded at the first host map and kept with the
 * memory, downloaded again only after a CUDA map for writing, and written
 * back to the device when the last host map for writing is unmapped.
 */
#define UEL_MAP_CUDA ((GstMapFlags) (GST_MAP_FLAG_LAST << 1))

#define UEL_TYPE_CUDA_ALLOCATOR (uel_cuda_allocator_get_type ())
G_DECLARE_FINAL_TYPE (UelCudaAllocator, uel_cuda_allocator, UEL,
    CUDA_ALLOCATOR, GstAllocator)

GstAllocator *uel_cuda_allocator_new        (gint device, GError ** error);
gboolean      uel_memory_is_cuda            (GstMemory * mem);
gint          uel_cuda_memory_get_device    (GstMemory * mem);

gboolean      uel_cuda_device_check         (gint device, GError ** error);
gboolean      uel_cuda_device_memory        (gint device, guint64 * free_bytes,
                                             guint64 * total_bytes,
                                             GError ** error);

/**
 * UelCudaUploadStats:
 * @tensors: tensors delivered in device memory
 * @bytes: bytes copied to the device
 * @copy_ns: time the copies took on the GPU (CUDA events), in nanoseconds
 * @wall_ns: time from the first copy queued to the last one finished
 * @pageable: copies whose source was not pinned memory (slower)
 * @converted: tensors converted to another dtype on the GPU
 * @allocations: device allocations made (1 with a single allocation)
 *
 * Counters of a #UelCudaUploader.
 */
typedef struct
{
  guint64 tensors;
  guint64 bytes;
  guint64 copy_ns;
  guint64 wall_ns;
  guint64 pageable;
  guint64 converted;
  guint64 allocations;
} UelCudaUploadStats;

/**
 * UelCudaUploader:
 *
 * Copies tensor buffers (whole or chunked, host or pinned memory) to one
 * CUDA device asynchronously on its own stream, keeping several copies in
 * flight; an input buffer is released only when its copy has finished, and
 * a device tensor is handed back only when all its bytes have arrived (and
 * been converted).  The engine of `uelcudaupload`, usable from C directly.
 */
typedef struct _UelCudaUploader UelCudaUploader;

UelCudaUploader *uel_cuda_uploader_new     (gint device,
                                            UelDType convert_to,
                                            guint max_in_flight,
                                            GError ** error);
void             uel_cuda_uploader_free    (UelCudaUploader * uploader);
gboolean         uel_cuda_uploader_reserve (UelCudaUploader * uploader,
                                            UelHeader * header,
                                            GError ** error);
gboolean         uel_cuda_uploader_submit  (UelCudaUploader * uploader,
                                            GstBuffer * buffer,
                                            GPtrArray * ready,
                                            GError ** error);
gboolean         uel_cuda_uploader_drain   (UelCudaUploader * uploader,
                                            GPtrArray * ready,
                                            GError ** error);
void             uel_cuda_uploader_get_stats (UelCudaUploader * uploader,
                                            UelCudaUploadStats * stats);

G_END_DECLS
