/*
 * Ownership and lifetime under the library's optimisations, over real
 * sockets and forked peers:
 *
 *  - received messages of up to 64 KiB stay in the reader's shared,
 *    counted 512 KiB read block, or are copied into shared blocks (up to
 *    4 KiB); a block starts over once all its messages are gone; larger
 *    ones come from a per-thread cache of buffers.  Messages
 *    kept across hundreds of reads, freed in random order, forwarded,
 *    handed to another thread, kept past imsgbuf_clear, or carrying
 *    descriptors claimed late, must all keep their bytes and their
 *    16-byte payload alignment until they are freed, and nothing leaks.
 *  - small outgoing messages share 64 KiB batch buffers: with partial
 *    writes the queue length still counts messages (imsg_compose_ibuf two)
 *    exactly, and the peer gets every message once, in order.
 *  - each thread's buffer cache is emptied when the thread exits.
 *
 * Payloads are a pattern derived from the message's sequence number, which
 * travels as the peerid; the type is derived from it too.  Any stale,
 * wiped or overwritten byte shows.  Run under valgrind or ASan as well:
 * several cases rely on them to see leaks and use after free (with glibc
 * the thread-exit cases also weigh the heap themselves).
 *
 * "test_lifetime WORD" runs only the cases whose names contain WORD.
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__GLIBC__) && (__GLIBC__ > 2 || \
    (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2	1
#endif

#include "imsg.h"
/* The library's constants and layouts, for the white-box cases. */
#include "imsg-private.h"
#include "harness.h"

#define MARK		IMSG_FD_MARK
#define HDR		((size_t)IMSG_HEADER_SIZE)
/* Payload limit for the imsgbufs that carry messages above 64 KiB. */
#define BIG_MAX		(256 * 1024)
/* Seconds a forked peer may take; generous for valgrind. */
#define CHILD_ALARM	50

/* ---- helpers ---------------------------------------------------------- */

static void
watchdog(int sig)
{
	static const char pre[] = "#   timed out in ";
	const char *name = h_name != NULL ? h_name : "?";

	(void)sig;
	h_kill_children();
	(void)!write(STDOUT_FILENO, pre, sizeof(pre) - 1);
	(void)!write(STDOUT_FILENO, name, strlen(name));
	(void)!write(STDOUT_FILENO, "\n", 1);
	_exit(1);
}

static void
die(const char *what)
{
	printf("Bail out! %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(99);
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n == 0 ? 1 : n, size)) == NULL)
		die("calloc");
	return p;
}

static void
pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		die("socketpair");
}

static void
set_nonblock(int fd)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		die("fcntl O_NONBLOCK");
}

static void
ib_open(struct imsgbuf *ib, int fd, uint32_t maxsize, int fdpass)
{
	if (imsgbuf_init(ib, fd) == -1)
		die("imsgbuf_init");
	if (maxsize != 0 && imsgbuf_set_maxsize(ib, maxsize) == -1)
		die("imsgbuf_set_maxsize");
	if (fdpass)
		imsgbuf_allow_fdpass(ib);
}

/*
 * Failures inside loops over thousands of messages: report the first
 * few, count the rest, so one bug does not bury the log.
 */
static int	 lt_nerr;

#define FAILF(...) do {							\
	if (lt_nerr++ < 12)						\
		h_fail(__FILE__, __LINE__, __VA_ARGS__);		\
	else								\
		h_case_failed = 1;					\
} while (0)

/* Run only the cases whose names contain this (argv[1]), if set. */
static const char *lt_only;

#define CASE(fn) do {							\
	if (lt_only == NULL || strstr(#fn, lt_only) != NULL) {		\
		lt_nerr = 0;						\
		alarm(100);						\
		RUN(fn);						\
	}								\
} while (0)

/* A small seeded PRNG (xorshift64*): every run does the same. */
struct rng {
	uint64_t	 s;
};

static void
rng_seed(struct rng *r, uint64_t seed)
{
	r->s = seed * 0x9e3779b97f4a7c15ULL + 0x2545f4914f6cdd1dULL;
	if (r->s == 0)
		r->s = 1;
}

static uint32_t
rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return (uint32_t)((r->s * 0x2545f4914f6cdd1dULL) >> 32);
}

/* Uniform enough in [0, n). */
static uint32_t
rng_below(struct rng *r, uint32_t n)
{
	return n == 0 ? 0 : rng_next(r) % n;
}

static uint32_t
mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352dU;
	x ^= x >> 15;
	x *= 0x846ca68bU;
	x ^= x >> 16;
	return x;
}

/* The type that goes with sequence number seq. */
static uint32_t
seq_type(uint32_t seq)
{
	return mix32(seq ^ 0x5eed0000U) & 0x7fffffffU;
}

/* The payload of message seq: an LCG stream seeded from seq. */
static void
fill(uint32_t seq, unsigned char *p, size_t n)
{
	uint32_t x = mix32(seq * 0x9e3779b1U + 1);
	size_t i;

	for (i = 0; i < n; i++) {
		x = x * 1664525U + 1013904223U;
		p[i] = (unsigned char)(x >> 24);
	}
}

/* Offset of the first byte of p that is not fill(seq)'s, or n. */
static size_t
mismatch(uint32_t seq, const unsigned char *p, size_t n)
{
	uint32_t x = mix32(seq * 0x9e3779b1U + 1);
	size_t i;

	for (i = 0; i < n; i++) {
		x = x * 1664525U + 1013904223U;
		if (p[i] != (unsigned char)(x >> 24))
			return i;
	}
	return n;
}

/*
 * What every received message must look like: header fields from seq,
 * a payload of exactly size bytes (NULL when empty) at a 16-byte aligned
 * address, holding fill(seq).  pid 0 skips the pid check.
 */
static int
check_msg(const char *what, struct imsg *m, uint32_t seq, size_t size,
    pid_t pid)
{
	size_t off;

	if (m->hdr.peerid != seq || m->hdr.type != seq_type(seq)) {
		FAILF("%s %u: peerid %u type %u, want type %u", what, seq,
		    m->hdr.peerid, m->hdr.type, seq_type(seq));
		return -1;
	}
	if (m->hdr.len != size + HDR || (pid != 0 && m->hdr.pid !=
	    (uint32_t)pid)) {
		FAILF("%s %u: len %u pid %u, want %zu and %ld", what, seq,
		    m->hdr.len, m->hdr.pid, size + HDR, (long)pid);
		return -1;
	}
	if (size == 0) {
		if (m->data != NULL) {
			FAILF("%s %u: empty payload but data %p", what, seq,
			    m->data);
			return -1;
		}
		return 0;
	}
	if (m->data == NULL) {
		FAILF("%s %u: %zu-byte payload but data NULL", what, seq,
		    size);
		return -1;
	}
	if (((uintptr_t)m->data & 15) != 0) {
		FAILF("%s %u: payload at %p is not 16-byte aligned", what, seq,
		    m->data);
		return -1;
	}
	if ((off = mismatch(seq, m->data, size)) != size) {
		FAILF("%s %u (%zu bytes): byte %zu is 0x%02x, want other",
		    what, seq, size, off, ((unsigned char *)m->data)[off]);
		return -1;
	}
	return 0;
}

/*
 * Bytes of heap in use, or -1 where that cannot be told.  With glibc it
 * lets plain builds see what a thread left behind at exit; valgrind and
 * the sanitizers bring their own allocator (then this stays constant) and
 * their own leak checks.
 */
static long long
heap_in_use(void)
{
#ifdef HAVE_MALLINFO2
	struct mallinfo2 mi = mallinfo2();

	return (long long)(mi.uordblks + mi.hblkhd);
#else
	return -1;
#endif
}

/* What a thread may leave allocated for good (glibc's own bookkeeping). */
#define HEAP_SLACK	(64 * 1024)

/* ---- the sending side: a plan of messages and a forked sender -------- */

/* Payload sizes worth hitting on purpose, around every boundary. */
static const uint32_t special_sizes[] = {
	0, 1, 2, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 255, 256, 1000,
	1023, 2047, 2048, 4063, 4064, 4065, 4079, 4080, 4081, 4095, 4096, 4097,
	4111, 4112, 4113, 8191, 16368,
};
#define NSPECIAL	(sizeof(special_sizes) / sizeof(special_sizes[0]))

struct plan {
	uint32_t	 n;
	uint32_t	*size;
	int		*file;		/* index into the files, or -1 */
};

/*
 * n messages: every fifth a special size, the others 0..4096 bytes; one in
 * large_every (if not 0) above 64 KiB, one in fd_every (if not 0) with a
 * descriptor of one of nfiles files.
 */
static void
plan_make(struct plan *p, uint32_t n, uint64_t seed, uint32_t large_every,
    uint32_t fd_every, int nfiles)
{
	struct rng r;
	uint32_t i;

	rng_seed(&r, seed);
	p->n = n;
	p->size = xcalloc(n, sizeof(*p->size));
	p->file = xcalloc(n, sizeof(*p->file));
	for (i = 0; i < n; i++) {
		if (i % 5 == 0)
			p->size[i] = special_sizes[(i / 5) % NSPECIAL];
		else
			p->size[i] = rng_below(&r, 4097);
		if (large_every != 0 && i % large_every == large_every / 2)
			p->size[i] = 65537 + rng_below(&r, 120000);
		p->file[i] = -1;
		if (fd_every != 0 && i % fd_every == 3)
			p->file[i] = (int)((i / fd_every) % (uint32_t)nfiles);
	}
}

static void
plan_free(struct plan *p)
{
	free(p->size);
	free(p->file);
}

static uint32_t
plan_nfd(const struct plan *p)
{
	uint32_t i, n = 0;

	for (i = 0; i < p->n; i++)
		n += p->file[i] >= 0;
	return n;
}

/* Compose the plan on sock and write it all out; 0 or a failure code. */
static int
send_plan(int sock, const struct plan *p, int fdpass, const int *files)
{
	struct imsgbuf ib;
	unsigned char *buf;
	uint32_t i;
	int fd, rc = 0;

	ib_open(&ib, sock, BIG_MAX, fdpass);
	if ((buf = malloc(BIG_MAX)) == NULL)
		return 2;
	for (i = 0; i < p->n && rc == 0; i++) {
		fill(i, buf, p->size[i]);
		fd = -1;
		if (p->file[i] >= 0 && (fd = dup(files[p->file[i]])) == -1)
			rc = 3;
		else if (imsg_compose(&ib, seq_type(i), i, 0, fd, buf,
		    p->size[i]) != 1)
			rc = 4;
		/* Bursts of up to 32 messages: reads then cut them anywhere. */
		else if (imsgbuf_queuelen(&ib) >= 32 && imsgbuf_flush(&ib) == -1)
			rc = 5;
	}
	if (rc == 0 && imsgbuf_flush(&ib) == -1)
		rc = 6;
	imsgbuf_clear(&ib);
	free(buf);
	return rc;
}

/* Fork a child that sends the plan on sock, closing close_me first. */
static pid_t
start_sender(int sock, int close_me, const struct plan *p, int fdpass,
    const int *files)
{
	pid_t pid;
	int rc;

	fflush(stdout);
	if ((pid = h_fork()) == -1)
		die("fork");
	if (pid != 0)
		return pid;
	alarm(CHILD_ALARM);
	close(close_me);
	rc = send_plan(sock, p, fdpass, files);
	close(sock);
	_exit(rc);
}

static void
wait_child_at(pid_t pid, int line)
{
	int status;

	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR) {
			h_fail(__FILE__, line, "waitpid: %s", strerror(errno));
			return;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		h_fail(__FILE__, line, "child %s %d", WIFEXITED(status) ?
		    "exited with" : "killed by signal", WIFEXITED(status) ?
		    WEXITSTATUS(status) : WTERMSIG(status));
}
#define WAIT_CHILD(pid)	wait_child_at((pid), __LINE__)

/* One blocking imsgbuf_read; EOF here means messages went missing. */
static int
read_more(struct imsgbuf *ib, uint32_t got, uint32_t want)
{
	int r;

	if ((r = imsgbuf_read(ib)) == -1)
		FAILF("imsgbuf_read: %s", strerror(errno));
	else if (r == 0)
		FAILF("EOF after %u of %u messages", got, want);
	return r;
}

/* After the last message: EOF, and nothing more was queued. */
static void
expect_eof(struct imsgbuf *ib)
{
	struct imsg m;
	int r;

	while ((r = imsgbuf_read(ib)) == 1) {
		if (imsgbuf_get(ib, &m) == 1) {
			FAILF("extra message, peerid %u", m.hdr.peerid);
			imsg_free(&m);
			return;
		}
	}
	CHECK_INT(r, ==, 0);
	CHECK_INT(imsgbuf_get(ib, &m), ==, 0);
}

/* 0..n-1 in an order drawn from r; the caller frees it. */
static uint32_t *
shuffled(uint32_t n, struct rng *r)
{
	uint32_t *order, i, j, t;

	order = xcalloc(n, sizeof(*order));
	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = n; i > 1; i--) {
		j = rng_below(r, i);
		t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	return order;
}

/* Free kept[0..n) in an order drawn from r. */
static void
free_shuffled(struct imsg *kept, uint32_t n, struct rng *r)
{
	uint32_t *order, i;

	order = shuffled(n, r);
	for (i = 0; i < n; i++)
		imsg_free(&kept[order[i]]);
	free(order);
}

/* ---- receive side: kept messages --------------------------------------- */

/*
 * Thousands of messages are taken across hundreds of reads and all kept:
 * blocks fill up and new ones start while every old one is pinned.  Only
 * when the last has arrived is every byte of every payload checked, and
 * only then is anything freed.
 */
static void
kept_messages_survive_hundreds_of_reads_until_verified(void)
{
	struct plan p;
	struct imsgbuf ib;
	struct imsg *kept;
	struct rng r;
	uint32_t got = 0, reads = 0, i, nbig = 0, nblock = 0;
	pid_t pid;
	int sv[2], rc = 1;

	plan_make(&p, 3000, 1, 97, 0, 0);
	pair(sv);
	pid = start_sender(sv[1], sv[0], &p, 0, NULL);
	close(sv[1]);
	kept = xcalloc(p.n, sizeof(*kept));
	ib_open(&ib, sv[0], BIG_MAX, 0);

	while (got < p.n && h_case_failed == 0) {
		if (read_more(&ib, got, p.n) != 1)
			break;
		reads++;
		while (got < p.n && (rc = imsgbuf_get(&ib, &kept[got])) == 1) {
			if (kept[got].hdr.peerid != got)
				FAILF("message %u arrived as %u", got,
				    kept[got].hdr.peerid);
			got++;
		}
		if (rc == -1)
			FAILF("imsgbuf_get: %s", strerror(errno));
	}
	CHECK_UINT(got, ==, p.n);
	/* Enough reads that blocks came and went many times over. */
	CHECK_UINT(reads, >=, 100);
	if (got == p.n)
		expect_eof(&ib);

	for (i = 0; i < got; i++) {
		if (check_msg("kept message", &kept[i], i, p.size[i], pid) == 0 &&
		    imsg_get_len(&kept[i]) != p.size[i])
			FAILF("kept message %u: %zu bytes left to read", i,
			    imsg_get_len(&kept[i]));
		if (p.size[i] > 65536)
			nbig++;
		else if (p.size[i] + HDR <= 4096)
			nblock++;
	}
	CHECK_UINT(nbig, >=, 20);
	CHECK_UINT(nblock, >=, 2000);
	rng_seed(&r, 11);
	free_shuffled(kept, got, &r);

	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
	free(kept);
	plan_free(&p);
}

/*
 * Messages live for random numbers of reads (most for a few, some for
 * dozens, a few to the end) and die in random order between reads.  After
 * every batch of frees all survivors are checked: a block restarted while
 * one of its messages is still held, or a cached buffer handed out twice,
 * overwrites a survivor.
 */
struct live {
	struct imsg	 m;
	uint32_t	 seq;
	uint32_t	 until;		/* read after which it dies */
};

static void
random_frees_between_reads_never_disturb_survivors(void)
{
	struct plan p;
	struct imsgbuf ib;
	struct live *live, t;
	struct rng r;
	uint32_t got = 0, reads = 0, nlive = 0, maxlive = 0, i, j, k, life;
	uint32_t freed = 0;
	pid_t pid;
	int sv[2], rc = 1;

	plan_make(&p, 5000, 2, 53, 0, 0);
	rng_seed(&r, 22);
	pair(sv);
	pid = start_sender(sv[1], sv[0], &p, 0, NULL);
	close(sv[1]);
	live = xcalloc(p.n, sizeof(*live));
	ib_open(&ib, sv[0], BIG_MAX, 0);

	while (got < p.n && h_case_failed == 0) {
		if (read_more(&ib, got, p.n) != 1)
			break;
		reads++;
		while (got < p.n &&
		    (rc = imsgbuf_get(&ib, &live[nlive].m)) == 1) {
			live[nlive].seq = got;
			/*
			 * Few enough long lives that many blocks still empty
			 * completely, to be reused, while others stay pinned.
			 */
			k = rng_below(&r, 1000);
			if (k < 700)
				life = rng_below(&r, 3);
			else if (k < 950)
				life = 3 + rng_below(&r, 10);
			else if (k < 995)
				life = 13 + rng_below(&r, 50);
			else
				life = UINT32_MAX - reads;	/* to the end */
			live[nlive].until = reads + life;
			check_msg("new message", &live[nlive].m, got,
			    p.size[got], pid);
			nlive++;
			got++;
		}
		if (rc == -1)
			FAILF("imsgbuf_get: %s", strerror(errno));
		if (nlive > maxlive)
			maxlive = nlive;

		/* Shuffle, then free the ones whose time is up. */
		for (i = nlive; i > 1; i--) {
			j = rng_below(&r, i);
			t = live[i - 1];
			live[i - 1] = live[j];
			live[j] = t;
		}
		for (i = 0; i < nlive; ) {
			if (live[i].until > reads) {
				i++;
				continue;
			}
			check_msg("dying message", &live[i].m, live[i].seq,
			    p.size[live[i].seq], pid);
			imsg_free(&live[i].m);
			live[i] = live[--nlive];
			freed++;
		}
		for (i = 0; i < nlive; i++)
			check_msg("survivor", &live[i].m, live[i].seq,
			    p.size[live[i].seq], pid);
	}
	CHECK_UINT(got, ==, p.n);
	CHECK_UINT(reads, >=, 100);
	CHECK_UINT(freed, >=, p.n / 2);
	if (got == p.n)
		expect_eof(&ib);

	/* The rest go in random order too, more reads or not. */
	while (nlive > 0) {
		i = rng_below(&r, nlive);
		check_msg("last message", &live[i].m, live[i].seq,
		    p.size[live[i].seq], pid);
		imsg_free(&live[i].m);
		live[i] = live[--nlive];
		if (nlive % 16 == 0)
			for (j = 0; j < nlive; j++)
				check_msg("last survivor", &live[j].m,
				    live[j].seq, p.size[live[j].seq], pid);
	}
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
	free(live);
	plan_free(&p);
}

/*
 * Programs cast imsg.data to their structs: every payload must start
 * 16-byte aligned, whatever the sizes of the messages before it in the
 * same block (every size modulo 16), on both sides of the 4 KiB block
 * limit and for buffers above 64 KiB, and still after an ibufq round trip.
 */
struct al16 {
	uint64_t	 a;
	uint64_t	 b;
} __attribute__((aligned(16)));

static void
payload_of_every_received_message_is_16_byte_aligned(void)
{
	struct plan p;
	struct imsgbuf ib;
	struct ibufqueue *q;
	struct imsg *kept, m;
	struct al16 *s;
	uint64_t a, b;
	uint32_t got = 0, i, n = 0;
	void *data;
	pid_t pid;
	int sv[2], rc = 1;

	/* 0..700, 4000..4120 bytes, a few around 64 KiB and above. */
	p.n = 701 + 121 + 12;
	p.size = xcalloc(p.n, sizeof(*p.size));
	p.file = xcalloc(p.n, sizeof(*p.file));
	for (i = 0; i <= 700; i++)
		p.size[n++] = i;
	for (i = 4000; i <= 4120; i++)
		p.size[n++] = i;
	for (i = 0; i < 12; i++)
		p.size[n++] = 65536 - 8 + i * 3 + (i > 6 ? 40000 : 0);
	for (i = 0; i < p.n; i++)
		p.file[i] = -1;
	pair(sv);
	pid = start_sender(sv[1], sv[0], &p, 0, NULL);
	close(sv[1]);
	kept = xcalloc(p.n, sizeof(*kept));
	q = ibufq_new();
	CHECK(q != NULL);
	ib_open(&ib, sv[0], BIG_MAX, 0);

	while (got < p.n && h_case_failed == 0) {
		if (read_more(&ib, got, p.n) != 1)
			break;
		while (got < p.n && (rc = imsgbuf_get(&ib, &kept[got])) == 1) {
			data = kept[got].data;
			if (p.size[got] == 0 ? data != NULL :
			    data == NULL || ((uintptr_t)data & 15) != 0)
				FAILF("message %u (%u bytes): payload at %p",
				    got, p.size[got], data);
			else if (p.size[got] >= sizeof(*s)) {
				/* A struct access; UBSan checks it too. */
				s = data;
				a = s->a;
				b = s->b;
				if (memcmp(&a, data, 8) != 0 ||
				    memcmp(&b, (char *)data + 8, 8) != 0)
					FAILF("message %u: struct read", got);
			}
			/* Handed through a queue it stays where it was. */
			if (q != NULL && got % 3 == 0) {
				imsg_ibufq_push(q, &kept[got]);
				CHECK_INT(imsg_ibufq_pop(q, &m), ==, 1);
				if (m.data != data)
					FAILF("message %u moved from %p to %p",
					    got, data, m.data);
				kept[got] = m;
			}
			got++;
		}
		if (rc == -1)
			FAILF("imsgbuf_get: %s", strerror(errno));
	}
	CHECK_UINT(got, ==, p.n);
	if (got == p.n)
		expect_eof(&ib);
	for (i = 0; i < got; i++) {
		check_msg("kept message", &kept[i], i, p.size[i], pid);
		imsg_free(&kept[i]);
	}
	ibufq_free(q);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
	free(kept);
	plan_free(&p);
}

/*
 * Kept messages are forwarded to a second imsgbuf only several reads
 * after they arrived, some twice, some after part of the payload was
 * read; some originals are freed right after forwarding (the copy must
 * not lean on them), the others only once their copy has come back and
 * compared equal.
 */
struct fwd {
	struct imsgbuf	 out;		/* forwards go out here */
	struct imsgbuf	 back;		/* and come back here */
	uint32_t	*order;		/* seq of each forward, in order */
	uint32_t	 nfwd;
	uint32_t	 nback;
};

static void
fwd_pump(struct fwd *f, struct imsg *kept, int *freed, const struct plan *p,
    pid_t pid)
{
	struct imsg m;
	uint32_t seq;
	int r;

	if (imsgbuf_write(&f->out) == -1)
		FAILF("imsgbuf_write: %s", strerror(errno));
	if ((r = imsgbuf_read(&f->back)) != 1) {
		FAILF("imsgbuf_read of forwards: %d %s", r, strerror(errno));
		return;
	}
	while ((r = imsgbuf_get(&f->back, &m)) == 1) {
		if (f->nback >= f->nfwd) {
			FAILF("forward %u was never sent", m.hdr.peerid);
			imsg_free(&m);
			continue;
		}
		seq = f->order[f->nback++];
		if (check_msg("forwarded message", &m, seq, p->size[seq],
		    pid) == 0 && !freed[seq]) {
			/* The original is intact and equal to its copy. */
			if (p->size[seq] > 0 && memcmp(m.data, kept[seq].data,
			    p->size[seq]) != 0)
				FAILF("forward of %u differs from original",
				    seq);
			check_msg("forwarded original", &kept[seq], seq,
			    p->size[seq], pid);
			CHECK_INT(imsg_get_fd(&m), ==, -1);
			/* The last copy of it is back: free the original. */
			if (seq % 9 != 0 || (f->nback >= 2 &&
			    f->order[f->nback - 2] == seq)) {
				imsg_free(&kept[seq]);
				freed[seq] = 1;
			}
		}
		imsg_free(&m);
	}
	if (r == -1)
		FAILF("imsgbuf_get of forwards: %s", strerror(errno));
}

static void
forward_one(struct fwd *f, struct imsg *kept, int *freed, uint32_t seq,
    const struct plan *p)
{
	unsigned char tmp[5];
	int twice = seq % 9 == 0, k;

	/* Part of the payload read first: forward still sends all of it. */
	if (seq % 5 == 2 && p->size[seq] >= sizeof(tmp))
		CHECK_INT(imsg_get_buf(&kept[seq], tmp, sizeof(tmp)), ==, 0);
	for (k = 0; k <= twice; k++) {
		if (imsg_forward(&f->out, &kept[seq]) != 1) {
			FAILF("imsg_forward %u: %s", seq, strerror(errno));
			return;
		}
		f->order[f->nfwd++] = seq;
		/* The original's read position is back at the payload. */
		CHECK_UINT(imsg_get_len(&kept[seq]), ==, p->size[seq]);
	}
	if (seq % 4 == 1) {
		imsg_free(&kept[seq]);
		freed[seq] = 1;
	}
}

static void
forwarded_kept_messages_read_back_identical(void)
{
	struct plan p;
	struct imsgbuf ib;
	struct imsg *kept;
	struct fwd f;
	struct pollfd pfd;
	uint32_t *arrived, got = 0, reads = 0, next = 0, i;
	int *freed, sv[2], xv[2], rc = 1, idle = 0;
	pid_t pid;

	plan_make(&p, 2000, 3, 101, 0, 0);
	pair(sv);
	pid = start_sender(sv[1], sv[0], &p, 0, NULL);
	close(sv[1]);
	kept = xcalloc(p.n, sizeof(*kept));
	freed = xcalloc(p.n, sizeof(*freed));
	arrived = xcalloc(p.n, sizeof(*arrived));
	memset(&f, 0, sizeof(f));
	f.order = xcalloc(2 * p.n, sizeof(*f.order));
	ib_open(&ib, sv[0], BIG_MAX, 0);
	pair(xv);
	set_nonblock(xv[0]);
	set_nonblock(xv[1]);
	ib_open(&f.out, xv[0], BIG_MAX, 0);
	ib_open(&f.back, xv[1], BIG_MAX, 0);

	while (got < p.n && h_case_failed == 0) {
		if (read_more(&ib, got, p.n) != 1)
			break;
		reads++;
		while (got < p.n && (rc = imsgbuf_get(&ib, &kept[got])) == 1)
			arrived[got++] = reads;
		if (rc == -1)
			FAILF("imsgbuf_get: %s", strerror(errno));
		/* Forward what came at least three reads ago. */
		while (next < got && arrived[next] + 3 <= reads)
			forward_one(&f, kept, freed, next++, &p);
		fwd_pump(&f, kept, freed, &p, pid);
	}
	CHECK_UINT(got, ==, p.n);
	CHECK_UINT(reads, >=, 30);
	if (got == p.n)
		expect_eof(&ib);
	while (next < got)
		forward_one(&f, kept, freed, next++, &p);
	while (f.nback < f.nfwd && h_case_failed == 0 && idle < 50) {
		i = f.nback;
		fwd_pump(&f, kept, freed, &p, pid);
		if (f.nback == i) {
			pfd.fd = xv[1];
			pfd.events = POLLIN;
			idle += poll(&pfd, 1, 100) == 0;
		}
	}
	CHECK_UINT(f.nback, ==, f.nfwd);
	CHECK_UINT(imsgbuf_queuelen(&f.out), ==, 0);
	CHECK_UINT(f.nfwd, >, p.n);
	for (i = 0; i < got; i++) {
		if (freed[i])
			continue;
		check_msg("unforwarded original", &kept[i], i, p.size[i], pid);
		imsg_free(&kept[i]);
	}
	imsgbuf_clear(&f.out);
	imsgbuf_clear(&f.back);
	imsgbuf_clear(&ib);
	close(xv[0]);
	close(xv[1]);
	close(sv[0]);
	WAIT_CHILD(pid);
	free(f.order);
	free(arrived);
	free(freed);
	free(kept);
	plan_free(&p);
}

/* ---- descriptors -------------------------------------------------------- */

#define NFILES	3

/* Unlinked temporary files; their identities tell descriptors apart. */
static void
files_open(int *files, struct stat *st)
{
	char path[] = "/tmp/libimsg-lifetime-XXXXXX";
	int i;

	for (i = 0; i < NFILES; i++) {
		strcpy(path, "/tmp/libimsg-lifetime-XXXXXX");
		if ((files[i] = mkstemp(path)) == -1)
			die("mkstemp");
		unlink(path);
		if (fstat(files[i], &st[i]) == -1)
			die("fstat");
	}
}

static void
files_close(int *files)
{
	int i;

	for (i = 0; i < NFILES; i++)
		close(files[i]);
}

/* fd must be open and be the file st describes. */
static int
same_file(int fd, const struct stat *st)
{
	struct stat sb;

	return fstat(fd, &sb) == 0 && sb.st_dev == st->st_dev &&
	    sb.st_ino == st->st_ino;
}

/*
 * Messages with descriptors arrive among many without, across many reads,
 * and are all kept.  Only at the end does every second one have its
 * descriptor claimed (it must be the very file sent with that message);
 * the others are never claimed, and imsg_free must close them: the count
 * of open descriptors says so exactly.  Forwarding one leaves its
 * descriptor where it was.
 */
static void
descriptors_of_kept_messages_claimed_late_or_closed_by_free(void)
{
	struct plan p;
	struct imsgbuf ib, fo, fb;
	struct imsg *kept, m;
	struct stat st[NFILES];
	struct rng r;
	uint32_t got = 0, reads = 0, i, nfd, nclaimed = 0, fwdseq = UINT32_MAX;
	int files[NFILES], *claimed, *unclaimed, sv[2], xv[2], base, rc = 1;
	int fd;
	pid_t pid;

	files_open(files, st);
	plan_make(&p, 1500, 4, 211, 11, NFILES);
	nfd = plan_nfd(&p);
	pair(sv);
	pid = start_sender(sv[1], sv[0], &p, 1, files);
	close(sv[1]);
	kept = xcalloc(p.n, sizeof(*kept));
	claimed = xcalloc(p.n, sizeof(*claimed));
	unclaimed = xcalloc(p.n, sizeof(*unclaimed));
	base = h_count_fds();
	ib_open(&ib, sv[0], BIG_MAX, 1);

	while (got < p.n && h_case_failed == 0) {
		if (read_more(&ib, got, p.n) != 1)
			break;
		reads++;
		while (got < p.n && (rc = imsgbuf_get(&ib, &kept[got])) == 1)
			got++;
		if (rc == -1)
			FAILF("imsgbuf_get: %s", strerror(errno));
	}
	CHECK_UINT(got, ==, p.n);
	CHECK_UINT(reads, >=, nfd);
	if (got == p.n)
		expect_eof(&ib);
	WAIT_CHILD(pid);
	/* Every descriptor sent is held, unclaimed, by its message. */
	CHECK_INT(h_count_fds(), ==, base + (int)nfd);

	/* One forwarded: the copy goes without it, the original keeps it. */
	for (i = 0; i < got && fwdseq == UINT32_MAX; i++)
		if (p.file[i] >= 0 && i % 2 == 0)
			fwdseq = i;
	CHECK(fwdseq != UINT32_MAX);
	if (fwdseq != UINT32_MAX) {
		pair(xv);
		ib_open(&fo, xv[0], BIG_MAX, 1);
		ib_open(&fb, xv[1], BIG_MAX, 1);
		if (imsg_forward(&fo, &kept[fwdseq]) != 1 ||
		    imsgbuf_flush(&fo) == -1)
			FAILF("forwarding %u: %s", fwdseq, strerror(errno));
		else if (imsgbuf_read(&fb) != 1)
			FAILF("reading forward: %s", strerror(errno));
		else if (imsgbuf_get(&fb, &m) == 1) {
			check_msg("forwarded", &m, fwdseq, p.size[fwdseq], pid);
			CHECK_INT(imsg_get_fd(&m), ==, -1);
			imsg_free(&m);
		} else
			FAILF("forward of %u did not arrive", fwdseq);
		imsgbuf_clear(&fo);
		imsgbuf_clear(&fb);
		close(xv[0]);
		close(xv[1]);
		CHECK_INT(h_count_fds(), ==, base + (int)nfd);
	}

	for (i = 0; i < got; i++) {
		if (p.file[i] < 0) {
			CHECK_INT(imsg_get_fd(&kept[i]), ==, -1);
			continue;
		}
		if (i % 2 != 0)
			continue;
		if ((fd = imsg_get_fd(&kept[i])) == -1) {
			FAILF("message %u: no descriptor to claim", i);
			continue;
		}
		if (!same_file(fd, &st[p.file[i]]))
			FAILF("message %u: descriptor %d is not file %d", i,
			    fd, p.file[i]);
		/* Claimed once: it is ours now. */
		CHECK_INT(imsg_get_fd(&kept[i]), ==, -1);
		claimed[i] = fd;
		nclaimed++;
	}
	CHECK_UINT(nclaimed, >=, nfd / 3);
	CHECK_INT(h_count_fds(), ==, base + (int)nfd);
	for (i = 0; i < got; i++) {
		check_msg("kept message", &kept[i], i, p.size[i], pid);
		/* The unclaimed descriptor, still in the message's ibuf. */
		if (p.file[i] >= 0 && i % 2 != 0) {
			if (kept[i].buf->fd < 0 ||
			    !same_file(kept[i].buf->fd, &st[p.file[i]]))
				FAILF("message %u: unclaimed descriptor %d",
				    i, kept[i].buf->fd);
			unclaimed[i] = kept[i].buf->fd;
		}
	}
	rng_seed(&r, 44);
	free_shuffled(kept, got, &r);
	/* imsg_free closed exactly the unclaimed ones. */
	CHECK_INT(h_count_fds(), ==, base + (int)nclaimed);
	for (i = 0; i < got; i++)
		if (unclaimed[i] > 0 && h_fd_is_open(unclaimed[i]))
			FAILF("message %u: descriptor %d still open after "
			    "imsg_free", i, unclaimed[i]);
	for (i = 0; i < got; i++) {
		if (p.file[i] >= 0 && i % 2 == 0 && claimed[i] > 0) {
			if (!same_file(claimed[i], &st[p.file[i]]))
				FAILF("claimed descriptor of %u changed", i);
			close(claimed[i]);
		}
	}
	CHECK_INT(h_count_fds(), ==, base);
	imsgbuf_clear(&ib);
	close(sv[0]);
	files_close(files);
	free(claimed);
	free(unclaimed);
	free(kept);
	plan_free(&p);
}

/* ---- threads ---------------------------------------------------------- */

/*
 * The reader keeps reading new messages into blocks while another thread
 * pops the messages it was handed (imsg_ibufq_push) and verifies and frees
 * them, so blocks are released on that thread, racing with the reader's
 * decision to restart them.  Some messages are kept by the reader itself
 * meanwhile, some had part of their payload read before the hand-off
 * (the pop starts over at the header), some carry descriptors.
 */
struct handoff {
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	struct ibufqueue *shared;
	int		 done;
	const struct plan *p;
	const struct stat *st;
	struct ibuf	**bufs;		/* imsg.buf of each pushed seq */
	pid_t		 pid;
	/* Results, read after the join. */
	uint32_t	 nfreed;
	uint32_t	 nclaimed;
	uint32_t	 nerr;
	char		 err[256];
};

static void
handoff_err(struct handoff *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
handoff_err(struct handoff *h, const char *fmt, ...)
{
	va_list ap;

	if (h->nerr++ == 0) {
		va_start(ap, fmt);
		vsnprintf(h->err, sizeof(h->err), fmt, ap);
		va_end(ap);
	}
}

static void *
handoff_consumer(void *arg)
{
	struct handoff *h = arg;
	struct ibufqueue *mine;
	struct imsg m;
	uint32_t seq, size;
	size_t off;
	int done = 0, fd, r;

	if ((mine = ibufq_new()) == NULL) {
		handoff_err(h, "ibufq_new failed");
		return NULL;
	}
	while (!done) {
		pthread_mutex_lock(&h->lock);
		while (ibufq_queuelen(h->shared) == 0 && !h->done)
			pthread_cond_wait(&h->cond, &h->lock);
		ibufq_concat(mine, h->shared);
		done = h->done;
		pthread_mutex_unlock(&h->lock);

		while ((r = imsg_ibufq_pop(mine, &m)) == 1) {
			seq = m.hdr.peerid;
			if (seq >= h->p->n || m.hdr.type != seq_type(seq)) {
				handoff_err(h, "popped bad header %u", seq);
				imsg_free(&m);
				continue;
			}
			size = h->p->size[seq];
			if (m.buf != h->bufs[seq])
				handoff_err(h, "%u popped as another ibuf", seq);
			if (m.hdr.len != size + HDR ||
			    m.hdr.pid != (uint32_t)h->pid ||
			    imsg_get_len(&m) != size)
				handoff_err(h, "%u: len %u pid %u left %zu",
				    seq, m.hdr.len, m.hdr.pid,
				    imsg_get_len(&m));
			else if (size > 0 && (m.data == NULL ||
			    ((uintptr_t)m.data & 15) != 0))
				handoff_err(h, "%u: payload at %p", seq,
				    m.data);
			else if (size > 0 && (off = mismatch(seq, m.data,
			    size)) != size)
				handoff_err(h, "%u (%u bytes): byte %zu differs",
				    seq, size, off);
			if (h->p->file[seq] >= 0 && seq % 2 == 1) {
				if ((fd = imsg_get_fd(&m)) == -1)
					handoff_err(h, "%u: no descriptor", seq);
				else {
					if (!same_file(fd,
					    &h->st[h->p->file[seq]]))
						handoff_err(h, "%u: wrong file",
						    seq);
					close(fd);
					h->nclaimed++;
				}
			}
			/* Unclaimed descriptors are closed here. */
			imsg_free(&m);
			h->nfreed++;
		}
		if (r == -1)
			handoff_err(h, "imsg_ibufq_pop failed");
	}
	ibufq_free(mine);
	return NULL;
}

static void
ibufq_handoff_to_thread_frees_blocks_while_main_reads(void)
{
	struct plan p;
	struct handoff h;
	struct imsgbuf ib;
	struct ibufqueue *local;
	struct imsg m, *kept;
	struct stat st[NFILES];
	struct rng r;
	pthread_t t;
	uint32_t got = 0, reads = 0, nkept = 0, i, pushed = 0, cfd = 0;
	unsigned char tmp[7];
	int files[NFILES], sv[2], rc = 1;
	pid_t pid;

	files_open(files, st);
	plan_make(&p, 4000, 5, 149, 47, NFILES);
	for (i = 0; i < p.n; i++)
		cfd += p.file[i] >= 0 && i % 2 == 1 && i % 16 != 0;
	pair(sv);
	pid = start_sender(sv[1], sv[0], &p, 1, files);
	close(sv[1]);
	memset(&h, 0, sizeof(h));
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.cond, NULL);
	h.shared = ibufq_new();
	local = ibufq_new();
	if (h.shared == NULL || local == NULL)
		die("ibufq_new");
	h.p = &p;
	h.st = st;
	h.pid = pid;
	h.bufs = xcalloc(p.n, sizeof(*h.bufs));
	kept = xcalloc(p.n, sizeof(*kept));
	rng_seed(&r, 55);
	ib_open(&ib, sv[0], BIG_MAX, 1);
	if (pthread_create(&t, NULL, handoff_consumer, &h) != 0)
		die("pthread_create");

	while (got < p.n && h_case_failed == 0) {
		if (read_more(&ib, got, p.n) != 1)
			break;
		reads++;
		while (got < p.n && (rc = imsgbuf_get(&ib, &m)) == 1) {
			if (m.hdr.peerid != got) {
				FAILF("message %u arrived as %u", got,
				    m.hdr.peerid);
				imsg_free(&m);
				got++;
				continue;
			}
			if (got % 16 == 0) {
				kept[nkept++] = m;	/* the reader's own */
				got++;
				continue;
			}
			if (got % 3 == 1 && p.size[got] >= sizeof(tmp))
				CHECK_INT(imsg_get_buf(&m, tmp, sizeof(tmp)),
				    ==, 0);
			h.bufs[got] = m.buf;
			imsg_ibufq_push(local, &m);
			/* The imsg was handed over: nothing of it is left. */
			if (m.buf != NULL || m.data != NULL)
				FAILF("imsg_ibufq_push left buf %p data %p",
				    (void *)m.buf, m.data);
			pushed++;
			got++;
		}
		if (rc == -1)
			FAILF("imsgbuf_get: %s", strerror(errno));
		/* Hand over the read's messages at once, or hold some back. */
		if (rng_below(&r, 4) != 0) {
			pthread_mutex_lock(&h.lock);
			ibufq_concat(h.shared, local);
			pthread_cond_signal(&h.cond);
			pthread_mutex_unlock(&h.lock);
		}
	}
	pthread_mutex_lock(&h.lock);
	ibufq_concat(h.shared, local);
	h.done = 1;
	pthread_cond_signal(&h.cond);
	pthread_mutex_unlock(&h.lock);
	if (pthread_join(t, NULL) != 0)
		die("pthread_join");

	CHECK_UINT(got, ==, p.n);
	CHECK_UINT(reads, >=, 100);
	if (got == p.n)
		expect_eof(&ib);
	WAIT_CHILD(pid);
	if (h.nerr != 0)
		FAILF("consumer: %u errors, first: %s", h.nerr, h.err);
	CHECK_UINT(h.nfreed, ==, pushed);
	CHECK_UINT(h.nclaimed, ==, cfd);
	for (i = 0; i < nkept; i++)
		check_msg("reader's own", &kept[i], kept[i].hdr.peerid,
		    p.size[kept[i].hdr.peerid], pid);
	free_shuffled(kept, nkept, &r);
	imsgbuf_clear(&ib);
	close(sv[0]);
	files_close(files);
	ibufq_free(local);
	ibufq_free(h.shared);
	pthread_cond_destroy(&h.cond);
	pthread_mutex_destroy(&h.lock);
	free(h.bufs);
	free(kept);
	plan_free(&p);
}

/* ---- imsgbuf_clear -------------------------------------------------- */

/*
 * imsgbuf_clear while messages taken from it are still held, others are
 * still on its queue and one is half received: the held ones stay valid,
 * can be forwarded and handed through a queue, and are freed afterwards
 * in random order; the rest go with the clear (valgrind, ASan: no leak).
 */
static void
messages_outlive_imsgbuf_clear_of_their_imsgbuf(void)
{
	struct plan p;
	struct imsgbuf ib, fo, fb;
	struct ibufqueue *q;
	struct imsg *kept, m;
	struct imsg_hdr hdr;
	struct pollfd pfd[2];
	struct rng r;
	unsigned char part[16 + 1000], c;
	uint32_t got = 0, want, i;
	int sv[2], xv[2], sync[2], rc = 1, synced = 0, avail = 0, done = 0;
	pid_t pid;

	plan_make(&p, 800, 6, 67, 0, 0);
	want = p.n - 5;			/* five stay on the read queue */
	pair(sv);
	if (pipe(sync) == -1)
		die("pipe");
	fflush(stdout);
	if ((pid = h_fork()) == -1)
		die("fork");
	if (pid == 0) {
		/* All messages, then 1016 bytes of a 3016-byte one. */
		alarm(CHILD_ALARM);
		close(sv[0]);
		close(sync[0]);
		rc = send_plan(sv[1], &p, 0, NULL);
		memset(&hdr, 0, sizeof(hdr));
		hdr.type = 1;
		hdr.len = 16 + 3000;
		memcpy(part, &hdr, sizeof(hdr));
		fill(0, part + 16, 1000);
		if (rc == 0 && write(sv[1], part, sizeof(part)) !=
		    (ssize_t)sizeof(part))
			rc = 7;
		if (rc == 0 && write(sync[1], "x", 1) != 1)
			rc = 8;
		/* Stay until the parent is done with the socket. */
		while (rc == 0 && read(sv[1], &c, 1) > 0)
			;
		_exit(rc);
	}
	close(sv[1]);
	close(sync[1]);
	kept = xcalloc(p.n, sizeof(*kept));
	ib_open(&ib, sv[0], BIG_MAX, 0);

	/* Read until everything the child sent is in ib. */
	while (!done && h_case_failed == 0) {
		pfd[0].fd = sv[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = sync[0];
		pfd[1].events = synced ? 0 : POLLIN;
		if (poll(pfd, 2, 20000) <= 0) {
			FAILF("nothing to read");
			break;
		}
		if (pfd[1].revents != 0)
			synced = read(sync[0], &c, 1) == 1;
		if (pfd[0].revents != 0 && read_more(&ib, got, p.n) != 1)
			break;
		while (got < want && (rc = imsgbuf_get(&ib, &kept[got])) == 1)
			got++;
		if (rc == -1)
			FAILF("imsgbuf_get: %s", strerror(errno));
		if (synced && ioctl(sv[0], FIONREAD, &avail) == 0 &&
		    avail == 0)
			done = 1;
	}
	CHECK_UINT(got, ==, want);

	imsgbuf_clear(&ib);
	/* Cleared is cleared, for the imsgbuf. */
	CHECK_FAIL(imsgbuf_get(&ib, &m), -1, EINVAL);

	for (i = 0; i < got; i++)
		check_msg("kept message", &kept[i], i, p.size[i], 0);
	/* Through a queue and forwarded, after the clear. */
	if ((q = ibufq_new()) == NULL)
		die("ibufq_new");
	for (i = 0; i < got; i += 7)
		imsg_ibufq_push(q, &kept[i]);
	for (i = 0; i < got; i += 7)
		if (imsg_ibufq_pop(q, &kept[i]) != 1)
			FAILF("message %u did not come back", i);
	ibufq_free(q);
	pair(xv);
	ib_open(&fo, xv[0], BIG_MAX, 0);
	ib_open(&fb, xv[1], BIG_MAX, 0);
	for (i = 0; i < got; i += 13)
		CHECK_INT(imsg_forward(&fo, &kept[i]), ==, 1);
	CHECK_INT(imsgbuf_flush(&fo), ==, 0);
	for (i = 0; i < got && h_case_failed == 0; i += 13) {
		while ((rc = imsgbuf_get(&fb, &m)) == 0)
			if (imsgbuf_read(&fb) != 1)
				break;
		if (rc != 1) {
			FAILF("forward of %u did not arrive", i);
			break;
		}
		check_msg("forwarded", &m, i, p.size[i], 0);
		imsg_free(&m);
	}
	imsgbuf_clear(&fo);
	imsgbuf_clear(&fb);
	close(xv[0]);
	close(xv[1]);

	rng_seed(&r, 66);
	for (i = 0; i < got; i++)
		check_msg("kept message", &kept[i], i, p.size[i], 0);
	free_shuffled(kept, got, &r);
	close(sv[0]);
	close(sync[0]);
	WAIT_CHILD(pid);
	free(kept);
	plan_free(&p);
}

/* ---- write side ------------------------------------------------------ */

/*
 * One message of a mixed stream: how it was composed, and the ranges of
 * the stream it takes.  msgbuf counts each message as one entry until its
 * last byte has been written, imsg_compose_ibuf as two (header, payload).
 */
enum {
	K_COMPOSE,		/* imsg_compose, batched */
	K_COMPOSEV,		/* imsg_composev of three pieces, batched */
	K_CREATE,		/* imsg_create, grown by imsg_add, imsg_close */
	K_IBUF,			/* imsg_compose_ibuf, part of the ibuf skipped */
	K_LARGE,		/* imsg_compose above the batch limit */
	K_FD,			/* imsg_compose with a descriptor (not passed) */
	K_CREATE_LARGE,		/* imsg_create above the batch limit */
	K_N
};

struct wmsg {
	uint32_t	 size;
	uint32_t	 kind;
	uint32_t	 pid;		/* expected in the header */
};

/* The queue as the library must count it: entries ending past "sent". */
struct wmodel {
	uint64_t	*end;		/* stream offset where each entry ends */
	uint32_t	 nent;
	uint32_t	 done;		/* entries entirely written */
	uint64_t	 total;		/* bytes composed */
};

static uint32_t
wmodel_queued(struct wmodel *w, uint64_t sent)
{
	while (w->done < w->nent && w->end[w->done] <= sent)
		w->done++;
	return w->nent - w->done;
}

static void
wmodel_add(struct wmodel *w, uint64_t len)
{
	w->total += len;
	w->end[w->nent++] = w->total;
}

/* Compose message seq in the way kind says; 0 or -1. */
static int
compose_kind(struct imsgbuf *ib, uint32_t seq, struct wmsg *wm,
    struct wmodel *w, unsigned char *buf, int devnull)
{
	struct iovec iov[3];
	struct ibuf *b;
	uint32_t size = wm->size, a, skip;
	pid_t pid = seq % 3 == 0 ? 0 : (pid_t)(1000 + seq % 50);
	int fd;

	wm->pid = pid == 0 ? (uint32_t)getpid() : (uint32_t)pid;
	fill(seq, buf, size);
	switch (wm->kind) {
	case K_COMPOSE:
	case K_LARGE:
		if (imsg_compose(ib, seq_type(seq), seq, pid, -1, buf, size) !=
		    1)
			return -1;
		break;
	case K_COMPOSEV:
		a = size / 3;
		iov[0].iov_base = buf;
		iov[0].iov_len = a;
		iov[1].iov_base = buf + a;
		iov[1].iov_len = 0;
		iov[2].iov_base = buf + a;
		iov[2].iov_len = size - a;
		if (imsg_composev(ib, seq_type(seq), seq, pid, -1, iov, 3) != 1)
			return -1;
		break;
	case K_CREATE:
	case K_CREATE_LARGE:
		/* Declared smaller than it ends up: it grows on the way. */
		a = size / 2;
		if ((b = imsg_create(ib, seq_type(seq), seq, pid, a)) == NULL)
			return -1;
		if (imsg_add(b, buf, a) == -1 ||
		    imsg_add(b, buf + a, (size - a) / 2) == -1 ||
		    imsg_add(b, buf + a + (size - a) / 2,
		    size - a - (size - a) / 2) == -1)
			return -1;
		imsg_close(ib, b);
		break;
	case K_IBUF:
		skip = seq % 4 == 0 ? 0 : seq % 23;
		if ((b = ibuf_dynamic(0, skip + size + 1)) == NULL)
			return -1;
		if (ibuf_add_zero(b, skip) == -1 ||
		    ibuf_add(b, buf, size) == -1 ||
		    ibuf_skip(b, skip) == -1) {
			ibuf_free(b);
			return -1;
		}
		if (imsg_compose_ibuf(ib, seq_type(seq), seq, pid, b) != 1)
			return -1;
		wmodel_add(w, HDR);
		wmodel_add(w, size);
		return 0;
	case K_FD:
		if ((fd = dup(devnull)) == -1)
			die("dup");
		if (imsg_compose(ib, seq_type(seq), seq, pid, fd, buf, size) !=
		    1) {
			close(fd);
			return -1;
		}
		break;
	}
	wmodel_add(w, HDR + size);
	return 0;
}

/* Kinds and sizes of n messages, drawn from r. */
static struct wmsg *
wplan(uint32_t n, struct rng *r)
{
	struct wmsg *wm;
	uint32_t i, k;

	wm = xcalloc(n, sizeof(*wm));
	for (i = 0; i < n; i++) {
		k = rng_below(r, 100);
		if (k < 40)
			wm[i].kind = K_COMPOSE;
		else if (k < 55)
			wm[i].kind = K_COMPOSEV;
		else if (k < 72)
			wm[i].kind = K_CREATE;
		else if (k < 90)
			wm[i].kind = K_IBUF;
		else if (k < 93)
			wm[i].kind = K_LARGE;
		else if (k < 97)
			wm[i].kind = K_FD;
		else
			wm[i].kind = K_CREATE_LARGE;
		if (i % 4 == 0)
			wm[i].size = special_sizes[(i / 4) % NSPECIAL];
		else
			wm[i].size = rng_below(r, 3000);
		if (wm[i].kind == K_LARGE || wm[i].kind == K_CREATE_LARGE)
			wm[i].size = 16369 + rng_below(r, 80000);
	}
	return wm;
}

/* Parse a raw stream of n messages and check each against the plan. */
static void
check_stream(const unsigned char *s, uint64_t len, const struct wmsg *wm,
    uint32_t n)
{
	struct imsg_hdr hdr;
	uint64_t off = 0;
	uint32_t i, plen;
	size_t bad;

	for (i = 0; i < n; i++) {
		if (len - off < HDR) {
			FAILF("stream ends before message %u", i);
			return;
		}
		memcpy(&hdr, s + off, sizeof(hdr));
		plen = (hdr.len & ~MARK) - (uint32_t)HDR;
		if (hdr.peerid != i || hdr.type != seq_type(i) ||
		    plen != wm[i].size || hdr.pid != wm[i].pid ||
		    ((hdr.len & MARK) != 0) != (wm[i].kind == K_FD)) {
			FAILF("message %u: peerid %u type %u len %#x pid %u, "
			    "want %u bytes from pid %u", i, hdr.peerid,
			    hdr.type, hdr.len, hdr.pid, wm[i].size,
			    wm[i].pid);
			return;
		}
		off += HDR;
		if (len - off < plen) {
			FAILF("stream ends inside message %u", i);
			return;
		}
		if ((bad = mismatch(i, s + off, plen)) != plen)
			FAILF("message %u: payload byte %zu differs", i, bad);
		off += plen;
	}
	CHECK_UINT(off, ==, len);
}

/*
 * A nonblocking socket with a tiny send buffer: every write is partial
 * and cuts batches (and messages) anywhere, and more messages are composed
 * while earlier batches are half sent.  The peer reads raw bytes, now all,
 * now some, now none, so the bytes the library has written are exactly
 * those read plus those still queued to the peer (FIONREAD).  After every
 * compose and every write the queue length must be what the written byte
 * count says; in the end the raw stream must hold every message once, in
 * order.
 */
static void
partial_writes_keep_exact_queue_length_and_order(void)
{
	struct imsgbuf ib;
	struct wmodel w;
	struct wmsg *wm;
	struct rng r;
	unsigned char *buf, *stream;
	uint64_t got = 0, cap, sent;
	uint32_t n = 3000, seq = 0, burst, k, writes = 0, cuts = 0, q;
	int sv[2], sndbuf = 4096, avail, devnull, idle = 0;
	ssize_t nr;
	size_t want;

	rng_seed(&r, 77);
	wm = wplan(n, &r);
	memset(&w, 0, sizeof(w));
	w.end = xcalloc(2 * n, sizeof(*w.end));
	for (k = 0, cap = 0; k < n; k++)
		cap += HDR + wm[k].size;
	stream = xcalloc(cap + 1, 1);
	buf = xcalloc(BIG_MAX, 1);
	if ((devnull = open("/dev/null", O_RDONLY)) == -1)
		die("open /dev/null");
	pair(sv);
	if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf))
	    == -1)
		die("SO_SNDBUF");
	set_nonblock(sv[0]);
	set_nonblock(sv[1]);
	ib_open(&ib, sv[0], BIG_MAX, 0);

	while (h_case_failed == 0 && (seq < n || imsgbuf_queuelen(&ib) > 0)) {
		if (ioctl(sv[1], FIONREAD, &avail) == -1)
			die("FIONREAD");
		sent = got + (uint64_t)avail;
		burst = seq < n ? rng_below(&r, 12) : 0;
		for (k = 0; k < burst && seq < n; k++, seq++) {
			if (compose_kind(&ib, seq, &wm[seq], &w, buf,
			    devnull) == -1) {
				FAILF("composing %u (kind %u): %s", seq,
				    wm[seq].kind, strerror(errno));
				break;
			}
			if ((q = imsgbuf_queuelen(&ib)) !=
			    wmodel_queued(&w, sent))
				FAILF("after composing %u: queue %u, want %u",
				    seq, q, wmodel_queued(&w, sent));
		}
		if (imsgbuf_write(&ib) == -1)
			FAILF("imsgbuf_write: %s", strerror(errno));
		writes++;
		if (ioctl(sv[1], FIONREAD, &avail) == -1)
			die("FIONREAD");
		sent = got + (uint64_t)avail;
		if (sent > w.total)
			FAILF("%llu bytes written of %llu composed",
			    (unsigned long long)sent,
			    (unsigned long long)w.total);
		if ((q = imsgbuf_queuelen(&ib)) != wmodel_queued(&w, sent))
			FAILF("after write %u (%llu of %llu bytes sent): queue "
			    "%u, want %u", writes, (unsigned long long)sent,
			    (unsigned long long)w.total, q,
			    wmodel_queued(&w, sent));
		/* A write that ended inside a message. */
		if (w.done < w.nent && (w.done == 0 ?
		    sent > 0 : sent > w.end[w.done - 1]))
			cuts++;
		/* The peer reads all, some or nothing. */
		k = rng_below(&r, 4);
		if (avail > 0 && k != 0) {
			want = k == 1 ? 1 + rng_below(&r, (uint32_t)avail) :
			    (size_t)avail;
			if (want > cap - got) {
				FAILF("more bytes than were composed");
				break;
			}
			if ((nr = read(sv[1], stream + got, want)) > 0)
				got += (uint64_t)nr;
		}
		if (seq >= n && avail == 0 && ++idle > 100000) {
			FAILF("queue stuck at %u", imsgbuf_queuelen(&ib));
			break;
		}
	}
	/* The rest of the stream. */
	while ((nr = read(sv[1], stream + got, cap + 1 - got)) > 0)
		got += (uint64_t)nr;
	CHECK_UINT(seq, ==, n);
	CHECK_UINT(got, ==, w.total);
	CHECK_UINT(got, ==, cap);
	CHECK_UINT(wmodel_queued(&w, got), ==, 0);
	CHECK_UINT(imsgbuf_queuelen(&ib), ==, 0);
	/* The test did what it says: many writes, most cut a message. */
	CHECK_UINT(writes, >=, 500);
	CHECK_UINT(cuts, >=, 200);
	check_stream(stream, got, wm, n);

	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
	close(devnull);
	free(buf);
	free(stream);
	free(w.end);
	free(wm);
}

/*
 * The same mix of composes, sent to a forked peer that reads with an
 * imsgbuf, slowly at times, and checks every message arrives once and in
 * order.  Composing goes on while the socket is full and batches are half
 * written; unsent messages sit in spare batches being recycled.
 */
static int
slow_reader(int sock, const struct wmsg *wm, uint32_t n)
{
	struct imsgbuf ib;
	struct imsg m;
	uint32_t got = 0;
	int r;

	ib_open(&ib, sock, BIG_MAX, 0);
	for (;;) {
		while ((r = imsgbuf_get(&ib, &m)) == 1) {
			if (got >= n || check_msg("received", &m, got,
			    wm[got].size, (pid_t)wm[got].pid) == -1) {
				printf("# reader: message %u is wrong\n", got);
				return 1;
			}
			imsg_free(&m);
			got++;
		}
		if (r == -1)
			return 2;
		if (got % 97 == 13)
			usleep(500);
		if ((r = imsgbuf_read(&ib)) == 0)
			break;
		if (r == -1)
			return 3;
	}
	imsgbuf_clear(&ib);
	if (got != n) {
		printf("# reader: %u of %u messages\n", got, n);
		return 4;
	}
	return 0;
}

static void
forked_reader_gets_every_message_once_in_order(void)
{
	struct imsgbuf ib;
	struct wmodel w;
	struct wmsg *wm;
	struct rng r;
	struct pollfd pfd;
	unsigned char *buf;
	uint32_t n = 2500, seq = 0, k, maxq = 0, q, stuck = 0;
	int sv[2], sndbuf = 8192, devnull;
	pid_t pid;

	rng_seed(&r, 88);
	wm = wplan(n, &r);
	/* The reader needs the pids too: compose decides them, so do it now. */
	for (k = 0; k < n; k++)
		wm[k].pid = k % 3 == 0 ? (uint32_t)getpid() : 1000 + k % 50;
	pair(sv);
	fflush(stdout);
	if ((pid = h_fork()) == -1)
		die("fork");
	if (pid == 0) {
		alarm(CHILD_ALARM);
		close(sv[0]);
		k = (uint32_t)slow_reader(sv[1], wm, n);
		free(wm);
		_exit((int)k);
	}
	close(sv[1]);
	memset(&w, 0, sizeof(w));
	w.end = xcalloc(2 * n, sizeof(*w.end));
	buf = xcalloc(BIG_MAX, 1);
	if ((devnull = open("/dev/null", O_RDONLY)) == -1)
		die("open /dev/null");
	if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf))
	    == -1)
		die("SO_SNDBUF");
	set_nonblock(sv[0]);
	ib_open(&ib, sv[0], BIG_MAX, 0);

	while (h_case_failed == 0 && (seq < n || imsgbuf_queuelen(&ib) > 0)) {
		q = imsgbuf_queuelen(&ib);
		for (k = rng_below(&r, 40); k > 0 && seq < n; k--, seq++)
			if (compose_kind(&ib, seq, &wm[seq], &w, buf,
			    devnull) == -1)
				FAILF("composing %u: %s", seq, strerror(errno));
		if (imsgbuf_queuelen(&ib) > maxq)
			maxq = imsgbuf_queuelen(&ib);
		if (imsgbuf_write(&ib) == -1) {
			FAILF("imsgbuf_write: %s", strerror(errno));
			break;
		}
		/* Writable, all composed, and still nothing goes out. */
		if (seq >= n && imsgbuf_queuelen(&ib) >= q && ++stuck > 1000) {
			FAILF("queue stuck at %u", imsgbuf_queuelen(&ib));
			break;
		}
		/* Now and then wait for room; mostly compose on regardless. */
		if (seq >= n || imsgbuf_queuelen(&ib) > 400) {
			pfd.fd = sv[0];
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, 20000) <= 0) {
				FAILF("socket never writable");
				break;
			}
		}
	}
	CHECK_UINT(seq, ==, n);
	CHECK_UINT(imsgbuf_queuelen(&ib), ==, 0);
	CHECK_UINT(maxq, >=, 100);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);
	close(devnull);
	free(buf);
	free(w.end);
	free(wm);
}

/* ---- thread exit ------------------------------------------------------ */

/*
 * A thread that frees messages (the last reference to every block they
 * came from, and large buffers), reads and frees its own, and makes and
 * frees ibufs of every size class fills its own cache, and then exits:
 * the cache must be emptied by the thread-exit destructor.  Only valgrind
 * (definite leaks) or LeakSanitizer can see this fail.
 */
struct exiter {
	struct imsg	*kept;
	uint32_t	 nkept;
	const struct plan *p;
	int		 sock;		/* a stream of the plan's messages */
	uint32_t	 nerr;
};

static void *
exiter_main(void *arg)
{
	struct exiter *e = arg;
	struct imsgbuf ib;
	struct imsg m;
	struct ibuf *b;
	uint32_t i, got = 0;
	size_t len;
	int r;

	for (i = 0; i < e->nkept; i++) {
		if (mismatch(e->kept[i].hdr.peerid, e->kept[i].data,
		    imsg_get_len(&e->kept[i])) != imsg_get_len(&e->kept[i]))
			e->nerr++;
		imsg_free(&e->kept[i]);
	}
	for (len = 1; len <= 3 * 1024 * 1024; len = len * 2 + 1) {
		for (i = 0; i < 3; i++) {
			if ((b = ibuf_open(len)) == NULL) {
				e->nerr++;
				continue;
			}
			ibuf_free(b);
		}
	}
	ib_open(&ib, e->sock, BIG_MAX, 0);
	while (got < e->p->n) {
		if ((r = imsgbuf_read(&ib)) != 1) {
			e->nerr++;
			break;
		}
		while (imsgbuf_get(&ib, &m) == 1) {
			if (m.hdr.peerid != got ||
			    mismatch(got, m.data, imsg_get_len(&m)) !=
			    imsg_get_len(&m))
				e->nerr++;
			imsg_free(&m);
			got++;
		}
	}
	imsgbuf_clear(&ib);
	return NULL;
}

static void
thread_exit_releases_what_it_freed(void)
{
	struct plan p;
	struct imsgbuf ib;
	struct exiter e;
	pthread_t t;
	uint32_t got = 0;
	long long heap0, heap1;
	int sv[2], tv[2], round, rc = 1;
	pid_t pid, tpid;

	for (round = 0; round < 3; round++) {
		plan_make(&p, 600, 90 + round, 50, 0, 0);
		pair(sv);
		pid = start_sender(sv[1], sv[0], &p, 0, NULL);
		close(sv[1]);
		pair(tv);
		tpid = start_sender(tv[1], tv[0], &p, 0, NULL);
		close(tv[1]);
		memset(&e, 0, sizeof(e));
		e.kept = xcalloc(p.n, sizeof(*e.kept));
		e.p = &p;
		e.sock = tv[0];
		heap0 = heap_in_use();
		ib_open(&ib, sv[0], BIG_MAX, 0);
		for (got = 0; got < p.n && h_case_failed == 0; ) {
			if (read_more(&ib, got, p.n) != 1)
				break;
			while (got < p.n &&
			    (rc = imsgbuf_get(&ib, &e.kept[got])) == 1)
				got++;
		}
		CHECK_UINT(got, ==, p.n);
		e.nkept = got;
		/* The thread's frees drop the last reference of each block. */
		imsgbuf_clear(&ib);
		if (pthread_create(&t, NULL, exiter_main, &e) != 0)
			die("pthread_create");
		if (pthread_join(t, NULL) != 0)
			die("pthread_join");
		/*
		 * Everything read since heap0 was freed by the thread, and
		 * its cache is gone with it.  (This thread's cache may only
		 * have shrunk: the reader took from it.)
		 */
		heap1 = heap_in_use();
		if (heap0 >= 0 && heap1 - heap0 > HEAP_SLACK)
			FAILF("round %d: %lld bytes more in use after the "
			    "thread exited", round, heap1 - heap0);
		CHECK_UINT(e.nerr, ==, 0);
		close(sv[0]);
		close(tv[0]);
		WAIT_CHILD(pid);
		WAIT_CHILD(tpid);
		free(e.kept);
		plan_free(&p);
	}
}

/*
 * A thread whose own thread-specific data destructor frees messages.  Its
 * key is made after the library's, so it runs after the library emptied
 * the thread's cache: what it frees must not be stranded in a cache
 * nobody will empty again.
 */
static pthread_key_t	late_key;

static void
late_key_destructor(void *arg)
{
	struct ibufqueue *q = arg;
	struct imsg m;

	while (imsg_ibufq_pop(q, &m) == 1)
		imsg_free(&m);
	ibufq_free(q);
}

static void *
late_key_thread(void *arg)
{
	struct ibufqueue *q = arg;
	struct ibuf *b;

	/* Give the library's cache something, so its destructor runs. */
	if ((b = ibuf_open(100)) != NULL)
		ibuf_free(b);
	pthread_setspecific(late_key, q);
	return NULL;
}

static void
thread_key_destructor_freeing_messages_leaks_nothing(void)
{
	struct plan p;
	struct imsgbuf ib;
	struct ibufqueue *q;
	struct imsg m;
	struct ibuf *b;
	pthread_t t;
	uint32_t got = 0;
	long long heap0, heap1;
	int sv[2], rc = 1;
	pid_t pid;

	/* The library's key exists before ours. */
	if ((b = ibuf_open(100)) != NULL)
		ibuf_free(b);
	if (pthread_key_create(&late_key, late_key_destructor) != 0)
		die("pthread_key_create");
	plan_make(&p, 600, 99, 60, 0, 0);
	pair(sv);
	pid = start_sender(sv[1], sv[0], &p, 0, NULL);
	close(sv[1]);
	if ((q = ibufq_new()) == NULL)
		die("ibufq_new");
	heap0 = heap_in_use();
	ib_open(&ib, sv[0], BIG_MAX, 0);
	while (got < p.n && h_case_failed == 0) {
		if (read_more(&ib, got, p.n) != 1)
			break;
		while (got < p.n && (rc = imsgbuf_get(&ib, &m)) == 1) {
			check_msg("message", &m, got, p.size[got], pid);
			imsg_ibufq_push(q, &m);
			got++;
		}
	}
	CHECK_UINT(got, ==, p.n);
	imsgbuf_clear(&ib);
	if (pthread_create(&t, NULL, late_key_thread, q) != 0)
		die("pthread_create");
	if (pthread_join(t, NULL) != 0)
		die("pthread_join");
	heap1 = heap_in_use();
	if (heap0 >= 0 && heap1 - heap0 > HEAP_SLACK)
		FAILF("%lld bytes more in use after the thread exited",
		    heap1 - heap0);
	pthread_key_delete(late_key);
	close(sv[0]);
	WAIT_CHILD(pid);
	plan_free(&p);
}

/* ---- slabs, the read buffer, and what a held message costs ------------- */

/*
 * A received imsg of up to MSGBUF_SLAB_MSGMAX bytes is carved out of the
 * reader's 4 KiB slab, box and storage together; a larger one is a
 * malloc of its own.  A held message pins its slab and nothing more.
 * The read buffer holds only a header not yet whole; it starts small,
 * grows when reads fill it, and goes, with the slab, after a light read
 * that leaves nothing behind.  The cases below check each of these with
 * the library's own constants and structures.
 */

/* The pid in the headers of raw streams. */
#define RAW_PID		4242U

/* Frame message seq with a size-byte payload at p; the bytes it took. */
static size_t
put_msg(unsigned char *p, uint32_t seq, size_t size)
{
	struct imsg_hdr h;

	h.type = seq_type(seq);
	h.len = (uint32_t)(HDR + size);
	h.peerid = seq;
	h.pid = RAW_PID;
	memcpy(p, &h, sizeof(h));
	fill(seq, p + HDR, size);
	return HDR + size;
}

/* Messages from..to-1 framed one after the other, size[seq] bytes each. */
static unsigned char *
raw_stream(const uint32_t *size, uint32_t from, uint32_t to, size_t *lenp)
{
	unsigned char *s;
	size_t len = 0;
	uint32_t i;

	for (i = from; i < to; i++)
		len += HDR + size[i];
	s = xcalloc(len, 1);
	for (i = from, len = 0; i < to; i++)
		len += put_msg(s + len, i, size[i]);
	*lenp = len;
	return s;
}

/*
 * Blocking writes.  Callers write at most 64 KiB before they read it
 * all back (read_pending), so the socket always has room.
 */
static void
write_all(int fd, const void *p, size_t n)
{
	const unsigned char *s = p;
	ssize_t r;

	while (n > 0) {
		if ((r = write(fd, s, n)) == -1) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		s += r;
		n -= (size_t)r;
	}
}

/*
 * Read until the socket is empty, so that ib has every byte written so
 * far; it never blocks.  The number of reads, or -1.
 */
static int
read_pending(struct imsgbuf *ib)
{
	int avail, n = 0;

	for (;;) {
		if (ioctl(ib->fd, FIONREAD, &avail) == -1)
			die("FIONREAD");
		if (avail == 0)
			return n;
		if (imsgbuf_read(ib) != 1) {
			FAILF("imsgbuf_read: %s", strerror(errno));
			return -1;
		}
		n++;
	}
}

/* Take what ib has queued into kept[*got..], at most up to want. */
static void
take_all(struct imsgbuf *ib, struct imsg *kept, uint32_t *got, uint32_t want)
{
	int r = 0;

	while (*got < want && (r = imsgbuf_get(ib, &kept[*got])) == 1)
		(*got)++;
	if (r == -1)
		FAILF("imsgbuf_get: %s", strerror(errno));
}

/*
 * check_msg, and the header the message still carries in its buffer
 * (struct ibuf is public): of an empty message that is all there is to
 * overwrite.
 */
static int
check_held(const char *what, struct imsg *m, uint32_t seq, size_t size,
    uint32_t pid)
{
	struct imsg_hdr h;

	if (check_msg(what, m, seq, size, (pid_t)pid) == -1)
		return -1;
	if (m->buf == NULL || m->buf->buf == NULL || m->buf->wpos < HDR) {
		FAILF("%s %u: no header in its buffer", what, seq);
		return -1;
	}
	memcpy(&h, m->buf->buf, sizeof(h));
	if (h.type != seq_type(seq) || (h.len & ~MARK) != HDR + size ||
	    h.peerid != seq || h.pid != pid) {
		FAILF("%s %u: header in its buffer is type %u len %u "
		    "peerid %u pid %u", what, seq, h.type, h.len, h.peerid,
		    h.pid);
		return -1;
	}
	return 0;
}

/*
 * Free kept[0..n) in an order drawn from r, checking each just before:
 * message seq (its peerid) has a payload of size[seq] bytes.
 */
static void
free_checked_shuffled(struct imsg *kept, uint32_t n, const uint32_t *size,
    uint32_t pid, struct rng *r)
{
	uint32_t *order, i, seq;

	order = shuffled(n, r);
	for (i = 0; i < n; i++) {
		seq = kept[order[i]].hdr.peerid;
		check_held("message freed", &kept[order[i]], seq, size[seq],
		    pid);
		imsg_free(&kept[order[i]]);
	}
	free(order);
}

/*
 * A message arrives in six pieces, with reads in between, the first
 * piece cut inside its header.  Before it in the same block lie five
 * messages that are held meanwhile (or, in some runs, freed after the
 * second piece: the block must not start over under the unfinished
 * message).  It is filled in place (aligned, up to 64 KiB), or copied
 * into a buffer of its own and completed by direct reads (misaligned;
 * above 64 KiB), or, if small, waits whole in the block (which may then
 * start over under it) and is copied or handed out in place.  It is not
 * there before its last byte, then it is whole, and nothing before or
 * after it was touched.
 */
struct span {
	uint32_t	 lead;		/* payload before: its alignment */
	uint32_t	 size;		/* its payload */
	int		 free_early;	/* free the five after piece 2 */
	int		 inplace;	/* 1 in place, 0 copied, -1 any */
};


/*
 * About 9.4 MB of messages of 0..1023 bytes (in slabs, and on their
 * own); each is freed at once except every 250th, which is held to the
 * end.  A held message pins its slab after the reader moved on from it,
 * so the held messages are spread over many retired slabs.  They are
 * checked after every read, still hold their bytes after imsgbuf_clear,
 * and are freed, each checked just before, in random order: the last one
 * of each slab frees it (ASan and valgrind see a use after free or a
 * leak).
 */
static void
one_held_message_per_slab_keeps_it_until_freed(void)
{
	struct plan p;
	struct imsgbuf ib;
	struct imsg *kept, m;
	struct rng r;
	uint64_t bytes = 0;
	uint32_t got = 0, nkept = 0, i;
	pid_t pid;
	int sv[2], rc = 1, reads = 0;

	rng_seed(&r, 106);
	p.n = 18000;
	p.size = xcalloc(p.n, sizeof(*p.size));
	p.file = xcalloc(p.n, sizeof(*p.file));
	for (i = 0; i < p.n; i++) {
		p.size[i] = rng_below(&r, 1024);
		p.file[i] = -1;
		bytes += HDR + p.size[i];
	}
	CHECK_UINT(bytes, >=, 64 * MSGBUF_LARGE);
	pair(sv);
	pid = start_sender(sv[1], sv[0], &p, 0, NULL);
	close(sv[1]);
	kept = xcalloc(p.n, sizeof(*kept));
	ib_open(&ib, sv[0], 0, 0);

	while (got < p.n && h_case_failed == 0) {
		if (read_more(&ib, got, p.n) != 1)
			break;
		reads++;
		while (got < p.n && (rc = imsgbuf_get(&ib, &m)) == 1) {
			if (check_msg("message", &m, got, p.size[got],
			    pid) == 0 && got % 250 == 125)
				kept[nkept++] = m;
			else
				imsg_free(&m);
			got++;
		}
		if (rc == -1)
			FAILF("imsgbuf_get: %s", strerror(errno));
		for (i = 0; i < nkept; i++)
			check_msg("held message", &kept[i], kept[i].hdr.peerid,
			    p.size[kept[i].hdr.peerid], pid);
	}
	CHECK_UINT(got, ==, p.n);
	CHECK_UINT(nkept, ==, p.n / 250);
	CHECK_INT(reads, >=, 64);
	if (got == p.n)
		expect_eof(&ib);
	imsgbuf_clear(&ib);
	close(sv[0]);
	WAIT_CHILD(pid);

	for (i = 0; i < nkept; i++)
		check_msg("held message", &kept[i], kept[i].hdr.peerid,
		    p.size[kept[i].hdr.peerid], pid);
	free_checked_shuffled(kept, nkept, p.size, (uint32_t)pid, &r);
	free(kept);
	plan_free(&p);
}

/* Send n bytes with descriptor fd attached to the first. */
static void
send_with_fd(int sock, const void *p, size_t n, int fd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr msg;
	struct iovec iov = { (void *)(uintptr_t)p, n };
	struct cmsghdr *cm;

	memset(&msg, 0, sizeof(msg));
	memset(&cbuf, 0, sizeof(cbuf));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	if (sendmsg(sock, &msg, 0) != (ssize_t)n)
		die("sendmsg");
}

/* The slab a message was carved from, or NULL if it has its own box. */
static struct slab *
slab_of(const struct imsg *m)
{
	struct ibuf_box *box = ibuf_box(m->buf);

	if ((box->flags & IBUF_BOX_SLAB) == 0)
		return NULL;
	return (struct slab *)(void *)((char *)box - (size_t)box->slaboff * 16);
}

/*
 * Messages on both sides of MSGBUF_SLAB_MSGMAX, all in one read: the
 * small ones come from one slab, the larger ones each have a box of
 * their own, and every payload is 16-aligned whichever it is.
 */
static void
small_messages_share_a_slab_and_large_ones_get_their_own(void)
{
	static const uint32_t total[] = { 16, 100, MSGBUF_SLAB_MSGMAX - 1,
	    MSGBUF_SLAB_MSGMAX, MSGBUF_SLAB_MSGMAX + 1, 4000, 20000, 17 };
	const uint32_t n = sizeof(total) / sizeof(total[0]);
	struct imsgbuf ib;
	struct imsg kept[sizeof(total) / sizeof(total[0])];
	uint32_t size[sizeof(total) / sizeof(total[0])], got = 0, i;
	struct slab *first = NULL;
	unsigned char *s;
	size_t len;
	int sv[2];

	for (i = 0; i < n; i++)
		size[i] = total[i] - (uint32_t)HDR;
	s = raw_stream(size, 0, n, &len);
	pair(sv);
	ib_open(&ib, sv[0], BIG_MAX, 0);
	write_all(sv[1], s, len);
	if (read_pending(&ib) > 0)
		take_all(&ib, kept, &got, n);
	CHECK_UINT(got, ==, n);
	for (i = 0; i < got; i++) {
		if (check_held("message", &kept[i], i, size[i], RAW_PID) != 0)
			continue;
		if (size[i] > 0 && ((uintptr_t)kept[i].data & 15) != 0)
			FAILF("message %u: payload at %p", i, kept[i].data);
		if ((slab_of(&kept[i]) != NULL) != (total[i] <=
		    MSGBUF_SLAB_MSGMAX))
			FAILF("message %u of %u bytes: %s", i, total[i],
			    slab_of(&kept[i]) != NULL ? "in a slab" :
			    "not in a slab");
		if (first == NULL)
			first = slab_of(&kept[i]);
	}
	CHECK(first != NULL && slab_of(&kept[1]) == first);
	for (i = 0; i < got; i++)
		imsg_free(&kept[i]);
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
	free(s);
}

/*
 * 400 rounds of 100 small messages, one of each round kept: what stays
 * in use is the kept messages' slabs, at most MSGBUF_SMALL each, plus a
 * read buffer, however many messages went through.  (Before slabs were
 * this small, a kept message pinned a 512 KiB block.)
 */
static void
held_messages_cost_their_size_plus_at_most_one_slab(void)
{
	const uint32_t rounds = 400, per = 100;
	struct imsgbuf ib;
	struct imsg *kept, m;
	uint32_t *size, i, k, nkept = 0, seq = 0;
	unsigned char *s;
	long long heap0, heap1;
	size_t len;
	int sv[2];

	size = xcalloc(per, sizeof(*size));
	kept = xcalloc(rounds, sizeof(*kept));
	pair(sv);
	ib_open(&ib, sv[0], 0, 0);
	heap0 = heap_in_use();
	for (k = 0; k < rounds && h_case_failed == 0; k++) {
		for (i = 0; i < per; i++)
			size[i] = 64;
		s = raw_stream(size, 0, per, &len);
		write_all(sv[1], s, len);
		free(s);
		if (read_pending(&ib) == -1)
			break;
		for (i = 0; imsgbuf_get(&ib, &m) == 1; i++, seq++) {
			if (i == per / 2)
				kept[nkept++] = m;
			else
				imsg_free(&m);
		}
		CHECK_UINT(i, ==, per);
	}
	heap1 = heap_in_use();
	printf("# %u kept of %u: %lld bytes more in use\n", nkept, seq,
	    heap1 - heap0);
	if (heap0 >= 0 && heap1 - heap0 > (long long)nkept * MSGBUF_SMALL +
	    MSGBUF_LARGE)
		FAILF("%u kept messages hold %lld bytes", nkept, heap1 - heap0);
	for (i = 0; i < nkept; i++)
		imsg_free(&kept[i]);
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
	free(kept);
	free(size);
}

/*
 * Light traffic, one message at a time each way, every message freed:
 * afterwards neither side holds a read buffer, a slab or a batch, and
 * the heap holds what it held just after imsgbuf_init.
 */
static void
idle_channel_gives_back_read_buffer_slab_and_batch(void)
{
	struct imsgbuf a, b;
	struct imsg m;
	unsigned char pay[100];
	long long heap0, heap1;
	int sv[2], i, got = 0;

	memset(pay, 0x5a, sizeof(pay));
	pair(sv);
	ib_open(&a, sv[0], 0, 0);
	ib_open(&b, sv[1], 0, 0);
	heap0 = heap_in_use();
	for (i = 0; i < 50 && h_case_failed == 0; i++) {
		CHECK_INT(imsg_compose(&a, 1, (uint32_t)i, 0, -1, pay,
		    sizeof(pay)), ==, 1);
		CHECK_INT(imsgbuf_flush(&a), ==, 0);
		if (read_pending(&b) == -1)
			break;
		while (imsgbuf_get(&b, &m) == 1) {
			got++;
			imsg_free(&m);
		}
	}
	CHECK_INT(got, ==, 50);
	CHECK(b.w->rbuf == NULL && b.w->rslab == NULL && b.w->rmsg == NULL);
	CHECK(a.w->wq.head == NULL && a.w->wbatch == NULL);
	heap1 = heap_in_use();
	if (heap0 >= 0 && heap1 != heap0)
		FAILF("%lld bytes more in use after light traffic",
		    heap1 - heap0);
	imsgbuf_clear(&a);
	imsgbuf_clear(&b);
	close(sv[0]);
	close(sv[1]);
}

/*
 * 75 KiB of small messages waiting, 32 to a small read buffer: the
 * first read fills the small read buffer exactly (no message is left
 * unfinished, so no second read follows at once), the next one reads
 * into a large one.  A light read that leaves
 * nothing behind then gives the buffer back, and the next read starts
 * small again.
 */
static void
read_buffer_grows_when_reads_fill_it_and_goes_after_a_light_one(void)
{
	struct imsgbuf ib;
	struct imsg m;
	uint32_t size[600], i, got = 0;
	unsigned char *s;
	size_t len;
	int sv[2];

	for (i = 0; i < 600; i++)
		size[i] = MSGBUF_SMALL / 32 - HDR;
	s = raw_stream(size, 0, 600, &len);
	pair(sv);
	ib_open(&ib, sv[0], 0, 0);
	write_all(sv[1], s, len);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK_UINT(ib.w->rcap, ==, MSGBUF_SMALL);
	CHECK_INT(ib.w->rbig, ==, 1);
	CHECK_UINT(ib.w->rq.count, ==, 32);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK_UINT(ib.w->rcap, ==, MSGBUF_LARGE);
	CHECK_UINT(ib.w->rq.count, >=, 32 + 32 * 15);
	if (read_pending(&ib) == -1)
		FAILF("reading the rest");
	while (imsgbuf_get(&ib, &m) == 1) {
		check_held("message", &m, got, size[got], RAW_PID);
		got++;
		imsg_free(&m);
	}
	CHECK_UINT(got, ==, 600);
	write_all(sv[1], s, HDR + size[0]);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK(ib.w->rbuf == NULL && ib.w->rbig == 0);
	CHECK_INT(imsgbuf_get(&ib, &m), ==, 1);
	imsg_free(&m);
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
	free(s);
}

/*
 * imsg_free wipes a message where it lies, in its slab.  A second
 * message of the same slab is kept, so the slab stays allocated and
 * reading the first one's bytes after its free is defined.
 */
static void
imsg_free_wipes_a_message_in_its_slab(void)
{
	struct imsgbuf ib;
	struct imsg kept[2];
	uint32_t size[2] = { 200, 40 }, got = 0;
	unsigned char *s, *at;
	size_t len, n, i;
	int sv[2];

	s = raw_stream(size, 0, 2, &len);
	pair(sv);
	ib_open(&ib, sv[0], 0, 0);
	write_all(sv[1], s, len);
	if (read_pending(&ib) > 0)
		take_all(&ib, kept, &got, 2);
	CHECK_UINT(got, ==, 2);
	if (got == 2 && check_held("message", &kept[0], 0, size[0],
	    RAW_PID) == 0 && slab_of(&kept[0]) != NULL &&
	    slab_of(&kept[0]) == slab_of(&kept[1])) {
		at = kept[0].buf->buf;
		n = kept[0].buf->size;
		imsg_free(&kept[0]);
		for (i = 0; i < n; i++)
			if (at[i] != 0) {
				FAILF("byte %zu of the freed message is 0x%02x",
				    i, at[i]);
				break;
			}
		check_held("kept message", &kept[1], 1, size[1], RAW_PID);
		imsg_free(&kept[1]);
	} else
		FAILF("the two messages do not share a slab");
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
	free(s);
}

/*
 * A small marked message with a descriptor, read and kept; then light
 * traffic makes the reader move on from its slab.  The descriptor is
 * claimed afterwards and is the file sent.
 */
static void
descriptor_of_slab_message_claimed_after_reader_moved_on(void)
{
	struct imsgbuf ib;
	struct imsg kept, m;
	struct stat st0, st1;
	unsigned char msg[HDR + 32];
	uint32_t size = 32;
	int sv[2], fd, got;

	pair(sv);
	ib_open(&ib, sv[0], 0, 1);
	if ((fd = open("/dev/null", O_RDONLY)) == -1)
		die("open");
	CHECK_INT(fstat(fd, &st0), ==, 0);
	put_msg(msg, 0, size);
	((struct imsg_hdr *)(void *)msg)->len |= MARK;
	send_with_fd(sv[1], msg, sizeof(msg), fd);
	close(fd);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK_INT(imsgbuf_get(&ib, &kept), ==, 1);
	CHECK(slab_of(&kept) != NULL);
	put_msg(msg, 1, size);
	write_all(sv[1], msg, sizeof(msg));
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK(ib.w->rslab == NULL);
	got = imsgbuf_get(&ib, &m);
	CHECK_INT(got, ==, 1);
	if (got == 1)
		imsg_free(&m);
	fd = imsg_get_fd(&kept);
	CHECK_INT(fd, >=, 0);
	if (fd >= 0) {
		CHECK_INT(fstat(fd, &st1), ==, 0);
		CHECK(st0.st_dev == st1.st_dev && st0.st_ino == st1.st_ino);
		close(fd);
	}
	imsg_free(&kept);
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
}

/* ---- each optimisation, with a case that fails without it ----------- */

/*
 * Small messages are copied into write batches: the first of an idle
 * queue small, the next ones large while the writer is ahead.
 */
static void
small_messages_share_write_batches_small_then_large(void)
{
	struct imsgbuf a, b;
	struct imsg m;
	unsigned char pay[100];
	struct ibuf *first;
	int sv[2], i, got = 0;

	memset(pay, 0x3c, sizeof(pay));
	pair(sv);
	ib_open(&a, sv[0], 0, 0);
	ib_open(&b, sv[1], 0, 0);
	CHECK_INT(imsg_compose(&a, 1, 0, 0, -1, pay, sizeof(pay)), ==, 1);
	first = a.w->wq.head;
	CHECK(first != NULL && (ibuf_box(first)->flags & IBUF_BOX_BATCH));
	if (first != NULL)
		CHECK_UINT(first->max, ==, MSGBUF_SMALL);
	for (i = 1; i < 100; i++)
		CHECK_INT(imsg_compose(&a, 1, (uint32_t)i, 0, -1, pay,
		    sizeof(pay)), ==, 1);
	CHECK_UINT(a.w->wq.count, ==, 2);
	if (a.w->wq.count == 2)
		CHECK_UINT(a.w->wq.head->entry.tqe_next->max, ==,
		    MSGBUF_BATCH_LARGE);
	CHECK_UINT(imsgbuf_queuelen(&a), ==, 100);
	CHECK_INT(imsgbuf_flush(&a), ==, 0);
	CHECK(a.w->wq.head == NULL);
	if (read_pending(&b) >= 0)
		while (imsgbuf_get(&b, &m) == 1) {
			CHECK_UINT(imsg_get_id(&m), ==, (uint32_t)got);
			got++;
			imsg_free(&m);
		}
	CHECK_INT(got, ==, 100);
	imsgbuf_clear(&a);
	imsgbuf_clear(&b);
	close(sv[0]);
	close(sv[1]);
}

static int hdr_calls;
static struct ibuf *(*real_readhdr)(struct ibuf *, void *, int *);

static struct ibuf *
counting_readhdr(struct ibuf *hdr, void *arg, int *fd)
{
	hdr_calls++;
	return real_readhdr(hdr, arg, fd);
}

/*
 * Whole unmarked messages are taken through the imsg layer's hook,
 * without the header callback; a marked one, and one cut by the end of
 * a read, still go through it.
 */
static void
whole_unmarked_messages_skip_the_header_callback(void)
{
	struct imsgbuf ib;
	struct imsg m;
	uint32_t size[3] = { 40, 40, 40 };
	unsigned char *s;
	size_t len;
	int sv[2], got = 0;

	s = raw_stream(size, 0, 3, &len);
	pair(sv);
	ib_open(&ib, sv[0], 0, 0);
	real_readhdr = ib.w->readhdr;
	ib.w->readhdr = counting_readhdr;
	hdr_calls = 0;
	write_all(sv[1], s, len);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK_INT(hdr_calls, ==, 0);
	((struct imsg_hdr *)(void *)s)->len |= MARK;
	write_all(sv[1], s, HDR + size[0]);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK_INT(hdr_calls, ==, 1);
	write_all(sv[1], s + HDR + size[0], HDR + 8);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	write_all(sv[1], s + 2 * HDR + size[0] + 8, size[1] - 8);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK_INT(hdr_calls, ==, 2);
	while (imsgbuf_get(&ib, &m) == 1) {
		got++;
		imsg_free(&m);
	}
	CHECK_INT(got, ==, 5);
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
	free(s);
}

/* A pipe of 1 MiB, so that a whole large message waits in it; -1. */
static int
big_pipe(int p[2])
{
	if (pipe(p) == -1)
		die("pipe");
	if (fcntl(p[0], F_SETPIPE_SZ, 1 << 20) == -1) {
		printf("# skipped: no 1 MiB pipe (%s)\n", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	return 0;
}

/*
 * A large message is read straight into its own buffer, the rest of it
 * with one read of its own: two reads for 512 KiB waiting in a pipe,
 * where reads through the 64 KiB read buffer would take nine.
 */
static void
large_message_is_read_straight_into_its_buffer(void)
{
	struct imsgbuf ib;
	struct imsg m;
	uint32_t size = 512 * 1024;
	unsigned char *s;
	size_t len;
	int p[2], reads = 0, r = 0;

	if (big_pipe(p) == -1)
		return;
	s = raw_stream(&size, 0, 1, &len);
	write_all(p[1], s, len);
	ib_open(&ib, p[0], 0, 0);
	CHECK_INT(imsgbuf_set_maxsize(&ib, size), ==, 0);
	while ((r = imsgbuf_get(&ib, &m)) == 0 && reads < 40) {
		if (imsgbuf_read(&ib) != 1)
			break;
		reads++;
	}
	CHECK_INT(reads, ==, 2);
	if (r == 1) {
		check_held("message", &m, 0, size, RAW_PID);
		imsg_free(&m);
	}
	imsgbuf_clear(&ib);
	close(p[0]);
	close(p[1]);
	free(s);
}

/*
 * The read that finishes a large message reads nothing after it, so
 * the next one is not begun (and allocated) before the program had the
 * first: a reader of large messages holds one at a time.
 */
static void
large_message_is_finished_before_the_next_header_is_parsed(void)
{
	struct imsgbuf ib;
	struct imsg m;
	uint32_t size[2] = { 300 * 1024, 300 * 1024 };
	unsigned char *s;
	size_t len;
	int p[2], r;

	if (big_pipe(p) == -1)
		return;
	s = raw_stream(size, 0, 2, &len);
	write_all(p[1], s, len);
	ib_open(&ib, p[0], 0, 0);
	CHECK_INT(imsgbuf_set_maxsize(&ib, size[0]), ==, 0);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK(ib.w->rmsg != NULL);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	CHECK(ib.w->rmsg == NULL && ib.w->rlen == 0);
	CHECK_UINT(ib.w->rq.count, ==, 1);
	if (imsgbuf_get(&ib, &m) == 1) {
		check_held("first", &m, 0, size[0], RAW_PID);
		imsg_free(&m);
	} else
		FAILF("the first message is not there");
	while ((r = imsgbuf_get(&ib, &m)) == 0)
		if (imsgbuf_read(&ib) != 1)
			break;
	CHECK_INT(r, ==, 1);
	if (r == 1) {
		check_held("second", &m, 1, size[1], RAW_PID);
		imsg_free(&m);
	}
	imsgbuf_clear(&ib);
	close(p[0]);
	close(p[1]);
	free(s);
}

/*
 * A message of a few KiB that is all there arrives with one
 * imsgbuf_read, as with a 64 KiB read buffer: the read that filled the
 * small buffer is followed by one that does not wait.
 */
static void
message_that_is_all_there_arrives_with_one_read(void)
{
	struct imsgbuf ib;
	struct imsg m;
	uint32_t size = 10000;
	unsigned char *s;
	size_t len;
	int sv[2], got;

	s = raw_stream(&size, 0, 1, &len);
	pair(sv);
	ib_open(&ib, sv[0], 0, 0);
	write_all(sv[1], s, len);
	CHECK_INT(imsgbuf_read(&ib), ==, 1);
	got = imsgbuf_get(&ib, &m);
	CHECK_INT(got, ==, 1);
	if (got == 1) {
		check_held("message", &m, 0, size, RAW_PID);
		imsg_free(&m);
	}
	imsgbuf_clear(&ib);
	close(sv[0]);
	close(sv[1]);
	free(s);
}

/*
 * A batch that follows a full one is large; one behind a message of its
 * own (or a descriptor) is small, so a message or two queued behind
 * something else do not cost a large batch.
 */
static void
batch_behind_a_message_of_its_own_is_small(void)
{
	struct imsgbuf a;
	unsigned char pay[2000];
	struct ibuf *last;
	int sv[2];

	memset(pay, 0x11, sizeof(pay));
	pair(sv);
	ib_open(&a, sv[0], 0, 0);
	CHECK_INT(imsg_compose(&a, 1, 0, 0, -1, pay, sizeof(pay)), ==, 1);
	CHECK_INT(imsg_compose(&a, 2, 0, 0, -1, pay, 10), ==, 1);
	last = a.w->wbatch;
	CHECK(a.w->wq.count == 2);
	CHECK(last != NULL && a.w->wq.head->entry.tqe_next == last);
	if (last != NULL)
		CHECK_UINT(last->max, ==, MSGBUF_SMALL);
	imsgbuf_clear(&a);
	close(sv[0]);
	close(sv[1]);
}

/*
 * The bytes of a message of its own that a partial write sent are wiped
 * at once, not only when the rest has gone too.
 */
static void
partial_write_wipes_what_it_sent_of_a_message(void)
{
	struct imsgbuf a;
	unsigned char *pay;
	struct ibuf *b;
	size_t i, bad = 0;
	int sv[2], sndbuf = 4096;

	pay = xcalloc(12000, 1);
	memset(pay, 0x77, 12000);
	pair(sv);
	CHECK_INT(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf)), ==, 0);
	CHECK_INT(fcntl(sv[0], F_SETFL, O_NONBLOCK), ==, 0);
	ib_open(&a, sv[0], 16384, 0);
	CHECK_INT(imsg_compose(&a, 1, 0, 0, -1, pay, 12000), ==, 1);
	CHECK_INT(imsgbuf_write(&a), ==, 0);
	b = a.w->wq.head;
	CHECK(b != NULL && b->rpos > 0 && b->rpos < b->wpos);
	if (b != NULL) {
		for (i = 0; i < b->rpos; i++)
			if (b->buf[i] != 0)
				bad++;
		CHECK_UINT(bad, ==, 0);
		for (i = b->rpos; i < b->wpos; i++)
			if (b->buf[i] != 0x77)
				break;
		CHECK_UINT(i, ==, b->wpos);
	}
	imsgbuf_clear(&a);
	close(sv[0]);
	close(sv[1]);
	free(pay);
}

int
main(int argc, char *argv[])
{
	struct rlimit rl;

	if (argc > 1)
		lt_only = argv[1];

	signal(SIGPIPE, SIG_IGN);
	/* Each case gets 100 s (valgrind included) before the watchdog. */
	signal(SIGALRM, watchdog);
	/* The descriptor case holds a few hundred at once. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1024 &&
	    rl.rlim_max >= 1024) {
		rl.rlim_cur = 1024;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	CASE(kept_messages_survive_hundreds_of_reads_until_verified);
	CASE(random_frees_between_reads_never_disturb_survivors);
	CASE(payload_of_every_received_message_is_16_byte_aligned);
	CASE(forwarded_kept_messages_read_back_identical);
	CASE(descriptors_of_kept_messages_claimed_late_or_closed_by_free);
	CASE(ibufq_handoff_to_thread_frees_blocks_while_main_reads);
	CASE(messages_outlive_imsgbuf_clear_of_their_imsgbuf);
	CASE(partial_writes_keep_exact_queue_length_and_order);
	CASE(forked_reader_gets_every_message_once_in_order);
	CASE(thread_exit_releases_what_it_freed);
	CASE(thread_key_destructor_freeing_messages_leaks_nothing);
	CASE(one_held_message_per_slab_keeps_it_until_freed);
	CASE(small_messages_share_a_slab_and_large_ones_get_their_own);
	CASE(held_messages_cost_their_size_plus_at_most_one_slab);
	CASE(idle_channel_gives_back_read_buffer_slab_and_batch);
	CASE(read_buffer_grows_when_reads_fill_it_and_goes_after_a_light_one);
	CASE(imsg_free_wipes_a_message_in_its_slab);
	CASE(descriptor_of_slab_message_claimed_after_reader_moved_on);
	CASE(small_messages_share_write_batches_small_then_large);
	CASE(whole_unmarked_messages_skip_the_header_callback);
	CASE(large_message_is_read_straight_into_its_buffer);
	CASE(large_message_is_finished_before_the_next_header_is_parsed);
	CASE(message_that_is_all_there_arrives_with_one_read);
	CASE(batch_behind_a_message_of_its_own_is_small);
	CASE(partial_write_wipes_what_it_sent_of_a_message);
	return h_done();
}
