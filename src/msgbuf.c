/*
 * The msgbuf: a write queue of ibufs, and for readers the queue of
 * received messages and the read buffer.  The read path is in read.c,
 * the system calls of the write path in write.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "imsg-private.h"

static struct msgbuf *
msgbuf_alloc(void)
{
	struct msgbuf *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	libimsg__q_init(&m->wq);
	libimsg__q_init(&m->rq);
	libimsg__q_init(&m->wspare);
	m->rpendfd = -1;
	return m;
}

struct msgbuf *
msgbuf_new(void)
{
	return msgbuf_alloc();
}

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
	/* Made now, so a reader that exists can read without allocating. */
	if ((m->rblk = libimsg__mblock_new()) == NULL) {
		free(m);
		return NULL;
	}
	m->rtop = m->rblk->size;
	m->hdrsize = hdrsz;
	m->readhdr = readhdr;
	m->rarg = arg;
	return m;
}

void
msgbuf_clear(struct msgbuf *m)
{
	ibufq_flush(&m->wq);
	ibufq_flush(&m->rq);
	m->queued = 0;
	m->wbatch = NULL;
	ibuf_free(m->rmsg);
	m->rmsg = NULL;
	/* Messages still out keep the read block until they are freed. */
	if (m->rblk != NULL) {
		libimsg__wipe(mblock_data(m->rblk) + m->rhead,
		    m->rlen - m->rhead);
		libimsg__mblock_retire(m->rblk);
		m->rblk = NULL;
	}
	m->rhead = m->rlen = m->rtop = 0;
	m->rwait = 0;
	m->rerr = 0;
	libimsg__mblock_retire(m->cblk);
	m->cblk = NULL;
	if (m->rpendfd != -1)
		close(m->rpendfd);
	m->rpendfd = -1;
}

void
msgbuf_free(struct msgbuf *m)
{
	if (m == NULL)
		return;
	msgbuf_clear(m);
	ibufq_flush(&m->wspare);
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
 * is full or there is none.  Small messages share batch buffers, so
 * composing them allocates nothing and writing them takes one iovec per
 * batch, not one per message.
 */
void *
libimsg__msgbuf_batch_new(struct msgbuf *m, size_t len)
{
	struct ibuf *b;
	struct ibuf_box *box;

	if ((b = libimsg__q_pop(&m->wspare)) != NULL) {
		b->rpos = b->wpos = 0;
	} else if ((b = libimsg__ibuf_alloc(MSGBUF_BATCH_SIZE,
	    MSGBUF_BATCH_SIZE)) == NULL)
		return NULL;
	box = ibuf_box(b);
	box->flags |= IBUF_BOX_BATCH;
	box->nmsg = 1;
	box->cursor = 0;
	libimsg__q_push(&m->wq, b);
	m->wbatch = b;
	m->queued++;
	b->wpos = len;
	return b->buf;
}

/* Count the messages of a batch that are now completely sent. */
static void
batch_account(struct msgbuf *m, struct ibuf *b)
{
	struct ibuf_box *box = ibuf_box(b);
	uint32_t len;

	while (box->nmsg > 0) {
		memcpy(&len, b->buf + box->cursor +
		    offsetof(struct imsg_hdr, len), sizeof(len));
		len &= ~IMSG_FD_MARK;
		if (box->cursor + len > b->rpos)
			break;
		box->cursor += len;
		box->nmsg--;
		m->queued--;
	}
}

static void
wq_release(struct msgbuf *m, struct ibuf *b)
{
	if ((ibuf_box(b)->flags & IBUF_BOX_BATCH) == 0) {
		m->queued--;
		ibuf_free(b);
		return;
	}
	if (m->wbatch == b)
		m->wbatch = NULL;
	/*
	 * Keep a few emptied batches: steady traffic then allocates nothing.
	 * Like the read buffer, they stay private to the msgbuf until the
	 * next messages overwrite them; ibuf_free wipes them when they go.
	 */
	if (m->wspare.count < MSGBUF_BATCH_SPARES)
		libimsg__q_push(&m->wspare, b);
	else
		ibuf_free(b);
}

/*
 * Account for n bytes written from the head of the queue.  Buffers sent
 * whole are released (closing any descriptor they still hold); so are
 * empty ones, even when n is 0, so they can never stall the queue.  The
 * batch being filled, once sent whole, starts over where it is instead:
 * a program that writes after every message then reuses one batch.  An
 * empty batch at the head is harmless: the next write releases it.
 */
void
libimsg__msgbuf_drain(struct msgbuf *m, size_t n)
{
	struct ibuf *b;
	struct ibuf_box *box;
	size_t size;

	while ((b = m->wq.head) != NULL) {
		box = ibuf_box(b);
		size = b->wpos - b->rpos;
		if (n < size) {
			b->rpos += n;
			if (box->flags & IBUF_BOX_BATCH)
				batch_account(m, b);
			return;
		}
		n -= size;
		if (box->flags & IBUF_BOX_BATCH) {
			/* Every message in it has gone. */
			m->queued -= box->nmsg;
			box->nmsg = 0;
			if (b == m->wbatch && b->entry.tqe_next == NULL &&
			    size > 0) {
				b->rpos = b->wpos = 0;
				box->cursor = 0;
				return;
			}
		}
		b->rpos = b->wpos;
		libimsg__q_pop(&m->wq);
		wq_release(m, b);
	}
}
