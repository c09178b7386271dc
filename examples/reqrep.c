/*
 * reqrep: a request/reply server and its client over a named UNIX socket.
 *
 * imsg works over any connected stream socket, not only socketpairs.  The
 * program makes a private directory, forks a server that listens on a
 * socket in it, and connects to that socket as the client.  The client
 * sends a few requests, each tagged with its own id, checks and prints
 * the replies, and finally asks the server to shut down; the server
 * removes its socket and exits.  Both ends use blocking sockets, reading
 * with imsgbuf_read and sending with imsgbuf_flush.
 *
 * Exits 0 if every reply was right and the server exited cleanly.
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
#include <sys/un.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <imsg.h>

/* Requests, and the replies the server gives to them. */
enum reqrep_msg {
	REQ_ECHO = 1,		/* string: sent back unchanged */
	REQ_UPPER,		/* string: sent back in capitals */
	REQ_SUM,		/* 32-bit numbers, network order: their sum */
	REQ_SHUTDOWN,		/* no payload: the server stops */
	REP_TEXT = 100,		/* string */
	REP_SUM,		/* one 64-bit number, network order */
	REP_BYE,		/* no payload */
	REP_ERROR		/* string: why the request was refused */
};

#define TIMEOUT		30	/* seconds either process may take at most */
#define TEXT_MAX	256	/* longest string a request may carry */

static const char	*whoami = "client";

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
 * Wait for the next complete message on a blocking socket.  Returns 1
 * with *imsg filled in, 0 if the peer closed the connection, -1 on error.
 */
static int
read_message(struct imsgbuf *ib, struct imsg *imsg)
{
	for (;;) {
		switch (imsgbuf_get(ib, imsg)) {
		case 1:
			return 1;
		case -1:
			warn_errno("imsgbuf_get");
			return -1;
		}
		switch (imsgbuf_read(ib)) {
		case 0:
			return 0;
		case -1:
			warn_errno("imsgbuf_read");
			return -1;
		}
	}
}

/* The string payload of a request: NUL-terminated, TEXT_MAX at most. */
static int
get_text(struct imsg *imsg, char *buf, size_t bufsz)
{
	size_t len = imsg_get_len(imsg);

	if (len == 0 || len > bufsz)
		return -1;
	/* Fails (EOVERFLOW) unless the last byte is the terminating NUL. */
	return imsg_get_strbuf(imsg, buf, len);
}

static int
reply_text(struct imsgbuf *ib, uint32_t type, uint32_t id, const char *s)
{
	return imsg_compose(ib, type, id, 0, -1, s, strlen(s) + 1);
}

/* REQ_UPPER: built in a separate ibuf, then queued with its header. */
static int
serve_upper(struct imsgbuf *ib, uint32_t id, const char *s)
{
	struct ibuf *buf;
	size_t i, len = strlen(s) + 1;
	unsigned char *p;

	if ((buf = ibuf_dynamic(len, len)) == NULL)
		return -1;
	if ((p = ibuf_reserve(buf, len)) == NULL) {
		ibuf_free(buf);
		return -1;
	}
	for (i = 0; i < len; i++)
		p[i] = (unsigned char)toupper((unsigned char)s[i]);
	/* buf belongs to the library now, whether this works or not. */
	return imsg_compose_ibuf(ib, REP_TEXT, id, 0, buf);
}

/* REQ_SUM: read numbers until the payload is used up. */
static int
serve_sum(struct imsgbuf *ib, struct imsg *imsg)
{
	struct ibuf payload, *reply;
	uint64_t sum = 0;
	uint32_t n;

	if (imsg_get_ibuf(imsg, &payload) == -1 || ibuf_size(&payload) % 4)
		return reply_text(ib, REP_ERROR, imsg_get_id(imsg),
		    "REQ_SUM needs whole 32-bit numbers");
	while (ibuf_size(&payload) > 0) {
		if (ibuf_get_n32(&payload, &n) == -1)
			return -1;
		sum += n;
	}
	reply = imsg_create(ib, REP_SUM, imsg_get_id(imsg), 0, sizeof(sum));
	if (reply == NULL)
		return -1;
	if (ibuf_add_n64(reply, sum) == -1) {
		ibuf_free(reply);
		return -1;
	}
	imsg_close(ib, reply);
	return 0;
}

/*
 * Answer one request.  Returns -1 on failure, 1 after REQ_SHUTDOWN and
 * 0 otherwise.
 */
static int
serve_request(struct imsgbuf *ib, struct imsg *imsg)
{
	char text[TEXT_MAX], why[64];
	uint32_t id = imsg_get_id(imsg);

	switch (imsg_get_type(imsg)) {
	case REQ_ECHO:
	case REQ_UPPER:
		if (get_text(imsg, text, sizeof(text)) == -1)
			return reply_text(ib, REP_ERROR, id, "bad string");
		if (imsg_get_type(imsg) == REQ_ECHO)
			return reply_text(ib, REP_TEXT, id, text);
		return serve_upper(ib, id, text);
	case REQ_SUM:
		return serve_sum(ib, imsg);
	case REQ_SHUTDOWN:
		if (imsg_compose(ib, REP_BYE, id, 0, -1, NULL, 0) == -1)
			return -1;
		return 1;
	default:
		snprintf(why, sizeof(why), "unknown request type %u",
		    imsg_get_type(imsg));
		return reply_text(ib, REP_ERROR, id, why);
	}
}

/* One client, until it disconnects.  Returns like serve_request. */
static int
serve_client(int conn)
{
	struct imsgbuf ib;
	struct imsg imsg;
	int rv = 0, shutdown = 0;

	if (imsgbuf_init(&ib, conn) == -1) {
		warn_errno("imsgbuf_init");
		return -1;
	}
	while (rv != -1 && (rv = read_message(&ib, &imsg)) == 1) {
		rv = serve_request(&ib, &imsg);
		imsg_free(&imsg);
		if (rv == 1)
			shutdown = 1;
		if (rv == -1)
			warn_errno("answering a request");
		else if (imsgbuf_flush(&ib) == -1) {
			warn_errno("imsgbuf_flush");
			rv = -1;
		}
	}
	imsgbuf_clear(&ib);
	if (rv == -1)
		return -1;
	return shutdown;
}

/*
 * The server: listen on path, tell the parent through ready_fd that
 * clients may connect, and serve them one at a time until one asks for
 * a shutdown.
 */
static int
server_main(const char *path, int ready_fd)
{
	struct sockaddr_un sa;
	int conn, s, rv;

	whoami = "server";
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		complain("socket path too long: %s", path);
		return 1;
	}
	strcpy(sa.sun_path, path);
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    bind(s, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(s, 5) == -1) {
		warn_errno(path);
		return 1;
	}
	printf("server: listening on %s\n", path);
	if (write(ready_fd, "r", 1) != 1) {
		warn_errno("write");
		return 1;
	}
	close(ready_fd);

	do {
		if ((conn = accept(s, NULL, NULL)) == -1) {
			if (errno == EINTR)
				continue;
			warn_errno("accept");
			break;
		}
		printf("server: client connected\n");
		rv = serve_client(conn);
		close(conn);
	} while (rv == 0);

	close(s);
	unlink(path);
	if (rv != 1)
		return 1;
	printf("server: shutdown requested, socket removed, exiting\n");
	return 0;
}

/*
 * Client: send what is queued (one request) and wait for the reply.
 * Returns 0 with *reply filled in, or -1.
 */
static int
transact(struct imsgbuf *ib, struct imsg *reply)
{
	if (imsgbuf_flush(ib) == -1) {
		warn_errno("imsgbuf_flush");
		return -1;
	}
	switch (read_message(ib, reply)) {
	case 0:
		complain("server closed the connection");
		return -1;
	case -1:
		return -1;
	}
	return 0;
}

/*
 * A request carrying a string; the reply must be of type want_type,
 * carry the same id and the string want.
 */
static int
ask_text(struct imsgbuf *ib, uint32_t type, uint32_t id, const char *q,
    uint32_t want_type, const char *want)
{
	struct imsg reply;
	char text[TEXT_MAX];
	int rv = -1;

	if (reply_text(ib, type, id, q) == -1) {
		warn_errno("imsg_compose");
		return -1;
	}
	if (transact(ib, &reply) == -1)
		return -1;
	if (imsg_get_type(&reply) != want_type || imsg_get_id(&reply) != id ||
	    get_text(&reply, text, sizeof(text)) == -1)
		complain("request %u: bad reply (type %u, id %u)", id,
		    imsg_get_type(&reply), imsg_get_id(&reply));
	else if (strcmp(text, want) != 0)
		complain("request %u: got \"%s\", want \"%s\"", id, text,
		    want);
	else {
		printf("client: request %u (type %u) \"%s\" -> \"%s\"\n",
		    id, type, q, text);
		rv = 0;
	}
	imsg_free(&reply);
	return rv;
}

static int
ask_sum(struct imsgbuf *ib, uint32_t id, uint32_t count)
{
	struct imsg reply;
	struct ibuf *req, payload;
	uint64_t sum, want = (uint64_t)count * (count + 1) / 2;
	uint32_t i;
	int rv = -1;

	/* imsg_create when the payload is built piece by piece. */
	if ((req = imsg_create(ib, REQ_SUM, id, 0, count * 4)) == NULL) {
		warn_errno("imsg_create");
		return -1;
	}
	for (i = 1; i <= count; i++)
		if (ibuf_add_n32(req, i) == -1) {
			warn_errno("ibuf_add_n32");
			ibuf_free(req);
			return -1;
		}
	imsg_close(ib, req);

	if (transact(ib, &reply) == -1)
		return -1;
	if (imsg_get_type(&reply) != REP_SUM || imsg_get_id(&reply) != id ||
	    imsg_get_ibuf(&reply, &payload) == -1 ||
	    ibuf_get_n64(&payload, &sum) == -1 || ibuf_size(&payload) != 0)
		complain("request %u: bad reply", id);
	else if (sum != want)
		complain("request %u: sum %llu, want %llu", id,
		    (unsigned long long)sum, (unsigned long long)want);
	else {
		printf("client: request %u: sum of 1..%u -> %llu\n", id,
		    count, (unsigned long long)sum);
		rv = 0;
	}
	imsg_free(&reply);
	return rv;
}

static int
ask_shutdown(struct imsgbuf *ib, uint32_t id)
{
	struct imsg reply;
	int rv = 0;

	if (imsg_compose(ib, REQ_SHUTDOWN, id, 0, -1, NULL, 0) == -1) {
		warn_errno("imsg_compose");
		return -1;
	}
	if (transact(ib, &reply) == -1)
		return -1;
	if (imsg_get_type(&reply) != REP_BYE || imsg_get_id(&reply) != id) {
		complain("request %u: expected REP_BYE", id);
		rv = -1;
	} else
		printf("client: request %u: shutdown -> bye\n", id);
	imsg_free(&reply);
	return rv;
}

static int
client_main(const char *path)
{
	struct sockaddr_un sa;
	struct imsgbuf ib;
	int s, rv = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);	/* the server checked the length */
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    connect(s, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		warn_errno(path);
		return -1;
	}
	printf("client: connected to %s\n", path);
	if (imsgbuf_init(&ib, s) == -1) {
		warn_errno("imsgbuf_init");
		close(s);
		return -1;
	}

	/* Every request is tried, so one failure does not hide others. */
	if (ask_text(&ib, REQ_ECHO, 1, "hello, server", REP_TEXT,
	    "hello, server") == -1)
		rv = -1;
	if (ask_text(&ib, REQ_UPPER, 2, "imsg over a named socket", REP_TEXT,
	    "IMSG OVER A NAMED SOCKET") == -1)
		rv = -1;
	if (ask_sum(&ib, 3, 100) == -1)
		rv = -1;
	if (ask_text(&ib, 42, 4, "?", REP_ERROR,
	    "unknown request type 42") == -1)
		rv = -1;
	if (ask_shutdown(&ib, 5) == -1)
		rv = -1;

	imsgbuf_clear(&ib);
	close(s);
	return rv;
}

static int
wait_server(pid_t pid)
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
		complain("server killed by signal %d", WTERMSIG(status));
	else
		complain("server exited with status %d", WEXITSTATUS(status));
	return -1;
}

int
main(void)
{
	char dir[512], path[600], c;
	const char *tmp;
	pid_t pid;
	int ready[2], rv;

	/* A server that dies must be an error here, not kill the client. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/reqrep.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		warn_errno("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/server.sock", dir);

	if (pipe(ready) == -1) {
		warn_errno("pipe");
		return 1;
	}
	switch ((pid = fork())) {
	case -1:
		warn_errno("fork");
		return 1;
	case 0:
		/* Neither side may wait for ever on a broken peer. */
		alarm(TIMEOUT);
		close(ready[0]);
		_exit(server_main(path, ready[1]));
	}
	alarm(TIMEOUT);
	close(ready[1]);

	/* End of file instead of a byte means the server did not start. */
	if (read(ready[0], &c, 1) == 1)
		rv = client_main(path);
	else {
		complain("server did not start");
		rv = -1;
	}
	close(ready[0]);
	/* After a failure the server may still wait for a shutdown. */
	if (rv == -1)
		kill(pid, SIGTERM);
	if (wait_server(pid) == -1)
		rv = -1;

	unlink(path);	/* in case the server could not */
	rmdir(dir);
	if (rv == -1) {
		printf("reqrep: FAILED\n");
		return 1;
	}
	printf("client: server exited cleanly\n");
	return 0;
}
