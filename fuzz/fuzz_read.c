/*
 * Fuzz the read path the way a hostile peer drives it: arbitrary bytes,
 * split anywhere, with descriptors attached anywhere, against every
 * maxsize, fd passing on or off.  Every message is taken apart with the
 * accessors and checked against a model that parses the same byte stream
 * independently; messages can be forwarded through a second imsgbuf pair
 * and must come back unchanged.
 *
 * The input is a script.  Six bytes of configuration:
 *   0  bit 0     the receiver allows fd passing
 *      bits 1-3  receiver limit: default, or payload limit 0, 1, 16, 17,
 *                100, 16384 or 70000 (imsgbuf_set_maxsize)
 *      bit 4     start with imsg_get rather than imsgbuf_get (they alternate)
 *      bit 5     leave what is still queued at the end to imsgbuf_clear
 *      bit 6     hand messages through imsg_ibufq_push/imsg_ibufq_pop
 *      bit 7     hold: keep every message fetched (after its checks)
 *                instead of freeing it, until a chunk releases it; the
 *                rest go after the receiver is cleared at the end.  Each
 *                is checked again, bytes and all, before it is freed
 *   1  bit 0     forward messages to a second imsgbuf pair
 *      bit 1     fd passing on that pair
 *      bits 2-4  its limit, from the same table
 *      bit 5     the peer writes into a pipe, not a socket (no descriptors)
 *      bit 6     read with msgbuf_new_reader and a header callback of our
 *                own instead of an imsgbuf: it frames like imsg, but
 *                fails (EPROTO) for type 0xe1, returns a buffer shorter
 *                than the header for 0xe2 and a view for 0xe3 (both
 *                EBADMSG), and a growing buffer for types with bit 4 set
 *      bit 7     the second pair is a pipe
 *   2-5          seed for the choices the script does not spell out
 *                (which accessors, which way to forward)
 * then chunks, each starting with a control byte:
 *      bits 0-1  descriptors (of /dev/null) sent with the chunk: 0-2, 3 = 0
 *                (none once FD_SENDS_MAX calls, fewer under a low
 *                RLIMIT_NOFILE, carried some)
 *      bit 2     a built message instead of raw bytes
 *      bit 3     do not read after this chunk
 *      bits 4-5  then fetch all (0, 3), one (1) or no (2) messages
 *      bit 6     raw chunk: repeat one byte instead of taking input bytes;
 *                built chunk: repeat instead the last raw or built chunk
 *                that sent bytes
 *      bit 7     then release held messages (see send_repeat, release)
 *   raw:    u16 length (little-endian), then the bytes (or the fill byte)
 *   built:  type, id, pid, u16 payload length, flags (see send_built)
 *   repeat: u16 count of copies
 * The end of the input is the peer's EOF (shutdown).  One input sends at
 * most STREAM_MAX bytes: many read buffers' worth, or 65536 tiny messages.
 *
 * Invariants: imsgbuf_read returns -1, 0 or 1, 0 only after EOF; the
 * first -1 is ERANGE, exactly when the stream holds a bad length (or the
 * callback's error at the header it rejects), and every later read
 * repeats it; the messages delivered are exactly the complete ones before
 * the first bad header, in order, each once; a descriptor only comes with
 * a marked message, and from a well-behaved sender (every descriptor on
 * the first byte of a marked message, every marked message with one)
 * exactly with its own message; a message held or left queued keeps its
 * bytes whatever is read and freed after it, even after the reader is
 * cleared; forwarded messages come back unchanged and the write queue
 * empties; no descriptor leaks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fuzz-common.h"

#include <imsg.h>

#define FD_MARK		0x80000000U
#define HDR		IMSG_HEADER_SIZE
#define STREAM_MAX	(1U << 20)	/* bytes one input may send */
#define REPEAT_FD_MAX	1024		/* copies sent one by one, with fds */
#define FD_SENDS_MAX	4096		/* calls with descriptors per input */

static const uint32_t limits[8] = {
	0, 0, 1, 16, 17, 100, 16384, 70000	/* [0] means "default" */
};

struct expmsg {
	size_t		 off;		/* of the header, in the stream */
	uint32_t	 type, len, id, pid;
	int		 mark;
	int		 got_fd;	/* it came with a descriptor */
};

struct fdmark {
	size_t		 off;		/* first stream byte of the chunk */
	int		 nfds;
};

/* A message fetched and checked, not yet freed. */
struct held {
	struct imsg	 imsg;
	size_t		 idx;		/* in exp */
	int		 fd;		/* it still has its descriptor */
};

struct fwdexp {
	uint32_t	 type, id, pid;
	size_t		 off;		/* payload, in the stream */
	size_t		 len;
	int		 fd;		/* a descriptor must come with it */
};

struct st {
	struct fz_in	 in;
	uint64_t	 rng;

	/* Everything written to the receiver, and its independent parse. */
	unsigned char	*s;
	size_t		 slen, scap;
	struct expmsg	*exp;
	size_t		 nexp, capexp, parsed;
	int		 model_err;
	struct fdmark	*marks;
	size_t		 nmarks, capmarks;
	size_t		 lastoff, lastlen;	/* the chunk to repeat, in s */
	/*
	 * Each call that carries descriptors may leave one open in a queued
	 * or held message, and each forwarded one may wait in the second
	 * pair's queue: past fdcap of either, descriptors are left out, so
	 * no input runs out of them (EMFILE is not the library's fault).
	 */
	size_t		 fdsends, fwdfds, fdcap;

	int		 sv[2];		/* sv[0]: raw writer, sv[1]: rx */
	int		 pipe;		/* sv is a pipe */
	int		 custom;	/* mrx with our callback, not rx */
	struct imsgbuf	 rx;
	struct msgbuf	*mrx;
	struct ibufqueue *cq;		/* turns mrx's ibufs into imsgs */
	int		 fdpass;
	uint32_t	 rxmax;		/* total, header included */
	int		 rx_err;	/* errno of the first -1, 0 if none */
	int		 eof;
	size_t		 ndelivered;
	int		 alt;		/* next fetch uses imsg_get */
	int		 use_q;
	int		 leave;		/* imsgbuf_clear frees the rest */
	struct ibufqueue *q, *kq;	/* round trips; kept to the end */
	size_t		*kept;		/* exp index of each message in kq */
	size_t		 nkept;
	int		 hold;
	struct held	*held;
	size_t		 nheld, capheld;

	int		 fwd_on, fwd_fdpass, fwd_pipe;
	int		 fw[2];
	struct imsgbuf	 fwd, fwdrx;
	uint32_t	 fwdmax;
	struct fwdexp	*fexp;
	size_t		 nfexp, capfexp, nfgot, fpending;
};

static void *
grow(void *p, size_t *cap, size_t need, size_t elsize)
{
	size_t ncap;

	if (need <= *cap)
		return p;
	ncap = *cap > 0 ? *cap : 16;
	while (ncap < need)
		ncap *= 2;
	CHECK((p = realloc(p, ncap * elsize)) != NULL);
	*cap = ncap;
	return p;
}

static size_t
rnd(struct st *st, size_t n)
{
	return n == 0 ? 0 : (size_t)(fz_rand(&st->rng) % n);
}

static uint32_t
total_limit(int idx)
{
	return idx == 0 ? MAX_IMSGSIZE : limits[idx] + HDR;
}

static const unsigned char *
payload(struct st *st, size_t off)
{
	return st->s + off;
}

/* Parse the stream as the receiver must, as far as it is written. */
static void
model_parse(struct st *st)
{
	struct imsg_hdr h;
	struct expmsg *e;
	uint32_t len;

	while (!st->model_err && st->slen - st->parsed >= HDR) {
		memcpy(&h, st->s + st->parsed, HDR);
		len = h.len & ~FD_MARK;
		if (len < HDR || len > st->rxmax) {
			st->model_err = ERANGE;
			break;
		}
		if (st->custom && (h.type == 0xe1 || h.type == 0xe2 ||
		    h.type == 0xe3)) {
			st->model_err = h.type == 0xe1 ? EPROTO : EBADMSG;
			break;
		}
		if (st->slen - st->parsed < len)
			break;
		st->exp = grow(st->exp, &st->capexp, st->nexp + 1,
		    sizeof(*st->exp));
		e = &st->exp[st->nexp++];
		e->off = st->parsed;
		e->type = h.type;
		e->len = len;
		e->id = h.peerid;
		e->pid = h.pid;
		e->mark = (h.len & FD_MARK) != 0;
		e->got_fd = 0;
		st->parsed += len;
	}
}

/* Read bytes nobody will look at, closing descriptors that come along. */
static void
discard_input(int fd, int ispipe)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(4 * sizeof(int))];
	} cm;
	unsigned char buf[8192];
	struct cmsghdr *c;
	struct msghdr msg;
	struct iovec iov;
	size_t i, n;
	int one;

	for (;;) {
		if (ispipe) {
			if (read(fd, buf, sizeof(buf)) <= 0)
				return;
			continue;
		}
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = sizeof(buf);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		if (recvmsg(fd, &msg, 0) <= 0)
			return;
		for (c = CMSG_FIRSTHDR(&msg); c != NULL;
		    c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < n; i++) {
				memcpy(&one, CMSG_DATA(c) + i * sizeof(int),
				    sizeof(int));
				close(one);
			}
		}
	}
}

static int
rx_read(struct st *st)
{
	int r, e;

	errno = 0;
	if (!st->custom)
		r = imsgbuf_read(&st->rx);
	else if (st->fdpass)
		r = msgbuf_read(st->sv[1], st->mrx);
	else
		r = ibuf_read(st->sv[1], st->mrx);
	e = errno;
	CHECK(r == -1 || r == 0 || r == 1);
	if (st->rx_err != 0) {
		/* Sticky: the same error, without touching the socket. */
		CHECK(r == -1 && e == st->rx_err);
		return r;
	}
	model_parse(st);
	if (r == -1) {
		CHECK(st->model_err != 0 && e == st->model_err);
		st->rx_err = e;
	} else if (r == 0) {
		CHECK(st->eof && !st->model_err);
	}
	return r;
}

/* Make room in the socket for a blocked writer. */
static void
rx_service(struct st *st)
{
	if (st->rx_err != 0)
		discard_input(st->sv[1], st->pipe);
	else
		rx_read(st);
}

/* Is the unread rest of b equal to the n bytes at p? */
static int
same(const struct ibuf *b, const unsigned char *p, size_t n)
{
	return ibuf_size(b) == n &&
	    (n == 0 || memcmp(ibuf_data(b), p, n) == 0);
}

static size_t
pick_len(struct st *st, size_t rem)
{
	switch (rnd(st, 8)) {
	case 0:
		return 0;
	case 1:
	case 2:
		return rem;
	case 3:
		return rem + 1;
	case 4:
		return rnd(st, rem + 1);
	case 5:
		return 1;
	case 6:
		return SIZE_MAX - rnd(st, 2);
	default:
		return rnd(st, 64);
	}
}

static uint64_t
be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

static void walk(struct st *, struct ibuf *, const unsigned char *, size_t,
    int);

/* One ibuf_get_* call on b, whose unread bytes must be p[0..rem). */
static size_t
walk_one(struct st *st, struct ibuf *b, const unsigned char *p, size_t rem,
    int depth)
{
	static const size_t isz[7] = { 1, 2, 4, 8, 2, 4, 8 };
	struct ibuf v;
	unsigned char tmp[8], *buf;
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;
	uint8_t v8;
	size_t n, k, op = rnd(st, 12);
	char *s;
	int r;

	if (op < 7) {
		n = isz[op];
		errno = 0;
		switch (op) {
		case 0:
			r = ibuf_get_n8(b, &v8);
			v64 = v8;
			break;
		case 1:
			r = ibuf_get_n16(b, &v16);
			v64 = v16;
			break;
		case 2:
			r = ibuf_get_n32(b, &v32);
			v64 = v32;
			break;
		case 3:
			r = ibuf_get_n64(b, &v64);
			break;
		case 4:
			r = ibuf_get_h16(b, &v16);
			memcpy(tmp, &v16, 2);
			break;
		case 5:
			r = ibuf_get_h32(b, &v32);
			memcpy(tmp, &v32, 4);
			break;
		default:
			r = ibuf_get_h64(b, &v64);
			memcpy(tmp, &v64, 8);
			break;
		}
		if (n > rem) {
			CHECK(r == -1 && errno == EBADMSG);
			return 0;
		}
		CHECK(r == 0);
		if (op < 4)
			CHECK(v64 == be(p, n));
		else
			CHECK(memcmp(tmp, p, n) == 0);
		return n;
	}

	n = pick_len(st, rem);
	switch (op) {
	case 7:
		if (n > rem) {
			CHECK_ERR(ibuf_skip(b, n), -1, EBADMSG);
			return 0;
		}
		CHECK(ibuf_skip(b, n) == 0);
		return n;
	case 8:
		errno = 0;
		s = ibuf_get_string(b, n);
		if (n > rem) {
			CHECK(s == NULL && errno == EBADMSG);
			return 0;
		}
		CHECK(s != NULL);
		k = strnlen((const char *)p, n);
		CHECK(strlen(s) == k && memcmp(s, p, k) == 0);
		free(s);
		return n;
	case 9:
	case 10:
		/* The buffer is as long as the call says; a short one fails. */
		k = n <= rem ? n : 1;
		CHECK((buf = malloc(k > 0 ? k : 1)) != NULL);
		errno = 0;
		if (op == 9)
			r = ibuf_get_strbuf(b, (char *)buf, n);
		else
			r = ibuf_get(b, buf, n);
		if (op == 9 && n == 0) {
			CHECK(r == -1 && errno == EINVAL);
			n = 0;
		} else if (n > rem) {
			CHECK(r == -1 && errno == EBADMSG);
			n = 0;
		} else if (op == 9 && p[n - 1] != '\0') {
			CHECK(r == -1 && errno == EOVERFLOW);
			CHECK(buf[n - 1] == '\0');
			CHECK(memcmp(buf, p, n - 1) == 0);
		} else {
			CHECK(r == 0);
			CHECK(n == 0 || memcmp(buf, p, n) == 0);
		}
		free(buf);
		return n;
	default:
		if (n > rem) {
			CHECK_ERR(ibuf_get_ibuf(b, n, &v), -1, EBADMSG);
			return 0;
		}
		CHECK(ibuf_get_ibuf(b, n, &v) == 0);
		CHECK(same(&v, p, n));
		CHECK(ibuf_left(&v) == 0 && v.fd == -2 && !ibuf_fd_avail(&v));
		CHECK(ibuf_fd_get(&v) == -1);
		if (depth == 0)
			walk(st, &v, p, n, 1);
		return n;
	}
}

/* A few random reads from b, whose unread bytes must be p[0..len). */
static void
walk(struct st *st, struct ibuf *b, const unsigned char *p, size_t len,
    int depth)
{
	size_t pos = 0, i, nops = rnd(st, 12);

	for (i = 0; i < nops; i++) {
		pos += walk_one(st, b, p + pos, len - pos, depth);
		CHECK(ibuf_size(b) == len - pos);
	}
}

/* Take the payload apart through the imsg accessors. */
static void
accessors(struct st *st, struct imsg *imsg, const unsigned char *pl,
    size_t plen)
{
	struct ibuf view;
	unsigned char *buf;
	size_t n, pos, i;
	int r;

	switch (rnd(st, 6)) {
	case 0:
		errno = 0;
		r = imsg_get_ibuf(imsg, &view);
		if (plen == 0) {
			CHECK(r == -1 && errno == EBADMSG);
			break;
		}
		CHECK(r == 0 && same(&view, pl, plen));
		CHECK(imsg_get_len(imsg) == 0);
		walk(st, &view, pl, plen, 0);
		break;
	case 1:
		n = pick_len(st, plen);
		CHECK((buf = malloc(n == plen && n > 0 ? n : 1)) != NULL);
		errno = 0;
		r = imsg_get_data(imsg, buf, n);
		if (n == 0)
			CHECK(r == -1 && errno == EINVAL);
		else if (n != plen)
			CHECK(r == -1 && errno == EBADMSG);
		else
			CHECK(r == 0 && memcmp(buf, pl, n) == 0);
		CHECK(imsg_get_len(imsg) == (r == 0 ? 0 : plen));
		free(buf);
		break;
	case 2:
	case 3:
		for (pos = 0, i = rnd(st, 5); i > 0; i--) {
			n = pick_len(st, plen - pos);
			CHECK((buf = malloc(n <= plen - pos && n > 0 ?
			    n : 1)) != NULL);
			errno = 0;
			if (i & 1)
				r = imsg_get_buf(imsg, buf, n);
			else
				r = imsg_get_strbuf(imsg, (char *)buf, n);
			if (!(i & 1) && n == 0) {
				CHECK(r == -1 && errno == EINVAL);
			} else if (n > plen - pos) {
				CHECK(r == -1 && errno == EBADMSG);
			} else if (!(i & 1) && pl[pos + n - 1] != '\0') {
				CHECK(r == -1 && errno == EOVERFLOW);
				CHECK(buf[n - 1] == '\0' &&
				    memcmp(buf, pl + pos, n - 1) == 0);
				pos += n;
			} else {
				CHECK(r == 0);
				CHECK(n == 0 || memcmp(buf, pl + pos, n) == 0);
				pos += n;
			}
			CHECK(imsg_get_len(imsg) == plen - pos);
			free(buf);
		}
		break;
	case 4:
		walk(st, imsg->buf, pl, plen, 0);
		break;
	default:
		break;
	}
}

static void
fwd_expect(struct st *st, const struct expmsg *e, pid_t pid, int fd)
{
	struct fwdexp *f;

	st->fexp = grow(st->fexp, &st->capfexp, st->nfexp + 1,
	    sizeof(*st->fexp));
	f = &st->fexp[st->nfexp++];
	f->type = e->type;
	f->id = e->id;
	f->pid = (uint32_t)(pid != 0 ? pid : st->fwd.pid);
	f->off = e->off + HDR;
	f->len = e->len - HDR;
	f->fd = fd != -1 && st->fwd_fdpass;
	st->fpending += e->len;
}

/* A descriptor for the second pair, or -1 where it cannot take one. */
static int
fwd_fd(struct st *st)
{
	if (rnd(st, 3) != 0 || (st->fwd_pipe && st->fwd_fdpass) ||
	    st->fwdfds >= st->fdcap)
		return -1;
	st->fwdfds++;
	return fz_open_null();
}

/* Send the payload again through the second pair, one of five ways. */
static void
forward(struct st *st, struct imsg *imsg, const struct expmsg *e)
{
	const unsigned char *pl = payload(st, e->off + HDR);
	size_t plen = e->len - HDR, hint, piece, pre, cut[2], sent, lim;
	pid_t pid = (pid_t)e->pid;
	struct iovec iov[3];
	struct ibuf *b;
	int fd = -1, fits = plen + HDR <= st->fwdmax, r, had_fd, iovcnt;

	switch (rnd(st, 5)) {
	case 0:
		had_fd = ibuf_fd_avail(imsg->buf);
		errno = 0;
		r = imsg_forward(&st->fwd, imsg);
		/* The descriptor is never forwarded; it stays with imsg. */
		CHECK(ibuf_fd_avail(imsg->buf) == had_fd);
		if (!fits) {
			CHECK(r == -1 && errno == ERANGE);
			return;
		}
		CHECK(r == 1 && same(imsg->buf, pl, plen));
		fwd_expect(st, e, pid, -1);
		return;
	case 1:
		fd = fwd_fd(st);
		errno = 0;
		r = imsg_compose(&st->fwd, e->type, e->id, pid, fd, pl, plen);
		if (!fits) {
			CHECK(r == -1 && errno == ERANGE);
			if (fd != -1)
				close(fd);	/* still ours on failure */
			return;
		}
		CHECK(r == 1);
		fwd_expect(st, e, pid, fd);
		return;
	case 2:
		hint = rnd(st, 2) ? plen : rnd(st, plen + 1);
		errno = 0;
		b = imsg_create(&st->fwd, e->type, e->id, pid, hint);
		if (hint + HDR > st->fwdmax) {
			CHECK(b == NULL && errno == ERANGE);
			return;
		}
		CHECK(b != NULL);
		CHECK(imsg_add(b, NULL, 0) == 0);
		/* Maybe lower this message's own limit first. */
		lim = st->fwdmax;
		if (rnd(st, 3) == 0) {
			hint = rnd(st, 4) ? rnd(st, plen + 2) : SIZE_MAX - 8;
			errno = 0;
			r = imsg_set_maxsize(b, hint);
			if (hint > UINT32_MAX - HDR || hint + HDR > lim)
				CHECK(r == -1 && errno == ERANGE);
			else {
				CHECK(r == 0);
				lim = hint + HDR;
			}
		}
		for (sent = 0; sent < plen; sent += piece) {
			piece = 1 + rnd(st, plen - sent);
			errno = 0;
			r = imsg_add(b, pl + sent, piece);
			if (sent + piece + HDR > lim) {
				/* imsg_add freed b */
				CHECK(r == -1 && errno == ERANGE);
				return;
			}
			CHECK(r == (int)piece);
		}
		if ((fd = fwd_fd(st)) != -1)
			ibuf_fd_set(b, fd);
		imsg_close(&st->fwd, b);
		fwd_expect(st, e, pid, fd);
		return;
	case 3:
		/* Only the unread part of the ibuf is sent. */
		pre = rnd(st, 4);
		CHECK((b = ibuf_open(pre + plen)) != NULL);
		CHECK(ibuf_add_zero(b, pre) == 0);
		CHECK(ibuf_add(b, pl, plen) == 0);
		CHECK(ibuf_skip(b, pre) == 0);
		errno = 0;
		r = imsg_compose_ibuf(&st->fwd, e->type, e->id, pid, b);
		if (!fits) {
			CHECK(r == -1 && errno == ERANGE);
			return;
		}
		CHECK(r == 1);
		fwd_expect(st, e, pid, -1);
		return;
	default:
		cut[0] = rnd(st, plen + 1);
		cut[1] = cut[0] + rnd(st, plen - cut[0] + 1);
		iov[0].iov_base = (void *)(uintptr_t)pl;
		iov[0].iov_len = cut[0];
		iov[1].iov_base = (void *)(uintptr_t)(pl + cut[0]);
		iov[1].iov_len = cut[1] - cut[0];
		iov[2].iov_base = (void *)(uintptr_t)(pl + cut[1]);
		iov[2].iov_len = plen - cut[1];
		iovcnt = 3;
		if (plen == 0)
			iovcnt = rnd(st, 2) ? -1 : 0;
		fd = fwd_fd(st);
		errno = 0;
		r = imsg_composev(&st->fwd, e->type, e->id, pid, fd, iov,
		    iovcnt);
		if (!fits) {
			CHECK(r == -1 && errno == ERANGE);
			if (fd != -1)
				close(fd);
			return;
		}
		CHECK(r == 1);
		fwd_expect(st, e, pid, fd);
		return;
	}
}

static void
fwd_drain(struct st *st)
{
	struct imsg m;
	struct fwdexp *f;
	int r, fd;

	while ((r = imsgbuf_get(&st->fwdrx, &m)) == 1) {
		CHECK(st->nfgot < st->nfexp);
		f = &st->fexp[st->nfgot++];
		CHECK(imsg_get_type(&m) == f->type && imsg_get_id(&m) == f->id);
		CHECK(m.hdr.pid == f->pid && m.hdr.len == f->len + HDR);
		CHECK(same(m.buf, payload(st, f->off), f->len));
		fd = imsg_get_fd(&m);
		CHECK((fd != -1) == f->fd);
		if (fd != -1) {
			CHECK(fz_is_null_fd(fd));
			close(fd);
		}
		imsg_free(&m);
		st->fpending -= f->len + HDR;
	}
	CHECK(r == 0);
}

/* Write out everything queued on the second pair and check it arrives. */
static void
fwd_pump(struct st *st, int useflush)
{
	uint32_t qlen;
	size_t got;
	int idle = 0;

	if (useflush)
		CHECK(imsgbuf_flush(&st->fwd) == 0);
	while (imsgbuf_queuelen(&st->fwd) > 0 || st->nfgot < st->nfexp) {
		qlen = imsgbuf_queuelen(&st->fwd);
		got = st->nfgot;
		if (qlen > 0)
			CHECK(imsgbuf_write(&st->fwd) == 0);
		CHECK(imsgbuf_read(&st->fwdrx) == 1);
		fwd_drain(st);
		/*
		 * A queue that claims messages when all of them have
		 * arrived would make imsgbuf_flush spin for ever.
		 */
		if (got == st->nfgot && qlen == imsgbuf_queuelen(&st->fwd))
			CHECK(++idle < 1000);
		else
			idle = 0;
	}
	st->fwdfds = 0;
}

static void
check_msg(struct st *st, struct imsg *imsg, ssize_t n, int via_imsg_get)
{
	struct expmsg *e;
	const unsigned char *pl;
	size_t plen, qn;
	int fd, had_fd;

	model_parse(st);
	CHECK(st->ndelivered < st->nexp);
	e = &st->exp[st->ndelivered++];
	plen = e->len - HDR;
	pl = payload(st, e->off + HDR);

	CHECK(e->len <= st->rxmax);
	if (via_imsg_get)
		CHECK(n == (ssize_t)e->len);
	CHECK(imsg->hdr.type == e->type && imsg_get_type(imsg) == e->type);
	CHECK(imsg->hdr.len == e->len);
	CHECK(imsg->hdr.peerid == e->id && imsg_get_id(imsg) == e->id);
	CHECK(imsg->hdr.pid == e->pid && imsg_get_pid(imsg) == (pid_t)e->pid);
	CHECK(imsg_get_len(imsg) == plen && same(imsg->buf, pl, plen));
	CHECK(plen == 0 ? imsg->data == NULL :
	    memcmp(imsg->data, pl, plen) == 0);
	had_fd = e->got_fd = ibuf_fd_avail(imsg->buf);
	CHECK(!had_fd || (e->mark && st->fdpass));

	if (st->use_q && rnd(st, 3) == 0) {
		qn = ibufq_queuelen(st->q);
		imsg_ibufq_push(rnd(st, 4) ? st->q : st->kq, imsg);
		CHECK(imsg->buf == NULL && imsg->data == NULL);
		if (ibufq_queuelen(st->q) == qn) {
			/* Kept to the end: popped or freed with the queue. */
			st->kept = realloc(st->kept,
			    (st->nkept + 1) * sizeof(*st->kept));
			CHECK(st->kept != NULL);
			st->kept[st->nkept++] = st->ndelivered - 1;
			return;
		}
		CHECK(imsg_ibufq_pop(st->q, imsg) == 1);
		CHECK(ibufq_queuelen(st->q) == qn);
		CHECK(imsg->hdr.type == e->type && imsg->hdr.len == e->len);
		CHECK(imsg->hdr.peerid == e->id && imsg->hdr.pid == e->pid);
		CHECK(same(imsg->buf, pl, plen));
		CHECK(ibuf_fd_avail(imsg->buf) == had_fd);
	}

	if (rnd(st, 2)) {
		fd = imsg_get_fd(imsg);
		CHECK((fd != -1) == had_fd);
		if (fd != -1) {
			CHECK(fz_is_null_fd(fd));
			close(fd);
		}
		CHECK(imsg_get_fd(imsg) == -1);
	}
	accessors(st, imsg, pl, plen);
	if (st->fwd_on && rnd(st, 2)) {
		forward(st, imsg, e);
		if (st->fpending > 65536 || rnd(st, 4) == 0)
			fwd_pump(st, st->fpending < 16384 &&
			    st->nfexp - st->nfgot < 32 && rnd(st, 2));
	}
	if (st->hold) {
		st->held = grow(st->held, &st->capheld, st->nheld + 1,
		    sizeof(*st->held));
		st->held[st->nheld].imsg = *imsg;
		st->held[st->nheld].idx = st->ndelivered - 1;
		st->held[st->nheld++].fd = ibuf_fd_avail(imsg->buf);
		return;
	}
	imsg_free(imsg);
}

/*
 * Free held messages: all of them, or (if !all, one time in three) a
 * random number; in order, in reverse or shuffled.  Whatever reads and
 * frees happened meanwhile, each must still hold its own bytes.
 */
static void
release(struct st *st, int all)
{
	struct held *h, t;
	struct expmsg *e;
	size_t i, j, n = st->nheld, plen, left;

	if (!all && rnd(st, 3) == 0)
		n = rnd(st, n + 1);
	switch (rnd(st, 3)) {
	case 0:
		break;
	case 1:
		for (i = 0, j = st->nheld; i + 1 < j; i++, j--) {
			t = st->held[i];
			st->held[i] = st->held[j - 1];
			st->held[j - 1] = t;
		}
		break;
	default:
		for (i = 0; i < n; i++) {
			j = i + rnd(st, st->nheld - i);
			t = st->held[i];
			st->held[i] = st->held[j];
			st->held[j] = t;
		}
		break;
	}
	for (i = 0; i < n; i++) {
		h = &st->held[i];
		e = &st->exp[h->idx];
		plen = e->len - HDR;
		CHECK(h->imsg.hdr.type == e->type && h->imsg.hdr.len == e->len);
		CHECK(h->imsg.hdr.peerid == e->id && h->imsg.hdr.pid == e->pid);
		CHECK(plen == 0 ? h->imsg.data == NULL :
		    memcmp(h->imsg.data, payload(st, e->off + HDR), plen) == 0);
		/* The accessors may have read some of it. */
		left = ibuf_size(h->imsg.buf);
		CHECK(left <= plen);
		CHECK(same(h->imsg.buf, payload(st, e->off + HDR + plen - left),
		    left));
		CHECK(ibuf_fd_avail(h->imsg.buf) == h->fd);
		imsg_free(&h->imsg);
	}
	if (n > 0)
		memmove(st->held, st->held + n,
		    (st->nheld - n) * sizeof(*st->held));
	st->nheld -= n;
}

/* Fetch up to max messages (-1: all), alternating the two calls. */
static void
rx_drain(struct st *st, int max)
{
	struct imsg imsg;
	struct ibuf *b;
	ssize_t n;
	int r;

	for (; max != 0; max--) {
		memset(&imsg, 0xa5, sizeof(imsg));
		if (st->custom) {
			/* A whole message, header included, as an imsg. */
			if ((b = msgbuf_get(st->mrx)) == NULL)
				return;
			CHECK(b->rpos == 0 && ibuf_size(b) >= HDR);
			ibufq_push(st->cq, b);
			CHECK(imsg_ibufq_pop(st->cq, &imsg) == 1);
			check_msg(st, &imsg, 0, 0);
		} else if (st->alt) {
			n = imsg_get(&st->rx, &imsg);
			CHECK(n >= 0);
			if (n == 0)
				return;
			st->alt = 0;
			check_msg(st, &imsg, n, 1);
		} else {
			r = imsgbuf_get(&st->rx, &imsg);
			CHECK(r == 0 || r == 1);
			if (r == 0)
				return;
			st->alt = 1;
			check_msg(st, &imsg, 0, 0);
		}
	}
}

/* Write len bytes in as many sendmsg calls as it takes; fds go first. */
static void
send_bytes(struct st *st, const unsigned char *p, size_t len, int nfds)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	struct cmsghdr *c;
	struct msghdr msg;
	struct iovec iov;
	ssize_t n;
	int fds[2], i, stuck = 0;

	if (len == 0)
		return;
	if (st->pipe || st->fdsends >= st->fdcap)
		nfds = 0;
	if (nfds > 0)
		st->fdsends++;
	st->s = grow(st->s, &st->scap, st->slen + len, 1);
	memcpy(st->s + st->slen, p, len);
	if (nfds > 0) {
		st->marks = grow(st->marks, &st->capmarks, st->nmarks + 1,
		    sizeof(*st->marks));
		st->marks[st->nmarks].off = st->slen;
		st->marks[st->nmarks++].nfds = nfds;
	}
	st->slen += len;
	for (i = 0; i < nfds; i++)
		fds[i] = fz_open_null();

	while (len > 0) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = (void *)(uintptr_t)p;
		iov.iov_len = len;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		if (nfds > 0) {
			memset(&cm, 0, sizeof(cm));
			msg.msg_control = cm.buf;
			msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
		}
		if (st->pipe)
			n = write(st->sv[0], p, len);
		else
			n = sendmsg(st->sv[0], &msg,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == -1) {
			/* Full, or too many descriptors in flight. */
			CHECK(errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR || errno == ETOOMANYREFS);
			CHECK(++stuck < 100000);
			rx_service(st);
			continue;
		}
		stuck = 0;
		/* The descriptors left with the first byte; ours are copies. */
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		nfds = 0;
		p += n;
		len -= (size_t)n;
	}
}

static size_t
budget(struct st *st, size_t want)
{
	size_t room = STREAM_MAX - st->slen;

	return want < room ? want : room;
}

/*
 * A message built from a few fields, so short inputs reach long and
 * well-formed messages.  flags:
 *   bit 0     set IMSG_FD_MARK
 *   bit 1     payload is a pattern, not input bytes
 *   bits 2-3  payload length is shifted left by 0, 2, 4 or 6 bits
 *   bit 4     the length field is the given value itself (may be < 16)
 *   bit 5     send the header and the payload with separate calls
 */
static void
send_built(struct st *st, int nfds)
{
	struct imsg_hdr h;
	unsigned char *m;
	size_t plen, total, i, avail;
	uint8_t flags;

	h.type = fz_u8(&st->in);
	h.peerid = fz_u8(&st->in);
	h.pid = fz_u8(&st->in);
	plen = fz_u16(&st->in);
	flags = fz_u8(&st->in);
	plen <<= 2 * ((flags >> 2) & 3);
	if (flags & 0x10) {
		h.len = (uint32_t)plen;
		plen = plen >= HDR ? plen - HDR : 0;
	} else
		h.len = (uint32_t)(plen + HDR);
	if (flags & 0x01)
		h.len |= FD_MARK;

	/* Whatever the header claims, only the budget is sent. */
	if (plen > STREAM_MAX)
		plen = STREAM_MAX;
	total = budget(st, HDR + plen);
	if (total > 0) {
		st->lastoff = st->slen;
		st->lastlen = total;
	}
	CHECK((m = malloc(HDR + plen)) != NULL);
	memcpy(m, &h, HDR);
	avail = (flags & 0x02) ? 0 : st->in.len - st->in.pos;
	if (avail > plen)
		avail = plen;
	for (i = 0; i < avail; i++)
		m[HDR + i] = fz_u8(&st->in);
	memset(m + HDR + avail, h.type, plen - avail);
	if ((flags & 0x20) && total > HDR) {
		send_bytes(st, m, HDR, nfds);
		send_bytes(st, m + HDR, total - HDR, 0);
	} else
		send_bytes(st, m, total, nfds);
	free(m);
}

static void
send_rawchunk(struct st *st, uint8_t ctl, int nfds)
{
	unsigned char *p;
	size_t len = fz_u16(&st->in);

	if (ctl & 0x40) {
		len = budget(st, len);
		CHECK((p = malloc(len > 0 ? len : 1)) != NULL);
		memset(p, fz_u8(&st->in), len);
	} else {
		if (len > st->in.len - st->in.pos)
			len = st->in.len - st->in.pos;
		len = budget(st, len);
		p = NULL;
	}
	if (len > 0) {
		st->lastoff = st->slen;
		st->lastlen = len;
	}
	if (p != NULL) {
		send_bytes(st, p, len, nfds);
		free(p);
		return;
	}
	send_bytes(st, st->in.p + st->in.pos, len, nfds);
	st->in.pos += len;
}

/*
 * Send the last raw or built chunk again, count times, as far as the
 * budget goes: so a short input makes thousands of tiny messages in one
 * read, or fills read buffers with any mix of lengths.  Without
 * descriptors all copies go in one call; with them, each copy is a call
 * of its own carrying them (at most REPEAT_FD_MAX copies), which keeps a
 * well-behaved sender well-behaved.
 */
static void
send_repeat(struct st *st, int nfds)
{
	size_t n = fz_u16(&st->in), unit = st->lastlen, total, i, k;
	unsigned char *p;

	if (unit == 0 || n == 0)
		return;
	if (n > STREAM_MAX / unit + 1)
		n = STREAM_MAX / unit + 1;
	if (nfds > 0 && !st->pipe && n > REPEAT_FD_MAX)
		n = REPEAT_FD_MAX;
	if ((total = budget(st, n * unit)) == 0)
		return;
	CHECK((p = malloc(total)) != NULL);
	for (i = 0; i < total; i += k) {
		k = total - i < unit ? total - i : unit;
		memcpy(p + i, st->s + st->lastoff, k);
	}
	if (nfds == 0 || st->pipe)
		send_bytes(st, p, total, 0);
	else
		for (i = 0; i < total; i += k) {
			k = total - i < unit ? total - i : unit;
			send_bytes(st, p + i, k, nfds);
		}
	free(p);
}

/*
 * With a well-behaved sender (fd passing on, every descriptor sent with
 * the first byte of a marked message and every marked message sent with
 * one) each delivered message has a descriptor exactly when it is marked.
 */
static void
check_fd_owners(struct st *st)
{
	size_t i, j = 0;

	if (!st->fdpass)
		return;
	for (i = 0; i < st->nexp; i++) {
		if (!st->exp[i].mark)
			continue;
		if (j < st->nmarks && st->marks[j].off < st->exp[i].off)
			return;		/* a descriptor off a message start */
		if (j == st->nmarks || st->marks[j].off != st->exp[i].off)
			return;		/* a marked message without one */
		j++;
	}
	if (j != st->nmarks)
		return;
	for (i = 0; i < st->ndelivered; i++)
		CHECK(st->exp[i].got_fd == st->exp[i].mark);
}

/* sv[0] is written, sv[1] is read. */
static void
pair(int sv[2], int ispipe)
{
	int sz = 1 << 20, i, p[2];

	if (ispipe) {
		CHECK(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
		sv[0] = p[1];
		sv[1] = p[0];
		(void)fcntl(sv[0], F_SETPIPE_SZ, sz);
		return;
	}
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0, sv) == 0);
	for (i = 0; i < 2; i++) {
		(void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		(void)setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
}

/*
 * The header callback of the custom reader: imsg framing, plus the ways a
 * callback may fail.
 */
static struct ibuf *
custom_hdr(struct ibuf *hdr, void *arg, int *fd)
{
	static unsigned char viewmem[HDR];
	static struct ibuf view;
	struct st *st = arg;
	struct imsg_hdr h;
	struct ibuf *b;
	uint32_t len;

	/* A read-only view of exactly one header. */
	CHECK(hdr->fd == -2 && ibuf_size(hdr) == HDR && ibuf_left(hdr) == 0);
	CHECK(ibuf_get(hdr, &h, HDR) == 0);
	len = h.len & ~FD_MARK;
	if (len < HDR || len > st->rxmax) {
		errno = ERANGE;
		return NULL;
	}
	switch (h.type) {
	case 0xe1:
		/* Claim the descriptor, then fail: closing it is ours. */
		if ((h.len & FD_MARK) && *fd != -1) {
			close(*fd);
			*fd = -1;
		}
		errno = EPROTO;
		return NULL;
	case 0xe2:
		/* Shorter than a header: the reader must refuse it. */
		CHECK((b = ibuf_open(HDR / 2)) != NULL);
		return b;
	case 0xe3:
		ibuf_from_buffer(&view, viewmem, HDR);
		return &view;
	default:
		break;
	}
	/* A buffer that must grow as the message comes in, or one that fits. */
	if (h.type & 0x10)
		b = ibuf_dynamic(HDR, len);
	else
		b = ibuf_open(len);
	CHECK(b != NULL);
	if ((h.len & FD_MARK) && *fd != -1) {
		ibuf_fd_set(b, *fd);
		*fd = -1;
	}
	return b;
}

static void
setup(struct st *st, const uint8_t *data, size_t size)
{
	struct msgbuf *m;
	struct rlimit rl;
	uint8_t c0, c1;
	int li;

	memset(st, 0, sizeof(*st));
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	st->fdcap = FD_SENDS_MAX;
	if (rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 4 < FD_SENDS_MAX + 64)
		st->fdcap = rl.rlim_cur > 256 ? rl.rlim_cur / 4 - 64 : 0;
	st->in.p = data;
	st->in.len = size;
	c0 = fz_u8(&st->in);
	c1 = fz_u8(&st->in);
	st->rng = fz_seed(fz_u16(&st->in) | (uint64_t)fz_u16(&st->in) << 16);

	st->pipe = (c1 >> 5) & 1;
	st->custom = (c1 >> 6) & 1;
	st->fwd_pipe = (c1 >> 7) & 1;
	pair(st->sv, st->pipe);
	st->fdpass = c0 & 0x01;
	li = (c0 >> 1) & 7;
	st->rxmax = total_limit(li);
	if (st->custom) {
		CHECK_ERR(msgbuf_new_reader(0, custom_hdr, st), NULL, EINVAL);
		CHECK_ERR(msgbuf_new_reader(IBUF_READ_SIZE / 2 + 1, custom_hdr,
		    st), NULL, EINVAL);
		CHECK((m = msgbuf_new()) != NULL);
		CHECK_ERR(ibuf_read(st->sv[1], m), -1, EINVAL);
		CHECK(msgbuf_get(m) == NULL);
		msgbuf_free(m);
		st->mrx = msgbuf_new_reader(HDR, custom_hdr, st);
		CHECK(st->mrx != NULL);
		CHECK((st->cq = ibufq_new()) != NULL);
	} else {
		CHECK(imsgbuf_init(&st->rx, st->sv[1]) == 0);
		if (st->fdpass)
			imsgbuf_allow_fdpass(&st->rx);
		if (li != 0)
			CHECK(imsgbuf_set_maxsize(&st->rx, limits[li]) == 0);
		CHECK(st->rx.maxsize == st->rxmax);
	}
	st->alt = (c0 >> 4) & 1;
	st->leave = (c0 >> 5) & 1;
	st->use_q = (c0 >> 6) & 1;
	st->hold = (c0 >> 7) & 1;
	CHECK((st->q = ibufq_new()) != NULL);
	CHECK((st->kq = ibufq_new()) != NULL);

	st->fwd_on = c1 & 0x01;
	st->fwd_fdpass = (c1 >> 1) & 1;
	li = (c1 >> 2) & 7;
	st->fw[0] = st->fw[1] = -1;
	if (st->fwd_on) {
		pair(st->fw, st->fwd_pipe);
		CHECK(imsgbuf_init(&st->fwd, st->fw[0]) == 0);
		CHECK(imsgbuf_init(&st->fwdrx, st->fw[1]) == 0);
		if (st->fwd_fdpass) {
			imsgbuf_allow_fdpass(&st->fwd);
			imsgbuf_allow_fdpass(&st->fwdrx);
		}
		if (li != 0)
			CHECK(imsgbuf_set_maxsize(&st->fwd, limits[li]) == 0);
		st->fwdmax = total_limit(li);
		CHECK(imsgbuf_set_maxsize(&st->fwdrx, 1 << 20) == 0);
	}
}

/* EOF, the last reads, and everything the end of a channel must do. */
static void
finish(struct st *st)
{
	int leave = st->leave;
	struct imsg imsg;
	size_t i;
	int r, n;

	if (st->pipe) {
		close(st->sv[0]);
		st->sv[0] = -1;
	} else
		CHECK(shutdown(st->sv[0], SHUT_WR) == 0);
	st->eof = 1;
	for (n = 0; (r = rx_read(st)) == 1; n++) {
		CHECK(n < 100000);
		if (!leave)
			rx_drain(st, -1);
	}
	model_parse(st);
	CHECK(r == (st->model_err ? -1 : 0));
	CHECK(rx_read(st) == r);
	if (!leave) {
		rx_drain(st, -1);
		CHECK(st->ndelivered == st->nexp);
		if (st->custom)
			CHECK(msgbuf_get(st->mrx) == NULL);
		else {
			CHECK(imsgbuf_get(&st->rx, &imsg) == 0);
			CHECK(imsg_get(&st->rx, &imsg) == 0);
		}
	}
	check_fd_owners(st);

	/* Messages kept on a queue come back in order; half of them. */
	for (i = 0; i < st->nkept / 2; i++) {
		CHECK(imsg_ibufq_pop(st->kq, &imsg) == 1);
		CHECK(imsg.hdr.len == st->exp[st->kept[i]].len);
		CHECK(same(imsg.buf, payload(st, st->exp[st->kept[i]].off +
		    HDR), imsg.hdr.len - HDR));
		imsg_free(&imsg);
	}
	CHECK(ibufq_queuelen(st->kq) == st->nkept - st->nkept / 2);
	CHECK(ibufq_queuelen(st->q) == 0);
	CHECK(imsg_ibufq_pop(st->q, &imsg) == 0);

	if (st->custom) {
		msgbuf_free(st->mrx);
		ibufq_free(st->cq);
	} else {
		imsgbuf_clear(&st->rx);
		CHECK_ERR(imsgbuf_read(&st->rx), -1, EINVAL);
		CHECK_ERR(imsgbuf_get(&st->rx, &imsg), -1, EINVAL);
		CHECK_ERR(imsgbuf_write(&st->rx), -1, EINVAL);
		CHECK(imsgbuf_queuelen(&st->rx) == 0);
		imsgbuf_clear(&st->rx);
	}
	/* Held messages outlive their reader and its slabs. */
	release(st, 1);
	CHECK(st->nheld == 0);

	if (st->fwd_on) {
		fwd_pump(st, 0);
		CHECK(imsgbuf_queuelen(&st->fwd) == 0);
		imsgbuf_clear(&st->fwd);
		imsgbuf_clear(&st->fwdrx);
		close(st->fw[0]);
		close(st->fw[1]);
	}
	ibufq_free(st->q);
	ibufq_free(st->kq);
	if (st->sv[0] != -1)
		close(st->sv[0]);
	close(st->sv[1]);
	free(st->s);
	free(st->exp);
	free(st->marks);
	free(st->fexp);
	free(st->kept);
	free(st->held);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st st;
	uint8_t ctl;
	int nfds, fds0, drain[4] = { -1, 1, 0, -1 };

	fds0 = fz_count_fds();
	setup(&st, data, size);
	while (fz_more(&st.in) && st.slen < STREAM_MAX) {
		ctl = fz_u8(&st.in);
		nfds = (ctl & 3) == 3 ? 0 : ctl & 3;
		if ((ctl & 0x44) == 0x44)
			send_repeat(&st, nfds);
		else if (ctl & 0x04)
			send_built(&st, nfds);
		else
			send_rawchunk(&st, ctl, nfds);
		if (!(ctl & 0x08)) {
			rx_read(&st);
			rx_drain(&st, drain[(ctl >> 4) & 3]);
		}
		if (ctl & 0x80)
			release(&st, 0);
	}
	finish(&st);
	CHECK(fz_count_fds() == fds0);
	return 0;
}
