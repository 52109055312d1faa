/* gst-uel: shared helpers for the test programs
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test-utils.h"

static gchar *tmpdir;

/* where a test's subprocess (g_test_trap_subprocess) finds its parent's
 * folder */
#define PARENT_TMPDIR_ENV "UEL_TEST_PARENT_TMPDIR"

static void
remove_tmpdir (void)
{
  GDir *dir;
  const gchar *name;

  if (!tmpdir)
    return;
  dir = g_dir_open (tmpdir, 0, NULL);
  while (dir && (name = g_dir_read_name (dir))) {
    g_autofree gchar *p = g_build_filename (tmpdir, name, NULL);
    if (g_unlink (p) != 0)
      g_rmdir (p);
  }
  if (dir)
    g_dir_close (dir);
  g_rmdir (tmpdir);
}

void
uel_test_init (int *argc, char ***argv)
{
  gst_init (argc, argv);
  g_test_init (argc, argv, NULL);
  uel_init ();
  /* now, before any thread: setenv() is not thread-safe */
  if (!g_test_subprocess ())
    g_setenv (PARENT_TMPDIR_ENV, uel_test_tmpdir (), TRUE);
}

const gchar *
uel_test_tmpdir (void)
{
  if (!tmpdir && g_test_subprocess () && g_getenv (PARENT_TMPDIR_ENV)) {
    /* the parent's, which the parent removes */
    tmpdir = g_strdup (g_getenv (PARENT_TMPDIR_ENV));
  } else if (!tmpdir) {
    GError *err = NULL;
    tmpdir = g_dir_make_tmp ("gst-uel-test-XXXXXX", &err);
    g_assert_no_error (err);
    atexit (remove_tmpdir);
  }
  return tmpdir;
}

gchar *
uel_test_path (const gchar * name)
{
  return g_build_filename (uel_test_tmpdir (), name, NULL);
}

const gchar *
uel_test_conformance_dir (void)
{
  const gchar *d = g_getenv ("UEL_CONFORMANCE_DIR");

  return d ? d : UEL_CONFORMANCE_DIR;
}

/* fuzz/make-corpus collects the files the tests write, up to 64 KiB, as
 * seeds for the fuzz targets */
static void
copy_to_corpus (const gchar * path, gconstpointer bytes, gsize len)
{
  const gchar *corpus = g_getenv ("UEL_TEST_CORPUS_DIR");
  g_autofree gchar *base = NULL;
  g_autofree gchar *copy = NULL;
  GError *err = NULL;

  if (!corpus || len > 64 * 1024)
    return;
  base = g_path_get_basename (path);
  copy = g_build_filename (corpus, base, NULL);
  g_file_set_contents (copy, bytes, (gssize) len, &err);
  g_assert_no_error (err);
}

void
uel_test_write_bytes (const gchar * path, gconstpointer bytes, gsize len)
{
  GError *err = NULL;

  g_file_set_contents (path, bytes, (gssize) len, &err);
  g_assert_no_error (err);
  copy_to_corpus (path, bytes, len);
}

/* The file UelWriter wrote at @path, to the corpus too */
static void
writer_wrote (const gchar * path)
{
  g_autofree gchar *bytes = NULL;
  gsize len;

  if (!g_getenv ("UEL_TEST_CORPUS_DIR"))
    return;
  g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
  copy_to_corpus (path, bytes, len);
}

static void
writer_check (gboolean ok, GError * err)
{
  g_assert_no_error (err);
  g_assert_true (ok);
}

void
uel_test_write_safetensors (const gchar * path, const gchar * header_json,
    gconstpointer data, gsize data_len)
{
  gsize n = strlen (header_json);
  guint64 le = GUINT64_TO_LE ((guint64) n);
  GByteArray *b = g_byte_array_sized_new (8 + n + data_len);

  g_byte_array_append (b, (const guint8 *) &le, 8);
  g_byte_array_append (b, (const guint8 *) header_json, n);
  if (data_len)
    g_byte_array_append (b, data, data_len);
  uel_test_write_bytes (path, b->data, b->len);
  g_byte_array_unref (b);
}

void
uel_test_fill (guint8 * buf, gsize len, guint seed)
{
  guint32 x = 2463534242u ^ (seed * 2654435761u);

  for (gsize i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (guint8) (x >> 24) | 1;
  }
}

typedef struct
{
  gchar *name;
  gchar *dtype;
  gchar *shape_json;
  gsize start;                  /* in the builder's data, in the order added */
  gsize n_bytes;
} Entry;

struct _UelTestBuilder
{
  GArray *entries;              /* Entry, in the order added */
  GPtrArray *meta;              /* key, value, key, value ... */
  GByteArray *data;             /* the tensors' bytes, in the order added */
  GByteArray *file_data;        /* the data section as written */
  guint align;
  gboolean keep_order;
};

static void
entry_clear (gpointer p)
{
  Entry *e = p;

  g_free (e->name);
  g_free (e->dtype);
  g_free (e->shape_json);
}

UelTestBuilder *
uel_test_builder_new (void)
{
  UelTestBuilder *b = g_new0 (UelTestBuilder, 1);

  b->entries = g_array_new (FALSE, TRUE, sizeof (Entry));
  g_array_set_clear_func (b->entries, entry_clear);
  b->meta = g_ptr_array_new_with_free_func (g_free);
  b->data = g_byte_array_new ();
  return b;
}

/* @s as the inside of a JSON string literal (UTF-8 kept) */
static gchar *
json_escape (const gchar * s)
{
  GString *out = g_string_new (NULL);

  for (const guchar * p = (const guchar *) s; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf (out, "\\%c", *p);
    else if (*p < 0x20)
      g_string_append_printf (out, "\\u%04x", *p);
    else
      g_string_append_c (out, (gchar) * p);
  }
  return g_string_free (out, FALSE);
}

void
uel_test_builder_add (UelTestBuilder * b, const gchar * name,
    const gchar * dtype, const gchar * shape_json, gsize n_bytes,
    gconstpointer data)
{
  Entry e = { g_strdup (name), g_strdup (dtype), g_strdup (shape_json),
    b->data->len, n_bytes
  };

  g_byte_array_set_size (b->data, (guint) (e.start + n_bytes));
  if (data)
    memcpy (b->data->data + e.start, data, n_bytes);
  else
    uel_test_fill (b->data->data + e.start, n_bytes, b->entries->len);
  g_array_append_val (b->entries, e);
}

void
uel_test_builder_set_metadata (UelTestBuilder * b, const gchar * key,
    const gchar * value)
{
  g_ptr_array_add (b->meta, g_strdup (key));
  g_ptr_array_add (b->meta, g_strdup (value));
}

void
uel_test_builder_set_align (UelTestBuilder * b, guint align)
{
  b->align = align;
}

void
uel_test_builder_keep_order (UelTestBuilder * b)
{
  b->keep_order = TRUE;
}

/* by hand: the tensors in the order added, the header padded to @align */
static void
builder_write_raw (UelTestBuilder * b, const gchar * path)
{
  GString *h = g_string_new ("{");

  if (b->meta->len) {
    g_string_append (h, "\"__metadata__\":{");
    for (guint i = 0; i < b->meta->len; i += 2) {
      g_autofree gchar *k = json_escape (g_ptr_array_index (b->meta, i));
      g_autofree gchar *v = json_escape (g_ptr_array_index (b->meta, i + 1));

      g_string_append_printf (h, "%s\"%s\":\"%s\"", i ? "," : "", k, v);
    }
    g_string_append_c (h, '}');
  }
  for (guint i = 0; i < b->entries->len; i++) {
    Entry *e = &g_array_index (b->entries, Entry, i);
    g_autofree gchar *esc = json_escape (e->name);

    g_string_append_printf (h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,"
        "\"data_offsets\":[%" G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]}",
        h->len > 1 ? "," : "", esc, e->dtype, e->shape_json, e->start,
        e->start + e->n_bytes);
  }
  g_string_append_c (h, '}');
  if (b->align)
    while ((8 + h->len) % b->align)
      g_string_append_c (h, ' ');
  uel_test_write_safetensors (path, h->str, b->data->data, b->data->len);
  g_string_free (h, TRUE);
  b->file_data = g_byte_array_ref (b->data);
}

/* "[2,3]" as dimensions */
static GArray *
parse_shape (const gchar * json)
{
  GArray *dims = g_array_new (FALSE, FALSE, sizeof (guint64));
  const gchar *p = json;

  g_assert_cmpint (*p, ==, '[');
  for (p++; *p != ']';) {
    gchar *end;
    guint64 d = g_ascii_strtoull (p, &end, 10);

    g_assert_true (end > p);
    g_array_append_val (dims, d);
    for (p = end; *p == ',' || *p == ' '; p++);
  }
  return dims;
}

/* by UelWriter: as the reference writes the same tensors */
static void
builder_write_with_writer (UelTestBuilder * b, const gchar * path)
{
  g_autoptr (UelWriter) w = NULL;
  GError *err = NULL;

  w = uel_writer_new (path, &err);
  g_assert_no_error (err);
  for (guint i = 0; i < b->meta->len; i += 2)
    writer_check (uel_writer_set_metadata (w, g_ptr_array_index (b->meta, i),
            g_ptr_array_index (b->meta, i + 1), &err), err);
  for (guint i = 0; i < b->entries->len; i++) {
    Entry *e = &g_array_index (b->entries, Entry, i);
    g_autoptr (GArray) dims = parse_shape (e->shape_json);

    writer_check (uel_writer_add_tensor (w, e->name,
            uel_dtype_from_string (e->dtype, -1), dims->len,
            (const guint64 *) dims->data, &err), err);
  }
  writer_check (uel_writer_write_header (w, &err), err);
  b->file_data = g_byte_array_sized_new (b->data->len);
  g_byte_array_set_size (b->file_data, b->data->len);
  for (guint i = 0; i < b->entries->len; i++) {
    Entry *e = &g_array_index (b->entries, Entry, i);
    const UelTensorInfo *info = uel_writer_lookup (w, e->name, NULL);

    g_assert_cmpuint (info->n_bytes, ==, e->n_bytes);
    writer_check (uel_writer_write_tensor (w, e->name,
            b->data->data + e->start, e->n_bytes, &err), err);
    memcpy (b->file_data->data + info->data_begin, b->data->data + e->start,
        e->n_bytes);
  }
  writer_check (uel_writer_finish (w, &err), err);
  writer_wrote (path);
}

const guint8 *
uel_test_builder_write (UelTestBuilder * b, const gchar * path,
    gsize * data_len)
{
  g_clear_pointer (&b->file_data, g_byte_array_unref);
  if (b->align == 8 && !b->keep_order)
    builder_write_with_writer (b, path);
  else
    builder_write_raw (b, path);
  if (data_len)
    *data_len = b->file_data->len;
  return b->file_data->data;
}

void
uel_test_builder_free (UelTestBuilder * b)
{
  g_array_unref (b->entries);
  g_ptr_array_unref (b->meta);
  g_byte_array_unref (b->data);
  g_clear_pointer (&b->file_data, g_byte_array_unref);
  g_free (b);
}

gchar *
uel_test_write_checkpoint (const gchar * name, guint n_shards,
    guint per_shard, gsize bytes)
{
  g_autofree gchar *dir = uel_test_path (name);
  GString *map = g_string_new (NULL);
  g_autofree gchar *index_json = NULL;
  gchar *index;

  g_assert_cmpint (g_mkdir (dir, 0755), ==, 0);
  for (guint s = 0; s < n_shards; s++) {
    g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
    g_autofree gchar *file = g_strdup_printf ("model-%05u-of-%05u"
        ".safetensors", s + 1, n_shards);
    g_autofree gchar *path = g_build_filename (dir, file, NULL);
    g_autofree gchar *shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]",
        bytes);

    for (guint i = 0; i < per_shard; i++) {
      g_autofree gchar *tname = g_strdup_printf ("s%u.t%u", s, i);

      uel_test_builder_add (b, tname, "U8", shape, bytes, NULL);
      g_string_append_printf (map, "%s\"%s\":\"%s\"", map->len ? "," : "",
          tname, file);
    }
    uel_test_builder_set_align (b, 8);
    uel_test_builder_write (b, path, NULL);
  }
  index_json = g_strdup_printf ("{\"metadata\":{\"total_size\":%"
      G_GUINT64_FORMAT "},\"weight_map\":{%s}}",
      (guint64) n_shards * per_shard * bytes, map->str);
  g_string_free (map, TRUE);
  index = g_build_filename (dir, "model.safetensors.index.json", NULL);
  uel_test_write_bytes (index, index_json, strlen (index_json));
  return index;
}

void
uel_test_write_one_byte_tensors (const gchar * path, guint n)
{
  g_autoptr (UelWriter) w = NULL;
  const guint64 shape[] = { 1 };
  GError *err = NULL;
  gchar name[16];

  w = uel_writer_new (path, &err);
  g_assert_no_error (err);
  for (guint i = 0; i < n; i++) {
    g_snprintf (name, sizeof name, "t%07u", i);
    writer_check (uel_writer_add_tensor (w, name, UEL_DTYPE_U8, 1, shape,
            &err), err);
  }
  /* the names sort as they were added: tensor i is at byte i */
  for (guint i = 0; i < n; i++) {
    guint8 byte = (guint8) i;

    g_snprintf (name, sizeof name, "t%07u", i);
    writer_check (uel_writer_write (w, name, 0, &byte, 1, &err), err);
  }
  writer_check (uel_writer_finish (w, &err), err);
  writer_wrote (path);
}

UelHeader *
uel_test_header_open (const gchar * path)
{
  GError *err = NULL;
  UelHeader *h = uel_header_open (path, &err);

  g_assert_no_error (err);
  g_assert_nonnull (h);
  return h;
}

void
uel_test_rewrite_in_place (const gchar * path, goffset from)
{
  struct stat st;
  struct timespec times[2];
  guint8 junk[4096];
  gint fd = open (path, O_WRONLY);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (fstat (fd, &st), ==, 0);
  memset (junk, 0xee, sizeof junk);
  for (goffset o = from; o < st.st_size; o += sizeof junk) {
    gsize n = (gsize) MIN ((goffset) sizeof junk, st.st_size - o);
    g_assert_cmpint (pwrite (fd, junk, n, o), ==, (gssize) n);
  }
  times[0].tv_nsec = UTIME_OMIT;
  times[1] = st.st_mtim;
  times[1].tv_sec += 10;
  g_assert_cmpint (futimens (fd, times), ==, 0);
  close (fd);
}

gint64
uel_test_resident_bytes (void)
{
  g_autofree gchar *statm = NULL;
  gint64 pages = 0;

  g_assert_true (g_file_get_contents ("/proc/self/statm", &statm, NULL,
          NULL));
  g_assert_cmpint (sscanf (statm, "%*d %" G_GINT64_FORMAT, &pages), ==, 1);
  return pages * sysconf (_SC_PAGESIZE);
}

static void
on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer data)
{
  g_ptr_array_add (data, gst_buffer_ref (buf));
}

GError *
uel_test_run_pipeline (const gchar * launch, GPtrArray * buffers)
{
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *sink;
  GstBus *bus;
  GstMessage *msg;

  g_assert_no_error (err);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  if (sink && buffers) {
    g_object_set (sink, "signal-handoffs", TRUE, NULL);
    g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), buffers);
  }
  gst_clear_object (&sink);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
    gst_message_parse_error (msg, &err, NULL);
  gst_message_unref (msg);
  gst_object_unref (bus);
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (pipeline);
  return err;
}

/* the user that file permissions apply to, whatever the machine calls it */
#define NOBODY_ID 65534

gboolean
uel_test_run_unprivileged (const gchar * const *files)
{
  if (geteuid () != 0)
    return FALSE;

  /* only the files' own modes may stand in the way */
  g_assert_cmpint (g_chmod (uel_test_tmpdir (), 0711), ==, 0);
  for (guint i = 0; files && files[i]; i++)
    g_assert_cmpint (lchown (files[i], NOBODY_ID, NOBODY_ID), ==, 0);
  /* its standard output is not part of our TAP stream */
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
  return TRUE;
}

void
uel_test_drop_privileges (void)
{
  static const gchar *plugins[] = { "uel", "coreelements" };

  g_assert_true (g_test_subprocess ());
  /* loaded now: their files need not be readable by 'nobody' */
  for (guint i = 0; i < G_N_ELEMENTS (plugins); i++) {
    GstPlugin *plugin = gst_plugin_load_by_name (plugins[i]);
    g_assert_nonnull (plugin);
    gst_object_unref (plugin);
  }
  if (geteuid () == 0) {
    g_assert_cmpint (setgroups (0, NULL), ==, 0);
    g_assert_cmpint (setgid (NOBODY_ID), ==, 0);
    g_assert_cmpint (setuid (NOBODY_ID), ==, 0);
  }
  g_assert_cmpint (geteuid (), ==, NOBODY_ID);
  g_assert_cmpint (getegid (), ==, NOBODY_ID);
}

guint64
uel_test_stat (const GstStructure * s, const gchar * field)
{
  guint64 v = G_MAXUINT64;

  g_assert_nonnull (s);
  g_assert_true (gst_structure_get_uint64 (s, field, &v));
  return v;
}

guint
uel_test_count_temporaries (const gchar * path)
{
  g_autofree gchar *dir = g_path_get_dirname (path);
  g_autofree gchar *base = g_path_get_basename (path);
  g_autofree gchar *prefix = g_strdup_printf (".%s.", base);
  GDir *d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  guint n = 0;

  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)))
    if (g_str_has_prefix (name, prefix))
      n++;
  g_dir_close (d);
  return n;
}
