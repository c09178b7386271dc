/*
 * The imsg layer over real sockets: imsgbuf set-up and limits, composing
 * (create/add/close, compose, composev, compose_ibuf, forward), fetching
 * (imsg_get, imsgbuf_get, the accessors and payload getters), the ibufq
 * hand-off, queue length, flush, clear, and the exact bytes on the wire.
 *
 * Every case uses socketpair(AF_UNIX, SOCK_STREAM); some run a peer in a
 * fork()ed child, which reports failures through its exit status.
 */
#include <sys/types.h>
#include <sys/socket.h>
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
	close(c->sv[0]);
	close(c->sv[1]);
}

/* Like next_msg, through imsg_get (returns its value, or 0/-1). */
static ssize_t
next_imsg_get(struct imsgbuf *ib, struct imsg *imsg)
{
	ssize_t n;
	int r;

	for (;;) {
		if ((n = imsg_get(ib, imsg)) > 0)
			return n;
		if (n == -1)
			break;
		if ((r = wait_readable(ib->fd, 5000)) <= 0) {
			if (r == 0)
				errno = ETIMEDOUT;
			n = -1;
			break;
		}
		if ((r = imsgbuf_read(ib)) != 1) {
			n = r;
			break;
		}
	}
	fake_msg(imsg);
	return n;
}

/* ---- imsgbuf set-up and limits --------------------------------------- */

static void
imsgbuf_init_sets_pid_maxsize_fd_and_flags(void)
{
	struct imsgbuf ib;
	int sv[2];

	pair(sv);
	memset(&ib, 0xa5, sizeof(ib));
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	CHECK_PTR(ib.w, !=, NULL);
	CHECK_INT(ib.pid, ==, getpid());
	CHECK_UINT(ib.maxsize, ==, 16384);
	CHECK_UINT(ib.maxsize, ==, MAX_IMSGSIZE);
	CHECK_INT(ib.fd, ==, sv[0]);
	CHECK_INT(ib.flags, ==, 0);
	CHECK_UINT(imsgbuf_queuelen(&ib), ==, 0);
	CHECK_UINT(IMSG_HEADER_SIZE, ==, 16);
	imsgbuf_clear(&ib);
	CHECK_PTR(ib.w, ==, NULL);
	/* The library never closes the socket. */
	CHECK(h_fd_is_open(sv[0]));
	close(sv[0]);
	close(sv[1]);
}

static void
imsgbuf_allow_fdpass_sets_flag(void)
{
	struct imsgbuf ib;
	int sv[2];

	pair(sv);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	CHECK_INT(ib.flags & 0x01, ==, 0);
	imsgbuf_allow_fdpass(&ib);
	CHECK_INT(ib.flags & 0x01, ==, 0x01);
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
}

static void
imsgbuf_set_maxsize_takes_payload_limit(void)
{
	struct imsgbuf ib;
	int sv[2];

	pair(sv);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	CHECK_INT(imsgbuf_set_maxsize(&ib, 100), ==, 0);
	CHECK_UINT(ib.maxsize, ==, 116);
	CHECK_INT(imsgbuf_set_maxsize(&ib, 0), ==, 0);
	CHECK_UINT(ib.maxsize, ==, 16);
	CHECK_INT(imsgbuf_set_maxsize(&ib, 16368), ==, 0);
	CHECK_UINT(ib.maxsize, ==, 16384);
	/* The largest total that leaves bit 31 clear. */
	CHECK_INT(imsgbuf_set_maxsize(&ib, 0x7fffffffU - 16), ==, 0);
	CHECK_UINT(ib.maxsize, ==, 0x7fffffffU);
	CHECK_INT(imsgbuf_set_maxsize(&ib, 1000), ==, 0);
	/* max + 16 would have bit 31 set. */
	CHECK_FAIL(imsgbuf_set_maxsize(&ib, 0x7fffffffU - 15), -1, EINVAL);
	CHECK_FAIL(imsgbuf_set_maxsize(&ib, 0x80000000U), -1, EINVAL);
	CHECK_FAIL(imsgbuf_set_maxsize(&ib, UINT32_MAX - 16), -1, EINVAL);
	/* max + 16 does not fit in 32 bits. */
	CHECK_FAIL(imsgbuf_set_maxsize(&ib, UINT32_MAX - 15), -1, ERANGE);
	CHECK_FAIL(imsgbuf_set_maxsize(&ib, UINT32_MAX), -1, ERANGE);
	/* Failures leave the limit alone. */
	CHECK_UINT(ib.maxsize, ==, 1016);
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
}

static void
compose_beyond_default_maxsize_fails_erange(void)
{
	struct chan c;
	static unsigned char big[16400];
	struct imsg m;

	chan_open(&c, 0);
	fill(big, sizeof(big), 1);
	/* Default: 16384 in total, so 16368 bytes of payload. */
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, big, 16368), ==, 1);
	CHECK_FAIL(imsg_compose(&c.a, 2, 0, 0, -1, big, 16369), -1, ERANGE);
	CHECK_NULL_ERRNO(imsg_create(&c.a, 2, 0, 0, 16369), ERANGE);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(m.hdr.len, ==, 16384);
	CHECK_UINT(imsg_get_len(&m), ==, 16368);
	CHECK_DATA(&m, big, 16368);
	msg_free(&m);
	chan_close(&c);
}

static void
set_maxsize_bounds_every_way_of_sending(void)
{
	struct chan c;
	unsigned char data[200];
	struct iovec iov[2];
	struct ibuf *msg, *buf;
	int fd;

	chan_open(&c, 0);
	fill(data, sizeof(data), 2);
	CHECK_INT(imsgbuf_set_maxsize(&c.a, 100), ==, 0);

	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, data, 100), ==, 1);
	CHECK_FAIL(imsg_compose(&c.a, 1, 0, 0, -1, data, 101), -1, ERANGE);

	iov[0].iov_base = data;
	iov[0].iov_len = 60;
	iov[1].iov_base = data + 60;
	iov[1].iov_len = 41;
	CHECK_FAIL(imsg_composev(&c.a, 1, 0, 0, -1, iov, 2), -1, ERANGE);
	iov[1].iov_len = 40;
	CHECK_INT(imsg_composev(&c.a, 1, 0, 0, -1, iov, 2), ==, 1);

	CHECK_NULL_ERRNO(imsg_create(&c.a, 1, 0, 0, 101), ERANGE);

	/* A created message can grow past datalen, up to maxsize. */
	msg = imsg_create(&c.a, 1, 0, 0, 50);
	CHECK_PTR(msg, !=, NULL);
	if (msg != NULL) {
		CHECK_INT(imsg_add(msg, data, 60), ==, 60);
		CHECK_INT(imsg_add(msg, data, 40), ==, 40);
		/*
		 * Going past maxsize frees the message; the attached fd
		 * shows it: freeing the ibuf closes it.
		 */
		fd = devnull();
		ibuf_fd_set(msg, fd);
		CHECK_FAIL(imsg_add(msg, data, 1), -1, ERANGE);
		CHECK(!h_fd_is_open(fd));
	}

	/* imsg_compose_ibuf consumes its buffer on failure too. */
	buf = ibuf_open(101);
	CHECK_PTR(buf, !=, NULL);
	if (buf != NULL) {
		CHECK_INT(ibuf_add(buf, data, 101), ==, 0);
		fd = devnull();
		ibuf_fd_set(buf, fd);
		CHECK_FAIL(imsg_compose_ibuf(&c.a, 1, 0, 0, buf), -1, ERANGE);
		CHECK(!h_fd_is_open(fd));
	}

	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 2);
	chan_close(&c);
}

static void
datalen_plus_header_overflow_fails_erange(void)
{
	pid_t pid;

	/* In a child, so a library that overflows and crashes is reported. */
	if ((pid = fork_child()) == 0) {
		struct imsgbuf ib;
		unsigned char data[32];
		struct iovec iov[2];
		int sv[2];

		pair(sv);
		memset(data, 'x', sizeof(data));
		CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
		CHECK_NULL_ERRNO(imsg_create(&ib, 1, 0, 0, SIZE_MAX), ERANGE);
		CHECK_NULL_ERRNO(imsg_create(&ib, 1, 0, 0, SIZE_MAX - 15),
		    ERANGE);
		CHECK_NULL_ERRNO(imsg_create(&ib, 1, 0, 0, SIZE_MAX - 8),
		    ERANGE);
		CHECK_FAIL(imsg_compose(&ib, 1, 0, 0, -1, data, SIZE_MAX - 15),
		    -1, ERANGE);
		CHECK_FAIL(imsg_compose(&ib, 1, 0, 0, -1, data, SIZE_MAX),
		    -1, ERANGE);
		/* The iov lengths add up without overflow; +16 does not. */
		iov[0].iov_base = data;
		iov[0].iov_len = SIZE_MAX / 2;
		iov[1].iov_base = data;
		iov[1].iov_len = SIZE_MAX / 2 - 4;
		CHECK_FAIL(imsg_composev(&ib, 1, 0, 0, -1, iov, 2), -1, ERANGE);
		CHECK_UINT(imsgbuf_queuelen(&ib), ==, 0);
		imsgbuf_clear(&ib);
		child_exit();
	}
	WAIT_CHILD(pid);
}

static void
receiver_maxsize_bounds_incoming_messages(void)
{
	struct chan c;
	static unsigned char msg[20016];
	struct imsg m;

	/* The receiver's own limit decides: 116 passes, 117 does not. */
	chan_open(&c, 0);
	CHECK_INT(imsgbuf_set_maxsize(&c.b, 100), ==, 0);
	put_hdr(msg, 1, 116, 0, 0);
	fill(msg + 16, 100, 3);
	write_all(c.sv[0], msg, 116);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(imsg_get_len(&m), ==, 100);
	msg_free(&m);
	put_hdr(msg, 2, 117, 0, 0);
	write_all(c.sv[0], msg, 117);
	CHECK_FAIL(next_msg(&c.b, &m), -1, ERANGE);
	chan_close(&c);

	/* Raising it lets a 20000-byte payload through both ways. */
	chan_open(&c, 0);
	CHECK_INT(imsgbuf_set_maxsize(&c.a, 20000), ==, 0);
	CHECK_INT(imsgbuf_set_maxsize(&c.b, 20000), ==, 0);
	fill(msg, 20000, 4);
	CHECK_INT(imsg_compose(&c.a, 3, 0, 0, -1, msg, 20000), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(m.hdr.len, ==, 20016);
	CHECK_UINT(imsg_get_len(&m), ==, 20000);
	CHECK_DATA(&m, msg, 20000);
	msg_free(&m);
	chan_close(&c);

	/* With the default limit the same message is refused. */
	chan_open(&c, 0);
	CHECK_INT(imsgbuf_set_maxsize(&c.a, 20000), ==, 0);
	CHECK_INT(imsg_compose(&c.a, 3, 0, 0, -1, msg, 20000), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_FAIL(next_msg(&c.b, &m), -1, ERANGE);
	chan_close(&c);
}

/* ---- the wire --------------------------------------------------------- */

static void
wire_header_is_host_order_type_len_peerid_pid(void)
{
	struct chan c;
	unsigned char got[19 + 16 + 20], want[19 + 16 + 20];
	int fds[4], nfds;

	chan_open(&c, 0);
	CHECK_INT(imsg_compose(&c.a, 0x01020304, 0xa0b0c0d0, 4321, -1,
	    "abc", 3), ==, 1);
	/* pid 0 means the imsgbuf's pid. */
	CHECK_INT(imsg_compose(&c.a, 9, 8, 0, -1, NULL, 0), ==, 1);
	c.a.pid = 31337;
	CHECK_INT(imsg_compose(&c.a, 0xffffffff, 0, 0, -1, "wxyz", 4), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);

	put_hdr(want, 0x01020304, 19, 0xa0b0c0d0, 4321);
	memcpy(want + 16, "abc", 3);
	put_hdr(want + 19, 9, 16, 8, (uint32_t)getpid());
	put_hdr(want + 35, 0xffffffff, 20, 0, 31337);
	memcpy(want + 51, "wxyz", 4);

	CHECK_INT(recv_exact(c.sv[1], got, sizeof(got), fds, 4, &nfds), ==, 0);
	CHECK_INT(nfds, ==, 0);
	CHECK_MEM(got, want, sizeof(want));
	CHECK_UINT(hdr_at(got).len, ==, 19);
	CHECK_UINT(hdr_at(got + 19).pid, ==, (uint32_t)getpid());
	CHECK_UINT(hdr_at(got + 35).pid, ==, 31337);
	/* Nothing else was sent: no padding, no trailer. */
	CHECK_INT(wait_readable(c.sv[1], 0), ==, 0);
	chan_close(&c);
}

static void
wire_len_has_bit31_only_when_fd_attached(void)
{
	struct chan c;
	unsigned char got[18 + 18 + 16];
	int fds[4], nfds, i;

	chan_open(&c, 1);
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, devnull(), "xy", 2), ==, 1);
	CHECK_INT(imsg_compose(&c.a, 2, 0, 0, -1, "xy", 2), ==, 1);
	CHECK_INT(imsg_compose(&c.a, 3, 0, 0, devnull(), NULL, 0), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(recv_exact(c.sv[1], got, sizeof(got), fds, 4, &nfds), ==, 0);
	CHECK_UINT(hdr_at(got).type, ==, 1);
	CHECK_UINT(hdr_at(got).len, ==, MARK | 18);
	CHECK_UINT(hdr_at(got + 18).type, ==, 2);
	CHECK_UINT(hdr_at(got + 18).len, ==, 18);
	CHECK_UINT(hdr_at(got + 36).type, ==, 3);
	CHECK_UINT(hdr_at(got + 36).len, ==, MARK | 16);
	CHECK_INT(nfds, ==, 2);
	for (i = 0; i < nfds && i < 4; i++)
		close(fds[i]);
	chan_close(&c);
}

static void
imsg_create_writes_zero_len_until_close(void)
{
	struct chan c;
	struct ibuf *msg;
	struct imsg_hdr h;
	unsigned char got[24];
	int fds[4], nfds;

	chan_open(&c, 0);
	msg = imsg_create(&c.a, 5, 6, 7, 8);
	CHECK_PTR(msg, !=, NULL);
	if (msg == NULL) {
		chan_close(&c);
		return;
	}
	CHECK_UINT(ibuf_size(msg), ==, 16);
	h = hdr_at(ibuf_data(msg));
	CHECK_UINT(h.type, ==, 5);
	CHECK_UINT(h.len, ==, 0);
	CHECK_UINT(h.peerid, ==, 6);
	CHECK_UINT(h.pid, ==, 7);
	CHECK_INT(imsg_add(msg, "12345678", 8), ==, 8);
	CHECK_UINT(ibuf_size(msg), ==, 24);
	CHECK_UINT(hdr_at(ibuf_data(msg)).len, ==, 0);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	imsg_close(&c.a, msg);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(recv_exact(c.sv[1], got, sizeof(got), fds, 4, &nfds), ==, 0);
	CHECK_UINT(hdr_at(got).len, ==, 24);
	CHECK_MEM(got + 16, "12345678", 8);
	chan_close(&c);
}

/* ---- composing ------------------------------------------------------- */

static void
create_add_close_delivers_one_message(void)
{
	struct chan c;
	struct ibuf *msg;
	struct imsg m;

	chan_open(&c, 0);
	msg = imsg_create(&c.a, 7, 42, 0, 4);
	CHECK_PTR(msg, !=, NULL);
	if (msg != NULL) {
		CHECK_INT(imsg_add(msg, "hello", 5), ==, 5);
		CHECK_INT(imsg_add(msg, NULL, 0), ==, 0);
		CHECK_INT(imsg_add(msg, " world", 6), ==, 6);
		imsg_close(&c.a, msg);
	}
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 7);
	CHECK_UINT(imsg_get_id(&m), ==, 42);
	CHECK_INT(imsg_get_pid(&m), ==, getpid());
	CHECK_UINT(m.hdr.len, ==, 16 + 11);
	CHECK_UINT(imsg_get_len(&m), ==, 11);
	CHECK_PTR(m.data, !=, NULL);
	CHECK_DATA(&m, "hello world", 11);
	msg_free(&m);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	chan_close(&c);
}

static void
imsg_composev_concatenates_iovecs(void)
{
	struct chan c;
	struct imsg m;
	char p1[] = "ab", p2[] = "", p3[] = "cdef";
	struct iovec iov[3];

	chan_open(&c, 0);
	iov[0].iov_base = p1;
	iov[0].iov_len = 2;
	iov[1].iov_base = p2;
	iov[1].iov_len = 0;
	iov[2].iov_base = p3;
	iov[2].iov_len = 4;
	CHECK_INT(imsg_composev(&c.a, 1, 2, 3, -1, iov, 3), ==, 1);
	CHECK_INT(imsg_composev(&c.a, 4, 0, 0, -1, NULL, 0), ==, 1);
	/* A negative iovcnt means no payload at all. */
	CHECK_INT(imsg_composev(&c.a, 5, 0, 0, -1, NULL, -1), ==, 1);
	CHECK_INT(imsg_composev(&c.a, 6, 0, 0, -1, iov, -3), ==, 1);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 4);
	CHECK_INT(drain(&c.a), ==, 0);

	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 1);
	CHECK_UINT(imsg_get_id(&m), ==, 2);
	CHECK_INT(imsg_get_pid(&m), ==, 3);
	CHECK_UINT(imsg_get_len(&m), ==, 6);
	CHECK_UINT(m.hdr.len, ==, 22);
	CHECK_DATA(&m, "abcdef", 6);
	msg_free(&m);
	for (uint32_t t = 4; t <= 6; t++) {
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_UINT(imsg_get_type(&m), ==, t);
		CHECK_UINT(imsg_get_len(&m), ==, 0);
		CHECK_UINT(m.hdr.len, ==, 16);
		CHECK_PTR(m.data, ==, NULL);
		msg_free(&m);
	}
	chan_close(&c);
}

static void
imsg_compose_ibuf_sends_unread_part_and_queues_two(void)
{
	struct chan c;
	struct ibuf *buf;
	struct imsg m;
	uint32_t q0;
	int fd;

	chan_open(&c, 0);
	buf = ibuf_open(10);
	CHECK_PTR(buf, !=, NULL);
	if (buf == NULL) {
		chan_close(&c);
		return;
	}
	CHECK_INT(ibuf_add(buf, "0123456789", 10), ==, 0);
	q0 = imsgbuf_queuelen(&c.a);
	CHECK_INT(imsg_compose_ibuf(&c.a, 7, 8, 9, buf), ==, 1);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, q0 + 2);

	/* Only the unread part goes out. */
	buf = ibuf_dynamic(8, 64);
	CHECK_PTR(buf, !=, NULL);
	if (buf != NULL) {
		CHECK_INT(ibuf_add(buf, "abcdefghij", 10), ==, 0);
		CHECK_INT(ibuf_skip(buf, 4), ==, 0);
		/* Consumed on success: the fd is gone once written. */
		fd = devnull();
		ibuf_fd_set(buf, fd);
		CHECK_INT(imsg_compose_ibuf(&c.a, 10, 11, 0, buf), ==, 1);
		CHECK_UINT(imsgbuf_queuelen(&c.a), ==, q0 + 4);
		CHECK_INT(drain(&c.a), ==, 0);
		CHECK(!h_fd_is_open(fd));
	}
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);

	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 7);
	CHECK_UINT(imsg_get_id(&m), ==, 8);
	CHECK_INT(imsg_get_pid(&m), ==, 9);
	CHECK_UINT(m.hdr.len, ==, 26);
	CHECK_UINT(imsg_get_len(&m), ==, 10);
	CHECK_DATA(&m, "0123456789", 10);
	CHECK_INT(imsg_get_fd(&m), ==, -1);
	msg_free(&m);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 10);
	CHECK_INT(imsg_get_pid(&m), ==, getpid());
	CHECK_UINT(m.hdr.len, ==, 22);
	CHECK_UINT(imsg_get_len(&m), ==, 6);
	CHECK_DATA(&m, "efghij", 6);
	msg_free(&m);
	chan_close(&c);
}

static void
imsg_compose_ibuf_header_is_never_marked(void)
{
	struct chan c;
	struct ibuf *buf;
	unsigned char got[16 + 3];
	int fds[4], nfds, i;

	/* Even with fd passing on and an fd on buf: no mark. */
	chan_open(&c, 1);
	buf = ibuf_open(3);
	CHECK_PTR(buf, !=, NULL);
	if (buf != NULL) {
		CHECK_INT(ibuf_add(buf, "xyz", 3), ==, 0);
		ibuf_fd_set(buf, devnull());
		CHECK_INT(imsg_compose_ibuf(&c.a, 1, 2, 3, buf), ==, 1);
	}
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(recv_exact(c.sv[1], got, sizeof(got), fds, 4, &nfds), ==, 0);
	CHECK_UINT(hdr_at(got).len, ==, 19);
	CHECK_MEM(got + 16, "xyz", 3);
	for (i = 0; i < nfds && i < 4; i++)
		close(fds[i]);
	chan_close(&c);
}

static void
imsg_compose_ibuf_empty_payload_does_not_stall(void)
{
	pid_t pid;

	/* A flush that spins for ever is killed by the child's alarm. */
	if ((pid = fork_child()) == 0) {
		struct chan c;
		struct imsg m;

		chan_open(&c, 0);
		CHECK_INT(imsg_compose_ibuf(&c.a, 1, 0, 0, ibuf_open(0)), ==,
		    1);
		CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 2);
		CHECK_INT(imsgbuf_flush(&c.a), ==, 0);
		CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_UINT(m.hdr.len, ==, 16);
		CHECK_UINT(imsg_get_len(&m), ==, 0);
		CHECK_PTR(m.data, ==, NULL);
		msg_free(&m);
		chan_close(&c);
		child_exit();
	}
	WAIT_CHILD(pid);
}

static void
imsgbuf_flush_returns_after_compose_ibuf(void)
{
	pid_t pid;

	if ((pid = fork_child()) == 0) {
		struct chan c;
		struct imsg m;
		struct ibuf *buf;

		chan_open(&c, 0);
		if ((buf = ibuf_open(7)) == NULL)
			die("ibuf_open");
		CHECK_INT(ibuf_add(buf, "payload", 7), ==, 0);
		CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, "first", 5), ==, 1);
		CHECK_INT(imsg_compose_ibuf(&c.a, 2, 0, 0, buf), ==, 1);
		CHECK_INT(imsg_compose(&c.a, 3, 0, 0, -1, "last", 4), ==, 1);
		CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 4);
		CHECK_INT(imsgbuf_flush(&c.a), ==, 0);
		CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_UINT(imsg_get_type(&m), ==, 1);
		msg_free(&m);
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_UINT(imsg_get_type(&m), ==, 2);
		CHECK_UINT(imsg_get_len(&m), ==, 7);
		CHECK_DATA(&m, "payload", 7);
		msg_free(&m);
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_UINT(imsg_get_type(&m), ==, 3);
		msg_free(&m);
		chan_close(&c);
		child_exit();
	}
	WAIT_CHILD(pid);
}

static void
imsg_forward_resends_whole_payload_without_fd(void)
{
	struct chan in, out;
	struct imsg m;
	const char payload[] = "forward-me-please";	/* 18 bytes */
	unsigned char got[2 * (16 + sizeof(payload))], tmp[8];
	unsigned char one[16 + sizeof(payload)];
	size_t mlen = 16 + sizeof(payload);
	int fds[4], nfds, i, fd;

	chan_open(&in, 1);
	chan_open(&out, 1);	/* fd passing on: an fd would go out */
	CHECK_INT(imsg_compose(&in.a, 21, 22, 23, devnull(), payload,
	    sizeof(payload)), ==, 1);
	CHECK_INT(drain(&in.a), ==, 0);
	CHECK_INT(next_msg(&in.b, &m), ==, 1);

	/* Read part of the payload first: forward still sends it all. */
	CHECK_INT(imsg_get_buf(&m, tmp, 5), ==, 0);
	CHECK_UINT(imsg_get_len(&m), ==, sizeof(payload) - 5);
	CHECK_INT(imsg_forward(&out.a, &m), ==, 1);
	CHECK_UINT(imsg_get_len(&m), ==, sizeof(payload));
	CHECK_INT(imsg_forward(&out.a, &m), ==, 1);
	CHECK_UINT(imsgbuf_queuelen(&out.a), ==, 2);
	CHECK_INT(drain(&out.a), ==, 0);

	CHECK_INT(recv_exact(out.sv[1], got, sizeof(got), fds, 4, &nfds), ==,
	    0);
	CHECK_INT(nfds, ==, 0);
	for (i = 0; i < nfds && i < 4; i++)
		close(fds[i]);
	for (i = 0; i < 2; i++) {
		struct imsg_hdr h = hdr_at(got + i * mlen);

		CHECK_UINT(h.type, ==, 21);
		CHECK_UINT(h.len, ==, mlen);	/* no mark */
		CHECK_UINT(h.peerid, ==, 22);
		CHECK_UINT(h.pid, ==, 23);
		CHECK_MEM(got + i * mlen + 16, payload, sizeof(payload));
	}

	/* The fd stayed with the original message. */
	fd = imsg_get_fd(&m);
	CHECK_INT(fd, >=, 0);
	if (fd >= 0)
		close(fd);
	msg_free(&m);

	/* pid 0 in the message becomes the forwarding imsgbuf's pid. */
	in.a.pid = 0;
	out.a.pid = 4444;
	CHECK_INT(imsg_compose(&in.a, 30, 31, 0, -1, payload, sizeof(payload)),
	    ==, 1);
	CHECK_INT(drain(&in.a), ==, 0);
	CHECK_INT(next_msg(&in.b, &m), ==, 1);
	CHECK_INT(imsg_get_pid(&m), ==, 0);
	CHECK_INT(imsg_forward(&out.a, &m), ==, 1);
	CHECK_INT(drain(&out.a), ==, 0);
	CHECK_INT(recv_exact(out.sv[1], one, sizeof(one), fds, 4, &nfds), ==,
	    0);
	CHECK_UINT(hdr_at(one).pid, ==, 4444);
	CHECK_UINT(hdr_at(one).type, ==, 30);
	CHECK_UINT(hdr_at(one).peerid, ==, 31);

	/* It must fit the forwarding imsgbuf's limit. */
	CHECK_INT(imsgbuf_set_maxsize(&out.a, 4), ==, 0);
	CHECK_FAIL(imsg_forward(&out.a, &m), -1, ERANGE);
	CHECK_UINT(imsgbuf_queuelen(&out.a), ==, 0);
	msg_free(&m);
	chan_close(&in);
	chan_close(&out);
}

/* ---- fetching -------------------------------------------------------- */

static void
imsg_get_and_imsgbuf_get_return_values(void)
{
	struct chan c;
	struct imsg m;

	chan_open(&c, 0);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	CHECK_INT(imsg_get(&c.b, &m), ==, 0);
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, "12345", 5), ==, 1);
	CHECK_INT(imsg_compose(&c.a, 2, 0, 0, -1, NULL, 0), ==, 1);
	CHECK_INT(imsg_compose(&c.a, 3, 0, 0, -1, "1234567", 7), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);

	/* imsg_get returns the total length, imsgbuf_get 1. */
	CHECK_INT(next_imsg_get(&c.b, &m), ==, 21);
	CHECK_UINT(imsg_get_type(&m), ==, 1);
	msg_free(&m);
	CHECK_INT(next_imsg_get(&c.b, &m), ==, 16);
	CHECK_UINT(imsg_get_type(&m), ==, 2);
	CHECK_PTR(m.data, ==, NULL);
	msg_free(&m);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 3);
	CHECK_UINT(m.hdr.len, ==, 23);
	msg_free(&m);
	CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);
	CHECK_INT(imsg_get(&c.b, &m), ==, 0);
	chan_close(&c);
}

static void
accessors_return_header_fields(void)
{
	struct chan c;
	struct imsg m;
	unsigned char data[10];

	chan_open(&c, 0);
	fill(data, sizeof(data), 5);
	CHECK_INT(imsg_compose(&c.a, 0xdeadbeef, 0xfeedface, 12345, -1, data,
	    sizeof(data)), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 0xdeadbeef);
	CHECK_UINT(imsg_get_id(&m), ==, 0xfeedface);
	CHECK_INT(imsg_get_pid(&m), ==, 12345);
	CHECK_UINT(imsg_get_len(&m), ==, 10);
	CHECK_UINT(m.hdr.type, ==, 0xdeadbeef);
	CHECK_UINT(m.hdr.peerid, ==, 0xfeedface);
	CHECK_UINT(m.hdr.pid, ==, 12345);
	CHECK_UINT(m.hdr.len, ==, 26);
	CHECK_PTR(m.data, !=, NULL);
	CHECK_DATA(&m, data, sizeof(data));
	CHECK_PTR(m.buf, !=, NULL);
	CHECK_INT(imsg_get_fd(&m), ==, -1);
	msg_free(&m);
	chan_close(&c);
}

static void
imsg_get_data_wants_exact_length(void)
{
	struct chan c;
	struct imsg m;
	unsigned char buf[16];

	chan_open(&c, 0);
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, "ABCDEFGH", 8), ==, 1);
	CHECK_INT(imsg_compose(&c.a, 2, 0, 0, -1, NULL, 0), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);

	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_FAIL(imsg_get_data(&m, buf, 0), -1, EINVAL);
	CHECK_FAIL(imsg_get_data(&m, buf, 7), -1, EBADMSG);
	CHECK_FAIL(imsg_get_data(&m, buf, 9), -1, EBADMSG);
	CHECK_UINT(imsg_get_len(&m), ==, 8);
	memset(buf, 0, sizeof(buf));
	CHECK_INT(imsg_get_data(&m, buf, 8), ==, 0);
	CHECK_MEM(buf, "ABCDEFGH", 8);
	CHECK_UINT(imsg_get_len(&m), ==, 0);
	CHECK_FAIL(imsg_get_data(&m, buf, 8), -1, EBADMSG);
	msg_free(&m);

	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_FAIL(imsg_get_data(&m, buf, 1), -1, EBADMSG);
	CHECK_FAIL(imsg_get_data(&m, buf, 0), -1, EINVAL);
	msg_free(&m);
	chan_close(&c);
}

static void
imsg_get_buf_reads_partially(void)
{
	struct chan c;
	struct imsg m;
	char buf[16];

	chan_open(&c, 0);
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, "0123456789", 10), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_INT(imsg_get_buf(&m, buf, 4), ==, 0);
	CHECK_MEM(buf, "0123", 4);
	CHECK_UINT(imsg_get_len(&m), ==, 6);
	CHECK_FAIL(imsg_get_buf(&m, buf, 7), -1, EBADMSG);
	CHECK_UINT(imsg_get_len(&m), ==, 6);
	CHECK_INT(imsg_get_buf(&m, buf, 6), ==, 0);
	CHECK_MEM(buf, "456789", 6);
	CHECK_UINT(imsg_get_len(&m), ==, 0);
	CHECK_FAIL(imsg_get_buf(&m, buf, 1), -1, EBADMSG);
	msg_free(&m);
	chan_close(&c);
}

static void
imsg_get_strbuf_checks_length_and_nul(void)
{
	struct chan c;
	struct imsg m;
	char s[16];

	chan_open(&c, 0);
	/* "hello\0", "hi\0\0", then "abc" with no NUL. */
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, "hello\0hi\0\0abc", 13), ==,
	    1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_FAIL(imsg_get_strbuf(&m, s, 0), -1, EINVAL);
	CHECK_FAIL(imsg_get_strbuf(&m, s, 14), -1, EBADMSG);
	CHECK_UINT(imsg_get_len(&m), ==, 13);
	CHECK_INT(imsg_get_strbuf(&m, s, 6), ==, 0);
	CHECK_STR(s, "hello");
	CHECK_INT(imsg_get_strbuf(&m, s, 4), ==, 0);
	CHECK_STR(s, "hi");
	CHECK_UINT(imsg_get_len(&m), ==, 3);
	memset(s, 'x', sizeof(s));
	CHECK_FAIL(imsg_get_strbuf(&m, s, 3), -1, EOVERFLOW);
	/* The last byte is forced to NUL and the bytes are consumed. */
	CHECK_MEM(s, "ab", 3);
	CHECK_UINT(imsg_get_len(&m), ==, 0);
	msg_free(&m);
	chan_close(&c);
}

static void
imsg_get_ibuf_views_the_rest_of_the_payload(void)
{
	struct chan c;
	struct imsg m;
	struct ibuf v;
	char buf[16];

	chan_open(&c, 0);
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, NULL, 0), ==, 1);
	CHECK_INT(imsg_compose(&c.a, 2, 0, 0, -1, "0123456789", 10), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);

	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_FAIL(imsg_get_ibuf(&m, &v), -1, EBADMSG);
	msg_free(&m);

	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_INT(imsg_get_buf(&m, buf, 3), ==, 0);
	CHECK_INT(imsg_get_ibuf(&m, &v), ==, 0);
	CHECK_UINT(ibuf_size(&v), ==, 7);
	CHECK_MEM(ibuf_data(&v), "3456789", 7);
	CHECK_UINT(imsg_get_len(&m), ==, 0);
	CHECK_INT(ibuf_get(&v, buf, 4), ==, 0);
	CHECK_MEM(buf, "3456", 4);
	CHECK_UINT(ibuf_size(&v), ==, 3);
	CHECK_FAIL(imsg_get_ibuf(&m, &v), -1, EBADMSG);
	msg_free(&m);
	chan_close(&c);
}

static void
imsg_ibufq_push_and_pop_hand_messages_over(void)
{
	struct chan c;
	struct ibufqueue *q;
	struct imsg m, zero;
	char tmp[4];

	chan_open(&c, 0);
	q = ibufq_new();
	CHECK_PTR(q, !=, NULL);
	if (q == NULL) {
		chan_close(&c);
		return;
	}
	memset(&zero, 0, sizeof(zero));
	CHECK_INT(imsg_ibufq_pop(q, &m), ==, 0);
	CHECK_INT(imsg_compose(&c.a, 1, 2, 3, -1, "abcdef", 6), ==, 1);
	CHECK_INT(imsg_compose(&c.a, 4, 5, 6, -1, NULL, 0), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);

	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_INT(imsg_get_buf(&m, tmp, 2), ==, 0);	/* partly read */
	imsg_ibufq_push(q, &m);
	CHECK_MEM(&m, &zero, sizeof(m));
	CHECK_UINT(ibufq_queuelen(q), ==, 1);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	imsg_ibufq_push(q, &m);
	CHECK_MEM(&m, &zero, sizeof(m));
	CHECK_UINT(ibufq_queuelen(q), ==, 2);

	CHECK_INT(imsg_ibufq_pop(q, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 1);
	CHECK_UINT(imsg_get_id(&m), ==, 2);
	CHECK_INT(imsg_get_pid(&m), ==, 3);
	CHECK_UINT(m.hdr.len, ==, 22);
	CHECK_UINT(imsg_get_len(&m), ==, 6);	/* whole payload again */
	CHECK_PTR(m.data, !=, NULL);
	if (m.data != NULL)
		CHECK_DATA(&m, "abcdef", 6);
	msg_free(&m);
	CHECK_INT(imsg_ibufq_pop(q, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 4);
	CHECK_UINT(imsg_get_len(&m), ==, 0);
	CHECK_PTR(m.data, ==, NULL);
	msg_free(&m);
	CHECK_INT(imsg_ibufq_pop(q, &m), ==, 0);
	CHECK_UINT(ibufq_queuelen(q), ==, 0);
	ibufq_free(q);
	chan_close(&c);
}

/* ---- queue, flush, clear --------------------------------------------- */

static void
imsgbuf_queuelen_counts_queued_messages(void)
{
	struct chan c;
	struct imsg m;
	int i;

	chan_open(&c, 0);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	/* Nothing queued: write and flush return at once. */
	CHECK_INT(imsgbuf_write(&c.a), ==, 0);
	CHECK_INT(imsgbuf_flush(&c.a), ==, 0);
	for (i = 0; i < 3; i++) {
		CHECK_INT(imsg_compose(&c.a, (uint32_t)i, 0, 0, -1, "q", 1), ==,
		    1);
		CHECK_UINT(imsgbuf_queuelen(&c.a), ==, i + 1);
	}
	CHECK_INT(imsgbuf_write(&c.a), ==, 0);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	for (i = 0; i < 3; i++) {
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_UINT(imsg_get_type(&m), ==, i);
		msg_free(&m);
	}
	chan_close(&c);
}

#define FLUSH_N		300
#define FLUSH_SZ	4000

static void
imsgbuf_flush_sends_everything_to_a_child(void)
{
	struct imsgbuf ib;
	static unsigned char data[FLUSH_SZ];
	int sv[2], i;
	pid_t pid;

	/* 1.2 MB: far more than the socket holds, so flush must loop. */
	pair(sv);
	if ((pid = fork_child()) == 0) {
		struct imsg m;
		uint32_t seq;

		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		for (i = 0; i < FLUSH_N && !h_case_failed; i++) {
			CHECK_INT(next_msg(&ib, &m), ==, 1);
			if (h_case_failed)
				break;
			CHECK_UINT(imsg_get_type(&m), ==, i);
			CHECK_UINT(imsg_get_len(&m), ==, FLUSH_SZ);
			memcpy(&seq, m.data, sizeof(seq));
			CHECK_UINT(seq, ==, i);
			fill(data, FLUSH_SZ, (unsigned int)i);
			memcpy(data, &seq, sizeof(seq));
			CHECK_DATA(&m, data, FLUSH_SZ);
			msg_free(&m);
		}
		CHECK_INT(next_msg(&ib, &m), ==, 0);	/* then EOF */
		imsgbuf_clear(&ib);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	for (i = 0; i < FLUSH_N; i++) {
		uint32_t seq = (uint32_t)i;

		fill(data, FLUSH_SZ, (unsigned int)i);
		memcpy(data, &seq, sizeof(seq));
		CHECK_INT(imsg_compose(&ib, seq, 0, 0, -1, data, FLUSH_SZ), ==,
		    1);
	}
	CHECK_UINT(imsgbuf_queuelen(&ib), >, 0);
	CHECK_INT(imsgbuf_flush(&ib), ==, 0);
	CHECK_UINT(imsgbuf_queuelen(&ib), ==, 0);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
}

static void
calls_after_imsgbuf_clear_fail_einval(void)
{
	pid_t pid;

	/* In a child: a library that crashes after clear fails just this. */
	if ((pid = fork_child()) == 0) {
		struct chan c;
		struct imsg m, fwd;
		struct ibuf *buf;
		struct iovec iov;
		char x[] = "x";
		int fd, fd2, fd3, r;

		chan_open(&c, 0);
		set_nonblock(c.sv[1]);
		/* A received message to try imsg_forward with later. */
		CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, "fwd", 3), ==, 1);
		CHECK_INT(drain(&c.a), ==, 0);
		CHECK_INT(next_msg(&c.b, &fwd), ==, 1);

		/* Unsent messages are dropped and their fds closed. */
		fd = devnull();
		CHECK_INT(imsg_compose(&c.a, 2, 0, 0, fd, "y", 1), ==, 1);
		imsgbuf_clear(&c.a);
		CHECK(!h_fd_is_open(fd));
		CHECK_PTR(c.a.w, ==, NULL);
		imsgbuf_clear(&c.a);		/* harmless a second time */
		CHECK(h_fd_is_open(c.sv[0]));

		CHECK_FAIL(imsgbuf_read(&c.a), -1, EINVAL);
		CHECK_FAIL(imsgbuf_write(&c.a), -1, EINVAL);
		CHECK_FAIL(imsgbuf_flush(&c.a), -1, EINVAL);
		CHECK_FAIL(imsgbuf_get(&c.a, &m), -1, EINVAL);
		CHECK_FAIL(imsg_get(&c.a, &m), -1, EINVAL);
		CHECK_NULL_ERRNO(imsg_create(&c.a, 1, 0, 0, 4), EINVAL);
		CHECK_FAIL(imsg_forward(&c.a, &fwd), -1, EINVAL);
		/* A failed compose leaves the fd with the caller. */
		fd2 = devnull();
		CHECK_FAIL(imsg_compose(&c.a, 1, 0, 0, fd2, "x", 1), -1,
		    EINVAL);
		CHECK(h_fd_is_open(fd2));
		iov.iov_base = x;
		iov.iov_len = 1;
		CHECK_FAIL(imsg_composev(&c.a, 1, 0, 0, fd2, &iov, 1), -1,
		    EINVAL);
		CHECK(h_fd_is_open(fd2));
		CHECK_INT(close(fd2), ==, 0);
		/* compose_ibuf consumes its buffer even so. */
		buf = ibuf_open(4);
		if (buf != NULL) {
			fd3 = devnull();
			ibuf_fd_set(buf, fd3);
			CHECK_FAIL(imsg_compose_ibuf(&c.a, 1, 0, 0, buf), -1,
			    EINVAL);
			CHECK(!h_fd_is_open(fd3));
		}
		CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
		imsgbuf_allow_fdpass(&c.a);	/* must not crash */
		errno = 0;
		r = imsgbuf_set_maxsize(&c.a, 100);
		CHECK(r == 0 || (r == -1 && errno == EINVAL));
		msg_free(&fwd);

		/* The dropped message never reached the peer. */
		CHECK_INT(imsgbuf_read(&c.b), ==, 1);
		CHECK_INT(imsgbuf_get(&c.b, &m), ==, 0);

		/* imsgbuf_init makes it usable again. */
		CHECK_INT(imsgbuf_init(&c.a, c.sv[0]), ==, 0);
		CHECK_INT(imsg_compose(&c.a, 3, 0, 0, -1, "z", 1), ==, 1);
		CHECK_INT(drain(&c.a), ==, 0);
		CHECK_INT(next_msg(&c.b, &m), ==, 1);
		CHECK_UINT(imsg_get_type(&m), ==, 3);
		msg_free(&m);
		chan_close(&c);
		child_exit();
	}
	WAIT_CHILD(pid);
}

static void
imsgbuf_clear_frees_received_messages(void)
{
	struct chan c;
	struct imsg m;
	int i;

	chan_open(&c, 0);
	for (i = 0; i < 5; i++)
		CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, "abc", 3), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	msg_free(&m);
	/* Four unfetched messages are dropped (ASan/valgrind see leaks). */
	imsgbuf_clear(&c.b);
	CHECK_PTR(c.b.w, ==, NULL);
	CHECK_FAIL(imsgbuf_get(&c.b, &m), -1, EINVAL);
	chan_close(&c);
}

/* ---- real processes -------------------------------------------------- */

static void
child_pid_is_the_default_header_pid(void)
{
	struct imsgbuf ib;
	struct imsg m;
	int sv[2];
	pid_t pid;

	pair(sv);
	if ((pid = fork_child()) == 0) {
		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		CHECK_INT(ib.pid, ==, getpid());
		CHECK_INT(imsg_compose(&ib, 77, 1, 0, -1, "hi", 2), ==, 1);
		CHECK_INT(imsgbuf_flush(&ib), ==, 0);
		imsgbuf_clear(&ib);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	CHECK_INT(next_msg(&ib, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 77);
	CHECK_INT(imsg_get_pid(&m), ==, pid);
	CHECK_INT(imsg_get_pid(&m), !=, getpid());
	msg_free(&m);
	CHECK_INT(next_msg(&ib, &m), ==, 0);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
}

static void
request_reply_between_processes(void)
{
	struct imsgbuf ib;
	struct imsg m;
	uint32_t v;
	int sv[2], i;
	pid_t pid;

	pair(sv);
	if ((pid = fork_child()) == 0) {
		/* Echo every request back with its value plus one. */
		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		while (next_msg(&ib, &m) == 1) {
			CHECK_INT(imsg_get_data(&m, &v, sizeof(v)), ==, 0);
			v++;
			CHECK_INT(imsg_compose(&ib, imsg_get_type(&m) + 1,
			    imsg_get_id(&m), 0, -1, &v, sizeof(v)), ==, 1);
			msg_free(&m);
			CHECK_INT(imsgbuf_flush(&ib), ==, 0);
		}
		imsgbuf_clear(&ib);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	for (i = 0; i < 200 && !h_case_failed; i++) {
		v = (uint32_t)i * 3;
		CHECK_INT(imsg_compose(&ib, 10, (uint32_t)i, 0, -1, &v,
		    sizeof(v)), ==, 1);
		CHECK_INT(imsgbuf_flush(&ib), ==, 0);
		CHECK_INT(next_msg(&ib, &m), ==, 1);
		if (h_case_failed)
			break;
		CHECK_UINT(imsg_get_type(&m), ==, 11);
		CHECK_UINT(imsg_get_id(&m), ==, i);
		CHECK_INT(imsg_get_pid(&m), ==, pid);
		CHECK_INT(imsg_get_data(&m, &v, sizeof(v)), ==, 0);
		CHECK_UINT(v, ==, (uint32_t)i * 3 + 1);
		msg_free(&m);
	}
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
}

/*
 * ---- differences from upstream ----------------------------------------
 * README "Differences from upstream" and COMPATIBILITY in imsg_init(3):
 * each case checks libimsg's side of one.
 */

static void
imsg_forward_of_a_message_cut_below_its_header_fails_with_ebadmsg(void)
{
	struct chan c;
	struct imsg m;

	/*
	 * Upstream ignores the failed skip and forwards the bytes that were
	 * left, header bytes and all, as a payload.
	 */
	chan_open(&c, 0);
	CHECK_INT(imsg_compose(&c.a, 5, 6, 7, -1, "abcdef", 6), ==, 1);
	CHECK_INT(imsg_compose(&c.a, 8, 9, 10, -1, "ghijkl", 6), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	ibuf_rewind(m.buf);
	CHECK_INT(ibuf_truncate(m.buf, IMSG_HEADER_SIZE - 1), ==, 0);
	CHECK_FAIL(imsg_forward(&c.a, &m), -1, EBADMSG);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	msg_free(&m);

	/* Cut at the header, it forwards as an empty message. */
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	ibuf_rewind(m.buf);
	CHECK_INT(ibuf_truncate(m.buf, IMSG_HEADER_SIZE), ==, 0);
	CHECK_INT(imsg_forward(&c.a, &m), ==, 1);
	msg_free(&m);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 8);
	CHECK_UINT(imsg_get_len(&m), ==, 0);
	msg_free(&m);
	chan_close(&c);
}

static void
imsg_add_to_a_null_message_fails_with_einval_for_any_length(void)
{
	struct chan c;
	struct ibuf *msg;

	/*
	 * NULL is what a failed imsg_create returned.  Upstream returns 0
	 * for an empty piece (and crashes for any other), so a caller that
	 * checks only imsg_add carries on as if the message were built.
	 */
	CHECK_FAIL(imsg_add(NULL, "x", 0), -1, EINVAL);
	CHECK_FAIL(imsg_add(NULL, NULL, 0), -1, EINVAL);
	CHECK_FAIL(imsg_add(NULL, "x", 1), -1, EINVAL);

	chan_open(&c, 0);
	msg = imsg_create(&c.a, 1, 0, 0, MAX_IMSGSIZE);
	CHECK_PTR(msg, ==, NULL);
	CHECK_FAIL(imsg_add(msg, "", 0), -1, EINVAL);
	imsg_close(&c.a, msg);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	chan_close(&c);
}

static void
imsg_ibufq_pop_frees_a_buffer_shorter_than_a_header(void)
{
	struct ibufqueue *q;
	struct ibuf *shortb, *full;
	struct imsg m;
	void *p;
	int fd;

	/* Upstream leaves the short buffer, and its descriptor, unfreed. */
	q = ibufq_new();
	shortb = ibuf_open(IMSG_HEADER_SIZE - 1);
	full = ibuf_open(IMSG_HEADER_SIZE + 3);
	p = full != NULL ? ibuf_reserve(full, IMSG_HEADER_SIZE) : NULL;
	if (q == NULL || shortb == NULL || p == NULL) {
		h_fail(__FILE__, __LINE__, "allocation: %s", strerror(errno));
		ibufq_free(q);
		ibuf_free(shortb);
		ibuf_free(full);
		return;
	}
	CHECK_INT(ibuf_add_zero(shortb, IMSG_HEADER_SIZE - 1), ==, 0);
	fd = devnull();
	ibuf_fd_set(shortb, fd);
	ibufq_push(q, shortb);
	put_hdr(p, 42, IMSG_HEADER_SIZE + 3, 1, 2);
	CHECK_INT(ibuf_add(full, "xyz", 3), ==, 0);
	ibufq_push(q, full);

	CHECK_FAIL(imsg_ibufq_pop(q, &m), -1, EBADMSG);
	/* Freed: its descriptor was closed with it. */
	CHECK(!h_fd_is_open(fd));
	CHECK_UINT(ibufq_queuelen(q), ==, 1);
	CHECK_INT(imsg_ibufq_pop(q, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 42);
	CHECK_UINT(imsg_get_len(&m), ==, 3);
	CHECK_DATA(&m, "xyz", 3);
	msg_free(&m);
	CHECK_INT(imsg_ibufq_pop(q, &m), ==, 0);
	ibufq_free(q);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, watchdog);
	alarm(60);

	RUN(imsgbuf_init_sets_pid_maxsize_fd_and_flags);
	RUN(imsgbuf_allow_fdpass_sets_flag);
	RUN(imsgbuf_set_maxsize_takes_payload_limit);
	RUN(compose_beyond_default_maxsize_fails_erange);
	RUN(set_maxsize_bounds_every_way_of_sending);
	RUN(datalen_plus_header_overflow_fails_erange);
	RUN(receiver_maxsize_bounds_incoming_messages);
	RUN(wire_header_is_host_order_type_len_peerid_pid);
	RUN(wire_len_has_bit31_only_when_fd_attached);
	RUN(imsg_create_writes_zero_len_until_close);
	RUN(create_add_close_delivers_one_message);
	RUN(imsg_composev_concatenates_iovecs);
	RUN(imsg_compose_ibuf_sends_unread_part_and_queues_two);
	RUN(imsg_compose_ibuf_header_is_never_marked);
	RUN(imsg_compose_ibuf_empty_payload_does_not_stall);
	RUN(imsgbuf_flush_returns_after_compose_ibuf);
	RUN(imsg_forward_resends_whole_payload_without_fd);
	RUN(imsg_get_and_imsgbuf_get_return_values);
	RUN(accessors_return_header_fields);
	RUN(imsg_get_data_wants_exact_length);
	RUN(imsg_get_buf_reads_partially);
	RUN(imsg_get_strbuf_checks_length_and_nul);
	RUN(imsg_get_ibuf_views_the_rest_of_the_payload);
	RUN(imsg_ibufq_push_and_pop_hand_messages_over);
	RUN(imsgbuf_queuelen_counts_queued_messages);
	RUN(imsgbuf_flush_sends_everything_to_a_child);
	RUN(calls_after_imsgbuf_clear_fail_einval);
	RUN(imsgbuf_clear_frees_received_messages);
	RUN(child_pid_is_the_default_header_pid);
	RUN(request_reply_between_processes);
	RUN(imsg_forward_of_a_message_cut_below_its_header_fails_with_ebadmsg);
	RUN(imsg_add_to_a_null_message_fails_with_einval_for_any_length);
	RUN(imsg_ibufq_pop_frees_a_buffer_shorter_than_a_header);
	return h_done();
}
