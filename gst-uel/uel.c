/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "uel.h"
#include "uel-meta-private.h"

G_DEFINE_QUARK (uel-error-quark, uel_error);

/**
 * uel_init:
 *
 * Registers the library's types (dtype enum, the boxed types of the
 * header, tensor entries, filters and writers, the header's text form for
 * printed structures, tensor and dictionary metas).  Safe to call more
 * than once; gst_init() must have been called.
 */
void
uel_init (void)
{
  g_type_ensure (UEL_TYPE_DTYPE);
  g_type_ensure (UEL_TYPE_HEADER);
  g_type_ensure (UEL_TYPE_TENSOR_INFO);
  g_type_ensure (UEL_TYPE_TENSOR_FILTER);
  g_type_ensure (UEL_TYPE_WRITER);
  uel_header_register_value_table ();
  g_type_ensure (UEL_TENSOR_META_API_TYPE);
  uel_tensor_meta_get_info ();
  g_type_ensure (UEL_DICT_META_API_TYPE);
  uel_dict_meta_get_info ();
}
