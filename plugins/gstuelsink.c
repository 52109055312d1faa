/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-uelsink
 * @title: uelsink
 *
 * Writes the tensors of the stream into one `.safetensors` file, with the
 * library's #UelWriter: the file is what the reference implementation
 * (Hugging Face `safetensors`, `save_file`) writes for the same tensors
 * and metadata, byte for byte.  `uelsrc ! uelsink` copies a model (or the
 * tensors `uelsrc` selected, or a sharded checkpoint into one file) into a
 * file identical to the one the reference would write.
 *
 * The table of the file (every tensor's name, dtype and shape) is known
 * before the first tensor arrives: from the sticky `uel-header` event that
 * `uelsrc` sends, which says which of the header's tensors the stream
 * holds and, when an element such as `uelconvert` changed them, in which
 * dtypes.  The tensors' bytes are then written at their place in the file
 * as they come, in any order and in chunks (`uelsrc chunk-size`), so
 * memory stays bounded by what the pipeline holds.
 *
 * A stream without that event, or whose event gives only a count of
 * tensors (an application's `appsrc` pushing buffers with #UelTensorMeta),
 * is written incrementally (uel_writer_new_incremental()): a block of
 * #GstUelSink:header-reserve bytes is set aside for the header at the
 * start of the file, each tensor is placed after the one before when its
 * first bytes arrive (whole, or in chunks), with the name, dtype and shape
 * of its #UelTensorMeta, and the header is written into the block at EOS,
 * padded with spaces: the file `unifiedefficientloader`'s
 * `IncrementalSafetensorsWriter` writes for the tensors in that order.  A
 * header that outgrows the block is a SETTINGS error naming both sizes;
 * such a stream cannot be sharded.
 *
 * With #GstUelSink:max-shard-size the tensors are split, in stream order,
 * over shards of at most that many bytes, written as Hugging Face
 * `transformers` writes a sharded checkpoint: for a location
 * `DIR/model.safetensors` (or `DIR/model.safetensors.index.json`), the
 * shards `DIR/model-00001-of-0000N.safetensors` … and the index
 * `DIR/model.safetensors.index.json`, or `DIR/model.safetensors` alone
 * when everything fits in one shard.  Each shard gets the metadata.  The
 * shards and the index appear at EOS, the index last.
 *
 * The file's `__metadata__` is the upstream file's, with the fields of
 * #GstUelSink:metadata added over it (the same key replaces the upstream
 * value); #GstUelSink:keep-metadata=false drops the upstream map.
 *
 * Nothing is ever half-written under #GstUelSink:location: the bytes go to
 * a temporary file beside it (`.NAME.XXXXXX`), synced to disk and renamed
 * over the location at EOS, once every byte of every tensor has arrived.
 * An error, a flush or a state change to READY or NULL before EOS removes
 * the temporary file and leaves whatever was at the location untouched
 * (after a flush the stream starts a new file).
 *
 * Errors are RESOURCE errors naming the file and the tensor: OPEN_WRITE
 * when the temporary file cannot be created (a missing or read-only
 * folder), NO_SPACE_LEFT for a full disk, WRITE for a failed write, a
 * tensor that is not in the announced table, arrives in another dtype or
 * twice, or one that has not fully arrived at EOS, NOT_FOUND without a
 * location, and SETTINGS for a header larger than #GstUelSink:header-reserve
 * or a stream to shard whose table is not known.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors ! uelsink location=copy.safetensors
 * ]| Copies a model: copy.safetensors is what the reference writes.
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors tensors="*.weight" ! uelconvert dtype=bf16 ! uelsink location=weights-bf16.safetensors metadata="format=pt"
 * ]| Writes the weights only, cast to BF16, with `"format": "pt"` in the
 * metadata.
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors ! uelsink location=out/model.safetensors max-shard-size=5000000000
 * ]| Writes the model as a checkpoint of 5 GB shards and its index.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include <gst-uel/uel.h>

#include "gstuelsink.h"
#include "gstuelelements.h"

GST_DEBUG_CATEGORY_STATIC (gst_uel_sink_debug);
#define GST_CAT_DEFAULT gst_uel_sink_debug

#define DEFAULT_LOCATION NULL
#define DEFAULT_METADATA NULL
#define DEFAULT_KEEP_METADATA TRUE
#define DEFAULT_MAX_SHARD_SIZE 0
#define DEFAULT_HEADER_RESERVE UEL_WRITER_DEFAULT_HEADER_RESERVE
/* the smallest block that holds "{}", the largest a reader accepts */
#define MIN_HEADER_RESERVE 8

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_METADATA,
  PROP_KEEP_METADATA,
  PROP_MAX_SHARD_SIZE,
  PROP_HEADER_RESERVE,
};

struct _GstUelSink
{
  GstBaseSink parent;

  /* properties, under the object lock */
  gchar *location;
  gchar *metadata;
  GstStructure *metadata_fields;        /* parsed from metadata */
  gboolean keep_metadata;
  guint64 max_shard_size;
  guint64 header_reserve;

  /* streaming thread (and start/stop) */
  GstEvent *header_event;       /* the last uel-header event */
  UelWriter *writer;            /* the file being written, or NULL */
  gboolean declared;            /* the writer's table is set */
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_MEDIA_TYPE "; " UEL_TENSOR_MEDIA_TYPE "("
        UEL_CAPS_FEATURE_MEMORY_PINNED ")"));

#define _do_init \
  GST_DEBUG_CATEGORY_INIT (gst_uel_sink_debug, "uelsink", 0, \
      "safetensors writer");
#define gst_uel_sink_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstUelSink, gst_uel_sink, GST_TYPE_BASE_SINK,
    _do_init);
GST_ELEMENT_REGISTER_DEFINE (uelsink, "uelsink", GST_RANK_NONE,
    GST_TYPE_UEL_SINK);

/* ------------------------------------------------------------------ */
/* errors */

static void
post_error (GstUelSink * self, const GError * err)
{
  if (err->domain == G_FILE_ERROR && err->code == G_FILE_ERROR_NOSPC)
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, ("%s", err->message),
        ("GFileError %d", err->code));
  else if (g_error_matches (err, UEL_ERROR, UEL_ERROR_HEADER_TOO_LARGE))
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", err->message),
        ("raise the header-reserve property"));
  else if (err->domain == G_FILE_ERROR && !self->declared)
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("%s", err->message),
        ("GFileError %d", err->code));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("%s", err->message),
        ("%s error %d", g_quark_to_string (err->domain), err->code));
}

/* ------------------------------------------------------------------ */
/* the writer */

static void
close_writer (GstUelSink * self)
{
  if (self->writer)
    GST_DEBUG_OBJECT (self, "abandoning %s before EOS: its temporary file "
        "goes", uel_writer_get_location (self->writer));
  g_clear_pointer (&self->writer, uel_writer_free);
  self->declared = FALSE;
}

static gboolean
open_writer (GstUelSink * self)
{
  g_autofree gchar *location = NULL;
  GError *err = NULL;

  if (self->writer)
    return TRUE;
  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  GST_OBJECT_UNLOCK (self);
  if (!location || !*location) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No file name specified for writing."), ("location is not set"));
    return FALSE;
  }
  self->writer = uel_writer_new (location, &err);
  if (!self->writer) {
    post_error (self, err);
    g_error_free (err);
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  uel_writer_set_max_shard_size (self->writer, self->max_shard_size);
  GST_OBJECT_UNLOCK (self);
  GST_DEBUG_OBJECT (self, "writing %s", location);
  return TRUE;
}

static gboolean
set_metadata_field (GQuark field, const GValue * value, gpointer user_data)
{
  gpointer *args = user_data;
  UelWriter *writer = args[0];
  g_autofree gchar *text = G_VALUE_HOLDS_STRING (value) ?
      g_value_dup_string (value) : gst_value_serialize (value);

  return uel_writer_set_metadata (writer, g_quark_to_string (field),
      text ? text : "", args[1]);
}

static gint
compare_keys (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar * const *) a, *(const gchar * const *) b);
}

/* The upstream metadata of @header (NULL: none) unless keep-metadata is
 * off, then the metadata property's fields over it.  The upstream keys go
 * in sorted (an incremental file keeps the order they are set in), the
 * fields in their order. */
static gboolean
set_metadata (GstUelSink * self, UelHeader * header, GError ** error)
{
  g_autoptr (GstStructure) fields = NULL;
  gboolean keep;

  GST_OBJECT_LOCK (self);
  keep = self->keep_metadata;
  fields = self->metadata_fields ? gst_structure_copy (self->metadata_fields)
      : NULL;
  GST_OBJECT_UNLOCK (self);
  if (keep && header) {
    GHashTable *metadata = uel_header_get_metadata (header);
    guint n;
    g_autofree const gchar **keys = (const gchar **)
        g_hash_table_get_keys_as_array (metadata, &n);

    qsort (keys, n, sizeof (gchar *), compare_keys);
    for (guint i = 0; i < n; i++)
      if (!(fields && gst_structure_has_field (fields, keys[i]))
          && !uel_writer_set_metadata (self->writer, keys[i],
              g_hash_table_lookup (metadata, keys[i]), error))
        return FALSE;
  }
  if (fields) {
    gpointer args[2] = { self->writer, error };

    if (!gst_structure_foreach (fields, set_metadata_field, args))
      return FALSE;
  }
  return TRUE;
}

/* posts @err (taken) and gives up the file being declared */
static gboolean
declare_failed (GstUelSink * self, GError * err)
{
  post_error (self, err);
  g_error_free (err);
  close_writer (self);
  return FALSE;
}

/* A stream whose table is unknown: replaces the writer by an incremental
 * one, which declares each tensor when it comes. */
static gboolean
declare_incremental (GstUelSink * self)
{
  g_autoptr (UelHeader) header = NULL;
  g_autofree gchar *location =
      g_strdup (uel_writer_get_location (self->writer));
  guint64 reserve, max_shard_size;
  GError *err = NULL;

  GST_OBJECT_LOCK (self);
  reserve = self->header_reserve;
  max_shard_size = self->max_shard_size;
  GST_OBJECT_UNLOCK (self);
  if (max_shard_size > 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("Cannot write \"%s\" in shards: the stream did not say which "
            "tensors it holds.", location),
        ("max-shard-size needs a uel-header event with the table (is uelsrc "
            "upstream?)"));
    return FALSE;
  }
  g_clear_pointer (&self->writer, uel_writer_free);
  self->writer = uel_writer_new_incremental (location, reserve, &err);
  if (!self->writer)
    goto error;
  if (self->header_event)
    uel_header_event_parse (self->header_event, &header);
  if (!set_metadata (self, header, &err))
    goto error;
  self->declared = TRUE;
  GST_DEBUG_OBJECT (self, "%s: no table upstream, writing incrementally "
      "with a header block of %" G_GUINT64_FORMAT " bytes", location,
      uel_writer_get_header_reserve (self->writer));
  return TRUE;

error:
  return declare_failed (self, err);
}

/* declares the stream's table (from the uel-header event) and the
 * metadata, and writes the header */
static gboolean
declare (GstUelSink * self)
{
  g_autoptr (UelHeader) header = NULL;
  g_autofree guint *tensors = NULL;
  g_autofree UelDType *dtypes = NULL;
  const gchar *location;
  GError *err = NULL;
  guint n;

  if (self->declared)
    return TRUE;
  if (!open_writer (self))
    return FALSE;
  location = uel_writer_get_location (self->writer);
  if (!self->header_event || !uel_header_event_parse_table
      (self->header_event, &n, &tensors, &dtypes))
    return declare_incremental (self);
  uel_header_event_parse (self->header_event, &header);

  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *info = uel_header_get_tensor (header, tensors[i]);

    if (!uel_writer_add_tensor (self->writer, info->name, dtypes[i],
            info->n_dims, info->shape, &err))
      goto error;
  }
  if (!set_metadata (self, header, &err)
      || !uel_writer_write_header (self->writer, &err))
    goto error;
  self->declared = TRUE;
  GST_DEBUG_OBJECT (self, "%s: %u tensors, %" G_GUINT64_FORMAT " bytes",
      location, n, uel_writer_get_total_bytes (self->writer));
  return TRUE;

error:
  return declare_failed (self, err);
}

/* ------------------------------------------------------------------ */
/* base class */

static gboolean
gst_uel_sink_start (GstBaseSink * sink)
{
  /* the temporary file now: a folder that cannot be written to fails the
   * state change, before anything is read */
  return open_writer (GST_UEL_SINK (sink));
}

static gboolean
gst_uel_sink_stop (GstBaseSink * sink)
{
  GstUelSink *self = GST_UEL_SINK (sink);

  close_writer (self);
  gst_clear_event (&self->header_event);
  return TRUE;
}

static gboolean
finish (GstUelSink * self)
{
  GError *err = NULL;

  if (!declare (self))
    return FALSE;
  if (!uel_writer_finish (self->writer, &err)) {
    post_error (self, err);
    g_error_free (err);
    close_writer (self);
    return FALSE;
  }
  GST_INFO_OBJECT (self, "wrote %s", uel_writer_get_location (self->writer));
  g_clear_pointer (&self->writer, uel_writer_free);
  self->declared = FALSE;
  return TRUE;
}

static gboolean
gst_uel_sink_event (GstBaseSink * sink, GstEvent * event)
{
  GstUelSink *self = GST_UEL_SINK (sink);

  if (uel_header_event_parse (event, NULL)) {
    if (self->declared) {
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
          ("Cannot write \"%s\": a second stream began before the end of "
              "the first.", uel_writer_get_location (self->writer)),
          ("a new uel-header event after the table was declared"));
      gst_event_unref (event);
      return FALSE;
    }
    gst_event_replace (&self->header_event, event);
  } else if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP) {
    /* what was written is gone upstream: the next data starts again */
    close_writer (self);
  } else if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    if (!finish (self)) {
      gst_event_unref (event);
      return FALSE;
    }
  }
  return GST_BASE_SINK_CLASS (parent_class)->event (sink, event);
}

/* Incremental: declares the tensor of @meta, whose first bytes came,
 * after those before it */
static const UelTensorInfo *
declare_tensor (GstUelSink * self, const UelTensorMeta * meta)
{
  const gchar *name = uel_tensor_meta_get_name (meta);
  const UelTensorInfo *t;
  const guint64 *shape;
  GError *err = NULL;
  guint n_dims;

  shape = uel_tensor_meta_get_shape (meta, &n_dims);
  if (!uel_writer_add_tensor (self->writer, name, meta->dtype, n_dims, shape,
          &err)) {
    declare_failed (self, err);
    return NULL;
  }
  t = uel_writer_lookup (self->writer, name, NULL);
  if (t->n_bytes != meta->n_bytes) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Cannot write \"%s\": tensor '%s' is %" G_GUINT64_FORMAT " bytes, "
            "but its shape makes %" G_GUINT64_FORMAT " bytes of %s.",
            uel_writer_get_location (self->writer), name, meta->n_bytes,
            t->n_bytes, uel_dtype_to_string (meta->dtype)),
        ("the buffer's UelTensorMeta disagrees with itself"));
    return NULL;
  }
  GST_DEBUG_OBJECT (self, "tensor '%s': %s, %" G_GUINT64_FORMAT " bytes at "
      "byte %" G_GUINT64_FORMAT " of the data", name,
      uel_dtype_to_string (t->dtype), t->n_bytes, t->data_begin);
  return t;
}

static GstFlowReturn
gst_uel_sink_render (GstBaseSink * sink, GstBuffer * buf)
{
  GstUelSink *self = GST_UEL_SINK (sink);
  const UelTensorMeta *meta;
  const UelTensorInfo *t;
  const gchar *name;
  GError *err = NULL;
  GstMapInfo map;
  gboolean ok;

  if (!declare (self))
    return GST_FLOW_ERROR;
  meta = uel_buffer_get_tensor_meta (buf);
  if (!meta) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Cannot write \"%s\": a buffer is no tensor.",
            uel_writer_get_location (self->writer)),
        ("a buffer without UelTensorMeta"));
    return GST_FLOW_ERROR;
  }
  name = uel_tensor_meta_get_name (meta);
  t = uel_writer_lookup (self->writer, name, NULL);
  if (!t && uel_writer_is_incremental (self->writer)
      && !(t = declare_tensor (self, meta)))
    return GST_FLOW_ERROR;
  if (t && t->dtype != meta->dtype) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Cannot write \"%s\": tensor '%s' arrives as %s, but %s %s.",
            uel_writer_get_location (self->writer), name,
            uel_dtype_to_string (meta->dtype),
            uel_writer_is_incremental (self->writer) ?
            "its first bytes came as" : "the stream announced it as",
            uel_dtype_to_string (t->dtype)),
        ("an element changed the dtype without saying so in the uel-header "
            "event"));
    return GST_FLOW_ERROR;
  }
  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE,
        ("Cannot write \"%s\": tensor '%s' cannot be read (its memory does "
            "not map).", uel_writer_get_location (self->writer), name),
        (NULL));
    return GST_FLOW_ERROR;
  }
  GST_LOG_OBJECT (self, "tensor '%s': %" G_GSIZE_FORMAT " bytes at %"
      G_GUINT64_FORMAT, name, map.size, meta->chunk_offset);
  ok = uel_writer_write (self->writer, name, meta->chunk_offset, map.data,
      map.size, &err);
  gst_buffer_unmap (buf, &map);
  if (!ok) {
    post_error (self, err);
    g_error_free (err);
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

/* ------------------------------------------------------------------ */
/* properties */

/* "k=v,k=v" as the fields of a structure: GStreamer's quoting rules */
static GstStructure *
parse_metadata (const gchar * text)
{
  g_autofree gchar *s = NULL;

  if (!text || !*text)
    return NULL;
  s = g_strconcat ("metadata, ", text, NULL);
  return gst_structure_from_string (s, NULL);
}

static void
gst_uel_sink_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstUelSink *self = GST_UEL_SINK (object);

  if (!gst_uel_property_can_change (GST_ELEMENT (self), pspec))
    return;
  switch (prop_id) {
    case PROP_LOCATION:
      GST_OBJECT_LOCK (self);
      g_free (self->location);
      self->location = g_value_dup_string (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_METADATA:{
      const gchar *text = g_value_get_string (value);
      GstStructure *fields = parse_metadata (text);

      if (text && *text && !fields) {
        g_warning ("%s: the 'metadata' property is invalid and stays "
            "unchanged: '%s' is not a list of key=value", GST_ELEMENT_NAME
            (self), text);
        break;
      }
      GST_OBJECT_LOCK (self);
      g_free (self->metadata);
      self->metadata = g_strdup (text);
      if (self->metadata_fields)
        gst_structure_free (self->metadata_fields);
      self->metadata_fields = fields;
      GST_OBJECT_UNLOCK (self);
      break;
    }
    case PROP_KEEP_METADATA:
      GST_OBJECT_LOCK (self);
      self->keep_metadata = g_value_get_boolean (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_MAX_SHARD_SIZE:
      GST_OBJECT_LOCK (self);
      self->max_shard_size = g_value_get_uint64 (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_HEADER_RESERVE:
      GST_OBJECT_LOCK (self);
      self->header_reserve = g_value_get_uint64 (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_uel_sink_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstUelSink *self = GST_UEL_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_METADATA:
      g_value_set_string (value, self->metadata);
      break;
    case PROP_KEEP_METADATA:
      g_value_set_boolean (value, self->keep_metadata);
      break;
    case PROP_MAX_SHARD_SIZE:
      g_value_set_uint64 (value, self->max_shard_size);
      break;
    case PROP_HEADER_RESERVE:
      g_value_set_uint64 (value, self->header_reserve);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_sink_finalize (GObject * object)
{
  GstUelSink *self = GST_UEL_SINK (object);

  close_writer (self);
  gst_clear_event (&self->header_event);
  g_free (self->location);
  g_free (self->metadata);
  if (self->metadata_fields)
    gst_structure_free (self->metadata_fields);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_uel_sink_class_init (GstUelSinkClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *sink_class = GST_BASE_SINK_CLASS (klass);
  const GParamFlags rw_ready = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_uel_sink_set_property;
  gobject_class->get_property = gst_uel_sink_get_property;
  gobject_class->finalize = gst_uel_sink_finalize;

  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "The .safetensors file to write (it appears at EOS, complete)",
          DEFAULT_LOCATION, rw_ready));
  g_object_class_install_property (gobject_class, PROP_METADATA,
      g_param_spec_string ("metadata", "Metadata",
          "Comma-separated key=value pairs set in the file's __metadata__ "
          "over the upstream file's (quote values with commas or spaces: "
          "key=\"a, b\") (empty = the upstream metadata only)",
          DEFAULT_METADATA, rw_ready));
  g_object_class_install_property (gobject_class, PROP_KEEP_METADATA,
      g_param_spec_boolean ("keep-metadata", "Keep metadata",
          "Copy the upstream file's __metadata__ into the file",
          DEFAULT_KEEP_METADATA, rw_ready));
  g_object_class_install_property (gobject_class, PROP_MAX_SHARD_SIZE,
      g_param_spec_uint64 ("max-shard-size", "Maximum shard size",
          "Split the tensors over model-00001-of-0000N.safetensors … and "
          "model.safetensors.index.json beside the location, as transformers "
          "shards a checkpoint, each shard at most this many bytes of data "
          "unless one tensor is larger (0 = one file)", 0, G_MAXUINT64,
          DEFAULT_MAX_SHARD_SIZE, rw_ready));
  /**
   * GstUelSink:header-reserve:
   *
   * The bytes set aside for the header at the start of the file when the
   * stream does not say its tensors before their data, rounded up to a
   * multiple of 8 (the file's header length, whatever the header needs).
   * The default, 1 MiB as in `IncrementalSafetensorsWriter`, holds some
   * 8,000 tensors with names of 50 bytes; a header that outgrows it is an
   * error.  Unused with a table upstream.
   */
  g_object_class_install_property (gobject_class, PROP_HEADER_RESERVE,
      g_param_spec_uint64 ("header-reserve", "Header reserve",
          "Bytes reserved for the header when the stream does not announce "
          "its tensors (no table in its uel-header event), rounded up to a "
          "multiple of 8; a larger header is an error", MIN_HEADER_RESERVE,
          UEL_MAX_HEADER_SIZE, DEFAULT_HEADER_RESERVE, rw_ready));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_set_static_metadata (element_class,
      "Safetensors file sink", "Sink/File",
      "Writes tensors into a .safetensors file, byte for byte as the "
      "reference writer does, renamed into place at EOS",
      "gst-uel contributors");
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 uelsrc location=model.safetensors ! uelsink "
      "location=copy.safetensors");

  sink_class->start = gst_uel_sink_start;
  sink_class->stop = gst_uel_sink_stop;
  sink_class->event = gst_uel_sink_event;
  sink_class->render = gst_uel_sink_render;
}

static void
gst_uel_sink_init (GstUelSink * self)
{
  self->keep_metadata = DEFAULT_KEEP_METADATA;
  self->header_reserve = DEFAULT_HEADER_RESERVE;
  /* a file, not a clock's consumer */
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
  /* a kept last sample would hold a whole tensor after it was written */
  gst_base_sink_set_last_sample_enabled (GST_BASE_SINK (self), FALSE);
}
