/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * UEL_ERROR:
 *
 * The error domain of libgstuel.  Every rejection of a file carries one of
 * the #UelError codes, and a message naming the file, the tensor (where there
 * is one), the rule and the numbers involved.
 */
#define UEL_ERROR (uel_error_quark ())
GQuark uel_error_quark (void);

/**
 * UelError:
 * @UEL_ERROR_FILE_TOO_SMALL: rule 1: the file is shorter than the 8-byte
 *   header length.
 * @UEL_ERROR_HEADER_TOO_LARGE: rule 2: the header length is larger than
 *   100,000,000 bytes (checked before the file size); or, writing, the
 *   header of the declared table would be, or an incremental writer's
 *   header would outgrow the block reserved for it.
 * @UEL_ERROR_HEADER_TRUNCATED: rule 3: 8 + header length runs past the end
 *   of the file.
 * @UEL_ERROR_HEADER_NOT_UTF8: rule 4: the header is not valid UTF-8.
 * @UEL_ERROR_HEADER_NOT_JSON: rule 5: the header is not one strict JSON
 *   value (syntax error, trailing bytes, nesting beyond
 *   %UEL_JSON_MAX_DEPTH).
 * @UEL_ERROR_HEADER_NOT_OBJECT: rule 5: the header's JSON value is not an
 *   object.
 * @UEL_ERROR_INVALID_METADATA: rule 6: `__metadata__` is neither absent,
 *   null, nor an object mapping strings to strings; or, writing, a key or
 *   value is not UTF-8.
 * @UEL_ERROR_INVALID_TENSOR_ENTRY: rule 7: a tensor entry is not an object,
 *   lacks `dtype`, `shape` or `data_offsets`, or repeats one of them.
 * @UEL_ERROR_UNKNOWN_DTYPE: rule 7: `dtype` is not one of the 22 names of
 *   the format (case-sensitive); or, writing, not a #UelDType.
 * @UEL_ERROR_INVALID_SHAPE: rule 7: `shape` is not an array of integers in
 *   [0, 2^64).
 * @UEL_ERROR_INVALID_OFFSETS: rule 7: `data_offsets` is not an array of
 *   exactly two integers in [0, 2^64).
 * @UEL_ERROR_DUPLICATE_TENSOR: a tensor name appears twice (our choice: the
 *   format forbids it; we reject rather than keep the last), or is
 *   declared twice to a #UelWriter.
 * @UEL_ERROR_INVALID_TENSOR_NAME: a tensor name is empty of meaning to C: it
 *   contains a NUL character (our choice); or, writing, a name a reader
 *   would refuse or misread: not UTF-8, or `__metadata__`.
 * @UEL_ERROR_OFFSETS_NOT_CONTIGUOUS: rule 8: sorted by (begin, end), the
 *   tensors do not tile the data section from 0 (a gap, an overlap, a shared
 *   or a reversed range).
 * @UEL_ERROR_SIZE_OVERFLOW: rule 9: element count × bits overflows 64 bits;
 *   or, writing, the data section would be larger than a file can be.
 * @UEL_ERROR_PARTIAL_BYTE: rule 10: the tensor's size in bits is not a
 *   multiple of 8.
 * @UEL_ERROR_SIZE_MISMATCH: rule 11: end − begin differs from the byte size
 *   given by dtype and shape; or, writing a whole tensor, the bytes given
 *   differ from that size.
 * @UEL_ERROR_FILE_SIZE_MISMATCH: rule 12: 8 + header length + the last end
 *   differs from the file size (trailing bytes or truncation).
 * @UEL_ERROR_INVALID_INDEX: a sharded checkpoint's `*.index.json` is not a
 *   JSON object with a non-empty `weight_map` object of tensor name → shard
 *   file name (and an optional `metadata` object).
 * @UEL_ERROR_INVALID_SHARD_PATH: a shard file name is absolute, contains
 *   `..`, a directory separator, or is empty: shards must sit in the index's
 *   folder.
 * @UEL_ERROR_SHARD_MISSING_TENSOR: a tensor of the index's `weight_map` is
 *   not in the shard the index names.
 * @UEL_ERROR_IO: the file could not be read (the message carries errno's
 *   text); opening errors are reported in the #G_FILE_ERROR domain instead.
 * @UEL_ERROR_FILE_CHANGED: the file changed after its header was validated:
 *   it shrank under a read, or its inode, size or modification time differ.
 * @UEL_ERROR_INVALID_ARGUMENT: a caller's argument is out of range.
 * @UEL_ERROR_DICT_NOT_U8: a dictionary tensor's dtype is not `U8`.
 * @UEL_ERROR_DICT_NOT_1D: a dictionary tensor does not have exactly one
 *   dimension.
 * @UEL_ERROR_DICT_NOT_UTF8: a dictionary tensor's bytes are not UTF-8 (or,
 *   when writing, a string or member name is not).
 * @UEL_ERROR_DICT_NOT_JSON: a dictionary tensor's text is not one strict
 *   JSON value (or, when writing, holds NaN or an infinity).
 * @UEL_ERROR_DICT_NOT_OBJECT: a dictionary tensor's JSON value is not an
 *   object.
 * @UEL_ERROR_DICT_TOO_DEEP: a dictionary nests arrays and objects deeper
 *   than %UEL_DICT_MAX_DEPTH.
 * @UEL_ERROR_DICT_TOO_LARGE: a dictionary tensor is larger than
 *   %UEL_DICT_MAX_SIZE bytes.
 * @UEL_ERROR_DICT_CHUNKED: a dictionary tensor arrived in chunks that
 *   cannot be assembled (a buffer holding only a chunk, chunks missing, out
 *   of order, or a stream ending before the last chunk).
 * @UEL_ERROR_CUDA: the CUDA runtime failed or there is no usable device
 *   (no driver, no device, a bad device id); the message carries CUDA's own
 *   error name, code and text.
 * @UEL_ERROR_NO_MEMORY: memory could not be had: a tensor's host memory, a
 *   pinned pool that cannot be mapped or faulted in, a tensor larger than
 *   the address space.
 * @UEL_ERROR_UNKNOWN_TENSOR: a #UelWriter was given bytes for a tensor that
 *   was not declared.
 * @UEL_ERROR_WRITE_OUT_OF_RANGE: a #UelWriter was given bytes past the end
 *   of their tensor.
 * @UEL_ERROR_WRITE_OVERLAP: a #UelWriter was given bytes of a tensor that
 *   were already written: each byte is written exactly once.
 * @UEL_ERROR_INCOMPLETE: a #UelWriter was finished before every byte of
 *   every tensor was written.
 *
 * One code per distinct failure.  The rules are numbered as in the
 * safetensors reference implementation's order of checks.
 */
typedef enum
{
  UEL_ERROR_FILE_TOO_SMALL = 1,
  UEL_ERROR_HEADER_TOO_LARGE,
  UEL_ERROR_HEADER_TRUNCATED,
  UEL_ERROR_HEADER_NOT_UTF8,
  UEL_ERROR_HEADER_NOT_JSON,
  UEL_ERROR_HEADER_NOT_OBJECT,
  UEL_ERROR_INVALID_METADATA,
  UEL_ERROR_INVALID_TENSOR_ENTRY,
  UEL_ERROR_UNKNOWN_DTYPE,
  UEL_ERROR_INVALID_SHAPE,
  UEL_ERROR_INVALID_OFFSETS,
  UEL_ERROR_DUPLICATE_TENSOR,
  UEL_ERROR_INVALID_TENSOR_NAME,
  UEL_ERROR_OFFSETS_NOT_CONTIGUOUS,
  UEL_ERROR_SIZE_OVERFLOW,
  UEL_ERROR_PARTIAL_BYTE,
  UEL_ERROR_SIZE_MISMATCH,
  UEL_ERROR_FILE_SIZE_MISMATCH,
  UEL_ERROR_INVALID_INDEX,
  UEL_ERROR_INVALID_SHARD_PATH,
  UEL_ERROR_SHARD_MISSING_TENSOR,
  UEL_ERROR_IO,
  UEL_ERROR_FILE_CHANGED,
  UEL_ERROR_INVALID_ARGUMENT,
  UEL_ERROR_DICT_NOT_U8,
  UEL_ERROR_DICT_NOT_1D,
  UEL_ERROR_DICT_NOT_UTF8,
  UEL_ERROR_DICT_NOT_JSON,
  UEL_ERROR_DICT_NOT_OBJECT,
  UEL_ERROR_DICT_TOO_DEEP,
  UEL_ERROR_DICT_TOO_LARGE,
  UEL_ERROR_DICT_CHUNKED,
  UEL_ERROR_CUDA,
  UEL_ERROR_NO_MEMORY,
  UEL_ERROR_UNKNOWN_TENSOR,
  UEL_ERROR_WRITE_OUT_OF_RANGE,
  UEL_ERROR_WRITE_OVERLAP,
  UEL_ERROR_INCOMPLETE,
} UelError;

G_END_DECLS
