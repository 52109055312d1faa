/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>
#include <gst-uel/uel-header.h>

G_BEGIN_DECLS

/**
 * UelReadMethod:
 * @UEL_READ_PREAD: pread(2) into recycled host memory, or the allocator
 *   given with uel_reader_set_allocator()
 * @UEL_READ_MMAP: zero-copy buffers over a read-only shared mapping of the
 *   file; a tensor whose bytes are not aligned for its dtype is read
 *   instead.  The buffers are views of the file: a file changed afterwards
 *   changes them too, and a file truncated under them kills the process
 *   with SIGBUS.  Use it for files that nobody writes.
 * @UEL_READ_DIRECT: O_DIRECT reads with aligned offsets, sizes and memory,
 *   bypassing the page cache; buffered reads where the file system refuses
 *   O_DIRECT
 *
 * How a #UelReader reads tensors.
 */
typedef enum
{
  UEL_READ_PREAD,
  UEL_READ_MMAP,
  UEL_READ_DIRECT,
} UelReadMethod;

GType uel_read_method_get_type (void);
#define UEL_TYPE_READ_METHOD (uel_read_method_get_type ())

/**
 * UelReader:
 *
 * The reading engine: reads the tensors of a #UelHeader, in stream order,
 * into #GstBuffers with their #UelTensorMeta.  `uelsrc`, the loader and
 * the tool all read through it.
 */
#define UEL_TYPE_READER (uel_reader_get_type ())
G_DECLARE_FINAL_TYPE (UelReader, uel_reader, UEL, READER, GObject)

/**
 * UEL_READER_PART_SIZE:
 *
 * Large reads go to the I/O threads in parts of this many bytes.
 */
#define UEL_READER_PART_SIZE ((gsize) 8 << 20)

UelReader     *uel_reader_new                (UelHeader * header);
UelHeader     *uel_reader_get_header         (UelReader * reader);

void           uel_reader_set_tensors        (UelReader * reader,
                                              const guint * indices,
                                              guint n_indices);
guint          uel_reader_get_n_tensors      (UelReader * reader);
const guint   *uel_reader_get_tensors        (UelReader * reader);
guint64        uel_reader_get_total_bytes    (UelReader * reader);
void           uel_reader_set_method         (UelReader * reader,
                                              UelReadMethod method);
void           uel_reader_set_io_threads     (UelReader * reader,
                                              guint n_threads);
void           uel_reader_set_chunk_size     (UelReader * reader,
                                              guint64 chunk_size);
void           uel_reader_set_read_ahead     (UelReader * reader,
                                              guint64 bytes);
void           uel_reader_set_max_buffers    (UelReader * reader,
                                              gint max_buffers);
void           uel_reader_set_max_open_files (UelReader * reader,
                                              guint max_open);
guint          uel_reader_get_max_open_files (UelReader * reader);
void           uel_reader_set_allocator      (UelReader * reader,
                                              GstAllocator * allocator,
                                              const GstAllocationParams * params);

gboolean       uel_reader_start              (UelReader * reader,
                                              GError ** error);
GstBuffer     *uel_reader_next               (UelReader * reader,
                                              GError ** error);
void           uel_reader_set_flushing       (UelReader * reader,
                                              gboolean flushing);
void           uel_reader_stop               (UelReader * reader);
gboolean       uel_reader_is_started         (UelReader * reader);

GstBuffer     *uel_reader_read_tensor        (UelReader * reader,
                                              guint tensor_index,
                                              GError ** error);
guint          uel_reader_get_n_open_files   (UelReader * reader);

G_END_DECLS
