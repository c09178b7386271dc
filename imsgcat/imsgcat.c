/*
 * imsgcat: a command-line imsg peer.
 *
 * It opens one imsg channel (connecting to a UNIX socket, listening on
 * one for a single peer, taking an inherited descriptor, or starting a
 * command on the other end of a socketpair), sends the messages given
 * with -m and read from standard input in the text form of src/text.c,
 * and prints every message it receives in that same form (or as JSON).
 * The grammar and the behaviour are documented in imsgcat(1).
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
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/* For clock_gettime, mkstemp and friends under -std=c99. */
#define _GNU_SOURCE

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <imsg.h>

#include "text.h"

#ifndef LIBIMSG_VERSION
#define LIBIMSG_VERSION	"unknown"
#endif

#define EXIT_RUNTIME	1	/* something failed while running */
#define EXIT_USAGE	2	/* bad command line or malformed input */

#define QUEUE_MAX	64		/* stop reading input above this */
#define INPUT_MAX	(64U << 20)	/* longest input line, bytes */
#define SAVE_MAX	(64U << 20)	/* most saved from one descriptor */
#define SAVE_IDLE_MS	1000		/* -F: a silent pipe is done */

/* Where the channel comes from. */
enum mode { M_NONE, M_CONNECT, M_LISTEN, M_FD, M_EXEC };

struct cat {
	enum mode	 mode;
	int		 conflict;	/* both -l and -f were given */
	const char	*path;		/* M_CONNECT, M_LISTEN */
	int		 inherited;	/* M_FD */
	char	       **cmd;		/* M_EXEC: command and arguments */
	int		 childfd;	/* M_EXEC: its descriptor (-d) */
	pid_t		 child;		/* M_EXEC: -1 when none */

	const char     **mtext;		/* the -m options, in order */
	int		 nmtext;
	struct libimsg__text_msg *mmsg;	/* and what they parsed to */

	int		 json;		/* -j */
	const char	*savedir;	/* -F */
	long long	 count;		/* -n, -1 for no limit */
	int		 waitms;	/* -w, -1 for no limit */
	long long	 maxsize;	/* -s, -1 for the library's default */

	struct imsgbuf	 ib;
	int		 ibinit;	/* ib needs imsgbuf_clear */
	int		 chan;		/* the channel, -1 when closed */
	int		 peer_eof;
	long long	 nrecv;
	struct timespec	 last;		/* last activity, for -w */

	int		 reading;	/* standard input still to be read */
	char		*inbuf;
	size_t		 inlen, incap;
	unsigned long	 lineno;

	unsigned long	 nsaved;	/* -F: files written */
};

/* The socket -l made, for the signal handler to remove. */
static const char *volatile listen_path;

static void	cat_exit(struct cat *, int) __attribute__((noreturn));
static void	usage(FILE *, int) __attribute__((noreturn));
static void	fatal(struct cat *, int, const char *, ...)
		    __attribute__((noreturn, format(printf, 3, 4)));

/* ---- messages and exiting ---------------------------------------------- */

static void
vwarnmsg(const char *fmt, va_list ap)
{
	fflush(stdout);
	fputs("imsgcat: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void
warnmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
warnmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnmsg(fmt, ap);
	va_end(ap);
}

static void
fatal(struct cat *c, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnmsg(fmt, ap);
	va_end(ap);
	cat_exit(c, status);
}

static void
usage(FILE *f, int status)
{
	fputs("usage: imsgcat [-hjV] [-F dir] [-m text] [-n count] [-s size]"
	    " [-w seconds] path\n"
	    "       imsgcat -l [options] path\n"
	    "       imsgcat -f fd [options]\n"
	    "       imsgcat [options] [-d fd] -e command [arg ...]\n", f);
	exit(status);
}

/* Remove the listening socket if it is still there. */
static void
unlink_listen(void)
{
	const char *p = listen_path;

	if (p != NULL) {
		listen_path = NULL;
		unlink(p);
	}
}

static void
on_signal(int sig)
{
	unlink_listen();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Close the channel, reap the command and leave with status. */
static void
cat_exit(struct cat *c, int status)
{
	int i, ws;

	if (fflush(stdout) == EOF && status == 0) {
		warnmsg("stdout: %s", strerror(errno));
		status = EXIT_RUNTIME;
	}
	unlink_listen();
	if (c->ibinit)
		imsgbuf_clear(&c->ib);
	c->ibinit = 0;
	if (c->chan != -1)
		close(c->chan);
	c->chan = -1;
	/* Its end is closed now, so a well-behaved command sees EOF. */
	while (c->child != -1 && waitpid(c->child, &ws, 0) == -1 &&
	    errno == EINTR)
		;
	for (i = 0; c->mmsg != NULL && i < c->nmtext; i++)
		libimsg__text_msg_clear(&c->mmsg[i]);
	free(c->mmsg);
	free(c->mtext);
	free(c->inbuf);
	exit(status);
}

/* ---- command line ------------------------------------------------------- */

/* A non-negative number, decimal or 0x hex, at most max; -1 if not one. */
static long long
parse_count(const char *s, long long max)
{
	long long v = 0;
	int base = 10, d;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return -1;
		if (v > (max - d) / base)
			return -1;
		v = v * base + d;
	}
	return v;
}

/* -w SECONDS, which may have a fraction; -1 if malformed. */
static int
parse_seconds(const char *s)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !(d >= 0) ||
	    d > INT_MAX / 1000)
		return -1;
	return (int)(d * 1000 + 0.5);
}

static void
bad_value(const char *opt, const char *arg)
{
	warnmsg("-%s %s: invalid value", opt, arg);
	usage(stderr, EXIT_USAGE);
}

/* One option of getopt; returns 1 for -e, which ends the options. */
static int
parse_option(struct cat *c, int ch, char *arg)
{
	switch (ch) {
	case 'd':
		if ((c->childfd = (int)parse_count(arg, INT_MAX)) < 0)
			bad_value("d", arg);
		break;
	case 'e':
		return 1;
	case 'F':
		c->savedir = arg;
		break;
	case 'f':
		if ((c->inherited = (int)parse_count(arg, INT_MAX)) < 0)
			bad_value("f", arg);
		c->conflict |= c->mode == M_LISTEN;
		c->mode = M_FD;
		break;
	case 'j':
		c->json = 1;
		break;
	case 'l':
		c->conflict |= c->mode == M_FD;
		c->mode = M_LISTEN;
		break;
	case 'm':
		c->mtext[c->nmtext++] = arg;
		break;
	case 'n':
		if ((c->count = parse_count(arg, LLONG_MAX)) < 0)
			bad_value("n", arg);
		break;
	case 's':
		if ((c->maxsize = parse_count(arg, UINT32_MAX)) < 0)
			bad_value("s", arg);
		break;
	case 'w':
		if ((c->waitms = parse_seconds(arg)) < 0)
			bad_value("w", arg);
		break;
	case 'V':
		printf("imsgcat %s\n", LIBIMSG_VERSION);
		exit(0);
	case 'h':
		usage(stdout, 0);
	default:
		usage(stderr, EXIT_USAGE);
	}
	return 0;
}

/* The command of -e: its name (cmd) and the operands after it. */
static void
set_command(struct cat *c, char *cmd, int argc, char **argv)
{
	int i;

	if (c->mode != M_NONE) {
		warnmsg("-e cannot be used with -l or -f");
		usage(stderr, EXIT_USAGE);
	}
	c->mode = M_EXEC;
	if ((c->cmd = calloc((size_t)argc + 2, sizeof(*c->cmd))) == NULL)
		fatal(c, EXIT_RUNTIME, "%s", strerror(errno));
	c->cmd[0] = cmd;
	for (i = 0; i < argc; i++)
		c->cmd[i + 1] = argv[i];
}

static void
parse_args(struct cat *c, int argc, char **argv)
{
	/* glibc's getopt permutes unless told not to; -e's args are ours. */
#ifdef __GLIBC__
	static const char opts[] = "+d:e:F:f:hjlm:n:s:Vw:";
#else
	static const char opts[] = "d:e:F:f:hjlm:n:s:Vw:";
#endif
	int ch;

	if ((c->mtext = calloc((size_t)argc, sizeof(*c->mtext))) == NULL)
		fatal(c, EXIT_RUNTIME, "%s", strerror(errno));
	while ((ch = getopt(argc, argv, opts)) != -1)
		if (parse_option(c, ch, optarg)) {
			set_command(c, optarg, argc - optind, argv + optind);
			return;
		}
	argc -= optind;
	argv += optind;
	if (c->conflict) {
		warnmsg("-l and -f cannot be used together");
		usage(stderr, EXIT_USAGE);
	}
	if (c->mode == M_FD ? argc != 0 : argc != 1)
		usage(stderr, EXIT_USAGE);
	if (c->mode == M_NONE)
		c->mode = M_CONNECT;
	if (c->mode != M_FD)
		c->path = argv[0];
}

/* Check what can be checked before the channel is opened. */
static void
check_args(struct cat *c)
{
	char err[256];
	int i;

	if (c->childfd != -1 && c->mode != M_EXEC) {
		warnmsg("-d needs -e");
		usage(stderr, EXIT_USAGE);
	}
	if (c->childfd == -1)
		c->childfd = 3;
	/* The library's limit: size plus header must stay below 2^31. */
	if (c->maxsize > 0x7fffffffLL - (long long)IMSG_HEADER_SIZE)
		fatal(c, EXIT_USAGE, "-s %lld: larger than %lld", c->maxsize,
		    0x7fffffffLL - (long long)IMSG_HEADER_SIZE);
	if (c->savedir != NULL && strpbrk(c->savedir, " \t\n") != NULL)
		fatal(c, EXIT_USAGE, "-F %s: the directory name may not "
		    "contain blanks", c->savedir);
	if ((c->mmsg = calloc((size_t)c->nmtext + 1, sizeof(*c->mmsg))) ==
	    NULL)
		fatal(c, EXIT_RUNTIME, "%s", strerror(errno));
	for (i = 0; i < c->nmtext; i++)
		if (libimsg__text_parse(c->mtext[i], strlen(c->mtext[i]),
		    &c->mmsg[i], err, sizeof(err)) != 1)
			fatal(c, EXIT_USAGE, "-m %d: %s", i + 1,
			    err[0] != '\0' ? err : "no message");
}

/* ---- the channel -------------------------------------------------------- */

static int
set_cloexec(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFD)) == -1)
		return -1;
	return fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

static int
set_nonblock(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return -1;
	return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A UNIX stream socket and the address of path, or a fatal error. */
static int
unix_socket(struct cat *c, struct sockaddr_un *sun)
{
	int s;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(c->path) >= sizeof(sun->sun_path))
		fatal(c, EXIT_RUNTIME, "%s: %s", c->path,
		    strerror(ENAMETOOLONG));
	memcpy(sun->sun_path, c->path, strlen(c->path) + 1);
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 || set_cloexec(s) == -1)
		fatal(c, EXIT_RUNTIME, "socket: %s", strerror(errno));
	return s;
}

static void
open_connect(struct cat *c)
{
	struct sockaddr_un sun;

	c->chan = unix_socket(c, &sun);
	if (connect(c->chan, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal(c, EXIT_RUNTIME, "%s: %s", c->path, strerror(errno));
}

/* Wait (up to -w) for the listening socket l to have a peer. */
static void
wait_peer(struct cat *c, int l)
{
	struct pollfd pfd = { l, POLLIN, 0 };
	int n;

	while ((n = poll(&pfd, 1, c->waitms)) == -1 && errno == EINTR)
		;
	if (n == -1) {
		close(l);
		fatal(c, EXIT_RUNTIME, "poll: %s", strerror(errno));
	}
	if (n == 0) {
		close(l);
		fatal(c, EXIT_RUNTIME, "%s: no peer within the -w time",
		    c->path);
	}
}

/*
 * Serve one peer: the socket file goes as soon as the peer is in, and
 * a signal before that removes it too.
 */
static void
open_listen(struct cat *c)
{
	struct sockaddr_un sun;
	struct sigaction sa;
	int l;

	l = unix_socket(c, &sun);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (bind(l, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(l);
		fatal(c, EXIT_RUNTIME, "%s: %s", c->path, strerror(errno));
	}
	listen_path = c->path;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (listen(l, 1) == -1) {
		close(l);
		fatal(c, EXIT_RUNTIME, "listen: %s", strerror(errno));
	}
	wait_peer(c, l);
	while ((c->chan = accept(l, NULL, NULL)) == -1 && errno == EINTR)
		;
	close(l);
	unlink_listen();
	if (c->chan == -1 || set_cloexec(c->chan) == -1)
		fatal(c, EXIT_RUNTIME, "accept: %s", strerror(errno));
}

static void
open_inherited(struct cat *c)
{
	if (fcntl(c->inherited, F_GETFD) == -1)
		fatal(c, EXIT_RUNTIME, "-f %d: %s", c->inherited,
		    strerror(errno));
	c->chan = c->inherited;
}

/*
 * In the child: put the socket on its descriptor and run the command.
 * An exec failure goes back to the parent as an errno over report.
 */
static void
exec_child(struct cat *c, int sock, int report)
{
	int e, fd;

	signal(SIGPIPE, SIG_DFL);
	/* Our input is ours: the command must not eat the lines. */
	if (c->reading && (fd = open("/dev/null", O_RDONLY)) != -1 &&
	    fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	if (report == c->childfd)
		report = fcntl(report, F_DUPFD_CLOEXEC, c->childfd + 1);
	if (sock == c->childfd) {
		fd = fcntl(sock, F_GETFD);
		e = fd == -1 ? -1 : fcntl(sock, F_SETFD, fd & ~FD_CLOEXEC);
	} else
		e = dup2(sock, c->childfd);
	if (e != -1)
		execvp(c->cmd[0], c->cmd);
	e = errno;
	(void)!write(report, &e, sizeof(e));
	_exit(127);
}

static void
open_exec(struct cat *c)
{
	int sv[2], ep[2], e;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 || pipe(ep) == -1)
		fatal(c, EXIT_RUNTIME, "socketpair: %s", strerror(errno));
	set_cloexec(sv[0]);
	set_cloexec(sv[1]);
	set_cloexec(ep[0]);
	set_cloexec(ep[1]);
	fflush(stdout);
	if ((c->child = fork()) == -1)
		fatal(c, EXIT_RUNTIME, "fork: %s", strerror(errno));
	if (c->child == 0) {
		close(ep[0]);
		exec_child(c, sv[1], ep[1]);
	}
	close(sv[1]);
	close(ep[1]);
	c->chan = sv[0];
	while ((n = read(ep[0], &e, sizeof(e))) == -1 && errno == EINTR)
		;
	close(ep[0]);
	if (n == (ssize_t)sizeof(e))
		fatal(c, EXIT_RUNTIME, "%s: %s", c->cmd[0], strerror(e));
}

static void
open_channel(struct cat *c)
{
	switch (c->mode) {
	case M_LISTEN:
		open_listen(c);
		break;
	case M_FD:
		open_inherited(c);
		break;
	case M_EXEC:
		open_exec(c);
		break;
	default:
		open_connect(c);
		break;
	}
	if (set_nonblock(c->chan) == -1)
		fatal(c, EXIT_RUNTIME, "fcntl: %s", strerror(errno));
	if (imsgbuf_init(&c->ib, c->chan) == -1)
		fatal(c, EXIT_RUNTIME, "imsgbuf_init: %s", strerror(errno));
	c->ibinit = 1;
	imsgbuf_allow_fdpass(&c->ib);
	/* pid= defaults to 0, not to ours. */
	c->ib.pid = 0;
	if (c->maxsize != -1 &&
	    imsgbuf_set_maxsize(&c->ib, (uint32_t)c->maxsize) == -1)
		fatal(c, EXIT_USAGE, "-s %lld: %s", c->maxsize,
		    strerror(errno));
}

/* ---- sending ------------------------------------------------------------ */

static int
chan_flush(struct cat *c)
{
	struct pollfd pfd;
	int n;

	while (imsgbuf_queuelen(&c->ib) > 0) {
		pfd.fd = c->chan;
		pfd.events = POLLOUT;
		if ((n = poll(&pfd, 1, c->waitms)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (imsgbuf_write(&c->ib) == -1)
			return -1;
	}
	return 0;
}

/*
 * A bad input line ends the run: what came before it is still sent,
 * nothing after it.
 */
static void
input_fail(struct cat *c, const char *where, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

static void
input_fail(struct cat *c, const char *where, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "imsgcat: %s: ", where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (chan_flush(c) == -1)
		warnmsg("write: %s", strerror(errno));
	cat_exit(c, EXIT_USAGE);
}

/* The descriptor a message names, as a new one the library may close. */
static int
message_fd(struct cat *c, const struct libimsg__text_msg *m,
    const char *where)
{
	int fd = -1;

	switch (m->fdsrc) {
	case LIBIMSG__TEXT_FD_NONE:
		return -1;
	case LIBIMSG__TEXT_FD_NUM:
		/* A copy: the line after may name the same descriptor. */
		if ((fd = fcntl(m->fdnum, F_DUPFD_CLOEXEC, 0)) == -1)
			input_fail(c, where, "fd=%d: %s", m->fdnum,
			    strerror(errno));
		break;
	case LIBIMSG__TEXT_FD_PATH:
		if ((fd = open(m->fdpath, O_RDONLY | O_CLOEXEC)) == -1)
			input_fail(c, where, "fd=@%s: %s", m->fdpath,
			    strerror(errno));
		break;
	}
	return fd;
}

static void
send_message(struct cat *c, const struct libimsg__text_msg *m,
    const char *where)
{
	int fd, e;

	fd = message_fd(c, m, where);
	if (imsg_compose(&c->ib, m->type, m->peerid, (pid_t)m->pid, fd,
	    m->data, m->len) != -1)
		return;
	e = errno;
	/* On failure the descriptor is still ours. */
	if (fd != -1)
		close(fd);
	if (e == ERANGE)
		input_fail(c, where, "message too large (%zu bytes of data; "
		    "the limit is %lu, see -s)", m->len,
		    (unsigned long)c->ib.maxsize - IMSG_HEADER_SIZE);
	fatal(c, EXIT_RUNTIME, "%s: %s", where, strerror(e));
}

/* One line of standard input, len bytes at line. */
static void
send_line(struct cat *c, const char *line, size_t len)
{
	struct libimsg__text_msg m;
	char err[512], where[32];
	int r;

	c->lineno++;
	snprintf(where, sizeof(where), "line %lu", c->lineno);
	if ((r = libimsg__text_parse(line, len, &m, err, sizeof(err))) == -1)
		input_fail(c, where, "%s", err);
	if (r == 0)
		return;
	send_message(c, &m, where);
	libimsg__text_msg_clear(&m);
}

static void
send_options(struct cat *c)
{
	char where[32];
	int i;

	for (i = 0; i < c->nmtext; i++) {
		snprintf(where, sizeof(where), "-m %d", i + 1);
		send_message(c, &c->mmsg[i], where);
	}
}

/* ---- standard input ----------------------------------------------------- */

/* Send every complete line in the input buffer; keep the rest. */
static void
input_lines(struct cat *c)
{
	char *nl, *p = c->inbuf;
	size_t left = c->inlen;

	while (left > 0 && (nl = memchr(p, '\n', left)) != NULL) {
		send_line(c, p, (size_t)(nl - p) + 1);
		left -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
	memmove(c->inbuf, p, left);
	c->inlen = left;
}

static void
input_grow(struct cat *c)
{
	char *nb;
	size_t cap;

	if (c->incap - c->inlen >= 4096)
		return;
	if (c->incap >= INPUT_MAX) {
		char where[32];

		snprintf(where, sizeof(where), "line %lu", c->lineno + 1);
		input_fail(c, where, "line longer than %u bytes", INPUT_MAX);
	}
	cap = c->incap == 0 ? 65536 : c->incap * 2;
	if ((nb = realloc(c->inbuf, cap)) == NULL)
		fatal(c, EXIT_RUNTIME, "%s", strerror(errno));
	c->inbuf = nb;
	c->incap = cap;
}

/* Standard input is readable: take what is there. */
static void
input_read(struct cat *c)
{
	ssize_t n;

	input_grow(c);
	n = read(STDIN_FILENO, c->inbuf + c->inlen, c->incap - c->inlen);
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		fatal(c, EXIT_RUNTIME, "stdin: %s", strerror(errno));
	}
	clock_gettime(CLOCK_MONOTONIC, &c->last);
	if (n == 0) {
		/* A last line without a newline still counts. */
		if (c->inlen > 0)
			send_line(c, c->inbuf, c->inlen);
		c->inlen = 0;
		c->reading = 0;
		return;
	}
	c->inlen += (size_t)n;
	input_lines(c);
}

/* ---- receiving ---------------------------------------------------------- */

static const char *
fd_kind(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return "unknown";
	if (S_ISREG(st.st_mode))
		return "file";
	if (S_ISDIR(st.st_mode))
		return "dir";
	if (S_ISCHR(st.st_mode))
		return "chr";
	if (S_ISBLK(st.st_mode))
		return "blk";
	if (S_ISFIFO(st.st_mode))
		return "pipe";
	if (S_ISSOCK(st.st_mode))
		return "socket";
	return "unknown";
}

/*
 * Wait for fd to have something to read.  Files and disks always do;
 * anything else counts as finished once it stays silent for a while.
 */
static int
save_wait(struct cat *c, int fd, const char *kind)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	int n;

	if (strcmp(kind, "file") == 0 || strcmp(kind, "blk") == 0)
		return 1;
	while ((n = poll(&pfd, 1, c->waitms >= 0 ? c->waitms :
	    SAVE_IDLE_MS)) == -1 && errno == EINTR)
		;
	return n > 0;
}

/* Copy what fd gives (from where it stands) into out. */
static void
save_copy(struct cat *c, int fd, const char *kind, int out, const char *path)
{
	char buf[65536];
	size_t total = 0;
	ssize_t n, w;

	while (total < SAVE_MAX && save_wait(c, fd, kind)) {
		if ((n = read(fd, buf, sizeof(buf))) == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			warnmsg("fd=%d (%s): read: %s", fd, kind,
			    strerror(errno));
			return;
		}
		if (n == 0)
			return;
		total += (size_t)n;
		for (w = 0; w < n; ) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));

			if (k == -1 && errno == EINTR)
				continue;
			if (k == -1)
				fatal(c, EXIT_RUNTIME, "%s: %s", path,
				    strerror(errno));
			w += k;
		}
	}
}

/*
 * -F: save what can be read from fd into a new file DIR/KIND.XXXXXX and
 * return its name (malloc'd), or NULL for a directory, which has nothing
 * to read.
 */
static char *
save_fd(struct cat *c, int fd, const char *kind)
{
	char *path;
	size_t len;
	int out;

	if (strcmp(kind, "dir") == 0)
		return NULL;
	len = strlen(c->savedir) + strlen(kind) + 10;
	if ((path = malloc(len)) == NULL)
		fatal(c, EXIT_RUNTIME, "%s", strerror(errno));
	snprintf(path, len, "%s/%s.XXXXXX", c->savedir, kind);
	if ((out = mkstemp(path)) == -1) {
		warnmsg("%s: %s", path, strerror(errno));
		free(path);
		cat_exit(c, EXIT_RUNTIME);
	}
	save_copy(c, fd, kind, out, path);
	if (close(out) == -1)
		fatal(c, EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	c->nsaved++;
	return path;
}

static void
json_string(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void
print_json(struct imsg *m, size_t len, int fd, const char *kind,
    const char *saved)
{
	const unsigned char *p = m->data;
	size_t i;

	printf("{\"type\":%lu,\"peerid\":%lu,\"pid\":%lu,\"len\":%zu,\"fd\":",
	    (unsigned long)m->hdr.type, (unsigned long)m->hdr.peerid,
	    (unsigned long)m->hdr.pid, len);
	if (fd == -1)
		fputs("null", stdout);
	else {
		printf("{\"number\":%d,\"kind\":", fd);
		json_string(kind);
		if (saved != NULL) {
			fputs(",\"file\":", stdout);
			json_string(saved);
		}
		putchar('}');
	}
	fputs(",\"data\":\"", stdout);
	for (i = 0; i < len; i++)
		printf("%02x", p[i]);
	fputs("\"}\n", stdout);
}

/* The printer's line, in a buffer of the size it asks for. */
static char *
format_line(struct cat *c, struct imsg *m, size_t len, size_t show, int fd,
    const char *kind)
{
	char *line;
	size_t n;

	n = libimsg__text_format(NULL, 0, m->hdr.type, m->hdr.peerid,
	    m->hdr.pid, m->data, len, show, fd, kind);
	if ((line = malloc(n + 1)) == NULL)
		fatal(c, EXIT_RUNTIME, "%s", strerror(errno));
	libimsg__text_format(line, n + 1, m->hdr.type, m->hdr.peerid,
	    m->hdr.pid, m->data, len, show, fd, kind);
	return line;
}

/*
 * The text form.  A saved descriptor is shown as fd=@FILE, which is
 * also how input names a descriptor to open, so the line resends the
 * same content; the rest comes from the one printer.
 */
static void
print_text(struct cat *c, struct imsg *m, size_t len, int fd,
    const char *kind, const char *saved)
{
	char *line, *data;

	if (saved == NULL) {
		line = format_line(c, m, len, len, fd, kind);
		printf("%s\n", line);
		free(line);
		return;
	}
	line = format_line(c, m, len, 0, -1, NULL);
	printf("%s fd=@%s", line, saved);
	free(line);
	line = format_line(c, m, len, len, -1, NULL);
	if ((data = strstr(line, " data=")) != NULL)
		fputs(data, stdout);
	putchar('\n');
	free(line);
}

static void
print_message(struct cat *c, struct imsg *m)
{
	const char *kind = NULL;
	char *saved = NULL;
	size_t len;
	int fd;

	len = imsg_get_len(m);
	if ((fd = imsg_get_fd(m)) != -1) {
		kind = fd_kind(fd);
		if (c->savedir != NULL)
			saved = save_fd(c, fd, kind);
	}
	if (c->json)
		print_json(m, len, fd, kind, saved);
	else
		print_text(c, m, len, fd, kind, saved);
	free(saved);
	if (fd != -1)
		close(fd);
}

/* Print what has been received, up to -n. */
static void
receive_messages(struct cat *c)
{
	struct imsg m;
	ssize_t n;

	while (c->count == -1 || c->nrecv < c->count) {
		if ((n = imsg_get(&c->ib, &m)) == -1)
			fatal(c, EXIT_RUNTIME, "read: %s", strerror(errno));
		if (n == 0)
			break;
		print_message(c, &m);
		imsg_free(&m);
		c->nrecv++;
		clock_gettime(CLOCK_MONOTONIC, &c->last);
	}
	if (fflush(stdout) == EOF)
		fatal(c, EXIT_RUNTIME, "stdout: %s", strerror(errno));
}

static void
receive(struct cat *c)
{
	int r, e;

	r = imsgbuf_read(&c->ib);
	e = errno;
	/* Messages completed before an error are still delivered. */
	receive_messages(c);
	if (r == 0)
		c->peer_eof = 1;
	else if (r == -1 && e == ERANGE)
		fatal(c, EXIT_RUNTIME, "read: %s (the peer sent a bad header "
		    "or a message over the size limit, see -s)", strerror(e));
	else if (r == -1)
		fatal(c, EXIT_RUNTIME, "read: %s", strerror(e));
}

/* ---- the loop ----------------------------------------------------------- */

/* Milliseconds left of -w, for poll. */
static int
idle_left(struct cat *c)
{
	struct timespec now;
	long long ms;

	if (c->waitms < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(now.tv_sec - c->last.tv_sec) * 1000 +
	    (now.tv_nsec - c->last.tv_nsec) / 1000000;
	return ms >= c->waitms ? 0 : (int)(c->waitms - ms);
}

static int
cat_done(struct cat *c)
{
	if (c->peer_eof)
		return 1;
	if (c->count != -1 && c->nrecv >= c->count)
		return c->count > 0 || !c->reading;
	return 0;
}

static void
chan_events(struct cat *c, short revents)
{
	if (revents & POLLOUT) {
		if (imsgbuf_write(&c->ib) == -1)
			fatal(c, EXIT_RUNTIME, "write: %s", strerror(errno));
	}
	if (c->count == 0) {
		/* Not receiving: a hang-up is still the end. */
		if (revents & (POLLHUP | POLLERR))
			c->peer_eof = 1;
		return;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR))
		receive(c);
}

/* Until the peer is done, -n is reached or -w runs out. */
static void
cat_loop(struct cat *c)
{
	struct pollfd pfd[2];
	int n, timeout;

	clock_gettime(CLOCK_MONOTONIC, &c->last);
	while (!cat_done(c)) {
		pfd[0].fd = c->chan;
		pfd[0].events = c->count != 0 ? POLLIN : 0;
		if (imsgbuf_queuelen(&c->ib) > 0)
			pfd[0].events |= POLLOUT;
		pfd[0].revents = 0;
		pfd[1].fd = c->reading && imsgbuf_queuelen(&c->ib) < QUEUE_MAX ?
		    STDIN_FILENO : -1;
		pfd[1].events = POLLIN;
		pfd[1].revents = 0;
		timeout = idle_left(c);
		if ((n = poll(pfd, 2, timeout)) == -1) {
			if (errno == EINTR)
				continue;
			fatal(c, EXIT_RUNTIME, "poll: %s", strerror(errno));
		}
		if (n == 0 && idle_left(c) == 0)
			return;
		if (pfd[0].revents & POLLNVAL)
			fatal(c, EXIT_RUNTIME, "channel: %s", strerror(EBADF));
		chan_events(c, pfd[0].revents);
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
			input_read(c);
		else if (pfd[1].revents & POLLNVAL)
			c->reading = 0;
	}
}

/* Whether standard input is a source of messages. */
static int
reads_stdin(struct cat *c)
{
	if (c->count == 0 && c->nmtext > 0)
		return 0;
	if (c->mode == M_FD && c->inherited == STDIN_FILENO)
		return 0;
	if (fcntl(STDIN_FILENO, F_GETFL) == -1)
		return 0;
	return !isatty(STDIN_FILENO);
}

int
main(int argc, char *argv[])
{
	struct cat c;

	memset(&c, 0, sizeof(c));
	c.chan = -1;
	c.child = -1;
	c.childfd = -1;
	c.inherited = -1;
	c.count = -1;
	c.waitms = -1;
	c.maxsize = -1;
	/* Write errors come back as EPIPE, not as a signal. */
	signal(SIGPIPE, SIG_IGN);
	parse_args(&c, argc, argv);
	check_args(&c);
	c.reading = reads_stdin(&c);
	open_channel(&c);
	send_options(&c);
	cat_loop(&c);
	if (chan_flush(&c) == -1)
		fatal(&c, EXIT_RUNTIME, "write: %s", strerror(errno));
	cat_exit(&c, 0);
}
