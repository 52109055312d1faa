/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib-object.h>

/* Defines type_name_get_type(), registering the enum type TypeName once
 * from @values: a static GEnumValue array, each with its description as
 * value_name (gst-inspect-1.0 shows it), ending with {0, NULL, NULL}.
 * For the library and the plugins alike. */
#define UEL_DEFINE_ENUM_TYPE(TypeName, type_name, values)              \
  GType                                                                \
  type_name##_get_type (void)                                          \
  {                                                                    \
    static gsize type = 0;                                             \
                                                                       \
    if (g_once_init_enter (&type))                                     \
      g_once_init_leave (&type,                                        \
          g_enum_register_static (#TypeName, values));                 \
    return (GType) type;                                               \
  }
