/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * The dtype conversion itself, as integer bit manipulation: one
 * implementation that the C compiler builds into uel_convert_cpu() and nvcc
 * builds into the kernels of uel-convert-cuda.cu, so that the GPU gives the
 * CPU reference's results bit for bit.  Nothing here depends on the FPU, its
 * rounding mode or on _Float16; nothing here includes GLib (nvcc sees it).
 *
 * Rules (the public ones are documented in uel-convert.c):
 * - finite values round to nearest, ties to even, with subnormals on both
 *   sides, gradual underflow to ±0 and overflow to ±Inf when the rounded
 *   magnitude reaches 2^(emax+1) (65520 → Inf in F16);
 * - ±0 and ±Inf keep their sign;
 * - a NaN stays a NaN of the same sign: the top bits of its payload are kept
 *   (truncated when the fraction narrows, padded with zeros below when it
 *   widens) and the quiet bit is set, so a signaling NaN comes out quiet and
 *   a NaN whose kept payload is zero cannot turn into an infinity.
 *
 * The 8-bit formats follow ml_dtypes (float8_e4m3fn, float8_e5m2) instead,
 * bit for bit, wherever one side of the pair is one of them:
 * - E4M3 ("fn": finite) has no infinity; its exponent field 15 holds normal
 *   values up to 448 and S.1111.111 is its only NaN.  A magnitude that
 *   rounds above 448 (anything above 464; 464 itself ties to 448) and ±Inf
 *   become the NaN of the same sign;
 * - a NaN comes out as the target's canonical quiet NaN with the sign kept
 *   (E4M3 S.1111.111, E5M2 S.11111.10, F32 0x7FC00000…): no payload;
 * - F64 rounds to F32 first, then to the 8-bit format, as ml_dtypes and
 *   PyTorch do (their conversions to FP8 take a float), so a F64 just above
 *   an FP8 tie can round down.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Forced inline: with the formats as constants at the call site the
 * generic code folds into a few instructions per pair, which an outlined
 * call (GCC's choice for a function this size) would forgo. */
#if defined(__CUDACC__)
#define UEL_CVT_FN __host__ __device__ __forceinline__ static
#elif defined(__GNUC__)
#define UEL_CVT_FN static inline __attribute__ ((always_inline))
#else
#define UEL_CVT_FN static inline
#endif

/* The floating formats the conversion knows, in the numbering that
 * uel_cuda_convert_launch() takes (not UelDType's: nvcc does not see
 * GLib). */
enum
{
  UEL_CVT_F64 = 0,
  UEL_CVT_F32 = 1,
  UEL_CVT_F16 = 2,
  UEL_CVT_BF16 = 3,
  UEL_CVT_F8_E4M3 = 4,          /* float8_e4m3fn: no Inf, max 448 */
  UEL_CVT_F8_E5M2 = 5,
  UEL_CVT_N_FORMATS = 6
};

UEL_CVT_FN int
uel_cvt_is_fp8 (int fmt)
{
  return fmt == UEL_CVT_F8_E4M3 || fmt == UEL_CVT_F8_E5M2;
}

/* width of the stored fraction (without the hidden bit) */
UEL_CVT_FN int
uel_cvt_frac_bits (int fmt)
{
  return fmt == UEL_CVT_F64 ? 52 : fmt == UEL_CVT_F32 ? 23 :
      fmt == UEL_CVT_F16 ? 10 : fmt == UEL_CVT_BF16 ? 7 :
      fmt == UEL_CVT_F8_E4M3 ? 3 : 2;
}

UEL_CVT_FN int
uel_cvt_exp_bits (int fmt)
{
  return fmt == UEL_CVT_F64 ? 11 : fmt == UEL_CVT_F8_E4M3 ? 4 :
      fmt == UEL_CVT_F16 || fmt == UEL_CVT_F8_E5M2 ? 5 : 8;
}

/* bytes per element */
UEL_CVT_FN int
uel_cvt_size (int fmt)
{
  return fmt == UEL_CVT_F64 ? 8 : fmt == UEL_CVT_F32 ? 4 :
      uel_cvt_is_fp8 (fmt) ? 1 : 2;
}

/* number of leading zero bits of @x, which is not 0 */
UEL_CVT_FN int
uel_cvt_clz64 (uint64_t x)
{
#if defined(__CUDA_ARCH__)
  return __clzll ((long long) x);
#else
  return __builtin_clzll (x);
#endif
}

/* Converts one element in one rounding step: @x holds the bits of a @from
 * value (in its low bits), the result the bits of the @to value.  When
 * @from and @to are compile-time constants (they are, in every caller) the
 * format arithmetic folds away. */
UEL_CVT_FN uint64_t
uel_cvt_bits_once (int from, int to, uint64_t x)
{
  const int fm = uel_cvt_frac_bits (from);
  const int fe = uel_cvt_exp_bits (from);
  const int tm = uel_cvt_frac_bits (to);
  const int te = uel_cvt_exp_bits (to);
  const int fbias = (1 << (fe - 1)) - 1;
  const int tbias = (1 << (te - 1)) - 1;
  /* E4M3 is "fn": its top exponent holds finite values, no infinity */
  const int ffn = from == UEL_CVT_F8_E4M3;
  const int tfn = to == UEL_CVT_F8_E4M3;
  const int canonical_nan = uel_cvt_is_fp8 (from) || uel_cvt_is_fp8 (to);
  const uint64_t fmag = ((uint64_t) 1 << (fm + fe)) - 1;
  const uint64_t fexp_max = ((uint64_t) 1 << fe) - 1;
  const uint64_t texp_max = ((uint64_t) 1 << te) - 1;
  const uint64_t tinf = texp_max << tm;
  const uint64_t tnan = tfn ? ((uint64_t) 1 << (tm + te)) - 1 :
      tinf | ((uint64_t) 1 << (tm - 1));
  /* what a too large magnitude becomes, and the largest finite encoding
   * just below it */
  const uint64_t tover = tfn ? tnan : tinf;
  const uint64_t tmax = tover - 1;
  const int temax = tfn ? tbias + 1 : tbias;
  const uint64_t e = (x >> fm) & fexp_max;
  const uint64_t f = x & (((uint64_t) 1 << fm) - 1);
  const uint64_t tsign = ((x >> (fm + fe)) & 1) << (tm + te);
  /* the target's quantum (ulp) exponent of its subnormals */
  const int tmin_quantum = 1 - tbias - tm;
  uint64_t sig, q, r;
  int exp2, msb, quantum, shift;

  if (ffn ? (x & fmag) == fmag : e == fexp_max) {
    uint64_t payload;

    if (!ffn && f == 0)
      return tsign | tover;
    if (canonical_nan)
      return tsign | tnan;
    payload = tm < fm ? f >> (fm - tm) : f << (tm - fm);
    return tsign | tinf | payload | ((uint64_t) 1 << (tm - 1));
  }
  if (e == 0 && f == 0)
    return tsign;

  /* |value| = sig × 2^exp2, exactly */
  if (e == 0) {
    sig = f;
    exp2 = 1 - fbias - fm;
  } else {
    sig = f | ((uint64_t) 1 << fm);
    exp2 = (int) e - fbias - fm;
  }
  /* 2^msb <= |value| < 2^(msb+1) */
  msb = exp2 + 63 - uel_cvt_clz64 (sig);
  /* at or above 2^(emax+1) nothing rounds back below */
  if (msb > temax)
    return tsign | tover;

  /* the result is q × 2^quantum: tm+1 significant bits for a normal
   * result, the fixed subnormal quantum below the smallest normal */
  quantum = msb - tm;
  if (quantum < tmin_quantum)
    quantum = tmin_quantum;
  shift = quantum - exp2;
  if (shift <= 0) {
    /* widening: exact */
    q = sig << -shift;
  } else if (shift >= 64) {
    /* sig < 2^53 <= 2^(shift-1): below half the smallest subnormal */
    q = 0;
  } else {
    const uint64_t rem = sig & (((uint64_t) 1 << shift) - 1);
    const uint64_t half = (uint64_t) 1 << (shift - 1);

    q = sig >> shift;
    if (rem > half || (rem == half && (q & 1)))
      q++;
  }

  /* For a normal result q carries the hidden bit 2^tm, so adding it to
   * (biased exponent - 1) << tm gives the encoding, and a carry out of
   * rounding (q = 2^(tm+1)) bumps the exponent by itself.  For a
   * subnormal result the biased quantum exponent is 1, the prefix is 0 and
   * q = 2^tm is the smallest normal.  Rounding up from the largest finite
   * value lands on the infinity's encoding, or in E4M3 on the NaN's (or one
   * past it, which the clamp maps back). */
  r = ((uint64_t) (quantum - tmin_quantum) << tm) + q;
  if (r > tmax)
    r = tover;
  return tsign | r;
}

/* Converts one element: @x holds the bits of a @from value (in its low
 * bits), the result the bits of the @to value.  F64 reaches an 8-bit
 * format through F32, as ml_dtypes does (see the rules above). */
UEL_CVT_FN uint64_t
uel_cvt_bits (int from, int to, uint64_t x)
{
  if (from == UEL_CVT_F64 && uel_cvt_is_fp8 (to))
    return uel_cvt_bits_once (UEL_CVT_F32, to,
        uel_cvt_bits_once (UEL_CVT_F64, UEL_CVT_F32, x));
  return uel_cvt_bits_once (from, to, x);
}
