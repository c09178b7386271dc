/*
 * The traced program of test_trace: an ordinary imsg program, started by
 * the test with LIBIMSG_TRACE and LIBIMSG_TRACE_DATA set as each case
 * needs.  It knows nothing about the trace; the test reads the trace
 * file afterwards.
 *
 *	trace_peer MODE CHANFD
 *
 * CHANFD is the peer's end of a socketpair with the test.  The peer
 * reports what went wrong on standard output and exits non-zero; in
 * "errors" and "fds" mode it prints what the API returned, for the test
 * to compare between runs with and without a trace.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"

#define FAIL(...) do {							\
	printf("peer: " __VA_ARGS__);					\
	printf(" (line %d, errno %d)\n", __LINE__, errno);		\
	exit(1);							\
} while (0)

static int
wait_fd(int fd, short events)
{
	struct pollfd pfd;

	pfd.fd = fd;
	pfd.events = events;
	pfd.revents = 0;
	return poll(&pfd, 1, 5000);
}

/* The next message: 1, 0 at end of file, -1 on error. */
static int
next(struct imsgbuf *ib, struct imsg *m)
{
	int r;

	for (;;) {
		if ((r = imsgbuf_get(ib, m)) != 0)
			return r;
		if (wait_fd(ib->fd, POLLIN) <= 0)
			FAIL("nothing to read");
		if ((r = imsgbuf_read(ib)) != 1)
			return r;
	}
}

static void
flush(struct imsgbuf *ib)
{
	if (imsgbuf_flush(ib) == -1)
		FAIL("imsgbuf_flush");
}

/* Every way of queueing a message, once each. */
static void
script_sends(struct imsgbuf *ib)
{
	struct iovec iov[2];
	struct ibuf *b;
	int fd;

	if (imsg_compose(ib, 1, 11, 0, -1, "hello", 5) != 1)
		FAIL("imsg_compose");
	iov[0].iov_base = "abc";
	iov[0].iov_len = 3;
	iov[1].iov_base = "defg";
	iov[1].iov_len = 4;
	if (imsg_composev(ib, 2, 12, 0, -1, iov, 2) != 1)
		FAIL("imsg_composev");
	if ((b = imsg_create(ib, 3, 13, 77, 4)) == NULL ||
	    imsg_add(b, "wxyz", 4) != 4)
		FAIL("imsg_create");
	imsg_close(ib, b);
	if ((b = ibuf_open(8)) == NULL || ibuf_add(b, "12345678", 8) == -1)
		FAIL("ibuf_open");
	if (imsg_compose_ibuf(ib, 4, 14, 0, b) != 1)
		FAIL("imsg_compose_ibuf");
	/* The payload tells the test which number the descriptor has here. */
	if ((fd = open("/dev/null", O_RDONLY)) == -1)
		FAIL("open");
	if (imsg_compose(ib, 5, 15, 0, fd, &fd, sizeof(fd)) != 1)
		FAIL("imsg_compose fd");
	flush(ib);
}

/*
 * script: send messages 1-5; answer 20 (with a descriptor) with 6 giving
 * its number, forward 21, then read 22 and the end of file.
 */
static void
mode_script(int chan)
{
	struct imsgbuf ib;
	struct imsg m;
	int fd, r;

	if (imsgbuf_init(&ib, chan) == -1)
		FAIL("imsgbuf_init");
	imsgbuf_allow_fdpass(&ib);
	script_sends(&ib);
	while ((r = next(&ib, &m)) == 1) {
		switch (imsg_get_type(&m)) {
		case 20:
			fd = imsg_get_fd(&m);
			if (imsg_compose(&ib, 6, 16, 0, -1, &fd,
			    sizeof(fd)) != 1)
				FAIL("imsg_compose 6");
			if (fd != -1)
				close(fd);
			break;
		case 21:
			if (imsg_forward(&ib, &m) != 1)
				FAIL("imsg_forward");
			break;
		}
		imsg_free(&m);
		flush(&ib);
	}
	if (r != 0)
		FAIL("read");
	imsgbuf_clear(&ib);
}

/* fork: 1 from the parent, 2 from a forked child (pid in the header), 3. */
static void
mode_fork(int chan)
{
	struct imsgbuf ib;
	pid_t pid;
	int status;

	if (imsgbuf_init(&ib, chan) == -1)
		FAIL("imsgbuf_init");
	if (imsg_compose(&ib, 1, 1, 0, -1, NULL, 0) != 1)
		FAIL("imsg_compose");
	flush(&ib);
	if ((pid = fork()) == -1)
		FAIL("fork");
	if (pid == 0) {
		if (imsg_compose(&ib, 2, 2, getpid(), -1, NULL, 0) != 1)
			FAIL("imsg_compose in the child");
		flush(&ib);
		imsgbuf_clear(&ib);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) == -1 || status != 0)
		FAIL("child");
	if (imsg_compose(&ib, 3, 3, 0, -1, NULL, 0) != 1)
		FAIL("imsg_compose");
	flush(&ib);
	imsgbuf_clear(&ib);
}

/* Messages sent and received over a socketpair of our own. */
static void
loopback(int n, uint32_t base)
{
	struct imsgbuf a, b;
	struct imsg m;
	int sv[2], i;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 ||
	    imsgbuf_init(&a, sv[0]) == -1 || imsgbuf_init(&b, sv[1]) == -1)
		FAIL("socketpair");
	for (i = 0; i < n; i++) {
		if (imsg_compose(&a, 2, base + (uint32_t)i, 0, -1, "x", 1) != 1)
			FAIL("imsg_compose");
		flush(&a);
		if (next(&b, &m) != 1)
			FAIL("next");
		imsg_free(&m);
	}
	imsgbuf_clear(&a);
	imsgbuf_clear(&b);
	close(sv[0]);
	close(sv[1]);
}

/*
 * closeall: one message, then every descriptor from 3 up is closed and
 * the numbers 3-255 all become the write end of one pipe.  Messages sent
 * after that must leave the pipe empty.
 */
static void
mode_closeall(int chan)
{
	struct imsgbuf ib;
	char buf[256];
	int p[2], fd, rd;
	ssize_t n;

	if (imsgbuf_init(&ib, chan) == -1)
		FAIL("imsgbuf_init");
	if (imsg_compose(&ib, 1, 1, 0, -1, NULL, 0) != 1)
		FAIL("imsg_compose");
	flush(&ib);
	imsgbuf_clear(&ib);
	for (fd = 3; fd < 1024; fd++)
		(void)close(fd);
	/* The read end goes out of the way, above the numbers reused. */
	if (pipe(p) == -1 || (rd = fcntl(p[0], F_DUPFD, 300)) == -1 ||
	    close(p[0]) == -1 || fcntl(rd, F_SETFL, O_NONBLOCK) == -1)
		FAIL("pipe");
	for (fd = 3; fd < 256; fd++)
		if (fd != p[1] && dup2(p[1], fd) == -1)
			FAIL("dup2");
	loopback(20, 100);
	if ((n = read(rd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		FAIL("the pipe received %zd bytes: %s", n, buf);
	}
	if (n == -1 && errno != EAGAIN)
		FAIL("read");
}

static void
print_result(const char *what, long r)
{
	printf("%s=%ld errno=%d\n", what, r, errno);
}

/*
 * errors: a good message and a bad header in one read, then a write to
 * a closed socket.  Prints each result and errno.
 */
static void
mode_errors(int chan)
{
	struct imsgbuf ib;
	struct imsg m;
	int r;

	if (imsgbuf_init(&ib, chan) == -1)
		FAIL("imsgbuf_init");
	if (wait_fd(chan, POLLIN) <= 0)
		FAIL("poll");
	errno = 0;
	print_result("read", imsgbuf_read(&ib));
	while ((r = imsgbuf_get(&ib, &m)) == 1) {
		print_result("type", imsg_get_type(&m));
		imsg_free(&m);
	}
	print_result("get", r);
	errno = 0;
	print_result("read", imsgbuf_read(&ib));
	errno = EDOM;
	print_result("compose", imsg_compose(&ib, 41, 0, 0, -1, "z", 1));
	flush(&ib);
	/* The test closes its end once it has 41. */
	if (wait_fd(chan, POLLIN) <= 0)
		FAIL("poll");
	print_result("compose", imsg_compose(&ib, 42, 0, 0, -1, "z", 1));
	errno = 0;
	print_result("write", imsgbuf_write(&ib));
	print_result("queuelen", imsgbuf_queuelen(&ib));
	imsgbuf_clear(&ib);
}

/* fds: how many descriptors besides 0-2 and chan are open, and euid. */
static void
mode_fds(int chan)
{
	int fd, n = 0;

	for (fd = 3; fd < 1024; fd++)
		if (fd != chan && fcntl(fd, F_GETFD) != -1)
			n++;
	printf("fds=%d euid=%ld\n", n, (long)geteuid());
	loopback(3, 0);
}

static void *
thread_main(void *arg)
{
	loopback(200, (uint32_t)(uintptr_t)arg * 1000);
	return NULL;
}

/* threads: four threads trace at once into the same file. */
static void
mode_threads(void)
{
	pthread_t t[4];
	uintptr_t i;

	for (i = 0; i < 4; i++)
		if (pthread_create(&t[i], NULL, thread_main, (void *)i) != 0)
			FAIL("pthread_create");
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
}

int
main(int argc, char *argv[])
{
	int chan;

	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(10);
	if (argc != 3)
		FAIL("usage: trace_peer MODE CHANFD");
	chan = atoi(argv[2]);
	if (strcmp(argv[1], "script") == 0)
		mode_script(chan);
	else if (strcmp(argv[1], "fork") == 0)
		mode_fork(chan);
	else if (strcmp(argv[1], "closeall") == 0)
		mode_closeall(chan);
	else if (strcmp(argv[1], "errors") == 0)
		mode_errors(chan);
	else if (strcmp(argv[1], "fds") == 0)
		mode_fds(chan);
	else if (strcmp(argv[1], "threads") == 0)
		mode_threads();
	else
		FAIL("unknown mode %s", argv[1]);
	return 0;
}
