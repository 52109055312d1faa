/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>
#include <gst-uel/uel-header.h>

G_BEGIN_DECLS

/**
 * UEL_TENSOR_CAPS:
 *
 * The caps of every tensor stream: constant for the stream, what differs
 * per tensor travels in #UelTensorMeta.
 */
#define UEL_TENSOR_MEDIA_TYPE "other/x-uel-tensor"
#define UEL_TENSOR_CAPS UEL_TENSOR_MEDIA_TYPE

/**
 * UEL_CAPS_FEATURE_MEMORY_PINNED:
 *
 * Caps feature of streams whose buffers live in pinned (page-locked) host
 * memory, as `uelpin` negotiates it when a device pinned its pool (without
 * a device it negotiates system memory).
 */
#define UEL_CAPS_FEATURE_MEMORY_PINNED "memory:UelPinned"

/**
 * UEL_CAPS_FEATURE_MEMORY_CUDA:
 *
 * Caps feature of streams whose buffers live in CUDA device memory.
 */
#define UEL_CAPS_FEATURE_MEMORY_CUDA "memory:UelCUDA"

/**
 * UelTensorMeta:
 * @meta: the parent #GstMeta
 * @header: the table the tensor comes from (a reference is held)
 * @tensor_index: the tensor's position in @header
 * @index: the tensor's position in this stream (after selection)
 * @count: the number of tensors in this stream
 * @dtype: the element type of the bytes in this buffer (differs from the
 *   header's when an element converted them)
 * @n_bytes: the whole tensor's size in bytes, in @dtype
 * @chunk_offset: where this buffer's bytes start within the tensor
 * @chunk_index: the chunk's number, 0 for whole tensors
 * @last_chunk: whether this buffer ends the tensor (%TRUE for whole tensors)
 *
 * The per-tensor description attached to every tensor buffer.  The name,
 * shape, file and offsets come from the header's #UelTensorInfo; use the
 * accessors below.
 */
typedef struct
{
  GstMeta meta;

  UelHeader *header;
  guint tensor_index;
  guint index;
  guint count;
  UelDType dtype;
  guint64 n_bytes;
  guint64 chunk_offset;
  guint chunk_index;
  gboolean last_chunk;
} UelTensorMeta;

GType uel_tensor_meta_api_get_type (void);
#define UEL_TENSOR_META_API_TYPE (uel_tensor_meta_api_get_type ())
const GstMetaInfo *uel_tensor_meta_get_info (void);

UelTensorMeta       *uel_buffer_add_tensor_meta      (GstBuffer * buffer,
                                                      UelHeader * header,
                                                      guint tensor_index,
                                                      guint index,
                                                      guint count);
UelTensorMeta       *uel_buffer_get_tensor_meta      (GstBuffer * buffer);

const UelTensorInfo *uel_tensor_meta_get_tensor_info (const UelTensorMeta * meta);
const gchar         *uel_tensor_meta_get_name        (const UelTensorMeta * meta);
const guint64       *uel_tensor_meta_get_shape       (const UelTensorMeta * meta,
                                                      guint * n_dims);
guint64              uel_tensor_meta_get_file_offset (const UelTensorMeta * meta);
const gchar         *uel_tensor_meta_get_file        (const UelTensorMeta * meta);
gboolean             uel_tensor_meta_is_next_chunk   (const UelTensorMeta * meta,
                                                      gsize size,
                                                      guint64 expected_offset);

/**
 * UEL_BUFFER_OVERHEAD:
 *
 * The bytes uel_buffer_get_footprint() counts for a #GstBuffer and its
 * metas, beside its memories.
 */
#define UEL_BUFFER_OVERHEAD 448
/**
 * UEL_MEMORY_OVERHEAD:
 *
 * The bytes uel_buffer_get_footprint() counts for each memory's struct,
 * alignment and allocator bookkeeping, beside its allocated size.
 */
#define UEL_MEMORY_OVERHEAD 256

guint64              uel_buffer_get_footprint        (GstBuffer * buffer);

/* the header, downstream (sticky event) and to the application (message) */

/**
 * UEL_HEADER_STRUCTURE_NAME:
 *
 * Name of the structure of the sticky event and of the element message
 * that carry a stream's header: fields `location` (string), `n-tensors`
 * (guint, tensors in the stream after selection), `total-bytes` (guint64,
 * their bytes), `n-files` (guint), `metadata` (string: the `__metadata__`
 * map as one JSON object, see uel_header_get_metadata_json()) and
 * `header` (#UelHeader); the event of uel_header_event_new_full() also
 * has `tensors` and `dtypes` (which tensors, in which dtypes).
 */
#define UEL_HEADER_STRUCTURE_NAME "uel-header"

GstStructure *uel_header_structure_new      (UelHeader * header,
                                             guint n_tensors,
                                             guint64 total_bytes);
GstEvent     *uel_header_event_new          (UelHeader * header,
                                             guint n_tensors,
                                             guint64 total_bytes);
GstEvent     *uel_header_event_new_full     (UelHeader * header,
                                             guint n_tensors,
                                             const guint * tensors,
                                             const UelDType * dtypes,
                                             guint64 total_bytes);
gboolean      uel_header_event_parse        (GstEvent * event,
                                             UelHeader ** header);
gboolean      uel_header_event_parse_table  (GstEvent * event,
                                             guint * n_tensors,
                                             guint ** tensors,
                                             UelDType ** dtypes);
gboolean      uel_header_message_parse      (GstMessage * message,
                                             UelHeader ** header);

G_END_DECLS
