/*
 * The read path: receive bytes (and at most one descriptor) from the
 * socket and cut them into messages with the msgbuf's header callback.
 *
 * Bytes go straight into the message being filled when there is one, so
 * a large message is copied once, by the kernel; only headers and small
 * messages pass through the read buffer.  The read buffer never holds
 * more than a partial header between calls.
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
	int		 pend;		/* descriptor for the header at 0 */
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
 * Release the descriptors nobody owns.  cut is the offset of a header
 * left incomplete in rbuf, or -1: a descriptor that came with that header
 * (this read's, or one still waiting because the header is not whole
 * yet) waits for it; no header wants more than one.
 */
static void
settle_fds(struct msgbuf *m, struct fdoffer *fo, size_t rstart, ssize_t cut)
{
	int keep = -1;

	if (cut == 0 && rstart > 0 && fo->pend != -1) {
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

/*
 * Cut the bytes held in rbuf into messages.  rstart is where this read's
 * bytes begin; anything before it is a header kept from the last read.
 */
static int
process(struct msgbuf *m, size_t rstart, int fd)
{
	struct fdoffer fo;
	struct ibuf hdr, *msg;
	size_t off = 0, left, n;

	fo.fd = fd;
	fo.holder = NULL;
	fo.pend = m->rpendfd;
	m->rpendfd = -1;
	ibuf_from_buffer(&hdr, m->rbuf, m->hdrsize);
	while (off < m->rlen) {
		if (m->rmsg == NULL) {
			if (m->rlen - off < m->hdrsize)
				break;
			/* The same view, moved along: the callback gets it fresh. */
			hdr.buf = m->rbuf + off;
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
		/* Storage is usually there already; else let it grow. */
		if (n <= m->rmsg->size - m->rmsg->wpos) {
			memcpy(m->rmsg->buf + m->rmsg->wpos, m->rbuf + off, n);
			m->rmsg->wpos += n;
		} else if (ibuf_add(m->rmsg, m->rbuf + off, n) == -1)
			goto fail;
		off += n;
		finish_message(m);
	}
	settle_fds(m, &fo, rstart, off < m->rlen ? (ssize_t)off : -1);
	/*
	 * Keep only the partial header, at the start of the buffer.  The
	 * bytes before it were copied into messages and are overwritten by
	 * the next read; the buffer is wiped when the msgbuf is freed.
	 */
	if (off > 0) {
		memmove(m->rbuf, m->rbuf + off, m->rlen - off);
		m->rlen -= off;
	}
	return 1;

fail:
	n = errno;
	settle_fds(m, &fo, rstart, -1);
	errno = (int)n;
	return -1;
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
	struct ibuf *rmsg = m->rmsg;
	size_t direct = 0, rstart, got;
	ssize_t n;
	int fd, iovcnt = 0;

	if (m->rbuf == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (m->rerr != 0) {
		errno = m->rerr;
		return -1;
	}

	if (rmsg != NULL) {
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
	if (direct == 0 || rmsg->max <= MSGBUF_RBUF_SIZE ||
	    direct < rmsg->max - rmsg->wpos) {
		iov[iovcnt].iov_base = m->rbuf + m->rlen;
		iov[iovcnt].iov_len = MSGBUF_RBUF_SIZE - m->rlen;
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
