/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "uel-error.h"
#include "uel-json-private.h"
#include "uel-writer.h"

/* The reference's dtype order: the declaration order of its `Dtype` enum
 * (safetensors/src/tensor.rs), which derives Ord.  Its writer sorts the
 * tensors by that order, descending, then by name; UelDType lists the
 * dtypes in another order (F4 and F6 with the floats). */
static const guint8 reference_rank[UEL_DTYPE_N_TYPES] = {
  [UEL_DTYPE_BOOL] = 0,
  [UEL_DTYPE_F4] = 1,
  [UEL_DTYPE_F6_E2M3] = 2,
  [UEL_DTYPE_F6_E3M2] = 3,
  [UEL_DTYPE_U8] = 4,
  [UEL_DTYPE_I8] = 5,
  [UEL_DTYPE_F8_E5M2] = 6,
  [UEL_DTYPE_F8_E4M3] = 7,
  [UEL_DTYPE_F8_E8M0] = 8,
  [UEL_DTYPE_F8_E4M3FNUZ] = 9,
  [UEL_DTYPE_F8_E5M2FNUZ] = 10,
  [UEL_DTYPE_I16] = 11,
  [UEL_DTYPE_U16] = 12,
  [UEL_DTYPE_F16] = 13,
  [UEL_DTYPE_BF16] = 14,
  [UEL_DTYPE_I32] = 15,
  [UEL_DTYPE_U32] = 16,
  [UEL_DTYPE_F32] = 17,
  [UEL_DTYPE_C64] = 18,
  [UEL_DTYPE_F64] = 19,
  [UEL_DTYPE_I64] = 20,
  [UEL_DTYPE_U64] = 21,
};

/* The reference pads its header to a multiple of this (N_LEN) */
#define HEADER_ALIGN 8

/* The largest data section accepted: any header still fits before it in a
 * file whose size an off_t holds. */
#define MAX_DATA_BYTES \
  ((guint64) G_MAXINT64 - 8 - UEL_MAX_HEADER_SIZE)

/* Linux transfers at most this many bytes per write call */
#define MAX_IO ((gsize) 0x7ffff000)

typedef struct
{
  guint64 begin;
  guint64 end;
} Range;

/* One file of the output: the only one unless a maximum shard size splits
 * the tensors over several. */
typedef struct
{
  gchar *path;                  /* its final name */
  gchar *tmp_path;              /* NULL once removed or renamed */
  gint fd;
  guint64 data_offset;          /* 8 + header length, once written */
  guint first;                  /* its tensors, in file order */
  guint n_tensors;
  guint64 n_bytes;              /* its data section */
} Shard;

typedef struct
{
  UelTensorInfo info;           /* shape set when the header is written */
  guint shape_start;            /* in dims */
  guint64 written;              /* bytes of the tensor written so far */
  GArray *ranges;               /* Range: what was written, sorted, merged;
                                 * NULL while nothing or everything is */
  guint64 *own_shape;           /* incremental: the shape (dims grows) */
} Tensor;

typedef enum
{
  STATE_DECLARING,
  STATE_WRITING,
  STATE_FAILED,
  STATE_FINISHED,
  STATE_ABORTED,
} State;

struct _UelWriter
{
  gint ref_count;               /* 1; bindings' copies of the boxed value
                                 * take more */
  gchar *location;
  GArray *shards;               /* Shard: one until the header is written */
  gchar *index_tmp;             /* the index's temporary file, while there */
  guint64 max_shard_size;       /* 0: one file */
  GMutex lock;
  State state;
  GError *failure;              /* what made the writer fail */
  GArray *tensors;              /* Tensor: declaration order, then file order */
  GArray *dims;                 /* guint64: every tensor's shape */
  GStringChunk *names;
  GHashTable *by_name;          /* name -> index in tensors + 1 */
  GHashTable *metadata;         /* gchar * -> gchar *, owned */
  guint64 total_bytes;

  /* incremental mode: reserve > 0 */
  guint64 reserve;              /* the header block, a multiple of 8 */
  GPtrArray *metadata_order;    /* gchar *, owned: keys as first set */
  GString *entries;             /* the tensors' JSON entries, joined */
  gsize metadata_len;           /* of "__metadata__":{...}, 0 without */
};

static void
tensor_clear (gpointer p)
{
  Tensor *t = p;

  g_clear_pointer (&t->ranges, g_array_unref);
  g_clear_pointer (&t->own_shape, g_free);
}

/* A name for messages: at most 64 bytes of it, in quotes, with control
 * characters, quotes and backslashes escaped and UTF-8 kept readable (made
 * valid: a name refused for not being UTF-8 is printed too).  Only error
 * paths call it. */
static gchar *
quote_name (const gchar * name)
{
  gsize len = strlen (name), cut = MIN (len, 64);
  g_autofree gchar *valid = NULL;
  GString *out = g_string_new ("'");

  while (cut < len && cut > 0 && ((guchar) name[cut] & 0xc0) == 0x80)
    cut--;
  valid = g_utf8_make_valid (name, (gssize) cut);
  for (const guchar * p = (const guchar *) valid; *p; p++) {
    if (*p == '\\' || *p == '\'')
      g_string_append_printf (out, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      g_string_append_printf (out, "\\x%02x", *p);
    else
      g_string_append_c (out, (gchar) * p);
  }
  g_string_append (out, cut < len ? "'…" : "'");
  return g_string_free (out, FALSE);
}

static gboolean
errno_error (GError ** error, gint err, const gchar * format, ...)
    G_GNUC_PRINTF (3, 4);

static gboolean
errno_error (GError ** error, gint err, const gchar * format, ...)
{
  va_list args;
  g_autofree gchar *what = NULL;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (err), "%s: %s",
      what, g_strerror (err));
  return FALSE;
}

/* Creates the temporary file that becomes @path: `.NAME.XXXXXX` beside
 * it, hidden, and named after the file it will be, so that one left by a
 * crash says what it was. */
static gint
create_tmp (const gchar * path, gchar ** tmp_path, GError ** error)
{
  g_autofree gchar *dir = g_path_get_dirname (path);
  g_autofree gchar *base = g_path_get_basename (path);
  gchar *tmpl;
  gint fd;

  /* room for ".", ".XXXXXX" within a file name's 255 bytes */
  if (strlen (base) > 200)
    base[200] = '\0';
  tmpl = g_strdup_printf ("%s/.%s.XXXXXX", dir, base);
  fd = g_mkstemp_full (tmpl, O_RDWR | O_CLOEXEC, 0666);
  if (fd < 0) {
    gint err = errno;

    g_free (tmpl);
    errno_error (error, err, "%s: cannot create a temporary file in %s",
        path, dir);
    return -1;
  }
  *tmp_path = tmpl;
  return fd;
}

/**
 * uel_writer_new:
 * @location: the file to write; an existing file there is replaced by
 *   uel_writer_finish(), and only then
 * @error: return location for a #GError
 *
 * Creates the temporary file the data go to, in @location's folder, with
 * the permissions a new file gets there (0666 less the umask).  A folder
 * that does not exist or cannot be written to fails here, before any work
 * is done.
 *
 * Returns: (transfer full) (nullable): a new writer, or %NULL with @error
 *   set in the #G_FILE_ERROR domain (%G_FILE_ERROR_NOENT,
 *   %G_FILE_ERROR_ACCES, %G_FILE_ERROR_ISDIR when @location is a folder …)
 */
UelWriter *
uel_writer_new (const gchar * location, GError ** error)
{
  Shard shard = { 0 };
  UelWriter *w;
  GStatBuf st;

  g_return_val_if_fail (location != NULL, NULL);

  if (g_stat (location, &st) == 0 && S_ISDIR (st.st_mode)) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_ISDIR,
        "%s: is a folder, not a file to write", location);
    return NULL;
  }
  shard.fd = create_tmp (location, &shard.tmp_path, error);
  if (shard.fd < 0)
    return NULL;
  shard.path = g_strdup (location);

  w = g_new0 (UelWriter, 1);
  w->ref_count = 1;
  w->location = g_strdup (location);
  w->shards = g_array_new (FALSE, TRUE, sizeof (Shard));
  g_array_append_val (w->shards, shard);
  g_mutex_init (&w->lock);
  w->state = STATE_DECLARING;
  w->tensors = g_array_new (FALSE, TRUE, sizeof (Tensor));
  g_array_set_clear_func (w->tensors, tensor_clear);
  w->dims = g_array_new (FALSE, FALSE, sizeof (guint64));
  w->names = g_string_chunk_new (4096);
  w->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  w->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      g_free);
  return w;
}

/* Removes the temporary file, if it is still there. */
static void
remove_tmp (UelWriter * w)
{
  for (guint i = 0; i < w->shards->len; i++) {
    Shard *sh = &g_array_index (w->shards, Shard, i);

    if (sh->tmp_path) {
      g_unlink (sh->tmp_path);
      g_clear_pointer (&sh->tmp_path, g_free);
    }
  }
  if (w->index_tmp) {
    g_unlink (w->index_tmp);
    g_clear_pointer (&w->index_tmp, g_free);
  }
}

static void
close_files (UelWriter * w)
{
  for (guint i = 0; i < w->shards->len; i++) {
    Shard *sh = &g_array_index (w->shards, Shard, i);

    if (sh->fd >= 0) {
      close (sh->fd);
      sh->fd = -1;
    }
  }
}

/* Under the lock: the writer fails with @error (taken), its temporary file
 * removed at once so that a full disk gets its space back; the descriptor
 * stays open until uel_writer_free(), for writes still under way in other
 * threads. */
static gboolean
fail (UelWriter * w, GError * err, GError ** error)
{
  if (w->state != STATE_FAILED) {
    w->state = STATE_FAILED;
    w->failure = g_error_copy (err);
    remove_tmp (w);
  }
  g_propagate_error (error, err);
  return FALSE;
}

/* the error that made the writer fail, again */
static gboolean
failed (UelWriter * w, GError ** error)
{
  if (error)
    *error = g_error_copy (w->failure);
  return FALSE;
}

/**
 * uel_writer_abort:
 * @writer: a #UelWriter
 *
 * Gives up: removes the temporary file and closes it, leaving @location as
 * it was.  Nothing is left to do but uel_writer_free(), which aborts by
 * itself a writer that did not finish.  Does nothing after
 * uel_writer_finish() succeeded.
 */
void
uel_writer_abort (UelWriter * writer)
{
  g_return_if_fail (writer != NULL);

  g_mutex_lock (&writer->lock);
  if (writer->state != STATE_FINISHED) {
    writer->state = STATE_ABORTED;
    remove_tmp (writer);
    close_files (writer);
  }
  g_mutex_unlock (&writer->lock);
}

/* A writer owns a temporary file and cannot be duplicated: copying the
 * boxed value (bindings, GValues) takes another reference instead. */
static UelWriter *
writer_ref (UelWriter * writer)
{
  g_atomic_int_inc (&writer->ref_count);
  return writer;
}

G_DEFINE_BOXED_TYPE (UelWriter, uel_writer, writer_ref, uel_writer_free);

/**
 * uel_writer_free: (skip)
 * @writer: (transfer full): a #UelWriter
 *
 * Frees the writer; one that did not finish is aborted first (its
 * temporary file removed, @location left as it was).  (A binding's copies
 * of the boxed value are references: the last one gone frees it.)
 */
void
uel_writer_free (UelWriter * writer)
{
  if (!writer || !g_atomic_int_dec_and_test (&writer->ref_count))
    return;
  uel_writer_abort (writer);
  g_mutex_clear (&writer->lock);
  g_free (writer->location);
  for (guint i = 0; i < writer->shards->len; i++)
    g_free (g_array_index (writer->shards, Shard, i).path);
  g_array_unref (writer->shards);
  g_clear_error (&writer->failure);
  g_array_unref (writer->tensors);
  g_array_unref (writer->dims);
  g_string_chunk_free (writer->names);
  g_hash_table_unref (writer->by_name);
  g_hash_table_unref (writer->metadata);
  g_clear_pointer (&writer->metadata_order, g_ptr_array_unref);
  if (writer->entries)
    g_string_free (writer->entries, TRUE);
  g_free (writer);
}

/**
 * uel_writer_get_location:
 * @writer: a #UelWriter
 *
 * Returns: the path the file gets when it is finished
 */
const gchar *
uel_writer_get_location (const UelWriter * writer)
{
  g_return_val_if_fail (writer != NULL, NULL);
  return writer->location;
}

/**
 * uel_writer_new_incremental:
 * @location: the file to write; an existing file there is replaced by
 *   uel_writer_finish(), and only then
 * @reserve_bytes: the room for the header, in bytes, rounded up to a
 *   multiple of 8; 0 for %UEL_WRITER_DEFAULT_HEADER_RESERVE
 * @error: return location for a #GError
 *
 * Creates a writer for a table that is not known before the data, as
 * uel_writer_new() creates one (the same temporary file, the same errors),
 * with the first @reserve_bytes bytes after the 8-byte header length set
 * aside for the header.  Each tensor is declared when it comes, with
 * uel_writer_add_tensor() or uel_writer_append_tensor(), and placed right
 * after the tensors declared before it; its bytes are written as in the
 * other mode (uel_writer_write(), in pieces, in any order, from several
 * threads).  Metadata may be set at any time before uel_writer_finish().
 *
 * uel_writer_finish() writes the header into the reserved block: compact
 * JSON, `__metadata__` first (its keys in the order they were first set)
 * then the tensors in the order they were declared, every character
 * outside ASCII ' ' to '~' escaped as `\uXXXX`, padded with spaces at its
 * end to fill the block; the header length is the size of the block.
 * This is what `unifiedefficientloader` 0.5.x's
 * `IncrementalSafetensorsWriter (location, metadata,
 * max_header_bytes=reserve_bytes)` writes for the same calls, byte for
 * byte.  Unlike it, the header is checked against the block as the table
 * grows (a declaration or a metadata entry that would not fit is refused
 * with %UEL_ERROR_HEADER_TOO_LARGE, naming both sizes, and the writer is
 * left as it was), and the file goes through a temporary file renamed at
 * the end, as in the other mode, where the Python writer fills the final
 * name as it goes (and leaves a file with an empty header there when it
 * fails).
 *
 * Sharding (uel_writer_set_max_shard_size()) needs the table first and is
 * not available.  The tensor infos returned by uel_writer_get_tensor() and
 * uel_writer_lookup() stay valid until the next declaration.
 *
 * Returns: (transfer full) (nullable): a new writer, or %NULL with @error
 *   set: a #G_FILE_ERROR as uel_writer_new(), or %UEL_ERROR_INVALID_ARGUMENT
 *   for a @reserve_bytes over %UEL_MAX_HEADER_SIZE, which no reader would
 *   accept
 */
UelWriter *
uel_writer_new_incremental (const gchar * location, guint64 reserve_bytes,
    GError ** error)
{
  UelWriter *w;
  guint64 reserve = reserve_bytes ? reserve_bytes :
      UEL_WRITER_DEFAULT_HEADER_RESERVE;

  g_return_val_if_fail (location != NULL, NULL);

  if (reserve > UEL_MAX_HEADER_SIZE) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "%s: a header block of %" G_GUINT64_FORMAT " bytes is larger than "
        "the limit of %" G_GUINT64_FORMAT " bytes", location, reserve,
        (guint64) UEL_MAX_HEADER_SIZE);
    return NULL;
  }
  w = uel_writer_new (location, error);
  if (!w)
    return NULL;
  w->reserve = (reserve + HEADER_ALIGN - 1) / HEADER_ALIGN * HEADER_ALIGN;
  w->metadata_order = g_ptr_array_new_with_free_func (g_free);
  w->entries = g_string_new (NULL);
  g_array_index (w->shards, Shard, 0).data_offset = 8 + w->reserve;
  /* nothing to sort or lay out: writes may start at once */
  w->state = STATE_WRITING;
  return w;
}

/**
 * uel_writer_is_incremental:
 * @writer: a #UelWriter
 *
 * Returns: whether @writer was created by uel_writer_new_incremental()
 */
gboolean
uel_writer_is_incremental (const UelWriter * writer)
{
  g_return_val_if_fail (writer != NULL, FALSE);
  return writer->reserve > 0;
}

/**
 * uel_writer_get_header_reserve:
 * @writer: a #UelWriter
 *
 * Returns: the size of the header block of an incremental writer, a
 *   multiple of 8 (the file's header length); 0 for a writer of the other
 *   mode
 */
guint64
uel_writer_get_header_reserve (const UelWriter * writer)
{
  g_return_val_if_fail (writer != NULL, 0);
  return writer->reserve;
}

/* The length of an incremental header with metadata of @metadata_len and
 * entries of @entries_len: {META,ENTRIES} */
static guint64
incremental_len (gsize metadata_len, gsize entries_len)
{
  return 2 + (guint64) metadata_len + entries_len
      + (metadata_len && entries_len ? 1 : 0);
}

static gboolean
header_too_large (UelWriter * w, guint64 len, GError ** error)
{
  g_set_error (error, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE,
      "%s: the header would be %" G_GUINT64_FORMAT " bytes, larger than "
      "the %" G_GUINT64_FORMAT " bytes reserved for it", w->location, len,
      w->reserve);
  return FALSE;
}

/* what the reader of the header would refuse in a name or a metadata
 * string: bytes that are not UTF-8 */
static gboolean
is_utf8 (const gchar * s)
{
  gsize bad;

  return uel_utf8_validate (s, strlen (s), &bad);
}

/* the checked description of a tensor being declared */
static void
describe (UelWriter * w, Tensor * t, const gchar * name, UelDType dtype,
    guint n_dims, guint64 count, guint64 n_bytes)
{
  t->info.name = g_string_chunk_insert (w->names, name);
  t->info.dtype = dtype;
  t->info.n_dims = n_dims;
  t->info.n_elements = count;
  t->info.n_bytes = n_bytes;
}

/* Incremental: declares a checked tensor at the end of the data section,
 * its entry added to the header unless the header would outgrow its
 * block.  Under the lock: writes of other threads read the table. */
static gboolean
append_entry (UelWriter * w, const gchar * name, UelDType dtype,
    guint n_dims, const guint64 * shape, guint64 count, guint64 n_bytes,
    GError ** error)
{
  g_autoptr (GString) entry = g_string_new (w->entries->len ? "," : "");
  Tensor t = { 0, };
  guint64 len;

  uel_json_append_string_ascii (entry, name);
  g_string_append_printf (entry, ":{\"dtype\":\"%s\",\"shape\":[",
      uel_dtype_to_string (dtype));
  for (guint d = 0; d < n_dims; d++)
    g_string_append_printf (entry, "%s%" G_GUINT64_FORMAT, d ? "," : "",
        shape[d]);
  g_string_append_printf (entry, "],\"data_offsets\":[%" G_GUINT64_FORMAT
      ",%" G_GUINT64_FORMAT "]}", w->total_bytes, w->total_bytes + n_bytes);
  len = incremental_len (w->metadata_len, w->entries->len + entry->len);
  if (len > w->reserve)
    return header_too_large (w, len, error);

  describe (w, &t, name, dtype, n_dims, count, n_bytes);
  t.own_shape = n_dims ? g_memdup2 (shape, n_dims * sizeof (guint64)) : NULL;
  t.info.shape = t.own_shape;
  t.info.data_begin = w->total_bytes;
  t.info.file_offset = 8 + w->reserve + w->total_bytes;

  g_mutex_lock (&w->lock);
  g_string_append_len (w->entries, entry->str, entry->len);
  g_array_append_val (w->tensors, t);
  g_hash_table_insert (w->by_name, (gpointer) t.info.name,
      GUINT_TO_POINTER (w->tensors->len));
  w->total_bytes += n_bytes;
  g_mutex_unlock (&w->lock);
  return TRUE;
}

/**
 * uel_writer_add_tensor:
 * @writer: a #UelWriter whose header is not written yet
 * @name: the tensor's name: any UTF-8 but `__metadata__`, the empty name
 *   included (the format and #UelHeader allow it)
 * @dtype: its element type
 * @n_dims: its rank; 0 for a scalar
 * @shape: (array length=n_dims) (nullable): its dimensions; %NULL when
 *   @n_dims is 0
 * @error: return location for a #GError
 *
 * Declares a tensor.  In the incremental mode (uel_writer_new_incremental())
 * it may come at any time before uel_writer_finish(), and is placed after
 * those declared before it; a header that would outgrow its block is
 * %UEL_ERROR_HEADER_TOO_LARGE.
 *
 * Its byte size, element count × bits / 8, is checked
 * as #UelHeader checks it when reading: a count or a size that overflows
 * 64 bits (%UEL_ERROR_SIZE_OVERFLOW), a size that is not a whole number of
 * bytes (%UEL_ERROR_PARTIAL_BYTE).  A data section that would pass
 * 2^63 − 1 bytes less room for the largest header is
 * %UEL_ERROR_SIZE_OVERFLOW as well.
 *
 * Returns: %TRUE when the tensor was added; %FALSE with @error set in the
 *   #UEL_ERROR domain (%UEL_ERROR_DUPLICATE_TENSOR,
 *   %UEL_ERROR_INVALID_TENSOR_NAME, %UEL_ERROR_UNKNOWN_DTYPE …) when it was
 *   not, the writer unchanged
 */
gboolean
uel_writer_add_tensor (UelWriter * writer, const gchar * name,
    UelDType dtype, guint n_dims, const guint64 * shape, GError ** error)
{
  g_autofree gchar *q = NULL;
  guint64 count = 1, bits, total;
  Tensor t = { 0, };
  guint bits_per;

  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (n_dims == 0 || shape != NULL, FALSE);
  g_return_val_if_fail (writer->state == STATE_DECLARING
      || (writer->reserve && writer->state == STATE_WRITING)
      || (writer->reserve && writer->state == STATE_FAILED), FALSE);

  if (writer->state == STATE_FAILED)
    return failed (writer, error);
  if (!is_utf8 (name)) {
    q = quote_name (name);
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_TENSOR_NAME,
        "%s: tensor %s: the name is not valid UTF-8", writer->location, q);
    return FALSE;
  }
  if (strcmp (name, "__metadata__") == 0) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_TENSOR_NAME,
        "%s: tensor '__metadata__': the name is the header's key of the "
        "metadata, which a reader would take for it", writer->location);
    return FALSE;
  }
  if (g_hash_table_contains (writer->by_name, name)) {
    q = quote_name (name);
    g_set_error (error, UEL_ERROR, UEL_ERROR_DUPLICATE_TENSOR,
        "%s: tensor %s: declared twice", writer->location, q);
    return FALSE;
  }
  bits_per = uel_dtype_get_bits (dtype);
  if (bits_per == 0) {
    q = quote_name (name);
    g_set_error (error, UEL_ERROR, UEL_ERROR_UNKNOWN_DTYPE,
        "%s: tensor %s: %d is not a safetensors dtype", writer->location, q,
        (gint) dtype);
    return FALSE;
  }
  for (guint d = 0; d < n_dims; d++) {
    if (!g_uint64_checked_mul (&count, count, shape[d])) {
      q = quote_name (name);
      g_set_error (error, UEL_ERROR, UEL_ERROR_SIZE_OVERFLOW,
          "%s: tensor %s: the element count of its shape overflows 64 bits "
          "at dimension %u (%" G_GUINT64_FORMAT ")", writer->location, q, d,
          shape[d]);
      return FALSE;
    }
  }
  if (!g_uint64_checked_mul (&bits, count, bits_per)) {
    q = quote_name (name);
    g_set_error (error, UEL_ERROR, UEL_ERROR_SIZE_OVERFLOW,
        "%s: tensor %s: %" G_GUINT64_FORMAT " elements × %u bits overflows "
        "64 bits", writer->location, q, count, bits_per);
    return FALSE;
  }
  if (bits % 8 != 0) {
    q = quote_name (name);
    g_set_error (error, UEL_ERROR, UEL_ERROR_PARTIAL_BYTE,
        "%s: tensor %s: %" G_GUINT64_FORMAT " elements of %s are %"
        G_GUINT64_FORMAT " bits, not a whole number of bytes",
        writer->location, q, count, uel_dtype_to_string (dtype), bits);
    return FALSE;
  }
  if (!g_uint64_checked_add (&total, writer->total_bytes, bits / 8)
      || total > MAX_DATA_BYTES) {
    q = quote_name (name);
    g_set_error (error, UEL_ERROR, UEL_ERROR_SIZE_OVERFLOW,
        "%s: tensor %s: its %" G_GUINT64_FORMAT " bytes after %"
        G_GUINT64_FORMAT " make a data section larger than a file can be",
        writer->location, q, bits / 8, writer->total_bytes);
    return FALSE;
  }
  if (writer->reserve)
    return append_entry (writer, name, dtype, n_dims, shape, count,
        bits / 8, error);

  describe (writer, &t, name, dtype, n_dims, count, bits / 8);
  t.shape_start = writer->dims->len;
  if (n_dims)
    g_array_append_vals (writer->dims, shape, n_dims);
  g_array_append_val (writer->tensors, t);
  g_hash_table_insert (writer->by_name, (gpointer) t.info.name,
      GUINT_TO_POINTER (writer->tensors->len));
  writer->total_bytes = total;
  return TRUE;
}

/* Incremental: `"__metadata__":{...}` with @key set to @value (NULL: as
 * it is), the keys in the order they were first set, escaped as Python's
 * json.dumps() escapes them */
static GString *
build_incremental_metadata (UelWriter * w, const gchar * key,
    const gchar * value)
{
  GString *m = g_string_new (NULL);
  gboolean seen = FALSE;

  for (guint i = 0; i < w->metadata_order->len; i++) {
    const gchar *k = g_ptr_array_index (w->metadata_order, i);
    gboolean is_key = key && strcmp (k, key) == 0;

    g_string_append (m, i ? "," : "\"__metadata__\":{");
    uel_json_append_string_ascii (m, k);
    g_string_append_c (m, ':');
    uel_json_append_string_ascii (m, is_key ? value :
        g_hash_table_lookup (w->metadata, k));
    seen |= is_key;
  }
  if (key && !seen) {
    g_string_append (m, m->len ? "," : "\"__metadata__\":{");
    uel_json_append_string_ascii (m, key);
    g_string_append_c (m, ':');
    uel_json_append_string_ascii (m, value);
  }
  if (m->len)
    g_string_append_c (m, '}');
  return m;
}

static gboolean
set_incremental_metadata (UelWriter * w, const gchar * key,
    const gchar * value, GError ** error)
{
  g_autoptr (GString) m = build_incremental_metadata (w, key, value);
  guint64 len = incremental_len (m->len, w->entries->len);

  if (len > w->reserve)
    return header_too_large (w, len, error);
  /* the header is built by the declaring thread only: no lock */
  if (!g_hash_table_contains (w->metadata, key))
    g_ptr_array_add (w->metadata_order, g_strdup (key));
  g_hash_table_replace (w->metadata, g_strdup (key), g_strdup (value));
  w->metadata_len = m->len;
  return TRUE;
}

/**
 * uel_writer_set_metadata:
 * @writer: a #UelWriter whose header is not written yet
 * @key: a key of `__metadata__`: any UTF-8
 * @value: its value: any UTF-8
 * @error: return location for a #GError
 *
 * Sets one entry of the header's `__metadata__` map, replacing an earlier
 * value of @key.  The header has a `__metadata__` once a key is set, and
 * none otherwise (as the reference's `save_file (tensors, metadata=None)`).
 *
 * In the incremental mode, metadata may be set at any time before
 * uel_writer_finish(); the keys keep the order in which they were first
 * set, as a Python dict does.
 *
 * Returns: %TRUE when set; %FALSE with %UEL_ERROR_INVALID_METADATA when
 *   @key or @value is not UTF-8, or in the incremental mode
 *   %UEL_ERROR_HEADER_TOO_LARGE when the header would outgrow its block
 */
gboolean
uel_writer_set_metadata (UelWriter * writer, const gchar * key,
    const gchar * value, GError ** error)
{
  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (key != NULL, FALSE);
  g_return_val_if_fail (value != NULL, FALSE);
  g_return_val_if_fail (writer->state == STATE_DECLARING
      || (writer->reserve && writer->state == STATE_WRITING)
      || (writer->reserve && writer->state == STATE_FAILED), FALSE);

  if (writer->state == STATE_FAILED)
    return failed (writer, error);
  if (!is_utf8 (key) || !is_utf8 (value)) {
    g_autofree gchar *q = quote_name (key);

    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_METADATA,
        "%s: __metadata__ entry %s: the %s is not valid UTF-8",
        writer->location, q, is_utf8 (key) ? "value" : "key");
    return FALSE;
  }
  if (writer->reserve)
    return set_incremental_metadata (writer, key, value, error);
  g_hash_table_replace (writer->metadata, g_strdup (key), g_strdup (value));
  return TRUE;
}

/**
 * uel_writer_get_total_bytes:
 * @writer: a #UelWriter
 *
 * Returns: the size of the data section: the sum of the byte sizes of the
 *   tensors declared so far
 */
guint64
uel_writer_get_total_bytes (const UelWriter * writer)
{
  g_return_val_if_fail (writer != NULL, 0);
  return writer->total_bytes;
}

/* shard by shard, and in each the reference's order */
static gint
reference_order (gconstpointer a, gconstpointer b)
{
  const Tensor *x = a, *y = b;
  guint rx = reference_rank[x->info.dtype], ry = reference_rank[y->info.dtype];

  if (x->info.file_index != y->info.file_index)
    return x->info.file_index < y->info.file_index ? -1 : 1;
  if (rx != ry)
    return rx > ry ? -1 : 1;
  return strcmp (x->info.name, y->info.name);
}

/* The header of @sh as serde_json writes the reference's: no whitespace,
 * `__metadata__` first, each entry's members in the order of its
 * TensorInfo struct, then spaces to a multiple of HEADER_ALIGN. */
static GString *
build_header (UelWriter * w, const Shard * sh)
{
  GString *h = g_string_new ("{");

  if (g_hash_table_size (w->metadata) > 0) {
    g_string_append (h, "\"__metadata__\":");
    uel_json_append_sorted_object (h, w->metadata);
  }
  for (guint i = sh->first; i < sh->first + sh->n_tensors; i++) {
    const UelTensorInfo *info = &g_array_index (w->tensors, Tensor, i).info;

    if (h->len > 1)
      g_string_append_c (h, ',');
    uel_json_append_string (h, info->name);
    g_string_append_printf (h, ":{\"dtype\":\"%s\",\"shape\":[",
        uel_dtype_to_string (info->dtype));
    for (guint d = 0; d < info->n_dims; d++)
      g_string_append_printf (h, "%s%" G_GUINT64_FORMAT, d ? "," : "",
          info->shape[d]);
    g_string_append_printf (h, "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%"
        G_GUINT64_FORMAT "]}", info->data_begin,
        info->data_begin + info->n_bytes);
  }
  g_string_append_c (h, '}');
  while (h->len % HEADER_ALIGN)
    g_string_append_c (h, ' ');
  return h;
}

static gboolean
pwrite_all (gint fd, const guint8 * p, gsize len, guint64 offset)
{
  while (len > 0) {
    ssize_t n = pwrite (fd, p, MIN (len, MAX_IO), (off_t) offset);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      /* a regular file takes at least a byte or says why not */
      if (n == 0)
        errno = EIO;
      return FALSE;
    }
    p += n;
    len -= (gsize) n;
    offset += (guint64) n;
  }
  return TRUE;
}

/* Splits the tensors, in declaration order, into shards of at most
 * max_shard_size bytes as huggingface_hub's
 * split_state_dict_into_shards_factory() does: a tensor that would take
 * the current shard over the maximum starts a new one, and a tensor larger
 * than the maximum gets a shard of its own, placed at once, before the
 * shard still being filled.  Sets each tensor's file_index; returns the
 * number of shards (1 for no tensors, where the Python code would write an
 * index of no shard). */
static guint
assign_shards (UelWriter * w)
{
  g_autofree guint *place = NULL;       /* group -> shard */
  guint n_groups = 0, n_shards = 0, current = G_MAXUINT;
  guint64 current_bytes = 0;

  if (w->max_shard_size == 0 || w->tensors->len == 0)
    return 1;
  place = g_new (guint, w->tensors->len);
  for (guint i = 0; i < w->tensors->len; i++) {
    Tensor *t = &g_array_index (w->tensors, Tensor, i);
    guint64 size = t->info.n_bytes;

    if (size > w->max_shard_size) {
      place[n_groups] = n_shards++;
      t->info.file_index = n_groups++;
      continue;
    }
    if (current != G_MAXUINT && current_bytes + size > w->max_shard_size) {
      place[current] = n_shards++;
      current = G_MAXUINT;
    }
    if (current == G_MAXUINT) {
      current = n_groups++;
      current_bytes = 0;
    }
    t->info.file_index = current;
    current_bytes += size;
  }
  if (current != G_MAXUINT)
    place[current] = n_shards++;
  for (guint i = 0; i < w->tensors->len; i++) {
    Tensor *t = &g_array_index (w->tensors, Tensor, i);

    t->info.file_index = place[t->info.file_index];
  }
  return n_shards;
}

/* The names of a sharded output, from the location: `model.safetensors`
 * (or `model.safetensors.index.json`) gives `model.safetensors` for one
 * shard, `model-00001-of-00003.safetensors` … and
 * `model.safetensors.index.json` for several, as transformers' pattern
 * `model{suffix}.safetensors` does.  A name without `.safetensors` gets
 * the suffix at its end. */
static void
split_location (const gchar * location, gchar ** single, gchar ** stem,
    const gchar ** ext)
{
  gsize len = strlen (location);

  if (g_str_has_suffix (location, ".index.json")
      && len > strlen (".index.json"))
    len -= strlen (".index.json");
  *single = g_strndup (location, len);
  if (g_str_has_suffix (*single, ".safetensors")) {
    *stem = g_strndup (*single, len - strlen (".safetensors"));
    *ext = ".safetensors";
  } else {
    *stem = g_strdup (*single);
    *ext = "";
  }
}

static gchar *
shard_path (const gchar * location, guint index, guint n)
{
  g_autofree gchar *single = NULL;
  g_autofree gchar *stem = NULL;
  const gchar *ext;

  split_location (location, &single, &stem, &ext);
  if (n == 1)
    return g_steal_pointer (&single);
  return g_strdup_printf ("%s-%05u-of-%05u%s", stem, index + 1, n, ext);
}

static gchar *
index_path (const gchar * location)
{
  g_autofree gchar *single = NULL;
  g_autofree gchar *stem = NULL;
  const gchar *ext;

  split_location (location, &single, &stem, &ext);
  return g_strconcat (single, ".index.json", NULL);
}

/* Under the lock: gives every shard after the first (whose temporary file
 * uel_writer_new() created) its name and temporary file. */
static gboolean
create_shards (UelWriter * w, guint n, GError ** error)
{
  if (w->max_shard_size == 0)
    return TRUE;
  g_array_set_size (w->shards, n);
  for (guint i = 1; i < n; i++)
    g_array_index (w->shards, Shard, i).fd = -1;
  for (guint i = 0; i < n; i++) {
    Shard *sh = &g_array_index (w->shards, Shard, i);

    g_free (sh->path);
    sh->path = shard_path (w->location, i, n);
    if (i > 0) {
      sh->fd = create_tmp (sh->path, &sh->tmp_path, error);
      if (sh->fd < 0)
        return FALSE;
    }
  }
  return TRUE;
}

/* Writes the header length and @h (padded) at the start of @sh and gives
 * the file its full size at once (sparse until the data come). */
static gboolean
put_header (Shard * sh, const GString * h, guint64 file_size,
    GError ** error)
{
  guint64 len_le = GUINT64_TO_LE ((guint64) h->len);

  if (!pwrite_all (sh->fd, (const guint8 *) &len_le, 8, 0)
      || !pwrite_all (sh->fd, (const guint8 *) h->str, h->len, 8))
    return errno_error (error, errno, "%s: cannot write the header",
        sh->path);
  if (ftruncate (sh->fd, (off_t) file_size) != 0)
    return errno_error (error, errno, "%s: cannot make the file %"
        G_GUINT64_FORMAT " bytes long", sh->path, file_size);
  return TRUE;
}

/* Under the lock: writes the header of @sh and gives the file its full
 * size at once. */
static gboolean
write_shard_header (UelWriter * w, Shard * sh, GError ** error)
{
  g_autoptr (GString) h = build_header (w, sh);

  if (h->len > UEL_MAX_HEADER_SIZE) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE,
        "%s: the header of %u tensors would be %" G_GSIZE_FORMAT " bytes, "
        "larger than the limit of %" G_GUINT64_FORMAT " bytes", sh->path,
        sh->n_tensors, h->len, UEL_MAX_HEADER_SIZE);
    return FALSE;
  }
  sh->data_offset = 8 + h->len;
  for (guint i = sh->first; i < sh->first + sh->n_tensors; i++) {
    Tensor *t = &g_array_index (w->tensors, Tensor, i);

    t->info.file_offset = sh->data_offset + t->info.data_begin;
  }

  return put_header (sh, h, sh->data_offset + sh->n_bytes, error);
}

/* Under the lock: splits the tensors into shards, puts each shard's in the
 * reference's order, gives them their offsets and writes the headers. */
static gboolean
write_header_locked (UelWriter * w, GError ** error)
{
  GError *err = NULL;
  guint n_shards = assign_shards (w);

  g_array_sort (w->tensors, reference_order);
  g_hash_table_remove_all (w->by_name);
  if (!create_shards (w, n_shards, &err))
    return fail (w, err, error);
  for (guint i = 0; i < w->tensors->len; i++) {
    Tensor *t = &g_array_index (w->tensors, Tensor, i);
    Shard *sh = &g_array_index (w->shards, Shard, t->info.file_index);

    if (sh->n_tensors == 0)
      sh->first = i;
    sh->n_tensors++;
    t->info.shape = t->info.n_dims ?
        &g_array_index (w->dims, guint64, t->shape_start) : NULL;
    t->info.data_begin = sh->n_bytes;
    sh->n_bytes += t->info.n_bytes;
    g_hash_table_insert (w->by_name, (gpointer) t->info.name,
        GUINT_TO_POINTER (i + 1));
  }
  for (guint i = 0; i < w->shards->len; i++)
    if (!write_shard_header (w, &g_array_index (w->shards, Shard, i), &err))
      return fail (w, err, error);
  w->state = STATE_WRITING;
  return TRUE;
}

/**
 * uel_writer_write_header:
 * @writer: a #UelWriter
 * @error: return location for a #GError
 *
 * Closes the table: puts the tensors in the reference's order, gives each
 * its offsets and writes the header.  The first uel_writer_write() or
 * uel_writer_finish() does it if it was not done; call it to read the
 * table in file order (uel_writer_get_tensor()) before writing, e.g. to
 * write the data front to back.  Nothing can be declared afterwards.
 * An incremental writer has nothing to close: this does nothing there.
 *
 * Returns: %TRUE when the header is written (or was already);
 *   %UEL_ERROR_HEADER_TOO_LARGE for a header over %UEL_MAX_HEADER_SIZE
 *   bytes, or a #G_FILE_ERROR; the writer has failed then
 */
gboolean
uel_writer_write_header (UelWriter * writer, GError ** error)
{
  gboolean ok = TRUE;

  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (writer->state != STATE_FINISHED
      && writer->state != STATE_ABORTED, FALSE);

  g_mutex_lock (&writer->lock);
  if (writer->state == STATE_FAILED)
    ok = failed (writer, error);
  else if (writer->state == STATE_DECLARING)
    ok = write_header_locked (writer, error);
  g_mutex_unlock (&writer->lock);
  return ok;
}

/**
 * uel_writer_get_n_tensors:
 * @writer: a #UelWriter
 *
 * Returns: the number of tensors declared
 */
guint
uel_writer_get_n_tensors (const UelWriter * writer)
{
  g_return_val_if_fail (writer != NULL, 0);
  return writer->tensors->len;
}

/**
 * uel_writer_get_tensor:
 * @writer: a #UelWriter whose header is written
 * @index: a position in file order, below uel_writer_get_n_tensors()
 *
 * Returns: (transfer none): the tensor at @index with its offsets, as
 *   #UelHeader will read it back (@file_index 0 unless the output is
 *   sharded: see uel_writer_get_file_path()), owned by @writer
 */
const UelTensorInfo *
uel_writer_get_tensor (const UelWriter * writer, guint index)
{
  g_return_val_if_fail (writer != NULL, NULL);
  g_return_val_if_fail (writer->state != STATE_DECLARING, NULL);
  g_return_val_if_fail (index < writer->tensors->len, NULL);
  return &g_array_index (writer->tensors, Tensor, index).info;
}

/**
 * uel_writer_lookup:
 * @writer: a #UelWriter whose header is written
 * @name: a tensor name
 * @index: (out) (optional): its position in file order
 *
 * Returns: (transfer none) (nullable): the tensor called @name, or %NULL
 */
const UelTensorInfo *
uel_writer_lookup (const UelWriter * writer, const gchar * name,
    guint * index)
{
  guint i;

  g_return_val_if_fail (writer != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (writer->state != STATE_DECLARING, NULL);

  i = GPOINTER_TO_UINT (g_hash_table_lookup (writer->by_name, name));
  if (i == 0)
    return NULL;
  if (index)
    *index = i - 1;
  return &g_array_index (writer->tensors, Tensor, i - 1).info;
}

/* Records [begin, end) of @t as written, unless a byte of it already is.
 * The ranges stay sorted and merged: a tensor written front to back, or
 * back to front, keeps one. */
static gboolean
mark_written (Tensor * t, guint64 begin, guint64 end, Range * clash)
{
  Range r = { begin, end };
  const Range *next;
  guint lo = 0, hi;

  if (t->written == 0 && begin == 0 && end == t->info.n_bytes) {
    t->written = end;
    return TRUE;
  }
  if (t->written == t->info.n_bytes) {
    *clash = (Range) { 0, t->info.n_bytes };
    return FALSE;
  }
  if (!t->ranges)
    t->ranges = g_array_new (FALSE, FALSE, sizeof (Range));
  /* the first range that ends after @begin */
  hi = t->ranges->len;
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;

    if (g_array_index (t->ranges, Range, mid).end <= begin)
      lo = mid + 1;
    else
      hi = mid;
  }
  next = lo < t->ranges->len ? &g_array_index (t->ranges, Range, lo) : NULL;
  if (next && next->begin < end) {
    *clash = *next;
    return FALSE;
  }
  /* merge with the neighbours it touches */
  if (next && next->begin == end) {
    r.end = next->end;
    g_array_remove_index (t->ranges, lo);
  }
  if (lo > 0 && g_array_index (t->ranges, Range, lo - 1).end == begin) {
    r.begin = g_array_index (t->ranges, Range, lo - 1).begin;
    g_array_remove_index (t->ranges, lo - 1);
    lo--;
  }
  g_array_insert_val (t->ranges, lo, r);
  t->written += end - begin;
  if (t->written == t->info.n_bytes)
    g_clear_pointer (&t->ranges, g_array_unref);
  return TRUE;
}

/* Under the lock, takes bytes [@offset, @offset + @len) of the tensor
 * @name for a write, refusing what the table does not allow; *@at is
 * where they go in the file *@fd. */
static gboolean
claim (UelWriter * w, const gchar * name, guint64 offset, guint64 len,
    gint * fd, guint64 * at, GError ** error)
{
  g_autofree gchar *q = NULL;
  Tensor *t;
  Range clash;
  guint i;

  if (w->state == STATE_FAILED)
    return failed (w, error);
  if (w->state == STATE_DECLARING && !write_header_locked (w, error))
    return FALSE;

  i = GPOINTER_TO_UINT (g_hash_table_lookup (w->by_name, name));
  if (i == 0) {
    q = quote_name (name);
    g_set_error (error, UEL_ERROR, UEL_ERROR_UNKNOWN_TENSOR,
        "%s: tensor %s: not declared", w->location, q);
    return FALSE;
  }
  t = &g_array_index (w->tensors, Tensor, i - 1);
  if (offset > t->info.n_bytes || len > t->info.n_bytes - offset) {
    q = quote_name (name);
    g_set_error (error, UEL_ERROR, UEL_ERROR_WRITE_OUT_OF_RANGE,
        "%s: tensor %s: a write of %" G_GUINT64_FORMAT " bytes at byte %"
        G_GUINT64_FORMAT " runs past the end of its %" G_GUINT64_FORMAT
        " bytes", w->location, q, len, offset, t->info.n_bytes);
    return FALSE;
  }
  if (len > 0 && !mark_written (t, offset, offset + len, &clash)) {
    q = quote_name (name);
    g_set_error (error, UEL_ERROR, UEL_ERROR_WRITE_OVERLAP,
        "%s: tensor %s: bytes %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
        " would be written a second time (%" G_GUINT64_FORMAT " to %"
        G_GUINT64_FORMAT " already are)", w->location, q, offset,
        offset + len, clash.begin, clash.end);
    return FALSE;
  }
  *at = t->info.file_offset + offset;
  *fd = g_array_index (w->shards, Shard, t->info.file_index).fd;
  return TRUE;
}

/* claim() for a caller that does not hold the lock */
static gboolean
claim_unlocked (UelWriter * w, const gchar * name, guint64 offset,
    guint64 len, gint * fd, guint64 * at, GError ** error)
{
  gboolean ok;

  g_mutex_lock (&w->lock);
  ok = w->state != STATE_FINISHED && w->state != STATE_ABORTED;
  if (ok)
    ok = claim (w, name, offset, len, fd, at, error);
  else
    g_critical ("%s: the writer of %s is already %s", G_STRFUNC, w->location,
        w->state == STATE_FINISHED ? "finished" : "aborted");
  g_mutex_unlock (&w->lock);
  return ok;
}

/**
 * uel_writer_write:
 * @writer: a #UelWriter
 * @name: a declared tensor
 * @offset: where in the tensor the bytes go, from its first byte
 * @data: (array length=len) (element-type guint8): the bytes
 * @len: how many
 * @error: return location for a #GError
 *
 * Writes bytes of one tensor, at @offset within it (not within the file):
 * the whole tensor at once, or in pieces, in any order, each byte exactly
 * once.  The first write closes the table (uel_writer_write_header()).
 * The data go out before this returns (pwrite(2); the temporary file is
 * synced by uel_writer_finish()), so @data may be reused at once.
 *
 * Returns: %TRUE when the bytes are written.  A write the table does not
 *   allow is refused and changes nothing: %UEL_ERROR_UNKNOWN_TENSOR,
 *   %UEL_ERROR_WRITE_OUT_OF_RANGE for bytes past the tensor's end,
 *   %UEL_ERROR_WRITE_OVERLAP for bytes already written.  A #G_FILE_ERROR
 *   (%G_FILE_ERROR_NOSPC …) means that the writer failed.
 */
gboolean
uel_writer_write (UelWriter * writer, const gchar * name, guint64 offset,
    gconstpointer data, gsize len, GError ** error)
{
  g_autofree gchar *q = NULL;
  GError *err = NULL;
  guint64 at;
  gint fd, saved_errno;

  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);

  if (!claim_unlocked (writer, name, offset, len, &fd, &at, error))
    return FALSE;
  if (pwrite_all (fd, data, len, at))
    return TRUE;

  saved_errno = errno;
  q = quote_name (name);
  errno_error (&err, saved_errno, "%s: tensor %s: cannot write %"
      G_GSIZE_FORMAT " bytes at byte %" G_GUINT64_FORMAT " of the tensor",
      writer->location, q, len, offset);
  g_mutex_lock (&writer->lock);
  fail (writer, err, error);
  g_mutex_unlock (&writer->lock);
  return FALSE;
}

/**
 * uel_writer_write_zeros:
 * @writer: a #UelWriter
 * @name: a declared tensor
 * @offset: where in the tensor the zeros go, from its first byte
 * @len: how many
 * @error: return location for a #GError
 *
 * Writes @len zero bytes of one tensor, as uel_writer_write() would, but
 * without writing anything: the temporary file got its full size when the
 * header was written, and bytes never written there read as zeros (a
 * hole, on the file systems that have them: no disk space is taken).
 * The same rules hold: each byte is written once, by one call or the
 * other.
 *
 * Returns: %TRUE when the bytes are counted as written; the refusals of
 *   uel_writer_write()
 */
gboolean
uel_writer_write_zeros (UelWriter * writer, const gchar * name,
    guint64 offset, guint64 len, GError ** error)
{
  guint64 at;
  gint fd;

  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  return claim_unlocked (writer, name, offset, len, &fd, &at, error);
}

/**
 * uel_writer_write_tensor:
 * @writer: a #UelWriter
 * @name: a declared tensor
 * @data: (array length=len) (element-type guint8): all its bytes
 * @len: its size in bytes
 * @error: return location for a #GError
 *
 * Writes a whole tensor: uel_writer_write() at offset 0, with @len
 * checked against the tensor's size (%UEL_ERROR_SIZE_MISMATCH).
 *
 * Returns: %TRUE when the tensor is written; see uel_writer_write()
 */
gboolean
uel_writer_write_tensor (UelWriter * writer, const gchar * name,
    gconstpointer data, gsize len, GError ** error)
{
  const UelTensorInfo *info;

  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  if (!uel_writer_write_header (writer, error))
    return FALSE;
  info = uel_writer_lookup (writer, name, NULL);
  if (info && info->n_bytes != len) {
    g_autofree gchar *q = quote_name (name);

    g_set_error (error, UEL_ERROR, UEL_ERROR_SIZE_MISMATCH,
        "%s: tensor %s: %" G_GSIZE_FORMAT " bytes given for its %"
        G_GUINT64_FORMAT, writer->location, q, len, info->n_bytes);
    return FALSE;
  }
  return uel_writer_write (writer, name, 0, data, len, error);
}

/**
 * uel_writer_append_tensor:
 * @writer: an incremental #UelWriter (uel_writer_new_incremental())
 * @name: the tensor's name, as for uel_writer_add_tensor()
 * @dtype: its element type
 * @n_dims: its rank; 0 for a scalar
 * @shape: (array length=n_dims) (nullable): its dimensions; %NULL when
 *   @n_dims is 0
 * @data: (array length=len) (element-type guint8) (nullable): all its bytes
 * @len: its size in bytes
 * @error: return location for a #GError
 *
 * Declares a tensor after those declared before and writes it whole:
 * uel_writer_add_tensor() then uel_writer_write_tensor(), as
 * `IncrementalSafetensorsWriter.write (name, tensor)` does.  A @len that
 * is not the size of @shape in @dtype is %UEL_ERROR_SIZE_MISMATCH, and
 * nothing is declared.
 *
 * Returns: %TRUE when the tensor is declared and written; the errors of
 *   uel_writer_add_tensor() (the writer unchanged) and of
 *   uel_writer_write() (a #G_FILE_ERROR: the writer failed)
 */
gboolean
uel_writer_append_tensor (UelWriter * writer, const gchar * name,
    UelDType dtype, guint n_dims, const guint64 * shape, gconstpointer data,
    gsize len, GError ** error)
{
  guint64 count = 1;
  guint bits = uel_dtype_get_bits (dtype);

  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (writer->reserve > 0, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (n_dims == 0 || shape != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);

  /* the size first, so that a refused tensor is not declared; one that
   * overflows is left to uel_writer_add_tensor() to name */
  for (guint d = 0; d < n_dims; d++)
    if (!g_uint64_checked_mul (&count, count, shape[d]))
      bits = 0;
  if (bits && count <= G_MAXUINT64 / bits && count * bits % 8 == 0
      && count * bits / 8 != len) {
    g_autofree gchar *q = quote_name (name);

    g_set_error (error, UEL_ERROR, UEL_ERROR_SIZE_MISMATCH,
        "%s: tensor %s: %" G_GSIZE_FORMAT " bytes given for its %"
        G_GUINT64_FORMAT, writer->location, q, len, count * bits / 8);
    return FALSE;
  }
  if (!uel_writer_add_tensor (writer, name, dtype, n_dims, shape, error))
    return FALSE;
  return uel_writer_write (writer, name, 0, data, len, error);
}

/* Under the lock: writes the header of an incremental writer into its
 * block, padded with spaces, and gives the file its full size. */
static gboolean
write_incremental_header (UelWriter * w, GError ** error)
{
  Shard *sh = &g_array_index (w->shards, Shard, 0);
  g_autoptr (GString) h = g_string_new ("{");

  if (w->metadata_len) {
    g_autoptr (GString) m = build_incremental_metadata (w, NULL, NULL);

    g_string_append_len (h, m->str, m->len);
    if (w->entries->len)
      g_string_append_c (h, ',');
  }
  g_string_append_len (h, w->entries->str, w->entries->len);
  g_string_append_c (h, '}');
  /* declarations are refused before this can happen */
  if (h->len > w->reserve)
    return header_too_large (w, h->len, error);
  while (h->len < w->reserve)
    g_string_append_c (h, ' ');
  return put_header (sh, h, 8 + w->reserve + w->total_bytes, error);
}

/* the first byte of @t not written */
static guint64
first_missing (const Tensor * t)
{
  if (!t->ranges || t->ranges->len == 0)
    return 0;
  if (g_array_index (t->ranges, Range, 0).begin > 0)
    return 0;
  return g_array_index (t->ranges, Range, 0).end;
}

/* Makes the rename itself durable; a failure here is not reported: the
 * file is complete under its name already. */
static void
sync_folder (const gchar * location)
{
  g_autofree gchar *dir = g_path_get_dirname (location);
  gint fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd >= 0) {
    fsync (fd);
    close (fd);
  }
}

static gint
compare_tensor_names (gconstpointer a, gconstpointer b)
{
  return strcmp ((*(const Tensor * const *) a)->info.name,
      (*(const Tensor * const *) b)->info.name);
}

/* The index as transformers' save_pretrained() writes it:
 * json.dumps (index, indent=2, sort_keys=True) + "\n" of
 * {"metadata": {"total_size": N}, "weight_map": {name: shard file}}, the
 * total the sum of the tensors' byte sizes and the files named without
 * their folder.  Sorting UTF-8 bytewise sorts by code point, as Python
 * sorts str keys. */
static GString *
build_index (UelWriter * w)
{
  GString *out = g_string_new (NULL);
  g_autoptr (GPtrArray) sorted = g_ptr_array_sized_new (w->tensors->len);

  for (guint i = 0; i < w->tensors->len; i++)
    g_ptr_array_add (sorted, &g_array_index (w->tensors, Tensor, i));
  g_ptr_array_sort (sorted, compare_tensor_names);

  g_string_append_printf (out, "{\n  \"metadata\": {\n    \"total_size\": %"
      G_GUINT64_FORMAT "\n  },\n  \"weight_map\": {\n", w->total_bytes);
  for (guint i = 0; i < sorted->len; i++) {
    const Tensor *t = g_ptr_array_index (sorted, i);
    const Shard *sh = &g_array_index (w->shards, Shard, t->info.file_index);
    g_autofree gchar *file = g_path_get_basename (sh->path);

    g_string_append (out, "    ");
    uel_json_append_string_ascii (out, t->info.name);
    g_string_append (out, ": ");
    uel_json_append_string_ascii (out, file);
    g_string_append (out, i + 1 < sorted->len ? ",\n" : "\n");
  }
  g_string_append (out, "  }\n}\n");
  return out;
}

/* Under the lock: writes the index of a sharded output to its temporary
 * file, synced. */
static gboolean
write_index (UelWriter * w, const gchar * path, GError ** error)
{
  g_autoptr (GString) index = build_index (w);
  gint fd = create_tmp (path, &w->index_tmp, error);

  if (fd < 0)
    return FALSE;
  if (!pwrite_all (fd, (const guint8 *) index->str, index->len, 0)
      || fdatasync (fd) != 0) {
    gint err = errno;

    close (fd);
    return errno_error (error, err, "%s: cannot write the index", path);
  }
  if (close (fd) != 0)
    return errno_error (error, errno, "%s: cannot close the index", path);
  return TRUE;
}

/* Under the lock: syncs every shard's temporary file to disk and closes
 * it. */
static gboolean
sync_shards (UelWriter * w, GError ** error)
{
  for (guint i = 0; i < w->shards->len; i++) {
    Shard *sh = &g_array_index (w->shards, Shard, i);
    gint fd = sh->fd;

    sh->fd = -1;
    if (fdatasync (fd) != 0) {
      gint err = errno;

      close (fd);
      return errno_error (error, err, "%s: cannot sync the data to disk",
          sh->path);
    }
    if (close (fd) != 0)
      return errno_error (error, errno, "%s: cannot close the file",
          sh->path);
  }
  return TRUE;
}

static gboolean
rename_shard (Shard * sh, GError ** error)
{
  if (g_rename (sh->tmp_path, sh->path) != 0)
    return errno_error (error, errno, "%s: cannot rename %s to it",
        sh->path, sh->tmp_path);
  g_clear_pointer (&sh->tmp_path, g_free);
  return TRUE;
}

/* whether @name is `STEM-ddddd-of-dddddEXT`, the name of a shard of some
 * output of the same location */
static gboolean
is_shard_name (const gchar * name, const gchar * stem, const gchar * ext)
{
  static const gchar pattern[] = "-#####-of-#####";
  gsize stem_len = strlen (stem);

  if (strncmp (name, stem, stem_len) != 0)
    return FALSE;
  name += stem_len;
  for (guint i = 0; pattern[i]; i++)
    if (pattern[i] == '#' ? !g_ascii_isdigit (name[i]) : name[i] != pattern[i])
      return FALSE;
  return strcmp (name + strlen (pattern), ext) == 0;
}

/* After a sharded (or shardable) output is in place: removes what an
 * earlier output of the same location left that the new one does not
 * replace, as huggingface_hub's save_torch_state_dict() does (an index
 * of an earlier sharded output, shards of another count, a single file
 * that a sharded output replaces), so that a loader finds the new files
 * and only them.  A file that cannot be removed is left. */
static void
remove_stale (UelWriter * w)
{
  g_autofree gchar *single = NULL;
  g_autofree gchar *stem = NULL;
  g_autofree gchar *dir = g_path_get_dirname (w->location);
  g_autofree gchar *index = index_path (w->location);
  g_autofree gchar *stem_base = NULL;
  g_autofree gchar *single_base = NULL;
  g_autofree gchar *index_base = g_path_get_basename (index);
  g_autoptr (GHashTable) keep = g_hash_table_new_full (g_str_hash,
      g_str_equal, g_free, NULL);
  g_autoptr (GDir) d = NULL;
  const gchar *ext, *name;

  split_location (w->location, &single, &stem, &ext);
  stem_base = g_path_get_basename (stem);
  single_base = g_path_get_basename (single);
  for (guint i = 0; i < w->shards->len; i++)
    g_hash_table_add (keep,
        g_path_get_basename (g_array_index (w->shards, Shard, i).path));
  if (w->shards->len > 1)
    g_hash_table_add (keep, g_strdup (index_base));

  d = g_dir_open (dir, 0, NULL);
  while (d && (name = g_dir_read_name (d))) {
    if (g_hash_table_contains (keep, name))
      continue;
    if (strcmp (name, single_base) == 0 || strcmp (name, index_base) == 0
        || is_shard_name (name, stem_base, ext)) {
      g_autofree gchar *path = g_build_filename (dir, name, NULL);

      g_unlink (path);
    }
  }
}

/* Under the lock, once every file is complete and synced: puts them in
 * place.  The order makes an interrupted commit (a crash, a failed
 * rename) leave either the earlier output, or shards without an index
 * (which no loader takes for a checkpoint), never an index that names
 * files of two outputs: the earlier index goes first, then the shards are
 * renamed one by one, the files of the earlier output that the new one
 * does not replace are removed, and the new index comes last. */
static gboolean
commit (UelWriter * w, GError ** error)
{
  g_autofree gchar *index = NULL;

  if (w->shards->len == 1) {
    if (!rename_shard (&g_array_index (w->shards, Shard, 0), error))
      return FALSE;
    if (w->max_shard_size > 0)
      remove_stale (w);
    return TRUE;
  }

  index = index_path (w->location);
  if (!write_index (w, index, error))
    return FALSE;
  if (g_unlink (index) != 0 && errno != ENOENT)
    return errno_error (error, errno, "%s: cannot remove the earlier index",
        index);
  for (guint i = 0; i < w->shards->len; i++)
    if (!rename_shard (&g_array_index (w->shards, Shard, i), error))
      return FALSE;
  remove_stale (w);
  if (g_rename (w->index_tmp, index) != 0)
    return errno_error (error, errno, "%s: cannot rename %s to it", index,
        w->index_tmp);
  g_clear_pointer (&w->index_tmp, g_free);
  return TRUE;
}

/**
 * uel_writer_finish:
 * @writer: a #UelWriter
 * @error: return location for a #GError
 *
 * Checks that every byte of every tensor was written (an incremental
 * writer then writes its header into the block reserved for it), syncs
 * the temporary file's data to disk (fdatasync(2)) and renames it to the
 * writer's location, replacing what was there (a symbolic link there is
 * replaced, not followed), then syncs the folder.  The file keeps the permissions it
 * was created with, not those of a file it replaces.
 *
 * A sharded output (uel_writer_set_max_shard_size()) is put in place only
 * once every shard is complete and synced and its index written and
 * synced: the earlier index at that location is removed, the shards are
 * renamed into place one by one, files of an earlier output of the same
 * location that the new one does not replace are removed (other shard
 * counts, a single file, an index), and the index is renamed into place
 * last.  A crash or a failure between the renames leaves some new shards
 * and no index, and the temporary files of the others.
 *
 * Returns: %TRUE when the file is in place.  %UEL_ERROR_INCOMPLETE when
 *   bytes are missing (naming the first tensor, in file order, with
 *   missing bytes): nothing is changed, and the missing bytes may still be
 *   written and the writer finished.  A #G_FILE_ERROR means that the
 *   writer failed.
 */
gboolean
uel_writer_finish (UelWriter * writer, GError ** error)
{
  GError *err = NULL;

  g_return_val_if_fail (writer != NULL, FALSE);
  g_return_val_if_fail (writer->state != STATE_FINISHED
      && writer->state != STATE_ABORTED, FALSE);

  g_mutex_lock (&writer->lock);
  if (writer->state == STATE_FAILED) {
    failed (writer, error);
    goto out;
  }
  if (writer->state == STATE_DECLARING
      && !write_header_locked (writer, error))
    goto out;

  for (guint i = 0; i < writer->tensors->len; i++) {
    const Tensor *t = &g_array_index (writer->tensors, Tensor, i);

    if (t->written < t->info.n_bytes) {
      g_autofree gchar *q = quote_name (t->info.name);

      g_set_error (error, UEL_ERROR, UEL_ERROR_INCOMPLETE,
          "%s: tensor %s: %" G_GUINT64_FORMAT " of its %" G_GUINT64_FORMAT
          " bytes were never written (the first at byte %" G_GUINT64_FORMAT
          ")", writer->location, q, t->info.n_bytes - t->written,
          t->info.n_bytes, first_missing (t));
      goto out;
    }
  }

  if ((writer->reserve && !write_incremental_header (writer, &err))
      || !sync_shards (writer, &err) || !commit (writer, &err)) {
    fail (writer, err, error);
    goto out;
  }
  writer->state = STATE_FINISHED;
  sync_folder (writer->location);

out:
  g_mutex_unlock (&writer->lock);
  return writer->state == STATE_FINISHED;
}

/**
 * uel_writer_set_max_shard_size:
 * @writer: a #UelWriter whose header is not written yet
 * @max_bytes: the largest data section of one file, in bytes; 0 for one
 *   file whatever its size (the default)
 *
 * Splits the output into shards as Hugging Face `transformers`
 * (`save_pretrained (max_shard_size=…)`) and `huggingface_hub`
 * (`split_torch_state_dict_into_shards`) do: the tensors, taken in the
 * order they were declared, fill a shard until the next one would take it
 * over @max_bytes, which then starts the next shard; a tensor larger than
 * @max_bytes gets a shard of its own, numbered before the shard being
 * filled when it came.  Each shard is the reference's file of its tensors
 * with the writer's `__metadata__`.
 *
 * With the writer's location `DIR/model.safetensors` (or
 * `DIR/model.safetensors.index.json`), one shard is written as
 * `DIR/model.safetensors`, and N shards as
 * `DIR/model-00001-of-0000N.safetensors` … with the index
 * `DIR/model.safetensors.index.json` that names them, in transformers'
 * layout: `json.dumps (index, indent=2, sort_keys=True) + "\n"` of
 * `{"metadata": {"total_size": BYTES}, "weight_map": {TENSOR: FILE}}`.
 * #UelHeader and `uelsrc` read it back.
 */
void
uel_writer_set_max_shard_size (UelWriter * writer, guint64 max_bytes)
{
  g_return_if_fail (writer != NULL);
  g_return_if_fail (writer->state == STATE_DECLARING);

  writer->max_shard_size = max_bytes;
}

/**
 * uel_writer_get_max_shard_size:
 * @writer: a #UelWriter
 *
 * Returns: the maximum shard size in bytes, 0 for one file
 */
guint64
uel_writer_get_max_shard_size (const UelWriter * writer)
{
  g_return_val_if_fail (writer != NULL, 0);
  return writer->max_shard_size;
}

/**
 * uel_writer_get_n_files:
 * @writer: a #UelWriter whose header is written
 *
 * Returns: the number of files the tensors go to: 1, or the number of
 *   shards
 */
guint
uel_writer_get_n_files (const UelWriter * writer)
{
  g_return_val_if_fail (writer != NULL, 0);
  g_return_val_if_fail (writer->state != STATE_DECLARING, 0);
  return writer->shards->len;
}

/**
 * uel_writer_get_file_path:
 * @writer: a #UelWriter whose header is written
 * @file_index: below uel_writer_get_n_files(), as the @file_index of
 *   #UelTensorInfo
 *
 * Returns: the final path of that file (a shard's, when there are several)
 */
const gchar *
uel_writer_get_file_path (const UelWriter * writer, guint file_index)
{
  g_return_val_if_fail (writer != NULL, NULL);
  g_return_val_if_fail (writer->state != STATE_DECLARING, NULL);
  g_return_val_if_fail (file_index < writer->shards->len, NULL);
  return g_array_index (writer->shards, Shard, file_index).path;
}

/**
 * uel_writer_dup_index_path:
 * @writer: a #UelWriter whose header is written
 *
 * Returns: (transfer full) (nullable): the path of the index of a sharded
 *   output, or %NULL when the output is one file
 */
gchar *
uel_writer_dup_index_path (const UelWriter * writer)
{
  g_return_val_if_fail (writer != NULL, NULL);
  g_return_val_if_fail (writer->state != STATE_DECLARING, NULL);
  return writer->shards->len > 1 ? index_path (writer->location) : NULL;
}
