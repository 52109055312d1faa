/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:uel-loader
 * @title: UelLoader
 *
 * The calls of the Python package `unifiedefficientloader`, for programs
 * that want tensors by name without writing a pipeline.
 *
 * |[<!-- language="C" -->
 * g_autoptr (UelLoader) loader = uel_loader_new ("model.safetensors",
 *     TRUE, &error);
 * g_auto (GStrv) keys = uel_loader_keys (loader);
 *
 * for (guint i = 0; keys[i]; i++) {
 *   g_autoptr (GstBuffer) tensor = uel_loader_get_tensor (loader, keys[i],
 *       &error);
 *   // ... process tensor ...
 *   uel_loader_mark_processed (loader, keys[i]);
 * }
 * ]|
 *
 * In standard mode (@low_memory %FALSE) every tensor is read when the
 * loader is created, as the Python loader does, and
 * uel_loader_mark_processed() frees each.  In low-memory mode nothing is
 * read until uel_loader_get_tensor() asks for a tensor: it reads exactly
 * that tensor's bytes, at its offset.  Either way the header is read and
 * validated once, by #UelHeader, and the shape, rank and dtype of every
 * tensor are known without reading any data.
 *
 * uel_loader_async_stream() streams tensors in batches: a thread reads
 * them through the library's #UelReader while the caller works, and hands
 * them over a whole batch at a time; memory stays bounded by the number of
 * batches read ahead.  Nothing of it needs the `uel` plugin.
 *
 * Files are read through a #UelReader: a sharded checkpoint's shards are
 * opened when needed, at most a bounded number at once, and every read is
 * checked against the file that was validated.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>

#include "uel-error.h"
#include "uel-hostmem.h"
#include "uel-io.h"
#include "uel-live-counter-private.h"
#include "uel-loader.h"
#include "uel-loader-private.h"
#include "uel-meta.h"
#include "uel-pinned.h"
#include "uel-reader-private.h"
#include "uel-select.h"

GST_DEBUG_CATEGORY (uel_loader_debug);
#define GST_CAT_DEFAULT uel_loader_debug

/* Freed tensor memory kept for reuse by the next get_tensor(): a
 * low-memory loop reads tensors of a few sizes over and over, and memory
 * handed back to the system costs a page fault per 4 KiB to touch again. */
#define LOADER_CACHE_BYTES (G_GUINT64_CONSTANT (64) << 20)

/* How long a caller waiting for a batch looks again before it sleeps. */
#define STREAM_SPIN_US 50
#if defined(__x86_64__) || defined(__i386__)
#define SPIN_PAUSE() __builtin_ia32_pause ()
#else
#define SPIN_PAUSE() G_STMT_START { } G_STMT_END
#endif

/* Standard mode reads runs of consecutive small tensors into one block of
 * up to this size, shared by their buffers: a million one-byte tensors
 * are then one read and one allocation, not a million of each. */
#define BLOCK_MAX ((gsize) 1 << 20)

/* a loader that g_initable_init() opened */
#define LOADER_READY(l) (UEL_IS_LOADER (l) && (l)->header != NULL)

/* a preloaded tensor: where its bytes are */
typedef struct
{
  GstMemory *block;             /* a reference; NULL for 0 bytes */
  gsize offset;                 /* of the tensor in @block */
  gboolean held;                /* not yet marked processed */
} Preloaded;

struct _UelLoader
{
  GObject parent;

  gchar *location;
  gboolean low_memory;
  UelHeader *header;
  UelReader *reader;            /* get_tensor()'s reads, its open files */

  gboolean initialized;
  GError *init_error;

  GMutex lock;
  Preloaded *preloaded;         /* standard mode: one per tensor, or NULL */
  guint64 preloaded_bytes;
};

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_LOW_MEMORY,
  PROP_HEADER,
  N_PROPS
};

static GParamSpec *loader_props[N_PROPS];

static void uel_loader_initable_init (GInitableIface * iface);

G_DEFINE_TYPE_WITH_CODE (UelLoader, uel_loader, G_TYPE_OBJECT,
    G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, uel_loader_initable_init);
    GST_DEBUG_CATEGORY_INIT (uel_loader_debug, "uelloader", 0,
        "gst-uel loader API"));

static void
free_preloaded (UelLoader * self)
{
  if (!self->preloaded)
    return;
  for (guint i = 0; i < uel_header_get_n_tensors (self->header); i++)
    if (self->preloaded[i].block)
      gst_memory_unref (self->preloaded[i].block);
  g_clear_pointer (&self->preloaded, g_free);
  self->preloaded_bytes = 0;
}

static void
uel_loader_finalize (GObject * object)
{
  UelLoader *self = UEL_LOADER (object);

  free_preloaded (self);
  g_clear_object (&self->reader);
  g_clear_pointer (&self->header, uel_header_unref);
  g_free (self->location);
  g_clear_error (&self->init_error);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (uel_loader_parent_class)->finalize (object);
}

static void
uel_loader_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  UelLoader *self = UEL_LOADER (object);

  switch (prop_id) {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_LOW_MEMORY:
      self->low_memory = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
uel_loader_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  UelLoader *self = UEL_LOADER (object);

  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_LOW_MEMORY:
      g_value_set_boolean (value, self->low_memory);
      break;
    case PROP_HEADER:
      g_value_set_boxed (value, self->header);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
uel_loader_class_init (UelLoaderClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);

  gobject_class->finalize = uel_loader_finalize;
  gobject_class->set_property = uel_loader_set_property;
  gobject_class->get_property = uel_loader_get_property;

  /**
   * UelLoader:location:
   *
   * The `.safetensors` file, or a sharded checkpoint's `*.index.json`.
   */
  loader_props[PROP_LOCATION] = g_param_spec_string ("location", "Location",
      "The .safetensors file, or a sharded checkpoint's *.index.json", NULL,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * UelLoader:low-memory:
   *
   * %FALSE: read every tensor when the loader is created; %TRUE: read each
   * tensor only when it is asked for.
   */
  loader_props[PROP_LOW_MEMORY] = g_param_spec_boolean ("low-memory",
      "Low memory", "Read each tensor only when it is asked for (false = "
      "read every tensor when the loader is created)", FALSE,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * UelLoader:header:
   *
   * The validated header of the file.
   */
  loader_props[PROP_HEADER] = g_param_spec_boxed ("header", "Header",
      "The validated header of the file", UEL_TYPE_HEADER,
      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (gobject_class, N_PROPS, loader_props);
}

static void
uel_loader_init (UelLoader * self)
{
  g_mutex_init (&self->lock);
}

gboolean
uel_loader_is_ready (UelLoader * loader)
{
  return LOADER_READY (loader);
}

/* Where a block of consecutive tensors that starts at @first ends: the
 * tensors of one file that follow each other in it, up to BLOCK_MAX
 * bytes (a larger tensor is a block alone), each at an offset from the
 * block's start that keeps it aligned for its dtype. */
static guint
block_end (UelHeader * header, guint first)
{
  guint n = uel_header_get_n_tensors (header);
  const UelTensorInfo *a = uel_header_get_tensor (header, first);
  guint64 end = a->file_offset + a->n_bytes;
  guint i;

  for (i = first + 1; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (header, i);
    gsize elem = MAX (uel_dtype_get_bits (t->dtype) / 8, 1);

    if (t->file_index != a->file_index || t->file_offset != end
        || end + t->n_bytes - a->file_offset > BLOCK_MAX
        || (t->file_offset - a->file_offset) % elem != 0)
      break;
    end += t->n_bytes;
  }
  return i;
}

/* Standard mode: every tensor read now, runs of small ones into shared
 * blocks; a buffer is made for a tensor when it is asked for. */
static gboolean
preload (UelLoader * self, GCancellable * cancellable, GError ** error)
{
  guint n = uel_header_get_n_tensors (self->header);
  GstAllocator *allocator = uel_host_allocator_new (0);
  guint first = 0;
  gboolean ok = TRUE;

  self->preloaded = g_new0 (Preloaded, MAX (n, 1));
  while (ok && first < n) {
    const UelTensorInfo *a = uel_header_get_tensor (self->header, first);
    guint end = block_end (self->header, first);
    const UelTensorInfo *z = uel_header_get_tensor (self->header, end - 1);
    guint64 bytes = z->file_offset + z->n_bytes - a->file_offset;
    GstMemory *block = NULL;

    if (g_cancellable_set_error_if_cancelled (cancellable, error)) {
      ok = FALSE;
      break;
    }
    if (bytes > G_MAXSIZE) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: tensor '%s' "
          "of %" G_GUINT64_FORMAT " bytes does not fit this machine's "
          "address space", uel_header_get_file_path (self->header,
              a->file_index), a->name, a->n_bytes);
      ok = FALSE;
      break;
    }
    if (bytes > 0) {
      GstMapInfo map;

      block = gst_allocator_alloc (allocator, (gsize) bytes, NULL);
      if (!block || !gst_memory_map (block, &map, GST_MAP_WRITE)) {
        g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: tensor "
            "'%s': cannot allocate %" G_GUINT64_FORMAT " bytes",
            uel_header_get_file_path (self->header, a->file_index), a->name,
            bytes);
        if (block)
          gst_memory_unref (block);
        ok = FALSE;
        break;
      }
      ok = uel_reader_pread (self->reader, a->file_index, map.data,
          (gsize) bytes, a->file_offset, error);
      gst_memory_unmap (block, &map);
      if (!ok) {
        g_prefix_error (error, "tensor '%s': ", a->name);
        gst_memory_unref (block);
        break;
      }
    }
    for (guint i = first; i < end; i++) {
      const UelTensorInfo *t = uel_header_get_tensor (self->header, i);

      self->preloaded[i].held = TRUE;
      if (t->n_bytes > 0) {
        self->preloaded[i].block = gst_memory_ref (block);
        self->preloaded[i].offset = (gsize) (t->file_offset - a->file_offset);
      }
      self->preloaded_bytes += t->n_bytes;
    }
    if (block)
      gst_memory_unref (block);
    first = end;
  }
  gst_object_unref (allocator);
  if (!ok) {
    /* nothing half-loaded stays behind */
    free_preloaded (self);
    return FALSE;
  }
  GST_INFO ("%s: preloaded %u tensors, %" G_GUINT64_FORMAT " bytes",
      self->location, n, self->preloaded_bytes);
  return TRUE;
}

/* the buffer of a preloaded tensor: a view of its block */
static GstBuffer *
preloaded_buffer (UelLoader * self, guint index, const Preloaded * p)
{
  const UelTensorInfo *info = uel_header_get_tensor (self->header, index);
  GstBuffer *buf = gst_buffer_new ();

  if (p->block)
    gst_buffer_append_memory (buf, gst_memory_share (p->block,
            (gssize) p->offset, (gssize) info->n_bytes));
  uel_buffer_add_tensor_meta (buf, self->header, index, index,
      uel_header_get_n_tensors (self->header));
  GST_BUFFER_OFFSET (buf) = info->file_offset;
  GST_BUFFER_OFFSET_END (buf) = info->file_offset + info->n_bytes;
  return buf;
}

static gboolean
open_loader (UelLoader * self, GCancellable * cancellable, GError ** error)
{
  GstAllocator *allocator;

  if (!self->location || !*self->location) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "no file given: set the loader's location");
    return FALSE;
  }
  self->header = uel_header_open (self->location, error);
  if (!self->header)
    return FALSE;
  self->reader = uel_reader_new (self->header);
  allocator = uel_host_allocator_new (LOADER_CACHE_BYTES);
  uel_reader_set_allocator (self->reader, allocator, NULL);
  gst_object_unref (allocator);

  if (!self->low_memory && !preload (self, cancellable, error)) {
    g_clear_object (&self->reader);
    g_clear_pointer (&self->header, uel_header_unref);
    return FALSE;
  }
  return TRUE;
}

/* GInitable: idempotent, a second call gives the first one's result */
static gboolean
uel_loader_initable_init_impl (GInitable * initable,
    GCancellable * cancellable, GError ** error)
{
  UelLoader *self = UEL_LOADER (initable);

  if (!self->initialized) {
    self->initialized = TRUE;
    open_loader (self, cancellable, &self->init_error);
  }
  if (self->init_error) {
    if (error)
      *error = g_error_copy (self->init_error);
    return FALSE;
  }
  return TRUE;
}

static void
uel_loader_initable_init (GInitableIface * iface)
{
  iface->init = uel_loader_initable_init_impl;
}

/**
 * uel_loader_new:
 * @location: a `.safetensors` file, or a sharded checkpoint's
 *   `*.index.json`
 * @low_memory: %FALSE to read every tensor now (standard mode), %TRUE to
 *   read each tensor only when uel_loader_get_tensor() asks for it
 * @error: return location for a #GError
 *
 * Opens and validates the file's header (see uel_header_open()) and, in
 * standard mode, reads every tensor.
 *
 * Returns: (transfer full) (nullable): the loader, or %NULL with @error
 *   set: #G_FILE_ERROR when a file cannot be opened, #UEL_ERROR for an
 *   invalid file or a failed read
 */
UelLoader *
uel_loader_new (const gchar * location, gboolean low_memory, GError ** error)
{
  g_return_val_if_fail (location != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (UEL_TYPE_LOADER, NULL, error, "location", location,
      "low-memory", low_memory, NULL);
}

/**
 * uel_loader_get_location:
 * @loader: a #UelLoader
 *
 * Returns: (transfer none): the file the loader was opened on
 */
const gchar *
uel_loader_get_location (UelLoader * loader)
{
  g_return_val_if_fail (UEL_IS_LOADER (loader), NULL);
  return loader->location;
}

/**
 * uel_loader_get_low_memory:
 * @loader: a #UelLoader
 *
 * Returns: whether the loader reads tensors on demand
 */
gboolean
uel_loader_get_low_memory (UelLoader * loader)
{
  g_return_val_if_fail (UEL_IS_LOADER (loader), FALSE);
  return loader->low_memory;
}

/**
 * uel_loader_get_header:
 * @loader: a #UelLoader
 *
 * The whole validated header: the Python loader's `_header`, for analysis
 * without reading any tensor (see uel_header_get_tensor()).
 *
 * Returns: (transfer none): the header
 */
UelHeader *
uel_loader_get_header (UelLoader * loader)
{
  g_return_val_if_fail (LOADER_READY (loader), NULL);
  return loader->header;
}

/**
 * uel_loader_keys:
 * @loader: a #UelLoader
 *
 * The names of all tensors, in stream order: the order of their bytes in
 * the file (for a sharded checkpoint, shard by shard in the order of the
 * shards' names), which is the order uel_loader_async_stream() delivers
 * them in.
 *
 * Returns: (transfer full) (array zero-terminated=1): the names; free with
 *   g_strfreev()
 */
gchar **
uel_loader_keys (UelLoader * loader)
{
  guint n;
  gchar **keys;

  g_return_val_if_fail (LOADER_READY (loader), NULL);

  n = uel_header_get_n_tensors (loader->header);
  keys = g_new (gchar *, n + 1);
  for (guint i = 0; i < n; i++)
    keys[i] = g_strdup (uel_header_get_tensor (loader->header, i)->name);
  keys[n] = NULL;
  return keys;
}

/**
 * uel_loader_contains:
 * @loader: a #UelLoader
 * @key: a tensor name
 *
 * Returns: whether the file has a tensor called @key
 */
gboolean
uel_loader_contains (UelLoader * loader, const gchar * key)
{
  g_return_val_if_fail (LOADER_READY (loader), FALSE);
  g_return_val_if_fail (key != NULL, FALSE);
  return uel_header_lookup (loader->header, key, NULL) != NULL;
}

/**
 * uel_loader_get_metadata:
 * @loader: a #UelLoader
 *
 * The file's `__metadata__` map (for a sharded checkpoint, the index's
 * `metadata`).
 *
 * Returns: (transfer none) (element-type utf8 utf8): the metadata, empty
 *   when the file has none
 */
GHashTable *
uel_loader_get_metadata (UelLoader * loader)
{
  g_return_val_if_fail (LOADER_READY (loader), NULL);
  return uel_header_get_metadata (loader->header);
}

static const UelTensorInfo *
lookup (UelLoader * loader, const gchar * key, guint * index,
    GError ** error)
{
  const UelTensorInfo *info = uel_header_lookup (loader->header, key, index);

  if (!info)
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "%s: no tensor named '%s'", loader->location, key);
  return info;
}

/**
 * uel_loader_get_tensor_info:
 * @loader: a #UelLoader
 * @key: a tensor name
 * @error: return location for a #GError
 *
 * Everything the header says of one tensor: dtype, shape, size, offsets,
 * file.  Reads nothing.
 *
 * Returns: (transfer none) (nullable): the tensor's entry, owned by the
 *   loader's header, or %NULL with %UEL_ERROR_INVALID_ARGUMENT when there
 *   is no such tensor
 */
const UelTensorInfo *
uel_loader_get_tensor_info (UelLoader * loader, const gchar * key,
    GError ** error)
{
  g_return_val_if_fail (LOADER_READY (loader), NULL);
  g_return_val_if_fail (key != NULL, NULL);
  return lookup (loader, key, NULL, error);
}

/**
 * uel_loader_get_shape:
 * @loader: a #UelLoader
 * @key: a tensor name
 * @shape: (out) (transfer none) (array length=n_dims) (optional)
 *   (nullable): the dimensions, owned by the loader (%NULL for a scalar)
 * @n_dims: (out) (optional): the rank, 0 for a scalar
 * @error: return location for a #GError
 *
 * The tensor's shape, from the header alone.
 *
 * Returns: %TRUE, or %FALSE with %UEL_ERROR_INVALID_ARGUMENT when there is
 *   no such tensor
 */
gboolean
uel_loader_get_shape (UelLoader * loader, const gchar * key,
    const guint64 ** shape, guint * n_dims, GError ** error)
{
  const UelTensorInfo *info;

  g_return_val_if_fail (LOADER_READY (loader), FALSE);
  g_return_val_if_fail (key != NULL, FALSE);

  info = lookup (loader, key, NULL, error);
  if (!info)
    return FALSE;
  if (shape)
    *shape = info->n_dims ? info->shape : NULL;
  if (n_dims)
    *n_dims = info->n_dims;
  return TRUE;
}

/**
 * uel_loader_get_ndim:
 * @loader: a #UelLoader
 * @key: a tensor name
 * @error: return location for a #GError
 *
 * The tensor's number of dimensions, from the header alone.
 *
 * Returns: the rank (0 for a scalar), or -1 with
 *   %UEL_ERROR_INVALID_ARGUMENT when there is no such tensor
 */
gint
uel_loader_get_ndim (UelLoader * loader, const gchar * key, GError ** error)
{
  const UelTensorInfo *info;

  g_return_val_if_fail (LOADER_READY (loader), -1);
  g_return_val_if_fail (key != NULL, -1);

  info = lookup (loader, key, NULL, error);
  return info ? (gint) info->n_dims : -1;
}

/**
 * uel_loader_get_dtype:
 * @loader: a #UelLoader
 * @key: a tensor name
 * @error: return location for a #GError
 *
 * The tensor's element type, from the header alone.
 *
 * Returns: the dtype, or %UEL_DTYPE_INVALID with
 *   %UEL_ERROR_INVALID_ARGUMENT when there is no such tensor
 */
UelDType
uel_loader_get_dtype (UelLoader * loader, const gchar * key, GError ** error)
{
  const UelTensorInfo *info;

  g_return_val_if_fail (LOADER_READY (loader), UEL_DTYPE_INVALID);
  g_return_val_if_fail (key != NULL, UEL_DTYPE_INVALID);

  info = lookup (loader, key, NULL, error);
  return info ? info->dtype : UEL_DTYPE_INVALID;
}

/**
 * uel_loader_get_tensor:
 * @loader: a #UelLoader
 * @key: a tensor name
 * @error: return location for a #GError
 *
 * One tensor, as `uelsrc` would deliver it: a #GstBuffer of its bytes
 * (aligned for its dtype; empty for a tensor of zero bytes) with a
 * #UelTensorMeta (its index and count are those of the whole file) and the
 * tensor's file offsets as the buffer's offset and offset-end.
 *
 * In standard mode this is a read-only view of the preloaded bytes, which
 * the loader shares with every buffer it hands out for the tensor: make
 * it writable (gst_buffer_make_writable() copies it) before changing it.
 * Otherwise, and after uel_loader_mark_processed() has released it, the
 * tensor's bytes are read now from its offset, and nothing else.  Safe to
 * call from several threads at once.
 *
 * Returns: (transfer full) (nullable): the tensor, or %NULL with @error
 *   set: %UEL_ERROR_INVALID_ARGUMENT when there is no such tensor,
 *   %UEL_ERROR_FILE_CHANGED or %UEL_ERROR_IO when it cannot be read
 */
GstBuffer *
uel_loader_get_tensor (UelLoader * loader, const gchar * key,
    GError ** error)
{
  GstBuffer *buf = NULL;
  guint index;

  g_return_val_if_fail (LOADER_READY (loader), NULL);
  g_return_val_if_fail (key != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!lookup (loader, key, &index, error))
    return NULL;
  g_mutex_lock (&loader->lock);
  if (loader->preloaded && loader->preloaded[index].held)
    buf = preloaded_buffer (loader, index, &loader->preloaded[index]);
  g_mutex_unlock (&loader->lock);
  if (buf)
    return buf;
  return uel_reader_read_tensor (loader->reader, index, error);
}

/**
 * uel_loader_mark_processed:
 * @loader: a #UelLoader
 * @key: a tensor name
 *
 * Says that the caller is done with a tensor: in standard mode the
 * loader's preloaded copy is released.  Its memory goes when the caller's
 * buffers of it go too, and, for a tensor under 1 MiB, when the small
 * tensors read with it in one block are released as well (runs of small
 * tensors are read into blocks of up to 1 MiB: a million one-byte tensors
 * are one read of one megabyte, not a million allocations).  In
 * low-memory mode the loader holds no tensor, and this does nothing.
 *
 * Returns: whether the loader released a preloaded tensor
 */
gboolean
uel_loader_mark_processed (UelLoader * loader, const gchar * key)
{
  GstMemory *block = NULL;
  gboolean released = FALSE;
  guint index;

  g_return_val_if_fail (LOADER_READY (loader), FALSE);
  g_return_val_if_fail (key != NULL, FALSE);

  if (!uel_header_lookup (loader->header, key, &index))
    return FALSE;
  g_mutex_lock (&loader->lock);
  if (loader->preloaded && loader->preloaded[index].held) {
    block = g_steal_pointer (&loader->preloaded[index].block);
    loader->preloaded[index].held = FALSE;
    loader->preloaded_bytes -= uel_header_get_tensor (loader->header,
        index)->n_bytes;
    released = TRUE;
  }
  g_mutex_unlock (&loader->lock);
  if (block)
    gst_memory_unref (block);
  return released;
}

/**
 * uel_loader_get_preloaded_bytes:
 * @loader: a #UelLoader
 *
 * Returns: the bytes of the tensors the loader still holds: all of them
 *   after a standard-mode uel_loader_new(), less those
 *   uel_loader_mark_processed() released; 0 in low-memory mode
 */
guint64
uel_loader_get_preloaded_bytes (UelLoader * loader)
{
  guint64 n;

  g_return_val_if_fail (LOADER_READY (loader), 0);
  g_mutex_lock (&loader->lock);
  n = loader->preloaded_bytes;
  g_mutex_unlock (&loader->lock);
  return n;
}

/**
 * uel_loader_load_all:
 * @loader: a #UelLoader
 * @error: return location for a #GError
 *
 * Every tensor, by name: uel_loader_get_tensor() for each key.  In
 * low-memory mode this reads the whole file into memory.
 *
 * Returns: (transfer full) (element-type utf8 GstBuffer) (nullable): a
 *   table of tensor name → #GstBuffer (the table owns its keys and
 *   buffers), or %NULL with @error set
 */
GHashTable *
uel_loader_load_all (UelLoader * loader, GError ** error)
{
  GHashTable *all;
  guint n;

  g_return_val_if_fail (LOADER_READY (loader), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  all = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      (GDestroyNotify) gst_buffer_unref);
  n = uel_header_get_n_tensors (loader->header);
  for (guint i = 0; i < n; i++) {
    const gchar *name = uel_header_get_tensor (loader->header, i)->name;
    GstBuffer *buf = uel_loader_get_tensor (loader, name, error);

    if (!buf) {
      g_hash_table_unref (all);
      return NULL;
    }
    g_hash_table_insert (all, g_strdup (name), buf);
  }
  return all;
}

/* ------------------------------------------------------------------ */
/* the stream */

struct _UelTensorStream
{
  GObject parent;

  UelLoader *loader;
  UelReader *reader;            /* the reading thread's */
  GstAllocator *pool;           /* pin_memory: the pinned pool, or NULL */
  GThread *thread;
  guint batch_size;
  guint prefetch_batches;
  guint n_tensors;              /* in the stream */
  guint64 pool_size;

  /* between the reading thread and the caller: each waits on cond, and
   * is woken only when it says it waits (a wake-up is a system call, and
   * a batch of small tensors takes microseconds) */
  GMutex lock;
  GCond cond;
  gboolean reader_waits;
  gboolean caller_waits;
  gint n_batches;               /* atomic: batches.length, read unlocked */
  GQueue batches;               /* GPtrArray *, read and not yet taken */
  guint64 queued_tensors;
  guint64 queued_bytes;
  gboolean finished;            /* the reading thread is done */
  GError *error;                /* ... because of this */
  gboolean stopping;            /* the caller stopped the stream */

  /* the caller's */
  gboolean done;                /* no more batches */
  UelLiveCounter *counter;
  UelTensorStreamStats stats;   /* under lock */
};

G_DEFINE_TYPE (UelTensorStream, uel_tensor_stream, G_TYPE_OBJECT);

static void
uel_tensor_stream_finalize (GObject * object)
{
  UelTensorStream *self = UEL_TENSOR_STREAM (object);

  uel_tensor_stream_stop (self);
  g_clear_object (&self->reader);
  gst_clear_object (&self->pool);
  g_clear_object (&self->loader);
  g_clear_error (&self->error);
  uel_live_counter_unref (self->counter);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (uel_tensor_stream_parent_class)->finalize (object);
}

static void
uel_tensor_stream_class_init (UelTensorStreamClass * klass)
{
  G_OBJECT_CLASS (klass)->finalize = uel_tensor_stream_finalize;
}

static void
uel_tensor_stream_init (UelTensorStream * self)
{
  self->counter = uel_live_counter_new ();
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  g_queue_init (&self->batches);
}

/* The pinned pool must hold every tensor that can be alive at once
 * (see uel_tensor_stream_get_max_live_tensors()), or the reader would wait
 * for memory that a caller holding its batches never gives back: the
 * largest sum of that many consecutive tensors, plus the largest tensor as
 * room against fragmentation. */
static guint64
pool_size_for (UelHeader * header, GArray * selected, guint64 window)
{
  guint64 sum = 0, best = 0, largest = 0;

  for (guint i = 0; i < selected->len; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (header,
        g_array_index (selected, guint, i));
    guint64 s = (t->n_bytes + 4095) / 4096 * 4096;

    sum += s;
    if (i >= window)
      sum -= (uel_header_get_tensor (header, g_array_index (selected, guint,
                  i - window))->n_bytes + 4095) / 4096 * 4096;
    best = MAX (best, sum);
    largest = MAX (largest, s);
  }
  return MAX (best + largest, G_GUINT64_CONSTANT (2) << 20);
}

/* The reading thread: a batch at a time, once there is room for it among
 * the prefetched ones, so that the batches read and not yet taken never
 * exceed prefetch_batches. */
static gpointer
stream_thread (gpointer data)
{
  UelTensorStream *self = data;
  guint delivered = 0;
  GError *err = NULL;
  gboolean more = TRUE;

  while (more) {
    GPtrArray *batch;
    guint64 bytes = 0, ahead;
    guint free_after;

    g_mutex_lock (&self->lock);
    while (!self->stopping && self->batches.length >= self->prefetch_batches) {
      self->reader_waits = TRUE;
      g_cond_wait (&self->cond, &self->lock);
    }
    self->reader_waits = FALSE;
    /* the batches that may still be read after this one: the room the
     * reader may read ahead into (more may free up; this is the least) */
    free_after = self->prefetch_batches - 1 - self->batches.length;
    g_mutex_unlock (&self->lock);
    if (g_atomic_int_get (&self->stopping))
      break;

    /* sized for what is left, not for the batch size asked: a batch of
     * G_MAXUINT tensors is the whole stream, not 32 GiB of slots */
    batch = g_ptr_array_new_full (MIN (self->batch_size,
            self->n_tensors - delivered), (GDestroyNotify) gst_buffer_unref);
    while (batch->len < self->batch_size) {
      GstBuffer *buf;

      /* reads ahead (runs of small tensors, parts of large ones) stay
       * within this batch and the prefetched ones still to come, all
       * counted in the bound */
      ahead = (guint64) self->batch_size - batch->len +
          (guint64) self->batch_size * free_after;
      uel_reader_set_max_ahead (self->reader, (guint) MIN (ahead,
              G_MAXUINT));
      buf = uel_reader_next (self->reader, &err);

      if (!buf) {
        more = FALSE;
        break;
      }
      uel_live_counter_track (self->counter, buf);
      bytes += gst_buffer_get_size (buf);
      g_ptr_array_add (batch, buf);
    }
    delivered += batch->len;

    g_mutex_lock (&self->lock);
    if (batch->len > 0 && !self->stopping) {
      g_queue_push_tail (&self->batches, batch);
      g_atomic_int_inc (&self->n_batches);
      self->queued_tensors += batch->len;
      self->queued_bytes += bytes;
      self->stats.peak_queued_tensors = MAX (self->stats.peak_queued_tensors,
          self->queued_tensors);
      self->stats.peak_queued_bytes = MAX (self->stats.peak_queued_bytes,
          self->queued_bytes);
      batch = NULL;
    }
    if (!more) {
      g_atomic_int_set (&self->finished, TRUE);
      self->error = g_steal_pointer (&err);
    }
    if (self->caller_waits || self->finished)
      g_cond_broadcast (&self->cond);
    g_mutex_unlock (&self->lock);
    if (batch)
      g_ptr_array_unref (batch);
  }
  g_clear_error (&err);
  uel_reader_stop (self->reader);
  g_mutex_lock (&self->lock);
  g_atomic_int_set (&self->finished, TRUE);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  return NULL;
}

/**
 * uel_loader_async_stream:
 * @loader: a #UelLoader
 * @keys: (array zero-terminated=1) (nullable): the names of the tensors to
 *   stream, or %NULL for all of them
 * @batch_size: tensors per batch (at least 1; any larger value, G_MAXUINT
 *   included, is fine: a batch never holds more than the stream)
 * @prefetch_batches: batches read ahead while the caller works (at least
 *   1)
 * @pin_memory: place the tensors in pinned (page-locked) host memory,
 *   ready for fast copies to a GPU; without a CUDA device the memory is
 *   plain page-aligned host memory
 * @error: return location for a #GError
 *
 * Streams tensors in batches, as the Python loader's `async_stream()`: a
 * thread reads them through a #UelReader (large tensors in parallel parts)
 * while the caller works, and hands them over a batch at a time.  With
 * @pin_memory the thread reads straight into one pinned pool, pinned
 * once, sized to hold every tensor that can be alive at once (see
 * uel_tensor_stream_get_max_live_tensors()).
 *
 * Tensors come in stream order (see uel_loader_keys()), whatever the order
 * of @keys; a name given twice is streamed once; names are looked up as
 * they are (no patterns).  Each batch holds @batch_size tensors, the last
 * one fewer.  The stream reads from the file in either mode of the loader:
 * preloaded tensors are neither used nor freed by it.
 *
 * Memory is bounded as in the Python loader: at most @prefetch_batches
 * batches are read ahead (counting the one being read), and reading waits
 * while they are all there; nothing is read beyond them (see
 * uel_tensor_stream_get_max_live_tensors()).
 *
 * Returns: (transfer full) (nullable): the stream, or %NULL with @error
 *   set: %UEL_ERROR_INVALID_ARGUMENT for an unknown name or a zero size,
 *   the reader's error when the first file cannot be opened (it changed
 *   since the loader validated it, say), %UEL_ERROR_NO_MEMORY when the
 *   pinned pool cannot be had
 */
UelTensorStream *
uel_loader_async_stream (UelLoader * loader, const gchar * const *keys,
    guint batch_size, guint prefetch_batches, gboolean pin_memory,
    GError ** error)
{
  g_autoptr (UelTensorStream) self = NULL;
  g_autoptr (UelTensorFilter) filter = uel_tensor_filter_new ();
  g_autoptr (GArray) selected = NULL;
  UelHeader *header;

  g_return_val_if_fail (uel_loader_is_ready (loader), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  header = uel_loader_get_header (loader);

  if (batch_size == 0 || prefetch_batches == 0) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "batch_size (%u) and prefetch_batches (%u) must be at least 1",
        batch_size, prefetch_batches);
    return NULL;
  }
  if (keys) {
    for (guint i = 0; keys[i]; i++) {
      if (!uel_loader_get_tensor_info (loader, keys[i], error))
        return NULL;
      uel_tensor_filter_add_name (filter, keys[i]);
    }
    if (!keys[0])
      selected = g_array_new (FALSE, FALSE, sizeof (guint));
  }
  if (!selected)
    selected = uel_tensor_filter_select (filter, header, NULL, error);
  if (!selected)
    return NULL;

  self = g_object_new (UEL_TYPE_TENSOR_STREAM, NULL);
  self->loader = g_object_ref (loader);
  self->batch_size = batch_size;
  self->prefetch_batches = prefetch_batches;
  self->n_tensors = selected->len;
  if (selected->len == 0) {
    self->done = TRUE;
    return g_steal_pointer (&self);
  }

  self->reader = uel_reader_new (header);
  uel_reader_set_tensors (self->reader, (const guint *) selected->data,
      selected->len);
  /* everything read is in a batch and counted in the bound: the reader
   * reads ahead only within the batch being filled (see stream_thread) */
  if (pin_memory) {
    self->pool_size = pool_size_for (header, selected,
        uel_tensor_stream_get_max_live_tensors (self));
    self->pool = uel_pinned_allocator_new (self->pool_size, -1);
    if (!uel_pinned_allocator_prepare (UEL_PINNED_ALLOCATOR (self->pool),
            error))
      return NULL;
    uel_reader_set_allocator (self->reader, self->pool, NULL);
  }
  if (!uel_reader_start (self->reader, error))
    return NULL;

  GST_DEBUG ("%s: streaming %u tensors, batches of %u, %u prefetched%s",
      uel_loader_get_location (loader), selected->len, batch_size,
      prefetch_batches, pin_memory ? ", pinned" : "");
  self->thread = g_thread_new ("uel-stream", stream_thread, self);
  return g_steal_pointer (&self);
}

/**
 * uel_tensor_stream_next:
 * @stream: a #UelTensorStream
 * @error: return location for a #GError
 *
 * Waits for the next batch of tensors, each a #GstBuffer with its
 * #UelTensorMeta (uel_tensor_meta_get_name() gives its key).  The caller
 * owns the batch: freeing it (or the buffers) gives their memory back to
 * the stream, which is what lets reading go on.
 *
 * Returns: (transfer full) (element-type GstBuffer) (nullable): the batch,
 *   or %NULL at the end of the stream (@error unset) or on an error (@error
 *   set: %UEL_ERROR_FILE_CHANGED for a file that changed, %UEL_ERROR_IO
 *   for a failed read, #G_FILE_ERROR for a shard that cannot be opened,
 *   naming the file and the tensor); after %NULL the stream is over
 */
GPtrArray *
uel_tensor_stream_next (UelTensorStream * stream, GError ** error)
{
  GPtrArray *batch;
  GError *err = NULL;

  g_return_val_if_fail (UEL_IS_TENSOR_STREAM (stream), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (stream->done)
    return NULL;
  /* A caller faster than the reader (small tensors) finds nothing ready,
   * and sleeping costs two context switches a batch (a million one-byte
   * tensors in batches of 8: 5.0 s instead of 2.4 s): look again for a
   * few microseconds first, about what a batch of small tensors takes. */
  if (g_atomic_int_get (&stream->n_batches) == 0) {
    gint64 until = g_get_monotonic_time () + STREAM_SPIN_US;

    while (g_atomic_int_get (&stream->n_batches) == 0
        && !g_atomic_int_get (&stream->finished)
        && g_get_monotonic_time () < until)
      for (guint i = 0; i < 64; i++)
        SPIN_PAUSE ();
  }
  g_mutex_lock (&stream->lock);
  while (g_queue_is_empty (&stream->batches) && !stream->finished) {
    stream->caller_waits = TRUE;
    g_cond_wait (&stream->cond, &stream->lock);
  }
  stream->caller_waits = FALSE;
  batch = g_queue_pop_head (&stream->batches);
  if (batch) {
    g_atomic_int_add (&stream->n_batches, -1);
    stream->queued_tensors -= batch->len;
    for (guint i = 0; i < batch->len; i++) {
      guint64 size = gst_buffer_get_size (g_ptr_array_index (batch, i));

      stream->queued_bytes -= size;
      stream->stats.bytes += size;
    }
    stream->stats.tensors += batch->len;
    stream->stats.batches++;
    /* room for one more batch */
    if (stream->reader_waits)
      g_cond_broadcast (&stream->cond);
  } else {
    err = g_steal_pointer (&stream->error);
  }
  g_mutex_unlock (&stream->lock);

  if (!batch) {
    if (err)
      g_propagate_error (error, err);
    uel_tensor_stream_stop (stream);
  }
  return batch;
}

/**
 * uel_tensor_stream_stop:
 * @stream: a #UelTensorStream
 *
 * Stops reading and frees the batches read ahead; later calls to
 * uel_tensor_stream_next() return %NULL.  Batches already returned stay
 * valid.  Freeing the stream stops it too.
 */
void
uel_tensor_stream_stop (UelTensorStream * stream)
{
  GPtrArray *batch;

  g_return_if_fail (UEL_IS_TENSOR_STREAM (stream));

  stream->done = TRUE;
  if (!stream->thread)
    return;
  g_mutex_lock (&stream->lock);
  stream->stopping = TRUE;
  g_cond_broadcast (&stream->cond);
  g_mutex_unlock (&stream->lock);
  /* a read waiting for pool memory that the caller holds gives up now */
  uel_reader_set_flushing (stream->reader, TRUE);
  if (stream->pool)
    uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (stream->pool),
        TRUE);
  g_thread_join (g_steal_pointer (&stream->thread));
  while ((batch = g_queue_pop_head (&stream->batches)))
    g_ptr_array_unref (batch);
  g_atomic_int_set (&stream->n_batches, 0);
  stream->queued_tensors = stream->queued_bytes = 0;
}

/**
 * uel_tensor_stream_get_max_live_tensors:
 * @stream: a #UelTensorStream
 *
 * The stream's bound on tensors in memory at once, counting those read
 * ahead and those the caller holds, for a caller that keeps at most one
 * batch while it waits for the next one (as a `for batch in stream` loop
 * does): batch_size × (prefetch_batches + 2), or every tensor of the
 * stream if that is fewer.  That is the prefetched batches (the one being
 * read among them), the batch the caller takes, and the caller's previous
 * batch.
 *
 * Returns: the bound
 */
guint64
uel_tensor_stream_get_max_live_tensors (UelTensorStream * stream)
{
  guint64 bound;

  g_return_val_if_fail (UEL_IS_TENSOR_STREAM (stream), 0);
  /* no overflow: both factors are below 2^33 */
  bound = (guint64) stream->batch_size * ((guint64) stream->prefetch_batches
      + 2);
  return MIN (bound, stream->n_tensors);
}

/**
 * uel_tensor_stream_get_stats:
 * @stream: a #UelTensorStream
 * @stats: (out caller-allocates): the counters
 *
 * Reads the stream's counters; after the stream has stopped, their last
 * values.
 */
void
uel_tensor_stream_get_stats (UelTensorStream * stream,
    UelTensorStreamStats * stats)
{
  UelTensorStreamStats s;

  g_return_if_fail (UEL_IS_TENSOR_STREAM (stream));
  g_return_if_fail (stats != NULL);

  g_mutex_lock (&stream->lock);
  s = stream->stats;
  g_mutex_unlock (&stream->lock);
  uel_live_counter_get (stream->counter, &s.live_tensors, &s.live_bytes,
      &s.peak_live_tensors, &s.peak_live_bytes);
  s.pinned_pool_bytes = stream->pool_size;
  *stats = s;
}
