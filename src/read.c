/*
 * The read path: receive bytes (and at most one descriptor) from the
 * socket and cut them into messages with the msgbuf's header callback.
 *
 * Each message is a buffer of its own, made by the callback as soon as
 * its header is whole, so a message a program keeps costs what it holds
 * and nothing more.  Its bytes are copied out of the read buffer, or,
 * while it is being filled, read straight into it: a large message is
 * copied once, by the kernel.  The read buffer itself keeps only a
 * header that is not whole yet; it is small until reads fill it, and it
 * is freed, with the slab, after a read of less than a small buffer that
 * leaves it empty: a channel that falls idle after light traffic holds
 * neither (after a burst they stay until the next read, at most 68 KiB).
 * Small messages are carved from a slab (alloc.c).  Bytes copied out of
 * the read buffer are wiped
 * at once: it never keeps a copy of a message behind the program's back.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg-private.h"

/*
 * Which message a received descriptor belongs to.  The kernel ends a read
 * right after the data that carried a descriptor, and a sender puts it on
 * the first byte of its message, sending nothing with a descriptor after
 * it in the same call.  So the owner is a header that began in this read.
 * A header kept from an earlier read never gets it, unless the read that
 * cut that header brought the descriptor: it then waits for the header
 * (rpendfd).
 *
 * Upstream offers the descriptor to each header of the read until one
 * claims it; custom readers get exactly that.  The imsg layer asks for
 * the last claim instead (libimsg__msgbuf_imsg_reader): it claims only
 * for marked headers, and the last marked one of the read is the owner,
 * so a marked header of a peer that passes no descriptors can no longer
 * take another message's.  The same hook lets it take most messages
 * without the callback (rwhole): those that can own no descriptor.
 */
struct fdoffer {
	int		 fd;		/* this read's descriptor, or -1 */
	struct ibuf	*holder;	/* message that took it, or NULL */
	int		 pend;		/* descriptor for the kept header */
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
	fo->holder = NULL;
	if (msg == NULL || !fresh || !m->fdlast)
		*from = -1;
	else
		fo->holder = msg;
	return msg;
}

/*
 * Release the descriptors nobody took.  cut is the offset of a header not
 * yet whole that this read leaves in rbuf, or -1; rstart is where this
 * read's bytes began.  A descriptor that came with the cut header waits
 * for the rest of it; no header wants more than one.
 */
static void
settle_fds(struct msgbuf *m, struct fdoffer *fo, size_t rstart, ssize_t cut)
{
	if (cut == 0 && rstart > 0 && fo->pend != -1) {
		m->rpendfd = fo->pend;
		fo->pend = -1;
	} else if (cut >= 0 && (size_t)cut >= rstart && fo->holder == NULL &&
	    fo->fd != -1) {
		m->rpendfd = fo->fd;
		fo->fd = -1;
	}
	if (fo->pend != -1)
		close(fo->pend);
	if (fo->holder == NULL && fo->fd != -1)
		close(fo->fd);
}

/* Make the message whose header is at p; NULL with errno on failure. */
static struct ibuf *
begin_message(struct msgbuf *m, unsigned char *p, int fresh,
    struct fdoffer *fo)
{
	struct ibuf hdr, *msg;

	ibuf_from_buffer(&hdr, p, m->hdrsize);
	if ((msg = parse_header(m, &hdr, fresh, fo)) == NULL)
		return NULL;
	/* A message shorter than its header would loop for ever. */
	if (msg->fd == IBUF_FD_VIEW || msg->max - msg->wpos < m->hdrsize) {
		if (fo->holder == msg)
			fo->holder = NULL;
		if (msg->fd != IBUF_FD_VIEW) {
			if (msg->fd == fo->fd)
				fo->fd = -1;
			ibuf_free(msg);
		}
		errno = EBADMSG;
		return NULL;
	}
	return msg;
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

/* Copy what the message being filled wants of the n bytes at src. */
static ssize_t
fill_message(struct msgbuf *m, const unsigned char *src, size_t n)
{
	struct ibuf *msg = m->rmsg;

	if (n > msg->max - msg->wpos)
		n = msg->max - msg->wpos;
	/* Storage is usually there already; else let it grow. */
	if (n <= msg->size - msg->wpos) {
		memcpy(msg->buf + msg->wpos, src, n);
		msg->wpos += n;
	} else if (ibuf_add(msg, src, n) == -1)
		return -1;
	finish_message(m);
	return (ssize_t)n;
}

/* Queue the whole message of len bytes at src that rwhole vouched for. */
static int
take_whole(struct msgbuf *m, const unsigned char *src, size_t len)
{
	struct ibuf *msg;

	if ((msg = libimsg__msgbuf_msg_alloc(m, len)) == NULL)
		return -1;
	memcpy(msg->buf, src, len);
	msg->wpos = len;
	libimsg__q_push(&m->rq, msg);
	return 0;
}

/*
 * Cut rbuf from *offp on into messages until what is left is less than
 * a header.  rstart is where this read's bytes begin in rbuf.
 */
static int
cut_messages(struct msgbuf *m, size_t *offp, size_t rstart,
    struct fdoffer *fo)
{
	size_t off = *offp;
	ssize_t n;
	int r = 0;

	while (off < m->rlen) {
		if (m->rmsg == NULL) {
			if (m->rlen - off < m->hdrsize)
				break;
			if (m->rwhole != NULL && (n = (ssize_t)m->rwhole(m->rbuf +
			    off, m->rlen - off, m->rarg)) > 0) {
				if ((r = take_whole(m, m->rbuf + off,
				    (size_t)n)) == -1)
					break;
				off += (size_t)n;
				continue;
			}
			m->rmsg = begin_message(m, m->rbuf + off, off >= rstart,
			    fo);
			if (m->rmsg == NULL) {
				r = -1;
				break;
			}
		}
		if ((n = fill_message(m, m->rbuf + off, m->rlen - off)) == -1) {
			r = -1;
			break;
		}
		off += (size_t)n;
	}
	*offp = off;
	return r;
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

/* Wipe the bytes of rbuf before off and move what is left to its start. */
static void
rbuf_shift(struct msgbuf *m, size_t off)
{
	size_t keep = m->rlen - off;

	if (off == 0)
		return;
	memmove(m->rbuf, m->rbuf + off, keep);
	libimsg__wipe(m->rbuf + keep, m->rlen - keep);
	m->rlen = keep;
}

/*
 * The read that brought a descriptor ended inside a header that began in
 * it: when our buffer, not the kernel, cut that read, the rest of the
 * header is already queued in the socket.  Read just that, so the header
 * can claim the descriptor now, while the messages before it in this
 * read can still give it up.  Returns the bytes added, 0 if none came.
 */
static size_t
complete_header(int sock, struct msgbuf *m)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} cmsgbuf;
	struct iovec iov;
	struct msghdr msg;
	ssize_t n;
	int fd;

	iov.iov_base = m->rbuf + m->rlen;
	iov.iov_len = m->hdrsize - m->rlen;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	memset(&cmsgbuf, 0, sizeof(cmsgbuf));
	msg.msg_control = cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);
	do {
		n = recvmsg(sock, &msg, MSG_DONTWAIT);
	} while (n == -1 && errno == EINTR);
	/* The rest of a header brings no descriptor of a well-behaved peer. */
	if ((fd = take_fd(&msg)) != -1)
		close(fd);
	if (n <= 0)
		return 0;
	m->rlen += (size_t)n;
	return (size_t)n;
}

/*
 * Cut everything in rbuf into messages; rstart is where this read's
 * bytes begin (before it: a header kept from the last read).  fd is the
 * descriptor this read brought, or -1.
 */
static int
process(int sock, struct msgbuf *m, size_t rstart, int fd)
{
	struct fdoffer fo;
	size_t off = 0;
	int r, saved_errno;

	fo.fd = fd;
	fo.holder = NULL;
	fo.pend = m->rpendfd;
	m->rpendfd = -1;
	r = cut_messages(m, &off, rstart, &fo);
	if (r == 0 && fd != -1 && off < m->rlen && off >= rstart) {
		rbuf_shift(m, off);
		off = 0;
		rstart = 0;
		if (complete_header(sock, m) > 0)
			r = cut_messages(m, &off, rstart, &fo);
	}
	saved_errno = errno;
	settle_fds(m, &fo, rstart, r == 0 && off < m->rlen ? (ssize_t)off : -1);
	/* Nothing more is read from a failed stream: drop what is left. */
	if (r == -1)
		off = m->rlen;
	rbuf_shift(m, off);
	errno = saved_errno;
	return r;
}

/*
 * Give back the read buffer, wiped, and move on from the slab: what
 * rbuf_settle does when a channel falls idle.
 */
static void
rbuf_release(struct msgbuf *m)
{
	libimsg__wipe(m->rbuf, m->rlen);
	free(m->rbuf);
	m->rbuf = NULL;
	m->rcap = m->rlen = 0;
	libimsg__slab_retire(m->rslab);
	m->rslab = NULL;
}

/*
 * Drop all the read state: the message being filled, the descriptor
 * waiting for a header, the read buffer and the slab.  Messages already
 * queued, or out, keep their storage (a slab goes with its last one).
 */
void
libimsg__read_release(struct msgbuf *m)
{
	ibuf_free(m->rmsg);
	m->rmsg = NULL;
	if (m->rpendfd != -1)
		close(m->rpendfd);
	m->rpendfd = -1;
	rbuf_release(m);
}

/* Every later read fails the same way: the stream cannot be trusted. */
static int
read_fail(struct msgbuf *m)
{
	/* A custom callback may fail without saying why. */
	if (errno == 0)
		errno = EBADMSG;
	m->rerr = errno;
	/* Nothing more is read: what was begun can never be delivered. */
	libimsg__read_release(m);
	return -1;
}

/* The read buffer's size: small, unless reads fill it (or headers are big). */
static size_t
rbuf_want(const struct msgbuf *m)
{
	if (m->rbig || m->hdrsize > MSGBUF_SMALL / 4)
		return MSGBUF_LARGE;
	return MSGBUF_SMALL;
}

/*
 * Make sure there is a read buffer of the size traffic calls for; with
 * grow 0, one that exists does.
 */
static int
rbuf_prepare(struct msgbuf *m, int grow)
{
	unsigned char *nbuf;
	size_t want = rbuf_want(m);

	if (m->rbuf != NULL && (m->rcap >= want || !grow))
		return 0;
	if ((nbuf = malloc(want)) == NULL)
		return m->rbuf != NULL ? 0 : -1;
	if (m->rbuf != NULL) {
		memcpy(nbuf, m->rbuf, m->rlen);
		libimsg__wipe(m->rbuf, m->rlen);
		free(m->rbuf);
	}
	m->rbuf = nbuf;
	m->rcap = want;
	return 0;
}

/*
 * After a read of n bytes: a read that filled the buffer calls for a
 * large one.  A read of less than a small buffer that left nothing
 * behind is light traffic: the reader then gives back its read buffer
 * and its slab, so a channel that falls idle holds neither.
 */
static void
rbuf_settle(struct msgbuf *m, size_t n, int filled)
{
	m->rbig = filled;
	if (m->rlen > 0 || n >= MSGBUF_SMALL)
		return;
	rbuf_release(m);
}

/*
 * Room already allocated in the message being filled, up to its end;
 * the kernel copies straight into it.
 */
static size_t
direct_room(const struct msgbuf *m)
{
	struct ibuf *msg = m->rmsg;
	size_t cap;

	if (msg == NULL)
		return 0;
	cap = ibuf_box(msg)->cap;
	if (cap > msg->max)
		cap = msg->max;
	return cap > msg->wpos ? cap - msg->wpos : 0;
}

/*
 * Set up iov for one read: straight into the message being filled, then
 * into rbuf for what follows it, unless the message is large and left
 * to finish with a read of its own.  Returns the iovec count, -1.
 */
static int
read_iov(struct msgbuf *m, struct iovec *iov, size_t *direct, int grow)
{
	int n = 0;

	if ((*direct = direct_room(m)) > 0) {
		iov[n].iov_base = m->rmsg->buf + m->rmsg->wpos;
		iov[n].iov_len = *direct;
		n++;
		if (*direct == m->rmsg->max - m->rmsg->wpos &&
		    *direct >= MSGBUF_DIRECT_ALONE)
			return n;
	}
	if (rbuf_prepare(m, grow) == -1)
		return -1;
	iov[n].iov_base = m->rbuf + m->rlen;
	iov[n].iov_len = m->rcap - m->rlen;
	return n + 1;
}

/* One recvmsg (readv on a pipe); EINTR and a pipe's ENOTSOCK retried. */
static ssize_t
read_once(int sock, struct msgbuf *m, struct msghdr *msg, int flags)
{
	ssize_t n;

	for (;;) {
		if (m->notsock == sock + 1)
			n = readv(sock, msg->msg_iov, (int)msg->msg_iovlen);
		else
			n = recvmsg(sock, msg, flags);
		if (n != -1 || (errno != EINTR && errno != EMSGSIZE &&
		    (errno != ENOTSOCK || m->notsock == sock + 1)))
			return n;
		/* Upstream reads pipes too; they cannot carry descriptors. */
		if (errno == ENOTSOCK)
			m->notsock = sock + 1;
	}
}

/* Count n bytes read: first into the message being filled, then rbuf. */
static size_t
read_account(struct msgbuf *m, size_t n, size_t direct)
{
	if (direct > 0) {
		if (direct > n)
			direct = n;
		m->rmsg->wpos += direct;
		if (m->rmsg->wpos > m->rmsg->size)
			m->rmsg->size = m->rmsg->wpos;
		finish_message(m);
	}
	m->rlen += n - direct;
	return n - direct;
}

/*
 * One read and what it brings.  Returns 1, 0 at end of file, -1; *filled
 * tells whether the read took all the room offered in rbuf.  flags has
 * MSG_DONTWAIT for the extra read of read_common: that one neither
 * grows the read buffer nor, finding nothing, gives it back.
 */
static int
read_step(int sock, struct msgbuf *m, int fdpass, int flags, int *filled)
{
	union {
		struct cmsghdr	hdr;
		/* Room for two: the kernel may hand over a spare to close. */
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} cmsgbuf;
	struct iovec iov[2];
	struct msghdr msg;
	size_t direct, rstart = m->rlen;
	ssize_t n;
	int fd, iovcnt, into_rbuf;

	*filled = 0;
	if ((iovcnt = read_iov(m, iov, &direct, flags == 0)) == -1)
		return -1;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = iovcnt;
	if (fdpass) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
	}
	if ((n = read_once(sock, m, &msg, flags)) == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return read_fail(m);
		if (flags == 0)
			rbuf_settle(m, 0, 0);
		return 1;
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
		rbuf_settle(m, 0, 0);
		return 0;
	}
	into_rbuf = m->rbuf != NULL &&
	    iov[iovcnt - 1].iov_base == m->rbuf + m->rlen;
	*filled = read_account(m, (size_t)n, direct) ==
	    iov[iovcnt - 1].iov_len && into_rbuf;
	if (process(sock, m, rstart, fd) == -1)
		return read_fail(m);
	rbuf_settle(m, (size_t)n, *filled);
	return 1;
}

/*
 * A read that filled rbuf and left a message of less than a large read
 * unfinished is followed by one more, which does not wait: the kernel
 * most likely has the rest, and such a message then arrives with one
 * call, as it would with a large read buffer from the start.
 */
static int
read_common(int sock, struct msgbuf *m, int fdpass)
{
	int filled, r, saved_errno;

	if (m->readhdr == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (m->rerr != 0) {
		errno = m->rerr;
		return -1;
	}
	r = read_step(sock, m, fdpass, 0, &filled);
	if (r == 1 && filled && m->rmsg != NULL && m->notsock != sock + 1 &&
	    m->rmsg->max - m->rmsg->wpos < MSGBUF_LARGE) {
		/* Its end of file or error is the next call's to report. */
		saved_errno = errno;
		(void)read_step(sock, m, fdpass, MSG_DONTWAIT, &filled);
		errno = saved_errno;
	}
#ifdef LIBIMSG_DEBUG
	libimsg__read_check(m);
#endif
	return r;
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

#ifdef LIBIMSG_DEBUG
#include <stdio.h>

static void
read_check_fail(const char *what)
{
	fprintf(stderr, "libimsg: read state broken: %s\n", what);
	abort();
}

/* The invariants the comments of struct msgbuf and this file state. */
void
libimsg__read_check(const struct msgbuf *m)
{
	if (m->rbuf == NULL && (m->rlen != 0 || m->rcap != 0))
		read_check_fail("bytes kept without a read buffer");
	if (m->rlen > m->rcap)
		read_check_fail("more bytes kept than the buffer holds");
	if (m->rmsg != NULL && m->rlen != 0)
		read_check_fail("bytes kept while a message is being filled");
	if (m->rmsg == NULL && m->rlen >= m->hdrsize)
		read_check_fail("a whole header left unparsed");
	if (m->rmsg != NULL && m->rmsg->wpos >= m->rmsg->max)
		read_check_fail("a whole message not queued");
	if (m->rpendfd != -1 && (m->rmsg != NULL || m->rlen == 0))
		read_check_fail("a descriptor waits for no header");
	if (m->rerr != 0 && (m->rbuf != NULL || m->rslab != NULL ||
	    m->rmsg != NULL))
		read_check_fail("a failed reader keeps memory");
}
#endif
