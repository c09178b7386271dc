/*
 * A small program that uses an installed libimsg the way its clients do.
 * The packaging tests build it three ways (pkg-config against the shared
 * library, pkg-config --static against libimsg.a, and find_package) and
 * run it; it exits 0 only if every step worked.
 *
 * One process plays both ends of a socketpair: "parent" sends a string,
 * a message built piece by piece, and the write end of a pipe; "child"
 * checks each, writes into the pipe through the descriptor it received,
 * and acknowledges.
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

#define _POSIX_C_SOURCE 200809L

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <imsg.h>

enum msgtype {
	MSG_GREETING = 1,
	MSG_NUMBERS,
	MSG_PIPE,
	MSG_ACK
};

static const char	 greeting[] = "hello from the other end";
static const char	 piped[] = "written through a passed descriptor";
static const uint32_t	 numbers[3] = { 7, 0x01020304, 0xfffffffe };

static void
fail(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	fprintf(stderr, "consumer: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (errno: %s)\n", strerror(saved));
	exit(1);
}

/* Wait for the next complete message on ib, reading as needed. */
static void
next_message(struct imsgbuf *ib, struct imsg *imsg)
{
	for (;;) {
		switch (imsgbuf_get(ib, imsg)) {
		case 1:
			return;
		case -1:
			fail("imsgbuf_get");
		}
		switch (imsgbuf_read(ib)) {
		case 0:
			fail("unexpected end of file");
		case -1:
			fail("imsgbuf_read");
		}
	}
}

static void
send_all(struct imsgbuf *ib, int pipe_wr)
{
	struct ibuf *msg;
	size_t i;

	if (imsg_compose(ib, MSG_GREETING, 7, 0, -1, greeting,
	    sizeof(greeting)) == -1)
		fail("imsg_compose greeting");

	/* Built in pieces, in network byte order, as protocols often are. */
	if ((msg = imsg_create(ib, MSG_NUMBERS, 8, 0, sizeof(numbers))) == NULL)
		fail("imsg_create");
	for (i = 0; i < 3; i++)
		if (ibuf_add_n32(msg, numbers[i]) == -1)
			fail("ibuf_add_n32");
	imsg_close(ib, msg);

	/* On success the library owns pipe_wr and closes it once sent. */
	if (imsg_compose(ib, MSG_PIPE, 9, 0, pipe_wr, NULL, 0) == -1)
		fail("imsg_compose pipe");

	if (imsgbuf_flush(ib) == -1)
		fail("imsgbuf_flush");
	printf("parent: sent 3 messages, one with a descriptor\n");
}

static void
check_greeting(struct imsg *imsg)
{
	char buf[sizeof(greeting)];

	if (imsg_get_id(imsg) != 7 || imsg_get_pid(imsg) != getpid())
		fail("greeting header: id %u pid %ld", imsg_get_id(imsg),
		    (long)imsg_get_pid(imsg));
	if (imsg_get_strbuf(imsg, buf, sizeof(buf)) == -1)
		fail("imsg_get_strbuf");
	if (strcmp(buf, greeting) != 0)
		fail("greeting is \"%s\"", buf);
	printf("child: greeting \"%s\"\n", buf);
}

static void
check_numbers(struct imsg *imsg)
{
	struct ibuf payload;
	uint32_t n;
	size_t i;

	if (imsg_get_len(imsg) != sizeof(numbers))
		fail("numbers: payload is %zu bytes", imsg_get_len(imsg));
	if (imsg_get_ibuf(imsg, &payload) == -1)
		fail("imsg_get_ibuf");
	for (i = 0; i < 3; i++) {
		if (ibuf_get_n32(&payload, &n) == -1)
			fail("ibuf_get_n32");
		if (n != numbers[i])
			fail("number %zu is %#x", i, (unsigned int)n);
	}
	if (ibuf_size(&payload) != 0)
		fail("numbers: %zu bytes left over", ibuf_size(&payload));
	printf("child: numbers %u %#x %#x\n", (unsigned int)numbers[0],
	    (unsigned int)numbers[1], (unsigned int)numbers[2]);
}

static void
use_passed_fd(struct imsg *imsg)
{
	int fd;

	if ((fd = imsg_get_fd(imsg)) == -1)
		fail("no descriptor came with MSG_PIPE");
	if (write(fd, piped, sizeof(piped)) != (ssize_t)sizeof(piped))
		fail("write to the passed descriptor");
	close(fd);
	printf("child: wrote %zu bytes through descriptor %d\n",
	    sizeof(piped), fd);
}

static void
receive_all(struct imsgbuf *ib)
{
	struct imsg imsg;
	int n;

	for (n = 0; n < 3; n++) {
		next_message(ib, &imsg);
		switch (imsg_get_type(&imsg)) {
		case MSG_GREETING:
			check_greeting(&imsg);
			break;
		case MSG_NUMBERS:
			check_numbers(&imsg);
			break;
		case MSG_PIPE:
			use_passed_fd(&imsg);
			break;
		default:
			errno = 0;
			fail("unexpected message type %u",
			    imsg_get_type(&imsg));
		}
		imsg_free(&imsg);
	}
	if (imsg_compose(ib, MSG_ACK, 0, 0, -1, NULL, 0) == -1 ||
	    imsgbuf_flush(ib) == -1)
		fail("sending MSG_ACK");
}

int
main(void)
{
	struct imsgbuf parent, child;
	struct imsg imsg;
	char buf[sizeof(piped)];
	int sv[2], pfd[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		fail("socketpair");
	if (pipe(pfd) == -1)
		fail("pipe");
	if (imsgbuf_init(&parent, sv[0]) == -1 ||
	    imsgbuf_init(&child, sv[1]) == -1)
		fail("imsgbuf_init");
	imsgbuf_allow_fdpass(&parent);
	imsgbuf_allow_fdpass(&child);

	send_all(&parent, pfd[1]);
	receive_all(&child);

	next_message(&parent, &imsg);
	if (imsg_get_type(&imsg) != MSG_ACK) {
		errno = 0;
		fail("expected MSG_ACK, got type %u", imsg_get_type(&imsg));
	}
	imsg_free(&imsg);
	printf("parent: acknowledged\n");

	/*
	 * The library closed its copy of the pipe's write end after sending
	 * it, and the child closed the received one, so after the data the
	 * pipe must report end of file rather than "would block".
	 */
	if (fcntl(pfd[0], F_SETFL, O_NONBLOCK) == -1)
		fail("fcntl");
	if (read(pfd[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf) ||
	    memcmp(buf, piped, sizeof(buf)) != 0)
		fail("pipe did not carry the expected bytes");
	if (read(pfd[0], buf, sizeof(buf)) != 0)
		fail("the pipe's write end is still open somewhere");
	printf("parent: read \"%s\" from the pipe\n", buf);

	imsgbuf_clear(&parent);
	imsgbuf_clear(&child);
	close(sv[0]);
	close(sv[1]);
	close(pfd[0]);
	printf("consumer: all good\n");
	return 0;
}
