/* gst-uel: remote files over HTTP(S), against real servers on loopback
 * SPDX-License-Identifier: MIT
 *
 * nginx (Debian's) serves the generated models over http and https (a
 * self-signed certificate made by openssl now, given as the CA), and
 * remote-server.py, a fault server of the Python standard library, drops
 * connections, answers 503 and 429 with Retry-After, stalls, changes the
 * object between requests, sends ranges it was not asked for and checks
 * the bearer token.  Every tensor read is compared with the local file.
 * Both servers listen before the first request: nginx inherits a socket
 * this program made listening (its NGINX variable), the fault server
 * prints its port once it listens.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "test-utils.h"

#define TOKEN "hf_TestToken_5ecret"

static GPid nginx_pid, fault_pid, s3_pid;
static gint s3_stdin = -1;
static gchar *s3_key_id, *s3_secret, *s3_endpoint;
static guint http_port, https_port, fault_port;
static gchar *ca_file, *wrong_ca_file, *fault_log, *serve_dir;
static gchar *model;            /* local copy of what the servers serve */
static gchar *big_header_model;
static gchar *index_path;
static gchar *tool_path;

/* ------------------------------------------------------------------ */
/* servers */

static gint
listen_loopback (guint * port)
{
  struct sockaddr_in a = { 0, };
  socklen_t len = sizeof a;
  gint fd = socket (AF_INET, SOCK_STREAM, 0);

  g_assert_cmpint (fd, >=, 0);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &a, sizeof a), ==, 0);
  g_assert_cmpint (listen (fd, 128), ==, 0);
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) &a, &len), ==, 0);
  /* nginx's workers take the socket as it is: a blocking one leaves the
   * worker that lost the race for a connection blocked in accept(), its
   * other connections stalled until the next connection comes */
  g_assert_cmpint (fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK),
      ==, 0);
  *port = ntohs (a.sin_port);
  return fd;
}

/* a server goes when the test goes, even when an assertion aborts it */
static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

static void
run_or_die (const gchar * const *argv)
{
  g_autoptr (GError) err = NULL;
  g_autofree gchar *err_out = NULL;
  gint status;

  g_assert_true (g_spawn_sync (NULL, (gchar **) argv, NULL,
          G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
          &err_out, &status, &err));
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed: %s", argv[0], err_out);
}

static gchar *
make_cert (const gchar * name)
{
  g_autofree gchar *key = g_strdup_printf ("%s/%s.key", serve_dir, name);
  gchar *cert = g_strdup_printf ("%s/%s.pem", serve_dir, name);
  const gchar *argv[] = { "openssl", "req", "-x509", "-newkey", "ec",
    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
    "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
    "-addext", "subjectAltName=IP:127.0.0.1", NULL
  };

  run_or_die (argv);
  return cert;
}

static void
start_nginx (const gchar * nginx)
{
  g_autofree gchar *conf = g_build_filename (serve_dir, "nginx.conf", NULL);
  g_autofree gchar *text = NULL;
  g_autofree gchar *err_log = g_build_filename (serve_dir, "nginx.log", NULL);
  g_autoptr (GError) err = NULL;
  gchar *env_nginx;
  gchar **envp;
  gint fds[2];
  gint targets[2] = { 3, 4 };
  const gchar *argv[] = { nginx, "-c", conf, "-e", err_log, NULL };

  fds[0] = listen_loopback (&http_port);
  fds[1] = listen_loopback (&https_port);
  /* as root the workers would become 'nobody', who cannot enter the
   * test's private folder */
  text = g_strdup_printf ("daemon off;\n%s"
      "pid %s/nginx.pid;\nerror_log %s;\nworker_processes 2;\n"
      "events { worker_connections 256; }\n"
      "http {\n  access_log off;\n"
      "  client_body_temp_path %s/t1; proxy_temp_path %s/t2;\n"
      "  fastcgi_temp_path %s/t3; uwsgi_temp_path %s/t4; "
      "scgi_temp_path %s/t5;\n"
      "  log_format proto $server_protocol;\n"
      "  server { listen 127.0.0.1:%u; root %s; }\n"
      "  server { listen 127.0.0.1:%u ssl http2; root %s;\n"
      "    access_log %s/https.log proto;\n"
      "    ssl_certificate %s; ssl_certificate_key %s/ca.key; }\n}\n",
      geteuid () == 0 ? "user root root;\n" : "", serve_dir, err_log,
      serve_dir, serve_dir, serve_dir, serve_dir, serve_dir, http_port,
      serve_dir, https_port, serve_dir, serve_dir, ca_file, serve_dir);
  uel_test_write_bytes (conf, text, strlen (text));
  env_nginx = g_strdup_printf ("3;4;");
  envp = g_environ_setenv (g_get_environ (), "NGINX", env_nginx, TRUE);
  g_free (env_nginx);
  g_assert_true (g_spawn_async_with_pipes_and_fds (NULL, argv,
          (const gchar * const *) envp, G_SPAWN_DO_NOT_REAP_CHILD,
          die_with_parent, NULL, -1, -1, -1, fds, targets, 2, &nginx_pid,
          NULL, NULL, NULL, &err));
  g_assert_no_error (err);
  g_strfreev (envp);
  close (fds[0]);
  close (fds[1]);
}

static void
start_fault_server (void)
{
  g_autofree gchar *script = g_build_filename (UEL_TESTS_SRC_DIR,
      "remote-server.py", NULL);
  g_autoptr (GError) err = NULL;
  gchar **envp = g_environ_setenv (g_get_environ (), "UEL_TEST_TOKEN",
      TOKEN, TRUE);
  const gchar *argv[] = { "python3", script, serve_dir, fault_log, NULL };
  gchar line[32] = "";
  gint out_fd;
  FILE *f;

  g_assert_true (g_spawn_async_with_pipes (NULL, (gchar **) argv, envp,
          G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, die_with_parent,
          NULL, &fault_pid, NULL, &out_fd, NULL, &err));
  g_assert_no_error (err);
  g_strfreev (envp);
  /* the port, written once the server listens */
  f = fdopen (out_fd, "r");
  g_assert_nonnull (fgets (line, sizeof line, f));
  fclose (f);
  fault_port = (guint) g_ascii_strtoull (line, NULL, 10);
  g_assert_cmpuint (fault_port, >, 0);
}

/* moto, where scripts/s3-venv made its venv: FALSE without it */
static gboolean
start_s3_server (void)
{
  g_autofree gchar *python = g_build_filename (UEL_SOURCE_ROOT, ".venv-s3",
      "bin", "python", NULL);
  g_autofree gchar *script = g_build_filename (UEL_TESTS_SRC_DIR,
      "s3-server.py", NULL);
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) err = NULL;
  g_autoptr (GDir) dir = NULL;
  g_autofree gchar *ckpt = g_build_filename (serve_dir, "ckpt", NULL);
  g_auto (GStrv) words = NULL;
  gchar line[256] = "";
  const gchar *name;
  gint out_fd;
  FILE *f;

  if (!g_file_test (python, G_FILE_TEST_IS_EXECUTABLE))
    return FALSE;
  g_ptr_array_add (argv, g_strdup (python));
  g_ptr_array_add (argv, g_strdup (script));
  g_ptr_array_add (argv, g_strdup ("models"));
  g_ptr_array_add (argv, g_strdup (model));
  dir = g_dir_open (ckpt, 0, NULL);
  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)))
    g_ptr_array_add (argv, g_build_filename (ckpt, name, NULL));
  g_ptr_array_add (argv, NULL);
  g_assert_true (g_spawn_async_with_pipes (NULL, (gchar **) argv->pdata,
          NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDERR_TO_DEV_NULL,
          die_with_parent, NULL, &s3_pid, &s3_stdin, &out_fd, NULL, &err));
  g_assert_no_error (err);
  /* "PORT KEY_ID SECRET", once it listens and holds the files */
  f = fdopen (out_fd, "r");
  if (!fgets (line, sizeof line, f)) {
    fclose (f);
    return FALSE;
  }
  fclose (f);
  words = g_strsplit (g_strstrip (line), " ", 3);
  g_assert_cmpuint (g_strv_length (words), ==, 3);
  s3_endpoint = g_strdup_printf ("http://127.0.0.1:%s", words[0]);
  s3_key_id = g_strdup (words[1]);
  s3_secret = g_strdup (words[2]);
  return TRUE;
}

static void
stop_servers (void)
{
  if (s3_pid) {
    close (s3_stdin);
    waitpid (s3_pid, NULL, 0);
  }
  if (nginx_pid) {
    kill (nginx_pid, SIGTERM);
    waitpid (nginx_pid, NULL, 0);
  }
  if (fault_pid) {
    kill (fault_pid, SIGTERM);
    waitpid (fault_pid, NULL, 0);
  }
}

/* ------------------------------------------------------------------ */
/* helpers */

static gchar *
url (const gchar * scheme, guint port, const gchar * path)
{
  return g_strdup_printf ("%s://127.0.0.1:%u/%s", scheme, port, path);
}

/* the test's own id: its request counts and log lines are its own */
static gchar *
case_id (void)
{
  return g_strdelimit (g_strdup (g_test_get_path () + 1), "/", '_');
}

static gchar *
fault_url (const gchar * mode, const gchar * file)
{
  g_autofree gchar *id = case_id ();
  g_autofree gchar *p = g_strdup_printf ("%s/%s/%s", mode, id, file);

  return url ("http", fault_port, p);
}

/* Reads every tensor of @location with a UelReader and compares it with
 * the local files of @local; returns the bytes compared. */
static guint64
assert_exact (const gchar * location, const gchar * local, guint io_threads,
    guint64 chunk, GError ** error)
{
  g_autoptr (UelHeader) lh = uel_test_header_open (local);
  g_autoptr (UelHeader) h = uel_header_open (location, error);
  g_autoptr (UelReader) reader = NULL;
  GstBuffer *buf;
  guint64 bytes = 0;
  guint n = 0;

  if (!h)
    return 0;
  g_assert_cmpuint (uel_header_get_n_tensors (h), ==,
      uel_header_get_n_tensors (lh));
  g_assert_cmpuint (uel_header_get_total_bytes (h), ==,
      uel_header_get_total_bytes (lh));
  reader = uel_reader_new (h);
  uel_reader_set_io_threads (reader, io_threads);
  uel_reader_set_chunk_size (reader, chunk);
  if (!uel_reader_start (reader, error))
    return 0;
  while ((buf = uel_reader_next (reader, error))) {
    UelTensorMeta *meta = uel_buffer_get_tensor_meta (buf);
    const UelTensorInfo *info = uel_header_get_tensor (lh,
        meta->tensor_index);
    gsize size = gst_buffer_get_size (buf);
    g_autofree guint8 *want = g_malloc (MAX (size, 1));
    GstMapInfo map;
    gint fd = open (uel_header_get_file_path (lh, info->file_index),
        O_RDONLY);

    g_assert_cmpint (fd, >=, 0);
    g_assert_cmpint (pread (fd, want, size,
            (off_t) (info->file_offset + meta->chunk_offset)), ==,
        (gssize) size);
    close (fd);
    g_assert_cmpstr (uel_header_get_tensor (h, meta->tensor_index)->name,
        ==, info->name);
    g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_assert_cmpmem (map.data, map.size, want, size);
    gst_buffer_unmap (buf, &map);
    bytes += size;
    if (meta->last_chunk)
      n++;
    gst_buffer_unref (buf);
  }
  if (error && *error)
    return 0;
  g_assert_cmpuint (n, ==, uel_header_get_n_tensors (lh));
  g_assert_cmpuint (bytes, ==, uel_header_get_total_bytes (lh));
  return bytes;
}

/* the fault server's log lines of this test for @mode, in order */
static GPtrArray *
requests_of (const gchar * mode)
{
  g_autofree gchar *id = case_id ();
  g_autofree gchar *path_part = g_strdup_printf ("/%s/%s/", mode, id);
  g_autofree gchar *text = NULL;
  g_auto (GStrv) lines = NULL;
  GPtrArray *out = g_ptr_array_new_with_free_func (
      (GDestroyNotify) json_object_unref);

  g_assert_true (g_file_get_contents (fault_log, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++) {
    g_autoptr (JsonParser) p = NULL;
    JsonObject *o;

    if (!*lines[i])
      continue;
    p = json_parser_new ();
    g_assert_true (json_parser_load_from_data (p, lines[i], -1, NULL));
    o = json_node_get_object (json_parser_get_root (p));
    /* requests, not the statuses of their answers */
    if (json_object_has_member (o, "status"))
      continue;
    if (strstr (json_object_get_string_member (o, "path"), path_part))
      g_ptr_array_add (out, json_object_ref (o));
  }
  return out;
}

/* whether the fault server answered @status to a request of this test
 * for @mode */
static gboolean
answered (const gchar * mode, gint status)
{
  g_autofree gchar *id = case_id ();
  g_autofree gchar *text = NULL;
  g_autofree gchar *want = g_strdup_printf ("\"/%s/%s/", mode, id);
  g_autofree gchar *code = g_strdup_printf ("\"status\": %d}", status);
  g_auto (GStrv) lines = NULL;

  g_assert_true (g_file_get_contents (fault_log, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    if (strstr (lines[i], want) && g_str_has_suffix (lines[i], code))
      return TRUE;
  return FALSE;
}

static guint64
range_start (JsonObject * o)
{
  const gchar *r = json_object_get_string_member (o, "range");

  g_assert_nonnull (r);
  g_assert_true (g_str_has_prefix (r, "bytes="));
  return g_ascii_strtoull (r + 6, NULL, 10);
}

static void
assert_no_secret (const GError * err)
{
  g_assert_nonnull (err);
  g_assert_null (strstr (err->message, TOKEN));
  g_assert_null (strstr (err->message, "s3cret"));
  g_assert_null (strstr (err->message, "sig="));
  g_assert_null (strstr (err->message, "hunter2"));
}

/* ------------------------------------------------------------------ */
/* nginx */

static void
test_http_exact (void)
{
  g_autofree gchar *u = url ("http", http_port, "model.safetensors");
  GError *err = NULL;

  /* one connection, several, chunks smaller than a part */
  g_assert_cmpuint (assert_exact (u, model, 1, 0, &err), >, 0);
  g_assert_no_error (err);
  g_assert_cmpuint (assert_exact (u, model, 4, 0, &err), >, 0);
  g_assert_no_error (err);
  g_assert_cmpuint (assert_exact (u, model, 3, 3 << 20, &err), >, 0);
  g_assert_no_error (err);
}

static void
test_https_exact (void)
{
  g_autofree gchar *u = url ("https", https_port, "model.safetensors");
  g_autofree gchar *log = g_build_filename (serve_dir, "https.log", NULL);
  g_autofree gchar *protocols = NULL;
  GError *err = NULL;

  g_assert_cmpuint (assert_exact (u, model, 4, 0, &err), >, 0);
  g_assert_no_error (err);
  /* over HTTP/2, which TLS negotiated (ALPN) */
  g_assert_true (g_file_get_contents (log, &protocols, NULL, NULL));
  g_assert_nonnull (strstr (protocols, "HTTP/2.0"));
}

static void
test_https_wrong_ca (void)
{
  g_autofree gchar *u = url ("https", https_port,
      "model.safetensors?sig=s3cret");
  g_autoptr (GError) err = NULL;
  g_autoptr (UelHeader) h = NULL;
  g_autofree gchar *want = url ("https", https_port, "model.safetensors");

  g_setenv ("CURL_CA_BUNDLE", wrong_ca_file, TRUE);
  h = uel_header_open (u, &err);
  g_setenv ("CURL_CA_BUNDLE", ca_file, TRUE);
  g_assert_null (h);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_IO);
  g_assert_nonnull (strstr (err->message, want));
  g_assert_nonnull (strstr (err->message, "TLS"));
  assert_no_secret (err);
}

static void
test_not_found_without_credentials (void)
{
  g_autofree gchar *u = g_strdup_printf ("http://someone:hunter2@127.0.0.1:"
      "%u/missing.safetensors?token=" TOKEN, http_port);
  g_autofree gchar *want = url ("http", http_port, "missing.safetensors");
  g_autoptr (GError) err = NULL;
  g_autoptr (UelHeader) h = uel_header_open (u, &err);

  g_assert_null (h);
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_nonnull (strstr (err->message, want));
  assert_no_secret (err);
}

static void
test_sharded_index (void)
{
  g_autofree gchar *u = url ("http", http_port,
      "ckpt/model.safetensors.index.json");
  g_autoptr (UelHeader) h = NULL;
  GError *err = NULL;

  g_assert_cmpuint (assert_exact (u, index_path, 4, 0, &err), >, 0);
  g_assert_no_error (err);
  h = uel_header_open (u, &err);
  g_assert_no_error (err);
  g_assert_true (uel_header_is_sharded (h));
  g_assert_cmpuint (uel_header_get_n_files (h), ==, 3);
  g_assert_true (g_str_has_suffix (uel_header_get_file_path (h, 2),
          "/ckpt/model-00003-of-00003.safetensors"));
}

static void
test_long_header_two_requests (void)
{
  g_autofree gchar *u = url ("http", http_port, "bighead.safetensors");
  g_autoptr (UelHeader) h = NULL;
  GError *err = NULL;
  guint64 data_offset;

  g_assert_cmpuint (assert_exact (u, big_header_model, 2, 0, &err), >, 0);
  g_assert_no_error (err);
  h = uel_header_open (u, &err);
  g_assert_no_error (err);
  data_offset = uel_header_get_data_offset (h, 0);
  g_assert_cmpuint (data_offset, >, 64 << 10);
  /* the header, and no tensor: the first 64 KiB, then the rest */
  g_assert_cmpuint (uel_header_get_bytes_fetched (h), ==, data_offset);
}

/* @buf holds the bytes of the local file's tensor @info, whole */
static void
assert_tensor_bytes (GstBuffer * buf, const UelTensorInfo * info,
    const gchar * data)
{
  GstMapInfo map;

  g_assert_true (gst_buffer_map (buf, &map, GST_MAP_READ));
  g_assert_cmpmem (map.data, map.size, data + info->file_offset,
      info->n_bytes);
  gst_buffer_unmap (buf, &map);
}

/* every read method: mmap and direct read a URL as pread does */
static void
test_uelsrc_pipeline (void)
{
  const gchar *methods[] = { "pread", "mmap", "direct" };
  g_autofree gchar *u = url ("https", https_port, "model.safetensors");
  g_autoptr (UelHeader) lh = uel_test_header_open (model);
  g_autofree gchar *data = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (model, &data, &len, NULL));
  for (guint m = 0; m < G_N_ELEMENTS (methods); m++) {
    g_autofree gchar *launch = g_strdup_printf ("uelsrc location=%s "
        "method=%s io-threads=3 ! uelqueue max-size-bytes=4000000 ! "
        "fakesink name=sink", u, methods[m]);
    g_autoptr (GPtrArray) bufs = g_ptr_array_new_with_free_func (
        (GDestroyNotify) gst_buffer_unref);
    GError *err = uel_test_run_pipeline (launch, bufs);

    g_assert_no_error (err);
    g_assert_cmpuint (bufs->len, ==, uel_header_get_n_tensors (lh));
    for (guint i = 0; i < bufs->len; i++)
      assert_tensor_bytes (g_ptr_array_index (bufs, i),
          uel_header_get_tensor (lh, i), data);
  }
}

/* reads straight into the pool uelpin proposes (pinned memory with a
 * device, page-aligned host memory without), within its bound */
static void
test_uelsrc_into_pinned_pool (void)
{
  g_autofree gchar *u = url ("http", http_port, "model.safetensors");
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=%s "
      "io-threads=4 ! uelpin pool-size=67108864 ! fakesink name=sink", u);
  g_autoptr (GPtrArray) bufs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  g_autoptr (UelHeader) lh = uel_test_header_open (model);
  g_autofree gchar *data = NULL;
  gsize len;
  GError *err;

  g_assert_true (g_file_get_contents (model, &data, &len, NULL));
  err = uel_test_run_pipeline (launch, bufs);
  g_assert_no_error (err);
  g_assert_cmpuint (bufs->len, ==, uel_header_get_n_tensors (lh));
  for (guint i = 0; i < bufs->len; i++)
    assert_tensor_bytes (g_ptr_array_index (bufs, i),
        uel_header_get_tensor (lh, i), data);
}

static void
test_uelsrc_not_found_error (void)
{
  g_autofree gchar *u = g_strdup_printf ("http://127.0.0.1:%u/"
      "gone.safetensors?sig=s3cret", http_port);
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=\"%s\" ! "
      "fakesink", u);
  g_autoptr (GError) err = uel_test_run_pipeline (launch, NULL);

  g_assert_error (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  assert_no_secret (err);
}

static void
test_loader (void)
{
  g_autofree gchar *u = url ("http", http_port, "model.safetensors");
  g_autoptr (UelHeader) lh = uel_test_header_open (model);
  g_autofree gchar *data = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (model, &data, &len, NULL));
  for (gint low = 0; low < 2; low++) {
    GError *err = NULL;
    g_autoptr (UelLoader) loader = uel_loader_new (u, low, &err);

    g_assert_no_error (err);
    for (guint i = 0; i < uel_header_get_n_tensors (lh); i++) {
      const UelTensorInfo *info = uel_header_get_tensor (lh, i);
      GstBuffer *b = uel_loader_get_tensor (loader, info->name, &err);

      g_assert_no_error (err);
      assert_tensor_bytes (b, info, data);
      gst_buffer_unref (b);
    }
  }
}

static void
test_launch_progress (void)
{
  g_autofree gchar *u = url ("http", http_port, "model.safetensors");
  g_autofree gchar *sink = g_strdup_printf ("location=%s", u);
  g_autofree gchar *out = NULL, *err_out = NULL;
  g_autoptr (UelHeader) lh = uel_test_header_open (model);
  g_autofree gchar *done = g_strdup_printf ("Done: %u tensors of %u",
      uel_header_get_n_tensors (lh), uel_header_get_n_tensors (lh));
  const gchar *argv[] = { tool_path, "launch", "--interval", "0.01",
    "uelsrc", sink, "io-threads=2", "!", "fakesink", NULL
  };
  gint status;

  g_assert_true (g_spawn_sync (NULL, (gchar **) argv, NULL, 0, NULL, NULL,
          &out, &err_out, &status, NULL));
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  /* the totals of the header message, as for a file */
  g_assert_nonnull (strstr (out, done));
}

static void
test_inspect_reports_bytes (void)
{
  g_autofree gchar *u = url ("http", http_port, "model.safetensors");
  g_autofree gchar *out = NULL, *err_out = NULL, *out2 = NULL;
  g_autoptr (UelHeader) lh = uel_test_header_open (model);
  /* the first request's 64 KiB, which hold the whole header */
  g_autofree gchar *want = g_strdup_printf ("\n%u bytes fetched from the "
      "server\n", 64 << 10);
  const gchar *argv[] = { tool_path, "inspect", u, NULL };
  const gchar *argv2[] = { tool_path, "inspect", "--checksum", u, NULL };
  const gchar *argv3[] = { tool_path, "inspect", "--checksum", model, NULL };
  g_autofree gchar *out3 = NULL;
  gint status;

  g_assert_true (g_spawn_sync (NULL, (gchar **) argv, NULL, 0, NULL, NULL,
          &out, &err_out, &status, NULL));
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_nonnull (strstr (out, want));
  /* and as JSON */
  {
    const gchar *argv_json[] = { tool_path, "inspect", "--json", u, NULL };
    g_autofree gchar *json = NULL;
    g_autoptr (JsonParser) p = json_parser_new ();
    JsonObject *o;

    g_assert_true (g_spawn_sync (NULL, (gchar **) argv_json, NULL, 0, NULL,
            NULL, &json, NULL, &status, NULL));
    g_assert_true (g_spawn_check_wait_status (status, NULL));
    g_assert_true (json_parser_load_from_data (p, json, -1, NULL));
    o = json_node_get_object (json_parser_get_root (p));
    g_assert_cmpint (json_object_get_int_member (o, "bytes_fetched"), ==,
        64 << 10);
    g_assert_cmpstr (json_object_get_string_member (o, "location"), ==, u);
  }
  g_assert_true (g_spawn_sync (NULL, (gchar **) argv2, NULL, 0, NULL, NULL,
          &out2, NULL, &status, NULL));
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_true (g_spawn_sync (NULL, (gchar **) argv3, NULL, 0, NULL, NULL,
          &out3, NULL, &status, NULL));
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  /* the same sums: everything before the last line (which names the
   * location) */
  g_assert_true (g_str_has_suffix (g_strchomp (out2),
          " bytes fetched from the server"));
  *strrchr (out2, '\n') = '\0';
  *strrchr (out2, '\n') = '\0';
  *strrchr (g_strchomp (out3), '\n') = '\0';
  g_assert_cmpstr (out2, ==, out3);
}

/* ------------------------------------------------------------------ */
/* faults */

static void
test_drop_resumes (void)
{
  g_autofree gchar *u = fault_url ("drop", "model.safetensors");
  g_autoptr (GPtrArray) reqs = NULL;
  GError *err = NULL;
  guint resumed = 0;

  g_assert_cmpuint (assert_exact (u, model, 1, 0, &err), >, 0);
  g_assert_no_error (err);
  /* each dropped response (even n) was asked again from the byte where
   * it stopped: half of its range later */
  reqs = requests_of ("drop");
  for (guint i = 1; i + 1 < reqs->len; i++) {
    JsonObject *o = g_ptr_array_index (reqs, i);
    JsonObject *next = g_ptr_array_index (reqs, i + 1);
    const gchar *r = json_object_get_string_member (o, "range");
    guint64 a, b;

    if (json_object_get_int_member (o, "n") % 2 != 0)
      continue;
    a = g_ascii_strtoull (r + 6, NULL, 10);
    b = g_ascii_strtoull (strchr (r, '-') + 1, NULL, 10);
    if (b - a + 1 < 2)
      continue;
    g_assert_cmpuint (range_start (next), ==, a + (b - a + 1) / 2);
    resumed++;
  }
  g_assert_cmpuint (resumed, >=, 2);
}

static void
check_retry_after (const gchar * mode)
{
  g_autofree gchar *u = fault_url (mode, "model.safetensors");
  g_autoptr (GPtrArray) reqs = NULL;
  GError *err = NULL;
  gdouble t2, t3, t4;

  g_assert_cmpuint (assert_exact (u, model, 1, 0, &err), >, 0);
  g_assert_no_error (err);
  reqs = requests_of (mode);
  g_assert_cmpuint (reqs->len, >=, 4);
  t2 = json_object_get_double_member (g_ptr_array_index (reqs, 1), "time");
  t3 = json_object_get_double_member (g_ptr_array_index (reqs, 2), "time");
  t4 = json_object_get_double_member (g_ptr_array_index (reqs, 3), "time");
  /* Retry-After: 1, where the backoff alone waits 0.1 s, then 0.2 s */
  g_assert_cmpfloat (t3 - t2, >=, 0.95);
  g_assert_cmpfloat (t4 - t3, >=, 0.95);
  /* the same range asked again */
  g_assert_cmpuint (range_start (g_ptr_array_index (reqs, 1)), ==,
      range_start (g_ptr_array_index (reqs, 3)));
}

static void
test_503_retry_after (void)
{
  check_retry_after ("503");
}

static void
test_429_retry_after (void)
{
  check_retry_after ("429");
}

static void
test_gives_up (void)
{
  g_autofree gchar *u = fault_url ("always503", "model.safetensors");
  GError *err = NULL;

  g_setenv ("UEL_HTTP_ATTEMPTS", "3", TRUE);
  g_assert_cmpuint (assert_exact (u, model, 1, 0, &err), ==, 0);
  g_unsetenv ("UEL_HTTP_ATTEMPTS");
  g_assert_error (err, UEL_ERROR, UEL_ERROR_IO);
  g_assert_nonnull (strstr (err->message, "HTTP 503"));
  g_assert_nonnull (strstr (err->message, "gave up after 3 tries"));
  g_clear_error (&err);
}

static void
test_stall_times_out (void)
{
  g_autofree gchar *u = fault_url ("stall", "model.safetensors");
  g_autoptr (GPtrArray) reqs = NULL;
  GError *err = NULL;

  /* 2 s without a byte (UEL_HTTP_STALL_TIMEOUT, set in main) */
  g_assert_cmpuint (assert_exact (u, model, 1, 0, &err), >, 0);
  g_assert_no_error (err);
  reqs = requests_of ("stall");
  /* the stalled request went on from its 100th byte */
  g_assert_cmpuint (range_start (g_ptr_array_index (reqs, 2)), ==,
      range_start (g_ptr_array_index (reqs, 1)) + 100);
}

/* Stopping a pipeline whose reads stall ends them at once: the reader's
 * flushing cancels the requests in progress (the stall timeout is a
 * minute here). */
static void
test_stop_during_stall (void)
{
  g_autofree gchar *u = fault_url ("stall", "model.safetensors");
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=%s "
      "io-threads=3 ! fakesink", u);
  GstElement *pipeline;
  gint64 t0, waited = 0;

  g_setenv ("UEL_HTTP_STALL_TIMEOUT", "60", TRUE);
  pipeline = gst_parse_launch (launch, NULL);
  g_assert_nonnull (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  /* until the server has the request it stalls (its second) */
  while (TRUE) {
    g_autoptr (GPtrArray) reqs = requests_of ("stall");

    if (reqs->len >= 2)
      break;
    g_assert_cmpint (waited, <, 20 * G_USEC_PER_SEC);
    g_usleep (10000);
    waited += 10000;
  }
  t0 = g_get_monotonic_time ();
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 10 * G_USEC_PER_SEC);
  gst_object_unref (pipeline);
  g_setenv ("UEL_HTTP_STALL_TIMEOUT", "2", TRUE);
}

static void
check_change (const gchar * mode)
{
  g_autofree gchar *u = fault_url (mode, "model.safetensors");
  GError *err = NULL;

  g_assert_cmpuint (assert_exact (u, model, 2, 0, &err), ==, 0);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_FILE_CHANGED);
  g_assert_nonnull (strstr (err->message, "changed on the server"));
  g_clear_error (&err);
}

static void
test_change_if_match (void)
{
  g_autoptr (GPtrArray) reqs = NULL;

  check_change ("change");
  reqs = requests_of ("change");
  g_assert_cmpuint (reqs->len, >=, 2);
  /* the server refused: If-Match went with the requests */
  g_assert_true (answered ("change", 412));
}

static void
test_change_etag (void)
{
  check_change ("change-etag");
}

static void
test_change_date (void)
{
  check_change ("change-date");
}

/* the fault server's @kind answers bytes that were not asked for: an I/O
 * error whose message says @says, nothing read */
static void
check_refused_body (const gchar * kind, const gchar * says)
{
  g_autofree gchar *u = fault_url (kind, "model.safetensors");
  GError *err = NULL;

  g_assert_cmpuint (assert_exact (u, model, 2, 0, &err), ==, 0);
  g_assert_error (err, UEL_ERROR, UEL_ERROR_IO);
  g_assert_nonnull (strstr (err->message, says));
  g_clear_error (&err);
}

static void
test_bad_range (void)
{
  check_refused_body ("badrange", "the server sent");
}

static void
test_overlong_body (void)
{
  check_refused_body ("overlong", "more bytes than");
}

static void
test_forbidden (void)
{
  g_autofree gchar *u = fault_url ("403", "model.safetensors");
  g_autoptr (GError) err = NULL;
  g_autoptr (UelHeader) h = uel_header_open (u, &err);

  g_assert_null (h);
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_ACCES);
  g_assert_nonnull (strstr (err->message, u));
  assert_no_secret (err);
}

static void
test_hub_token_and_redirect (void)
{
  g_autofree gchar *u = fault_url ("resolve", "model.safetensors");
  g_autoptr (GPtrArray) reqs = NULL;
  GError *err = NULL;

  g_assert_cmpuint (assert_exact (u, model, 2, 0, &err), >, 0);
  g_assert_no_error (err);
  reqs = requests_of ("auth");
  g_assert_cmpuint (reqs->len, >=, 2);
  for (guint i = 0; i < reqs->len; i++)
    g_assert_cmpstr (json_object_get_string_member (g_ptr_array_index (reqs,
                i), "auth"), ==, "Bearer " TOKEN);
}

static void
test_hub_token_unset_is_denied (void)
{
  g_autofree gchar *u = fault_url ("auth", "model.safetensors");
  g_autoptr (GError) err = NULL;
  g_autoptr (UelHeader) h = NULL;

  g_unsetenv ("HF_TOKEN");
  h = uel_header_open (u, &err);
  g_setenv ("HF_TOKEN", TOKEN, TRUE);
  g_assert_null (h);
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_ACCES);
  g_assert_nonnull (strstr (err->message, "HF_TOKEN is not set"));
}

static void
test_token_not_sent_to_other_host (void)
{
  g_autofree gchar *u = fault_url ("resolve-other", "model.safetensors");
  g_autoptr (GPtrArray) reqs = NULL;
  GError *err = NULL;

  g_assert_cmpuint (assert_exact (u, model, 2, 0, &err), >, 0);
  g_assert_no_error (err);
  /* the resolve URL had the token; localhost, another host name, never */
  reqs = requests_of ("resolve-other");
  g_assert_cmpstr (json_object_get_string_member (g_ptr_array_index (reqs,
              0), "auth"), ==, "Bearer " TOKEN);
  g_clear_pointer (&reqs, g_ptr_array_unref);
  reqs = requests_of ("noauth");
  g_assert_cmpuint (reqs->len, >=, 2);
  for (guint i = 0; i < reqs->len; i++)
    g_assert_true (JSON_NODE_HOLDS_NULL (json_object_get_member
            (g_ptr_array_index (reqs, i), "auth")));
}

/* ------------------------------------------------------------------ */
/* s3:// on moto, which checks each request's signature */

static void
s3_env (void)
{
  g_setenv ("AWS_ENDPOINT_URL", s3_endpoint, TRUE);
  g_setenv ("AWS_ACCESS_KEY_ID", s3_key_id, TRUE);
  g_setenv ("AWS_SECRET_ACCESS_KEY", s3_secret, TRUE);
  g_setenv ("AWS_REGION", "us-east-1", TRUE);
}

static gboolean
s3_skip (void)
{
  if (s3_endpoint)
    return FALSE;
  g_test_skip ("no S3 server: scripts/s3-venv makes .venv-s3 with moto");
  return TRUE;
}

static void
test_s3_signed_exact (void)
{
  GError *err = NULL;

  if (s3_skip ())
    return;
  s3_env ();
  g_assert_cmpuint (assert_exact ("s3://models/model.safetensors", model, 4,
          0, &err), >, 0);
  g_assert_no_error (err);
  g_assert_cmpuint (assert_exact
      ("s3://models/ckpt/model.safetensors.index.json", index_path, 2, 0,
          &err), >, 0);
  g_assert_no_error (err);
}

static void
test_s3_wrong_secret (void)
{
  g_autoptr (GError) err = NULL;
  g_autoptr (UelHeader) h = NULL;

  if (s3_skip ())
    return;
  s3_env ();
  g_setenv ("AWS_SECRET_ACCESS_KEY", "hunter2-not-the-secret", TRUE);
  h = uel_header_open ("s3://models/model.safetensors", &err);
  g_assert_null (h);
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_ACCES);
  g_assert_nonnull (strstr (err->message, "s3://models/model.safetensors"));
  assert_no_secret (err);
  g_assert_null (strstr (err->message, s3_key_id));
  g_clear_error (&err);
  g_clear_pointer (&h, uel_header_unref);

  /* and an unknown key */
  s3_env ();
  h = uel_header_open ("s3://models/none.safetensors", &err);
  g_assert_error (err, G_FILE_ERROR, G_FILE_ERROR_NOENT);
}

static void
test_s3_credentials_from_files (void)
{
  g_autofree gchar *creds = uel_test_path ("aws-credentials");
  g_autofree gchar *config = uel_test_path ("aws-config");
  g_autofree gchar *c = g_strdup_printf ("[default]\naws_access_key_id = x\n"
      "aws_secret_access_key = y\n\n[loader]\naws_access_key_id = %s\n"
      "aws_secret_access_key = %s\n", s3_key_id, s3_secret);
  const gchar *conf = "[default]\nregion = eu-west-3\n\n"
      "[profile loader]\nregion = us-east-1\n";
  GError *err = NULL;

  if (s3_skip ())
    return;
  s3_env ();
  g_unsetenv ("AWS_ACCESS_KEY_ID");
  g_unsetenv ("AWS_SECRET_ACCESS_KEY");
  g_unsetenv ("AWS_REGION");
  uel_test_write_bytes (creds, c, strlen (c));
  uel_test_write_bytes (config, conf, strlen (conf));
  g_setenv ("AWS_SHARED_CREDENTIALS_FILE", creds, TRUE);
  g_setenv ("AWS_CONFIG_FILE", config, TRUE);
  g_setenv ("AWS_PROFILE", "loader", TRUE);
  g_assert_cmpuint (assert_exact ("s3://models/model.safetensors", model, 2,
          0, &err), >, 0);
  g_assert_no_error (err);
  g_unsetenv ("AWS_PROFILE");
  g_unsetenv ("AWS_SHARED_CREDENTIALS_FILE");
  g_unsetenv ("AWS_CONFIG_FILE");
}

/* ------------------------------------------------------------------ */

static void
write_models (void)
{
  g_autoptr (UelTestBuilder) b = uel_test_builder_new ();
  g_autoptr (UelTestBuilder) big = uel_test_builder_new ();
  g_autofree gchar *dir = g_build_filename (serve_dir, "ckpt", NULL);
  g_autoptr (GString) meta = g_string_new (NULL);

  /* a tensor of two I/O parts and a bit, one over the inline limit, runs
   * of small ones, an empty one */
  uel_test_builder_set_align (b, 8);
  uel_test_builder_add (b, "big", "U8", "[17825793]", 17825793, NULL);
  uel_test_builder_add (b, "mid", "F32", "[400000]", 1600000, NULL);
  for (guint i = 0; i < 40; i++) {
    g_autofree gchar *name = g_strdup_printf ("small.%02u", i);
    uel_test_builder_add (b, name, "F16", "[500]", 1000, NULL);
  }
  uel_test_builder_add (b, "empty", "F32", "[0]", 0, NULL);
  uel_test_builder_write (b, model, NULL);

  /* a header of more than the first request's 64 KiB */
  for (guint i = 0; i < 8000; i++)
    g_string_append_printf (meta, "%08u-", i);
  uel_test_builder_set_metadata (big, "padding", meta->str);
  uel_test_builder_add (big, "a", "F32", "[1000]", 4000, NULL);
  uel_test_builder_add (big, "b", "U8", "[3000000]", 3000000, NULL);
  uel_test_builder_write (big, big_header_model, NULL);

  g_free (index_path);
  index_path = uel_test_write_checkpoint ("ckpt", 3, 5, 300000);
}

int
main (int argc, char **argv)
{
  g_autofree gchar *nginx = NULL, *openssl = NULL, *python = NULL;
  gint ret;

  uel_test_init (&argc, &argv);
  if (!HAVE_CURL) {
    g_print ("1..0 # SKIP built without HTTP support (-Dcurl)\n");
    return 0;
  }
  nginx = g_find_program_in_path ("nginx");
  if (!nginx && g_file_test ("/usr/sbin/nginx", G_FILE_TEST_IS_EXECUTABLE))
    nginx = g_strdup ("/usr/sbin/nginx");
  openssl = g_find_program_in_path ("openssl");
  python = g_find_program_in_path ("python3");
  if (!nginx || !openssl || !python) {
    g_print ("1..0 # SKIP nginx, openssl or python3 is not installed "
        "(scripts/deps installs them)\n");
    return 0;
  }

  serve_dir = g_strdup (uel_test_tmpdir ());
  model = g_build_filename (serve_dir, "model.safetensors", NULL);
  big_header_model = g_build_filename (serve_dir, "bighead.safetensors",
      NULL);
  fault_log = g_build_filename (serve_dir, "requests.log", NULL);
  tool_path = g_strdup (UEL_TOOL_PATH);
  write_models ();
  ca_file = make_cert ("ca");
  wrong_ca_file = make_cert ("other");
  start_nginx (nginx);
  start_fault_server ();
  if (!start_s3_server ())
    g_clear_pointer (&s3_endpoint, g_free);

  g_setenv ("CURL_CA_BUNDLE", ca_file, TRUE);
  g_setenv ("HF_TOKEN", TOKEN, TRUE);
  {
    g_autofree gchar *hub = g_strdup_printf ("http://127.0.0.1:%u",
        fault_port);
    g_setenv ("HF_ENDPOINT", hub, TRUE);
  }
  g_setenv ("UEL_HTTP_STALL_TIMEOUT", "2", TRUE);
  /* the servers are local: no proxy */
  g_setenv ("no_proxy", "*", TRUE);

  g_test_add_func ("/remote/nginx/http-every-tensor-exact", test_http_exact);
  g_test_add_func ("/remote/nginx/https-every-tensor-exact",
      test_https_exact);
  g_test_add_func ("/remote/nginx/https-wrong-ca-is-a-tls-error-naming-the-url",
      test_https_wrong_ca);
  g_test_add_func ("/remote/nginx/not-found-names-the-url-without-credentials",
      test_not_found_without_credentials);
  g_test_add_func ("/remote/nginx/sharded-index-fetches-shards-beside-it",
      test_sharded_index);
  g_test_add_func ("/remote/nginx/long-header-takes-a-second-request",
      test_long_header_two_requests);
  g_test_add_func ("/remote/nginx/uelsrc-pipeline-every-method-exact",
      test_uelsrc_pipeline);
  g_test_add_func ("/remote/nginx/uelsrc-into-uelpin-pool-exact",
      test_uelsrc_into_pinned_pool);
  g_test_add_func ("/remote/nginx/uelsrc-not-found-is-resource-not-found",
      test_uelsrc_not_found_error);
  g_test_add_func ("/remote/nginx/loader-both-modes-exact", test_loader);
  g_test_add_func ("/remote/nginx/launch-progress-and-summary",
      test_launch_progress);
  g_test_add_func ("/remote/nginx/inspect-reports-bytes-and-checksums",
      test_inspect_reports_bytes);
  g_test_add_func ("/remote/faults/dropped-connection-resumes-at-the-byte",
      test_drop_resumes);
  g_test_add_func ("/remote/faults/503-honours-retry-after",
      test_503_retry_after);
  g_test_add_func ("/remote/faults/429-honours-retry-after",
      test_429_retry_after);
  g_test_add_func ("/remote/faults/5xx-forever-gives-up", test_gives_up);
  g_test_add_func ("/remote/faults/stall-times-out-and-resumes",
      test_stall_times_out);
  g_test_add_func ("/remote/faults/stop-during-a-stall-returns-at-once",
      test_stop_during_stall);
  g_test_add_func ("/remote/faults/changed-object-412-on-if-match",
      test_change_if_match);
  g_test_add_func ("/remote/faults/changed-etag-is-file-changed",
      test_change_etag);
  g_test_add_func ("/remote/faults/changed-last-modified-is-file-changed",
      test_change_date);
  g_test_add_func ("/remote/faults/range-not-asked-for-is-an-error",
      test_bad_range);
  g_test_add_func ("/remote/faults/body-longer-than-range-is-an-error",
      test_overlong_body);
  g_test_add_func ("/remote/faults/403-names-the-url", test_forbidden);
  g_test_add_func ("/remote/hub/token-as-bearer-through-redirect",
      test_hub_token_and_redirect);
  g_test_add_func ("/remote/hub/no-token-is-access-denied-saying-so",
      test_hub_token_unset_is_denied);
  g_test_add_func ("/remote/hub/token-not-sent-to-another-host",
      test_token_not_sent_to_other_host);

  g_test_add_func ("/remote/s3/signed-requests-every-tensor-exact",
      test_s3_signed_exact);
  g_test_add_func ("/remote/s3/wrong-secret-is-access-denied",
      test_s3_wrong_secret);
  g_test_add_func ("/remote/s3/credentials-and-region-from-aws-files",
      test_s3_credentials_from_files);

  ret = g_test_run ();
  stop_servers ();
  return ret;
}
