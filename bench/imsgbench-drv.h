/*
 * imsgbench's driver of the imsg API: the writer, reader and ping-pong
 * sides.  imsgbench.c includes this file twice, once as it is (libimsg)
 * and once with plain.h's names mapped onto the plain implementation and
 * DRV() giving every function a plain_ prefix, so both run the same code.
 * It is not a header of its own: it uses imsgbench.c's helpers.
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
 * WHATSOEVER RESULTING FROM LOSS OF MIND, USE, DATA OR PROFITS, WHETHER IN
 * AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

static void
DRV(imsg_setup)(struct imsgbuf *ib, const struct bcase *c, int fd)
{
	if (imsgbuf_init(ib, fd) == -1)
		die("imsgbuf_init: %s", strerror(errno));
	if (c->paylen + IMSG_HEADER_SIZE > MAX_IMSGSIZE &&
	    imsgbuf_set_maxsize(ib, (uint32_t)c->paylen) == -1)
		die("imsgbuf_set_maxsize: %s", strerror(errno));
	if (c->kind == K_FD)
		imsgbuf_allow_fdpass(ib);
}

static void
DRV(imsg_put)(struct imsgbuf *ib, const struct bcase *c, uint64_t seq, int fd)
{
	struct iovec iov[2];
	int cnt = 0;

	if (c->paylen > 0) {
		iov[0].iov_base = &seq;
		iov[0].iov_len = sizeof(seq);
		iov[1].iov_base = tmpl + sizeof(seq);
		iov[1].iov_len = c->paylen - sizeof(seq);
		cnt = c->paylen > sizeof(seq) ? 2 : 1;
	}
	if (imsg_composev(ib, c->type, (uint32_t)seq, 0, fd, iov, cnt) == -1)
		die("imsg_composev: %s", strerror(errno));
}

/*
 * Write until the queue is empty.  imsgbuf_write makes one system call
 * and does not tell a full socket from a partial write, so wait for room
 * only when no message left: a writer passing a descriptor per message
 * sends one message per call and should not poll between them.
 */
static void
DRV(imsg_flush_nb)(struct imsgbuf *ib)
{
	uint32_t q;

	while ((q = imsgbuf_queuelen(ib)) > 0) {
		if (imsgbuf_write(ib) == -1)
			die("imsgbuf_write: %s", strerror(errno));
		if (imsgbuf_queuelen(ib) == q)
			wait_fd(ib->fd, POLLOUT);
	}
}

static void
DRV(imsg_check)(const struct bcase *c, struct imsg *imsg, uint64_t seq)
{
	size_t len = imsg_get_len(imsg);
	int fd;

	if (imsg_get_type(imsg) != c->type ||
	    imsg_get_id(imsg) != (uint32_t)seq || len != c->paylen ||
	    imsg->hdr.len != len + IMSG_HEADER_SIZE)
		die("message %llu: type %u id %u len %zu",
		    (unsigned long long)seq, imsg_get_type(imsg),
		    imsg_get_id(imsg), len);
	if (len > 0 && sum64(imsg->data, len) != c->tsum + seq)
		die("message %llu: bad payload", (unsigned long long)seq);
	fd = imsg_get_fd(imsg);
	if (c->kind == K_FD)
		check_fd(fd, seq);
	else if (fd != -1)
		die("message %llu: unexpected descriptor",
		    (unsigned long long)seq);
}

/* Read one batch; 0 at end of file. */
static int
DRV(imsg_fill)(struct imsgbuf *ib)
{
	int r;

	wait_fd(ib->fd, POLLIN);
	if ((r = imsgbuf_read(ib)) == -1)
		die("imsgbuf_read: %s", strerror(errno));
	return r;
}

static void
DRV(imsg_expect_eof)(struct imsgbuf *ib)
{
	struct pollfd pfd;
	struct imsg imsg;
	int r;

	pfd.fd = ib->fd;
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, EOF_TIMEOUT_MS) == 0)
			die("no end of file after the last message");
		if ((r = imsgbuf_read(ib)) == -1)
			die("imsgbuf_read: %s", strerror(errno));
		if (imsgbuf_get(ib, &imsg) != 0)
			die("a message after the last one");
		if (r == 0)
			return;
	}
}

static void
DRV(reader_imsg)(const struct bcase *c, int fd, int gofd,
    struct side_result *res)
{
	struct imsgbuf ib;
	struct imsg imsg;
	struct meter m;
	uint64_t seq = 0, n = c->count, warm = n / 8;
	double t0;
	int r;

	meter_start(&m);
	DRV(imsg_setup)(&ib, c, fd);
	if (warm == 0)
		meter_mark(&m, 0);
	t0 = now();
	start_writer(gofd);
	while (seq < n) {
		if (DRV(imsg_fill)(&ib) == 0)
			die("end of file after %llu messages",
			    (unsigned long long)seq);
		while ((r = imsgbuf_get(&ib, &imsg)) == 1) {
			if (seq == n)
				die("a message after the last one");
			DRV(imsg_check)(c, &imsg, seq);
			imsg_free(&imsg);
			if (++seq == warm)
				meter_mark(&m, seq);
		}
		if (r == -1)
			die("imsgbuf_get: %s", strerror(errno));
	}
	res->secs = now() - t0;
	meter_end(&m, n, res);
	DRV(imsg_expect_eof)(&ib);
	imsgbuf_clear(&ib);
}

static void
DRV(writer_imsg)(const struct bcase *c, int fd,
    struct side_result *res)
{
	struct imsgbuf ib;
	struct meter m;
	uint64_t seq = 0, n = c->count, warm = n / 8;
	size_t bytes, msglen = c->paylen + IMSG_HEADER_SIZE;
	uint32_t k;

	meter_start(&m);
	DRV(imsg_setup)(&ib, c, fd);
	while (seq < n) {
		for (k = 0, bytes = 0; seq < n && k < c->batch_msgs &&
		    bytes < c->batch_bytes; k++, seq++, bytes += msglen)
			DRV(imsg_put)(&ib, c, seq,
			    c->kind == K_FD ? dup_ref(seq) : -1);
		DRV(imsg_flush_nb)(&ib);
		if (seq >= warm)
			meter_mark(&m, seq);
	}
	meter_end(&m, n, res);
	imsgbuf_clear(&ib);
}

/* The ping-pong client measures; the server echoes each message. */
static void
DRV(client_imsg)(const struct bcase *c, int fd, int gofd,
    struct side_result *res)
{
	struct imsgbuf ib;
	struct imsg imsg;
	struct meter m;
	uint64_t seq, n = c->count, warm = n / 8;
	double t0;
	int r;

	meter_start(&m);
	DRV(imsg_setup)(&ib, c, fd);
	if (warm == 0)
		meter_mark(&m, 0);
	t0 = now();
	start_writer(gofd);
	for (seq = 0; seq < n; seq++) {
		DRV(imsg_put)(&ib, c, seq, -1);
		DRV(imsg_flush_nb)(&ib);
		for (;;) {
			if (DRV(imsg_fill)(&ib) == 0)
				die("end of file at round trip %llu",
				    (unsigned long long)seq);
			if ((r = imsgbuf_get(&ib, &imsg)) == -1)
				die("imsgbuf_get: %s", strerror(errno));
			if (r == 1)
				break;
		}
		DRV(imsg_check)(c, &imsg, seq);
		imsg_free(&imsg);
		if (seq + 1 == warm)
			meter_mark(&m, seq + 1);
	}
	res->secs = now() - t0;
	meter_end(&m, n, res);
	DRV(imsg_expect_eof)(&ib);
	imsgbuf_clear(&ib);
}

static void
DRV(server_imsg)(const struct bcase *c, int fd,
    struct side_result *res)
{
	struct imsgbuf ib;
	struct imsg imsg;
	struct meter m;
	uint64_t seq = 0, n = c->count, warm = n / 8;
	int r;

	meter_start(&m);
	DRV(imsg_setup)(&ib, c, fd);
	while (seq < n) {
		if (DRV(imsg_fill)(&ib) == 0)
			die("end of file after %llu messages",
			    (unsigned long long)seq);
		while ((r = imsgbuf_get(&ib, &imsg)) == 1) {
			DRV(imsg_check)(c, &imsg, seq);
			imsg_free(&imsg);
			DRV(imsg_put)(&ib, c, seq++, -1);
		}
		if (r == -1)
			die("imsgbuf_get: %s", strerror(errno));
		DRV(imsg_flush_nb)(&ib);
		if (seq >= warm)
			meter_mark(&m, seq);
	}
	meter_end(&m, n, res);
	imsgbuf_clear(&ib);
}

/* A few small messages from a to b, so the code paths are mapped. */
static void
DRV(imsg_warm)(const struct bcase *w, int a, int b)
{
	struct imsgbuf wa, wb;
	struct imsg imsg;
	uint64_t i;

	DRV(imsg_setup)(&wa, w, a);
	DRV(imsg_setup)(&wb, w, b);
	for (i = 0; i < w->count; i++) {
		DRV(imsg_put)(&wa, w, i, -1);
		DRV(imsg_flush_nb)(&wa);
		if (DRV(imsg_fill)(&wb) != 1 || imsgbuf_get(&wb, &imsg) != 1)
			die("warm-up: no message");
		DRV(imsg_check)(w, &imsg, i);
		imsg_free(&imsg);
	}
	imsgbuf_clear(&wa);
	imsgbuf_clear(&wb);
}

/* -1: both ends in one process, for callgrind (--toggle-collect). */
static void NOINLINE
DRV(single_loop)(struct imsgbuf *w, struct imsgbuf *r, const struct bcase *c,
    uint64_t n, unsigned int batch)
{
	struct imsg imsg;
	uint64_t sent = 0, got = 0;
	unsigned int k, idle = 0;
	int g;

	while (got < n) {
		for (k = 0; k < batch && sent < n; k++)
			DRV(imsg_put)(w, c, sent++, -1);
		do {
			if (imsgbuf_queuelen(w) > 0 && imsgbuf_write(w) == -1)
				die("imsgbuf_write: %s", strerror(errno));
			if (imsgbuf_read(r) != 1)
				die("imsgbuf_read: %s", strerror(errno));
			while ((g = imsgbuf_get(r, &imsg)) == 1) {
				DRV(imsg_check)(c, &imsg, got++);
				imsg_free(&imsg);
				idle = 0;
			}
			if (g == -1)
				die("imsgbuf_get: %s", strerror(errno));
			if (++idle > 1000)
				die("no progress at message %llu",
				    (unsigned long long)got);
		} while (got < sent);
	}
}

/* The loop over sockets a and b; its time, and allocations in *allocs. */
static double
DRV(single_run)(const struct bcase *c, int a, int b, unsigned int batch,
    uint64_t *allocs)
{
	struct imsgbuf w, r;
	uint64_t a0;
	double t0, t1;

	DRV(imsg_setup)(&w, c, a);
	DRV(imsg_setup)(&r, c, b);
	a0 = alloc_count();
	t0 = now();
	DRV(single_loop)(&w, &r, c, c->count, batch);
	t1 = now();
	*allocs = alloc_count() - a0;
	imsgbuf_clear(&w);
	imsgbuf_clear(&r);
	return t1 - t0;
}
