/*
 * The byte stream: any split of it gives the same messages, large
 * messages cross many reads, hundreds fit in one, partial writes keep the
 * order, and EAGAIN, EOF and EPIPE give the documented results.  Hostile
 * streams (bad lengths, EOF mid-message, descriptors on the wrong
 * message, marks without descriptors) fail cleanly, deliver nothing
 * twice and leak nothing.  Also the msgbuf reader with a header callback
 * of our own, and zero-length ibufs on the write queue.
 *
 * Streams are built by hand from the wire format: a 16-byte host-order
 * header (type, len, peerid, pid; len counts the header and bit 31 says
 * "an fd comes with this message"), then len - 16 payload bytes.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imsg.h"
#include "harness.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------- */

static void
chan_close(struct chan *c)
{
	imsgbuf_clear(&c->a);
	imsgbuf_clear(&c->b);
	if (c->sv[0] != -1)
		close(c->sv[0]);
	if (c->sv[1] != -1)
		close(c->sv[1]);
}

/* ---- building streams by hand ---------------------------------------- */

/* What one message should look like on arrival. */
struct want {
	uint32_t	type;
	uint32_t	peerid;
	uint32_t	pid;
	size_t		paylen;
	unsigned int	seed;
};

struct raw {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
};

static void *
raw_reserve(struct raw *r, size_t n)
{
	void *p;

	if (r->len + n > r->cap) {
		r->cap = (r->len + n) * 2;
		if ((r->p = realloc(r->p, r->cap)) == NULL)
			die("realloc");
	}
	p = r->p + r->len;
	r->len += n;
	return p;
}

/* A header with the given len field, then paylen filled bytes. */
static void
raw_msg_len(struct raw *r, const struct want *w, uint32_t lenfield)
{
	put_hdr(raw_reserve(r, 16), w->type, lenfield, w->peerid, w->pid);
	fill(raw_reserve(r, w->paylen), w->paylen, w->seed);
}

static void
raw_msg(struct raw *r, const struct want *w)
{
	raw_msg_len(r, w, (uint32_t)(16 + w->paylen));
}

static void
raw_free(struct raw *r)
{
	free(r->p);
	memset(r, 0, sizeof(*r));
}

static struct want
want_msg(uint32_t i, size_t paylen)
{
	struct want w;

	w.type = 100 + i;
	w.peerid = 7 * i;
	w.pid = 1000 + i;
	w.paylen = paylen;
	w.seed = i;
	return w;
}

/* Check one received message against what was sent; 0 if it matches. */
static int
check_msg_at(struct imsg *m, const struct want *w, int line)
{
	static unsigned char buf[1 << 16];
	unsigned char *exp = buf;
	int bad = 0;

	if (imsg_get_type(m) != w->type || imsg_get_id(m) != w->peerid ||
	    (uint32_t)imsg_get_pid(m) != w->pid ||
	    imsg_get_len(m) != w->paylen || m->hdr.len != 16 + w->paylen) {
		h_fail(__FILE__, line, "got type %u id %u pid %u len %zu "
		    "hdr.len %u, want type %u id %u pid %u len %zu",
		    imsg_get_type(m), imsg_get_id(m),
		    (unsigned)imsg_get_pid(m), imsg_get_len(m), m->hdr.len,
		    w->type, w->peerid, w->pid, w->paylen);
		return -1;
	}
	if (w->paylen == 0) {
		if (m->data != NULL) {
			h_fail(__FILE__, line,
			    "empty payload but data != NULL");
			bad = -1;
		}
		return bad;
	}
	if (w->paylen > sizeof(buf) && (exp = malloc(w->paylen)) == NULL)
		die("malloc");
	fill(exp, w->paylen, w->seed);
	if (m->data == NULL || memcmp(m->data, exp, w->paylen) != 0) {
		h_fail(__FILE__, line, "payload of type %u differs", w->type);
		bad = -1;
	}
	if (exp != buf)
		free(exp);
	return bad;
}
#define CHECK_MSG(m, w)	check_msg_at((m), (w), __LINE__)

/* Send bytes with SCM_RIGHTS carrying nfds descriptors. */
static void
send_with_fds(int sock, const void *p, size_t n, const int *fds, int nfds)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(4 * sizeof(int))];
	} cbuf;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;

	memset(&msg, 0, sizeof(msg));
	memset(&cbuf, 0, sizeof(cbuf));
	iov.iov_base = (void *)(uintptr_t)p;
	iov.iov_len = n;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	if (sendmsg(sock, &msg, 0) != (ssize_t)n)
		die("sendmsg");
}

static int
same_file(int a, int b)
{
	struct stat sa, sb;

	if (fstat(a, &sa) == -1 || fstat(b, &sb) == -1)
		return 0;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* ---- any split gives the same messages ------------------------------- */

#define SPLIT_N	6

static const size_t split_sizes[SPLIT_N] = { 0, 1, 15, 16, 17, 300 };

static void
byte_at_a_time_delivers_each_message_when_complete(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w[SPLIT_N];
	size_t end[SPLIT_N], k;
	struct imsg m;
	int i, got = 0, ready, reported = 0;

	chan_open(&c, 0);
	for (i = 0; i < SPLIT_N; i++) {
		w[i] = want_msg((uint32_t)i, split_sizes[i]);
		raw_msg(&r, &w[i]);
		end[i] = r.len;
	}
	for (k = 0; k < r.len && !h_case_failed; k++) {
		write_all(c.sv[0], r.p + k, 1);
		CHECK_INT(imsgbuf_read(&c.b), ==, 1);
		while (got < SPLIT_N && imsgbuf_get(&c.b, &m) == 1) {
			CHECK_MSG(&m, &w[got]);
			msg_free(&m);
			got++;
		}
		/* Each message shows up exactly when its last byte does. */
		for (ready = 0; ready < SPLIT_N && end[ready] <= k + 1; ready++)
			;
		if (got != ready && !reported) {
			h_fail(__FILE__, __LINE__, "after %zu bytes: %d "
			    "messages, want %d", k + 1, got, ready);
			reported = 1;
		}
	}
	CHECK_INT(got, ==, SPLIT_N);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	raw_free(&r);
	chan_close(&c);
}

static void
every_split_point_gives_the_same_messages(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w[3];
	struct imsg m;
	size_t s;
	int i, got;

	w[0] = want_msg(0, 5);
	w[1] = want_msg(1, 0);
	w[2] = want_msg(2, 40);
	for (i = 0; i < 3; i++)
		raw_msg(&r, &w[i]);
	for (s = 0; s <= r.len && !h_case_failed; s++) {
		chan_open(&c, 0);
		got = 0;
		write_all(c.sv[0], r.p, s);
		if (s > 0)
			CHECK_INT(imsgbuf_read(&c.b), ==, 1);
		while (got < 3 && imsgbuf_get(&c.b, &m) == 1) {
			CHECK_MSG(&m, &w[got]);
			msg_free(&m);
			got++;
		}
		write_all(c.sv[0], r.p + s, r.len - s);
		while (got < 3 && next_msg(&c.b, &m) == 1) {
			CHECK_MSG(&m, &w[got]);
			msg_free(&m);
			got++;
		}
		if (got != 3)
			h_fail(__FILE__, __LINE__, "split at %zu: %d messages",
			    s, got);
		chan_close(&c);
	}
	raw_free(&r);
}

static void
header_cut_in_two_waits_for_the_rest(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w = want_msg(1, 12);
	struct imsg m;

	chan_open(&c, 0);
	raw_msg(&r, &w);
	write_all(c.sv[0], r.p, 10);
	CHECK_INT(imsgbuf_read(&c.b), ==, 1);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	write_all(c.sv[0], r.p + 10, 6);
	CHECK_INT(imsgbuf_read(&c.b), ==, 1);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	write_all(c.sv[0], r.p + 16, 12);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_MSG(&m, &w);
	msg_free(&m);
	raw_free(&r);
	chan_close(&c);
}

#define MIB	(1U << 20)

static void
one_mib_message_arrives_over_many_reads(void)
{
	struct want big = want_msg(1, MIB), small = want_msg(2, 33);
	struct imsgbuf ib;
	struct imsg m;
	int sv[2], mode, r, reads;
	pid_t pid;

	/* mode 0: the child composes; mode 1: it writes raw bytes in
	 * chunks of odd sizes. */
	for (mode = 0; mode < 2 && !h_case_failed; mode++) {
		pair(sv);
		if ((pid = fork_child()) == 0) {
			struct raw raw = { NULL, 0, 0 };
			size_t off, n;
			unsigned int x = 12345;

			close(sv[0]);
			raw_msg(&raw, &big);
			raw_msg(&raw, &small);
			if (mode == 0) {
				CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
				CHECK_INT(imsgbuf_set_maxsize(&ib, MIB), ==, 0);
				CHECK_INT(imsg_compose(&ib, big.type,
				    big.peerid, (pid_t)big.pid, -1, raw.p + 16,
				    MIB), ==, 1);
				CHECK_INT(imsg_compose(&ib, small.type,
				    small.peerid, (pid_t)small.pid, -1,
				    raw.p + 32 + MIB, small.paylen), ==, 1);
				CHECK_INT(imsgbuf_flush(&ib), ==, 0);
				imsgbuf_clear(&ib);
			} else {
				for (off = 0; off < raw.len; off += n) {
					x = x * 1103515245 + 12345;
					n = 1 + (x >> 8) % 90000;
					if (n > raw.len - off)
						n = raw.len - off;
					write_all(sv[1], raw.p + off, n);
				}
			}
			raw_free(&raw);
			close(sv[1]);
			child_exit();
		}
		close(sv[1]);
		CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
		CHECK_INT(imsgbuf_set_maxsize(&ib, MIB), ==, 0);
		reads = 0;
		while ((r = imsgbuf_get(&ib, &m)) == 0) {
			if (wait_readable(sv[0], 5000) <= 0)
				break;
			if (imsgbuf_read(&ib) != 1)
				break;
			reads++;
		}
		CHECK_INT(r, ==, 1);
		if (r == 1) {
			CHECK_MSG(&m, &big);
			msg_free(&m);
		}
		CHECK_INT(reads, >, 1);
		CHECK_INT(next_msg(&ib, &m), ==, 1);
		if (!h_case_failed) {
			CHECK_MSG(&m, &small);
			msg_free(&m);
		}
		CHECK_INT(next_msg(&ib, &m), ==, 0);
		imsgbuf_clear(&ib);
		close(sv[0]);
		WAIT_CHILD(pid);
	}
}

#define HUNDREDS	500

static void
hundreds_of_messages_in_one_write(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w[HUNDREDS];
	struct imsg m;
	int i;

	chan_open(&c, 0);
	for (i = 0; i < HUNDREDS; i++) {
		w[i] = want_msg((uint32_t)i, (size_t)(i * 37) % 101);
		raw_msg(&r, &w[i]);
	}
	CHECK_INT(write(c.sv[0], r.p, r.len), ==, r.len);
	for (i = 0; i < HUNDREDS && !h_case_failed; i++) {
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		if (h_case_failed)
			break;
		CHECK_MSG(&m, &w[i]);
		msg_free(&m);
	}
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	raw_free(&r);
	chan_close(&c);
}

/* ---- partial writes, EAGAIN, EOF ------------------------------------- */

#define PW_N	2000

static size_t
pw_size(int i)
{
	return 4 + (size_t)(i * 7919) % 3000;
}

static void
partial_writes_with_tiny_sndbuf_keep_every_message(void)
{
	struct imsgbuf ib;
	struct imsg m;
	struct pollfd pfd;
	static unsigned char data[3004];
	uint32_t seq;
	int sv[2], i, sndbuf = 4096, writes = 0, partial = 0;
	uint32_t q;
	pid_t pid;

	pair(sv);
	if ((pid = fork_child()) == 0) {
		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		for (i = 0; i < PW_N && !h_case_failed; i++) {
			CHECK_INT(next_msg(&ib, &m), ==, 1);
			if (h_case_failed)
				break;
			CHECK_UINT(imsg_get_type(&m), ==, 7);
			CHECK_UINT(imsg_get_len(&m), ==, pw_size(i));
			CHECK_INT(imsg_get_buf(&m, &seq, sizeof(seq)), ==, 0);
			CHECK_UINT(seq, ==, i);
			fill(data, pw_size(i), (unsigned int)i);
			if (imsg_get_len(&m) == pw_size(i) - 4)
				CHECK_MEM((unsigned char *)m.data + 4, data + 4,
				    pw_size(i) - 4);
			msg_free(&m);
		}
		CHECK_INT(next_msg(&ib, &m), ==, 0);
		imsgbuf_clear(&ib);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf))
	    == -1)
		die("SO_SNDBUF");
	set_nonblock(sv[0]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	for (i = 0; i < PW_N; i++) {
		seq = (uint32_t)i;
		fill(data, pw_size(i), seq);
		memcpy(data, &seq, sizeof(seq));
		CHECK_INT(imsg_compose(&ib, 7, 0, 0, -1, data, pw_size(i)), ==,
		    1);
	}
	while ((q = imsgbuf_queuelen(&ib)) > 0 && !h_case_failed) {
		pfd.fd = sv[0];
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 5000) <= 0) {
			h_fail(__FILE__, __LINE__, "socket never writable");
			break;
		}
		CHECK_INT(imsgbuf_write(&ib), ==, 0);
		writes++;
		if (imsgbuf_queuelen(&ib) > 0)
			partial++;
	}
	CHECK_INT(writes, >, 20);
	CHECK_INT(partial, >, 0);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
}

/*
 * Exact queue lengths after partial writes.  A nonblocking pipe of one
 * page takes exactly one page per write once emptied, so where a write
 * ends is known to the byte.  Messages are 64 bytes (48 of payload): a
 * page-sized write ends on a message end, and, after a 32-byte message
 * first, in the middle of one.  imsgbuf_queuelen must count exactly the
 * messages not yet written completely.
 */
#define QL_MSG		64

/* A nonblocking pipe holding one page; its size, or -1 if unavailable. */
static int
ql_pipe(int p[2])
{
	int sz;

	if (pipe(p) == -1)
		die("pipe");
	set_nonblock(p[0]);
	set_nonblock(p[1]);
#ifdef F_SETPIPE_SZ
	sz = fcntl(p[1], F_SETPIPE_SZ, (int)sysconf(_SC_PAGESIZE));
#else
	sz = -1;
#endif
	if (sz == -1 || sz % QL_MSG != 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	return sz;
}

/* Empty the pipe; the messages' types must follow on from *next. */
static void
ql_empty_pipe(int fd, size_t want, uint32_t *next, size_t *skip)
{
	static unsigned char buf[1 << 16];
	size_t got = 0, off;
	ssize_t n;

	while (got < want && (n = read(fd, buf + got, want - got)) > 0)
		got += (size_t)n;
	CHECK_UINT(got, ==, want);
	/* The first *skip bytes end a message begun in the last page. */
	for (off = *skip; off + 16 <= got; off += QL_MSG) {
		CHECK_UINT(hdr_at(buf + off).type, ==, *next);
		CHECK_UINT(hdr_at(buf + off).len, ==, QL_MSG);
		(*next)++;
	}
	*skip = off - got;
}

static void
ql_run(int cut)
{
	struct imsgbuf ib;
	unsigned char pay[QL_MSG - 16];
	uint32_t n, per, i, next = 0, q0;
	size_t skip = 0;
	int p[2], sz, w;

	if ((sz = ql_pipe(p)) == -1) {
		printf("# skipped: no F_SETPIPE_SZ\n");
		return;
	}
	per = (uint32_t)sz / QL_MSG;
	n = 3 * per + 10;
	CHECK_INT(imsgbuf_init(&ib, p[1]), ==, 0);
	memset(pay, 'q', sizeof(pay));
	if (cut) {
		/* Type 0 is 32 bytes, unchecked; types 1.. are 64. */
		CHECK_INT(imsg_compose(&ib, 0, 0, 0, -1, pay, 16), ==, 1);
		next = 1;
		skip = 32;
	}
	for (i = next; i < next + n; i++)
		CHECK_INT(imsg_compose(&ib, i, 0, 0, -1, pay, sizeof(pay)),
		    ==, 1);
	q0 = imsgbuf_queuelen(&ib);
	CHECK_UINT(q0, ==, n + (cut ? 1 : 0));
	/* Each write: one page, then the pipe is full. */
	for (w = 1; w <= 3 && !h_case_failed; w++) {
		CHECK_INT(imsgbuf_write(&ib), ==, 0);
		CHECK_UINT(imsgbuf_queuelen(&ib), ==, q0 - (uint32_t)w * per);
		CHECK_INT(imsgbuf_write(&ib), ==, 0);	/* EAGAIN: no change */
		CHECK_UINT(imsgbuf_queuelen(&ib), ==, q0 - (uint32_t)w * per);
		ql_empty_pipe(p[0], (size_t)sz, &next, &skip);
	}
	imsgbuf_clear(&ib);
	close(p[0]);
	close(p[1]);
}

static void
queuelen_after_a_write_ending_on_a_message_end_is_exact(void)
{
	ql_run(0);
}

static void
queuelen_after_a_write_ending_inside_a_message_is_exact(void)
{
	ql_run(1);
}

#define EAGAIN_N	100

static void
imsgbuf_write_returns_0_on_eagain(void)
{
	struct chan c;
	struct imsg m;
	static unsigned char data[1000];
	uint32_t q, seq;
	int i, fdpass, got, spins, sndbuf = 4096;

	for (fdpass = 0; fdpass < 2; fdpass++) {
		chan_open(&c, fdpass);
		if (setsockopt(c.sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
		    sizeof(sndbuf)) == -1)
			die("SO_SNDBUF");
		set_nonblock(c.sv[0]);
		set_nonblock(c.sv[1]);
		for (i = 0; i < EAGAIN_N; i++) {
			seq = (uint32_t)i;
			memcpy(data, &seq, sizeof(seq));
			CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, data,
			    sizeof(data)), ==, 1);
		}
		/* Nobody reads: the socket fills, then writes are EAGAIN. */
		for (i = 0; i < 20; i++)
			CHECK_INT(imsgbuf_write(&c.a), ==, 0);
		q = imsgbuf_queuelen(&c.a);
		CHECK_UINT(q, >, 0);
		CHECK_INT(imsgbuf_write(&c.a), ==, 0);
		CHECK_UINT(imsgbuf_queuelen(&c.a), ==, q);
		/* Nothing was lost: read while writing. */
		for (got = 0, spins = 0; got < EAGAIN_N && spins < 100000 &&
		    !h_case_failed; spins++) {
			CHECK_INT(imsgbuf_write(&c.a), ==, 0);
			CHECK_INT(imsgbuf_read(&c.b), ==, 1);
			while (imsgbuf_get(&c.b, &m) == 1) {
				CHECK_INT(imsg_get_buf(&m, &seq, sizeof(seq)),
				    ==, 0);
				CHECK_UINT(seq, ==, got);
				msg_free(&m);
				got++;
			}
		}
		CHECK_INT(got, ==, EAGAIN_N);
		CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
		chan_close(&c);
	}
}

static void
imsgbuf_read_returns_1_on_eagain(void)
{
	struct chan c;
	struct imsg m;
	int fdpass;

	for (fdpass = 0; fdpass < 2; fdpass++) {
		chan_open(&c, fdpass);
		set_nonblock(c.sv[1]);
		CHECK_INT(imsgbuf_read(&c.b), ==, 1);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		CHECK_INT(imsgbuf_read(&c.b), ==, 1);
		chan_close(&c);
	}
}

static void
eof_returns_0_after_delivering_what_came_before(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w[2];
	struct imsg m;
	int fdpass;

	w[0] = want_msg(0, 3);
	w[1] = want_msg(1, 0);
	raw_msg(&r, &w[0]);
	raw_msg(&r, &w[1]);
	for (fdpass = 0; fdpass < 2; fdpass++) {
		/* Nothing at all, then EOF. */
		chan_open(&c, fdpass);
		close(c.sv[0]);
		c.sv[0] = -1;
		CHECK_INT(imsgbuf_read(&c.b), ==, 0);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		chan_close(&c);

		/* Two messages, then EOF. */
		chan_open(&c, fdpass);
		write_all(c.sv[0], r.p, r.len);
		close(c.sv[0]);
		c.sv[0] = -1;
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_MSG(&m, &w[0]);
		msg_free(&m);
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_MSG(&m, &w[1]);
		msg_free(&m);
		CHECK_INT(next_msg(&c.b, &m), ==, 0);
		CHECK_INT(imsgbuf_read(&c.b), ==, 0);
		chan_close(&c);
	}
	raw_free(&r);
}

static void
eof_mid_message_gives_0_and_no_message(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w = want_msg(3, 100);
	struct imsg m;
	size_t cut[] = { 8, 16, 60 };	/* in the header, after it, body */
	size_t i;
	int n, rv;

	raw_msg(&r, &w);
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		chan_open(&c, 0);
		write_all(c.sv[0], r.p, cut[i]);
		close(c.sv[0]);
		c.sv[0] = -1;
		for (n = 0; n < 10 && (rv = imsgbuf_read(&c.b)) == 1; n++)
			CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		CHECK_INT(rv, ==, 0);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		chan_close(&c);
	}
	raw_free(&r);
}

/* ---- hostile streams ------------------------------------------------- */

static void
len_below_header_size_is_erange(void)
{
	static const uint32_t lens[] = { 0, 1, 8, 15, MARK | 0, MARK | 15 };
	struct chan c;
	struct imsg m;
	unsigned char hdr[16];
	size_t i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		chan_open(&c, 0);
		set_nonblock(c.sv[1]);
		put_hdr(hdr, 1, lens[i], 0, 0);
		write_all(c.sv[0], hdr, sizeof(hdr));
		CHECK_INT(wait_readable(c.sv[1], 5000), ==, 1);
		errno = 0;
		if (imsgbuf_read(&c.b) != -1 || errno != ERANGE)
			h_fail(__FILE__, __LINE__,
			    "len 0x%x: no ERANGE from imsgbuf_read", lens[i]);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		chan_close(&c);
	}
}

static void
len_above_maxsize_is_erange(void)
{
	static const uint32_t lens[] = { 16385, 65536, 0x7fffffff,
	    MARK | 16385, 0xffffffff };
	struct chan c;
	struct imsg m;
	struct raw r = { NULL, 0, 0 };
	struct want w = want_msg(9, 16384 - 16);
	size_t i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		chan_open(&c, 0);
		set_nonblock(c.sv[1]);
		r.len = 0;
		raw_msg_len(&r, &w, lens[i]);
		write_all(c.sv[0], r.p, 16);
		CHECK_INT(wait_readable(c.sv[1], 5000), ==, 1);
		errno = 0;
		if (imsgbuf_read(&c.b) != -1 || errno != ERANGE)
			h_fail(__FILE__, __LINE__,
			    "len 0x%x: no ERANGE from imsgbuf_read", lens[i]);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		chan_close(&c);
	}

	/* Exactly maxsize is fine, as is the mark on top of it. */
	chan_open(&c, 0);
	r.len = 0;
	raw_msg_len(&r, &w, 16384);
	raw_msg_len(&r, &w, MARK | 16384);
	write_all(c.sv[0], r.p, r.len);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_MSG(&m, &w);
	msg_free(&m);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_MSG(&m, &w);
	CHECK_INT(imsg_get_fd(&m), ==, -1);
	msg_free(&m);
	chan_close(&c);
	raw_free(&r);
}

/*
 * The limit applies to a header when it arrives.  A message whose header
 * came before imsgbuf_set_maxsize lowered the limit is delivered whole,
 * even though the rest of it comes after; the next header over the new
 * limit fails.  Once for a small message (which the reader may leave
 * unparsed until it is whole) and once for a 20000-byte one.
 */
static void
limit_lowered_after_a_header_spares_its_message(void)
{
	static const size_t sizes[] = { 100, 20000 };
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w[2];
	struct imsg m;
	size_t i, cut;

	for (i = 0; i < 2; i++) {
		chan_open(&c, 0);
		CHECK_INT(imsgbuf_set_maxsize(&c.b, 30000), ==, 0);
		set_nonblock(c.sv[1]);
		w[0] = want_msg(1, sizes[i]);
		w[1] = want_msg(2, sizes[i]);
		r.len = 0;
		raw_msg(&r, &w[0]);
		raw_msg(&r, &w[1]);
		cut = 16 + sizes[i] / 2;
		write_all(c.sv[0], r.p, cut);
		CHECK_INT(wait_readable(c.sv[1], 5000), ==, 1);
		CHECK_INT(imsgbuf_read(&c.b), ==, 1);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		CHECK_INT(imsgbuf_set_maxsize(&c.b, 50), ==, 0);
		write_all(c.sv[0], r.p + cut, r.len - cut);
		CHECK_INT(wait_readable(c.sv[1], 5000), ==, 1);
		CHECK_FAIL(imsgbuf_read(&c.b), -1, ERANGE);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 1);
		CHECK_MSG(&m, &w[0]);
		msg_free(&m);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		chan_close(&c);
	}
	raw_free(&r);
}

static void
messages_before_bad_header_are_delivered_once_and_error_sticks(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w[4];
	struct imsg m;
	int i;

	chan_open(&c, 0);
	for (i = 0; i < 4; i++)
		w[i] = want_msg((uint32_t)i, (size_t)i * 10);
	raw_msg(&r, &w[0]);
	raw_msg(&r, &w[1]);
	raw_msg_len(&r, &w[2], 8);		/* bad */
	raw_msg(&r, &w[3]);
	write_all(c.sv[0], r.p, r.len);
	/* Non-blocking: a read that is not sticky must not hang here. */
	set_nonblock(c.sv[1]);
	CHECK_INT(wait_readable(c.sv[1], 5000), ==, 1);
	CHECK_FAIL(imsgbuf_read(&c.b), -1, ERANGE);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 1);
	CHECK_MSG(&m, &w[0]);
	msg_free(&m);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 1);
	CHECK_MSG(&m, &w[1]);
	msg_free(&m);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);

	/* Sticky: the same error again, and nothing delivered twice. */
	CHECK_FAIL(imsgbuf_read(&c.b), -1, ERANGE);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	r.len = 0;
	raw_msg(&r, &w[3]);
	write_all(c.sv[0], r.p, r.len);
	CHECK_FAIL(imsgbuf_read(&c.b), -1, ERANGE);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	close(c.sv[0]);
	c.sv[0] = -1;
	CHECK_FAIL(imsgbuf_read(&c.b), -1, ERANGE);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	raw_free(&r);
	chan_close(&c);
}

static void
bad_header_in_a_later_read_fails_and_sticks(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w = want_msg(1, 20);
	struct imsg m;
	int fdpass;

	for (fdpass = 0; fdpass < 2; fdpass++) {
		chan_open(&c, fdpass);
		set_nonblock(c.sv[1]);
		r.len = 0;
		raw_msg(&r, &w);
		write_all(c.sv[0], r.p, r.len);
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_MSG(&m, &w);
		msg_free(&m);
		/* Half a good message, then a header claiming 4 GB. */
		r.len = 0;
		raw_msg(&r, &w);
		write_all(c.sv[0], r.p, 16);
		CHECK_INT(wait_readable(c.sv[1], 5000), ==, 1);
		CHECK_INT(imsgbuf_read(&c.b), ==, 1);
		r.len = 0;
		raw_msg_len(&r, &w, 0xffffffff);
		write_all(c.sv[0], r.p + 16, 20);	/* rest of body */
		write_all(c.sv[0], r.p, 16);		/* bad header */
		CHECK_INT(wait_readable(c.sv[1], 5000), ==, 1);
		/* The read fails, but the message it completed is there. */
		CHECK_FAIL(imsgbuf_read(&c.b), -1, ERANGE);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 1);
		if (!h_case_failed) {
			CHECK_MSG(&m, &w);
			msg_free(&m);
		}
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		CHECK_FAIL(imsgbuf_read(&c.b), -1, ERANGE);
		CHECK_FAIL(imsgbuf_read(&c.b), -1, ERANGE);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
		chan_close(&c);
	}
	raw_free(&r);
}

static void
fd_on_unmarked_message_is_closed(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w = want_msg(1, 4);
	struct imsg m;
	int fds0, fd;

	chan_open(&c, 1);
	raw_msg(&r, &w);			/* no mark */
	fds0 = h_count_fds();
	fd = devnull();
	send_with_fds(c.sv[0], r.p, r.len, &fd, 1);
	close(fd);
	CHECK_INT(wait_readable(c.sv[1], 5000), ==, 1);
	CHECK_INT(imsgbuf_read(&c.b), ==, 1);
	/* Nobody took it, so it is closed before the read returns. */
	CHECK_INT(h_count_fds(), ==, fds0);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 1);
	CHECK_MSG(&m, &w);
	CHECK_INT(imsg_get_fd(&m), ==, -1);
	msg_free(&m);
	CHECK_INT(h_count_fds(), ==, fds0);
	raw_free(&r);
	chan_close(&c);
}

static void
mark_without_fd_gives_message_without_fd(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w = want_msg(1, 4);
	struct imsg m;
	int fdpass;

	raw_msg_len(&r, &w, MARK | 20);
	for (fdpass = 0; fdpass < 2; fdpass++) {
		chan_open(&c, fdpass);
		write_all(c.sv[0], r.p, r.len);
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_MSG(&m, &w);		/* hdr.len 20: mark cleared */
		CHECK_INT(imsg_get_fd(&m), ==, -1);
		msg_free(&m);
		chan_close(&c);
	}
	raw_free(&r);
}

static void
mark_without_fd_does_not_take_next_message_fd(void)
{
	struct chan c;
	struct raw a = { NULL, 0, 0 }, b = { NULL, 0, 0 };
	struct want wa = want_msg(1, 2), wb = want_msg(2, 3);
	struct imsg m;
	int fds0, fd, rfd;

	/*
	 * A is marked but comes with no fd; B brings one.  The kernel hands
	 * both over in one read, with B's fd.  The fd was sent with B, so
	 * A must not get it (Decision 5); B gets it or it is closed.
	 */
	chan_open(&c, 1);
	raw_msg_len(&a, &wa, MARK | 18);
	raw_msg_len(&b, &wb, MARK | 19);
	fds0 = h_count_fds();
	fd = devnull();
	write_all(c.sv[0], a.p, a.len);
	send_with_fds(c.sv[0], b.p, b.len, &fd, 1);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_MSG(&m, &wa);
	rfd = imsg_get_fd(&m);
	CHECK_INT(rfd, ==, -1);
	if (rfd >= 0)
		close(rfd);
	msg_free(&m);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_MSG(&m, &wb);
	rfd = imsg_get_fd(&m);
	if (rfd >= 0) {
		CHECK(same_file(rfd, fd));
		close(rfd);
	}
	msg_free(&m);
	close(fd);
	CHECK_INT(h_count_fds(), ==, fds0);
	raw_free(&a);
	raw_free(&b);
	chan_close(&c);
}

static void
extra_fds_in_one_read_are_closed(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w = want_msg(1, 6);
	struct imsg m;
	int fds0, fd[3], rfd, nfds;

	chan_open(&c, 1);
	raw_msg_len(&r, &w, MARK | 22);
	for (nfds = 2; nfds <= 3; nfds++) {
		fds0 = h_count_fds();
		fd[0] = open("/dev/null", O_RDONLY);
		fd[1] = open("/dev/zero", O_RDONLY);
		fd[2] = open("/dev/zero", O_RDONLY);
		if (fd[0] == -1 || fd[1] == -1 || fd[2] == -1)
			die("open");
		send_with_fds(c.sv[0], r.p, r.len, fd, nfds);
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_MSG(&m, &w);
		/* Only the message's own fd is still open here. */
		CHECK_INT(h_count_fds(), ==, fds0 + 3 + 1);
		rfd = imsg_get_fd(&m);
		CHECK_INT(rfd, >=, 0);
		if (rfd >= 0) {
			CHECK(same_file(rfd, fd[0]));
			close(rfd);
		}
		msg_free(&m);
		close(fd[0]);
		close(fd[1]);
		close(fd[2]);
		CHECK_INT(h_count_fds(), ==, fds0);
	}
	raw_free(&r);
	chan_close(&c);
}

static void
fd_of_a_header_cut_by_eof_is_closed(void)
{
	struct chan c;
	struct raw r = { NULL, 0, 0 };
	struct want w[4], wb = want_msg(9, 4);
	struct imsg m;
	unsigned char hdr[16];
	int i, fds0, fd, got = 0;

	/*
	 * 65530 bytes of messages, then the first 6 bytes of a marked
	 * header sent with an fd, then EOF: the fd may be kept for the
	 * header's rest, which never comes; clear must close it.
	 */
	chan_open(&c, 1);
	for (i = 0; i < 4; i++) {
		w[i] = want_msg((uint32_t)i, i < 3 ? 16368 : 16362);
		raw_msg(&r, &w[i]);
	}
	put_hdr(hdr, wb.type, MARK | 20, wb.peerid, wb.pid);
	fds0 = h_count_fds();
	write_all(c.sv[0], r.p, r.len);
	fd = devnull();
	send_with_fds(c.sv[0], hdr, 6, &fd, 1);
	close(fd);
	close(c.sv[0]);
	c.sv[0] = -1;
	while (got < 4 && next_msg(&c.b, &m) == 1) {
		CHECK_MSG(&m, &w[got]);
		msg_free(&m);
		got++;
	}
	CHECK_INT(got, ==, 4);
	CHECK_INT(next_msg(&c.b, &m), ==, 0);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	imsgbuf_clear(&c.b);
	CHECK_INT(h_count_fds(), ==, fds0 - 1);	/* sv[0] is closed */
	raw_free(&r);
	chan_close(&c);
}

/* ---- msgbuf with a header callback of our own ------------------------ */

/*
 * A length-prefixed protocol: a 4-byte big-endian header, whose low 31
 * bits are the payload length and whose bit 31 asks for the fd.
 */
#define LP_CLAIM	0x80000000U

struct lp_ctx {
	int	calls;
	int	bad_hdrsize;
	size_t	limit;
};

static struct ibuf *
lp_readhdr(struct ibuf *hdr, void *arg, int *fd)
{
	struct lp_ctx *ctx = arg;
	struct ibuf *b;
	uint32_t v;
	size_t len;

	ctx->calls++;
	if (ibuf_size(hdr) != 4)
		ctx->bad_hdrsize++;
	if (ibuf_get_n32(hdr, &v) == -1)
		return NULL;
	len = v & ~LP_CLAIM;
	if (len > ctx->limit) {
		errno = ERANGE;
		return NULL;
	}
	if ((b = ibuf_open(4 + len)) == NULL)
		return NULL;
	if ((v & LP_CLAIM) && *fd != -1) {
		ibuf_fd_set(b, *fd);
		*fd = -1;
	}
	return b;
}

static void
lp_queue(struct msgbuf *w, uint32_t flags, size_t len, unsigned int seed,
    int fd)
{
	static unsigned char data[65536];
	struct ibuf *b;

	if ((b = ibuf_dynamic(4, 4 + len)) == NULL)
		die("ibuf_dynamic");
	fill(data, len, seed);
	if (ibuf_add_n32(b, flags | (uint32_t)len) == -1 ||
	    ibuf_add(b, data, len) == -1)
		die("ibuf_add");
	if (fd != -1)
		ibuf_fd_set(b, fd);
	ibuf_close(w, b);
}

/* Write w out with ibuf_write or msgbuf_write; 0 once empty. */
static int
lp_flush(int sock, struct msgbuf *w, int fdpass)
{
	int i;

	for (i = 0; i < 10000 && msgbuf_queuelen(w) > 0; i++)
		if ((fdpass ? msgbuf_write(sock, w) :
		    ibuf_write(sock, w)) == -1)
			return -1;
	return msgbuf_queuelen(w) == 0 ? 0 : -1;
}

/* Check an ibuf from msgbuf_get: whole message, header first. */
static void
lp_check_at(struct ibuf *b, size_t len, unsigned int seed, int line)
{
	static unsigned char data[65536];
	uint32_t v = 0;

	if (b == NULL) {
		h_fail(__FILE__, line, "no message");
		return;
	}
	if (b->rpos != 0 || ibuf_size(b) != 4 + len)
		h_fail(__FILE__, line, "rpos %zu size %zu, want 0 and %zu",
		    b->rpos, ibuf_size(b), 4 + len);
	if (ibuf_get_n32(b, &v) == -1 || (v & ~LP_CLAIM) != len)
		h_fail(__FILE__, line, "length field %u, want %zu",
		    v & ~LP_CLAIM, len);
	fill(data, len, seed);
	if (ibuf_size(b) != len || memcmp(ibuf_data(b), data, len) != 0)
		h_fail(__FILE__, line, "payload differs");
}
#define LP_CHECK(b, len, seed)	lp_check_at((b), (len), (seed), __LINE__)

static void
msgbuf_new_reader_rejects_bad_header_size(void)
{
	struct lp_ctx ctx = { 0, 0, 100 };
	struct msgbuf *m;

	CHECK_NULL_ERRNO(msgbuf_new_reader(0, lp_readhdr, &ctx), EINVAL);
	CHECK_NULL_ERRNO(msgbuf_new_reader(IBUF_READ_SIZE / 2 + 1,
	    lp_readhdr, &ctx), EINVAL);
	m = msgbuf_new_reader(IBUF_READ_SIZE / 2, lp_readhdr, &ctx);
	CHECK_PTR(m, !=, NULL);
	msgbuf_free(m);
	m = msgbuf_new_reader(1, lp_readhdr, &ctx);
	CHECK_PTR(m, !=, NULL);
	msgbuf_free(m);
	msgbuf_free(NULL);
}

static void
length_prefixed_protocol_over_msgbuf_reader(void)
{
	static const size_t lens[] = { 0, 1, 5, 100, 40000, 3 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	struct lp_ctx ctx = { 0, 0, 50000 };
	struct msgbuf *w, *rd;
	struct ibuf *b;
	int sv[2], i, got, spins, fdpass;

	for (fdpass = 0; fdpass < 2; fdpass++) {
		pair(sv);
		ctx.calls = ctx.bad_hdrsize = 0;
		w = msgbuf_new();
		rd = msgbuf_new_reader(4, lp_readhdr, &ctx);
		if (w == NULL || rd == NULL)
			die("msgbuf_new");
		for (i = 0; i < N; i++)
			lp_queue(w, 0, lens[i], (unsigned int)i, -1);
		CHECK_UINT(msgbuf_queuelen(w), ==, N);
		CHECK_INT(lp_flush(sv[0], w, fdpass), ==, 0);
		CHECK_PTR(msgbuf_get(rd), ==, NULL);
		for (got = 0, spins = 0; got < N && spins < 100 &&
		    !h_case_failed; spins++) {
			if (wait_readable(sv[1], 5000) <= 0)
				break;
			CHECK_INT(fdpass ? msgbuf_read(sv[1], rd) :
			    ibuf_read(sv[1], rd), ==, 1);
			while ((b = msgbuf_get(rd)) != NULL) {
				LP_CHECK(b, lens[got], (unsigned int)got);
				ibuf_free(b);
				got++;
			}
		}
		CHECK_INT(got, ==, N);
		CHECK_INT(ctx.calls, ==, N);
		CHECK_INT(ctx.bad_hdrsize, ==, 0);
		CHECK_PTR(msgbuf_get(rd), ==, NULL);
		/* EOF is 0 at this level too. */
		close(sv[0]);
		CHECK_INT(fdpass ? msgbuf_read(sv[1], rd) :
		    ibuf_read(sv[1], rd), ==, 0);
		msgbuf_free(w);
		msgbuf_free(rd);
		close(sv[1]);
	}
}

/* Read from sock into rd until n messages are in b[]; returns how many. */
static int
lp_collect(int sock, struct msgbuf *rd, struct ibuf **b, int n)
{
	int got = 0, spins;

	for (spins = 0; got < n && spins < 100; spins++) {
		if (wait_readable(sock, 5000) <= 0)
			break;
		CHECK_INT(msgbuf_read(sock, rd), ==, 1);
		while (got < n && (b[got] = msgbuf_get(rd)) != NULL)
			got++;
	}
	return got;
}

static void
reader_callback_claims_fd_via_msgbuf_read(void)
{
	struct lp_ctx ctx = { 0, 0, 1000 };
	struct msgbuf *w, *rd;
	struct ibuf *b[3];
	char buf[8];
	int sv[2], p[2], nul, fds0, got, rfd;

	pair(sv);
	if (pipe(p) == -1)
		die("pipe");
	w = msgbuf_new();
	rd = msgbuf_new_reader(4, lp_readhdr, &ctx);
	if (w == NULL || rd == NULL)
		die("msgbuf_new");
	fds0 = h_count_fds();
	nul = devnull();
	/*
	 * msgbuf_write sends [A] with p[1], then [B C] with nul: the
	 * callback claims A's fd, leaves B's, and C asks for none.
	 */
	lp_queue(w, LP_CLAIM, 10, 1, p[1]);
	lp_queue(w, 0, 11, 2, nul);
	lp_queue(w, 0, 12, 3, -1);
	CHECK_INT(lp_flush(sv[0], w, 1), ==, 0);
	/* msgbuf_write closed both once they went out. */
	CHECK(!h_fd_is_open(p[1]));
	CHECK(!h_fd_is_open(nul));
	CHECK_INT(h_count_fds(), ==, fds0 - 1);	/* p[1] was ours before */

	got = lp_collect(sv[1], rd, b, 3);
	CHECK_INT(got, ==, 3);
	if (got == 3) {
		/* Only the claimed fd is held; B's unclaimed one is closed. */
		CHECK_INT(h_count_fds(), ==, fds0);
		LP_CHECK(b[0], 10, 1);
		LP_CHECK(b[1], 11, 2);
		LP_CHECK(b[2], 12, 3);
		CHECK(ibuf_fd_avail(b[0]));
		CHECK(!ibuf_fd_avail(b[1]));
		CHECK(!ibuf_fd_avail(b[2]));
		rfd = ibuf_fd_get(b[0]);
		CHECK_INT(ibuf_fd_get(b[0]), ==, -1);
		/* It is the pipe's write end. */
		if (rfd >= 0) {
			CHECK_INT(write(rfd, "ping", 4), ==, 4);
			CHECK_INT(read(p[0], buf, 4), ==, 4);
			CHECK_MEM(buf, "ping", 4);
			close(rfd);
		}
	}
	while (got > 0)
		ibuf_free(b[--got]);

	/* A message that asks for an fd when none came gets -1. */
	lp_queue(w, LP_CLAIM, 5, 4, -1);
	CHECK_INT(lp_flush(sv[0], w, 1), ==, 0);
	got = lp_collect(sv[1], rd, b, 1);
	CHECK_INT(got, ==, 1);
	if (got == 1) {
		LP_CHECK(b[0], 5, 4);
		CHECK(!ibuf_fd_avail(b[0]));
		ibuf_free(b[0]);
	}
	CHECK_INT(ctx.calls, ==, 4);
	msgbuf_free(w);
	msgbuf_free(rd);
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}

static void
reader_callback_error_fails_the_read(void)
{
	struct lp_ctx ctx = { 0, 0, 100 };
	struct msgbuf *w, *rd;
	struct ibuf *b;
	int sv[2], fds0, nul, fdpass;

	for (fdpass = 0; fdpass < 2; fdpass++) {
		pair(sv);
		w = msgbuf_new();
		rd = msgbuf_new_reader(4, lp_readhdr, &ctx);
		if (w == NULL || rd == NULL)
			die("msgbuf_new");
		fds0 = h_count_fds();
		lp_queue(w, 0, 50, 1, -1);
		nul = fdpass ? devnull() : -1;
		lp_queue(w, LP_CLAIM, 101, 2, nul);	/* over the limit */
		CHECK_INT(lp_flush(sv[0], w, fdpass), ==, 0);
		CHECK_INT(wait_readable(sv[1], 5000), ==, 1);
		/* Let both arrive, so one read sees the good and the bad. */
		usleep(10000);
		if (fdpass)
			CHECK_FAIL(msgbuf_read(sv[1], rd), -1, ERANGE);
		else
			CHECK_FAIL(ibuf_read(sv[1], rd), -1, ERANGE);
		/* The fd that came with the bad header is closed. */
		CHECK_INT(h_count_fds(), ==, fds0);
		b = msgbuf_get(rd);
		LP_CHECK(b, 50, 1);
		ibuf_free(b);
		CHECK_PTR(msgbuf_get(rd), ==, NULL);
		msgbuf_free(w);
		msgbuf_free(rd);
		close(sv[0]);
		close(sv[1]);
	}
}

/* Rejects every header without setting errno. */
static struct ibuf *
silent_reject(struct ibuf *hdr, void *arg, int *fd)
{
	(void)hdr;
	(void)arg;
	(void)fd;
	errno = 0;
	return NULL;
}

/*
 * A custom callback that fails without setting errno still makes the
 * error sticky: EBADMSG, now and on every later read, and what followed
 * in the stream is never parsed.
 */
static void
reader_callback_failing_without_errno_is_sticky_ebadmsg(void)
{
	unsigned char rec[16] = { 8 };
	struct msgbuf *rd;
	int sv[2];

	pair(sv);
	if ((rd = msgbuf_new_reader(2, silent_reject, NULL)) == NULL)
		die("msgbuf_new_reader");
	CHECK_INT(write(sv[0], rec, sizeof(rec)), ==, (int)sizeof(rec));
	CHECK_FAIL(ibuf_read(sv[1], rd), -1, EBADMSG);
	CHECK_INT(write(sv[0], rec, sizeof(rec)), ==, (int)sizeof(rec));
	CHECK_FAIL(ibuf_read(sv[1], rd), -1, EBADMSG);
	CHECK_PTR(msgbuf_get(rd), ==, NULL);
	msgbuf_free(rd);
	close(sv[0]);
	close(sv[1]);
}

static void
ibuf_read_without_read_buffer_is_einval(void)
{
	struct msgbuf *m;
	char c;
	int sv[2];

	pair(sv);
	if ((m = msgbuf_new()) == NULL)
		die("msgbuf_new");
	write_all(sv[0], "x", 1);
	CHECK_FAIL(ibuf_read(sv[1], m), -1, EINVAL);
	CHECK_FAIL(msgbuf_read(sv[1], m), -1, EINVAL);
	CHECK_PTR(msgbuf_get(m), ==, NULL);
	/* The byte is still in the socket: nothing was read. */
	CHECK_INT(recv(sv[1], &c, 1, MSG_DONTWAIT), ==, 1);
	msgbuf_free(m);
	close(sv[0]);
	close(sv[1]);
}

/* ---- the write side: EPIPE and empty buffers -------------------------- */

static void
write_to_closed_peer_is_epipe_without_sigpipe(void)
{
	pid_t pid;

	/*
	 * SIGPIPE at its default action: if the library let the kernel
	 * raise it, the child dies of it and WAIT_CHILD says so.
	 */
	if ((pid = fork_child()) == 0) {
		struct imsgbuf ib;
		struct msgbuf *w;
		struct ibuf *b;
		int sv[2], fdpass;

		signal(SIGPIPE, SIG_DFL);
		for (fdpass = 0; fdpass < 2; fdpass++) {
			pair(sv);
			close(sv[1]);
			CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
			if (fdpass)
				imsgbuf_allow_fdpass(&ib);
			CHECK_INT(imsg_compose(&ib, 1, 0, 0, -1, "a", 1), ==,
			    1);
			CHECK_FAIL(imsgbuf_write(&ib), -1, EPIPE);
			CHECK_FAIL(imsgbuf_flush(&ib), -1, EPIPE);
			if (fdpass) {
				CHECK_INT(imsg_compose(&ib, 1, 0, 0, devnull(),
				    "b", 1), ==, 1);
				CHECK_FAIL(imsgbuf_flush(&ib), -1, EPIPE);
			}
			imsgbuf_clear(&ib);

			if ((w = msgbuf_new()) == NULL ||
			    (b = ibuf_open(3)) == NULL)
				die("msgbuf_new");
			CHECK_INT(ibuf_add(b, "abc", 3), ==, 0);
			ibuf_close(w, b);
			if (fdpass)
				CHECK_FAIL(msgbuf_write(sv[0], w), -1, EPIPE);
			else
				CHECK_FAIL(ibuf_write(sv[0], w), -1, EPIPE);
			msgbuf_free(w);
			close(sv[0]);
		}
		child_exit();
	}
	WAIT_CHILD(pid);
}

static void
zero_length_ibufs_do_not_stall_the_queue(void)
{
	pid_t pid;

	/* In a child: a write loop that spins is ended by its alarm. */
	if ((pid = fork_child()) == 0) {
		struct chan c;
		struct msgbuf *w;
		struct ibuf *b;
		struct imsg m;
		unsigned char got[8];
		int fdpass, i, sv[2];

		for (fdpass = 0; fdpass < 2; fdpass++) {
			pair(sv);
			if ((w = msgbuf_new()) == NULL)
				die("msgbuf_new");
			ibuf_close(w, ibuf_open(0));		/* no memory */
			if ((b = ibuf_dynamic(16, 64)) == NULL)
				die("ibuf_dynamic");
			CHECK_INT(ibuf_add(b, "abc", 3), ==, 0);
			ibuf_close(w, b);
			ibuf_close(w, ibuf_dynamic(8, 8));	/* unwritten */
			if ((b = ibuf_open(4)) == NULL)
				die("ibuf_open");
			CHECK_INT(ibuf_add(b, "wxyz", 4), ==, 0);
			CHECK_INT(ibuf_skip(b, 4), ==, 0);	/* all read */
			ibuf_close(w, b);
			ibuf_close(w, ibuf_open(0));
			CHECK_UINT(msgbuf_queuelen(w), ==, 5);
			for (i = 0; i < 100 && msgbuf_queuelen(w) > 0; i++)
				CHECK_INT(fdpass ? msgbuf_write(sv[0], w) :
				    ibuf_write(sv[0], w), ==, 0);
			CHECK_UINT(msgbuf_queuelen(w), ==, 0);
			/* Only "abc" went out. */
			CHECK_INT(recv(sv[1], got, sizeof(got), MSG_DONTWAIT),
			    ==, 3);
			CHECK_MEM(got, "abc", 3);

			/* A queue of nothing but an empty ibuf. */
			ibuf_close(w, ibuf_open(0));
			for (i = 0; i < 100 && msgbuf_queuelen(w) > 0; i++)
				CHECK_INT(fdpass ? msgbuf_write(sv[0], w) :
				    ibuf_write(sv[0], w), ==, 0);
			CHECK_UINT(msgbuf_queuelen(w), ==, 0);
			msgbuf_free(w);
			close(sv[0]);
			close(sv[1]);

			/* imsg_compose_ibuf with an empty payload. */
			chan_open(&c, fdpass);
			CHECK_INT(imsg_compose_ibuf(&c.a, 5, 6, 7,
			    ibuf_open(0)), ==, 1);
			CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 2);
			CHECK_INT(imsgbuf_flush(&c.a), ==, 0);
			CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
			CHECK_INT(next_msg(&c.b, &m), ==, 1);
			CHECK_UINT(imsg_get_type(&m), ==, 5);
			CHECK_UINT(m.hdr.len, ==, 16);
			CHECK_PTR(m.data, ==, NULL);
			msg_free(&m);
			chan_close(&c);
		}
		child_exit();
	}
	WAIT_CHILD(pid);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, watchdog);
	alarm(60);

	RUN(byte_at_a_time_delivers_each_message_when_complete);
	RUN(every_split_point_gives_the_same_messages);
	RUN(header_cut_in_two_waits_for_the_rest);
	RUN(one_mib_message_arrives_over_many_reads);
	RUN(hundreds_of_messages_in_one_write);
	RUN(partial_writes_with_tiny_sndbuf_keep_every_message);
	RUN(queuelen_after_a_write_ending_on_a_message_end_is_exact);
	RUN(queuelen_after_a_write_ending_inside_a_message_is_exact);
	RUN(imsgbuf_write_returns_0_on_eagain);
	RUN(imsgbuf_read_returns_1_on_eagain);
	RUN(eof_returns_0_after_delivering_what_came_before);
	RUN(eof_mid_message_gives_0_and_no_message);
	RUN(len_below_header_size_is_erange);
	RUN(len_above_maxsize_is_erange);
	RUN(limit_lowered_after_a_header_spares_its_message);
	RUN(messages_before_bad_header_are_delivered_once_and_error_sticks);
	RUN(bad_header_in_a_later_read_fails_and_sticks);
	RUN(fd_on_unmarked_message_is_closed);
	RUN(mark_without_fd_gives_message_without_fd);
	RUN(mark_without_fd_does_not_take_next_message_fd);
	RUN(extra_fds_in_one_read_are_closed);
	RUN(fd_of_a_header_cut_by_eof_is_closed);
	RUN(msgbuf_new_reader_rejects_bad_header_size);
	RUN(length_prefixed_protocol_over_msgbuf_reader);
	RUN(reader_callback_claims_fd_via_msgbuf_read);
	RUN(reader_callback_error_fails_the_read);
	RUN(reader_callback_failing_without_errno_is_sticky_ebadmsg);
	RUN(ibuf_read_without_read_buffer_is_einval);
	RUN(write_to_closed_peer_is_epipe_without_sigpipe);
	RUN(zero_length_ibufs_do_not_stall_the_queue);
	return h_done();
}
