/*
 * Hardening tests over real sockets and forked peers: a full descriptor
 * table, memory a stalled peer can make us hold, signal storms, a peer
 * that goes away, and hostile byte streams written by hand from the wire
 * format (16-byte header of four host-order uint32: type, len, peerid,
 * pid; len counts the header; bit 31 of len marks a message carrying a
 * descriptor).
 *
 * Cases that change process-wide state (rlimits, signal dispositions,
 * interval timers) run in a forked child; the child's checks print their
 * failures and turn into its exit status, which the parent checks.
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "imsg.h"
#include "harness.h"

#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define HAVE_MALLINFO2	1
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL	0
#endif

/* Wire constants, spelled out here: the tests speak the wire themselves. */
#define HDR_SIZE	16
#define FD_MARK		0x80000000U

/* ---------------------------------------------------------------- */
/* Helpers */

static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A number in [0, n). */
static uint32_t
rng_below(uint64_t *s, uint32_t n)
{
	return n == 0 ? 0 : (uint32_t)(rng_next(s) % n);
}

static int
pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		h_fail(__FILE__, __LINE__, "socketpair: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void
set_nonblock(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		h_fail(__FILE__, __LINE__, "O_NONBLOCK: %s", strerror(errno));
}

/* Bytes waiting in a socket's receive queue. */
static size_t
inq(int fd)
{
	int n = 0;

	if (ioctl(fd, FIONREAD, &n) == -1) {
		h_fail(__FILE__, __LINE__, "FIONREAD: %s", strerror(errno));
		return 0;
	}
	return (size_t)n;
}

static void
put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint32_t
get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* A header as any peer writes it: four host-order fields, len at 4. */
static void
put_hdr(unsigned char *p, uint32_t type, uint32_t len, uint32_t peerid,
    uint32_t pid)
{
	put32(p, type);
	put32(p + 4, len);
	put32(p + 8, peerid);
	put32(p + 12, pid);
}

static unsigned char
pattern(uint32_t type, size_t i)
{
	return (unsigned char)(type * 37 + i * 7 + (i >> 8));
}

/* One message with a payload derived from its type; returns its length. */
static size_t
put_msg(unsigned char *p, uint32_t type, size_t paylen, int mark)
{
	uint32_t len = (uint32_t)(HDR_SIZE + paylen);
	size_t i;

	put_hdr(p, type, mark ? len | FD_MARK : len, type ^ 0x5a5a, 4321);
	for (i = 0; i < paylen; i++)
		p[HDR_SIZE + i] = pattern(type, i);
	return len;
}

/*
 * Check that m is the message put_msg(type, paylen) made (mark bit
 * cleared in hdr.len) and return its descriptor, which the caller owns.
 */
static int
check_msg(struct imsg *m, uint32_t type, size_t paylen)
{
	const unsigned char *d = m->data;
	size_t i;

	CHECK_UINT(imsg_get_type(m), ==, type);
	CHECK_UINT(m->hdr.len, ==, HDR_SIZE + paylen);
	CHECK_UINT(imsg_get_id(m), ==, type ^ 0x5a5a);
	CHECK_INT(imsg_get_pid(m), ==, 4321);
	CHECK_UINT(imsg_get_len(m), ==, paylen);
	if (paylen == 0)
		CHECK_PTR(d, ==, NULL);
	else if (d == NULL)
		h_fail(__FILE__, __LINE__, "type %u: no payload", type);
	else
		for (i = 0; i < paylen; i++)
			if (d[i] != pattern(type, i)) {
				h_fail(__FILE__, __LINE__,
				    "type %u: payload byte %zu is %u, want %u",
				    type, i, d[i], pattern(type, i));
				break;
			}
	return imsg_get_fd(m);
}

/* Take the next message, check it, and return its fd (-2: none ready). */
static int
take_msg(struct imsgbuf *ib, uint32_t type, size_t paylen)
{
	struct imsg m;
	int r, fd;

	if ((r = imsgbuf_get(ib, &m)) != 1) {
		h_fail(__FILE__, __LINE__, "imsgbuf_get returned %d, want "
		    "message type %u", r, type);
		return -2;
	}
	fd = check_msg(&m, type, paylen);
	imsg_free(&m);
	return fd;
}

/* One sendmsg of len bytes carrying nfds descriptors (at most 4). */
static ssize_t
send_once(int s, const void *data, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(4 * sizeof(int))];
	} cb;
	struct cmsghdr *cmsg;
	struct msghdr msg;
	struct iovec iov;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)(uintptr_t)data;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		memset(&cb, 0, sizeof(cb));
		msg.msg_control = cb.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
	}
	return sendmsg(s, &msg, MSG_NOSIGNAL);
}

/*
 * Send all bytes, the descriptors in one SCM_RIGHTS message with the
 * first of them, as a hand-written peer would.
 */
static int
send_raw(int s, const void *data, size_t len, const int *fds, int nfds)
{
	const unsigned char *p = data;
	ssize_t n;

	while (len > 0) {
		if ((n = send_once(s, p, len, fds, nfds)) == -1) {
			if (errno == EINTR)
				continue;
			h_fail(__FILE__, __LINE__, "sendmsg: %s",
			    strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
		nfds = 0;
	}
	return 0;
}

/*
 * A descriptor with an identity of its own: the read end of a fresh pipe
 * (every pipe has its own inode).  The write end is closed at once.
 */
static int
make_fd(ino_t *ino)
{
	struct stat st;
	int p[2];

	if (pipe(p) == -1) {
		h_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
		return -1;
	}
	close(p[1]);
	if (fstat(p[0], &st) == -1) {
		h_fail(__FILE__, __LINE__, "fstat: %s", strerror(errno));
		close(p[0]);
		return -1;
	}
	*ino = st.st_ino;
	return p[0];
}

static ino_t
fd_ino(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1) {
		h_fail(__FILE__, __LINE__, "fstat(%d): %s", fd,
		    strerror(errno));
		return 0;
	}
	return st.st_ino;
}

static void
sleep_us(long us)
{
	struct timespec ts;

	ts.tv_sec = us / 1000000;
	ts.tv_nsec = (us % 1000000) * 1000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void
write_byte(int s, char c)
{
	if (send(s, &c, 1, MSG_NOSIGNAL) != 1)
		h_fail(__FILE__, __LINE__, "send: %s", strerror(errno));
}

static int
read_byte(int s)
{
	unsigned char c;
	ssize_t n;

	while ((n = read(s, &c, 1)) == -1 && errno == EINTR)
		;
	return n == 1 ? c : -1;
}

/* End a forked child: its checks become its exit status. */
static void __attribute__((noreturn))
child_exit(void)
{
	fflush(stdout);
	_exit(h_case_failed ? 1 : 0);
}

static pid_t
fork_child(void)
{
	pid_t pid;

	fflush(stdout);
	if ((pid = h_fork()) == -1)
		h_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
	return pid;
}

/* The child must have exited normally with status 0. */
static void
check_child(pid_t pid, const char *what)
{
	pid_t r;
	int status;

	while ((r = waitpid(pid, &status, 0)) == -1 && errno == EINTR)
		;
	if (r != pid) {
		h_fail(__FILE__, __LINE__, "%s: waitpid: %s", what,
		    strerror(errno));
		return;
	}
	if (WIFSIGNALED(status))
		h_fail(__FILE__, __LINE__, "%s: child killed by signal %d (%s)",
		    what, WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		h_fail(__FILE__, __LINE__, "%s: child exited with status %d",
		    what, WEXITSTATUS(status));
}

/*
 * Read (blocking) until n messages have been taken into out; every
 * imsgbuf_read must return 1.  Returns how many were taken.
 */
static int
read_msgs(struct imsgbuf *ib, struct imsg *out, int n, int maxreads)
{
	int got = 0, reads = 0, r;

	for (;;) {
		while (got < n && (r = imsgbuf_get(ib, &out[got])) == 1)
			got++;
		if (got == n)
			break;
		if (++reads > maxreads) {
			h_fail(__FILE__, __LINE__, "%d of %d messages after %d "
			    "reads", got, n, maxreads);
			break;
		}
		if ((r = imsgbuf_read(ib)) != 1) {
			h_fail(__FILE__, __LINE__, "imsgbuf_read returned %d "
			    "(%s) with %d of %d messages", r, strerror(errno),
			    got, n);
			break;
		}
	}
	return got;
}

/* ---------------------------------------------------------------- */
/* 1. A full descriptor table on the receiver */

struct fd_ident {
	uint64_t	dev;
	uint64_t	ino;
};

/* Queue a message carrying a duplicate of fd and, as payload, its identity. */
static void
compose_fd_msg(struct imsgbuf *ib, uint32_t type, int fd)
{
	struct fd_ident id;
	struct stat st;
	int d;

	memset(&id, 0, sizeof(id));
	if (fstat(fd, &st) == 0) {
		id.dev = (uint64_t)st.st_dev;
		id.ino = (uint64_t)st.st_ino;
	}
	if ((d = dup(fd)) == -1) {
		h_fail(__FILE__, __LINE__, "dup: %s", strerror(errno));
		return;
	}
	if (imsg_compose(ib, type, 0, 0, d, &id, sizeof(id)) != 1) {
		h_fail(__FILE__, __LINE__, "imsg_compose: %s", strerror(errno));
		close(d);
	}
}

static void
compose_pattern(struct imsgbuf *ib, uint32_t type, size_t len)
{
	unsigned char buf[8192];
	size_t i;

	for (i = 0; i < len && i < sizeof(buf); i++)
		buf[i] = pattern(type, i);
	if (imsg_compose(ib, type, type ^ 0x5a5a, 4321, -1, buf, len) != 1)
		h_fail(__FILE__, __LINE__, "imsg_compose: %s", strerror(errno));
}

static int
highest_fd(void)
{
	struct rlimit rl;
	int fd, top = -1, lim = 65536;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)lim)
		lim = (int)rl.rlim_cur;
	for (fd = 0; fd < lim; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			top = fd;
	return top;
}

/*
 * Does the kernel really refuse descriptors now?  valgrind, for one,
 * emulates RLIMIT_NOFILE for dup() and open() but lets received rights
 * through, so the premise of the drop check would not hold.
 */
static int
received_fds_are_dropped(int probe[2], int fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} cb;
	struct cmsghdr *cmsg;
	struct msghdr msg;
	struct iovec iov;
	char c;
	int got, dropped = 1;

	if (send_raw(probe[0], "p", 1, &fd, 1) == -1)
		return 0;
	memset(&msg, 0, sizeof(msg));
	memset(&cb, 0, sizeof(cb));
	iov.iov_base = &c;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cb.buf;
	msg.msg_controllen = sizeof(cb.buf);
	if (recvmsg(probe[1], &msg, 0) != 1)
		return 0;
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&msg, cmsg))
		if (cmsg->cmsg_type == SCM_RIGHTS) {
			memcpy(&got, CMSG_DATA(cmsg), sizeof(got));
			close(got);
			dropped = 0;
		}
	return dropped && (msg.msg_flags & MSG_CTRUNC);
}

static void
check_fd_ident(struct imsg *m, int fd)
{
	struct fd_ident id;
	struct stat st;

	if (imsg_get_data(m, &id, sizeof(id)) == -1) {
		h_fail(__FILE__, __LINE__, "imsg_get_data: %s",
		    strerror(errno));
		return;
	}
	if (fstat(fd, &st) == -1) {
		h_fail(__FILE__, __LINE__, "fstat(%d): %s", fd,
		    strerror(errno));
		return;
	}
	CHECK_UINT(st.st_dev, ==, id.dev);
	CHECK_UINT(st.st_ino, ==, id.ino);
}

/* The receiving child: fill the table, read, free slots, read again. */
static void __attribute__((noreturn))
fd_table_receiver(int s)
{
	struct imsgbuf ib;
	struct imsg m[4];
	struct rlimit rl;
	int *fill, nfill = 0, devnull, probe[2], fd, enforced, nfds0, got, i;

	alarm(20);	/* watchdog: a spinning or hanging read kills us */
	if (imsgbuf_init(&ib, s) == -1 ||
	    (devnull = open("/dev/null", O_RDONLY)) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, probe) == -1) {
		h_fail(__FILE__, __LINE__, "setup: %s", strerror(errno));
		child_exit();
	}
	imsgbuf_allow_fdpass(&ib);

	/* A small table with a few free slots, all of them then taken. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		h_fail(__FILE__, __LINE__, "getrlimit: %s", strerror(errno));
		child_exit();
	}
	rl.rlim_cur = (rlim_t)highest_fd() + 1 + 8;
	if (rl.rlim_cur > rl.rlim_max || setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		h_fail(__FILE__, __LINE__, "setrlimit: %s", strerror(errno));
		child_exit();
	}
	if ((fill = calloc(rl.rlim_cur, sizeof(*fill))) == NULL)
		child_exit();
	errno = 0;
	while (nfill < (int)rl.rlim_cur && (fd = dup(devnull)) != -1)
		fill[nfill++] = fd;
	CHECK_INT(errno, ==, EMFILE);
	CHECK_INT(nfill, >=, 8);
	enforced = received_fds_are_dropped(probe, devnull);
	if (!enforced)
		printf("# SKIP descriptor-drop checks: received descriptors "
		    "are not limited by RLIMIT_NOFILE here (valgrind?)\n");
	nfds0 = h_count_fds();

	write_byte(s, 'R');
	got = read_msgs(&ib, m, 4, 16);
	if (got == 4) {
		CHECK_UINT(imsg_get_type(&m[0]), ==, 1);
		CHECK_UINT(imsg_get_len(&m[0]), ==, sizeof(struct fd_ident));
		fd = imsg_get_fd(&m[0]);
		if (enforced)
			CHECK_INT(fd, ==, -1);
		if (fd >= 0)
			close(fd);
		CHECK_INT(imsg_get_fd(&m[0]), ==, -1);
		CHECK_INT(check_msg(&m[1], 2, 300), ==, -1);
		CHECK_INT(check_msg(&m[2], 3, 5000), ==, -1);
		CHECK_INT(check_msg(&m[3], 4, 0), ==, -1);
	}
	for (i = 0; i < got; i++)
		imsg_free(&m[i]);
	if (enforced) {
		/* Nothing was added to the table, and it is still full. */
		CHECK_INT(h_count_fds(), ==, nfds0);
		CHECK_FAIL(dup(devnull), -1, EMFILE);
	}

	/* Room again: the next descriptor must arrive, and be the one sent. */
	for (i = 0; i < 4; i++)
		close(fill[--nfill]);
	write_byte(s, 'S');
	got = read_msgs(&ib, m, 2, 16);
	if (got == 2) {
		CHECK_UINT(imsg_get_type(&m[0]), ==, 5);
		fd = imsg_get_fd(&m[0]);
		CHECK_INT(fd, >=, 0);
		if (fd >= 0) {
			check_fd_ident(&m[0], fd);
			close(fd);
		}
		CHECK_INT(check_msg(&m[1], 6, 10), ==, -1);
	}
	for (i = 0; i < got; i++)
		imsg_free(&m[i]);
	CHECK_INT(imsgbuf_get(&ib, &m[0]), ==, 0);

	imsgbuf_clear(&ib);
	while (nfill > 0)
		close(fill[--nfill]);
	free(fill);
	close(devnull);
	close(probe[0]);
	close(probe[1]);
	close(s);
	child_exit();
}

/* The sending parent: a descriptor and messages, then another descriptor. */
static void
fd_table_sender(struct imsgbuf *ib, int s, int fd1, int fd2)
{
	if (read_byte(s) != 'R') {
		h_fail(__FILE__, __LINE__, "receiver did not get ready");
		return;
	}
	compose_fd_msg(ib, 1, fd1);
	compose_pattern(ib, 2, 300);
	compose_pattern(ib, 3, 5000);
	compose_pattern(ib, 4, 0);
	CHECK_INT(imsgbuf_flush(ib), ==, 0);
	if (read_byte(s) != 'S') {
		h_fail(__FILE__, __LINE__, "receiver did not free slots");
		return;
	}
	compose_fd_msg(ib, 5, fd2);
	compose_pattern(ib, 6, 10);
	CHECK_INT(imsgbuf_flush(ib), ==, 0);
}

static void
full_fd_table_drops_descriptor_but_delivers_messages(void)
{
	struct imsgbuf ib;
	int sv[2], p1[2], p2[2];
	pid_t pid;

	if (pair(sv) == -1)
		return;
	if (pipe(p1) == -1 || pipe(p2) == -1) {
		h_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
		return;
	}
	if ((pid = fork_child()) == 0) {
		close(sv[0]);
		close(p1[0]);
		close(p1[1]);
		close(p2[0]);
		close(p2[1]);
		fd_table_receiver(sv[1]);
	}
	close(sv[1]);
	if (pid != -1 && imsgbuf_init(&ib, sv[0]) == 0) {
		imsgbuf_allow_fdpass(&ib);
		fd_table_sender(&ib, sv[0], p1[0], p2[0]);
		imsgbuf_clear(&ib);
	}
	close(sv[0]);
	if (pid != -1)
		check_child(pid, "descriptor-table receiver");
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
}

/* ---------------------------------------------------------------- */
/* 2. Memory a peer can make us hold */

/* Bytes the allocator has handed out (arena plus mmapped chunks). */
static size_t
heap_in_use(void)
{
#ifdef HAVE_MALLINFO2
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

/*
 * Whether heap_in_use sees allocations at all: ASan and valgrind replace
 * malloc and leave mallinfo2 at zero.
 */
static int
heap_measurable(void)
{
	void *volatile p;
	size_t before = heap_in_use(), after;

	if ((p = malloc(256 * 1024)) == NULL)
		return 0;
	memset(p, 1, 256 * 1024);
	after = heap_in_use();
	free(p);
	return after >= before + 256 * 1024;
}

/* Write what the nonblocking socket takes now; returns the bytes written. */
static size_t
write_some(int s, const unsigned char *p, size_t len)
{
	ssize_t n;

	if ((n = send(s, p, len, MSG_NOSIGNAL)) == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			h_fail(__FILE__, __LINE__, "send: %s", strerror(errno));
		return 0;
	}
	return (size_t)n;
}

static void
stalled_large_message_holds_at_most_maxsize(void)
{
	const size_t slack = 128 * 1024, part = 200 * 1024;
	struct imsgbuf ib;
	struct imsg m;
	unsigned char *msg;
	size_t limit, base, now, peak = 0, off = 0, i;
	int sv[2], measurable, r, reads, stuck;

	if (pair(sv) == -1)
		return;
	set_nonblock(sv[0]);
	set_nonblock(sv[1]);
	measurable = heap_measurable();
	if (!measurable)
		printf("# SKIP heap growth checks: mallinfo2 does not see this "
		    "allocator (sanitizer or valgrind)\n");
	CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
	CHECK_INT(imsgbuf_set_maxsize(&ib, 1 << 20), ==, 0);
	limit = ib.maxsize;
	CHECK_UINT(limit, ==, (1 << 20) + HDR_SIZE);
	if ((msg = malloc(limit)) == NULL)
		goto out;
	put_hdr(msg, 7, (uint32_t)limit, 1, 2);
	for (i = HDR_SIZE; i < limit; i++)
		msg[i] = pattern(7, i);

	/* The header announces the limit; the peer sends part, then stalls. */
	base = heap_in_use();
	for (reads = 0; reads < 400; reads++) {
		if (off < part)
			off += write_some(sv[0], msg + off, part - off);
		errno = 0;
		r = imsgbuf_read(&ib);
		if (r != 1) {
			h_fail(__FILE__, __LINE__, "read %d returned %d (%s)",
			    reads, r, strerror(errno));
			break;
		}
		now = heap_in_use();
		if (now > base && now - base > peak)
			peak = now - base;
	}
	CHECK_UINT(off, ==, part);
	CHECK_UINT(inq(sv[1]), ==, 0);
	CHECK_INT(imsgbuf_get(&ib, &m), ==, 0);
	if (measurable)
		CHECK_UINT(peak, <=, limit + slack);

	/* The rest arrives: one message, intact. */
	for (stuck = 0; off < limit && stuck < 100000; stuck++) {
		off += write_some(sv[0], msg + off, limit - off);
		CHECK_INT(imsgbuf_read(&ib), ==, 1);
	}
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	if (imsgbuf_get(&ib, &m) != 1)
		h_fail(__FILE__, __LINE__, "the large message did not arrive");
	else {
		CHECK_UINT(m.hdr.len, ==, limit);
		CHECK_UINT(imsg_get_len(&m), ==, limit - HDR_SIZE);
		if (imsg_get_len(&m) == limit - HDR_SIZE)
			CHECK_MEM(m.data, msg + HDR_SIZE, limit - HDR_SIZE);
		imsg_free(&m);
	}
	free(msg);
out:
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
}

static void
oversized_header_fails_before_allocating(void)
{
	const uint32_t maxpay = 1 << 20;
	const uint32_t lens[] = { maxpay + HDR_SIZE + 1, 0x7fffffff,
	    0xffffffff, FD_MARK | (maxpay + HDR_SIZE + 1) };
	unsigned char buf[HDR_SIZE + 512];
	struct imsgbuf ib;
	struct imsg m;
	size_t base, after;
	int sv[2], measurable = heap_measurable();
	unsigned i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		if (pair(sv) == -1)
			return;
		set_nonblock(sv[1]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		CHECK_INT(imsgbuf_set_maxsize(&ib, maxpay), ==, 0);
		memset(buf, 0xa5, sizeof(buf));
		put_hdr(buf, 9, lens[i], 0, 0);
		CHECK_INT(send_raw(sv[0], buf, sizeof(buf), NULL, 0), ==, 0);

		base = heap_in_use();
		CHECK_FAIL(imsgbuf_read(&ib), -1, ERANGE);
		after = heap_in_use();
		if (measurable && after > base)
			h_fail(__FILE__, __LINE__, "len %#x: heap grew by %zu "
			    "bytes", lens[i], after - base);
		CHECK_FAIL(imsgbuf_read(&ib), -1, ERANGE);
		CHECK_INT(imsgbuf_get(&ib, &m), ==, 0);
		imsgbuf_clear(&ib);
		close(sv[0]);
		close(sv[1]);
	}
}

static void
tiny_messages_in_one_read_all_delivered(void)
{
	static unsigned char buf[61000];
	static size_t ends[4000];
	struct imsgbuf ib;
	struct imsg m;
	uint64_t seed = 42;
	size_t len = 0, consumed, last, paylen;
	int sv[2], n = 0, want, got = 0, fd, reads;

	/* 16 to 40 bytes each, then the first 9 bytes of one more. */
	while (len + HDR_SIZE + 24 + 20 <= 60000) {
		paylen = rng_below(&seed, 25);
		len += put_msg(buf + len, (uint32_t)n, paylen, 0);
		ends[n++] = len;
	}
	last = put_msg(buf + len, (uint32_t)n, 4, 0);
	if (pair(sv) == -1)
		return;
	set_nonblock(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
	CHECK_INT(send_raw(sv[0], buf, len + 9, NULL, 0), ==, 0);

	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	consumed = len + 9 - inq(sv[1]);
	/* As many messages as the bytes read hold whole, and no more. */
	for (want = 0; want < n && ends[want] <= consumed; want++)
		;
	CHECK_INT(want, >=, 1);
	seed = 42;
	while (imsgbuf_get(&ib, &m) == 1) {
		paylen = rng_below(&seed, 25);
		if (got < n) {
			fd = check_msg(&m, (uint32_t)got, paylen);
			CHECK_INT(fd, ==, -1);
		}
		got++;
		imsg_free(&m);
	}
	CHECK_INT(got, ==, want);

	/* The rest of the stream, then the tail of the last message. */
	for (reads = 0; got < n && reads < 100; reads++) {
		CHECK_INT(imsgbuf_read(&ib), ==, 1);
		while (got < n && imsgbuf_get(&ib, &m) == 1) {
			paylen = rng_below(&seed, 25);
			CHECK_INT(check_msg(&m, (uint32_t)got, paylen), ==, -1);
			imsg_free(&m);
			got++;
		}
	}
	CHECK_INT(got, ==, n);
	CHECK_INT(imsgbuf_get(&ib, &m), ==, 0);
	CHECK_INT(send_raw(sv[0], buf + len + 9, last - 9, NULL, 0), ==, 0);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK_INT(take_msg(&ib, (uint32_t)n, 4), ==, -1);
	CHECK_INT(imsgbuf_get(&ib, &m), ==, 0);
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
}

/* ---------------------------------------------------------------- */
/* 3. Signal storms: every blocking call interrupted again and again */

static volatile sig_atomic_t	 storm_signals;
static time_t			 storm_deadline;	/* CLOCK_MONOTONIC */
static struct sigaction		 storm_oldact;

static void
storm_handler(int sig)
{
	static const char msg[] = "# watchdog: signal storm case is stuck\n";
	struct timespec now;
	int saved_errno = errno;

	(void)sig;
	storm_signals++;
	if (clock_gettime(CLOCK_MONOTONIC, &now) == 0 &&
	    now.tv_sec >= storm_deadline) {
		if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) == -1) {
			/* nothing more to do */
		}
		_exit(99);
	}
	errno = saved_errno;
}

/* SIGALRM every usec microseconds, without SA_RESTART. */
static void
storm_start(long usec, int seconds)
{
	struct itimerval it;
	struct sigaction sa;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	storm_deadline = now.tv_sec + seconds;
	storm_signals = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = storm_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: blocking calls get EINTR */
	if (sigaction(SIGALRM, &sa, &storm_oldact) == -1)
		h_fail(__FILE__, __LINE__, "sigaction: %s", strerror(errno));
	memset(&it, 0, sizeof(it));
	it.it_interval.tv_usec = usec;
	it.it_value.tv_usec = usec;
	if (setitimer(ITIMER_REAL, &it, NULL) == -1)
		h_fail(__FILE__, __LINE__, "setitimer: %s", strerror(errno));
}

static void
storm_stop(void)
{
	struct itimerval it;
	struct sigaction ign;

	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	/* Ignoring discards a signal still pending; then restore. */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGALRM, &ign, NULL);
	sigaction(SIGALRM, &storm_oldact, NULL);
}

/* The premise: with the storm on, a blocking read really gets EINTR. */
static void
check_storm_interrupts(void)
{
	char c;
	int p[2];

	if (pipe(p) == -1) {
		h_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
		return;
	}
	CHECK_FAIL(read(p[0], &c, 1), -1, EINTR);
	close(p[0]);
	close(p[1]);
}

#define STORM_MSGS	20000
#define STORM_MAXPAY	20000

/*
 * Mostly small payloads, one in eight anywhere up to STORM_MAXPAY: the
 * whole range is covered while the case stays fast enough for valgrind
 * (uniform sizes move 200 MB, which takes over a minute there).
 */
static size_t
storm_size(uint32_t seq)
{
	uint64_t s = (uint64_t)seq * 0x2545f4914f6cdd1dULL + 1;
	uint64_t r = rng_next(&s);

	if (r % 8 == 0)
		return (size_t)((r >> 8) % (STORM_MAXPAY + 1));
	return (size_t)((r >> 8) % 2049);
}

static void
storm_fill(uint32_t seq, unsigned char *p, size_t len)
{
	uint64_t s = (uint64_t)seq ^ 0xfeedfacecafebeefULL, w = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (i % 8 == 0)
			w = rng_next(&s);
		p[i] = (unsigned char)(w >> (8 * (i % 8)));
	}
}

/* FNV-1a: the checksum the sender puts in peerid. */
static uint32_t
checksum(const unsigned char *p, size_t len)
{
	uint32_t h = 2166136261U;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619U;
	return h;
}

/*
 * Check that m is message seq of the storm: nothing lost, duplicated,
 * reordered or corrupted.  Returns 0 on a mismatch.
 */
static int
storm_check(struct imsg *m, uint32_t seq, unsigned char *expect)
{
	size_t len = storm_size(seq);

	if (imsg_get_type(m) != seq) {
		h_fail(__FILE__, __LINE__, "got message %u, want %u",
		    imsg_get_type(m), seq);
		return 0;
	}
	if (imsg_get_len(m) != len) {
		h_fail(__FILE__, __LINE__, "message %u: %zu bytes, want %zu",
		    seq, imsg_get_len(m), len);
		return 0;
	}
	storm_fill(seq, expect, len);
	if (len > 0 && memcmp(m->data, expect, len) != 0) {
		h_fail(__FILE__, __LINE__, "message %u: payload differs", seq);
		return 0;
	}
	if (imsg_get_id(m) != checksum(expect, len)) {
		h_fail(__FILE__, __LINE__, "message %u: checksum %#x, want %#x",
		    seq, imsg_get_id(m), checksum(expect, len));
		return 0;
	}
	return 1;
}

/*
 * Read nmsg storm messages from a blocking socket, then EOF.  Every
 * imsgbuf_read must return 1 (EINTR retried inside the library) until
 * the peer closes.  Returns the number of reads that made no progress.
 */
static int
storm_receive(int s, int nmsg)
{
	static unsigned char expect[STORM_MAXPAY];
	struct imsgbuf ib;
	struct imsg m;
	uint32_t seq = 0;
	int r, ok = 1, idle = 0, before;

	if (imsgbuf_init(&ib, s) == -1) {
		h_fail(__FILE__, __LINE__, "imsgbuf_init: %s", strerror(errno));
		return 0;
	}
	CHECK_INT(imsgbuf_set_maxsize(&ib, STORM_MAXPAY), ==, 0);
	while (ok && seq < (uint32_t)nmsg) {
		errno = 0;
		if ((r = imsgbuf_read(&ib)) != 1) {
			h_fail(__FILE__, __LINE__, "imsgbuf_read returned %d "
			    "(%s) after %u messages", r, strerror(errno), seq);
			break;
		}
		before = (int)seq;
		while (ok && (r = imsgbuf_get(&ib, &m)) == 1) {
			ok = storm_check(&m, seq++, expect);
			imsg_free(&m);
		}
		if ((int)seq == before)
			idle++;
	}
	if (ok && seq == (uint32_t)nmsg) {
		/* The writer closes after the last one: EOF, nothing more. */
		CHECK_INT(imsgbuf_read(&ib), ==, 0);
		CHECK_INT(imsgbuf_get(&ib, &m), ==, 0);
	}
	imsgbuf_clear(&ib);
	return idle;
}

static void
signal_storm_loses_no_message(void)
{
	static unsigned char buf[STORM_MAXPAY];
	struct imsgbuf ib;
	size_t len;
	uint32_t seq;
	int sv[2], sndbuf = 4096;
	pid_t pid;

	if (pair(sv) == -1)
		return;
	if ((pid = fork_child()) == 0) {
		close(sv[0]);
		storm_start(150, 60);
		check_storm_interrupts();
		storm_receive(sv[1], STORM_MSGS);
		storm_stop();
		printf("# reader took %d signals\n", (int)storm_signals);
		CHECK_INT(storm_signals, >, 0);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	if (pid == -1) {
		close(sv[0]);
		return;
	}
	CHECK_INT(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf)), ==, 0);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	CHECK_INT(imsgbuf_set_maxsize(&ib, STORM_MAXPAY), ==, 0);
	storm_start(150, 60);
	check_storm_interrupts();
	for (seq = 0; seq < STORM_MSGS; seq++) {
		len = storm_size(seq);
		storm_fill(seq, buf, len);
		if (imsg_compose(&ib, seq, checksum(buf, len), 0, -1, buf,
		    len) != 1) {
			h_fail(__FILE__, __LINE__, "imsg_compose %u: %s", seq,
			    strerror(errno));
			break;
		}
		if ((seq % 32 == 31 || seq == STORM_MSGS - 1) &&
		    imsgbuf_flush(&ib) == -1) {
			h_fail(__FILE__, __LINE__, "imsgbuf_flush at %u: %s",
			    seq, strerror(errno));
			break;
		}
	}
	storm_stop();
	printf("# writer took %d signals\n", (int)storm_signals);
	CHECK_INT(storm_signals, >, 0);
	imsgbuf_clear(&ib);
	close(sv[0]);
	check_child(pid, "storm reader");
}

static void
blocked_reader_retries_after_eintr(void)
{
	static unsigned char buf[STORM_MAXPAY];
	const int nmsg = 100;
	struct imsgbuf ib;
	size_t len;
	uint32_t seq;
	int sv[2], idle;
	pid_t pid;

	if (pair(sv) == -1)
		return;
	if ((pid = fork_child()) == 0) {
		close(sv[0]);
		storm_start(150, 60);
		idle = storm_receive(sv[1], nmsg);
		storm_stop();
		/*
		 * The reader spent most of its time blocked in recvmsg with
		 * signals arriving; a read that gave up on EINTR would show
		 * up as a read without a message.
		 */
		printf("# blocked reader took %d signals\n",
		    (int)storm_signals);
		CHECK_INT(storm_signals, >=, 50);
		CHECK_INT(idle, <=, 5);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	if (pid == -1) {
		close(sv[0]);
		return;
	}
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	CHECK_INT(imsgbuf_set_maxsize(&ib, STORM_MAXPAY), ==, 0);
	/* One message at a time, the reader blocked in between. */
	for (seq = 0; seq < (uint32_t)nmsg; seq++) {
		sleep_us(2000);
		len = storm_size(seq);
		storm_fill(seq, buf, len);
		if (imsg_compose(&ib, seq, checksum(buf, len), 0, -1, buf,
		    len) != 1 || imsgbuf_flush(&ib) == -1) {
			h_fail(__FILE__, __LINE__, "send %u: %s", seq,
			    strerror(errno));
			break;
		}
	}
	imsgbuf_clear(&ib);
	close(sv[0]);
	check_child(pid, "blocked reader");
}

/* ---------------------------------------------------------------- */
/* 4. A peer that goes away: EPIPE, never SIGPIPE */

#define CHECK_PEER_GONE(call) do {					\
	int h_r, h_e;							\
	errno = 0;							\
	h_r = (call);							\
	h_e = errno;							\
	if (h_r != -1 || (h_e != EPIPE && h_e != ECONNRESET))		\
		h_fail(__FILE__, __LINE__, "%s: returned %d errno %d (%s), "\
		    "want -1 EPIPE or ECONNRESET", #call, h_r, h_e,	\
		    strerror(h_e));					\
} while (0)

static void
sigpipe_default(void)
{
	struct sigaction sa;
	sigset_t set;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static void
closed_peer_write(int fdpass)
{
	struct imsgbuf ib;
	int sv[2], n0, devnull;

	if (pair(sv) == -1)
		return;
	close(sv[1]);
	n0 = h_count_fds();
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	if (fdpass) {
		imsgbuf_allow_fdpass(&ib);
		if ((devnull = open("/dev/null", O_RDONLY)) == -1)
			h_fail(__FILE__, __LINE__, "open: %s", strerror(errno));
		else
			CHECK_INT(imsg_compose(&ib, 1, 0, 0, devnull, "x", 1),
			    ==, 1);
	}
	CHECK_INT(imsg_compose(&ib, 2, 0, 0, -1, "hello", 5), ==, 1);
	CHECK_PEER_GONE(imsgbuf_flush(&ib));
	CHECK_PEER_GONE(imsgbuf_write(&ib));
	CHECK_PEER_GONE(imsgbuf_flush(&ib));
	imsgbuf_clear(&ib);
	/* The queued descriptor is closed; the socket is the caller's. */
	CHECK_INT(h_count_fds(), ==, n0);
	CHECK(h_fd_is_open(sv[0]));
	close(sv[0]);
}

static void
closed_peer_gives_epipe_not_sigpipe(void)
{
	pid_t pid;

	if ((pid = fork_child()) == 0) {
		alarm(20);
		sigpipe_default();
		closed_peer_write(0);
		closed_peer_write(1);
		child_exit();
	}
	if (pid != -1)
		check_child(pid, "writer to a closed peer");
}

static void
peer_exit_during_flush_gives_epipe(void)
{
	static unsigned char big[16000];
	struct imsgbuf ib;
	struct imsg m;
	int sv[2], i;
	pid_t pid, peer;

	if ((pid = fork_child()) != 0) {
		if (pid != -1)
			check_child(pid, "writer whose peer exits");
		return;
	}
	alarm(20);
	sigpipe_default();
	if (pair(sv) == -1)
		child_exit();
	if ((peer = fork_child()) == 0) {
		/* Read one message, then go away with the rest unread. */
		close(sv[0]);
		if (imsgbuf_init(&ib, sv[1]) == 0) {
			if (read_msgs(&ib, &m, 1, 100) == 1)
				imsg_free(&m);
			imsgbuf_clear(&ib);
		}
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	for (i = 0; i < 256; i++)
		CHECK_INT(imsg_compose(&ib, (uint32_t)i, 0, 0, -1, big,
		    sizeof(big)), ==, 1);
	CHECK_PEER_GONE(imsgbuf_flush(&ib));
	CHECK_INT(imsgbuf_queuelen(&ib), >, 0);
	CHECK_PEER_GONE(imsgbuf_write(&ib));
	imsgbuf_clear(&ib);
	close(sv[0]);
	if (peer != -1)
		check_child(peer, "peer");
	child_exit();
}

/*
 * The same on a pipe whose reader has gone: writev has no MSG_NOSIGNAL,
 * yet every write function must give EPIPE, leave the thread's signal
 * mask as it found it, and neither raise a SIGPIPE nor eat one that the
 * program had pending.  Each runs in a child with SIGPIPE at SIG_DFL, so
 * a SIGPIPE kills it and the parent sees the signal.
 */
static int
dead_pipe(void)
{
	int p[2];

	if (pipe(p) == -1) {
		h_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
		return -1;
	}
	close(p[0]);
	return p[1];
}

/* One write call of each kind on a fresh dead pipe; each must be EPIPE. */
static void
dead_pipe_writes(void)
{
	struct imsgbuf ib;
	struct msgbuf *w;
	struct ibuf *b;
	int fd, fdpass, raw;

	for (fdpass = 0; fdpass < 2; fdpass++) {
		if ((fd = dead_pipe()) == -1)
			return;
		CHECK_INT(imsgbuf_init(&ib, fd), ==, 0);
		if (fdpass)
			imsgbuf_allow_fdpass(&ib);
		CHECK_INT(imsg_compose(&ib, 1, 0, 0, -1, "hello", 5), ==, 1);
		CHECK_FAIL(imsgbuf_write(&ib), -1, EPIPE);
		CHECK_FAIL(imsgbuf_flush(&ib), -1, EPIPE);
		imsgbuf_clear(&ib);
		close(fd);
	}
	for (raw = 0; raw < 2; raw++) {
		if ((fd = dead_pipe()) == -1)
			return;
		if ((w = msgbuf_new()) == NULL || (b = ibuf_open(4)) == NULL) {
			h_fail(__FILE__, __LINE__, "msgbuf_new/ibuf_open");
			close(fd);
			msgbuf_free(w);
			return;
		}
		CHECK_INT(ibuf_add(b, "data", 4), ==, 0);
		ibuf_close(w, b);
		if (raw)
			CHECK_FAIL(ibuf_write(fd, w), -1, EPIPE);
		else
			CHECK_FAIL(msgbuf_write(fd, w), -1, EPIPE);
		CHECK_UINT(msgbuf_queuelen(w), ==, 1);
		msgbuf_free(w);
		close(fd);
	}
}

static int
sigpipe_is_pending(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigpending(&set);
	return sigismember(&set, SIGPIPE);
}

/* Every signal's blocked state in the two masks is the same. */
static int
same_mask(const sigset_t *a, const sigset_t *b)
{
	int sig;

	for (sig = 1; sig < NSIG; sig++)
		if (sigismember(a, sig) != sigismember(b, sig))
			return 0;
	return 1;
}

static void
pipe_without_reader_gives_epipe_not_sigpipe(void)
{
	pid_t pid;

	if ((pid = fork_child()) == 0) {
		alarm(20);
		sigpipe_default();
		dead_pipe_writes();
		CHECK(!sigpipe_is_pending());
		child_exit();
	}
	if (pid != -1)
		check_child(pid, "writer to a pipe without reader");
}

static void
pipe_write_leaves_the_signal_mask_unchanged(void)
{
	sigset_t set, before, after;
	pid_t pid;

	if ((pid = fork_child()) == 0) {
		alarm(20);
		sigpipe_default();
		/* Something blocked, SIGPIPE not: both must stay so. */
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigaddset(&set, SIGHUP);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		pthread_sigmask(SIG_SETMASK, NULL, &before);
		dead_pipe_writes();
		pthread_sigmask(SIG_SETMASK, NULL, &after);
		CHECK(same_mask(&before, &after));
		CHECK(!sigismember(&after, SIGPIPE));
		CHECK(sigismember(&after, SIGUSR1));
		child_exit();
	}
	if (pid != -1)
		check_child(pid, "mask around writes to a dead pipe");
}

static volatile sig_atomic_t sigpipe_seen;

static void
count_sigpipe(int sig)
{
	(void)sig;
	sigpipe_seen++;
}

/*
 * A SIGPIPE the program blocked and has pending is its own: the write
 * must leave it pending (and raise none of its own, which would be
 * merged with it and go unseen, so a blocked but not pending SIGPIPE
 * must not be pending afterwards either).
 */
static void
pending_sigpipe_stays_pending_across_pipe_writes(void)
{
	struct sigaction sa;
	sigset_t set, after;
	pid_t pid;

	if ((pid = fork_child()) == 0) {
		alarm(20);
		sigpipe_default();
		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		/* Blocked, not pending: the writes leave none behind. */
		dead_pipe_writes();
		CHECK(!sigpipe_is_pending());
		/* Blocked and pending: it is still there afterwards. */
		raise(SIGPIPE);
		CHECK(sigpipe_is_pending());
		dead_pipe_writes();
		CHECK(sigpipe_is_pending());
		pthread_sigmask(SIG_SETMASK, NULL, &after);
		CHECK(sigismember(&after, SIGPIPE));
		/* Delivered once, when the program unblocks it. */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = count_sigpipe;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGPIPE, &sa, NULL);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		CHECK_INT(sigpipe_seen, ==, 1);
		child_exit();
	}
	if (pid != -1)
		check_child(pid, "pending SIGPIPE across writes to a dead pipe");
}

/* ---------------------------------------------------------------- */
/* 5. Hostile streams written by hand */

/* A reader imsgbuf with fd passing on, and the raw end for the peer. */
struct hostile {
	int		 wr;
	int		 rd;
	struct imsgbuf	 ib;
};

/* hostile_open: keep the default limit (MAX_IMSGSIZE in all). */
#define DEFAULT_MAX	UINT32_MAX

static int
hostile_open(struct hostile *h, uint32_t maxpay)
{
	int sv[2];

	if (pair(sv) == -1)
		return -1;
	h->wr = sv[0];
	h->rd = sv[1];
	set_nonblock(h->rd);
	if (imsgbuf_init(&h->ib, h->rd) == -1) {
		h_fail(__FILE__, __LINE__, "imsgbuf_init: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	imsgbuf_allow_fdpass(&h->ib);
	if (maxpay != DEFAULT_MAX)
		CHECK_INT(imsgbuf_set_maxsize(&h->ib, maxpay), ==, 0);
	return 0;
}

static void
hostile_close(struct hostile *h)
{
	imsgbuf_clear(&h->ib);
	if (h->wr != -1)
		close(h->wr);
	close(h->rd);
}

/* Send len bytes carrying nfds fresh descriptors; returns the first's inode. */
static ino_t
send_with_fds(int s, const void *p, size_t len, int nfds)
{
	ino_t ino[4] = { 0, 0, 0, 0 };
	int fds[4] = { -1, -1, -1, -1 }, i;

	for (i = 0; i < nfds; i++)
		if ((fds[i] = make_fd(&ino[i])) == -1)
			nfds = i;
	send_raw(s, p, len, fds, nfds);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return ino[0];
}

static void
fd_on_unmarked_message_is_closed(void)
{
	unsigned char buf[256];
	struct hostile h;
	size_t len;
	int n0;

	if (hostile_open(&h, DEFAULT_MAX) == -1)
		return;
	n0 = h_count_fds();
	len = put_msg(buf, 1, 10, 0);
	send_with_fds(h.wr, buf, len, 1);
	CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
	CHECK_INT(h_count_fds(), ==, n0);
	CHECK_INT(take_msg(&h.ib, 1, 10), ==, -1);

	/* Two unmarked messages in one send with two descriptors. */
	len = put_msg(buf, 2, 0, 0);
	len += put_msg(buf + len, 3, 20, 0);
	send_with_fds(h.wr, buf, len, 2);
	CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
	CHECK_INT(h_count_fds(), ==, n0);
	CHECK_INT(take_msg(&h.ib, 2, 0), ==, -1);
	CHECK_INT(take_msg(&h.ib, 3, 20), ==, -1);
	hostile_close(&h);
}

static void
extra_fds_in_one_sendmsg_are_closed(void)
{
	unsigned char buf[64];
	struct hostile h;
	ino_t ino;
	size_t len;
	int n0, nfds, fd;

	for (nfds = 2; nfds <= 4; nfds++) {
		if (hostile_open(&h, DEFAULT_MAX) == -1)
			return;
		n0 = h_count_fds();
		len = put_msg(buf, 1, 8, 1);
		ino = send_with_fds(h.wr, buf, len, nfds);
		CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
		/* One kept, attached to the message; the others closed. */
		CHECK_INT(h_count_fds(), ==, n0 + 1);
		fd = take_msg(&h.ib, 1, 8);
		CHECK_INT(fd, >=, 0);
		if (fd >= 0) {
			CHECK_UINT(fd_ino(fd), ==, ino);
			close(fd);
		}
		CHECK_INT(h_count_fds(), ==, n0);
		hostile_close(&h);
	}
}

static void
mark_without_fd_gives_no_fd(void)
{
	unsigned char buf[64];
	struct hostile h;
	ino_t ino;
	size_t len;
	int n0, fd;

	if (hostile_open(&h, DEFAULT_MAX) == -1)
		return;
	n0 = h_count_fds();
	len = put_msg(buf, 1, 4, 1);
	CHECK_INT(send_raw(h.wr, buf, len, NULL, 0), ==, 0);
	CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
	CHECK_INT(take_msg(&h.ib, 1, 4), ==, -1);

	/* The next marked message, sent with its descriptor, gets it. */
	len = put_msg(buf, 2, 4, 1);
	ino = send_with_fds(h.wr, buf, len, 1);
	CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
	fd = take_msg(&h.ib, 2, 4);
	CHECK_INT(fd, >=, 0);
	if (fd >= 0) {
		CHECK_UINT(fd_ino(fd), ==, ino);
		close(fd);
	}
	CHECK_INT(h_count_fds(), ==, n0);
	hostile_close(&h);
}

/*
 * A marked header without a descriptor of its own (its descriptor was
 * dropped, or the peer does not pass any) must not take the descriptor
 * of the marked message after it, even when both arrive in one read.
 */
static void
earlier_mark_without_fd_does_not_take_it(void)
{
	unsigned char buf[128];
	struct hostile h;
	ino_t ino;
	size_t a, b;
	int n0, fd, tries;

	if (hostile_open(&h, DEFAULT_MAX) == -1)
		return;
	n0 = h_count_fds();
	a = put_msg(buf, 1, 10, 1);
	b = put_msg(buf + a, 2, 20, 1);
	CHECK_INT(send_raw(h.wr, buf, a, NULL, 0), ==, 0);
	ino = send_with_fds(h.wr, buf + a, b, 1);
	for (tries = 0; inq(h.rd) > 0 && tries < 10; tries++)
		CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
	fd = take_msg(&h.ib, 1, 10);
	CHECK_INT(fd, ==, -1);
	if (fd >= 0)
		close(fd);
	fd = take_msg(&h.ib, 2, 20);
	CHECK_INT(fd, >=, 0);
	if (fd >= 0) {
		CHECK_UINT(fd_ino(fd), ==, ino);
		close(fd);
	}
	CHECK_INT(h_count_fds(), ==, n0);
	hostile_close(&h);
}

/*
 * The descriptor arrives with a later read than the one that started
 * the marked message's header (split at cut), so it is not that
 * message's: it must be closed, not attached.
 */
static void
fd_after_header_start_not_attached(size_t before, size_t cut, size_t paylen)
{
	static unsigned char buf[HDR_SIZE * 2 + 200000];
	struct hostile h;
	struct imsg m;
	size_t len;
	int n0, r, tries;

	if (hostile_open(&h, 200000) == -1)
		return;
	n0 = h_count_fds();
	len = before > 0 ? put_msg(buf, 1, before - HDR_SIZE, 0) : 0;
	len += put_msg(buf + len, 2, paylen, 1);
	CHECK_INT(send_raw(h.wr, buf, cut, NULL, 0), ==, 0);
	/* Let the reader take everything sent so far. */
	for (tries = 0; inq(h.rd) > 0 && tries < 100; tries++)
		CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
	CHECK_UINT(inq(h.rd), ==, 0);
	if (before > 0 && cut >= before)
		CHECK_INT(take_msg(&h.ib, 1, before - HDR_SIZE), ==, -1);
	CHECK_INT(imsgbuf_get(&h.ib, &m), ==, 0);

	send_with_fds(h.wr, buf + cut, len - cut, 1);
	for (tries = 0; tries < 100; tries++) {
		if ((r = imsgbuf_read(&h.ib)) != 1) {
			h_fail(__FILE__, __LINE__, "read returned %d", r);
			break;
		}
		if (inq(h.rd) == 0)
			break;
	}
	if (before > 0 && cut < before)
		CHECK_INT(take_msg(&h.ib, 1, before - HDR_SIZE), ==, -1);
	CHECK_INT(take_msg(&h.ib, 2, paylen), ==, -1);
	CHECK_INT(imsgbuf_get(&h.ib, &m), ==, 0);
	CHECK_INT(h_count_fds(), ==, n0);
	hostile_close(&h);
}

static void
fd_never_goes_to_header_from_earlier_read(void)
{
	/* Header split in the middle; alone, and after a whole message. */
	fd_after_header_start_not_attached(0, 8, 30);
	fd_after_header_start_not_attached(0, 1, 0);
	fd_after_header_start_not_attached(0, 15, 5);
	fd_after_header_start_not_attached(40, 48, 30);
	/* Whole header earlier, the descriptor comes with the body. */
	fd_after_header_start_not_attached(0, 16, 30);
	fd_after_header_start_not_attached(0, 100, 150000);
	fd_after_header_start_not_attached(40, 40 + 70000, 150000);
}

/*
 * The legitimate counterpart: a large message is still being read when
 * the next marked message arrives with its descriptor.  It must get it.
 */
static void
fd_of_next_message_survives_large_body(void)
{
	static unsigned char buf[150100];
	struct hostile h;
	ino_t ino;
	size_t a, b, cut = 50000;
	int n0, fd, tries;

	if (hostile_open(&h, 150000) == -1)
		return;
	n0 = h_count_fds();
	a = put_msg(buf, 1, 150000 - HDR_SIZE, 0);
	b = put_msg(buf + a, 2, 24, 1);
	CHECK_INT(send_raw(h.wr, buf, cut, NULL, 0), ==, 0);
	for (tries = 0; inq(h.rd) > 0 && tries < 100; tries++)
		CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
	CHECK_INT(send_raw(h.wr, buf + cut, a - cut, NULL, 0), ==, 0);
	ino = send_with_fds(h.wr, buf + a, b, 1);
	for (tries = 0; inq(h.rd) > 0 && tries < 100; tries++)
		CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
	CHECK_INT(take_msg(&h.ib, 1, 150000 - HDR_SIZE), ==, -1);
	fd = take_msg(&h.ib, 2, 24);
	CHECK_INT(fd, >=, 0);
	if (fd >= 0) {
		CHECK_UINT(fd_ino(fd), ==, ino);
		close(fd);
	}
	CHECK_INT(h_count_fds(), ==, n0);
	hostile_close(&h);
}

/* A whole message, then b's first cut bytes and EOF. */
static void
eof_after(size_t bpay, size_t cut, int with_fd)
{
	static unsigned char buf[HDR_SIZE * 2 + 100 + 100000];
	struct hostile h;
	struct imsg m;
	size_t a;
	int n0, r = 1, reads;

	n0 = h_count_fds();
	if (hostile_open(&h, 100000) == -1)
		return;
	a = put_msg(buf, 1, 100, 0);
	put_msg(buf + a, 2, bpay, with_fd);
	CHECK_INT(send_raw(h.wr, buf, a, NULL, 0), ==, 0);
	send_with_fds(h.wr, buf + a, cut, with_fd);
	close(h.wr);
	h.wr = -1;
	for (reads = 0; reads < 1000; reads++)
		if ((r = imsgbuf_read(&h.ib)) != 1)
			break;
	CHECK_INT(r, ==, 0);
	CHECK_INT(take_msg(&h.ib, 1, 100), ==, -1);
	CHECK_INT(imsgbuf_get(&h.ib, &m), ==, 0);
	CHECK_INT(imsgbuf_read(&h.ib), ==, 0);
	CHECK_INT(imsgbuf_get(&h.ib, &m), ==, 0);
	/*
	 * A partial message keeps its descriptor until imsgbuf_clear, the
	 * one call left after EOF; then nothing may remain.
	 */
	hostile_close(&h);
	if (h_count_fds() != n0)
		h_fail(__FILE__, __LINE__, "eof_after(%zu, %zu, %d): %d fds, "
		    "want %d", bpay, cut, with_fd, h_count_fds(), n0);
}

static void
eof_mid_message_delivers_nothing_partial(void)
{
	eof_after(40, 10, 0);		/* mid-header */
	eof_after(40, 10, 1);
	eof_after(40, 1, 0);
	eof_after(40, 15, 1);
	eof_after(40, 16, 0);		/* header only */
	eof_after(40, 30, 1);		/* mid-body */
	eof_after(40, 55, 0);		/* one byte short */
	eof_after(100000, 70000, 1);	/* mid-body beyond the read buffer */
}

/* Good messages, then a header with a bad length: ERANGE, sticky. */
static void
bad_length(uint32_t badlen, int separate)
{
	unsigned char buf[3000];
	struct hostile h;
	struct imsg m;
	size_t len = 0, good;
	int n0;

	if (hostile_open(&h, 1000) == -1)
		return;
	CHECK_UINT(h.ib.maxsize, ==, 1000 + HDR_SIZE);
	n0 = h_count_fds();
	len += put_msg(buf, 1, 5, 0);
	len += put_msg(buf + len, 2, 1000, 1);	/* exactly the limit */
	good = len;
	put_hdr(buf + len, 3, badlen, 0, 0);
	len += HDR_SIZE;
	memset(buf + len, 0xee, 64);
	len += 64;
	if (separate) {
		CHECK_INT(send_raw(h.wr, buf, good, NULL, 0), ==, 0);
		CHECK_INT(imsgbuf_read(&h.ib), ==, 1);
		send_with_fds(h.wr, buf + good, len - good, 1);
	} else
		CHECK_INT(send_raw(h.wr, buf, len, NULL, 0), ==, 0);
	CHECK_FAIL(imsgbuf_read(&h.ib), -1, ERANGE);
	/* What came before the bad header is delivered, once. */
	CHECK_INT(take_msg(&h.ib, 1, 5), ==, -1);
	CHECK_INT(take_msg(&h.ib, 2, 1000), ==, -1);
	CHECK_INT(imsgbuf_get(&h.ib, &m), ==, 0);
	CHECK_FAIL(imsgbuf_read(&h.ib), -1, ERANGE);
	CHECK_INT(imsgbuf_get(&h.ib, &m), ==, 0);
	/* Even with good data waiting, the channel stays failed. */
	len = put_msg(buf, 4, 3, 0);
	CHECK_INT(send_raw(h.wr, buf, len, NULL, 0), ==, 0);
	CHECK_FAIL(imsgbuf_read(&h.ib), -1, ERANGE);
	CHECK_INT(imsgbuf_get(&h.ib, &m), ==, 0);
	CHECK_INT(h_count_fds(), ==, n0);
	hostile_close(&h);
}

static void
bad_length_gives_sticky_erange(void)
{
	const uint32_t over = 1000 + HDR_SIZE + 1;
	const uint32_t lens[] = { 0, 15, over, 0x7fffffff, 0xffffffff,
	    FD_MARK, FD_MARK | 15, FD_MARK | over };
	unsigned i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		bad_length(lens[i], 0);
		bad_length(lens[i], 1);
	}
}

/*
 * Random hostile streams.  The generator knows the stream; FIONREAD
 * tells which bytes each read consumed; so the checks can be exact:
 * the messages before the first bad header are delivered, in order,
 * intact and once; the final result is -1/ERANGE (sticky) if the bad
 * header arrived whole, else 0; descriptors go only where rs_check_fds
 * allows and are not lost where it says; and no descriptor leaks.
 */
#define RS_MAXMSG	16
#define RS_MAXSEND	600
#define RS_MAXREAD	4096
#define RS_BUFSIZE	(RS_MAXMSG * (HDR_SIZE + 100000) + 256)

struct rs_msg {
	size_t		 off;		/* header offset in the stream */
	uint32_t	 len;		/* wire len, mark included */
	int		 bad;		/* out-of-range length */
	int		 got;		/* delivered */
	ino_t		 ino;		/* inode of its descriptor, or 0 */
};

struct rs_send {
	size_t		 off;
	size_t		 len;
	int		 nfds;
	ino_t		 ino;		/* inode of the first descriptor */
};

struct rs_read {
	size_t		 start;		/* stream bytes consumed by it */
	size_t		 end;
};

struct rstream {
	unsigned char	*buf;
	size_t		 len;		/* bytes generated */
	size_t		 sent;		/* bytes sent so far */
	uint32_t	 maxtotal;
	struct rs_msg	 msg[RS_MAXMSG];
	int		 nmsg;
	struct rs_send	 send[RS_MAXSEND];
	int		 nsend;
	struct rs_read	 rd[RS_MAXREAD];
	int		 nread;
	int		 ndelivered;
	int		 aligned;	/* sends cut like a real sender's */
	int		 err;		/* errno of the first -1, or 0 */
	int		 last;		/* last read result */
	int		 closed;	/* peer end closed */
	int		 bad;		/* a check failed: stop early */
};

static size_t
rs_paylen(uint64_t *seed, uint32_t maxpay)
{
	uint32_t r = rng_below(seed, 100), cap;

	cap = r < 70 ? 64 : r < 95 ? 4000 : maxpay;
	if (cap > maxpay)
		cap = maxpay;
	return rng_below(seed, cap + 1);
}

static uint32_t
rs_badlen(uint64_t *seed, uint32_t maxtotal)
{
	switch (rng_below(seed, 9)) {
	case 0:
		return 0;
	case 1:
		return 1 + rng_below(seed, HDR_SIZE - 1);
	case 2:
		return maxtotal + 1;
	case 3:
		return maxtotal + 1 + rng_below(seed, 100000);
	case 4:
		return 0x7fffffff;
	case 5:
		return 0xffffffff;
	case 6:
		return FD_MARK | rng_below(seed, HDR_SIZE);
	case 7:
		return FD_MARK | (maxtotal + 1);
	default:
		return maxtotal + 1 + rng_below(seed, 0x7fffffff - maxtotal);
	}
}

static void
rs_generate(struct rstream *rs, uint64_t *seed)
{
	static const uint32_t maxpays[] = { 0, 1, 100, 1000,
	    MAX_IMSGSIZE - HDR_SIZE, 100000 };
	uint32_t maxpay, n, i, len;
	size_t paylen, j;

	maxpay = maxpays[rng_below(seed, 6)];
	rs->maxtotal = maxpay + HDR_SIZE;
	n = 1 + rng_below(seed, 12);
	for (i = 0; i < n; i++) {
		struct rs_msg *m = &rs->msg[rs->nmsg++];

		m->off = rs->len;
		if (rng_below(seed, 100) < 6) {
			m->bad = 1;
			m->len = rs_badlen(seed, rs->maxtotal);
			put_hdr(rs->buf + rs->len, rng_below(seed, 8), m->len,
			    (uint32_t)rng_next(seed), (uint32_t)rng_next(seed));
			rs->len += HDR_SIZE;
			/* Anything at all may follow. */
			paylen = rng_below(seed, 200);
			for (j = 0; j < paylen; j++)
				rs->buf[rs->len++] =
				    (unsigned char)rng_next(seed);
			break;
		}
		paylen = rs_paylen(seed, maxpay);
		len = (uint32_t)(HDR_SIZE + paylen);
		m->len = rng_below(seed, 100) < 30 ? len | FD_MARK : len;
		put_hdr(rs->buf + rs->len, (uint32_t)rng_next(seed), m->len,
		    (uint32_t)rng_next(seed), (uint32_t)rng_next(seed));
		for (j = 0; j < paylen; j++)
			rs->buf[rs->len + HDR_SIZE + j] =
			    (unsigned char)rng_next(seed);
		rs->len += len;
	}
	if (rng_below(seed, 4) == 0)
		rs->len = rng_below(seed, (uint32_t)rs->len + 1);
}

static void
rs_fail(struct rstream *rs, int line, const char *what, long long a,
    long long b)
{
	h_fail(__FILE__, line, "random stream: %s (%lld vs %lld)", what, a, b);
	rs->bad = 1;
}

/* Take every message delivered so far and check it against the stream. */
static void
rs_drain(struct rstream *rs, struct imsgbuf *ib)
{
	struct imsg m;
	struct rs_msg *e;
	const unsigned char *h;
	int r, fd;

	while (!rs->bad && (r = imsgbuf_get(ib, &m)) == 1) {
		if (rs->ndelivered >= rs->nmsg ||
		    rs->msg[rs->ndelivered].bad) {
			rs_fail(rs, __LINE__, "message beyond the valid ones",
			    rs->ndelivered, rs->nmsg);
			printf("#   type %u len %#x, max %u\n", m.hdr.type,
			    m.hdr.len, rs->maxtotal);
			imsg_free(&m);
			return;
		}
		e = &rs->msg[rs->ndelivered++];
		e->got = 1;
		h = rs->buf + e->off;
		if (e->off + (e->len & ~FD_MARK) > rs->sent)
			rs_fail(rs, __LINE__, "message not yet sent whole",
			    (long long)(e->off + (e->len & ~FD_MARK)),
			    (long long)rs->sent);
		if (m.hdr.type != get32(h) || m.hdr.peerid != get32(h + 8) ||
		    m.hdr.pid != get32(h + 12))
			rs_fail(rs, __LINE__, "header fields differ",
			    m.hdr.type, get32(h));
		if (m.hdr.len != (e->len & ~FD_MARK))
			rs_fail(rs, __LINE__, "hdr.len", m.hdr.len,
			    e->len & ~FD_MARK);
		if (imsg_get_len(&m) != (e->len & ~FD_MARK) - HDR_SIZE ||
		    (imsg_get_len(&m) > 0 && memcmp(m.data, h + HDR_SIZE,
		    imsg_get_len(&m)) != 0))
			rs_fail(rs, __LINE__, "payload differs",
			    (long long)imsg_get_len(&m),
			    (e->len & ~FD_MARK) - HDR_SIZE);
		if ((fd = imsg_get_fd(&m)) >= 0) {
			e->ino = fd_ino(fd);
			close(fd);
			if ((e->len & FD_MARK) == 0)
				rs_fail(rs, __LINE__, "descriptor on an "
				    "unmarked message", rs->ndelivered - 1, 0);
		}
		imsg_free(&m);
	}
	if (!rs->bad && r != 0)
		rs_fail(rs, __LINE__, "imsgbuf_get", r, 0);
}

static int
rs_read(struct rstream *rs, struct imsgbuf *ib, int rd)
{
	struct rs_read *x;
	size_t start;
	int r, e;

	start = rs->sent - inq(rd);
	errno = 0;
	r = imsgbuf_read(ib);
	e = errno;
	if (rs->nread < RS_MAXREAD) {
		x = &rs->rd[rs->nread++];
		x->start = start;
		x->end = rs->sent - inq(rd);
	} else
		rs_fail(rs, __LINE__, "more reads than any stream needs",
		    rs->nread, RS_MAXREAD);
	rs->last = r;
	if (r != -1 && r != 0 && r != 1)
		rs_fail(rs, __LINE__, "imsgbuf_read result", r, 1);
	else if (r == -1) {
		if (rs->err == 0 && e != ERANGE)
			rs_fail(rs, __LINE__, "first error is ERANGE", e,
			    ERANGE);
		else if (rs->err != 0 && e != rs->err)
			rs_fail(rs, __LINE__, "sticky errno", e, rs->err);
		rs->err = e;
	} else if (rs->err != 0)
		rs_fail(rs, __LINE__, "read after an error", r, -1);
	else if (r == 0 && !rs->closed)
		rs_fail(rs, __LINE__, "EOF before the peer closed", r, 1);
	rs_drain(rs, ib);
	return r;
}

/* Cut the stream into sends (with descriptors), reading in between. */
static void
rs_transmit(struct rstream *rs, struct hostile *hs, uint64_t *seed)
{
	size_t pos = 0, n, end;
	int aligned, next = 0, nfds, fds[4], i, tries;
	ino_t ino[4];
	ssize_t w = -1;

	aligned = rs->aligned = rng_below(seed, 2);
	while (pos < rs->len && !rs->bad) {
		if (aligned) {
			/* Like a sender: whole messages, fd with a mark. */
			while (next < rs->nmsg && rs->msg[next].off < pos)
				next++;
			nfds = next < rs->nmsg && rs->msg[next].off == pos &&
			    !rs->msg[next].bad &&
			    (rs->msg[next].len & FD_MARK) &&
			    rng_below(seed, 10) != 0;
			end = rs->len;
			for (i = next + 1; i < rs->nmsg; i++)
				if (rs->msg[i].off > pos &&
				    ((rs->msg[i].len & FD_MARK) ||
				    rng_below(seed, 3) == 0)) {
					end = rs->msg[i].off;
					break;
				}
			if (end > rs->len)
				end = rs->len;
			n = end - pos;
		} else {
			switch (rng_below(seed, 5)) {
			case 0:
			case 1:
				n = 1 + rng_below(seed, 16);
				break;
			case 2:
			case 3:
				n = 1 + rng_below(seed, 256);
				break;
			default:
				n = rs->len - pos;
			}
			if (rs->nsend > RS_MAXSEND / 2)
				n = rs->len - pos;
			i = (int)rng_below(seed, 100);
			nfds = i < 65 ? 0 : i < 90 ? 1 : i < 97 ? 2 : 3;
		}
		if (n > rs->len - pos)
			n = rs->len - pos;
		if (n == 0)
			break;
		for (i = 0; i < nfds; i++)
			if ((fds[i] = make_fd(&ino[i])) == -1) {
				rs->bad = 1;
				nfds = i;
			}
		for (tries = 0; tries < 1000; tries++) {
			w = send_once(hs->wr, rs->buf + pos, n, fds, nfds);
			if (w != -1)
				break;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				h_fail(__FILE__, __LINE__, "sendmsg: %s",
				    strerror(errno));
				rs->bad = 1;
				break;
			}
			/* Full: let the reader drain, unless it has failed. */
			if (rs->err != 0)
				break;
			rs_read(rs, &hs->ib, hs->rd);
		}
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		if (w <= 0 || rs->bad)
			break;
		if (rs->nsend < RS_MAXSEND) {
			rs->send[rs->nsend].off = pos;
			rs->send[rs->nsend].len = (size_t)w;
			rs->send[rs->nsend].nfds = nfds;
			rs->send[rs->nsend].ino = nfds > 0 ? ino[0] : 0;
			rs->nsend++;
		}
		pos += (size_t)w;
		rs->sent = pos;
		if (rs->err == 0 && rng_below(seed, 2) == 0)
			rs_read(rs, &hs->ib, hs->rd);
	}
}

/* The read that consumed stream byte off, or NULL. */
static struct rs_read *
rs_read_at(struct rstream *rs, size_t off)
{
	int k;

	for (k = 0; k < rs->nread; k++)
		if (rs->rd[k].start <= off && off < rs->rd[k].end)
			return &rs->rd[k];
	return NULL;
}

/*
 * The descriptor checks.  Never: a descriptor on a message whose header
 * did not begin in the read that brought it (nor, in a stream cut like a
 * real sender's, on any message but the one it was sent with).  Never
 * lost: a descriptor sent on the first byte of a marked message, with
 * nothing else marked after it in that send, goes to that message once
 * its header is read whole, even with another mark earlier in the read.
 */
static void
rs_check_fds(struct rstream *rs)
{
	struct rs_msg *m, *o;
	struct rs_read *x;
	struct rs_send *s;
	size_t send_end;
	int i, j;

	for (i = 0; i < rs->nmsg; i++) {
		m = &rs->msg[i];
		if (m->ino == 0)
			continue;
		for (j = 0; j < rs->nsend; j++)
			if (rs->send[j].nfds > 0 && rs->send[j].ino == m->ino)
				break;
		if (j == rs->nsend) {
			rs_fail(rs, __LINE__, "attached descriptor was not "
			    "the first of any send", i, 0);
			continue;
		}
		s = &rs->send[j];
		if ((x = rs_read_at(rs, s->off)) == NULL) {
			rs_fail(rs, __LINE__, "descriptor never read", i, j);
			continue;
		}
		if (m->off < x->start || m->off >= x->end)
			rs_fail(rs, __LINE__, "descriptor given to a header "
			    "not begun in the read that brought it",
			    (long long)m->off, (long long)x->start);
		if (rs->aligned && m->off != s->off)
			rs_fail(rs, __LINE__, "descriptor given to another "
			    "message than the one it was sent with",
			    (long long)m->off, (long long)s->off);
	}

	for (j = 0; j < rs->nsend; j++) {
		s = &rs->send[j];
		if (s->nfds == 0 || (x = rs_read_at(rs, s->off)) == NULL)
			continue;
		for (i = 0; i < rs->nmsg; i++)
			if (rs->msg[i].off == s->off)
				break;
		if (i == rs->nmsg)
			continue;
		m = &rs->msg[i];
		if (m->bad || !m->got || (m->len & FD_MARK) == 0 ||
		    m->off + HDR_SIZE > x->end)
			continue;
		send_end = s->off + s->len < x->end ? s->off + s->len : x->end;
		for (o = m + 1; o < rs->msg + rs->nmsg; o++)
			if (o->off < send_end && (o->len & FD_MARK))
				break;
		if (o < rs->msg + rs->nmsg && o->off < send_end)
			continue;
		if (m->ino != s->ino)
			rs_fail(rs, __LINE__, "descriptor sent with its "
			    "message was not attached", (long long)m->off,
			    (long long)m->ino);
	}
}

static void
rs_run(uint64_t seed0)
{
	static struct rstream rs;
	static unsigned char *buf;
	struct hostile hs;
	uint64_t seed = seed0;
	size_t bad_off = (size_t)-1;
	int i, want, n0, reads, r;

	if (buf == NULL && (buf = malloc(RS_BUFSIZE)) == NULL) {
		h_fail(__FILE__, __LINE__, "malloc");
		return;
	}
	memset(&rs, 0, sizeof(rs));
	rs.buf = buf;
	rs_generate(&rs, &seed);

	n0 = h_count_fds();
	if (hostile_open(&hs, rs.maxtotal == MAX_IMSGSIZE ? DEFAULT_MAX :
	    rs.maxtotal - HDR_SIZE) == -1)
		return;
	CHECK_UINT(hs.ib.maxsize, ==, rs.maxtotal);
	set_nonblock(hs.wr);
	rs_transmit(&rs, &hs, &seed);
	close(hs.wr);
	hs.wr = -1;
	rs.closed = 1;
	r = rs.err ? -1 : 1;
	for (reads = 0; r == 1 && !rs.bad && reads <= (int)rs.len + 8;
	    reads++)
		r = rs_read(&rs, &hs.ib, hs.rd);
	if (r == 1 && !rs.bad)
		rs_fail(&rs, __LINE__, "reads never end", reads, 0);

	/* Whatever happened stays: the same result again, nothing new. */
	if (!rs.bad) {
		want = rs.ndelivered;
		if (rs_read(&rs, &hs.ib, hs.rd) != r)
			rs_fail(&rs, __LINE__, "repeated read", rs.last, r);
		if (rs.ndelivered != want)
			rs_fail(&rs, __LINE__, "delivered again",
			    rs.ndelivered, want);
	}

	/* Expected: every valid message wholly sent before a bad header. */
	want = 0;
	for (i = 0; i < rs.nmsg; i++) {
		if (rs.msg[i].bad) {
			bad_off = rs.msg[i].off;
			break;
		}
		if (rs.msg[i].off + (rs.msg[i].len & ~FD_MARK) <= rs.sent)
			want++;
	}
	if (!rs.bad) {
		if (rs.ndelivered != want)
			rs_fail(&rs, __LINE__, "messages delivered",
			    rs.ndelivered, want);
		if (bad_off != (size_t)-1 && bad_off + HDR_SIZE <= rs.sent) {
			if (r != -1 || rs.err != ERANGE)
				rs_fail(&rs, __LINE__, "bad header: result",
				    r, -1);
		} else if (r != 0)
			rs_fail(&rs, __LINE__, "clean stream: result", r, 0);
		rs_check_fds(&rs);
	}
	hostile_close(&hs);
	if (h_count_fds() != n0)
		rs_fail(&rs, __LINE__, "descriptors leaked", h_count_fds(), n0);
	if (rs.bad)
		printf("#   failing stream: seed %#llx, %zu bytes, %d sends, "
		    "%d reads\n", (unsigned long long)seed0, rs.len, rs.nsend,
		    rs.nread);
}

static void
random_hostile_streams_keep_invariants(void)
{
	int i, failed = 0;

	for (i = 0; i < 400 && failed < 5; i++) {
		h_case_failed = 0;
		rs_run(0x1badc0deULL + (uint64_t)i * 7919);
		failed += h_case_failed;
	}
	h_case_failed = failed > 0;
}

int
main(void)
{
	RUN(full_fd_table_drops_descriptor_but_delivers_messages);
	RUN(stalled_large_message_holds_at_most_maxsize);
	RUN(oversized_header_fails_before_allocating);
	RUN(tiny_messages_in_one_read_all_delivered);
	RUN(signal_storm_loses_no_message);
	RUN(blocked_reader_retries_after_eintr);
	RUN(closed_peer_gives_epipe_not_sigpipe);
	RUN(peer_exit_during_flush_gives_epipe);
	RUN(pipe_without_reader_gives_epipe_not_sigpipe);
	RUN(pipe_write_leaves_the_signal_mask_unchanged);
	RUN(pending_sigpipe_stays_pending_across_pipe_writes);
	RUN(fd_on_unmarked_message_is_closed);
	RUN(extra_fds_in_one_sendmsg_are_closed);
	RUN(mark_without_fd_gives_no_fd);
	RUN(earlier_mark_without_fd_does_not_take_it);
	RUN(fd_never_goes_to_header_from_earlier_read);
	RUN(fd_of_next_message_survives_large_body);
	RUN(eof_mid_message_delivers_nothing_partial);
	RUN(bad_length_gives_sticky_erange);
	RUN(random_hostile_streams_keep_invariants);
	return h_done();
}
