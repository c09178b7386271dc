/*
 * imsgmem's scenarios, written once against the imsg API.  imsgmem.c
 * includes this file twice, once as it is (libimsg) and once with
 * plain.h's names mapped onto the plain implementation and DRV() giving
 * every function a plain_ prefix.  It uses imsgmem.c's helpers.
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
DRV(mem_init)(struct imsgbuf *ib, int fd, const struct stream *s)
{
	if (imsgbuf_init(ib, fd) == -1)
		die("imsgbuf_init: %s", strerror(errno));
	/* Only where needed: a larger limit may change how a reader reads. */
	if (s->maxpay > 0 && imsgbuf_set_maxsize(ib, s->maxpay) == -1)
		die("imsgbuf_set_maxsize: %s", strerror(errno));
}

static void
DRV(mem_flush)(struct imsgbuf *ib)
{
	while (imsgbuf_queuelen(ib) > 0)
		if (imsgbuf_write(ib) == -1)
			die("imsgbuf_write: %s", strerror(errno));
}

static void
DRV(mem_put)(struct imsgbuf *ib, uint64_t seq, size_t len)
{
	struct iovec iov[2];

	iov[0].iov_base = &seq;
	iov[0].iov_len = sizeof(seq);
	iov[1].iov_base = tmpl;
	iov[1].iov_len = len - sizeof(seq);
	if (imsg_composev(ib, MEM_TYPE, (uint32_t)seq, 0, -1, iov, 2) == -1)
		die("imsg_composev: %s", strerror(errno));
}

/* The writer, in its own process: the whole stream, on a blocking socket. */
static void
DRV(mem_send)(int fd, const struct stream *s)
{
	struct imsgbuf ib;
	uint64_t i;
	size_t queued = 0;

	DRV(mem_init)(&ib, fd, s);
	for (i = 0; i < s->count; i++) {
		DRV(mem_put)(&ib, i, stream_len(s, i));
		queued += stream_len(s, i);
		if (queued >= SEND_BATCH || imsgbuf_queuelen(&ib) >= 1000) {
			DRV(mem_flush)(&ib);
			queued = 0;
		}
	}
	DRV(mem_flush)(&ib);
	imsgbuf_clear(&ib);
}

/* Read the whole stream; keep every every'th message in kept, if any. */
static void
DRV(mem_recv)(struct imsgbuf *ib, const struct stream *s, struct imsg *kept,
    uint64_t every, size_t *nkept)
{
	struct imsg imsg;
	uint64_t seq = 0;
	int r;

	while (seq < s->count) {
		if ((r = imsgbuf_read(ib)) == -1)
			die("imsgbuf_read: %s", strerror(errno));
		if (r == 0)
			die("end of file after %llu messages",
			    (unsigned long long)seq);
		while ((r = imsgbuf_get(ib, &imsg)) == 1) {
			if (imsg_get_id(&imsg) != (uint32_t)seq ||
			    imsg_get_len(&imsg) != stream_len(s, seq))
				die("message %llu: wrong id or length",
				    (unsigned long long)seq);
			if (kept != NULL && seq % every == 0)
				kept[(*nkept)++] = imsg;
			else
				imsg_free(&imsg);
			seq++;
		}
		if (r == -1)
			die("imsgbuf_get: %s", strerror(errno));
	}
}

/* (a) Keep keep small messages out of KEEP_TOTAL received. */
static void
DRV(scen_keep)(uint64_t keep, struct mres *res)
{
	struct stream s = { KEEP_TOTAL, KEEP_PAYLOAD, 0, 0 };
	struct imsgbuf ib;
	struct imsg *kept;
	struct mem m0, m1;
	size_t nkept = 0, i;
	pid_t pid;
	int sock;

	if ((kept = calloc(keep, sizeof(*kept))) == NULL)
		die("calloc");
	pid = spawn_writer(&s, &sock, DRV(mem_send));
	mem_now(&m0);
	DRV(mem_init)(&ib, sock, &s);
	DRV(mem_recv)(&ib, &s, kept, s.count / keep, &nkept);
	mem_now(&m1);
	if (nkept != keep)
		die("kept %zu messages, not %llu", nkept,
		    (unsigned long long)keep);
	mem_diff(&m1, &m0, &res->d[0]);
	for (i = 0; i < nkept; i++)
		imsg_free(&kept[i]);
	imsgbuf_clear(&ib);
	reap_writer(pid);
	free(kept);
}

/* One message each way on pair k, then both read and freed. */
static void
DRV(idle_pair)(struct imsgbuf *ib, const struct stream *s)
{
	struct imsg imsg;
	int i, r;

	for (i = 0; i < 2; i++) {
		DRV(mem_put)(&ib[i], (uint64_t)i, IDLE_PAYLOAD);
		DRV(mem_flush)(&ib[i]);
	}
	for (i = 0; i < 2; i++) {
		while ((r = imsgbuf_get(&ib[i], &imsg)) == 0)
			if (imsgbuf_read(&ib[i]) != 1)
				die("imsgbuf_read: %s", strerror(errno));
		if (r == -1 || imsg_get_len(&imsg) != stream_len(s, 0))
			die("idle channel: no message");
		imsg_free(&imsg);
	}
}

/* (b) n imsgbufs, two on each socketpair, after light traffic. */
static void
DRV(scen_idle)(int n, struct mres *res)
{
	struct stream s = { 1, IDLE_PAYLOAD, 0, 0 };
	struct imsgbuf *ib;
	struct mem m0, m1;
	int *fds, k;

	if ((ib = calloc((size_t)n, sizeof(*ib))) == NULL ||
	    (fds = calloc((size_t)n, sizeof(*fds))) == NULL)
		die("calloc");
	for (k = 0; k < n; k += 2)
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds + k) == -1)
			die("socketpair: %s", strerror(errno));
	mem_now(&m0);
	for (k = 0; k < n; k++)
		DRV(mem_init)(&ib[k], fds[k], &s);
	for (k = 0; k < n; k += 2)
		DRV(idle_pair)(ib + k, &s);
	mem_now(&m1);
	mem_diff(&m1, &m0, &res->d[0]);
	for (k = 0; k < n; k++) {
		imsgbuf_clear(&ib[k]);
		close(fds[k]);
	}
	free(ib);
	free(fds);
}

/* (c) A burst of mixed sizes, each freed as it is taken. */
static void
DRV(scen_burst)(struct mres *res)
{
	struct stream s = { BURST_COUNT, 0, BURST_SEED, MAX_PAYLOAD };
	struct imsgbuf ib;
	struct mem m0, m1, m2;
	pid_t pid;
	int sock;

	pid = spawn_writer(&s, &sock, DRV(mem_send));
	mem_now(&m0);
	DRV(mem_init)(&ib, sock, &s);
	DRV(mem_recv)(&ib, &s, NULL, 1, NULL);
	mem_now(&m1);
	imsgbuf_clear(&ib);
	mem_now(&m2);
	reap_writer(pid);
	mem_diff(&m1, &m0, &res->d[0]);
	mem_diff(&m2, &m0, &res->d[1]);
}

/* (d) The reading thread: ready, the burst, idle, then gone. */
static void *
DRV(thr_main)(void *arg)
{
	struct thr *t = arg;
	struct imsgbuf ib;
	void *p;

	/* Its malloc arena exists before the baseline: the thread's cost. */
	if ((p = malloc(64)) == NULL)
		die("malloc");
	free(p);
	thr_signal(t->up[1]);
	thr_wait(t->down[0]);
	DRV(mem_init)(&ib, t->sock, t->s);
	DRV(mem_recv)(&ib, t->s, NULL, 1, NULL);
	thr_signal(t->up[1]);
	/* Idle with its channel open, as a daemon's worker would be. */
	thr_wait(t->down[0]);
	imsgbuf_clear(&ib);
	return NULL;
}

static void
DRV(scen_thread)(struct mres *res)
{
	struct stream s = { THREAD_COUNT, 0, THREAD_SEED, MAX_PAYLOAD };
	struct mem m0, m1, m2, m3;
	struct thr t;
	pthread_t th;
	pid_t pid;

	thr_setup(&t, &s);
	pid = spawn_writer(&s, &t.sock, DRV(mem_send));
	if (pthread_create(&th, NULL, DRV(thr_main), &t) != 0)
		die("pthread_create");
	thr_wait(t.up[0]);
	mem_now(&m0);
	thr_signal(t.down[1]);
	thr_wait(t.up[0]);
	mem_now(&m1);
	sleep(IDLE_SECS);
	mem_now(&m2);
	thr_signal(t.down[1]);
	if (pthread_join(th, NULL) != 0)
		die("pthread_join");
	mem_now(&m3);
	reap_writer(pid);
	mem_diff(&m2, &m0, &res->d[0]);
	mem_diff(&m1, &m0, &res->d[1]);
	mem_diff(&m3, &m0, &res->d[2]);
	thr_teardown(&t);
}
