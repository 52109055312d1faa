/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "uel-dtype.h"

static const struct
{
  const gchar *name;
  guint bits;
  gboolean is_float;
} dtype_table[UEL_DTYPE_N_TYPES] = {
  [UEL_DTYPE_INVALID] = {NULL, 0, FALSE},
  [UEL_DTYPE_BOOL] = {"BOOL", 8, FALSE},
  [UEL_DTYPE_U8] = {"U8", 8, FALSE},
  [UEL_DTYPE_I8] = {"I8", 8, FALSE},
  [UEL_DTYPE_F8_E5M2] = {"F8_E5M2", 8, TRUE},
  [UEL_DTYPE_F8_E4M3] = {"F8_E4M3", 8, TRUE},
  [UEL_DTYPE_F8_E8M0] = {"F8_E8M0", 8, TRUE},
  [UEL_DTYPE_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8, TRUE},
  [UEL_DTYPE_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8, TRUE},
  [UEL_DTYPE_F4] = {"F4", 4, TRUE},
  [UEL_DTYPE_F6_E2M3] = {"F6_E2M3", 6, TRUE},
  [UEL_DTYPE_F6_E3M2] = {"F6_E3M2", 6, TRUE},
  [UEL_DTYPE_I16] = {"I16", 16, FALSE},
  [UEL_DTYPE_U16] = {"U16", 16, FALSE},
  [UEL_DTYPE_F16] = {"F16", 16, TRUE},
  [UEL_DTYPE_BF16] = {"BF16", 16, TRUE},
  [UEL_DTYPE_I32] = {"I32", 32, FALSE},
  [UEL_DTYPE_U32] = {"U32", 32, FALSE},
  [UEL_DTYPE_F32] = {"F32", 32, TRUE},
  [UEL_DTYPE_C64] = {"C64", 64, FALSE},
  [UEL_DTYPE_F64] = {"F64", 64, TRUE},
  [UEL_DTYPE_I64] = {"I64", 64, FALSE},
  [UEL_DTYPE_U64] = {"U64", 64, FALSE},
};

/**
 * uel_dtype_from_string:
 * @name: a dtype name as the format writes it, e.g. `"BF16"`
 * @len: length of @name in bytes, or -1 if it is NUL-terminated
 *
 * Matching is exact and case-sensitive, as in the reference implementation.
 *
 * Returns: the dtype, or %UEL_DTYPE_INVALID for an unknown name
 */
UelDType
uel_dtype_from_string (const gchar * name, gssize len)
{
  gsize n;

  g_return_val_if_fail (name != NULL, UEL_DTYPE_INVALID);

  n = len < 0 ? strlen (name) : (gsize) len;
  for (guint i = 1; i < UEL_DTYPE_N_TYPES; i++) {
    if (strlen (dtype_table[i].name) == n
        && memcmp (dtype_table[i].name, name, n) == 0)
      return (UelDType) i;
  }
  return UEL_DTYPE_INVALID;
}

/**
 * uel_dtype_to_string:
 * @dtype: a #UelDType
 *
 * Returns: (transfer none) (nullable): the format's name of @dtype, or %NULL
 *   for %UEL_DTYPE_INVALID or an out-of-range value
 */
const gchar *
uel_dtype_to_string (UelDType dtype)
{
  if (dtype <= UEL_DTYPE_INVALID || dtype >= UEL_DTYPE_N_TYPES)
    return NULL;
  return dtype_table[dtype].name;
}

/**
 * uel_dtype_get_bits:
 * @dtype: a #UelDType
 *
 * Returns: the width of one element in bits (4 for F4, 6 for F6_*), or 0 for
 *   an invalid dtype
 */
guint
uel_dtype_get_bits (UelDType dtype)
{
  if (dtype <= UEL_DTYPE_INVALID || dtype >= UEL_DTYPE_N_TYPES)
    return 0;
  return dtype_table[dtype].bits;
}

/**
 * uel_dtype_is_float:
 * @dtype: a #UelDType
 *
 * Returns: %TRUE for the floating-point types (F64 … F4); %FALSE for
 *   integers, BOOL and C64 (complex, not converted by gst-uel)
 */
gboolean
uel_dtype_is_float (UelDType dtype)
{
  if (dtype <= UEL_DTYPE_INVALID || dtype >= UEL_DTYPE_N_TYPES)
    return FALSE;
  return dtype_table[dtype].is_float;
}

GType
uel_dtype_get_type (void)
{
  static gsize type = 0;

  if (g_once_init_enter (&type)) {
    static GEnumValue values[UEL_DTYPE_N_TYPES + 1];
    GType t;

    values[0] = (GEnumValue) {UEL_DTYPE_INVALID, "UEL_DTYPE_INVALID", "invalid"};
    for (guint i = 1; i < UEL_DTYPE_N_TYPES; i++)
      values[i] = (GEnumValue) {(gint) i, dtype_table[i].name, dtype_table[i].name};
    values[UEL_DTYPE_N_TYPES] = (GEnumValue) {0, NULL, NULL};
    t = g_enum_register_static ("UelDType", values);
    g_once_init_leave (&type, t);
  }
  return (GType) type;
}
