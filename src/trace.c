/*
 * LIBIMSG_TRACE: the trace of every message a program sends and
 * receives, for debugging unmodified programs (imsg_init(3), ENVIRONMENT).
 *
 * The file is opened once, at load time, so it exists before the program
 * can chroot, drop privileges or close descriptors it does not know.
 * Each line is built on the stack and goes out in one write(2) to a
 * descriptor opened with O_APPEND, so lines from several processes and
 * threads sharing the file never interleave.
 *
 * The state is set while the process is single-threaded (the constructor,
 * the fork child handler) and read-only afterwards, except the descriptor
 * itself, which any thread may turn off for good with one atomic store.
 * No thread-local storage and no pthread keys: the library must unload
 * cleanly with dlclose.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#if defined(__linux__) && !defined(__GLIBC__)
#include <sys/auxv.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imsg-private.h"
#include "text.h"
#include "trace.h"

#ifndef PATH_MAX
#define PATH_MAX	4096
#endif

/* Payload bytes shown per line at most, whatever LIBIMSG_TRACE_DATA asks. */
#define TRACE_DATA_MAX	4096
/* The trace descriptor moves to this number or above if the limit allows. */
#define TRACE_FD_MIN	100
/* Time, pid, event name (at most 5 bytes), channel, and their spaces. */
#define TRACE_PREFIX_MAX	(21 + 1 + 6 + 1 + 21 + 1 + 5 + 1 + 12)
/* The text form shows a payload byte in two characters at most. */
#define TRACE_LINE_MAX	(TRACE_PREFIX_MAX + 256 + 2 * TRACE_DATA_MAX)

/* How a line reaches the trace descriptor without raising SIGPIPE. */
enum trace_kind {
	TRACE_FILE,		/* regular file, tty...: write(2) */
	TRACE_PIPE,		/* pipe or FIFO: write(2) with SIGPIPE held */
	TRACE_SOCK		/* socket: send(2) with MSG_NOSIGNAL if any */
};

int libimsg__trace_fd = -1;

/*
 * The identity of the file opened, checked before each write: a program
 * that closed the descriptor and got its number back for something else
 * must never receive a trace byte.
 */
static dev_t		 trace_dev;
static ino_t		 trace_ino;
static enum trace_kind	 trace_kind;
static size_t		 trace_datashow;
static int		 trace_perpid;		/* the path holds %p */
static char		 trace_path[PATH_MAX];	/* LIBIMSG_TRACE as given */

/*
 * The environment as a set-user-ID or set-group-ID program must see it:
 * without these variables, which would let the invoking user make it
 * write its messages, secrets included, to a file of the user's choice.
 */
static const char *
trace_getenv(const char *name)
{
#if defined(__GLIBC__)
	return secure_getenv(name);
#else
#if defined(__linux__)
	if (getauxval(AT_SECURE))
		return NULL;
#elif defined(__OpenBSD__) || defined(__FreeBSD__) || \
    defined(__NetBSD__) || defined(__DragonFly__) || defined(__APPLE__)
	if (issetugid())
		return NULL;
#endif
	if (getuid() != geteuid() || getgid() != getegid())
		return NULL;
	return getenv(name);
#endif
}

/* Decimal digits of v at the end of a 24-byte buf; returns the start. */
static char *
trace_utoa(char *end, unsigned long long v)
{
	*--end = '\0';
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return end;
}

/*
 * The path for this process: trace_path with %p replaced by pid and %%
 * by %.  Async-signal-safe, for the fork child handler.  Returns the
 * number of %p replaced, or -1 if the result does not fit.
 */
static int
trace_expand(char *out, size_t size, pid_t pid)
{
	char num[24], *digits;
	const char *p, *add;
	size_t n = 0, addlen;
	int npid = 0;

	digits = trace_utoa(num + sizeof(num), (unsigned long long)pid);
	for (p = trace_path; *p != '\0'; p++) {
		add = p;
		addlen = 1;
		if (p[0] == '%' && p[1] == 'p') {
			add = digits;
			addlen = strlen(digits);
			npid++;
			p++;
		} else if (p[0] == '%' && p[1] == '%')
			p++;
		if (addlen >= size - n)
			return -1;
		memcpy(out + n, add, addlen);
		n += addlen;
	}
	out[n] = '\0';
	return npid;
}

static int
trace_same_file(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && st.st_dev == trace_dev &&
	    st.st_ino == trace_ino;
}

/* Keep fd as the trace descriptor and remember what it is. */
static void
trace_take(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1) {
		if (fd != STDERR_FILENO)
			close(fd);
		return;
	}
	trace_dev = st.st_dev;
	trace_ino = st.st_ino;
	if (S_ISFIFO(st.st_mode))
		trace_kind = TRACE_PIPE;
	else if (S_ISSOCK(st.st_mode))
		trace_kind = TRACE_SOCK;
	else
		trace_kind = TRACE_FILE;
	__atomic_store_n(&libimsg__trace_fd, fd, __ATOMIC_RELEASE);
}

/*
 * Open the trace for this process.  Async-signal-safe, for the fork child
 * handler.  The file is private to the user (0600): it names the
 * program's messages, and with LIBIMSG_TRACE_DATA their contents.
 */
static void
trace_open(void)
{
	char path[PATH_MAX];
	int fd, hi;

	if (strcmp(trace_path, "-") == 0) {
		trace_take(STDERR_FILENO);
		return;
	}
	if ((trace_perpid = trace_expand(path, sizeof(path), getpid())) == -1)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
	    0600);
	if (fd == -1)
		return;
	/*
	 * open(2), pipe(2) and socket(2) return the lowest free number: up
	 * here, a program that closes the trace does not get its number back
	 * for something else, even while another thread is between the check
	 * and the write of trace_emit.  And never 0-2: a program started
	 * with one of them closed would write its own output into the trace.
	 */
	hi = fcntl(fd, F_DUPFD_CLOEXEC, TRACE_FD_MIN);
	if (hi == -1 && fd <= STDERR_FILENO)
		hi = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	if (hi != -1) {
		close(fd);
		fd = hi;
	} else if (fd <= STDERR_FILENO) {
		close(fd);
		return;
	}
	trace_take(fd);
}

/* Turn tracing off for good; fd is no longer ours to close. */
static void
trace_stop(int fd)
{
	int expect = fd;

	__atomic_compare_exchange_n(&libimsg__trace_fd, &expect, -1, 0,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/*
 * A child forked with %p in the path traces to a file of its own,
 * opened here before the child can chroot or give up its privileges.
 * Without %p it keeps appending to the file it shares with its parent.
 */
static void
trace_child(void)
{
	int fd, saved_errno = errno;

	fd = __atomic_load_n(&libimsg__trace_fd, __ATOMIC_RELAXED);
	if (fd != -1) {
		__atomic_store_n(&libimsg__trace_fd, -1, __ATOMIC_RELAXED);
		if (fd != STDERR_FILENO && trace_same_file(fd))
			close(fd);
		trace_open();
	}
	errno = saved_errno;
}

__attribute__((constructor)) static void
trace_init(void)
{
	const char *path, *data;
	char *end;
	unsigned long n;
	int saved_errno = errno;

	path = trace_getenv("LIBIMSG_TRACE");
	if (path == NULL || *path == '\0' || strlen(path) >= sizeof(trace_path))
		goto out;
	memcpy(trace_path, path, strlen(path) + 1);
	if ((data = trace_getenv("LIBIMSG_TRACE_DATA")) != NULL) {
		errno = 0;
		n = strtoul(data, &end, 10);
		if (errno == 0 && end != data && *end == '\0')
			trace_datashow = n < TRACE_DATA_MAX ? n :
			    TRACE_DATA_MAX;
	}
	trace_open();
	if (trace_perpid > 0 && libimsg__tracing())
		(void)pthread_atfork(NULL, NULL, trace_child);
out:
	errno = saved_errno;
}

/* On dlclose (and exit): give the descriptor back, if it is still ours. */
__attribute__((destructor)) static void
trace_fini(void)
{
	int fd, saved_errno = errno;

	fd = __atomic_exchange_n(&libimsg__trace_fd, -1, __ATOMIC_RELAXED);
	if (fd != -1 && fd != STDERR_FILENO && trace_same_file(fd))
		close(fd);
	errno = saved_errno;
}

/*
 * A pipe or socket whose reader has gone must not kill the program: see
 * write.c.  plain: a pipe, written with writev.
 */
static ssize_t
trace_write_nosigpipe(int fd, const char *line, size_t len, int plain)
{
	struct iovec iov;
	struct msghdr msg;

	iov.iov_base = (void *)(uintptr_t)line;
	iov.iov_len = len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	return libimsg__write_nosigpipe(fd, &msg, plain);
}

/* One line, in one write, to the trace if it is still the file opened. */
static void
trace_emit(const char *line, size_t len)
{
	ssize_t n;
	int fd;

	if ((fd = __atomic_load_n(&libimsg__trace_fd, __ATOMIC_ACQUIRE)) == -1)
		return;
	if (!trace_same_file(fd)) {
		trace_stop(fd);
		return;
	}
	switch (trace_kind) {
	case TRACE_PIPE:
		n = trace_write_nosigpipe(fd, line, len, 1);
		break;
	case TRACE_SOCK:
#ifdef HAVE_MSG_NOSIGNAL
		n = send(fd, line, len, MSG_NOSIGNAL);
#else
		n = trace_write_nosigpipe(fd, line, len, 0);
#endif
		break;
	default:
		n = write(fd, line, len);
		break;
	}
	/* Nobody reads the trace any more. */
	if (n == -1 && errno == EPIPE)
		trace_stop(fd);
}

static char *
trace_put_str(char *p, const char *s)
{
	size_t len = strlen(s);

	memcpy(p, s, len);
	return p + len;
}

/* v in decimal at p, zero-padded to width digits; returns the end. */
static char *
trace_put_num(char *p, long long v, size_t width)
{
	char num[24], *digits;
	unsigned long long u = (unsigned long long)v;
	size_t len;

	if (v < 0) {
		*p++ = '-';
		u = 0 - u;
	}
	digits = trace_utoa(num + sizeof(num), u);
	for (len = strlen(digits); len < width; len++)
		*p++ = '0';
	return trace_put_str(p, digits);
}

/*
 * "<seconds.microseconds> <pid> <event> <chan>" at line, which has room
 * for TRACE_PREFIX_MAX bytes; returns its length.  By hand: snprintf
 * cost four times what the rest of the line does.
 */
static size_t
trace_prefix(char *line, const char *event, int chan)
{
	struct timespec ts;
	char *p = line;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		ts.tv_sec = ts.tv_nsec = 0;
	p = trace_put_num(p, (long long)ts.tv_sec, 1);
	*p++ = '.';
	p = trace_put_num(p, (long long)(ts.tv_nsec / 1000), 6);
	*p++ = ' ';
	p = trace_put_num(p, (long long)getpid(), 1);
	*p++ = ' ';
	p = trace_put_str(p, event);
	*p++ = ' ';
	p = trace_put_num(p, chan, 1);
	return (size_t)(p - line);
}

/*
 * One message line.  data holds at least min(len, trace_datashow) bytes
 * of the len-byte payload: the printer reads no more.
 */
static void
trace_msg(const char *event, int chan, const void *hdrp, const void *data,
    size_t len, int fd)
{
	char line[TRACE_LINE_MAX];
	struct imsg_hdr hdr;
	size_t n, room, r;

	memcpy(&hdr, hdrp, sizeof(hdr));
	n = trace_prefix(line, event, chan);
	line[n++] = ' ';
	/* Keep one byte for the newline. */
	room = sizeof(line) - n - 1;
	r = libimsg__text_format(line + n, room, hdr.type, hdr.peerid,
	    hdr.pid, data, len, trace_datashow, fd, NULL);
	n += r < room ? r : room - 1;
	line[n++] = '\n';
	trace_emit(line, n);
}

void
libimsg__trace_send(int chan, const void *hdr, const void *data, size_t len,
    int fd)
{
	int saved_errno = errno;

	trace_msg("send", chan, hdr, data, len, fd);
	errno = saved_errno;
}

void
libimsg__trace_sendbuf(int chan, const struct ibuf *msg)
{
	const unsigned char *p = msg->buf + msg->rpos;
	size_t size = msg->wpos - msg->rpos;
	int saved_errno = errno;

	/* imsg_close takes any ibuf: one too short for a header is no imsg. */
	if (size >= IMSG_HEADER_SIZE)
		trace_msg("send", chan, p, p + IMSG_HEADER_SIZE,
		    size - IMSG_HEADER_SIZE, msg->fd);
	errno = saved_errno;
}

void
libimsg__trace_sendv(int chan, uint32_t type, uint32_t peerid, uint32_t pid,
    const struct iovec *iov, int iovcnt)
{
	unsigned char head[TRACE_DATA_MAX];
	struct imsg_hdr hdr;
	const void *data = NULL;
	size_t len = 0, got = 0, take;
	int i, saved_errno = errno;

	for (i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (iovcnt == 1)
		data = iov[0].iov_base;
	else if (trace_datashow > 0 && len > 0) {
		/* Only the bytes shown need to be in one piece. */
		for (i = 0; i < iovcnt && got < trace_datashow; i++) {
			take = iov[i].iov_len;
			if (take > trace_datashow - got)
				take = trace_datashow - got;
			if (take > 0)
				memcpy(head + got, iov[i].iov_base, take);
			got += take;
		}
		data = head;
	}
	hdr.type = type;
	hdr.peerid = peerid;
	hdr.pid = pid;
	hdr.len = 0;	/* not shown: len= is the payload's */
	trace_msg("send", chan, &hdr, data, len, -1);
	errno = saved_errno;
}

/* A name for the errors a channel meets; NULL for the others. */
static const char *
trace_errname(int err)
{
	static const struct {
		int		 err;
		const char	*name;
	} names[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EINTR, "EINTR" },
		{ EIO, "EIO" }, { EBADF, "EBADF" }, { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" }, { EACCES, "EACCES" },
		{ EFAULT, "EFAULT" }, { EINVAL, "EINVAL" },
		{ ENFILE, "ENFILE" }, { EMFILE, "EMFILE" },
		{ ENOSPC, "ENOSPC" }, { EPIPE, "EPIPE" }, { ERANGE, "ERANGE" },
		{ EBADMSG, "EBADMSG" }, { EMSGSIZE, "EMSGSIZE" },
		{ EOVERFLOW, "EOVERFLOW" }, { ENOTSOCK, "ENOTSOCK" },
		{ ENOBUFS, "ENOBUFS" }, { ECONNRESET, "ECONNRESET" },
		{ ECONNREFUSED, "ECONNREFUSED" }, { ENOTCONN, "ENOTCONN" },
		{ ECONNABORTED, "ECONNABORTED" }, { ETIMEDOUT, "ETIMEDOUT" },
		{ EHOSTUNREACH, "EHOSTUNREACH" }, { ENETDOWN, "ENETDOWN" },
		{ ENETUNREACH, "ENETUNREACH" },
		{ EDESTADDRREQ, "EDESTADDRREQ" },
		{ EPROTO, "EPROTO" }, { EOPNOTSUPP, "EOPNOTSUPP" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].err == err)
			return names[i].name;
	return NULL;
}

/* "eof", or "error" with the operation and the errno name (or number). */
static void
trace_event(const char *event, int chan, const char *op, int err)
{
	char line[TRACE_PREFIX_MAX + 64], *p;
	const char *name;

	p = line + trace_prefix(line, event, chan);
	if (op != NULL) {
		*p++ = ' ';
		p = trace_put_str(p, op);
		*p++ = ' ';
		if ((name = trace_errname(err)) != NULL)
			p = trace_put_str(p, name);
		else
			p = trace_put_num(p, err, 1);
	}
	*p++ = '\n';
	trace_emit(line, (size_t)(p - line));
}

void
libimsg__trace_read(int chan, const struct ibuf *first, int r)
{
	const struct ibuf *b;
	const unsigned char *p;
	size_t size;
	int saved_errno = errno;

	for (b = first; b != NULL; b = b->entry.tqe_next) {
		p = b->buf + b->rpos;
		size = b->wpos - b->rpos;
		if (size < IMSG_HEADER_SIZE)
			continue;
		trace_msg("recv", chan, p, p + IMSG_HEADER_SIZE,
		    size - IMSG_HEADER_SIZE, b->fd);
	}
	if (r == 0)
		trace_event("eof", chan, NULL, 0);
	else if (r == -1)
		trace_event("error", chan, "read", saved_errno);
	errno = saved_errno;
}

void
libimsg__trace_write_error(int chan)
{
	int saved_errno = errno;

	trace_event("error", chan, "write", saved_errno);
	errno = saved_errno;
}
