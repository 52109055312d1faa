/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * Remote files over HTTP(S) with libcurl: every read is a ranged GET into
 * the caller's memory.  The first response pins the object's size and
 * validators (ETag, Last-Modified); every later response is checked
 * against them before its first byte is written (and the server is asked
 * to refuse with If-Match / If-Unmodified-Since), so that an object that
 * changes on the server mid-load is %UEL_ERROR_FILE_CHANGED, never a
 * buffer of mixed bytes.  Dropped connections, 5xx, 429 (Retry-After) and
 * stalls are retried with backoff from the byte reached.  Messages name
 * the URL without its user name, password, query or fragment; tokens
 * travel only in headers that are never logged.
 */
#include "config.h"

#include <string.h>
#include <sys/uio.h>

#include <gst/gst.h>

#include "uel-error.h"
#include "uel-header-private.h"
#include "uel-http-private.h"

#if HAVE_CURL
#include <curl/curl.h>

GST_DEBUG_CATEGORY_STATIC (uel_http_debug);
#define GST_CAT_DEFAULT uel_http_debug

static void
debug_init (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (uel_http_debug, "uelhttp", 0,
        "gst-uel remote files");
    g_once_init_leave (&once, 1);
  }
}
#endif

gboolean
uel_location_is_url (const gchar * location)
{
  return g_ascii_strncasecmp (location, "http://", 7) == 0
      || g_ascii_strncasecmp (location, "https://", 8) == 0
      || g_ascii_strncasecmp (location, "s3://", 5) == 0;
}

gchar *
uel_url_redact (const gchar * url)
{
  const gchar *scheme_end = strstr (url, "://");
  const gchar *auth, *end, *at;
  GString *out;

  if (!scheme_end)
    return g_strndup (url, strcspn (url, "?#"));
  auth = scheme_end + 3;
  end = auth + strcspn (auth, "/?#");
  out = g_string_new_len (url, auth - url);
  /* the last '@' of the authority ends the user information (a password
   * may hold an unescaped '@') */
  at = g_strrstr_len (auth, end - auth, "@");
  if (at)
    auth = at + 1;
  g_string_append_len (out, auth, end - auth);
  g_string_append_len (out, end, strcspn (end, "?#"));
  return g_string_free (out, FALSE);
}

#if HAVE_CURL

/* The first request asks for this much: most headers fit (a Llama-like
 * 7B model's is about 30 KiB), so one round trip gives header and size. */
#define HEADER_PROBE ((gsize) 64 << 10)
/* tries of one read that makes no progress, the first included */
#define DEFAULT_ATTEMPTS 6
/* a Retry-After longer than this is cut to it */
#define RETRY_AFTER_MAX_S 30
/* backoff: 100 ms, doubled each time, at most 5 s */
#define BACKOFF_FIRST_US (G_USEC_PER_SEC / 10)
#define BACKOFF_MAX_US (5 * G_USEC_PER_SEC)
/* a connection that moves no byte for this long is dropped and retried */
#define DEFAULT_STALL_S 30
#define CONNECT_TIMEOUT_S 30L
/* libcurl's receive buffer, its largest (the default 16 KiB costs a
 * callback and a copy each: 15% of the rate over loopback) */
#define RECEIVE_BUFFER 524288L
/* idle easy handles (with their connections) kept for the next request */
#define MAX_IDLE_HANDLES 32

struct _UelRemote
{
  gint ref_count;
  gchar *url;
  gchar *name;
  gboolean hub;                 /* the Hub: HF_TOKEN as a bearer token */
  /* s3://: requests signed with SigV4 (NULL: anonymous) */
  gchar *sigv4;                 /* "aws:amz:REGION:s3" */
  gchar *userpwd;               /* "KEY:SECRET" */
  gchar *session_token;

  GMutex lock;
  gboolean pinned;
  gboolean conditional;         /* the validators may go back as If-* */
  guint64 size;
  gchar *etag;
  gchar *last_modified;
  guint64 fetched;              /* atomic */
};

/* idle easy handles of the process: a handle keeps its connections, so
 * that the next range to the same server skips the TCP and TLS setup */
static GMutex handles_lock;
static GPtrArray *idle_handles;

static gboolean
global_init (GError ** error)
{
  static gsize once = 0;
  static CURLcode res;

  debug_init ();
  if (g_once_init_enter (&once)) {
    res = curl_global_init (CURL_GLOBAL_DEFAULT);
    g_once_init_leave (&once, 1);
  }
  if (res != CURLE_OK) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "cannot initialize "
        "libcurl: %s", curl_easy_strerror (res));
    return FALSE;
  }
  return TRUE;
}

static CURL *
handle_take (void)
{
  CURL *h = NULL;

  g_mutex_lock (&handles_lock);
  if (idle_handles && idle_handles->len > 0)
    h = g_ptr_array_steal_index_fast (idle_handles, idle_handles->len - 1);
  g_mutex_unlock (&handles_lock);
  if (h)
    curl_easy_reset (h);
  else
    h = curl_easy_init ();
  return h;
}

static void
handle_give (CURL * h)
{
  g_mutex_lock (&handles_lock);
  if (!idle_handles)
    idle_handles = g_ptr_array_new ();
  if (idle_handles->len < MAX_IDLE_HANDLES) {
    g_ptr_array_add (idle_handles, h);
    h = NULL;
  }
  g_mutex_unlock (&handles_lock);
  if (h)
    curl_easy_cleanup (h);
}

static guint
env_uint (const gchar * name, guint def, guint min, guint max)
{
  const gchar *v = g_getenv (name);
  guint64 n;

  if (!v || !g_ascii_string_to_unsigned (v, 10, min, max, &n, NULL))
    return def;
  return (guint) n;
}

/* Whether @url is on the Hugging Face Hub (or the endpoint HF_ENDPOINT
 * names, as huggingface_hub reads it), the only server HF_TOKEN goes to. */
static gboolean
is_hub (const gchar * url)
{
  const gchar *endpoint = g_getenv ("HF_ENDPOINT");
  g_autofree gchar *host = NULL;
  CURLU *u;

  if (endpoint && *endpoint) {
    gsize n = strlen (endpoint);

    while (n > 0 && endpoint[n - 1] == '/')
      n--;
    if (g_ascii_strncasecmp (url, endpoint, n) == 0
        && (url[n] == '/' || url[n] == '\0'))
      return TRUE;
  }
  u = curl_url ();
  if (u && curl_url_set (u, CURLUPART_URL, url, 0) == CURLUE_OK) {
    char *h = NULL;

    if (curl_url_get (u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
      host = g_ascii_strdown (h, -1);
      curl_free (h);
    }
  }
  curl_url_cleanup (u);
  return host && (g_str_equal (host, "huggingface.co")
      || g_str_has_suffix (host, ".huggingface.co")
      || g_str_equal (host, "hf.co"));
}

/* ------------------------------------------------------------------ */
/* s3:// */

static gchar *
env_nonempty (const gchar * a, const gchar * b)
{
  const gchar *v = g_getenv (a);

  if ((!v || !*v) && b)
    v = g_getenv (b);
  return v && *v ? g_strdup (v) : NULL;
}

/* @key of @profile's section in the AWS file named by @env_var (or
 * ~/.aws/@file): the credentials file names sections "NAME", the config
 * file "profile NAME" (but "default") */
static gchar *
aws_file_value (const gchar * env_var, const gchar * file,
    const gchar * profile, gboolean config, const gchar * key)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree gchar *path = env_nonempty (env_var, NULL);
  g_autofree gchar *group = NULL;
  gchar *v;

  if (!path)
    path = g_build_filename (g_get_home_dir (), ".aws", file, NULL);
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, NULL))
    return NULL;
  group = config && strcmp (profile, "default") != 0 ?
      g_strdup_printf ("profile %s", profile) : g_strdup (profile);
  v = g_key_file_get_string (kf, group, key, NULL);
  if (v)
    g_strstrip (v);
  if (v && !*v)
    g_clear_pointer (&v, g_free);
  return v;
}

/* s3://BUCKET/KEY as the AWS tools read it: credentials from
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN or the
 * profile (AWS_PROFILE) of ~/.aws/credentials; the region from
 * AWS_REGION, AWS_DEFAULT_REGION or ~/.aws/config (us-east-1); the
 * endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (path-style
 * requests: S3-compatible stores), else the bucket's virtual host at
 * AWS.  No credentials anywhere: anonymous requests (public buckets). */
static gboolean
s3_setup (UelRemote * r, const gchar * url, GError ** error)
{
  const gchar *path = url + 5;
  const gchar *slash = strchr (path, '/');
  g_autofree gchar *bucket = NULL;
  g_autofree gchar *key = NULL;
  g_autofree gchar *profile = env_nonempty ("AWS_PROFILE", NULL);
  g_autofree gchar *region = NULL;
  g_autofree gchar *endpoint = NULL;
  g_autofree gchar *id = NULL;
  g_autofree gchar *secret = NULL;

  if (!slash || slash == path || !slash[1]) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "%s: not an s3://BUCKET/KEY location", r->name);
    return FALSE;
  }
  bucket = g_strndup (path, slash - path);
  key = g_uri_escape_string (slash + 1, "/", FALSE);
  if (!profile)
    profile = g_strdup ("default");

  region = env_nonempty ("AWS_REGION", "AWS_DEFAULT_REGION");
  if (!region)
    region = aws_file_value ("AWS_CONFIG_FILE", "config", profile, TRUE,
        "region");
  if (!region)
    region = g_strdup ("us-east-1");
  endpoint = env_nonempty ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
  if (endpoint) {
    gsize n = strlen (endpoint);

    while (n > 0 && endpoint[n - 1] == '/')
      endpoint[--n] = '\0';
    r->url = g_strdup_printf ("%s/%s/%s", endpoint, bucket, key);
  } else
    r->url = g_strdup_printf ("https://%s.s3.%s.amazonaws.com/%s", bucket,
        region, key);

  id = env_nonempty ("AWS_ACCESS_KEY_ID", NULL);
  secret = env_nonempty ("AWS_SECRET_ACCESS_KEY", NULL);
  if (id && secret)
    r->session_token = env_nonempty ("AWS_SESSION_TOKEN", NULL);
  else {
    g_clear_pointer (&id, g_free);
    g_clear_pointer (&secret, g_free);
    id = aws_file_value ("AWS_SHARED_CREDENTIALS_FILE", "credentials",
        profile, FALSE, "aws_access_key_id");
    secret = aws_file_value ("AWS_SHARED_CREDENTIALS_FILE", "credentials",
        profile, FALSE, "aws_secret_access_key");
    if (id && secret)
      r->session_token = aws_file_value ("AWS_SHARED_CREDENTIALS_FILE",
          "credentials", profile, FALSE, "aws_session_token");
  }
  if (id && secret) {
    r->sigv4 = g_strdup_printf ("aws:amz:%s:s3", region);
    r->userpwd = g_strdup_printf ("%s:%s", id, secret);
    memset (secret, 0, strlen (secret));
  }
  GST_DEBUG ("%s: %s, region %s, %s", r->name, endpoint ? endpoint :
      "AWS", region, r->sigv4 ? "signed" : "anonymous");
  return TRUE;
}

static UelRemote *
remote_new (const gchar * url, GError ** error)
{
  UelRemote *r;

  if (!global_init (error))
    return NULL;
  r = g_new0 (UelRemote, 1);
  r->ref_count = 1;
  r->name = uel_url_redact (url);
  g_mutex_init (&r->lock);
  if (g_ascii_strncasecmp (url, "s3://", 5) == 0) {
    if (!s3_setup (r, url, error)) {
      uel_remote_unref (r);
      return NULL;
    }
  } else {
    r->url = g_strdup (url);
    r->hub = is_hub (url);
  }
  return r;
}

UelRemote *
uel_remote_ref (UelRemote * remote)
{
  g_atomic_int_inc (&remote->ref_count);
  return remote;
}

void
uel_remote_unref (UelRemote * remote)
{
  if (!g_atomic_int_dec_and_test (&remote->ref_count))
    return;
  g_free (remote->url);
  g_free (remote->name);
  g_free (remote->sigv4);
  if (remote->userpwd)
    memset (remote->userpwd, 0, strlen (remote->userpwd));
  g_free (remote->userpwd);
  g_free (remote->session_token);
  g_free (remote->etag);
  g_free (remote->last_modified);
  g_mutex_clear (&remote->lock);
  g_free (remote);
}

const gchar *
uel_remote_get_name (UelRemote * remote)
{
  return remote->name;
}

guint64
uel_remote_get_size (UelRemote * remote)
{
  guint64 n;

  g_mutex_lock (&remote->lock);
  n = remote->size;
  g_mutex_unlock (&remote->lock);
  return n;
}

guint64
uel_remote_get_bytes_fetched (UelRemote * remote)
{
  return __atomic_load_n (&remote->fetched, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* one request */

typedef enum
{
  OUTCOME_OK,
  OUTCOME_RETRY,                /* a transient failure: try again */
  OUTCOME_FAIL,                 /* an error for the caller */
} Outcome;

typedef struct
{
  UelRemote *r;
  /* what was asked: [offset, offset + want) */
  guint64 offset;
  gsize want;
  /* where it goes: the buffers of @iov from byte @base on, or @grow */
  const struct iovec *iov;
  gint iovcnt;
  gsize base;
  GByteArray *grow;
  gboolean probe;               /* the first request: pins the object */
  const gint *cancel;           /* atomic, or NULL */
  /* the response (the last one, after redirects) */
  glong status;
  gboolean have_range, range_unsatisfied;
  guint64 range_start, range_end, range_total;
  gboolean have_length;
  guint64 length;
  gchar *etag;
  gchar *last_modified;
  gint64 retry_after_us;        /* -1: none */
  /* the body */
  gboolean checked;             /* the response was accepted */
  gsize got;                    /* bytes written */
  gsize accept;                 /* bytes the response may write */
  gboolean stopped;             /* we ended a 200 after its first bytes */
  GError *error;                /* a refusal decided in a callback */
} Request;

static void
response_reset (Request * q)
{
  q->status = 0;
  q->have_range = q->range_unsatisfied = q->have_length = FALSE;
  g_clear_pointer (&q->etag, g_free);
  g_clear_pointer (&q->last_modified, g_free);
  q->retry_after_us = -1;
}

/* a decimal number of at most 19 digits: no sign, no overflow */
static const gchar *
parse_u64 (const gchar * s, guint64 * out)
{
  guint64 v = 0;
  guint n = 0;

  while (g_ascii_isdigit (*s) && n < 19) {
    v = v * 10 + (guint64) (*s - '0');
    s++;
    n++;
  }
  if (n == 0 || g_ascii_isdigit (*s))
    return NULL;
  *out = v;
  return s;
}

/* "bytes START-END/TOTAL", or "bytes * /TOTAL" without the blank (416) */
static void
parse_content_range (Request * q, const gchar * v)
{
  guint64 a, b, t;
  const gchar *s;

  if (g_ascii_strncasecmp (v, "bytes ", 6) != 0)
    return;
  v += 6;
  if (v[0] == '*' && v[1] == '/') {
    if ((s = parse_u64 (v + 2, &t)) && *s == '\0') {
      q->range_unsatisfied = TRUE;
      q->range_total = t;
    }
    return;
  }
  if (!(s = parse_u64 (v, &a)) || *s != '-' || !(s = parse_u64 (s + 1, &b))
      || *s != '/' || !(s = parse_u64 (s + 1, &t)) || *s != '\0'
      || a > b || b >= t)
    return;
  q->have_range = TRUE;
  q->range_start = a;
  q->range_end = b;
  q->range_total = t;
}

static void
parse_retry_after (Request * q, const gchar * v)
{
  guint64 s;
  const gchar *end = parse_u64 (v, &s);

  if (end && *end == '\0') {
    q->retry_after_us = (gint64) MIN (s, RETRY_AFTER_MAX_S) * G_USEC_PER_SEC;
  } else {
    /* an HTTP date */
    time_t t = curl_getdate (v, NULL);
    gint64 now = g_get_real_time () / G_USEC_PER_SEC;

    if (t >= 0)
      q->retry_after_us = (gint64) CLAMP ((gint64) t - now, 0,
          RETRY_AFTER_MAX_S) * G_USEC_PER_SEC;
  }
}

static size_t
header_cb (char *data, size_t size, size_t n, void *user_data)
{
  Request *q = user_data;
  gsize len = size * n;
  g_autofree gchar *line = g_strndup (data, len);
  gchar *colon, *value;

  g_strstrip (line);
  if (g_ascii_strncasecmp (line, "HTTP/", 5) == 0) {
    /* a new response (after a redirect, or a 100 Continue) */
    const gchar *sp = strchr (line, ' ');
    guint64 status;

    response_reset (q);
    if (sp && parse_u64 (sp + 1, &status) && status < 1000)
      q->status = (glong) status;
    return len;
  }
  colon = strchr (line, ':');
  if (!colon)
    return len;
  *colon = '\0';
  value = g_strstrip (colon + 1);
  if (g_ascii_strcasecmp (line, "content-range") == 0)
    parse_content_range (q, value);
  else if (g_ascii_strcasecmp (line, "content-length") == 0) {
    const gchar *end = parse_u64 (value, &q->length);
    q->have_length = end && *end == '\0';
  } else if (g_ascii_strcasecmp (line, "etag") == 0) {
    g_free (q->etag);
    q->etag = g_strdup (value);
  } else if (g_ascii_strcasecmp (line, "last-modified") == 0) {
    g_free (q->last_modified);
    q->last_modified = g_strdup (value);
  } else if (g_ascii_strcasecmp (line, "retry-after") == 0)
    parse_retry_after (q, value);
  return len;
}

static void
set_changed (Request * q, const gchar * what, const gchar * was,
    const gchar * now)
{
  g_set_error (&q->error, UEL_ERROR, UEL_ERROR_FILE_CHANGED,
      "%s: the file changed on the server after its header was read: %s "
      "(now %s, was %s)", q->r->name, what, now ? now : "none",
      was ? was : "none");
}

/* Decides, before the first byte of a 200 or 206 is written, whether its
 * bytes are the ones asked for, of the object that was validated. */
static gboolean
check_response (Request * q)
{
  UelRemote *r = q->r;
  guint64 total;
  gboolean ok = TRUE;

  if (q->status == 206) {
    if (!q->have_range) {
      g_set_error (&q->error, UEL_ERROR, UEL_ERROR_IO, "%s: the server "
          "answered a range request without a valid Content-Range",
          r->name);
      return FALSE;
    }
    if (q->range_start != q->offset || q->range_end > q->offset + q->want - 1) {
      g_set_error (&q->error, UEL_ERROR, UEL_ERROR_IO, "%s: asked for bytes %"
          G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT ", the server sent %"
          G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, r->name, q->offset,
          q->offset + q->want - 1, q->range_start, q->range_end);
      return FALSE;
    }
    total = q->range_total;
    q->accept = (gsize) (q->range_end - q->range_start + 1);
  } else {
    /* 200: the whole object, which only a read from byte 0 can use (a
     * server without ranges); its first @want bytes are taken */
    if (q->offset != 0 || !q->have_length) {
      g_set_error (&q->error, UEL_ERROR, UEL_ERROR_IO, "%s: the server "
          "does not support range requests (it answered 200 to a request "
          "for bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT ")", r->name,
          q->offset, q->offset + q->want - 1);
      return FALSE;
    }
    total = q->length;
    q->accept = (gsize) MIN (q->want, total);
  }

  g_mutex_lock (&r->lock);
  if (!r->pinned) {
    r->pinned = TRUE;
    r->size = total;
    r->etag = g_strdup (q->etag);
    r->last_modified = g_strdup (q->last_modified);
  } else if (total != r->size) {
    g_autofree gchar *was = g_strdup_printf ("%" G_GUINT64_FORMAT " bytes",
        r->size);
    g_autofree gchar *now = g_strdup_printf ("%" G_GUINT64_FORMAT " bytes",
        total);
    set_changed (q, "its size changed", was, now);
    ok = FALSE;
  } else if (r->etag && q->etag && strcmp (r->etag, q->etag) != 0) {
    set_changed (q, "its ETag changed", r->etag, q->etag);
    ok = FALSE;
  } else if (r->last_modified && q->last_modified
      && strcmp (r->last_modified, q->last_modified) != 0) {
    set_changed (q, "its Last-Modified changed", r->last_modified,
        q->last_modified);
    ok = FALSE;
  } else if ((r->etag && !q->etag)
      || (!r->etag && r->last_modified && !q->last_modified)) {
    set_changed (q, "the server no longer sends the validator it sent",
        r->etag ? r->etag : r->last_modified, NULL);
    ok = FALSE;
  }
  g_mutex_unlock (&r->lock);
  return ok;
}

/* copies @len bytes to the request's destination at byte @at */
static void
put_bytes (Request * q, const guint8 * data, gsize len, gsize at)
{
  gsize skip = q->base + at;
  gint i = 0;

  if (q->grow) {
    g_byte_array_append (q->grow, data, (guint) len);
    return;
  }
  while (skip >= q->iov[i].iov_len) {
    skip -= q->iov[i].iov_len;
    i++;
  }
  while (len > 0) {
    gsize n = MIN (len, q->iov[i].iov_len - skip);

    memcpy ((guint8 *) q->iov[i].iov_base + skip, data, n);
    data += n;
    len -= n;
    skip = 0;
    i++;
  }
}

static size_t
write_cb (char *data, size_t size, size_t n, void *user_data)
{
  Request *q = user_data;
  gsize len = size * n, take;

  if (q->status != 200 && q->status != 206)
    return len;                 /* an error page: read and dropped */
  if (!q->checked) {
    if (q->error || !check_response (q))
      return 0;
    q->checked = TRUE;
  }
  take = MIN (len, q->accept - q->got);
  if (take < len && q->status == 206) {
    g_set_error (&q->error, UEL_ERROR, UEL_ERROR_IO, "%s: the server sent "
        "more bytes than its Content-Range said (%" G_GUINT64_FORMAT ")",
        q->r->name, (guint64) q->accept);
    return 0;
  }
  put_bytes (q, (const guint8 *) data, take, q->got);
  q->got += take;
  /* every callback of every connection: no lock */
  __atomic_fetch_add (&q->r->fetched, (guint64) len, __ATOMIC_RELAXED);
  if (take < len) {
    /* the rest of a 200 is not wanted */
    q->stopped = TRUE;
    return 0;
  }
  return len;
}

#define SETOPT(h, opt, val) \
  G_STMT_START { \
    CURLcode _c = curl_easy_setopt ((h), (opt), (val)); \
    if (_c != CURLE_OK) { \
      g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "%s: libcurl refused " \
          "option %s: %s", q->r->name, #opt, curl_easy_strerror (_c)); \
      goto out; \
    } \
  } G_STMT_END

static int
progress_cb (void *user_data, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
  Request *q = user_data;

  /* non-zero aborts the transfer (CURLE_ABORTED_BY_CALLBACK) */
  return g_atomic_int_get (q->cancel) ? 1 : 0;
}

static gboolean
cancelled (UelRemote * r, const gint * cancel, GError ** error)
{
  if (!cancel || !g_atomic_int_get (cancel))
    return FALSE;
  g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "%s: cancelled", r->name);
  return TRUE;
}

static const gchar *
ca_file (void)
{
  const gchar *v = g_getenv ("CURL_CA_BUNDLE");

  if (!v || !*v)
    v = g_getenv ("SSL_CERT_FILE");
  return v && *v ? v : NULL;
}

static struct curl_slist *
add_header (struct curl_slist *list, const gchar * header, gboolean * failed)
{
  struct curl_slist *l = curl_slist_append (list, header);

  if (!l) {
    *failed = TRUE;
    return list;
  }
  return l;
}

/* Sends one request for [q->offset, q->offset + q->want) and classifies
 * its result.  On OUTCOME_FAIL @error is set. */
static Outcome
perform (Request * q, CURL * h, GError ** error)
{
  UelRemote *r = q->r;
  struct curl_slist *headers = NULL;
  gchar errbuf[CURL_ERROR_SIZE] = "";
  g_autofree gchar *range = NULL;
  g_autofree gchar *cond = NULL;
  const gchar *token;
  gboolean header_failed = FALSE;
  Outcome outcome = OUTCOME_FAIL;
  CURLcode res;
  glong stall = (glong) env_uint ("UEL_HTTP_STALL_TIMEOUT", DEFAULT_STALL_S,
      1, 3600);

  range = g_strdup_printf ("%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT,
      q->offset, q->offset + q->want - 1);
  g_mutex_lock (&r->lock);
  if (r->pinned && r->conditional) {
    /* a weak ETag never matches If-Match: the date does the job then */
    if (r->etag && !g_str_has_prefix (r->etag, "W/"))
      cond = g_strdup_printf ("If-Match: %s", r->etag);
    else if (r->last_modified)
      cond = g_strdup_printf ("If-Unmodified-Since: %s", r->last_modified);
  }
  g_mutex_unlock (&r->lock);
  if (cond)
    headers = add_header (headers, cond, &header_failed);
  if (r->sigv4) {
    /* S3 wants the payload's hash in a header: a GET's is that of no
     * bytes, which is also what libcurl signs */
    headers = add_header (headers, "x-amz-content-sha256: "
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        &header_failed);
    if (r->session_token) {
      g_autofree gchar *t = g_strdup_printf ("x-amz-security-token: %s",
          r->session_token);
      headers = add_header (headers, t, &header_failed);
    }
  }
  if (header_failed) {
    curl_slist_free_all (headers);
    g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: out of memory",
        r->name);
    return OUTCOME_FAIL;
  }

  SETOPT (h, CURLOPT_URL, r->url);
  SETOPT (h, CURLOPT_RANGE, range);
  SETOPT (h, CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT (h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  SETOPT (h, CURLOPT_FOLLOWLOCATION, 1L);
  SETOPT (h, CURLOPT_MAXREDIRS, 10L);
  SETOPT (h, CURLOPT_NOSIGNAL, 1L);
  SETOPT (h, CURLOPT_ERRORBUFFER, errbuf);
  SETOPT (h, CURLOPT_HEADERFUNCTION, header_cb);
  SETOPT (h, CURLOPT_HEADERDATA, q);
  SETOPT (h, CURLOPT_WRITEFUNCTION, write_cb);
  SETOPT (h, CURLOPT_WRITEDATA, q);
  SETOPT (h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
  /* a stall, not a slow link: less than a byte a second for @stall s */
  SETOPT (h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  SETOPT (h, CURLOPT_LOW_SPEED_TIME, stall);
  SETOPT (h, CURLOPT_USERAGENT, "gst-uel/" PACKAGE_VERSION);
  SETOPT (h, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER);
  SETOPT (h, CURLOPT_SSL_VERIFYPEER, 1L);
  SETOPT (h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (ca_file ())
    SETOPT (h, CURLOPT_CAINFO, ca_file ());
  if (headers)
    SETOPT (h, CURLOPT_HTTPHEADER, headers);
  if (q->cancel) {
    /* called several times a second, also while nothing arrives */
    SETOPT (h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    SETOPT (h, CURLOPT_XFERINFODATA, q);
    SETOPT (h, CURLOPT_NOPROGRESS, 0L);
  }
  if (r->sigv4) {
    SETOPT (h, CURLOPT_AWS_SIGV4, r->sigv4);
    SETOPT (h, CURLOPT_USERPWD, r->userpwd);
  }
  token = g_getenv ("HF_TOKEN");
  if (r->hub && token && *token) {
    /* libcurl drops it on a redirect to another host (the Hub's CDN) */
    SETOPT (h, CURLOPT_HTTPAUTH, (glong) CURLAUTH_BEARER);
    SETOPT (h, CURLOPT_XOAUTH2_BEARER, token);
  }

  response_reset (q);
  res = curl_easy_perform (h);

  if (q->got > 0)
    GST_LOG ("%s: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes at %"
        G_GUINT64_FORMAT " (HTTP %ld, %s)", r->name, q->got, q->want,
        q->offset, q->status, curl_easy_strerror (res));

  if (q->probe && res == CURLE_OK && q->got == 0 && q->status == 416
      && q->range_unsatisfied) {
    /* an object of fewer bytes than asked for from byte 0: empty */
    g_mutex_lock (&r->lock);
    if (!r->pinned) {
      r->pinned = TRUE;
      r->size = q->range_total;
    }
    g_mutex_unlock (&r->lock);
    outcome = OUTCOME_OK;
    goto out;
  }
  if (res == CURLE_ABORTED_BY_CALLBACK && cancelled (r, q->cancel, error))
    goto out;
  if (q->error) {
    /* refused in a callback: another object, bytes not asked for */
    g_propagate_error (error, g_steal_pointer (&q->error));
    goto out;
  }
  if (res == CURLE_OK || (res == CURLE_WRITE_ERROR && q->stopped)) {
    if (q->status == 200 || q->status == 206) {
      if (!q->checked) {
        /* an empty body: check it all the same */
        if (!check_response (q)) {
          g_propagate_error (error, g_steal_pointer (&q->error));
          goto out;
        }
        q->checked = TRUE;
      }
      if (q->got < q->accept) {
        /* the body ended early without a transport error */
        outcome = OUTCOME_RETRY;
        goto out;
      }
      if (q->probe) {
        glong redirects = 0;

        /* a Hub resolve URL answers with a redirect to a CDN whose
         * validators are not the Hub's: compare them, but do not ask the
         * Hub to compare its own with them */
        if (curl_easy_getinfo (h, CURLINFO_REDIRECT_COUNT, &redirects)
            != CURLE_OK)
          redirects = 1;
        g_mutex_lock (&r->lock);
        r->conditional = redirects == 0;
        g_mutex_unlock (&r->lock);
      }
      outcome = OUTCOME_OK;
      goto out;
    }
    switch (q->status) {
      case 404:
      case 410:
        g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
            "%s: not found on the server (HTTP %ld)", r->name, q->status);
        goto out;
      case 401:
      case 403:
        g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_ACCES,
            "%s: access denied by the server (HTTP %ld)%s", r->name,
            q->status, r->hub && !(token && *token) ? "; HF_TOKEN is not "
            "set" : "");
        goto out;
      case 412:
        g_set_error (error, UEL_ERROR, UEL_ERROR_FILE_CHANGED,
            "%s: the file changed on the server after its header was read "
            "(HTTP 412: its validator no longer matches)", r->name);
        goto out;
      case 408:
      case 429:
      case 500:
      case 502:
      case 503:
      case 504:
        outcome = OUTCOME_RETRY;
        g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "%s: HTTP %ld",
            r->name, q->status);
        goto out;
      default:
        g_set_error (error, UEL_ERROR, UEL_ERROR_IO,
            "%s: the server answered HTTP %ld to a request for bytes %"
            G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, r->name, q->status,
            q->offset, q->offset + q->want - 1);
        goto out;
    }
  }

  switch (res) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      outcome = OUTCOME_RETRY;
      break;
    default:
      break;
  }
  /* libcurl's messages name hosts and certificates, never the URL's user
   * information or query */
  g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "%s: %s%s%s%s", r->name,
      res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CONNECT_ERROR
      || res == CURLE_SSL_CACERT_BADFILE ? "TLS: " : "",
      curl_easy_strerror (res), *errbuf ? ": " : "", errbuf);

out:
  curl_slist_free_all (headers);
  if (outcome == OUTCOME_OK)
    g_clear_error (error);
  return outcome;
}

#undef SETOPT

/* Reads [offset, offset + len) into @iov (or appends to @grow), retrying
 * transient failures from the byte reached. */
static gboolean
fetch (UelRemote * r, const struct iovec *iov, gint iovcnt, GByteArray * grow,
    gsize len, guint64 offset, gboolean probe, const gint * cancel,
    gsize * done, GError ** error)
{
  guint attempts = env_uint ("UEL_HTTP_ATTEMPTS", DEFAULT_ATTEMPTS, 1, 100);
  guint failures = 0;
  gint64 backoff = BACKOFF_FIRST_US;
  CURL *h;
  gboolean ok = FALSE;

  *done = 0;
  if (len == 0)
    return TRUE;
  if (cancelled (r, cancel, error))
    return FALSE;
  h = handle_take ();
  if (!h) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_NO_MEMORY, "%s: cannot make a "
        "libcurl handle", r->name);
    return FALSE;
  }
  while (*done < len) {
    Request q = { 0, };
    GError *err = NULL;
    Outcome o;
    gint64 wait;
    gboolean at_end;

    q.r = r;
    q.offset = offset + *done;
    q.want = len - *done;
    q.iov = iov;
    q.iovcnt = iovcnt;
    q.base = *done;
    q.grow = grow;
    q.probe = probe;
    q.cancel = cancel;
    q.retry_after_us = -1;
    o = perform (&q, h, &err);
    *done += q.got;
    wait = q.retry_after_us;
    /* a 200 from byte 0, a range to the end or a 416 for the probe: the
     * object ends before the bytes asked for, and all of it is here */
    at_end = q.status == 416 || q.status == 200 || (q.status == 206
        && q.range_end + 1 == q.range_total);
    response_reset (&q);
    g_clear_error (&q.error);
    if (o == OUTCOME_OK) {
      if (at_end && *done < len)
        break;
      continue;
    }
    if (o == OUTCOME_FAIL) {
      g_propagate_error (error, err);
      goto out;
    }
    /* a retry: progress starts the count again */
    if (q.got > 0) {
      failures = 0;
      backoff = BACKOFF_FIRST_US;
    }
    if (++failures >= attempts) {
      const gchar *why = err ? err->message : "the connection ended early";
      gsize n = strlen (r->name);

      /* "URL: gave up ...: why", the URL said once */
      if (strncmp (why, r->name, n) == 0 && strncmp (why + n, ": ", 2) == 0)
        why += n + 2;
      g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "%s: gave up after %u "
          "tries without progress at byte %" G_GUINT64_FORMAT ": %s",
          r->name, failures, offset + *done, why);
      g_clear_error (&err);
      goto out;
    }
    if (wait < 0) {
      wait = backoff + g_random_int_range (0, (gint32) (backoff / 4 + 1));
      backoff = MIN (backoff * 2, BACKOFF_MAX_US);
    }
    GST_INFO ("%s: retrying from byte %" G_GUINT64_FORMAT " in %"
        G_GINT64_FORMAT " ms: %s", r->name, offset + *done, wait / 1000,
        err ? err->message : "the connection ended early");
    g_clear_error (&err);
    /* in slices, so that a cancel ends the wait */
    for (gint64 end = g_get_monotonic_time () + wait;;) {
      gint64 left = end - g_get_monotonic_time ();

      if (cancelled (r, cancel, error))
        goto out;
      if (left <= 0)
        break;
      g_usleep ((gulong) MIN (left, 50000));
    }
  }
  ok = TRUE;
out:
  handle_give (h);
  return ok;
}

gboolean
uel_remote_readv (UelRemote * remote, const struct iovec * iov, gint iovcnt,
    gsize len, guint64 offset, const gint * cancel, gsize * done,
    GError ** error)
{
  if (!fetch (remote, iov, iovcnt, NULL, len, offset, FALSE, cancel, done,
          error))
    return FALSE;
  if (*done < len) {
    /* a server that ignored the range: never a short tensor */
    g_set_error (error, UEL_ERROR, UEL_ERROR_FILE_CHANGED, "%s: the file "
        "ends at byte %" G_GUINT64_FORMAT " but %" G_GSIZE_FORMAT " bytes "
        "were expected at offset %" G_GUINT64_FORMAT, remote->name,
        offset + *done, len, offset);
    return FALSE;
  }
  return TRUE;
}

gboolean
uel_remote_read (UelRemote * remote, gpointer dst, gsize len, guint64 offset,
    const gint * cancel, GError ** error)
{
  struct iovec iov = { dst, len };
  gsize done;

  return uel_remote_readv (remote, &iov, 1, len, offset, cancel, &done,
      error);
}

/* The first @max bytes of the object (fewer when it is shorter), pinning
 * its size and validators. */
static GByteArray *
probe (UelRemote * r, gsize max, GError ** error)
{
  GByteArray *a = g_byte_array_new ();
  gsize done;

  if (!fetch (r, NULL, 0, a, max, 0, TRUE, NULL, &done, error)) {
    g_byte_array_unref (a);
    return NULL;
  }
  g_assert (a->len == done);
  return a;
}

UelHeader *
uel_remote_header_open (const gchar * url, GError ** error)
{
  UelRemote *r = remote_new (url, error);
  g_autoptr (GByteArray) head = NULL;
  UelHeader *h = NULL;
  guint64 n, need;

  if (!r)
    return NULL;
  head = probe (r, HEADER_PROBE, error);
  if (!head)
    goto out;
  if (!uel_header_check_length (r->name, head->data, head->len, r->size, &n,
          error))
    goto out;
  need = 8 + n;
  if (need > head->len) {
    /* a header longer than the probe: one more request for the rest
     * (checked against the size and the 100 MB limit above) */
    gsize have = head->len;

    g_byte_array_set_size (head, (guint) need);
    if (!uel_remote_read (r, head->data + have, (gsize) need - have, have,
            NULL, error))
      goto out;
  }
  h = uel_header_new_remote (r, (const gchar *) head->data + 8, n, error);
out:
  uel_remote_unref (r);
  return h;
}

gchar *
uel_remote_fetch_small (const gchar * url, gsize max, gsize * len,
    gchar ** name, GError ** error)
{
  UelRemote *r = remote_new (url, error);
  GByteArray *a;

  if (!r)
    return NULL;
  *name = g_strdup (r->name);
  /* one byte more than allowed tells a file over the limit */
  a = probe (r, max + 1, error);
  if (a && a->len > max) {
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_INDEX,
        "%s: the index is %" G_GUINT64_FORMAT " bytes, larger than the limit "
        "of %" G_GSIZE_FORMAT, r->name, r->size, max);
    g_clear_pointer (&a, g_byte_array_unref);
  }
  uel_remote_unref (r);
  if (!a)
    return NULL;
  *len = a->len;
  g_byte_array_append (a, (const guint8 *) "", 1);
  return (gchar *) g_byte_array_free (a, FALSE);
}

gchar *
uel_url_sibling (const gchar * url, const gchar * file, GError ** error)
{
  CURLU *u;
  char *path = NULL, *out = NULL;
  g_autofree gchar *escaped = g_uri_escape_string (file, NULL, FALSE);
  g_autofree gchar *new_path = NULL;
  gchar *res = NULL;
  const gchar *slash;

  if (g_ascii_strncasecmp (url, "s3://", 5) == 0) {
    /* a key, not a URL path: the shard's key shares the index's prefix */
    slash = strrchr (url + 5, '/');
    if (!slash) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
          "%s: not an s3://BUCKET/KEY location", url);
      return NULL;
    }
    return g_strdup_printf ("%.*s/%s", (gint) (slash - url), url, file);
  }
  u = curl_url ();
  if (!u || curl_url_set (u, CURLUPART_URL, url, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
    g_autofree gchar *name = uel_url_redact (url);
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "%s: not a valid URL", name);
    goto out;
  }
  slash = strrchr (path, '/');
  new_path = g_strdup_printf ("%.*s/%s", slash ? (gint) (slash - path) : 0,
      path, escaped);
  if (curl_url_set (u, CURLUPART_PATH, new_path, 0) != CURLUE_OK
      || curl_url_set (u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_URL, &out, 0) != CURLUE_OK) {
    g_autofree gchar *name = uel_url_redact (url);
    g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_ARGUMENT,
        "%s: cannot make the URL of %s beside it", name, file);
    goto out;
  }
  res = g_strdup (out);
out:
  curl_free (path);
  curl_free (out);
  curl_url_cleanup (u);
  return res;
}

#else /* !HAVE_CURL */

struct _UelRemote
{
  gint ref_count;
};

static gboolean
not_built (const gchar * url, GError ** error)
{
  g_autofree gchar *name = uel_url_redact (url);

  g_set_error (error, UEL_ERROR, UEL_ERROR_IO, "%s: gst-uel was not built "
      "with HTTP support (libcurl); only local files can be read", name);
  return FALSE;
}

UelRemote *
uel_remote_ref (UelRemote * remote)
{
  return remote;
}

void
uel_remote_unref (UelRemote * remote)
{
}

const gchar *
uel_remote_get_name (UelRemote * remote)
{
  return "";
}

guint64
uel_remote_get_size (UelRemote * remote)
{
  return 0;
}

guint64
uel_remote_get_bytes_fetched (UelRemote * remote)
{
  return 0;
}

gboolean
uel_remote_readv (UelRemote * remote, const struct iovec * iov, gint iovcnt,
    gsize len, guint64 offset, const gint * cancel, gsize * done,
    GError ** error)
{
  *done = 0;
  return not_built ("", error);
}

gboolean
uel_remote_read (UelRemote * remote, gpointer dst, gsize len, guint64 offset,
    const gint * cancel, GError ** error)
{
  return not_built ("", error);
}

UelHeader *
uel_remote_header_open (const gchar * url, GError ** error)
{
  not_built (url, error);
  return NULL;
}

gchar *
uel_remote_fetch_small (const gchar * url, gsize max, gsize * len,
    gchar ** name, GError ** error)
{
  *name = uel_url_redact (url);
  not_built (url, error);
  return NULL;
}

gchar *
uel_url_sibling (const gchar * url, const gchar * file, GError ** error)
{
  not_built (url, error);
  return NULL;
}

#endif /* HAVE_CURL */
