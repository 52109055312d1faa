/* gst-uel make-model: write a Llama-like sample model of random weights
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "gst-uel-common.h"

#include <string.h>

#include <gst-uel/uel.h>

typedef struct
{
  gchar *name;
  const gchar *dtype;
  guint64 dims[2];
  guint n_dims;
  guint64 bytes;
  gchar *content;               /* for U8 JSON tensors */
} Entry;

static void
entry_clear (gpointer p)
{
  Entry *e = p;

  g_free (e->name);
  g_free (e->content);
}

static void
add (GArray * entries, const gchar * name, const gchar * dtype, guint64 d0,
    guint64 d1, guint elem)
{
  Entry e = { g_strdup (name), dtype, {d0, d1}, d1 ? 2 : 1, 0, NULL };

  e.bytes = d0 * (d1 ? d1 : 1) * elem;
  g_array_append_val (entries, e);
}

static void
add_json (GArray * entries, const gchar * name, gchar * json)
{
  Entry e = { g_strdup (name), "U8", {strlen (json), 0}, 1, strlen (json),
    json
  };
  g_array_append_val (entries, e);
}

/* xorshift64*: random bytes at memory speed, never all zeros */
static void
fill_random (guint8 * buf, gsize len, guint64 * state)
{
  guint64 x = *state;

  for (gsize i = 0; i + 8 <= len; i += 8) {
    guint64 r;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r = x * G_GUINT64_CONSTANT (2685821657736338717);
    memcpy (buf + i, &r, 8);
  }
  for (gsize i = len & ~(gsize) 7; i < len; i++)
    buf[i] = (guint8) (x >> (8 * (i & 7)));
  *state = x;
}

static gboolean
failed (GError * err)
{
  errout ("gst-uel make-model: %s\n", err->message);
  g_error_free (err);
  return FALSE;
}

/* The tensors go out through the library's writer, as the reference lays
 * them out (by dtype, then name), random bytes filled in file order. */
static gboolean
write_model (const gchar * path, GArray * list, guint64 seed)
{
  g_autoptr (UelWriter) w = NULL;
  g_autofree guint8 *block = NULL;
  const gsize block_size = 16 << 20;
  guint64 state = seed * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15) | 1;
  GError *err = NULL;

  w = uel_writer_new (path, &err);
  if (!w
      || !uel_writer_set_metadata (w, "format", "pt", &err)
      || !uel_writer_set_metadata (w, "generator", "gst-uel make-model", &err))
    return failed (err);
  for (guint i = 0; i < list->len; i++) {
    Entry *e = &g_array_index (list, Entry, i);

    if (!uel_writer_add_tensor (w, e->name, uel_dtype_from_string (e->dtype,
                -1), e->n_dims, e->dims, &err))
      return failed (err);
  }
  if (!uel_writer_write_header (w, &err))
    return failed (err);

  block = g_malloc (block_size);
  for (guint i = 0; i < uel_writer_get_n_tensors (w); i++) {
    const UelTensorInfo *t = uel_writer_get_tensor (w, i);
    Entry *e = NULL;

    for (guint j = 0; j < list->len && !e; j++)
      if (g_array_index (list, Entry, j).content
          && strcmp (g_array_index (list, Entry, j).name, t->name) == 0)
        e = &g_array_index (list, Entry, j);
    if (e) {
      if (!uel_writer_write_tensor (w, t->name, e->content, e->bytes, &err))
        return failed (err);
      continue;
    }
    for (guint64 done = 0; done < t->n_bytes;) {
      gsize n = (gsize) MIN (t->n_bytes - done, (guint64) block_size);

      fill_random (block, n, &state);
      if (!uel_writer_write (w, t->name, done, block, n, &err))
        return failed (err);
      done += n;
    }
  }
  if (!uel_writer_finish (w, &err))
    return failed (err);
  return TRUE;
}

static const CommandHelp help = {
  "make-model", "OUTPUT",
  "Write a Llama-like .safetensors model of random BF16 weights (embedding, "
      "per layer q/k/v/o, three MLP matrices and two norms, a final norm) "
      "with two U8 JSON dictionary tensors, or a file of many small tensors.",
  NULL
};

gint
cmd_make_model (gint argc, gchar ** argv)
{
  gint layers = 2, hidden = 256, vocab = 1024, inter = 688;
  gint small = 0;
  gchar *size_str = NULL;
  gboolean no_dicts = FALSE;
  guint64 seed = 1;
  GOptionEntry entries[] = {
    {"layers", 'l', 0, G_OPTION_ARG_INT, &layers,
        "Transformer layers (default 2)", "N"},
    {"hidden", 0, 0, G_OPTION_ARG_INT, &hidden,
        "Hidden size (default 256; Llama-7B: 4096)", "N"},
    {"vocab", 0, 0, G_OPTION_ARG_INT, &vocab,
        "Vocabulary size (default 1024; Llama: 32000)", "N"},
    {"intermediate", 0, 0, G_OPTION_ARG_INT, &inter,
        "MLP size (default 688; Llama-7B: 11008)", "N"},
    {"size", 's', 0, G_OPTION_ARG_STRING, &size_str,
        "Choose the number of layers to reach about this many bytes "
        "(suffixes K, M, G: powers of 1024)", "BYTES"},
    {"small-tensors", 0, 0, G_OPTION_ARG_INT, &small,
        "Instead of a model, write N tensors of 4-64 KiB", "N"},
    {"no-dicts", 0, 0, G_OPTION_ARG_NONE, &no_dicts,
        "Leave out the two U8 JSON dictionary tensors", NULL},
    {"seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Random seed", "N"},
    {NULL}
  };
  g_autoptr (GArray) list = g_array_new (FALSE, TRUE, sizeof (Entry));
  g_autofree gchar *size_str_owned = NULL;
  guint64 total = 0;

  if (!parse_options (&help, entries, &argc, &argv))
    return EXIT_USAGE;
  if (argc != 2 || layers < 0 || hidden <= 0 || vocab <= 0 || inter <= 0
      || small < 0) {
    errout ("gst-uel make-model: give one OUTPUT and positive sizes "
        "(see --help)\n");
    return EXIT_USAGE;
  }
  g_array_set_clear_func (list, entry_clear);
  size_str_owned = size_str;

  if (size_str) {
    guint64 want, per_layer, base;

    if (!parse_size (size_str, &want)) {
      errout ("gst-uel make-model: --size %s: give bytes, optionally with "
          "K, M or G\n", size_str);
      return EXIT_USAGE;
    }
    per_layer = 2ull * hidden * (4ull * hidden + 3ull * inter + 2);
    base = 2ull * vocab * hidden + 2ull * hidden;
    layers = want > base ? (gint) MAX (1, (want - base + per_layer / 2) /
        per_layer) : 1;
  }

  if (small > 0) {
    for (gint i = 0; i < small; i++) {
      g_autofree gchar *name = g_strdup_printf ("small.%06d", i);
      guint64 kib = 4 + (guint64) (i * 7919) % 61;      /* 4..64 KiB */
      add (list, name, "F32", kib * 256, 0, 4);
    }
  } else {
    add (list, "model.embed_tokens.weight", "BF16", vocab, hidden, 2);
    for (gint l = 0; l < layers; l++) {
      static const gchar *attn[] = { "q_proj", "k_proj", "v_proj", "o_proj" };
      gchar name[128];

      for (guint a = 0; a < 4; a++) {
        g_snprintf (name, sizeof name, "model.layers.%d.self_attn.%s.weight",
            l, attn[a]);
        add (list, name, "BF16", hidden, hidden, 2);
      }
      g_snprintf (name, sizeof name, "model.layers.%d.mlp.gate_proj.weight",
          l);
      add (list, name, "BF16", inter, hidden, 2);
      g_snprintf (name, sizeof name, "model.layers.%d.mlp.up_proj.weight", l);
      add (list, name, "BF16", inter, hidden, 2);
      g_snprintf (name, sizeof name, "model.layers.%d.mlp.down_proj.weight",
          l);
      add (list, name, "BF16", hidden, inter, 2);
      g_snprintf (name, sizeof name,
          "model.layers.%d.input_layernorm.weight", l);
      add (list, name, "BF16", hidden, 0, 2);
      g_snprintf (name, sizeof name,
          "model.layers.%d.post_attention_layernorm.weight", l);
      add (list, name, "BF16", hidden, 0, 2);
    }
    add (list, "model.norm.weight", "BF16", hidden, 0, 2);
    if (!no_dicts) {
      /* written the way the seed's dict_to_tensor writes: json.dumps */
      add_json (list, "config", g_strdup_printf ("{\"model_type\": "
              "\"llama\", \"hidden_size\": %d, \"intermediate_size\": %d, "
              "\"num_hidden_layers\": %d, \"vocab_size\": %d, "
              "\"torch_dtype\": \"bfloat16\"}", hidden, inter, layers,
              vocab));
      add_json (list, "quantization", g_strdup ("{\"method\": \"none\", "
              "\"bits\": 16, \"note\": \"gst-uel sample \\u2713\"}"));
    }
  }

  for (guint i = 0; i < list->len; i++)
    total += g_array_index (list, Entry, i).bytes;
  if (!write_model (argv[1], list, seed))
    return 1;
  out ("%s: %u tensors, %" G_GUINT64_FORMAT " bytes of data (%d "
      "layers)\n", argv[1], list->len, total, small ? 0 : layers);
  return 0;
}
