/*
 * imsgbench: what libimsg costs, measured against a raw socket baseline
 * moving the identical byte stream in the same run.
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
 * Every run forks a reader and a writer joined by a nonblocking
 * socketpair(AF_UNIX, SOCK_STREAM); both wait for readiness with poll.
 * The parent only forks, collects results and prints, so each run starts
 * from a fresh heap and its memory figures do not depend on earlier runs.
 *
 * The stream is the same for both implementations: 16-byte imsg headers
 * (type, len, peerid = sequence number, pid), each payload a fixed
 * template whose first 64-bit word is replaced by the sequence number.
 * The reader checks every message's type, sequence number, length, the
 * sum of its payload's 64-bit words and, where one is passed, that its
 * descriptor is the file expected.  The raw side builds that stream into
 * 64 KiB chunks with the same copies compose does, and parses it with a
 * streaming checker doing the same checks.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <imsg.h>

/* NOINLINE keeps a function whole and under its own name, for callgrind. */
#if defined(__GNUC__) && !defined(__clang__)
#define NOINLINE	__attribute__((noinline, noclone))
#elif defined(__clang__)
#define NOINLINE	__attribute__((noinline))
#else
#define NOINLINE
#endif
#if defined(__GNUC__) || defined(__clang__)
#define PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))
#define NORETURN	__attribute__((noreturn))
#else
#define PRINTFLIKE(f, a)
#define NORETURN
#endif

#define KIB		1024UL
#define MIB		(1024UL * 1024UL)
#define RAW_CHUNK	(64 * KIB)	/* raw write()/read() size */
#define MAX_PAYLOAD	(1 * MIB)
#define CHILD_TIMEOUT	300		/* seconds; then a stuck run dies */
#define EOF_TIMEOUT_MS	10000
#define FDRING		8
/* The wire format's descriptor mark: bit 31 of the header's len. */
#define WIRE_FD_MARK	0x80000000U
#define SINGLE_COUNT	200000		/* messages in -1 mode */
#define SINGLE_BATCH	512		/* 40 KiB: fits the socket */
#define SINGLE_BATCH_MAX 800		/* 64 KiB: what a read takes */

/*
 * Allocation counting.  Defining malloc and friends in the executable
 * interposes them for the whole process, libimsg.so included; they pass
 * straight to glibc's exported entry points, so the cost is one
 * increment per call and counting is always on.  Sanitizers bring their
 * own malloc, so the shim stays out of their way.
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(thread_sanitizer)
#define BENCH_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BENCH_SANITIZED 1
#endif

enum { A_MALLOC, A_CALLOC, A_REALLOC, A_FREE, A_NKIND };
static uint64_t		 alloc_calls[A_NKIND];

#if defined(__GLIBC__) && !defined(BENCH_SANITIZED)
#define HAVE_ALLOC_SHIM 1
extern void	*__libc_malloc(size_t);
extern void	*__libc_calloc(size_t, size_t);
extern void	*__libc_realloc(void *, size_t);
extern void	 __libc_free(void *);

void *
malloc(size_t n)
{
	alloc_calls[A_MALLOC]++;
	return __libc_malloc(n);
}

void *
calloc(size_t n, size_t sz)
{
	alloc_calls[A_CALLOC]++;
	return __libc_calloc(n, sz);
}

void *
realloc(void *p, size_t n)
{
	alloc_calls[A_REALLOC]++;
	return __libc_realloc(p, n);
}

void
free(void *p)
{
	if (p != NULL)
		alloc_calls[A_FREE]++;
	__libc_free(p);
}
#else
#define HAVE_ALLOC_SHIM 0
#endif

static uint64_t
alloc_count(void)
{
	return alloc_calls[A_MALLOC] + alloc_calls[A_CALLOC] +
	    alloc_calls[A_REALLOC];
}

/* The cases. */

enum kind { K_STREAM, K_FD, K_PINGPONG };
enum impl { I_IMSG, I_RAW, I_PLAIN, I_NIMPL };

struct bcase {
	const char	*num;
	const char	*name;
	enum kind	 kind;
	size_t		 paylen;	/* payload bytes, 8 | paylen */
	uint64_t	 count;		/* messages, or round trips */
	size_t		 batch_bytes;	/* writer composes this much */
	uint32_t	 batch_msgs;	/* ... or this many messages */
	double		 target;	/* libimsg/raw ratio wanted */
	const char	*what;
	/* Filled in at run time. */
	uint32_t	 type;
	uint64_t	 tsum;		/* sum of the template words */
};

#define BATCH_BYTES	(256 * KIB)
#define BATCH_MSGS	16384
#define BIG		SIZE_MAX

static struct bcase cases[] = {
	{ "1", "0b", K_STREAM, 0, 2000000, BATCH_BYTES, BATCH_MSGS, 0.15,
	    "0-byte payload", 0, 0 },
	{ "2", "64b", K_STREAM, 64, 2000000, BATCH_BYTES, BATCH_MSGS, 0.40,
	    "64-byte payload", 0, 0 },
	{ "3", "256b", K_STREAM, 256, 2000000, BATCH_BYTES, BATCH_MSGS, 0.60,
	    "256-byte payload", 0, 0 },
	{ "4", "16k", K_STREAM, 16384 - 16, 512 * MIB / 16384, BATCH_BYTES,
	    BATCH_MSGS, 0.85, "16 KiB messages incl. header", 0, 0 },
	{ "5", "256k", K_STREAM, 256 * KIB, 512 * MIB / (256 * KIB),
	    BATCH_BYTES, BATCH_MSGS, 0.70,
	    "256 KiB payload, written one at a time", 0, 0 },
	{ "6", "1m", K_STREAM, MIB, 512 * MIB / MIB, BATCH_BYTES, BATCH_MSGS,
	    0.70, "1 MiB payload, written one at a time", 0, 0 },
	{ "5b", "256k-q", K_STREAM, 256 * KIB, 512 * MIB / (256 * KIB), BIG, 4,
	    0.70, "256 KiB payload, 4 queued before writing", 0, 0 },
	{ "6b", "1m-q", K_STREAM, MIB, 512 * MIB / MIB, BIG, 4, 0.70,
	    "1 MiB payload, 4 queued before writing", 0, 0 },
	{ "7", "fd", K_FD, 64, 100000, BATCH_BYTES, 128, 0.95,
	    "64-byte payload + one descriptor each", 0, 0 },
	{ "8", "pingpong", K_PINGPONG, 64, 200000, 0, 1, 1.0,
	    "64-byte ping-pong, both on one CPU", 0, 0 },
};
#define NCASES	(sizeof(cases) / sizeof(cases[0]))

/* What a child reports to the parent through a pipe. */
struct side_result {
	int		 ok;
	double		 secs;		/* timed part, reader only */
	uint64_t	 msgs;
	uint64_t	 allocs;	/* whole run */
	uint64_t	 ss_msgs;	/* steady-state window: messages */
	uint64_t	 ss_calls[A_NKIND];	/* ... and allocator calls */
	long		 flt;		/* minor faults, whole run */
	long		 ss_flt;	/* ... in the steady-state window */
	long		 hwm_kib;	/* peak RSS growth, no code */
	long		 hwm_all_kib;	/* ... included */
	char		 err[200];
};

/* The parent's view of one run. */
struct run_result {
	double		 rate;		/* messages or round trips/s */
	double		 mbps;
	double		 r_allocs;	/* per message, steady state */
	double		 w_allocs;
	double		 r_calls[A_NKIND];
	double		 w_calls[A_NKIND];
	double		 r_flt;		/* per message, steady */
	double		 r_flt_all;	/* per message, whole run */
	double		 w_flt;		/* per message, steady */
	double		 r_hwm_kib;
	double		 r_hwm_all_kib;
};

static unsigned char	*tmpl;		/* the payload template */
static int		 refd[2] = { -1, -1 };	/* passed in case 7 */
static struct stat	 refst[2];
static int		 pin_cpu = -1;
static int		 verbose_allocs;
static int		 n_impl = I_PLAIN;	/* I_NIMPL with -p: plain too */
static const char	*impl_names[I_NIMPL] = { "libimsg", "raw", "plain" };

static struct side_result *g_res;	/* set in children */
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
	fprintf(stderr, "imsgbench: %s\n", buf);
	exit(1);
}

/* The writer waits for this byte, so it starts when the clock does. */
static void
start_writer(int gofd)
{
	if (write(gofd, "g", 1) != 1)
		die("write: %s", strerror(errno));
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The payload checksum: the sum of its 64-bit words. */
static uint64_t
sum64(const unsigned char *p, size_t n)
{
	uint64_t s = 0, w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, sizeof(w));
		s += w;
	}
	return s;
}

/* Measuring a side: allocations, faults and peak memory. */

static long
proc_status_kib(const char *key)
{
	char buf[4096], *p;
	ssize_t n;
	int fd;

	/* open/read, not stdio: stdio would allocate inside the window. */
	if ((fd = open("/proc/self/status", O_RDONLY)) == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if ((p = strstr(buf, key)) == NULL)
		return -1;
	return strtol(p + strlen(key), NULL, 10);
}

/* "5" resets the peak RSS to the current RSS (Linux 4.0 and later). */
static int
reset_hwm(void)
{
	ssize_t n;
	int fd;

	if ((fd = open("/proc/self/clear_refs", O_WRONLY)) == -1)
		return -1;
	n = write(fd, "5", 1);
	close(fd);
	return n == 1 ? 0 : -1;
}

static long
minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

struct meter {
	uint64_t	 c0[A_NKIND], cm[A_NKIND];
	uint64_t	 a0;
	long		 f0, fm;
	long		 rss0, file0;
	uint64_t	 mdone;		/* messages done at the mark */
	int		 marked;
};

static void
meter_start(struct meter *m)
{
	/* Once first, so this code's own pages are in before the baseline. */
	(void)proc_status_kib("VmRSS:");
	/* Without the reset the peak could be the parent's: unknown. */
	m->rss0 = reset_hwm() == 0 ? proc_status_kib("VmRSS:") : -1;
	m->file0 = proc_status_kib("RssFile:");
	m->f0 = minflt();
	memcpy(m->c0, alloc_calls, sizeof(m->c0));
	m->a0 = alloc_count();
	m->marked = 0;
}

/* The steady state starts at the mark: warm-up allocations are over. */
static void
meter_mark(struct meter *m, uint64_t done)
{
	if (m->marked)
		return;
	memcpy(m->cm, alloc_calls, sizeof(m->cm));
	m->fm = minflt();
	m->mdone = done;
	m->marked = 1;
}

static void
meter_end(struct meter *m, uint64_t total, struct side_result *r)
{
	long hwm, file;
	int i;

	meter_mark(m, total);
	r->msgs = total;
	r->allocs = alloc_count() - m->a0;
	r->ss_msgs = total - m->mdone;
	for (i = 0; i < A_NKIND; i++)
		r->ss_calls[i] = alloc_calls[i] - m->cm[i];
	r->flt = minflt() - m->f0;
	r->ss_flt = minflt() - m->fm;
	hwm = proc_status_kib("VmHWM:");
	file = proc_status_kib("RssFile:");
	if (hwm < 0 || file < 0 || m->rss0 < 0 || m->file0 < 0) {
		r->hwm_all_kib = r->hwm_kib = -1;
		return;
	}
	r->hwm_all_kib = hwm - m->rss0;
	/*
	 * Pages of code and libraries mapped during the run are no buffer's:
	 * take them out.  They only ever grow, and the warm-up has mapped
	 * most of them, so what remains is the peak of the memory the
	 * process allocated, within the few code pages mapped in the run.
	 */
	r->hwm_kib = r->hwm_all_kib - (file - m->file0);
}

/* Socket helpers. */

static void
wait_fd(int fd, short events)
{
	struct pollfd pfd;

	pfd.fd = fd;
	pfd.events = events;
	while (poll(&pfd, 1, -1) == -1)
		if (errno != EINTR)
			die("poll: %s", strerror(errno));
}

static void
write_all(int fd, const unsigned char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				wait_fd(fd, POLLOUT);
				continue;
			}
			if (errno == EINTR)
				continue;
			die("write: %s", strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
}

static int
dup_ref(uint64_t seq)
{
	int fd;

	if ((fd = dup(refd[seq & 1])) == -1)
		die("dup: %s", strerror(errno));
	return fd;
}

/* Check a received descriptor is the file sent with message seq. */
static void
check_fd(int fd, uint64_t seq)
{
	const struct stat *want = &refst[seq & 1];
	struct stat st;

	if (fd < 0)
		die("message %llu: no descriptor", (unsigned long long)seq);
	if (fstat(fd, &st) == -1)
		die("fstat: %s", strerror(errno));
	if (st.st_dev != want->st_dev || st.st_ino != want->st_ino)
		die("message %llu: wrong descriptor", (unsigned long long)seq);
	close(fd);
}

/* The imsg side, once for libimsg and once for plain (see main). */

#define DRV(name)	name
#include "imsgbench-drv.h"
#undef DRV
#define PLAIN_RENAME
#include "plain.h"
#define DRV(name)	plain_##name
#include "imsgbench-drv.h"
#undef DRV
#undef PLAIN_RENAME
#include "plain.h"

/*
 * The raw side.  sgen produces the stream a libimsg writer would send,
 * in pieces of any size; sver checks it as it arrives, in pieces of any
 * size, keeping the bytes of a split header or payload word.
 */

struct sgen {
	const struct bcase *c;
	uint64_t	 seq, end;
	size_t		 off;		/* bytes of message seq made */
	uint32_t	 pid;
	unsigned char	 head[IMSG_HEADER_SIZE + sizeof(uint64_t)];
};

static void
sgen_init(struct sgen *g, const struct bcase *c)
{
	memset(g, 0, sizeof(*g));
	g->c = c;
	g->end = c->count;
	g->pid = (uint32_t)getpid();
}

/* The header and the sequence word: what differs between messages. */
static void
sgen_head(struct sgen *g)
{
	struct imsg_hdr h;

	h.type = g->c->type;
	h.len = (uint32_t)(g->c->paylen + IMSG_HEADER_SIZE);
	if (g->c->kind == K_FD)
		h.len |= WIRE_FD_MARK;
	h.peerid = (uint32_t)g->seq;
	h.pid = g->pid;
	memcpy(g->head, &h, sizeof(h));
	memcpy(g->head + sizeof(h), &g->seq, sizeof(g->seq));
}

static size_t
sgen_fill(struct sgen *g, unsigned char *buf, size_t cap)
{
	size_t paylen = g->c->paylen, msglen = paylen + IMSG_HEADER_SIZE;
	size_t headlen = IMSG_HEADER_SIZE + (paylen > 0 ? 8 : 0);
	size_t done = 0, k;

	while (done < cap && g->seq < g->end) {
		if (g->off == 0)
			sgen_head(g);
		if (g->off == 0 && cap - done >= msglen) {
			/* The whole message: two copies, as compose does. */
			memcpy(buf + done, g->head, headlen);
			memcpy(buf + done + headlen, tmpl + (headlen -
			    IMSG_HEADER_SIZE), msglen - headlen);
			done += msglen;
			g->seq++;
			continue;
		}
		if (g->off < headlen) {
			k = headlen - g->off;
			if (k > cap - done)
				k = cap - done;
			memcpy(buf + done, g->head + g->off, k);
		} else {
			k = msglen - g->off;
			if (k > cap - done)
				k = cap - done;
			memcpy(buf + done, tmpl + (g->off - IMSG_HEADER_SIZE),
			    k);
		}
		done += k;
		g->off += k;
		if (g->off == msglen) {
			g->off = 0;
			g->seq++;
		}
	}
	return done;
}

struct sver {
	const struct bcase *c;
	uint64_t	 seq, end;
	unsigned char	 hdr[IMSG_HEADER_SIZE];
	size_t		 hgot;		/* header bytes of seq */
	size_t		 pgot;		/* payload bytes of it */
	uint64_t	 sum;
	unsigned char	 carry[8];	/* payload word split by a read */
	size_t		 cgot;
	int		 fds[FDRING];	/* received, not yet claimed */
	unsigned int	 fhead, ftail;
};

static void
sver_init(struct sver *v, const struct bcase *c)
{
	memset(v, 0, sizeof(*v));
	v->c = c;
	v->end = c->count;
}

static void
sver_push_fd(struct sver *v, int fd)
{
	if (v->ftail - v->fhead == FDRING)
		die("too many descriptors pending");
	v->fds[v->ftail++ % FDRING] = fd;
}

static void
sver_header(struct sver *v, const unsigned char *p)
{
	const struct bcase *c = v->c;
	struct imsg_hdr h;
	uint32_t want = (uint32_t)(c->paylen + IMSG_HEADER_SIZE);

	if (v->seq == v->end)
		die("bytes after the last message");
	memcpy(&h, p, sizeof(h));
	if (c->kind == K_FD)
		want |= WIRE_FD_MARK;
	if (h.type != c->type || h.len != want || h.peerid != (uint32_t)v->seq)
		die("message %llu: type %u id %u len %u",
		    (unsigned long long)v->seq, h.type, h.peerid, h.len);
	if (c->kind == K_FD) {
		/* Descriptors arrive with their message's first byte. */
		if (v->fhead == v->ftail)
			die("message %llu: no descriptor",
			    (unsigned long long)v->seq);
		check_fd(v->fds[v->fhead++ % FDRING], v->seq);
	}
}

static void
sver_done(struct sver *v, uint64_t sum)
{
	if (v->c->paylen > 0 && sum != v->c->tsum + v->seq)
		die("message %llu: bad payload", (unsigned long long)v->seq);
	v->seq++;
	v->hgot = v->pgot = v->cgot = 0;
	v->sum = 0;
}

static void
sver_sum(struct sver *v, const unsigned char *p, size_t n)
{
	uint64_t w;
	size_t k, whole;

	if (v->cgot > 0) {
		k = sizeof(v->carry) - v->cgot;
		if (k > n)
			k = n;
		memcpy(v->carry + v->cgot, p, k);
		v->cgot += k;
		p += k;
		n -= k;
		if (v->cgot < sizeof(v->carry))
			return;
		memcpy(&w, v->carry, sizeof(w));
		v->sum += w;
		v->cgot = 0;
	}
	whole = n & ~(size_t)7;
	v->sum += sum64(p, whole);
	memcpy(v->carry, p + whole, n - whole);
	v->cgot = n - whole;
}

static void
sver_feed(struct sver *v, const unsigned char *p, size_t n)
{
	size_t paylen = v->c->paylen, msglen = paylen + IMSG_HEADER_SIZE, k;

	while (n > 0) {
		if (v->hgot == 0 && n >= msglen) {
			/* A whole message in the buffer: check it in place. */
			sver_header(v, p);
			sver_done(v, sum64(p + IMSG_HEADER_SIZE, paylen));
			p += msglen;
			n -= msglen;
			continue;
		}
		if (v->hgot < IMSG_HEADER_SIZE) {
			k = IMSG_HEADER_SIZE - v->hgot;
			if (k > n)
				k = n;
			memcpy(v->hdr + v->hgot, p, k);
			v->hgot += k;
			p += k;
			n -= k;
			if (v->hgot < IMSG_HEADER_SIZE)
				return;
			sver_header(v, v->hdr);
			if (paylen == 0)
				sver_done(v, 0);
			continue;
		}
		k = paylen - v->pgot;
		if (k > n)
			k = n;
		sver_sum(v, p, k);
		v->pgot += k;
		p += k;
		n -= k;
		if (v->pgot == paylen)
			sver_done(v, v->sum);
	}
}

/* read(), or recvmsg() collecting descriptors for v. */
static ssize_t
raw_recv(int fd, unsigned char *buf, size_t len, struct sver *v)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} cbuf;
	struct msghdr msg;
	struct cmsghdr *cm;
	struct iovec iov;
	ssize_t n;
	size_t i, nfd;
	int one;

	if (v == NULL || v->c->kind != K_FD)
		return read(fd, buf, len);
	iov.iov_base = buf;
	iov.iov_len = len;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	if ((n = recvmsg(fd, &msg, 0)) <= 0)
		return n;
	for (cm = CMSG_FIRSTHDR(&msg); cm != NULL;
	    cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfd; i++) {
			memcpy(&one, CMSG_DATA(cm) + i * sizeof(int),
			    sizeof(one));
			sver_push_fd(v, one);
		}
	}
	return n;
}

/* Read once after poll and check what came; 0 at end of file. */
static int
raw_fill(int fd, unsigned char *buf, struct sver *v)
{
	ssize_t n;

	wait_fd(fd, POLLIN);
	n = raw_recv(fd, buf, RAW_CHUNK, v);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 1;
		die("read: %s", strerror(errno));
	}
	if (n == 0)
		return 0;
	sver_feed(v, buf, (size_t)n);
	return 1;
}

static void
raw_expect_eof(int fd, unsigned char *buf)
{
	struct pollfd pfd;
	ssize_t n;

	pfd.fd = fd;
	pfd.events = POLLIN;
	for (;;) {
		if (poll(&pfd, 1, EOF_TIMEOUT_MS) == 0)
			die("no end of file after the last message");
		n = read(fd, buf, RAW_CHUNK);
		if (n == 0)
			return;
		if (n > 0)
			die("bytes after the last message");
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			die("read: %s", strerror(errno));
	}
}

static void
reader_raw(const struct bcase *c, int fd, int gofd, struct side_result *res)
{
	struct sver v;
	struct meter m;
	unsigned char *buf;
	uint64_t n = c->count, warm = n / 8;
	double t0;

	meter_start(&m);
	if ((buf = malloc(RAW_CHUNK)) == NULL)
		die("malloc");
	sver_init(&v, c);
	if (warm == 0)
		meter_mark(&m, 0);
	t0 = now();
	start_writer(gofd);
	while (v.seq < n) {
		if (raw_fill(fd, buf, &v) == 0)
			die("end of file after %llu messages",
			    (unsigned long long)v.seq);
		if (v.seq >= warm)
			meter_mark(&m, v.seq);
	}
	res->secs = now() - t0;
	meter_end(&m, n, res);
	raw_expect_eof(fd, buf);
	free(buf);
}

/* One message, its descriptor attached to the first byte. */
static void
raw_send_fd(int sock, const unsigned char *p, size_t len, int fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr msg;
	struct cmsghdr *cm;
	struct iovec iov;
	ssize_t n;

	iov.iov_base = (void *)(uintptr_t)p;
	iov.iov_len = len;
	memset(&msg, 0, sizeof(msg));
	memset(&cbuf, 0, sizeof(cbuf));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	for (;;) {
		if ((n = sendmsg(sock, &msg, 0)) != -1)
			break;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			wait_fd(sock, POLLOUT);
		else if (errno != EINTR)
			die("sendmsg: %s", strerror(errno));
	}
	close(fd);
	write_all(sock, p + n, len - (size_t)n);
}

static void
writer_raw(const struct bcase *c, int fd, struct side_result *res)
{
	struct sgen g;
	struct meter m;
	unsigned char *buf;
	uint64_t n = c->count, warm = n / 8, seq;
	size_t len, msglen = c->paylen + IMSG_HEADER_SIZE;

	meter_start(&m);
	if ((buf = malloc(RAW_CHUNK)) == NULL)
		die("malloc");
	sgen_init(&g, c);
	while (g.seq < n) {
		if (c->kind == K_FD) {
			seq = g.seq;
			len = sgen_fill(&g, buf, msglen);
			raw_send_fd(fd, buf, len, dup_ref(seq));
		} else {
			len = sgen_fill(&g, buf, RAW_CHUNK);
			write_all(fd, buf, len);
		}
		if (g.seq >= warm)
			meter_mark(&m, g.seq);
	}
	meter_end(&m, n, res);
	free(buf);
}

static void
client_raw(const struct bcase *c, int fd, int gofd, struct side_result *res)
{
	struct sgen g;
	struct sver v;
	struct meter m;
	unsigned char *buf, sbuf[IMSG_HEADER_SIZE + 64];
	uint64_t seq, n = c->count, warm = n / 8;
	size_t len, msglen = c->paylen + IMSG_HEADER_SIZE;
	double t0;

	if (msglen > sizeof(sbuf))
		die("ping-pong message too large");
	meter_start(&m);
	if ((buf = malloc(RAW_CHUNK)) == NULL)
		die("malloc");
	sgen_init(&g, c);
	sver_init(&v, c);
	if (warm == 0)
		meter_mark(&m, 0);
	t0 = now();
	start_writer(gofd);
	for (seq = 0; seq < n; seq++) {
		len = sgen_fill(&g, sbuf, msglen);
		write_all(fd, sbuf, len);
		while (v.seq <= seq)
			if (raw_fill(fd, buf, &v) == 0)
				die("end of file at round trip %llu",
				    (unsigned long long)seq);
		if (seq + 1 == warm)
			meter_mark(&m, seq + 1);
	}
	res->secs = now() - t0;
	meter_end(&m, n, res);
	raw_expect_eof(fd, buf);
	free(buf);
}

static void
server_raw(const struct bcase *c, int fd, struct side_result *res)
{
	struct sgen g;
	struct sver v;
	struct meter m;
	unsigned char *buf, sbuf[IMSG_HEADER_SIZE + 64];
	uint64_t n = c->count, warm = n / 8;
	size_t len, msglen = c->paylen + IMSG_HEADER_SIZE;

	if (msglen > sizeof(sbuf))
		die("ping-pong message too large");
	meter_start(&m);
	if ((buf = malloc(RAW_CHUNK)) == NULL)
		die("malloc");
	sgen_init(&g, c);
	sver_init(&v, c);
	while (v.seq < n) {
		if (raw_fill(fd, buf, &v) == 0)
			die("end of file after %llu messages",
			    (unsigned long long)v.seq);
		while (g.seq < v.seq) {
			len = sgen_fill(&g, sbuf, msglen);
			write_all(fd, sbuf, len);
		}
		if (v.seq >= warm)
			meter_mark(&m, v.seq);
	}
	meter_end(&m, n, res);
	free(buf);
}

/* Running the cases. */

static void
set_nonblock(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		die("fcntl: %s", strerror(errno));
}

static void
pin_self(int cpu)
{
#ifdef __linux__
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) == -1)
		die("sched_setaffinity: %s", strerror(errno));
#else
	(void)cpu;
#endif
}

/*
 * A fresh child shares the program's code with its parent but maps each
 * page of it into its own page tables, and binds lazy symbols, on first
 * use: several hundred KiB of peak RSS and a burst of faults that no
 * buffer accounts for.  Run both implementations' paths on a few small
 * messages first so the figures measured after are the buffers' alone.
 */
static void
warm_code(void)
{
	struct bcase w = cases[1];
	unsigned char buf[IMSG_HEADER_SIZE + 64];
	struct sgen g;
	struct sver v;
	uint64_t i;
	int sv[2];

	w.count = 16;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		die("socketpair: %s", strerror(errno));
	set_nonblock(sv[0]);
	set_nonblock(sv[1]);
	imsg_warm(&w, sv[0], sv[1]);
	if (n_impl > I_PLAIN)
		plain_imsg_warm(&w, sv[0], sv[1]);
	sgen_init(&g, &w);
	sver_init(&v, &w);
	for (i = 0; i < w.count; i++) {
		write_all(sv[0], buf, sgen_fill(&g, buf, sizeof(buf)));
		while (v.seq <= i)
			if (raw_fill(sv[1], buf, &v) == 0)
				die("warm-up: end of file");
	}
	close(sv[0]);
	close(sv[1]);
}

enum role { R_READER, R_WRITER };

/* The four sides of each implementation. */
struct sides {
	void	(*reader)(const struct bcase *, int, int, struct side_result *);
	void	(*writer)(const struct bcase *, int, struct side_result *);
	void	(*client)(const struct bcase *, int, int, struct side_result *);
	void	(*server)(const struct bcase *, int, struct side_result *);
};

static const struct sides impl_sides[I_NIMPL] = {
	{ reader_imsg, writer_imsg, client_imsg, server_imsg },
	{ reader_raw, writer_raw, client_raw, server_raw },
	{ plain_reader_imsg, plain_writer_imsg, plain_client_imsg,
	    plain_server_imsg },
};

static void NORETURN
child_main(const struct bcase *c, enum impl impl, enum role role, int sock,
    int gofd, int resfd)
{
	const struct sides *sd = &impl_sides[impl];
	struct side_result res;
	char go;

	memset(&res, 0, sizeof(res));
	g_res = &res;
	g_resfd = resfd;
	alarm(CHILD_TIMEOUT);
	if (c->kind == K_PINGPONG && pin_cpu >= 0)
		pin_self(pin_cpu);
	warm_code();
	if (role == R_WRITER) {
		/* Wait until the reader's clock runs. */
		if (read(gofd, &go, 1) != 1)
			die("the reader went away before starting");
		if (c->kind == K_PINGPONG)
			sd->server(c, sock, &res);
		else
			sd->writer(c, sock, &res);
	} else {
		if (c->kind == K_PINGPONG)
			sd->client(c, sock, gofd, &res);
		else
			sd->reader(c, sock, gofd, &res);
	}
	close(sock);
	res.ok = 1;
	if (write(resfd, &res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(1);
	_exit(0);
}

static int
collect(int fd, pid_t pid, const char *who, struct side_result *res)
{
	ssize_t n;
	int status;

	n = read(fd, res, sizeof(*res));
	close(fd);
	if (waitpid(pid, &status, 0) == -1)
		die("waitpid: %s", strerror(errno));
	if (n == (ssize_t)sizeof(*res) && res->ok)
		return 0;
	if (n == (ssize_t)sizeof(*res))
		fprintf(stderr, "imsgbench: %s: %s\n", who, res->err);
	else if (WIFSIGNALED(status))
		fprintf(stderr, "imsgbench: %s killed by signal %d\n", who,
		    WTERMSIG(status));
	else
		fprintf(stderr, "imsgbench: %s failed\n", who);
	return -1;
}

static double
per(uint64_t what, uint64_t msgs)
{
	return msgs > 0 ? (double)what / (double)msgs : 0.0;
}

static int
run_once(const struct bcase *c, enum impl impl, struct run_result *out)
{
	struct side_result rr, wr;
	const char *iname = impl_names[impl];
	char who[64];
	int sv[2], go[2], rres[2], wres[2], bad = 0, i;
	pid_t rpid, wpid;
	double bytes;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		die("socketpair: %s", strerror(errno));
	set_nonblock(sv[0]);
	set_nonblock(sv[1]);
	if (pipe(go) == -1 || pipe(rres) == -1 || pipe(wres) == -1)
		die("pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);

	if ((rpid = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (rpid == 0) {
		close(sv[1]);
		close(go[0]);
		close(rres[0]);
		close(wres[0]);
		close(wres[1]);
		child_main(c, impl, R_READER, sv[0], go[1], rres[1]);
	}
	if ((wpid = fork()) == -1)
		die("fork: %s", strerror(errno));
	if (wpid == 0) {
		close(sv[0]);
		close(go[1]);
		close(rres[0]);
		close(rres[1]);
		close(wres[0]);
		child_main(c, impl, R_WRITER, sv[1], go[0], wres[1]);
	}
	close(sv[0]);
	close(sv[1]);
	close(go[0]);
	close(go[1]);
	close(rres[1]);
	close(wres[1]);

	snprintf(who, sizeof(who), "case %s %s reader", c->num, iname);
	bad |= collect(rres[0], rpid, who, &rr);
	snprintf(who, sizeof(who), "case %s %s writer", c->num, iname);
	bad |= collect(wres[0], wpid, who, &wr);
	if (bad)
		return -1;

	bytes = (double)(c->paylen + IMSG_HEADER_SIZE) *
	    (c->kind == K_PINGPONG ? 2.0 : 1.0);
	out->rate = (double)c->count / rr.secs;
	out->mbps = out->rate * bytes / 1e6;
	out->r_allocs = per(rr.ss_calls[A_MALLOC] + rr.ss_calls[A_CALLOC] +
	    rr.ss_calls[A_REALLOC], rr.ss_msgs);
	out->w_allocs = per(wr.ss_calls[A_MALLOC] + wr.ss_calls[A_CALLOC] +
	    wr.ss_calls[A_REALLOC], wr.ss_msgs);
	for (i = 0; i < A_NKIND; i++) {
		out->r_calls[i] = per(rr.ss_calls[i], rr.ss_msgs);
		out->w_calls[i] = per(wr.ss_calls[i], wr.ss_msgs);
	}
	out->r_flt = per((uint64_t)(rr.ss_flt > 0 ? rr.ss_flt : 0),
	    rr.ss_msgs);
	out->r_flt_all = per((uint64_t)(rr.flt > 0 ? rr.flt : 0), rr.msgs);
	out->w_flt = per((uint64_t)(wr.ss_flt > 0 ? wr.ss_flt : 0),
	    wr.ss_msgs);
	out->r_hwm_kib = (double)rr.hwm_kib;
	out->r_hwm_all_kib = (double)rr.hwm_all_kib;
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(const double *v, int n)
{
	double tmp[64];
	int i;

	for (i = 0; i < n; i++)
		tmp[i] = v[i];
	qsort(tmp, (size_t)n, sizeof(tmp[0]), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

#define MAXREPS	63

/* Medians of the repetitions, per implementation. */
struct summary {
	const struct bcase *c;
	int		 done;
	struct run_result med[I_NIMPL];
	double		 runs[I_NIMPL][MAXREPS];
	double		 ratio;
	double		 ratio_plain;	/* libimsg/plain, with -p */
};

static void
summarise(struct run_result *runs, int reps, struct run_result *med)
{
	double v[MAXREPS];
	int i, k;

#define MED(field) do {							\
	for (i = 0; i < reps; i++)					\
		v[i] = runs[i].field;					\
	med->field = median(v, reps);					\
} while (0)
	MED(rate);
	MED(mbps);
	MED(r_allocs);
	MED(w_allocs);
	MED(r_flt);
	MED(r_flt_all);
	MED(w_flt);
	MED(r_hwm_kib);
	MED(r_hwm_all_kib);
	for (k = 0; k < A_NKIND; k++) {
		MED(r_calls[k]);
		MED(w_calls[k]);
	}
#undef MED
}

static const char *
fmt_rate(double r, char *buf, size_t len)
{
	if (r >= 1e6)
		snprintf(buf, len, "%.3fM", r / 1e6);
	else if (r >= 1e3)
		snprintf(buf, len, "%.1fk", r / 1e3);
	else
		snprintf(buf, len, "%.1f", r);
	return buf;
}

static const char *
met(int ok)
{
	return ok ? "met" : "MISSED";
}

static void
print_case(const struct bcase *c, int reps, const struct summary *s)
{
	const struct run_result *m;
	char b1[32];
	int r, i;

	for (i = 0; i < n_impl; i++) {
		printf("    %-8s %10s %s/s %9.1f MB/s  (runs:", impl_names[i],
		    fmt_rate(s->med[i].rate, b1, sizeof(b1)),
		    c->kind == K_PINGPONG ? "rt" : "msg", s->med[i].mbps);
		for (r = 0; r < reps; r++)
			printf(" %s", fmt_rate(s->runs[i][r], b1, sizeof(b1)));
		printf(")\n");
	}
	printf("    ratio    %.3f  (target >= %.2f: %s)\n", s->ratio,
	    c->target, met(s->ratio >= c->target));
	if (n_impl > I_PLAIN)
		printf("    libimsg/plain %.3f  (plain/raw %.3f)\n",
		    s->ratio_plain, s->med[I_PLAIN].rate / s->med[I_RAW].rate);
	for (i = 0; i < n_impl; i++)
		printf("    %-8s reader: %.4f allocs/msg, %.4f faults/msg "
		    "(%.4f whole run), peak RSS +%.0f KiB (+%.0f with code); "
		    "writer: %.4f allocs/msg, %.4f faults/msg\n", impl_names[i],
		    s->med[i].r_allocs, s->med[i].r_flt, s->med[i].r_flt_all,
		    s->med[i].r_hwm_kib, s->med[i].r_hwm_all_kib,
		    s->med[i].w_allocs, s->med[i].w_flt);
	for (i = 0; verbose_allocs && i < n_impl; i++) {
		m = &s->med[i];
		printf("    %-8s per msg: reader malloc %.4f calloc %.4f "
		    "realloc %.4f free %.4f; writer malloc %.4f calloc %.4f "
		    "realloc %.4f free %.4f\n", impl_names[i],
		    m->r_calls[A_MALLOC], m->r_calls[A_CALLOC],
		    m->r_calls[A_REALLOC], m->r_calls[A_FREE],
		    m->w_calls[A_MALLOC], m->w_calls[A_CALLOC],
		    m->w_calls[A_REALLOC], m->w_calls[A_FREE]);
	}
	fflush(stdout);
}

static int
run_case(struct bcase *c, int reps, struct summary *s)
{
	struct run_result runs[I_NIMPL][MAXREPS];
	const char *unit = c->kind == K_PINGPONG ? "round trips" : "msgs";
	int r, i;

	printf("[%s] %s: %llu %s, %s (%zu B framed)\n", c->num, c->name,
	    (unsigned long long)c->count, unit, c->what,
	    c->paylen + IMSG_HEADER_SIZE);
	/* Alternate, so a change of load hits all about equally. */
	for (r = 0; r < reps; r++)
		for (i = 0; i < n_impl; i++)
			if (run_once(c, (enum impl)i, &runs[i][r]) == -1)
				return -1;
	s->c = c;
	s->done = 1;
	for (i = 0; i < n_impl; i++) {
		summarise(runs[i], reps, &s->med[i]);
		for (r = 0; r < reps; r++)
			s->runs[i][r] = runs[i][r].rate;
	}
	s->ratio = s->med[I_IMSG].rate / s->med[I_RAW].rate;
	if (n_impl > I_PLAIN)
		s->ratio_plain = s->med[I_IMSG].rate / s->med[I_PLAIN].rate;
	print_case(c, reps, s);
	return 0;
}

static void
print_table(struct summary *sums, int reps)
{
	const struct run_result *l, *r;
	const struct bcase *c;
	char b1[32], b2[32];
	size_t i;
	int ok_alloc = 1, ok_flt = 1, ok_mem = 1, any_big = 0;

	printf("\nSummary (medians of %d; rates in messages or round trips "
	    "per second, MB = 10^6 bytes of framed stream)\n\n", reps);
	printf("%-3s %-9s %9s %8s %9s %8s %6s %6s %-6s %9s %9s %8s %8s\n",
	    "#", "case", "imsg/s", "MB/s", "raw/s", "MB/s", "ratio",
	    "target", "", "r.alloc", "w.alloc", "r.flt", "peak KiB");
	for (i = 0; i < NCASES; i++) {
		if (!sums[i].done)
			continue;
		c = sums[i].c;
		l = &sums[i].med[I_IMSG];
		r = &sums[i].med[I_RAW];
		printf("%-3s %-9s %9s %8.1f %9s %8.1f %6.3f %6.2f %-6s "
		    "%9.4f %9.4f %8.4f %8.0f\n", c->num, c->name,
		    fmt_rate(l->rate, b1, sizeof(b1)), l->mbps,
		    fmt_rate(r->rate, b2, sizeof(b2)), r->mbps,
		    sums[i].ratio, c->target,
		    met(sums[i].ratio >= c->target), l->r_allocs,
		    l->w_allocs, l->r_flt, l->r_hwm_kib);
		if (l->r_allocs > 0.01 || l->w_allocs > 0.01)
			ok_alloc = 0;
		if (c->paylen == MIB) {
			any_big = 1;
			if (l->r_flt >= 1.0)
				ok_flt = 0;
			if (l->r_hwm_kib > 1.5 * 1024)
				ok_mem = 0;
		}
	}
	printf("\nr.alloc/w.alloc: libimsg reader/writer allocations per "
	    "message, steady state (target <= 0.01: %s)\n", HAVE_ALLOC_SHIM ?
	    met(ok_alloc) : "not counted in this build");
	if (any_big) {
		printf("r.flt: reader minor faults per message, steady state "
		    "(1 MiB target < 1: %s)\n", met(ok_flt));
		printf("peak KiB: reader peak RSS growth "
		    "(1 MiB target <= 1536 KiB: %s)\n", met(ok_mem));
	}
	printf("instructions per message: run "
	    "valgrind --tool=callgrind imsgbench -1 (see BENCHMARKS.md)\n");
}

/*
 * -p: libimsg next to plain, the simplest build of the same API (plain.c),
 * so each case shows what libimsg's machinery buys, and what it costs.
 */
static void
print_table_plain(struct summary *sums)
{
	const struct run_result *l, *p, *r;
	const struct bcase *c;
	char b1[32], b2[32], b3[32];
	size_t i;

	printf("\nlibimsg against plain (medians as above; allocations per "
	    "message in steady state, reader/writer; peak = reader peak RSS "
	    "growth)\n\n");
	printf("%-3s %-9s %9s %9s %9s %9s %9s %13s %13s %8s %8s\n",
	    "#", "case", "imsg/s", "plain/s", "raw/s", "imsg/pl", "pl/raw",
	    "imsg alloc", "plain alloc", "imsg KiB", "pl KiB");
	for (i = 0; i < NCASES; i++) {
		if (!sums[i].done)
			continue;
		c = sums[i].c;
		l = &sums[i].med[I_IMSG];
		p = &sums[i].med[I_PLAIN];
		r = &sums[i].med[I_RAW];
		printf("%-3s %-9s %9s %9s %9s %9.3f %9.3f %6.2f/%-6.2f "
		    "%6.2f/%-6.2f %8.0f %8.0f\n", c->num, c->name,
		    fmt_rate(l->rate, b1, sizeof(b1)),
		    fmt_rate(p->rate, b2, sizeof(b2)),
		    fmt_rate(r->rate, b3, sizeof(b3)),
		    sums[i].ratio_plain, p->rate / r->rate,
		    l->r_allocs, l->w_allocs, p->r_allocs, p->w_allocs,
		    l->r_hwm_kib, p->r_hwm_kib);
	}
	printf("\nimsg/pl above 1: libimsg is faster than plain by that "
	    "factor; pl/raw: plain against the raw baseline\n");
}

/* -1: one process, both ends, for callgrind (the loop is in the driver). */

static void
single_mode(struct bcase *c, uint64_t n, unsigned int batch)
{
	const char *loop = n_impl > I_PLAIN ? "plain_single_loop" :
	    "single_loop";
	uint64_t allocs;
	double secs;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		die("socketpair: %s", strerror(errno));
	set_nonblock(sv[0]);
	set_nonblock(sv[1]);
	c->count = n;
	if (n_impl > I_PLAIN)
		secs = plain_single_run(c, sv[0], sv[1], batch, &allocs);
	else
		secs = single_run(c, sv[0], sv[1], batch, &allocs);
	close(sv[0]);
	close(sv[1]);
	printf("single process%s: %llu messages of %zu-byte payload (%zu B "
	    "framed), composed %u at a time, written, read, got, checked "
	    "and freed\n", n_impl > I_PLAIN ? ", plain" : "",
	    (unsigned long long)n, c->paylen, c->paylen + IMSG_HEADER_SIZE,
	    batch);
	printf("messages: %llu\n", (unsigned long long)n);
	printf("time: %.3f s, %.0f ns/message (meaningless under valgrind)\n",
	    secs, secs * 1e9 / (double)n);
	printf("allocations: %.4f per message%s\n", per(allocs, n),
	    HAVE_ALLOC_SHIM ? "" : " (not counted in this build)");
	printf("instructions/message = Ir of %s (inclusive) / %llu; "
	    "e.g. valgrind --tool=callgrind --toggle-collect=%s\n", loop,
	    (unsigned long long)n, loop);
}

/* Set-up and options. */

static void
prepare(void)
{
	uint64_t w;
	size_t i;
	int p[2], k;

	if ((tmpl = malloc(MAX_PAYLOAD)) == NULL)
		die("malloc");
	/* Word 0 is replaced by the sequence number in every message. */
	memset(tmpl, 0, sizeof(w));
	for (i = 1; i < MAX_PAYLOAD / sizeof(w); i++) {
		w = splitmix64(i);
		memcpy(tmpl + i * sizeof(w), &w, sizeof(w));
	}
	for (i = 0; i < NCASES; i++) {
		if (cases[i].paylen % 8 != 0 || cases[i].paylen > MAX_PAYLOAD)
			die("case %s: bad payload size", cases[i].num);
		cases[i].type = 1000 + (uint32_t)i;
		cases[i].tsum = sum64(tmpl, cases[i].paylen);
	}
	/* Two distinct files for case 7: a swap would show. */
	for (k = 0; k < 2; k++) {
		if (pipe(p) == -1)
			die("pipe: %s", strerror(errno));
		close(p[1]);
		refd[k] = p[0];
		if (fstat(refd[k], &refst[k]) == -1)
			die("fstat: %s", strerror(errno));
	}
}

static int
first_cpu(void)
{
#ifdef __linux__
	cpu_set_t set;
	int i;

	if (sched_getaffinity(0, sizeof(set), &set) == -1)
		return -1;
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			return i;
#endif
	return -1;
}

static void
print_loadavg(const char *when)
{
	char buf[128];
	ssize_t n;
	int fd;

	if ((fd = open("/proc/loadavg", O_RDONLY)) == -1)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	printf("load average %s: %s\n", when, buf);
}

static void NORETURN
usage(void)
{
	size_t i;

	fprintf(stderr,
	    "usage: imsgbench [-a1p] [-b batch] [-c case[,case...]] "
	    "[-n divisor] [-r reps]\n"
	    "  -c  run only these cases (number or name)\n"
	    "  -r  repetitions, the median is reported (default 3)\n"
	    "  -n  divide every message count by this (quick runs)\n"
	    "  -a  print allocator calls per message by kind\n"
	    "  -p  also run plain, the simplest build of the API, and "
	    "compare\n"
	    "      (with -1: plain's loop instead of libimsg's)\n"
	    "  -1  single process, 64-byte messages, for callgrind\n"
	    "  -b  with -1: messages composed per write (default 512)\n"
	    "cases:\n");
	for (i = 0; i < NCASES; i++)
		fprintf(stderr, "  %-3s %-9s %s\n", cases[i].num,
		    cases[i].name, cases[i].what);
	exit(2);
}

static int
select_cases(char *list, int *want)
{
	char *tok;
	size_t i;
	int found;

	for (tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
		found = 0;
		for (i = 0; i < NCASES; i++)
			if (strcmp(tok, cases[i].num) == 0 ||
			    strcmp(tok, cases[i].name) == 0)
				want[i] = found = 1;
		if (!found) {
			fprintf(stderr, "imsgbench: no case %s\n", tok);
			return -1;
		}
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	static struct summary sums[NCASES];
	struct utsname un;
	double scale = 1.0, t0;
	uint64_t n;
	int want[NCASES], any = 0, reps = 3, single = 0, ch, bad = 0;
	long batch = SINGLE_BATCH;
	size_t i;
	char *end;

	memset(want, 0, sizeof(want));
	while ((ch = getopt(argc, argv, "1ab:c:hn:pr:")) != -1) {
		switch (ch) {
		case 'p':
			n_impl = I_NIMPL;
			break;
		case '1':
			single = 1;
			break;
		case 'b':
			batch = strtol(optarg, &end, 10);
			if (*end != '\0' || batch < 1 || batch > SINGLE_BATCH_MAX)
				usage();
			break;
		case 'a':
			verbose_allocs = 1;
			break;
		case 'c':
			if (select_cases(optarg, want) == -1)
				usage();
			any = 1;
			break;
		case 'n':
			scale = strtod(optarg, &end);
			if (*end != '\0' || !(scale >= 1.0))
				usage();
			break;
		case 'r':
			reps = (int)strtol(optarg, &end, 10);
			if (*end != '\0' || reps < 1 || reps > MAXREPS)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	signal(SIGPIPE, SIG_IGN);
	prepare();
	for (i = 0; i < NCASES; i++) {
		cases[i].count = (uint64_t)((double)cases[i].count / scale);
		if (cases[i].count == 0)
			cases[i].count = 1;
	}
	if (single) {
		n = (uint64_t)((double)SINGLE_COUNT / scale);
		single_mode(&cases[1], n > 0 ? n : 1, (unsigned int)batch);
		return 0;
	}

	pin_cpu = first_cpu();
	if (uname(&un) == 0)
		printf("imsgbench: %s %s %s, %ld CPUs online, %d repetitions, "
		    "counts / %g\n", un.sysname, un.release, un.machine,
		    sysconf(_SC_NPROCESSORS_ONLN), reps, scale);
	if (!HAVE_ALLOC_SHIM)
		printf("allocations are not counted in this build\n");
	print_loadavg("at start");
	t0 = now();
	for (i = 0; i < NCASES; i++) {
		if (any && !want[i])
			continue;
		if (run_case(&cases[i], reps, &sums[i]) == -1) {
			bad = 1;
			break;
		}
	}
	print_table(sums, reps);
	if (n_impl > I_PLAIN)
		print_table_plain(sums);
	printf("total time %.1f s\n", now() - t0);
	print_loadavg("at end");
	return bad;
}
