/* gst-uel: dtype conversion (uel-convert): the CPU reference against an
 * independent reference, and the GPU kernels against the CPU reference
 * SPDX-License-Identifier: MIT
 *
 * The library converts with integer bit manipulation.  The reference here
 * works differently: it decodes every finite value of the target format
 * into a double (ldexp), and picks the nearest one by binary search over
 * that ordered table, breaking ties with the parity of the bit pattern; the
 * float/_Float16 casts of the host FPU give a third opinion where they
 * exist.  NaNs are checked against the documented payload rule.
 *
 * The 8-bit formats are checked against vectors that the Python package
 * ml_dtypes computed (tests/data/make-fp8-vectors.py wrote them into
 * tests/data/fp8/; no Python is needed here): every result must match bit
 * for bit, NaNs included — the library gives ml_dtypes' canonical NaN
 * with the input's sign, so a NaN with another sign or payload fails.
 */
#include "config.h"

#include <fenv.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "test-utils.h"
#include "gst-uel/uel-cuda-private.h"

/* ------------------------------------------------------------------ */
/* formats, as the test sees them */

typedef struct
{
  UelDType dtype;
  guint m;                      /* fraction bits */
  guint e;                      /* exponent bits */
  guint size;                   /* bytes */
} Fmt;

static const Fmt F64 = { UEL_DTYPE_F64, 52, 11, 8 };
static const Fmt F32 = { UEL_DTYPE_F32, 23, 8, 4 };
static const Fmt F16 = { UEL_DTYPE_F16, 10, 5, 2 };
static const Fmt BF16 = { UEL_DTYPE_BF16, 7, 8, 2 };
static const Fmt E4M3 = { UEL_DTYPE_F8_E4M3, 3, 4, 1 };
static const Fmt E5M2 = { UEL_DTYPE_F8_E5M2, 2, 5, 1 };

static guint64
fmt_inf (const Fmt * f)
{
  return (((guint64) 1 << f->e) - 1) << f->m;
}

static guint64
fmt_sign (const Fmt * f)
{
  return (guint64) 1 << (f->m + f->e);
}

static gboolean
fmt_is_nan (const Fmt * f, guint64 bits)
{
  guint64 mag = bits & (fmt_sign (f) - 1);

  return mag > fmt_inf (f);
}

static guint64
load (const Fmt * f, const guint8 * p, gsize i)
{
  guint64 v = 0;

  for (guint b = 0; b < f->size; b++)
    v |= (guint64) p[i * f->size + b] << (8 * b);
  return v;
}

static void
store (const Fmt * f, guint8 * p, gsize i, guint64 v)
{
  for (guint b = 0; b < f->size; b++)
    p[i * f->size + b] = (guint8) (v >> (8 * b));
}

static guint32
f32_bits (gfloat x)
{
  guint32 b;

  memcpy (&b, &x, 4);
  return b;
}

static guint64
f64_bits (gdouble x)
{
  guint64 b;

  memcpy (&b, &x, 8);
  return b;
}

/* the value of a non-NaN pattern of @f, in double arithmetic */
static gdouble
ref_value (const Fmt * f, guint64 bits)
{
  gint bias = (1 << (f->e - 1)) - 1;
  guint64 mag = bits & (fmt_sign (f) - 1);
  guint64 ef = mag >> f->m;
  guint64 fr = mag & (((guint64) 1 << f->m) - 1);
  gdouble v;

  if (f->m == 52) {
    memcpy (&v, &bits, 8);
    return v;
  }
  if (mag == fmt_inf (f))
    v = INFINITY;
  else if (ef == 0)
    v = ldexp ((gdouble) fr, 1 - bias - (gint) f->m);
  else
    v = ldexp ((gdouble) (fr | ((guint64) 1 << f->m)),
        (gint) ef - bias - (gint) f->m);
  return (bits & fmt_sign (f)) ? -v : v;
}

/* Every finite non-negative value of a 16-bit format, in pattern order
 * (which is value order), with one more entry past the largest finite
 * value: 2^(emax+1), where rounding up from the top lands on the infinity's
 * pattern. */
typedef struct
{
  const Fmt *fmt;
  guint64 n;                    /* = the infinity's pattern */
  gdouble *vals;
} Table;

static Table *
table_new (const Fmt * f)
{
  Table *t = g_new0 (Table, 1);
  gint bias = (1 << (f->e - 1)) - 1;

  t->fmt = f;
  t->n = fmt_inf (f);
  t->vals = g_new (gdouble, t->n + 1);
  for (guint64 k = 0; k < t->n; k++)
    t->vals[k] = ref_value (f, k);
  t->vals[t->n] = ldexp (1.0, bias + 1);
  for (guint64 k = 1; k <= t->n; k++)
    g_assert_cmpfloat (t->vals[k - 1], <, t->vals[k]);
  return t;
}

static void
table_free (Table * t)
{
  g_free (t->vals);
  g_free (t);
}

/* the nearest pattern of @t's format to @x, ties to the even pattern */
static guint64
table_round (const Table * t, gdouble x)
{
  guint64 sign = signbit (x) ? fmt_sign (t->fmt) : 0;
  gdouble a = fabs (x), mid;
  guint64 lo = 0, hi = t->n, k;

  if (a >= t->vals[t->n])
    return sign | t->n;
  /* vals[lo] <= a < vals[hi] */
  while (hi - lo > 1) {
    guint64 m = lo + (hi - lo) / 2;

    if (t->vals[m] <= a)
      lo = m;
    else
      hi = m;
  }
  k = lo;
  if (t->vals[k] == a)
    return sign | k;
  /* both neighbours have at most 12 significant bits: the midpoint is
   * exact in double */
  mid = (t->vals[k] + t->vals[k + 1]) / 2;
  if (a < mid)
    return sign | k;
  if (a > mid)
    return sign | (k + 1);
  return sign | ((k & 1) ? k + 1 : k);
}

/* the documented NaN rule: sign kept, fraction read as a bit string from
 * its top and cut (or zero-padded) to the target's width, quiet bit set */
static guint64
ref_nan (const Fmt * from, const Fmt * to, guint64 bits)
{
  guint64 frac = bits & (((guint64) 1 << from->m) - 1);
  guint64 top = frac << (64 - from->m);
  guint64 payload = top >> (64 - to->m);
  guint64 sign = (bits & fmt_sign (from)) ? fmt_sign (to) : 0;

  return sign | fmt_inf (to) | payload | ((guint64) 1 << (to->m - 1));
}

/* converts @n elements of @in with the library */
static guint8 *
convert (const Fmt * from, const Fmt * to, const guint8 * in, gsize n)
{
  GError *err = NULL;
  guint8 *out = g_malloc0 (MAX (n * to->size, 1));

  g_assert_true (uel_convert_cpu (from->dtype, to->dtype, in, out, n,
          &err));
  g_assert_no_error (err);
  return out;
}

static GByteArray *
array_new (void)
{
  return g_byte_array_new ();
}

static void
array_add (GByteArray * a, const Fmt * f, guint64 bits)
{
  guint8 b[8];

  store (f, b, 0, bits);
  g_byte_array_append (a, b, f->size);
}

static void
fail_at (const Fmt * from, const Fmt * to, guint64 in, guint64 got,
    guint64 want, const gchar * what)
{
  g_error ("%s -> %s of 0x%0*" G_GINT64_MODIFIER "x (%.17g): got 0x%0*"
      G_GINT64_MODIFIER "x, want 0x%0*" G_GINT64_MODIFIER "x (%s)",
      uel_dtype_to_string (from->dtype), uel_dtype_to_string (to->dtype),
      (gint) from->size * 2, in, fmt_is_nan (from, in) ? NAN :
      ref_value (from, in), (gint) to->size * 2, got, (gint) to->size * 2,
      want, what);
}

/* Checks the library's conversion of every element of @in against the
 * table reference (narrowing, or 16-bit to 16-bit) or the exact value
 * (widening to F32). */
static void
check_against_reference (const Fmt * from, const Fmt * to, GByteArray * in)
{
  gsize n = in->len / from->size;
  guint8 *out = convert (from, to, in->data, n);
  Table *t = to->size == 2 ? table_new (to) : NULL;

  for (gsize i = 0; i < n; i++) {
    guint64 x = load (from, in->data, i);
    guint64 got = load (to, out, i), want;

    if (fmt_is_nan (from, x)) {
      want = ref_nan (from, to, x);
      if (got != want)
        fail_at (from, to, x, got, want, "NaN payload rule");
      continue;
    }
    if (t) {
      want = table_round (t, ref_value (from, x));
    } else {
      /* to F32: from F64 the host's cast (round to nearest even by
       * default), otherwise the exact value */
      g_assert_true (to == &F32);
      want = f32_bits ((gfloat) ref_value (from, x));
    }
    if (got != want)
      fail_at (from, to, x, got, want, t ? "nearest, ties to even" :
          "exact value, or the host's cast from F64");
  }
  if (t)
    table_free (t);
  g_free (out);
}

/* ------------------------------------------------------------------ */
/* samples */

static GByteArray *
all_16bit (const Fmt * f)
{
  GByteArray *a = array_new ();

  for (guint32 b = 0; b < 65536; b++)
    array_add (a, f, b);
  return a;
}

/* Patterns of @f: both signs, every exponent, with fractions that put a
 * halfway point (and its neighbours, with an odd or even kept bit) at every
 * bit position, so every rounding position of every target (normal and
 * subnormal) meets its ties; then the extremes, then random patterns. */
static GByteArray *
sample (const Fmt * f, guint n_random)
{
  GByteArray *a = array_new ();
  guint64 fmask = ((guint64) 1 << f->m) - 1;
  guint64 emax = ((guint64) 1 << f->e) - 1;
  GArray *fracs = g_array_new (FALSE, FALSE, sizeof (guint64));
  GRand *rand = g_rand_new_with_seed (20240611);
  guint64 v;

#define ADD_FRAC(x) G_STMT_START { v = (x) & fmask;                        \
    g_array_append_val (fracs, v); } G_STMT_END
  ADD_FRAC (0);
  ADD_FRAC (1);
  ADD_FRAC (2);
  ADD_FRAC (3);
  ADD_FRAC (fmask);
  ADD_FRAC (fmask - 1);
  for (guint k = 0; k < f->m; k++) {
    guint64 h = (guint64) 1 << k;
    guint64 odd = h << 1;

    ADD_FRAC (h);
    ADD_FRAC (h - 1);
    ADD_FRAC (h + 1);
    ADD_FRAC (h | odd);
    ADD_FRAC ((h | odd) - 1);
    ADD_FRAC ((h | odd) + 1);
    /* all ones above the halfway bit: rounding up carries through */
    ADD_FRAC ((fmask & ~(odd - 1)) | h);
    ADD_FRAC ((fmask & ~(odd - 1)) | (h - 1));
    ADD_FRAC (fmask & ~(h - 1));
  }
#undef ADD_FRAC

  for (guint s = 0; s < 2; s++)
    for (guint64 e = 0; e <= emax; e++)
      for (guint i = 0; i < fracs->len; i++)
        array_add (a, f, ((guint64) s << (f->m + f->e)) | (e << f->m)
            | g_array_index (fracs, guint64, i));

  for (guint i = 0; i < n_random; i++) {
    guint64 r = ((guint64) g_rand_int (rand) << 32) | g_rand_int (rand);

    array_add (a, f, r & ((fmt_sign (f) << 1) - 1));
  }
  g_array_free (fracs, TRUE);
  g_rand_free (rand);
  return a;
}

/* ------------------------------------------------------------------ */
/* support */

static void
test_supported (void)
{
  const UelDType floats[] = { UEL_DTYPE_F64, UEL_DTYPE_F32, UEL_DTYPE_F16,
    UEL_DTYPE_BF16, UEL_DTYPE_F8_E4M3, UEL_DTYPE_F8_E5M2
  };

  /* the same pairs on the CPU and the GPU */
  for (guint i = 0; i < G_N_ELEMENTS (floats); i++)
    for (guint j = 0; j < G_N_ELEMENTS (floats); j++) {
      gboolean want = floats[j] != UEL_DTYPE_F64 || i == j;

      g_assert_cmpint (uel_convert_supported (floats[i], floats[j]), ==,
          want);
      g_assert_cmpint (uel_convert_cpu_supported (floats[i], floats[j]), ==,
          want);
    }
  /* no other dtype (integers, BOOL, C64, the other 8/6/4-bit floats) on
   * either side, nor to itself */
  for (guint d = 0; d < UEL_DTYPE_N_TYPES + 2; d++) {
    gboolean known = FALSE;

    for (guint i = 0; i < G_N_ELEMENTS (floats); i++)
      known |= d == floats[i];
    if (known)
      continue;
    g_assert_false (uel_convert_supported ((UelDType) d, UEL_DTYPE_F32));
    g_assert_false (uel_convert_supported (UEL_DTYPE_F8_E4M3, (UelDType) d));
    g_assert_false (uel_convert_supported ((UelDType) d, (UelDType) d));
    g_assert_false (uel_convert_cpu_supported ((UelDType) d,
            UEL_DTYPE_BF16));
    g_assert_false (uel_convert_cpu_supported (UEL_DTYPE_F64,
            (UelDType) d));
    g_assert_false (uel_convert_cpu_supported ((UelDType) d,
            (UelDType) d));
  }
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_F32,
          UEL_DTYPE_F8_E4M3, 400), ==, 100);
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_F8_E5M2,
          UEL_DTYPE_BF16, 7), ==, 14);

  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_F32, UEL_DTYPE_F16,
          400), ==, 200);
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_BF16, UEL_DTYPE_F32,
          6), ==, 12);
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_F64, UEL_DTYPE_BF16,
          G_GUINT64_CONSTANT (1) << 40), ==, G_GUINT64_CONSTANT (1) << 38);
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_F16, UEL_DTYPE_F16,
          10), ==, 10);
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_F32, UEL_DTYPE_F16,
          0), ==, 0);
  /* not a whole number of elements */
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_F32, UEL_DTYPE_F16,
          6), ==, 0);
  /* unsupported */
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_I32, UEL_DTYPE_F16,
          8), ==, 0);
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_F32, UEL_DTYPE_F64,
          8), ==, 0);
  /* the output size overflows */
  g_assert_cmpuint (uel_convert_output_size (UEL_DTYPE_F16, UEL_DTYPE_F32,
          G_MAXSIZE - 1), ==, 0);
}

static void
test_rejects_unsupported (void)
{
  GError *err = NULL;
  guint8 in[16] = { 0 }, out[16] = { 0 };

  g_assert_false (uel_convert_cpu (UEL_DTYPE_I32, UEL_DTYPE_F16, in, out, 2,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "I32 to F16"));
  g_clear_error (&err);

  g_assert_false (uel_convert_cpu (UEL_DTYPE_F16, UEL_DTYPE_F64, in, out, 2,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);

  g_assert_false (uel_convert_cpu (UEL_DTYPE_F8_E8M0, UEL_DTYPE_BF16, in,
          out, 2, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);

  g_assert_false (uel_convert_cpu (UEL_DTYPE_F32, UEL_DTYPE_F16, in, out,
          G_MAXSIZE / 2, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);

  /* nothing to convert: no buffers needed */
  g_assert_true (uel_convert_cpu (UEL_DTYPE_F32, UEL_DTYPE_F16, NULL, NULL,
          0, &err));
  g_assert_no_error (err);
  /* nothing written past the elements */
  memset (out, 0xAA, sizeof (out));
  g_assert_true (uel_convert_cpu (UEL_DTYPE_F32, UEL_DTYPE_BF16, in, out, 3,
          &err));
  g_assert_no_error (err);
  for (guint i = 0; i < 6; i++)
    g_assert_cmpuint (out[i], ==, 0);
  for (guint i = 6; i < sizeof (out); i++)
    g_assert_cmpuint (out[i], ==, 0xAA);
}

/* ------------------------------------------------------------------ */
/* exact values: the boundaries, spelled out */

typedef struct
{
  const Fmt *from, *to;
  guint64 in, out;
} Case;

static void
check_cases (const Case * cases, gsize n)
{
  for (gsize i = 0; i < n; i++) {
    const Case *c = &cases[i];
    guint8 in[8], *out;
    guint64 got;

    store (c->from, in, 0, c->in);
    out = convert (c->from, c->to, in, 1);
    got = load (c->to, out, 0);
    if (got != c->out)
      fail_at (c->from, c->to, c->in, got, c->out, "case table");
    g_free (out);
  }
}

static void
test_f32_to_f16_boundaries (void)
{
  const Case cases[] = {
    {&F32, &F16, f32_bits (0.0f), 0x0000},
    {&F32, &F16, f32_bits (-0.0f), 0x8000},
    {&F32, &F16, f32_bits (1.0f), 0x3C00},
    {&F32, &F16, f32_bits (-2.0f), 0xC000},
    /* largest finite, and the overflow boundary (RNE: the tie goes up to
     * 2^16, which is Inf) */
    {&F32, &F16, f32_bits (65504.0f), 0x7BFF},
    {&F32, &F16, f32_bits (65519.99f), 0x7BFF},
    {&F32, &F16, f32_bits (65520.0f), 0x7C00},
    {&F32, &F16, f32_bits (-65520.0f), 0xFC00},
    {&F32, &F16, f32_bits (1e10f), 0x7C00},
    {&F32, &F16, f32_bits (FLT_MAX), 0x7C00},
    {&F32, &F16, 0x7F800000, 0x7C00},
    {&F32, &F16, 0xFF800000, 0xFC00},
    /* ties to even in the normal range */
    {&F32, &F16, f32_bits (1.0f + ldexpf (1, -11)), 0x3C00},
    {&F32, &F16, f32_bits (1.0f + 3 * ldexpf (1, -11)), 0x3C02},
    {&F32, &F16, f32_bits (1.0f + ldexpf (1, -11) + ldexpf (1, -23)),
        0x3C01},
    {&F32, &F16, f32_bits (1.0f + ldexpf (1, -11) - ldexpf (1, -23)),
        0x3C00},
    /* smallest normal, subnormals, underflow */
    {&F32, &F16, f32_bits (ldexpf (1, -14)), 0x0400},
    {&F32, &F16, f32_bits (ldexpf (2047, -25)), 0x0400},
    {&F32, &F16, f32_bits (ldexpf (2045, -25)), 0x03FE},
    {&F32, &F16, f32_bits (ldexpf (1023, -24)), 0x03FF},
    {&F32, &F16, f32_bits (ldexpf (1, -24)), 0x0001},
    {&F32, &F16, f32_bits (ldexpf (3, -25)), 0x0002},
    {&F32, &F16, f32_bits (ldexpf (1, -25)), 0x0000},
    {&F32, &F16, f32_bits (-ldexpf (1, -25)), 0x8000},
    {&F32, &F16, f32_bits (ldexpf (1, -25)) + 1, 0x0001},
    {&F32, &F16, f32_bits (ldexpf (1, -25)) - 1, 0x0000},
    {&F32, &F16, 0x00000001, 0x0000},
    {&F32, &F16, 0x80000001, 0x8000},
    /* NaNs: quiet, sign, top payload bits */
    {&F32, &F16, 0x7FC00000, 0x7E00},
    {&F32, &F16, 0xFFC00000, 0xFE00},
    {&F32, &F16, 0x7F800001, 0x7E00},
    {&F32, &F16, 0xFF800001, 0xFE00},
    {&F32, &F16, 0x7FFFFFFF, 0x7FFF},
    {&F32, &F16, 0x7FA12345, 0x7F09},
  };

  check_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_f32_to_bf16_boundaries (void)
{
  const Case cases[] = {
    {&F32, &BF16, f32_bits (1.0f), 0x3F80},
    {&F32, &BF16, 0x80000000, 0x8000},
    {&F32, &BF16, 0x3F808000, 0x3F80},
    {&F32, &BF16, 0x3F818000, 0x3F82},
    {&F32, &BF16, 0x3F808001, 0x3F81},
    {&F32, &BF16, 0x3F807FFF, 0x3F80},
    /* largest finite F32 rounds up to 2^128: Inf */
    {&F32, &BF16, 0x7F7FFFFF, 0x7F80},
    {&F32, &BF16, 0x7F7F8000, 0x7F80},
    {&F32, &BF16, 0x7F7F7FFF, 0x7F7F},
    {&F32, &BF16, 0x7F7E8000, 0x7F7E},
    {&F32, &BF16, 0xFF7FFFFF, 0xFF80},
    /* F32 subnormals become BF16 subnormals */
    {&F32, &BF16, 0x00000001, 0x0000},
    {&F32, &BF16, 0x80000001, 0x8000},
    {&F32, &BF16, 0x00008000, 0x0000},
    {&F32, &BF16, 0x00008001, 0x0001},
    {&F32, &BF16, 0x00018000, 0x0002},
    {&F32, &BF16, 0x00400000, 0x0040},
    {&F32, &BF16, 0x007FFFFF, 0x0080},
    {&F32, &BF16, 0x007F7FFF, 0x007F},
    /* NaNs */
    {&F32, &BF16, 0x7FC00000, 0x7FC0},
    {&F32, &BF16, 0x7FA12345, 0x7FE1},
    {&F32, &BF16, 0xFF800001, 0xFFC0},
    {&F32, &BF16, 0x7F812345, 0x7FC1},
    {&F32, &BF16, 0xFFFFFFFF, 0xFFFF},
  };

  check_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_widening_and_16bit_boundaries (void)
{
  const Case cases[] = {
    {&F16, &F32, 0x0001, f32_bits (ldexpf (1, -24))},
    {&F16, &F32, 0x03FF, f32_bits (ldexpf (1023, -24))},
    {&F16, &F32, 0x0400, f32_bits (ldexpf (1, -14))},
    {&F16, &F32, 0x7BFF, f32_bits (65504.0f)},
    {&F16, &F32, 0x8000, 0x80000000},
    {&F16, &F32, 0x7C00, 0x7F800000},
    {&F16, &F32, 0xFC00, 0xFF800000},
    {&F16, &F32, 0x7E00, 0x7FC00000},
    {&F16, &F32, 0x7D01, 0x7FE02000},
    {&F16, &F32, 0xFFFF, 0xFFFFE000},
    {&BF16, &F32, 0x0001, 0x00010000},
    {&BF16, &F32, 0x8080, 0x80800000},
    {&BF16, &F32, 0x7F7F, 0x7F7F0000},
    {&BF16, &F32, 0xFF80, 0xFF800000},
    {&BF16, &F32, 0x7F81, 0x7FC10000},
    {&BF16, &F32, 0x7FC1, 0x7FC10000},
    /* F16 → BF16: more range, fewer bits */
    {&F16, &BF16, 0x3C01, 0x3F80},
    {&F16, &BF16, 0x3C03, 0x3F80},
    {&F16, &BF16, 0x3C04, 0x3F80},
    {&F16, &BF16, 0x3C05, 0x3F81},
    {&F16, &BF16, 0x3C0C, 0x3F82},
    {&F16, &BF16, 0x7BFF, 0x4780},
    {&F16, &BF16, 0x0001, 0x3380},
    {&F16, &BF16, 0x7C00, 0x7F80},
    {&F16, &BF16, 0x7D01, 0x7FE0},
    /* BF16 → F16: overflow and underflow */
    {&BF16, &F16, 0x477F, 0x7BF8},
    {&BF16, &F16, 0x4780, 0x7C00},
    {&BF16, &F16, 0x7F7F, 0x7C00},
    {&BF16, &F16, 0xC780, 0xFC00},
    {&BF16, &F16, 0x3380, 0x0001},
    {&BF16, &F16, 0x3300, 0x0000},
    {&BF16, &F16, 0xB300, 0x8000},
    {&BF16, &F16, 0x3340, 0x0001},
    {&BF16, &F16, 0x0001, 0x0000},
    {&BF16, &F16, 0x7FC1, 0x7E08},
  };

  check_cases (cases, G_N_ELEMENTS (cases));
}

static void
test_f64_boundaries (void)
{
  const Case cases[] = {
    /* rounded once: through F32 these would round twice, to 0x3C00 and
     * 0x3F80 */
    {&F64, &F16, f64_bits (1.0 + ldexp (1, -11) + ldexp (1, -40)), 0x3C01},
    {&F64, &BF16, f64_bits (1.0 + ldexp (1, -8) + ldexp (1, -30)), 0x3F81},
    {&F64, &F16, f64_bits (65519.999999), 0x7BFF},
    {&F64, &F16, f64_bits (65520.0), 0x7C00},
    {&F64, &F16, f64_bits (1e300), 0x7C00},
    {&F64, &F16, f64_bits (-1e300), 0xFC00},
    {&F64, &F16, f64_bits (5e-324), 0x0000},
    {&F64, &F16, f64_bits (-5e-324), 0x8000},
    {&F64, &F16, f64_bits (ldexp (1, -25) * (1 + DBL_EPSILON)), 0x0001},
    {&F64, &F32, f64_bits (ldexp (1, -149)), 0x00000001},
    {&F64, &F32, f64_bits (ldexp (1, -150)), 0x00000000},
    {&F64, &F32, f64_bits (ldexp (1, -150) * (1 + DBL_EPSILON)), 0x00000001},
    {&F64, &F32, f64_bits (ldexp (3, -150)), 0x00000002},
    {&F64, &F32, f64_bits (FLT_MAX), 0x7F7FFFFF},
    {&F64, &F32, f64_bits (FLT_MAX + ldexp (1, 103)), 0x7F800000},
    {&F64, &F32, f64_bits (FLT_MAX + ldexp (1, 103) - ldexp (1, 80)),
        0x7F7FFFFF},
    {&F64, &F32, f64_bits (DBL_MAX), 0x7F800000},
    {&F64, &F32, f64_bits (-0.0), 0x80000000},
    {&F64, &F32, G_GUINT64_CONSTANT (0x7FF0000000000000), 0x7F800000},
    {&F64, &F32, G_GUINT64_CONSTANT (0x7FF0000000000001), 0x7FC00000},
    {&F64, &F32, G_GUINT64_CONSTANT (0xFFF8000000000000), 0xFFC00000},
    {&F64, &F32, G_GUINT64_CONSTANT (0x7FF123456789ABCD), 0x7FC91A2B},
    {&F64, &BF16, G_GUINT64_CONSTANT (0x7FF123456789ABCD), 0x7FC9},
    {&F64, &BF16, f64_bits (ldexp (1, -133)), 0x0001},
    {&F64, &BF16, f64_bits (ldexp (1, -134)), 0x0000},
  };

  check_cases (cases, G_N_ELEMENTS (cases));
}

/* ------------------------------------------------------------------ */
/* exhaustive and sampled comparisons with the reference */

/* every F16 / BF16 pattern to F32 and back: exact, NaNs quieted */
static void
check_round_trip (const Fmt * f)
{
  GByteArray *all = all_16bit (f);
  guint8 *wide = convert (f, &F32, all->data, 65536);
  guint8 *back = convert (&F32, f, wide, 65536);

  check_against_reference (f, &F32, all);
  for (guint32 b = 0; b < 65536; b++) {
    guint64 got = load (f, back, b);

    if (fmt_is_nan (f, b)) {
      /* a signaling NaN comes back quiet, everything else identical */
      guint64 want = b | ((guint64) 1 << (f->m - 1));

      if (got != want)
        fail_at (f, f, b, got, want, "NaN round trip through F32");
    } else if (got != b) {
      fail_at (f, f, b, got, b, "round trip through F32");
    }
  }
  g_free (back);
  g_free (wide);
  g_byte_array_unref (all);
}

static void
test_f16_round_trip_exhaustive (void)
{
  check_round_trip (&F16);
}

static void
test_bf16_round_trip_exhaustive (void)
{
  check_round_trip (&BF16);
}

static void
test_f16_bf16_exhaustive (void)
{
  GByteArray *f16 = all_16bit (&F16);
  GByteArray *bf16 = all_16bit (&BF16);

  check_against_reference (&F16, &BF16, f16);
  check_against_reference (&BF16, &F16, bf16);
  g_byte_array_unref (f16);
  g_byte_array_unref (bf16);
}

static void
test_f32_narrowing_sampled (void)
{
  GByteArray *in = sample (&F32, 1 << 20);

  g_test_message ("%u F32 patterns", in->len / 4);
  check_against_reference (&F32, &F16, in);
  check_against_reference (&F32, &BF16, in);

#ifdef __FLT16_MAX__
  /* a third opinion: the compiler's own float → _Float16 conversion
   * (round to nearest even in the default rounding mode) */
  {
    guint8 *out = convert (&F32, &F16, in->data, in->len / 4);

    g_assert_cmpint (fegetround (), ==, FE_TONEAREST);
    for (gsize i = 0; i < in->len / 4; i++) {
      guint32 x = (guint32) load (&F32, in->data, i);
      gfloat xf;
      _Float16 h;
      guint16 hb;

      if (fmt_is_nan (&F32, x))
        continue;
      memcpy (&xf, &x, 4);
      h = (_Float16) xf;
      memcpy (&hb, &h, 2);
      if (load (&F16, out, i) != hb)
        fail_at (&F32, &F16, x, load (&F16, out, i), hb, "_Float16 cast");
    }
    g_free (out);
  }
#endif
  g_byte_array_unref (in);
}

static void
test_f64_narrowing_sampled (void)
{
  GByteArray *in = sample (&F64, 1 << 18);
  GRand *rand = g_rand_new_with_seed (7);

  /* random values inside the targets' ranges, where rounding happens */
  for (guint i = 0; i < (1 << 18); i++) {
    guint64 e = 1023 - 160 + g_rand_int_range (rand, 0, 300);
    guint64 r = ((guint64) g_rand_int (rand) << 32) | g_rand_int (rand);

    array_add (in, &F64, (r & G_GUINT64_CONSTANT (0x800FFFFFFFFFFFFF))
        | (e << 52));
  }
  g_test_message ("%u F64 patterns", in->len / 8);
  g_assert_cmpint (fegetround (), ==, FE_TONEAREST);
  check_against_reference (&F64, &F32, in);
  check_against_reference (&F64, &F16, in);
  check_against_reference (&F64, &BF16, in);
  g_rand_free (rand);
  g_byte_array_unref (in);
}

/* identity copies the bytes, signaling NaNs included */
static void
test_identity_copies (void)
{
  const Fmt *fmts[] = { &F64, &F32, &F16, &BF16 };

  for (guint i = 0; i < G_N_ELEMENTS (fmts); i++) {
    GByteArray *in = sample (fmts[i], 1000);
    guint8 *out = convert (fmts[i], fmts[i], in->data, in->len /
        fmts[i]->size);

    g_assert_cmpmem (out, in->len, in->data, in->len);
    g_free (out);
    g_byte_array_unref (in);
  }
}

/* no alignment needed; same-size conversions work in place */
static void
test_unaligned_and_in_place (void)
{
  const Fmt *fmts[] = { &F64, &F32, &F16, &BF16, &E4M3, &E5M2 };

  for (guint i = 0; i < G_N_ELEMENTS (fmts); i++)
    for (guint j = 0; j < G_N_ELEMENTS (fmts); j++) {
      const Fmt *from = fmts[i], *to = fmts[j];
      GByteArray *in;
      gsize n;
      guint8 *want, *src, *dst;
      GError *err = NULL;

      if (!uel_convert_supported (from->dtype, to->dtype))
        continue;
      /* 8- and 16-bit sources: enough for their tables */
      in = sample (from, from->size <= 2 ? 40000 : 1000);
      n = in->len / from->size;
      want = convert (from, to, in->data, n);
      src = g_malloc (in->len + 8);
      dst = g_malloc (n * to->size + 8);
      memcpy (src + 3, in->data, in->len);
      g_assert_true (uel_convert_cpu (from->dtype, to->dtype, src + 3,
              dst + 5, n, &err));
      g_assert_no_error (err);
      g_assert_cmpmem (dst + 5, n * to->size, want, n * to->size);

      if (from->size == to->size) {
        g_assert_true (uel_convert_cpu (from->dtype, to->dtype, src + 3,
                src + 3, n, &err));
        g_assert_no_error (err);
        g_assert_cmpmem (src + 3, n * to->size, want, n * to->size);
      }
      g_free (src);
      g_free (dst);
      g_free (want);
      g_byte_array_unref (in);
    }
}

/* Sources of 16 bits convert through a table of every pattern's result
 * from 2^14 elements on, by the arithmetic below that (as the GPU does):
 * both give the same bits for every pattern, to every target. */
static void
test_table_matches_arithmetic (void)
{
  const Fmt *from16[] = { &F16, &BF16 };
  const Fmt *to[] = { &F32, &F16, &BF16, &E4M3, &E5M2 };

  for (guint i = 0; i < G_N_ELEMENTS (from16); i++) {
    GByteArray *in = array_new ();

    for (guint32 b = 0; b < 65536; b++)
      array_add (in, from16[i], b);
    for (guint j = 0; j < G_N_ELEMENTS (to); j++) {
      guint8 *whole, *slices;
      gsize slice = 4096;

      if (from16[i] == to[j])
        continue;
      whole = convert (from16[i], to[j], in->data, 65536);
      slices = g_malloc (65536 * to[j]->size);
      for (gsize k = 0; k < 65536; k += slice) {
        GError *err = NULL;

        g_assert_true (uel_convert_cpu (from16[i]->dtype, to[j]->dtype,
                in->data + k * 2, slices + k * to[j]->size, slice, &err));
        g_assert_no_error (err);
      }
      g_assert_cmpmem (whole, 65536 * to[j]->size, slices,
          65536 * to[j]->size);
      g_free (whole);
      g_free (slices);
    }
    g_byte_array_unref (in);
  }
}

/* ------------------------------------------------------------------ */
/* the GPU */

static gboolean
device_or_skip (void)
{
  GError *err = NULL;

  if (uel_cuda_device_count (&err) < 0) {
    g_assert_error (err, UEL_ERROR, UEL_ERROR_CUDA);
    g_test_skip (err->message);
    g_error_free (err);
    return FALSE;
  }
  return TRUE;
}

/* converts @in on the device at byte offsets @src_off / @dst_off (0 for
 * cudaMalloc's alignment: the vector kernels; one element: the scalar
 * ones; odd: the unaligned ones), or in place */
static guint8 *
convert_gpu (const Fmt * from, const Fmt * to, const guint8 * in, gsize n,
    gsize src_off, gsize dst_off, gboolean in_place)
{
  GError *err = NULL;
  gpointer src = NULL, dst = NULL;
  guint8 *out = g_malloc0 (MAX (n * to->size, 1));
  gsize in_len = n * from->size, out_len = n * to->size;

  g_assert_true (uel_cuda_malloc (in_len + src_off, &src, &err));
  g_assert_no_error (err);
  g_assert_true (uel_cuda_memcpy_h2d ((guint8 *) src + src_off, in, in_len,
          &err));
  g_assert_no_error (err);
  if (in_place) {
    g_assert_cmpuint (from->size, ==, to->size);
    dst = NULL;
    dst_off = src_off;
  } else {
    g_assert_true (uel_cuda_malloc (out_len + dst_off, &dst, &err));
    g_assert_no_error (err);
  }
  g_assert_true (uel_cuda_convert (from->dtype, to->dtype,
          (guint8 *) src + src_off, (guint8 *) (in_place ? src : dst) +
          dst_off, n, NULL, &err));
  g_assert_no_error (err);
  /* synchronous on the default stream: waits for the kernel, and reports
   * its faults */
  g_assert_true (uel_cuda_memcpy_d2h (out, (guint8 *) (in_place ? src : dst)
          + dst_off, out_len, &err));
  g_assert_no_error (err);
  uel_cuda_free (src);
  uel_cuda_free (dst);
  return out;
}

static void
assert_same (const Fmt * from, const Fmt * to, const guint8 * in,
    const guint8 * gpu, const guint8 * cpu, gsize n, const gchar * what)
{
  for (gsize i = 0; i < n; i++) {
    guint64 g = load (to, gpu, i), c = load (to, cpu, i);

    if (g != c)
      g_error ("GPU %s -> %s (%s), element %" G_GSIZE_FORMAT " of %"
          G_GSIZE_FORMAT ": input 0x%" G_GINT64_MODIFIER "x, GPU 0x%"
          G_GINT64_MODIFIER "x, CPU 0x%" G_GINT64_MODIFIER "x",
          uel_dtype_to_string (from->dtype), uel_dtype_to_string (to->dtype),
          what, i, n, load (from, in, i), g, c);
  }
}

static void
test_gpu_matches_cpu (void)
{
  const Fmt *fmts[] = { &F64, &F32, &F16, &BF16, &E4M3, &E5M2 };
  GError *err = NULL;

  if (!device_or_skip ())
    return;
  g_assert_true (uel_cuda_set_device (0, &err));
  g_assert_no_error (err);

  for (guint i = 0; i < G_N_ELEMENTS (fmts); i++) {
    const Fmt *from = fmts[i];
    GByteArray *in;
    gsize n;

    if (from->size == 1) {
      /* every pattern, 10,000 times over (more than one grid's worth of
       * vectors), plus an odd tail */
      in = array_new ();
      for (guint r = 0; r < 10000; r++)
        for (guint32 b = 0; b < 256; b++)
          array_add (in, from, b);
      for (guint32 b = 0; b < 37; b++)
        array_add (in, from, b * 7);
    } else if (from->size == 2) {
      /* every pattern, 40 times over: 2.6 M elements, more than one
       * grid's worth (4096 × 256 threads), so the grid-stride loop turns;
       * plus an odd tail */
      in = array_new ();
      for (guint r = 0; r < 40; r++)
        for (guint32 b = 0; b < 65536; b++)
          array_add (in, from, b);
      for (guint32 b = 0; b < 37; b++)
        array_add (in, from, b * 1777);
    } else {
      in = sample (from, from->size == 4 ? 1 << 21 : 1 << 19);
    }
    n = in->len / from->size;
    g_test_message ("%s: %" G_GSIZE_FORMAT " elements",
        uel_dtype_to_string (from->dtype), n);

    for (guint j = 0; j < G_N_ELEMENTS (fmts); j++) {
      const Fmt *to = fmts[j];
      guint8 *cpu, *gpu;
      gsize n_small = MIN (n, 100003);

      if (!uel_convert_supported (from->dtype, to->dtype))
        continue;
      cpu = convert (from, to, in->data, n);

      gpu = convert_gpu (from, to, in->data, n, 0, 0, FALSE);
      assert_same (from, to, in->data, gpu, cpu, n, "aligned");
      g_free (gpu);

      /* aligned to one element but not to four: the scalar kernels */
      gpu = convert_gpu (from, to, in->data, n_small, from->size, to->size,
          FALSE);
      assert_same (from, to, in->data, gpu, cpu, n_small,
          "element-aligned");
      g_free (gpu);

      gpu = convert_gpu (from, to, in->data, n_small, 1, 3, FALSE);
      assert_same (from, to, in->data, gpu, cpu, n_small, "unaligned");
      g_free (gpu);

      if (from->size == to->size) {
        gpu = convert_gpu (from, to, in->data, n_small, 0, 0, TRUE);
        assert_same (from, to, in->data, gpu, cpu, n_small, "in place");
        g_free (gpu);
      }
      g_free (cpu);
    }
    g_byte_array_unref (in);
  }
}

/* without a device (or a toolkit), the GPU conversion fails with a GError
 * and touches nothing */
static void
test_gpu_without_device_fails_cleanly (void)
{
  GError *err = NULL;
  gint n = uel_cuda_device_count (&err);

  if (n >= 0) {
    g_test_skip ("a CUDA device is present");
    return;
  }
  g_clear_error (&err);

  /* never dereferenced: the launch fails first */
  g_assert_false (uel_cuda_convert (UEL_DTYPE_F32, UEL_DTYPE_F16,
          GSIZE_TO_POINTER (0x1000), GSIZE_TO_POINTER (0x2000), 16, NULL,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_CUDA);
  g_test_message ("%s", err->message);
  g_clear_error (&err);

  g_assert_false (uel_cuda_convert (UEL_DTYPE_F16, UEL_DTYPE_F16,
          GSIZE_TO_POINTER (0x1000), GSIZE_TO_POINTER (0x2000), 16, NULL,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_CUDA);
  g_clear_error (&err);

  /* the pair is checked before CUDA is asked anything */
  g_assert_false (uel_cuda_convert (UEL_DTYPE_I8, UEL_DTYPE_F16,
          GSIZE_TO_POINTER (0x1000), GSIZE_TO_POINTER (0x2000), 16, NULL,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_clear_error (&err);

  /* the 8-bit formats are converted on the GPU too: without one, CUDA's
   * error; a pair no side converts is refused with the rule */
  g_assert_false (uel_cuda_convert (UEL_DTYPE_F8_E4M3, UEL_DTYPE_F32,
          GSIZE_TO_POINTER (0x1000), GSIZE_TO_POINTER (0x2000), 16, NULL,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_CUDA);
  g_clear_error (&err);
  g_assert_false (uel_cuda_convert (UEL_DTYPE_F32, UEL_DTYPE_F8_E8M0,
          GSIZE_TO_POINTER (0x1000), GSIZE_TO_POINTER (0x2000), 16, NULL,
          &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "on the GPU"));
  g_clear_error (&err);
}

/* ------------------------------------------------------------------ */
/* the 8-bit formats against ml_dtypes */

static const struct
{
  const gchar *name;
  const Fmt *fmt;
} fp8_names[] = {
  {"f64", &F64}, {"f32", &F32}, {"f16", &F16}, {"bf16", &BF16},
  {"f8_e4m3", &E4M3}, {"f8_e5m2", &E5M2},
};

static const gchar *
fmt_file_name (const Fmt * f)
{
  for (guint i = 0; i < G_N_ELEMENTS (fp8_names); i++)
    if (fp8_names[i].fmt == f)
      return fp8_names[i].name;
  g_assert_not_reached ();
}

/* a file of tests/data/fp8, whose size must be @n elements of @f */
static guint8 *
load_vectors (const gchar * file, const Fmt * f, gsize * n)
{
  g_autofree gchar *path = g_build_filename (UEL_FP8_VECTORS_DIR, file,
      NULL);
  GError *err = NULL;
  gchar *data;
  gsize len;

  g_file_get_contents (path, &data, &len, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (len % f->size, ==, 0);
  if (*n == 0)
    *n = len / f->size;
  g_assert_cmpuint (len, ==, *n * f->size);
  return (guint8 *) data;
}

/* converts @n elements of @in and compares with ml_dtypes' @want */
static void
compare_with_ml_dtypes (const Fmt * from, const Fmt * to, const guint8 * in,
    const guint8 * want, gsize n)
{
  guint8 *got = convert (from, to, in, n);

  for (gsize i = 0; i < n; i++) {
    guint64 g = load (to, got, i), w = load (to, want, i);

    if (g != w)
      g_error ("%s -> %s of 0x%0*" G_GINT64_MODIFIER "x (element %"
          G_GSIZE_FORMAT "): got 0x%0*" G_GINT64_MODIFIER "x, ml_dtypes "
          "gives 0x%0*" G_GINT64_MODIFIER "x", uel_dtype_to_string
          (from->dtype), uel_dtype_to_string (to->dtype),
          (gint) from->size * 2, load (from, in, i), i, (gint) to->size * 2,
          g, (gint) to->size * 2, w);
  }
  g_test_message ("%s -> %s: %" G_GSIZE_FORMAT " results match ml_dtypes",
      uel_dtype_to_string (from->dtype), uel_dtype_to_string (to->dtype), n);
  g_free (got);
}

/* every bit pattern of @from, converted to @to */
static void
check_all_patterns (const Fmt * from, const Fmt * to)
{
  g_autofree gchar *file = g_strdup_printf ("%s-all-to-%s.bin",
      fmt_file_name (from), fmt_file_name (to));
  gsize n = (gsize) 1 << (8 * from->size);
  g_autofree guint8 *in = g_malloc (n * from->size);
  g_autofree guint8 *want = load_vectors (file, to, &n);

  for (gsize i = 0; i < n; i++)
    store (from, in, i, i);
  compare_with_ml_dtypes (from, to, in, want, n);
}

static void
test_fp8_narrowing_exhaustive (void)
{
  check_all_patterns (&F16, &E4M3);
  check_all_patterns (&F16, &E5M2);
  check_all_patterns (&BF16, &E4M3);
  check_all_patterns (&BF16, &E5M2);
}

static void
test_fp8_widening_exhaustive (void)
{
  const Fmt *fp8[] = { &E4M3, &E5M2 };
  const Fmt *wide[] = { &F32, &F16, &BF16 };

  for (guint i = 0; i < G_N_ELEMENTS (fp8); i++) {
    for (guint j = 0; j < G_N_ELEMENTS (wide); j++)
      check_all_patterns (fp8[i], wide[j]);
    check_all_patterns (fp8[i], fp8[1 - i]);
  }
}

/* the chosen F32 and F64 inputs: specials, ties, maxima, subnormals */
static void
test_fp8_chosen_values (void)
{
  const Fmt *srcs[] = { &F32, &F64 };
  const Fmt *fp8[] = { &E4M3, &E5M2 };

  for (guint i = 0; i < G_N_ELEMENTS (srcs); i++) {
    g_autofree gchar *in_file = g_strdup_printf ("%s-inputs.bin",
        fmt_file_name (srcs[i]));
    gsize n = 0;
    g_autofree guint8 *in = load_vectors (in_file, srcs[i], &n);

    g_assert_cmpuint (n, >, 1000);
    for (guint j = 0; j < G_N_ELEMENTS (fp8); j++) {
      g_autofree gchar *file = g_strdup_printf ("%s-to-%s.bin",
          fmt_file_name (srcs[i]), fmt_file_name (fp8[j]));
      g_autofree guint8 *want = load_vectors (file, fp8[j], &n);

      compare_with_ml_dtypes (srcs[i], fp8[j], in, want, n);
    }
  }
}

/* the rules of the documentation, spelled out */
static void
test_fp8_rules (void)
{
  static const Case cases[] = {
    /* E4M3: 448 is the maximum, 464 ties to it, above is NaN, not Inf */
    {&F32, &E4M3, 0x43E00000, 0x7E},
    {&F32, &E4M3, 0x43E80000, 0x7E},
    {&F32, &E4M3, 0x43E80001, 0x7F},
    {&F32, &E4M3, 0xC3E80001, 0xFF},
    {&F32, &E4M3, 0x7F800000, 0x7F},
    {&F32, &E4M3, 0xFF800000, 0xFF},
    {&F16, &E4M3, 0x7C00, 0x7F},
    /* NaNs: canonical, sign kept, payload dropped */
    {&F32, &E4M3, 0xFFA12345, 0xFF},
    {&F32, &E5M2, 0x7F800001, 0x7E},
    {&F32, &E5M2, 0xFFBFFFFF, 0xFE},
    {&E5M2, &F32, 0x7D, 0x7FC00000},
    {&E5M2, &F32, 0xFF, 0xFFC00000},
    {&E4M3, &F16, 0xFF, 0xFE00},
    {&E4M3, &E5M2, 0x7F, 0x7E},
    {&E5M2, &E4M3, 0xFC, 0xFF},
    /* E5M2: 57344 is the maximum, 61440 ties to Inf */
    {&F32, &E5M2, 0x47600000, 0x7B},
    {&F32, &E5M2, 0x476FFFFF, 0x7B},
    {&F32, &E5M2, 0x47700000, 0x7C},
    {&BF16, &E5M2, 0xFF80, 0xFC},
    /* zeros and subnormals: 2^-9 and 2^-16 are the smallest */
    {&F32, &E4M3, 0x80000000, 0x80},
    {&F32, &E4M3, 0x3B000000, 0x01},
    {&F32, &E4M3, 0x3A800000, 0x00},
    {&F32, &E4M3, 0xBA800001, 0x81},
    {&F32, &E5M2, 0x37800000, 0x01},
    {&F32, &E5M2, 0x37000000, 0x00},
    {&E4M3, &F32, 0x01, 0x3B000000},
    {&E4M3, &F32, 0x7E, 0x43E00000},
    {&E5M2, &F16, 0x01, 0x0100},
    /* F64 rounds through F32: 1 + 2^-4 + 2^-40 is a tie there */
    {&F64, &E4M3, 0x3FF1000000000100, 0x38},
    {&F64, &E4M3, 0x3FF1000020000000, 0x39},
  };

  check_cases (cases, G_N_ELEMENTS (cases));
}

/* Large tensors are split among threads: the result is the one of small
 * (single-threaded) conversions, unaligned and in place too. */
static void
test_large_tensors_split (void)
{
  const gsize n = ((gsize) 5 << 20) + 13;
  guint8 *in = g_malloc (n * 4 + 1), *out = g_malloc (n + 1);
  guint8 *want = g_malloc (n);
  GError *err = NULL;

  uel_test_fill (in + 1, n * 4, 7);
  for (gsize i = 0; i < n; i += 4096) {
    gsize k = MIN (4096, n - i);

    g_assert_true (uel_convert_cpu (UEL_DTYPE_F32, UEL_DTYPE_F8_E4M3,
            in + 1 + i * 4, want + i, k, &err));
    g_assert_no_error (err);
  }
  g_assert_true (uel_convert_cpu (UEL_DTYPE_F32, UEL_DTYPE_F8_E4M3, in + 1,
          out + 1, n, &err));
  g_assert_no_error (err);
  g_assert_cmpmem (out + 1, n, want, n);

  /* F16 -> BF16 in place: its first 2048 elements against a small
   * conversion of them */
  g_assert_true (uel_convert_cpu (UEL_DTYPE_F16, UEL_DTYPE_BF16, in + 1,
          out, 2048, &err));
  g_assert_no_error (err);
  g_assert_true (uel_convert_cpu (UEL_DTYPE_F16, UEL_DTYPE_BF16, in + 1,
          in + 1, n * 2, &err));
  g_assert_no_error (err);
  g_assert_cmpmem (in + 1, 4096, out, 4096);
  g_free (in);
  g_free (out);
  g_free (want);
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/convert/supported-pairs-and-sizes", test_supported);
  g_test_add_func ("/convert/rejects-unsupported-pairs",
      test_rejects_unsupported);
  g_test_add_func ("/convert/f32-to-f16-boundaries",
      test_f32_to_f16_boundaries);
  g_test_add_func ("/convert/f32-to-bf16-boundaries",
      test_f32_to_bf16_boundaries);
  g_test_add_func ("/convert/widening-and-16-bit-boundaries",
      test_widening_and_16bit_boundaries);
  g_test_add_func ("/convert/f64-boundaries-round-once",
      test_f64_boundaries);
  g_test_add_func ("/convert/f16-round-trips-exhaustively",
      test_f16_round_trip_exhaustive);
  g_test_add_func ("/convert/bf16-round-trips-exhaustively",
      test_bf16_round_trip_exhaustive);
  g_test_add_func ("/convert/f16-bf16-exhaustive-against-reference",
      test_f16_bf16_exhaustive);
  g_test_add_func ("/convert/f32-narrowing-against-reference",
      test_f32_narrowing_sampled);
  g_test_add_func ("/convert/f64-narrowing-against-reference",
      test_f64_narrowing_sampled);
  g_test_add_func ("/convert/identity-copies-bytes", test_identity_copies);
  g_test_add_func ("/convert/table-matches-arithmetic",
      test_table_matches_arithmetic);
  g_test_add_func ("/convert/unaligned-and-in-place",
      test_unaligned_and_in_place);
  g_test_add_func ("/convert/fp8-narrowing-matches-ml-dtypes-exhaustively",
      test_fp8_narrowing_exhaustive);
  g_test_add_func ("/convert/fp8-widening-matches-ml-dtypes-exhaustively",
      test_fp8_widening_exhaustive);
  g_test_add_func ("/convert/fp8-chosen-values-match-ml-dtypes",
      test_fp8_chosen_values);
  g_test_add_func ("/convert/fp8-rules", test_fp8_rules);
  g_test_add_func ("/convert/large-tensors-split-among-threads",
      test_large_tensors_split);
  g_test_add_func ("/convert/gpu-matches-cpu", test_gpu_matches_cpu);
  g_test_add_func ("/convert/gpu-without-device-fails-cleanly",
      test_gpu_without_device_fails_cleanly);

  return g_test_run ();
}
