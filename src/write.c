/*
 * The write path: gather the queued ibufs into as few system calls as
 * possible, with at most one descriptor per call, attached to the first
 * byte of the message that owns it.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "imsg-private.h"

#ifndef IOV_MAX
#define IOV_MAX		1024
#endif
#define WRITE_IOV_MAX	(IOV_MAX < 1024 ? IOV_MAX : 1024)

/*
 * A peer that went away must give EPIPE, not kill the process: the peer
 * of a privilege-separated daemon is the side that may be compromised.
 */
#ifdef HAVE_MSG_NOSIGNAL
#define WRITE_FLAGS	MSG_NOSIGNAL
#else
#define WRITE_FLAGS	0
#endif

/*
 * Fill iov from the head of the queue.  With fdpass, stop before any
 * buffer carrying a descriptor unless it is the first, so the descriptor
 * always travels with the first byte sent.  Empty buffers take no slot.
 */
static int
gather(struct msgbuf *m, struct iovec *iov, int fdpass)
{
	struct ibuf *b;
	int n = 0;

	for (b = m->wq.head; b != NULL && n < WRITE_IOV_MAX;
	    b = b->entry.tqe_next) {
		if (fdpass && b->fd >= 0 && b != m->wq.head)
			break;
		if (b->wpos == b->rpos)
			continue;
		iov[n].iov_base = b->buf + b->rpos;
		iov[n].iov_len = b->wpos - b->rpos;
		n++;
	}
	return n;
}

static int
write_queue(int fd, struct msgbuf *m, int fdpass)
{
	struct iovec iov[WRITE_IOV_MAX];
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	struct msghdr msg;
	struct cmsghdr *cmsg;
	struct ibuf *first = m->wq.head;
	ssize_t n;
	int iovcnt, sendfd;

	if (first == NULL)
		return 0;
	if ((iovcnt = gather(m, iov, fdpass)) == 0) {
		/* Only empty buffers: nothing to send, just let them go. */
		libimsg__msgbuf_drain(m, 0);
		return 0;
	}

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = iovcnt;
	sendfd = fdpass && first->fd >= 0 && ibuf_size(first) > 0;
	if (sendfd) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), &first->fd, sizeof(int));
	}

	for (;;) {
		if (m->notsock == fd + 1 && !sendfd)
			n = writev(fd, iov, iovcnt);
		else
			n = sendmsg(fd, &msg, WRITE_FLAGS);
		if (n != -1)
			break;
		if (errno == EINTR)
			continue;
		/* Upstream writes to pipes too, when no descriptor goes. */
		if (errno == ENOTSOCK && !sendfd && m->notsock != fd + 1) {
			m->notsock = fd + 1;
			continue;
		}
		break;
	}
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return 0;
		return -1;
	}

	/* The descriptor left with the first byte; ours is a duplicate. */
	if (sendfd) {
		close(first->fd);
		first->fd = -1;
	}
	libimsg__msgbuf_drain(m, (size_t)n);
	return 0;
}

int
ibuf_write(int fd, struct msgbuf *m)
{
	return write_queue(fd, m, 0);
}

int
msgbuf_write(int fd, struct msgbuf *m)
{
	return write_queue(fd, m, 1);
}
