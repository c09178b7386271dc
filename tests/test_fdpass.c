/*
 * Descriptor passing over real sockets and real processes: a fork()ed
 * peer sends open files with SCM_RIGHTS, and the receiver checks with
 * fstat that it got the very same files, each on its own message.  Also
 * covered: who closes what and when (sender after sending, imsg_free for
 * unclaimed fds, imsgbuf_clear), fd passing turned off on either side,
 * and descriptors surviving partial writes.
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
	close(c->sv[0]);
	close(c->sv[1]);
}

/* ---- fixture: files whose identity (st_dev, st_ino) we know ---------- */

#define NFILES	5

static char		fx_dir[64];
static char		fx_path[NFILES][128];
static struct stat	fx_st[NFILES];

static void
fixture_setup(void)
{
	char text[16];
	int i, fd, n;

	snprintf(fx_dir, sizeof(fx_dir), "/tmp/libimsg-fdpass-XXXXXX");
	if (mkdtemp(fx_dir) == NULL)
		die("mkdtemp");
	for (i = 0; i < NFILES; i++) {
		snprintf(fx_path[i], sizeof(fx_path[i]), "%s/file%d", fx_dir,
		    i);
		if ((fd = open(fx_path[i], O_RDWR | O_CREAT | O_TRUNC, 0600))
		    == -1)
			die("open fixture");
		n = snprintf(text, sizeof(text), "file-%d", i);
		write_all(fd, text, (size_t)n);
		if (fstat(fd, &fx_st[i]) == -1)
			die("fstat");
		close(fd);
	}
}

static void
fixture_teardown(void)
{
	int i;

	for (i = 0; i < NFILES; i++)
		unlink(fx_path[i]);
	rmdir(fx_dir);
}

static int
open_file(int i)
{
	int fd;

	if ((fd = open(fx_path[i], O_RDONLY)) == -1)
		die("open fixture file");
	return fd;
}

/* Which fixture file fd refers to, or -1. */
static int
file_index(int fd)
{
	struct stat st;
	int i;

	if (fstat(fd, &st) == -1)
		return -1;
	for (i = 0; i < NFILES; i++)
		if (st.st_dev == fx_st[i].st_dev &&
		    st.st_ino == fx_st[i].st_ino)
			return i;
	return -1;
}

/* ---- a child sends, the parent receives ------------------------------ */

static void
child_sends_open_file_parent_gets_same_file(void)
{
	struct imsgbuf ib;
	struct imsg m;
	char text[16];
	int sv[2], fd;
	pid_t pid;

	pair(sv);
	if ((pid = fork_child()) == 0) {
		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		imsgbuf_allow_fdpass(&ib);
		/* The child opens the file itself: a new open file. */
		fd = open_file(2);
		CHECK_INT(imsg_compose(&ib, 1, 2, 0, fd, "file", 4), ==, 1);
		CHECK(h_fd_is_open(fd));	/* the library holds it */
		CHECK_INT(imsgbuf_flush(&ib), ==, 0);
		CHECK(!h_fd_is_open(fd));	/* closed once sent */
		imsgbuf_clear(&ib);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	imsgbuf_allow_fdpass(&ib);
	CHECK_INT(next_msg(&ib, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 1);
	CHECK_UINT(imsg_get_id(&m), ==, 2);
	CHECK_INT(imsg_get_pid(&m), ==, pid);
	CHECK_UINT(m.hdr.len, ==, 20);		/* mark cleared */
	CHECK_UINT(imsg_get_len(&m), ==, 4);
	fd = imsg_get_fd(&m);
	CHECK_INT(fd, >=, 0);
	/* The caller owns it now: a second call finds nothing. */
	CHECK_INT(imsg_get_fd(&m), ==, -1);
	msg_free(&m);
	if (fd >= 0) {
		CHECK_INT(file_index(fd), ==, 2);
		memset(text, 0, sizeof(text));
		CHECK_INT(pread(fd, text, sizeof(text) - 1, 0), ==, 6);
		CHECK_STR(text, "file-2");
		/* imsg_free did not close the claimed fd. */
		CHECK(h_fd_is_open(fd));
		close(fd);
	}
	CHECK_INT(next_msg(&ib, &m), ==, 0);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
}

#define SEVERAL		24

/* Message i carries file i % NFILES unless i % 3 == 0. */
static int
several_expect(int i)
{
	return i % 3 == 0 ? -1 : i % NFILES;
}

static size_t
several_size(int i)
{
	return 4 + (size_t)(i * 997) % 6000;
}

static void
several_fds_each_arrive_on_their_own_message(void)
{
	struct imsgbuf ib;
	struct imsg m;
	static unsigned char data[6004], want[6004];
	uint32_t seq;
	int sv[2], i, fd;
	pid_t pid;

	pair(sv);
	if ((pid = fork_child()) == 0) {
		/* All queued first, then one flush: fd and fd-less mixed. */
		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		imsgbuf_allow_fdpass(&ib);
		for (i = 0; i < SEVERAL; i++) {
			seq = (uint32_t)i;
			fill(data, several_size(i), seq);
			memcpy(data, &seq, sizeof(seq));
			fd = several_expect(i) == -1 ? -1 :
			    open_file(several_expect(i));
			CHECK_INT(imsg_compose(&ib, seq, 0, 0, fd, data,
			    several_size(i)), ==, 1);
		}
		CHECK_INT(imsgbuf_flush(&ib), ==, 0);
		imsgbuf_clear(&ib);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	imsgbuf_allow_fdpass(&ib);
	for (i = 0; i < SEVERAL; i++) {
		CHECK_INT(next_msg(&ib, &m), ==, 1);
		if (h_case_failed)
			break;
		CHECK_UINT(imsg_get_type(&m), ==, i);
		CHECK_UINT(imsg_get_len(&m), ==, several_size(i));
		fill(want, several_size(i), (unsigned int)i);
		seq = (uint32_t)i;
		memcpy(want, &seq, sizeof(seq));
		if (imsg_get_len(&m) == several_size(i))
			CHECK_DATA(&m, want, several_size(i));
		fd = imsg_get_fd(&m);
		if (several_expect(i) == -1) {
			CHECK_INT(fd, ==, -1);
		} else {
			CHECK_INT(fd, >=, 0);
			CHECK_INT(file_index(fd), ==, several_expect(i));
		}
		if (fd >= 0)
			close(fd);
		msg_free(&m);
	}
	CHECK_INT(next_msg(&ib, &m), ==, 0);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
}

static void
receiver_without_fdpass_gets_no_fd_and_leaks_none(void)
{
	struct imsgbuf ib;
	struct imsg m;
	int sv[2], i, fds0;
	pid_t pid;

	pair(sv);
	if ((pid = fork_child()) == 0) {
		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		imsgbuf_allow_fdpass(&ib);
		for (i = 0; i < 3; i++)
			CHECK_INT(imsg_compose(&ib, (uint32_t)i, 0, 0,
			    open_file(i), "abcdefgh", 2 + (size_t)i), ==, 1);
		CHECK_INT(imsgbuf_flush(&ib), ==, 0);
		imsgbuf_clear(&ib);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);	/* no fdpass */
	fds0 = h_count_fds();
	for (i = 0; i < 3; i++) {
		CHECK_INT(next_msg(&ib, &m), ==, 1);
		if (h_case_failed)
			break;
		CHECK_INT(h_count_fds(), ==, fds0);
		CHECK_UINT(imsg_get_type(&m), ==, i);
		CHECK_UINT(m.hdr.len, ==, 16 + 2 + i);	/* mark cleared */
		CHECK_UINT(imsg_get_len(&m), ==, 2 + i);
		CHECK_DATA(&m, "abcdefgh", 2 + (size_t)i);
		CHECK_INT(imsg_get_fd(&m), ==, -1);
		msg_free(&m);
	}
	CHECK_INT(next_msg(&ib, &m), ==, 0);
	CHECK_INT(h_count_fds(), ==, fds0);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
}

static void
sender_without_fdpass_sends_no_fd_and_closes_it(void)
{
	struct imsgbuf ib;
	struct imsg m;
	int sv[2], fd, fds0;
	pid_t pid;

	pair(sv);
	if ((pid = fork_child()) == 0) {
		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);	/* no fdpass */
		fd = open_file(1);
		CHECK_INT(imsg_compose(&ib, 5, 0, 0, fd, "data", 4), ==, 1);
		CHECK(h_fd_is_open(fd));
		CHECK_INT(imsgbuf_flush(&ib), ==, 0);
		/* Written completely, so its fd is closed. */
		CHECK(!h_fd_is_open(fd));
		imsgbuf_clear(&ib);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	imsgbuf_allow_fdpass(&ib);
	fds0 = h_count_fds();
	CHECK_INT(next_msg(&ib, &m), ==, 1);
	CHECK_INT(h_count_fds(), ==, fds0);
	CHECK_UINT(imsg_get_type(&m), ==, 5);
	CHECK_UINT(m.hdr.len, ==, 20);
	CHECK_DATA(&m, "data", 4);
	CHECK_INT(imsg_get_fd(&m), ==, -1);
	msg_free(&m);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
}

/* ---- in one process: exactly when descriptors are closed ------------- */

static void
sender_without_fdpass_still_marks_the_header(void)
{
	struct chan c;
	unsigned char got[18];
	int fds[4], nfds, i, fd;

	chan_open(&c, 0);
	fd = open_file(0);
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, fd, "ab", 2), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK(!h_fd_is_open(fd));
	CHECK_INT(recv_exact(c.sv[1], got, sizeof(got), fds, 4, &nfds), ==, 0);
	CHECK_INT(nfds, ==, 0);
	for (i = 0; i < nfds && i < 4; i++)
		close(fds[i]);
	CHECK_UINT(hdr_at(got).len, ==, MARK | 18);
	CHECK_MEM(got + 16, "ab", 2);
	chan_close(&c);
}

static void
sender_fd_is_closed_once_sent(void)
{
	struct chan c;
	struct imsg m;
	int fd, rfd;

	chan_open(&c, 1);
	fd = open_file(3);
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, fd, "x", 1), ==, 1);
	CHECK(h_fd_is_open(fd));
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 1);
	CHECK_INT(imsgbuf_write(&c.a), ==, 0);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	/* Checked before the receiver could reuse the number. */
	CHECK(!h_fd_is_open(fd));
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	rfd = imsg_get_fd(&m);
	CHECK_INT(rfd, >=, 0);
	if (rfd >= 0) {
		CHECK_INT(file_index(rfd), ==, 3);
		close(rfd);
	}
	msg_free(&m);
	chan_close(&c);
}

#define BACKLOG		40
#define BACKLOG_SZ	16000

static void
sender_fd_stays_open_until_its_message_goes_out(void)
{
	struct chan c;
	struct imsg m;
	static unsigned char data[BACKLOG_SZ];
	int fd, rfd = -1, i, got = 0, spins = 0;

	chan_open(&c, 1);
	set_nonblock(c.sv[0]);
	fill(data, sizeof(data), 9);
	/* 640 kB nobody reads yet: the fd message waits behind it. */
	for (i = 0; i < BACKLOG; i++)
		CHECK_INT(imsg_compose(&c.a, (uint32_t)i, 0, 0, -1, data,
		    sizeof(data)), ==, 1);
	fd = open_file(4);
	CHECK_INT(imsg_compose(&c.a, BACKLOG, 0, 0, fd, "fd", 2), ==, 1);
	for (i = 0; i < 50; i++)
		CHECK_INT(imsgbuf_write(&c.a), ==, 0);
	CHECK_UINT(imsgbuf_queuelen(&c.a), >, 0);
	CHECK(h_fd_is_open(fd));

	/* Now read while writing until everything has arrived. */
	while (got <= BACKLOG && spins++ < 100000 && !h_case_failed) {
		if (imsgbuf_queuelen(&c.a) > 0)
			CHECK_INT(imsgbuf_write(&c.a), ==, 0);
		if (wait_readable(c.sv[1], 10) <= 0)
			continue;
		CHECK_INT(imsgbuf_read(&c.b), ==, 1);
		while (imsgbuf_get(&c.b, &m) == 1) {
			CHECK_UINT(imsg_get_type(&m), ==, got);
			if (got < BACKLOG) {
				CHECK_INT(imsg_get_fd(&m), ==, -1);
				CHECK_UINT(imsg_get_len(&m), ==, BACKLOG_SZ);
			} else {
				rfd = imsg_get_fd(&m);
				CHECK_INT(rfd, >=, 0);
				if (rfd >= 0)
					CHECK_INT(file_index(rfd), ==, 4);
			}
			msg_free(&m);
			got++;
		}
	}
	CHECK_INT(got, ==, BACKLOG + 1);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	/* Closed by the library, unless the receiver reused the number. */
	CHECK(rfd == fd || !h_fd_is_open(fd));
	if (rfd >= 0)
		close(rfd);
	chan_close(&c);
}

static void
unclaimed_fds_are_closed_by_imsg_free(void)
{
	struct chan c;
	struct imsg m[3];
	int i, fds0, n;

	chan_open(&c, 1);
	fds0 = h_count_fds();
	for (i = 0; i < 3; i++)
		CHECK_INT(imsg_compose(&c.a, (uint32_t)i, 0, 0, open_file(i),
		    NULL, 0), ==, 1);
	CHECK_INT(h_count_fds(), ==, fds0 + 3);
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(h_count_fds(), ==, fds0);	/* the sender closed its own */
	for (n = 0; n < 3; n++)
		if (next_msg(&c.b, &m[n]) != 1)
			break;
	CHECK_INT(n, ==, 3);
	CHECK_INT(h_count_fds(), ==, fds0 + n);	/* held by the messages */
	for (i = 0; i < n; i++) {
		msg_free(&m[i]);
		CHECK_INT(h_count_fds(), ==, fds0 + n - i - 1);
	}
	chan_close(&c);
}

static void
imsgbuf_clear_closes_fds_of_unfetched_messages(void)
{
	struct chan c;
	int i, fds0, spins;

	chan_open(&c, 1);
	fds0 = h_count_fds();
	for (i = 0; i < 2; i++)
		CHECK_INT(imsg_compose(&c.a, (uint32_t)i, 0, 0, open_file(i),
		    "z", 1), ==, 1);
	CHECK_INT(drain(&c.a), ==, 0);
	/* Read (never fetch) until both fds have come in. */
	for (spins = 0; spins < 100 && h_count_fds() < fds0 + 2; spins++) {
		if (wait_readable(c.sv[1], 50) > 0)
			CHECK_INT(imsgbuf_read(&c.b), ==, 1);
	}
	CHECK_INT(h_count_fds(), ==, fds0 + 2);
	imsgbuf_clear(&c.b);
	CHECK_INT(h_count_fds(), ==, fds0);
	chan_close(&c);
}

static void
imsgbuf_clear_closes_fds_of_unsent_messages(void)
{
	struct chan c;
	int fd1, fd2;

	chan_open(&c, 1);
	fd1 = open_file(0);
	fd2 = open_file(1);
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, fd1, "a", 1), ==, 1);
	CHECK_INT(imsg_compose(&c.a, 2, 0, 0, fd2, NULL, 0), ==, 1);
	CHECK(h_fd_is_open(fd1));
	CHECK(h_fd_is_open(fd2));
	imsgbuf_clear(&c.a);
	CHECK(!h_fd_is_open(fd1));
	CHECK(!h_fd_is_open(fd2));
	chan_close(&c);
}

static void
compose_failure_leaves_fd_with_caller(void)
{
	struct chan c;
	static unsigned char big[16369];
	struct iovec iov;
	int fd;

	chan_open(&c, 1);
	fd = open_file(0);
	CHECK_FAIL(imsg_compose(&c.a, 1, 0, 0, fd, big, sizeof(big)), -1,
	    ERANGE);
	CHECK(h_fd_is_open(fd));
	iov.iov_base = big;
	iov.iov_len = sizeof(big);
	CHECK_FAIL(imsg_composev(&c.a, 1, 0, 0, fd, &iov, 1), -1, ERANGE);
	CHECK(h_fd_is_open(fd));
	CHECK_INT(imsgbuf_set_maxsize(&c.a, 8), ==, 0);
	CHECK_FAIL(imsg_compose(&c.a, 1, 0, 0, fd, big, 9), -1, ERANGE);
	CHECK(h_fd_is_open(fd));
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	/* Still the caller's: closing it works. */
	CHECK_INT(close(fd), ==, 0);
	chan_close(&c);
}

static void
fd_set_before_imsg_close_is_passed(void)
{
	struct chan c;
	struct imsg m;
	struct ibuf *msg;
	int fd, rfd;

	chan_open(&c, 1);
	msg = imsg_create(&c.a, 8, 9, 0, 3);
	CHECK_PTR(msg, !=, NULL);
	if (msg != NULL) {
		CHECK_INT(imsg_add(msg, "abc", 3), ==, 3);
		fd = open_file(2);
		ibuf_fd_set(msg, fd);
		imsg_close(&c.a, msg);
	}
	CHECK_INT(drain(&c.a), ==, 0);
	CHECK_INT(next_msg(&c.b, &m), ==, 1);
	CHECK_UINT(imsg_get_type(&m), ==, 8);
	CHECK_UINT(m.hdr.len, ==, 19);
	rfd = imsg_get_fd(&m);
	CHECK_INT(rfd, >=, 0);
	if (rfd >= 0) {
		CHECK_INT(file_index(rfd), ==, 2);
		close(rfd);
	}
	msg_free(&m);
	chan_close(&c);
}

static void
fd_survives_read_buffer_boundary_inside_its_header(void)
{
	struct chan c;
	struct imsg m;
	static unsigned char data[16368];
	size_t prefix;
	int i, fd, rfd, n;

	/*
	 * prefix bytes of fd-less messages, then a message with an fd, all
	 * queued before the first read.  Whatever the read buffer's size
	 * (65535 upstream, or 65536), one prefix makes the first read end
	 * inside the fd message's header: the fd has come, its header not
	 * yet.  The fd still belongs to that message.
	 */
	for (prefix = 65535 - 15; prefix <= 65536 - 1; prefix++) {
		chan_open(&c, 1);
		for (i = 0; i < 3; i++)
			CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, data,
			    sizeof(data)), ==, 1);
		CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, data,
		    prefix - 3 * 16384 - 16), ==, 1);
		fd = open_file(1);
		CHECK_INT(imsg_compose(&c.a, 2, 0, 0, fd, "fd", 2), ==, 1);
		if (drain(&c.a) == -1) {
			h_fail(__FILE__, __LINE__, "prefix %zu: drain: %s",
			    prefix, strerror(errno));
			chan_close(&c);
			return;
		}
		for (n = 0; n < 5; n++) {
			if (next_msg(&c.b, &m) != 1) {
				/* Not the fd: give up on the case at once. */
				h_fail(__FILE__, __LINE__,
				    "prefix %zu: only %d messages", prefix, n);
				chan_close(&c);
				return;
			}
			rfd = imsg_get_fd(&m);
			if (imsg_get_type(&m) == 2 &&
			    (rfd == -1 || file_index(rfd) != 1))
				h_fail(__FILE__, __LINE__, "prefix %zu: the fd "
				    "message arrived with fd %d", prefix, rfd);
			if (imsg_get_type(&m) != 2 && rfd != -1)
				h_fail(__FILE__, __LINE__, "prefix %zu: fd %d "
				    "on an fd-less message", prefix, rfd);
			if (rfd >= 0)
				close(rfd);
			msg_free(&m);
		}
		chan_close(&c);
	}
}

/* ---- descriptors and partial writes ---------------------------------- */

#define PW_N	300

static size_t
pw_size(int i)
{
	return 4 + (size_t)(i * 389) % 3500;
}

static int
pw_expect(int i)
{
	return i % 4 == 1 ? i % NFILES : -1;
}

static void
fds_survive_partial_writes(void)
{
	struct imsgbuf ib;
	struct imsg m;
	struct pollfd pfd;
	static unsigned char data[3504];
	uint32_t seq;
	int sv[2], i, fd, sndbuf = 4096, writes = 0;
	pid_t pid;

	pair(sv);
	if ((pid = fork_child()) == 0) {
		/* The reader checks order, payload and every fd. */
		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		imsgbuf_allow_fdpass(&ib);
		for (i = 0; i < PW_N && !h_case_failed; i++) {
			CHECK_INT(next_msg(&ib, &m), ==, 1);
			if (h_case_failed)
				break;
			CHECK_UINT(imsg_get_type(&m), ==, i);
			CHECK_UINT(imsg_get_len(&m), ==, pw_size(i));
			seq = (uint32_t)i;
			fill(data, pw_size(i), seq);
			memcpy(data, &seq, sizeof(seq));
			if (imsg_get_len(&m) == pw_size(i))
				CHECK_DATA(&m, data, pw_size(i));
			fd = imsg_get_fd(&m);
			if (pw_expect(i) == -1)
				CHECK_INT(fd, ==, -1);
			else
				CHECK_INT(file_index(fd), ==, pw_expect(i));
			if (fd >= 0)
				close(fd);
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
	imsgbuf_allow_fdpass(&ib);
	for (i = 0; i < PW_N; i++) {
		seq = (uint32_t)i;
		fill(data, pw_size(i), seq);
		memcpy(data, &seq, sizeof(seq));
		fd = pw_expect(i) == -1 ? -1 : open_file(pw_expect(i));
		CHECK_INT(imsg_compose(&ib, seq, 0, 0, fd, data, pw_size(i)),
		    ==, 1);
	}
	while (imsgbuf_queuelen(&ib) > 0 && !h_case_failed) {
		pfd.fd = sv[0];
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 5000) <= 0) {
			h_fail(__FILE__, __LINE__, "socket never writable");
			break;
		}
		CHECK_INT(imsgbuf_write(&ib), ==, 0);
		writes++;
	}
	/* A 4 kB send buffer cannot take ~500 kB and 75 fds at once. */
	CHECK_INT(writes, >, 20);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, watchdog);
	alarm(60);
	fixture_setup();

	RUN(child_sends_open_file_parent_gets_same_file);
	RUN(several_fds_each_arrive_on_their_own_message);
	RUN(receiver_without_fdpass_gets_no_fd_and_leaks_none);
	RUN(sender_without_fdpass_sends_no_fd_and_closes_it);
	RUN(sender_without_fdpass_still_marks_the_header);
	RUN(sender_fd_is_closed_once_sent);
	RUN(sender_fd_stays_open_until_its_message_goes_out);
	RUN(unclaimed_fds_are_closed_by_imsg_free);
	RUN(imsgbuf_clear_closes_fds_of_unfetched_messages);
	RUN(imsgbuf_clear_closes_fds_of_unsent_messages);
	RUN(compose_failure_leaves_fd_with_caller);
	RUN(fd_set_before_imsg_close_is_passed);
	RUN(fd_survives_read_buffer_boundary_inside_its_header);
	RUN(fds_survive_partial_writes);

	fixture_teardown();
	return h_done();
}
