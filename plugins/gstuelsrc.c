/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-uelsrc
 * @title: uelsrc
 *
 * Reads the tensors of a `.safetensors` file (or of a sharded checkpoint's
 * `*.index.json`) by byte offset and pushes one buffer per tensor, in file
 * order, each with a #UelTensorMeta (name, dtype, shape, offsets, index).
 * The header is read and validated completely before anything is pushed;
 * it then travels downstream as a sticky `uel-header` event and to the
 * application as a `uel-header` element message.
 *
 * When downstream proposes an allocator in the ALLOCATION query (`uelpin`
 * proposes its pinned allocator), tensors are read straight into it;
 * otherwise into recycled host memory.  Sizes are 64-bit
 * throughout: a single tensor over 4 GiB is one buffer (or several chunks
 * with #GstUelSrc:chunk-size).
 *
 * Buffer data is aligned to at least the tensor's element size, even when
 * the file's data section is not (with `method=mmap`, a misaligned tensor
 * is copied instead of mapped).
 *
 * #GstUelSrc:dtypes and #GstUelSrc:ndim narrow the selection by what the
 * header says of each tensor: `dtypes=U8 ndim=1` reads only the 1-D `U8`
 * tensors, where model files keep JSON dictionaries (see ueldictdecode),
 * without knowing their names; the other tensors are never read.
 *
 * Errors: a missing file is a RESOURCE NOT_FOUND error (as is a `tensors`
 * pattern that matches nothing, or an unknown name in `dtypes`), a
 * directory or unreadable file RESOURCE OPEN_READ, a failed read or a file
 * that changes while it is read RESOURCE READ; a file that is not
 * safetensors at all (too small, header length over the limit, not UTF-8,
 * not a JSON object) is STREAM FORMAT,
 * and every other header rule is STREAM DECODE.  The messages name the file,
 * the tensor and the rule.
 *
 * The element is a #GstPushSrc: the base class runs the task, sends the
 * stream-start, caps and segment events, answers the position and seeking
 * queries (in bytes of tensor data; no seeking) and counts
 * #GstBaseSrc:num-buffers.  Its unlock sets the pinned pool it reads into
 * (`uelpin`'s, proposed in the ALLOCATION query) flushing, so that a read
 * waiting for pool memory ends at once when the element stops, even alone.
 * An EOS sent to the element ends the stream after the buffer being
 * pushed, without waiting for the streaming thread.
 *
 * Reading is the library's #UelReader.  The files of a sharded checkpoint
 * are opened when their tensors are read and closed after, at most an
 * eighth of the process's descriptor limit (64 at most) at once, so a
 * checkpoint of thousands of shards reads under a small `ulimit -n`.  A
 * file is read only while it is the one whose header was validated: same
 * inode, size and modification time when it is opened and after each
 * tensor is read.  One renamed over the path meanwhile is not read (the
 * descriptor already open still reads the validated one); one rewritten in
 * place, extended or truncated while it is read is a RESOURCE READ error
 * naming the file and the tensor, never a tensor of mixed bytes.
 *
 * #GstUelSrc:location may be an `http://`, `https://` or `s3://` URL (of a
 * `.safetensors` file or of an `*.index.json`, whose shards are fetched
 * beside it): the header comes with one range request (two when it is
 * over 64 KiB), then the tensors, in file order, as range requests of up
 * to 8 MiB on #GstUelSrc:io-threads connections at once (each I/O thread
 * keeps its own; 0 means at least 4 for a URL), into the same memory and
 * within the same read-ahead as a local file.  Every response must carry
 * the ETag and Last-Modified of the first (the server is asked with
 * If-Match too): an object that changes on the server mid-load is a
 * RESOURCE READ error, never a tensor of mixed bytes.  A dropped
 * connection, a 5xx or 429 (after its Retry-After, at most 30 s) and a
 * connection that moves no byte for 30 s are retried with backoff from
 * the byte reached; HTTP 404 is RESOURCE NOT_FOUND, 401 and 403 RESOURCE
 * OPEN_READ, a failed TLS verification RESOURCE READ, each naming the URL
 * without its user name, password or query.  Hugging Face Hub `resolve`
 * URLs work as they are: redirects are followed and `HF_TOKEN`, where
 * set, goes as a bearer token to the Hub alone.  TLS is verified, against
 * `CURL_CA_BUNDLE` or `SSL_CERT_FILE` where set; the proxy variables of
 * libcurl apply.  `s3://BUCKET/KEY` requests are signed with SigV4, the
 * credentials, region and endpoint read from the standard AWS variables
 * and files.  `method=mmap` and `direct` read a URL as `pread` does.
 *
 * With `method=mmap` the buffers are views of the file's pages, not
 * copies: a file that changes after a buffer was pushed changes that
 * buffer too, and one truncated under it can kill the process with SIGBUS
 * (the kernel's answer to touching pages past the end), which no element
 * can catch.  Use `pread` or `direct` for files that may change.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 uelsrc location=model.safetensors ! fakesink
 * ]| Reads every tensor of model.safetensors.
 * |[
 * gst-launch-1.0 -m uelsrc location=model.safetensors.index.json tensors="*.weight" method=direct ! fakesink
 * ]| Reads the weights of a sharded checkpoint with O_DIRECT and prints the
 * header message.
 * |[
 * gst-launch-1.0 uelsrc location=https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors io-threads=8 ! fakesink
 * ]| Streams a model from the Hugging Face Hub on 8 connections.
 * |[
 * gst-launch-1.0 -m uelsrc location=model.safetensors dtypes=U8 ndim=1 ! ueldictdecode ! fakesink
 * ]| Reads only the 1-D U8 tensors, from their offsets, and prints the
 * dictionaries they hold.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>
#include <sys/resource.h>

#include "gstuelelements.h"
#include "gstuelsrc.h"

GST_DEBUG_CATEGORY_STATIC (gst_uel_src_debug);
#define GST_CAT_DEFAULT gst_uel_src_debug

#define DEFAULT_LOCATION NULL
#define DEFAULT_TENSORS NULL
#define DEFAULT_METHOD UEL_READ_PREAD
/* 0: one I/O thread per CPU, up to 16 (UelReader's choice) */
#define DEFAULT_IO_THREADS 0
#define MAX_IO_THREADS 64
#define DEFAULT_CHUNK_SIZE 0
#define DEFAULT_DTYPES NULL
#define DEFAULT_NDIM -1
#define DEFAULT_READ_AHEAD (G_GUINT64_CONSTANT (64) << 20)

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_TENSORS,
  PROP_METHOD,
  PROP_IO_THREADS,
  PROP_CHUNK_SIZE,
  PROP_DTYPES,
  PROP_NDIM,
  PROP_READ_AHEAD,
};

struct _GstUelSrc
{
  GstPushSrc parent;

  /* properties, under the object lock */
  gchar *location;
  gchar *tensors;
  UelReadMethod method;
  guint io_threads;
  guint64 chunk_size;
  guint64 read_ahead;
  gchar *dtypes;
  gint ndim;

  /* from start() to stop() */
  UelHeader *header;
  UelReader *reader;
  gboolean header_sent;
  /* under the object lock: the pinned pool read into, which unlock()
   * sets flushing, so that a read waiting for its memory returns */
  GstAllocator *pool;
  gint flushing;                /* atomic: between unlock and unlock_stop */
  gint eos_requested;           /* atomic: an EOS event was sent to us */
};

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS (UEL_TENSOR_CAPS));

#define _do_init \
  GST_DEBUG_CATEGORY_INIT (gst_uel_src_debug, "uelsrc", 0, \
      "safetensors tensor source");
#define gst_uel_src_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstUelSrc, gst_uel_src, GST_TYPE_PUSH_SRC, _do_init);
GST_ELEMENT_REGISTER_DEFINE (uelsrc, "uelsrc", GST_RANK_NONE,
    GST_TYPE_UEL_SRC);

/* ------------------------------------------------------------------ */
/* errors */

/* the details of a file that cannot be opened: what a person can change */
static gchar *
open_error_details (GstUelSrc * self, const GError * err)
{
  struct rlimit rl;

  switch (err->code) {
    case G_FILE_ERROR_NOENT:
      return g_strdup ("open(): no such file (ENOENT)");
    case G_FILE_ERROR_ACCES:
    case G_FILE_ERROR_PERM:
      return g_strdup ("open(): permission denied (EACCES)");
    case G_FILE_ERROR_MFILE:
      if (getrlimit (RLIMIT_NOFILE, &rl) == 0)
        return g_strdup_printf ("open(): this process has as many files "
            "open as its limit allows (EMFILE, RLIMIT_NOFILE %llu; uelsrc "
            "keeps at most %u open): raise `ulimit -n`",
            (unsigned long long) rl.rlim_cur, self->reader ?
            uel_reader_get_max_open_files (self->reader) : 0);
      return g_strdup ("open(): too many open files in this process (EMFILE)");
    case G_FILE_ERROR_NFILE:
      return g_strdup ("open(): the system has as many files open as it "
          "allows (ENFILE)");
    case G_FILE_ERROR_ISDIR:
      return g_strdup ("a directory (EISDIR)");
    default:
      return g_strdup_printf ("open(): GFileError %d", err->code);
  }
}

static void
post_error (GstUelSrc * self, const GError * err)
{
  if (err->domain == G_FILE_ERROR) {
    gchar *details = open_error_details (self, err);

    if (err->code == G_FILE_ERROR_NOENT)
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("%s", err->message),
          ("%s", details));
    else
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("%s", err->message),
          ("%s", details));
    g_free (details);
    return;
  }
  if (err->domain != UEL_ERROR) {
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("%s", err->message), (NULL));
    return;
  }
  switch ((UelError) err->code) {
    case UEL_ERROR_IO:
    case UEL_ERROR_FILE_CHANGED:
      GST_ELEMENT_ERROR (self, RESOURCE, READ, ("%s", err->message),
          ("uel error %d", err->code));
      break;
    case UEL_ERROR_INVALID_ARGUMENT:
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("%s", err->message),
          ("uel error %d", err->code));
      break;
    case UEL_ERROR_NO_MEMORY:
      GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT, ("%s", err->message),
          ("uel error %d", err->code));
      break;
    case UEL_ERROR_FILE_TOO_SMALL:
    case UEL_ERROR_HEADER_TOO_LARGE:
    case UEL_ERROR_HEADER_TRUNCATED:
    case UEL_ERROR_HEADER_NOT_UTF8:
    case UEL_ERROR_HEADER_NOT_JSON:
    case UEL_ERROR_HEADER_NOT_OBJECT:
      GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("%s", err->message),
          ("uel error %d: not a safetensors file", err->code));
      break;
    default:
      GST_ELEMENT_ERROR (self, STREAM, DECODE, ("%s", err->message),
          ("uel error %d: invalid safetensors header", err->code));
      break;
  }
}

/* Appends where a selection error comes from: the message of a filter
 * names the file and the item, not the element's property. */
static void
suffix_error (GError * err, const gchar * property)
{
  gchar *old = err->message;

  err->message = g_strdup_printf ("%s (property '%s')", old, property);
  g_free (old);
}

/* The reader of the selected tensors, configured from the properties. */
static UelReader *
make_reader (GstUelSrc * self, GError ** error)
{
  g_autoptr (UelTensorFilter) filter = uel_tensor_filter_new ();
  g_autoptr (GArray) selected = NULL;
  g_autofree gchar *spec = NULL, *dtypes = NULL;
  UelReader *reader;
  UelReadMethod method;
  guint io_threads;
  gint ndim, num_buffers;
  guint64 chunk_size, read_ahead;

  GST_OBJECT_LOCK (self);
  spec = g_strdup (self->tensors);
  dtypes = g_strdup (self->dtypes);
  ndim = self->ndim;
  method = self->method;
  io_threads = self->io_threads;
  num_buffers = GST_BASE_SRC (self)->num_buffers;
  chunk_size = self->chunk_size;
  read_ahead = self->read_ahead;
  GST_OBJECT_UNLOCK (self);

  uel_tensor_filter_add_names (filter, spec);
  uel_tensor_filter_set_ndim (filter, ndim);
  if (!uel_tensor_filter_set_dtypes (filter, dtypes, error)) {
    g_prefix_error (error, "%s: ", uel_header_get_location (self->header));
    suffix_error (*error, "dtypes");
    return NULL;
  }
  selected = uel_tensor_filter_select (filter, self->header, NULL, error);
  if (!selected) {
    suffix_error (*error, "tensors");
    return NULL;
  }

  reader = uel_reader_new (self->header);
  uel_reader_set_tensors (reader, (const guint *) selected->data,
      selected->len);
  uel_reader_set_method (reader, method);
  uel_reader_set_io_threads (reader, io_threads);
  uel_reader_set_max_buffers (reader, num_buffers);
  uel_reader_set_chunk_size (reader, chunk_size);
  uel_reader_set_read_ahead (reader, read_ahead);
  return reader;
}

/* ------------------------------------------------------------------ */
/* GstBaseSrc */

static gboolean
gst_uel_src_start (GstBaseSrc * src)
{
  GstUelSrc *self = GST_UEL_SRC (src);
  g_autofree gchar *location = NULL;
  GError *err = NULL;
  guint n;
  guint64 bytes;

  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  GST_OBJECT_UNLOCK (self);

  if (!location || !*location) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("No file name specified for reading."),
        ("the 'location' property is not set"));
    return FALSE;
  }

  self->header = uel_header_open (location, &err);
  if (!self->header)
    goto failed;
  self->reader = make_reader (self, &err);
  if (!self->reader)
    goto failed;
  self->header_sent = FALSE;
  g_atomic_int_set (&self->eos_requested, FALSE);

  n = uel_reader_get_n_tensors (self->reader);
  bytes = uel_reader_get_total_bytes (self->reader);
  GST_INFO_OBJECT (self, "%s: %u of %u tensors selected, %" G_GUINT64_FORMAT
      " bytes, %u file(s)", uel_header_get_location (self->header), n,
      uel_header_get_n_tensors (self->header), bytes,
      uel_header_get_n_files (self->header));
  gst_element_post_message (GST_ELEMENT (self),
      gst_message_new_element (GST_OBJECT (self),
          uel_header_structure_new (self->header, n, bytes)));
  return TRUE;

failed:
  post_error (self, err);
  g_clear_error (&err);
  g_clear_pointer (&self->header, uel_header_unref);
  return FALSE;
}

static gboolean
gst_uel_src_stop (GstBaseSrc * src)
{
  GstUelSrc *self = GST_UEL_SRC (src);

  g_clear_object (&self->reader);
  g_clear_pointer (&self->header, uel_header_unref);
  GST_OBJECT_LOCK (self);
  gst_clear_object (&self->pool);
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

/* Reads into what downstream proposes (uelpin's pinned pool), or into
 * the reader's recycled host memory.  Decided once a stream: buffers
 * already read keep their memory, so a later reconfiguration changes
 * nothing. */
static gboolean
gst_uel_src_decide_allocation (GstBaseSrc * src, GstQuery * query)
{
  GstUelSrc *self = GST_UEL_SRC (src);
  GstAllocator *allocator = NULL;
  GstAllocationParams params;

  if (uel_reader_is_started (self->reader)) {
    GST_DEBUG_OBJECT (self, "reading already: keeping the allocator");
    return TRUE;
  }
  gst_allocation_params_init (&params);
  if (gst_query_get_n_allocation_params (query) > 0)
    gst_query_parse_nth_allocation_param (query, 0, &allocator, &params);
  uel_reader_set_allocator (self->reader, allocator, &params);
  GST_OBJECT_LOCK (self);
  gst_clear_object (&self->pool);
  if (allocator && UEL_IS_PINNED_ALLOCATOR (allocator))
    self->pool = gst_object_ref (allocator);
  GST_OBJECT_UNLOCK (self);
  gst_clear_object (&allocator);
  return TRUE;
}

/* Makes a read waiting for pinned memory, or about to, return now: the
 * reader fails it as flushing, and the pool it waits in is set flushing
 * (nobody else would: uelpin does not flush its pool when it stops, and a
 * wait otherwise lasts the pool's timeout). */
static gboolean
gst_uel_src_unlock (GstBaseSrc * src)
{
  GstUelSrc *self = GST_UEL_SRC (src);

  GST_DEBUG_OBJECT (self, "unlock");
  g_atomic_int_set (&self->flushing, TRUE);
  GST_OBJECT_LOCK (self);
  if (self->reader)
    uel_reader_set_flushing (self->reader, TRUE);
  if (self->pool)
    uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (self->pool),
        TRUE);
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static gboolean
gst_uel_src_unlock_stop (GstBaseSrc * src)
{
  GstUelSrc *self = GST_UEL_SRC (src);

  GST_DEBUG_OBJECT (self, "unlock stop");
  g_atomic_int_set (&self->flushing, FALSE);
  GST_OBJECT_LOCK (self);
  if (self->reader)
    uel_reader_set_flushing (self->reader, FALSE);
  if (self->pool)
    uel_pinned_allocator_set_flushing (UEL_PINNED_ALLOCATOR (self->pool),
        FALSE);
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static GstFlowReturn
gst_uel_src_create (GstPushSrc * src, GstBuffer ** out)
{
  GstUelSrc *self = GST_UEL_SRC (src);
  const UelTensorMeta *meta;
  GError *err = NULL;
  GstBuffer *buf;

  if (g_atomic_int_get (&self->eos_requested)) {
    GST_DEBUG_OBJECT (self, "EOS requested");
    /* the reads ahead are not wanted: their memory goes back now */
    uel_reader_stop (self->reader);
    return GST_FLOW_EOS;
  }
  if (!uel_reader_is_started (self->reader)
      && !uel_reader_start (self->reader, &err))
    goto error;
  if (!self->header_sent) {
    /* with the selection itself, so that a writer downstream (uelsink)
     * knows its file's table before the first tensor */
    GstEvent *event = uel_header_event_new_full (self->header,
        uel_reader_get_n_tensors (self->reader),
        uel_reader_get_tensors (self->reader), NULL,
        uel_reader_get_total_bytes (self->reader));

    /* sticky: it goes out right after the segment that the base class
     * pushes before this first buffer (sticky events travel in their
     * order), and reaches elements linked later too */
    gst_pad_store_sticky_event (GST_BASE_SRC_PAD (self), event);
    gst_event_unref (event);
    self->header_sent = TRUE;
  }

  buf = uel_reader_next (self->reader, &err);
  if (!buf) {
    if (err)
      goto error;
    GST_DEBUG_OBJECT (self, "all %u tensors read",
        uel_reader_get_n_tensors (self->reader));
    return GST_FLOW_EOS;
  }
  meta = uel_buffer_get_tensor_meta (buf);
  GST_LOG_OBJECT (self, "tensor %u/%u '%s' (%" G_GSIZE_FORMAT " bytes at %"
      G_GUINT64_FORMAT ")", meta->index + 1, meta->count,
      uel_tensor_meta_get_name (meta), gst_buffer_get_size (buf),
      meta->chunk_offset);
  *out = buf;
  return GST_FLOW_OK;

error:
  if (g_atomic_int_get (&self->flushing)) {
    /* shutting down: a refused allocation is not the user's problem */
    GST_DEBUG_OBJECT (self, "flushing: %s", err->message);
    g_clear_error (&err);
    return GST_FLOW_FLUSHING;
  }
  post_error (self, err);
  g_clear_error (&err);
  return GST_FLOW_ERROR;
}

/* An EOS sent to the element (gst_element_send_event() on it or on the
 * pipeline) ends the stream after the buffer being pushed, and frees the
 * reads ahead.  GstBaseSrc's own handling flushes and waits for the
 * streaming thread, which a full queue in PAUSED never lets go: a
 * pipeline that prerolled could not be ended. */
static gboolean
gst_uel_src_send_event (GstElement * element, GstEvent * event)
{
  GstUelSrc *self = GST_UEL_SRC (element);

  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    GST_DEBUG_OBJECT (self, "EOS requested by the application");
    g_atomic_int_set (&self->eos_requested, TRUE);
    gst_event_unref (event);
    return TRUE;
  }
  return GST_ELEMENT_CLASS (parent_class)->send_event (element, event);
}

static gboolean
gst_uel_src_is_seekable (GstBaseSrc * src)
{
  /* tensors are not a timeline */
  return FALSE;
}

static gboolean
gst_uel_src_query (GstBaseSrc * src, GstQuery * query)
{
  GstUelSrc *self = GST_UEL_SRC (src);
  GstFormat format;

  if (GST_QUERY_TYPE (query) == GST_QUERY_DURATION) {
    gst_query_parse_duration (query, &format, NULL);
    if (format != GST_FORMAT_BYTES || !self->reader)
      return FALSE;
    gst_query_set_duration (query, format,
        (gint64) uel_reader_get_total_bytes (self->reader));
    return TRUE;
  }
  return GST_BASE_SRC_CLASS (parent_class)->query (src, query);
}

/* ------------------------------------------------------------------ */
/* GObject */

static void
gst_uel_src_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstUelSrc *self = GST_UEL_SRC (object);

  if (!gst_uel_property_can_change (GST_ELEMENT (self), pspec))
    return;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_TENSORS:
      g_free (self->tensors);
      self->tensors = g_value_dup_string (value);
      break;
    case PROP_METHOD:
      self->method = g_value_get_enum (value);
      break;
    case PROP_IO_THREADS:
      self->io_threads = g_value_get_uint (value);
      break;
    case PROP_CHUNK_SIZE:
      self->chunk_size = g_value_get_uint64 (value);
      break;
    case PROP_READ_AHEAD:
      self->read_ahead = g_value_get_uint64 (value);
      break;
    case PROP_DTYPES:
      g_free (self->dtypes);
      self->dtypes = g_value_dup_string (value);
      break;
    case PROP_NDIM:
      self->ndim = g_value_get_int (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_src_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstUelSrc *self = GST_UEL_SRC (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_TENSORS:
      g_value_set_string (value, self->tensors);
      break;
    case PROP_METHOD:
      g_value_set_enum (value, self->method);
      break;
    case PROP_IO_THREADS:
      g_value_set_uint (value, self->io_threads);
      break;
    case PROP_CHUNK_SIZE:
      g_value_set_uint64 (value, self->chunk_size);
      break;
    case PROP_READ_AHEAD:
      g_value_set_uint64 (value, self->read_ahead);
      break;
    case PROP_DTYPES:
      g_value_set_string (value, self->dtypes);
      break;
    case PROP_NDIM:
      g_value_set_int (value, self->ndim);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_uel_src_finalize (GObject * object)
{
  GstUelSrc *self = GST_UEL_SRC (object);

  g_free (self->location);
  g_free (self->tensors);
  g_free (self->dtypes);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_uel_src_class_init (GstUelSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *basesrc_class = GST_BASE_SRC_CLASS (klass);
  GstPushSrcClass *pushsrc_class = GST_PUSH_SRC_CLASS (klass);
  const GParamFlags rw_ready = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_uel_src_set_property;
  gobject_class->get_property = gst_uel_src_get_property;
  gobject_class->finalize = gst_uel_src_finalize;

  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "The .safetensors file, or a sharded checkpoint's *.index.json; "
          "either may be an http://, https:// or s3:// URL",
          DEFAULT_LOCATION, rw_ready));
  g_object_class_install_property (gobject_class, PROP_TENSORS,
      g_param_spec_string ("tensors", "Tensors",
          "Comma-separated tensor names or glob patterns (* and ?) to read, "
          "in file order; each must match at least one tensor; a backslash "
          "takes the next character literally (\\, \\* \\\\) "
          "(empty = all tensors)", DEFAULT_TENSORS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_METHOD,
      g_param_spec_enum ("method", "Method",
          "How tensors are read: pread into recycled memory, zero-copy "
          "mmap, or O_DIRECT (falls back to pread where refused)",
          UEL_TYPE_READ_METHOD, DEFAULT_METHOD, rw_ready));
  g_object_class_install_property (gobject_class, PROP_IO_THREADS,
      g_param_spec_uint ("io-threads", "I/O threads",
          "Threads reading large tensors in parallel, in parts of 8 MiB, "
          "ahead of the one being pushed, each on its own connection for a "
          "URL (0 = one per CPU, up to 16, and at least 4 for a URL; 1 = "
          "read in the streaming thread only)", 0, MAX_IO_THREADS,
          DEFAULT_IO_THREADS, rw_ready));
  g_object_class_install_property (gobject_class, PROP_CHUNK_SIZE,
      g_param_spec_uint64 ("chunk-size", "Chunk size",
          "Emit tensors larger than this many bytes as consecutive chunks "
          "(0 = whole tensors)", 0, G_MAXUINT64, DEFAULT_CHUNK_SIZE,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_DTYPES,
      g_param_spec_string ("dtypes", "Dtypes",
          "Comma-separated dtype names, case-insensitive (e.g. \"U8\" or "
          "\"F16,BF16\"); only tensors of these dtypes are read, among those "
          "'tensors' selects (empty = all dtypes)",
          DEFAULT_DTYPES, rw_ready));
  g_object_class_install_property (gobject_class, PROP_READ_AHEAD,
      g_param_spec_uint64 ("read-ahead", "Read-ahead",
          "Bytes of the next buffers read by the I/O threads while the "
          "current one is pushed (at most half a pinned pool downstream; "
          "0 = one buffer at a time)", 0, G_MAXUINT64, DEFAULT_READ_AHEAD,
          rw_ready));
  g_object_class_install_property (gobject_class, PROP_NDIM,
      g_param_spec_int ("ndim", "Number of dimensions",
          "Only tensors with this many dimensions are read, among those "
          "'tensors' and 'dtypes' select (0 = scalars, -1 = any)", -1,
          G_MAXINT, DEFAULT_NDIM, rw_ready));

  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class,
      "Safetensors tensor source", "Source/File",
      "Reads the tensors of a .safetensors file or sharded checkpoint by "
      "byte offset, one buffer per tensor, header validated first",
      "gst-uel developers");
  /* gst-inspect-1.0 prints every metadata key: the example is where users
   * look first */
  gst_element_class_add_static_metadata (element_class, "example",
      "gst-launch-1.0 uelsrc location=model.safetensors ! fakesink");
  element_class->send_event = GST_DEBUG_FUNCPTR (gst_uel_src_send_event);
  basesrc_class->start = GST_DEBUG_FUNCPTR (gst_uel_src_start);
  basesrc_class->stop = GST_DEBUG_FUNCPTR (gst_uel_src_stop);
  basesrc_class->decide_allocation =
      GST_DEBUG_FUNCPTR (gst_uel_src_decide_allocation);
  basesrc_class->unlock = GST_DEBUG_FUNCPTR (gst_uel_src_unlock);
  basesrc_class->unlock_stop = GST_DEBUG_FUNCPTR (gst_uel_src_unlock_stop);
  basesrc_class->is_seekable = GST_DEBUG_FUNCPTR (gst_uel_src_is_seekable);
  basesrc_class->query = GST_DEBUG_FUNCPTR (gst_uel_src_query);
  pushsrc_class->create = GST_DEBUG_FUNCPTR (gst_uel_src_create);

  gst_type_mark_as_plugin_api (UEL_TYPE_READ_METHOD, 0);
}

static void
gst_uel_src_init (GstUelSrc * self)
{
  self->method = DEFAULT_METHOD;
  self->io_threads = DEFAULT_IO_THREADS;
  self->chunk_size = DEFAULT_CHUNK_SIZE;
  self->read_ahead = DEFAULT_READ_AHEAD;
  self->ndim = DEFAULT_NDIM;
  /* positions and the duration count tensor bytes; the base class must
   * not end the stream at a size of its own */
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_BYTES);
  gst_base_src_set_automatic_eos (GST_BASE_SRC (self), FALSE);
}
