/*
 * The read path: receive bytes (and at most one descriptor) from the
 * socket into the read block and cut them into messages with the
 * msgbuf's header callback.
 *
 * An imsg that lies whole and 16-aligned in the block is handed out
 * where the kernel put it (libimsg__read_inplace).  Any other message is
 * copied out, and the bytes it came from are wiped at once, so the block
 * never keeps a copy of a message behind its back.  A small imsg not yet
 * whole waits unparsed for the next read; a larger one is filled in
 * place, or read straight into its own buffer: a large message is
 * copied once, by the kernel.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "imsg-private.h"

/*
 * Which message a received descriptor belongs to.  The kernel ends a read
 * right after the data that carried a descriptor, and a sender puts the
 * descriptor on the first byte of its message, sending nothing with a
 * descriptor after it in the same call.  So the owner is the LAST marked
 * message whose header began in this read; a header kept from an earlier
 * read, or an earlier marked header without a descriptor of its own (a
 * peer that does not pass descriptors), never gets it.  When our read
 * buffer, not the kernel, cut the read inside a header, that header may
 * be the owner: the descriptor waits for it in m->rpendfd.
 */
struct fdoffer {
	int		 fd;		/* this read's descriptor, or -1 */
	struct ibuf	*holder;	/* message that took it, or NULL */
	int		 pend;		/* descriptor for the header kept */
};

/* Call the header callback, offering it the descriptor it may own. */
static struct ibuf *
parse_header(struct msgbuf *m, struct ibuf *hdr, int fresh,
    struct fdoffer *fo)
{
	struct ibuf *msg;
	int offer, *from;

	from = fresh ? &fo->fd : &fo->pend;
	offer = *from;
	msg = m->readhdr(hdr, m->rarg, &offer);
	if (offer != -1 || *from == -1)
		return msg;
	/* Taken: by this message, or closed with it if the callback failed. */
	if (fresh && fo->holder != NULL)
		fo->holder->fd = -1;
	if (msg == NULL) {
		*from = -1;
		if (fresh)
			fo->holder = NULL;
		return NULL;
	}
	if (fresh)
		fo->holder = msg;
	else
		*from = -1;
	return msg;
}

/*
 * Release the descriptors nobody owns.  cut is the offset of what this
 * read leaves unparsed in the block (a header not yet whole, or a small
 * unmarked imsg not yet whole), or -1; kept is where what the last read
 * left began.  A descriptor that came with the cut header (this read's,
 * or one still waiting because the header is not whole yet) waits for
 * it; no header wants more than one.
 */
static void
settle_fds(struct msgbuf *m, struct fdoffer *fo, size_t kept, size_t rstart,
    ssize_t cut)
{
	int keep = -1;

	if (fo->fd == -1 && fo->pend == -1) {
		m->rpendfd = -1;
		return;
	}

	if (cut >= 0 && (size_t)cut == kept && rstart > kept &&
	    fo->pend != -1) {
		keep = fo->pend;
		fo->pend = -1;
	} else if (cut >= 0 && (size_t)cut >= rstart && fo->holder == NULL &&
	    fo->fd != -1) {
		keep = fo->fd;
		fo->fd = -1;
	}
	m->rpendfd = keep;
	if (fo->pend != -1)
		close(fo->pend);
	if (fo->holder == NULL && fo->fd != -1)
		close(fo->fd);
}

/* Queue the message being filled once its last byte is in. */
static void
finish_message(struct msgbuf *m)
{
	if (m->rmsg->wpos == m->rmsg->max) {
		libimsg__q_push(&m->rq, m->rmsg);
		m->rmsg = NULL;
	}
}

/* Is the message being filled read in place, in the block? */
static int
rmsg_inplace(const struct msgbuf *m)
{
	return m->rmsg != NULL &&
	    (ibuf_box(m->rmsg)->flags & IBUF_BOX_INPLACE) != 0;
}

/*
 * Hand out the imsg of len bytes at off in the read block where it is,
 * if it is 16-aligned (programs cast the payload) and the block has room
 * for all of it and for its box.  NULL means: copy it.
 */
static struct ibuf *
inplace_at(struct msgbuf *m, size_t off, size_t len)
{
	struct ibuf_box *box;
	unsigned char *data = mblock_data(m->rblk);
	size_t end;

	if (len > MSGBUF_INPLACE_MAX || (off & 15) != 0)
		return NULL;
	/* The stream already read beyond this message must stay too. */
	end = off + len > m->rlen ? off + len : m->rlen;
	if (m->rtop < end + sizeof(*box))
		return NULL;
	m->rtop -= sizeof(*box);
	m->rblk->carved++;
	box = (struct ibuf_box *)(void *)(data + m->rtop);
	return ibuf_box_init(box, IBUF_BOX_BLOCK | IBUF_BOX_INPLACE, m->rblk,
	    data + off, len, len, len);
}

/*
 * Did the header hdr pass the limit when it arrived, as the imsg of len
 * bytes the last read left waiting?  The limit applies to a header when
 * it arrives, even if it changes before its message is whole.
 */
int
libimsg__read_checked(const struct msgbuf *m, const struct ibuf *hdr,
    uint32_t len)
{
	return m->rblk != NULL && m->rwait == len &&
	    hdr->buf == mblock_data(m->rblk) + m->rhead;
}

/* The same for the header callback, which sees the header hdr. */
struct ibuf *
libimsg__read_inplace(struct msgbuf *m, const struct ibuf *hdr, size_t len)
{
	uintptr_t data, at = (uintptr_t)hdr->buf;

	if (m->rblk == NULL)
		return NULL;
	data = (uintptr_t)mblock_data(m->rblk);
	if (at < data || at - data >= m->rlen)
		return NULL;
	return inplace_at(m, at - data, len);
}

/*
 * Most imsgs carry no descriptor mark, are within the limit and lie
 * whole in the block: deliver those at once, without the header
 * callback (no descriptor can be theirs, so it would do nothing more).
 * A small one that is not whole yet waits, unparsed, for the next read:
 * the block can then start over under it.  Anything else, errors
 * included, is left to the callback.
 */
enum { IMSG_SLOW, IMSG_DONE, IMSG_WAIT };

static int
imsg_fast(struct msgbuf *m, size_t off, size_t *lenp)
{
	struct ibuf *msg;
	uint32_t len;

	memcpy(&len, mblock_data(m->rblk) + off +
	    offsetof(struct imsg_hdr, len), sizeof(len));
	/* The limit never has the mark bit set: marked ones fail here. */
	if (len < IMSG_HEADER_SIZE || (len > m->imsgbuf->maxsize &&
	    (off != m->rhead || len != m->rwait)))
		return IMSG_SLOW;
	if (len > m->rlen - off) {
		if (len > MSGBUF_WAIT_MAX)
			return IMSG_SLOW;
		*lenp = len;
		return IMSG_WAIT;
	}
	if ((msg = inplace_at(m, off, len)) == NULL)
		return IMSG_SLOW;
	msg->wpos = len;
	libimsg__q_push(&m->rq, msg);
	*lenp = len;
	return IMSG_DONE;
}

/*
 * Cut the bytes in the block from rhead on into messages.  rstart is
 * where this read's bytes begin; anything before it is a header kept
 * from the last read.
 */
static int
process(struct msgbuf *m, size_t rstart, int fd)
{
	struct fdoffer fo;
	struct ibuf hdr, *msg;
	unsigned char *data = mblock_data(m->rblk), *src;
	size_t kept = m->rhead, off = m->rhead, left, n;
	uint32_t wait = 0;
	int r, saved_errno;

	fo.fd = fd;
	fo.holder = NULL;
	fo.pend = m->rpendfd;
	m->rpendfd = -1;
	hdr.buf = NULL;
	while (off < m->rlen) {
		if (m->rmsg == NULL) {
			if (m->rlen - off < m->hdrsize)
				break;
			if (m->imsgbuf != NULL) {
				r = imsg_fast(m, off, &n);
				if (r == IMSG_WAIT) {
					wait = (uint32_t)n;
					break;
				}
				if (r == IMSG_DONE) {
					off += n;
					continue;
				}
			}
			/* The same view, moved along: the callback gets it fresh. */
			if (hdr.buf == NULL)
				ibuf_from_buffer(&hdr, data, m->hdrsize);
			hdr.buf = data + off;
			hdr.rpos = 0;
			msg = parse_header(m, &hdr, off >= rstart, &fo);
			if (msg == NULL)
				goto fail;
			/* A message shorter than its header would loop. */
			if (msg->fd == IBUF_FD_VIEW ||
			    msg->max - msg->wpos < m->hdrsize) {
				if (fo.holder == msg)
					fo.holder = NULL;
				if (msg->fd != IBUF_FD_VIEW) {
					if (msg->fd == fo.fd)
						fo.fd = -1;
					ibuf_free(msg);
				}
				errno = EBADMSG;
				goto fail;
			}
			m->rmsg = msg;
		}
		left = m->rlen - off;
		n = m->rmsg->max - m->rmsg->wpos;
		if (n > left)
			n = left;
		src = data + off;
		if (rmsg_inplace(m)) {
			m->rmsg->wpos += n;
		} else {
			/* Storage is usually there already; else let it grow. */
			if (n <= m->rmsg->size - m->rmsg->wpos) {
				memcpy(m->rmsg->buf + m->rmsg->wpos, src, n);
				m->rmsg->wpos += n;
			} else if (ibuf_add(m->rmsg, src, n) == -1)
				goto fail;
			libimsg__wipe(src, n);
		}
		off += n;
		finish_message(m);
	}
	settle_fds(m, &fo, kept, rstart, off < m->rlen ? (ssize_t)off : -1);
	m->rhead = off;
	m->rwait = wait;
	return 1;

fail:
	saved_errno = errno;
	settle_fds(m, &fo, kept, rstart, -1);
	/* Nothing more is read from this stream: drop what is left of it. */
	libimsg__wipe(data + off, m->rlen - off);
	m->rhead = m->rlen = off;
	m->rwait = 0;
	errno = saved_errno;
	return -1;
}

/*
 * Start blk (the read block, started over, or a fresh one) with what the
 * last read left unparsed, moved to its start; wipe where that was.
 */
static void
rblk_move_tail(struct msgbuf *m, struct mblock *blk)
{
	unsigned char *from = mblock_data(m->rblk), *to = mblock_data(blk);
	size_t keep = m->rlen - m->rhead, stale;

	if (keep > 0 && (blk != m->rblk || m->rhead > 0)) {
		memmove(to, from + m->rhead, keep);
		/* In the same block the copy may overlap what it came from. */
		stale = blk == m->rblk && m->rhead < keep ? keep : m->rhead;
		libimsg__wipe(from + stale, m->rlen - stale);
	}
	m->rhead = 0;
	m->rlen = keep;
	m->rtop = blk->size;
}

/*
 * The message being filled in place keeps its block from starting over,
 * and a reader that frees every message it gets would then walk through
 * the whole block and out of the cache.  When it is the only message
 * left in the block, move what it has so far to the start instead: a
 * copy of part of one message buys reads into warm memory.
 */
static void
rblk_compact(struct msgbuf *m)
{
	unsigned char *data = mblock_data(m->rblk);
	struct ibuf *msg = m->rmsg;
	size_t off = (size_t)(msg->buf - data), have = msg->wpos;
	size_t len = msg->max;
	int fd = msg->fd;

	if (off == 0 || !libimsg__mblock_restart(m->rblk, 1))
		return;
	/* The old box lies above the message: the move cannot reach it. */
	memmove(data, msg->buf, have);
	libimsg__wipe(data + (off > have ? off : have),
	    off > have ? have : off);
	m->rhead = m->rlen = have;
	m->rtop = m->rblk->size;
	/* Made again at the top, with what the old one held. */
	msg = inplace_at(m, 0, len);
	msg->wpos = have;
	msg->fd = fd;
	m->rmsg = msg;
}

/*
 * Make room to read into.  A block whose messages are all gone starts
 * over: a reader that frees what it gets before reading again reads
 * into the same memory every time.  A block with messages still out and
 * too little room left for a useful read is retired for a fresh one.
 * The bytes of a message being filled in place must follow it where it
 * is (its room was set aside when it began), unless it can move.
 */
static int
rblk_prepare(struct msgbuf *m)
{
	struct mblock *blk;

	if (rmsg_inplace(m)) {
		rblk_compact(m);
		return 0;
	}
	/*
	 * Reads that bring little (a message at a time) go on where the
	 * last one ended until they are some way in: the same few pages
	 * either way, without a look at the block's count before each read.
	 */
	if (m->rblk != NULL && (m->rlen >= MSGBUF_RESTART_AT ||
	    m->rtop - m->rlen < MSGBUF_READ_MIN) &&
	    libimsg__mblock_restart(m->rblk, 0)) {
		rblk_move_tail(m, m->rblk);
		return 0;
	}
	if (m->rblk != NULL && m->rtop - m->rlen >= MSGBUF_READ_MIN)
		return 0;
	if ((blk = libimsg__mblock_new()) == NULL) {
		/* Go on with what is left, if anything is. */
		if (m->rblk != NULL && m->rtop > m->rlen)
			return 0;
		return -1;
	}
	if (m->rblk != NULL) {
		rblk_move_tail(m, blk);
		libimsg__mblock_retire(m->rblk);
	} else {
		m->rhead = m->rlen = 0;
		m->rtop = blk->size;
	}
	m->rblk = blk;
	return 0;
}

/* Keep the first descriptor of the first SCM_RIGHTS; close all others. */
static int
take_fd(struct msghdr *msg)
{
	struct cmsghdr *cmsg;
	int fd = -1, i, nfds, one;

	for (cmsg = CMSG_FIRSTHDR(msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < nfds; i++) {
			memcpy(&one, CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(int));
			if (fd == -1)
				fd = one;
			else
				close(one);
		}
	}
	return fd;
}

/* Every later read fails the same way: the stream cannot be trusted. */
static int
read_fail(struct msgbuf *m)
{
	m->rerr = errno;
	return -1;
}

static int
read_common(int sock, struct msgbuf *m, int fdpass)
{
	union {
		struct cmsghdr	hdr;
		/* Room for two: the kernel may hand over a spare to close. */
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} cmsgbuf;
	struct iovec iov[2];
	struct msghdr msg;
	struct ibuf *rmsg;
	size_t direct = 0, rstart, got, room;
	ssize_t n;
	int fd, iovcnt = 0;

	if (m->readhdr == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (m->rerr != 0) {
		errno = m->rerr;
		return -1;
	}
	/* This may move the message being filled: take it only after. */
	if (rblk_prepare(m) == -1)
		return -1;
	rmsg = m->rmsg;

	if (rmsg != NULL && !rmsg_inplace(m)) {
		/* Room already allocated in the message, up to its end. */
		direct = ibuf_box(rmsg)->cap;
		if (direct > rmsg->max)
			direct = rmsg->max;
		direct = direct > rmsg->wpos ? direct - rmsg->wpos : 0;
		if (direct > 0) {
			iov[iovcnt].iov_base = rmsg->buf + rmsg->wpos;
			iov[iovcnt].iov_len = direct;
			iovcnt++;
		}
	}
	rstart = m->rlen;
	/*
	 * Finish a large message with a read of its own: the next header
	 * is then parsed after the caller had a chance to free this one, so
	 * its storage is recycled and the reader holds one large message,
	 * not two.
	 */
	if (direct == 0 || rmsg->max <= MSGBUF_READ_MAX ||
	    direct < rmsg->max - rmsg->wpos) {
		room = m->rtop - m->rlen;
		if (room > MSGBUF_READ_MAX)
			room = MSGBUF_READ_MAX;
		iov[iovcnt].iov_base = mblock_data(m->rblk) + m->rlen;
		iov[iovcnt].iov_len = room;
		iovcnt++;
	}

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = iovcnt;
	if (fdpass) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
	}

	for (;;) {
		if (m->notsock == sock + 1)
			n = readv(sock, iov, iovcnt);
		else
			n = recvmsg(sock, &msg, 0);
		if (n != -1)
			break;
		if (errno == EINTR || errno == EMSGSIZE)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 1;
		/* Upstream reads pipes too; they cannot carry descriptors. */
		if (errno == ENOTSOCK && m->notsock != sock + 1) {
			m->notsock = sock + 1;
			continue;
		}
		return read_fail(m);
	}
	/*
	 * Without fdpass there is no control buffer and the kernel disposes
	 * of any descriptor sent.  With it, MSG_CTRUNC and no descriptor
	 * means ours was dropped (a full descriptor table): the marked
	 * message then arrives without one, which imsg_get_fd reports.
	 */
	fd = fdpass ? take_fd(&msg) : -1;
	if (n == 0) {
		if (fd != -1)
			close(fd);
		return 0;
	}

	got = (size_t)n;
	if (direct > 0) {
		if (got < direct)
			direct = got;
		if (rmsg->wpos + direct > rmsg->size)
			rmsg->size = rmsg->wpos + direct;
		rmsg->wpos += direct;
		got -= direct;
		finish_message(m);
	}
	m->rlen += got;

	if (process(m, rstart, fd) == -1)
		return read_fail(m);
	return 1;
}

int
ibuf_read(int fd, struct msgbuf *m)
{
	return read_common(fd, m, 0);
}

int
msgbuf_read(int fd, struct msgbuf *m)
{
	return read_common(fd, m, 1);
}
