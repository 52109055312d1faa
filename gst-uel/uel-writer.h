/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib-object.h>
#include <gst-uel/uel-dtype.h>
#include <gst-uel/uel-header.h>

G_BEGIN_DECLS

/**
 * UelWriter:
 *
 * Writes one `.safetensors` file whose tensor table is known before its
 * data: declare every tensor (uel_writer_add_tensor()) and the metadata
 * (uel_writer_set_metadata()), then write each tensor's bytes in any
 * order, whole or in pieces (uel_writer_write()), then
 * uel_writer_finish().
 *
 * The file is what the reference implementation (Hugging Face
 * `safetensors`, `save_file`) writes for the same tensors and metadata,
 * byte for byte: the tensors in the reference's order (dtype, from the
 * widest in its list of dtypes down, then name, bytewise), compact JSON
 * with `__metadata__` first and strings escaped as serde_json escapes them,
 * the header padded with spaces to a multiple of 8 bytes so that the data
 * section starts 8-byte aligned.  The reference writes metadata keys in
 * the order of a randomly seeded hash map; the writer sorts them
 * (bytewise), so that the same input gives the same file.
 *
 * Nothing is ever half-written under the final name: the bytes go to a
 * temporary file beside it (`.NAME.XXXXXX`, created by uel_writer_new()),
 * which uel_writer_finish() syncs to disk and renames over @location only
 * when every byte of every tensor has been written exactly once.  A writer
 * freed or aborted before that removes its temporary file, and whatever
 * was at @location stays as it was.
 *
 * With a maximum shard size (uel_writer_set_max_shard_size()) the tensors
 * are split over several such files and an index, named and laid out as
 * Hugging Face `transformers` writes a sharded checkpoint
 * (`model-00001-of-00003.safetensors` …, `model.safetensors.index.json`),
 * all of them put in place by uel_writer_finish() only once every one is
 * complete.
 *
 * Errors in the #UEL_ERROR domain say which rule a call broke and name the
 * file and the tensor; a refused declaration or write leaves the writer as
 * it was, to go on or to abort.  Errors of the file system (a missing or
 * read-only folder, a full disk) are in the #G_FILE_ERROR domain with the
 * code errno gives (%G_FILE_ERROR_NOENT, %G_FILE_ERROR_ACCES,
 * %G_FILE_ERROR_NOSPC …), as #UelHeader reports failures to open; after
 * one, the temporary file is gone and every later call fails with the
 * same error.
 *
 * When the table is not known before the data, the incremental mode
 * (uel_writer_new_incremental()) reserves a block for the header at the
 * start of the file and declares each tensor as it comes, placed after
 * the one before; uel_writer_finish() writes the header into the block,
 * padded with spaces.  The file is what `unifiedefficientloader` 0.5.x's
 * `IncrementalSafetensorsWriter` writes for the same sequence of tensors
 * and metadata, byte for byte.
 *
 * Declaring, uel_writer_write_header() and uel_writer_finish() belong to
 * one thread; uel_writer_write() may be called from several threads at
 * once (the bytes go out with pwrite(2), outside the writer's lock), in
 * the incremental mode while that thread declares more tensors.
 */
typedef struct _UelWriter UelWriter;

/**
 * UEL_WRITER_DEFAULT_HEADER_RESERVE:
 *
 * The header block an incremental writer reserves when given 0: 1 MiB,
 * the default of `IncrementalSafetensorsWriter`: room for some 8,000
 * tensors with names of 50 bytes (an entry of two dimensions and
 * gigabyte offsets takes about 80 bytes beside its name).
 */
#define UEL_WRITER_DEFAULT_HEADER_RESERVE (G_GUINT64_CONSTANT (1) << 20)

GType                uel_writer_get_type        (void);
#define UEL_TYPE_WRITER (uel_writer_get_type ())

UelWriter           *uel_writer_new             (const gchar * location,
                                                 GError ** error);
void                 uel_writer_free            (UelWriter * writer);
const gchar         *uel_writer_get_location    (const UelWriter * writer);

UelWriter           *uel_writer_new_incremental (const gchar * location,
                                                 guint64 reserve_bytes,
                                                 GError ** error);
gboolean             uel_writer_is_incremental  (const UelWriter * writer);
guint64              uel_writer_get_header_reserve (const UelWriter * writer);
gboolean             uel_writer_append_tensor   (UelWriter * writer,
                                                 const gchar * name,
                                                 UelDType dtype,
                                                 guint n_dims,
                                                 const guint64 * shape,
                                                 gconstpointer data,
                                                 gsize len,
                                                 GError ** error);

gboolean             uel_writer_add_tensor      (UelWriter * writer,
                                                 const gchar * name,
                                                 UelDType dtype,
                                                 guint n_dims,
                                                 const guint64 * shape,
                                                 GError ** error);
gboolean             uel_writer_set_metadata    (UelWriter * writer,
                                                 const gchar * key,
                                                 const gchar * value,
                                                 GError ** error);
guint64              uel_writer_get_total_bytes (const UelWriter * writer);

void                 uel_writer_set_max_shard_size (UelWriter * writer,
                                                 guint64 max_bytes);
guint64              uel_writer_get_max_shard_size (const UelWriter * writer);

gboolean             uel_writer_write_header    (UelWriter * writer,
                                                 GError ** error);
guint                uel_writer_get_n_files     (const UelWriter * writer);
const gchar         *uel_writer_get_file_path   (const UelWriter * writer,
                                                 guint file_index);
gchar               *uel_writer_dup_index_path  (const UelWriter * writer);
guint                uel_writer_get_n_tensors   (const UelWriter * writer);
const UelTensorInfo *uel_writer_get_tensor      (const UelWriter * writer,
                                                 guint index);
const UelTensorInfo *uel_writer_lookup          (const UelWriter * writer,
                                                 const gchar * name,
                                                 guint * index);

gboolean             uel_writer_write           (UelWriter * writer,
                                                 const gchar * name,
                                                 guint64 offset,
                                                 gconstpointer data,
                                                 gsize len,
                                                 GError ** error);
gboolean             uel_writer_write_zeros     (UelWriter * writer,
                                                 const gchar * name,
                                                 guint64 offset,
                                                 guint64 len,
                                                 GError ** error);
gboolean             uel_writer_write_tensor    (UelWriter * writer,
                                                 const gchar * name,
                                                 gconstpointer data,
                                                 gsize len,
                                                 GError ** error);

gboolean             uel_writer_finish          (UelWriter * writer,
                                                 GError ** error);
void                 uel_writer_abort           (UelWriter * writer);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (UelWriter, uel_writer_free)

G_END_DECLS
