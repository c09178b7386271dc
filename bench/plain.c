/*
 * plain: the imsg API built the simplest way (see plain.h).
 *
 * Copyright (c) 2026 The libimsg authors.
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF MIND, USE, DATA OR PROFITS, WHETHER IN
 * AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/*
 * What "the simplest way" means here, the design the benchmarks compare
 * libimsg's machinery against:
 *   - every message is two allocations, its struct ibuf and its data,
 *     both zeroed, on the writer (composed into a buffer that may grow up
 *     to maxsize) and on the reader;
 *   - a reader has one fixed read buffer of IBUF_READ_SIZE bytes,
 *     allocated at init; each message is copied out of it into its own
 *     buffer as it arrives, so the read buffer only ever keeps a split
 *     header between reads;
 *   - a write gathers one iovec per queued buffer, up to IOV_MAX, into one
 *     writev, or sendmsg when descriptors are passed, which then stops
 *     before any buffer with a descriptor that is not the first;
 *   - a freed buffer is wiped first; nothing is cached or batched.
 * The wire format is the one of imsg-spec.md section 1.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plain.h"

#ifndef IOV_MAX
#define IOV_MAX		1024
#endif
#define FD_MARK		0x80000000U	/* bit 31 of the header's len */
#define ALLOW_FDPASS	0x01		/* imsgbuf.flags */

/* What imsgbuf.w points to; queues are singly linked through entry. */
struct pmsgbuf {
	struct ibuf	 *whead;	/* write queue */
	struct ibuf	**wtail;
	uint32_t	  wlen;
	struct ibuf	 *rhead;	/* messages received whole */
	struct ibuf	**rtail;
	struct ibuf	 *filling;	/* the message being received */
	unsigned char	 *rbuf;		/* IBUF_READ_SIZE bytes */
	size_t		  roff;		/* bytes of a split header in rbuf */
	int		  rerr;		/* a read error, sticky; or 0 */
};

#define PM(ib)	((struct pmsgbuf *)(void *)(ib)->w)

static void
wipe(void *p, size_t n)
{
#if defined(__GLIBC__) || defined(__OpenBSD__) || defined(__FreeBSD__)
	explicit_bzero(p, n);
#else
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
#endif
}

/* len zeroed bytes that may grow to max, as ibuf_dynamic makes. */
static struct ibuf *
pbuf_new(size_t len, size_t max)
{
	struct ibuf *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if (len > 0 && (b->buf = calloc(len, 1)) == NULL) {
		free(b);
		return NULL;
	}
	b->size = len;
	b->max = max;
	b->fd = -1;
	return b;
}

static void
pbuf_free(struct ibuf *b)
{
	int saved = errno;

	if (b == NULL)
		return;
	if (b->fd >= 0)
		close(b->fd);
	if (b->buf != NULL) {
		wipe(b->buf, b->size);
		free(b->buf);
	}
	free(b);
	errno = saved;
}

/* Append; the buffer grows to exactly what it needs, within max. */
static int
pbuf_add(struct ibuf *b, const void *p, size_t len)
{
	unsigned char *nb;

	if (len == 0)
		return 0;
	if (len > SIZE_MAX - b->wpos || b->wpos + len > b->max) {
		errno = ERANGE;
		return -1;
	}
	if (b->wpos + len > b->size) {
		if ((nb = realloc(b->buf, b->wpos + len)) == NULL)
			return -1;
		memset(nb + b->size, 0, b->wpos + len - b->size);
		b->buf = nb;
		b->size = b->wpos + len;
	}
	memcpy(b->buf + b->wpos, p, len);
	b->wpos += len;
	return 0;
}

static void
queue_put(struct ibuf ***tail, struct ibuf *b)
{
	b->entry.tqe_next = NULL;
	b->entry.tqe_prev = NULL;
	**tail = b;
	*tail = &b->entry.tqe_next;
}

static struct ibuf *
queue_take(struct ibuf **head, struct ibuf ***tail)
{
	struct ibuf *b = *head;

	if (b == NULL)
		return NULL;
	if ((*head = b->entry.tqe_next) == NULL)
		*tail = head;
	return b;
}

static void
queue_free(struct ibuf **head, struct ibuf ***tail)
{
	struct ibuf *b;

	while ((b = queue_take(head, tail)) != NULL)
		pbuf_free(b);
}

int
plain_imsgbuf_init(struct imsgbuf *ib, int fd)
{
	struct pmsgbuf *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -1;
	if ((m->rbuf = malloc(IBUF_READ_SIZE)) == NULL) {
		free(m);
		return -1;
	}
	m->wtail = &m->whead;
	m->rtail = &m->rhead;
	ib->w = (struct msgbuf *)(void *)m;
	ib->pid = getpid();
	ib->maxsize = MAX_IMSGSIZE;
	ib->fd = fd;
	ib->flags = 0;
	return 0;
}

void
plain_imsgbuf_allow_fdpass(struct imsgbuf *ib)
{
	ib->flags |= ALLOW_FDPASS;
}

/* The payload limit, as upstream's newest revision takes it. */
int
plain_imsgbuf_set_maxsize(struct imsgbuf *ib, uint32_t max)
{
	if (max > UINT32_MAX - IMSG_HEADER_SIZE) {
		errno = ERANGE;
		return -1;
	}
	if ((max + IMSG_HEADER_SIZE) & FD_MARK) {
		errno = EINVAL;
		return -1;
	}
	ib->maxsize = max + IMSG_HEADER_SIZE;
	return 0;
}

void
plain_imsgbuf_clear(struct imsgbuf *ib)
{
	struct pmsgbuf *m = PM(ib);

	if (m == NULL)
		return;
	queue_free(&m->whead, &m->wtail);
	queue_free(&m->rhead, &m->rtail);
	pbuf_free(m->filling);
	free(m->rbuf);
	free(m);
	ib->w = NULL;
}

uint32_t
plain_imsgbuf_queuelen(struct imsgbuf *ib)
{
	return PM(ib)->wlen;
}

/* The write side. */

/* Take n sent bytes off the head of the queue; empty buffers go too. */
static void
drain(struct pmsgbuf *m, size_t n)
{
	struct ibuf *b;
	size_t left;

	while ((b = m->whead) != NULL) {
		left = b->wpos - b->rpos;
		if (n < left) {
			b->rpos += n;
			return;
		}
		n -= left;
		queue_take(&m->whead, &m->wtail);
		m->wlen--;
		pbuf_free(b);
	}
}

static ssize_t
send_fd(int sock, struct iovec *iov, int n, int fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr msg;
	struct cmsghdr *cm;

	memset(&msg, 0, sizeof(msg));
	memset(&cbuf, 0, sizeof(cbuf));
	msg.msg_iov = iov;
	msg.msg_iovlen = n;
	if (fd >= 0) {
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	}
	return sendmsg(sock, &msg, 0);
}

int
plain_imsgbuf_write(struct imsgbuf *ib)
{
	struct iovec iov[IOV_MAX];
	struct pmsgbuf *m = PM(ib);
	struct ibuf *b;
	ssize_t r;
	int n = 0, fdpass = ib->flags & ALLOW_FDPASS, fd = -1;

	/* With descriptors, each goes alone with its buffer's first byte. */
	for (b = m->whead; b != NULL && n < IOV_MAX; b = b->entry.tqe_next) {
		if (fdpass && b->fd >= 0) {
			if (n > 0)
				break;
			fd = b->fd;
		}
		iov[n].iov_base = b->buf + b->rpos;
		iov[n].iov_len = b->wpos - b->rpos;
		n++;
	}
	if (n == 0)
		return 0;
	do {
		r = fdpass ? send_fd(ib->fd, iov, n, fd) :
		    writev(ib->fd, iov, n);
	} while (r == -1 && errno == EINTR);
	if (r == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == ENOBUFS ? 0 : -1;
	if (fd >= 0) {
		/* The descriptor went with the first byte. */
		close(m->whead->fd);
		m->whead->fd = -1;
	}
	drain(m, (size_t)r);
	return 0;
}

int
plain_imsg_composev(struct imsgbuf *ib, uint32_t type, uint32_t id,
    pid_t pid, int fd, const struct iovec *iov, int iovcnt)
{
	struct pmsgbuf *m = PM(ib);
	struct imsg_hdr hdr;
	struct ibuf *b;
	size_t len = 0;
	int i;

	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > ib->maxsize - len) {
			errno = ERANGE;
			return -1;
		}
		len += iov[i].iov_len;
	}
	if (len > ib->maxsize - IMSG_HEADER_SIZE) {
		errno = ERANGE;
		return -1;
	}
	if ((b = pbuf_new(len + IMSG_HEADER_SIZE, ib->maxsize)) == NULL)
		return -1;
	hdr.type = type;
	hdr.len = (uint32_t)(len + IMSG_HEADER_SIZE) | (fd >= 0 ? FD_MARK : 0);
	hdr.peerid = id;
	hdr.pid = (uint32_t)(pid != 0 ? pid : ib->pid);
	/* Within the allocation: these cannot fail. */
	pbuf_add(b, &hdr, sizeof(hdr));
	for (i = 0; i < iovcnt; i++)
		pbuf_add(b, iov[i].iov_base, iov[i].iov_len);
	b->fd = fd;
	queue_put(&m->wtail, b);
	m->wlen++;
	return 1;
}

int
plain_imsg_compose(struct imsgbuf *ib, uint32_t type, uint32_t id, pid_t pid,
    int fd, const void *data, size_t len)
{
	struct iovec iov;

	iov.iov_base = (void *)(uintptr_t)data;
	iov.iov_len = len;
	return plain_imsg_composev(ib, type, id, pid, fd, &iov, len > 0);
}

/* The read side. */

/* A buffer for the message whose header is at p; it takes a marked fd. */
static struct ibuf *
msg_start(struct imsgbuf *ib, const unsigned char *p, int *fd)
{
	struct imsg_hdr hdr;
	struct ibuf *b;
	size_t len;

	memcpy(&hdr, p, sizeof(hdr));
	len = hdr.len & ~FD_MARK;
	if (len < IMSG_HEADER_SIZE || len > ib->maxsize) {
		errno = ERANGE;
		return NULL;
	}
	if ((b = pbuf_new(len, len)) == NULL)
		return NULL;
	if ((hdr.len & FD_MARK) && *fd >= 0) {
		b->fd = *fd;
		*fd = -1;
	}
	return b;
}

/* Copy every message out of the read buffer; keep a split header. */
static int
process(struct imsgbuf *ib, size_t avail, int *fd)
{
	struct pmsgbuf *m = PM(ib);
	unsigned char *p = m->rbuf;
	struct ibuf *b;
	size_t k;

	while (avail > 0) {
		if (m->filling == NULL) {
			if (avail < IMSG_HEADER_SIZE)
				break;
			if ((m->filling = msg_start(ib, p, fd)) == NULL)
				return -1;
		}
		b = m->filling;
		k = b->size - b->wpos;
		if (k > avail)
			k = avail;
		memcpy(b->buf + b->wpos, p, k);
		b->wpos += k;
		p += k;
		avail -= k;
		if (b->wpos == b->size) {
			queue_put(&m->rtail, b);
			m->filling = NULL;
		}
	}
	memmove(m->rbuf, p, avail);
	m->roff = avail;
	return 1;
}

/* The first descriptor of the first SCM_RIGHTS; any other is closed. */
static int
take_fd(struct msghdr *msg)
{
	struct cmsghdr *cm;
	size_t i, n;
	int fd = -1, one;

	for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&one, CMSG_DATA(cm) + i * sizeof(int),
			    sizeof(one));
			if (fd == -1)
				fd = one;
			else
				close(one);
		}
	}
	return fd;
}

static ssize_t
recv_fd(int sock, struct iovec *iov, int *fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr msg;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	memset(&cbuf, 0, sizeof(cbuf));
	msg.msg_iov = iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	if ((n = recvmsg(sock, &msg, 0)) > 0)
		*fd = take_fd(&msg);
	return n;
}

int
plain_imsgbuf_read(struct imsgbuf *ib)
{
	struct pmsgbuf *m = PM(ib);
	struct iovec iov;
	ssize_t n;
	int fd = -1, r;

	if (m->rerr != 0) {
		errno = m->rerr;
		return -1;
	}
	iov.iov_base = m->rbuf + m->roff;
	iov.iov_len = IBUF_READ_SIZE - m->roff;
	do {
		n = (ib->flags & ALLOW_FDPASS) ? recv_fd(ib->fd, &iov, &fd) :
		    readv(ib->fd, &iov, 1);
	} while (n == -1 && (errno == EINTR || errno == EMSGSIZE));
	if (n == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
	if (n == 0)
		return 0;
	if ((r = process(ib, m->roff + (size_t)n, &fd)) == -1)
		m->rerr = errno;
	if (fd >= 0)
		close(fd);
	if (r == -1)
		errno = m->rerr;
	return r;
}

int
plain_imsgbuf_get(struct imsgbuf *ib, struct imsg *imsg)
{
	struct pmsgbuf *m = PM(ib);
	struct ibuf *b;

	if ((b = queue_take(&m->rhead, &m->rtail)) == NULL)
		return 0;
	memcpy(&imsg->hdr, b->buf, sizeof(imsg->hdr));
	imsg->hdr.len &= ~FD_MARK;
	b->rpos = IMSG_HEADER_SIZE;
	imsg->data = b->wpos > b->rpos ? b->buf + b->rpos : NULL;
	imsg->buf = b;
	return 1;
}

int
plain_imsg_get_data(struct imsg *imsg, void *data, size_t len)
{
	struct ibuf *b = imsg->buf;

	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	if (b->wpos - b->rpos != len) {
		errno = EBADMSG;
		return -1;
	}
	memcpy(data, b->buf + b->rpos, len);
	b->rpos += len;
	return 0;
}

int
plain_imsg_get_fd(struct imsg *imsg)
{
	int fd = imsg->buf->fd;

	imsg->buf->fd = -1;
	return fd < 0 ? -1 : fd;
}

uint32_t
plain_imsg_get_id(struct imsg *imsg)
{
	return imsg->hdr.peerid;
}

size_t
plain_imsg_get_len(struct imsg *imsg)
{
	return imsg->buf->wpos - imsg->buf->rpos;
}

uint32_t
plain_imsg_get_type(struct imsg *imsg)
{
	return imsg->hdr.type;
}

void
plain_imsg_free(struct imsg *imsg)
{
	pbuf_free(imsg->buf);
}
