/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/**
 * UelDType:
 *
 * The element types of the safetensors format, with the names the format
 * writes in `dtype`.  Sub-byte types (F4, F6_*) count bits: a tensor's byte
 * size is its element count × bits / 8, which must divide.
 */
typedef enum
{
  UEL_DTYPE_INVALID = 0,
  UEL_DTYPE_BOOL,
  UEL_DTYPE_U8,
  UEL_DTYPE_I8,
  UEL_DTYPE_F8_E5M2,
  UEL_DTYPE_F8_E4M3,
  UEL_DTYPE_F8_E8M0,
  UEL_DTYPE_F8_E4M3FNUZ,
  UEL_DTYPE_F8_E5M2FNUZ,
  UEL_DTYPE_F4,
  UEL_DTYPE_F6_E2M3,
  UEL_DTYPE_F6_E3M2,
  UEL_DTYPE_I16,
  UEL_DTYPE_U16,
  UEL_DTYPE_F16,
  UEL_DTYPE_BF16,
  UEL_DTYPE_I32,
  UEL_DTYPE_U32,
  UEL_DTYPE_F32,
  UEL_DTYPE_C64,
  UEL_DTYPE_F64,
  UEL_DTYPE_I64,
  UEL_DTYPE_U64,
  UEL_DTYPE_N_TYPES
} UelDType;

GType uel_dtype_get_type (void);
#define UEL_TYPE_DTYPE (uel_dtype_get_type ())

UelDType     uel_dtype_from_string (const gchar * name, gssize len);
const gchar *uel_dtype_to_string   (UelDType dtype);
guint        uel_dtype_get_bits    (UelDType dtype);
gboolean     uel_dtype_is_float    (UelDType dtype);

G_END_DECLS
