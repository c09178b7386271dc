/*
 * The imsg layer: framing typed messages with a 16-byte header over a
 * msgbuf, and the imsgbuf that ties a msgbuf to a socket.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/uio.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg-private.h"
#include "trace.h"

/*
 * The header callback of imsgbuf readers: check the length before
 * anything is allocated for it, then make the buffer the message will be
 * read into.  Only a marked header claims the descriptor; the reader
 * gives it to the last one of its read that does (see read.c).
 */
static struct ibuf *
imsg_parse_hdr(struct ibuf *buf, void *arg, int *fd)
{
	struct imsgbuf *ib = arg;
	struct ibuf *b;
	uint32_t len;

	/* The reader hands over exactly IMSG_HEADER_SIZE bytes. */
	memcpy(&len, (unsigned char *)ibuf_data(buf) +
	    offsetof(struct imsg_hdr, len), sizeof(len));
	if ((len & ~IMSG_FD_MARK) < IMSG_HEADER_SIZE ||
	    (len & ~IMSG_FD_MARK) > ib->maxsize) {
		errno = ERANGE;
		return NULL;
	}
	if ((b = libimsg__msgbuf_msg_alloc(ib->w, len & ~IMSG_FD_MARK)) == NULL)
		return NULL;
	if ((len & IMSG_FD_MARK) && *fd != -1) {
		b->fd = *fd;
		*fd = -1;
	}
	return b;
}

/*
 * The reader's fast path: most imsgs carry no descriptor mark, are within
 * the limit and lie whole in the read buffer.  Those are taken without
 * the header callback, since no descriptor can be theirs.  0 sends the
 * message down the callback's path, errors included.
 */
static size_t
imsg_whole(const unsigned char *p, size_t avail, void *arg)
{
	const struct imsgbuf *ib = arg;
	uint32_t len;

	memcpy(&len, p + offsetof(struct imsg_hdr, len), sizeof(len));
	/* The limit never has the mark bit set: marked ones fail here. */
	if (len < IMSG_HEADER_SIZE || len > ib->maxsize || len > avail)
		return 0;
	return len;
}

int
imsgbuf_init(struct imsgbuf *ib, int fd)
{
	struct msgbuf *m;

	m = msgbuf_new_reader(IMSG_HEADER_SIZE, imsg_parse_hdr, ib);
	if (m == NULL) {
		ib->w = NULL;
		return -1;
	}
	ib->w = m;
	libimsg__msgbuf_imsg_reader(m, imsg_whole);
	ib->pid = getpid();
	ib->maxsize = MAX_IMSGSIZE;
	ib->fd = fd;
	ib->flags = 0;
	return 0;
}

/* After imsgbuf_clear there is no msgbuf: fail instead of crashing. */
static int
imsgbuf_dead(struct imsgbuf *ib)
{
	if (ib->w != NULL)
		return 0;
	errno = EINVAL;
	return 1;
}

void
imsgbuf_allow_fdpass(struct imsgbuf *ib)
{
	ib->flags |= IMSG_ALLOW_FDPASS;
}

int
imsgbuf_set_maxsize(struct imsgbuf *ib, uint32_t maxsize)
{
	if (maxsize > UINT32_MAX - IMSG_HEADER_SIZE) {
		errno = ERANGE;
		return -1;
	}
	maxsize += IMSG_HEADER_SIZE;
	if (maxsize & IMSG_FD_MARK) {
		errno = EINVAL;
		return -1;
	}
	ib->maxsize = maxsize;
	return 0;
}

int
imsgbuf_read(struct imsgbuf *ib)
{
	struct ibuf **tailp;
	int r;

	if (imsgbuf_dead(ib))
		return -1;
	/* Where this read's messages will start in the read queue. */
	tailp = ib->w->rq.tailp;
	if (ib->flags & IMSG_ALLOW_FDPASS)
		r = msgbuf_read(ib->fd, ib->w);
	else
		r = ibuf_read(ib->fd, ib->w);
	if (libimsg__tracing())
		libimsg__trace_read(ib->fd, *tailp, r);
	return r;
}

int
imsgbuf_write(struct imsgbuf *ib)
{
	int r;

	if (imsgbuf_dead(ib))
		return -1;
	if (ib->flags & IMSG_ALLOW_FDPASS)
		r = msgbuf_write(ib->fd, ib->w);
	else
		r = ibuf_write(ib->fd, ib->w);
	if (r == -1 && libimsg__tracing())
		libimsg__trace_write_error(ib->fd);
	return r;
}

int
imsgbuf_flush(struct imsgbuf *ib)
{
	if (imsgbuf_dead(ib))
		return -1;
	while (msgbuf_queuelen(ib->w) > 0)
		if (imsgbuf_write(ib) == -1)
			return -1;
	return 0;
}

void
imsgbuf_clear(struct imsgbuf *ib)
{
	msgbuf_free(ib->w);
	ib->w = NULL;
}

uint32_t
imsgbuf_queuelen(struct imsgbuf *ib)
{
	if (ib->w == NULL)
		return 0;
	return msgbuf_queuelen(ib->w);
}

/* Turn a received message buffer into an imsg; the header is consumed. */
static int
imsg_from_ibuf(struct ibuf *b, struct imsg *imsg)
{
	if (b->wpos - b->rpos < sizeof(imsg->hdr)) {
		ibuf_free(b);
		errno = EBADMSG;
		return -1;
	}
	/*
	 * Straight into *imsg, not through a struct on the stack: reloading
	 * that whole right after the narrower store of len stalls the CPU.
	 */
	memcpy(&imsg->hdr, b->buf + b->rpos, sizeof(imsg->hdr));
	imsg->hdr.len &= ~IMSG_FD_MARK;
	b->rpos += sizeof(imsg->hdr);
	imsg->data = b->wpos > b->rpos ? b->buf + b->rpos : NULL;
	imsg->buf = b;
	return 1;
}

int
imsgbuf_get(struct imsgbuf *ib, struct imsg *imsg)
{
	struct ibuf *b;

	if (imsgbuf_dead(ib))
		return -1;
	if ((b = libimsg__q_pop(&ib->w->rq)) == NULL)
		return 0;
	return imsg_from_ibuf(b, imsg);
}

ssize_t
imsg_get(struct imsgbuf *ib, struct imsg *imsg)
{
	int r;

	if ((r = imsgbuf_get(ib, imsg)) != 1)
		return r;
	return (ssize_t)(ibuf_size(imsg->buf) + IMSG_HEADER_SIZE);
}

int
imsg_ibufq_pop(struct ibufqueue *q, struct imsg *imsg)
{
	struct ibuf *b;

	if ((b = ibufq_pop(q)) == NULL)
		return 0;
	return imsg_from_ibuf(b, imsg);
}

void
imsg_ibufq_push(struct ibufqueue *q, struct imsg *imsg)
{
	/* The next imsg_ibufq_pop reads the header again. */
	ibuf_rewind(imsg->buf);
	ibufq_push(q, imsg->buf);
	memset(imsg, 0, sizeof(*imsg));
}

int
imsg_get_ibuf(struct imsg *imsg, struct ibuf *ib)
{
	if (ibuf_size(imsg->buf) == 0) {
		errno = EBADMSG;
		return -1;
	}
	return ibuf_get_ibuf(imsg->buf, ibuf_size(imsg->buf), ib);
}

int
imsg_get_data(struct imsg *imsg, void *data, size_t len)
{
	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	if (ibuf_size(imsg->buf) != len) {
		errno = EBADMSG;
		return -1;
	}
	return ibuf_get(imsg->buf, data, len);
}

int
imsg_get_buf(struct imsg *imsg, void *data, size_t len)
{
	return ibuf_get(imsg->buf, data, len);
}

int
imsg_get_strbuf(struct imsg *imsg, char *str, size_t len)
{
	return ibuf_get_strbuf(imsg->buf, str, len);
}

int
imsg_get_fd(struct imsg *imsg)
{
	return ibuf_fd_get(imsg->buf);
}

uint32_t
imsg_get_id(struct imsg *imsg)
{
	return imsg->hdr.peerid;
}

size_t
imsg_get_len(struct imsg *imsg)
{
	return ibuf_size(imsg->buf);
}

pid_t
imsg_get_pid(struct imsg *imsg)
{
	return (pid_t)imsg->hdr.pid;
}

uint32_t
imsg_get_type(struct imsg *imsg)
{
	return imsg->hdr.type;
}

/* Check a payload length against the imsgbuf's limit, header included. */
static int
imsg_len_ok(struct imsgbuf *ib, size_t datalen)
{
	if (datalen > ib->maxsize ||
	    datalen > ib->maxsize - IMSG_HEADER_SIZE) {
		errno = ERANGE;
		return 0;
	}
	return 1;
}

static void
imsg_fill_hdr(struct imsgbuf *ib, struct imsg_hdr *hdr, uint32_t type,
    uint32_t id, pid_t pid, uint32_t len)
{
	hdr->type = type;
	hdr->len = len;
	hdr->peerid = id;
	hdr->pid = (uint32_t)(pid != 0 ? pid : ib->pid);
}

struct ibuf *
imsg_create(struct imsgbuf *ib, uint32_t type, uint32_t id, pid_t pid,
    size_t datalen)
{
	struct imsg_hdr hdr;
	struct ibuf *b;

	if (imsgbuf_dead(ib) || !imsg_len_ok(ib, datalen))
		return NULL;
	/* len stays 0 until imsg_close knows the final size. */
	imsg_fill_hdr(ib, &hdr, type, id, pid, 0);
	if ((b = libimsg__ibuf_alloc(datalen + IMSG_HEADER_SIZE,
	    ib->maxsize)) == NULL)
		return NULL;
	if (ibuf_add(b, &hdr, sizeof(hdr)) == -1) {
		ibuf_free(b);
		return NULL;
	}
	return b;
}

int
imsg_add(struct ibuf *msg, const void *data, size_t datalen)
{
	if (msg == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (datalen > 0 && ibuf_add(msg, data, datalen) == -1) {
		ibuf_free(msg);
		return -1;
	}
	return (int)datalen;
}

void
imsg_close(struct imsgbuf *ib, struct ibuf *msg)
{
	uint32_t len;

	if (msg == NULL)
		return;
	if (imsgbuf_dead(ib)) {
		ibuf_free(msg);
		return;
	}
	len = (uint32_t)ibuf_size(msg);
	if (ibuf_fd_avail(msg))
		len |= IMSG_FD_MARK;
	ibuf_set_h32(msg, offsetof(struct imsg_hdr, len), len);
	if (libimsg__tracing())
		libimsg__trace_sendbuf(ib->fd, msg);
	ibuf_close(ib->w, msg);
}

/*
 * Queue a descriptor-less message straight into a batch: no ibuf is made
 * for it at all.  Returns 1, 0 if the message does not suit a batch, -1.
 */
static int
imsg_compose_batched(struct imsgbuf *ib, const struct imsg_hdr *hdr,
    const struct iovec *iov, int iovcnt, size_t datalen)
{
	unsigned char *p;
	int i;

	if (datalen > MSGBUF_BATCH_MSGMAX - IMSG_HEADER_SIZE)
		return 0;
	p = libimsg__msgbuf_batch_reserve(ib->w, datalen + IMSG_HEADER_SIZE);
	if (p == NULL)
		return -1;
	if (libimsg__tracing())
		libimsg__trace_sendv(ib->fd, hdr->type, hdr->peerid, hdr->pid,
		    iov, iovcnt);
	/*
	 * Field by field: the header was just built with 32-bit stores, and
	 * reading it back as one 16-byte load would stall the CPU.
	 */
	memcpy(p + offsetof(struct imsg_hdr, type), &hdr->type, 4);
	memcpy(p + offsetof(struct imsg_hdr, len), &hdr->len, 4);
	memcpy(p + offsetof(struct imsg_hdr, peerid), &hdr->peerid, 4);
	memcpy(p + offsetof(struct imsg_hdr, pid), &hdr->pid, 4);
	p += sizeof(*hdr);
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len == 0)
			continue;
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	return 1;
}

int
imsg_composev(struct imsgbuf *ib, uint32_t type, uint32_t id, pid_t pid,
    int fd, const struct iovec *iov, int iovcnt)
{
	struct imsg_hdr hdr;
	struct ibuf *b;
	size_t datalen = 0;
	int i, r;

	if (imsgbuf_dead(ib))
		return -1;
	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - datalen) {
			errno = ERANGE;
			return -1;
		}
		datalen += iov[i].iov_len;
	}
	if (!imsg_len_ok(ib, datalen))
		return -1;
	if (fd == -1) {
		imsg_fill_hdr(ib, &hdr, type, id, pid,
		    (uint32_t)(datalen + IMSG_HEADER_SIZE));
		if ((r = imsg_compose_batched(ib, &hdr, iov, iovcnt,
		    datalen)) != 0)
			return r;
	}

	if ((b = imsg_create(ib, type, id, pid, datalen)) == NULL)
		return -1;
	for (i = 0; i < iovcnt; i++)
		if (imsg_add(b, iov[i].iov_base, iov[i].iov_len) == -1)
			return -1;
	ibuf_fd_set(b, fd);
	imsg_close(ib, b);
	return 1;
}

int
imsg_compose(struct imsgbuf *ib, uint32_t type, uint32_t id, pid_t pid,
    int fd, const void *data, size_t datalen)
{
	struct iovec iov;

	iov.iov_base = (void *)(uintptr_t)data;
	iov.iov_len = datalen;
	return imsg_composev(ib, type, id, pid, fd, &iov, 1);
}

int
imsg_compose_ibuf(struct imsgbuf *ib, uint32_t type, uint32_t id,
    pid_t pid, struct ibuf *buf)
{
	struct imsg_hdr hdr;
	struct ibuf *hbuf;
	int saved_errno;

	if (buf->fd == IBUF_FD_VIEW)
		libimsg__ibuf_view_abort("imsg_compose_ibuf");
	if (imsgbuf_dead(ib) || !imsg_len_ok(ib, ibuf_size(buf)))
		goto fail;
	/*
	 * The header is never marked: buf cannot pass a descriptor.  It gets
	 * a buffer of its own, since a batch holds only whole messages.
	 */
	imsg_fill_hdr(ib, &hdr, type, id, pid,
	    (uint32_t)(ibuf_size(buf) + IMSG_HEADER_SIZE));
	if ((hbuf = libimsg__ibuf_alloc(sizeof(hdr), sizeof(hdr))) == NULL)
		goto fail;
	memcpy(hbuf->buf, &hdr, sizeof(hdr));
	hbuf->wpos = sizeof(hdr);
	if (libimsg__tracing())
		libimsg__trace_send(ib->fd, &hdr, ibuf_data(buf), ibuf_size(buf),
		    -1);
	ibuf_close(ib->w, hbuf);
	ibuf_close(ib->w, buf);
	return 1;

fail:
	saved_errno = errno;
	ibuf_free(buf);
	errno = saved_errno;
	return -1;
}

int
imsg_forward(struct imsgbuf *ib, struct imsg *msg)
{
	struct iovec iov;

	ibuf_rewind(msg->buf);
	if (ibuf_skip(msg->buf, IMSG_HEADER_SIZE) == -1)
		return -1;
	iov.iov_base = ibuf_data(msg->buf);
	iov.iov_len = ibuf_size(msg->buf);
	/* The descriptor stays with msg: forwarding never passes it on. */
	return imsg_composev(ib, msg->hdr.type, msg->hdr.peerid,
	    (pid_t)msg->hdr.pid, -1, &iov, 1);
}

void
imsg_free(struct imsg *imsg)
{
	ibuf_free(imsg->buf);
}

int
imsg_set_maxsize(struct ibuf *msg, size_t max)
{
	if (max > UINT32_MAX - IMSG_HEADER_SIZE) {
		errno = ERANGE;
		return -1;
	}
	return ibuf_set_maxsize(msg, max + IMSG_HEADER_SIZE);
}
