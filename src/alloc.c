/*
 * Where ibuf storage comes from: one malloc per ibuf, its box and its
 * inline storage together, freed when it goes; and small slabs that a
 * reader carves its small messages from (struct slab).  There is no
 * cache: the C library's allocator already keeps per-thread caches and
 * reuses what was freed, and one of ours would hold memory the program
 * no longer uses, per thread, for as long as the thread lives.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "imsg-private.h"

static struct ibuf *
box_init(struct ibuf_box *box, unsigned char *buf, size_t len, size_t max)
{
	box->cap = len;
	box->flags = 0;
	box->slaboff = 0;
	box->ib.entry.tqe_next = NULL;
	box->ib.entry.tqe_prev = NULL;
	box->ib.buf = len > 0 ? buf : NULL;
	box->ib.size = len;
	box->ib.max = max;
	box->ib.wpos = 0;
	box->ib.rpos = 0;
	box->ib.fd = -1;
	return &box->ib;
}

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
	return box_init(box, ibuf_box_inline(box), len, max);
}

/* Count n more messages of s as gone; the step to 0 frees it. */
static void
slab_drop(struct slab *s, int32_t n)
{
	if (__atomic_sub_fetch(&s->refs, n, __ATOMIC_ACQ_REL) == 0)
		free(s);
}

/* Give back the box of b, whose storage has been wiped and released. */
void
libimsg__ibuf_release(struct ibuf *b)
{
	struct ibuf_box *box = ibuf_box(b);

	if (box->flags & IBUF_BOX_SLAB)
		slab_drop((struct slab *)(void *)((char *)box -
		    (size_t)box->slaboff * 16), 1);
	else
		free(box);
}

/* The reader carves no more from s: it goes with its last message. */
void
libimsg__slab_retire(struct slab *s)
{
	if (s != NULL)
		slab_drop(s, -(int32_t)s->carved);
}

/* Retire the slab at *sp, if any, and start a fresh one there. */
static struct slab *
slab_new(struct slab **sp)
{
	struct slab *s;

	libimsg__slab_retire(*sp);
	*sp = NULL;
	if ((s = malloc(MSGBUF_SMALL)) == NULL)
		return NULL;
	s->refs = 0;
	s->carved = 0;
	s->used = sizeof(*s);
	*sp = s;
	return s;
}

/*
 * Carve a fixed-size ibuf of len bytes (at most MSGBUF_SLAB_MSGMAX) out
 * of *sp, moving on to a fresh slab when this one is full.  The storage
 * is not initialised.
 */
struct ibuf *
libimsg__slab_carve(struct slab **sp, size_t len)
{
	struct slab *s = *sp;
	struct ibuf_box *box;
	size_t need = sizeof(*box) + ((len + 15) & ~(size_t)15);

	if (s == NULL || MSGBUF_SMALL - s->used < need) {
		if ((s = slab_new(sp)) == NULL)
			return NULL;
	}
	box = (struct ibuf_box *)(void *)((char *)s + s->used);
	box_init(box, ibuf_box_inline(box), len, len);
	box->flags = IBUF_BOX_SLAB;
	box->slaboff = (uint16_t)(s->used / 16);
	s->used += need;
	s->carved++;
	return &box->ib;
}
