/* gst-uel: the recycled host memory (UelHostAllocator): huge pages only
 * while they come fast, blocks recycled by size, the bytes kept
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "test-utils.h"
#include "gst-uel/uel-hostmem-private.h"

#define MIB ((gsize) 1 << 20)

/* whether this kernel gives huge pages to memory that asks for them */
static gboolean
have_huge_pages (void)
{
  g_autofree gchar *enabled = NULL;

  if (!g_file_get_contents ("/sys/kernel/mm/transparent_hugepage/enabled",
          &enabled, NULL, NULL))
    return FALSE;
  return strstr (enabled, "[never]") == NULL;
}

/* the "THPeligible" line of the mapping that holds @addr in
 * /proc/self/smaps: 1 where the kernel may put huge pages, 0 where not */
static gint
thp_eligible (gconstpointer addr)
{
  FILE *f = fopen ("/proc/self/smaps", "r");
  gchar line[512];
  gboolean inside = FALSE;
  gint eligible = -1;

  g_assert_nonnull (f);
  while (fgets (line, sizeof line, f)) {
    guintptr start, end;

    if (sscanf (line, "%" G_GINTPTR_MODIFIER "x-%" G_GINTPTR_MODIFIER "x ",
            &start, &end) == 2 && strchr (line, '-') < strchr (line, ' '))
      inside = start <= (guintptr) addr && (guintptr) addr < end;
    else if (inside && sscanf (line, "THPeligible: %d", &eligible) == 1)
      break;
  }
  fclose (f);
  return eligible;
}

/* every byte of @mem written and read back */
static void
check_bytes (GstMemory * mem, guint8 seed)
{
  GstMapInfo map;

  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READWRITE));
  for (gsize i = 0; i < map.size; i++)
    map.data[i] = (guint8) (i * 31 + seed);
  for (gsize i = 0; i < map.size; i++)
    g_assert_cmpuint (map.data[i], ==, (guint8) (i * 31 + seed));
  gst_memory_unmap (mem, &map);
}

/* an 8 MiB memory of @alloc, every byte written and read back */
static GstMemory *
alloc_checked (GstAllocator * alloc, guint8 seed)
{
  GstMemory *mem = gst_allocator_alloc (alloc, 8 * MIB, NULL);

  g_assert_nonnull (mem);
  check_bytes (mem, seed);
  return mem;
}

static gconstpointer
data_of (GstMemory * mem)
{
  GstMapInfo map;
  gconstpointer data;

  g_assert_true (gst_memory_map (mem, &map, GST_MAP_READ));
  data = map.data;
  gst_memory_unmap (mem, &map);
  return data;
}

/* how many huge pages @host timed, and how many blocks it put on 4 KiB
 * pages */
static void
assert_huge_page_stats (UelHostAllocator * host, guint64 timed,
    guint64 small)
{
  guint64 n_timed, n_small;

  uel_host_allocator_get_huge_page_stats (host, &n_timed, &n_small);
  g_assert_cmpuint (n_timed, ==, timed);
  g_assert_cmpuint (n_small, ==, small);
}

/* huge pages that fault in fast are kept for the whole block */
static void
test_huge_pages_when_fast (void)
{
  GstAllocator *alloc = uel_host_allocator_new (64 * MIB);
  UelHostAllocator *host = UEL_HOST_ALLOCATOR (alloc);
  GstMemory *mem;

  uel_host_allocator_set_slow_huge_page_us (host, G_MAXINT64);
  mem = alloc_checked (alloc, 1);
  assert_huge_page_stats (host, 1, 0);
  if (have_huge_pages ())
    g_assert_cmpint (thp_eligible (data_of (mem)), ==, 1);
  gst_memory_unref (mem);
  gst_object_unref (alloc);
}

/* a huge page that came slowly (here: any) puts the block on 4 KiB pages,
 * and the blocks mapped in the next second too, without timing them; a
 * block is recycled as it is, the bytes are the bytes written */
static void
test_small_pages_when_huge_pages_are_slow (void)
{
  GstAllocator *alloc = uel_host_allocator_new (64 * MIB);
  UelHostAllocator *host = UEL_HOST_ALLOCATOR (alloc);
  GstMemory *mem;
  GstMemory *other;
  gconstpointer first;
  guint64 fresh, reused;

  if (!have_huge_pages ()) {
    g_test_skip ("this kernel gives no transparent huge pages");
    gst_object_unref (alloc);
    return;
  }
  uel_host_allocator_set_slow_huge_page_us (host, -1);
  mem = gst_allocator_alloc (alloc, 8 * MIB, NULL);
  g_assert_nonnull (mem);
  assert_huge_page_stats (host, 1, 1);
  /* right after (well within the second), another size: not timed, on
   * 4 KiB pages */
  other = gst_allocator_alloc (alloc, 4 * MIB, NULL);
  g_assert_nonnull (other);
  assert_huge_page_stats (host, 1, 2);

  first = data_of (mem);
  g_assert_cmpint (thp_eligible (first), ==, 0);
  g_assert_cmpint (thp_eligible (data_of (other)), ==, 0);
  check_bytes (mem, 2);
  gst_memory_unref (mem);
  gst_memory_unref (other);

  /* the same block again, not mapped (nor timed) anew */
  mem = alloc_checked (alloc, 3);
  g_assert_true (data_of (mem) == first);
  uel_host_allocator_get_stats (host, &fresh, &reused, NULL);
  g_assert_cmpuint (fresh, ==, 2);
  g_assert_cmpuint (reused, ==, 1);
  assert_huge_page_stats (host, 1, 2);
  gst_memory_unref (mem);
  gst_object_unref (alloc);
}

/* blocks under a huge page are never timed */
static void
test_small_blocks_are_not_timed (void)
{
  GstAllocator *alloc = uel_host_allocator_new (0);
  UelHostAllocator *host = UEL_HOST_ALLOCATOR (alloc);
  GstMemory *mem;

  uel_host_allocator_set_slow_huge_page_us (host, -1);
  mem = gst_allocator_alloc (alloc, MIB, NULL);
  g_assert_nonnull (mem);
  assert_huge_page_stats (host, 0, 0);
  gst_memory_unref (mem);
  gst_object_unref (alloc);
}

/* past the cache's limit, the block unused the longest goes, not the one
 * just freed: that is the one the next tensor of the same size takes */
static void
test_cache_lets_the_oldest_go (void)
{
  GstAllocator *alloc = uel_host_allocator_new (64 * MIB);
  UelHostAllocator *host = UEL_HOST_ALLOCATOR (alloc);
  GstMemory *old = gst_allocator_alloc (alloc, 48 * MIB, NULL);
  GstMemory *recent;
  gconstpointer recent_data;
  guint64 fresh, reused, cached;

  gst_memory_unref (old);
  recent = gst_allocator_alloc (alloc, 32 * MIB, NULL);
  recent_data = data_of (recent);
  gst_memory_unref (recent);
  uel_host_allocator_get_stats (host, &fresh, &reused, &cached);
  g_assert_cmpuint (cached, ==, 32 * MIB);

  recent = gst_allocator_alloc (alloc, 32 * MIB, NULL);
  g_assert_true (data_of (recent) == recent_data);
  old = gst_allocator_alloc (alloc, 48 * MIB, NULL);
  uel_host_allocator_get_stats (host, &fresh, &reused, &cached);
  g_assert_cmpuint (fresh, ==, 3);
  g_assert_cmpuint (reused, ==, 1);
  g_assert_cmpuint (cached, ==, 0);

  /* freed in this order, the 32 MiB block stays; a block larger than the
   * whole cache is never kept, nor makes room */
  gst_memory_unref (old);
  gst_memory_unref (recent);
  gst_memory_unref (gst_allocator_alloc (alloc, 80 * MIB, NULL));
  uel_host_allocator_get_stats (host, &fresh, &reused, &cached);
  g_assert_cmpuint (fresh, ==, 4);
  g_assert_cmpuint (cached, ==, 32 * MIB);
  gst_object_unref (alloc);
}

gint
main (gint argc, gchar ** argv)
{
  uel_test_init (&argc, &argv);

  g_test_add_func ("/hostmem/huge-pages-when-they-come-fast",
      test_huge_pages_when_fast);
  g_test_add_func ("/hostmem/small-pages-when-huge-pages-come-slowly",
      test_small_pages_when_huge_pages_are_slow);
  g_test_add_func ("/hostmem/blocks-under-a-huge-page-are-not-timed",
      test_small_blocks_are_not_timed);
  g_test_add_func ("/hostmem/cache-lets-the-blocks-unused-longest-go",
      test_cache_lets_the_oldest_go);
  return g_test_run ();
}
