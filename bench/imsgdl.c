/*
 * imsgdl: load an imsg implementation with dlopen, use it from a second
 * thread, dlclose it while that thread lives, then let the thread exit.
 * imsgmem runs it in a process of its own (one that has not linked the
 * library already, or dlclose would unload nothing) and reports "ok" or
 * the signal that killed it.
 *
 * usage: imsgdl LIBRARY PREFIX   (PREFIX "" for libimsg, "plain_" for plain)
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
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/socket.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <imsg.h>

/* The functions used, looked up by name. */
struct api {
	int	(*init)(struct imsgbuf *, int);
	int	(*set_maxsize)(struct imsgbuf *, uint32_t);
	int	(*compose)(struct imsgbuf *, uint32_t, uint32_t, pid_t, int,
		    const void *, size_t);
	int	(*write)(struct imsgbuf *);
	int	(*read)(struct imsgbuf *);
	int	(*get)(struct imsgbuf *, struct imsg *);
	void	(*free)(struct imsg *);
	void	(*clear)(struct imsgbuf *);
	uint32_t (*queuelen)(struct imsgbuf *);
};

static struct api	 api;
static int		 up[2], down[2];

static void
fail(const char *what)
{
	fprintf(stderr, "imsgdl: %s\n", what);
	exit(1);
}

static void *
sym(void *h, const char *prefix, const char *name)
{
	char buf[128];
	void *p;

	snprintf(buf, sizeof(buf), "%s%s", prefix, name);
	if ((p = dlsym(h, buf)) == NULL)
		fail(dlerror());
	return p;
}

/* memcpy: a function pointer may not be assigned from a void *. */
#define RESOLVE(field, name) do {					\
	void *p_ = sym(h, pf, name);					\
	memcpy(&api.field, &p_, sizeof(p_));				\
} while (0)

static void
resolve(void *h, const char *pf)
{
	RESOLVE(init, "imsgbuf_init");
	RESOLVE(set_maxsize, "imsgbuf_set_maxsize");
	RESOLVE(compose, "imsg_compose");
	RESOLVE(write, "imsgbuf_write");
	RESOLVE(read, "imsgbuf_read");
	RESOLVE(get, "imsgbuf_get");
	RESOLVE(free, "imsg_free");
	RESOLVE(clear, "imsgbuf_clear");
	RESOLVE(queuelen, "imsgbuf_queuelen");
}

/* One message of each size class from a to b, both nonblocking. */
static void
exchange(struct imsgbuf *a, struct imsgbuf *b, const void *data, size_t len)
{
	struct imsg imsg;
	int r;

	if (api.compose(a, 1, 0, 0, -1, data, len) != 1)
		fail("compose");
	for (;;) {
		if (api.queuelen(a) > 0 && api.write(a) == -1)
			fail("write");
		if (api.read(b) == -1)
			fail("read");
		if ((r = api.get(b, &imsg)) == -1)
			fail("get");
		if (r == 1)
			break;
	}
	api.free(&imsg);
}

static void *
user(void *arg)
{
	static const size_t sizes[] = { 0, 100, 2000, 16000, 200000, 1 << 20 };
	struct imsgbuf a, b;
	unsigned char *data;
	size_t i;
	int sv[2], k;
	char c;

	(void)arg;
	if ((data = calloc(1, 1 << 20)) == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		fail("set-up");
	for (k = 0; k < 2; k++)
		fcntl(sv[k], F_SETFL, fcntl(sv[k], F_GETFL) | O_NONBLOCK);
	if (api.init(&a, sv[0]) == -1 || api.init(&b, sv[1]) == -1 ||
	    api.set_maxsize(&a, 1 << 20) == -1 ||
	    api.set_maxsize(&b, 1 << 20) == -1)
		fail("init");
	for (k = 0; k < 100; k++)
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			exchange(&a, &b, data, sizes[i]);
	api.clear(&a);
	api.clear(&b);
	close(sv[0]);
	close(sv[1]);
	free(data);
	/* Used; now wait until the library is gone, then exit. */
	if (write(up[1], "u", 1) != 1 || read(down[0], &c, 1) != 1)
		fail("pipe");
	return NULL;
}

int
main(int argc, char *argv[])
{
	pthread_t th;
	void *h;
	char c;

	if (argc != 3)
		fail("usage: imsgdl library prefix");
	if (pipe(up) == -1 || pipe(down) == -1)
		fail("pipe");
	if ((h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL)
		fail(dlerror());
	resolve(h, argv[2]);
	if (pthread_create(&th, NULL, user, NULL) != 0)
		fail("pthread_create");
	if (read(up[0], &c, 1) != 1)
		fail("pipe");
	if (dlclose(h) != 0)
		fail(dlerror());
	if (write(down[1], "d", 1) != 1)
		fail("pipe");
	if (pthread_join(th, NULL) != 0)
		fail("pthread_join");
	return 0;
}
