/*
 * Helpers shared by the socket test programs (test_fdpass, test_imsg,
 * test_stream): a connected pair of imsgbufs, forked peers, bounded
 * waits for messages and for the write queue to drain, raw reads and
 * writes, and wire-format headers.  Include after imsg.h and harness.h.
 * Every function is static; not every program uses every one.
 */
#ifndef LIBIMSG_TESTUTIL_H
#define LIBIMSG_TESTUTIL_H

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

#define TU_UNUSED	__attribute__((unused))

#define MARK	0x80000000U	/* IMSG_FD_MARK, private to the library */

/* Compare a message's payload, failing (not crashing) if it is missing. */
#define CHECK_DATA(m, p, n) do {					\
	if ((m)->data == NULL || (m)->hdr.len < 16 + (size_t)(n))	\
		h_fail(__FILE__, __LINE__, "payload missing or shorter "\
		    "than %zu bytes", (size_t)(n));			\
	else								\
		CHECK_MEM((m)->data, (p), (n));				\
} while (0)


/*
 * A hang must not eat ctest's whole timeout: main arms a 60 s alarm, and
 * every child a 5 s one; both end here.
 */
static TU_UNUSED void
watchdog(int sig)
{
	static const char pre[] = "#   timed out in ";
	const char *name = h_name != NULL ? h_name : "?";

	(void)sig;
	h_kill_children();
	(void)!write(STDOUT_FILENO, pre, sizeof(pre) - 1);
	(void)!write(STDOUT_FILENO, name, strlen(name));
	(void)!write(STDOUT_FILENO, "\n", 1);
	_exit(1);
}

static TU_UNUSED void
die(const char *what)
{
	printf("Bail out! %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(99);
}

static TU_UNUSED void
pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		die("socketpair");
}

static TU_UNUSED int
devnull(void)
{
	int fd;

	if ((fd = open("/dev/null", O_RDONLY)) == -1)
		die("open /dev/null");
	return fd;
}

static TU_UNUSED void
set_nonblock(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		die("fcntl O_NONBLOCK");
}

/* A connected pair of imsgbufs: a on sv[0], b on sv[1]. */
struct chan {
	int		 sv[2];
	struct imsgbuf	 a;
	struct imsgbuf	 b;
};

static TU_UNUSED void
chan_open(struct chan *c, int fdpass)
{
	pair(c->sv);
	if (imsgbuf_init(&c->a, c->sv[0]) == -1 ||
	    imsgbuf_init(&c->b, c->sv[1]) == -1)
		die("imsgbuf_init");
	if (fdpass) {
		imsgbuf_allow_fdpass(&c->a);
		imsgbuf_allow_fdpass(&c->b);
	}
}

static TU_UNUSED pid_t
fork_child(void)
{
	pid_t pid;

	fflush(stdout);
	if ((pid = h_fork()) == -1)
		die("fork");
	if (pid == 0) {
		/* The child reports through its exit status. */
		h_case_failed = 0;
		alarm(5);
	}
	return pid;
}

static TU_UNUSED void __attribute__((noreturn))
child_exit(void)
{
	_exit(h_case_failed ? 1 : 0);
}

static TU_UNUSED void
wait_child_at(pid_t pid, const char *file, int line)
{
	int status;

	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR) {
			h_fail(file, line, "waitpid: %s", strerror(errno));
			return;
		}
	}
	if (WIFSIGNALED(status))
		h_fail(file, line, "child killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		h_fail(file, line, "child exited with status %d",
		    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}
#define WAIT_CHILD(pid)	wait_child_at((pid), __FILE__, __LINE__)

static TU_UNUSED int
wait_readable(int fd, int ms)
{
	struct pollfd pfd;
	int r;

	pfd.fd = fd;
	pfd.events = POLLIN;
	pfd.revents = 0;
	while ((r = poll(&pfd, 1, ms)) == -1 && errno == EINTR)
		;
	return r;
}

/*
 * What next_msg leaves in *imsg when it fails: an empty message that the
 * accessors and imsg_get_fd handle, so a failing case goes on to report
 * instead of crashing on a stale struct.  All stand-ins share one static
 * ibuf (nothing allocated, nothing to leak), which msg_free leaves alone.
 */
static struct ibuf	 fake_ibuf;
static struct ibuf	*const fake_buf = &fake_ibuf;

static TU_UNUSED void
fake_msg(struct imsg *imsg)
{
	memset(imsg, 0, sizeof(*imsg));
	memset(&fake_ibuf, 0, sizeof(fake_ibuf));
	fake_ibuf.fd = -1;
	imsg->buf = fake_buf;
}

/* imsg_free, except for next_msg's shared stand-in. */
static TU_UNUSED void
msg_free(struct imsg *imsg)
{
	if (imsg->buf != fake_buf)
		imsg_free(imsg);
}

/*
 * Fetch the next message, reading (at most 5 s per wait) as needed.
 * 1: *imsg filled; 0: EOF; -1: error (errno) or timeout (ETIMEDOUT).
 * Unless 1, *imsg is an empty stand-in (fake_msg) to be freed as usual.
 */
static TU_UNUSED int
next_msg(struct imsgbuf *ib, struct imsg *imsg)
{
	int r;

	for (;;) {
		if ((r = imsgbuf_get(ib, imsg)) == 1)
			return 1;
		if (r == -1)
			break;
		if ((r = wait_readable(ib->fd, 5000)) <= 0) {
			if (r == 0)
				errno = ETIMEDOUT;
			r = -1;
			break;
		}
		if ((r = imsgbuf_read(ib)) != 1)
			break;
	}
	fake_msg(imsg);
	return r;
}


/*
 * Write ib's queue out, waiting for POLLOUT as needed.  Most cases use
 * this instead of imsgbuf_flush so that a queue that never drains fails
 * the case instead of hanging the program; imsgbuf_flush has cases of
 * its own.  -1 with ETIMEDOUT after 1000 writes in a row that leave the
 * queue length unchanged, or after 5 s.
 */
static TU_UNUSED int
drain(struct imsgbuf *ib)
{
	struct pollfd pfd;
	struct timespec t0, t;
	uint32_t q, stuck = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((q = imsgbuf_queuelen(ib)) > 0) {
		if (imsgbuf_write(ib) == -1)
			return -1;
		stuck = imsgbuf_queuelen(ib) == q ? stuck + 1 : 0;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (stuck > 1000 || t.tv_sec - t0.tv_sec > 5) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.fd = ib->fd;
		pfd.events = POLLOUT;
		pfd.revents = 0;
		(void)poll(&pfd, 1, 10);
	}
	return 0;
}

static TU_UNUSED void
write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	ssize_t r;

	while (n > 0) {
		if ((r = write(fd, s, n)) == -1) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		s += r;
		n -= (size_t)r;
	}
}

/*
 * Read exactly n bytes with recvmsg (5 s limit per wait), collecting any
 * passed descriptors: the first maxfds go to fds[], the rest are closed;
 * *nfds counts them all.  0 on success, -1 on error, EOF or timeout.
 */
static TU_UNUSED int
recv_exact(int fd, void *buf, size_t n, int *fds, int maxfds, int *nfds)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(4 * sizeof(int))];
	} cbuf;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	size_t got = 0, k, cnt;
	ssize_t r;
	int f;

	*nfds = 0;
	while (got < n) {
		if (wait_readable(fd, 5000) <= 0)
			return -1;
		memset(&msg, 0, sizeof(msg));
		memset(&cbuf, 0, sizeof(cbuf));
		iov.iov_base = (char *)buf + got;
		iov.iov_len = n - got;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		if ((r = recvmsg(fd, &msg, 0)) <= 0) {
			if (r == -1 && errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
		for (cm = CMSG_FIRSTHDR(&msg); cm != NULL;
		    cm = CMSG_NXTHDR(&msg, cm)) {
			if (cm->cmsg_level != SOL_SOCKET ||
			    cm->cmsg_type != SCM_RIGHTS)
				continue;
			cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (k = 0; k < cnt; k++) {
				memcpy(&f, CMSG_DATA(cm) + k * sizeof(int),
				    sizeof(int));
				if (*nfds < maxfds)
					fds[*nfds] = f;
				else
					close(f);
				(*nfds)++;
			}
		}
	}
	return 0;
}

static TU_UNUSED struct imsg_hdr
hdr_at(const void *p)
{
	struct imsg_hdr h;

	memcpy(&h, p, sizeof(h));
	return h;
}

static TU_UNUSED void
put_hdr(void *p, uint32_t type, uint32_t len, uint32_t peerid, uint32_t pid)
{
	struct imsg_hdr h;

	h.type = type;
	h.len = len;
	h.peerid = peerid;
	h.pid = pid;
	memcpy(p, &h, sizeof(h));
}

static TU_UNUSED void
fill(unsigned char *p, size_t n, unsigned int seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

#endif /* LIBIMSG_TESTUTIL_H */
