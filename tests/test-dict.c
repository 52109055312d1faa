/* gst-uel: dictionaries in 1-D U8 tensors (uel-dict, ueldictdecode) and
 * uelsrc's dtype/rank selection
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <gst/base/gstbasetransform.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test-utils.h"

/* ------------------------------------------------------------------ */
/* helpers */

#define assert_contains(s, sub) G_STMT_START {                              \
    const gchar *_s = (s), *_sub = (sub);                                   \
    if (strstr (_s, _sub) == NULL)                                          \
      g_error ("\"%s\" does not contain \"%s\"", _s, _sub);                 \
  } G_STMT_END

static JsonNode *
parse_ok (const gchar * name, const gchar * text)
{
  GError *err = NULL;
  JsonNode *node = uel_dict_from_bytes (name, (const guint8 *) text,
      strlen (text), &err);

  g_assert_no_error (err);
  g_assert_nonnull (node);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
  return node;
}

static void
assert_parse_fails (const gchar * text, gsize len, gint code,
    const gchar * message)
{
  GError *err = NULL;
  JsonNode *node = uel_dict_from_bytes ("t", (const guint8 *) text, len,
      &err);

  g_assert_null (node);
  g_assert_error (err, UEL_ERROR, code);
  g_assert_true (g_str_has_prefix (err->message, "tensor 't': "));
  if (message)
    g_assert_cmpstr (err->message, ==, message);
  g_error_free (err);
}

/* writes, reads back, and checks that the tree is the same */
static GBytes *
round_trip (JsonNode * node)
{
  GError *err = NULL;
  GBytes *bytes = uel_dict_to_bytes (node, &err);
  JsonNode *back;

  g_assert_no_error (err);
  g_assert_nonnull (bytes);
  back = uel_dict_from_bytes ("rt", g_bytes_get_data (bytes, NULL),
      g_bytes_get_size (bytes), &err);
  g_assert_no_error (err);
  g_assert_true (json_node_equal (node, back));
  json_node_unref (back);
  return bytes;
}

#define assert_bytes(bytes, literal)                                        \
  g_assert_cmpmem (g_bytes_get_data ((bytes), NULL),                        \
      g_bytes_get_size (bytes), (literal), sizeof (literal) - 1)

static JsonObject *
obj (JsonNode * node)
{
  return json_node_get_object (node);
}

/* ------------------------------------------------------------------ */
/* library: round trips */

static void
test_round_trip_nested (void)
{
  JsonNode *node = parse_ok ("n",
      "{\"a\": {\"b\": {\"c\": [1, [2, [3, {\"d\": []}]], {}]}}, "
      "\"e\": [[], [[]], {\"f\": {\"g\": \"h\"}}]}");
  GBytes *bytes = round_trip (node);
  JsonArray *c;

  assert_bytes (bytes,
      "{\"a\":{\"b\":{\"c\":[1,[2,[3,{\"d\":[]}]],{}]}},"
      "\"e\":[[],[[]],{\"f\":{\"g\":\"h\"}}]}");
  c = json_object_get_array_member (json_object_get_object_member
      (json_object_get_object_member (obj (node), "a"), "b"), "c");
  g_assert_cmpuint (json_array_get_length (c), ==, 3);
  g_assert_cmpint (json_array_get_int_element (c, 0), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member
          (json_array_get_object_element (json_object_get_array_member (obj
                      (node), "e"), 2), "f"), "g"), ==, "h");
  g_bytes_unref (bytes);
  json_node_unref (node);
}

static void
test_round_trip_unicode (void)
{
  /* the same strings escaped (as Python's json.dumps writes them) and raw */
  JsonNode *esc = parse_ok ("u",
      "{\"caf\\u00e9\": \"\\u65e5\\u672c \\ud83d\\ude00\", "
      "\"ctl\": \"\\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u0001 \\u007f\"}");
  JsonNode *raw = parse_ok ("u",
      "{\"caf\xc3\xa9\":\"\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\","
      "\"ctl\":\"\\\"q\\\" \\\\ / \\b\\f\\n\\r\\t \\u0001 \x7f\"}");
  GBytes *bytes;

  g_assert_cmpstr (json_object_get_string_member (obj (esc), "caf\xc3\xa9"),
      ==, "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
  g_assert_cmpstr (json_object_get_string_member (obj (esc), "ctl"), ==,
      "\"q\" \\ / \b\f\n\r\t \x01 \x7f");
  g_assert_true (json_node_equal (esc, raw));

  /* we write UTF-8 as it is and escape only what JSON requires */
  bytes = round_trip (esc);
  assert_bytes (bytes,
      "{\"caf\xc3\xa9\":\"\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\","
      "\"ctl\":\"\\\"q\\\" \\\\ / \\b\\f\\n\\r\\t \\u0001 \x7f\"}");
  g_bytes_unref (bytes);
  json_node_unref (esc);
  json_node_unref (raw);
}

static void
test_round_trip_numbers (void)
{
  JsonNode *node = parse_ok ("n",
      "{\"p53\": 9007199254740993, \"m53\": -9007199254740993, "
      "\"max\": 9223372036854775807, \"min\": -9223372036854775808, "
      "\"zero\": 0, \"neg0\": -0, \"f\": 0.1, \"g\": -2.5, \"e1\": 1e-05, "
      "\"e2\": 3E+100, \"e3\": 6.02214076e23, \"e4\": -1.5e-300, "
      "\"big\": 18446744073709551616, \"int_e\": 1e2}");
  JsonObject *o = obj (node);
  GBytes *bytes;
  JsonNode *back;
  GError *err = NULL;

  /* integers in gint64's range stay exact, beyond 2^53 too */
  g_assert_cmpint (json_object_get_int_member (o, "p53"), ==,
      G_GINT64_CONSTANT (9007199254740993));
  g_assert_cmpint (json_object_get_int_member (o, "m53"), ==,
      G_GINT64_CONSTANT (-9007199254740993));
  g_assert_cmpint (json_object_get_int_member (o, "max"), ==, G_MAXINT64);
  g_assert_cmpint (json_object_get_int_member (o, "min"), ==, G_MININT64);
  g_assert_cmpint (json_node_get_value_type (json_object_get_member (o,
              "p53")), ==, G_TYPE_INT64);
  g_assert_cmpint (json_object_get_int_member (o, "zero"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (o, "neg0"), ==, 0);
  /* fractions and exponents are doubles, read exactly as strtod does */
  g_assert_cmpint (json_node_get_value_type (json_object_get_member (o,
              "f")), ==, G_TYPE_DOUBLE);
  g_assert_true (json_object_get_double_member (o, "f") == 0.1);
  g_assert_true (json_object_get_double_member (o, "g") == -2.5);
  g_assert_true (json_object_get_double_member (o, "e1") == 1e-05);
  g_assert_true (json_object_get_double_member (o, "e2") == 3e100);
  g_assert_true (json_object_get_double_member (o, "e3") == 6.02214076e23);
  g_assert_true (json_object_get_double_member (o, "e4") == -1.5e-300);
  g_assert_true (json_object_get_double_member (o, "int_e") == 100.0);
  /* beyond gint64: the nearest double, as json-glib stores numbers */
  g_assert_cmpint (json_node_get_value_type (json_object_get_member (o,
              "big")), ==, G_TYPE_DOUBLE);
  g_assert_true (json_object_get_double_member (o, "big") ==
      18446744073709551616.0);

  bytes = round_trip (node);
  assert_bytes (bytes,
      "{\"p53\":9007199254740993,\"m53\":-9007199254740993,"
      "\"max\":9223372036854775807,\"min\":-9223372036854775808,"
      "\"zero\":0,\"neg0\":0,\"f\":0.1,\"g\":-2.5,"
      "\"e1\":1e-05,\"e2\":3e+100,"
      "\"e3\":6.02214076e+23,\"e4\":-1.5e-300,"
      "\"big\":1.8446744073709552e+19,\"int_e\":100.0}");
  /* every double reads back bit for bit (Python's repr(): the shortest
   * text that does) */
  back = uel_dict_from_bytes ("n", g_bytes_get_data (bytes, NULL),
      g_bytes_get_size (bytes), &err);
  g_assert_no_error (err);
  g_assert_true (json_object_get_double_member (obj (back), "f") == 0.1);
  g_assert_true (json_object_get_double_member (obj (back), "e1") == 1e-05);
  g_assert_true (json_object_get_double_member (obj (back), "e2") == 3e100);
  json_node_unref (back);
  g_bytes_unref (bytes);
  json_node_unref (node);

  /* doubles laid out as Python writes them */
  node = parse_ok ("d", "{\"a\": [1e16, 1e15, 0.0001, 0.00001, -0.0, 5e-324, "
      "1.7976931348623157e308, 0.30000000000000004, 9007199254740992.0, "
      "123456789012.0, -1.5]}");
  bytes = round_trip (node);
  assert_bytes (bytes,
      "{\"a\":[1e+16,1000000000000000.0,0.0001,1e-05,-0.0,5e-324,"
      "1.7976931348623157e+308,0.30000000000000004,9007199254740992.0,"
      "123456789012.0,-1.5]}");
  g_bytes_unref (bytes);
  json_node_unref (node);
}

static void
test_round_trip_literals (void)
{
  JsonNode *node = parse_ok ("l",
      " \t\r\n{ \"t\" : true , \"f\": false, \"n\": null, \"o\": {}, "
      "\"a\": [true, false, null] } \n");
  JsonNode *empty = parse_ok ("e", "{}");
  JsonObject *o = obj (node);
  GBytes *bytes;

  g_assert_true (json_object_get_boolean_member (o, "t"));
  g_assert_false (json_object_get_boolean_member (o, "f"));
  g_assert_true (json_object_get_null_member (o, "n"));
  g_assert_cmpuint (json_object_get_size (json_object_get_object_member (o,
              "o")), ==, 0);
  g_assert_cmpuint (json_object_get_size (obj (empty)), ==, 0);

  bytes = round_trip (node);
  assert_bytes (bytes,
      "{\"t\":true,\"f\":false,\"n\":null,\"o\":{},"
      "\"a\":[true,false,null]}");
  g_bytes_unref (bytes);
  bytes = round_trip (empty);
  assert_bytes (bytes,
      "{}");
  g_bytes_unref (bytes);
  json_node_unref (node);
  json_node_unref (empty);
}

static void
test_round_trip_large (void)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  JsonNode *node;
  GBytes *bytes;
  gchar key[32];

  /* a 1 MiB-plus provenance-like document */
  json_builder_begin_object (b);
  for (guint i = 0; i < 8192; i++) {
    g_snprintf (key, sizeof key, "layer.%05u", i);
    json_builder_set_member_name (b, key);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "scale");
    json_builder_add_double_value (b, 1.0 / (i + 3));
    json_builder_set_member_name (b, "zero");
    json_builder_add_int_value (b, (gint64) i * G_GINT64_CONSTANT (1000003));
    json_builder_set_member_name (b, "sha");
    json_builder_add_string_value (b, "0123456789abcdef0123456789abcdef"
        "0123456789abcdef0123456789abcdef");
    json_builder_end_object (b);
  }
  json_builder_end_object (b);
  node = json_builder_get_root (b);

  bytes = round_trip (node);
  g_assert_cmpuint (g_bytes_get_size (bytes), >, 1 << 20);
  g_assert_cmpuint (g_bytes_get_size (bytes), <, UEL_DICT_MAX_SIZE);
  g_bytes_unref (bytes);
  json_node_unref (node);
}

/* ------------------------------------------------------------------ */
/* library: the seed's JSON, and Python reading ours */

/* json.dumps() of the seed's dict_to_tensor(), bytes as Python wrote them:
 * {"name": "llama-q4", "quant": {"bits": 4, "group_size": 128,
 *  "scales": [0.5, -1.25e-05, 3e+100], "sym": True, "zero": None},
 *  "unicode": "café 日本 😀 \"q\" \\ \n\t", "big": 2**53 + 1,
 *  "neg": -2**63, "max": 2**63 - 1, "empty": {}, "list": [],
 *  "pi": math.pi} */
static const gchar seed_json[] =
    "{\"name\": \"llama-q4\", \"quant\": {\"bits\": 4, \"group_size\": 128, "
    "\"scales\": [0.5, -1.25e-05, 3e+100], \"sym\": true, \"zero\": null}, "
    "\"unicode\": \"caf\\u00e9 \\u65e5\\u672c \\ud83d\\ude00 \\\"q\\\" "
    "\\\\ \\n\\t\", \"big\": 9007199254740993, "
    "\"neg\": -9223372036854775808, \"max\": 9223372036854775807, "
    "\"empty\": {}, \"list\": [], \"pi\": 3.141592653589793}";

static void
test_reads_python_json (void)
{
  JsonNode *node = parse_ok ("seed", seed_json);
  JsonObject *o = obj (node), *q;
  JsonArray *scales;
  GList *members;

  g_assert_cmpuint (json_object_get_size (o), ==, 9);
  members = json_object_get_members (o);
  g_assert_cmpstr (members->data, ==, "name");
  g_list_free (members);
  g_assert_cmpstr (json_object_get_string_member (o, "name"), ==, "llama-q4");
  q = json_object_get_object_member (o, "quant");
  g_assert_cmpint (json_object_get_int_member (q, "bits"), ==, 4);
  g_assert_cmpint (json_object_get_int_member (q, "group_size"), ==, 128);
  scales = json_object_get_array_member (q, "scales");
  g_assert_cmpuint (json_array_get_length (scales), ==, 3);
  g_assert_true (json_array_get_double_element (scales, 0) == 0.5);
  g_assert_true (json_array_get_double_element (scales, 1) == -1.25e-05);
  g_assert_true (json_array_get_double_element (scales, 2) == 3e100);
  g_assert_true (json_object_get_boolean_member (q, "sym"));
  g_assert_true (json_object_get_null_member (q, "zero"));
  g_assert_cmpstr (json_object_get_string_member (o, "unicode"), ==,
      "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \"q\" \\ \n\t");
  g_assert_cmpint (json_object_get_int_member (o, "big"), ==,
      G_GINT64_CONSTANT (9007199254740993));
  g_assert_cmpint (json_object_get_int_member (o, "neg"), ==, G_MININT64);
  g_assert_cmpint (json_object_get_int_member (o, "max"), ==, G_MAXINT64);
  g_assert_cmpuint (json_object_get_size (json_object_get_object_member (o,
              "empty")), ==, 0);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (o,
              "list")), ==, 0);
  g_assert_true (json_object_get_double_member (o, "pi") == G_PI);
  json_node_unref (node);
}

/* What we write for the seed's dictionary: the bytes of Python's
 * json.dumps(d, separators=(",", ":"), ensure_ascii=False) */
static const gchar our_json[] =
    "{\"name\":\"llama-q4\",\"quant\":{\"bits\":4,\"group_size\":128,"
    "\"scales\":[0.5,-1.25e-05,3e+100],"
    "\"sym\":true,\"zero\":null},"
    "\"unicode\":\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 "
    "\\\"q\\\" \\\\ \\n\\t\",\"big\":9007199254740993,"
    "\"neg\":-9223372036854775808,\"max\":9223372036854775807,"
    "\"empty\":{},\"list\":[],\"pi\":3.141592653589793}";

static void
test_writes_fixed_bytes (void)
{
  JsonNode *node = parse_ok ("seed", seed_json);
  GBytes *bytes = round_trip (node);

  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
      our_json, sizeof our_json - 1);
  g_bytes_unref (bytes);
  json_node_unref (node);
}

static void
test_python_reads_ours (void)
{
  g_autofree gchar *python = g_find_program_in_path ("python3");
  g_autofree gchar *path = uel_test_path ("ours.json");
  g_autofree gchar *out = NULL;
  g_autofree gchar *errout = NULL;
  g_autofree gchar *expected = NULL;
  GError *err = NULL;
  gint status = 0;
  const gchar *argv[] = { NULL, "-c",
    "import json, sys\n"
    "d = json.loads(open(sys.argv[1], 'rb').read())\n"
    "sys.stdout.write(json.dumps(d) + '\\n')\n"
    "sys.stdout.write(json.dumps(d, separators=(',', ':'),"
    " ensure_ascii=False))\n", NULL, NULL
  };

  if (!python) {
    g_test_skip ("python3 is not installed");
    return;
  }
  uel_test_write_bytes (path, our_json, sizeof our_json - 1);
  argv[0] = python;
  argv[3] = path;
  g_spawn_sync (NULL, (gchar **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
      &out, &errout, &status, &err);
  g_assert_no_error (err);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("python3 failed: %s", errout);
  /* the same values, and the same bytes as Python's own compact form */
  expected = g_strconcat (seed_json, "\n", our_json, NULL);
  g_assert_cmpstr (out, ==, expected);
}

/* ------------------------------------------------------------------ */
/* library: errors */

static void
test_rejects_not_utf8 (void)
{
  assert_parse_fails ("{\"a\": \"\xff\"}", 11, UEL_ERROR_DICT_NOT_UTF8,
      "tensor 't': not UTF-8 text: invalid byte 0xff at offset 7");
  /* an encoded surrogate, and a truncated sequence at the end */
  assert_parse_fails ("{\"a\": \"\xed\xa0\x80\"}", 13,
      UEL_ERROR_DICT_NOT_UTF8,
      "tensor 't': not UTF-8 text: invalid byte 0xed at offset 7");
  assert_parse_fails ("{}\xe6\x97", 4, UEL_ERROR_DICT_NOT_UTF8,
      "tensor 't': not UTF-8 text: invalid byte 0xe6 at offset 2");
}

static void
test_rejects_not_json (void)
{
  assert_parse_fails ("{'a': 1}", 8, UEL_ERROR_DICT_NOT_JSON,
      "tensor 't': not JSON: expected a string at byte 1 (''')");
  assert_parse_fails ("", 0, UEL_ERROR_DICT_NOT_JSON,
      "tensor 't': not JSON: expected a value at byte 0 (end of input)");
  assert_parse_fails ("{\"a\": 1,}", 9, UEL_ERROR_DICT_NOT_JSON, NULL);
  assert_parse_fails ("{\"a\": 01}", 9, UEL_ERROR_DICT_NOT_JSON, NULL);
  assert_parse_fails ("{\"a\": NaN}", 10, UEL_ERROR_DICT_NOT_JSON, NULL);
  assert_parse_fails ("{\"a\": 1} x", 10, UEL_ERROR_DICT_NOT_JSON,
      "tensor 't': not JSON: trailing characters after the JSON value at "
      "byte 9 ('x')");
  assert_parse_fails ("{\"a\": 1", 7, UEL_ERROR_DICT_NOT_JSON, NULL);
  /* a NUL byte is UTF-8 but not JSON */
  assert_parse_fails ("{}\0", 3, UEL_ERROR_DICT_NOT_JSON, NULL);
  assert_parse_fails ("{\"a\": \"\\u0000\"}", 15, UEL_ERROR_DICT_NOT_JSON,
      NULL);
  /* beyond a double: it would decode to infinity, which cannot be written
   * back as JSON (fuzz/regressions/dict/number-beyond-double-range) */
  assert_parse_fails ("{\"a\": 2e308}", 12, UEL_ERROR_DICT_NOT_JSON,
      "tensor 't': not JSON: number out of the range of a double at byte 6 "
      "('2')");
  assert_parse_fails ("{\"a\": -1e999}", 13, UEL_ERROR_DICT_NOT_JSON, NULL);
}

static void
test_rejects_not_object (void)
{
  assert_parse_fails ("[1, 2]", 6, UEL_ERROR_DICT_NOT_OBJECT,
      "tensor 't': the JSON value is an array, not an object");
  assert_parse_fails ("\"s\"", 3, UEL_ERROR_DICT_NOT_OBJECT,
      "tensor 't': the JSON value is a string, not an object");
  assert_parse_fails ("42", 2, UEL_ERROR_DICT_NOT_OBJECT,
      "tensor 't': the JSON value is a number, not an object");
  assert_parse_fails ("null", 4, UEL_ERROR_DICT_NOT_OBJECT,
      "tensor 't': the JSON value is null, not an object");
  assert_parse_fails ("true", 4, UEL_ERROR_DICT_NOT_OBJECT,
      "tensor 't': the JSON value is a boolean, not an object");
}

static gchar *
nested (guint depth)
{
  GString *s = g_string_new ("{\"a\": ");

  for (guint i = 1; i < depth; i++)
    g_string_append_c (s, '[');
  for (guint i = 1; i < depth; i++)
    g_string_append_c (s, ']');
  g_string_append_c (s, '}');
  return g_string_free (s, FALSE);
}

static void
test_rejects_deep_nesting (void)
{
  g_autofree gchar *ok = nested (UEL_DICT_MAX_DEPTH);
  g_autofree gchar *over = nested (UEL_DICT_MAX_DEPTH + 1);
  g_autofree gchar *attack = nested (100000);
  JsonNode *node = parse_ok ("t", ok);

  json_node_unref (node);
  /* the reader stops at the 129th container (byte 6 + 127), whatever
   * follows: 100,000 levels cost what 129 do */
  assert_parse_fails (over, strlen (over), UEL_ERROR_DICT_TOO_DEEP,
      "tensor 't': nesting deeper than 128 levels at byte 133");
  assert_parse_fails (attack, strlen (attack), UEL_ERROR_DICT_TOO_DEEP,
      "tensor 't': nesting deeper than 128 levels at byte 133");
}

static void
test_rejects_too_large (void)
{
  /* calloc'ed pages are never touched: the size is checked first */
  gsize len = UEL_DICT_MAX_SIZE + 1;
  guint8 *big = g_malloc0 (len);
  g_autofree gchar *msg = g_strdup_printf ("tensor 't': %" G_GSIZE_FORMAT
      " bytes, more than the limit of 67108864 bytes for a dictionary", len);

  assert_parse_fails ((const gchar *) big, len, UEL_ERROR_DICT_TOO_LARGE,
      msg);
  g_free (big);
}

static JsonNode *
array_node (JsonArray * a)
{
  JsonNode *n = json_node_new (JSON_NODE_ARRAY);

  json_node_take_array (n, a);
  return n;
}

static void
test_writer_rejects (void)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  JsonNode *node, *deep;
  GError *err = NULL;
  gchar *bad_utf8 = g_strdup ("x\xff");
  JsonObject *o;

  node = array_node (json_array_new ());
  g_assert_null (uel_dict_to_bytes (node, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_DICT_NOT_OBJECT);
  g_assert_cmpstr (err->message, ==,
      "dictionary: the JSON value is an array, not an object");
  g_clear_error (&err);
  json_node_unref (node);

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "nan");
  json_builder_add_double_value (b, NAN);
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  g_assert_null (uel_dict_to_bytes (node, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_DICT_NOT_JSON);
  g_clear_error (&err);
  json_object_set_double_member (obj (node), "nan", INFINITY);
  g_assert_null (uel_dict_to_bytes (node, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_DICT_NOT_JSON);
  g_clear_error (&err);
  json_object_remove_member (obj (node), "nan");

  o = obj (node);
  json_object_set_string_member (o, "s", bad_utf8);
  g_assert_null (uel_dict_to_bytes (node, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_DICT_NOT_UTF8);
  g_clear_error (&err);
  json_object_remove_member (o, "s");
  json_object_set_null_member (o, bad_utf8);
  g_assert_null (uel_dict_to_bytes (node, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_DICT_NOT_UTF8);
  g_clear_error (&err);
  json_object_remove_member (o, bad_utf8);

  /* 128 levels are written, 129 are not: what we write, we read */
  deep = array_node (json_array_new ());
  for (guint i = 2; i < UEL_DICT_MAX_DEPTH; i++) {
    JsonArray *a = json_array_new ();
    json_array_add_element (a, deep);
    deep = array_node (a);
  }
  json_object_set_member (o, "deep", json_node_ref (deep));
  g_bytes_unref (round_trip (node));
  {
    JsonArray *a = json_array_new ();
    json_array_add_element (a, deep);
    json_object_set_member (o, "deep", array_node (a));
  }
  g_assert_null (uel_dict_to_bytes (node, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_DICT_TOO_DEEP);
  g_assert_cmpstr (err->message, ==,
      "dictionary: nesting deeper than 128 levels");
  g_clear_error (&err);

  json_node_unref (node);
  g_free (bad_utf8);
}

/* ------------------------------------------------------------------ */
/* library: buffers and the meta */

typedef struct
{
  gchar *path;
  UelHeader *header;
  const guint8 *data;           /* data section, owned by builder */
  UelTestBuilder *builder;
} Sample;

static const gchar cfg_json[] = "{\"model\": \"tiny\", \"layers\": 2}";
static const gchar quant_json[] =
    "{\"bits\": 4, \"scales\": [0.5, 0.25], \"name\": \"caf\\u00e9\"}";
static const guint8 binary_u8[] = { 253, 254, 255, 0, 1, 2 };

/* w: F32 [2,2]; cfg: U8 dict; img: U8 [2,3]; quant: U8 dict; bin: U8 binary;
 * b: F32 [3]; s: U8 scalar */
static void
sample_init (Sample * s, const gchar * name)
{
  guint8 img[6] = { '{', '}', ' ', ' ', ' ', ' ' };
  g_autofree gchar *cfg_shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]",
      strlen (cfg_json));
  g_autofree gchar *quant_shape = g_strdup_printf ("[%" G_GSIZE_FORMAT "]",
      strlen (quant_json));
  GError *err = NULL;

  s->path = uel_test_path (name);
  s->builder = uel_test_builder_new ();
  uel_test_builder_add (s->builder, "w", "F32", "[2,2]", 16, NULL);
  uel_test_builder_add (s->builder, "cfg", "U8", cfg_shape,
      strlen (cfg_json), cfg_json);
  uel_test_builder_add (s->builder, "img", "U8", "[2,3]", 6, img);
  uel_test_builder_add (s->builder, "quant", "U8", quant_shape,
      strlen (quant_json), quant_json);
  uel_test_builder_add (s->builder, "bin", "U8", "[6]", 6, binary_u8);
  uel_test_builder_add (s->builder, "b", "F32", "[3]", 12, NULL);
  uel_test_builder_add (s->builder, "s", "U8", "[]", 1, "7");
  s->data = uel_test_builder_write (s->builder, s->path, NULL);
  s->header = uel_header_open (s->path, &err);
  g_assert_no_error (err);
}

static void
sample_clear (Sample * s)
{
  uel_header_unref (s->header);
  uel_test_builder_free (s->builder);
  g_free (s->path);
}

/* a buffer holding tensor @index (or a chunk of it), as uelsrc pushes it */
static GstBuffer *
sample_buffer (Sample * s, guint index, guint64 offset, gsize len,
    guint chunk_index, gboolean last)
{
  const UelTensorInfo *t = uel_header_get_tensor (s->header, index);
  GstBuffer *buf;
  UelTensorMeta *m;

  if (len == G_MAXSIZE)
    len = t->n_bytes - offset;
  buf = gst_buffer_new_memdup (s->data + t->data_begin + offset, len);
  m = uel_buffer_add_tensor_meta (buf, s->header, index, index,
      uel_header_get_n_tensors (s->header));
  m->chunk_offset = offset;
  m->chunk_index = chunk_index;
  m->last_chunk = last;
  return buf;
}

static GstBuffer *
sample_whole (Sample * s, guint index)
{
  return sample_buffer (s, index, 0, G_MAXSIZE, 0, TRUE);
}

static void
assert_buffer_fails (GstBuffer * buf, gint code, const gchar * message)
{
  GError *err = NULL;

  g_assert_null (uel_dict_from_buffer (buf, &err));
  g_assert_error (err, UEL_ERROR, code);
  g_assert_cmpstr (err->message, ==, message);
  g_error_free (err);
  gst_buffer_unref (buf);
}

/* the chunk rule every reassembler shares: starts where the last ended,
 * fits the tensor, the last chunk ends it */
static void
test_is_next_chunk (void)
{
  Sample s;
  GstBuffer *buf;
  UelTensorMeta *m;

  sample_init (&s, "next-chunk.safetensors");
  /* tensor 0: 16 bytes */
  buf = sample_buffer (&s, 0, 4, 8, 1, FALSE);
  m = uel_buffer_get_tensor_meta (buf);
  g_assert_true (uel_tensor_meta_is_next_chunk (m, 8, 4));
  g_assert_false (uel_tensor_meta_is_next_chunk (m, 8, 0));
  g_assert_false (uel_tensor_meta_is_next_chunk (m, 8, 5));
  g_assert_true (uel_tensor_meta_is_next_chunk (m, 12, 4));
  g_assert_false (uel_tensor_meta_is_next_chunk (m, 13, 4));
  m->last_chunk = TRUE;
  g_assert_false (uel_tensor_meta_is_next_chunk (m, 8, 4));
  g_assert_true (uel_tensor_meta_is_next_chunk (m, 12, 4));
  m->chunk_offset = 17;
  g_assert_false (uel_tensor_meta_is_next_chunk (m, 0, 17));
  gst_buffer_unref (buf);
  sample_clear (&s);
}

static void
test_from_buffer (void)
{
  Sample s;
  GstBuffer *buf;
  JsonNode *node;
  GError *err = NULL;

  sample_init (&s, "from-buffer.safetensors");

  buf = sample_whole (&s, 1);
  node = uel_dict_from_buffer (buf, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (json_object_get_string_member (obj (node), "model"), ==,
      "tiny");
  g_assert_cmpint (json_object_get_int_member (obj (node), "layers"), ==, 2);
  json_node_unref (node);
  gst_buffer_unref (buf);

  assert_buffer_fails (sample_whole (&s, 0), UEL_ERROR_DICT_NOT_U8,
      "tensor 'w': dtype F32, not U8: a dictionary is stored as UTF-8 bytes");
  assert_buffer_fails (sample_whole (&s, 5), UEL_ERROR_DICT_NOT_U8,
      "tensor 'b': dtype F32, not U8: a dictionary is stored as UTF-8 bytes");
  assert_buffer_fails (sample_whole (&s, 2), UEL_ERROR_DICT_NOT_1D,
      "tensor 'img': shape [2, 3] has 2 dimensions, not 1: a dictionary is "
      "a 1-D tensor of bytes");
  assert_buffer_fails (sample_whole (&s, 6), UEL_ERROR_DICT_NOT_1D,
      "tensor 's': shape [] has 0 dimensions, not 1: a dictionary is "
      "a 1-D tensor of bytes");
  assert_buffer_fails (sample_whole (&s, 4), UEL_ERROR_DICT_NOT_UTF8,
      "tensor 'bin': not UTF-8 text: invalid byte 0xfd at offset 0");
  assert_buffer_fails (sample_buffer (&s, 1, 0, 8, 0, FALSE),
      UEL_ERROR_DICT_CHUNKED,
      "tensor 'cfg': the buffer holds 8 bytes from offset 0 (chunk 0) of 30: "
      "a dictionary is decoded from the whole tensor (assemble the chunks, "
      "or read without chunk-size)");
  assert_buffer_fails (sample_buffer (&s, 1, 24, G_MAXSIZE, 3, TRUE),
      UEL_ERROR_DICT_CHUNKED,
      "tensor 'cfg': the buffer holds 6 bytes from offset 24 (chunk 3) of 30: "
      "a dictionary is decoded from the whole tensor (assemble the chunks, "
      "or read without chunk-size)");
  assert_buffer_fails (gst_buffer_new_memdup ("{}", 2),
      UEL_ERROR_INVALID_ARGUMENT, "the buffer carries no UelTensorMeta: "
      "decode plain bytes with uel_dict_from_bytes()");

  sample_clear (&s);
}

/* A file with one U8 tensor "huge" of @n bytes, "{" and then zeros: a
 * sparse file, so that no test holds its bytes. */
static void
write_huge_file (const gchar * path, guint64 n)
{
  g_autofree gchar *hdr = g_strdup_printf ("{\"huge\":{\"dtype\":\"U8\","
      "\"shape\":[%" G_GUINT64_FORMAT "],\"data_offsets\":[0,%"
      G_GUINT64_FORMAT "]}}", n, n);
  gsize hl = strlen (hdr);
  guint64 le = GUINT64_TO_LE ((guint64) hl);
  FILE *f = fopen (path, "wb");

  g_assert_nonnull (f);
  g_assert_cmpuint (fwrite (&le, 1, 8, f), ==, 8);
  g_assert_cmpuint (fwrite (hdr, 1, hl, f), ==, hl);
  g_assert_cmpuint (fwrite ("{", 1, 1, f), ==, 1);
  g_assert_cmpint (fflush (f), ==, 0);
  g_assert_cmpint (ftruncate (fileno (f), (off_t) (8 + hl + n)), ==, 0);
  g_assert_cmpint (fclose (f), ==, 0);
}

static void
test_check_too_large (void)
{
  g_autofree gchar *path = uel_test_path ("huge-dict.safetensors");
  g_autoptr (UelHeader) h = NULL;
  GstBuffer *buf = gst_buffer_new ();
  UelTensorMeta *m;
  GError *err = NULL;

  /* the check needs only the header */
  write_huge_file (path, UEL_DICT_MAX_SIZE + 1);
  h = uel_header_open (path, &err);
  g_assert_no_error (err);
  m = uel_buffer_add_tensor_meta (buf, h, 0, 0, 1);
  g_assert_false (uel_dict_check_tensor_meta (m, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_DICT_TOO_LARGE);
  g_assert_cmpstr (err->message, ==, "tensor 'huge': 67108865 bytes, more "
      "than the limit of 67108864 bytes for a dictionary");
  g_clear_error (&err);
  g_assert_null (uel_dict_from_buffer (buf, &err));
  g_assert_error (err, UEL_ERROR, UEL_ERROR_DICT_TOO_LARGE);
  g_clear_error (&err);
  gst_buffer_unref (buf);
  g_unlink (path);
}

static void
test_meta (void)
{
  Sample s;
  GstBuffer *buf, *copy, *part;
  JsonNode *node;
  UelDictMeta *m;
  GError *err = NULL;

  sample_init (&s, "meta.safetensors");
  buf = sample_whole (&s, 3);
  node = uel_dict_from_buffer (buf, &err);
  g_assert_no_error (err);
  g_assert_null (uel_buffer_get_dict_meta (buf));
  m = uel_buffer_add_dict_meta (buf, "quant", node);
  g_assert_nonnull (m);
  g_assert_true (json_node_is_immutable (node));
  json_node_unref (node);

  m = uel_buffer_get_dict_meta (buf);
  g_assert_nonnull (m);
  g_assert_cmpstr (m->tensor_name, ==, "quant");
  g_assert_cmpint (json_object_get_int_member (obj (m->dict), "bits"), ==, 4);
  g_assert_cmpstr (json_object_get_string_member (obj (m->dict), "name"), ==,
      "caf\xc3\xa9");

  /* a copy carries the dictionary (the same node), a part does not */
  copy = gst_buffer_copy (buf);
  g_assert_nonnull (uel_buffer_get_dict_meta (copy));
  g_assert_true (uel_buffer_get_dict_meta (copy)->dict == m->dict);
  part = gst_buffer_copy_region (buf, GST_BUFFER_COPY_ALL, 1, 4);
  g_assert_null (uel_buffer_get_dict_meta (part));
  gst_buffer_unref (part);
  gst_buffer_unref (buf);
  g_assert_cmpstr (uel_buffer_get_dict_meta (copy)->tensor_name, ==, "quant");
  gst_buffer_unref (copy);
  sample_clear (&s);
}

/* ------------------------------------------------------------------ */
/* ueldictdecode in a harness */

static gboolean
have_element (const gchar * name)
{
  GstElementFactory *f = gst_element_factory_find (name);

  if (!f) {
    g_test_skip ("element not available");
    return FALSE;
  }
  gst_object_unref (f);
  return TRUE;
}

typedef struct
{
  GstHarness *h;
  GstBus *bus;
} Harness;

static void
harness_init (Harness * hh)
{
  hh->h = gst_harness_new ("ueldictdecode");
  hh->bus = gst_bus_new ();
  gst_element_set_bus (hh->h->element, hh->bus);
  gst_harness_set_src_caps_str (hh->h, UEL_TENSOR_CAPS);
}

static void
harness_clear (Harness * hh)
{
  GstMessage *msg;

  /* nothing left unexamined */
  msg = gst_bus_pop_filtered (hh->bus, GST_MESSAGE_ELEMENT |
      GST_MESSAGE_WARNING | GST_MESSAGE_ERROR);
  if (msg)
    g_error ("unexpected message %" GST_PTR_FORMAT, msg);
  gst_element_set_bus (hh->h->element, NULL);
  gst_object_unref (hh->bus);
  gst_harness_teardown (hh->h);
}

/* the next message of @types; aborts when there is none */
static GstMessage *
pop_message (Harness * hh, GstMessageType types)
{
  GstMessage *msg = gst_bus_pop_filtered (hh->bus, types);

  g_assert_nonnull (msg);
  return msg;
}

static void
assert_dict_message (GstMessage * msg, const gchar * tensor,
    const gchar * json)
{
  const gchar *name = NULL, *text = NULL;

  g_assert_true (uel_dict_message_parse (msg, &name, &text));
  g_assert_cmpstr (name, ==, tensor);
  g_assert_cmpstr (text, ==, json);
  gst_message_unref (msg);
}

/* a warning or error naming @tensor, with @code in its details */
static void
assert_report (GstMessage * msg, GstMessageType type, const gchar * tensor,
    gint code, const gchar * message)
{
  GError *err = NULL;
  const GstStructure *details = NULL;
  gint uel_code = 0;
  g_autofree gchar *prefix = g_strdup_printf ("tensor '%s': ", tensor);

  g_assert_cmpint (GST_MESSAGE_TYPE (msg), ==, type);
  if (type == GST_MESSAGE_WARNING) {
    gst_message_parse_warning (msg, &err, NULL);
    gst_message_parse_warning_details (msg, &details);
  } else {
    gst_message_parse_error (msg, &err, NULL);
    gst_message_parse_error_details (msg, &details);
  }
  g_assert_error (err, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE);
  g_assert_true (g_str_has_prefix (err->message, prefix));
  if (message)
    g_assert_cmpstr (err->message, ==, message);
  g_assert_nonnull (details);
  g_assert_cmpstr (gst_structure_get_string (details, "tensor"), ==, tensor);
  g_assert_true (gst_structure_get_int (details, "uel-error", &uel_code));
  g_assert_cmpint (uel_code, ==, code);
  g_error_free (err);
  gst_message_unref (msg);
}

/* An in-place GstBaseTransform: caps and allocation queries pass through,
 * and a buffer shared elsewhere gets its meta on a new buffer object while
 * the one kept upstream stays unchanged. */
static void
test_element_in_place (void)
{
  Harness hh;
  Sample s;
  GstBuffer *buf, *out;

  if (!have_element ("ueldictdecode"))
    return;
  sample_init (&s, "in-place.safetensors");
  harness_init (&hh);
  g_assert_true (GST_IS_BASE_TRANSFORM (hh.h->element));
  g_assert_true (gst_base_transform_is_in_place (GST_BASE_TRANSFORM
          (hh.h->element)));

  buf = sample_whole (&s, 1);
  g_assert_cmpint (gst_harness_push (hh.h, gst_buffer_ref (buf)), ==,
      GST_FLOW_OK);
  out = gst_harness_pull (hh.h);
  g_assert_true (out != buf);
  g_assert_nonnull (uel_buffer_get_dict_meta (out));
  g_assert_null (uel_buffer_get_dict_meta (buf));
  g_assert_true (gst_buffer_peek_memory (out, 0) ==
      gst_buffer_peek_memory (buf, 0));
  gst_buffer_unref (out);
  gst_buffer_unref (buf);
  gst_message_unref (pop_message (&hh, GST_MESSAGE_ELEMENT));
  harness_clear (&hh);
  sample_clear (&s);
}

/* pushes @buf and checks that the same bytes come out */
static GstBuffer *
push_pull (Harness * hh, GstBuffer * buf)
{
  GstMapInfo in, out;
  GstBuffer *res;
  GstMemory *mem = gst_buffer_get_memory (buf, 0);

  gst_buffer_map (buf, &in, GST_MAP_READ);
  gst_buffer_ref (buf);
  g_assert_cmpint (gst_harness_push (hh->h, buf), ==, GST_FLOW_OK);
  res = gst_harness_pull (hh->h);
  g_assert_nonnull (res);
  gst_buffer_map (res, &out, GST_MAP_READ);
  g_assert_cmpmem (out.data, out.size, in.data, in.size);
  /* the very memory, not a copy of the bytes */
  g_assert_true (gst_buffer_peek_memory (res, 0) == mem);
  gst_buffer_unmap (res, &out);
  gst_buffer_unmap (buf, &in);
  gst_buffer_unref (buf);
  gst_memory_unref (mem);
  g_assert_nonnull (uel_buffer_get_tensor_meta (res));
  return res;
}

static void
test_element_decodes_default_selection (void)
{
  Harness hh;
  Sample s;
  GstBuffer *out;
  UelDictMeta *m;

  if (!have_element ("ueldictdecode"))
    return;
  sample_init (&s, "harness.safetensors");
  harness_init (&hh);

  /* F32: passes untouched and unseen */
  out = push_pull (&hh, sample_whole (&s, 0));
  g_assert_null (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);

  out = push_pull (&hh, sample_whole (&s, 1));
  m = uel_buffer_get_dict_meta (out);
  g_assert_nonnull (m);
  g_assert_cmpstr (m->tensor_name, ==, "cfg");
  g_assert_cmpstr (json_object_get_string_member (obj (m->dict), "model"),
      ==, "tiny");
  gst_buffer_unref (out);
  assert_dict_message (pop_message (&hh, GST_MESSAGE_ELEMENT), "cfg",
      cfg_json);

  /* 2-D and 0-D U8 tensors are not selected by default */
  out = push_pull (&hh, sample_whole (&s, 2));
  g_assert_null (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);
  out = push_pull (&hh, sample_whole (&s, 6));
  g_assert_null (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);

  out = push_pull (&hh, sample_whole (&s, 3));
  m = uel_buffer_get_dict_meta (out);
  g_assert_cmpstr (m->tensor_name, ==, "quant");
  g_assert_cmpstr (json_object_get_string_member (obj (m->dict), "name"),
      ==, "caf\xc3\xa9");
  gst_buffer_unref (out);
  assert_dict_message (pop_message (&hh, GST_MESSAGE_ELEMENT), "quant",
      quant_json);

  /* binary U8 (the conformance vector's bytes): a warning, and on */
  out = push_pull (&hh, sample_whole (&s, 4));
  g_assert_null (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);
  assert_report (pop_message (&hh, GST_MESSAGE_WARNING), GST_MESSAGE_WARNING,
      "bin", UEL_ERROR_DICT_NOT_UTF8,
      "tensor 'bin': not UTF-8 text: invalid byte 0xfd at offset 0");

  /* a buffer without tensor meta passes */
  g_assert_cmpint (gst_harness_push (hh.h, gst_buffer_new_memdup ("{}", 2)),
      ==, GST_FLOW_OK);
  out = gst_harness_pull (hh.h);
  g_assert_null (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);

  harness_clear (&hh);
  sample_clear (&s);
}

static void
test_element_selects_by_name (void)
{
  Harness hh;
  Sample s;
  GstBuffer *out;

  if (!have_element ("ueldictdecode"))
    return;
  sample_init (&s, "names.safetensors");
  harness_init (&hh);
  g_object_set (hh.h->element, "tensors", " q*t, w ", NULL);

  /* cfg is a dictionary, but not named */
  out = push_pull (&hh, sample_whole (&s, 1));
  g_assert_null (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);
  out = push_pull (&hh, sample_whole (&s, 3));
  g_assert_nonnull (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);
  assert_dict_message (pop_message (&hh, GST_MESSAGE_ELEMENT), "quant",
      quant_json);
  /* a named tensor that is not 1-D U8 is reported */
  out = push_pull (&hh, sample_whole (&s, 0));
  g_assert_null (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);
  assert_report (pop_message (&hh, GST_MESSAGE_WARNING), GST_MESSAGE_WARNING,
      "w", UEL_ERROR_DICT_NOT_U8, NULL);

  g_object_set (hh.h->element, "tensors", "img", NULL);
  out = push_pull (&hh, sample_whole (&s, 2));
  gst_buffer_unref (out);
  assert_report (pop_message (&hh, GST_MESSAGE_WARNING), GST_MESSAGE_WARNING,
      "img", UEL_ERROR_DICT_NOT_1D, NULL);

  harness_clear (&hh);
  sample_clear (&s);
}

static void
test_element_strict (void)
{
  Harness hh;
  Sample s;
  gboolean strict = FALSE;

  if (!have_element ("ueldictdecode"))
    return;
  sample_init (&s, "strict.safetensors");
  harness_init (&hh);
  g_object_set (hh.h->element, "strict", TRUE, NULL);
  g_object_get (hh.h->element, "strict", &strict, NULL);
  g_assert_true (strict);

  g_assert_cmpint (gst_harness_push (hh.h, sample_whole (&s, 4)), ==,
      GST_FLOW_ERROR);
  g_assert_null (gst_harness_try_pull (hh.h));
  assert_report (pop_message (&hh, GST_MESSAGE_ERROR), GST_MESSAGE_ERROR,
      "bin", UEL_ERROR_DICT_NOT_UTF8, NULL);

  harness_clear (&hh);
  sample_clear (&s);
}

static void
test_element_assembles_chunks (void)
{
  Harness hh;
  Sample s;
  GstBuffer *out;
  UelDictMeta *m;
  gsize n = strlen (quant_json);

  if (!have_element ("ueldictdecode"))
    return;
  sample_init (&s, "chunks.safetensors");
  harness_init (&hh);

  /* three chunks: the dictionary rides on the last one */
  out = push_pull (&hh, sample_buffer (&s, 3, 0, 10, 0, FALSE));
  g_assert_null (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);
  out = push_pull (&hh, sample_buffer (&s, 3, 10, 10, 1, FALSE));
  g_assert_null (uel_buffer_get_dict_meta (out));
  gst_buffer_unref (out);
  g_assert_null (gst_bus_pop (hh.bus));
  out = push_pull (&hh, sample_buffer (&s, 3, 20, n - 20, 2, TRUE));
  m = uel_buffer_get_dict_meta (out);
  g_assert_nonnull (m);
  g_assert_cmpint (json_object_get_int_member (obj (m->dict), "bits"), ==, 4);
  gst_buffer_unref (out);
  assert_dict_message (pop_message (&hh, GST_MESSAGE_ELEMENT), "quant",
      quant_json);

  /* chunks that stop before the last one, then another tensor */
  gst_buffer_unref (push_pull (&hh, sample_buffer (&s, 1, 0, 10, 0, FALSE)));
  gst_buffer_unref (push_pull (&hh, sample_whole (&s, 0)));
  assert_report (pop_message (&hh, GST_MESSAGE_WARNING), GST_MESSAGE_WARNING,
      "cfg", UEL_ERROR_DICT_CHUNKED, "tensor 'cfg': the next tensor began "
      "after 1 chunk(s), 10 bytes: the dictionary is incomplete");

  /* a chunk missing in the middle */
  gst_buffer_unref (push_pull (&hh, sample_buffer (&s, 1, 0, 10, 0, FALSE)));
  gst_buffer_unref (push_pull (&hh, sample_buffer (&s, 1, 20, G_MAXSIZE, 2,
              TRUE)));
  assert_report (pop_message (&hh, GST_MESSAGE_WARNING), GST_MESSAGE_WARNING,
      "cfg", UEL_ERROR_DICT_CHUNKED, "tensor 'cfg': chunk 2 holds 10 bytes "
      "at offset 20 (last); expected chunk 1 at offset 10 of 30 bytes");

  /* a chunk without its start: reported once, the rest passes */
  gst_buffer_unref (push_pull (&hh, sample_buffer (&s, 1, 10, 10, 1, FALSE)));
  gst_buffer_unref (push_pull (&hh, sample_buffer (&s, 1, 20, G_MAXSIZE, 2,
              TRUE)));
  assert_report (pop_message (&hh, GST_MESSAGE_WARNING), GST_MESSAGE_WARNING,
      "cfg", UEL_ERROR_DICT_CHUNKED, "tensor 'cfg': chunk 1 (offset 10) "
      "arrived without the chunks before it");

  /* chunks of binary bytes: assembled, then refused */
  gst_buffer_unref (push_pull (&hh, sample_buffer (&s, 4, 0, 3, 0, FALSE)));
  gst_buffer_unref (push_pull (&hh, sample_buffer (&s, 4, 3, 3, 1, TRUE)));
  assert_report (pop_message (&hh, GST_MESSAGE_WARNING), GST_MESSAGE_WARNING,
      "bin", UEL_ERROR_DICT_NOT_UTF8, NULL);

  /* the stream ends in the middle of a tensor */
  gst_buffer_unref (push_pull (&hh, sample_buffer (&s, 1, 0, 10, 0, FALSE)));
  g_assert_true (gst_harness_push_event (hh.h, gst_event_new_eos ()));
  assert_report (pop_message (&hh, GST_MESSAGE_WARNING), GST_MESSAGE_WARNING,
      "cfg", UEL_ERROR_DICT_CHUNKED, "tensor 'cfg': the stream ended after "
      "1 chunk(s), 10 bytes: the dictionary is incomplete");

  harness_clear (&hh);
  sample_clear (&s);
}

/* ------------------------------------------------------------------ */
/* pipelines */

typedef struct
{
  GPtrArray *buffers;
  GPtrArray *messages;          /* uel-dict, warnings */
} Run;

static void
on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer data)
{
  g_ptr_array_add (data, gst_buffer_ref (buf));
}

/* Like uel_test_run_pipeline(), keeping the uel-dict messages and the
 * warnings in bus order. */
static GError *
run (const gchar * launch, Run * r)
{
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (launch, &err);
  GstElement *sink;
  GstBus *bus;
  gboolean done = FALSE;

  g_assert_no_error (err);
  r->buffers = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_buffer_unref);
  r->messages = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_message_unref);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), r->buffers);
  gst_object_unref (sink);

  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  while (!done) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING |
        GST_MESSAGE_ELEMENT);

    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_ERROR:
        gst_message_parse_error (msg, &err, NULL);
        done = TRUE;
        break;
      case GST_MESSAGE_EOS:
        done = TRUE;
        break;
      case GST_MESSAGE_WARNING:
        g_ptr_array_add (r->messages, gst_message_ref (msg));
        break;
      default:
        if (uel_dict_message_parse (msg, NULL, NULL))
          g_ptr_array_add (r->messages, gst_message_ref (msg));
        break;
    }
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_NULL), ==,
      GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (pipeline);
  return err;
}

static void
run_clear (Run * r)
{
  g_ptr_array_unref (r->buffers);
  g_ptr_array_unref (r->messages);
}

static void
assert_tensor_buffer (GstBuffer * buf, Sample * s, const gchar * name)
{
  UelTensorMeta *m = uel_buffer_get_tensor_meta (buf);
  const UelTensorInfo *t;
  GstMapInfo map;

  g_assert_nonnull (m);
  g_assert_cmpstr (uel_tensor_meta_get_name (m), ==, name);
  t = uel_header_lookup (s->header, name, NULL);
  g_assert_nonnull (t);
  gst_buffer_map (buf, &map, GST_MAP_READ);
  g_assert_cmpmem (map.data, map.size, s->data + t->data_begin, t->n_bytes);
  gst_buffer_unmap (buf, &map);
}

static void
test_pipeline_two_dicts (void)
{
  static const gchar *names[] = { "w", "cfg", "img", "quant", "bin", "b",
    "s"
  };
  g_autofree gchar *launch = NULL;
  Sample s;
  Run r;
  GError *err;

  if (!have_element ("ueldictdecode"))
    return;
  sample_init (&s, "pipeline.safetensors");
  /* the two dictionaries among float (and other) tensors */
  launch = g_strdup_printf ("uelsrc location=%s ! ueldictdecode "
      "tensors=cfg,quant ! fakesink name=sink", s.path);
  err = run (launch, &r);
  g_assert_no_error (err);

  g_assert_cmpuint (r.messages->len, ==, 2);
  assert_dict_message (gst_message_ref (r.messages->pdata[0]), "cfg",
      cfg_json);
  assert_dict_message (gst_message_ref (r.messages->pdata[1]), "quant",
      quant_json);

  g_assert_cmpuint (r.buffers->len, ==, G_N_ELEMENTS (names));
  for (guint i = 0; i < r.buffers->len; i++) {
    GstBuffer *buf = r.buffers->pdata[i];
    UelDictMeta *m = uel_buffer_get_dict_meta (buf);

    assert_tensor_buffer (buf, &s, names[i]);
    if (i == 1 || i == 3) {
      g_assert_nonnull (m);
      g_assert_cmpstr (m->tensor_name, ==, names[i]);
    } else {
      g_assert_null (m);
    }
  }
  run_clear (&r);
  sample_clear (&s);
}

static void
test_pipeline_default_selection_warns_on_binary (void)
{
  g_autofree gchar *launch = NULL;
  g_autofree gchar *b_path = g_build_filename (uel_test_conformance_dir (),
      "B.safetensors", NULL);
  Sample s;
  Run r;
  GError *err;

  if (!have_element ("ueldictdecode"))
    return;
  sample_init (&s, "default.safetensors");
  launch = g_strdup_printf ("uelsrc location=%s ! ueldictdecode ! "
      "fakesink name=sink", s.path);
  err = run (launch, &r);
  g_assert_no_error (err);
  g_assert_cmpuint (r.buffers->len, ==, 7);
  g_assert_cmpuint (r.messages->len, ==, 3);
  assert_dict_message (gst_message_ref (r.messages->pdata[0]), "cfg",
      cfg_json);
  assert_dict_message (gst_message_ref (r.messages->pdata[1]), "quant",
      quant_json);
  assert_report (gst_message_ref (r.messages->pdata[2]), GST_MESSAGE_WARNING,
      "bin", UEL_ERROR_DICT_NOT_UTF8, NULL);
  run_clear (&r);

  /* the reference implementation's U8 vector holds -3..2 wrapped */
  if (g_file_test (b_path, G_FILE_TEST_EXISTS)) {
    g_free (launch);
    launch = g_strdup_printf ("uelsrc location=%s ! ueldictdecode ! "
        "fakesink name=sink", b_path);
    err = run (launch, &r);
    g_assert_no_error (err);
    g_assert_cmpuint (r.buffers->len, ==, 1);
    g_assert_cmpuint (r.messages->len, ==, 1);
    assert_report (gst_message_ref (r.messages->pdata[0]),
        GST_MESSAGE_WARNING, "B", UEL_ERROR_DICT_NOT_UTF8,
        "tensor 'B': not UTF-8 text: invalid byte 0xfd at offset 0");
    run_clear (&r);
  }

  /* strict: the first bad tensor stops the stream */
  g_free (launch);
  launch = g_strdup_printf ("uelsrc location=%s ! ueldictdecode strict=true "
      "! fakesink name=sink", s.path);
  err = run (launch, &r);
  g_assert_error (err, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE);
  g_assert_cmpstr (err->message, ==,
      "tensor 'bin': not UTF-8 text: invalid byte 0xfd at offset 0");
  g_error_free (err);
  g_assert_cmpuint (r.buffers->len, ==, 4);
  run_clear (&r);
  sample_clear (&s);
}

static void
test_pipeline_chunks (void)
{
  g_autofree gchar *launch = NULL;
  Sample s;
  Run r;
  GError *err;
  UelDictMeta *m;

  if (!have_element ("ueldictdecode"))
    return;
  sample_init (&s, "chunked.safetensors");
  /* cfg (30 bytes) in 4 chunks, quant (55) in 7 */
  launch = g_strdup_printf ("uelsrc location=%s chunk-size=8 dtypes=U8 "
      "ndim=1 ! ueldictdecode tensors=cfg,quant ! fakesink name=sink",
      s.path);
  err = run (launch, &r);
  g_assert_no_error (err);
  g_assert_cmpuint (r.messages->len, ==, 2);
  assert_dict_message (gst_message_ref (r.messages->pdata[0]), "cfg",
      cfg_json);
  assert_dict_message (gst_message_ref (r.messages->pdata[1]), "quant",
      quant_json);
  /* 4 + 7 + 1 chunks */
  g_assert_cmpuint (r.buffers->len, ==, 12);
  m = uel_buffer_get_dict_meta (r.buffers->pdata[3]);
  g_assert_nonnull (m);
  g_assert_cmpstr (m->tensor_name, ==, "cfg");
  m = uel_buffer_get_dict_meta (r.buffers->pdata[10]);
  g_assert_nonnull (m);
  g_assert_cmpstr (m->tensor_name, ==, "quant");
  for (guint i = 0; i < r.buffers->len; i++)
    if (i != 3 && i != 10)
      g_assert_null (uel_buffer_get_dict_meta (r.buffers->pdata[i]));
  run_clear (&r);
  sample_clear (&s);
}

static void
test_pipeline_chunked_too_large (void)
{
  g_autofree gchar *path = uel_test_path ("too-large.safetensors");
  g_autofree gchar *launch = NULL;
  Run r;
  GError *err;

  if (!have_element ("ueldictdecode"))
    return;
  write_huge_file (path, UEL_DICT_MAX_SIZE + 1);

  /* refused at the first chunk: nothing is accumulated */
  launch = g_strdup_printf ("uelsrc location=%s chunk-size=16777216 ! "
      "ueldictdecode ! fakesink name=sink", path);
  err = run (launch, &r);
  g_assert_no_error (err);
  g_assert_cmpuint (r.buffers->len, ==, 5);
  g_assert_cmpuint (r.messages->len, ==, 1);
  assert_report (gst_message_ref (r.messages->pdata[0]), GST_MESSAGE_WARNING,
      "huge", UEL_ERROR_DICT_TOO_LARGE, "tensor 'huge': 67108865 bytes, more "
      "than the limit of 67108864 bytes for a dictionary");
  run_clear (&r);

  /* whole */
  g_free (launch);
  launch = g_strdup_printf ("uelsrc location=%s ! ueldictdecode ! "
      "fakesink name=sink", path);
  err = run (launch, &r);
  g_assert_no_error (err);
  g_assert_cmpuint (r.buffers->len, ==, 1);
  g_assert_cmpuint (r.messages->len, ==, 1);
  assert_report (gst_message_ref (r.messages->pdata[0]), GST_MESSAGE_WARNING,
      "huge", UEL_ERROR_DICT_TOO_LARGE, NULL);
  run_clear (&r);
  g_unlink (path);
}

/* ------------------------------------------------------------------ */
/* uelsrc dtypes / ndim */

static gchar **
run_names (const gchar * path, const gchar * props, GError ** error)
{
  g_autofree gchar *launch = g_strdup_printf ("uelsrc location=%s %s ! "
      "fakesink name=sink", path, props);
  g_autoptr (GPtrArray) bufs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) gst_buffer_unref);
  GPtrArray *names = g_ptr_array_new ();

  *error = uel_test_run_pipeline (launch, bufs);
  for (guint i = 0; i < bufs->len; i++) {
    UelTensorMeta *m = uel_buffer_get_tensor_meta (bufs->pdata[i]);
    g_ptr_array_add (names, g_strdup (uel_tensor_meta_get_name (m)));
  }
  g_ptr_array_add (names, NULL);
  return (gchar **) g_ptr_array_free (names, FALSE);
}

static void
assert_selects (Sample * s, const gchar * props, const gchar * expected)
{
  GError *err = NULL;
  g_auto (GStrv) names = run_names (s->path, props, &err);
  g_autofree gchar *joined = g_strjoinv (",", names);

  g_assert_no_error (err);
  g_assert_cmpstr (joined, ==, expected);
}

static void
test_uelsrc_dtypes_ndim (void)
{
  GstElement *src;
  g_autofree gchar *dtypes = NULL;
  gint ndim = 0;
  GError *err = NULL;
  gchar **names;
  Sample s;

  if (!have_element ("uelsrc"))
    return;
  src = gst_element_factory_make ("uelsrc", NULL);
  g_object_get (src, "dtypes", &dtypes, "ndim", &ndim, NULL);
  g_assert_null (dtypes);
  g_assert_cmpint (ndim, ==, -1);
  gst_object_unref (src);

  sample_init (&s, "select.safetensors");
  assert_selects (&s, "", "w,cfg,img,quant,bin,b,s");
  assert_selects (&s, "dtypes=U8 ndim=1", "cfg,quant,bin");
  assert_selects (&s, "dtypes=U8", "cfg,img,quant,bin,s");
  assert_selects (&s, "dtypes=\" u8 , F32 \"", "w,cfg,img,quant,bin,b,s");
  assert_selects (&s, "dtypes=F32 ndim=1", "b");
  assert_selects (&s, "ndim=2", "w,img");
  assert_selects (&s, "ndim=0", "s");
  assert_selects (&s, "ndim=3", "");
  assert_selects (&s, "tensors=* dtypes=U8 ndim=1", "cfg,quant,bin");
  assert_selects (&s, "tensors=img,w,q* dtypes=U8", "img,quant");
  /* a name that the filters exclude still matches: no tensor, no error */
  assert_selects (&s, "tensors=w dtypes=U8", "");

  names = run_names (s.path, "dtypes=U8,Q9", &err);
  g_assert_error (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  assert_contains (err->message, "unknown dtype \"Q9\" (property 'dtypes')");
  g_assert_null (names[0]);
  g_strfreev (names);
  g_clear_error (&err);

  sample_clear (&s);
}

int
main (int argc, char **argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/dict/meta/is-next-chunk", test_is_next_chunk);
  g_test_add_func ("/dict/element/in-place-base-transform",
      test_element_in_place);
  g_test_add_func ("/dict/round-trips-nested-objects-and-arrays",
      test_round_trip_nested);
  g_test_add_func ("/dict/round-trips-escaped-and-raw-unicode",
      test_round_trip_unicode);
  g_test_add_func ("/dict/round-trips-integers-beyond-2^53-and-doubles",
      test_round_trip_numbers);
  g_test_add_func ("/dict/round-trips-booleans-null-and-empty-objects",
      test_round_trip_literals);
  g_test_add_func ("/dict/round-trips-a-1-MiB-document",
      test_round_trip_large);
  g_test_add_func ("/dict/reads-what-python-json-dumps-writes",
      test_reads_python_json);
  g_test_add_func ("/dict/writes-compact-json-bytes", test_writes_fixed_bytes);
  g_test_add_func ("/dict/python-json-loads-reads-what-we-write",
      test_python_reads_ours);
  g_test_add_func ("/dict/rejects-bytes-that-are-not-utf8",
      test_rejects_not_utf8);
  g_test_add_func ("/dict/rejects-text-that-is-not-json",
      test_rejects_not_json);
  g_test_add_func ("/dict/rejects-json-that-is-not-an-object",
      test_rejects_not_object);
  g_test_add_func ("/dict/rejects-100000-deep-nesting-at-level-129",
      test_rejects_deep_nesting);
  g_test_add_func ("/dict/rejects-more-than-64-MiB", test_rejects_too_large);
  g_test_add_func ("/dict/refuses-to-write-what-it-could-not-read",
      test_writer_rejects);
  g_test_add_func ("/dict/decodes-buffers-of-whole-1d-u8-tensors-only",
      test_from_buffer);
  g_test_add_func ("/dict/refuses-tensors-over-the-size-limit-by-meta",
      test_check_too_large);
  g_test_add_func ("/dict/meta-holds-the-node-and-follows-copies",
      test_meta);
  g_test_add_func ("/ueldictdecode/decodes-every-1d-u8-tensor-by-default",
      test_element_decodes_default_selection);
  g_test_add_func ("/ueldictdecode/selects-tensors-by-name-and-glob",
      test_element_selects_by_name);
  g_test_add_func ("/ueldictdecode/strict-turns-warnings-into-errors",
      test_element_strict);
  g_test_add_func ("/ueldictdecode/assembles-chunks-or-says-why-not",
      test_element_assembles_chunks);
  g_test_add_func ("/ueldictdecode/posts-two-dicts-among-float-tensors",
      test_pipeline_two_dicts);
  g_test_add_func ("/ueldictdecode/warns-on-binary-u8-and-goes-on",
      test_pipeline_default_selection_warns_on_binary);
  g_test_add_func ("/ueldictdecode/assembles-uelsrc-chunks",
      test_pipeline_chunks);
  g_test_add_func ("/ueldictdecode/refuses-a-tensor-over-64-MiB",
      test_pipeline_chunked_too_large);
  g_test_add_func ("/uelsrc/dtypes-and-ndim-narrow-the-selection",
      test_uelsrc_dtypes_ndim);

  return g_test_run ();
}
