/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:uel-convert
 * @title: dtype conversion
 *
 * Conversion of floating tensors between F32, F16 and BF16 (and from F64 to
 * each of them), as `uelcudaupload convert-to=…` does on the GPU.
 * uel_convert_cpu() is the reference: the GPU kernels run the very same
 * integer algorithm, so both give the same bits.
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
    default:
      return -1;
  }
}

/**
 * uel_convert_supported:
 * @from: the dtype of the input
 * @to: the dtype of the output
 *
 * Whether uel_convert_cpu() (and the GPU conversion of `uelcudaupload`)
 * converts @from to @to: F32, F16 and BF16 convert into one another, F64
 * converts to each of F32, F16 and BF16, and any of these four converts to
 * itself (a copy).  Widening to F64 and every other dtype (integers, BOOL,
 * C64, the F8/F6/F4 types) are not supported.
 *
 * Returns: %TRUE if the pair is supported
 */
gboolean
uel_convert_supported (UelDType from, UelDType to)
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
 *   (see uel_convert_supported()), @in_bytes is not a whole number of
 *   elements, or the output size does not fit in a #gsize
 */
gsize
uel_convert_output_size (UelDType from, UelDType to, gsize in_bytes)
{
  gsize in_size, out_size, n;

  if (!uel_convert_supported (from, to))
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

/* checks the pair and the byte sizes of @n_elements for both sides */
static gboolean
check_args (UelDType from, UelDType to, gsize n_elements, GError ** error)
{
  const gchar *fname = uel_dtype_to_string (from);
  const gchar *tname = uel_dtype_to_string (to);

  if (!uel_convert_supported (from, to)) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "cannot convert %s to %s: only F32, F16 and BF16 convert into one "
        "another, and F64 to each of them", fname ? fname : "(invalid)",
        tname ? tname : "(invalid)");
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
    const guint8 *s = src;                                              \
    guint8 *d = dst;                                                    \
    for (gsize i = 0; i < n_elements; i++) {                            \
      TYPE_F x;                                                         \
      TYPE_T y;                                                         \
      memcpy (&x, s + i * sizeof (TYPE_F), sizeof (TYPE_F));            \
      y = (TYPE_T) uel_cvt_bits ((F), (T), x);                          \
      memcpy (d + i * sizeof (TYPE_T), &y, sizeof (TYPE_T));            \
    }                                                                   \
  } G_STMT_END

/**
 * uel_convert_cpu:
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
 * subnormals kept, overflow to infinity, NaN payload rule).  This is the
 * reference the GPU conversion is tested against.
 *
 * Neither buffer needs any alignment.  They must not overlap, except for
 * @src == @dst when @from and @to have the same size (an in-place
 * conversion, e.g. F16 ↔ BF16).
 *
 * Returns: %TRUE on success; %FALSE with %UEL_ERROR_INVALID_ARGUMENT when
 *   the pair is not supported (see uel_convert_supported()) or the byte size
 *   of @n_elements elements overflows
 */
gboolean
uel_convert_cpu (UelDType from, UelDType to, gconstpointer src,
    gpointer dst, gsize n_elements, GError ** error)
{
  gint f, t;

  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_args (from, to, n_elements, error))
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

  switch (f * UEL_CVT_N_FORMATS + t) {
    case UEL_CVT_F32 * UEL_CVT_N_FORMATS + UEL_CVT_F16:
      CONVERT_LOOP (UEL_CVT_F32, UEL_CVT_F16, guint32, guint16);
      break;
    case UEL_CVT_F32 * UEL_CVT_N_FORMATS + UEL_CVT_BF16:
      CONVERT_LOOP (UEL_CVT_F32, UEL_CVT_BF16, guint32, guint16);
      break;
    case UEL_CVT_F16 * UEL_CVT_N_FORMATS + UEL_CVT_F32:
      CONVERT_LOOP (UEL_CVT_F16, UEL_CVT_F32, guint16, guint32);
      break;
    case UEL_CVT_F16 * UEL_CVT_N_FORMATS + UEL_CVT_BF16:
      CONVERT_LOOP (UEL_CVT_F16, UEL_CVT_BF16, guint16, guint16);
      break;
    case UEL_CVT_BF16 * UEL_CVT_N_FORMATS + UEL_CVT_F32:
      CONVERT_LOOP (UEL_CVT_BF16, UEL_CVT_F32, guint16, guint32);
      break;
    case UEL_CVT_BF16 * UEL_CVT_N_FORMATS + UEL_CVT_F16:
      CONVERT_LOOP (UEL_CVT_BF16, UEL_CVT_F16, guint16, guint16);
      break;
    case UEL_CVT_F64 * UEL_CVT_N_FORMATS + UEL_CVT_F32:
      CONVERT_LOOP (UEL_CVT_F64, UEL_CVT_F32, guint64, guint32);
      break;
    case UEL_CVT_F64 * UEL_CVT_N_FORMATS + UEL_CVT_F16:
      CONVERT_LOOP (UEL_CVT_F64, UEL_CVT_F16, guint64, guint16);
      break;
    case UEL_CVT_F64 * UEL_CVT_N_FORMATS + UEL_CVT_BF16:
      CONVERT_LOOP (UEL_CVT_F64, UEL_CVT_BF16, guint64, guint16);
      break;
    default:
      g_assert_not_reached ();
  }
  return TRUE;
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

  if (!check_args (from, to, n_elements, error))
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
