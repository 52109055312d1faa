/* gst-uel: the uelsink element: copies byte-identical to the reference
 * writer's files (whole, chunked, selected, converted), metadata, and
 * nothing half-written on error, flush or stop
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>
#include <gst/check/gstharness.h>

#include "test-utils.h"

typedef struct
{
  const gchar *name;
  UelDType dtype;
  guint n_dims;
  guint64 shape[2];
} Spec;

/* every kind of tensor a model holds, none in the reference's order */
static const Spec model[] = {
  {"model.embed.weight", UEL_DTYPE_F32, 2, {16, 8}},
  {"model.layers.0.mlp.weight", UEL_DTYPE_F16, 2, {8, 12}},
  {"model.layers.0.norm.weight", UEL_DTYPE_BF16, 1, {8}},
  {"model.layers.0.attn.bias", UEL_DTYPE_F32, 1, {5}},
  {"tokenizer.vocab", UEL_DTYPE_U8, 1, {37}},
  {"position_ids", UEL_DTYPE_I64, 2, {1, 7}},
  {"scale", UEL_DTYPE_F64, 0, {0}},
};

static const gchar *const model_metadata[] = {
  "format", "pt", "modelspec.title", "a \"small\" model, for tests", NULL
};

static const gchar *const format_pt[] = { "format", "pt", NULL };

static gsize
spec_bytes (const Spec * t)
{
  guint64 n = 1;

  for (guint d = 0; d < t->n_dims; d++)
    n *= t->shape[d];
  return n * uel_dtype_get_bits (t->dtype) / 8;
}

/* Writes the model's tensors whose names match @glob (NULL: all), cast to
 * @to and then to @then the way uelconvert casts them (UEL_DTYPE_INVALID:
 * no cast), with @metadata (key, value pairs), through UelWriter: the
 * reference's bytes. */
static void
write_model_cast (const gchar * path, const gchar * glob, UelDType to,
    UelDType then, const gchar * const *metadata)
{
  GError *err = NULL;
  g_autoptr (UelWriter) w = uel_writer_new (path, &err);

  g_assert_no_error (err);
  for (guint i = 0; i < G_N_ELEMENTS (model); i++) {
    const Spec *t = &model[i];
    UelDType dtype = t->dtype;

    if (glob && !g_pattern_match_simple (glob, t->name))
      continue;
    if (to != UEL_DTYPE_INVALID && uel_convert_cpu_supported (dtype, to))
      dtype = to;
    if (then != UEL_DTYPE_INVALID && uel_convert_cpu_supported (dtype, then))
      dtype = then;
    g_assert_true (uel_writer_add_tensor (w, t->name, dtype, t->n_dims,
            t->shape, &err));
    g_assert_no_error (err);
  }
  for (guint i = 0; metadata && metadata[i]; i += 2) {
    g_assert_true (uel_writer_set_metadata (w, metadata[i], metadata[i + 1],
            &err));
    g_assert_no_error (err);
  }
  g_assert_true (uel_writer_write_header (w, &err));
  g_assert_no_error (err);
  for (guint i = 0; i < G_N_ELEMENTS (model); i++) {
    const Spec *t = &model[i];
    gsize n = spec_bytes (t);
    /* room for any cast of it: a target has at most 4 bytes an element */
    g_autofree guint8 *data = g_malloc (4 * n);
    g_autofree guint8 *cast = g_malloc (4 * n);
    UelDType steps[] = { to, then }, from = t->dtype;
    const UelTensorInfo *info;

    if (glob && !g_pattern_match_simple (glob, t->name))
      continue;
    uel_test_fill (data, n, i + 1);
    info = uel_writer_lookup (w, t->name, NULL);
    for (guint k = 0; k < G_N_ELEMENTS (steps); k++) {
      if (steps[k] == UEL_DTYPE_INVALID || steps[k] == from
          || !uel_convert_cpu_supported (from, steps[k]))
        continue;
      g_assert_true (uel_convert_cpu (from, steps[k], data, cast,
              info->n_elements, &err));
      g_assert_no_error (err);
      memcpy (data, cast, info->n_elements * uel_dtype_get_bits (steps[k])
          / 8);
      from = steps[k];
    }
    g_assert_true (uel_writer_write_tensor (w, t->name, data, info->n_bytes,
            &err));
    g_assert_no_error (err);
  }
  g_assert_true (uel_writer_finish (w, &err));
  g_assert_no_error (err);
}

static void
write_model (const gchar * path, const gchar * glob, UelDType to,
    const gchar * const *metadata)
{
  write_model_cast (path, glob, to, UEL_DTYPE_INVALID, metadata);
}

static void
assert_same_bytes (const gchar * path, const gchar * expected)
{
  GError *err = NULL;
  g_autofree gchar *a = NULL, *b = NULL;
  gsize a_len, b_len;

  g_file_get_contents (path, &a, &a_len, &err);
  g_assert_no_error (err);
  g_file_get_contents (expected, &b, &b_len, &err);
  g_assert_no_error (err);
  g_assert_cmpmem (a, a_len, b, b_len);
}

static void
assert_error_names (const GError * err, gint code, const gchar * path,
    const gchar * tensor)
{
  g_assert_error (err, GST_RESOURCE_ERROR, code);
  g_test_message ("%s", err->message);
  g_assert_nonnull (strstr (err->message, path));
  if (tensor)
    g_assert_nonnull (strstr (err->message, tensor));
}

/* runs "uelsrc location=model SRC ! MIDDLE uelsink location=copy SINK" and
 * compares the copy with @expected */
static void
copy_and_compare (const gchar * src_props, const gchar * middle,
    const gchar * sink_props, const gchar * expected)
{
  g_autofree gchar *in = uel_test_path ("model.safetensors");
  g_autofree gchar *out = uel_test_path ("copy.safetensors");
  g_autofree gchar *launch = NULL;
  GError *err;

  write_model (in, NULL, UEL_DTYPE_INVALID, model_metadata);
  g_remove (out);
  launch = g_strdup_printf ("uelsrc location=%s %s ! %s uelsink "
      "location=%s %s", in, src_props, middle, out, sink_props);
  g_test_message ("%s", launch);
  err = uel_test_run_pipeline (launch, NULL);
  g_assert_no_error (err);
  assert_same_bytes (out, expected ? expected : in);
  g_assert_cmpuint (uel_test_count_temporaries (out), ==, 0);
}

static void
test_copies_byte_for_byte (void)
{
  copy_and_compare ("", "", "", NULL);
}

static void
test_writes_chunks_at_their_offsets (void)
{
  /* chunks smaller than most tensors, and one that is no element size */
  copy_and_compare ("chunk-size=24", "", "", NULL);
  copy_and_compare ("chunk-size=13", "", "", NULL);
}

static void
test_writes_only_the_selection (void)
{
  g_autofree gchar *expected = uel_test_path ("expected-selected.safetensors");

  write_model (expected, "model.layers.*", UEL_DTYPE_INVALID, model_metadata);
  copy_and_compare ("tensors=model.layers.*", "", "", expected);
  copy_and_compare ("tensors=model.layers.* chunk-size=16", "uelqueue !",
      "", expected);
}

static void
test_writes_the_converted_table (void)
{
  g_autofree gchar *expected = uel_test_path ("expected-bf16.safetensors");

  write_model (expected, NULL, UEL_DTYPE_BF16, model_metadata);
  copy_and_compare ("", "uelconvert dtype=bf16 !", "", expected);
  copy_and_compare ("chunk-size=16", "uelconvert dtype=bf16 !", "", expected);

  /* two conversions: the table follows both */
  write_model_cast (expected, "model.layers.*", UEL_DTYPE_BF16, UEL_DTYPE_F16,
      model_metadata);
  copy_and_compare ("tensors=model.layers.*",
      "uelconvert dtype=bf16 ! uelconvert dtype=f16 !", "", expected);
}

static void
test_metadata (void)
{
  static const gchar *const merged[] = {
    "format", "safetensors", "modelspec.title", "a \"small\" model, for tests",
    "note", "a, b", NULL
  };
  static const gchar *const own[] = { "note", "x", NULL };
  g_autofree gchar *expected = uel_test_path ("expected-meta.safetensors");

  write_model (expected, NULL, UEL_DTYPE_INVALID, merged);
  copy_and_compare ("", "", "metadata=\"format=safetensors,note=\\\"a, b\\\"\"",
      expected);
  write_model (expected, NULL, UEL_DTYPE_INVALID, own);
  copy_and_compare ("", "", "keep-metadata=false metadata=note=x", expected);
  write_model (expected, NULL, UEL_DTYPE_INVALID, NULL);
  copy_and_compare ("", "", "keep-metadata=false", expected);
}

/* max-shard-size writes a checkpoint of shards, each with the metadata,
 * and an index that uelsrc reads back into the same file (the reader
 * takes a checkpoint's metadata from its index: keep-metadata=false
 * drops its total_size) */
static void
test_writes_shards (void)
{
  g_autofree gchar *in = uel_test_path ("model.safetensors");
  g_autofree gchar *dir = uel_test_path ("sharded");
  g_autofree gchar *out = g_build_filename (dir, "model.safetensors", NULL);
  g_autofree gchar *index = g_build_filename (dir,
      "model.safetensors.index.json", NULL);
  g_autofree gchar *back = uel_test_path ("joined.safetensors");
  g_autofree gchar *launch = NULL;
  g_autoptr (UelHeader) h = NULL;
  GError *err;

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  write_model (in, NULL, UEL_DTYPE_INVALID, format_pt);
  /* 200 bytes: the 512-byte embedding alone, the rest in three */
  launch = g_strdup_printf ("uelsrc location=%s ! uelsink location=%s "
      "max-shard-size=200", in, out);
  err = uel_test_run_pipeline (launch, NULL);
  g_assert_no_error (err);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  h = uel_test_header_open (index);
  g_assert_cmpuint (uel_header_get_n_files (h), ==, 4);
  for (guint i = 0; i < 4; i++) {
    g_autoptr (UelHeader) shard =
        uel_test_header_open (uel_header_get_file_path (h, i));

    g_assert_cmpstr (g_hash_table_lookup (uel_header_get_metadata (shard),
            "format"), ==, "pt");
    g_assert_cmpuint (uel_test_count_temporaries (uel_header_get_file_path
            (h, i)), ==, 0);
  }
  g_assert_cmpuint (uel_test_count_temporaries (index), ==, 0);

  g_clear_pointer (&launch, g_free);
  launch = g_strdup_printf ("uelsrc location=%s ! uelsink location=%s "
      "keep-metadata=false metadata=format=pt", index, back);
  err = uel_test_run_pipeline (launch, NULL);
  g_assert_no_error (err);
  assert_same_bytes (back, in);
}

static void
test_refuses_an_unwritable_folder (void)
{
  g_autofree gchar *in = uel_test_path ("model.safetensors");
  g_autofree gchar *out = uel_test_path ("no-such-folder/copy.safetensors");
  g_autofree gchar *launch = NULL;
  GError *err;

  write_model (in, NULL, UEL_DTYPE_INVALID, NULL);
  launch = g_strdup_printf ("uelsrc location=%s ! uelsink location=%s", in,
      out);
  err = uel_test_run_pipeline (launch, NULL);
  assert_error_names (err, GST_RESOURCE_ERROR_OPEN_WRITE, out, NULL);
  g_error_free (err);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

static void
test_stop_before_eos_leaves_the_old_file (void)
{
  g_autofree gchar *in = uel_test_path ("model.safetensors");
  g_autofree gchar *out = uel_test_path ("stopped.safetensors");
  g_autofree gchar *launch = NULL;
  g_autofree gchar *text = NULL;
  GstElement *pipeline;
  GError *err = NULL;

  write_model (in, NULL, UEL_DTYPE_INVALID, NULL);
  uel_test_write_bytes (out, "old", 3);
  launch = g_strdup_printf ("uelsrc location=%s ! uelsink location=%s", in,
      out);
  pipeline = gst_parse_launch (launch, &err);
  g_assert_no_error (err);
  /* prerolled: the first tensor waits in the sink, the file is begun */
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_PAUSED), ==,
      GST_STATE_CHANGE_ASYNC);
  g_assert_cmpint (gst_element_get_state (pipeline, NULL, NULL,
          GST_CLOCK_TIME_NONE), ==, GST_STATE_CHANGE_SUCCESS);
  g_assert_cmpuint (uel_test_count_temporaries (out), ==, 1);
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (pipeline);

  g_assert_cmpuint (uel_test_count_temporaries (out), ==, 0);
  g_file_get_contents (out, &text, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (text, ==, "old");
}

/* A harness around uelsink writing @out, with a bus to read its errors,
 * and the properties @first_property ... set (NULL-terminated). */
static GstHarness *
sink_harness_with (const gchar * out, GstBus ** bus,
    const gchar * first_property, ...)
{
  GstElement *sink = gst_element_factory_make ("uelsink", NULL);
  GstHarness *h;
  va_list args;

  g_assert_nonnull (sink);
  /* no preroll to wait for: the harness wants the state change done */
  g_object_set (sink, "location", out, "async", FALSE, NULL);
  va_start (args, first_property);
  g_object_set_valist (G_OBJECT (sink), first_property, args);
  va_end (args);
  h = gst_harness_new_with_element (sink, "sink", NULL);
  gst_object_unref (sink);
  *bus = gst_bus_new ();
  gst_element_set_bus (h->element, *bus);
  gst_harness_set_src_caps_str (h, UEL_TENSOR_CAPS);
  gst_harness_play (h);
  return h;
}

static GstHarness *
sink_harness (const gchar * out, GstBus ** bus)
{
  return sink_harness_with (out, bus, NULL);
}

/* The messages queued on @bus hold the element, which holds @bus: drop
 * them before the teardown, or neither is ever freed. */
static void
teardown (GstHarness * h, GstBus * bus)
{
  gst_bus_set_flushing (bus, TRUE);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

static GError *
pop_error (GstBus * bus)
{
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  GError *err = NULL;

  g_assert_nonnull (msg);
  gst_message_parse_error (msg, &err, NULL);
  gst_message_unref (msg);
  return err;
}

/* tensor @index of @header as uelsrc pushes it, from @file's bytes */
static GstBuffer *
tensor_buffer (UelHeader * header, const gchar * file, guint index)
{
  const UelTensorInfo *t = uel_header_get_tensor (header, index);
  GstBuffer *buf = gst_buffer_new_memdup (file + t->file_offset, t->n_bytes);

  uel_buffer_add_tensor_meta (buf, header, index, index,
      uel_header_get_n_tensors (header));
  return buf;
}

static GstEvent *
whole_header_event (UelHeader * header)
{
  guint n = uel_header_get_n_tensors (header);
  g_autofree guint *all = g_new (guint, n);

  for (guint i = 0; i < n; i++)
    all[i] = i;
  return uel_header_event_new_full (header, n, all, NULL,
      uel_header_get_total_bytes (header));
}

/* writes the model with @metadata; returns its header, and its bytes in
 * @file */
static UelHeader *
open_model (const gchar * in, const gchar * const *metadata, gchar ** file)
{
  write_model (in, NULL, UEL_DTYPE_INVALID, metadata);
  g_assert_true (g_file_get_contents (in, file, NULL, NULL));
  return uel_test_header_open (in);
}

/* @out holds "old", as the test wrote it */
static void
assert_old_file (const gchar * out)
{
  g_autofree gchar *text = NULL;

  g_assert_true (g_file_get_contents (out, &text, NULL, NULL));
  g_assert_cmpstr (text, ==, "old");
}

/* the harness's element posted a RESOURCE @code error naming @out and
 * @tensor; after the teardown no temporary file of @out is left */
static void
assert_failed (GstHarness * h, GstBus * bus, gint code, const gchar * out,
    const gchar * tensor)
{
  GError *err = pop_error (bus);

  assert_error_names (err, code, out, tensor);
  g_error_free (err);
  teardown (h, bus);
  g_assert_cmpuint (uel_test_count_temporaries (out), ==, 0);
}

static void
test_flush_starts_a_new_file (void)
{
  g_autofree gchar *in = uel_test_path ("model.safetensors");
  g_autofree gchar *out = uel_test_path ("flushed.safetensors");
  g_autoptr (UelHeader) header = NULL;
  g_autofree gchar *file = NULL;
  GstSegment segment;
  GstHarness *h;
  GstBus *bus;
  guint n;

  header = open_model (in, model_metadata, &file);
  n = uel_header_get_n_tensors (header);
  g_remove (out);

  h = sink_harness (out, &bus);
  g_assert_true (gst_harness_push_event (h, whole_header_event (header)));
  for (guint i = 0; i < 3; i++)
    g_assert_cmpint (gst_harness_push (h, tensor_buffer (header, file, i)),
        ==, GST_FLOW_OK);
  g_assert_cmpuint (uel_test_count_temporaries (out), ==, 1);

  g_assert_true (gst_harness_push_event (h, gst_event_new_flush_start ()));
  g_assert_true (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  g_assert_cmpuint (uel_test_count_temporaries (out), ==, 0);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));

  /* the stream again, whole: a tensor written before the flush counts no
   * more (else it would be written twice, an error) */
  gst_segment_init (&segment, GST_FORMAT_BYTES);
  g_assert_true (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (gst_harness_push (h, tensor_buffer (header, file, i)),
        ==, GST_FLOW_OK);
  g_assert_true (gst_harness_push_event (h, gst_event_new_eos ()));
  teardown (h, bus);
  assert_same_bytes (out, in);
}

static void
test_errors_leave_the_old_file (void)
{
  g_autofree gchar *in = uel_test_path ("model.safetensors");
  g_autofree gchar *out = uel_test_path ("failed.safetensors");
  g_autoptr (UelHeader) header = NULL;
  g_autofree gchar *file = NULL;
  g_autofree gchar *text = NULL;
  const UelTensorInfo *t;
  UelTensorMeta *meta;
  GstBuffer *buf;
  GstHarness *h;
  GstBus *bus;

  header = open_model (in, NULL, &file);
  t = uel_header_get_tensor (header, 1);

  /* a tensor in another dtype than announced */
  uel_test_write_bytes (out, "old", 3);
  h = sink_harness (out, &bus);
  g_assert_true (gst_harness_push_event (h, whole_header_event (header)));
  g_assert_cmpint (gst_harness_push (h, tensor_buffer (header, file, 0)), ==,
      GST_FLOW_OK);
  buf = tensor_buffer (header, file, 1);
  meta = uel_buffer_get_tensor_meta (buf);
  meta->dtype = meta->dtype == UEL_DTYPE_U8 ? UEL_DTYPE_I8 : UEL_DTYPE_U8;
  g_assert_cmpint (gst_harness_push (h, buf), ==, GST_FLOW_ERROR);
  assert_failed (h, bus, GST_RESOURCE_ERROR_WRITE, out, t->name);
  g_assert_true (g_file_get_contents (out, &text, NULL, NULL));
  g_assert_cmpstr (text, ==, "old");

  /* EOS before every tensor arrived: the missing one is named */
  h = sink_harness (out, &bus);
  g_assert_true (gst_harness_push_event (h, whole_header_event (header)));
  g_assert_cmpint (gst_harness_push (h, tensor_buffer (header, file, 0)), ==,
      GST_FLOW_OK);
  g_assert_false (gst_harness_push_event (h, gst_event_new_eos ()));
  assert_failed (h, bus, GST_RESOURCE_ERROR_WRITE, out, t->name);
  assert_old_file (out);
}

/* bytes [@offset, @offset + @len) of tensor @index of @header, as uelsrc
 * pushes a chunk */
static GstBuffer *
chunk_buffer (UelHeader * header, const gchar * file, guint index,
    guint64 offset, gsize len, guint chunk)
{
  const UelTensorInfo *t = uel_header_get_tensor (header, index);
  GstBuffer *buf = gst_buffer_new_memdup (file + t->file_offset + offset,
      len);
  UelTensorMeta *meta = uel_buffer_add_tensor_meta (buf, header, index,
      index, uel_header_get_n_tensors (header));

  meta->chunk_offset = offset;
  meta->chunk_index = chunk;
  meta->last_chunk = offset + len == t->n_bytes;
  return buf;
}

/* Pushes the model's first @n tensors in stream order, the even ones
 * whole, the odd ones in chunks of 7 bytes, then EOS. */
static void
push_model (GstHarness * h, UelHeader * header, const gchar * file, guint n)
{
  for (guint i = 0; i < n; i++) {
    guint64 size = uel_header_get_tensor (header, i)->n_bytes;

    if (i % 2 == 0) {
      g_assert_cmpint (gst_harness_push (h, tensor_buffer (header, file, i)),
          ==, GST_FLOW_OK);
      continue;
    }
    for (guint64 off = 0, c = 0; off < size; off += 7, c++)
      g_assert_cmpint (gst_harness_push (h, chunk_buffer (header, file, i,
                  off, MIN (7, size - off), c)), ==, GST_FLOW_OK);
  }
  g_assert_true (gst_harness_push_event (h, gst_event_new_eos ()));
}

/* What the incremental writer writes for the model's first @n tensors in
 * stream order, after the metadata @metadata (pairs, in that order). */
static void
write_incrementally (const gchar * path, UelHeader * header,
    const gchar * file, guint n, guint64 reserve,
    const gchar * const *metadata)
{
  GError *err = NULL;
  g_autoptr (UelWriter) w = uel_writer_new_incremental (path, reserve, &err);

  g_assert_no_error (err);
  for (guint i = 0; metadata && metadata[i]; i += 2) {
    g_assert_true (uel_writer_set_metadata (w, metadata[i], metadata[i + 1],
            &err));
    g_assert_no_error (err);
  }
  for (guint i = 0; i < n; i++) {
    const UelTensorInfo *t = uel_header_get_tensor (header, i);

    g_assert_true (uel_writer_append_tensor (w, t->name, t->dtype, t->n_dims,
            t->shape, file + t->file_offset, t->n_bytes, &err));
    g_assert_no_error (err);
  }
  g_assert_true (uel_writer_finish (w, &err));
  g_assert_no_error (err);
}

static void
test_writes_a_stream_without_a_table (void)
{
  g_autofree gchar *in = uel_test_path ("model.safetensors");
  g_autofree gchar *out = uel_test_path ("streamed.safetensors");
  g_autofree gchar *expected = uel_test_path ("expected-inc.safetensors");
  g_autoptr (UelHeader) header = NULL;
  g_autoptr (UelHeader) back = NULL;
  g_autofree gchar *file = NULL;
  const gchar *const with_property[] = {
    "modelspec.title", "a \"small\" model, for tests", "format", "np",
    "z", "1", NULL
  };
  GstHarness *h;
  GstBus *bus;
  guint n;

  header = open_model (in, model_metadata, &file);
  n = uel_header_get_n_tensors (header);
  g_remove (out);

  /* no uel-header event at all: the metadata property only */
  h = sink_harness_with (out, &bus, "metadata", "format=pt", NULL);
  push_model (h, header, file, n);
  teardown (h, bus);
  write_incrementally (expected, header, file, n, 0, format_pt);
  assert_same_bytes (out, expected);
  g_assert_cmpuint (uel_test_count_temporaries (out), ==, 0);
  /* which reads back as the tensors that came, in their order */
  back = uel_test_header_open (out);
  g_assert_cmpuint (uel_header_get_n_tensors (back), ==, n);
  g_assert_cmpuint (uel_header_get_data_offset (back, 0), ==, 8 + 1048576);
  g_assert_cmpstr (uel_header_get_tensor (back, 0)->name, ==,
      uel_header_get_tensor (header, 0)->name);

  /* a selection announced by its count only: the upstream metadata kept,
   * in key order, the property's fields over it; a smaller block */
  h = sink_harness_with (out, &bus, "header-reserve", (guint64) 1001,
      "metadata", "format=np,z=1", NULL);
  g_assert_true (gst_harness_push_event (h, uel_header_event_new (header,
              n - 2, uel_header_get_total_bytes (header))));
  push_model (h, header, file, n - 2);
  teardown (h, bus);
  write_incrementally (expected, header, file, n - 2, 1001, with_property);
  assert_same_bytes (out, expected);
  g_assert_cmpuint (uel_test_count_temporaries (out), ==, 0);
}

static void
test_incremental_errors_leave_nothing (void)
{
  g_autofree gchar *in = uel_test_path ("model.safetensors");
  g_autofree gchar *out = uel_test_path ("outgrown.safetensors");
  g_autoptr (UelHeader) header = NULL;
  g_autofree gchar *file = NULL;
  const UelTensorInfo *t;
  GError *err;
  GstHarness *h;
  GstBus *bus;

  header = open_model (in, NULL, &file);
  t = uel_header_get_tensor (header, 1);
  uel_test_write_bytes (out, "old", 3);

  /* the second tensor's entry outgrows a block of 104 bytes: the error
   * names the header's size and the block's */
  h = sink_harness_with (out, &bus, "header-reserve", (guint64) 100, NULL);
  g_assert_cmpint (gst_harness_push (h, tensor_buffer (header, file, 0)), ==,
      GST_FLOW_OK);
  g_assert_cmpint (gst_harness_push (h, tensor_buffer (header, file, 1)), ==,
      GST_FLOW_ERROR);
  err = pop_error (bus);
  assert_error_names (err, GST_RESOURCE_ERROR_SETTINGS, out,
      "the 104 bytes reserved for it");
  g_assert_nonnull (strstr (err->message, "the header would be "));
  g_error_free (err);
  teardown (h, bus);
  g_assert_cmpuint (uel_test_count_temporaries (out), ==, 0);
  assert_old_file (out);

  /* EOS before a tensor's last chunk: named, nothing written */
  h = sink_harness (out, &bus);
  g_assert_cmpint (gst_harness_push (h, chunk_buffer (header, file, 1, 0, 2,
              0)), ==, GST_FLOW_OK);
  g_assert_false (gst_harness_push_event (h, gst_event_new_eos ()));
  assert_failed (h, bus, GST_RESOURCE_ERROR_WRITE, out, t->name);
  assert_old_file (out);

  /* shards need the table first */
  h = sink_harness_with (out, &bus, "max-shard-size", (guint64) 100, NULL);
  g_assert_cmpint (gst_harness_push (h, tensor_buffer (header, file, 0)), ==,
      GST_FLOW_ERROR);
  assert_failed (h, bus, GST_RESOURCE_ERROR_SETTINGS, out, NULL);
  assert_old_file (out);
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/uelsink/copies-a-model-byte-for-byte",
      test_copies_byte_for_byte);
  g_test_add_func ("/uelsink/writes-chunks-at-their-offsets",
      test_writes_chunks_at_their_offsets);
  g_test_add_func ("/uelsink/writes-only-the-selected-tensors",
      test_writes_only_the_selection);
  g_test_add_func ("/uelsink/writes-the-converted-table",
      test_writes_the_converted_table);
  g_test_add_func ("/uelsink/keeps-or-overrides-the-metadata", test_metadata);
  g_test_add_func ("/uelsink/writes-shards-and-their-index",
      test_writes_shards);
  g_test_add_func ("/uelsink/refuses-an-unwritable-folder",
      test_refuses_an_unwritable_folder);
  g_test_add_func ("/uelsink/stop-before-eos-leaves-the-old-file",
      test_stop_before_eos_leaves_the_old_file);
  g_test_add_func ("/uelsink/flush-starts-a-new-file",
      test_flush_starts_a_new_file);
  g_test_add_func ("/uelsink/errors-leave-the-old-file",
      test_errors_leave_the_old_file);
  g_test_add_func ("/uelsink/incremental/writes-a-stream-without-a-table",
      test_writes_a_stream_without_a_table);
  g_test_add_func ("/uelsink/incremental/errors-leave-nothing",
      test_incremental_errors_leave_nothing);
  return g_test_run ();
}
