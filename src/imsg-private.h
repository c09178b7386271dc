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

/*
 * Tuning.  Two sizes drive everything: a channel with light traffic uses
 * small chunks of memory and gives them back as soon as it is idle; one
 * with sustained traffic grows into large ones.  The read buffer and the
 * write batches come in these two sizes.
 */
#define MSGBUF_SMALL		4096
#define MSGBUF_LARGE		65536
/*
 * A read buffer must hold any header a reader may declare (at most
 * IBUF_READ_SIZE / 2 bytes) with room to spare to read into.
 */
#if MSGBUF_LARGE < IBUF_READ_SIZE
#error "MSGBUF_LARGE must hold the largest header twice"
#endif
/*
 * A write batch after the first of an idle queue.  Larger than the C
 * library's first mmap threshold (128 KiB in glibc): the first one is
 * mapped, and its free raises glibc's thresholds, trimming included,
 * above it.  A writer that queues and sends rounds of batches then
 * reuses heap memory, where 64 KiB batches made glibc give the heap top
 * back and fault it in again every round (a brk call per round; 2.6
 * times the throughput for 256-byte messages, BENCHMARKS.md).
 */
#define MSGBUF_BATCH_LARGE	(4 * MSGBUF_LARGE)
/* A batch's table has room for a message per 64 bytes of it. */
#define MSGBUF_BATCH_NMSG(size)	((size) / 64)
/* Imsgs without a descriptor up to this size are copied into batches. */
#define MSGBUF_BATCH_MSGMAX	(MSGBUF_SMALL / 4)
#if MSGBUF_BATCH_MSGMAX > MSGBUF_SMALL
#error "a batched message must fit a small batch"
#endif
/*
 * A message left to fill that is at least this large is finished by a
 * read of its own, so the next header is parsed only after the program
 * had a chance to free this one: a reader of large messages holds one at
 * a time, not two.
 */
#define MSGBUF_DIRECT_ALONE	MSGBUF_LARGE

/*
 * Every struct ibuf the library allocates is the tail of a box.  The box
 * records what the public struct cannot: how much storage buf really
 * has, so a dynamic ibuf grows without a realloc per add, and whether
 * the ibuf is a write batch.  Storage that fits is allocated inline,
 * right after the box, so an ibuf costs one malloc.  Views
 * (IBUF_FD_VIEW) are never boxes: they live in the caller's memory.
 * The box is 16-aligned, so inline storage keeps malloc's alignment and
 * the payload of a received imsg, 16 bytes in, does too.
 */
#define LIBIMSG_ALIGN16	__attribute__((aligned(16)))

struct ibuf_box {
	size_t		 cap;		/* bytes of storage at ib.buf */
	uint16_t	 flags;
	uint16_t	 slaboff;	/* in a slab: 16-byte units from it */
	struct ibuf	 ib;
} LIBIMSG_ALIGN16;
#define IBUF_BOX_BATCH		0x01
#define IBUF_BOX_SLAB		0x02

/*
 * A slab: received messages of up to MSGBUF_SLAB_MSGMAX bytes, box and
 * storage together, carved one after the other by one reader, so that a
 * read of many small messages costs one malloc, not one each.  A message
 * kept pins its slab, and slabs are small: it then costs at most
 * MSGBUF_SMALL bytes.  Messages may be freed on any thread, so the count
 * is atomic; the reader counts what it carves privately (carved) and
 * adds it when it moves on (retire), after which refs reaches 0 with the
 * last free.  Until then refs is minus the frees so far.
 */
struct slab {
	int32_t		 refs;		/* atomic; see above */
	uint32_t	 carved;	/* messages carved (reader only) */
	size_t		 used;		/* bytes carved, header included */
} LIBIMSG_ALIGN16;
#define MSGBUF_SLAB_MSGMAX	(MSGBUF_SMALL / 4)
#if MSGBUF_SMALL / 16 > 65535
#error "a slab offset must fit ibuf_box.slaboff"
#endif

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

/*
 * A write batch is an ibuf whose storage holds whole imsgs one after the
 * other, sent with one iovec.  Where each message ends is recorded when
 * it is reserved, in a table after the data, so the write path counts
 * the messages sent without reading what is in them.
 */
struct wbatch {
	uint32_t	 nmsg;		/* messages reserved */
	uint32_t	 nsent;		/* of those, written completely */
	uint32_t	 end[];		/* offset just after each message */
};

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
	uint32_t		 queued;	/* messages in wq (queuelen) */
	struct ibuf		*wbatch;	/* batch at the tail of wq, or NULL */

	/*
	 * Read side; readhdr is NULL for a write-only msgbuf.  rbuf holds
	 * only what is not a message yet: fewer than hdrsize bytes of a
	 * header, at its start.  Once a header is whole its message is
	 * made, and every later byte of it goes there: rlen is 0 while
	 * rmsg is being filled.  rbuf is allocated for a read, and freed,
	 * with rslab, after a read of less than MSGBUF_SMALL bytes that
	 * leaves it empty.
	 */
	struct ibufqueue	 rq;		/* received, complete messages */
	unsigned char		*rbuf;
	size_t			 rcap;		/* bytes at rbuf */
	size_t			 rlen;		/* bytes of a header at rbuf */
	int			 rbig;		/* reads fill rbuf: make it large */
	struct ibuf		*rmsg;		/* message being filled */
	struct slab		*rslab;		/* slab small messages come from */
	struct ibuf		*(*readhdr)(struct ibuf *, void *, int *);
	void			*rarg;
	size_t			 hdrsize;
	/* The imsg layer's hook into the reader: see read.c. */
	size_t			(*rwhole)(const unsigned char *, size_t, void *);
	int			 fdlast;	/* descriptor policy, see read.c */
	int			 rerr;		/* sticky read error, 0 if none */
	int			 rpendfd;	/* descriptor for the kept header */
	int			 notsock;	/* fd+1 of a pipe: use read/writev */
};

/* alloc.c */
struct ibuf	*libimsg__ibuf_alloc(size_t, size_t);
void		 libimsg__ibuf_release(struct ibuf *);
struct ibuf	*libimsg__slab_carve(struct slab **, size_t);
void		 libimsg__slab_retire(struct slab *);

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

/* msgbuf.c */
void		*libimsg__msgbuf_batch_new(struct msgbuf *, size_t);
void		 libimsg__msgbuf_drain(struct msgbuf *, size_t);
void		 libimsg__msgbuf_drop_head(struct msgbuf *);
void		 libimsg__msgbuf_imsg_reader(struct msgbuf *,
		    size_t (*)(const unsigned char *, size_t, void *));
struct ibuf	*libimsg__msgbuf_msg_alloc(struct msgbuf *, size_t);

static inline struct wbatch *
wbatch_of(struct ibuf *b)
{
	return (struct wbatch *)(void *)(b->buf + b->max);
}

/*
 * Reserve len bytes (len <= MSGBUF_BATCH_MSGMAX) for one whole imsg at
 * the end of the write queue; the caller fills them at once.
 */
static inline void *
libimsg__msgbuf_batch_reserve(struct msgbuf *m, size_t len)
{
	struct ibuf *b = m->wbatch;
	struct wbatch *wb;

	if (b == NULL || b->max - b->wpos < len ||
	    wbatch_of(b)->nmsg == MSGBUF_BATCH_NMSG(b->max))
		return libimsg__msgbuf_batch_new(m, len);
	wb = wbatch_of(b);
	b->wpos += len;
	wb->end[wb->nmsg++] = (uint32_t)b->wpos;
	m->queued++;
	return b->buf + b->wpos - len;
}

/* write.c */
struct msghdr;
ssize_t		 libimsg__write_nosigpipe(int, struct msghdr *, int);

/* read.c */
void		 libimsg__read_release(struct msgbuf *);
/* The invariants of the read state, checked in debug builds. */
#ifdef LIBIMSG_DEBUG
void		 libimsg__read_check(const struct msgbuf *);
#endif

#endif /* LIBIMSG_PRIVATE_H */
