/*
 * Where ibuf storage comes from: one malloc per ibuf, its box and its
 * inline storage together, and free when it goes.  There is no cache of
 * our own.  The C library's allocator already keeps per-thread caches
 * for small sizes and reuses large ones without faulting them in again;
 * one of ours would hold memory the program no longer uses, per thread,
 * for as long as the thread lives (bench/ measures what it would buy).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "imsg-private.h"

/*
 * Allocate an ibuf whose storage holds len bytes, growing to max.  The
 * storage is NOT zeroed: the public constructors zero it, the library's
 * own users (imsg_create, the reader, batches) overwrite it at once.
 */
struct ibuf *
libimsg__ibuf_alloc(size_t len, size_t max)
{
	struct ibuf_box *box;

	if (len > SIZE_MAX - sizeof(*box)) {
		errno = ENOMEM;
		return NULL;
	}
	if ((box = malloc(sizeof(*box) + len)) == NULL)
		return NULL;
	box->cap = len;
	box->flags = 0;
	box->ib.entry.tqe_next = NULL;
	box->ib.entry.tqe_prev = NULL;
	box->ib.buf = len > 0 ? ibuf_box_inline(box) : NULL;
	box->ib.size = len;
	box->ib.max = max;
	box->ib.wpos = 0;
	box->ib.rpos = 0;
	box->ib.fd = -1;
	return &box->ib;
}

/* Give back the box of b, whose storage has been wiped and released. */
void
libimsg__ibuf_release(struct ibuf *b)
{
	free(ibuf_box(b));
}
