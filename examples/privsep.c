/*
 * privsep: privilege separation with imsg.
 *
 * The parent stands for the privileged half of a daemon: it may open
 * files.  The child stands for the half that parses untrusted input: it
 * gives up its privileges first (when started as root) and from then on
 * can only use what the parent hands it.  Here the parent opens a file
 * the child could not open itself, passes the open descriptor over a
 * socketpair, and the child reads the file through it and sends back what
 * it read.  Both sides are driven by poll(2) on non-blocking sockets, the
 * way real daemons run their imsg channels.
 *
 * Exits 0 if the child read exactly what the parent wrote into the file.
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

/* For setgroups(2); glibc and musl hide it in strict C99 mode. */
#define _DEFAULT_SOURCE

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <imsg.h>

/* The protocol between the two halves. */
enum privsep_msg {
	MSG_READ_FILE = 1,	/* parent -> child: path, with its fd */
	MSG_FILE_DATA,		/* child -> parent: what the child read */
	MSG_FAILED		/* child -> parent: a message for the log */
};

#define POLL_TIMEOUT	(10 * 1000)	/* ms; a stuck peer is a failure */
#define READ_MAX	4096		/* the most the child reads back */

static const char	 content[] =
    "Only the parent may open this file; the child reads it anyway.\n";

static const char	*whoami = "parent";

static void
complain(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", whoami);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define warn_errno(what)	complain("%s: %s", (what), strerror(errno))

/*
 * dispatch() handles one received message.  It returns -1 on failure,
 * 0 to keep going, and 1 when this side has finished its work (the loop
 * then returns as soon as everything queued has been written).
 */
typedef int (*dispatch_fn)(struct imsgbuf *, struct imsg *, void *);

/*
 * The event loop both halves share: wait until the socket is readable, or
 * writable while something is queued, move bytes in and out, and hand
 * each complete message to dispatch.  Returns -1 on error, 0 when the
 * peer closed the channel, 1 when dispatch reported it was done.
 */
static int
event_loop(struct imsgbuf *ib, dispatch_fn dispatch, void *arg)
{
	struct pollfd pfd;
	struct imsg imsg;
	int done = 0, n;

	for (;;) {
		if (done && imsgbuf_queuelen(ib) == 0)
			return 1;
		pfd.fd = ib->fd;
		pfd.events = POLLIN;
		if (imsgbuf_queuelen(ib) > 0)
			pfd.events |= POLLOUT;
		if ((n = poll(&pfd, 1, POLL_TIMEOUT)) == -1) {
			if (errno == EINTR)
				continue;
			warn_errno("poll");
			return -1;
		}
		if (n == 0) {
			complain("no progress for %d seconds", POLL_TIMEOUT / 1000);
			return -1;
		}

		/* A full socket buffer is not an error: 0, try later. */
		if ((pfd.revents & POLLOUT) && imsgbuf_write(ib) == -1) {
			warn_errno("imsgbuf_write");
			return -1;
		}
		if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) == 0)
			continue;

		/* 1 means "data or nothing yet", 0 end of file. */
		switch (imsgbuf_read(ib)) {
		case -1:
			warn_errno("imsgbuf_read");
			return -1;
		case 0:
			return 0;
		}
		while ((n = imsgbuf_get(ib, &imsg)) == 1) {
			n = dispatch(ib, &imsg, arg);
			/* Frees the payload and closes an unclaimed fd. */
			imsg_free(&imsg);
			if (n == -1)
				return -1;
			if (n == 1)
				done = 1;
		}
		if (n == -1) {
			warn_errno("imsgbuf_get");
			return -1;
		}
	}
}

/*
 * Make the child harmless: when started as root, become "nobody".  A real
 * daemon would also chroot(2) into an empty directory first.
 */
static int
drop_privileges(void)
{
	struct passwd *pw;
	gid_t gid;

	if (geteuid() != 0) {
		printf("child: not root, so there are no privileges to drop\n");
		return 0;
	}
	if ((pw = getpwnam("nobody")) == NULL) {
		complain("no user \"nobody\" to switch to");
		return -1;
	}
	gid = pw->pw_gid;
	if (setgroups(1, &gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		warn_errno("dropping privileges");
		return -1;
	}
	if (setuid(0) != -1) {
		complain("could get root back after dropping it");
		return -1;
	}
	printf("child: dropped root, now uid %ld\n", (long)getuid());
	return 0;
}

/* Child: report a failure to the parent as well as on stderr. */
static int
child_fail(struct imsgbuf *ib, const char *why)
{
	complain("%s", why);
	if (imsg_compose(ib, MSG_FAILED, 0, 0, -1, why, strlen(why) + 1) == -1)
		warn_errno("imsg_compose");
	return 0;
}

/*
 * Child: the one request it serves.  The payload is the path, only for
 * the log and to show that the child cannot open it by name; the
 * descriptor is what it really works with.
 */
static int
child_dispatch(struct imsgbuf *ib, struct imsg *imsg, void *arg)
{
	struct ibuf payload;
	char buf[READ_MAX], *path;
	ssize_t n;
	int fd, *served = arg;

	if (imsg_get_type(imsg) != MSG_READ_FILE) {
		complain("unexpected message type %u", imsg_get_type(imsg));
		return -1;
	}
	if (imsg_get_ibuf(imsg, &payload) == -1 ||
	    (path = ibuf_get_string(&payload, ibuf_size(&payload))) == NULL)
		return child_fail(ib, "MSG_READ_FILE without a path");

	if ((fd = open(path, O_RDONLY)) == -1)
		printf("child: open(\"%s\") by name fails: %s\n", path,
		    strerror(errno));
	else {
		printf("child: could open \"%s\" by name too\n", path);
		close(fd);
	}
	free(path);

	/* From here on the descriptor is ours to close. */
	if ((fd = imsg_get_fd(imsg)) == -1)
		return child_fail(ib, "MSG_READ_FILE came without a descriptor");
	printf("child: received descriptor %d\n", fd);
	if ((n = read(fd, buf, sizeof(buf))) == -1) {
		close(fd);
		return child_fail(ib, "read from the received descriptor");
	}
	close(fd);
	printf("child: read %zd bytes through it, sending them back\n", n);

	if (imsg_compose(ib, MSG_FILE_DATA, 0, 0, -1, buf, (size_t)n) == -1) {
		warn_errno("imsg_compose");
		return -1;
	}
	(*served)++;
	return 0;
}

static int
child_main(int sock)
{
	struct imsgbuf ib;
	int served = 0;

	whoami = "child";
	if (drop_privileges() == -1)
		return 1;
	if (imsgbuf_init(&ib, sock) == -1) {
		warn_errno("imsgbuf_init");
		return 1;
	}
	/* Descriptors are only accepted on channels that allow them. */
	imsgbuf_allow_fdpass(&ib);

	/* The parent closing the channel is the signal to stop. */
	if (event_loop(&ib, child_dispatch, &served) == -1 || served == 0) {
		imsgbuf_clear(&ib);
		return 1;
	}
	imsgbuf_clear(&ib);
	printf("child: parent closed the channel, exiting\n");
	return 0;
}

/* Parent: the child's answer ends the conversation. */
static int
parent_dispatch(struct imsgbuf *ib, struct imsg *imsg, void *arg)
{
	char buf[READ_MAX];
	size_t len = imsg_get_len(imsg);

	(void)ib;
	(void)arg;
	switch (imsg_get_type(imsg)) {
	case MSG_FILE_DATA:
		if (len > sizeof(buf) || imsg_get_buf(imsg, buf, len) == -1) {
			complain("bad MSG_FILE_DATA of %zu bytes", len);
			return -1;
		}
		printf("parent: child sent back %zu bytes: %.*s", len,
		    (int)len, buf);
		if (len != sizeof(content) - 1 ||
		    memcmp(buf, content, len) != 0) {
			complain("that is not what the file holds");
			return -1;
		}
		return 1;
	case MSG_FAILED:
		if (len == 0 || len > sizeof(buf) ||
		    imsg_get_strbuf(imsg, buf, len) == -1)
			strcpy(buf, "(unreadable reason)");
		complain("child failed: %s", buf);
		return -1;
	default:
		complain("unexpected message type %u", imsg_get_type(imsg));
		return -1;
	}
}

static int
parent_main(int sock, const char *path)
{
	struct imsgbuf ib;
	int fd, rv;

	if (imsgbuf_init(&ib, sock) == -1) {
		warn_errno("imsgbuf_init");
		return -1;
	}
	imsgbuf_allow_fdpass(&ib);

	if ((fd = open(path, O_RDONLY)) == -1) {
		warn_errno(path);
		imsgbuf_clear(&ib);
		return -1;
	}
	printf("parent: opened \"%s\" as descriptor %d, passing it on\n",
	    path, fd);
	/* On success the library owns fd: it is closed once it is sent. */
	if (imsg_compose(&ib, MSG_READ_FILE, 0, 0, fd, path,
	    strlen(path) + 1) == -1) {
		warn_errno("imsg_compose");
		close(fd);
		imsgbuf_clear(&ib);
		return -1;
	}

	rv = event_loop(&ib, parent_dispatch, NULL);
	if (rv == 0)
		complain("child closed the channel without answering");
	imsgbuf_clear(&ib);
	return rv == 1 ? 0 : -1;
}

/* A file in a fresh private directory, readable by its owner only. */
static int
make_private_file(char *dir, char *path, size_t pathsz)
{
	int fd;

	if (mkdtemp(dir) == NULL) {
		warn_errno("mkdtemp");
		return -1;
	}
	snprintf(path, pathsz, "%s/secret.txt", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1) {
		warn_errno(path);
		rmdir(dir);
		return -1;
	}
	if (write(fd, content, sizeof(content) - 1) !=
	    (ssize_t)sizeof(content) - 1) {
		warn_errno("write");
		close(fd);
		unlink(path);
		rmdir(dir);
		return -1;
	}
	close(fd);
	return 0;
}

static int
wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			warn_errno("waitpid");
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		complain("child killed by signal %d", WTERMSIG(status));
	else
		complain("child exited with status %d", WEXITSTATUS(status));
	return -1;
}

int
main(void)
{
	char dir[1024], path[1100];
	const char *tmp;
	pid_t pid;
	int sv[2], rv;

	/*
	 * A peer that goes away must show up as an error from imsgbuf_write,
	 * not kill us; OpenBSD daemons ignore SIGPIPE for the same reason.
	 */
	signal(SIGPIPE, SIG_IGN);
	/* Keep the two processes' lines in order when stdout is a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/privsep.XXXXXX", tmp);
	if (make_private_file(dir, path, sizeof(path)) == -1)
		return 1;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		warn_errno("socketpair");
		return 1;
	}
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(sv[1], F_SETFL, O_NONBLOCK) == -1) {
		warn_errno("fcntl");
		return 1;
	}
	fflush(stdout);
	switch ((pid = fork())) {
	case -1:
		warn_errno("fork");
		return 1;
	case 0:
		close(sv[0]);
		rv = child_main(sv[1]);
		fflush(stdout);
		_exit(rv);
	}
	close(sv[1]);

	rv = parent_main(sv[0], path);
	/* Closing our end tells the child to finish. */
	close(sv[0]);
	if (wait_child(pid) == -1)
		rv = -1;

	unlink(path);
	rmdir(dir);
	if (rv == -1) {
		printf("privsep: FAILED\n");
		return 1;
	}
	printf("parent: child exited cleanly\n");
	return 0;
}
