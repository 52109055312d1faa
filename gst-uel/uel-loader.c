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

#include <gio/gio.h>

#include "uel-cudamem.h"
#include "uel-error.h"
#include "uel-hostmem.h"
#include "uel-loader.h"
#include "uel-loader-private.h"
#include "uel-meta.h"
#include "uel-reader-private.h"

GST_DEBUG_CATEGORY (uel_loader_debug);
#define GST_CAT_DEFAULT uel_loader_debug

/* Freed tensor memory kept for reuse by the next get_tensor(): a
 * low-memory loop reads tensors of a few sizes over and over, and memory
 * handed back to the system costs a page fault per 4 KiB to touch again. */
#define LOADER_CACHE_BYTES (G_GUINT64_CONSTANT (64) << 20)

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
  gboolean use_mmap;
  gboolean direct_gpu;          /* FALSE after a fallback to host memory */
  UelHeader *header;
  UelReader *reader;            /* get_tensor()'s reads, its open files */

  gboolean initialized;
  GError *init_error;

  GMutex lock;
  Preloaded *preloaded;         /* standard mode: one per tensor, or NULL */
  guint64 preloaded_bytes;
  GHashTable *device_held;      /* direct_gpu: name -> its device slot */
};

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_LOW_MEMORY,
  PROP_HEADER,
  PROP_USE_MMAP,
  PROP_DIRECT_GPU,
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
  g_clear_pointer (&self->device_held, g_hash_table_unref);
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
    case PROP_USE_MMAP:
      self->use_mmap = g_value_get_boolean (value);
      break;
    case PROP_DIRECT_GPU:
      self->direct_gpu = g_value_get_boolean (value);
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
    case PROP_USE_MMAP:
      g_value_set_boolean (value, self->use_mmap);
      break;
    case PROP_DIRECT_GPU:
      g_value_set_boolean (value, self->direct_gpu);
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
  /**
   * UelLoader:use-mmap:
   *
   * Tensors are read-only views of a shared mapping of the file instead of
   * copies read from it (the Python loader's `use_mmap`): see
   * uel_loader_new_full().
   */
  loader_props[PROP_USE_MMAP] = g_param_spec_boolean ("use-mmap", "Use mmap",
      "Tensors are read-only views of a mapping of the file (false = "
      "copies read from it)", FALSE,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * UelLoader:direct-gpu:
   *
   * uel_loader_async_stream() delivers tensors in CUDA device memory, from
   * a bounded pool of device slots that uel_loader_mark_processed() gives
   * back (the Python loader's `direct_gpu`): see uel_loader_new_full().
   * Implies #UelLoader:low-memory.  Reads %FALSE once the loader has
   * fallen back to host memory for want of a CUDA device.
   */
  loader_props[PROP_DIRECT_GPU] = g_param_spec_boolean ("direct-gpu",
      "Direct GPU", "Stream tensors into CUDA device memory (false = host "
      "memory; implies low-memory)", FALSE,
      G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
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

/* Standard mode with use_mmap: every tensor a view of the mapping now
 * (the reader reads the few whose bytes are not aligned for their dtype),
 * so "preloading" costs no copy and no memory beyond the page cache. */
static gboolean
preload_views (UelLoader * self, GCancellable * cancellable, GError ** error)
{
  guint n = uel_header_get_n_tensors (self->header);

  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (self->header, i);
    GstBuffer *buf;

    if (g_cancellable_set_error_if_cancelled (cancellable, error))
      return FALSE;
    buf = uel_reader_read_tensor (self->reader, i, error);
    if (!buf)
      return FALSE;
    self->preloaded[i].held = TRUE;
    if (t->n_bytes > 0)
      self->preloaded[i].block = gst_buffer_get_all_memory (buf);
    self->preloaded_bytes += t->n_bytes;
    gst_buffer_unref (buf);
  }
  return TRUE;
}

/* Standard mode: every tensor read now, runs of small ones into shared
 * blocks; a buffer is made for a tensor when it is asked for. */
static gboolean
preload (UelLoader * self, GCancellable * cancellable, GError ** error)
{
  guint n = uel_header_get_n_tensors (self->header);
  GstAllocator *allocator;
  guint first = 0;
  gboolean ok = TRUE;

  self->preloaded = g_new0 (Preloaded, MAX (n, 1));
  if (self->use_mmap) {
    if (!preload_views (self, cancellable, error)) {
      free_preloaded (self);
      return FALSE;
    }
    GST_INFO ("%s: mapped %u tensors, %" G_GUINT64_FORMAT " bytes",
        uel_header_get_location (self->header), n, self->preloaded_bytes);
    return TRUE;
  }
  allocator = uel_host_allocator_new (0);
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
      uel_header_get_location (self->header), n, self->preloaded_bytes);
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

/* direct_gpu as the Python loader has it: it implies low-memory mode, and
 * without a CUDA device the loader says so once and stays in host memory */
static void
check_direct_gpu (UelLoader * self)
{
  GError *err = NULL;

  if (!self->low_memory) {
    GST_WARNING ("%s: direct_gpu needs low_memory: low-memory mode it is",
        uel_header_get_location (self->header));
    self->low_memory = TRUE;
  }
  if (!uel_cuda_device_check (-1, &err)) {
    GST_WARNING ("%s: direct_gpu asked for, but CUDA is not available (%s): "
        "falling back to host memory", uel_header_get_location (self->header),
        err->message);
    g_clear_error (&err);
    self->direct_gpu = FALSE;
    return;
  }
  self->device_held = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      (GDestroyNotify) gst_buffer_unref);
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
  if (self->direct_gpu)
    check_direct_gpu (self);
  self->header = uel_header_open (self->location, error);
  if (!self->header)
    return FALSE;
  self->reader = uel_reader_new (self->header);
  allocator = uel_host_allocator_new (LOADER_CACHE_BYTES);
  uel_reader_set_allocator (self->reader, allocator, NULL);
  gst_object_unref (allocator);
  if (self->use_mmap)
    uel_reader_set_method (self->reader, UEL_READ_MMAP);

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
 *   `*.index.json`; either may be an `http://`, `https://` or `s3://` URL
 * @low_memory: %FALSE to read every tensor now (standard mode), %TRUE to
 *   read each tensor only when uel_loader_get_tensor() asks for it
 * @error: return location for a #GError
 *
 * Opens and validates the file's header (see uel_header_open(), which
 * says how URLs are read) and, in standard mode, reads every tensor.
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
 * uel_loader_new_full:
 * @location: a `.safetensors` file, or a sharded checkpoint's
 *   `*.index.json`
 * @low_memory: as for uel_loader_new()
 * @direct_gpu: uel_loader_async_stream() delivers tensors in CUDA device
 *   memory (of the current device), from a bounded pool of device slots
 *   that uel_loader_mark_processed() gives back; implies @low_memory
 * @use_mmap: tensors are read-only views of a shared mapping of the file
 *   instead of copies
 * @error: return location for a #GError
 *
 * uel_loader_new() with the two modes of the Python loader's 0.5
 * releases, whose arguments these are, in their order.
 *
 * With @use_mmap, uel_loader_get_tensor() returns a view of the file's
 * pages, read-only (%GST_MEMORY_FLAG_READONLY), no copy made; in standard
 * mode the "preloaded" tensors are such views too, so that creating the
 * loader reads nothing.  A view keeps the mapping alive: it stays valid
 * for as long as its buffer lives, after uel_loader_mark_processed() and
 * after the loader is freed.  A tensor whose bytes are not aligned for its
 * dtype in the file is read into memory instead.  A view is the file: a
 * file changed later changes it, and one truncated under it kills the
 * process with SIGBUS (see %UEL_READ_MMAP): map only files that nobody
 * writes.  uel_loader_async_stream() delivers views too, unless it pins
 * memory.
 *
 * With @direct_gpu the loader is in low-memory mode (a warning says so when
 * @low_memory is %FALSE, as the Python loader's does), and
 * uel_loader_async_stream() delivers its tensors in device memory: see
 * there.  uel_loader_get_tensor() still reads into host memory, as the
 * Python loader's `get_tensor()` does.  Without a usable CUDA device
 * (no driver, no device, built without the toolkit) the loader falls back
 * gracefully: a warning in the `uelloader` debug category says why, the
 * tensors are in host memory, and uel_loader_get_direct_gpu() reads
 * %FALSE.
 *
 * Returns: (transfer full) (nullable): the loader, or %NULL with @error
 *   set as for uel_loader_new(), or %UEL_ERROR_IO when the file cannot be
 *   mapped
 */
UelLoader *
uel_loader_new_full (const gchar * location, gboolean low_memory,
    gboolean direct_gpu, gboolean use_mmap, GError ** error)
{
  g_return_val_if_fail (location != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (UEL_TYPE_LOADER, NULL, error, "location", location,
      "low-memory", low_memory, "direct-gpu", direct_gpu, "use-mmap",
      use_mmap, NULL);
}

/**
 * uel_loader_get_use_mmap:
 * @loader: a #UelLoader
 *
 * Returns: whether tensors are views of a mapping of the file
 */
gboolean
uel_loader_get_use_mmap (UelLoader * loader)
{
  g_return_val_if_fail (UEL_IS_LOADER (loader), FALSE);
  return loader->use_mmap;
}

/**
 * uel_loader_get_direct_gpu:
 * @loader: a #UelLoader
 *
 * Returns: whether uel_loader_async_stream() delivers tensors in device
 *   memory: %FALSE when it was not asked for, and when the loader fell
 *   back to host memory for want of a CUDA device
 */
gboolean
uel_loader_get_direct_gpu (UelLoader * loader)
{
  g_return_val_if_fail (UEL_IS_LOADER (loader), FALSE);
  return loader->direct_gpu;
}

/* direct_gpu: the loader holds @slot for @name until mark_processed();
 * a slot held already for that name (a second stream) is let go */
void
uel_loader_hold_device_tensor (UelLoader * loader, const gchar * name,
    GstBuffer * slot)
{
  g_mutex_lock (&loader->lock);
  g_hash_table_replace (loader->device_held, g_strdup (name),
      gst_buffer_ref (slot));
  g_mutex_unlock (&loader->lock);
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
 * low-memory mode the loader holds no tensor, and this does nothing,
 * except in direct-GPU mode (see uel_loader_new_full()): there the loader
 * holds each tensor that uel_loader_async_stream() delivered in device
 * memory, and this lets go of it, so that its device slot goes back to the
 * stream's pool once the caller's buffers of it are gone too.
 *
 * Returns: whether the loader released a preloaded tensor or a device
 *   tensor
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
  if (loader->device_held && g_hash_table_remove (loader->device_held, key))
    released = TRUE;
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
 * uel_loader_load_all: (skip)
 * @loader: a #UelLoader
 * @error: return location for a #GError
 *
 * Every tensor, by name: uel_loader_get_tensor() for each key.  In
 * low-memory mode this reads the whole file into memory.
 *
 * Not introspectable: PyGObject 3.42 hands out the buffers of a returned
 * table already released (a table of boxed values is freed twice).
 * Bindings call uel_loader_get_tensor() for each of uel_loader_keys().
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
