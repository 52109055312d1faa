/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib-object.h>
#include <gst-uel/uel-header.h>

G_BEGIN_DECLS

/**
 * UelTensorFilter:
 *
 * Which tensors of a file to take: by name (literal names, looked up by
 * hash, and glob patterns), by dtype and by rank.  One filter reads the
 * `tensors`, `dtypes` and `ndim` properties of `uelsrc` and the `tensors`
 * property of `ueldictdecode`, and the key lists of the loader, the same
 * way.  An empty filter takes every tensor.
 */
typedef struct _UelTensorFilter UelTensorFilter;

GType             uel_tensor_filter_get_type  (void);
#define UEL_TYPE_TENSOR_FILTER (uel_tensor_filter_get_type ())

UelTensorFilter  *uel_tensor_filter_new       (void);
UelTensorFilter  *uel_tensor_filter_copy      (const UelTensorFilter * filter);
void              uel_tensor_filter_free      (UelTensorFilter * filter);

void              uel_tensor_filter_add_names (UelTensorFilter * filter,
                                               const gchar * spec);
void              uel_tensor_filter_add_name  (UelTensorFilter * filter,
                                               const gchar * name);
gboolean          uel_tensor_filter_set_dtypes (UelTensorFilter * filter,
                                               const gchar * spec,
                                               GError ** error);
void              uel_tensor_filter_set_ndim  (UelTensorFilter * filter,
                                               gint ndim);
gboolean          uel_tensor_filter_has_names (const UelTensorFilter * filter);

gboolean          uel_tensor_filter_matches   (const UelTensorFilter * filter,
                                               const UelTensorInfo * info);
GArray           *uel_tensor_filter_select    (const UelTensorFilter * filter,
                                               const UelHeader * header,
                                               guint64 * total_bytes,
                                               GError ** error);

gchar            *uel_tensor_name_escape      (const gchar * name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (UelTensorFilter, uel_tensor_filter_free)

G_END_DECLS
