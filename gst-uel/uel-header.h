/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib-object.h>
#include <gst-uel/uel-dtype.h>

G_BEGIN_DECLS

/**
 * UEL_MAX_HEADER_SIZE:
 *
 * The largest header length accepted, in bytes: 100,000,000, as in the
 * reference implementation.  The same limit applies to `*.index.json` files.
 */
#define UEL_MAX_HEADER_SIZE G_GUINT64_CONSTANT (100000000)

/**
 * UelTensorInfo:
 * @name: the tensor's name: UTF-8 without NUL characters
 * @dtype: the element type
 * @n_dims: the rank; 0 for a scalar (which holds one element)
 * @shape: (array length=n_dims): the dimensions
 * @n_elements: the product of @shape
 * @n_bytes: the tensor's size in bytes
 * @data_begin: offset of the first byte in the file's data section
 * @file_offset: absolute byte offset of the first byte in its file
 * @file_index: which of the header's files holds the tensor (0 unless the
 *   header describes a sharded checkpoint)
 *
 * One entry of a validated tensor table.  Every number in it has been
 * checked against the file, so @file_offset + @n_bytes never exceeds the
 * file's size.
 */
typedef struct
{
  const gchar *name;
  UelDType dtype;
  guint n_dims;
  const guint64 *shape;
  guint64 n_elements;
  guint64 n_bytes;
  guint64 data_begin;
  guint64 file_offset;
  guint file_index;
} UelTensorInfo;

GType          uel_tensor_info_get_type  (void);
#define UEL_TYPE_TENSOR_INFO (uel_tensor_info_get_type ())

UelTensorInfo *uel_tensor_info_copy      (const UelTensorInfo * info);
void           uel_tensor_info_free      (UelTensorInfo * info);
const guint64 *uel_tensor_info_get_shape (const UelTensorInfo * info,
                                          guint * n_dims);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (UelTensorInfo, uel_tensor_info_free)

/**
 * UelHeader:
 *
 * A validated safetensors header, or the union of the headers of a sharded
 * checkpoint: the tensor table in stream order (file order; for sharded
 * checkpoints, shard by shard in the order of their names), the
 * `__metadata__` map and the totals.  Immutable and reference-counted, so
 * it can be shared by elements, events and messages across threads.
 *
 * Parsing follows the safetensors reference implementation's rules in its
 * order, with two deliberate choices of ours: a tensor name that appears
 * twice is rejected (%UEL_ERROR_DUPLICATE_TENSOR; the format forbids
 * duplicates and being explicit beats keeping the last one), and a name
 * containing NUL is rejected (%UEL_ERROR_INVALID_TENSOR_NAME).  Names are
 * otherwise any UTF-8.  Duplicate keys inside a tensor entry or inside
 * `__metadata__` are rejected as well.  Zero-size tensors may share an
 * offset, as the reference allows.
 */
typedef struct _UelHeader UelHeader;

GType uel_header_get_type (void);
#define UEL_TYPE_HEADER (uel_header_get_type ())

UelHeader           *uel_header_open            (const gchar * location,
                                                 GError ** error);
UelHeader           *uel_header_new_from_fd     (gint fd,
                                                 const gchar * path,
                                                 GError ** error);
UelHeader           *uel_header_ref             (UelHeader * header);
void                 uel_header_unref           (UelHeader * header);

const gchar         *uel_header_get_location    (const UelHeader * header);
gboolean             uel_header_is_sharded      (const UelHeader * header);
guint                uel_header_get_n_tensors   (const UelHeader * header);
const UelTensorInfo *uel_header_get_tensor      (const UelHeader * header,
                                                 guint index);
const UelTensorInfo *uel_header_lookup          (const UelHeader * header,
                                                 const gchar * name,
                                                 guint * index);
GHashTable          *uel_header_get_metadata    (const UelHeader * header);
gchar               *uel_header_get_metadata_json (const UelHeader * header);
guint64              uel_header_get_total_bytes (const UelHeader * header);

guint                uel_header_get_n_files     (const UelHeader * header);
const gchar         *uel_header_get_file_path   (const UelHeader * header,
                                                 guint file_index);
guint64              uel_header_get_file_size   (const UelHeader * header,
                                                 guint file_index);
guint64              uel_header_get_data_offset (const UelHeader * header,
                                                 guint file_index);
gint                 uel_header_open_file       (const UelHeader * header,
                                                 guint file_index,
                                                 gint flags,
                                                 GError ** error);
gboolean             uel_header_check_file      (const UelHeader * header,
                                                 guint file_index,
                                                 gint fd,
                                                 GError ** error);

guint64              uel_header_get_bytes_fetched (const UelHeader * header);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (UelHeader, uel_header_unref)

G_END_DECLS
