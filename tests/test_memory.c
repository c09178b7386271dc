/*
 * What the library's memory holds, and for how long: no copy of a
 * message left behind once it was written or freed, re-initialising an
 * imsgbuf costs only its msgbuf, and threads that used the library leave
 * nothing behind them (not even in a child forked while they live).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "imsg.h"
#include "harness.h"
#include "testutil.h"

#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#define HAVE_MALLINFO2	1
#endif

#if defined(__clang__) || defined(__GNUC__)
#define NO_ASAN		__attribute__((no_sanitize_address))
#else
#define NO_ASAN
#endif

static void
chan_close(struct chan *c)
{
	imsgbuf_clear(&c->a);
	imsgbuf_clear(&c->b);
	close(c->sv[0]);
	close(c->sv[1]);
}

/*
 * Heap bytes in use, or 0 if this C library (or a sanitizer's allocator
 * in its place) does not tell.
 */
static size_t
heap_in_use(void)
{
#ifdef HAVE_MALLINFO2
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

/* ==== issue 15: no copy of a written or freed message lingers ========== */

/*
 * The secret is never stored in the clear by the test itself: only
 * masked, and unmasked byte by byte into the buffers handed to the
 * library (wiped right after) or while comparing.  So every copy a scan
 * of this process finds is one the library made and kept.
 */
#define SECRET_LEN	64

static unsigned char secret_masked[SECRET_LEN];

static unsigned char
secret_key(size_t i)
{
	return (unsigned char)(0x5a + 31 * i);
}

static void
secret_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i;

	for (i = 0; i < SECRET_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		secret_masked[i] = (unsigned char)(x >> 24);
	}
}

static void
secret_put(unsigned char *p)
{
	size_t i;

	for (i = 0; i < SECRET_LEN; i++)
		p[i] = secret_masked[i] ^ secret_key(i);
}

static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

static int
is_secret(const unsigned char *p)
{
	size_t i;

	for (i = 0; i < SECRET_LEN; i++)
		if (p[i] != (secret_masked[i] ^ secret_key(i)))
			return 0;
	return 1;
}

/* Copies of the secret in [p, p + n); plain loads, seen by no sanitizer. */
static NO_ASAN size_t
scan_region(const unsigned char *p, size_t n)
{
	volatile const unsigned char *v = p;
	unsigned char first = secret_masked[0] ^ secret_key(0);
	size_t i, j, found = 0;

	for (i = 0; i + SECRET_LEN <= n; i++) {
		if (v[i] != first)
			continue;
		for (j = 1; j < SECRET_LEN; j++)
			if (v[i + j] != (secret_masked[j] ^ secret_key(j)))
				break;
		if (j == SECRET_LEN)
			found++;
	}
	return found;
}

#define SCAN_MAXREGIONS	1024
/* Larger private mappings are reservations (sanitizer shadow), not heap. */
#define SCAN_MAXREGION	((size_t)256 << 20)

struct region {
	uintptr_t	 lo, hi;
};

/*
 * The writable private mappings: heap, anonymous mappings, data, stacks.
 * Returns their count, or -1 when scanning cannot work here (no /proc,
 * or valgrind, which rightly calls reading freed memory an error).
 */
static int
scan_regions(struct region *r, int max)
{
	char line[512], perms[8];
	unsigned long lo, hi;
	FILE *f;
	int n = 0, vg = 0;

	if ((f = fopen("/proc/self/maps", "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, "vgpreload") != NULL)
			vg = 1;
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    strcmp(perms, "rw-p") != 0 || hi - lo > SCAN_MAXREGION)
			continue;
		if (n < max) {
			r[n].lo = lo;
			r[n].hi = hi;
			n++;
		}
	}
	fclose(f);
	return vg ? -1 : n;
}

/*
 * A region that went away between reading the map and scanning it (an
 * allocator may unmap memory it freed meanwhile, as musl's does) faults:
 * the scan then skips it.
 */
static sigjmp_buf scan_fault;

static void
scan_fault_handler(int sig)
{
	(void)sig;
	siglongjmp(scan_fault, 1);
}

/* scan_region, or 0 if the region cannot be read. */
static size_t
scan_region_safely(const unsigned char *p, size_t n)
{
	struct sigaction sa, osegv, obus;
	volatile size_t found = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = scan_fault_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &osegv);
	sigaction(SIGBUS, &sa, &obus);
	if (sigsetjmp(scan_fault, 1) == 0)
		found = scan_region(p, n);
	sigaction(SIGSEGV, &osegv, NULL);
	sigaction(SIGBUS, &obus, NULL);
	return found;
}

/*
 * Copies of the secret in this process's memory; -1 if it cannot tell.
 * Of this thread's stack only the live frames above this one count: the
 * dead part below is scratch that the next call overwrites, where the
 * dynamic linker's lazy binding saves the vector registers (which may
 * hold bytes libc's memcpy just moved) and where the scan itself runs.
 */
static long
secret_copies(void)
{
	static struct region r[SCAN_MAXREGIONS];
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);
	long found = 0;
	int i, n;

	if ((n = scan_regions(r, SCAN_MAXREGIONS)) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (here >= r[i].lo && here < r[i].hi)
			r[i].lo = here;
		found += (long)scan_region_safely(
		    (const unsigned char *)r[i].lo, r[i].hi - r[i].lo);
	}
	return found;
}

/* The test's own machinery leaves no copy: checked before each case. */
static int
scan_works(void)
{
	unsigned char *p;
	long before, during;

	if ((before = secret_copies()) == -1) {
		printf("# skipped: no /proc/self/maps, or under valgrind\n");
		return 0;
	}
	CHECK_INT(before, ==, 0);
	if ((p = malloc(SECRET_LEN)) == NULL)
		die("malloc");
	secret_put(p);
	during = secret_copies();
	wipe(p, SECRET_LEN);
	free(p);
	/* A scan that misses a copy in the heap would prove nothing. */
	CHECK_INT(during, ==, 1);
	return before == 0 && during == 1;
}

/* How a sender queues the secret. */
enum secret_how { BY_COMPOSE, BY_CREATE };

static void
queue_secret(struct imsgbuf *ib, uint32_t type, enum secret_how how)
{
	unsigned char *p;
	struct ibuf *b;

	if ((p = malloc(SECRET_LEN)) == NULL)
		die("malloc");
	secret_put(p);
	if (how == BY_COMPOSE) {
		CHECK_INT(imsg_compose(ib, type, 0, 0, -1, p, SECRET_LEN), ==,
		    1);
	} else if ((b = imsg_create(ib, type, 0, 0, SECRET_LEN)) == NULL) {
		h_fail(__FILE__, __LINE__, "imsg_create: %s", strerror(errno));
	} else {
		CHECK_INT(imsg_add(b, p, SECRET_LEN), ==, SECRET_LEN);
		imsg_close(ib, b);
	}
	/* The caller wipes its own copy at once. */
	wipe(p, SECRET_LEN);
	free(p);
}

/* A forked peer reads n messages, each the secret (type < 1000) or not. */
static pid_t
secret_reader(int sv[2], int n)
{
	struct imsgbuf ib;
	struct imsg m;
	pid_t pid;
	int i;

	if ((pid = fork_child()) != 0) {
		close(sv[1]);
		return pid;
	}
	close(sv[0]);
	CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
	for (i = 0; i < n && !h_case_failed; i++) {
		CHECK_INT(next_msg(&ib, &m), ==, 1);
		if (imsg_get_type(&m) < 1000) {
			CHECK_UINT(imsg_get_len(&m), ==, SECRET_LEN);
			CHECK(m.data != NULL && is_secret(m.data));
		}
		msg_free(&m);
	}
	CHECK_INT(next_msg(&ib, &m), ==, 0);
	imsgbuf_clear(&ib);
	close(sv[1]);
	child_exit();
}

/*
 * Queue n messages (every seventh the secret, the rest filler of 1 to
 * 900 bytes, or all of them the secret), writing as they pile up, then
 * flush; the peer reads them all.  Then the sender must hold no copy,
 * though its imsgbuf is still there.
 */
static void
sender_keeps_no_copy(int n, int every, int how)
{
	static unsigned char filler[900];
	struct imsgbuf ib;
	int sv[2], i;
	pid_t pid;

	if (!scan_works())
		return;
	pair(sv);
	pid = secret_reader(sv, n);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	memset(filler, 'f', sizeof(filler));
	for (i = 0; i < n; i++) {
		if (i % every == 0)
			queue_secret(&ib, (uint32_t)i % 1000,
			    (enum secret_how)how);
		else
			CHECK_INT(imsg_compose(&ib, 1000, 0, 0, -1, filler,
			    1 + (size_t)i * 37 % sizeof(filler)), ==, 1);
		if (imsgbuf_queuelen(&ib) > 200)
			CHECK_INT(imsgbuf_write(&ib), ==, 0);
	}
	CHECK_INT(imsgbuf_flush(&ib), ==, 0);
	close(sv[0]);
	WAIT_CHILD(pid);
	CHECK_INT(secret_copies(), ==, 0);
	imsgbuf_clear(&ib);
}

/*
 * Each case runs in a child of its own, so a copy one of them leaves
 * behind cannot fail the next ones as well.
 */
static void
isolated(void (*fn)(int, int, int), int n, int every, int how)
{
	pid_t pid;

	if ((pid = fork_child()) == 0) {
		alarm(30);
		fn(n, every, how);
		fflush(stdout);
		child_exit();
	}
	WAIT_CHILD(pid);
}

static void
composed_secret_leaves_no_copy_in_sender_after_flush(void)
{
	isolated(sender_keeps_no_copy, 1, 1, BY_COMPOSE);
}

static void
created_secret_leaves_no_copy_in_sender_after_flush(void)
{
	isolated(sender_keeps_no_copy, 1, 1, BY_CREATE);
}

static void
stream_of_small_secrets_leaves_no_copy_in_sender(void)
{
	isolated(sender_keeps_no_copy, 5000, 1, BY_COMPOSE);
	isolated(sender_keeps_no_copy, 3000, 7, BY_CREATE);
}

/*
 * The other way round: a forked peer sends, this process reads and
 * frees each message; with the imsgbuf still open, no copy is left.
 */
static void
receiver_keeps_no_copy_after_imsg_free(int n, int every, int how)
{
	static unsigned char filler[900];
	struct imsgbuf ib;
	struct imsg m;
	int sv[2], i;
	pid_t pid;

	(void)how;
	if (!scan_works())
		return;
	pair(sv);
	if ((pid = fork_child()) == 0) {
		close(sv[0]);
		CHECK_INT(imsgbuf_init(&ib, sv[1]), ==, 0);
		memset(filler, 'f', sizeof(filler));
		for (i = 0; i < n; i++) {
			if (i % every == 0)
				queue_secret(&ib, (uint32_t)i % 1000,
				    BY_COMPOSE);
			else
				CHECK_INT(imsg_compose(&ib, 1000, 0, 0, -1,
				    filler, 1 + (size_t)i * 37 %
				    sizeof(filler)), ==, 1);
		}
		CHECK_INT(imsgbuf_flush(&ib), ==, 0);
		imsgbuf_clear(&ib);
		close(sv[1]);
		child_exit();
	}
	close(sv[1]);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	for (i = 0; i < n && !h_case_failed; i++) {
		CHECK_INT(next_msg(&ib, &m), ==, 1);
		if (imsg_get_type(&m) < 1000)
			CHECK(m.data != NULL && is_secret(m.data));
		msg_free(&m);
	}
	WAIT_CHILD(pid);
	CHECK_INT(secret_copies(), ==, 0);
	imsgbuf_clear(&ib);
	close(sv[0]);
}

static void
received_secret_leaves_no_copy_after_imsg_free(void)
{
	isolated(receiver_keeps_no_copy_after_imsg_free, 1, 1, 0);
}

static void
stream_of_received_secrets_leaves_no_copy_after_imsg_free(void)
{
	isolated(receiver_keeps_no_copy_after_imsg_free, 5000, 1, 0);
	isolated(receiver_keeps_no_copy_after_imsg_free, 3000, 7, 0);
}

/* ==== issue 15: imsgbuf_init twice, threads and fork ==================== */

#define REINIT_N	100

/*
 * imsgbuf_init on an imsgbuf that was never cleared loses the old
 * msgbuf (the caller's leak, as upstream): that must be all it costs.
 * The test keeps the old ones to free them, so no leak checker trips.
 */
static void
second_imsgbuf_init_costs_only_the_msgbuf(void)
{
	static struct msgbuf *old[REINIT_N];
	struct imsgbuf ib;
	size_t h0, h1;
	int sv[2], i;

	if (heap_in_use() == 0) {
		printf("# skipped: mallinfo2 unavailable or empty\n");
		return;
	}
	pair(sv);
	CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	h0 = heap_in_use();
	for (i = 0; i < REINIT_N; i++) {
		old[i] = ib.w;
		CHECK_INT(imsgbuf_init(&ib, sv[0]), ==, 0);
	}
	h1 = heap_in_use();
	CHECK_UINT(h1 > h0 ? h1 - h0 : 0, <, (size_t)REINIT_N * 1024);
	imsgbuf_clear(&ib);
	for (i = 0; i < REINIT_N; i++)
		msgbuf_free(old[i]);
	close(sv[0]);
	close(sv[1]);
}

#define WORKERS		4

struct workers {
	pthread_mutex_t	 mtx;
	pthread_cond_t	 cv;
	int		 done;
	int		 quit;
	int		 failed;
};

/* Traffic of every size class, all of it freed again. */
static int
worker_traffic(void)
{
	static const size_t sizes[] = { 0, 1, 48, 200, 1000, 3000, 16000 };
	static unsigned char data[16000];
	struct chan c;
	struct imsg m;
	int i, bad = 0;

	chan_open(&c, 0);
	for (i = 0; i < 700 && !bad; i++) {
		if (imsg_compose(&c.a, (uint32_t)i, 0, 0, -1, data,
		    sizes[i % 7]) != 1 || drain(&c.a) == -1 ||
		    next_msg(&c.b, &m) != 1 ||
		    imsg_get_len(&m) != sizes[i % 7])
			bad = 1;
		msg_free(&m);
	}
	chan_close(&c);
	return bad;
}

/* Use the library, then stay alive, idle, until told to quit. */
static void *
worker(void *arg)
{
	struct workers *w = arg;
	int bad = worker_traffic();

	pthread_mutex_lock(&w->mtx);
	w->failed += bad;
	w->done++;
	pthread_cond_broadcast(&w->cv);
	while (!w->quit)
		pthread_cond_wait(&w->cv, &w->mtx);
	pthread_mutex_unlock(&w->mtx);
	return NULL;
}

/*
 * The child of a process whose other threads used the library.  Under
 * LeakSanitizer, exit runs the leak check here: memory those threads'
 * caches held, which no thread of the child can reach, is reported and
 * fails the exit status.  Without it, the heap the idle threads still
 * hold through the library is measured instead.
 */
static void
forked_child_of_threads(size_t h0)
{
	size_t h1;

	if (h0 != 0) {
		h1 = heap_in_use();
		CHECK_UINT(h1 > h0 ? h1 - h0 : 0, <, (size_t)WORKERS * 16384);
	}
	if (worker_traffic())
		h_fail(__FILE__, __LINE__, "traffic in the child failed");
	fflush(stdout);
	exit(h_case_failed ? 1 : 0);
}

static void
child_forked_from_threads_that_used_the_library_leaks_nothing(void)
{
	struct workers w;
	pthread_t t[WORKERS];
	size_t h0;
	pid_t pid;
	int i, n;

	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mtx, NULL);
	pthread_cond_init(&w.cv, NULL);
	/* Let this thread's own first use settle before the baseline. */
	CHECK_INT(worker_traffic(), ==, 0);
	h0 = heap_in_use();
	for (n = 0; n < WORKERS; n++)
		if (pthread_create(&t[n], NULL, worker, &w) != 0)
			break;
	CHECK_INT(n, ==, WORKERS);
	pthread_mutex_lock(&w.mtx);
	while (w.done < n)
		pthread_cond_wait(&w.cv, &w.mtx);
	CHECK_INT(w.failed, ==, 0);
	pthread_mutex_unlock(&w.mtx);
	if ((pid = fork_child()) == 0)
		forked_child_of_threads(h0);
	WAIT_CHILD(pid);
	pthread_mutex_lock(&w.mtx);
	w.quit = 1;
	pthread_cond_broadcast(&w.cv);
	pthread_mutex_unlock(&w.mtx);
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mtx);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, watchdog);
	alarm(100);
	secret_init();

	/* issue 15 */
	RUN(composed_secret_leaves_no_copy_in_sender_after_flush);
	RUN(created_secret_leaves_no_copy_in_sender_after_flush);
	RUN(stream_of_small_secrets_leaves_no_copy_in_sender);
	RUN(received_secret_leaves_no_copy_after_imsg_free);
	RUN(stream_of_received_secrets_leaves_no_copy_after_imsg_free);
	RUN(second_imsgbuf_init_costs_only_the_msgbuf);
	RUN(child_forked_from_threads_that_used_the_library_leaks_nothing);

	return h_done();
}
