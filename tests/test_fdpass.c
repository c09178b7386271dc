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

/* ---- issue 14: descriptors wherever a read is cut ---------------------- */

/*
 * The sender is raw sendmsg, one call per message and its descriptor on
 * the message's first byte, as every imsg writer sends; everything is
 * queued in the socket before the receiver's first read, so where the
 * reader's buffer cuts the stream depends only on the filler length K.
 */
/* The largest filler message is 60000 bytes, header included. */
static unsigned char cut_msg[60000];

/* Send n bytes, taking fd (closed once sent, or on failure). */
static int
raw_send_bytes(int s, const void *p, size_t n, int fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	size_t off = 0;
	ssize_t r;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd != -1) {
		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	while (off < n) {
		iov.iov_base = (char *)(uintptr_t)p + off;
		iov.iov_len = n - off;
		/* Nobody reads yet: a full socket buffer is a test bug. */
		if ((r = sendmsg(s, &msg, MSG_DONTWAIT)) <= 0)
			break;
		off += (size_t)r;
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
	}
	/* The descriptor went with the first byte; ours is a duplicate. */
	if (fd != -1)
		close(fd);
	return off == n ? 0 : -1;
}

/* One imsg of paylen bytes, marked or not, with fd (taken) or none. */
static int
raw_send(int s, uint32_t type, size_t paylen, int mark, int fd)
{
	uint32_t len = (uint32_t)(16 + paylen);

	if (len > sizeof(cut_msg)) {
		errno = EMSGSIZE;
		return -1;
	}
	put_hdr(cut_msg, type, len | (mark ? MARK : 0), type, 1);
	memset(cut_msg + 16, (int)(type & 0xff), paylen);
	return raw_send_bytes(s, cut_msg, len, fd);
}

/* K bytes of fd-less messages: a few large ones, or many small ones. */
static int
send_filler(int s, int k, int small)
{
	uint32_t t = 10;
	int left = k, len;

	while (left > 0) {
		len = left > 60000 ? 40000 : left;
		if (small && left > 4000)
			len = 1000 + left % 3000;
		if (left - len > 0 && left - len < 16)
			len -= 16;
		if (raw_send(s, t++, (size_t)len - 16, 0, -1) == -1)
			return -1;
		left -= len;
	}
	return 0;
}

/*
 * Filler of K bytes, M1 (marked; file 0 or, with nofd, no descriptor),
 * M2 (marked, file 1), M3 (unmarked).  Fills got[1..3] with the fixture
 * index each one arrived with (-1: none); 0, or -1 on a setup error.
 */
static int
fdcut_once(int nofd, int k, int small, int got[4])
{
	struct imsgbuf ib;
	struct imsg m;
	int sv[2], sz = 4 << 20, seen = 0, t, fd, r = 0;

	got[1] = got[2] = got[3] = -2;
	pair(sv);
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (send_filler(sv[0], k, small) == -1 ||
	    raw_send(sv[0], 1, 8, 1, nofd ? -1 : open_file(0)) == -1 ||
	    raw_send(sv[0], 2, 8, 1, open_file(1)) == -1 ||
	    raw_send(sv[0], 3, 8, 0, -1) == -1)
		r = -1;
	close(sv[0]);
	CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
	imsgbuf_allow_fdpass(&ib);
	CHECK_INT(imsgbuf_set_maxsize(&ib, 1 << 20), ==, 0);
	while (r == 0 && seen < 3 && next_msg(&ib, &m) == 1) {
		t = (int)imsg_get_type(&m);
		fd = imsg_get_fd(&m);
		if (t >= 1 && t <= 3) {
			got[t] = fd == -1 ? -1 : file_index(fd);
			seen++;
		} else if (fd != -1)
			got[0] = file_index(fd);
		if (fd != -1)
			close(fd);
		msg_free(&m);
	}
	imsgbuf_clear(&ib);
	close(sv[1]);
	return r;
}

/* Filler lengths that put a cut around 4 KiB, 64 KiB and in between. */
static const struct { int from, to, step; } cut_ranges[] = {
	{ 4000, 4200, 1 }, { 8150, 8230, 2 }, { 16340, 16420, 4 },
	{ 32730, 32800, 5 }, { 65300, 65600, 1 }, { 131000, 131110, 2 },
};

static void
fdcut_sweep(int nofd)
{
	int got[4], k, small, wrong = 0;
	size_t r;

	for (small = 0; small < 2; small++)
	for (r = 0; r < sizeof(cut_ranges) / sizeof(cut_ranges[0]); r++)
	for (k = cut_ranges[r].from; k <= cut_ranges[r].to;
	    k += cut_ranges[r].step) {
		got[0] = -1;
		if (fdcut_once(nofd, k, small, got) == -1) {
			h_fail(__FILE__, __LINE__, "K=%d: sendmsg: %s", k,
			    strerror(errno));
			goto out;
		}
		if (got[0] == -1 && got[1] == (nofd ? -1 : 0) &&
		    got[2] == 1 && got[3] == -1)
			continue;
		if (wrong++ < 5)
			h_fail(__FILE__, __LINE__, "%s filler K=%d: filler fd "
			    "%d, M1 fd %d, M2 fd %d, M3 fd %d (want %d, 1, -1; "
			    "-2: not received)", small ? "small" : "large", k,
			    got[0], got[1], got[2], got[3], nofd ? -1 : 0);
	}
out:
	if (wrong > 0)
		h_fail(__FILE__, __LINE__, "%d filler lengths wrong", wrong);
}

static void
marked_message_without_fd_never_takes_the_next_ones_fd_at_any_cut(void)
{
	fdcut_sweep(1);
}

static void
each_marked_message_gets_its_own_fd_at_any_cut(void)
{
	fdcut_sweep(0);
}

/*
 * A small message written whole, then one with a descriptor: one
 * imsgbuf_write sends it, descriptor and all.  An emptied batch left at
 * the head of the queue must not stop the gather.
 */
static void
fd_message_after_a_sent_message_goes_out_with_one_write(void)
{
	struct chan c;
	unsigned char got[32];
	int fds[2], nfds = 0, fd;

	chan_open(&c, 1);
	CHECK_INT(imsg_compose(&c.a, 1, 0, 0, -1, "hello", 5), ==, 1);
	CHECK_INT(imsgbuf_write(&c.a), ==, 0);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	CHECK_INT(recv_exact(c.sv[1], got, 21, fds, 2, &nfds), ==, 0);
	CHECK_INT(nfds, ==, 0);
	fd = open_file(3);
	CHECK_INT(imsg_compose(&c.a, 2, 0, 0, fd, "x", 1), ==, 1);
	CHECK_INT(imsgbuf_write(&c.a), ==, 0);
	CHECK_UINT(imsgbuf_queuelen(&c.a), ==, 0);
	/* Already in the socket: no second write, no wait. */
	CHECK_INT(recv(c.sv[1], got, sizeof(got), MSG_DONTWAIT | MSG_PEEK),
	    ==, 17);
	CHECK_INT(recv_exact(c.sv[1], got, 17, fds, 2, &nfds), ==, 0);
	CHECK_INT(nfds, ==, 1);
	if (nfds >= 1) {
		CHECK_INT(file_index(fds[0]), ==, 3);
		close(fds[0]);
	}
	CHECK_UINT(hdr_at(got).type, ==, 2);
	CHECK_UINT(hdr_at(got).len, ==, MARK | 17);
	chan_close(&c);
}

/* ibuf_close of an empty ibuf with a descriptor, then data: both go. */
static void
empty_ibuf_with_fd_sends_its_fd_with_the_data_after_it(void)
{
	struct msgbuf *w;
	struct ibuf *e = NULL, *d = NULL;
	unsigned char got[8];
	int sv[2], fds[2], nfds = 0;

	pair(sv);
	if ((w = msgbuf_new()) == NULL || (e = ibuf_open(8)) == NULL ||
	    (d = ibuf_open(8)) == NULL)
		die("msgbuf_new/ibuf_open");
	ibuf_fd_set(e, open_file(2));
	CHECK_INT(ibuf_add(d, "data", 4), ==, 0);
	ibuf_close(w, e);
	ibuf_close(w, d);
	CHECK_UINT(msgbuf_queuelen(w), ==, 2);
	CHECK_INT(msgbuf_write(sv[0], w), ==, 0);
	CHECK_UINT(msgbuf_queuelen(w), ==, 0);
	CHECK_INT(recv_exact(sv[1], got, 4, fds, 2, &nfds), ==, 0);
	CHECK_MEM(got, "data", 4);
	CHECK_INT(nfds, ==, 1);
	if (nfds >= 1) {
		CHECK_INT(file_index(fds[0]), ==, 2);
		close(fds[0]);
	}
	msgbuf_free(w);
	close(sv[0]);
	close(sv[1]);
}

/*
 * A custom reader with 2-byte headers (total length, 1 to claim the
 * descriptor).  The callback records what it was offered.
 */
struct claim_log {
	int	 n;
	int	 offered[4];
};

static struct ibuf *
claim_readhdr(struct ibuf *hdr, void *arg, int *fd)
{
	struct claim_log *log = arg;
	unsigned char *p = ibuf_data(hdr);
	struct ibuf *b;

	if (log->n < 4)
		log->offered[log->n] = *fd;
	log->n++;
	if ((b = ibuf_open(p[0])) == NULL)
		return NULL;
	if (p[1] == 1 && *fd != -1) {
		ibuf_fd_set(b, *fd);
		*fd = -1;
	}
	return b;
}

static void
reader_offers_no_fd_once_a_header_of_the_read_claimed_it(void)
{
	struct claim_log log;
	struct msgbuf *rd;
	struct ibuf *b[2];
	unsigned char rec[8] = { 6, 1, 'b', 'b', 'b', 'b', 'c', 'c' };
	int sv[2], got = 0, i, fd;

	memset(&log, 0, sizeof(log));
	pair(sv);
	if ((rd = msgbuf_new_reader(2, claim_readhdr, &log)) == NULL)
		die("msgbuf_new_reader");
	/* B (6 bytes) claims but comes alone; C (8 bytes) brings file 4. */
	write_all(sv[0], rec, 6);
	rec[0] = 8;
	CHECK_INT(raw_send_bytes(sv[0], rec, 8, open_file(4)), ==, 0);
	CHECK_INT(msgbuf_read(sv[1], rd), ==, 1);
	while (got < 2 && (b[got] = msgbuf_get(rd)) != NULL)
		got++;
	CHECK_INT(got, ==, 2);
	CHECK_INT(log.n, ==, 2);
	CHECK_INT(log.offered[0], >=, 0);
	/* Upstream: once claimed, the next header is offered none. */
	CHECK_INT(log.offered[1], ==, -1);
	if (got == 2) {
		CHECK_UINT(ibuf_size(b[0]), ==, 6);
		CHECK_UINT(ibuf_size(b[1]), ==, 8);
		CHECK(ibuf_fd_avail(b[0]));
		CHECK(!ibuf_fd_avail(b[1]));
		if ((fd = ibuf_fd_get(b[0])) != -1) {
			CHECK_INT(file_index(fd), ==, 4);
			close(fd);
		}
	}
	for (i = 0; i < got; i++)
		ibuf_free(b[i]);
	msgbuf_free(rd);
	close(sv[0]);
	close(sv[1]);
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
	RUN(marked_message_without_fd_never_takes_the_next_ones_fd_at_any_cut);
	RUN(each_marked_message_gets_its_own_fd_at_any_cut);
	RUN(fd_message_after_a_sent_message_goes_out_with_one_write);
	RUN(empty_ibuf_with_fd_sends_its_fd_with_the_data_after_it);
	RUN(reader_offers_no_fd_once_a_header_of_the_read_claimed_it);

	fixture_teardown();
	return h_done();
}
