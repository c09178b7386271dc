/*
 * The library loaded at run time with dlopen, as plugins and language
 * bindings load it: used from other threads, unloaded while a thread that
 * used it still lives, loaded again, loaded and unloaded concurrently.
 * Nothing may crash, which rules out per-thread state whose destructor
 * would run after the code is gone.  The library also has no TLS segment,
 * so it loads even into a process whose static TLS is used up.
 *
 * This program is not linked against libimsg: LIBIMSG_SO is the path of
 * the built shared library, and every function comes from dlsym.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "harness.h"

#ifndef LIBIMSG_SO
#error "LIBIMSG_SO must name the shared library (tests/CMakeLists.txt)"
#endif

struct api {
	void		*h;
	int		(*init)(struct imsgbuf *, int);
	void		(*allow_fdpass)(struct imsgbuf *);
	int		(*compose)(struct imsgbuf *, uint32_t, uint32_t, pid_t,
			    int, const void *, size_t);
	int		(*flush)(struct imsgbuf *);
	int		(*read)(struct imsgbuf *);
	int		(*get)(struct imsgbuf *, struct imsg *);
	int		(*get_fd)(struct imsg *);
	uint32_t	(*get_type)(struct imsg *);
	size_t		(*get_len)(struct imsg *);
	void		(*free)(struct imsg *);
	void		(*clear)(struct imsgbuf *);
};

#define SYM(a, field, name) do {					\
	*(void **)&(a)->field = dlsym((a)->h, name);			\
	if ((a)->field == NULL)						\
		bad = 1;						\
} while (0)

/* dlopen the library and resolve what use_library needs; 0 or -1. */
static int
load(struct api *a)
{
	int bad = 0;

	memset(a, 0, sizeof(*a));
	if ((a->h = dlopen(LIBIMSG_SO, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		printf("#   dlopen: %s\n", dlerror());
		return -1;
	}
	SYM(a, init, "imsgbuf_init");
	SYM(a, allow_fdpass, "imsgbuf_allow_fdpass");
	SYM(a, compose, "imsg_compose");
	SYM(a, flush, "imsgbuf_flush");
	SYM(a, read, "imsgbuf_read");
	SYM(a, get, "imsgbuf_get");
	SYM(a, get_fd, "imsg_get_fd");
	SYM(a, get_type, "imsg_get_type");
	SYM(a, get_len, "imsg_get_len");
	SYM(a, free, "imsg_free");
	SYM(a, clear, "imsgbuf_clear");
	if (bad) {
		printf("#   dlsym: %s\n", dlerror());
		dlclose(a->h);
		a->h = NULL;
		return -1;
	}
	return 0;
}

static int
unload(struct api *a)
{
	int r = dlclose(a->h);

	a->h = NULL;
	return r;
}

#define USE_N	64

/* Receive USE_N messages on b; every fourth carries a descriptor. */
static int
use_receive(struct api *a, struct imsgbuf *b)
{
	struct imsg m;
	int got = 0, fd, bad = 0, r;

	while (got < USE_N && !bad) {
		while ((r = a->get(b, &m)) == 1) {
			fd = a->get_fd(&m);
			if (a->get_type(&m) != (uint32_t)got ||
			    a->get_len(&m) != (size_t)got * 50 ||
			    (got % 4 == 0) != (fd != -1))
				bad = 1;
			if (fd != -1)
				close(fd);
			a->free(&m);
			got++;
		}
		if (r == -1 || (got < USE_N && a->read(b) != 1))
			bad = 1;
	}
	return bad ? -1 : 0;
}

/*
 * Real traffic through every part of the library: an imsgbuf pair on a
 * socketpair, small and large messages, descriptors.  0 or -1.
 */
static int
use_library(struct api *a)
{
	static unsigned char data[USE_N * 50];
	struct imsgbuf ia, ib;
	int sv[2], i, fd, bad = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return -1;
	if (a->init(&ia, sv[0]) == -1 || a->init(&ib, sv[1]) == -1) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	a->allow_fdpass(&ia);
	a->allow_fdpass(&ib);
	for (i = 0; i < USE_N && !bad; i++) {
		fd = i % 4 == 0 ? open("/dev/null", O_RDONLY) : -1;
		if (a->compose(&ia, (uint32_t)i, 0, 0, fd, data,
		    (size_t)i * 50) != 1) {
			bad = 1;
			if (fd != -1)
				close(fd);
		}
	}
	/* About 100 kB: the socket buffer takes it all before a read. */
	if (!bad && a->flush(&ia) == -1)
		bad = 1;
	if (!bad && use_receive(a, &ib) == -1)
		bad = 1;
	a->clear(&ia);
	a->clear(&ib);
	close(sv[0]);
	close(sv[1]);
	return bad ? -1 : 0;
}

/*
 * Each case runs in a child: a crash (the point of these cases) then
 * fails the case instead of the program, and a hang ends with an alarm.
 */
static void
in_child(void (*fn)(void))
{
	pid_t pid;
	int status;

	fflush(stdout);
	if ((pid = h_fork()) == -1) {
		h_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		alarm(30);
		h_case_failed = 0;
		fn();
		fflush(stdout);
		_exit(h_case_failed ? 1 : 0);
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		h_fail(__FILE__, __LINE__, "child killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else if (WEXITSTATUS(status) != 0)
		h_fail(__FILE__, __LINE__, "child exited with status %d",
		    WEXITSTATUS(status));
}

/* A thread that uses the library, then waits for it to be unloaded. */
struct user {
	struct api	*a;
	pthread_mutex_t	 mtx;
	pthread_cond_t	 cv;
	int		 used;		/* -1 failed, 1 done */
	int		 unloaded;
};

static void *
user_thread(void *arg)
{
	struct user *u = arg;
	int r = use_library(u->a);

	pthread_mutex_lock(&u->mtx);
	u->used = r == 0 ? 1 : -1;
	pthread_cond_broadcast(&u->cv);
	while (!u->unloaded)
		pthread_cond_wait(&u->cv, &u->mtx);
	pthread_mutex_unlock(&u->mtx);
	/* Exiting now runs whatever per-thread cleanup the library left. */
	return NULL;
}

static void
unload_under_a_live_thread(void)
{
	struct api a;
	struct user u;
	pthread_t t;
	void *again;

	if (load(&a) == -1) {
		h_fail(__FILE__, __LINE__, "load failed");
		return;
	}
	memset(&u, 0, sizeof(u));
	u.a = &a;
	pthread_mutex_init(&u.mtx, NULL);
	pthread_cond_init(&u.cv, NULL);
	if (pthread_create(&t, NULL, user_thread, &u) != 0) {
		h_fail(__FILE__, __LINE__, "pthread_create");
		return;
	}
	pthread_mutex_lock(&u.mtx);
	while (u.used == 0)
		pthread_cond_wait(&u.cv, &u.mtx);
	CHECK_INT(u.used, ==, 1);
	CHECK_INT(unload(&a), ==, 0);
	u.unloaded = 1;
	pthread_cond_broadcast(&u.cv);
	pthread_mutex_unlock(&u.mtx);
	pthread_join(t, NULL);
	/* Gone indeed (a library pinned by TLS destructors would stay). */
	again = dlopen(LIBIMSG_SO, RTLD_NOW | RTLD_NOLOAD);
	printf("# library %s after dlclose\n", again ? "still loaded" :
	    "unloaded");
	if (again != NULL)
		dlclose(again);
	pthread_cond_destroy(&u.cv);
	pthread_mutex_destroy(&u.mtx);
}

static void
dlclose_while_a_thread_that_used_it_lives_then_the_thread_exits(void)
{
	in_child(unload_under_a_live_thread);
}

#define ROUNDS	20

/* Load, use, unload; rounds times.  Returns the failures. */
static void *
cycle_thread(void *arg)
{
	intptr_t rounds = (intptr_t)arg, fails = 0, i;
	struct api a;

	for (i = 0; i < rounds; i++) {
		if (load(&a) == -1) {
			fails++;
			continue;
		}
		if (use_library(&a) == -1)
			fails++;
		if (unload(&a) != 0)
			fails++;
	}
	return (void *)fails;
}

static void
threads_cycle(int nthreads, int concurrent)
{
	pthread_t t[8];
	void *fails;
	int i, n = 0;

	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&t[n], NULL, cycle_thread,
		    (void *)(intptr_t)(concurrent ? ROUNDS : 2)) != 0) {
			h_fail(__FILE__, __LINE__, "pthread_create");
			break;
		}
		n++;
		/* In turn: each thread is gone before the next one starts. */
		if (!concurrent) {
			pthread_join(t[--n], &fails);
			CHECK_INT((intptr_t)fails, ==, 0);
		}
	}
	while (n > 0) {
		pthread_join(t[--n], &fails);
		CHECK_INT((intptr_t)fails, ==, 0);
	}
}

static void
cycle_in_turn(void)
{
	threads_cycle(6, 0);
}

static void
cycle_concurrently(void)
{
	threads_cycle(4, 1);
}

static void
load_use_unload_load_again_from_threads_in_turn(void)
{
	in_child(cycle_in_turn);
}

static void
load_use_unload_concurrently_from_several_threads(void)
{
	in_child(cycle_concurrently);
}

/* ---- TLS ---------------------------------------------------------- */

struct tls_find {
	const char	*name;
	int		 found;
	int		 tls;
};

static int
find_tls(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct tls_find *f = arg;
	const char *base;
	int i;

	(void)size;
	if (info->dlpi_name == NULL || *info->dlpi_name == '\0')
		return 0;
	base = strrchr(info->dlpi_name, '/');
	base = base != NULL ? base + 1 : info->dlpi_name;
	if (strncmp(base, f->name, strlen(f->name)) != 0)
		return 0;
	f->found++;
	for (i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_TLS)
			f->tls++;
	return 0;
}

/*
 * A library with a TLS segment needs room in every thread's TLS; one
 * built for the initial-exec model needs it in the static TLS block,
 * which a process may have used up, and then dlopen fails.  Without a
 * TLS segment that cannot happen.
 */
static void
library_has_no_tls_segment(void)
{
	struct tls_find f;
	struct api a;
	const char *base = strrchr(LIBIMSG_SO, '/');

	if (load(&a) == -1) {
		h_fail(__FILE__, __LINE__, "load failed");
		return;
	}
	memset(&f, 0, sizeof(f));
	f.name = base != NULL ? base + 1 : LIBIMSG_SO;
	dl_iterate_phdr(find_tls, &f);
	CHECK_INT(f.found, ==, 1);
	CHECK_INT(f.tls, ==, 0);
	CHECK_INT(unload(&a), ==, 0);
}

/* Much static TLS of this program's own, touched by each thread. */
#define BIG_TLS		(1 << 20)
static __thread unsigned char big_tls[BIG_TLS];

static void *
tls_thread(void *arg)
{
	struct api a;
	intptr_t bad = 0;

	memset(big_tls, (int)(intptr_t)arg, sizeof(big_tls));
	if (load(&a) == -1 || use_library(&a) == -1)
		bad = 1;
	if (a.h != NULL && unload(&a) != 0)
		bad = 1;
	if (big_tls[BIG_TLS - 1] != (unsigned char)(intptr_t)arg)
		bad = 1;
	return (void *)bad;
}

static void
big_tls_then_load(void)
{
	pthread_t t[3];
	void *bad;
	int i;

	big_tls[0] = 1;
	for (i = 0; i < 3; i++)
		if (pthread_create(&t[i], NULL, tls_thread,
		    (void *)(intptr_t)(i + 1)) != 0)
			break;
	CHECK_INT(i, ==, 3);
	while (i-- > 0) {
		pthread_join(t[i], &bad);
		CHECK_INT((intptr_t)bad, ==, 0);
	}
}

static void
loads_into_a_process_with_much_static_tls(void)
{
	in_child(big_tls_then_load);
}

int
main(void)
{
	RUN(dlclose_while_a_thread_that_used_it_lives_then_the_thread_exits);
	RUN(load_use_unload_load_again_from_threads_in_turn);
	RUN(load_use_unload_concurrently_from_several_threads);
	RUN(library_has_no_tls_segment);
	RUN(loads_into_a_process_with_much_static_tls);
	return h_done();
}
