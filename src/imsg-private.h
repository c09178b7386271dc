/*
 * Definitions shared by the files of libimsg and by nothing else.
 */
#ifndef LIBIMSG_PRIVATE_H
#define LIBIMSG_PRIVATE_H

#include <sys/types.h>
#include <sys/uio.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Everything imsg.h declares is the API and gets default visibility; the
 * build makes everything else hidden, and the version script agrees.
 */
#pragma GCC visibility push(default)
#include "imsg.h"
#pragma GCC visibility pop

/* Bit 31 of the wire length: the message carries a descriptor. */
#define IMSG_FD_MARK		0x80000000U
/* imsgbuf.flags: descriptor passing allowed (upstream's private name). */
#define IMSG_ALLOW_FDPASS	0x01
/* ibuf.fd of a view: memory the ibuf does not own; never freed or queued. */
#define IBUF_FD_VIEW		(-2)

/* Bytes the reader asks the kernel for at once, besides direct reads. */
#define MSGBUF_READ_MAX		65536
/* A read block is started over once the stream in it reaches this. */
#define MSGBUF_RESTART_AT	32768
/* Less free room than this in the read block: move to a fresh one. */
#define MSGBUF_READ_MIN		16384
/* Largest unfinished imsg left for the next read rather than begun. */
#define MSGBUF_WAIT_MAX		4096
/* Largest message delivered in place, in the read block. */
#define MSGBUF_INPLACE_MAX	65536
/* Small imsgs are copied into shared batch buffers of this size. */
#define MSGBUF_BATCH_SIZE	65536
#define MSGBUF_BATCH_MAXMSG	(MSGBUF_BATCH_SIZE / 4)
/* A batch holds at most 4096 imsgs: its box counts them in 16 bits. */
#if MSGBUF_BATCH_SIZE / 16 > 65535
#error "MSGBUF_BATCH_SIZE too large for ibuf_box.nmsg"
#endif
/* Emptied batches a msgbuf keeps: enough for a writer 256 KiB ahead. */
#define MSGBUF_BATCH_SPARES	4

/*
 * Every struct ibuf the library allocates is the tail of a box.  The box
 * records what the public struct cannot: how much storage buf really
 * has, so a dynamic ibuf grows without a realloc per add, and whether the
 * ibuf is a write batch holding several messages.  Storage that fits is
 * allocated inline, right after the box, so an ibuf costs one malloc.
 * Views (IBUF_FD_VIEW) are never boxes: they live in the caller's memory.
 */
/*
 * Boxes and block headers are 16-aligned, so inline storage, the stream
 * in a block and the boxes stacked in it stay 16-aligned on 32-bit
 * systems too (the library needs GCC or clang for its atomics anyway).
 */
#define LIBIMSG_ALIGN16	__attribute__((aligned(16)))

struct ibuf_box {
	size_t		 cap;		/* bytes of storage at ib.buf */
	size_t		 icap;		/* bytes of inline storage */
	struct mblock	*blk;		/* block the box was carved from */
	uint32_t	 cursor;	/* batch: offset of the first message */
	uint16_t	 nmsg;		/* batch: messages not yet fully sent */
	uint16_t	 flags;
	struct ibuf	 ib;
} LIBIMSG_ALIGN16;
#define IBUF_BOX_BATCH		0x01
#define IBUF_BOX_BLOCK		0x02	/* box lives in an mblock */
#define IBUF_BOX_INPLACE	0x04	/* buf points into the block's stream */

/*
 * A message block.  Blocks serve two purposes, with the same counting.
 *
 * The reader's block is its read buffer: the kernel copies the stream
 * into it and a received imsg that lies there whole and 16-aligned is
 * handed out in place, its box stacked down from the top of the block
 * while the stream fills it from the bottom.  The payload is then never
 * copied in user space.
 *
 * A copy block takes the other small messages (misaligned, or cut by the
 * end of the read block): each is carved, box and storage together, one
 * after the other, instead of taking a box of its own.
 *
 * A block goes back to the cache when the reader has retired it and
 * every message carved from it has been freed.  Messages may be freed on
 * another thread (imsg_ibufq_push hands them over), so that count is
 * atomic; but only frees touch it.  Carving just counts in carved, which
 * the reader alone uses, and retiring adds carved to refs: refs then
 * reaches 0 when the last message has gone and been counted.  Before that
 * refs is minus the number of messages freed and counted so far, and the
 * reader may start the block over when refs == -carved.  A thread counts
 * its frees from one block together, in one atomic step (alloc.c).
 */
struct mblock {
	int32_t		 refs;		/* atomic; see above */
	uint32_t	 carved;	/* messages carved (reader only) */
	size_t		 used;		/* copy block: bytes carved so far */
	size_t		 size;		/* bytes of storage after the header */
} LIBIMSG_ALIGN16;
#define MBLOCK_SIZE		(512 * 1024)
/* Largest message carved from a copy block; larger ones get a box each. */
#define MBLOCK_MAXMSG		4096

static inline unsigned char *
mblock_data(struct mblock *blk)
{
	return (unsigned char *)(blk + 1);
}

static inline struct ibuf_box *
ibuf_box(struct ibuf *b)
{
	return (struct ibuf_box *)(void *)((char *)b -
	    offsetof(struct ibuf_box, ib));
}

static inline unsigned char *
ibuf_box_inline(struct ibuf_box *box)
{
	return (unsigned char *)(box + 1);
}

/* A fresh, unqueued ibuf of len bytes (max limit) stored at buf. */
static inline struct ibuf *
ibuf_box_init(struct ibuf_box *box, uint16_t flags, struct mblock *blk,
    unsigned char *buf, size_t cap, size_t len, size_t max)
{
	box->cap = box->icap = cap;
	box->flags = flags;
	box->nmsg = 0;
	box->cursor = 0;
	box->blk = blk;
	box->ib.entry.tqe_next = NULL;
	box->ib.entry.tqe_prev = NULL;
	box->ib.buf = buf;
	box->ib.size = len;
	box->ib.max = max;
	box->ib.wpos = 0;
	box->ib.rpos = 0;
	box->ib.fd = -1;
	return &box->ib;
}

/*
 * A FIFO of ibufs linked through ibuf.entry, with TAILQ's conventions:
 * tqe_prev points at the previous element's tqe_next (or at head).
 */
struct ibufqueue {
	struct ibuf	 *head;
	struct ibuf	**tailp;
	uint32_t	  count;
};

struct msgbuf {
	struct ibufqueue	 wq;		/* ibufs waiting to be written */
	struct ibufqueue	 rq;		/* received, complete messages */
	uint32_t		 queued;	/* messages in wq (queuelen) */
	struct ibuf		*wbatch;	/* batch at the tail of wq, or NULL */
	struct ibufqueue	 wspare;	/* emptied batches kept for reuse */

	/*
	 * Read side; readhdr is NULL for a write-only msgbuf.  The stream
	 * is read into rblk at rlen.  Bytes before rhead belong to messages
	 * (or were wiped once copied out); rhead..rlen is what the last read
	 * left unparsed: a header not yet whole, or a small imsg not yet
	 * whole, of rwait bytes, whose header passed the limit.  Boxes of
	 * messages delivered in place sit from rtop up.
	 */
	struct mblock		*rblk;
	size_t			 rhead;
	size_t			 rlen;
	size_t			 rtop;
	uint32_t		 rwait;
	struct ibuf		*rmsg;		/* message being filled */
	struct ibuf		*(*readhdr)(struct ibuf *, void *, int *);
	void			*rarg;
	/* The imsgbuf whose imsgs are read, if readhdr is the imsg one. */
	const struct imsgbuf	*imsgbuf;
	size_t			 hdrsize;
	int			 rerr;		/* sticky read error, 0 if none */
	int			 rpendfd;	/* descriptor for the kept header */
	int			 notsock;	/* fd+1 of a pipe: use read/writev */
	struct mblock		*cblk;		/* copy block */
};

/* alloc.c */
struct ibuf	*libimsg__ibuf_alloc(size_t, size_t);
void		 libimsg__ibuf_release(struct ibuf *);
struct mblock	*libimsg__mblock_new(void);
int		 libimsg__mblock_restart(struct mblock *, uint32_t);
struct ibuf	*libimsg__mblock_carve(struct mblock **, size_t);
void		 libimsg__mblock_retire(struct mblock *);
void		 libimsg__mblock_settle(void);

/* ibuf.c */
void		*libimsg__ibuf_reserve_raw(struct ibuf *, size_t);
void		 libimsg__wipe(void *, size_t);
void		 libimsg__ibuf_view_abort(const char *);

/* ibufq.c */
void		 libimsg__q_init(struct ibufqueue *);
void		 libimsg__q_concat(struct ibufqueue *, struct ibufqueue *);

/* Every message passes through these twice: they are inline. */
static inline void
libimsg__q_push(struct ibufqueue *q, struct ibuf *b)
{
	b->entry.tqe_next = NULL;
	b->entry.tqe_prev = q->tailp;
	*q->tailp = b;
	q->tailp = &b->entry.tqe_next;
	q->count++;
}

static inline struct ibuf *
libimsg__q_pop(struct ibufqueue *q)
{
	struct ibuf *b;

	if ((b = q->head) == NULL)
		return NULL;
	q->head = b->entry.tqe_next;
	if (q->head != NULL)
		q->head->entry.tqe_prev = &q->head;
	else
		q->tailp = &q->head;
	b->entry.tqe_next = NULL;
	b->entry.tqe_prev = NULL;
	q->count--;
	return b;
}

/* read.c */
struct ibuf	*libimsg__read_inplace(struct msgbuf *, const struct ibuf *,
		    size_t);
int		 libimsg__read_checked(const struct msgbuf *, const struct ibuf *,
		    uint32_t);

/* msgbuf.c */
void		*libimsg__msgbuf_batch_new(struct msgbuf *, size_t);
void		 libimsg__msgbuf_drain(struct msgbuf *, size_t);

/*
 * Reserve len bytes (len <= MSGBUF_BATCH_MAXMSG) for one whole imsg at
 * the end of the write queue.  The caller fills them with a complete imsg
 * at once: the drain walks the headers in a batch to count messages sent.
 */
static inline void *
libimsg__msgbuf_batch_reserve(struct msgbuf *m, size_t len)
{
	struct ibuf *b = m->wbatch;

	if (b == NULL || b->max - b->wpos < len)
		return libimsg__msgbuf_batch_new(m, len);
	ibuf_box(b)->nmsg++;
	m->queued++;
	b->wpos += len;
	return b->buf + b->wpos - len;
}

#endif /* LIBIMSG_PRIVATE_H */
