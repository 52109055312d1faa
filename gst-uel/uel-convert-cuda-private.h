/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * The entry point of the dtype conversion kernels (uel-convert-cuda.cu),
 * compiled only when the CUDA toolkit is there (HAVE_CUDA).  Plain C types:
 * nvcc compiles the kernels without GLib.  C code calls uel_cuda_convert()
 * (uel-cuda-private.h), which turns the result into a GError.
 */
#pragma once

#include <stddef.h>

#include "uel-convert-impl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Converts @n elements from format @from to format @to (UEL_CVT_* of
 * uel-convert-impl.h) on @stream (a cudaStream_t; NULL is the default
 * stream), asynchronously.  @src_dev and @dst_dev are device memory; each
 * may have any alignment (fastest aligned to four elements, as cudaMalloc's
 * are; then aligned to one; then byte by byte).  They must not overlap,
 * except @src_dev == @dst_dev for formats of the same size (in place).
 * @from == @to copies the bytes unchanged (cudaMemcpyAsync).
 *
 * Returns: the cudaError_t of the launch, as an int (0 = cudaSuccess;
 * cudaErrorInvalidValue for formats it does not convert between).  Errors
 * while the kernel runs surface at the next synchronisation. */
__attribute__ ((visibility ("hidden")))
int uel_cuda_convert_launch (int from, int to, const void *src_dev,
    void *dst_dev, size_t n, void *stream);

#ifdef __cplusplus
}
#endif
