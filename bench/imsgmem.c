/*
 * imsgmem: what libimsg keeps in memory for what a program holds, next to
 * plain, the imsg API built the simplest way (plain.c).
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

/*
 * Each scenario runs in a fresh fork()ed child, so it starts from the
 * same heap whichever ran before; a writer, where one is needed, is a
 * process of its own, so only the reader's memory is measured.  Memory
 * is read from /proc/self/status: RssAnon (the pages of heap, mmap and
 * stacks, without code and libraries), VmRSS and VmSize, and mallinfo2
 * where glibc has it.  The scenarios are those of issue 10:
 *   (a) keep 100 (400) small messages out of 400,000 received;
 *   (b) idle channels after one message each way;
 *   (c) a burst of mixed sizes, all freed;
 *   (d) a thread that read a burst, then idles;
 *   (e) dlopen, use from a thread, dlclose, the thread exits (imsgdl).
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif

#include <imsg.h>

#include "plain.h"

#if defined(__GNUC__) || defined(__clang__)
#define PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))
#define NORETURN	__attribute__((noreturn))
#else
#define PRINTFLIKE(f, a)
#define NORETURN
#endif

#define KIB		1024L
#define MIB		(1024L * 1024L)
#define MEM_TYPE	42
#define MIN_PAYLOAD	64		/* (c), (d): log-uniform from here */
#define MAX_PAYLOAD	(1024U * 1024U)	/* ... to here */
#define KEEP_TOTAL	400000		/* (a) */
#define KEEP_PAYLOAD	100
#define IDLE_PAYLOAD	100		/* (b) */
#define IDLE_BUFS	1000
#define BURST_COUNT	20000		/* (c) */
#define BURST_SEED	0x1d2c3b4aULL
#define THREAD_COUNT	5000		/* (d) */
#define THREAD_SEED	0x5e6f7a8bULL
#define IDLE_SECS	3
#define SEND_BATCH	(256 * 1024)
#define CHILD_TIMEOUT	60

/* A stream of count messages: fixed payloads, or log-uniform sizes. */
struct stream {
	uint64_t	 count;
	size_t		 fixed;		/* payload bytes, or 0 */
	uint64_t	 seed;
	uint32_t	 maxpay;	/* imsgbuf_set_maxsize, or 0 */
};

/* Growth of each figure between two points, in KiB. */
struct memdiff {
	long		 vmsize, vmrss, anon;
	long		 heap_used, heap_free;	/* mallinfo2; -1 if none */
};

/* What a scenario's child reports. */
struct mres {
	int		 ok;
	struct memdiff	 d[3];
	char		 err[200];
};

struct mem {
	long		 vmsize, vmrss, anon;
	long		 heap_used, heap_free;
};

/* The reading thread of (d) and the two pipes that pace it. */
struct thr {
	const struct stream *s;
	int		 sock;
	int		 up[2];		/* thread to main */
	int		 down[2];	/* main to thread */
};

static unsigned char	*tmpl;
static struct mres	*g_res;
static int		 g_resfd = -1;

static void NORETURN PRINTFLIKE(1, 2)
die(const char *fmt, ...)
{
	char buf[sizeof(g_res->err)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (g_resfd != -1) {
		memcpy(g_res->err, buf, sizeof(buf));
		g_res->ok = 0;
		if (write(g_resfd, g_res, sizeof(*g_res)) == -1)
			_exit(2);
		_exit(1);
	}
	fprintf(stderr, "imsgmem: %s\n", buf);
	exit(1);
}

static uint64_t
splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Payload length of message i: the same on both sides, every run. */
static size_t
stream_len(const struct stream *s, uint64_t i)
{
	double u, len;

	if (s->fixed > 0)
		return s->fixed;
	u = (double)(splitmix64(s->seed ^ (i * 0x100000001b3ULL)) >> 11) /
	    9007199254740992.0;
	len = MIN_PAYLOAD * pow((double)MAX_PAYLOAD / MIN_PAYLOAD, u);
	if (len > MAX_PAYLOAD)
		len = MAX_PAYLOAD;
	return (size_t)len;
}

/* Memory figures. */

static long
status_kib(const char *buf, const char *key)
{
	const char *p;

	if ((p = strstr(buf, key)) == NULL)
		return -1;
	return strtol(p + strlen(key), NULL, 10);
}

static void
mem_now(struct mem *m)
{
	char buf[4096];
	ssize_t n;
	int fd;
#ifdef HAVE_MALLINFO2
	struct mallinfo2 mi;
#endif

	/* open/read, not stdio, which would allocate. */
	if ((fd = open("/proc/self/status", O_RDONLY)) == -1)
		die("/proc/self/status: %s", strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		die("/proc/self/status: cannot read");
	buf[n] = '\0';
	m->vmsize = status_kib(buf, "VmSize:");
	m->vmrss = status_kib(buf, "VmRSS:");
	m->anon = status_kib(buf, "RssAnon:");
	m->heap_used = m->heap_free = -1;
#ifdef HAVE_MALLINFO2
	mi = mallinfo2();
	m->heap_used = (long)((mi.uordblks + mi.hblkhd) / KIB);
	m->heap_free = (long)(mi.fordblks / KIB);
#endif
}

static void
mem_diff(const struct mem *b, const struct mem *a, struct memdiff *d)
{
	d->vmsize = b->vmsize - a->vmsize;
	d->vmrss = b->vmrss - a->vmrss;
	d->anon = b->anon - a->anon;
	d->heap_used = b->heap_used < 0 ? -1 : b->heap_used - a->heap_used;
	d->heap_free = b->heap_free < 0 ? -1 : b->heap_free - a->heap_free;
}

/* Processes and threads. */

static pid_t
spawn_writer(const struct stream *s, int *sock,
    void (*send)(int, const struct stream *))
{
	pid_t pid;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		die("socketpair: %s", strerror(errno));
	if ((pid = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		/* Its failures go to stderr and its exit status. */
		g_resfd = -1;
		close(sv[0]);
		send(sv[1], s);
		_exit(0);
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

static void
reap_writer(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) == -1)
		die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("the writer failed");
}

static void
thr_signal(int fd)
{
	if (write(fd, "x", 1) != 1)
		die("write: %s", strerror(errno));
}

static void
thr_wait(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		die("read: %s", strerror(errno));
}

static void
thr_setup(struct thr *t, const struct stream *s)
{
	t->s = s;
	if (pipe(t->up) == -1 || pipe(t->down) == -1)
		die("pipe: %s", strerror(errno));
}

static void
thr_teardown(struct thr *t)
{
	close(t->up[0]);
	close(t->up[1]);
	close(t->down[0]);
	close(t->down[1]);
	close(t->sock);
}

/* The scenarios, once for libimsg and once for plain. */

#define DRV(name)	name
#include "imsgmem-drv.h"
#undef DRV
#define PLAIN_RENAME
#include "plain.h"
#define DRV(name)	plain_##name
#include "imsgmem-drv.h"
#undef DRV
#undef PLAIN_RENAME
#include "plain.h"

enum impl { I_PLAIN, I_IMSG, I_NIMPL };
enum scen { S_KEEP100, S_KEEP400, S_IDLE, S_BURST, S_THREAD, S_NSCEN };

static void
run_scen(enum scen sc, enum impl impl, struct mres *res)
{
	int lib = impl == I_IMSG;

	switch (sc) {
	case S_KEEP100:
		lib ? scen_keep(100, res) : plain_scen_keep(100, res);
		break;
	case S_KEEP400:
		lib ? scen_keep(400, res) : plain_scen_keep(400, res);
		break;
	case S_IDLE:
		lib ? scen_idle(IDLE_BUFS, res) :
		    plain_scen_idle(IDLE_BUFS, res);
		break;
	case S_BURST:
		lib ? scen_burst(res) : plain_scen_burst(res);
		break;
	default:
		lib ? scen_thread(res) : plain_scen_thread(res);
		break;
	}
}

/* Run one scenario in a fresh child; -1 if it failed. */
static int
in_child(enum scen sc, enum impl impl, struct mres *res)
{
	ssize_t n;
	pid_t pid;
	int p[2], status;

	if (pipe(p) == -1)
		die("pipe: %s", strerror(errno));
	fflush(stdout);
	if ((pid = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(p[0]);
		memset(res, 0, sizeof(*res));
		g_res = res;
		g_resfd = p[1];
		alarm(CHILD_TIMEOUT);
		run_scen(sc, impl, res);
		res->ok = 1;
		if (write(p[1], res, sizeof(*res)) != (ssize_t)sizeof(*res))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	n = read(p[0], res, sizeof(*res));
	close(p[0]);
	if (waitpid(pid, &status, 0) == -1)
		die("waitpid: %s", strerror(errno));
	if (n == (ssize_t)sizeof(*res) && res->ok)
		return 0;
	if (n == (ssize_t)sizeof(*res))
		fprintf(stderr, "imsgmem: %s\n", res->err);
	else if (WIFSIGNALED(status))
		fprintf(stderr, "imsgmem: killed by signal %d\n",
		    WTERMSIG(status));
	return -1;
}

/* (e): imsgdl in a process of its own; "ok", or how it died. */
static void
run_dl(const char *lib, const char *prefix, char *out, size_t len)
{
	pid_t pid;
	int status;

	fflush(stdout);
	if ((pid = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(CHILD_TIMEOUT);
		execl(IMSGDL_PATH, "imsgdl", lib, prefix, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) == -1)
		die("waitpid: %s", strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		snprintf(out, len, "ok");
	else if (WIFEXITED(status))
		snprintf(out, len, "exit %d", WEXITSTATUS(status));
	else
		snprintf(out, len, "%s", strsignal(WTERMSIG(status)));
}

/* The report. */

static const char *
fmt_kib(double kib, char *buf, size_t len)
{
	if (kib >= 10240 || kib <= -10240)
		snprintf(buf, len, "%+.1f MiB", kib / 1024);
	else if (kib < 100 && kib > -100 && kib != (long)kib)
		snprintf(buf, len, "%+.1f KiB", kib);
	else
		snprintf(buf, len, "%+.0f KiB", kib);
	return buf;
}

static void
print_diff(const char *what, const struct memdiff *d)
{
	printf("    %-34s VmSize %+ld, VmRSS %+ld, RssAnon %+ld", what,
	    d->vmsize, d->vmrss, d->anon);
	if (d->heap_used != -1)
		printf(", heap in use %+ld, free in heap %+ld", d->heap_used,
		    d->heap_free);
	printf(" (KiB)\n");
}

static const char *scen_names[S_NSCEN] = {
	"(a) keep 100 of 400,000",
	"(a) keep 400 of 400,000",
	"(b) 1000 idle imsgbufs",
	"(c) burst of 20,000, 64 B..1 MiB",
	"(d) a thread read 5,000, then idle",
};

static const char *impl_names[I_NIMPL] = { "plain", "libimsg" };

static void
print_details(enum scen sc, enum impl impl, const struct mres *r)
{
	char what[64];

	snprintf(what, sizeof(what), "%s:", impl_names[impl]);
	switch (sc) {
	case S_BURST:
		print_diff("all freed, channel open", &r->d[0]);
		print_diff("after imsgbuf_clear", &r->d[1]);
		break;
	case S_THREAD:
		print_diff("just after the burst", &r->d[1]);
		print_diff("after 3 s idle", &r->d[0]);
		print_diff("after the thread exited", &r->d[2]);
		break;
	default:
		print_diff(what, &r->d[0]);
		return;
	}
}

struct row {
	const char	*what;
	double		 v[I_NIMPL];	/* KiB */
	const char	*bound;
	int		 ok;		/* libimsg within the bound */
};

static void
print_row(const struct row *rw)
{
	char b1[32], b2[32];

	printf("%-44s %12s %18s   %-26s %s\n", rw->what,
	    fmt_kib(rw->v[I_PLAIN], b1, sizeof(b1)),
	    fmt_kib(rw->v[I_IMSG], b2, sizeof(b2)), rw->bound,
	    rw->ok ? "met" : "MISSED");
}

static void
print_table(struct mres res[S_NSCEN][I_NIMPL], char dl[I_NIMPL][64])
{
	struct row rw;
	int i;

	printf("\n%-44s %12s %18s   %-26s %s\n", "scenario (RSS = RssAnon)",
	    "plain", "libimsg", "issue 10's bound", "libimsg");
#define ROW(w, expr, b, okexpr) do {					\
	rw.what = (w);							\
	for (i = 0; i < I_NIMPL; i++)					\
		rw.v[i] = (expr);					\
	rw.bound = (b);							\
	rw.ok = (okexpr);						\
	print_row(&rw);							\
} while (0)
	ROW("(a) 100 kept of 400,000: RSS growth",
	    res[S_KEEP100][i].d[0].anon, "<= 1 MiB", rw.v[I_IMSG] <= 1024);
	ROW("(a) 400 kept of 400,000: RSS growth",
	    res[S_KEEP400][i].d[0].anon, "<= 1 MiB", rw.v[I_IMSG] <= 1024);
	ROW("(b) idle imsgbuf: VmSize each",
	    (double)res[S_IDLE][i].d[0].vmsize / IDLE_BUFS, "<= 64 KiB",
	    rw.v[I_IMSG] <= 64);
	ROW("(b) idle imsgbuf: RSS each",
	    (double)res[S_IDLE][i].d[0].anon / IDLE_BUFS, "<= 5 KiB",
	    rw.v[I_IMSG] <= 5);
	ROW("(c) burst, all freed: RSS left",
	    res[S_BURST][i].d[0].anon, "<= +9.3 MiB (upstream)",
	    rw.v[I_IMSG] <= 9.3 * 1024);
	ROW("(d) thread idle 3 s after a burst: RSS held",
	    res[S_THREAD][i].d[0].anon, "no MiBs: <= plain + 1 MiB",
	    rw.v[I_IMSG] <= rw.v[I_PLAIN] + 1024);
#undef ROW
	printf("%-44s %12s %18s   %-26s %s\n",
	    "(e) dlopen, thread use, dlclose, thread exit", dl[I_PLAIN],
	    dl[I_IMSG], "no crash", strcmp(dl[I_IMSG], "ok") == 0 ?
	    "met" : "MISSED");
}

static void
prepare(void)
{
	struct rlimit rl;
	size_t i;

	if ((tmpl = malloc(MAX_PAYLOAD)) == NULL)
		die("malloc");
	for (i = 0; i < MAX_PAYLOAD; i++)
		tmpl[i] = (unsigned char)(i * 131 + 7);
	/* (b) needs IDLE_BUFS descriptors and some. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char *argv[])
{
	static struct mres res[S_NSCEN][I_NIMPL];
	char dl[I_NIMPL][64];
	double t0 = now();
	int sc, i, bad = 0;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: imsgmem\n");
		return 2;
	}
	prepare();
	printf("imsgmem: every scenario in a fresh child; reader's memory "
	    "growth from before imsgbuf_init\n");
	for (sc = 0; sc < S_NSCEN; sc++) {
		printf("%s\n", scen_names[sc]);
		for (i = 0; i < I_NIMPL; i++) {
			if (in_child((enum scen)sc, (enum impl)i,
			    &res[sc][i]) == -1) {
				bad = 1;
				continue;
			}
			if (sc == S_BURST || sc == S_THREAD)
				printf("  %s\n", impl_names[i]);
			print_details((enum scen)sc, (enum impl)i, &res[sc][i]);
		}
	}
	run_dl(PLAIN_MODULE_PATH, "plain_", dl[I_PLAIN], sizeof(dl[0]));
	run_dl(LIBIMSG_PATH, "", dl[I_IMSG], sizeof(dl[0]));
	print_table(res, dl);
	printf("\ntotal time %.1f s\n", now() - t0);
	return bad;
}
