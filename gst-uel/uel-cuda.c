/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "uel-cuda-private.h"
#include "uel-error.h"

#if HAVE_CUDA
#include <cuda_runtime_api.h>

gint
uel_cuda_device_count (GError ** error)
{
  int n = 0;
  cudaError_t err = cudaGetDeviceCount (&n);

  if (err != cudaSuccess) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "no CUDA device: %s (CUDA error %d: %s)", cudaGetErrorName (err),
        (int) err, cudaGetErrorString (err));
    return -1;
  }
  return n;
}

#else

gint
uel_cuda_device_count (GError ** error)
{
  g_set_error_literal (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
      "no CUDA device: gst-uel was built without the CUDA toolkit");
  return -1;
}

#endif
