/*
 * The write path: gather the queued ibufs into as few system calls as
 * possible, with at most one descriptor per call, attached to the first
 * byte of the message that owns it.  Writing never raises SIGPIPE: the
 * peer of a privilege-separated daemon is the side that may be
 * compromised, and it must not be able to kill us by going away.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "imsg-private.h"

#ifndef IOV_MAX
#define IOV_MAX		1024
#endif
#define WRITE_IOV_MAX	(IOV_MAX < 1024 ? IOV_MAX : 1024)

/*
 * Drop the empty buffers at the head that no byte will ever carry away:
 * those without a descriptor, or any when descriptors are not passed.
 * An empty buffer with a descriptor stays, to send it with what follows.
 */
static void
drop_empty_head(struct msgbuf *m, int fdpass)
{
	struct ibuf *b;

	while ((b = m->wq.head) != NULL && b->wpos == b->rpos &&
	    (!fdpass || b->fd < 0 || b->entry.tqe_next == NULL))
		libimsg__msgbuf_drop_head(m);
}

/*
 * Fill iov from the head of the queue.  With fdpass, stop before any
 * later buffer carrying a descriptor, so a descriptor always travels
 * with the first byte sent.  Empty buffers take no slot.
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

/*
 * Write with SIGPIPE blocked, where the system call has no flag for it
 * (writev on a pipe, plain; sockets without MSG_NOSIGNAL).  A SIGPIPE
 * this call raised is taken before the old mask returns; one that was
 * pending before stays pending.  The trace writes through here too.
 */
ssize_t
libimsg__write_nosigpipe(int fd, struct msghdr *msg, int plain)
{
	sigset_t pipeset, oldset, pending;
	ssize_t n;
	int was_pending, saved_errno, sig;

	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	sigemptyset(&pending);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &pipeset, &oldset) != 0)
		return plain ? writev(fd, msg->msg_iov, (int)msg->msg_iovlen) :
		    sendmsg(fd, msg, 0);
	if (plain)
		n = writev(fd, msg->msg_iov, (int)msg->msg_iovlen);
	else
		n = sendmsg(fd, msg, 0);
	saved_errno = errno;
	if (n == -1 && errno == EPIPE && !was_pending) {
		sigemptyset(&pending);
		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE))
			sigwait(&pipeset, &sig);
	}
	pthread_sigmask(SIG_SETMASK, &oldset, NULL);
	errno = saved_errno;
	return n;
}

static ssize_t
write_once(int fd, struct msgbuf *m, struct msghdr *msg, int sendfd)
{
	if (m->notsock == fd + 1 && !sendfd)
		return libimsg__write_nosigpipe(fd, msg, 1);
#ifdef HAVE_MSG_NOSIGNAL
	return sendmsg(fd, msg, MSG_NOSIGNAL);
#else
	return libimsg__write_nosigpipe(fd, msg, 0);
#endif
}

static ssize_t
write_retry(int fd, struct msgbuf *m, struct msghdr *msg, int sendfd)
{
	ssize_t n;

	for (;;) {
		if ((n = write_once(fd, m, msg, sendfd)) != -1)
			return n;
		if (errno == EINTR)
			continue;
		/* Upstream writes to pipes too, when no descriptor goes. */
		if (errno == ENOTSOCK && !sendfd && m->notsock != fd + 1) {
			m->notsock = fd + 1;
			continue;
		}
		return -1;
	}
}

static void
attach_fd(struct msghdr *msg, void *cbuf, size_t cbufsz, int fd)
{
	struct cmsghdr *cmsg;

	memset(cbuf, 0, cbufsz);
	msg->msg_control = cbuf;
	msg->msg_controllen = cbufsz;
	cmsg = CMSG_FIRSTHDR(msg);
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
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
	struct ibuf *first;
	ssize_t n;
	int iovcnt, sendfd;

	drop_empty_head(m, fdpass);
	if ((first = m->wq.head) == NULL)
		return 0;
	/* first is empty only if it has a descriptor and data follows. */
	if ((iovcnt = gather(m, iov, fdpass)) == 0) {
		/*
		 * The next bytes carry a descriptor of their own: this one
		 * has nothing to travel with, and goes (as upstream's does).
		 */
		libimsg__msgbuf_drop_head(m);
		return 0;
	}

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = iovcnt;
	sendfd = fdpass && first->fd >= 0;
	if (sendfd)
		attach_fd(&msg, cmsgbuf.buf, sizeof(cmsgbuf.buf), first->fd);
	if ((n = write_retry(fd, m, &msg, sendfd)) == -1) {
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
