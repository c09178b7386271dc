/*
 * Queues of ibufs: the ibufq_* API and the list operations the msgbuf
 * queues are built on.
 */
#include <errno.h>
#include <stdlib.h>

#include "imsg-private.h"

void
libimsg__q_init(struct ibufqueue *q)
{
	q->head = NULL;
	q->tailp = &q->head;
	q->count = 0;
}

/* Move every element of from to the tail of to, keeping their order. */
void
libimsg__q_concat(struct ibufqueue *to, struct ibufqueue *from)
{
	if (from->head == NULL)
		return;
	*to->tailp = from->head;
	from->head->entry.tqe_prev = to->tailp;
	to->tailp = from->tailp;
	to->count += from->count;
	libimsg__q_init(from);
}

struct ibufqueue *
ibufq_new(void)
{
	struct ibufqueue *q;

	if ((q = malloc(sizeof(*q))) == NULL)
		return NULL;
	libimsg__q_init(q);
	return q;
}

void
ibufq_flush(struct ibufqueue *q)
{
	struct ibuf *b;

	while ((b = libimsg__q_pop(q)) != NULL)
		ibuf_free(b);
}

void
ibufq_free(struct ibufqueue *q)
{
	if (q == NULL)
		return;
	ibufq_flush(q);
	free(q);
}

void
ibufq_push(struct ibufqueue *q, struct ibuf *b)
{
	if (b->fd == IBUF_FD_VIEW)
		libimsg__ibuf_view_abort("ibufq_push");
	libimsg__q_push(q, b);
}

struct ibuf *
ibufq_pop(struct ibufqueue *q)
{
	return libimsg__q_pop(q);
}

uint32_t
ibufq_queuelen(struct ibufqueue *q)
{
	return q->count;
}

void
ibufq_concat(struct ibufqueue *to, struct ibufqueue *from)
{
	libimsg__q_concat(to, from);
}
