/* gst-uel: stream safetensors tensors through GStreamer
 * SPDX-License-Identifier: MIT
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst-uel/uel.h>

#include "gstuelelements.h"

/* The pool an application shares between pipelines: a context set on
 * @element (or on a bin holding it, which passes it down), or given in
 * answer to the need-context message posted here (by a bus sync handler:
 * the context is looked for once more right after).  The elements around
 * are deliberately not asked: a pool found next door would override the
 * element's own pool-size.  Returns a new allocator over the shared pool,
 * or NULL when there is none. */
GstAllocator *
gst_uel_shared_pinned_allocator (GstElement * element)
{
  GstContext *context;
  GstAllocator *shared, *alloc;

  context = gst_element_get_context (element, UEL_PINNED_POOL_CONTEXT_TYPE);
  if (!context) {
    gst_element_post_message (element,
        gst_message_new_need_context (GST_OBJECT (element),
            UEL_PINNED_POOL_CONTEXT_TYPE));
    context = gst_element_get_context (element, UEL_PINNED_POOL_CONTEXT_TYPE);
  }
  if (!context)
    return NULL;
  shared = uel_pinned_pool_context_get_allocator (context);
  gst_context_unref (context);
  if (!shared) {
    GST_ELEMENT_WARNING (element, RESOURCE, SETTINGS,
        ("The \"%s\" context holds no pinned pool: using the element's own.",
            UEL_PINNED_POOL_CONTEXT_TYPE), (NULL));
    return NULL;
  }
  alloc = uel_pinned_allocator_new_shared (UEL_PINNED_ALLOCATOR (shared));
  gst_object_unref (shared);
  return alloc;
}
