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
 * A received descriptor can only belong to a message whose first byte
 * came with it: the kernel ends a read at the data that carried the
 * descriptor, and senders put the descriptor on the first byte of its
 * message.  rstart is where this read's bytes begin in rbuf; headers
 * before it (a partial header kept from the previous read) are not
 * offered the descriptor, so no other message can take it.
 */
static int
process(struct msgbuf *m, size_t rstart, int *fdp)
{
	struct ibuf hdr;
	size_t off = 0, left, n;
	int nofd;

	while (off < m->rlen) {
		if (m->rmsg == NULL) {
			if (m->rlen - off < m->hdrsize)
				break;
			ibuf_from_buffer(&hdr, m->rbuf + off, m->hdrsize);
			nofd = -1;
			m->rmsg = m->readhdr(&hdr, m->rarg,
			    off >= rstart ? fdp : &nofd);
			if (m->rmsg == NULL)
				return -1;
			/* A message shorter than its header would loop. */
			if (ibuf_left(m->rmsg) < m->hdrsize) {
				ibuf_free(m->rmsg);
				m->rmsg = NULL;
				errno = EBADMSG;
				return -1;
			}
		}
		left = m->rlen - off;
		n = ibuf_left(m->rmsg);
		if (n > left)
			n = left;
		if (ibuf_add(m->rmsg, m->rbuf + off, n) == -1)
			return -1;
		off += n;
		if (ibuf_left(m->rmsg) == 0) {
			libimsg__q_push(&m->rq, m->rmsg);
			m->rmsg = NULL;
		}
	}
	/* Keep only the partial header, at the start of the buffer. */
	if (off > 0) {
		memmove(m->rbuf, m->rbuf + off, m->rlen - off);
		libimsg__wipe(m->rbuf + (m->rlen - off), off);
		m->rlen -= off;
	}
	return 1;
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

static int
read_fail(struct msgbuf *m, int fd)
{
	int saved_errno = errno;

	if (fd != -1)
		close(fd);
	m->rerr = saved_errno;
	errno = saved_errno;
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
		n = recvmsg(sock, &msg, 0);
		if (n != -1)
			break;
		if (errno == EINTR || errno == EMSGSIZE)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 1;
		return -1;
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
		if (ibuf_left(rmsg) == 0) {
			libimsg__q_push(&m->rq, rmsg);
			m->rmsg = NULL;
		}
	}
	m->rlen += got;

	if (process(m, rstart, &fd) == -1)
		return read_fail(m, fd);
	if (fd != -1)
		close(fd);
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
