/* gst-uel: shared helpers for the test programs
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gst/gst.h>
#include <gst-uel/uel.h>

G_BEGIN_DECLS

/* gst_init + g_test_init + uel_init, in that order */
void uel_test_init (int *argc, char ***argv);

/* A fresh temporary folder, removed with its files at exit; in a test's
 * subprocess (g_test_trap_subprocess), the parent's folder. */
const gchar *uel_test_tmpdir (void);
/* A path inside uel_test_tmpdir(); free it. */
gchar *uel_test_path (const gchar * name);
/* The folder of the reference conformance vectors (tests/conformance) */
const gchar *uel_test_conformance_dir (void);

/* Writes @len bytes to @path, aborting the test on failure. */
void uel_test_write_bytes (const gchar * path, gconstpointer bytes, gsize len);
/* Writes 8-byte little-endian length + @header_json + @data. */
void uel_test_write_safetensors (const gchar * path, const gchar * header_json,
    gconstpointer data, gsize data_len);

/* Deterministic, non-zero bytes for tensor @seed. */
void uel_test_fill (guint8 * buf, gsize len, guint seed);

/* Builds a valid file tensor by tensor.  With uel_test_builder_set_align
 * (b, 8), UelWriter writes it as the reference would (tensors ordered by
 * dtype, widest first, then name; the header padded to 8 bytes); otherwise
 * it is written by hand, the tensors in the order added: unaligned (the
 * default; as early writers did), padded to another alignment, or, after
 * uel_test_builder_keep_order(), padded to 8 in the order added. */
typedef struct _UelTestBuilder UelTestBuilder;
UelTestBuilder *uel_test_builder_new (void);
/* shape as a JSON array text, e.g. "[2,3]"; @data may be NULL to fill with
 * uel_test_fill (bytes, n_bytes, index) */
void uel_test_builder_add (UelTestBuilder * b, const gchar * name,
    const gchar * dtype, const gchar * shape_json, gsize n_bytes,
    gconstpointer data);
void uel_test_builder_set_metadata (UelTestBuilder * b, const gchar * key,
    const gchar * value);
/* pad the header with spaces so that the data section starts at a multiple
 * of @align (0 = no padding: the data section is unaligned) */
void uel_test_builder_set_align (UelTestBuilder * b, guint align);
/* write by hand, in the order added, even when aligned to 8: for tests
 * whose file layout is the point */
void uel_test_builder_keep_order (UelTestBuilder * b);
/* writes the file and returns its data section, in file order (owned by
 * the builder) */
const guint8 *uel_test_builder_write (UelTestBuilder * b, const gchar * path,
    gsize * data_len);
void uel_test_builder_free (UelTestBuilder * b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UelTestBuilder, uel_test_builder_free)

/* Writes a sharded checkpoint into a new folder @name of the test folder:
 * @n_shards files "model-0000i-of-0000n.safetensors" (by UelWriter), each
 * with @per_shard U8 tensors "s<shard>.t<i>" of @bytes bytes (filled with
 * uel_test_fill; in name order, so "s0.t10" before "s0.t2"), and
 * "model.safetensors.index.json".  Returns the index's path. */
gchar *uel_test_write_checkpoint (const gchar * name, guint n_shards,
    guint per_shard, gsize bytes);

/* Writes @n U8 tensors of one byte each, "t0000000", "t0000001", ...,
 * tensor i holding the byte i % 256 at byte i of the data section (by
 * UelWriter): the pathological file of many tiny tensors. */
void uel_test_write_one_byte_tensors (const gchar * path, guint n);

/* uel_header_open(), asserting that it succeeds */
UelHeader *uel_test_header_open (const gchar * path);

/* Rewrites @path in place from byte @from to its end (0xee), the size
 * kept, and sets its modification time 10 s later: a change that only the
 * time tells (set explicitly: a write in the same tick of the kernel's
 * coarse clock as the header's validation would keep it). */
void uel_test_rewrite_in_place (const gchar * path, goffset from);

/* The process's resident memory in bytes (/proc/self/statm). */
gint64 uel_test_resident_bytes (void);

/* Runs @launch to EOS or error; returns the error message's GError (domain
 * and code as posted) or NULL at EOS.  Every buffer reaching the element
 * named "sink" (a fakesink or appsink with signal-handoffs) is appended to
 * @buffers when it is non-NULL. */
GError *uel_test_run_pipeline (const gchar * launch, GPtrArray * buffers);

/* Checks that file permissions deny access need a user they apply to, and
 * root reads everything.  As root, this makes uel_test_tmpdir() searchable,
 * gives @files (NULL-terminated) to the user 'nobody' (their modes stay),
 * runs the current test again in a subprocess (which must call
 * uel_test_drop_privileges() first; its uel_test_path() names the same
 * files) and asserts that it passed, then returns TRUE: the caller is
 * done.  As any other user it returns FALSE: the caller runs the checks
 * itself. */
gboolean uel_test_run_unprivileged (const gchar * const *files);
/* In that subprocess: becomes 'nobody' (uid and gid 65534, no
 * supplementary groups), our plugin and the core elements loaded first. */
void uel_test_drop_privileges (void);

/* The unsigned 64-bit field @field of an element's "stats" structure,
 * asserting that it is there. */
guint64 uel_test_stat (const GstStructure * s, const gchar * field);

/* The entries of @path's folder that are temporary files of @path
 * (UelWriter's `.NAME.XXXXXX`). */
guint uel_test_count_temporaries (const gchar * path);

G_END_DECLS
