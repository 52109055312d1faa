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
 * uel_loader_async_stream() streams tensors in batches through a real
 * pipeline, `uelsrc ! uelqueue ! [uelpin !] appsink`, built from element
 * names like any application would (the `uel` plugin must be installed or
 * on `GST_PLUGIN_PATH`): reading runs in the pipeline's threads while the
 * caller works, and memory stays bounded by the queue.
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
#include "uel-loader.h"
#include "uel-meta.h"
#include "uel-select.h"

GST_DEBUG_CATEGORY_STATIC (uel_loader_debug);
#define GST_CAT_DEFAULT uel_loader_debug

/* Freed tensor memory kept for reuse by the next get_tensor(): a
 * low-memory loop reads tensors of a few sizes over and over, and memory
 * handed back to the system costs a page fault per 4 KiB to touch again. */
#define LOADER_CACHE_BYTES (G_GUINT64_CONSTANT (64) << 20)

/* The prefetch queue of a stream is polled this often for errors while
 * the caller waits for a tensor; a tensor that arrives wakes it at once. */
#define STREAM_POLL (100 * GST_MSECOND)

/* a loader that g_initable_init() opened */
#define LOADER_READY(l) (UEL_IS_LOADER (l) && (l)->header != NULL)

struct _UelLoader
{
  GObject parent;

  gchar *location;
  gboolean low_memory;
  UelHeader *header;
  gint *fds;                    /* one per file of the header */
  guint n_fds;
  GstAllocator *allocator;      /* UelHostAllocator */

  gboolean initialized;
  GError *init_error;

  GMutex lock;
  GstBuffer **preloaded;        /* standard mode: one per tensor, or NULL */
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
uel_loader_finalize (GObject * object)
{
  UelLoader *self = UEL_LOADER (object);

  if (self->preloaded) {
    for (guint i = 0; i < uel_header_get_n_tensors (self->header); i++)
      gst_clear_buffer (&self->preloaded[i]);
    g_free (self->preloaded);
  }
  for (guint i = 0; i < self->n_fds; i++)
    if (self->fds[i] >= 0)
      close (self->fds[i]);
  g_free (self->fds);
  g_clear_pointer (&self->header, uel_header_unref);
  gst_clear_object (&self->allocator);
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

static gboolean
open_files (UelLoader * self, GError ** error)
{
  guint n = uel_header_get_n_files (self->header);

  self->fds = g_new (gint, n);
  self->n_fds = n;
  for (guint i = 0; i < n; i++)
    self->fds[i] = -1;

  for (guint i = 0; i < n; i++) {
    self->fds[i] = uel_header_open_file (self->header, i, 0, error);
    if (self->fds[i] < 0)
      return FALSE;
  }
  return TRUE;
}

/* Reads one tensor at its offset into recycled, page-aligned memory (so
 * that the data is aligned for any dtype) and describes it as uelsrc
 * does: a #UelTensorMeta, and the file offsets as the buffer's offsets. */
static GstBuffer *
read_tensor (UelLoader * self, guint index, GError ** error)
{
  const UelTensorInfo *info = uel_header_get_tensor (self->header, index);
  const gchar *path = uel_header_get_file_path (self->header,
      info->file_index);
  GstBuffer *buf = gst_buffer_new ();
  GstMemory *mem;
  GstMapInfo map;

  if (info->n_bytes > G_MAXSIZE) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: tensor '%s' of %"
        G_GUINT64_FORMAT " bytes does not fit this machine's address space",
        path, info->name, info->n_bytes);
    gst_buffer_unref (buf);
    return NULL;
  }
  if (info->n_bytes > 0) {
    mem = gst_allocator_alloc (self->allocator, (gsize) info->n_bytes, NULL);
    if (!mem || !gst_memory_map (mem, &map, GST_MAP_WRITE)) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: tensor '%s': "
          "cannot allocate %" G_GUINT64_FORMAT " bytes", path, info->name,
          info->n_bytes);
      if (mem)
        gst_memory_unref (mem);
      gst_buffer_unref (buf);
      return NULL;
    }
    if (!uel_pread_full (self->fds[info->file_index], map.data, map.size,
            info->file_offset, path, error)) {
      g_prefix_error (error, "tensor '%s': ", info->name);
      gst_memory_unmap (mem, &map);
      gst_memory_unref (mem);
      gst_buffer_unref (buf);
      return NULL;
    }
    gst_memory_unmap (mem, &map);
    gst_buffer_append_memory (buf, mem);
  }
  uel_buffer_add_tensor_meta (buf, self->header, index, index,
      uel_header_get_n_tensors (self->header));
  GST_BUFFER_OFFSET (buf) = info->file_offset;
  GST_BUFFER_OFFSET_END (buf) = info->file_offset + info->n_bytes;
  return buf;
}

static gboolean
open_loader (UelLoader * self, GCancellable * cancellable, GError ** error)
{
  guint n;

  if (!self->location || !*self->location) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "no file given: set the loader's location");
    return FALSE;
  }
  self->header = uel_header_open (self->location, error);
  if (!self->header)
    return FALSE;
  if (!open_files (self, error)) {
    g_clear_pointer (&self->header, uel_header_unref);
    return FALSE;
  }
  self->allocator = uel_host_allocator_new (LOADER_CACHE_BYTES);

  n = uel_header_get_n_tensors (self->header);
  if (self->low_memory)
    return TRUE;

  self->preloaded = g_new0 (GstBuffer *, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    if (g_cancellable_set_error_if_cancelled (cancellable, error)
        || !(self->preloaded[i] = read_tensor (self, i, error))) {
      /* nothing half-loaded stays behind */
      for (guint k = 0; k < i; k++)
        gst_clear_buffer (&self->preloaded[k]);
      g_clear_pointer (&self->preloaded, g_free);
      self->preloaded_bytes = 0;
      g_clear_pointer (&self->header, uel_header_unref);
      return FALSE;
    }
    self->preloaded_bytes += uel_header_get_tensor (self->header,
        i)->n_bytes;
  }
  GST_INFO ("%s: preloaded %u tensors, %" G_GUINT64_FORMAT " bytes",
      self->location, n, self->preloaded_bytes);
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
 * In standard mode this is the preloaded buffer, shared: make it writable
 * (gst_buffer_make_writable() copies it) before changing it.  Otherwise,
 * and after uel_loader_mark_processed() has freed it, the tensor's bytes
 * are read now from its offset, and nothing else.  Safe to call from
 * several threads at once.
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
  if (loader->preloaded && loader->preloaded[index])
    buf = gst_buffer_ref (loader->preloaded[index]);
  g_mutex_unlock (&loader->lock);
  if (buf)
    return buf;
  return read_tensor (loader, index, error);
}

/**
 * uel_loader_mark_processed:
 * @loader: a #UelLoader
 * @key: a tensor name
 *
 * Says that the caller is done with a tensor: in standard mode the
 * loader's preloaded copy is released (its memory goes when the caller's
 * references go too).  In low-memory mode the loader holds no tensor, and
 * this does nothing.
 *
 * Returns: whether the loader released a preloaded tensor
 */
gboolean
uel_loader_mark_processed (UelLoader * loader, const gchar * key)
{
  GstBuffer *buf = NULL;
  guint index;

  g_return_val_if_fail (LOADER_READY (loader), FALSE);
  g_return_val_if_fail (key != NULL, FALSE);

  if (!uel_header_lookup (loader->header, key, &index))
    return FALSE;
  g_mutex_lock (&loader->lock);
  if (loader->preloaded && loader->preloaded[index]) {
    buf = loader->preloaded[index];
    loader->preloaded[index] = NULL;
    loader->preloaded_bytes -= uel_header_get_tensor (loader->header,
        index)->n_bytes;
  }
  g_mutex_unlock (&loader->lock);
  if (!buf)
    return FALSE;
  gst_buffer_unref (buf);
  return TRUE;
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

/* Counts the tensors read and not yet freed.  Shared with the buffers
 * (which may outlive the stream), hence reference-counted. */
typedef struct
{
  gint ref_count;
  GMutex lock;
  guint64 tensors;
  guint64 bytes;
  guint64 peak_tensors;
  guint64 peak_bytes;
} LiveCounter;

typedef struct
{
  LiveCounter *counter;
  guint64 bytes;
} LiveToken;

static GQuark live_quark;

static LiveCounter *
live_counter_ref (LiveCounter * c)
{
  g_atomic_int_inc (&c->ref_count);
  return c;
}

static void
live_counter_unref (LiveCounter * c)
{
  if (g_atomic_int_dec_and_test (&c->ref_count)) {
    g_mutex_clear (&c->lock);
    g_free (c);
  }
}

static void
live_token_free (gpointer data)
{
  LiveToken *t = data;

  g_mutex_lock (&t->counter->lock);
  t->counter->tensors--;
  t->counter->bytes -= t->bytes;
  g_mutex_unlock (&t->counter->lock);
  live_counter_unref (t->counter);
  g_free (t);
}

/* counts @buf as live until its last reference goes, once */
static void
live_track (LiveCounter * c, GstBuffer * buf)
{
  LiveToken *t;

  if (gst_mini_object_get_qdata (GST_MINI_OBJECT_CAST (buf), live_quark))
    return;
  t = g_new (LiveToken, 1);
  t->counter = live_counter_ref (c);
  t->bytes = gst_buffer_get_size (buf);
  g_mutex_lock (&c->lock);
  c->tensors++;
  c->bytes += t->bytes;
  c->peak_tensors = MAX (c->peak_tensors, c->tensors);
  c->peak_bytes = MAX (c->peak_bytes, c->bytes);
  g_mutex_unlock (&c->lock);
  gst_mini_object_set_qdata (GST_MINI_OBJECT_CAST (buf), live_quark, t,
      live_token_free);
}

struct _UelTensorStream
{
  GObject parent;

  UelLoader *loader;
  GstElement *pipeline;
  GstElement *queue;
  GstElement *sink;
  GHashTable *wanted;           /* names asked for, or NULL for all */
  guint batch_size;
  guint prefetch_batches;
  guint64 pool_size;
  gboolean done;                /* no more batches */
  gboolean stopped;             /* the pipeline is in NULL */
  LiveCounter *counter;
  UelTensorStreamStats stats;
};

G_DEFINE_TYPE (UelTensorStream, uel_tensor_stream, G_TYPE_OBJECT);

static void
uel_tensor_stream_finalize (GObject * object)
{
  UelTensorStream *self = UEL_TENSOR_STREAM (object);

  uel_tensor_stream_stop (self);
  gst_clear_object (&self->queue);
  gst_clear_object (&self->sink);
  gst_clear_object (&self->pipeline);
  g_clear_pointer (&self->wanted, g_hash_table_unref);
  g_clear_object (&self->loader);
  live_counter_unref (self->counter);
  G_OBJECT_CLASS (uel_tensor_stream_parent_class)->finalize (object);
}

static void
uel_tensor_stream_class_init (UelTensorStreamClass * klass)
{
  G_OBJECT_CLASS (klass)->finalize = uel_tensor_stream_finalize;
  live_quark = g_quark_from_static_string ("uel-tensor-stream-live");
}

static void
uel_tensor_stream_init (UelTensorStream * self)
{
  self->counter = g_new0 (LiveCounter, 1);
  self->counter->ref_count = 1;
  g_mutex_init (&self->counter->lock);
}

/* on uelsrc's source pad: drops what the caller did not ask for (uelsrc
 * selects by pattern, a superset where names hold pattern characters) and
 * counts the rest as live */
static GstPadProbeReturn
src_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  UelTensorStream *self = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);

  if (self->wanted && meta
      && !g_hash_table_contains (self->wanted,
          uel_tensor_meta_get_name (meta)))
    return GST_PAD_PROBE_DROP;
  live_track (self->counter, buf);
  return GST_PAD_PROBE_OK;
}

/* on the appsink's pad: counts pinned copies made on the way */
static GstPadProbeReturn
sink_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  UelTensorStream *self = data;

  live_track (self->counter, GST_PAD_PROBE_INFO_BUFFER (info));
  return GST_PAD_PROBE_OK;
}

/* a new element, not floating, or NULL with @error set */
static GstElement *
make_element (const gchar * factory, GError ** error)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  if (e)
    gst_object_ref_sink (e);
  else
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "no element '%s': the %s plugin is not installed (or not on "
        "GST_PLUGIN_PATH)", factory, g_str_has_prefix (factory, "uel") ?
        "gst-uel 'uel'" : "GStreamer 'app' (gst-plugins-base)");
  return e;
}

/* The pinned pool must hold every tensor that can be alive at once
 * (see uel_tensor_stream_get_max_live_tensors()), or the reader would wait
 * for memory that a caller holding its batch never gives back: the largest
 * sum of that many consecutive tensors, plus the largest tensor as room
 * against fragmentation. */
static guint64
pool_size_for (UelHeader * header, GHashTable * wanted, guint64 window)
{
  guint n = uel_header_get_n_tensors (header);
  g_autoptr (GArray) sizes = g_array_new (FALSE, FALSE, sizeof (guint64));
  guint64 sum = 0, best = 0, largest = 0;

  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (header, i);
    guint64 s = (t->n_bytes + 4095) / 4096 * 4096;

    if (wanted && !g_hash_table_contains (wanted, t->name))
      continue;
    g_array_append_val (sizes, s);
    largest = MAX (largest, s);
  }
  for (guint i = 0; i < sizes->len; i++) {
    sum += g_array_index (sizes, guint64, i);
    if (i >= window)
      sum -= g_array_index (sizes, guint64, i - window);
    best = MAX (best, sum);
  }
  return MAX (best + largest, G_GUINT64_CONSTANT (2) << 20);
}

/* joins the names for uelsrc's 'tensors' property, each escaped so that
 * it is read back as that literal name */
static gchar *
tensors_spec (const gchar * const *keys)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; keys[i]; i++) {
    g_autofree gchar *escaped = uel_tensor_name_escape (keys[i]);

    if (i)
      g_string_append_c (s, ',');
    g_string_append (s, escaped);
  }
  return g_string_free (s, FALSE);
}

/* the pipeline's first error message, if it posted one */
static gboolean
take_bus_error (UelTensorStream * self, GError ** error)
{
  GstBus *bus = gst_element_get_bus (self->pipeline);
  GstMessage *msg;
  gboolean found = FALSE;

  while (!found && (msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR))) {
    GError *err = NULL;
    gchar *debug = NULL;

    gst_message_parse_error (msg, &err, &debug);
    GST_DEBUG ("stream error from %s: %s (%s)", GST_MESSAGE_SRC_NAME (msg),
        err->message, debug ? debug : "");
    g_propagate_error (error, err);
    g_free (debug);
    gst_message_unref (msg);
    found = TRUE;
  }
  gst_object_unref (bus);
  return found;
}

/**
 * uel_loader_async_stream:
 * @loader: a #UelLoader
 * @keys: (array zero-terminated=1) (nullable): the names of the tensors to
 *   stream, or %NULL for all of them
 * @batch_size: tensors per batch (at least 1)
 * @prefetch_batches: batches read ahead while the caller works (at least 1)
 * @pin_memory: place the tensors in pinned (page-locked) host memory,
 *   ready for fast copies to a GPU; without a CUDA device the memory is
 *   plain page-aligned host memory
 * @error: return location for a #GError
 *
 * Streams tensors in batches, as the Python loader's `async_stream()`,
 * through a real pipeline that starts reading at once in its own threads:
 * `uelsrc ! uelqueue max-size-buffers=batch_size×prefetch_batches !
 * [uelpin !] appsink`.  With @pin_memory, `uelpin` proposes its pinned pool
 * to `uelsrc`, which reads straight into it: all pinning happens once, in
 * one thread.  The pool is sized to hold every tensor that can be alive at
 * once (see uel_tensor_stream_get_max_live_tensors()).
 *
 * Tensors come in stream order (see uel_loader_keys()), whatever the order
 * of @keys; a name given twice is streamed once.  Each batch holds
 * @batch_size tensors, the last one fewer.  The stream reads from the file
 * in either mode of the loader: preloaded tensors are neither used nor
 * freed by it.
 *
 * Memory is bounded as in the Python loader: the queue holds at most
 * @prefetch_batches batches, and reading waits while it is full; `uelsrc`
 * reads no further ahead than the tensor it is pushing (`read-ahead=0`),
 * so that everything read counts in the bound (see
 * uel_tensor_stream_get_max_live_tensors()).
 *
 * Returns: (transfer full) (nullable): the stream, or %NULL with @error
 *   set: %UEL_ERROR_INVALID_ARGUMENT for an unknown name or a zero size,
 *   %GST_CORE_ERROR_MISSING_PLUGIN when an element is not installed, the
 *   pipeline's own error when it cannot start
 */
UelTensorStream *
uel_loader_async_stream (UelLoader * loader, const gchar * const *keys,
    guint batch_size, guint prefetch_batches, gboolean pin_memory,
    GError ** error)
{
  g_autoptr (UelTensorStream) self = NULL;
  g_autofree gchar *spec = NULL;
  GstElement *src = NULL, *pin = NULL;
  GstPad *pad;
  gboolean linked;
  guint n_wanted;

  g_return_val_if_fail (LOADER_READY (loader), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (batch_size == 0 || prefetch_batches == 0) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "batch_size (%u) and prefetch_batches (%u) must be at least 1",
        batch_size, prefetch_batches);
    return NULL;
  }

  self = g_object_new (UEL_TYPE_TENSOR_STREAM, NULL);
  self->loader = g_object_ref (loader);
  self->batch_size = batch_size;
  self->prefetch_batches = prefetch_batches;
  n_wanted = uel_header_get_n_tensors (loader->header);

  if (keys) {
    self->wanted = g_hash_table_new (g_str_hash, g_str_equal);
    for (guint i = 0; keys[i]; i++) {
      const UelTensorInfo *info = lookup (loader, keys[i], NULL, error);

      if (!info)
        return NULL;
      /* the header owns the names for as long as the stream holds it */
      g_hash_table_add (self->wanted, (gpointer) info->name);
    }
    n_wanted = g_hash_table_size (self->wanted);
    if (n_wanted == uel_header_get_n_tensors (loader->header)) {
      g_clear_pointer (&self->wanted, g_hash_table_unref);
    } else if (n_wanted > 0) {
      g_autofree const gchar **names = (const gchar **)
          g_hash_table_get_keys_as_array (self->wanted, NULL);
      spec = tensors_spec (names);
    }
  }
  if (n_wanted == 0) {
    self->done = TRUE;
    return g_steal_pointer (&self);
  }

  self->pipeline = gst_object_ref_sink (gst_pipeline_new (
          "uel-tensor-stream"));
  src = make_element ("uelsrc", error);
  self->queue = src ? make_element ("uelqueue", error) : NULL;
  if (self->queue && pin_memory)
    pin = make_element ("uelpin", error);
  /* appsink is used through its action signals, so that libgstuel does not
   * link libgstapp for one element: the stream needs pull-sample only */
  if (self->queue && (pin || !pin_memory))
    self->sink = make_element ("appsink", error);
  if (!self->sink) {
    gst_clear_object (&src);
    gst_clear_object (&pin);
    return NULL;
  }

  g_object_set (src, "location", loader->location, "tensors", spec, NULL);
  /* everything read is pushed into the queue and counted in the bound: no
   * read-ahead window beside it (large tensors are still read in parallel
   * parts) */
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (src), "read-ahead"))
    g_object_set (src, "read-ahead", (guint64) 0, NULL);
  g_object_set (self->queue,
      "max-size-buffers", batch_size * prefetch_batches,
      "max-size-bytes", (guint64) 0, NULL);
  /* one buffer in the sink: the caller's batch is what it pulls */
  g_object_set (self->sink, "sync", FALSE, "max-buffers", 1, "drop", FALSE,
      "enable-last-sample", FALSE, "emit-signals", FALSE, NULL);
  gst_bin_add_many (GST_BIN (self->pipeline), src, self->queue, self->sink,
      NULL);
  if (pin) {
    self->pool_size = pool_size_for (loader->header, self->wanted,
        uel_tensor_stream_get_max_live_tensors (self));
    g_object_set (pin, "pool-size", self->pool_size, NULL);
    gst_bin_add (GST_BIN (self->pipeline), pin);
  }
  linked = gst_element_link_many (src, self->queue, pin ? pin : self->sink,
      pin ? self->sink : NULL, NULL);
  if (linked) {
    pad = gst_element_get_static_pad (src, "src");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, src_probe, self,
        NULL);
    gst_object_unref (pad);
    pad = gst_element_get_static_pad (self->sink, "sink");
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, sink_probe, self,
        NULL);
    gst_object_unref (pad);
  }
  gst_object_unref (src);
  gst_clear_object (&pin);
  if (!linked) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "cannot link uelsrc ! uelqueue ! %sappsink",
        pin_memory ? "uelpin ! " : "");
    return NULL;
  }

  GST_DEBUG ("%s: streaming %u tensors, batches of %u, %u prefetched%s",
      loader->location, n_wanted, batch_size, prefetch_batches,
      pin_memory ? ", pinned" : "");
  if (gst_element_set_state (self->pipeline, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE) {
    if (!take_bus_error (self, error))
      g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
          "%s: the stream's pipeline did not start", loader->location);
    return NULL;
  }
  return g_steal_pointer (&self);
}

/* the next tensor, NULL at the end (@error unset) or on an error */
static GstBuffer *
pull (UelTensorStream * self, GError ** error)
{
  for (;;) {
    GstSample *sample = NULL;
    gboolean eos = FALSE;

    g_signal_emit_by_name (self->sink, "try-pull-sample", STREAM_POLL,
        &sample);
    if (sample) {
      GstBuffer *buf = gst_sample_get_buffer (sample);

      if (buf)
        gst_buffer_ref (buf);
      gst_sample_unref (sample);
      if (buf)
        return buf;
      continue;
    }
    if (take_bus_error (self, error))
      return NULL;
    g_object_get (self->sink, "eos", &eos, NULL);
    if (eos)
      return NULL;
  }
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
 *   set, with the pipeline's own domain and message: a file that changed,
 *   a failed read); after %NULL the stream is over
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
  batch = g_ptr_array_new_full (stream->batch_size,
      (GDestroyNotify) gst_buffer_unref);
  while (batch->len < stream->batch_size) {
    GstBuffer *buf = pull (stream, &err);

    if (!buf)
      break;
    g_ptr_array_add (batch, buf);
    stream->stats.tensors++;
    stream->stats.bytes += gst_buffer_get_size (buf);
  }
  if (err || batch->len == 0) {
    g_ptr_array_unref (batch);
    if (err)
      g_propagate_error (error, err);
    uel_tensor_stream_stop (stream);
    return NULL;
  }
  stream->stats.batches++;
  return batch;
}

/**
 * uel_tensor_stream_stop:
 * @stream: a #UelTensorStream
 *
 * Stops reading and releases what the pipeline holds; later calls to
 * uel_tensor_stream_next() return %NULL.  Batches already returned stay
 * valid.  Freeing the stream stops it too.
 */
void
uel_tensor_stream_stop (UelTensorStream * stream)
{
  g_return_if_fail (UEL_IS_TENSOR_STREAM (stream));

  stream->done = TRUE;
  if (stream->pipeline && !stream->stopped) {
    /* keep the queue's peaks: they are reset when it starts again */
    uel_tensor_stream_get_stats (stream, &stream->stats);
    stream->stopped = TRUE;
    gst_element_set_state (stream->pipeline, GST_STATE_NULL);
    /* appsink keeps the last sample it handed out until it starts again
     * (GStreamer 1.22 clears it in start(), not in stop()): a start of the
     * sink alone lets the caller's last tensor go when the caller does.
     * No sink: the stream failed to build (a missing plugin). */
    if (stream->sink) {
      gst_element_set_state (stream->sink, GST_STATE_PAUSED);
      gst_element_set_state (stream->sink, GST_STATE_NULL);
    }
  }
}

/**
 * uel_tensor_stream_get_pipeline:
 * @stream: a #UelTensorStream
 *
 * The pipeline behind the stream, to look at its elements' properties and
 * statistics (`uelqueue`'s levels, `uelpin`'s `stats`) or its bus.
 *
 * Returns: (transfer none) (nullable): the pipeline, or %NULL for a stream
 *   of no tensors
 */
GstElement *
uel_tensor_stream_get_pipeline (UelTensorStream * stream)
{
  g_return_val_if_fail (UEL_IS_TENSOR_STREAM (stream), NULL);
  return stream->pipeline;
}

/**
 * uel_tensor_stream_get_max_live_tensors:
 * @stream: a #UelTensorStream
 *
 * The stream's bound on tensors in memory at once, counting those in the
 * pipeline and those the caller holds, for a caller that keeps at most
 * one batch while it waits for the next one (as a `for batch in stream`
 * loop does): batch_size × (prefetch_batches + 2) + 5.  That is the
 * queue's prefetch_batches batches, the batch being assembled, the
 * caller's previous batch, and five single tensors: the one the reader is
 * pushing into the full queue, the one the queue's thread is pushing into
 * the sink, the one waiting in the sink, the one the sink keeps from the
 * last pull, and the source of a copy into pinned memory.
 *
 * Returns: the bound
 */
guint64
uel_tensor_stream_get_max_live_tensors (UelTensorStream * stream)
{
  g_return_val_if_fail (UEL_IS_TENSOR_STREAM (stream), 0);
  return (guint64) stream->batch_size * (stream->prefetch_batches + 2) + 5;
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

  s = stream->stats;
  g_mutex_lock (&stream->counter->lock);
  s.live_tensors = stream->counter->tensors;
  s.live_bytes = stream->counter->bytes;
  s.peak_live_tensors = stream->counter->peak_tensors;
  s.peak_live_bytes = stream->counter->peak_bytes;
  g_mutex_unlock (&stream->counter->lock);
  if (stream->queue && !stream->stopped) {
    guint buffers = 0;
    guint64 bytes = 0;

    g_object_get (stream->queue, "max-level-buffers", &buffers,
        "max-level-bytes", &bytes, NULL);
    s.peak_queued_tensors = MAX (s.peak_queued_tensors, buffers);
    s.peak_queued_bytes = MAX (s.peak_queued_bytes, bytes);
  }
  s.pinned_pool_bytes = stream->pool_size;
  *stats = s;
}
