/*
 * The msgbuf: a write queue of ibufs and, for readers, the queue of
 * received messages.  It knows nothing of the imsg format: the read path
 * (read.c) cuts the stream with the reader's header callback, the write
 * path (write.c) sends what is queued.  Small messages may share a write
 * batch; the batch records where each one ends when it is reserved.
 */
#include <errno.h>
#include <stdlib.h>

#include "imsg-private.h"

static struct msgbuf *
msgbuf_alloc(void)
{
	struct msgbuf *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	libimsg__q_init(&m->wq);
	libimsg__q_init(&m->rq);
	m->rpendfd = -1;
	return m;
}

struct msgbuf *
msgbuf_new(void)
{
	return msgbuf_alloc();
}

/* The read buffer is made by the first read, not here: see read.c. */
struct msgbuf *
msgbuf_new_reader(size_t hdrsz,
    struct ibuf *(*readhdr)(struct ibuf *, void *, int *), void *arg)
{
	struct msgbuf *m;

	if (hdrsz == 0 || hdrsz > IBUF_READ_SIZE / 2 || readhdr == NULL) {
		errno = EINVAL;
		return NULL;
	}
	if ((m = msgbuf_alloc()) == NULL)
		return NULL;
	m->hdrsize = hdrsz;
	m->readhdr = readhdr;
	m->rarg = arg;
	return m;
}

/*
 * The imsg layer's one hook into the reader (read.c): whole tells the
 * length of a message that may be taken without the header callback,
 * and a descriptor goes to the last header of its read that claims it,
 * not the first.
 */
void
libimsg__msgbuf_imsg_reader(struct msgbuf *m,
    size_t (*whole)(const unsigned char *, size_t, void *))
{
	m->rwhole = whole;
	m->fdlast = 1;
}

/*
 * Storage for a received message of len bytes, for the library's own
 * header callbacks: small ones share the reader's slab.
 */
struct ibuf *
libimsg__msgbuf_msg_alloc(struct msgbuf *m, size_t len)
{
	if (len <= MSGBUF_SLAB_MSGMAX)
		return libimsg__slab_carve(&m->rslab, len);
	return libimsg__ibuf_alloc(len, len);
}

void
msgbuf_clear(struct msgbuf *m)
{
	ibufq_flush(&m->wq);
	ibufq_flush(&m->rq);
	m->queued = 0;
	m->wbatch = NULL;
	libimsg__read_release(m);
	m->rbig = 0;
	m->rerr = 0;
}

void
msgbuf_free(struct msgbuf *m)
{
	if (m == NULL)
		return;
	msgbuf_clear(m);
	free(m);
}

uint32_t
msgbuf_queuelen(struct msgbuf *m)
{
	return m->queued;
}

struct ibuf *
msgbuf_get(struct msgbuf *m)
{
	return libimsg__q_pop(&m->rq);
}

void
ibuf_close(struct msgbuf *m, struct ibuf *b)
{
	if (b->fd == IBUF_FD_VIEW)
		libimsg__ibuf_view_abort("ibuf_close");
	libimsg__q_push(&m->wq, b);
	m->queued++;
	/* The batch is no longer at the tail; later messages must follow. */
	m->wbatch = NULL;
}

void
msgbuf_concat(struct msgbuf *m, struct ibufqueue *from)
{
	m->queued += from->count;
	m->wbatch = NULL;
	libimsg__q_concat(&m->wq, from);
}

/*
 * Start a batch for len bytes at the end of the write queue and reserve
 * them; libimsg__msgbuf_batch_reserve comes here when the current batch
 * is full or there is none.  A batch that follows a full one still
 * queued is large; any other is small, so a message or two queued
 * behind something else cost a small one.
 */
void *
libimsg__msgbuf_batch_new(struct msgbuf *m, size_t len)
{
	struct ibuf *b;
	struct wbatch *wb;
	size_t size, table;

	size = m->wbatch == NULL ? MSGBUF_SMALL : MSGBUF_BATCH_LARGE;
	table = sizeof(*wb) + MSGBUF_BATCH_NMSG(size) * sizeof(wb->end[0]);
	if ((b = libimsg__ibuf_alloc(size + table, size)) == NULL)
		return NULL;
	b->size = size;
	ibuf_box(b)->flags |= IBUF_BOX_BATCH;
	wb = wbatch_of(b);
	wb->nmsg = 1;
	wb->nsent = 0;
	wb->end[0] = (uint32_t)len;
	b->wpos = len;
	libimsg__q_push(&m->wq, b);
	m->wbatch = b;
	m->queued++;
	return b->buf;
}

/* Count the messages of batch b that are now completely sent. */
static void
batch_sent(struct msgbuf *m, struct ibuf *b)
{
	struct wbatch *wb = wbatch_of(b);

	while (wb->nsent < wb->nmsg && wb->end[wb->nsent] <= b->rpos) {
		wb->nsent++;
		m->queued--;
	}
}

/* Messages of b not yet counted as sent. */
static uint32_t
unsent_msgs(struct ibuf *b)
{
	struct wbatch *wb;

	if ((ibuf_box(b)->flags & IBUF_BOX_BATCH) == 0)
		return 1;
	wb = wbatch_of(b);
	return wb->nmsg - wb->nsent;
}

/* Free the buffer at the head of the write queue, sent or not. */
void
libimsg__msgbuf_drop_head(struct msgbuf *m)
{
	struct ibuf *b;

	if ((b = libimsg__q_pop(&m->wq)) == NULL)
		return;
	m->queued -= unsent_msgs(b);
	if (ibuf_box(b)->flags & IBUF_BOX_BATCH) {
		if (m->wbatch == b)
			m->wbatch = NULL;
		/* What was sent is wiped already, beyond wpos is unused. */
		libimsg__wipe(b->buf + b->rpos, b->wpos - b->rpos);
		b->size = 0;
	}
	ibuf_free(b);
}

/*
 * Account for n bytes written from the head of the queue.  Buffers sent
 * whole are freed (ibuf_free wipes them and closes any descriptor they
 * still hold); so are empty ones, so they can never stall the queue,
 * unless one still holds a descriptor: that goes with the next bytes
 * written, as upstream sends it.
 */
void
libimsg__msgbuf_drain(struct msgbuf *m, size_t n)
{
	struct ibuf *b;
	size_t size;

	while ((b = m->wq.head) != NULL) {
		size = b->wpos - b->rpos;
		if (n < size || (size == 0 && n == 0 && b->fd >= 0 &&
		    b->entry.tqe_next != NULL)) {
			/* A message leaves no copy behind once written. */
			if (n > 0)
				libimsg__wipe(b->buf + b->rpos, n);
			b->rpos += n;
			if (ibuf_box(b)->flags & IBUF_BOX_BATCH)
				batch_sent(m, b);
			return;
		}
		n -= size;
		libimsg__msgbuf_drop_head(m);
	}
}
