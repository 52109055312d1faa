/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "uel-cuda-private.h"
#include "uel-error.h"

#if HAVE_CUDA
#include <cuda_runtime_api.h>

static gboolean
cuda_error (GError ** error, const gchar * what, cudaError_t err)
{
  g_set_error (error, UEL_ERROR, UEL_ERROR_CUDA, "%s: %s (CUDA error %d: %s)",
      what, cudaGetErrorName (err), (int) err, cudaGetErrorString (err));
  return FALSE;
}

gint
uel_cuda_device_count (GError ** error)
{
  int n = 0;
  cudaError_t err = cudaGetDeviceCount (&n);

  if (err != cudaSuccess) {
    /* clear the sticky "last error" so later calls start clean */
    cudaGetLastError ();
    cuda_error (error, "no CUDA device", err);
    return -1;
  }
  if (n == 0) {
    g_set_error_literal (error, UEL_ERROR, UEL_ERROR_CUDA,
        "no CUDA device: the driver reports none");
    return -1;
  }
  return n;
}

gboolean
uel_cuda_set_device (gint device, GError ** error)
{
  gint n = uel_cuda_device_count (error);
  cudaError_t err;

  if (n < 0)
    return FALSE;
  if (device < 0) {
    int cur = 0;
    err = cudaGetDevice (&cur);
    if (err != cudaSuccess)
      return cuda_error (error, "cannot query the current CUDA device", err);
    device = cur;
  }
  if (device >= n) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_CUDA,
        "no CUDA device %d: the driver reports %d device(s)", device, n);
    return FALSE;
  }
  err = cudaSetDevice (device);
  if (err != cudaSuccess)
    return cuda_error (error, "cannot use CUDA device", err);
  return TRUE;
}

gboolean
uel_cuda_host_register (gpointer ptr, gsize size, GError ** error)
{
  cudaError_t err = cudaHostRegister (ptr, size, cudaHostRegisterPortable);

  if (err != cudaSuccess) {
    cudaGetLastError ();
    return cuda_error (error, "cannot pin host memory", err);
  }
  return TRUE;
}

void
uel_cuda_host_unregister (gpointer ptr)
{
  if (cudaHostUnregister (ptr) != cudaSuccess)
    cudaGetLastError ();
}

gboolean
uel_cuda_malloc (gsize size, gpointer * dev_ptr, GError ** error)
{
  cudaError_t err = cudaMalloc (dev_ptr, MAX (size, 1));

  if (err != cudaSuccess) {
    cudaGetLastError ();
    *dev_ptr = NULL;
    g_set_error (error, UEL_ERROR, UEL_ERROR_CUDA,
        "cannot allocate %" G_GSIZE_FORMAT " bytes of device memory: %s "
        "(CUDA error %d: %s)", size, cudaGetErrorName (err), (int) err,
        cudaGetErrorString (err));
    return FALSE;
  }
  return TRUE;
}

void
uel_cuda_free (gpointer dev_ptr)
{
  if (dev_ptr && cudaFree (dev_ptr) != cudaSuccess)
    cudaGetLastError ();
}

gboolean
uel_cuda_memcpy_h2d_async (gpointer dst, gconstpointer src, gsize n,
    gpointer stream, GError ** error)
{
  cudaError_t err = cudaMemcpyAsync (dst, src, n, cudaMemcpyHostToDevice,
      (cudaStream_t) stream);

  return err == cudaSuccess ? TRUE :
      cuda_error (error, "host-to-device copy failed", err);
}

/* cudaMemcpy, then a wait for the legacy default stream: from pageable
 * memory a host-to-device cudaMemcpy returns once the driver has staged
 * the bytes, and a device-to-device one may return before the copy is
 * done */
static gboolean
memcpy_sync (gpointer dst, gconstpointer src, gsize n,
    enum cudaMemcpyKind kind, const gchar * what, GError ** error)
{
  cudaError_t err = cudaMemcpy (dst, src, n, kind);

  if (err == cudaSuccess)
    err = cudaStreamSynchronize (0);
  return err == cudaSuccess ? TRUE : cuda_error (error, what, err);
}

gboolean
uel_cuda_memcpy_d2h (gpointer dst, gconstpointer src, gsize n,
    GError ** error)
{
  return memcpy_sync (dst, src, n, cudaMemcpyDeviceToHost,
      "device-to-host copy failed", error);
}

gboolean
uel_cuda_memcpy_h2d (gpointer dst, gconstpointer src, gsize n,
    GError ** error)
{
  return memcpy_sync (dst, src, n, cudaMemcpyHostToDevice,
      "host-to-device copy failed", error);
}

gboolean
uel_cuda_memcpy_d2d (gpointer dst, gconstpointer src, gsize n,
    GError ** error)
{
  return memcpy_sync (dst, src, n, cudaMemcpyDeviceToDevice,
      "device-to-device copy failed", error);
}

gpointer
uel_cuda_stream_new (GError ** error)
{
  cudaStream_t s = NULL;
  cudaError_t err = cudaStreamCreateWithFlags (&s, cudaStreamNonBlocking);

  if (err != cudaSuccess) {
    cuda_error (error, "cannot create a CUDA stream", err);
    return NULL;
  }
  return s;
}

void
uel_cuda_stream_free (gpointer stream)
{
  if (stream && cudaStreamDestroy ((cudaStream_t) stream) != cudaSuccess)
    cudaGetLastError ();
}

gpointer
uel_cuda_event_new (GError ** error)
{
  cudaEvent_t e = NULL;
  cudaError_t err = cudaEventCreate (&e);

  if (err != cudaSuccess) {
    cuda_error (error, "cannot create a CUDA event", err);
    return NULL;
  }
  return e;
}

void
uel_cuda_event_free (gpointer event)
{
  if (event && cudaEventDestroy ((cudaEvent_t) event) != cudaSuccess)
    cudaGetLastError ();
}

gboolean
uel_cuda_event_record (gpointer event, gpointer stream, GError ** error)
{
  cudaError_t err = cudaEventRecord ((cudaEvent_t) event,
      (cudaStream_t) stream);

  return err == cudaSuccess ? TRUE :
      cuda_error (error, "cannot record a CUDA event", err);
}

gboolean
uel_cuda_event_sync (gpointer event, GError ** error)
{
  cudaError_t err = cudaEventSynchronize ((cudaEvent_t) event);

  return err == cudaSuccess ? TRUE :
      cuda_error (error, "a CUDA copy failed", err);
}

gfloat
uel_cuda_event_elapsed_ms (gpointer start, gpointer end)
{
  float ms = -1;

  if (cudaEventElapsedTime (&ms, (cudaEvent_t) start,
          (cudaEvent_t) end) != cudaSuccess) {
    cudaGetLastError ();
    return -1;
  }
  return ms;
}

gboolean
uel_cuda_launch_host_func (gpointer stream, void (*func) (gpointer),
    gpointer data, GError ** error)
{
  cudaError_t err = cudaLaunchHostFunc ((cudaStream_t) stream,
      (cudaHostFn_t) func, data);

  return err == cudaSuccess ? TRUE :
      cuda_error (error, "cannot queue a host callback", err);
}

gboolean
uel_cuda_stream_sync (gpointer stream, GError ** error)
{
  cudaError_t err = cudaStreamSynchronize ((cudaStream_t) stream);

  return err == cudaSuccess ? TRUE :
      cuda_error (error, "a CUDA stream failed", err);
}

gboolean
uel_cuda_mem_get_info (guint64 * free_bytes, guint64 * total_bytes,
    GError ** error)
{
  size_t f = 0, t = 0;
  cudaError_t err = cudaMemGetInfo (&f, &t);

  if (err != cudaSuccess)
    return cuda_error (error, "cannot query device memory", err);
  *free_bytes = f;
  *total_bytes = t;
  return TRUE;
}

gboolean
uel_cuda_host_is_pinned (gconstpointer ptr)
{
  struct cudaPointerAttributes attr;

  if (cudaPointerGetAttributes (&attr, ptr) != cudaSuccess) {
    cudaGetLastError ();
    return FALSE;
  }
  return attr.type == cudaMemoryTypeHost;
}

#else

static gboolean
no_cuda (GError ** error)
{
  g_set_error_literal (error, UEL_ERROR, UEL_ERROR_CUDA,
      "no CUDA device: gst-uel was built without the CUDA toolkit");
  return FALSE;
}

gint
uel_cuda_device_count (GError ** error)
{
  no_cuda (error);
  return -1;
}

gboolean
uel_cuda_set_device (gint device, GError ** error)
{
  return no_cuda (error);
}

gboolean
uel_cuda_host_register (gpointer ptr, gsize size, GError ** error)
{
  return no_cuda (error);
}

void
uel_cuda_host_unregister (gpointer ptr)
{
}

gboolean
uel_cuda_malloc (gsize size, gpointer * dev_ptr, GError ** error)
{
  *dev_ptr = NULL;
  return no_cuda (error);
}

void
uel_cuda_free (gpointer dev_ptr)
{
}

gboolean
uel_cuda_memcpy_h2d_async (gpointer dst, gconstpointer src, gsize n,
    gpointer stream, GError ** error)
{
  return no_cuda (error);
}

gboolean
uel_cuda_memcpy_d2h (gpointer dst, gconstpointer src, gsize n,
    GError ** error)
{
  return no_cuda (error);
}

gboolean
uel_cuda_memcpy_h2d (gpointer dst, gconstpointer src, gsize n,
    GError ** error)
{
  return no_cuda (error);
}

gboolean
uel_cuda_memcpy_d2d (gpointer dst, gconstpointer src, gsize n,
    GError ** error)
{
  return no_cuda (error);
}

gpointer
uel_cuda_stream_new (GError ** error)
{
  no_cuda (error);
  return NULL;
}

void
uel_cuda_stream_free (gpointer stream)
{
}

gpointer
uel_cuda_event_new (GError ** error)
{
  no_cuda (error);
  return NULL;
}

void
uel_cuda_event_free (gpointer event)
{
}

gboolean
uel_cuda_event_record (gpointer event, gpointer stream, GError ** error)
{
  return no_cuda (error);
}

gboolean
uel_cuda_event_sync (gpointer event, GError ** error)
{
  return no_cuda (error);
}

gfloat
uel_cuda_event_elapsed_ms (gpointer start, gpointer end)
{
  return -1;
}

gboolean
uel_cuda_launch_host_func (gpointer stream, void (*func) (gpointer),
    gpointer data, GError ** error)
{
  return no_cuda (error);
}

gboolean
uel_cuda_stream_sync (gpointer stream, GError ** error)
{
  return no_cuda (error);
}

gboolean
uel_cuda_mem_get_info (guint64 * free_bytes, guint64 * total_bytes,
    GError ** error)
{
  return no_cuda (error);
}

gboolean
uel_cuda_host_is_pinned (gconstpointer ptr)
{
  return FALSE;
}

#endif
