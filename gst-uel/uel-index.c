/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 *
 * Sharded checkpoints: a `model.safetensors.index.json` read strictly,
 * and one header made of its shards' (see uel_header_open()).
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "uel-error.h"
#include "uel-header-private.h"
#include "uel-http-private.h"
#include "uel-io.h"
#include "uel-json-private.h"

static gboolean
shard_name_ok (const gchar * name)
{
  return name[0] != '\0' && strchr (name, '/') == NULL
      && strcmp (name, ".") != 0 && strcmp (name, "..") != 0
      && !g_path_is_absolute (name);
}

static gboolean
index_error (GError ** error, const gchar * path, const gchar * what)
{
  g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_INDEX, "%s: %s", path,
      what);
  return FALSE;
}

UelHeader *
uel_index_open (const gchar * location, GError ** error)
{
  const gchar *path = location;
  g_autofree gchar *name = NULL;        /* a URL for messages */
  gsize json_len;
  g_autoptr (UelHeader) h = NULL;
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GPtrArray) shard_names = NULL;
  g_autoptr (GHashTable) shard_of = NULL;       /* shard name -> index + 1 */
  g_autoptr (GList) members = NULL;
  g_autofree gchar *json = NULL;
  g_autofree gchar *dir = NULL;
  JsonObject *top, *map, *meta = NULL;
  JsonNode *meta_node;
  struct stat st;
  gsize bad;
  gint fd = -1;

  if (uel_location_is_url (location)) {
    gsize got = 0;

    json = uel_remote_fetch_small (location, UEL_MAX_HEADER_SIZE, &got,
        &name, error);
    if (!json)
      return NULL;
    path = name;
    json_len = got;
  } else {
    fd = uel_open_readonly (path, 0, error);
    if (fd < 0)
      return NULL;
    if (!uel_check_regular (fd, path, &st, error))
      goto fail_fd;
    if ((guint64) st.st_size > UEL_MAX_HEADER_SIZE) {
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_INDEX,
          "%s: the index is %" G_GUINT64_FORMAT " bytes, larger than the "
          "limit of %" G_GUINT64_FORMAT, path, (guint64) st.st_size,
          UEL_MAX_HEADER_SIZE);
      goto fail_fd;
    }
    json_len = (gsize) st.st_size;
    json = g_malloc (json_len + 1);
    if (!uel_pread_full (fd, json, json_len, 0, path, error))
      goto fail_fd;
    json[json_len] = '\0';
    close (fd);
  }

  if (!uel_utf8_validate (json, json_len, &bad)) {
    index_error (error, path, "the index is not valid UTF-8");
    return NULL;
  }
  root = uel_json_parse (json, json_len, TRUE,
      UEL_ERROR_INVALID_INDEX, error);
  if (!root) {
    g_prefix_error (error, "%s: the index is not strict JSON: ", path);
    return NULL;
  }
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    index_error (error, path, "the index is not a JSON object");
    return NULL;
  }
  top = json_node_get_object (root);
  if (!json_object_has_member (top, "weight_map")
      || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (top, "weight_map"))) {
    index_error (error, path, "the index has no \"weight_map\" object");
    return NULL;
  }
  map = json_object_get_object_member (top, "weight_map");
  /* a header of no file at all would be a checkpoint of nothing: refused,
   * so that every header has a file 0 (found by fuzz/fuzz-index.c) */
  if (json_object_get_size (map) == 0) {
    index_error (error, path, "the index's \"weight_map\" is empty");
    return NULL;
  }
  meta_node = json_object_get_member (top, "metadata");
  if (meta_node && JSON_NODE_HOLDS_OBJECT (meta_node))
    meta = json_node_get_object (meta_node);
  else if (meta_node && !JSON_NODE_HOLDS_NULL (meta_node)) {
    index_error (error, path, "the index's \"metadata\" is not an object");
    return NULL;
  }

  h = uel_header_new_empty (path);
  h->sharded = TRUE;
  if (name)
    h->index_bytes = json_len;
  h->shards = g_ptr_array_new_with_free_func (
      (GDestroyNotify) uel_header_unref);
  dir = g_path_get_dirname (path);

  /* the shards, in the order of their names */
  shard_names = g_ptr_array_new ();
  shard_of = g_hash_table_new (g_str_hash, g_str_equal);
  members = json_object_get_members (map);
  for (GList * l = members; l; l = l->next) {
    JsonNode *v = json_object_get_member (map, l->data);
    const gchar *shard;

    if (!JSON_NODE_HOLDS_VALUE (v)
        || json_node_get_value_type (v) != G_TYPE_STRING) {
      g_autofree gchar *q = uel_quote (l->data, strlen (l->data));
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_INDEX,
          "%s: weight_map entry %s is not a file name", path, q);
      return NULL;
    }
    shard = json_node_get_string (v);
    if (!shard_name_ok (shard)) {
      g_autofree gchar *q = uel_quote (shard, strlen (shard));
      g_set_error (error, UEL_ERROR, UEL_ERROR_INVALID_SHARD_PATH,
          "%s: shard %s must be a plain file name in the index's folder "
          "(no absolute path, no '/', no '..')", path, q);
      return NULL;
    }
    if (!g_hash_table_contains (shard_of, shard)) {
      g_hash_table_insert (shard_of, (gpointer) shard, GUINT_TO_POINTER (1));
      g_ptr_array_add (shard_names, (gpointer) shard);
    }
  }
  g_ptr_array_sort (shard_names, uel_compare_string_ptrs);

  for (guint s = 0; s < shard_names->len; s++) {
    const gchar *shard = g_ptr_array_index (shard_names, s);
    g_autofree gchar *shard_path = NULL;
    UelHeader *sh;
    UelFile file;

    g_hash_table_insert (shard_of, (gpointer) shard, GUINT_TO_POINTER (s + 1));
    if (name) {
      /* a remote index: its shards are beside it on the server */
      g_autofree gchar *url = uel_url_sibling (location, shard, error);

      sh = url ? uel_remote_header_open (url, error) : NULL;
    } else {
      shard_path = g_build_filename (dir, shard, NULL);
      sh = uel_header_open_single (shard_path, error);
    }
    if (!sh) {
      g_prefix_error (error, "%s: shard %s: ", path, shard);
      return NULL;
    }
    g_ptr_array_add (h->shards, sh);
    file = g_array_index (sh->files, UelFile, 0);
    file.path = g_strdup (shard_path ? shard_path : file.path);
    if (file.remote)
      uel_remote_ref (file.remote);
    g_array_append_val (h->files, file);
  }

  /* every mapped tensor must exist in its shard */
  for (GList * l = members; l; l = l->next) {
    const gchar *shard = json_object_get_string_member (map, l->data);
    guint s = GPOINTER_TO_UINT (g_hash_table_lookup (shard_of, shard)) - 1;

    if (!uel_header_lookup (g_ptr_array_index (h->shards, s), l->data, NULL)) {
      g_autofree gchar *q = uel_quote (l->data, strlen (l->data));
      g_set_error (error, UEL_ERROR, UEL_ERROR_SHARD_MISSING_TENSOR,
          "%s: tensor %s is mapped to shard '%s' which does not contain it",
          path, q, shard);
      return NULL;
    }
  }

  /* the logical table: shard by shard, each in file order; tensors of a
   * shard that the index does not map there are not part of it */
  for (guint s = 0; s < h->shards->len; s++) {
    UelHeader *sh = g_ptr_array_index (h->shards, s);

    for (guint i = 0; i < sh->tensors->len; i++) {
      UelTensorInfo info = g_array_index (sh->tensors, UelTensorInfo, i);
      JsonNode *v = json_object_get_member (map, info.name);

      if (!v || strcmp (json_node_get_string (v),
              g_ptr_array_index (shard_names, s)) != 0)
        continue;
      info.file_index = s;
      g_hash_table_insert (h->by_name, (gpointer) info.name,
          GUINT_TO_POINTER (h->tensors->len + 1));
      g_array_append_val (h->tensors, info);
      h->total_bytes += info.n_bytes;
    }
  }

  if (meta) {
    g_autoptr (GList) keys = json_object_get_members (meta);

    for (GList * l = keys; l; l = l->next) {
      JsonNode *v = json_object_get_member (meta, l->data);
      gchar *text;

      if (JSON_NODE_HOLDS_VALUE (v)
          && json_node_get_value_type (v) == G_TYPE_STRING)
        text = g_strdup (json_node_get_string (v));
      else
        text = json_to_string (v, FALSE);
      g_hash_table_insert (h->metadata, g_strdup (l->data), text);
    }
  }
  return g_steal_pointer (&h);

fail_fd:
  if (fd >= 0)
    close (fd);
  return NULL;
}
