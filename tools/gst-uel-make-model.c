/* gst-uel make-model: write a Llama-like sample model of random weights
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "gst-uel-common.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

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
write_all (gint fd, const void *buf, gsize len, const gchar * path)
{
  const guint8 *p = buf;

  while (len > 0) {
    ssize_t w = write (fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      errout ("gst-uel make-model: %s: %s\n", path, g_strerror (errno));
      return FALSE;
    }
    p += w;
    len -= (gsize) w;
  }
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
  g_autoptr (GString) header = g_string_new ("{\"__metadata__\":"
      "{\"format\":\"pt\",\"generator\":\"gst-uel make-model\"}");
  g_autofree guint8 *block = NULL;
  guint64 offset = 0, state, len_le;
  const gsize block_size = 16 << 20;
  gint fd;

  if (!parse_options (&help, entries, &argc, &argv))
    return EXIT_USAGE;
  if (argc != 2 || layers < 0 || hidden <= 0 || vocab <= 0 || inter <= 0
      || small < 0) {
    errout ("gst-uel make-model: give one OUTPUT and positive sizes "
        "(see --help)\n");
    return EXIT_USAGE;
  }
  g_array_set_clear_func (list, entry_clear);
  state = seed * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15) | 1;

  if (size_str) {
    gchar *end;
    guint64 want = g_ascii_strtoull (size_str, &end, 10), per_layer, base;

    switch (g_ascii_toupper (*end)) {
      case 'G':
        want <<= 30;
        break;
      case 'M':
        want <<= 20;
        break;
      case 'K':
        want <<= 10;
        break;
      default:
        break;
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

  for (guint i = 0; i < list->len; i++) {
    Entry *e = &g_array_index (list, Entry, i);

    g_string_append_printf (header, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
        e->name, e->dtype);
    for (guint d = 0; d < e->n_dims; d++)
      g_string_append_printf (header, "%s%" G_GUINT64_FORMAT, d ? "," : "",
          e->dims[d]);
    g_string_append_printf (header, "],\"data_offsets\":[%" G_GUINT64_FORMAT
        ",%" G_GUINT64_FORMAT "]}", offset, offset + e->bytes);
    offset += e->bytes;
  }
  g_string_append_c (header, '}');
  /* data section 8-byte aligned, as the Python writer does */
  while ((8 + header->len) % 8)
    g_string_append_c (header, ' ');

  fd = open (argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    errout ("gst-uel make-model: %s: %s\n", argv[1], g_strerror (errno));
    return 1;
  }
  len_le = GUINT64_TO_LE ((guint64) header->len);
  if (!write_all (fd, &len_le, 8, argv[1])
      || !write_all (fd, header->str, header->len, argv[1]))
    goto fail;

  block = g_malloc (block_size);
  for (guint i = 0; i < list->len; i++) {
    Entry *e = &g_array_index (list, Entry, i);
    guint64 left = e->bytes;

    if (e->content) {
      if (!write_all (fd, e->content, e->bytes, argv[1]))
        goto fail;
      continue;
    }
    while (left > 0) {
      gsize n = (gsize) MIN (left, (guint64) block_size);
      fill_random (block, n, &state);
      if (!write_all (fd, block, n, argv[1]))
        goto fail;
      left -= n;
    }
  }
  if (close (fd) != 0) {
    errout ("gst-uel make-model: %s: %s\n", argv[1], g_strerror (errno));
    return 1;
  }
  out ("%s: %u tensors, %" G_GUINT64_FORMAT " bytes of data (%d "
      "layers)\n", argv[1], list->len, offset, small ? 0 : layers);
  return 0;

fail:
  close (fd);
  return 1;
}
