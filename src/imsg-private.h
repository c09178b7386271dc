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
#define MSGBUF_RBUF_SIZE	65536
/* Small imsgs are copied into shared batch buffers of this size. */
#define MSGBUF_BATCH_SIZE	65536
#define MSGBUF_BATCH_MAXMSG	(MSGBUF_BATCH_SIZE / 4)
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
struct ibuf_box {
	size_t		 cap;		/* bytes of storage at ib.buf */
	size_t		 icap;		/* bytes of inline storage */
	uint32_t	 flags;
	uint32_t	 nmsg;		/* batch: messages not yet fully sent */
	size_t		 cursor;	/* batch: offset of the first of them */
	struct mblock	*blk;		/* block the box was carved from */
	size_t		 pad;		/* keeps inline storage 16-aligned */
	struct ibuf	 ib;
};
#define IBUF_BOX_BATCH		0x01
#define IBUF_BOX_BLOCK		0x02

/*
 * A message block: received small messages are carved one after the
 * other out of a block, box and storage together, instead of each taking
 * a box of its own.  Parsing a read then walks memory in order, and one
 * allocation serves hundreds of messages.
 *
 * The block goes back to the cache when the reader has retired it and
 * every message carved from it has been freed.  Messages may be freed on
 * another thread (imsg_ibufq_push hands them over), so that count is
 * atomic; but only frees touch it, one atomic step each.  Carving just
 * counts in carved, which the reader alone uses, and retiring adds carved
 * to refs: refs then reaches 0 exactly when the last message goes.
 * Before that refs is minus the number of messages freed so far.
 */
struct mblock {
	int32_t		 refs;		/* atomic; see above */
	uint32_t	 carved;	/* messages carved (reader only) */
	size_t		 used;		/* bytes carved so far */
	size_t		 size;		/* bytes of storage after the header */
	size_t		 pad2;		/* keeps the storage 16-aligned */
};
#define MBLOCK_SIZE		(256 * 1024)
/* Largest message carved from a block; larger ones get a box each. */
#define MBLOCK_MAXMSG		4096

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

	/* Read side; rbuf is NULL for a write-only msgbuf. */
	unsigned char		*rbuf;
	size_t			 rlen;		/* bytes held in rbuf */
	struct ibuf		*rmsg;		/* message being filled */
	struct ibuf		*(*readhdr)(struct ibuf *, void *, int *);
	void			*rarg;
	size_t			 hdrsize;
	int			 rerr;		/* sticky read error, 0 if none */
	int			 rpendfd;	/* descriptor for the kept header */
	int			 notsock;	/* fd+1 of a pipe: use read/writev */
	struct mblock		*rblock;	/* block messages are carved from */
};

/* alloc.c */
struct ibuf	*libimsg__ibuf_alloc(size_t, size_t);
void		 libimsg__ibuf_release(struct ibuf *);
struct ibuf	*libimsg__mblock_carve(struct mblock **, size_t);
void		 libimsg__mblock_retire(struct mblock *);

/* ibuf.c */
void		*libimsg__ibuf_reserve_raw(struct ibuf *, size_t);
void		 libimsg__wipe(void *, size_t);
void		 libimsg__ibuf_view_abort(const char *);

/* ibufq.c */
void		 libimsg__q_init(struct ibufqueue *);
void		 libimsg__q_push(struct ibufqueue *, struct ibuf *);
struct ibuf	*libimsg__q_pop(struct ibufqueue *);
void		 libimsg__q_concat(struct ibufqueue *, struct ibufqueue *);

/* msgbuf.c */
void		*libimsg__msgbuf_batch_reserve(struct msgbuf *, size_t);
void		 libimsg__msgbuf_drain(struct msgbuf *, size_t);

#endif /* LIBIMSG_PRIVATE_H */
