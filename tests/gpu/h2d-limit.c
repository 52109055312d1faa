/* gst-uel: the host-to-device limit of this machine, for tests/gpu/run.
 *
 * The raw CUDA runtime on purpose: this measures the hardware, not
 * gst-uel.  Prints the cost of pinning 1 GiB two ways (cudaHostAlloc, and
 * pre-faulted memory registered with cudaHostRegister, which the pinned
 * pool uses) and the bandwidth of cudaMemcpyAsync from pinned memory in
 * 64 MiB copies on one stream.
 * SPDX-License-Identifier: MIT
 */
#include <cuda_runtime_api.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
      fprintf (stderr, "%s: %s\n", #call, cudaGetErrorString (e_)); \
      exit (1); } } while (0)

static int
cmp (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  const size_t GiB = (size_t) 1 << 30, chunk = (size_t) 64 << 20;
  int reps = argc > 1 ? atoi (argv[1]) : 7;
  double gbps[64];
  void *pinned, *registered, *dev;
  cudaStream_t s;
  cudaEvent_t a, b;
  gint64 t0;
  double alloc_s, reg_s;

  CHECK (cudaSetDevice (0));
  CHECK (cudaFree (0));         /* create the context outside the timings */

  t0 = g_get_monotonic_time ();
  CHECK (cudaHostAlloc (&pinned, GiB, cudaHostAllocPortable));
  memset (pinned, 1, GiB);
  alloc_s = (g_get_monotonic_time () - t0) / 1e6;

  t0 = g_get_monotonic_time ();
  registered = mmap (NULL, GiB, PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (registered == MAP_FAILED)
    return 1;
  madvise (registered, GiB, MADV_HUGEPAGE);
  if (madvise (registered, GiB, MADV_POPULATE_WRITE) != 0)
    memset (registered, 1, GiB);
  CHECK (cudaHostRegister (registered, GiB, cudaHostRegisterPortable));
  reg_s = (g_get_monotonic_time () - t0) / 1e6;

  CHECK (cudaMalloc (&dev, GiB));
  CHECK (cudaStreamCreateWithFlags (&s, cudaStreamNonBlocking));
  CHECK (cudaEventCreate (&a));
  CHECK (cudaEventCreate (&b));

  if (reps > 64)
    reps = 64;
  for (int r = -1; r < reps; r++) {
    float ms;
    void *src = r % 2 ? pinned : registered;

    CHECK (cudaEventRecord (a, s));
    for (int k = 0; k < 8; k++)
      for (size_t o = 0; o < GiB; o += chunk)
        CHECK (cudaMemcpyAsync ((char *) dev + o, (char *) src + o, chunk,
                cudaMemcpyHostToDevice, s));
    CHECK (cudaEventRecord (b, s));
    CHECK (cudaEventSynchronize (b));
    CHECK (cudaEventElapsedTime (&ms, a, b));
    if (r >= 0)
      gbps[r] = 8.0 * GiB / (ms * 1e6);
  }
  qsort (gbps, reps, sizeof gbps[0], cmp);
  printf ("pin-1GiB cudaHostAlloc=%.3fs register=%.3fs\n", alloc_s, reg_s);
  printf ("h2d-limit median=%.2f min=%.2f max=%.2f GB/s (64 MiB copies, "
      "8 GiB per run, %d runs)\n", gbps[reps / 2], gbps[0], gbps[reps - 1],
      reps);
  return 0;
}
