/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:uel-convert
 * @title: dtype conversion
 *
 * Conversion of floating tensors between F32, F16, BF16, F8_E4M3
 * (float8_e4m3fn) and F8_E5M2, and from F64 to each of them, on the CPU
 * (uel_convert_cpu(), `uelconvert` in a pipeline) and on the GPU
 * (`uelcudaupload convert-to=…`).  uel_convert_cpu() is the reference: the
 * GPU kernels run the very same integer algorithm, so both give the same
 * bits.  The 8-bit floats give the results of the Python package ml_dtypes
 * (0.4) bit for bit; the rules that differ for them are listed below.
 *
 * The rules, for every supported pair:
 *
 * - Finite values round to the nearest representable value, ties to even
 *   (IEEE 754 roundTiesToEven), in one step: F64 converts directly, never
 *   through F32, so nothing is rounded twice.  The result does not depend on
 *   the FPU or its rounding mode: the conversion is integer arithmetic on
 *   the bits.
 * - Subnormals are kept in both directions (no flush to zero): F16 and BF16
 *   subnormals widen exactly, F32 subnormals become BF16 subnormals, and
 *   values below the smallest normal round to a subnormal or to a zero of
 *   the same sign (gradual underflow).
 * - A magnitude that rounds to 2^(emax+1) or more becomes an infinity of the
 *   same sign: 65519.99 becomes 65504 in F16, 65520 becomes +Inf; in BF16 the
 *   largest finite F32 (3.4028235e38) becomes +Inf.
 * - ±0 and ±Inf stay ±0 and ±Inf.
 * - A NaN stays a NaN of the same sign.  The top bits of its payload are
 *   kept (the fraction is truncated when it narrows and padded with zeros
 *   below when it widens) and the quiet bit (the top fraction bit) is set:
 *   F32 → BF16 keeps the top 7 payload bits, so 0x7FA12345 becomes 0x7FE1;
 *   a signaling NaN comes out quiet, and a NaN whose kept payload bits are
 *   all zero (F32 0x7F800001) still comes out a NaN (F16 0x7E00), never an
 *   infinity.
 * - Converting a dtype to itself copies the bytes unchanged, signaling NaNs
 *   included.
 *
 * Where F8_E4M3 or F8_E5M2 is one side of the pair, as ml_dtypes does:
 *
 * - F8_E4M3 has no infinity: its largest finite value is 448 (S.1111.110)
 *   and S.1111.111 is its only NaN.  A magnitude that rounds above 448
 *   (anything above 464; 464 itself is a tie and rounds to 448) becomes
 *   that NaN with the input's sign, and so do ±Inf.
 * - F8_E5M2 is IEEE-like: 57344 is its largest finite value, 61440 (a tie)
 *   and above become ±Inf.
 * - A NaN becomes the target's canonical quiet NaN with the sign kept, its
 *   payload dropped: 0x7F / 0xFF in F8_E4M3, 0x7E / 0xFE in F8_E5M2,
 *   0x7FC00000 / 0xFFC00000 in F32 (0x7E00 in F16, 0x7FC0 in BF16).  Every
 *   F8_E5M2 NaN (S.11111.01, .10, .11) widens to that same NaN.
 * - F64 converts through F32 (rounded to nearest even, then again to the
 *   8-bit format), as ml_dtypes and PyTorch do: a F64 within 2^-24
 *   relative of an FP8 tie can round as the tie does.
 * - Subnormals of both sides, ±0 and rounding to nearest even are as for
 *   the other formats.
 *
 * Elements are read and written in the host's byte order, which is the
 * safetensors format's little-endian on every platform gst-uel supports.
 */

#include "config.h"

#include <string.h>

#include "uel-convert.h"
#include "uel-convert-impl.h"
#include "uel-cuda-private.h"
#include "uel-error.h"

#if HAVE_CUDA
#include <cuda_runtime_api.h>

#include "uel-convert-cuda-private.h"
#endif

/* the UEL_CVT_* format of @dtype, or -1 */
static gint
cvt_format (UelDType dtype)
{
  switch (dtype) {
    case UEL_DTYPE_F64:
      return UEL_CVT_F64;
    case UEL_DTYPE_F32:
      return UEL_CVT_F32;
    case UEL_DTYPE_F16:
      return UEL_CVT_F16;
    case UEL_DTYPE_BF16:
      return UEL_CVT_BF16;
    case UEL_DTYPE_F8_E4M3:
      return UEL_CVT_F8_E4M3;
    case UEL_DTYPE_F8_E5M2:
      return UEL_CVT_F8_E5M2;
    default:
      return -1;
  }
}

/**
 * uel_convert_supported:
 * @from: the dtype of the input
 * @to: the dtype of the output
 *
 * Whether both uel_convert_cpu() and the GPU conversion of `uelcudaupload`
 * convert @from to @to: F32, F16, BF16, F8_E4M3 and F8_E5M2 convert into
 * one another, F64 converts to each of them, and any of these six converts
 * to itself (a copy).  Widening to F64 and every other dtype (integers,
 * BOOL, C64, F8_E8M0, the FNUZ types, F6_*, F4) are not supported.
 *
 * Returns: %TRUE if the pair is supported on the CPU and the GPU
 */
gboolean
uel_convert_supported (UelDType from, UelDType to)
{
  return uel_convert_cpu_supported (from, to);
}

/**
 * uel_convert_cpu_supported:
 * @from: the dtype of the input
 * @to: the dtype of the output
 *
 * Whether uel_convert_cpu() converts @from to @to: F32, F16, BF16,
 * F8_E4M3 and F8_E5M2 to and from each other, and F64 to each of them (and
 * each of the six to itself).  Widening to F64, the other 8-bit, 6-bit and
 * 4-bit floats (F8_E8M0, the FNUZ types, F6_*, F4), integers, BOOL and C64
 * are not supported.  The same pairs as uel_convert_supported(): the CPU
 * and the GPU convert the same formats.
 *
 * Returns: %TRUE if uel_convert_cpu() converts the pair
 */
gboolean
uel_convert_cpu_supported (UelDType from, UelDType to)
{
  gint f = cvt_format (from), t = cvt_format (to);

  if (f < 0 || t < 0)
    return FALSE;
  return t != UEL_CVT_F64 || f == UEL_CVT_F64;
}

/**
 * uel_convert_output_size:
 * @from: the dtype of the input
 * @to: the dtype of the output
 * @in_bytes: the size of the input in bytes
 *
 * The size of the converted tensor: @in_bytes / size of @from × size of
 * @to.
 *
 * Returns: the output size in bytes, or 0 when the pair is not supported
 *   (see uel_convert_cpu_supported()), @in_bytes is not a whole number of
 *   elements, or the output size does not fit in a #gsize
 */
gsize
uel_convert_output_size (UelDType from, UelDType to, gsize in_bytes)
{
  gsize in_size, out_size, n;

  if (!uel_convert_cpu_supported (from, to))
    return 0;
  in_size = (gsize) uel_cvt_size (cvt_format (from));
  out_size = (gsize) uel_cvt_size (cvt_format (to));
  if (in_bytes % in_size != 0)
    return 0;
  n = in_bytes / in_size;
  if (n > G_MAXSIZE / out_size)
    return 0;
  return n * out_size;
}

/* checks the pair (for the GPU or the CPU) and the byte sizes of
 * @n_elements for both sides */
static gboolean
check_args (UelDType from, UelDType to, gboolean gpu, gsize n_elements,
    GError ** error)
{
  const gchar *fname = uel_dtype_to_string (from);
  const gchar *tname = uel_dtype_to_string (to);

  if (gpu && !uel_convert_supported (from, to)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "cannot convert %s to %s on the GPU: only F32, F16, BF16, F8_E4M3 "
        "and F8_E5M2 convert into one another, and F64 to each of them",
        fname ? fname : "(invalid)", tname ? tname : "(invalid)");
    return FALSE;
  }
  if (!uel_convert_cpu_supported (from, to)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "cannot convert %s to %s: only F32, F16, BF16, F8_E4M3 and F8_E5M2 "
        "convert into one another, and F64 to each of them",
        fname ? fname : "(invalid)", tname ? tname : "(invalid)");
    return FALSE;
  }
  if (n_elements > G_MAXSIZE / 8) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "cannot convert %" G_GSIZE_FORMAT " elements of %s to %s: the byte "
        "size overflows", n_elements, fname, tname);
    return FALSE;
  }
  return TRUE;
}

/* With @F and @T constants, uel_cvt_bits() folds into the few instructions
 * of that one pair.  memcpy: a tensor in a safetensors file need not be
 * aligned to its element size. */
#define CONVERT_LOOP(F, T, TYPE_F, TYPE_T)                              \
  G_STMT_START {                                                        \
    for (gsize i = 0; i < n_elements; i++) {                            \
      TYPE_F x;                                                         \
      TYPE_T y;                                                         \
      memcpy (&x, src + i * sizeof (TYPE_F), sizeof (TYPE_F));          \
      y = (TYPE_T) uel_cvt_bits ((F), (T), x);                          \
      memcpy (dst + i * sizeof (TYPE_T), &y, sizeof (TYPE_T));          \
    }                                                                   \
  } G_STMT_END

/* every pair of different formats, with the word types of both sides */
#define PAIR(F, T, TYPE_F, TYPE_T)                                      \
  case UEL_CVT_##F * UEL_CVT_N_FORMATS + UEL_CVT_##T:                   \
    CONVERT_LOOP (UEL_CVT_##F, UEL_CVT_##T, TYPE_F, TYPE_T);            \
    break

/* converts @n_elements from @f to @t (different formats), in this thread,
 * by the arithmetic */
static void
convert_arith (gint f, gint t, const guint8 * src, guint8 * dst,
    gsize n_elements)
{
  switch (f * UEL_CVT_N_FORMATS + t) {
      PAIR (F32, F16, guint32, guint16);
      PAIR (F32, BF16, guint32, guint16);
      PAIR (F32, F8_E4M3, guint32, guint8);
      PAIR (F32, F8_E5M2, guint32, guint8);
      PAIR (F16, F32, guint16, guint32);
      PAIR (F16, BF16, guint16, guint16);
      PAIR (F16, F8_E4M3, guint16, guint8);
      PAIR (F16, F8_E5M2, guint16, guint8);
      PAIR (BF16, F32, guint16, guint32);
      PAIR (BF16, F16, guint16, guint16);
      PAIR (BF16, F8_E4M3, guint16, guint8);
      PAIR (BF16, F8_E5M2, guint16, guint8);
      PAIR (F8_E4M3, F32, guint8, guint32);
      PAIR (F8_E4M3, F16, guint8, guint16);
      PAIR (F8_E4M3, BF16, guint8, guint16);
      PAIR (F8_E4M3, F8_E5M2, guint8, guint8);
      PAIR (F8_E5M2, F32, guint8, guint32);
      PAIR (F8_E5M2, F16, guint8, guint16);
      PAIR (F8_E5M2, BF16, guint8, guint16);
      PAIR (F8_E5M2, F8_E4M3, guint8, guint8);
      PAIR (F64, F32, guint64, guint32);
      PAIR (F64, F16, guint64, guint16);
      PAIR (F64, BF16, guint64, guint16);
      PAIR (F64, F8_E4M3, guint64, guint8);
      PAIR (F64, F8_E5M2, guint64, guint8);
    default:
      g_assert_not_reached ();
  }
}

#undef PAIR
#undef CONVERT_LOOP

/* Sources of 8 and 16 bits convert through a table of the results of
 * every input pattern, made once per pair (and kept for the process) by
 * convert_arith() itself, so the bits are the same: one load per element
 * instead of the arithmetic's branches, which mispredict on real weights'
 * mixed exponents (BF16 to F8_E4M3 on random bits: 0.11 → 0.83 billion
 * elements a second; F16 to F32: 0.18 → 1.1).  Making a 16-bit table
 * (256 KiB at most) costs about 0.15 ms, the time of some 15,000 elements
 * by the arithmetic: below this, the arithmetic. */
#define TABLE_MIN_ELEMENTS ((gsize) 1 << 14)

static gsize tables[UEL_CVT_N_FORMATS][UEL_CVT_N_FORMATS];

static gconstpointer
get_table (gint f, gint t)
{
  gsize *slot = &tables[f][t];

  if (g_once_init_enter (slot)) {
    const gsize n = (gsize) 1 << (8 * uel_cvt_size (f));
    guint8 *in = g_malloc (n * (gsize) uel_cvt_size (f));
    guint8 *table = g_malloc (n * (gsize) uel_cvt_size (t));

    /* every pattern, in the host's byte order as elements are read */
    for (gsize i = 0; i < n; i++) {
      if (uel_cvt_size (f) == 1) {
        in[i] = (guint8) i;
      } else {
        guint16 x = (guint16) i;

        memcpy (in + 2 * i, &x, 2);
      }
    }
    convert_arith (f, t, in, table, n);
    g_free (in);
    g_once_init_leave (slot, GPOINTER_TO_SIZE (table));
  }
  return GSIZE_TO_POINTER (*slot);
}

#define TABLE_LOOP(TYPE_F, TYPE_T)                                      \
  G_STMT_START {                                                        \
    const TYPE_T *tab = table;                                          \
    for (gsize i = 0; i < n_elements; i++) {                            \
      TYPE_F x;                                                         \
      memcpy (&x, src + i * sizeof (TYPE_F), sizeof (TYPE_F));          \
      memcpy (dst + i * sizeof (TYPE_T), &tab[x], sizeof (TYPE_T));     \
    }                                                                   \
  } G_STMT_END

#define TABLE_CASE(SF, ST, TYPE_F, TYPE_T)                              \
  if (fs == (SF) && ts == (ST)) {                                       \
    TABLE_LOOP (TYPE_F, TYPE_T);                                        \
    return;                                                             \
  }

/* converts @n_elements from @f to @t (different formats), in this thread */
static void
convert_range (gint f, gint t, const guint8 * src, guint8 * dst,
    gsize n_elements)
{
  const gint fs = uel_cvt_size (f), ts = uel_cvt_size (t);
  gconstpointer table;

  if (fs > 2 || (fs == 2 && n_elements < TABLE_MIN_ELEMENTS)) {
    convert_arith (f, t, src, dst, n_elements);
    return;
  }
  table = get_table (f, t);
  TABLE_CASE (1, 1, guint8, guint8);
  TABLE_CASE (1, 2, guint8, guint16);
  TABLE_CASE (1, 4, guint8, guint32);
  TABLE_CASE (2, 1, guint16, guint8);
  TABLE_CASE (2, 2, guint16, guint16);
  TABLE_CASE (2, 4, guint16, guint32);
  g_assert_not_reached ();
}

#undef TABLE_CASE
#undef TABLE_LOOP

/* Each thread converts at least this many elements: below it, starting a
 * thread (some tens of microseconds) costs more than the share of work it
 * takes over (a few nanoseconds an element).  Parts start at multiples of
 * 64 elements, so that two threads never write the same cache line. */
#define PARALLEL_MIN_ELEMENTS ((gsize) 1 << 20)
#define PARALLEL_MAX_THREADS 32
#define PART_ALIGN 64

typedef struct
{
  gint f, t;
  const guint8 *src;
  guint8 *dst;
  gsize n;
} Part;

static gpointer
convert_part (gpointer data)
{
  Part *p = data;

  convert_range (p->f, p->t, p->src, p->dst, p->n);
  return NULL;
}

/* the number of threads uel_convert_cpu() converts @n_elements with */
static guint
convert_threads (gsize n_elements)
{
  gsize by_size = n_elements / PARALLEL_MIN_ELEMENTS;
  guint cpus = (guint) MAX (g_get_num_processors (), 1);

  return (guint) MAX (MIN (MIN (by_size, (gsize) cpus),
          (gsize) PARALLEL_MAX_THREADS), 1);
}

/* Splits the elements among @n_threads: the calling thread takes the
 * first part, new threads the others.  A thread that cannot start leaves
 * its part to the calling thread, so the conversion never fails for it. */
static void
convert_parallel (gint f, gint t, const guint8 * src, guint8 * dst,
    gsize n_elements, guint n_threads)
{
  const gsize fs = (gsize) uel_cvt_size (f), ts = (gsize) uel_cvt_size (t);
  gsize per = n_elements / n_threads;
  Part parts[PARALLEL_MAX_THREADS];
  GThread *threads[PARALLEL_MAX_THREADS] = { NULL };
  gsize start = 0;

  per -= per % PART_ALIGN;
  for (guint k = 0; k < n_threads; k++) {
    gsize n = k + 1 == n_threads ? n_elements - start : per;

    parts[k] = (Part) {
    f, t, src + start * fs, dst + start * ts, n};
    start += n;
  }
  for (guint k = 1; k < n_threads; k++)
    threads[k] = g_thread_try_new ("uel-convert", convert_part, &parts[k],
        NULL);
  convert_part (&parts[0]);
  for (guint k = 1; k < n_threads; k++) {
    if (threads[k])
      g_thread_join (threads[k]);
    else
      convert_part (&parts[k]);
  }
}

/**
 * uel_convert_cpu: (skip)
 * @from: the dtype of @src
 * @to: the dtype of @dst
 * @src: (array) (element-type guint8): @n_elements elements of @from
 * @dst: (out caller-allocates) (array) (element-type guint8): room for
 *   @n_elements elements of @to (see uel_convert_output_size())
 * @n_elements: the number of elements
 * @error: return location for a #GError, or %NULL
 *
 * Converts @n_elements floating-point values from @from to @to on the CPU,
 * with the rules of the section's description (round to nearest even,
 * subnormals kept, overflow to infinity, or to NaN in F8_E4M3, NaN rules).
 * This is the reference the GPU conversion is tested against.  Large
 * tensors (from 2^21 elements) are split among up to one thread per CPU
 * core, each converting at least 2^20 elements; the result does not depend
 * on the split.
 *
 * Not introspectable (bindings cannot size the caller-allocated @dst):
 * bindings call uel_convert_cpu_bytes() under this name.
 *
 * Neither buffer needs any alignment.  They must not overlap, except for
 * @src == @dst when @from and @to have the same size (an in-place
 * conversion, e.g. F16 ↔ BF16).
 *
 * Returns: %TRUE on success; %FALSE with %UEL_ERROR_INVALID_ARGUMENT when
 *   the pair is not supported (see uel_convert_cpu_supported()) or the byte
 *   size of @n_elements elements overflows
 */
gboolean
uel_convert_cpu (UelDType from, UelDType to, gconstpointer src,
    gpointer dst, gsize n_elements, GError ** error)
{
  gint f, t;
  guint n_threads;

  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_args (from, to, FALSE, n_elements, error))
    return FALSE;
  if (n_elements == 0)
    return TRUE;
  g_return_val_if_fail (src != NULL, FALSE);
  g_return_val_if_fail (dst != NULL, FALSE);

  f = cvt_format (from);
  t = cvt_format (to);
  if (f == t) {
    if (src != dst)
      memmove (dst, src, n_elements * (gsize) uel_cvt_size (f));
    return TRUE;
  }

  n_threads = convert_threads (n_elements);
  if (n_threads > 1)
    convert_parallel (f, t, src, dst, n_elements, n_threads);
  else
    convert_range (f, t, src, dst, n_elements);
  return TRUE;
}

/**
 * uel_convert_cpu_bytes: (rename-to uel_convert_cpu)
 * @from: the dtype of @src
 * @to: the dtype to convert to
 * @src: whole elements of @from
 * @error: return location for a #GError, or %NULL
 *
 * uel_convert_cpu() into new memory sized for the result: the form
 * bindings call (as `convert_cpu`).
 *
 * Returns: (transfer full) (nullable): the elements of @src in @to; %NULL
 *   with %UEL_ERROR_INVALID_ARGUMENT when the pair is not supported or
 *   @src is not a whole number of elements of @from
 */
GBytes *
uel_convert_cpu_bytes (UelDType from, UelDType to, GBytes * src,
    GError ** error)
{
  gsize in_bytes, in_size, n_elements, out_bytes;
  gconstpointer data;
  gpointer dst;

  g_return_val_if_fail (src != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_args (from, to, FALSE, 0, error))
    return NULL;
  data = g_bytes_get_data (src, &in_bytes);
  in_size = (gsize) uel_cvt_size (cvt_format (from));
  if (in_bytes % in_size != 0) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "cannot convert %" G_GSIZE_FORMAT " bytes of %s: not a whole number "
        "of %" G_GSIZE_FORMAT "-byte elements", in_bytes,
        uel_dtype_to_string (from), in_size);
    return NULL;
  }
  n_elements = in_bytes / in_size;
  if (!check_args (from, to, FALSE, n_elements, error))
    return NULL;
  out_bytes = n_elements * (gsize) uel_cvt_size (cvt_format (to));
  dst = g_malloc (out_bytes);
  if (!uel_convert_cpu (from, to, data, dst, n_elements, error)) {
    g_free (dst);
    return NULL;
  }
  return g_bytes_new_take (dst, out_bytes);
}

/* uel_cuda_convert: declared in uel-cuda-private.h with the rest of the
 * CUDA interface; here because it shares the argument checks */
gboolean
uel_cuda_convert (UelDType from, UelDType to, gconstpointer src_dev,
    gpointer dst_dev, gsize n_elements, gpointer stream, GError ** error)
{
#if HAVE_CUDA
  cudaError_t err;
#endif

  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_args (from, to, TRUE, n_elements, error))
    return FALSE;

#if HAVE_CUDA
  if (n_elements == 0)
    return TRUE;
  g_return_val_if_fail (src_dev != NULL, FALSE);
  g_return_val_if_fail (dst_dev != NULL, FALSE);

  err = (cudaError_t) uel_cuda_convert_launch (cvt_format (from),
      cvt_format (to), src_dev, dst_dev, n_elements, stream);
  if (err != cudaSuccess) {
    /* clear the sticky "last error" so later calls start clean */
    cudaGetLastError ();
    g_set_error (error, UEL_ERROR, UEL_ERROR_CUDA,
        "cannot convert %" G_GSIZE_FORMAT " elements of %s to %s on the "
        "GPU: %s (CUDA error %d: %s)", n_elements,
        uel_dtype_to_string (from), uel_dtype_to_string (to),
        cudaGetErrorName (err), (int) err, cudaGetErrorString (err));
    return FALSE;
  }
  return TRUE;
#else
  g_set_error_literal (error, UEL_ERROR, UEL_ERROR_CUDA,
      "no CUDA device: gst-uel was built without the CUDA toolkit");
  return FALSE;
#endif
}
